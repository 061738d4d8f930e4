//! The engine's error: one enum, each variant a kind of failure a caller
//! may handle differently (the command line maps them to exit codes).

use uuid::Uuid;

use crate::codec::CodecError;
use crate::domain::DomainError;
use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log failed (I/O, corruption, a held lock).
    #[error(transparent)]
    Log(#[from] LogError),

    /// The domain refused: a transition, a privilege, bad input.
    #[error(transparent)]
    Domain(#[from] DomainError),

    /// A write (or compaction) on a thread that holds the engine's state
    /// (`Engine::state`): it would wait for that thread forever. Drop the
    /// state first.
    #[error("this thread holds the engine's state (Engine::state); drop it before writing, or the write would wait for itself")]
    StateHeld,

    #[error("no job {0}")]
    JobNotFound(Uuid),

    /// Bytes in the log or a snapshot that do not decode, or events that
    /// contradict the state they apply to.
    #[error("corrupt store: {0}")]
    Corrupt(String),

    /// An event in the log that cannot be read: its bytes passed the
    /// frame's checksum but do not decode as an event of their version (or
    /// carry a variant that version did not have). The log is damaged (or
    /// was written by a broken build) at this place.
    #[error("corrupt store: event {seq} in {} at offset {offset} cannot be read: {reason}; the store is damaged there and must not be written to (`joblog verify` reports the damage)", file.display())]
    CorruptEvent { seq: u64, file: std::path::PathBuf, offset: u64, reason: crate::domain::EventDecodeError },

    /// The store was written by a newer joblog.
    #[error("{0}: the store was written by a newer joblog; upgrade joblog to open it")]
    NewerVersion(String),

    #[error("time would go backwards: {at} is earlier than the newest recorded event ({newest})")]
    TimeWentBackwards { at: String, newest: String },

    #[error(transparent)]
    Codec(#[from] CodecError),

    #[error("I/O error on {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },

    /// A write stamped further ahead of the system clock than a live store
    /// accepts (`engine::MAX_CLOCK_SKEW_SECS`): it would refuse every later
    /// write until then.
    #[error("the time {at} is ahead of the system clock (a live store accepts up to {limit}); only a store created as a simulation runs ahead")]
    ClockAhead { at: String, limit: String },

    /// Processes of a run of an earlier service on this store (found by
    /// their marks, `service::STORE_VAR`) are still there after SIGKILL:
    /// the service does not start, since their jobs would run twice.
    #[error("processes {pids:?} of a run started by an earlier service on this store are still running after SIGKILL (in uninterruptible sleep?); the service does not start while they live (their jobs would run twice at once)")]
    RunsOutlived { pids: Vec<i32> },

    /// `/proc` could not be listed, so the processes that command runs
    /// left behind cannot be looked for: the service does not start (it
    /// would return leases of runs that may still be running).
    #[error("cannot list the processes in /proc ({source}): the service cannot check that no command run of an earlier service still runs, so it does not start (is /proc mounted and readable?)")]
    ProcessesUnreadable { source: std::io::Error },
}
