//! Who is calling (docs/http.md, "Who is calling"): a bearer token from
//! `joblog token create`, sent as `Authorization: Bearer TOKEN`, or the
//! dashboard's session cookie obtained by signing in with one. The
//! token's user is the acting user, with the privileges and depths of the
//! command line. Every request checks the token again
//! (`Engine::authenticate`), so a revoked or expired token, or a
//! deactivated user, stops working at once, cookie sessions included.
//!
//! Cross-site requests: the cookie is `HttpOnly; SameSite=Strict`, so a
//! browser never sends it from another site; besides, a request that
//! changes data with the cookie must come from the same origin (its
//! `Origin`, else `Referer`, names the `Host` it was sent to) and carry
//! the session's CSRF token (header `X-CSRF-Token`, or the form field
//! `csrf`, checked by the form's handler with [`Caller::check_csrf`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use joblog::Session;

use crate::error::{code, ApiError};
use crate::{blocking, AppState};

/// The dashboard's session cookie.
pub const COOKIE: &str = "joblog_session";
/// How long a signed-in browser session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Signed-in sessions kept at once; the least recently used goes first.
pub const MAX_SESSIONS: usize = 10_000;

/// The acting user of a request.
#[derive(Clone)]
pub struct Caller {
    /// The joblog user the token belongs to.
    pub user: String,
    /// A session acting as that user.
    pub session: Session,
    /// The cookie session's CSRF token, when the request came with the
    /// cookie (none with a bearer token: a browser never adds one by itself).
    pub csrf: Option<String>,
    /// The token the request authenticated with (directly, or behind the
    /// cookie), for requests that last (event streams check it again).
    pub(crate) credential: String,
}

/// Whether `token` still authenticates as `user` (not revoked, expired,
/// nor its user deactivated).
pub fn still_valid(engine: &joblog::Engine, token: &str, user: &str) -> bool {
    engine.authenticate(token).is_ok_and(|u| u == user)
}

impl Caller {
    /// For a form posted with the cookie: `given` must be the session's
    /// CSRF token. Requests with a bearer token pass.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ApiError> {
        match &self.csrf {
            None => Ok(()),
            Some(c) if given.is_some_and(|g| constant_time_eq(g.as_bytes(), c.as_bytes())) => Ok(()),
            Some(_) => Err(forbidden_csrf()),
        }
    }
}

fn forbidden_csrf() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        code::DENIED,
        "this form's CSRF token is missing or stale: reload the page and try again",
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in browser session.
struct CookieSession {
    token: String,
    csrf: String,
    last_used: Instant,
}

/// The signed-in browser sessions, in memory: a restart signs everybody
/// out (their tokens still work to sign in again).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, CookieSession>>,
}

impl Sessions {
    /// A new session for `token` (already checked): its id and CSRF token.
    pub fn create(&self, token: String) -> (String, String) {
        let sid = random_hex();
        let csrf = random_hex();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(sid.clone(), CookieSession { token, csrf: csrf.clone(), last_used: now });
        (sid, csrf)
    }

    /// Ends a session (sign out).
    pub fn remove(&self, sid: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(sid);
    }

    fn get(&self, sid: &str) -> Option<(String, String)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get_mut(sid)?;
        if s.last_used.elapsed() >= SESSION_IDLE {
            map.remove(sid);
            return None;
        }
        s.last_used = Instant::now();
        Some((s.token.clone(), s.csrf.clone()))
    }
}

/// 32 random bytes from the OS, as hex (a version 4 UUID's random bits
/// twice: uuid draws them from the OS's generator).
fn random_hex() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The value of the cookie `name` in a request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of the cookie `name` in these headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A request's token as admission checked it (`lib.rs`, `admit`).
#[derive(Clone)]
pub(crate) struct Admitted {
    pub(crate) token: String,
    pub(crate) user: String,
    pub(crate) session: Session,
}

/// The user and session of `token`: as admission found them for this
/// request, else checked now.
async fn identify(parts: &Parts, state: &AppState, token: String) -> Result<(String, Session), ApiError> {
    match parts.extensions.get::<Admitted>() {
        Some(a) if a.token == token => Ok((a.user.clone(), a.session.clone())),
        _ => authenticate(state, token).await,
    }
}

/// Checks a token: its user, or 401.
pub async fn authenticate(state: &AppState, token: String) -> Result<(String, Session), ApiError> {
    let engine = state.engine.clone();
    blocking(move || {
        let user = engine.authenticate(&token).map_err(|_| ApiError::unauthenticated())?;
        let session = engine.session(&user).map_err(|_| ApiError::unauthenticated())?;
        Ok((user, session))
    })
    .await
}

fn same_origin(parts: &Parts) -> bool {
    let Some(host) = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin =
        parts.headers.get(header::ORIGIN).or_else(|| parts.headers.get(header::REFERER)).and_then(|h| h.to_str().ok());
    match origin {
        // "scheme://host[:port][/path]": the authority must be the Host.
        Some(o) => o.split_once("://").map(|(_, rest)| rest.split('/').next() == Some(host)).unwrap_or(false),
        None => false,
    }
}

/// The token a request carries: its bearer token, else the one behind its
/// session cookie.
pub fn credential(headers: &axum::http::HeaderMap, sessions: &Sessions) -> Option<String> {
    bearer(headers).or_else(|| cookie_in(headers, COOKIE).and_then(|sid| sessions.get(sid)).map(|(token, _)| token))
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, t)| t.trim().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            let (user, session) = identify(parts, state, token.clone()).await?;
            return Ok(Caller { user, session, csrf: None, credential: token });
        }
        let Some((token, csrf)) = cookie(parts, COOKIE).and_then(|sid| state.sessions.get(sid)) else {
            return Err(ApiError::unauthenticated());
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            if !same_origin(parts) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    code::DENIED,
                    "a cross-site request: changes with the dashboard's cookie come from its own pages",
                ));
            }
            // A script's request carries the token in a header; a form's
            // (and only a form's) is checked by its handler (`check_csrf`).
            let form = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
            match parts.headers.get("x-csrf-token") {
                Some(given) if constant_time_eq(given.as_bytes(), csrf.as_bytes()) => {}
                None if form => {}
                _ => return Err(forbidden_csrf()),
            }
        }
        let (user, session) = identify(parts, state, token.clone()).await?;
        Ok(Caller { user, session, csrf: Some(csrf), credential: token })
    }
}
