//! The native API, `/api/v1/` (docs/http.md, "The native API"): jobs with
//! filters, cursor paging and counts; a job and its history; the four
//! actions on one job, or on every job matching a filter as a tracked bulk
//! operation; stats; the live event stream (`events.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use joblog::domain::{OperationType, Regarding, State as JobState, StatusReason, Timestamp};
use joblog::{Cursor, Filter};
use joblog::{NewJob, UserAction};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::{history_json, job_json, JobJson, JobsPage};
use crate::{blocking, AppState};

pub mod admin;

/// The largest page `GET /api/v1/jobs` returns.
pub const MAX_LIMIT: usize = 1000;
/// Jobs a bulk operation changes per batch (one atomic batch, one sync).
pub const BULK_PAGE: usize = 1000;
/// Bulk operations running at once (each has a thread); more are 429.
pub const MAX_RUNNING_OPERATIONS: usize = 4;
/// Finished bulk operations remembered (the oldest are forgotten first).
pub const MAX_OPERATIONS_KEPT: usize = 1000;

pub mod store;

/// The native API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(store::routes())
        .route("/api/v1/jobs", get(list_jobs).post(create_job))
        .route("/api/v1/jobs/delete", post(delete_jobs))
        .route("/api/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/api/v1/jobs/{id}/history", get(job_history))
        .route("/api/v1/jobs/act", post(act_on_matching))
        .route("/api/v1/jobs/import", post(import_jobs))
        .route("/api/v1/jobs/{id}/{action}", post(act_on_job))
        .route("/api/v1/workflows/{id}/reassign", post(reassign))
        .route("/api/v1/operations", get(list_operations).post(start_operation))
        .route("/api/v1/operations/{id}", get(get_operation).delete(cancel_operation))
        .route("/api/v1/me", get(me))
        .merge(admin::routes())
}

/// A JSON body, its rejections as the platform's error bodies.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large(1 << 20)),
            Err(e) => Err(ApiError::bad_request(format!("the request body: {}", e.body_text()))),
        }
    }
}

/// The filters of a job listing, as query parameters (the command line's
/// `--type`, `--state`, … of `joblog list`).
/// Serialized as given (unset fields left out) in a bulk operation's record.
#[derive(Debug, Default, Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// System Job Type: a name (`workflow`) or a code (`10`).
    #[serde(rename = "type")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operationtype: Option<String>,
    /// State: ready, suspended, locked, completed (or the code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Status Reason: waiting, failed, succeeded… (or the code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The workflow's jobs (Process Session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The jobs regarding a row, `table:id` (Background Processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regarding: Option<String>,
    /// The owner's user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Created strictly after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
    /// Created strictly before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_before: Option<String>,
    /// Completed strictly before this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_before: Option<String>,
}

impl FilterParams {
    /// The parameters that say `f` (codes for the type, state and status;
    /// RFC 3339 times): how an operation started from the dashboard's grid
    /// records its filter, as one started through the API does.
    pub fn of(f: &Filter) -> Self {
        FilterParams {
            operationtype: f.operationtype.map(|t| t.0.to_string()),
            state: f.state.map(|s| (s as u32).to_string()),
            status: f.status_reason.map(|r| (r as u32).to_string()),
            workflow: f.workflow.clone(),
            regarding: f.regarding.as_ref().map(ToString::to_string),
            owner: f.owner.clone(),
            created_after: f.created_after.map(Timestamp::to_rfc3339),
            created_before: f.created_before.map(Timestamp::to_rfc3339),
            completed_before: f.completed_before.map(Timestamp::to_rfc3339),
        }
    }

    /// The engine's filter; a value that does not parse is a 400 naming it.
    pub fn to_filter(&self) -> Result<Filter, ApiError> {
        fn time(name: &str, v: &Option<String>) -> Result<Option<Timestamp>, ApiError> {
            v.as_deref().map(Timestamp::parse).transpose().map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        }
        let wrap =
            |name: &'static str| move |e: joblog::domain::DomainError| ApiError::bad_request(format!("{name}: {e}"));
        Ok(Filter {
            operationtype: self.operationtype.as_deref().map(OperationType::parse).transpose().map_err(wrap("type"))?,
            state: self.state.as_deref().map(JobState::parse).transpose().map_err(wrap("state"))?,
            status_reason: self.status.as_deref().map(StatusReason::parse).transpose().map_err(wrap("status"))?,
            workflow: self.workflow.clone(),
            regarding: self.regarding.as_deref().map(Regarding::parse).transpose().map_err(wrap("regarding"))?,
            owner: self.owner.clone(),
            created_after: time("created_after", &self.created_after)?,
            created_before: time("created_before", &self.created_before)?,
            completed_before: time("completed_before", &self.completed_before)?,
        })
    }
}

/// `GET /api/v1/jobs`: a page of the jobs the caller may read, newest
/// `createdon` first; `next` is the cursor of the next page (null: the
/// last one); `count=true` adds how many match in all.
async fn list_jobs(caller: Caller, Query(mut p): Query<BTreeMap<String, String>>) -> Result<Response, ApiError> {
    let cursor = p
        .remove("cursor")
        .map(|c| c.parse::<Cursor>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("cursor: {e}")))?;
    let limit = match p.remove("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit: {l:?}; give a number from 1 to {MAX_LIMIT}")))?,
    };
    let count = match p.remove("count").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::bad_request(format!("count: {other:?}; give true or false"))),
    };
    let filter = filter_params(p)?.to_filter()?;
    blocking(move || {
        let (jobs, next) = caller.session.list(&filter, cursor.as_ref(), limit)?;
        let page = JobsPage {
            count: if count { Some(caller.session.count(&filter)?) } else { None },
            jobs: jobs.iter().map(JobJson::of).collect(),
            next: next.map(|c| c.to_string()),
        };
        // Serialised here, on the blocking thread, from the borrowed page.
        Ok(Json(page).into_response())
    })
    .await
}

/// The filter parameters of a query; an unknown parameter is a 400 naming it.
pub(crate) fn filter_params(p: BTreeMap<String, String>) -> Result<FilterParams, ApiError> {
    serde_json::from_value(json!(p)).map_err(|e| ApiError::bad_request(format!("query: {e}")))
}

/// A path that does not decode (not UTF-8, say), as the platform's body.
pub fn path_error(e: PathRejection) -> ApiError {
    ApiError::bad_request(format!("the path: {}", e.body_text()))
}

/// A body that could not be read: over the limit is 413, as everywhere.
pub fn body_error(e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(1 << 20)
    } else {
        ApiError::bad_request(format!("the request body: {}", e.body_text()))
    }
}

fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::bad_request(format!("{s:?} is not a job id (a UUID)")))
}

/// A job the caller may read; one they may not read is 404, exactly as
/// one that does not exist (docs/http.md, "Who is calling").
pub fn visible_job(session: &joblog::Session, id: Uuid) -> Result<joblog::Job, ApiError> {
    if !session.may_read(id) {
        return Err(joblog::domain::DomainError::job_not_found(id).into());
    }
    Ok(session.get(id)?)
}

/// The job `id` as this caller is told about it: over the network, one
/// they may not read is 404 ([`visible_job`]); on the service's Unix
/// socket, the engine's own answer, which the command line's contract
/// reports (a job that is not yours to change: permission denied, exit 5;
/// docs/cli.md, "Exit codes").
fn job_for(caller: &Caller, id: Uuid) -> Result<joblog::Job, ApiError> {
    if caller.is_local() {
        Ok(caller.session.get(id)?)
    } else {
        visible_job(&caller.session, id)
    }
}

/// Before acting on job `id`: over the network, one the caller may not
/// read is 404 ([`visible_job`]); on the Unix socket, the action itself
/// answers (the command line's contract, as [`job_for`] says).
fn may_act_on(caller: &Caller, id: Uuid) -> Result<(), ApiError> {
    if !caller.is_local() {
        visible_job(&caller.session, id)?;
    }
    Ok(())
}

/// `GET /api/v1/jobs/{id}`.
async fn get_job(caller: Caller, id: Result<Path<String>, PathRejection>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id.map_err(path_error)?.0)?;
    blocking(move || Ok(Json(job_json(&job_for(&caller, id)?)))).await
}

/// `DELETE /api/v1/jobs/{id}`: the job deleted (`Session::delete_jobs`);
/// 204. 404 for a job that does not exist or that the caller may not read,
/// 403 without Delete on it, 400 (refused) for a job not Completed.
async fn delete_job(caller: Caller, id: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let id = parse_id(&id.map_err(path_error)?.0)?;
    blocking(move || {
        caller.session.delete_jobs(&[id])?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// What `POST /api/v1/jobs/delete` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteIds {
    ids: Vec<String>,
}

/// `POST /api/v1/jobs/delete` with `{"ids": [...]}`: every job deleted, or
/// none (one refused id refuses the batch, with that id's answer); 200 with
/// `{"deleted": [...]}`, each id once.
async fn delete_jobs(caller: Caller, Body(b): Body<DeleteIds>) -> Result<Json<Value>, ApiError> {
    let max = joblog::domain::MAX_DELETE_IDS;
    if b.ids.len() > max {
        return Err(ApiError::bad_request(format!("ids: {} ids; one deletion takes at most {max}", b.ids.len())));
    }
    let ids = b.ids.iter().map(|s| parse_id(s)).collect::<Result<Vec<_>, _>>()?;
    blocking(move || Ok(Json(crate::json::deleted_json(&caller.session.delete_jobs(&ids)?)))).await
}

/// `GET /api/v1/jobs/{id}/history`: the job and every transition.
async fn job_history(caller: Caller, id: Result<Path<String>, PathRejection>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id.map_err(path_error)?.0)?;
    blocking(move || {
        let job = job_for(&caller, id)?;
        let history = caller.session.history(id)?;
        Ok(Json(json!({"job": job_json(&job), "history": history_json(&history)})))
    })
    .await
}

/// What `POST /api/v1/jobs` takes (the command line's `submit`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJob {
    name: String,
    #[serde(rename = "type")]
    operationtype: String,
    workflow: Option<String>,
    regarding: Option<String>,
    owner: Option<String>,
    postponeuntil: Option<String>,
    dependencytoken: Option<String>,
    /// A shell command the service runs (needs RunCommand).
    command: Option<String>,
    /// The command's time limit in seconds.
    timeout_secs: Option<u64>,
    /// No command: a program embedding joblog runs it with its handler.
    #[serde(default)]
    external_handler: bool,
}

/// `POST /api/v1/jobs`: a new job; 201 with its JSON.
async fn create_job(caller: Caller, Body(c): Body<CreateJob>) -> Result<Response, ApiError> {
    let bad = |what: &'static str| move |e: joblog::domain::DomainError| ApiError::bad_request(format!("{what}: {e}"));
    let mut spec = NewJob::new(&c.name, OperationType::parse(&c.operationtype).map_err(bad("type"))?);
    spec.workflow = c.workflow;
    spec.regarding = c.regarding.as_deref().map(Regarding::parse).transpose().map_err(bad("regarding"))?;
    spec.owner = c.owner;
    spec.postponeuntil = c.postponeuntil.as_deref().map(Timestamp::parse).transpose().map_err(bad("postponeuntil"))?;
    spec.dependency_token = c.dependencytoken;
    let max = joblog::domain::limits::MAX_COMMAND_TIMEOUT_SECS;
    if let Some(t) = c.timeout_secs.filter(|t| !(1..=max).contains(t)) {
        return Err(ApiError::bad_request(format!("timeout_secs: {t}; give whole seconds from 1 to {max}")));
    }
    match (&c.command, c.external_handler) {
        (Some(cmd), false) => spec.data = joblog::domain::command_data_with_timeout(cmd, c.timeout_secs),
        (Some(_), true) => {
            return Err(ApiError::bad_request("command and external_handler: a job runs a command or a program's handler, not both"))
        }
        (None, true) if c.timeout_secs.is_some() => {
            return Err(ApiError::bad_request("timeout_secs: only a job with a command has a time limit"))
        }
        (None, true) => {}
        // As the command line's `submit`: `joblog run` runs command jobs only.
        (None, false) => {
            return Err(ApiError::bad_request(
                "nothing would run this job: give \"command\", or \"external_handler\": true when a program embedding joblog registers a handler for it",
            ))
        }
    }
    blocking(move || {
        let job = caller.session.create(spec)?;
        Ok((StatusCode::CREATED, Json(job_json(&job))).into_response())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    /// Postpone: until when (RFC 3339).
    until: Option<String>,
}

/// The action `name`; an unknown one is 404 when it came in the path
/// (no such resource), 400 when it came in a body (a field that does not
/// parse).
fn user_action(name: &str, until: Option<&str>, in_path: bool) -> Result<UserAction, ApiError> {
    let action = match name {
        "cancel" => UserAction::Cancel,
        "pause" => UserAction::Pause,
        "resume" => UserAction::Resume,
        "postpone" => {
            let until = until.ok_or_else(|| ApiError::bad_request("postpone needs \"until\": a time (RFC 3339)"))?;
            UserAction::Postpone(Timestamp::parse(until).map_err(|e| ApiError::bad_request(format!("until: {e}")))?)
        }
        other => {
            let message = format!("no action {other:?}: the actions are cancel, pause, resume and postpone");
            return Err(if in_path { ApiError::not_found(message) } else { ApiError::bad_request(message) });
        }
    };
    if until.is_some() && name != "postpone" {
        return Err(ApiError::bad_request(format!("\"until\" is for postpone, not {name}")));
    }
    Ok(action)
}

/// `POST /api/v1/jobs/{id}/{cancel|pause|resume|postpone}`: the job after
/// the action; a refusal changes nothing (400 with the state machine's
/// reason).
async fn act_on_job(
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<axum::body::Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((id, action)) = path.map_err(path_error)?;
    let body = body.map_err(|e| body_error(&e))?;
    let id = parse_id(&id)?;
    if action == "resubmit" {
        return resubmit(caller, id, &body).await;
    }
    // The body is optional (only postpone needs one).
    let body: ActBody = optional_body(&body)?;
    let action = user_action(&action, body.until.as_deref(), true)?;
    blocking(move || {
        may_act_on(&caller, id)?;
        Ok(Json(job_json(&caller.session.act(id, action)?)))
    })
    .await
}

/// A JSON body that may be left out (empty or blank: every field's
/// default).
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the request body: {e}")))
}

/// What `POST /api/v1/jobs/{id}/resubmit` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResubmitBody {
    /// The new job's owner (the old one's by default).
    owner: Option<String>,
}

/// `POST /api/v1/jobs/{id}/resubmit`: a Failed or Canceled job as a new
/// job (the command line's `resubmit`); its JSON names the old one in
/// `resubmission_of`.
async fn resubmit(caller: Caller, id: Uuid, body: &[u8]) -> Result<Json<Value>, ApiError> {
    let body: ResubmitBody = optional_body(body)?;
    blocking(move || {
        may_act_on(&caller, id)?;
        let job = caller.session.resubmit(id, body.owner.as_deref())?;
        let mut v = job_json(&job);
        v["resubmission_of"] = json!(id.to_string());
        Ok(Json(v))
    })
    .await
}

/// What `POST /api/v1/jobs/act` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActOnMatching {
    /// cancel, pause, resume or postpone.
    action: String,
    /// Postpone: until when.
    until: Option<String>,
    /// Only count and list what would change.
    #[serde(default)]
    dry_run: bool,
    /// The jobs: the filters of `GET /api/v1/jobs` (none: every job the
    /// caller may see).
    #[serde(default)]
    filter: FilterParams,
}

/// `POST /api/v1/jobs/act`: an action on every job matching a filter, as
/// ONE atomic batch (the command line's `--all-matching`): each job
/// changes or is refused with why, all in one write. For a tracked,
/// stoppable operation a page at a time, see `/api/v1/operations`.
async fn act_on_matching(caller: Caller, Body(b): Body<ActOnMatching>) -> Result<Json<Value>, ApiError> {
    let action = user_action(&b.action, b.until.as_deref(), false)?;
    let filter = b.filter.to_filter()?;
    blocking(move || {
        let s = &caller.session;
        let o = if b.dry_run { s.preview_on_matching(action, &filter)? } else { s.act_on_matching(action, &filter)? };
        Ok(Json(crate::json::bulk_json(&o, b.dry_run)))
    })
    .await
}

/// What `POST /api/v1/workflows/{id}/reassign` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassignBody {
    from: String,
    to: String,
}

/// `POST /api/v1/workflows/{id}/reassign`: the workflow's waiting runs
/// owned by `from` given to `to` (the command line's `reassign`).
async fn reassign(
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    Body(b): Body<ReassignBody>,
) -> Result<Json<Value>, ApiError> {
    let workflow = id.map_err(path_error)?.0;
    blocking(move || {
        let moved = caller.session.reassign(&workflow, &b.from, &b.to)?;
        let ids: Vec<String> = moved.iter().map(Uuid::to_string).collect();
        Ok(Json(json!({"workflow": workflow, "from": b.from, "to": b.to, "moved": moved.len(), "jobs": ids})))
    })
    .await
}

/// `GET /api/v1/me`: who the caller is.
async fn me(caller: Caller) -> Json<Value> {
    let vis = caller.session.visibility();
    Json(json!({"user": caller.user, "reads_every_job": matches!(vis, joblog::Visibility::All)}))
}

/// A bulk operation: one action on every job matching a filter, a page
/// at a time (docs/http.md, "Bulk operations").
pub struct Operation {
    id: Uuid,
    user: String,
    action: String,
    filter: Value,
    started: Timestamp,
    /// How many matched when it started (the dry run's count).
    expected: usize,
    stop: AtomicBool,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    matched: usize,
    changed: usize,
    refused_by: BTreeMap<String, usize>,
    status: &'static str,
    error: Option<String>,
    finished: Option<Timestamp>,
}

impl Operation {
    /// Its id (`/api/v1/operations/{id}`, the dashboard's `/operations/{id}`).
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// Asks it to stop after the page in hand.
    pub(crate) fn cancel(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Its progress or result, as `GET /api/v1/operations/{id}` answers.
    pub(crate) fn json(&self) -> Value {
        let p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "id": self.id,
            "user": self.user,
            "action": self.action,
            "filter": self.filter,
            "started": self.started.to_rfc3339(),
            "finished": p.finished.map(|t| t.to_rfc3339()),
            "status": p.status,
            "expected": self.expected,
            "matched": p.matched,
            "changed": p.changed,
            "refused": p.refused_by.values().sum::<usize>(),
            "refused_by": p.refused_by,
            "error": p.error,
        })
    }
}

/// The bulk operations of this server's life (in memory: a restart
/// forgets them; each changed job's history names its operation).
#[derive(Default)]
pub struct Operations {
    list: Mutex<Vec<Arc<Operation>>>,
}

impl Operations {
    fn get(&self, id: Uuid) -> Option<Arc<Operation>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|o| o.id == id).cloned()
    }

    /// Adds a starting operation, unless [`MAX_RUNNING_OPERATIONS`] already
    /// run (checked and added under one lock: no race lets a fifth in).
    fn try_push(&self, op: Arc<Operation>) -> bool {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let running = list.iter().filter(|o| o.progress.lock().is_ok_and(|p| p.finished.is_none())).count();
        if running >= MAX_RUNNING_OPERATIONS {
            return false;
        }
        if list.len() >= MAX_OPERATIONS_KEPT {
            if let Some(i) = list.iter().position(|o| o.progress.lock().is_ok_and(|p| p.finished.is_some())) {
                list.remove(i);
            }
        }
        list.push(op);
        true
    }

    /// Asks every running operation to stop after its page in hand (the
    /// server is stopping): each ends "canceled", what it changed stays.
    pub fn stop_all(&self) {
        for op in self.list.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            op.stop.store(true, Ordering::Release);
        }
    }

    /// How many operations are still running.
    pub fn running(&self) -> usize {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|o| o.progress.lock().is_ok_and(|p| p.finished.is_none())).count()
    }

    fn visible(&self, user: &str, admin: bool) -> Vec<Arc<Operation>> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|o| admin || o.user == user).cloned().collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartOperation {
    action: String,
    until: Option<String>,
    #[serde(default)]
    filter: FilterParams,
    /// Every job the caller may see, with no filter: must be said.
    #[serde(default)]
    everything: bool,
    /// Count and check only; nothing is written.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/operations`: with `dry_run`, what the action would do
/// (how many match, change, are refused and why); else starts it and
/// answers 202 with the operation to follow at `/api/v1/operations/{id}`.
async fn start_operation(
    State(s): State<AppState>,
    caller: Caller,
    Body(b): Body<StartOperation>,
) -> Result<Response, ApiError> {
    let action = user_action(&b.action, b.until.as_deref(), false)?;
    let filter = b.filter.to_filter()?;
    if filter == Filter::default() && !b.everything {
        return Err(ApiError::bad_request(
            "a bulk operation needs a filter, or \"everything\": true to act on every job you may see",
        ));
    }
    let session = caller.session.clone();
    if b.dry_run {
        let preview = blocking(move || Ok(session.preview_on_matching(action, &filter)?)).await?;
        return Ok(Json(json!({
            "dry_run": true,
            "matched": preview.matched,
            "would_change": preview.changed.len(),
            "refused_by": preview.refused_by,
        }))
        .into_response());
    }
    let filter_json = serde_json::to_value(&b.filter).unwrap_or(Value::Null);
    let op = launch(&s, &caller, action, &b.action, filter, filter_json).await?;
    let mut r = (StatusCode::ACCEPTED, Json(op.json())).into_response();
    if let Ok(v) = format!("/api/v1/operations/{}", op.id).parse() {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(r)
}

/// Starts a bulk operation of `caller` on a thread of its own: `action`
/// (named `action_name`) on every job matching `filter` (said as
/// `filter_json` in its answers), a page at a time. 429 when
/// [`MAX_RUNNING_OPERATIONS`] already run. The native API's `POST
/// /api/v1/operations` and the dashboard's "all matching" both start here.
pub(crate) async fn launch(
    s: &AppState,
    caller: &Caller,
    action: UserAction,
    action_name: &str,
    filter: Filter,
    filter_json: Value,
) -> Result<Arc<Operation>, ApiError> {
    let session = caller.session.clone();
    let (expected, filter) = blocking(move || Ok((session.count(&filter)?, filter))).await?;
    let op = Arc::new(Operation {
        id: Uuid::now_v7(),
        user: caller.user.clone(),
        action: action_name.to_string(),
        filter: filter_json,
        started: s.engine.now(),
        expected,
        stop: AtomicBool::new(false),
        progress: Mutex::new(Progress { status: "running", ..Progress::default() }),
    });
    if !s.operations.try_push(Arc::clone(&op)) {
        return Err(ApiError::too_many(5));
    }
    let runner = Arc::clone(&op);
    let (session, engine) = (caller.session.clone(), s.engine.clone());
    if let Err(source) = std::thread::Builder::new()
        .name("joblog-bulk".into())
        .spawn(move || run_operation(&runner, &session, action, &filter, &engine))
    {
        // Listed but never run: ended, so that it holds no running slot.
        let e = joblog::Error::Spawn { what: "a bulk operation's thread".into(), source };
        let mut p = op.progress.lock().unwrap_or_else(|e| e.into_inner());
        (p.status, p.error, p.finished) = ("failed", Some(e.to_string()), Some(s.engine.now()));
        return Err(e.into());
    }
    Ok(op)
}

/// Runs a bulk operation a page at a time, each page one atomic batch
/// whose transitions say which operation made them; stops between pages
/// when cancelled.
fn run_operation(
    op: &Operation,
    session: &joblog::Session,
    action: UserAction,
    filter: &Filter,
    engine: &joblog::Engine,
) {
    let note = format!("bulk operation {} by {}", op.id, op.user);
    let mut cursor: Option<Cursor> = None;
    let status = loop {
        if op.stop.load(Ordering::Acquire) {
            break "canceled";
        }
        match session.act_on_page(action, filter, cursor.as_ref(), BULK_PAGE, Some(&note)) {
            Ok((out, next)) => {
                let mut p = op.progress.lock().unwrap_or_else(|e| e.into_inner());
                p.matched += out.matched;
                p.changed += out.changed.len();
                for (k, n) in out.refused_by {
                    *p.refused_by.entry(k.to_string()).or_default() += n;
                }
                match next {
                    Some(c) => cursor = Some(c),
                    None => break "succeeded",
                }
            }
            Err(e) => {
                op.progress.lock().unwrap_or_else(|e| e.into_inner()).error = Some(e.to_string());
                break "failed";
            }
        }
    };
    let mut p = op.progress.lock().unwrap_or_else(|e| e.into_inner());
    p.status = status;
    p.finished = Some(engine.now());
    tracing::info!(operation = %op.id, user = %op.user, action = %op.action, status, changed = p.changed, "bulk operation ended");
}

fn is_admin(caller: &Caller) -> bool {
    matches!(caller.session.visibility(), joblog::Visibility::All)
}

/// `GET /api/v1/operations`: the caller's bulk operations (every one for
/// a user who reads every job).
async fn list_operations(State(s): State<AppState>, caller: Caller) -> Json<Value> {
    let ops = s.operations.visible(&caller.user, is_admin(&caller));
    Json(json!({"operations": ops.iter().map(|o| o.json()).collect::<Vec<_>>()}))
}

/// The operation `id` for `caller` to stop: their own, or any for a user
/// with Write at Organization depth; one they may see but not stop is
/// 403, one they may not see 404.
pub(crate) async fn operation_to_cancel(s: &AppState, caller: &Caller, id: &str) -> Result<Arc<Operation>, ApiError> {
    let op = find_operation(s, caller, id)?;
    if op.user != caller.user {
        let session = caller.session.clone();
        blocking(move || Ok(session.require_organization(joblog::domain::Privilege::Write)?)).await?;
    }
    Ok(op)
}

/// The operation `id` if `caller` started it or reads every job; 404
/// otherwise, as for one that does not exist.
pub(crate) fn find_operation(s: &AppState, caller: &Caller, id: &str) -> Result<Arc<Operation>, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::bad_request(format!("{id:?} is not an operation id")))?;
    s.operations
        .get(id)
        .filter(|o| o.user == caller.user || is_admin(caller))
        .ok_or_else(|| ApiError::not_found(format!("no bulk operation {id}")))
}

/// `GET /api/v1/operations/{id}`: its progress or result.
async fn get_operation(
    State(s): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    Ok(Json(find_operation(&s, &caller, &id)?.json()))
}

/// `DELETE /api/v1/operations/{id}`: stops it after the page in hand
/// (what was changed stays changed); the operation as it then stands.
async fn cancel_operation(
    State(s): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    let op = operation_to_cancel(&s, &caller, &id).await?;
    op.cancel();
    Ok(Json(op.json()))
}

/// The query of `POST /api/v1/jobs/import`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// The file's name, for messages and its kind (`.csv`: a CSV export).
    name: Option<String>,
}

/// `POST /api/v1/jobs/import?name=FILE`: the body is a file of historical
/// jobs (JSON lines or a CSV export; `crate::import`), up to
/// [`crate::import::MAX_UPLOAD_BYTES`], streamed to a private spool file a
/// chunk at a time (a line over the limit stops it at once: the rest is
/// read and dropped, so that the client reads the refusal), then checked
/// whole and imported: `{"imported": N}`, or 400 whose `details.errors`
/// lists every bad line, nothing imported. Needs Create at Organization
/// depth, checked before a byte of the body is read.
async fn import_jobs(
    caller: Caller,
    State(st): State<AppState>,
    q: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    use futures_util::StreamExt;
    use std::io::Write;
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    let name = q.name.unwrap_or_else(|| "import.jsonl".into());
    let s = caller.session.clone();
    blocking(move || Ok(s.require_organization(joblog::domain::Privilege::Create)?)).await?;
    let internal = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::error::code::INTERNAL,
            format!("spooling the file: {e}"),
        )
    };
    // Created 0600 in the temporary directory, removed when dropped.
    let mut spool = tempfile::Builder::new().prefix("joblog-import-").tempfile().map_err(internal)?;
    let mut limit = crate::import::LineLimit::default();
    let mut len = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the request body: {e}")))?;
        len += chunk.len() as u64;
        if len > crate::import::MAX_UPLOAD_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::error::code::TOO_LARGE,
                format!("{name}: over {} bytes; one import takes at most that", crate::import::MAX_UPLOAD_BYTES),
            ));
        }
        if let Err(line) = limit.feed(&chunk) {
            // Nothing more is spooled. The rest of the body (within the
            // upload's bound and the request's time limit) is read and
            // dropped before answering: a client still sending it would
            // otherwise meet a closed connection instead of the answer.
            while let Some(Ok(chunk)) = stream.next().await {
                len += chunk.len() as u64;
                if len > crate::import::MAX_UPLOAD_BYTES {
                    break;
                }
            }
            return Err(crate::import::ImportError::LineTooLong { file: name, line }.into());
        }
        // A chunk at a time into a local file: short writes.
        spool.write_all(&chunk).map_err(internal)?;
    }
    spool.flush().map_err(internal)?;
    blocking(move || {
        let n = crate::import::import_file(&st.engine, &caller.session, spool.path(), &name, &mut |_, _| {})?;
        Ok(Json(crate::import::imported_json(n)))
    })
    .await
}
