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
pub mod shared;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use confo::history::Author;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            anonymous_read: false,
            max_body: 1 << 20,
            body_timeout: Duration::from_secs(10),
            secure_cookies: false,
            watch: WatchOptions::default(),
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
        let next_id = Arc::new(AtomicU64::new(1));
        let backends = backends
            .into_iter()
            // Every namespace's watcher shares one subscription to the backend's changes.
            .map(|(name, store)| (name, Store::new(shared::SharedHints::wrap(store.backend().clone()))))
            .map(|(name, store)| Served {
                describe: store.backend().describe(),
                cache: Cache::new(store.clone(), settings.watch, next_id.clone()),
                name,
                store,
            })
            .collect();
        App(Arc::new(Inner {
            backends,
            tokens,
            sessions: Sessions::default(),
            limiter: Limiter::default(),
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
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Headers on every answer: no framing by other sites (clickjacking), scripts and styles from
/// this server only, no content sniffing, no referrer to other sites.
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
