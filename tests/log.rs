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

/// The lengths a plan asks for come in the order asked, whatever the
/// order of the segments they are in (`written_frame_lens` reads them
/// segment by segment, and reads a segment through where it asks for
/// many): a few positions, and every one, shuffled across segments, some
/// asked twice. A `Frames` snapshot reads the same records as
/// `read_written`, fetching ahead a position that names nothing does no
/// harm, and a position that names nothing is an error for both.
#[test]
fn frame_lengths_and_frames_come_in_the_order_asked_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path(), 3_000);
    assert!(segment_files(dir.path()).len() >= 4, "frames in several segments");
    let mut positions: Vec<_> = log.iter_from(1).map(|r| (r.as_ref().unwrap().seq(), r.unwrap().position())).collect();
    let mut rng = fastrand::Rng::with_seed(3);
    rng.shuffle(&mut positions);
    positions.extend_from_within(..10);
    let len_of = |seq: u64| u32::try_from(joblog::log::format::frame_len(payload(seq).len())).unwrap();
    for take in [1, 7, 200, positions.len()] {
        let asked: Vec<_> = positions[..take].iter().map(|&(_, p)| p).collect();
        let want: Vec<u32> = positions[..take].iter().map(|&(seq, _)| len_of(seq)).collect();
        assert_eq!(log.written_frame_lens(&asked).unwrap(), want, "{take} positions");
    }
    let nowhere = joblog::log::Position { segment: 999_999, offset: HEADER_LEN as u64 };
    let frames = log.frames();
    frames.prefetch(positions.iter().map(|&(_, p)| p).chain([nowhere]));
    for &(seq, pos) in &positions {
        let r = frames.read_written(pos).unwrap();
        assert_eq!((r.seq, r.position, r.payload), (seq, pos, &payload(seq)[..]));
    }
    assert!(matches!(frames.read_written(nowhere), Err(LogError::BadPosition { .. })));
    assert!(matches!(log.written_frame_lens(&[positions[0].1, nowhere]), Err(LogError::BadPosition { .. })));
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

/// A store closed by this process while a copy of its lock is still held
/// for a moment (as by a child process another thread is starting, between
/// its fork and its exec): opening it again waits for the copy to go, and
/// does not report the store as locked.
#[test]
fn a_lock_this_process_holds_for_a_moment_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    Log::open(dir.path(), LogConfig::default()).unwrap().close().unwrap();
    let copy = fs::File::open(dir.path().join("LOCK")).unwrap();
    copy.try_lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(copy);
    });
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    release.join().unwrap();
    log.append(b"after the wait").unwrap();
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

/// Every file of the directory but the lock, with its bytes: what a refused
/// or read-only open must leave exactly as it was.
fn dir_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

/// Section 1 of issue 12: one flipped byte in the second frame of an active
/// segment whose later groups were synced (Sync::EveryBatch: each append is
/// its own synced group, so the frames after it carry marks past it) is
/// corruption, not a torn tail: open fails naming file, offset and the
/// sequence number expected there, and no byte on disk changes. Every byte
/// of the frame is tried: payload and checksum (the next frame is found
/// where the bad frame's length says), and the length itself (found by the
/// byte-by-byte resync).
#[test]
fn a_flipped_byte_below_a_proven_mark_is_corruption_and_changes_nothing() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 4);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = fs::read(&seg).unwrap();
    for at in ends[0]..ends[1] {
        for flip in [0x01u8, 0x80] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(fixture.path(), dir.path());
            let mut bytes = original.clone();
            bytes[at] ^= flip;
            fs::write(dir.path().join(&name), &bytes).unwrap();
            fs::write(dir.path().join("MANIFEST.tmp"), b"an interrupted write").unwrap();
            let before = dir_state(dir.path());
            match Log::open(dir.path(), config(64 << 10)) {
                Err(e @ LogError::Corrupt { .. }) => {
                    let LogError::Corrupt { ref path, offset, seq, .. } = e else { unreachable!() };
                    assert_eq!(path, &dir.path().join(&name), "flip {flip:#x} at {at}");
                    assert_eq!(offset as usize, ends[0], "flip {flip:#x} at {at}");
                    assert_eq!(seq, Some(2), "flip {flip:#x} at {at}");
                    let msg = e.to_string();
                    assert!(msg.contains("damaged") && msg.contains("sequence number 2"), "{msg}");
                    assert!(!msg.contains("LogConfig"), "a user is told to call a library function: {msg}");
                }
                Err(e) => panic!("flip {flip:#x} at {at}: expected Corrupt, got {e}"),
                Ok(log) => panic!("flip {flip:#x} at {at}: opened, reading {} records", all(&log).len()),
            }
            assert!(dir_state(dir.path()) == before, "flip {flip:#x} at {at}: a refused open changed the directory");
        }
    }
}

/// The resync path named: the damaged frame's `len` says nothing useful (too
/// large, or pointing into the middle of the next frame), so the frame after
/// it is found by scanning byte by byte.
#[test]
fn a_damaged_length_is_stepped_over_by_the_resync_scan() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 4);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = fs::read(&seg).unwrap();
    for len in [u32::MAX, 3, (ends[1] - ends[0] - FRAME_HEADER_LEN + 5) as u32] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(fixture.path(), dir.path());
        let mut bytes = original.clone();
        bytes[ends[0]..ends[0] + 4].copy_from_slice(&len.to_le_bytes());
        fs::write(dir.path().join(&name), &bytes).unwrap();
        match Log::open(dir.path(), config(64 << 10)) {
            Err(LogError::Corrupt { offset, seq, .. }) => assert_eq!((offset as usize, seq), (ends[0], Some(2))),
            other => panic!("len {len}: expected Corrupt, got {:?}", other.err()),
        }
        assert_eq!(fs::read(dir.path().join(&name)).unwrap(), bytes, "len {len}: segment changed");
    }
}

/// Damage in the last group, which nothing after it proves synced, is a
/// torn write: cut at the end of the last whole batch, reported (bytes and
/// offset), its bytes kept in a side file that is never read as a segment;
/// appends go on and a reopen sees them.
#[test]
fn damage_in_the_last_unproven_group_is_a_torn_tail_cut_reported_and_kept() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 4);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let mut bytes = fs::read(&seg).unwrap();
    let (start, end) = (ends[3], ends[4]); // the last batch: three frames, one group
    bytes[start + FRAME_HEADER_LEN + 30] ^= 0x40; // second frame of the batch
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    fs::write(dir.path().join(&name), &bytes).unwrap();

    let log = Log::open(dir.path(), config(64 << 10)).unwrap();
    let r = log.recovery().clone();
    assert_eq!(r.torn_offset, Some(start as u64));
    assert_eq!(r.torn_bytes_dropped, (end - start) as u64);
    let saved = r.torn_saved_to.expect("torn bytes are kept");
    assert_eq!(fs::read(&saved).unwrap(), &bytes[start..end], "the side file holds the torn bytes");
    assert_eq!(all(&log).len(), 4);
    assert_eq!(log.append(b"after").unwrap(), 5);
    drop(log);
    let log = Log::open(dir.path(), config(64 << 10)).unwrap();
    assert_eq!(log.recovery().torn_bytes_dropped, 0);
    assert_eq!(all(&log).iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(saved.exists(), "evidence is kept across opens");
    assert_eq!(all(&log)[4].1, b"after");
}

/// Unsynced pages reach the disk in any order: in the last unsynced stretch
/// a valid frame after a bad one proves nothing. Two synced groups, then
/// three groups under a long Sync::Interval (their marks all name the end of
/// the synced part); damage in the third group with the fourth and fifth
/// whole is a torn tail, not corruption.
#[test]
fn a_valid_frame_after_damage_inside_the_unsynced_stretch_is_still_a_torn_tail() {
    let fixture = tempfile::tempdir().unwrap();
    let log = Log::open(fixture.path(), config(64 << 10)).unwrap();
    let mut ends = vec![];
    let mut off = HEADER_LEN;
    for i in 1..=2 {
        log.append(&payload(i)).unwrap();
        off += FRAME_HEADER_LEN + payload(i).len();
        ends.push(off);
    }
    drop(log);
    let lazy = LogConfig { sync: Sync::Interval(3_600_000), ..config(64 << 10) };
    let log = Log::open(fixture.path(), lazy).unwrap();
    for i in 3..=5 {
        log.append(&payload(i)).unwrap();
        off += FRAME_HEADER_LEN + payload(i).len();
        ends.push(off);
    }
    drop(log); // closing syncs, but no frame records that
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[ends[1] + FRAME_HEADER_LEN + 2] ^= 0x10; // payload of frame 3
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    fs::write(dir.path().join(&name), &bytes).unwrap();
    let log = Log::open(dir.path(), config(64 << 10)).expect("a torn tail, not corruption");
    assert_eq!(all(&log).len(), 2);
    assert_eq!(log.recovery().torn_offset, Some(ends[1] as u64));
    assert_eq!(log.recovery().torn_bytes_dropped, (ends[4] - ends[1]) as u64);

    // The same damage once a later group proves the stretch synced (the
    // reopen synced it; the next append records that) is corruption.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    let log = Log::open(dir.path(), config(64 << 10)).unwrap();
    log.append(&payload(6)).unwrap();
    drop(log);
    let mut bytes = fs::read(dir.path().join(&name)).unwrap();
    bytes[ends[1] + FRAME_HEADER_LEN + 2] ^= 0x10;
    fs::write(dir.path().join(&name), &bytes).unwrap();
    match Log::open(dir.path(), config(64 << 10)) {
        Err(LogError::Corrupt { offset, seq, .. }) => assert_eq!((offset as usize, seq), (ends[1], Some(3))),
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}

/// The marks each sync mode writes are true: with Sync::EveryBatch each
/// group's frames name the end of the group before (synced), with
/// Sync::Never they stay at the header until something really syncs (a
/// roll); never past what was synced.
#[test]
fn durable_marks_follow_real_syncs_in_every_mode() {
    let mark_of = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at + 20..at + 24].try_into().unwrap()) as usize;
    for sync in [Sync::EveryBatch, Sync::Interval(3_600_000), Sync::Never] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig { sync, ..config(64 << 10) }).unwrap();
        let mut starts = vec![];
        let mut off = HEADER_LEN;
        for i in 1..=4 {
            log.append(&payload(i)).unwrap();
            starts.push(off);
            off += FRAME_HEADER_LEN + payload(i).len();
        }
        drop(log);
        let bytes = fs::read(segment_files(dir.path()).pop().unwrap()).unwrap();
        let marks: Vec<usize> = starts.iter().map(|&at| mark_of(&bytes, at)).collect();
        match sync {
            Sync::EveryBatch => assert_eq!(marks, vec![HEADER_LEN, starts[1], starts[2], starts[3]], "{sync:?}"),
            _ => assert_eq!(marks, vec![HEADER_LEN; 4], "{sync:?}: a mark claims a sync that never happened"),
        }
    }
    // Sync::Never: a roll syncs, and the next segment starts from its
    // synced header.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig { sync: Sync::Never, ..config(SMALL) }).unwrap();
    for i in 1..=400 {
        log.append(&payload(i)).unwrap();
    }
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() >= 2);
    for f in &files {
        let bytes = fs::read(f).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2, "new segments are format 2");
        assert_eq!(mark_of(&bytes, HEADER_LEN), HEADER_LEN, "{}", f.display());
    }
}

/// A hand-built format-1 segment (what every store written before format 2
/// holds): opens and reads as before, damage in it is handled as before (no
/// marks: everything after the last whole batch is torn), appends to it stay
/// format 1 (mark 0), and the next segment is format 2.
#[test]
fn format_1_segments_open_read_and_recover_as_before() {
    use joblog::log::format::{encode_frame_header, SegmentHeader};
    let v1 = |frames: u64| {
        let mut seg = SegmentHeader { format_version: 1, ..SegmentHeader::new(1) }.encode().to_vec();
        let mut ends = vec![];
        for i in 1..=frames {
            seg.extend_from_slice(&encode_frame_header(i, 0, &payload(i)));
            seg.extend_from_slice(&payload(i));
            ends.push(seg.len());
        }
        (seg, ends)
    };
    let name = format!("{:020}.seg", 1);

    // Intact.
    let dir = tempfile::tempdir().unwrap();
    let (seg, ends) = v1(5);
    fs::write(dir.path().join(&name), &seg).unwrap();
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    assert_eq!(all(&log), (1..=5).map(|i| (i, payload(i))).collect::<Vec<_>>());
    assert_eq!(log.append(b"six").unwrap(), 6);
    drop(log);
    let bytes = fs::read(dir.path().join(&name)).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 1, "the segment stays format 1");
    assert_eq!(&bytes[ends[4] + 20..ends[4] + 24], &[0, 0, 0, 0], "format 1 frames carry no mark");
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    for i in 7..=300 {
        log.append(&payload(i)).unwrap();
    }
    assert!(log.verify().unwrap().ok());
    drop(log);
    let files = segment_files(dir.path());
    assert!(files.len() >= 2);
    let next = fs::read(files.last().unwrap()).unwrap();
    assert_eq!(u16::from_le_bytes([next[8], next[9]]), 2);
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    assert_eq!(all(&log).len(), 300);

    // Damaged in its second frame: as before, a cut there.
    let dir = tempfile::tempdir().unwrap();
    let (mut seg, ends) = v1(5);
    seg[ends[0] + FRAME_HEADER_LEN + 1] ^= 0x08;
    fs::write(dir.path().join(&name), &seg).unwrap();
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    assert_eq!(all(&log).len(), 1);
    assert_eq!(log.recovery().torn_offset, Some(ends[0] as u64));
}

/// A read-only (salvage) open of a damaged store writes nothing: no torn
/// tail cut or zeroed, no side file, no temporary file removed, nothing
/// allocated. It reports each damaged stretch (file, offset, length, the
/// sequence numbers lost) and serves every valid frame around it.
#[test]
fn a_read_only_open_of_a_damaged_store_writes_nothing_and_reads_around_the_damage() {
    let fixture = tempfile::tempdir().unwrap();
    let ends = write_tail_fixture(fixture.path(), 4);
    let seg = segment_files(fixture.path()).pop().unwrap();
    let name = seg.file_name().unwrap().to_owned();
    let original = fs::read(&seg).unwrap();

    // Corruption in frame 2 (proven), and a leftover temporary file.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    let mut bytes = original.clone();
    bytes[ends[0] + FRAME_HEADER_LEN + 3] ^= 0x02;
    fs::write(dir.path().join(&name), &bytes).unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"half").unwrap();
    let before = dir_state(dir.path());
    let log = Log::open(dir.path(), LogConfig { segment_size_bytes: 64 << 10, ..LogConfig::salvage() }).unwrap();
    let r = log.recovery().clone();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.damaged.len(), 1, "{:?}", r.damaged);
    let d = &r.damaged[0];
    assert_eq!((d.offset as usize, d.len as usize), (ends[0], ends[1] - ends[0]));
    assert_eq!((d.first_lost, d.last_lost), (Some(2), Some(2)));
    assert_eq!(d.path, dir.path().join(&name));
    let seqs: Vec<u64> = all(&log).iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![1, 3, 4, 5, 6, 7]);
    let mut scanned = vec![];
    log.scan_from(0, |r| -> Result<_, LogError> {
        scanned.push(r.seq);
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(scanned, seqs);
    assert!(matches!(log.append(b"x"), Err(LogError::ReadOnly)));
    drop(log);
    assert!(dir_state(dir.path()) == before, "a read-only open changed the directory");

    // A torn tail: reported, not cut, not zeroed, not copied.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    let mut bytes = original.clone();
    bytes[ends[4] - 2] ^= 0x02;
    fs::write(dir.path().join(&name), &bytes).unwrap();
    let before = dir_state(dir.path());
    let log = Log::open(dir.path(), LogConfig { segment_size_bytes: 64 << 10, ..LogConfig::salvage() }).unwrap();
    assert_eq!(log.recovery().torn_offset, Some(ends[3] as u64));
    assert_eq!(all(&log).len(), 4);
    drop(log);
    assert!(dir_state(dir.path()) == before, "a read-only open changed the directory");
}

/// A fresh store takes about a megabyte, not a whole segment: the active
/// segment grows in allocation steps.
#[test]
fn a_fresh_store_is_small_on_disk() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for i in 1..=3 {
        log.append(&payload(i)).unwrap();
    }
    assert!(log.disk_bytes() <= 1 << 20, "{} bytes allocated", log.disk_bytes());
    drop(log);
    let used: u64 = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().blocks() * 512).sum();
    assert!(used <= 2 << 20, "a store of three records takes {used} bytes on disk");
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(all(&log).len(), 3);
}

/// The active segment grows step by step (each step allocated before it is
/// written), across a roll, and reads back whole across a reopen.
#[test]
fn segments_grow_in_steps_up_to_their_size_and_roll() {
    let size = 256 << 10; // first step 4 KiB, doubling
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(size)).unwrap();
    let mut lens = std::collections::BTreeSet::new();
    let mut i = 0;
    while log.segments().len() < 3 {
        i += 1;
        log.append(&payload(i)).unwrap();
        let active = log.segments().pop().unwrap();
        let len = fs::metadata(&active.path).unwrap().len();
        assert!(len >= active.published_bytes && len <= size, "file {len} bytes, data {}", active.published_bytes);
        lens.insert(len);
    }
    assert!(lens.len() >= 6, "grew in too few steps: {lens:?}");
    assert!(lens.contains(&(4 << 10)) && lens.contains(&size), "{lens:?}");
    let sealed = segment_files(dir.path());
    assert!(fs::metadata(&sealed[0]).unwrap().len() <= size);
    drop(log);
    let log = Log::open(dir.path(), config(size)).unwrap();
    let got = all(&log);
    assert_eq!(got.len() as u64, i);
    assert!(got.iter().all(|(s, p)| *p == payload(*s)));
    assert!(log.verify().unwrap().ok());
    assert_eq!(log.append(b"more").unwrap(), i + 1);
}

#[test]
fn segment_sizes_whose_offsets_do_not_fit_a_mark_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_size_bytes: 1 << 32, ..LogConfig::default() };
    assert!(matches!(Log::open(dir.path(), cfg), Err(LogError::Config(_))));
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none(), "a refused config created files");
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
    assert!(log.iter_from(0).any(|r| matches!(r, Err(LogError::Corrupt { .. }))));
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

/// With `Sync::EveryBatch` (the default), appenders on many threads share
/// syncs (one syncs what all of them placed; the others wait for it), and
/// none returns before its append is durable: readers see it by then.
/// Segments roll meanwhile (small ones), while syncs are in flight.
#[test]
fn concurrent_appenders_share_syncs_and_return_only_once_durable() {
    const THREADS: u64 = 16;
    const EACH: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    let before = log.stats();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                for i in 0..EACH {
                    let seq = log.append(&payload(t * EACH + i)).unwrap();
                    assert!(log.next_seq() > seq, "append {seq} returned before readers could see it");
                }
            });
        }
    });
    let after = log.stats();
    let (frames, syncs) = (after.frames - before.frames, after.syncs - before.syncs);
    assert_eq!(frames, THREADS * EACH);
    assert!(syncs < frames, "{frames} appends from {THREADS} threads took {syncs} syncs: none shared");
    assert!(after.rolls > before.rolls);
    drop(log);
    let log = Log::open(dir.path(), config(SMALL)).unwrap();
    assert_eq!(log.next_seq(), THREADS * EACH + 1);
    assert!(log.verify().unwrap().ok());
}

/// Appends `payload(1)`, `payload(2)`... to a fresh log until an append
/// fails: how many were acknowledged, and the error.
fn append_until_error(log: &Log) -> (u64, LogError) {
    let mut acked = 0u64;
    loop {
        match log.append(&payload(acked + 1)) {
            Ok(seq) => {
                acked += 1;
                assert_eq!(seq, acked);
            }
            Err(e) => return (acked, e),
        }
        assert!(acked < 100_000, "the disk never filled");
    }
}

/// A full disk is an error when a segment is created, never a crash, and
/// changes nothing: every acknowledged event is still there. Needs a small
/// filesystem: mounts a 1 MiB tmpfs (root only; says so and skips otherwise).
#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    let Some(mnt) = support::SmallDisk::mount("1m") else { return };
    let dir = mnt.path().join("log");
    // Something else on the disk, removed later to free space.
    // (With 192 KiB segments the active one grows from 4 KiB: the disk
    // fills during a growth step or when a segment is created.)
    let filler = mnt.path().join("filler");
    fs::write(&filler, vec![1u8; 256 << 10]).unwrap();
    let cfg = config(192 << 10);
    let log = Log::open(&dir, cfg.clone()).unwrap();
    let (acked, err) = append_until_error(&log);
    match &err {
        LogError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(ENOSPC), "{err}"),
        other => panic!("expected an I/O error, got {other}"),
    }
    // Refused again, cleanly, while the disk stays full.
    match log.append(&payload(acked + 1)) {
        Err(LogError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(ENOSPC)),
        other => panic!("expected ENOSPC again, got {other:?}"),
    }
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

/// A full disk while the active segment grows (a segment larger than the
/// disk): the append that needs the step fails with ENOSPC and changes
/// nothing, reads go on, and once space is freed the same handle appends
/// again, no reopen needed.
#[test]
fn a_full_disk_during_growth_fails_the_append_and_appends_resume_once_space_is_freed() {
    let Some(mnt) = support::SmallDisk::mount("1m") else { return };
    let dir = mnt.path().join("log");
    let filler = mnt.path().join("filler");
    fs::write(&filler, vec![1u8; 512 << 10]).unwrap();
    let cfg = config(4 << 20); // first step 64 KiB, then 128, 256...
    let log = Log::open(&dir, cfg.clone()).unwrap();
    let (acked, err) = append_until_error(&log);
    assert!(acked > 1000, "the disk filled too early ({acked} appends): growth steps too large?");
    match &err {
        LogError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(ENOSPC), "{err}"),
        other => panic!("expected ENOSPC, got {other}"),
    }
    assert!(matches!(log.append(&payload(acked + 1)), Err(LogError::Io { .. })));
    assert_eq!(all(&log).len() as u64, acked, "reads go on");
    fs::remove_file(&filler).unwrap();
    assert_eq!(log.append(&payload(acked + 1)).unwrap(), acked + 1, "appends resume once space is freed");
    drop(log);
    let log = Log::open(&dir, cfg).unwrap();
    let got = all(&log);
    assert_eq!(got.len() as u64, acked + 1);
    assert!(got.iter().all(|(s, p)| *p == payload(*s)));
    assert!(log.verify().unwrap().ok());
}

/// Opening needs no free space: a store on a full disk opens (writable) and
/// reads, with an active segment or without one (sealed just before a
/// crash: the segment is created by the first append, which on the full
/// disk fails with ENOSPC and then works once space is freed).
#[test]
fn a_store_on_a_full_disk_opens_and_reads() {
    let Some(mnt) = support::SmallDisk::mount("1m") else { return };
    let with_active = mnt.path().join("a");
    let log = Log::open(&with_active, config(64 << 10)).unwrap();
    for i in 1..=10 {
        log.append(&payload(i)).unwrap();
    }
    drop(log);
    let without = mnt.path().join("b");
    drop(Log::open(&without, config(64 << 10)).unwrap());
    for f in segment_files(&without) {
        fs::remove_file(f).unwrap(); // empty: as if sealed, then crashed
    }
    // A crash leaves no mark of a clean close (and removing it later
    // would free the block the rest of the test needs full).
    fs::remove_file(mark_path(&without)).unwrap();
    let filler = support::fill_disk(mnt.path(), 0);

    let log = Log::open(&with_active, config(64 << 10)).expect("a full disk refused the open");
    assert_eq!(all(&log).len(), 10);
    drop(log);
    let log = Log::open(&without, config(64 << 10)).expect("a full disk refused the open");
    assert!(all(&log).is_empty());
    match log.append(b"first") {
        Err(LogError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(ENOSPC)),
        other => panic!("expected ENOSPC, got {other:?}"),
    }
    fs::remove_file(filler).unwrap();
    assert_eq!(log.append(b"first").unwrap(), 1);
    drop(log);
    assert_eq!(all(&Log::open(&without, config(64 << 10)).unwrap()).len(), 1);
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

/// The log as the engine opens it: the active segment's end taken from a
/// clean close's mark when it holds (`log/closed.rs`).
fn trusting(segment_size_bytes: u64) -> LogConfig {
    LogConfig { segment_size_bytes, verify_on_open: false, ..LogConfig::default() }
}

fn mark_path(dir: &Path) -> PathBuf {
    dir.join(joblog::log::closed::FILE)
}

#[test]
fn a_clean_close_leaves_a_mark_that_the_next_open_trusts_and_a_writer_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), trusting(SMALL)).unwrap();
    for i in 1..=300 {
        log.append(&payload(i)).unwrap();
    }
    let (want, active) = (all(&log), log.segments().last().map(|s| s.first_seq));
    log.close().unwrap();
    assert!(mark_path(dir.path()).exists(), "a clean close leaves its mark");

    // Read-only: the mark is read, and left where it is.
    let ro = Log::open(dir.path(), LogConfig { read_only: true, ..trusting(SMALL) }).unwrap();
    assert!(ro.recovery().closed_mark_used);
    assert_eq!(all(&ro), want);
    assert_eq!(ro.next_seq(), 301);
    drop(ro);
    assert!(mark_path(dir.path()).exists());

    // A writer: the mark is gone before its first append, and the numbers
    // go on where the mark said.
    let log = Log::open(dir.path(), trusting(SMALL)).unwrap();
    let rec = log.recovery();
    assert!(rec.closed_mark_used && rec.torn_bytes_dropped == 0, "{rec:?}");
    assert_eq!(rec.active_segment, active, "the segment active at the close");
    assert!(log.segments().len() > 1, "300 events of small segments rolled at least once");
    assert!(!mark_path(dir.path()).exists(), "a writable open consumes the mark");
    assert_eq!(log.append(&payload(301)).unwrap(), 301);
    assert_eq!(all(&log).len(), 301);
    drop(log);

    // A scan finds exactly what the mark said.
    let scanned = Log::open(dir.path(), config(SMALL)).unwrap();
    assert!(!scanned.recovery().closed_mark_used, "verify_on_open scans whatever the mark says");
    assert_eq!(all(&scanned).len(), 301);
}

#[test]
fn a_mark_that_does_not_hold_is_ignored_and_the_segment_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.close().unwrap();
    let stale = fs::read(mark_path(dir.path())).unwrap();
    // Appended to after the mark was taken (by a build that knows no
    // marks, say): the mark, put back, no longer holds.
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    for i in 21..=25 {
        log.append(&payload(i)).unwrap();
    }
    log.close().unwrap();
    let good = fs::read(mark_path(dir.path())).unwrap();
    fs::write(mark_path(dir.path()), &stale).unwrap();
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    assert!(!log.recovery().closed_mark_used, "bytes after its end: the mark does not hold");
    assert_eq!(all(&log).len(), 25, "nothing appended after the stale mark is lost");
    drop(log);

    // A damaged mark, or one of another segment, is no mark.
    let mut flipped = good.clone();
    flipped[20] ^= 1;
    let mut other = joblog::log::closed::Closed::decode(&good).unwrap();
    other.first_seq += 1;
    for bad in [flipped, other.encode().to_vec(), b"JLCLOSED".to_vec()] {
        fs::write(mark_path(dir.path()), &bad).unwrap();
        let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
        assert!(!log.recovery().closed_mark_used);
        assert!(!mark_path(dir.path()).exists(), "a writable open removes even a mark it cannot use");
        assert_eq!(all(&log).len(), 25);
        drop(log);
    }

    // A byte of the last frames changed since the close: scanned, and the
    // damage found as it would be without a mark.
    fs::write(mark_path(dir.path()), &good).unwrap();
    let active = segment_files(dir.path()).pop().unwrap();
    let end = joblog::log::closed::Closed::decode(&good).unwrap().end as usize;
    let mut bytes = fs::read(&active).unwrap();
    bytes[end - 3] ^= 0x55;
    fs::write(&active, &bytes).unwrap();
    let log = Log::open(dir.path(), LogConfig { read_only: true, ..trusting(1 << 20) }).unwrap();
    assert!(!log.recovery().closed_mark_used);
    assert!(log.recovery().torn_bytes_dropped > 0 || !log.recovery().problems.is_empty());
}

#[test]
fn a_writer_trusts_a_mark_only_if_everything_after_it_is_zero() {
    // A build that knows no marks appended after the mark, and a power cut
    // kept only the later pages of its unsynced write: a reader serves what
    // the mark covers, a writer scans, and cuts and zeroes the torn bytes.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.close().unwrap();
    let mark = joblog::log::closed::Closed::decode(&fs::read(mark_path(dir.path())).unwrap()).unwrap();
    let active = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&active).unwrap();
    let far = mark.end as usize + 3 * 4096;
    assert!(far + 64 <= bytes.len(), "the segment is allocated past the mark");
    bytes[far..far + 64].fill(0xab);
    fs::write(&active, &bytes).unwrap();

    let ro = Log::open(dir.path(), LogConfig { read_only: true, ..trusting(1 << 20) }).unwrap();
    assert!(ro.recovery().closed_mark_used, "a reader serves only what lies below the end");
    assert_eq!(all(&ro).len(), 20);
    drop(ro);
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    let rec = log.recovery();
    assert!(!rec.closed_mark_used && rec.torn_bytes_dropped > 0 && rec.torn_saved_to.is_some(), "{rec:?}");
    assert_eq!(all(&log).len(), 20);
    assert_eq!(log.append(&payload(21)).unwrap(), 21);
}

#[test]
fn a_mark_that_cannot_be_read_is_no_mark_and_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path(), 30);
    log.close().unwrap();
    // A directory, and a link, where the mark should be.
    for (n, make) in (30..)
        .zip([|p: &Path| fs::create_dir(p).unwrap(), |p: &Path| std::os::unix::fs::symlink("/etc/passwd", p).unwrap()])
    {
        let _ = fs::remove_file(mark_path(dir.path()));
        make(&mark_path(dir.path()));
        let ro = Log::open(dir.path(), LogConfig { read_only: true, ..trusting(SMALL) }).unwrap();
        assert!(!ro.recovery().closed_mark_used);
        assert_eq!(all(&ro).len(), n);
        drop(ro);
        let salvage = Log::open(dir.path(), LogConfig::salvage()).unwrap();
        assert_eq!(all(&salvage).len(), n);
        drop(salvage);
        let was_dir = mark_path(dir.path()).is_dir();
        let log = Log::open(dir.path(), trusting(SMALL)).unwrap();
        assert!(!log.recovery().closed_mark_used);
        if was_dir {
            assert!(mark_path(dir.path()).is_dir(), "a directory is never a mark: it stays");
        } else {
            assert!(fs::symlink_metadata(mark_path(dir.path())).is_err(), "a writable open removes the link itself");
        }
        let next = log.next_seq();
        assert_eq!(log.append(&payload(next)).unwrap(), next);
        drop(log);
        if was_dir {
            fs::remove_dir(mark_path(dir.path())).unwrap();
        }
    }
}

/// A read-only open that verifies no content (the engine's, for reading
/// commands) opens no sealed segment: each is opened, checked against its
/// manifest entry and mapped by its first read. A segment damaged so that
/// this check fails (shorter than its entry, a header naming another
/// number) is an error where it is read, naming its file, and no other
/// read is harmed; one missing from the directory is a problem at the
/// open; a writable open, and `verify`, still check every segment.
#[test]
fn a_read_only_open_opens_a_sealed_segment_at_its_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), trusting(SMALL)).unwrap();
    for i in 1..=400 {
        log.append(&payload(i)).unwrap();
    }
    let positions: Vec<_> = log.iter_from(1).map(|r| r.map(|r| (r.seq(), r.position())).unwrap()).collect();
    let want = all(&log);
    let segments = log.segments();
    assert!(segments.len() >= 4, "{} segments", segments.len());
    log.close().unwrap();
    let ro = || Log::open(dir.path(), LogConfig { read_only: true, ..trusting(SMALL) });

    let second = &segments[1];
    let (in_first, in_second, in_last) = {
        let of = |seg: &joblog::log::SegmentInfo| {
            positions.iter().find(|(_, p)| p.segment == seg.key).map(|(i, p)| (*i, *p)).unwrap()
        };
        (of(&segments[0]), of(second), of(segments.last().unwrap()))
    };

    // Whole: a read of one position maps its segment alone (beside the
    // active one, whose end the open found), and everything reads as
    // before.
    let mapped = || {
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().filter(|l| l.contains(dir.path().to_str().unwrap())).count()
    };
    let log = ro().unwrap();
    assert!(log.recovery().problems.is_empty());
    assert_eq!(mapped(), 1, "the active segment alone");
    assert_eq!(log.read_at(in_first.1).unwrap().payload(), &payload(in_first.0)[..]);
    assert_eq!(mapped(), 2, "and the segment read");
    assert_eq!(all(&log), want);
    drop(log);

    // The second segment cut short.
    let saved = fs::read(&second.path).unwrap();
    fs::write(&second.path, &saved[..saved.len() / 2]).unwrap();
    let log = ro().expect("no segment is looked into at the open");
    assert!(log.recovery().problems.is_empty());
    for (i, p) in [in_first, in_last] {
        assert_eq!(log.read_at(p).unwrap().payload(), &payload(i)[..]);
    }
    let err = log.read_at(in_second.1).unwrap_err();
    assert!(matches!(&err, LogError::Corrupt { path, .. } if path == &second.path), "{err}");
    assert!(err.to_string().contains("the manifest says"), "{err}");
    let iterated: Result<Vec<_>, _> = log.iter_from(1).collect();
    assert!(iterated.is_err(), "a scan across it meets the damage");
    assert!(!log.verify().unwrap().ok());
    drop(log);
    let refused = Log::open(dir.path(), trusting(SMALL));
    assert!(matches!(refused, Err(LogError::Corrupt { .. })), "a writer checks every segment first");

    // Its header naming another first number.
    let mut other = saved.clone();
    let header = joblog::log::format::SegmentHeader::decode(&saved).unwrap();
    let moved = joblog::log::format::SegmentHeader { first_seq: header.first_seq + 1, ..header };
    other[..HEADER_LEN].copy_from_slice(&moved.encode());
    fs::write(&second.path, &other).unwrap();
    let log = ro().unwrap();
    let err = log.read_at(in_second.1).unwrap_err();
    assert!(err.to_string().contains("another sequence number"), "{err}");
    assert_eq!(log.read_at(in_first.1).unwrap().payload(), &payload(in_first.0)[..]);
    drop(log);

    // Missing: a problem at the open, from the directory's listing.
    fs::remove_file(&second.path).unwrap();
    let log = ro().unwrap();
    assert!(log.recovery().problems.iter().any(|p| p.contains("missing")), "{:?}", log.recovery().problems);
    drop(log);

    // Put back: whole again.
    fs::write(&second.path, &saved).unwrap();
    assert_eq!(all(&ro().unwrap()), want);
}

/// A scan told where the record before its first one is starts right
/// after it: a damaged frame before that record, which a scan from the
/// start of the segment reads and refuses, is not read. A hint that is
/// not that record (another record, the middle of a frame, a segment the
/// log does not have, past the end, a cold segment) is passed over: the
/// scan reads as [`Log::scan_from`] does.
#[test]
fn a_scan_told_where_the_record_before_it_is_starts_after_it() {
    use joblog::log::Position;
    use std::ops::ControlFlow;
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(1 << 20)).unwrap();
    for i in 1..=400 {
        log.append(&payload(i)).unwrap();
    }
    let at: Vec<Position> = log.iter_from(1).map(|r| r.unwrap().position()).collect();
    let scan = |log: &Log, from: u64, last: Option<Position>| -> Result<Vec<u64>, LogError> {
        let mut seqs = vec![];
        log.scan_after(from, last, |r| -> Result<_, LogError> {
            seqs.push(r.seq);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(seqs)
    };
    let want: Vec<u64> = (300..=400).collect();
    let before = at[298];
    let not_it = [
        at[297],
        Position { offset: before.offset + 3, ..before },
        Position { segment: 999_999, ..before },
        Position { offset: 1 << 30, ..before },
        Position { offset: 0, ..before },
        Position { segment: before.segment | (1 << 63), ..before },
    ];
    assert_eq!(scan(&log, 300, Some(before)).unwrap(), want);
    for hint in not_it {
        assert_eq!(scan(&log, 300, Some(hint)).unwrap(), want, "{hint:?}");
    }
    log.close().unwrap();

    // Record 5's payload damaged after a clean close, far from the end
    // that the close's mark checks: an open takes the segment's end from
    // the mark and reads no frame.
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[at[4].offset as usize + FRAME_HEADER_LEN + 2] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let log = Log::open(dir.path(), trusting(1 << 20)).unwrap();
    assert!(log.recovery().closed_mark_used);
    assert_eq!(scan(&log, 300, Some(before)).unwrap(), want, "the damage before the hint is not read");
    assert!(matches!(scan(&log, 300, None), Err(LogError::Corrupt { .. })), "a scan from the segment's start reads it");
    for hint in not_it {
        assert!(scan(&log, 300, Some(hint)).is_err(), "{hint:?} is passed over");
    }
    drop(log);

    // Across segments: from the first record of a segment, told of the
    // last one of the segment before, or of one inside a segment; every
    // such scan reads what a whole one does.
    let dir = tempfile::tempdir().unwrap();
    let log = small_log(dir.path(), 400);
    let firsts: Vec<u64> = log.segments().iter().map(|s| s.first_seq).collect();
    assert!(firsts.len() >= 3, "{firsts:?}");
    let at: Vec<Position> = log.iter_from(1).map(|r| r.unwrap().position()).collect();
    for from in firsts.iter().skip(1).copied().chain([firsts[1] + 5, 400]) {
        let last = at[from as usize - 2];
        assert_eq!(scan(&log, from, Some(last)).unwrap(), (from..=400).collect::<Vec<_>>(), "from {from}");
    }
}

/// A frame damaged below a clean close's mark is not read by the next
/// open (it trusts the mark); appends then roll, and the manifest gets a
/// checksum of the damaged bytes. A scan of the whole log must still find
/// the damage: a roll's checksum is never taken in place of the frames'
/// own (`Segment::scan_trusts`), since no one checked what it covers.
#[test]
fn damage_a_roll_sealed_under_its_checksum_is_still_found_by_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { verify_on_open: false, ..config(64 << 10) };
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    for i in 1..=400 {
        log.append(&payload(i)).unwrap();
    }
    log.close().unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "one active segment");
    let at = HEADER_LEN + 3 * FRAME_HEADER_LEN + 40;
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes[at] ^= 0x04;
    fs::write(&files[0], bytes).unwrap();

    // Opened on the mark: the damage is not read; a roll seals it.
    let log = Log::open(dir.path(), cfg.clone()).unwrap();
    let mut i = 401;
    while segment_files(dir.path()).len() < 2 {
        log.append(&payload(i)).unwrap();
        i += 1;
    }
    log.close().unwrap();

    let log = Log::open(dir.path(), cfg).unwrap();
    let err = log
        .scan_from(0, |_| -> Result<_, LogError> { Ok(std::ops::ControlFlow::Continue(())) })
        .expect_err("the scan read past the damage");
    match err {
        LogError::Corrupt { path, offset, .. } => {
            assert_eq!(path, files[0]);
            assert!(offset as usize <= at && at - (offset as usize) < 200, "frame at {offset}, damage at {at}");
        }
        e => panic!("expected Corrupt, got {e}"),
    }
    assert!(log.iter_from(0).any(|r| r.is_err()), "iteration finds it too");
}

/// The child of [`a_failed_write_is_an_error_and_the_log_refuses_until_reopened`]:
/// its log's directory.
const FAILED_WRITE_CHILD: &str = "JOBLOG_TEST_FAILED_WRITE_DIR";

/// A write of a batch's frames that fails (injected: `fail-write:10`, the
/// tenth batch's last piece; that batch is 1.5 MiB, so its first MiB is in
/// the file when the rest fails, as after a device error half-way) is an
/// I/O error for that append, every later append is refused until the log
/// is reopened, and the reopened log holds exactly the nine acknowledged
/// appends: the torn batch is cut, nothing of it is read back, and the log
/// goes on from there. The test re-runs this binary with the failure armed.
#[test]
fn a_failed_write_is_an_error_and_the_log_refuses_until_reopened() {
    if let Some(dir) = std::env::var_os(FAILED_WRITE_CHILD) {
        let log = Log::open(Path::new(&dir), LogConfig::default()).unwrap();
        for i in 1..=9 {
            assert_eq!(log.append(&payload(i)).unwrap(), i);
        }
        let mut big = Batch::new();
        for _ in 0..300 {
            big.push(&[7u8; 5000]);
        }
        match log.append_batch(big) {
            Err(LogError::Io { .. }) => {}
            other => panic!("expected the injected I/O error, got {other:?}"),
        }
        match log.append(&payload(10)) {
            Err(LogError::Poisoned(why)) => assert!(why.contains("injected failure of write"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        println!("failed write checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_failed_write_is_an_error_and_the_log_refuses_until_reopened", "--nocapture"])
        .args(["--test-threads=1"])
        .env(FAILED_WRITE_CHILD, dir.path())
        .env("JOBLOG_CRASHPOINT", "fail-write:10")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("failed write checked"), "{text}");
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(all(&log), (1..=9).map(|i| (i, payload(i))).collect::<Vec<_>>());
    assert_eq!(log.append(&payload(10)).unwrap(), 10);
    assert!(log.verify().unwrap().ok());
}
