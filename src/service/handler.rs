//! What runs a job: handlers, the context they get, and what they return.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::{Job, OperationType, Status, Timestamp};
use crate::engine::Engine;

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job did its work: it completes as Succeeded.
    Succeeded,
    /// A fatal error: the job fails with this code and message.
    Failed {
        /// The job's `errorcode`.
        code: i32,
        /// The job's `message`.
        message: String,
    },
    /// Try again later (server busy, timeout, network): retried with
    /// growing delays, then failed.
    Transient(String),
    /// The run waits until a time; the timer makes it Ready again then.
    Wait(Timestamp),
    /// The run waits for someone: a data error to fix, a condition to
    /// meet, named in the message. The job stays Suspended / Waiting until
    /// a user resumes it.
    Suspend(String),
    /// The handler stopped at a checkpoint because
    /// [`JobContext::stop_requested`] said so; the job ends as the request
    /// asks (Canceled, Suspended, or back to Ready for a shutdown).
    Stopped,
}

/// Why a handler is asked to stop at its next checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// A user canceled the job.
    Cancel,
    /// A user paused (or postponed) the job.
    Pause,
    /// The service is shutting down.
    Shutdown,
}

/// Runs jobs of one workflow definition or one System Job Type.
pub trait Handler: Send + Sync {
    /// Runs one job, on a worker thread of the service, and says how it went.
    /// Long work should call [`JobContext::stop_requested`] now and then and
    /// return [`Outcome::Stopped`] when it says so. A panic fails the run
    /// (error code [`codes::HANDLER_PANICKED`](crate::domain::codes::HANDLER_PANICKED), −1008) and the worker goes on.
    fn run(&self, ctx: &JobContext<'_>) -> Outcome;
}

impl<F: Fn(&JobContext<'_>) -> Outcome + Send + Sync> Handler for F {
    fn run(&self, ctx: &JobContext<'_>) -> Outcome {
        self(ctx)
    }
}

/// What a handler sees of its job and the service.
pub struct JobContext<'a> {
    job: Job,
    engine: &'a Engine,
    shutdown: &'a AtomicBool,
    progress: &'a Mutex<HashMap<uuid::Uuid, String>>,
}

impl<'a> JobContext<'a> {
    pub(crate) fn new(
        job: Job,
        engine: &'a Engine,
        shutdown: &'a AtomicBool,
        progress: &'a Mutex<HashMap<uuid::Uuid, String>>,
    ) -> Self {
        Self { job, engine, shutdown, progress }
    }

    /// The job's columns and data as they were when it was taken.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The cancellation token: whether the handler should stop at this
    /// checkpoint, and why. A handler that never asks runs to its end.
    pub fn stop_requested(&self) -> Option<StopRequest> {
        match self.engine.state().status_of(self.job.id).ok().flatten() {
            Some(Status::CANCELING) => Some(StopRequest::Cancel),
            Some(Status::PAUSING) => Some(StopRequest::Pause),
            _ if self.shutdown.load(Ordering::Relaxed) => Some(StopRequest::Shutdown),
            _ => None,
        }
    }

    /// Reports progress (shown by [`Service::running`](super::Service::running)).
    pub fn progress(&self, message: &str) {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).insert(self.job.id, message.to_string());
    }

    /// The service's clock.
    pub fn now(&self) -> Timestamp {
        self.engine.now()
    }
}

/// Handlers by workflow definition and by System Job Type; a workflow's own
/// handler comes first.
#[derive(Default, Clone)]
pub struct Registry {
    by_workflow: HashMap<String, Arc<dyn Handler>>,
    by_type: HashMap<OperationType, Arc<dyn Handler>>,
}

impl Registry {
    /// No handlers: every job would fail with error code
    /// [`codes::NO_HANDLER`](crate::domain::codes::NO_HANDLER) (−1001).
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the jobs of workflow definition `id` with `h` (before any handler
    /// of their type).
    pub fn workflow(mut self, id: &str, h: impl Handler + 'static) -> Self {
        self.by_workflow.insert(id.to_string(), Arc::new(h));
        self
    }

    /// Runs the jobs of System Job Type `t` with `h` (unless their workflow has
    /// a handler of its own).
    pub fn operation(mut self, t: OperationType, h: impl Handler + 'static) -> Self {
        self.by_type.insert(t, Arc::new(h));
        self
    }

    pub(crate) fn find(&self, job: &Job) -> Option<Arc<dyn Handler>> {
        job.workflow
            .as_ref()
            .and_then(|w| self.by_workflow.get(w))
            .or_else(|| self.by_type.get(&job.operationtype))
            .cloned()
    }
}
