//! Errors as `application/problem+json` (RFC 9457): `{"type", "title", "status", "detail",
//! "kind"}`, the status taken from confo's one error classification.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use confo::{Error, ErrorKind};
use serde_json::json;

/// A failure to answer with.
#[derive(Debug)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable kind (`not_found`, `conflict`, …; confo's [`ErrorKind::as_str`] or the
    /// server's own: `unauthenticated`, `forbidden`, `unsupported_media_type`, …).
    pub kind: &'static str,
    /// What went wrong, in a sentence (never a secret).
    pub detail: String,
    /// Extra: violations of a schema.
    pub violations: Option<Box<serde_json::Value>>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of the server's own.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, kind, detail: detail.into(), violations: None, retry_after: None }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_value", detail)
    }

    /// 401: no credentials, or unknown ones.
    pub fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    /// 403: known, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 for something the server itself does not have (a backend name, a route).
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, ErrorKind::NotFound.as_str(), detail)
    }

    /// From a confo error of a write made with a precondition the client gave (`If-Match`,
    /// `If-None-Match`): a conflict is then 412, not 409.
    pub fn precondition(error: Error, given: bool) -> Problem {
        let mut problem = Problem::from(error);
        if given && problem.kind == ErrorKind::Conflict.as_str() {
            problem.status = StatusCode::PRECONDITION_FAILED;
        }
        problem
    }

    /// The status confo's error kind maps to.
    pub fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::InvalidName | ErrorKind::InvalidSpec | ErrorKind::InvalidValue => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists | ErrorKind::NotEmpty | ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::SchemaViolation => StatusCode::UNPROCESSABLE_ENTITY,
            // The store is down, refused the server's credentials, or a write's outcome is in
            // doubt: the request may succeed later; nothing was half-written.
            ErrorKind::Unavailable | ErrorKind::Unauthorized | ErrorKind::Insecure | ErrorKind::PersistIncomplete => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        let kind = error.cause().kind();
        let status = Problem::status_of(kind);
        let violations = match error.cause() {
            Error::SchemaViolation { violations, .. } => serde_json::to_value(violations).ok().map(Box::new),
            _ => None,
        };
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        Problem { status, kind: kind.as_str(), detail: error.to_string(), violations, retry_after }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("urn:confo:problem:{}", self.kind),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "kind": self.kind,
        });
        if let Some(violations) = self.violations {
            body["violations"] = *violations;
        }
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"confo\""));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
