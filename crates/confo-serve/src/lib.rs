//! `confo serve`: confo's HTTP API (`/api/v1`, JSON, documented in `docs/API.md` and served as
//! OpenAPI at `/api/v1/openapi.json`) and its web console (`/console`, server-rendered HTML
//! with one vendored copy of htmx), over one or several backends.
//!
//! Layers, outside in: [`listen`] accepts connections (TLS, limits, timeouts, graceful
//! shutdown); [`router`] routes; [`request`] authenticates a request and reads its body;
//! [`api`] and [`console`] answer, through each backend's [`cache::Cache`] for reads and
//! straight to its [`confo::Store`] for writes, with preconditions.

pub mod api;
pub mod auth;
pub mod cache;
pub mod console;
mod diff;
pub mod listen;
pub mod problem;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use confo::backend::shared::SharedSubscription;
use confo::model::history::Author;
use confo::secrets::Keyring;
use confo::{Store, WatchOptions};

use crate::auth::{Limiter, Sessions, Tokens};
use crate::cache::Cache;
use crate::problem::Problem;

/// One backend the server serves, by name.
#[derive(Debug)]
pub struct Served {
    /// Its name in URLs (`/api/v1/backends/{name}/…`) and the console.
    pub name: String,
    /// What it is (the backend's own description, no password).
    pub describe: String,
    /// The store its writes go to.
    pub store: Store,
    /// Its watched cache and events.
    pub cache: Cache,
}

/// How the server behaves (the command line's options).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests without a token may read (`--anonymous-read`).
    pub anonymous_read: bool,
    /// The largest request body accepted, in bytes (413 beyond, before reading it).
    pub max_body: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Whether the console's cookie is marked `Secure` (served over TLS).
    pub secure_cookies: bool,
    /// How the namespaces are watched.
    pub watch: WatchOptions,
    /// The host names requests may be addressed to beyond `localhost`, `127.0.0.1`, `[::1]`
    /// and the listen address (`--allowed-host`, lowercase); any other `Host` gets 421 (a DNS
    /// rebinding attack addresses the server by the attacker's name).
    pub allowed_hosts: Vec<String>,
    /// Event streams held open at once (`--max-streams`), per token (`--streams-per-token`,
    /// [`auth::STREAMS_PER_TOKEN`]) and per anonymous address ([`auth::STREAMS_PER_ADDRESS`]);
    /// beyond, 429.
    pub streams: auth::StreamLimits,
}

impl Settings {
    /// Whether a request addressed to `host` (a `Host` header or URL authority, with or
    /// without a port) is answered.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim();
        let name = if host.starts_with('[') {
            // An IPv6 literal: `[::1]` or `[::1]:7070`.
            host.split_once(']').map_or(host, |(literal, _)| &host[..literal.len() + 1])
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            }
        };
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        ["localhost", "127.0.0.1", "[::1]"].contains(&name.as_str()) || self.allowed_hosts.contains(&name)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            anonymous_read: false,
            max_body: 1 << 20,
            body_timeout: Duration::from_secs(10),
            secure_cookies: false,
            watch: WatchOptions::default(),
            allowed_hosts: Vec::new(),
            streams: auth::StreamLimits {
                max: 1024,
                per_token: auth::STREAMS_PER_TOKEN,
                per_address: auth::STREAMS_PER_ADDRESS,
            },
        }
    }
}

/// The server's shared state: cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

/// What [`App`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The backends, in the order given (the first is the one `/api/v1/namespaces` serves).
    pub backends: Vec<Served>,
    /// The accepted tokens (`None`: none, so only `--anonymous-read` lets anyone in).
    pub tokens: Option<Tokens>,
    /// Console sessions.
    pub sessions: Sessions,
    /// Failed logins per address.
    pub limiter: Limiter,
    /// The event streams open.
    pub streams: crate::auth::Streams,
    /// The keyring that opens secrets for `reveal` tokens and seals new ones (if any).
    pub keyring: Option<Keyring>,
    /// The settings.
    pub settings: Settings,
    /// Who writes are recorded as (the actor is each token's name).
    author: Author,
    /// Ended when the server shuts down (server-sent event streams end with it).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl App {
    /// A server over `backends` (name, store), accepting `tokens`.
    pub fn new(
        backends: Vec<(String, Store)>,
        tokens: Option<Tokens>,
        keyring: Option<Keyring>,
        settings: Settings,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> App {
        let ids = Arc::new(cache::EventIds::new());
        let backends = backends
            .into_iter()
            // Every namespace's watcher shares one subscription to the backend's changes.
            .map(|(name, store)| (name, Store::new(SharedSubscription::wrap(store.backend().clone()))))
            .map(|(name, store)| Served {
                describe: store.backend().describe(),
                cache: Cache::new(store.clone(), settings.watch, ids.clone()),
                name,
                store,
            })
            .collect();
        App(Arc::new(Inner {
            backends,
            tokens,
            sessions: Sessions::default(),
            limiter: Limiter::default(),
            streams: Default::default(),
            keyring,
            settings,
            author: Author::current("http"),
            shutdown,
        }))
    }

    /// The backend named `name` (`None`: the first).
    pub fn backend(&self, name: Option<&str>) -> Result<&Served, Problem> {
        match name {
            None => self.0.backends.first().ok_or_else(|| Problem::not_found("the server serves no backend")),
            Some(name) => self
                .0
                .backends
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| Problem::not_found(format!("no backend named {name:?} is served here"))),
        }
    }

    /// The store of `served`, its writes recorded as made by `actor`.
    pub fn store_as(&self, served: &Served, actor: &str) -> Store {
        served.store.with_author(Arc::new(self.0.author.clone().with_actor(actor)))
    }
}

impl std::ops::Deref for App {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Every route: the API under `/api/v1`, the console under `/console`, `/` redirecting to it.
pub fn router(app: App) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(console::routes())
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(axum::middleware::from_fn(problems_everywhere))
        .layer(axum::middleware::from_fn_with_state(app.clone(), allowed_host))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// 421 (problem+json) for a request addressed to a host the server is not reachable as
/// ([`Settings::host_allowed`]): a web page whose name was rebound to this address sends its
/// own name. A request that names no host at all (no `Host` header; no browser sends one) is
/// answered.
async fn allowed_host(
    axum::extract::State(app): axum::extract::State<App>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    match host {
        Some(host) if !app.settings.host_allowed(&host) => Problem::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            "this server does not answer to that host name (start it with --allowed-host NAME to add one)",
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Every error of the API is problem+json, also those the router and extractors make
/// themselves (405 with its `Allow`, a query string that does not parse, a path that does
/// not): their text becomes the problem's detail.
async fn problems_everywhere(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !api || status.as_u16() < 400 || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let kind = match status {
        StatusCode::BAD_REQUEST => "invalid_value",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_value",
        StatusCode::TOO_MANY_REQUESTS => "too_many_attempts",
        _ => "http_error",
    };
    let mut problem = Problem::new(status, kind, text).into_response();
    // What the original answer said beyond its body (`Allow` on a 405) is kept.
    for (name, value) in
        parts.headers.iter().filter(|(name, _)| *name != header::CONTENT_TYPE && *name != header::CONTENT_LENGTH)
    {
        problem.headers_mut().insert(name.clone(), value.clone());
    }
    problem
}

/// Headers on every answer: no framing by other sites (clickjacking), scripts and styles from
/// this server only, no content sniffing, no referrer to other sites, no caching (unless the
/// handler set its own `Cache-Control`).
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    // Answers may hold configurations, revealed secrets and tokens' pages: no cache (the
    // browser's, a proxy's) keeps them, unless a handler said otherwise.
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// What `confo serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The backends by name, in order (the first is `/api/v1/namespaces`'s).
    pub backends: Vec<(String, confo::BackendSpec)>,
    /// The address to listen on (`127.0.0.1:7070`; port 0 picks a free one).
    pub listen: String,
    /// The tokens file (`None`: the default path, [`auth::default_tokens_path`]).
    pub tokens: Option<std::path::PathBuf>,
    /// TLS: a PEM certificate chain and its PEM private key.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Server settings.
    pub settings: Settings,
    /// Connection limits.
    pub limits: listen::Limits,
}

/// Runs `confo serve` until SIGINT or SIGTERM: opens the backends, binds, prints one line
/// `listening on http://ADDRESS` on stdout, serves, then shuts down gracefully. Errors are
/// sentences for the command line.
pub fn run(config: ServeConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("confo-serve")
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    runtime.block_on(run_async(config))
}

async fn run_async(mut config: ServeConfig) -> Result<(), String> {
    let tokens_path = config.tokens.clone().unwrap_or_else(auth::default_tokens_path);
    let tokens =
        if config.settings.anonymous_read && !tokens_path.exists() { None } else { Some(Tokens::open(&tokens_path)?) };
    let keyring = Keyring::find().map_err(|e| e.to_string())?;
    let mut stores = Vec::new();
    for (name, spec) in &config.backends {
        let store = Store::open(spec).await.map_err(|e| format!("backend {name:?}: {e}"))?;
        stores.push((name.clone(), store));
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(listen::tls_config(cert, key)?),
        None => None,
    };
    config.settings.secure_cookies = tls.is_some();
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if !address.ip().is_loopback() && tls.is_none() {
        tracing::warn!("listening on {address} without TLS: tokens cross the network in the clear");
    }
    if !address.ip().is_loopback() && config.settings.allowed_hosts.is_empty() {
        tracing::warn!(
            "listening on {address} with no --allowed-host: only requests addressed to {} or loopback names are answered",
            address.ip()
        );
    }
    // The listen address itself, as a client would write it in a URL.
    config.settings.allowed_hosts.push(match address.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = App::new(stores, tokens, keyring, config.settings.clone(), stopped);
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on {scheme}://{address} (console: {scheme}://{address}/console)");
        let _ = out.flush();
    }
    let shutdown = async move {
        signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    listen::serve(listener, router(app), tls, config.limits.clone(), shutdown).await;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
