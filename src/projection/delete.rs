//! Bulk deletion in the projection: which rows a deletion takes (the same
//! ones live and on replay), dropping them from every index at once, and
//! following compaction as it moves the survivors' events.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap as HashMap;

use uuid::Uuid;

use super::cold::{Postings, Section};
use super::intern::NONE;
use super::ordered::OrderedRows;
use super::tier::Key;
use super::{Loc, Pos, Projection, NO_EVENT};
use crate::domain::{Deletion, DeletionCriteria, Status, Timestamp};
use crate::error::Error;
use crate::log::{Compaction, Position};

/// Marks a freed entry of the event chain.
const FREED: Pos = Pos { segment: u32::MAX, offset: 0 };

/// Above this many rows, a deletion filters every index in one pass
/// instead of removing rows one by one.
const BULK_ROWS: usize = 1024;

/// The rows a selection took, kept for applying the deletion event it
/// becomes (the engine selects, appends, then applies, with nothing applied
/// in between), so that the same rows are not searched for twice.
#[derive(Debug)]
pub(super) struct Planned {
    last_seq: u64,
    criteria: DeletionCriteria,
    cutoff: Timestamp,
    through: (i64, Uuid),
    found: Vec<Loc>,
}

/// What a deletion run now would take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) count: u64,
    /// The (completedon, id) of the last job taken.
    pub(crate) through: Option<(Timestamp, Uuid)>,
    /// Matching jobs beyond the limit.
    pub(crate) remaining: u64,
}

impl Projection {
    /// The (reason, type) keys `criteria` covers.
    fn deletion_keys(criteria: &DeletionCriteria) -> Vec<(crate::domain::StatusReason, u32)> {
        let mut keys = Vec::new();
        for &reason in &criteria.reasons {
            for t in &criteria.types {
                if !keys.contains(&(reason, t.0)) {
                    keys.push((reason, t.0));
                }
            }
        }
        keys
    }

    /// The completed jobs of both tiers that `criteria` covers, as sorted
    /// sources to count and take from by rank (see [`Candidates`]).
    fn deletion_sources(&self, criteria: &DeletionCriteria) -> Result<Candidates<'_>, Error> {
        let keys = Self::deletion_keys(criteria);
        // The hot sets of the completed index it covers, then each run's.
        let mut sources: Vec<Source<'_>> = keys.iter().filter_map(|k| self.completed.get(k)).map(Source::Hot).collect();
        let mut gone = vec![Vec::new(); sources.len()];
        for (k, run) in self.cold.iter().enumerate() {
            // The source of each key in `keys`, for this run.
            let mut of_key = vec![None; keys.len()];
            for (c, &(reason, t)) in keys.iter().enumerate() {
                let set = run.postings(Section::Completed, (u64::from(reason as u32) << 32) | u64::from(t))?;
                if !set.is_empty() {
                    of_key[c] = Some(sources.len());
                    sources.push(Source::Cold(k, set));
                    gone.push(Vec::new());
                }
            }
            // Rows deletions already took are still in the run's sets:
            // their keys, by the set they are in, to count them out.
            for r in run.gone.iter() {
                let row = run.row(r)?;
                let c = keys.iter().position(|&key| key == (row.reason, row.operationtype));
                if let Some(i) = c.and_then(|c| of_key[c]) {
                    gone[i].push((row.completedon, row.id));
                }
            }
        }
        for g in &mut gone {
            g.sort_unstable();
        }
        Ok(Candidates { projection: self, sources, gone })
    }

    /// The jobs a deletion run at this state would take: up to `limit`,
    /// oldest first.
    pub(crate) fn select_deletion(
        &self,
        criteria: &DeletionCriteria,
        cutoff: Timestamp,
        limit: u64,
    ) -> Result<Selection, Error> {
        let sources = self.deletion_sources(criteria)?;
        let before = (cutoff.micros(), Uuid::nil());
        let matching = sources.live_below(&before)?;
        let (found, through) = sources.take(before, usize::try_from(limit).unwrap_or(usize::MAX), matching)?;
        let sel = Selection {
            count: found.len() as u64,
            through: through.map(|(at, id)| (Timestamp::from_micros(at), id)),
            remaining: (matching - found.len()) as u64,
        };
        let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        *planned = through.map(|through| Planned {
            last_seq: self.last_seq,
            criteria: criteria.clone(),
            cutoff,
            through,
            found,
        });
        Ok(sel)
    }

    /// Replays (or applies) a deletion: every matching job at or before its
    /// `through` key goes.
    pub(super) fn apply_deletion(&mut self, d: &Deletion, seq: u64) -> Result<(), Error> {
        let Some((at, id)) = d.through else { return Ok(()) };
        let through = (at.micros(), id);
        let planned = self.planned.get_mut().unwrap_or_else(|e| e.into_inner()).take().filter(|p| {
            p.last_seq == self.last_seq && p.through == through && p.cutoff == d.cutoff && p.criteria == d.criteria
        });
        let rows: Vec<u32> = match planned {
            // The runs are those it was made on: nothing was applied since.
            Some(p) => self.take_from_cold(p.found)?,
            None => {
                let limit = usize::try_from(d.deleted).unwrap_or(usize::MAX).saturating_add(1);
                let sources = self.deletion_sources(&d.criteria)?;
                let end = (d.cutoff.micros(), Uuid::nil()).min(after(through));
                let (found, _) = sources.take(end, limit, sources.live_below(&end)?)?;
                if found.len() as u64 > d.deleted {
                    return Err(Error::Corrupt {
                        file: None,
                        offset: None,
                        seq: Some(seq),
                        reason: crate::error::Corruption::Other(format!(
                            "a deletion of {} jobs selects more on replay",
                            d.deleted
                        )),
                    });
                }
                self.take_from_cold(found)?
            }
        };
        self.delete_rows(&rows);
        Ok(())
    }

    /// The hot rows of `found`; its cold ones are deleted in their runs
    /// here, run by run (`Projection::delete_cold`).
    fn take_from_cold(&mut self, found: Vec<Loc>) -> Result<Vec<u32>, Error> {
        let mut cold: Vec<(usize, u32)> = Vec::new();
        let mut rows = Vec::with_capacity(found.len());
        for loc in found {
            match loc {
                Loc::Hot(r) => rows.push(r),
                Loc::Cold(k, r) => cold.push((k, r)),
            }
        }
        // By run (a selection yields them so), from the last run back: a
        // run that goes renumbers only those after it.
        if !cold.is_sorted_by_key(|c| c.0) {
            cold.sort_unstable_by_key(|c| c.0);
        }
        for of_run in cold.chunk_by(|a, b| a.0 == b.0).rev() {
            let taken: Vec<u32> = of_run.iter().map(|c| c.1).collect();
            self.delete_cold(of_run[0].0, &taken)?;
        }
        Ok(rows)
    }

    /// Replays (or applies) a deletion of chosen jobs: each id still there
    /// goes; one no longer there is skipped (compaction removed its events
    /// with the job). Every job there must be Completed, and no id named
    /// twice; otherwise the event contradicts the log (the message says how).
    pub(super) fn apply_deletion_by_id(&mut self, ids: &[Uuid]) -> Result<(), Error> {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            if !seen.insert(id) {
                return Err(Error::corrupt(format!("a deletion names job {id} twice")));
            }
            let i = match self.locate(id)? {
                None => continue,
                Some(Loc::Cold(k, r)) => {
                    // A cold job is Completed; a job of the image of hot
                    // rows (a reading state's) may not be.
                    let status = self.cold[k].row(r)?.status();
                    if !status.is_completed() {
                        return Err(Error::corrupt(format!(
                            "a deletion takes job {id}, which is {status}, not Completed"
                        )));
                    }
                    self.delete_cold(k, &[r])?;
                    continue;
                }
                Some(Loc::Hot(i)) => i,
            };
            let status = self.rows[i as usize].status;
            if !status.is_completed() {
                return Err(Error::corrupt(format!("a deletion takes job {id}, which is {status}, not Completed")));
            }
            rows.push(i);
        }
        self.delete_rows(&rows);
        Ok(())
    }

    /// Drops rows from every index, frees their slots, and records their
    /// events as garbage for compaction. Many rows: every index is filtered
    /// in one pass, on another core while this one frees the rows.
    fn delete_rows(&mut self, rows: &[u32]) {
        if self.deferred {
            // A replay that builds its indices at the end: nothing to remove.
            self.free(rows);
            return;
        }
        if rows.len() <= BULK_ROWS {
            for &i in rows {
                self.unindex(i);
            }
            self.free(rows);
            return;
        }
        let mut dead = vec![false; self.rows.len()];
        for &i in rows {
            dead[i as usize] = true;
        }
        let keep = |r: u32| !dead[r as usize];
        use std::mem::take;
        let (mut all, mut timers, mut by_type) = (take(&mut self.all), take(&mut self.timers), take(&mut self.by_type));
        let (mut by_owner, mut by_workflow) = (take(&mut self.by_owner), take(&mut self.by_workflow));
        let (mut by_regarding, mut completed) = (take(&mut self.by_regarding), take(&mut self.completed));
        // Deleted jobs are Completed: in the status index too (no counter).
        let mut by_status = take(&mut self.by_status);
        std::thread::scope(|s| {
            s.spawn(|| {
                retain_in(&mut by_status, keep);
                all.retain(keep);
                timers.retain(keep);
                retain_in(&mut by_type, keep);
                retain_in(&mut by_owner, keep);
                retain_in(&mut by_workflow, keep);
                by_regarding.retain(keep);
                retain_in(&mut completed, keep);
            });
            self.free(rows);
        });
        (self.all, self.timers, self.by_type, self.by_owner) = (all, timers, by_type, by_owner);
        (self.by_workflow, self.by_regarding, self.completed) = (by_workflow, by_regarding, completed);
        self.by_status = by_status;
    }

    /// Frees the slots of rows already out of the indices, and records
    /// their events as garbage.
    fn free(&mut self, rows: &[u32]) {
        // Garbage by segment ordinal first (a vector, not a map lookup per event).
        let mut garbage: Vec<Vec<u64>> = vec![Vec::new(); self.segments.len()];
        for &i in rows {
            let mut e = self.rows[i as usize].last_event;
            while e != NO_EVENT {
                let (p, prev) = std::mem::replace(&mut self.events[e as usize], (FREED, NO_EVENT));
                garbage[p.segment as usize].push(u64::from(p.offset));
                self.free_events.push(e);
                e = prev;
            }
            let r = &mut self.rows[i as usize];
            r.deleted = true;
            (r.last_event, r.first_event, r.message_event) = (NO_EVENT, NO_EVENT, NO_EVENT);
            let id = r.id;
            self.by_id.remove(id, &self.rows);
            self.free_rows.push(i);
        }
        for (ordinal, offsets) in garbage.into_iter().enumerate().filter(|(_, o)| !o.is_empty()) {
            self.garbage.entry(self.segments[ordinal]).or_default().extend(offsets);
        }
    }

    /// Removes one row from every index.
    fn unindex(&mut self, i: u32) {
        self.unindex_status(i);
        let rows = &self.rows;
        let r = &rows[i as usize];
        let created = |x: u32| rows[x as usize].created_key();
        self.all.remove(i, created);
        remove_from(&mut self.by_type, r.operationtype, i, created);
        remove_from(&mut self.by_owner, r.owner, i, created);
        remove_from(&mut self.by_workflow, r.workflow, i, created);
        if r.regarding != NONE {
            self.by_regarding.remove(i, |x| rows[x as usize].regarding_key());
        }
    }

    /// Events of deleted jobs still in the log: segment → frame offsets.
    pub fn garbage(&self) -> &BTreeMap<u64, Vec<u64>> {
        &self.garbage
    }

    /// Forgets the garbage recorded in `segments`: cold segments the log
    /// no longer holds.
    pub(crate) fn forget_garbage(&mut self, segments: &[u64]) {
        for s in segments {
            self.garbage.remove(s);
        }
    }

    /// Follows a compaction that dropped `plan` (taken from [`garbage`]):
    /// the survivors' events in rewritten segments get their new offsets,
    /// and the garbage dropped is forgotten.
    ///
    /// [`garbage`]: Projection::garbage
    pub(crate) fn apply_compaction(&mut self, plan: &BTreeMap<u64, Vec<u64>>, done: &Compaction) {
        // Each rewritten segment's moves, with where the last lookup hit:
        // the chain lists most events in log order, so a search forward
        // from the last hit is nearly always a step or two.
        let mut moves: Vec<Option<MovesCursor<'_>>> = vec![None; self.segments.len()];
        for s in &done.segments {
            if let Some(&ord) = self.segment_ordinals.get(&s.segment) {
                moves[ord as usize] = Some((&s.moved, 0));
            }
        }
        for (p, _) in self.events.iter_mut().filter(|(p, _)| *p != FREED) {
            if let Some((moved, last)) = &mut moves[p.segment as usize] {
                let i =
                    search_from(moved, *last, u64::from(p.offset)).expect("compaction dropped an event still in use");
                *last = i;
                p.offset = u32::try_from(moved[i].1).expect("a rewritten segment is no longer than the old one");
            }
        }
        // The last event's place moved too (or it left the hot segments:
        // dropped, or frozen into a cold one; a fold then reads from the
        // start of the segment after it, which a freeze begins).
        if let Some(last) = self.last_position {
            if let Some(s) = done.segments.iter().find(|s| s.segment == last.segment) {
                let moved = search_from(&s.moved, 0, last.offset).map(|i| s.moved[i].1);
                self.last_position = moved.filter(|_| s.kept).map(|offset| Position { offset, ..last });
            }
        }
        // Garbage only grows at the end of each segment's list, so what
        // was recorded after the plan was taken is the tail past the plan's
        // length; it moved like any event.
        for s in &done.segments {
            let Some(all) = self.garbage.remove(&s.segment) else { continue };
            let planned = plan.get(&s.segment).map_or(0, Vec::len);
            let left: Vec<u64> = all[planned.min(all.len())..]
                .iter()
                .map(|&o| search_from(&s.moved, 0, o).map(|i| s.moved[i].1))
                .collect::<Option<_>>()
                .expect("garbage not in the plan survives compaction");
            if !left.is_empty() {
                self.garbage.insert(s.segment, left);
            }
        }
    }
}

/// A segment's moves (old offset, new offset) and the last index a lookup hit.
type MovesCursor<'a> = (&'a [(u64, u64)], usize);

/// The index of `old` in `moved` (sorted by old offset), searching forward
/// from `hint` in growing steps, or the whole slice when it lies before.
pub(super) fn search_from(moved: &[(u64, u64)], hint: usize, old: u64) -> Option<usize> {
    let hint = hint.min(moved.len().saturating_sub(1));
    let (lo, hi) = if moved.get(hint).is_some_and(|m| m.0 <= old) {
        let mut step = 1;
        let mut lo = hint;
        loop {
            let next = lo + step;
            if next >= moved.len() || moved[next].0 > old {
                break (lo, next.min(moved.len()));
            }
            lo = next;
            step *= 2;
        }
    } else {
        (0, hint)
    };
    moved[lo..hi].binary_search_by_key(&old, |m| m.0).ok().map(|i| lo + i)
}

fn remove_from<K: Hash + Eq, T: super::ordered::Key>(
    map: &mut HashMap<K, OrderedRows<T>>,
    k: K,
    row: u32,
    key: impl Fn(u32) -> T,
) {
    if let Some(set) = map.get_mut(&k) {
        set.remove(row, key);
        if set.len() == 0 {
            map.remove(&k);
        }
    }
}

fn retain_in<K, T: super::ordered::Key>(map: &mut HashMap<K, OrderedRows<T>>, keep: impl Fn(u32) -> bool + Copy) {
    map.retain(|_, set| {
        set.retain(keep);
        set.len() > 0
    });
}

impl Projection {
    /// Problems with the indices' invariants (every entry a live row of the
    /// right kind, counts matching): what `joblog verify` and the tests
    /// check after deletions reuse slots.
    pub fn check_indices(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let live = |r: u32| {
            self.rows.get(r as usize).is_some_and(|row| !row.deleted && self.by_id.get(row.id, &self.rows) == Some(r))
        };
        let mut check = |what: &str, rows: &mut dyn Iterator<Item = u32>, ok: &dyn Fn(u32) -> bool| {
            for r in rows {
                if !live(r) || !ok(r) {
                    problems.push(format!("{what} holds row {r}, which is not a live job of its kind"));
                    return;
                }
            }
        };
        check("the all-jobs index", &mut self.all.iter_asc(), &|_| true);
        for ((reason, operationtype), set) in &self.completed {
            check("the completed index", &mut set.iter_asc(), &|r| {
                let row = &self.rows[r as usize];
                row.status.is_completed() && row.status.reason() == *reason && row.operationtype == *operationtype
            });
        }
        let mut open_counts = BTreeMap::<(Status, u32), usize>::new();
        for (status, set) in &self.by_status {
            check("the status index", &mut set.iter_asc(), &|r| self.rows[r as usize].status == *status);
            for r in set.iter_asc().filter(|_| !status.is_completed()) {
                *open_counts.entry((*status, self.rows[r as usize].operationtype)).or_default() += 1;
            }
        }
        check("the regarding index", &mut self.by_regarding.iter_asc(), &|r| self.rows[r as usize].regarding != NONE);
        check("the timer index", &mut self.timers.iter_asc(), &|r| self.rows[r as usize].on_timer());
        let kept: BTreeMap<(Status, u32), usize> = self.open_counts.iter().map(|(k, n)| (*k, *n)).collect();
        if kept != open_counts {
            problems.push(format!("the open jobs' counters say {kept:?}, the status index {open_counts:?}"));
        }
        if self.all.len() != self.by_id.len() {
            problems.push(format!("{} jobs indexed, {} by id", self.all.len(), self.by_id.len()));
        }
        problems
    }
}

/// One sorted source of a deletion's candidates, ascending by
/// (`completedon`, id): a hot set of the completed index, or a cold run's
/// completed postings for one (reason, type).
enum Source<'a> {
    Hot(&'a OrderedRows),
    Cold(usize, Postings<'a>),
}

/// The sources a deletion takes from, with the keys of the rows earlier
/// deletions took that are still in them (cold runs never change), per
/// source, sorted. A deletion takes the oldest `limit` of all: rather
/// than merging the sources row by row (reading each row's key, from
/// rows of the runs in random order), it counts by rank (a binary search
/// per source) to find the last key it takes, then takes each source's
/// prefix up to it, reading row numbers only.
struct Candidates<'a> {
    projection: &'a Projection,
    sources: Vec<Source<'a>>,
    gone: Vec<Vec<Key>>,
}

/// The smallest key after `k`.
fn after((at, id): Key) -> Key {
    match id.as_u128().checked_add(1) {
        Some(next) => (at, Uuid::from_u128(next)),
        None => (at.saturating_add(1), Uuid::nil()),
    }
}

impl Candidates<'_> {
    /// How many rows of source `i` are below `x`, taken ones included.
    fn rank(&self, i: usize, x: &Key) -> Result<usize, Error> {
        let p = self.projection;
        match &self.sources[i] {
            Source::Hot(set) => Ok(set.count_below(x, |r| p.rows[r as usize].completed_key())),
            Source::Cold(k, set) => {
                let run = &p.cold[*k];
                let (mut lo, mut hi) = (0, set.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if run.completed_key(set.get(mid)?)? < *x {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                Ok(lo)
            }
        }
    }

    /// How many rows still there, of every source, are below `x`.
    fn live_below(&self, x: &Key) -> Result<usize, Error> {
        let mut n = 0;
        for i in 0..self.sources.len() {
            n += self.rank(i, x)? - self.gone[i].partition_point(|g| g < x);
        }
        Ok(n)
    }

    /// The rows still there below `end`, at most `limit` of them, oldest
    /// first across the sources (`below`: how many there are), with the
    /// key of the last one.
    fn take(&self, end: Key, limit: usize, below: usize) -> Result<(Vec<Loc>, Option<Key>), Error> {
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let end = if below <= limit { end } else { after(self.nth(end, limit)?) };
        let mut out = Vec::with_capacity(below.min(limit));
        let mut last: Option<Key> = None;
        for i in 0..self.sources.len() {
            let n = self.rank(i, &end)?;
            match &self.sources[i] {
                Source::Hot(set) => {
                    let rows = &self.projection.rows;
                    let before = out.len();
                    out.extend(set.iter_asc().take(n).map(Loc::Hot));
                    if let Some(Loc::Hot(r)) = out[before..].last() {
                        last = last.max(Some(rows[*r as usize].completed_key()));
                    }
                }
                Source::Cold(k, set) => {
                    let gone = &self.projection.cold[*k].gone;
                    let mut newest = None;
                    for at in 0..n {
                        let r = set.get(at)?;
                        if gone.is_empty() || !gone.contains(&r) {
                            out.push(Loc::Cold(*k, r));
                            newest = Some(r);
                        }
                    }
                    if let Some(r) = newest {
                        last = last.max(Some(self.projection.cold[*k].completed_key(r)?));
                    }
                }
            }
        }
        Ok((out, last))
    }

    /// The key of the `n`th (from 1) row still there, oldest first, of
    /// those below `end` (there are more than `n`): the smallest time at
    /// which more than `n` - 1 are at or below it, then among the rows of
    /// that time, by id.
    fn nth(&self, end: Key, n: usize) -> Result<Key, Error> {
        // Below (lo, nil) fewer than n; below (hi + 1, nil) at least n.
        let (mut lo, mut hi) = (i64::MIN, end.0);
        while lo < hi {
            // Rounded down, without overflow.
            let mid = (lo & hi) + ((lo ^ hi) >> 1);
            if self.live_below(&after((mid, Uuid::max())).min(end))? >= n {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let from = (lo, Uuid::nil());
        let mut at_time = Vec::new();
        for i in 0..self.sources.len() {
            let (a, b) = (self.rank(i, &from)?, self.rank(i, &after((lo, Uuid::max())).min(end))?);
            let p = self.projection;
            match &self.sources[i] {
                Source::Hot(set) => {
                    at_time.extend(set.iter_asc().skip(a).take(b - a).map(|r| p.rows[r as usize].completed_key()));
                }
                Source::Cold(k, set) => {
                    for at in a..b {
                        let r = set.get(at)?;
                        if !p.cold[*k].gone.contains(&r) {
                            at_time.push(p.cold[*k].completed_key(r)?);
                        }
                    }
                }
            }
        }
        at_time.sort_unstable();
        let taken = self.live_below(&from)?;
        n.checked_sub(taken + 1).and_then(|i| at_time.get(i).copied()).ok_or_else(|| {
            Error::corrupt(format!("a cold run's completed index is out of order ({n} rows asked, {taken} below)"))
        })
    }
}
