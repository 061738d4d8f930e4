//! `joblog demo`: a busy organisation on the manual clock, run by the real
//! service, then the views users open and the default bulk deletion.
//!
//! 300 users in 10 business units own 40 workflows; about `--jobs` jobs
//! arrive over `--days` simulated days. Outcomes follow a seeded hash of
//! each job: most succeed, some fail, some hit transient errors and are
//! retried, some wait for a later time, a few stop on a data error and are
//! resumed by a user; one workflow ("Invoice sync") fails every time and
//! backs off. Users cancel and postpone queued jobs, pause a long export
//! while it runs and resume it, and on day 90 a workflow changes owner and
//! an administrator reassigns its waiting runs.

use std::sync::Arc;
use std::time::Instant;

use joblog::domain::{
    Clock, DeletionCriteria, ManualClock, OperationType, Regarding, Status, Timestamp, WorkflowDefinition,
    MICROS_PER_DAY,
};
use joblog::engine::{Config, Engine, NewJob, UserAction};
use joblog::projection::query::Filter;
use joblog::service::{BackoffPolicy, JobContext, Outcome, Registry, RunUntil, Service, ServiceConfig};
use serde_json::json;

use super::args::{DemoArgs, Global};
use super::output::{job_json, jobs_table, pretty};
use super::{Failure, Output};

const USERS: usize = 300;
const UNITS: usize = 10;
const WORKFLOWS: usize = 40;
const FAILING: &str = "wf-invoice-sync";

fn hash(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn workflow_id(i: usize) -> String {
    if i == 0 {
        FAILING.to_string()
    } else {
        format!("wf-{i:02}")
    }
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure { code: 1, message: format!("demo: {e}"), stdout: String::new() }
}

pub fn run(args: &DemoArgs, g: &Global, interactive: bool) -> Output {
    let started = Instant::now();
    // A fresh temporary directory unless --data (or JOBLOG_DATA) names one.
    let explicit = std::env::args().any(|a| a == "--data" || a.starts_with("--data="))
        || std::env::var_os("JOBLOG_DATA").is_some();
    let temp = tempfile::tempdir().map_err(fail)?;
    let dir = if explicit { g.data.clone() } else { temp.path().join("joblog-data") };
    if dir.join("segments").exists() {
        return Err(Failure::usage(format!(
            "{} already holds a store; the demo needs a fresh directory",
            dir.display()
        )));
    }
    let start = Timestamp::parse("2026-01-01T08:00:00Z").expect("a time");
    let clock = Arc::new(ManualClock::new(start));
    let engine = Engine::open(&dir, Config::default(), clock.clone())?;
    let admin = engine.session("admin")?;
    for u in 0..UNITS {
        admin.add_business_unit(&format!("unit-{u}"), "root")?;
    }
    for u in 0..USERS {
        let role = if u % 50 == 0 { "business-unit-manager" } else { "basic-user" };
        admin.add_user(&format!("user-{u:03}"), &format!("unit-{}", u % UNITS), &[role])?;
    }
    for w in 0..WORKFLOWS {
        let owner = format!("user-{:03}", (w * 7) % USERS);
        let name = if w == 0 { "Invoice sync".to_string() } else { format!("Workflow {w:02}") };
        admin.save_workflow(WorkflowDefinition { id: workflow_id(w), name, owner, active: true })?;
    }

    // Outcomes by a seeded hash of the job; the failing workflow always fails.
    let seed = args.seed;
    let outcome = move |ctx: &JobContext<'_>| {
        let job = ctx.job();
        if job.workflow.as_deref() == Some(FAILING) {
            return Outcome::Failed {
                code: -2147220970,
                message: "The remote invoicing service refused the request".into(),
            };
        }
        if job.name == "Long export" {
            // Checks its cancellation token between chunks of work.
            for _ in 0..2000 {
                if ctx.stop_requested().is_some() {
                    return Outcome::Stopped;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Outcome::Succeeded;
        }
        let h = hash(seed ^ job.id.as_u128() as u64) % 1000;
        match h {
            0..=869 => Outcome::Succeeded,
            870..=919 => Outcome::Failed { code: -2147204783, message: "A validation error occurred".into() },
            920..=959 if job.retrycount < 2 => Outcome::Transient("SQL Server timeout; will retry".into()),
            920..=959 => Outcome::Succeeded,
            960..=989 if job.startedon.is_none() => {
                Outcome::Wait(ctx.now().plus_micros((1 + (h as i64 % 30)) * 3_600_000_000))
            }
            960..=989 => Outcome::Succeeded,
            _ if job.message.is_none() => {
                Outcome::Suspend("Record is missing a required value: fix it and resume".into())
            }
            _ => Outcome::Succeeded,
        }
    };
    let mut registry = Registry::new();
    for w in 0..WORKFLOWS {
        registry = registry.workflow(&workflow_id(w), outcome);
    }
    registry = registry.operation(OperationType::BULK_EMAIL, outcome).operation(OperationType::SYSTEM_EVENT, outcome);
    let config = ServiceConfig {
        workers: 2,
        host: "demo-host".into(),
        backoff: BackoffPolicy { seed, ..BackoffPolicy::default() },
        poll: std::time::Duration::from_millis(1),
        install_defaults: false,
        ..ServiceConfig::default()
    };
    let service = Service::new(&engine, config, registry);

    let per_day = (args.jobs / u64::from(args.days.max(1))).max(1);
    let bar = super::progress(interactive, u64::from(args.days), "simulating");
    let mut totals = joblog::service::Summary::default();
    let mut user_actions = 0u64;
    let mut reassigned = 0usize;
    for day in 0..u64::from(args.days) {
        let day_start = start.plus_micros(day as i64 * MICROS_PER_DAY);
        clock.set(day_start.max(clock.now()));
        // The day's jobs arrive in bursts through the working day.
        for burst in 0..8u64 {
            let at = day_start.plus_micros(burst as i64 * 3_600_000_000);
            clock.set(at.max(clock.now()));
            let n = per_day / 8 + u64::from(burst < per_day % 8);
            let specs: Vec<NewJob> = (0..n)
                .map(|i| {
                    let h = hash(seed ^ (day << 32) ^ (burst << 24) ^ i);
                    let w = (h % WORKFLOWS as u64) as usize;
                    let kind = (h >> 8) % 10;
                    let mut spec = if kind < 8 {
                        NewJob {
                            workflow: Some(workflow_id(w)),
                            ..NewJob::new(&format!("Workflow {w:02} run"), OperationType::WORKFLOW)
                        }
                    } else if kind == 8 {
                        NewJob::new("Monthly newsletter", OperationType::BULK_EMAIL)
                    } else {
                        NewJob::new("Plug-in step", OperationType::SYSTEM_EVENT)
                    };
                    spec.regarding = Some(Regarding { table: "contact".into(), id: ((h >> 16) % 50_000).to_string() });
                    spec
                })
                .collect();
            for chunk in specs.chunks(2000) {
                admin.create_many(chunk.to_vec())?;
            }
            let s = service.run(RunUntil::Idle)?;
            add(&mut totals, &s);
        }
        // Users act on queued and suspended jobs.
        let suspended: Vec<_> = {
            let f = Filter { status_reason: Some(joblog::domain::StatusReason::Waiting), ..Filter::default() };
            admin.list(&f, None, 40)?.0
        };
        for (i, job) in suspended.iter().enumerate() {
            let action = match i % 4 {
                0 if job.postponeuntil.is_none() => UserAction::Resume,
                1 => UserAction::Cancel,
                _ => continue,
            };
            if admin.act(job.id, action).is_ok() {
                user_actions += 1;
            }
        }
        if day == 60 {
            user_actions += pause_a_running_export(&engine, &service)?;
        }
        if day == 90 {
            // The onboarding workflow changes owner; its waiting runs move with it.
            let mut wf = engine.state().workflow(&workflow_id(3)).cloned().expect("defined above");
            let from = wf.owner.clone();
            wf.owner = "user-150".into();
            admin.save_workflow(wf)?;
            reassigned = admin.reassign(&workflow_id(3), &from, "user-150")?.len();
        }
        // The rest of the day passes: timers and retries come due.
        clock.set(day_start.plus_micros(MICROS_PER_DAY - 1).max(clock.now()));
        let s = service.run(RunUntil::Idle)?;
        add(&mut totals, &s);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let simulated = started.elapsed().as_secs_f64();

    // The views.
    let state = engine.state();
    let jobs_total = state.job_count();
    drop(state);
    let (system_jobs, _) = admin.list(&Filter::default(), None, 8)?;
    let session_filter = Filter { workflow: Some(workflow_id(3)), ..Filter::default() };
    let (process_session, _) = admin.list(&session_filter, None, 8)?;
    // The row the newest job concerns.
    let row = system_jobs
        .iter()
        .find_map(|j| j.regarding.clone())
        .unwrap_or(Regarding { table: "contact".into(), id: "0".into() });
    let (background, _) = admin.list(&Filter { regarding: Some(row.clone()), ..Filter::default() }, None, 8)?;
    let backoff = joblog::service::backoff_report(&engine, &BackoffPolicy { seed, ..BackoffPolicy::default() });
    let failing = backoff.iter().find(|b| b.workflow == FAILING);
    let failed_count =
        admin.count(&Filter { status_reason: Some(joblog::domain::StatusReason::Failed), ..Filter::default() })?;

    // The default bulk deletion, Immediately.
    let criteria = DeletionCriteria::platform_default();
    let deletion = admin.delete_now(&criteria, joblog::domain::MAX_IMMEDIATE_DELETE)?;
    let verify = engine.verify_log()?;
    let total_secs = started.elapsed().as_secs_f64();
    let out = json!({
        "data": if explicit { dir.display().to_string() } else { "(temporary)".to_string() },
        "jobs": jobs_total,
        "days": args.days,
        "users": USERS + 1,
        "workflows": WORKFLOWS,
        "service": {
            "ran": totals.ran, "succeeded": totals.succeeded, "failed": totals.failed,
            "waiting": totals.waiting, "canceled": totals.canceled, "deferred_by_backoff": totals.deferred,
        },
        "user_actions": user_actions,
        "reassigned_waiting_runs": reassigned,
        "failing_workflow": failing.map(|b| json!({"workflow": b.workflow, "consecutive_failures": b.consecutive_failures, "held_until": b.held_until.map(|t| t.to_rfc3339())})),
        "failed_jobs": failed_count,
        "deletion": {
            "criteria": "Workflow, Succeeded, older than 30 days",
            "deleted": deletion.deleted,
            "remaining_matching": deletion.remaining_matching,
            "bytes_before": deletion.bytes_before,
            "bytes_after": deletion.bytes_after,
            "seconds": deletion.seconds,
        },
        "verify_ok": verify.ok(),
        "seconds_simulating": simulated,
        "seconds_total": total_secs,
    });
    drop((admin, service));
    engine.close()?;
    if g.json {
        return Ok(pretty(&out));
    }
    let mb = |b: u64| b as f64 / 1e6;
    let mut s = format!(
        "joblog demo: {} jobs over {} simulated days, {} users in {UNITS} business units, {WORKFLOWS} workflows\n\
         service: {} runs — {} succeeded, {} failed, {} ended waiting (retries, waits, pauses, data errors), {} canceled\n\
         users: {user_actions} actions (cancel, resume, pause of a running export); {reassigned} waiting runs reassigned after an owner change\n",
        jobs_total, args.days, USERS + 1, totals.ran, totals.succeeded, totals.failed, totals.waiting, totals.canceled
    );
    if let Some(b) = failing {
        s += &format!(
            "back-off: \"Invoice sync\" failed {} times in a row; its waiting runs were postponed {} times{}\n",
            b.consecutive_failures,
            totals.deferred,
            b.held_until.map(|t| format!(", the next until {}", t.to_rfc3339())).unwrap_or_default()
        );
    }
    s += &format!(
        "\nSystem Jobs (newest first, {jobs_total} in all)\n{}",
        jobs_table(&system_jobs.iter().map(job_json).collect::<Vec<_>>())
    );
    s += &format!(
        "\nProcess Session: {}\n{}",
        workflow_id(3),
        jobs_table(&process_session.iter().map(job_json).collect::<Vec<_>>())
    );
    s +=
        &format!("\nBackground Processes: {row}\n{}", jobs_table(&background.iter().map(job_json).collect::<Vec<_>>()));
    s += &format!(
        "\nBulk deletion \"Delete completed system jobs\" (Workflow, Succeeded, older than 30 days), Immediately:\n  \
         deleted {} jobs ({} more match) in {:.3} s, space back included\n  log files {:.1} MB → {:.1} MB; verify: {}\n\
         \n{:.1} s in all ({:.1} s simulating)\n",
        deletion.deleted,
        deletion.remaining_matching,
        deletion.seconds,
        mb(deletion.bytes_before),
        mb(deletion.bytes_after),
        if verify.ok() { "ok" } else { "PROBLEMS" },
        total_secs,
        simulated
    );
    Ok(s)
}

fn add(t: &mut joblog::service::Summary, s: &joblog::service::Summary) {
    t.ran += s.ran;
    t.succeeded += s.succeeded;
    t.failed += s.failed;
    t.waiting += s.waiting;
    t.canceled += s.canceled;
    t.deferred += s.deferred;
}

/// A user pauses a long export while it runs, then resumes it; it runs to
/// its end. Returns the user actions taken.
fn pause_a_running_export(engine: &Engine, service: &Service) -> Result<u64, Failure> {
    let admin = engine.session("admin")?;
    let job = admin.create(NewJob::new("Long export", OperationType::BULK_EMAIL))?;
    std::thread::scope(|s| -> Result<u64, Failure> {
        let runner = s.spawn(|| service.run(RunUntil::Idle));
        let waiting = Instant::now();
        while engine.state().status_of(job.id)? != Some(Status::IN_PROGRESS) {
            if waiting.elapsed().as_secs() > 10 {
                return Err(fail("the long export never started"));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        admin.act(job.id, UserAction::Pause)?;
        runner.join().expect("the service thread").map_err(Failure::from)?;
        Ok(1)
    })?;
    admin.act(job.id, UserAction::Resume)?;
    service.run(RunUntil::Idle)?;
    Ok(2)
}
