//! The log's errors. Each variant says what happened and, where there is
//! one, what the user can do about it. The engine maps the kinds it shares
//! (I/O, damage, a newer version) onto its own `Error`'s (`src/error.rs`).

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong in the log: an open, an append, a read or a compaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A system call on `path` failed (a full disk, a permission, a missing
    /// file): the append or open it belonged to did not happen. Fix the
    /// cause and try again.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was on.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },

    /// Damage that is not a torn write: the log refuses to open and changes
    /// nothing. `seq` is the sequence number expected at `offset`, when known
    /// (in a compacted segment, the lowest it could be).
    #[error("the store is damaged: {path} at offset {offset}{}: {reason}", seq_note(.seq))]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// The byte offset of the damage in `path`.
        offset: u64,
        /// The sequence number expected at `offset`, when known.
        seq: Option<u64>,
        /// What is wrong there.
        reason: String,
    },

    /// Another process holds the directory's lock (`holder` names it): one
    /// process at a time opens a log. Wait for it, or stop it.
    #[error("the log at {path} is held by another process ({holder}); stop it or wait for it to finish")]
    Locked {
        /// The log's lock file.
        path: PathBuf,
        /// The holder, as its lock file names it ("pid N"), or "unknown
        /// process".
        holder: String,
    },

    /// The directory belongs to another OS user: open it as that user, or
    /// go through its service.
    #[error("{path} belongs to uid {owner}, not to this process's user (uid {euid}); a store is opened only by the OS user who owns it (root too: run `runuser -u OWNER -- joblog ...`), other users go through its service (README, \"Who can act as whom\")")]
    NotOwned {
        /// The file or directory owned by another user.
        path: PathBuf,
        /// The uid that owns it.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },

    /// A file where joblog expects its own (a symbolic link, another
    /// owner, loose permissions): remove it, joblog creates it again.
    #[error("{path}: {reason}; remove it (joblog creates it again)")]
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A payload empty or larger than the log takes: nothing was appended.
    #[error("payload of {len} bytes: a payload must hold between 1 and {max} bytes")]
    PayloadSize {
        /// The payload's length, in bytes.
        len: usize,
        /// The largest payload the log takes, in bytes.
        max: usize,
    },

    /// An atomic batch larger than one segment holds: nothing was
    /// appended; split the batch or configure larger segments.
    #[error("an atomic batch of {bytes} bytes cannot fit in one segment of {capacity} usable bytes; split it or raise segment_size_bytes")]
    BatchTooLarge {
        /// The batch's size as frames, in bytes.
        bytes: usize,
        /// The bytes one segment holds after its header.
        capacity: usize,
    },

    /// An append of no payload at all: a caller's bug; nothing happened.
    #[error("an append needs at least one payload")]
    EmptyBatch,

    /// A position that names no record (read back by position): the
    /// record was compacted away, or the position never was one.
    #[error("no record at position {segment}:{offset}: {reason}")]
    BadPosition {
        /// The position's segment: its first sequence number.
        segment: u64,
        /// The position's byte offset in the segment.
        offset: u64,
        /// Why no record is there ("no such segment", …).
        reason: &'static str,
    },

    /// A write to a log opened read-only (for reading or salvage): open it
    /// writable to write.
    #[error("the log was opened read-only for salvage and refuses writes")]
    ReadOnly,

    /// An earlier write or sync failed, so what reached the disk is
    /// unknown: every write is refused until the log is reopened (which
    /// recovers the tail).
    #[error("an earlier write failed ({0}); the log refuses writes until it is reopened")]
    Poisoned(String),

    /// The log was closed (or its writer thread ended): reopen it.
    #[error("the log is closed")]
    Closed,

    /// A segment, its codec or the manifest was written by a newer joblog:
    /// nothing was changed; upgrade joblog to open the store.
    #[error("{path}: {reason}; upgrade joblog to open this store (this build writes format {format}, codec {codec})", format = super::format::FORMAT_VERSION, codec = crate::codec::CODEC_VERSION)]
    NewerVersion {
        /// The file written by a newer joblog.
        path: PathBuf,
        /// What in it is newer (the segment format, the codec, the manifest).
        reason: &'static str,
    },

    /// A compaction's plan no longer matches the segments (another
    /// compaction ran meanwhile): nothing was installed; plan again.
    #[error("compaction conflict: {0}")]
    Conflict(String),

    /// A [`super::LogConfig`] value out of its range: correct it.
    #[error("invalid log configuration: {0}")]
    Config(&'static str),
}

pub(crate) fn io_err(path: &Path, source: io::Error) -> LogError {
    LogError::Io { path: path.to_path_buf(), source }
}

/// A decoding failure of a header: a newer joblog's file, or corruption.
pub(crate) fn undecodable(path: &Path, offset: usize, reason: &'static str) -> LogError {
    use super::format::{NEWER_CODEC, NEWER_SEGMENT_FORMAT};
    if [NEWER_SEGMENT_FORMAT, NEWER_CODEC, super::manifest::NEWER_MANIFEST].contains(&reason) {
        LogError::NewerVersion { path: path.to_path_buf(), reason }
    } else {
        corrupt(path, offset, reason)
    }
}

pub(crate) fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> LogError {
    LogError::Corrupt { path: path.to_path_buf(), offset: offset as u64, seq: None, reason: reason.into() }
}

/// Corruption where the frame with sequence number `seq` was expected.
pub(crate) fn corrupt_at(path: &Path, offset: usize, seq: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt { path: path.to_path_buf(), offset: offset as u64, seq: Some(seq), reason: reason.into() }
}

fn seq_note(seq: &Option<u64>) -> String {
    seq.map_or(String::new(), |s| format!(" (where sequence number {s} was expected)"))
}
