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
//!
//! On the service's Unix socket (the command line's way in, docs/cli.md,
//! "Who can act as whom") the caller is known from the socket itself
//! (`SO_PEERCRED`, [`PeerUid`]), never from a token: the directory's owner
//! and root act as the user the request names (header [`USER_HEADER`]);
//! any other OS user acts only as the joblog user it is mapped to
//! ([`local_user`]).

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
    /// How the request authenticated, for requests that last (event
    /// streams check it again).
    pub(crate) credential: Credential,
}

/// How a request authenticated.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A token (directly, or behind the dashboard's cookie).
    Token(String),
    /// The OS user at the other end of the service's Unix socket.
    Local(u32),
}

/// The OS user at the other end of a Unix socket connection, as the
/// kernel tells it (`SO_PEERCRED`): put in each request's extensions by
/// the server itself, never taken from anything the client sends.
#[derive(Clone, Copy, Debug)]
pub struct PeerUid(pub u32);

/// The header naming the joblog user a request on the Unix socket acts as
/// (the command line's `--as`, `JOBLOG_USER`, else `admin`).
pub const USER_HEADER: &str = "x-joblog-user";
/// Present (`true`) when `--as` or `JOBLOG_USER` named that user rather
/// than the default: a mapped OS user who names somebody else is refused.
pub const USER_EXPLICIT_HEADER: &str = "x-joblog-user-explicit";

/// Whether `credential` still stands for `user` (a token not revoked nor
/// expired, an OS user still mapped to them, the user still active).
pub fn still_valid(engine: &joblog::Engine, credential: &Credential, user: &str) -> bool {
    match credential {
        Credential::Token(token) => engine.authenticate(token).is_ok_and(|u| u == user),
        Credential::Local(uid) => local_user(engine, *uid, Some(user), false).is_ok_and(|u| u == user),
    }
}

/// Why a caller on the Unix socket may not act at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalRefusal {
    /// Neither the directory's owner, root, nor a mapped OS user.
    #[error(
        "OS user {0} is not mapped to a joblog user; an administrator maps it with `joblog user map NAME --os-user {0}`"
    )]
    Unmapped(u32),
    /// The owner or root named no user.
    #[error("the request names no user (--as); refused, never taken for an administrator")]
    NoUser,
    /// A mapped OS user named somebody else.
    #[error("OS user {uid} acts only as {mapped} through this service, not as {named}; drop --as")]
    NotThem {
        /// The caller's OS user.
        uid: u32,
        /// The joblog user it is mapped to.
        mapped: String,
        /// The user it named.
        named: String,
    },
}

/// Whether OS user `uid` may connect at all: the owner of the data
/// directory (the service's own user), root, or an OS user mapped to a
/// joblog user.
pub fn local_peer_allowed(engine: &joblog::Engine, uid: u32) -> Result<(), LocalRefusal> {
    if is_owner_or_root(uid) || engine.state().directory().os_user(uid).is_some() {
        Ok(())
    } else {
        Err(LocalRefusal::Unmapped(uid))
    }
}

/// The directory's owner (the service's own user) or root.
fn is_owner_or_root(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// The joblog user OS user `uid` acts as on the Unix socket, naming
/// `named` (`explicit`: named by `--as` or `JOBLOG_USER`, not by default).
pub fn local_user(
    engine: &joblog::Engine,
    uid: u32,
    named: Option<&str>,
    explicit: bool,
) -> Result<String, LocalRefusal> {
    if is_owner_or_root(uid) {
        return named.filter(|u| !u.is_empty()).map(str::to_string).ok_or(LocalRefusal::NoUser);
    }
    let state = engine.state();
    match state.directory().os_user(uid) {
        Some(mapped) => match named {
            Some(n) if explicit && n != mapped => {
                Err(LocalRefusal::NotThem { uid, mapped: mapped.to_string(), named: n.to_string() })
            }
            _ => Ok(mapped.to_string()),
        },
        None => Err(LocalRefusal::Unmapped(uid)),
    }
}

impl Caller {
    /// Whether the request came on the service's Unix socket (the command
    /// line), not over the network.
    pub fn is_local(&self) -> bool {
        matches!(self.credential, Credential::Local(_))
    }

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
    /// Fails only if the OS's random source does.
    pub fn create(&self, token: String) -> Result<(String, String), getrandom::Error> {
        let sid = random_hex()?;
        let csrf = random_hex()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(sid.clone(), CookieSession { token, csrf: csrf.clone(), last_used: now });
        Ok((sid, csrf))
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

/// 32 random bytes from the OS's random source (getrandom(2)), as hex.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

/// A request's caller as admission checked it (`lib.rs`, `admit`).
#[derive(Clone)]
pub(crate) struct Admitted {
    pub(crate) credential: Credential,
    pub(crate) user: String,
    pub(crate) session: Session,
}

/// The user and session of `token`: as admission found them for this
/// request, else checked now.
async fn identify(parts: &Parts, state: &AppState, token: String) -> Result<(String, Session), ApiError> {
    match parts.extensions.get::<Admitted>() {
        Some(Admitted { credential: Credential::Token(t), user, session }) if *t == token => {
            Ok((user.clone(), session.clone()))
        }
        _ => authenticate(state, token).await,
    }
}

/// Who a request on the Unix socket acts as, and their session; 403 with
/// the reason when they may not act.
pub(crate) async fn admit_local(
    state: &AppState,
    uid: u32,
    headers: &axum::http::HeaderMap,
) -> Result<Admitted, ApiError> {
    let named = headers.get(USER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let explicit = headers.get(USER_EXPLICIT_HEADER).is_some_and(|v| v.as_bytes() == b"true");
    let engine = state.engine.clone();
    blocking(move || {
        let denied = |m: String| ApiError::new(StatusCode::FORBIDDEN, code::DENIED, m);
        let user = local_user(&engine, uid, named.as_deref(), explicit).map_err(|e| denied(e.to_string()))?;
        // An acting user who does not exist, or no longer may act, is a
        // permission refused (the command line's exit 5), not a missing row.
        let session = engine.session(&user).map_err(|e| match e {
            joblog::Error::Domain(joblog::domain::DomainError::NotFound { .. }) => {
                denied(format!("no user named {user:?} (give --as USER)"))
            }
            joblog::Error::Domain(e @ joblog::domain::DomainError::UserDeactivated { .. }) => denied(e.to_string()),
            e => ApiError::from(e),
        })?;
        Ok(Admitted { credential: Credential::Local(uid), user, session })
    })
    .await
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
        // The Unix socket: admission already knows who, from the kernel.
        if let Some(PeerUid(uid)) = parts.extensions.get::<PeerUid>().copied() {
            let a = match parts.extensions.get::<Admitted>() {
                Some(a) => a.clone(),
                None => admit_local(state, uid, &parts.headers).await?,
            };
            return Ok(Caller { user: a.user, session: a.session, csrf: None, credential: a.credential });
        }
        if let Some(token) = bearer(&parts.headers) {
            let (user, session) = identify(parts, state, token.clone()).await?;
            return Ok(Caller { user, session, csrf: None, credential: Credential::Token(token) });
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
        Ok(Caller { user, session, csrf: Some(csrf), credential: Credential::Token(token) })
    }
}
