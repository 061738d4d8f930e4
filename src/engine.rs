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

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use uuid::Uuid;

use crate::codec;
use crate::domain::{
    transition, Action, Actor, Clock, Deletion, DeletionCriteria, Depth, DomainError, Envelope, Event, Job,
    OperationType, Privilege, Recurrence, Regarding, RetentionPolicy, Role, Status, Timestamp, Transition, User,
    WorkflowDefinition, EVENT_VERSION, MAX_IMMEDIATE_DELETE,
};
use crate::error::Error;
use crate::log::{Batch, Compaction, Log, LogConfig, LogError};
use crate::projection::query::{Cursor, Filter, Visibility};
use crate::projection::{decode_event, Projection, WriteTarget};
use std::collections::HashMap;

mod verify;
pub use verify::{manifest_problem, salvage, verify_unopenable, LostRange, SalvageOptions, SalvageReport, StoreReport};

/// How an engine is opened.
#[derive(Debug, Clone)]
pub struct Config {
    pub log: LogConfig,
    /// Save a checkpoint of the projection after this many events (0: only
    /// on [`Engine::close`] and [`Engine::checkpoint`]).
    pub checkpoint_every_events: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { log: LogConfig::default(), checkpoint_every_events: 1_000_000 }
    }
}

/// How far ahead of the system clock an event of a live (not simulated)
/// store may be stamped. Events never go backwards in time, so one event
/// stamped far ahead would refuse every later write until then: the clock
/// an engine is given (a `--now`, a [`crate::domain::ManualClock`]) is
/// checked against the system's before each write.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Refuses `at` ([`Error::ClockAhead`]) when it is further ahead of the
/// system clock than [`MAX_CLOCK_SKEW_SECS`]: what a live store checks
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

/// A job to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub name: String,
    pub operationtype: OperationType,
    /// The workflow definition that starts it; its owner owns the job
    /// unless `owner` says otherwise.
    pub workflow: Option<String>,
    pub regarding: Option<Regarding>,
    pub owner: Option<String>,
    /// Run only after this time.
    pub postpone_until: Option<Timestamp>,
    pub dependency_token: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub depth: u32,
    pub data: Vec<u8>,
}

impl NewJob {
    pub fn new(name: &str, operationtype: OperationType) -> Self {
        Self {
            name: name.to_string(),
            operationtype,
            workflow: None,
            regarding: None,
            owner: None,
            postpone_until: None,
            dependency_token: None,
            correlation_id: None,
            depth: 1,
            data: Vec::new(),
        }
    }
}

/// The four things a user may ask of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    Cancel,
    Pause,
    Resume,
    Postpone(Timestamp),
}

impl UserAction {
    fn action(self) -> Action {
        match self {
            UserAction::Cancel => Action::Cancel,
            UserAction::Pause => Action::Pause,
            UserAction::Resume => Action::Resume,
            UserAction::Postpone(_) => Action::Postpone,
        }
    }
}

/// A step the service takes on a job (the service's side of the state
/// machine; `domain.md` §5). Workers act as `Actor::Worker`, without a
/// user's privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStep {
    /// Take a Ready job whose `postponeuntil` has passed.
    Lock,
    Succeed,
    Fail {
        code: i32,
        message: String,
    },
    /// The run waits until a time.
    Wait {
        until: Timestamp,
        message: Option<String>,
    },
    /// The run waits for someone (a data error, a condition): Suspended /
    /// Waiting with no time, until a user resumes it.
    Suspend {
        message: String,
    },
    /// A transient failure: retry at `until`, one more `retrycount`.
    Retry {
        until: Timestamp,
        message: String,
    },
    /// The worker stopped at a checkpoint after a pause (or postpone).
    StopPausing {
        message: Option<String>,
    },
    /// The worker stopped after a cancel.
    StopCanceling {
        message: Option<String>,
    },
    /// The worker's lease was lost.
    ReturnToReady {
        message: String,
    },
    /// A Suspended job's `postponeuntil` has passed.
    Wake,
    /// Hold a Ready job back until a time (back-off of a failing workflow).
    Defer {
        until: Timestamp,
        message: String,
    },
    /// Cancel a Ready job that must not run (the loop guard).
    Stop {
        message: String,
    },
}

impl ServiceStep {
    fn action(&self) -> Action {
        match self {
            ServiceStep::Lock => Action::Lock,
            ServiceStep::Succeed => Action::Succeed,
            ServiceStep::Fail { .. } => Action::Fail,
            ServiceStep::Wait { .. } | ServiceStep::Suspend { .. } => Action::Wait,
            ServiceStep::Retry { .. } => Action::Retry,
            ServiceStep::StopPausing { .. } => Action::StopPausing,
            ServiceStep::StopCanceling { .. } => Action::StopCanceling,
            ServiceStep::ReturnToReady { .. } => Action::ReturnToReady,
            ServiceStep::Wake => Action::Wake,
            ServiceStep::Defer { .. } => Action::Postpone,
            ServiceStep::Stop { .. } => Action::Cancel,
        }
    }
}

/// What an action on every matching job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub matched: usize,
    pub changed: Vec<Uuid>,
    /// Jobs left as they were, with why.
    pub refused: Vec<(Uuid, String)>,
    /// How many were refused for each kind of reason ("already
    /// completed", …): the summary of `refused`.
    pub refused_by: std::collections::BTreeMap<&'static str, usize>,
}

/// The kind of reason a bulk action left a job alone, for its summary.
fn refusal_kind(e: &Error) -> &'static str {
    match e {
        Error::Domain(DomainError::Refused { current, .. }) if current.is_completed() => "already completed",
        Error::Domain(DomainError::Refused { .. }) => "not in a status that allows it",
        Error::Domain(DomainError::PlatformGenerated { .. }) => "generated by the platform",
        Error::Domain(DomainError::Denied { .. }) => "not the user's to change",
        Error::Domain(DomainError::Invalid { .. }) => "invalid for the job",
        _ => "other",
    }
}

/// One line of a job's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: u64,
    pub at: Timestamp,
    pub actor: Actor,
    /// `None` for the creation (or import) of the job.
    pub action: Option<Action>,
    pub from: Option<Status>,
    pub status: Status,
    pub postponeuntil: Option<Timestamp>,
    pub message: Option<String>,
}

/// A history line that changes no status (an owner change, a
/// resubmission): it shows the status the lines before it left.
fn note(seq: u64, at: Timestamp, actor: Actor, before: &[HistoryEntry], message: String) -> HistoryEntry {
    let status = before.last().map_or(Status::READY, |e| e.status);
    HistoryEntry {
        seq,
        at,
        actor,
        action: None,
        from: Some(status).filter(|_| !before.is_empty()),
        status,
        postponeuntil: None,
        message: Some(message),
    }
}

/// A store of system jobs on one data directory.
pub struct Engine {
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
}

impl Engine {
    /// Opens (creating if needed) the store in `dir`: loads the newest valid
    /// checkpoint and replays the log after it (or all of it).
    pub fn open(dir: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_as(dir.as_ref(), config, clock, false)
    }

    /// Opens, creating it if needed, a *simulation*: a store whose clock
    /// may run ahead of the system's (a live store refuses a write stamped
    /// more than [`MAX_CLOCK_SKEW_SECS`] ahead). Only a store being created
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
                return Err(DomainError::Invalid {
                    what: "simulation",
                    reason: format!(
                        "{} already holds a live store; only a new store can be created as a simulation",
                        dir.display()
                    ),
                }
                .into());
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
    /// refuses is refused here too.
    pub fn open_read_only(dir: impl AsRef<Path>, config: Config, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        check_store(&dir, false)?;
        let simulation = dir.join(SIMULATION_MARKER).symlink_metadata().is_ok();
        let mut config = config;
        config.log.read_only = true;
        let log = Log::open(dir.join("segments"), config.log.clone())?;
        if let Some(first) = log.recovery().problems.first() {
            let what = first.trim_start_matches("the store is damaged: ");
            return Err(Error::Corrupt(what.to_string()));
        }
        Self::load(dir, log, config, clock, simulation)
    }

    fn load(dir: PathBuf, log: Log, config: Config, clock: Arc<dyn Clock>, simulation: bool) -> Result<Self, Error> {
        let snapshots = dir.join("snapshots");
        // Loading checkpoints removes leftover `*.tmp` files; a read-only
        // open must not, so with any there it replays the whole log instead.
        let leftovers = config.log.read_only
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
        let read_only = config.log.read_only;
        if !read_only {
            set_aside_checkpoints_ahead(&snapshots, log.next_seq());
        }
        let mut state = snapshot.unwrap_or_default();
        let checkpoint_seq = (state.last_seq() > 0).then_some(state.last_seq());
        let mut replayed = 0u64;
        replay(&log, &mut state, Replay::All, &mut replayed)?;
        let opened = OpenReport { checkpoint_seq, checkpoints_skipped: skipped, events_replayed: replayed };
        Ok(Self {
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
        })
    }

    /// Whether the store was created as a simulation (its clock may run
    /// ahead of the system's).
    pub fn is_simulation(&self) -> bool {
        self.simulation
    }

    /// Whether this engine was opened by [`Engine::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Why the last checkpoint due after a write failed, if it did (the
    /// write itself stands; the next checkpoint tries again).
    pub fn checkpoint_failure(&self) -> Option<String> {
        self.checkpoint_failed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Refuses a write stamped `now` when that is further ahead of the
    /// system clock than [`MAX_CLOCK_SKEW_SECS`], unless the store is a
    /// simulation.
    fn check_clock(&self, now: Timestamp) -> Result<(), Error> {
        if self.simulation {
            return Ok(());
        }
        check_clock_skew(now)
    }

    /// Marks a service as running on this engine until the guard drops;
    /// refused while another one runs (a job must never run twice).
    pub(crate) fn claim_service(&self) -> Result<ServiceClaim<'_>, Error> {
        use std::sync::atomic::Ordering;
        if self.service.swap(true, Ordering::AcqRel) {
            return Err(DomainError::Invalid {
                what: "service",
                reason: "a service already runs on this store".into(),
            }
            .into());
        }
        Ok(ServiceClaim(&self.service))
    }

    /// What opening found: the checkpoint used and the events replayed.
    pub fn open_report(&self) -> &OpenReport {
        &self.opened
    }

    /// Saves a checkpoint of the current state now.
    pub fn checkpoint(&self) -> Result<PathBuf, Error> {
        if self.read_only {
            return Err(crate::log::LogError::ReadOnly.into());
        }
        let state = self.state();
        let path = state.save_snapshot(&self.dir.join("snapshots"), &self.log.generations())?;
        self.checkpoint_seq.store(state.last_seq(), std::sync::atomic::Ordering::Relaxed);
        Ok(path)
    }

    /// Saves a checkpoint (if anything changed since the last) and closes
    /// the log, reporting its final sync.
    pub fn close(self) -> Result<(), Error> {
        if self.read_only {
            return Ok(self.log.close()?);
        }
        if self.state().last_seq() > self.checkpoint_seq.load(std::sync::atomic::Ordering::Relaxed) {
            self.checkpoint()?;
        }
        Ok(self.log.close()?)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The current state, for reading.
    pub fn state(&self) -> RwLockReadGuard<'_, Projection> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A session for `user`, who must exist and be active.
    pub fn session(&self, user: &str) -> Result<Session<'_>, Error> {
        let state = self.state();
        let u = state.directory().user(user)?;
        if !u.active {
            return Err(DomainError::Invalid { what: "user", reason: format!("{user} is deactivated") }.into());
        }
        Ok(Session { engine: self, user: user.to_string() })
    }

    /// The state as it was at `until` (every event up to and including that
    /// time), rebuilt from the log alone: the audit view.
    pub fn replay_until(&self, until: Timestamp) -> Result<Projection, Error> {
        let mut p = Projection::new();
        replay(&self.log, &mut p, Replay::UntilTime(until), &mut 0)?;
        Ok(p)
    }

    /// The state as it was right after event `seq`, from the log alone.
    pub fn replay_until_seq(&self, seq: u64) -> Result<Projection, Error> {
        let mut p = Projection::new();
        replay(&self.log, &mut p, Replay::UntilSeq(seq), &mut 0)?;
        Ok(p)
    }

    /// A service step on one job, by worker `worker`; returns the job's new
    /// status. Refused like a user action when the state machine says no,
    /// and when a Lock or Wake comes before the job's `postponeuntil`.
    pub fn step(&self, worker: &str, id: Uuid, step: ServiceStep) -> Result<Status, Error> {
        self.steps(worker, vec![(id, step)])?.remove(0)
    }

    /// Service steps on many jobs as one atomic batch (one sync): each is
    /// checked against the job's status after the steps before it in the
    /// list (so Lock then Fail of one job is fine); the refused ones are
    /// reported in their place and left out, the rest are written.
    pub fn steps(&self, worker: &str, steps: Vec<(Uuid, ServiceStep)>) -> Result<Vec<Result<Status, Error>>, Error> {
        self.commit(Actor::Worker(worker.to_string()), |state, now| {
            let mut overlay: HashMap<Uuid, WriteTarget> = HashMap::new();
            let mut events = Vec::with_capacity(steps.len());
            let mut out = Vec::with_capacity(steps.len());
            for (id, step) in steps {
                let target = match overlay.get(&id).cloned().or_else(|| state.write_target(id)) {
                    Some(t) => t,
                    None => {
                        out.push(Err(Error::JobNotFound(id)));
                        continue;
                    }
                };
                match service_transition(id, &target, step, now) {
                    Ok(t) => {
                        out.push(Ok(t.to));
                        overlay.insert(
                            id,
                            WriteTarget {
                                status: t.to,
                                postponeuntil: t.postponeuntil,
                                retrycount: t.retrycount,
                                ..target
                            },
                        );
                        events.push(Event::Transition(t));
                    }
                    Err(e) => out.push(Err(e)),
                }
            }
            Ok((events, out))
        })
    }

    /// Checks and appends one atomic batch of events built by `build`
    /// against the current state, all stamped now, then applies it.
    fn commit<T>(
        &self,
        actor: Actor,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Event>, T), Error>,
    ) -> Result<T, Error> {
        self.commit_envelopes(|state, now| {
            if let Some(newest) = state.last_at() {
                if now < newest {
                    return Err(Error::TimeWentBackwards { at: now.to_rfc3339(), newest: newest.to_rfc3339() });
                }
            }
            let (events, out) = build(state, now)?;
            let envelopes = events
                .into_iter()
                .map(|event| Envelope { version: EVENT_VERSION, at: now, actor: actor.clone(), event })
                .collect();
            Ok((envelopes, out))
        })
    }

    /// The write path: under the write lock, build the batch against the
    /// state, append it durably, apply it, and take a checkpoint when due.
    fn commit_envelopes<T>(
        &self,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Envelope>, T), Error>,
    ) -> Result<T, Error> {
        let _one_writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = self.clock.now();
        if self.clock.is_wall_clock() {
            // Event times never go backwards, but a wall clock a little
            // behind the newest event must not block every write until it
            // catches up: how far ahead an event may be is bounded by
            // `check_clock` (docs/operations.md, "The clock").
            // A store already further ahead (written by an older joblog)
            // is refused as before, with its way out in the message.
            let limit = now.plus_micros(MAX_CLOCK_SKEW_SECS * 1_000_000);
            if let Some(newest) = self.state().last_at().filter(|&n| n <= limit) {
                now = now.max(newest);
            }
        }
        let (envelopes, out) = build(&self.state(), now)?;
        if envelopes.is_empty() {
            return Ok(out);
        }
        self.check_clock(now)?;
        let mut batch = Batch::new();
        let mut lens = Vec::with_capacity(envelopes.len());
        for env in &envelopes {
            let bytes = env.encode()?;
            lens.push(bytes.len());
            batch.push(&bytes);
        }
        let appended = self.log.append_batch(batch)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut pos = appended.first;
        for ((env, seq), len) in envelopes.iter().zip(appended.seqs).zip(lens) {
            state.apply(env, seq, pos)?;
            pos = pos.after(len);
        }
        let due = self.config.checkpoint_every_events > 0
            && state.last_seq() - self.checkpoint_seq.load(std::sync::atomic::Ordering::Relaxed)
                >= self.config.checkpoint_every_events;
        drop(state);
        if due {
            // Writers wait (this thread holds the write lock); readers do not.
            // The write is durable and applied: a checkpoint that fails
            // (a full disk) must not report it as failed.
            *self.checkpoint_failed.lock().unwrap_or_else(|e| e.into_inner()) =
                self.checkpoint().err().map(|e| e.to_string());
        }
        Ok(out)
    }
}

/// The transition a service step makes of a job in `target`'s status, or
/// why it is refused.
fn service_transition(id: Uuid, target: &WriteTarget, step: ServiceStep, now: Timestamp) -> Result<Transition, Error> {
    let (from, postponeuntil, retrycount) = (target.status, target.postponeuntil, target.retrycount);
    let action = step.action();
    let to = transition(id, target.operationtype, from, action)?;
    // The queue takes a job only once its time has come; the timer wakes
    // only jobs that have a time (a paused job waits for Resume).
    let not_due = match step {
        ServiceStep::Lock => postponeuntil.is_some_and(|t| t > now),
        ServiceStep::Wake => postponeuntil.is_none_or(|t| t > now),
        _ => false,
    };
    if not_due {
        let when = postponeuntil.map_or("a user resumes it".to_string(), |t| t.to_rfc3339());
        return Err(
            DomainError::Invalid { what: "service step", reason: format!("job {id} is not due until {when}") }.into()
        );
    }
    if let ServiceStep::Defer { until, .. } | ServiceStep::Wait { until, .. } | ServiceStep::Retry { until, .. } = &step
    {
        if *until <= now {
            return Err(DomainError::Invalid {
                what: "service step",
                reason: format!("job {id}: {until} is not after now ({now})"),
            }
            .into());
        }
    }
    let (postponeuntil, retrycount, errorcode, message) = match step {
        ServiceStep::Lock | ServiceStep::Wake | ServiceStep::Succeed => (None, retrycount, None, None),
        ServiceStep::StopCanceling { message } => (None, retrycount, None, message),
        ServiceStep::StopPausing { message } => (postponeuntil, retrycount, None, message),
        ServiceStep::Fail { code, message } => {
            let code = if code == crate::domain::limits::RESERVED_ERRORCODE { code + 1 } else { code };
            (None, retrycount, Some(code), Some(message))
        }
        ServiceStep::Wait { until, message } => (Some(until), retrycount, None, message),
        ServiceStep::Suspend { message } => (None, retrycount, None, Some(message)),
        ServiceStep::Retry { until, message } => (Some(until), retrycount + 1, None, Some(message)),
        ServiceStep::ReturnToReady { message } | ServiceStep::Stop { message } => {
            (None, retrycount, None, Some(message))
        }
        ServiceStep::Defer { until, message } => (Some(until), retrycount, None, Some(message)),
    };
    // A handler's message (a command's stderr...) is kept up to the limit.
    let message = message.map(crate::domain::limits::clamp_message);
    Ok(Transition { job: id, action, from, to, postponeuntil, retrycount, errorcode, message })
}

/// Refuses a store whose directory, or any file or directory directly in
/// it, in `segments/` or in `snapshots/`, belongs to another OS user; with
/// `tighten` (a writable open), takes group and other permissions away
/// from the data directory of an older store (made before joblog created
/// them 0700). A missing directory is fine (it will be created).
fn check_store(data: &Path, tighten: bool) -> Result<(), LogError> {
    use crate::log::private::{check_owner, DIR_MODE};
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
            check_owner(&entry.map_err(|e| io(&dir, e))?.path())?;
        }
    }
    if tighten && meta.is_dir() && meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(DIR_MODE)).map_err(|e| io(data, e))?;
    }
    Ok(())
}

/// Writes the simulation marker of a store being created.
fn write_marker(dir: &Path, marker: &Path) -> Result<(), Error> {
    let io = |e| Error::Io { path: marker.to_path_buf(), source: e };
    crate::log::private::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let f = crate::log::private::create_file(marker, true).map_err(io)?;
    use std::io::Write;
    (&f).write_all(b"joblog simulation: events may be stamped ahead of the system clock\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })
}

/// A Bulk Delete system job (type 13) to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBulkDelete {
    pub name: String,
    pub criteria: DeletionCriteria,
    /// When it first runs (now when absent).
    pub start: Option<Timestamp>,
    /// `FREQ=DAILY;INTERVAL=30` and the like (see [`Recurrence`]).
    pub recurrence: Option<String>,
}

/// A Bulk Delete job as `bulk-delete list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDeleteRecord {
    pub job: Job,
    pub criteria: Option<DeletionCriteria>,
    /// Jobs its runs deleted.
    pub successcount: u64,
    /// Jobs it failed to delete: always 0, as one deletion is one event
    /// (all of it or nothing); a run that fails is the job's own failure.
    pub failurecount: u64,
}

/// The platform's default recurring bulk deletion.
pub const DEFAULT_BULK_DELETE_NAME: &str = "Delete completed system jobs";

impl Engine {
    /// Creates a Bulk Delete job owned by `owner`, written by `actor`.
    pub(crate) fn create_bulk_delete(&self, actor: Actor, owner: &str, spec: &NewBulkDelete) -> Result<Job, Error> {
        spec.criteria.validate()?;
        let recurrence = spec.recurrence.as_deref().map(Recurrence::parse).transpose()?;
        self.commit(actor, |state, now| {
            let unit = state.directory().user(owner)?.business_unit.clone();
            let mut job = Job::new(&spec.name, OperationType::BULK_DELETE, owner, &unit, now);
            let start = spec.start.unwrap_or(now);
            job.postponeuntil = (start > now).then_some(start);
            job.recurrencepattern = recurrence.and(spec.recurrence.clone());
            job.recurrencestarttime = Some(start);
            job.data = bulk_delete_data(&spec.criteria);
            job.validate()?;
            Ok((vec![Event::JobCreated(Box::new(job.clone()))], job))
        })
    }

    /// Bulk Delete jobs named `name`, any state.
    pub(crate) fn bulk_delete_jobs_named(&self, name: &str) -> Result<Vec<Job>, Error> {
        let filter = Filter { operationtype: Some(OperationType::BULK_DELETE), ..Filter::default() };
        let state = self.state();
        let (jobs, _) = state.query_jobs(&filter, &Visibility::All, None, usize::MAX, &self.log)?;
        Ok(jobs.into_iter().filter(|j| j.name == name).collect())
    }

    /// Installs the platform's default on a store that never had it: "Delete
    /// completed system jobs" (Workflow, Succeeded, older than 30 days),
    /// daily from the next midnight (UTC), owned by `admin`. An
    /// administrator changes it by canceling it and creating another; a
    /// canceled default stays canceled.
    pub fn install_default_bulk_delete(&self) -> Result<Option<Job>, Error> {
        if !self.bulk_delete_jobs_named(DEFAULT_BULK_DELETE_NAME)?.is_empty() {
            return Ok(None);
        }
        let day = 86_400_000_000;
        let midnight = Timestamp::from_micros((self.now().micros().div_euclid(day) + 1) * day);
        let spec = NewBulkDelete {
            name: DEFAULT_BULK_DELETE_NAME.into(),
            criteria: DeletionCriteria::platform_default(),
            start: Some(midnight),
            recurrence: Some("FREQ=DAILY;INTERVAL=1".into()),
        };
        self.create_bulk_delete(Actor::System, crate::domain::ADMIN, &spec).map(Some)
    }
}

/// What a bulk deletion did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeletionReport {
    pub deleted: u64,
    /// Matching jobs beyond the limit, for another run.
    pub remaining_matching: u64,
    /// Bytes of events the log holds before and after (segment files
    /// without the active segment's preallocated tail).
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// From the request to the space being back (logical deletion and
    /// compaction).
    pub seconds: f64,
    /// Until the jobs were gone from every view.
    pub seconds_logical: f64,
    /// Writing the checkpoint afterwards (so that a reopen need not replay).
    pub seconds_checkpoint: f64,
    pub compaction: Compaction,
    /// What failed after the deletion was durable (compaction, the
    /// checkpoint): the jobs are deleted all the same.
    pub warnings: Vec<String>,
}

impl Engine {
    /// Deletes the completed jobs matching `criteria` (at most `limit`,
    /// oldest `completedon` first) as `actor`: one event, after which no
    /// view shows them; returns how many were taken and how many more
    /// match. The space comes back with [`Engine::compact`]. No privilege
    /// check: callers decide who may (see [`Session::delete_now`]).
    pub fn delete(
        &self,
        actor: Actor,
        criteria: &DeletionCriteria,
        limit: u64,
        definition: Option<Uuid>,
    ) -> Result<Deletion, Error> {
        criteria.validate()?;
        self.commit(actor, |state, now| {
            let cutoff = criteria.cutoff(now);
            let sel = state.select_deletion(criteria, cutoff, limit);
            let d = Deletion {
                criteria: criteria.clone(),
                cutoff,
                limit,
                through: sel.through,
                deleted: sel.count,
                remaining: sel.remaining,
                definition,
            };
            Ok((vec![Event::JobsDeleted(Box::new(d.clone()))], d))
        })
    }

    /// Rewrites the log's segments without the events of deleted jobs, so
    /// that their space comes back; the active segment is sealed first if
    /// it holds any. Appends, reads and the service go on meanwhile; they
    /// pause only while the new segments are installed.
    ///
    /// Every segment holding such events is rewritten in one go: dropping
    /// some of a deleted job's events and keeping others would leave events
    /// of a job whose creation is gone, which replay rightly refuses. (So a
    /// deletion every few milliseconds seals a small segment each time; see
    /// ARCHITECTURE.md, "Deletion and compaction".)
    pub fn compact(&self) -> Result<Compaction, Error> {
        if self.read_only {
            return Err(crate::log::LogError::ReadOnly.into());
        }
        let _one = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let plan = self.state().garbage().clone();
        if plan.is_empty() {
            return Ok(Compaction::default());
        }
        let rewrite = self.log.rewrite(&plan)?;
        let _no_writes = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let done = self.log.install(rewrite)?;
        state.apply_compaction(&plan, &done);
        drop(state);
        // Every checkpoint points into segments that were just rewritten:
        // none can be used again, so their space comes back too. The
        // compaction is installed whatever happens here: a checkpoint left
        // behind names the old generations and is skipped on open.
        let _ = Projection::remove_snapshots(&self.dir.join("snapshots"));
        self.checkpoint_seq.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(done)
    }
}

/// Job data of a Bulk Delete job: this line, then its criteria (codec).
pub const BULK_DELETE_PREFIX: &[u8] = b"joblog:bulk-delete\n";

/// The criteria a Bulk Delete job carries in its data.
pub fn bulk_delete_criteria(job: &Job) -> Option<DeletionCriteria> {
    let body = job.data.strip_prefix(BULK_DELETE_PREFIX)?;
    codec::decode(body).ok()
}

/// Job data that carries `criteria`.
pub fn bulk_delete_data(criteria: &DeletionCriteria) -> Vec<u8> {
    let mut data = BULK_DELETE_PREFIX.to_vec();
    data.extend(codec::encode(criteria).expect("criteria encode"));
    data
}

/// A running service's claim on its engine.
pub(crate) struct ServiceClaim<'e>(&'e std::sync::atomic::AtomicBool);

impl Drop for ServiceClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// How far a replay goes.
#[derive(Clone, Copy)]
enum Replay {
    All,
    UntilTime(Timestamp),
    UntilSeq(u64),
}

/// Folds the log into `state`, from the event after the state's last one,
/// counting the events applied.
fn replay(log: &Log, state: &mut Projection, how: Replay, count: &mut u64) -> Result<(), Error> {
    log.scan_from(state.last_seq() + 1, |rec| {
        if matches!(how, Replay::UntilSeq(s) if rec.seq > s) {
            return Ok(ControlFlow::Break(()));
        }
        let env = decode_event(log, rec.seq, rec.position, rec.payload)?;
        if matches!(how, Replay::UntilTime(u) if env.at > u) {
            return Ok(ControlFlow::Break(()));
        }
        state.apply(&env, rec.seq, rec.position)?;
        *count += 1;
        Ok(ControlFlow::Continue(()))
    })
}

/// Calls made by one acting user.
pub struct Session<'e> {
    engine: &'e Engine,
    user: String,
}

impl Session<'_> {
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

    /// Creates one job.
    pub fn create(&self, spec: NewJob) -> Result<Job, Error> {
        Ok(self.create_many(vec![spec])?.remove(0))
    }

    /// Creates jobs in one atomic batch: all of them, or none if any is refused.
    pub fn create_many(&self, specs: Vec<NewJob>) -> Result<Vec<Job>, Error> {
        self.engine.commit(self.actor(), |state, now| {
            let jobs = specs.into_iter().map(|s| self.new_job(state, s, now)).collect::<Result<Vec<_>, _>>()?;
            let events = jobs.iter().map(|j| Event::JobCreated(Box::new(j.clone()))).collect();
            Ok((events, jobs))
        })
    }

    fn new_job(&self, state: &Projection, spec: NewJob, now: Timestamp) -> Result<Job, Error> {
        let dir = state.directory();
        let workflow = match &spec.workflow {
            Some(w) => {
                Some(state.workflow(w).ok_or_else(|| DomainError::NotFound { kind: "workflow", name: w.clone() })?)
            }
            None => None,
        };
        let owner = spec.owner.as_deref().or(workflow.map(|w| w.owner.as_str())).unwrap_or(&self.user);
        let unit = dir.user(owner)?.business_unit.clone();
        dir.check(&self.user, Privilege::Create, Some((owner, &unit)))?;
        self.check_command(state, &spec.data)?;
        if let Some(t) = spec.postpone_until {
            if t <= now {
                return Err(DomainError::Invalid {
                    what: "postpone time",
                    reason: format!("{t} is not after now ({now})"),
                }
                .into());
            }
        }
        let mut job = Job::new(&spec.name, spec.operationtype, owner, &unit, now);
        job.workflow = spec.workflow;
        job.regarding = spec.regarding;
        job.postponeuntil = spec.postpone_until;
        job.dependencytoken = spec.dependency_token;
        job.correlationid = spec.correlation_id;
        job.depth = spec.depth;
        job.data = spec.data;
        job.validate()?;
        Ok(job)
    }

    /// Historical jobs, in any state and any past times, kept as they are
    /// (ids included), in one atomic batch. Needs Create at Organization depth.
    pub fn import(&self, jobs: Vec<Job>) -> Result<usize, Error> {
        self.engine.commit(self.actor(), |state, now| {
            state.directory().check(&self.user, Privilege::Create, None)?;
            let mut seen = std::collections::HashSet::new();
            let dir = state.directory();
            for j in &jobs {
                j.validate()?;
                self.check_command(state, &j.data)?;
                // Owners and business units come from the directory, like a
                // live job's.
                dir.user(&j.owner)?;
                if !dir.has_business_unit(&j.owningbusinessunit) {
                    return Err(
                        DomainError::NotFound { kind: "business unit", name: j.owningbusinessunit.clone() }.into()
                    );
                }
                if j.modifiedon > now {
                    return Err(DomainError::Invalid {
                        what: "job",
                        reason: format!("{} is modified in the future", j.id),
                    }
                    .into());
                }
                if state.status_of(j.id).is_some() || !seen.insert(j.id) {
                    return Err(DomainError::AlreadyExists { kind: "job", name: j.id.to_string() }.into());
                }
            }
            let n = jobs.len();
            Ok((jobs.into_iter().map(|j| Event::JobCreated(Box::new(j))).collect(), n))
        })
    }

    /// Loads job events recorded elsewhere (a history being brought across,
    /// a benchmark's workload) as one atomic batch: job creations and
    /// transitions with their own times and actors. Each is checked as if it
    /// happened live: times never go backwards, a job is created once, and
    /// every transition starts from the job's status at that point and is
    /// one the state machine allows. Needs Create at Organization depth.
    /// Returns how many events were appended.
    pub fn load(&self, events: Vec<Envelope>) -> Result<usize, Error> {
        self.engine.commit_envelopes(|state, now| {
            state.directory().check(&self.user, Privilege::Create, None)?;
            if let Some(future) = events.iter().find(|e| e.at > now) {
                return Err(DomainError::Invalid {
                    what: "event",
                    reason: format!("stamped {}, after now ({now})", future.at),
                }
                .into());
            }
            if let Some(old) = events.iter().find(|e| e.version != EVENT_VERSION) {
                return Err(DomainError::Invalid {
                    what: "event",
                    reason: format!(
                        "schema version {}: this build writes only version {EVENT_VERSION} (older versions are read, never written)",
                        old.version
                    ),
                }
                .into());
            }
            let mut newest = state.last_at();
            let mut overlay: std::collections::HashMap<Uuid, (Status, OperationType)> =
                std::collections::HashMap::new();
            for env in &events {
                if newest.is_some_and(|n| env.at < n) {
                    return Err(Error::TimeWentBackwards {
                        at: env.at.to_rfc3339(),
                        newest: newest.expect("checked").to_rfc3339(),
                    });
                }
                newest = Some(env.at);
                match &env.event {
                    Event::JobCreated(job) => {
                        job.validate()?;
                        self.check_command(state, &job.data)?;
                        if state.status_of(job.id).is_some() || overlay.contains_key(&job.id) {
                            return Err(DomainError::AlreadyExists { kind: "job", name: job.id.to_string() }.into());
                        }
                        overlay.insert(job.id, (job.status, job.operationtype));
                    }
                    Event::Transition(t) => {
                        let (current, op) = match overlay.get(&t.job) {
                            Some(&c) => c,
                            None => state.status_and_type(t.job).ok_or(Error::JobNotFound(t.job))?,
                        };
                        if current != t.from {
                            return Err(DomainError::Refused {
                                job: t.job,
                                action: t.action,
                                current,
                                needs: t.from.to_string(),
                            }
                            .into());
                        }
                        let to = transition(t.job, op, current, t.action)?;
                        if to != t.to {
                            return Err(DomainError::Invalid {
                                what: "event",
                                reason: format!("{} of job {} leads to {to}, not {}", t.action.name(), t.job, t.to),
                            }
                            .into());
                        }
                        overlay.insert(t.job, (to, op));
                    }
                    other => {
                        return Err(DomainError::Invalid {
                            what: "event",
                            reason: format!("not a job event: {other:?}"),
                        }
                        .into())
                    }
                }
            }
            let n = events.len();
            Ok((events, n))
        })
    }

    /// The Immediately option of bulk deletion (`domain.md` §7): deletes
    /// at most `limit` (up to [`MAX_IMMEDIATE_DELETE`]) completed jobs
    /// matching `criteria`, oldest first, then compacts the log so the
    /// space is back before it returns. Needs Delete at Organization depth,
    /// and criteria that include System Job Type Workflow.
    pub fn delete_now(&self, criteria: &DeletionCriteria, limit: u64) -> Result<DeletionReport, Error> {
        let started = std::time::Instant::now();
        self.engine.state().directory().check(&self.user, Privilege::Delete, None)?;
        criteria.validate()?;
        if !criteria.types.contains(&OperationType::WORKFLOW) {
            return Err(DomainError::Invalid {
                what: "deletion criteria",
                reason: "the Immediately option needs System Job Type Workflow among the criteria".into(),
            }
            .into());
        }
        if !(1..=MAX_IMMEDIATE_DELETE).contains(&limit) {
            return Err(DomainError::Invalid {
                what: "deletion limit",
                reason: format!("{limit}: one Immediately run deletes between 1 and {MAX_IMMEDIATE_DELETE} jobs"),
            }
            .into());
        }
        let bytes_before = self.engine.log.data_bytes();
        let d = self.engine.delete(self.actor(), criteria, limit, None)?;
        let seconds_logical = started.elapsed().as_secs_f64();
        // From here on the deletion is durable and shown: what follows only
        // gives the space back, and its failure (a full disk) is reported
        // as a warning, not as a failed deletion. The garbage stays listed;
        // the next compaction takes it.
        let mut warnings = Vec::new();
        let compaction = match self.engine.compact() {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!(
                    "deleted {} jobs; their space comes back at the next compaction (`joblog compact`): compacting failed: {e}",
                    d.deleted
                ));
                Compaction::default()
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let bytes_after = self.engine.log.data_bytes();
        if d.deleted > 0 {
            if let Err(e) = self.engine.checkpoint() {
                warnings.push(format!("no checkpoint written after the deletion (the next open replays the log): {e}"));
            }
        }
        Ok(DeletionReport {
            warnings,
            deleted: d.deleted,
            remaining_matching: d.remaining,
            bytes_before,
            bytes_after,
            seconds,
            seconds_logical,
            seconds_checkpoint: started.elapsed().as_secs_f64() - seconds,
            compaction,
        })
    }

    /// Creates a Bulk Delete system job (type 13) that the service runs at
    /// its start time and again per its recurrence. Needs Delete at
    /// Organization depth, as it deletes other users' jobs too.
    pub fn create_bulk_delete(&self, spec: &NewBulkDelete) -> Result<Job, Error> {
        self.engine.state().directory().check(&self.user, Privilege::Delete, None)?;
        self.engine.create_bulk_delete(self.actor(), &self.user, spec)
    }

    /// The retention policy: one daily Bulk Delete job per Completed
    /// reason, over every System Job Type joblog names.
    pub fn set_retention(&self, policy: RetentionPolicy) -> Result<Vec<Job>, Error> {
        let types: Vec<OperationType> = OperationType::named().collect();
        let mut jobs = Vec::new();
        for (reason, days) in [
            (crate::domain::StatusReason::Succeeded, policy.succeeded_days),
            (crate::domain::StatusReason::Failed, policy.failed_days),
            (crate::domain::StatusReason::Canceled, policy.canceled_days),
        ] {
            let spec = NewBulkDelete {
                name: format!("Retention: {} jobs older than {days} days", reason.name()),
                criteria: DeletionCriteria { types: types.clone(), reasons: vec![reason], older_than_days: days },
                start: None,
                recurrence: Some("FREQ=DAILY".into()),
            };
            jobs.push(self.create_bulk_delete(&spec)?);
        }
        Ok(jobs)
    }

    /// The Bulk Delete jobs this user may see, newest first, with their counts.
    pub fn bulk_delete_jobs(&self) -> Result<Vec<BulkDeleteRecord>, Error> {
        let filter = Filter { operationtype: Some(OperationType::BULK_DELETE), ..Filter::default() };
        let (jobs, _) = self.list(&filter, None, usize::MAX)?;
        let state = self.engine.state();
        Ok(jobs
            .into_iter()
            .map(|job| {
                let successcount = state
                    .deletions()
                    .iter()
                    .filter(|d| d.deletion.definition == Some(job.id))
                    .map(|d| d.deletion.deleted)
                    .sum();
                BulkDeleteRecord { criteria: bulk_delete_criteria(&job), job, successcount, failurecount: 0 }
            })
            .collect())
    }

    /// Cancel, Pause, Resume or Postpone one job; returns it afterwards.
    pub fn act(&self, id: Uuid, action: UserAction) -> Result<Job, Error> {
        self.engine.commit(self.actor(), |state, now| {
            let t = self.user_transition(state, id, action, now)?;
            Ok((vec![Event::Transition(t)], ()))
        })?;
        self.get(id)
    }

    /// Submits a Failed or Canceled job again (like Sidekiq's and Oban's
    /// "retry"): a new Ready job with the old one's definition (name, type,
    /// workflow, regarding, dependency token, depth, data), owned by
    /// `owner` or else by this user, linked by `correlationid` (the old
    /// job's, or its id when it had none). Both histories say so: the new
    /// job's creation carries "resubmission of OLD", and the old job gets a
    /// `JobResubmitted` line. Needs Read on the old job, Create for the new
    /// owner, and RunCommand when the job runs a command. A job that is not
    /// Completed, or that succeeded, is refused
    /// ([`DomainError::NotResubmittable`]); so is a Bulk Delete job (create
    /// one with [`Session::create_bulk_delete`]). One atomic batch.
    pub fn resubmit(&self, id: Uuid, owner: Option<&str>) -> Result<Job, Error> {
        let old = self.get(id)?;
        let reason = old.status.reason();
        let why = if !old.status.is_completed() {
            Some(format!("it is {}, not Completed: cancel it first, or wait for it to end", old.status))
        } else if reason == crate::domain::StatusReason::Succeeded {
            Some("it succeeded; submit a new job to run it again".to_string())
        } else if old.operationtype == OperationType::BULK_DELETE {
            Some("it is a Bulk Delete job; create one with `joblog bulk-delete create`".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(DomainError::NotResubmittable { job: id, why }.into());
        }
        let new = self.engine.commit(self.actor(), |state, now| {
            // Checked again under the write lock: the job may have been
            // deleted since.
            if state.status_of(id).is_none() {
                return Err(Error::JobNotFound(id));
            }
            // A line in the old job's history: Write on it, as any action.
            state.directory().check(&self.user, Privilege::Write, Some((&old.owner, &old.owningbusinessunit)))?;
            // Once: a second resubmission (a slip, a script run twice)
            // would run the job twice.
            for (_, env) in state.history(id, &self.engine.log)? {
                if let Event::JobResubmitted { new, .. } = env.event {
                    let why = format!("it was already resubmitted as {new}; resubmit that one if it failed too");
                    return Err(DomainError::NotResubmittable { job: id, why }.into());
                }
            }
            // Owner and workflow as `submit` decides them: a workflow that
            // no longer exists is refused, a workflow's run is its owner's.
            let mut spec = NewJob::new(&old.name, old.operationtype);
            spec.workflow = old.workflow.clone();
            spec.regarding = old.regarding.clone();
            spec.owner = owner.map(str::to_string);
            spec.dependency_token = old.dependencytoken.clone();
            spec.correlation_id = Some(old.correlationid.unwrap_or(old.id));
            spec.depth = old.depth;
            spec.data = old.data.clone();
            let mut job = self.new_job(state, spec, now)?;
            job.message = Some(format!("resubmission of {id}"));
            job.validate()?;
            let events = vec![Event::JobCreated(Box::new(job.clone())), Event::JobResubmitted { job: id, new: job.id }];
            Ok((events, job))
        })?;
        Ok(new)
    }

    /// Sets one number of the service's policy for this store (`None`:
    /// back to its default; keys and ranges: `domain::config`), recorded
    /// as a `PolicySet` event. Needs Write at Organization depth. Returns
    /// whether anything changed (setting a key to the value it has writes
    /// nothing).
    pub fn set_policy(&self, key: &str, value: Option<u64>) -> Result<bool, Error> {
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            let policy = state.policy();
            policy.check(key, value)?;
            if policy.get_set(key) == value {
                return Ok((Vec::new(), false));
            }
            Ok((vec![Event::PolicySet { key: key.to_string(), value }], true))
        })
    }

    /// The same action on every job matching `filter` that the user can
    /// see; the ones it may not write, or whose status refuses the action,
    /// are reported and left alone. One atomic batch.
    pub fn act_on_matching(&self, action: UserAction, filter: &Filter) -> Result<BulkOutcome, Error> {
        self.engine.commit(self.actor(), |state, now| Ok(self.plan_on_matching(state, action, filter, now)))
    }

    /// What [`Session::act_on_matching`] would do now, without doing it:
    /// nothing is written (a dry run).
    pub fn preview_on_matching(&self, action: UserAction, filter: &Filter) -> BulkOutcome {
        let state = self.engine.state();
        self.plan_on_matching(&state, action, filter, self.engine.now()).1
    }

    fn plan_on_matching(
        &self,
        state: &Projection,
        action: UserAction,
        filter: &Filter,
        now: Timestamp,
    ) -> (Vec<Event>, BulkOutcome) {
        let vis = visibility(state, &self.user);
        let mut out = BulkOutcome::default();
        let mut events = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let page = state.query(filter, &vis, after.as_ref(), 1024);
            for &id in &page.ids {
                out.matched += 1;
                match self.user_transition(state, id, action, now) {
                    Ok(t) => {
                        events.push(Event::Transition(t));
                        out.changed.push(id);
                    }
                    Err(e) => {
                        *out.refused_by.entry(refusal_kind(&e)).or_default() += 1;
                        out.refused.push((id, e.to_string()));
                    }
                }
            }
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        (events, out)
    }

    fn user_transition(
        &self,
        state: &Projection,
        id: Uuid,
        action: UserAction,
        now: Timestamp,
    ) -> Result<Transition, Error> {
        let target = state.write_target(id).ok_or(Error::JobNotFound(id))?;
        state.directory().check(&self.user, Privilege::Write, Some((&target.owner, &target.owningbusinessunit)))?;
        let (from, postponeuntil, retrycount) = (target.status, target.postponeuntil, target.retrycount);
        let to = transition(id, target.operationtype, from, action.action())?;
        let postponeuntil = match action {
            UserAction::Postpone(t) if t <= now => {
                return Err(DomainError::Invalid {
                    what: "postpone time",
                    reason: format!("{t} is not after now ({now})"),
                }
                .into());
            }
            UserAction::Postpone(t) => Some(t),
            UserAction::Resume => None,
            UserAction::Cancel | UserAction::Pause => postponeuntil,
        };
        Ok(Transition {
            job: id,
            action: action.action(),
            from,
            to,
            postponeuntil,
            retrycount,
            errorcode: None,
            message: None,
        })
    }

    /// One job, if the user may read it.
    pub fn get(&self, id: Uuid) -> Result<Job, Error> {
        let state = self.engine.state();
        let target = state.write_target(id).ok_or(Error::JobNotFound(id))?;
        state.directory().check(&self.user, Privilege::Read, Some((&target.owner, &target.owningbusinessunit)))?;
        state.job(id, &self.engine.log)
    }

    /// Every transition of a job, oldest first.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
        self.get(id)?;
        let state = self.engine.state();
        let mut out = Vec::new();
        for (seq, env) in state.history(id, &self.engine.log)? {
            let entry = match env.event {
                Event::JobCreated(j) => HistoryEntry {
                    seq,
                    at: env.at,
                    actor: env.actor,
                    action: None,
                    from: None,
                    status: j.status,
                    postponeuntil: j.postponeuntil,
                    message: j.message,
                },
                Event::Transition(t) => HistoryEntry {
                    seq,
                    at: env.at,
                    actor: env.actor,
                    action: Some(t.action),
                    from: Some(t.from),
                    status: t.to,
                    postponeuntil: t.postponeuntil,
                    message: t.message,
                },
                // A line that changes no status: the status it leaves.
                Event::OwnerChanged { owner, .. } => {
                    note(seq, env.at, env.actor, &out, format!("owner changed to {owner}"))
                }
                Event::JobResubmitted { new, .. } => {
                    note(seq, env.at, env.actor, &out, format!("resubmitted as {new}"))
                }
                _ => continue,
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// One page of the jobs the user may see, newest `createdon` first.
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        let state = self.engine.state();
        state.query_jobs(filter, &visibility(&state, &self.user), after, limit, &self.engine.log)
    }

    /// How many jobs the user may see match `filter`.
    pub fn count(&self, filter: &Filter) -> usize {
        let state = self.engine.state();
        state.count(filter, &visibility(&state, &self.user))
    }

    /// Administration: business units, roles, users and workflow
    /// definitions. Each needs Write at Organization depth.
    pub fn add_business_unit(&self, name: &str, parent: &str) -> Result<(), Error> {
        self.admin(|state| {
            crate::domain::limits::check_identifier("business unit", name)?;
            state.directory().clone().add_business_unit(name, parent)?;
            Ok(Event::BusinessUnitAdded { name: name.into(), parent: parent.into() })
        })
    }

    pub fn add_role(&self, role: Role) -> Result<(), Error> {
        self.admin(|state| {
            role.validate()?;
            state.directory().clone().add_role(role.clone())?;
            Ok(Event::RoleAdded(role))
        })
    }

    pub fn add_user(&self, name: &str, business_unit: &str, roles: &[&str]) -> Result<(), Error> {
        let user = User {
            name: name.into(),
            business_unit: business_unit.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            active: true,
        };
        self.admin(|state| {
            user.validate()?;
            state.directory().clone().add_user(user.clone())?;
            Ok(Event::UserAdded(user))
        })
    }

    /// Deactivates a user; refused for the last active administrator
    /// ([`DomainError::LastAdministrator`]).
    pub fn deactivate_user(&self, name: &str) -> Result<(), Error> {
        self.admin(|state| {
            if !state.directory().user(name)?.active {
                return Err(DomainError::Invalid {
                    what: "deactivation",
                    reason: format!("{name:?} is already deactivated"),
                }
                .into());
            }
            state.directory().check_deactivation(name)?;
            Ok(Event::UserDeactivated { name: name.into() })
        })
    }

    /// Makes a deactivated user active again (administrators only, like
    /// deactivation); refused for a user who is active.
    pub fn reactivate_user(&self, name: &str) -> Result<(), Error> {
        self.admin(|state| {
            if state.directory().user(name)?.active {
                return Err(DomainError::Invalid { what: "reactivation", reason: format!("{name:?} is active") }.into());
            }
            Ok(Event::UserReactivated { name: name.into() })
        })
    }

    /// Adds or changes a workflow definition (its owner must exist).
    pub fn save_workflow(&self, workflow: WorkflowDefinition) -> Result<(), Error> {
        self.admin(|state| {
            workflow.validate()?;
            state.directory().user(&workflow.owner)?;
            Ok(Event::WorkflowSaved(workflow))
        })
    }

    /// Moves the runs of `workflow` owned by `from` that have not finished
    /// and are not running (Ready or Suspended) to `to`, each an event with
    /// this administrator as actor. Needs Assign at Organization depth.
    /// Returns the jobs moved.
    pub fn reassign(&self, workflow: &str, from: &str, to: &str) -> Result<Vec<Uuid>, Error> {
        self.engine.commit(self.actor(), |state, _| {
            let dir = state.directory();
            dir.check(&self.user, Privilege::Assign, None)?;
            state
                .workflow(workflow)
                .ok_or_else(|| DomainError::NotFound { kind: "workflow", name: workflow.into() })?;
            dir.user(from)?;
            let new_owner = dir.user(to)?;
            if !new_owner.active {
                return Err(DomainError::Invalid { what: "reassign", reason: format!("{to} is deactivated") }.into());
            }
            let filter = Filter { workflow: Some(workflow.into()), owner: Some(from.into()), ..Filter::default() };
            let mut moved = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let page = state.query(&filter, &Visibility::All, after.as_ref(), 1024);
                for &id in &page.ids {
                    let open = state.status_of(id).is_some_and(|s| {
                        matches!(s.state(), crate::domain::State::Ready | crate::domain::State::Suspended)
                    });
                    if open {
                        moved.push(id);
                    }
                }
                match page.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            let events = moved
                .iter()
                .map(|&job| Event::OwnerChanged {
                    job,
                    owner: to.to_string(),
                    owningbusinessunit: new_owner.business_unit.clone(),
                })
                .collect();
            Ok((events, moved))
        })
    }

    /// Creating a job whose data carries a shell command needs
    /// RunCommand (Organization depth): the command runs as the OS user
    /// who owns the data directory, whoever owns the job.
    fn check_command(&self, state: &Projection, data: &[u8]) -> Result<(), Error> {
        if crate::domain::runs_command(data) {
            state.directory().check(&self.user, Privilege::RunCommand, None)?;
        }
        Ok(())
    }

    /// Refused unless this user holds `privilege` at Organization depth:
    /// what commands that act on the whole store need (`verify` reads every
    /// job: Read; starting the service: Write; see README, "Who can act as
    /// whom").
    pub fn require_organization(&self, privilege: Privilege) -> Result<(), Error> {
        Ok(self.engine.state().directory().check(&self.user, privilege, None)?)
    }

    /// Compaction ([`Engine::compact`]) as this user: rewriting the whole
    /// log is an administrative write (Write at Organization depth).
    pub fn compact(&self) -> Result<Compaction, Error> {
        self.require_organization(Privilege::Write)?;
        self.engine.compact()
    }

    /// Adds a user mapped to OS user id `uid` (one atomic batch).
    pub fn add_user_mapped(&self, name: &str, business_unit: &str, roles: &[&str], uid: u32) -> Result<(), Error> {
        let user = User {
            name: name.into(),
            business_unit: business_unit.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            active: true,
        };
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            let mut dir = state.directory().clone();
            dir.add_user(user.clone())?;
            dir.map_os_user(name, Some(uid))?;
            Ok((vec![Event::UserAdded(user), Event::OsUserMapped { name: name.into(), uid: Some(uid) }], ()))
        })
    }

    /// Maps OS user id `uid` to joblog user `name`, or removes its mapping
    /// (`None`): through the service, a caller with that id acts as `name`
    /// and only as `name`. Needs Write at Organization depth.
    pub fn map_os_user(&self, name: &str, uid: Option<u32>) -> Result<(), Error> {
        self.admin(|state| {
            state.directory().clone().map_os_user(name, uid)?;
            Ok(Event::OsUserMapped { name: name.into(), uid })
        })
    }

    fn admin(&self, build: impl FnOnce(&Projection) -> Result<Event, Error>) -> Result<(), Error> {
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            Ok((vec![build(state)?], ()))
        })
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
