//! The manifest: the list of sealed segments, each with its true length and
//! a checksum of its whole content, kept outside the segments themselves;
//! and, from version 2, the list of cold segments (frames a freeze moved
//! out of the hot segments, `compact.rs`). Layout in `docs/format.md`
//! ("Manifest"); all integers little-endian.

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::fs::{self};
use std::io::Write;
use std::path::Path;

use super::error::{io_err, undecodable, LogError};
use super::private::{install_file, InstallError};

/// The first 8 bytes of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"JOBLOGMF";
/// The newest manifest format version this build writes and reads: 2 once
/// a cold segment was ever made, 1 (still read and written) before.
pub const MANIFEST_VERSION: u32 = 2;
/// The version of a manifest of hot segments only.
const V1: u32 = 1;
/// The manifest's file name in the log directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// The temporary file a new manifest is written to before it is renamed.
pub const MANIFEST_TMP: &str = "MANIFEST.tmp";
/// Why a manifest of a newer version is refused (see
/// [`LogError::NewerVersion`]).
pub const NEWER_MANIFEST: &str = "written by a newer joblog (manifest version above this build's)";

// Manifest header (32 bytes):
const M_MAGIC: usize = 0; //               [u8; 8]
const M_VERSION: usize = M_MAGIC + 8; //   u32
const M_COUNT: usize = M_VERSION + 4; //   u32 number of entries
const M_EPOCH: usize = M_COUNT + 4; //     u64 bumped by every rewrite
const M_NEXT_SEQ: usize = M_EPOCH + 8; //  u64 no segment may start below this
const M_HEADER_LEN: usize = M_NEXT_SEQ + 8;
// Version 2 goes on (16 more bytes):
const M_COLD_COUNT: usize = M_HEADER_LEN; //     u32 number of cold entries
const M_RESERVED: usize = M_COLD_COUNT + 4; //   u32 zero
const M_NEXT_COLD: usize = M_RESERVED + 4; //    u64 no cold segment takes an id below this again
const M_HEADER_LEN_V2: usize = M_NEXT_COLD + 8;

// Entry (40 bytes):
const E_FIRST_SEQ: usize = 0; //              u64 sequence number in the file name
const E_LAST_SEQ: usize = E_FIRST_SEQ + 8; // u64 last frame's sequence number
const E_LEN: usize = E_LAST_SEQ + 8; //       u64 bytes of the segment that hold data
const E_FRAMES: usize = E_LEN + 8; //         u64 frames in the segment
const E_CRC: usize = E_FRAMES + 8; //         u32 CRC32 of bytes [0, len) of the file
const E_GENERATION: usize = E_CRC + 4; //     u32 rewrite generation (file name suffix)
/// Bytes of one entry.
pub const ENTRY_LEN: usize = E_GENERATION + 4;
/// Bytes of one cold entry: its id (u64), then an entry as above.
pub const COLD_ENTRY_LEN: usize = 8 + ENTRY_LEN;

/// Trailer: u32 CRC32 of every byte before it.
const TRAILER_LEN: usize = 4;

/// The most entries a manifest may list (a 64 PiB log at 64 MiB segments),
/// hot and cold each.
pub const MAX_ENTRIES: usize = 1 << 30;

/// The bit that marks a segment key (`Position::segment`) as a cold
/// segment's id rather than a hot segment's first sequence number (those
/// stay far below it).
pub const COLD: u64 = 1 << 63;

/// One sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedEntry {
    /// Its first sequence number (in its file name).
    pub first_seq: u64,
    /// Its last frame's sequence number.
    pub last_seq: u64,
    /// Bytes of the file that hold data (header and frames); beyond is unused.
    pub len: u64,
    /// How many frames it holds.
    pub frames: u64,
    /// CRC32 of bytes `[0, len)` of the file.
    pub crc: u32,
    /// How many times compaction has rewritten it (its file name's suffix).
    pub generation: u32,
}

impl SealedEntry {
    /// The segment's file name.
    pub fn file_name(&self) -> String {
        segment_file_name(self.first_seq, self.generation)
    }
}

/// The file name of a segment: its first sequence number, zero-padded so
/// names sort in log order, and the generation once it has been rewritten.
pub fn segment_file_name(first_seq: u64, generation: u32) -> String {
    if generation == 0 {
        format!("{first_seq:020}.seg")
    } else {
        format!("{first_seq:020}-g{generation}.seg")
    }
}

/// The file name of cold segment `id` (a number below [`COLD`]).
pub fn cold_file_name(id: u64, generation: u32) -> String {
    if generation == 0 {
        format!("cold-{id:020}.seg")
    } else {
        format!("cold-{id:020}-g{generation}.seg")
    }
}

/// The file name of the segment a key names (see [`COLD`]).
pub fn file_name_of(key: u64, generation: u32) -> String {
    if key & COLD != 0 {
        cold_file_name(key & !COLD, generation)
    } else {
        segment_file_name(key, generation)
    }
}

/// The segment key a file name gives: a hot segment's first sequence
/// number, or [`COLD`] with a cold segment's id; and its generation.
/// `None` for any other name.
pub fn parse_any_segment_file_name(name: &str) -> Option<(u64, u32)> {
    match name.strip_prefix("cold-") {
        Some(rest) => parse_segment_file_name(rest).filter(|(id, _)| id & COLD == 0).map(|(id, g)| (id | COLD, g)),
        None => parse_segment_file_name(name),
    }
}

/// The inverse of [`segment_file_name`]: `00000000000000000042.seg` or
/// `00000000000000000042-g3.seg` → (42, 3); `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<(u64, u32)> {
    let stem = name.strip_suffix(".seg")?;
    let (digits, generation) = match stem.split_once("-g") {
        Some((d, g)) => (d, g.parse::<u32>().ok()?),
        None => (stem, 0),
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, generation))
}

/// One cold segment: frames of the log moved out of the hot segments by a
/// freeze, in sequence order (their numbers interleave with the hot
/// segments' and the other cold segments').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdEntry {
    /// Its id (below [`COLD`]; its key is `COLD | id`).
    pub id: u64,
    /// Its header's first sequence number, its last frame's, its length,
    /// frames, checksum and generation, as for a hot segment.
    pub sealed: SealedEntry,
}

impl ColdEntry {
    /// Its key in positions and generations: `COLD | id`.
    pub fn key(&self) -> u64 {
        COLD | self.id
    }

    /// The segment's file name.
    pub fn file_name(&self) -> String {
        cold_file_name(self.id, self.sealed.generation)
    }
}

/// The decoded manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Bumped by every rewrite of the manifest.
    pub epoch: u64,
    /// The sequence-number high-water mark at the last rewrite: sequence
    /// numbers below it are never handed out again, even when compaction
    /// has removed every segment that used them.
    pub next_seq: u64,
    /// The sealed segments, in log order, not overlapping.
    pub sealed: Vec<SealedEntry>,
    /// The cold segments, by id.
    pub cold: Vec<ColdEntry>,
    /// Ids below this were handed out to cold segments (0: none ever was,
    /// and the manifest is written in version 1).
    pub next_cold: u64,
}

impl Manifest {
    /// The manifest's bytes, checksum included (`docs/format.md`).
    /// Panics: past [`MAX_ENTRIES`] entries (a bug).
    pub fn encode(&self) -> Vec<u8> {
        let b = self.encode_unchecked();
        debug_assert_eq!(Self::decode(&b).as_ref(), Ok(self));
        b
    }

    /// [`Manifest::encode`] without the debug build's check that the bytes
    /// decode to the same (tests write invalid manifests so).
    fn encode_unchecked(&self) -> Vec<u8> {
        // A bug if not: a log never holds that many segments.
        let count = |n: usize| match u32::try_from(n) {
            Ok(count) if n <= MAX_ENTRIES => count,
            _ => panic!("a manifest holds at most {MAX_ENTRIES} entries of a kind, not {n}"),
        };
        let v2 = self.next_cold > 0;
        let mut b = Vec::with_capacity(
            M_HEADER_LEN_V2 + self.sealed.len() * ENTRY_LEN + self.cold.len() * COLD_ENTRY_LEN + TRAILER_LEN,
        );
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&(if v2 { MANIFEST_VERSION } else { V1 }).to_le_bytes());
        b.extend_from_slice(&count(self.sealed.len()).to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.next_seq.to_le_bytes());
        if v2 {
            b.extend_from_slice(&count(self.cold.len()).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&self.next_cold.to_le_bytes());
        } else {
            assert!(self.cold.is_empty(), "cold segments need a cold id high-water mark");
        }
        let put = |b: &mut Vec<u8>, e: &SealedEntry| {
            b.extend_from_slice(&e.first_seq.to_le_bytes());
            b.extend_from_slice(&e.last_seq.to_le_bytes());
            b.extend_from_slice(&e.len.to_le_bytes());
            b.extend_from_slice(&e.frames.to_le_bytes());
            b.extend_from_slice(&e.crc.to_le_bytes());
            b.extend_from_slice(&e.generation.to_le_bytes());
        };
        for e in &self.sealed {
            put(&mut b, e);
        }
        for c in &self.cold {
            b.extend_from_slice(&c.id.to_le_bytes());
            put(&mut b, &c.sealed);
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a manifest: magic, version, exact length for its
    /// entry counts (checked before anything is sized from a count),
    /// checksum, that hot entries are ordered and do not overlap, and that
    /// cold entries are ordered by id, below the id high-water mark.
    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        if bytes.len() < M_HEADER_LEN + TRAILER_LEN {
            return Err("manifest shorter than its header");
        }
        if bytes[M_MAGIC..M_VERSION] != MANIFEST_MAGIC {
            return Err("not a joblog manifest (bad magic)");
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        if crc32fast::hash(body) != u32_at(trailer, 0) {
            return Err("manifest checksum mismatch");
        }
        let version = u32_at(body, M_VERSION);
        if version > MANIFEST_VERSION {
            return Err(NEWER_MANIFEST);
        }
        if version != V1 && version != MANIFEST_VERSION {
            return Err("unsupported manifest version");
        }
        let count = u32_at(body, M_COUNT) as usize;
        let (cold_count, next_cold, header_len) = if version == V1 {
            (0, 0, M_HEADER_LEN)
        } else {
            if body.len() < M_HEADER_LEN_V2 {
                return Err("manifest shorter than its header");
            }
            if u32_at(body, M_RESERVED) != 0 {
                return Err("manifest header's reserved field is not zero");
            }
            let next_cold = u64_at(body, M_NEXT_COLD);
            if next_cold == 0 || next_cold > COLD {
                return Err("manifest of version 2 without a valid cold id high-water mark");
            }
            (u32_at(body, M_COLD_COUNT) as usize, next_cold, M_HEADER_LEN_V2)
        };
        let entries = &body[header_len..];
        if count > MAX_ENTRIES
            || cold_count > MAX_ENTRIES
            || entries.len() as u64 != count as u64 * ENTRY_LEN as u64 + cold_count as u64 * COLD_ENTRY_LEN as u64
        {
            return Err("manifest length does not match its entry count");
        }
        let (hot, cold_bytes) = entries.split_at(count * ENTRY_LEN);
        let mut sealed: Vec<SealedEntry> = Vec::with_capacity(count);
        for e in hot.chunks_exact(ENTRY_LEN) {
            let entry = entry_at(e)?;
            if entry.first_seq >= COLD {
                return Err("manifest entry with an impossible sequence range");
            }
            if sealed.last().is_some_and(|prev| entry.first_seq <= prev.last_seq) {
                return Err("manifest entries overlap or are out of order");
            }
            sealed.push(entry);
        }
        let next_seq = u64_at(body, M_NEXT_SEQ);
        if sealed.last().is_some_and(|e: &SealedEntry| e.last_seq >= next_seq) {
            return Err("manifest high-water mark below its last sealed segment");
        }
        let mut cold: Vec<ColdEntry> = Vec::with_capacity(cold_count);
        for e in cold_bytes.chunks_exact(COLD_ENTRY_LEN) {
            let entry = ColdEntry { id: u64_at(e, 0), sealed: entry_at(&e[8..])? };
            if entry.id == 0 || entry.id >= next_cold {
                return Err("manifest cold entry with an id outside the ids handed out");
            }
            if cold.last().is_some_and(|prev| entry.id <= prev.id) {
                return Err("manifest cold entries out of order");
            }
            if entry.sealed.last_seq >= next_seq {
                return Err("manifest high-water mark below a cold segment");
            }
            cold.push(entry);
        }
        Ok(Self { epoch: u64_at(body, M_EPOCH), next_seq, sealed, cold, next_cold })
    }

    /// Reads the manifest of `dir`; a missing file is an empty manifest.
    pub fn load(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(MANIFEST_FILE);
        match read_regular(&path) {
            Ok(bytes) => Self::decode(&bytes).map_err(|reason| undecodable(&path, 0, reason)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Replaces the manifest of `dir` atomically: write a temporary file,
    /// fsync it, rename it over the old one, fsync the directory. On an
    /// error, whether the new manifest may be the one in place all the same
    /// (it was renamed; only the directory's sync failed).
    pub(crate) fn store(&self, dir: &Path) -> Result<(), (LogError, bool)> {
        let tmp = dir.join(MANIFEST_TMP);
        let path = dir.join(MANIFEST_FILE);
        let bytes = self.encode();
        let write = || -> std::io::Result<()> {
            let mut f = super::private::create_file(&tmp, true)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        install_file(dir, &tmp, &path, write, || crate::crashpoint::reached("manifest")).map_err(|e| match e {
            InstallError::Write(e) => (io_err(&tmp, e), false),
            InstallError::Rename(e) => (io_err(&path, e), false),
            InstallError::SyncDir(e) => (io_err(dir, e), true),
        })
    }
}

pub(crate) use super::private::sync_dir;

/// One entry's fields (hot, or a cold one's after its id), checked alone.
fn entry_at(e: &[u8]) -> Result<SealedEntry, &'static str> {
    let entry = SealedEntry {
        first_seq: u64_at(e, E_FIRST_SEQ),
        last_seq: u64_at(e, E_LAST_SEQ),
        len: u64_at(e, E_LEN),
        frames: u64_at(e, E_FRAMES),
        crc: u32_at(e, E_CRC),
        generation: u32_at(e, E_GENERATION),
    };
    if entry.first_seq == 0 || entry.last_seq < entry.first_seq || entry.frames == 0 {
        return Err("manifest entry with an impossible sequence range");
    }
    if entry.frames > entry.last_seq - entry.first_seq + 1 {
        return Err("manifest entry with more frames than sequence numbers");
    }
    if entry.len < (super::format::HEADER_LEN as u64) {
        return Err("manifest entry shorter than a segment header");
    }
    Ok(entry)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    super::format::le_u64(b, at)
}

/// The manifest and the segment files of `seg_dir`, checked against each
/// other without opening the log: each problem found goes to `problem`
/// (for `joblog verify` of a store that does not open). Returns how many
/// segment files there are.
pub fn check_files(seg_dir: &Path, problem: &mut dyn FnMut(String)) -> usize {
    let mut files: Vec<(u64, String, u64)> = Vec::new();
    let mut cold_files: Vec<(String, u64)> = Vec::new();
    match fs::read_dir(seg_dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let len = e.metadata().map_or(0, |m| m.len());
                match parse_any_segment_file_name(&name) {
                    Some((key, _)) if key & COLD != 0 => cold_files.push((name, len)),
                    Some((first_seq, _)) => files.push((first_seq, name, len)),
                    None => {}
                }
            }
        }
        Err(e) => {
            problem(format!("{}: cannot be read: {e}", seg_dir.display()));
            return 0;
        }
    }
    files.sort();
    let path = seg_dir.join(MANIFEST_FILE);
    let manifest = match read_regular(&path) {
        Ok(bytes) => match Manifest::decode(&bytes) {
            Ok(m) => Some(m),
            Err(why) => {
                problem(format!(
                    "{}: damaged ({why}): which segments are sealed, with their lengths and checksums, is unknown",
                    path.display()
                ));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A store that never sealed a segment has no manifest yet: one
            // segment, starting at sequence number 1.
            if files.len() > 1 || files.iter().any(|f| f.0 > 1) {
                problem(format!(
                    "{} is missing: {} segment files are there, but not the list of the sealed ones, their lengths and checksums",
                    path.display(),
                    files.len()
                ));
            }
            None
        }
        Err(e) => {
            problem(format!("{}: cannot be read: {e}", path.display()));
            None
        }
    };
    let Some(m) = manifest else { return files.len() + cold_files.len() };
    let listed = m.sealed.iter().map(|e| (e.file_name(), e)).chain(m.cold.iter().map(|c| (c.file_name(), &c.sealed)));
    for (name, e) in listed {
        let path = seg_dir.join(&name);
        let found =
            files.iter().map(|f| (&f.1, f.2)).chain(cold_files.iter().map(|f| (&f.0, f.1))).find(|f| *f.0 == name);
        match found {
            None => problem(format!(
                "{}: missing: the manifest lists it (events {}..={}, {} frames)",
                path.display(),
                e.first_seq,
                e.last_seq,
                e.frames
            )),
            Some(f) if f.1 < e.len => problem(format!(
                "{}: short: {} bytes, the manifest says {} (events up to {} are in it)",
                path.display(),
                f.1,
                e.len,
                e.last_seq
            )),
            Some(_) => match crc_prefix(&path, e.len) {
                Ok(crc) if crc == e.crc => {}
                Ok(_) => problem(format!("{}: content differs from its manifest entry (checksum)", path.display())),
                Err(err) => problem(format!("{}: cannot be read: {err}", path.display())),
            },
        }
    }
    let listed: Vec<String> = m.sealed.iter().map(|e| e.file_name()).collect();
    let sealed_end = m.sealed.last().map_or(0, |e| e.last_seq);
    let next_after = (sealed_end + 1).max(m.next_seq).max(1);
    let unlisted: Vec<&str> =
        files.iter().filter(|f| !listed.contains(&f.1) && f.0 >= next_after).map(|f| f.1.as_str()).collect();
    if unlisted.len() > 1 {
        problem(format!(
            "{} segment files after the last sealed one ({}): only one can be active, the others are extra",
            unlisted.len(),
            unlisted.join(", ")
        ));
    }
    files.len() + cold_files.len()
}

fn crc_prefix(path: &Path, len: u64) -> std::io::Result<u32> {
    use std::io::Read;
    let mut h = crc32fast::Hasher::new();
    let mut f = std::fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Reads a whole file that must be a regular one: a FIFO or a device in its
/// place would block the reader or never end (refused as invalid data).
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            epoch: 3,
            next_seq: 31,
            sealed: vec![
                SealedEntry { first_seq: 1, last_seq: 10, len: 500, frames: 10, crc: 7, generation: 0 },
                SealedEntry { first_seq: 11, last_seq: 30, len: 900, frames: 12, crc: 9, generation: 2 },
            ],
            cold: vec![],
            next_cold: 0,
        }
    }

    /// With cold segments: their sequence numbers interleave with the hot
    /// ones' and each other's.
    fn sample_v2() -> Manifest {
        let mut m = sample();
        m.cold = vec![
            ColdEntry {
                id: 2,
                sealed: SealedEntry { first_seq: 3, last_seq: 25, len: 300, frames: 4, crc: 5, generation: 0 },
            },
            ColdEntry {
                id: 5,
                sealed: SealedEntry { first_seq: 2, last_seq: 29, len: 200, frames: 3, crc: 6, generation: 1 },
            },
        ];
        m.next_cold = 6;
        m
    }

    #[test]
    fn round_trips() {
        for m in [sample(), sample_v2(), Manifest { next_cold: 4, ..sample() }] {
            assert_eq!(Manifest::decode(&m.encode()), Ok(m));
        }
        assert_eq!(Manifest::decode(&Manifest::default().encode()), Ok(Manifest::default()));
    }

    #[test]
    fn is_written_in_version_1_until_a_cold_segment_was_made() {
        let v1 = sample().encode();
        assert_eq!(u32_at(&v1, M_VERSION), 1);
        assert_eq!(v1.len(), M_HEADER_LEN + 2 * ENTRY_LEN + TRAILER_LEN, "the layout of version 1, unchanged");
        let v2 = sample_v2().encode();
        assert_eq!(u32_at(&v2, M_VERSION), 2);
        assert_eq!(v2.len(), M_HEADER_LEN_V2 + 2 * ENTRY_LEN + 2 * COLD_ENTRY_LEN + TRAILER_LEN);
        // Every cold segment gone, the id high-water mark stays: ids are
        // never handed out twice.
        let gone = Manifest { cold: vec![], ..sample_v2() };
        assert_eq!(u32_at(&gone.encode(), M_VERSION), 2);
        assert_eq!(Manifest::decode(&gone.encode()).unwrap().next_cold, 6);
    }

    #[test]
    fn rejects_every_flip_and_truncation() {
        for bytes in [sample().encode(), sample_v2().encode()] {
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x01;
                assert!(Manifest::decode(&bad).is_err(), "flip at {i} accepted");
                assert!(Manifest::decode(&bytes[..i]).is_err(), "truncation at {i} accepted");
            }
        }
    }

    #[test]
    fn rejects_cold_entries_out_of_order_or_past_the_high_water_mark() {
        let mut m = sample_v2();
        m.cold.swap(0, 1);
        assert_eq!(Manifest::decode(&m.encode_unchecked()), Err("manifest cold entries out of order"));
        let m = Manifest { next_cold: 5, ..sample_v2() };
        assert_eq!(
            Manifest::decode(&m.encode_unchecked()),
            Err("manifest cold entry with an id outside the ids handed out")
        );
        let mut m = sample_v2();
        m.cold[0].sealed.last_seq = 31;
        assert_eq!(Manifest::decode(&m.encode_unchecked()), Err("manifest high-water mark below a cold segment"));
    }

    #[test]
    fn cold_file_names_are_told_apart_from_hot_ones() {
        assert_eq!(cold_file_name(7, 0), "cold-00000000000000000007.seg");
        assert_eq!(file_name_of(COLD | 7, 2), "cold-00000000000000000007-g2.seg");
        assert_eq!(file_name_of(7, 2), "00000000000000000007-g2.seg");
        assert_eq!(parse_any_segment_file_name("cold-00000000000000000007-g2.seg"), Some((COLD | 7, 2)));
        assert_eq!(parse_any_segment_file_name("00000000000000000007.seg"), Some((7, 0)));
        assert_eq!(parse_segment_file_name("cold-00000000000000000007.seg"), None, "never taken for a hot segment");
        assert_eq!(parse_any_segment_file_name("cold-7.seg"), None);
        assert_eq!(parse_any_segment_file_name("cold-09999999999999999999.seg"), None, "an id at or past COLD");
    }

    #[test]
    fn file_names_sort_in_log_order() {
        assert_eq!(segment_file_name(1, 0), "00000000000000000001.seg");
        assert_eq!(segment_file_name(12, 3), "00000000000000000012-g3.seg");
        assert!(segment_file_name(9, 0) < segment_file_name(10, 0));
    }
}
