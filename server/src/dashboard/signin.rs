//! Signing in with a token (`/signin`) and out (`/signout`). Signing in
//! checks the token (`auth::authenticate`), opens a session kept in the
//! server's memory and sets its cookie: `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page sends it), `Path=/`, and
//! `Secure` when the server speaks TLS.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{layout, respond, Fields, Nav, Viewer};
use crate::auth::{self, COOKIE};
use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site only (never another
/// site: `//host` and `scheme:` are refused).
fn safe_next(next: Option<&str>) -> String {
    match next {
        // Printable ASCII only: a `Location` header carries it as it is.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/jobs".to_string(),
    }
}

fn form_page(next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        div.signin {
            h1 { "Sign in" }
            p.muted { "Paste a token from " code { "joblog token create USER" } "." }
            @if let Some(e) = error { p.error #signin-error { (e) } }
            form method="post" action="/signin" {
                input type="hidden" name="next" value=(next);
                label { "Token" input type="password" name="token" #token autocomplete="off" required autofocus; }
                button type="submit" #signin-go { "Sign in" }
            }
        }
    };
    respond(status, layout(None, Nav::None, "Sign in", body))
}

/// `GET /signin`.
pub(crate) async fn form(Query(q): Query<Next>) -> Response {
    form_page(&safe_next(q.next.as_deref()), None, StatusCode::OK)
}

/// Whether a form post names this site as its origin (a browser sends
/// `Origin` with every POST; a request without one is not a browser's
/// cross-site form). Signing in from another site's page would sign the
/// browser in as that site's user ("login CSRF").
fn same_site(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(o) => o.split_once("://").is_some_and(|(_, rest)| Some(rest) == host),
    }
}

/// `POST /signin`: token → session cookie, then the page asked for.
pub(crate) async fn sign_in(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let next = safe_next(f.get("next"));
    if !same_site(&headers) {
        return form_page(&next, Some("This sign-in came from another site's page: refused."), StatusCode::FORBIDDEN);
    }
    let Some(token) = f.get("token").map(str::trim).filter(|t| !t.is_empty()) else {
        return form_page(&next, Some("Paste a token."), StatusCode::BAD_REQUEST);
    };
    if auth::authenticate(&s, token.to_string()).await.is_err() {
        return form_page(
            &next,
            Some("This token does not sign in: it is unknown, revoked or expired, or its user is deactivated."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let Ok((sid, _csrf)) = s.sessions.create(token.to_string()) else {
        return form_page(
            &next,
            Some("The server could not draw a session id from the OS's random source: try again."),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    let secure = if s.tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `POST /signout`: ends the session and forgets the cookie.
pub(crate) async fn sign_out(v: Viewer, State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return r;
    }
    let sid = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v);
    if let Some(sid) = sid {
        s.sessions.remove(sid);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/signin")).into_response()
}
