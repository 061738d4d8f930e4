//! The System Jobs grid (`/jobs`), and the same grid narrowed to one
//! workflow (Process Session, `/process-session/WORKFLOW`) or to one row
//! (Background Processes, `/background-processes/TABLE:ID`): the platform's
//! columns, the filters of `docs/domain.md` §8, counts per State and Status
//! Reason, paging with the engine's cursor, and the actions on the selected
//! rows or on every matching job, confirmed with the number of jobs they
//! will change.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveDateTime};
use joblog::domain::{OperationType, Regarding, State as JobState, StatusReason, Timestamp, MICROS_PER_DAY};
use joblog::engine::UserAction;
use joblog::{Cursor, Filter, Job, Session, Status};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{error_page, hidden, layout, opt_time, respond, status_cells, urlencode, Fields, Nav, Viewer};
use crate::{blocking, ApiError, AppState};

/// Rows on a page of the grid.
pub(crate) const PAGE: usize = 50;

/// Rows a name search or a "completed from" filter looks at for one page
/// before it stops (the engine's indices do not cover them, so they are
/// checked row by row, newest first); the page then says so and its next
/// link goes on from there.
const SCAN_LIMIT: usize = 20_000;

/// The grid's filters as the query string (and the bulk forms) carry them;
/// an empty field is no filter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct GridQuery {
    /// System Job Type: a code or a name.
    #[serde(rename = "type")]
    optype: Option<String>,
    /// State: a code or a name.
    state: Option<String>,
    /// Status Reason: a code or a name.
    reason: Option<String>,
    owner: Option<String>,
    workflow: Option<String>,
    regarding: Option<String>,
    created_from: Option<String>,
    created_to: Option<String>,
    completed_from: Option<String>,
    completed_to: Option<String>,
    /// Name search: jobs whose name contains this, in any case.
    q: Option<String>,
    /// Where the page starts (the engine's cursor).
    after: Option<String>,
}

/// The names of the filter fields, in the order the forms carry them.
const FIELDS: [&str; 11] = [
    "type",
    "state",
    "reason",
    "owner",
    "workflow",
    "regarding",
    "created_from",
    "created_to",
    "completed_from",
    "completed_to",
    "q",
];

impl GridQuery {
    fn field(&self, name: &str) -> Option<&str> {
        let v = match name {
            "type" => &self.optype,
            "state" => &self.state,
            "reason" => &self.reason,
            "owner" => &self.owner,
            "workflow" => &self.workflow,
            "regarding" => &self.regarding,
            "created_from" => &self.created_from,
            "created_to" => &self.created_to,
            "completed_from" => &self.completed_from,
            "completed_to" => &self.completed_to,
            "q" => &self.q,
            _ => return None,
        };
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    fn set(&mut self, name: &str, value: Option<String>) {
        let slot = match name {
            "type" => &mut self.optype,
            "state" => &mut self.state,
            "reason" => &mut self.reason,
            "owner" => &mut self.owner,
            "workflow" => &mut self.workflow,
            "regarding" => &mut self.regarding,
            "created_from" => &mut self.created_from,
            "created_to" => &mut self.created_to,
            "completed_from" => &mut self.completed_from,
            "completed_to" => &mut self.completed_to,
            "q" => &mut self.q,
            _ => return,
        };
        *slot = value;
    }

    /// The filters of a posted form (the bulk action's hidden fields).
    fn from_fields(f: &Fields) -> Self {
        let mut q = GridQuery::default();
        for name in FIELDS {
            q.set(name, f.get(name).map(str::to_string));
        }
        q
    }

    /// The filters in force, as name/value pairs (no cursor).
    fn pairs(&self) -> Vec<(String, String)> {
        FIELDS.iter().filter_map(|&n| self.field(n).map(|v| (n.to_string(), v.to_string()))).collect()
    }

    /// `?type=…&…` for links that keep the filters (empty when none).
    fn query_string(&self, extra: &[(&str, &str)]) -> String {
        let mut parts: Vec<String> = self.pairs().iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        parts.extend(extra.iter().map(|(k, v)| format!("{k}={}", urlencode(v))));
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// The engine's filter and the checks it cannot make (name search,
    /// completed from); a value that does not parse is a 400 saying which.
    fn criteria(&self) -> Result<Criteria, ApiError> {
        let bad = |what: &str, v: &str, why: String| ApiError::bad_request(format!("{what} {v:?}: {why}"));
        let mut filter = Filter::default();
        if let Some(v) = self.field("type") {
            filter.operationtype = Some(OperationType::parse(v).map_err(|e| bad("System Job Type", v, e.to_string()))?);
        }
        if let Some(v) = self.field("state") {
            filter.state = Some(JobState::parse(v).map_err(|e| bad("State", v, e.to_string()))?);
        }
        if let Some(v) = self.field("reason") {
            let r = StatusReason::parse(v).map_err(|e| bad("Status Reason", v, e.to_string()))?;
            let state = Status::of_reason(r).state();
            if filter.state.is_some_and(|s| s != state) {
                return Err(ApiError::bad_request(format!(
                    "Status Reason {} belongs to State {}, not to the State chosen",
                    r.name(),
                    state.name()
                )));
            }
            // The reason alone: it implies its State, and the engine counts
            // a lone Status Reason from its index without a walk.
            filter.status_reason = Some(r);
        }
        filter.owner = self.field("owner").map(str::to_string);
        filter.workflow = self.field("workflow").map(str::to_string);
        if let Some(v) = self.field("regarding") {
            filter.regarding = Some(Regarding::parse(v).map_err(|e| bad("regarding row", v, e.to_string()))?);
        }
        if let Some(v) = self.field("created_from") {
            filter.created_after = Some(parse_time(v, false).map_err(|e| bad("created from", v, e))?.plus_micros(-1));
        }
        if let Some(v) = self.field("created_to") {
            filter.created_before = Some(parse_time(v, true).map_err(|e| bad("created to", v, e))?);
        }
        if let Some(v) = self.field("completed_to") {
            filter.completed_before = Some(parse_time(v, true).map_err(|e| bad("completed to", v, e))?);
        }
        let completed_from = match self.field("completed_from") {
            Some(v) => Some(parse_time(v, false).map_err(|e| bad("completed from", v, e))?),
            None => None,
        };
        if completed_from.is_some() {
            let state = filter.state.or(filter.status_reason.map(|r| Status::of_reason(r).state()));
            if state.is_some_and(|s| s != JobState::Completed) {
                return Err(ApiError::bad_request("a completion range needs State Completed (or no State)"));
            }
            if filter.status_reason.is_none() {
                filter.state = Some(JobState::Completed);
            }
        }
        let after = match self.after.as_deref().filter(|s| !s.is_empty()) {
            Some(a) => Some(a.parse::<Cursor>().map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        Ok(Criteria { filter, name: self.field("q").map(str::to_lowercase), completed_from, after })
    }
}

/// A date (`2026-12-01`, the whole day, UTC), a `datetime-local` value
/// (`2026-12-01T14:30`, UTC) or an RFC 3339 time. `end`: the end of the
/// period a date or minute names (the first instant after it), for the
/// "to" side of a range, which the engine treats as strictly before.
pub(crate) fn parse_time(v: &str, end: bool) -> Result<Timestamp, String> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let t = Timestamp::from_datetime(d.and_time(chrono::NaiveTime::MIN).and_utc());
        return Ok(if end { t.plus_micros(MICROS_PER_DAY) } else { t });
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(v, f) {
            let t = Timestamp::from_datetime(d.and_utc());
            return Ok(if end { t.plus_micros(1) } else { t });
        }
    }
    Timestamp::parse(v)
        .map(|t| if end { t.plus_micros(1) } else { t })
        .map_err(|_| "not a date (YYYY-MM-DD), a time (YYYY-MM-DDTHH:MM, UTC) or an RFC 3339 time".to_string())
}

/// What one grid page asks for.
pub(crate) struct Criteria {
    pub(crate) filter: Filter,
    /// Lower-cased name search.
    name: Option<String>,
    completed_from: Option<Timestamp>,
    after: Option<Cursor>,
}

impl Criteria {
    /// Whether a check outside the engine's filter is in force (then there
    /// is no exact count, and "all matching" is not offered).
    fn row_checks(&self) -> bool {
        self.name.is_some() || self.completed_from.is_some()
    }

    fn keeps(&self, j: &Job) -> bool {
        self.name.as_ref().is_none_or(|n| j.name.to_lowercase().contains(n.as_str()))
            && self.completed_from.is_none_or(|f| j.completedon.is_some_and(|c| c >= f))
    }
}

/// A grid page: its rows, where the next starts, and whether a row-by-row
/// search stopped at [`SCAN_LIMIT`] before the page was full.
struct GridPage {
    jobs: Vec<Job>,
    next: Option<Cursor>,
    scan_stopped: bool,
    /// Jobs matching (`None` when row checks are in force).
    total: Option<usize>,
    /// Jobs matching in each status, the State and Status Reason filters
    /// left out (for the counts bar).
    by_status: Vec<(Status, usize)>,
}

fn cursor_of(j: &Job) -> Cursor {
    Cursor { createdon: j.createdon, id: j.id }
}

fn fetch(session: &Session, c: &Criteria) -> Result<GridPage, joblog::Error> {
    let (jobs, next, scan_stopped) = if !c.row_checks() {
        let (jobs, next) = session.list(&c.filter, c.after.as_ref(), PAGE)?;
        (jobs, next, false)
    } else {
        let mut out = Vec::new();
        let mut at = c.after;
        let mut scanned = 0;
        loop {
            let (batch, next) = session.list(&c.filter, at.as_ref(), 500)?;
            for j in batch {
                scanned += 1;
                at = Some(cursor_of(&j));
                if c.keeps(&j) {
                    out.push(j);
                    if out.len() == PAGE {
                        break;
                    }
                }
            }
            if out.len() == PAGE {
                break (out, at, false);
            }
            if next.is_none() {
                break (out, None, false);
            }
            if scanned >= SCAN_LIMIT {
                break (out, at, true);
            }
        }
    };
    let total = if c.row_checks() { None } else { Some(session.count(&c.filter)?) };
    let base = Filter { state: None, status_reason: None, ..c.filter.clone() };
    let by_status = Status::all()
        .map(|s| {
            let f = Filter { status_reason: Some(s.reason()), ..base.clone() };
            Ok((s, session.count(&f)?))
        })
        .collect::<Result<_, joblog::Error>>()?;
    Ok(GridPage { jobs, next, scan_stopped, total, by_status })
}

/// `GET /jobs` (and `/`): System Jobs.
pub(crate) async fn system_jobs(v: Viewer, Query(q): Query<GridQuery>) -> Response {
    grid(v, q, "System Jobs".into(), "/jobs".into(), None).await
}

/// `GET /process-session/WORKFLOW`: the jobs of one workflow definition.
pub(crate) async fn process_session(
    v: Viewer,
    Path(workflow): Path<String>,
    Query(mut q): Query<GridQuery>,
) -> Response {
    q.workflow = Some(workflow.clone());
    let base = format!("/process-session/{}", urlencode(&workflow));
    grid(v, q, format!("Process Session: {workflow}"), base, Some("workflow")).await
}

/// `GET /background-processes/TABLE:ID`: the jobs regarding one row.
pub(crate) async fn background_processes(
    v: Viewer,
    Path(regarding): Path<String>,
    Query(mut q): Query<GridQuery>,
) -> Response {
    q.regarding = Some(regarding.clone());
    let base = format!("/background-processes/{}", urlencode(&regarding));
    grid(v, q, format!("Background Processes: {regarding}"), base, Some("regarding")).await
}

/// One grid page; `fixed` names the filter the path sets (not shown as an
/// editable field).
async fn grid(v: Viewer, q: GridQuery, title: String, base: String, fixed: Option<&'static str>) -> Response {
    let c = match q.criteria() {
        Ok(c) => c,
        Err(e) => {
            let body = html! { h1 { (title) } p.error { (e.message) } (filter_form(&q, &base, fixed)) };
            return respond(StatusCode::BAD_REQUEST, layout(Some(&v), Nav::Jobs, &title, body));
        }
    };
    let session = v.session().clone();
    let page = match blocking(move || fetch(&session, &c).map(|p| (p, c)).map_err(ApiError::from)).await {
        Ok(p) => p,
        Err(e) => return error_page(Some(&v), e),
    };
    let (page, c) = page;
    let body = render(&v, &q, &c, &page, &title, &base, fixed);
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, &title, body))
}

fn filter_form(q: &GridQuery, base: &str, fixed: Option<&str>) -> Markup {
    let val = |n: &str| q.field(n).unwrap_or("").to_string();
    let text = |n: &'static str, label: &'static str, hint: &'static str| {
        html! {
            @if fixed != Some(n) {
                label { (label) input type="text" name=(n) value=(val(n)) placeholder=(hint); }
            }
        }
    };
    let date = |n: &'static str, label: &'static str| {
        html! { label { (label) input type="date" name=(n) value=(val(n)); } }
    };
    let selected_type = q.field("type").and_then(|t| OperationType::parse(t).ok());
    let selected_state = q.field("state").and_then(|t| JobState::parse(t).ok());
    let selected_reason = q.field("reason").and_then(|t| StatusReason::parse(t).ok());
    html! {
        form.filters #filters method="get" action=(base) {
            label { "System Job Type"
                select name="type" {
                    option value="" { "any" }
                    @for t in OperationType::named() {
                        option value=(t.0) selected[selected_type == Some(t)] { (t.display_name()) }
                    }
                }
            }
            label { "State"
                select name="state" {
                    option value="" { "any" }
                    @for s in JobState::all() {
                        option value=(s as u32) selected[selected_state == Some(s)] { (s.name()) }
                    }
                }
            }
            label { "Status Reason"
                select name="reason" {
                    option value="" { "any" }
                    @for s in Status::all() {
                        option value=(s.statuscode()) selected[selected_reason == Some(s.reason())] { (s.reason().name()) }
                    }
                }
            }
            (text("owner", "Owner", "user"))
            (text("workflow", "Workflow", "workflow id"))
            (text("regarding", "Regarding", "table:id"))
            (text("q", "Name contains", "search"))
            (date("created_from", "Created from"))
            (date("created_to", "Created to"))
            (date("completed_from", "Completed from"))
            (date("completed_to", "Completed to"))
            button type="submit" { "Apply filters" }
            a.button.plain href=(base) { "Clear" }
        }
    }
}

fn render(
    v: &Viewer,
    q: &GridQuery,
    c: &Criteria,
    p: &GridPage,
    title: &str,
    base: &str,
    fixed: Option<&str>,
) -> Markup {
    let qs_status = |s: Status| {
        let mut q2 = q.clone();
        q2.state = None;
        q2.reason = Some(s.statuscode().to_string());
        format!("{base}{}", q2.query_string(&[]))
    };
    let selected_reason = c.filter.status_reason;
    let next_link = p.next.map(|n| format!("{base}{}", q.query_string(&[("after", &n.to_string())])));
    let total_text = match p.total {
        Some(n) => format!("{n} matching"),
        None => "name search / completion range: checked row by row".to_string(),
    };
    html! {
        h1 { (title) }
        (filter_form(q, base, fixed))
        div.counts #counts {
            @for (s, n) in &p.by_status {
                @if *n > 0 || selected_reason == Some(s.reason()) {
                    a.chip class=[(selected_reason == Some(s.reason())).then_some("on")] href=(qs_status(*s)) {
                        span.muted { (s.state().name()) " / " } (s.reason().name()) ": " b { (n) }
                    }
                }
            }
        }
        div #deletedjobs.banner hidden { span #deletedcount { "0" } " jobs deleted since this page was loaded · " a href=(format!("{base}{}", q.query_string(&[]))) { "reload" } }
        div #newjobs.banner hidden { span #newcount { "0" } " new jobs · " a href=(format!("{base}{}", q.query_string(&[]))) { "show them" } }
        p.muted #total { (total_text) @if c.after.is_some() { " · " a href=(format!("{base}{}", q.query_string(&[]))) { "first page" } } }
        @if p.scan_stopped {
            p.notice { "The name search looked at " (SCAN_LIMIT) " jobs for this page without filling it; the next page goes on from there." }
        }
        form #grid method="post" action="/jobs/act/preview" {
            @if v.can_write {
                input type="hidden" name="csrf" value=(v.csrf);
                (hidden(&q.pairs()))
                div.actions {
                    select name="action" #bulk-action {
                        option value="cancel" { "Cancel" }
                        option value="pause" { "Pause" }
                        option value="resume" { "Resume" }
                        option value="postpone" { "Postpone" }
                    }
                    label.until { "until (UTC) " input type="datetime-local" name="until"; }
                    label { input type="radio" name="scope" value="selected" checked; " selected rows" }
                    @if let Some(n) = p.total {
                        label { input type="radio" name="scope" value="all"; " all " (n) " matching" }
                    }
                    button type="submit" #bulk-go { "Apply…" }
                }
            }
            table.grid {
                thead {
                    tr {
                        @if v.can_write { th { input type="checkbox" #select-all title="select the page"; } }
                        th { "System Job Name" }
                        th { "System Job Type" }
                        th { "State" }
                        th { "Status Reason" }
                        th { "Owner" }
                        th { "Regarding" }
                        th { "Created On" }
                        th { "Completed On" }
                    }
                }
                tbody {
                    @for j in &p.jobs {
                        tr data-id=(j.id) {
                            @if v.can_write { td { input type="checkbox" name="id" value=(j.id); } }
                            td {
                                a href=(format!("/jobs/{}", j.id)) { (j.name) }
                                @if let Some(w) = &j.workflow {
                                    " " a.small href=(format!("/process-session/{}", urlencode(w))) title="Process Session" { "⟶ " (w) }
                                }
                            }
                            td { (j.operationtype.display_name()) }
                            (status_cells(j.status))
                            td { (j.owner) }
                            td {
                                @if let Some(r) = &j.regarding {
                                    a href=(format!("/background-processes/{}", urlencode(&r.to_string()))) title="Background Processes" { (r.to_string()) }
                                }
                            }
                            td data-col="createdon" { (super::time(j.createdon)) }
                            td data-col="completedon" { (opt_time(j.completedon)) }
                        }
                    }
                    @if p.jobs.is_empty() {
                        tr { td colspan="9" .muted { "No jobs match." } }
                    }
                }
            }
        }
        @if let Some(l) = next_link {
            p { a.button #next href=(l) { "Next page →" } }
        }
    }
}

/// A user's action, as a form names it.
pub(crate) fn parse_action(f: &Fields) -> Result<UserAction, ApiError> {
    match f.get("action") {
        Some("cancel") => Ok(UserAction::Cancel),
        Some("pause") => Ok(UserAction::Pause),
        Some("resume") => Ok(UserAction::Resume),
        Some("postpone") => {
            let until =
                f.get("until").ok_or_else(|| ApiError::bad_request("Postpone needs a time: fill in “until”"))?;
            parse_time(until, false)
                .map(UserAction::Postpone)
                .map_err(|e| ApiError::bad_request(format!("until {until:?}: {e}")))
        }
        Some(other) => {
            Err(ApiError::bad_request(format!("{other:?} is not an action (cancel, pause, resume, postpone)")))
        }
        None => Err(ApiError::bad_request("choose an action")),
    }
}

fn action_name(a: UserAction) -> &'static str {
    match a {
        UserAction::Cancel => "Cancel",
        UserAction::Pause => "Pause",
        UserAction::Resume => "Resume",
        UserAction::Postpone(_) => "Postpone",
    }
}

/// What the confirmation and the action work on: the selected rows, or
/// every job the filters match.
enum Scope {
    Ids(Vec<Uuid>),
    All(Filter),
}

fn scope(f: &Fields, q: &GridQuery) -> Result<Scope, ApiError> {
    if f.get("scope") == Some("all") {
        let c = q.criteria()?;
        if c.row_checks() {
            return Err(ApiError::bad_request(
                "“all matching” cannot be used with a name search or a completion start: select the rows instead",
            ));
        }
        return Ok(Scope::All(c.filter));
    }
    let ids = f
        .all("id")
        .map(|s| Uuid::parse_str(s).map_err(|_| ApiError::bad_request(format!("{s:?} is not a job id"))))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("no row selected: tick the rows to act on, or choose “all matching”"));
    }
    if ids.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 rows at once; use “all matching” for more"));
    }
    Ok(Scope::Ids(ids))
}

/// The jobs an action left as they were, counted by reason.
fn refusals<'a>(by: impl IntoIterator<Item = (&'a str, u64)>) -> Markup {
    let by: Vec<(&str, u64)> = by.into_iter().collect();
    html! {
        @if !by.is_empty() {
            ul.refused { @for (why, n) in &by { li { (n) " left as they are: " (why) } } }
        }
    }
}

/// A bulk action's form, checked: its fields, the grid's query, the action
/// and the jobs it names; or the page that refuses it.
fn bulk_form(v: &Viewer, body: &Bytes) -> Result<(Fields, GridQuery, UserAction, Scope), Box<Response>> {
    let f = Fields::parse(body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return Err(Box::new(r));
    }
    let q = GridQuery::from_fields(&f);
    match (|| Ok::<_, ApiError>((parse_action(&f)?, scope(&f, &q)?)))() {
        Ok((action, sc)) => Ok((f, q, action, sc)),
        Err(e) => Err(Box::new(error_page(Some(v), e))),
    }
}

/// `POST /jobs/act/preview`: the confirmation, saying how many jobs the
/// action will change (the engine's dry run), nothing written.
pub(crate) async fn bulk_preview(v: Viewer, body: Bytes) -> Response {
    let (f, q, action, sc) = match bulk_form(&v, &body) {
        Ok(planned) => planned,
        Err(r) => return *r,
    };
    let session = v.session().clone();
    let ids = match &sc {
        Scope::Ids(ids) => ids.clone(),
        Scope::All(_) => Vec::new(),
    };
    let outcome = blocking(move || {
        Ok(match sc {
            Scope::All(filter) => session.preview_on_matching(action, &filter)?,
            Scope::Ids(ids) => session.preview_on_ids(action, &ids)?,
        })
    })
    .await;
    let out = match outcome {
        Ok(o) => o,
        Err(e) => return error_page(Some(&v), e),
    };
    let back = format!("/jobs{}", q.query_string(&[]));
    let name = action_name(action);
    let mut carry: Vec<(String, String)> = q.pairs();
    carry.push(("action".into(), f.get("action").unwrap_or_default().into()));
    if let Some(u) = f.get("until") {
        carry.push(("until".into(), u.into()));
    }
    carry.push(("scope".into(), f.get("scope").unwrap_or("selected").into()));
    carry.extend(ids.iter().map(|i| ("id".to_string(), i.to_string())));
    let body = html! {
        h1 { (name) "?" }
        div.confirm #confirm {
            p.big {
                (name) " will change " b #will-change { (out.changed.len()) } " of the " (out.matched)
                @if f.get("scope") == Some("all") { " jobs matching the filters." } @else { " selected jobs." }
            }
            (refusals(out.refused_by.iter().map(|(why, n)| (*why, *n as u64))))
            @if let UserAction::Postpone(t) = action { p { "Not before " (super::time(t)) " UTC." } }
            form method="post" action="/jobs/act" {
                input type="hidden" name="csrf" value=(v.csrf);
                (hidden(&carry))
                @if !out.changed.is_empty() {
                    button.danger type="submit" #confirm-go { (name) " " (out.changed.len()) " jobs" }
                }
                " " a.button.plain href=(back) { "Back" }
            }
            p.muted { "The numbers are those of now; jobs that change status meanwhile are checked again when you confirm." }
        }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, "Confirm", body))
}

/// `POST /jobs/act`: the confirmed action. On the selected rows (at most
/// 1,000) one atomic batch, and the page says what changed and what was
/// left; on "all matching", a tracked bulk operation (the native API's,
/// a page at a time, cancellable), whose page it redirects to. Each job's
/// change is checked again by the engine.
pub(crate) async fn bulk_apply(State(s): State<AppState>, v: Viewer, body: Bytes) -> Response {
    let (f, q, action, sc) = match bulk_form(&v, &body) {
        Ok(planned) => planned,
        Err(r) => return *r,
    };
    let ids = match sc {
        Scope::Ids(ids) => ids,
        Scope::All(filter) => {
            let said = serde_json::to_value(crate::native::FilterParams::of(&filter)).unwrap_or_default();
            let name = f.get("action").unwrap_or_default().to_string();
            return match crate::native::launch(&s, &v.caller, action, &name, filter, said).await {
                Ok(op) => Redirect::to(&format!("/operations/{}", op.id())).into_response(),
                Err(e) => error_page(Some(&v), e),
            };
        }
    };
    let session = v.session().clone();
    let out = match blocking(move || session.act_on_ids(action, &ids).map_err(ApiError::from)).await {
        Ok(o) => o,
        Err(e) => return error_page(Some(&v), e),
    };
    let back = format!("/jobs{}", q.query_string(&[]));
    let body = html! {
        h1 { (action_name(action)) ": done" }
        p.big #result { "Changed " b #changed { (out.changed.len()) } " of " (out.matched) " jobs." }
        (refusals(out.refused_by.iter().map(|(why, n)| (*why, *n as u64))))
        p { a.button href=(back) { "Back to the grid" } }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, "Done", body))
}

/// `GET /operations/{id}`: a bulk operation's progress, reloaded every
/// second while it runs, with its Cancel; then its result. Its starter's,
/// or anyone's for a user who reads every job (404 otherwise).
pub(crate) async fn operation(State(s): State<AppState>, v: Viewer, Path(id): Path<String>) -> Response {
    let op = match crate::native::find_operation(&s, &v.caller, &id) {
        Ok(op) => op,
        Err(e) => return error_page(Some(&v), e),
    };
    let o = op.json();
    let running = o["status"] == "running";
    let n = |k: &str| o[k].as_u64().unwrap_or(0);
    let by = o["refused_by"].as_object().cloned().unwrap_or_default();
    let body = html! {
        @if running { meta http-equiv="refresh" content="1"; }
        h1 { "Bulk " (o["action"].as_str().unwrap_or_default()) }
        p.big { "Status: " b #op-status { (o["status"].as_str().unwrap_or_default()) } }
        p #result {
            "Changed " b #changed { (n("changed")) } " of " (n("matched")) " jobs looked at"
            @if running { " so far" } "; " (n("expected")) " matched when it started."
        }
        (refusals(by.iter().map(|(why, k)| (why.as_str(), k.as_u64().unwrap_or(0)))))
        @if let Some(e) = o["error"].as_str() { p.error { "Stopped by an error: " (e) } }
        p { "Started " (o["started"].as_str().unwrap_or_default()) " by " (o["user"].as_str().unwrap_or_default())
            @if let Some(t) = o["finished"].as_str() { "; ended " (t) } "." }
        p.notice { "Each changed job's history names this operation (" (op.id()) ")." }
        @if running {
            form method="post" action=(format!("/operations/{}/cancel", op.id())) {
                input type="hidden" name="csrf" value=(v.csrf);
                button #op-cancel type="submit" { "Cancel the rest" }
            }
        }
        p { a.button href="/jobs" { "Back to the grid" } }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, "Bulk operation", body))
}

/// `POST /operations/{id}/cancel`: stops it after the page in hand (what
/// was changed stays changed), then back to its page.
pub(crate) async fn cancel_operation(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = v.refuse_csrf(Fields::parse(&body).get("csrf")) {
        return r;
    }
    match crate::native::operation_to_cancel(&s, &v.caller, &id).await {
        Ok(op) => {
            op.cancel();
            Redirect::to(&format!("/operations/{}", op.id())).into_response()
        }
        Err(e) => error_page(Some(&v), e),
    }
}
