//! Reading the whole state, and what an embedder may know of the log.
//!
//! [`Engine::state`] hands out a [`StateGuard`]: the projection, read-locked for
//! as long as it is held. A write needs the lock for writing, so a write on
//! the thread that holds a `StateGuard` could only wait for itself: each live
//! `StateGuard` marks its thread, and the write path (and compaction) refuses
//! on a marked thread with [`Error::StateHeld`] instead of hanging. Other
//! threads' writes wait until it drops, as any reader makes them.
//!
//! The log itself is not handed out (an append behind the engine's back
//! would leave a store that no longer opens): its figures, its checks and
//! the cold columns of jobs come through the methods here.

use parking_lot::RwLockReadGuard;
use std::cell::RefCell;
use std::ops::Deref;

use uuid::Uuid;

use super::Engine;
use crate::domain::{Envelope, Job, Timestamp};
use crate::error::Error;
use crate::log::{Log, LogStats, RecoveryReport, SegmentInfo, VerifyReport};
use crate::projection::query::{Cursor, Filter, Visibility};
use crate::projection::Projection;

thread_local! {
    /// The engines whose state this thread holds now (a [`StateGuard`], or
    /// a commit building its batch), one entry per hold: each engine's
    /// shared part by address.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread holds a [`StateGuard`]: then a write would deadlock.
pub(super) fn refuse_if_state_held() -> Result<(), Error> {
    if HELD.with(|h| !h.borrow().is_empty()) {
        return Err(Error::StateHeld);
    }
    Ok(())
}

/// The mark a live [`StateGuard`] leaves on its thread (a `StateGuard` is not `Send`:
/// it drops on the thread it marked): which engine's state it holds.
pub(super) struct Mark(usize);

impl Mark {
    pub(super) fn new(engine: &Engine) -> Self {
        let key = engine.key();
        HELD.with(|h| h.borrow_mut().push(key));
        Mark(key)
    }

    /// Whether this thread holds `engine`'s state.
    fn holds(engine: &Engine) -> bool {
        HELD.with(|h| h.borrow().contains(&engine.key()))
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut held = h.borrow_mut();
            let at = held.iter().rposition(|&k| k == self.0).expect("a mark is dropped once");
            held.swap_remove(at);
        });
    }
}

/// A projection with the log it reads cold columns from: the live state
/// ([`StateGuard`], from [`Engine::state`]) or one rebuilt by a replay
/// ([`Replayed`], from [`Engine::replay_until`]). It reads as a
/// [`Projection`] (counts, filters, indices) and adds the reads that need
/// the log.
pub struct View<'e, P> {
    state: P,
    log: &'e Log,
    _mark: Option<Mark>,
}

/// The current state, read-locked while it is held: drop it before writing
/// on the same thread (a write there is refused with [`Error::StateHeld`]).
///
/// ```
/// # use std::sync::Arc;
/// # use joblog::{Config, Engine, NewJob, Error};
/// # use joblog::domain::{ManualClock, OperationType, Timestamp};
/// # let dir = tempfile::tempdir().unwrap();
/// # let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-31T12:00:00Z").unwrap()));
/// let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
/// let admin = engine.session("admin").unwrap();
/// let state = engine.state();
/// let refused = admin.create(NewJob::new("e", OperationType::BULK_EMAIL));
/// assert!(matches!(refused, Err(Error::StateHeld)));
/// drop(state);
/// admin.create(NewJob::new("e", OperationType::BULK_EMAIL)).unwrap();
/// ```
pub type StateGuard<'e> = View<'e, RwLockReadGuard<'e, Projection>>;

/// A state rebuilt from the log by a replay (the audit view).
pub type Replayed<'e> = View<'e, Box<Projection>>;

impl<P: Deref<Target = Projection>> Deref for View<'_, P> {
    type Target = Projection;

    fn deref(&self) -> &Projection {
        &self.state
    }
}

impl<P: Deref<Target = Projection>> View<'_, P> {
    /// A job's full row (cold columns read from the log).
    pub fn job(&self, id: Uuid) -> Result<Job, Error> {
        self.state.job(id, self.log)
    }

    /// Every event of a job, oldest first, with its sequence number.
    pub fn history(&self, id: Uuid) -> Result<Vec<(u64, Envelope)>, Error> {
        self.state.history(id, self.log)
    }

    /// One page of the jobs matching `filter` that `vis` lets through, with
    /// every column, and the cursor after it when there may be more.
    pub fn query_jobs(
        &self,
        filter: &Filter,
        vis: &Visibility,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        self.state.query_jobs(filter, vis, after, limit, self.log)
    }
}

impl Engine {
    /// The current state, for reading; see [`StateGuard`] (do not write on this
    /// thread while holding it).
    pub fn state(&self) -> StateGuard<'_> {
        View { state: self.read_state(), log: &self.inner.log, _mark: Some(Mark::new(self)) }
    }

    /// The state for the engine's own reads (unmarked: the engine never
    /// writes while holding it). On a thread that holds a [`StateGuard`] of
    /// this engine (or builds a batch for it) the read does not queue
    /// behind a writer that waits for that guard (which would wait for
    /// ever): it joins the readers at once.
    ///
    /// Readers see only what is durable: a state that holds a batch placed
    /// but not yet synced (`commit_envelopes` applies before it waits) is
    /// handed out once this thread has synced it, or seen it synced (one
    /// sync, shared with the writers waiting for it). The first wait lets
    /// the state go, so writers keep applying meanwhile; should the state
    /// have moved on again, the next wait holds it (a reader waits for two
    /// syncs at most). A thread that holds a `StateGuard` already saw that
    /// state durable and indexed, and it cannot change while held. Indices
    /// that bulk batches stopped keeping are built first
    /// ([`Engine::indexed_read`]).
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, Projection> {
        if Mark::holds(self) {
            return self.inner.state.read_recursive();
        }
        let mut first = true;
        loop {
            let state = self.indexed_read();
            let end = state.last_seq() + 1;
            if end <= self.inner.log.next_seq() {
                return state;
            }
            let held = (!std::mem::take(&mut first)).then_some(state);
            let synced = self.inner.log.sync_through(end);
            match (synced, held) {
                (Ok(()), Some(state)) => return state,
                (Ok(()), None) => {}
                (Err(_), held) => {
                    drop(held);
                    self.revert_to_durable();
                }
            }
        }
    }

    /// The state read-locked, with the indices that bulk batches stopped
    /// keeping (`Projection::defer_indexing_for`) built first, by this
    /// thread; it keeps the state from the write lock it built them under,
    /// so no bulk batch can defer them again in between.
    pub(super) fn indexed_read(&self) -> RwLockReadGuard<'_, Projection> {
        let state = self.inner.state.read();
        if !state.indexing_deferred() {
            return state;
        }
        drop(state);
        let mut state = self.inner.state.write();
        state.finish_indexing();
        parking_lot::RwLockWriteGuard::downgrade(state)
    }

    /// This engine's key in a thread's [`Mark`]s: its shared part's address.
    fn key(&self) -> usize {
        std::sync::Arc::as_ptr(&self.inner) as usize
    }

    pub(super) fn replayed(&self, state: Projection) -> Replayed<'_> {
        View { state: Box::new(state), log: &self.inner.log, _mark: None }
    }

    /// The sequence number after the last durable event (readers see up to
    /// it; batches being made durable already hold numbers from it on).
    pub fn next_seq(&self) -> u64 {
        self.inner.log.next_seq()
    }

    /// Bytes the log's segment files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.log.disk_bytes()
    }

    /// Bytes of events the log holds (segment files without the active
    /// segment's preallocated tail).
    pub fn data_bytes(&self) -> u64 {
        self.inner.log.data_bytes()
    }

    /// Unmaps from this process every page of the store's files it has
    /// read (log segments and cold runs). Nothing is lost nor changed: the
    /// pages stay in the page cache and are mapped again when read. With
    /// the page cache dropped after it, the next reads are cold, as after
    /// the kernel evicted them under memory pressure (`joblog-bench`
    /// measures cold pages so); dropping the page cache alone leaves every
    /// mapped page in place.
    pub fn release_mapped_pages(&self) -> Result<(), Error> {
        self.inner.log.release_mapped_pages()?;
        for run in self.read_state().cold_runs() {
            run.release_mapped_pages()?;
        }
        Ok(())
    }

    /// What the log's writer has done since the store was opened.
    pub fn log_stats(&self) -> LogStats {
        self.inner.log.stats()
    }

    /// The log's segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.log.segments()
    }

    /// What opening the log found and repaired (a torn tail cut).
    pub fn recovery(&self) -> &RecoveryReport {
        self.inner.log.recovery()
    }

    /// Checks every frame's checksum and the sealed segments against the
    /// manifest: the log's part of [`Engine::verify`], without the replay.
    pub fn verify_log(&self) -> Result<VerifyReport, Error> {
        Ok(self.inner.log.verify()?)
    }

    /// Seals the active segment (the next event starts a new one), so that
    /// compaction can rewrite what it holds.
    pub fn seal(&self) -> Result<(), Error> {
        Ok(self.inner.log.seal()?)
    }

    /// A reader that follows the log from sequence number `from_seq`: each
    /// [`EventTail::next_events`] returns what has been written (durably)
    /// since the last, for live streams and audits that follow the log.
    /// Finding `from_seq` scans its segment once; after that each call
    /// costs only what it returns.
    pub fn tail(&self, from_seq: u64) -> EventTail {
        EventTail { engine: self.clone(), iter: self.inner.log.iter_from(from_seq) }
    }

    /// The time the engine's clock gives now.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

/// A reader that follows the log (see [`Engine::tail`]).
pub struct EventTail {
    engine: Engine,
    iter: crate::log::LogIter,
}

impl EventTail {
    /// Up to `max` events written since the last call (or since the tail's
    /// start), oldest first, each with its sequence number; empty when
    /// nothing new is published. Checksums are verified; an event that does
    /// not decode is [`Error::Corrupt`] with its place.
    pub fn next_events(&mut self, max: usize) -> Result<Vec<(u64, Envelope)>, Error> {
        let log = &self.engine.inner.log;
        let mut out = Vec::new();
        for rec in self.iter.by_ref().take(max) {
            let rec = rec?;
            out.push((rec.seq(), crate::projection::decode_event(log, rec.seq(), rec.position(), rec.payload())?));
        }
        Ok(out)
    }
}
