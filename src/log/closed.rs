//! The closed mark (`segments/CLOSED`): written when a log closes cleanly,
//! it says where the active segment's frames end, so that the next open
//! need not scan the whole segment to find that out (a scan reads and
//! checksums every frame of it, up to a segment's size, and every
//! allocated byte after them).
//!
//! The mark is written after the final sync of a clean close, through
//! `log::private::install_file`. A writable open
//! consumes it: the file is removed, durably, before the writer starts, so
//! no append ever lands after a mark that would not cover it. A mark is
//! trusted only if it checks: its own CRC32; it names the active segment
//! found, with numbers that agree; the CRC32 of the last bytes before its
//! end is the one it recorded; the bytes after its end are all zero, which
//! they are in a segment nothing was appended to since (an append starts
//! exactly there): [`Closed::holds`] checks the first [`CHECKED_AFTER`] of
//! them, and a writable open every one (`open.rs`), since it goes on
//! writing there. Anything else, and the open scans, as without a mark.
//! The byte layout: `docs/format.md`, "The closed mark".

// A decoder of bytes from disk (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

/// The file's name in the log directory.
pub const FILE: &str = "CLOSED";
const MAGIC: [u8; 8] = *b"JLCLOSED";
/// The mark's format version.
pub const VERSION: u16 = 1;
/// The mark's length in bytes.
pub const LEN: usize = 52;
/// Bytes before the end whose CRC32 the mark records (fewer when the
/// segment holds fewer after its header).
pub const CHECKED_BEFORE: usize = 4096;
/// Bytes after the end that must be zero for the mark to hold.
pub const CHECKED_AFTER: usize = 4096;

/// What a clean close leaves of the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// The active segment: its first sequence number (its file name).
    pub first_seq: u64,
    /// Where its frames end (the offset of the next append).
    pub end: u64,
    /// Frames in it.
    pub frames: u64,
    /// The sequence number the next frame takes.
    pub next_seq: u64,
    /// CRC32 of the [`CHECKED_BEFORE`] bytes before `end` (from the end of
    /// the segment header at most).
    pub tail_crc: u32,
}

impl Closed {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.first_seq.to_le_bytes());
        b[20..28].copy_from_slice(&self.end.to_le_bytes());
        b[28..36].copy_from_slice(&self.frames.to_le_bytes());
        b[36..44].copy_from_slice(&self.next_seq.to_le_bytes());
        b[44..48].copy_from_slice(&self.tail_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..48]);
        b[48..52].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The mark in `b`; `None` if it is not one this build reads (another
    /// length, magic or version, a reserved byte set, a wrong checksum).
    pub fn decode(b: &[u8]) -> Option<Closed> {
        let b: &[u8; LEN] = b.try_into().ok()?;
        let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        let u32_at = |at: usize| b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
        if b[0..8] != MAGIC || u16::from_le_bytes([b[8], b[9]]) != VERSION || b[10..12] != [0, 0] {
            return None;
        }
        if u32_at(48)? != crc32fast::hash(&b[..48]) {
            return None;
        }
        Some(Closed {
            first_seq: u64_at(12)?,
            end: u64_at(20)?,
            frames: u64_at(28)?,
            next_seq: u64_at(36)?,
            tail_crc: u32_at(44)?,
        })
    }

    /// The mark of a segment whose bytes (header included) are `bytes`,
    /// its frames ending at `end`.
    pub fn of(first_seq: u64, bytes: &[u8], end: usize, frames: u64, next_seq: u64) -> Closed {
        Closed { first_seq, end: end as u64, frames, next_seq, tail_crc: crc32fast::hash(tail(bytes, end)) }
    }

    /// Whether the mark holds for segment `first_seq`, whose bytes (header
    /// included, as far as the file goes) are `bytes`: it names it, its
    /// numbers agree (an active segment's frames are numbered on from its
    /// first), its end lies in it, the bytes before the end are the ones it
    /// recorded and those after it are zero.
    pub fn holds(&self, first_seq: u64, bytes: &[u8], header_len: usize) -> bool {
        let Ok(end) = usize::try_from(self.end) else { return false };
        self.first_seq == first_seq
            && first_seq.checked_add(self.frames) == Some(self.next_seq)
            && (header_len..=bytes.len()).contains(&end)
            && (end > header_len) == (self.frames > 0)
            && crc32fast::hash(tail(bytes, end)) == self.tail_crc
            && bytes[end..bytes.len().min(end.saturating_add(CHECKED_AFTER))].iter().all(|&b| b == 0)
    }
}

/// The [`CHECKED_BEFORE`] bytes before `end`, after the segment header.
fn tail(bytes: &[u8], end: usize) -> &[u8] {
    let from = end.saturating_sub(CHECKED_BEFORE).max(super::format::HEADER_LEN.min(end));
    bytes.get(from..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> Closed {
        Closed { first_seq: 397_011, end: 1_234_567, frames: 4_321, next_seq: 401_332, tail_crc: 0xdead_beef }
    }

    /// The layout is pinned by a golden file (docs/format.md, "The closed
    /// mark"): a mark written today reads the same on every later build.
    #[test]
    fn golden_mark() {
        let golden = include_bytes!("../../tests/fixtures/closed-v1.mark");
        if std::env::var_os("JOBLOG_REGENERATE").is_some_and(|v| v == "closed-v1") {
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/closed-v1.mark"), mark().encode())
                .unwrap();
        }
        assert_eq!(Closed::decode(golden), Some(mark()));
        assert_eq!(&mark().encode()[..], &golden[..]);
    }

    /// Any byte flipped, or any other length, is no mark.
    #[test]
    fn damaged_marks_are_refused() {
        let good = mark().encode();
        for i in 0..LEN {
            let mut b = good;
            b[i] ^= 0x40;
            assert_eq!(Closed::decode(&b), None, "byte {i} flipped");
        }
        assert_eq!(Closed::decode(&good[..LEN - 1]), None);
        assert_eq!(Closed::decode(&[&good[..], &[0]].concat()), None);
    }

    /// A mark holds only for its segment, as it was.
    #[test]
    fn a_mark_holds_for_its_segment_as_it_was() {
        let header = super::super::format::HEADER_LEN;
        let mut seg = vec![0u8; 64 << 10];
        seg[..header].fill(7);
        seg[header..9000].fill(1);
        let m = Closed::of(5, &seg, 9000, 3, 8);
        assert!(m.holds(5, &seg, header));
        assert!(!m.holds(6, &seg, header), "another segment");
        assert!(!Closed { next_seq: 9, ..m }.holds(5, &seg, header), "numbers that disagree");
        let mut appended = seg.clone();
        appended[9000] = 1;
        assert!(!m.holds(5, &appended, header), "bytes written after its end");
        let mut changed = seg.clone();
        changed[8999] = 2;
        assert!(!m.holds(5, &changed, header), "bytes before its end changed");
        assert!(!m.holds(5, &seg[..8000], header), "the file shorter than its end");
        let empty = Closed::of(5, &seg[..header], header, 0, 5);
        assert!(empty.holds(5, &seg[..header], header));
        assert!(!Closed { frames: 1, ..empty }.holds(5, &seg[..header], header), "frames but no bytes");
    }
}
