//! The embedding surface: an [`Engine`] on a data directory, and
//! [`Session`]s through which an acting user creates jobs, acts on them and
//! reads them. Every call checks the user's privileges first (through
//! `Directory::check`, the one place that decides), and every change is an
//! atomic batch of events appended to the log before the projection shows it.
//!
//! ```
//! use std::sync::Arc;
//! use joblog::engine::{Config, Engine, NewJob, UserAction};
//! use joblog::domain::{ManualClock, OperationType, Status, Timestamp};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-31T12:00:00Z").unwrap()));
//! let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
//! let admin = engine.session("admin").unwrap();
//! let job = admin.create(NewJob::new("Send welcome email", OperationType::BULK_EMAIL)).unwrap();
//! assert_eq!(job.status, Status::READY);
//! let job = admin.act(job.id, UserAction::Cancel).unwrap();
//! assert_eq!(job.status, Status::CANCELED);
//! assert_eq!(admin.history(job.id).unwrap().len(), 2);
//! ```
//!
//! One file per concern: `open.rs` (opening, replay), `write.rs` (the
//! write path every change takes), `steps.rs` (the service's steps),
//! `actions.rs` (creating and acting on jobs), `reads.rs` (reading them),
//! `delete.rs` (deletion, compaction, Bulk Delete jobs), `admin.rs`
//! (users, roles, workflows, policy), `tokens.rs` (bearer tokens), `import.rs` (history brought in),
//! `verify.rs` (checking and salvaging a store). This file holds what they
//! share: `Engine`, `Config`, `Session`, closing and checkpoints.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::domain::{Actor, Clock, Depth, DomainError, Privilege, Timestamp};
use crate::error::Error;
use crate::log::{Log, LogConfig};
use crate::projection::query::Visibility;
use crate::projection::Projection;

mod actions;
mod admin;
mod delete;
mod import;
mod open;
mod reads;
mod state;
mod steps;
mod tokens;
mod verify;
mod views;
mod write;

pub use actions::{BulkOutcome, NewJob, UserAction};
pub(crate) use delete::{outdates_checkpoints, Reclaim};
pub use delete::{BulkDeleteRecord, DeletionReport, NewBulkDelete, DEFAULT_BULK_DELETE_NAME};
pub use reads::{HistoryEntry, Reads};
pub use state::{EventTail, Replayed, StateGuard, View};
pub use steps::{ServiceStep, Worker};
pub use tokens::{NewToken, TokenInfo, TOKEN_PREFIX};
pub use verify::{manifest_problem, salvage, verify_unopenable, LostRange, SalvageOptions, SalvageReport, StoreReport};
pub use views::{Reader, Views};

/// How an engine is opened.
#[derive(Debug, Clone)]
pub struct Config {
    /// How the log is opened (segment size, sync, checks, read-only).
    pub log: LogConfig,
    /// Save a checkpoint of the projection after this many events (0: only
    /// on [`Engine::close`] and [`Engine::checkpoint`]).
    pub checkpoint_every_events: u64,
    /// A checkpoint moves the Completed jobs held in memory into a cold
    /// run when there are at least this many (`projection/tier.rs`): fewer
    /// runs, each bigger, against less memory between checkpoints.
    pub cold_after: usize,
    /// A replay from the log (an open without a usable checkpoint, an audit
    /// replay, `verify`) moves the Completed jobs it holds in memory into
    /// cold runs whenever it holds this many more jobs than after it last
    /// did (0: never), so its memory is bounded by this and by the open
    /// jobs, not by the store's size (ARCHITECTURE.md, "Replay in bounded
    /// memory"). A writable open writes them where a checkpoint would; a
    /// read-only replay in a temporary directory (`$TMPDIR`), removed with
    /// its state.
    pub replay_spill_rows: usize,
    /// The most jobs a cold run holds (one System Job Type's, in order of
    /// creation; a checkpoint or a spill writes more as several runs, side
    /// by side): a change to one of its jobs thaws it whole, so a run
    /// must be small next to the store; but a view opens every run that
    /// may hold its rows, so runs must not be many (`projection/tier.rs`,
    /// `MAX_RUN_ROWS`, the default). 0 is taken as 1.
    pub cold_run_rows: usize,
}

impl Default for Config {
    /// The log is opened without checking each sealed segment's
    /// whole-content checksum: that reads the whole store (3.7 GB at 10M
    /// jobs, most of an open's time), where an open must cost what the
    /// state since the last checkpoint costs. Every frame's bytes are
    /// still checked wherever they are read (by its CRC, or by the
    /// segment's whole checksum where a scan reads a compacted segment
    /// whole), and readers check that an event is the job's, so damage is
    /// an error where a read meets it; `verify` checks every byte
    /// (ARCHITECTURE.md, "Opening").
    fn default() -> Self {
        Self {
            log: LogConfig { verify_on_open: false, ..LogConfig::default() },
            checkpoint_every_events: 1_000_000,
            cold_after: 4096,
            // About 16.8 M jobs, some 6 GB of memory (a replay holds about
            // 360 bytes a job, the open ones too, and a spill the jobs of
            // the runs it writes at once more, up to four of ~250 MB):
            // a 10M-job store replays in memory as before.
            replay_spill_rows: 1 << 24,
            cold_run_rows: crate::projection::MAX_RUN_ROWS,
        }
    }
}

/// How far ahead of the system clock an event of a live (not simulated)
/// store may be stamped. Events never go backwards in time, so one event
/// stamped far ahead would refuse every later write until then: the clock
/// an engine is given (a `--now`, a [`crate::domain::ManualClock`]) is
/// checked against the system's before each write.
pub(crate) const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Refuses `at` ([`Error::ClockAhead`]) when it is further ahead of the
/// system clock than `MAX_CLOCK_SKEW_SECS`: what a live store checks
/// before each write.
pub fn check_clock_skew(at: Timestamp) -> Result<(), Error> {
    let limit = crate::domain::SystemClock.now().plus_micros(MAX_CLOCK_SKEW_SECS * 1_000_000);
    if at > limit {
        return Err(Error::ClockAhead { at: at.to_rfc3339(), limit: limit.to_rfc3339() });
    }
    Ok(())
}

/// The file in a data directory that marks a store created as a
/// simulation (`DATA/SIMULATION`; see `docs/format.md`).
pub const SIMULATION_MARKER: &str = "SIMULATION";

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The checkpoint loaded: the last event it holds.
    pub checkpoint_seq: Option<u64>,
    /// Checkpoints that were not used, and why.
    pub checkpoints_skipped: Vec<String>,
    /// Events replayed from the log after the checkpoint.
    pub events_replayed: u64,
}

/// How long each phase of a checkpoint took ([`Engine::last_checkpoint_times`]):
/// what an operator (and `joblog-bench`) needs to see where a slow
/// checkpoint spent its time. Readers wait only during the parts marked
/// "under the write lock"; each phase that takes a lock counts its wait
/// for it (a reader holding a [`StateGuard`] makes the next install wait).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointTimes {
    /// Taking the state from other writers, and syncing what is placed.
    pub sync: Duration,
    /// Planning which Completed jobs move cold (their frames' lengths
    /// read from the log).
    pub plan: Duration,
    /// Writing their events into cold segments (`None`: no job moved
    /// cold, or a compaction was running, which rewrites the same
    /// segments).
    pub freeze_write: Option<Duration>,
    /// Installing those cold segments, the state following the frames
    /// they moved, older runs moved with them, and removing the
    /// checkpoints that pointed into the segments rewritten (under the
    /// write lock; `None` as for `freeze_write`).
    pub freeze_install: Option<Duration>,
    /// Writing the cold runs of the jobs moved cold.
    pub runs: Duration,
    /// Installing the runs (under the write lock), saving the checkpoint
    /// of the hot rest and the image of its rows, removing the runs no
    /// checkpoint names any more.
    pub save: Duration,
}

impl CheckpointTimes {
    /// Each phase that happened, named as a report would, in order.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        let mut phases = vec![("lock and sync", self.sync), ("plan", self.plan)];
        phases.extend(self.freeze_write.map(|d| ("cold segments written", d)));
        phases.extend(self.freeze_install.map(|d| ("cold segments installed", d)));
        phases.extend([("cold runs written", self.runs), ("runs installed, checkpoint saved", self.save)]);
        phases
    }
}

/// A store of system jobs on one data directory: a cheap handle
/// (`Clone` shares the same store, as an `Arc` does), to hand to threads, a
/// [`Session`], a [`crate::Service`] or a [`Worker`] without `thread::scope`.
/// The store closes when the last handle drops (or at [`Engine::close`]).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What every handle of one engine shares.
struct Inner {
    dir: PathBuf,
    log: Log,
    state: RwLock<Projection>,
    /// Held from validation to applying: writes are checked against the
    /// state they change, one at a time.
    write: Mutex<()>,
    clock: Arc<dyn Clock>,
    config: Config,
    /// One compaction at a time.
    compacting: Mutex<()>,
    /// Set while a service runs jobs on this engine (one at a time).
    service: std::sync::atomic::AtomicBool,
    /// The last event of the newest checkpoint written or loaded.
    checkpoint_seq: std::sync::atomic::AtomicU64,
    opened: OpenReport,
    /// Created as a simulation: the clock is not checked against the system's.
    simulation: bool,
    /// Opened by [`Engine::open_read_only`]: nothing is ever written.
    read_only: bool,
    /// Why the last checkpoint due after a write could not be written (a
    /// checkpoint is a cache: the write it followed stands).
    checkpoint_failed: Mutex<Option<String>>,
    /// The phases of the last checkpoint written.
    checkpoint_times: Mutex<Option<CheckpointTimes>>,
}

impl Engine {
    /// Whether the store was created as a simulation (its clock may run
    /// ahead of the system's).
    pub fn is_simulation(&self) -> bool {
        self.inner.simulation
    }

    /// Whether this engine was opened by [`Engine::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Why the last checkpoint due after a write failed, if it did (the
    /// write itself stands; the next checkpoint tries again).
    pub fn checkpoint_failure(&self) -> Option<String> {
        self.inner.checkpoint_failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long the phases of the last checkpoint this engine wrote took
    /// (`None` before its first).
    pub fn last_checkpoint_times(&self) -> Option<CheckpointTimes> {
        *self.inner.checkpoint_times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a service as running on this engine until the guard drops;
    /// refused while another one runs (a job must never run twice).
    pub(crate) fn claim_service(&self) -> Result<ServiceClaim, Error> {
        use std::sync::atomic::Ordering;
        if self.inner.service.swap(true, Ordering::AcqRel) {
            return Err(Error::ServiceRunning);
        }
        Ok(ServiceClaim(self.clone()))
    }

    /// What opening found: the checkpoint used and the events replayed.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.opened
    }

    /// Whether bulk batches left the indices to be built by the next
    /// reader (`Projection::defer_indexing_for`): for tests of that rule.
    #[doc(hidden)]
    pub fn indexing_deferred(&self) -> bool {
        self.inner.state.read_recursive().indexing_deferred()
    }

    /// Saves a checkpoint of the current state now.
    pub fn checkpoint(&self) -> Result<PathBuf, Error> {
        if self.inner.read_only {
            return Err(crate::log::LogError::ReadOnly.into());
        }
        state::refuse_if_state_held()?;
        let _one_writer = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
        self.checkpoint_locked(crate::projection::CHECKPOINTS_KEPT)
    }

    /// [`Engine::checkpoint`] by a thread that holds the write lock: sync
    /// what is placed (a checkpoint holds only what is durable), move the
    /// Completed hot jobs into cold runs when there are enough
    /// (`projection/tier.rs`), their events first into cold segments
    /// (`Engine::freeze`), save the hot rest, and remove the cold runs no
    /// kept checkpoint names any more. Keeps the newest `keep` checkpoints.
    pub(crate) fn checkpoint_locked(&self, keep: usize) -> Result<PathBuf, Error> {
        let dir = self.inner.dir.join("snapshots");
        let min = self.inner.config.cold_after.max(1);
        let mut times = CheckpointTimes::default();
        let mut phase = Instant::now();
        // No writer can change the state (this thread holds the write
        // lock), nor a reader taking it back after a failed sync (the
        // upgradable lock): readers go on while the run is written.
        let mut state = self.inner.state.upgradable_read();
        self.inner.log.sync_through(state.last_seq() + 1)?;
        times.sync = phase.elapsed();
        phase = Instant::now();
        // A cold segment is at most a segment's size (but for one job's
        // events): positions in the projection hold offsets in 32 bits.
        let log = &self.inner.log;
        let frame_lens = |p: &[_]| Ok(log.written_frame_lens(p)?);
        let plan = state.freeze_plan(min, self.inner.config.log.segment_size_bytes, frame_lens)?;
        times.plan = phase.elapsed();
        if let Some(plan) = plan {
            state = self.freeze(state, &plan, &mut times)?;
        }
        phase = Instant::now();
        let live = self.inner.log.generations();
        let new = state.prepare_run(&dir, &live, min, self.inner.config.cold_run_rows)?;
        times.runs = phase.elapsed();
        phase = Instant::now();
        let mut state = parking_lot::RwLockUpgradableReadGuard::upgrade(state);
        if let Some(new) = new {
            state.install_run(new);
        }
        // The runs released since the last checkpoint are not in this one:
        // its cleanup removes what is left of them.
        state.forget_released();
        let hot_run = state.take_run_id();
        let state = parking_lot::RwLockWriteGuard::downgrade(state);
        // The image of the hot rows a reading command maps instead of
        // decoding them (`Projection::load_views`), written on a core of its
        // own while the checkpoint is. It is a cache of a cache: one that
        // could not be written is no image (`engine/views.rs` then opens
        // the engine), never a failed checkpoint.
        let (image, path) = std::thread::scope(|s| {
            let image = s.spawn(|| state.write_hot_run(&dir, &live, hot_run));
            let path = state.save_snapshot(&dir, &live, keep, hot_run);
            (image.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), path)
        });
        if let Err(e) = image {
            tracing::warn!("the image of the hot rows of checkpoint {} was not written: {e}", state.last_seq());
        }
        let path = path.inspect_err(|_| {
            let _ = std::fs::remove_file(dir.join(crate::projection::cold::file_name(hot_run)));
        })?;
        state.named_by_checkpoint();
        state.remove_unnamed_runs(&dir);
        self.inner.checkpoint_seq.store(state.last_seq(), std::sync::atomic::Ordering::Relaxed);
        times.save = phase.elapsed();
        *self.inner.checkpoint_times.lock().unwrap_or_else(|e| e.into_inner()) = Some(times);
        Ok(path)
    }

    /// Moves the events of `plan` (the Completed hot jobs a checkpoint is
    /// about to write into runs) out of the hot segments into cold ones,
    /// one per System Job Type, Status Reason and stretch of completion times
    /// (`log/compact.rs`, ARCHITECTURE.md "Cold segments"), so that a
    /// deletion by age later removes whole files. The files are written
    /// while readers go on; the install, and the state following the
    /// frames it moved, under the write lock. Skipped while a compaction
    /// runs (it rewrites the same segments; the runs then point into the
    /// hot segments, as before cold segments).
    fn freeze<'a>(
        &'a self,
        state: parking_lot::RwLockUpgradableReadGuard<'a, Projection>,
        plan: &crate::projection::FreezePlan,
        times: &mut CheckpointTimes,
    ) -> Result<parking_lot::RwLockUpgradableReadGuard<'a, Projection>, Error> {
        let Ok(_one) = self.inner.compacting.try_lock() else { return Ok(state) };
        let t = Instant::now();
        let rewrite = self.inner.log.freeze(&plan.groups)?;
        times.freeze_write = Some(t.elapsed());
        let t = Instant::now();
        let mut state = parking_lot::RwLockUpgradableReadGuard::upgrade(state);
        let done = self.inner.log.install(rewrite)?;
        state.apply_freeze(plan, &done);
        // Older runs may point into the hot segments it rewrote.
        let live = self.inner.log.generations();
        if state.relocate_runs(&self.inner.dir.join("snapshots"), &done, &live).is_err() {
            let rewritten: Vec<u64> = done.segments.iter().map(|s| s.segment).collect();
            if let Err(e) = state.thaw_runs_in(&rewritten) {
                drop(state);
                self.rebuild_from_log();
                return Err(e);
            }
        }
        state.apply_compaction(&Default::default(), &done);
        // Every checkpoint points into segments just rewritten.
        let _ = Projection::remove_snapshots(&self.inner.dir.join("snapshots"));
        times.freeze_install = Some(t.elapsed());
        Ok(parking_lot::RwLockWriteGuard::downgrade_to_upgradable(state))
    }

    /// Saves a checkpoint (if anything changed since the last) and closes
    /// the log, reporting its final sync.
    ///
    /// Other handles of this engine (clones, sessions, a service) keep the
    /// store open: the log is then closed, and synced, when the last of
    /// them drops, and this reports only the checkpoint.
    pub fn close(self) -> Result<(), Error> {
        // The state as applied, not through a reader: that would build the
        // indices bulk batches deferred, which the checkpoint does not need.
        let last_seq = self.inner.state.read_recursive().last_seq();
        if !self.inner.read_only && last_seq > self.inner.checkpoint_seq.load(std::sync::atomic::Ordering::Relaxed) {
            self.checkpoint()?;
        }
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Ok(inner.log.close()?),
            Err(_) => Ok(()),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A session for `user`, who must exist and be active.
    pub fn session(&self, user: &str) -> Result<Session, Error> {
        check_user(&self.state(), user)?;
        Ok(Session { engine: self.clone(), user: user.to_string() })
    }
}

/// Refuses a user who does not exist or is deactivated.
fn check_user(state: &Projection, user: &str) -> Result<(), Error> {
    if !state.directory().user(user)?.active {
        return Err(DomainError::UserDeactivated { name: user.to_string() }.into());
    }
    Ok(())
}

/// A running service's claim on its engine.
pub(crate) struct ServiceClaim(Engine);

impl Drop for ServiceClaim {
    fn drop(&mut self) {
        self.0.inner.service.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Calls made by one acting user. It holds its own handle of the
/// [`Engine`], so it may outlive the `Engine` value it came from and move
/// to another thread.
#[derive(Clone)]
pub struct Session {
    engine: Engine,
    user: String,
}

impl Session {
    /// The acting user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn actor(&self) -> Actor {
        Actor::User(self.user.clone())
    }

    /// Whose jobs this user may see.
    pub fn visibility(&self) -> Visibility {
        visibility(&self.engine.state(), &self.user)
    }
}

/// Whose jobs `user` may see, from their Read depth.
fn visibility(state: &Projection, user: &str) -> Visibility {
    let dir = state.directory();
    let Ok(u) = dir.user(user) else { return Visibility::Nothing };
    match dir.depth(u, Privilege::Read) {
        Depth::None => Visibility::Nothing,
        Depth::User => Visibility::Owner(user.to_string()),
        Depth::BusinessUnit => Visibility::BusinessUnits(vec![u.business_unit.clone()]),
        Depth::ParentChild => Visibility::BusinessUnits(dir.units_within(&u.business_unit)),
        Depth::Organization => Visibility::All,
    }
}
