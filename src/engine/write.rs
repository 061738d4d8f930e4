//! The write path every change goes through: under the engine's write
//! lock, build a batch against the current state, stamp it (time never
//! goes backwards; a live store's clock is checked against the system's),
//! append it to the log as one atomic batch, apply it to the projection,
//! and take a checkpoint when one is due. It decides nothing about what a
//! batch holds: its callers (the other files here) validate and build it.

use std::collections::HashMap;

use uuid::Uuid;

use super::{check_clock_skew, Engine, MAX_CLOCK_SKEW_SECS};
use crate::domain::{Actor, Envelope, Event, Job, Timestamp, Transition, EVENT_VERSION};
use crate::error::Error;
use crate::log::{Batch, Log};
use crate::projection::{JobStatus, Projection, PREFETCH_AHEAD};

impl Engine {
    /// Refuses a write stamped `now` when that is further ahead of the
    /// system clock than [`MAX_CLOCK_SKEW_SECS`], unless the store is a
    /// simulation.
    fn check_clock(&self, now: Timestamp) -> Result<(), Error> {
        if self.inner.simulation {
            return Ok(());
        }
        check_clock_skew(now)
    }

    /// Checks and appends one atomic batch of events built by `build`
    /// against the current state, all stamped now, then applies it.
    pub(super) fn commit<T>(
        &self,
        actor: Actor,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Event>, T), Error>,
    ) -> Result<T, Error> {
        self.commit_then(actor, Batching::Live, build, |_, _, out| Ok(out))
    }

    /// [`Engine::commit`] of a bulk batch (an import): see [`Batching::Bulk`].
    pub(super) fn commit_bulk<T>(
        &self,
        actor: Actor,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Event>, T), Error>,
    ) -> Result<T, Error> {
        self.commit_then(actor, Batching::Bulk, build, |_, _, out| Ok(out))
    }

    /// [`Engine::commit`], and `after` reads the answer from the state the
    /// batch leaves (under the write lock: nothing else is applied in
    /// between), returned once the batch is durable: a writer needs no
    /// read of its own result after its commit (which would wait for the
    /// next writers' batches to be durable too).
    pub(super) fn commit_then<T, U>(
        &self,
        actor: Actor,
        batching: Batching,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Event>, T), Error>,
        after: impl FnOnce(&Projection, &Log, T) -> Result<U, Error>,
    ) -> Result<U, Error> {
        self.commit_envelopes_then(
            |state, now| {
                if let Some(newest) = state.last_at() {
                    if now < newest {
                        return Err(Error::TimeWentBackwards { at: now.to_rfc3339(), newest: newest.to_rfc3339() });
                    }
                }
                let (events, out) = build(state, now)?;
                let envelopes = events
                    .into_iter()
                    .map(|event| Envelope { version: EVENT_VERSION, at: now, actor: actor.clone(), event })
                    .collect();
                Ok((envelopes, None, out))
            },
            after,
            batching,
        )
    }

    /// The write path for a bulk batch of envelopes `build` stamps itself
    /// (a load), with their encoding when `build` made it.
    pub(super) fn commit_envelopes_bulk<T>(
        &self,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Envelope>, Option<Encoded>, T), Error>,
    ) -> Result<T, Error> {
        self.commit_envelopes_then(build, |_, _, out| Ok(out), Batching::Bulk)
    }

    /// The write path, a pipelined group commit: under the write lock,
    /// build the batch against the state, place it in the log, apply it, and
    /// take a checkpoint when due; then, the lock released, wait until the
    /// batch is durable (the next writer builds and places meanwhile, and
    /// one sync covers both). The writers see what is applied; readers see
    /// only what is durable (`Engine::read_state`). A failed sync takes the
    /// state back to what is durable (`Engine::revert_to_durable`). A
    /// refusal, or an answer without a batch, is said once the state it was
    /// judged against is durable, as a reader would see it.
    fn commit_envelopes_then<T, U>(
        &self,
        build: impl FnOnce(&Projection, Timestamp) -> Result<(Vec<Envelope>, Option<Encoded>, T), Error>,
        after: impl FnOnce(&Projection, &Log, T) -> Result<U, Error>,
        batching: Batching,
    ) -> Result<U, Error> {
        super::state::refuse_if_state_held()?;
        let one_writer = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
        // Writers read what is applied, durable or not: their own
        // acknowledgement waits for a sync that covers every earlier batch.
        // A live batch is judged with the indices that bulk batches before
        // it stopped keeping built again.
        let applied = match batching {
            Batching::Live => self.indexed_read(),
            Batching::Bulk => self.inner.state.read(),
        };
        // What `build` and `after` call runs as under a `StateGuard`: a
        // write there is refused, a read joins this one.
        let _held = super::state::Mark::new(self);
        let mut now = self.inner.clock.now();
        if self.inner.clock.is_wall_clock() {
            // Event times never go backwards, but a wall clock a little
            // behind the newest event must not block every write until it
            // catches up: how far ahead an event may be is bounded by
            // `check_clock` (docs/operations.md, "The clock").
            // A store already further ahead (written by an older joblog)
            // is refused as before, with its way out in the message.
            let limit = now.plus_micros(MAX_CLOCK_SKEW_SECS * 1_000_000);
            if let Some(newest) = applied.last_at().filter(|&n| n <= limit) {
                now = now.max(newest);
            }
        }
        let (envelopes, encoded, out) = match build(&applied, now) {
            Ok((envelopes, encoded, out)) if !envelopes.is_empty() => (envelopes, encoded, out),
            // Nothing to write: a refusal, or an answer, from the state as
            // applied; said once that state is durable.
            built => {
                let said = built.and_then(|(_, _, out)| after(&applied, &self.inner.log, out));
                let end = applied.last_seq() + 1;
                drop(applied);
                drop(one_writer);
                if let Err(e) = self.inner.log.sync_through(end) {
                    self.revert_to_durable();
                    return Err(e.into());
                }
                return said;
            }
        };
        drop(applied);
        self.check_clock(now)?;
        let Encoded { batch, lens } = match encoded {
            Some(e) => e,
            None => Encoded::of(&envelopes)?,
        };
        debug_assert_eq!(lens.len(), envelopes.len(), "the encoding is of the batch's envelopes");
        let placed = self.inner.log.place(batch)?;
        let appended = placed.appended().clone();
        let mut state = self.inner.state.write();
        if self.inner.log.poisoned().is_some() {
            // A sync failed since this batch was placed: unless a sync before
            // it covered the batch, it will never be durable (the state is
            // being taken back to what is), so it is not applied.
            self.inner.log.sync_through(appended.seqs.end)?;
        }
        if batching == Batching::Bulk {
            state.defer_indexing_for(envelopes.len());
        }
        let mut pos = appended.first;
        for (k, ((env, seq), len)) in envelopes.iter().zip(appended.seqs.clone()).zip(lens).enumerate() {
            if let Some(ahead) = envelopes.get(k + PREFETCH_AHEAD) {
                state.prefetch(ahead);
            }
            if let Err(e) = state.apply(env, seq, pos) {
                // A batch its builder checked does not apply (a bug): it
                // must never become durable, and the state may hold part of
                // it. The log takes no more writes; the state goes back to
                // what is durable.
                self.inner.log.poison(format!("a batch did not apply: {e}"));
                drop(state);
                drop(one_writer);
                self.revert_to_durable();
                return Err(e);
            }
            pos = pos.after(len);
        }
        let due = self.inner.config.checkpoint_every_events > 0
            && state.last_seq() - self.inner.checkpoint_seq.load(std::sync::atomic::Ordering::Relaxed)
                >= self.inner.config.checkpoint_every_events;
        let state = parking_lot::RwLockWriteGuard::downgrade(state);
        let answer = after(&state, &self.inner.log, out);
        drop(state);
        if due {
            // A checkpoint holds only what is durable: sync first (this
            // thread holds the write lock, so nothing more is applied).
            if let Err(e) = self.inner.log.sync_through(appended.seqs.end) {
                drop(one_writer);
                self.revert_to_durable();
                return Err(e.into());
            }
            // Writers wait (this thread holds the write lock); readers do not.
            // The write is durable and applied: a checkpoint that fails
            // (a full disk) must not report it as failed.
            *self.inner.checkpoint_failed.lock().unwrap_or_else(|e| e.into_inner()) =
                self.checkpoint_locked(crate::projection::CHECKPOINTS_KEPT).err().map(|e| e.to_string());
        }
        drop(one_writer);
        if let Err(e) = placed.durable() {
            self.revert_to_durable();
            return Err(e.into());
        }
        answer
    }
}

/// A batch's envelopes as the log's payloads, with each one's length.
pub(super) struct Encoded {
    batch: Batch,
    lens: Vec<usize>,
}

/// Below this many events a batch is encoded on the committing thread: a
/// thread of its own costs more than the work.
const ENCODE_ALONGSIDE_EVENTS: usize = 1024;

impl Encoded {
    /// `envelopes`, encoded.
    fn of(envelopes: &[Envelope]) -> Result<Self, Error> {
        let mut batch = Batch::new();
        let mut lens = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            lens.push(batch.push_with(|out| env.encode_into(out))?);
        }
        Ok(Encoded { batch, lens })
    }

    /// `envelopes` encoded on a second core while `check` runs on this
    /// one (a large batch; a small one is encoded after `check`, here).
    /// The encoding of a batch `check` refuses is dropped.
    pub(super) fn alongside<T>(
        envelopes: &[Envelope],
        check: impl FnOnce() -> Result<T, Error>,
    ) -> Result<(Option<Self>, T), Error> {
        if envelopes.len() < ENCODE_ALONGSIDE_EVENTS {
            return Ok((None, check()?));
        }
        std::thread::scope(|s| {
            // No thread to be had: encoded here, after the check.
            let Ok(encoding) = std::thread::Builder::new().spawn_scoped(s, || Encoded::of(envelopes)) else {
                return Ok((None, check()?));
            };
            let checked = check();
            let encoded = encoding.join();
            // A refusal is the answer, whatever became of the encoding.
            let checked = checked?;
            let encoded = encoded.unwrap_or_else(|e| std::panic::resume_unwind(e))?;
            Ok((Some(encoded), checked))
        })
    }
}

/// How a batch's changes reach the indices of the projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Batching {
    /// Every index is kept up to date as the batch applies.
    Live,
    /// A bulk batch (a load, an import) of jobs' events only: its builder
    /// reads jobs by id, never an index, and when the batch is large
    /// against the hot rows the indices are built once after it (and the
    /// bulk batches that follow it) instead of kept live
    /// (`Projection::defer_indexing_for`). Readers and live writers build
    /// them before they look.
    Bulk,
}

/// The status of each job as the batch being built leaves it: the state's,
/// changed by the batch's own earlier events (a Lock then a Fail of one
/// job; a creation then its transitions). The one overlay of pending
/// changes a batch is checked against (`Worker::steps`, `Session::load`).
pub(super) struct Pending<'s> {
    state: &'s Projection,
    /// Hashed as the state's own table of ids hashes them (`projection/ids.rs`).
    changed: HashMap<Uuid, JobStatus, rustc_hash::FxBuildHasher>,
}

impl<'s> Pending<'s> {
    pub(super) fn new(state: &'s Projection) -> Self {
        Self { state, changed: HashMap::default() }
    }

    /// Job `id` as the batch so far leaves it (`None`: no such job).
    pub(super) fn get(&self, id: Uuid) -> Result<Option<JobStatus>, Error> {
        match self.changed.get(&id) {
            Some(s) => Ok(Some(*s)),
            None => self.state.job_status(id),
        }
    }

    /// Records the creation of `job` by the batch.
    pub(super) fn created(&mut self, job: &Job) {
        let status = JobStatus {
            status: job.status,
            operationtype: job.operationtype,
            postponeuntil: job.postponeuntil,
            retrycount: job.retrycount,
        };
        self.changed.insert(job.id, status);
    }

    /// Records transition `t` by the batch (of a job [`Pending::get`] finds).
    pub(super) fn moved(&mut self, t: &Transition) -> Result<(), Error> {
        if let Some(before) = self.get(t.job)? {
            let after = JobStatus { status: t.to, postponeuntil: t.postponeuntil, retrycount: t.retrycount, ..before };
            self.changed.insert(t.job, after);
        }
        Ok(())
    }
}
