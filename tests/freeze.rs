//! Cold segments seen from outside the log: a freeze moves frames out of
//! the hot segments into cold ones and changes where they live, never the
//! sequence the log yields, whatever readers, reopens, removals, rewrites,
//! damage and interrupted installs do (ARCHITECTURE.md, "Cold segments";
//! docs/format.md, "Manifest").

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use joblog::log::{Batch, Log, LogConfig, LogError, Position, COLD};

const SMALL: u64 = 16 << 10;

fn config() -> LogConfig {
    LogConfig { segment_size_bytes: SMALL, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("event {i:06} {}", "x".repeat((i % 70) as usize)).into_bytes()
}

/// A log of `n` payloads in atomic batches of 1 to 5, over small segments.
fn log_of(dir: &Path, n: u64, rng: &mut fastrand::Rng) -> Log {
    let log = Log::open(dir, config()).unwrap();
    let mut i = 1;
    while i <= n {
        let k = rng.u64(1..=5).min(n - i + 1);
        let payloads: Vec<Vec<u8>> = (i..i + k).map(payload).collect();
        log.append_batch(Batch::from_payloads(payloads.iter().map(Vec::as_slice))).unwrap();
        i += k;
    }
    log
}

/// (sequence number, payload, position) of every record, by the tailing
/// iterator; checked equal to what the fast scan gives.
fn records(log: &Log) -> Vec<(u64, Vec<u8>, Position)> {
    let by_iter: Vec<_> =
        log.iter_from(0).map(|r| r.map(|r| (r.seq(), r.payload().to_vec(), r.position())).unwrap()).collect();
    let mut by_scan = Vec::new();
    log.scan_from(0, |r| -> Result<_, LogError> {
        by_scan.push((r.seq, r.payload.to_vec(), r.position));
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(by_iter, by_scan, "the iterator and the scan disagree");
    by_iter
}

fn seqs_and_payloads(records: &[(u64, Vec<u8>, Position)]) -> Vec<(u64, Vec<u8>)> {
    records.iter().map(|(s, p, _)| (*s, p.clone())).collect()
}

/// Splits a random share of the records into `groups` groups.
fn pick(
    records: &[(u64, Vec<u8>, Position)],
    share: f64,
    groups: usize,
    rng: &mut fastrand::Rng,
) -> Vec<Vec<Position>> {
    let mut out = vec![Vec::new(); groups];
    for (_, _, p) in records {
        if p.segment & COLD == 0 && rng.f64() < share {
            out[rng.usize(..groups)].push(*p);
        }
    }
    // Any order inside a group.
    for g in &mut out {
        rng.shuffle(g);
    }
    out
}

fn cold_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cold-"))
        .collect()
}

#[test]
fn a_freeze_moves_frames_and_never_changes_the_sequence() {
    for seed in 0..6 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().unwrap();
        let log = log_of(dir.path(), 900, &mut rng);
        let before = records(&log);
        let expected = seqs_and_payloads(&before);

        // Frames from every segment, the active one too, in groups: a few,
        // or more than a freeze writes at once (64), each spread over the
        // whole log, so that some start after the pass went by their
        // first frame.
        let n = if seed % 2 == 0 { rng.usize(1..5) } else { rng.usize(70..200) };
        let groups = pick(&before, 0.6, n, &mut rng);
        let report = log.install(log.freeze(&groups).unwrap()).unwrap();
        let after = records(&log);
        assert_eq!(seqs_and_payloads(&after), expected, "seed {seed}: the sequence changed");
        // Each frozen frame is where the report says, with its payload.
        let by_old: BTreeMap<Position, &Vec<u8>> = before.iter().map(|(_, p, at)| (*at, p)).collect();
        assert_eq!(report.frozen.len(), groups.iter().filter(|g| !g.is_empty()).count());
        for (group, new) in groups.iter().filter(|g| !g.is_empty()).zip(&report.frozen) {
            assert_eq!(group.len(), new.len());
            for (old, new) in group.iter().zip(new) {
                assert!(new.segment & COLD != 0);
                assert_eq!(log.read_written(*new).unwrap().payload(), by_old[old].as_slice(), "seed {seed}");
            }
        }
        // The hot frames left moved as the report says.
        for s in &report.segments {
            for (from, to) in &s.moved {
                let old = Position { segment: s.segment, offset: *from };
                let new = Position { segment: s.segment, offset: *to };
                assert_eq!(log.read_written(new).unwrap().payload(), by_old[&old].as_slice());
            }
        }
        assert!(log.verify().unwrap().ok(), "seed {seed}: {:?}", log.verify().unwrap().problems);
        // Reading from the middle merges from there.
        let from = rng.u64(1..=900);
        let tail: Vec<u64> = log.iter_from(from).map(|r| r.unwrap().seq()).collect();
        assert_eq!(tail, (from..=900).collect::<Vec<_>>(), "seed {seed}: iter_from({from})");

        // Appends go on; a second freeze takes frames the first left.
        for i in 901..=1000 {
            log.append(&payload(i)).unwrap();
        }
        let expected: Vec<(u64, Vec<u8>)> = (1..=1000).map(|i| (i, payload(i))).collect();
        let before = records(&log);
        let groups = pick(&before, 0.5, 2, &mut rng);
        log.install(log.freeze(&groups).unwrap()).unwrap();
        assert_eq!(seqs_and_payloads(&records(&log)), expected, "seed {seed}: second freeze");
        log.close().unwrap();

        // Reopened, the same, every segment checked whole.
        let log = Log::open(dir.path(), LogConfig { verify_on_open: true, ..config() }).unwrap();
        assert!(log.recovery().cold_segments >= 2, "seed {seed}");
        assert_eq!(seqs_and_payloads(&records(&log)), expected, "seed {seed}: after reopening");

        // A cold segment removed whole takes its frames, and only those.
        let cold: Vec<Position> = records(&log).iter().map(|r| r.2).filter(|p| p.segment & COLD != 0).collect();
        let key = cold[rng.usize(..cold.len())].segment;
        let gone: BTreeSet<u64> = records(&log).iter().filter(|r| r.2.segment == key).map(|r| r.0).collect();
        let report = log.install(log.remove_cold(&[key]).unwrap()).unwrap();
        assert_eq!(report.frames_dropped, gone.len() as u64);
        let left: Vec<(u64, Vec<u8>)> = expected.iter().filter(|(s, _)| !gone.contains(s)).cloned().collect();
        assert_eq!(seqs_and_payloads(&records(&log)), left, "seed {seed}: after a removal");
        assert!(!cold_files(dir.path()).iter().any(|n| n.contains(&format!("{:020}", key & !COLD))));

        // A cold segment rewritten without some of its frames.
        let recs = records(&log);
        let key = recs.iter().find(|r| r.2.segment & COLD != 0).unwrap().2.segment;
        let dropped: Vec<&(u64, Vec<u8>, Position)> = recs.iter().filter(|r| r.2.segment == key).step_by(2).collect();
        let drop = BTreeMap::from([(key, dropped.iter().map(|r| r.2.offset).collect::<Vec<_>>())]);
        log.install(log.rewrite(&drop).unwrap()).unwrap();
        let dropped: BTreeSet<u64> = dropped.iter().map(|r| r.0).collect();
        let left: Vec<(u64, Vec<u8>)> = left.into_iter().filter(|(s, _)| !dropped.contains(s)).collect();
        assert_eq!(seqs_and_payloads(&records(&log)), left, "seed {seed}: after a cold rewrite");
        log.close().unwrap();
        let log = Log::open(dir.path(), LogConfig { verify_on_open: true, ..config() }).unwrap();
        assert_eq!(seqs_and_payloads(&records(&log)), left, "seed {seed}: reopened after a cold rewrite");
        assert!(log.verify().unwrap().ok());
    }
}

/// The lengths a checkpoint's plan asks for (`written_frame_lens`) are
/// read in cold segments as in hot ones, in the order asked, and so are
/// the frames a `Frames` snapshot reads.
#[test]
fn frame_lengths_and_frames_are_read_in_cold_segments_too() {
    let mut rng = fastrand::Rng::with_seed(11);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 900, &mut rng);
    let groups = pick(&records(&log), 0.5, 4, &mut rng);
    log.install(log.freeze(&groups).unwrap()).unwrap();
    let mut all = records(&log);
    assert!(all.iter().any(|r| r.2.segment & COLD != 0), "frames in cold segments");
    assert!(all.iter().any(|r| r.2.segment & COLD == 0), "frames in hot segments");
    rng.shuffle(&mut all);
    let asked: Vec<Position> = all.iter().map(|r| r.2).collect();
    let want: Vec<u32> =
        all.iter().map(|r| u32::try_from(joblog::log::format::frame_len(r.1.len())).unwrap()).collect();
    assert_eq!(log.written_frame_lens(&asked).unwrap(), want);
    let frames = log.frames();
    for (seq, payload, pos) in &all {
        let r = frames.read_written(*pos).unwrap();
        assert_eq!((r.seq, r.payload), (*seq, &payload[..]));
    }
}

#[test]
fn a_tailing_reader_across_a_freeze_sees_every_frame_once() {
    let mut rng = fastrand::Rng::with_seed(7);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 800, &mut rng);
    let all = records(&log);
    let mut iter = log.iter_from(1);
    let mut seen: Vec<u64> = (0..400).map(|_| iter.next().unwrap().unwrap().seq()).collect();
    // Frames behind the reader, ahead of it, and in the segment it reads.
    let groups = pick(&all, 0.5, 3, &mut rng);
    log.install(log.freeze(&groups).unwrap()).unwrap();
    for i in 801..=850 {
        log.append(&payload(i)).unwrap();
    }
    seen.extend(iter.map(|r| r.unwrap().seq()));
    assert_eq!(seen, (1..=850).collect::<Vec<_>>());
}

#[test]
fn a_refused_freeze_changes_nothing() {
    let mut rng = fastrand::Rng::with_seed(3);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 300, &mut rng);
    let before = records(&log);
    let files = |d: &Path| {
        let mut v: Vec<String> =
            fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    log.seal().unwrap();
    let listed = files(dir.path());
    let p = before[10].2;
    let q = before[200].2;
    let at = |i: usize| before[i].2;
    let r = at(100);
    for (groups, why) in [
        (vec![vec![p, q], vec![p]], "a frame given twice"),
        (vec![vec![q, Position { offset: p.offset + 1, ..p }]], "no frame starts there"),
        // Found in the middle of the pass: groups were written whole, and
        // others begun, on either core.
        (
            vec![
                vec![at(5), at(250)],
                vec![at(6), Position { offset: r.offset + 1, ..r }],
                vec![at(7)],
                vec![at(8), at(290)],
            ],
            "no frame starts there",
        ),
        (vec![vec![Position { segment: 999_999, offset: 64 }]], "no such segment"),
    ] {
        match log.freeze(&groups) {
            Err(LogError::BadPosition { reason, .. }) => assert_eq!(reason, why),
            Err(e) => panic!("refused, but not as a bad position: {e}"),
            Ok(_) => panic!("accepted {why}"),
        }
        assert_eq!(files(dir.path()), listed, "{why}: files left behind");
        assert_eq!(records(&log), before, "{why}: the log changed");
    }
    // Frozen once, a frame cannot be frozen again.
    let report = log.install(log.freeze(&[vec![p]]).unwrap()).unwrap();
    let cold = report.frozen[0][0];
    assert!(matches!(log.freeze(&[vec![cold]]), Err(LogError::BadPosition { .. })));
    // A freeze never installed leaves no file behind.
    let q = records(&log)[200].2;
    let listed = files(dir.path());
    drop(log.freeze(&[vec![q]]).unwrap());
    assert_eq!(files(dir.path()), listed);
    assert_eq!(seqs_and_payloads(&records(&log)), seqs_and_payloads(&before));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_crash_on_either_side_of_the_manifest_leaves_one_whole_log() {
    let mut rng = fastrand::Rng::with_seed(11);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 600, &mut rng);
    let expected = seqs_and_payloads(&records(&log));
    let groups = pick(&records(&log), 0.7, 3, &mut rng);
    let freeze = log.freeze(&groups).unwrap();
    // Files written and synced, the manifest not yet replaced.
    let before_install = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), before_install.path());
    log.install(freeze).unwrap();
    // The manifest replaced, the old files not yet unlinked.
    let after_install = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), after_install.path());
    for e in fs::read_dir(before_install.path()).unwrap() {
        let to = after_install.path().join(e.unwrap().file_name());
        if !to.exists() && !to.to_string_lossy().starts_with("cold-") {
            fs::copy(before_install.path().join(to.file_name().unwrap()), &to).unwrap();
        }
    }
    drop(log);
    for (d, cold) in [(before_install.path(), false), (after_install.path(), true)] {
        let log = Log::open(d, config()).unwrap();
        assert_eq!(seqs_and_payloads(&records(&log)), expected);
        assert_eq!(log.recovery().cold_segments > 0, cold);
        assert!(!log.recovery().obsolete_files_removed.is_empty(), "what the manifest does not list goes");
        assert_eq!(cold_files(d).is_empty(), !cold);
        assert!(log.verify().unwrap().ok());
    }
}

#[test]
fn damage_in_a_cold_segment_is_found_where_it_is_read() {
    let mut rng = fastrand::Rng::with_seed(5);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 400, &mut rng);
    let groups = pick(&records(&log), 0.5, 1, &mut rng);
    log.install(log.freeze(&groups).unwrap()).unwrap();
    log.close().unwrap();
    let name = cold_files(dir.path()).into_iter().next().unwrap();
    let path = dir.path().join(&name);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&path, bytes).unwrap();

    // Checked at open when asked to, refused naming the file.
    match Log::open(dir.path(), LogConfig { verify_on_open: true, ..config() }) {
        Err(e @ LogError::Corrupt { .. }) => assert!(e.to_string().contains(&name), "{e}"),
        Err(e) => panic!("refused, but not as corrupt: {e}"),
        Ok(_) => panic!("a damaged cold segment passed the open's check"),
    }
    // Otherwise found by the first read that meets it, and by verify.
    let log = Log::open(dir.path(), LogConfig { verify_on_open: false, ..config() }).unwrap();
    let err = log.iter_from(0).find_map(Result::err).expect("the damage was read past");
    assert!(err.to_string().contains(&name), "{err}");
    let err = log
        .scan_from(0, |_| -> Result<_, LogError> { Ok(std::ops::ControlFlow::Continue(())) })
        .expect_err("the scan read past the damage");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(log.verify().unwrap().problems.iter().any(|p| p.contains(&name)));
}

/// A scan of the whole log reads the segments it checks whole a few ahead
/// of itself, on a thread of its own (src/log/ahead.rs): damage in any of
/// them is still found where it is, each frame is still yielded once in
/// order, and a scan stopped early stops.
#[test]
fn a_scan_reading_ahead_finds_damage_in_any_cold_segment() {
    let mut rng = fastrand::Rng::with_seed(11);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 900, &mut rng);
    let expected = seqs_and_payloads(&records(&log));
    let groups = pick(&records(&log), 0.7, 6, &mut rng);
    log.install(log.freeze(&groups).unwrap()).unwrap();
    log.close().unwrap();
    let names: Vec<String> = cold_files(dir.path()).into_iter().collect();
    assert!(names.len() >= 4, "{names:?}");
    let reopened = Log::open(dir.path(), config()).unwrap();
    assert_eq!(seqs_and_payloads(&records(&reopened)), expected);
    let mut seen = 0;
    reopened
        .scan_from(0, |_| -> Result<_, LogError> {
            seen += 1;
            Ok(if seen == 10 { std::ops::ControlFlow::Break(()) } else { std::ops::ControlFlow::Continue(()) })
        })
        .unwrap();
    assert_eq!(seen, 10, "the scan went on after it was stopped");
    drop(reopened);

    for name in &names {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let path = copy.path().join(name);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 0x08;
        fs::write(&path, bytes).unwrap();
        let log = Log::open(copy.path(), LogConfig { verify_on_open: false, ..config() }).unwrap();
        let mut last = 0;
        let err = log
            .scan_from(0, |r| -> Result<_, LogError> {
                assert!(r.seq > last, "out of order after {last}: {}", r.seq);
                last = r.seq;
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .expect_err("the scan read past the damage");
        assert!(err.to_string().contains(name.as_str()), "{name}: {err}");
    }
}

#[test]
fn a_missing_cold_segment_refuses_the_open() {
    let mut rng = fastrand::Rng::with_seed(9);
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 200, &mut rng);
    let groups = pick(&records(&log), 0.5, 1, &mut rng);
    log.install(log.freeze(&groups).unwrap()).unwrap();
    log.close().unwrap();
    let name = cold_files(dir.path()).into_iter().next().unwrap();
    fs::remove_file(dir.path().join(&name)).unwrap();
    match Log::open(dir.path(), config()) {
        Err(e @ LogError::Corrupt { .. }) => assert!(e.to_string().contains(&name), "{e}"),
        Err(e) => panic!("refused, but not as corrupt: {e}"),
        Ok(_) => panic!("opened without a cold segment the manifest lists"),
    }
}
