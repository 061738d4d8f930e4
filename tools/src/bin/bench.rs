//! joblog-bench: joblog and SQLite side by side on one workload
//! (`joblog_tools::workload`), in one run. See `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p joblog-tools --bin joblog-bench -- [--jobs N | --quick] [--json]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use joblog::domain::{
    Clock, DeletionCriteria, Event, ManualClock, OperationType, Regarding, StatusReason, Timestamp, WorkflowDefinition,
    MAX_IMMEDIATE_DELETE,
};
use joblog::engine::{Config, Engine};
use joblog::projection::query::Filter;
use joblog_tools::workload::{self, Rng, Workload};
use rusqlite::{params, Connection};
use serde::Serialize;

#[derive(Parser, Debug)]
#[command(version, about = "joblog next to SQLite on the system-jobs workload")]
struct Args {
    /// Jobs in the workload.
    #[arg(long, default_value_t = 10_000_000)]
    jobs: u64,
    /// 100,000 jobs: a smoke run.
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Directory to work in (a temporary directory is made inside it).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Samples per latency scenario.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    #[arg(long)]
    json: bool,
    /// Full replays to time (the best is reported; more for profiling).
    #[arg(long, default_value_t = 1)]
    replays: usize,
    /// Skip the SQLite side (profiling joblog alone).
    #[arg(long)]
    no_sqlite: bool,
    /// Seconds each transition scenario runs.
    #[arg(long, default_value_t = 3.0)]
    tx_secs: f64,
    /// Also write the speed-ups as an SVG chart here.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
    /// Draw the chart (--svg) from a report saved with --json, and exit.
    #[arg(long, requires = "svg")]
    chart_from: Option<std::path::PathBuf>,
}

#[derive(Serialize, serde::Deserialize, Default)]
struct Report {
    jobs: u64,
    events: u64,
    rows: Vec<Row>,
}

#[derive(Serialize, serde::Deserialize)]
struct Row {
    scenario: String,
    joblog: f64,
    sqlite: Option<f64>,
    unit: String,
    /// joblog / SQLite for times (lower is better for joblog).
    ratio: Option<f64>,
}

const CHUNK_EVENTS: usize = 20_000;

fn main() {
    let mut args = Args::parse();
    if let (Some(from), Some(svg)) = (&args.chart_from, &args.svg) {
        let report: Report = serde_json::from_slice(&std::fs::read(from).expect("read the report")).expect("a report");
        write_chart(&report, svg);
        return;
    }
    if args.quick {
        args.jobs = 100_000;
        args.samples = args.samples.min(500);
    }
    let end = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
    let started_at = Instant::now();
    let work = tempfile::tempdir_in(&args.dir).expect("work directory");
    // Definitions are made before the workload's first event; the load
    // itself happens "now", a day after its last.
    let clock = Arc::new(ManualClock::new(end.days_before(workload::DAYS as u32 + 1)));
    let mut report = Report { jobs: args.jobs, ..Report::default() };
    // A spinner naming the current step on a terminal; plain lines on
    // stderr otherwise (CI logs); nothing with --json.
    let spinner = (!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let say = |s: &str| match &spinner {
        Some(bar) => bar.set_message(format!("{s} ({:.0} s)", started_at.elapsed().as_secs_f64())),
        None if !args.json => eprintln!("… {s}"),
        None => {}
    };

    // ---- joblog: load
    say(&format!("joblog: loading {} jobs", args.jobs));
    let jdir = work.path().join("joblog");
    let config = Config { checkpoint_every_events: 0, ..Config::default() };
    let engine = Engine::open(&jdir, config.clone(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    for w in 0..workload::WORKFLOWS {
        let wf = WorkflowDefinition {
            id: workload::workflow(w),
            name: format!("Workflow {w}"),
            owner: "admin".into(),
            active: true,
        };
        admin.save_workflow(wf).unwrap();
    }
    clock.set(end.plus_micros(86_400_000_000));
    let rss_before = joblog_tools::probe::rss_anon_bytes();
    let mut sample_ids = Vec::new();
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
    let mut events = 0u64;
    let mut rng = Rng(args.seed ^ 0xabc);
    for env in Workload::new(args.jobs, args.seed, end) {
        if let Event::JobCreated(j) = &env.event {
            if rng.below(args.jobs.max(1)) < args.samples as u64 {
                sample_ids.push(j.id);
            }
        }
        chunk.push(env);
        if chunk.len() == CHUNK_EVENTS {
            events += admin.load(std::mem::take(&mut chunk)).unwrap() as u64;
        }
    }
    events += admin.load(chunk).unwrap() as u64;
    let joblog_load = start.elapsed().as_secs_f64();
    report.events = events;
    let heap = engine.state().heap_bytes() as f64;
    let rss = joblog_tools::probe::rss_anon_bytes().saturating_sub(rss_before) as f64;
    say(&format!("joblog: loaded {events} events in {joblog_load:.1}s"));

    // ---- joblog: views and history
    let views = view_samples(&args, end);
    let joblog_views: Vec<(String, Vec<Duration>)> = views
        .iter()
        .map(|(name, samples)| {
            let times = samples
                .iter()
                .map(|(filter, _)| {
                    let t = Instant::now();
                    let (jobs, _) = admin.list(filter, None, 50).unwrap();
                    std::hint::black_box(jobs);
                    t.elapsed()
                })
                .collect();
            (name.clone(), times)
        })
        .collect();
    let joblog_history: Vec<Duration> = sample_ids
        .iter()
        .map(|&id| {
            let t = Instant::now();
            std::hint::black_box(admin.history(id).unwrap());
            t.elapsed()
        })
        .collect();

    // ---- joblog: durable single-job transitions from 1 and 16 threads
    say("joblog: single-job transitions");
    let joblog_tx: Vec<(usize, f64)> =
        [1, 16].iter().map(|&t| (t, joblog_transitions(&engine, &admin, t, args.tx_secs, clock.now()))).collect();
    let (fsync_p50, _) = joblog_tools::probe::fsync_latency(work.path(), 200).unwrap();
    let fsync_limit = 1.0 / fsync_p50.as_secs_f64();

    // ---- joblog: open from a checkpoint, and by full replay
    say("joblog: reopening");
    drop(admin);
    engine.close().unwrap();
    let t = Instant::now();
    let engine = Engine::open(&jdir, config.clone(), clock.clone()).unwrap();
    let open_snapshot = t.elapsed().as_secs_f64();
    assert!(engine.open_report().checkpoint_seq.is_some());
    drop(engine);
    std::fs::remove_dir_all(jdir.join("snapshots")).unwrap();
    let mut open_replay = f64::MAX;
    let mut replayed = 0;
    let mut engine = None;
    for _ in 0..args.replays.max(1) {
        drop(engine.take());
        let t = Instant::now();
        let e = Engine::open(&jdir, config.clone(), clock.clone()).unwrap();
        open_replay = open_replay.min(t.elapsed().as_secs_f64());
        replayed = e.open_report().events_replayed;
        engine = Some(e);
    }
    let engine = engine.expect("opened at least once");
    let joblog_disk = joblog_tools::probe::dir_bytes(&jdir);
    let joblog_data = engine.log().data_bytes();

    // ---- joblog: bulk deletion (Immediately): the first million, then the rest
    say("joblog: deleting completed Workflow jobs older than 30 days");
    let write_bw = joblog_tools::probe::write_bandwidth(work.path(), 1 << 30).unwrap();
    let admin = engine.session("admin").unwrap();
    let first = admin.delete_now(&deletion_criteria(), MAX_IMMEDIATE_DELETE).unwrap();
    let mut rest = Deletions::default();
    while rest.runs == 0 || rest.last_remaining > 0 {
        let r = admin.delete_now(&deletion_criteria(), MAX_IMMEDIATE_DELETE).unwrap();
        rest.add(&r);
        if r.deleted == 0 {
            break;
        }
    }
    let joblog_disk_after = joblog_tools::probe::dir_bytes(&jdir);
    let joblog_data_after = engine.log().data_bytes();
    drop(admin);
    drop(engine);

    if args.no_sqlite {
        if let Some(bar) = &spinner {
            bar.finish_and_clear();
        }
        println!("joblog: load {joblog_load:.2}s, open from checkpoint {open_snapshot:.2}s, full replay {open_replay:.2}s ({replayed} events)");
        println!(
            "joblog: delete first {}: {:.3}s logical, {:.3}s with compaction ({} bytes rewritten), checkpoint {:.3}s",
            first.deleted,
            first.seconds_logical,
            first.seconds,
            first.compaction.bytes_written,
            first.seconds_checkpoint
        );
        return;
    }

    // ---- SQLite
    say("SQLite: loading the same workload");
    let sdir = work.path().join("sqlite");
    std::fs::create_dir_all(&sdir).unwrap();
    let mut db = Connection::open(sdir.join("jobs.db")).unwrap();
    let start = Instant::now();
    sqlite_load(&mut db, &args, end);
    let sqlite_load_s = start.elapsed().as_secs_f64();
    say(&format!("SQLite: loaded in {sqlite_load_s:.1}s"));
    let sqlite_views: Vec<Vec<Duration>> =
        views.iter().map(|(_, samples)| samples.iter().map(|(_, q)| sqlite_page(&db, q)).collect()).collect();
    let sqlite_history: Vec<Duration> = sample_ids.iter().map(|id| sqlite_history(&db, id)).collect();
    say("SQLite: single-job transitions");
    let sqlite_tx: Vec<f64> =
        [1, 16].iter().map(|&t| sqlite_transitions(&sdir.join("jobs.db"), &sample_ids, t, args.tx_secs)).collect();
    let sqlite_disk = joblog_tools::probe::dir_bytes(&sdir);
    say("SQLite: deleting the same jobs");
    let cutoff = deletion_criteria().cutoff(clock.now()).micros();
    let (s_first_logical, s_first_vacuum) = sqlite_delete(&db, cutoff, Some(MAX_IMMEDIATE_DELETE));
    let (s_rest_logical, s_rest_vacuum) = sqlite_delete(&db, cutoff, None);
    let sqlite_disk_after = joblog_tools::probe::dir_bytes(&sdir);

    // ---- report
    let mut push = |scenario: String, j: f64, s: Option<f64>, unit: &'static str| {
        report.rows.push(Row { scenario, joblog: j, sqlite: s, unit: unit.to_string(), ratio: s.map(|s| j / s) });
    };
    push("load (seconds)".into(), joblog_load, Some(sqlite_load_s), "s");
    push(
        "load (events per second)".into(),
        events as f64 / joblog_load,
        Some(events as f64 / sqlite_load_s),
        "events/s",
    );
    push("bytes on disk".into(), joblog_disk as f64, Some(sqlite_disk as f64), "bytes");
    push("  of which log data (no preallocation, no checkpoints)".into(), joblog_data as f64, None, "bytes");
    push("projection heap per job".into(), heap / args.jobs as f64, None, "bytes");
    push("resident (anonymous) memory per job".into(), rss / args.jobs as f64, None, "bytes");
    push("open from checkpoint".into(), open_snapshot, None, "s");
    push(format!("open by full replay ({replayed} events)"), open_replay, None, "s");
    push("full replay rate".into(), replayed as f64 / open_replay, None, "events/s");
    for ((name, j), s) in joblog_views.iter().zip(&sqlite_views) {
        push(format!("{name}: 50-row page p50"), pct(j, 50), Some(pct(s, 50)), "µs");
        push(format!("{name}: 50-row page p99"), pct(j, 99), Some(pct(s, 99)), "µs");
    }
    push("a job's history p50".into(), pct(&joblog_history, 50), Some(pct(&sqlite_history, 50)), "µs");
    push("a job's history p99".into(), pct(&joblog_history, 99), Some(pct(&sqlite_history, 99)), "µs");
    for ((threads, j), s) in joblog_tx.iter().zip(&sqlite_tx) {
        push(format!("durable single-job transitions, {threads} threads"), *j, Some(*s), "ops/s");
        push(format!("  {threads} threads as a fraction of 1/fsync"), j / fsync_limit, None, "×");
    }
    push("fsync limit (1 / fsync p50, probe)".into(), fsync_limit, None, "ops/s");
    push(
        format!("delete first {}: until gone from views", first.deleted),
        first.seconds_logical,
        Some(s_first_logical),
        "s",
    );
    push(
        format!("delete first {}: until the space is back", first.deleted),
        first.seconds,
        Some(s_first_logical + s_first_vacuum),
        "s",
    );
    push("  bytes rewritten by compaction".into(), first.compaction.bytes_written as f64, None, "bytes");
    push(
        "  rewrite time / sequential-write bound".into(),
        (first.seconds - first.seconds_logical) / (first.compaction.bytes_written as f64 / write_bw),
        None,
        "×",
    );
    push("  checkpoint afterwards (not included above)".into(), first.seconds_checkpoint, None, "s");
    push(
        format!("delete the rest ({} jobs, {} runs): until gone", rest.deleted, rest.runs),
        rest.logical,
        Some(s_rest_logical),
        "s",
    );
    push("delete the rest: until the space is back".into(), rest.seconds, Some(s_rest_logical + s_rest_vacuum), "s");
    push("  bytes rewritten by compaction".into(), rest.bytes_written as f64, None, "bytes");
    push("bytes on disk after deleting".into(), joblog_disk_after as f64, Some(sqlite_disk_after as f64), "bytes");
    push("  of which log data".into(), joblog_data_after as f64, None, "bytes");
    push("sequential write bandwidth (probe)".into(), write_bw, None, "bytes/s");

    if let Some(bar) = &spinner {
        bar.finish_and_clear();
    }
    if let Some(path) = &args.svg {
        write_chart(&report, path);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        println!("{} jobs, {} events (seed {})", report.jobs, report.events, args.seed);
        println!("{:<52} {:>14} {:>14} {:>8}", "scenario", "joblog", "SQLite", "ratio");
        for r in &report.rows {
            let s = r.sqlite.map_or("—".into(), |v| fmt(v, &r.unit));
            let ratio = r.ratio.map_or("—".into(), |v| format!("{v:.2}"));
            println!("{:<52} {:>14} {:>14} {:>8}", r.scenario, fmt(r.joblog, &r.unit), s, ratio);
        }
    }
}

/// The speed-ups of every timed scenario, as an SVG chart.
fn write_chart(report: &Report, path: &std::path::Path) {
    let bars: Vec<(String, f64)> = report
        .rows
        .iter()
        .filter(|r| r.unit == "s" || r.unit == "µs")
        .filter_map(|r| r.ratio.map(|ratio| (r.scenario.clone(), 1.0 / ratio)))
        .collect();
    let title = format!("joblog vs SQLite, {} jobs ({} events), this machine", report.jobs, report.events);
    std::fs::write(path, joblog_tools::chart::speedup_svg(&title, &bars)).expect("write the chart");
}

/// Durable transitions per second from `threads` threads, each postponing
/// and resuming its own job, one transition per commit.
fn joblog_transitions(
    engine: &Engine,
    admin: &joblog::engine::Session<'_>,
    threads: usize,
    secs: f64,
    now: Timestamp,
) -> f64 {
    use joblog::engine::{NewJob, UserAction};
    let jobs: Vec<uuid::Uuid> = (0..threads)
        .map(|i| admin.create(NewJob::new(&format!("transitions {i}"), OperationType::BULK_EMAIL)).unwrap().id)
        .collect();
    let later = now.plus_micros(3_600_000_000);
    let ops = std::sync::atomic::AtomicU64::new(0);
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for &id in &jobs {
            let (ops, session) = (&ops, engine.session("admin").unwrap());
            s.spawn(move || {
                while Instant::now() < stop {
                    session.act(id, UserAction::Postpone(later)).unwrap();
                    session.act(id, UserAction::Resume).unwrap();
                    ops.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    ops.into_inner() as f64 / secs
}

/// The same in SQLite: each transition one transaction (UPDATE the job,
/// INSERT its history row), from `threads` connections.
fn sqlite_transitions(path: &std::path::Path, ids: &[uuid::Uuid], threads: usize, secs: f64) -> f64 {
    let ops = std::sync::atomic::AtomicU64::new(0);
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ops, id) = (&ops, ids[t % ids.len().max(1)]);
            s.spawn(move || {
                let db = Connection::open(path).unwrap();
                db.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
                )
                .unwrap();
                let mut seq = 0i64;
                while Instant::now() < stop {
                    for (state, status) in [(1, 10), (0, 0)] {
                        seq += 1;
                        db.execute_batch("BEGIN IMMEDIATE").unwrap();
                        db.execute(
                            "UPDATE jobs SET statecode = ?2, statuscode = ?3, modifiedon = ?4 WHERE id = ?1",
                            params![id.as_bytes(), state, status, seq],
                        )
                        .unwrap();
                        db.execute(
                            "INSERT INTO transitions VALUES (?1, ?2, ?3, 'admin', ?4, ?5, NULL, NULL)",
                            params![id.as_bytes(), -seq, seq, state, status],
                        )
                        .unwrap();
                        db.execute_batch("COMMIT").unwrap();
                        ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    ops.into_inner() as f64 / secs
}

/// What bulk deletion takes in every scenario: Completed Workflow jobs
/// older than 30 days, any Completed reason.
fn deletion_criteria() -> DeletionCriteria {
    DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled],
        older_than_days: 30,
    }
}

/// Several Immediately runs added up.
#[derive(Default)]
struct Deletions {
    runs: u64,
    deleted: u64,
    logical: f64,
    seconds: f64,
    bytes_written: u64,
    last_remaining: u64,
}

impl Deletions {
    fn add(&mut self, r: &joblog::engine::DeletionReport) {
        self.runs += 1;
        self.deleted += r.deleted;
        self.logical += r.seconds_logical;
        self.seconds += r.seconds;
        self.bytes_written += r.compaction.bytes_written;
        self.last_remaining = r.remaining_matching;
    }
}

/// SQLite's bulk deletion: the same jobs (oldest `completedon` first, ties
/// by id, at most `limit`), their transitions then their rows in one
/// transaction, then VACUUM to give the space back. Returns (seconds to
/// delete, seconds to vacuum).
fn sqlite_delete(db: &Connection, cutoff: i64, limit: Option<u64>) -> (f64, f64) {
    let t = Instant::now();
    db.execute_batch("BEGIN").unwrap();
    db.execute(
        "CREATE TEMP TABLE doomed AS SELECT id FROM jobs WHERE operationtype = 10 AND statecode = 3 AND completedon < ?1 ORDER BY completedon, id LIMIT ?2",
        params![cutoff, limit.map_or(-1, |l| l as i64)],
    )
    .unwrap();
    db.execute_batch(
        "DELETE FROM transitions WHERE job IN (SELECT id FROM doomed);
         DELETE FROM jobs WHERE id IN (SELECT id FROM doomed);
         DROP TABLE doomed;
         COMMIT;",
    )
    .unwrap();
    let logical = t.elapsed().as_secs_f64();
    let t = Instant::now();
    db.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    (logical, t.elapsed().as_secs_f64())
}

/// One SQL query with its parameters, the same page as a joblog filter.
struct SqlPage {
    sql: &'static str,
    key: Option<String>,
    before: i64,
}

/// The views, each with `samples` random (filter, SQL) pairs: a random
/// value of the view's key, and a random point in time to page from.
fn view_samples(args: &Args, end: Timestamp) -> Vec<(String, Vec<(Filter, SqlPage)>)> {
    let mut rng = Rng(args.seed ^ 0x5eed);
    let span = workload::DAYS * 86_400_000_000;
    let before = move |rng: &mut Rng| end.micros() - (rng.below(span as u64) as i64);
    let mut make = |name: &str, f: &mut dyn FnMut(&mut Rng, i64) -> (Filter, SqlPage)| {
        let v = (0..args.samples).map(|_| {
            let b = before(&mut rng);
            f(&mut rng, b)
        });
        (name.to_string(), v.collect())
    };
    vec![
        make("System Jobs (all)", &mut |_, b| {
            let f = Filter { created_before: Some(Timestamp::from_micros(b)), ..Filter::default() };
            (f, SqlPage { sql: "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE createdon < ?2 ORDER BY createdon DESC LIMIT 50", key: None, before: b })
        }),
        make("System Jobs (Workflow, Failed)", &mut |_, b| {
            let f = Filter {
                operationtype: Some(OperationType::WORKFLOW),
                status: Some(StatusReason::Failed),
                created_before: Some(Timestamp::from_micros(b)),
                ..Filter::default()
            };
            (f, SqlPage { sql: "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE operationtype = 10 AND statecode = 3 AND statuscode = 31 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50", key: None, before: b })
        }),
        make("Process Session (one workflow)", &mut |rng, b| {
            let w = workload::workflow(rng.below(workload::WORKFLOWS));
            let f = Filter {
                workflow: Some(w.clone()),
                created_before: Some(Timestamp::from_micros(b)),
                ..Filter::default()
            };
            (f, SqlPage { sql: "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE workflow = ?1 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50", key: Some(w), before: b })
        }),
        make("Background Processes (one row)", &mut |rng, _| {
            let r = format!("contact:{}", rng.below(workload::REGARDING_ROWS));
            let f = Filter { regarding: Some(Regarding::parse(&r).unwrap()), ..Filter::default() };
            (f, SqlPage { sql: "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE regarding = ?1 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50", key: Some(r), before: i64::MAX })
        }),
    ]
}

fn sqlite_load(db: &mut Connection, args: &Args, end: Timestamp) {
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE jobs (id BLOB PRIMARY KEY, name TEXT, operationtype INTEGER, statecode INTEGER, statuscode INTEGER,
            owner TEXT, owningbusinessunit TEXT, regarding TEXT, workflow TEXT, createdon INTEGER, startedon INTEGER,
            completedon INTEGER, modifiedon INTEGER, postponeuntil INTEGER, retrycount INTEGER, errorcode INTEGER, message TEXT);
         CREATE INDEX jobs_type_status ON jobs (operationtype, statecode, statuscode, createdon);
         CREATE INDEX jobs_regarding ON jobs (regarding, createdon);
         CREATE INDEX jobs_workflow ON jobs (workflow, createdon);
         CREATE INDEX jobs_owner ON jobs (owner, createdon);
         CREATE INDEX jobs_completed ON jobs (completedon);
         CREATE INDEX jobs_created ON jobs (createdon);
         CREATE TABLE transitions (job BLOB, seq INTEGER, at INTEGER, actor TEXT, statecode INTEGER, statuscode INTEGER,
            postponeuntil INTEGER, message TEXT);
         CREATE INDEX transitions_job ON transitions (job, seq);",
    )
    .unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert_job = tx
            .prepare(
                "INSERT INTO jobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .unwrap();
        let mut update_job = tx
            .prepare("UPDATE jobs SET statecode = ?2, statuscode = ?3, postponeuntil = ?4, modifiedon = ?5, startedon = COALESCE(startedon, ?6), completedon = ?7, errorcode = COALESCE(?8, errorcode), message = COALESCE(?9, message) WHERE id = ?1")
            .unwrap();
        let mut insert_tr = tx.prepare("INSERT INTO transitions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").unwrap();
        for (seq, env) in Workload::new(args.jobs, args.seed, end).enumerate() {
            let at = env.at.micros();
            let actor = env.actor.to_string();
            let mut history = |job: uuid::Uuid,
                               to: joblog::domain::Status,
                               postpone: Option<i64>,
                               message: Option<String>| {
                let row =
                    params![job.as_bytes(), seq as i64, at, actor, to.statecode(), to.statuscode(), postpone, message];
                insert_tr.execute(row).unwrap();
            };
            match env.event {
                Event::JobCreated(j) => {
                    insert_job
                        .execute(params![
                            j.id.as_bytes(),
                            j.name,
                            j.operationtype.0,
                            j.status.statecode(),
                            j.status.statuscode(),
                            j.owner,
                            j.owningbusinessunit,
                            j.regarding.map(|r| r.to_string()),
                            j.workflow,
                            j.createdon.micros(),
                            j.startedon.map(Timestamp::micros),
                            j.completedon.map(Timestamp::micros),
                            j.modifiedon.micros(),
                            j.postponeuntil.map(Timestamp::micros),
                            j.retrycount,
                            j.errorcode,
                            j.message
                        ])
                        .unwrap();
                    history(j.id, j.status, None, None);
                }
                Event::Transition(t) => {
                    let started = (t.action == joblog::domain::Action::Lock).then_some(at);
                    let completed = t.to.is_completed().then_some(at);
                    let postpone = t.postponeuntil.map(Timestamp::micros);
                    update_job
                        .execute(params![
                            t.job.as_bytes(),
                            t.to.statecode(),
                            t.to.statuscode(),
                            postpone,
                            at,
                            started,
                            completed,
                            t.errorcode,
                            t.message
                        ])
                        .unwrap();
                    history(t.job, t.to, postpone, t.message);
                }
                _ => unreachable!("the workload has job events only"),
            }
        }
    }
    tx.commit().unwrap();
}

fn sqlite_page(db: &Connection, q: &SqlPage) -> Duration {
    let t = Instant::now();
    let mut stmt = db.prepare_cached(q.sql).unwrap();
    let rows: Vec<(Vec<u8>, String)> = stmt
        .query_map(params![q.key, q.before], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    std::hint::black_box(rows);
    t.elapsed()
}

fn sqlite_history(db: &Connection, id: &uuid::Uuid) -> Duration {
    let t = Instant::now();
    let mut stmt = db.prepare_cached("SELECT seq, at, actor, statecode, statuscode, postponeuntil, message FROM transitions WHERE job = ?1 ORDER BY seq").unwrap();
    let rows: Vec<(i64, i64, String)> = stmt
        .query_map(params![id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    std::hint::black_box(rows);
    t.elapsed()
}

fn pct(v: &[Duration], p: usize) -> f64 {
    let mut v: Vec<Duration> = v.to_vec();
    v.sort();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "bytes" if v > 1e9 => format!("{:.2} GB", v / 1e9),
        "bytes" if v > 1e6 => format!("{:.1} MB", v / 1e6),
        "bytes" => format!("{v:.0} B"),
        "events/s" => format!("{:.2} M/s", v / 1e6),
        "s" => format!("{v:.3} s"),
        "bytes/s" => format!("{:.2} GB/s", v / 1e9),
        "×" => format!("{v:.2}×"),
        "ops/s" => format!("{:.1} k/s", v / 1e3),
        "µs" => format!("{v:.1} µs"),
        _ => format!("{v:.2} {unit}"),
    }
}
