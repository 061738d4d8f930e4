//! Failures in a row: the one count the back-off is made of (the service
//! starts from it, `stats`, `/metrics` and the dashboard show it;
//! docs/domain.md, "Back-off of a failing workflow").
//!
//! A workflow's failures in a row are read from its newest ended jobs
//! back, in the order they ended: `completedon`, then (ends written at
//! the same time) `createdon`, then id. Failed counts, Succeeded ends the
//! series, Canceled neither counts nor ends it, and no more than `limit`
//! ended jobs are looked at.
//!
//! Two ways read them, and the cheaper one is taken as it goes:
//!
//! - **by workflow**: every row of the workflow (its set in the hot rows'
//!   index and in each cold run's), the newest `limit` kept. It reads all
//!   of a workflow's rows, however old: 8 million rows for the workflows of
//!   a 10M-job store, seconds of every `stats` (minutes from a dropped page
//!   cache), with the state held.
//! - **newest ended first**: the ended rows of every workflow, newest
//!   first, merged from the hot rows and each cold run's completed index
//!   (its sets are in `completedon` order), until every workflow asked
//!   about has met a success or its `limit`. Most do within their last few
//!   runs; one that never succeeds would make it read everything.
//!
//! The walk goes on while it has read fewer than 16 rows for each cold row
//! the workflows it has not settled would cost read by workflow (a walked row
//! shares its page with its neighbours; a row read by workflow is a page
//! read at random), and while only hot ends, in memory, are left; past
//! that, those workflows are read by workflow. On a 10M-job
//! store (docs/benchmarks.md, "Failures in a row"), `stats` walked about
//! 21,000 rows for 2,000 workflows where reading by workflow read 8 million.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use uuid::Uuid;

use super::cold::{ColdRow, Postings, Section};
use super::{opt_time, Projection};
use crate::domain::{StatusReason, Timestamp};
use crate::error::Error;

/// Rows the walk newest ended first reads for each row the workflows it
/// has not settled would cost read by workflow. The walk reads rows about
/// in the order they lie (ends follow creations closely), tens to a page;
/// by workflow, each row is a page of its own, read at random.
const WALKED_PER_ROW: usize = 16;

/// About the reads a search of a run's strings for one name makes (the
/// name of a symbol takes two): a run whose workflows are fewer than this
/// many times the names asked has each of its workflows named instead of
/// each name searched for.
const NAME_SEARCH_READS: usize = 10;

/// Where a row stands in the order the back-off reads ends in.
type EndKey = (i64, i64, Uuid);

/// A workflow's failures in a row and when the newest of them ended.
pub type Streak = (u32, Option<Timestamp>);

/// One workflow's count, as the walk reaches its ends.
#[derive(Default, Clone, Copy)]
struct Count {
    failures: u32,
    last: Option<Timestamp>,
    seen: usize,
    done: bool,
}

impl Count {
    /// Counts one more end, older than those counted.
    fn add(&mut self, completedon: i64, reason: StatusReason, limit: usize) {
        match reason {
            StatusReason::Failed => {
                self.failures += 1;
                self.last = self.last.or(opt_time(completedon));
            }
            StatusReason::Succeeded => self.done = true,
            _ => {}
        }
        self.seen += 1;
        self.done |= self.seen >= limit;
    }
}

/// The next row of one of a cold run's completed sets, walked from its
/// newest: the heap's entry, largest (`completedon`, id) first.
struct Cursor<'a> {
    key: (i64, Uuid),
    row: ColdRow,
    number: u32,
    run: usize,
    set: Postings<'a>,
    /// The position in `set` of `row`.
    at: usize,
}

impl PartialEq for Cursor<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Cursor<'_> {}
impl PartialOrd for Cursor<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cursor<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl Projection {
    /// How many of `workflow`'s last runs failed in a row, looking at its
    /// `limit` last ended jobs, and when the last failure ended (the
    /// order and the rules: `projection/streak.rs`).
    pub fn consecutive_failures(&self, workflow: &str, limit: usize) -> Result<Streak, Error> {
        Ok(self.failures_in_a_row(&[workflow], limit)?[0])
    }

    /// [`Projection::consecutive_failures`] of each of `workflows`, in
    /// their order, read together (a name given twice is read once).
    pub fn failures_in_a_row(&self, workflows: &[&str], limit: usize) -> Result<Vec<Streak>, Error> {
        let mut asked: HashMap<&str, usize> = HashMap::new();
        let mut names: Vec<&str> = Vec::new();
        let place: Vec<usize> = workflows
            .iter()
            .map(|&w| {
                *asked.entry(w).or_insert_with(|| {
                    names.push(w);
                    names.len() - 1
                })
            })
            .collect();
        let streaks = match limit == 0 || names.is_empty() {
            true => vec![(0, None); names.len()],
            false => self.read_together(&names, &asked, limit)?,
        };
        Ok(place.into_iter().map(|i| streaks[i]).collect())
    }

    /// [`Projection::failures_in_a_row`] of `names`, each once (`asked`:
    /// each name's place in `names`), `limit` at least 1.
    fn read_together(&self, names: &[&str], asked: &HashMap<&str, usize>, limit: usize) -> Result<Vec<Streak>, Error> {
        let mut counts = vec![Count::default(); names.len()];
        // The hot rows' ends (few: the open jobs and the recent ends),
        // newest first.
        let mut hot: Vec<(EndKey, StatusReason, usize)> = Vec::new();
        for (i, w) in names.iter().enumerate() {
            hot.extend(self.hot_ends(w).map(|(key, reason)| (key, reason, i)));
        }
        hot.sort_unstable_by_key(|e| Reverse(e.0));
        // Each run's symbols of the workflows, what reading each workflow
        // by its rows would cost in the cold runs, and the runs' completed
        // sets, each walked from its newest row.
        let mut cost = vec![0usize; names.len()];
        let mut syms: Vec<HashMap<u32, usize>> = Vec::with_capacity(self.cold.len());
        let mut heap = BinaryHeap::new();
        for (k, c) in self.cold.iter().enumerate() {
            let mut of_run = HashMap::new();
            let keys = c.run.keys(Section::ByWorkflow)?;
            if keys.len() < NAME_SEARCH_READS.saturating_mul(names.len()) {
                // Each workflow the run holds, by its name: the names of a
                // run's workflows lie together, few pages.
                for (key, len) in keys {
                    let sym = u32::try_from(key).unwrap_or(0);
                    if let Some(&i) = c.run.name(sym)?.and_then(|name| asked.get(name)) {
                        cost[i] = cost[i].saturating_add(len);
                        of_run.insert(sym, i);
                    }
                }
            } else {
                for (i, w) in names.iter().enumerate() {
                    if let Some(s) = c.run.sym(w)? {
                        cost[i] = cost[i].saturating_add(c.run.postings(Section::ByWorkflow, u64::from(s))?.len());
                        of_run.insert(s, i);
                    }
                }
            }
            if !of_run.is_empty() {
                for (key, _) in c.run.keys(Section::Completed)? {
                    let set = c.run.postings(Section::Completed, key)?;
                    if let Some(at) = set.len().checked_sub(1) {
                        heap.push(cursor(self, k, set, at)?);
                    }
                }
            }
            syms.push(of_run);
        }
        // The walk: on while it is cheaper than what is left by rows, or
        // while only the hot ends, in memory, are left.
        let mut open = cost.iter().fold(0usize, |sum, &c| sum.saturating_add(c));
        let (mut walked, mut hot_next, mut unsettled) = (0usize, 0usize, names.len());
        let mut group: Vec<(EndKey, StatusReason, usize)> = Vec::new();
        while unsettled > 0 && (heap.is_empty() || open.saturating_mul(WALKED_PER_ROW) > walked) {
            // The next `completedon`, from either side; every end at that
            // time, read in the order the count takes them.
            let from_cold = heap.peek().map(|c| c.key.0);
            let from_hot = hot.get(hot_next).map(|e| e.0 .0);
            let Some(at) = from_cold.max(from_hot) else { break };
            group.clear();
            while hot.get(hot_next).is_some_and(|e| e.0 .0 == at) {
                group.push(hot[hot_next]);
                hot_next += 1;
            }
            while heap.peek().is_some_and(|c| c.key.0 == at) {
                let Some(c) = heap.pop() else { break };
                walked += 1;
                let row = &c.row;
                if row.status().is_completed() && !self.cold[c.run].gone.contains(&c.number) {
                    if let Some(&i) = syms[c.run].get(&row.workflow) {
                        group.push(((row.completedon, row.createdon, row.id), row.reason, i));
                    }
                }
                if let Some(at) = c.at.checked_sub(1) {
                    heap.push(cursor(self, c.run, c.set, at)?);
                }
            }
            group.sort_unstable_by_key(|e| Reverse(e.0));
            for &(key, reason, i) in &group {
                let count = &mut counts[i];
                if !count.done {
                    count.add(key.0, reason, limit);
                    if count.done {
                        open = open.saturating_sub(cost[i]);
                        unsettled -= 1;
                    }
                }
            }
        }
        let exhausted = heap.is_empty() && hot_next == hot.len();
        names
            .iter()
            .zip(counts)
            .map(|(w, c)| match c.done || exhausted {
                true => Ok((c.failures, c.last)),
                false => self.failures_by_rows(w, limit),
            })
            .collect()
    }

    /// The ended hot rows of `workflow`: their place in the order of ends,
    /// and how each ended.
    fn hot_ends(&self, workflow: &str) -> impl Iterator<Item = (EndKey, StatusReason)> + '_ {
        let set = self.strings.get(workflow).and_then(|s| self.by_workflow.get(&s));
        set.into_iter().flat_map(|set| set.iter_asc()).filter_map(|r| {
            let row = &self.rows[r as usize];
            row.status.is_completed().then(|| ((row.completedon, row.createdon, row.id), row.status.reason()))
        })
    }

    /// One workflow's failures in a row, read from all its rows: what
    /// the service falls back on for each workflow when a damaged run
    /// stops [`Projection::failures_in_a_row`] (a workflow none of whose
    /// rows is damaged still reads right).
    pub(crate) fn failures_by_rows(&self, workflow: &str, limit: usize) -> Result<Streak, Error> {
        // The `limit` last ended, kept in a bounded min-heap.
        let mut last = BinaryHeap::with_capacity(limit.min(4096) + 1);
        let mut push = |key: EndKey, reason: StatusReason| {
            last.push(Reverse((key, reason)));
            if last.len() > limit {
                last.pop();
            }
        };
        for (key, reason) in self.hot_ends(workflow) {
            push(key, reason);
        }
        for run in &self.cold {
            let Some(wf) = run.sym(workflow)? else { continue };
            let set = run.postings(Section::ByWorkflow, u64::from(wf))?;
            for i in 0..set.len() {
                let r = set.get(i)?;
                if run.gone.contains(&r) {
                    continue;
                }
                let row = run.row(r)?;
                if row.status().is_completed() {
                    push((row.completedon, row.createdon, row.id), row.reason);
                }
            }
        }
        let mut ended: Vec<(EndKey, StatusReason)> = last.into_iter().map(|Reverse(e)| e).collect();
        ended.sort_unstable_by_key(|e| Reverse(e.0));
        let mut count = Count::default();
        for (key, reason) in ended {
            count.add(key.0, reason, limit);
            if count.done {
                break;
            }
        }
        Ok((count.failures, count.last))
    }
}

/// The cursor at row `at` of `set`, a completed set of cold run `k`.
fn cursor<'a>(p: &'a Projection, k: usize, set: Postings<'a>, at: usize) -> Result<Cursor<'a>, Error> {
    let number = set.get(at)?;
    let row = p.cold[k].run.row(number)?;
    Ok(Cursor { key: (row.completedon, row.id), row, number, run: k, set, at })
}
