//! The Redis backend on private Redis Clusters started by the testkit: three masters with a
//! replica each (change by change, see `confo::backend::redis`'s cluster notes) and one master
//! (the atomic scripts, allowed to span slots).

use std::sync::Arc;

use confo::backend::redis::{RedisBackend, RedisOptions};
use confo::backend::RepairOptions;
use confo::{Backend, BackendExt};
use confo_testkit::RedisCluster;
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

async fn connect(url: &str) -> RedisBackend {
    RedisBackend::connect(RedisOptions::from_url(url).expect("url")).await.expect("connect")
}

mod sharded {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(3, 1).expect("redis cluster");
        let backend = connect(&format!("{}?history_keep=500", cluster.url())).await;
        (cluster, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod one_shard {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(1, 0).expect("redis cluster");
        let backend = connect(&format!("{}?history_keep=500", cluster.url())).await;
        (cluster, Arc::new(backend))
    }

    confo::conformance_tests!(make());
}

mod sharded_live {
    use super::*;

    async fn make() -> (Arc<RedisCluster>, Arc<dyn Backend>, Arc<dyn Backend>) {
        let cluster = RedisCluster::shared(3, 1).expect("redis cluster");
        let a = connect(&cluster.url()).await;
        let b = connect(&cluster.url()).await;
        (cluster, Arc::new(a), Arc::new(b))
    }

    confo::live_tests!(make());
}

/// A sharded cluster refuses names that would move a value's hash tag to another slot.
#[tokio::test]
async fn names_with_braces_are_refused_on_a_sharded_cluster() {
    let sharded = RedisCluster::shared(3, 1).expect("cluster");
    let backend = connect(&sharded.url()).await;
    backend.create_namespace("braces").await.expect("create");
    let err = backend.put_configuration("braces", "a{b}", obj(json!({"x": 1}))).await.expect_err("braces");
    assert_eq!(err.kind(), confo::ErrorKind::InvalidName, "{err}");
}

/// `redis-cli -c` (following redirections as any cluster client does) on node `port`.
fn cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// Every key matching `pattern` on every master (`SCAN`, as `redis-cli --scan` on each).
fn keys_on_masters(cluster: &RedisCluster, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (i, port) in cluster.ports().into_iter().enumerate() {
        if cluster.role(i).as_deref() != Some("master") {
            continue;
        }
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("client");
        let mut connection = client.get_connection().expect("connect");
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut connection)
                .expect("SCAN");
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys.sort();
    keys
}

/// The index entries of `namespace` whose value is missing, and the values it does not list,
/// read straight from the cluster.
fn dangling_and_unindexed(cluster: &RedisCluster, namespace: &str) -> (Vec<String>, Vec<String>) {
    let port = cluster.ports()[0];
    let index = cli(port, &["GET", namespace]);
    let listed: Vec<String> = if index.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str::<Value>(&index).expect("index JSON")["configurations"]
            .as_array()
            .expect("list")
            .iter()
            .map(|v| v.as_str().expect("name").to_owned())
            .collect()
    };
    let prefix = format!("{namespace}-");
    let stored: Vec<String> = keys_on_masters(cluster, &format!("{prefix}*"))
        .into_iter()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    let dangling = listed.iter().filter(|c| !stored.contains(c)).cloned().collect();
    let unindexed = stored.iter().filter(|c| !listed.contains(c)).cloned().collect();
    (dangling, unindexed)
}

/// What `redis-cli -c` shows is the seed's layout, key by key, spread over the masters.
#[tokio::test]
async fn redis_cli_shows_the_seeds_keys_exactly() {
    let cluster = RedisCluster::shared(3, 1).expect("cluster");
    let backend = connect(&cluster.url()).await;
    backend.create_namespace("HRdept").await.expect("create");
    backend
        .put_configuration("HRdept", "database", obj(json!({"host": "localhost", "port": 6379})))
        .await
        .expect("put");
    backend.put_configuration("HRdept", "mail-relay", obj(json!({"admins": ["a@x.io"]}))).await.expect("put");
    let port = cluster.ports()[1];
    let root: Value = serde_json::from_str(&cli(port, &["GET", "confo"])).expect("root JSON");
    assert!(root["namespaces"].as_array().expect("list").contains(&json!("HRdept")), "{root}");
    assert_eq!(cli(port, &["GET", "HRdept"]), r#"{"configurations":["database","mail-relay"]}"#);
    assert_eq!(cli(port, &["GET", "HRdept-database"]), r#"{"host":"localhost","port":6379}"#);
    assert_eq!(cli(port, &["GET", "HRdept-mail-relay"]), r#"{"admins":["a@x.io"]}"#);
    assert_eq!(
        keys_on_masters(&cluster, "*HRdept*"),
        [
            "HRdept",
            "HRdept-database",
            "HRdept-mail-relay",
            "confo-history:{HRdept-database}",
            "confo-history:{HRdept-mail-relay}"
        ]
    );
    // The three keys of the seed's layout are on different slots (else this proves nothing).
    let slots: std::collections::BTreeSet<String> =
        ["confo", "HRdept", "HRdept-database"].iter().map(|k| cli(port, &["CLUSTER", "KEYSLOT", k])).collect();
    assert_eq!(slots.len(), 3, "{slots:?}");
    backend.delete_configuration("HRdept", "database").await.expect("delete");
    assert_eq!(cli(port, &["GET", "HRdept"]), r#"{"configurations":["mail-relay"]}"#);
    assert_eq!(cli(port, &["EXISTS", "HRdept-database"]), "0");
    backend.delete_namespace("HRdept").await.expect("delete ns");
    assert_eq!(keys_on_masters(&cluster, "HRdept*"), Vec::<String>::new());
}

/// Eight writers at once, each creating namespaces and writing into one shared namespace: no
/// index entry is lost, and every value is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_index_entry() {
    const CLIENTS: usize = 8;
    const OPS: usize = 100;
    let cluster = RedisCluster::shared(3, 1).expect("cluster");
    let url = cluster.url();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let backend = connect(&url).await;
                for op in 0..OPS {
                    if op % 10 == 0 {
                        backend.create_namespace(&format!("w{c}x{op}")).await.expect("create ns");
                    }
                    backend.create_namespace("sharedw").await.expect("create shared");
                    let value = obj(json!({"c": c, "op": op}));
                    backend.put_configuration("sharedw", &format!("c{c}-{op}"), value).await.expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let backend = connect(&url).await;
    let namespaces = backend.list_namespaces().await.expect("list");
    for c in 0..CLIENTS {
        for op in (0..OPS).step_by(10) {
            assert!(namespaces.contains(&format!("w{c}x{op}")), "namespace w{c}x{op} lost from the root");
        }
    }
    let shared = backend.load_namespace("sharedw").await.expect("load");
    assert_eq!(shared.len(), CLIENTS * OPS, "no configuration lost from the index");
    assert_eq!(dangling_and_unindexed(&cluster, "sharedw"), (Vec::new(), Vec::new()));
    for c in 0..CLIENTS {
        for op in (0..OPS).step_by(10) {
            backend.delete_namespace(&format!("w{c}x{op}")).await.expect("delete");
        }
    }
    backend.delete_namespace("sharedw").await.expect("delete");
}

/// `repair` finds a value no index lists and an index entry without a value, and fixes both.
#[tokio::test]
async fn repair_finds_and_fixes_what_breaks_the_index() {
    let cluster = RedisCluster::shared(3, 1).expect("cluster");
    let backend = connect(&cluster.url()).await;
    backend.create_namespace("mend").await.expect("create");
    backend.put_configuration("mend", "a", obj(json!({"a": 1}))).await.expect("put");
    backend.put_configuration("mend", "stray", obj(json!({"s": 1}))).await.expect("put");
    let port = cluster.ports()[0];
    // A writer that died between its value and its index entry (its history records the
    // value), an entry without a value, and another program's keys (kept).
    cli(port, &["SET", "mend", r#"{"configurations":["a","ghost"]}"#]);
    cli(port, &["HSET", "mend-foreign", "f", "v"]);
    cli(port, &["SET", "mend-counter", "17"]);
    // (The cluster is shared: only this test's namespace is looked at in the reports.)
    let mine = |found: &[(String, String)]| -> Vec<(String, String)> {
        found.iter().filter(|(ns, _)| ns == "mend").cloned().collect()
    };
    let found = backend.repair(&RepairOptions::report()).await.expect("repair");
    assert_eq!(mine(&found.unindexed), [("mend".to_owned(), "stray".to_owned())]);
    assert_eq!(mine(&found.dangling), [("mend".to_owned(), "ghost".to_owned())]);
    let foreign: Vec<&str> = found.foreign.iter().map(|f| f.key.as_str()).filter(|k| k.starts_with("mend-")).collect();
    assert_eq!(foreign, ["mend-counter", "mend-foreign"]);
    assert!(!found.fixed);
    assert_eq!(dangling_and_unindexed(&cluster, "mend").1, ["counter", "foreign", "stray"], "nothing changed yet");
    let fixed = backend.repair(&RepairOptions::fix()).await.expect("repair --fix");
    assert_eq!((mine(&fixed.unindexed).len(), mine(&fixed.dangling).len(), fixed.fixed), (1, 1, true));
    assert!(backend
        .repair(&RepairOptions::report())
        .await
        .expect("repair")
        .unindexed
        .iter()
        .all(|(ns, _)| ns != "mend"));
    assert_eq!(cli(port, &["GET", "mend-counter"]), "17", "another program's key is left alone");
    assert_eq!(cli(port, &["GET", "mend"]), r#"{"configurations":["a"]}"#);
    assert_eq!(cli(port, &["EXISTS", "mend-stray"]), "0");
    assert_eq!(cli(port, &["TYPE", "mend-foreign"]), "hash", "another program's key is left alone");
    backend.delete_namespace("mend").await.expect("delete");
    cli(port, &["DEL", "mend-foreign"]);
}

/// The configurations a crash-test child imports.
const IMPORT: usize = 5000;

/// The child side of `a_writer_killed_mid_import_leaves_no_dangling_entry`: imports
/// [`IMPORT`] configurations into a namespace in one batch. Does nothing unless run by it.
#[test]
#[ignore = "run as a child process by a test in this file"]
fn child_entry() {
    let (Ok(url), Ok(namespace)) = (std::env::var("CONFO_TEST_URL"), std::env::var("CONFO_TEST_NS")) else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let backend = connect(&url).await;
        let changes: Vec<confo::Change> = (0..IMPORT)
            .map(|i| confo::Change::put(format!("c{i}"), obj(json!({"i": i, "pad": "x".repeat(200)}))))
            .collect();
        backend.write(&namespace, &changes).await.into_result().expect("import");
    });
}

/// A writer killed with SIGKILL at a random moment of a 5,000-configuration import, 50 times:
/// no index entry ever points at a missing value, and `repair` reports exactly the values left
/// unindexed (then removes them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_import_leaves_no_dangling_entry() {
    const TRIALS: usize = 50;
    let cluster = RedisCluster::start(3, 1).expect("cluster");
    let backend = connect(&cluster.url()).await;
    let spawn = |namespace: &str| {
        std::process::Command::new(std::env::current_exe().expect("current exe"))
            .args(["child_entry", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CONFO_TEST_URL", cluster.url())
            .env("CONFO_TEST_NS", namespace)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn child")
    };
    // One import to the end: how long a whole one takes, so the kills land inside it.
    backend.create_namespace("crashfull").await.expect("create");
    let started = std::time::Instant::now();
    let status = spawn("crashfull").wait().expect("child");
    let whole = started.elapsed();
    assert!(status.success(), "a whole import");
    assert_eq!(backend.load_namespace("crashfull").await.expect("load").len(), IMPORT);
    backend.delete_namespace("crashfull").await.expect("delete");
    let (mut partial, mut with_orphans) = (0, 0);
    let mut expected_unindexed = Vec::new();
    for trial in 0..TRIALS {
        let namespace = format!("crash{trial}");
        backend.create_namespace(&namespace).await.expect("create");
        let mut child = spawn(&namespace);
        // Spread over the whole import, the start-up included.
        let delay = whole.mul_f64((trial as f64 + 0.5) / TRIALS as f64);
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let (dangling, unindexed) = dangling_and_unindexed(&cluster, &namespace);
        assert!(dangling.is_empty(), "trial {trial}: index entries without a value: {dangling:?}");
        let listed = backend.load_namespace(&namespace).await.expect("load").len();
        if listed > 0 && listed < IMPORT {
            partial += 1;
        }
        if !unindexed.is_empty() {
            with_orphans += 1;
        }
        expected_unindexed.extend(unindexed.into_iter().map(|c| (namespace.clone(), c)));
        // What is listed goes (the unindexed values stay, for repair).
        backend.delete_namespace(&namespace).await.expect("delete");
    }
    // Values of deleted namespaces are not looked at: they are listed again to be found.
    let leftover: std::collections::BTreeSet<&String> = expected_unindexed.iter().map(|(ns, _)| ns).collect();
    for namespace in &leftover {
        backend.create_namespace(namespace).await.expect("create");
    }
    let mut found = backend.repair(&RepairOptions::report()).await.expect("repair");
    found.unindexed.sort();
    expected_unindexed.sort();
    assert_eq!(found.unindexed, expected_unindexed, "repair reports what is unindexed");
    assert!(found.dangling.is_empty(), "{:?}", found.dangling);
    backend.repair(&RepairOptions::fix()).await.expect("repair --fix");
    for trial in 0..TRIALS {
        assert_eq!(dangling_and_unindexed(&cluster, &format!("crash{trial}")), (Vec::new(), Vec::new()));
    }
    eprintln!(
        "{TRIALS} kills during a {IMPORT}-configuration import ({whole:?} whole): 0 dangling entries; \
         {partial} left part of the import listed, {with_orphans} left unindexed values ({} in all, repaired)",
        expected_unindexed.len()
    );
    assert!(with_orphans > 0, "some kill landed between a value and its listing, so the check above could fail");
}

/// A master killed while a writer writes with `wait_replicas=1`: its replica takes over, the
/// writer resumes, every acknowledged write is readable afterwards, and a watcher subscribed
/// on the killed node keeps seeing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_fails_over_and_keeps_every_acknowledged_write() {
    let mut cluster = RedisCluster::start(3, 1).expect("cluster");
    let victim = (0..cluster.ports().len()).find(|&i| cluster.role(i).as_deref() == Some("master")).expect("a master");
    // The subscription goes to the first seed: the victim.
    let port = cluster.ports()[victim];
    let others: Vec<String> =
        cluster.ports().iter().filter(|&&p| p != port).map(|p| format!("127.0.0.1:{p}")).collect();
    let url = format!("redis+cluster://127.0.0.1:{port},{}?wait_replicas=1", others.join(","));
    let backend = connect(&url).await;
    backend.create_namespace("ha").await.expect("create");
    let mut hints = backend.subscribe().await.expect("subscribe").expect("hints");
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), hints.recv()).await.expect("subscribed");
    assert!(matches!(first, Some(confo::backend::Hint::All)), "{first:?}");
    let (mut acknowledged, mut refused) = (Vec::new(), 0);
    let (mut killed_at, mut first_ack_after_kill, mut restarted) = (None, None, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    for i in 0.. {
        assert!(std::time::Instant::now() < deadline, "no failover within 90 s ({} acknowledged)", acknowledged.len());
        match backend.put_configuration("ha", &format!("c{i}"), obj(json!({"i": i}))).await {
            Ok(_) => {
                acknowledged.push(i);
                if let Some(at) = killed_at {
                    first_ack_after_kill.get_or_insert_with(|| std::time::Instant::now().duration_since(at));
                }
            }
            Err(e) => {
                assert_eq!(e.kind(), confo::ErrorKind::Unavailable, "{e}");
                refused += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        if i == 20 {
            cluster.stop(victim);
            killed_at = Some(std::time::Instant::now());
        }
        // Once the victim's replica took over, the victim comes back as its replica (so that
        // `WAIT 1` can be met again on that shard).
        let masters =
            (0..cluster.ports().len()).filter(|&n| n != victim && cluster.role(n).as_deref() == Some("master"));
        if killed_at.is_some() && !restarted && masters.count() == 3 {
            cluster.restart(victim).expect("restart the old master");
            restarted = true;
        }
        if restarted && acknowledged.iter().filter(|&&a| a > 20).count() >= 20 {
            break;
        }
    }
    assert!(first_ack_after_kill.is_some());
    // Read through a fresh client, from the surviving nodes only.
    let fresh = connect(&format!("redis+cluster://{}", others.join(","))).await;
    let data = fresh.load_namespace("ha").await.expect("load");
    for i in &acknowledged {
        assert!(data.contains_key(&format!("c{i}")), "acknowledged write c{i} was lost");
    }
    // The watcher resubscribed elsewhere (a resubscription hints "re-read everything"), and a
    // change made now reaches it (changes are made until one does, for 15 s: the
    // resubscription may still be under way).
    let mut resubscribed = false;
    while let Ok(hint) = hints.try_recv() {
        resubscribed |= matches!(hint, confo::backend::Hint::All);
    }
    let mut seen = false;
    for attempt in 0..15 {
        backend.put_configuration("ha", "after", obj(json!({"attempt": attempt}))).await.expect("put");
        let wait = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            while let Some(hint) = hints.recv().await {
                match &hint {
                    confo::backend::Hint::Namespace(ns) if ns == "ha" => return (true, false),
                    confo::backend::Hint::All => return (false, true),
                    _ => {}
                }
            }
            (false, false)
        });
        let (event, all) = wait.await.unwrap_or((false, false));
        resubscribed |= all;
        if event && resubscribed {
            seen = true;
            break;
        }
    }
    assert!(resubscribed, "the watcher's node was killed: it must have subscribed again");
    assert!(seen, "no event reached the watcher after the failover");
    assert_eq!(cluster.role(victim).as_deref(), Some("slave"), "the old master rejoined as a replica");
    eprintln!(
        "cluster failover: {} writes acknowledged, {refused} refused while failing over, first accepted {:?} after the kill",
        acknowledged.len(),
        first_ack_after_kill
    );
}

/// An ACL user over TLS (a CA made at test time; TLS on the cluster bus too), as with one
/// server: it reads and writes; a wrong password is `Unauthorized` and is never shown; a CA not
/// trusted is `Unavailable`.
#[tokio::test]
async fn acl_user_over_tls() {
    let access = confo_testkit::ClusterAccess { user: Some(("app".into(), "app-pw".into())), tls: true };
    let cluster = RedisCluster::start_with(3, 0, &access).expect("cluster");
    let url = cluster.url().replacen("://", "://app:app-pw@", 1);
    let backend = connect(&url).await;
    backend.create_namespace("secure").await.expect("create");
    let changes: Vec<confo::Change> =
        (0..50).map(|i| confo::Change::put(format!("c{i}"), obj(json!({"i": i})))).collect();
    backend.write("secure", &changes).await.into_result().expect("write");
    let data = backend.load_namespace("secure").await.expect("load");
    assert_eq!(data.len(), 50);
    assert_eq!(data["c7"].value["i"], json!(7));
    let mut hints = backend.subscribe().await.expect("subscribe").expect("hints");
    // Subscribed once the first hint (re-read everything) comes.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), hints.recv()).await.expect("subscribed");
    assert!(matches!(first, Some(confo::backend::Hint::All)), "{first:?}");
    backend.put_configuration("secure", "c0", obj(json!({"i": -1}))).await.expect("put");
    let hinted = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(confo::backend::Hint::Namespace(ns)) = hints.recv().await {
                break ns;
            }
        }
    })
    .await
    .expect("an event over TLS");
    assert_eq!(hinted, "secure");
    let wrong = RedisBackend::connect(RedisOptions::from_url(&url.replace("app-pw", "nope")).expect("url"))
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.kind(), confo::ErrorKind::Unauthorized, "{wrong}");
    assert!(!format!("{wrong} {wrong:?}").contains("nope"), "{wrong:?}");
    let untrusted = url.split('?').next().expect("url").to_owned();
    let err = RedisBackend::connect(RedisOptions::from_url(&untrusted).expect("url")).await.expect_err("untrusted CA");
    assert_eq!(err.kind(), confo::ErrorKind::Unavailable, "{err}");
}

/// A dead address is `Unavailable` within seconds; a server that is not a cluster node says so
/// (and what to use instead), as an invalid spec, not a driver error; a node of a cluster not
/// formed yet is `Unavailable` saying so.
#[tokio::test]
async fn a_dead_address_or_a_plain_server_is_a_clear_error() {
    confo::conformance::a_dead_address_is_unavailable(&format!(
        "redis+cluster://127.0.0.1:{}",
        confo_testkit::free_port()
    ))
    .await;
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let url = format!("redis+cluster://127.0.0.1:{}", server.port());
    let err = RedisBackend::connect(RedisOptions::from_url(&url).expect("url")).await.expect_err("not a cluster");
    assert_eq!(err.kind(), confo::ErrorKind::InvalidSpec, "{err}");
    assert!(err.to_string().contains("redis://"), "{err}");
    // A cluster node that serves no slots yet (a cluster not formed): unavailable, and why.
    let lone =
        confo_testkit::RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .expect("redis-server");
    let url = format!("redis+cluster://127.0.0.1:{}", lone.port());
    let err = RedisBackend::connect(RedisOptions::from_url(&url).expect("url")).await.expect_err("no slots");
    assert_eq!(err.kind(), confo::ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("cluster formed"), "{err}");
}

/// A value left unlisted by a writer that died between its value and its listing: a
/// create-only write replaces it once it is old (so a crashed import can simply be run again),
/// but not a fresh one (it may be a put in flight), and never a listed one.
#[tokio::test]
async fn a_create_only_write_replaces_an_old_left_over_only() {
    use confo::{Change, Precondition};
    let cluster = RedisCluster::shared(3, 1).expect("cluster");
    let backend = connect(&cluster.url()).await;
    backend.create_namespace("leftover").await.expect("create");
    let port = cluster.ports()[0];
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    for (name, written) in [("old", now_ms - 60_000), ("fresh", now_ms)] {
        cli(port, &["SET", &format!("leftover-{name}"), r#"{"v":0}"#]);
        let stream = format!("confo-history:{{leftover-{name}}}");
        cli(port, &["XADD", &stream, "0-1", "r", "{}", "after", "", "t", &written.to_string()]);
    }
    backend.put_configuration("leftover", "listed", obj(json!({"v": 0}))).await.expect("put");
    let create = |name: &str| [Change::put(name, obj(json!({"v": 1}))).when(Precondition::Absent)];
    backend.write("leftover", &create("old")).await.into_result().expect("an old left-over is replaced");
    for name in ["fresh", "listed"] {
        let err = backend.write("leftover", &create(name)).await.into_result().expect_err(name);
        assert_eq!(err.kind(), confo::ErrorKind::Conflict, "{name}: {err}");
    }
    let data = backend.load_namespace("leftover").await.expect("load");
    assert_eq!(data["old"].value["v"], json!(1));
    assert_eq!(data["listed"].value["v"], json!(0));
    assert!(!data.contains_key("fresh"));
    backend.delete_namespace("leftover").await.expect("delete");
    cli(port, &["DEL", "leftover-fresh"]);
}

/// Slots moved from one master to another (`redis-cli --cluster reshard`, as when a cluster is
/// scaled out) while a writer writes and reloads: every reload sees every configuration written
/// before it, and every acknowledged write is there afterwards (`MOVED` and `ASK` followed, by
/// the client for scripts and by confo for its pipelined reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_under_load_loses_nothing() {
    let cluster = RedisCluster::start(3, 0).expect("cluster");
    let backend = Arc::new(connect(&cluster.url()).await);
    backend.create_namespace("moving").await.expect("create");
    let first: Vec<confo::Change> =
        (0..2000).map(|i| confo::Change::put(format!("c{i}"), obj(json!({"i": i})))).collect();
    backend.write("moving", &first).await.into_result().expect("write");
    let ports = cluster.ports();
    let id = |port: u16| cli(port, &["CLUSTER", "MYID"]);
    let (from, to) = (id(ports[0]), id(ports[1]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (backend, stop) = (backend.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut reloads, mut refused, mut failed) = (2000usize, 0usize, 0usize, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("c{acknowledged}");
                match backend.put_configuration("moving", &name, obj(json!({"i": acknowledged}))).await {
                    Ok(_) => acknowledged += 1,
                    Err(e) => {
                        assert_eq!(e.kind(), confo::ErrorKind::Unavailable, "{e}");
                        refused += 1;
                    }
                }
                match backend.load_namespace("moving").await {
                    Ok(data) => {
                        assert!(data.len() >= acknowledged, "a reload missed configurations");
                        assert!(data.corrupt.is_empty(), "{:?}", data.corrupt);
                        reloads += 1;
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), confo::ErrorKind::Unavailable, "{e}");
                        failed += 1;
                    }
                }
            }
            (acknowledged, reloads, refused, failed)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let port = ports[0].to_string();
    let resharded = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{port}")])
            .args(["--cluster-from", &from, "--cluster-to", &to, "--cluster-slots", "2000", "--cluster-yes"])
            .args(["--cluster-pipeline", "10"])
            .output()
            .expect("redis-cli --cluster reshard")
    })
    .await
    .expect("reshard");
    assert!(resharded.status.success(), "{}", String::from_utf8_lossy(&resharded.stdout));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, reloads, refused, failed) = writer.await.expect("writer");
    // A connection the client stopped answering on is replaced after one timeout: a reload
    // succeeds within two tries.
    let mut data = None;
    for _ in 0..2 {
        match backend.load_namespace("moving").await {
            Ok(loaded) => {
                data = Some(loaded);
                break;
            }
            Err(e) => assert_eq!(e.kind(), confo::ErrorKind::Unavailable, "{e}"),
        }
    }
    let data = data.expect("a reload after the resharding");
    for i in 0..acknowledged {
        assert_eq!(data[&format!("c{i}")].value["i"], json!(i), "c{i}");
    }
    assert!(String::from_utf8_lossy(&resharded.stdout).contains("Moving slot"), "slots moved");
    eprintln!(
        "resharding 2000 slots: {acknowledged} configurations, {reloads} reloads during it ({failed} failed), \
         {refused} writes refused"
    );
}
