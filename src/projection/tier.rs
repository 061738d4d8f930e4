//! Hot and cold: the projection keeps open jobs and recent completions in
//! memory (`rows` and the indices), and a checkpoint moves Completed jobs
//! into cold runs (`cold.rs`): *freezing*. A cold run never changes. A
//! change to one of its jobs (an owner change, a resubmission line) first
//! *thaws* the whole run back into memory, so those write paths work on
//! hot rows only (a reading state, which never writes a run, moves that
//! job's row alone: `Projection::thaw_row`); a deletion marks the rows it
//! takes (`Cold::gone`) and
//! drops a run when none is left; a compaction rewrites the runs whose
//! events it moved. Reads (by id, views, counts, deletion's selection)
//! merge the hot rows with the runs, skipping the marked rows.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use uuid::Uuid;

use super::cold::{self, ColdJob, ColdRow, ColdRun};
use super::intern::Interner;
use super::{Pos, Projection, Row, NO_EVENT};
use crate::error::Error;
use crate::log::{Compaction, Generations, Position};

/// A job's place in an order: (createdon or completedon, id).
pub(crate) type Key = (i64, Uuid);

/// A job found by a walk, with its key.
pub(crate) type Found = (Key, Loc);

/// A cold run in the state, and the rows of it that deletions took since
/// it was written (their events are garbage; the run is rewritten without
/// them when a compaction moves its events, or merged); in a reading state
/// also the rows moved into memory since (`Projection::thaw_row`).
#[derive(Debug)]
pub(crate) struct Cold {
    pub(crate) run: Arc<ColdRun>,
    pub(crate) gone: cold::RowSet,
    /// The System Job Type of all its jobs (runs are written one type at
    /// a time); `None` for a run of several (written before that).
    class: Option<u64>,
    /// The id under which the newest checkpoint names this run (its own,
    /// or that of the run it is a deletion's copy of), `NOT_NAMED` when
    /// no checkpoint names it: a copy of it then stands in for that run
    /// (`ColdRun::replaces`). Set once a checkpoint naming it is saved,
    /// while readers hold the state.
    named_as: std::sync::atomic::AtomicU64,
}

/// [`Cold::named_as`] of a run no checkpoint names.
const NOT_NAMED: u64 = u64::MAX;

impl Cold {
    pub(crate) fn new(run: Arc<ColdRun>, gone: cold::RowSet) -> Self {
        let class = match run.keys(cold::Section::ByType).as_deref() {
            Ok([(t, _)]) => Some(*t),
            _ => None,
        };
        Cold { run, gone, class, named_as: NOT_NAMED.into() }
    }

    /// The id the newest checkpoint names this run by, if it names it.
    pub(crate) fn named_as(&self) -> Option<u64> {
        Some(self.named_as.load(std::sync::atomic::Ordering::Relaxed)).filter(|&id| id != NOT_NAMED)
    }

    /// Records that the newest checkpoint names this run by `id`.
    pub(crate) fn set_named_as(&self, id: u64) {
        self.named_as.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// Its jobs still there.
    pub(crate) fn live(&self) -> usize {
        self.run.len() - self.gone.len()
    }
}

impl std::ops::Deref for Cold {
    type Target = ColdRun;

    fn deref(&self) -> &ColdRun {
        &self.run
    }
}

/// The most jobs a run holds by default (`Config::cold_run_rows`; of one
/// System Job Type): a change to one of its jobs thaws it whole, so a run
/// must be small next to the store; but a view opens every run that may
/// hold its rows, so runs are not many (issue 16's views;
/// docs/benchmarks.md, run j: runs of 2^17 jobs made the views slower
/// than SQLite's). *n* jobs make about *n* / this runs, plus log2 of it
/// for the newest.
pub const MAX_RUN_ROWS: usize = 1 << 20;

/// Runs a compaction copies (`relocate_runs`), or a checkpoint or a
/// replay's spill writes (`prepare_runs`), at once: a bound on the memory
/// they hold together.
const COPIES: usize = 4;

/// The most jobs whose events a checkpoint freezes into one cold segment
/// (`freeze_plan`): a deletion by age takes whole cold segments and
/// leaves garbage in at most one per class it names (System Job Type and
/// Status Reason), about this many
/// jobs' events (~45 MB in the benchmark's workload).
const FREEZE_JOBS: usize = 1 << 17;

/// A run that left the state since the last checkpoint: emptied by a
/// deletion, or replaced by a copy ([`Projection::release_runs`]).
#[derive(Debug)]
pub(crate) struct Released {
    run: Arc<ColdRun>,
    named_as: Option<u64>,
    emptied: bool,
}

/// Cold runs written but not yet part of the state (`prepare_run`).
pub(crate) struct NewRun {
    runs: Vec<ColdRun>,
    /// The hot rows they hold.
    frozen: Vec<u32>,
    /// The ids of the runs they replace (merged into them).
    merged: Vec<u64>,
    /// The state it was made from.
    last_seq: u64,
}

/// The events of the Completed hot jobs, grouped as a freeze moves them
/// into cold segments (`freeze_plan`).
pub(crate) struct FreezePlan {
    /// Each group's positions: the events, in the hot segments, of jobs of
    /// one System Job Type and Status Reason completed in one stretch of
    /// time.
    pub(crate) groups: Vec<Vec<Position>>,
    /// The event entries (indices into the projection's events) of each
    /// group's positions, in the same order.
    entries: Vec<Vec<u32>>,
    /// The state it was made from.
    last_seq: u64,
}

/// Where a job lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Loc {
    /// A hot row.
    Hot(u32),
    /// Row `1` of cold run `0` (an index into `Projection::cold`).
    Cold(usize, u32),
}

impl Projection {
    /// Where job `id` lives, if it is there.
    pub(crate) fn locate(&self, id: Uuid) -> Result<Option<Loc>, Error> {
        match self.row_of(id) {
            Some(i) => Ok(Some(Loc::Hot(i))),
            None => self.locate_cold(id),
        }
    }

    /// Where job `id` is among the cold runs, if it is there and live.
    pub(crate) fn locate_cold(&self, id: Uuid) -> Result<Option<Loc>, Error> {
        for (k, run) in self.cold.iter().enumerate().rev() {
            if let Some(r) = run.find(id)? {
                // A job is in one run at most.
                return Ok((!run.gone.contains(&r)).then_some(Loc::Cold(k, r)));
            }
        }
        Ok(None)
    }

    /// A hot row of job `id`, thawing its run first if it is cold (in a
    /// reading state, the job's row alone: [`Projection::thaw_row`]).
    pub(crate) fn hot_row(&mut self, id: Uuid) -> Result<Option<u32>, Error> {
        match self.locate(id)? {
            Some(Loc::Cold(k, r)) if self.reading => {
                self.thaw_row(k, r)?;
                Ok(self.row_of(id))
            }
            Some(Loc::Cold(k, _)) => {
                self.thaw(k)?;
                Ok(self.row_of(id))
            }
            Some(Loc::Hot(i)) => Ok(Some(i)),
            None => Ok(None),
        }
    }

    /// The cold runs, oldest first.
    pub fn cold_runs(&self) -> Vec<Arc<ColdRun>> {
        self.cold.iter().map(|c| Arc::clone(&c.run)).collect()
    }

    /// Writes the Completed hot jobs into a new cold run in `dir` (when
    /// there are at least `min`), merged with the newest runs while the one
    /// before is not more than twice as big (so a store of *n* jobs has
    /// about log2(*n*) runs); nothing changes in the state until
    /// [`Projection::install_run`]. `live`: the log's segments with their
    /// generations. The slow part of a checkpoint, done under a read lock.
    pub(crate) fn prepare_run(
        &self,
        dir: &Path,
        live: &Generations,
        min: usize,
        max_rows: usize,
    ) -> Result<Option<NewRun>, Error> {
        self.prepare_runs(dir, live, (min, max_rows), true, true)
    }

    /// [`Projection::prepare_run`], merging the newest runs or not, and
    /// leaving each run's file named or unlinking it once it is mapped (a
    /// read-only replay's scratch runs: nothing is left of them when the
    /// process is killed but the run being written).
    fn prepare_runs(
        &self,
        dir: &Path,
        live: &Generations,
        (min, max_rows): (usize, usize),
        merge: bool,
        named: bool,
    ) -> Result<Option<NewRun>, Error> {
        let max_rows = max_rows.max(1);
        let rows = self.completed_hot_rows();
        if rows.is_empty() || rows.len() < min {
            return Ok(None);
        }
        // One System Job Type at a time: a deletion by age then takes
        // whole runs, as it takes whole cold segments.
        let mut classes: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for &i in &rows {
            classes.entry(u64::from(self.rows[i as usize].operationtype)).or_default().push(i);
        }
        let mut runs: Vec<ColdRun> = Vec::new();
        let mut merged = Vec::new();
        let mut next = self.next_run;
        for (class, hot) in classes {
            let mut order: Vec<(Key, Loc)> =
                hot.iter().map(|&i| (self.rows[i as usize].created_key(), Loc::Hot(i))).collect();
            for (k, run) in self.cold.iter().enumerate().rev().filter(|(_, run)| merge && run.class == Some(class)) {
                if run.len() > 2 * order.len() || run.len() >= max_rows {
                    break;
                }
                for r in 0..u32::try_from(run.len()).expect("a run numbers its rows by u32") {
                    if !run.gone.contains(&r) {
                        order.push((run.row(r)?.created_key(), Loc::Cold(k, r)));
                    }
                }
                merged.push(run.id());
            }
            order.sort_unstable_by_key(|&(key, _)| key);
            // A run's jobs are gathered only while it is written, the runs
            // of a class written side by side (one a core, at most COPIES
            // at once, as a compaction copies them): a replay's spill of
            // millions holds a few runs' at a time.
            let chunks: Vec<(u64, &[(Key, Loc)])> = (next..).zip(order.chunks(max_rows)).collect();
            next += chunks.len() as u64;
            let failed = AtomicBool::new(false);
            let written = crate::cores::map(&chunks, COPIES, |&(id, chunk)| {
                if failed.load(Ordering::Relaxed) {
                    return None;
                }
                let jobs = chunk
                    .iter()
                    .map(|&(_, loc)| match loc {
                        Loc::Hot(i) => self.cold_job(i),
                        Loc::Cold(k, r) => run_job(&self.cold[k].run, r),
                    })
                    .collect::<Result<Vec<_>, _>>();
                let run = jobs.and_then(|jobs| write_run_file(dir, id, jobs, live, 0));
                match &run {
                    Ok(run) if !named => drop(std::fs::remove_file(run.path())),
                    Ok(_) => {}
                    Err(_) => failed.store(true, Ordering::Relaxed),
                }
                Some(run)
            });
            let mut error = None;
            for run in written.into_iter().flatten() {
                match run {
                    Ok(run) => runs.push(run),
                    Err(e) => error = error.or(Some(e)),
                }
            }
            if let Some(e) = error {
                for run in &runs {
                    let _ = std::fs::remove_file(run.path());
                }
                return Err(e);
            }
        }
        Ok(Some(NewRun { runs, frozen: rows, merged, last_seq: self.last_seq }))
    }

    /// The Completed hot rows, in row order (what the `completed` indices
    /// hold, read without them: a replay keeps none).
    ///
    /// Leaves out a job whose older events are in a cold segment and whose
    /// newer ones are hot (a cold job changed since its run was thawed: a
    /// resubmission line, an owner change): it stays hot, so that no job
    /// has events in two cold segments. A deletion's compaction removes a
    /// cold segment whole when its events are all deleted jobs'; a deleted
    /// job with an event left in another cold segment would leave that
    /// event without its job's creation, which a replay refuses.
    fn completed_hot_rows(&self) -> Vec<u32> {
        (0u32..)
            .zip(&self.rows)
            .filter(|(_, r)| !r.deleted && r.status.is_completed() && !self.spans_cold_and_hot(r))
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether row `r`'s oldest event is in a cold segment and its newest
    /// in a hot one (new events are always hot: a job's events are never
    /// hot before cold).
    fn spans_cold_and_hot(&self, r: &Row) -> bool {
        let cold = |e: u32| self.position(self.events[e as usize].0).segment & crate::log::COLD != 0;
        if r.last_event == NO_EVENT || cold(r.last_event) {
            return false;
        }
        let mut first = r.first_event;
        if first == NO_EVENT {
            // (Not kept by a checkpoint: the chain's end.)
            first = r.last_event;
            while self.events[first as usize].1 != NO_EVENT {
                first = self.events[first as usize].1;
            }
        }
        cold(first)
    }

    /// The events a checkpoint's freeze moves out of the hot segments: those
    /// of the Completed hot jobs [`Projection::prepare_run`] then writes
    /// into runs (when there are at least `min`), grouped by System Job
    /// Type and Status Reason and, in each, by completion time, at most
    /// [`FREEZE_JOBS`] jobs and, but for a group of one job, `max_bytes`
    /// of frames (`frame_lens`: the lengths of the frames at positions) a
    /// group; events already in cold segments (a thawed job's) stay.
    pub(crate) fn freeze_plan(
        &self,
        min: usize,
        max_bytes: u64,
        frame_lens: impl Fn(&[Position]) -> Result<Vec<u32>, Error>,
    ) -> Result<Option<FreezePlan>, Error> {
        let rows = self.completed_hot_rows();
        if rows.is_empty() || rows.len() < min {
            return Ok(None);
        }
        // A deletion's criteria name System Job Types and Status Reasons
        // (the platform's default one: Workflow, Succeeded): one class each.
        let mut order: Vec<((u32, crate::domain::StatusReason), Key, u32)> = rows
            .iter()
            .map(|&i| {
                let r = &self.rows[i as usize];
                ((r.operationtype, r.status.reason()), (r.completedon, r.id), i)
            })
            .collect();
        order.sort_unstable();
        let mut plan = FreezePlan { groups: Vec::new(), entries: Vec::new(), last_seq: self.last_seq };
        for class in order.chunk_by(|a, b| a.0 == b.0) {
            // The class's hot events, job after job (`ends`: where each
            // job's end), newest first in each; then their frames' lengths,
            // asked for all at once (the log fetches them ahead).
            let (mut positions, mut entries, mut ends) = (Vec::new(), Vec::new(), Vec::with_capacity(class.len()));
            for &(_, _, i) in class {
                let mut e = self.rows[i as usize].last_event;
                while e != NO_EVENT {
                    let (p, prev) = self.events[e as usize];
                    let p = self.position(p);
                    if p.segment & crate::log::COLD == 0 {
                        positions.push(p);
                        entries.push(e);
                    }
                    e = prev;
                }
                ends.push(positions.len());
            }
            let lens = frame_lens(&positions)?;
            // Groups cut between jobs: at FREEZE_JOBS jobs, or before a job
            // that would take the group past `max_bytes`.
            let mut cuts = Vec::new();
            let (mut jobs, mut bytes, mut start) = (0, 0u64, 0);
            for &end in &ends {
                let job_bytes: u64 = lens[start..end].iter().map(|&l| u64::from(l)).sum();
                if jobs == FREEZE_JOBS || (jobs > 0 && bytes + job_bytes > max_bytes) {
                    cuts.push(start);
                    (jobs, bytes) = (0, 0);
                }
                (jobs, bytes, start) = (jobs + 1, bytes + job_bytes, end);
            }
            // Each group split off the end, the class's lists shrunk
            // behind it once they are half empty (a shrink may copy what
            // is left): the events are held about once, not twice.
            drop((lens, ends));
            let mut groups = Vec::with_capacity(cuts.len() + 1);
            for &cut in cuts.iter().rev() {
                groups.push((positions.split_off(cut), entries.split_off(cut)));
                if positions.capacity() > 2 * positions.len() {
                    positions.shrink_to_fit();
                    entries.shrink_to_fit();
                }
            }
            groups.push((positions, entries));
            for (group, group_entries) in groups.into_iter().rev().filter(|(g, _)| !g.is_empty()) {
                plan.groups.push(group);
                plan.entries.push(group_entries);
            }
        }
        Ok((!plan.groups.is_empty()).then_some(plan))
    }

    /// Follows a freeze made from `plan` on this very state: the frozen
    /// events get their places in the cold segments (`done.frozen`). Call
    /// before [`Projection::apply_compaction`] with the same `done` (the
    /// hot frames left moved too).
    pub(crate) fn apply_freeze(&mut self, plan: &FreezePlan, done: &Compaction) {
        assert_eq!(plan.last_seq, self.last_seq, "a freeze is applied to the state it was planned on");
        assert_eq!(plan.entries.len(), done.frozen.len(), "a freeze reports every group");
        for (entries, new) in plan.entries.iter().zip(&done.frozen) {
            for (&e, &p) in entries.iter().zip(new) {
                self.events[e as usize].0 = self.pos(p);
            }
        }
    }

    /// Puts runs [`Projection::prepare_run`] wrote from this very state in
    /// place of the jobs and runs they took, and rebuilds the hot rows
    /// without them. Returns how many jobs left memory: none when the
    /// state moved meanwhile, and the files are left for the next
    /// checkpoint's cleanup.
    pub(crate) fn install_run(&mut self, new: NewRun) -> usize {
        let here = |id: &u64| self.cold.iter().any(|c| c.id() == *id);
        if new.last_seq != self.last_seq || !new.merged.iter().all(here) {
            return 0;
        }
        self.cold.retain(|c| !new.merged.contains(&c.id()));
        self.next_run += new.runs.len() as u64;
        self.cold.extend(new.runs.into_iter().map(|run| Cold::new(Arc::new(run), Default::default())));
        self.rebuild_hot(&new.frozen);
        new.frozen.len()
    }

    /// Takes the id of a run to be written outside the state's write lock
    /// (the image of the hot rows a checkpoint names: [`Projection::write_hot_run`]).
    pub(crate) fn take_run_id(&mut self) -> u64 {
        self.next_run += 1;
        self.next_run - 1
    }

    /// Writes every hot row (open jobs, and Completed ones no run holds
    /// yet) as run `id` in `dir`, flagged [`cold::HOLDS_OPEN`]: the image
    /// a checkpoint keeps of its hot rows, which a reading command maps
    /// instead of decoding them (`snapshot.rs`, `Projection::load_views`).
    /// The state is not changed: the rows stay hot.
    pub(crate) fn write_hot_run(&self, dir: &Path, live: &Generations, id: u64) -> Result<(), Error> {
        let jobs = (0u32..)
            .zip(&self.rows)
            .filter(|(_, r)| !r.deleted)
            .map(|(i, _)| self.cold_job(i))
            .collect::<Result<Vec<_>, _>>()?;
        write_run_file(dir, id, jobs, live, cold::HOLDS_OPEN).map(drop)
    }

    /// Jobs held in memory (hot rows).
    pub(crate) fn hot_rows(&self) -> usize {
        self.rows.len() - self.free_rows.len()
    }

    /// Bounds the memory of a replay from the log: moves the Completed hot
    /// jobs into new cold runs in `dir`, as a checkpoint does, but without
    /// merging them with the runs before (a replay spills about as many
    /// each time, and would rewrite each run the next spill) and, while
    /// the replay defers its indices, without building them. Its runs take
    /// ids after every run file already in `dir`, so no run of an older
    /// checkpoint is overwritten. A run is left on disk, unnamed, when the
    /// state is not kept (`remove_unnamed_runs` removes it: the next
    /// writable open's, or the next checkpoint's).
    /// With `scratch`, each run's file is unlinked as soon as it is mapped.
    pub(crate) fn spill(
        &mut self,
        dir: &Path,
        live: &Generations,
        scratch: bool,
        max_rows: usize,
    ) -> Result<(), Error> {
        self.number_runs_past_files(dir);
        if let Some(new) = self.prepare_runs(dir, live, (1, max_rows), false, !scratch)? {
            self.install_run(new);
        }
        Ok(())
    }

    /// Gives the next runs ids after every run file in `dir` (a state that
    /// did not come from a checkpoint there, or comes from an older one,
    /// overwrites no file another checkpoint may name).
    pub(crate) fn number_runs_past_files(&mut self, dir: &Path) {
        let after = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| cold::parse_file_name(&e.file_name().to_string_lossy()).map(|id| id.saturating_add(1)));
        self.next_run = after.fold(self.next_run, u64::max);
    }

    /// Keeps `dir` (where a read-only replay spills) as long as the state.
    pub(crate) fn keep_scratch(&mut self, dir: tempfile::TempDir) {
        self.scratch = Some(dir);
    }

    /// Removes the directory [`Projection::keep_scratch`] keeps, empty
    /// (each run's file there is unlinked once mapped): for a state that
    /// spills no more, so that a process that leaves its state to its exit
    /// (the command line) leaves no directory behind.
    pub(crate) fn drop_scratch(&mut self) {
        self.scratch = None;
    }

    /// The directory [`Projection::keep_scratch`] keeps.
    pub(crate) fn scratch_dir(&self) -> Option<std::path::PathBuf> {
        self.scratch.as_ref().map(|d| d.path().to_path_buf())
    }

    /// Hot row `i` as a run stores it.
    fn cold_job(&self, i: u32) -> Result<ColdJob<'_>, Error> {
        let r = &self.rows[i as usize];
        let mut events: Vec<Position> = Vec::new();
        let mut message_event = None;
        let mut e = r.last_event;
        while e != NO_EVENT {
            let (p, prev) = self.events[e as usize];
            if e == r.message_event {
                message_event = Some(events.len());
            }
            events.push(self.position(p));
            e = prev;
        }
        events.reverse();
        let message_event =
            message_event.map(|m| u32::try_from(events.len() - 1 - m).expect("events of a job fit a u32"));
        let name = |s| self.strings.name(s).map(Cow::Borrowed);
        Ok(ColdJob {
            row: ColdRow {
                id: r.id,
                createdon: r.createdon,
                startedon: r.startedon,
                completedon: r.completedon,
                modifiedon: r.modifiedon,
                postponeuntil: r.postponeuntil,
                operationtype: r.operationtype,
                reason: r.status.reason(),
                owner: 0,
                owningbusinessunit: 0,
                workflow: 0,
                regarding: 0,
                retrycount: r.retrycount,
                errorcode: r.errorcode,
                executiontimespan_ms: r.executiontimespan_ms,
                events_start: 0,
                events_len: 0,
                message_event: 0,
            },
            owner: name(r.owner).unwrap_or_default(),
            owningbusinessunit: name(r.owningbusinessunit).unwrap_or_default(),
            workflow: name(r.workflow),
            regarding: name(r.regarding),
            events,
            message_event,
        })
    }

    /// Rebuilds the rows, event chains, strings and indices from the hot
    /// rows but `gone` (sorted): memory back to what the hot jobs need.
    fn rebuild_hot(&mut self, gone: &[u32]) {
        let old_rows = std::mem::take(&mut self.rows);
        let old_events = std::mem::take(&mut self.events);
        let old_strings = std::mem::take(&mut self.strings);
        let (all, timers) = (std::mem::take(&mut self.all), std::mem::take(&mut self.timers));
        drop((all, timers));
        self.by_id = Default::default();
        self.by_type.clear();
        self.by_owner.clear();
        self.by_workflow.clear();
        self.by_regarding = Default::default();
        self.by_status.clear();
        self.completed.clear();
        self.open_counts.clear();
        self.by_token.clear();
        self.free_rows.clear();
        self.free_events.clear();
        let mut strings = Interner::default();
        let mut rows = Vec::with_capacity(old_rows.len() - gone.len());
        let mut events = Vec::new();
        for (i, r) in old_rows.into_iter().enumerate() {
            if r.deleted || gone.binary_search(&(i as u32)).is_ok() {
                continue;
            }
            let mut r = r;
            let mut re = |s| strings.intern_opt(old_strings.name(s));
            (r.owner, r.owningbusinessunit) = (re(r.owner), re(r.owningbusinessunit));
            (r.workflow, r.regarding, r.dependencytoken) = (re(r.workflow), re(r.regarding), re(r.dependencytoken));
            // The chain, oldest first, copied.
            let mut chain = Vec::new();
            let mut e = r.last_event;
            while e != NO_EVENT {
                chain.push(e);
                e = old_events[e as usize].1;
            }
            let (mut prev, mut message) = (NO_EVENT, NO_EVENT);
            r.first_event = events.len() as u32;
            for &e in chain.iter().rev() {
                events.push((old_events[e as usize].0, prev));
                prev = (events.len() - 1) as u32;
                if e == r.message_event {
                    message = prev;
                }
            }
            (r.last_event, r.message_event) = (prev, message);
            rows.push(r);
        }
        self.rows = rows;
        self.events = events;
        self.strings = strings;
        for i in 0..self.rows.len() as u32 {
            let indexed = self.by_id.insert(self.rows[i as usize].id, i, &self.rows);
            debug_assert!(indexed, "a job twice in the hot rows");
        }
        // A replay builds its indices once, at its end.
        if !self.deferred {
            self.index_all();
        }
    }

    /// Moves cold run `k` back into the hot rows, whole.
    pub(crate) fn thaw(&mut self, k: usize) -> Result<(), Error> {
        let cold = Cold::new(Arc::clone(&self.cold[k].run), self.cold[k].gone.clone());
        let jobs = live_jobs(&cold)?;
        // Checked before any is moved: a thaw is whole or not at all.
        if let Some(j) = jobs.iter().find(|j| j.events.is_empty()) {
            return Err(Error::corrupt(format!("cold run {}: job {} has no event", cold.run.id(), j.row.id)));
        }
        for j in jobs {
            self.insert_cold_job(j);
        }
        self.cold.remove(k);
        Ok(())
    }

    /// Moves row `r` of run `k` into the hot rows, the run keeping it as
    /// gone: what a reading state does (folding the events after its
    /// checkpoint: `engine/views.rs`), which never writes, copies or drops
    /// a run, so that a gone row there need not be garbage. A run holds no
    /// dependency token: the row has none, which only the service reads (a
    /// reading state runs no job).
    fn thaw_row(&mut self, k: usize, r: u32) -> Result<(), Error> {
        let run = Arc::clone(&self.cold[k].run);
        let job = run_job(&run, r)?;
        if job.events.is_empty() {
            return Err(Error::corrupt(format!("run {}: job {} has no event", run.id(), job.row.id)));
        }
        self.cold[k].gone.insert(r);
        self.insert_cold_job(job);
        Ok(())
    }

    fn insert_cold_job(&mut self, j: ColdJob<'_>) {
        let s = &mut self.strings;
        let c = j.row;
        let row = Row {
            id: c.id,
            createdon: c.createdon,
            startedon: c.startedon,
            completedon: c.completedon,
            modifiedon: c.modifiedon,
            postponeuntil: c.postponeuntil,
            operationtype: c.operationtype,
            owner: s.intern(&j.owner),
            owningbusinessunit: s.intern(&j.owningbusinessunit),
            workflow: s.intern_opt(j.workflow.as_deref()),
            regarding: s.intern_opt(j.regarding.as_deref()),
            dependencytoken: super::intern::NONE,
            retrycount: c.retrycount,
            errorcode: c.errorcode,
            executiontimespan_ms: c.executiontimespan_ms,
            last_event: NO_EVENT,
            first_event: NO_EVENT,
            message_event: NO_EVENT,
            status: c.status(),
            deleted: false,
        };
        let i = self.put_row(row);
        let mut prev = NO_EVENT;
        for (n, p) in j.events.iter().enumerate() {
            let pos: Pos = self.pos(*p);
            prev = self.push_event(pos, prev);
            if n == 0 {
                self.rows[i as usize].first_event = prev;
            }
            if j.message_event == Some(n as u32) {
                self.rows[i as usize].message_event = prev;
            }
        }
        self.rows[i as usize].last_event = prev;
        let indexed = self.by_id.insert(c.id, i, &self.rows);
        debug_assert!(indexed, "job {} thawed while hot", c.id);
        // A replay that defers its indices builds them at its end.
        if !self.deferred {
            self.index(i);
        }
    }

    /// Deletes rows `rows` of cold run `k` (none already gone): their
    /// events become garbage, and the run goes when no job of it is left.
    /// Every row is read before anything changes. Returns whether the run
    /// went (the runs after it are then numbered one less).
    pub(crate) fn delete_cold(&mut self, k: usize, rows: &[u32]) -> Result<bool, Error> {
        // Garbage by segment here first: a job's events are mostly in one
        // segment, and a run's in a few, so the last segment's list is
        // tried before a search.
        let mut garbage: Vec<(u64, Vec<u64>)> = Vec::new();
        {
            let mut last = usize::MAX;
            let run = &self.cold[k];
            // Taking much of a run reads much of its rows and events: in
            // row order, through the whole map.
            let much = rows.len() >= run.len() / 16;
            let _through = much.then(|| run.read_through());
            let mut put = |p: Position| {
                if garbage.get(last).is_none_or(|g| g.0 != p.segment) {
                    last = match garbage.iter().position(|g| g.0 == p.segment) {
                        Some(i) => i,
                        None => {
                            garbage.push((p.segment, Vec::new()));
                            garbage.len() - 1
                        }
                    };
                }
                garbage[last].1.push(p.offset);
            };
            if much {
                let taken: cold::RowSet = rows.iter().copied().collect();
                run.each_event_of(taken.iter(), put)?;
            } else {
                for &r in rows {
                    run.row_event_positions(r)?.for_each(&mut put);
                }
            }
        }
        for (segment, offsets) in garbage {
            match self.garbage.entry(segment) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(offsets);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(offsets),
            }
        }
        if rows.len() + self.cold[k].gone.len() >= self.cold[k].len() {
            let gone = self.cold.remove(k);
            self.released.push(Released { named_as: gone.named_as(), run: gone.run, emptied: true });
            return Ok(true);
        }
        self.cold[k].gone.extend(rows.iter().copied());
        Ok(false)
    }

    /// Rewrites every run that points into a segment `done` rewrote, with
    /// its events' new offsets (a compaction moves frames; no frame of a
    /// live cold job is ever dropped), into `dir` as new runs. `live`: the
    /// log's segments after the compaction. All the new files are written
    /// before any run is replaced: on an error (a full disk) nothing
    /// changed, and the caller thaws those runs instead
    /// ([`Projection::thaw_runs_in`]). Called before
    /// [`Projection::apply_compaction`], with the same `done`.
    pub(crate) fn relocate_runs(&mut self, dir: &Path, done: &Compaction, live: &Generations) -> Result<(), Error> {
        // A cold segment removed whole held none of a live job's events:
        // the runs that point into it keep their rows there, all deleted.
        let moves: HashMap<u64, &[(u64, u64)]> = done
            .segments
            .iter()
            .filter(|s| s.kept || s.segment & crate::log::COLD == 0)
            .map(|s| (s.segment, &s.moved[..]))
            .collect();
        let mut todo = Vec::new();
        for (k, cold) in self.cold.iter().enumerate() {
            if cold.segments()?.keys().any(|s| moves.contains_key(s)) {
                todo.push((k, self.next_run + todo.len() as u64));
            }
        }
        // Every checkpoint is made stale by such a compaction: the copies
        // stand in for nothing.
        self.copy_runs(dir, &todo, &moves, live, false)
    }

    /// Copies every run of which deletions took jobs (with `most`: at
    /// least half of its jobs) without them (its events stay where they
    /// are), so that the space of their rows comes back: a deletion by age
    /// takes most of the runs it reaches whole, and the one at its edge
    /// mostly, which costs what that run keeps. All or nothing, into
    /// `dir`; on an error (a full disk) nothing changed.
    pub(crate) fn shrink_runs(&mut self, dir: &Path, live: &Generations, most: bool) -> Result<(), Error> {
        let mut todo = Vec::new();
        for (k, cold) in self.cold.iter().enumerate() {
            if !cold.gone.is_empty() && (!most || 2 * cold.gone.len() >= cold.len()) {
                todo.push((k, self.next_run + todo.len() as u64));
            }
        }
        self.copy_runs(dir, &todo, &HashMap::default(), live, true)
    }

    /// Copies runs `todo` ((index, new id) each) with their events moved by
    /// `moves` and without their deleted rows, all or nothing; with
    /// `stand_ins`, each copy of a run the newest checkpoint names stands
    /// in for it ([`cold::StandIn`]).
    fn copy_runs(
        &mut self,
        dir: &Path,
        todo: &[(usize, u64)],
        moves: &HashMap<u64, &[(u64, u64)]>,
        live: &Generations,
        stand_ins: bool,
    ) -> Result<(), Error> {
        if stand_ins {
            self.sort_garbage();
        }
        let garbage = &self.garbage;
        let pending = |s: u64| garbage.get(&s).map(Vec::as_slice);
        let pending: Option<cold::Pending<'_>> = stand_ins.then_some(&pending);
        // The copies share nothing but what they read: one per core at a
        // time, and at most COPIES at once (each holds its run's rows,
        // events and ids in memory until they are written, up to ~250 MB
        // for a run of 2^20 jobs).
        let results = crate::cores::map(todo, COPIES, |&(k, id)| {
            (k, relocated_copy(dir, id, &self.cold[k], pending, moves, live))
        });
        // All or nothing: a failure removes the files the others wrote.
        let (mut written, mut failed) = (Vec::with_capacity(results.len()), None);
        for (k, r) in results {
            match r {
                Ok(run) => written.push((k, run)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            for (_, run) in &written {
                let _ = std::fs::remove_file(run.path());
            }
            return Err(e);
        }
        self.next_run += written.len() as u64;
        for (k, run) in written {
            let copy = Cold::new(Arc::new(run), Default::default());
            let old = std::mem::replace(&mut self.cold[k], copy);
            if let Some(id) = old.named_as() {
                self.cold[k].set_named_as(id);
            }
            self.released.push(Released { named_as: old.named_as(), run: old.run, emptied: false });
        }
        Ok(())
    }

    /// Gives back the space of the runs deletions emptied and of those
    /// copied since (without deleted rows, or with moved events) without
    /// waiting for a checkpoint: for an emptied run the newest checkpoint
    /// names, an empty run that stands in for it is written first (so
    /// that checkpoint still opens; a copy stands in for the run it was
    /// made of already). Returns the files to remove: the caller unlinks
    /// them once it no longer holds the state (an unlink gives the blocks
    /// back to the disk, which takes time). An empty run that cannot be
    /// written (a full disk) leaves its run's file for the next
    /// checkpoint's cleanup.
    pub(crate) fn release_runs(&mut self, dir: &Path) -> Vec<std::path::PathBuf> {
        let mut unlink = Vec::new();
        let released = std::mem::take(&mut self.released);
        if released.iter().any(|r| r.emptied && r.named_as.is_some()) {
            self.sort_garbage();
        }
        for r in released {
            if let (true, Some(named)) = (r.emptied, r.named_as) {
                let path = dir.join(cold::file_name(self.next_run));
                let written = self
                    .pending_of(&r.run)
                    .and_then(|dropped| cold::write_empty_run(&path, self.next_run, named, dropped));
                if written.is_err() {
                    continue;
                }
                self.next_run += 1;
            }
            unlink.push(r.run.path().to_path_buf());
        }
        unlink
    }

    /// Sorts each segment's garbage (its order means nothing), so that
    /// whether an event is in it is a binary search.
    fn sort_garbage(&mut self) {
        for g in self.garbage.values_mut() {
            g.sort_unstable();
        }
    }

    /// The events of every row of `run`, and those it recorded as
    /// dropped, that are still garbage waiting for compaction (the
    /// garbage sorted first).
    fn pending_of(&self, run: &ColdRun) -> Result<Vec<Position>, Error> {
        let pending = |p: &Position| self.garbage.get(&p.segment).is_some_and(|g| g.binary_search(&p.offset).is_ok());
        let mut out: Vec<Position> = run.dropped()?.into_iter().filter(|p| pending(p)).collect();
        let rows = u32::try_from(run.len()).map_err(|_| Error::corrupt("a run of more than 2^32 rows"))?;
        run.each_event_of(0..rows, |p| {
            if pending(&p) {
                out.push(p);
            }
        })?;
        Ok(out)
    }

    /// Forgets the runs released since the last checkpoint (the one
    /// being written names none of them: its cleanup removes their files).
    pub(crate) fn forget_released(&mut self) {
        self.released.clear();
    }

    /// Records that no checkpoint names any run (they were all removed).
    pub(crate) fn named_by_no_checkpoint(&self) {
        for c in &self.cold {
            c.named_as.store(NOT_NAMED, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records that the checkpoint just saved names every run by its id.
    pub(crate) fn named_by_checkpoint(&self) {
        for c in &self.cold {
            c.set_named_as(c.id());
        }
    }

    /// Thaws every run that points into a segment of `segments` (a
    /// compaction's, when [`Projection::relocate_runs`] could not write);
    /// it reads the maps only.
    pub(crate) fn thaw_runs_in(&mut self, segments: &[u64]) -> Result<(), Error> {
        let mut k = 0;
        while k < self.cold.len() {
            if self.cold[k].segments()?.keys().any(|s| segments.contains(s)) {
                self.thaw(k)?;
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    /// A cold row's columns as a by-id read needs them.
    pub(crate) fn cold_row(&self, k: usize, r: u32) -> Result<ColdRow, Error> {
        self.cold[k].row(r)
    }

    /// A name of run `k` (its symbol `sym`).
    pub(crate) fn cold_name(&self, k: usize, sym: u32) -> Result<Option<&str>, Error> {
        self.cold[k].name(sym)
    }
}

/// Writes `jobs` as run `id` in `dir` and opens it (no file is left when
/// that fails).
fn write_run_file(
    dir: &Path,
    id: u64,
    jobs: Vec<ColdJob<'_>>,
    live: &Generations,
    flags: u32,
) -> Result<ColdRun, Error> {
    let segments = segments_of(&jobs, live)?;
    let path = dir.join(cold::file_name(id));
    crate::log::private::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    opened(&path, cold::write_run(&path, id, jobs, &segments, flags))
}

/// The run just `written` at `path`, opened; no file is left when either
/// failed.
fn opened(path: &Path, written: Result<(), Error>) -> Result<ColdRun, Error> {
    let run = written.and_then(|()| ColdRun::open(path));
    if run.is_err() {
        let _ = std::fs::remove_file(path);
    }
    run
}

/// Copies `cold` as run `id` in `dir` with its events' offsets after the
/// compaction that moved them (`moves`: each rewritten segment's (old,
/// new) offsets), and opens it (no file is left when that fails).
fn relocated_copy<'p>(
    dir: &Path,
    id: u64,
    cold: &Cold,
    pending: Option<cold::Pending<'p>>,
    moves: &HashMap<u64, &[(u64, u64)]>,
    live: &Generations,
) -> Result<ColdRun, Error> {
    // A job's events are in log order, and so mostly are the next job's:
    // a lookup in a segment starts from the last one's place there.
    let last = std::cell::Cell::new((u64::MAX, 0));
    let relocate = |p: Position| match moves.get(&p.segment) {
        None => Ok(p),
        Some(moved) => {
            let (segment, hint) = last.get();
            let hint = if segment == p.segment { hint } else { 0 };
            let i = super::delete::search_from(moved, hint, p.offset).ok_or_else(|| {
                Error::corrupt(format!(
                    "compaction dropped the event at {}:{}, which cold run {} holds",
                    p.segment,
                    p.offset,
                    cold.id()
                ))
            })?;
            last.set((p.segment, i));
            Ok(Position { segment: p.segment, offset: moved[i].1 })
        }
    };
    let path = dir.join(cold::file_name(id));
    let stand_in = cold.named_as().zip(pending).map(|(replaces, pending)| cold::StandIn { replaces, pending });
    opened(&path, cold::copy_run(&path, id, cold, &cold.gone, stand_in, relocate, live))
}

/// The jobs of `cold` no deletion took, as the writer takes them.
fn live_jobs(cold: &Cold) -> Result<Vec<ColdJob<'_>>, Error> {
    let mut jobs = Vec::with_capacity(cold.live());
    for r in 0..cold.len() {
        let r = u32::try_from(r).expect("a run numbers its rows by u32");
        if !cold.gone.contains(&r) {
            jobs.push(run_job(&cold.run, r)?);
        }
    }
    Ok(jobs)
}

/// The segments `jobs`' events are in, with their generations in `live`.
fn segments_of(jobs: &[ColdJob<'_>], live: &Generations) -> Result<BTreeMap<u64, u32>, Error> {
    jobs.iter()
        .flat_map(|j| j.events.iter().map(|p| p.segment))
        .map(|s| {
            live.get(&s)
                .map(|&g| (s, g))
                .ok_or_else(|| Error::corrupt(format!("a job's event is in segment {s}, which the log does not hold")))
        })
        .collect()
}

/// Row `r` of `run` as the writer takes it (for merging and thawing).
fn run_job(run: &ColdRun, r: u32) -> Result<ColdJob<'_>, Error> {
    let row = run.row(r)?;
    let name = |s| run.name(s).map(|n| n.map(Cow::Borrowed));
    Ok(ColdJob {
        owner: name(row.owner)?.unwrap_or_default(),
        owningbusinessunit: name(row.owningbusinessunit)?.unwrap_or_default(),
        workflow: name(row.workflow)?,
        regarding: name(row.regarding)?,
        events: run.events(&row)?,
        message_event: (row.message_event != u32::MAX).then_some(row.message_event),
        row,
    })
}
