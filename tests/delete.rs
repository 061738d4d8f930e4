//! Bulk deletion through the engine: which jobs go (criteria, cutoff,
//! limits), refusals that change nothing, space that comes back, and a
//! store that replays and reopens to the same state after compaction.

mod support;

use std::sync::Arc;

use joblog::domain::{
    DeletionCriteria, Depth, DomainError, Job, ManualClock, OperationType, Privilege, Role, State, Status,
    StatusReason, Timestamp, MICROS_PER_DAY,
};
use joblog::engine::{Config, Engine};
use joblog::log::LogConfig;
use joblog::projection::query::{Filter, Visibility};
use joblog::projection::Projection;
use joblog::Error;
use support::t;

fn now() -> Timestamp {
    t("2026-06-01T00:00:00Z")
}

fn config() -> Config {
    Config {
        log: LogConfig { segment_size_bytes: 256 << 10, ..LogConfig::default() },
        checkpoint_every_events: 0,
        cold_after: 1,
        ..Config::default()
    }
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, config(), Arc::new(ManualClock::new(now()))).unwrap()
}

/// A job completed `days_ago` days before `now()` with `status`.
fn completed(status: Status, op: OperationType, days_ago: i64) -> Job {
    let done = Timestamp::from_micros(now().micros() - days_ago * MICROS_PER_DAY);
    let mut j = Job::new("done", op, "admin", "root", done.plus_micros(-60_000_000));
    j.status = status;
    j.startedon = Some(j.createdon);
    j.completedon = Some(done);
    j.modifiedon = done;
    j
}

fn all_jobs<P: std::ops::Deref<Target = Projection>>(p: &joblog::engine::View<'_, P>, _engine: &Engine) -> Vec<Job> {
    let (jobs, _) = p.query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).unwrap();
    jobs
}

fn criteria(types: &[OperationType], reasons: &[StatusReason], days: u32) -> DeletionCriteria {
    DeletionCriteria { types: types.to_vec(), reasons: reasons.to_vec(), older_than_days: days }
}

const WF: OperationType = OperationType::WORKFLOW;
const COMPLETED: [StatusReason; 3] = [StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled];

#[test]
fn criteria_take_exactly_the_old_completed_jobs_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let mut jobs = Vec::new();
    for status in [Status::SUCCEEDED, Status::FAILED, Status::CANCELED] {
        for op in [WF, OperationType::BULK_EMAIL] {
            jobs.push(completed(status, op, 31)); // older than 30 days
            jobs.push(completed(status, op, 30)); // exactly at the cutoff: kept
            jobs.push(completed(status, op, 29));
        }
    }
    // Jobs not Completed are never deleted, however old.
    for status in [Status::READY, Status::WAITING, Status::IN_PROGRESS, Status::PAUSED] {
        let mut j = completed(Status::SUCCEEDED, WF, 100);
        j.status = status;
        j.completedon = None;
        if status.state() != State::Locked {
            j.startedon = None;
        }
        jobs.push(j);
    }
    admin.import(jobs.clone()).unwrap();

    // Each reason alone takes only its own old Workflow job.
    for (i, reason) in COMPLETED.into_iter().enumerate() {
        let r = admin.delete_now(&criteria(&[WF], &[reason], 30), 1_000_000).unwrap();
        assert_eq!((r.deleted, r.remaining_matching), (1, 0), "{reason:?}");
        let want = &jobs[i * 6];
        assert!(
            matches!(admin.get(want.id), Err(Error::Domain(joblog::domain::DomainError::NotFound { kind: "job", name })) if name == want.id.to_string()),
            "the old {reason:?} Workflow job is gone"
        );
    }
    // The same again: nothing left to take.
    let r = admin.delete_now(&criteria(&[WF], &COMPLETED, 30), 1_000_000).unwrap();
    assert_eq!(r.deleted, 0);
    // Every type and reason, 29 days: the 30-day-old ones and the 29 are
    // not older than 29 days... the 30s are.
    let r = admin.delete_now(&criteria(&[WF, OperationType::BULK_EMAIL], &COMPLETED, 29), 1_000_000).unwrap();
    assert_eq!(r.deleted, 3 + 6, "bulk email 31-day-old jobs and every 30-day-old one");
    let left = all_jobs(&engine.state(), &engine);
    assert_eq!(left.len(), 6 + 4, "the 29-day-old ones and the open ones");
    assert!(left.iter().all(|j| !j.status.is_completed() || j.completedon == jobs[2].completedon));
    assert!(engine.verify_log().unwrap().ok());
}

#[test]
fn the_limit_takes_the_oldest_first_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let jobs: Vec<Job> = (0..500).map(|i| completed(Status::SUCCEEDED, WF, 40 + i)).collect();
    admin.import(jobs.clone()).unwrap();
    let r = admin.delete_now(&criteria(&[WF], &COMPLETED, 30), 120).unwrap();
    assert_eq!((r.deleted, r.remaining_matching), (120, 380));
    // The oldest went: those completed 500..380 days ago.
    let left: std::collections::HashSet<_> = all_jobs(&engine.state(), &engine).iter().map(|j| j.id).collect();
    assert!(jobs.iter().enumerate().all(|(i, j)| left.contains(&j.id) == (i < 380)));
    for bad in [0, 1_000_001] {
        let e = admin.delete_now(&criteria(&[WF], &COMPLETED, 30), bad).unwrap_err();
        assert!(matches!(e, Error::Domain(DomainError::Invalid { .. })), "{e}");
    }
}

/// Many rows (the bulk path), several types and reasons, criteria naming
/// some twice: the oldest matching jobs go across every (reason, type), each
/// once, and the count of the rest is exact.
#[test]
fn the_oldest_go_first_across_types_and_reasons_named_twice() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let reasons = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED];
    let types = [WF, OperationType::BULK_EMAIL, OperationType::SYSTEM_EVENT];
    let jobs: Vec<Job> = (0..4000).map(|i| completed(reasons[i % 3], types[(i / 3) % 3], 40 + i as i64)).collect();
    for chunk in jobs.chunks(1000) {
        admin.import(chunk.to_vec()).unwrap();
    }
    let c = criteria(
        &[WF, OperationType::BULK_EMAIL, WF],
        &[StatusReason::Succeeded, StatusReason::Failed, StatusReason::Succeeded],
        30,
    );
    let matches = |j: &Job| j.status != Status::CANCELED && j.operationtype != OperationType::SYSTEM_EVENT;
    let matching: Vec<&Job> = jobs.iter().filter(|j| matches(j)).collect();
    let r = admin.delete_now(&c, 1500).unwrap();
    assert_eq!((r.deleted, r.remaining_matching), (1500, matching.len() as u64 - 1500));
    // The 1500 oldest matching went (the later in `jobs`, the older).
    let left: std::collections::HashSet<_> = all_jobs(&engine.state(), &engine).iter().map(|j| j.id).collect();
    let cut = matching.len() - 1500;
    for (i, j) in matching.iter().enumerate() {
        assert_eq!(left.contains(&j.id), i < cut, "matching job {i}");
    }
    assert!(jobs.iter().filter(|j| !matches(j)).all(|j| left.contains(&j.id)));
    let r = admin.delete_now(&c, 1_000_000).unwrap();
    assert_eq!((r.deleted, r.remaining_matching), (cut as u64, 0));
    assert_eq!(engine.state().job_count(), jobs.len() - matching.len());
    assert!(engine.state().check_indices().is_empty());
    // Replay from the log selects the same.
    drop(admin);
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.state().job_count(), jobs.len() - matching.len());
}

#[test]
fn refused_deletions_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    admin.import((0..50).map(|i| completed(Status::SUCCEEDED, WF, 40 + i)).collect()).unwrap();
    admin.add_role(Role::new("deleter-bu", [(Privilege::Delete, Depth::BusinessUnit)])).unwrap();
    admin.add_user("bob", "root", &["basic-user", "deleter-bu"]).unwrap();
    let bob = engine.session("bob").unwrap();
    let before = (engine.next_seq(), engine.disk_bytes());
    let refusals = [
        bob.delete_now(&criteria(&[WF], &COMPLETED, 30), 10).unwrap_err(),
        admin.delete_now(&criteria(&[OperationType::BULK_EMAIL], &COMPLETED, 30), 10).unwrap_err(),
        admin.delete_now(&criteria(&[WF], &[], 30), 10).unwrap_err(),
        admin.delete_now(&criteria(&[], &COMPLETED, 30), 10).unwrap_err(),
        admin.delete_now(&criteria(&[WF], &[StatusReason::Waiting], 30), 10).unwrap_err(),
        admin.delete_now(&criteria(&[WF], &COMPLETED, 40_000), 10).unwrap_err(),
    ];
    assert!(matches!(refusals[0], Error::Domain(DomainError::Denied { .. })), "{}", refusals[0]);
    assert!(matches!(refusals[1], Error::Domain(DomainError::ImmediatelyNeedsWorkflow)), "{}", refusals[1]);
    assert!(refusals[1].to_string().contains("Workflow"), "{}", refusals[1]);
    for e in &refusals[2..] {
        assert!(matches!(e, Error::Domain(DomainError::Invalid { .. })), "{e}");
    }
    assert_eq!((engine.next_seq(), engine.disk_bytes()), before);
    assert_eq!(engine.state().job_count(), 50);
}

#[test]
fn deleting_most_of_a_store_gives_the_space_back_and_replays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    // 4,000 jobs with some bulk: 90% old enough to go.
    for chunk in 0..8 {
        let jobs: Vec<Job> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                let mut j = completed(
                    [Status::SUCCEEDED, Status::FAILED, Status::CANCELED][n as usize % 3],
                    WF,
                    if n % 10 == 0 { 5 } else { 400 - n / 40 },
                );
                j.data = vec![7; 300];
                j
            })
            .collect();
        admin.import(jobs).unwrap();
    }
    engine.seal().unwrap();
    let segments_dir = dir.path().join("segments");
    let before = support::dir_bytes(&segments_dir);
    let r = admin.delete_now(&criteria(&[WF], &COMPLETED, 30), 1_000_000).unwrap();
    assert_eq!(r.deleted, 3600);
    let after = support::dir_bytes(&segments_dir);
    assert!(r.compaction.frames_dropped == 3600 && r.compaction.frames_kept > 0, "{:?}", r.compaction.frames_dropped);
    // The jobs were 90% of the sealed data; the active segment is preallocated.
    let active = LogConfig::default().segment_size_bytes.min(256 << 10);
    assert!(before - after > (before - active) * 8 / 10, "{before} → {after}");
    assert!(engine.state().garbage().is_empty());
    assert!(engine.verify_log().unwrap().ok());

    // Replay from the log alone equals the live state; so do reopens, with
    // and without the checkpoint.
    let live = all_jobs(&engine.state(), &engine);
    assert_eq!(live.len(), 400);
    let replayed = engine.replay_until(now()).unwrap();
    assert_eq!(all_jobs(&replayed, &engine), live);
    for history in live.iter().take(20).map(|j| admin.history(j.id).unwrap()) {
        assert_eq!(history.len(), 1);
    }
    drop(admin);
    engine.close().unwrap();
    let engine = open(dir.path());
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(all_jobs(&engine.state(), &engine), live);
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let engine = open(dir.path());
    assert_eq!(all_jobs(&engine.state(), &engine), live);
    assert!(engine.state().garbage().is_empty(), "replay of the deletion finds nothing left to drop");
}

#[test]
fn a_deletion_not_yet_compacted_survives_a_reopen_and_compacts_later() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let jobs: Vec<Job> = (0..300).map(|i| completed(Status::SUCCEEDED, WF, 31 + i % 2 * 100)).collect();
    admin.import(jobs).unwrap();
    let c = criteria(&[WF], &COMPLETED, 100);
    let kept = all_jobs(&engine.state(), &engine);
    let kept: Vec<Job> = kept.into_iter().filter(|j| j.completedon > Some(c.cutoff(now()))).collect();
    engine.checkpoint().unwrap();
    // Logical deletion only, as if the process died before compacting: a
    // limit below the match count.
    let d = admin.delete(&c, 100).unwrap();
    assert_eq!((d.deleted, d.remaining), (100, 50));
    assert!(!engine.state().garbage().is_empty());
    drop(admin);
    drop(engine); // no checkpoint on drop: reopen replays the deletion
    let engine = open(dir.path());
    assert_eq!(engine.state().job_count(), 200);
    assert_eq!(engine.state().garbage().values().map(Vec::len).sum::<usize>(), 100, "one event per imported job");
    let moved = engine.compact().unwrap();
    assert_eq!(moved.frames_dropped, 100);
    let admin = engine.session("admin").unwrap();
    let r = admin.delete_now(&c, 1_000_000).unwrap();
    assert_eq!((r.deleted, r.remaining_matching), (50, 0));
    let sorted = |mut v: Vec<Job>| {
        v.sort_by_key(|j| j.id);
        v
    };
    assert_eq!(sorted(all_jobs(&engine.state(), &engine)), sorted(kept));
    assert!(engine.verify_log().unwrap().ok());
    // The audit trail keeps both deletions.
    let state = engine.state();
    let trail: Vec<(u64, String)> =
        state.deletions().iter().map(|r| (r.deletion.deleted, r.actor.to_string())).collect();
    assert_eq!(trail, [(100, "admin".to_string()), (50, "admin".to_string())]);
}

fn service_config() -> joblog::service::ServiceConfig {
    joblog::service::ServiceConfig {
        install_defaults: false,
        poll: std::time::Duration::from_millis(2),
        ..Default::default()
    }
}

#[test]
fn recurring_bulk_delete_jobs_run_on_schedule_and_their_counts_add_up() {
    use joblog::engine::NewBulkDelete;
    use joblog::service::{Registry, RunUntil, Service};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(now()));
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.import((0..100).map(|i| completed(Status::SUCCEEDED, WF, 40 + i % 3)).collect()).unwrap();
    let spec = |rule: &str| NewBulkDelete {
        name: "Nightly cleanup".into(),
        criteria: criteria(&[WF], &[StatusReason::Succeeded], 30),
        start: Some(now().plus_micros(3_600_000_000)),
        recurrence: Some(rule.into()),
    };
    for bad in ["FREQ=MONTHLY", "FREQ=DAILY;BYHOUR=3"] {
        let e = admin.create_bulk_delete(&spec(bad)).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }
    let bob_refused = {
        admin.add_user("bob", "root", &["basic-user"]).unwrap();
        engine.session("bob").unwrap().create_bulk_delete(&spec("FREQ=DAILY")).unwrap_err()
    };
    assert!(matches!(bob_refused, Error::Domain(DomainError::Denied { .. })));
    let first = admin.create_bulk_delete(&spec("FREQ=DAILY;INTERVAL=1")).unwrap();
    assert_eq!((first.operationtype, first.status), (OperationType::BULK_DELETE, Status::READY));

    let svc = Service::new(&engine, service_config(), Registry::new());
    assert_eq!(svc.run(RunUntil::Idle).unwrap().ran, 0, "not due before its start");
    clock.advance_secs(3600);
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(engine.state().job_count(), 2, "the 100 old jobs went; the run and its next one remain");
    // Another day, more old jobs: the next run takes them.
    admin.import((0..40).map(|_| completed(Status::SUCCEEDED, WF, 45)).collect()).unwrap();
    clock.advance_secs(86_400 - 1);
    assert_eq!(svc.run(RunUntil::Idle).unwrap().ran, 0);
    clock.advance_secs(1);
    svc.run(RunUntil::Idle).unwrap();
    let records = admin.bulk_delete_jobs().unwrap();
    let mut counts: Vec<(Status, u64)> = records.iter().map(|r| (r.job.status, r.successcount)).collect();
    counts.sort_by_key(|c| c.1);
    assert_eq!(counts, [(Status::READY, 0), (Status::SUCCEEDED, 40), (Status::SUCCEEDED, 100)]);
    let waiting = records.iter().find(|r| r.job.status == Status::READY).unwrap();
    assert_eq!(waiting.job.postponeuntil, Some(now().plus_micros(3600 * 1_000_000 + 2 * MICROS_PER_DAY)));
    assert_eq!(records.iter().map(|r| r.failurecount).sum::<u64>(), 0);
    // The audit trail names the definitions and the owner.
    let state = engine.state();
    let trail: Vec<_> = state.deletions().iter().map(|d| (d.actor.to_string(), d.deletion.deleted)).collect();
    assert_eq!(trail, [("admin".to_string(), 100), ("admin".to_string(), 40)]);
    assert!(engine.verify_log().unwrap().ok());
}

#[test]
fn a_fresh_store_gets_the_platform_default_once() {
    use joblog::engine::DEFAULT_BULK_DELETE_NAME;
    use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let svc = Service::new(&engine, ServiceConfig { install_defaults: true, ..service_config() }, Registry::new());
    svc.run(RunUntil::Idle).unwrap();
    svc.run(RunUntil::Idle).unwrap();
    let admin = engine.session("admin").unwrap();
    let jobs = admin.bulk_delete_jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    let d = &jobs[0];
    assert_eq!(d.job.name, DEFAULT_BULK_DELETE_NAME);
    assert_eq!(d.criteria, Some(DeletionCriteria::platform_default()));
    assert_eq!(d.job.recurrencepattern.as_deref(), Some("FREQ=DAILY;INTERVAL=1"));
    assert_eq!(d.job.postponeuntil, Some(t("2026-06-02T00:00:00Z")));
    // Switched off by an administrator, it stays off.
    admin.act(d.job.id, joblog::engine::UserAction::Cancel).unwrap();
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(admin.bulk_delete_jobs().unwrap().len(), 1);
    // The retention policy: one daily job per reason.
    let r = admin.set_retention(joblog::domain::RetentionPolicy::default()).unwrap();
    let days: Vec<u32> = r
        .iter()
        .map(|j| {
            admin
                .bulk_delete_jobs()
                .unwrap()
                .iter()
                .find(|b| b.job.id == j.id)
                .unwrap()
                .criteria
                .as_ref()
                .unwrap()
                .older_than_days
        })
        .collect();
    assert_eq!(days, [30, 60, 60]);
}

#[test]
fn a_job_whose_events_span_a_sealed_and_the_active_segment_is_compacted_whole() {
    use joblog::engine::{NewJob, ServiceStep};
    // Regression: compaction once left a small active segment alone while
    // it rewrote the sealed ones, so a deleted job kept its later events
    // but lost its creation, and replay refused the store.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let jobs: Vec<_> = (0..200).map(|i| admin.create(NewJob::new(&format!("j{i}"), WF)).unwrap()).collect();
    engine.seal().unwrap();
    for j in &jobs {
        engine.worker("w").step(j.id, ServiceStep::Lock).unwrap();
        engine.worker("w").step(j.id, ServiceStep::Succeed).unwrap();
    }
    let c = DeletionCriteria { types: vec![WF], reasons: vec![StatusReason::Succeeded], older_than_days: 0 };
    let r = admin.delete(&c, u64::MAX).unwrap();
    assert_eq!(r.deleted, 0, "completed just now: not older than 0 days yet");
    drop(admin);
    drop(engine);
    // A second later every job is old enough.
    let clock = Arc::new(ManualClock::new(now().plus_micros(1_000_000)));
    let engine = Engine::open(dir.path(), config(), clock).unwrap();
    let r = engine.session("admin").unwrap().delete_now(&c, 1_000_000).unwrap();
    assert_eq!(r.deleted, 200);
    assert!(engine.state().garbage().is_empty(), "every segment with their events was rewritten");
    let replayed = engine.replay_until(Timestamp::from_micros(i64::MAX)).unwrap();
    assert_eq!(replayed.job_count(), 0);
    assert!(engine.state().check_indices().is_empty());
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.state().job_count(), 0);
}

#[test]
fn a_read_only_engine_reads_everything_and_never_writes_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let admin = engine.session("admin").unwrap();
        admin.import(vec![completed(Status::SUCCEEDED, OperationType::WORKFLOW, 40)]).unwrap();
        admin.delete_now(&criteria(&[OperationType::WORKFLOW], &[StatusReason::Succeeded], 30), 10).unwrap();
        admin.import(vec![completed(Status::FAILED, OperationType::WORKFLOW, 10)]).unwrap();
        engine.close().unwrap();
    }
    // A leftover of an interrupted checkpoint, which a writable open removes.
    std::fs::write(dir.path().join("snapshots/snapshot-00000000000000000099.bin.tmp"), b"half").unwrap();
    let before = support::tree(dir.path());
    let clock = Arc::new(ManualClock::new(now()));
    let engine = Engine::open_read_only(dir.path(), config(), clock).unwrap();
    assert!(engine.is_read_only());
    assert_eq!(all_jobs(&engine.state(), &engine).len(), 1);
    assert!(engine.verify().ok(), "{:?}", engine.verify());
    let admin = engine.session("admin").unwrap();
    let e = admin.import(vec![completed(Status::FAILED, OperationType::WORKFLOW, 5)]).unwrap_err();
    assert!(matches!(e, Error::Log(joblog::log::LogError::ReadOnly)), "{e:?}");
    let e = engine.checkpoint().unwrap_err();
    assert!(matches!(e, Error::Log(joblog::log::LogError::ReadOnly)), "{e:?}");
    let e = engine.compact().unwrap_err();
    assert!(matches!(e, Error::Log(joblog::log::LogError::ReadOnly)), "{e:?}");
    engine.close().unwrap();
    assert_eq!(support::tree(dir.path()), before, "not a byte written, not a file removed");
}

#[test]
fn a_live_store_refuses_a_clock_far_ahead_and_a_simulation_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let far = t("2099-01-01T00:00:00Z");
    let clock = Arc::new(ManualClock::new(now()));
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    clock.set(far);
    let e = admin.add_user("bob", "root", &["basic-user"]).unwrap_err();
    assert!(matches!(e, Error::ClockAhead { .. }), "{e:?}");
    // Within the skew it is fine; and nothing was written by the refusal.
    clock.set(now());
    admin.add_user("bob", "root", &["basic-user"]).unwrap();
    assert!(!engine.is_simulation());
    engine.close().unwrap();
    // A live store cannot be reopened as a simulation.
    let e = Engine::open_simulation(dir.path(), config(), clock.clone()).err().unwrap();
    assert!(matches!(&e, Error::NotANewStore { dir: d } if d == dir.path()), "{e:?}");

    let sim = tempfile::tempdir().unwrap();
    let engine = Engine::open_simulation(sim.path(), config(), clock.clone()).unwrap();
    clock.set(far);
    engine.session("admin").unwrap().add_user("carol", "root", &["basic-user"]).unwrap();
    engine.close().unwrap();
    // The mark holds however it is opened.
    let engine = Engine::open(sim.path(), config(), clock.clone()).unwrap();
    assert!(engine.is_simulation());
    clock.set(t("2099-02-01T00:00:00Z"));
    engine.session("admin").unwrap().add_user("dave", "root", &["basic-user"]).unwrap();
}

/// A deletion of more hot rows than are removed one by one (the bulk path
/// filters every index in one pass) leaves no index holding a deleted row:
/// a view by a Completed Status Reason lists exactly the jobs left, also
/// after new jobs reuse the freed slots.
#[test]
fn a_bulk_deletion_of_hot_rows_leaves_every_index_clean() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let old: Vec<Job> = (0..3000).map(|i| completed(Status::CANCELED, WF, 40 + i % 50)).collect();
    for chunk in old.chunks(1000) {
        admin.import(chunk.to_vec()).unwrap();
    }
    let r = admin.delete(&criteria(&[WF], &[StatusReason::Canceled], 30), 2500).unwrap();
    assert_eq!(r.deleted, 2500);
    assert_eq!(engine.state().check_indices(), Vec::<String>::new());
    let canceled = Filter { status_reason: Some(StatusReason::Canceled), ..Filter::default() };
    let listed = |engine: &Engine| {
        let (jobs, _) = engine.state().query_jobs(&canceled, &Visibility::All, None, usize::MAX).unwrap();
        jobs.into_iter().map(|j| j.id).collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(listed(&engine).len(), 500);
    // New jobs take the freed slots.
    let new: Vec<Job> = (0..2000).map(|_| completed(Status::SUCCEEDED, WF, 1)).collect();
    for chunk in new.chunks(1000) {
        admin.import(chunk.to_vec()).unwrap();
    }
    assert_eq!(engine.state().check_indices(), Vec::<String>::new());
    assert_eq!(listed(&engine).len(), 500);
    assert_eq!(admin.count(&canceled).unwrap(), 500);
}

/// Jobs completed at the same moments (ties broken by id), some in cold
/// runs with rows already deleted by id, some hot: each deletion with a
/// limit takes exactly the oldest by (`completedon`, id) that are left,
/// and a replay from the log takes the same.
#[test]
fn the_limit_cuts_between_jobs_completed_at_the_same_moment_in_either_tier() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let admin = engine.session("admin").unwrap();
    let reasons = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED];
    let jobs: Vec<Job> = (0..3000)
        .map(|i| {
            let mut j = completed(reasons[i % 3], WF, 40 + (i as i64 % 7));
            // Seven moments in all, some a microsecond apart.
            j.completedon = j.completedon.map(|c| c.plus_micros(i as i64 % 2));
            j
        })
        .collect();
    admin.import(jobs[..2000].to_vec()).unwrap();
    engine.checkpoint().unwrap();
    admin.import(jobs[2000..].to_vec()).unwrap();
    let mut order: Vec<&Job> = jobs.iter().collect();
    order.sort_by_key(|j| (j.completedon, j.id));
    // Rows of the cold runs deleted by id first: they stay in the runs' sets.
    let by_id: Vec<_> = jobs[..2000].iter().step_by(5).map(|j| j.id).collect();
    admin.delete_jobs(&by_id).unwrap();
    order.retain(|j| !by_id.contains(&j.id));
    let c = criteria(&[WF], &COMPLETED, 30);
    for limit in [1, 299, 450, 1, 700, 3] {
        let r = admin.delete_now(&c, limit).unwrap();
        assert_eq!(r.deleted, limit);
        order.drain(..limit as usize);
        assert_eq!(r.remaining_matching, order.len() as u64);
        let mut left: Vec<_> = all_jobs(&engine.state(), &engine).iter().map(|j| j.id).collect();
        let mut expected: Vec<_> = order.iter().map(|j| j.id).collect();
        left.sort();
        expected.sort();
        assert_eq!(left, expected, "after a deletion of {limit}");
    }
    assert!(engine.state().check_indices().is_empty());
    drop(admin);
    drop(engine);
    let _ = std::fs::remove_dir_all(dir.path().join("snapshots"));
    let engine = open(dir.path());
    let mut left: Vec<_> = all_jobs(&engine.state(), &engine).iter().map(|j| j.id).collect();
    let mut expected: Vec<_> = order.iter().map(|j| j.id).collect();
    left.sort();
    expected.sort();
    assert_eq!(left, expected, "replayed");
}
