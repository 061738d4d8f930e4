//! The system job row (`docs/domain.md` §1) and workflow definitions.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::limits::{
    check_identifier, check_len, check_text, MAX_DATA_BYTES, MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_RECURRENCE_CHARS,
    MAX_REGARDING_ID_CHARS,
};
use super::time::Timestamp;
use super::{DomainError, OperationType, Status};

/// The row a job concerns: a table name and the row's id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Regarding {
    /// The table's name, an identifier (`contact`).
    pub table: String,
    /// The row's id in that table, a single line of text (`42`).
    pub id: String,
}

impl Regarding {
    /// `contact:42`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.split_once(':') {
            Some((table, id)) if !table.is_empty() && !id.is_empty() => {
                let r = Self { table: table.to_string(), id: id.to_string() };
                r.validate()?;
                Ok(r)
            }
            _ => Err(DomainError::Invalid { what: "regarding", reason: format!("{s:?} is not TABLE:ID") }),
        }
    }
}

impl Regarding {
    /// The table is an identifier; the id a single-line text.
    pub fn validate(&self) -> Result<(), DomainError> {
        check_identifier("regarding table", &self.table)?;
        if self.id.is_empty() {
            return Err(DomainError::Invalid { what: "regarding id", reason: "it is empty".into() });
        }
        check_text("regarding id", &self.id, MAX_REGARDING_ID_CHARS)
    }
}

impl std::fmt::Display for Regarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.table, self.id)
    }
}

/// One system job, every column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// `asyncoperationid`: UUID v7 for new jobs; imported jobs keep theirs.
    pub id: Uuid,
    /// The System Job Name: at most `MAX_NAME_CHARS` characters, no control
    /// characters.
    pub name: String,
    /// The System Job Type (`docs/domain.md` §3).
    pub operationtype: OperationType,
    /// `statecode` and `statuscode`: always a valid pair.
    pub status: Status,
    /// `ownerid`: the user the job runs as; privilege depths are measured
    /// against it.
    pub owner: String,
    /// The owner's business unit, copied onto the row at creation or
    /// reassignment.
    pub owningbusinessunit: String,
    /// `regardingobjectid`: the row the job is about.
    pub regarding: Option<Regarding>,
    /// `workflowactivationid`.
    pub workflow: Option<String>,
    /// When the job was queued; the queue and every list are ordered by it.
    pub createdon: Timestamp,
    /// When a worker first took it (kept across retries).
    pub startedon: Option<Timestamp>,
    /// When it reached Completed: `Some` exactly when the State is Completed.
    pub completedon: Option<Timestamp>,
    /// The time of its last change.
    pub modifiedon: Timestamp,
    /// Do not run before this time; a Suspended job becomes Ready again by
    /// itself then.
    pub postponeuntil: Option<Timestamp>,
    /// How many transient failures have been retried.
    pub retrycount: u32,
    /// Why the job failed, was canceled or waits: a code (joblog's own are listed in
    /// `docs/domain.md` §5, "joblog's own error codes").
    pub errorcode: Option<i32>,
    /// Why the job failed, was canceled or waits: a text of at most
    /// [`MAX_MESSAGE_CHARS`] characters.
    pub message: Option<String>,
    /// Kept and checked like `message`; joblog never writes it.
    pub friendlymessage: Option<String>,
    /// How many workflow calls led to this job (1 for a job nobody else
    /// started); the service's loop guard reads it.
    pub depth: u32,
    /// Links the jobs caused by one request (`resubmit` sets it).
    pub correlationid: Option<Uuid>,
    /// Jobs that share a token run one at a time, oldest first.
    pub dependencytoken: Option<String>,
    /// A recurring Bulk Delete job's pattern.
    pub recurrencepattern: Option<String>,
    /// When a recurring Bulk Delete job's pattern starts.
    pub recurrencestarttime: Option<Timestamp>,
    /// Wall time from `startedon` to `completedon`, in milliseconds.
    pub executiontimespan_ms: u64,
    /// The job's input: opaque bytes.
    pub data: Vec<u8>,
}

/// The columns of a job that a store's state keeps in its row; the others
/// (its name, data, messages…) are read back from the log where they are
/// needed. Its strings are of type `S`: borrowed (`&str`: a job's, or its
/// creation's bytes'), or, in the batches a replay hands from its reading
/// thread to its applying one, where they are in the batch's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobColumns<S> {
    /// `asyncoperationid` ([`Job::id`]).
    pub id: Uuid,
    /// The System Job Type.
    pub operationtype: OperationType,
    /// `statecode` and `statuscode`.
    pub status: Status,
    /// [`Job::owner`].
    pub owner: S,
    /// [`Job::owningbusinessunit`].
    pub owningbusinessunit: S,
    /// The regarding row's table and id.
    pub regarding: Option<(S, S)>,
    /// [`Job::workflow`].
    pub workflow: Option<S>,
    /// [`Job::createdon`].
    pub createdon: Timestamp,
    /// [`Job::startedon`].
    pub startedon: Option<Timestamp>,
    /// [`Job::completedon`].
    pub completedon: Option<Timestamp>,
    /// [`Job::modifiedon`].
    pub modifiedon: Timestamp,
    /// [`Job::postponeuntil`].
    pub postponeuntil: Option<Timestamp>,
    /// [`Job::retrycount`].
    pub retrycount: u32,
    /// [`Job::errorcode`].
    pub errorcode: Option<i32>,
    /// [`Job::dependencytoken`].
    pub dependencytoken: Option<S>,
    /// [`Job::executiontimespan_ms`].
    pub executiontimespan_ms: u64,
}

impl<S: Copy> JobColumns<S> {
    /// The same columns, each string `f` of what it was (read in place:
    /// the columns are large, and a replay maps tens of millions).
    pub(crate) fn map<T>(&self, mut f: impl FnMut(S) -> T) -> JobColumns<T> {
        JobColumns {
            id: self.id,
            operationtype: self.operationtype,
            status: self.status,
            owner: f(self.owner),
            owningbusinessunit: f(self.owningbusinessunit),
            regarding: self.regarding.map(|(table, id)| (f(table), f(id))),
            workflow: self.workflow.map(&mut f),
            createdon: self.createdon,
            startedon: self.startedon,
            completedon: self.completedon,
            modifiedon: self.modifiedon,
            postponeuntil: self.postponeuntil,
            retrycount: self.retrycount,
            errorcode: self.errorcode,
            dependencytoken: self.dependencytoken.map(f),
            executiontimespan_ms: self.executiontimespan_ms,
        }
    }
}

impl Job {
    /// The columns of this job a state keeps.
    pub(crate) fn columns(&self) -> JobColumns<&str> {
        JobColumns {
            id: self.id,
            operationtype: self.operationtype,
            status: self.status,
            owner: &self.owner,
            owningbusinessunit: &self.owningbusinessunit,
            regarding: self.regarding.as_ref().map(|r| (r.table.as_str(), r.id.as_str())),
            workflow: self.workflow.as_deref(),
            createdon: self.createdon,
            startedon: self.startedon,
            completedon: self.completedon,
            modifiedon: self.modifiedon,
            postponeuntil: self.postponeuntil,
            retrycount: self.retrycount,
            errorcode: self.errorcode,
            dependencytoken: self.dependencytoken.as_deref(),
            executiontimespan_ms: self.executiontimespan_ms,
        }
    }

    /// This row as it stood at `t`, as far as its own times tell
    /// (`docs/domain.md`, "Imported history"): an imported row carries
    /// only when it was created, started, completed and last modified, so
    /// before `createdon` it does not exist (`None`); from `modifiedon` on
    /// it is as imported; from `startedon` it was In Progress; before that
    /// Ready (Waiting For Resources). A row shown before its
    /// `modifiedon` has no completion, error, message or run time yet. A
    /// job created live has `createdon = modifiedon` = its creation's time,
    /// so this is the row or nothing.
    pub fn as_of(&self, t: Timestamp) -> Option<Job> {
        if self.createdon > t {
            return None;
        }
        if self.modifiedon <= t {
            return Some(self.clone());
        }
        let started = self.startedon.filter(|&s| s <= t);
        Some(Job {
            status: if started.is_some() { Status::IN_PROGRESS } else { Status::READY },
            startedon: started,
            modifiedon: started.unwrap_or(self.createdon),
            completedon: None,
            postponeuntil: None,
            errorcode: None,
            message: None,
            friendlymessage: None,
            executiontimespan_ms: 0,
            ..self.clone()
        })
    }

    /// A new Ready job created now, with defaults for every other column.
    pub fn new(
        name: &str,
        operationtype: OperationType,
        owner: &str,
        owningbusinessunit: &str,
        now: Timestamp,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            name: name.to_string(),
            operationtype,
            status: Status::READY,
            owner: owner.to_string(),
            owningbusinessunit: owningbusinessunit.to_string(),
            regarding: None,
            workflow: None,
            createdon: now,
            startedon: None,
            completedon: None,
            modifiedon: now,
            postponeuntil: None,
            retrycount: 0,
            errorcode: None,
            message: None,
            friendlymessage: None,
            depth: 1,
            correlationid: None,
            dependencytoken: None,
            recurrencepattern: None,
            recurrencestarttime: None,
            executiontimespan_ms: 0,
            data: Vec::new(),
        }
    }

    /// Checks every column against its limit (`docs/limits.md`), and the
    /// columns against each other: times that agree with the status (a
    /// Completed job has `completedon`, no other has).
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |reason: String| Err(DomainError::Invalid { what: "job", reason });
        check_text("name", &self.name, MAX_NAME_CHARS)?;
        if self.owner.is_empty() {
            return bad("no owner".into());
        }
        check_identifier("owner", &self.owner)?;
        check_identifier("owning business unit", &self.owningbusinessunit)?;
        if let Some(r) = &self.regarding {
            r.validate()?;
        }
        if let Some(w) = &self.workflow {
            check_identifier("workflow", w)?;
        }
        if let Some(t) = &self.dependencytoken {
            check_identifier("dependency token", t)?;
        }
        if let Some(m) = &self.message {
            check_len("message", m, MAX_MESSAGE_CHARS)?;
        }
        if let Some(m) = &self.friendlymessage {
            check_len("friendly message", m, MAX_MESSAGE_CHARS)?;
        }
        if let Some(r) = &self.recurrencepattern {
            check_text("recurrence pattern", r, MAX_RECURRENCE_CHARS)?;
        }
        if self.errorcode == Some(super::limits::RESERVED_ERRORCODE) {
            return Err(DomainError::Invalid {
                what: "errorcode",
                reason: format!("{} is reserved (it means no error code)", super::limits::RESERVED_ERRORCODE),
            });
        }
        if self.data.len() > MAX_DATA_BYTES {
            return Err(DomainError::TooLong {
                field: "data",
                max: MAX_DATA_BYTES,
                len: self.data.len(),
                unit: "bytes",
            });
        }
        match (self.status.is_completed(), self.completedon) {
            (true, None) => return bad(format!("{} but no completedon", self.status)),
            (false, Some(_)) => return bad(format!("{} but completedon is set", self.status)),
            _ => {}
        }
        if let Some(s) = self.startedon {
            if s < self.createdon {
                return bad("startedon before createdon".into());
            }
        }
        if let Some(c) = self.completedon {
            if c < self.startedon.unwrap_or(self.createdon) {
                return bad("completedon before the job started".into());
            }
        }
        if self.modifiedon < self.createdon {
            return bad("modifiedon before createdon".into());
        }
        Ok(())
    }
}

/// A workflow definition: runs of it are jobs of type Workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowDefinition {
    /// The definition's id (an identifier), what a job's `workflow` names.
    pub id: String,
    /// Its name, a single line of text.
    pub name: String,
    /// The user its runs are owned by.
    pub owner: String,
    /// Whether the definition is active, kept as the platform keeps it (the
    /// service does not read it).
    pub active: bool,
}

impl WorkflowDefinition {
    /// The id and owner are identifiers, the name a single-line text.
    pub fn validate(&self) -> Result<(), DomainError> {
        check_identifier("workflow id", &self.id)?;
        check_text("workflow name", &self.name, MAX_NAME_CHARS)?;
        check_identifier("workflow owner", &self.owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_catches_what_disagrees() {
        let now = Timestamp::parse("2026-01-31T12:00:00Z").unwrap();
        let mut j = Job::new("x", OperationType::WORKFLOW, "admin", "root", now);
        assert!(j.validate().is_ok());
        assert_eq!(j.id.get_version_num(), 7);
        j.status = Status::SUCCEEDED;
        assert!(j.validate().is_err());
        j.completedon = Some(now.plus_micros(5));
        assert!(j.validate().is_ok());
        j.startedon = Some(now.plus_micros(10));
        assert!(j.validate().is_err(), "completed before it started");
        j.name = "n".repeat(257);
        assert!(j.validate().is_err());
        assert_eq!(Regarding::parse("contact:42").unwrap().to_string(), "contact:42");
        assert!(Regarding::parse("contact").is_err());
    }
}
