//! kill -9 of a real process running the service (run as
//! `harness = false`).
//!
//! Each round the parent submits 300 jobs, then starts a child that runs
//! the service (2 workers, handlers that take a millisecond or two) and
//! SIGKILLs it at a random moment. After each kill it reopens the store
//! and checks that the log verifies and that no job is missing but those a
//! deletion took. Meanwhile the child also deletes finished jobs
//! Immediately, over and over (deletion events and compaction). At the end the parent runs the
//! service to idle itself and checks every job: finished exactly once (or
//! deleted, which only finished jobs are), no job lost, every Locked job of a dead service returned to Ready with the
//! reason in its history, and no run overlapping another of the same job.
//!
//! `JOBLOG_KILL9_SERVICE_ROUNDS` (default 20) and
//! `JOBLOG_KILL9_SERVICE_SEED` control a run.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use joblog::domain::{Action, DeletionCriteria, OperationType, Status, StatusReason, SystemClock, WorkflowDefinition};
use joblog::engine::{Config, Engine, NewJob};
use joblog::service::{BackoffPolicy, JobContext, Outcome, Registry, RunUntil, Service, ServiceConfig};
use support::{run_and_kill, seed_and_rounds, Rng};
use uuid::Uuid;

const CHILD_ENV: &str = "JOBLOG_KILL9_SERVICE_CHILD";

fn open(dir: &Path) -> Engine {
    Engine::open(dir, Config::default(), Arc::new(SystemClock)).unwrap_or_else(|e| panic!("open after kill: {e}"))
}

fn registry() -> Registry {
    Registry::new().workflow("work", |ctx: &JobContext<'_>| {
        let b = ctx.job().id.as_bytes()[15];
        std::thread::sleep(Duration::from_micros(500 + u64::from(b) * 8));
        if b % 10 == 0 {
            Outcome::Failed { code: 1, message: "failed on purpose".into() }
        } else {
            Outcome::Succeeded
        }
    })
}

fn service_config() -> ServiceConfig {
    // No back-off: every job must finish within the run (the harness is
    // about leases, not about the failing workflow).
    let backoff = BackoffPolicy { threshold: u32::MAX, ..BackoffPolicy::default() };
    ServiceConfig { workers: 2, host: format!("pid-{}", std::process::id()), backoff, ..ServiceConfig::default() }
}

fn child(dir: &Path) {
    let engine = open(dir);
    let service = Service::new(&engine, service_config(), registry());
    std::thread::scope(|s| {
        // Meanwhile an administrator deletes finished jobs, Immediately
        // (the deletion event, then compaction), again and again.
        s.spawn(|| {
            let admin = engine.session("admin").unwrap();
            let done = DeletionCriteria {
                types: vec![OperationType::WORKFLOW],
                reasons: vec![StatusReason::Succeeded],
                older_than_days: 0,
            };
            loop {
                std::thread::sleep(Duration::from_millis(40));
                admin.delete_now(&done, 1_000_000).unwrap();
            }
        });
        service.run(RunUntil::Stopped).unwrap();
    });
}

/// Jobs the store's deletions took, in all.
fn deleted(engine: &Engine) -> u64 {
    engine.state().deletions().iter().map(|d| d.deletion.deleted).sum()
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let (seed, rounds) =
        seed_and_rounds("kill9_service", "JOBLOG_KILL9_SERVICE_SEED", "JOBLOG_KILL9_SERVICE_ROUNDS", 20);
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // JOBLOG_KILL9_KEEP=1 keeps the data directory for a post-mortem.
    if std::env::var_os("JOBLOG_KILL9_KEEP").is_some() {
        println!("kill9_service: data in {}", dir.display());
        std::mem::forget(tmp);
    }
    let started = Instant::now();
    let mut ids: Vec<Uuid> = Vec::new();
    {
        let engine = open(dir.as_path());
        let wf = WorkflowDefinition { id: "work".into(), name: "work".into(), owner: "admin".into(), active: true };
        engine.session("admin").unwrap().save_workflow(wf).unwrap();
    }
    let mut held_at_kill = 0usize;
    for _ in 0..rounds {
        {
            let engine = open(dir.as_path());
            let admin = engine.session("admin").unwrap();
            let specs = (0..300).map(|i| NewJob {
                workflow: Some("work".into()),
                ..NewJob::new(&format!("job {i}"), OperationType::WORKFLOW)
            });
            ids.extend(admin.create_many(specs.collect()).unwrap().iter().map(|j| j.id));
        }
        run_and_kill(&[(CHILD_ENV, dir.as_path().display().to_string())], Duration::from_micros(rng.below(600_000)));
        let engine = open(dir.as_path());
        let report = engine.log().verify().unwrap();
        assert!(report.ok(), "verify after kill: {:?}", report.problems);
        let state = engine.state();
        held_at_kill += state.in_status(Status::IN_PROGRESS).count();
        let missing = ids.iter().filter(|id| state.status_of(**id).is_none()).count() as u64;
        drop(state);
        assert!(missing <= deleted(&engine), "{missing} jobs missing, {} deleted", deleted(&engine));
    }

    let engine = open(dir.as_path());
    let summary = Service::new(&engine, service_config(), registry()).run(RunUntil::Idle).unwrap();
    let admin = engine.session("admin").unwrap();
    let mut returned = 0;
    let mut gone = 0u64;
    for id in &ids {
        let Ok(h) = admin.history(*id) else {
            // Deleted: only finished jobs are (the deletion's criteria).
            gone += 1;
            continue;
        };
        let last = h.last().unwrap();
        assert!(last.status.is_completed(), "job {id} did not finish: {}", last.status);
        let ends = h.iter().filter(|e| e.status.is_completed()).count();
        assert_eq!(ends, 1, "job {id} finished {ends} times");
        // Every run (Lock) ends before the next begins: the state machine
        // allows Lock only from Ready, so a second Lock needs a return.
        let locks = h.iter().filter(|e| e.action == Some(Action::Lock)).count();
        let back = h.iter().filter(|e| e.action == Some(Action::ReturnToReady)).count();
        assert_eq!(locks, back + 1, "job {id}: {locks} runs, {back} returns");
        returned += back;
    }
    assert!(gone <= deleted(&engine), "{gone} jobs missing, {} deleted", deleted(&engine));
    println!(
        "kill9_service: {rounds} kills, {} jobs all finished exactly once ({gone} of them deleted after finishing, \
         by {} deletions), {held_at_kill} held by a killed service at reopen, {returned} runs returned to the queue \
         (the last restart returned {}), {:.1}s",
        ids.len(),
        engine.state().deletions().len(),
        summary.recovered,
        started.elapsed().as_secs_f64()
    );
    println!("1 passed, 0 failed");
}
