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

/// The Job JSON (`docs/cli.md`, "Job JSON").
pub fn job_json(j: &Job) -> Value {
    json!({
        "asyncoperationid": j.id.to_string(),
        "name": j.name,
        "operationtype": j.operationtype.0,
        "operationtype_name": j.operationtype.display_name(),
        "statecode": j.status.statecode(),
        "state": j.status.state().name(),
        "statuscode": j.status.statuscode(),
        "status": j.status.reason().name(),
        "ownerid": j.owner,
        "owningbusinessunit": j.owningbusinessunit,
        "regardingobjectid": j.regarding.as_ref().map(|r| r.to_string()),
        "workflowactivationid": j.workflow,
        "createdon": ts(Some(j.createdon)),
        "startedon": ts(j.startedon),
        "completedon": ts(j.completedon),
        "modifiedon": ts(Some(j.modifiedon)),
        "postponeuntil": ts(j.postponeuntil),
        "retrycount": j.retrycount,
        "errorcode": j.errorcode,
        "message": j.message,
        "dependencytoken": j.dependencytoken,
        "depth": j.depth,
        "correlationid": j.correlationid.map(|c| c.to_string()),
        "recurrencepattern": j.recurrencepattern,
        "executiontimespan_ms": j.executiontimespan_ms,
        "command": command_of(j),
    })
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
