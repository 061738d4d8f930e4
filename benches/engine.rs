//! Hot paths above the log: folding events into the projection, the
//! views' index walks, and dropping many jobs at once (bulk deletion).

// `criterion_group!` makes an undocumented public function; a bench is no API.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use joblog::domain::{
    Actor, DeletionCriteria, Envelope, Event, Job, OperationType, Regarding, Status, StatusReason, Timestamp,
    EVENT_VERSION, MICROS_PER_DAY,
};
use joblog::log::Position;
use joblog::projection::query::{Filter, Visibility};
use joblog::projection::Projection;

#[path = "../tests/support/mod.rs"]
mod support;

use support::Fixture;

const JOBS: u64 = 100_000;

fn t0() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
}

/// `JOBS` completed jobs, one event each, spread over 100 days.
fn jobs() -> Vec<Job> {
    (0..JOBS)
        .map(|i| {
            let at = t0().plus_micros(i as i64 * MICROS_PER_DAY / 1000);
            let mut j = Job::new(
                "bench",
                [OperationType::WORKFLOW, OperationType::BULK_EMAIL][(i % 5 == 0) as usize],
                "admin",
                "root",
                at,
            );
            j.status = [Status::SUCCEEDED, Status::FAILED, Status::CANCELED][(i % 3) as usize];
            j.completedon = Some(at.plus_micros(1_000_000));
            j.modifiedon = at.plus_micros(1_000_000);
            j.workflow = Some(format!("wf-{}", i % 200));
            j.regarding = Some(Regarding { table: "contact".into(), id: (i % 20_000).to_string() });
            j
        })
        .collect()
}

fn apply(c: &mut Criterion) {
    let events: Vec<Envelope> = jobs()
        .into_iter()
        .map(|j| Envelope {
            version: EVENT_VERSION,
            at: j.createdon,
            actor: Actor::System,
            event: Event::JobCreated(Box::new(j)),
        })
        .collect();
    let mut g = c.benchmark_group("projection");
    g.throughput(Throughput::Elements(JOBS));
    g.sample_size(10);
    g.bench_function("apply_100k_creations", |b| {
        b.iter_batched(
            Projection::new,
            |mut p| {
                for (i, e) in events.iter().enumerate() {
                    p.apply(e, i as u64 + 1, Position { segment: 1, offset: 32 + i as u64 * 200 }).unwrap();
                }
                p
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The tests' engine fixture (`tests/support`), 200 days after `t0`, with
/// the `JOBS` jobs imported.
fn store() -> Fixture {
    let f = Fixture::at(t0().plus_micros(200 * MICROS_PER_DAY));
    f.engine.session("admin").unwrap().import(jobs()).unwrap();
    f
}

fn views(c: &mut Criterion) {
    let f = store();
    let state = f.engine.state();
    let mut g = c.benchmark_group("views");
    let filters = [
        ("system_jobs_page", Filter::default()),
        (
            "workflow_failed_page",
            Filter {
                operationtype: Some(OperationType::WORKFLOW),
                status_reason: Some(StatusReason::Failed),
                ..Filter::default()
            },
        ),
        ("process_session_page", Filter { workflow: Some("wf-7".into()), ..Filter::default() }),
        (
            "background_processes_page",
            Filter { regarding: Some(Regarding { table: "contact".into(), id: "77".into() }), ..Filter::default() },
        ),
    ];
    for (name, f) in filters {
        g.bench_function(name, |b| b.iter(|| state.query(&f, &Visibility::All, None, 50).unwrap().ids.len()));
    }
    g.bench_function("count_completed_failed", |b| {
        let f = Filter { status_reason: Some(StatusReason::Failed), ..Filter::default() };
        b.iter(|| state.count(&f, &Visibility::All))
    });
    g.finish();
}

fn delete(c: &mut Criterion) {
    let mut g = c.benchmark_group("deletion");
    g.sample_size(10);
    g.throughput(Throughput::Elements(40_000));
    let criteria = DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled],
        older_than_days: 150,
    };
    g.bench_function("delete_40k_of_100k_logically", |b| {
        b.iter_batched(
            store,
            |f| {
                f.engine.session("admin").unwrap().delete(&criteria, u64::MAX).unwrap();
                f
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, apply, views, delete);
criterion_main!(benches);
