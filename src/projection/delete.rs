//! Bulk deletion in the projection: which rows a deletion takes (the same
//! ones live and on replay), dropping them from every index at once, and
//! following compaction as it moves the survivors' events.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap as HashMap;

use uuid::Uuid;

use super::ordered::OrderedRows;
use super::{Pos, Projection, NO_EVENT};
use crate::domain::{Deletion, DeletionCriteria, OperationType, Timestamp};
use crate::error::Error;
use crate::log::Compaction;

/// Marks a freed entry of the event chain.
const FREED: Pos = Pos { segment: u32::MAX, offset: 0 };

/// Above this many rows, a deletion filters every index in one pass
/// instead of removing rows one by one.
const BULK_ROWS: usize = 1024;

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
    /// Completed jobs that match `criteria` with `completedon` before
    /// `cutoff`, oldest (completedon, id) first across the reasons.
    fn deletion_candidates<'a>(
        &'a self,
        criteria: &'a DeletionCriteria,
        cutoff: Timestamp,
    ) -> impl Iterator<Item = u32> + 'a {
        let rows = &self.rows;
        let mut sources: Vec<_> = criteria
            .reasons
            .iter()
            .filter_map(|r| self.completed.get(r))
            .map(|set| set.iter_asc().take_while(move |&r| rows[r as usize].completedon < cutoff.micros()).peekable())
            .collect();
        std::iter::from_fn(move || {
            let next = sources
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.peek().map(|&r| (rows[r as usize].completed_key(), i)))
                .min()?;
            sources[next.1].next()
        })
        .filter(move |&r| criteria.types.contains(&OperationType(rows[r as usize].operationtype)))
    }

    /// The jobs a deletion run at this state would take: up to `limit`,
    /// oldest first.
    pub(crate) fn select_deletion(&self, criteria: &DeletionCriteria, cutoff: Timestamp, limit: u64) -> Selection {
        let mut it = self.deletion_candidates(criteria, cutoff);
        let mut sel = Selection { count: 0, through: None, remaining: 0 };
        for r in it.by_ref().take(usize::try_from(limit).unwrap_or(usize::MAX)) {
            sel.count += 1;
            let row = &self.rows[r as usize];
            sel.through = Some((Timestamp::from_micros(row.completedon), row.id));
        }
        sel.remaining = it.count() as u64;
        sel
    }

    /// Replays (or applies) a deletion: every matching job at or before its
    /// `through` key goes.
    pub(super) fn apply_deletion(&mut self, d: &Deletion, seq: u64) -> Result<(), Error> {
        let Some((at, id)) = d.through else { return Ok(()) };
        let through = (at.micros(), id);
        let rows: Vec<u32> = self
            .deletion_candidates(&d.criteria, d.cutoff)
            .take_while(|&r| self.rows[r as usize].completed_key() <= through)
            .collect();
        // Fewer when compaction already removed some; never more.
        if rows.len() as u64 > d.deleted {
            return Err(Error::Corrupt(format!(
                "event {seq}: a deletion of {} jobs selects {} on replay",
                d.deleted,
                rows.len()
            )));
        }
        self.delete_rows(&rows);
        Ok(())
    }

    /// Drops rows from every index, frees their slots, and records their
    /// events as garbage for compaction.
    fn delete_rows(&mut self, rows: &[u32]) {
        let bulk = rows.len() > BULK_ROWS;
        let mut dead = vec![false; if bulk { self.rows.len() } else { 0 }];
        for &i in rows {
            if bulk {
                dead[i as usize] = true;
            } else {
                self.unindex(i);
            }
            let mut e = self.rows[i as usize].last_event;
            while e != NO_EVENT {
                let (p, prev) = std::mem::replace(&mut self.events[e as usize], (FREED, NO_EVENT));
                let at = self.position(p);
                self.garbage.entry(at.segment).or_default().push(at.offset);
                self.free_events.push(e);
                e = prev;
            }
            let r = &mut self.rows[i as usize];
            r.deleted = true;
            r.last_event = NO_EVENT;
            r.message_event = NO_EVENT;
            self.by_id.remove(&r.id);
            self.free_rows.push(i);
        }
        if bulk {
            let keep = |r: u32| !dead[r as usize];
            self.all.retain(keep);
            self.timers.retain(keep);
            retain_in(&mut self.by_type, keep);
            retain_in(&mut self.by_owner, keep);
            retain_in(&mut self.by_workflow, keep);
            retain_in(&mut self.by_regarding, keep);
            retain_in(&mut self.completed, keep);
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
        remove_from(&mut self.by_regarding, r.regarding, i, created);
    }

    /// Events of deleted jobs still in the log: segment → frame offsets.
    pub fn garbage(&self) -> &BTreeMap<u64, Vec<u64>> {
        &self.garbage
    }

    /// Follows a compaction that dropped `plan` (taken from [`garbage`]):
    /// the survivors' events in rewritten segments get their new offsets,
    /// and the garbage dropped is forgotten.
    ///
    /// [`garbage`]: Projection::garbage
    pub(crate) fn apply_compaction(&mut self, plan: &BTreeMap<u64, Vec<u64>>, done: &Compaction) {
        let mut moves: Vec<Option<&[(u64, u64)]>> = vec![None; self.segments.len()];
        for s in &done.segments {
            if let Some(&ord) = self.segment_ordinals.get(&s.segment) {
                moves[ord as usize] = Some(&s.moved);
            }
        }
        let new_offset = |moved: &[(u64, u64)], old: u64| -> Option<u64> {
            moved.binary_search_by_key(&old, |m| m.0).ok().map(|i| moved[i].1)
        };
        for (p, _) in self.events.iter_mut().filter(|(p, _)| *p != FREED) {
            if let Some(moved) = moves[p.segment as usize] {
                let new = new_offset(moved, u64::from(p.offset)).expect("compaction dropped an event still in use");
                p.offset = u32::try_from(new).expect("a rewritten segment is no longer than the old one");
            }
        }
        // Garbage recorded since the plan was taken moved like any event.
        for s in &done.segments {
            let Some(left) = self.garbage.remove(&s.segment) else { continue };
            let dropped: std::collections::HashSet<u64> = plan.get(&s.segment).into_iter().flatten().copied().collect();
            let left: Vec<u64> = left
                .into_iter()
                .filter(|o| !dropped.contains(o))
                .map(|o| new_offset(&s.moved, o).expect("garbage not in the plan survives compaction"))
                .collect();
            if !left.is_empty() {
                self.garbage.insert(s.segment, left);
            }
        }
    }
}

fn remove_from<K: Hash + Eq, T: Ord>(map: &mut HashMap<K, OrderedRows>, k: K, row: u32, key: impl Fn(u32) -> T) {
    if let Some(set) = map.get_mut(&k) {
        set.remove(row, key);
        if set.len() == 0 {
            map.remove(&k);
        }
    }
}

fn retain_in<K>(map: &mut HashMap<K, OrderedRows>, keep: impl Fn(u32) -> bool + Copy) {
    map.retain(|_, set| {
        set.retain(keep);
        set.len() > 0
    });
}
