//! Checking a store (`joblog verify`) and copying the intact part of a
//! damaged one into a new store (`joblog salvage`). The command line only
//! prints what these return.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, Engine, SIMULATION_MARKER};
use crate::domain::{DomainError, Event, SystemClock, Timestamp};
use crate::error::Error;
use crate::log::manifest::{check_files, parse_segment_file_name, Manifest, MANIFEST_FILE};
use crate::log::{Batch, ColdMerge, Log, LogConfig, Position, COLD};
use crate::projection::query::{Filter, Visibility};
use crate::projection::Projection;

/// What `verify` found: every problem, each naming what is wrong and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Segments checked.
    pub segments: usize,
    /// Events checked.
    pub events: u64,
    /// Each problem found, naming what is wrong and where.
    pub problems: Vec<String>,
}

impl StoreReport {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds a problem unless an earlier one already names the same segment
    /// file (the first one, with its offset, says it best) or says the same.
    fn add(&mut self, problem: String) {
        let names = segment_names(&problem);
        let known = self.problems.iter().any(|p| *p == problem || segment_names(p).iter().any(|n| names.contains(n)));
        if !known {
            self.problems.push(problem);
        }
    }
}

/// The segment file names (`NNN.seg`, `NNN-gK.seg`) a message mentions.
fn segment_names(text: &str) -> Vec<&str> {
    text.split(['/', ' ', '(', ')', ',', ':']).filter(|w| parse_segment_file_name(w).is_some()).collect()
}

impl Engine {
    /// Every check `joblog verify` makes on an open store: each frame's
    /// checksum, each sealed segment against the manifest, the projection's
    /// indices, and the projection against a fresh replay, job by job.
    pub fn verify(&self) -> StoreReport {
        self.verify_with(&mut |_| {})
    }

    /// [`Engine::verify`], calling `progress` with the jobs compared so far.
    pub fn verify_with(&self, progress: &mut dyn FnMut(u64)) -> StoreReport {
        let mut r = StoreReport::default();
        match self.inner.log.verify() {
            Ok(v) => {
                r.segments = v.segments;
                r.events = v.frames;
                r.problems.extend(v.problems);
            }
            Err(e) => r.problems.push(format!("checking the segments failed: {e}")),
        }
        // A checkpoint covers only events the log held: one ahead of the log
        // proves events were lost from its end (the active segment deleted,
        // truncated or zeroed), which no checksum can show.
        for note in &self.inner.opened.checkpoints_skipped {
            if Projection::is_ahead_of_the_log(note) {
                r.problems.push(note.clone());
            }
        }
        for entry in std::fs::read_dir(self.inner.dir.join("snapshots")).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".bin.ahead-") {
                r.problems.push(format!(
                    "{}: a checkpoint that was ahead of the log when it was opened for writing: events that were once in the log are missing",
                    entry.path().display()
                ));
            }
        }
        r.problems.extend(Projection::check_images(&self.inner.dir.join("snapshots")));
        let live = self.state();
        // Every page of every cold run against its checksum, and the page
        // checksums against theirs (an open reads neither whole).
        for run in live.cold_runs() {
            if let Err(e) = run.check_all() {
                r.problems.push(e.to_string());
            }
        }
        r.problems.extend(live.check_indices());
        // Up to the live state's last event: the log may already hold
        // later ones whose writers wait for this state to be let go.
        match self.replay_until_seq(live.last_seq()) {
            Ok(fresh) => r.problems.extend(compare(&live, &fresh, &self.inner.log, progress)),
            Err(e) => r.problems.push(format!("replaying the log failed: {e}")),
        }
        r
    }
}

/// What `verify` reports about a store that does not open: why, then every
/// problem found in its files (the manifest missing or damaged, segments it
/// lists missing, short or changed, extra segments), then what a read-only
/// salvage read finds.
pub fn verify_unopenable(dir: &Path, why: &Error) -> StoreReport {
    let seg_dir = dir.join("segments");
    let mut files = StoreReport::default();
    files.segments = check_files(&seg_dir, &mut |p| files.add(p));
    // A missing or damaged manifest is why the store does not open: the
    // opening error (e.g. "two segments after the last sealed one") only
    // repeats it in other words.
    let mut r = StoreReport { segments: files.segments, ..StoreReport::default() };
    if !files.problems.iter().any(|p| p.contains(MANIFEST_FILE)) {
        r.add(format!("the store does not open: {why}"));
    }
    for p in files.problems {
        r.add(p);
    }
    match Log::open(&seg_dir, LogConfig::salvage()) {
        Ok(log) => {
            r.segments = log.segments().len();
            for p in &log.recovery().problems {
                r.add(p.clone());
            }
            match log.verify() {
                Ok(v) => {
                    r.events = v.frames;
                    for p in v.problems {
                        r.add(p);
                    }
                }
                Err(e) => r.add(format!("checking the segments failed: {e}")),
            }
        }
        // With the manifest gone, this only repeats why.
        Err(_) if r.problems.iter().any(|p| p.contains(MANIFEST_FILE)) => {}
        Err(e) => r.add(format!("the log cannot be read, even read-only: {e}")),
    }
    r
}

/// Differences between the live projection and a fresh replay.
fn compare(live: &Projection, fresh: &Projection, log: &Log, progress: &mut dyn FnMut(u64)) -> Vec<String> {
    let mut problems = Vec::new();
    if live.job_count() != fresh.job_count() {
        problems.push(format!(
            "the projection holds {} jobs; a replay of the log holds {}",
            live.job_count(),
            fresh.job_count()
        ));
    }
    if live.policy() != fresh.policy() {
        problems.push(format!(
            "the service's policy in the projection ({:?}) differs from a replay of the log ({:?})",
            live.policy().set_keys(),
            fresh.policy().set_keys()
        ));
    }
    if live.directory() != fresh.directory() {
        problems.push("the users, business units and roles in the projection differ from a replay of the log".into());
    }
    if live.deletions() != fresh.deletions() || live.deletions_by_id() != fresh.deletions_by_id() {
        problems.push("the deletions' audit trail in the projection differs from a replay of the log".into());
    }
    if live.tokens() != fresh.tokens() {
        problems.push(format!(
            "the bearer tokens in the projection ({}) differ from a replay of the log ({})",
            live.tokens().len(),
            fresh.tokens().len()
        ));
    }
    // The events of deleted jobs still in the log, which compaction is to
    // drop: one missing would stay in the log for good (a cold segment
    // never counted all garbage), one too many would drop a live event.
    let held: std::collections::BTreeSet<u64> = log.segments().iter().map(|s| s.key).collect();
    let garbage_of = |p: &Projection| -> BTreeMap<u64, Vec<u64>> {
        p.garbage()
            .iter()
            .filter(|(k, v)| held.contains(k) && !v.is_empty())
            .map(|(k, v)| {
                let mut v = v.clone();
                v.sort_unstable();
                (*k, v)
            })
            .collect()
    };
    let (live_garbage, fresh_garbage) = (garbage_of(live), garbage_of(fresh));
    if live_garbage != fresh_garbage {
        let count = |g: &BTreeMap<u64, Vec<u64>>| g.values().map(Vec::len).sum::<usize>();
        problems.push(format!(
            "the projection lists {} events of deleted jobs for compaction; a replay of the log lists {}",
            count(&live_garbage),
            count(&fresh_garbage)
        ));
    }
    let mut done = 0u64;
    for page in live.pages(&Filter::default(), &Visibility::All, 4096) {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                problems.push(format!("the projection's jobs cannot be listed: {e}"));
                return problems;
            }
        };
        for id in &page {
            match (live.job(*id, log), fresh.job(*id, log)) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(_), Ok(_)) => problems.push(format!("job {id}: the projection differs from a replay")),
                (Ok(_), Err(_)) => problems.push(format!("job {id}: in the projection, not in a replay of the log")),
                (Err(e), _) => problems.push(format!("job {id}: cannot be read: {e}")),
            }
            if problems.len() > 100 {
                return problems;
            }
        }
        done += page.len() as u64;
        progress(done);
    }
    problems
}

/// How [`salvage`] copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageOptions {
    /// Re-stamp every event (and the times of a created job) later than
    /// this time at this time: the way out for a store whose events were
    /// stamped in the future (a wrong `--now`), which refuses every write
    /// until then. Each re-stamped event is reported.
    pub clamp_future_to: Option<Timestamp>,
}

/// A stretch of the damaged store that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset in the file where the unreadable part starts.
    pub offset: u64,
    /// Its length in bytes, when known.
    pub bytes: Option<u64>,
    /// The sequence numbers it held (the original store's), when known;
    /// `last_seq` is unknown past the end of the active segment.
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// What was wrong there.
    pub what: String,
}

/// What [`salvage`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Intact events read from the damaged store.
    pub events_read: u64,
    /// Events written to the new store (renumbered from 1, same order).
    pub events_written: u64,
    /// Jobs in the new store.
    pub jobs: usize,
    /// What could not be read.
    pub lost: Vec<LostRange>,
    /// Intact events left out, by their original sequence number, with why:
    /// an event of a job whose creation (or an earlier step) was lost would
    /// make the new store refuse to open.
    pub dropped: Vec<(u64, String)>,
    /// Events re-stamped by [`SalvageOptions::clamp_future_to`]: original
    /// sequence number and time.
    pub restamped: Vec<(u64, Timestamp)>,
    /// What the read-only open of the damaged store reported.
    pub problems: Vec<String>,
}

/// Copies every intact event of the store in `src`, in order, into a new
/// store in `dst` (which must not exist, or be an empty directory), and
/// reports what was lost. `src` is opened read-only and never changed.
///
/// The new store's events are renumbered from 1 (sequence numbers are the
/// log's, not the jobs'); times, actors and job ids are kept. An intact
/// event that cannot apply to what was saved (a transition of a job whose
/// creation was lost, a step from a status the job never reached because a
/// step before it was lost) is left out and reported: the new store always
/// opens, and each of its jobs is as its last saved event left it.
pub fn salvage(src: &Path, dst: &Path, options: &SalvageOptions) -> Result<SalvageReport, Error> {
    let seg_dir = src.join("segments");
    if !seg_dir.is_dir() {
        return Err(DomainError::NotFound { kind: "store", name: src.display().to_string() }.into());
    }
    check_target(src, dst)?;
    let existed = dst.exists();
    let done = copy(src, dst, options);
    if done.is_err() {
        // The target was empty or absent: what is there now is ours, and
        // half a store must not be mistaken for a salvaged one.
        let _ = if existed { clear_dir(dst) } else { std::fs::remove_dir_all(dst) };
    }
    done
}

fn clear_dir(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn copy(src: &Path, dst: &Path, options: &SalvageOptions) -> Result<SalvageReport, Error> {
    let seg_dir = src.join("segments");
    // The log, read-only; when even that fails because the manifest is
    // missing or damaged, the segment files one by one.
    let log = match Log::open(&seg_dir, LogConfig::salvage()) {
        Ok(log) => Some(log),
        Err(e) if manifest_problem(&seg_dir).is_some() => {
            let _ = e;
            None
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = SalvageReport::default();
    crate::log::private::create_dir_all(dst).map_err(|e| Error::Io { path: dst.to_path_buf(), source: e })?;
    if src.join(SIMULATION_MARKER).exists() {
        let to = dst.join(SIMULATION_MARKER);
        std::fs::read(src.join(SIMULATION_MARKER))
            .and_then(|b| std::io::Write::write_all(&mut crate::log::private::create_file(&to, true)?, &b))
            .map_err(|e| Error::Io { path: to, source: e })?;
    }
    let mut copier = Copier {
        out: Log::open(dst.join("segments"), LogConfig::default())?,
        scratch: Projection::new(),
        batch: Batch::new(),
        read: HashMap::new(),
        gaps: Vec::new(),
        clamp: options.clamp_future_to,
    };
    match &log {
        Some(log) => {
            report.problems = log.recovery().problems.clone();
            for rec in log.iter_from(1) {
                match rec {
                    Ok(rec) => copier.take(&mut report, rec.seq(), rec.position().segment, rec.payload())?,
                    Err(e) => {
                        report.problems.push(e.to_string());
                        break;
                    }
                }
            }
            report.lost = lost_ranges(log, &seg_dir, &copier.read, &copier.gaps);
        }
        None => {
            report.problems.extend(manifest_problem(&seg_dir));
            report.lost = read_files(&seg_dir, &mut copier, &mut report)?;
        }
    }
    if !copier.batch.is_empty() {
        copier.out.append_batch(std::mem::take(&mut copier.batch))?;
    }
    copier.out.close()?;

    // Open the new store once: replays it (so it is known to open) and
    // writes its first checkpoint.
    let engine = Engine::open(dst, Config::default(), Arc::new(SystemClock))?;
    report.jobs = engine.state().job_count();
    engine.close()?;
    Ok(report)
}

/// Writes what it is given into the new store, leaving out what would not
/// apply.
struct Copier {
    out: Log,
    /// What the new store holds so far: decides what applies.
    scratch: Projection,
    batch: Batch,
    /// Per segment of the source: frames read, last sequence number read.
    read: HashMap<u64, (u64, u64)>,
    /// Sequence numbers missing between readable frames: (segment, first, last).
    gaps: Vec<(u64, u64, u64)>,
    clamp: Option<Timestamp>,
}

impl Copier {
    fn take(&mut self, report: &mut SalvageReport, seq: u64, segment: u64, payload: &[u8]) -> Result<(), Error> {
        report.events_read += 1;
        // A cold segment's sequence numbers interleave with others': no
        // gap in it means anything.
        let cold = segment & COLD != 0;
        let entry = self.read.entry(segment).or_insert((0, if cold { 0 } else { segment.saturating_sub(1) }));
        if !cold && entry.1 + 1 < seq {
            self.gaps.push((segment, entry.1 + 1, seq - 1));
        }
        *entry = (entry.0 + 1, seq);
        // Decoded by its version (docs/format.md, "Payloads: events").
        let mut env = match crate::domain::Envelope::decode(payload) {
            Ok(env) => env,
            Err(crate::domain::EventDecodeError::Newer { version }) => {
                return Err(Error::NewerVersion {
                    file: None,
                    what: format!(
                        "event {seq} has schema version {version}, newer than this build's {}",
                        crate::domain::EVENT_VERSION
                    ),
                })
            }
            Err(e) => {
                report.dropped.push((seq, format!("does not decode: {e}")));
                return Ok(());
            }
        };
        let original = env.at;
        let mut restamped = None;
        if let Some(limit) = self.clamp {
            if clamp(&mut env, limit) {
                // Rewritten, so written in this build's version.
                env.version = crate::domain::EVENT_VERSION;
                restamped = Some(env.encode()?);
            }
        }
        let scratch_pos = Position { segment: 1, offset: crate::log::HEADER_LEN as u64 };
        match self.scratch.apply(&env, report.events_written + 1, scratch_pos) {
            Ok(()) => {}
            Err(e @ Error::NewerVersion { .. }) => return Err(e),
            Err(e) => {
                report.dropped.push((seq, e.to_string()));
                return Ok(());
            }
        }
        if restamped.is_some() {
            report.restamped.push((seq, original));
        }
        self.batch.push(restamped.as_deref().unwrap_or(payload));
        report.events_written += 1;
        if self.batch.frame_bytes() >= 4 << 20 {
            self.out.append_batch(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}

/// Without a manifest: every segment file in order (for one first
/// sequence number, the newest generation), each read to its first bad
/// frame. Returns what could not be read.
fn read_files(seg_dir: &Path, copier: &mut Copier, report: &mut SalvageReport) -> Result<Vec<LostRange>, Error> {
    let mut files: Vec<(u64, u32, String)> = std::fs::read_dir(seg_dir)
        .map_err(|e| Error::Io { path: seg_dir.to_path_buf(), source: e })?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            parse_segment_file_name(&name).map(|(first, generation)| (first, generation, name))
        })
        .collect();
    files.sort();
    let mut lost = Vec::new();
    // Cold segments' frames come in their places (the newest generation
    // of each; one whose header is damaged is lost whole).
    let mut cold = crate::log::cold_files(seg_dir, &mut |file, what| {
        lost.push(LostRange { file, offset: 0, bytes: None, first_seq: None, last_seq: None, what })
    });
    let mut cold_lost = Vec::new();
    let mut next_seq = 1u64;
    for (i, (first_seq, _, name)) in files.iter().enumerate() {
        if files.get(i + 1).is_some_and(|f| f.0 == *first_seq) {
            continue; // an older generation of the same segment
        }
        let path = seg_dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        let mut lose = |offset: usize, what: String, first: u64| {
            let end = bytes[offset.min(bytes.len())..].iter().rposition(|&b| b != 0).map(|e| e as u64 + 1);
            lost.push(LostRange {
                file: path.clone(),
                offset: offset as u64,
                bytes: end,
                first_seq: Some(first),
                last_seq: None,
                what,
            });
        };
        match crate::log::format::SegmentHeader::decode(&bytes) {
            Ok(h) if h.first_seq == *first_seq => {}
            Ok(_) | Err(_) => {
                lose(0, "the segment header is damaged: the whole file could not be read".into(), *first_seq);
                continue;
            }
        }
        let mut offset = crate::log::HEADER_LEN;
        loop {
            match crate::log::format::read_frame(&bytes, offset) {
                crate::log::format::FrameRead::Frame(f) if f.seq >= next_seq => {
                    take_cold(&mut cold, f.seq, copier, report, &mut cold_lost)?;
                    copier.take(report, f.seq, *first_seq, &bytes[f.payload_offset..f.end()])?;
                    next_seq = f.seq + 1;
                    offset = f.end();
                }
                crate::log::format::FrameRead::Frame(f) => {
                    lose(offset, format!("event {} out of order", f.seq), next_seq);
                    break;
                }
                crate::log::format::FrameRead::End => break,
                crate::log::format::FrameRead::Invalid(why) => {
                    lose(offset, why.to_string(), next_seq);
                    break;
                }
            }
        }
    }
    take_cold(&mut cold, u64::MAX, copier, report, &mut cold_lost)?;
    lost.extend(cold_lost);
    Ok(lost)
}

/// Takes the cold segments' frames below `until` (a salvage without a
/// manifest: a hot frame with sequence number `until` comes next), and
/// leaves out one with that number (a frame a freeze copied and had not
/// yet removed from the hot segments when it stopped); damage goes to
/// `lost`, and the rest of its segment with it.
fn take_cold(
    cold: &mut ColdMerge,
    until: u64,
    copier: &mut Copier,
    report: &mut SalvageReport,
    lost: &mut Vec<LostRange>,
) -> Result<(), Error> {
    loop {
        match cold.next_seq() {
            Ok(seq) if seq < until || (seq == until && seq != u64::MAX) => {
                let r = cold.pop();
                if seq < until {
                    copier.take(report, r.seq(), r.position().segment, r.payload())?;
                }
            }
            Ok(_) => return Ok(()),
            Err(crate::log::LogError::Corrupt { path, offset, seq, reason }) => {
                lost.push(LostRange { file: path, offset, bytes: None, first_seq: seq, last_seq: None, what: reason })
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What is wrong with the manifest of `seg_dir`, if anything (missing
/// while sealed segments are there, or damaged).
pub fn manifest_problem(seg_dir: &Path) -> Option<String> {
    let mut r = StoreReport::default();
    check_files(seg_dir, &mut |p| r.add(p));
    r.problems.into_iter().find(|p| p.contains(MANIFEST_FILE))
}

/// Refuses a target that holds anything, or lies inside the source.
fn check_target(src: &Path, dst: &Path) -> Result<(), Error> {
    let refuse = |reason: &str| Error::SalvageTarget { target: dst.to_path_buf(), reason: reason.into() };
    match std::fs::symlink_metadata(dst) {
        Ok(m) if !m.is_dir() => return Err(refuse("exists and is not a directory")),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dst).map_err(|e| Error::Io { path: dst.to_path_buf(), source: e })?;
            if entries.next().is_some() {
                return Err(refuse("exists and is not empty; give a new directory"));
            }
        }
        Err(_) => {}
    }
    let src = std::fs::canonicalize(src).map_err(|e| Error::Io { path: src.to_path_buf(), source: e })?;
    // The deepest existing ancestor of the target.
    let mut probe = if dst.is_absolute() {
        dst.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(dst)).unwrap_or_else(|_| dst.to_path_buf())
    };
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if std::fs::canonicalize(&probe).is_ok_and(|p| p.starts_with(&src)) {
        return Err(refuse(&format!("is inside the damaged store {}", src.display())));
    }
    Ok(())
}

/// Re-stamps an event later than `limit` at `limit` (and a created job's
/// own times); says whether anything changed.
fn clamp(env: &mut crate::domain::Envelope, limit: Timestamp) -> bool {
    let mut changed = false;
    let mut fix = |t: &mut Timestamp| {
        if *t > limit {
            *t = limit;
            changed = true;
        }
    };
    fix(&mut env.at);
    if let Event::JobCreated(job) = &mut env.event {
        fix(&mut job.createdon);
        fix(&mut job.modifiedon);
        if let Some(t) = job.startedon.as_mut() {
            fix(t);
        }
        if let Some(t) = job.completedon.as_mut() {
            fix(t);
        }
    }
    changed
}

/// The stretches of the source that were not read: each damaged stretch
/// the read-only open stepped over, sealed segments the manifest lists that
/// are missing or were read only in part, and a torn tail of the active
/// segment.
fn lost_ranges(log: &Log, seg_dir: &Path, read: &HashMap<u64, (u64, u64)>, gaps: &[(u64, u64, u64)]) -> Vec<LostRange> {
    let mut lost = Vec::new();
    let recovery = log.recovery();
    for d in &recovery.damaged {
        let nothing = matches!((d.first_lost, d.last_lost), (Some(a), Some(b)) if a > b);
        lost.push(LostRange {
            file: d.path.clone(),
            offset: d.offset,
            bytes: Some(d.len),
            first_seq: if nothing { None } else { d.first_lost },
            last_seq: if nothing { None } else { d.last_lost },
            what: if nothing {
                "damaged bytes between two frames (no event lost)".into()
            } else if d.path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("cold-")) {
                // A cold segment's sequence numbers interleave with others'.
                "a damaged stretch, stepped over (a cold segment: only those of these events it held)".into()
            } else {
                "a damaged stretch, stepped over".into()
            },
        });
    }
    let named = |path: &Path| recovery.damaged.iter().any(|d| d.path == path);
    let segments = log.segments();
    let manifest = Manifest::load(seg_dir).ok();
    let sealed = manifest.as_ref().map(|m| m.sealed.as_slice()).unwrap_or_default();
    let cold = manifest.as_ref().map(|m| m.cold.as_slice()).unwrap_or_default();
    // Hot and cold segments by key, each with its manifest entry.
    let listed = sealed
        .iter()
        .map(|e| (e.first_seq, e.file_name(), e))
        .chain(cold.iter().map(|c| (c.key(), c.file_name(), &c.sealed)));
    for (key, name, e) in listed {
        let path = seg_dir.join(name);
        let Some(seg) = segments.iter().find(|s| s.key == key) else {
            lost.push(LostRange {
                file: path,
                offset: 0,
                bytes: Some(e.len),
                first_seq: Some(e.first_seq),
                last_seq: Some(e.last_seq),
                what: format!("the whole segment ({} events) could not be read", e.frames),
            });
            continue;
        };
        let (frames, last) = read.get(&key).copied().unwrap_or((0, e.first_seq.saturating_sub(1)));
        if frames < e.frames && !named(&seg.path) {
            lost.push(LostRange {
                file: seg.path.clone(),
                offset: seg.published_bytes,
                bytes: Some(e.len.saturating_sub(seg.published_bytes)),
                first_seq: Some(last + 1),
                last_seq: Some(e.last_seq),
                what: format!("{} of its {} events could not be read", e.frames - frames, e.frames),
            });
        }
    }
    for &(segment, first, last) in gaps {
        let Some(seg) = segments.iter().find(|s| s.key == segment) else { continue };
        if seg.generation == 0 && !named(&seg.path) {
            lost.push(LostRange {
                file: seg.path.clone(),
                offset: 0,
                bytes: None,
                first_seq: Some(first),
                last_seq: Some(last),
                what: "events missing between readable ones".into(),
            });
        }
    }
    if recovery.torn_bytes_dropped > 0 {
        if let Some(active) = segments.iter().find(|s| Some(s.first_seq) == recovery.active_segment) {
            let next = read.get(&active.first_seq).map_or(active.first_seq, |r| r.1 + 1);
            lost.push(LostRange {
                file: active.path.clone(),
                offset: recovery.torn_offset.unwrap_or(active.published_bytes),
                bytes: Some(recovery.torn_bytes_dropped),
                first_seq: Some(next),
                last_seq: None,
                what: "a torn write at the end of the active segment (an append that never completed)".into(),
            });
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, Envelope, EVENT_VERSION};

    /// The policy a service runs by is compared too: a projection whose
    /// policy is not the log's is reported (and only that).
    #[test]
    fn a_policy_that_is_not_the_logs_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let (live, fresh) = (Projection::default(), Projection::default());
        assert_eq!(compare(&live, &fresh, &log, &mut |_| {}), Vec::<String>::new());
        let mut live = live;
        let set = Event::PolicySet { key: "retry.max_retries".into(), value: Some(0) };
        let env = Envelope { version: EVENT_VERSION, at: Timestamp::from_micros(1), actor: Actor::System, event: set };
        live.apply(&env, 1, crate::log::Position { segment: 1, offset: 0 }).unwrap();
        let problems = compare(&live, &fresh, &log, &mut |_| {});
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("policy"), "{problems:?}");
    }

    /// Bearer tokens are compared too: a token the log does not hold is
    /// reported.
    #[test]
    fn a_token_that_is_not_the_logs_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let (mut live, fresh) = (Projection::default(), Projection::default());
        let made = Event::TokenCreated {
            id: uuid::Uuid::from_u128(1),
            user: "admin".into(),
            name: None,
            hash: [7; 32],
            expires: None,
        };
        let env = Envelope { version: EVENT_VERSION, at: Timestamp::from_micros(1), actor: Actor::System, event: made };
        live.apply(&env, 1, crate::log::Position { segment: 1, offset: 0 }).unwrap();
        let problems = compare(&live, &fresh, &log, &mut |_| {});
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("token"), "{problems:?}");
    }
}
