//! Deleting chosen jobs by id (`Session::delete_jobs`, event version 6):
//! the jobs leave every view at once, a refusal of any id changes nothing,
//! compaction really removes their bytes, and a reopened store (checkpoint
//! and full replay) agrees; a replay as of before the deletion still has
//! them.

mod support;

use std::sync::Arc;

use joblog::domain::{
    Clock, Depth, DomainError, Job, ManualClock, OperationType, Privilege, Role, Status, MAX_DELETE_IDS,
};
use joblog::engine::{Config, Engine, NewJob};
use joblog::log::LogConfig;
use joblog::projection::query::{Filter, Visibility};
use joblog::Error;
use support::t;
use uuid::Uuid;

fn config() -> Config {
    Config {
        log: LogConfig { segment_size_bytes: 256 << 10, ..LogConfig::default() },
        checkpoint_every_events: 0,
        cold_after: 1,
        ..Config::default()
    }
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Engine {
    Engine::open(dir, config(), clock.clone()).unwrap()
}

/// A Completed job owned by `owner` of `unit`.
fn done(status: Status, owner: &str, unit: &str, n: i64) -> Job {
    let at = t("2026-01-01T00:00:00Z").plus_micros(n * 1_000_000);
    let mut j = Job::new(&format!("done {n}"), OperationType::WORKFLOW, owner, unit, at);
    j.status = status;
    j.startedon = Some(at);
    j.completedon = Some(at.plus_micros(1_000));
    j.modifiedon = at.plus_micros(1_000);
    j.data = vec![7; 500];
    j
}

fn ids_of(engine: &Engine) -> Vec<Uuid> {
    let state = engine.state();
    let (jobs, _) = state.query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).unwrap();
    let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    ids.sort();
    ids
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Domain(DomainError::NotFound { .. }) => "not found",
        Error::Domain(DomainError::Denied { .. }) => "denied",
        Error::Domain(DomainError::NotDeletable { .. }) => "not deletable",
        Error::Domain(DomainError::Invalid { .. }) => "invalid",
        _ => "other",
    }
}

#[test]
fn chosen_jobs_leave_every_view_and_compaction_removes_their_bytes_and_reopens_agree() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-02-01T00:00:00Z")));
    let engine = open(dir.path(), &clock);
    let admin = engine.session("admin").unwrap();
    let jobs: Vec<Job> = (0..400).map(|n| done(Status::SUCCEEDED, "admin", "root", n)).collect();
    admin.import(jobs.clone()).unwrap();
    // A live job that completes through its own events (several per job).
    let live = admin.create(NewJob::new("live", OperationType::BULK_EMAIL)).unwrap();
    admin.act(live.id, joblog::UserAction::Cancel).unwrap();
    engine.checkpoint().unwrap();
    engine.seal().unwrap();
    clock.advance_secs(60);
    let before_deletion = clock.now();
    clock.advance_secs(60);

    // 300 imported jobs and the live one, named with repeats: each goes once.
    let mut chosen: Vec<Uuid> = jobs[..300].iter().map(|j| j.id).collect();
    chosen.push(live.id);
    let mut asked = chosen.clone();
    asked.push(jobs[0].id);
    asked.push(live.id);
    let deleted = admin.delete_jobs(&asked).unwrap();
    assert_eq!(deleted, chosen, "each id once, in the order asked");

    // Gone from every view and count, at once.
    let state = engine.state();
    assert_eq!(state.job_count(), 100);
    drop(state);
    assert!(matches!(admin.get(live.id), Err(Error::Domain(DomainError::NotFound { .. }))));
    assert!(matches!(admin.history(jobs[5].id), Err(Error::Domain(DomainError::NotFound { .. }))));
    assert_eq!(admin.count(&Filter::default()).unwrap(), 100);
    let (listed, _) = admin.list(&Filter::default(), None, usize::MAX).unwrap();
    assert!(listed.iter().all(|j| !chosen.contains(&j.id)));
    assert!(engine.state().check_indices().is_empty());
    // The audit trail: who deleted which, when.
    let trail = engine.state().deletions_by_id().to_vec();
    assert_eq!(trail.len(), 1);
    assert_eq!((trail[0].actor.to_string(), trail[0].ids.clone()), ("admin".to_string(), chosen.clone()));
    // Deleted again: not found, and nothing written.
    let seq = engine.next_seq();
    assert_eq!(kind(&admin.delete_jobs(&[live.id]).unwrap_err()), "not found");
    assert_eq!(engine.next_seq(), seq);

    // As of before the deletion the jobs are still there (the log still
    // holds their events).
    let past = engine.replay_until(before_deletion).unwrap();
    assert_eq!(past.count(&Filter::default(), &Visibility::All).unwrap(), 401);
    assert!(past.job(live.id).is_ok());
    drop(past);

    // Reopened before compaction (replay of the tail after the checkpoint):
    // the same jobs, and the same garbage to compact.
    let want = ids_of(&engine);
    let garbage: usize = engine.state().garbage().values().map(Vec::len).sum();
    assert_eq!(garbage, 300 + 2, "one event per imported job, two for the live one");
    drop(admin);
    drop(engine);
    let engine = open(dir.path(), &clock);
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(ids_of(&engine), want);
    assert_eq!(engine.state().garbage().values().map(Vec::len).sum::<usize>(), garbage);

    // Compaction removes exactly those events, and their bytes.
    let segments = dir.path().join("segments");
    let bytes_before = support::dir_bytes(&segments);
    let c = engine.session("admin").unwrap().compact().unwrap();
    assert_eq!(c.frames_dropped, garbage as u64);
    let bytes_after = support::dir_bytes(&segments);
    assert!(bytes_before - bytes_after > 300 * 500, "{bytes_before} → {bytes_after}");
    assert!(engine.state().garbage().is_empty());
    assert!(engine.verify_log().unwrap().ok());
    let replayed = engine.replay_until(clock.now()).unwrap();
    let (jobs_now, _) = replayed.query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).unwrap();
    assert_eq!(jobs_now.len(), 100);
    drop(replayed);

    // Checkpoint and reopen; then a full replay with no checkpoint: the
    // deletion event's ids are no longer in the log, and are skipped.
    engine.close().unwrap();
    let engine = open(dir.path(), &clock);
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(ids_of(&engine), want);
    assert_eq!(engine.state().deletions_by_id().len(), 1);
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.open_report().checkpoint_seq, None);
    assert_eq!(ids_of(&engine), want);
    assert!(engine.state().garbage().is_empty());
    assert_eq!(engine.state().deletions_by_id().to_vec(), trail);
    assert!(engine.verify().ok(), "the projection agrees with a fresh replay");
    // The freed slots are reused by new jobs without harm.
    let admin = engine.session("admin").unwrap();
    admin.create(NewJob::new("after", OperationType::BULK_EMAIL)).unwrap();
    assert_eq!(engine.state().job_count(), 101);
    assert!(engine.state().check_indices().is_empty());
}

#[test]
fn a_refused_id_refuses_the_batch_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-02-01T00:00:00Z")));
    let engine = open(dir.path(), &clock);
    let admin = engine.session("admin").unwrap();
    admin.add_business_unit("sales", "root").unwrap();
    admin.add_business_unit("ops", "root").unwrap();
    admin
        .add_role(Role::new("deleter", [(Privilege::Read, Depth::BusinessUnit), (Privilege::Delete, Depth::User)]))
        .unwrap();
    admin.add_user("alice", "sales", &["basic-user"]).unwrap();
    admin.add_user("dora", "sales", &["deleter"]).unwrap();
    admin.add_user("olga", "ops", &["basic-user"]).unwrap();
    let alices = done(Status::FAILED, "alice", "sales", 1);
    let doras = done(Status::CANCELED, "dora", "sales", 2);
    let olgas = done(Status::SUCCEEDED, "olga", "ops", 3);
    admin.import(vec![alices.clone(), doras.clone(), olgas.clone()]).unwrap();
    let ready = engine.session("dora").unwrap().create(NewJob::new("ready", OperationType::BULK_EMAIL));
    // Dora has no Create: the administrator makes her a Ready job.
    assert!(ready.is_err());
    let mut spec = NewJob::new("ready", OperationType::BULK_EMAIL);
    spec.owner = Some("dora".into());
    let ready = admin.create(spec).unwrap();

    let dora = engine.session("dora").unwrap();
    let alice = engine.session("alice").unwrap();
    let before = (engine.next_seq(), engine.disk_bytes(), ids_of(&engine));
    let unknown = Uuid::from_u128(42);
    let cases: Vec<(&str, Error)> = vec![
        // Alice reads her own job but has no Delete at all.
        ("denied", alice.delete_jobs(&[alices.id]).unwrap_err()),
        // Dora reads Alice's (same business unit) but deletes only her own.
        ("denied", dora.delete_jobs(&[doras.id, alices.id]).unwrap_err()),
        // Olga's job is in another business unit: Dora cannot read it.
        ("not found", dora.delete_jobs(&[doras.id, olgas.id]).unwrap_err()),
        ("not found", dora.delete_jobs(&[doras.id, unknown]).unwrap_err()),
        ("not deletable", dora.delete_jobs(&[doras.id, ready.id]).unwrap_err()),
        ("not deletable", admin.delete_jobs(&[ready.id]).unwrap_err()),
        ("invalid", admin.delete_jobs(&[]).unwrap_err()),
        ("invalid", admin.delete_jobs(&vec![doras.id; MAX_DELETE_IDS + 1]).unwrap_err()),
        ("invalid", admin.delete_jobs(&(0..10_001).map(Uuid::from_u128).collect::<Vec<_>>()).unwrap_err()),
    ];
    for (want, e) in &cases {
        assert_eq!(kind(e), *want, "{e}");
    }
    // The messages name the job and what is needed.
    assert!(cases[4].1.to_string().contains(&ready.id.to_string()), "{}", cases[4].1);
    assert!(cases[4].1.to_string().contains("Completed"), "{}", cases[4].1);
    assert!(cases[2].1.to_string().contains(&olgas.id.to_string()), "{}", cases[2].1);
    assert_eq!((engine.next_seq(), engine.disk_bytes(), ids_of(&engine)), before, "nothing changed");
    assert_eq!(engine.session("admin").unwrap().get(ready.id).unwrap().status, Status::READY);

    // Exactly 1,000 ids is allowed (here: one job named 1,000 times).
    assert_eq!(dora.delete_jobs(&vec![doras.id; MAX_DELETE_IDS]).unwrap(), vec![doras.id]);
    // The administrator deletes anyone's Completed job.
    assert_eq!(admin.delete_jobs(&[alices.id, olgas.id]).unwrap(), vec![alices.id, olgas.id]);
    assert_eq!(ids_of(&engine), vec![ready.id]);
}

#[test]
fn deleting_while_the_service_runs_jobs() {
    // The service completes jobs while a user deletes the completed ones:
    // each deletion is checked against the state it is written on.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-02-01T00:00:00Z")));
    let engine = open(dir.path(), &clock);
    let admin = engine.session("admin").unwrap();
    let jobs: Vec<Job> =
        (0..50).map(|n| admin.create(NewJob::new(&format!("j{n}"), OperationType::BULK_EMAIL)).unwrap()).collect();
    let worker = engine.worker("host-1");
    let mut deleted = 0;
    for (i, j) in jobs.iter().enumerate() {
        // Not yet run: refused, unchanged.
        assert_eq!(kind(&admin.delete_jobs(&[j.id]).unwrap_err()), "not deletable");
        worker.step(j.id, joblog::engine::ServiceStep::Lock).unwrap();
        assert_eq!(kind(&admin.delete_jobs(&[j.id]).unwrap_err()), "not deletable");
        worker.step(j.id, joblog::engine::ServiceStep::Succeed).unwrap();
        if i % 2 == 0 {
            admin.delete_jobs(&[j.id]).unwrap();
            deleted += 1;
            // The service's next step on a deleted job is refused as not found.
            let e = worker.step(j.id, joblog::engine::ServiceStep::Lock).unwrap_err();
            assert_eq!(kind(&e), "not found", "{e}");
        }
    }
    assert_eq!(engine.state().job_count(), 50 - deleted);
    assert!(engine.verify().ok());
}

/// A deletion event that contradicts the log (a job there that is not
/// Completed, an id named twice) is corruption at its place on replay;
/// an id no longer there (compacted away) is skipped.
#[test]
fn replay_refuses_a_deletion_that_contradicts_the_log() {
    use joblog::domain::{Actor, Envelope, Event, EVENT_VERSION};
    type Ids = fn(Uuid, Uuid) -> Vec<Uuid>;
    let cases: [(&str, Ids); 3] = [
        ("not completed", |_done, ready| vec![ready]),
        ("named twice", |done, _ready| vec![done, done]),
        ("unknown: skipped", |done, _ready| vec![Uuid::from_u128(5), done]),
    ];
    for (what, ids) in cases {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t("2026-02-01T00:00:00Z")));
        let engine = open(dir.path(), &clock);
        let admin = engine.session("admin").unwrap();
        let done = admin.create(NewJob::new("done", OperationType::BULK_EMAIL)).unwrap().id;
        admin.act(done, joblog::UserAction::Cancel).unwrap();
        let ready = admin.create(NewJob::new("ready", OperationType::BULK_EMAIL)).unwrap().id;
        drop(admin);
        drop(engine);
        let env = Envelope {
            version: EVENT_VERSION,
            at: t("2026-02-01T00:00:01Z"),
            actor: Actor::User("admin".into()),
            event: Event::JobsDeletedById { ids: ids(done, ready) },
        };
        let log = joblog::log::Log::open(dir.path().join("segments"), LogConfig::default()).unwrap();
        let payload = env.encode().unwrap();
        let at = log.append_batch(joblog::log::Batch::from_payloads([payload.as_slice()])).unwrap();
        log.close().unwrap();
        let _ = std::fs::remove_dir_all(dir.path().join("snapshots"));
        let reopened = Engine::open(dir.path(), config(), clock.clone());
        if what.starts_with("unknown") {
            let engine = reopened.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(ids_of(&engine), vec![ready], "{what}");
            continue;
        }
        match reopened {
            Err(e @ Error::Corrupt { .. }) => {
                let Error::Corrupt { seq, .. } = &e else { unreachable!() };
                assert_eq!(*seq, Some(at.seqs.start), "{what}: {e}");
            }
            Err(e) => panic!("{what}: not corruption: {e}"),
            Ok(_) => panic!("{what}: the store opened"),
        }
    }
}
