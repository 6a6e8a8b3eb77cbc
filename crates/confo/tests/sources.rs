//! confo through figment and config-rs, and `Live<T>`, against a private Redis.

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

use std::time::{Duration, Instant};

use confo::live::Live;
use confo::{Precondition, Store};
use serde_json::{json, Value};

fn obj(v: Value) -> confo::Configuration {
    v.as_object().expect("object").clone()
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Database {
    host: String,
    port: u16,
}

#[cfg_attr(not(any(feature = "figment", feature = "config-rs")), allow(dead_code))]
#[derive(Debug, serde::Deserialize, PartialEq)]
struct Settings {
    database: Database,
    flags: std::collections::BTreeMap<String, bool>,
}

async fn store_with_settings(server: &confo_testkit::RedisServer) -> (Store, String) {
    let store = Store::open(&server.url().parse().expect("spec")).await.expect("open");
    let ns = confo::conformance::unique_namespace("sources");
    store.create_namespace(&ns).await.expect("create");
    store.put(&ns, "database", obj(json!({"host": "db", "port": 5432})), Precondition::Any).await.expect("put");
    store.put(&ns, "flags", obj(json!({"beta": true})), Precondition::Any).await.expect("put");
    (store, ns)
}

#[cfg(feature = "figment")]
#[tokio::test]
async fn figment_extracts_a_namespace_and_names_where_a_bad_field_is() {
    use confo::sources::ConfoProvider;
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let (store, ns) = store_with_settings(&server).await;
    let settings: Settings = figment::Figment::new()
        .merge(ConfoProvider::namespace(&store, &ns).await.expect("read"))
        .extract()
        .expect("extract");
    assert_eq!(settings.database, Database { host: "db".into(), port: 5432 });
    assert!(settings.flags["beta"]);
    // One configuration at the top level; integers at the limits stay exact (figment itself
    // deserialises nothing wider than 64 bits).
    let limits = serde_json::from_str(r#"{"max": 18446744073709551615, "min": -9223372036854775808}"#).expect("json");
    store.put(&ns, "big", limits, Precondition::Any).await.expect("put");
    #[derive(serde::Deserialize)]
    struct Limits {
        max: u64,
        min: i64,
    }
    let big: Limits = figment::Figment::new()
        .merge(ConfoProvider::configuration(&store, &ns, "big").await.expect("read"))
        .extract()
        .expect("extract");
    assert_eq!((big.max, big.min), (u64::MAX, i64::MIN));
    // A field of the wrong type: the error names the backend, namespace, configuration, field.
    store.put(&ns, "database", obj(json!({"host": "db", "port": "x"})), Precondition::Any).await.expect("put");
    let err = figment::Figment::new()
        .merge(ConfoProvider::namespace(&store, &ns).await.expect("read"))
        .extract::<Settings>()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("namespace {ns}")) && err.contains("database.port"), "{err}");
    assert!(err.contains("redis 127.0.0.1"), "{err}");
    assert!(ConfoProvider::configuration(&store, &ns, "missing").await.is_err());
}

#[cfg(feature = "config-rs")]
#[tokio::test]
async fn config_rs_extracts_and_names_where_a_bad_field_is() {
    use confo::sources::ConfoSource;
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let (store, ns) = store_with_settings(&server).await;
    let settings: Settings = config::Config::builder()
        .add_source(ConfoSource::namespace(&store, &ns).await.expect("read"))
        .build()
        .expect("build")
        .try_deserialize()
        .expect("deserialize");
    assert_eq!(settings.database.port, 5432);
    let db: Database = config::Config::builder()
        .add_source(ConfoSource::configuration(&store, &ns, "database").await.expect("read"))
        .build()
        .expect("build")
        .try_deserialize()
        .expect("deserialize");
    assert_eq!(db.host, "db");
    store.put(&ns, "database", obj(json!({"host": "db", "port": "x"})), Precondition::Any).await.expect("put");
    let err = config::Config::builder()
        .add_source(ConfoSource::namespace(&store, &ns).await.expect("read"))
        .build()
        .expect("build")
        .try_deserialize::<Settings>()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("configuration {ns}/database")) && err.contains("port"), "{err}");
}

/// `Live<T>` follows every change (the median delay over 10 changes is under 100 ms on
/// Redis, whose writes are announced), and keeps the last good value through a change that
/// does not deserialise, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_values_follow_changes_and_survive_bad_ones() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    let (store, ns) = store_with_settings(&server).await;
    let mut live = Live::<Database>::new(&store, &ns, "database").await.expect("live");
    assert_eq!(live.get().port, 5432);
    assert!(Live::<Database>::new(&store, &ns, "missing").await.is_err());

    let mut delays = Vec::new();
    for port in 6000..6010u16 {
        let started = Instant::now();
        store.put(&ns, "database", obj(json!({"host": "db", "port": port})), Precondition::Any).await.expect("put");
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), live.changed()).await.expect("a change in time");
            if next.expect("watching").port == port {
                break;
            }
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    eprintln!("Live<T> delays after a write: {delays:?}");
    assert!(delays[delays.len() / 2] < Duration::from_millis(100), "median {:?}", delays[delays.len() / 2]);

    // A bad change: the last good value stays, and the reason is given.
    store.put(&ns, "database", obj(json!({"host": "db", "port": 70000})), Precondition::Any).await.expect("put");
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.last_error().is_none() {
        assert!(Instant::now() < deadline, "the bad change was not reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.get().port, 6009);
    assert!(live.last_error().unwrap_or_default().contains("database"), "{:?}", live.last_error());
    // A good change again clears it.
    store.put(&ns, "database", obj(json!({"host": "db2", "port": 1})), Precondition::Any).await.expect("put");
    let next = tokio::time::timeout(Duration::from_secs(10), live.changed()).await.expect("in time").expect("value");
    assert_eq!(*next, Database { host: "db2".into(), port: 1 });
    assert!(live.last_error().is_none());
}
