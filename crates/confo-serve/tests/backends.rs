//! The API's core over every backend confo speaks: files, Redis, ZooKeeper and etcd, each a
//! private server started here. The same function runs against each.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{etag, harness_on, Harness};
use confo_serve::Settings;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const CFG: &str = "/api/v1/namespaces/sales/configurations/db";

async fn the_api_works_on(spec: Option<String>) {
    let watch = confo::WatchOptions::default().poll_every(Duration::from_millis(200));
    let h: Harness = harness_on(spec, Settings { watch, ..Settings::default() }).await;
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await.status, 201);
    let created = h.call(Method::PUT, CFG, Some(&h.admin), &[("if-none-match", "*")], Some(json!({"port": 1}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let v1 = etag(&created);
    let read = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await;
    assert_eq!((read.status, etag(&read)), (StatusCode::OK, v1.clone()));
    assert_eq!(read.body, json!({"port": 1}));
    // Events: a write by another client of the store arrives on the stream.
    let request = Request::get("/api/v1/namespaces/sales/events")
        .header("authorization", format!("Bearer {}", h.reader))
        .body(Body::empty())
        .expect("r");
    let mut stream = h.router.clone().oneshot(request).await.expect("infallible").into_body();
    h.store
        .put("sales", "db", serde_json::from_value(json!({"port": 2})).expect("map"), Default::default())
        .await
        .expect("write elsewhere");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("\"port\":2") {
        let frame = tokio::time::timeout_at(deadline, stream.frame()).await.expect("the event within 15 s");
        let Some(Ok(frame)) = frame else { panic!("the stream ended: {seen}") };
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(seen.contains("event: changed"), "{seen}");
    // The cached read follows that write too, and a stale If-Match is refused.
    let mut body = json!(null);
    for _ in 0..100 {
        body = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body;
        if body == json!({"port": 2}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, json!({"port": 2}));
    let stale = h.call(Method::PUT, CFG, Some(&h.writer), &[("if-match", &v1)], Some(json!({"port": 3}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let current = etag(&h.call(Method::GET, CFG, Some(&h.reader), &[], None).await);
    let patched =
        h.call(Method::PATCH, CFG, Some(&h.writer), &[("if-match", &current)], Some(json!({"host": "x"}))).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"port": 2, "host": "x"}));
    let history = h.call(Method::GET, &format!("{CFG}/history"), Some(&h.reader), &[], None).await;
    assert_eq!(history.body["revisions"].as_array().map(Vec::len), Some(3), "{}", history.body);
    let back = h.call(Method::POST, &format!("{CFG}/rollback"), Some(&h.writer), &[], Some(json!({"to": 1}))).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"port": 1}));
    assert_eq!(h.call(Method::DELETE, CFG, Some(&h.writer), &[], None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files() {
    the_api_works_on(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let server = confo_testkit::RedisServer::start().expect("redis-server");
    the_api_works_on(Some(server.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper() {
    let server = confo_testkit::ZkServer::start().expect("zookeeper");
    the_api_works_on(Some(format!("zk://{}", server.connect_string()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    let server = confo_testkit::EtcdServer::start().expect("etcd");
    the_api_works_on(Some(format!("etcd://{}", server.endpoint()))).await;
}
