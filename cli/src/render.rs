//! Text from the native API's JSON: what each command prints without
//! `--json`, the same whether the command opened the store itself or the
//! service carried it out (`remote`). With `--json` the JSON is printed as
//! it is (docs/cli.md).
//!
//! Each function takes the JSON the server crate's compute function
//! returned (`joblog_server::native::admin`, `::store`) and nothing else:
//! the text holds no fact the JSON does not.

use serde_json::Value;

use super::args::{BulkDeleteCmd, Command, ConfigCmd, RoleCmd, TokenCmd, UnitCmd, UserCmd, WorkflowCmd};
use super::output::{job_detail, jobs_table, pretty, table};
use super::{Failure, Output};

/// What `cmd` prints, from the native API's answer `v` (the JSON itself
/// with `--json`).
pub fn output(cmd: &Command, v: Value, json: bool) -> Output {
    // The job-changing commands answer a job; `show --history` the job and
    // its history, printed as one.
    let v = match (cmd, v) {
        (Command::Show { history: true, .. }, Value::Object(mut m)) => {
            let mut job = m.remove("job").unwrap_or(Value::Null);
            job["history"] = m.remove("history").unwrap_or(Value::Null);
            job
        }
        (_, v) => v,
    };
    match cmd {
        Command::Verify => return verify(&v, json),
        Command::Replay { .. } if json => return Ok(pretty(&v["jobs"])),
        Command::BulkDelete(BulkDeleteCmd::Now { .. }) => {
            // The deletion is durable: what failed after it (compaction on
            // a full disk) is said on stderr, and the command succeeds.
            for w in v["warnings"].as_array().into_iter().flatten() {
                say!("joblog: warning: {}", w.as_str().unwrap_or_default());
            }
        }
        _ => {}
    }
    if json {
        return Ok(pretty(&v));
    }
    Ok(match cmd {
        Command::Stats => stats(&v),
        Command::Replay { .. } => replay(&v),
        Command::Compact => format!(
            "{} segments rewritten, {} events dropped, {} → {} bytes",
            v["segments_rewritten"], v["frames_dropped"], v["bytes_before"], v["bytes_after"]
        ),
        Command::BulkDelete(BulkDeleteCmd::Now { .. }) => {
            let mut text = format!(
                "deleted {} jobs ({} more match) in {:.3} s; log files {} → {} bytes",
                v["deleted"],
                v["remaining_matching"],
                v["seconds"].as_f64().unwrap_or_default(),
                v["bytes_before"],
                v["bytes_after"]
            );
            // Also in the report itself (a script reading stdout only).
            for w in v["warnings"].as_array().into_iter().flatten() {
                text.push_str(&format!("\nwarning: {}", w.as_str().unwrap_or_default()));
            }
            text
        }
        Command::BulkDelete(BulkDeleteCmd::List) => bulk_deletions(&v),
        Command::Import { file } => match v["already_there"].as_u64() {
            None => format!("imported {} jobs from {}", v["imported"], file.display()),
            Some(k) => format!(
                "imported {} jobs from {} ({k} were already there, from an earlier run of this import)",
                v["imported"],
                file.display()
            ),
        },
        Command::Delete { .. } => {
            let ids: Vec<&str> = v["deleted"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            format!("deleted {} job{}: {}", ids.len(), if ids.len() == 1 { "" } else { "s" }, ids.join(" "))
        }
        Command::Resubmit { .. } => {
            format!(
                "resubmitted {} as {}\n{}",
                text(&v, "resubmission_of"),
                text(&v, "asyncoperationid"),
                job_detail(&v)
            )
        }
        Command::Reassign { workflow, from, to } => {
            format!("{} waiting runs of {workflow} moved from {from} to {to}", v["moved"].as_u64().unwrap_or_default())
        }
        Command::Cancel(a) | Command::Pause(a) | Command::Resume(a) | Command::Postpone { act: a, .. }
            if a.all_matching =>
        {
            let action = match cmd {
                Command::Cancel(_) => "cancel",
                Command::Pause(_) => "pause",
                Command::Resume(_) => "resume",
                _ => "postpone",
            };
            bulk(&v, action)
        }
        _ => admin_text(cmd, &v).unwrap_or_else(|| job_detail(&v)),
    })
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// A page of `list`: the jobs, and the line that names the next page's
/// cursor (with `--json`, a note for stderr instead, returned second).
pub fn list(jobs: &[Value], next: Option<&str>, json: bool) -> (String, Option<String>) {
    if json {
        return (pretty(&Value::Array(jobs.to_vec())), next.map(|n| format!("next page: --after {n}")));
    }
    let mut out = jobs_table(jobs);
    if let Some(next) = next {
        out.push_str(&format!("… more: joblog list --after {next}\n"));
    }
    (out, None)
}

/// A bulk action's summary: how many changed (or would), how many were
/// refused and why, by kind; each refusal only in JSON (`json::bulk_json`).
pub fn bulk(v: &Value, action: &str) -> String {
    let verb = match action {
        "cancel" => "canceled",
        "pause" => "paused",
        "resume" => "resumed",
        _ => "postponed",
    };
    let n = |k: &str| v[k].as_u64().unwrap_or_default();
    let dry_run = v["dry_run"].as_bool().unwrap_or_default();
    let refused = v["refused"].as_array().map_or(0, Vec::len);
    let by: Vec<String> =
        v["refused_by"].as_object().map(|m| m.iter().map(|(k, n)| format!("{k} {n}")).collect()).unwrap_or_default();
    let refused = if refused == 0 { "refused 0".to_string() } else { format!("refused {refused} ({})", by.join(", ")) };
    let (matched, changed) = (n("matched"), n("changed"));
    let mut text = if dry_run {
        format!("dry run, nothing changed: {matched} matched; would be {verb}: {changed}, {refused}")
    } else {
        format!("{matched} matched: {verb} {changed}, {refused}")
    };
    if dry_run {
        // Which ones would change (a dry run is for reading); a long list
        // is cut here, and whole in --json.
        const SHOWN: usize = 50;
        let ids = v["would_change"].as_array().cloned().unwrap_or_default();
        for id in ids.iter().take(SHOWN) {
            text.push_str(&format!("\n  {}", id.as_str().unwrap_or_default()));
        }
        if ids.len() > SHOWN {
            text.push_str(&format!("\n  … and {} more (all of them with --json)", ids.len() - SHOWN));
        }
    }
    text
}

/// `verify`'s report: on stdout always (JSON too); exit 1 when it found
/// anything.
pub fn verify(v: &Value, json: bool) -> Output {
    let problems: Vec<&str> = v["problems"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let out = if json {
        pretty(v)
    } else if problems.is_empty() {
        format!("ok: {} segments, {} events, every checksum and the projection match", v["segments"], v["events"])
    } else {
        format!("{} problems:\n  {}", problems.len(), problems.join("\n  "))
    };
    match problems.first() {
        None => Ok(out),
        // The report still goes to stdout; the exit code says it failed.
        Some(first) => Err(Failure {
            code: 1,
            message: format!(
                "verify found {} problems, the first: {first}; `joblog salvage --to NEWDIR` copies what is intact into a new store",
                problems.len()
            ),
            stdout: out,
        }),
    }
}

/// `replay`: what matched as of then, the policy then, the first jobs.
fn replay(v: &Value) -> String {
    let mut header = format!("as of {} (replayed from the log): {} jobs\n", text(v, "as_of"), v["count"]);
    let set: Vec<String> = v["policy_set"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}={}", text(p, "key"), p["value"]))
        .collect();
    if !set.is_empty() {
        header.push_str(&format!("policy then: {} (other keys at their defaults)\n", set.join(", ")));
    }
    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    format!("{header}{}", jobs_table(&jobs))
}

/// `bulk-delete list`: the Bulk Delete jobs.
fn bulk_deletions(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(r, "name"),
                format!("{}/{}", text(r, "state"), text(r, "status")),
                text(r, "recurrencepattern"),
                text(r, "postponeuntil"),
                r["successcount"].to_string(),
                r["failurecount"].to_string(),
            ]
        })
        .collect();
    table(&["Name", "Status", "Recurrence", "Next Run", "Success Count", "Failure Count"], &rows)
}

/// `stats`: counts by status and type, the log, memory, back-off, policy.
fn stats(v: &Value) -> String {
    let mut out = format!("{} jobs\n\n", v["jobs"]);
    let rows: Vec<Vec<String>> = v["by_status"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["count"].as_u64().unwrap_or_default() > 0)
        .map(|r| vec![text(r, "state"), text(r, "status"), r["count"].to_string()])
        .collect();
    out.push_str(&table(&["State", "Status Reason", "Jobs"], &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = v["by_type"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| vec![text(r, "operationtype_name"), r["count"].to_string()])
        .collect();
    out.push_str(&table(&["System Job Type", "Jobs"], &rows));
    out.push_str(&format!(
        "\nlog: {} segments, last event #{}, {} bytes of events, {} bytes on disk; {} events of deleted jobs awaiting compaction\nmemory: projection {} bytes ({} per job), resident {} bytes\n",
        v["segments"], v["last_seq"], v["log_bytes"], v["disk_bytes"], v["garbage_events"],
        v["projection_heap_bytes"], v["projection_heap_bytes_per_job"], v["resident_bytes"]
    ));
    match v["backoff"].as_array() {
        None => out.push_str("back-off: shown to users who may read every job\n"),
        Some(b) if b.is_empty() => {
            out.push_str("back-off (the whole organisation's workflows): no workflow is failing\n");
        }
        Some(b) => {
            let rows: Vec<Vec<String>> = b
                .iter()
                .map(|r| {
                    vec![
                        text(r, "workflow"),
                        r["consecutive_failures"].to_string(),
                        r["held_until"].as_str().map_or_else(|| "—".to_string(), str::to_string),
                    ]
                })
                .collect();
            out.push_str(&format!(
                "back-off (the whole organisation's workflows):\n{}",
                table(&["Workflow", "Failures in a row", "Held until"], &rows)
            ));
        }
    }
    out.push_str(&format!(
        "\npolicy in force (`joblog config set KEY VALUE` changes it):\n{}",
        policy_table(&v["policy"])
    ));
    out
}

/// The text `cmd` prints for its answer `v`, for each command the native
/// API serves (`remote::call_for`); `None` for the others.
pub fn admin_text(cmd: &Command, v: &Value) -> Option<String> {
    Some(match cmd {
        Command::User(UserCmd::Add { .. }) => user_added(v),
        Command::User(UserCmd::Map { .. }) => user_mapped(v),
        Command::User(UserCmd::Deactivate { .. }) => user_deactivated(v),
        Command::User(UserCmd::Reactivate { .. }) => user_reactivated(v),
        Command::User(UserCmd::List) => users(v),
        Command::Role(RoleCmd::Add { .. }) => role_added(v),
        Command::BusinessUnit(UnitCmd::Add { .. }) => business_unit_added(v),
        Command::Workflow(WorkflowCmd::Add { .. }) => workflow_added(v),
        Command::Workflow(WorkflowCmd::SetOwner { .. }) => workflow_owner_set(v),
        Command::Workflow(WorkflowCmd::List) => workflows(v),
        Command::Token(TokenCmd::Create { .. }) => token_created(v),
        Command::Token(TokenCmd::List) => tokens(v),
        Command::Token(TokenCmd::Revoke { .. }) => token_revoked(v),
        Command::Config(ConfigCmd::Show { until }) => config(v, until.as_deref()),
        Command::Config(ConfigCmd::Set { .. } | ConfigCmd::Unset { .. }) => config_set(v),
        _ => return None,
    })
}

/// A string field as it is; any other value as JSON (`null` for none).
fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string field, or `""` when null.
fn or_empty(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        s(v)
    }
}

/// The items of an array (none for anything else).
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A list of strings joined with `, `.
fn joined(v: &Value) -> String {
    items(v).iter().map(s).collect::<Vec<_>>().join(", ")
}

/// `user add`.
pub fn user_added(v: &Value) -> String {
    format!("user {} added to {} as {}", s(&v["name"]), s(&v["business_unit"]), joined(&v["roles"]))
}

/// `user map`.
pub fn user_mapped(v: &Value) -> String {
    let name = s(&v["name"]);
    match v["os_uid"].as_u64() {
        Some(u) => format!("OS user {u} now acts as {name} (and only as {name}) through the service"),
        None => format!("{name} is no longer mapped to an OS user"),
    }
}

/// `user deactivate`.
pub fn user_deactivated(v: &Value) -> String {
    format!("user {} deactivated", s(&v["name"]))
}

/// `user reactivate`.
pub fn user_reactivated(v: &Value) -> String {
    format!("user {} reactivated", s(&v["name"]))
}

/// `user list`.
pub fn users(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|u| {
            vec![
                s(&u["name"]),
                s(&u["business_unit"]),
                joined(&u["roles"]),
                if u["active"].as_bool() == Some(true) { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(&["User", "Business Unit", "Roles", "Active"], &rows)
}

/// `role add`.
pub fn role_added(v: &Value) -> String {
    format!("role {} added", s(&v["role"]))
}

/// `business-unit add`.
pub fn business_unit_added(v: &Value) -> String {
    format!("business unit {} added under {}", s(&v["business_unit"]), s(&v["parent"]))
}

/// `workflow add`.
pub fn workflow_added(v: &Value) -> String {
    format!("workflow {} added, owned by {}", s(&v["id"]), s(&v["owner"]))
}

/// `workflow set-owner`.
pub fn workflow_owner_set(v: &Value) -> String {
    format!("workflow {} is now owned by {}", s(&v["id"]), s(&v["owner"]))
}

/// `workflow list`.
pub fn workflows(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v).iter().map(|w| vec![s(&w["id"]), s(&w["name"]), s(&w["owner"])]).collect();
    table(&["Workflow", "Name", "Owner"], &rows)
}

/// `token create`: the token alone on the last line, for `| tail -n 1`.
pub fn token_created(v: &Value) -> String {
    let expires = if v["expires"].is_null() { "never".to_string() } else { s(&v["expires"]) };
    format!(
        "token {} for {}, expires {expires}; shown once (joblog keeps only its hash):\n{}",
        s(&v["id"]),
        s(&v["user"]),
        s(&v["token"])
    )
}

/// `token list`.
pub fn tokens(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|t| {
            vec![
                s(&t["id"]),
                s(&t["user"]),
                or_empty(&t["name"]),
                s(&t["created"]),
                if t["expires"].is_null() { "never".to_string() } else { s(&t["expires"]) },
                s(&t["status"]),
            ]
        })
        .collect();
    table(&["Id", "User", "Name", "Created", "Expires", "Status"], &rows)
}

/// `token revoke`.
pub fn token_revoked(v: &Value) -> String {
    format!("token {} revoked", s(&v["id"]))
}

/// A number, or `none`.
fn number_or_none(v: &Value) -> String {
    v.as_u64().map_or("none".to_string(), |n| n.to_string())
}

/// The policy's keys (`config show --json`, `policy_json`) as a table:
/// each key with its value in force, marked when the store sets it.
pub fn policy_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|k| {
            vec![
                s(&k["key"]),
                number_or_none(&k["value"]),
                if k["set"].as_bool() == Some(true) { "set" } else { "default" }.to_string(),
                number_or_none(&k["default"]),
                format!("{}..={} {}", s(&k["min"]), s(&k["max"]), s(&k["unit"])),
            ]
        })
        .collect();
    table(&["Key", "In force", "From", "Default", "Range"], &rows)
}

/// `config show [--until T]`: `until` as the command was given it.
pub fn config(v: &Value, until: Option<&str>) -> String {
    let header = until.map(|t| format!("as of {t} (replayed from the log):\n")).unwrap_or_default();
    header + &policy_table(v)
}

/// `config set` and `config unset`.
pub fn config_set(v: &Value) -> String {
    let key = s(&v["key"]);
    let shown = number_or_none(&v["value"]);
    match (v["changed"].as_bool() == Some(true), v["set"].as_bool() == Some(true)) {
        (false, _) => format!("{key} is already {shown}: nothing changed"),
        (true, true) => {
            // The key's unit and default: the fixed table of keys.
            let (unit, default) = joblog::domain::policy_key(&key)
                .map(|k| (k.unit, k.default.map_or("none".into(), |d| d.to_string())))
                .unwrap_or(("", "none".into()));
            format!("{key} set to {shown} {unit} (default {default})")
        }
        (true, false) => format!("{key} back to its default: {shown}"),
    }
}
