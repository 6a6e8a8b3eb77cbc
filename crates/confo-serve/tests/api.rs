//! The HTTP API through the router (no sockets, no browser), over a real file store in a
//! temporary folder: authentication and roles, preconditions, merge patches, bad input,
//! history, schemas, secrets, events and the watched cache.

use std::time::Duration;

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{etag, harness};
use confo_serve::Settings;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const CFG: &str = "/api/v1/namespaces/sales/configurations/database";

#[tokio::test]
async fn requests_need_a_token_and_the_right_role() {
    let h = harness(Settings::default()).await;
    let none = h.call(Method::GET, "/api/v1/namespaces", None, &[], None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(none.body["kind"], "unauthenticated");
    assert!(none.headers.contains_key(header::WWW_AUTHENTICATE));
    let unknown = h.call(Method::GET, "/api/v1/namespaces", Some("confo_nope"), &[], None).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let bad_scheme = h
        .send(Request::get("/api/v1/namespaces").header("authorization", "Basic eDp5").body(Body::empty()).expect("r"))
        .await;
    assert_eq!(bad_scheme.status, StatusCode::UNAUTHORIZED);

    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.reader), &[], None).await.status, 403);
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.writer), &[], None).await.status, 201);
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.writer), &[], None).await.status, 200);
    // The writer's pattern is sales*: hr is out of reach, and so is deleting (admin).
    let hr = h.call(Method::PUT, "/api/v1/namespaces/hr", Some(&h.writer), &[], None).await;
    assert_eq!(hr.status, StatusCode::FORBIDDEN);
    assert_eq!(hr.body["kind"], "forbidden");
    assert_eq!(h.call(Method::DELETE, "/api/v1/namespaces/sales", Some(&h.writer), &[], None).await.status, 403);
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/hr", Some(&h.admin), &[], None).await.status, 201);
    let listed = h.call(Method::GET, "/api/v1/namespaces", Some(&h.writer), &[], None).await;
    assert_eq!(listed.body, json!({"namespaces": ["sales"]}), "namespaces out of reach are not listed");
    let all = h.call(Method::GET, "/api/v1/namespaces", Some(&h.reader), &[], None).await;
    assert_eq!(all.body, json!({"namespaces": ["hr", "sales"]}));
    // The backend by name gives the same; an unknown backend is 404.
    let named = h.call(Method::GET, "/api/v1/backends/main/namespaces", Some(&h.reader), &[], None).await;
    assert_eq!(named.body, all.body);
    assert_eq!(h.call(Method::GET, "/api/v1/backends/nope/namespaces", Some(&h.reader), &[], None).await.status, 404);
}

#[tokio::test]
async fn too_many_unknown_tokens_from_one_address_are_refused_for_a_while() {
    let h = harness(Settings::default()).await;
    let mut statuses = Vec::new();
    for _ in 0..confo_serve::auth::FAILURES_ALLOWED + 2 {
        statuses.push(h.call(Method::GET, "/api/v1/namespaces", Some("confo_guess"), &[], None).await.status);
    }
    assert!(statuses[..confo_serve::auth::FAILURES_ALLOWED as usize].iter().all(|s| *s == 401));
    assert_eq!(*statuses.last().expect("some"), StatusCode::TOO_MANY_REQUESTS);
    // Even a good token waits: the address is blocked, not the token.
    let blocked = h.call(Method::GET, "/api/v1/namespaces", Some(&h.reader), &[], None).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn anonymous_reading_only_when_asked_and_never_writing() {
    let h = harness(Settings { anonymous_read: true, ..Settings::default() }).await;
    assert_eq!(h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await.status, 201);
    let read = h.call(Method::GET, "/api/v1/namespaces", None, &[], None).await;
    assert_eq!(read.status, StatusCode::OK);
    let write = h.call(Method::PUT, "/api/v1/namespaces/other", None, &[], None).await;
    assert_eq!(write.status, StatusCode::UNAUTHORIZED, "a write without a token is 401, not 403");
}

#[tokio::test]
async fn etags_and_preconditions_guard_every_write() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let missing = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["kind"], "not_found");

    let body =
        json!({"host": "db", "port": 5432, "big": 123456789012345678901234567890u128, "ratio": 0.30000000000000004});
    let created = h.call(Method::PUT, CFG, Some(&h.writer), &[("if-none-match", "*")], Some(body.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let v1 = etag(&created);
    let again = h.call(Method::PUT, CFG, Some(&h.writer), &[("if-none-match", "*")], Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED, "create-only on an existing one");

    let read = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(etag(&read), v1);
    assert_eq!(read.body, body, "numbers beyond 64 bits and 17-digit doubles come back exactly");
    let not_modified = h.call(Method::GET, CFG, Some(&h.reader), &[("if-none-match", &v1)], None).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);

    let changed = h.call(Method::PUT, CFG, Some(&h.writer), &[("if-match", &v1)], Some(json!({"host": "db2"}))).await;
    assert_eq!(changed.status, StatusCode::OK);
    let v2 = etag(&changed);
    assert_ne!(v1, v2);
    let stale = h.call(Method::PUT, CFG, Some(&h.writer), &[("if-match", &v1)], Some(json!({"host": "lost"}))).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.body["kind"], "conflict");
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"host": "db2"}));

    // Merge patch: set, add, remove (null), nested.
    let patch = json!({"port": 6432, "tls": {"on": true}, "host": null});
    let patched = h
        .send(
            Request::patch(CFG)
                .header("authorization", format!("Bearer {}", h.writer))
                .header("content-type", "application/merge-patch+json")
                .header("if-match", &v2)
                .body(Body::from(patch.to_string()))
                .expect("r"),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(
        h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body,
        json!({"port": 6432, "tls": {"on": true}})
    );
    let stale_patch = h.call(Method::PATCH, CFG, Some(&h.writer), &[("if-match", &v2)], Some(json!({"a": 1}))).await;
    assert_eq!(stale_patch.status, StatusCode::PRECONDITION_FAILED);

    let v3 = etag(&patched);
    let stale_delete = h.call(Method::DELETE, CFG, Some(&h.writer), &[("if-match", &v2)], None).await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(h.call(Method::DELETE, CFG, Some(&h.writer), &[("if-match", &v3)], None).await.status, 204);
    assert_eq!(h.call(Method::DELETE, CFG, Some(&h.writer), &[], None).await.status, 404);
    // What the API wrote is what the store holds.
    assert!(h.store.get("sales", "database").await.expect("read").is_none());
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_writes_nothing() {
    let h = harness(Settings { max_body: 1024, ..Settings::default() }).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let auth = format!("Bearer {}", h.admin);
    let put = |body: Body, kind: &str| {
        Request::put(CFG).header("authorization", auth.clone()).header("content-type", kind).body(body).expect("r")
    };
    let wrong_type = h.send(put(Body::from("{}"), "text/plain")).await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let malformed = h.send(put(Body::from("{\"a\": "), "application/json")).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["kind"], "invalid_value");
    let repeated = h.send(put(Body::from(r#"{"a": 1, "a": 2}"#), "application/json")).await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST);
    let array = h.send(put(Body::from("[1]"), "application/json")).await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    // Declared too large: refused from the header, before the body is read.
    let declared = Request::put(CFG)
        .header("authorization", auth.clone())
        .header("content-type", "application/json")
        .header("content-length", "1000000")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(h.send(declared).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Too large without a length (streamed): refused once the limit is passed.
    let chunks = futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100])));
    let streamed = h.send(put(Body::from_stream(chunks), "application/json")).await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Names that reach outside the store.
    for name in ["..", "..%2F..%2Fetc", "a%00b", "%2Fetc"] {
        let uri = format!("/api/v1/namespaces/sales/configurations/{name}");
        let reply = h.call(Method::PUT, &uri, Some(&h.admin), &[], Some(json!({}))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(reply.body["kind"], "invalid_name", "{name}");
    }
    assert_eq!(h.store.load("sales").await.expect("load").len(), 0, "nothing was written");
    let weird_if_none_match =
        h.call(Method::PUT, CFG, Some(&h.admin), &[("if-none-match", "\"x\"")], Some(json!({}))).await;
    assert_eq!(weird_if_none_match.status, StatusCode::BAD_REQUEST);
    let route = h.call(Method::GET, "/api/v1/nothing", Some(&h.admin), &[], None).await;
    assert_eq!(route.status, StatusCode::NOT_FOUND);
    assert_eq!(route.headers[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn history_diff_and_rollback() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"port": 1}))).await;
    h.call(Method::PUT, CFG, Some(&h.admin), &[], Some(json!({"port": 2, "host": "x"}))).await;
    let history = h.call(Method::GET, &format!("{CFG}/history"), Some(&h.reader), &[], None).await;
    let revisions = history.body["revisions"].as_array().expect("revisions");
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["number"], 2);
    assert_eq!(revisions[0]["actor"], "alice", "the token's name is the actor");
    assert_eq!(revisions[1]["actor"], "deployer");
    assert_eq!(revisions[0]["tool"], "http");
    let one = h.call(Method::GET, &format!("{CFG}/history/1"), Some(&h.reader), &[], None).await;
    assert_eq!(one.body["value"], json!({"port": 1}));
    let diff = h.call(Method::GET, &format!("{CFG}/diff?from=1&to=2"), Some(&h.reader), &[], None).await;
    assert_eq!(
        diff.body["changes"],
        json!([{"pointer": "/port", "old": 1, "new": 2}, {"pointer": "/host", "old": null, "new": "x"}])
    );
    let back = h.call(Method::POST, &format!("{CFG}/rollback"), Some(&h.writer), &[], Some(json!({"to": 1}))).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"port": 1}));
    let history = h.call(Method::GET, &format!("{CFG}/history?limit=1"), Some(&h.reader), &[], None).await;
    assert_eq!(history.body["revisions"][0]["restores"], 1);
    assert_eq!(history.body["revisions"].as_array().map(Vec::len), Some(1));
    let stale = h
        .call(
            Method::POST,
            &format!("{CFG}/rollback"),
            Some(&h.writer),
            &[("if-match", "\"old\"")],
            Some(json!({"to": 2})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let never = h.call(Method::GET, &format!("{CFG}/history/99"), Some(&h.reader), &[], None).await;
    assert_eq!(never.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn schemas_refuse_violations_with_422_and_say_where() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let schema = json!({"schema": {"type": "object", "properties": {"port": {"type": "integer", "maximum": 65535}}}});
    let by_writer =
        h.call(Method::PUT, "/api/v1/namespaces/sales/schema", Some(&h.writer), &[], Some(schema.clone())).await;
    assert_eq!(by_writer.status, StatusCode::FORBIDDEN, "schemas are the admin's");
    let set = h.call(Method::PUT, "/api/v1/namespaces/sales/schema", Some(&h.admin), &[], Some(schema)).await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.body["mode"], "enforce");
    let bad = h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"port": 70000}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["kind"], "schema_violation");
    assert_eq!(bad.body["violations"][0]["pointer"], "/port");
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.status, 404, "nothing written");
    let check =
        h.call(Method::POST, &format!("{CFG}/validate"), Some(&h.reader), &[], Some(json!({"port": 70000}))).await;
    assert_eq!(check.body["valid"], false);
    let check = h.call(Method::POST, &format!("{CFG}/validate"), Some(&h.reader), &[], Some(json!({"port": 80}))).await;
    assert_eq!(check.body["valid"], true);
    let not_a_schema = json!({"schema": {"type": "no-such-type"}});
    let refused = h.call(Method::PUT, "/api/v1/namespaces/sales/schema", Some(&h.admin), &[], Some(not_a_schema)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn secrets_are_masked_revealed_for_reveal_and_kept_when_written_back() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"user": "app"}))).await;
    let set =
        h.call(Method::PUT, &format!("{CFG}/secrets/password"), Some(&h.writer), &[], Some(json!("s3cret"))).await;
    assert_eq!(set.status, StatusCode::OK);
    let masked = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await;
    assert_eq!(masked.body, json!({"user": "app", "password": "<secret>"}));
    let refused = h.call(Method::GET, &format!("{CFG}?reveal=true"), Some(&h.reader), &[], None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let revealed = h.call(Method::GET, &format!("{CFG}?reveal=true"), Some(&h.revealer), &[], None).await;
    assert_eq!(revealed.body["password"], "s3cret");
    assert_eq!(revealed.headers[header::CACHE_CONTROL], "no-store");
    // Written back masked, with a change elsewhere: the secret stays sealed as it was.
    let back =
        h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"user": "app2", "password": "<secret>"}))).await;
    assert_eq!(back.status, StatusCode::OK);
    let stored = h.store.get("sales", "database").await.expect("read").expect("there");
    assert!(confo::model::sealed::is_sealed(&stored.value["password"]), "still sealed in the store");
    assert!(!stored.value["password"].to_string().contains("s3cret"));
    let revealed = h.call(Method::GET, &format!("{CFG}?reveal=true"), Some(&h.revealer), &[], None).await;
    assert_eq!(revealed.body, json!({"user": "app2", "password": "s3cret"}));
    // A new value where the secret was is sealed, never stored in the clear.
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"user": "app2", "password": "n3w"}))).await;
    let stored = h.store.get("sales", "database").await.expect("read").expect("there");
    assert!(confo::model::sealed::is_sealed(&stored.value["password"]));
    let revealed = h.call(Method::GET, &format!("{CFG}?reveal=true"), Some(&h.revealer), &[], None).await;
    assert_eq!(revealed.body["password"], "n3w");
    // History shows it masked too.
    let one = h.call(Method::GET, &format!("{CFG}/history/2"), Some(&h.reader), &[], None).await;
    assert_eq!(one.body["value"]["password"], "<secret>");
}

/// The next SSE frames of a body until `want` events have arrived (bounded wait).
async fn read_events(body: &mut Body, want: usize) -> Vec<(Option<String>, String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < want {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("events within 10 s");
        let Some(Ok(frame)) = frame else { break };
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap_or(Value::Null);
                }
            }
            if !kind.is_empty() {
                events.push((id, kind, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn events_stream_changes_and_resume_from_last_event_id() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let events = "/api/v1/namespaces/sales/events";
    let open = |last: Option<&str>| {
        let mut request = Request::get(events).header("authorization", format!("Bearer {}", h.reader));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.body(Body::empty()).expect("r")
    };
    let response = h.router.clone().oneshot(open(None)).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"port": 1}))).await;
    // A writer that bypasses the server (another process) is seen too.
    h.store.put("sales", "cache", confo::Configuration::new(), Default::default()).await.expect("direct write");
    let got = read_events(&mut body, 2).await;
    let kinds: Vec<(&str, Option<&str>)> =
        got.iter().map(|(_, k, d)| (k.as_str(), d["configuration"].as_str())).collect();
    assert!(kinds.contains(&("created", Some("database"))), "{kinds:?}");
    assert!(kinds.contains(&("created", Some("cache"))), "{kinds:?}");
    let first_id = got[0].0.clone().expect("an id");
    drop(body);
    // Missed while disconnected, received on reconnecting with Last-Event-ID.
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"port": 2}))).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = h.router.clone().oneshot(open(Some(&first_id))).await.expect("infallible");
    let mut body = response.into_body();
    let replayed = read_events(&mut body, 2).await;
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!(replayed[1].1, "changed");
    assert_eq!(replayed[1].2["value"], json!({"port": 2}));
    // An id from before this namespace's watcher started: told to read again.
    drop(body);
    h.call(Method::PUT, "/api/v1/namespaces/hr", Some(&h.admin), &[], None).await;
    let request = Request::get("/api/v1/namespaces/hr/events")
        .header("authorization", format!("Bearer {}", h.reader))
        .header("last-event-id", &first_id)
        .body(Body::empty())
        .expect("r");
    let mut body = h.router.clone().oneshot(request).await.expect("infallible").into_body();
    assert_eq!(read_events(&mut body, 1).await[0].1, "resync");
    let missing = h.call(Method::GET, "/api/v1/namespaces/none/events", Some(&h.reader), &[], None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Event ids are `<epoch>-<n>`, the epoch new in each server process: an id from another
/// process (a restart: another `App` over the same store), a bare number (as before epochs), or
/// a number at the edge of u64 gets a `resync`, never silence and never a panic.
#[tokio::test]
async fn event_ids_are_never_reused_across_processes() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let subscribe = |router: &axum::Router, token: &str, last: Option<&str>| {
        let mut request =
            Request::get("/api/v1/namespaces/sales/events").header("authorization", format!("Bearer {token}"));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        router.clone().oneshot(request.body(Body::empty()).expect("r"))
    };
    let response = subscribe(&h.router, &h.reader, None).await.expect("infallible");
    let mut body = response.into_body();
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"port": 1}))).await;
    let got = read_events(&mut body, 1).await;
    let id = got[0].0.clone().expect("an id");
    let (epoch, n) = id.rsplit_once('-').expect("<epoch>-<n>");
    assert!(epoch.len() >= 8 && n.parse::<u64>().is_ok(), "{id}");
    assert_eq!(got[0].2["id"], json!(id), "the data's id is the SSE id");
    drop(body);
    // Another process over the same store, after changes: it cannot vouch for the id.
    let root = h.dir.path().join("Configurations");
    let restarted = common::harness_on(Some(format!("file:{}", root.display())), Settings::default()).await;
    restarted.call(Method::PUT, CFG, Some(&restarted.writer), &[], Some(json!({"port": 2}))).await;
    let edge = format!("{epoch}-18446744073709551615");
    let cases =
        [(&restarted, id.as_str()), (&h, "5"), (&h, "18446744073709551615"), (&h, edge.as_str()), (&h, "not an id")];
    for (server, last) in cases {
        let response = subscribe(&server.router, &server.reader, Some(last)).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{last}");
        let mut body = response.into_body();
        assert_eq!(read_events(&mut body, 1).await[0].1, "resync", "{last}");
    }
}

/// A burst of subscribers to a namespace nobody watches yet: every one gets its stream (they
/// wait for the first one's watcher to start), none a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_subscribers_waits_for_the_watch_to_start() {
    let h = harness(Settings::default()).await;
    for round in 0..5 {
        let ns = format!("burst{round}");
        h.call(Method::PUT, &format!("/api/v1/namespaces/{ns}"), Some(&h.admin), &[], None).await;
        let requests = (0..40).map(|_| {
            let request = Request::get(format!("/api/v1/namespaces/{ns}/events"))
                .header("authorization", format!("Bearer {}", h.reader))
                .body(Body::empty())
                .expect("r");
            let router = h.router.clone();
            tokio::spawn(async move { router.oneshot(request).await.expect("infallible").status() })
        });
        let statuses: Vec<StatusCode> =
            futures_util::future::join_all(requests).await.into_iter().map(|s| s.expect("task")).collect();
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "round {round}: {statuses:?}");
    }
}

#[tokio::test]
async fn cached_reads_follow_other_writers_and_the_servers_own() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"n": 1}))).await;
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"n": 1}));
    // The server's own write is read back at once.
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"n": 2}))).await;
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body, json!({"n": 2}));
    // Another writer: the watcher's event drops the cached entry (bounded wait).
    h.store
        .put("sales", "database", serde_json::from_value(json!({"n": 3})).expect("map"), Default::default())
        .await
        .expect("write");
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.body;
        if seen == json!({"n": 3}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, json!({"n": 3}), "the cache followed a write made elsewhere");
}

#[tokio::test]
async fn the_openapi_document_names_every_route() {
    let h = harness(Settings::default()).await;
    let doc = h.call(Method::GET, "/api/v1/openapi.json", None, &[], None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.0.3");
    let paths = doc.body["paths"].as_object().expect("paths");
    let routes = include_str!("../src/api.rs");
    let mut seen = 0;
    for line in routes.lines().filter(|l| l.contains(".route(\"/namespaces")) {
        let path = line.split('"').nth(1).expect("a path");
        assert!(paths.contains_key(&format!("/api/v1{path}")), "{path} is not in openapi.json");
        assert!(paths.contains_key(&format!("/api/v1/backends/{{backend}}{path}")), "{path} by backend");
        seen += 1;
    }
    assert!(seen >= 12, "read the routes ({seen})");
}

#[tokio::test]
async fn the_console_cookie_is_http_only_strict_and_changes_need_the_same_origin() {
    let h = harness(Settings::default()).await;
    let login_from = |origin: Option<&str>, token: &str| {
        let mut r = Request::post("/console/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "localhost:7070");
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        r.body(Body::from(format!("token={token}"))).expect("r")
    };
    // A sign-in posted from another site's page (login CSRF), or with no Origin: refused.
    for origin in [Some("http://evil.test"), Some("https://localhost:7070"), None] {
        let reply = h.send(login_from(origin, &h.admin)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(!reply.headers.contains_key(header::SET_COOKIE), "{origin:?}");
    }
    let reply = h.send(login_from(Some("http://localhost:7070"), &h.admin)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let cookie = reply.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(&h.admin), "the cookie holds a session id, not the token");
    let session = cookie.split(';').next().expect("pair").to_owned();
    assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY", "no framing (clickjacking)");
    assert!(reply.headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("frame-ancestors 'none'"));
    let with_cookie = |method: Method, origin: Option<&str>| {
        let mut r = Request::builder()
            .method(method)
            .uri("/api/v1/namespaces/sales")
            .header("cookie", &session)
            .header("host", "localhost:7070");
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        r.body(Body::empty()).expect("r")
    };
    assert_eq!(h.send(with_cookie(Method::PUT, None)).await.status, StatusCode::FORBIDDEN, "no Origin");
    assert_eq!(h.send(with_cookie(Method::PUT, Some("https://evil.test"))).await.status, StatusCode::FORBIDDEN);
    // The same host under another scheme is another origin.
    assert_eq!(h.send(with_cookie(Method::PUT, Some("https://localhost:7070"))).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.send(with_cookie(Method::PUT, Some("http://localhost:7070"))).await.status, StatusCode::CREATED);
    let read = h.send(with_cookie(Method::GET, None)).await;
    assert_eq!(read.status, StatusCode::OK, "reading needs no Origin");
    assert_eq!(read.headers[header::CACHE_CONTROL], "no-store", "no cache keeps an authenticated read");
    let read = h.call(Method::GET, "/api/v1/namespaces/sales", Some(&h.reader), &[], None).await;
    assert_eq!(read.headers[header::CACHE_CONTROL], "no-store");
    // A bad token on the sign-in page: 401 and the form again; nothing set.
    let reply = h.send(login_from(Some("http://localhost:7070"), "confo_nope")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.headers.contains_key(header::SET_COOKIE));
    // Pages without a session go to the sign-in page.
    let page = h.send(Request::get("/console").body(Body::empty()).expect("r")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/console/login");
}

/// DNS rebinding: a page at `http://attacker.example:7070` whose name now resolves to
/// 127.0.0.1 reads from the operator's browser what an anonymous reader may; its requests carry
/// its own name in `Host`, and get 421.
#[tokio::test]
async fn requests_addressed_to_another_host_name_get_421() {
    let h =
        harness(Settings { anonymous_read: true, allowed_hosts: vec!["confo.internal".into()], ..Default::default() })
            .await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[("host", "localhost")], None).await;
    for host in ["attacker.example:7070", "attacker.example", "127.0.0.1.attacker.example", "localhost.evil:7070"] {
        for path in ["/api/v1/namespaces", "/console/login", "/api/v1/openapi.json"] {
            let reply = h.call(Method::GET, path, None, &[("host", host)], None).await;
            assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST, "{host} {path}");
            assert_eq!(reply.headers[header::CONTENT_TYPE], "application/problem+json", "{host} {path}");
            assert_eq!(reply.body["kind"], "misdirected_request", "{host} {path}");
        }
        // With a token too: every request.
        let reply = h.call(Method::GET, "/api/v1/namespaces", Some(&h.admin), &[("host", host)], None).await;
        assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
    for host in
        ["localhost:7070", "LOCALHOST", "127.0.0.1:1", "[::1]:7070", "[::1]", "confo.internal:443", "Confo.Internal."]
    {
        let reply = h.call(Method::GET, "/api/v1/namespaces", None, &[("host", host)], None).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn names_cannot_inject_headers_and_non_empty_namespaces_need_recursive() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    let uri = "/api/v1/namespaces/sales/configurations/a%0D%0ASet-Cookie:%20x=1";
    let reply = h.call(Method::PUT, uri, Some(&h.admin), &[], Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.headers.contains_key(header::SET_COOKIE));
    h.call(Method::PUT, CFG, Some(&h.admin), &[], Some(json!({"a": 1}))).await;
    let refused = h.call(Method::DELETE, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["kind"], "not_empty");
    let gone = h.call(Method::DELETE, "/api/v1/namespaces/sales?recursive=true", Some(&h.admin), &[], None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(h.call(Method::GET, CFG, Some(&h.reader), &[], None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_removed_token_stops_working_and_ends_its_console_sessions() {
    let h = harness(Settings::default()).await;
    let login = Request::post("/console/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "127.0.0.1:7070")
        .header("origin", "http://127.0.0.1:7070")
        .body(Body::from(format!("token={}", h.writer)))
        .expect("r");
    let cookie = h.send(login).await.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    let session = cookie.split(';').next().expect("pair").to_owned();
    let page = || Request::get("/console").header("cookie", &session).body(Body::empty()).expect("r");
    assert_eq!(h.send(page()).await.status, StatusCode::OK);
    assert_eq!(h.call(Method::GET, "/api/v1/namespaces", Some(&h.writer), &[], None).await.status, 200);
    let path = h.dir.path().join("tokens.json");
    let mut file = confo_serve::auth::TokenFile::load(&path).expect("load");
    assert!(file.remove("deployer"));
    file.save(&path).expect("save");
    // The file is read again at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(h.call(Method::GET, "/api/v1/namespaces", Some(&h.writer), &[], None).await.status, 401);
    let after = h.send(page()).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "back to the sign-in page");
    assert_eq!(
        h.call(Method::GET, "/api/v1/namespaces", Some(&h.reader), &[], None).await.status,
        200,
        "others unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_namespaces_than_inotify_allows_per_user_are_all_followed() {
    // Linux's default is 128 inotify instances per user: one per watched namespace would run
    // out; the server shares one subscription per backend. (One token holds every stream here:
    // its limit raised.)
    let streams = confo_serve::auth::StreamLimits { max: 1024, per_token: 200, per_address: 4 };
    let h = harness(Settings { streams, ..Settings::default() }).await;
    let count = 150;
    for i in 0..count {
        h.store.create_namespace(&format!("ns{i}")).await.expect("namespace");
    }
    let mut streams = Vec::new();
    for i in 0..count {
        let request = Request::get(format!("/api/v1/namespaces/ns{i}/events"))
            .header("authorization", format!("Bearer {}", h.reader))
            .body(Body::empty())
            .expect("r");
        let response = h.router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "ns{i}");
        streams.push(response.into_body());
    }
    let last = count - 1;
    h.store
        .put(&format!("ns{last}"), "db", serde_json::from_value(json!({"n": 1})).expect("map"), Default::default())
        .await
        .expect("write");
    let got = read_events(&mut streams[last], 1).await;
    assert_eq!((got[0].1.as_str(), got[0].2["configuration"].as_str()), ("created", Some("db")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_lose_no_field() {
    // Eight clients patching different fields of one configuration at once, without
    // If-Match: each patch re-reads and retries on a conflict, so every field arrives.
    let h = std::sync::Arc::new(harness(Settings::default()).await);
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({}))).await;
    let mut tasks = Vec::new();
    for client in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5 {
                let patch = json!({ format!("c{client}_{round}"): round });
                let reply = h.call(Method::PATCH, CFG, Some(&h.writer), &[], Some(patch)).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let stored = h.store.get("sales", "database").await.expect("read").expect("there");
    assert_eq!(stored.value.len(), 40, "every field of every client: {:?}", stored.value.keys().collect::<Vec<_>>());
    let history = h.call(Method::GET, &format!("{CFG}/history?limit=1000"), Some(&h.reader), &[], None).await;
    assert_eq!(history.body["revisions"].as_array().map(Vec::len), Some(41), "one revision per patch and the creation");
}

/// Every error of the API is problem+json, also the router's and extractors' own: a method the
/// route does not take (405, with `Allow`), a query string or a path part that does not parse.
#[tokio::test]
async fn errors_the_router_makes_are_problems_too() {
    let h = harness(Settings::default()).await;
    h.call(Method::PUT, "/api/v1/namespaces/sales", Some(&h.admin), &[], None).await;
    h.call(Method::PUT, CFG, Some(&h.writer), &[], Some(json!({"n": 1}))).await;
    let cases = [
        (Method::DELETE, "/api/v1/backends".to_owned(), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (Method::POST, CFG.to_owned(), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (Method::GET, format!("{CFG}?reveal=perhaps"), StatusCode::BAD_REQUEST, "invalid_value"),
        (
            Method::GET,
            "/api/v1/namespaces/sales/configurations?values=2".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (Method::GET, format!("{CFG}/history/not-a-number"), StatusCode::BAD_REQUEST, "invalid_value"),
        (Method::GET, format!("{CFG}/history?limit=-1"), StatusCode::BAD_REQUEST, "invalid_value"),
    ];
    for (method, uri, status, kind) in cases {
        let reply = h.call(method.clone(), &uri, Some(&h.admin), &[], None).await;
        assert_eq!(reply.status, status, "{method} {uri}: {:?}", reply.body);
        let content_type = reply.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(content_type, "application/problem+json", "{method} {uri}");
        assert_eq!(
            (reply.body["kind"].as_str(), reply.body["status"].as_u64()),
            (Some(kind), Some(status.as_u16().into()))
        );
        assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{:?}", reply.body);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(reply.headers.get(header::ALLOW).is_some(), "the Allow header is kept");
        }
    }
}

/// A token for `x?` types `x ` (trailing space) in the console's new-namespace form: the name
/// created is `x`, which the token may not create; refused, and nothing created.
#[tokio::test]
async fn the_console_checks_a_new_namespace_against_the_name_it_creates() {
    let h = harness(Settings::default()).await;
    let path = h.dir.path().join("tokens.json");
    let mut file = confo_serve::auth::TokenFile::load(&path).expect("load");
    let narrow = file.add("narrow", vec![confo_serve::auth::Role::Write], "x?", "*").expect("token");
    file.save(&path).expect("save");
    // The file is read again at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let form = |uri: &str, body: String, cookie: Option<&str>| {
        let mut r = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "localhost:7070")
            .header("origin", "http://localhost:7070");
        if let Some(cookie) = cookie {
            r = r.header("cookie", cookie);
        }
        r.body(Body::from(body)).expect("r")
    };
    let signed_in = h.send(form("/console/login", format!("token={narrow}"), None)).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    let cookie = signed_in.headers[header::SET_COOKIE].to_str().expect("ascii").to_owned();
    let session = cookie.split(';').next().expect("pair").to_owned();
    let refused = h.send(form("/console/b/main/namespaces", "name=x%20".into(), Some(&session))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!h.store.namespaces().await.expect("list").iter().any(|n| n == "x"), "x was created");
    let made = h.send(form("/console/b/main/namespaces", "name=xy%20".into(), Some(&session))).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    assert!(h.store.namespaces().await.expect("list").iter().any(|n| n == "xy"));
}
