//! Loading the workload into a joblog store, the same way in every
//! harness: the workflow definitions first (dated before the workload's
//! first event), then the events in atomic batches of [`CHUNK_EVENTS`]
//! through `Session::load`, on a manual clock a day after the last event.

use std::sync::Arc;

use joblog::domain::{Envelope, ManualClock, Timestamp, WorkflowDefinition, MICROS_PER_DAY};
use joblog::engine::Session;
use joblog::Error;

use crate::workload;

/// Events per `Session::load` batch.
pub const CHUNK_EVENTS: usize = 20_000;

/// The clock a store of the workload ending at `end` is built on: it reads
/// a day before the workload's first event, for the definitions;
/// [`define_workflows`] moves it to [`loaded_at`].
pub fn clock(end: Timestamp) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(end.days_before(workload::DAYS as u32 + 1)))
}

/// When the load happens: a day after the workload's last event.
pub fn loaded_at(end: Timestamp) -> Timestamp {
    end.plus_micros(MICROS_PER_DAY)
}

/// Saves the workload's workflow definitions (one write each), then sets
/// `clock` to [`loaded_at`], when the load happens.
pub fn define_workflows(admin: &Session, clock: &ManualClock, end: Timestamp) -> Result<(), Error> {
    for w in 0..workload::WORKFLOWS {
        admin.save_workflow(WorkflowDefinition {
            id: workload::workflow(w),
            name: format!("Workflow {w}"),
            owner: "admin".into(),
            active: true,
        })?;
    }
    clock.set(loaded_at(end));
    Ok(())
}

/// Loads `events` in batches of [`CHUNK_EVENTS`], calling `each` on every
/// event first (after [`define_workflows`]). Returns the number of events
/// loaded, once the store answers a read with all of them: the indices
/// that large loads leave to be built once (`Projection::defer_indexing_for`)
/// are built by that read, inside the load's time.
pub fn load(
    admin: &Session,
    events: impl Iterator<Item = Envelope>,
    mut each: impl FnMut(&Envelope),
) -> Result<u64, Error> {
    let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
    let mut loaded = 0u64;
    for env in events {
        each(&env);
        chunk.push(env);
        if chunk.len() == CHUNK_EVENTS {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_EVENTS));
            loaded += admin.load(full)? as u64;
        }
    }
    loaded += admin.load(chunk)? as u64;
    admin.count(&joblog::projection::query::Filter::default())?;
    Ok(loaded)
}
