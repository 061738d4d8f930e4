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
//! Deleted jobs are checked one by one: the child's deletions write the
//! deletion event only (`Engine::delete`), and a child compacts what earlier
//! rounds deleted when it starts (so kills also land in compaction). After
//! each kill, for every new deletion in the log, the parent replays the log
//! just before and just after it: every job it took was Succeeded before
//! it, and every job missing at the end was taken so.
//!
//! `JOBLOG_KILL9_SERVICE_ROUNDS` (default 20) and
//! `JOBLOG_KILL9_SERVICE_SEED` control a run; the seed also decides which
//! jobs fail (by name, not by their random ids) and the kill moments.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use joblog::domain::{Action, DeletionCriteria, OperationType, Status, StatusReason, SystemClock, WorkflowDefinition};
use joblog::engine::{Config, Engine, NewJob};
use joblog::service::{BackoffPolicy, JobContext, Outcome, Registry, RunUntil, Service, ServiceConfig};
use support::{run_and_kill, seed_and_rounds, Rng};
use uuid::Uuid;

const CHILD_ENV: &str = "JOBLOG_KILL9_SERVICE_CHILD";

fn open(dir: &Path) -> Engine {
    Engine::open(dir, Config::default(), Arc::new(SystemClock)).unwrap_or_else(|e| panic!("open after kill: {e}"))
}

/// Which jobs fail and how long each runs: from the seed and the job's name
/// (`r{round} job {i}`), so that a seed repeats the run's decisions.
fn registry(seed: u64) -> Registry {
    Registry::new().workflow("work", move |ctx: &JobContext<'_>| {
        let b = Rng::with_seed(seed ^ crc32fast::hash(ctx.job().name.as_bytes()) as u64).u64(..256);
        std::thread::sleep(Duration::from_micros(500 + b * 8));
        if b.is_multiple_of(10) {
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

fn criteria() -> DeletionCriteria {
    DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded],
        older_than_days: 0,
    }
}

fn child(dir: &Path, seed: u64) {
    let engine = open(dir);
    // What earlier rounds deleted (and the parent has checked) goes now.
    engine.compact().unwrap();
    let service = Service::new(&engine, service_config(), registry(seed));
    std::thread::scope(|s| {
        // Meanwhile an administrator deletes finished jobs, again and again.
        s.spawn(|| loop {
            std::thread::sleep(Duration::from_millis(40));
            engine.session("admin").unwrap().delete(&criteria(), 1_000_000).unwrap();
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
        child(Path::new(&dir), std::env::var("JOBLOG_KILL9_SERVICE_CHILD_SEED").unwrap().parse().unwrap());
        return;
    }
    let (seed, rounds) =
        seed_and_rounds("kill9_service", "JOBLOG_KILL9_SERVICE_SEED", "JOBLOG_KILL9_SERVICE_ROUNDS", 20);
    let mut rng = Rng::with_seed(seed);
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
    // Jobs a deletion in the log was seen to take, each Succeeded before it.
    let mut taken: HashSet<Uuid> = HashSet::new();
    let mut deletions_checked = 0usize;
    for round in 0..rounds {
        {
            let engine = open(dir.as_path());
            let admin = engine.session("admin").unwrap();
            let specs = (0..300).map(|i| NewJob {
                workflow: Some("work".into()),
                ..NewJob::new(&format!("r{round} job {i}"), OperationType::WORKFLOW)
            });
            ids.extend(admin.create_many(specs.collect()).unwrap().iter().map(|j| j.id));
        }
        let env =
            [(CHILD_ENV, dir.as_path().display().to_string()), ("JOBLOG_KILL9_SERVICE_CHILD_SEED", seed.to_string())];
        run_and_kill(&env, Duration::from_micros(rng.u64(..600_000)));
        let engine = open(dir.as_path());
        let report = engine.verify_log().unwrap();
        assert!(report.ok(), "verify after kill: {:?}", report.problems);
        let state = engine.state();
        held_at_kill += state.in_status(Status::IN_PROGRESS).count();
        let records = state.deletions()[deletions_checked..].to_vec();
        drop(state);
        // Each new deletion, job by job: the log just before it and just
        // after it (its jobs' events are still there: compaction waits for
        // the next child).
        for d in &records {
            let before = engine.replay_until_seq(d.seq - 1).unwrap();
            let after = engine.replay_until_seq(d.seq).unwrap();
            for id in &ids {
                if let (Some(s), None) = (before.status_of(*id).unwrap(), after.status_of(*id).unwrap()) {
                    assert_eq!(s, Status::SUCCEEDED, "deletion at seq {} took job {id}, which was {s}", d.seq);
                    taken.insert(*id);
                }
            }
        }
        deletions_checked += records.len();
        let state = engine.state();
        for id in &ids {
            if state.status_of(*id).unwrap().is_none() {
                assert!(taken.contains(id), "job {id} is missing, yet no deletion in the log took it");
            }
        }
    }

    let engine = open(dir.as_path());
    let summary = Service::new(&engine, service_config(), registry(seed)).run(RunUntil::Idle).unwrap();
    let admin = engine.session("admin").unwrap();
    let mut returned = 0;
    let mut gone = 0u64;
    for id in &ids {
        let Ok(h) = admin.history(*id) else {
            // Deleted: each such job was seen Succeeded just before the
            // deletion that took it.
            assert!(taken.contains(id), "job {id} is gone, yet no deletion was seen taking it");
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
    assert_eq!(gone as usize, ids.iter().filter(|id| taken.contains(id)).count(), "taken jobs came back");
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
