//! joblog-servicebench: no-op jobs end to end (submit, dispatch, run,
//! complete, every step durable), with 1 and 2 workers, against the log's
//! durable append limit measured in the same run. See `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p joblog-bench --bin joblog-servicebench -- [--jobs N | --quick] [--dir DIR] [--timeout SECS]
//! ```
//!
//! Done means every job it submitted has completed (not "nothing Ready":
//! a fresh store's default Bulk Delete job waits in Ready for its day). It
//! exits non-zero, never hangs, when that takes longer than `--timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use joblog::domain::{OperationType, State, SystemClock, WorkflowDefinition};
use joblog::engine::{Config, Engine, NewJob};
use joblog::projection::query::{Filter, Visibility};
use joblog::service::{JobContext, Outcome, Registry, RunUntil, Service, ServiceConfig};

#[derive(Parser, Debug)]
#[command(version, about = "joblog's service on no-op jobs, end to end")]
struct Args {
    /// Jobs per run.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Jobs per submitted batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Directory to work in (a temporary directory is made inside it).
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// A smoke run (20,000 jobs), as CI runs it.
    #[arg(long, conflicts_with = "jobs")]
    quick: bool,
    /// Give up (exit 2) when the whole run takes longer than this.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.jobs = 20_000;
    }
    let bound = std::time::Duration::from_secs(args.timeout);
    std::thread::spawn(move || {
        std::thread::sleep(bound);
        eprintln!("joblog-servicebench: not finished after {} s: giving up", bound.as_secs());
        std::process::exit(2);
    });
    let work = tempfile::tempdir_in(&args.dir).expect("work directory");
    let (fsync_p50, _) = joblog_bench::probe::fsync_latency(work.path(), 200).unwrap();
    let limit = 1.0 / fsync_p50.as_secs_f64();
    println!("fsync p50 {:.0} µs: at most {limit:.0} durable appends/s one at a time", fsync_p50.as_secs_f64() * 1e6);
    println!(
        "{:<8} {:>12} {:>14} {:>12} {:>12} {:>14}",
        "workers", "jobs/s", "syncs per job", "lock p50", "lock p99", "jobs per sync"
    );
    for workers in [1, 2] {
        let dir = work.path().join(format!("w{workers}"));
        let engine = Engine::open(&dir, Config::default(), Arc::new(SystemClock)).unwrap();
        let admin = engine.session("admin").unwrap();
        let wf = WorkflowDefinition { id: "noop".into(), name: "no-op".into(), owner: "admin".into(), active: true };
        admin.save_workflow(wf).unwrap();
        let registry = Registry::new().workflow("noop", |_: &JobContext<'_>| Outcome::Succeeded);
        let config = ServiceConfig { workers, ..ServiceConfig::default() };
        let service = Service::new(&engine, config, registry);
        let syncs_before = engine.log_stats().syncs;
        let submitted = AtomicBool::new(false);
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(args.batch) {
                    let specs = chunk
                        .iter()
                        .map(|i| NewJob {
                            workflow: Some("noop".into()),
                            ..NewJob::new(&format!("noop {i}"), OperationType::WORKFLOW)
                        })
                        .collect();
                    admin.create_many(specs).unwrap();
                }
                submitted.store(true, Ordering::Release);
            });
            // The service runs until every job submitted has completed.
            let completed =
                Filter { workflow: Some("noop".into()), state: Some(State::Completed), ..Filter::default() };
            while !submitted.load(Ordering::Acquire)
                || engine.state().count(&completed, &Visibility::All).unwrap() < args.jobs
            {
                service.run(RunUntil::Idle).unwrap();
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let syncs = engine.log_stats().syncs - syncs_before;
        let state = engine.state();
        let noop = Filter { workflow: Some("noop".into()), ..Filter::default() };
        let (jobs, _) = state.query_jobs(&noop, &Visibility::All, None, usize::MAX).unwrap();
        assert_eq!(jobs.len(), args.jobs, "every job submitted is there");
        assert!(jobs.iter().all(|j| j.status.is_completed()), "every job finished");
        let mut waits: Vec<i64> =
            jobs.iter().map(|j| j.startedon.expect("ran").micros() - j.createdon.micros()).collect();
        waits.sort_unstable();
        let pct = |p: usize| waits[(waits.len() * p / 100).min(waits.len() - 1)] as f64 / 1000.0;
        println!(
            "{workers:<8} {:>12.0} {:>14.3} {:>9.1} ms {:>9.1} ms {:>14.1}",
            jobs.len() as f64 / secs,
            syncs as f64 / jobs.len() as f64,
            pct(50),
            pct(99),
            jobs.len() as f64 / syncs as f64
        );
    }
}
