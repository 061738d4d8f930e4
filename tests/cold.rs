//! The cold tier (issue 16, `src/projection/tier.rs`): Completed jobs that
//! a checkpoint moves into cold runs read, list, count, change and delete
//! exactly as they did in memory, across a reopen, and `verify` agrees
//! with a replay of the log at every step.

use std::collections::{BTreeMap, BTreeSet};

use joblog::domain::{DeletionCriteria, Job, OperationType, Regarding, State, Status, StatusReason};
use joblog::engine::{Engine, Session};
use joblog::projection::query::{Cursor, Filter};
use uuid::Uuid;

mod support;

use support::{t, Fixture};

/// A job imported in `status`, created `n` minutes into 2026.
fn job(n: i64, status: Status, op: OperationType, workflow: Option<&str>, regarding: Option<&str>) -> Job {
    let created = t("2026-01-01T00:00:00Z").plus_micros(n * 60_000_000);
    let mut j = Job::new(&format!("job {n}"), op, "admin", "root", created);
    j.status = status;
    j.workflow = workflow.map(str::to_string);
    j.regarding = regarding.map(|r| Regarding::parse(r).unwrap());
    if status.state() == State::Locked || status.is_completed() {
        j.startedon = Some(created);
    }
    if status.is_completed() {
        // Completion order differs from creation order.
        j.completedon = Some(created.plus_micros(((n * 7919) % 500 + 1) * 60_000_000));
        j.modifiedon = j.completedon.unwrap();
        if status == Status::FAILED {
            j.errorcode = Some(-2147204346);
            j.message = Some(format!("failure {n}"));
        }
    }
    j
}

fn jobs() -> Vec<Job> {
    let statuses = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED, Status::SUCCEEDED, Status::READY];
    let ops = [OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType::WORKFLOW];
    (0..600i64)
        .map(|n| {
            let status = statuses[(n % 5) as usize];
            let op = ops[(n % 3) as usize];
            let workflow = (op == OperationType::WORKFLOW).then(|| ["w1", "w2"][(n % 2) as usize]);
            let regarding = (n % 4 == 0).then(|| format!("contact:{}", n % 7));
            job(n, status, op, workflow, regarding.as_deref())
        })
        .collect()
}

fn filters() -> Vec<Filter> {
    vec![
        Filter::default(),
        Filter { operationtype: Some(OperationType::BULK_EMAIL), ..Filter::default() },
        Filter { state: Some(State::Completed), ..Filter::default() },
        Filter { status_reason: Some(StatusReason::Failed), ..Filter::default() },
        Filter {
            operationtype: Some(OperationType::WORKFLOW),
            status_reason: Some(StatusReason::Succeeded),
            ..Filter::default()
        },
        Filter { state: Some(State::Ready), ..Filter::default() },
        Filter { workflow: Some("w1".into()), ..Filter::default() },
        Filter { regarding: Some(Regarding::parse("contact:3").unwrap()), ..Filter::default() },
        Filter { owner: Some("admin".into()), status_reason: Some(StatusReason::Canceled), ..Filter::default() },
        Filter { created_before: Some(t("2026-01-01T05:00:00Z")), ..Filter::default() },
        Filter { created_after: Some(t("2026-01-01T07:00:00Z")), ..Filter::default() },
        Filter { completed_before: Some(t("2026-01-01T06:00:00Z")), ..Filter::default() },
        Filter { workflow: Some("nowhere".into()), ..Filter::default() },
    ]
}

/// Everything a user can read: every view paged by 7 with its count,
/// every job with the length of its history.
type Reads = (Vec<(Vec<Uuid>, usize)>, BTreeMap<Uuid, (Job, usize)>);

fn everything(s: &Session) -> Reads {
    let mut views = Vec::new();
    for f in filters() {
        let mut ids = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let (page, next) = s.list(&f, after.as_ref(), 7).unwrap();
            ids.extend(page.iter().map(|j| j.id));
            match next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        views.push((ids, s.count(&f).unwrap()));
    }
    let mut jobs = BTreeMap::new();
    for id in views[0].0.clone() {
        jobs.insert(id, (s.get(id).unwrap(), s.history(id).unwrap().len()));
    }
    (views, jobs)
}

fn cold_rows(engine: &Engine) -> usize {
    engine.state().cold_runs().iter().map(|r| r.len()).sum()
}

/// `verify` passes, and every view lists and counts what a replay of the
/// log (every job in memory, no run) lists and counts.
fn assert_verified(engine: &Engine) {
    let report = engine.verify();
    assert!(report.ok(), "{:?}", report.problems);
    let live = engine.state();
    let fresh = engine.replay_until_seq(live.last_seq()).unwrap();
    for f in filters() {
        let all = joblog::projection::query::Visibility::All;
        assert_eq!(live.count(&f, &all).unwrap(), fresh.count(&f, &all).unwrap(), "count of {f:?}");
        let ids = |p: &joblog::projection::Projection| -> Vec<Uuid> {
            p.pages(&f, &all, 13).flat_map(Result::unwrap).collect()
        };
        assert_eq!(ids(&live), ids(&fresh), "pages of {f:?}");
    }
}

#[test]
fn completed_jobs_move_cold_and_read_the_same_through_changes_and_reopens() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let all = jobs();
    admin.import(all.clone()).unwrap();
    let before = everything(&admin);
    assert_eq!(before.0[0].0.len(), 600);

    // A checkpoint moves the 480 Completed jobs into cold runs, one per
    // System Job Type (160 Bulk Email, 320 Workflow).
    assert_eq!(f.engine.last_checkpoint_times(), None);
    let started = std::time::Instant::now();
    f.engine.checkpoint().unwrap();
    let took = started.elapsed();
    assert_eq!(f.engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [160, 320]);
    assert_eq!(cold_rows(&f.engine), 480);
    // Its phases, each measured: cold segments and runs were written, and
    // together they took no longer than the call.
    let p = f.engine.last_checkpoint_times().unwrap();
    let zero = std::time::Duration::ZERO;
    assert!(p.phases().len() == 6 && p.phases().iter().all(|(_, d)| *d > zero), "{p:?}");
    assert!(p.phases().iter().map(|(_, d)| *d).sum::<std::time::Duration>() <= took, "{p:?} in {took:?}");
    // Nothing left to move cold: no cold segment written or installed.
    f.engine.checkpoint().unwrap();
    let p = f.engine.last_checkpoint_times().unwrap();
    assert_eq!((p.freeze_write, p.freeze_install, p.phases().len()), (None, None, 4), "{p:?}");
    assert_eq!(everything(&admin), before, "the same reads, hot and cold");
    assert_verified(&f.engine);

    // More jobs, a second checkpoint: a second Workflow run (the first is
    // more than twice its size, so they do not merge).
    let more: Vec<Job> =
        (600..700).map(|n| job(n, Status::FAILED, OperationType::WORKFLOW, Some("w1"), None)).collect();
    admin.import(more).unwrap();
    f.engine.checkpoint().unwrap();
    assert_eq!(f.engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [160, 320, 100]);
    let before = everything(&admin);
    assert_verified(&f.engine);

    // Reopened: the runs are read in place, nothing is replayed.
    drop(admin);
    let f = f.close_and_reopen();
    assert_eq!(f.engine.open_report().events_replayed, 0);
    assert_eq!(cold_rows(&f.engine), 580);
    let admin = f.engine.session("admin").unwrap();
    assert_eq!(everything(&admin), before, "the same reads after a reopen");

    // A change to a cold job (a resubmission line) brings its run back
    // into memory; the reads follow.
    let failed = all.iter().find(|j| j.status == Status::FAILED).unwrap().id;
    let new = admin.resubmit(failed, None).unwrap();
    assert_eq!(cold_rows(&f.engine), 420, "its run (Bulk Email) was thawed, the others stay");
    assert_eq!(admin.history(failed).unwrap().len(), before.1[&failed].1 + 1);
    assert_eq!(admin.get(new.id).unwrap().status, Status::READY);
    assert_verified(&f.engine);

    // Frozen again (a run of its type again), then jobs deleted by id and
    // by criteria, from the cold runs: the counts, the reads and a replay
    // agree.
    f.engine.checkpoint().unwrap();
    // (The resubmitted job stays hot: its creation is in a cold segment,
    // its resubmission line in a hot one.)
    assert_eq!(f.engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [320, 100, 159]);
    let chosen: Vec<Uuid> = all.iter().filter(|j| j.status == Status::CANCELED).take(10).map(|j| j.id).collect();
    assert_eq!(admin.delete_jobs(&chosen).unwrap().len(), 10);
    for id in &chosen {
        assert!(admin.get(*id).is_err());
    }
    assert_verified(&f.engine);
    // Deleted from a run that stays: kept as such across a reopen.
    let then = everything(&admin);
    drop(admin);
    let f = f.close_and_reopen();
    let admin = f.engine.session("admin").unwrap();
    assert_eq!(everything(&admin), then, "rows deleted from a run stay deleted after a reopen");
    assert_verified(&f.engine);
    f.engine.checkpoint().unwrap();
    let completed = Filter { state: Some(State::Completed), ..Filter::default() };
    let done_before = admin.count(&completed).unwrap();
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded, StatusReason::Failed],
        older_than_days: 1,
    };
    let report = admin.delete_now(&criteria, 50).unwrap();
    assert_eq!(report.deleted, 50);
    assert_eq!(admin.count(&completed).unwrap(), done_before - 50);
    assert_verified(&f.engine);
    let rest = admin.delete_now(&criteria, 1_000_000).unwrap();
    assert!(rest.deleted > 0);
    let workflow_done = Filter {
        operationtype: Some(OperationType::WORKFLOW),
        status_reason: Some(StatusReason::Succeeded),
        ..Filter::default()
    };
    assert_eq!(admin.count(&workflow_done).unwrap(), 0);
    assert_eq!(admin.list(&workflow_done, None, 10).unwrap().0.len(), 0);
    assert_verified(&f.engine);
    let after = everything(&admin);
    drop(admin);
    let f = f.close_and_reopen();
    let admin = f.engine.session("admin").unwrap();
    assert_eq!(everything(&admin), after, "the same reads after deletions and a reopen");
    assert_verified(&f.engine);
}

/// Runs whose jobs were created over the same stretch of time (jobs end
/// in another order than they began, and each checkpoint freezes those
/// that ended since): every view merges them, newest first, with the hot
/// jobs, page by page, as a replay of the log lists them, whichever run a
/// page starts in. A view opens a run only once its newest job could come
/// next; these runs all could.
#[test]
fn runs_whose_jobs_were_created_in_the_same_stretch_merge_in_every_view() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let open: Vec<Job> = jobs().into_iter().filter(|j| j.status == Status::READY).collect();
    let all: Vec<Job> = (0..600i64)
        .map(|n| {
            let mut j = open[(n % open.len() as i64) as usize].clone();
            j.id = Uuid::from_u128(0x7000 + n as u128);
            j.name = format!("job {n}");
            j.createdon = t("2026-01-01T00:00:00Z").plus_micros(n * 60_000_000);
            j.modifiedon = j.createdon;
            // Half of each round of every type (a run holds one type).
            j.operationtype = [OperationType::WORKFLOW, OperationType::BULK_EMAIL][(n / 12 % 2) as usize];
            j.workflow =
                (j.operationtype == OperationType::WORKFLOW).then(|| ["w1", "w2"][(n % 4 / 2) as usize].into());
            j
        })
        .collect();
    admin.import(all.clone()).unwrap();
    // Three rounds: some of the jobs, from all over the stretch, end
    // (canceled), then a checkpoint freezes the ones that ended into runs
    // of their own, one per System Job Type (each less than half the one
    // before, so none merge).
    for round in [0..8, 8..11, 11..12] {
        for (n, j) in all.iter().enumerate().filter(|(n, _)| round.contains(&(n % 12))) {
            assert_eq!(j.name, format!("job {n}"));
            admin.act(j.id, joblog::engine::UserAction::Cancel).unwrap();
        }
        f.engine.checkpoint().unwrap();
    }
    assert_eq!(f.engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [200, 200, 75, 75, 25, 25]);
    // A few open ones again, hot among the cold.
    let more: Vec<Job> = (600..620i64)
        .map(|n| {
            let mut j = all[0].clone();
            j.id = Uuid::from_u128(0x7000 + n as u128);
            j.createdon = t("2026-01-01T00:00:00Z").plus_micros((n - 600) * 1_800_000_000 + 30_000_000);
            j.modifiedon = j.createdon;
            j
        })
        .collect();
    admin.import(more).unwrap();
    assert_verified(&f.engine);
    let filters = [
        Filter::default(),
        Filter { workflow: Some("w2".into()), ..Filter::default() },
        Filter { operationtype: Some(OperationType::BULK_EMAIL), state: Some(State::Completed), ..Filter::default() },
        Filter { created_before: Some(t("2026-01-01T04:00:00Z")), ..Filter::default() },
    ];
    assert_pages_as_replayed(&f.engine, &filters);
}

/// Every filter of `filters`, listed by pages of 1, 7 and 50, gives the
/// jobs a replay of the log gives, in its order.
fn assert_pages_as_replayed(engine: &joblog::Engine, filters: &[Filter]) {
    let admin = engine.session("admin").unwrap();
    let fresh = engine.replay_until_seq(engine.state().last_seq()).unwrap();
    let all_vis = joblog::projection::query::Visibility::All;
    for filter in filters {
        let expected: Vec<Uuid> = fresh.pages(filter, &all_vis, 1000).flat_map(Result::unwrap).collect();
        for size in [1, 7, 50] {
            let mut listed = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let (page, next) = admin.list(filter, after.as_ref(), size).unwrap();
                listed.extend(page.iter().map(|j| j.id));
                match next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            assert_eq!(listed, expected, "{filter:?} by pages of {size}");
        }
    }
}

/// Runs of jobs created one stretch after another, as a store's
/// checkpoints make them: a view below a cursor, or with a creation bound
/// that falls exactly on a run's first or last job, skips the runs that
/// cannot hold a row of it, and no other.
#[test]
fn runs_of_successive_stretches_are_skipped_only_when_nothing_in_them_can_come() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let open: Vec<Job> = jobs().into_iter().filter(|j| j.status == Status::READY).collect();
    let at = |n: i64| t("2026-01-01T00:00:00Z").plus_micros(n * 60_000_000);
    // Three stretches, each ended and frozen before the next is created,
    // each less than half the one before (so none merge): two runs each,
    // one per System Job Type.
    for stretch in [0..400, 400..550, 550..600i64] {
        let batch: Vec<Job> = stretch
            .map(|n| {
                let mut j = open[(n % open.len() as i64) as usize].clone();
                j.id = Uuid::from_u128(0x9000 + n as u128);
                j.createdon = at(n);
                j.modifiedon = j.createdon;
                j.operationtype = [OperationType::WORKFLOW, OperationType::BULK_EMAIL][(n % 2) as usize];
                j.workflow = (j.operationtype == OperationType::WORKFLOW).then(|| "w1".into());
                j
            })
            .collect();
        admin.import(batch.clone()).unwrap();
        for j in &batch {
            admin.act(j.id, joblog::engine::UserAction::Cancel).unwrap();
        }
        f.engine.checkpoint().unwrap();
    }
    assert_eq!(f.engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [200, 200, 75, 75, 25, 25]);
    assert_verified(&f.engine);
    let mut filters = vec![Filter::default(), Filter { workflow: Some("w1".into()), ..Filter::default() }];
    // Bounds on the first and last job of each stretch, and between.
    for n in [0, 1, 399, 400, 401, 500, 549, 550, 599, 600] {
        filters.push(Filter { created_before: Some(at(n)), ..Filter::default() });
        filters.push(Filter { created_after: Some(at(n)), ..Filter::default() });
        filters.push(Filter { created_after: Some(at(n)), created_before: Some(at(n + 101)), ..Filter::default() });
    }
    assert_pages_as_replayed(&f.engine, &filters);
}

#[test]
fn a_damaged_cold_run_is_an_error_where_it_is_read_and_the_log_rebuilds_the_state() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.import(jobs()).unwrap();
    let before = everything(&admin);
    f.engine.checkpoint().unwrap();
    let run = f.engine.state().cold_runs()[0].path().to_path_buf();
    drop(admin);
    // A flipped byte in the rows of the run.
    let f = f.reopen_after(|_| {
        let mut bytes = std::fs::read(&run).unwrap();
        bytes[200] ^= 0x01;
        std::fs::write(&run, &bytes).unwrap();
    });
    let admin = f.engine.session("admin").unwrap();
    // Opening reads only the run's header and checksums: a read that
    // touches the damaged page fails, none answers wrong.
    let mut failed = 0;
    for (id, (job, _)) in &before.1 {
        match admin.get(*id) {
            Ok(j) => assert_eq!(&j, job),
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "no read touched the damaged page");
    assert!(!f.engine.verify().ok(), "verify finds the damage");
    drop(admin);
    // A flipped byte in the page checksums (read by no open, and here by
    // no read either): `verify` finds it.
    let f = f.reopen_after(|_| {
        let mut bytes = std::fs::read(&run).unwrap();
        bytes[200] ^= 0x01; // the rows as they were
        let trailer = bytes.len() - 24;
        let data_end = u64::from_le_bytes(bytes[trailer..trailer + 8].try_into().unwrap()) as usize;
        // The checksum of the run's third page (its rows).
        bytes[data_end + 2 * 4] ^= 0x01;
        std::fs::write(&run, &bytes).unwrap();
    });
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "the open reads neither the page nor its checksum");
    let report = f.engine.verify();
    assert!(report.problems.iter().any(|p| p.contains("page checksums do not match")), "{:?}", report.problems);
    // Without the run (a cache), the checkpoint is skipped and the log
    // rebuilds every job.
    let f = f.reopen_after(|_| std::fs::remove_file(&run).unwrap());
    assert!(f.engine.open_report().checkpoint_seq.is_none());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), before);
}

#[test]
fn a_deletion_that_takes_a_whole_run_drops_it_and_its_file() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    // A run of jobs that one deletion takes whole, and a run it leaves.
    let old: Vec<Job> =
        (0..200).map(|n| job(n, Status::SUCCEEDED, OperationType::WORKFLOW, Some("w1"), None)).collect();
    admin.import(old).unwrap();
    f.engine.checkpoint().unwrap();
    let kept: Vec<Job> =
        (200..260).map(|n| job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, Some("contact:1"))).collect();
    admin.import(kept.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    let runs = |e: &Engine| e.state().cold_runs().iter().map(|r| (r.id(), r.len())).collect::<Vec<_>>();
    let before = runs(&f.engine);
    assert_eq!(before.iter().map(|r| r.1).collect::<Vec<_>>(), [200, 60]);
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded],
        older_than_days: 1,
    };
    let report = admin.delete_now(&criteria, 1_000_000).unwrap();
    assert_eq!(report.deleted, 200);
    // The whole run went, without coming back into memory; the other
    // stays cold (rewritten if the compaction moved its events).
    let after = runs(&f.engine);
    assert_eq!(after.iter().map(|r| r.1).collect::<Vec<_>>(), [60]);
    // The dropped run's file is gone at once; until the next checkpoint an
    // empty run stands in for it, for the checkpoint that names it.
    let files = run_files_of(f.path());
    let dropped = before[0].0;
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0], (after[0].0, None, 60));
    assert_eq!((files[1].1, files[1].2), (Some(dropped), 0), "{files:?}");
    assert_eq!(admin.count(&Filter::default()).unwrap(), 60);
    for j in &kept {
        assert_eq!(admin.get(j.id).unwrap().id, j.id);
    }
    assert_verified(&f.engine);
    drop(admin);
    let f = f.close_and_reopen();
    assert_eq!(runs(&f.engine), after);
    assert_verified(&f.engine);
}

/// Many rows deleted from a run (its marks more than 4 KiB in the
/// checkpoint): the checkpoint after it keeps naming the run, and the
/// store reopens from it.
#[test]
fn a_run_with_many_deleted_rows_stays_named_by_its_checkpoint() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let jobs: Vec<Job> = (0..4000).map(|n| job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, None)).collect();
    admin.import(jobs.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    let chosen: Vec<Uuid> = jobs.iter().step_by(2).map(|j| j.id).collect();
    for part in chosen.chunks(1000) {
        assert_eq!(admin.delete_jobs(part).unwrap().len(), 1000);
    }
    // Two checkpoints: both kept ones carry the marks.
    f.engine.checkpoint().unwrap();
    f.engine.checkpoint().unwrap();
    let run = f.engine.state().cold_runs()[0].path().to_path_buf();
    assert!(run.exists(), "the run the checkpoint names is still there");
    let before = everything(&admin);
    drop(admin);
    let f = f.close_and_reopen();
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "{:?}", f.engine.open_report());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), before);
    assert_verified(&f.engine);
}

/// For a store on a small disk: 1 MiB segments, every checkpoint (only
/// those asked for) moving the Completed jobs cold.
fn small_disk_config() -> joblog::engine::Config {
    joblog::engine::Config {
        log: joblog::log::LogConfig { segment_size_bytes: 1 << 20, ..joblog::engine::Config::default().log },
        cold_after: 1,
        checkpoint_every_events: 0,
        ..joblog::engine::Config::default()
    }
}

/// A full disk while a checkpoint writes a cold run: the checkpoint fails
/// with an error, nothing is left behind (no run, no temporary file), every
/// read is what it was, and once there is room the next checkpoint moves
/// the jobs cold and a reopen reads the same.
#[test]
fn a_full_disk_while_writing_a_run_changes_nothing() {
    let Some(disk) = support::SmallDisk::mount("8m") else { return };
    let clock = support::clock_at(support::NOW);
    let config = small_disk_config();
    let dir = disk.path().join("store");
    let engine = Engine::open(&dir, config.clone(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.import(jobs()).unwrap();
    let before = everything(&admin);
    let snapshots = || -> Vec<String> {
        std::fs::read_dir(dir.join("snapshots"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let files_before = snapshots();

    let filler = support::fill_disk(disk.path(), 16 << 10);
    let err = engine.checkpoint().unwrap_err().to_string();
    assert!(err.contains("No space left"), "the freeze's or the run's write fails (480 jobs do not fit): {err}");
    assert_eq!(cold_rows(&engine), 0);
    assert_eq!(snapshots(), files_before, "no run and no temporary file left");
    assert_eq!(everything(&admin), before);

    std::fs::remove_file(filler).unwrap();
    engine.checkpoint().unwrap();
    assert_eq!(cold_rows(&engine), 480);
    assert_eq!(everything(&admin), before);
    assert_verified(&engine);
    drop(admin);
    engine.close().unwrap();
    let engine = Engine::open(&dir, config, clock).unwrap();
    assert_eq!(engine.open_report().events_replayed, 0);
    assert_eq!(everything(&engine.session("admin").unwrap()), before);
}

/// After a compaction on a disk that had `leave` bytes of room: the store
/// verifies, closes leaving no temporary file (while open, the log may
/// hold the next segment prepared ahead, `next-segment.tmp`), and reopens
/// to read `expected`; then it is removed.
fn verified_and_reopened(
    engine: Engine,
    dir: &std::path::Path,
    config: &joblog::engine::Config,
    clock: &std::sync::Arc<joblog::domain::ManualClock>,
    expected: &Reads,
    leave: u64,
) {
    assert_verified(&engine);
    engine.close().unwrap();
    for sub in ["snapshots", "segments"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{leave} bytes of room: {sub}/{name} left");
        }
    }
    let engine = Engine::open(dir, config.clone(), clock.clone()).unwrap();
    assert_eq!(&everything(&engine.session("admin").unwrap()), expected, "{leave} bytes of room, reopened");
    drop(engine);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A full disk while a compaction rewrites segments and copies the run
/// whose jobs' events it moved (`cold::copy_run`), at every amount of room
/// from none to enough: the deletion stays, every read is what it was
/// after it, the store verifies, no temporary file is left, and a reopen
/// reads the same. (Where the new segments fit, so does the run's copy
/// here: the old segments are unlinked before it is written. The thaw a
/// failed copy falls back to is not reached by this sweep.)
#[test]
fn a_full_disk_while_a_compaction_copies_a_run_loses_nothing() {
    let Some(disk) = support::SmallDisk::mount("8m") else { return };
    let clock = support::clock_at(support::NOW);
    let config = small_disk_config();
    let mut outcomes = Vec::new();
    let rooms = [0u64, 32 << 10].into_iter().chain((64..=100).step_by(4).map(|k| k << 10)).chain([1 << 20]);
    for leave in rooms {
        let dir = disk.path().join(format!("store-{leave}"));
        let engine = Engine::open(&dir, config.clone(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        let all = jobs();
        admin.import(all.clone()).unwrap();
        engine.checkpoint().unwrap();
        assert_eq!(cold_rows(&engine), 480);
        let taken: Vec<Uuid> = all.iter().filter(|j| j.status.is_completed()).step_by(3).map(|j| j.id).collect();
        admin.delete_jobs(&taken).unwrap();
        let expected = everything(&admin);

        let filler = support::fill_disk(disk.path(), leave);
        let compacted = engine.compact();
        std::fs::remove_file(filler).unwrap();
        outcomes.push((leave, compacted.is_ok(), cold_rows(&engine)));
        assert_eq!(everything(&admin), expected, "{leave} bytes of room: {compacted:?}");
        drop(admin);
        verified_and_reopened(engine, &dir, &config, &clock, &expected, leave);
    }
    eprintln!("(room, compacted, cold rows after): {outcomes:?}");
    // The sweep reaches both outcomes: too little room (refused, the
    // garbage kept for the next compaction), and enough (the run copied
    // without the 160 deleted rows).
    assert!(outcomes.iter().any(|o| !o.1 && o.2 == 480), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1 && o.2 == 320), "{outcomes:?}");
}

/// A full disk while a compaction copies two runs at once (one per core):
/// at every amount of room, either both copies are in place or neither is
/// (a copy that was written while the other failed is removed, and both
/// runs come back into memory), every read is what it was, the store
/// verifies and a reopen reads the same (the case of one copy written
/// and the other failing is reached on two cores: without the removal of
/// the written copy, a stray run file is left). Small segments, and a
/// deletion of one job of each run: the compaction (all of the garbage,
/// `Engine::compact`) rewrites the two cold segments the checkpoints froze
/// the runs' events into, which frees little, so the room it leaves can be
/// too little for the copies of the two runs.
#[test]
fn a_full_disk_while_a_compaction_copies_two_runs_leaves_neither_copy_behind() {
    let Some(disk) = support::SmallDisk::mount("8m") else { return };
    let clock = support::clock_at(support::NOW);
    let config = joblog::engine::Config {
        log: joblog::log::LogConfig { segment_size_bytes: 128 << 10, ..small_disk_config().log },
        ..small_disk_config()
    };
    let run_files = |dir: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(dir.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".run"))
            .collect()
    };
    let held = |e: &Engine| -> BTreeSet<String> {
        e.state().cold_runs().iter().map(|r| joblog::projection::cold::file_name(r.id())).collect()
    };
    let mut outcomes = Vec::new();
    for leave in (0..=400).step_by(8).map(|k| k << 10) {
        let dir = disk.path().join(format!("store-{leave}"));
        let engine = Engine::open(&dir, config.clone(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        // Two runs (the second too small to merge with the first), each
        // job regarding a row of its own with a long name: a run's strings
        // are copied whole.
        let regarding = |n: i64| format!("contact:{n:0>240}");
        let jobs = |ns: std::ops::Range<i64>| -> Vec<Job> {
            ns.map(|n| job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, Some(&regarding(n)))).collect()
        };
        let all = jobs(0..400);
        for batch in all.chunks(100) {
            admin.import(batch.to_vec()).unwrap();
        }
        engine.checkpoint().unwrap();
        let more = jobs(400..500);
        admin.import(more.clone()).unwrap();
        engine.checkpoint().unwrap();
        assert_eq!(engine.state().cold_runs().iter().map(|r| r.len()).collect::<Vec<_>>(), [400, 100]);
        admin.delete_jobs(&[all[all.len() - 1].id, more[0].id]).unwrap();
        let expected = everything(&admin);
        let files_before = run_files(&dir);

        let filler = support::fill_disk(disk.path(), leave);
        let compacted = engine.compact();
        std::fs::remove_file(filler).unwrap();
        let runs_after: Vec<usize> = engine.state().cold_runs().iter().map(|r| r.len()).collect();
        let rewritten = compacted.as_ref().map_or(0, |c| c.segments.len());
        outcomes.push((leave >> 10, rewritten, runs_after.clone()));
        assert_eq!(everything(&admin), expected, "{leave} bytes of room: {compacted:?}");
        // Both copied, or neither (both thawed, or the compaction refused).
        assert!([vec![399, 99], vec![], vec![400, 100]].contains(&runs_after), "{leave} bytes of room: {runs_after:?}");
        let allowed: BTreeSet<String> = files_before.union(&held(&engine)).cloned().collect();
        let files = run_files(&dir);
        assert!(files.is_subset(&allowed), "{leave} bytes of room: {files:?} beyond {allowed:?}");
        drop(admin);
        verified_and_reopened(engine, &dir, &config, &clock, &expected, leave);
    }
    eprintln!("(KiB of room, segments rewritten, cold runs after): {outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1 == 2 && o.2.is_empty()), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1 == 2 && o.2 == [399, 99]), "{outcomes:?}");
}

/// A checkpoint that moves more jobs of one System Job Type than a run
/// holds (`Config::cold_run_rows`) writes their runs side by side (one a
/// core). On a full disk, at every amount of room from none to enough, it
/// installs every run or none (a run written while another failed is
/// removed: no run file is left that the state does not hold), every read
/// is what it was, the store verifies and a reopen reads the same.
#[test]
fn a_checkpoint_writes_a_types_runs_side_by_side_all_or_none() {
    let Some(disk) = support::SmallDisk::mount("8m") else { return };
    let clock = support::clock_at(support::NOW);
    let config = joblog::engine::Config { cold_run_rows: 100, ..small_disk_config() };
    let run_files = |dir: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(dir.join("snapshots"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".run") || n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let held = |e: &Engine| -> BTreeSet<String> {
        e.state().cold_runs().iter().map(|r| joblog::projection::cold::file_name(r.id())).collect()
    };
    // Each job regarding a row of its own with a long name: a run's
    // strings are written whole, so each run takes room of its own.
    let regarding = |n: i64| format!("contact:{n:0>240}");
    let all: Vec<Job> =
        (0..400).map(|n| job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, Some(&regarding(n)))).collect();
    let mut outcomes = Vec::new();
    // Finer steps where the runs are written (160 to 200 KiB of room).
    let rooms: BTreeSet<u64> = (0..=320).step_by(16).chain((160..200).step_by(2)).collect();
    for leave in rooms.into_iter().map(|k| k << 10) {
        let dir = disk.path().join(format!("store-{leave}"));
        let engine = Engine::open(&dir, config.clone(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        for batch in all.chunks(100) {
            admin.import(batch.to_vec()).unwrap();
        }
        let expected = everything(&admin);

        let filler = support::fill_disk(disk.path(), leave);
        let done = engine.checkpoint();
        std::fs::remove_file(filler).unwrap();
        let runs: Vec<usize> = engine.state().cold_runs().iter().map(|r| r.len()).collect();
        let failed_at =
            done.as_ref().err().map(|e| e.to_string().split('/').next_back().unwrap_or_default().to_string());
        outcomes.push((leave >> 10, failed_at.clone(), runs.clone()));
        assert_eq!(everything(&admin), expected, "{leave} bytes of room: {done:?}");
        if let Err(e) = &done {
            assert!(e.to_string().contains("No space left"), "{leave} bytes of room: {e}");
        }
        assert!(runs.is_empty() || runs == [100; 4], "{leave} bytes of room: runs of {runs:?}");
        assert!(done.is_err() || runs == [100; 4], "{leave} bytes of room: runs of {runs:?}");
        // Every run the state holds, and on success the image of the hot
        // rows the checkpoint names (unless it could not be written).
        let (files, held) = (run_files(&dir), held(&engine));
        let image = usize::from(done.is_ok());
        assert!(
            held.is_subset(&files) && files.len() <= held.len() + image,
            "{leave} bytes of room: {files:?} left, the state holds {held:?}"
        );
        drop(admin);
        assert_verified(&engine);
        // A manifest that could not be stored leaves the log refusing
        // writes until it is reopened (which manifest is on disk is known
        // only then): the close's checkpoint is refused so.
        match engine.close() {
            Ok(()) => {}
            Err(joblog::Error::Log(joblog::log::LogError::Poisoned(_))) if failed_at.is_some() => {}
            Err(e) => panic!("{leave} bytes of room: close: {e}"),
        }
        let engine = Engine::open(&dir, config.clone(), clock.clone()).unwrap();
        assert_eq!(everything(&engine.session("admin").unwrap()), expected, "{leave} bytes of room, reopened");
        assert_verified(&engine);
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("(KiB of room, where the checkpoint failed, cold runs after): {outcomes:?}");
    let failed_at = |file: &str| outcomes.iter().any(|o| o.1.as_deref().is_some_and(|f| f.starts_with(file)));
    // The roll that seals the active segment before the freeze could not
    // create the next one: the freeze at close then moved every frame
    // of the store into a cold segment, leaving no hot segment, and the
    // reopen must go on after them (it once started over at 1 and read
    // an empty store).
    assert!(failed_at("next-segment.tmp"), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1.as_deref().is_some_and(|f| f.contains(".run.tmp"))), "{outcomes:?}");
    assert!(outcomes.iter().any(|o| o.1.is_none()), "{outcomes:?}");
}

/// Letting go of the mapped pages of the log and of the runs (what the
/// benchmark does before each page it reads cold) changes nothing: the
/// same reads, hot and cold, and the log's writer writes on through its
/// released map; what it wrote is read back, and after a reopen too.
#[test]
fn released_mapped_pages_read_the_same_and_writes_go_on() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.import(jobs()).unwrap();
    f.engine.checkpoint().unwrap();
    assert_eq!(cold_rows(&f.engine), 480);
    let before = everything(&admin);
    f.engine.release_mapped_pages().unwrap();
    assert_eq!(everything(&admin), before);
    let more: Vec<Job> = (600..650).map(|n| job(n, Status::READY, OperationType::WORKFLOW, Some("w1"), None)).collect();
    admin.import(more).unwrap();
    let after = everything(&admin);
    f.engine.release_mapped_pages().unwrap();
    assert_eq!(everything(&admin), after);
    assert_eq!(after.0[0].0.len(), 650);
    assert_verified(&f.engine);
    drop(admin);
    let f = f.close_and_reopen();
    f.engine.release_mapped_pages().unwrap();
    assert_eq!(everything(&f.engine.session("admin").unwrap()), after);
}

/// Salvage of a store whose Completed jobs' events a checkpoint froze into
/// cold segments: with the manifest, without it (the cold segment files
/// merged into the hot ones by sequence number, by their names alone), and
/// with a cold segment damaged (its frames from the damage on reported
/// lost, the rest copied).
#[test]
fn salvage_reads_cold_segments_with_and_without_the_manifest() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let all = jobs();
    admin.import(all.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    // Some hot history after the freeze.
    let open: Vec<Uuid> = all.iter().filter(|j| j.status == Status::READY).take(5).map(|j| j.id).collect();
    for id in &open {
        admin.act(*id, joblog::engine::UserAction::Cancel).unwrap();
    }
    let expected = everything(&admin);
    drop(admin);
    let dir = f.path().to_path_buf();
    f.engine.close().unwrap();
    let segments = dir.join("segments");
    let cold: Vec<String> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cold-"))
        .collect();
    assert!(!cold.is_empty(), "the checkpoint froze events into cold segments");

    let salvaged = |src: &std::path::Path| {
        let to = tempfile::tempdir().unwrap();
        let dst = to.path().join("new");
        let report = joblog::engine::salvage(src, &dst, &Default::default()).unwrap();
        let engine = Engine::open(&dst, joblog::engine::Config::default(), support::clock_at(support::NOW)).unwrap();
        let reads = everything(&engine.session("admin").unwrap());
        (report, reads, to)
    };
    let scratch = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let to = scratch.path().join(name);
        copy_tree(&dir, &to);
        to
    };

    let (report, reads, _keep) = salvaged(&dir);
    assert!(report.lost.is_empty() && report.dropped.is_empty(), "{report:?}");
    assert_eq!(reads, expected, "salvaged with the manifest");

    let bare = copy("bare");
    std::fs::remove_file(bare.join("segments/MANIFEST")).unwrap();
    let (report, reads, _keep) = salvaged(&bare);
    assert!(report.lost.is_empty() && report.dropped.is_empty(), "{report:?}");
    assert_eq!(reads, expected, "salvaged without the manifest");

    // A frame damaged in a cold segment: reported, and the rest copied.
    let damaged = copy("damaged");
    let path = damaged.join("segments").join(&cold[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    for manifest in [true, false] {
        if !manifest {
            let _ = std::fs::remove_file(damaged.join("segments/MANIFEST"));
        }
        let (report, reads, _keep) = salvaged(&damaged);
        assert!(report.lost.iter().any(|l| l.file.ends_with(&cold[0])), "manifest {manifest}: {report:?}");
        assert!(reads.1.len() < expected.1.len(), "manifest {manifest}: jobs were lost with the damage");
        assert!(reads.1.len() > expected.1.len() / 2, "manifest {manifest}: the rest was copied");
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A deletion that takes most of a run's jobs (as a deletion by age does
/// at its edge) copies the run without them: its rows' space comes back
/// with the call, the old file goes, and the reads are a replay's, after
/// a reopen too. One that takes less than half leaves the run as it is.
#[test]
fn a_deletion_that_takes_most_of_a_run_copies_it_without_them() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let all: Vec<Job> =
        (0..400).map(|n| job(n, Status::SUCCEEDED, OperationType::WORKFLOW, Some("w1"), None)).collect();
    admin.import(all).unwrap();
    f.engine.checkpoint().unwrap();
    let runs = |e: &Engine| e.state().cold_runs().iter().map(|r| (r.id(), r.len(), r.file_bytes())).collect::<Vec<_>>();
    let before = runs(&f.engine);
    assert_eq!(before.iter().map(|r| r.1).collect::<Vec<_>>(), [400]);
    let run_files = || -> Vec<String> {
        run_files_of(f.path()).into_iter().map(|(id, ..)| joblog::projection::cold::file_name(id)).collect()
    };
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded],
        older_than_days: 1,
    };
    // Less than half: the run stays as it was.
    assert_eq!(admin.delete_now(&criteria, 150).unwrap().deleted, 150);
    assert_eq!(runs(&f.engine), before);
    assert_verified(&f.engine);
    // Half or more: copied without them, the old file gone.
    assert_eq!(admin.delete_now(&criteria, 100).unwrap().deleted, 100);
    let after = runs(&f.engine);
    assert_eq!(after.iter().map(|r| r.1).collect::<Vec<_>>(), [150]);
    assert_ne!(after[0].0, before[0].0, "a new run");
    assert!(after[0].2 < before[0].2 / 2, "its rows' space came back: {after:?} from {before:?}");
    assert_eq!(run_files(), [joblog::projection::cold::file_name(after[0].0)]);
    assert_verified(&f.engine);
    let reads = everything(&admin);
    drop(admin);
    let f = f.close_and_reopen();
    assert_eq!(everything(&f.engine.session("admin").unwrap()), reads);
    assert_verified(&f.engine);
}

/// A cold job changed since it was frozen (a resubmission line: its run
/// thawed, a new event hot) stays hot at the next checkpoint instead of
/// having that event frozen beside other jobs' in a second cold segment:
/// a deletion that then removes its first cold segment whole takes the
/// hot event with it, and a full replay of the log still opens and reads
/// what the live store reads.
#[test]
fn a_job_changed_after_its_freeze_keeps_its_events_out_of_a_second_cold_segment() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    // Old failures, frozen into their own cold segment.
    let old: Vec<Job> = (0..200).map(|n| job(n, Status::FAILED, OperationType::BULK_EMAIL, None, None)).collect();
    admin.import(old.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    // One of them resubmitted (a new event on it), then recent failures,
    // completed after it: the next freeze's group of (Bulk Email, Failed).
    admin.resubmit(old[7].id, None).unwrap();
    let recent: Vec<Job> = (0..100)
        .map(|n| {
            let mut j = job(1_000 + n, Status::FAILED, OperationType::BULK_EMAIL, None, None);
            j.createdon = t("2026-01-30T00:00:00Z").plus_micros(n * 1_000_000);
            j.startedon = Some(j.createdon);
            j.completedon = Some(j.createdon.plus_micros(60_000_000));
            j.modifiedon = j.completedon.unwrap();
            j
        })
        .collect();
    admin.import(recent).unwrap();
    f.engine.checkpoint().unwrap();
    let in_runs = f.engine.state().cold_runs().iter().any(|r| r.find(old[7].id).unwrap().is_some());
    assert!(!in_runs, "the changed job stays hot");
    // Every old failure deleted: their cold segment goes whole.
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW, OperationType::BULK_EMAIL],
        reasons: vec![StatusReason::Failed],
        older_than_days: 7,
    };
    assert_eq!(admin.delete_now(&criteria, 1_000_000).unwrap().deleted, 200);
    assert_verified(&f.engine);
    let reads = everything(&admin);
    drop(admin);
    // A full replay of the log (no checkpoint) opens and reads the same.
    let dir = f.path().to_path_buf();
    let config = f.config.clone();
    f.engine.close().unwrap();
    std::fs::remove_dir_all(dir.join("snapshots")).unwrap();
    let engine = Engine::open(&dir, config, support::clock_at(support::NOW)).unwrap();
    assert!(engine.open_report().checkpoint_seq.is_none());
    assert_eq!(everything(&engine.session("admin").unwrap()), reads);
}

/// A checkpoint cuts what it freezes into cold segments of at most a
/// segment's size (but for one job's events): jobs with large data make
/// many cold segments of one class, each within the bound, and the reads
/// are a replay's.
#[test]
fn a_freeze_cuts_its_cold_segments_at_a_segments_size() {
    let config = joblog::engine::Config {
        log: joblog::log::LogConfig { segment_size_bytes: 256 << 10, ..joblog::engine::Config::default().log },
        cold_after: 1,
        checkpoint_every_events: 0,
        ..joblog::engine::Config::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config, support::clock_at(support::NOW)).unwrap();
    let admin = engine.session("admin").unwrap();
    let big: Vec<Job> = (0..40)
        .map(|n| {
            let mut j = job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, None);
            j.data = vec![b'x'; 60 << 10];
            j
        })
        .collect();
    for chunk in big.chunks(4) {
        admin.import(chunk.to_vec()).unwrap();
    }
    engine.checkpoint().unwrap();
    let sizes: Vec<u64> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("cold-"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    // 40 jobs of ~60 KiB in one class: about ten segments of four jobs.
    assert!(sizes.len() >= 8, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= (256 << 10) + (64 << 10)), "{sizes:?}");
    assert_eq!(cold_rows(&engine), 40);
    assert_verified(&engine);
}

/// The run files in a store's snapshots directory: (id, what it stands in
/// for, rows), by id.
/// The cold run files (not the checkpoints' images of their hot rows):
/// (id, the run it stands in for, rows).
fn run_files_of(dir: &std::path::Path) -> Vec<(u64, Option<u64>, usize)> {
    let mut files: Vec<(u64, Option<u64>, usize)> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "run"))
        .map(|p| joblog::projection::cold::ColdRun::open(&p).unwrap())
        .filter(|run| !run.holds_open())
        .map(|run| (run.id(), run.replaces(), run.len()))
        .collect();
    files.sort();
    files
}

/// Deletions that copy a run twice and then empty it, with no checkpoint
/// between them (none is written: the space comes back without one), and
/// a crash: the store reopens from the checkpoint written before, the
/// newest copy standing in for the run it names, and reads what it read.
#[test]
fn a_deletions_copies_stand_in_for_the_run_a_checkpoint_names_through_a_crash() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let wf: Vec<Job> = (0..400).map(|n| job(n, Status::SUCCEEDED, OperationType::WORKFLOW, Some("w1"), None)).collect();
    let other: Vec<Job> =
        (400..500).map(|n| job(n, Status::FAILED, OperationType::BULK_EMAIL, None, Some("contact:1"))).collect();
    admin.import(wf).unwrap();
    admin.import(other.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    let named = f.engine.state().cold_runs().iter().find(|r| r.len() == 400).unwrap().id();
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded],
        older_than_days: 1,
    };
    let checkpoints = || std::fs::read_dir(f.path().join("snapshots")).unwrap().count();
    let files_before = checkpoints();
    // 250 of 400, then 100 of the 150 left: each copies the run.
    for (limit, left) in [(250, 150), (100, 50)] {
        let r = admin.delete_now(&criteria, limit).unwrap();
        assert_eq!((r.deleted, r.seconds_checkpoint), (limit, 0.0));
        let files = run_files_of(f.path());
        assert!(!files.iter().any(|r| r.0 == named), "the named run's file is gone: {files:?}");
        assert!(files.contains(&(files.iter().map(|r| r.0).max().unwrap(), Some(named), left)), "{files:?}");
    }
    assert_eq!(checkpoints(), files_before, "no checkpoint written");
    admin.delete_jobs(&other[..10].iter().map(|j| j.id).collect::<Vec<_>>()).unwrap();
    let reads = everything(&admin);
    drop(admin);
    let f = f.reopen();
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "{:?}", f.engine.open_report());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), reads);
    assert_verified(&f.engine);
    // The last 50: the run is emptied, an empty one stands in for it.
    let admin = f.engine.session("admin").unwrap();
    assert_eq!(admin.delete_now(&criteria, 1000).unwrap().deleted, 50);
    let files = run_files_of(f.path());
    assert!(files.iter().any(|r| r.1 == Some(named) && r.2 == 0), "{files:?}");
    assert!(!files.iter().any(|r| r.1 == Some(named) && r.2 > 0), "the copies are gone: {files:?}");
    let reads = everything(&admin);
    drop(admin);
    let f = f.reopen();
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "{:?}", f.engine.open_report());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), reads);
    assert_verified(&f.engine);
}

/// A copy left behind by a crash after it was written but before the run
/// it stands in for was removed: the run is read, not the copy; the copy's
/// id is never taken by a new run; and a checkpoint that no longer names
/// the run removes the copy.
#[test]
fn a_copy_left_beside_the_run_it_stands_in_for_is_not_read() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let wf: Vec<Job> = (0..300).map(|n| job(n, Status::SUCCEEDED, OperationType::WORKFLOW, Some("w1"), None)).collect();
    admin.import(wf).unwrap();
    f.engine.checkpoint().unwrap();
    let reads = everything(&admin);
    drop(admin);
    let run = f.engine.state().cold_runs()[0].clone();
    let stray = 40;
    let f = f.reopen_after(|dir| {
        // A copy that (wrongly, for this test) lacks 100 rows: were it
        // read, they would be missing.
        let gone: joblog::projection::cold::RowSet = (0..100).collect();
        let path = dir.join("snapshots").join(joblog::projection::cold::file_name(stray));
        let live: joblog::log::Generations = run.segments().unwrap().into_iter().collect();
        let stand_in = joblog::projection::cold::StandIn { replaces: run.id(), pending: &|_| None };
        joblog::projection::cold::copy_run(&path, stray, &run, &gone, Some(stand_in), Ok, &live).unwrap();
    });
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "{:?}", f.engine.open_report());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), reads);
    // A new run takes an id past the stray copy's.
    let admin = f.engine.session("admin").unwrap();
    let more: Vec<Job> = (300..320).map(|n| job(n, Status::SUCCEEDED, OperationType::BULK_EMAIL, None, None)).collect();
    admin.import(more).unwrap();
    f.engine.checkpoint().unwrap();
    let new = f.engine.state().cold_runs().iter().map(|r| (r.id(), r.len())).find(|r| r.1 == 20).unwrap();
    assert!(new.0 > stray, "{new:?}");
    assert_verified(&f.engine);
}

/// A job of a deletion's copy changed after it (a resubmission thaws the
/// copy), then a crash: the reopen reads the copy in place of the run the
/// checkpoint names and replays the change on it.
#[test]
fn a_copy_thawed_after_the_deletion_that_made_it_replays_from_the_checkpoint() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let failed: Vec<Job> = (0..300).map(|n| job(n, Status::FAILED, OperationType::WORKFLOW, None, None)).collect();
    admin.import(failed.clone()).unwrap();
    f.engine.checkpoint().unwrap();
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Failed],
        older_than_days: 1,
    };
    assert_eq!(admin.delete_now(&criteria, 200).unwrap().deleted, 200);
    assert!(run_files_of(f.path()).iter().any(|r| r.1.is_some() && r.2 == 100), "{:?}", run_files_of(f.path()));
    admin.resubmit(failed[250].id, None).unwrap();
    let reads = everything(&admin);
    drop(admin);
    let f = f.reopen();
    assert!(f.engine.open_report().checkpoint_seq.is_some(), "{:?}", f.engine.open_report());
    assert_eq!(everything(&f.engine.session("admin").unwrap()), reads);
    assert_verified(&f.engine);
}

/// The back-off's count for `workflow` from every job a user can list:
/// its `limit` newest ended jobs in the order they ended (`completedon`,
/// `createdon`, id), Failed counted until the first Succeeded, Canceled
/// skipped; and when the newest counted failure ended.
fn failures_listed(s: &Session, workflow: &str, limit: usize) -> (u32, Option<joblog::domain::Timestamp>) {
    let f = Filter { workflow: Some(workflow.into()), state: Some(State::Completed), ..Filter::default() };
    let (mut ended, mut after): (Vec<Job>, Option<Cursor>) = (Vec::new(), None);
    loop {
        let (page, next) = s.list(&f, after.as_ref(), 500).unwrap();
        ended.extend(page);
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    ended.sort_by_key(|j| std::cmp::Reverse((j.completedon, j.createdon, j.id)));
    let (mut n, mut last) = (0, None);
    for j in ended.iter().take(limit) {
        match j.status {
            Status::SUCCEEDED => break,
            Status::FAILED => {
                n += 1;
                last = last.or(j.completedon);
            }
            _ => {}
        }
    }
    (n, last)
}

/// The back-off's failures in a row (`src/projection/streak.rs`), read
/// newest ended first across the hot rows and cold runs whose ends
/// overlap, many ending at the same time, some deleted: the same as
/// counted from every job listed, for one workflow and for all at once,
/// before and after a reopen.
#[test]
fn failures_in_a_row_read_newest_first_are_those_counted_from_every_job() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let mut rng = support::Rng::with_seed(16);
    // A busy workflow, two quieter ones, one that never succeeds, one
    // whose runs are Canceled mostly; some jobs of another type name one.
    let workflows = ["busy", "quiet", "sparse", "never", "canceled"];
    let mut n = 0i64;
    let mut import = |rng: &mut support::Rng, count: usize| {
        let jobs: Vec<Job> = (0..count)
            .map(|_| {
                n += 1;
                let w = match rng.u32(0..100) {
                    0..60 => "busy",
                    60..80 => "quiet",
                    80..88 => "sparse",
                    88..92 => "never",
                    _ => "canceled",
                };
                let status = match (w, rng.u32(0..10)) {
                    ("never", 0..7) => Status::FAILED,
                    ("never", _) => Status::CANCELED,
                    ("canceled", 0..8) => Status::CANCELED,
                    (_, 0..3) => Status::FAILED,
                    (_, 3) => Status::CANCELED,
                    (_, 4) => Status::READY,
                    _ => Status::SUCCEEDED,
                };
                let op = if rng.u32(0..8) == 0 { OperationType::BULK_EMAIL } else { OperationType::WORKFLOW };
                let mut j = job(n, status, op, Some(w), None);
                if status.is_completed() {
                    // Ends on a coarse grid, so that many share a time, in
                    // an order of their own, overlapping across imports.
                    let ended = t("2026-01-01T00:00:00Z").plus_micros(rng.i64(0..300) * 60_000_000);
                    j.createdon = ended.plus_micros(-rng.i64(0..100) * 60_000_000);
                    j.startedon = Some(j.createdon);
                    j.completedon = Some(ended);
                    j.modifiedon = ended;
                }
                j
            })
            .collect();
        admin.import(jobs.clone()).unwrap();
        jobs
    };
    let check = |engine: &Engine, s: &Session| {
        let state = engine.state();
        for limit in [1, 2, 3, 7, 40, 1000] {
            let all = state.failures_in_a_row(&workflows, limit).unwrap();
            for (w, got) in workflows.iter().zip(all) {
                let want = failures_listed(s, w, limit);
                assert_eq!(got, want, "{w}, limit {limit}, all at once");
                assert_eq!(state.consecutive_failures(w, limit).unwrap(), want, "{w}, limit {limit}");
            }
        }
        assert_eq!(state.consecutive_failures("nowhere", 1000).unwrap(), (0, None));
        // Names given twice, or unknown, each answered in its place.
        let twice = ["busy", "never", "busy", "nowhere", "never"];
        let want: Vec<_> = twice.iter().map(|w| failures_listed(s, w, 3)).collect();
        assert_eq!(state.failures_in_a_row(&twice, 3).unwrap(), want);
        assert_eq!(state.failures_in_a_row(&[], 3).unwrap(), []);
    };
    // Four imports, each moved into cold runs by a checkpoint (the first
    // read while it is all hot); a fifth stays in the hot rows.
    let mut imported = Vec::new();
    for round in 0..4 {
        imported.extend(import(&mut rng, 700));
        if round == 0 {
            check(&f.engine, &admin);
        }
        f.engine.checkpoint().unwrap();
    }
    assert!(f.engine.state().cold_runs().len() >= 2, "runs {:?}", f.engine.state().cold_runs().len());
    imported.extend(import(&mut rng, 300));
    check(&f.engine, &admin);
    // Some of every workflow's newest ends deleted, cold and hot.
    let mut ended: Vec<&Job> = imported.iter().filter(|j| j.status.is_completed()).collect();
    ended.sort_by_key(|j| std::cmp::Reverse(j.completedon));
    let gone: Vec<Uuid> = ended.iter().take(400).filter(|_| rng.bool()).map(|j| j.id).collect();
    assert_eq!(admin.delete_jobs(&gone).unwrap().len(), gone.len());
    check(&f.engine, &admin);
    drop(admin);
    let f = f.close_and_reopen();
    check(&f.engine, &f.engine.session("admin").unwrap());
}
