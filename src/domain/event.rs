//! Events: everything that changes the store is one of these, appended to
//! the log inside an [`Envelope`] that says when, by whom, and in which
//! version of this schema. New variants and fields are added at the end
//! only, and [`EVENT_VERSION`] goes up, so old logs stay readable.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::deletion::Deletion;
use super::job::{Job, WorkflowDefinition};
use super::privilege::{Role, User};
use super::time::Timestamp;
use super::{Action, Status};

/// Version of the event schema written by this build.
pub const EVENT_VERSION: u16 = 3;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub at: Timestamp,
    pub actor: Actor,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A job with all its columns (new, or imported in any state).
    JobCreated(Box<Job>),
    Transition(Transition),
    /// A job moved to another owner (an administrator's reassignment).
    OwnerChanged {
        job: Uuid,
        owner: String,
        owningbusinessunit: String,
    },
    BusinessUnitAdded {
        name: String,
        parent: String,
    },
    RoleAdded(Role),
    UserAdded(User),
    UserDeactivated {
        name: String,
    },
    /// A workflow definition added or changed (owner, active flag).
    WorkflowSaved(WorkflowDefinition),
    /// Completed jobs deleted (version 2). The jobs' own events are removed
    /// by compaction later; this event never is.
    JobsDeleted(Box<Deletion>),
    /// A deactivated user made active again (version 3).
    UserReactivated {
        name: String,
    },
    /// OS user id `uid` acts as joblog user `name` through the service
    /// (`None`: `name` is no longer mapped) (version 3).
    OsUserMapped {
        name: String,
        uid: Option<u32>,
    },
}

/// One step of the state machine, with the columns it sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub job: Uuid,
    pub action: Action,
    pub from: Status,
    pub to: Status,
    pub postponeuntil: Option<Timestamp>,
    pub retrycount: u32,
    pub errorcode: Option<i32>,
    pub message: Option<String>,
}

impl Transition {
    /// Applies this step to `job` at time `at`: the status and the columns
    /// that follow from it.
    pub fn apply(&self, job: &mut Job, at: Timestamp) {
        debug_assert_eq!(job.status, self.from);
        job.status = self.to;
        job.postponeuntil = self.postponeuntil;
        job.retrycount = self.retrycount;
        job.modifiedon = at;
        if self.errorcode.is_some() {
            job.errorcode = self.errorcode;
        }
        if self.message.is_some() {
            job.message.clone_from(&self.message);
        }
        if self.action == Action::Lock && job.startedon.is_none() {
            job.startedon = Some(at);
        }
        if self.to.is_completed() {
            job.completedon = Some(at);
            let started = job.startedon.unwrap_or(at);
            job.executiontimespan_ms = ((at.micros() - started.micros()).max(0) / 1000) as u64;
        }
    }
}
