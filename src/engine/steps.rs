//! The service's steps on jobs (`ServiceStep`, `Engine::step/steps`): the
//! service's side of the state machine, one batch per scheduler pass. It
//! does not schedule or run anything (that is `crate::service`); it checks
//! and records what the service decided.

use uuid::Uuid;

use super::write::Pending;
use super::Engine;
use crate::domain::{transition, Action, Actor, DomainError, Event, Status, Timestamp, Transition};
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
    /// A service step on one job, by worker `worker`; returns the job's new
    /// status. Refused like a user action when the state machine says no,
    /// and when a Lock or Wake comes before the job's `postponeuntil`.
    pub fn step(&self, worker: &str, id: Uuid, step: ServiceStep) -> Result<Status, Error> {
        self.steps(worker, vec![(id, step)])?.remove(0)
    }

    /// Service steps on many jobs as one atomic batch (one sync): each is
    /// checked against the job's status after the steps before it in the
    /// list (so Lock then Fail of one job is fine); the refused ones are
    /// reported in their place and left out, the rest are written.
    pub fn steps(&self, worker: &str, steps: Vec<(Uuid, ServiceStep)>) -> Result<Vec<Result<Status, Error>>, Error> {
        self.commit(Actor::Worker(worker.to_string()), |state, now| {
            let mut pending = Pending::new(state);
            let mut events = Vec::with_capacity(steps.len());
            let mut out = Vec::with_capacity(steps.len());
            for (id, step) in steps {
                let Some(target) = pending.get(id) else {
                    out.push(Err(Error::JobNotFound(id)));
                    continue;
                };
                match service_transition(id, &target, step, now) {
                    Ok(t) => {
                        out.push(Ok(t.to));
                        pending.moved(&t);
                        events.push(Event::Transition(t));
                    }
                    Err(e) => out.push(Err(e)),
                }
            }
            Ok((events, out))
        })
    }
}

/// The transition a service step makes of a job in `target`'s status, or
/// why it is refused.
fn service_transition(id: Uuid, target: &JobStatus, step: ServiceStep, now: Timestamp) -> Result<Transition, Error> {
    let (from, postponeuntil, retrycount) = (target.status, target.postponeuntil, target.retrycount);
    let action = step.action();
    let to = transition(id, target.operationtype, from, action)?;
    // The queue takes a job only once its time has come; the timer wakes
    // only jobs that have a time (a paused job waits for Resume).
    let not_due = match step {
        ServiceStep::Lock => postponeuntil.is_some_and(|t| t > now),
        ServiceStep::Wake => postponeuntil.is_none_or(|t| t > now),
        _ => false,
    };
    if not_due {
        let when = postponeuntil.map_or("a user resumes it".to_string(), |t| t.to_rfc3339());
        return Err(
            DomainError::Invalid { what: "service step", reason: format!("job {id} is not due until {when}") }.into()
        );
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
