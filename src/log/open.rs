//! Opening a log directory, step by step:
//!
//! 1. take the lock file (`LOCK`, exclusive; shared for read-only salvage);
//! 2. remove temporary files of interrupted writes (`*.tmp`);
//! 3. load the manifest and open every sealed segment it lists, checking the
//!    header and (unless told not to) the checksum of the whole content (a
//!    read-only open told not to checks that each file is there, and leaves
//!    the rest to the segment's first read: `open_sealed`);
//! 4. remove segment files the manifest has replaced (an interrupted
//!    compaction leaves them behind);
//! 5. find where the active segment (the one file after the last sealed
//!    one) ends: from the mark of a clean close (`CLOSED`, `closed.rs`) if
//!    one holds; else scan it to its last whole, committed frame; look past
//!    the end of that for frames whose durable marks prove the damage was
//!    already synced (then it is corruption: refuse, change nothing);
//!    otherwise the rest is a torn tail: keep a copy of its bytes in a side
//!    file, zero it, sync;
//! 6. only then remove what steps 2 and 4 found, and the mark of step 5
//!    (so a refused open changes nothing, and no append follows a mark; an
//!    open that fails after this point has cost the next one a scan at
//!    most), create an active segment if there is none, and start the
//!    writer.
//!
//! A read-only open (`LogConfig::read_only`, salvage) does every check (a
//! sealed segment's, at its first read when it verifies no content) and
//! writes, creates, removes, allocates and zeroes nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::closed::{self, Closed};
use super::error::{corrupt, corrupt_at, io_err, undecodable};
use super::format::{self, SegmentHeader, SeqRule, HEADER_LEN};
use super::manifest::{parse_any_segment_file_name, sync_dir, Manifest, COLD};
use super::map::{preallocate, SegmentMap};
use super::writer::{self, Active, Writer};
use super::{Damage, Log, LogConfig, LogError, RecoveryReport, Segment, Shared};

pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long an opener waits for a lock its own process is named as holding
/// (see [`lock`]), and how often it tries again meanwhile.
const SAME_PROCESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(10);

pub(super) fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
    config.validate()?;
    if !config.read_only {
        super::private::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let lock = lock(dir, config.read_only)?;
    let mut report = RecoveryReport::default();
    let (files, cold_files, temps) = list_dir(dir)?;
    let manifest = Manifest::load(dir)?;

    let mut segments = Vec::new();
    for entry in &manifest.sealed {
        let name = entry.file_name();
        let (path, there) = (dir.join(&name), files.iter().any(|f| f.1 == name));
        match open_sealed(&path, entry.first_seq, entry, there, &config, &mut report) {
            Ok(seg) => segments.push(Arc::new(seg)),
            Err(e) if config.read_only => report.problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    report.sealed_segments = segments.len();
    let mut cold = Vec::new();
    let mut unreadable_cold = Vec::new();
    for entry in &manifest.cold {
        let name = entry.file_name();
        let (path, there) = (dir.join(&name), cold_files.contains(&name));
        match open_sealed(&path, entry.key(), &entry.sealed, there, &config, &mut report) {
            Ok(mut seg) => {
                (seg.last_seq, seg.frames) = (entry.sealed.last_seq, entry.sealed.frames);
                cold.push(Arc::new(seg));
            }
            Err(e) if config.read_only => {
                report.problems.push(e.to_string());
                unreadable_cold.push(entry.key());
            }
            Err(e) => return Err(e),
        }
    }
    report.cold_segments = cold.len();
    // Cold segments the manifest does not list: written by a freeze or a
    // compaction that did not install them, or replaced by one that did.
    let listed_cold: Vec<String> = manifest.cold.iter().map(|e| e.file_name()).collect();
    let mut obsolete: Vec<std::path::PathBuf> =
        cold_files.into_iter().filter(|name| !listed_cold.contains(name)).map(|name| dir.join(name)).collect();

    // Files the manifest does not list: one may be the active segment; the
    // rest are segments a finished rewrite replaced.
    let sealed_end = manifest.sealed.last().map_or(0, |e| e.last_seq);
    let next_after_sealed = (sealed_end + 1).max(manifest.next_seq).max(1);
    let listed: Vec<String> = manifest.sealed.iter().map(|e| e.file_name()).collect();
    let mut active_file = None;
    for (first_seq, name) in files {
        if listed.contains(&name) {
            continue;
        }
        let path = dir.join(&name);
        if first_seq < next_after_sealed {
            obsolete.push(path);
        } else if let Some((_, other)) = &active_file {
            return Err(corrupt(
                &path,
                0,
                format!(
                    "two segments after the last sealed one ({} and {name}); only one can be active",
                    dir.join(other).display()
                ),
            ));
        } else {
            active_file = Some((first_seq, name));
        }
    }
    // The mark of a clean close, if one was left and may be trusted: how
    // far the active segment's frames go without scanning it
    // (`log/closed.rs`). One that cannot be read is no mark.
    let closed_path = dir.join(closed::FILE);
    let closed_mark = if config.verify_on_open { None } else { read_closed(&closed_path) };
    let mut active = None;
    // Where the log goes on, as the active segment's recovery found.
    let mut recovered_next = None;
    if let Some((first_seq, name)) = active_file {
        let path = dir.join(&name);
        match recover_active(&path, first_seq, closed_mark.as_ref(), &config, &mut report) {
            Ok(Recovered::Writable(a, seg)) => {
                segments.push(seg);
                recovered_next = Some(a.next_seq);
                active = Some(a);
            }
            Ok(Recovered::ReadOnly(seg, next)) => {
                segments.push(seg);
                recovered_next = next;
            }
            Err(e) if config.read_only => report.problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }

    // Every check passed: now the leftovers of interrupted writes go.
    if !config.read_only {
        for path in temps {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            report.temp_files_removed.push(path);
        }
        for path in obsolete {
            fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            report.obsolete_files_removed.push(path);
        }
        // A writer appends from now on: the mark would no longer hold, and
        // is gone (durably) before any append, whether it was read or not
        // (a directory there is never read as a mark: it stays).
        let mark_removed = match fs::remove_file(&closed_path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(_) if fs::symlink_metadata(&closed_path).is_ok_and(|m| m.is_dir()) => false,
            Err(e) => return Err(io_err(&closed_path, e)),
        };
        if !report.temp_files_removed.is_empty() || !report.obsolete_files_removed.is_empty() || mark_removed {
            sync_dir(dir)?;
        }
    }

    // Known from the active segment's recovery, else scanned for here; the
    // writer keeps it up to date from now on.
    let next_seq = match (recovered_next, segments.last()) {
        (Some(next), _) => next,
        // The last sealed segment, not opened (a read-only open): where
        // its manifest entry says it ends.
        (None, Some(s)) if s.mapped().is_none() => manifest.sealed.last().map_or(s.first_seq, |e| e.last_seq + 1),
        (None, Some(s)) => super::read::next_seq_of(s)?,
        (None, None) => 1,
    };
    // With no active segment (a roll that sealed the last one and could
    // not create the next, on a full disk), the log goes on where the
    // manifest says it does: the last hot segment may end before (its
    // newest frames frozen into cold segments, or dropped by a
    // compaction), and a freeze may have left no hot segment at all. Its
    // frames are in the cold segments, which come before it.
    let next_seq = match recovered_next {
        Some(next) => next,
        None => {
            let cold_end = manifest.cold.iter().map(|e| e.sealed.last_seq).max().unwrap_or(0);
            next_seq.max(next_after_sealed).max(cold_end + 1)
        }
    };
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        segments: RwLock::new(Arc::new(segments)),
        cold: RwLock::new(Arc::new(cold)),
        cold_ids: std::sync::atomic::AtomicU64::new(manifest.next_cold.max(1)),
        unreadable_cold,
        counters: Default::default(),
        next_seq: std::sync::atomic::AtomicU64::new(next_seq),
        durability: Default::default(),
        every_batch: !config.read_only && config.sync == super::Sync::EveryBatch,
        writable: !config.read_only,
    });
    if config.read_only {
        return Ok(Log { shared, tx: None, writer: None, direct: None, recovery: report, _lock: lock });
    }
    let mut w = Writer::new(Arc::clone(&shared), config, manifest, active);
    match w.ensure_active(next_after_sealed) {
        Ok(()) => {}
        // A full disk: the store still opens and reads; the first append
        // creates the segment (or fails with this same error).
        Err(LogError::Io { ref source, .. }) if source.raw_os_error() == Some(libc::ENOSPC) => {}
        Err(e) => return Err(e),
    }
    let (tx, rx) = crossbeam_channel::bounded(writer::CHANNEL_CAPACITY);
    let w = Arc::new(std::sync::Mutex::new(w));
    let direct = Arc::clone(&w);
    let handle = std::thread::Builder::new()
        .name("joblog-writer".into())
        .spawn(move || Writer::run(w, rx))
        .map_err(|e| io_err(dir, e))?;
    Ok(Log { shared, tx: Some(tx), writer: Some(handle), direct: Some(direct), recovery: report, _lock: lock })
}

/// The mark of a clean close at `path`, if there is one that decodes. Any
/// other file there, or none, or one that cannot be read, is no mark (the
/// open scans): never followed through a link, never read past its size.
fn read_closed(path: &Path) -> Option<Closed> {
    use std::io::Read;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path);
    let mut bytes = Vec::with_capacity(closed::LEN + 1);
    match file.and_then(|f| f.take(closed::LEN as u64 + 1).read_to_end(&mut bytes)) {
        Ok(_) => Closed::decode(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(
                "the mark of a clean close {} cannot be read ({e}): the active segment is scanned",
                path.display()
            );
            None
        }
    }
}

/// Takes the directory's lock file, recording our process id in it so a
/// refused opener can name the holder.
fn lock(dir: &Path, shared: bool) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    // Never through a symbolic link, never truncated: whatever stands at
    // LOCK's name, no other file is written (a link makes opening fail).
    let file = if shared {
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path).or_else(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Err(e)
            } else {
                File::open(dir)
            }
        })
    } else {
        super::private::create_file(&path, false)
    }
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => {
            LogError::UnsafeFile { path: path.clone(), reason: "a symbolic link stands in place of the lock file" }
        }
        _ => io_err(&path, e),
    })?;
    let meta = file.metadata().map_err(|e| io_err(&path, e))?;
    if !shared && (!meta.is_file() || meta.nlink() != 1) {
        return Err(LogError::UnsafeFile { path, reason: "the lock file is not a plain file with one name" });
    }
    if meta.uid() != super::private::euid() {
        return Err(LogError::NotOwned { path, owner: meta.uid(), euid: super::private::euid() });
    }
    let ours = format!("pid {}", std::process::id());
    let mut waited = std::time::Duration::ZERO;
    loop {
        let taken = if shared { file.try_lock_shared() } else { file.try_lock() };
        match taken {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut record = [0u8; 64];
                let n = file.read_at(&mut record, 0).unwrap_or(0);
                let holder = match String::from_utf8_lossy(&record[..n]).trim() {
                    "" => "unknown process".to_string(),
                    h => h.to_string(),
                };
                // The holder named is this process: the store was most likely
                // just closed here while another thread was starting a child
                // process, which holds a copy of the lock's descriptor from
                // its fork until its exec closes it. That lasts milliseconds;
                // a handle this process still holds does not go away, and is
                // reported once the wait is over.
                if holder == ours && waited < SAME_PROCESS_WAIT {
                    std::thread::sleep(LOCK_POLL);
                    waited += LOCK_POLL;
                    continue;
                }
                return Err(LogError::Locked { path, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
        }
    }
    if !shared {
        // A fixed-width record at offset 0: the file is never truncated.
        let record = format!("pid {:<20}\n", std::process::id());
        file.write_all_at(record.as_bytes(), 0).map_err(|e| io_err(&path, e))?;
    }
    Ok(file)
}

/// Lists hot segment files by first sequence number, cold segment files,
/// and leftover temporary files (`*.tmp`, removed once opening has checked
/// everything). Any other name (the lock, the manifest, `*.torn-*` side
/// files) is not a segment.
#[allow(clippy::type_complexity)]
fn list_dir(dir: &Path) -> Result<(Vec<(u64, String)>, Vec<String>, Vec<std::path::PathBuf>), LogError> {
    let mut segments = Vec::new();
    let mut cold = Vec::new();
    let mut temps = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((segments, cold, temps)),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        // A FIFO, socket or device where the log keeps a file would make
        // opening it block, or read forever: refused, whatever its name
        // (the directory's own word for its type, and a link followed).
        let not_a_file = |t: fs::FileType| !t.is_file() && !t.is_dir();
        let ty = entry.file_type().map_err(|e| io_err(&entry.path(), e))?;
        if (ty.is_symlink() && fs::metadata(entry.path()).is_ok_and(|m| not_a_file(m.file_type())))
            || (!ty.is_symlink() && not_a_file(ty))
        {
            return Err(corrupt(
                &entry.path(),
                0,
                "not a regular file (a FIFO, socket or device where the log keeps its files)",
            ));
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            temps.push(entry.path());
        } else {
            match parse_any_segment_file_name(&name) {
                Some((key, _)) if key & COLD != 0 => cold.push(name),
                Some((first_seq, _)) => segments.push((first_seq, name)),
                None => {}
            }
        }
    }
    segments.sort();
    Ok((segments, cold, temps))
}

/// Opens a sealed segment (hot, or cold: `key`), checking it against its
/// manifest entry. In
/// read-only salvage, a segment whose content is damaged is reported and
/// served around the damage (every valid frame, the damaged stretches
/// stepped over).
///
/// A read-only open that verifies no content opens none: it checks that
/// the file is `there` (in the directory's listing) and leaves the rest
/// of the checks to the segment's first read ([`Segment::map`]); nothing
/// reads it but through them, and a read-only open changes nothing that a
/// later refusal would have to undo. A writable open checks every sealed
/// segment before it appends a byte.
fn open_sealed(
    path: &Path,
    key: u64,
    entry: &super::manifest::SealedEntry,
    there: bool,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment, LogError> {
    if config.read_only && !config.verify_on_open {
        if !there {
            return Err(corrupt(path, 0, MISSING));
        }
        let mut seg = Segment::unopened(key, entry.first_seq, entry.generation, path.to_path_buf(), entry.len);
        seg.checked_crc = checked_crc(key, entry);
        return Ok(seg);
    }
    let mut map = map_sealed(path, entry.first_seq, entry.len, config.verify_on_open)?;
    let len = map.len();
    let mut skips = Vec::new();
    if config.verify_on_open && crc32fast::hash(map.bytes()) != entry.crc {
        // Find the frame at fault, to name its offset.
        let scan = format::scan(map.bytes(), len, entry.first_seq, SeqRule::Increasing);
        let (offset, why) = scan.stopped.unwrap_or((scan.committed_end, "content checksum differs from the manifest"));
        let expected = scan.last_seq.map_or(entry.first_seq, |s| s + 1);
        let err = corrupt_at(path, offset, expected, why);
        if !config.read_only {
            return Err(err);
        }
        report.problems.push(err.to_string());
        let last_good = scan.last_seq.or(entry.first_seq.checked_sub(1));
        let survey = format::survey(map.bytes(), scan.committed_end, last_good, entry.last_seq);
        let serve = survey.last_batch_end.unwrap_or(0).max(scan.committed_end);
        skips = damage(path, &survey, serve, entry.first_seq, Some(entry.last_seq), report);
        if serve < len {
            let file = File::open(path).map_err(|e| io_err(path, e))?;
            map = SegmentMap::read_only(&file, serve).map_err(|e| io_err(path, e))?;
        }
    }
    let mut seg = Segment::keyed(key, entry.first_seq, entry.generation, path.to_path_buf(), Arc::new(map));
    seg.skips = skips;
    seg.checked_crc = checked_crc(key, entry);
    Ok(seg)
}

/// The checksum of a sealed segment's entry if a compaction or a freeze
/// took it, over frames it had checked (`Segment::checked_crc`): a cold
/// segment, or one rewritten (generation above 0). A roll's is not.
fn checked_crc(key: u64, entry: &super::manifest::SealedEntry) -> Option<u32> {
    (key & COLD != 0 || entry.generation > 0).then_some(entry.crc)
}

/// Opens and maps sealed segment `path` of `len` bytes (its manifest
/// entry's), checking its length and that its header names `first_seq`;
/// with `prefetch`, its whole content is read ahead (a checksum of it
/// follows), else its header alone is read, by itself: a first read
/// through the map would map the pages around it too.
pub(super) fn map_sealed(path: &Path, first_seq: u64, len: u64, prefetch: bool) -> Result<SegmentMap, LogError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => corrupt(path, 0, MISSING),
        _ => io_err(path, e),
    })?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if file_len < len {
        return Err(corrupt(path, file_len as usize, format!("segment is {file_len} bytes; the manifest says {len}")));
    }
    let len = usize::try_from(len).map_err(|_| corrupt(path, 0, "segment too large for this machine"))?;
    let map = SegmentMap::read_only(&file, len).map_err(|e| io_err(path, e))?;
    let header = if prefetch {
        map.prefetch();
        SegmentHeader::decode(map.bytes())
    } else {
        let mut head = [0u8; format::HEADER_LEN];
        let got = file.read_at(&mut head, 0).map_err(|e| io_err(path, e))?;
        SegmentHeader::decode(&head[..got.min(len)])
    }
    .map_err(|why| undecodable(path, 0, why))?;
    if header.first_seq != first_seq {
        return Err(corrupt(path, 0, "segment header names another sequence number than its manifest entry"));
    }
    Ok(map)
}

/// Why a sealed segment the manifest lists cannot be opened: its file is
/// not there.
const MISSING: &str = "segment listed in the manifest is missing";

/// Reports the damaged stretches a salvage open steps over (those below
/// `serve`, where serving stops) and returns them as skips.
fn damage(
    path: &Path,
    survey: &format::Survey,
    serve: usize,
    first_seq: u64,
    last_seq: Option<u64>,
    report: &mut RecoveryReport,
) -> Vec<(usize, usize)> {
    let mut skips = Vec::new();
    for s in &survey.stretches {
        report.damaged.push(Damage {
            path: path.to_path_buf(),
            offset: s.offset as u64,
            len: s.len as u64,
            first_lost: Some(s.after_seq.map_or(first_seq, |a| a + 1)),
            last_lost: s.before_seq.map(|b| b - 1).or(last_seq),
        });
        if s.offset < serve {
            skips.push((s.offset, (s.offset + s.len).min(serve)));
        }
    }
    skips
}

enum Recovered {
    Writable(Active, Arc<Segment>),
    /// The segment, and the sequence number after its last frame (`None`
    /// when damage was stepped over: then it is scanned for).
    ReadOnly(Arc<Segment>, Option<u64>),
}

/// Recovers the active segment. Scans it to the end of its last committed
/// batch; whatever follows is either a torn write (it lies at or above the
/// highest durable mark any valid frame proves) or corruption (below it).
/// Corruption refuses to open and changes nothing (read-only: it is
/// reported, and the segment served around it). A torn tail is copied to a
/// side file, then zeroed, so that stale bytes can never be mistaken for
/// frames after new appends; then the recovered prefix is synced, so the
/// first mark written after it is true.
fn recover_active(
    path: &Path,
    first_seq: u64,
    closed: Option<&Closed>,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Recovered, LogError> {
    let file = OpenOptions::new().read(true).write(!config.read_only).open(path).map_err(|e| io_err(path, e))?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    let file_len = usize::try_from(file_len).map_err(|_| corrupt(path, 0, "segment too large for this machine"))?;
    if file_len < HEADER_LEN {
        return Err(corrupt(path, 0, "active segment shorter than its header"));
    }
    let scan_map = SegmentMap::read_only(&file, file_len).map_err(|e| io_err(path, e))?;
    let bytes = scan_map.bytes();
    let header = SegmentHeader::decode(bytes).map_err(|why| undecodable(path, 0, why))?;
    if header.first_seq != first_seq {
        return Err(corrupt(path, 0, "segment header names another sequence number than its file name"));
    }
    report.active_segment = Some(first_seq);
    // A clean close said where the frames end: nothing to scan, nothing
    // torn (the mark holds only if nothing was written after it).
    // A writer goes on at the mark's end, so everything after it must be
    // zero, not only the first page: an append that a build knowing no
    // marks made, and a power cut tore with its later pages written, is a
    // torn tail to cut and zero (the scan does). A reader serves only what
    // lies below the end.
    let trusted = closed.filter(|c| {
        !config.verify_on_open
            && c.holds(first_seq, bytes, HEADER_LEN)
            && (config.read_only || usize::try_from(c.end).is_ok_and(|end| bytes[end..].iter().all(|&b| b == 0)))
    });
    let (cut, frames, next_seq) = match trusted.map(|c| (usize::try_from(c.end), c)) {
        Some((Ok(end), c)) => {
            report.closed_mark_used = true;
            (end, c.frames, c.next_seq)
        }
        _ => {
            scan_map.prefetch();
            match scan_active(path, &file, bytes, &header, first_seq, config, report)? {
                Scanned::Cut { cut, frames, next_seq } => (cut, frames, next_seq),
                Scanned::Damaged(seg) => return Ok(Recovered::ReadOnly(seg, None)),
            }
        }
    };
    report.active_frames = frames;
    if config.read_only {
        drop(scan_map);
        let map = SegmentMap::read_only(&file, cut).map_err(|e| io_err(path, e))?;
        let seg = Segment::new(first_seq, 0, path.to_path_buf(), Arc::new(map));
        return Ok(Recovered::ReadOnly(Arc::new(seg), Some(next_seq)));
    }
    drop(scan_map);
    // The recovered prefix may so far live only in the page cache (a crash
    // of the process, not of the machine): make it durable before any frame
    // records it as such. Holes in the file (a sparse copy) are allocated,
    // so writing frames there can never meet a full disk.
    preallocate(&file, cut as u64, file_len as u64).and_then(|()| file.sync_all()).map_err(|e| io_err(path, e))?;
    let map_len = file_len.max(config.segment_size_bytes as usize);
    let (map, w) = SegmentMap::writable(file, map_len, cut).map_err(|e| io_err(path, e))?;
    let seg = Arc::new(Segment::new(first_seq, 0, path.to_path_buf(), Arc::clone(&map)));
    let marks = header.has_marks();
    let active = Active { seg: Arc::clone(&seg), map, writer: w, write_off: cut, frames, next_seq, marks, zeroed: cut };
    Ok(Recovered::Writable(active, seg))
}

/// What [`scan_active`] found: where the log goes on, or (read-only) a
/// damaged segment to serve around its damage.
enum Scanned {
    Cut { cut: usize, frames: u64, next_seq: u64 },
    Damaged(Arc<Segment>),
}

/// Scans the active segment's `bytes` (the whole file) to the end of its
/// last committed batch, and deals with what follows: corruption refuses
/// the open (read-only: the segment is served around it), a torn tail is
/// reported and, in a writable open, saved to a side file and zeroed.
fn scan_active(
    path: &Path,
    file: &File,
    bytes: &[u8],
    header: &SegmentHeader,
    first_seq: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Scanned, LogError> {
    let file_len = bytes.len();
    let scan = format::scan(bytes, file_len, first_seq, SeqRule::Contiguous);
    let cut = scan.committed_end;
    // Look past the end of the good prefix: a valid frame there whose mark
    // lies beyond `cut` proves the bytes at `cut` had been synced before it
    // was written. (Format 1 has no marks: everything after `cut` is torn.)
    let most_frames = (file_len - HEADER_LEN) / (format::FRAME_HEADER_LEN + 1);
    let max_seq = first_seq.saturating_add(most_frames as u64);
    let last_good = scan.last_seq.or(first_seq.checked_sub(1));
    let survey = format::survey(bytes, cut, last_good, max_seq);
    let proven = if header.has_marks() { scan.proven.max(survey.proven) } else { 0 };
    let dirty_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1).max(cut);
    report.active_frames = scan.frames;

    if proven > cut {
        let (at, why) = scan.stopped.unwrap_or((cut, "no frame where one was written"));
        let expected = seq_at(bytes, cut, at, scan.last_seq.map_or(first_seq, |s| s + 1));
        let err = corrupt_at(
            path,
            at,
            expected,
            format!(
                "{why}; a later frame shows the segment was already synced up to offset {proven}, so this is \
                 not a torn write"
            ),
        );
        if !config.read_only {
            return Err(err);
        }
        report.problems.push(err.to_string());
        let serve = survey.last_batch_end.unwrap_or(0).max(cut);
        let skips = damage(path, &survey, serve, first_seq, None, report);
        let map = SegmentMap::read_only(file, serve).map_err(|e| io_err(path, e))?;
        let mut seg = Segment::new(first_seq, 0, path.to_path_buf(), Arc::new(map));
        seg.skips = skips;
        return Ok(Scanned::Damaged(Arc::new(seg)));
    }

    // A torn tail (or nothing at all).
    report.torn_bytes_dropped = (dirty_end - cut) as u64;
    report.torn_reason = scan.stopped.map(|(offset, why)| format!("{why} at offset {offset}"));
    if dirty_end > cut {
        report.torn_offset = Some(cut as u64);
        if !config.read_only {
            let saved = save_torn(path, cut, &bytes[cut..dirty_end])?;
            report.torn_saved_to = Some(saved);
            zero_range(file, cut, dirty_end).map_err(|e| io_err(path, e))?;
        }
    }
    Ok(Scanned::Cut { cut, frames: scan.frames, next_seq: scan.last_seq.map_or(first_seq, |s| s + 1) })
}

/// The sequence number a frame at `at` would carry: `next` at `from`, one
/// more for every valid frame between.
fn seq_at(bytes: &[u8], from: usize, at: usize, next: u64) -> u64 {
    let (mut off, mut seq) = (from, next);
    while off < at {
        match format::read_frame(bytes, off) {
            format::FrameRead::Frame(f) => {
                off = f.end();
                seq = f.seq + 1;
            }
            _ => break,
        }
    }
    seq
}

/// Copies torn bytes to `NAME.seg.torn-OFFSET` (or `…-N` if taken) next to
/// the segment, durably, before they are zeroed: evidence is never
/// destroyed. The segment lister ignores these names.
fn save_torn(seg_path: &Path, offset: usize, torn: &[u8]) -> Result<std::path::PathBuf, LogError> {
    let name = seg_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = seg_path.parent().unwrap_or(Path::new("."));
    for n in 0u32.. {
        let side = match n {
            0 => dir.join(format!("{name}.torn-{offset}")),
            n => dir.join(format!("{name}.torn-{offset}-{n}")),
        };
        let mut file = match OpenOptions::new().write(true).create_new(true).mode(super::private::FILE_MODE).open(&side)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&side, e)),
        };
        file.write_all(torn).and_then(|()| file.sync_all()).map_err(|e| io_err(&side, e))?;
        sync_dir(dir)?;
        return Ok(side);
    }
    unreachable!("some side file name is free")
}

fn zero_range(file: &File, from: usize, to: usize) -> std::io::Result<()> {
    let zeros = vec![0u8; (to - from).min(1 << 20)];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len());
        file.write_all_at(&zeros[..n], at as u64)?;
        at += n;
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use crate::log::manifest::parse_segment_file_name;

    fn parse_segment_name(name: &str) -> Option<u64> {
        parse_segment_file_name(name).map(|(first_seq, _)| first_seq)
    }

    #[test]
    fn parses_segment_names() {
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("00000000000000000042-g3.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000042-gx.seg"), None);
        assert_eq!(parse_segment_name("MANIFEST"), None);
        assert_eq!(parse_segment_name("00000000000000000042.seg.torn-4096"), None);
        assert_eq!(parse_segment_name("00000000000000000042.seg.torn-4096-1"), None);
    }
}
