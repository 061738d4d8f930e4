//! The service's steps on jobs (`ServiceStep`, taken through a [`Worker`]:
//! `Engine::worker`, then `step`/`steps`): the service's side of the state
//! machine, one batch per scheduler pass. It does not schedule or run
//! anything (that is `crate::service`); it checks and records what the
//! service decided. A session (a user) cannot take these steps, and a
//! worker cannot take a user's actions.

use uuid::Uuid;

use super::write::Pending;
use super::Engine;
use crate::domain::{transition_by, Action, Actor, DomainError, Event, Status, Timestamp, Transition};
use crate::error::Error;
use crate::projection::JobStatus;

/// A step the service takes on a job (the service's side of the state
/// machine; `docs/domain.md` §5). Workers act as `Actor::Worker`, without a
/// user's privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStep {
    /// Take a Ready job whose `postponeuntil` has passed.
    Lock,
    /// The run succeeded.
    Succeed,
    /// The run failed for good.
    Fail {
        /// The job's `errorcode`.
        code: i32,
        /// The job's `message`.
        message: String,
    },
    /// The run waits until a time.
    Wait {
        /// When it becomes Ready again.
        until: Timestamp,
        /// Why it waits, if said.
        message: Option<String>,
    },
    /// The run waits for someone (a data error, a condition): Suspended /
    /// Waiting with no time, until a user resumes it.
    Suspend {
        /// What it waits for.
        message: String,
    },
    /// A transient failure: retry at `until`, one more `retrycount`.
    Retry {
        /// When it is tried again.
        until: Timestamp,
        /// Why the run failed.
        message: String,
    },
    /// The worker stopped at a checkpoint after a pause (or postpone).
    StopPausing {
        /// The job's message, if any.
        message: Option<String>,
    },
    /// The worker stopped after a cancel.
    StopCanceling {
        /// The job's message, if any.
        message: Option<String>,
    },
    /// The worker's lease was lost.
    ReturnToReady {
        /// Why it was returned.
        message: String,
    },
    /// A Suspended job's `postponeuntil` has passed.
    Wake,
    /// Hold a Ready job back until a time (back-off of a failing workflow).
    Defer {
        /// When it may run.
        until: Timestamp,
        /// Why it is held back.
        message: String,
    },
    /// Cancel a Ready job that must not run (the loop guard).
    Stop {
        /// Why it must not run.
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

impl Engine {
    /// The handle through which a service on host `name` takes its steps
    /// (recorded as `Actor::Worker(name)`). The [`crate::Service`] makes its
    /// own; an embedder driving jobs by hand (or a test) uses this.
    pub fn worker(&self, name: &str) -> Worker {
        Worker { engine: self.clone(), name: name.to_string() }
    }
}

/// The service's side of the state machine on one engine: steps taken as
/// worker `name`, without a user's privileges (`docs/domain.md` §5).
///
/// ```
/// # use std::sync::Arc;
/// # use joblog::{Config, Engine, NewJob, ServiceStep, Status};
/// # use joblog::domain::{ManualClock, OperationType, Timestamp};
/// # let dir = tempfile::tempdir().unwrap();
/// # let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-31T12:00:00Z").unwrap()));
/// let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
/// let job = engine.session("admin").unwrap().create(NewJob::new("e", OperationType::BULK_EMAIL)).unwrap();
/// let worker = engine.worker("host-1");
/// assert_eq!(worker.step(job.id, ServiceStep::Lock).unwrap(), Status::IN_PROGRESS);
/// ```
#[derive(Clone)]
pub struct Worker {
    engine: Engine,
    name: String,
}

impl Worker {
    /// The name its steps are recorded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A service step on one job; returns the job's new status. Refused
    /// like a user action when the state machine says no, and when a Lock
    /// or Wake comes before the job's `postponeuntil`.
    pub fn step(&self, id: Uuid, step: ServiceStep) -> Result<Status, Error> {
        self.steps(vec![(id, step)])?.remove(0)
    }

    /// One run's deletion of Bulk Delete job `job` (type 13): at most
    /// `limit` of the jobs its criteria match, recorded as this worker's,
    /// with the job as the deletion's definition. The job's owner must hold
    /// Delete at Organization depth (a Bulk Delete job deletes other users'
    /// jobs too). The service's own runs record the owner instead.
    pub fn bulk_delete(&self, job: Uuid, limit: u64) -> Result<crate::domain::Deletion, Error> {
        let bulk = self.engine.state().job(job)?;
        let criteria = crate::domain::bulk_delete_criteria(&bulk).ok_or(DomainError::Invalid {
            what: "bulk delete",
            reason: format!("job {job} holds no deletion criteria (is it a Bulk Delete job?)"),
        })?;
        self.engine.delete(Actor::Worker(self.name.clone()), &bulk.owner, &criteria, limit, Some(job))
    }

    /// Service steps on many jobs as one atomic batch (one sync): each is
    /// checked against the job's status after the steps before it in the
    /// list (so Lock then Fail of one job is fine); the refused ones are
    /// reported in their place and left out, the rest are written.
    pub fn steps(&self, steps: Vec<(Uuid, ServiceStep)>) -> Result<Vec<Result<Status, Error>>, Error> {
        let by = Actor::Worker(self.name.clone());
        self.engine.commit(by.clone(), |state, now| {
            let mut pending = Pending::new(state);
            let mut events = Vec::with_capacity(steps.len());
            let mut out = Vec::with_capacity(steps.len());
            for (id, step) in steps {
                let Some(target) = pending.get(id)? else {
                    out.push(Err(Error::from(DomainError::job_not_found(id))));
                    continue;
                };
                match service_transition(&by, id, &target, step, now) {
                    Ok(t) => {
                        out.push(Ok(t.to));
                        pending.moved(&t)?;
                        events.push(Event::Transition(t));
                    }
                    Err(e) => out.push(Err(e)),
                }
            }
            Ok((events, out))
        })
    }
}

/// The transition a service step by worker `by` makes of a job in
/// `target`'s status, or why it is refused.
fn service_transition(
    by: &Actor,
    id: Uuid,
    target: &JobStatus,
    step: ServiceStep,
    now: Timestamp,
) -> Result<Transition, Error> {
    let (from, postponeuntil, retrycount) = (target.status, target.postponeuntil, target.retrycount);
    let action = step.action();
    let to = transition_by(by, id, target.operationtype, from, action)?;
    // The queue takes a job only once its time has come; the timer wakes
    // only jobs that have a time (a paused job waits for Resume).
    let not_due = match step {
        ServiceStep::Lock => postponeuntil.is_some_and(|t| t > now),
        ServiceStep::Wake => postponeuntil.is_none_or(|t| t > now),
        _ => false,
    };
    if not_due {
        return Err(DomainError::NotDue { job: id, until: postponeuntil }.into());
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
