//! kill -9 during bulk deletion and compaction, with real processes (run as
//! `harness = false`).
//!
//! The child opens an engine with small segments and loops: import 40
//! completed jobs (half completed 400 days ago, half yesterday), print
//! their ids once acknowledged, and every third batch delete what is older
//! than 30 days (Immediately: the event, then compaction, then a
//! checkpoint), printing the count once acknowledged. The parent SIGKILLs it
//! at a random moment, reopens, and checks: every acknowledged recent job is
//! there, whole; every old job acknowledged before an acknowledged deletion
//! is gone for good; the log verifies; garbage a kill left behind compacts;
//! and the state equals a fresh replay of the log. Rounds share one data
//! directory.
//!
//! Every round kills only after the first acknowledgement; the files
//! recovery says it removed are checked gone on disk, and no temporary or
//! unlisted file is left in `segments/` or `snapshots/`.
//!
//! `JOBLOG_KILL9_DELETE_ROUNDS` (default 30) and `JOBLOG_KILL9_DELETE_SEED`
//! control a run; the seed decides the kill moments and the jobs' ids.

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use joblog::domain::{
    DeletionCriteria, Job, ManualClock, OperationType, Status, StatusReason, Timestamp, MICROS_PER_DAY,
};
use joblog::engine::{Config, Engine};
use joblog::log::LogConfig;
use joblog::projection::query::{Filter, Visibility};
use support::{assert_engine_cleaned_up, run_and_kill_after_ack, seed_and_rounds, Rng};
use uuid::Uuid;

const CHILD_ENV: &str = "JOBLOG_KILL9_DELETE_CHILD";

fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
}

fn open(dir: &Path) -> Engine {
    let config = Config {
        log: LogConfig { segment_size_bytes: 64 << 10, ..LogConfig::default() },
        checkpoint_every_events: 0,
        cold_after: 1,
        ..Config::default()
    };
    Engine::open(dir, config, Arc::new(ManualClock::new(now()))).unwrap_or_else(|e| panic!("open after kill: {e}"))
}

fn criteria() -> DeletionCriteria {
    DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled],
        older_than_days: 30,
    }
}

fn data_of(id: Uuid) -> Vec<u8> {
    vec![id.as_bytes()[15]; 150]
}

fn child(dir: &Path, seed: u64) {
    let engine = open(dir);
    // Ids from the seed: a seed repeats the run (a round's child may redo
    // ids an earlier, killed child never got acknowledged: the round is in
    // the stream too).
    let mut rng = Rng::with_seed(seed);
    let admin = engine.session("admin").unwrap();
    let mut out = std::io::stdout();
    for batch in 0u64.. {
        let jobs: Vec<Job> = (0..40)
            .map(|i| {
                let days = if i % 2 == 0 { 400 } else { 1 };
                let done = Timestamp::from_micros(now().micros() - days * MICROS_PER_DAY);
                let mut j = Job::new("kill9", OperationType::WORKFLOW, "admin", "root", done);
                j.id = Uuid::from_u64_pair(rng.u64(..), rng.u64(..));
                j.status = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED][i % 3];
                j.completedon = Some(done);
                j.data = data_of(j.id);
                j
            })
            .collect();
        admin.import(jobs.clone()).unwrap();
        let ids: Vec<String> =
            jobs.iter().enumerate().map(|(i, j)| format!("{}:{}", if i % 2 == 0 { "o" } else { "n" }, j.id)).collect();
        writeln!(out, "imp {}", ids.join(",")).unwrap();
        out.flush().unwrap();
        if batch % 3 == 2 {
            let r = admin.delete_now(&criteria(), 1_000_000).unwrap();
            writeln!(out, "del {}", r.deleted).unwrap();
            out.flush().unwrap();
        }
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir), std::env::var("JOBLOG_KILL9_DELETE_CHILD_SEED").unwrap().parse().unwrap());
        return;
    }
    let (seed, rounds) = seed_and_rounds("kill9_delete", "JOBLOG_KILL9_DELETE_SEED", "JOBLOG_KILL9_DELETE_ROUNDS", 30);
    let mut rng = Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut must_exist, mut must_be_gone) = (HashSet::<Uuid>::new(), HashSet::<Uuid>::new());
    let (mut deletions, mut leftovers, mut garbage_rounds) = (0u64, 0usize, 0u64);
    for round in 0..rounds {
        let env = [
            (CHILD_ENV, dir.path().display().to_string()),
            ("JOBLOG_KILL9_DELETE_CHILD_SEED", (seed ^ (round << 32)).to_string()),
        ];
        let lines = run_and_kill_after_ack(&env, "imp ", Duration::from_micros(rng.u64(..400_000)));
        let mut old_since_delete = Vec::new();
        for line in lines {
            if let Some(ids) = line.strip_prefix("imp ") {
                for item in ids.split(',') {
                    let (kind, id) = item.split_once(':').unwrap();
                    let id: Uuid = id.parse().unwrap();
                    if kind == "n" {
                        must_exist.insert(id);
                    } else {
                        old_since_delete.push(id);
                    }
                }
            } else if line.starts_with("del ") {
                must_be_gone.extend(old_since_delete.drain(..));
                deletions += 1;
            }
        }

        let engine = open(dir.path());
        let rec = engine.recovery();
        leftovers += rec.temp_files_removed.len() + rec.obsolete_files_removed.len();
        assert_engine_cleaned_up(&engine);
        if let Ok(snaps) = std::fs::read_dir(dir.path().join("snapshots")) {
            for e in snaps {
                let p = e.unwrap().path();
                assert!(!p.to_string_lossy().ends_with(".tmp"), "{} left after opening", p.display());
            }
        }
        let admin = engine.session("admin").unwrap();
        for id in &must_exist {
            let job = admin.get(*id).unwrap_or_else(|e| panic!("acknowledged job {id} lost: {e}"));
            assert_eq!(job.data, data_of(*id), "job {id} changed");
        }
        for id in &must_be_gone {
            assert!(
                matches!(
                    admin.get(*id),
                    Err(joblog::Error::Domain(joblog::domain::DomainError::NotFound { kind: "job", .. }))
                ),
                "deleted job {id} came back"
            );
        }
        let report = engine.verify_log().unwrap();
        assert!(report.ok(), "verify after kill: {:?}", report.problems);
        // A kill between the deletion event and the end of compaction
        // leaves garbage: it compacts now.
        if !engine.state().garbage().is_empty() {
            garbage_rounds += 1;
            engine.compact().unwrap();
            assert!(engine.state().garbage().is_empty());
        }
        let mut live = engine.state().query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).unwrap().0;
        let replayed = engine.replay_until(now()).unwrap();
        let mut fresh = replayed.query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).unwrap().0;
        live.sort_by_key(|j| j.id);
        fresh.sort_by_key(|j| j.id);
        assert_eq!(live, fresh, "state differs from a replay");
    }
    println!(
        "kill9_delete: {rounds} kills, {deletions} acknowledged deletions, {} jobs kept and {} deleted checked, \
         {leftovers} leftover files removed on reopen, {garbage_rounds} reopens finished a compaction, {:.1}s",
        must_exist.len(),
        must_be_gone.len(),
        started.elapsed().as_secs_f64()
    );
    println!("1 passed, 0 failed");
}
