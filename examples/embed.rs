//! What an embedder writes: open a store, define who may do what, register
//! handlers, queue jobs, run the service on its own thread, and read the
//! views and a job's history. Copy from here.
//!
//! `cargo run --release --example embed [DATA_DIR]`

use std::sync::Arc;

use joblog::domain::{Regarding, WorkflowDefinition};
use joblog::{
    Config, Engine, Filter, JobContext, NewJob, OperationType, Outcome, Registry, RunUntil, Service, ServiceConfig,
    SystemClock, UserAction,
};

/// The handler of the "welcome" workflow: sends one email per contact. A
/// handler is any `Fn(&JobContext) -> Outcome + Send + Sync` (or a type
/// implementing `joblog::Handler`).
fn send_welcome(ctx: &JobContext<'_>) -> Outcome {
    let contact = ctx.job().regarding.as_ref().map_or("?", |r| r.id.as_str());
    if ctx.stop_requested().is_some() {
        // A user paused or canceled it meanwhile, or the service stops.
        return Outcome::Stopped;
    }
    ctx.progress(&format!("emailing contact {contact}"));
    if contact == "2" {
        return Outcome::Failed { code: -1, message: "mail server refused".into() };
    }
    Outcome::Succeeded
}

fn main() -> Result<(), joblog::Error> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "joblog-data".into());
    let engine = Engine::open(&dir, Config::default(), Arc::new(SystemClock))?;
    let report = engine.open_report();
    println!(
        "opened {dir}: checkpoint {:?}, {} events replayed, {} jobs",
        report.checkpoint_seq,
        report.events_replayed,
        engine.state().job_count()
    );

    // An administrator sets up a user and a workflow (once; later runs of
    // this example find them there).
    let admin = engine.session("admin")?;
    let first_run = engine.state().directory().user("alice").is_err();
    if first_run {
        admin.add_user("alice", "root", &["basic-user"])?;
        admin.save_workflow(WorkflowDefinition {
            id: "welcome".into(),
            name: "Send welcome email".into(),
            owner: "alice".into(),
            active: true,
        })?;
    }

    // Queue three runs of the workflow (owned by its owner, alice) in one
    // atomic batch, and a bulk email.
    let runs = admin.create_many(
        (1..=3)
            .map(|i| {
                let mut job = NewJob::new("Send welcome email", OperationType::WORKFLOW);
                job.workflow = Some("welcome".into());
                job.regarding = Some(Regarding { table: "contact".into(), id: i.to_string() });
                job
            })
            .collect(),
    )?;
    let email = admin.create(NewJob::new("Monthly newsletter", OperationType::BULK_EMAIL))?;

    // Alice cancels the third run before it starts; she may not touch the
    // administrator's email job.
    let alice = engine.session("alice")?;
    alice.act(runs[2].id, UserAction::Cancel)?;
    if let Err(e) = alice.act(email.id, UserAction::Cancel) {
        println!("refused, as it should be: {e}");
    }

    // The service: handlers by workflow and by System Job Type. It holds
    // its own handle of the engine, so it runs on a thread of its own (no
    // `thread::scope`); `RunUntil::Idle` returns once nothing is due.
    let registry = Registry::new()
        .workflow("welcome", send_welcome)
        .operation(OperationType::BULK_EMAIL, |_: &JobContext<'_>| Outcome::Succeeded);
    let config = ServiceConfig { workers: 2, host: "example-host".into(), ..ServiceConfig::default() };
    let service = Service::new(&engine, config, registry);
    let summary = std::thread::spawn(move || service.run(RunUntil::Idle)).join().expect("the service thread")?;
    println!("the service ran {} jobs: {} succeeded, {} failed", summary.ran, summary.succeeded, summary.failed);

    // The views, as alice may see them.
    let session = Filter { workflow: Some("welcome".into()), ..Filter::default() };
    let (jobs, _) = alice.list(&session, None, 10)?;
    println!("Process Session of 'welcome' as alice sees it ({} of {}):", jobs.len(), alice.count(&session).unwrap());
    for j in &jobs {
        println!("  {}  {:<20} {:<22} {}", j.id, j.name, j.status.to_string(), j.message.as_deref().unwrap_or(""));
    }
    let about = Filter { regarding: Some(Regarding { table: "contact".into(), id: "2".into() }), ..Filter::default() };
    println!("Background Processes of contact:2: {} jobs", admin.count(&about).unwrap());

    // A job's history, oldest first: created, taken by the worker, failed.
    println!("history of {}:", runs[1].id);
    for h in admin.history(runs[1].id)? {
        println!("  #{:<6} {} {:<22} by {}", h.seq, h.at, h.status.to_string(), h.actor);
    }
    drop((admin, alice));
    engine.close()
}
