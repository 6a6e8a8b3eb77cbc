//! Last-known-good snapshots (`cache+<spec>`) against private Redis, ZooKeeper and etcd servers
//! that the tests stop and start again.

// Needs all three servers' engines (Cargo.toml's required-features; the test command builds
// with --all-features).
#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use confo::{BackendSpec, Confo, Error, Precondition, Store, WatchOptions};
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

/// One cache folder for this test binary (each server's snapshots have a folder of their own).
fn cache_home() -> &'static std::path::Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::env::set_var("XDG_CACHE_HOME", dir.path());
        std::env::remove_var("CONFO_SNAPSHOTS");
        dir
    })
    .path()
}

async fn open(spec: &str) -> Store {
    Store::open(&spec.parse::<BackendSpec>().expect("spec")).await.expect("open")
}

/// The whole story on one engine (`url` is its plain spec; `stop` and `restart` its server).
async fn walkthrough(url: &str, stop: impl FnOnce(), restart: impl FnOnce()) {
    let home = cache_home();
    let cached_spec = format!("cache+{url}");
    let namespace = confo::conformance::unique_namespace("lkg");
    let plain = open(url).await;
    plain.create_namespace(&namespace).await.expect("create");
    plain.put(&namespace, "db", obj(json!({"host": "h", "port": 1})), Precondition::Any).await.expect("put");
    // Numbers at the limits of JSON, to come back exactly from the snapshot.
    let limits = r#"{"big": 18446744073709551617, "neg": -170141183460469231731687303715884105729, "d": 0.30000000000000004, "huge": 1e400}"#;
    let limits: confo::Configuration = serde_json::from_str(limits).expect("json");
    plain.put(&namespace, "limits", limits.clone(), Precondition::Any).await.expect("put");

    // A load takes the snapshot: private, in a private folder, without credentials in its path.
    let cached = open(&cached_spec).await;
    let data = cached.load(&namespace).await.expect("load");
    assert!(data.from_snapshot.is_none());
    let dir = confo::backend::cache::snapshots_dir().expect("dir");
    assert!(dir.starts_with(home), "{}", dir.display());
    let id = confo::backend::cache::backend_id(&url.parse().expect("spec"));
    let file = dir.join(&id).join(format!("{namespace}.json"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "{}", file.display());
    assert_eq!(mode(&dir.join(&id)), 0o700);
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(snapshot["format"], json!(1));
    assert_eq!(snapshot["configurations"]["db"]["value"], json!({"host": "h", "port": 1}));
    // A write through the cache keeps the snapshot current.
    cached.put(&namespace, "db", obj(json!({"host": "h", "port": 2})), Precondition::Any).await.expect("put");

    stop();

    // A new process (a new backend) while the store is down: reads come from the snapshot.
    let down = open(&cached_spec).await;
    let data = down.load(&namespace).await.expect("served from the snapshot");
    let info = data.from_snapshot.clone().expect("says it came from the snapshot");
    assert!(info.age() < Duration::from_secs(60), "{info:?}");
    assert_eq!(data["db"].value["port"], json!(2));
    assert_eq!(*data["limits"].value, limits, "numbers at the limits come back exactly");
    let one = down.get(&namespace, "db").await.expect("point read").expect("there");
    assert_eq!(one.value["port"], json!(2));
    assert!(down.namespaces().await.expect("list").contains(&namespace));
    // Writes are refused, never queued.
    let err = down.put(&namespace, "db", obj(json!({"port": 3})), Precondition::Any).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    // Without the cache, the same read fails.
    assert!(Store::open(&url.parse::<BackendSpec>().expect("spec")).await.is_err_and(|e| e.is_unavailable()));
    // A snapshot older than the maximum age is refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let strict = open(&format!("{cached_spec}?snapshot_max_age=1s")).await;
    let err = strict.load(&namespace).await.unwrap_err();
    assert!(err.is_unavailable() && err.to_string().contains("older than snapshot_max_age"), "{err}");

    // A session started while the store is down serves the snapshot, then follows the store
    // once it is back.
    let session = Confo::new();
    session.load_backend("lkg", &cached_spec.parse().expect("spec")).await.expect("load backend");
    session.activate_backend("lkg").expect("activate");
    session.use_namespace(&namespace).await.expect("use");
    assert!(session.from_snapshot().expect("current").is_some());
    session.set_auto_refresh(true, WatchOptions::default()).await.expect("auto refresh");
    restart();
    let writer = open(url).await;
    // (A Redis without persistence comes back empty.)
    writer.create_namespace(&namespace).await.expect("create");
    writer.put(&namespace, "db", obj(json!({"host": "h", "port": 9})), Precondition::Any).await.expect("put");
    let deadline = Instant::now() + Duration::from_secs(20);
    while session.get_field("db", "port").expect("get") != Some(json!(9)) {
        assert!(Instant::now() < deadline, "the change made after the restart was not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(session.from_snapshot().expect("current").is_none());
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(snapshot["configurations"]["db"]["value"]["port"], json!(9), "the snapshot was refreshed");

    // A deleted namespace deletes its snapshot.
    open(&cached_spec).await.remove_namespace(&namespace, confo::Removal::Recursive).await.expect("rm");
    assert!(!file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serves_its_snapshot_while_down() {
    let mut server = confo_testkit::RedisServer::start().expect("redis-server");
    let url = server.url();
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(
        &url,
        || server.lock().expect("lock").stop(),
        || server.lock().expect("lock").restart().expect("restart"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_serves_its_snapshot_while_down() {
    let mut server = confo_testkit::ZkServer::start().expect("zookeeper");
    let url = format!("zk://{}", server.connect_string());
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(
        &url,
        || server.lock().expect("lock").stop(),
        || server.lock().expect("lock").restart().expect("restart"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_serves_its_snapshot_while_down() {
    let mut server = confo_testkit::EtcdServer::start().expect("etcd");
    let url = format!("etcd://{}", server.endpoint());
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(
        &url,
        || server.lock().expect("lock").stop(),
        || server.lock().expect("lock").restart().expect("restart"),
    )
    .await;
}

/// A store that refuses the credentials never falls back to a snapshot, even one that exists.
#[tokio::test]
async fn refused_credentials_never_fall_back() {
    cache_home();
    let server = confo_testkit::RedisServer::start_with(&["--requirepass", "right-pw"]).expect("redis-server");
    let port = server.port();
    let right = format!("cache+redis://:right-pw@127.0.0.1:{port}");
    let namespace = confo::conformance::unique_namespace("auth");
    let store = open(&right).await;
    store.create_namespace(&namespace).await.expect("create");
    store.put(&namespace, "db", obj(json!({"v": 1})), Precondition::Any).await.expect("put");
    store.load(&namespace).await.expect("load takes the snapshot");
    let wrong = format!("cache+redis://:wrong-pw@127.0.0.1:{port}");
    let err = match Store::open(&wrong.parse::<BackendSpec>().expect("spec")).await {
        Err(e) => e,
        Ok(store) => store.load(&namespace).await.expect_err("must not be served"),
    };
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!err.to_string().contains("wrong-pw") && !err.to_string().contains("right-pw"));
}

/// The options: `snapshots=on` in any spec or credentials, `CONFO_SNAPSHOTS=off`, and ids
/// without credentials.
#[test]
fn snapshots_are_asked_for_in_specs_and_credentials() {
    let spec: BackendSpec = "redis://127.0.0.1:6379?snapshots=on&history_keep=5".parse().expect("spec");
    assert_eq!(spec.to_string(), "cache+redis://127.0.0.1:6379/0?history_keep=5");
    let spec: BackendSpec = "cache+zk://127.0.0.1:2181?snapshot_max_age=10m".parse().expect("spec");
    assert_eq!(spec.to_string(), "cache+zk://127.0.0.1:2181?snapshot_max_age=600s");
    let creds = json!({"redis_host": "127.0.0.1", "redis_port": 6379, "snapshots": "on"});
    let spec = BackendSpec::from_credentials(confo::BackendKind::REDIS, &creds).expect("credentials");
    assert!(spec.to_string().starts_with("cache+redis://"), "{spec}");
    let err = "redis://h:1?snapshots=maybe".parse::<BackendSpec>().unwrap_err();
    assert!(err.to_string().contains("snapshots"), "{err}");
    let with_password: BackendSpec = "redis://app:hunter2@10.0.0.5:6379/2".parse().expect("spec");
    let id = confo::backend::cache::backend_id(&with_password);
    assert!(id.starts_with("redis_10.0.0.5_6379_2-") && !id.contains("app") && !id.contains("hunter2"), "{id}");
}

/// A server that accepts connections but never answers (hung, or still starting) is
/// unavailable too: once the connect timeout passes, the snapshot is served.
#[tokio::test]
async fn a_server_that_accepts_but_never_answers_falls_back_to_the_snapshot() {
    cache_home();
    let mut server = confo_testkit::RedisServer::start().expect("redis-server");
    let cached = format!("cache+{}", server.url());
    let namespace = confo::conformance::unique_namespace("silent");
    let store = open(&cached).await;
    store.create_namespace(&namespace).await.expect("create");
    store.put(&namespace, "db", obj(json!({"port": 1})), Precondition::Any).await.expect("put");
    store.load(&namespace).await.expect("load takes the snapshot");
    server.stop();
    // The port accepts (the kernel completes the handshake) and nothing ever answers.
    let _silent = std::net::TcpListener::bind(("127.0.0.1", server.port())).expect("bind the freed port");
    let started = Instant::now();
    let data = open(&cached).await.load(&namespace).await.expect("served from the snapshot");
    assert_eq!(data["db"].value["port"], json!(1));
    let info = data.from_snapshot.expect("from the snapshot");
    assert!(info.reason.contains("does not answer"), "{}", info.reason);
    assert!(started.elapsed() < Duration::from_secs(30), "bounded by the connect timeout: {:?}", started.elapsed());
}

/// The snapshot cache is a wrapper: it passes the shared conformance suite as every backend
/// does (over the file engine: each test's store in a folder of its own, so a cache of its own).
mod file_with_snapshots {
    use std::sync::Arc;

    use confo::Backend;

    async fn make() -> (confo_testkit::StoreDir, Arc<dyn Backend>) {
        super::cache_home();
        let dir = confo_testkit::store_dir().expect("temp dir");
        let spec: confo::BackendSpec = format!("cache+file:{}", dir.path().display()).parse().expect("spec");
        let backend = spec.open().await.expect("open");
        (dir, backend)
    }

    confo::conformance_tests!(make());
}

/// A field update through `cache+` (one read-modify-write, the engine's own step) keeps the
/// namespace's snapshot current with the value it wrote.
#[tokio::test]
async fn a_field_update_through_the_cache_keeps_its_snapshot_current() {
    let home = cache_home();
    let dir = confo_testkit::store_dir().expect("temp dir");
    let store = open(&format!("cache+file:{}", dir.path().display())).await;
    let namespace = confo::conformance::unique_namespace("lkgset");
    store.create_namespace(&namespace).await.expect("create");
    for port in [1, 2] {
        store.update_fields(&namespace, "db", &[confo::FieldEdit::Set("port".into(), json!(port))]).await.expect("set");
    }
    let snapshot = walk(&home.join("confo/snapshots"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == format!("{namespace}.json").as_str()))
        .expect("a snapshot of the namespace");
    let document: Value = serde_json::from_slice(&std::fs::read(snapshot).expect("read")).expect("json");
    assert_eq!(document["configurations"]["db"]["value"], json!({"port": 2}), "{document}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A read the store itself refuses (here the namespace's index is another program's list:
/// `Corrupt`) is that error through the cache, not "no such configuration": only a value that
/// is not a configuration is handed on as the engine found it.
#[tokio::test]
async fn a_refused_point_read_through_the_cache_is_the_stores_error() {
    let _home = cache_home();
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let store = open(&format!("cache+{}", server.url())).await;
    let namespace = confo::conformance::unique_namespace("lkgbad");
    store.create_namespace(&namespace).await.expect("create");
    store.update_fields(&namespace, "db", &[confo::FieldEdit::Set("port".into(), json!(1))]).await.expect("set");
    assert!(store.get(&namespace, "db").await.expect("read").is_some());
    let port = server.port().to_string();
    for args in [vec!["DEL", namespace.as_str()], vec!["RPUSH", namespace.as_str(), "x"]] {
        let status =
            std::process::Command::new("redis-cli").args(["-p", &port]).args(&args).status().expect("redis-cli");
        assert!(status.success(), "redis-cli {args:?}");
    }
    let err = store.get(&namespace, "db").await.expect_err("the index is not confo's");
    assert_eq!(err.kind(), confo::ErrorKind::Corrupt, "{err}");
}
