//! What the router tests share: a server over a real store, and requests to it.

#![allow(dead_code)] // each test file uses a different part

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use confo::secrets::Keyring;
use confo::Store;
use confo_serve::auth::{Role, TokenFile, Tokens};
use confo_serve::{router, App, Settings};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A server over a fresh file store.
pub async fn harness(settings: Settings) -> Harness {
    harness_on(None, settings).await
}

pub struct Harness {
    pub router: Router,
    pub store: Store,
    pub admin: String,
    pub writer: String,
    pub reader: String,
    pub revealer: String,
    pub dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// A server over `spec` (a fresh file store when `None`).
pub async fn harness_on(spec: Option<String>, settings: Settings) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec.unwrap_or_else(|| {
        let root = dir.path().join("Configurations");
        std::fs::create_dir(&root).expect("store folder");
        format!("file:{}", root.display())
    });
    let mut file = TokenFile::default();
    let admin = file.add("alice", vec![Role::Admin], "*", "*").expect("token");
    let writer = file.add("deployer", vec![Role::Write], "sales*", "*").expect("token");
    let reader = file.add("viewer", vec![Role::Read], "*", "*").expect("token");
    let revealer = file.add("auditor", vec![Role::Read, Role::Reveal], "*", "*").expect("token");
    let tokens_path = dir.path().join("tokens.json");
    file.save(&tokens_path).expect("save tokens");
    let mut keyring = Keyring::new();
    keyring.generate(None).expect("key");
    let store = Store::open(&spec.parse().expect("spec")).await.expect("store");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = App::new(
        vec![("main".into(), store.clone())],
        Some(Tokens::open(&tokens_path).expect("tokens")),
        Some(keyring),
        settings,
        stopped,
    );
    Harness { router: router(app), store, admin, writer, reader, revealer, dir, _stop: stop }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Harness {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Reply { status, headers, body }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).expect("request")).await
    }
}

pub fn etag(reply: &Reply) -> String {
    reply.headers.get(header::ETAG).expect("an ETag").to_str().expect("ascii").to_owned()
}
