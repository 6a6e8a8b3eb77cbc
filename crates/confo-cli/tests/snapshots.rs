//! Last-known-good snapshots from the command line: a new `confo` process, started while the
//! store is down, reads from the snapshot and says so; writes exit 5; on Redis, ZooKeeper and
//! etcd.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Env;

fn run(env: &Env, spec: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--backend", spec];
    all.extend_from_slice(args);
    env.command(&all).env("XDG_CACHE_HOME", env.path("cache")).env_remove("CONFO_SNAPSHOTS").output().unwrap()
}

fn code_and_streams(out: &std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `url` is the store's plain spec; `stop` and `restart` its server.
fn walkthrough(url: &str, stop: impl FnOnce(), restart: impl FnOnce()) {
    let env = Env::new();
    let cached = format!("cache+{url}");
    assert_eq!(run(&env, url, &["ns", "create", "sales"]).status.code(), Some(0));
    assert_eq!(run(&env, &cached, &["set", "sales/db", "host=db", "port=5432"]).status.code(), Some(0));
    // A namespace read takes the snapshot.
    assert_eq!(run(&env, &cached, &["ls", "sales"]).status.code(), Some(0));
    let files: Vec<_> = walk(&env.path("cache/confo/snapshots"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("sales.json"));
    assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);

    stop();
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db", "port"]));
    assert_eq!((code, out.as_str()), (Some(0), "5432\n"), "{err}");
    assert!(err.contains("last-known-good snapshot") && err.contains(" old)"), "{err}");
    let (code, out, _) = code_and_streams(&run(&env, &cached, &["export"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("5432"), "{out}");
    let (code, _, err) = code_and_streams(&run(&env, &cached, &["set", "sales/db", "port=1"]));
    assert_eq!(code, Some(5), "{err}");
    // Without the cache, or with CONFO_SNAPSHOTS=off: unavailable.
    assert_eq!(run(&env, url, &["get", "sales/db"]).status.code(), Some(5));
    let off = env
        .command(&["--backend", &cached, "get", "sales/db"])
        .env("XDG_CACHE_HOME", env.path("cache"))
        .env("CONFO_SNAPSHOTS", "off")
        .output()
        .unwrap();
    assert_eq!(off.status.code(), Some(5), "{}", String::from_utf8_lossy(&off.stderr));
    // Older than the maximum age: refused.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let strict = format!("{cached}?snapshot_max_age=1s");
    let (code, _, err) = code_and_streams(&run(&env, &strict, &["get", "sales/db"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("older than snapshot_max_age"), "{err}");

    restart();
    // A change made after the restart is what the next process reads.
    assert_eq!(run(&env, url, &["ns", "create", "sales"]).status.code(), Some(0));
    assert_eq!(run(&env, url, &["set", "sales/db", "host=db", "port=6432"]).status.code(), Some(0));
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db", "port"]));
    assert_eq!((code, out.as_str()), (Some(0), "6432\n"), "{err}");
    assert!(!err.contains("snapshot"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn redis_snapshots() {
    let mut server = confo_testkit::RedisServer::start().expect("redis-server");
    let url = server.url();
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(&url, || server.lock().unwrap().stop(), || server.lock().unwrap().restart().unwrap());
}

#[test]
fn zookeeper_snapshots() {
    let mut server = confo_testkit::ZkServer::start().expect("zookeeper");
    let url = format!("zk://{}", server.connect_string());
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(&url, || server.lock().unwrap().stop(), || server.lock().unwrap().restart().unwrap());
}

#[test]
fn etcd_snapshots() {
    let mut server = confo_testkit::EtcdServer::start().expect("etcd");
    let url = format!("etcd://{}", server.endpoint());
    let server = std::sync::Mutex::new(&mut server);
    walkthrough(&url, || server.lock().unwrap().stop(), || server.lock().unwrap().restart().unwrap());
}

/// A store that refuses the password is exit 5 with its own message: never the snapshot.
#[test]
fn refused_credentials_never_fall_back() {
    let server = confo_testkit::RedisServer::start_with(&["--requirepass", "right-pw"]).expect("redis-server");
    let env = Env::new();
    let right = format!("cache+redis://:right-pw@127.0.0.1:{}", server.port());
    assert_eq!(run(&env, &right, &["ns", "create", "sales"]).status.code(), Some(0));
    assert_eq!(run(&env, &right, &["set", "sales/db", "port=1"]).status.code(), Some(0));
    assert_eq!(run(&env, &right, &["ls", "sales"]).status.code(), Some(0));
    let wrong = format!("cache+redis://:wrong-pw@127.0.0.1:{}", server.port());
    let (code, out, err) = code_and_streams(&run(&env, &wrong, &["get", "sales/db"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(out.is_empty() && !err.contains("snapshot") && !err.contains("wrong-pw"), "{err}");
}

/// A point read through `cache+` takes a snapshot too (of that configuration: a namespace never
/// read whole has a snapshot that says it holds only some); a snapshot that is not this
/// backend's and this namespace's, or that others could have written, is never served; a
/// snapshots folder made 0777 is made private again; the deepest value a write accepts reads
/// back from a snapshot.
#[test]
fn point_reads_take_snapshots_and_only_trusted_snapshots_are_served() {
    let mut redis = confo_testkit::RedisServer::start().expect("redis-server");
    let env = Env::new();
    let url = redis.url();
    let cached = format!("cache+{url}");
    for ns in ["sales", "billing"] {
        assert_eq!(run(&env, &url, &["ns", "create", ns]).status.code(), Some(0));
    }
    assert_eq!(run(&env, &url, &["set", "sales/db", "port=5432"]).status.code(), Some(0));
    assert_eq!(run(&env, &url, &["set", "sales/other", "port=1"]).status.code(), Some(0));
    let deep = format!("{{\"v\": {}{}}}", "[".repeat(126), "]".repeat(126));
    assert_eq!(run(&env, &url, &["set", "billing/deep", "--json", &deep]).status.code(), Some(0));
    // Only point reads through the cache, and one whole read of billing.
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db", "port"]));
    assert_eq!((code, out.as_str()), (Some(0), "5432\n"), "{err}");
    assert_eq!(run(&env, &cached, &["ls", "billing"]).status.code(), Some(0));
    let snapshots = walk(&env.path("cache/confo/snapshots"));
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    let dir = snapshots[0].parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(run(&env, &cached, &["get", "sales/db", "port"]).status.code(), Some(0));
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "made private again");

    redis.stop();
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db", "port"]));
    assert_eq!((code, out.as_str()), (Some(0), "5432\n"), "{err}");
    // One it never read: the snapshot cannot say, so the store's unavailability is the answer.
    let (code, _, err) = code_and_streams(&run(&env, &cached, &["get", "sales/other"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("read one by one"), "{err}");
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["ls", "sales"]));
    assert_eq!((code, out.as_str()), (Some(0), "db\n"), "{err}");
    assert!(err.contains("holds only the configurations read one by one"), "listed, it says so: {err}");
    let (code, out, err) = code_and_streams(&run(&env, &cached, &["get", "billing/deep"]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches('[').count(), 126, "the deepest value reads back from its snapshot");

    // Another namespace's snapshot copied into place is not served as this one.
    let sales = dir.join("sales.json");
    let billing = dir.join("billing.json");
    let kept = std::fs::read(&sales).unwrap();
    std::fs::copy(&billing, &sales).unwrap();
    let (code, _, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("not served") && err.contains("billing"), "{err}");
    // Nor one others may write.
    std::fs::write(&sales, &kept).unwrap();
    std::fs::set_permissions(&sales, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = code_and_streams(&run(&env, &cached, &["get", "sales/db"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("others may write it"), "{err}");
    std::fs::set_permissions(&sales, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(run(&env, &cached, &["get", "sales/db"]).status.code(), Some(0));
    // Nor another backend's: this snapshot copied into the folder of a backend that is down.
    let other: confo::BackendSpec = "redis://127.0.0.1:1".parse().unwrap();
    let elsewhere = dir.parent().unwrap().join(confo::backend::cache::backend_id(&other));
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(&sales, elsewhere.join("sales.json")).unwrap();
    let (code, _, err) = code_and_streams(&run(&env, "cache+redis://127.0.0.1:1", &["get", "sales/db"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("not served"), "{err}");
    drop(redis);
}
