//! The engine's error: one enum, each variant one kind of failure a caller
//! may handle differently (the command line maps them to the exit codes of
//! `docs/cli.md`). Each kind has one place: every damage to the store is
//! [`Error::Corrupt`], every file of a newer joblog [`Error::NewerVersion`],
//! every failed system call on a file [`Error::Io`], every missing job,
//! user, role, business unit or workflow [`DomainError::NotFound`] (under
//! [`Error::Domain`]), wherever in the engine it was found. The log keeps
//! its own [`LogError`] for its own API; `From<LogError>` maps its kinds
//! onto these.

use std::path::PathBuf;

use crate::codec::CodecError;
use crate::domain::{DomainError, EventDecodeError};
use crate::log::LogError;

/// What went wrong in the engine, the service or a store's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The domain refused the request: a transition the state machine does
    /// not make, a missing privilege, a name that names nothing, bad input.
    /// Nothing was written; the inner error says what would be needed.
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// A write (or compaction) on a thread that holds the engine's state
    /// (`Engine::state`): it would wait for that thread forever. Drop the
    /// state first.
    #[error("this thread holds the engine's state (Engine::state); drop it before writing, or the write would wait for itself")]
    StateHeld,

    /// A system call on `path` failed (a full disk, a permission, a missing
    /// file). What was being written was not written; fix the cause and try
    /// again.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was on.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },

    /// The store is damaged: bytes in the log, the manifest or a checkpoint
    /// that do not decode, or events that contradict the state they apply
    /// to. `file`, `offset` and `seq` say where, when known (`seq` is the
    /// event's sequence number, or the one expected at `offset`). The store
    /// must not be written to: `joblog verify` lists every problem and
    /// [`crate::engine::salvage`] copies what is intact into a new store.
    #[error("the store is damaged (corrupt): {}{reason}", place(file, offset, seq))]
    Corrupt {
        /// The damaged file, when known.
        file: Option<PathBuf>,
        /// The byte offset of the damage in `file`, when known.
        offset: Option<u64>,
        /// The event's sequence number (or the one expected at `offset`), when
        /// known.
        seq: Option<u64>,
        /// What is wrong there.
        reason: Corruption,
    },

    /// A file of the store (`file`, when known) or an event in it was
    /// written by a newer joblog: nothing was changed; upgrade joblog to
    /// open the store.
    #[error("{}{what}: the store was written by a newer joblog; upgrade joblog to open it (this build writes format {format}, codec {codec}, events up to schema version {event})", file.as_ref().map_or(String::new(), |f| format!("{}: ", f.display())), format = crate::log::format::FORMAT_VERSION, codec = crate::codec::CODEC_VERSION, event = crate::domain::EVENT_VERSION)]
    NewerVersion {
        /// The file written by a newer joblog, when known.
        file: Option<PathBuf>,
        /// What in it is newer (a format, a codec, an event's schema version).
        what: String,
    },

    /// The log refused for a reason of its own: the directory is held by
    /// another process ([`LogError::Locked`]), belongs to another OS user
    /// ([`LogError::NotOwned`]), is open read-only ([`LogError::ReadOnly`]),
    /// an earlier write failed ([`LogError::Poisoned`]), a batch too large,
    /// … Never [`LogError::Io`], [`LogError::Corrupt`] or
    /// [`LogError::NewerVersion`]: those come as [`Error::Io`],
    /// [`Error::Corrupt`] and [`Error::NewerVersion`].
    #[error(transparent)]
    Log(LogError),

    /// A write stamped before the newest recorded event: time never goes
    /// backwards in a store. Nothing was written; act at a later time.
    #[error("time would go backwards: {at} is earlier than the newest recorded event ({newest})")]
    TimeWentBackwards {
        /// The write's time, in RFC 3339.
        at: String,
        /// The time of the newest recorded event, in RFC 3339.
        newest: String,
    },

    /// A write stamped further ahead of the system clock than a live store
    /// accepts (`engine::MAX_CLOCK_SKEW_SECS`): it would refuse every later
    /// write until then. Nothing was written; only a store created as a
    /// simulation runs ahead.
    #[error("the time {at} is ahead of the system clock (a live store accepts up to {limit}); only a store created as a simulation runs ahead")]
    ClockAhead {
        /// The write's time, in RFC 3339.
        at: String,
        /// The latest time a live store accepts now (the system clock plus
        /// `MAX_CLOCK_SKEW_SECS`), in RFC 3339.
        limit: String,
    },

    /// A store that already holds events cannot become a simulation
    /// (`docs/operations.md`, "The clock"): create the simulation in a new
    /// directory.
    #[error("{} already holds a live store; only a new store can be created as a simulation", dir.display())]
    NotANewStore {
        /// The store's directory.
        dir: PathBuf,
    },

    /// A salvage's target is not a new, empty directory outside the
    /// damaged store (`reason` says which). Nothing was copied; give
    /// another directory.
    #[error("invalid salvage target: {} {reason}", target.display())]
    SalvageTarget {
        /// The directory given as the target.
        target: PathBuf,
        /// What is wrong with it ("exists and is not a directory", …).
        reason: String,
    },

    /// A service already runs on this engine: a job must never run twice at
    /// once, so a second one does not start. Wait for the first to return.
    #[error("a service already runs on this store")]
    ServiceRunning,

    /// The service's worker threads ended while it still had work for them
    /// (a worker thread died outside a handler). The jobs they held stay
    /// Locked until the next service returns their leases; start the
    /// service again.
    #[error("the service's workers stopped while it still had jobs for them; the jobs they held are returned when a service starts again")]
    WorkersStopped,

    /// A thread (`what`) could not be started: the system is out of
    /// threads or memory. Nothing ran; try again when it has room.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The thread that could not be started ("worker thread 2 of 4").
        what: String,
        /// The system's error.
        source: std::io::Error,
    },

    /// A value could not be turned into bytes (an event of a kind this
    /// build may not write, a checkpoint too large): a bug, nothing was
    /// written.
    #[error("cannot encode: {reason}")]
    Encode {
        /// Why the value could not be encoded (the codec's message).
        reason: String,
    },

    /// Processes of a run of an earlier service on this store (found by
    /// their marks, `service::STORE_VAR`) are still there after SIGKILL:
    /// the service does not start, since their jobs would run twice. End
    /// them (or wait for them), then start the service again.
    #[error("processes {pids:?} of a run started by an earlier service on this store are still running after SIGKILL (in uninterruptible sleep?); the service does not start while they live (their jobs would run twice at once)")]
    RunsOutlived {
        /// The process ids still running.
        pids: Vec<i32>,
    },

    /// `/proc` could not be listed, so the processes that command runs
    /// left behind cannot be looked for: the service does not start (it
    /// would return leases of runs that may still be running). Mount
    /// `/proc` readable, then start the service again.
    #[error("cannot list the processes in /proc ({source}): the service cannot check that no command run of an earlier service still runs, so it does not start (is /proc mounted and readable?)")]
    ProcessesUnreadable {
        /// The system's error on listing `/proc`.
        source: std::io::Error,
    },
}

/// What is wrong at the place an [`Error::Corrupt`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// An event's bytes passed their frame's checksum but do not decode as
    /// an event of their version (or carry a variant that version did not
    /// have): the log is damaged there, or was written by a broken build.
    #[error("the event cannot be read: {0}")]
    Event(EventDecodeError),
    /// Anything else: a frame, a manifest or a checkpoint that does not
    /// check, or an event that contradicts the state it applies to.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Damage with a description and no place.
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt { file: None, offset: None, seq: None, reason: Corruption::Other(reason.into()) }
    }

    /// Whether this is damage to the store ([`Error::Corrupt`]).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

/// "FILE at offset N (event S): " with the parts that are known.
fn place(file: &Option<PathBuf>, offset: &Option<u64>, seq: &Option<u64>) -> String {
    let mut out = match (file, offset) {
        (Some(f), Some(o)) => format!("{} at offset {o}", f.display()),
        (Some(f), None) => f.display().to_string(),
        (None, Some(o)) => format!("offset {o}"),
        (None, None) => String::new(),
    };
    match (seq, out.is_empty()) {
        (Some(s), true) => out = format!("event {s}"),
        (Some(s), false) => out.push_str(&format!(" (event {s})")),
        (None, _) => {}
    }
    if !out.is_empty() {
        out.push_str(": ");
    }
    out
}

/// The log's kinds onto the engine's: I/O, damage and newer files each
/// under their one variant, the rest as [`Error::Log`].
impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Io { path, source } => Error::Io { path, source },
            LogError::Corrupt { path, offset, seq, reason } => {
                Error::Corrupt { file: Some(path), offset: Some(offset), seq, reason: Corruption::Other(reason) }
            }
            LogError::NewerVersion { path, reason } => Error::NewerVersion { file: Some(path), what: reason.into() },
            e => Error::Log(e),
        }
    }
}

/// Bytes that do not decode are damage; a value that does not encode is
/// [`Error::Encode`]. (Callers that know the file name it themselves.)
impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Encode(reason) => Error::Encode { reason },
            e => Error::corrupt(e.to_string()),
        }
    }
}
