//! The service that runs jobs (`docs/domain.md` §5-§6), every step recorded
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

pub(crate) use command::CommandHandler;
pub use command::{command_data, command_data_with_timeout, command_of};
pub use handler::{Handler, JobContext, Outcome, Registry, StopRequest};
pub use policy::{BackoffPolicy, LoopGuard, RetryPolicy};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::domain::{bulk_delete_criteria, codes, Job, Privilege, Status, StorePolicy, Timestamp};
use crate::engine::{Engine, ServiceStep};
use crate::error::Error;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Worker threads: how many jobs run at once.
    pub workers: usize,
    /// The worker host's id, recorded as the actor of every step.
    pub host: String,
    /// Retries after transient failures.
    pub retry: RetryPolicy,
    /// The back-off of a workflow whose jobs keep failing.
    pub backoff: BackoffPolicy,
    /// The loop guard's limits.
    pub loop_guard: LoopGuard,
    /// How long the scheduler waits for a run to finish before it looks
    /// for due jobs again (wall-clock time).
    pub poll: Duration,
    /// Most steps written in one pass.
    pub max_batch: usize,
    /// Most jobs taken beyond the free workers (Locked and queued for a
    /// worker, not yet started): the *prefetch* that lets one pass (one
    /// sync) take and settle many short jobs at once. Only jobs whose kind
    /// (workflow, command or System Job Type) has finished a run, and whose
    /// workflow is not failing, are prefetched (see [`Service`]).
    pub prefetch: usize,
    /// Most expected work (the running estimate of each taken job's run
    /// time) per worker in flight: a prefetched job waits for at most about
    /// this long between its Lock and its start.
    pub prefetch_work: Duration,
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
            prefetch: 256,
            prefetch_work: Duration::from_millis(25),
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
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed for good.
    pub failed: u64,
    /// Runs that ended waiting (a time, a retry, a pause, a data error).
    pub waiting: u64,
    /// Runs that ended Canceled.
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
    /// The workflow definition's id.
    pub workflow: String,
    /// Its jobs' failures in a row.
    pub consecutive_failures: u32,
    /// Its jobs are held until then (`None`: it runs normally).
    pub held_until: Option<Timestamp>,
}

/// The back-off of every workflow that failed at least once in a row, from
/// the store alone (what `stats` shows whether the service runs or not).
pub fn backoff_report(engine: &Engine, policy: &BackoffPolicy) -> Vec<WorkflowBackoff> {
    let state = engine.state();
    let now = engine.now();
    let names: Vec<&str> = state.workflows().keys().map(String::as_str).collect();
    // Read together; after a damaged cold run, each by its own rows, and
    // one whose rows are damaged reads as no failure (`verify` reports it).
    let streaks = state.failures_in_a_row(&names, FAILURE_SCAN).unwrap_or_else(|_| {
        names.iter().map(|w| state.failures_by_rows(w, FAILURE_SCAN).unwrap_or_default()).collect()
    });
    names
        .into_iter()
        .zip(streaks)
        .filter(|(_, (n, _))| *n > 0)
        .map(|(w, (n, last))| WorkflowBackoff {
            workflow: w.to_string(),
            consecutive_failures: n,
            held_until: last.and_then(|l| policy.until(w, n, l)).filter(|&t| t > now),
        })
        .collect()
}

/// Completed jobs looked at to count a workflow's failures in a row (the
/// back-off is at its cap long before).
const FAILURE_SCAN: usize = 1000;

/// In the message of every step that returns a dead service's job.
const LEASE_LOST: &str = "lease lost";

/// How a run ended: its handler's outcome and how long it ran, or its
/// service died (with the pids of its processes that were still running
/// and were ended).
enum End {
    Run(Outcome, Duration),
    LeaseLost(Vec<i32>),
}

/// A job taken and not yet finished.
struct Flight {
    kind: u64,
    workflow: Option<String>,
    /// Its expected run time, as counted against the prefetch budget.
    expected: Duration,
}

/// Running estimates of run time per kind of job (see [`kind_of`]).
#[derive(Default)]
struct Estimates(HashMap<u64, Duration>);

impl Estimates {
    /// Kinds remembered at most (then forgotten all at once: unknown kinds
    /// only lose their prefetch).
    const MAX: usize = 4096;

    fn get(&self, kind: u64) -> Option<Duration> {
        self.0.get(&kind).copied()
    }

    /// Adds a finished run: an average that weighs the last run a quarter.
    fn update(&mut self, kind: u64, took: Duration) {
        if self.0.len() >= Self::MAX && !self.0.contains_key(&kind) {
            self.0.clear();
        }
        let e = self.0.entry(kind).or_insert(took);
        *e = (*e * 3 + took) / 4;
    }
}

/// What a job's run time is estimated by: its workflow, else its command,
/// else its System Job Type.
fn kind_of(job: &Job) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    match (&job.workflow, command_of(job)) {
        (Some(w), _) => (0u8, w.as_str()).hash(&mut h),
        (None, Some(c)) => (1u8, c).hash(&mut h),
        (None, None) => (2u8, job.operationtype).hash(&mut h),
    }
    h.finish()
}

/// The service on one engine.
///
/// **Dispatch.** A pass takes a Ready job when a worker is free for it,
/// and beyond that only a bounded *prefetch* (`ServiceConfig::prefetch`
/// jobs and `prefetch_work` of expected work per worker), so that short
/// jobs still share one sync per pass while a job shown Locked/In Progress
/// starts within about `prefetch_work`. Only a kind of job that has
/// finished a run in this service (its running estimate) and whose
/// workflow is not failing is prefetched. A workflow that never finished a
/// run here, or whose last runs failed, has at most `threshold − failures`
/// (at least one) runs in flight, and a failure is written before the pass
/// picks its next jobs: a burst of a broken workflow's runs stops at the
/// back-off threshold. Once its back-off holds, its jobs are deferred until
/// the hold passes, then run one at a time (a probe) until one succeeds.
pub struct Service {
    engine: Engine,
    config: ServiceConfig,
    registry: Registry,
    commands: CommandHandler,
    shutdown: AtomicBool,
    progress: Mutex<HashMap<Uuid, String>>,
    /// Per workflow: failures in a row and when the last one happened.
    failures: Mutex<HashMap<String, (u32, Timestamp)>>,
    /// The policy in force (see [`ServiceConfig::with_store_policy`]).
    live: Mutex<Live>,
    /// What runs of each kind took, kept from one `run` to the next (an
    /// embedder calling `run(RunUntil::Idle)` per burst keeps its prefetch).
    estimates: Mutex<Estimates>,
}

impl Service {
    /// A service on `engine` (it keeps its own handle), running the kinds
    /// of job `registry` knows; nothing runs until [`Service::run`].
    pub fn new(engine: &Engine, config: ServiceConfig, registry: Registry) -> Self {
        // Its timeout is the one in force when a run starts (`execute`).
        let commands = CommandHandler { store: procs::store_mark(engine.dir()), ..CommandHandler::default() };
        Self {
            engine: engine.clone(),
            registry,
            commands,
            shutdown: AtomicBool::new(false),
            progress: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            live: Mutex::new(Live::of(&config, u64::MAX)),
            estimates: Mutex::new(Estimates::default()),
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
        tracing::info!(workers, host = self.config.host.as_str(), until = ?until, "service started");
        let mut summary = Summary::default();
        self.refresh_policy();
        // First: a refusal to start (processes of earlier runs that cannot
        // be ended or looked for) writes nothing.
        self.recover(&mut summary)?;
        if summary.recovered > 0 {
            tracing::warn!(jobs = summary.recovered, "recovered the jobs a stopped service left Locked ({LEASE_LOST})");
        }
        if self.config.install_defaults {
            self.engine.install_default_bulk_delete()?;
        }
        let started = Instant::now();
        let depth = workers + self.config.prefetch;
        let (work_tx, work_rx) = crossbeam_channel::bounded::<Job>(depth);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<(Job, Outcome, Duration)>();
        std::thread::scope(|scope| {
            for i in 0..workers {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                let spawned =
                    std::thread::Builder::new().name(format!("joblog-worker-{i}")).spawn_scoped(scope, move || {
                        for job in work_rx {
                            if self.shutdown.load(Ordering::Relaxed) {
                                // Taken but not started: back to Ready unrun.
                                if done_tx.send((job, Outcome::Stopped, Duration::ZERO)).is_err() {
                                    break;
                                }
                                continue;
                            }
                            tracing::info!(
                                id = %job.id,
                                name = job.name.as_str(),
                                workflow = job.workflow.as_deref().unwrap_or(""),
                                "job started"
                            );
                            let start = Instant::now();
                            // A handler's panic fails its run; the worker,
                            // and the scheduler waiting for the run, go on.
                            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute(&job)));
                            let outcome = run.unwrap_or_else(|panic| {
                                let what = panic
                                    .downcast_ref::<&str>()
                                    .map(|s| s.to_string())
                                    .or_else(|| panic.downcast_ref::<String>().cloned())
                                    .unwrap_or_else(|| "a panic".into());
                                Outcome::Failed {
                                    code: codes::HANDLER_PANICKED,
                                    message: format!("the job's handler panicked: {what}"),
                                }
                            });
                            if done_tx.send((job, outcome, start.elapsed())).is_err() {
                                break;
                            }
                        }
                    });
                if let Err(e) = spawned {
                    // No job was handed out yet: the workers started so far
                    // end when the queue closes, and nothing was written.
                    drop(work_tx);
                    return Err(Error::Spawn { what: format!("worker thread {} of {workers}", i + 1), source: e });
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
        })
        .inspect_err(|e| tracing::error!(error = e.to_string().as_str(), "service stopped on an error"))?;
        tracing::info!(
            ran = summary.ran,
            succeeded = summary.succeeded,
            failed = summary.failed,
            deferred = summary.deferred,
            returned = summary.returned,
            "service stopped"
        );
        Ok(summary)
    }

    /// The scheduler's loop.
    fn schedule(
        &self,
        until: RunUntil,
        started: Instant,
        work: &crossbeam_channel::Sender<Job>,
        done: &crossbeam_channel::Receiver<(Job, Outcome, Duration)>,
        summary: &mut Summary,
    ) -> Result<(), Error> {
        let mut in_flight: HashMap<Uuid, Flight> = HashMap::new();
        // Only the scheduler uses it, and one scheduler runs at a time.
        let mut estimates = self.estimates.lock().unwrap_or_else(|e| e.into_inner());
        // `Once` runs what is due when it starts: jobs that exist then and
        // timers due then, over as many passes as the workers need.
        let cutoff = (until == RunUntil::Once).then(|| self.engine.now());
        // A run's end received while waiting, for the next pass.
        let mut pending: Vec<(Job, Outcome, Duration)> = Vec::new();
        loop {
            self.refresh_policy();
            if let RunUntil::For(d) = until {
                if started.elapsed() >= d {
                    self.stop();
                }
            }
            let stopping = self.shutdown.load(Ordering::Relaxed);
            let finished: Vec<(Job, End)> =
                pending.drain(..).chain(done.try_iter()).map(|(job, o, d)| (job, End::Run(o, d))).collect();
            for (job, end) in &finished {
                if let (Some(f), End::Run(_, took)) = (in_flight.remove(&job.id), end) {
                    estimates.update(f.kind, *took);
                }
                self.progress.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.id);
            }
            // Only what was written counts as progress: a refused step
            // changes nothing, and counting it would never let the service
            // go idle.
            let mut progress = !finished.is_empty();
            let mut ended: &[(Job, End)] = &finished;
            let mut steps: Vec<(Uuid, ServiceStep)> = Vec::new();
            let now = self.engine.now();
            let dispatch = !stopping;
            if dispatch {
                let timers: Vec<Uuid> =
                    self.engine.state().due(cutoff.unwrap_or(now)).take(self.config.max_batch).collect();
                steps.extend(timers.into_iter().map(|id| (id, ServiceStep::Wake)));
                // A workflow's failure may start its back-off, and a woken
                // job may run now: both are written before this pass picks
                // (one more sync, only on such passes).
                let failed =
                    finished.iter().any(|(j, e)| j.workflow.is_some() && !matches!(e, End::Run(Outcome::Succeeded, _)));
                if failed || !steps.is_empty() {
                    let results = self.record(ended, std::mem::take(&mut steps), summary)?;
                    progress |= results.iter().any(Result::is_ok);
                    ended = &[];
                }
            }
            let taken = if dispatch { self.pick(now, cutoff, &in_flight, &estimates, &mut steps)? } else { Vec::new() };
            let results = self.record(ended, steps.clone(), summary)?;
            progress |= results.iter().any(Result::is_ok);
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
            for (job, flight) in taken.into_iter().filter(|(j, _)| locked.contains(&j.id)) {
                in_flight.insert(job.id, flight);
                summary.ran += 1;
                work.send(job).map_err(|_| Error::WorkersStopped)?;
            }
            if in_flight.is_empty() && !progress {
                let idle = match until {
                    RunUntil::Once | RunUntil::Idle => true,
                    RunUntil::For(_) | RunUntil::Stopped => stopping,
                };
                if idle {
                    return Ok(());
                }
            }
            if !progress {
                // Nothing to do this pass: wait for a run to end, or poll.
                pending.extend(done.recv_timeout(self.config.poll).ok());
            }
        }
    }

    /// Returns the jobs a dead service left Locked (see the module docs),
    /// once every process its runs left behind has ended.
    fn recover(&self, summary: &mut Summary) -> Result<(), Error> {
        let swept = procs::sweep(&self.commands.store, None, procs::END_WAIT)?;
        if !swept.left.is_empty() {
            return Err(Error::RunsOutlived { pids: swept.left });
        }
        let ended = swept.ended;
        for (job, pids) in &ended {
            match job {
                Some(job) => {
                    tracing::warn!(job = %job, pids = ?pids, "ended the processes an earlier service's run of this job left running")
                }
                // Not in any job's history: only this line says so.
                None => {
                    tracing::warn!(pids = ?pids, "ended processes carrying this store's mark and no valid job mark (JOBLOG_JOB_ID missing or changed)")
                }
            }
        }
        let locked: Vec<Job> = {
            let s = self.engine.state();
            let ids: Vec<Uuid> = [Status::IN_PROGRESS, Status::PAUSING, Status::CANCELING]
                .into_iter()
                .flat_map(|status| s.in_status(status).collect::<Vec<_>>())
                .collect();
            ids.into_iter().map(|id| s.job(id)).collect::<Result<_, _>>()?
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
            let mut results = self.engine.worker(&self.config.host).steps(steps)?;
            if other_results.is_empty() {
                other_results = results.split_off(n);
            }
            todo.clear();
            let mut written = Vec::new();
            for ((e, step), r) in decided.into_iter().zip(results) {
                match r {
                    Ok(_) => written.push((e, step)),
                    Err(_) => todo.push(e),
                }
            }
            // Ends written in one batch share one time: they are counted in
            // the order `consecutive_failures` reads them (by `createdon`).
            written.sort_by_key(|(e, _)| (e.0.createdon, e.0.id));
            for (e, step) in written {
                self.count(&e.0, &e.1, &step, summary);
            }
            if todo.is_empty() {
                break;
            }
        }
        Ok(other_results)
    }

    /// Chooses Ready jobs to run, oldest first (see [`Service`] for how
    /// many), and the steps for those that must not run (loop guard,
    /// owners, back-off). With a `cutoff`, only jobs created by then.
    fn pick(
        &self,
        now: Timestamp,
        cutoff: Option<Timestamp>,
        in_flight: &HashMap<Uuid, Flight>,
        estimates: &Estimates,
        steps: &mut Vec<(Uuid, ServiceStep)>,
    ) -> Result<Vec<(Job, Flight)>, Error> {
        let workers = self.config.workers.max(1);
        let cap = workers + self.config.prefetch;
        let unit = self.config.prefetch_work;
        let budget = unit * workers as u32;
        let mut count = in_flight.len();
        let mut work: Duration = in_flight.values().map(|f| f.expected).sum();
        let mut per_workflow: HashMap<String, usize> = HashMap::new();
        for w in in_flight.values().filter_map(|f| f.workflow.as_ref()) {
            *per_workflow.entry(w.clone()).or_default() += 1;
        }
        // A workflow in back-off runs one job at a time (a probe) once its
        // hold has passed, until one succeeds: its other jobs wait for the
        // probe's outcome instead of all failing at once.
        let mut probing: HashSet<String> = per_workflow.keys().cloned().collect();
        let mut taken = Vec::new();
        if count >= cap {
            return Ok(taken);
        }
        let state = self.engine.state();
        let Live { loop_guard: guard, backoff, .. } = self.live();
        // Jobs passed over for a prefetch: the scan stops after as many as
        // could be prefetched (each costs a read of the log).
        let mut passed = 0;
        let candidates: Vec<Uuid> = state.ready().take(self.config.max_batch.max(cap) * 4).collect();
        for id in candidates {
            if count >= cap || steps.len() >= self.config.max_batch || passed > self.config.prefetch {
                break;
            }
            if in_flight.contains_key(&id) || !state.is_token_head(id) {
                continue;
            }
            let job = state.job(id)?;
            if cutoff.is_some_and(|c| job.createdon > c) {
                break;
            }
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
                // A damaged cold run counts no run here; `verify` reports it.
                let runs =
                    state.runs_on_row_within(r, w, &job, i64::from(guard.window_secs) * 1_000_000).unwrap_or_default();
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
            let mut failures = 0;
            if let Some(w) = &job.workflow {
                let (n, last) = self.failures_of(&state, w);
                failures = n;
                if let Some(until) = backoff.until(w, n, last) {
                    if until <= now && !probing.insert(w.clone()) {
                        continue;
                    }
                    if until > now {
                        let message = format!(
                            "workflow {w} failed {n} times in a row; its jobs are held until {} (back-off)",
                            until.to_rfc3339()
                        );
                        steps.push((id, ServiceStep::Defer { until, message }));
                        continue;
                    }
                    tracing::info!(workflow = w.as_str(), id = %id, "back-off hold passed: one probe runs");
                }
            }
            let kind = kind_of(&job);
            let estimate = estimates.get(kind);
            // A workflow never seen finishing, or failing: no more runs at
            // once than the failures left before its back-off.
            let cautious = job.workflow.is_some() && (failures > 0 || estimate.is_none());
            if let (true, Some(w)) = (cautious, &job.workflow) {
                let limit = backoff.threshold.saturating_sub(failures).max(1) as usize;
                if per_workflow.get(w).copied().unwrap_or(0) >= limit {
                    continue;
                }
            }
            let expected = estimate.map_or(unit, |e| e.min(unit));
            if count >= workers && (cautious || estimate.is_none() || work + expected > budget) {
                // No free worker, and not a job to prefetch.
                passed += 1;
                continue;
            }
            steps.push((id, ServiceStep::Lock));
            count += 1;
            work += expected;
            if let Some(w) = &job.workflow {
                match per_workflow.get_mut(w) {
                    Some(n) => *n += 1,
                    None => {
                        per_workflow.insert(w.clone(), 1);
                    }
                }
            }
            let workflow = job.workflow.clone();
            taken.push((job, Flight { kind, workflow, expected }));
        }
        Ok(taken)
    }

    /// Runs one job's handler.
    fn execute(&self, job: &Job) -> Outcome {
        if job.operationtype == crate::domain::OperationType::BULK_DELETE && bulk_delete_criteria(job).is_some() {
            return bulk::run(&self.engine, job);
        }
        let ctx = JobContext::new(job.clone(), &self.engine, &self.shutdown, &self.progress);
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
        // A job the service runs is open, so hot: a read of it never fails.
        let status = self.engine.state().status_of(job.id).ok().flatten()?;
        let now = self.engine.now();
        let outcome = match end {
            End::Run(o, _) => o,
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

    /// Counts a run's end once it is written, logs it, and follows its
    /// workflow's failures in a row.
    fn count(&self, job: &Job, end: &End, step: &ServiceStep, summary: &mut Summary) {
        let lease_lost = match step {
            ServiceStep::ReturnToReady { message } => message.contains(LEASE_LOST),
            ServiceStep::StopPausing { message: Some(m) } | ServiceStep::StopCanceling { message: Some(m) } => {
                m.contains(LEASE_LOST)
            }
            _ => false,
        };
        let outcome = match step {
            _ if lease_lost => {
                summary.recovered += 1;
                "lease lost"
            }
            ServiceStep::Succeed => {
                summary.succeeded += 1;
                "succeeded"
            }
            ServiceStep::Fail { .. } => {
                summary.failed += 1;
                "failed"
            }
            ServiceStep::StopCanceling { .. } => {
                summary.canceled += 1;
                "canceled"
            }
            ServiceStep::ReturnToReady { .. } => {
                summary.returned += 1;
                "returned to the queue"
            }
            other => {
                summary.waiting += 1;
                match other {
                    ServiceStep::Retry { .. } => "retrying",
                    ServiceStep::StopPausing { .. } => "paused",
                    ServiceStep::Suspend { .. } => "suspended",
                    _ => "waiting",
                }
            }
        };
        let duration_ms = match end {
            End::Run(_, took) => took.as_secs_f64() * 1000.0,
            End::LeaseLost(_) => 0.0,
        };
        let error = match step {
            ServiceStep::Fail { message, .. } | ServiceStep::Retry { message, .. } => message.as_str(),
            _ => "",
        };
        tracing::info!(
            id = %job.id,
            name = job.name.as_str(),
            workflow = job.workflow.as_deref().unwrap_or(""),
            outcome,
            duration_ms,
            error,
            "job ended"
        );
        let Some(w) = &job.workflow else { return };
        let failed = matches!(step, ServiceStep::Fail { .. });
        if !failed && *step != ServiceStep::Succeed {
            return;
        }
        let state = self.engine.state();
        // The time the store holds, so that `stats` and the service agree.
        let now = state.completedon_of(job.id).ok().flatten().unwrap_or_else(|| self.engine.now());
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let before = failures.get(w).map_or(0, |e| e.0);
        let after = match failures.get_mut(w) {
            Some(e) => {
                *e = if failed { (e.0 + 1, now) } else { (0, now) };
                *e
            }
            // Not followed yet: the store, which holds this end already.
            None => {
                let (n, last) = state.consecutive_failures(w, FAILURE_SCAN).unwrap_or_default();
                *failures.entry(w.clone()).or_insert((n, last.unwrap_or(now)))
            }
        };
        drop(failures);
        let backoff = self.live().backoff;
        let threshold = backoff.threshold.max(1);
        if failed {
            if let Some(until) = backoff.until(w, after.0, after.1) {
                tracing::warn!(
                    workflow = w.as_str(),
                    failures = after.0,
                    until = %until.to_rfc3339(),
                    "workflow held (back-off): its jobs wait until then, then run one at a time"
                );
            }
        } else if before >= threshold {
            tracing::info!(workflow = w.as_str(), failures = before, "back-off released: a run succeeded");
        }
    }

    /// A workflow's failures in a row and the last one's time, from memory
    /// or (the first time) from the store.
    fn failures_of(&self, state: &crate::projection::Projection, workflow: &str) -> (u32, Timestamp) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failures.get(workflow) {
            return *f;
        }
        *failures.entry(workflow.to_string()).or_insert_with(|| {
            let (n, last) = state.consecutive_failures(workflow, FAILURE_SCAN).unwrap_or_default();
            (n, last.unwrap_or(Timestamp::from_micros(0)))
        })
    }
}

/// Why a workflow run may not go on under its owner (`docs/domain.md` §6):
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
