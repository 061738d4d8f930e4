//! Checkpoints: the projection saved to a checksummed file at a log
//! position, so opening replays only the tail. A snapshot is a cache, never
//! the truth: one that is missing, damaged, from another version, or ahead
//! of the log is ignored, and the log is replayed instead.
//!
//! File `snapshot-{last_seq:020}.bin` in `DATA/snapshots/`, little-endian:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `JOBLOGSN` |
//! | 8 | 2 | snapshot format version (10; 6 to 9 are read) |
//! | 10 | 2 | codec version (`codec::CODEC_VERSION`) |
//! | 12 | 4 | reserved, 0 |
//! | 16 | 8 | last_seq: the last event folded in |
//! | 24 | 8 | length of the body (format 9: of its head part) |
//! | 32 | 4 | CRC32 of the body (format 9: of its head part) |
//! | 36 | 4 | CRC32 of bytes 0..36 |
//! | 40 | … | format 9: the head part (the runs, the image of the hot rows, segments, directory, workflows, the store's policy, bearer tokens; format 10: then where the last event is in the log), then a 16-byte frame (length, CRC32, its own CRC32) and the hot part (rows, strings, event chain, garbage, deletions); before: one body of all of it (docs/format.md, "Checkpoints") |

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;

use std::fs::{self};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::intern::Interner;
use super::{DeletionRecord, IdDeletionRecord, Pos, Projection, Row};
use crate::codec::{self, CodecError};
use crate::domain::{Directory, StorePolicy, Timestamp, Tokens, WorkflowDefinition};
use crate::error::Error;
use crate::log::private::{install_file, InstallError};
use crate::log::{Generations, Position};

/// How a checkpoint ahead of the log is named in the notes of `load_snapshot`.
const AHEAD_OF_THE_LOG: &str = "ahead of the log";

const MAGIC: [u8; 8] = *b"JOBLOGSN";
/// 3: the directory maps OS users; 4: the store's policy; 5: bearer
/// tokens; 6: the deletions by id (older snapshots are skipped: replay);
/// 7: the cold runs it relies on, before the body; 8: rows and the event
/// chain in a fixed layout (`RowTable`, `EventTable`); 9: the body in two
/// parts, each with its own checksum (a head part that a reading command
/// reads alone, naming the image of the hot rows it maps, then the hot
/// part); 10: the head part ends with where the last event is in the log
/// (a fold of the events after it starts there). Versions 6 to 9 are read.
const VERSION: u16 = 10;
/// The frame before format 9's hot part: its length (u64), its CRC32,
/// and the CRC32 of those 12 bytes.
const FRAME_LEN: usize = 16;

/// What a checkpoint says of the cold tier (format 7, before the body).
#[derive(Serialize, Deserialize)]
struct Tiers {
    /// The cold runs, oldest first, by id (`cold-{id:020}.run` next to it).
    cold: Vec<u64>,
    /// The id the next run gets.
    next_run: u64,
    /// For each run, the rows deletions took since it was written.
    gone: Vec<Vec<u32>>,
}
const HEADER_LEN: usize = 40;
/// Snapshots kept: the newest and the one before it.
pub(crate) const KEEP: usize = 2;

/// Format 9's head part (after [`Tiers`]): what a reading command needs
/// besides the runs.
#[derive(Serialize)]
struct HeadRef<'a> {
    /// The run holding the image of the hot rows (`Projection::write_hot_run`).
    hot_run: u64,
    segments: &'a Vec<u64>,
    generations: Vec<Option<u32>>,
    directory: &'a Option<Directory>,
    workflows: &'a BTreeMap<String, WorkflowDefinition>,
    policy: &'a StorePolicy,
    tokens: &'a Tokens,
    last_seq: u64,
    last_at: Option<Timestamp>,
}

/// [`HeadRef`] as read: whole, or (`W` = [`Unread`]) as a reading
/// command needs it.
#[derive(Deserialize)]
struct Head<W = BTreeMap<String, WorkflowDefinition>> {
    hot_run: u64,
    segments: Vec<u64>,
    generations: Vec<Option<u32>>,
    directory: Option<Directory>,
    workflows: W,
    policy: StorePolicy,
    tokens: Tokens,
    last_seq: u64,
    last_at: Option<Timestamp>,
    /// Not a field of the struct on disk: what follows it in format 10's
    /// head part ([`CheckpointFile::head_part`]).
    #[serde(skip)]
    last_position: Option<Position>,
}

/// Format 9's hot part: the hot rows and what only a writer needs.
#[derive(Serialize)]
struct HotRef<'a> {
    rows: RowTable<&'a [Row]>,
    strings: &'a Interner,
    events: EventTable<&'a [(Pos, u32)]>,
    garbage: &'a BTreeMap<u64, Vec<u64>>,
    deletions: &'a Vec<DeletionRecord>,
    deletions_by_id: &'a Vec<IdDeletionRecord>,
}

/// [`HotRef`] as read: its rows and event chain left as the file's bytes
/// (`RowTable<&[u8]>`, `EventTable<&[u8]>`), decoded by
/// [`Projection::from_body`].
#[derive(Deserialize, Default)]
struct Hot<R = RowTable<Vec<Row>>, E = EventTable<Vec<(Pos, u32)>>> {
    rows: R,
    strings: Interner,
    events: E,
    garbage: BTreeMap<u64, Vec<u64>>,
    deletions: Vec<DeletionRecord>,
    deletions_by_id: Vec<IdDeletionRecord>,
}

/// The workflow definitions of a head part walked over in place, not
/// built: a store may define thousands, and no read of a job needs them.
/// Each pair is read as its key and a [`WorkflowDefinition`]'s fields in
/// their order (the codec writes a struct as its fields), borrowed.
struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Walk;
        impl<'de> serde::de::Visitor<'de> for Walk {
            type Value = Unread;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("workflow definitions")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Unread, M::Error> {
                while m.next_entry::<&str, (&str, &str, &str, bool)>()?.is_some() {}
                Ok(Unread)
            }
        }
        d.deserialize_map(Walk)
    }
}

/// What a head part read without its workflow definitions holds of them:
/// none.
impl From<Unread> for BTreeMap<String, WorkflowDefinition> {
    fn from(_: Unread) -> Self {
        BTreeMap::new()
    }
}

impl<W: Into<BTreeMap<String, WorkflowDefinition>>> Head<W> {
    /// The head part and hot part as one body, the form every format's
    /// checkpoint is loaded from.
    fn with<R, E>(self, hot: Hot<R, E>) -> Body<R, E> {
        Body {
            rows: hot.rows,
            strings: hot.strings,
            events: hot.events,
            segments: self.segments,
            generations: self.generations,
            garbage: hot.garbage,
            deletions: hot.deletions,
            deletions_by_id: hot.deletions_by_id,
            directory: self.directory,
            workflows: self.workflows.into(),
            policy: self.policy,
            tokens: self.tokens,
            last_seq: self.last_seq,
            last_at: self.last_at,
            last_position: self.last_position,
        }
    }
}

/// A checkpoint's body as read: `Body` in format 8, `Body<Vec<Row>,
/// Vec<(Pos, u32)>>` (each row and chain entry through the codec) before.
#[derive(Deserialize)]
struct Body<R = RowTable<Vec<Row>>, E = EventTable<Vec<(Pos, u32)>>> {
    rows: R,
    strings: Interner,
    events: E,
    segments: Vec<u64>,
    /// Each segment's rewrite generation when the checkpoint was taken
    /// (`None`: compaction had removed it): positions are only valid in
    /// exactly those files.
    generations: Vec<Option<u32>>,
    garbage: BTreeMap<u64, Vec<u64>>,
    deletions: Vec<DeletionRecord>,
    deletions_by_id: Vec<IdDeletionRecord>,
    directory: Option<Directory>,
    workflows: BTreeMap<String, WorkflowDefinition>,
    policy: StorePolicy,
    tokens: Tokens,
    last_seq: u64,
    last_at: Option<Timestamp>,
    /// Format 10 on, after the head (not in any body).
    #[serde(skip)]
    last_position: Option<Position>,
}

/// The job rows as one byte string of `ROW_BYTES`-byte records (format 8,
/// docs/format.md "Checkpoints"): read back with one allocation of the
/// right size and fixed offsets, where the codec's row by row decoding
/// grew the vector step by step and was most of an open.
#[derive(Default)]
struct RowTable<R>(R);
/// The event chain as one byte string of 12-byte records: the frame's
/// segment ordinal and offset, the job's previous entry.
#[derive(Default)]
struct EventTable<E>(E);

const ROW_BYTES: usize = 104;
const EVENT_BYTES: usize = 12;

/// Little-endian integers at fixed offsets of a record.
fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

impl Row {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        for t in [self.createdon, self.startedon, self.completedon, self.modifiedon, self.postponeuntil] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        let (syms, counts) = (
            [
                self.operationtype,
                self.owner,
                self.owningbusinessunit,
                self.workflow,
                self.regarding,
                self.dependencytoken,
            ],
            [
                self.retrycount,
                self.errorcode.cast_unsigned(),
                self.executiontimespan_ms,
                self.last_event,
                self.message_event,
            ],
        );
        for n in syms.into_iter().chain(counts) {
            out.extend_from_slice(&n.to_le_bytes());
        }
        // Codes are below 256 (the domain's table); checked on reading.
        let code = |c: u32| u8::try_from(c).unwrap_or(u8::MAX);
        out.extend_from_slice(&[
            code(self.status.statecode()),
            code(self.status.statuscode()),
            u8::from(self.deleted),
            0,
        ]);
    }

    fn get(b: &[u8]) -> Result<Row, String> {
        let i64_at = |at| i64::from_le_bytes(le(b, at));
        let u32_at = |at| u32::from_le_bytes(le(b, at));
        let status =
            crate::domain::Status::from_codes(u32::from(b[100]), u32::from(b[101])).map_err(|e| e.to_string())?;
        if b[102] > 1 || b[103] != 0 {
            return Err("a row's flags are not 0 or 1".into());
        }
        Ok(Row {
            id: uuid::Uuid::from_bytes(le(b, 0)),
            createdon: i64_at(16),
            startedon: i64_at(24),
            completedon: i64_at(32),
            modifiedon: i64_at(40),
            postponeuntil: i64_at(48),
            operationtype: u32_at(56),
            owner: u32_at(60),
            owningbusinessunit: u32_at(64),
            workflow: u32_at(68),
            regarding: u32_at(72),
            dependencytoken: u32_at(76),
            retrycount: u32_at(80),
            errorcode: u32_at(84).cast_signed(),
            executiontimespan_ms: u32_at(88),
            last_event: u32_at(92),
            first_event: u32::MAX,
            message_event: u32_at(96),
            status,
            deleted: b[102] == 1,
        })
    }
}

impl Serialize for RowTable<&[Row]> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.len() * ROW_BYTES);
        for r in self.0 {
            r.put(&mut out);
        }
        s.serialize_bytes(&out)
    }
}

impl Serialize for EventTable<&[(Pos, u32)]> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.len() * EVENT_BYTES);
        for (pos, prev) in self.0 {
            for n in [pos.segment, pos.offset, *prev] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        s.serialize_bytes(&out)
    }
}

/// Reads a byte string of `size`-byte records with `get`.
struct Records<T> {
    size: usize,
    get: fn(&[u8]) -> Result<T, String>,
}

impl<T> serde::de::Visitor<'_> for Records<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a byte string of {}-byte records", self.size)
    }

    fn visit_bytes<Er: serde::de::Error>(self, b: &[u8]) -> Result<Vec<T>, Er> {
        records(b, self.size, self.get).map_err(Er::custom)
    }
}

/// The `size`-byte records of `b`, each read with `get`.
fn records<T>(b: &[u8], size: usize, get: fn(&[u8]) -> Result<T, String>) -> Result<Vec<T>, String> {
    if !b.len().is_multiple_of(size) {
        return Err(format!("{} bytes are not whole {size}-byte records", b.len()));
    }
    // Sized once (a collect through `Result` would grow it step by step),
    // its pages made present ahead in large steps rather than one fault
    // each.
    let mut out = Vec::with_capacity(b.len() / size);
    for r in b.chunks_exact(size) {
        crate::sys::push_populated(&mut out, get(r)?);
    }
    Ok(out)
}

/// An entry of the event chain: the frame's segment ordinal and offset,
/// the job's previous entry.
fn event_get(b: &[u8]) -> Result<(Pos, u32), String> {
    let n = |at| u32::from_le_bytes(le(b, at));
    Ok((Pos { segment: n(0), offset: n(4) }, n(8)))
}

/// The rows or the event chain of a body as it was read: decoded already
/// (before format 9, through the codec), or the file's bytes (format 9
/// on), decoded when [`Projection::from_body`] asks, on a core of its own.
trait Table<T>: Send {
    /// How many entries it holds.
    fn entries(&self) -> usize;
    /// Its entries, decoded.
    fn decoded(self) -> Result<Vec<T>, String>;
}

impl Table<Row> for RowTable<Vec<Row>> {
    fn entries(&self) -> usize {
        self.0.len()
    }
    fn decoded(self) -> Result<Vec<Row>, String> {
        Ok(self.0)
    }
}

impl Table<(Pos, u32)> for EventTable<Vec<(Pos, u32)>> {
    fn entries(&self) -> usize {
        self.0.len()
    }
    fn decoded(self) -> Result<Vec<(Pos, u32)>, String> {
        Ok(self.0)
    }
}

impl Table<Row> for RowTable<&[u8]> {
    fn entries(&self) -> usize {
        self.0.len() / ROW_BYTES
    }
    fn decoded(self) -> Result<Vec<Row>, String> {
        records(self.0, ROW_BYTES, Row::get)
    }
}

impl Table<(Pos, u32)> for EventTable<&[u8]> {
    fn entries(&self) -> usize {
        self.0.len() / EVENT_BYTES
    }
    fn decoded(self) -> Result<Vec<(Pos, u32)>, String> {
        records(self.0, EVENT_BYTES, event_get)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RowTable<&'a [u8]> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&[u8]>::deserialize(d).map(RowTable)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EventTable<&'a [u8]> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&[u8]>::deserialize(d).map(EventTable)
    }
}

impl<'de> Deserialize<'de> for RowTable<Vec<Row>> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(Records { size: ROW_BYTES, get: Row::get }).map(RowTable)
    }
}

impl<'de> Deserialize<'de> for EventTable<Vec<(Pos, u32)>> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(Records { size: EVENT_BYTES, get: event_get }).map(EventTable)
    }
}

/// A body of formats 6 and 7: rows and chain entries through the codec.
type OldBody = Body<Vec<Row>, Vec<(Pos, u32)>>;

impl OldBody {
    /// A body of formats 6 and 7 as format 8's.
    fn into_tables(self) -> Body {
        let Body {
            rows,
            strings,
            events,
            segments,
            generations,
            garbage,
            deletions,
            deletions_by_id,
            directory,
            workflows,
            policy,
            tokens,
            last_seq,
            last_at,
            last_position,
        } = self;
        Body {
            rows: RowTable(rows),
            strings,
            events: EventTable(events),
            segments,
            generations,
            garbage,
            deletions,
            deletions_by_id,
            directory,
            workflows,
            policy,
            tokens,
            last_seq,
            last_at,
            last_position,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A writer that checksums what passes through it.
struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(last_seq: u64, body_len: u64, body_crc: u32) -> [u8; HEADER_LEN] {
    header_of(VERSION, last_seq, body_len, body_crc)
}

fn header_of(version: u16, last_seq: u64, body_len: u64, body_crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h[10..12].copy_from_slice(&codec::CODEC_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&last_seq.to_le_bytes());
    h[24..32].copy_from_slice(&body_len.to_le_bytes());
    h[32..36].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The frame before format 9's hot part.
fn frame(len: u64, crc: u32) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..8].copy_from_slice(&len.to_le_bytes());
    f[8..12].copy_from_slice(&crc.to_le_bytes());
    let own = crc32fast::hash(&f[..12]);
    f[12..16].copy_from_slice(&own.to_le_bytes());
    f
}

/// Encodes `value` at the offset of `file` (at `path`): its length and
/// CRC32.
fn write_part(file: &fs::File, path: &Path, value: &impl Serialize) -> Result<(u64, u32), Error> {
    let mut w = Crc { inner: BufWriter::with_capacity(1 << 20, file), hasher: crc32fast::Hasher::new(), len: 0 };
    codec::encode_to(value, &mut w)?;
    w.flush().map_err(io(path))?;
    Ok((w.len, w.hasher.finalize()))
}

/// The bytes of a checkpoint file with a valid header and checksums, for
/// tests and fuzzing of the loader: of format `version`, holding `head` as
/// its head part and `hot` as its hot part (with a valid frame; formats 9
/// on), or with no `hot`, `head` as its body (formats 8 and before).
pub fn checkpoint_file_bytes(version: u16, last_seq: u64, head: &[u8], hot: Option<&[u8]>) -> Vec<u8> {
    let mut file = header_of(version, last_seq, head.len() as u64, crc32fast::hash(head)).to_vec();
    file.extend_from_slice(head);
    if let Some(hot) = hot {
        file.extend_from_slice(&frame(hot.len() as u64, crc32fast::hash(hot)));
        file.extend_from_slice(hot);
    }
    file
}

/// The fields of a valid header: (last_seq, body_len, body_crc).
fn parse_header(h: &[u8; HEADER_LEN]) -> Option<(u64, u64, u32, u16)> {
    // Little-endian integers at fixed offsets of the 40-byte header.
    let u16_at = |at: usize| u16::from_le_bytes([h[at], h[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let ok = h[0..8] == MAGIC
        && u32_at(36) == crc32fast::hash(&h[..36])
        && (6..=VERSION).contains(&u16_at(8))
        && u16_at(10) == codec::CODEC_VERSION
        && u32_at(12) == 0;
    ok.then(|| (u64_at(16), u64_at(24), u32_at(32), u16_at(8)))
}

fn file_name(last_seq: u64) -> String {
    format!("snapshot-{last_seq:020}.bin")
}

/// Snapshot files in `dir`, newest first.
fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name.strip_prefix("snapshot-")?.strip_suffix(".bin")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out
}

impl Projection {
    /// Writes a snapshot of this state into `dir` (write a temporary file,
    /// fsync, rename, fsync the directory) and removes all but the newest
    /// `keep` (at least this one; `KEEP` usually). `live` is the log's
    /// segments (key → generation) as this state's positions refer to
    /// them. Returns its path.
    ///
    /// `hot_run`: the run already written in `dir` holding the image of
    /// this state's hot rows ([`Projection::write_hot_run`]).
    pub(crate) fn save_snapshot(
        &self,
        dir: &Path,
        live: &Generations,
        keep: usize,
        hot_run: u64,
    ) -> Result<PathBuf, Error> {
        crate::log::private::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(file_name(self.last_seq));
        let tmp = dir.join(format!("{}.tmp", file_name(self.last_seq)));
        let write = || -> Result<(), Error> {
            let mut file = crate::log::private::create_file(&tmp, true).map_err(io(&tmp))?;
            file.write_all(&[0u8; HEADER_LEN]).map_err(io(&tmp))?;
            let head = HeadRef {
                hot_run,
                segments: &self.segments,
                generations: self.segments.iter().map(|s| live.get(s).copied()).collect(),
                directory: &self.directory,
                workflows: &self.workflows,
                policy: &self.policy,
                tokens: &self.tokens,
                last_seq: self.last_seq,
                last_at: self.last_at,
            };
            let tiers = Tiers {
                cold: self.cold.iter().map(|r| r.id()).collect(),
                next_run: self.next_run,
                gone: self.cold.iter().map(|c| c.gone.iter().collect()).collect(),
            };
            // Format 10: the head, then where its last event is.
            let end = self.last_position.map(|p| (p.segment, p.offset));
            let (head_len, head_crc) = write_part(&file, &tmp, &(tiers, head, end))?;
            file.write_all(&[0u8; FRAME_LEN]).map_err(io(&tmp))?;
            let hot = HotRef {
                rows: RowTable(&self.rows),
                strings: &self.strings,
                events: EventTable(&self.events),
                garbage: &self.garbage,
                deletions: &self.deletions,
                deletions_by_id: &self.deletions_by_id,
            };
            let (hot_len, hot_crc) = write_part(&file, &tmp, &hot)?;
            use std::os::unix::fs::FileExt;
            let frame_at = HEADER_LEN as u64 + head_len;
            file.write_all_at(&frame(hot_len, hot_crc), frame_at).map_err(io(&tmp))?;
            file.write_all_at(&header(self.last_seq, head_len, head_crc), 0).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))
        };
        install_file(dir, &tmp, &path, write, || crate::crashpoint::reached("checkpoint")).map_err(|e| match e {
            InstallError::Write(e) => e,
            InstallError::Rename(e) => io(&path)(e),
            InstallError::SyncDir(e) => io(dir)(e),
        })?;
        for (_, old) in list(dir).into_iter().skip(keep.max(1)) {
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Removes the cold runs in `dir` that no checkpoint there names (a
    /// run merged, thawed or dropped since, or left by a crash before its
    /// checkpoint was written). Best effort: a run left behind costs space,
    /// one removed too early only makes a checkpoint unusable.
    pub(crate) fn remove_unnamed_runs(&self, dir: &Path) {
        let mut by_checkpoints = std::collections::BTreeSet::new();
        for (_, path) in list(dir) {
            match runs_named(&path) {
                Some(ids) => by_checkpoints.extend(ids),
                // A checkpoint whose runs cannot be read: remove nothing.
                None => return,
            }
        }
        for (id, path) in run_files(dir) {
            if self.cold.iter().any(|r| r.id() == id) || by_checkpoints.contains(&id) {
                continue;
            }
            // A copy standing in for a run a checkpoint names stays too.
            if super::cold::header_of(&path).and_then(|h| h.1).is_some_and(|r| by_checkpoints.contains(&r)) {
                continue;
            }
            let _ = fs::remove_file(path);
        }
    }

    /// Removes every snapshot in `dir` (after a compaction made them stale).
    pub(crate) fn remove_snapshots(dir: &Path) -> Result<(), Error> {
        for (_, path) in list(dir) {
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Whether a note of [`Projection::load_snapshot`] says a checkpoint is
    /// ahead of the log: proof that events were lost from the log's end.
    pub fn is_ahead_of_the_log(note: &str) -> bool {
        note.contains(AHEAD_OF_THE_LOG)
    }

    /// The state a reading command needs, without the hot rows in memory
    /// (their image in a run is mapped instead: [`Projection::write_hot_run`]),
    /// from the newest checkpoint in `dir` when it is of format 9 on and
    /// holds no event the log does not (`log_next_seq`); `None` otherwise,
    /// or when anything in it does not check (an open then loads a
    /// checkpoint whole, or replays). The events after it are the
    /// caller's to fold in ([`Projection::apply`] moves each job they
    /// touch out of its run, alone). Such a state answers the reads of
    /// one job and the views (`engine/views.rs`), nothing else: it holds
    /// no workflow definition, and a job moved out of a run no dependency
    /// token.
    pub(crate) fn load_views(dir: &Path, log_next_seq: u64, live: &Generations) -> Option<Projection> {
        let (seq, path) = list(dir).into_iter().next()?;
        if seq >= log_next_seq {
            return None;
        }
        load_views(&path, live).ok().filter(|p| p.last_seq == seq)
    }

    /// Every page of the images of their hot rows that the checkpoints in
    /// `dir` name (format 9 on), checked (`joblog verify`): a problem for
    /// each that is there but damaged or not an image. One that is missing
    /// is none: an image is a cache a checkpoint may lack (its writing
    /// failed, or a crash came first), and the reads then open the engine.
    pub(crate) fn check_images(dir: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for (_, path) in list(dir) {
            let Ok(file) = CheckpointFile::open(&path) else { continue };
            let Ok((_, head)) = file.decode_head() else { continue };
            let image = dir.join(super::cold::file_name(head.hot_run));
            if !image.exists() {
                continue;
            }
            let checked = super::cold::ColdRun::open(&image).and_then(|run| {
                if !run.holds_open() {
                    return Err(Error::corrupt("a run of Completed jobs, not an image of hot rows"));
                }
                run.check_all()
            });
            if let Err(e) = checked {
                problems.push(format!(
                    "{}: the image of the hot rows of {} does not check: {e}",
                    image.display(),
                    path.display()
                ));
            }
        }
        problems
    }

    /// Loads the newest valid snapshot in `dir` whose last event is before
    /// `log_next_seq` and whose segments are the log's (`live`: first
    /// sequence number → generation; a compaction since makes a checkpoint
    /// stale); `None` when there is none. Damaged ones are skipped (and
    /// named in the returned list), never trusted.
    pub fn load_snapshot(dir: &Path, log_next_seq: u64, live: &Generations) -> (Option<Projection>, Vec<String>) {
        let mut skipped = Vec::new();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        for (seq, path) in list(dir) {
            if seq >= log_next_seq {
                skipped.push(format!(
                    "{}: {AHEAD_OF_THE_LOG} (a checkpoint of the state at sequence number {seq}, but the log's next sequence number is {log_next_seq}): events that were once in the log are missing",
                    path.display()
                ));
                continue;
            }
            match load(&path, live) {
                Ok(p) if p.last_seq == seq => return (Some(p), skipped),
                Ok(_) => skipped.push(format!("{}: its name and content disagree", path.display())),
                Err(e) => skipped.push(format!("{}: {e}", path.display())),
            }
        }
        (None, skipped)
    }
}

/// The cold runs checkpoint `path` names (`None` when they cannot be
/// read).
fn runs_named(path: &Path) -> Option<Vec<u64>> {
    let file = CheckpointFile::open(path).ok()?;
    if file.version < 7 {
        return Some(Vec::new());
    }
    // The runs are at the start of the body (format 9: of its head part),
    // with every run's deleted rows; the image of the hot rows comes next.
    let first = file.first_part().ok()?;
    if file.version < 9 {
        return Some(codec::decode_prefix_large::<Tiers>(first).ok()?.0.cold);
    }
    let (tiers, head) = file.head_part::<Unread>(first).ok()?;
    let mut runs = tiers.cold;
    runs.push(head.hot_run);
    Some(runs)
}

/// Whether positions into segment `key` as of `generation` still hold: it
/// is in the log in that generation, or it is a cold segment the log no
/// longer holds. A cold segment is removed only once every event in it is
/// a deleted job's (its id is never used again), so what points into it
/// is a deleted job's; a checkpoint saved before the removal deletes those
/// jobs again when the deletion is replayed after it.
fn current(live: &Generations, key: u64, generation: u32) -> bool {
    match live.get(&key) {
        Some(&g) => g == generation,
        None => key & crate::log::COLD != 0,
    }
}

/// A checkpoint file, mapped, its header checked.
struct CheckpointFile {
    path: PathBuf,
    map: crate::sys::map::SegmentMap,
    version: u16,
    /// The body (before format 9), or the head part (format 9 on).
    body_len: usize,
    body_crc: u32,
}

impl CheckpointFile {
    fn corrupt(&self, why: &str) -> Error {
        corrupt_in(&self.path, why)
    }

    fn open(path: &Path) -> Result<CheckpointFile, Error> {
        let corrupt = |why: &str| corrupt_in(path, why);
        // The whole file, so that decoding never trusts a length beyond
        // what the file holds; mapped, not read into memory of the
        // process's own (a copy of tens of megabytes at 10M jobs, and its
        // pages zeroed).
        let file = fs::File::open(path).map_err(io(path))?;
        let len =
            usize::try_from(file.metadata().map_err(io(path))?.len()).map_err(|_| corrupt("larger than memory"))?;
        if len < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        let map = crate::sys::map::SegmentMap::read_only(&file, len).map_err(io(path))?;
        let h: &[u8; HEADER_LEN] = map
            .bytes()
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| corrupt("shorter than its header"))?;
        let (_, body_len, body_crc, version) = parse_header(h).ok_or_else(|| corrupt("bad header"))?;
        let body_len = usize::try_from(body_len).map_err(|_| corrupt("larger than memory"))?;
        if HEADER_LEN.checked_add(body_len).is_none_or(|end| end > len) {
            return Err(corrupt("length differs from its header"));
        }
        Ok(CheckpointFile { path: path.to_path_buf(), map, version, body_len, body_crc })
    }

    /// The body's bytes (before format 9) or the head part's, checked.
    fn first_part(&self) -> Result<&[u8], Error> {
        let part = &self.map.bytes()[HEADER_LEN..HEADER_LEN + self.body_len];
        if crc32fast::hash(part) != self.body_crc {
            return Err(self.corrupt("body checksum mismatch"));
        }
        Ok(part)
    }

    /// The hot part of format 9, checked: after the head part, a frame of
    /// its length, its CRC and the frame's own CRC.
    fn hot_part(&self) -> Result<&[u8], Error> {
        let rest = &self.map.bytes()[HEADER_LEN + self.body_len..];
        let frame = rest.get(..FRAME_LEN).ok_or_else(|| self.corrupt("no hot part after the head"))?;
        let n = |at| u32::from_le_bytes(le(frame, at));
        if n(12) != crc32fast::hash(&frame[..12]) {
            return Err(self.corrupt("the hot part's frame does not match its checksum"));
        }
        let hot = &rest[FRAME_LEN..];
        if hot.len() as u64 != u64::from_le_bytes(le(frame, 0)) {
            return Err(self.corrupt("the hot part's length differs from its frame's"));
        }
        if crc32fast::hash(hot) != n(8) {
            return Err(self.corrupt("the hot part's checksum does not match"));
        }
        Ok(hot)
    }

    /// Everything: the runs it names and the state its body holds, its
    /// positions checked against the segments as they are (`live`).
    fn decode(&self, live: &Generations) -> Result<(Tiers, Projection), Error> {
        let decoded = |e: CodecError| self.corrupt(&e.to_string());
        let first = self.first_part()?;
        if self.version < 9 && self.body_len != self.map.bytes().len() - HEADER_LEN {
            return Err(self.corrupt("length differs from its header"));
        }
        match self.version {
            6 => {
                let body: OldBody = codec::decode_large(first).map_err(decoded)?;
                self.state((Tiers { cold: vec![], next_run: 0, gone: vec![] }, body.into_tables()), live)
            }
            7 => {
                let (tiers, body): (Tiers, OldBody) = codec::decode_large(first).map_err(decoded)?;
                self.state((tiers, body.into_tables()), live)
            }
            8 => {
                let (tiers, body): (Tiers, Body) = codec::decode_large(first).map_err(decoded)?;
                self.state((tiers, body), live)
            }
            _ => {
                let (tiers, head) = self.head_part::<BTreeMap<_, _>>(first).map_err(decoded)?;
                let hot: Hot<RowTable<&[u8]>, EventTable<&[u8]>> =
                    codec::decode_large(self.hot_part()?).map_err(decoded)?;
                self.state((tiers, head.with(hot)), live)
            }
        }
    }

    /// The state a decoded body holds.
    fn state<R: Table<Row>, E: Table<(Pos, u32)>>(
        &self,
        (tiers, body): (Tiers, Body<R, E>),
        live: &Generations,
    ) -> Result<(Tiers, Projection), Error> {
        check_current(&self.path, &body.segments, &body.generations, live)?;
        Ok((tiers, Projection::from_body(body).map_err(|why| self.corrupt(&why))?))
    }

    /// The runs it names and its head part (format 9 on), without
    /// reading its hot part, and with no workflow definition (see
    /// [`Unread`]).
    fn decode_head(&self) -> Result<(Tiers, Head<Unread>), Error> {
        if self.version < 9 {
            return Err(self.corrupt(&format!("format {} keeps no image of its hot rows", self.version)));
        }
        self.head_part(self.first_part()?).map_err(|e| self.corrupt(&e.to_string()))
    }

    /// The head part of format 9 on, `first`: the runs and the head, then
    /// (format 10 on) where the last event is in the log.
    fn head_part<'a, W: Deserialize<'a>>(&self, first: &'a [u8]) -> Result<(Tiers, Head<W>), CodecError> {
        if self.version < 10 {
            return codec::decode_large(first);
        }
        let ((tiers, mut head), used) = codec::decode_prefix_large::<(Tiers, Head<W>)>(first)?;
        let end: Option<(u64, u64)> = codec::decode_large(&first[used..])?;
        head.last_position = end.map(|(segment, offset)| Position { segment, offset });
        Ok((tiers, head))
    }
}

fn corrupt_in(path: &Path, why: &str) -> Error {
    Error::Corrupt {
        file: Some(path.to_path_buf()),
        offset: None,
        seq: None,
        reason: crate::error::Corruption::Other(why.to_string()),
    }
}

/// Refuses positions into segments compacted since they were taken.
fn check_current(path: &Path, segments: &[u64], generations: &[Option<u32>], live: &Generations) -> Result<(), Error> {
    let stale = segments.len() != generations.len()
        || segments.iter().zip(generations).any(|(s, g)| g.is_some_and(|g| !current(live, *s, g)));
    if stale {
        return Err(corrupt_in(path, "its segments were compacted since (stale)"));
    }
    Ok(())
}

fn load(path: &Path, live: &Generations) -> Result<Projection, Error> {
    let (tiers, mut p) = CheckpointFile::open(path)?.decode(live)?;
    attach_runs(&mut p, path, tiers, live)?;
    Ok(p)
}

/// The state a reading command needs from checkpoint `path` (format 9
/// on): its head part and its runs, with the image of its hot rows mapped
/// as a run that may hold open jobs, and no hot row in memory. Its hot
/// part is not read, nor its workflow definitions (the state has none).
fn load_views(path: &Path, live: &Generations) -> Result<Projection, Error> {
    let file = CheckpointFile::open(path)?;
    let (tiers, head) = file.decode_head()?;
    check_current(path, &head.segments, &head.generations, live)?;
    let hot_run = head.hot_run;
    let mut p =
        Projection::from_body(head.with(Hot::<RowTable<Vec<Row>>>::default())).map_err(|why| file.corrupt(&why))?;
    p.reading = true;
    attach_runs(&mut p, path, tiers, live)?;
    let run = open_run(path, hot_run, None, true, live)?;
    if !run.is_empty() {
        p.cold.push(super::tier::Cold::new(std::sync::Arc::new(run), Default::default()));
    }
    Ok(p)
}

/// Opens run `id` in the directory of the checkpoint at `checkpoint` and
/// checks that it is the run the checkpoint means: its own id, the run it
/// stands in for (`replaces`, when it is a copy standing in for one),
/// whether it may hold open jobs (`image`: the image of the hot rows; a
/// cold run never does), and that it points into segments as the log
/// has them now.
fn open_run(
    checkpoint: &Path,
    id: u64,
    replaces: Option<u64>,
    image: bool,
    live: &Generations,
) -> Result<super::cold::ColdRun, Error> {
    let dir = checkpoint.parent().unwrap_or(Path::new("."));
    let run = super::cold::ColdRun::open(&dir.join(super::cold::file_name(id)))?;
    if run.id() != id || replaces.is_some_and(|r| run.replaces() != Some(r)) || run.holds_open() != image {
        return Err(corrupt_in(
            checkpoint,
            &format!(
                "run {id} names itself {} (standing in for {:?}, holding open jobs: {})",
                run.id(),
                run.replaces(),
                run.holds_open()
            ),
        ));
    }
    if run.segments()?.iter().any(|(s, g)| !current(live, *s, *g)) {
        return Err(corrupt_in(checkpoint, &format!("run {id} points into segments compacted since (stale)")));
    }
    Ok(run)
}

/// Maps the cold runs checkpoint `path` names (`tiers`) into `p`.
fn attach_runs(p: &mut Projection, path: &Path, tiers: Tiers, live: &Generations) -> Result<(), Error> {
    let corrupt = |why: &str| corrupt_in(path, why);
    // Its cold runs, each pointing into the segments as they are now.
    let dir = path.parent().unwrap_or(Path::new("."));
    if tiers.gone.len() != tiers.cold.len() {
        return Err(corrupt("its cold runs and their deleted rows disagree"));
    }
    // A run a checkpoint names whose file is gone was copied by a
    // deletion since (without the rows deletions took, or emptied): the
    // newest copy that stands in for it is read instead, none of its rows
    // taken (the deletions, replayed after the checkpoint, take fewer).
    let files = run_files(dir);
    let mut stand_ins: Option<std::collections::HashMap<u64, u64>> = None;
    let mut touched = std::collections::BTreeSet::new();
    for (id, gone) in tiers.cold.into_iter().zip(tiers.gone) {
        let stand_in = match dir.join(super::cold::file_name(id)).try_exists() {
            Ok(false) => stand_ins.get_or_insert_with(|| stand_ins_in(&files)).get(&id).copied(),
            _ => None,
        };
        let run = open_run(path, stand_in.unwrap_or(id), stand_in.map(|_| id), false, live)?;
        let gone = if stand_in.is_some() { Vec::new() } else { gone };
        if gone.iter().any(|&r| r as usize >= run.len()) || (!gone.is_empty() && gone.len() >= run.len()) {
            return Err(corrupt(&format!("cold run {id}: deleted rows out of range")));
        }
        if stand_in.is_some() {
            // The events of the rows it left out that were still garbage:
            // the deletions replayed no longer find them to record them.
            for d in run.dropped()? {
                let g = p.garbage.entry(d.segment).or_default();
                g.push(d.offset);
                touched.insert(d.segment);
            }
        }
        if run.is_empty() {
            // A deletion took every row of it.
            continue;
        }
        let cold = super::tier::Cold::new(std::sync::Arc::new(run), gone.into_iter().collect());
        cold.set_named_as(id);
        p.cold.push(cold);
    }
    // Garbage listed by the checkpoint and by a stand-in is listed once.
    for segment in touched {
        if let Some(g) = p.garbage.get_mut(&segment) {
            g.sort_unstable();
            g.dedup();
        }
    }
    // No new run may take the id of a file left behind (a copy written
    // before a crash, say).
    let past_files = files.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
    p.next_run = tiers.next_run.max(p.cold.iter().map(|r| r.id() + 1).max().unwrap_or(0)).max(past_files);
    Ok(())
}

/// The cold run files in `dir`: (id, path).
fn run_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Some(id) = super::cold::parse_file_name(&entry.file_name().to_string_lossy()) {
            out.push((id, entry.path()));
        }
    }
    out
}

/// For every run some file in `files` stands in for, the newest such file
/// (the highest id: each copy is made of the one before).
fn stand_ins_in(files: &[(u64, PathBuf)]) -> std::collections::HashMap<u64, u64> {
    let mut out = std::collections::HashMap::new();
    for (id, path) in files {
        if let Some((_, Some(replaces))) = super::cold::header_of(path) {
            let newest = out.entry(replaces).or_insert(*id);
            *newest = (*newest).max(*id);
        }
    }
    out
}

impl Projection {
    /// Rebuilds the lookup tables and indices of a loaded body, checking
    /// what would otherwise break an invariant later.
    fn from_body<R: Table<Row>, E: Table<(Pos, u32)>>(b: Body<R, E>) -> Result<Projection, String> {
        // Rows, events, strings and segments are numbered by `u32` in memory;
        // a body claiming more of any is corrupt, not truncated.
        let count = |n: usize, what: &str| u32::try_from(n).map_err(|_| format!("more {what} than a u32 numbers"));
        let segment_ordinals =
            (0..count(b.segments.len(), "segments")?).zip(&b.segments).map(|(i, &s)| (s, i)).collect();
        let (n_rows, n_events_u32) = (count(b.rows.entries(), "rows")?, count(b.events.entries(), "events")?);
        let n_strings = count(b.strings.len(), "strings")?;
        let (rows, events, strings) = tables(b.rows, b.events, b.strings)?;
        let mut p = Projection {
            rows,
            strings,
            events,
            segment_ordinals,
            segments: b.segments,
            garbage: b.garbage,
            deletions: b.deletions,
            deletions_by_id: b.deletions_by_id,
            directory: b.directory,
            workflows: b.workflows,
            policy: b.policy,
            tokens: b.tokens,
            last_seq: b.last_seq,
            last_at: b.last_at,
            last_position: b.last_position,
            ..Projection::default()
        };
        let (n_events, n_segments) = (p.events.len(), p.segments.len());
        let freed = |pos: &Pos| pos.segment == u32::MAX;
        if p.events.iter().any(|(pos, prev)| {
            (!freed(pos) && pos.segment as usize >= n_segments) || (*prev != u32::MAX && *prev as usize >= n_events)
        }) {
            return Err("event chain out of range".into());
        }
        p.free_events = (0..n_events_u32).filter(|&e| freed(&p.events[e as usize].0)).collect();
        // Every chain is walked once, to its first entry (the row keeps it):
        // the chains share no entry, so more steps than entries in all is a
        // cycle, and a damaged file cannot make the walk endless.
        let mut steps = 0usize;
        for (i, r) in (0..n_rows).zip(&mut p.rows) {
            if r.deleted {
                p.free_rows.push(i);
                continue;
            }
            let syms = [r.owner, r.owningbusinessunit, r.workflow, r.regarding, r.dependencytoken];
            let chained = |e: u32| e == u32::MAX || (e as usize) < n_events;
            if syms.iter().any(|&s| s > n_strings) || r.last_event as usize >= n_events || !chained(r.message_event) {
                return Err(format!("row {i} refers past the end of its tables"));
            }
            let mut first = r.last_event;
            loop {
                steps += 1;
                let prev = p.events[first as usize].1;
                if prev == u32::MAX {
                    break;
                }
                if steps > n_events {
                    return Err("the event chains loop".into());
                }
                first = prev;
            }
            r.first_event = first;
        }
        // The rows by id on a core of their own while the indices are
        // built (`Indices::build` takes the other two parts).
        let rows = &p.rows;
        let lookups = move || super::ids::IdIndex::build(rows).map_err(|id| format!("job {id} twice"));
        let (indices, by_id) = if rows.len() < super::PARALLEL_ROWS {
            let by_id = lookups()?;
            (super::Indices::build(rows), by_id)
        } else {
            std::thread::scope(|s| {
                let lookups = s.spawn(lookups);
                let indices = super::Indices::build(rows);
                Ok::<_, String>((indices, lookups.join().unwrap_or_else(|_| Err("the lookup thread panicked".into()))?))
            })?
        };
        p.set_indices(indices);
        p.by_id = by_id;
        Ok(p)
    }
}

/// A body's rows and event chain decoded (if they are the file's bytes,
/// [`Table`]) and its strings' lookup table made: with many rows, the
/// rows on this core while the other decodes the chain and makes the
/// table, each about half of it.
#[allow(clippy::type_complexity)]
fn tables<R: Table<Row>, E: Table<(Pos, u32)>>(
    rows: R,
    events: E,
    mut strings: Interner,
) -> Result<(Vec<Row>, Vec<(Pos, u32)>, Interner), String> {
    if rows.entries() < super::PARALLEL_ROWS {
        strings.rebuild();
        return Ok((rows.decoded()?, events.decoded()?, strings));
    }
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            strings.rebuild();
            events.decoded().map(|events| (events, strings))
        });
        let rows = rows.decoded();
        let (events, strings) =
            other.join().unwrap_or_else(|_| Err("the thread decoding the event chain panicked".into()))?;
        Ok((rows?, events, strings))
    })
}
