//! Events: everything that changes the store is one of these, appended to
//! the log inside an [`Envelope`] that says when, by whom, and in which
//! version of this schema.
//!
//! Bytes on disk (`docs/format.md`, "Payloads: events"): the envelope's
//! `version` first (a variable-length integer), then `at`, `actor` and
//! `event`, each as `src/codec.rs` encodes it. [`Envelope::decode`] reads the
//! version first and decodes the rest with the types **of that version**,
//! then converts them to today's. The encoding of every version ever
//! written is fixed forever by the fixtures under `tests/fixtures/events/`
//! and `tests/fixtures/store-v1/` (`tests/format.rs`).
//!
//! Rules for the next change (the full text is in `docs/format.md`):
//!
//! * A new kind of event: a new variant at the **end** of [`Event`], a new
//!   [`EVENT_VERSION`], its line in [`VERSIONS`] and its arm in
//!   [`Event::since`] (the match is exhaustive on purpose: the build fails
//!   until it is written). Older variants' bytes do not change, so every
//!   older version still decodes with today's types.
//! * A change to an existing variant or to any type inside one (a field
//!   added, removed or retyped, anywhere: `Job`, `Transition`, `User`,
//!   `Role`, `Deletion`, the enums…): never in place for old bytes. Copy the
//!   types as they are now into a module `v{N}` (N = the last version that
//!   used them), add an arm in [`decode_body`] that decodes versions up to
//!   N with them and converts with `From`, then change today's types and
//!   raise [`EVENT_VERSION`]. Add the fixtures of the new version.

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::deletion::Deletion;
use super::job::{Job, WorkflowDefinition};
use super::privilege::{Role, User};
use super::time::Timestamp;
use super::{Action, Status};

/// Version of the event schema written by this build.
pub const EVENT_VERSION: u16 = 6;

/// What each version of the event schema changed, oldest first: one line
/// per version from 1 to [`EVENT_VERSION`] (a test checks that none is
/// missing).
pub const VERSIONS: &[(u16, &str)] = &[
    (
        1,
        "JobCreated, Transition, OwnerChanged, BusinessUnitAdded, RoleAdded, UserAdded, UserDeactivated, WorkflowSaved",
    ),
    (2, "JobsDeleted appended; no other change"),
    (3, "UserReactivated and OsUserMapped appended; Privilege::RunCommand appended; no other change"),
    (4, "PolicySet and JobResubmitted appended; no other change"),
    (5, "TokenCreated and TokenRevoked appended; no other change"),
    (6, "JobsDeletedById appended; no other change"),
];

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A user, by their joblog user name.
    User(String),
    /// A worker host of the service, by its id.
    Worker(String),
    /// The engine itself (a fresh store's defaults, recovery).
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(u) => write!(f, "{u}"),
            Actor::Worker(w) => write!(f, "worker:{w}"),
            Actor::System => write!(f, "system"),
        }
    }
}

/// One event as stored in a log payload: what happened, when, by whom, and
/// the schema version it was written with. [`Envelope::encode`] and
/// [`Envelope::decode`] are its only way to and from bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event schema version it was written with (1..=[`EVENT_VERSION`]);
    /// decoding refuses a newer one ([`EventDecodeError::Newer`]).
    pub version: u16,
    /// When it happened: the engine's clock at the write, never before the
    /// previous event's time.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What happened.
    pub event: Event,
}

/// What happened: every change to a store is one of these. Variants are
/// only ever appended (each says the schema version it came with,
/// [`Event::since`]), so old logs keep decoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A job with all its columns (new, or imported in any state).
    JobCreated(Box<Job>),
    /// One step of a job's state machine ([`Transition`]).
    Transition(Transition),
    /// A job moved to another owner (an administrator's reassignment).
    OwnerChanged {
        /// The job.
        job: Uuid,
        /// Its new owner (a user name).
        owner: String,
        /// The new owner's business unit.
        owningbusinessunit: String,
    },
    /// A business unit created under another.
    BusinessUnitAdded {
        /// Its name, unique in the store.
        name: String,
        /// The existing business unit it is added under (the root is never
        /// added by an event).
        parent: String,
    },
    /// A security role defined (its privileges and their depths).
    RoleAdded(Role),
    /// A user added, with their business unit and roles.
    UserAdded(User),
    /// A user deactivated: they can no longer act; their jobs stay.
    UserDeactivated {
        /// The user.
        name: String,
    },
    /// A workflow definition added or changed (owner, active flag).
    WorkflowSaved(WorkflowDefinition),
    /// Completed jobs deleted (version 2). The jobs' own events are removed
    /// by compaction later; this event never is.
    JobsDeleted(Box<Deletion>),
    /// A deactivated user made active again (version 3).
    UserReactivated {
        /// The user.
        name: String,
    },
    /// OS user id `uid` acts as joblog user `name` through the service
    /// (`None`: `name` is no longer mapped) (version 3).
    OsUserMapped {
        /// The joblog user.
        name: String,
        /// The OS user id, or `None` to remove the mapping.
        uid: Option<u32>,
    },
    /// A number of the service's policy set (`None`: back to its default)
    /// for this store (`domain::config`) (version 4).
    PolicySet {
        /// The policy's key ([`crate::domain::config::KEYS`]).
        key: String,
        /// The new value in the key's unit, or `None` for its default.
        value: Option<u64>,
    },
    /// Completed job `job` was submitted again as job `new` (whose creation
    /// comes in the same batch, just before); part of `job`'s history
    /// (version 4).
    JobResubmitted {
        /// The completed job submitted again.
        job: Uuid,
        /// The new job made from it.
        new: Uuid,
    },
    /// A bearer token made for `user` (version 5): the store keeps the
    /// SHA-256 of the printed token, never the token. Its creation time is
    /// the envelope's `at`; its creator the envelope's actor.
    TokenCreated {
        /// The token's id.
        id: Uuid,
        /// The joblog user the token acts as.
        user: String,
        /// Its label, if its creator gave one.
        name: Option<String>,
        /// SHA-256 of the whole printed token (`jl_` and 64 hex digits).
        hash: [u8; 32],
        /// When it stops authenticating (`None`: never).
        expires: Option<Timestamp>,
    },
    /// Token `id` revoked (version 5): it no longer authenticates; who
    /// revoked it is the envelope's actor.
    TokenRevoked {
        /// The token's id.
        id: Uuid,
    },
    /// Chosen Completed jobs deleted by id (version 6), all of them or none:
    /// the platform's delete of one system job record, or a batch of them.
    /// Who deleted them is the envelope's actor, when its `at`. The jobs' own
    /// events are removed by compaction later; this event never is. On
    /// replay an id no longer there (compaction removed its events) is
    /// skipped; one that is there must be Completed.
    JobsDeletedById {
        /// The jobs, each once, in the order asked.
        ids: Vec<Uuid>,
    },
}

/// One step of the state machine, with the columns it sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The job.
    pub job: Uuid,
    /// What was done (`docs/domain.md` §4 for a user's, §5 for the service's).
    pub action: Action,
    /// The job's status before: the step is refused unless the job is in it.
    pub from: Status,
    /// The job's status after.
    pub to: Status,
    /// When a postponed or waiting job is due next (`None`: not postponed).
    pub postponeuntil: Option<Timestamp>,
    /// How many times the job has been retried so far.
    pub retrycount: u32,
    /// The run's error code, if this step reports one.
    pub errorcode: Option<i32>,
    /// A message for the job (an error or an outcome), if this step sets one.
    pub message: Option<String>,
}

/// What a [`Transition`] written at `at` does to its job's columns: the
/// one statement of these rules, followed by the projection's rows and the
/// benchmark's SQL rows alike.
///
/// * `status`, `postponeuntil` and `retrycount` become the event's;
///   `modifiedon` becomes its time.
/// * `errorcode` and `message` change only when the event carries one;
///   otherwise the job keeps its own.
/// * `startedon` is set by a Lock, only when the job has none yet (the
///   first run's start).
/// * `completedon` is set when the job reaches Completed, and with it
///   `executiontimespan` ([`executiontimespan_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnChanges<'t> {
    /// The job's new status.
    pub status: Status,
    /// The job's new `postponeuntil`.
    pub postponeuntil: Option<Timestamp>,
    /// The job's new `retrycount`.
    pub retrycount: u32,
    /// The job's new `modifiedon`: the event's time.
    pub modifiedon: Timestamp,
    /// `Some`: the new code; `None`: the job keeps its own.
    pub errorcode: Option<i32>,
    /// `Some`: the new message; `None`: the job keeps its own.
    pub message: Option<&'t str>,
    /// `Some`: the job's `startedon` if it has none yet.
    pub started: Option<Timestamp>,
    /// `Some`: the job completed at this time.
    pub completedon: Option<Timestamp>,
}

impl Transition {
    /// The columns this step sets when written at `at` ([`ColumnChanges`]).
    pub fn columns(&self, at: Timestamp) -> ColumnChanges<'_> {
        ColumnChanges {
            status: self.to,
            postponeuntil: self.postponeuntil,
            retrycount: self.retrycount,
            modifiedon: at,
            errorcode: self.errorcode,
            message: self.message.as_deref(),
            started: (self.action == Action::Lock).then_some(at),
            completedon: self.to.is_completed().then_some(at),
        }
    }
}

/// A completed job's `executiontimespan`, in whole milliseconds: from its
/// first start (`startedon`; a job that never started took no time) to
/// `completedon`, never negative.
pub fn executiontimespan_ms(startedon: Option<Timestamp>, completedon: Timestamp) -> u64 {
    let started = startedon.unwrap_or(completedon);
    ((completedon.micros() - started.micros()).max(0) / 1000) as u64
}

impl Event {
    /// The first schema version that has this variant. A payload of an
    /// older version that carries it is corrupt.
    pub fn since(&self) -> u16 {
        // Exhaustive, no `_`: a new variant must say its version here.
        match self {
            Event::JobCreated(_)
            | Event::Transition(_)
            | Event::OwnerChanged { .. }
            | Event::BusinessUnitAdded { .. }
            | Event::RoleAdded(_)
            | Event::UserAdded(_)
            | Event::UserDeactivated { .. }
            | Event::WorkflowSaved(_) => 1,
            Event::JobsDeleted(_) => 2,
            Event::UserReactivated { .. } | Event::OsUserMapped { .. } => 3,
            Event::PolicySet { .. } | Event::JobResubmitted { .. } => 4,
            Event::TokenCreated { .. } | Event::TokenRevoked { .. } => 5,
            Event::JobsDeletedById { .. } => 6,
        }
    }

    /// The variant's name (for messages).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::JobCreated(_) => "JobCreated",
            Event::Transition(_) => "Transition",
            Event::OwnerChanged { .. } => "OwnerChanged",
            Event::BusinessUnitAdded { .. } => "BusinessUnitAdded",
            Event::RoleAdded(_) => "RoleAdded",
            Event::UserAdded(_) => "UserAdded",
            Event::UserDeactivated { .. } => "UserDeactivated",
            Event::WorkflowSaved(_) => "WorkflowSaved",
            Event::JobsDeleted(_) => "JobsDeleted",
            Event::UserReactivated { .. } => "UserReactivated",
            Event::OsUserMapped { .. } => "OsUserMapped",
            Event::PolicySet { .. } => "PolicySet",
            Event::JobResubmitted { .. } => "JobResubmitted",
            Event::TokenCreated { .. } => "TokenCreated",
            Event::TokenRevoked { .. } => "TokenRevoked",
            Event::JobsDeletedById { .. } => "JobsDeletedById",
        }
    }
}

/// Why an event's bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// Written by a newer joblog: not damage, but nothing this build can read.
    #[error("event schema version {version} is newer than this build's {EVENT_VERSION}")]
    Newer {
        /// The payload's version.
        version: u16,
    },
    /// Version 0 was never written.
    #[error("event schema version 0 does not exist")]
    NoSuchVersion,
    /// The bytes do not decode as an event of their version.
    #[error("does not decode as an event of schema version {version}: {reason}")]
    Malformed {
        /// The version the payload claims.
        version: u16,
        /// What the decoder said.
        reason: String,
    },
    /// A variant that did not exist yet in the payload's version.
    #[error("a {kind} event cannot be of schema version {version} (it exists since version {since})")]
    NotInVersion {
        /// The variant's name.
        kind: &'static str,
        /// The version the payload claims.
        version: u16,
        /// The first version that has the variant.
        since: u16,
    },
}

/// An envelope without its version: what follows the version on disk.
#[derive(Deserialize)]
struct Body {
    at: Timestamp,
    actor: Actor,
    event: Event,
}

#[derive(Serialize)]
struct BodyRef<'a> {
    at: &'a Timestamp,
    actor: &'a Actor,
    event: &'a Event,
}

/// The first event schema version whose payloads decode with today's
/// types (every version so far: each only appended variants).
pub(super) const TODAYS_TYPES_SINCE: u16 = 1;

/// Decodes what follows the version, with the types of `version`.
fn decode_body(version: u16, bytes: &[u8]) -> Result<(Timestamp, Actor, Event), EventDecodeError> {
    let malformed = |e: crate::codec::CodecError| EventDecodeError::Malformed { version, reason: e.to_string() };
    match version {
        0 => Err(EventDecodeError::NoSuchVersion),
        // Versions 1 ..= today's share today's types: each version so far
        // only appended variants (see VERSIONS). When a version changes a
        // type, an arm `1..=N => v{N}::decode(bytes).map(Into::into)` goes
        // above this one, and TODAYS_TYPES_SINCE becomes N + 1 (the fast
        // path of `wire.rs` reads only versions from it on).
        TODAYS_TYPES_SINCE..=EVENT_VERSION => {
            let b: Body = crate::codec::decode(bytes).map_err(malformed)?;
            Ok((b.at, b.actor, b.event))
        }
        version => Err(EventDecodeError::Newer { version }),
    }
}

impl Envelope {
    /// Today's encoding of this envelope. Only [`EVENT_VERSION`] is ever
    /// written: an envelope of another version is a bug of the caller.
    pub fn encode(&self) -> Result<Vec<u8>, crate::codec::CodecError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends [`Envelope::encode`]'s bytes to `out`; on an error `out` is
    /// as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), crate::codec::CodecError> {
        if self.version != EVENT_VERSION {
            return Err(crate::codec::CodecError::Encode(format!(
                "this build writes event schema version {EVENT_VERSION} only, not {}",
                self.version
            )));
        }
        let start = out.len();
        let body = BodyRef { at: &self.at, actor: &self.actor, event: &self.event };
        let written =
            crate::codec::encode_append(&self.version, out).and_then(|_| crate::codec::encode_append(&body, out));
        if written.is_err() {
            out.truncate(start);
        }
        written.map(|_| ())
    }

    /// Reads an envelope of any version this build knows: the version
    /// first, then the rest with that version's types, converted to today's
    /// (the returned envelope keeps the version it was written in).
    #[inline(always)]
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EventDecodeError> {
        // A job created or a step of one: read directly (`wire.rs`); the
        // rest, and anything that path does not accept, through serde.
        match super::wire::decode_common(bytes) {
            Some(env) => Ok(env),
            None => Self::decode_by_serde(bytes),
        }
    }

    /// The job of a `JobCreated` payload of today's types, read without
    /// building its envelope (a view's page reads one per row); `None`
    /// for any other payload, which [`Envelope::decode`] then reads or
    /// refuses.
    pub(crate) fn decode_job_created(bytes: &[u8]) -> Option<Job> {
        super::wire::decode_created(bytes)
    }

    /// [`Envelope::decode`] without its fast path: every kind of event,
    /// and every refusal.
    pub(super) fn decode_by_serde(bytes: &[u8]) -> Result<Envelope, EventDecodeError> {
        let (version, used) = crate::codec::decode_prefix::<u16>(bytes)
            .map_err(|e| EventDecodeError::Malformed { version: 0, reason: format!("no version: {e}") })?;
        let (at, actor, event) = decode_body(version, &bytes[used..])?;
        if event.since() > version {
            return Err(EventDecodeError::NotInVersion { kind: event.kind(), version, since: event.since() });
        }
        Ok(Envelope { version, at, actor, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_its_line() {
        let listed: Vec<u16> = VERSIONS.iter().map(|v| v.0).collect();
        assert_eq!(listed, (1..=EVENT_VERSION).collect::<Vec<_>>(), "VERSIONS must list 1 ..= EVENT_VERSION");
    }
}
