//! The service that runs jobs (`domain.md` §5-§6), every step recorded
//! through the engine as an event.
//!
//! * `handler` — handlers, the context they get, what they return.
//! * `command` — the built-in handler of command jobs.
//! * `bulk`    — the built-in handler of Bulk Delete jobs.
//! * `policy`  — retries, back-off and the loop guard, with their formulas.
//!
//! One scheduler (the thread that calls [`Service::run`]) and `workers`
//! worker threads, fed through crossbeam channels. Each pass of the
//! scheduler writes one atomic batch of steps for everything that happened
//! since the last: the outcomes of finished runs, timers that came due, and
//! the Ready jobs it takes (Locked / In Progress, oldest `createdon` first,
//! one at a time per dependency token). So a busy service syncs twice per
//! pass, not twice per job.
//!
//! **Leases.** Only one process can open a data directory (the log's lock),
//! so a Locked job's lease is held by the process that locked it and ends
//! with it. When the service starts, every job still Locked belongs to a
//! run that died: In Progress ones return to Ready, Pausing ones stop as
//! Suspended, Canceling ones end Canceled, each with the reason in its
//! history. Nothing else returns leases: opening the store for any other
//! command never changes a job, and a job is never run twice at once.
//! Before it returns any lease, the service ends every process an earlier
//! run of this store left behind (found by the marks command runs carry,
//! `procs`; kill -9 of the service leaves the command's children
//! running), and the job's history names them. No field of the lease
//! event is needed for that: the marks are unique to the store and the
//! job, so a reused pid cannot be mistaken for a run's process.

mod bulk;
mod command;
mod handler;
mod policy;
mod procs;

pub use command::{
    command_data, command_data_with_timeout, command_of, command_timeout_of, CommandHandler, COMMAND_PREFIX, DRAIN,
    EXIT_TRANSIENT, MAX_TIMEOUT_SECS,
};
pub use handler::{Handler, JobContext, Outcome, Registry, StopRequest};
pub use policy::{BackoffPolicy, LoopGuard, RetryPolicy};
pub use procs::{JOB_VAR, STORE_VAR};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::domain::{codes, Job, Privilege, Status, StorePolicy, Timestamp};
use crate::engine::{bulk_delete_criteria, Engine, ServiceStep};
use crate::error::Error;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub workers: usize,
    /// The worker host's id, recorded as the actor of every step.
    pub host: String,
    pub retry: RetryPolicy,
    pub backoff: BackoffPolicy,
    pub loop_guard: LoopGuard,
    /// How long the scheduler waits for a run to finish before it looks
    /// for due jobs again (wall-clock time).
    pub poll: Duration,
    /// Most jobs taken in one pass.
    pub max_batch: usize,
    /// Most jobs taken and not yet finished (running or queued for a
    /// worker). Deeper queues let one pass (one sync) take and settle
    /// more jobs at once.
    pub queue_depth: usize,
    /// Install the platform's default recurring bulk deletion ("Delete
    /// completed system jobs") on a store that never had it.
    pub install_defaults: bool,
    /// The longest a command job may run before it is ended and fails
    /// (`None`: no default timeout for command jobs).
    pub command_timeout: Option<std::time::Duration>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            host: format!("host-{}", std::process::id()),
            retry: RetryPolicy::default(),
            backoff: BackoffPolicy::default(),
            loop_guard: LoopGuard::default(),
            poll: Duration::from_millis(20),
            max_batch: 512,
            queue_depth: 256,
            install_defaults: true,
            command_timeout: None,
        }
    }
}

impl ServiceConfig {
    /// This configuration with the policy a store sets (`joblog config
    /// set`; keys in `domain::config`) in place of its own numbers: a key
    /// the store does not set keeps this configuration's value. A running
    /// service applies its store's policy this way at start and again
    /// whenever it changes.
    pub fn with_store_policy(mut self, policy: &StorePolicy) -> Self {
        let n = |key: &str| policy.get_set(key);
        let n32 = |key: &str| n(key).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        let r = &mut self.retry;
        r.max_retries = n32("retry.max_retries").unwrap_or(r.max_retries);
        r.base_secs = n32("retry.base_secs").unwrap_or(r.base_secs);
        r.factor = n32("retry.factor").unwrap_or(r.factor);
        r.cap_secs = n32("retry.cap_secs").unwrap_or(r.cap_secs);
        let b = &mut self.backoff;
        b.threshold = n32("backoff.threshold").unwrap_or(b.threshold);
        b.base_secs = n32("backoff.base_secs").unwrap_or(b.base_secs);
        b.factor = n32("backoff.factor").unwrap_or(b.factor);
        b.cap_secs = n32("backoff.cap_secs").unwrap_or(b.cap_secs);
        b.jitter = n("backoff.jitter_percent").map_or(b.jitter, |p| p as f64 / 100.0);
        let g = &mut self.loop_guard;
        g.max_runs_per_row = n32("loop_guard.max_runs_per_row").unwrap_or(g.max_runs_per_row);
        g.window_secs = n32("loop_guard.window_secs").unwrap_or(g.window_secs);
        g.max_depth = n32("loop_guard.max_depth").unwrap_or(g.max_depth);
        if let Some(secs) = n("command.timeout_secs") {
            self.command_timeout = Some(Duration::from_secs(secs));
        }
        self
    }
}

/// The numbers in force in a running service: its configuration's, with
/// its store's policy over them, as of the policy change `generation`.
#[derive(Debug, Clone, Copy)]
struct Live {
    generation: u64,
    retry: RetryPolicy,
    backoff: BackoffPolicy,
    loop_guard: LoopGuard,
    command_timeout: Option<Duration>,
}

impl Live {
    fn of(c: &ServiceConfig, generation: u64) -> Self {
        Self {
            generation,
            retry: c.retry,
            backoff: c.backoff,
            loop_guard: c.loop_guard,
            command_timeout: c.command_timeout,
        }
    }
}

/// When [`Service::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunUntil {
    /// Runs what is due now, waits for those runs, and returns.
    Once,
    /// Returns when nothing is running and nothing is due.
    Idle,
    /// Runs for this long (wall-clock), then shuts down gracefully.
    For(Duration),
    /// Runs until [`Service::stop`].
    Stopped,
}

/// What a run of the service did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs handed to handlers.
    pub ran: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Runs that ended waiting (a time, a retry, a pause, a data error).
    pub waiting: u64,
    pub canceled: u64,
    /// Locked jobs of a dead service returned (or stopped) at start.
    pub recovered: u64,
    /// Ready jobs held back by a workflow's back-off.
    pub deferred: u64,
    /// Jobs stopped by the loop guard.
    pub loop_stopped: u64,
    /// Runs returned to Ready by a shutdown.
    pub returned: u64,
}

/// A workflow's back-off, as `stats` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowBackoff {
    pub workflow: String,
    pub consecutive_failures: u32,
    /// Its jobs are held until then (`None`: it runs normally).
    pub held_until: Option<Timestamp>,
}

/// The back-off of every workflow that failed at least once in a row, from
/// the store alone (what `stats` shows whether the service runs or not).
pub fn backoff_report(engine: &Engine, policy: &BackoffPolicy) -> Vec<WorkflowBackoff> {
    let state = engine.state();
    let now = engine.now();
    state
        .workflows()
        .keys()
        .filter_map(|w| {
            let (n, last) = state.consecutive_failures(w, FAILURE_SCAN);
            (n > 0).then(|| WorkflowBackoff {
                workflow: w.clone(),
                consecutive_failures: n,
                held_until: last.and_then(|l| policy.until(w, n, l)).filter(|&t| t > now),
            })
        })
        .collect()
}

/// Completed jobs looked at to count a workflow's failures in a row (the
/// back-off is at its cap long before).
const FAILURE_SCAN: usize = 1000;

/// In the message of every step that returns a dead service's job.
const LEASE_LOST: &str = "lease lost";

/// How a run ended: its handler's outcome, or its service died (with
/// the pids of its processes that were still running and were ended).
enum End {
    Run(Outcome),
    LeaseLost(Vec<i32>),
}

/// The service on one engine.
pub struct Service<'e> {
    engine: &'e Engine,
    config: ServiceConfig,
    registry: Registry,
    commands: CommandHandler,
    shutdown: AtomicBool,
    progress: Mutex<HashMap<Uuid, String>>,
    /// Per workflow: failures in a row and when the last one happened.
    failures: Mutex<HashMap<String, (u32, Timestamp)>>,
    /// The policy in force (see [`ServiceConfig::with_store_policy`]).
    live: Mutex<Live>,
}

impl<'e> Service<'e> {
    pub fn new(engine: &'e Engine, config: ServiceConfig, registry: Registry) -> Self {
        let commands = CommandHandler {
            timeout: config.command_timeout,
            store: procs::store_mark(engine.dir()),
            ..CommandHandler::default()
        };
        Self {
            engine,
            registry,
            commands,
            shutdown: AtomicBool::new(false),
            progress: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            live: Mutex::new(Live::of(&config, u64::MAX)),
            config,
        }
    }

    /// The numbers in force now.
    fn live(&self) -> Live {
        *self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the store's policy again if it changed since it was last
    /// taken (one comparison per pass).
    fn refresh_policy(&self) {
        let state = self.engine.state();
        let policy = state.policy();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.generation == policy.generation() {
            return;
        }
        *live = Live::of(&self.config.clone().with_store_policy(policy), policy.generation());
    }

    /// The longest a command job may run now (the store's policy, else the
    /// configuration's; `None`: no limit).
    pub fn command_timeout(&self) -> Option<Duration> {
        self.live().command_timeout
    }

    /// Asks a running service to stop: no new job is taken, running
    /// handlers are asked to stop at their next checkpoint (those that
    /// stop go back to Ready), and [`Service::run`] returns once every run
    /// has ended and been recorded.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// Jobs running now, with their last reported progress.
    pub fn running(&self) -> Vec<(Uuid, String)> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Runs jobs until `until` says to return.
    pub fn run(&self, until: RunUntil) -> Result<Summary, Error> {
        let workers = self.config.workers.max(1);
        if workers > crate::domain::limits::MAX_WORKERS {
            return Err(crate::domain::DomainError::Invalid {
                what: "workers",
                reason: format!("{workers}: a service runs at most {} workers", crate::domain::limits::MAX_WORKERS),
            }
            .into());
        }
        let _one = self.engine.claim_service()?;
        self.shutdown.store(false, Ordering::Relaxed);
        if self.config.install_defaults {
            self.engine.install_default_bulk_delete()?;
        }
        let mut summary = Summary::default();
        self.refresh_policy();
        self.recover(&mut summary)?;
        let started = Instant::now();
        let depth = self.config.queue_depth.max(workers);
        let (work_tx, work_rx) = crossbeam_channel::bounded::<Job>(depth);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<(Job, Outcome)>();
        std::thread::scope(|scope| {
            for i in 0..workers {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                let spawned =
                    std::thread::Builder::new().name(format!("joblog-worker-{i}")).spawn_scoped(scope, move || {
                        for job in work_rx {
                            let outcome = self.execute(&job);
                            if done_tx.send((job, outcome)).is_err() {
                                break;
                            }
                        }
                    });
                if let Err(e) = spawned {
                    // No job was handed out yet: the workers started so far
                    // end when the queue closes, and nothing was written.
                    drop(work_tx);
                    return Err(Error::Io { path: format!("worker thread {} of {workers}", i + 1).into(), source: e });
                }
            }
            drop(done_tx);
            let result = self.schedule(until, started, &work_tx, &done_rx, &mut summary);
            // Whatever happened, let the workers finish and record them.
            drop(work_tx);
            if result.is_err() {
                self.stop();
            }
            result
        })?;
        Ok(summary)
    }

    /// The scheduler's loop.
    fn schedule(
        &self,
        until: RunUntil,
        started: Instant,
        work: &crossbeam_channel::Sender<Job>,
        done: &crossbeam_channel::Receiver<(Job, Outcome)>,
        summary: &mut Summary,
    ) -> Result<(), Error> {
        // Running jobs, with their workflow.
        let mut in_flight: HashMap<Uuid, Option<String>> = HashMap::new();
        let mut first_pass = true;
        // A run's end received while waiting, for the next pass.
        let mut pending: Vec<(Job, Outcome)> = Vec::new();
        loop {
            self.refresh_policy();
            if let RunUntil::For(d) = until {
                if started.elapsed() >= d {
                    self.stop();
                }
            }
            let stopping = self.shutdown.load(Ordering::Relaxed);
            let finished: Vec<(Job, End)> =
                pending.drain(..).chain(done.try_iter()).map(|(job, o)| (job, End::Run(o))).collect();
            for (job, _) in &finished {
                in_flight.remove(&job.id);
                self.progress.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.id);
            }
            let mut steps: Vec<(Uuid, ServiceStep)> = Vec::new();
            let now = self.engine.now();
            let dispatch = !stopping && (until != RunUntil::Once || first_pass);
            let mut taken = Vec::new();
            if dispatch {
                let timers: Vec<Uuid> = self.engine.state().due(now).take(self.config.max_batch).collect();
                steps.extend(timers.into_iter().map(|id| (id, ServiceStep::Wake)));
                let room = self.config.queue_depth.max(self.config.workers.max(1)).saturating_sub(in_flight.len());
                taken = self.pick(now, room, &in_flight, &mut steps)?;
            }
            first_pass = false;
            let busy = !steps.is_empty();
            let results = self.record(&finished, steps.clone(), summary)?;
            for ((_, step), r) in steps.iter().zip(&results) {
                match (step, r) {
                    (ServiceStep::Defer { .. }, Ok(_)) => summary.deferred += 1,
                    (ServiceStep::Stop { .. }, Ok(_)) => summary.loop_stopped += 1,
                    (ServiceStep::Fail { .. }, Ok(_)) => summary.failed += 1,
                    _ => {}
                }
            }
            let locked: HashSet<Uuid> = steps
                .iter()
                .zip(&results)
                .filter(|((_, s), r)| *s == ServiceStep::Lock && r.is_ok())
                .map(|((id, _), _)| *id)
                .collect();
            for job in taken.into_iter().filter(|j| locked.contains(&j.id)) {
                in_flight.insert(job.id, job.workflow.clone());
                summary.ran += 1;
                work.send(job).map_err(|_| Error::Corrupt("the workers stopped".into()))?;
            }
            if in_flight.is_empty() && !busy && finished.is_empty() {
                let idle = match until {
                    RunUntil::Once | RunUntil::Idle => true,
                    RunUntil::For(_) | RunUntil::Stopped => stopping,
                };
                if idle {
                    return Ok(());
                }
            }
            if !busy && finished.is_empty() {
                // Nothing to do this pass: wait for a run to end, or poll.
                pending.extend(done.recv_timeout(self.config.poll).ok());
            }
        }
    }

    /// Returns the jobs a dead service left Locked (see the module docs),
    /// once every process its runs left behind has ended.
    fn recover(&self, summary: &mut Summary) -> Result<(), Error> {
        let mut outlived = procs::find(&self.commands.store, None);
        if !outlived.is_empty() {
            outlived.sort_by_key(|p| p.pid());
        }
        let (ended, left) = procs::end(outlived, procs::END_WAIT);
        if !left.is_empty() {
            return Err(Error::RunsOutlived { pids: left });
        }
        let locked: Vec<Job> = {
            let s = self.engine.state();
            let ids: Vec<Uuid> = [Status::IN_PROGRESS, Status::PAUSING, Status::CANCELING]
                .into_iter()
                .flat_map(|status| s.in_status(status).collect::<Vec<_>>())
                .collect();
            ids.into_iter().map(|id| s.job(id, self.engine.log())).collect::<Result<_, _>>()?
        };
        for chunk in locked.chunks(self.config.max_batch.max(1) * 8) {
            let ended: Vec<(Job, End)> = chunk
                .iter()
                .map(|j| (j.clone(), End::LeaseLost(ended.get(&Some(j.id)).cloned().unwrap_or_default())))
                .collect();
            self.record(&ended, Vec::new(), summary)?;
        }
        Ok(())
    }

    /// Writes how the `ended` runs ended, and the `other` steps, as one
    /// batch. An end is decided from the job's status when it is written;
    /// one refused because a user acted on the job meanwhile (a cancel
    /// between the decision and the write) is decided again on the new
    /// status and written in the next batch, so no run is left Locked.
    /// Returns the results of `other`, in order.
    fn record(
        &self,
        ended: &[(Job, End)],
        other: Vec<(Uuid, ServiceStep)>,
        summary: &mut Summary,
    ) -> Result<Vec<Result<Status, Error>>, Error> {
        let mut todo: Vec<&(Job, End)> = ended.iter().collect();
        let mut other = Some(other);
        let mut other_results = Vec::new();
        for _ in 0..16 {
            let decided: Vec<(&(Job, End), ServiceStep)> =
                todo.iter().filter_map(|e| self.settle(&e.0, &e.1).map(|step| (*e, step))).collect();
            let mut steps: Vec<(Uuid, ServiceStep)> = decided.iter().map(|(e, step)| (e.0.id, step.clone())).collect();
            let n = steps.len();
            steps.extend(other.take().unwrap_or_default());
            if steps.is_empty() {
                break;
            }
            let mut results = self.engine.steps(&self.config.host, steps)?;
            if other_results.is_empty() {
                other_results = results.split_off(n);
            }
            todo.clear();
            for ((e, step), r) in decided.into_iter().zip(results) {
                match r {
                    Ok(_) => self.count(&e.0, &step, summary),
                    Err(_) => todo.push(e),
                }
            }
            if todo.is_empty() {
                break;
            }
        }
        Ok(other_results)
    }
    /// Chooses up to `room` Ready jobs to run, oldest first, and the steps
    /// for those that must not run (loop guard, owners, back-off).
    fn pick(
        &self,
        now: Timestamp,
        room: usize,
        in_flight: &HashMap<Uuid, Option<String>>,
        steps: &mut Vec<(Uuid, ServiceStep)>,
    ) -> Result<Vec<Job>, Error> {
        // A workflow in back-off runs one job at a time (a probe) once its
        // hold has passed, until one succeeds: its other jobs wait for the
        // probe's outcome instead of all failing at once.
        let mut probing: HashSet<String> = in_flight.values().flatten().cloned().collect();
        let mut taken = Vec::new();
        if room == 0 {
            return Ok(taken);
        }
        let state = self.engine.state();
        let log = self.engine.log();
        let guard = self.live().loop_guard;
        let candidates: Vec<Uuid> = state.ready().take(self.config.max_batch.max(room) * 4).collect();
        for id in candidates {
            if taken.len() >= room || steps.len() >= self.config.max_batch {
                break;
            }
            if in_flight.contains_key(&id) || !state.is_token_head(id) {
                continue;
            }
            let job = state.job(id, log)?;
            if job.postponeuntil.is_some_and(|t| t > now) {
                continue;
            }
            if job.depth > guard.max_depth {
                let message = format!(
                    "canceled by the loop guard: depth {} is more than {} (a chain of workflows that start each other)",
                    job.depth, guard.max_depth
                );
                steps.push((id, ServiceStep::Stop { message }));
                continue;
            }
            if let (Some(w), Some(r)) = (&job.workflow, &job.regarding) {
                let runs = state.runs_on_row_within(&r.to_string(), w, &job, i64::from(guard.window_secs) * 1_000_000);
                if runs > guard.max_runs_per_row as usize {
                    let message = format!(
                        "canceled by the loop guard: workflow {w} started {runs} times on {r} within {} s (the limit is {})",
                        guard.window_secs, guard.max_runs_per_row
                    );
                    steps.push((id, ServiceStep::Stop { message }));
                    continue;
                }
            }
            if let Some((code, message)) = owner_problem(&state, &job) {
                steps.push((id, ServiceStep::Lock));
                steps.push((id, ServiceStep::Fail { code, message }));
                continue;
            }
            if let Some(w) = &job.workflow {
                if let Some(until) = self.held_until(&state, w) {
                    if until <= now && !probing.insert(w.clone()) {
                        continue;
                    }
                    if until > now {
                        let (n, _) = self.failures_of(&state, w);
                        let message = format!(
                            "workflow {w} failed {n} times in a row; its jobs are held until {} (back-off)",
                            until.to_rfc3339()
                        );
                        steps.push((id, ServiceStep::Defer { until, message }));
                        continue;
                    }
                }
            }
            steps.push((id, ServiceStep::Lock));
            taken.push(job);
        }
        Ok(taken)
    }

    /// Runs one job's handler.
    fn execute(&self, job: &Job) -> Outcome {
        if job.operationtype == crate::domain::OperationType::BULK_DELETE && bulk_delete_criteria(job).is_some() {
            return bulk::run(self.engine, job);
        }
        let ctx = JobContext::new(job.clone(), self.engine, &self.shutdown, &self.progress);
        let handler: Option<Arc<dyn Handler>> = if command_of(job).is_some() {
            Some(Arc::new(CommandHandler { timeout: self.command_timeout(), ..self.commands.clone() }))
        } else {
            self.registry.find(job)
        };
        match handler {
            Some(h) => h.run(&ctx),
            None => Outcome::Failed {
                code: codes::NO_HANDLER,
                message: match &job.workflow {
                    Some(w) => format!("no handler is registered for workflow {w}"),
                    None => {
                        format!("no handler is registered for System Job Type {}", job.operationtype.display_name())
                    }
                },
            },
        }
    }

    /// The step that records how a run ended, given what users asked of
    /// the job meanwhile (its status now); `None` when there is nothing to
    /// record.
    fn settle(&self, job: &Job, end: &End) -> Option<ServiceStep> {
        let status = self.engine.state().status_of(job.id)?;
        let now = self.engine.now();
        let outcome = match end {
            End::Run(o) => o,
            End::LeaseLost(pids) => {
                let mut why = format!("the service running it stopped before it finished ({LEASE_LOST})");
                if !pids.is_empty() {
                    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
                    let (noun, verb) = if pids.len() == 1 { ("process", "was") } else { ("processes", "were") };
                    why.push_str(&format!(
                        "; its {noun} {} {verb} still running and {verb} ended before the job was returned",
                        list.join(", ")
                    ));
                }
                return match status {
                    Status::IN_PROGRESS => {
                        Some(ServiceStep::ReturnToReady { message: format!("returned to the queue: {why}") })
                    }
                    Status::PAUSING => Some(ServiceStep::StopPausing { message: Some(format!("paused: {why}")) }),
                    Status::CANCELING => Some(ServiceStep::StopCanceling { message: Some(format!("canceled: {why}")) }),
                    _ => None,
                };
            }
        };
        let fail = |code: &i32, message: &String| ServiceStep::Fail { code: *code, message: message.clone() };
        Some(match (status, outcome) {
            (Status::CANCELING, Outcome::Failed { code, message }) => fail(code, message),
            (Status::CANCELING, _) => ServiceStep::StopCanceling { message: None },
            (Status::PAUSING, Outcome::Succeeded) => ServiceStep::Succeed,
            (Status::PAUSING, Outcome::Failed { code, message }) => fail(code, message),
            (Status::PAUSING, _) => ServiceStep::StopPausing { message: None },
            (Status::IN_PROGRESS, Outcome::Succeeded) => ServiceStep::Succeed,
            (Status::IN_PROGRESS, Outcome::Failed { code, message }) => fail(code, message),
            (Status::IN_PROGRESS, Outcome::Transient(message)) => match self.live().retry.delay(job.retrycount + 1) {
                Some(d) => ServiceStep::Retry { until: now.plus_micros(d), message: message.clone() },
                None => ServiceStep::Fail {
                    code: codes::RETRIES_EXHAUSTED,
                    message: format!("gave up after {} retries: {message}", job.retrycount),
                },
            },
            (Status::IN_PROGRESS, Outcome::Wait(until)) => {
                ServiceStep::Wait { until: (*until).max(now.plus_micros(1)), message: None }
            }
            (Status::IN_PROGRESS, Outcome::Suspend(message)) => ServiceStep::Suspend { message: message.clone() },
            (Status::IN_PROGRESS, Outcome::Stopped) => ServiceStep::ReturnToReady {
                message: if self.shutdown.load(Ordering::Relaxed) {
                    "returned to the queue: the service shut down before the job finished".into()
                } else {
                    "returned to the queue: the handler stopped without being asked to".into()
                },
            },
            _ => return None,
        })
    }

    /// Counts a run's end once it is written, and follows its workflow's
    /// failures in a row.
    fn count(&self, job: &Job, step: &ServiceStep, summary: &mut Summary) {
        let lease_lost = match step {
            ServiceStep::ReturnToReady { message } => message.contains(LEASE_LOST),
            ServiceStep::StopPausing { message: Some(m) } | ServiceStep::StopCanceling { message: Some(m) } => {
                m.contains(LEASE_LOST)
            }
            _ => false,
        };
        match step {
            _ if lease_lost => summary.recovered += 1,
            ServiceStep::Succeed => summary.succeeded += 1,
            ServiceStep::Fail { .. } => summary.failed += 1,
            ServiceStep::StopCanceling { .. } => summary.canceled += 1,
            ServiceStep::ReturnToReady { .. } => summary.returned += 1,
            _ => summary.waiting += 1,
        }
        if let Some(w) = &job.workflow {
            let failed = matches!(step, ServiceStep::Fail { .. });
            if failed || *step == ServiceStep::Succeed {
                let state = self.engine.state();
                let (n, _) = self.failures_of(&state, w);
                let now = self.engine.now();
                let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                failures.insert(w.clone(), if failed { (n + 1, now) } else { (0, now) });
            }
        }
    }

    /// A workflow's failures in a row and the last one's time, from memory
    /// or (the first time) from the store.
    fn failures_of(&self, state: &crate::projection::Projection, workflow: &str) -> (u32, Timestamp) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        *failures.entry(workflow.to_string()).or_insert_with(|| {
            let (n, last) = state.consecutive_failures(workflow, FAILURE_SCAN);
            (n, last.unwrap_or(Timestamp::from_micros(0)))
        })
    }

    fn held_until(&self, state: &crate::projection::Projection, workflow: &str) -> Option<Timestamp> {
        let (n, last) = self.failures_of(state, workflow);
        self.live().backoff.until(workflow, n, last)
    }
}

/// Why a workflow run may not go on under its owner (`domain.md` §6):
/// the owner is deactivated or may no longer run workflows, or (for a run
/// that already started and now resumes) the workflow changed owner.
fn owner_problem(state: &crate::projection::Projection, job: &Job) -> Option<(i32, String)> {
    let workflow = state.workflow(job.workflow.as_deref()?)?;
    let dir = state.directory();
    let owner = &job.owner;
    match dir.user(owner) {
        Ok(u) if !u.active => {
            return Some((
                codes::OWNER_DEACTIVATED,
                format!("the run's owner {owner} is deactivated; cancel the run, or reassign it to {}", workflow.owner),
            ))
        }
        Err(_) => return Some((codes::OWNER_DEACTIVATED, format!("the run's owner {owner} no longer exists"))),
        Ok(_) => {}
    }
    if dir.check(owner, Privilege::Write, Some((owner, &job.owningbusinessunit))).is_err() {
        return Some((
            codes::OWNER_LACKS_PRIVILEGE,
            format!("the run's owner {owner} may no longer run workflows (needs Write on system jobs)"),
        ));
    }
    if job.startedon.is_some() && workflow.owner != *owner {
        return Some((
            codes::WORKFLOW_OWNER_CHANGED,
            format!(
                "workflow {} is now owned by {}, not {owner} who owned this run when it started; reassign or cancel the run",
                workflow.id, workflow.owner
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of `domain::config` are this module's numbers: a store
    /// that sets every key to its default runs exactly as one that sets none.
    #[test]
    fn store_policy_defaults_are_the_service_defaults() {
        let mut all = StorePolicy::default();
        for k in crate::domain::config::KEYS {
            all.apply(k.name, k.default, 1);
        }
        let (a, b) = (ServiceConfig::default(), ServiceConfig::default().with_store_policy(&all));
        assert_eq!(
            (a.retry, a.backoff, a.loop_guard, a.command_timeout),
            (b.retry, b.backoff, b.loop_guard, b.command_timeout)
        );
        // Every key reaches a field: set alone to a value other than its
        // default, it changes what the service runs by.
        for k in crate::domain::config::KEYS {
            let v = if k.default == Some(k.min) { k.max } else { k.min };
            let mut p = StorePolicy::default();
            p.apply(k.name, Some(v), 1);
            let c = ServiceConfig::default().with_store_policy(&p);
            assert_ne!(
                (a.retry, a.backoff, a.loop_guard, a.command_timeout),
                (c.retry, c.backoff, c.loop_guard, c.command_timeout),
                "{} = {v} changes nothing",
                k.name
            );
        }
        let mut one = StorePolicy::default();
        one.apply("backoff.jitter_percent", Some(0), 2);
        one.apply("command.timeout_secs", Some(30), 3);
        let c = ServiceConfig::default().with_store_policy(&one);
        assert_eq!((c.backoff.jitter, c.command_timeout), (0.0, Some(Duration::from_secs(30))));
    }
}
