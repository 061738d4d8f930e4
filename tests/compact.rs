//! Compaction at the log level: rewritten segments keep every surviving
//! record with its sequence number, give the space back, survive reopen and
//! a crash at any step, and leave readers of the old segments undisturbed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use joblog::log::{Batch, Log, LogConfig, LogError, Position};

fn config() -> LogConfig {
    LogConfig { segment_size_bytes: LogConfig::MIN_SEGMENT_BYTES, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:06} {}", "y".repeat((i % 40) as usize)).into_bytes()
}

/// A log of `n` records appended in batches of three.
fn log_of(dir: &Path, n: u64) -> Log {
    let log = Log::open(dir, config()).unwrap();
    let mut i = 1;
    while i <= n {
        let batch: Vec<Vec<u8>> = (i..(i + 3).min(n + 1)).map(payload).collect();
        log.append_batch(Batch::from_payloads(batch.iter().map(Vec::as_slice))).unwrap();
        i += 3;
    }
    log
}

fn records(log: &Log) -> Vec<(u64, Position, Vec<u8>)> {
    log.iter_from(0).map(|r| r.map(|r| (r.seq(), r.position(), r.payload().to_vec())).unwrap()).collect()
}

/// Drop plan for the records whose sequence numbers `drop` selects.
fn plan(recs: &[(u64, Position, Vec<u8>)], drop: impl Fn(u64) -> bool) -> BTreeMap<u64, Vec<u64>> {
    let mut plan: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (_, pos, _) in recs.iter().filter(|r| drop(r.0)) {
        plan.entry(pos.segment).or_default().push(pos.offset);
    }
    plan
}

#[test]
fn compaction_keeps_survivors_with_their_numbers_and_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 600);
    let before = records(&log);
    // Drop two thirds, including every record of the first segments and
    // some of the active one (which compaction seals first).
    let dropped = |s: u64| s <= 150 || !s.is_multiple_of(3);
    let moves = log.install(log.rewrite(&plan(&before, dropped)).unwrap()).unwrap();
    assert!(moves.frames_dropped >= 400 && moves.bytes_after < moves.bytes_before);
    assert!(moves.segments.iter().any(|s| !s.kept), "a segment left empty is removed");

    let expect: Vec<(u64, Vec<u8>)> = before.iter().filter(|r| !dropped(r.0)).map(|r| (r.0, r.2.clone())).collect();
    let got = |log: &Log| records(log).into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>();
    assert_eq!(got(&log), expect);
    // The moves say where each survivor went.
    let moved: BTreeMap<(u64, u64), u64> =
        moves.segments.iter().flat_map(|s| s.moved.iter().map(|&(o, n)| ((s.segment, o), n))).collect();
    for (seq, pos, body) in before.iter().filter(|r| !dropped(r.0) && moved.contains_key(&(r.1.segment, r.1.offset))) {
        let new = Position { segment: pos.segment, offset: moved[&(pos.segment, pos.offset)] };
        let rec = log.read_at(new).unwrap();
        assert_eq!((rec.seq(), rec.payload()), (*seq, &body[..]));
    }
    assert!(log.verify().unwrap().ok());
    let next = log.append(b"after").unwrap();
    assert_eq!(next, 601, "sequence numbers are never reused");
    drop(log);

    let size_before = support::dir_bytes(dir.path());
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(log.recovery().obsolete_files_removed.is_empty(), "install removed the old files itself");
    let mut expect = expect;
    expect.push((601, b"after".to_vec()));
    assert_eq!(got(&log), expect);
    assert!(log.verify().unwrap().ok());
    // The same files, less the mark of the clean close the reopen consumed.
    assert_eq!(support::dir_bytes(dir.path()), size_before - joblog::log::closed::LEN as u64);

    // A second compaction rewrites a rewritten segment again.
    let recs = records(&log);
    let again = log.install(log.rewrite(&plan(&recs, |s| s.is_multiple_of(2))).unwrap()).unwrap();
    assert!(again.frames_dropped > 0);
    let left: Vec<u64> = records(&log).iter().map(|r| r.0).collect();
    assert!(left.iter().all(|s| !s.is_multiple_of(2) && !dropped(*s) || *s == 601));
    assert!(log.verify().unwrap().ok());
}

#[test]
fn a_rewrite_not_installed_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 300);
    let before = records(&log);
    let files = |d: &Path| {
        let mut v: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    log.seal().unwrap();
    let sealed_files = files(dir.path());
    let rewrite = log.rewrite(&plan(&before, |s| s.is_multiple_of(2))).unwrap();
    assert!(!rewrite.is_empty());
    drop(rewrite);
    assert_eq!(files(dir.path()), sealed_files, "the new files are removed");
    assert_eq!(records(&log).len(), before.len());

    // A crash after the new files were written but before the manifest
    // named them: open removes them, and the log is the old one.
    let rewrite = log.rewrite(&plan(&before, |s| s.is_multiple_of(2))).unwrap();
    std::mem::forget(rewrite);
    drop(log);
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(!log.recovery().obsolete_files_removed.is_empty());
    let after: Vec<(u64, Vec<u8>)> = records(&log).into_iter().map(|r| (r.0, r.2)).collect();
    assert_eq!(after, before.into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>());
    assert!(log.verify().unwrap().ok());
}

#[test]
fn a_bad_plan_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 200);
    let before = records(&log);
    let first = before[0].1;
    let bad = BTreeMap::from([(first.segment, vec![first.offset + 1])]);
    assert!(matches!(log.rewrite(&bad), Err(LogError::BadPosition { .. })));
    let nowhere = BTreeMap::from([(999_999, vec![40])]);
    assert!(matches!(log.rewrite(&nowhere), Err(LogError::BadPosition { .. })));
    assert_eq!(records(&log).len(), before.len());
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));

    // Two rewrites of the same segment: the second to install is refused.
    let p = plan(&before, |s| s == 1);
    let (a, b) = (log.rewrite(&p).unwrap(), log.rewrite(&p).unwrap());
    log.install(a).unwrap();
    assert!(matches!(log.install(b), Err(LogError::Conflict(_))));
    assert_eq!(records(&log).len(), before.len() - 1);
    assert!(log.verify().unwrap().ok());
}

#[test]
fn readers_of_old_segments_and_appenders_go_on_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 900);
    let before = records(&log);
    let mut reader = log.iter_from(0);
    let first: Vec<u64> = reader.by_ref().take(10).map(|r| r.unwrap().seq()).collect();
    std::thread::scope(|s| {
        let appender = s.spawn(|| (0..300).map(|i| log.append(format!("during {i}").as_bytes()).unwrap()).collect());
        let rewrite = log.rewrite(&plan(&before, |s| !s.is_multiple_of(5))).unwrap();
        log.install(rewrite).unwrap();
        let appended: Vec<u64> = appender.join().unwrap();
        // The reader started before compaction: it sees the old segments
        // to their end, then the new ones, never a record twice.
        let rest: Vec<u64> = reader.map(|r| r.unwrap().seq()).collect();
        let seen: Vec<u64> = first.iter().copied().chain(rest).collect();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, no record twice");
        let survivors: BTreeSet<u64> = records(&log).iter().map(|r| r.0).collect();
        assert!(appended.iter().all(|s| survivors.contains(s)), "no append lost");
        assert!((1..=900).all(|s| survivors.contains(&s) == s.is_multiple_of(5)));
    });
    assert!(log.verify().unwrap().ok());
}

#[test]
fn compaction_on_a_full_disk_fails_cleanly_and_works_once_space_is_freed() {
    let Some(disk) = support::SmallDisk::mount("1m") else { return };
    let dir = disk.path().join("log");
    let cfg = LogConfig { segment_size_bytes: 128 << 10, ..LogConfig::default() };
    let log = Log::open(&dir, cfg.clone()).unwrap();
    for i in 1..=2500u64 {
        log.append(&payload(i)).unwrap();
    }
    log.seal().unwrap();
    let before = records(&log);
    // Fill what is left of the disk.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        while f.write_all(&[7u8; 4096]).and_then(|()| f.sync_all()).is_ok() {}
    }
    let p = plan(&before, |s| !s.is_multiple_of(3));
    let err = match log.rewrite(&p) {
        Err(e) => e,
        Ok(r) => log.install(r).unwrap_err(),
    };
    match &err {
        LogError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(28), "ENOSPC expected: {err}"),
        other => panic!("expected an I/O error, got {other}"),
    }
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp") && n != "next-segment.tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(records(&log).len(), before.len(), "nothing changed");
    assert!(log.verify().unwrap().ok());
    drop(log);

    // Space freed: the same compaction goes through.
    fs::remove_file(&filler).unwrap();
    let log = Log::open(&dir, cfg).unwrap();
    let before = records(&log);
    let done = log.install(log.rewrite(&plan(&before, |s| !s.is_multiple_of(3))).unwrap()).unwrap();
    assert!(done.frames_dropped > 1000);
    let left: Vec<u64> = records(&log).iter().map(|r| r.0).collect();
    assert!(left.iter().all(|s| s.is_multiple_of(3)));
    assert_eq!(log.append(b"after").unwrap(), 2501);
    assert!(log.verify().unwrap().ok());
}
