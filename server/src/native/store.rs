//! The store's administration in the native API (docs/http.md, "The
//! store"): statistics, replay as of a past time, verification,
//! compaction, and bulk deletion (Immediately, scheduled Bulk Delete jobs,
//! their list). Each is computed once, here: the HTTP route answers its
//! JSON, and the command line prints the same JSON (or text made from it)
//! whether it opened the store itself or the service carried it out.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use joblog::domain::{DeletionCriteria, OperationType, Privilege, StatusReason, Timestamp};
use joblog::engine::{Engine, NewBulkDelete, Session};
use joblog::Filter;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Body;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::job_json;
use crate::{blocking, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stats", get(stats_route))
        .route("/api/v1/replay", get(replay_route))
        .route("/api/v1/verify", post(verify_route))
        .route("/api/v1/compact", post(compact_route))
        .route("/api/v1/bulk-deletions", get(bulk_list_route).post(bulk_create_route))
        .route("/api/v1/bulk-deletions/now", post(bulk_now_route))
}

/// The most jobs one replay answers (its page: a replay has no cursor).
pub const MAX_REPLAY_LIMIT: usize = 100_000;

/// Which completed jobs a bulk deletion takes (docs/domain.md §7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// System Job Types, names or codes (at least one).
    #[serde(default)]
    pub types: Vec<String>,
    /// Completed Status Reasons (none: succeeded, failed and canceled).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// Only jobs completed more than this many days ago.
    #[serde(default = "thirty")]
    pub older_than_days: u32,
}

fn thirty() -> u32 {
    30
}

impl Criteria {
    /// The engine's criteria; a name that is no type or reason is refused.
    pub fn to_criteria(&self) -> Result<DeletionCriteria, joblog::Error> {
        let types = self.types.iter().map(|t| OperationType::parse(t)).collect::<Result<Vec<_>, _>>()?;
        let reasons = if self.statuses.is_empty() {
            vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled]
        } else {
            self.statuses.iter().map(|r| StatusReason::parse(r)).collect::<Result<Vec<_>, _>>()?
        };
        Ok(DeletionCriteria { types, reasons, older_than_days: self.older_than_days })
    }
}

/// What `POST /api/v1/bulk-deletions/now` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteNow {
    /// The jobs.
    pub criteria: Criteria,
    /// The most jobs deleted in this run.
    #[serde(default = "a_million")]
    pub limit: u64,
}

fn a_million() -> u64 {
    1_000_000
}

/// What `POST /api/v1/bulk-deletions` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBulkDeletion {
    /// The Bulk Delete job's name.
    pub name: String,
    /// The jobs it deletes each run.
    pub criteria: Criteria,
    /// Its first run (RFC 3339; none: now).
    pub start: Option<String>,
    /// Its recurrence (`FREQ=DAILY;INTERVAL=1`); none: once.
    pub recurrence: Option<String>,
}

/// The store's statistics as `user` may see them (`joblog stats`).
pub fn stats(engine: &Engine, s: &Session) -> Result<Value, joblog::Error> {
    let vis = s.visibility();
    let state = engine.state();
    let mut by_status = Vec::new();
    for status in joblog::domain::Status::all() {
        let f = Filter { state: Some(status.state()), status_reason: Some(status.reason()), ..Filter::default() };
        by_status.push((status, state.count(&f, &vis)?));
    }
    let mut by_type = Vec::new();
    for t in OperationType::named() {
        let n = state.count(&Filter { operationtype: Some(t), ..Filter::default() }, &vis)?;
        if n > 0 {
            by_type.push((t, n));
        }
    }
    let segments = engine.segments();
    let garbage: usize = state.garbage().values().map(Vec::len).sum();
    let heap = state.heap_bytes();
    let stored = state.job_count();
    // The jobs this user may see (the same visibility as `list`); the
    // store's total only for those who see every job.
    let jobs = state.count(&Filter::default(), &vis)?;
    let policy = state.policy().clone();
    let last_seq = state.last_seq();
    drop(state);
    let in_force = joblog::service::ServiceConfig::default().with_store_policy(&policy);
    // Whole workflows are held, across owners: shown to those who may read
    // every job (it would name others' workflows to anyone else).
    let org_wide = matches!(vis, joblog::projection::query::Visibility::All);
    let backoff = if org_wide { joblog::service::backoff_report(engine, &in_force.backoff) } else { Vec::new() };
    Ok(json!({
        "jobs": jobs,
        "by_status": by_status.iter().map(|(s, n)| json!({"state": s.state().name(), "status": s.reason().name(), "statecode": s.statecode(), "statuscode": s.statuscode(), "count": n})).collect::<Vec<_>>(),
        "by_type": by_type.iter().map(|(t, n)| json!({"operationtype": t.0, "operationtype_name": t.display_name(), "count": n})).collect::<Vec<_>>(),
        "segments": segments.len(),
        "last_seq": last_seq,
        "log_bytes": engine.data_bytes(),
        "disk_bytes": joblog::measure::dir_bytes(engine.dir()),
        "garbage_events": garbage,
        "projection_heap_bytes": heap,
        "projection_heap_bytes_per_job": heap.checked_div(stored).unwrap_or(0),
        "resident_bytes": joblog::measure::rss_anon_bytes(),
        "policy": super::admin::policy_json(&policy),
        "backoff": if !org_wide { Value::Null } else { json!(backoff.iter().map(|b| json!({"workflow": b.workflow, "consecutive_failures": b.consecutive_failures, "held_until": b.held_until.map(|t| t.to_rfc3339())})).collect::<Vec<_>>()) },
    }))
}

/// The jobs as of `until` (none: now), replayed from the log: how many
/// matched then, the policy then, and the first `limit` of them
/// (`joblog replay`).
pub fn replay(
    engine: &Engine,
    s: &Session,
    until: Option<Timestamp>,
    filter: &Filter,
    limit: usize,
) -> Result<Value, joblog::Error> {
    let at = until.unwrap_or_else(|| engine.now());
    let past = engine.replay_until(at)?;
    let vis = s.visibility();
    let (jobs, _) = past.query_jobs(filter, &vis, None, limit)?;
    let set: Vec<Value> = past.policy().set_keys().iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    Ok(json!({
        "as_of": at.to_rfc3339(),
        "count": past.count(filter, &vis)?,
        "policy_set": set,
        // An array made here: `json!` would copy a Vec<Value> whole.
        "jobs": Value::Array(jobs.iter().map(job_json).collect()),
    }))
}

/// Every checksum, the manifest against the segments, the projection
/// against a fresh replay (`joblog verify`); needs Read at Organization
/// depth. `progress` is told the jobs checked so far.
pub fn verify(engine: &Engine, s: &Session, progress: &mut dyn FnMut(u64)) -> Result<Value, joblog::Error> {
    s.require_organization(Privilege::Read)?;
    Ok(verify_json(&engine.verify_with(progress)))
}

/// A verification's report as JSON: `ok` false when it found problems.
pub fn verify_json(report: &joblog::engine::StoreReport) -> Value {
    json!({"segments": report.segments, "events": report.events, "ok": report.problems.is_empty(), "problems": report.problems})
}

/// Rewrites the segments without the deleted jobs' events (`joblog
/// compact`).
pub fn compact(engine: &Engine, s: &Session) -> Result<Value, joblog::Error> {
    let before = engine.disk_bytes();
    let c = s.compact()?;
    let after = engine.disk_bytes();
    Ok(json!({
        "segments_rewritten": c.segments.len(),
        "frames_dropped": c.frames_dropped,
        "bytes_written": c.bytes_written,
        "bytes_before": before,
        "bytes_after": after,
    }))
}

/// The Immediately option: deletes and compacts now (`joblog bulk-delete
/// now`). Warnings (the deletion is durable, giving the space back
/// failed) are in `warnings`.
pub fn delete_now(s: &Session, d: &DeleteNow) -> Result<Value, joblog::Error> {
    let criteria = d.criteria.to_criteria()?;
    // docs/cli.md's order: the privilege first, then the Workflow
    // criterion (before the criteria's other checks: no type at all is
    // told "needs Workflow" too).
    s.require_organization(Privilege::Delete)?;
    if !criteria.types.contains(&OperationType::WORKFLOW) {
        return Err(joblog::domain::DomainError::ImmediatelyNeedsWorkflow.into());
    }
    let r = s.delete_now(&criteria, d.limit)?;
    Ok(json!({
        "warnings": r.warnings,
        "deleted": r.deleted,
        "remaining_matching": r.remaining_matching,
        "bytes_before": r.bytes_before,
        "bytes_after": r.bytes_after,
        "seconds": r.seconds,
        "seconds_until_gone_from_views": r.seconds_logical,
        "bytes_rewritten": r.compaction.bytes_written,
    }))
}

/// A Bulk Delete system job (`joblog bulk-delete create`): its Job JSON.
pub fn create_bulk_deletion(s: &Session, b: &NewBulkDeletion) -> Result<Value, joblog::Error> {
    let start = b.start.as_deref().map(Timestamp::parse).transpose()?;
    let spec = NewBulkDelete {
        name: b.name.clone(),
        criteria: b.criteria.to_criteria()?,
        start,
        recurrence: b.recurrence.clone(),
    };
    Ok(job_json(&s.create_bulk_delete(&spec)?))
}

/// The Bulk Delete jobs with their success and failure counts and
/// criteria (`joblog bulk-delete list`).
pub fn bulk_deletions(s: &Session) -> Result<Value, joblog::Error> {
    let records = s.bulk_delete_jobs()?;
    Ok(Value::Array(
        records
            .iter()
            .map(|r| {
                let mut v = job_json(&r.job);
                v["successcount"] = json!(r.successcount);
                v["failurecount"] = json!(r.failurecount);
                v["criteria"] = r.criteria.as_ref().map_or(Value::Null, |c| {
                    json!({
                        "types": c.types.iter().map(|t| t.0).collect::<Vec<_>>(),
                        "statuses": c.reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
                        "older_than_days": c.older_than_days,
                    })
                });
                v
            })
            .collect(),
    ))
}

async fn stats_route(caller: Caller, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(stats(&st.engine, &caller.session)?))).await
}

/// `GET /api/v1/replay?until=T&…filters…&limit=N`.
async fn replay_route(
    caller: Caller,
    State(st): State<AppState>,
    Query(mut p): Query<std::collections::BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let until = p
        .remove("until")
        .map(|t| Timestamp::parse(&t))
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("until: {e}")))?;
    let limit = match p.remove("limit") {
        None => 100,
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=MAX_REPLAY_LIMIT).contains(l)).ok_or_else(|| {
            ApiError::bad_request(format!("limit: {l:?}; give a number from 1 to {MAX_REPLAY_LIMIT}"))
        })?,
    };
    let filter = super::filter_params(p)?.to_filter()?;
    blocking(move || Ok(Json(replay(&st.engine, &caller.session, until, &filter, limit)?))).await
}

async fn verify_route(caller: Caller, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(verify(&st.engine, &caller.session, &mut |_| {})?))).await
}

async fn compact_route(caller: Caller, State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(compact(&st.engine, &caller.session)?))).await
}

async fn bulk_list_route(caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(bulk_deletions(&caller.session)?))).await
}

async fn bulk_create_route(
    caller: Caller,
    Body(b): Body<NewBulkDeletion>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    blocking(move || Ok((axum::http::StatusCode::CREATED, Json(create_bulk_deletion(&caller.session, &b)?)))).await
}

async fn bulk_now_route(caller: Caller, Body(d): Body<DeleteNow>) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(delete_now(&caller.session, &d)?))).await
}
