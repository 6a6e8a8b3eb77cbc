//! The etcd backend against private etcd members started by the testkit.

use std::sync::Arc;
use std::time::Instant;

use confo::backend::etcd::{EtcdBackend, EtcdOptions};
use confo::{Backend, BackendExt, BackendKind, BackendSpec, Change, Confo, Error};
use confo_testkit::{EtcdCluster, EtcdServer};
use etcd_client as etcd;
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

async fn connect(url: &str) -> EtcdBackend {
    EtcdBackend::connect(EtcdOptions::from_url(url).expect("url")).await.expect("connect")
}

async fn raw(server: &EtcdServer) -> etcd::Client {
    etcd::Client::connect([format!("http://{}", server.endpoint())], None).await.expect("raw client")
}

mod conformance {
    use super::*;

    async fn make() -> (EtcdServer, Arc<dyn Backend>) {
        let server = EtcdServer::start().expect("etcd");
        let backend = connect(&format!("etcd://{}?history_keep=500", server.endpoint())).await;
        (server, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod live {
    use super::*;

    async fn make() -> (EtcdServer, Arc<dyn Backend>, Arc<dyn Backend>) {
        let server = EtcdServer::start().expect("etcd");
        let url = format!("etcd://{}", server.endpoint());
        let (a, b) = (connect(&url).await, connect(&url).await);
        (server, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}

#[tokio::test]
async fn layout_key_by_key() {
    let server = EtcdServer::start().expect("etcd");
    let backend = connect(&format!("etcd://{}", server.endpoint())).await;
    let mut r = raw(&server).await;
    backend.create_namespace("sales").await.expect("create");
    backend.put_configuration("sales", "database", obj(json!({"host": "h", "port": 5432}))).await.expect("put");
    let all = r.get("/confo", Some(etcd::GetOptions::new().with_prefix())).await.expect("get");
    let keys: Vec<(&str, &str)> =
        all.kvs().iter().map(|kv| (kv.key_str().expect("key"), kv.value_str().expect("value"))).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(&keys[1..], [("/confo-namespaces/sales", ""), ("/confo/sales/database", r#"{"host":"h","port":5432}"#)]);
    // The revision, outside the configurations' prefix, written in the same transaction.
    let (history_key, record) = keys[0];
    assert_eq!(history_key, "/confo-history/sales/database/0000000001");
    assert!(record.contains(r#""op":"create""#) && record.contains(r#""value":{"host":"h","port":5432}"#), "{record}");
    assert_eq!(all.kvs()[0].mod_revision(), all.kvs()[2].mod_revision(), "one transaction");
    let only_configs = r.get("/confo/", Some(etcd::GetOptions::new().with_prefix())).await.expect("get");
    assert_eq!(only_configs.kvs().len(), 1, "`etcdctl get --prefix /confo/` shows configurations only");
    let stored = backend.load_configuration("sales", "database").await.expect("load").expect("exists");
    assert_eq!(
        stored.version.to_string(),
        only_configs.kvs()[0].mod_revision().to_string(),
        "versions are mod revisions"
    );
    backend.delete_namespace("sales").await.expect("delete");
    let left = r.get("/confo", Some(etcd::GetOptions::new().with_prefix())).await.expect("get");
    let left: Vec<&str> = left.kvs().iter().map(|kv| kv.key_str().expect("key")).collect();
    assert_eq!(left, ["/confo-history/sales/database/0000000001"], "only the history outlives the namespace");
}

#[tokio::test]
async fn corrupt_values_name_the_key_and_oversize_is_refused() {
    let server = EtcdServer::start().expect("etcd");
    let backend = connect(&format!("etcd://{}", server.endpoint())).await;
    let mut r = raw(&server).await;
    backend.create_namespace("ns").await.expect("create");
    r.put("/confo/ns/good", r#"{"v": 1}"#, None).await.expect("put");
    r.put("/confo/ns/bad", "{nope", None).await.expect("put");
    r.put("/confo/ns/list", "[1]", None).await.expect("put");
    let err = backend.load_namespace("ns").await.expect("read").corruption_error().expect("corrupt");
    let Error::Corrupt { corruptions } = &err else { panic!("{err:?}") };
    assert_eq!(corruptions.len(), 2);
    assert!(err.to_string().contains("\"/confo/ns/bad\"") && err.to_string().contains("\"/confo/ns/list\""), "{err}");
    confo::conformance::corrupt_entries_block_only_themselves(
        Arc::new(backend.clone()),
        "ns",
        "bad",
        "list",
        "/confo/ns/bad",
    )
    .await;
    r.delete("/confo/ns/other", None).await.expect("delete");
    r.delete("/confo/ns/bad", None).await.expect("delete");
    let report = backend.write("ns", &[Change::put("big", obj(json!({"blob": "x".repeat(1_500_000)})))]).await;
    assert!(matches!(report.error, Some(Error::TooLarge { .. })), "{:?}", report.error);
    assert_eq!(backend.load_namespace("ns").await.expect("load").len(), 1, "nothing written");
}

/// Large batches are split into transactions of at most 127 changes; a namespace larger than
/// one page reads back whole.
#[tokio::test]
async fn large_namespaces_in_transactions_and_pages() {
    let server = EtcdServer::start().expect("etcd");
    let backend = connect(&format!("etcd://{}", server.endpoint())).await;
    backend.create_namespace("large").await.expect("create");
    let n = 5000;
    let changes: Vec<Change> =
        (0..n).map(|i| Change::put(format!("c{i:05}"), obj(json!({"i": i, "pad": "p".repeat(200)})))).collect();
    let started = Instant::now();
    assert_eq!(backend.write("large", &changes).await.into_result().expect("write").len(), n);
    let persisted = started.elapsed();
    let started = Instant::now();
    let data = backend.load_namespace("large").await.expect("load");
    let loaded = started.elapsed();
    assert_eq!(data.len(), n);
    assert!((0..n).all(|i| data[&format!("c{i:05}")].value["i"] == json!(i)));
    // Read in compact form across the pages (and one value made unreadable): the same entries.
    raw(&server).await.put("/confo/large/c03000", "{oops", None).await.expect("put");
    let data = backend.load_namespace("large").await.expect("load");
    let compact = backend.load_namespace_compact("large").await.expect("load compact");
    assert_eq!((data.len(), compact.entries.len()), (n - 1, n - 1));
    for (name, value, version) in &compact.entries {
        assert!(value.same_as(&data[name.as_str()].value), "{name}");
        assert_eq!(*version, data[name.as_str()].version, "{name}");
    }
    assert_eq!(compact.corrupt, data.corrupt);
    assert_eq!(compact.corrupt.keys().collect::<Vec<_>>(), ["c03000"]);
    // A stale precondition anywhere in a multi-transaction batch writes nothing at all.
    let mut again: Vec<Change> = (0..300).map(|i| Change::put(format!("c{i:05}"), obj(json!({"i": -1})))).collect();
    again.push(Change::put("c04999", obj(json!({}))).when(confo::Precondition::Version(confo::Version::number(1))));
    let err = backend.write("large", &again).await.into_result().expect_err("conflict");
    assert!(err.is_conflict() && err.to_string().contains("c04999"), "{err}");
    assert_eq!(backend.load_namespace("large").await.expect("load")["c00000"].value["i"], json!(0));
    eprintln!("{n} configurations: persist {persisted:?}, reload {loaded:?}");
}

#[tokio::test]
async fn a_dead_endpoint_is_unavailable_within_seconds() {
    let port = confo_testkit::free_port();
    confo::conformance::a_dead_address_is_unavailable(&format!("etcd://root:dead-secret@127.0.0.1:{port}")).await;
}

/// Auth enabled by the test itself: a user with a role on the confo prefixes works, a wrong
/// password and a user without the role are `Unauthorized`.
#[tokio::test]
async fn authentication_and_roles() {
    let server = EtcdServer::start().expect("etcd");
    let mut admin = raw(&server).await;
    admin.user_add("root", "root-pw", None).await.expect("root");
    admin.user_grant_role("root", "root").await.expect("root role");
    admin.role_add("confo").await.expect("role");
    let range = etcd::Permission::read_write("/confo").with_prefix();
    admin.role_grant_permission("confo", range).await.expect("grant");
    admin.user_add("app", "app-pw", None).await.expect("app");
    admin.user_grant_role("app", "confo").await.expect("grant role");
    admin.user_add("nobody", "nobody-pw", None).await.expect("nobody");
    admin.role_add("confo-reader").await.expect("role");
    admin.role_grant_permission("confo-reader", etcd::Permission::read("/confo").with_prefix()).await.expect("grant");
    admin.user_add("reader", "reader-pw", None).await.expect("reader");
    admin.user_grant_role("reader", "confo-reader").await.expect("grant role");
    admin.auth_enable().await.expect("auth enable");

    let endpoint = server.endpoint();
    let app = connect(&format!("etcd://app:app-pw@{endpoint}")).await;
    app.create_namespace("secure").await.expect("create");
    app.put_configuration("secure", "db", obj(json!({"password": "x"}))).await.expect("put");
    for url in [
        format!("etcd://app:wrong@{endpoint}"),
        format!("etcd://nobody:nobody-pw@{endpoint}"),
        format!("etcd://{endpoint}"),
    ] {
        let err = EtcdBackend::connect(EtcdOptions::from_url(&url).expect("url")).await.expect_err("refused");
        assert!(matches!(err, Error::Unauthorized { .. }), "{url}: {err:?}");
        assert!(!format!("{err} {err:?}").contains("app-pw"));
    }
    // A read-only role reads, lists, watches, and reads history and schemas; its writes are
    // refused and change nothing.
    let store = confo::Store::new(Arc::new(app.clone()));
    store.set_schema("secure", None, Some(json!({"type": "object"})), None).await.expect("schema");
    let reader = connect(&format!("etcd://reader:reader-pw@{endpoint}")).await;
    assert_eq!(reader.list_namespaces().await.expect("list"), ["secure"]);
    assert_eq!(reader.load_namespace("secure").await.expect("load")["db"].value["password"], json!("x"));
    assert!(reader.load_configuration("secure", "db").await.expect("get").is_some());
    assert_eq!(reader.configuration_history("secure", "db").await.expect("history").revisions.len(), 1);
    assert!(reader.schema_document(&reader.namespace("secure").expect("name")).await.expect("schema").is_some());
    let mut watcher =
        confo::Watcher::new(Arc::new(reader.clone()), "secure", None, Default::default()).await.expect("watch");
    app.put_configuration("secure", "db", obj(json!({"password": "y"}))).await.expect("put");
    let event = watcher.next_timeout(std::time::Duration::from_secs(10)).await.expect("an event").expect("ok");
    assert_eq!(event.value.expect("value")["password"], json!("y"));
    let err = reader.put_configuration("secure", "db", obj(json!({"password": "z"}))).await.expect_err("read only");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(reader.create_namespace("other").await.is_err());
    assert_eq!(app.load_configuration("secure", "db").await.expect("get").expect("db").value["password"], json!("y"));
    let spec = BackendSpec::from_credentials(
        BackendKind::ETCD,
        &json!({"etcd_host": "127.0.0.1", "etcd_port": server.port().to_string(), "etcd_user": "app", "etcd_password": "app-pw"}),
    )
    .expect("spec");
    assert!(!format!("{spec} {spec:?}").contains("app-pw"));
    let confo = Confo::new();
    confo.load_backend("etcd", &spec).await.expect("load");
    confo.activate_backend("etcd").expect("activate");
    confo.use_namespace("secure").await.expect("use");
    assert_eq!(confo.get_field("db", "password").expect("get"), Some(json!("y")));
}

/// A 3-member cluster loses its leader while a client reads and writes in a loop: the client
/// goes on and every acknowledged write is there; the restarted member catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_every_acknowledged_write() {
    let mut cluster = EtcdCluster::start(3).expect("etcd cluster");
    let backend = connect(&format!("etcd://{}", cluster.endpoints())).await;
    backend.create_namespace("ha").await.expect("create");
    let leader = cluster.leader().expect("a leader");
    let outcome = confo::conformance::write_through_failover(&backend, "ha", || cluster.stop(leader)).await;
    let data = backend.load_namespace("ha").await.expect("load");
    cluster.restart(leader).expect("restart the old leader");
    let port = cluster.client_ports()[leader];
    let direct = connect(&format!("etcd://127.0.0.1:{port}")).await;
    assert_eq!(direct.load_namespace("ha").await.expect("load from the restarted member").len(), data.len());
    eprintln!("etcd failover: {outcome:?}");
}

/// The shared outage test: the watcher's only member is stopped while the others take a write,
/// then restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_misses_nothing_while_its_member_is_down() {
    struct StopOne(EtcdCluster);
    #[async_trait::async_trait]
    impl confo::conformance::Outage for StopOne {
        async fn down(&mut self) {
            self.0.stop(0);
        }
        async fn up(&mut self) {
            self.0.restart(0).expect("restart");
        }
    }
    let cluster = EtcdCluster::start(3).expect("etcd cluster");
    let ports = cluster.client_ports().to_vec();
    let writing = connect(&format!("etcd://127.0.0.1:{},127.0.0.1:{}", ports[1], ports[2])).await;
    let watching = connect(&format!("etcd://127.0.0.1:{}", ports[0])).await;
    let mut outage = StopOne(cluster);
    confo::conformance::watch_misses_nothing_while_down(Arc::new(watching), Arc::new(writing), &mut outage).await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let server = EtcdServer::start().expect("etcd");
    let backend = connect(&format!("etcd://{}", server.endpoint())).await;
    let ns = confo::conformance::store_a_secret(Arc::new(backend)).await;
    let response = raw(&server).await.get(format!("/confo/{ns}/db"), None).await.expect("get");
    confo::conformance::assert_no_plaintext(response.kvs()[0].value());
}

#[tokio::test]
async fn history_retention() {
    let server = EtcdServer::start().expect("etcd");
    let backend = connect(&format!("etcd://{}?history_keep=3", server.endpoint())).await;
    confo::conformance::history_retention_keeps_the_newest(Arc::new(backend)).await;
}
