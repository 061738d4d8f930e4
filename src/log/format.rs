//! Segment header and frame layout: pure encoding and decoding over byte
//! slices. `docs/format.md` draws every structure here byte by byte; each
//! offset constant is built from the one before it so the two can be checked
//! against each other. All integers are little-endian.

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use crate::codec;

/// Opens every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"JOBLOGSG";
/// Version of the segment and frame layout described in `docs/format.md`:
/// the version new segments are written in. Version 2 gave the frame's
/// reserved field a meaning (the durable mark, see [`Frame::mark`]).
pub const FORMAT_VERSION: u16 = 2;
/// The oldest segment layout this build still reads (and appends to, in
/// that layout, until the segment is sealed).
pub const OLDEST_FORMAT_VERSION: u16 = 1;

// Segment header (32 bytes):
const H_MAGIC: usize = 0; //                  [u8; 8]
const H_FORMAT: usize = H_MAGIC + 8; //       u16 layout version
const H_CODEC: usize = H_FORMAT + 2; //       u16 payload codec version
const H_RESERVED: usize = H_CODEC + 2; //     u32, zero
const H_FIRST_SEQ: usize = H_RESERVED + 4; // u64 first sequence number
const H_CRC: usize = H_FIRST_SEQ + 8; //      u32 CRC32 of bytes [0, H_CRC)
const H_PAD: usize = H_CRC + 4; //            u32, zero
/// Length of the segment header; the first frame starts here.
pub const HEADER_LEN: usize = H_PAD + 4;

// Frame header (24 bytes), followed by the payload:
const F_LEN: usize = 0; //                    u32 payload length, > 0
const F_CRC: usize = F_LEN + 4; //            u32 salted CRC32, see `frame_crc`
const F_SEQ: usize = F_CRC + 4; //            u64 sequence number
const F_BATCH_LEFT: usize = F_SEQ + 8; //     u32 frames after this one in its atomic batch
const F_MARK: usize = F_BATCH_LEFT + 4; //     u32 durable mark (format 2; zero in format 1)
/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = F_MARK + 4;

/// The largest payload a frame may carry.
pub const MAX_PAYLOAD_BYTES: u32 = 16 << 20;

/// Starting value of every frame CRC. Because of it, and because a length of
/// zero is never valid, a zero-filled region never reads as a frame.
pub const FRAME_CRC_SALT: u32 = 0x4A4F_424C; // "JOBL"

/// Why a file written by a newer joblog is refused (see
/// [`LogError::NewerVersion`](super::LogError::NewerVersion)).
pub const NEWER_SEGMENT_FORMAT: &str = "written by a newer joblog (segment format version above this build's)";
/// Why a segment whose payloads use a newer codec is refused (see
/// [`LogError::NewerVersion`](super::LogError::NewerVersion)).
pub const NEWER_CODEC: &str = "written by a newer joblog (payload codec version above this build's)";

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The sequence number of its first frame (also its file name).
    pub first_seq: u64,
    /// The segment format version it was written with (`docs/format.md`).
    pub format_version: u16,
    /// The payload codec version (`codec::CODEC_VERSION`) its payloads use.
    pub codec_version: u16,
}

impl SegmentHeader {
    /// The header of a new segment starting at `first_seq`, in this build's
    /// format and codec versions.
    pub fn new(first_seq: u64) -> Self {
        Self { first_seq, format_version: FORMAT_VERSION, codec_version: codec::CODEC_VERSION }
    }

    /// Whether this segment's frames carry durable marks (format 2 on).
    pub fn has_marks(&self) -> bool {
        self.format_version >= 2
    }

    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[H_MAGIC..H_FORMAT].copy_from_slice(&SEGMENT_MAGIC);
        b[H_FORMAT..H_CODEC].copy_from_slice(&self.format_version.to_le_bytes());
        b[H_CODEC..H_RESERVED].copy_from_slice(&self.codec_version.to_le_bytes());
        b[H_FIRST_SEQ..H_CRC].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = crc32fast::hash(&b[..H_CRC]);
        b[H_CRC..H_PAD].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header: magic, checksum, and supported versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let b = bytes.get(..HEADER_LEN).ok_or("file shorter than a segment header")?;
        if b[H_MAGIC..H_FORMAT] != SEGMENT_MAGIC {
            return Err("not a joblog segment (bad magic)");
        }
        if crc32fast::hash(&b[..H_CRC]) != le_u32(b, H_CRC) {
            return Err("segment header checksum mismatch");
        }
        if le_u32(b, H_PAD) != 0 || le_u32(b, H_RESERVED) != 0 {
            return Err("reserved segment header bytes are not zero");
        }
        let header = Self {
            format_version: le_u16(b, H_FORMAT),
            codec_version: le_u16(b, H_CODEC),
            first_seq: le_u64(b, H_FIRST_SEQ),
        };
        if header.format_version > FORMAT_VERSION {
            return Err(NEWER_SEGMENT_FORMAT);
        }
        if header.format_version < OLDEST_FORMAT_VERSION {
            return Err("unsupported segment format version");
        }
        if header.codec_version > codec::CODEC_VERSION {
            return Err(NEWER_CODEC);
        }
        if header.first_seq == 0 {
            return Err("segment first sequence number is zero");
        }
        Ok(header)
    }
}

/// The checksum a frame carries: CRC32, started from [`FRAME_CRC_SALT`], of
/// the length, then bytes [F_SEQ, FRAME_HEADER_LEN) of the header, then the
/// payload. `rest` is those header bytes followed by the payload (they lie
/// next to each other in a segment, so reading hashes them in one pass).
fn frame_crc_parts(len: &[u8], rest_of_header: &[u8], payload: &[u8]) -> u32 {
    let mut h = salted_hasher();
    h.update(len);
    h.update(rest_of_header);
    h.update(payload);
    h.finalize()
}

/// A hasher started from the salt. Made once and cloned: constructing one
/// runs crc32fast's CPU feature detection, which costs more than hashing a
/// small frame.
fn salted_hasher() -> crc32fast::Hasher {
    static SALTED: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    SALTED.get_or_init(|| crc32fast::Hasher::new_with_initial(FRAME_CRC_SALT)).clone()
}

/// The checksum of a frame whose header is `header` (crc field ignored).
pub fn frame_crc(header: &[u8; FRAME_HEADER_LEN], payload: &[u8]) -> u32 {
    frame_crc_parts(&header[F_LEN..F_CRC], &header[F_SEQ..], payload)
}

/// The header of a frame carrying `payload` as sequence number `seq`, with
/// a durable mark of 0 ("no knowledge": what format 1 writes, and what a
/// sealed segment's rewritten frames carry).
pub fn encode_frame_header(seq: u64, batch_left: u32, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    encode_frame_header_marked(seq, batch_left, 0, payload)
}

/// The header of a frame carrying `payload` as sequence number `seq`,
/// written when the segment was durable (synced) below offset `mark`.
pub fn encode_frame_header_marked(seq: u64, batch_left: u32, mark: u32, payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    // A bug if not: `Log::append_batch` checks every payload's size first.
    let len = match u32::try_from(payload.len()) {
        Ok(len) if len > 0 && len <= MAX_PAYLOAD_BYTES => len,
        _ => panic!("a frame's payload is 1..={MAX_PAYLOAD_BYTES} bytes, not {}", payload.len()),
    };
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[F_LEN..F_CRC].copy_from_slice(&len.to_le_bytes());
    h[F_SEQ..F_BATCH_LEFT].copy_from_slice(&seq.to_le_bytes());
    h[F_BATCH_LEFT..F_MARK].copy_from_slice(&batch_left.to_le_bytes());
    h[F_MARK..].copy_from_slice(&mark.to_le_bytes());
    let crc = frame_crc(&h, payload);
    h[F_CRC..F_SEQ].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Bytes a frame with a payload of `payload_len` bytes takes.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// One valid frame found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Its sequence number.
    pub seq: u64,
    /// How many frames follow it in the same atomic batch (0: the last).
    pub batch_left: u32,
    /// The durable mark (format 2): when this frame's group was written,
    /// every byte of the segment below this offset had been synced. 0 means
    /// no knowledge (format 1, or a frame rewritten by compaction). Only the
    /// active segment's recovery uses it; see `docs/format.md`.
    pub mark: u32,
    /// Offset of the payload in the segment.
    pub payload_offset: usize,
    /// Length of the payload in bytes.
    pub payload_len: usize,
}

impl Frame {
    /// Offset just past this frame.
    pub fn end(&self) -> usize {
        self.payload_offset + self.payload_len
    }

    /// Offset of the frame's header.
    pub fn offset(&self) -> usize {
        self.payload_offset - FRAME_HEADER_LEN
    }

    /// What the frame proves durable: its mark, but never past the frame
    /// itself (a genuine mark never is; a frame copied by compaction keeps
    /// a stale one, which proves nothing).
    pub fn proven(&self) -> usize {
        (self.mark as usize).min(self.offset())
    }
}

/// What lies at an offset of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRead {
    /// A valid frame starts here.
    Frame(Frame),
    /// No frame starts here: the rest is zeros, or too short for a header.
    End,
    /// Bytes that are not a valid frame (torn, corrupt or garbage).
    Invalid(&'static str),
}

#[inline]
/// The whole length (header and payload) the frame header at `offset` of
/// `seg` claims, if it is one a frame could have there; its checksum is
/// not checked (a size to plan by: whoever reads the frame checks it).
pub fn claimed_frame_len(seg: &[u8], offset: usize) -> Option<usize> {
    let h = seg.get(offset..)?.get(..FRAME_HEADER_LEN)?;
    let len = le_u32(h, F_LEN);
    let fits = len > 0 && len <= MAX_PAYLOAD_BYTES && len as usize <= seg.len() - offset - FRAME_HEADER_LEN;
    fits.then(|| frame_len(len as usize))
}

/// Reads the frame at `offset` of `seg`, checking its length against the
/// space left (before anything is sized from it) and its checksum.
pub fn read_frame(seg: &[u8], offset: usize) -> FrameRead {
    read_frame_checking(seg, offset, true)
}

/// [`read_frame`], checking the frame's CRC only with `crc` (a scan of a
/// segment whose whole content matched its manifest's checksum:
/// `Segment::scan_trusts`); every other check is made either way.
#[inline]
pub(crate) fn read_frame_checking(seg: &[u8], offset: usize, crc: bool) -> FrameRead {
    let Some(rest) = seg.get(offset..) else { return FrameRead::Invalid("offset past the end") };
    let Some(h) = rest.get(..FRAME_HEADER_LEN) else {
        return if rest.iter().all(|&b| b == 0) {
            FrameRead::End
        } else {
            FrameRead::Invalid("truncated frame header")
        };
    };
    let len = le_u32(h, F_LEN);
    if len == 0 {
        return if h.iter().all(|&b| b == 0) { FrameRead::End } else { FrameRead::Invalid("zero frame length") };
    }
    if len > MAX_PAYLOAD_BYTES {
        return FrameRead::Invalid("frame length above the maximum");
    }
    let len = len as usize;
    if len > rest.len() - FRAME_HEADER_LEN {
        return FrameRead::Invalid("frame length runs past the end of the segment");
    }
    // The rest of the header and the payload are contiguous: one pass.
    if crc && frame_crc_parts(&h[F_LEN..F_CRC], &rest[F_SEQ..FRAME_HEADER_LEN + len], &[]) != le_u32(h, F_CRC) {
        return FrameRead::Invalid("frame checksum mismatch");
    }
    FrameRead::Frame(Frame {
        seq: le_u64(h, F_SEQ),
        batch_left: le_u32(h, F_BATCH_LEFT),
        mark: le_u32(h, F_MARK),
        payload_offset: offset + FRAME_HEADER_LEN,
        payload_len: len,
    })
}

/// How sequence numbers must advance inside a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqRule {
    /// The active segment: the first frame has the header's sequence number
    /// and each next one is one more.
    Contiguous,
    /// A sealed segment: strictly increasing from the header's number (a
    /// compacted segment has gaps).
    Increasing,
}

/// The result of scanning the frames of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// End of the last frame that closes an atomic batch: everything before
    /// it is whole, valid, committed data.
    pub committed_end: usize,
    /// Frames before `committed_end`.
    pub frames: u64,
    /// Sequence number of the last committed frame, if any.
    pub last_seq: Option<u64>,
    /// Where and why scanning stopped before `limit`, when it did not stop at
    /// clean zeros (or at `limit` itself).
    pub stopped: Option<(usize, &'static str)>,
    /// The highest offset a valid frame of the scan proves durable
    /// ([`Frame::proven`]); `HEADER_LEN` at least.
    pub proven: usize,
}

/// Scans the frames of `seg[..limit]` from the end of the header.
pub fn scan(seg: &[u8], limit: usize, first_seq: u64, rule: SeqRule) -> Scan {
    let seg = &seg[..limit.min(seg.len())];
    let mut out =
        Scan { committed_end: HEADER_LEN.min(seg.len()), frames: 0, last_seq: None, stopped: None, proven: HEADER_LEN };
    let mut offset = HEADER_LEN;
    let mut pending = 0u64; // frames of the open batch
    let mut prev: Option<u64> = None;
    let mut open_batch_left: Option<u32> = None;
    while offset < seg.len() {
        let frame = match read_frame(seg, offset) {
            FrameRead::Frame(f) => f,
            FrameRead::End => break,
            FrameRead::Invalid(why) => {
                out.stopped = Some((offset, why));
                break;
            }
        };
        let seq_ok = match (rule, prev) {
            (SeqRule::Contiguous, None) => frame.seq == first_seq,
            (SeqRule::Increasing, None) => frame.seq >= first_seq,
            (SeqRule::Contiguous, Some(p)) => Some(frame.seq) == p.checked_add(1),
            (SeqRule::Increasing, Some(p)) => frame.seq > p,
        };
        if !seq_ok {
            out.stopped = Some((offset, "sequence number out of order"));
            break;
        }
        if let Some(left) = open_batch_left {
            if frame.batch_left + 1 != left {
                out.stopped = Some((offset, "atomic batch count out of order"));
                break;
            }
        }
        prev = Some(frame.seq);
        out.proven = out.proven.max(frame.proven());
        pending += 1;
        offset = frame.end();
        if frame.batch_left == 0 {
            out.committed_end = offset;
            out.frames += pending;
            out.last_seq = prev;
            pending = 0;
            open_batch_left = None;
        } else {
            open_batch_left = Some(frame.batch_left);
        }
    }
    if pending > 0 && out.stopped.is_none() {
        out.stopped = Some((out.committed_end, "atomic batch not complete"));
    }
    out
}

/// The first frame at or after `from` (byte by byte) that validates and
/// whose sequence number is plausible: in `seqs` (callers pass "after the
/// last good one" up to the most the bytes could hold). Used to look past
/// damage. Cheap on zeros and on garbage: the length, the sequence number
/// and the mark are checked before any checksum is computed.
pub fn resync(seg: &[u8], from: usize, seqs: std::ops::RangeInclusive<u64>) -> Option<Frame> {
    let mut at = from.max(HEADER_LEN);
    while at + FRAME_HEADER_LEN <= seg.len() {
        // Eight zero bytes: no header starts in the first five of them
        // (its length would be zero).
        if let Some(w) = seg.get(at..at + 8) {
            if w.iter().all(|&b| b == 0) {
                at += 5;
                continue;
            }
        }
        let h = &seg[at..at + FRAME_HEADER_LEN];
        let len = le_u32(h, F_LEN) as usize;
        let seq = le_u64(h, F_SEQ);
        let plausible = len > 0
            && len <= MAX_PAYLOAD_BYTES as usize
            && len <= seg.len() - at - FRAME_HEADER_LEN
            && seqs.contains(&seq)
            && le_u32(h, F_MARK) as usize <= at;
        if plausible {
            if let FrameRead::Frame(f) = read_frame(seg, at) {
                return Some(f);
            }
        }
        at += 1;
    }
    None
}

/// A stretch of a segment that holds no valid frame where one should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Where it starts (where a frame was expected) and how long it is.
    pub offset: usize,
    /// Its length in bytes.
    pub len: usize,
    /// Sequence number of the last valid frame before it, if any.
    pub after_seq: Option<u64>,
    /// Sequence number of the first valid frame after it, if any.
    pub before_seq: Option<u64>,
}

/// What [`survey`] finds from an offset to the end of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Survey {
    /// Damaged stretches, in order. Zeros after the last valid frame are the
    /// end of the data, not a stretch; zeros *between* valid frames are one.
    pub stretches: Vec<Stretch>,
    /// The highest offset any valid frame found proves durable
    /// ([`Frame::proven`]); 0 when none was found.
    pub proven: usize,
    /// End of the last valid frame found that closes a batch, if any.
    pub last_batch_end: Option<usize>,
    /// Valid frames found.
    pub frames: u64,
}

/// Walks `seg` from `from` to its end: reads frames one after the other
/// while they validate (strictly increasing sequence numbers, at most
/// `max_seq`), and at each invalid spot looks for the next valid frame:
/// first where the bad frame's own length says the next one starts (a
/// payload is skipped whole, so bytes inside it are never taken for a
/// frame), then byte by byte ([`resync`]). `last_seq` is the sequence number
/// of the last good frame before `from`. A pure function: recovery uses it to
/// find proof of corruption past damage, salvage to step over damage.
pub fn survey(seg: &[u8], from: usize, last_seq: Option<u64>, max_seq: u64) -> Survey {
    let mut out = Survey::default();
    let mut at = from.max(HEADER_LEN);
    let mut prev = last_seq;
    let min_next = |prev: Option<u64>| prev.map_or(1, |p| p.saturating_add(1));
    while at < seg.len() {
        let direct = match read_frame(seg, at) {
            FrameRead::Frame(f) if f.seq >= min_next(prev) && f.seq <= max_seq => Some(f),
            FrameRead::End | FrameRead::Frame(_) | FrameRead::Invalid(_) => None,
        };
        let found = direct.or_else(|| {
            // The bad frame's length, if plausible, names where the next
            // frame would start.
            let skip = seg
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .filter(|&l| l > 0 && l <= MAX_PAYLOAD_BYTES as usize)
                .and_then(|l| at.checked_add(FRAME_HEADER_LEN + l));
            let next = skip.and_then(|n| match read_frame(seg, n) {
                FrameRead::Frame(f) if f.seq >= min_next(prev) && f.seq <= max_seq => Some(f),
                _ => None,
            });
            next.or_else(|| resync(seg, at + 1, min_next(prev)..=max_seq))
        });
        let Some(frame) = found else {
            // Nothing valid after `at`: the rest is damage unless it is zeros.
            if let Some(last) = seg[at..].iter().rposition(|&b| b != 0) {
                out.stretches.push(Stretch { offset: at, len: last + 1, after_seq: prev, before_seq: None });
            }
            break;
        };
        if frame.offset() > at {
            let gap = Stretch { offset: at, len: frame.offset() - at, after_seq: prev, before_seq: Some(frame.seq) };
            out.stretches.push(gap);
        }
        out.frames += 1;
        out.proven = out.proven.max(frame.proven());
        if frame.batch_left == 0 {
            out.last_batch_end = Some(frame.end());
        }
        prev = Some(frame.seq);
        at = frame.end();
    }
    out
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(frames: &[(u64, u32, &[u8])]) -> Vec<u8> {
        let mut seg = SegmentHeader::new(frames.first().map_or(1, |f| f.0)).encode().to_vec();
        for &(seq, left, payload) in frames {
            seg.extend_from_slice(&encode_frame_header(seq, left, payload));
            seg.extend_from_slice(payload);
        }
        seg
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader::new(42);
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for i in 0..HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at byte {i} accepted");
        }
        assert!(SegmentHeader::decode(&bytes[..HEADER_LEN - 1]).is_err());
        assert!(SegmentHeader::decode(&[0u8; HEADER_LEN]).is_err());
    }

    #[test]
    fn frame_round_trips() {
        let seg = segment(&[(7, 0, b"hello")]);
        match read_frame(&seg, HEADER_LEN) {
            FrameRead::Frame(f) => {
                assert_eq!((f.seq, f.batch_left, f.payload_len), (7, 0, 5));
                assert_eq!(&seg[f.payload_offset..f.end()], b"hello");
                assert_eq!(f.end(), seg.len());
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn zeros_never_validate() {
        let zeros = [0u8; 64];
        assert_eq!(read_frame(&zeros, 0), FrameRead::End);
        // A zero header with a forged length still fails its checksum.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(matches!(read_frame(&forged, 0), FrameRead::Invalid(_)));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let seg = segment(&[(1, 0, b"payload bytes")]);
        for byte in HEADER_LEN..seg.len() {
            for bit in 0..8 {
                let mut bad = seg.clone();
                bad[byte] ^= 1 << bit;
                let s = scan(&bad, bad.len(), 1, SeqRule::Contiguous);
                assert_eq!(s.frames, 0, "flip of bit {bit} at {byte} accepted");
                assert_eq!(s.committed_end, HEADER_LEN);
            }
        }
    }

    #[test]
    fn scan_stops_at_incomplete_batches() {
        let seg = segment(&[(1, 0, b"a"), (2, 2, b"b"), (3, 1, b"c"), (4, 0, b"d"), (5, 1, b"e")]);
        let s = scan(&seg, seg.len(), 1, SeqRule::Contiguous);
        assert_eq!(s.frames, 4);
        assert_eq!(s.last_seq, Some(4));
        assert_eq!(s.stopped.map(|s| s.1), Some("atomic batch not complete"));
        assert_eq!(s.committed_end, seg.len() - frame_len(1));
    }

    #[test]
    fn scan_enforces_sequence_rules() {
        let gap = segment(&[(1, 0, b"a"), (3, 0, b"b")]);
        assert_eq!(scan(&gap, gap.len(), 1, SeqRule::Contiguous).frames, 1);
        assert_eq!(scan(&gap, gap.len(), 1, SeqRule::Increasing).frames, 2);
        let back = segment(&[(5, 0, b"a"), (4, 0, b"b")]);
        assert_eq!(scan(&back, back.len(), 5, SeqRule::Increasing).frames, 1);
    }

    fn marked(frames: &[(u64, u32, u32, &[u8])]) -> (Vec<u8>, Vec<usize>) {
        let mut seg = SegmentHeader::new(frames.first().map_or(1, |f| f.0)).encode().to_vec();
        let mut starts = vec![];
        for &(seq, left, mark, payload) in frames {
            starts.push(seg.len());
            seg.extend_from_slice(&encode_frame_header_marked(seq, left, mark, payload));
            seg.extend_from_slice(payload);
        }
        (seg, starts)
    }

    #[test]
    fn marks_round_trip_are_checksummed_and_proven_no_further_than_the_frame() {
        let (seg, starts) = marked(&[(1, 0, 32, b"a"), (2, 0, 57, b"b"), (3, 0, 4000, b"c")]);
        let s = scan(&seg, seg.len(), 1, SeqRule::Contiguous);
        assert_eq!(s.frames, 3);
        assert_eq!(s.proven, starts[2], "a mark past its own frame proves only up to the frame");
        let FrameRead::Frame(f) = read_frame(&seg, starts[1]) else { panic!() };
        assert_eq!((f.mark, f.proven()), (57, 57));
        let mut bad = seg.clone();
        bad[starts[1] + F_MARK] ^= 1;
        assert!(matches!(read_frame(&bad, starts[1]), FrameRead::Invalid(_)), "the mark is covered by the CRC");
    }

    #[test]
    fn resync_finds_the_next_plausible_frame_only() {
        let (seg, starts) = marked(&[(1, 0, 32, b"one"), (2, 0, 59, b"two"), (3, 0, 86, b"three")]);
        // From inside frame 1, the next frame found is frame 2.
        assert_eq!(resync(&seg, starts[0] + 1, 2..=10).map(|f| f.seq), Some(2));
        // A sequence number outside the plausible range is passed over.
        assert_eq!(resync(&seg, starts[0] + 1, 3..=10).map(|f| f.seq), Some(3));
        assert_eq!(resync(&seg, starts[0] + 1, 4..=10), None);
        assert_eq!(resync(&[0u8; 4096], 0, 1..=10), None);
    }

    #[test]
    fn survey_steps_over_damage_and_reports_stretches_and_proof() {
        let (mut seg, starts) =
            marked(&[(1, 0, 32, b"one"), (2, 0, 59, b"two"), (3, 1, 86, b"three"), (4, 0, 86, b"four")]);
        let end = seg.len();
        seg[starts[1] + FRAME_HEADER_LEN] ^= 0xFF; // payload of frame 2
        let s = survey(&seg, starts[1], Some(1), 100);
        assert_eq!(
            s.stretches,
            vec![Stretch { offset: starts[1], len: starts[2] - starts[1], after_seq: Some(1), before_seq: Some(3) }]
        );
        assert_eq!((s.proven, s.last_batch_end, s.frames), (86, Some(end), 2));
        // The length destroyed too: found byte by byte.
        seg[starts[1]..starts[1] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(survey(&seg, starts[1], Some(1), 100).stretches[0].len, starts[2] - starts[1]);
        // Trailing garbage is a stretch, trailing zeros are not.
        let mut tail = seg.clone();
        tail.extend_from_slice(&[0, 0, 7, 0, 0]);
        assert_eq!(survey(&tail, starts[2], Some(2), 100).stretches.len(), 1);
        tail.truncate(end);
        tail.extend_from_slice(&[0; 64]);
        assert!(survey(&tail, starts[2], Some(2), 100).stretches.is_empty());
    }

    #[test]
    fn lengths_are_capped_by_the_space_left() {
        let mut seg = segment(&[(1, 0, b"abc")]);
        // Claim a payload of 1000 bytes where only 3 remain.
        seg[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(read_frame(&seg, HEADER_LEN), FrameRead::Invalid(_)));
        seg[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_frame(&seg, HEADER_LEN), FrameRead::Invalid(_)));
    }
}
