//! Cold runs: Completed jobs' rows and their indices in an immutable file,
//! read in place through a read-only map (issue 16's cold tier, first
//! stage: the jobs' events stay in the log, the run holds their positions).
//!
//! A Completed job never changes again but for its owner (a reassignment),
//! a resubmission line and its deletion; so its row can leave the memory
//! the projection owns for a file the page cache holds, which the OS may
//! evict. A run is derived data, like a checkpoint: it is rebuilt from the
//! log when it does not check.
//!
//! Every byte is covered by the CRC32 of its 4 KiB page; a page is checked
//! the first time it is read (a bit per page remembers it), so a flipped
//! byte is an error where it is read, never a wrong answer, and opening
//! reads only the header, the footer and the section directory. The page
//! checksums' own checksum is checked by `verify` (`ColdRun::check_all`)
//! and where a page does not match its checksum, to say which is damaged.
//!
//! The byte layout: `docs/format.md`, "Cold runs".

// A decoder of bytes from disk: those never panic the process nor lose bits
// in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::domain::{Status, StatusReason};
use crate::error::{Corruption, Error};
use crate::log::{Generations, Position};
use crate::sys::map::SegmentMap;

const MAGIC: [u8; 8] = *b"JLCOLDRN";
const TRAILER_MAGIC: [u8; 8] = *b"JLCOLDND";
/// The run format's version: 2 added [`Section::ByStatus`], 3
/// [`Section::Dropped`] and the run a copy stands in for, 4 the flags
/// ([`HOLDS_OPEN`]); every older version is still read.
pub const VERSION: u16 = 4;
/// A flag of the header (format 4 on): the run may hold jobs that are not
/// Completed (a checkpoint's image of its hot rows, `snapshot.rs`), which
/// a cold run never does.
pub const HOLDS_OPEN: u32 = 1;
/// The checked unit.
pub const PAGE: usize = 4096;
const PAGE_U32: u32 = 4096;
/// Bits of the id filter per row, and its probes.
const BLOOM_BITS_PER_ROW: usize = 10;
const BLOOM_PROBES: u64 = 7;
const HEADER_LEN: usize = 64;
const TRAILER_LEN: usize = 24;
const DIR_ENTRY_LEN: usize = 24;
/// One row's bytes.
pub const ROW_LEN: usize = 104;
const ID_ENTRY_LEN: usize = 20;
const POSTING_KEY_LEN: usize = 16;
const EVENT_LEN: usize = 16;
const SEGMENT_LEN: usize = 16;
/// "No message event" in a row.
pub(crate) const NO_MESSAGE: u32 = u32::MAX;

/// The sections of a run, by tag (their order in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Section {
    /// The rows, by (createdon, id): a row's number is its rank.
    Rows = 1,
    /// (id, row), by id.
    Ids = 2,
    /// The run's strings, sorted; a symbol is an index + 1 (0: none).
    Strings = 3,
    /// Rows by System Job Type (key: the type), createdon order.
    ByType = 4,
    /// Rows by owner (key: symbol), createdon order.
    ByOwner = 5,
    /// Rows by workflow (key: symbol), createdon order.
    ByWorkflow = 6,
    /// Rows by regarding row (key: symbol), createdon order.
    ByRegarding = 7,
    /// Rows by (Status Reason code << 32 | type), (completedon, id) order.
    Completed = 8,
    /// Every row's event positions, oldest first, rows in order.
    Events = 9,
    /// The log segments the positions point into, with their generation.
    Segments = 10,
    /// A Bloom filter of the ids: most lookups of an id the run does not
    /// hold end here.
    Bloom = 11,
    /// Rows by (Status Reason code << 32 | type), and by (Status Reason
    /// code << 32 | [`ANY_TYPE`]), createdon order (format 2 on).
    ByStatus = 12,
    /// A copy that stands in for a run ([`ColdRun::replaces`]): the
    /// events of the rows it left out (deleted) that were still waiting
    /// for compaction when it was written, sorted (format 3 on; empty in
    /// any other run).
    Dropped = 13,
}

/// The postings sections (the indices read by key).
pub const POSTINGS: [Section; 6] = [
    Section::ByType,
    Section::ByOwner,
    Section::ByWorkflow,
    Section::ByRegarding,
    Section::Completed,
    Section::ByStatus,
];

/// The type half of a [`Section::ByStatus`] key that stands for every type.
pub const ANY_TYPE: u32 = u32::MAX;

/// How many sections a run of format `version` has (the first that many
/// of [`SECTIONS`]); `None`: no such version.
fn section_count(version: u16) -> Option<usize> {
    match version {
        1 => Some(11),
        2 => Some(12),
        3 | 4 => Some(13),
        _ => None,
    }
}

const SECTIONS: [Section; 13] = [
    Section::Rows,
    Section::Ids,
    Section::Strings,
    Section::ByType,
    Section::ByOwner,
    Section::ByWorkflow,
    Section::ByRegarding,
    Section::Completed,
    Section::Events,
    Section::Segments,
    Section::Bloom,
    Section::ByStatus,
    Section::Dropped,
];

/// A section's bytes, as the writer puts them in the file.
type SectionBytes = (Section, Vec<u8>);

/// A Completed job as a run stores it (the writer's input); its strings
/// are borrowed where they already are (the interner, another run's map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdJob<'a> {
    /// The row's columns.
    pub row: ColdRow,
    /// Owner, business unit, workflow and regarding row, as strings.
    pub owner: Cow<'a, str>,
    /// See `owner`.
    pub owningbusinessunit: Cow<'a, str>,
    /// See `owner`.
    pub workflow: Option<Cow<'a, str>>,
    /// See `owner`.
    pub regarding: Option<Cow<'a, str>>,
    /// The job's events, oldest first.
    pub events: Vec<Position>,
    /// Which of `events` last set the message.
    pub message_event: Option<u32>,
}

/// A run's oldest and newest rows' (`createdon`, id).
pub type CreatedBounds = ((i64, Uuid), (i64, Uuid));

/// A row's fixed columns (strings as the run's symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdRow {
    /// The job's id.
    pub id: Uuid,
    /// Microseconds since the epoch; `i64::MIN`: none.
    pub createdon: i64,
    /// See `createdon`.
    pub startedon: i64,
    /// See `createdon`.
    pub completedon: i64,
    /// See `createdon`.
    pub modifiedon: i64,
    /// See `createdon`.
    pub postponeuntil: i64,
    /// System Job Type.
    pub operationtype: u32,
    /// The Completed Status Reason.
    pub reason: StatusReason,
    /// Symbols of the run (0: none); the writer ignores them.
    pub owner: u32,
    /// See `owner`.
    pub owningbusinessunit: u32,
    /// See `owner`.
    pub workflow: u32,
    /// See `owner`.
    pub regarding: u32,
    /// Columns as the projection's row has them.
    pub retrycount: u32,
    /// `i32::MIN`: none.
    pub errorcode: i32,
    /// Milliseconds.
    pub executiontimespan_ms: u32,
    /// The row's first entry in the events section, and how many.
    pub events_start: u32,
    /// See `events_start`.
    pub events_len: u32,
    /// The entry (relative to `events_start`) of the newest event that set
    /// the message, `u32::MAX`: none.
    pub message_event: u32,
}

impl ColdRow {
    /// The order of every "newest first" view.
    pub fn created_key(&self) -> (i64, Uuid) {
        (self.createdon, self.id)
    }

    /// The row's Status.
    pub fn status(&self) -> Status {
        Status::of_reason(self.reason)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.id.as_bytes());
        for t in [self.createdon, self.startedon, self.completedon, self.modifiedon, self.postponeuntil] {
            out.extend_from_slice(&t.to_le_bytes());
        }
        for v in [
            self.operationtype,
            self.reason as u32,
            self.owner,
            self.owningbusinessunit,
            self.workflow,
            self.regarding,
            self.retrycount,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.errorcode.to_le_bytes());
        for v in [self.executiontimespan_ms, self.events_start, self.events_len, self.message_event] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() != ROW_LEN {
            return Err(format!("a row of {} bytes", b.len()));
        }
        let i = |at: usize| i64::from_le_bytes(arr(b, at));
        let u = |at: usize| u32::from_le_bytes(arr(b, at));
        // Whether a reason that is not a Completed one may be there is
        // the run's to say ([`ColdRun::row`]).
        let reason =
            Status::of_statuscode(u(60)).ok_or_else(|| format!("status reason {} does not exist", u(60)))?.reason();
        Ok(ColdRow {
            id: Uuid::from_bytes(arr(b, 0)),
            createdon: i(16),
            startedon: i(24),
            completedon: i(32),
            modifiedon: i(40),
            postponeuntil: i(48),
            operationtype: u(56),
            reason,
            owner: u(64),
            owningbusinessunit: u(68),
            workflow: u(72),
            regarding: u(76),
            retrycount: u(80),
            errorcode: i32::from_le_bytes(arr(b, 84)),
            executiontimespan_ms: u(88),
            events_start: u(92),
            events_len: u(96),
            message_event: u(100),
        })
    }
}

/// `N` bytes of `b` at `at`; the caller checked the length.
fn arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(arr(b, at))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(arr(b, at))
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn u32_of(v: usize, what: &str) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::corrupt(format!("a cold run cannot hold {v} {what}")))
}

/// The file name of run `id`.
pub fn file_name(id: u64) -> String {
    format!("cold-{id:020}.run")
}

/// The run id a file name names.
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("cold-")?.strip_suffix(".run")?.parse().ok()
}

/// Writes run `id` of `jobs` (any order) to `path`, whole: the bytes are
/// written and synced under a temporary name, then renamed
/// (`log::private::install_file`). `segments`: each log segment the
/// positions point into, with its generation. `flags`: 0 for a cold run
/// (its jobs are all Completed, which reading it checks), or
/// [`HOLDS_OPEN`].
pub fn write_run(
    path: &Path,
    id: u64,
    jobs: Vec<ColdJob<'_>>,
    segments: &BTreeMap<u64, u32>,
    flags: u32,
) -> Result<(), Error> {
    let rows = jobs.len() as u64;
    if flags & HOLDS_OPEN == 0 && jobs.iter().any(|j| !j.row.status().is_completed()) {
        return Err(Error::corrupt("a cold run of a job that is not Completed"));
    }
    write_sections(path, id, None, rows, flags, |put| sections_of(jobs, segments, Vec::new(), put))
}

/// Writes a run without rows at `path` that stands in for run `replaces`
/// (a deletion took every row of it; see [`ColdRun::replaces`]), with
/// `dropped` ([`ColdRun::dropped`]).
pub fn write_empty_run(path: &Path, id: u64, replaces: u64, dropped: Vec<Position>) -> Result<(), Error> {
    write_sections(path, id, Some(replaces), 0, 0, |put| sections_of(Vec::new(), &BTreeMap::new(), dropped, put))
}

/// The offsets, sorted, of a segment's events of deleted jobs still
/// waiting for compaction ([`StandIn`]).
pub type Pending<'a> = &'a (dyn Fn(u64) -> Option<&'a [u64]> + Sync);

/// What a copy that stands in for a run carries ([`copy_run`]).
pub struct StandIn<'a> {
    /// The id the newest checkpoint names the run by.
    pub replaces: u64,
    /// The offsets, sorted, of a segment's events of deleted jobs still
    /// waiting for compaction (the copy records those of the jobs it
    /// leaves out).
    pub pending: Pending<'a>,
}

/// The run `replaces` field of header `h` (version 3 on).
fn replaces_in(h: &[u8], version: u16) -> Option<u64> {
    (version >= 3).then(|| le_u64(h, 36)).filter(|&r| r != 0).map(|r| r - 1)
}

/// The (id, [`ColdRun::replaces`]) of the run at `path`, from its header
/// alone (checked), or `None` if it has none that checks.
pub fn header_of(path: &Path) -> Option<(u64, Option<u64>)> {
    use std::io::Read;
    let mut h = [0u8; HEADER_LEN];
    File::open(path).ok()?.read_exact(&mut h).ok()?;
    if h[..8] != MAGIC || crc32fast::hash(&h[..60]) != le_u32(&h, 60) {
        return None;
    }
    let version = u16::from_le_bytes(arr(&h, 8));
    Some((le_u64(&h, 16), replaces_in(&h, version)))
}

/// Writes `run` without its rows in `gone` as run `id` at `path` (as
/// [`write_run`] does), each event position passed through `relocate`;
/// `live`: the generation of every segment the new positions may point
/// into. A copy, section by section: rows, ids, postings and positions are
/// filtered and renumbered (the order of each is kept), the strings are
/// kept whole (a symbol no row uses any more is harmless), the id filter is
/// made again. What a compaction does to the runs whose events it moved,
/// without decoding each job into the writer's form and sorting it again.
/// `stand_in`: the run a checkpoint names that the copy stands in for
/// (see [`ColdRun::replaces`]), and which events it records as dropped
/// ([`ColdRun::dropped`]).
pub fn copy_run(
    path: &Path,
    id: u64,
    run: &ColdRun,
    gone: &RowSet,
    stand_in: Option<StandIn<'_>>,
    relocate: impl Fn(Position) -> Result<Position, Error>,
    live: &Generations,
) -> Result<(), Error> {
    // Every section is read through.
    let _through = run.read_through();
    // Each old row's new number (u32::MAX: gone).
    let mut renumber = vec![u32::MAX; run.rows];
    let mut kept = 0u32;
    for (r, new) in (0u32..).zip(renumber.iter_mut()) {
        if !gone.contains(&r) {
            *new = kept;
            kept += 1;
        }
    }
    let replaces = stand_in.as_ref().map(|s| s.replaces);
    let pending = stand_in.map(|s| s.pending);
    let flags = if run.holds_open { HOLDS_OPEN } else { 0 };
    write_sections(path, id, replaces, u64::from(kept), flags, |put| {
        run.sections_without(&renumber, kept as usize, relocate, live, pending, put)
    })
}

/// Where a run's sections go as they are made, in file order.
type Put<'a> = &'a mut dyn FnMut(SectionBytes) -> Result<(), Error>;

/// Bytes of a run written between two syncs of its data: the disk writes
/// while the next sections are made, and the last sync waits for little.
const SYNC_EVERY: usize = 32 << 20;

/// Writes a run of `rows` rows to `path`, whole: `produce` hands over its
/// sections in file order, and each is written (on a thread of its own)
/// while the next is made.
fn write_sections(
    path: &Path,
    id: u64,
    replaces: Option<u64>,
    rows: u64,
    flags: u32,
    produce: impl FnOnce(Put<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("run.tmp");
    let write = || -> Result<(), Error> {
        let file = crate::log::private::create_file(&tmp, true).map_err(io(&tmp))?;
        let (tx, rx) = crossbeam_channel::bounded::<SectionBytes>(1);
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> std::io::Result<()> {
                let mut out =
                    RunWriter::start(std::io::BufWriter::with_capacity(1 << 20, file), id, replaces, rows, flags)?;
                let mut unsynced = 0;
                for (tag, bytes) in rx {
                    out.begin(tag, bytes.len())?;
                    for piece in bytes.chunks(SYNC_EVERY) {
                        out.put(piece)?;
                        unsynced += piece.len();
                        if unsynced >= SYNC_EVERY {
                            out.sync_data()?;
                            unsynced = 0;
                        }
                    }
                }
                let file = out.finish()?.into_inner().map_err(std::io::IntoInnerError::into_error)?;
                file.sync_all()
            });
            // A send fails only when the writer stopped: its error says why.
            let mut stopped = false;
            let produced = produce(&mut |section| {
                tx.send(section).map_err(|_| {
                    stopped = true;
                    Error::corrupt("the run's writer stopped")
                })
            });
            drop(tx);
            let written = writer.join().unwrap_or_else(|e| std::panic::resume_unwind(e)).map_err(io(&tmp));
            match (produced, written) {
                (Ok(()), written) => written,
                (Err(_), Err(why)) if stopped => Err(why),
                (Err(e), _) => Err(e),
            }
        })
    };
    crate::log::private::install_file(dir, &tmp, path, write, || {}).map_err(|e| match e {
        crate::log::private::InstallError::Write(e) => e,
        crate::log::private::InstallError::Rename(e) => io(path)(e),
        crate::log::private::InstallError::SyncDir(e) => io(dir)(e),
    })
}

/// The sections of a run of `jobs`, handed to `put` in file order.
// The writer: its counts are checked to fit a u32 first.
#[allow(clippy::cast_possible_truncation)]
fn sections_of(
    jobs: Vec<ColdJob<'_>>,
    segments: &BTreeMap<u64, u32>,
    dropped: Vec<Position>,
    put: Put<'_>,
) -> Result<(), Error> {
    u32_of(jobs.len().saturating_mul(4), "strings (four a row)")?;
    // Row order: (createdon, id). The jobs stay where they are.
    let mut order: Vec<(i64, Uuid, u32)> =
        jobs.iter().enumerate().map(|(i, j)| (j.row.createdon, j.row.id, i as u32)).collect();
    order.sort_unstable();
    let jobs: Vec<&ColdJob<'_>> = order.iter().map(|o| &jobs[o.2 as usize]).collect();
    drop(order);
    let mut ids: Vec<(Uuid, u32)> = jobs.iter().enumerate().map(|(i, j)| (j.row.id, i as u32)).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Error::corrupt("a cold run of a job twice"));
    }

    // Strings: each distinct one once (hashed), then only those sorted.
    let mut first: rustc_hash::FxHashMap<&str, u32> = rustc_hash::FxHashMap::default();
    let mut distinct: Vec<&str> = Vec::new();
    let temps: Vec<[u32; 4]> = jobs
        .iter()
        .map(|j| {
            [Some(&*j.owner), Some(&*j.owningbusinessunit), j.workflow.as_deref(), j.regarding.as_deref()]
                .map(|s| first_of(&mut first, &mut distinct, s))
        })
        .collect();
    drop(first);
    let mut sorted: Vec<u32> = (0..distinct.len() as u32).collect();
    sorted.sort_unstable_by_key(|&t| distinct[t as usize]);
    let mut symbol = vec![0u32; distinct.len()];
    for (k, &t) in sorted.iter().enumerate() {
        symbol[t as usize] = u32_of(k + 1, "strings")?;
    }
    let sym = |t: u32| if t == u32::MAX { 0 } else { symbol[t as usize] };

    let mut rows = Vec::with_capacity(jobs.len() * ROW_LEN);
    let mut events = Vec::new();
    let (mut by_type, mut by_owner, mut by_workflow, mut by_regarding) = (vec![], vec![], vec![], vec![]);
    let (mut by_status, mut completed) = (Vec::with_capacity(jobs.len() * 2), Vec::with_capacity(jobs.len()));
    let mut n_events = 0usize;
    for (i, (j, t)) in jobs.iter().zip(&temps).enumerate() {
        let i = i as u32;
        let mut row = j.row;
        (row.owner, row.owningbusinessunit, row.workflow, row.regarding) = (sym(t[0]), sym(t[1]), sym(t[2]), sym(t[3]));
        row.events_start = u32_of(n_events, "events")?;
        row.events_len = u32_of(j.events.len(), "events of one job")?;
        row.message_event = j.message_event.unwrap_or(NO_MESSAGE);
        n_events += j.events.len();
        row.encode(&mut rows);
        for p in &j.events {
            events.extend_from_slice(&p.segment.to_le_bytes());
            events.extend_from_slice(&p.offset.to_le_bytes());
        }
        by_type.push((u64::from(row.operationtype), i));
        by_owner.push((u64::from(row.owner), i));
        if row.workflow != 0 {
            by_workflow.push((u64::from(row.workflow), i));
        }
        if row.regarding != 0 {
            by_regarding.push((u64::from(row.regarding), i));
        }
        let reason = u64::from(row.reason as u32) << 32;
        by_status.push((reason | u64::from(row.operationtype), i));
        by_status.push((reason | u64::from(ANY_TYPE), i));
        if row.status().is_completed() {
            completed.push((reason | u64::from(row.operationtype), row.completedon, row.id, i));
        }
    }
    drop(temps);
    put((Section::Rows, rows))?;
    let mut id_bytes = Vec::with_capacity(ids.len() * ID_ENTRY_LEN);
    for (id, r) in ids {
        id_bytes.extend_from_slice(id.as_bytes());
        id_bytes.extend_from_slice(&r.to_le_bytes());
    }
    put((Section::Ids, id_bytes))?;
    let mut string_bytes = Vec::new();
    string_bytes.extend_from_slice(&u32_of(sorted.len(), "strings")?.to_le_bytes());
    let mut at = 0usize;
    string_bytes.extend_from_slice(&0u32.to_le_bytes());
    for &t in &sorted {
        at += distinct[t as usize].len();
        string_bytes.extend_from_slice(&u32_of(at, "string bytes")?.to_le_bytes());
    }
    for &t in &sorted {
        string_bytes.extend_from_slice(distinct[t as usize].as_bytes());
    }
    put((Section::Strings, string_bytes))?;
    // Sorting (key, row) pairs keeps each set in row (createdon) order.
    for (s, mut set) in [
        (Section::ByType, by_type),
        (Section::ByOwner, by_owner),
        (Section::ByWorkflow, by_workflow),
        (Section::ByRegarding, by_regarding),
    ] {
        set.sort_unstable();
        put((s, postings(&set)?))?;
    }
    completed.sort_unstable();
    let completed: Vec<(u64, u32)> = completed.into_iter().map(|(k, _, _, i)| (k, i)).collect();
    put((Section::Completed, postings(&completed)?))?;
    put((Section::Events, events))?;
    put(segments_section(segments))?;
    put((Section::Bloom, bloom(jobs.iter().map(|j| j.row.id), jobs.len())))?;
    by_status.sort_unstable();
    // A job of type ANY_TYPE (u32::MAX, which nothing refuses) would be
    // in its "every type" set twice.
    by_status.dedup();
    put((Section::ByStatus, postings(&by_status)?))?;
    put((Section::Dropped, positions_section(dropped)))
}

/// A section of event positions, (u64 segment, u64 offset) each, sorted.
fn positions_section(mut positions: Vec<Position>) -> Vec<u8> {
    positions.sort_unstable_by_key(|p| (p.segment, p.offset));
    positions.dedup();
    let mut out = Vec::with_capacity(positions.len() * EVENT_LEN);
    for p in positions {
        out.extend_from_slice(&p.segment.to_le_bytes());
        out.extend_from_slice(&p.offset.to_le_bytes());
    }
    out
}

/// The segments section: each segment's first sequence number and
/// generation, in order.
fn segments_section(segments: &BTreeMap<u64, u32>) -> SectionBytes {
    let mut bytes = Vec::with_capacity(segments.len() * SEGMENT_LEN);
    for (first_seq, generation) in segments {
        bytes.extend_from_slice(&first_seq.to_le_bytes());
        bytes.extend_from_slice(&u64::from(*generation).to_le_bytes());
    }
    (Section::Segments, bytes)
}

/// The bit positions of `id` in a filter of `bits` bits: double hashing
/// of the id's two halves, each mixed (splitmix64) so that ids that are
/// not random spread too.
fn bloom_bits(id: Uuid, bits: u64) -> impl Iterator<Item = u64> {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (hi, lo) = id.as_u64_pair();
    let (h1, h2) = (mix(hi ^ mix(lo)), mix(lo) | 1);
    (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// The id filter: u64 bit count, then the bits (bit *b* is bit *b* % 8 of
/// byte *b* / 8).
fn bloom(ids: impl Iterator<Item = Uuid>, rows: usize) -> Vec<u8> {
    let bits = (rows * BLOOM_BITS_PER_ROW).next_multiple_of(64).max(64);
    let mut out = vec![0u8; 8 + bits / 8];
    out[..8].copy_from_slice(&(bits as u64).to_le_bytes());
    for id in ids {
        for b in bloom_bits(id, bits as u64) {
            let b = usize_of(b);
            out[8 + b / 8] |= 1 << (b % 8);
        }
    }
    out
}

/// The number of `s` among `distinct` (added when new), or `u32::MAX`
/// for none. At most four strings a row: the caller checked that 4 × rows
/// fits a u32.
#[allow(clippy::cast_possible_truncation)]
fn first_of<'s>(
    first: &mut rustc_hash::FxHashMap<&'s str, u32>,
    distinct: &mut Vec<&'s str>,
    s: Option<&'s str>,
) -> u32 {
    s.map_or(u32::MAX, |s| {
        *first.entry(s).or_insert_with(|| {
            distinct.push(s);
            (distinct.len() - 1) as u32
        })
    })
}

/// A postings section of `(key, row)` pairs grouped by key, keys
/// ascending: key count, the keys with each set's start and length, then
/// every set's rows.
fn postings(pairs: &[(u64, u32)]) -> Result<Vec<u8>, Error> {
    let keys = pairs.chunk_by(|a, b| a.0 == b.0);
    let mut out = Vec::with_capacity(8 + pairs.len() * 4);
    out.extend_from_slice(&(keys.clone().count() as u64).to_le_bytes());
    let mut start = 0usize;
    for set in keys {
        out.extend_from_slice(&set[0].0.to_le_bytes());
        out.extend_from_slice(&u32_of(start, "postings")?.to_le_bytes());
        out.extend_from_slice(&u32_of(set.len(), "postings")?.to_le_bytes());
        start += set.len();
    }
    for (_, r) in pairs {
        out.extend_from_slice(&r.to_le_bytes());
    }
    Ok(out)
}

/// A run's strings are found through every this many of them, kept in
/// memory ([`NameFence`]): a run of 2^20 names of 16 bytes keeps 640 KiB.
const FENCE_STEP: usize = 32;

/// A run reads its [`NameFence`] once it has been asked this many names:
/// reading it reads the whole of the run's strings (every page of their
/// offsets, and checks each page's checksum), which pays for itself over
/// many searches (a server's), never over the few of a one-shot command.
const FENCE_AFTER: u32 = 64;

/// Every [`FENCE_STEP`]th string of a run (the first, the 33rd, ...), in
/// memory, one after another: where a name would be among the run's
/// strings, found without reading the map ([`ColdRun::sym`]).
#[derive(Default)]
struct NameFence {
    bytes: Vec<u8>,
    /// Where each string ends in `bytes`.
    ends: Vec<u32>,
}

impl NameFence {
    /// String `i` of the fence.
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// How many of its strings are at or below `s`, in bytes' order.
    fn count_at_or_below(&self, s: &[u8]) -> usize {
        let (mut lo, mut hi) = (0, self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) <= s {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Where `key` is among `n` keys in ascending order that `key_at` reads
/// (`None`: not there). Keys are mostly spread evenly (a run's symbols of
/// one kind of name are consecutive numbers): once the first and the last
/// are read (the same two for every search of a section, so in the
/// cache), every other step reads where `key` would be if they were,
/// between the keys that bound the search so far, and the steps between
/// halve: at most 2 + 2⌈log₂ n⌉ reads, and on keys that are not in order
/// (damage) it still ends.
fn search_keys(
    n: usize,
    key: u64,
    mut key_at: impl FnMut(usize) -> Result<u64, Error>,
) -> Result<Option<usize>, Error> {
    let (mut lo, mut hi) = (0, n);
    // The keys read just below `lo` and at `hi`, once read.
    let (mut below, mut above) = (None::<u64>, None::<u64>);
    let mut guess = false;
    while lo < hi {
        let mid = match (below, above) {
            (None, _) => lo,
            (_, None) => hi - 1,
            (Some(b), Some(a)) => {
                guess = !guess;
                if guess {
                    // `b < key < a` (each was read on its side of `key`), so
                    // the share is below `hi - lo`: `mid` is in `lo..hi`.
                    let share = u128::from(key - b) * (hi - lo) as u128 / u128::from(a - b);
                    lo + usize::try_from(share).unwrap_or(0).min(hi - lo - 1)
                } else {
                    lo + (hi - lo) / 2
                }
            }
        };
        let k = key_at(mid)?;
        match k.cmp(&key) {
            std::cmp::Ordering::Less => (lo, below) = (mid + 1, Some(k)),
            std::cmp::Ordering::Greater => (hi, above) = (mid, Some(k)),
            std::cmp::Ordering::Equal => return Ok(Some(mid)),
        }
    }
    Ok(None)
}

/// Writes a run: header, sections (each at an 8-byte boundary, in file
/// order), the directory, the page checksums, the trailer.
struct RunWriter<W: Write> {
    out: Paged<W>,
    /// The directory so far.
    dir: Vec<u8>,
}

impl<W: Write> RunWriter<W> {
    /// Writes the header of run `id` of `rows` rows (every section of
    /// today's format), standing in for run `replaces`.
    fn start(out: W, id: u64, replaces: Option<u64>, rows: u64, flags: u32) -> std::io::Result<Self> {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&PAGE_U32.to_le_bytes());
        h[16..24].copy_from_slice(&id.to_le_bytes());
        h[24..32].copy_from_slice(&rows.to_le_bytes());
        h[32..36].copy_from_slice(&u32_of(SECTIONS.len(), "sections").unwrap_or(u32::MAX).to_le_bytes());
        h[36..44].copy_from_slice(&replaces.map_or(0, |r| r.saturating_add(1)).to_le_bytes());
        h[44..48].copy_from_slice(&flags.to_le_bytes());
        let crc = crc32fast::hash(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        let mut out = Paged::new(out);
        out.put(&h)?;
        Ok(RunWriter { out, dir: Vec::with_capacity(SECTIONS.len() * DIR_ENTRY_LEN) })
    }

    /// Starts the next section, `len` bytes that the caller then puts
    /// through `out`; it must be `SECTIONS`' next.
    fn begin(&mut self, tag: Section, len: usize) -> std::io::Result<()> {
        if SECTIONS.get(self.dir.len() / DIR_ENTRY_LEN) != Some(&tag) {
            return Err(std::io::Error::other(format!("section {tag:?} out of order")));
        }
        self.out.pad8()?;
        self.dir.extend_from_slice(&(tag as u32).to_le_bytes());
        self.dir.extend_from_slice(&0u32.to_le_bytes());
        self.dir.extend_from_slice(&self.out.len.to_le_bytes());
        self.dir.extend_from_slice(&(len as u64).to_le_bytes());
        Ok(())
    }

    /// Bytes of the section begun last.
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.put(b)
    }

    /// The directory, the page checksums and the trailer; every section
    /// must have been written. Returns `out`.
    fn finish(mut self) -> std::io::Result<W> {
        if self.dir.len() != SECTIONS.len() * DIR_ENTRY_LEN {
            return Err(std::io::Error::other("a run's writer stopped before its last section"));
        }
        self.out.pad8()?;
        self.out.put(&self.dir)?;
        self.out.finish()
    }
}

impl RunWriter<std::io::BufWriter<File>> {
    /// Flushes what was written and syncs the file's data so far.
    fn sync_data(&mut self) -> std::io::Result<()> {
        self.out.out.flush()?;
        self.out.out.get_ref().sync_data()
    }
}

/// A writer that checksums each 4 KiB page of what passes through it,
/// and ends with the page checksums and the trailer.
struct Paged<W: Write> {
    out: W,
    /// Bytes written so far (the data's, before [`Paged::finish`]).
    len: u64,
    page: crc32fast::Hasher,
    in_page: usize,
    crcs: Vec<u8>,
}

impl<W: Write> Paged<W> {
    fn new(out: W) -> Self {
        Paged { out, len: 0, page: crc32fast::Hasher::new(), in_page: 0, crcs: Vec::new() }
    }

    fn put(&mut self, mut b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.len += b.len() as u64;
        while !b.is_empty() {
            let n = (PAGE - self.in_page).min(b.len());
            self.page.update(&b[..n]);
            (self.in_page, b) = (self.in_page + n, &b[n..]);
            if self.in_page == PAGE {
                self.end_page();
            }
        }
        Ok(())
    }

    fn end_page(&mut self) {
        let crc = std::mem::replace(&mut self.page, crc32fast::Hasher::new()).finalize();
        self.crcs.extend_from_slice(&crc.to_le_bytes());
        self.in_page = 0;
    }

    fn pad8(&mut self) -> std::io::Result<()> {
        let pad = self.len.next_multiple_of(8) - self.len;
        self.put(&[0u8; 8][..usize_of(pad)])
    }

    fn finish(mut self) -> std::io::Result<W> {
        if self.in_page > 0 {
            self.end_page();
        }
        let mut trailer = [0u8; TRAILER_LEN];
        trailer[..8].copy_from_slice(&self.len.to_le_bytes());
        trailer[8..12].copy_from_slice(&crc32fast::hash(&self.crcs).to_le_bytes());
        let crc = crc32fast::hash(&trailer[..12]);
        trailer[12..16].copy_from_slice(&crc.to_le_bytes());
        trailer[16..].copy_from_slice(&TRAILER_MAGIC);
        self.out.write_all(&self.crcs)?;
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

/// `data` (a header, sections and a directory, as the data of a run) with
/// its header checksum set and its page checksums and trailer appended:
/// for the fuzz target and the tests, to reach the decoders behind the
/// checksums.
#[doc(hidden)]
pub fn with_valid_checksums(data: &[u8]) -> Vec<u8> {
    let mut data = data.to_vec();
    if data.len() >= HEADER_LEN {
        let crc = crc32fast::hash(&data[..60]);
        data[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    let mut out = Paged::new(Vec::with_capacity(data.len() + data.len() / 1000 + TRAILER_LEN));
    // Writing to a Vec does not fail.
    let _ = out.put(&data);
    out.finish().unwrap_or_default()
}

enum Backing {
    Map(SegmentMap),
    Bytes(Vec<u8>),
}

impl Backing {
    /// The map, for a run read in place.
    fn map(&self) -> Option<&SegmentMap> {
        match self {
            Backing::Map(map) => Some(map),
            Backing::Bytes(_) => None,
        }
    }
}

/// An open run: the map, where each section is, which pages were checked.
pub struct ColdRun {
    id: u64,
    path: PathBuf,
    backing: Backing,
    rows: usize,
    /// How many sections it has (its version's).
    count: usize,
    /// Offset and length of each section, by its place in `SECTIONS`.
    sections: [(usize, usize); SECTIONS.len()],
    data_end: usize,
    /// Offset of the page checksums.
    crcs: usize,
    /// One bit per page: checked.
    checked: Vec<AtomicU64>,
    /// Its smallest and greatest ids, read once (`ColdRun::find`).
    id_bounds: std::sync::OnceLock<(Uuid, Uuid)>,
    /// Its oldest and newest rows' (`createdon`, id), read once
    /// (`ColdRun::created_bounds`).
    created_bounds: std::sync::OnceLock<Option<CreatedBounds>>,
    /// Every [`FENCE_STEP`]th of its strings, read once ([`ColdRun::sym`]);
    /// `None`: they could not be read (a damaged page), and searches go
    /// through the whole run as before.
    fence: std::sync::OnceLock<Option<NameFence>>,
    /// Names asked of it so far, up to [`FENCE_AFTER`].
    names_asked: std::sync::atomic::AtomicU32,
    replaces: Option<u64>,
    /// [`HOLDS_OPEN`].
    holds_open: bool,
}

impl ColdRun {
    /// Unmaps from this process the pages of the run it has read (a run
    /// held in memory has none).
    pub(crate) fn release_mapped_pages(&self) -> Result<(), Error> {
        self.backing
            .map()
            .map_or(Ok(()), |map| map.release_pages().map_err(|e| Error::Io { path: self.path.clone(), source: e }))
    }
}

impl std::fmt::Debug for ColdRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdRun").field("id", &self.id).field("rows", &self.rows).finish()
    }
}

impl ColdRun {
    /// Opens run file `path`: checks its header, trailer and directory
    /// (not the pages: each is checked when first read, nor the page
    /// checksums' own checksum: [`ColdRun::check_all`]).
    pub fn open(path: &Path) -> Result<ColdRun, Error> {
        let io = |e| Error::Io { path: path.to_path_buf(), source: e };
        let file = File::open(path).map_err(io)?;
        let len = usize_of(file.metadata().map_err(io)?.len());
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt_at(path, 0, format!("a cold run of {len} bytes is too short")));
        }
        let map = SegmentMap::read_only(&file, len).map_err(io)?;
        // Views and lookups read a run here and there.
        map.expect_random();
        Self::from_backing(path.to_path_buf(), Backing::Map(map))
    }

    /// A run from bytes in memory (tests and the fuzz target).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ColdRun, Error> {
        Self::from_backing(PathBuf::from("<memory>"), Backing::Bytes(bytes))
    }

    fn from_backing(path: PathBuf, backing: Backing) -> Result<ColdRun, Error> {
        let all: &[u8] = match &backing {
            Backing::Map(m) => m.bytes(),
            Backing::Bytes(b) => b,
        };
        let bad = |offset: usize, why: String| corrupt_at(&path, offset, why);
        let len = all.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(bad(0, format!("a cold run of {len} bytes is too short")));
        }
        let h = &all[..HEADER_LEN];
        if h[..8] != MAGIC {
            return Err(bad(0, "not a cold run (magic)".into()));
        }
        if crc32fast::hash(&h[..60]) != le_u32(h, 60) {
            return Err(bad(0, "the header does not match its checksum".into()));
        }
        let version = u16::from_le_bytes(arr(h, 8));
        if version > VERSION {
            return Err(Error::NewerVersion {
                file: Some(path.clone()),
                what: format!("cold run format {version}, newer than this build's {VERSION}"),
            });
        }
        if usize_of(u64::from(le_u32(h, 12))) != PAGE {
            return Err(bad(12, format!("page size {}", le_u32(h, 12))));
        }
        let id = le_u64(h, 16);
        let rows = usize_of(le_u64(h, 24));
        let count = usize_of(u64::from(le_u32(h, 32)));
        let replaces = replaces_in(h, version);
        let flags = if version >= 4 { le_u32(h, 44) } else { 0 };
        if flags & !HOLDS_OPEN != 0 {
            return Err(bad(44, format!("flags {flags:#x}: unknown bits")));
        }
        let holds_open = flags & HOLDS_OPEN != 0;
        let t = &all[len - TRAILER_LEN..];
        if t[16..] != TRAILER_MAGIC || crc32fast::hash(&t[..12]) != le_u32(t, 12) {
            return Err(bad(len - TRAILER_LEN, "the trailer does not check (a truncated or damaged run)".into()));
        }
        let data_end = usize_of(le_u64(t, 0));
        let pages = data_end.div_ceil(PAGE);
        let crcs = data_end;
        if data_end < HEADER_LEN || crcs.checked_add(pages * 4) != Some(len - TRAILER_LEN) {
            return Err(bad(len - TRAILER_LEN, format!("data ends at {data_end} in a file of {len} bytes")));
        }
        // The page checksums' own checksum is checked by `verify` and
        // when a page does not match its checksum (`ColdRun::read`), not
        // here: an open reads a few pages of a run of thousands.
        let count_of_version =
            section_count(version).ok_or_else(|| bad(8, format!("run format version {version} does not exist")))?;
        if count != count_of_version {
            return Err(bad(32, format!("{count} sections, version {version} has {count_of_version}")));
        }
        let checked = (0..pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let mut run = ColdRun {
            id,
            path,
            backing,
            rows,
            count,
            sections: [(0, 0); SECTIONS.len()],
            data_end,
            crcs,
            checked,
            id_bounds: Default::default(),
            created_bounds: Default::default(),
            fence: Default::default(),
            names_asked: Default::default(),
            replaces,
            holds_open,
        };
        let dir_len = count * DIR_ENTRY_LEN;
        let dir_at = data_end
            .checked_sub(dir_len)
            .filter(|&d| d >= HEADER_LEN)
            .ok_or_else(|| corrupt_at(&run.path, data_end, "the section directory does not fit".into()))?;
        let dir = run.read(dir_at, dir_len)?.to_vec();
        for (i, want) in SECTIONS.iter().take(count).enumerate() {
            let e = &dir[i * DIR_ENTRY_LEN..(i + 1) * DIR_ENTRY_LEN];
            let (tag, at, n) = (le_u32(e, 0), usize_of(le_u64(e, 8)), usize_of(le_u64(e, 16)));
            if tag != *want as u32 || at < HEADER_LEN || at.checked_add(n).is_none_or(|end| end > dir_at) {
                return Err(corrupt_at(&run.path, dir_at, format!("section entry {i} (tag {tag}) is out of place")));
            }
            run.sections[i] = (at, n);
        }
        let expect = |s: Section, n: Option<usize>| n == Some(run.section_len(s));
        if !expect(Section::Rows, rows.checked_mul(ROW_LEN)) || !expect(Section::Ids, rows.checked_mul(ID_ENTRY_LEN)) {
            return Err(corrupt_at(&run.path, 24, format!("{rows} rows do not match the sections' sizes")));
        }
        if !run.section_len(Section::Events).is_multiple_of(EVENT_LEN)
            || !run.section_len(Section::Segments).is_multiple_of(SEGMENT_LEN)
        {
            return Err(corrupt_at(&run.path, dir_at, "a section of whole entries has a partial one".into()));
        }
        Ok(run)
    }

    /// The run's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The run this one stands in for, if it is a deletion's copy of a
    /// run without the rows deletions took (`tier.rs`, `shrink_runs`): a
    /// checkpoint that names that run, once its file is gone, opens this
    /// one instead, with none of its rows taken (the deletions are in the
    /// log after the checkpoint, and take fewer when replayed).
    pub fn replaces(&self) -> Option<u64> {
        self.replaces
    }

    /// The events a copy standing in for a run recorded as left out
    /// ([`Section::Dropped`]): of deleted jobs, waiting for compaction
    /// when it was written. A checkpoint that opens this run in place of
    /// the one it names adds them to its garbage (the replayed deletions
    /// no longer find those jobs to record them). Empty before format 3.
    pub fn dropped(&self) -> Result<Vec<Position>, Error> {
        if !self.has(Section::Dropped) {
            return Ok(Vec::new());
        }
        let b = self.whole(Section::Dropped)?;
        Ok(b.chunks_exact(EVENT_LEN).map(|e| Position { segment: le_u64(e, 0), offset: le_u64(e, 8) }).collect())
    }

    /// Reads through the whole map (not page by page, as a view's reads
    /// are) until the guard drops: for a pass over most of the run.
    pub(crate) fn read_through(&self) -> Option<crate::sys::map::ReadThrough<&SegmentMap>> {
        self.backing.map().map(SegmentMap::read_through)
    }

    /// The file's size.
    pub fn file_bytes(&self) -> u64 {
        self.all().len() as u64
    }

    fn all(&self) -> &[u8] {
        match &self.backing {
            Backing::Map(m) => m.bytes(),
            Backing::Bytes(b) => b,
        }
    }

    /// Whether the run has section `s` (a run of format 1 has no
    /// [`Section::ByStatus`]).
    pub fn has(&self, s: Section) -> bool {
        (s as usize) <= self.count
    }

    fn section_len(&self, s: Section) -> usize {
        self.sections[s as usize - 1].1
    }

    /// `len` bytes at `at`, every page they touch checked.
    fn read(&self, at: usize, len: usize) -> Result<&[u8], Error> {
        let end = at.checked_add(len).filter(|&e| e <= self.data_end).ok_or_else(|| {
            corrupt_at(&self.path, at, format!("a read of {len} bytes past the run's data ({})", self.data_end))
        })?;
        let all = self.all();
        if len > 0 {
            for page in at / PAGE..=(end - 1) / PAGE {
                let (word, bit) = (page / 64, 1u64 << (page % 64));
                if self.checked[word].load(Ordering::Relaxed) & bit != 0 {
                    continue;
                }
                let bytes = &all[page * PAGE..((page + 1) * PAGE).min(self.data_end)];
                if crc32fast::hash(bytes) != le_u32(all, self.crcs + page * 4) {
                    // Name the damage where it is: in the checksums or in
                    // the page.
                    self.check_page_checksums()?;
                    return Err(corrupt_at(&self.path, page * PAGE, "a page does not match its checksum".into()));
                }
                self.checked[word].fetch_or(bit, Ordering::Relaxed);
            }
        }
        Ok(&all[at..end])
    }

    /// `len` bytes at `at` of section `s`.
    fn section(&self, s: Section, at: usize, len: usize) -> Result<&[u8], Error> {
        self.read(self.section_at(s, at, len)?, len)
    }

    /// Where in the file the `len` bytes at `at` of section `s` are,
    /// unread.
    fn section_at(&self, s: Section, at: usize, len: usize) -> Result<usize, Error> {
        if !self.has(s) {
            return Err(corrupt_at(&self.path, 0, format!("a run of an older format has no section {s:?}")));
        }
        let (start, n) = self.sections[s as usize - 1];
        if at.checked_add(len).is_none_or(|e| e > n) {
            return Err(corrupt_at(&self.path, start, format!("a read past the end of section {s:?}")));
        }
        Ok(start + at)
    }

    /// Row `i`.
    pub fn row(&self, i: u32) -> Result<ColdRow, Error> {
        let b = self.row_bytes(i, ROW_LEN)?;
        let at = || self.sections[0].0 + i as usize * ROW_LEN;
        let row = ColdRow::decode(b).map_err(|why| corrupt_at(&self.path, at(), why))?;
        if !self.holds_open && !row.status().is_completed() {
            return Err(corrupt_at(
                &self.path,
                at(),
                format!("status reason {} in a run of Completed jobs", row.reason as u32),
            ));
        }
        Ok(row)
    }

    /// Whether it may hold jobs that are not Completed ([`HOLDS_OPEN`]).
    pub fn holds_open(&self) -> bool {
        self.holds_open
    }

    /// The first `len` bytes of row `i`.
    fn row_bytes(&self, i: u32, len: usize) -> Result<&[u8], Error> {
        let i = i as usize;
        if i >= self.rows {
            return Err(corrupt_at(&self.path, 0, format!("row {i} of a run of {}", self.rows)));
        }
        self.section(Section::Rows, i * ROW_LEN, len)
    }

    /// Row `i`'s (`createdon`, id), the rows' order, read without the rest
    /// of the row.
    pub fn created_key(&self, i: u32) -> Result<(i64, Uuid), Error> {
        let b = self.row_bytes(i, 24)?;
        Ok((i64::from_le_bytes(arr(b, 16)), Uuid::from_bytes(arr(b, 0))))
    }

    /// The (`createdon`, id) of its first and last rows, the oldest and
    /// the newest (`None`: it has no rows), read once: every page of a
    /// view asks it of every run.
    pub fn created_bounds(&self) -> Result<Option<CreatedBounds>, Error> {
        if let Some(&bounds) = self.created_bounds.get() {
            return Ok(bounds);
        }
        let bounds = match u32::try_from(self.rows).ok().and_then(|n| n.checked_sub(1)) {
            Some(last) => Some((self.created_key(0)?, self.created_key(last)?)),
            None => None,
        };
        Ok(*self.created_bounds.get_or_init(|| bounds))
    }

    /// Row `i`'s (`completedon`, id), the completed index's order, read
    /// without the rest of the row.
    pub fn completed_key(&self, i: u32) -> Result<(i64, Uuid), Error> {
        let b = self.row_bytes(i, 40)?;
        Ok((i64::from_le_bytes(arr(b, 32)), Uuid::from_bytes(arr(b, 0))))
    }

    /// The row of job `id`, if the run holds it.
    pub fn find(&self, id: Uuid) -> Result<Option<u32>, Error> {
        // Ids made by joblog grow with time (UUID v7), and a run holds the
        // jobs of a stretch of time: most ids fall outside its range, and
        // two comparisons spare the id filter's cache misses (a replay
        // that spills checks each new job against every run).
        if self.rows == 0 {
            return Ok(None);
        }
        let (lo, hi) = match self.id_bounds.get() {
            Some(&bounds) => bounds,
            None => {
                let id_at = |r: usize| {
                    self.section(Section::Ids, r * ID_ENTRY_LEN, ID_ENTRY_LEN).map(|e| Uuid::from_bytes(arr(e, 0)))
                };
                let bounds = (id_at(0)?, id_at(self.rows - 1)?);
                *self.id_bounds.get_or_init(|| bounds)
            }
        };
        if id < lo || id > hi || !self.may_hold(id)? {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0, self.rows);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.section(Section::Ids, mid * ID_ENTRY_LEN, ID_ENTRY_LEN)?;
            match Uuid::from_bytes(arr(e, 0)).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(le_u32(e, 16))),
            }
        }
        Ok(None)
    }

    /// False when the id filter proves the run does not hold `id`.
    fn may_hold(&self, id: Uuid) -> Result<bool, Error> {
        let bits = le_u64(self.section(Section::Bloom, 0, 8)?, 0);
        if bits == 0
            || bits.checked_div(8).and_then(|b| b.checked_add(8)) != Some(self.section_len(Section::Bloom) as u64)
        {
            return Err(corrupt_at(&self.path, self.sections[10].0, format!("an id filter of {bits} bits")));
        }
        for b in bloom_bits(id, bits) {
            let b = usize_of(b);
            if self.section(Section::Bloom, 8 + b / 8, 1)?[0] & (1 << (b % 8)) == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn string_count(&self) -> Result<usize, Error> {
        Ok(usize_of(u64::from(le_u32(self.section(Section::Strings, 0, 4)?, 0))))
    }

    /// String `sym` of the run (0: none).
    pub fn name(&self, sym: u32) -> Result<Option<&str>, Error> {
        if sym == 0 {
            return Ok(None);
        }
        let b = self.name_bytes(sym)?;
        std::str::from_utf8(b)
            .map(Some)
            .map_err(|_| corrupt_at(&self.path, self.sections[2].0, format!("string {sym} is not UTF-8")))
    }

    /// The bytes of string `sym` (at least 1), not checked to be UTF-8.
    fn name_bytes(&self, sym: u32) -> Result<&[u8], Error> {
        let n = self.string_count()?;
        let i = sym as usize;
        if i == 0 || i > n {
            return Err(corrupt_at(&self.path, self.sections[2].0, format!("string {i} of {n}")));
        }
        let o = self.section(Section::Strings, 4 + (i - 1) * 4, 8)?;
        let (from, to) = (le_u32(o, 0) as usize, le_u32(o, 4) as usize);
        let base = 4 + (n + 1) * 4;
        if to < from {
            return Err(corrupt_at(&self.path, self.sections[2].0, format!("string {i} ends before it starts")));
        }
        self.section(Section::Strings, base + from, to - from)
    }

    /// The run's symbol of `s`, if it holds that string. The search
    /// compares bytes (the order of UTF-8 strings is their bytes' order),
    /// so it does not check every string it passes: the one it returns
    /// equals `s`. Once the run has its fence ([`FENCE_AFTER`]), it finds
    /// there, in memory, the stretch of [`FENCE_STEP`] strings that would
    /// hold `s`, and searches the map only there: a handful of nearby
    /// reads, where a search of the whole run reads about twenty strings
    /// scattered through it, two waits for memory each (a view filtered by
    /// a name asks it of every run).
    pub fn sym(&self, s: &str) -> Result<Option<u32>, Error> {
        let n = self.string_count()?;
        let s = s.as_bytes();
        let (mut lo, mut hi) = (0, n);
        if let Some(fence) = self.fence(n) {
            // Fence strings at or below `s`: it is at or after the last
            // of them, before the next.
            let below = fence.count_at_or_below(s);
            if below == 0 {
                return Ok(None);
            }
            lo = (below - 1) * FENCE_STEP;
            hi = (lo + FENCE_STEP).min(n);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let sym = u32_of(mid + 1, "strings")?;
            match self.name_bytes(sym)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(sym)),
            }
        }
        Ok(None)
    }

    /// The run's [`NameFence`] (it holds `n` strings), read by the
    /// [`FENCE_AFTER`]th name asked of it (other threads asking meanwhile
    /// wait for it); `None` before, for a run of a few stretches, or when
    /// it could not be read.
    fn fence(&self, n: usize) -> Option<&NameFence> {
        if let Some(f) = self.fence.get() {
            return f.as_ref();
        }
        if n <= 2 * FENCE_STEP || self.names_asked.fetch_add(1, Ordering::Relaxed) < FENCE_AFTER {
            return None;
        }
        self.fence.get_or_init(|| self.read_fence(n).ok()).as_ref()
    }

    /// Reads every [`FENCE_STEP`]th of the run's `n` strings. Refused past
    /// the size of the strings' section: strings are stored one after
    /// another, so a run whose offsets make its strings overlap (damage)
    /// cannot make the fence larger than the section.
    fn read_fence(&self, n: usize) -> Result<NameFence, Error> {
        let most = self.section_len(Section::Strings);
        let mut fence = NameFence { bytes: Vec::new(), ends: Vec::with_capacity(n.div_ceil(FENCE_STEP)) };
        for i in (0..n).step_by(FENCE_STEP) {
            let name = self.name_bytes(u32_of(i + 1, "strings")?)?;
            if fence.bytes.len() + name.len() > most {
                return Err(corrupt_at(&self.path, self.sections[2].0, "strings that overlap".into()));
            }
            fence.bytes.extend_from_slice(name);
            fence.ends.push(u32_of(fence.bytes.len(), "strings")?);
        }
        fence.bytes.shrink_to_fit();
        Ok(fence)
    }

    /// Bytes of memory it holds besides its map: the pages checked, and
    /// its fence once read.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.checked.capacity() * 8
            + self.fence.get().and_then(Option::as_ref).map_or(0, |f| f.bytes.capacity() + f.ends.capacity() * 4)
    }

    /// The rows of index `s` under `key`: `createdon` order for the views'
    /// indices, (completedon, id) order for [`Section::Completed`].
    pub fn postings(&self, s: Section, key: u64) -> Result<Postings<'_>, Error> {
        let n = usize_of(le_u64(self.section(s, 0, 8)?, 0));
        let keys = n.checked_mul(POSTING_KEY_LEN).and_then(|k| k.checked_add(8)).unwrap_or(usize::MAX);
        if keys > self.section_len(s) {
            return Err(corrupt_at(&self.path, self.sections[s as usize - 1].0, format!("{n} keys in section {s:?}")));
        }
        let entry = |i: usize| self.section(s, 8 + i * POSTING_KEY_LEN, POSTING_KEY_LEN);
        let Some(i) = search_keys(n, key, |i| Ok(le_u64(entry(i)?, 0)))? else {
            return Ok(Postings { at: 0, len: 0, run: self });
        };
        let e = entry(i)?;
        let (start, len) = (le_u32(e, 8) as usize, le_u32(e, 12) as usize);
        let at = start.checked_mul(4).and_then(|s| s.checked_add(keys)).unwrap_or(usize::MAX);
        let at = self.section_at(s, at, len.saturating_mul(4))?;
        Ok(Postings { at, len, run: self })
    }

    /// Every key of index `s` with its set's length.
    pub fn keys(&self, s: Section) -> Result<Vec<(u64, usize)>, Error> {
        let n = usize_of(le_u64(self.section(s, 0, 8)?, 0));
        let b = self.section(s, 8, n.saturating_mul(POSTING_KEY_LEN))?;
        Ok(b.chunks_exact(POSTING_KEY_LEN).map(|e| (le_u64(e, 0), le_u32(e, 12) as usize)).collect())
    }

    /// The positions of row `r`'s events, oldest first.
    pub fn events(&self, row: &ColdRow) -> Result<Vec<Position>, Error> {
        Ok(self.event_positions(row)?.collect())
    }

    /// [`ColdRun::events`], read in place.
    pub fn event_positions(&self, row: &ColdRow) -> Result<impl Iterator<Item = Position> + '_, Error> {
        self.positions(row.events_start, row.events_len)
    }

    /// Asks for the list of row `i`'s event positions to be fetched into
    /// the cache, without waiting ([`crate::sys::prefetch`]): a hint, which
    /// checks nothing and reports nothing (the read that follows does).
    pub fn prefetch_events(&self, i: u32) {
        if let Ok((start, _)) = self.row_events(i) {
            let at = (start as usize).saturating_mul(EVENT_LEN);
            if let Some(e) = self.section_at(Section::Events, at, 1).ok().and_then(|at| self.all().get(at)) {
                crate::sys::prefetch(e);
            }
        }
    }

    /// Where row `i`'s events are listed (`events_start`, `events_len`),
    /// read of the row alone.
    fn row_events(&self, i: u32) -> Result<(u32, u32), Error> {
        let b = self.row_bytes(i, 100)?;
        Ok((le_u32(b, 92), le_u32(b, 96)))
    }

    /// [`ColdRun::event_positions`] of row `i`, reading of the row only
    /// where its events are (a deletion reads this for every row it takes).
    pub fn row_event_positions(&self, i: u32) -> Result<impl Iterator<Item = Position> + '_, Error> {
        let (start, len) = self.row_events(i)?;
        self.positions(start, len)
    }

    /// Calls `put` with the position of every event of each row of
    /// `rows`, row by row: [`ColdRun::row_event_positions`] for many rows
    /// (a deletion taking much of the run), with the rows and events
    /// checked once, whole. Rows in order read both in order.
    pub fn each_event_of(
        &self,
        rows: impl IntoIterator<Item = u32>,
        mut put: impl FnMut(Position),
    ) -> Result<(), Error> {
        let (all, events) = (self.whole(Section::Rows)?, self.whole(Section::Events)?);
        for r in rows {
            let b = all
                .get(r as usize * ROW_LEN..(r as usize + 1) * ROW_LEN)
                .ok_or_else(|| corrupt_at(&self.path, 0, format!("row {r} of a run of {}", self.rows)))?;
            let (start, len) = (le_u32(b, 92) as usize, le_u32(b, 96) as usize);
            let e = start.checked_add(len).and_then(|end| events.get(start * EVENT_LEN..end * EVENT_LEN));
            let e =
                e.ok_or_else(|| corrupt_at(&self.path, 0, format!("row {r}'s events past the end of section Events")))?;
            for e in e.chunks_exact(EVENT_LEN) {
                put(Position { segment: le_u64(e, 0), offset: le_u64(e, 8) });
            }
        }
        Ok(())
    }

    fn positions(&self, start: u32, len: u32) -> Result<impl Iterator<Item = Position> + '_, Error> {
        let at = (start as usize).saturating_mul(EVENT_LEN);
        let b = self.section(Section::Events, at, (len as usize).saturating_mul(EVENT_LEN))?;
        Ok(b.chunks_exact(EVENT_LEN).map(|e| Position { segment: le_u64(e, 0), offset: le_u64(e, 8) }))
    }

    /// The log segments the run's positions point into, with the
    /// generation each was in when the run was written.
    pub fn segments(&self) -> Result<BTreeMap<u64, u32>, Error> {
        let b = self.section(Section::Segments, 0, self.section_len(Section::Segments))?;
        b.chunks_exact(SEGMENT_LEN)
            .map(|e| {
                let g = u32::try_from(le_u64(e, 8))
                    .map_err(|_| corrupt_at(&self.path, self.sections[9].0, "a generation past 2^32".into()))?;
                Ok((le_u64(e, 0), g))
            })
            .collect()
    }

    /// The whole of section `s`, checked.
    fn whole(&self, s: Section) -> Result<&[u8], Error> {
        self.section(s, 0, self.section_len(s))
    }

    /// The sections of this run with its rows renumbered by `renumber`
    /// (`u32::MAX`: left out, `kept` are not; see [`copy_run`]), handed to
    /// `put` in file order.
    // The row counts fit a u32: they are this run's, fewer.
    #[allow(clippy::cast_possible_truncation)]
    fn sections_without<'p>(
        &self,
        renumber: &[u32],
        kept: usize,
        relocate: impl Fn(Position) -> Result<Position, Error>,
        live: &Generations,
        pending: Option<Pending<'p>>,
        put: Put<'_>,
    ) -> Result<(), Error> {
        let new_row = |r: u32| -> Result<Option<u32>, Error> {
            let n = *renumber.get(r as usize).ok_or_else(|| {
                corrupt_at(&self.path, 0, format!("an index names row {r} of a run of {}", self.rows))
            })?;
            Ok((n != u32::MAX).then_some(n))
        };
        let mut rows = Vec::with_capacity(kept * ROW_LEN);
        // At most the old section's size: the pages past what is used are
        // never touched.
        let mut events = Vec::with_capacity(self.section_len(Section::Events));
        let mut segments = BTreeMap::new();
        let mut ids = Vec::with_capacity(kept);
        let mut by_status = Vec::new();
        // A job's events, and the next job's, are mostly in one segment:
        // its generation is looked up when the segment changes.
        let mut last: Option<u64> = None;
        // A stand-in's record of what it left out: the pending events of
        // the rows it leaves out, and of those the run itself recorded
        // (each segment's pending offsets looked up once in a stretch).
        let mut dropped = Vec::new();
        if let Some(pending) = pending {
            let mut last: Option<(u64, Option<&'p [u64]>)> = None;
            let mut keep = |p: Position| {
                if last.is_none_or(|(s, _)| s != p.segment) {
                    last = Some((p.segment, pending(p.segment)));
                }
                if last.and_then(|(_, offsets)| offsets).is_some_and(|o| o.binary_search(&p.offset).is_ok()) {
                    dropped.push(p);
                }
            };
            self.dropped()?.into_iter().for_each(&mut keep);
            let left_out = (0..self.rows as u32).filter(|&r| renumber[r as usize] == u32::MAX);
            self.each_event_of(left_out, keep)?;
        }
        for r in 0..self.rows as u32 {
            if renumber[r as usize] == u32::MAX {
                continue;
            }
            let mut row = self.row(r)?;
            let positions = self.event_positions(&row)?;
            row.events_start = u32_of(events.len() / EVENT_LEN, "events")?;
            for p in positions {
                let p = relocate(p)?;
                if last != Some(p.segment) {
                    let generation = live.get(&p.segment).ok_or_else(|| {
                        Error::corrupt(format!(
                            "a job's event is in segment {}, which the log does not hold",
                            p.segment
                        ))
                    })?;
                    segments.insert(p.segment, *generation);
                    last = Some(p.segment);
                }
                events.extend_from_slice(&p.segment.to_le_bytes());
                events.extend_from_slice(&p.offset.to_le_bytes());
            }
            row.encode(&mut rows);
            ids.push(row.id);
            if !self.has(Section::ByStatus) {
                let reason = u64::from(row.reason as u32) << 32;
                by_status.push((reason | u64::from(row.operationtype), renumber[r as usize]));
                by_status.push((reason | u64::from(ANY_TYPE), renumber[r as usize]));
            }
        }
        put((Section::Rows, rows))?;
        let mut id_bytes = Vec::with_capacity(kept * ID_ENTRY_LEN);
        for e in self.whole(Section::Ids)?.chunks_exact(ID_ENTRY_LEN) {
            if let Some(n) = new_row(le_u32(e, 16))? {
                id_bytes.extend_from_slice(&e[..16]);
                id_bytes.extend_from_slice(&n.to_le_bytes());
            }
        }
        if id_bytes.len() != kept * ID_ENTRY_LEN {
            return Err(corrupt_at(&self.path, 0, "the ids section does not name each row once".into()));
        }
        put((Section::Ids, id_bytes))?;
        put((Section::Strings, self.whole(Section::Strings)?.to_vec()))?;
        // A postings section read whole: its keys, then each set's rows at
        // `start`..`start + length` of the list after them.
        let filtered = |s: Section| -> Result<SectionBytes, Error> {
            let n = usize_of(le_u64(self.section(s, 0, 8)?, 0));
            let b = self.whole(s)?;
            let list = n.checked_mul(POSTING_KEY_LEN).and_then(|k| k.checked_add(8)).filter(|&l| l <= b.len());
            let list = &b[list.ok_or_else(|| corrupt_at(&self.path, 0, format!("{n} keys in section {s:?}")))?..];
            let mut pairs = Vec::with_capacity(list.len() / 4);
            for e in b[8..8 + n * POSTING_KEY_LEN].chunks_exact(POSTING_KEY_LEN) {
                let (key, start, len) = (le_u64(e, 0), le_u32(e, 8) as usize, le_u32(e, 12) as usize);
                let set = start
                    .checked_add(len)
                    .and_then(|end| list.get(start * 4..end.checked_mul(4)?))
                    .ok_or_else(|| corrupt_at(&self.path, 0, format!("a set past the end of section {s:?}")))?;
                for r in set.chunks_exact(4) {
                    if let Some(n) = new_row(le_u32(r, 0))? {
                        pairs.push((key, n));
                    }
                }
            }
            Ok((s, postings(&pairs)?))
        };
        for s in [Section::ByType, Section::ByOwner, Section::ByWorkflow, Section::ByRegarding, Section::Completed] {
            put(filtered(s)?)?;
        }
        put((Section::Events, events))?;
        put(segments_section(&segments))?;
        put((Section::Bloom, bloom(ids.iter().copied(), ids.len())))?;
        if self.has(Section::ByStatus) {
            put(filtered(Section::ByStatus)?)?;
        } else {
            by_status.sort_unstable();
            by_status.dedup();
            put((Section::ByStatus, postings(&by_status)?))?;
        }
        put((Section::Dropped, positions_section(dropped)))
    }

    /// Checks every page (verify).
    pub fn check_all(&self) -> Result<(), Error> {
        self.check_page_checksums()?;
        self.read(0, self.data_end).map(|_| ())
    }

    /// Checks the page checksums against their own checksum (the
    /// trailer's).
    fn check_page_checksums(&self) -> Result<(), Error> {
        let all = self.all();
        let table = &all[self.crcs..all.len() - TRAILER_LEN];
        if crc32fast::hash(table) != le_u32(&all[all.len() - TRAILER_LEN..], 8) {
            return Err(corrupt_at(&self.path, self.crcs, "the page checksums do not match their checksum".into()));
        }
        Ok(())
    }
}

/// Row numbers of a run, as one bit each: the rows deletions took
/// (`tier::Cold::gone`), which a deletion by age makes most of a run, so
/// a set that costs a bit a row (of those up to the highest one) and is
/// iterated in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    words: Vec<u64>,
    len: usize,
}

impl RowSet {
    /// Whether row `r` is in.
    pub fn contains(&self, r: &u32) -> bool {
        self.words.get(*r as usize / 64).is_some_and(|w| w & (1 << (r % 64)) != 0)
    }

    /// Adds row `r`; whether it was not in.
    pub fn insert(&mut self, r: u32) -> bool {
        let word = r as usize / 64;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1 << (r % 64);
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(new);
        new
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its rows, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0u32..).zip(&self.words).flat_map(|(w, &bits)| {
            let mut left = bits;
            std::iter::from_fn(move || {
                (left != 0).then(|| {
                    let b = left.trailing_zeros();
                    left &= left - 1;
                    w * 64 + b
                })
            })
        })
    }
}

impl Extend<u32> for RowSet {
    fn extend<I: IntoIterator<Item = u32>>(&mut self, rows: I) {
        for r in rows {
            self.insert(r);
        }
    }
}

impl FromIterator<u32> for RowSet {
    fn from_iter<I: IntoIterator<Item = u32>>(rows: I) -> Self {
        let mut set = RowSet::default();
        set.extend(rows);
        set
    }
}

/// A set of row numbers read in place, each page checked when one of its
/// numbers is first read: a page of a view reads a few numbers of a set
/// of millions.
#[derive(Clone, Copy)]
pub struct Postings<'a> {
    /// Where its numbers start in the run's file, and how many there are.
    at: usize,
    len: usize,
    run: &'a ColdRun,
}

impl<'a> Postings<'a> {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th row number (`i` below [`Postings::len`]).
    pub fn get(&self, i: usize) -> Result<u32, Error> {
        if i >= self.len {
            return Err(corrupt_at(&self.run.path, self.at, format!("row number {i} of a set of {}", self.len)));
        }
        let r = le_u32(self.run.read(self.at + i * 4, 4)?, 0);
        if r as usize >= self.run.rows {
            return Err(corrupt_at(&self.run.path, 0, format!("an index names row {r} of a run of {}", self.run.rows)));
        }
        Ok(r)
    }
}

fn corrupt_at(path: &Path, offset: usize, why: String) -> Error {
    Error::Corrupt {
        file: Some(path.to_path_buf()),
        offset: Some(offset as u64),
        seq: None,
        reason: Corruption::Other(format!(
            "cold run: {why} (a run is derived from the log: with the store closed, moving its snapshots directory aside makes the next open rebuild everything from the log)"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]
    use super::*;

    /// A Completed job `n` of a run, its columns drawn from `rng`.
    pub(crate) fn job(rng: &mut fastrand::Rng, n: usize) -> ColdJob<'static> {
        let createdon = rng.i64(0..1_000_000);
        let owners = ["alice", "bob", "carol"];
        let events: Vec<Position> =
            (0..rng.usize(1..5)).map(|k| Position { segment: 1, offset: (n * 10 + k) as u64 }).collect();
        ColdJob {
            row: ColdRow {
                id: Uuid::from_u128(rng.u128(..)),
                createdon,
                startedon: createdon + 1,
                completedon: createdon + rng.i64(1..1000),
                modifiedon: createdon + 2000,
                postponeuntil: i64::MIN,
                operationtype: [1, 10, 11][rng.usize(0..3)],
                reason: [StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled][rng.usize(0..3)],
                owner: 0,
                owningbusinessunit: 0,
                workflow: 0,
                regarding: 0,
                retrycount: rng.u32(0..3),
                errorcode: i32::MIN,
                executiontimespan_ms: rng.u32(..),
                events_start: 0,
                events_len: 0,
                message_event: 0,
            },
            owner: owners[rng.usize(0..3)].into(),
            owningbusinessunit: "root".into(),
            workflow: rng.bool().then(|| format!("wf{}", rng.usize(0..4)).into()),
            regarding: rng.bool().then(|| format!("account:{}", rng.usize(0..50)).into()),
            message_event: (events.len() > 1).then_some(1),
            events,
        }
    }

    /// The file of a run of `jobs`.
    pub(crate) fn bytes_of(jobs: &[ColdJob]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(7));
        write_run(&path, 7, jobs.to_vec(), &BTreeMap::from([(1, 0)]), 0).unwrap();
        std::fs::read(path).unwrap()
    }

    /// `n` jobs as [`job`] draws them (from `seed`), each regarding the
    /// row `regarding` names for it (`None`: as drawn).
    fn jobs_regarding(
        seed: u64,
        n: usize,
        mut regarding: impl FnMut(&mut fastrand::Rng, usize) -> Option<String>,
    ) -> Vec<ColdJob<'static>> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n)
            .map(|k| {
                let mut j = job(&mut rng, k);
                if let Some(r) = regarding(&mut rng, k) {
                    j.regarding = Some(r.into());
                }
                j
            })
            .collect()
    }

    /// A run of thousands of names (so that [`ColdRun::sym`] goes through
    /// its fence, and the postings' keys are many): every name is found as
    /// its own symbol, no name it does not hold is found (below the first,
    /// between any two, above the last), and every regarding row's set
    /// holds its jobs, whatever keys are asked for.
    #[test]
    fn names_and_keys_are_found_among_thousands() {
        // Two tables, one with gaps in its rows' numbers.
        let jobs = jobs_regarding(11, 4000, |rng, _| {
            Some(match rng.usize(0..3) {
                0 => format!("contact:{}", rng.usize(0..100) * 37),
                _ => format!("account:{}", rng.usize(0..3000)),
            })
        });
        let run = ColdRun::from_bytes(bytes_of(&jobs)).unwrap();
        let n = run.string_count().unwrap();
        assert!(n > 40 * FENCE_STEP, "{n} strings");
        let names: Vec<String> = (1..=n as u32).map(|i| run.name(i).unwrap().unwrap().to_string()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        // The first `FENCE_AFTER` names are searched through the whole
        // run, the rest through its fence, read by the next.
        for (i, name) in (1u32..).zip(&names).take(FENCE_AFTER as usize) {
            assert_eq!(run.sym(name).unwrap(), Some(i), "{name}");
        }
        assert!(run.fence.get().is_none());
        for (i, name) in (1u32..).zip(&names) {
            assert_eq!(run.sym(name).unwrap(), Some(i), "{name}");
            // Just above it (a longer string) and just below it (shorter
            // by its last byte, when that is not a string of the run).
            let above = format!("{name}\0");
            assert_eq!(run.sym(&above).unwrap(), None, "{above}");
            let below = &name[..name.len() - 1];
            if names.binary_search_by(|s| s.as_str().cmp(below)).is_err() {
                assert_eq!(run.sym(below).unwrap(), None, "{below}");
            }
        }
        assert!(run.fence.get().is_some_and(Option::is_some));
        for absent in ["", "0", "account:", "account:99999", "contact:1", "zzz", "\u{10FFFF}"] {
            assert_eq!(run.sym(absent).unwrap(), None, "{absent}");
        }
        // Each regarding row's jobs, by its symbol; every other key (the
        // other names' symbols, 0, past the last) holds none.
        let mut by_name: std::collections::HashMap<&str, usize> = Default::default();
        for j in &jobs {
            *by_name.entry(j.regarding.as_deref().unwrap()).or_default() += 1;
        }
        for key in (0..=n as u64 + 2).chain([u64::from(u32::MAX), u64::MAX]) {
            let expected = (1..=n as u64)
                .contains(&key)
                .then(|| by_name.get(names[key as usize - 1].as_str()).copied())
                .flatten()
                .unwrap_or(0);
            assert_eq!(run.postings(Section::ByRegarding, key).unwrap().len(), expected, "key {key}");
        }
    }

    /// Keys spread evenly, unevenly, in clumps: each key is found where
    /// it is, none that is not there is found, and no search reads more
    /// than 2 + 2⌈log₂ n⌉ keys; keys out of order (damage) end a search
    /// all the same.
    #[test]
    fn keys_are_found_by_interpolation_within_twice_the_halvings() {
        let mut rng = fastrand::Rng::with_seed(3);
        let sets: Vec<Vec<u64>> = vec![
            vec![],
            vec![5],
            (1..=1000).collect(),
            (0..63).map(|k| 1u64 << k).collect(),
            (0..20u64).flat_map(|r| [(r << 32) | 1, (r << 32) | 10, (r << 32) | u64::from(u32::MAX)]).collect(),
            (0..3000).map(|k| if k < 2990 { k } else { u64::MAX - 3000 + k }).collect(),
            {
                let mut v: Vec<u64> = (0..5000).map(|_| rng.u64(..)).collect();
                v.sort_unstable();
                v.dedup();
                v
            },
        ];
        for keys in &sets {
            let n = keys.len();
            // 2 + 2⌈log₂ n⌉.
            let most = 2 + 2 * (usize::BITS - n.saturating_sub(1).leading_zeros()) as usize;
            let mut probes: Vec<u64> = keys.iter().flat_map(|&k| [k, k.wrapping_sub(1), k.wrapping_add(1)]).collect();
            probes.extend([0, u64::MAX]);
            for key in probes {
                let mut reads = 0;
                let found = search_keys(n, key, |i| {
                    reads += 1;
                    Ok(keys[i])
                })
                .unwrap();
                assert_eq!(found, keys.binary_search(&key).ok(), "{key} of {n}");
                assert!(reads <= most, "{reads} reads for {key} of {n}");
            }
        }
        for _ in 0..200 {
            let keys: Vec<u64> = (0..rng.usize(0..300)).map(|_| rng.u64(..50)).collect();
            let key = rng.u64(..50);
            let found = search_keys(keys.len(), key, |i| Ok(keys[i])).unwrap();
            assert!(found.is_none_or(|i| keys[i] == key));
        }
    }

    /// A run whose strings' offsets make them overlap (damage behind
    /// valid checksums): its fence is refused at the size of the strings'
    /// section instead of growing to the square of it, and names are then
    /// searched through the whole run, as before fences.
    #[test]
    fn a_fence_over_overlapping_strings_is_refused() {
        let jobs = jobs_regarding(5, 2000, |_, n| Some(format!("account:{n}")));
        let good = bytes_of(&jobs);
        let data_end = usize_of(le_u64(&good, good.len() - TRAILER_LEN));
        let run = ColdRun::from_bytes(good.clone()).unwrap();
        let ((start, len), n) = (run.sections[2], run.string_count().unwrap());
        assert!(n > 40 * FENCE_STEP);
        let total = le_u32(&good, start + 4 + n * 4);
        // String `i` (from 0) is `offsets[i]..offsets[i + 1]`: every even
        // one (every one the fence reads) becomes all of them.
        let mut data = good[..data_end].to_vec();
        for j in 1..=n {
            let v = if j % 2 == 1 { total } else { 0 };
            data[start + 4 + j * 4..start + 8 + j * 4].copy_from_slice(&v.to_le_bytes());
        }
        let run = ColdRun::from_bytes(with_valid_checksums(&data)).unwrap();
        let refused = run.read_fence(n).err().unwrap().to_string();
        assert!(refused.contains("strings that overlap"), "{refused}");
        for _ in 0..=FENCE_AFTER {
            let _ = run.sym("account:7");
        }
        assert!(matches!(run.fence.get(), Some(None)));
        assert!(run.heap_bytes() < len, "{} bytes held", run.heap_bytes());
    }

    #[test]
    fn every_index_reads_back_what_was_written() {
        let mut rng = fastrand::Rng::with_seed(7);
        let jobs: Vec<ColdJob> = (0..3000).map(|n| job(&mut rng, n)).collect();
        let run = ColdRun::from_bytes(bytes_of(&jobs)).unwrap();
        assert_eq!((run.id(), run.len()), (7, 3000));
        // Rows by (createdon, id), each found by id, its columns and events back.
        let rows: Vec<ColdRow> = (0..3000).map(|i| run.row(i).unwrap()).collect();
        assert!(rows.windows(2).all(|w| w[0].created_key() < w[1].created_key()));
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(run.created_key(i as u32).unwrap(), r.created_key());
            assert_eq!(run.completed_key(i as u32).unwrap(), (r.completedon, r.id));
        }
        assert!(run.created_key(3000).unwrap_err().is_corruption());
        for j in &jobs {
            let r = run.find(j.row.id).unwrap().expect("found");
            let row = run.row(r).unwrap();
            assert_eq!(
                (row.createdon, row.completedon, row.reason),
                (j.row.createdon, j.row.completedon, j.row.reason)
            );
            assert_eq!(run.name(row.owner).unwrap(), Some(&*j.owner));
            assert_eq!(run.name(row.workflow).unwrap(), j.workflow.as_deref());
            assert_eq!(run.name(row.regarding).unwrap(), j.regarding.as_deref());
            assert_eq!(run.events(&row).unwrap(), j.events);
            assert_eq!(row.message_event, j.message_event.unwrap_or(NO_MESSAGE));
        }
        assert_eq!(run.find(Uuid::from_u128(1)).unwrap(), None);
        // The id filter turns most absent ids away (7 probes, 10 bits a row:
        // about 1% pass).
        let passed = (0..10_000).filter(|_| run.may_hold(Uuid::from_u128(rng.u128(..))).unwrap()).count();
        assert!(passed < 300, "{passed} of 10000 absent ids pass the filter");
        assert_eq!(run.sym("nobody").unwrap(), None);
        // Each index holds exactly its rows, in createdon order.
        let alice = u64::from(run.sym("alice").unwrap().unwrap());
        let set = run.postings(Section::ByOwner, alice).unwrap();
        let got: Vec<u32> = (0..set.len()).map(|i| set.get(i).unwrap()).collect();
        let want: Vec<u32> = (0..3000u32).filter(|&i| rows[i as usize].owner == alice as u32).collect();
        assert_eq!(got, want);
        // The completed index, by (completedon, id).
        let key = (u64::from(StatusReason::Failed as u32) << 32) | 10;
        let set = run.postings(Section::Completed, key).unwrap();
        let got: Vec<(i64, Uuid)> =
            (0..set.len()).map(|i| rows[set.get(i).unwrap() as usize]).map(|r| (r.completedon, r.id)).collect();
        let mut want: Vec<(i64, Uuid)> = rows
            .iter()
            .filter(|r| r.reason == StatusReason::Failed && r.operationtype == 10)
            .map(|r| (r.completedon, r.id))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
        let total: usize = run.keys(Section::Completed).unwrap().iter().map(|k| k.1).sum();
        assert_eq!(total, 3000);
        // By Status Reason (and type), in createdon order.
        for (reason, t) in [(StatusReason::Failed, 10), (StatusReason::Canceled, ANY_TYPE)] {
            let set = run.postings(Section::ByStatus, (u64::from(reason as u32) << 32) | u64::from(t)).unwrap();
            let got: Vec<u32> = (0..set.len()).map(|i| set.get(i).unwrap()).collect();
            let want: Vec<u32> = (0..3000u32)
                .filter(|&i| {
                    rows[i as usize].reason == reason && (t == ANY_TYPE || rows[i as usize].operationtype == t)
                })
                .collect();
            assert!(!want.is_empty());
            assert_eq!(got, want);
        }
        assert_eq!(run.segments().unwrap(), BTreeMap::from([(1, 0)]));
        run.check_all().unwrap();
    }

    /// Damage behind valid checksums (what a broken writer could leave):
    /// opening and every read answer or fail, never panic.
    #[test]
    fn damaged_sections_behind_valid_checksums_never_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        // Rows regarding 100 more rows: strings enough for a fence.
        let jobs = jobs_regarding(11, 200, |_, n| (n % 2 == 0).then(|| format!("account:{}", 1000 + n)));
        let good = bytes_of(&jobs);
        let data_end = usize_of(le_u64(&good, good.len() - TRAILER_LEN));
        let run = ColdRun::from_bytes(good.clone()).unwrap();
        for _ in 0..=FENCE_AFTER {
            run.sym("bob").unwrap();
        }
        assert!(run.fence.get().is_some_and(Option::is_some), "undamaged, it reads its fence");
        for _ in 0..2000 {
            let mut data = good[..data_end].to_vec();
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(HEADER_LEN..data.len());
                data[at] = rng.u8(..);
            }
            if let Ok(run) = ColdRun::from_bytes(with_valid_checksums(&data)) {
                run.check_all().unwrap();
                for i in 0..run.len() as u32 {
                    if let Ok(row) = run.row(i) {
                        let _ = (run.events(&row), run.name(row.owner), run.name(row.regarding), run.find(row.id));
                    }
                }
                for s in POSTINGS {
                    for (k, _) in run.keys(s).unwrap_or_default() {
                        if let Ok(p) = run.postings(s, k) {
                            for i in 0..p.len() {
                                let _ = p.get(i);
                            }
                        }
                    }
                }
                // Past `FENCE_AFTER` names: the fence is read too.
                for k in 0..=FENCE_AFTER as usize {
                    let _ = run.sym(["bob", "account:1010", "account:7", "", "zzz"][k % 5]);
                }
                let _ = run.segments();
            }
        }
    }

    /// A run as what it answers: each row (names for symbols, events),
    /// each index's sets as ids (string keys as strings).
    fn answers(run: &ColdRun) -> (Vec<String>, Vec<String>) {
        let rows = (0..run.len() as u32)
            .map(|i| {
                let r = run.row(i).unwrap();
                assert_eq!(run.find(r.id).unwrap(), Some(i));
                let names = [r.owner, r.owningbusinessunit, r.workflow, r.regarding].map(|s| run.name(s).unwrap());
                let cols = (r.createdon, r.completedon, r.reason, r.operationtype, r.retrycount, r.message_event);
                format!("{} {cols:?} {names:?} {:?}", r.id, run.events(&r).unwrap())
            })
            .collect();
        let mut sets = Vec::new();
        for s in POSTINGS {
            for (key, _) in run.keys(s).unwrap() {
                let p = run.postings(s, key).unwrap();
                let ids: Vec<Uuid> = (0..p.len()).map(|i| run.row(p.get(i).unwrap()).unwrap().id).collect();
                let key = match s {
                    Section::ByOwner | Section::ByWorkflow | Section::ByRegarding => {
                        run.name(key as u32).unwrap().unwrap().to_string()
                    }
                    _ => key.to_string(),
                };
                sets.push(format!("{s:?} {key} {ids:?}"));
            }
        }
        (rows, sets)
    }

    #[test]
    fn a_copy_without_some_rows_answers_as_a_run_written_of_the_others() {
        let mut rng = fastrand::Rng::with_seed(5);
        let jobs: Vec<ColdJob> = (0..3000).map(|n| job(&mut rng, n)).collect();
        let run = ColdRun::from_bytes(bytes_of(&jobs)).unwrap();
        let gone: RowSet = (0..3000).filter(|_| rng.u8(..) < 100).collect();
        let gone_ids: std::collections::HashSet<Uuid> = gone.iter().map(|r| run.row(r).unwrap().id).collect();
        // Segment 1's events moved 1000 bytes on; segment 2 is new.
        let moved = |p: Position| Position { segment: p.segment + 1, offset: p.offset + 1000 };
        let live = Generations::from([(2, 4)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(8));
        copy_run(&path, 8, &run, &gone, None, |p| Ok(moved(p)), &live).unwrap();
        let copy = ColdRun::open(&path).unwrap();
        copy.check_all().unwrap();
        let others: Vec<ColdJob> = jobs
            .iter()
            .filter(|j| !gone_ids.contains(&j.row.id))
            .map(|j| ColdJob { events: j.events.iter().map(|&p| moved(p)).collect(), ..j.clone() })
            .collect();
        assert_eq!(copy.len(), others.len());
        let written = tempfile::tempdir().unwrap();
        let path = written.path().join(file_name(8));
        write_run(&path, 8, others, &BTreeMap::from([(2, 4)]), 0).unwrap();
        assert_eq!(answers(&copy), answers(&ColdRun::open(&path).unwrap()));
        assert_eq!(copy.segments().unwrap(), BTreeMap::from([(2, 4)]));
        for id in gone_ids {
            assert_eq!(copy.find(id).unwrap(), None);
        }
        // A position the log no longer holds is refused, and nothing is left.
        let path = dir.path().join(file_name(9));
        let err = copy_run(&path, 9, &run, &gone, None, Ok, &live).unwrap_err();
        assert!(err.to_string().contains("which the log does not hold"), "{err}");
        assert!(!path.exists());
        // Every row gone: an empty run.
        let all: RowSet = (0..3000).collect();
        let even: BTreeMap<u64, Vec<u64>> = jobs
            .iter()
            .flat_map(|j| j.events.iter())
            .filter(|p| p.offset.is_multiple_of(2))
            .fold(BTreeMap::new(), |mut m, p| {
                m.entry(p.segment).or_insert_with(Vec::new).push(p.offset);
                m
            })
            .into_iter()
            .map(|(s, mut o)| {
                o.sort_unstable();
                o.dedup();
                (s, o)
            })
            .collect();
        let stand_in = StandIn { replaces: 4, pending: &|s| even.get(&s).map(Vec::as_slice) };
        copy_run(&path, 9, &run, &all, Some(stand_in), Ok, &live).unwrap();
        let copy = ColdRun::open(&path).unwrap();
        assert_eq!(copy.replaces(), Some(4));
        // It records the pending events of the rows it left out, sorted.
        let mut expected: Vec<Position> =
            jobs.iter().flat_map(|j| j.events.iter().copied()).filter(|p| p.offset.is_multiple_of(2)).collect();
        expected.sort_unstable_by_key(|p| (p.segment, p.offset));
        expected.dedup();
        assert_eq!(copy.dropped().unwrap(), expected);
        assert_eq!(header_of(&path), Some((9, Some(4))));
        assert!(ColdRun::open(&path).unwrap().is_empty());
    }

    #[test]
    fn an_empty_run_opens() {
        let run = ColdRun::from_bytes(bytes_of(&[])).unwrap();
        assert!(run.is_empty());
        assert_eq!(run.postings(Section::ByType, 1).unwrap().len(), 0);
        run.check_all().unwrap();
    }

    #[test]
    fn a_flipped_byte_is_an_error_where_it_is_read_and_a_cut_file_does_not_open() {
        let mut rng = fastrand::Rng::with_seed(9);
        let jobs: Vec<ColdJob> = (0..500).map(|n| job(&mut rng, n)).collect();
        let good = bytes_of(&jobs);
        let whole = ColdRun::from_bytes(good.clone()).unwrap();
        for at in (0..good.len()).step_by(97) {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            // Either it does not open, or every read gives the right answer
            // or an error: never a wrong one.
            if let Ok(run) = ColdRun::from_bytes(bad) {
                assert!(run.check_all().unwrap_err().is_corruption(), "byte {at}");
                for i in 0..500 {
                    assert!(run.row(i).map_or(true, |r| r == whole.row(i).unwrap()), "byte {at}, row {i}");
                }
                for j in &jobs {
                    assert!(run.find(j.row.id).map_or(true, |r| r == whole.find(j.row.id).unwrap()), "byte {at}");
                }
            }
        }
        for cut in [0, 10, HEADER_LEN, good.len() / 2, good.len() - 1] {
            assert!(ColdRun::from_bytes(good[..cut].to_vec()).unwrap_err().is_corruption(), "cut at {cut}");
        }
    }

    /// The page checksums' own checksum is not read at the open (a few
    /// pages of thousands are read after it): a flipped byte in them is
    /// found where the page it checks is read, and named as theirs; the
    /// other pages read as before, and `verify` finds it.
    #[test]
    fn damaged_page_checksums_are_found_at_the_page_they_check() {
        let mut rng = fastrand::Rng::with_seed(11);
        let jobs: Vec<ColdJob> = (0..500).map(|n| job(&mut rng, n)).collect();
        let good = bytes_of(&jobs);
        let whole = ColdRun::from_bytes(good.clone()).unwrap();
        let rows_page = whole.sections[0].0 / PAGE;
        let mut bad = good.clone();
        bad[whole.crcs + rows_page * 4] ^= 0x01;
        let run = ColdRun::from_bytes(bad).expect("opens: nothing it reads at the open is damaged");
        let err = run.row(0).unwrap_err();
        assert!(err.to_string().contains("the page checksums do not match their checksum"), "{err}");
        let last = u32::try_from(whole.len() - 1).unwrap();
        if (whole.sections[0].0 + last as usize * ROW_LEN) / PAGE != rows_page {
            assert_eq!(run.row(last).unwrap(), whole.row(last).unwrap());
        }
        assert!(run.check_all().unwrap_err().to_string().contains("page checksums"));
    }
}
