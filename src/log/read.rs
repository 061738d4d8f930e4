//! Reading: iteration from any sequence number across segments, and random
//! access by position. Every frame's checksum is verified on every read;
//! readers see only published frames, so they never observe a write in
//! progress, and they keep reading while the writer appends and rolls.
//! Iteration stops at the visible horizon (`durable.rs`: with
//! `Sync::EveryBatch`, what is durable); a read by position reaches every
//! placed frame.

use std::sync::Arc;

use super::error::corrupt;
use super::format::{self, FrameRead, SeqRule, HEADER_LEN};
use super::manifest::Manifest;
use super::{Log, LogError, Position, Segment, Shared};

/// One record: its sequence number, where it lives, and its payload, read
/// in place from the segment's map.
#[derive(Clone)]
pub struct Record {
    seg: Arc<Segment>,
    frame: format::Frame,
}

impl Record {
    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.frame.seq
    }

    /// Where it lives (valid until compaction rewrites its segment).
    pub fn position(&self) -> Position {
        Position { segment: self.seg.first_seq, offset: (self.frame.payload_offset - format::FRAME_HEADER_LEN) as u64 }
    }

    /// Its payload, read in place from the segment's map.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.seg.map.bytes()[self.frame.payload_offset..self.frame.end()]
    }
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
/// iterator ends.
pub struct LogIter {
    shared: Arc<Shared>,
    seg: Option<Arc<Segment>>,
    offset: usize,
    from_seq: u64,
    failed: bool,
}

impl Iterator for LogIter {
    type Item = Result<Record, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if self.seg.is_none() {
                // The log was empty when iteration started: look again.
                self.seg = self.shared.snapshot().first().cloned();
                self.offset = HEADER_LEN;
            }
            let seg = Arc::clone(self.seg.as_ref()?);
            let bytes = seg.map.bytes();
            self.offset = seg.skip(self.offset);
            if self.offset < bytes.len() {
                match format::read_frame(bytes, self.offset) {
                    // Placed, not yet visible (`durable.rs`): looked at again
                    // on the next call.
                    FrameRead::Frame(frame) if self.shared.hides(frame.seq) => return None,
                    FrameRead::Frame(frame) => {
                        self.offset = frame.end();
                        if frame.seq < self.from_seq {
                            continue;
                        }
                        return Some(Ok(Record { seg, frame }));
                    }
                    FrameRead::End => {
                        return self.fail(corrupt(&seg.path, self.offset, "published bytes hold no frame"))
                    }
                    FrameRead::Invalid(why) => return self.fail(corrupt(&seg.path, self.offset, why)),
                }
            }
            // End of what this segment has published. If a later segment
            // exists, this one is sealed, but it may have published its last
            // frames after we looked: look again before moving on.
            let next = {
                let snapshot = self.shared.snapshot();
                let i = snapshot.partition_point(|s| s.first_seq <= seg.first_seq);
                snapshot.get(i).cloned()
            };
            let next = next?;
            if self.offset < seg.map.published() {
                continue;
            }
            self.seg = Some(next);
            self.offset = HEADER_LEN;
        }
    }
}

impl LogIter {
    fn fail(&mut self, err: LogError) -> Option<Result<Record, LogError>> {
        self.failed = true;
        Some(Err(err))
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
pub(crate) fn next_seq_of(seg: &Segment) -> u64 {
    let bytes = seg.map.bytes();
    let scan = format::scan(bytes, bytes.len(), seg.first_seq, SeqRule::Increasing);
    scan.last_seq.map_or(seg.first_seq, |s| s + 1)
}

impl Log {
    /// Iterates from the first record whose sequence number is `from_seq` or
    /// more.
    pub fn iter_from(&self, from_seq: u64) -> LogIter {
        let snapshot = self.shared.snapshot();
        // The last segment starting at or before `from_seq`.
        let i = snapshot.partition_point(|s| s.first_seq <= from_seq).saturating_sub(1);
        LogIter {
            shared: Arc::clone(&self.shared),
            seg: snapshot.get(i).cloned(),
            offset: HEADER_LEN,
            from_seq,
            failed: false,
        }
    }

    /// Calls `f` with every record from the first whose sequence number is
    /// `from_seq` or more, in order, each checksum verified, without the
    /// per-record reference counting of [`LogIter`]: the fast path for
    /// replaying a whole log. Sees what is published when it reaches each
    /// segment, below the visible horizon when it starts (`durable.rs`);
    /// stops early when `f` returns `ControlFlow::Break`.
    pub fn scan_from<E: From<LogError>>(
        &self,
        from_seq: u64,
        mut f: impl FnMut(RecordRef<'_>) -> Result<std::ops::ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let horizon = if self.shared.writable { self.next_seq() } else { u64::MAX };
        let snapshot = self.shared.snapshot();
        let start = snapshot.partition_point(|s| s.first_seq <= from_seq).saturating_sub(1);
        for seg in snapshot.iter().skip(start) {
            let _through = seg.map.read_through();
            let bytes = seg.map.bytes();
            let mut offset = HEADER_LEN;
            loop {
                offset = seg.skip(offset);
                if offset >= bytes.len() {
                    break;
                }
                let frame = match format::read_frame(bytes, offset) {
                    FrameRead::Frame(frame) => frame,
                    FrameRead::End => return Err(corrupt(&seg.path, offset, "published bytes hold no frame").into()),
                    FrameRead::Invalid(why) => return Err(corrupt(&seg.path, offset, why).into()),
                };
                if frame.seq >= horizon {
                    return Ok(());
                }
                let position = Position { segment: seg.first_seq, offset: offset as u64 };
                offset = frame.end();
                if frame.seq < from_seq {
                    continue;
                }
                let payload = &bytes[frame.payload_offset..frame.end()];
                if f(RecordRef { seq: frame.seq, position, payload })?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
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
        let bad = |reason| LogError::BadPosition { segment: pos.segment, offset: pos.offset, reason };
        let snapshot = self.shared.snapshot();
        let i = snapshot.binary_search_by_key(&pos.segment, |s| s.first_seq).map_err(|_| bad("no such segment"))?;
        let seg = Arc::clone(&snapshot[i]);
        let offset = usize::try_from(pos.offset).map_err(|_| bad("offset out of range"))?;
        if offset < HEADER_LEN {
            return Err(bad("offset inside the segment header"));
        }
        match format::read_frame(seg.map.bytes(), offset) {
            FrameRead::Frame(frame) => Ok(Record { seg, frame }),
            FrameRead::End if written => Err(corrupt(&seg.path, offset, "no frame where one was written")),
            FrameRead::Invalid(why) if written => Err(corrupt(&seg.path, offset, why)),
            FrameRead::End => Err(bad("past the end of the segment")),
            FrameRead::Invalid(why) => Err(bad(why)),
        }
    }

    /// Reads every published frame of every segment, checking each frame's
    /// checksum and each sealed segment against the manifest. Finds every
    /// problem rather than stopping at the first.
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        let manifest = Manifest::load(&self.shared.dir)?;
        let snapshot = self.shared.snapshot();
        let mut report = VerifyReport { segments: snapshot.len(), ..VerifyReport::default() };
        let mut prev_last: Option<u64> = None;
        for seg in snapshot.iter() {
            let bytes = seg.map.bytes();
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
            if let (Some(p), Some(first)) = (prev_last, scan.last_seq.map(|_| seg.first_seq)) {
                if first <= p {
                    report
                        .problems
                        .push(format!("{}: sequence numbers overlap the previous segment", seg.path.display()));
                }
            }
            prev_last = scan.last_seq.or(prev_last);
            match manifest.sealed.iter().find(|e| e.first_seq == seg.first_seq) {
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
                None if !Arc::ptr_eq(seg, snapshot.last().expect("non-empty")) => {
                    report.problems.push(format!("{}: sealed segment missing from the manifest", seg.path.display()));
                }
                None => {}
            }
        }
        Ok(report)
    }
}
