//! Reading jobs as a user sees them: `get`, `history` (`HistoryEntry`),
//! `list` (pages) and `count`, each limited by the user's Read privilege.
//! It writes nothing.

use uuid::Uuid;

use super::{visibility, Session};
use crate::domain::{Action, Actor, DomainError, Event, Job, Privilege, Status, Timestamp};
use crate::error::Error;
use crate::log::Log;
use crate::projection::query::{Cursor, Filter};
use crate::projection::Projection;

/// One line of a job's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The event's sequence number.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// `None` for the creation (or import) of the job.
    pub action: Option<Action>,
    /// The status before (`None` for the creation).
    pub from: Option<Status>,
    /// The status after.
    pub status: Status,
    /// The job's `postponeuntil` after.
    pub postponeuntil: Option<Timestamp>,
    /// The message the event set, if any.
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

impl Session {
    /// One job, if the user may read it.
    pub fn get(&self, id: Uuid) -> Result<Job, Error> {
        self.job_in(&self.engine.state(), &self.engine.inner.log, id)
    }

    /// Job `id` in `state` (the current one, or the one a write of this
    /// session leaves), if this user may read it.
    pub(super) fn job_in(&self, state: &Projection, log: &Log, id: Uuid) -> Result<Job, Error> {
        let target = state.write_target(id)?.ok_or_else(|| DomainError::job_not_found(id))?;
        state.directory().check(&self.user, Privilege::Read, Some((&target.owner, &target.owningbusinessunit)))?;
        state.job(id, log)
    }

    /// Whether the user may read job `id` now (false for a job that does
    /// not exist): a cheap check, no column is read.
    pub fn may_read(&self, id: Uuid) -> bool {
        let state = self.engine.state();
        state.write_target(id).ok().flatten().is_some_and(|t| {
            state.directory().check(&self.user, Privilege::Read, Some((&t.owner, &t.owningbusinessunit))).is_ok()
        })
    }

    /// Every transition of a job, oldest first.
    pub fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
        self.get(id)?;
        let state = self.engine.state();
        let mut out = Vec::new();
        for (seq, env) in state.history(id)? {
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
        state.query_jobs(filter, &visibility(&state, &self.user), after, limit)
    }

    /// How many jobs the user may see match `filter`.
    pub fn count(&self, filter: &Filter) -> Result<usize, Error> {
        let state = self.engine.state();
        state.count(filter, &visibility(&state, &self.user))
    }
}
