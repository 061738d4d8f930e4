//! A job's page (`/jobs/ID`): every column, its timeline from the log
//! (`Session::history`: each transition, who, when, why, and how long the
//! job stayed in each status), the error of each attempt, the next retry
//! or back-off release, and its actions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use joblog::domain::{Action, Privilege, State as JobState, StatusReason};
use joblog::engine::HistoryEntry;
use joblog::{Job, Status};
use maud::{html, Markup};
use uuid::Uuid;

use super::grid::parse_action;
use super::{error_page, layout, opt_time, respond, span, time, urlencode, Fields, Nav, Viewer};
use crate::{blocking, ApiError, AppState};

/// One run of the job: from the worker's lock to the transition that left
/// Locked, with the message that transition set.
struct Attempt {
    started: joblog::domain::Timestamp,
    ended: Option<(joblog::domain::Timestamp, Status)>,
    message: Option<String>,
}

fn attempts(history: &[HistoryEntry]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    for e in history {
        if e.action == Some(Action::Lock) {
            out.push(Attempt { started: e.at, ended: None, message: None });
        } else if e.from.is_some_and(|f| f.state() == JobState::Locked) && e.status.state() != JobState::Locked {
            if let Some(a) = out.last_mut().filter(|a| a.ended.is_none()) {
                a.ended = Some((e.at, e.status));
                a.message = e.message.clone();
            }
        }
    }
    out
}

/// `GET /jobs/ID`.
pub(crate) async fn page(v: Viewer, State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(Some(&v), ApiError::not_found(format!("{id:?} is not a job id")));
    };
    let session = v.session().clone();
    let engine = s.engine.clone();
    let user = v.user().to_string();
    let loaded = blocking(move || {
        let job = session.get(id)?;
        let history = session.history(id)?;
        // Whether this user's Write reaches this job's owner: only then
        // are its action buttons shown (the engine decides again on post).
        let st = engine.state();
        let dir = st.directory();
        let reaches =
            |p| dir.user(&user).map(|u| dir.reaches(u, p, &job.owner, &job.owningbusinessunit)).unwrap_or(false);
        let (writes, deletes) = (reaches(Privilege::Write), reaches(Privilege::Delete));
        Ok((job, history, writes, deletes, engine.now()))
    })
    .await;
    let (job, history, writes, deletes, now) = match loaded {
        Ok(x) => x,
        Err(e) => return error_page(Some(&v), e),
    };
    let body = render(&v, &job, &history, (writes && v.can_write, deletes), now);
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, &job.name, body))
}

fn render(
    v: &Viewer,
    j: &Job,
    history: &[HistoryEntry],
    (writes, deletes): (bool, bool),
    now: joblog::domain::Timestamp,
) -> Markup {
    let s = j.status;
    let completed = s.is_completed();
    let platform = j.operationtype.is_platform_generated();
    // A failed run that will be tried again waits (Suspended) until its
    // retry; the last transition says whether the wait is a retry.
    let retrying = s.reason() == StatusReason::Retrying
        || history.iter().rev().find(|e| e.action.is_some()).is_some_and(|e| e.action == Some(Action::Retry));
    let next_release = match j.postponeuntil.filter(|_| !completed) {
        Some(t) if retrying => Some(("Next retry", t)),
        Some(t) if s.state() == JobState::Suspended => Some(("Waits until", t)),
        Some(t) => Some(("Not before", t)),
        None => None,
    };
    let runs = attempts(history);
    let row = |k: &'static str, val: String| html! { tr { th { (k) } td { (val) } } };
    html! {
        h1 #job-name data-id=(j.id) { (j.name) }
        p.status {
            span.state #job-state data-col="state" { (s.state().name()) }
            " / "
            span #job-reason data-col="reason" class={ "reason r" (s.statuscode()) } { (s.reason().name()) }
            @if let Some((what, t)) = next_release {
                " · " (what) " " b { (time(t)) " UTC" }
                @if t > now { " (in " (span(t.micros() - now.micros())) ")" }
            }
        }
        @if writes && !completed && !platform {
            div.actions #job-actions {
                @for (a, label) in [("cancel", "Cancel"), ("pause", "Pause"), ("resume", "Resume")] {
                    @if allowed(s, a) {
                        form.inline method="post" action=(format!("/jobs/{}/act", j.id)) {
                            input type="hidden" name="csrf" value=(v.csrf);
                            input type="hidden" name="action" value=(a);
                            button type="submit" class=[(a == "cancel").then_some("danger")] #{ "act-" (a) } { (label) }
                        }
                    }
                }
                form.inline method="post" action=(format!("/jobs/{}/act", j.id)) {
                    input type="hidden" name="csrf" value=(v.csrf);
                    input type="hidden" name="action" value="postpone";
                    input type="datetime-local" name="until" required;
                    button type="submit" #act-postpone { "Postpone" }
                }
            }
        }
        @if deletes && completed {
            div.actions #job-delete {
                a.button.danger href=(format!("/jobs/{}/delete", j.id)) #act-delete { "Delete" }
            }
        }
        @if platform && !completed {
            p.muted { "The platform generates jobs of this type: users cannot pause, cancel or resume them." }
        }
        div.cols {
            table.kv {
                (row("System Job Name", j.name.clone()))
                (row("asyncoperationid", j.id.to_string()))
                (row("System Job Type", format!("{} ({})", j.operationtype.display_name(), j.operationtype.0)))
                (row("State", format!("{} ({})", s.state().name(), s.statecode())))
                (row("Status Reason", format!("{} ({})", s.reason().name(), s.statuscode())))
                (row("Owner", j.owner.clone()))
                (row("Owning business unit", j.owningbusinessunit.clone()))
                tr { th { "Regarding" } td { @if let Some(r) = &j.regarding {
                    a href=(format!("/background-processes/{}", urlencode(&r.to_string()))) { (r.to_string()) }
                } } }
                tr { th { "Workflow" } td { @if let Some(w) = &j.workflow {
                    a href=(format!("/process-session/{}", urlencode(w))) { (w) }
                } } }
                (row("Created On", time(j.createdon)))
                (row("Started On", opt_time(j.startedon)))
                (row("Completed On", opt_time(j.completedon)))
                (row("Modified On", time(j.modifiedon)))
                (row("Postpone Until", opt_time(j.postponeuntil)))
            }
            table.kv {
                (row("Retry count", j.retrycount.to_string()))
                (row("Error code", j.errorcode.map(|c| format!("{c} (0x{:08x})", c as u32)).unwrap_or_default()))
                (row("Message", j.message.clone().unwrap_or_default()))
                (row("Friendly message", j.friendlymessage.clone().unwrap_or_default()))
                (row("Execution time span", if j.executiontimespan_ms > 0 { span(j.executiontimespan_ms as i64 * 1000) } else { String::new() }))
                (row("Depth", j.depth.to_string()))
                (row("Correlation id", j.correlationid.map(|c| c.to_string()).unwrap_or_default()))
                (row("Dependency token", j.dependencytoken.clone().unwrap_or_default()))
                (row("Recurrence pattern", j.recurrencepattern.clone().unwrap_or_default()))
                (row("Recurrence start", opt_time(j.recurrencestarttime)))
                (row("Data", format!("{} bytes", j.data.len())))
            }
        }
        h2 { "Timeline" }
        table.grid #timeline {
            thead { tr { th { "#" } th { "When (UTC)" } th { "Who" } th { "What" } th { "From" } th { "To" } th { "Time in the status before" } th { "Why" } } }
            tbody {
                @for (i, e) in history.iter().enumerate() {
                    tr {
                        td.muted { (e.seq) }
                        td { (time(e.at)) }
                        td { (e.actor.to_string()) }
                        td { (e.action.map(|a| format!("{a:?}")).unwrap_or_else(|| if i == 0 { "Created".into() } else { "Note".into() })) }
                        td { (e.from.map(|f| f.to_string()).unwrap_or_default()) }
                        td { (e.status.to_string()) }
                        td { @if i > 0 { (span(e.at.micros() - history[i - 1].at.micros())) } }
                        td.msg { (e.message.clone().unwrap_or_default()) }
                    }
                }
                @if let Some(last) = history.last() {
                    @if !completed {
                        tr.muted { td {} td { "now" } td {} td {} td {} td { (s.to_string()) } td { (span(now.micros() - last.at.micros())) " so far" } td {} }
                    }
                }
            }
        }
        h2 { "Time in each status" }
        p #time-in-status {
            @for (i, (st, micros)) in time_in_status(history, completed, now).iter().enumerate() {
                @if i > 0 { " · " }
                (st.to_string()) " " b { (span(*micros)) }
            }
        }
        h2 { "Attempts" }
        @if runs.is_empty() {
            p.muted { "Not run yet." }
        } @else {
            table.grid #attempts {
                thead { tr { th { "Run" } th { "Started" } th { "Ended" } th { "How" } th { "Error" } } }
                tbody {
                    @for (i, a) in runs.iter().enumerate() {
                        tr {
                            td { (i + 1) }
                            td { (time(a.started)) }
                            td { @if let Some((t, _)) = a.ended { (time(t)) " (" (span(t.micros() - a.started.micros())) ")" } @else { "running" } }
                            td { @if let Some((_, st)) = a.ended { (st.to_string()) } }
                            td.msg { (a.message.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        p { a href="/jobs" { "← System Jobs" } }
    }
}

/// How long the job stayed in each status, summed over its timeline (up
/// to now for the status it is in, unless Completed), in the order the
/// statuses were first reached.
fn time_in_status(history: &[HistoryEntry], completed: bool, now: joblog::domain::Timestamp) -> Vec<(Status, i64)> {
    let mut out: Vec<(Status, i64)> = Vec::new();
    for (i, e) in history.iter().enumerate() {
        let end = match history.get(i + 1) {
            Some(next) => next.at,
            None if completed => continue,
            None => now,
        };
        let d = end.micros() - e.at.micros();
        match out.iter_mut().find(|(s, _)| *s == e.status) {
            Some((_, t)) => *t += d,
            None => out.push((e.status, d)),
        }
    }
    out
}

/// Whether the state machine could take `action` from `s` (only to choose
/// which buttons to show; the engine decides when it is posted).
fn allowed(s: Status, action: &str) -> bool {
    let a = match action {
        "cancel" => Action::Cancel,
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        _ => Action::Postpone,
    };
    joblog::domain::transition(Uuid::nil(), joblog::OperationType::WORKFLOW, s, a).is_ok()
}

/// `POST /jobs/ID/act`: one action on one job, then back to its page.
pub(crate) async fn act(v: Viewer, Path(id): Path<String>, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(Some(&v), ApiError::not_found(format!("{id:?} is not a job id")));
    };
    let action = match parse_action(&f) {
        Ok(a) => a,
        Err(e) => return error_page(Some(&v), e),
    };
    let session = v.session().clone();
    match blocking(move || session.act(id, action).map_err(ApiError::from)).await {
        Ok(_) => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Err(e) => error_page(Some(&v), e),
    }
}

/// `GET /jobs/ID/delete`: the confirmation of deleting one job (what it
/// is, that it cannot be undone), whose form posts the deletion.
pub(crate) async fn confirm_delete(v: Viewer, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(Some(&v), ApiError::not_found(format!("{id:?} is not a job id")));
    };
    let session = v.session().clone();
    let job = match blocking(move || Ok(session.get(id)?)).await {
        Ok(j) => j,
        Err(e) => return error_page(Some(&v), e),
    };
    let body = html! {
        h1 { "Delete this job?" }
        p #delete-what {
            b { (job.name) } " (" (job.id) "), " (job.status.to_string()) ", owned by " (job.owner) "."
        }
        p { "The job and its whole history are deleted for good: it leaves every view at once, and its space comes back at the next compaction. This cannot be undone." }
        @if !job.status.is_completed() {
            p.error { "Only a Completed job (Succeeded, Failed or Canceled) can be deleted: cancel it first, or wait for it to end." }
        }
        div.actions {
            @if job.status.is_completed() {
                form.inline method="post" action=(format!("/jobs/{}/delete", job.id)) {
                    input type="hidden" name="csrf" value=(v.csrf);
                    input type="hidden" name="confirm" value="yes";
                    button.danger type="submit" #confirm-delete { "Delete" }
                }
                " "
            }
            a href=(format!("/jobs/{}", job.id)) #cancel-delete { "Keep it" }
        }
    };
    respond(StatusCode::OK, layout(Some(&v), Nav::Jobs, "Delete a job", body))
}

/// `POST /jobs/ID/delete` (from the confirmation, `confirm=yes`): the job
/// deleted (`Session::delete_jobs`), then back to the grid; a refusal is
/// the error page, and nothing changes.
pub(crate) async fn delete(v: Viewer, Path(id): Path<String>, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    if let Some(r) = v.refuse_csrf(f.get("csrf")) {
        return r;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return error_page(Some(&v), ApiError::not_found(format!("{id:?} is not a job id")));
    };
    if f.get("confirm") != Some("yes") {
        return Redirect::to(&format!("/jobs/{id}/delete")).into_response();
    }
    let session = v.session().clone();
    match blocking(move || session.delete_jobs(&[id]).map_err(ApiError::from)).await {
        Ok(_) => Redirect::to("/jobs").into_response(),
        Err(e) => error_page(Some(&v), e),
    }
}
