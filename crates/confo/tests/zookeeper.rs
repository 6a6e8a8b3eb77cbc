//! The ZooKeeper backend against private ZooKeeper servers started by the testkit. Tests share
//! one standalone server, each under a chroot of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confo::backend::zookeeper::{ZkBackend, ZkOptions};
use confo::conformance::unique_namespace;
use confo::{Backend, BackendExt, BackendKind, BackendSpec, Change, Confo, Error};
use confo_testkit::{ZkEnsemble, ZkServer};
use serde_json::{json, Value};
use zookeeper_client as zk;

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

/// The shared server and a chroot no other test uses.
fn server_and_chroot() -> (Arc<ZkServer>, String) {
    (ZkServer::shared().expect("zookeeper"), format!("/{}", unique_namespace("t")))
}

async fn connect(url: &str) -> ZkBackend {
    ZkBackend::connect(ZkOptions::from_url(url).expect("url")).await.expect("connect")
}

async fn raw(server: &ZkServer) -> zk::Client {
    zk::Client::connect(&server.connect_string()).await.expect("raw client")
}

async fn raw_as(server: &ZkServer, user: &str, password: &str) -> zk::Client {
    zk::Client::connector()
        .with_auth("digest", format!("{user}:{password}").as_bytes())
        .connect(&server.connect_string())
        .await
        .expect("raw client")
}

mod conformance {
    use super::*;

    async fn make() -> (Arc<ZkServer>, Arc<dyn Backend>) {
        let (server, chroot) = server_and_chroot();
        let backend = connect(&format!("zk://{}{chroot}?history_keep=500", server.connect_string())).await;
        (server, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

#[tokio::test]
async fn layout_node_by_node() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    let r = raw(&server).await;
    // Connecting and reading write nothing: the root is made by the first namespace.
    assert!(backend.list_namespaces().await.expect("list").is_empty());
    assert!(r.check_stat(&format!("{chroot}/confo")).await.expect("stat").is_none(), "nothing made by reading");
    backend.create_namespace("sales").await.expect("create");
    let (root_data, _) = r.get_data(&format!("{chroot}/confo")).await.expect("root");
    assert!(root_data.is_empty());
    let (ns_data, _) = r.get_data(&format!("{chroot}/confo/sales")).await.expect("namespace node");
    assert!(ns_data.is_empty(), "a namespace node holds no data");
    backend.put_configuration("sales", "database", obj(json!({"host": "127.0.0.1", "port": 5432}))).await.expect("put");
    let (data, stat) = r.get_data(&format!("{chroot}/confo/sales/database")).await.expect("config node");
    assert_eq!(String::from_utf8(data).expect("utf-8"), r#"{"host":"127.0.0.1","port":5432}"#);
    let stored = backend.load_configuration("sales", "database").await.expect("load").expect("exists");
    assert_eq!(stored.version.to_string(), stat.version.to_string(), "versions are stat versions");
    assert_eq!(r.list_children(&format!("{chroot}/confo")).await.expect("children"), ["sales"]);
    backend.delete_configuration("sales", "database").await.expect("delete");
    assert_eq!(r.check_stat(&format!("{chroot}/confo/sales/database")).await.expect("stat"), None);
    backend.delete_namespace("sales").await.expect("delete ns");
    assert!(r.list_children(&format!("{chroot}/confo")).await.expect("children").is_empty());
}

/// A namespace large enough to be parsed on several threads reads every value, version and
/// corrupt entry as a small one does, each under its own name.
#[tokio::test]
async fn a_large_namespace_is_parsed_in_parallel_and_read_exactly() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    let r = raw(&server).await;
    backend.create_namespace("big").await.expect("create");
    let changes: Vec<confo::Change> = (0..1500)
        .map(|i| confo::Change::put(format!("c{i:04}"), obj(json!({"i": i, "name": format!("c{i:04}")}))))
        .collect();
    backend.write("big", &changes).await.into_result().expect("write");
    // Rewritten by hand: versions differ, and two entries become unreadable.
    for i in [7, 700, 1499] {
        r.set_data(&format!("{chroot}/confo/big/c{i:04}"), format!(r#"{{"i": {i}, "again": true}}"#).as_bytes(), None)
            .await
            .expect("set");
    }
    r.set_data(&format!("{chroot}/confo/big/c0100"), b"{not json", None).await.expect("set");
    r.set_data(&format!("{chroot}/confo/big/c1200"), b"[1]", None).await.expect("set");
    let data = backend.load_namespace("big").await.expect("load");
    assert_eq!(data.len(), 1498, "every readable one");
    for i in (0..1500).filter(|i| *i != 100 && *i != 1200) {
        let name = format!("c{i:04}");
        let stored = &data[name.as_str()];
        assert_eq!(stored.value["i"], json!(i), "{name} holds its own value");
        let rewritten = [7, 700, 1499].contains(&i);
        assert_eq!(stored.value.contains_key("again"), rewritten, "{name}");
        assert_eq!(stored.version.to_string(), if rewritten { "1" } else { "0" }, "{name}'s stat version");
    }
    let corrupt: Vec<&String> = data.corrupt.keys().collect();
    assert_eq!(corrupt, ["c0100", "c1200"]);
    assert!(
        data.corrupt["c0100"].corruption.location.ends_with("/confo/big/c0100"),
        "{}",
        data.corrupt["c0100"].corruption
    );
    // Read in compact form (made compact on the parsing threads): the same entries.
    let compact = backend.load_namespace_compact("big").await.expect("load compact");
    assert_eq!(compact.entries.len(), 1498);
    for (name, value, version) in &compact.entries {
        assert!(value.same_as(&data[name.as_str()].value), "{name}");
        assert_eq!(*version, data[name.as_str()].version, "{name}");
    }
    assert_eq!(compact.corrupt, data.corrupt);
}

#[tokio::test]
async fn foreign_and_corrupt_data() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    let r = raw(&server).await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    // As `zkCli.sh create /confo/sales/db '{"host": "x"}'` would leave it.
    r.mkdir(&format!("{chroot}/confo/sales"), &open).await.expect("create");
    r.create(&format!("{chroot}/confo/sales/db"), br#"{"host": "x", "port": 1}"#, &open).await.expect("create");
    r.create(&format!("{chroot}/confo/sales/empty"), b"", &open).await.expect("create");
    let data = backend.load_namespace("sales").await.expect("load");
    assert_eq!(*data["db"].value, obj(json!({"host": "x", "port": 1})));
    assert!(data["empty"].value.is_empty(), "empty data reads as {{}}, as confo does");

    r.create(&format!("{chroot}/confo/sales/broken"), b"{not json", &open).await.expect("create");
    r.create(&format!("{chroot}/confo/sales/list"), b"[1]", &open).await.expect("create");
    let err = backend.load_namespace("sales").await.expect("read").corruption_error().expect("corrupt");
    let Error::Corrupt { corruptions } = &err else { panic!("{err:?}") };
    assert_eq!(corruptions.len(), 2);
    assert!(err.to_string().contains(&format!("{chroot}/confo/sales/broken")), "{err}");
    assert!(err.to_string().contains(&format!("{chroot}/confo/sales/list")), "{err}");
    r.create(&format!("{chroot}/confo/sales/good"), br#"{"v": 1}"#, &open).await.expect("create");
    let location = format!("{chroot}/confo/sales/broken");
    confo::conformance::corrupt_entries_block_only_themselves(Arc::new(backend), "sales", "broken", "list", &location)
        .await;
}

#[tokio::test]
async fn oversize_data_is_refused_before_it_is_sent() {
    let (server, chroot) = server_and_chroot();
    // Without history, the limit is the server's request size (less room for the request).
    let backend = connect(&format!("zk://{}{chroot}?history=off", server.connect_string())).await;
    backend.create_namespace("big").await.expect("create");
    let huge = obj(json!({"blob": "x".repeat(1_100_000)}));
    let report = backend.write("big", &[Change::put("small", obj(json!({}))), Change::put("huge", huge)]).await;
    assert!(report.applied.is_empty());
    let err = report.error.expect("refused");
    assert!(matches!(err, Error::TooLarge { size, limit, .. } if size > 1_100_000 && limit == 1_000_000), "{err:?}");
    assert!(backend.load_namespace("big").await.expect("load").is_empty(), "nothing written");
    // Just under the limit goes through.
    backend.put_configuration("big", "fits", obj(json!({"blob": "x".repeat(990_000)}))).await.expect("fits");
    // With history, the value and its revision share one request: half the room.
    let recorded = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    let err = recorded.put_configuration("big", "half", obj(json!({"blob": "x".repeat(500_000)}))).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 480_000, .. }), "{err:?}");
    recorded.put_configuration("big", "half", obj(json!({"blob": "x".repeat(470_000)}))).await.expect("fits");
    assert_eq!(recorded.configuration_history("big", "half").await.expect("history").revisions.len(), 1);
}

#[tokio::test]
async fn acl_creator_only_and_world_read() {
    let (server, chroot) = server_and_chroot();
    let cs = server.connect_string();
    let owner = connect(&format!("zk://app:s3cret@{cs}{chroot}")).await;
    owner.create_namespace("private").await.expect("create");
    owner.put_configuration("private", "db", obj(json!({"password": "x"}))).await.expect("put");

    let anonymous = raw(&server).await;
    let path = format!("{chroot}/confo/private/db");
    assert_eq!(anonymous.get_data(&path).await.expect_err("no read"), zk::Error::NoAuth);
    assert_eq!(anonymous.set_data(&path, b"{}", None).await.expect_err("no write"), zk::Error::NoAuth);
    assert_eq!(anonymous.delete(&path, None).await.expect_err("no delete"), zk::Error::NoAuth);
    let intruder = raw_as(&server, "app", "wrong").await;
    assert_eq!(intruder.get_data(&path).await.expect_err("no read"), zk::Error::NoAuth);

    let wrong = ZkBackend::connect(ZkOptions::from_url(&format!("zk://app:wrong@{cs}{chroot}")).expect("url")).await;
    let err = wrong.expect_err("wrong password");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("wrong@"), "{err}");

    // world-read: anyone reads, only the owner writes.
    let (_, chroot2) = server_and_chroot();
    let shared = connect(&format!("zk://app:s3cret@{cs}{chroot2}?acl=world-read")).await;
    shared.create_namespace("public").await.expect("create");
    shared.put_configuration("public", "flags", obj(json!({"on": true}))).await.expect("put");
    let path = format!("{chroot2}/confo/public/flags");
    assert!(anonymous.get_data(&path).await.is_ok());
    assert_eq!(anonymous.set_data(&path, b"{}", None).await.expect_err("no write"), zk::Error::NoAuth);

    // The credentials dictionary, with the port as a number and a user (Python confo crashes).
    let (host, port) = cs.split_once(':').expect("host:port");
    let spec = BackendSpec::from_credentials(
        BackendKind::ZOOKEEPER,
        &json!({"zookeeper_host": host, "zookeeper_port": port.parse::<u16>().expect("port"),
                "zookeeper_user": "app", "zookeeper_passwd": "s3cret", "zookeeper_chroot": chroot}),
    )
    .expect("spec");
    assert!(!format!("{spec} {spec:?}").contains("s3cret"));
    let confo = Confo::new();
    confo.load_backend("zk", &spec).await.expect("load");
    confo.activate_backend("zk").expect("activate");
    confo.use_namespace("private").await.expect("use");
    assert_eq!(confo.get_field("db", "password").expect("get"), Some(json!("x")));
}

/// An unauthenticated client squats the nodes an authenticated user will use: pre-created
/// world-open namespace and configuration, and a re-created configuration under a world-open
/// namespace. With credentials, every one of them is refused, naming the path and its ACL.
#[tokio::test]
async fn nodes_that_others_may_change_are_refused_with_credentials() {
    let (server, chroot) = server_and_chroot();
    let cs = server.connect_string();
    let attacker = raw(&server).await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let refused = |err: Error, path: &str| {
        let text = err.to_string();
        assert!(matches!(err, Error::Insecure { .. }), "{err:?}");
        assert!(text.contains(&format!("{path} ")) && text.contains("world:anyone=ALL"), "{text}");
        assert!(!text.contains("pw@"), "{text}");
    };

    // 1. The issue's squat: /<chroot>/confo/payments/db pre-created world-open before alice
    //    ever used the chroot. Refused at the first use: the root and the namespace are not hers.
    attacker.mkdir(&format!("{chroot}/confo/payments/db"), &open).await.expect("squat");
    attacker.set_data(&format!("{chroot}/confo/payments/db"), br#"{"key":"attacker-key"}"#, None).await.expect("set");
    let alice_url = format!("zk://alice:pw@{cs}{chroot}");
    let squatted = connect(&alice_url).await;
    refused(squatted.list_namespaces().await.expect_err("refused"), &format!("{chroot}/confo"));
    refused(squatted.load_namespace("payments").await.expect_err("refused"), &format!("{chroot}/confo/payments"));
    refused(squatted.create_namespace("orders").await.expect_err("refused"), &format!("{chroot}/confo"));
    // The same squat is used when the spec trusts foreign ACLs.
    let trusting = connect(&format!("{alice_url}?foreign_acls=trust")).await;
    assert_eq!(trusting.load_namespace("payments").await.expect("trusted")["db"].value["key"], json!("attacker-key"));
    // Without credentials nothing is checked (Python confo's open tree).
    assert!(connect(&format!("zk://{cs}{chroot}")).await.load_namespace("payments").await.is_ok());

    // 2. A root of alice's whose ACL was later opened: a namespace squatted there is refused on
    //    create, read and write, and nothing is written into it.
    let (_, chroot) = server_and_chroot();
    let alice = connect(&format!("zk://alice:pw@{cs}{chroot}")).await;
    alice.create_namespace("first").await.expect("the root, hers");
    let alice_raw = raw_as(&server, "alice", "pw").await;
    let world_all = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())];
    alice_raw.set_acl(&format!("{chroot}/confo"), &world_all, None).await.expect("open the root");
    let ns_path = format!("{chroot}/confo/payments");
    attacker.create(&ns_path, b"", &open).await.expect("squat ns");
    attacker.create(&format!("{ns_path}/db"), br#"{"key":"attacker-key"}"#, &open).await.expect("squat");
    // (Creating is refused at the root first: it lets others change it now.)
    refused(alice.create_namespace("payments").await.expect_err("ns create refused"), &format!("{chroot}/confo"));
    refused(alice.load_namespace("payments").await.expect_err("read refused"), &ns_path);
    let report = alice.write("payments", &[Change::put("api", obj(json!({"token": "t0p"})))]).await;
    refused(report.error.expect("write refused"), &ns_path);
    assert!(report.applied.is_empty());
    assert_eq!(attacker.list_children(&ns_path).await.expect("list"), ["db"], "nothing written into it");

    // 3. A namespace of alice's reads (her root closed again); a configuration whose ACL was
    //    opened is refused.
    let hers = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", ""))];
    alice_raw.set_acl(&format!("{chroot}/confo"), &hers, None).await.expect("close the root");
    alice.create_namespace("orders").await.expect("create");
    alice.put_configuration("orders", "api", obj(json!({"token": "t0p"}))).await.expect("put");
    assert_eq!(alice.load_namespace("orders").await.expect("load")["api"].value["token"], json!("t0p"));
    alice_raw.set_acl(&format!("{chroot}/confo/orders/api"), &world_all, None).await.expect("acl");
    refused(alice.load_namespace("orders").await.expect_err("refused"), &format!("{chroot}/confo/orders/api"));

    // 4. A chroot in ZooKeeper's own tree is refused by the spec.
    let err = format!("zk://alice:pw@{cs}/zookeeper/x").parse::<BackendSpec>().expect_err("refused");
    assert!(matches!(err, Error::InvalidSpec { .. }), "{err:?}");
}

/// Python confo's persist(namespace) re-reads the namespace first, so new configurations fail
/// and edits revert. Ours writes both.
#[tokio::test]
async fn namespace_persist_writes_new_and_edited_configurations() {
    let (server, chroot) = server_and_chroot();
    let url = format!("zk://{}{chroot}", server.connect_string());
    let confo = Confo::new();
    confo.load_backend("zk", &url.parse().expect("spec")).await.expect("load");
    confo.activate_backend("zk").expect("activate");
    confo.create_namespace("systemA").await.expect("create");
    confo.use_namespace("systemA").await.expect("use");
    confo.set("database", "host", "old").expect("set");
    confo.persist().await.expect("persist");
    confo.set("database", "host", "new").expect("edit");
    confo.set("cache", "ttl", 30).expect("new configuration");
    assert_eq!(confo.persist_namespace("systemA").await.expect("persist ns"), ["systemA/cache", "systemA/database"]);
    let backend = connect(&url).await;
    let data = backend.load_namespace("systemA").await.expect("load");
    assert_eq!(data["database"].value["host"], json!("new"));
    assert_eq!(data["cache"].value["ttl"], json!(30));
}

/// Reads and writes of large namespaces go through batched `multi` requests.
#[tokio::test]
async fn large_namespaces_round_trip_in_batches() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    backend.create_namespace("large").await.expect("create");
    let n = 2500;
    let value = |i: usize| obj(json!({"i": i, "host": format!("db{i}.internal"), "pad": "p".repeat(200)}));
    let changes: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i:05}"), value(i))).collect();
    let started = Instant::now();
    let applied = backend.write("large", &changes).await.into_result().expect("write");
    let persisted = started.elapsed();
    assert_eq!(applied.len(), n);
    let started = Instant::now();
    let data = backend.load_namespace("large").await.expect("load");
    let loaded = started.elapsed();
    assert_eq!(data.len(), n);
    assert!((0..n).all(|i| *data[&format!("c{i:05}")].value == value(i)));
    // A second write of all of them updates (set_data) rather than creates.
    let again: Vec<Change> = (0..n).map(|i| Change::put(format!("c{i:05}"), obj(json!({"i": i + 1})))).collect();
    backend.write("large", &again).await.into_result().expect("rewrite");
    assert_eq!(backend.load_namespace("large").await.expect("load")["c00007"].value["i"], json!(8));
    eprintln!("{n} configurations: persist {persisted:?}, reload {loaded:?}");
}

#[tokio::test]
async fn a_dead_address_is_unavailable_within_seconds() {
    let port = confo_testkit::free_port();
    confo::conformance::a_dead_address_is_unavailable(&format!("zk://app:dead-secret@127.0.0.1:{port}")).await;
}

/// The server goes away for longer than the session timeout: reads keep coming from the
/// cache, writes are `Unavailable`, and once it is back the same manager makes a new session.
#[tokio::test]
async fn survives_session_expiry() {
    let mut server = ZkServer::start().expect("zookeeper");
    let url = format!("zk://{}/expiry?session_timeout_ms=1500", server.connect_string());
    let confo = Confo::new();
    confo.load_backend("zk", &url.parse().expect("spec")).await.expect("load");
    confo.activate_backend("zk").expect("activate");
    confo.create_namespace("ns").await.expect("create");
    confo.use_namespace("ns").await.expect("use");
    confo.set("c", "v", 1).expect("set");
    confo.persist().await.expect("persist");

    server.stop();
    assert_eq!(confo.get_field("c", "v").expect("cached"), Some(json!(1)));
    confo.set("c", "v", 2).expect("set");
    let started = Instant::now();
    assert!(confo.persist().await.expect_err("server is down").is_unavailable());
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await; // longer than the session timeout
    server.restart().expect("restart");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match confo.persist().await {
            Ok(written) => {
                assert_eq!(written, ["ns/c"]);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("never recovered: {e}"),
        }
    }
    confo.reload().await.expect("reload");
    assert_eq!(confo.get_field("c", "v").expect("get"), Some(json!(2)));
}

/// A 3-node ensemble loses its leader while a client reads and writes in a loop: the client
/// goes on through another server and every acknowledged write is there; the restarted node
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_failover_keeps_every_acknowledged_write() {
    let mut ensemble = ZkEnsemble::start(3).expect("zookeeper ensemble");
    let url = format!("zk://{}/ha", ensemble.connect_string());
    let backend = connect(&url).await;
    backend.create_namespace("ha").await.expect("create");
    let leader = ensemble.leader().expect("a leader");
    let outcome = confo::conformance::write_through_failover(&backend, "ha", || ensemble.stop(leader)).await;
    let data = backend.load_namespace("ha").await.expect("load");
    ensemble.restart(leader).expect("restart the old leader");
    let port = ensemble.client_ports()[leader];
    let direct = zk::Client::connect(&format!("127.0.0.1:{port}")).await.expect("the restarted node");
    direct.sync("/ha/confo/ha").await.expect("sync");
    let children = direct.list_children("/ha/confo/ha").await.expect("children");
    assert_eq!(children.len(), data.len(), "the restarted node caught up");
    eprintln!("ensemble failover: {outcome:?}");
}

mod live {
    use super::*;

    async fn make() -> (Arc<ZkServer>, Arc<dyn Backend>, Arc<dyn Backend>) {
        let (server, chroot) = server_and_chroot();
        let url = format!("zk://{}{chroot}", server.connect_string());
        let a = connect(&url).await;
        let b = connect(&url).await;
        (server, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}

/// A change by a plain ZooKeeper client (as `zkCli.sh set` makes it) is reported.
#[tokio::test]
async fn watch_sees_changes_by_other_clients() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}", server.connect_string())).await;
    backend.create_namespace("ns").await.expect("create");
    backend.put_configuration("ns", "c", obj(json!({"v": 1}))).await.expect("put");
    let confo = Confo::new();
    confo.add_backend("zk", Arc::new(backend)).await.expect("add");
    confo.activate_backend("zk").expect("activate");
    let mut watcher = confo.watch("ns", Some("c")).await.expect("watch");
    let r = raw(&server).await;
    r.set_data(&format!("{chroot}/confo/ns/c"), br#"{"v": 2}"#, None).await.expect("raw set");
    let event = watcher.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.kind, confo::EventKind::Changed);
    assert_eq!(event.value.expect("value")["v"], json!(2));
}

/// The shared outage test: the watcher's only server of an ensemble is stopped while the other
/// two take a write, then restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_misses_nothing_while_its_server_is_down() {
    struct StopOne(ZkEnsemble);
    #[async_trait::async_trait]
    impl confo::conformance::Outage for StopOne {
        async fn down(&mut self) {
            self.0.stop(0);
        }
        async fn up(&mut self) {
            self.0.restart(0).expect("restart");
        }
    }
    let ensemble = ZkEnsemble::start(3).expect("zookeeper ensemble");
    let ports = ensemble.client_ports().to_vec();
    let writing = connect(&format!("zk://127.0.0.1:{},127.0.0.1:{}/w", ports[1], ports[2])).await;
    // The watcher knows only node 0, with a session that outlives the outage.
    let watching = connect(&format!("zk://127.0.0.1:{}/w?session_timeout_ms=20000", ports[0])).await;
    let mut outage = StopOne(ensemble);
    confo::conformance::watch_misses_nothing_while_down(Arc::new(watching), Arc::new(writing), &mut outage).await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let server = ZkServer::start().expect("zookeeper");
    let backend = connect(&format!("zk://{}", server.connect_string())).await;
    let ns = confo::conformance::store_a_secret(Arc::new(backend)).await;
    let (bytes, _) = raw(&server).await.get_data(&format!("/confo/{ns}/db")).await.expect("getData");
    confo::conformance::assert_no_plaintext(&bytes);
}

#[tokio::test]
async fn history_retention() {
    let (server, chroot) = server_and_chroot();
    let backend = connect(&format!("zk://{}{chroot}?history_keep=3", server.connect_string())).await;
    confo::conformance::history_retention_keeps_the_newest(Arc::new(backend)).await;
}

/// Issue 33, items 1 and 2: an anonymous client pre-creates confo's metadata nodes world-open:
/// a forged revision 1 under `confo-history/pay/db` (that a rollback would write into alice's
/// node), and a schema for `pay` (that would decide what she may write). With credentials, both
/// are refused like a squatted configuration node; `check_acls` lists them as metadata and a
/// fix removes them (never adopts them); alice's own metadata then works.
#[tokio::test]
async fn squatted_history_and_schema_nodes_are_refused_and_removed_by_a_fix() {
    let (server, chroot) = server_and_chroot();
    let cs = server.connect_string();
    // Mallory, without credentials, squats before alice's first write: the history of
    // pay/db with a forged revision, and the schemas of `pay`.
    let mallory = raw(&server).await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let forged = format!("{chroot}/confo-history/pay/db");
    mallory.mkdir(&forged, &open).await.expect("squat history");
    let record = r#"{"n":1,"op":"create","actor":"alice","tool":"cli","host":"h","time":"2026-01-01T00:00:00Z","value":{"host":"attacker.example"}}"#;
    mallory.create(&format!("{forged}/v-0000000001"), record.as_bytes(), &open).await.expect("forged revision");
    let schemas = format!("{chroot}/confo-schemas");
    mallory.mkdir(&schemas, &open).await.expect("squat schemas");
    let schema = br#"{"schemas": {"*": {"schema": {"required": ["backdoor"]}, "mode": "enforce"}}}"#;
    mallory.create(&format!("{schemas}/pay"), schema, &open).await.expect("squat schema");
    let alice = connect(&format!("zk://alice:pw@{cs}{chroot}")).await;
    alice.create_namespace("pay").await.expect("create");
    // Refused: the forged history is not read (a rollback to it cannot happen), and the
    // squatted schema decides nothing: the write is refused as insecure, not by the schema.
    let err = alice.configuration_history("pay", "db").await.expect_err("squatted history");
    assert_eq!(err.kind(), confo::ErrorKind::Insecure, "{err}");
    let err = alice.put_configuration("pay", "db", obj(json!({"host": "h"}))).await.expect_err("squatted");
    assert_eq!(err.kind(), confo::ErrorKind::Insecure, "{err}");
    assert!(err.to_string().contains("confo-"), "names the node: {err}");
    // Listed as metadata; a fix removes them with what is below them.
    let found = alice.check_acls(false).await.expect("check");
    for path in [format!("{chroot}/confo-history"), schemas.clone(), forged.clone()] {
        assert!(found.iter().any(|f| f.metadata && f.path == path), "{path} not listed: {found:?}");
    }
    let fixed = alice.check_acls(true).await.expect("fix");
    assert!(fixed.iter().all(|f| f.fixed == Some(Ok(()))), "{fixed:?}");
    assert_eq!(mallory.check_stat(&forged).await.expect("exists"), None);
    assert_eq!(mallory.check_stat(&format!("{schemas}/pay")).await.expect("exists"), None);
    assert!(alice.check_acls(false).await.expect("check").is_empty());
    // Alice's writes and history work, her own; mallory cannot plant under them now.
    alice.put_configuration("pay", "db", obj(json!({"host": "h"}))).await.expect("write");
    let history = alice.configuration_history("pay", "db").await.expect("history");
    assert_eq!(history.revisions.len(), 1, "{history:?}");
    assert_eq!(history.revisions[0].value.as_deref().and_then(|v| v.get("host")), Some(&json!("h")));
    let planted = mallory.create(&format!("{forged}/v-0000000009"), record.as_bytes(), &open).await;
    assert!(planted.is_err(), "mallory created a revision under alice's history node");
}

/// A store confo 0.1.6.2 made (every node world-open) used with credentials: refused, and the
/// refusal names the way in; `check_acls` lists the nodes others may change and with `fix`
/// gives them the spec's ACL, after which the store is the identity's alone (old readers must
/// pass the same credentials, or read with acl=world-read). A node the identity may not change
/// (no ADMIN right) is reported, not skipped.
#[tokio::test]
async fn a_world_open_store_is_moved_to_credentials_by_fixing_its_acls() {
    let (server, chroot) = server_and_chroot();
    let cs = server.connect_string();
    // As confo 0.1.6.2 (and any client without credentials) makes it: world-open.
    let old = connect(&format!("zk://{cs}{chroot}")).await;
    old.create_namespace("pay").await.expect("create");
    old.put_configuration("pay", "db", obj(json!({"host": "db.internal"}))).await.expect("put");
    old.put_configuration("pay", "api", obj(json!({"token": "t"}))).await.expect("put");
    let alice = connect(&format!("zk://alice:pw@{cs}{chroot}")).await;
    let err = alice.load_namespace("pay").await.expect_err("refused");
    assert_eq!(err.kind(), confo::ErrorKind::Insecure, "{err}");
    assert!(err.to_string().contains("confo repair --fix-acls"), "the refusal names the way in: {err}");
    let found = alice.check_acls(false).await.expect("check");
    let paths: Vec<&str> = found.iter().filter(|f| !f.metadata).map(|f| f.path.as_str()).collect();
    let base = format!("{chroot}/confo");
    assert_eq!(paths, [base.clone(), format!("{base}/pay"), format!("{base}/pay/api"), format!("{base}/pay/db")]);
    assert!(found.iter().all(|f| f.acl == "world:anyone=ALL" && f.fixed.is_none()), "{found:?}");
    // The history the world-open writer recorded is listed as metadata: removed by a fix,
    // never adopted (its revisions are whoever wrote them's).
    let history = format!("{chroot}/confo-history");
    assert!(found.iter().any(|f| f.metadata && f.path == history), "{found:?}");
    // Fixed: each now has alice's ACL; her reads and writes work; nothing is left to fix.
    let fixed = alice.check_acls(true).await.expect("fix");
    assert!(fixed.iter().all(|f| f.fixed == Some(Ok(()))), "{fixed:?}");
    assert_eq!(raw(&server).await.check_stat(&history).await.expect("exists"), None, "the foreign history is gone");
    assert_eq!(alice.load_namespace("pay").await.expect("load")["db"].value["host"], json!("db.internal"));
    alice.put_configuration("pay", "db", obj(json!({"host": "db2"}))).await.expect("write");
    assert!(alice.check_acls(false).await.expect("check").is_empty());
    // An old reader without credentials is refused now; with alice's, it reads.
    let anonymous = raw(&server).await;
    assert_eq!(anonymous.get_data(&format!("{base}/pay/db")).await.expect_err("no credentials"), zk::Error::NoAuth);
    let with_credentials = raw_as(&server, "alice", "pw").await;
    assert!(with_credentials.get_data(&format!("{base}/pay/db")).await.is_ok());

    // A node someone else owns that lets others change it (mallory's, world-writable, but
    // only mallory may change its ACL): reported as not fixed, and the rest still fixed.
    let mallory = raw_as(&server, "mallory", "m").await;
    let node = format!("{base}/pay/squat");
    let acl = [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
        zk::Acl::new(zk::Permission::READ | zk::Permission::WRITE, zk::AuthId::anyone()),
    ];
    let mode = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
    let world_all = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone())];
    with_credentials.set_acl(&format!("{base}/pay"), &world_all, None).await.expect("reopen ns");
    mallory.create(&node, b"{}", &mode).await.expect("squat");
    let fixed = alice.check_acls(true).await.expect("fix");
    let squat = fixed.iter().find(|f| f.path == node).expect("the squat is found");
    assert!(matches!(&squat.fixed, Some(Err(why)) if why.contains("ADMIN")), "{squat:?}");
    assert!(fixed.iter().filter(|f| f.path != node).all(|f| f.fixed == Some(Ok(()))), "{fixed:?}");

    // With world-read, fixing keeps old readers reading without credentials.
    let (_, chroot) = server_and_chroot();
    let old = connect(&format!("zk://{cs}{chroot}")).await;
    old.create_namespace("pay").await.expect("create");
    old.put_configuration("pay", "db", obj(json!({"v": 1}))).await.expect("put");
    let bob = connect(&format!("zk://bob:pw@{cs}{chroot}?acl=world-read")).await;
    assert_eq!(bob.check_acls(true).await.expect("fix").iter().filter(|f| !f.metadata).count(), 3);
    assert!(anonymous.get_data(&format!("{chroot}/confo/pay/db")).await.is_ok(), "world-readable");
    assert_eq!(
        anonymous.set_data(&format!("{chroot}/confo/pay/db"), b"{}", None).await.expect_err("not writable"),
        zk::Error::NoAuth
    );
    // Without credentials there is nothing to check: said as a bad spec.
    let err = old.check_acls(false).await.expect_err("no credentials");
    assert_eq!(err.kind(), confo::ErrorKind::InvalidSpec, "{err}");
}

/// A reader identity allowed only to read: it trusts the writer's nodes when the spec names the
/// writer (`trusted=digest:writer`, or with its hash), and reads, lists, watches and reads
/// history and schemas without writing anything; without it, the writer's nodes are refused as
/// before. (ZooKeeper shows a reader only the user name of a digest ACL: the hash is masked.)
#[tokio::test]
async fn a_reader_identity_reads_what_the_writers_it_trusts_wrote() {
    let (server, chroot) = server_and_chroot();
    let cs = server.connect_string();
    let writer = connect(&format!("zk://writer:wpw@{cs}{chroot}?acl=world-read")).await;
    let reader_url = format!("zk://reader:rpw@{cs}{chroot}");
    // Before anything exists: connecting and listing make nothing.
    let early = connect(&reader_url).await;
    assert!(early.list_namespaces().await.expect("list").is_empty());
    assert!(raw(&server).await.check_stat(&format!("{chroot}/confo")).await.expect("stat").is_none());
    writer.create_namespace("app").await.expect("create");
    writer.put_configuration("app", "db", obj(json!({"port": 5432}))).await.expect("put");
    let store = confo::Store::new(Arc::new(writer.clone()));
    store.set_schema("app", None, Some(json!({"type": "object"})), None).await.expect("schema");
    let err = early.load_namespace("app").await.expect_err("not trusted");
    assert_eq!(err.kind(), confo::ErrorKind::Insecure, "{err}");

    let hash = {
        let digest = sha1_smol::Sha1::from("writer:wpw").digest().bytes();
        base64_std(&digest)
    };
    assert!(connect(&format!("{reader_url}?trusted=digest:writer:{hash}")).await.load_namespace("app").await.is_ok());
    let reader = connect(&format!("{reader_url}?trusted=digest:writer")).await;
    assert_eq!(reader.list_namespaces().await.expect("list"), ["app"]);
    assert_eq!(reader.load_namespace("app").await.expect("load")["db"].value["port"], json!(5432));
    assert!(reader.load_configuration("app", "db").await.expect("get").is_some());
    assert_eq!(reader.configuration_history("app", "db").await.expect("history").revisions.len(), 1);
    assert!(reader.schema_document(&reader.namespace("app").expect("name")).await.expect("schema").is_some());
    let mut watcher =
        confo::Watcher::new(Arc::new(reader.clone()), "app", None, Default::default()).await.expect("watch");
    writer.put_configuration("app", "db", obj(json!({"port": 6432}))).await.expect("put");
    let event = watcher.next_timeout(Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.value.expect("value")["port"], json!(6432));
    let err = reader.put_configuration("app", "db", obj(json!({"port": 1}))).await.expect_err("read only");
    assert_eq!(err.kind(), confo::ErrorKind::Unauthorized, "{err}");
    // The credentials dictionary's key, and a bare user name refused.
    let (host, port) = cs.split_once(':').expect("host:port");
    let credentials = json!({"zookeeper_host": host, "zookeeper_port": port, "zookeeper_user": "reader",
        "zookeeper_passwd": "rpw", "zookeeper_chroot": chroot, "zookeeper_trusted": format!("digest:writer:{hash}")});
    assert!(BackendSpec::from_credentials(BackendKind::ZOOKEEPER, &credentials).is_ok());
    for bad in ["writer", "digest:", "digest:writer:short"] {
        let err = format!("{reader_url}?trusted={bad}").parse::<BackendSpec>().expect_err("refused");
        assert_eq!(err.kind(), confo::ErrorKind::InvalidSpec, "{bad}: {err}");
    }
}

/// Standard base64 (ZooKeeper's digest ids).
fn base64_std(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { char::from(TABLE[(n >> shift) as usize & 63]) } else { '=' });
        }
    }
    out
}
