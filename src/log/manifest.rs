//! The manifest: the list of sealed segments, each with its true length and
//! a checksum of its whole content, kept outside the segments themselves.
//! Layout in `docs/format.md` ("Manifest"); all integers little-endian.

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
/// The manifest format version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
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

// Entry (40 bytes):
const E_FIRST_SEQ: usize = 0; //              u64 sequence number in the file name
const E_LAST_SEQ: usize = E_FIRST_SEQ + 8; // u64 last frame's sequence number
const E_LEN: usize = E_LAST_SEQ + 8; //       u64 bytes of the segment that hold data
const E_FRAMES: usize = E_LEN + 8; //         u64 frames in the segment
const E_CRC: usize = E_FRAMES + 8; //         u32 CRC32 of bytes [0, len) of the file
const E_GENERATION: usize = E_CRC + 4; //     u32 rewrite generation (file name suffix)
/// Bytes of one entry.
pub const ENTRY_LEN: usize = E_GENERATION + 4;

/// Trailer: u32 CRC32 of every byte before it.
const TRAILER_LEN: usize = 4;

/// The most entries a manifest may list (a 64 PiB log at 64 MiB segments).
pub const MAX_ENTRIES: usize = 1 << 30;

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
}

impl Manifest {
    /// The manifest's bytes, checksum included (`docs/format.md`).
    /// Panics: past [`MAX_ENTRIES`] entries (a bug).
    pub fn encode(&self) -> Vec<u8> {
        // A bug if not: a log never holds that many sealed segments.
        let count = match u32::try_from(self.sealed.len()) {
            Ok(count) if self.sealed.len() <= MAX_ENTRIES => count,
            _ => panic!("a manifest holds at most {MAX_ENTRIES} entries, not {}", self.sealed.len()),
        };
        let mut b = Vec::with_capacity(M_HEADER_LEN + self.sealed.len() * ENTRY_LEN + TRAILER_LEN);
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&self.next_seq.to_le_bytes());
        for e in &self.sealed {
            b.extend_from_slice(&e.first_seq.to_le_bytes());
            b.extend_from_slice(&e.last_seq.to_le_bytes());
            b.extend_from_slice(&e.len.to_le_bytes());
            b.extend_from_slice(&e.frames.to_le_bytes());
            b.extend_from_slice(&e.crc.to_le_bytes());
            b.extend_from_slice(&e.generation.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(Self::decode(&b).as_ref(), Ok(self));
        b
    }

    /// Decodes and checks a manifest: magic, version, exact length for its
    /// entry count (checked before anything is sized from the count),
    /// checksum, and that entries are ordered and do not overlap.
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
        if u32_at(body, M_VERSION) > MANIFEST_VERSION {
            return Err(NEWER_MANIFEST);
        }
        if u32_at(body, M_VERSION) != MANIFEST_VERSION {
            return Err("unsupported manifest version");
        }
        let count = u32_at(body, M_COUNT) as usize;
        let entries = &body[M_HEADER_LEN..];
        if entries.len() % ENTRY_LEN != 0 || entries.len() / ENTRY_LEN != count || count > MAX_ENTRIES {
            return Err("manifest length does not match its entry count");
        }
        let mut sealed = Vec::with_capacity(count);
        for e in entries.chunks_exact(ENTRY_LEN) {
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
            if let Some(prev) = sealed.last() {
                let prev: &SealedEntry = prev;
                if entry.first_seq <= prev.last_seq {
                    return Err("manifest entries overlap or are out of order");
                }
            }
            sealed.push(entry);
        }
        let next_seq = u64_at(body, M_NEXT_SEQ);
        if sealed.last().is_some_and(|e: &SealedEntry| e.last_seq >= next_seq) {
            return Err("manifest high-water mark below its last sealed segment");
        }
        Ok(Self { epoch: u64_at(body, M_EPOCH), next_seq, sealed })
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
    /// fsync it, rename it over the old one, fsync the directory.
    pub fn store(&self, dir: &Path) -> Result<(), LogError> {
        let tmp = dir.join(MANIFEST_TMP);
        let path = dir.join(MANIFEST_FILE);
        let bytes = self.encode();
        let write = || -> std::io::Result<()> {
            let mut f = super::private::create_file(&tmp, true)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        install_file(dir, &tmp, &path, write, || crate::crashpoint::reached("manifest")).map_err(|e| match e {
            InstallError::Write(e) => io_err(&tmp, e),
            InstallError::Rename(e) => io_err(&path, e),
            InstallError::SyncDir(e) => io_err(dir, e),
        })
    }
}

pub(crate) use super::private::sync_dir;

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
    match fs::read_dir(seg_dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some((first_seq, _)) = parse_segment_file_name(&name) {
                    let len = e.metadata().map_or(0, |m| m.len());
                    files.push((first_seq, name, len));
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
    let Some(m) = manifest else { return files.len() };
    for e in &m.sealed {
        let name = e.file_name();
        let path = seg_dir.join(&name);
        match files.iter().find(|f| f.1 == name) {
            None => problem(format!(
                "{}: missing: the manifest lists it (events {}..={}, {} frames)",
                path.display(),
                e.first_seq,
                e.last_seq,
                e.frames
            )),
            Some(f) if f.2 < e.len => problem(format!(
                "{}: short: {} bytes, the manifest says {} (events up to {} are in it)",
                path.display(),
                f.2,
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
    files.len()
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
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()), Ok(m));
        assert_eq!(Manifest::decode(&Manifest::default().encode()), Ok(Manifest::default()));
    }

    #[test]
    fn rejects_every_flip_and_truncation() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(Manifest::decode(&bad).is_err(), "flip at {i} accepted");
            assert!(Manifest::decode(&bytes[..i]).is_err(), "truncation at {i} accepted");
        }
    }

    #[test]
    fn file_names_sort_in_log_order() {
        assert_eq!(segment_file_name(1, 0), "00000000000000000001.seg");
        assert_eq!(segment_file_name(12, 3), "00000000000000000012-g3.seg");
        assert!(segment_file_name(9, 0) < segment_file_name(10, 0));
    }
}
