//! What an embedder writes: open a store, define who may do what, queue
//! jobs, run them, and read the views and a job's history. Copy from here.
//!
//! `cargo run --release --example embed [DATA_DIR]`

use std::sync::Arc;

use joblog::domain::{OperationType, Regarding, SystemClock, WorkflowDefinition};
use joblog::engine::{Config, Engine, NewJob, ServiceStep, UserAction};
use joblog::projection::query::Filter;

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
    if engine.state().directory().user("alice").is_err() {
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

    // A worker runs the first two; the second fails. Alice cancels the third.
    let worker = "example-host";
    engine.worker(worker).step(runs[0].id, ServiceStep::Lock)?;
    engine.worker(worker).step(runs[0].id, ServiceStep::Succeed)?;
    engine.worker(worker).step(runs[1].id, ServiceStep::Lock)?;
    engine.worker(worker).step(runs[1].id, ServiceStep::Fail { code: -1, message: "mail server refused".into() })?;
    let alice = engine.session("alice")?;
    alice.act(runs[2].id, UserAction::Cancel)?;
    // Alice may not touch the administrator's email job.
    if let Err(e) = alice.act(email.id, UserAction::Cancel) {
        println!("refused, as it should be: {e}");
    }

    // The views.
    let session = Filter { workflow: Some("welcome".into()), ..Filter::default() };
    let (jobs, _) = alice.list(&session, None, 10)?;
    println!("Process Session of 'welcome' as alice sees it ({} of {}):", jobs.len(), alice.count(&session));
    for j in &jobs {
        println!("  {}  {:<20} {:<22} {}", j.id, j.name, j.status.to_string(), j.message.as_deref().unwrap_or(""));
    }
    let about = Filter { regarding: Some(Regarding { table: "contact".into(), id: "2".into() }), ..Filter::default() };
    println!("Background Processes of contact:2: {} jobs", admin.count(&about));

    // A job's history, oldest first.
    println!("history of {}:", runs[1].id);
    for h in admin.history(runs[1].id)? {
        println!("  #{:<6} {} {:<22} by {}", h.seq, h.at, h.status.to_string(), h.actor);
    }
    engine.close()
}
