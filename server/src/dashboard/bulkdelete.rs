//! Bulk deletion (`/bulk-delete`): the list of Bulk Delete jobs with their
//! success and failure counts and next run, and the wizard (criteria, start
//! time, recurrence, or Immediately) with a review step that says how many
//! completed jobs match now (docs/domain.md §7).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use joblog::domain::{
    DeletionCriteria, OperationType, Recurrence, State as JobState, StatusReason, MAX_IMMEDIATE_DELETE,
};
use joblog::engine::{BulkDeleteRecord, NewBulkDelete};
use joblog::{Filter, Session};
use maud::{html, Markup};

use super::grid::parse_time;
use super::{error_page, hidden, layout, opt_time, respond, time, Fields, Nav, Viewer};
use crate::{blocking, ApiError, AppState};

const REASONS: [StatusReason; 3] = [StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled];

/// `GET /bulk-delete`: the list, and the wizard for those who may delete.
pub(crate) async fn page(v: Viewer) -> Response {
    let session = v.session().clone();
    let records = match blocking(move || session.bulk_delete_jobs().map_err(ApiError::from)).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&v), e),
    };
    let body = html! {
        h1 { "Bulk deletion" }
        (list(&records))
        @if v.can_delete {
            h2 { "New bulk deletion" }
            (wizard(&v, &Fields(Vec::new())))
        } @else {
            p.muted { "Deleting jobs needs the Delete privilege at Organization depth." }
        }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::BulkDelete, "Bulk deletion", body))
}

fn list(records: &[BulkDeleteRecord]) -> Markup {
    html! {
        table.grid #bulk-deletes {
            thead { tr { th { "Name" } th { "Criteria" } th { "State" } th { "Status Reason" } th { "Deleted" } th { "Failed" } th { "Recurrence" } th { "Next run" } th { "Created On" } } }
            tbody {
                @for r in records {
                    tr data-id=(r.job.id) {
                        td { a href=(format!("/jobs/{}", r.job.id)) { (r.job.name) } }
                        td { (r.criteria.as_ref().map(describe).unwrap_or_else(|| "—".into())) }
                        (super::status_cells(r.job.status))
                        td.num { (r.successcount) }
                        td.num { (r.failurecount) }
                        td { (r.job.recurrencepattern.clone().unwrap_or_else(|| "once".into())) }
                        td { (next_run(r)) }
                        td { (time(r.job.createdon)) }
                    }
                }
                @if records.is_empty() { tr { td colspan="9" .muted { "No Bulk Delete jobs." } } }
            }
        }
    }
}

/// When a Bulk Delete job runs next: its release time while it waits, as
/// soon as the service takes it when Ready, never once completed.
fn next_run(r: &BulkDeleteRecord) -> String {
    match r.job.status.state() {
        JobState::Completed => "—".into(),
        JobState::Locked => "running".into(),
        JobState::Ready => "due now".into(),
        JobState::Suspended => opt_time(r.job.postponeuntil),
    }
}

fn describe(c: &DeletionCriteria) -> String {
    format!(
        "{} · {} · completed over {} days ago",
        c.types.iter().map(|t| t.display_name()).collect::<Vec<_>>().join(", "),
        c.reasons.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
        c.older_than_days
    )
}

/// The wizard's form, filled with `f` (empty: the platform's default).
fn wizard(v: &Viewer, f: &Fields) -> Markup {
    let fresh = f.0.is_empty();
    let types: Vec<OperationType> = f.all("type").filter_map(|t| OperationType::parse(t).ok()).collect();
    let reasons: Vec<StatusReason> = f.all("reason").filter_map(|t| StatusReason::parse(t).ok()).collect();
    let type_on = |t: OperationType| if fresh { t == OperationType::WORKFLOW } else { types.contains(&t) };
    let reason_on = |r: StatusReason| if fresh { r == StatusReason::Succeeded } else { reasons.contains(&r) };
    html! {
        form.wizard #wizard method="post" action="/bulk-delete/review" {
            input type="hidden" name="csrf" value=(v.csrf);
            fieldset {
                legend { "1. Which completed jobs" }
                div.types {
                    @for t in OperationType::named() {
                        label { input type="checkbox" name="type" value=(t.0) checked[type_on(t)]; " " (t.display_name()) }
                    }
                }
                div {
                    @for r in REASONS {
                        label { input type="checkbox" name="reason" value=(r as u32) checked[reason_on(r)]; " " (r.name()) }
                    }
                }
                label { "completed more than " input type="number" name="older_than_days" min="0" max="3650" value=(f.get("older_than_days").unwrap_or("30")); " days ago" }
            }
            fieldset {
                legend { "2. When" }
                label { input type="radio" name="when" value="immediately" checked[f.get("when") == Some("immediately")]; " Immediately (deletes now, at most " input type="number" name="limit" min="1" max=(MAX_IMMEDIATE_DELETE) value=(f.get("limit").unwrap_or("100000")); " jobs)" }
                label { input type="radio" name="when" value="job" checked[f.get("when") != Some("immediately")]; " As a Bulk Delete system job named " input type="text" name="name" value=(f.get("name").unwrap_or("Bulk deletion")) maxlength="256"; }
                label { "starting (UTC, empty: now) " input type="datetime-local" name="start" value=(f.get("start").unwrap_or("")); }
                label { "repeating "
                    select name="freq" {
                        @for (val, label) in [("", "never"), ("HOURLY", "every N hours"), ("DAILY", "every N days"), ("WEEKLY", "every N weeks")] {
                            option value=(val) selected[f.get("freq").unwrap_or("") == val] { (label) }
                        }
                    }
                    " N = " input type="number" name="interval" min="1" max="10000" value=(f.get("interval").unwrap_or("1"));
                }
            }
            button type="submit" #wizard-review { "Review…" }
        }
    }
}

/// What the wizard asks for, checked.
struct Plan {
    criteria: DeletionCriteria,
    immediately: Option<u64>,
    job: NewBulkDelete,
}

fn plan(f: &Fields) -> Result<Plan, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    let types = f
        .all("type")
        .map(|t| OperationType::parse(t).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let reasons = f
        .all("reason")
        .map(|t| StatusReason::parse(t).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let days = f.get("older_than_days").unwrap_or("0");
    let older_than_days = days.parse().map_err(|_| bad(format!("{days:?} is not a number of days")))?;
    let criteria = DeletionCriteria { types, reasons, older_than_days };
    criteria.validate().map_err(ApiError::from)?;
    let immediately = if f.get("when") == Some("immediately") {
        let l = f.get("limit").unwrap_or("0");
        Some(l.parse::<u64>().map_err(|_| bad(format!("{l:?} is not a number of jobs")))?)
    } else {
        None
    };
    let start = match f.get("start") {
        Some(s) => Some(parse_time(s, false).map_err(|e| bad(format!("start {s:?}: {e}")))?),
        None => None,
    };
    let recurrence = match f.get("freq") {
        Some(freq) => {
            let rule = format!("FREQ={freq};INTERVAL={}", f.get("interval").unwrap_or("1"));
            Recurrence::parse(&rule).map_err(ApiError::from)?;
            Some(rule)
        }
        None => None,
    };
    let name = f.get("name").unwrap_or("Bulk deletion").to_string();
    Ok(Plan { job: NewBulkDelete { name, criteria: criteria.clone(), start, recurrence }, criteria, immediately })
}

/// Completed jobs the criteria take now: the sum over its (type, reason)
/// pairs of the engine's counts, each served from an index.
fn matching_now(
    session: &Session,
    c: &DeletionCriteria,
    now: joblog::domain::Timestamp,
) -> Result<usize, joblog::Error> {
    let before = now.days_before(c.older_than_days);
    let mut n = 0;
    for t in &c.types {
        for r in &c.reasons {
            n += session.count(&Filter {
                operationtype: Some(*t),
                state: Some(JobState::Completed),
                status_reason: Some(*r),
                completed_before: Some(before),
                ..Filter::default()
            })?;
        }
    }
    Ok(n)
}

/// `POST /bulk-delete/review`: what the deletion will take, to confirm.
pub(crate) async fn review(v: Viewer, State(s): State<AppState>, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return r;
    }
    let p = match plan(&f) {
        Ok(p) => p,
        Err(e) => {
            let body = html! { h1 { "New bulk deletion" } p.error #wizard-error { (e.message) } (wizard(&v, &f)) };
            return respond(StatusCode::BAD_REQUEST, layout(Some(&v), Nav::BulkDelete, "Bulk deletion", body));
        }
    };
    let session = v.session().clone();
    let criteria = p.criteria.clone();
    let engine = s.engine.clone();
    let n = match blocking(move || Ok(matching_now(&session, &criteria, engine.now())?)).await {
        Ok(n) => n,
        Err(e) => return error_page(Some(&v), e),
    };
    let carry: Vec<(String, String)> = f.0.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let body = html! {
        h1 { "Review the bulk deletion" }
        div.confirm {
            p { (describe(&p.criteria)) }
            p.big { b #match-count { (n) } " completed jobs match now." }
            @if let Some(limit) = p.immediately {
                p { "Immediately: deletes " b { (n.min(limit as usize)) } " of them now (oldest first) and gives their space back. This cannot be undone." }
            } @else {
                p {
                    "A Bulk Delete system job “" (p.job.name) "” runs "
                    @if let Some(t) = p.job.start { "at " (time(t)) " UTC" } @else { "as soon as the service takes it" }
                    @if let Some(r) = &p.job.recurrence { ", then again per " code { (r) } }
                    " and deletes what matches then."
                }
            }
            form method="post" action="/bulk-delete" {
                input type="hidden" name="csrf" value=(v.csrf);
                (hidden(&carry))
                button.danger type="submit" #wizard-go { @if p.immediately.is_some() { "Delete now" } @else { "Create the Bulk Delete job" } }
                " " a.button.plain href="/bulk-delete" { "Back" }
            }
        }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::BulkDelete, "Review", body))
}

/// `POST /bulk-delete`: deletes now (Immediately) or creates the job.
pub(crate) async fn create(v: Viewer, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return r;
    }
    let p = match plan(&f) {
        Ok(p) => p,
        Err(e) => return error_page(Some(&v), e),
    };
    let session = v.session().clone();
    let done = blocking(move || {
        Ok(match p.immediately {
            Some(limit) => Err(session.delete_now(&p.criteria, limit).map_err(ApiError::from)?),
            None => Ok(session.create_bulk_delete(&p.job).map_err(ApiError::from)?),
        })
    })
    .await;
    let body = match done {
        Err(e) => return error_page(Some(&v), e),
        Ok(Ok(job)) => html! {
            h1 { "Bulk Delete job created" }
            p #wizard-done { "“" a href=(format!("/jobs/{}", job.id)) { (job.name) } "” is " (job.status.to_string()) "." }
            p { a.button href="/bulk-delete" { "Bulk deletion" } }
        },
        Ok(Err(report)) => html! {
            h1 { "Deleted" }
            p.big #wizard-done { "Deleted " b #deleted { (report.deleted) } " jobs; " (report.remaining_matching) " matching jobs remain." }
            p.muted { "Log: " (report.bytes_before) " → " (report.bytes_after) " bytes, in " (format!("{:.2}", report.seconds)) " s." }
            @for w in &report.warnings { p.notice { (w) } }
            p { a.button href="/bulk-delete" { "Bulk deletion" } }
        },
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::BulkDelete, "Bulk deletion", body))
}
