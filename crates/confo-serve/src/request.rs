//! What every handler reads from a request: who is calling ([`Caller`]), which backend,
//! namespace and configuration ([`Place`]), and a JSON body ([`JsonBody`]) read within limits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::auth::{Grant, Role};
use crate::problem::Problem;
use crate::App;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "confo_session";

/// The client's address, put on each request by [`crate::listen`].
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client's IP address (loopback when unknown: a request built in a test).
pub fn peer_ip(parts: &Parts) -> IpAddr {
    parts.extensions.get::<Peer>().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |p| p.0.ip())
}

/// Who is calling: a token's grant (Bearer, or the console's session), or anonymous.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What it may do.
    pub grant: Grant,
    /// Signed in through the console (cookie), rather than with a Bearer token.
    pub by_cookie: bool,
    /// No token at all (`--anonymous-read`).
    pub anonymous: bool,
}

impl Caller {
    /// `Ok` if the caller has `role` there; 401 for an anonymous caller that needs more than
    /// reading, 403 otherwise.
    pub fn require(&self, role: Role, backend: &str, namespace: Option<&str>) -> Result<(), Problem> {
        if self.anonymous && role != Role::Read {
            return Err(Problem::unauthenticated(format!(
                "{} needs a token: send Authorization: Bearer TOKEN",
                match role {
                    Role::Reveal => "revealing secrets",
                    _ => "writing",
                }
            )));
        }
        self.grant.require(role, backend, namespace)
    }
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a request made from a browser page (a change made with the console's cookie, a
/// sign-in) comes from this server's own pages: its `Origin` must be this server's origin,
/// scheme included (`http://` for a plain server, `https://` behind TLS) and the host it was
/// sent to.
pub fn same_origin(parts: &Parts, app: &App) -> bool {
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let scheme = if app.settings.secure_cookies { "https" } else { "http" };
    match (origin, host) {
        (Some(origin), Some(host)) => {
            origin.split_once("://").is_some_and(|(given, rest)| given.eq_ignore_ascii_case(scheme) && rest == host)
        }
        _ => false,
    }
}

/// The caller of a request, or `Err` (401, 403, 429) before any handler runs.
pub fn caller(parts: &Parts, app: &App) -> Result<Caller, Problem> {
    let ip = peer_ip(parts);
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Problem::unauthenticated("the Authorization header must be \"Bearer TOKEN\""))?;
        if let Some(wait) = app.limiter.blocked(ip) {
            return Err(too_many(wait));
        }
        return match app.tokens.as_ref().and_then(|t| t.check(token)) {
            Some(grant) => Ok(Caller { grant, by_cookie: false, anonymous: false }),
            None => {
                app.limiter.fail(ip);
                Err(Problem::unauthenticated("unknown token"))
            }
        };
    }
    if let Some(id) = cookie(parts, SESSION_COOKIE) {
        // A session lasts while its token does: `confo token rm` ends it.
        let live = app.sessions.get(id).filter(|(_, hash)| app.tokens.as_ref().is_some_and(|t| t.has_hash(hash)));
        if let Some((grant, _)) = live {
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) && !same_origin(parts, app) {
                return Err(Problem::forbidden(
                    "a change made with the console's cookie must come from the console's own pages (Origin)",
                ));
            }
            return Ok(Caller { grant, by_cookie: true, anonymous: false });
        }
    }
    if app.settings.anonymous_read {
        return Ok(Caller { grant: Grant::anonymous(), by_cookie: false, anonymous: true });
    }
    Err(Problem::unauthenticated("no token: send Authorization: Bearer TOKEN (make one with confo token add)"))
}

/// 429 with `Retry-After`.
pub fn too_many(wait: u64) -> Problem {
    let mut problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed attempts from this address; try again in {wait} s"),
    );
    problem.retry_after = Some(wait.max(1));
    problem
}

impl FromRequestParts<App> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        caller(parts, app)
    }
}

/// Where a request points: the backend (the first when the URL names none), namespace,
/// configuration and revision, from the path.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// `/api/v1/backends/{backend}/…`; `None` for `/api/v1/namespaces/…`.
    pub backend: Option<String>,
    /// The namespace.
    pub namespace: String,
    /// The configuration.
    pub configuration: String,
    /// A revision number.
    pub number: Option<u64>,
    /// A field (secrets).
    pub field: String,
}

impl FromRequestParts<App> for Place {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, app)
            .await
            .map_err(|e| Problem::bad_request(format!("the path is not valid: {e}")))?;
        let number = match params.remove("number") {
            Some(n) => Some(n.parse().map_err(|_| Problem::bad_request(format!("{n:?} is not a revision number")))?),
            None => None,
        };
        Ok(Place {
            backend: params.remove("backend"),
            namespace: params.remove("ns").unwrap_or_default(),
            configuration: params.remove("cfg").unwrap_or_default(),
            field: params.remove("field").unwrap_or_default(),
            number,
        })
    }
}

/// A JSON request body: `Content-Type` JSON (or `application/merge-patch+json`, or another
/// `+json`), at most [`crate::Settings::max_body`] bytes (413 from `Content-Length` before
/// reading, or as soon as more arrives), within [`crate::Settings::body_timeout`] (408), and
/// strict JSON ([`confo::model::json::parse`]: a repeated key is an error, numbers are kept exactly).
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest<App> for JsonBody {
    type Rejection = Problem;

    async fn from_request(request: Request, app: &App) -> Result<Self, Problem> {
        let kind = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = kind.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be JSON (Content-Type: application/json), not {kind:?}"),
            ));
        }
        let limit = app.settings.max_body;
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let read = tokio::time::timeout(app.settings.body_timeout, axum::body::to_bytes(request.into_body(), limit));
        let bytes = match read.await {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    format!("the body did not arrive within {} s", app.settings.body_timeout.as_secs()),
                ))
            }
            Ok(Err(_)) => return Err(too_large(limit)),
            Ok(Ok(bytes)) => bytes,
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| Problem::bad_request("the body is not UTF-8"))?;
        confo::model::json::parse(text, "the request body").map(JsonBody).map_err(Problem::from)
    }
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is larger than the {limit} bytes this server accepts"),
    )
}

impl JsonBody {
    /// The body as a JSON object (a configuration); 400 otherwise.
    pub fn object(self) -> Result<confo::Configuration, Problem> {
        match self.0 {
            Value::Object(map) => Ok(map),
            other => Err(Problem::bad_request(format!(
                "the body must be a JSON object (a configuration), not {}",
                confo::model::json::kind(&other)
            ))),
        }
    }
}
