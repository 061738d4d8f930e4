//! Operations: `GET /metrics` (Prometheus text, names prefixed `joblog_`;
//! docs/http.md, "Operations") and the counters the event follower keeps.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use joblog::domain::{Action, Envelope, Event, Status};
use joblog::{Filter, Visibility};

use crate::error::ApiError;
use crate::{blocking, AppState};

/// Counted from the log by the event follower since the server started.
#[derive(Default)]
pub struct Metrics {
    runs_started: AtomicU64,
    runs_succeeded: AtomicU64,
    runs_failed: AtomicU64,
    runs_retried: AtomicU64,
    jobs_created: AtomicU64,
    jobs_deleted: AtomicU64,
}

impl Metrics {
    /// Counts one event of the log.
    pub fn count(&self, env: &Envelope) {
        let c = match &env.event {
            Event::JobCreated(_) => &self.jobs_created,
            Event::JobsDeleted(d) => {
                self.jobs_deleted.fetch_add(d.deleted, Ordering::Relaxed);
                return;
            }
            Event::JobsDeletedById { ids } => {
                self.jobs_deleted.fetch_add(ids.len() as u64, Ordering::Relaxed);
                return;
            }
            Event::Transition(t) => match t.action {
                Action::Lock => &self.runs_started,
                Action::Succeed => &self.runs_succeeded,
                Action::Fail => &self.runs_failed,
                Action::Retry => &self.runs_retried,
                _ => return,
            },
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

fn line(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP joblog_{name} {help}\n# TYPE joblog_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "joblog_{name}{labels} {v}");
    }
}

/// `GET /metrics`: for users who read every job (the counts cover the
/// whole organisation), with a token like every other request.
pub(crate) async fn metrics(
    State(s): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<impl IntoResponse, ApiError> {
    // The figures cover every job: Read at Organization depth, said as the
    // engine says any missing privilege.
    let session = caller.session.clone();
    blocking(move || Ok(session.require_organization(joblog::domain::Privilege::Read)?)).await?;
    let m = Arc::clone(&s.metrics);
    let engine = s.engine.clone();
    let running = s.service_running.load(Ordering::Acquire);
    let body = blocking(move || {
        let mut out = String::new();
        let (by_status, oldest_ready, now) = {
            let state = engine.state();
            let by_status: Vec<(Status, usize)> = Status::all()
                .map(|st| {
                    let f = Filter { state: Some(st.state()), status_reason: Some(st.reason()), ..Filter::default() };
                    (st, state.count(&f, &Visibility::All).unwrap_or(0))
                })
                .collect();
            let oldest = state.ready().next().and_then(|id| state.job(id).ok()).map(|j| j.createdon);
            (by_status, oldest, engine.now())
        };
        let samples: Vec<(String, f64)> = by_status
            .iter()
            .map(|(st, n)| {
                (format!("{{state=\"{}\",status_reason=\"{}\"}}", st.state().name(), st.reason().name()), *n as f64)
            })
            .collect();
        line(&mut out, "jobs", "Jobs kept, by State and Status Reason.", "gauge", &samples);
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        line(
            &mut out,
            "runs_started_total",
            "Runs started (a worker locked a job) since the server started.",
            "counter",
            &[(String::new(), c(&m.runs_started))],
        );
        line(
            &mut out,
            "runs_succeeded_total",
            "Runs that succeeded since the server started.",
            "counter",
            &[(String::new(), c(&m.runs_succeeded))],
        );
        line(
            &mut out,
            "runs_failed_total",
            "Runs that failed for good since the server started.",
            "counter",
            &[(String::new(), c(&m.runs_failed))],
        );
        line(
            &mut out,
            "runs_retried_total",
            "Runs that failed and wait for a retry, since the server started.",
            "counter",
            &[(String::new(), c(&m.runs_retried))],
        );
        line(
            &mut out,
            "jobs_created_total",
            "Jobs created since the server started.",
            "counter",
            &[(String::new(), c(&m.jobs_created))],
        );
        line(
            &mut out,
            "jobs_deleted_total",
            "Jobs deleted since the server started.",
            "counter",
            &[(String::new(), c(&m.jobs_deleted))],
        );
        let policy = joblog::service::ServiceConfig::default().with_store_policy(engine.state().policy());
        let holds = joblog::service::backoff_report(&engine, &policy.backoff);
        let held = holds.iter().filter(|b| b.held_until.is_some_and(|t| t > now)).count();
        line(
            &mut out,
            "backoff_workflows_held",
            "Workflows held back by back-off now.",
            "gauge",
            &[(String::new(), held as f64)],
        );
        let age = oldest_ready.map_or(0.0, |t| (now.micros() - t.micros()).max(0) as f64 / 1e6);
        line(
            &mut out,
            "queue_age_seconds",
            "Age of the oldest Ready job (0 when none).",
            "gauge",
            &[(String::new(), age)],
        );
        line(
            &mut out,
            "log_bytes",
            "Bytes of events in the log.",
            "gauge",
            &[(String::new(), engine.data_bytes() as f64)],
        );
        let dir = joblog::measure::dir_bytes(engine.dir());
        line(
            &mut out,
            "disk_bytes",
            "Bytes the data directory's files take (log, checkpoints).",
            "gauge",
            &[(String::new(), dir as f64)],
        );
        line(
            &mut out,
            "checkpoint_bytes",
            "Bytes of checkpoints (the directory's files less the log's segments).",
            "gauge",
            &[(String::new(), dir.saturating_sub(engine.disk_bytes()) as f64)],
        );
        let stats = engine.log_stats();
        line(
            &mut out,
            "syncs_total",
            "Syncs of the log to disk since the store was opened.",
            "counter",
            &[(String::new(), stats.syncs as f64)],
        );
        line(
            &mut out,
            "sync_seconds_total",
            "Seconds spent in those syncs (divide by syncs_total for the mean latency).",
            "counter",
            &[(String::new(), stats.sync_micros as f64 / 1e6)],
        );
        line(
            &mut out,
            "log_next_seq",
            "The sequence number the next event gets.",
            "gauge",
            &[(String::new(), engine.next_seq() as f64)],
        );
        line(
            &mut out,
            "service_running",
            "1 while the service runs jobs.",
            "gauge",
            &[(String::new(), if running { 1.0 } else { 0.0 })],
        );
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}
