//! Model-based: random operations (create, user actions, service steps,
//! historical imports, Immediately deletions, compaction, crashes and clean
//! reopens) against the engine and against a reference model kept here in
//! a few lines; after every operation the two must agree on every job's
//! status, and the store must always reopen to the same state. The model
//! uses the state machine's table (the specification), nothing else of the
//! engine.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use joblog::domain::{
    transition, Action, DeletionCriteria, Job, ManualClock, OperationType, Status, StatusReason, Timestamp,
    MICROS_PER_DAY,
};
use joblog::engine::{Config, Engine, NewJob, ServiceStep, UserAction};
use joblog::log::LogConfig;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// The reference: each job's status, type and completion time.
#[derive(Default)]
struct Model {
    jobs: BTreeMap<Uuid, (Status, OperationType, Option<i64>)>,
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Engine {
    let config = Config {
        log: LogConfig { segment_size_bytes: 16 << 10, ..LogConfig::default() },
        checkpoint_every_events: 64,
        cold_after: 1,
        // Replays from the log spill their Completed jobs into cold runs.
        replay_spill_rows: 16,
        // Checkpoints and spills write several runs of a type at once.
        cold_run_rows: 4,
    };
    Engine::open(dir, config, clock.clone()).expect("the store reopens")
}

fn check(engine: &Engine, model: &Model) {
    let state = engine.state();
    assert_eq!(state.job_count(), model.jobs.len(), "job count");
    for (id, (status, _, _)) in &model.jobs {
        assert_eq!(state.status_of(*id).unwrap(), Some(*status), "job {id}");
    }
    // The indices the queries and the queue read stay consistent with the
    // rows after every operation (deletions reuse slots; reopens rebuild).
    let problems = state.check_indices();
    assert!(problems.is_empty(), "index problems: {problems:?}");
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-06-01T00:00:00Z").unwrap()));
    let mut engine = Some(open(dir.path(), &clock));
    let mut model = Model::default();
    let mut ids: Vec<Uuid> = Vec::new();
    for op in data.chunks(3).take(200) {
        let (kind, a, b) = (op[0] % 10, *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0));
        clock.advance_secs(1 + i64::from(b % 4) * 600);
        let e = engine.as_ref().unwrap();
        let admin = e.session("admin").unwrap();
        let pick = |ids: &[Uuid]| (!ids.is_empty()).then(|| ids[a as usize % ids.len()]);
        match kind {
            0 => {
                let op = [OperationType::WORKFLOW, OperationType::BULK_EMAIL][a as usize % 2];
                let job = admin.create(NewJob::new("fuzz", op)).unwrap();
                model.jobs.insert(job.id, (Status::READY, op, None));
                ids.push(job.id);
            }
            1 | 2 => {
                let Some(id) = pick(&ids) else { continue };
                let Some(&(status, op, _)) = model.jobs.get(&id) else { continue };
                let later = clock.now_plus(3600);
                let (user, action) = [
                    (UserAction::Cancel, Action::Cancel),
                    (UserAction::Pause, Action::Pause),
                    (UserAction::Resume, Action::Resume),
                    (UserAction::Postpone(later), Action::Postpone),
                ][b as usize % 4];
                let want = transition(id, op, status, action);
                let got = admin.act(id, user);
                assert_eq!(got.is_ok(), want.is_ok(), "{action:?} from {status}: {got:?}");
                if let Ok(to) = want {
                    let done = to.is_completed().then(|| clock.now_micros());
                    model.jobs.insert(id, (to, op, done));
                }
            }
            3 | 4 => {
                let Some(id) = pick(&ids) else { continue };
                let Some(&(status, op, _)) = model.jobs.get(&id) else { continue };
                let (step, action) = match b % 5 {
                    0 => (ServiceStep::Lock, Action::Lock),
                    1 => (ServiceStep::Succeed, Action::Succeed),
                    2 => (ServiceStep::Fail { code: 1, message: "x".into() }, Action::Fail),
                    3 => (ServiceStep::StopCanceling { message: None }, Action::StopCanceling),
                    _ => (ServiceStep::StopPausing { message: None }, Action::StopPausing),
                };
                let want = transition(id, op, status, action);
                let got = e.worker("w").step(id, step);
                // A Lock of a Ready job with a future postponeuntil is
                // refused by the queue although the table allows it.
                if got.is_ok() != want.is_ok() {
                    assert!(action == Action::Lock && got.is_err(), "{action:?} from {status}: {got:?}");
                    continue;
                }
                if let Ok(to) = want {
                    let done = to.is_completed().then(|| clock.now_micros());
                    model.jobs.insert(id, (to, op, done));
                }
            }
            5 => {
                // Historical completed jobs, some old enough to delete.
                let jobs: Vec<Job> = (0..(a % 8) + 1)
                    .map(|i| {
                        let done = Timestamp::from_micros(
                            clock.now_micros() - i64::from((u32::from(b) + u32::from(i)) % 90) * MICROS_PER_DAY,
                        );
                        let mut j = Job::new("old", OperationType::WORKFLOW, "admin", "root", done.plus_micros(-1));
                        j.status = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED][(i % 3) as usize];
                        j.startedon = Some(j.createdon);
                        j.completedon = Some(done);
                        j.modifiedon = done;
                        j
                    })
                    .collect();
                admin.import(jobs.clone()).unwrap();
                for j in jobs {
                    model.jobs.insert(j.id, (j.status, j.operationtype, j.completedon.map(|t| t.micros())));
                    ids.push(j.id);
                }
            }
            6 => {
                let days = u32::from(a % 60);
                let reasons = [StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled];
                let criteria = DeletionCriteria {
                    types: vec![OperationType::WORKFLOW],
                    reasons: reasons[..1 + b as usize % 3].to_vec(),
                    older_than_days: days,
                };
                let limit = u64::from(b % 16) + 1;
                let r = admin.delete_now(&criteria, limit).unwrap();
                // The model: matching completed jobs, oldest (completedon, id) first.
                let cutoff = clock.now_micros() - i64::from(days) * MICROS_PER_DAY;
                let mut matching: Vec<(i64, Uuid)> = model
                    .jobs
                    .iter()
                    .filter(|(_, (s, op, done))| {
                        *op == OperationType::WORKFLOW
                            && s.is_completed()
                            && criteria.reasons.contains(&s.reason())
                            && done.is_some_and(|d| d < cutoff)
                    })
                    .map(|(id, (_, _, done))| (done.unwrap(), *id))
                    .collect();
                matching.sort();
                let take = matching.len().min(limit as usize);
                assert_eq!((r.deleted, r.remaining_matching), (take as u64, (matching.len() - take) as u64));
                for (_, id) in &matching[..take] {
                    model.jobs.remove(id);
                }
            }
            7 => {
                e.compact().unwrap();
            }
            8 => {
                // A crash: no checkpoint, no clean close.
                drop(admin);
                drop(engine.take());
                engine = Some(open(dir.path(), &clock));
            }
            _ => {
                drop(admin);
                engine.take().unwrap().close().unwrap();
                engine = Some(open(dir.path(), &clock));
            }
        }
        check(engine.as_ref().unwrap(), &model);
    }
    let e = engine.unwrap();
    assert!(e.verify_log().unwrap().ok());
    let replayed = e.replay_until(Timestamp::from_micros(i64::MAX)).unwrap();
    assert_eq!(replayed.job_count(), model.jobs.len());
    let problems = replayed.check_indices();
    assert!(problems.is_empty(), "index problems after a full replay: {problems:?}");
});

trait Now {
    fn now_micros(&self) -> i64;
    fn now_plus(&self, secs: i64) -> Timestamp;
}

impl Now for ManualClock {
    fn now_micros(&self) -> i64 {
        joblog::domain::Clock::now(self).micros()
    }
    fn now_plus(&self, secs: i64) -> Timestamp {
        joblog::domain::Clock::now(self).plus_micros(secs * 1_000_000)
    }
}
