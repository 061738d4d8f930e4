//! joblog: background jobs ("system jobs") kept as an event-sourced,
//! append-only, checksummed log.
//!
//! Modules, in the direction of their dependencies (see `ARCHITECTURE.md`):
//!
//! * [`domain`] — the System Jobs model: codes, types, the state machine.
//! * [`codec`] — values to bytes and back (bincode 2.0.1, pinned).
//! * [`measure`] — a directory's bytes and this process's memory, for `stats` and the harnesses.
//! * [`engine`] — the embedding surface: an engine, sessions, actions, queries.
//! * [`projection`] — current state and indices, folded from events.
//! * [`service`] — runs the jobs: workers, retries, back-off, leases.
//! * [`log`]   — the segmented, memory-mapped, checksummed event log; it
//!   stores opaque payloads and knows nothing of jobs.

pub mod codec;
mod cores;
mod crashpoint;
pub mod domain;
pub mod engine;
mod error;
pub mod measure;
pub mod projection;
pub mod service;
mod sys;

pub mod log;

// What an embedder's first program needs, at the root: the engine and its
// handles, the service and handlers, and the job model they speak.
pub use domain::{Clock, Job, ManualClock, OperationType, Status, StatusReason, SystemClock, Timestamp};
pub use engine::{
    BulkOutcome, Config, Engine, HistoryEntry, NewJob, NewToken, OpenReport, ServiceStep, Session, StateGuard,
    TokenInfo, UserAction, Worker,
};
pub use error::{Corruption, Error};
pub use projection::query::{Cursor, Filter, Visibility};
pub use service::{Handler, JobContext, Outcome, Registry, RunUntil, Service, ServiceConfig, Summary};
pub use sys::alloc::{LargeBlocks, LARGE};
