//! Reading ahead of a scan of the whole log (`Log::scan_after`): the
//! segments it will read whole, checked against their manifest checksum
//! (`Segment::scan_trusts`), are read on a thread of their own, in the
//! order the scan reaches them, a few ahead of it.
//!
//! Without it, the scan's thread reads each such segment whole when it
//! reaches it, and what consumes the scan waits meanwhile. From a dropped
//! page cache that was most of the difference with a cached replay: the
//! kept 10M store's replay reaches 77 cold segments of about 48 MB, and
//! those reads took 2.0 s of it, 0.3 s with this thread
//! (docs/benchmarks.md, "A scan that reads ahead").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Scope;

use crossbeam_channel::Receiver;

use super::map::SegmentMap;
use super::Segment;
use crate::sys::map::ReadThrough;

/// Segments read and waiting for the scan to reach them, besides the one
/// being read: with 48 MB cold segments, about 150 MB of the page cache
/// ahead of the scan, whatever the store's size (more only while the scan
/// waits for a segment the thread reads later than others it reaches
/// after it: [`ReadAhead::take`] keeps those).
const WAITING: usize = 2;

/// Bytes hashed between two looks at whether the scan still wants them
/// (it ended early): about 4 ms at the disk's pace.
const CHUNK: usize = 4 << 20;

/// A segment read ahead: its key, and, unless it could not be mapped (the
/// scan meets that error itself), its bytes' length when read, whether
/// the scan may trust them whole, and the read-through guard taken for
/// the read, handed on to the scan.
struct Read {
    key: u64,
    read: Option<Verdict>,
}

/// What [`ReadAhead::take`] returns for a segment read ahead.
pub(crate) struct Verdict {
    len: usize,
    trusted: bool,
    pub(crate) through: ReadThrough<Arc<SegmentMap>>,
}

impl Verdict {
    /// Whether the scan may read `bytes` (the segment's, as the scan
    /// sees them) without each frame's CRC: `None` if they are not the
    /// bytes that were read (another length), so the scan checks again.
    pub(crate) fn trusts(&self, bytes: &[u8]) -> Option<bool> {
        (bytes.len() == self.len).then_some(self.trusted)
    }
}

/// The reading thread's side, held by the scan.
pub(crate) struct ReadAhead {
    rx: Receiver<Read>,
    /// Keys of the segments the thread reads: only these are waited for.
    keys: Vec<u64>,
    /// Segments read before the one the scan asked for (the scan reached
    /// two segments in another order than their first numbers).
    early: Vec<Read>,
    /// Set when the scan ends: the thread stops at its next chunk.
    stop: Arc<AtomicBool>,
}

impl ReadAhead {
    /// Starts reading `segments` ahead of a scan from `from_seq` on a
    /// thread of `scope`: those it will read whole (`Segment::reads_whole`),
    /// by first sequence number. `None` when fewer than two are (the
    /// scan's thread waits for the first one either way) or no thread
    /// could be made.
    pub(crate) fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        segments: impl IntoIterator<Item = Arc<Segment>>,
        from_seq: u64,
    ) -> Option<Self> {
        let mut segments: Vec<Arc<Segment>> = segments.into_iter().filter(|s| s.reads_whole(from_seq)).collect();
        if segments.len() < 2 {
            return None;
        }
        segments.sort_by_key(|s| s.first_seq);
        let keys = segments.iter().map(|s| s.key).collect();
        let (tx, rx) = crossbeam_channel::bounded(WAITING);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("joblog-read-ahead".into());
        let spawned = thread.spawn_scoped(scope, move || {
            for seg in segments {
                let read = match seg.map() {
                    Err(_) => None,
                    Ok(map) => match check(&seg, map, from_seq, &stopped) {
                        Some(verdict) => Some(verdict),
                        None => return,
                    },
                };
                if tx.send(Read { key: seg.key, read }).is_err() {
                    return;
                }
            }
        });
        spawned.ok()?;
        Some(Self { rx, keys, early: Vec::new(), stop })
    }

    /// The segment of `key` as read ahead, waiting for it if it is being
    /// read; `None` for a segment not read ahead (or not mappable: the
    /// scan meets the error itself).
    pub(crate) fn take(&mut self, key: u64) -> Option<Verdict> {
        if !self.keys.contains(&key) {
            return None;
        }
        if let Some(i) = self.early.iter().position(|r| r.key == key) {
            return self.early.swap_remove(i).read;
        }
        // Until it comes: each segment is sent once, in the order of
        // `keys`, so this ends when `key`'s is sent or the thread ended.
        while let Ok(read) = self.rx.recv() {
            if read.key == key {
                return read.read;
            }
            self.early.push(read);
        }
        None
    }
}

/// Reads `seg`'s bytes (mapped as `map`) whole and checks them against
/// its manifest checksum for a scan from `from_seq`; `None` if `stop` was
/// set meanwhile.
fn check(seg: &Segment, map: &Arc<SegmentMap>, from_seq: u64, stop: &AtomicBool) -> Option<Verdict> {
    let through = map.read_through_shared();
    let bytes = map.bytes();
    let mut hasher = crc32fast::Hasher::new();
    for chunk in bytes.chunks(CHUNK) {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        hasher.update(chunk);
    }
    let trusted = seg.trusts_hash(from_seq, hasher.finalize());
    Some(Verdict { len: bytes.len(), trusted, through })
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
