//! Deletion: `Engine::delete` (one `JobsDeleted` event), `Session::delete_jobs`
//! (chosen jobs by id, one `JobsDeletedById` event) and
//! `Engine::compact` (the space back), `Session::delete_now` (the
//! Immediately option), Bulk Delete jobs and the retention policy, and
//! `DeletionReport`. Which jobs a deletion takes is the projection's
//! (`projection/delete.rs`); running Bulk Delete jobs is the service's
//! (`service/bulk.rs`).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Engine, Session};
use crate::domain::{
    bulk_delete_criteria, bulk_delete_data, Actor, Deletion, DeletionCriteria, DomainError, Event, Job, OperationType,
    Privilege, Recurrence, RetentionPolicy, Timestamp, MAX_DELETE_IDS, MAX_IMMEDIATE_DELETE,
};
use crate::error::Error;
use crate::log::{Compaction, COLD};
use crate::projection::query::{Filter, Visibility};
use crate::projection::Projection;

/// A Bulk Delete system job (type 13) to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBulkDelete {
    /// The Bulk Delete job's name.
    pub name: String,
    /// Which completed jobs each run deletes.
    pub criteria: DeletionCriteria,
    /// When it first runs (now when absent).
    pub start: Option<Timestamp>,
    /// `FREQ=DAILY;INTERVAL=30` and the like (see [`Recurrence`]).
    pub recurrence: Option<String>,
}

/// A Bulk Delete job as `bulk-delete list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkDeleteRecord {
    /// The Bulk Delete job itself.
    pub job: Job,
    /// Its criteria, read from its data (`None` if the data holds none).
    pub criteria: Option<DeletionCriteria>,
    /// Jobs its runs deleted.
    pub successcount: u64,
    /// Jobs it failed to delete: always 0, as one deletion is one event
    /// (all of it or nothing); a run that fails is the job's own failure.
    pub failurecount: u64,
}

/// The platform's default recurring bulk deletion.
pub const DEFAULT_BULK_DELETE_NAME: &str = "Delete completed system jobs";

impl Engine {
    /// Creates a Bulk Delete job owned by `owner`, written by `actor`.
    pub(crate) fn create_bulk_delete(&self, actor: Actor, owner: &str, spec: &NewBulkDelete) -> Result<Job, Error> {
        spec.criteria.validate()?;
        let recurrence = spec.recurrence.as_deref().map(Recurrence::parse).transpose()?;
        self.commit(actor, |state, now| {
            let unit = state.directory().user(owner)?.business_unit.clone();
            let mut job = Job::new(&spec.name, OperationType::BULK_DELETE, owner, &unit, now);
            let start = spec.start.unwrap_or(now);
            job.postponeuntil = (start > now).then_some(start);
            job.recurrencepattern = recurrence.and(spec.recurrence.clone());
            job.recurrencestarttime = Some(start);
            job.data = bulk_delete_data(&spec.criteria);
            job.validate()?;
            Ok((vec![Event::JobCreated(Box::new(job.clone()))], job))
        })
    }

    /// Bulk Delete jobs named `name`, any state.
    pub(crate) fn bulk_delete_jobs_named(&self, name: &str) -> Result<Vec<Job>, Error> {
        let filter = Filter { operationtype: Some(OperationType::BULK_DELETE), ..Filter::default() };
        let state = self.state();
        let (jobs, _) = state.query_jobs(&filter, &Visibility::All, None, usize::MAX)?;
        Ok(jobs.into_iter().filter(|j| j.name == name).collect())
    }

    /// Installs the platform's default on a store that never had it: "Delete
    /// completed system jobs" (Workflow, Succeeded, older than 30 days),
    /// daily from the next midnight (UTC), owned by `admin`. An
    /// administrator changes it by canceling it and creating another; a
    /// canceled default stays canceled.
    pub fn install_default_bulk_delete(&self) -> Result<Option<Job>, Error> {
        if !self.bulk_delete_jobs_named(DEFAULT_BULK_DELETE_NAME)?.is_empty() {
            return Ok(None);
        }
        let day = crate::domain::MICROS_PER_DAY;
        let midnight = Timestamp::from_micros((self.now().micros().div_euclid(day) + 1) * day);
        let spec = NewBulkDelete {
            name: DEFAULT_BULK_DELETE_NAME.into(),
            criteria: DeletionCriteria::platform_default(),
            start: Some(midnight),
            recurrence: Some("FREQ=DAILY;INTERVAL=1".into()),
        };
        self.create_bulk_delete(Actor::System, crate::domain::ADMIN, &spec).map(Some)
    }
}

/// What a bulk deletion did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeletionReport {
    /// Jobs deleted.
    pub deleted: u64,
    /// Matching jobs beyond the limit, for another run.
    pub remaining_matching: u64,
    /// Bytes of events the log holds before and after (segment files
    /// without the active segment's preallocated tail).
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// From the request to the space being back (logical deletion and
    /// compaction).
    pub seconds: f64,
    /// Until the jobs were gone from every view.
    pub seconds_logical: f64,
    /// Writing a checkpoint afterwards, when the compaction left none
    /// usable (it rewrote a hot segment), so that a reopen need not replay
    /// the whole log; 0 when none was written (the usual case: a deletion
    /// by age gives its space back without one). The call blocks on it.
    pub seconds_checkpoint: f64,
    /// What the compaction afterwards did.
    pub compaction: Compaction,
    /// What failed after the deletion was durable (compaction, the
    /// checkpoint): the jobs are deleted all the same.
    pub warnings: Vec<String>,
}

impl Engine {
    /// Deletes the completed jobs matching `criteria` (at most `limit`,
    /// oldest `completedon` first), recorded as done by `actor` on behalf of
    /// `user`, who must hold Delete at Organization depth (checked against
    /// the state the deletion is written on): one event, after which no
    /// view shows them; returns how many were taken and how many more
    /// match. The space comes back with [`Engine::compact`]. Reached through
    /// [`Session::delete`], [`Session::delete_now`], [`super::Worker::bulk_delete`]
    /// and the service's Bulk Delete jobs.
    pub(crate) fn delete(
        &self,
        actor: Actor,
        user: &str,
        criteria: &DeletionCriteria,
        limit: u64,
        definition: Option<Uuid>,
    ) -> Result<Deletion, Error> {
        criteria.validate()?;
        self.commit(actor, |state, now| {
            state.directory().check(user, Privilege::Delete, None)?;
            let cutoff = criteria.cutoff(now);
            let sel = state.select_deletion(criteria, cutoff, limit)?;
            let d = Deletion {
                criteria: criteria.clone(),
                cutoff,
                limit,
                through: sel.through,
                deleted: sel.count,
                remaining: sel.remaining,
                definition,
            };
            Ok((vec![Event::JobsDeleted(Box::new(d.clone()))], d))
        })
    }

    /// Rewrites the log's segments without the events of deleted jobs, so
    /// that their space comes back; the active segment is sealed first if
    /// it holds any. Appends, reads and the service go on meanwhile; they
    /// pause only while the new segments are installed.
    ///
    /// Every segment holding such events is rewritten in one go: dropping
    /// some of a deleted job's events and keeping others would leave events
    /// of a job whose creation is gone, which replay rightly refuses. (So a
    /// deletion every few milliseconds seals a small segment each time; see
    /// ARCHITECTURE.md, "Deletion and compaction".)
    pub fn compact(&self) -> Result<Compaction, Error> {
        self.compact_some(Reclaim::Every)
    }

    /// [`Engine::compact`], taking of the garbage in cold segments what
    /// `reclaim` says.
    pub(crate) fn compact_some(&self, reclaim: Reclaim) -> Result<Compaction, Error> {
        if self.inner.read_only {
            return Err(crate::log::LogError::ReadOnly.into());
        }
        super::state::refuse_if_state_held()?;
        let _one = self.inner.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let plan = self.compaction_plan(reclaim);
        // Nothing in the log to drop: rows of runs may still be.
        let rewrite = if plan.is_empty() { None } else { Some(self.inner.log.rewrite(&plan)?) };
        let _no_writes = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.inner.state.write();
        // Batches placed before are made durable first: a failed install
        // poisons the log, and must not take them down with it; and a
        // run's file goes only once the deletions that took its rows are
        // in the log (a checkpoint that names it then opens its copy).
        if let Err(e) = self.inner.log.sync_through(state.last_seq() + 1) {
            drop(state);
            drop(_no_writes);
            self.revert_to_durable();
            return Err(e.into());
        }
        let snapshots = self.inner.dir.join("snapshots");
        let (mut done, mut unlinking) = (Compaction::default(), None);
        if let Some(rewrite) = rewrite {
            let (installed, old_files) = self.inner.log.install_keeping_files(rewrite)?;
            done = installed;
            // The old files go while the runs are copied: an unlink waits
            // for the disk, a copy mostly for the processor.
            unlinking = remove_meanwhile(old_files);
            // Cold runs that point into rewritten segments are rewritten
            // with their events' new offsets; when they cannot be written
            // (a full disk), they come back into memory instead, and the
            // next checkpoint freezes them again. The log is compacted
            // either way.
            let live = self.inner.log.generations();
            if state.relocate_runs(&snapshots, &done, &live).is_err() {
                let rewritten: Vec<u64> = done.segments.iter().map(|s| s.segment).collect();
                if let Err(e) = state.thaw_runs_in(&rewritten) {
                    // A damaged run: rebuild the state from the log (the
                    // checkpoints name the old segments: they are skipped).
                    drop(state);
                    drop(_no_writes);
                    self.rebuild_from_log();
                    if let Some(unlinking) = unlinking {
                        let _ = unlinking.join();
                    }
                    return Err(e);
                }
            }
            state.apply_compaction(&plan, &done);
        }
        // Runs with deleted rows (a deletion's own compaction: runs mostly
        // deleted) are copied without them (a full disk leaves them as they
        // are: only space is at stake).
        let live = self.inner.log.generations();
        let _ = state.shrink_runs(&snapshots, &live, reclaim == Reclaim::Whole);
        let unlink = state.release_runs(&snapshots);
        drop(state);
        drop(_no_writes);
        remove_files(unlink);
        if let Some(unlinking) = unlinking {
            let _ = unlinking.join();
        }
        // A segment rewritten, or a hot one removed: every checkpoint
        // points into segments as they were, and none can be used again,
        // so their space comes back too. (A cold segment removed whole
        // held only deleted jobs' events: checkpoints stay good.) The
        // compaction is installed whatever happens here: a checkpoint
        // left behind names the old generations and is skipped on open.
        if outdates_checkpoints(&done) {
            self.inner.state.read().named_by_no_checkpoint();
            let _ = Projection::remove_snapshots(&self.inner.dir.join("snapshots"));
            self.inner.checkpoint_seq.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(done)
    }

    /// The garbage a compaction drops: all of it in hot segments; in a
    /// cold segment, all of it when it is every frame there (the segment
    /// goes whole, unread), otherwise as `reclaim` says. Garbage recorded
    /// in a cold segment the log no longer holds (a deletion replayed
    /// after a crash that followed the segment's removal) is forgotten.
    fn compaction_plan(&self, reclaim: Reclaim) -> BTreeMap<u64, Vec<u64>> {
        let cold: std::collections::HashMap<u64, u64> =
            self.inner.log.segments().iter().filter_map(|s| s.cold.then_some((s.key, s.frames.unwrap_or(0)))).collect();
        let mut plan = BTreeMap::new();
        let mut stale = Vec::new();
        for (&key, offsets) in self.state().garbage() {
            if key & COLD == 0 {
                plan.insert(key, offsets.clone());
                continue;
            }
            let Some(&frames) = cold.get(&key) else {
                stale.push(key);
                continue;
            };
            let garbage = offsets.len() as u64;
            if reclaim == Reclaim::Every || garbage >= frames {
                plan.insert(key, offsets.clone());
            }
        }
        if !stale.is_empty() {
            let _no_writes = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
            self.inner.state.write().forget_garbage(&stale);
        }
        plan
    }
}

/// Removes `old` on a thread of its own, to be joined (here and now if
/// none can be started).
fn remove_meanwhile(old: crate::log::OldFiles) -> Option<std::thread::JoinHandle<()>> {
    let theirs = old.clone();
    match std::thread::Builder::new().name("joblog-unlink".into()).spawn(move || theirs.remove()) {
        Ok(handle) => Some(handle),
        Err(_) => {
            old.remove();
            None
        }
    }
}

/// Removes files the state no longer uses (runs it released), best
/// effort: one left behind costs space until the next checkpoint's
/// cleanup.
fn remove_files(paths: Vec<std::path::PathBuf>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// What a compaction takes of the garbage in a cold segment that is not
/// all garbage (a cold segment that is all garbage always goes whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// All of it: the segment is rewritten, the runs that point into it
    /// copied, and every run with deleted rows copied without them
    /// ([`Engine::compact`], `joblog compact`).
    Every,
    /// None (a deletion's own compaction: a deletion by age takes whole
    /// cold segments and leaves garbage in at most the one at its edge
    /// per class it names (System Job Type and Status Reason), which waits for the segment's end or for
    /// `joblog compact`; rewriting it would copy the runs that point into
    /// it, up to 2^20 jobs each).
    Whole,
}

/// Whether a compaction leaves every checkpoint pointing into segments
/// that are gone or changed (it removed them): a deletion then writes a
/// new one, or the next open would replay the whole log. Otherwise (a
/// deletion that took rows of runs and whole cold segments) the
/// checkpoints stay good, the runs' copies standing in for what they
/// name, and the next open replays the deletion from the last one.
pub(crate) fn outdates_checkpoints(done: &Compaction) -> bool {
    done.segments.iter().any(|s| s.kept || s.segment & COLD == 0)
}

impl Session {
    /// The Immediately option of bulk deletion (`docs/domain.md` §7): deletes
    /// at most `limit` (up to [`MAX_IMMEDIATE_DELETE`]) completed jobs
    /// matching `criteria`, oldest first, then compacts the log so the
    /// space is back before it returns. Needs Delete at Organization depth,
    /// and criteria that include System Job Type Workflow.
    pub fn delete_now(&self, criteria: &DeletionCriteria, limit: u64) -> Result<DeletionReport, Error> {
        let started = std::time::Instant::now();
        self.engine.state().directory().check(&self.user, Privilege::Delete, None)?;
        criteria.validate()?;
        if !criteria.types.contains(&OperationType::WORKFLOW) {
            return Err(DomainError::ImmediatelyNeedsWorkflow.into());
        }
        if !(1..=MAX_IMMEDIATE_DELETE).contains(&limit) {
            return Err(DomainError::Invalid {
                what: "deletion limit",
                reason: format!("{limit}: one Immediately run deletes between 1 and {MAX_IMMEDIATE_DELETE} jobs"),
            }
            .into());
        }
        let bytes_before = self.engine.inner.log.data_bytes();
        let d = self.engine.delete(self.actor(), &self.user, criteria, limit, None)?;
        let seconds_logical = started.elapsed().as_secs_f64();
        // From here on the deletion is durable and shown: what follows only
        // gives the space back, and its failure (a full disk) is reported
        // as a warning, not as a failed deletion. The garbage stays listed;
        // the next compaction takes it.
        let mut warnings = Vec::new();
        let compaction = match self.engine.compact_some(Reclaim::Whole) {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!(
                    "deleted {} jobs; their space comes back at the next compaction (`joblog compact`): compacting failed: {e}",
                    d.deleted
                ));
                Compaction::default()
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let bytes_after = self.engine.inner.log.data_bytes();
        let mut seconds_checkpoint = 0.0;
        if d.deleted > 0 && outdates_checkpoints(&compaction) {
            let at = std::time::Instant::now();
            if let Err(e) = self.engine.checkpoint() {
                warnings.push(format!("no checkpoint written after the deletion (the next open replays the log): {e}"));
            }
            seconds_checkpoint = at.elapsed().as_secs_f64();
        }
        Ok(DeletionReport {
            warnings,
            deleted: d.deleted,
            remaining_matching: d.remaining,
            bytes_before,
            bytes_after,
            seconds,
            seconds_logical,
            seconds_checkpoint,
            compaction,
        })
    }

    /// Deletes at most `limit` completed jobs matching `criteria`, oldest
    /// `completedon` first, as one event, without giving their space back
    /// (that is [`Session::compact`]; [`Session::delete_now`] does both).
    /// Needs Delete at Organization depth.
    pub fn delete(&self, criteria: &DeletionCriteria, limit: u64) -> Result<Deletion, Error> {
        self.engine.delete(self.actor(), &self.user, criteria, limit, None)
    }

    /// Deletes the chosen jobs `ids` (the platform's delete of one system job
    /// record, or a batch of them), as one event, all of them or none: a
    /// refusal of any id refuses the batch and writes nothing. Each job must
    /// exist and be readable by this user ([`DomainError::NotFound`]
    /// otherwise, whether it never existed, was deleted, or is another's the
    /// user may not read), be deletable by them (Delete at a depth that
    /// covers its owner, [`DomainError::Denied`]), and be Completed
    /// ([`DomainError::NotDeletable`]). An id named twice is deleted once.
    /// Between 1 and [`MAX_DELETE_IDS`] ids ([`DomainError::Invalid`]).
    /// Returns the ids deleted, each once, in the order asked.
    ///
    /// The jobs leave every view and count at once; their events are
    /// garbage that the next compaction ([`Session::compact`], or the
    /// service's after a Bulk Delete run) removes from the log.
    pub fn delete_jobs(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, Error> {
        self.delete_jobs_if(ids, |_| true)
    }

    /// [`Session::delete_jobs`] of one job on a condition, as
    /// [`Session::act_if`]: `unchanged` is given its `modifiedon` in the
    /// same write as the deletion; when it says no, nothing is deleted
    /// ([`DomainError::Changed`]).
    pub fn delete_job_if(&self, id: Uuid, unchanged: impl Fn(Timestamp) -> bool) -> Result<(), Error> {
        self.delete_jobs_if(&[id], unchanged).map(drop)
    }

    fn delete_jobs_if(&self, ids: &[Uuid], unchanged: impl Fn(Timestamp) -> bool) -> Result<Vec<Uuid>, Error> {
        if ids.is_empty() {
            return Err(
                DomainError::Invalid { what: "job ids", reason: "name at least one job to delete".into() }.into()
            );
        }
        if ids.len() > MAX_DELETE_IDS {
            return Err(DomainError::Invalid {
                what: "job ids",
                reason: format!("{} ids: one deletion takes at most {MAX_DELETE_IDS}", ids.len()),
            }
            .into());
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let unique: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        self.engine.commit(self.actor(), |state, _now| {
            let dir = state.directory();
            for &id in &unique {
                let target = state.write_target(id)?.ok_or_else(|| DomainError::job_not_found(id))?;
                let owner = Some((target.owner.as_str(), target.owningbusinessunit.as_str()));
                // A job the user may not read is not there for them.
                match dir.check(&self.user, Privilege::Read, owner) {
                    Err(DomainError::Denied { .. }) => return Err(DomainError::job_not_found(id).into()),
                    other => other?,
                }
                dir.check(&self.user, Privilege::Delete, owner)?;
                super::actions::check_unchanged(state, id, &unchanged)?;
                if !target.status.is_completed() {
                    return Err(DomainError::NotDeletable { job: id, current: target.status }.into());
                }
            }
            Ok((vec![Event::JobsDeletedById { ids: unique.clone() }], unique.clone()))
        })
    }

    /// Creates a Bulk Delete system job (type 13) that the service runs at
    /// its start time and again per its recurrence. Needs Delete at
    /// Organization depth, as it deletes other users' jobs too.
    pub fn create_bulk_delete(&self, spec: &NewBulkDelete) -> Result<Job, Error> {
        self.engine.state().directory().check(&self.user, Privilege::Delete, None)?;
        self.engine.create_bulk_delete(self.actor(), &self.user, spec)
    }

    /// The retention policy: one daily Bulk Delete job per Completed
    /// reason, over every System Job Type joblog names.
    pub fn set_retention(&self, policy: RetentionPolicy) -> Result<Vec<Job>, Error> {
        let types: Vec<OperationType> = OperationType::named().collect();
        let mut jobs = Vec::new();
        for (reason, days) in [
            (crate::domain::StatusReason::Succeeded, policy.succeeded_days),
            (crate::domain::StatusReason::Failed, policy.failed_days),
            (crate::domain::StatusReason::Canceled, policy.canceled_days),
        ] {
            let spec = NewBulkDelete {
                name: format!("Retention: {} jobs older than {days} days", reason.name()),
                criteria: DeletionCriteria { types: types.clone(), reasons: vec![reason], older_than_days: days },
                start: None,
                recurrence: Some("FREQ=DAILY".into()),
            };
            jobs.push(self.create_bulk_delete(&spec)?);
        }
        Ok(jobs)
    }

    /// The Bulk Delete jobs this user may see, newest first, with their counts.
    pub fn bulk_delete_jobs(&self) -> Result<Vec<BulkDeleteRecord>, Error> {
        let filter = Filter { operationtype: Some(OperationType::BULK_DELETE), ..Filter::default() };
        let (jobs, _) = self.list(&filter, None, usize::MAX)?;
        let state = self.engine.state();
        Ok(jobs
            .into_iter()
            .map(|job| {
                let successcount = state
                    .deletions()
                    .iter()
                    .filter(|d| d.deletion.definition == Some(job.id))
                    .map(|d| d.deletion.deleted)
                    .sum();
                BulkDeleteRecord { criteria: bulk_delete_criteria(&job), job, successcount, failurecount: 0 }
            })
            .collect())
    }

    /// Compaction ([`Engine::compact`]) as this user: rewriting the whole
    /// log is an administrative write (Write at Organization depth).
    pub fn compact(&self) -> Result<Compaction, Error> {
        self.require_organization(Privilege::Write)?;
        self.engine.compact()
    }
}
