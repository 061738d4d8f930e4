//! Opening a store: the owner check of the data directory, the simulation
//! marker, the newest usable checkpoint and the replay of the log after it
//! (also the audit replays up to a time or an event). It does not write
//! events; closing and checkpoints are in `mod.rs`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parking_lot::RwLock;

use super::{Config, Engine, OpenReport, SIMULATION_MARKER};
use crate::domain::{Clock, Envelope, Event, JobColumns, Kept, KeptEvent, Timestamp, Transition};
use crate::error::Error;
use crate::log::{Log, LogError, Position};
use crate::projection::{decode_event, EventView, Lookups, NameHashes, Projection, What, PREFETCH_AHEAD};

impl Engine {
    /// Opens (creating if needed) the store in `dir`: loads the newest valid
    /// checkpoint and replays the log after it (or all of it).
    pub fn open(dir: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_as(dir.as_ref(), config, clock, false)
    }

    /// Opens, creating it if needed, a *simulation*: a store whose clock
    /// may run ahead of the system's (a live store refuses a write stamped
    /// more than `MAX_CLOCK_SKEW_SECS` ahead). Only a store being created
    /// can become one; that is recorded in the data directory
    /// ([`SIMULATION_MARKER`]) and holds from then on, whichever way it is
    /// opened. A live store is refused.
    pub fn open_simulation(dir: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_as(dir.as_ref(), config, clock, true)
    }

    fn open_as(dir: &Path, config: Config, clock: Arc<dyn Clock>, create_simulation: bool) -> Result<Self, Error> {
        let dir = dir.to_path_buf();
        check_store(&dir, true)?;
        let marker = dir.join(SIMULATION_MARKER);
        let simulation = marker.symlink_metadata().is_ok();
        if create_simulation && !simulation {
            if dir.join("segments").symlink_metadata().is_ok() {
                return Err(Error::NotANewStore { dir });
            }
            // Recorded before the log exists: a store is a simulation from
            // its first event or never.
            write_marker(&dir, &marker)?;
        }
        let simulation = simulation || create_simulation;
        let log = Log::open(dir.join("segments"), config.log.clone())?;
        Self::load(dir, log, config, clock, simulation)
    }

    /// Opens the store in `dir` for reading only: the log is mapped
    /// read-only under a shared lock (a process that holds the directory
    /// for writing refuses it with [`crate::log::LogError::Locked`]), no
    /// writer thread is started, no segment is created or preallocated, a
    /// torn tail is left as it is (and not served), no checkpoint is
    /// written and nothing is installed: it never writes a byte, so it
    /// works on a full disk. Every write through it is refused
    /// ([`crate::log::LogError::ReadOnly`]). Damage that a writable open
    /// refuses is refused here too, or, in a sealed segment that is not
    /// read at the open (one shorter than the manifest says, or whose
    /// header names another first number), is an error where a read meets
    /// it, as a flipped byte is ([`crate::log::LogConfig::read_only`]).
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let mut config = config;
        let log = open_log_read_only(&dir, &mut config)?;
        let simulation = dir.join(SIMULATION_MARKER).symlink_metadata().is_ok();
        Self::load(dir, log, config, clock, simulation)
    }

    fn load(dir: PathBuf, log: Log, config: Config, clock: Arc<dyn Clock>, simulation: bool) -> Result<Self, Error> {
        let read_only = config.log.read_only;
        let (state, checkpoint_seq, skipped, replayed) = fold(&dir, &log, read_only, true, &config)?;
        let opened = OpenReport { checkpoint_seq, checkpoints_skipped: skipped, events_replayed: replayed };
        Ok(Self {
            inner: Arc::new(super::Inner {
                dir,
                log,
                state: RwLock::new(state),
                write: Mutex::new(()),
                compacting: Mutex::new(()),
                service: Default::default(),
                clock,
                checkpoint_seq: checkpoint_seq.unwrap_or(0).into(),
                config,
                opened,
                simulation,
                read_only,
                checkpoint_failed: Mutex::new(None),
                checkpoint_times: Mutex::new(None),
            }),
        })
    }

    /// The state as it was at `until` (every event up to and including that
    /// time, and each imported row as it stood then: `Job::as_of`), rebuilt
    /// from the log alone: the audit view. Reads the whole log (imported
    /// rows come after newer events).
    pub fn replay_until(&self, until: Timestamp) -> Result<super::Replayed<'_>, Error> {
        self.replay_alone(Replay::UntilTime(until))
    }

    /// The state as it was right after event `seq`, from the log alone.
    pub fn replay_until_seq(&self, seq: u64) -> Result<super::Replayed<'_>, Error> {
        self.replay_alone(Replay::UntilSeq(seq))
    }

    fn replay_alone(&self, how: Replay) -> Result<super::Replayed<'_>, Error> {
        let mut p = Projection::new();
        let spill = Spill::new(&self.inner.log, SpillTo::Scratch, &self.inner.config);
        replay(&self.inner.log, &mut p, how, &mut 0, spill)?;
        Ok(self.replayed(p))
    }
}

/// The log of the store in `dir` for reading only (`config` set so): what
/// every read-only open starts with, refusing what
/// [`Engine::open_read_only`] refuses.
pub(super) fn open_log_read_only(dir: &Path, config: &mut Config) -> Result<Log, Error> {
    check_store(dir, false)?;
    config.log.read_only = true;
    let log = Log::open(dir.join("segments"), config.log.clone())?;
    if let Some(first) = log.recovery().problems.first() {
        let what = first.trim_start_matches("the store is damaged: ");
        return Err(Error::corrupt(what));
    }
    Ok(log)
}

/// Refuses a store whose directory, or any file or directory directly in
/// it, in `segments/` or in `snapshots/`, belongs to another OS user; with
/// `tighten` (a writable open), takes group and other permissions away
/// from the data directory of an older store (made before joblog created
/// them 0700). A missing directory is fine (it will be created).
fn check_store(data: &Path, tighten: bool) -> Result<(), LogError> {
    use crate::log::private::{check_owner, check_owner_of, DIR_MODE};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |path: &Path, source| LogError::Io { path: path.to_path_buf(), source };
    let Ok(meta) = std::fs::symlink_metadata(data) else { return Ok(()) };
    check_owner(data)?;
    let mut dirs = vec![data.to_path_buf()];
    for sub in ["segments", "snapshots"] {
        let p = data.join(sub);
        check_owner(&p)?;
        if p.is_dir() {
            dirs.push(p);
        }
    }
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            // Through the directory's descriptor, not the entry's whole
            // path; a link is not followed (its own owner counts).
            let entry = entry.map_err(|e| io(&dir, e))?;
            check_owner_of(&entry.path(), entry.metadata())?;
        }
    }
    if tighten && meta.is_dir() && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(DIR_MODE)).map_err(|e| io(data, e))?;
    }
    Ok(())
}

/// Writes the simulation marker of a store being created (as any whole
/// file: `SIMULATION.tmp`, synced, renamed, the directory synced).
fn write_marker(dir: &Path, marker: &Path) -> Result<(), Error> {
    use crate::log::private::{create_dir_all, create_file, install_file, InstallError};
    use std::io::Write;
    let io = |path: &Path, source| Error::Io { path: path.to_path_buf(), source };
    create_dir_all(dir).map_err(|e| io(dir, e))?;
    let tmp = dir.join(format!("{SIMULATION_MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        let f = create_file(&tmp, true)?;
        (&f).write_all(b"joblog simulation: events may be stamped ahead of the system clock\n")?;
        f.sync_all()
    };
    install_file(dir, &tmp, marker, write, || {}).map_err(|e| match e {
        InstallError::Write(e) | InstallError::Rename(e) => io(marker, e),
        InstallError::SyncDir(e) => io(dir, e),
    })
}

/// The state the store's files hold: the newest usable checkpoint and the
/// log after it (up to its visible horizon), with the checkpoint used, the
/// checkpoints skipped and why, and the events replayed.
///
/// `opening`: the store is being opened (no state of it is being served),
/// so before a writable open's first spill the run files no checkpoint
/// names belong to no one (an earlier open's spills that never got a
/// checkpoint) and are removed.
fn fold(
    dir: &Path,
    log: &Log,
    read_only: bool,
    opening: bool,
    config: &Config,
) -> Result<(Projection, Option<u64>, Vec<String>, u64), Error> {
    let snapshots = dir.join("snapshots");
    // Loading checkpoints removes leftover `*.tmp` files; a read-only
    // open must not, so with any there it replays the whole log instead.
    let leftovers = read_only
        && std::fs::read_dir(&snapshots)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
    let (snapshot, skipped) = if leftovers {
        (
            None,
            vec![format!(
                "{}: an interrupted checkpoint is there; read-only, the log is replayed",
                snapshots.display()
            )],
        )
    } else {
        Projection::load_snapshot(&snapshots, log.next_seq(), &log.generations())
    };
    if !read_only {
        set_aside_checkpoints_ahead(&snapshots, log.next_seq());
    }
    let loaded = snapshot.is_some();
    let mut state = snapshot.unwrap_or_default();
    if !loaded {
        // The files of checkpoints skipped keep their ids.
        state.number_runs_past_files(&snapshots);
    }
    let checkpoint_seq = (state.last_seq() > 0).then_some(state.last_seq());
    let mut replayed = 0u64;
    let to = match (read_only, opening) {
        (true, _) => SpillTo::Scratch,
        (false, clean) => SpillTo::Dir { dir: &snapshots, clean },
    };
    replay(log, &mut state, Replay::All, &mut replayed, Spill::new(log, to, config))?;
    Ok((state, checkpoint_seq, skipped, replayed))
}

impl Engine {
    /// After a failed sync: the state may hold batches that will never be
    /// durable (applied before their sync, `commit_envelopes`), so it is
    /// rebuilt from what is (the newest checkpoint and the log up to its
    /// visible horizon, as an open does). The log refuses every write
    /// from then on; readers keep reading the durable state. Called with
    /// no guard of the state held.
    pub(super) fn revert_to_durable(&self) {
        let mut state = self.inner.state.write();
        if state.last_seq() < self.inner.log.next_seq() {
            return;
        }
        // The files were read whole by this process's open, and the failed
        // sync changed none of what is durable: this fails only if they were
        // damaged since, and then there is no state to serve.
        match fold(&self.inner.dir, &self.inner.log, false, false, &self.inner.config) {
            Ok((durable, ..)) => *state = durable,
            Err(e) => panic!("a sync failed, and the durable state cannot be read back: {e}"),
        }
    }
}

impl Engine {
    /// Replaces the state by a fold of the log (after a compaction whose
    /// cold runs could be neither rewritten nor read: the checkpoints name
    /// the segments as they were, so the whole log is replayed). Called
    /// with no guard of the state held.
    pub(super) fn rebuild_from_log(&self) {
        let mut state = self.inner.state.write();
        match fold(&self.inner.dir, &self.inner.log, false, false, &self.inner.config) {
            Ok((fresh, ..)) => *state = fresh,
            Err(e) => {
                // No state matches the log: take no more writes.
                self.inner.log.poison(format!("the state cannot be rebuilt from the log: {e}"));
            }
        }
    }
}

/// Folds the events of `log` after `state`'s last one into it, as a
/// read-only open does (its Completed jobs moved into runs in a temporary
/// directory past `Config::replay_spill_rows` of them): what a reading state
/// (`views.rs`) does with the events after its checkpoint. Returns how
/// many it folded.
pub(super) fn fold_read_only(log: &Log, state: &mut Projection, config: &Config) -> Result<u64, Error> {
    let mut folded = 0;
    replay(log, state, Replay::All, &mut folded, Spill::new(log, SpillTo::Scratch, config))?;
    Ok(folded)
}

/// How far a replay goes.
#[derive(Clone, Copy)]
enum Replay {
    All,
    UntilTime(Timestamp),
    UntilSeq(u64),
}

/// Where a replay moves the Completed jobs it holds ([`Spill`]).
enum SpillTo<'a> {
    /// The store's checkpoint directory (a writable open); `clean`: the
    /// runs no checkpoint names are removed before the first spill (only
    /// then: finding them reads every checkpoint).
    Dir { dir: &'a Path, clean: bool },
    /// A temporary directory the state keeps, made at the first spill.
    Scratch,
}

/// A replay's bound on memory: whenever the state holds `rows` more jobs
/// than after its last spill, its Completed jobs move into cold runs
/// (`Projection::spill`).
struct Spill<'a> {
    log: &'a Log,
    to: SpillTo<'a>,
    rows: usize,
    /// The most jobs each run it writes holds (`Config::cold_run_rows`).
    run_rows: usize,
    /// Hot rows at which the next spill happens.
    at: usize,
}

impl<'a> Spill<'a> {
    fn new(log: &'a Log, to: SpillTo<'a>, config: &Config) -> Self {
        let rows = config.replay_spill_rows;
        Spill { log, to, rows, run_rows: config.cold_run_rows, at: rows }
    }

    /// Spills `state` if it holds enough jobs. A spill that cannot be
    /// written (no temporary directory, a full disk) changes nothing: the
    /// replay goes on in memory, as it would without the bound. Any other
    /// error is the replay's.
    fn check(&mut self, state: &mut Projection) -> Result<(), Error> {
        if self.rows == 0 || state.hot_rows() < self.at {
            return Ok(());
        }
        let dir = match (&mut self.to, state.scratch_dir()) {
            (SpillTo::Dir { dir, clean }, _) => {
                if std::mem::take(clean) {
                    state.remove_unnamed_runs(dir);
                }
                Ok(dir.to_path_buf())
            }
            (SpillTo::Scratch, Some(dir)) => Ok(dir),
            (SpillTo::Scratch, None) => tempfile::Builder::new().prefix("joblog-replay-").tempdir().map(|dir| {
                let path = dir.path().to_path_buf();
                state.keep_scratch(dir);
                path
            }),
        };
        // The segments as they are now: a replay of a running store reads
        // segments rolled since it began.
        let scratch = matches!(self.to, SpillTo::Scratch);
        let spilled = match dir {
            Ok(dir) => state.spill(&dir, &self.log.generations(), scratch, self.run_rows),
            Err(source) => Err(Error::Io { path: std::env::temp_dir(), source }),
        };
        match spilled {
            Ok(()) => {
                self.at = state.hot_rows() + self.rows;
                Ok(())
            }
            Err(e @ Error::Io { .. }) => {
                tracing::warn!("a replay cannot move its Completed jobs into cold runs ({e}): it goes on in memory");
                self.rows = 0;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Folds the log into `state`, from the event after the state's last one,
/// counting the events applied, within `spill`'s bound on memory.
///
/// A long replay runs on two threads: one reads the frames (checksums) and
/// decodes the events, the other applies them in order; decoding is about
/// half of a replay's time. Either side's error ends both; the applier's
/// comes first (it is at an earlier event than the reader's). The scan
/// itself reads the segments it checks whole on a third thread, ahead of
/// the reading one (`log/ahead.rs`).
fn replay(log: &Log, state: &mut Projection, how: Replay, count: &mut u64, mut spill: Spill) -> Result<(), Error> {
    // From nothing, the indices are built once at the end (a state that
    // failed to fold is never used).
    state.defer_indexing();
    let (from, last) = (state.last_seq() + 1, state.last_position());
    state.reserve_jobs(expected_jobs(log, from, how, &spill, state.hot_rows()));
    let mut apply = |batch: &Batch| -> Result<(), Error> {
        for (k, d) in batch.events.iter().enumerate() {
            if let Some(far) = batch.events.get(k + 2 * PREFETCH_AHEAD) {
                state.prefetch_far(&batch.lookups(far));
            }
            if let Some(near) = batch.events.get(k + PREFETCH_AHEAD) {
                state.prefetch_near(&batch.lookups(near));
            }
            batch.apply_to(state, d)?;
            *count += 1;
        }
        spill.check(state)
    };
    let long = log.next_seq().saturating_sub(from) >= PIPELINE_EVENTS;
    let folded = match long.then(|| on_two_threads(log, (from, last), how, &mut apply)).flatten() {
        Some(folded) => folded,
        // Short, or no thread to be had: read and apply on this one.
        None => read_events(log, (from, last), how, |batch| {
            apply(batch)?;
            batch.clear();
            Ok(ControlFlow::Continue(()))
        }),
    };
    state.finish_indexing();
    folded
}

/// Events a replay reads per job it creates, as [`expected_jobs`] guesses:
/// a creation and a few transitions (the benchmark's workload has four).
const EVENTS_PER_JOB: u64 = 4;

/// The jobs a replay from `from` as far as `how` goes will likely create,
/// for the id table's room to be made before it starts
/// (`Projection::reserve_jobs`; docs/benchmarks.md, "The id table made
/// once"). A log of fewer events per job grows the table as before; one
/// of more is given up to 8 bytes of slots per event it holds, more than
/// its jobs need. At most the jobs it creates before `spill` first moves
/// them out (the state holding `hot` jobs), which makes the table again;
/// none for a replay up to a time, whose end is not known before it gets
/// there (an audit of an early time would be given the room of the whole
/// log).
fn expected_jobs(log: &Log, from: u64, how: Replay, spill: &Spill, hot: usize) -> usize {
    let end = match how {
        Replay::All => log.next_seq(),
        Replay::UntilSeq(seq) => log.next_seq().min(seq.saturating_add(1)),
        Replay::UntilTime(_) => return 0,
    };
    let jobs = usize::try_from(end.saturating_sub(from) / EVENTS_PER_JOB).unwrap_or(usize::MAX);
    match spill.rows {
        0 => jobs,
        _ => jobs.min(spill.at.saturating_sub(hot)),
    }
}

/// [`replay`]'s two threads: this one applies (`apply`), a new one reads.
/// `None` when no thread could be made (nothing was read).
fn on_two_threads(
    log: &Log,
    from: (u64, Option<Position>),
    how: Replay,
    apply: &mut dyn FnMut(&Batch) -> Result<(), Error>,
) -> Option<Result<(), Error>> {
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(BATCHES_IN_FLIGHT);
        // Applied batches come back to be emptied where their events were
        // made (the allocator frees faster on the thread that allocated),
        // and filled again.
        let (done_tx, done_rx) = crossbeam_channel::bounded::<Batch>(BATCHES_IN_FLIGHT);
        let reader = std::thread::Builder::new().name("joblog-replay".into()).spawn_scoped(scope, move || {
            read_events(log, from, how, |batch| {
                let mut next = done_rx.try_recv().unwrap_or_default();
                next.clear();
                // A closed channel is the applier's error: stop reading.
                Ok(match tx.send(std::mem::replace(batch, next)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                })
            })
        });
        let reader = reader.ok()?;
        let applied = rx.iter().try_for_each(|batch| {
            apply(&batch)?;
            // Dropped here if the reader has not taken the last ones back.
            let _ = done_tx.try_send(batch);
            Ok(())
        });
        drop(rx);
        let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Some(applied.and(read))
    })
}

/// Events decoded for [`replay`], as its reading thread hands them to its
/// applying one: the two events nearly every log is made of by what the
/// state keeps of them, with no allocation of their own but a step's
/// message (a creation's strings are in `text`, one after another), any
/// other whole. Each kind
/// is in a list of its own, so that the events the applying thread reads
/// (written by the other core) take as few cache lines as they can.
#[derive(Default)]
struct Batch {
    events: Vec<Decoded>,
    created: Vec<Creation>,
    steps: Vec<Transition>,
    whole: Vec<Envelope>,
    text: String,
}

/// A creation in a [`Batch`]: the columns the state keeps, their strings
/// in the batch's text, and the hashes of its names, made on the reading
/// thread.
struct Creation {
    job: JobColumns<Span>,
    names: NameHashes,
}

/// Where a string of a [`Batch`]'s creation is in its text.
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

/// An event decoded for [`replay`]: its sequence number and place, and
/// where it is in its [`Batch`].
struct Decoded {
    seq: u64,
    position: Position,
    at: Timestamp,
    version: u16,
    item: Item,
}

/// Which list of its [`Batch`] a [`Decoded`] is in, at which index (and
/// whether a user took a step).
#[derive(Clone, Copy)]
enum Item {
    Created(u32),
    Transition(u32, bool),
    Whole(u32),
}

impl Batch {
    /// Empty, its memory kept for the next events.
    fn clear(&mut self) {
        self.events.clear();
        self.created.clear();
        self.steps.clear();
        self.whole.clear();
        self.text.clear();
    }

    fn len(&self) -> usize {
        self.events.len()
    }

    /// Decodes the event `rec` holds into the batch, as far as `how`
    /// goes (an event past it is left out).
    fn push(&mut self, log: &Log, rec: crate::log::RecordRef<'_>, how: Replay) -> Result<(), Error> {
        let (seq, position) = (rec.seq, rec.position);
        // Matched where it was decoded, not moved: a creation's columns are
        // large.
        let kept = match crate::domain::decode_kept(rec.payload) {
            // By business time a creation counts from its row's own times
            // (`Job::as_of`, below): one created after `u` is left out; one
            // changed after `u` (an imported row that was not yet as
            // imported) is read whole and rolled back; any other stands as
            // it is, stamped no later than its last change.
            Some(Kept { event: KeptEvent::Created(ref job), .. }) if matches!(how, Replay::UntilTime(u) if job.createdon > u) => {
                return Ok(())
            }
            Some(Kept { event: KeptEvent::Created(ref job), .. }) if matches!(how, Replay::UntilTime(u) if job.modifiedon > u) => {
                None
            }
            Some(Kept { at, event: KeptEvent::Transition(_), .. }) if matches!(how, Replay::UntilTime(u) if at > u) => {
                return Ok(())
            }
            Some(Kept { version, at, event: KeptEvent::Created(ref job), .. }) => {
                let at = if matches!(how, Replay::UntilTime(_)) { at.min(job.modifiedon) } else { at };
                // Below 4 GiB: the text is under `BATCH_TEXT` before this
                // event, whose payload is under 8 MiB (`decode_kept`).
                let text = &mut self.text;
                self.created.push(Creation {
                    job: job.map(|s| {
                        let start = text.len() as u32;
                        text.push_str(s);
                        Span { start, end: text.len() as u32 }
                    }),
                    names: NameHashes::of(job),
                });
                Some((version, at, Item::Created((self.created.len() - 1) as u32)))
            }
            Some(Kept { version, at, by_user, event: KeptEvent::Transition(t) }) => {
                self.steps.push(t);
                Some((version, at, Item::Transition((self.steps.len() - 1) as u32, by_user)))
            }
            None => None,
        };
        if let Some((version, at, item)) = kept {
            self.events.push(Decoded { seq, position, at, version, item });
            return Ok(());
        }
        let mut env = decode_event(log, seq, position, rec.payload)?;
        if let Replay::UntilTime(u) = how {
            // By business time: every event up to `u`, and each imported
            // row as it stood at `u` (`Job::as_of`). Imported rows are
            // written when they are imported, after newer events, so the
            // whole log is read.
            match &mut env.event {
                Event::JobCreated(job) => match job.as_of(u) {
                    None => return Ok(()),
                    Some(then) => {
                        // Stamped when it stood so (`last_at` stays ≤ `u`).
                        env.at = env.at.min(then.modifiedon);
                        **job = then;
                    }
                },
                _ if env.at > u => return Ok(()),
                _ => {}
            }
        }
        let (at, version) = (env.at, env.version);
        self.whole.push(env);
        let item = Item::Whole((self.whole.len() - 1) as u32);
        self.events.push(Decoded { seq, position, at, version, item });
        Ok(())
    }

    /// What applying event `d` of the batch looks up first.
    fn lookups(&self, d: &Decoded) -> Lookups {
        match d.item {
            Item::Created(i) => {
                let c = &self.created[i as usize];
                Lookups { job: Some(c.job.id), names: Some(c.names) }
            }
            Item::Transition(i, _) => Lookups { job: Some(self.steps[i as usize].job), names: None },
            Item::Whole(i) => Lookups::of(&self.whole[i as usize].event),
        }
    }

    /// A creation's string.
    fn str(&self, s: Span) -> &str {
        &self.text[s.start as usize..s.end as usize]
    }

    /// Applies event `d` of the batch to `state` (a creation's columns
    /// are made here, for creations alone).
    fn apply_to(&self, state: &mut Projection, d: &Decoded) -> Result<(), Error> {
        let job;
        let what = match d.item {
            Item::Created(i) => {
                let c = &self.created[i as usize];
                job = c.job.map(|s| self.str(s));
                What::Created { job: &job, names: c.names }
            }
            Item::Transition(i, by_user) => What::Transition { t: &self.steps[i as usize], by_user },
            Item::Whole(i) => {
                let env = &self.whole[i as usize];
                What::Whole { actor: &env.actor, event: &env.event }
            }
        };
        state.apply_view(EventView { version: d.version, at: d.at, what }, d.seq, d.position)
    }
}

/// Events decoded per batch handed from the reader to the applier.
const BATCH_EVENTS: usize = 4096;
/// A batch is handed over once its creations' strings take this many
/// bytes, even with fewer than [`BATCH_EVENTS`] events.
const BATCH_TEXT: usize = 1 << 20;
/// Batches decoded ahead of the applier at most.
const BATCHES_IN_FLIGHT: usize = 8;
/// A replay of fewer events than this stays on one thread.
const PIPELINE_EVENTS: u64 = 64 * 1024;

/// Reads and decodes the events of the log from `from` on, as far as `how`
/// goes, and hands them to `each` in batches, in order, until it breaks.
/// `each` takes the batch's events (it leaves the batch empty).
fn read_events(
    log: &Log,
    (from, last): (u64, Option<Position>),
    how: Replay,
    mut each: impl FnMut(&mut Batch) -> Result<ControlFlow<()>, Error>,
) -> Result<(), Error> {
    let mut batch = Batch::default();
    log.scan_after(from, last, |rec| -> Result<ControlFlow<()>, Error> {
        if matches!(how, Replay::UntilSeq(s) if rec.seq > s) {
            return Ok(ControlFlow::Break(()));
        }
        if let Err(e) = batch.push(log, rec, how) {
            // The events before it go to the applier first: its refusal of
            // one of them is the earlier error, and wins.
            if batch.len() > 0 && each(&mut batch)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            return Err(e);
        }
        if batch.len() < BATCH_EVENTS && batch.text.len() < BATCH_TEXT {
            return Ok(ControlFlow::Continue(()));
        }
        each(&mut batch)
    })?;
    // What is left when the scan ends or stops at `UntilSeq` (after a
    // break by `each`, nothing is).
    if batch.len() > 0 {
        let _ = each(&mut batch)?;
    }
    Ok(())
}

/// Renames each checkpoint at or past `next_seq` (a state the log no longer
/// holds: events were lost from its end) to `NAME.ahead-NEXT`: kept as
/// evidence (`verify` reports it), never loaded again. Left in place, it
/// would be loaded as soon as new writes brought the log to its sequence
/// number, a state of another history.
fn set_aside_checkpoints_ahead(snapshots: &Path, next_seq: u64) {
    for entry in std::fs::read_dir(snapshots).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let seq: Option<u64> =
            name.strip_prefix("snapshot-").and_then(|n| n.strip_suffix(".bin")).and_then(|n| n.parse().ok());
        if seq.is_some_and(|seq| seq >= next_seq) {
            let _ = std::fs::rename(entry.path(), snapshots.join(format!("{name}.ahead-{next_seq}")));
        }
    }
}
