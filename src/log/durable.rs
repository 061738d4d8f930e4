//! Who makes written frames durable, and when readers see them.
//!
//! The writer only *places* a batch (from the appender's thread, or the
//! writer thread's): it copies the frames into the active segment's map
//! and returns their sequence numbers and positions. Making them durable is a separate step that any thread may
//! take, one at a time (the *leader*): with [`Sync::EveryBatch`] each
//! appender waits for its own batch ([`Placed::durable`]); the first to
//! get the lead syncs everything placed so far, and those that were placed
//! meanwhile find their batch already durable when their turn comes. So
//! concurrent commits share syncs without the writer thread ever waiting
//! for the disk, and a caller may do other work (apply its batch to a
//! projection, release its own lock) between placing and waiting: a
//! pipelined group commit.
//!
//! Readers of the log (iteration, scans, [`Log::next_seq`]) see frames up
//! to the *visible* horizon only: with `EveryBatch`, what is durable; in
//! the other modes, what the writer thread placed and answered for (as
//! before: those modes trade durability for speed); a read-only log, every
//! frame it serves. Reading one frame by its position
//! ([`Log::read_at`]) reaches every placed frame: whoever holds a placed
//! position is the appender, or was told of it by the appender.
//!
//! A failed sync *poisons* the log: what reached the disk is unknown, so
//! every later append and sync is refused until the log is reopened, and
//! the horizon stays where the last successful sync left it.
//!
//! [`Sync::EveryBatch`]: super::Sync::EveryBatch
//! [`Log::next_seq`]: super::Log::next_seq
//! [`Log::read_at`]: super::Log::read_at

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::Instant;

use super::error::io_err;
use super::map::SegmentMap;
use super::{Appended, LogError, Shared};

/// What the leader needs to know of the active segment.
#[derive(Default)]
pub(crate) struct SyncState {
    /// The active segment's map and file (none before the first segment).
    active: Option<(Arc<SegmentMap>, PathBuf)>,
    /// End of its frames known to be on disk.
    synced_off: usize,
    /// End of its frames placed so far.
    written_off: usize,
    /// End of the zeros written ahead of them (`writer::ZERO_AHEAD`),
    /// synced with them.
    zeroed_off: usize,
    /// The sequence number after the last placed frame.
    written_next: u64,
    /// Why the log refuses to write, once a write or a sync failed.
    poisoned: Option<String>,
    /// Whether an appender has taken (or is taking) the lead to sync: the
    /// others wait for it in `waiters` instead of queueing for the lead.
    syncing: bool,
    /// Appenders waiting for the sync in flight, oldest first.
    waiters: Vec<Waiter>,
}

/// An appender waiting for the sync in flight: where its batch ends, and
/// its thread, woken when a sync covers the batch or when it is to sync
/// next.
struct Waiter {
    end: u64,
    thread: Thread,
}

/// The lead and the state it syncs from.
#[derive(Default)]
pub(crate) struct Durability {
    /// Held by the one thread syncing (and by the writer while it rolls, so
    /// that no sync sees a segment half sealed).
    lead: Mutex<()>,
    state: Mutex<SyncState>,
}

impl SyncState {
    /// Takes off the list the waiters to wake: those whose batch readers
    /// see (below `visible`), all of them once the log is poisoned, and,
    /// when no sync is in flight, the oldest other one, to sync next. No
    /// thread is woken only to find that it must wait again, and none is
    /// left waiting with no sync to wake it.
    fn release(&mut self, visible: u64) -> Vec<Thread> {
        let (all, mut next) = (self.poisoned.is_some(), !self.syncing);
        let mut woken = Vec::new();
        self.waiters.retain_mut(|w| {
            let wake = all || w.end <= visible || std::mem::take(&mut next);
            if wake {
                woken.push(w.thread.clone());
            }
            !wake
        });
        woken
    }
}

/// Wakes the threads [`SyncState::release`] took off the list, once the
/// state's lock is let go.
fn wake(woken: Vec<Thread>) {
    for t in woken {
        t.unpark();
    }
}

/// An appender's sync in flight: when it ends, however it ends, the
/// waiters are released ([`SyncState::release`]).
struct Syncing<'a>(&'a Shared);

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        let mut s = self.0.durability.state();
        s.syncing = false;
        let woken = s.release(self.0.next_seq.load(Ordering::Acquire));
        drop(s);
        wake(woken);
    }
}

/// The lead, held: the active segment does not change while it is held.
pub(crate) struct Lead<'a> {
    _guard: MutexGuard<'a, ()>,
}

impl Durability {
    fn state(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lead(&self) -> Lead<'_> {
        Lead { _guard: self.lead.lock().unwrap_or_else(|e| e.into_inner()) }
    }

    /// Why the log refuses to write, if it does.
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.state().poisoned.clone()
    }

    pub(crate) fn poison(&self, why: String) {
        self.state().poisoned.get_or_insert(why);
    }

    /// How far the active segment is on disk (the durable mark of the
    /// frames placed now: a lower bound while a sync is in flight).
    pub(crate) fn synced_off(&self) -> usize {
        self.state().synced_off
    }

    /// The active segment's frames placed and zeros written ahead, ends.
    #[cfg(test)]
    pub(crate) fn placed_ends(&self) -> (usize, usize) {
        let s = self.state();
        (s.written_off, s.zeroed_off)
    }

    /// A new active segment, nothing placed in it yet past `start`.
    pub(crate) fn set_active(&self, map: Arc<SegmentMap>, path: PathBuf, start: usize, next: u64) {
        let mut s = self.state();
        s.active = Some((map, path));
        s.synced_off = start;
        s.written_off = start;
        s.zeroed_off = start;
        s.written_next = s.written_next.max(next);
    }

    /// Frames placed up to `off` of the active segment, zeros written
    /// ahead of them up to `zeroed`, the next sequence number `next`.
    pub(crate) fn placed(&self, off: usize, zeroed: usize, next: u64) {
        let mut s = self.state();
        s.written_off = off;
        s.zeroed_off = zeroed;
        s.written_next = next;
    }
}

impl Shared {
    /// Syncs everything placed so far and moves the visible horizon to it.
    /// The caller holds the lead.
    pub(crate) fn sync_placed(&self, _lead: &Lead<'_>) -> Result<(), LogError> {
        let (active, from, to, zeroed, next, poisoned) = {
            let s = self.durability.state();
            (s.active.clone(), s.synced_off, s.written_off, s.zeroed_off, s.written_next, s.poisoned.clone())
        };
        if let Some((map, path)) = active.filter(|_| to > from) {
            // What reached the disk since a failed sync is unknown: nothing
            // placed after it becomes durable.
            if let Some(why) = poisoned {
                return Err(LogError::Poisoned(why));
            }
            let started = Instant::now();
            // The zeros written ahead go with the frames: durable marks
            // still stop at the frames' end.
            let end = to.max(zeroed);
            if let Err(e) = crate::crashpoint::fail("sync").and_then(|()| map.flush(from, end - from)) {
                let err = io_err(&path, e);
                self.durability.poison(err.to_string());
                return Err(err);
            }
            self.durability.state().synced_off = to;
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.counters.sync_micros.fetch_add(micros, Ordering::Relaxed);
        }
        self.show(next);
        Ok(())
    }

    /// Makes every frame below sequence number `end` durable (they are
    /// placed): returns at once if they are; else, if no other appender is
    /// syncing, takes the lead and syncs everything placed; else waits for
    /// that sync to end and looks again.
    ///
    /// Waiting in a list, not in the lead's queue: when a sync ends, every
    /// appender it covered returns at once, and one it did not cover starts
    /// the next sync, instead of the lead passing from thread to thread,
    /// each woken in turn only to find its batch covered, while the next
    /// sync waits behind them.
    pub(crate) fn sync_through(&self, end: u64) -> Result<(), LogError> {
        // In the other modes an append is as durable as promised once placed.
        if !self.every_batch || self.next_seq.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let d = &self.durability;
        loop {
            let mut s = d.state();
            let visible = self.next_seq.load(Ordering::Acquire);
            if visible >= end || s.poisoned.is_some() {
                // This thread may have been woken to sync next: it passes
                // that on (the frames it waited for may have been synced
                // by the writer, which wakes no one, or the log poisoned).
                let (woken, poisoned) = (s.release(visible), s.poisoned.clone());
                drop(s);
                wake(woken);
                return match poisoned {
                    Some(why) if visible < end => Err(LogError::Poisoned(why)),
                    _ => Ok(()),
                };
            }
            if !s.syncing {
                s.syncing = true;
                drop(s);
                let _syncing = Syncing(self);
                // Everything placed, this batch too, is durable once this
                // returns (the guard then lets the waiters go).
                self.sync_placed(&d.lead())?;
                debug_assert!(self.next_seq.load(Ordering::Acquire) >= end, "only placed frames are waited for");
                return Ok(());
            }
            let me = std::thread::current();
            let id = me.id();
            s.waiters.push(Waiter { end, thread: me });
            drop(s);
            // Until a sync's end takes this thread off the list (and wakes
            // it); any other wake-up is spurious.
            loop {
                std::thread::park();
                if !d.state().waiters.iter().any(|w| w.thread.id() == id) {
                    break;
                }
            }
        }
    }

    /// Whether readers do not see frame `seq` yet: placed, not yet shown
    /// (durable, with `Sync::EveryBatch`). A read-only log shows every frame
    /// it serves.
    pub(crate) fn hides(&self, seq: u64) -> bool {
        self.writable && seq >= self.next_seq.load(Ordering::Acquire)
    }

    /// Lets readers see every frame below sequence number `next`.
    pub(crate) fn show(&self, next: u64) {
        self.next_seq.fetch_max(next, Ordering::Release);
    }
}

/// An append the writer has placed in the log: its sequence numbers and
/// positions are known, and its frames can be read by position, but it is
/// not yet as durable as the [`Sync`](super::Sync) mode promises, and
/// readers of the log do not see it yet. [`Placed::durable`] waits for
/// that.
#[must_use = "an append is only acknowledged once durable"]
pub struct Placed {
    appended: Appended,
    shared: Arc<Shared>,
}

impl Placed {
    pub(crate) fn new(appended: Appended, shared: Arc<Shared>) -> Self {
        Self { appended, shared }
    }

    /// Its sequence numbers and where its first frame is.
    pub fn appended(&self) -> &Appended {
        &self.appended
    }

    /// Waits until the append is as durable as the mode promises (with
    /// `Sync::EveryBatch`, synced: this thread syncs everything placed if no
    /// other sync has covered it yet), then returns its sequence numbers.
    pub fn durable(self) -> Result<Appended, LogError> {
        // In the other modes it is at once (`sync_through`).
        self.shared.sync_through(self.appended.seqs.end)?;
        Ok(self.appended)
    }
}
