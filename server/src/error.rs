//! Every error the HTTP face answers, in the platform's body
//! `{"error": {"code": "0x…", "message": "…"}}` (docs/http.md, "Errors"),
//! whichever API the request went to.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use joblog::domain::DomainError;
use joblog::Error;
use serde_json::json;

/// The platform's error codes joblog answers with (docs/http.md, "Errors").
pub mod code {
    /// A malformed request, a query joblog cannot serve, bad input.
    pub const BAD_REQUEST: &str = "0x80040203";
    /// A transition the state machine refuses.
    pub const REFUSED: &str = "0x80040265";
    /// No credentials, or credentials that do not authenticate.
    pub const UNAUTHENTICATED: &str = "0x80072560";
    /// A missing privilege.
    pub const DENIED: &str = "0x80040220";
    /// No such row, or one the caller may not read.
    pub const NOT_FOUND: &str = "0x80040217";
    /// A method the resource does not have.
    pub const METHOD: &str = "0x80060888";
    /// `If-Match` / `If-None-Match` not satisfied.
    pub const PRECONDITION: &str = "0x80060882";
    /// A body over the limit.
    pub const TOO_LARGE: &str = "0x8004e102";
    /// Too many requests at once: come back after `Retry-After`.
    pub const TOO_MANY: &str = "0x80072322";
    /// The store failed (I/O, damage): nothing the caller can fix.
    pub const INTERNAL: &str = "0x80040216";
    /// The store is busy or closing.
    pub const UNAVAILABLE: &str = "0x80040228";
}

/// An error answer: status, platform code, message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The platform's hexadecimal code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds to wait (429, 503).
    pub retry_after: Option<u64>,
    /// More about it, for a program (an import's bad lines): the body's
    /// `error.details`.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None, details: None }
    }

    /// 400: a bad request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message)
    }

    /// 404: nothing there the caller may see.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    /// 401: who is calling is not known.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "authentication required: send `Authorization: Bearer TOKEN` (a token from `joblog token create`) or sign in",
        )
    }

    /// 405.
    pub fn method() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, code::METHOD, "this method is not allowed on this resource")
    }

    /// 413: a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code::TOO_LARGE, format!("the request body is over {limit} bytes"))
    }

    /// 429 with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY,
            format!("too many requests at once; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Domain(d) => d.into(),
            Error::StateHeld | Error::ServiceRunning => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, e.to_string())
            }
            Error::WorkersStopped => Self::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, e.to_string()),
            // The engine's own failures: said as they are (the operator
            // needs the file and offset), never as the caller's fault.
            other => {
                tracing::error!(error = %other, "request failed in the store");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, other.to_string())
            }
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(d: DomainError) -> Self {
        let message = d.to_string();
        match d {
            DomainError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message),
            DomainError::Denied { .. } => Self::new(StatusCode::FORBIDDEN, code::DENIED, message),
            DomainError::Changed { .. } => Self::new(StatusCode::PRECONDITION_FAILED, code::PRECONDITION, message),
            DomainError::Refused { .. }
            | DomainError::PlatformGenerated { .. }
            | DomainError::NotDue { .. }
            | DomainError::NotResubmittable { .. }
            | DomainError::NotDeletable { .. } => Self::new(StatusCode::BAD_REQUEST, code::REFUSED, message),
            _ => Self::new(StatusCode::BAD_REQUEST, code::BAD_REQUEST, message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl From<crate::import::ImportError> for ApiError {
    fn from(e: crate::import::ImportError) -> Self {
        use crate::import::ImportError as E;
        let message = e.to_string();
        match e {
            E::Write { source, .. } => {
                let mut a = ApiError::from(source);
                a.message = message;
                a
            }
            E::Unreadable { .. } => Self::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message),
            E::BadLines { errors, .. } => {
                let mut a = Self::bad_request(message);
                a.details = Some(json!({"errors": errors}));
                a
            }
            E::LineTooLong { .. } | E::TooMany { .. } => Self::bad_request(message),
        }
    }
}
