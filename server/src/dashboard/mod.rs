//! The dashboard (docs/http.md, "Dashboard"): server-rendered pages of
//! Settings > System Jobs for people in a browser, served at `/` by the same
//! binary. Pages are built with `maud`, which HTML-escapes every value it
//! interpolates, so nothing read from the store (names, messages, owners)
//! can become markup. One small script (`assets/dashboard.js`) adds the
//! live updates from the native API's event stream and the grid's
//! selection; the pages work without it, only not live.
//!
//! Who is calling: the session cookie from signing in with a token
//! (`crate::auth`); every page checks the token again, so a revoked token
//! signs the browser out at its next click. Every form that changes data
//! carries the session's CSRF token, checked by its handler
//! (`Caller::check_csrf`), and the cookie is sent by the browser only from
//! the dashboard's own pages (`SameSite=Strict`; `auth` also refuses a
//! foreign `Origin`). What a user may see and do follows their privileges:
//! action buttons appear only for a user whose Write privilege reaches
//! something, bulk deletion only for Delete at Organization depth.

mod bulkdelete;
mod grid;
mod job;
mod overview;
mod signin;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use joblog::domain::{Depth, Privilege, Timestamp};
use joblog::{Session, Status};
use maud::{html, Markup, DOCTYPE};

use crate::auth::Caller;
use crate::{ApiError, AppState};

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// The dashboard's routes (merged into [`crate::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(grid::system_jobs))
        .route("/jobs", get(grid::system_jobs))
        .route("/process-session/{workflow}", get(grid::process_session))
        .route("/background-processes/{regarding}", get(grid::background_processes))
        .route("/jobs/act/preview", post(grid::bulk_preview))
        .route("/jobs/act", post(grid::bulk_apply))
        .route("/operations/{id}", get(grid::operation))
        .route("/operations/{id}/cancel", post(grid::cancel_operation))
        .route("/jobs/{id}", get(job::page))
        .route("/jobs/{id}/act", post(job::act))
        .route("/jobs/{id}/delete", get(job::confirm_delete).post(job::delete))
        .route("/failing", get(overview::failing))
        .route("/overview", get(overview::page))
        .route("/bulk-delete", get(bulkdelete::page))
        .route("/bulk-delete/review", post(bulkdelete::review))
        .route("/bulk-delete", post(bulkdelete::create))
        .route("/signin", get(signin::form).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/assets/dashboard.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/assets/dashboard.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// The signed-in person looking at a page: their caller identity and what
/// their roles let them do, decided once per request.
pub(crate) struct Viewer {
    caller: Caller,
    /// The CSRF token every form of the page carries.
    csrf: String,
    /// Write reaches at least their own jobs: action buttons are shown.
    can_write: bool,
    /// Delete at Organization depth: the bulk deletion wizard is offered.
    can_delete: bool,
    /// Read at Organization depth: organisation-wide figures (back-off,
    /// queue age) are shown, as `joblog stats` does.
    reads_all: bool,
}

impl Viewer {
    fn session(&self) -> &Session {
        &self.caller.session
    }

    fn user(&self) -> &str {
        &self.caller.user
    }

    /// The refusal of a form whose CSRF token is not the session's
    /// (`None`: the form may go on).
    fn refuse_csrf(&self, given: Option<&str>) -> Option<Response> {
        self.caller.check_csrf(given).err().map(|e| error_page(Some(self), e))
    }
}

/// Pages answer a browser that is not signed in with the sign-in page.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = match Caller::from_request_parts(parts, state).await {
            Ok(c) => c,
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                // Back to the page asked for; a form posted without a
                // session cannot be replayed, so it leads to the grid.
                let back = match parts.method {
                    axum::http::Method::GET => parts.uri.path_and_query().map_or("/", |p| p.as_str()),
                    _ => "/jobs",
                };
                let to = format!("/signin?next={}", urlencode(back));
                return Err(Redirect::to(&to).into_response());
            }
            Err(e) => return Err(error_page(None, e)),
        };
        let engine = state.engine.clone();
        let user = caller.user.clone();
        let (can_write, can_delete, reads_all) = crate::blocking(move || {
            let st = engine.state();
            let dir = st.directory();
            let u = dir.user(&user).map_err(joblog::Error::from)?;
            Ok((
                dir.depth(u, Privilege::Write) > Depth::None,
                dir.depth(u, Privilege::Delete) == Depth::Organization,
                dir.depth(u, Privilege::Read) == Depth::Organization,
            ))
        })
        .await
        .map_err(|e| error_page(None, e))?;
        let csrf = caller.csrf.clone().unwrap_or_default();
        Ok(Viewer { caller, csrf, can_write, can_delete, reads_all })
    }
}

/// Which item of the navigation is lit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Jobs,
    Failing,
    BulkDelete,
    Overview,
    None,
}

/// The frame of every page: navigation, who is signed in, sign out.
fn layout(viewer: Option<&Viewer>, nav: Nav, title: &str, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! { a href=(href) class=[(n == nav).then_some("on")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · joblog" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header.top {
                    span.brand { "joblog" }
                    @if let Some(v) = viewer {
                        nav {
                            (item(Nav::Jobs, "/jobs", "System Jobs"))
                            (item(Nav::Failing, "/failing", "Failing workflows"))
                            (item(Nav::BulkDelete, "/bulk-delete", "Bulk deletion"))
                            (item(Nav::Overview, "/overview", "Overview"))
                        }
                        span.who {
                            span #live title="live updates from the event stream" { "○ live" }
                            " " (v.user()) @if !v.can_write { " (read only)" }
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An HTML answer with the given status.
fn respond(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        page.into_string(),
    )
        .into_response()
}

/// A page that failed: the platform's error, said to a person, with the
/// same HTTP status the API would answer.
fn error_page(viewer: Option<&Viewer>, e: ApiError) -> Response {
    let body = html! {
        h1 { "Something went wrong" }
        p.error { (e.message) }
        p.muted { "HTTP " (e.status.as_u16()) " · code " (e.code) }
        p { a href="/jobs" { "Back to System Jobs" } }
    };
    respond(e.status, layout(viewer, Nav::None, "Error", body))
}

/// A time as the pages show it: UTC, to the second.
fn time(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_default()
}

/// A span of microseconds as a person reads it: `3d 4h`, `2m 5s`, `120 ms`.
fn span(micros: i64) -> String {
    let ms = micros.max(0) / 1000;
    let s = ms / 1000;
    match s {
        0 => format!("{ms} ms"),
        1..=59 => format!("{}.{:01} s", s, (ms % 1000) / 100),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The State and Status Reason cells, tagged so the script can update them
/// live.
fn status_cells(status: Status) -> Markup {
    html! {
        td.state data-col="state" { (status.state().name()) }
        td data-col="reason" class={ "reason r" (status.statuscode()) } { (status.reason().name()) }
    }
}

/// Percent-encodes a query value (`form_urlencoded`, the same encoding the
/// browser's forms use).
fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A request's form fields, repeated names kept in order (the grid's
/// selection sends one `id` per row).
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Fields(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// The first value of `name`, if it is there and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }
}

/// Hidden inputs that carry `pairs` through a form.
fn hidden(pairs: &[(String, String)]) -> Markup {
    html! { @for (k, v) in pairs { input type="hidden" name=(k) value=(v); } }
}
