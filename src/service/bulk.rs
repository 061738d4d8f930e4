//! The built-in handler of Bulk Delete jobs (type 13): the deletion as one
//! event with the job's owner as actor and the job as its definition, then
//! compaction so the space comes back, then (for a recurring job) its next
//! run.

use super::handler::Outcome;
use crate::domain::{bulk_delete_criteria, codes, Actor, Job, Privilege, Recurrence};
use crate::engine::{Engine, NewBulkDelete};

pub(crate) fn run(engine: &Engine, job: &Job) -> Outcome {
    let Some(criteria) = bulk_delete_criteria(job) else {
        return Outcome::Failed { code: 2, message: "the job's data holds no deletion criteria".into() };
    };
    if let Err(e) = engine.state().directory().check(&job.owner, Privilege::Delete, None) {
        return Outcome::Failed { code: codes::OWNER_LACKS_PRIVILEGE, message: e.to_string() };
    }
    let deleted = match engine.delete(Actor::User(job.owner.clone()), &job.owner, &criteria, u64::MAX, Some(job.id)) {
        Ok(d) => d.deleted,
        Err(e) => return Outcome::Transient(format!("deletion failed: {e}")),
    };
    tracing::info!(id = %job.id, name = job.name.as_str(), deleted, "bulk deletion");
    // The jobs are gone from every view; if compaction fails, the next
    // one picks their events up (they stay recorded as garbage).
    let compacted = engine.compact_some(crate::engine::Reclaim::Whole);
    match &compacted {
        Ok(c) => tracing::info!(
            segments = c.segments.len(),
            frames_dropped = c.frames_dropped,
            bytes_before = c.bytes_before,
            bytes_after = c.bytes_after,
            "compaction"
        ),
        Err(e) => {
            tracing::warn!(error = e.to_string().as_str(), "compaction failed (the next one takes the garbage)");
            return Outcome::Transient(format!("deleted {deleted} jobs, but giving the space back failed: {e}"));
        }
    }
    if compacted.as_ref().is_ok_and(crate::engine::outdates_checkpoints) {
        if let Err(e) = engine.checkpoint() {
            return Outcome::Transient(format!("deleted {deleted} jobs, but giving the space back failed: {e}"));
        }
    }
    if let Err(e) = schedule_next(engine, job, &criteria) {
        return Outcome::Failed {
            code: 1,
            message: format!("deleted {deleted} jobs; the next run was not scheduled: {e}"),
        };
    }
    Outcome::Succeeded
}

/// Creates the next run of a recurring job, unless one is already waiting
/// (a run repeated after a crash must not schedule twice).
fn schedule_next(engine: &Engine, job: &Job, criteria: &crate::domain::DeletionCriteria) -> Result<(), crate::Error> {
    let (Some(rule), Some(start)) = (&job.recurrencepattern, job.recurrencestarttime) else { return Ok(()) };
    let waiting =
        engine.bulk_delete_jobs_named(&job.name)?.into_iter().any(|j| j.id != job.id && !j.status.is_completed());
    if waiting {
        return Ok(());
    }
    // The next slot on the series' grid (its first start plus whole periods).
    let next = Recurrence::parse(rule)?.next_after(start, engine.now());
    let spec = NewBulkDelete {
        name: job.name.clone(),
        criteria: criteria.clone(),
        start: Some(next),
        recurrence: Some(rule.clone()),
    };
    engine.create_bulk_delete(Actor::System, &job.owner, &spec)?;
    Ok(())
}
