//! `confo serve` over a `cache+` backend whose store goes down: answers served from the
//! last-known-good snapshot say so, with a `Confo-Snapshot` header (and a `from_snapshot` field
//! in envelopes), and are not kept in the server's cache. One test per binary: it sets
//! `XDG_CACHE_HOME` for the process.

mod common;

use axum::http::{Method, StatusCode};
use common::harness_on;
use confo_serve::Settings;
use serde_json::json;

#[tokio::test]
async fn answers_from_a_snapshot_say_so() {
    let cache = tempfile::tempdir().expect("cache dir");
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    std::env::remove_var("CONFO_SNAPSHOTS");
    let mut redis = confo_testkit::RedisServer::start().expect("redis-server");
    let h = harness_on(Some(format!("cache+{}", redis.url())), Settings::default()).await;
    let admin = Some(h.admin.as_str());
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", admin, &[], None).await.status, StatusCode::CREATED);
    for (name, n) in [("db", 1), ("other", 2)] {
        let uri = format!("/api/v1/namespaces/sales/configurations/{name}");
        let reply = h.call(Method::PUT, &uri, admin, &[], Some(json!({"n": n}))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    let up = h.call(Method::GET, "/api/v1/namespaces/sales/configurations", admin, &[], None).await;
    assert_eq!(up.status, StatusCode::OK);
    assert!(up.headers.get("confo-snapshot").is_none() && up.body.get("from_snapshot").is_none(), "{:?}", up.body);

    redis.stop();
    let list = h.call(Method::GET, "/api/v1/namespaces/sales/configurations", admin, &[], None).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    let header = list.headers.get("confo-snapshot").expect("the header").to_str().expect("ascii").to_owned();
    assert!(header.starts_with("time=") && header.contains(", age="), "{header}");
    assert_eq!(list.body["from_snapshot"]["partial"], json!(false), "{:?}", list.body);
    assert!(list.body["from_snapshot"]["age_seconds"].is_u64());
    assert_eq!(list.body["configurations"].as_array().map(Vec::len), Some(2));
    let info = h.call(Method::GET, "/api/v1/namespaces/sales", admin, &[], None).await;
    assert!(info.headers.get("confo-snapshot").is_some() && info.body["from_snapshot"].is_object(), "{:?}", info.body);
    // A configuration the server never read itself: from the snapshot, the body as stored.
    let other = h.call(Method::GET, "/api/v1/namespaces/sales/configurations/other", admin, &[], None).await;
    assert_eq!((other.status, other.body.clone()), (StatusCode::OK, json!({"n": 2})));
    assert!(other.headers.get("confo-snapshot").is_some());
    // Not kept: asked again, it is still the snapshot's (and says so), not a cached answer.
    let again = h.call(Method::GET, "/api/v1/namespaces/sales/configurations/other", admin, &[], None).await;
    assert!(again.headers.get("confo-snapshot").is_some());
    drop(h);
}
