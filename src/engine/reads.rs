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
        get_in(&self.engine.state(), &self.engine.inner.log, &self.user, id)
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
        history_in(&self.engine.state(), &self.engine.inner.log, &self.user, id)
    }

    /// One page of the jobs the user may see, newest `createdon` first.
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        list_in(&self.engine.state(), &self.engine.inner.log, &self.user, filter, after, limit)
    }

    /// How many jobs the user may see match `filter`.
    pub fn count(&self, filter: &Filter) -> Result<usize, Error> {
        count_in(&self.engine.state(), &self.user, filter)
    }
}

/// The reads of jobs a user may make, by a [`Session`] or by a
/// [`super::Reader`] of a store opened for reading jobs alone
/// ([`super::Views`]): what `joblog list` and `joblog show` need.
pub trait Reads {
    /// One job, if the user may read it.
    fn get(&self, id: Uuid) -> Result<Job, Error>;
    /// Every transition of a job, oldest first.
    fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, Error>;
    /// One page of the jobs the user may see, newest `createdon` first,
    /// and the cursor after it when there may be more.
    fn list(&self, filter: &Filter, after: Option<&Cursor>, limit: usize) -> Result<(Vec<Job>, Option<Cursor>), Error>;
    /// How many jobs the user may see match `filter`.
    fn count(&self, filter: &Filter) -> Result<usize, Error>;
}

impl Reads for Session {
    fn get(&self, id: Uuid) -> Result<Job, Error> {
        Session::get(self, id)
    }

    fn history(&self, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
        Session::history(self, id)
    }

    fn list(&self, filter: &Filter, after: Option<&Cursor>, limit: usize) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        Session::list(self, filter, after, limit)
    }

    fn count(&self, filter: &Filter) -> Result<usize, Error> {
        Session::count(self, filter)
    }
}

/// Job `id` in `state` (the current one, the one a write leaves, or a
/// [`super::Views`]'), if `user` may read it.
pub(super) fn get_in(state: &Projection, log: &Log, user: &str, id: Uuid) -> Result<Job, Error> {
    let target = state.write_target(id)?.ok_or_else(|| DomainError::job_not_found(id))?;
    state.directory().check(user, Privilege::Read, Some((&target.owner, &target.owningbusinessunit)))?;
    state.job(id, log)
}

/// Every transition of job `id` in `state`, oldest first, if `user` may
/// read it.
pub(super) fn history_in(state: &Projection, log: &Log, user: &str, id: Uuid) -> Result<Vec<HistoryEntry>, Error> {
    get_in(state, log, user, id)?;
    let mut out = Vec::new();
    for (seq, env) in state.history(id, log)? {
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
            Event::JobResubmitted { new, .. } => note(seq, env.at, env.actor, &out, format!("resubmitted as {new}")),
            _ => continue,
        };
        out.push(entry);
    }
    Ok(out)
}

/// One page of the jobs of `state` that `user` may see.
pub(super) fn list_in(
    state: &Projection,
    log: &Log,
    user: &str,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<(Vec<Job>, Option<Cursor>), Error> {
    state.query_jobs(filter, &visibility(state, user), after, limit, log)
}

/// How many jobs of `state` that `user` may see match `filter`.
pub(super) fn count_in(state: &Projection, user: &str, filter: &Filter) -> Result<usize, Error> {
    state.count(filter, &visibility(state, user))
}
