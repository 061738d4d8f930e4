//! Who makes written frames durable, and when readers see them.
//!
//! The writer only *places* a batch (from the appender's thread, or the
//! writer thread's): it writes the frames to the active segment's file
//! and returns their sequence numbers and positions. Making them durable
//! is a separate step that any thread may take, one at a time (the
//! *leader*): with [`Sync::EveryBatch`] each appender waits for its own
//! batch ([`Placed::durable`]); the first to get the lead syncs everything
//! placed so far, and those that were placed meanwhile find their batch
//! already durable when their turn comes. While appenders wait for frames
//! a sync did not cover, the log's own sync thread takes the lead and
//! syncs back to back ([`Shared::sync_through`]). So concurrent commits
//! share syncs without the writer thread ever waiting for the disk, and a
//! caller may do other work (apply its batch to a projection, release its
//! own lock) between placing and waiting: a pipelined group commit.
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

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::Instant;

use super::error::io_err;
use super::{Appended, LogError, Shared};

/// What the leader needs to know of the active segment.
#[derive(Default)]
pub(crate) struct SyncState {
    /// The active segment's file and its path (none before the first
    /// segment).
    active: Option<(Arc<File>, PathBuf)>,
    /// End of its frames known to be on disk.
    synced_off: usize,
    /// End of its frames placed so far.
    written_off: usize,
    /// The sequence number after the last placed frame.
    written_next: u64,
    /// Why the log refuses to write, once a write or a sync failed.
    poisoned: Option<String>,
    /// Who has taken (or is taking) the lead to sync: the others wait for
    /// it in `waiters` instead of queueing for the lead.
    lead: Leader,
    /// Appenders waiting for the sync in flight, oldest first.
    waiters: Vec<Waiter>,
    /// Appenders the sync thread released, woken by the first of them to
    /// run, so that the sync thread goes on to the next sync at once.
    to_wake: Vec<Thread>,
    /// The log's sync thread, once started ([`Shared::sync_thread`]).
    syncer: Option<JoinHandle<()>>,
    /// The log is closing: the sync thread ends, and none is started.
    closing: bool,
}

/// Who leads the syncs.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// No one: the next appender to wait takes the lead.
    #[default]
    Free,
    /// An appender, syncing for itself and whoever placed meanwhile.
    Appender,
    /// The log's sync thread, until no appender waits.
    SyncThread,
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
        let (all, mut next) = (self.poisoned.is_some(), self.lead == Leader::Free);
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

/// Wakes the threads [`SyncState::release`] took off the list (and those
/// the sync thread left to them), once the state's lock is let go.
fn wake(woken: Vec<Thread>) {
    for t in woken {
        t.unpark();
    }
}

/// Appenders a sync covered that the sync thread wakes itself; when more,
/// it wakes the first only, which wakes the others (each wake-up costs
/// the waker microseconds on this machine's virtual cores, and the disk
/// would wait for the next sync meanwhile). Their next batches are in the
/// sync after next either way: the next one starts at once.
const WAKE_ITSELF: usize = 3;

/// An appender's sync in flight: when it ends, however it ends, the
/// waiters it covered are released ([`SyncState::release`]); if others
/// still wait, the sync thread takes the lead (or, without one, the oldest
/// of them).
struct Syncing<'a>(&'a Arc<Shared>);

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        let mut s = shared.durability.state();
        let visible = shared.next_seq.load(Ordering::Acquire);
        let waiting = s.poisoned.is_none() && s.waiters.iter().any(|w| w.end > visible);
        let syncer = if waiting { shared.syncer(&mut s) } else { None };
        s.lead = if syncer.is_some() { Leader::SyncThread } else { Leader::Free };
        let mut woken = s.release(visible);
        // The sync thread first: it is what the others wait for.
        woken.splice(0..0, syncer);
        drop(s);
        wake(woken);
    }
}

/// If the sync thread panics (a bug), the log is poisoned and every
/// appender waiting released with that error: none is left waiting for a
/// sync thread that is gone.
struct ReleasedOnPanic<'a>(&'a Shared);

impl Drop for ReleasedOnPanic<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut s = self.0.durability.state();
        s.poisoned.get_or_insert_with(|| "the log's sync thread panicked".into());
        s.lead = Leader::Free;
        let mut woken = s.release(self.0.next_seq.load(Ordering::Acquire));
        woken.append(&mut s.to_wake);
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

    /// A new active segment, nothing placed in it yet past `start`.
    pub(crate) fn set_active(&self, file: Arc<File>, path: PathBuf, start: usize, next: u64) {
        let mut s = self.state();
        s.active = Some((file, path));
        s.synced_off = start;
        s.written_off = start;
        s.written_next = s.written_next.max(next);
    }

    /// Frames placed up to `off` of the active segment, the next sequence
    /// number `next`.
    pub(crate) fn placed(&self, off: usize, next: u64) {
        let mut s = self.state();
        s.written_off = off;
        s.written_next = next;
    }
}

impl Shared {
    /// Syncs everything placed so far and moves the visible horizon to it.
    /// The caller holds the lead.
    pub(crate) fn sync_placed(&self, _lead: &Lead<'_>) -> Result<(), LogError> {
        let (active, from, to, next, poisoned) = {
            let s = self.durability.state();
            (s.active.clone(), s.synced_off, s.written_off, s.written_next, s.poisoned.clone())
        };
        if let Some((file, path)) = active.filter(|_| to > from) {
            // What reached the disk since a failed sync is unknown: nothing
            // placed after it becomes durable.
            if let Some(why) = poisoned {
                return Err(LogError::Poisoned(why));
            }
            let started = Instant::now();
            // The zeros written ahead go with the frames (every page of the
            // file written since the last sync does): durable marks still
            // stop at the frames' end.
            if let Err(e) = crate::crashpoint::fail("sync").and_then(|()| file.sync_data()) {
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
    /// appender it covered returns at once, instead of the lead passing
    /// from thread to thread, each woken in turn only to find its batch
    /// covered, while the next sync waits behind them. If appenders wait
    /// for frames it did not cover, the log's sync thread takes the lead
    /// and syncs until none does, each sync starting as the last one ends:
    /// handing the lead to a waiting appender instead left the disk idle
    /// for that thread's wake-up (13–14% of the time, with 16 appenders
    /// on this machine's two cores: docs/benchmarks.md, "Frames written,
    /// not copied into the map"), and an appender keeping it would keep
    /// its own caller waiting.
    pub(crate) fn sync_through(self: &Arc<Self>, end: u64) -> Result<(), LogError> {
        // In the other modes an append is as durable as promised once placed.
        if !self.every_batch || self.next_seq.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let d = &self.durability;
        loop {
            let mut s = d.state();
            // Frames not placed yet are not waited for (no sync would
            // cover them).
            let end = end.min(s.written_next);
            let visible = self.next_seq.load(Ordering::Acquire);
            if visible >= end || s.poisoned.is_some() {
                // This thread may have been woken to sync next: it passes
                // that on (the frames it waited for may have been synced
                // by the writer, which wakes no one, or the log poisoned).
                let (mut woken, poisoned) = (s.release(visible), s.poisoned.clone());
                woken.append(&mut s.to_wake);
                drop(s);
                wake(woken);
                return match poisoned {
                    Some(why) if visible < end => Err(LogError::Poisoned(why)),
                    _ => Ok(()),
                };
            }
            if s.lead == Leader::Free {
                s.lead = Leader::Appender;
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
            // it); any other wake-up is spurious. The first appender to run
            // wakes those the sync thread left to it.
            loop {
                std::thread::park();
                let mut s = d.state();
                if !s.waiters.iter().any(|w| w.thread.id() == id) {
                    let others = std::mem::take(&mut s.to_wake);
                    drop(s);
                    wake(others);
                    break;
                }
            }
        }
    }

    /// The sync thread, started if it was not, to take the lead (none once
    /// the log is closing, or if no thread can be started).
    fn syncer(self: &Arc<Self>, s: &mut SyncState) -> Option<Thread> {
        if s.closing {
            return None;
        }
        if s.syncer.is_none() {
            let shared = Arc::clone(self);
            s.syncer = std::thread::Builder::new().name("joblog-sync".into()).spawn(move || shared.sync_thread()).ok();
        }
        s.syncer.as_ref().map(|h| h.thread().clone())
    }

    /// The sync thread: while it holds the lead, it syncs everything placed,
    /// releases the appenders each sync covered (waking a few itself, or
    /// only the first of many, which wakes the others: [`WAKE_ITSELF`]) and
    /// syncs again at once, until no appender waits; then it waits for the
    /// lead again.
    fn sync_thread(self: Arc<Self>) {
        let d = &self.durability;
        let _released = ReleasedOnPanic(&self);
        // Woken twice in each sync (the frames written, the disk's cache
        // flushed), it should not wait for a core the appenders it
        // released hold: see `sys::short_slice`.
        crate::sys::short_slice();
        loop {
            let s = d.state();
            if s.lead != Leader::SyncThread {
                if s.closing {
                    return;
                }
                drop(s);
                std::thread::park();
                continue;
            }
            drop(s);
            // A failure poisons the log; the waiters learn it below.
            let _ = self.sync_placed(&d.lead());
            let mut s = d.state();
            let visible = self.next_seq.load(Ordering::Acquire);
            let more = s.poisoned.is_none() && !s.closing && s.waiters.iter().any(|w| w.end > visible);
            // Done: the lead is free again (when closing, it goes to the
            // oldest appender still waiting).
            s.lead = if more { Leader::SyncThread } else { Leader::Free };
            let mut woken = s.release(visible);
            if woken.len() > WAKE_ITSELF {
                s.to_wake.extend(woken.drain(1..));
            }
            drop(s);
            wake(woken);
        }
    }

    /// Ends the sync thread, if there is one, once its sync in flight ends.
    pub(crate) fn stop_sync_thread(&self) {
        let mut s = self.durability.state();
        s.closing = true;
        let syncer = s.syncer.take();
        drop(s);
        if let Some(h) = syncer {
            h.thread().unpark();
            // It panics only on a bug, already reported on its own thread.
            let _ = h.join();
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::log::{Log, LogConfig};

    /// Appenders on many threads: when a sync ends with some of them still
    /// waiting, the log's sync thread takes the lead; every append returns
    /// durable; closing the log ends the thread (nothing holds the log's
    /// shared state after it), and a wait for frames never placed returns.
    #[test]
    fn the_sync_thread_leads_while_appenders_wait_and_ends_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..16u64 {
                let log = &log;
                s.spawn(move || {
                    for i in 0..200u64 {
                        let seq = log.append(&(t * 1000 + i).to_le_bytes()).unwrap();
                        assert!(log.next_seq() > seq, "append {seq} returned before it was durable");
                    }
                });
            }
        });
        let shared = Arc::clone(&log.shared);
        assert!(shared.durability.state().syncer.is_some(), "16 appenders never left one waiting after a sync");
        assert!(shared.durability.state().to_wake.is_empty());
        log.sync_through(u64::MAX).unwrap();
        drop(log);
        assert!(shared.durability.state().syncer.is_none());
        assert_eq!(Arc::strong_count(&shared), 1, "the sync thread still holds the log");
    }
}
