//! The event log seen from outside: round trips, rolling, recovery of torn
//! tails, corruption, concurrency, locking.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use joblog::log::{Batch, Log, LogConfig, LogError, Sync, FRAME_HEADER_LEN, HEADER_LEN};

const SMALL: u64 = LogConfig::MIN_SEGMENT_BYTES;

fn config(segment_size_bytes: u64) -> LogConfig {
    LogConfig { segment_size_bytes, ..LogConfig::default() }
}

fn payload(i: u64) -> Vec<u8> {
    format!("event {i:06} {}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// A log with small segments holding `payload(1..=n)`.
fn small_log(dir: &Path, n: u64) -> Log {
    let log = Log::open(dir, config(SMALL)).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(&payload(i)).unwrap(), i);
    }
    log
}

fn all(log: &Log) -> Vec<(u64, Vec<u8>)> {
    log.iter_from(0).map(|r| r.map(|r| (r.seq(), r.payload().to_vec())).unwrap()).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn appends_survive_reopen_and_numbers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.append(b"one").unwrap(), 1);
    assert_eq!(log.append_batch(Batch::from_payloads([&b"two"[..], b"three"])).unwrap().seqs, 2..4);
    log.close().unwrap();

    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.recovery().active_frames, 3);
    assert_eq!(log.recovery().torn_bytes_dropped, 0);
    assert_eq!(log.append(b"four").unwrap(), 4);
    let got = all(&log);
    assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(got[2].1, b"three");
}

#[test]
fn segments_roll_seal_and_read_back_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path(), 2000);
    let segments = log.segments();
    assert!(segments.len() > 10, "expected many segments, got {}", segments.len());
    // Files are named by their first sequence number.
    for s in &segments {
        assert_eq!(s.path.file_name().unwrap().to_str().unwrap(), format!("{:020}.seg", s.first_seq));
    }
    let report = log.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.frames, 2000);
    drop(log);

    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    assert_eq!(log.recovery().sealed_segments, segments.len() - 1);
    let got = all(&log);
    assert_eq!(got.len(), 2000);
    for (i, (seq, p)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(*p, payload(*seq));
    }
    // Start in the middle of a middle segment.
    let mid = log.iter_from(1234).next().unwrap().unwrap();
    assert_eq!((mid.seq(), mid.payload()), (1234, &payload(1234)[..]));
    assert_eq!(log.iter_from(1234).count(), 2000 - 1233);
    assert_eq!(log.iter_from(5000).count(), 0);
}

#[test]
fn positions_give_random_access() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path(), 500);
    let positions: Vec<_> = log.iter_from(1).map(|r| (r.as_ref().unwrap().seq(), r.unwrap().position())).collect();
    // An append reports where its frames went, as reading finds them.
    let payloads = [payload(501), payload(502)];
    let appended = log.append_batch(Batch::from_payloads(payloads.iter().map(Vec::as_slice))).unwrap();
    let second = appended.first.after(payloads[0].len());
    assert_eq!(log.read_at(appended.first).unwrap().payload(), &payloads[0][..]);
    assert_eq!((log.read_at(second).unwrap().seq(), log.read_at(second).unwrap().payload()), (502, &payloads[1][..]));
    for &(seq, pos) in positions.iter().rev() {
        let r = log.read_at(pos).unwrap();
        assert_eq!((r.seq(), r.payload()), (seq, &payload(seq)[..]));
    }
    let (_, pos) = positions[10];
    let inside = joblog::log::Position { offset: pos.offset + 3, ..pos };
    assert!(matches!(log.read_at(inside), Err(LogError::BadPosition { .. })));
    let nowhere = joblog::log::Position { segment: 999_999, offset: HEADER_LEN as u64 };
    assert!(matches!(log.read_at(nowhere), Err(LogError::BadPosition { .. })));
}

#[test]
fn refused_appends_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    log.append(b"a").unwrap();
    assert!(matches!(log.append(b""), Err(LogError::PayloadSize { len: 0, .. })));
    assert!(matches!(log.append_batch(Batch::new()), Err(LogError::EmptyBatch)));
    let huge = vec![7u8; SMALL as usize];
    assert!(matches!(log.append(&huge), Err(LogError::BatchTooLarge { .. })));
    let mut big_batch = Batch::new();
    for _ in 0..100 {
        big_batch.push(&[1u8; 100]);
    }
    assert!(matches!(log.append_batch(big_batch), Err(LogError::BatchTooLarge { .. })));
    assert_eq!(log.append(b"b").unwrap(), 2);
    assert_eq!(all(&log).len(), 2);
}

#[test]
fn every_sync_mode_is_durable_after_close() {
    for sync in [Sync::EveryBatch, Sync::Interval(5), Sync::Never] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig { sync, segment_size_bytes: SMALL, ..LogConfig::default() }).unwrap();
        let pending: Vec<_> = (1..=300).map(|i| log.submit(Batch::from_payloads([&payload(i)[..]])).unwrap()).collect();
        let seqs: Vec<u64> = pending.into_iter().map(|p| p.wait().unwrap().seqs.start).collect();
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
        log.close().unwrap();
        let log = Log::open(dir.path(), config(SMALL)).unwrap();
        assert_eq!(all(&log).len(), 300, "{sync:?}");
    }
}

#[test]
fn a_second_opener_is_refused_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path(), LogConfig::default()).unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(LogError::Locked { holder, .. }) => assert_eq!(holder, format!("pid {}", std::process::id())),
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn leftover_temporary_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    Log::open(dir.path(), LogConfig::default()).unwrap().append(b"a").unwrap();
    fs::write(dir.path().join("00000000000000000009.seg.tmp"), b"half a segment").unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"half a manifest").unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.recovery().temp_files_removed.len(), 2);
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    assert_eq!(all(&log).len(), 1);
}

/// Writes `n` single-frame batches and then one batch of three frames into
/// one active segment; returns the end offset of every batch.
fn write_tail_fixture(dir: &Path, n: u64) -> Vec<usize> {
    let log = Log::open(dir, config(64 << 10)).unwrap();
    let mut ends = vec![];
    let mut off = HEADER_LEN;
    for i in 1..=n {
        log.append(&payload(i)).unwrap();
        off += FRAME_HEADER_LEN + payload(i).len();
        ends.push(off);
    }
    let batch: Vec<Vec<u8>> = (n + 1..=n + 3).map(payload).collect();
    log.append_batch(Batch::from_payloads(batch.iter().map(Vec::as_slice))).unwrap();
    off += batch.iter().map(|p| FRAME_HEADER_LEN + p.len()).sum::<usize>();
    ends.push(off);
    log.close().unwrap();
    ends
}

fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn torn_tails_recover_exactly_the_whole_batches() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 3);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = fs::read(&seg).unwrap();
    let last = *ends.last().unwrap();
    let batches = |cut: usize| ends.iter().filter(|&&e| e <= cut).count();
    let frames_for = |b: usize| if b == ends.len() { b as u64 + 2 } else { b as u64 };

    for cut in HEADER_LEN..=last {
        for zero_fill in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(fixture.path(), dir.path());
            let path = dir.path().join(&name);
            if zero_fill {
                // What a crash leaves in a preallocated file: zeros after the cut.
                let mut bytes = original.clone();
                bytes[cut..].fill(0);
                fs::write(&path, bytes).unwrap();
            } else {
                fs::write(&path, &original[..cut]).unwrap();
            }
            let log = Log::open(dir.path(), config(64 << 10)).unwrap();
            let whole = batches(cut);
            let want = frames_for(whole);
            let got = all(&log);
            assert_eq!(got.len() as u64, want, "cut at {cut} (zero fill {zero_fill})");
            let kept = if whole == 0 { HEADER_LEN } else { ends[whole - 1] };
            // Dropped: the torn bytes up to the last one that is not zero.
            let torn = original[kept..cut].iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            assert_eq!(log.recovery().torn_bytes_dropped, torn as u64, "cut at {cut}");
            // The log goes on from the recovered prefix and survives a reopen.
            assert_eq!(log.append(b"after").unwrap(), want + 1);
            drop(log);
            let log = Log::open(dir.path(), config(64 << 10)).unwrap();
            assert_eq!(log.recovery().torn_bytes_dropped, 0);
            let got = all(&log);
            assert_eq!(got.len() as u64, want + 1);
            assert_eq!(got.last().unwrap().1, b"after");
        }
    }
}

#[test]
fn flipped_bits_in_the_active_segment_cut_the_log_there() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 4);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = fs::read(&seg).unwrap();
    // Flip one bit in each byte of the third frame.
    for at in ends[1]..ends[2] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(fixture.path(), dir.path());
        let mut bytes = original.clone();
        bytes[at] ^= 0x04;
        fs::write(dir.path().join(&name), bytes).unwrap();
        let log = Log::open(dir.path(), config(64 << 10)).unwrap();
        assert_eq!(all(&log).len(), 2, "flip at {at}");
        assert!(log.recovery().torn_reason.is_some());
    }
}

#[test]
fn corruption_in_a_sealed_segment_refuses_open_and_salvage_reads_around_it() {
    let dir = tempfile::tempdir().unwrap();
    drop(small_log(dir.path(), 400));
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let victim = &files[1];
    let mut bytes = fs::read(victim).unwrap();
    let at = HEADER_LEN + 500;
    bytes[at] ^= 0x80;
    fs::write(victim, bytes).unwrap();

    match Log::open(dir.path(), config(SMALL)) {
        Err(LogError::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, victim);
            assert!(offset as usize <= at && at - (offset as usize) < 200, "offset {offset} far from the flip at {at}");
        }
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }

    let salvage = Log::open(dir.path(), LogConfig { segment_size_bytes: SMALL, ..LogConfig::salvage() }).unwrap();
    assert_eq!(salvage.recovery().problems.len(), 1, "{:?}", salvage.recovery().problems);
    assert!(matches!(salvage.append(b"x"), Err(LogError::ReadOnly)));
    let read: Vec<u64> = salvage.iter_from(0).map(|r| r.unwrap().seq()).collect();
    assert!(read.len() < 400 && read.len() > 50);
    assert!(read.windows(2).all(|w| w[0] < w[1]));

    // Opening without the content check finds the damage when reading, and
    // verify names it.
    drop(salvage);
    let log = Log::open(dir.path(), LogConfig { verify_on_open: false, ..config(SMALL) }).unwrap();
    assert!(log.iter_from(0).any(|r| r.is_err()));
    let report = log.verify().unwrap();
    assert!(!report.ok());
    assert!(report.problems.iter().any(|p| p.contains(victim.file_name().unwrap().to_str().unwrap())));
}

#[test]
fn a_missing_sealed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    drop(small_log(dir.path(), 300));
    fs::remove_file(&segment_files(dir.path())[0]).unwrap();
    assert!(matches!(Log::open(dir.path(), config(SMALL)), Err(LogError::Corrupt { .. })));
}

#[test]
fn concurrent_appenders_and_a_tailing_reader_see_one_order() {
    const THREADS: u64 = 4;
    const EACH: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    let seen = std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                for i in 0..EACH {
                    let body = format!("t{t} i{i:05}");
                    if i % 7 == 0 {
                        log.append_batch(Batch::from_payloads([body.as_bytes(), body.as_bytes()])).unwrap();
                    } else {
                        log.append(body.as_bytes()).unwrap();
                    }
                }
            });
        }
        let reader = s.spawn(|| {
            let mut it = log.iter_from(1);
            let mut seen = Vec::new();
            let want = THREADS * (EACH + EACH.div_ceil(7));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while (seen.len() as u64) < want && std::time::Instant::now() < deadline {
                match it.next() {
                    Some(r) => {
                        let r = r.unwrap();
                        seen.push((r.seq(), String::from_utf8(r.payload().to_vec()).unwrap()));
                    }
                    None => std::thread::yield_now(),
                }
            }
            seen
        });
        reader.join().unwrap()
    });
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the tailing reader saw a gap or reorder");
    assert_eq!(seen.len() as u64, THREADS * (EACH + EACH.div_ceil(7)));
    // Each thread's own appends appear in its order.
    for t in 0..THREADS {
        let prefix = format!("t{t} ");
        let mine: Vec<&String> = seen.iter().map(|(_, p)| p).filter(|p| p.starts_with(&prefix)).collect();
        assert!(mine.windows(2).all(|w| w[0] <= w[1]));
    }
    assert!(log.verify().unwrap().ok());
    assert!(log.segments().len() > 5);
}

/// A full disk is an error when a segment is created, never a crash, and
/// changes nothing: every acknowledged event is still there. Needs a small
/// filesystem: mounts a 1 MiB tmpfs (root only; says so and skips otherwise).
#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let Some(mnt) = support::SmallDisk::mount("1m") else { return };
    let dir = mnt.path().join("log");
    // Something else on the disk, removed later to free space.
    let filler = mnt.path().join("filler");
    fs::write(&filler, vec![1u8; 256 << 10]).unwrap();
    let cfg = config(192 << 10);
    let log = Log::open(&dir, cfg.clone()).unwrap();
    let mut acked = 0u64;
    let err = loop {
        match log.append(&payload(acked + 1)) {
            Ok(seq) => {
                acked += 1;
                assert_eq!(seq, acked);
            }
            Err(e) => break e,
        }
        assert!(acked < 100_000, "the disk never filled");
    };
    match &err {
        LogError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(ENOSPC), "{err}"),
        other => panic!("expected an I/O error, got {other}"),
    }
    // Refused again, cleanly, while the disk stays full.
    assert!(log.append(b"more").is_err());
    drop(log);
    let log = Log::open(&dir, LogConfig { read_only: true, ..cfg.clone() }).unwrap();
    let got = all(&log);
    assert_eq!(got.len() as u64, acked, "acknowledged events lost on a full disk");
    assert!(got.iter().all(|(seq, p)| *p == payload(*seq)));
    assert!(log.verify().unwrap().ok());
    drop(log);
    // Space freed: the store works again, and nothing was lost.
    fs::remove_file(&filler).unwrap();
    let log = Log::open(&dir, cfg).unwrap();
    assert_eq!(log.append(b"after").unwrap(), acked + 1);
    assert_eq!(all(&log).len() as u64, acked + 1);
    assert!(log.verify().unwrap().ok());
}

/// "No space left on device" on Linux.
const ENOSPC: i32 = 28;

#[test]
fn a_store_written_by_a_newer_joblog_is_refused_with_a_message_saying_so() {
    use joblog::log::format::SegmentHeader;
    let dir = tempfile::tempdir().unwrap();
    drop(small_log(dir.path(), 3));
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let newer = SegmentHeader { format_version: joblog::log::format::FORMAT_VERSION + 1, ..SegmentHeader::new(1) };
    bytes[..HEADER_LEN].copy_from_slice(&newer.encode());
    fs::write(&seg, bytes).unwrap();
    match Log::open(dir.path(), config(SMALL)) {
        Err(e @ LogError::NewerVersion { .. }) => assert!(e.to_string().contains("upgrade joblog"), "{e}"),
        Err(e) => panic!("refused, but not as newer: {e}"),
        Ok(_) => panic!("opened a newer store"),
    }
}
