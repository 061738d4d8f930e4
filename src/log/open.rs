//! Opening a log directory, step by step:
//!
//! 1. take the lock file (`LOCK`, exclusive; shared for read-only salvage);
//! 2. remove temporary files of interrupted writes (`*.tmp`);
//! 3. load the manifest and open every sealed segment it lists, checking the
//!    header and (unless told not to) the checksum of the whole content;
//! 4. remove segment files the manifest has replaced (an interrupted
//!    compaction leaves them behind);
//! 5. scan the active segment (the one file after the last sealed one) to
//!    its last whole, committed frame, cut the torn tail off and zero it;
//! 6. create an active segment if there is none, and start the writer.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::error::{corrupt, io_err, undecodable};
use super::format::{self, SegmentHeader, SeqRule, HEADER_LEN};
use super::manifest::{sync_dir, Manifest};
use super::map::{preallocate, SegmentMap};
use super::writer::{self, Active, Writer};
use super::{Log, LogConfig, LogError, RecoveryReport, Segment, Shared};

pub(crate) const LOCK_FILE: &str = "LOCK";

pub(super) fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
    config.validate()?;
    if !config.read_only {
        super::private::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let lock = lock(dir, config.read_only)?;
    let mut report = RecoveryReport::default();
    let files = list_dir(dir, config.read_only, &mut report)?;
    let manifest = Manifest::load(dir)?;

    let mut segments = Vec::new();
    for entry in &manifest.sealed {
        let path = dir.join(entry.file_name());
        match open_sealed(&path, entry, &config, &mut report) {
            Ok(seg) => segments.push(Arc::new(seg)),
            Err(e) if config.read_only => report.problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    report.sealed_segments = segments.len();

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
            if !config.read_only {
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                report.obsolete_files_removed.push(path);
            }
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
    if !report.obsolete_files_removed.is_empty() {
        sync_dir(dir)?;
    }

    let mut active = None;
    if let Some((first_seq, name)) = active_file {
        let path = dir.join(&name);
        match recover_active(&path, first_seq, &config, &mut report) {
            Ok(Recovered::Writable(a, seg)) => {
                segments.push(seg);
                active = Some(a);
            }
            Ok(Recovered::ReadOnly(seg)) => segments.push(seg),
            Err(e) if config.read_only => report.problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }

    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        segments: RwLock::new(Arc::new(segments)),
        counters: Default::default(),
    });
    if config.read_only {
        return Ok(Log { shared, tx: None, writer: None, recovery: report, _lock: lock });
    }
    let mut w = Writer::new(Arc::clone(&shared), config, manifest, active);
    w.ensure_active(next_after_sealed)?;
    let (tx, rx) = crossbeam_channel::bounded(writer::CHANNEL_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("joblog-writer".into())
        .spawn(move || w.run(rx))
        .map_err(|e| io_err(dir, e))?;
    Ok(Log { shared, tx: Some(tx), writer: Some(handle), recovery: report, _lock: lock })
}

/// Takes the directory's lock file, recording our process id in it so a
/// refused opener can name the holder.
fn lock(dir: &Path, shared: bool) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    // Never through a symbolic link, never truncated: whatever stands at
    // LOCK's name, no other file is written (a link makes opening fail).
    let mut file = if shared {
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
    let taken = if shared { file.try_lock_shared() } else { file.try_lock() };
    match taken {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "unknown process".to_string(),
                h => h.to_string(),
            };
            return Err(LogError::Locked { path, holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path, e)),
    }
    if !shared {
        // A fixed-width record at offset 0: the file is never truncated.
        let record = format!("pid {:<20}\n", std::process::id());
        file.write_all_at(record.as_bytes(), 0).map_err(|e| io_err(&path, e))?;
    }
    Ok(file)
}

/// Lists segment files by first sequence number and removes leftover
/// temporary files (unless read-only).
fn list_dir(dir: &Path, read_only: bool, report: &mut RecoveryReport) -> Result<Vec<(u64, String)>, LogError> {
    let mut segments = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if read_only && e.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(e) => return Err(io_err(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            if !read_only {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                report.temp_files_removed.push(path);
            }
        } else if let Some(first_seq) = parse_segment_name(&name) {
            segments.push((first_seq, name));
        }
    }
    segments.sort();
    if !report.temp_files_removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(segments)
}

/// `00000000000000000042.seg` or `00000000000000000042-g3.seg` → 42.
fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    let digits = stem.split_once("-g").map_or(stem, |(d, g)| if g.parse::<u32>().is_ok() { d } else { "" });
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Opens a sealed segment, checking it against its manifest entry. In
/// read-only salvage, a segment whose content is damaged is reported and
/// served up to its first bad frame.
fn open_sealed(
    path: &Path,
    entry: &super::manifest::SealedEntry,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<Segment, LogError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => corrupt(path, 0, "segment listed in the manifest is missing"),
        _ => io_err(path, e),
    })?;
    let file_len = file.metadata().map_err(|e| io_err(path, e))?.len();
    if file_len < entry.len {
        return Err(corrupt(
            path,
            file_len as usize,
            format!("segment is {file_len} bytes; the manifest says {}", entry.len),
        ));
    }
    let len = usize::try_from(entry.len).map_err(|_| corrupt(path, 0, "segment too large for this machine"))?;
    let mut map = SegmentMap::read_only(&file, len).map_err(|e| io_err(path, e))?;
    let header = SegmentHeader::decode(map.bytes()).map_err(|why| undecodable(path, 0, why))?;
    if header.first_seq != entry.first_seq {
        return Err(corrupt(path, 0, "segment header names another sequence number than its manifest entry"));
    }
    if config.verify_on_open && crc32fast::hash(map.bytes()) != entry.crc {
        // Find the frame at fault, to name its offset.
        let scan = format::scan(map.bytes(), len, entry.first_seq, SeqRule::Increasing);
        let (offset, why) = scan.stopped.unwrap_or((scan.committed_end, "content checksum differs from the manifest"));
        let err = corrupt(path, offset, why);
        if !config.read_only {
            return Err(err);
        }
        report.problems.push(err.to_string());
        if scan.committed_end < len {
            map = SegmentMap::read_only(&file, scan.committed_end).map_err(|e| io_err(path, e))?;
        }
    }
    Ok(Segment {
        first_seq: entry.first_seq,
        generation: entry.generation,
        path: path.to_path_buf(),
        map: Arc::new(map),
    })
}

enum Recovered {
    Writable(Active, Arc<Segment>),
    ReadOnly(Arc<Segment>),
}

/// Scans the active segment to the end of its last committed batch; cuts off
/// and zeroes whatever follows (a torn write), so that stale bytes can never
/// be mistaken for frames after new appends.
fn recover_active(
    path: &Path,
    first_seq: u64,
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
    let scan = format::scan(bytes, file_len, first_seq, SeqRule::Contiguous);
    let cut = scan.committed_end;
    let dirty_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1).max(cut);
    drop(scan_map);
    report.active_segment = Some(first_seq);
    report.active_frames = scan.frames;
    report.torn_bytes_dropped = (dirty_end - cut) as u64;
    report.torn_reason = scan.stopped.map(|(offset, why)| format!("{why} at offset {offset}"));

    if config.read_only {
        let map = SegmentMap::read_only(&file, cut).map_err(|e| io_err(path, e))?;
        return Ok(Recovered::ReadOnly(Arc::new(Segment {
            first_seq,
            generation: 0,
            path: path.to_path_buf(),
            map: Arc::new(map),
        })));
    }
    if dirty_end > cut {
        zero_range(&file, cut, dirty_end).map_err(|e| io_err(path, e))?;
    }
    // A file cut short (copied, or its preallocation lost) gets its full
    // size back, so that any batch that passes the size check fits in it.
    let map_len = file_len.max(config.segment_size_bytes as usize);
    if map_len > file_len {
        preallocate(&file, map_len as u64).and_then(|()| file.sync_all()).map_err(|e| io_err(path, e))?;
    }
    let (map, w) = SegmentMap::writable(&file, map_len, cut).map_err(|e| io_err(path, e))?;
    let seg = Arc::new(Segment { first_seq, generation: 0, path: path.to_path_buf(), map });
    let active = Active {
        seg: Arc::clone(&seg),
        writer: w,
        write_off: cut,
        synced_off: cut,
        frames: scan.frames,
        next_seq: scan.last_seq.map_or(first_seq, |s| s + 1),
    };
    Ok(Recovered::Writable(active, seg))
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
    use super::parse_segment_name;

    #[test]
    fn parses_segment_names() {
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("00000000000000000042-g3.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000042-gx.seg"), None);
        assert_eq!(parse_segment_name("MANIFEST"), None);
    }
}
