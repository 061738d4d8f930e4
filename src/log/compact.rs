//! Compaction: rewriting sealed segments without the frames a caller no
//! longer needs, so that their space really comes back.
//!
//! Two steps, so that the caller can hold its own locks only for the short
//! second one:
//!
//! 1. [`Log::rewrite`] (no lock, appends and reads go on): seals the active
//!    segment if a frame to drop is in it; then, for each segment with
//!    frames to drop, copies the survivors into `NAME-gN.seg.tmp` (same
//!    first sequence number, next generation; every survivor keeps its
//!    sequence number and payload; the frames of an atomic batch that
//!    survive still form one batch), syncs it and renames it to its name.
//!    A segment left with no frame gets no file.
//! 2. [`Log::install`]: the writer thread replaces those segments' manifest
//!    entries (or removes them) in one atomic manifest store and swaps the
//!    segment list; then the old files are unlinked. Readers that hold the
//!    old list keep reading the old maps until they let go.
//!
//! A crash before the manifest store leaves the new files unlisted; a crash
//! after it leaves the old ones unlisted. Either way `open` removes what the
//! manifest does not list, so the log is the old one or the new one, whole.
//!
//! A *freeze* ([`Log::freeze`]) is a compaction with a second output: the
//! frames it leaves out of the hot segments are written, each group of
//! them in sequence order, into new *cold* segments (`cold-ID.seg`),
//! installed in the same manifest store. It changes where frames live,
//! never the sequence the log yields: readers merge the cold segments'
//! frames into the hot ones' by sequence number (`read.rs`). Cold segments
//! are rewritten like hot ones (`cold-ID-gN.seg`) and removed whole by
//! [`Log::remove_cold`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{corrupt, io_err};
use super::format::{self, FrameRead, SegmentHeader, HEADER_LEN};
use super::manifest::{cold_file_name, file_name_of, sync_dir, ColdEntry, SealedEntry, COLD};
use super::map::SegmentMap;
use super::{List, Log, LogConfig, LogError, Position, Segment};

/// Segments rewritten by [`Log::rewrite`], on disk but not yet part of the
/// log. Dropping it without [`Log::install`] removes the new files.
#[must_use = "a rewrite changes nothing until it is installed"]
pub struct Rewrite {
    segments: Vec<Rewritten>,
    /// New cold segments (a freeze's), each with the new position of each
    /// frame of its group, in the group's order.
    cold: Vec<(Arc<Segment>, ColdEntry, Vec<Position>)>,
    installed: bool,
}

pub(crate) struct Rewritten {
    pub(crate) old: Arc<Segment>,
    /// The new segment and its manifest entry; `None` when no frame survived.
    pub(crate) new: Option<(Arc<Segment>, SealedEntry)>,
    /// (old offset, new offset) of every surviving frame, in order.
    moved: Vec<(u64, u64)>,
    dropped: u64,
}

/// What a rewrite did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMoves {
    /// The segment's key (unchanged by a rewrite): a hot segment's first
    /// sequence number, or [`COLD`] with a cold one's id.
    pub segment: u64,
    /// False when no frame survived and the segment is gone.
    pub kept: bool,
    /// (old offset, new offset) of every surviving frame, in order.
    pub moved: Vec<(u64, u64)>,
}

/// What an installed compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Each rewritten segment and where its frames moved.
    pub segments: Vec<SegmentMoves>,
    /// Frames dropped (the garbage).
    pub frames_dropped: u64,
    /// Frames kept.
    pub frames_kept: u64,
    /// Bytes of the rewritten segments before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Bytes written to new segment files.
    pub bytes_written: u64,
    /// A freeze's new cold segments, in the order of its groups: the new
    /// position of each frame of the group, in the group's order.
    pub frozen: Vec<Vec<Position>>,
}

impl Rewrite {
    /// True when no segment needed rewriting nor was made.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.cold.is_empty()
    }

    /// Bytes the rewrite wrote.
    pub fn bytes_written(&self) -> u64 {
        let hot: u64 = self.segments.iter().filter_map(|r| r.new.as_ref()).map(|(_, e)| e.len).sum();
        hot + self.cold.iter().map(|(_, e, _)| e.sealed.len).sum::<u64>()
    }

    /// The files it wrote.
    fn new_files(&self) -> impl Iterator<Item = &Path> {
        let hot = self.segments.iter().filter_map(|r| r.new.as_ref()).map(|(seg, _)| seg.path.as_path());
        hot.chain(self.cold.iter().map(|(seg, _, _)| seg.path.as_path()))
    }
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if !self.installed {
            for path in self.new_files() {
                let _ = fs::remove_file(path);
            }
        }
    }
}

impl Log {
    /// Seals the active segment if it holds any frame, so that compaction
    /// can rewrite it.
    pub fn seal(&self) -> Result<(), LogError> {
        let tx = self.tx.as_ref().ok_or(LogError::ReadOnly)?;
        let (reply, rx) = crossbeam_channel::bounded(1);
        tx.send(super::writer::Request::Seal { reply }).map_err(|_| LogError::Closed)?;
        rx.recv().unwrap_or(Err(LogError::Closed))
    }

    /// Writes new versions of the segments named in `drop` (segment key →
    /// offsets of the frames to leave out, any order) without those
    /// frames. Every offset must be a frame of that segment. A cold
    /// segment whose every frame is named (as many distinct offsets as it
    /// has frames) goes whole, unread. Nothing changes for readers until
    /// [`Log::install`].
    pub fn rewrite(&self, drop: &BTreeMap<u64, Vec<u64>>) -> Result<Rewrite, LogError> {
        let drop: BTreeMap<u64, &Vec<u64>> = drop.iter().filter(|(_, o)| !o.is_empty()).map(|(s, o)| (*s, o)).collect();
        let (hot, cold) = self.sealed_lists(drop.keys().copied())?;
        let mut jobs = Vec::with_capacity(drop.len());
        let mut whole = Vec::new();
        for (&key, offsets) in &drop {
            let seg = find(if key & COLD != 0 { &cold } else { &hot }, key)?;
            if seg.is_cold() && offsets.len() as u64 == seg.frames && names_every_frame(seg, offsets) {
                whole.push(key);
            } else {
                jobs.push((seg, *offsets));
            }
        }
        // Segments are independent: rewrite them on every core.
        let mut out = self.remove_cold(&whole)?;
        let dir = &self.shared.dir;
        let results = crate::cores::map(&jobs, usize::MAX, |(seg, offsets)| rewrite_segment(dir, seg, offsets));
        gather(results, |r| out.segments.push(r))?;
        out.segments.sort_by_key(|r| r.old.key);
        if out.segments.iter().any(|r| r.new.is_some()) {
            sync_dir(&self.shared.dir)?;
        }
        Ok(out)
    }

    /// The hot and the cold segments, the active one sealed first if
    /// `keys` name it.
    fn sealed_lists(&self, mut keys: impl Iterator<Item = u64>) -> Result<(List, List), LogError> {
        let (hot, cold) = self.shared.snapshot_both();
        match hot.last() {
            Some(active) if keys.any(|k| k == active.key) => {
                self.seal()?;
                Ok(self.shared.snapshot_both())
            }
            _ => Ok((hot, cold)),
        }
    }

    /// Moves the frames at `groups`' positions out of the hot segments:
    /// each group becomes a new cold segment holding its frames in
    /// sequence order (each frame alone in its atomic batch: the log's
    /// batches matter only to the recovery of the active segment), and the
    /// hot segments are rewritten without them. Every position must be a
    /// frame of a hot segment, each given once. Nothing changes for
    /// readers until [`Log::install`], which reports each frame's new
    /// position (`Compaction::frozen`) and the hot frames' moves.
    pub fn freeze(&self, groups: &[Vec<Position>]) -> Result<Rewrite, LogError> {
        let groups: Vec<&Vec<Position>> = groups.iter().filter(|g| !g.is_empty()).collect();
        let mut drop: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for p in groups.iter().copied().flatten() {
            if p.segment & COLD != 0 {
                return Err(LogError::BadPosition {
                    segment: p.segment,
                    offset: p.offset,
                    reason: "a cold segment's frame cannot be frozen again",
                });
            }
            drop.entry(p.segment).or_default().push(p.offset);
        }
        for (&segment, offsets) in &mut drop {
            offsets.sort_unstable();
            if let Some(w) = offsets.windows(2).find(|w| w[0] == w[1]) {
                return Err(LogError::BadPosition { segment, offset: w[0], reason: "a frame given twice" });
            }
        }
        let (hot, _) = self.sealed_lists(drop.keys().copied())?;
        let first = self.shared.cold_ids.fetch_add(groups.len() as u64, Ordering::Relaxed);
        if first.saturating_add(groups.len() as u64) >= COLD {
            return Err(LogError::Config("no cold segment id is left (2^63 were handed out)"));
        }
        let dir = &self.shared.dir;
        let mut out = Rewrite { segments: Vec::new(), cold: Vec::new(), installed: false };
        write_cold(dir, &hot, first, &groups, &mut out.cold)?;
        let mut hot_rewrite = self.rewrite(&drop)?;
        out.segments = std::mem::take(&mut hot_rewrite.segments);
        hot_rewrite.installed = true;
        sync_dir(dir)?;
        Ok(out)
    }

    /// Takes whole cold segments (by key) out of the log, their frames
    /// with them, once installed ([`Log::install`]).
    pub fn remove_cold(&self, keys: &[u64]) -> Result<Rewrite, LogError> {
        let (_, cold) = self.shared.snapshot_both();
        let mut out = Rewrite { segments: Vec::new(), cold: Vec::new(), installed: false };
        for &key in keys {
            let old = Arc::clone(find(&cold, key)?);
            let dropped = old.frames;
            out.segments.push(Rewritten { old, new: None, moved: Vec::new(), dropped });
        }
        Ok(out)
    }

    /// Makes a rewrite part of the log: one manifest store, then the old
    /// files are removed. Refused if another rewrite replaced one of the
    /// same segments meanwhile.
    pub fn install(&self, rewrite: Rewrite) -> Result<Compaction, LogError> {
        let (report, old) = self.install_keeping_files(rewrite)?;
        old.remove();
        Ok(report)
    }

    /// [`Log::install`], leaving the old files for the caller to remove
    /// ([`OldFiles::remove`]) when it holds no lock: an unlink gives the
    /// file's blocks back to the disk, tens of milliseconds for a large
    /// file on some (with online discard). Until then they take space;
    /// after a crash the next open removes them (the manifest lists none).
    pub fn install_keeping_files(&self, mut rewrite: Rewrite) -> Result<(Compaction, OldFiles), LogError> {
        let mut report = Compaction::default();
        let mut old = OldFiles { dir: self.shared.dir.clone(), paths: Vec::new() };
        if rewrite.is_empty() {
            rewrite.installed = true;
            return Ok((report, old));
        }
        crate::crashpoint::reached("install");
        let tx = self.tx.as_ref().ok_or(LogError::ReadOnly)?;
        let (reply, rx) = crossbeam_channel::bounded(1);
        let changes = rewrite.segments.iter().map(|r| (Arc::clone(&r.old), r.new.clone())).collect();
        let added = rewrite.cold.iter().map(|(seg, entry, _)| (Arc::clone(seg), *entry)).collect();
        tx.send(super::writer::Request::Install { changes, added, reply }).map_err(|_| LogError::Closed)?;
        let installed = rx.recv().unwrap_or(Err(LogError::Closed));
        // After a conflict nothing was stored: the new files go. After any
        // other failure the manifest may name either set of files: keep
        // both, and let the next open remove the one it does not list.
        rewrite.installed = !matches!(installed, Err(LogError::Conflict(_)));
        installed?;
        for r in std::mem::take(&mut rewrite.segments) {
            // Unlinked while mapped: readers holding the old map keep it.
            old.paths.push(r.old.path.clone());
            report.frames_kept += r.moved.len() as u64;
            report.frames_dropped += r.dropped;
            // (A writer's segments are all mapped: never opened here, after
            // the install.)
            report.bytes_before += r.old.mapped().map_or(r.old.published(), |m| m.len() as u64);
            if let Some((_, entry)) = &r.new {
                report.bytes_after += entry.len;
                report.bytes_written += entry.len;
            }
            report.segments.push(SegmentMoves { segment: r.old.key, kept: r.new.is_some(), moved: r.moved });
        }
        for (_, entry, positions) in std::mem::take(&mut rewrite.cold) {
            report.bytes_after += entry.sealed.len;
            report.bytes_written += entry.sealed.len;
            report.frozen.push(positions);
        }
        Ok((report, old))
    }
}

/// Segment files an installed rewrite replaced, still on disk
/// ([`Log::install_keeping_files`]).
#[must_use = "the files stay on disk until removed"]
#[derive(Debug, Clone)]
pub struct OldFiles {
    dir: std::path::PathBuf,
    paths: Vec<std::path::PathBuf>,
}

impl OldFiles {
    /// Removes them, and makes that durable. The install is done whatever
    /// this says (the manifest's store synced the directory): a file whose
    /// unlink a crash undoes is not listed, and the next open removes it.
    pub fn remove(self) {
        if self.paths.is_empty() {
            return;
        }
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
        let _ = sync_dir(&self.dir);
    }
}

/// Whether `offsets`, as many as `seg` has frames, are all distinct and
/// within it (then they name every frame, if they name frames at all: a
/// bit a byte, no sort).
fn names_every_frame(seg: &Segment, offsets: &[u64]) -> bool {
    seg.map().is_ok_and(|map| DropSet::new(map.len(), offsets).is_ok_and(|set| set.left as u64 == seg.frames))
}

/// Passes every result's value to `put` (into a [`Rewrite`], so that a
/// failure of one removes the files the others wrote when it drops), then
/// returns the first error, if any.
fn gather<T>(results: Vec<Result<T, LogError>>, mut put: impl FnMut(T)) -> Result<(), LogError> {
    let mut failed = None;
    for r in results {
        match r {
            Ok(v) => put(v),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The segment of `list` (sorted by key) named `key`.
fn find(list: &[Arc<Segment>], key: u64) -> Result<&Arc<Segment>, LogError> {
    let i = list.binary_search_by_key(&key, |s| s.key).map_err(|_| LogError::BadPosition {
        segment: key,
        offset: 0,
        reason: "no such segment",
    })?;
    Ok(&list[i])
}

/// Cold segments a freeze fills at once at most, on all its threads
/// ([`write_cold`]): as many files open, and write buffers.
const OPEN_COLD: usize = 64;
/// Threads a freeze fills them on at most.
const COLD_THREADS: usize = 8;

/// A cold segment written, with its frames' new positions.
type Written = (Arc<Segment>, ColdEntry, Vec<Position>);

/// Writes cold segments `first..` with the frames at `groups` (hot
/// positions, any order), one each, its frames in sequence order; pushes
/// each onto `out` with its frames' new positions in its group's order,
/// in the groups' order. On failure `out` holds the segments written
/// (its owner removes them) and nothing else is left behind.
///
/// Each core (up to [`COLD_THREADS`]) makes one pass over the hot
/// segments in position order (which is sequence order), filling its
/// share of the groups together:
/// they start in the order of their first frame, and the next frame
/// copied is always the lowest position any of them waits for
/// ([`Pass::fill`]). The shares alternate in that order, so the passes
/// move through the log side by side and each page of it is read from
/// the disk once, however many groups share it. A checkpoint's groups are
/// each a class of jobs (a System Job Type and Status Reason) in a span of
/// completion time, so a stretch of the log holds frames of many groups:
/// written one group after another, each class read the whole log again,
/// and a log larger than the page cache was read from the disk a page at
/// a time as often (docs/benchmarks.md, "A freeze that reads the log
/// once").
fn write_cold(
    dir: &Path,
    hot: &[Arc<Segment>],
    first: u64,
    groups: &[&Vec<Position>],
    out: &mut Vec<Written>,
) -> Result<(), LogError> {
    let mut starts: Vec<(Position, usize)> =
        groups.iter().enumerate().map(|(g, group)| (*group.iter().min().expect("a group is never empty"), g)).collect();
    starts.sort_unstable();
    let parts = crate::cores::count().min(COLD_THREADS).min(starts.len()).max(1);
    let shares: Vec<Vec<(Position, usize)>> =
        (0..parts).map(|k| starts.iter().skip(k).step_by(parts).copied().collect()).collect();
    let pass = Pass { dir, hot, first, groups, open: OPEN_COLD / parts, failed: AtomicBool::new(false) };
    let filled = crate::cores::map(&shares, usize::MAX, |share| pass.fill(share));
    let mut done: Vec<Option<Written>> = groups.iter().map(|_| None).collect();
    let mut failed = None;
    for (written, result) in filled {
        for (g, w) in written {
            done[g] = Some(w);
        }
        failed = failed.or(result.err());
    }
    if let Some(e) = failed {
        out.extend(done.into_iter().flatten());
        return Err(e);
    }
    out.extend(done.into_iter().map(|d| d.expect("every group was written")));
    Ok(())
}

/// What every pass of [`write_cold`] shares.
struct Pass<'a> {
    dir: &'a Path,
    hot: &'a [Arc<Segment>],
    first: u64,
    groups: &'a [&'a Vec<Position>],
    /// Groups a pass fills at once at most.
    open: usize,
    /// Set by a pass that failed: the others stop.
    failed: AtomicBool,
}

impl Pass<'_> {
    /// One pass over the hot log, filling the groups of `starts` (each
    /// group's first position and index, in position order), at most
    /// `self.open` at once: a group started later than its first frame's
    /// turn reads behind the pass, still in its own order. Returns the
    /// segments written (by group index) and whether all were; one that
    /// another pass's failure stops ends early, and well. The groups
    /// being filled when it ends are removed. Only the hot segments the
    /// pass has not gone by are read through
    /// ([`SegmentMap::read_through_shared`]).
    fn fill(&self, starts: &[(Position, usize)]) -> (Vec<(usize, Written)>, Result<(), LogError>) {
        let groups = self.groups;
        let mut pending = starts.iter().copied().peekable();
        let mut filling: Vec<Option<Filling>> = Vec::new();
        let mut next: BinaryHeap<Reverse<(Position, usize)>> = BinaryHeap::new();
        let mut done = Vec::new();
        let mut through = BTreeMap::new();
        let mut open = 0;
        let filled = (|| -> Result<(), LogError> {
            loop {
                while let Some(&(p, g)) = pending.peek() {
                    if open == self.open || next.peek().is_some_and(|Reverse((q, _))| *q < p) {
                        break;
                    }
                    pending.next();
                    let slot = filling.iter().position(Option::is_none).unwrap_or_else(|| {
                        filling.push(None);
                        filling.len() - 1
                    });
                    let mut order: Vec<u32> = (0..groups[g].len() as u32).collect();
                    order.sort_unstable_by_key(|&i| groups[g][i as usize]);
                    let path = self.dir.join(cold_file_name(self.first + g as u64, 0));
                    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
                    let new = vec![Position { segment: COLD, offset: 0 }; groups[g].len()];
                    filling[slot] = Some(Filling { g, order, next: 0, out: None, new, path, tmp });
                    next.push(Reverse((p, slot)));
                    open += 1;
                }
                let Some(Reverse((p, slot))) = next.pop() else { return Ok(()) };
                if self.failed.load(Ordering::Relaxed) {
                    // Another pass failed: its error is the freeze's.
                    return Ok(());
                }
                let f = filling[slot].as_mut().expect("a slot in the heap is filling");
                let s = find(self.hot, p.segment)?;
                let map = s.map()?;
                if !through.contains_key(&s.key) {
                    // Nothing below the lowest position waited for is read
                    // again (but by a group started late).
                    through = through.split_off(&s.key);
                    through.insert(s.key, map.read_through_shared());
                }
                f.copy(map.bytes(), p)?;
                match f.order.get(f.next) {
                    Some(&i) => next.push(Reverse((groups[f.g][i as usize], slot))),
                    None => {
                        let f = filling[slot].take().expect("filling");
                        let g = f.g;
                        done.push((g, f.finish(self.first + g as u64)?));
                        open -= 1;
                    }
                }
            }
        })();
        if filled.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        for f in filling.into_iter().flatten() {
            let _ = fs::remove_file(&f.tmp);
        }
        (done, filled)
    }
}

/// A cold segment [`write_cold`] is filling: its group's frames, in
/// position order (`order`, indices into the group), the next to copy,
/// and where those copied went.
struct Filling {
    g: usize,
    order: Vec<u32>,
    next: usize,
    out: Option<(SegmentWriter, u64, u64)>,
    new: Vec<Position>,
    /// Its file's name, and the name it is written under until synced.
    path: PathBuf,
    tmp: PathBuf,
}

impl Filling {
    /// Copies the next frame, at `p` in `bytes` (its hot segment's).
    fn copy(&mut self, bytes: &[u8], p: Position) -> Result<(), LogError> {
        let bad = |reason| LogError::BadPosition { segment: p.segment, offset: p.offset, reason };
        let offset = usize::try_from(p.offset).ok().filter(|o| *o >= HEADER_LEN).ok_or(bad("no frame starts there"))?;
        let frame = match format::read_frame(bytes, offset) {
            FrameRead::Frame(f) => f,
            _ => return Err(bad("no frame starts there")),
        };
        let (w, _, last_seq) = match &mut self.out {
            Some(out) => out,
            None => self.out.insert((SegmentWriter::create(&self.tmp, frame.seq, COLD_WRITE_BUF)?, frame.seq, 0)),
        };
        if w.len + format::frame_len(frame.payload_len) as u64 > LogConfig::MAX_SEGMENT_BYTES {
            return Err(LogError::Config("a freeze's group of frames does not fit one segment (4 GiB)"));
        }
        let i = self.order[self.next] as usize;
        self.new[i].offset =
            w.frame(frame.seq, 0, &bytes[frame.payload_offset..frame.end()]).map_err(|e| io_err(&self.tmp, e))?;
        *last_seq = frame.seq;
        self.next += 1;
        Ok(())
    }

    /// Syncs the segment filled and puts it in place as cold segment `id`.
    fn finish(self, id: u64) -> Result<Written, LogError> {
        let (tmp, path) = (self.tmp, self.path);
        let (w, first_seq, last_seq) = self.out.expect("a group is never empty");
        let frames = self.new.len() as u64;
        let mut new = self.new;
        let placed = (|| {
            let (len, crc) = w.finish().map_err(|e| io_err(&tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
            let file = File::open(&path).map_err(|e| io_err(&path, e))?;
            let map = SegmentMap::read_only(&file, len as usize).map_err(|e| io_err(&path, e))?;
            let sealed = SealedEntry { first_seq, last_seq, len, frames, crc, generation: 0 };
            let mut seg = Segment::keyed(COLD | id, first_seq, 0, path.clone(), Arc::new(map));
            (seg.last_seq, seg.frames, seg.checked_crc) = (last_seq, frames, Some(crc));
            Ok((Arc::new(seg), ColdEntry { id, sealed }))
        })();
        match placed {
            Ok((seg, entry)) => {
                new.iter_mut().for_each(|p| p.segment = COLD | id);
                Ok((seg, entry, new))
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

/// Copies the frames of `old` that are not at `drop` (sorted) into the
/// segment's next generation. On failure nothing is left behind.
fn rewrite_segment(dir: &Path, old: &Arc<Segment>, drop: &[u64]) -> Result<Rewritten, LogError> {
    let path = dir.join(file_name_of(old.key, old.generation + 1));
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    copy_survivors(old, drop, &path, &tmp).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&path);
    })
}

/// The frame offsets to leave out of one segment: a bit per byte of it, so
/// that millions of offsets in any order need no sort.
struct DropSet {
    bits: Vec<u64>,
    /// Offsets set and not yet taken.
    left: usize,
}

impl DropSet {
    /// `Err(offset)` for an offset past the segment's end.
    fn new(len: usize, offsets: &[u64]) -> Result<Self, u64> {
        let mut set = Self { bits: vec![0; len.div_ceil(64)], left: 0 };
        for &o in offsets {
            let word = set.bits.get_mut(usize::try_from(o / 64).unwrap_or(usize::MAX)).filter(|_| o < len as u64);
            let Some(word) = word else { return Err(o) };
            let bit = 1u64 << (o % 64);
            if *word & bit == 0 {
                *word |= bit;
                set.left += 1;
            }
        }
        Ok(set)
    }

    /// Whether `offset` is to be dropped (each is taken once).
    fn take(&mut self, offset: usize) -> bool {
        let (word, bit) = (&mut self.bits[offset / 64], 1u64 << (offset % 64));
        let hit = *word & bit != 0;
        if hit {
            *word &= !bit;
            self.left -= 1;
        }
        hit
    }

    /// An offset never taken (no frame started there), if any.
    fn untaken(&self) -> Option<u64> {
        let (i, w) = self.bits.iter().enumerate().find(|(_, w)| **w != 0)?;
        Some(i as u64 * 64 + u64::from(w.trailing_zeros()))
    }
}

fn copy_survivors(old: &Arc<Segment>, drop: &[u64], path: &Path, tmp: &Path) -> Result<Rewritten, LogError> {
    let map = old.map()?;
    let _through = map.read_through();
    let bytes = map.bytes();
    let generation = old.generation + 1;
    let mut out: Option<SegmentWriter> = None;
    let mut moved = Vec::new();
    let bad = |offset| LogError::BadPosition { segment: old.key, offset, reason: "no frame starts there" };
    let mut to_drop = DropSet::new(bytes.len(), drop).map_err(bad)?;
    // The frames of the batch being read: (offset, frame), and whether it
    // survives.
    let mut batch: Vec<(usize, format::Frame)> = Vec::new();
    let mut offset = HEADER_LEN;
    let mut frames = 0u64;
    let mut last_seq = 0u64;
    let mut dropped = 0u64;
    // Where the batch being read starts, and how many frames it has.
    let (mut batch_start, mut batch_frames) = (offset, 0usize);
    while offset < bytes.len() {
        let frame = match format::read_frame(bytes, offset) {
            FrameRead::Frame(f) => f,
            FrameRead::End => return Err(corrupt(&old.path, offset, "published bytes hold no frame")),
            FrameRead::Invalid(why) => return Err(corrupt(&old.path, offset, why)),
        };
        if to_drop.take(offset) {
            dropped += 1;
        } else {
            batch.push((offset, frame));
        }
        offset = frame.end();
        batch_frames += 1;
        if frame.batch_left > 0 {
            continue;
        }
        // The batch is whole: write its survivors as one batch. Untouched,
        // its bytes are copied as they are; otherwise each survivor gets a
        // new header (its count of frames left in the batch changed).
        let n = batch.len();
        let untouched = batch.first().is_some_and(|(at, _)| *at == batch_start) && n == batch_frames;
        for (i, (at, f)) in batch.drain(..).enumerate() {
            let w = match &mut out {
                Some(w) => w,
                None => out.insert(SegmentWriter::create(tmp, old.first_seq, WRITE_BUF)?),
            };
            let new_at = if untouched {
                w.put(&bytes[at..f.end()])
            } else {
                w.frame(f.seq, (n - 1 - i) as u32, &bytes[f.payload_offset..f.end()])
            }
            .map_err(|e| io_err(tmp, e))?;
            moved.push((at as u64, new_at));
            frames += 1;
            last_seq = f.seq;
        }
        batch_start = offset;
        batch_frames = 0;
    }
    if !batch.is_empty() {
        return Err(corrupt(&old.path, offset, "sealed segment ends inside an atomic batch"));
    }
    if let Some(missing) = to_drop.untaken() {
        return Err(bad(missing));
    }
    let new = match out {
        None => None,
        Some(w) => {
            let (len, crc) = w.finish().map_err(|e| io_err(tmp, e))?;
            fs::rename(tmp, path).map_err(|e| io_err(path, e))?;
            let file = File::open(path).map_err(|e| io_err(path, e))?;
            let map = SegmentMap::read_only(&file, len as usize).map_err(|e| io_err(path, e))?;
            let mut seg = Segment::keyed(old.key, old.first_seq, generation, path.to_path_buf(), Arc::new(map));
            seg.checked_crc = Some(crc);
            if old.is_cold() {
                (seg.last_seq, seg.frames) = (last_seq, frames);
            }
            let entry = SealedEntry { first_seq: old.first_seq, last_seq, len, frames, crc, generation };
            Some((Arc::new(seg), entry))
        }
    };
    Ok(Rewritten { old: Arc::clone(old), new, moved, dropped })
}

/// Writes a sealed segment file front to back, checksumming its content.
/// Frames gather in a buffer that is checksummed and written a few MiB at a
/// time: per-frame calls into the file and the hasher would cost more than
/// the copying.
struct SegmentWriter {
    file: File,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    /// Buffered bytes written at once.
    write_buf: usize,
}

/// A rewritten segment's write buffer.
const WRITE_BUF: usize = 4 << 20;
/// A cold segment's, of the many [`write_cold`] fills at once.
const COLD_WRITE_BUF: usize = 1 << 20;

impl SegmentWriter {
    /// Writes are made `write_buf` bytes at a time.
    fn create(path: &Path, first_seq: u64, write_buf: usize) -> Result<Self, LogError> {
        let file = super::private::create_file(path, true).map_err(|e| io_err(path, e))?;
        let mut buf = Vec::with_capacity(write_buf + (1 << 16));
        buf.extend_from_slice(&SegmentHeader::new(first_seq).encode());
        Ok(Self { file, len: buf.len() as u64, buf, crc: crc32fast::Hasher::new(), write_buf })
    }

    /// Appends bytes; returns their offset.
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        let at = self.len;
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.buf.len() >= self.write_buf {
            self.flush()?;
        }
        Ok(at)
    }

    /// Appends a frame; returns its offset.
    fn frame(&mut self, seq: u64, batch_left: u32, payload: &[u8]) -> std::io::Result<u64> {
        let at = self.len;
        self.buf.extend_from_slice(&format::encode_frame_header(seq, batch_left, payload));
        self.put(payload)?;
        self.len = at + format::frame_len(payload.len()) as u64;
        Ok(at)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.crc.update(&self.buf);
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Syncs the file; returns its length and content checksum.
    fn finish(mut self) -> std::io::Result<(u64, u32)> {
        self.flush()?;
        self.file.sync_all()?;
        Ok((self.len, self.crc.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::DropSet;

    #[test]
    fn a_drop_set_takes_each_offset_once_and_names_one_never_taken() {
        let mut set = DropSet::new(1000, &[640, 5, 999, 5, 63, 64]).unwrap();
        assert_eq!(set.left, 5, "a repeated offset counts once");
        assert!(set.take(5) && !set.take(5), "taken once");
        assert!(!set.take(6));
        for o in [63, 64, 640] {
            assert!(set.take(o));
        }
        assert_eq!((set.left, set.untaken()), (1, Some(999)));
        assert!(set.take(999));
        assert_eq!((set.left, set.untaken()), (0, None));
        assert_eq!(DropSet::new(1000, &[3, 1000]).err(), Some(1000), "past the end");
        assert_eq!(DropSet::new(1000, &[u64::MAX]).err(), Some(u64::MAX));
    }
}
