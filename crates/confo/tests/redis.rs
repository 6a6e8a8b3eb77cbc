//! The Redis backend against private `redis-server`s started by the testkit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::model::error::Missing;
use confo::{Backend, BackendExt, BackendKind, BackendSpec, Change, Confo, Error, Precondition};
use confo_testkit::RedisServer;
use redis::AsyncCommands;
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

async fn connect(url: &str) -> RedisBackend {
    RedisBackend::connect(RedisOptions::from_url(url).expect("url")).await.expect("connect")
}

/// A raw connection to look at keys exactly as redis-cli would.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).expect("client").get_multiplexed_async_connection().await.expect("raw")
}

async fn get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    conn.get(key).await.expect("GET")
}

mod conformance {
    use super::*;

    async fn make() -> (RedisServer, Arc<dyn Backend>) {
        let server = RedisServer::start().expect("redis-server");
        let backend = connect(&format!("{}?history_keep=500", server.url())).await;
        (server, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

#[tokio::test]
async fn layout_key_by_key() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let backend = connect(&server.url()).await;
    // Connecting and reading write nothing: the root is made by the first write.
    assert!(backend.list_namespaces().await.expect("list").is_empty());
    assert_eq!(get(&mut r, "confo").await, None, "nothing written by connecting or reading");

    backend.create_namespace("HR_dept").await.expect("create");
    assert_eq!(get(&mut r, "confo").await.as_deref(), Some(r#"{"namespaces":["HR_dept"]}"#));
    assert_eq!(get(&mut r, "HR_dept").await.as_deref(), Some(r#"{"configurations":[]}"#));

    backend
        .put_configuration("HR_dept", "database", obj(json!({"host": "localhost", "port": 6379})))
        .await
        .expect("put");
    backend.put_configuration("HR_dept", "mail-relay", obj(json!({"admins": ["a@x.io"]}))).await.expect("put");
    assert_eq!(get(&mut r, "HR_dept").await.as_deref(), Some(r#"{"configurations":["database","mail-relay"]}"#));
    assert_eq!(get(&mut r, "HR_dept-database").await.as_deref(), Some(r#"{"host":"localhost","port":6379}"#));
    assert_eq!(get(&mut r, "HR_dept-mail-relay").await.as_deref(), Some(r#"{"admins":["a@x.io"]}"#));

    backend.delete_configuration("HR_dept", "database").await.expect("delete");
    assert_eq!(get(&mut r, "HR_dept").await.as_deref(), Some(r#"{"configurations":["mail-relay"]}"#));
    assert_eq!(get(&mut r, "HR_dept-database").await, None);

    backend.create_namespace("sales").await.expect("create");
    backend.delete_namespace("HR_dept").await.expect("delete ns");
    assert_eq!(get(&mut r, "confo").await.as_deref(), Some(r#"{"namespaces":["sales"]}"#));
    let mut keys: Vec<String> = r.keys("*").await.expect("KEYS");
    keys.sort();
    // Only the seed's keys and history streams, which outlive their configurations.
    assert_eq!(
        keys,
        ["confo", "confo-history:{HR_dept-database}", "confo-history:{HR_dept-mail-relay}", "sales"],
        "nothing of HR_dept is left but its history"
    );
    let entries: usize =
        redis::cmd("XLEN").arg("confo-history:{HR_dept-database}").query_async(&mut r).await.expect("XLEN");
    assert_eq!(entries, 2, "a create and a delete");

    // Connecting again never overwrites an existing root.
    let _again = connect(&server.url()).await;
    assert_eq!(get(&mut r, "confo").await.as_deref(), Some(r#"{"namespaces":["sales"]}"#));
}

#[tokio::test]
async fn foreign_data_in_pythons_spacing_loads() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let _: () = r.set("confo", r#"{"namespaces": ["zeta", "HR_dept", "empty_listed"]}"#).await.expect("SET");
    let _: () = r.set("HR_dept", r#"{"configurations": ["mail", "database", "caf\u00e9"]}"#).await.expect("SET");
    let _: () = r.set("HR_dept-café", r#"{"v": 1}"#).await.expect("SET");
    let _: () = r.set("HR_dept-database", r#"{"host": "localhost", "port": "6379"}"#).await.expect("SET");
    let _: () = r.set("HR_dept-mail", "{\n  \"relay\": \"smtp\"\n}").await.expect("SET");
    let _: () = r.set("zeta", r#"{ "configurations" : [ ] }"#).await.expect("SET");
    let backend = connect(&server.url()).await;
    assert_eq!(backend.list_namespaces().await.expect("list"), ["HR_dept", "empty_listed", "zeta"]);
    let data = backend.load_namespace("HR_dept").await.expect("load");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["café", "database", "mail"]);
    assert_eq!(data["database"].value["port"], json!("6379"));
    // Point reads find entries however the index was written (Python escapes non-ASCII).
    for name in ["database", "café", "mail"] {
        let one = backend.load_configuration("HR_dept", name).await.expect("read").expect(name);
        assert_eq!(one.version, data[name].version, "{name}");
    }
    assert!(backend.load_configuration("HR_dept", "data").await.expect("read").is_none());
    assert!(backend.load_namespace("zeta").await.expect("zeta").is_empty());
    // Listed, but its key is missing: read as empty (documented), and writable.
    assert!(backend.load_namespace("empty_listed").await.expect("empty").is_empty());
    backend.put_configuration("empty_listed", "c", obj(json!({}))).await.expect("put");
    assert_eq!(get(&mut r, "empty_listed").await.as_deref(), Some(r#"{"configurations":["c"]}"#));
    // Writing keeps the foreign entries and their order.
    backend.put_configuration("HR_dept", "new", obj(json!({}))).await.expect("put");
    assert_eq!(get(&mut r, "HR_dept").await.as_deref(), Some(r#"{"configurations":["mail","database","café","new"]}"#));
}

/// A namespace large enough to be parsed on several threads reads the same in compact form
/// as in maps: names, versions, values and corrupt entries.
#[tokio::test]
async fn a_large_namespace_reads_the_same_compact_and_as_maps() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let backend = connect(&server.url()).await;
    backend.create_namespace("big").await.expect("create");
    let changes: Vec<confo::Change> = (0..1200)
        .map(|i| confo::Change::put(format!("c{i:04}"), obj(json!({"i": i, "name": format!("c{i:04}")}))))
        .collect();
    backend.write("big", &changes).await.into_result().expect("write");
    let _: () = r.set("big-c0042", "{oops").await.expect("SET");
    let _: () = r.del("big-c0900").await.expect("DEL");
    let data = backend.load_namespace("big").await.expect("load");
    let compact = backend.load_namespace_compact("big").await.expect("load compact");
    assert_eq!((data.len(), compact.entries.len()), (1198, 1198));
    for (name, value, version) in &compact.entries {
        assert_eq!(value.field("name"), Some(json!(name)), "{name} holds its own value");
        assert!(value.same_as(&data[name.as_str()].value), "{name}");
        assert_eq!(*version, data[name.as_str()].version, "{name}");
    }
    assert_eq!(compact.corrupt, data.corrupt);
    assert_eq!(compact.corrupt.keys().collect::<Vec<_>>(), ["c0042", "c0900"]);
}

#[tokio::test]
async fn corrupt_data_is_an_error_naming_the_key() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let _: () = r.set("confo", r#"{"namespaces":["ns","bad_index"]}"#).await.expect("SET");
    let _: () = r.set("ns", r#"{"configurations":["ok","missing","notjson","array"]}"#).await.expect("SET");
    let _: () = r.set("ns-ok", r#"{"v":1}"#).await.expect("SET");
    let _: () = r.set("ns-notjson", "{oops").await.expect("SET");
    let _: () = r.set("ns-array", "[1,2]").await.expect("SET");
    let _: () = r.set("bad_index", r#"{"configs":[]}"#).await.expect("SET");
    let backend = connect(&server.url()).await;
    let data = backend.load_namespace("ns").await.expect("the readable part reads");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["ok"]);
    let err = data.corruption_error().expect("corrupt entries");
    let Error::Corrupt { corruptions } = &err else { panic!("{err:?}") };
    let locations: Vec<&str> = corruptions.iter().map(|c| c.location.as_str()).collect();
    assert_eq!(corruptions.len(), 3, "{locations:?}");
    for key in ["\"ns-missing\"", "\"ns-notjson\"", "\"ns-array\""] {
        assert!(locations.iter().any(|l| l.ends_with(key)), "{key} in {locations:?}");
    }
    // Each blocks only itself: one (an unparsable value) is replaced, one (an index entry
    // whose key is gone) removed.
    let _: () = r.rename("ns-ok", "ns-good").await.expect("RENAME");
    let _: () = r.set("ns", r#"{"configurations":["good","missing","notjson"]}"#).await.expect("SET");
    confo::conformance::corrupt_entries_block_only_themselves(
        Arc::new(backend.clone()),
        "ns",
        "notjson",
        "missing",
        "ns-notjson",
    )
    .await;
    assert_eq!(get(&mut r, "ns").await.as_deref(), Some(r#"{"configurations":["good","notjson","other"]}"#));
    let err = backend.load_namespace("bad_index").await.expect_err("corrupt index");
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("\"bad_index\""), "{err}");
    let _: () = r.set("confo", "not json").await.expect("SET");
    let err = backend.list_namespaces().await.expect_err("corrupt root");
    assert!(err.to_string().contains("\"confo\""), "{err}");
}

/// Keys of another type where the seed's layout keeps strings belong to another program: they
/// are "foreign data" naming the key (never "unavailable"), and confo neither adopts nor
/// overwrites them; an unlisted string under a configuration's key is not a "conflict".
#[tokio::test]
async fn keys_of_other_programs_are_foreign_data() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let backend = connect(&server.url()).await;
    let foreign = |err: Error, key: &str| {
        let text = err.to_string();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(text.contains("foreign data") && text.contains(&format!("{key:?}")), "{text}");
    };
    // A namespace key that is a hash: `ns create` is refused, nothing is listed.
    let _: () = r.hset("sessions", "user1", "x").await.expect("HSET");
    foreign(backend.create_namespace("sessions").await.expect_err("refused"), "sessions");
    assert!(!backend.list_namespaces().await.expect("list").contains(&"sessions".to_owned()));
    // A string that is not an index document is refused too.
    let _: () = r.set("greeting", "hello").await.expect("SET");
    let err = backend.create_namespace("greeting").await.expect_err("refused");
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("\"greeting\""), "{err}");
    assert_eq!(get(&mut r, "greeting").await.as_deref(), Some("hello"), "untouched");

    // A listed configuration whose key is a list: read names it; a put is refused and the list
    // stays; a delete unlists it and leaves the list.
    backend.create_namespace("app").await.expect("create");
    backend.put_configuration("app", "db", obj(json!({"a": 1}))).await.expect("put");
    let _: () = r.del("app-db").await.expect("DEL");
    let _: () = r.rpush("app-db", "item").await.expect("RPUSH");
    foreign(backend.load_namespace("app").await.expect("read").corruption_error().expect("foreign"), "app-db");
    let report = backend.write("app", &[Change::put("db", obj(json!({"a": 2})))]).await;
    foreign(report.error.expect("refused"), "app-db");
    let len: usize = r.llen("app-db").await.expect("LLEN");
    assert_eq!(len, 1, "the list is intact");
    backend.write("app", &[Change::delete("db")]).await.error.map_or(Ok(()), Err).expect("unlisted");
    assert_eq!(get(&mut r, "app").await.as_deref(), Some(r#"{"configurations":[]}"#));
    let len: usize = r.llen("app-db").await.expect("LLEN");
    assert_eq!(len, 1, "another program's list is never deleted");

    // An unlisted string under a configuration's key: a create is foreign data, not a conflict.
    let _: () = r.set("app-cache", "PONG").await.expect("SET");
    let report = backend
        .write("app", &[Change { precondition: Precondition::Absent, ..Change::put("cache", obj(json!({}))) }])
        .await;
    let err = report.error.expect("refused");
    assert!(!err.is_conflict(), "{err:?}");
    foreign(err, "app-cache");
    assert_eq!(get(&mut r, "app-cache").await.as_deref(), Some("PONG"));
}

#[tokio::test]
async fn colliding_names_are_refused_before_anything_is_written() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let backend = connect(&server.url()).await;
    backend.create_namespace("a").await.expect("create");
    let before: Vec<String> = r.keys("*").await.expect("KEYS");
    for bad in ["a-b", "confo", "-", "x-"] {
        let err = backend.create_namespace(bad).await.expect_err(bad);
        assert!(matches!(err, Error::InvalidName { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains("redis"), "{err}");
        let report = backend.write(bad, &[Change::put("c", obj(json!({})))]).await;
        assert!(matches!(report.error, Some(Error::InvalidName { .. })));
    }
    // `a` + `b-c` is fine: no namespace can be `a-b`.
    backend.put_configuration("a", "b-c", obj(json!({"ok": true}))).await.expect("put");
    let mut after: Vec<String> = r.keys("*").await.expect("KEYS");
    after.sort();
    let mut expected = before.clone();
    expected.push("a-b-c".into());
    expected.push("confo-history:{a-b-c}".into());
    expected.sort();
    assert_eq!(after, expected);
}

/// Eight independent clients create namespaces and configurations at once; every index entry
/// and data key must exist afterwards. The naive read-modify-write of the index, run the same
/// way, loses entries: the check can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_index_entry() {
    const CLIENTS: usize = 8;
    const OPS: usize = 200;
    let server = RedisServer::start().expect("redis-server");
    let url = server.url();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let backend = connect(&url).await;
                for op in 0..OPS {
                    if op % 10 == 0 {
                        backend.create_namespace(&format!("ns_{c}_{op}")).await.expect("create ns");
                    }
                    // Everyone also writes into one shared namespace.
                    backend.create_namespace("shared").await.expect("create shared");
                    backend
                        .put_configuration("shared", &format!("c{c}-{op}"), obj(json!({"c": c, "op": op})))
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = started.elapsed();
    let mut r = raw(&server).await;
    let backend = connect(&url).await;
    let namespaces = backend.list_namespaces().await.expect("list");
    assert_eq!(namespaces.len(), CLIENTS * OPS / 10 + 1);
    let shared = backend.load_namespace("shared").await.expect("every listed key exists");
    assert_eq!(shared.len(), CLIENTS * OPS, "no configuration lost from the index");
    let data_keys: Vec<String> = r.keys("shared-*").await.expect("KEYS");
    assert_eq!(data_keys.len(), CLIENTS * OPS);
    eprintln!("ours: {} operations by {CLIENTS} clients in {elapsed:?}, 0 entries lost", CLIENTS * OPS * 2);

    // The naive way: GET the index, add an entry, SET it back.
    let _: () = r.set("naive", r#"{"configurations":[]}"#).await.expect("SET");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut conn =
                    redis::Client::open(url).expect("client").get_multiplexed_async_connection().await.expect("conn");
                for op in 0..OPS {
                    let raw: String = conn.get("naive").await.expect("GET");
                    let mut doc: Value = serde_json::from_str(&raw).expect("json");
                    doc["configurations"].as_array_mut().expect("list").push(json!(format!("c{c}-{op}")));
                    tokio::task::yield_now().await;
                    let _: () = conn.set("naive", doc.to_string()).await.expect("SET");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let raw: String = r.get("naive").await.expect("GET");
    let kept = serde_json::from_str::<Value>(&raw).expect("json")["configurations"].as_array().expect("list").len();
    eprintln!("naive read-modify-write: {} of {} index entries lost", CLIENTS * OPS - kept, CLIENTS * OPS);
    assert!(kept < CLIENTS * OPS, "the naive variant loses entries, so the check above could fail");
}

/// Commands that clients (not scripts) send while `during` runs, seen through `MONITOR`.
async fn client_commands<F: std::future::Future<Output = ()>>(server: &RedisServer, during: F) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("monitor connection");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"MONITOR\r\n").expect("MONITOR");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("+OK");
    assert!(line.starts_with("+OK"), "{line}");
    during.await;
    let mut r = raw(server).await;
    let _: String = redis::cmd("ECHO").arg("confo-monitor-end").query_async(&mut r).await.expect("ECHO");
    let mut seen = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("monitor line");
        if line.contains("confo-monitor-end") {
            return seen;
        }
        // Script calls are tagged "[0 lua]"; client calls "[0 127.0.0.1:PORT]".
        if !line.contains(" lua]") {
            seen.push(line.split('"').nth(1).unwrap_or_default().to_ascii_uppercase());
        }
    }
}

/// Reading a namespace costs one round trip whatever its size; a write that fits one chunk
/// costs two (the schema document, then the script).
#[tokio::test]
async fn reload_and_persist_cost_a_constant_number_of_round_trips() {
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&server.url()).await;
    for (ns, n) in [("small", 10), ("large", 3000)] {
        backend.create_namespace(ns).await.expect("create");
        let changes: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i}"), obj(json!({"i": i})))).collect();
        backend.write(ns, &changes[..1]).await.into_result().expect("warm the script cache");
        backend.load_namespace(ns).await.expect("warm the read script too");
        let writes = client_commands(&server, async {
            backend.write(ns, &changes).await.into_result().expect("write");
        })
        .await;
        let reads = client_commands(&server, async {
            assert_eq!(backend.load_namespace(ns).await.expect("load").len(), n);
        })
        .await;
        eprintln!("{n} configurations: reload sends {reads:?}, persist sends {} command(s)", writes.len());
        assert_eq!(reads, ["EVALSHA_RO"], "one round trip per reload (a read-only script)");
        // What the batch replaces is read once (the re-seal rule of secrets: the namespace in
        // bulk, one read-only script), the namespace's schema document once (schemas are
        // checked before writing), then one script per chunk.
        assert_eq!(writes[..2], ["EVALSHA_RO", "GET"], "{writes:?}");
        assert_eq!(writes.len() - 2, n.div_ceil(5000), "one script per chunk of 5,000 changes (docs/backends.md)");
        assert!(writes[2..].iter().all(|c| c == "EVALSHA"));
        // A batch that only creates (each put made on nothing) reads nothing first.
        let fresh: Vec<Change> = (0..n)
            .map(|i| Change::put(format!("new{i}"), obj(json!({"i": i}))).when(confo::Precondition::Absent))
            .collect();
        let creates = client_commands(&server, async {
            backend.write(ns, &fresh).await.into_result().expect("create");
        })
        .await;
        assert_eq!(creates[0], "GET", "{creates:?}");
    }
}

/// `confo set NS/CFG k=v` (a field update) is two round trips: one read-only script reads the
/// configuration and the namespace's schema document (not sent again while it is the version
/// the store holds), one script writes, checking that document is still that version. Issue 34.
#[tokio::test]
async fn a_field_update_is_two_round_trips_and_its_write_checks_the_schemas_it_read() {
    let server = RedisServer::start().expect("redis-server");
    let backend: Arc<dyn Backend> = Arc::new(connect(&server.url()).await);
    backend.create_namespace("a").await.expect("create");
    let store = confo::Store::new(backend.clone());
    let schema = json!({"properties": {"k": {"type": "integer"}}});
    store.set_schema("a", None, Some(schema), None).await.expect("schema");
    let set = |k: i64| [confo::FieldEdit::Set("k".into(), json!(k))];
    store.update_fields("a", "c", &set(1)).await.expect("warm the scripts");
    for (what, store) in
        [("a store holding the schemas", store.clone()), ("a new store", confo::Store::new(backend.clone()))]
    {
        let sent = client_commands(&server, async {
            store.update_fields("a", "c", &set(2)).await.expect("update");
        })
        .await;
        assert_eq!(sent, ["EVALSHA_RO", "EVALSHA"], "{what}");
    }
    let mut r = raw(&server).await;
    // A document replaced behind the store's back is read again, and checked.
    let replaced = r#"{"format":1,"schemas":{"mode":"enforce","default":{"properties":{"k":{"maximum":3}}},"configurations":{}},"revisions":[]}"#;
    let _: () = r.set("confo-schema:a", replaced).await.expect("SET");
    let err = store.update_fields("a", "c", &set(4)).await.expect_err("the new schema refuses 4");
    assert_eq!(err.cause().kind(), confo::model::error::ErrorKind::SchemaViolation, "{err}");
    // The write's own check: a batch checked against "no schemas" while there are some.
    let none = confo::schema::SchemasAsRead::default();
    let author = confo::model::history::Author::library();
    let options = confo::store::ext::WriteOptions::by(&author).checked_against(&none);
    let report = backend.write_with("a", &[Change::put("c", obj(json!({"k": 99})))], &options).await;
    assert!(report.error.as_ref().is_some_and(Error::is_conflict), "{:?}", report.error);
    assert_eq!(store.get("a", "c").await.expect("get").expect("c").value["k"], json!(2), "nothing written");
}

#[tokio::test]
async fn a_dead_port_is_unavailable_within_seconds() {
    let port = confo_testkit::free_port();
    confo::conformance::a_dead_address_is_unavailable(&format!("redis://:dead-secret@127.0.0.1:{port}")).await;
}

#[tokio::test]
async fn server_stopped_and_restarted_mid_test() {
    // With an append-only file, so the data survives the restart as on a real server.
    let mut server =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).expect("redis-server");
    let confo = Confo::new();
    confo.load_backend("r", &server.url().parse().expect("spec")).await.expect("load");
    confo.activate_backend("r").expect("activate");
    confo.create_namespace("ns").await.expect("create");
    confo.use_namespace("ns").await.expect("use");
    confo.set("db", "host", "h1").expect("set");
    confo.persist().await.expect("persist");

    server.stop();
    assert_eq!(
        confo.get_field("db", "host").expect("cached read"),
        Some(json!("h1")),
        "reads from the cache keep working"
    );
    confo.set("db", "host", "h2").expect("set");
    let started = Instant::now();
    let err = confo.persist().await.expect_err("server is down");
    // The connection broke with the request: its outcome is in doubt, and said so.
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert_eq!(confo.staged().expect("staged"), ["ns/db"], "the edit is kept");

    server.restart().expect("restart");
    // The same manager reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match confo.persist().await {
            Ok(written) => {
                assert_eq!(written, ["ns/db"]);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("never reconnected: {e}"),
        }
    }
    let backend = connect(&server.url()).await;
    assert_eq!(backend.load_namespace("ns").await.expect("load")["db"].value["host"], json!("h2"));
}

#[tokio::test]
async fn password_auth() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret-pw"]).expect("redis-server");
    let port = server.port();
    let ok = connect(&format!("redis://:s3cret-pw@127.0.0.1:{port}")).await;
    ok.create_namespace("ns").await.expect("authorized");
    for url in [format!("redis://:wrong@127.0.0.1:{port}"), format!("redis://127.0.0.1:{port}")] {
        // A wrong password is refused by the handshake; none at all by the first command (a
        // connection sends nothing of its own).
        let err = match RedisBackend::connect(RedisOptions::from_url(&url).expect("url")).await {
            Ok(backend) => backend.list_namespaces().await.expect_err("refused"),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Unauthorized { .. }), "{url}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
    // The credentials dictionary carries the password too.
    let spec = BackendSpec::from_credentials(
        BackendKind::REDIS,
        &json!({"redis_host": "127.0.0.1", "redis_port": port.to_string(), "redis_password": "s3cret-pw"}),
    )
    .expect("spec");
    assert!(!format!("{spec} {spec:?}").contains("s3cret-pw"));
    let confo = Confo::new();
    confo.load_backend("r", &spec).await.expect("load");
}

#[tokio::test]
async fn acl_user_auth() {
    let server =
        RedisServer::start_with(&["--user", "app", "on", ">app-pw", "~*", "&*", "+@all"]).expect("redis-server");
    let port = server.port();
    let ok = connect(&format!("redis://app:app-pw@127.0.0.1:{port}")).await;
    ok.create_namespace("ns").await.expect("authorized");
    let err =
        RedisBackend::connect(RedisOptions::from_url(&format!("redis://app:nope@127.0.0.1:{port}")).expect("url"))
            .await
            .expect_err("wrong password");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    // The driver's error is kept as the source, and neither it nor the error shows the password.
    let source = std::error::Error::source(&err).expect("the driver's error");
    assert!(source.to_string().contains("authentication failed"), "{source}");
    assert!(!format!("{err} {err:?} {source:?}").contains("nope"), "{err:?}");
}

#[tokio::test]
async fn tls_with_a_certificate_made_at_test_time() {
    let (server, ca) = RedisServer::start_tls().expect("redis-server with TLS");
    let url = format!("rediss://127.0.0.1:{}?tls_ca={}", server.port(), ca.display());
    let backend = connect(&url).await;
    backend.create_namespace("secure").await.expect("create over TLS");
    backend.put_configuration("secure", "c", obj(json!({"tls": true}))).await.expect("put");
    assert_eq!(backend.load_namespace("secure").await.expect("load")["c"].value["tls"], json!(true));
    // Without trusting the test CA the handshake fails: unavailable, not a panic.
    let untrusted =
        RedisBackend::connect(RedisOptions::from_url(&format!("rediss://127.0.0.1:{}", server.port())).expect("url"))
            .await;
    assert!(matches!(untrusted, Err(Error::Unavailable { .. })), "{untrusted:?}");
}

/// The seed's note: the Redis credentials kept as a configuration of a file backend, with the
/// seed's own values (host "localhost", port as a string).
#[tokio::test]
async fn bootstrap_from_credentials_kept_in_a_file_backend() {
    let server = RedisServer::start().expect("redis-server");
    let dir = confo_testkit::store_dir().expect("temp dir");
    std::fs::create_dir(dir.path().join("infra")).expect("mkdir");
    let cred = json!({"redis_host": "localhost", "redis_port": server.port().to_string()});
    std::fs::write(dir.path().join("infra/redis.json"), cred.to_string()).expect("write");

    let confo = Confo::new();
    confo.load_backend("files", &format!("file:{}", dir.path().display()).parse().expect("spec")).await.expect("files");
    confo.load_backend_from("redis_backend", BackendKind::REDIS, "files", "infra", "redis").await.expect("bootstrap");
    assert_eq!(confo.backends().all, ["files", "redis_backend"]);
    confo.activate_backend("redis_backend").expect("activate");
    confo.create_namespace("HR_dept").await.expect("create");
    confo.use_namespace("HR_dept").await.expect("use");
    confo.set("database", "host", "localhost").expect("set");
    confo.persist().await.expect("persist");
    let mut r = raw(&server).await;
    assert_eq!(get(&mut r, "HR_dept-database").await.as_deref(), Some(r#"{"host":"localhost"}"#));

    let missing =
        confo.load_backend_from("x", BackendKind::REDIS, "files", "infra", "nope").await.expect_err("missing");
    assert!(matches!(missing, Error::NotFound { what: Missing::Configuration, .. }), "{missing:?}");
}

/// A client writes in a loop through Sentinel while the master is killed. Writes wait for one
/// replica (`wait_replicas=1`), so a write acknowledged before the kill is on the replica that
/// becomes master. After the failover the client writes to the new master by itself; the old
/// master is restarted and rejoins as a replica. Every acknowledged write is readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_every_acknowledged_write() {
    let mut group = confo_testkit::RedisSentinelGroup::start().expect("redis sentinel group");
    let old_master = group.master_port().expect("a master");
    let url = format!("redis+sentinel://{}/{}?wait_replicas=1", group.sentinels(), group.master_name());
    let backend = connect(&url).await;
    backend.create_namespace("ha").await.expect("create");

    let mut acknowledged = Vec::new();
    let mut failed = 0;
    let mut killed_at = None;
    let mut restarted = false;
    let mut first_ack_after_kill = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0.. {
        assert!(
            Instant::now() < deadline,
            "no failover within 90 s ({} acknowledged, {failed} failed)",
            acknowledged.len()
        );
        match backend.put_configuration("ha", &format!("c{i}"), obj(json!({"i": i}))).await {
            Ok(_) => {
                acknowledged.push(i);
                if let Some(at) = killed_at {
                    first_ack_after_kill.get_or_insert_with(|| Instant::now().duration_since(at));
                }
            }
            Err(e) => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                failed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if i == 20 {
            group.servers[0].stop();
            killed_at = Some(Instant::now());
        }
        // Once every sentinel names the new master, bring the old one back as its replica (as
        // the config file Sentinel rewrites in a real deployment would).
        if killed_at.is_some() && !restarted {
            if let Some(new_master) = group.master_port().filter(|&p| p != old_master) {
                let port = new_master.to_string();
                group.servers[0].restart_with(&["--replicaof", "127.0.0.1", &port]).expect("restart the old master");
                restarted = true;
            }
        }
        if restarted && acknowledged.iter().filter(|&&a| a > 20).count() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let new_master = group.master_port().expect("a master");
    assert_ne!(new_master, old_master, "the sentinels failed over");
    let data = backend.load_namespace("ha").await.expect("load");
    for i in &acknowledged {
        assert!(data.contains_key(&format!("c{i}")), "acknowledged write c{i} was lost");
    }
    // Read straight from the new master, not through confo.
    let mut direct = redis::Client::open(format!("redis://127.0.0.1:{new_master}"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("new master");
    let last = acknowledged.last().expect("some writes");
    assert!(get(&mut direct, &format!("ha-c{last}")).await.is_some(), "the last write is on the new master");
    eprintln!(
        "failover: {} writes acknowledged, {failed} refused while failing over, first write accepted {:?} after the kill",
        acknowledged.len(),
        first_ack_after_kill
    );
}

/// Every namespace operation and every change of a batch publishes one JSON message on
/// `confo:events`.
#[tokio::test]
async fn writes_publish_change_events() {
    use std::io::{BufRead, BufReader, Write};
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&server.url()).await;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("subscriber");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream.write_all(b"SUBSCRIBE confo:events\r\n").expect("SUBSCRIBE");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // The subscribe confirmation ends with the subscription count ":1".
    while !line.starts_with(":1") {
        line.clear();
        reader.read_line(&mut line).expect("confirmation");
    }

    backend.create_namespace("sales").await.expect("create");
    let changes = [Change::put("db", obj(json!({"a": 1}))), Change::put("cache", obj(json!({})))];
    backend.write("sales", &changes).await.into_result().expect("write");
    backend.delete_configuration("sales", "db").await.expect("delete");
    backend.delete_namespace("sales").await.expect("delete ns");

    let mut events = Vec::new();
    while events.len() < 5 {
        line.clear();
        reader.read_line(&mut line).expect("event");
        if line.starts_with('{') {
            events.push(serde_json::from_str::<Value>(line.trim()).expect("event is JSON"));
        }
    }
    assert_eq!(
        events,
        [
            json!({"namespace": "sales", "operation": "create_namespace"}),
            json!({"namespace": "sales", "configuration": "db", "operation": "put"}),
            json!({"namespace": "sales", "configuration": "cache", "operation": "put"}),
            json!({"namespace": "sales", "configuration": "db", "operation": "delete"}),
            json!({"namespace": "sales", "operation": "delete_namespace"}),
        ]
    );
}

mod live {
    use super::*;

    async fn make() -> (RedisServer, Arc<dyn Backend>, Arc<dyn Backend>) {
        let server = RedisServer::start().expect("redis-server");
        let a = connect(&server.url()).await;
        let b = connect(&server.url()).await;
        (server, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}

/// The shared outage test: the watcher's subscription is killed while a change is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_misses_nothing_while_down() {
    struct KillSubscription(redis::aio::MultiplexedConnection);
    #[async_trait::async_trait]
    impl confo::conformance::Outage for KillSubscription {
        async fn down(&mut self) {
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut self.0)
                .await
                .expect("KILL");
            assert_eq!(killed, 1, "the watcher's subscriber connection was killed");
        }
        async fn up(&mut self) {}
    }
    let server = RedisServer::start().expect("redis-server");
    let watching: Arc<dyn Backend> = Arc::new(connect(&server.url()).await);
    let writing: Arc<dyn Backend> = Arc::new(connect(&server.url()).await);
    let mut outage = KillSubscription(raw(&server).await);
    confo::conformance::watch_misses_nothing_while_down(watching, writing, &mut outage).await;
}

/// The watcher's subscription is killed and a raw SET (which publishes nothing) lands while it
/// is gone: the re-read after re-subscribing reports it. A raw SET without any disconnection is
/// seen at the next periodic re-read.
#[tokio::test]
async fn watch_misses_nothing_while_its_subscription_is_down() {
    let server = RedisServer::start().expect("redis-server");
    let backend: Arc<dyn Backend> = Arc::new(connect(&server.url()).await);
    backend.create_namespace("ns").await.expect("create");
    backend.put_configuration("ns", "c", obj(json!({"v": 1}))).await.expect("put");
    let confo = Confo::new();
    confo.add_backend("r", backend.clone()).await.expect("add");
    confo.activate_backend("r").expect("activate");
    // Periodic re-reads far away: only the re-subscription can find the raw write.
    let mut watcher = confo
        .watch_with("ns", None, confo::WatchOptions::default().resync_every(Duration::from_secs(600)))
        .await
        .expect("watch");
    let mut r = raw(&server).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the subscription settle
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub").query_async(&mut r).await.expect("KILL");
    assert_eq!(killed, 1, "the watcher's subscriber connection was killed");
    let _: () = r.set("ns-c", r#"{"v": 2}"#).await.expect("raw SET");
    let event = watcher.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!((event.kind, event.configuration.as_deref()), (confo::EventKind::Changed, Some("c")));
    assert_eq!(event.value.expect("value")["v"], json!(2));

    // Without a disconnection, a raw SET is seen at the next periodic re-read.
    let mut periodic = confo
        .watch_with("ns", None, confo::WatchOptions::default().resync_every(Duration::from_millis(500)))
        .await
        .expect("watch");
    let _: () = r.set("ns-c", r#"{"v": 3}"#).await.expect("raw SET");
    let event = periodic.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.value.expect("value")["v"], json!(3));
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let server = RedisServer::start().expect("redis-server");
    let ns = confo::conformance::store_a_secret(Arc::new(connect(&server.url()).await)).await;
    let raw_value: Vec<u8> = raw(&server).await.get(format!("{ns}-db")).await.expect("GET");
    confo::conformance::assert_no_plaintext(&raw_value);
}

#[tokio::test]
async fn history_retention() {
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&format!("{}?history_keep=3", server.url())).await;
    confo::conformance::history_retention_keeps_the_newest(Arc::new(backend)).await;
}

/// `repair` finds data keys no index lists and index entries without data, and with `fix`
/// repairs both (each checked again). In a shared Redis only what confo could have written is
/// removed: keys under a namespace's prefix that confo cannot have written (the issue's list:
/// an opaque blob, a counter, names confo refuses, another type, a JSON object no revision of
/// confo's records) are reported as foreign and kept, unless named with `keys`.
#[tokio::test]
async fn repair_finds_and_fixes_what_breaks_the_index() {
    use confo::backend::RepairOptions;
    let server = RedisServer::start().expect("redis-server");
    let backend = connect(&server.url()).await;
    backend.create_namespace("sales").await.expect("create");
    backend.create_namespace("billing").await.expect("create");
    for name in ["a", "b", "stray"] {
        backend.put_configuration("sales", name, obj(json!({"v": 1}))).await.expect("put");
    }
    backend.put_configuration("billing", "x-y", obj(json!({"v": 2}))).await.expect("put");
    let mut r = raw(&server).await;
    // A writer that died between its value and its index entry: confo's value (its history
    // records it) that the index does not list, and an entry without data.
    let _: () = r.set("sales", r#"{"configurations": ["a", "b", "ghost"]}"#).await.expect("SET");
    let _: () = r.del("sales-b").await.expect("DEL");
    // Another program's keys that share the prefix.
    let long = format!("sales-{}", "n".repeat(300));
    let foreign: [(&str, &str); 7] = [
        ("sales-session:9f8e7d", "\x00\x01opaque"),
        ("sales-counter", "17"),
        ("sales-a/b", "{}"),
        ("sales-", "{}"),
        ("sales-.hidden", "{}"),
        ("sales-esc\u{1b}[31m", "{}"),
        ("sales-raw", r#"{"v": 3}"#),
    ];
    for (key, value) in foreign {
        let _: () = r.set(key, value).await.expect("SET");
    }
    let _: () = r.set(&long, "{}").await.expect("SET");
    let _: () = r.hset("sales-hash", "f", "1").await.expect("HSET");
    let found = backend.repair(&RepairOptions::report()).await.expect("repair");
    assert_eq!(found.unindexed, [("sales".to_owned(), "stray".to_owned())]);
    assert_eq!(found.dangling, [("sales".to_owned(), "b".to_owned()), ("sales".to_owned(), "ghost".to_owned())]);
    let mut reported: Vec<&str> = found.foreign.iter().map(|f| f.key.as_str()).collect();
    reported.sort();
    let mut expected: Vec<&str> = foreign.iter().map(|(k, _)| *k).chain([long.as_str(), "sales-hash"]).collect();
    expected.sort();
    assert_eq!(reported, expected);
    let reason = |key: &str| found.foreign.iter().find(|f| f.key == key).map(|f| f.reason.clone()).unwrap_or_default();
    assert!(reason("sales-counter").contains("JSON object"), "{}", reason("sales-counter"));
    assert!(reason("sales-raw").contains("history"), "{}", reason("sales-raw"));
    assert!(reason("sales-hash").contains("hash"), "{}", reason("sales-hash"));
    assert!(!found.fixed);
    assert_eq!(get(&mut r, "sales-stray").await.as_deref(), Some(r#"{"v":1}"#), "reporting changes nothing");

    let fixed = backend.repair(&RepairOptions::fix()).await.expect("repair --fix");
    assert_eq!((fixed.unindexed.len(), fixed.dangling.len(), fixed.foreign.len(), fixed.fixed), (1, 2, 9, true));
    assert_eq!(get(&mut r, "sales-stray").await, None);
    for (key, value) in foreign {
        assert_eq!(get(&mut r, key).await.as_deref(), Some(value), "{key} is kept");
    }
    let kind: String = redis::cmd("TYPE").arg("sales-hash").query_async(&mut r).await.expect("TYPE");
    assert_eq!(kind, "hash", "another program's key is left alone");
    let data = backend.load_namespace("sales").await.expect("load");
    assert!(data.corrupt.is_empty(), "{:?}", data.corrupt);
    assert_eq!(data.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(backend.load_namespace("billing").await.expect("load").len(), 1);
    // A key the operator names is removed; a name that is not found is refused, nothing done.
    let named = RepairOptions::fix().with_keys(vec!["sales-raw".into()]);
    let fixed = backend.repair(&named).await.expect("repair --fix --key");
    assert_eq!(fixed.unindexed, [("sales".to_owned(), "raw".to_owned())]);
    assert_eq!(get(&mut r, "sales-raw").await, None);
    let unknown = RepairOptions::fix().with_keys(vec!["sales-nothing".into()]);
    let err = backend.repair(&unknown).await.expect_err("not found");
    assert_eq!(err.kind(), confo::ErrorKind::InvalidValue, "{err}");
    assert_eq!(get(&mut r, "sales-counter").await.as_deref(), Some("17"));
}

/// A Redis Cluster node (3 masters, 3 replicas, from the testkit) reached with a single-server
/// spec is refused at the first command, reads and writes alike, with a message that says why
/// and what to use, instead of a driver's MOVED or CROSSSLOT (connecting sends nothing to ask).
#[tokio::test]
async fn a_cluster_node_is_refused_with_the_reason() {
    let cluster = confo_testkit::RedisCluster::start(3, 1).expect("redis cluster");
    for port in cluster.ports() {
        let backend = connect(&format!("redis://127.0.0.1:{port}")).await;
        // The root alone is one key: the node that holds it answers truly (none yet), the
        // others are refused.
        match backend.list_namespaces().await {
            Ok(names) => assert!(names.is_empty(), "{names:?}"),
            Err(err) => assert_eq!(err.kind(), confo::ErrorKind::InvalidSpec, "{err}"),
        }
        let errors = [
            backend.load_namespace("ns").await.expect_err("a cluster node"),
            backend.create_namespace("ns").await.expect_err("a cluster node"),
        ];
        for err in errors {
            assert_eq!(err.kind(), confo::ErrorKind::InvalidSpec, "{err}");
            assert!(err.to_string().contains("redis+cluster://"), "{err}");
        }
    }
}

/// The read ACL of the docs (`+@read +@connection +evalsha_ro +eval_ro +subscribe +psubscribe`)
/// is enough to read, watch, and read history and schemas: connecting writes nothing and sends
/// nothing but the handshake (no `INFO`, no `SCRIPT LOAD`, no root made), a point read is one
/// command once the server knows the script (two before: `EVALSHA_RO`, then `EVAL_RO`), and a
/// write is refused as unauthorized.
#[tokio::test]
async fn a_user_allowed_only_to_read_reads_and_watches() {
    let reader = ["reader", "on", ">read-pw", "~*", "&*", "-@all", "+@read", "+@connection"];
    let scripts = ["+evalsha_ro", "+eval_ro", "+subscribe", "+psubscribe"];
    let args: Vec<&str> = ["--user"].into_iter().chain(reader).chain(scripts).collect();
    let server = RedisServer::start_with(&args).expect("redis-server");
    let url = format!("redis://reader:read-pw@127.0.0.1:{}", server.port());
    // An empty server: nothing to read, and nothing is made.
    let fresh = client_commands(&server, async {
        let backend = connect(&url).await;
        assert!(backend.list_namespaces().await.expect("list").is_empty());
    })
    .await;
    assert!(
        fresh.iter().all(|c| matches!(c.as_str(), "AUTH" | "CLIENT" | "HELLO" | "SELECT" | "GET")),
        "connecting and listing sent {fresh:?}"
    );
    assert_eq!(get(&mut raw(&server).await, "confo").await, None);

    let admin = connect(&server.url()).await;
    admin.create_namespace("app").await.expect("create");
    admin.put_configuration("app", "db", obj(json!({"port": 5432}))).await.expect("put");
    let store = confo::Store::new(Arc::new(admin.clone()));
    store.set_schema("app", None, Some(json!({"type": "object"})), None).await.expect("schema");
    // The admin's writes read what they replace (the re-seal rule), which loaded the read
    // script: forgotten, so that the reader meets a server that does not know it.
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut raw(&server).await).await.expect("SCRIPT FLUSH");
    let backend = connect(&url).await;
    let cold = client_commands(&server, async {
        assert_eq!(backend.load_configuration("app", "db").await.expect("get").expect("db").value["port"], json!(5432));
    })
    .await;
    assert_eq!(cold, ["EVALSHA_RO", "EVAL_RO"], "a script the server does not know is sent whole, never loaded");
    let warm = client_commands(&server, async {
        backend.load_configuration("app", "db").await.expect("get");
    })
    .await;
    assert_eq!(warm, ["EVALSHA_RO"], "a point read is one command");
    assert_eq!(backend.load_namespace("app").await.expect("load").len(), 1);
    assert_eq!(backend.configuration_history("app", "db").await.expect("history").revisions.len(), 1);
    assert!(backend.schema_document(&backend.namespace("app").expect("name")).await.expect("schema").is_some());
    // Watching: the reader sees the admin's change.
    let mut watcher =
        confo::Watcher::new(Arc::new(backend.clone()), "app", None, Default::default()).await.expect("watch");
    admin.put_configuration("app", "db", obj(json!({"port": 6432}))).await.expect("put");
    let event = watcher.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.value.expect("value")["port"], json!(6432));
    // Writing is refused, and nothing changes.
    let err = backend.put_configuration("app", "db", obj(json!({"port": 1}))).await.expect_err("read only");
    assert_eq!(err.kind(), confo::ErrorKind::Unauthorized, "{err}");
    let err = backend.create_namespace("other").await.expect_err("read only");
    assert_eq!(err.kind(), confo::ErrorKind::Unauthorized, "{err}");
    assert_eq!(admin.load_configuration("app", "db").await.expect("get").expect("db").value["port"], json!(6432));
}

/// A read-only replica serves every read (the read scripts are flagged `no-writes`) and
/// notifications (the master's events are replicated); a write through it is refused.
#[tokio::test]
async fn a_read_only_replica_serves_reads() {
    let master = RedisServer::start().expect("master");
    let master_port = master.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]).expect("replica");
    let admin = connect(&master.url()).await;
    admin.create_namespace("app").await.expect("create");
    admin.put_configuration("app", "db", obj(json!({"port": 5432}))).await.expect("put");
    let backend = connect(&replica.url()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let data = loop {
        match backend.load_namespace("app").await {
            Ok(data) if data.contains_key("db") => break data,
            other if Instant::now() < deadline => {
                let _ = other;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the replica never served the namespace: {other:?}"),
        }
    };
    assert!(data.corrupt.is_empty());
    assert_eq!(backend.load_configuration("app", "db").await.expect("get").expect("db").value["port"], json!(5432));
    assert_eq!(backend.list_namespaces().await.expect("list"), ["app"]);
    let mut watcher =
        confo::Watcher::new(Arc::new(backend.clone()), "app", None, Default::default()).await.expect("watch");
    admin.put_configuration("app", "db", obj(json!({"port": 6432}))).await.expect("put");
    let event = watcher.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.value.expect("value")["port"], json!(6432));
    let err = backend.put_configuration("app", "db", obj(json!({"port": 1}))).await.expect_err("a replica");
    assert!(matches!(err.kind(), confo::ErrorKind::Unavailable | confo::ErrorKind::Unauthorized), "{err}");
}

/// A key of another type where confo's layout keeps a string or a stream (`HSET confo a b`) is
/// another program's data, named (corrupt: CLI exit 1), never "unavailable" (exit 5: retry).
#[tokio::test]
async fn a_key_of_another_type_is_foreign_data_not_an_outage() {
    let server = RedisServer::start().expect("redis-server");
    let mut r = raw(&server).await;
    let backend = connect(&server.url()).await;
    let _: i64 = redis::cmd("HSET").arg("confo").arg("a").arg("b").query_async(&mut r).await.expect("HSET");
    for err in [
        backend.list_namespaces().await.expect_err("foreign root"),
        backend.create_namespace("app").await.expect_err("foreign root"),
        backend.load_namespace("app").await.expect_err("foreign root"),
    ] {
        assert_eq!(err.kind(), confo::ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("key \"confo\""), "{err}");
    }
    let _: i64 = redis::cmd("DEL").arg("confo").query_async(&mut r).await.expect("DEL");
    backend.create_namespace("app").await.expect("create");
    backend.put_configuration("app", "db", obj(json!({"a": 1}))).await.expect("put");
    let _: i64 = redis::cmd("DEL").arg("confo-history:{app-db}").query_async(&mut r).await.expect("DEL");
    let _: i64 =
        redis::cmd("HSET").arg("confo-history:{app-db}").arg("a").arg("b").query_async(&mut r).await.expect("HSET");
    let _: i64 = redis::cmd("HSET").arg("confo-schema:app").arg("a").arg("b").query_async(&mut r).await.expect("HSET");
    let err = backend.configuration_history("app", "db").await.expect_err("foreign history");
    assert_eq!(err.kind(), confo::ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("confo-history:{app-db}"), "{err}");
    let err = backend.schema_document(&backend.namespace("app").expect("name")).await.expect_err("foreign schema");
    assert_eq!(err.kind(), confo::ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("confo-schema:app"), "{err}");
}
