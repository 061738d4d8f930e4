//! Historical jobs brought in (`joblog import FILE`, `POST
//! /api/v1/jobs/import`): JSON lines (the Job JSON of docs/cli.md) or a
//! CSV export with the platform's column headers. Every line is checked
//! first; one bad line and nothing is written, each bad line reported with
//! its number. A file is written as one atomic batch when it fits in one
//! (up to `CHUNK` jobs); a larger file is written in batches after the
//! whole of it passed the checks, so only an I/O failure could stop it part
//! way, and the error then says how many were written. When every row
//! names its id, such an import is finished by running it again: a job of
//! the file already in the store exactly as the file has it (an earlier
//! run of the same import) is counted as already there, not refused; one
//! that exists with other values is a bad line. (A row without an id gets
//! a new one each run; a row of an open job may have been run by the
//! service since, and then differs.)
//!
//! One implementation for the command line on its own and for the service
//! (the file streamed to it by the client, `native::import_route`).

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::HashSet;
use std::path::Path;

use joblog::domain::limits::MAX_IMPORT_JOBS;
use joblog::domain::{Directory, Job, OperationType, Regarding, State, Status, StatusReason, Timestamp};
use joblog::engine::{Engine, Session};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Jobs per atomic batch (well inside a 64 MiB segment).
const CHUNK: usize = 50_000;
/// The longest line of an imported file: a job's JSON with a
/// 100,000-character message, escaped, fits many times over.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// The largest file one import takes.
pub const MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// Why an import wrote nothing (or, for [`ImportError::Write`], stopped).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {file}: {reason}")]
    Unreadable {
        /// The file as the caller named it.
        file: String,
        /// Why.
        reason: String,
    },
    /// A line over [`MAX_LINE_BYTES`].
    #[error("{file}: line {line} is longer than {MAX_LINE_BYTES} bytes; nothing was imported")]
    LineTooLong {
        /// The file as the caller named it.
        file: String,
        /// Its number, from 1.
        line: usize,
    },
    /// More jobs than one import takes.
    #[error(
        "{file} has {count} jobs; one import takes at most {MAX_IMPORT_JOBS} (split the file); nothing was imported"
    )]
    TooMany {
        /// The file as the caller named it.
        file: String,
        /// How many it has.
        count: usize,
    },
    /// Lines that are not jobs (each `line N: why`).
    #[error("{file} has {} bad lines; nothing was imported. {}", errors.len(), errors.first().map_or("", String::as_str))]
    BadLines {
        /// The file as the caller named it.
        file: String,
        /// Every bad line, `line N: why`.
        errors: Vec<String>,
    },
    /// Writing failed (the engine's error); `written` jobs of `total` were
    /// written before it (batches of a file over one batch).
    #[error("{source}{}", if *written > 0 { format!(" (the first {written} of the {total} jobs to write were written, in the file's order: running the same import again writes the rest when every row names its asyncoperationid; a row without one would be imported again)") } else { String::new() })]
    Write {
        /// The engine's error.
        source: joblog::Error,
        /// Jobs written before it.
        written: usize,
        /// Jobs in the file.
        total: usize,
    },
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Jobs written.
    pub imported: usize,
    /// Jobs of the file already in the store exactly as the file has them
    /// (an earlier run of the same import), not written again.
    pub already_there: usize,
}

/// Imports the jobs of `file` (shown as `shown` in messages) as `user`
/// (the owner of rows that name none); `progress(written, total)` as it
/// goes.
pub fn import_file(
    engine: &Engine,
    s: &Session,
    file: &Path,
    shown: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Imported, ImportError> {
    check_line_lengths(file, shown)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| ImportError::Unreadable { file: shown.to_string(), reason: e.to_string() })?;
    let csv = Path::new(shown).extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || text.lines().next().is_some_and(|l| l.trim_start_matches('\u{feff}').starts_with("System Job Name"));
    let state = engine.state();
    let dir = state.directory().clone();
    drop(state);
    let parsed = if csv { parse_csv(&text, &dir, s.user()) } else { parse_json_lines(&text, &dir, s.user()) };
    if parsed.len() > MAX_IMPORT_JOBS {
        return Err(ImportError::TooMany { file: shown.to_string(), count: parsed.len() });
    }
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    // Jobs of the file already in the store: compared below, each under a
    // read lock of its own (a comparison reads the job from the log).
    let mut there = Vec::new();
    let state = engine.state();
    for (line, r) in parsed {
        match r.and_then(|j| if seen.insert(j.id) { Ok(j) } else { Err(format!("job {} is in the file twice", j.id)) })
        {
            Ok(j)
                if state
                    .status_of(j.id)
                    .map_err(|source| ImportError::Write { source, written: 0, total: 0 })?
                    .is_some() =>
            {
                there.push((line, j))
            }
            Ok(j) => jobs.push(j),
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    drop(state);
    let already_there = there.len();
    for (line, j) in there {
        // As the file has it (an interrupted import run again), or another
        // job with this id (or one the service has run since).
        let existing =
            engine.state().job(j.id).map_err(|source| ImportError::Write { source, written: 0, total: 0 })?;
        if existing != j {
            errors.push(format!("line {line}: job {} already exists, with other values", j.id));
        }
    }
    if !errors.is_empty() {
        return Err(ImportError::BadLines { file: shown.to_string(), errors });
    }
    let total = jobs.len();
    let mut written = 0;
    for chunk in jobs.chunks(CHUNK) {
        s.import(chunk.to_vec()).map_err(|source| ImportError::Write { source, written, total })?;
        written += chunk.len();
        progress(written as u64, total as u64);
    }
    Ok(Imported { imported: total, already_there })
}

/// The answer of an import: `{"imported": N}`, with `"already_there": K`
/// when K of the file's jobs were in the store already.
pub fn imported_json(n: Imported) -> Value {
    let mut v = json!({"imported": n.imported});
    if n.already_there > 0 {
        v["already_there"] = json!(n.already_there);
    }
    v
}

/// A bad-lines refusal's report, as the command line prints it on stdout.
pub fn bad_lines_json(errors: &[String]) -> Value {
    json!({"imported": 0, "errors": errors})
}

/// Each line's number (from 1) with its job, or why the line is refused.
pub type Parsed = Vec<(usize, Result<Job, String>)>;

/// Parses JSON lines (the Job JSON of `docs/cli.md`, one object a line; blank
/// lines skipped) into jobs for `user` to import against `dir`. Every job
/// returned passed [`Job::validate`] (the limits of `docs/limits.md`), has
/// an owner and business unit that `dir` knows, and numbers that fit their
/// columns; every refusal names its line. Never panics (fuzzed:
/// `fuzz/fuzz_targets/import_json.rs`).
pub fn parse_json_lines(text: &str, dir: &Directory, user: &str) -> Parsed {
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

/// A whole number that must fit `T` (u32 or i32 columns): never cut or
/// wrapped, refused with its range instead.
fn number<T>(o: &Map<String, Value>, k: &str) -> Result<Option<T>, String>
where
    T: TryFrom<i64> + std::fmt::Display + num_bounds::Bounded,
{
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let range = || format!("{k}: {n} is out of range ({}..={})", T::MIN_V, T::MAX_V);
            match n.as_i64() {
                Some(i) => T::try_from(i).map(Some).map_err(|_| range()),
                None if n.as_u64().is_some() => Err(range()),
                None => Err(format!("{k}: {n} is not a whole number")),
            }
        }
        Some(v) => Err(format!("{k}: {v} is not a number")),
    }
}

mod num_bounds {
    /// The range a column's number must fit, for messages.
    pub trait Bounded {
        const MIN_V: i64;
        const MAX_V: i64;
    }
    impl Bounded for u32 {
        const MIN_V: i64 = 0;
        const MAX_V: i64 = u32::MAX as i64;
    }
    impl Bounded for i32 {
        const MIN_V: i64 = i32::MIN as i64;
        const MAX_V: i64 = i32::MAX as i64;
    }
}

/// A job from the Job JSON of `docs/cli.md`.
fn job_from_json(o: &Map<String, Value>, dir: &Directory, user: &str) -> Result<Job, String> {
    let name = string(o, "name")?.ok_or("name is missing")?;
    let operationtype = match (number::<u32>(o, "operationtype")?, string(o, "operationtype_name")?) {
        (Some(code), _) => OperationType(code),
        (None, Some(n)) => OperationType::parse(&n).map_err(|e| e.to_string())?,
        (None, None) => OperationType::WORKFLOW,
    };
    let status = match (number::<u32>(o, "statecode")?, number::<u32>(o, "statuscode")?) {
        (Some(s), Some(r)) => {
            let status = Status::from_codes(s, r).map_err(|e| e.to_string())?;
            // Names given as well must say the same.
            if let Some(name) = string(o, "state")? {
                let state = State::parse(&name).map_err(|e| e.to_string())?;
                if state != status.state() {
                    return Err(format!("state {name:?} disagrees with statecode {s}"));
                }
            }
            if let Some(name) = string(o, "status")? {
                let reason = StatusReason::parse(&name).map_err(|e| e.to_string())?;
                if reason != status.reason() {
                    return Err(format!("status {name:?} disagrees with statuscode {r}"));
                }
            }
            status
        }
        (Some(_), None) => return Err("statecode without statuscode".into()),
        (None, Some(_)) => return Err("statuscode without statecode".into()),
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
    let owner_unit = dir.user(&owner).map_err(|e| format!("ownerid: {e}"))?.business_unit.clone();
    let unit = match string(o, "owningbusinessunit")? {
        Some(u) if !dir.has_business_unit(&u) => {
            return Err(format!("owningbusinessunit: no business unit named {u:?}"));
        }
        Some(u) => u,
        None => owner_unit,
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
    j.retrycount = number::<u32>(o, "retrycount")?.unwrap_or(0);
    j.errorcode = number::<i32>(o, "errorcode")?;
    j.message = string(o, "message")?;
    j.dependencytoken = string(o, "dependencytoken")?;
    j.depth = number::<u32>(o, "depth")?.unwrap_or(1);
    j.correlationid = string(o, "correlationid")?
        .map(|c| c.parse::<Uuid>().map_err(|_| format!("correlationid {c:?} is not a UUID")))
        .transpose()?;
    if let Some(c) = string(o, "command")? {
        j.data = joblog::service::command_data(&c);
    }
    j.validate().map_err(|e| e.to_string())?;
    Ok(j)
}

/// The platform's CSV export: System Job Name, System Job Type, Status,
/// Status Reason, Owner, Regarding, Created On, Started On, Completed On,
/// Message (any order; more columns are ignored). Times in RFC 3339 or
/// `YYYY-MM-DD HH:MM[:SS]` (UTC). Checked as [`parse_json_lines`] checks;
/// line numbers count the header as line 1. Never panics (fuzzed:
/// `fuzz/fuzz_targets/import_csv.rs`).
pub fn parse_csv(text: &str, dir: &Directory, user: &str) -> Parsed {
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
            // The line the record starts on (a quoted field may hold line
            // breaks); the record's index after the header if unknown.
            let line = match &rec {
                Ok(r) => r.position().map_or(i + 2, |p| usize::try_from(p.line()).unwrap_or(usize::MAX)),
                Err(e) => e.position().map_or(i + 2, |p| usize::try_from(p.line()).unwrap_or(usize::MAX)),
            };
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

/// Refuses a file with a line longer than the limit, reading it a chunk
/// at a time (before anything holds the whole of it).
fn check_line_lengths(file: &Path, shown: &str) -> Result<(), ImportError> {
    let err = |e: std::io::Error| ImportError::Unreadable { file: shown.to_string(), reason: e.to_string() };
    let mut f = std::fs::File::open(file).map_err(err)?;
    let mut limit = LineLimit::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(err)?;
        if n == 0 {
            return Ok(());
        }
        limit.feed(&buf[..n]).map_err(|line| ImportError::LineTooLong { file: shown.to_string(), line })?;
    }
}

/// Follows the lines of a file read in chunks and refuses one longer than
/// its maximum ([`MAX_LINE_BYTES`] by default), without holding more than
/// the chunk in hand.
#[derive(Debug, Clone)]
pub struct LineLimit {
    max: usize,
    line: usize,
    current: usize,
}

impl Default for LineLimit {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineLimit {
    /// Lines of at most `max` bytes (newline not counted).
    pub fn new(max: usize) -> Self {
        Self { max, line: 0, current: 0 }
    }

    /// Takes the next chunk; on a line too long, its number (from 1).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), usize> {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.current + i > self.max {
                return Err(self.line + 1);
            }
            self.line += 1;
            self.current = 0;
            rest = &rest[i + 1..];
        }
        self.current += rest.len();
        if self.current > self.max {
            return Err(self.line + 1);
        }
        Ok(())
    }
}
