//! `joblog import FILE`: historical jobs as JSON lines (the Job JSON of the
//! contract) or as a CSV export with the platform's column headers. Every
//! line is checked first; one bad line and nothing is written, each bad
//! line reported with its number. A file is written as one atomic batch
//! when it fits in one (up to `CHUNK` jobs); a larger file is written in
//! batches after the whole of it passed the checks, so only an I/O failure
//! could stop it part way, and the error then says how many were written.

use std::collections::HashSet;
use std::path::Path;

use joblog::domain::{Directory, Job, OperationType, Regarding, State, Status, StatusReason, Timestamp};
use joblog::engine::Session;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::output::pretty;
use super::{Ctx, Failure, Output};

/// Jobs per atomic batch (well inside a 64 MiB segment).
const CHUNK: usize = 50_000;

pub fn import(ctx: &Ctx<'_>, s: &Session<'_>, file: &Path) -> Output {
    super::server::check_line_lengths(file)?;
    let text = std::fs::read_to_string(file).map_err(|e| Failure {
        code: 1,
        message: format!("cannot read {}: {e}", file.display()),
        stdout: String::new(),
    })?;
    let csv = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || text.lines().next().is_some_and(|l| l.trim_start_matches('\u{feff}').starts_with("System Job Name"));
    let state = ctx.engine.state();
    let dir = state.directory().clone();
    drop(state);
    let parsed = if csv { from_csv(&text, &dir, &ctx.user) } else { from_json_lines(&text, &dir, &ctx.user) };
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let state = ctx.engine.state();
    for (line, r) in parsed {
        match r.and_then(|j| {
            j.validate().map_err(|e| e.to_string())?;
            if !seen.insert(j.id) || state.status_of(j.id).is_some() {
                return Err(format!("job {} already exists", j.id));
            }
            Ok(j)
        }) {
            Ok(j) => jobs.push(j),
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    drop(state);
    if !errors.is_empty() {
        let n = errors.len();
        let first = errors[0].clone();
        return Err(Failure {
            code: 2,
            message: format!("{} has {n} bad lines; nothing was imported. {first}", file.display()),
            stdout: if ctx.json { pretty(&json!({"imported": 0, "errors": errors})) } else { errors.join("\n") + "\n" },
        });
    }
    let total = jobs.len();
    let bar = super::progress(ctx.interactive, total as u64, "importing");
    let mut written = 0;
    for chunk in jobs.chunks(CHUNK) {
        if let Err(e) = s.import(chunk.to_vec()) {
            let mut f = Failure::from(e);
            if written > 0 {
                f.message = format!("{} (the first {written} of {total} jobs were written)", f.message);
            }
            return Err(f);
        }
        written += chunk.len();
        bar.set_position(written as u64);
    }
    bar.finish_and_clear();
    Ok(if ctx.json {
        pretty(&json!({"imported": total}))
    } else {
        format!("imported {total} jobs from {}", file.display())
    })
}

type Parsed = Vec<(usize, Result<Job, String>)>;

fn from_json_lines(text: &str, dir: &Directory, user: &str) -> Parsed {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let job = serde_json::from_str::<Value>(l)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| v.as_object().cloned().ok_or_else(|| "not a JSON object".to_string()))
                .and_then(|o| job_from_json(&o, dir, user));
            (i + 1, job)
        })
        .collect()
}

fn time(o: &Map<String, Value>, k: &str) -> Result<Option<Timestamp>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Timestamp::parse(s).map(Some).map_err(|e| format!("{k}: {e}")),
        Some(v) => Err(format!("{k}: {v} is not a time")),
    }
}

fn string(o: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{k}: {v} is not a string")),
    }
}

fn number(o: &Map<String, Value>, k: &str) -> Result<Option<i64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| format!("{k}: {v} is not a whole number")),
    }
}

/// A job from the contract's Job JSON.
fn job_from_json(o: &Map<String, Value>, dir: &Directory, user: &str) -> Result<Job, String> {
    let name = string(o, "name")?.ok_or("name is missing")?;
    let operationtype = match (number(o, "operationtype")?, string(o, "operationtype_name")?) {
        (Some(code), _) => OperationType(u32::try_from(code).map_err(|_| format!("operationtype {code} is negative"))?),
        (None, Some(n)) => OperationType::parse(&n).map_err(|e| e.to_string())?,
        (None, None) => OperationType::WORKFLOW,
    };
    let status = match (number(o, "statecode")?, number(o, "statuscode")?) {
        (Some(s), Some(r)) => Status::from_codes(s as u32, r as u32).map_err(|e| e.to_string())?,
        _ => {
            let state = string(o, "state")?.ok_or("statecode and statuscode (or state and status) are missing")?;
            let reason = string(o, "status")?.ok_or("statuscode (or status) is missing")?;
            let (state, reason) = (
                State::parse(&state).map_err(|e| e.to_string())?,
                StatusReason::parse(&reason).map_err(|e| e.to_string())?,
            );
            let s = Status::of_reason(reason);
            if s.state() != state {
                return Err(format!("{} is not a Status Reason of {}", reason.name(), state.name()));
            }
            s
        }
    };
    let createdon = time(o, "createdon")?.ok_or("createdon is missing")?;
    let owner = string(o, "ownerid")?.unwrap_or_else(|| user.to_string());
    let unit = match string(o, "owningbusinessunit")? {
        Some(u) => u,
        None => dir.user(&owner).map_err(|e| e.to_string())?.business_unit.clone(),
    };
    let mut j = Job::new(&name, operationtype, &owner, &unit, createdon);
    if let Some(id) = string(o, "asyncoperationid")? {
        j.id = id.parse::<Uuid>().map_err(|_| format!("asyncoperationid {id:?} is not a UUID"))?;
    }
    j.status = status;
    j.regarding =
        string(o, "regardingobjectid")?.map(|r| Regarding::parse(&r)).transpose().map_err(|e| e.to_string())?;
    j.workflow = string(o, "workflowactivationid")?;
    j.startedon = time(o, "startedon")?;
    j.completedon = time(o, "completedon")?;
    j.postponeuntil = time(o, "postponeuntil")?;
    j.modifiedon = time(o, "modifiedon")?.or(j.completedon).or(j.startedon).unwrap_or(createdon);
    j.retrycount =
        number(o, "retrycount")?.map_or(Ok(0), |n| u32::try_from(n).map_err(|_| "retrycount is negative"))?;
    j.errorcode = number(o, "errorcode")?.map(|c| c as i32);
    j.message = string(o, "message")?;
    j.dependencytoken = string(o, "dependencytoken")?;
    j.depth = number(o, "depth")?.map_or(Ok(1), |n| u32::try_from(n).map_err(|_| "depth is negative"))?;
    j.correlationid = string(o, "correlationid")?
        .map(|c| c.parse::<Uuid>().map_err(|_| format!("correlationid {c:?} is not a UUID")))
        .transpose()?;
    if let Some(c) = string(o, "command")? {
        j.data = joblog::service::command_data(&c);
    }
    Ok(j)
}

/// The platform's CSV export: System Job Name, System Job Type, Status,
/// Status Reason, Owner, Regarding, Created On, Started On, Completed On,
/// Message (any order; more columns are ignored). Times in RFC 3339 or
/// `YYYY-MM-DD HH:MM[:SS]` (UTC).
fn from_csv(text: &str, dir: &Directory, user: &str) -> Parsed {
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return vec![(1, Err(format!("cannot read the CSV header: {e}")))],
    };
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let required = ["System Job Name", "System Job Type", "Status", "Status Reason", "Created On"];
    if let Some(missing) = required.iter().find(|h| col(h).is_none()) {
        return vec![(1, Err(format!("the CSV has no {missing:?} column (it needs {})", required.join(", "))))];
    }
    reader
        .records()
        .enumerate()
        .map(|(i, rec)| {
            let line = i + 2;
            let job = rec.map_err(|e| format!("not CSV: {e}")).and_then(|r| {
                let get = |name: &str| col(name).and_then(|c| r.get(c)).map(str::trim).filter(|s| !s.is_empty());
                let t = |name: &str| get(name).map(csv_time).transpose().map_err(|e| format!("{name}: {e}"));
                let mut o = Map::new();
                o.insert("name".into(), json!(get("System Job Name")));
                o.insert("operationtype_name".into(), json!(get("System Job Type")));
                o.insert("state".into(), json!(get("Status")));
                o.insert("status".into(), json!(get("Status Reason")));
                o.insert("ownerid".into(), json!(get("Owner")));
                o.insert("regardingobjectid".into(), json!(get("Regarding")));
                o.insert("message".into(), json!(get("Message")));
                for (k, name) in
                    [("createdon", "Created On"), ("startedon", "Started On"), ("completedon", "Completed On")]
                {
                    o.insert(k.into(), json!(t(name)?.map(|t| t.to_rfc3339())));
                }
                job_from_json(&o, dir, user)
            });
            (line, job)
        })
        .collect()
}

fn csv_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse(s) {
        return Ok(t);
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(Timestamp::from_datetime(t.and_utc()));
        }
    }
    Err(format!("{s:?} is not a time (use RFC 3339 or YYYY-MM-DD HH:MM:SS, UTC)"))
}
