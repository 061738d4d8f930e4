//! The writer: it places batches in the active segment's file, seals a
//! full segment and rolls to a new one. A batch is placed from the
//! appender's own thread ([`Writer::place_now`], `Log::place` with
//! `Sync::EveryBatch`) or by the writer thread, which takes requests from a
//! channel and groups the ones that arrive together. Step by step:
//!
//! 1. (writer thread) receive a request, then every request already
//!    waiting (up to `MAX_GROUP_BYTES` / `MAX_GROUP_REQUESTS`);
//! 2. for each batch: roll if it does not fit in the active segment, then
//!    write its frames to the file above the published watermark of its
//!    (read-only) map;
//! 3. publish the watermark (the frames can be read by position) and tell
//!    the syncs how far they go (`durable.rs`);
//! 4. with `Sync::EveryBatch`, reply: each appender then waits for a sync
//!    (`durable.rs`: whoever gets the lead syncs everything placed); in the
//!    other modes, show the frames to readers, sync when the interval is
//!    up, and reply.
//!
//! Rolling: sync the active segment (holding the lead), record its length
//! and content checksum in the manifest (write, fsync, rename, fsync dir),
//! then install the next segment. That file is prepared ahead, on another
//! thread, once the active segment is half full (`next-segment.tmp`:
//! fallocate its first step, fsync, map); installing it
//! writes and syncs the header, renames it to its name and syncs the
//! directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::closed::{self, Closed};
use super::error::io_err;
use super::format::{self, SegmentHeader, HEADER_LEN};
use super::manifest::{segment_file_name, ColdEntry, Manifest, SealedEntry};
use super::map::{first_step, preallocate, MapWriter, ReserveError, SegmentMap, PAGE};
use super::private::{install_file, InstallError};
use super::{Appended, Batch, LogConfig, LogError, Position, Segment, Shared, Sync};

/// Requests waiting for the writer before appenders block.
pub(crate) const CHANNEL_CAPACITY: usize = 8192;
/// A group stops growing at this many bytes of payload...
const MAX_GROUP_BYTES: usize = 8 << 20;
/// ...or this many requests.
const MAX_GROUP_REQUESTS: usize = 4096;

pub(crate) enum Request {
    Append {
        batch: Batch,
        reply: Sender<Result<Appended, LogError>>,
    },
    /// Seal the active segment if it holds frames.
    Seal {
        reply: Sender<Result<(), LogError>>,
    },
    /// Replace sealed segments (hot or cold) by their rewritten versions
    /// (`None`: remove), and add new cold segments.
    Install {
        changes: Vec<Replacement>,
        added: Vec<(Arc<Segment>, ColdEntry)>,
        reply: Sender<Result<(), LogError>>,
    },
}

/// A sealed segment and what replaces it (`None`: nothing, it goes).
pub(crate) type Replacement = (Arc<Segment>, Option<(Arc<Segment>, SealedEntry)>);

/// An append taken into the current group.
struct Append {
    batch: Batch,
    reply: Sender<Result<Appended, LogError>>,
}

/// The segment being appended to.
pub(crate) struct Active {
    pub(crate) seg: Arc<Segment>,
    /// Its map (an active segment is mapped when it is opened).
    pub(crate) map: Arc<SegmentMap>,
    pub(crate) writer: MapWriter,
    /// End of the frames written so far (how far they are on disk: the
    /// log's `Durability`).
    pub(crate) write_off: usize,
    pub(crate) frames: u64,
    pub(crate) next_seq: u64,
    /// Whether the segment's frames carry durable marks (format 2); a
    /// format-1 segment found active is appended to in format 1.
    pub(crate) marks: bool,
    /// End of the zeros written ahead of the frames ([`ZERO_AHEAD`]).
    pub(crate) zeroed: usize,
}

/// Bytes of zeros written ahead of small batches and synced with the next
/// batch. A block the filesystem allocated but never wrote (fallocate) is
/// marked written when data first reaches the disk there, a change of the
/// file's metadata that the sync then writes too:
/// on this machine's ext4 a sync of a few frames that reached a new 4 KiB
/// block took 1.7–1.8× one that did not (`bench/scripts/sync-new-block.py`,
/// docs/benchmarks.md). Zeros written ahead have that done once per 256
/// KiB, in a sync that writes them with a batch's frames. Batches of this
/// size or more gain nothing from it and get none, nor do appends of the
/// modes that do not sync each batch.
pub(crate) const ZERO_AHEAD: usize = 256 << 10;

pub(crate) struct Writer {
    shared: Arc<Shared>,
    config: LogConfig,
    manifest: Manifest,
    active: Option<Active>,
    /// Where the next segment starts when there is no active one.
    next_seq: u64,
    /// When the oldest unsynced write happened (`Sync::Interval`).
    unsynced_since: Option<Instant>,
    /// The next segment file, being prepared on another thread.
    preparing: Option<Receiver<Result<Prepared, LogError>>>,
    /// A batch's frames, laid out as the file holds them, written with one
    /// call (or one per [`WRITE_CHUNK`]); kept between batches.
    frames: Vec<u8>,
}

/// At most this many bytes of a batch's frames are laid out before they
/// are written: a large batch is written in pieces of about this size, so
/// the buffer stays small.
const WRITE_CHUNK: usize = 1 << 20;

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, config: LogConfig, manifest: Manifest, active: Option<Active>) -> Self {
        let next_seq = active.as_ref().map_or(manifest.next_seq.max(1), |a| a.next_seq);
        if let Some(a) = &active {
            shared.durability.set_active(a.writer.file(), a.seg.path.clone(), a.write_off, a.next_seq);
        }
        Self { shared, config, manifest, active, next_seq, unsynced_since: None, preparing: None, frames: Vec::new() }
    }

    /// Creates an active segment starting at (at least) `first_seq` if there
    /// is none.
    pub(crate) fn ensure_active(&mut self, first_seq: u64) -> Result<(), LogError> {
        if self.active.is_none() {
            self.next_seq = self.next_seq.max(first_seq);
            self.active = Some(self.create_segment(self.next_seq)?);
        }
        Ok(())
    }

    /// The writer thread: takes the requests from the channel, a group at
    /// a time, and handles each group holding the writer (which
    /// [`Writer::place_now`] takes too).
    pub(crate) fn run(writer: Arc<Mutex<Writer>>, rx: Receiver<Request>) -> Result<(), LogError> {
        let lock = || writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut group: Vec<Append> = Vec::new();
        let mut results: Vec<Result<Appended, LogError>> = Vec::new();
        loop {
            let deadline = lock().sync_deadline();
            let first = match deadline {
                Some(deadline) => match rx.recv_deadline(deadline) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = lock().sync();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            // Appends already waiting join the group; any other request
            // waits until the group is written, so it sees every append
            // that came before it.
            let mut other = None;
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Append { batch, reply } => {
                        bytes += batch.frame_bytes();
                        group.push(Append { batch, reply });
                    }
                    r => {
                        other = Some(r);
                        break;
                    }
                }
                if bytes < MAX_GROUP_BYTES && group.len() < MAX_GROUP_REQUESTS {
                    next = rx.try_recv().ok();
                }
            }
            let mut w = lock();
            if !group.is_empty() {
                w.write_group(&mut group, &mut results);
            }
            match other {
                Some(Request::Seal { reply }) => drop(reply.send(w.seal())),
                Some(Request::Install { changes, added, reply }) => drop(reply.send(w.install(changes, added))),
                _ => {}
            }
            w.prepare_ahead();
        }
        let mut w = lock();
        w.discard_prepared();
        // Closing: whatever was acknowledged without a sync becomes durable,
        // and then the next open need not scan for where it ends.
        w.place();
        w.sync()?;
        w.leave_closed_mark();
        Ok(())
    }

    /// Leaves the mark of a clean close (`log/closed.rs`): where the active
    /// segment's frames end, all of them durable (the caller synced).
    /// Best effort: without it the next open scans, as after a crash.
    fn leave_closed_mark(&self) {
        let Some(a) = &self.active else { return };
        let mark = Closed::of(a.seg.first_seq, a.map.bytes(), a.write_off, a.frames, a.next_seq);
        let dir = &self.shared.dir;
        let path = dir.join(closed::FILE);
        let tmp = dir.join(format!("{}.tmp", closed::FILE));
        let write = || -> std::io::Result<()> {
            let mut f = super::private::create_file(&tmp, true)?;
            std::io::Write::write_all(&mut f, &mark.encode())?;
            f.sync_all()
        };
        if let Err(e) = install_file(dir, &tmp, &path, write, || {}) {
            let e = match e {
                InstallError::Write(e) | InstallError::Rename(e) | InstallError::SyncDir(e) => e,
            };
            tracing::warn!("no mark of a clean close left in {} ({e}): the next open scans", dir.display());
        }
    }

    /// Places one batch from the appender's own thread (`Sync::EveryBatch`:
    /// the appender then waits for a sync itself), without the hop to the
    /// writer thread and back.
    pub(crate) fn place_now(&mut self, batch: &Batch) -> Result<Appended, LogError> {
        let written = self.write(batch);
        self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.place();
        self.prepare_ahead();
        written
    }

    /// Writes a group of appends and replies to each once it is placed.
    /// With `Sync::EveryBatch` the appenders then wait for a sync
    /// themselves (`durable.rs`: whoever gets the lead syncs for all); in
    /// the other modes the frames are visible at once, and the writer syncs
    /// when the interval is up.
    fn write_group(&mut self, group: &mut Vec<Append>, results: &mut Vec<Result<Appended, LogError>>) {
        results.extend(group.iter().map(|r| self.write(&r.batch)));
        self.shared.counters.groups.fetch_add(1, Ordering::Relaxed);
        self.place();
        let durable = match self.config.sync {
            Sync::Interval(ms) if self.unsynced_since.is_some_and(|t| t.elapsed() >= Duration::from_millis(ms)) => {
                self.sync()
            }
            Sync::EveryBatch | Sync::Interval(_) | Sync::Never => Ok(()),
        };
        if let Err(e) = durable {
            let msg = e.to_string();
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(LogError::Poisoned(msg.clone()));
            }
        } else if self.config.sync != Sync::EveryBatch {
            self.shared.show(self.next_seq);
        }
        for (req, result) in group.drain(..).zip(results.drain(..)) {
            let _ = req.reply.send(result);
        }
    }

    /// Seals the active segment if it holds frames.
    fn seal(&mut self) -> Result<(), LogError> {
        if let Some(why) = self.shared.durability.poisoned() {
            return Err(LogError::Poisoned(why));
        }
        match &self.active {
            Some(a) if a.frames > 0 => self.roll(),
            _ => Ok(()),
        }
    }

    /// Installs rewritten segments and new cold ones: one manifest store,
    /// then the new lists.
    fn install(&mut self, changes: Vec<Replacement>, added: Vec<(Arc<Segment>, ColdEntry)>) -> Result<(), LogError> {
        if let Some(why) = self.shared.durability.poisoned() {
            return Err(LogError::Poisoned(why));
        }
        let mut manifest = self.manifest.clone();
        for (old, new) in &changes {
            let (at, generation) = if old.is_cold() {
                let i = manifest.cold.iter().position(|e| e.key() == old.key);
                (i, i.map(|i| manifest.cold[i].sealed.generation))
            } else {
                let i = manifest.sealed.iter().position(|e| e.first_seq == old.first_seq);
                (i, i.map(|i| manifest.sealed[i].generation))
            };
            let Some(i) = at else {
                return Err(LogError::Conflict(format!("segment {} is not sealed", old.path.display())));
            };
            if generation != Some(old.generation) {
                return Err(LogError::Conflict(format!(
                    "segment {} was rewritten by another compaction meanwhile",
                    old.path.display()
                )));
            }
            match (old.is_cold(), new) {
                (false, Some((_, entry))) => manifest.sealed[i] = *entry,
                (false, None) => drop(manifest.sealed.remove(i)),
                (true, Some((_, entry))) => manifest.cold[i].sealed = *entry,
                (true, None) => drop(manifest.cold.remove(i)),
            }
        }
        for (_, entry) in &added {
            manifest.next_cold = manifest.next_cold.max(entry.id + 1);
            let i = manifest.cold.partition_point(|e| e.id < entry.id);
            manifest.cold.insert(i, *entry);
        }
        manifest.epoch += 1;
        if let Err((e, _)) = manifest.store(&self.shared.dir) {
            // Which manifest is on disk is unknown until the log is reopened.
            self.shared.durability.poison(e.to_string());
            return Err(e);
        }
        self.manifest = manifest;
        let mut guard = self.shared.segments.write().unwrap_or_else(|e| e.into_inner());
        let mut cold_guard = self.shared.cold.write().unwrap_or_else(|e| e.into_inner());
        let mut list = Vec::clone(&guard);
        let mut cold = Vec::clone(&cold_guard);
        for (old, new) in changes {
            let list = if old.is_cold() { &mut cold } else { &mut list };
            let i = list.iter().position(|s| Arc::ptr_eq(s, &old)).expect("a sealed segment is in the list");
            match new {
                Some((seg, _)) => list[i] = seg,
                None => drop(list.remove(i)),
            }
        }
        for (seg, _) in added {
            let i = cold.partition_point(|s| s.key < seg.key);
            cold.insert(i, seg);
        }
        // The cold list first: a reader takes `segments`, then `cold`.
        *cold_guard = Arc::new(cold);
        *guard = Arc::new(list);
        Ok(())
    }

    fn sync_deadline(&self) -> Option<Instant> {
        if self.shared.durability.poisoned().is_some() {
            // Nothing will be synced again: no timer.
            return None;
        }
        match self.config.sync {
            Sync::Interval(ms) => self.unsynced_since.map(|t| t + Duration::from_millis(ms)),
            _ => None,
        }
    }

    /// Writes one batch's frames (not yet published or synced).
    fn write(&mut self, batch: &Batch) -> Result<Appended, LogError> {
        if let Some(why) = self.shared.durability.poisoned() {
            return Err(LogError::Poisoned(why));
        }
        let bytes = batch.frame_bytes();
        let capacity = self.config.segment_size_bytes as usize - HEADER_LEN;
        if bytes > capacity {
            return Err(LogError::BatchTooLarge { bytes, capacity });
        }
        let next = self.next_seq;
        self.ensure_active(next)?;
        let fits = |a: &Active| a.write_off + bytes <= a.map.len();
        if !fits(self.active.as_ref().expect("ensured above")) {
            self.roll()?;
        }
        let active = self.active.as_mut().expect("ensured above");
        assert!(fits(active), "a fresh segment holds any batch that passed the size check");
        // Disk space first: a full disk fails this append, cleanly (nothing
        // was written, the writer is not poisoned), and a later one retries.
        match active.writer.reserve(active.write_off + bytes) {
            Ok(()) => {}
            Err(ReserveError::Refused(e)) => return Err(io_err(&active.seg.path, e)),
            Err(ReserveError::Sync(e)) => {
                // As a failed sync: nothing more is acknowledged.
                let err = io_err(&active.seg.path, e);
                self.shared.durability.poison(err.to_string());
                return Err(err);
            }
        }
        let first = active.next_seq;
        let n = batch.len() as u64;
        // Every frame of the group records how far the segment is durable
        // now: recovery trusts nothing below it to be torn.
        let synced = self.shared.durability.synced_off();
        let mark = if active.marks { u32::try_from(synced).expect("segments fit in 32 bits") } else { 0 };
        let frames = &mut self.frames;
        frames.clear();
        // Where `frames` goes in the file.
        let mut at = active.write_off;
        let written = (|| {
            for (i, payload) in batch.payloads().enumerate() {
                let left = (batch.len() - 1 - i) as u32;
                frames.extend_from_slice(&format::encode_frame_header_marked(first + i as u64, left, mark, payload));
                frames.extend_from_slice(payload);
                if frames.len() >= WRITE_CHUNK {
                    active.writer.write(at, frames)?;
                    at += frames.len();
                    frames.clear();
                }
            }
            crate::crashpoint::fail("write")?;
            active.writer.write(at, frames)?;
            at += frames.len();
            Ok(())
        })();
        if frames.capacity() > 2 * WRITE_CHUNK {
            *frames = Vec::new();
        }
        if let Err(e) = written {
            // Part of the batch may be in the file, past the frames placed:
            // nothing more is written there until an open has scanned it
            // (it cuts the log at the last whole batch).
            let err = io_err(&active.seg.path, e);
            self.shared.durability.poison(err.to_string());
            return Err(err);
        }
        let off = at;
        debug_assert_eq!(off - active.write_off, bytes);
        active.write_off = off;
        // Zeros ahead of a small batch's sync ([`ZERO_AHEAD`]): the next
        // 256 KiB past those already written (or past this batch's last
        // page), inside the allocated file, once fewer than half are left.
        // Only a saving: if they cannot be written, the batch stands, and
        // the next one tries again.
        if matches!(self.config.sync, Sync::EveryBatch) && bytes < ZERO_AHEAD && off + ZERO_AHEAD / 2 > active.zeroed {
            let from = active.zeroed.max(off.next_multiple_of(PAGE));
            let to = (from + ZERO_AHEAD).min(active.map.allocated());
            if to > from && active.writer.zero(from, to).is_ok() {
                active.zeroed = to;
            }
        }
        active.frames += n;
        self.shared.counters.frames.fetch_add(n, Ordering::Relaxed);
        active.next_seq += n;
        self.next_seq = active.next_seq;
        self.unsynced_since.get_or_insert_with(Instant::now);
        let first_pos = Position { segment: active.seg.first_seq, offset: (off - bytes) as u64 };
        Ok(Appended { seqs: first..first + n, first: first_pos })
    }

    /// Makes everything placed durable (and visible).
    fn sync(&mut self) -> Result<(), LogError> {
        let lead = self.shared.durability.lead();
        self.shared.sync_placed(&lead)?;
        self.unsynced_since = None;
        Ok(())
    }

    /// Makes the frames written readable by position (the map's watermark)
    /// and tells the syncs how far they go. Readers of the log see them
    /// once they are visible (`durable.rs`).
    fn place(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.writer.publish(a.write_off);
            self.shared.durability.placed(a.write_off, self.next_seq);
        }
    }

    /// Seals the active segment and starts the next one. Only called for a
    /// segment holding frames: an empty one has room for any batch that
    /// passed the size check (the map always spans the whole segment size;
    /// the file grows into it, see `MapWriter::reserve`).
    fn roll(&mut self) -> Result<(), LogError> {
        self.place();
        // The lead, held until the next segment is active: no sync sees
        // this one half sealed.
        let shared = Arc::clone(&self.shared);
        let lead = shared.durability.lead();
        shared.sync_placed(&lead)?;
        self.unsynced_since = None;
        let a = self.active.as_ref().expect("roll needs an active segment");
        assert!(a.frames > 0, "an empty segment is never sealed");
        let content = a.map.bytes();
        assert_eq!(content.len(), a.write_off, "sealing covers exactly the written frames");
        let entry = SealedEntry {
            first_seq: a.seg.first_seq,
            last_seq: a.next_seq - 1,
            len: a.write_off as u64,
            frames: a.frames,
            crc: crc32fast::hash(content),
            generation: 0,
        };
        let mut manifest = self.manifest.clone();
        manifest.epoch += 1;
        manifest.next_seq = a.next_seq;
        manifest.sealed.push(entry);
        if let Err((e, maybe_in_place)) = manifest.store(&self.shared.dir) {
            if maybe_in_place {
                // The manifest in place may list this segment as sealed at
                // its present length: a frame appended to it now would be
                // cut off at the next open. No more appends until then.
                self.shared.durability.poison(e.to_string());
            }
            return Err(e);
        }
        self.manifest = manifest;
        self.active = None;
        crate::crashpoint::reached("roll");
        self.shared.counters.rolls.fetch_add(1, Ordering::Relaxed);
        let next = self.next_seq;
        self.active = Some(self.create_segment(next)?);
        drop(lead);
        Ok(())
    }

    /// Makes segment `first_seq` the active one: takes the segment file
    /// prepared in the background (or prepares one now), writes and syncs
    /// its header, renames it to its name, syncs the directory, and adds it
    /// to the shared segment list.
    fn create_segment(&mut self, first_seq: u64) -> Result<Active, LogError> {
        let prepared = match self.preparing.take() {
            Some(rx) => rx.recv().unwrap_or_else(|_| Err(LogError::Poisoned("segment preparer panicked".into())))?,
            None => prepare(&self.shared.dir, self.config.segment_size_bytes)?,
        };
        let Prepared { mut writer, map, tmp } = prepared;
        let dir = &self.shared.dir;
        let path = dir.join(segment_file_name(first_seq, 0));
        let file = writer.file();
        let header = SegmentHeader::new(first_seq).encode();
        let installed =
            install_file(dir, &tmp, &path, || writer.write(0, &header).and_then(|()| file.sync_data()), || {}).map_err(
                |e| match e {
                    InstallError::Write(e) => io_err(&tmp, e),
                    InstallError::Rename(e) => io_err(&path, e),
                    InstallError::SyncDir(e) => io_err(dir, e),
                },
            );
        if let Err(e) = installed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        writer.publish(HEADER_LEN);
        let seg = Arc::new(Segment::new(first_seq, 0, path.clone(), Arc::clone(&map)));
        self.shared.push(Arc::clone(&seg));
        self.shared.durability.set_active(file, path, HEADER_LEN, first_seq);
        Ok(Active {
            seg,
            map,
            writer,
            write_off: HEADER_LEN,
            frames: 0,
            next_seq: first_seq,
            marks: true,
            zeroed: HEADER_LEN,
        })
    }

    /// Starts preparing the next segment file on another thread once the
    /// active one is half full, so that rolling does not wait for
    /// preallocation and page faults.
    fn prepare_ahead(&mut self) {
        let Some(a) = &self.active else { return };
        if self.preparing.is_some() || a.write_off < a.map.len() / 2 {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (dir, size) = (self.shared.dir.clone(), self.config.segment_size_bytes);
        let spawned =
            std::thread::Builder::new().name("joblog-prepare".into()).spawn(move || drop(tx.send(prepare(&dir, size))));
        if spawned.is_ok() {
            self.preparing = Some(rx);
        }
    }

    /// Waits for a preparation in flight and removes its file.
    fn discard_prepared(&mut self) {
        if let Some(Ok(p)) = self.preparing.take().and_then(|rx| rx.recv().ok()) {
            let _ = fs::remove_file(&p.tmp);
        }
    }
}

/// A segment file made ahead of time: its first step reserved, synced and
/// mapped; no header yet.
struct Prepared {
    writer: MapWriter,
    map: Arc<SegmentMap>,
    tmp: PathBuf,
}

const PREPARED_TMP: &str = "next-segment.tmp";

fn prepare(dir: &Path, size: u64) -> Result<Prepared, LogError> {
    let tmp = dir.join(PREPARED_TMP);
    let make = || -> std::io::Result<(Arc<SegmentMap>, MapWriter)> {
        let file = super::private::create_file(&tmp, true)?;
        // The first step only: the file grows as frames arrive.
        preallocate(&file, 0, first_step(size as usize) as u64)?;
        file.sync_all()?;
        SegmentMap::writable(file, size as usize, 0)
    };
    match make() {
        Ok((map, writer)) => Ok(Prepared { writer, map, tmp }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io_err(&tmp, e))
        }
    }
}

impl Shared {
    fn push(&self, seg: Arc<Segment>) {
        let mut guard = self.segments.write().unwrap_or_else(|e| e.into_inner());
        let mut list = Vec::clone(&guard);
        debug_assert!(list.last().is_none_or(|l| l.first_seq < seg.first_seq));
        list.push(seg);
        *guard = Arc::new(list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;

    /// A small batch has zeros written ahead of it, synced with it, while
    /// the durable mark stays at the frames' end; a batch of `ZERO_AHEAD`
    /// or more gets none; and the zeros read as zeros: an open that scans
    /// the active segment's tail finds every frame and nothing torn.
    #[test]
    fn zeros_go_ahead_of_small_batches_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&[7u8; 100]).unwrap();
        let d = &log.shared.durability;
        // The active segment's frames written and zeros written ahead, ends.
        let placed_ends = || {
            let w = log.direct.as_ref().unwrap().lock().unwrap();
            let a = w.active.as_ref().unwrap();
            (a.write_off, a.zeroed)
        };
        let (written, zeroed) = placed_ends();
        assert_eq!(zeroed, written.next_multiple_of(PAGE) + ZERO_AHEAD);
        assert_eq!(d.synced_off(), written, "the mark stops at the frames");
        // Past them, in one batch larger than the zeros ahead: no more.
        let mut batch = Batch::new();
        let n = (zeroed - written) / 1000 + ZERO_AHEAD / 1000;
        for _ in 0..n {
            batch.push(&[8u8; 1000]);
        }
        log.append_batch(batch).unwrap();
        let (written_big, zeroed_big) = placed_ends();
        assert!(written_big > zeroed && zeroed_big == zeroed, "{written_big} {zeroed_big}");
        assert_eq!(d.synced_off(), written_big);
        // The next small batch writes zeros ahead again, as far as the
        // file is allocated.
        log.append(&[9u8; 100]).unwrap();
        let (written, zeroed) = placed_ends();
        let allocated = log.direct.as_ref().unwrap().lock().unwrap().active.as_ref().unwrap().map.allocated();
        assert_eq!(zeroed, (written.next_multiple_of(PAGE) + ZERO_AHEAD).min(allocated));
        assert!(zeroed > written);
        assert_eq!(d.synced_off(), written);
        drop(log);
        // Reopened without the mark of a clean close, so the tail is scanned.
        std::fs::remove_file(dir.path().join(closed::FILE)).unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert!(!log.recovery().closed_mark_used);
        assert_eq!(log.recovery().torn_bytes_dropped, 0);
        let payloads: Vec<Vec<u8>> = log.iter_from(0).map(|r| r.unwrap().payload().to_vec()).collect();
        assert_eq!(payloads.len(), n + 2);
        assert!(payloads[0] == [7u8; 100] && payloads[n + 1] == [9u8; 100]);
        assert!(payloads[1..=n].iter().all(|p| p[..] == [8u8; 1000]));
    }
}
