//! Queries over the projection: the System Jobs view and its filters, the
//! Process Session view (by workflow) and the Background Processes view (by
//! regarding row), newest `createdon` first, paged by a stable cursor.
//!
//! A query walks the smallest index among those its filters name, from the
//! cursor down, and checks the remaining filters on each row. A cursor is
//! the (createdon, id) of the last row returned: new jobs sort above it, so
//! paging never skips or repeats a job while jobs arrive.

use std::collections::{BinaryHeap, HashSet};

use uuid::Uuid;

use super::cold::{self, ColdRow, Postings, Section};
use super::intern::{Sym, NONE};
use super::ordered::{OrderedRows, Tagged};
use super::tier::{Cold, Found, Key};
use super::{Loc, Projection, RegardingKey, Row, NO_TIME};
use crate::domain::{Job, OperationType, Regarding, State, Status, StatusReason, Timestamp};
use crate::error::Error;
use crate::log::Log;

/// What the System Jobs view filters on; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only jobs of this System Job Type.
    pub operationtype: Option<OperationType>,
    /// Only jobs in this State.
    pub state: Option<State>,
    /// The Status Reason (the `status` of the System Jobs view).
    pub status_reason: Option<StatusReason>,
    /// Process Session: the jobs of one workflow definition.
    pub workflow: Option<String>,
    /// Background Processes: the jobs regarding one row.
    pub regarding: Option<Regarding>,
    /// Only jobs owned by this user.
    pub owner: Option<String>,
    /// Only jobs created strictly before this time.
    pub created_before: Option<Timestamp>,
    /// Only jobs created strictly after this time.
    pub created_after: Option<Timestamp>,
    /// Only Completed jobs completed strictly before this time.
    pub completed_before: Option<Timestamp>,
}

/// Whose jobs the acting user may see (from the Read depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every job (Read at Organization depth).
    All,
    /// Only jobs owned by this user.
    Owner(String),
    /// Only jobs owned in these business units.
    BusinessUnits(Vec<String>),
    /// No job (no Read privilege, or a deactivated user).
    Nothing,
}

/// Where the next page starts: just below this (createdon, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The `createdon` of the last job of the previous page.
    pub createdon: Timestamp,
    /// The id of the last job of the previous page (the tie-breaker).
    pub id: Uuid,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.createdon.micros(), self.id.simple())
    }
}

impl std::str::FromStr for Cursor {
    type Err = crate::domain::DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || crate::domain::DomainError::Invalid { what: "cursor", reason: format!("{s:?} is not a cursor") };
        let (t, id) = s.split_once('_').ok_or_else(bad)?;
        Ok(Cursor {
            createdon: Timestamp::from_micros(t.parse().map_err(|_| bad())?),
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The jobs, newest `createdon` first.
    pub ids: Vec<Uuid>,
    /// Set when there may be more.
    pub next: Option<Cursor>,
}

/// An index a query can walk, newest first.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A set in (createdon, id) order.
    Rows(&'a OrderedRows),
    /// The jobs regarding one row: a range of `Projection::by_regarding`,
    /// with its length.
    Regarding(&'a OrderedRows<RegardingKey, Tagged>, Sym, usize),
}

impl<'a> Source<'a> {
    /// The jobs regarding `g` in `set` (`Projection::by_regarding`).
    fn regarding(set: &'a OrderedRows<RegardingKey, Tagged>, g: Sym, rows: &[Row]) -> Self {
        let key = |x: u32| rows[x as usize].regarding_key();
        let first = set.count_below(&(g, (i64::MIN, Uuid::nil())), key);
        let end = g.checked_add(1).map_or(set.len(), |next| set.count_below(&(next, (i64::MIN, Uuid::nil())), key));
        Source::Regarding(set, g, end - first)
    }

    fn len(self) -> usize {
        match self {
            Source::Rows(r) => r.len(),
            Source::Regarding(_, _, n) => n,
        }
    }

    /// Rows below `start` (all if `None`), greatest key first.
    fn iter_desc(self, start: Option<(i64, Uuid)>, rows: &'a [Row]) -> Box<dyn Iterator<Item = u32> + 'a> {
        match self {
            Source::Rows(r) => Box::new(r.iter_desc(start, move |x| rows[x as usize].created_key())),
            Source::Regarding(set, g, _) => {
                let below = match (start, g.checked_add(1)) {
                    (Some(s), _) => Some((g, s)),
                    (None, Some(next)) => Some((next, (i64::MIN, Uuid::nil()))),
                    (None, None) => None,
                };
                let key = move |x: u32| rows[x as usize].regarding_key();
                Box::new(set.iter_desc(below, key).take_while(move |&x| rows[x as usize].regarding == g))
            }
        }
    }
}

/// A filter with its names resolved to symbols.
struct Plan<'a> {
    source: Option<Source<'a>>,
    operationtype: Option<u32>,
    state: Option<State>,
    status: Option<StatusReason>,
    workflow: Option<Sym>,
    regarding: Option<Sym>,
    owner: Option<Sym>,
    units: Option<HashSet<Sym>>,
    created_after: Option<i64>,
    created_before: Option<i64>,
    completed_before: Option<i64>,
    /// Whether the source's own key is the only condition (count = its length).
    source_is_everything: bool,
}

impl<'a> Plan<'a> {
    fn matches(&self, r: &Row) -> bool {
        !r.deleted
            && self.operationtype.is_none_or(|t| r.operationtype == t)
            && self.state.is_none_or(|s| r.status.state() == s)
            && self.status.is_none_or(|s| r.status.reason() == s)
            && self.workflow.is_none_or(|w| r.workflow == w)
            && self.regarding.is_none_or(|g| r.regarding == g)
            && self.owner.is_none_or(|o| r.owner == o)
            && self.units.as_ref().is_none_or(|u| u.contains(&r.owningbusinessunit))
            && self.created_after.is_none_or(|t| r.createdon > t)
            && self.created_before.is_none_or(|t| r.createdon < t)
            && self.completed_before.is_none_or(|t| r.completedon != NO_TIME && r.completedon < t)
    }
}

/// A filter's plan on one cold run: the run's symbols for its names, and
/// the index to walk.
struct ColdPlan {
    k: usize,
    /// The index walked (`None`: every row, which are in createdon order).
    source: Option<(Section, u64)>,
    operationtype: Option<u32>,
    state: Option<State>,
    status: Option<StatusReason>,
    owner: Option<u32>,
    workflow: Option<u32>,
    regarding: Option<u32>,
    units: Option<HashSet<u32>>,
    created_after: Option<i64>,
    created_before: Option<i64>,
    completed_before: Option<i64>,
    /// Whether the source's own key is the only condition.
    source_is_everything: bool,
    /// Whether only type, State and Status Reason are asked for.
    only_status_and_type: bool,
}

impl ColdPlan {
    fn matches(&self, r: &ColdRow) -> bool {
        self.operationtype.is_none_or(|t| r.operationtype == t)
            && self.state.is_none_or(|s| r.status().state() == s)
            && self.status.is_none_or(|s| r.reason == s)
            && self.workflow.is_none_or(|w| r.workflow == w)
            && self.regarding.is_none_or(|g| r.regarding == g)
            && self.owner.is_none_or(|o| r.owner == o)
            && self.units.as_ref().is_none_or(|u| u.contains(&r.owningbusinessunit))
            && self.created_after.is_none_or(|t| r.createdon > t)
            && self.created_before.is_none_or(|t| r.createdon < t)
            && self.completed_before.is_none_or(|t| r.completedon != NO_TIME && r.completedon < t)
    }
}

/// Whether the filter (and visibility) can match a job of `run` at all: a
/// Completed one, unless the run may hold others (`ColdRun::holds_open`).
fn run_possible(run: &Cold, f: &Filter, vis: &Visibility) -> bool {
    possible(f, vis)
        && (run.holds_open()
            || (f.state.is_none_or(|s| s == State::Completed)
                && f.status_reason.is_none_or(|r| Status::of_reason(r).is_completed())))
}

/// Whether the filter (and visibility) can match anything at all.
fn possible(f: &Filter, vis: &Visibility) -> bool {
    if matches!(vis, Visibility::Nothing) {
        return false;
    }
    match (f.state, f.status_reason) {
        (Some(st), Some(reason)) => Status::of_reason(reason).state() == st,
        _ => true,
    }
}

/// A cursor's start: rows strictly below it.
fn start_of(after: Option<&Cursor>, created_before: Option<Timestamp>) -> Option<(i64, Uuid)> {
    let mut start = after.map(|c| (c.createdon.micros(), c.id));
    if let Some(b) = created_before {
        let bound = (b.micros(), Uuid::nil());
        start = Some(start.map_or(bound, |s| s.min(bound)));
    }
    start
}

/// The rows of one cold run a plan matches, newest first, below `start`.
struct ColdWalk<'a> {
    run: &'a Cold,
    plan: ColdPlan,
    set: Option<Postings<'a>>,
    /// Entries left (the next one is `left - 1`).
    left: usize,
    done: bool,
}

/// How many rows of `run` (in createdon order) are below `start`. A run
/// wholly on one side of it (most runs, for a page deep in a view) says
/// so by its first and last rows; else the search guesses where `start`
/// falls from the createdon of the rows around it (jobs are created at a
/// steady rate, so a few guesses find it where halving reads a score of
/// rows across the run), halving every other step so that it never takes
/// more than twice halving's reads.
fn rows_below(run: &Cold, start: Key) -> Result<usize, Error> {
    let Some((first_key, last_key)) = run.created_bounds()? else { return Ok(0) };
    let last = run.len() - 1;
    if last_key < start {
        return Ok(run.len());
    }
    if first_key >= start {
        return Ok(0);
    }
    // Row `lo - 1` is below `start` (its createdon `below`), row `hi` is
    // not (`above`); the answer is in `lo..=hi`.
    let (mut lo, mut hi, mut below, mut above) = (1, last, first_key.0, last_key.0);
    let mut guess = true;
    while lo < hi {
        let mid = if guess && above > below {
            let share = start.0.abs_diff(below) as f64 / above.abs_diff(below) as f64;
            (lo + ((hi - lo) as f64 * share) as usize).clamp(lo, hi - 1)
        } else {
            lo + (hi - lo) / 2
        };
        guess = !guess;
        let key = run.created_key(mid as u32)?;
        if key < start {
            (lo, below) = (mid + 1, key.0);
        } else {
            (hi, above) = (mid, key.0);
        }
    }
    Ok(lo)
}

impl<'a> ColdWalk<'a> {
    fn new(run: &'a Cold, plan: ColdPlan, start: Option<(i64, Uuid)>) -> Result<Self, Error> {
        let bound = match start {
            None => run.len(),
            Some(s) => rows_below(run, s)?,
        };
        let (set, left) = match plan.source {
            None => (None, bound),
            Some((section, key)) => {
                let set = run.postings(section, key)?;
                // Every row, or none: no search (row numbers are below the
                // run's length).
                let (mut lo, mut hi) = match bound {
                    0 => (0, 0),
                    b if b == run.len() => (set.len(), set.len()),
                    _ => (0, set.len()),
                };
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if (set.get(mid)? as usize) < bound {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                (Some(set), lo)
            }
        };
        Ok(ColdWalk { run, plan, set, left, done: false })
    }

    fn next_match(&mut self) -> Result<Option<(Key, u32)>, Error> {
        while !self.done && self.left > 0 {
            self.left -= 1;
            let r = match &self.set {
                Some(set) => set.get(self.left)?,
                None => self.left as u32,
            };
            if self.run.gone.contains(&r) {
                continue;
            }
            let row = self.run.row(r)?;
            if self.plan.created_after.is_some_and(|t| row.createdon <= t) {
                self.done = true;
                break;
            }
            if self.plan.matches(&row) {
                return Ok(Some((row.created_key(), r)));
            }
        }
        Ok(None)
    }
}

impl Projection {
    /// Resolves names against the hot rows' strings; `None` when some name
    /// is unknown there, so no hot row matches.
    fn plan<'a>(&'a self, f: &Filter, vis: &Visibility) -> Option<Plan<'a>> {
        if !possible(f, vis) {
            return None;
        }
        let mut owner = match &f.owner {
            Some(o) => Some(self.sym(o)?),
            None => None,
        };
        let mut units = None;
        match vis {
            Visibility::All | Visibility::Nothing => {}
            Visibility::Owner(me) => {
                let me = self.sym(me)?;
                if owner.is_some_and(|o| o != me) {
                    return None;
                }
                owner = Some(me);
            }
            Visibility::BusinessUnits(list) => units = Some(list.iter().filter_map(|u| self.sym(u)).collect()),
        }
        let workflow = match &f.workflow {
            Some(w) => Some(self.sym(w)?),
            None => None,
        };
        let regarding = match &f.regarding {
            Some(r) => Some(self.regarding_sym(r)?),
            None => None,
        };
        // The candidate indices this filter can walk; the smallest wins.
        let mut sources: Vec<Source<'_>> = vec![Source::Rows(&self.all)];
        if let Some(t) = f.operationtype {
            sources.push(Source::Rows(self.type_set(t)?));
        }
        if let Some(o) = owner {
            sources.push(Source::Rows(self.by_owner.get(&o)?));
        }
        if let Some(w) = workflow {
            sources.push(Source::Rows(self.by_workflow.get(&w)?));
        }
        if let Some(g) = regarding {
            let jobs = Source::regarding(&self.by_regarding, g, &self.rows);
            if jobs.len() == 0 {
                return None;
            }
            sources.push(jobs);
        }
        if let Some(reason) = f.status_reason {
            sources.push(Source::Rows(self.by_status.get(&Status::of_reason(reason))?));
        }
        let source = sources.into_iter().min_by_key(|s| s.len());
        let conditions = usize::from(f.operationtype.is_some())
            + usize::from(owner.is_some())
            + usize::from(workflow.is_some())
            + usize::from(regarding.is_some())
            + usize::from(f.status_reason.is_some_and(|r| !Status::of_reason(r).is_completed()));
        let only_source = conditions <= 1
            && f.state.is_none()
            && f.status_reason.is_none_or(|r| !Status::of_reason(r).is_completed())
            && units.is_none()
            && f.created_after.is_none()
            && f.created_before.is_none()
            && f.completed_before.is_none();
        Some(Plan {
            source,
            operationtype: f.operationtype.map(|t| t.0),
            state: f.state,
            status: f.status_reason,
            workflow,
            regarding,
            owner,
            units,
            created_after: f.created_after.map(Timestamp::micros),
            created_before: f.created_before.map(Timestamp::micros),
            completed_before: f.completed_before.map(Timestamp::micros),
            source_is_everything: only_source,
        })
    }

    /// The filter's plan on each cold run that may hold a match.
    fn cold_plans(&self, f: &Filter, vis: &Visibility) -> Result<Vec<ColdPlan>, Error> {
        (0..self.cold.len())
            .filter(|&k| run_possible(&self.cold[k], f, vis))
            .filter_map(|k| self.cold_plan(k, f, vis).transpose())
            .collect()
    }

    /// [`Projection::cold_plans`]'s plan for run `k` alone (`None`: nothing
    /// in it can match), once [`run_possible`] said yes.
    fn cold_plan(&self, k: usize, f: &Filter, vis: &Visibility) -> Result<Option<ColdPlan>, Error> {
        let run = &self.cold[k];
        // A name the run does not hold: nothing in it matches.
        let sym = |name: Option<String>| -> Result<Option<Option<u32>>, Error> {
            Ok(match name {
                None => Some(None),
                Some(n) => run.sym(&n)?.map(Some),
            })
        };
        let Some(mut owner) = sym(f.owner.clone())? else { return Ok(None) };
        let Some(workflow) = sym(f.workflow.clone())? else { return Ok(None) };
        let Some(regarding) = sym(f.regarding.as_ref().map(ToString::to_string))? else { return Ok(None) };
        let mut units = None;
        match vis {
            Visibility::All | Visibility::Nothing => {}
            Visibility::Owner(me) => {
                let Some(me) = run.sym(me)? else { return Ok(None) };
                if owner.is_some_and(|o| o != me) {
                    return Ok(None);
                }
                owner = Some(me);
            }
            Visibility::BusinessUnits(list) => {
                let mut set = HashSet::new();
                for u in list {
                    set.extend(run.sym(u)?);
                }
                if set.is_empty() {
                    return Ok(None);
                }
                units = Some(set);
            }
        }
        let mut sources: Vec<(Option<(Section, u64)>, usize)> = vec![(None, run.len())];
        let candidates = [
            f.operationtype.map(|t| (Section::ByType, u64::from(t.0))),
            owner.map(|o| (Section::ByOwner, u64::from(o))),
            workflow.map(|w| (Section::ByWorkflow, u64::from(w))),
            regarding.map(|g| (Section::ByRegarding, u64::from(g))),
            f.status_reason.filter(|_| run.has(Section::ByStatus)).map(|r| {
                let t = f.operationtype.map_or(cold::ANY_TYPE, |t| t.0);
                (Section::ByStatus, (u64::from(r as u32) << 32) | u64::from(t))
            }),
        ];
        for (section, key) in candidates.into_iter().flatten() {
            let n = run.postings(section, key)?.len();
            if n == 0 {
                return Ok(None);
            }
            sources.push((Some((section, key)), n));
        }
        let source = sources.into_iter().min_by_key(|s| s.1).and_then(|s| s.0);
        let conditions = usize::from(f.operationtype.is_some())
            + usize::from(owner.is_some())
            + usize::from(workflow.is_some())
            + usize::from(regarding.is_some());
        let no_more =
            units.is_none() && f.created_after.is_none() && f.created_before.is_none() && f.completed_before.is_none();
        Ok(Some(ColdPlan {
            k,
            source,
            operationtype: f.operationtype.map(|t| t.0),
            state: f.state,
            status: f.status_reason,
            owner,
            workflow,
            regarding,
            units,
            created_after: f.created_after.map(Timestamp::micros),
            created_before: f.created_before.map(Timestamp::micros),
            completed_before: f.completed_before.map(Timestamp::micros),
            source_is_everything: conditions <= 1 && f.state.is_none() && f.status_reason.is_none() && no_more,
            only_status_and_type: owner.is_none() && workflow.is_none() && regarding.is_none() && no_more,
        }))
    }

    /// Hot rows matching `plan`, newest first, below `start`.
    fn walk<'a>(&'a self, plan: &'a Plan<'a>, start: Option<(i64, Uuid)>) -> impl Iterator<Item = u32> + 'a {
        let rows = &self.rows;
        let stop = plan.created_after;
        plan.source
            .into_iter()
            .flat_map(move |s| s.iter_desc(start, rows))
            .take_while(move |&r| stop.is_none_or(|t| rows[r as usize].createdon > t))
            .filter(move |&r| plan.matches(&rows[r as usize]))
    }

    /// Up to `limit` jobs matching, hot and cold merged, newest first,
    /// below the cursor, each with its key.
    fn walk_all(
        &self,
        filter: &Filter,
        vis: &Visibility,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Found>, Error> {
        let start = start_of(after, filter.created_before);
        let plan = self.plan(filter, vis);
        let mut hot = plan.as_ref().map(|p| self.walk(p, start));
        let mut next_hot =
            || hot.as_mut().and_then(Iterator::next).map(|r| (self.rows[r as usize].created_key(), Loc::Hot(r)));
        // A run is opened (its plan made, its walk placed, its first match
        // found) only once its newest job could come next: the first pages
        // of a view over many runs, each holding older jobs than the one
        // after it, read the newest runs only; and a run whose oldest job
        // is not below the cursor is never opened. Runs still closed, by
        // their newest key, the newest last.
        let mut closed: Vec<(Key, usize)> = Vec::with_capacity(self.cold.len());
        for (k, run) in self.cold.iter().enumerate() {
            if run_possible(run, filter, vis) {
                let Some((oldest, newest)) = run.created_bounds()? else { continue };
                let below_start = start.is_none_or(|s| oldest < s);
                let after_created = filter.created_after.is_none_or(|t| newest.0 > t.micros());
                if below_start && after_created {
                    closed.push((newest, k));
                }
            }
        }
        closed.sort_unstable();
        let mut walks: Vec<Option<ColdWalk<'_>>> = (0..self.cold.len()).map(|_| None).collect();
        // The next match of each source that has one, newest on top (the
        // hot rows are `Loc::Hot`, a run's `Loc::Cold`; keys are unique).
        let mut heads: BinaryHeap<Found> = BinaryHeap::with_capacity(self.cold.len() + 1);
        heads.extend(next_hot());
        let mut out = Vec::with_capacity(limit.min(4096));
        while out.len() < limit {
            while let Some(&(bound, k)) = closed.last() {
                if heads.peek().is_some_and(|&(key, _)| bound < key) {
                    break;
                }
                closed.pop();
                let Some(plan) = self.cold_plan(k, filter, vis)? else { continue };
                let mut walk = ColdWalk::new(&self.cold[k], plan, start)?;
                heads.extend(walk.next_match()?.map(|(key, r)| (key, Loc::Cold(k, r))));
                walks[k] = Some(walk);
            }
            let Some(found) = heads.pop() else { break };
            out.push(found);
            let next = match found.1 {
                Loc::Hot(_) => next_hot(),
                Loc::Cold(k, _) => {
                    let walk = walks[k].as_mut().expect("a head comes from an opened run");
                    walk.next_match()?.map(|(key, r)| (key, Loc::Cold(k, r)))
                }
            };
            heads.extend(next);
        }
        Ok(out)
    }

    /// One page of the jobs matching `filter` that `vis` lets the user see.
    pub fn query(
        &self,
        filter: &Filter,
        vis: &Visibility,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, Error> {
        let (rows, next) = self.page_rows(filter, vis, after, limit)?;
        Ok(Page { ids: rows.iter().map(|r| r.0 .1).collect(), next })
    }

    /// Every job matching `filter` that `vis` lets the user see, newest
    /// first, one page of at most `size` ids at a time: [`Projection::query`]
    /// from each page's cursor until the last page (the first page comes
    /// even when empty). The one walk over every page of a filter.
    pub fn pages<'a>(
        &'a self,
        filter: &'a Filter,
        vis: &'a Visibility,
        size: usize,
    ) -> impl Iterator<Item = Result<Vec<Uuid>, Error>> + 'a {
        let mut next: Option<Option<Cursor>> = Some(None);
        std::iter::from_fn(move || {
            let after = next.take()?;
            match self.query(filter, vis, after.as_ref(), size) {
                Ok(page) => {
                    next = page.next.map(Some);
                    Some(Ok(page.ids))
                }
                Err(e) => Some(Err(e)),
            }
        })
    }

    /// [`Projection::query`] with every column of each job (cold ones read
    /// from the log).
    pub fn query_jobs(
        &self,
        filter: &Filter,
        vis: &Visibility,
        after: Option<&Cursor>,
        limit: usize,
        log: &Log,
    ) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        let (rows, next) = self.page_rows(filter, vis, after, limit)?;
        let locs: Vec<Loc> = rows.iter().map(|&(_, loc)| loc).collect();
        Ok((self.jobs_at(&locs, log)?, next))
    }

    /// The jobs of one page, and the cursor after it when there may be more.
    fn page_rows(
        &self,
        filter: &Filter,
        vis: &Visibility,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Found>, Option<Cursor>), Error> {
        let mut rows = self.walk_all(filter, vis, after, limit.saturating_add(1))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(&((createdon, id), _)) if more => Some(Cursor { createdon: Timestamp::from_micros(createdon), id }),
            _ => None,
        };
        Ok((rows, next))
    }

    /// How many jobs match.
    pub fn count(&self, filter: &Filter, vis: &Visibility) -> Result<usize, Error> {
        let mut n = self.plan(filter, vis).map_or(0, |plan| self.count_hot(filter, &plan));
        let wanted = |st: Status| {
            filter.state.is_none_or(|s| st.state() == s) && filter.status_reason.is_none_or(|r| st.reason() == r)
        };
        let of_type = |t: u32| filter.operationtype.is_none_or(|ty| ty.0 == t);
        for p in self.cold_plans(filter, vis)? {
            let run = &self.cold[p.k];
            // A run of Completed jobs is counted by its completed index
            // (each row once, under its type); one that may hold others by
            // its status index, where each row is twice: under its type and
            // under every type (once only when its type is that key's).
            let by_status = run.holds_open();
            let ty = filter.operationtype.map(|t| t.0);
            let whole = if p.only_status_and_type && !(by_status && ty == Some(cold::ANY_TYPE)) {
                let section = if by_status { Section::ByStatus } else { Section::Completed };
                run.keys(section)?
                    .into_iter()
                    .filter(|&(key, _)| {
                        let reason = u32::try_from(key >> 32).unwrap_or(u32::MAX);
                        let t = (key & u64::from(u32::MAX)) as u32;
                        let typed = match (by_status, ty) {
                            (false, _) => of_type(t),
                            (true, None) => t == cold::ANY_TYPE,
                            (true, Some(ty)) => t == ty,
                        };
                        typed && Status::of_statuscode(reason).is_some_and(wanted)
                    })
                    .map(|(_, len)| len)
                    .sum()
            } else if p.source_is_everything {
                match p.source {
                    Some((section, key)) => run.postings(section, key)?.len(),
                    None => run.len(),
                }
            } else {
                let mut walk = ColdWalk::new(run, p, start_of(None, filter.created_before))?;
                let mut m = 0;
                while walk.next_match()?.is_some() {
                    m += 1;
                }
                n += m;
                continue;
            };
            // The run's sets still hold the rows deletions took.
            let mut taken = 0;
            for r in run.gone.iter() {
                if p.matches(&run.row(r)?) {
                    taken += 1;
                }
            }
            n += whole.saturating_sub(taken);
        }
        Ok(n)
    }

    fn count_hot(&self, filter: &Filter, plan: &Plan<'_>) -> usize {
        if plan.source_is_everything {
            return plan.source.map_or(0, Source::len);
        }
        if is_only_status_and_type(filter, plan) {
            // From the completed index's sets, one per (Status Reason,
            // System Job Type), and the open jobs' counters: no walk,
            // whatever the sizes.
            let wanted = |st: Status| {
                filter.state.is_none_or(|s| st.state() == s) && filter.status_reason.is_none_or(|r| st.reason() == r)
            };
            let of_type = |t: u32| filter.operationtype.is_none_or(|ty| ty.0 == t);
            let completed: usize = self
                .completed
                .iter()
                .filter(|((r, t), _)| wanted(Status::of_reason(*r)) && of_type(*t))
                .map(|(_, set)| set.len())
                .sum();
            let open: usize =
                self.open_counts.iter().filter(|((st, t), _)| wanted(*st) && of_type(*t)).map(|(_, n)| *n).sum();
            return completed + open;
        }
        self.walk(plan, start_of(None, filter.created_before)).count()
    }

    /// Ready jobs, oldest `createdon` first (the service's queue).
    pub fn ready(&self) -> impl Iterator<Item = Uuid> + '_ {
        let rows = &self.rows;
        self.by_status.get(&Status::READY).into_iter().flat_map(OrderedRows::iter_asc).map(move |i| rows[i as usize].id)
    }

    /// Hot jobs in `status`, oldest `createdon` first (for a Completed
    /// status, only those no checkpoint has moved cold yet).
    pub fn in_status(&self, status: Status) -> impl Iterator<Item = Uuid> + '_ {
        let rows = &self.rows;
        self.by_status.get(&status).into_iter().flat_map(OrderedRows::iter_asc).map(move |i| rows[i as usize].id)
    }

    /// Whether job `id` may run as far as its dependency token says: it has
    /// none, or it is the oldest job not Completed that carries it.
    pub(crate) fn is_token_head(&self, id: Uuid) -> bool {
        let Some(i) = self.row_of(id) else { return false };
        let token = self.rows[i as usize].dependencytoken;
        token == NONE || self.by_token.get(&token).and_then(|s| s.iter_asc().next()).is_none_or(|first| first == i)
    }

    /// How many jobs of `workflow` regarding `regarding` were created in
    /// the `window` (microseconds) up to and including `job` (the loop
    /// guard's count: `job` is the n-th start within the window).
    pub(crate) fn runs_on_row_within(
        &self,
        regarding: &Regarding,
        workflow: &str,
        job: &Job,
        window: i64,
    ) -> Result<usize, Error> {
        let regarding_name = regarding.to_string();
        let since = job.createdon.micros() - window;
        let upto = (job.createdon.micros(), job.id);
        let mut n = 0;
        if let (Some(row), Some(wf)) = (self.strings.get(&regarding_name), self.strings.get(workflow)) {
            let rows = &self.rows;
            // From the newest job regarding `row` created at `upto`'s time.
            let below = upto.0.checked_add(1).map(|t| (t, Uuid::nil()));
            n += Source::regarding(&self.by_regarding, row, rows)
                .iter_desc(below, rows)
                .skip_while(|&r| rows[r as usize].created_key() > upto)
                .take_while(|&r| rows[r as usize].createdon >= since)
                .filter(|&r| rows[r as usize].workflow == wf)
                .count();
        }
        let filter = Filter {
            regarding: Some(regarding.clone()),
            workflow: Some(workflow.to_string()),
            created_after: Some(Timestamp::from_micros(since - 1)),
            ..Filter::default()
        };
        let below = Some((upto.0, Uuid::from_u128(upto.1.as_u128().saturating_add(1))));
        for p in self.cold_plans(&filter, &Visibility::All)? {
            let mut walk = ColdWalk::new(&self.cold[p.k], p, below)?;
            while walk.next_match()?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Jobs on the timer index (see `Row::on_timer`) whose `postponeuntil`
    /// is at or before `now`, earliest first.
    pub fn due(&self, now: Timestamp) -> impl Iterator<Item = Uuid> + '_ {
        let rows = &self.rows;
        self.timers
            .iter_asc()
            .take_while(move |&r| rows[r as usize].postponeuntil <= now.micros())
            .map(move |r| rows[r as usize].id)
    }
}

/// True when the filter says nothing but a System Job Type, a State and a
/// Status Reason (any of them): the status indices count it.
fn is_only_status_and_type(f: &Filter, plan: &Plan<'_>) -> bool {
    (f.state.is_some() || f.status_reason.is_some())
        && plan.owner.is_none()
        && plan.workflow.is_none()
        && plan.regarding.is_none()
        && plan.units.is_none()
        && f.created_after.is_none()
        && f.created_before.is_none()
        && f.completed_before.is_none()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
    use super::*;
    use crate::projection::cold::tests::{bytes_of, job};
    use crate::projection::cold::{ColdRun, RowSet};

    /// `rows_below` finds the first row at or past a start as a plain
    /// search of every row would: runs of steady, bunched and equal
    /// creation times, starts before, inside, between and after them.
    #[test]
    fn rows_below_finds_the_start_as_a_full_search_does() {
        let mut rng = fastrand::Rng::with_seed(5);
        for (n, spread) in [(1, 10), (2, 1), (700, 1_000_000), (700, 3), (2_000, 1), (2_000, 40)] {
            let jobs: Vec<_> = (0..n)
                .map(|i| {
                    let mut j = job(&mut rng, i);
                    // Steady with `spread` > n, bunched below it, equal at 1;
                    // and a few far outliers at the ends.
                    j.row.createdon = rng.i64(0..spread) + if i % 97 == 0 { i64::from(i as u8) << 40 } else { 0 };
                    j
                })
                .collect();
            let run = Cold::new(std::sync::Arc::new(ColdRun::from_bytes(bytes_of(&jobs)).unwrap()), RowSet::default());
            let keys: Vec<Key> = (0..run.len()).map(|r| run.created_key(r as u32).unwrap()).collect();
            assert!(keys.windows(2).all(|w| w[0] <= w[1]), "rows in created order");
            let mut starts: Vec<Key> = keys.iter().map(|k| (k.0, k.1)).collect();
            starts.extend(keys.iter().map(|k| (k.0, Uuid::nil())));
            starts.extend(keys.iter().map(|k| (k.0 + 1, Uuid::nil())));
            starts.extend([(i64::MIN, Uuid::nil()), (i64::MAX, Uuid::max()), (-1, Uuid::max())]);
            for start in starts {
                let want = keys.partition_point(|k| *k < start);
                assert_eq!(rows_below(&run, start).unwrap(), want, "{n} rows, spread {spread}, start {start:?}");
            }
        }
    }
}
