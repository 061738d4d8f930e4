//! The JSON shapes the command line prints and the native API answers
//! (docs/cli.md, "Job JSON"; docs/http.md): one definition for both.

use joblog::domain::{Job, Timestamp};
use joblog::engine::HistoryEntry;
use joblog::service::command_of;
use serde_json::{json, Value};

/// A time as RFC 3339 (UTC, microseconds), or null.
pub fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// The Job JSON (`docs/cli.md`, "Job JSON") as a tree, for answers that
/// add to it; a page of jobs is written straight from [`JobJson`].
pub fn job_json(j: &Job) -> Value {
    serde_json::to_value(JobJson::of(j)).unwrap_or(Value::Null)
}

/// A time as RFC 3339 text, for [`JobJson`].
fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

/// The Job JSON of one job, serialised without building a tree first (a
/// list page writes 50 to 1,000 of them). Its fields are declared in
/// alphabetical order, the order the tree ([`job_json`]) writes them, so
/// both give the same bytes.
#[derive(serde::Serialize)]
pub struct JobJson<'a> {
    asyncoperationid: uuid::Uuid,
    command: Option<&'a str>,
    completedon: Option<String>,
    correlationid: Option<uuid::Uuid>,
    createdon: Option<String>,
    dependencytoken: Option<&'a str>,
    depth: u32,
    errorcode: Option<i32>,
    executiontimespan_ms: u64,
    message: Option<&'a str>,
    modifiedon: Option<String>,
    name: &'a str,
    operationtype: u32,
    operationtype_name: String,
    ownerid: &'a str,
    owningbusinessunit: &'a str,
    postponeuntil: Option<String>,
    recurrencepattern: Option<&'a str>,
    regardingobjectid: Option<String>,
    retrycount: u32,
    startedon: Option<String>,
    state: &'static str,
    statecode: u32,
    status: &'static str,
    statuscode: u32,
    workflowactivationid: Option<&'a str>,
}

impl<'a> JobJson<'a> {
    /// The Job JSON of `j`.
    pub fn of(j: &'a Job) -> Self {
        JobJson {
            asyncoperationid: j.id,
            command: command_of(j),
            completedon: rfc3339(j.completedon),
            correlationid: j.correlationid,
            createdon: rfc3339(Some(j.createdon)),
            dependencytoken: j.dependencytoken.as_deref(),
            depth: j.depth,
            errorcode: j.errorcode,
            executiontimespan_ms: j.executiontimespan_ms,
            message: j.message.as_deref(),
            modifiedon: rfc3339(Some(j.modifiedon)),
            name: &j.name,
            operationtype: j.operationtype.0,
            operationtype_name: j.operationtype.display_name(),
            ownerid: &j.owner,
            owningbusinessunit: &j.owningbusinessunit,
            postponeuntil: rfc3339(j.postponeuntil),
            recurrencepattern: j.recurrencepattern.as_deref(),
            regardingobjectid: j.regarding.as_ref().map(|r| r.to_string()),
            retrycount: j.retrycount,
            startedon: rfc3339(j.startedon),
            state: j.status.state().name(),
            statecode: j.status.statecode(),
            status: j.status.reason().name(),
            statuscode: j.status.statuscode(),
            workflowactivationid: j.workflow.as_deref(),
        }
    }
}

/// A page of jobs as `GET /api/v1/jobs` answers it: `{"count"?, "jobs",
/// "next"}` (keys in the order a tree would write them).
#[derive(serde::Serialize)]
pub struct JobsPage<'a> {
    /// How many match in all, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// The page's jobs.
    pub jobs: Vec<JobJson<'a>>,
    /// The next page's cursor; null on the last page.
    pub next: Option<String>,
}

pub fn history_json(h: &[HistoryEntry]) -> Value {
    Value::Array(
        h.iter()
            .map(|e| {
                json!({
                    "seq": e.seq,
                    "at": e.at.to_rfc3339(),
                    "actor": e.actor.to_string(),
                    // No action: the creation, or a line that changes no
                    // status (an owner change, a resubmission).
                    "action": e.action.map_or(if e.from.is_some() { "note" } else { "create" }, |a| a.name()),
                    "statecode": e.status.statecode(),
                    "statuscode": e.status.statuscode(),
                    "state": e.status.state().name(),
                    "status": e.status.reason().name(),
                    "postponeuntil": ts(e.postponeuntil),
                    "message": e.message,
                })
            })
            .collect(),
    )
}

/// What an action on every job matching a filter did, or would do
/// (`dry_run`): the command line's `--all-matching` answer (docs/cli.md),
/// and `POST /api/v1/jobs/act`'s.
pub fn bulk_json(o: &joblog::engine::BulkOutcome, dry_run: bool) -> Value {
    json!({
        "matched": o.matched,
        "changed": o.changed.len(),
        "dry_run": dry_run,
        "would_change": if dry_run { json!(o.changed.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>()) } else { Value::Null },
        "refused_by": o.refused_by,
        "refused": o.refused.iter().map(|(id, why)| json!({"id": id.to_string(), "reason": why.to_string()})).collect::<Vec<_>>(),
    })
}

/// The jobs a deletion by id deleted: `{"deleted": [ids]}` (`joblog
/// delete`, `POST /api/v1/jobs/delete`).
pub fn deleted_json(ids: &[uuid::Uuid]) -> Value {
    json!({"deleted": ids.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>()})
}
