//! Reading: iteration from any sequence number across segments, and random
//! access by position. Every frame's checksum is verified on every read
//! (a scan that reads a compacted or cold segment whole checks it once
//! against its manifest checksum instead: `Segment::scan_trusts`);
//! readers see only published frames, so they never observe a write in
//! progress, and they keep reading while the writer appends and rolls.
//! Iteration stops at the visible horizon (`durable.rs`: with
//! `Sync::EveryBatch`, what is durable); a read by position reaches every
//! placed frame.

use std::cmp::Reverse;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::sync::Arc;

use super::ahead::ReadAhead;
use super::error::corrupt;
use super::format::{self, FrameRead, SeqRule, HEADER_LEN};
use super::manifest::{Manifest, COLD};
use super::map::SegmentMap;
use super::{List, Log, LogError, Position, Segment, Shared};
use crate::sys::map::ReadThrough;

/// One record: its sequence number, where it lives, and its payload, read
/// in place from the segment's map.
#[derive(Clone)]
pub struct Record {
    /// Its segment's key and map.
    key: u64,
    map: Arc<SegmentMap>,
    frame: format::Frame,
}

impl Record {
    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.frame.seq
    }

    /// Where it lives (valid until compaction rewrites its segment).
    pub fn position(&self) -> Position {
        position_of(self.key, &self.frame)
    }

    /// Its payload, read in place from the segment's map.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.map.bytes()[self.frame.payload_offset..self.frame.end()]
    }
}

/// Where `frame`, in the segment of key `key`, lives.
fn position_of(key: u64, frame: &format::Frame) -> Position {
    Position { segment: key, offset: (frame.payload_offset - format::FRAME_HEADER_LEN) as u64 }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record").field("seq", &self.seq()).field("position", &self.position()).finish()
    }
}

/// Iterates records in sequence order from a starting sequence number. When
/// it reaches the end of what is published it returns `None`, but it is not
/// fused: calling `next` again later returns what was appended since (a
/// tailing reader). A corrupt frame is returned as an error, after which the
/// iterator ends. Cold segments' frames come in their places.
pub struct LogIter {
    shared: Arc<Shared>,
    seg: Option<Arc<Segment>>,
    offset: usize,
    from_seq: u64,
    /// The sequence number after the last record returned.
    after: u64,
    cold: ColdMerge,
    failed: bool,
}

impl Iterator for LogIter {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let hot = match self.peek_hot() {
            Ok(hot) => hot,
            Err(e) => return self.fail(e),
        };
        let cold_next = match self.cold.next_seq() {
            Ok(next) => next,
            Err(e) => return self.fail(e),
        };
        let record = match hot {
            Some((map, frame)) if frame.seq < cold_next => {
                self.offset = frame.end();
                let key = self.seg.as_ref().expect("a frame was read from it").key;
                Record { key, map, frame }
            }
            Some((_, frame)) if frame.seq == cold_next => return self.fail(twice(&self.cold, frame.seq)),
            // Cold frames are below the visible horizon (they were durable
            // in a sealed segment): they come whatever the hot side has.
            _ if cold_next != u64::MAX => self.cold.pop(),
            _ => return None,
        };
        self.after = record.frame.seq + 1;
        Some(Ok(record))
    }
}

impl LogIter {
    fn fail(&mut self, err: LogError) -> Option<Result<Record, LogError>> {
        self.failed = true;
        Some(Err(err))
    }

    /// The next hot frame at or after `from_seq`, not yet taken, and the
    /// map it is in; `None` at the end of what is published.
    fn peek_hot(&mut self) -> Result<Option<(Arc<SegmentMap>, format::Frame)>, LogError> {
        loop {
            if self.seg.is_none() {
                // The log was empty when iteration started: look again
                // (and at what a freeze may have moved meanwhile).
                let (hot, cold) = self.shared.snapshot_both();
                self.seg = hot.first().cloned();
                self.offset = HEADER_LEN;
                self.cold.add(&cold, self.after.max(self.from_seq));
            }
            let Some(seg) = self.seg.as_ref().map(Arc::clone) else { return Ok(None) };
            let map = seg.map()?;
            let bytes = map.bytes();
            self.offset = seg.skip(self.offset);
            if self.offset < bytes.len() {
                match format::read_frame(bytes, self.offset) {
                    // Placed, not yet visible (`durable.rs`): looked at again
                    // on the next call.
                    FrameRead::Frame(frame) if self.shared.hides(frame.seq) => return Ok(None),
                    FrameRead::Frame(frame) if frame.seq < self.from_seq => {
                        self.offset = frame.end();
                        continue;
                    }
                    FrameRead::Frame(frame) => return Ok(Some((Arc::clone(map), frame))),
                    FrameRead::End => return Err(corrupt(&seg.path, self.offset, "published bytes hold no frame")),
                    FrameRead::Invalid(why) => return Err(corrupt(&seg.path, self.offset, why)),
                }
            }
            // End of what this segment has published. If a later segment
            // exists, this one is sealed, but it may have published its last
            // frames after we looked: look again before moving on.
            let (hot, cold) = self.shared.snapshot_both();
            let next = hot.get(hot.partition_point(|s| s.first_seq <= seg.first_seq)).cloned();
            let Some(next) = next else { return Ok(None) };
            if self.offset < map.published() {
                continue;
            }
            // A freeze since the last look moved frames of the segments
            // ahead into cold segments: those come from there. (Frames it
            // moved out of the segments behind came from their old maps.)
            self.cold.add(&cold, self.after.max(self.from_seq));
            self.seg = Some(next);
            self.offset = HEADER_LEN;
        }
    }
}

/// The error for a sequence number found in a hot and a cold segment.
fn twice(cold: &ColdMerge, seq: u64) -> LogError {
    let (path, offset) = cold.peek_at().unwrap_or_default();
    corrupt(&path, offset, format!("sequence number {seq} is in a hot and a cold segment"))
}

/// Bytes of each frame [`Frames::prefetch`] asks for.
const PREFETCH_FRAME_BYTES: usize = 256;

/// Frame headers [`Log::written_frame_lens`] fetches at once.
const LENS_AHEAD: usize = 32;

/// [`Log::written_frame_lens`] reads a segment through when it asks for
/// at least one frame per this many of its bytes. A 4 KiB page holds
/// about 44 frames of a job store (94 bytes each on average in the kept
/// 10M one), so one frame in 22, picked at random, falls in most pages
/// (87% of them): cheaper to read the whole segment at the disk's pace
/// than most of its pages one by one.
const THROUGH_BYTES_EACH: usize = 2048;

/// How far past the frame it moves to a cold segment's bytes are fetched
/// ahead ([`ColdMerge::take`]).
const COLD_FETCH_AHEAD: usize = 512;

/// The frames of the cold segments, merged into one sequence: each cold
/// segment is in sequence order, and a segment is opened only once the
/// merge reaches its first sequence number.
pub(crate) struct ColdMerge {
    /// Segments not yet reached, by first sequence number, the nearest last.
    waiting: Vec<Arc<Segment>>,
    /// Keys of every segment taken in, so that [`ColdMerge::add`] adds
    /// each once.
    known: Vec<u64>,
    /// Reached segments, each with its next frame.
    open: Vec<Reached>,
    /// (next frame's sequence number, index in `open`) of each reached
    /// segment that has one: a min-heap.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    /// Frames below this are not returned.
    from_seq: u64,
    /// Whether each segment is read through (`SegmentMap::read_through`):
    /// a scan of the whole log, not a tailing reader.
    through: bool,
    /// Damage met and not yet returned.
    failed: Vec<LogError>,
    /// The segments read ahead of a scan, if it reads any (`ahead.rs`).
    ahead: Option<ReadAhead>,
}

impl ColdMerge {
    pub(crate) fn new(cold: &[Arc<Segment>], from_seq: u64, through: bool) -> Self {
        let mut merge = Self {
            waiting: Vec::new(),
            known: Vec::new(),
            open: Vec::new(),
            heap: BinaryHeap::new(),
            from_seq,
            through,
            failed: Vec::new(),
            ahead: None,
        };
        merge.add(cold, from_seq);
        merge
    }

    /// Takes in the segments of `cold` not taken in before, returning only
    /// their frames from `from_seq` on.
    fn add(&mut self, cold: &[Arc<Segment>], from_seq: u64) {
        let before = self.waiting.len();
        for seg in cold {
            if !self.known.contains(&seg.key) {
                self.known.push(seg.key);
                if seg.last_seq >= from_seq {
                    self.waiting.push(Arc::clone(seg));
                }
            }
        }
        if self.waiting.len() > before {
            self.from_seq = self.from_seq.max(from_seq);
            self.waiting.sort_by_key(|s| Reverse(s.first_seq));
        }
    }

    /// The sequence number of the next cold frame; `u64::MAX` when none is
    /// left.
    pub(crate) fn next_seq(&mut self) -> Result<u64, LogError> {
        if let Some(e) = self.failed.pop() {
            return Err(e);
        }
        loop {
            let top = self.heap.peek().map_or(u64::MAX, |Reverse((seq, _))| *seq);
            match self.waiting.last() {
                Some(seg) if seg.first_seq <= top => {
                    let seg = self.waiting.pop().expect("just looked");
                    let map = Arc::clone(seg.map()?);
                    let (crc, through) = match self.through {
                        true => {
                            let (trusted, through) = self.trusts(&seg, &map);
                            (!trusted, Some(through))
                        }
                        false => (true, None),
                    };
                    if let Some(frame) = next_frame(&seg, &map, HEADER_LEN, self.from_seq, crc)? {
                        self.heap.push(Reverse((frame.seq, self.open.len())));
                        self.open.push(Reached { seg, map, frame, crc, _through: through });
                    }
                }
                _ => return Ok(top),
            }
        }
    }

    /// Whether a scan (reading each segment through) may read `seg`'s
    /// frames, mapped as `map`, without each one's CRC
    /// (`Segment::scan_trusts`; as read ahead when it was), and the
    /// guard of the scan's read of it.
    fn trusts(&mut self, seg: &Segment, map: &Arc<SegmentMap>) -> (bool, ReadThrough<Arc<SegmentMap>>) {
        if let Some(read) = self.ahead.as_mut().and_then(|a| a.take(seg.key)) {
            if let Some(trusted) = read.trusts(map.bytes()) {
                return (trusted, read.through);
            }
        }
        // The guard first: the checksum reads the whole map.
        let through = map.read_through_shared();
        (seg.scan_trusts(map.bytes(), self.from_seq), through)
    }

    /// Takes the next cold frame (after [`ColdMerge::next_seq`] said there
    /// is one). Damage met past it (in its segment, or the same sequence
    /// number in another) is returned by the next [`ColdMerge::next_seq`],
    /// and the segment where it was met is left out from then on.
    pub(crate) fn pop(&mut self) -> Record {
        let (i, frame) = self.take();
        Record { key: self.open[i].seg.key, map: Arc::clone(&self.open[i].map), frame }
    }

    /// [`ColdMerge::pop`] without a handle on the frame's map: the frame
    /// taken, read from `open[i]`'s map until the merge moves on (a scan's
    /// frames go by with no atomic count changed).
    fn take(&mut self) -> (usize, format::Frame) {
        let Self { heap, open, failed, from_seq, .. } = self;
        let mut top = heap.peek_mut().expect("a cold frame is next");
        let Reverse((seq, i)) = *top;
        let r = &mut open[i];
        let frame = r.frame;
        // The segment moves to its next frame in place: one sift of the
        // heap (as `top` is dropped), not a pop and a push.
        match next_frame(&r.seg, &r.map, r.frame.end(), *from_seq, r.crc) {
            Ok(Some(next)) => {
                r.frame = next;
                *top = Reverse((next.seq, i));
                drop(top);
                // The merge reads each of its segments a frame at a time,
                // in turn: too many streams for the processor to see, so a
                // frame's first bytes were a wait for memory each. The
                // bytes a few frames on in this one are fetched ahead.
                if let Some(ahead) = r.map.bytes().get(next.end() + COLD_FETCH_AHEAD) {
                    crate::sys::prefetch(ahead);
                }
            }
            Ok(None) => {
                r._through = None;
                PeekMut::pop(top);
            }
            Err(e) => {
                r._through = None;
                failed.push(e);
                PeekMut::pop(top);
            }
        }
        while let Some(&Reverse((other_seq, j))) = heap.peek() {
            if other_seq != seq {
                break;
            }
            heap.pop();
            let other = &mut open[j];
            failed.push(corrupt(
                &other.seg.path,
                other.frame.offset(),
                format!("sequence number {seq} is in two cold segments"),
            ));
            other._through = None;
        }
        (i, frame)
    }

    /// The frame [`ColdMerge::take`] took from `open[i]`.
    fn record(&self, i: usize, frame: format::Frame) -> RecordRef<'_> {
        let r = &self.open[i];
        RecordRef {
            seq: frame.seq,
            position: position_of(r.seg.key, &frame),
            payload: &r.map.bytes()[frame.payload_offset..frame.end()],
        }
    }

    /// The file and offset of the frame that is next.
    fn peek_at(&self) -> Option<(std::path::PathBuf, usize)> {
        self.heap.peek().map(|Reverse((_, i))| (self.open[*i].seg.path.clone(), self.open[*i].frame.offset()))
    }
}

/// The cold segment files of `dir` (the newest generation of each id),
/// merged as a salvage without a manifest reads them; each file that
/// cannot be opened, or whose header is damaged, goes to `lost` (its path,
/// why) and is left out.
pub(crate) fn cold_files(dir: &std::path::Path, lost: &mut dyn FnMut(std::path::PathBuf, String)) -> ColdMerge {
    let mut newest: std::collections::BTreeMap<u64, (u32, String)> = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((key, generation)) = super::manifest::parse_any_segment_file_name(&name) {
            if key & COLD != 0 && newest.get(&key).is_none_or(|(g, _)| *g < generation) {
                newest.insert(key, (generation, name));
            }
        }
    }
    let mut segments = Vec::new();
    for (key, (generation, name)) in newest {
        let path = dir.join(name);
        let opened = std::fs::File::open(&path).and_then(|file| {
            let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
            SegmentMap::read_only(&file, len)
        });
        let map = match opened {
            Ok(map) => map,
            Err(e) => {
                lost(path, format!("the whole cold segment could not be read: {e}"));
                continue;
            }
        };
        match format::SegmentHeader::decode(map.bytes()) {
            Ok(h) => segments.push(Arc::new(Segment::keyed(key, h.first_seq, generation, path, Arc::new(map)))),
            Err(why) => {
                lost(path, format!("the cold segment's header is damaged ({why}): the whole file could not be read"))
            }
        }
    }
    ColdMerge::new(&segments, 1, false)
}

/// A cold segment the merge reached.
struct Reached {
    seg: Arc<Segment>,
    map: Arc<SegmentMap>,
    /// Its next frame.
    frame: format::Frame,
    /// Whether each frame's CRC is checked (not when the scan trusts the
    /// whole: `Segment::scan_trusts`).
    crc: bool,
    /// While it has one, the guard of a scan of its whole map (`through`).
    _through: Option<ReadThrough<Arc<SegmentMap>>>,
}

/// The first frame of `seg` (mapped as `map`) at or after `offset` whose
/// sequence number is `from_seq` or more; `None` at its end.
fn next_frame(
    seg: &Segment,
    map: &SegmentMap,
    mut offset: usize,
    from_seq: u64,
    crc: bool,
) -> Result<Option<format::Frame>, LogError> {
    let bytes = map.bytes();
    loop {
        offset = seg.skip(offset);
        if offset >= bytes.len() {
            return Ok(None);
        }
        match format::read_frame_checking(bytes, offset, crc) {
            FrameRead::Frame(frame) if frame.seq < from_seq => offset = frame.end(),
            FrameRead::Frame(frame) => return Ok(Some(frame)),
            FrameRead::End => return Err(corrupt(&seg.path, offset, "published bytes hold no frame")),
            FrameRead::Invalid(why) => return Err(corrupt(&seg.path, offset, why)),
        }
    }
}

/// A record borrowed from its segment, as [`Log::scan_from`] passes it.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Where it lives.
    pub position: Position,
    /// Its payload, borrowed from the segment's map.
    pub payload: &'a [u8],
}

/// The log's segments of one moment ([`Log::frames`]), for reading many
/// frames: each read finds its segment here, without taking the log's
/// lock or counting a reference to the segment, as [`Log::read_written`]
/// does for each. A page of a view reads up to a hundred frames; taking
/// those for each read cost it 2–3% (docs/benchmarks.md, "A page's
/// frames fetched at once"). Segments that compaction replaces after it
/// was taken stay readable through it until it is dropped.
pub struct Frames {
    hot: List,
    cold: List,
}

impl Frames {
    /// [`Log::read_written`], borrowing the payload from the segment's map.
    pub fn read_written(&self, pos: Position) -> Result<RecordRef<'_>, LogError> {
        let (seg, map, frame) = frame_at(list_for(&self.hot, &self.cold, pos.segment), pos, true)?;
        Ok(RecordRef {
            seq: frame.seq,
            position: position_of(seg.key, &frame),
            payload: &map.bytes()[frame.payload_offset..frame.end()],
        })
    }

    /// Asks for the first bytes of the frames at `positions` (positions
    /// this log handed out) to be fetched into the cache, without waiting
    /// for them (`sys::prefetch`), so that reading them one after the
    /// other waits for memory about once rather than once each. A hint: a
    /// position that names nothing is skipped, its read reports it. A
    /// segment not read yet in this process is mapped here, as its first
    /// read would.
    pub fn prefetch(&self, positions: impl IntoIterator<Item = Position>) {
        for pos in positions {
            let list = list_for(&self.hot, &self.cold, pos.segment);
            let Ok(i) = list.binary_search_by_key(&pos.segment, |s| s.key) else { continue };
            let Ok(map) = list[i].map() else { continue };
            // A creation event's frame is a few hundred bytes: its header
            // and the cache lines after it.
            prefetch_at(map.bytes(), pos.offset, PREFETCH_FRAME_BYTES);
        }
    }
}

/// The list of `hot` and `cold` that holds the segment of key `segment`.
fn list_for<'a>(hot: &'a List, cold: &'a List, segment: u64) -> &'a List {
    if segment & COLD != 0 {
        cold
    } else {
        hot
    }
}

/// Asks for the cache lines of `bytes` from `offset` on, `len` bytes of
/// them, without waiting (`sys::prefetch`): a hint, nothing past the end.
fn prefetch_at(bytes: &[u8], offset: u64, len: usize) {
    let Ok(offset) = usize::try_from(offset) else { return };
    for line in (0..len).step_by(64) {
        if let Some(b) = bytes.get(offset.saturating_add(line)) {
            crate::sys::prefetch(b);
        }
    }
}

/// The frame at `pos` in `list` (the hot or the cold segments, as `pos`
/// names), its segment and map: [`Log::read_at`], or [`Log::read_written`]
/// when `written`.
fn frame_at(
    list: &List,
    pos: Position,
    written: bool,
) -> Result<(&Segment, &Arc<SegmentMap>, format::Frame), LogError> {
    let bad = |reason| LogError::BadPosition { segment: pos.segment, offset: pos.offset, reason };
    let i = list.binary_search_by_key(&pos.segment, |s| s.key).map_err(|_| bad("no such segment"))?;
    let seg: &Segment = &list[i];
    let offset = usize::try_from(pos.offset).map_err(|_| bad("offset out of range"))?;
    if offset < HEADER_LEN {
        return Err(bad("offset inside the segment header"));
    }
    let map = seg.map()?;
    match format::read_frame(map.bytes(), offset) {
        FrameRead::Frame(frame) => Ok((seg, map, frame)),
        FrameRead::End if written => Err(corrupt(&seg.path, offset, "no frame where one was written")),
        FrameRead::Invalid(why) if written => Err(corrupt(&seg.path, offset, why)),
        FrameRead::End => Err(bad("past the end of the segment")),
        FrameRead::Invalid(why) => Err(bad(why)),
    }
}

/// The result of [`Log::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: usize,
    /// Frames checked.
    pub frames: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Each problem found, naming the file and offset.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The sequence number after the last published frame of `seg` (its first
/// sequence number if it has none).
pub(crate) fn next_seq_of(seg: &Segment) -> Result<u64, LogError> {
    let bytes = seg.map()?.bytes();
    let scan = format::scan(bytes, bytes.len(), seg.first_seq, SeqRule::Increasing);
    Ok(scan.last_seq.map_or(seg.first_seq, |s| s + 1))
}

impl Log {
    /// Iterates from the first record whose sequence number is `from_seq` or
    /// more.
    pub fn iter_from(&self, from_seq: u64) -> LogIter {
        let (snapshot, cold) = self.shared.snapshot_both();
        // The last segment starting at or before `from_seq`.
        let i = snapshot.partition_point(|s| s.first_seq <= from_seq).saturating_sub(1);
        LogIter {
            shared: Arc::clone(&self.shared),
            seg: snapshot.get(i).cloned(),
            offset: HEADER_LEN,
            from_seq,
            after: from_seq,
            cold: ColdMerge::new(&cold, from_seq, false),
            failed: false,
        }
    }

    /// Calls `f` with every record from the first whose sequence number is
    /// `from_seq` or more, in order, each checksum verified (or its
    /// segment's whole, `Segment::scan_trusts`), without the
    /// per-record reference counting of [`LogIter`]: the fast path for
    /// replaying a whole log. Sees what is published when it reaches each
    /// segment, below the visible horizon when it starts (`durable.rs`);
    /// stops early when `f` returns `ControlFlow::Break`.
    pub fn scan_from<E: From<LogError>>(
        &self,
        from_seq: u64,
        f: impl FnMut(RecordRef<'_>) -> Result<std::ops::ControlFlow<()>, E>,
    ) -> Result<(), E> {
        self.scan_after(from_seq, None, f)
    }

    /// [`Log::scan_from`], told where the record before `from_seq` is
    /// (`last`: a hint, such as a checkpoint keeps). When the frame there
    /// is that record and in the segment that holds `from_seq`, the scan
    /// starts right after it, where otherwise it reads every frame of that
    /// segment before it (up to a segment's size). When it is not
    /// (compaction moved it, no such frame is there, or it ends an earlier
    /// segment, where there is nothing to pass over), the hint is passed
    /// over.
    pub fn scan_after<E: From<LogError>>(
        &self,
        from_seq: u64,
        last: Option<Position>,
        mut f: impl FnMut(RecordRef<'_>) -> Result<std::ops::ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let horizon = if self.shared.writable { self.next_seq() } else { u64::MAX };
        let (snapshot, cold_list) = self.shared.snapshot_both();
        let first = snapshot.partition_point(|s| s.first_seq <= from_seq).saturating_sub(1);
        let start = match last.and_then(|last| frame_after(&snapshot, last, from_seq)) {
            Some((k, offset)) if k == first => (k, offset),
            _ => (first, HEADER_LEN),
        };
        // Passes cold frames below `until` to `f`; `Break` once `f` said so.
        let cold_until = |cold: &mut ColdMerge,
                          until: u64,
                          cold_next: &mut u64,
                          f: &mut dyn FnMut(RecordRef<'_>) -> Result<std::ops::ControlFlow<()>, E>|
         -> Result<std::ops::ControlFlow<()>, E> {
            while *cold_next < until {
                let (i, frame) = cold.take();
                if f(cold.record(i, frame))?.is_break() {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                *cold_next = cold.next_seq()?;
            }
            Ok(std::ops::ControlFlow::Continue(()))
        };
        // The read-ahead thread, if any, ends before this returns.
        std::thread::scope(|scope| {
            let mut cold = ColdMerge::new(&cold_list, from_seq, true);
            let reached = snapshot[start.0..].iter().chain(cold_list.iter()).cloned();
            cold.ahead = ReadAhead::start(scope, reached, from_seq);
            // The next cold frame's sequence number (`u64::MAX`: none): hot
            // frames below it go by with one comparison each.
            let mut cold_next = cold.next_seq()?;
            'hot: for (k, seg) in snapshot.iter().enumerate().skip(start.0) {
                let map = seg.map()?;
                let (trusted, _through) = cold.trusts(seg, map);
                let bytes = map.bytes();
                let mut offset = if k == start.0 { start.1 } else { HEADER_LEN };
                loop {
                    offset = seg.skip(offset);
                    if offset >= bytes.len() {
                        break;
                    }
                    let frame = match format::read_frame_checking(bytes, offset, !trusted) {
                        FrameRead::Frame(frame) => frame,
                        FrameRead::End => {
                            return Err(corrupt(&seg.path, offset, "published bytes hold no frame").into())
                        }
                        FrameRead::Invalid(why) => return Err(corrupt(&seg.path, offset, why).into()),
                    };
                    if frame.seq >= horizon {
                        break 'hot;
                    }
                    let position = Position { segment: seg.key, offset: offset as u64 };
                    offset = frame.end();
                    if frame.seq < from_seq {
                        continue;
                    }
                    if frame.seq >= cold_next {
                        if cold_until(&mut cold, frame.seq, &mut cold_next, &mut f)?.is_break() {
                            return Ok(());
                        }
                        if frame.seq == cold_next {
                            return Err(twice(&cold, frame.seq).into());
                        }
                    }
                    let payload = &bytes[frame.payload_offset..frame.end()];
                    if f(RecordRef { seq: frame.seq, position, payload })?.is_break() {
                        return Ok(());
                    }
                }
            }
            let _flow = cold_until(&mut cold, horizon, &mut cold_next, &mut f)?;
            Ok(())
        })
    }

    /// Reads the record at `pos`, verifying its checksum.
    pub fn read_at(&self, pos: Position) -> Result<Record, LogError> {
        self.read_position(pos, false)
    }

    /// Reads the record at `pos`, a position this log handed out for a
    /// frame it wrote (a state holds it): finding no valid frame there is
    /// damage, [`LogError::Corrupt`] naming the segment's file and the
    /// offset, where [`Log::read_at`] cannot tell it from a position that
    /// never was one.
    pub fn read_written(&self, pos: Position) -> Result<Record, LogError> {
        self.read_position(pos, true)
    }

    fn read_position(&self, pos: Position, written: bool) -> Result<Record, LogError> {
        let snapshot = if pos.segment & COLD != 0 {
            Arc::clone(&self.shared.cold.read().unwrap_or_else(|e| e.into_inner()))
        } else {
            self.shared.snapshot()
        };
        let (seg, map, frame) = frame_at(&snapshot, pos, written)?;
        Ok(Record { key: seg.key, map: Arc::clone(map), frame })
    }

    /// The segments of this moment, for many reads ([`Frames`]).
    pub fn frames(&self) -> Frames {
        let (hot, cold) = self.shared.snapshot_both();
        Frames { hot, cold }
    }

    /// The length (header and payload) of the frame a position this log
    /// handed out points to ([`Log::written_frame_lens`] of one).
    pub fn written_frame_len(&self, pos: Position) -> Result<u64, LogError> {
        Ok(self.written_frame_lens(&[pos])?.first().map_or(0, |&l| u64::from(l)))
    }

    /// The lengths (header and payload) of the frames positions this log
    /// handed out point to, read from their headers alone: sizes to plan
    /// by, the frames' checksums unchecked (see [`Log::read_written`]).
    ///
    /// A plan asks for the frames of millions of jobs, job after job, each
    /// header elsewhere in the log. They are read segment by segment (a
    /// counting sort of the positions by segment; each segment's in the
    /// order asked), and a segment where they are many
    /// (`THROUGH_BYTES_EACH`) is read through
    /// (`SegmentMap::read_through`): the kernel reads it whole, at the
    /// disk's pace, rather than page by page at random wherever the page
    /// cache no longer holds it (a 30M-job store after its load; see
    /// docs/benchmarks.md, "The freeze plan reads the log segment by
    /// segment"). In each segment the headers are fetched 32 positions
    /// ahead (`LENS_AHEAD`): read one at a time, each was a wait for
    /// memory ("A freeze plan that asks for its frames at once"). When
    /// several positions are bad, the one reported is the first found
    /// this way (a position naming no segment before a damaged frame),
    /// not necessarily the first asked. The list by segment costs 4 bytes
    /// a position while it runs, beside the plan's 24.
    pub fn written_frame_lens(&self, positions: &[Position]) -> Result<Vec<u32>, LogError> {
        let (hot, cold) = self.shared.snapshot_both();
        let segments: Vec<&Segment> = hot.iter().chain(cold.iter()).map(|s| &**s).collect();
        // The index in `segments` of a position's segment, the last one
        // found kept (a job's frames are often in one segment).
        let mut last: Option<(u64, usize)> = None;
        let mut index = |pos: Position| -> Result<usize, LogError> {
            if let Some((key, j)) = last.filter(|&(key, _)| key == pos.segment) {
                debug_assert_eq!(segments[j].key, key);
                return Ok(j);
            }
            let (list, base) = if pos.segment & COLD != 0 { (&cold, hot.len()) } else { (&hot, 0) };
            let bad = LogError::BadPosition { segment: pos.segment, offset: pos.offset, reason: "no such segment" };
            let j = base + list.binary_search_by_key(&pos.segment, |s| s.key).map_err(|_| bad)?;
            last = Some((pos.segment, j));
            Ok(j)
        };
        let mut lens = vec![0u32; positions.len()];
        // Numbered in 32 bits: a part of at most 2^32 - 1 positions at a time.
        for (part, part_lens) in positions.chunks(u32::MAX as usize).zip(lens.chunks_mut(u32::MAX as usize)) {
            // `starts[j]..starts[j + 1]`: where segment `j`'s positions are
            // in `by_segment`.
            let mut starts = vec![0usize; segments.len() + 1];
            for &pos in part {
                starts[index(pos)? + 1] += 1;
            }
            for j in 0..segments.len() {
                starts[j + 1] += starts[j];
            }
            let mut by_segment = vec![0u32; part.len()];
            let mut next = starts.clone();
            for (&pos, i) in part.iter().zip(0u32..) {
                let j = index(pos)?;
                by_segment[next[j]] = i;
                next[j] += 1;
            }
            drop(next);
            for (j, seg) in segments.iter().enumerate() {
                let mine = &by_segment[starts[j]..starts[j + 1]];
                if mine.is_empty() {
                    continue;
                }
                let map = seg.map()?;
                let bytes = map.bytes();
                let _through =
                    (mine.len().saturating_mul(THROUGH_BYTES_EACH) >= bytes.len()).then(|| map.read_through());
                for chunk in mine.chunks(LENS_AHEAD) {
                    for &i in chunk {
                        prefetch_at(bytes, part[i as usize].offset, 1);
                    }
                    for &i in chunk {
                        let offset = usize::try_from(part[i as usize].offset).unwrap_or(usize::MAX);
                        let len = format::claimed_frame_len(bytes, offset)
                            .ok_or_else(|| corrupt(&seg.path, offset, "no frame where one was written"))?;
                        // A frame's length fits in 32 bits: its payload is
                        // at most 16 MiB (`claimed_frame_len` checks).
                        part_lens[i as usize] = u32::try_from(len).expect("a frame is at most 16 MiB and its header");
                    }
                }
            }
        }
        Ok(lens)
    }

    /// Reads every published frame of every segment, checking each frame's
    /// checksum and each sealed segment against the manifest. Finds every
    /// problem rather than stopping at the first.
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        let manifest = Manifest::load(&self.shared.dir)?;
        let (snapshot, cold) = self.shared.snapshot_both();
        let mut report = VerifyReport { segments: snapshot.len() + cold.len(), ..VerifyReport::default() };
        let mut prev_last: Option<u64> = None;
        let listed = |seg: &Segment| {
            if seg.is_cold() {
                manifest.cold.iter().find(|e| e.key() == seg.key).map(|e| e.sealed)
            } else {
                manifest.sealed.iter().find(|e| e.first_seq == seg.first_seq).copied()
            }
        };
        for seg in snapshot.iter().chain(cold.iter()) {
            let bytes = match seg.map() {
                Ok(map) => map.bytes(),
                Err(e) => {
                    report.problems.push(e.to_string());
                    continue;
                }
            };
            report.bytes += bytes.len() as u64;
            let scan = format::scan(bytes, bytes.len(), seg.first_seq, SeqRule::Increasing);
            report.frames += scan.frames;
            if let Some((offset, why)) = scan.stopped {
                report.problems.push(format!("{} at offset {offset}: {why}", seg.path.display()));
            } else if scan.committed_end != bytes.len() {
                report.problems.push(format!(
                    "{} at offset {}: published bytes hold no frame",
                    seg.path.display(),
                    scan.committed_end
                ));
            }
            // Hot segments follow each other; cold ones interleave.
            if !seg.is_cold() {
                if let (Some(p), Some(first)) = (prev_last, scan.last_seq.map(|_| seg.first_seq)) {
                    if first <= p {
                        report
                            .problems
                            .push(format!("{}: sequence numbers overlap the previous segment", seg.path.display()));
                    }
                }
                prev_last = scan.last_seq.or(prev_last);
            }
            match listed(seg) {
                Some(entry) => {
                    if entry.len != bytes.len() as u64 || entry.crc != crc32fast::hash(bytes) {
                        report
                            .problems
                            .push(format!("{}: content differs from its manifest entry", seg.path.display()));
                    }
                    if entry.frames != scan.frames || Some(entry.last_seq) != scan.last_seq {
                        report.problems.push(format!("{}: frames differ from its manifest entry", seg.path.display()));
                    }
                }
                None if seg.is_cold() || !Arc::ptr_eq(seg, snapshot.last().expect("non-empty")) => {
                    report.problems.push(format!("{}: sealed segment missing from the manifest", seg.path.display()));
                }
                None => {}
            }
        }
        Ok(report)
    }
}

/// Where in `snapshot` (its index, an offset) the hot frame at `last`
/// ends, when it is record `from_seq - 1`, its checksum checked: a scan
/// from `from_seq` may start there. `None` otherwise.
fn frame_after(snapshot: &[Arc<Segment>], last: Position, from_seq: u64) -> Option<(usize, usize)> {
    if last.segment & COLD != 0 || from_seq == 0 {
        return None;
    }
    let k = snapshot.binary_search_by_key(&last.segment, |s| s.key).ok()?;
    let offset = usize::try_from(last.offset).ok().filter(|&o| o >= HEADER_LEN)?;
    let map = snapshot[k].map().ok()?;
    match format::read_frame(map.bytes(), offset) {
        FrameRead::Frame(frame) if frame.seq == from_seq - 1 => Some((k, frame.end())),
        _ => None,
    }
}
