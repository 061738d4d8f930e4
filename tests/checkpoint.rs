//! Checkpoints: opening from a snapshot gives the same state as replaying
//! the whole log, and a damaged or foreign snapshot is ignored, never trusted.

use std::path::Path;
use std::sync::Arc;

use joblog::domain::{Job, ManualClock, OperationType, Regarding, Timestamp};
use joblog::engine::{Config, Engine, NewJob, UserAction};
use joblog::log::LogConfig;
use joblog::projection::query::{Cursor, Filter};

mod support;

fn clock() -> Arc<ManualClock> {
    support::clock_at(support::NOW)
}

fn config() -> Config {
    Config { checkpoint_every_events: 0, cold_after: 1, ..Config::default() }
}

/// Every job the administrator sees, newest first, every column.
fn dump(engine: &Engine) -> Vec<Job> {
    let admin = engine.session("admin").unwrap();
    let mut all = vec![];
    let mut after: Option<Cursor> = None;
    loop {
        let (page, next) = admin.list(&Filter::default(), after.as_ref(), 37).unwrap();
        all.extend(page);
        match next {
            Some(c) => after = Some(c),
            None => return all,
        }
    }
}

fn populate(engine: &Engine, clock: &ManualClock, n: usize) {
    let admin = engine.session("admin").unwrap();
    for i in 0..n {
        let mut spec = NewJob::new(
            &format!("job {i}"),
            if i % 4 == 0 { OperationType::BULK_EMAIL } else { OperationType::WORKFLOW },
        );
        spec.regarding = Some(Regarding::parse(&format!("account:{}", i % 7)).unwrap());
        let job = admin.create(spec).unwrap();
        clock.advance_secs(1);
        match i % 3 {
            0 => drop(admin.act(job.id, UserAction::Cancel).unwrap()),
            1 => drop(admin.act(job.id, UserAction::Postpone(clock_plus(clock, 3600))).unwrap()),
            _ => {}
        }
    }
}

/// Canceled Bulk Email jobs older than a day: the deletion by criteria the
/// replay tests put in the log.
fn canceled_bulk_email() -> joblog::domain::DeletionCriteria {
    use joblog::domain::{DeletionCriteria, StatusReason};
    DeletionCriteria {
        types: vec![OperationType::BULK_EMAIL],
        reasons: vec![StatusReason::Canceled],
        older_than_days: 1,
    }
}

/// How many jobs the administrator sees in all, Completed, of Bulk Email,
/// and regarding one row.
fn view_counts(engine: &Engine) -> Vec<usize> {
    use joblog::domain::State;
    let filters = [
        Filter::default(),
        Filter { state: Some(State::Completed), ..Filter::default() },
        Filter { operationtype: Some(OperationType::BULK_EMAIL), ..Filter::default() },
        Filter { regarding: Some(Regarding::parse("account:3").unwrap()), ..Filter::default() },
    ];
    let admin = engine.session("admin").unwrap();
    filters.iter().map(|f| admin.count(f).unwrap()).collect()
}

fn clock_plus(clock: &ManualClock, secs: i64) -> Timestamp {
    use joblog::domain::Clock;
    clock.now().plus_micros(secs * 1_000_000)
}

/// The checkpoint files (not the runs beside them), oldest first.
fn snapshot_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snapshot-"))
        .collect();
    v.sort();
    v
}

#[test]
fn reopening_from_a_checkpoint_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 120);
    let live = dump(&engine);
    engine.close().unwrap();

    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(engine.open_report().events_replayed, 0);
    assert_eq!(dump(&engine), live);

    // More events after the checkpoint: replayed on top of it.
    populate(&engine, &clock, 10);
    let live = dump(&engine);
    drop(engine); // no clean close: no new checkpoint
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert!(engine.open_report().events_replayed > 10);
    assert_eq!(dump(&engine), live);

    // And a full replay (no checkpoint at all) agrees too.
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None);
    assert_eq!(dump(&engine), live);
    // Queries over the indices agree as well.
    let admin = engine.session("admin").unwrap();
    let bulk = Filter { operationtype: Some(OperationType::BULK_EMAIL), ..Filter::default() };
    assert_eq!(
        admin.count(&bulk).unwrap(),
        live.iter().filter(|j| j.operationtype == OperationType::BULK_EMAIL).count()
    );
}

/// A replay from nothing builds its indices once, at the end, or before a
/// deletion in the log (which selects through them): with deletions by
/// criteria and by id between batches of jobs, and jobs created after
/// them, every view and count of a full replay is the live state's.
#[test]
fn a_full_replay_through_deletions_equals_the_live_state() {
    use joblog::domain::State;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 60);
    let admin = engine.session("admin").unwrap();
    let done = Filter { state: Some(State::Completed), ..Filter::default() };
    let delete_some = |n: usize| {
        let (some, _) = admin.list(&done, None, n).unwrap();
        admin.delete_jobs(&some.iter().map(|j| j.id).collect::<Vec<_>>()).unwrap();
    };
    // Deleted by id while the replay keeps no index, their slots then
    // taken by new jobs.
    delete_some(2);
    populate(&engine, &clock, 10);
    clock.advance_secs(3 * 86_400);
    assert!(admin.delete(&canceled_bulk_email(), 1_000).unwrap().deleted > 0);
    populate(&engine, &clock, 30);
    delete_some(3);
    populate(&engine, &clock, 20);
    let (live, live_counts) = (dump(&engine), view_counts(&engine));
    drop(admin);
    drop(engine); // no clean close: no checkpoint, the whole log is replayed
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None);
    assert_eq!(dump(&engine), live);
    assert_eq!(view_counts(&engine), live_counts);
    assert_eq!(engine.state().check_indices(), Vec::<String>::new());
}

#[test]
fn a_damaged_checkpoint_is_ignored_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 40);
    let live = dump(&engine);
    engine.close().unwrap();
    let snap = snapshot_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    for at in [3, 20, 40, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        std::fs::write(&snap, &bad).unwrap();
        let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
        assert_eq!(engine.open_report().checkpoint_seq, None, "flip at {at} trusted");
        assert_eq!(engine.open_report().checkpoints_skipped.len(), 1);
        assert_eq!(dump(&engine), live);
    }
    std::fs::write(&snap, &bytes[..bytes.len() - 10]).unwrap();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None, "a truncated checkpoint was trusted");
    assert_eq!(dump(&engine), live);
}

/// Since format 8 a checkpoint's rows are fixed records read at fixed
/// offsets: a row whose bytes pass the checksums (made to match, as a bug
/// or a hand would) but hold no valid Status, or a flag that is neither 0
/// nor 1, makes the checkpoint unusable and the log is replayed; nothing
/// panics, nothing wrong is trusted. With few rows and with more than an
/// open decodes on one core (the rows then on one, the event chain and the
/// strings' table on the other).
#[test]
fn a_checkpoint_row_that_checks_but_holds_no_valid_status_is_ignored() {
    damaged_row_refused(0);
    damaged_row_refused(17_000);
}

/// [`a_checkpoint_row_that_checks_but_holds_no_valid_status_is_ignored`]
/// with `more` open jobs imported first.
fn damaged_row_refused(more: usize) {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 40);
    let admin = engine.session("admin").unwrap();
    let imported = (0..more)
        .map(|i| Job::new(&format!("imported {i}"), OperationType::WORKFLOW, "admin", "root", clock_plus(&clock, 0)));
    assert_eq!(admin.import(imported.collect()).unwrap(), more);
    let open = admin.create(NewJob::new("stays open", OperationType::WORKFLOW)).unwrap();
    drop(admin);
    let live = dump(&engine);
    engine.close().unwrap();
    let snaps = snapshot_files(dir.path());
    let (newest, older) = snaps.split_last().unwrap();
    for old in older {
        std::fs::remove_file(old).unwrap();
    }
    let bytes = std::fs::read(newest).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 10, "a format 10 checkpoint");
    // The rows are in the hot part, after the head part and the hot part's
    // 16-byte frame (its length, its CRC, the frame's CRC).
    let frame = 40 + usize::try_from(u64::from_le_bytes(bytes[24..32].try_into().unwrap())).unwrap();
    // The open job's row: its id, then the Status codes 100 bytes on.
    let id = open.id.as_bytes();
    let row = (frame + 16..bytes.len() - 16).find(|&at| &bytes[at..at + 16] == id).expect("the open job's row");
    for (at, value) in [(100, 9u8), (101, 99), (102, 2), (103, 1)] {
        let mut bad = bytes.clone();
        bad[row + at] = value;
        let hot = crc32fast::hash(&bad[frame + 16..]).to_le_bytes();
        bad[frame + 8..frame + 12].copy_from_slice(&hot);
        let own = crc32fast::hash(&bad[frame..frame + 12]).to_le_bytes();
        bad[frame + 12..frame + 16].copy_from_slice(&own);
        std::fs::write(newest, &bad).unwrap();
        let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
        assert_eq!(engine.open_report().checkpoint_seq, None, "byte {at} of a row set to {value} trusted");
        assert_eq!(engine.open_report().checkpoints_skipped.len(), 1);
        assert_eq!(dump(&engine), live);
        drop(engine);
    }
    // Undamaged, it is read as written.
    std::fs::write(newest, &bytes).unwrap();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert!(engine.open_report().checkpoint_seq.is_some(), "{:?}", engine.open_report());
    assert_eq!(dump(&engine), live);
}

#[test]
fn a_checkpoint_ahead_of_its_log_is_ignored() {
    let (long, short) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = clock();
    let engine = Engine::open(long.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 30);
    engine.close().unwrap();
    let engine = Engine::open(short.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 3);
    let live = dump(&engine);
    drop(engine);
    std::fs::create_dir_all(short.path().join("snapshots")).unwrap();
    let snap = snapshot_files(long.path()).pop().unwrap();
    std::fs::copy(&snap, short.path().join("snapshots").join(snap.file_name().unwrap())).unwrap();
    let engine = Engine::open(short.path(), config(), clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None);
    assert_eq!(dump(&engine), live);
}

#[test]
fn checkpoints_are_taken_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine =
        Engine::open(dir.path(), Config { checkpoint_every_events: 25, ..Config::default() }, clock.clone()).unwrap();
    populate(&engine, &clock, 60);
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 2, "keeps the newest two: {files:?}");
    drop(engine);
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert!(engine.open_report().events_replayed < 25);
}

/// Found by the `snapshot` fuzz target (inputs kept in fuzz/regressions/):
/// checkpoint bodies whose lengths claim gigabytes (a job id's bytes, an
/// interned string) made the loader allocate them before finding the file
/// too short. Lengths are now checked against a limit derived from the
/// file's size before anything is allocated.
#[test]
fn regression_huge_claimed_lengths_in_a_checkpoint_are_refused_not_allocated() {
    for body in [&[0x01, 0xfc, 0x0d, 0xfe, 0x75, 0xf5][..], &[0x00, 0x27, 0xfc, 0x5d, 0x00, 0x08, 0xfe]] {
        assert_refused(body);
    }
}

/// Refused as the body of a format 8 checkpoint, and as the head part of
/// one of format 9 and of format 10.
fn assert_refused(body: &[u8]) {
    for (version, hot) in [(8, None), (9, Some(&[][..])), (10, Some(&[][..]))] {
        let file = joblog::projection::checkpoint_file_bytes(version, 5, body, hot);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot-00000000000000000005.bin"), &file).unwrap();
        let (loaded, skipped) = joblog::projection::Projection::load_snapshot(dir.path(), 100, &Default::default());
        assert!(loaded.is_none());
        assert_eq!(skipped.len(), 1, "{skipped:?}");
    }
}

/// Opening does not check old segments whole (ARCHITECTURE.md, "Opening"):
/// the reads do. A store whose segment files were swapped for another
/// store's (made by the same steps: every frame valid, at the same
/// offsets, but other jobs) opens from its checkpoint, and then no read
/// answers with the other store's jobs: each compares the event's job with
/// the job it reads and reports corruption; `verify` finds it too.
#[test]
fn a_segment_swapped_for_another_stores_is_never_read_as_this_ones() {
    let make = || {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock();
        let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
        populate(&engine, &clock, 40);
        let ids: Vec<uuid::Uuid> = dump(&engine).iter().map(|j| j.id).collect();
        engine.close().unwrap();
        (dir, ids)
    };
    let ((a, ids), (b, _)) = (make(), make());
    let segments = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d.join("segments"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        v.sort();
        v
    };
    let (sa, sb) = (segments(a.path()), segments(b.path()));
    assert!(!sa.is_empty());
    assert_eq!(sa.len(), sb.len());
    let mut other_jobs = 0;
    for (x, y) in sa.iter().zip(&sb) {
        assert_eq!(x.file_name(), y.file_name());
        assert_eq!(std::fs::read(x).unwrap().len(), std::fs::read(y).unwrap().len(), "the same frames' sizes");
        // (A hot segment the checkpoint's freeze emptied holds no job.)
        other_jobs += usize::from(std::fs::read(x).unwrap() != std::fs::read(y).unwrap());
        std::fs::copy(y, x).unwrap();
    }
    assert!(other_jobs > 0, "other jobs");

    let engine = Engine::open(a.path(), config(), clock()).unwrap();
    assert_eq!(engine.open_report().events_replayed, 0, "opened from its checkpoint");
    let admin = engine.session("admin").unwrap();
    let err = admin.list(&Filter::default(), None, 10).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    for id in &ids {
        let state = engine.state();
        assert!(state.job(*id).unwrap_err().is_corruption(), "job {id}");
        assert!(state.history(*id).unwrap_err().is_corruption(), "history of {id}");
    }
    assert!(!engine.verify().ok());
}

/// The tests' configuration with segments of 1 MiB.
fn small_segments() -> Config {
    Config { log: LogConfig { segment_size_bytes: 1 << 20, ..LogConfig::default() }, ..config() }
}

/// The store in `dir` opened for writing, or read-only.
fn open_as(dir: &Path, config: Config, clock: &Arc<ManualClock>, read_only: bool) -> Result<Engine, joblog::Error> {
    if read_only {
        Engine::open_read_only(dir, config, clock.clone())
    } else {
        Engine::open(dir, config, clock.clone())
    }
}

/// Events of `n` jobs from `base` on, each ready (1 event) or succeeded
/// (3), every event 1 µs after the last.
fn long_history(n: u32, base: i64) -> Vec<joblog::domain::Envelope> {
    use joblog::domain::{Action, Actor, Envelope, Event, Status, EVENT_VERSION};
    let mut events = vec![];
    for i in 0..n {
        let at = |k: usize| Timestamp::from_micros(base + 4 * i64::from(i) + k as i64);
        let mut job = Job::new(&format!("job {i}"), OperationType::WORKFLOW, "admin", "root", at(0));
        job.regarding = Some(Regarding::parse(&format!("account:{}", i % 97)).unwrap());
        let step = |action, from, to| support::step(job.id, action, from, to);
        let env = |k, event| Envelope { version: EVENT_VERSION, at: at(k), actor: Actor::System, event };
        let steps = (i % 4 != 0).then(|| {
            [
                env(1, Event::Transition(step(Action::Lock, Status::READY, Status::IN_PROGRESS))),
                env(2, Event::Transition(step(Action::Succeed, Status::IN_PROGRESS, Status::SUCCEEDED))),
            ]
        });
        events.push(env(0, Event::JobCreated(Box::new(job))));
        events.extend(steps.into_iter().flatten());
    }
    events
}

/// A store in `dir` (segments of 1 MiB) holding [`long_history`] of 30,000
/// jobs, more than 70,000 events, left without a checkpoint: every open
/// replays it all. Its first event's sequence number, and every job as the
/// administrator sees it.
fn long_store(dir: &Path, clock: &Arc<ManualClock>) -> (u64, Vec<Job>) {
    let engine = Engine::open(dir, small_segments(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    let first = engine.next_seq();
    let events = long_history(30_000, support::t("2025-06-01T00:00:00Z").micros());
    assert!(events.len() > 70_000);
    for chunk in events.chunks(5_000) {
        admin.load(chunk.to_vec()).unwrap();
    }
    drop(admin);
    let live = dump(&engine);
    assert_eq!(live.len(), 30_000);
    drop(engine); // no clean close: no checkpoint, the whole log is replayed
    (first, live)
}

/// A replay of more than 65,536 events (`engine/open.rs`, `PIPELINE_EVENTS`)
/// reads and decodes on one thread and applies on another: it gives the
/// live state, stops exactly at the event asked for whatever batch that
/// falls in, and a damaged frame far into the log refuses the open, naming
/// the segment and the frame, as the one-thread replay does.
#[test]
fn a_long_replay_on_two_threads_equals_the_live_state_and_stops_at_damage() {
    use joblog::domain::Event;
    use joblog::projection::query::Visibility;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (first, live) = long_store(dir.path(), &clock);
    let events = long_history(30_000, 0);
    let total = events.len() as u64;
    // Where each job's creation is (the same places whatever the base time).
    let created_at_seq: Vec<u64> =
        (first..).zip(&events).filter(|(_, e)| matches!(e.event, Event::JobCreated(_))).map(|(seq, _)| seq).collect();

    let engine = Engine::open(dir.path(), small_segments(), clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None);
    assert!(engine.open_report().events_replayed >= total);
    assert_eq!(dump(&engine), live);
    assert_eq!(engine.state().check_indices(), Vec::<String>::new());
    // Up to an event inside a batch, at a batch's end, and past the end.
    for upto in [first + 40_001, first + 50 * 1024 - 1, first + total + 10] {
        let then = engine.replay_until_seq(upto).unwrap();
        let created = created_at_seq.iter().filter(|&&s| s <= upto).count();
        assert_eq!(then.job_count(), created, "up to event {upto}");
        assert_eq!(then.last_seq(), upto.min(first + total - 1));
        assert_eq!(then.count(&Filter::default(), &Visibility::All).unwrap(), created);
    }
    let segments = engine.segments();
    drop(engine);

    // One byte flipped in the middle of a sealed segment three quarters
    // into the log, with the whole-segment checksums not checked on open:
    // the replay's own frame checks find it.
    assert!(segments.len() > 4, "{} segments", segments.len());
    let seg = &segments[segments.len() * 3 / 4];
    let mut bytes = std::fs::read(&seg.path).unwrap();
    let flip = seg.published_bytes as usize / 2;
    bytes[flip] ^= 0x10;
    std::fs::write(&seg.path, &bytes).unwrap();
    let config = || Config { log: LogConfig { verify_on_open: false, ..small_segments().log }, ..small_segments() };
    for read_only in [false, true] {
        match open_as(dir.path(), config(), &clock, read_only) {
            Err(joblog::Error::Corrupt { file: Some(file), offset: Some(offset), .. }) => {
                assert_eq!(file, seg.path);
                assert!(offset as usize <= flip && flip - (offset as usize) < 400, "frame at {offset}, flip at {flip}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a damaged log opened"),
        }
    }
}

/// A long store in `dir`, its log open, and after its events a transition
/// of a job that does not exist (its time and sequence number).
fn long_store_and_a_stranger(dir: &Path, clock: &Arc<ManualClock>) -> (joblog::log::Log, Timestamp, u64) {
    use joblog::domain::{Action, Actor, Envelope, Event, Status, EVENT_VERSION};
    long_store(dir, clock);
    let log = joblog::log::Log::open(dir.join("segments"), small_segments().log).unwrap();
    let at = Timestamp::from_micros(support::t("2025-07-01T00:00:00Z").micros());
    let stranger = support::step(uuid::Uuid::from_u128(42), Action::Lock, Status::READY, Status::IN_PROGRESS);
    let env = Envelope { version: EVENT_VERSION, at, actor: Actor::System, event: Event::Transition(stranger) };
    let bad = log.append(&env.encode().unwrap()).unwrap();
    (log, at, bad)
}

/// Neither open of the store in `dir` opens it: both name event `bad`, a
/// transition of a job that does not exist.
fn refused_at(dir: &Path, clock: &Arc<ManualClock>, bad: u64) {
    for read_only in [false, true] {
        match open_as(dir, small_segments(), clock, read_only) {
            Err(joblog::Error::Corrupt { seq, reason, .. }) => {
                assert_eq!(seq, Some(bad), "{reason}");
                assert!(reason.to_string().contains("unknown job"), "{reason}");
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a log the state cannot take opened"),
        }
    }
}

/// An event that checks (its frame's CRC holds) but that the state cannot
/// take, a transition of a job that does not exist, far into a long log
/// with 70,000 more events after it: the applier's refusal ends the replay
/// on both threads, and the open names that event; nothing hangs, nothing
/// opens.
#[test]
fn a_long_replay_refuses_an_event_the_state_cannot_take_on_either_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, at, bad) = long_store_and_a_stranger(dir.path(), &clock);
    for chunk in long_history(20_000, at.micros() + 1).chunks(1_000) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|e| e.encode().unwrap()).collect();
        log.append_batch(joblog::log::Batch::from_payloads(payloads.iter().map(Vec::as_slice))).unwrap();
    }
    log.close().unwrap();
    refused_at(dir.path(), &clock, bad);
}

/// A replay from the log keeps its memory bounded: whenever it holds
/// `replay_spill_rows` more jobs, its Completed jobs move into cold runs
/// (ARCHITECTURE.md, "Replay in bounded memory"). Read-only, in a
/// temporary directory removed with the state (the runs unlinked at once);
/// writable, in the store's checkpoint directory, after every run file
/// already there (an older checkpoint's run is not overwritten), named by
/// the next checkpoint; a writable open first removes the runs no
/// checkpoint names. (It looks after each batch the replay hands over.)
/// Through resubmissions (which thaw a spilled run) and deletions by id
/// and by criteria of jobs already spilled, every view, count and history is the
/// live state's, and `verify` (a replay of its own) finds nothing.
#[test]
fn a_replay_in_bounded_memory_spills_cold_runs_and_equals_the_live_state() {
    use joblog::domain::State;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    populate(&engine, &clock, 1_200);
    let admin = engine.session("admin").unwrap();
    let done = Filter { state: Some(State::Completed), ..Filter::default() };
    let (oldest, _) = admin.list(&done, None, 1_000).unwrap();
    let oldest: Vec<_> = oldest.iter().rev().map(|j| j.id).collect();
    admin.delete_jobs(&oldest[..5]).unwrap();
    // Changes to jobs spilled by then (each thaws its run while the replay
    // keeps no index), one of them deleted by id after its thaw.
    admin.resubmit(oldest[10], None).unwrap();
    admin.delete_jobs(&oldest[10..11]).unwrap();
    admin.resubmit(oldest[300], None).unwrap();
    populate(&engine, &clock, 400);
    clock.advance_secs(3 * 86_400);
    assert!(admin.delete(&canceled_bulk_email(), 1_000).unwrap().deleted > 0);
    populate(&engine, &clock, 1_000);
    let (live, live_counts) = (dump(&engine), view_counts(&engine));
    let histories = |e: &Engine| {
        let admin = e.session("admin").unwrap();
        live.iter().step_by(37).map(|j| admin.history(j.id).unwrap()).collect::<Vec<_>>()
    };
    let live_histories = histories(&engine);
    drop(admin);
    drop(engine); // no clean close: no checkpoint, the whole log is replayed
    let snapshots = dir.path().join("snapshots");
    let junk = snapshots.join(format!("cold-{:020}.run", 500));
    std::fs::create_dir_all(&snapshots).unwrap();
    std::fs::write(&junk, b"a run no checkpoint names").unwrap();
    let spill = Config { replay_spill_rows: 25, ..config() };

    let engine = Engine::open_read_only(dir.path(), spill.clone(), clock.clone()).unwrap();
    let runs = engine.state().cold_runs();
    assert!(runs.len() >= 3, "{} runs spilled", runs.len());
    let scratch = runs[0].path().parent().unwrap().to_path_buf();
    assert!(!scratch.starts_with(dir.path()), "a read-only replay writes nothing in the store");
    drop(runs);
    assert_eq!(dump(&engine), live);
    assert_eq!(view_counts(&engine), live_counts);
    assert_eq!(histories(&engine), live_histories);
    assert!(!runs_in(&scratch), "a read-only replay's runs are unlinked as soon as they are mapped");
    drop(engine);
    assert!(!scratch.exists(), "the scratch directory goes with the state");
    assert!(junk.exists(), "a read-only open removes nothing");

    // A writable open removes the runs no checkpoint names (an earlier
    // open's spills, left by a crash) before its first spill, and only
    // then (finding them reads every checkpoint); this one's stay unnamed
    // too when it ends without a checkpoint.
    drop(Engine::open(dir.path(), config(), clock.clone()).unwrap());
    assert!(junk.exists(), "an open that does not spill reads no checkpoint to clean up");
    let engine = Engine::open(dir.path(), spill.clone(), clock.clone()).unwrap();
    assert!(!junk.exists(), "an unnamed run outlived a writable open");
    assert!(!engine.state().cold_runs().is_empty());
    drop(engine);
    assert!(runs_in(&snapshots));

    // With a checkpoint there that cannot be read (it may name any run),
    // nothing is removed, and the spills take ids after every run file.
    std::fs::write(snapshots.join("snapshot-00000000000000000001.bin"), b"damaged").unwrap();
    let stale = snapshots.join(format!("cold-{:020}.run", 1_000));
    std::fs::write(&stale, b"a run of an older checkpoint").unwrap();
    let engine = Engine::open(dir.path(), spill, clock.clone()).unwrap();
    assert_eq!(engine.open_report().checkpoint_seq, None);
    let runs = engine.state().cold_runs();
    assert!(runs.len() >= 3, "{} runs spilled", runs.len());
    assert!(runs.iter().all(|r| r.id() > 1_000 && r.path().starts_with(&snapshots)));
    drop(runs);
    assert!(std::fs::read(&stale).unwrap() == b"a run of an older checkpoint", "an older run was overwritten");
    std::fs::remove_file(snapshots.join("snapshot-00000000000000000001.bin")).unwrap();
    assert_eq!(dump(&engine), live);
    assert_eq!(view_counts(&engine), live_counts);
    assert_eq!(histories(&engine), live_histories);
    assert_eq!(engine.state().check_indices(), Vec::<String>::new());
    // The audit replay of an open engine spills too.
    let far = clock_plus(&clock, 86_400);
    let replayed = engine.replay_until(far).unwrap();
    assert!(replayed.cold_runs().len() >= 3);
    assert_eq!(replayed.job_count(), live.len());
    drop(replayed);
    assert_eq!(engine.verify().problems, Vec::<String>::new());
    engine.close().unwrap();
    assert!(!stale.exists(), "a checkpoint removes the runs no checkpoint names");

    let engine = Engine::open(dir.path(), config(), clock.clone()).unwrap();
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(dump(&engine), live);
    assert_eq!(view_counts(&engine), live_counts);
    assert_eq!(histories(&engine), live_histories);
}

/// Whether `dir` holds a run file.
fn runs_in(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".run"))
}

/// A replay that cannot spill its Completed jobs into cold runs (no
/// temporary directory to be had; a full disk) goes on in memory: the same
/// state, and no file left behind. The read-only half runs in a child
/// process of this test binary whose `TMPDIR` names no directory (the
/// tests of one process share their environment); the writable half on a
/// small tmpfs, filled (root only; skipped, saying so, elsewhere).
#[test]
fn a_replay_that_cannot_spill_goes_on_in_memory() {
    const CHILD: &str = "JOBLOG_TEST_SPILL_STORE";
    let spill = Config { replay_spill_rows: 16, ..config() };
    if let Ok(dir) = std::env::var(CHILD) {
        let engine = Engine::open_read_only(&dir, spill, clock()).unwrap();
        assert!(engine.state().cold_runs().is_empty());
        let unbounded = Engine::open_read_only(&dir, Config { replay_spill_rows: 0, ..config() }, clock()).unwrap();
        assert_eq!(dump(&engine), dump(&unbounded));
        assert_eq!(
            engine.replay_until(clock_plus(&clock(), 86_400)).unwrap().job_count(),
            unbounded.state().job_count()
        );
        return;
    }
    let store = |dir: &Path| {
        let clock = clock();
        let engine = Engine::open(dir, config(), clock.clone()).unwrap();
        populate(&engine, &clock, 1_500);
        let live = dump(&engine);
        drop(engine); // no checkpoint: every open replays the log
        live
    };

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(store(dir.path()).len(), 1_500);
    let before = support::tree(dir.path());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_replay_that_cannot_spill_goes_on_in_memory", "--nocapture"])
        .env(CHILD, dir.path())
        .env("TMPDIR", dir.path().join("no such directory"))
        .output()
        .unwrap();
    assert!(out.status.success(), "the child failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"), "the child ran no test");
    assert_eq!(support::tree(dir.path()), before, "a read-only replay wrote in the store");

    let Some(disk) = support::SmallDisk::mount("24m") else { return };
    let at = disk.path().join("store");
    let live = store(&at);
    let filler = support::fill_disk(disk.path(), 0);
    let engine = Engine::open(&at, spill, clock()).unwrap();
    assert!(engine.state().cold_runs().is_empty());
    assert_eq!(dump(&engine), live);
    let runs: Vec<_> = std::fs::read_dir(at.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(runs.is_empty(), "files left in the checkpoint directory: {runs:?}");
    drop(engine);
    std::fs::remove_file(filler).unwrap();
}

/// A replay hands its events from the reading thread over in batches
/// whose creations' strings stay under a bound (`engine/open.rs`,
/// `BATCH_TEXT`, 1 MiB): six creations whose regarding ids take 2.4 MiB
/// together go over in several batches, on two threads (30,000 jobs'
/// events follow them), and every job reads back as written, on either
/// open.
#[test]
fn creations_with_long_strings_replay_as_written() {
    use joblog::domain::{Actor, Clock, Envelope, Event, EVENT_VERSION};
    use joblog::log::Log;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    drop(Engine::open(dir.path(), config(), clock.clone()).unwrap());
    let log = Log::open(dir.path().join("segments"), config().log).unwrap();
    let at = clock.now();
    let mut written = vec![];
    for i in 0..6u8 {
        let mut job = Job::new("long", OperationType::WORKFLOW, "admin", "root", at);
        let id = char::from(b'a' + i).to_string().repeat(400 << 10);
        job.regarding = Some(Regarding { table: "contact".into(), id });
        let event = Event::JobCreated(Box::new(job.clone()));
        let env = Envelope { version: EVENT_VERSION, at, actor: Actor::User("admin".into()), event };
        log.append(&env.encode().unwrap()).unwrap();
        written.push(job);
    }
    let history = long_history(30_000, at.micros() + 1);
    for chunk in history.chunks(1_000) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|e| e.encode().unwrap()).collect();
        log.append_batch(joblog::log::Batch::from_payloads(payloads.iter().map(Vec::as_slice))).unwrap();
    }
    log.close().unwrap();
    assert!(history.len() > 65_536, "{} events: the replay stays on one thread", history.len());
    for read_only in [false, true] {
        let engine = open_as(dir.path(), config(), &clock, read_only).unwrap();
        let admin = engine.session("admin").unwrap();
        for job in &written {
            assert_eq!(admin.get(job.id).unwrap().regarding, job.regarding);
        }
        assert_eq!(engine.state().job_count(), 30_006);
        assert_eq!(engine.state().check_indices(), Vec::<String>::new());
    }
}

/// A frame whose checksum holds but whose event cannot be decoded, a few
/// events after one the state cannot take (a transition of a job that
/// does not exist), in the same batch: the open names the earlier one,
/// which the applier refuses before the reader's error is reported.
#[test]
fn a_refused_event_is_reported_before_an_undecodable_one_after_it() {
    use joblog::domain::EVENT_VERSION;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let (log, at, bad) = long_store_and_a_stranger(dir.path(), &clock);
    for e in long_history(2, at.micros() + 1) {
        log.append(&e.encode().unwrap()).unwrap();
    }
    let garbage = log.append(&[EVENT_VERSION as u8, 0xff, 0xff, 0xff]).unwrap();
    assert!(garbage > bad + 1);
    log.close().unwrap();
    refused_at(dir.path(), &clock, bad);
}
