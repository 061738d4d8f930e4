//! What commands print: the Job JSON of the contract, the platform-like
//! grid, a job's history as a timeline.

use joblog::domain::{Job, Timestamp};
use joblog::engine::HistoryEntry;
use joblog::service::command_of;
use serde_json::{json, Value};

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// The Job JSON (`cli.md`), with a few more fields.
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
                    "action": e.action.map_or("create", |a| a.name()),
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

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON values serialize")
}

fn short_time(t: Option<Timestamp>) -> String {
    t.map_or_else(String::new, |t| t.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Rows under headers, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect()));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// The System Jobs grid.
pub fn jobs_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                truncate(&j.name, 40),
                j.operationtype.display_name(),
                j.status.state().name().to_string(),
                j.status.reason().name().to_string(),
                j.owner.clone(),
                j.regarding.as_ref().map(|r| r.to_string()).unwrap_or_default(),
                short_time(Some(j.createdon)),
                short_time(j.completedon),
                j.id.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "System Job Name",
            "System Job Type",
            "State",
            "Status Reason",
            "Owner",
            "Regarding",
            "Created On",
            "Completed On",
            "Id",
        ],
        &rows,
    )
}

/// One job in detail, with its history as a timeline.
pub fn job_detail(j: &Job, history: Option<&[HistoryEntry]>) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| {
        if !v.is_empty() {
            out.push_str(&format!("{k:<16} {v}\n"));
        }
    };
    field("Id", j.id.to_string());
    field("Name", j.name.clone());
    field("Type", j.operationtype.display_name());
    field("Status", j.status.to_string());
    field("Owner", format!("{} ({})", j.owner, j.owningbusinessunit));
    field("Regarding", j.regarding.as_ref().map(|r| r.to_string()).unwrap_or_default());
    field("Workflow", j.workflow.clone().unwrap_or_default());
    field("Created On", short_time(Some(j.createdon)));
    field("Started On", short_time(j.startedon));
    field("Completed On", short_time(j.completedon));
    field("Postpone Until", short_time(j.postponeuntil));
    field("Retries", if j.retrycount > 0 { j.retrycount.to_string() } else { String::new() });
    field("Error Code", j.errorcode.map(|c| c.to_string()).unwrap_or_default());
    field("Message", j.message.clone().unwrap_or_default());
    field("Command", command_of(j).unwrap_or_default().to_string());
    if let Some(h) = history {
        out.push_str("\nHistory\n");
        for e in h {
            let what = e.action.map_or("created".to_string(), |a| a.name().to_string());
            out.push_str(&format!(
                "  {}  #{:<8} {:<16} → {:<30} by {}",
                short_time(Some(e.at)),
                e.seq,
                what,
                e.status.to_string(),
                e.actor
            ));
            if let Some(t) = e.postponeuntil {
                out.push_str(&format!(" until {}", short_time(Some(t))));
            }
            if let Some(m) = &e.message {
                out.push_str(&format!("\n  {:>19}  {}", "", truncate(m, 100)));
            }
            out.push('\n');
        }
    }
    out
}
