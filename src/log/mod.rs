//! The segmented, memory-mapped, checksummed event log.
//!
//! The log stores opaque payloads under global, strictly increasing sequence
//! numbers; it knows nothing of jobs. Layout on disk: `docs/format.md`.
//!
//! * `format`   — segment header and frame layout, pure functions on bytes.
//! * `manifest` — the list of sealed segments with their lengths and checksums.
//! * `map`      — memory maps and preallocation (in `crate::sys`, the one
//!   module with `unsafe`).
//! * `open`     — opening a directory: lock, recovery of the tail, cleanup.
//! * `writer`   — placing batches (from the appender's thread or the writer
//!   thread), sealing, rolling.
//! * `durable`  — syncs shared by whoever waits (group commit), the horizon
//!   readers see, poisoning after a failed sync.
//! * `read`     — iteration and random access, verifying every checksum.
//! * `compact`  — rewriting sealed segments without the frames dropped.
//!
//! ```
//! use joblog::log::{Batch, Log, LogConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), LogConfig::default()).unwrap();
//! let seq = log.append(b"job created").unwrap();
//! let both = log.append_batch(Batch::from_payloads([&b"locked"[..], b"done"])).unwrap();
//! assert_eq!(both.seqs, seq + 1..seq + 3);
//! let payloads: Vec<Vec<u8>> = log.iter_from(seq).map(|r| r.unwrap().payload().to_vec()).collect();
//! assert_eq!(payloads, [b"job created".to_vec(), b"locked".to_vec(), b"done".to_vec()]);
//! ```

mod ahead;
#[doc(hidden)]
pub mod closed;
mod compact;
mod durable;
mod error;
// Public only for the fuzz targets (`fuzz/`), which decode their bytes
// directly: not part of the API an embedder uses.
#[doc(hidden)]
pub mod format;
#[doc(hidden)]
pub mod manifest;
use crate::sys::map;
mod open;
pub(crate) mod private;
mod read;
mod writer;

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

pub use compact::{Compaction, OldFiles, Rewrite, SegmentMoves};
pub use durable::Placed;
pub use error::LogError;
pub use manifest::COLD;
pub(crate) use read::{cold_files, ColdMerge};
pub use read::{Frames, LogIter, Record, RecordRef, VerifyReport};

use map::SegmentMap;

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// An append returns only once its batch is on disk (one sync covers
    /// every batch placed before it started), and readers see it only
    /// then.
    #[default]
    EveryBatch,
    /// Appends return once written; the writer syncs at most this many
    /// milliseconds after the oldest unsynced write.
    Interval(u64),
    /// The operating system decides (the log still syncs when it seals a
    /// segment and when it closes).
    Never,
}

/// How a log is opened.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Largest size of each segment file. A segment's file grows to it in
    /// steps (from 1/64 of it, at most 1 MiB, doubling), each allocated on
    /// disk before it is written.
    pub segment_size_bytes: u64,
    /// When an append counts as durable ([`Sync`]).
    pub sync: Sync,
    /// Check the whole-content checksum of every sealed segment on open,
    /// and scan the active segment whole even after a clean close (else
    /// the mark that close left says where its frames end: `closed.rs`).
    pub verify_on_open: bool,
    /// Open read-only for salvage: no lock is taken exclusively, nothing is
    /// repaired or written, and corruption is reported (in
    /// [`Log::recovery`]) instead of refusing to open. Without
    /// `verify_on_open`, a sealed segment is opened, checked against its
    /// manifest entry and mapped at its first read (one missing from the
    /// directory is reported at the open): what fails that check is an
    /// error where it is read.
    pub read_only: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { segment_size_bytes: 64 << 20, sync: Sync::EveryBatch, verify_on_open: true, read_only: false }
    }
}

impl LogConfig {
    /// A configuration for reading what is intact out of a damaged log.
    pub fn salvage() -> Self {
        Self { read_only: true, ..Self::default() }
    }

    /// Smallest allowed segment: a header and one 4 KiB frame.
    pub const MIN_SEGMENT_BYTES: u64 = 8 << 10;
    /// Largest allowed segment: offsets inside a segment, and the durable
    /// mark every frame carries, fit in 32 bits (the projection stores
    /// offsets so; the frame header has 4 bytes for the mark).
    pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

    fn validate(&self) -> Result<(), LogError> {
        if !(Self::MIN_SEGMENT_BYTES..=Self::MAX_SEGMENT_BYTES).contains(&self.segment_size_bytes) {
            return Err(LogError::Config("segment_size_bytes must be between 8 KiB and 4 GiB - 1 byte"));
        }
        if self.sync == Sync::Interval(0) {
            return Err(LogError::Config("Sync::Interval needs at least 1 ms; use Sync::EveryBatch"));
        }
        Ok(())
    }
}

/// Where a record lives: the segment (named by its key: a hot segment's
/// first sequence number, or [`COLD`] with a cold segment's id) and the
/// frame's byte offset in it. Compaction moves records; a position
/// read after it may be refused with [`LogError::BadPosition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment: a hot one's first sequence number, or [`COLD`] with a
    /// cold one's id.
    pub segment: u64,
    /// The byte offset of the frame's header in the segment.
    pub offset: u64,
}

/// Payloads appended together, atomically: after a crash, all of them are
/// in the log or none is. One contiguous buffer, so building a batch of many
/// small payloads allocates little.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch (appending one is refused: [`LogError::EmptyBatch`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch of these payloads, in order.
    pub fn from_payloads<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut b = Self::new();
        for p in payloads {
            b.push(p);
        }
        b
    }

    /// Adds one payload (1 byte to [`format::MAX_PAYLOAD_BYTES`]; the append
    /// checks it).
    pub fn push(&mut self, payload: &[u8]) {
        self.data.extend_from_slice(payload);
        self.ends.push(self.data.len());
    }

    /// Adds one payload that `write` appends to the batch's buffer (no
    /// buffer of its own), and returns its length; if `write` fails, the
    /// batch is as it was.
    pub fn push_with<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<usize, E> {
        let start = self.data.len();
        if let Err(e) = write(&mut self.data) {
            self.data.truncate(start);
            return Err(e);
        }
        self.ends.push(self.data.len());
        Ok(self.data.len() - start)
    }

    /// How many payloads it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no payload.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empties it, keeping its buffers for the next batch.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// The payloads, in order.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.data[s..e])
    }

    /// Bytes the batch takes on disk, frames included.
    pub fn frame_bytes(&self) -> usize {
        self.data.len() + self.ends.len() * format::FRAME_HEADER_LEN
    }

    fn check(&self) -> Result<(), LogError> {
        if self.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        let max = format::MAX_PAYLOAD_BYTES as usize;
        match self.payloads().map(<[u8]>::len).find(|&l| l == 0 || l > max) {
            Some(len) => Err(LogError::PayloadSize { len, max }),
            None => Ok(()),
        }
    }
}

/// Where an appended batch went: its sequence numbers, and the position of
/// its first frame. The batch's frames follow each other in one segment, so
/// each next position is [`Position::after`] the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The batch's sequence numbers, one per payload, in order.
    pub seqs: Range<u64>,
    /// Where its first frame is.
    pub first: Position,
}

impl Position {
    /// The position of the frame that follows the one here, whose payload
    /// is `payload_len` bytes.
    pub fn after(self, payload_len: usize) -> Position {
        Position { segment: self.segment, offset: self.offset + format::frame_len(payload_len) as u64 }
    }
}

/// One segment file, shared by the writer and the readers.
pub(crate) struct Segment {
    /// What positions and generations name it by: its first sequence
    /// number (a hot segment), or `manifest::COLD | id` (a cold one).
    pub(crate) key: u64,
    /// The first sequence number its header names.
    pub(crate) first_seq: u64,
    /// Its last frame's sequence number and how many frames it holds, for
    /// a cold segment (a hot one's are not kept here: `u64::MAX` and 0).
    pub(crate) last_seq: u64,
    pub(crate) frames: u64,
    /// How many times compaction has rewritten it (0: as appended).
    pub(crate) generation: u32,
    pub(crate) path: PathBuf,
    /// Its map: made when it was opened, or, for a sealed segment a
    /// read-only open did not look into ([`Segment::unopened`]), by its
    /// first read ([`Segment::map`]).
    map: OnceLock<Arc<SegmentMap>>,
    /// The length its manifest entry gives, for a sealed segment not yet
    /// mapped (0 for one mapped when it was opened).
    listed_len: u64,
    /// Damaged stretches `[start, end)` that readers step over (read-only
    /// salvage only; empty otherwise).
    pub(crate) skips: Vec<(usize, usize)>,
    /// The CRC32 of its content (`[0, length)`) its manifest entry gives,
    /// where that checksum was taken over frames that had each been
    /// checked first: a segment a compaction or a freeze wrote (a cold
    /// one, or of a generation above 0), from the frames it read. `None`
    /// otherwise: a segment a roll sealed (its checksum covers whatever
    /// its file held, frames included that an open trusted unread below a
    /// clean close's mark), the active one, a salvage's file
    /// ([`Segment::scan_trusts`]).
    pub(crate) checked_crc: Option<u32>,
}

impl Segment {
    /// A segment read at random (a view reads one job's events) except
    /// by whole-segment scans, which prefetch it.
    pub(crate) fn new(first_seq: u64, generation: u32, path: PathBuf, map: Arc<SegmentMap>) -> Self {
        Self::keyed(first_seq, first_seq, generation, path, map)
    }

    /// A segment named by `key` (a cold segment's: `COLD | id`) whose
    /// header names `first_seq`.
    pub(crate) fn keyed(key: u64, first_seq: u64, generation: u32, path: PathBuf, map: Arc<SegmentMap>) -> Self {
        map.expect_random();
        let mut seg = Self::unopened(key, first_seq, generation, path, 0);
        seg.map = OnceLock::from(map);
        seg
    }

    /// A sealed segment of `len` bytes (its manifest entry's) that is
    /// opened, checked against its entry and mapped by its first read
    /// ([`Segment::map`]): what a read-only open does with the segments it
    /// does not verify, so that a command reading a few of a hundred opens
    /// those few.
    pub(crate) fn unopened(key: u64, first_seq: u64, generation: u32, path: PathBuf, len: u64) -> Self {
        Self {
            key,
            first_seq,
            last_seq: u64::MAX,
            frames: 0,
            generation,
            path,
            map: OnceLock::new(),
            listed_len: len,
            skips: Vec::new(),
            checked_crc: None,
        }
    }

    /// Whether a scan from `from_seq` that meets this segment, its frames
    /// mapped as `bytes`, may read them without each frame's CRC: the scan
    /// reads all of it (its first frame is at or after `from_seq`), and
    /// `bytes` are exactly the content of [`Segment::checked_crc`], so
    /// every frame is as the compaction that wrote it had checked it. One
    /// pass over the whole is several times cheaper than a check per
    /// frame (`Log::scan_after`); any difference (a flipped byte, another
    /// length) leaves every frame to its own check, so damage is found
    /// where it was before.
    pub(crate) fn scan_trusts(&self, bytes: &[u8], from_seq: u64) -> bool {
        self.reads_whole(from_seq) && self.trusts_hash(from_seq, crc32fast::hash(bytes))
    }

    /// Whether a scan from `from_seq` reads it whole, once, for its
    /// checksum ([`Segment::scan_trusts`]).
    pub(crate) fn reads_whole(&self, from_seq: u64) -> bool {
        self.first_seq >= from_seq && self.checked_crc.is_some()
    }

    /// [`Segment::scan_trusts`] for bytes whose CRC32 is `hash`.
    pub(crate) fn trusts_hash(&self, from_seq: u64, hash: u32) -> bool {
        self.first_seq >= from_seq && self.checked_crc == Some(hash)
    }

    /// Its map, made now if this is its first read: a file that is
    /// missing, shorter than its manifest entry or whose header names
    /// another first sequence number is [`LogError::Corrupt`], as at an
    /// open that looks into every segment.
    pub(crate) fn map(&self) -> Result<&Arc<SegmentMap>, LogError> {
        if let Some(map) = self.map.get() {
            return Ok(map);
        }
        let map = open::map_sealed(&self.path, self.first_seq, self.listed_len, false)?;
        map.expect_random();
        // Two first reads at once both map it; one map is kept.
        Ok(self.map.get_or_init(|| Arc::new(map)))
    }

    /// Its map if it has one (every segment but a sealed one not yet read).
    pub(crate) fn mapped(&self) -> Option<&Arc<SegmentMap>> {
        self.map.get()
    }

    /// The bytes of its frames readers see: a sealed segment not yet
    /// mapped has its manifest entry's length.
    pub(crate) fn published(&self) -> u64 {
        self.map.get().map_or(self.listed_len, |m| m.published() as u64)
    }

    /// Whether it is a cold segment.
    pub(crate) fn is_cold(&self) -> bool {
        self.key & manifest::COLD != 0
    }

    /// Where reading goes on from `offset`: past a damaged stretch that
    /// starts there, if any.
    #[inline]
    pub(crate) fn skip(&self, offset: usize) -> usize {
        if self.skips.is_empty() {
            return offset;
        }
        match self.skips.binary_search_by_key(&offset, |s| s.0) {
            Ok(i) => self.skips[i].1,
            Err(_) => offset,
        }
    }
}

/// A list of segments, replaced whole when it changes.
pub(crate) type List = Arc<Vec<Arc<Segment>>>;

/// State shared by the log handle, its writer thread and its readers.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// Every segment in sequence order; the last one may be the active one.
    /// Replaced whole (copy on write) when a segment is added, so a reader
    /// holds a consistent list for as long as it likes.
    pub(crate) segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Every cold segment, by key; replaced whole like `segments`, and
    /// only while `segments` is locked for writing, so that a reader
    /// holding `segments` for reading sees the two lists of one moment
    /// (`snapshot_both`): a freeze moves frames from one to the other.
    pub(crate) cold: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// The next cold segment id to hand out (`Log::freeze`); the manifest
    /// keeps the high-water mark of those installed.
    pub(crate) cold_ids: AtomicU64,
    /// Cold segments the manifest lists that a read-only open could not
    /// open (salvage reads around them).
    pub(crate) unreadable_cold: Vec<u64>,
    pub(crate) counters: Counters,
    /// The visible horizon: the sequence number after the last frame
    /// readers see (`durable.rs`). Set at open, then moved forward by the
    /// writer (after the frames) or, with `Sync::EveryBatch`, by each sync.
    pub(crate) next_seq: AtomicU64,
    /// The lead of syncs and what it syncs (`durable.rs`).
    pub(crate) durability: durable::Durability,
    /// Whether an append waits for a sync (`Sync::EveryBatch`).
    pub(crate) every_batch: bool,
    /// Whether the log was opened for writing (a read-only one shows every
    /// frame it serves).
    pub(crate) writable: bool,
}

/// What the writer has done since the log was opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) sync_micros: AtomicU64,
    pub(crate) rolls: AtomicU64,
}

/// Counters of the writer since the log was opened (see [`Log::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Frames appended.
    pub frames: u64,
    /// Groups of requests placed together (by the writer thread; each
    /// batch placed from its appender's thread counts as one).
    pub groups: u64,
    /// Syncs to disk (fdatasync of the active segment).
    pub syncs: u64,
    /// Microseconds spent in those syncs, in all.
    pub sync_micros: u64,
    /// Segments sealed.
    pub rolls: u64,
}

impl Shared {
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&self.segments.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The hot and the cold segments, of one moment.
    pub(crate) fn snapshot_both(&self) -> (List, List) {
        let hot = self.segments.read().unwrap_or_else(|e| e.into_inner());
        let cold = Arc::clone(&self.cold.read().unwrap_or_else(|e| e.into_inner()));
        (Arc::clone(&hot), cold)
    }

    /// Every segment, hot ones first.
    pub(crate) fn all(&self) -> Vec<Arc<Segment>> {
        let (hot, cold) = self.snapshot_both();
        hot.iter().chain(cold.iter()).cloned().collect()
    }
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sealed segments the manifest lists.
    pub sealed_segments: usize,
    /// Cold segments the manifest lists.
    pub cold_segments: usize,
    /// First sequence number of the active segment, if there was one.
    pub active_segment: Option<u64>,
    /// Whole frames found in the active segment.
    pub active_frames: u64,
    /// Whether the active segment's end came from the mark of a clean
    /// close (`log/closed.rs`) instead of a scan.
    pub closed_mark_used: bool,
    /// Bytes of a torn or partial tail cut off the active segment (in a
    /// read-only open: that would be cut; nothing is).
    pub torn_bytes_dropped: u64,
    /// Offset of the active segment where the torn tail started (where the
    /// log goes on), when there was one.
    pub torn_offset: Option<u64>,
    /// Where the torn bytes were kept before they were zeroed (a file under
    /// the log directory that is never read as a segment), if they were.
    pub torn_saved_to: Option<PathBuf>,
    /// Why the active segment's scan stopped where it did, if not at zeros.
    pub torn_reason: Option<String>,
    /// Temporary files of interrupted writes that were removed.
    pub temp_files_removed: Vec<PathBuf>,
    /// Segment files that the manifest no longer lists and were removed.
    pub obsolete_files_removed: Vec<PathBuf>,
    /// Read-only salvage only: what is damaged.
    pub problems: Vec<String>,
    /// Read-only salvage only: each damaged stretch, which reading steps
    /// over (every valid frame around it is served).
    pub damaged: Vec<Damage>,
}

/// A damaged stretch of a segment found by a read-only (salvage) open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub path: PathBuf,
    /// Where the stretch starts, in bytes from the start of the file.
    pub offset: u64,
    /// Bytes stepped over.
    pub len: u64,
    /// Sequence numbers lost in it, as far as known: the first one that is
    /// not served (one after the last frame read before the stretch), and
    /// the last (one before the first frame read after it; for a sealed
    /// segment's end, its manifest's last sequence number). `None` where
    /// nothing tells. A stretch between two consecutive sequence numbers
    /// (garbage between frames) has `first_lost > last_lost`: nothing lost.
    pub first_lost: Option<u64>,
    /// See `first_lost`.
    pub last_lost: Option<u64>,
}

/// The event log of one directory. Cheap to share between threads by
/// reference; appends from many threads are grouped into one sync.
pub struct Log {
    shared: Arc<Shared>,
    tx: Option<Sender<writer::Request>>,
    writer: Option<JoinHandle<Result<(), LogError>>>,
    /// The writer, for appends placed from their own thread ([`Log::place`]).
    direct: Option<Arc<std::sync::Mutex<writer::Writer>>>,
    recovery: RecoveryReport,
    _lock: File,
}

/// An append that has been handed to the writer; [`Pending::wait`] returns
/// its sequence numbers once it is as durable as the [`Sync`] mode promises.
#[must_use = "an append is only acknowledged by waiting for it"]
pub struct Pending {
    rx: crossbeam_channel::Receiver<Result<Appended, LogError>>,
    shared: Arc<Shared>,
}

impl Pending {
    /// Blocks until the append is as durable as the mode promises: its
    /// sequence numbers and position, or why it failed
    /// ([`LogError::Closed`] if the log closed first).
    pub fn wait(self) -> Result<Appended, LogError> {
        self.placed()?.durable()
    }

    /// Blocks until the writer has placed the append (not yet durable:
    /// see [`Placed`]), or says why it could not.
    pub fn placed(self) -> Result<Placed, LogError> {
        let appended = self.rx.recv().unwrap_or(Err(LogError::Closed))?;
        Ok(Placed::new(appended, self.shared))
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`: takes the directory's
    /// lock, removes leftovers of an interrupted roll or compaction, reads
    /// the manifest and recovers the active segment's tail (`src/log/open.rs`
    /// says what recovery does; `docs/format.md` the layout it reads).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self, LogError> {
        open::open(dir.as_ref(), config)
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends one payload; returns its sequence number.
    pub fn append(&self, payload: &[u8]) -> Result<u64, LogError> {
        let mut b = Batch::new();
        b.push(payload);
        Ok(self.append_batch(b)?.seqs.start)
    }

    /// Appends a batch atomically; returns its sequence numbers.
    pub fn append_batch(&self, batch: Batch) -> Result<Appended, LogError> {
        self.submit(batch)?.wait()
    }

    /// Places a batch in the log (see [`Placed`]): with `Sync::EveryBatch`
    /// from this thread, at once, so that a caller that serializes its
    /// appends under a lock of its own holds it only while the frames are
    /// copied; then [`Placed::durable`] waits for the sync, shared with
    /// every other append placed meanwhile (the engine's pipelined commit).
    /// In the other modes, through the writer thread, as
    /// [`Log::submit`].
    pub fn place(&self, batch: Batch) -> Result<Placed, LogError> {
        match &self.direct {
            Some(w) if self.shared.every_batch => {
                batch.check()?;
                let appended = w.lock().unwrap_or_else(|e| e.into_inner()).place_now(&batch)?;
                Ok(Placed::new(appended, Arc::clone(&self.shared)))
            }
            _ => self.submit(batch)?.placed(),
        }
    }

    /// Hands a batch to the writer without waiting for it, so one thread can
    /// keep many appends in flight.
    pub fn submit(&self, batch: Batch) -> Result<Pending, LogError> {
        batch.check()?;
        let tx = self.tx.as_ref().ok_or(LogError::ReadOnly)?;
        let (reply, rx) = crossbeam_channel::bounded(1);
        tx.send(writer::Request::Append { batch, reply }).map_err(|_| LogError::Closed)?;
        Ok(Pending { rx, shared: Arc::clone(&self.shared) })
    }

    /// The visible horizon: the sequence number after the last frame readers
    /// see (with `Sync::EveryBatch`, the last durable one). Appends placed
    /// but not yet durable are above it.
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq.load(Ordering::Acquire)
    }

    /// Makes every placed frame below sequence number `end` durable
    /// (returns at once if it is; see [`Placed::durable`]).
    pub fn sync_through(&self, end: u64) -> Result<(), LogError> {
        self.shared.sync_through(end)
    }

    /// Why the log refuses to write (a write or sync failed; reopen it), if
    /// it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.durability.poisoned()
    }

    /// Refuses every later append and sync, for `why` (what was placed and
    /// not yet synced never becomes durable through this log).
    pub(crate) fn poison(&self, why: String) {
        self.shared.durability.poison(why);
    }

    /// Flushes, stops the writer and reports the last sync's result.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        self.shared.stop_sync_thread();
        self.tx = None;
        match self.writer.take() {
            Some(handle) => handle.join().unwrap_or(Err(LogError::Poisoned("writer thread panicked".into()))),
            None => Ok(()),
        }
    }

    /// What the writer has done since the log was opened.
    pub fn stats(&self) -> LogStats {
        let c = &self.shared.counters;
        LogStats {
            frames: c.frames.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            sync_micros: c.sync_micros.load(Ordering::Relaxed),
            rolls: c.rolls.load(Ordering::Relaxed),
        }
    }

    /// Total bytes of segment files on disk (preallocated space included).
    pub fn disk_bytes(&self) -> u64 {
        self.shared.all().iter().map(|s| s.mapped().map_or(s.listed_len, |m| m.allocated() as u64)).sum()
    }

    /// Each segment's rewrite generation, by key. A cold segment listed
    /// but unreadable (a read-only open's) has `u32::MAX`, which no
    /// position's generation is: what points into it is not current,
    /// where a cold segment not listed at all was removed with every job
    /// that had events in it.
    pub(crate) fn generations(&self) -> Generations {
        let unreadable = self.shared.unreadable_cold.iter().map(|&k| (k, u32::MAX));
        self.shared.all().iter().map(|s| (s.key, s.generation)).chain(unreadable).collect()
    }

    /// Bytes of whole frames (and segment headers) in the log: what it
    /// holds, without the active segment's preallocated tail.
    pub fn data_bytes(&self) -> u64 {
        self.shared.all().iter().map(|s| s.published()).sum()
    }

    /// Unmaps from this process the pages of every segment it has read
    /// (`SegmentMap::release_pages`): they stay in the page cache, where
    /// the kernel may then drop them.
    pub fn release_mapped_pages(&self) -> Result<(), LogError> {
        for s in self.shared.all() {
            if let Some(map) = s.mapped() {
                map.release_pages().map_err(|e| LogError::Io { path: s.path.clone(), source: e })?;
            }
        }
        Ok(())
    }

    /// The segments: the hot ones oldest first, then the cold ones by id.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared
            .all()
            .iter()
            .map(|s| SegmentInfo {
                key: s.key,
                cold: s.is_cold(),
                frames: s.is_cold().then_some(s.frames),
                first_seq: s.first_seq,
                generation: s.generation,
                path: s.path.clone(),
                published_bytes: s.published(),
            })
            .collect()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Segments' rewrite generations by key (a hot segment's first sequence
/// number, a cold one's `COLD | id`): a position is valid only in the
/// generation it was read from.
pub type Generations = std::collections::HashMap<u64, u32>;

/// A segment as [`Log::segments`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// What positions name it by ([`Position::segment`]).
    pub key: u64,
    /// Whether it is a cold segment (frames a freeze moved out of the hot
    /// ones, in sequence order but interleaved with theirs).
    pub cold: bool,
    /// How many frames it holds, for a cold segment.
    pub frames: Option<u64>,
    /// Its header's first sequence number (a hot segment's name).
    pub first_seq: u64,
    /// How many times compaction has rewritten it.
    pub generation: u32,
    /// Its file.
    pub path: PathBuf,
    /// Bytes of whole, readable frames (header included).
    pub published_bytes: u64,
}

/// Re-exported for tools and tests that measure the raw format.
pub use format::{FRAME_HEADER_LEN, HEADER_LEN};
