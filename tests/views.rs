//! A store opened for the reads of jobs alone (`joblog::engine::Views`,
//! what `joblog list` and `joblog show` use): it maps the image of the
//! checkpoint's hot rows instead of decoding them, and must answer every
//! read exactly as the engine does, for every user, every filter and every
//! page, the events after the checkpoint folded in; and when it cannot
//! (an older checkpoint format, a torn tail, its image missing or
//! damaged) it says so, and the engine is opened instead.

use std::collections::BTreeMap;

use joblog::domain::{Job, OperationType, Regarding, State, Status, StatusReason};
use joblog::engine::{Config, Engine, Reads, UserAction, Views};
use joblog::projection::query::{Cursor, Filter};
use uuid::Uuid;

mod support;

use support::{t, Fixture};

/// Every status a job can be in.
const STATUSES: [Status; 10] = [
    Status::READY,
    Status::WAITING,
    Status::RETRYING,
    Status::PAUSED,
    Status::IN_PROGRESS,
    Status::PAUSING,
    Status::CANCELING,
    Status::SUCCEEDED,
    Status::FAILED,
    Status::CANCELED,
];

const OWNERS: [(&str, &str); 3] = [("admin", "root"), ("alice", "sales"), ("bob", "ops")];

/// Job `n`, created `n` minutes into 2026, in one of every status, type,
/// owner, workflow and regarding row.
fn job(n: i64) -> Job {
    let created = t("2026-01-01T00:00:00Z").plus_micros(n * 60_000_000);
    let mut op = [OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType::WORKFLOW][(n % 3) as usize];
    if n % 37 == 36 {
        // Any code is accepted, this one too: the status index's key for
        // "every type" has the same bits.
        op = OperationType(u32::MAX);
    }
    let (owner, unit) = OWNERS[(n % 7 % 3) as usize];
    let status = STATUSES[(n % 10) as usize];
    let mut j = Job::new(&format!("job {n}"), op, owner, unit, created);
    j.status = status;
    j.workflow = (op == OperationType::WORKFLOW).then(|| ["w1", "w2"][(n % 2) as usize].to_string());
    j.regarding = (n % 4 == 0).then(|| Regarding::parse(&format!("contact:{}", n % 9)).unwrap());
    if matches!(status.state(), State::Locked | State::Completed) {
        j.startedon = Some(created);
    }
    if status.state() == State::Suspended {
        j.postponeuntil = Some(created.plus_micros(3_600_000_000));
        j.retrycount = (n % 3) as u32;
    }
    if status.is_completed() {
        j.completedon = Some(created.plus_micros(((n * 7919) % 500 + 1) * 60_000_000));
        j.modifiedon = j.completedon.unwrap();
        if status == Status::FAILED {
            j.errorcode = Some(-2147204346);
            j.message = Some(format!("failure {n}"));
        }
    }
    j
}

fn filters() -> Vec<Filter> {
    let mut out = vec![
        Filter::default(),
        Filter { workflow: Some("w1".into()), ..Filter::default() },
        Filter { workflow: Some("w2".into()), state: Some(State::Suspended), ..Filter::default() },
        Filter { regarding: Some(Regarding::parse("contact:3").unwrap()), ..Filter::default() },
        Filter { owner: Some("alice".into()), ..Filter::default() },
        Filter { owner: Some("bob".into()), status_reason: Some(StatusReason::Canceled), ..Filter::default() },
        Filter { created_before: Some(t("2026-01-01T05:00:00Z")), ..Filter::default() },
        Filter { created_after: Some(t("2026-01-01T07:00:00Z")), state: Some(State::Ready), ..Filter::default() },
        Filter { completed_before: Some(t("2026-01-01T06:00:00Z")), ..Filter::default() },
        Filter { workflow: Some("nowhere".into()), ..Filter::default() },
        Filter { state: Some(State::Ready), status_reason: Some(StatusReason::Failed), ..Filter::default() },
    ];
    for state in State::all() {
        out.push(Filter { state: Some(state), ..Filter::default() });
        out.push(Filter { state: Some(state), operationtype: Some(OperationType::WORKFLOW), ..Filter::default() });
    }
    for s in STATUSES {
        out.push(Filter { status_reason: Some(s.reason()), ..Filter::default() });
        out.push(Filter {
            status_reason: Some(s.reason()),
            operationtype: Some(OperationType::BULK_EMAIL),
            ..Filter::default()
        });
        out.push(Filter {
            status_reason: Some(s.reason()),
            operationtype: Some(OperationType(u32::MAX)),
            ..Filter::default()
        });
    }
    out.push(Filter { operationtype: Some(OperationType(u32::MAX)), ..Filter::default() });
    out
}

/// Everything `r` reads: each view paged by 7 and its count, and every job
/// the first view lists with its history.
type Everything = (Vec<(Vec<Uuid>, usize)>, BTreeMap<Uuid, (Job, usize)>);

fn everything(r: &dyn Reads) -> Everything {
    let mut views = Vec::new();
    for f in filters() {
        let mut ids = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let (page, next) = r.list(&f, after.as_ref(), 7).unwrap();
            ids.extend(page.iter().map(|j| j.id));
            match next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let n = r.count(&f).unwrap();
        assert_eq!(n, ids.len(), "count of {f:?}");
        views.push((ids, n));
    }
    let mut jobs = BTreeMap::new();
    for id in views[0].0.clone() {
        jobs.insert(id, (r.get(id).unwrap(), r.history(id).unwrap().len()));
    }
    (views, jobs)
}

fn users(f: &Fixture) {
    let admin = f.engine.session("admin").unwrap();
    admin.add_business_unit("sales", "root").unwrap();
    admin.add_business_unit("ops", "root").unwrap();
    admin.add_user("alice", "sales", &["basic-user"]).unwrap();
    admin.add_user("bob", "ops", &["basic-user"]).unwrap();
    admin.add_user("carol", "sales", &["basic-user"]).unwrap();
    admin.deactivate_user("carol").unwrap();
    for w in ["w1", "w2"] {
        let def =
            joblog::domain::WorkflowDefinition { id: w.into(), name: w.into(), owner: "admin".into(), active: true };
        admin.add_workflow(def).unwrap();
    }
}

/// The store: jobs in every status, some Completed ones in cold runs, the
/// rest (open ones, and completions since) hot; a resubmission line, owner
/// changes of open jobs, and deletions (by id) from both tiers. With the
/// jobs imported.
fn store() -> (Fixture, Vec<Job>) {
    let f = Fixture::with_config(support::t(support::NOW), Config { cold_after: 50, ..Config::default() });
    users(&f);
    let jobs: Vec<Job> = (0..520).map(job).collect();
    let admin = f.engine.session("admin").unwrap();
    admin.import(jobs[..400].to_vec()).unwrap();
    admin.resubmit(jobs[8].id, None).unwrap();
    f.engine.checkpoint().unwrap();
    admin.import(jobs[400..].to_vec()).unwrap();
    assert!(!admin.reassign("w2", "alice", "bob").unwrap().is_empty());
    let gone: Vec<Uuid> = [7, 19, 407, 409].iter().map(|&n| jobs[n].id).collect();
    assert_eq!(admin.delete_jobs(&gone).unwrap().len(), 4);
    (f, jobs)
}

/// Opens `f`'s store for reads alone (the engine closed first: a writer
/// holds the store alone).
fn views_of(dir: &std::path::Path) -> Option<Views> {
    Views::open(dir, Config::default()).unwrap()
}

#[test]
fn the_reads_alone_answer_as_the_engine_for_every_user_filter_and_page() {
    let (f, jobs) = store();
    f.engine.checkpoint().unwrap();
    let who = ["admin", "alice", "bob"];
    let want: Vec<Everything> = who.iter().map(|u| everything(&f.engine.session(u).unwrap())).collect();
    // Some of everything: open jobs of every status, cold and hot ones.
    assert!(f.engine.state().cold_runs().iter().map(|r| r.len()).sum::<usize>() > 100);
    let hot_completed = f.engine.state().in_status(Status::SUCCEEDED).count();
    assert!(hot_completed > 5, "Completed jobs in the hot rows too: {hot_completed}");
    assert_ne!(want[1], want[0], "alice sees her own jobs only");
    let dir = f.dir.path().to_path_buf();
    let Fixture { dir: _keep, engine, .. } = f;
    engine.close().unwrap();

    let views = views_of(&dir).expect("a checkpoint holding every event, of today's format");
    for (user, want) in who.iter().zip(&want) {
        assert_eq!(&everything(&views.reader(user).unwrap()), want, "{user}");
    }
    assert!(views.reader("nobody").is_err());
    assert!(views.reader("carol").is_err(), "deactivated");
    let missing = views.reader("admin").unwrap().get(Uuid::from_u128(7)).unwrap_err();
    assert!(matches!(missing, joblog::Error::Domain(joblog::domain::DomainError::NotFound { .. })), "{missing}");
    let denied = views.reader("alice").unwrap().get(jobs[2].id).unwrap_err();
    assert!(matches!(denied, joblog::Error::Domain(joblog::domain::DomainError::Denied { .. })), "{denied}");
}

/// Events after the checkpoint are folded in: the jobs they touch leave
/// the image one by one (a cold job's run is thawed whole, as the engine
/// does), and every read is the engine's.
#[test]
fn events_after_the_checkpoint_are_folded_in_and_read_as_the_engine_reads_them() {
    let who = ["admin", "alice", "bob"];
    let want_of =
        |engine: &Engine| -> Vec<Everything> { who.iter().map(|u| everything(&engine.session(u).unwrap())).collect() };
    // Dropped, not closed (a clean close would checkpoint): the reads
    // alone fold the `tail` events after checkpoint `seq`, and answer the
    // same.
    let check = |dir: &Path, (seq, tail): (u64, u64), want: &[Everything]| {
        let engine = Engine::open_read_only(dir, Config::default(), support::clock_at(support::NOW)).unwrap();
        let report = engine.open_report();
        assert_eq!((report.checkpoint_seq, report.events_replayed), (Some(seq), tail));
        drop(engine);
        let views = views_of(dir).expect("the events after the checkpoint fold in");
        for (user, want) in who.iter().zip(want) {
            assert_eq!(&everything(&views.reader(user).unwrap()), want, "{user}");
        }
    };
    // `store()` ends with events no checkpoint holds: imports, a
    // reassignment of open jobs, deletions by id from both tiers.
    let (f, jobs) = store();
    let want = want_of(&f.engine);
    let Fixture { dir, engine, .. } = f;
    let end = engine.state().last_seq();
    drop(engine);
    // Its checkpoint: the one `store()` took halfway.
    let seq = Engine::open_read_only(dir.path(), Config::default(), support::clock_at(support::NOW))
        .unwrap()
        .open_report()
        .checkpoint_seq
        .unwrap();
    check(dir.path(), (seq, end - seq), &want);

    // After a checkpoint: transitions of jobs in its image (each of the
    // user's actions), owner changes, a resubmission of a cold job (its
    // run thawed), new jobs, a deletion by age and one by id.
    let config = Config { cold_after: 50, ..Config::default() };
    let engine = Engine::open(dir.path(), config, support::clock_at(support::NOW)).unwrap();
    engine.checkpoint().unwrap();
    let seq = engine.state().last_seq();
    let admin = engine.session("admin").unwrap();
    let in_status = |s: Status| jobs.iter().filter(move |j| j.status == s).map(|j| j.id);
    let actions = [
        (Status::READY, UserAction::Cancel),
        (Status::IN_PROGRESS, UserAction::Pause),
        (Status::WAITING, UserAction::Resume),
        (Status::READY, UserAction::Postpone(t("2027-01-01T00:00:00Z"))),
    ];
    let mut acted = 0;
    for (n, (status, action)) in actions.into_iter().enumerate() {
        for id in in_status(status).skip(n * 3).take(3) {
            if admin.act(id, action).is_ok() {
                acted += 1;
            }
        }
    }
    assert!(acted >= 8, "{acted} actions taken");
    assert!(!admin.reassign("w1", "admin", "alice").unwrap().is_empty());
    let resubmitted = in_status(Status::FAILED).filter(|id| admin.resubmit(*id, None).is_ok()).count();
    assert!(resubmitted > 5, "{resubmitted}");
    admin.import((600..620).map(job).collect()).unwrap();
    let criteria = joblog::domain::DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded],
        older_than_days: 1,
    };
    // Logical (a deletion that gives the space back writes a checkpoint).
    assert!(admin.delete(&criteria, 30).unwrap().deleted > 0);
    // Two of the jobs canceled above (out of the image), and an old one.
    let mut gone: Vec<Uuid> = in_status(Status::READY).filter(|id| admin.get(*id).is_ok()).take(2).collect();
    gone.extend(in_status(Status::CANCELED).find(|id| admin.get(*id).is_ok()));
    assert_eq!(admin.delete_jobs(&gone).unwrap().len(), 3);
    let (want, end) = (want_of(&engine), engine.state().last_seq());
    drop(admin);
    drop(engine);
    check(dir.path(), (seq, end - seq), &want);
}

#[test]
fn an_older_format_or_a_torn_tail_open_the_engine_instead() {
    // No checkpoint at all.
    let empty = tempfile::tempdir().unwrap();
    drop(Engine::open(empty.path(), Config::default(), support::clock_at(support::NOW)).unwrap());
    assert!(views_of(empty.path()).is_none());

    // A checkpoint of format 8 (store-v8, its tail replayed and checkpointed
    // by that format) has no image of its hot rows.
    let old = tempfile::tempdir().unwrap();
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v8"), old.path());
    assert!(views_of(old.path()).is_none());

    // A torn tail: the store as the engine would serve it is not the
    // checkpoint's either (the engine reports the torn bytes).
    let (f, _) = store();
    f.engine.checkpoint().unwrap();
    let dir = f.dir.path().to_path_buf();
    let Fixture { dir: _keep, engine, .. } = f;
    engine.close().unwrap();
    assert!(views_of(&dir).is_some());
    let active = newest_segment(&dir);
    let mut bytes = std::fs::read(&active).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    bytes[end..end + 6].copy_from_slice(b"\x05\x00\x00\x00ab");
    std::fs::write(&active, &bytes).unwrap();
    assert!(views_of(&dir).is_none(), "a torn tail");
}

#[test]
fn an_image_missing_stale_or_damaged_is_never_read_as_the_state() {
    let (f, _) = store();
    f.engine.checkpoint().unwrap();
    let want = everything(&f.engine.session("admin").unwrap());
    let dir = f.dir.path().to_path_buf();
    let Fixture { dir: _keep, engine, .. } = f;
    engine.close().unwrap();
    let image = hot_image(&dir);

    // Missing: the engine opens (it does not need the image) and reads
    // the same; the reads alone cannot.
    let saved = std::fs::read(&image).unwrap();
    std::fs::remove_file(&image).unwrap();
    assert!(views_of(&dir).is_none());
    let engine = Engine::open_read_only(&dir, Config::default(), support::clock_at(support::NOW)).unwrap();
    assert_eq!(everything(&engine.session("admin").unwrap()), want);
    drop(engine);

    // Another run put in its place: refused.
    let other = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p != &image && p.extension().is_some_and(|e| e == "run"))
        .unwrap();
    std::fs::copy(&other, &image).unwrap();
    assert!(views_of(&dir).is_none(), "a cold run in the image's place");

    // A flipped byte in a page: an error where it is read, never a wrong
    // answer (every page is checked by its CRC when first read).
    let mut damaged = saved.clone();
    damaged[4096 + 100] ^= 0x40;
    std::fs::write(&image, &damaged).unwrap();
    let views = views_of(&dir).expect("the header checks; the page is read later");
    let reader = views.reader("admin").unwrap();
    let all = reader.list(&Filter::default(), None, usize::MAX);
    assert!(matches!(all, Err(joblog::Error::Corrupt { .. })), "{all:?}");
    drop(views);

    // Put back whole: it reads the same again.
    std::fs::write(&image, &saved).unwrap();
    assert_eq!(everything(&views_of(&dir).unwrap().reader("admin").unwrap()), want);
}

/// The newest checkpoint's image of its hot rows: the newest run that may
/// hold open jobs (each checkpoint kept names one).
fn hot_image(dir: &std::path::Path) -> std::path::PathBuf {
    let mut images: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "run"))
        .filter(|p| joblog::projection::cold::ColdRun::open(p).unwrap().holds_open())
        .collect();
    assert_eq!(images.len(), 2, "one for each checkpoint kept: {images:?}");
    images.sort();
    images.pop().unwrap()
}

fn newest_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".seg") && !name.starts_with("cold-")
        })
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

use std::path::Path;

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The image is a cache of a cache: a checkpoint whose image cannot be
/// written is written all the same, and the reads alone then open nothing
/// (the engine answers).
#[test]
fn a_checkpoint_whose_image_cannot_be_written_is_written_without_it() {
    let (f, _) = store();
    let want = everything(&f.engine.session("admin").unwrap());
    // The image takes the next run id: every id it could take is a
    // directory (the cold runs this checkpoint writes come first and take
    // theirs; none is due: `cold_after` is 50).
    let snapshots = f.dir.path().join("snapshots");
    let taken: Vec<u64> = std::fs::read_dir(&snapshots)
        .unwrap()
        .filter_map(|e| joblog::projection::cold::parse_file_name(&e.unwrap().file_name().to_string_lossy()))
        .collect();
    let next = taken.iter().max().map_or(0, |m| m + 1);
    for id in next..next + 64 {
        std::fs::create_dir(snapshots.join(joblog::projection::cold::file_name(id))).unwrap();
    }
    f.engine.checkpoint().unwrap();
    let dir = f.dir.path().to_path_buf();
    let Fixture { dir: _keep, engine, .. } = f;
    engine.close().unwrap();
    assert!(views_of(&dir).is_none(), "no image");
    let engine = Engine::open_read_only(&dir, Config::default(), support::clock_at(support::NOW)).unwrap();
    assert_eq!(engine.open_report().events_replayed, 0, "the checkpoint was written");
    assert_eq!(everything(&engine.session("admin").unwrap()), want);
}

/// A reading command after a write folds the events after the checkpoint
/// from where the checkpoint's last event is in the log (checkpoint format
/// 10), not from the start of the segment that holds it: a frame damaged
/// before that event, in the same segment, is not read by the fold (nor
/// by the reads, which do not need it), and `verify` still finds it.
#[test]
fn the_fold_starts_where_the_checkpoints_last_event_is() {
    use joblog::engine::NewJob;
    use joblog::log::{Log, LogConfig, FRAME_HEADER_LEN};
    let dir = tempfile::tempdir().unwrap();
    let clock = support::clock_at(support::NOW);
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    let ids: Vec<Uuid> = (0..20)
        .map(|i| admin.create(NewJob::new(&format!("job {i}"), OperationType::BULK_EMAIL)).unwrap().id)
        .collect();
    let first_postpone = engine.state().last_seq() + 1;
    for _ in 0..50 {
        admin.act(ids[1], UserAction::Postpone(t("2027-01-01T00:00:00Z"))).unwrap();
        admin.act(ids[1], UserAction::Resume).unwrap();
    }
    drop(admin);
    let checkpoint = engine.state().last_seq();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    engine.session("admin").unwrap().act(ids[0], UserAction::Cancel).unwrap();
    drop(engine);

    // The first postpone's frame, in the segment the checkpoint ends in.
    let segments = dir.path().join("segments");
    let log = Log::open(&segments, LogConfig::salvage()).unwrap();
    let at = |seq: u64| log.iter_from(seq).next().unwrap().unwrap().position();
    let (damaged, last) = (at(first_postpone), at(checkpoint));
    assert_eq!(damaged.segment, last.segment, "one segment holds both");
    drop(log);
    let file = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{:020}", damaged.segment)))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[damaged.offset as usize + FRAME_HEADER_LEN] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let views = views_of(dir.path()).expect("the event after the checkpoint folds in");
    let reader = views.reader("admin").unwrap();
    assert_eq!(reader.get(ids[0]).unwrap().status, Status::CANCELED);
    assert_eq!(reader.count(&Filter::default()).unwrap(), 20);
    drop(views);
    let engine = Engine::open_read_only(dir.path(), Config::default(), clock).unwrap();
    assert_eq!(engine.open_report().events_replayed, 1);
    let report = engine.verify();
    assert!(report.problems.iter().any(|p| p.contains(&format!("{}", damaged.offset))), "{:?}", report.problems);
}

/// A freeze rewrites the hot segments without the frozen jobs' frames:
/// the state's note of where its last event is follows the frame, so that
/// the checkpoint after it still tells a fold where to start.
#[test]
fn the_last_events_place_follows_a_freeze() {
    use joblog::engine::NewJob;
    use joblog::log::{Log, LogConfig};
    let dir = tempfile::tempdir().unwrap();
    let config = Config { cold_after: 1, ..Config::default() };
    let engine = Engine::open(dir.path(), config, support::clock_at(support::NOW)).unwrap();
    let admin = engine.session("admin").unwrap();
    let done = admin.create(NewJob::new("done", OperationType::BULK_EMAIL)).unwrap().id;
    admin.act(done, UserAction::Cancel).unwrap();
    let open = admin.create(NewJob::new("open", OperationType::BULK_EMAIL)).unwrap().id;
    admin.act(open, UserAction::Postpone(t("2027-01-01T00:00:00Z"))).unwrap();
    let before = engine.state().last_position().expect("known");
    engine.checkpoint().unwrap();
    let seq = engine.state().last_seq();
    let after = engine.state().last_position().expect("the open job's event stays hot");
    assert_ne!(before, after, "the freeze moved it");
    drop(admin);
    drop(engine);
    // The checkpoint the freeze came with keeps it.
    let reopened = Engine::open_read_only(dir.path(), Config::default(), support::clock_at(support::NOW)).unwrap();
    assert_eq!(reopened.open_report().events_replayed, 0);
    assert_eq!(reopened.state().last_position(), Some(after));
    drop(reopened);
    let log = Log::open(dir.path().join("segments"), LogConfig::salvage()).unwrap();
    assert_eq!(log.read_at(after).unwrap().seq(), seq);
}
