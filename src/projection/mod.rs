//! Projections: the current state of every job, and the indices the views
//! need, folded from the log's events. Hot columns live in a compact row;
//! cold ones (name, message, data, …) stay in the log and are read through
//! the map when a job is shown.
//!
//! * `ordered` — the ordered row sets every index is made of.
//! * `intern`  — repeated strings stored once.
//! * `query`   — filters, visibility, pages and cursors.
//! * `snapshot` — checkpoints: the projection saved at a log position.
//! * `delete`   — bulk deletion: selecting, dropping rows, and following
//!   compaction's moves.

#[doc(hidden)]
pub mod cold;
mod delete;
mod ids;
mod intern;
mod ordered;
pub mod query;
mod snapshot;
mod streak;
mod tier;

// For the checkpoint fuzz target only.
#[doc(hidden)]
pub use snapshot::checkpoint_file_bytes;
pub(crate) use snapshot::KEEP as CHECKPOINTS_KEPT;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    Actor, Directory, DomainError, Envelope, Event, EventDecodeError, Job, JobColumns, OperationType, Regarding,
    Status, StatusReason, StorePolicy, Timestamp, Token, Tokens, Transition, WorkflowDefinition, EVENT_VERSION,
};
use crate::error::Error;
use crate::log::{Frames, Log, Position};
// The state's long vectors (rows, events, the indices as they are built)
// grow through it: their page faults were a fifth of a replay's applier.
use crate::sys::push_populated as push;

pub(crate) use intern::NameHashes;
use intern::{Interner, Sym, NONE};
use ordered::{Entry, OrderedRows, SortedRows, Tagged};
pub use tier::MAX_RUN_ROWS;
pub(crate) use tier::{FreezePlan, Loc};

/// "No time" in a row's timestamp columns.
const NO_TIME: i64 = i64::MIN;
/// "No error code".
const NO_ERROR: i32 = i32::MIN;
/// How many events ahead of the one it checks or applies a batch's loop
/// calls [`Projection::prefetch`] (a replay's calls
/// [`Projection::prefetch_far`] twice as many ahead, and
/// [`Projection::prefetch_near`] this many).
pub(crate) const PREFETCH_AHEAD: usize = 4;

/// End of a job's history chain.
const NO_EVENT: u32 = u32::MAX;

/// A log position in eight bytes: the segment's ordinal in
/// [`Projection::segments`] and the frame's offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pos {
    segment: u32,
    offset: u32,
}

/// The columns a write to a job is checked against.
#[derive(Debug, Clone)]
pub(crate) struct WriteTarget {
    pub(crate) status: Status,
    pub(crate) operationtype: OperationType,
    pub(crate) owner: String,
    pub(crate) owningbusinessunit: String,
    pub(crate) postponeuntil: Option<Timestamp>,
    pub(crate) retrycount: u32,
}

/// The columns a status change is checked against (a service step, a
/// loaded transition): no names, so it is cheap to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobStatus {
    pub(crate) status: Status,
    pub(crate) operationtype: OperationType,
    pub(crate) postponeuntil: Option<Timestamp>,
    pub(crate) retrycount: u32,
}

/// Jobs [`Projection::jobs_at`] reads at once: all of a view's 50-row
/// page, and a deletion's jobs in windows of that many.
const JOBS_AHEAD: usize = 64;

/// A job found ([`Projection::located`]), before its creation event is read.
struct Located<'a> {
    id: Uuid,
    c: Columns<'a>,
    first: Position,
    message: Option<Position>,
}

/// The columns a job's row takes from the projection (either tier).
struct Columns<'a> {
    status: Status,
    owner: &'a str,
    owningbusinessunit: &'a str,
    startedon: i64,
    completedon: i64,
    modifiedon: i64,
    postponeuntil: i64,
    retrycount: u32,
    errorcode: i32,
    executiontimespan_ms: u32,
}

/// One job's hot columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    id: Uuid,
    createdon: i64,
    startedon: i64,
    completedon: i64,
    modifiedon: i64,
    postponeuntil: i64,
    operationtype: u32,
    owner: Sym,
    owningbusinessunit: Sym,
    workflow: Sym,
    regarding: Sym,
    dependencytoken: Sym,
    retrycount: u32,
    errorcode: i32,
    executiontimespan_ms: u32,
    /// Newest entry of this job's chain in [`Projection::events`].
    last_event: u32,
    /// Oldest entry of the chain, its creation: reading a job needs it, and
    /// a job's chain may be thousands of events long. Not in a checkpoint
    /// (its format keeps `last_event` only): found when one is read.
    #[serde(skip, default = "no_event")]
    first_event: u32,
    /// The entry of the newest event that set the message (`NO_EVENT`: the
    /// creation's own, if any).
    message_event: u32,
    status: Status,
    deleted: bool,
}

fn no_event() -> u32 {
    NO_EVENT
}

fn time(t: Option<Timestamp>) -> i64 {
    t.map_or(NO_TIME, Timestamp::micros)
}

fn opt_time(t: i64) -> Option<Timestamp> {
    (t != NO_TIME).then(|| Timestamp::from_micros(t))
}

/// Every index of the hot rows, built whole from the rows that are not
/// deleted. The rows are put in (`createdon`, id) order once (they are
/// nearly always in it already: rows are made as their jobs are created,
/// and then that order is walked as it is, with no list of it made);
/// each set is filled chunk by chunk from that walk (`SortedRows`), the
/// view indices on this thread and the status indices with the sets by
/// workflow on a second core: no insert compares keys. The sets of other
/// orders are sorted: by regarding row by counting (`by_regarding_row`),
/// by completion and wake-up time by (time, row), ids compared only
/// between equal times.
pub(crate) struct Indices(ViewIndices, StatusIndices);

impl Indices {
    pub(crate) fn build(rows: &[Row]) -> Self {
        let order = if live(rows).is_sorted_by_key(|(_, r)| r.created_key()) {
            Order::Rows
        } else {
            let mut keyed: Vec<((i64, Uuid), u32)> = Vec::with_capacity(rows.len());
            live(rows).for_each(|(i, r)| push(&mut keyed, (r.created_key(), i)));
            keyed.sort_unstable();
            Order::Listed(keyed.into_iter().map(|(_, i)| i).collect())
        };
        // The sets by workflow are built with the status indices, on the
        // second core when there are many rows: the two halves then take
        // about as long (after a replay of 10M jobs, 0.8-1.0 s each, where
        // they took 1.1-1.3 s and 0.6-0.7 s: docs/benchmarks.md).
        let others = || (StatusIndices::build(rows, &order), workflow_groups(rows, &order));
        let (views, (status, by_workflow)) = if rows.len() < PARALLEL_ROWS {
            (ViewIndices::build(rows, &order), others())
        } else {
            std::thread::scope(|s| {
                let others = s.spawn(others);
                let views = ViewIndices::build(rows, &order);
                (views, others.join().expect("the indexing thread does not panic"))
            })
        };
        Indices(ViewIndices { by_workflow, ..views }, status)
    }
}

/// The rows not deleted, with their numbers.
fn live(rows: &[Row]) -> impl Iterator<Item = (u32, &Row)> {
    (0u32..).zip(rows).filter(|(_, r)| !r.deleted)
}

/// The live rows in (`createdon`, id) order, as [`Indices::build`] found
/// them: the rows themselves (nearly always: rows are made as their jobs
/// are created), or a list.
enum Order {
    Rows,
    Listed(Vec<u32>),
}

impl Order {
    /// Calls `f` with each live row, in (`createdon`, id) order.
    #[inline]
    fn each(&self, rows: &[Row], mut f: impl FnMut(u32, &Row)) {
        match self {
            Order::Rows => live(rows).for_each(|(i, r)| f(i, r)),
            Order::Listed(order) => order.iter().for_each(|&i| f(i, &rows[i as usize])),
        }
    }
}

/// A bulk batch defers its indices ([`Projection::defer_indexing_for`])
/// when the hot jobs are at most this many per event of it. Measured by
/// hand (`docs/benchmarks.md`, "Loads that build their indices once"): keeping
/// the indices live costs about 0.7 µs per loaded event at 3M jobs,
/// building them whole about 0.13 µs per row, so a rebuild after a batch a
/// quarter the size of the hot rows still costs less than the batch's live
/// upkeep, however often a reader asks for it.
pub(crate) const DEFER_PER_EVENT: usize = 4;

/// Below this many rows, what an open builds on two cores is built on one:
/// a thread costs more than the work (a reading command's state has no
/// hot row at all, `engine/views.rs`).
pub(crate) const PARALLEL_ROWS: usize = 1 << 14;

/// The indices of the views, built whole from rows in `createdon` order
/// (`Projection::index_all`).
struct ViewIndices {
    all: OrderedRows,
    by_type: HashMap<u32, OrderedRows>,
    by_owner: HashMap<Sym, OrderedRows>,
    by_workflow: HashMap<Sym, OrderedRows>,
    by_regarding: OrderedRows<RegardingKey, Tagged>,
}

/// Sets of rows pushed in (`createdon`, id) order, built.
fn ordered_groups<K: std::hash::Hash + Eq>(rows: &[Row], groups: HashMap<K, SortedRows>) -> HashMap<K, OrderedRows> {
    groups.into_iter().map(|(k, set)| (k, set.build(|x| rows[x as usize].created_key()))).collect()
}

impl ViewIndices {
    /// The indices of the live rows, `order` being theirs, but the sets
    /// by workflow (built apart: [`workflow_groups`]).
    fn build(rows: &[Row], order: &Order) -> Self {
        let mut all = SortedRows::default();
        let (mut by_type, mut by_owner): (HashMap<u32, SortedRows>, HashMap<Sym, SortedRows>) = Default::default();
        // (regarding row, row), in `createdon` order.
        let mut regarding: Vec<(Sym, u32)> = Vec::new();
        order.each(rows, |i, r| {
            all.push(i);
            by_type.entry(r.operationtype).or_default().push(i);
            by_owner.entry(r.owner).or_default().push(i);
            if r.regarding != NONE {
                push(&mut regarding, (r.regarding, i));
            }
        });
        ViewIndices {
            all: all.build(|x| rows[x as usize].created_key()),
            by_type: ordered_groups(rows, by_type),
            by_owner: ordered_groups(rows, by_owner),
            by_workflow: HashMap::default(),
            by_regarding: by_regarding_row(&regarding).build(|x| rows[x as usize].regarding_key()),
        }
    }
}

/// [`ViewIndices::by_workflow`] of the live rows, `order` being theirs.
fn workflow_groups(rows: &[Row], order: &Order) -> HashMap<Sym, OrderedRows> {
    let mut by_workflow: HashMap<Sym, SortedRows> = HashMap::default();
    order.each(rows, |i, r| {
        if r.workflow != NONE {
            by_workflow.entry(r.workflow).or_default().push(i);
        }
    });
    ordered_groups(rows, by_workflow)
}

/// `pairs` of (regarding row, row) in `createdon` order, ordered by
/// regarding row and, within each, kept in `createdon` order: a counting
/// sort (symbols are small numbers, one counter each), each entry tagged
/// with its regarding row, put in place in the set's chunks.
fn by_regarding_row(pairs: &[(Sym, u32)]) -> SortedRows<Tagged> {
    let Some(most) = pairs.iter().map(|&(s, _)| s).max() else { return SortedRows::default() };
    // How many pairs each symbol has, then where its first one goes.
    let mut next = vec![0u32; most as usize + 1];
    pairs.iter().for_each(|&(s, _)| next[s as usize] += 1);
    let mut at = 0;
    for n in &mut next {
        (*n, at) = (at, at + *n);
    }
    let mut out = SortedRows::filled(pairs.len(), Tagged::new(0, 0));
    for &(s, i) in pairs {
        let slot = &mut next[s as usize];
        out.set(*slot as usize, Tagged::new(s, i));
        *slot += 1;
    }
    out
}

/// The indices that follow status and wake-up time, built whole
/// (`Projection::index_all`).
struct StatusIndices {
    by_status: HashMap<Status, OrderedRows>,
    completed: HashMap<(StatusReason, u32), OrderedRows>,
    open_counts: HashMap<(Status, u32), usize>,
    timers: OrderedRows,
    by_token: HashMap<Sym, OrderedRows>,
}

impl StatusIndices {
    /// The indices of the live rows, `order` being theirs.
    fn build(rows: &[Row], order: &Order) -> Self {
        // (time, row): ordered by (time, the row's id).
        type Timed = Vec<(i64, u32)>;
        let (mut by_status, mut by_token): (HashMap<Status, SortedRows>, HashMap<Sym, SortedRows>) = Default::default();
        let mut completed: HashMap<(StatusReason, u32), Timed> = HashMap::default();
        let mut open_counts: HashMap<(Status, u32), usize> = HashMap::default();
        let mut timers: Timed = Vec::new();
        order.each(rows, |i, r| {
            by_status.entry(r.status).or_default().push(i);
            if r.status.is_completed() {
                push(completed.entry((r.status.reason(), r.operationtype)).or_default(), (r.completedon, i));
            } else {
                *open_counts.entry((r.status, r.operationtype)).or_default() += 1;
                if r.dependencytoken != NONE {
                    by_token.entry(r.dependencytoken).or_default().push(i);
                }
            }
            if r.on_timer() {
                push(&mut timers, (r.postponeuntil, i));
            }
        });
        // Sorted by time, the rows' ids read only where times are equal
        // (rarely: they are microseconds).
        let sorted = |mut v: Timed, key: fn(&Row) -> (i64, Uuid)| {
            let id = |i: u32| rows[i as usize].id;
            v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a.1).cmp(&id(b.1))));
            OrderedRows::from_sorted(v.into_iter().map(|(_, i)| i), |x| key(&rows[x as usize]))
        };
        StatusIndices {
            by_status: ordered_groups(rows, by_status),
            completed: completed.into_iter().map(|(k, v)| (k, sorted(v, Row::completed_key))).collect(),
            open_counts,
            timers: sorted(timers, Row::timer_key),
            by_token: ordered_groups(rows, by_token),
        }
    }
}

/// The order of [`Projection::by_regarding`]: regarding row, then
/// (`createdon`, id).
pub(crate) type RegardingKey = (Sym, (i64, Uuid));

impl Row {
    /// The order of every "newest first" view.
    pub(crate) fn created_key(&self) -> (i64, Uuid) {
        (self.createdon, self.id)
    }

    /// The key of [`Projection::by_regarding`].
    pub(crate) fn regarding_key(&self) -> RegardingKey {
        (self.regarding, self.created_key())
    }

    fn completed_key(&self) -> (i64, Uuid) {
        (self.completedon, self.id)
    }

    fn timer_key(&self) -> (i64, Uuid) {
        (self.postponeuntil, self.id)
    }

    /// A job with a wake-up time is on the timer index only where the
    /// state machine lets that time wake it (Suspended / Waiting or
    /// Retrying; never Paused, which only a user resumes): a timer that
    /// cannot act would come due on every pass and never go away.
    fn on_timer(&self) -> bool {
        self.postponeuntil != NO_TIME
            && crate::domain::RULES
                .iter()
                .any(|r| r.action == crate::domain::Action::Wake && r.from.contains(&self.status))
    }
}

/// One deletion, as the audit trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRecord {
    /// The deletion event's sequence number.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// Who deleted (a user, or the worker of a Bulk Delete job).
    pub actor: crate::domain::Actor,
    /// What it deleted, and by which criteria.
    pub deletion: crate::domain::Deletion,
}

/// One deletion of chosen jobs by id, as the audit trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdDeletionRecord {
    /// The deletion event's sequence number.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// Who deleted.
    pub actor: crate::domain::Actor,
    /// The jobs it deleted.
    pub ids: Vec<Uuid>,
}

/// The state folded from the log: jobs with their indices, the directory of
/// users and roles with their bearer tokens, and workflow definitions.
#[derive(Debug, Default)]
pub struct Projection {
    rows: Vec<Row>,
    by_id: ids::IdIndex,
    strings: Interner,
    /// Every live job, by (createdon, id).
    all: OrderedRows,
    by_type: HashMap<u32, OrderedRows>,
    by_owner: HashMap<Sym, OrderedRows>,
    by_workflow: HashMap<Sym, OrderedRows>,
    /// Every live job regarding a row, by (regarding, createdon, id): one
    /// set, since most rows are regarded by one job or a few (a set per row
    /// would cost an allocation and a map entry each).
    by_regarding: OrderedRows<RegardingKey, Tagged>,
    /// Hot jobs by status, `createdon` order. Completed ones are here too,
    /// until a checkpoint moves them cold: a view filtered by a Completed
    /// Status Reason walks only those.
    by_status: HashMap<Status, OrderedRows>,
    /// Completed jobs by (reason, System Job Type), ordered by
    /// (completedon, id): deletion's index.
    completed: HashMap<(StatusReason, u32), OrderedRows>,
    /// How many jobs not Completed are in each (status, System Job Type):
    /// with `completed`'s sets, a count by type and status needs no walk.
    open_counts: HashMap<(Status, u32), usize>,
    /// Suspended jobs with a `postponeuntil`, by (postponeuntil, id).
    timers: OrderedRows,
    /// Jobs not Completed that carry a dependency token, by token, oldest
    /// first: only the first of each may run.
    by_token: HashMap<Sym, OrderedRows>,
    /// Every event of every job: (where it is, the job's previous one).
    events: Vec<(Pos, u32)>,
    /// Slots of deleted jobs in `rows` and of their events in `events`,
    /// reused by new ones.
    free_rows: Vec<u32>,
    free_events: Vec<u32>,
    /// Events of deleted jobs still in the log, for compaction to drop:
    /// segment (first sequence number) → frame offsets.
    garbage: BTreeMap<u64, Vec<u64>>,
    /// Every deletion ever made, oldest first: the audit trail of who
    /// deleted what (these events are never compacted away).
    deletions: Vec<DeletionRecord>,
    /// Every deletion of chosen jobs by id, oldest first (never compacted
    /// away either).
    deletions_by_id: Vec<IdDeletionRecord>,
    /// Segment ordinals → the segment's first sequence number.
    segments: Vec<u64>,
    segment_ordinals: HashMap<u64, u32>,
    directory: Option<Directory>,
    workflows: BTreeMap<String, WorkflowDefinition>,
    /// The service's policy set in this store (`domain::config`).
    policy: StorePolicy,
    /// Bearer tokens (`domain::token`), by id.
    tokens: Tokens,
    last_seq: u64,
    last_at: Option<Timestamp>,
    /// Where the event `last_seq` is in the log, when known: set when it
    /// is applied (or read from the checkpoint this state came from),
    /// carried along by a compaction or freeze (`apply_compaction`). Where
    /// a fold of the events after it starts reading ([`Log::scan_after`]);
    /// a hint only, checked there against the frame it points to.
    last_position: Option<Position>,
    /// The last deletion selected, for applying it (see `delete.rs`).
    planned: std::sync::Mutex<Option<delete::Planned>>,
    /// Cold runs, oldest first (`tier.rs`): Completed jobs read in place,
    /// none of them in `rows`.
    cold: Vec<tier::Cold>,
    /// The id the next cold run gets.
    next_run: u64,
    /// Runs that left `cold` since the last checkpoint, whose files are
    /// still there (`tier.rs`, `release_runs`).
    released: Vec<tier::Released>,
    /// A replay from nothing is folding, or bulk batches are being loaded
    /// (`Projection::defer_indexing_for`): rows change but no index is kept
    /// until [`Projection::finish_indexing`] builds them all at once (in
    /// `createdon` order, each insert an append; a job's status indices
    /// are not moved at each of its transitions). A deletion by criteria
    /// selects through the indices, so it has them built first.
    deferred: bool,
    /// Where a replay from the log alone (read-only) wrote the cold runs
    /// that kept its memory bounded (`Projection::spill`): removed with the
    /// state.
    scratch: Option<tempfile::TempDir>,
    /// A reading state (`snapshot::load_views`): a change to a job in a
    /// run moves that job's row alone into memory, never the whole run
    /// (`tier.rs`, `hot_row`), since such a state never writes a run.
    reading: bool,
}

impl Projection {
    /// An empty projection: a fresh store's state before any event.
    pub fn new() -> Self {
        Self::default()
    }

    /// The users, business units and roles (a fresh store's until events say otherwise).
    pub fn directory(&self) -> &Directory {
        static FRESH: std::sync::OnceLock<Directory> = std::sync::OnceLock::new();
        self.directory.as_ref().unwrap_or_else(|| FRESH.get_or_init(Directory::fresh))
    }

    fn directory_mut(&mut self) -> &mut Directory {
        self.directory.get_or_insert_with(Directory::fresh)
    }

    /// Every workflow definition, by id.
    pub fn workflows(&self) -> &BTreeMap<String, WorkflowDefinition> {
        &self.workflows
    }

    /// The service's policy set in this store (as of the last event applied).
    pub fn policy(&self) -> &StorePolicy {
        &self.policy
    }

    /// Every bearer token, revoked and expired ones too (hashes only).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The sequence number of the last event applied (0: none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Where event [`Projection::last_seq`] was in the log, when known (a
    /// hint: see the field).
    pub fn last_position(&self) -> Option<Position> {
        self.last_position
    }

    /// The time of the newest event applied.
    pub fn last_at(&self) -> Option<Timestamp> {
        self.last_at
    }

    /// Every deletion, oldest first.
    pub fn deletions(&self) -> &[DeletionRecord] {
        &self.deletions
    }

    /// Every deletion of chosen jobs by id, oldest first.
    pub fn deletions_by_id(&self) -> &[IdDeletionRecord] {
        &self.deletions_by_id
    }

    /// Live jobs.
    pub fn job_count(&self) -> usize {
        self.all.len() + self.cold.iter().map(tier::Cold::live).sum::<usize>()
    }

    pub(crate) fn row_of(&self, id: Uuid) -> Option<u32> {
        self.by_id.get(id, &self.rows).filter(|&i| !self.rows[i as usize].deleted)
    }

    /// What a write to job `id` is checked against.
    pub(crate) fn write_target(&self, id: Uuid) -> Result<Option<WriteTarget>, Error> {
        Ok(match self.locate(id)? {
            None => None,
            Some(Loc::Hot(i)) => {
                let r = &self.rows[i as usize];
                let name = |s| self.strings.name(s).unwrap_or_default().to_string();
                Some(WriteTarget {
                    status: r.status,
                    operationtype: OperationType(r.operationtype),
                    owner: name(r.owner),
                    owningbusinessunit: name(r.owningbusinessunit),
                    postponeuntil: opt_time(r.postponeuntil),
                    retrycount: r.retrycount,
                })
            }
            Some(Loc::Cold(k, i)) => {
                let r = self.cold_row(k, i)?;
                let name = |s| self.cold_name(k, s).map(|n| n.unwrap_or_default().to_string());
                Some(WriteTarget {
                    status: r.status(),
                    operationtype: OperationType(r.operationtype),
                    owner: name(r.owner)?,
                    owningbusinessunit: name(r.owningbusinessunit)?,
                    postponeuntil: opt_time(r.postponeuntil),
                    retrycount: r.retrycount,
                })
            }
        })
    }

    /// The columns a status change of job `id` is checked against.
    pub(crate) fn job_status(&self, id: Uuid) -> Result<Option<JobStatus>, Error> {
        Ok(match self.locate(id)? {
            None => None,
            Some(Loc::Hot(i)) => {
                let r = &self.rows[i as usize];
                Some(JobStatus {
                    status: r.status,
                    operationtype: OperationType(r.operationtype),
                    postponeuntil: opt_time(r.postponeuntil),
                    retrycount: r.retrycount,
                })
            }
            Some(Loc::Cold(k, i)) => {
                let r = self.cold_row(k, i)?;
                Some(JobStatus {
                    status: r.status(),
                    operationtype: OperationType(r.operationtype),
                    postponeuntil: opt_time(r.postponeuntil),
                    retrycount: r.retrycount,
                })
            }
        })
    }

    /// (status, createdon, modifiedon, completedon) of job `id`.
    fn basics(&self, id: Uuid) -> Result<Option<(Status, i64, i64, i64)>, Error> {
        Ok(match self.locate(id)? {
            None => None,
            Some(Loc::Hot(i)) => {
                let r = &self.rows[i as usize];
                Some((r.status, r.createdon, r.modifiedon, r.completedon))
            }
            Some(Loc::Cold(k, i)) => {
                let r = self.cold_row(k, i)?;
                Some((r.status(), r.createdon, r.modifiedon, r.completedon))
            }
        })
    }

    /// A job's `modifiedon` (a conditional change's check).
    pub(crate) fn modifiedon(&self, id: Uuid) -> Result<Option<Timestamp>, Error> {
        Ok(self.basics(id)?.map(|b| Timestamp::from_micros(b.2)))
    }

    /// The current status of a job.
    pub fn status_of(&self, id: Uuid) -> Result<Option<Status>, Error> {
        Ok(self.basics(id)?.map(|b| b.0))
    }

    /// When a job completed (`None`: not completed, or no such job).
    pub(crate) fn completedon_of(&self, id: Uuid) -> Result<Option<Timestamp>, Error> {
        Ok(self.basics(id)?.and_then(|b| opt_time(b.3)))
    }

    fn pos(&mut self, p: Position) -> Pos {
        let next = self.segments.len() as u32;
        let segment = *self.segment_ordinals.entry(p.segment).or_insert(next);
        if segment == next {
            self.segments.push(p.segment);
        }
        let offset = u32::try_from(p.offset).expect("segments are at most 4 GiB (LogConfig::MAX_SEGMENT_BYTES)");
        Pos { segment, offset }
    }

    fn position(&self, p: Pos) -> Position {
        Position { segment: self.segments[p.segment as usize], offset: u64::from(p.offset) }
    }

    /// Folds one event, read from the log at `seq`/`pos`, into the state.
    /// Events that contradict the state (a transition from another status, a
    /// second job with the same id) mean the log is corrupt.
    pub fn apply(&mut self, env: &Envelope, seq: u64, pos: Position) -> Result<(), Error> {
        let what = What::Whole { actor: &env.actor, event: &env.event };
        self.apply_view(EventView { version: env.version, at: env.at, what }, seq, pos)
    }

    /// [`Projection::apply`] of an event as a replay hands it over: the two
    /// common events as what the state keeps of them.
    pub(crate) fn apply_view(&mut self, e: EventView<'_>, seq: u64, pos: Position) -> Result<(), Error> {
        if e.version > EVENT_VERSION {
            return Err(Error::NewerVersion {
                file: None,
                what: format!("event {seq} has schema version {}, newer than this build's {EVENT_VERSION}", e.version),
            });
        }
        if seq <= self.last_seq {
            return Err(Error::corrupt(format!("event {seq} applied after event {}", self.last_seq)));
        }
        let at = e.at;
        match e.what {
            What::Created { job, names } => self.create(job, names, seq, pos)?,
            What::Transition { t, by_user } => self.step(t, by_user, at, seq, pos)?,
            What::Whole { actor, event } => self.apply_whole(actor, event, at, seq, pos)?,
        }
        self.last_seq = seq;
        self.last_position = Some(pos);
        self.last_at = Some(self.last_at.map_or(at, |t| t.max(at)));
        Ok(())
    }

    /// A job's creation (`names`: the hashes of its names).
    fn create(&mut self, job: &JobColumns<&str>, names: NameHashes, seq: u64, pos: Position) -> Result<(), Error> {
        if self.by_id.get(job.id, &self.rows).is_some() || self.locate_cold(job.id)?.is_some() {
            return Err(bad_event(seq, format!("job {} created twice", job.id)));
        }
        let p = self.pos(pos);
        self.insert_job(job, names, p);
        Ok(())
    }

    fn step(&mut self, t: &Transition, by_user: bool, at: Timestamp, seq: u64, pos: Position) -> Result<(), Error> {
        let bad = |what| Err(bad_event(seq, what));
        let Some(i) = self.hot_row(t.job)? else { return bad(format!("transition of unknown job {}", t.job)) };
        if self.rows[i as usize].status != t.from {
            return bad(format!(
                "job {} is {}, the event moves it from {}",
                t.job, self.rows[i as usize].status, t.from
            ));
        }
        let op = OperationType(self.rows[i as usize].operationtype);
        if crate::domain::transition_by_user(by_user, t.job, op, t.from, t.action).ok() != Some(t.to) {
            return bad(format!(
                "job {}: {} from {} does not lead to {} (the state machine's table)",
                t.job,
                t.action.name(),
                t.from,
                t.to
            ));
        }
        let p = self.pos(pos);
        self.transition(i, t, at, p);
        Ok(())
    }

    /// Every event but through [`What::Created`] and [`What::Transition`]
    /// (those two too, whole).
    fn apply_whole(
        &mut self,
        actor: &Actor,
        event: &Event,
        at: Timestamp,
        seq: u64,
        pos: Position,
    ) -> Result<(), Error> {
        let bad = |what| Err(bad_event(seq, what));
        match event {
            Event::JobCreated(job) => {
                let job = job.columns();
                self.create(&job, NameHashes::of(&job), seq, pos)?
            }
            Event::Transition(t) => self.step(t, matches!(actor, Actor::User(_)), at, seq, pos)?,
            Event::OwnerChanged { job, owner, owningbusinessunit } => {
                let Some(i) = self.hot_row(*job)? else { return bad(format!("owner change of unknown job {job}")) };
                let p = self.pos(pos);
                self.change_owner(i, owner, owningbusinessunit, at, p);
            }
            Event::BusinessUnitAdded { name, parent } => self.directory_mut().add_business_unit(name, parent)?,
            Event::RoleAdded(role) => self.directory_mut().add_role(role.clone())?,
            Event::UserAdded(user) => self.directory_mut().add_user(user.clone())?,
            Event::UserDeactivated { name } => self.directory_mut().deactivate_user(name)?,
            Event::UserReactivated { name } => self.directory_mut().reactivate_user(name)?,
            Event::OsUserMapped { name, uid } => self.directory_mut().map_os_user(name, *uid)?,
            Event::WorkflowSaved(w) => {
                self.workflows.insert(w.id.clone(), w.clone());
            }
            Event::PolicySet { key, value } => self.policy.apply(key, *value, seq),
            Event::TokenCreated { id, user, name, hash, expires } => {
                if self.directory().user(user).is_err() {
                    return bad(format!("token {id} of unknown user {user}"));
                }
                let token = Token {
                    id: *id,
                    user: user.clone(),
                    name: name.clone(),
                    hash: *hash,
                    created: at,
                    expires: *expires,
                    revoked: false,
                };
                if let Err(e) = self.tokens.add(token) {
                    return bad(format!("token {id}: {e}"));
                }
            }
            Event::TokenRevoked { id } => {
                if let Err(e) = self.tokens.revoke(*id) {
                    return bad(format!("revocation of token {id}: {e}"));
                }
            }
            Event::JobResubmitted { job, .. } => {
                // A line of the old job's history: its chain, no column.
                let Some(i) = self.hot_row(*job)? else { return bad(format!("resubmission of unknown job {job}")) };
                let p = self.pos(pos);
                let prev = self.rows[i as usize].last_event;
                self.rows[i as usize].last_event = self.push_event(p, prev);
            }
            Event::JobsDeleted(d) => {
                // A deletion selects through the indices.
                self.finish_indexing();
                self.apply_deletion(d, seq)?;
                self.deletions.push(DeletionRecord { seq, at, actor: actor.clone(), deletion: (**d).clone() });
            }
            Event::JobsDeletedById { ids } => {
                if let Err(e) = self.apply_deletion_by_id(ids) {
                    return match e {
                        Error::Corrupt { reason, .. } => bad(reason.to_string()),
                        e => Err(e),
                    };
                }
                self.deletions_by_id.push(IdDeletionRecord { seq, at, actor: actor.clone(), ids: ids.clone() });
            }
        }
        Ok(())
    }

    /// Fetches ahead into the cache what checking or applying `env` will
    /// read first that is likely far away in memory (its job's slot in the
    /// id table, its regarding row's in the names: `ids.rs`, `intern.rs`):
    /// called [`PREFETCH_AHEAD`] events before `env` is checked or
    /// applied, it changes nothing.
    pub(crate) fn prefetch(&self, env: &Envelope) {
        self.prefetch_far(&Lookups::of(&env.event));
    }

    /// [`Projection::prefetch`] of what an event looks up first.
    pub(crate) fn prefetch_far(&self, l: &Lookups) {
        if let Some(id) = l.job {
            self.by_id.prefetch(id, &self.rows);
        }
        if let Some(names) = &l.names {
            names.prefetch_slots(&self.strings);
        }
    }

    /// The second step of [`Projection::prefetch_far`], called nearer to
    /// the event's turn (half as many events ahead): the job's row and the
    /// regarding row's name themselves, when their slots say they are
    /// there.
    pub(crate) fn prefetch_near(&self, l: &Lookups) {
        if let Some(id) = l.job {
            self.by_id.prefetch_row(id, &self.rows);
        }
        if let Some(names) = &l.names {
            names.prefetch_names(&self.strings);
        }
    }

    fn insert_job(&mut self, job: &JobColumns<&str>, names: NameHashes, p: Pos) {
        let s = &mut self.strings;
        let row = Row {
            id: job.id,
            createdon: job.createdon.micros(),
            startedon: time(job.startedon),
            completedon: time(job.completedon),
            modifiedon: job.modifiedon.micros(),
            postponeuntil: time(job.postponeuntil),
            operationtype: job.operationtype.0,
            owner: s.intern_hashed(job.owner, names.owner),
            owningbusinessunit: s.intern_hashed(job.owningbusinessunit, names.unit),
            workflow: s.intern_opt_hashed(job.workflow, names.workflow),
            regarding: job.regarding.map_or(NONE, |(table, id)| match names.regarding {
                Some(h) => s.intern_joined_hashed(table, ':', id, h),
                None => s.intern_joined(table, ':', id),
            }),
            dependencytoken: s.intern_opt_hashed(job.dependencytoken, names.token),
            retrycount: job.retrycount,
            errorcode: job.errorcode.unwrap_or(NO_ERROR),
            executiontimespan_ms: u32::try_from(job.executiontimespan_ms).unwrap_or(u32::MAX),
            last_event: NO_EVENT,
            first_event: NO_EVENT,
            message_event: NO_EVENT,
            status: job.status,
            deleted: false,
        };
        let i = self.put_row(row);
        let indexed = self.by_id.insert(job.id, i, &self.rows);
        debug_assert!(indexed, "job {} created twice (apply checks it first)", job.id);
        let e = self.push_event(p, NO_EVENT);
        (self.rows[i as usize].last_event, self.rows[i as usize].first_event) = (e, e);
        if !self.deferred {
            self.index(i);
        }
    }

    fn transition(&mut self, i: u32, t: &Transition, at: Timestamp, p: Pos) {
        if !self.deferred {
            self.unindex_status(i);
        }
        let c = t.columns(at);
        let r = &mut self.rows[i as usize];
        r.status = c.status;
        r.postponeuntil = time(c.postponeuntil);
        r.retrycount = c.retrycount;
        r.modifiedon = c.modifiedon.micros();
        if let Some(code) = c.errorcode {
            r.errorcode = code;
        }
        if let (Some(started), NO_TIME) = (c.started, r.startedon) {
            r.startedon = started.micros();
        }
        if let Some(done) = c.completedon {
            r.completedon = done.micros();
            let span = crate::domain::executiontimespan_ms(opt_time(r.startedon), done);
            r.executiontimespan_ms = u32::try_from(span).unwrap_or(u32::MAX);
        }
        let carries_message = c.message.is_some();
        let prev = r.last_event;
        let e = self.push_event(p, prev);
        let r = &mut self.rows[i as usize];
        r.last_event = e;
        if carries_message {
            r.message_event = e;
        }
        if !self.deferred {
            self.index_status(i);
        }
    }

    fn change_owner(&mut self, i: u32, owner: &str, unit: &str, at: Timestamp, p: Pos) {
        let rows = &self.rows;
        if let Some(set) = self.by_owner.get_mut(&rows[i as usize].owner).filter(|_| !self.deferred) {
            set.remove(i, |r| rows[r as usize].created_key());
        }
        let (owner, unit) = (self.strings.intern(owner), self.strings.intern(unit));
        let r = &mut self.rows[i as usize];
        r.owner = owner;
        r.owningbusinessunit = unit;
        r.modifiedon = at.micros();
        let prev = r.last_event;
        self.rows[i as usize].last_event = self.push_event(p, prev);
        if !self.deferred {
            let rows = &self.rows;
            self.by_owner.entry(owner).or_default().insert(i, |r| rows[r as usize].created_key());
        }
    }

    /// Puts `row` in a free slot, or a new one; returns its number.
    fn put_row(&mut self, row: Row) -> u32 {
        match self.free_rows.pop() {
            Some(i) => {
                self.rows[i as usize] = row;
                i
            }
            None => {
                push(&mut self.rows, row);
                (self.rows.len() - 1) as u32
            }
        }
    }

    /// Adds an entry to the event chain; returns its number.
    fn push_event(&mut self, p: Pos, prev: u32) -> u32 {
        match self.free_events.pop() {
            Some(e) => {
                self.events[e as usize] = (p, prev);
                e
            }
            None => {
                push(&mut self.events, (p, prev));
                (self.events.len() - 1) as u32
            }
        }
    }

    /// Builds every index from the rows that are not deleted (the indices
    /// empty: the end of a replay from nothing; a checkpoint's load calls
    /// `Indices::build` itself).
    fn index_all(&mut self) {
        let built = Indices::build(&self.rows);
        self.set_indices(built);
    }

    /// Puts indices built whole (`Indices::build`) in place of the empty ones.
    fn set_indices(&mut self, Indices(views, status): Indices) {
        self.deferred = false;
        (self.all, self.by_type, self.by_owner, self.by_workflow, self.by_regarding) =
            (views.all, views.by_type, views.by_owner, views.by_workflow, views.by_regarding);
        (self.by_status, self.completed, self.open_counts, self.timers, self.by_token) =
            (status.by_status, status.completed, status.open_counts, status.timers, status.by_token);
    }

    /// Makes room in the id table for `more` jobs at once, ahead of a
    /// replay that will create about that many (`engine/open.rs`).
    pub(crate) fn reserve_jobs(&mut self, more: usize) {
        self.by_id.reserve(more);
    }

    /// Stops keeping indices, when nothing has been folded yet (a replay
    /// from an empty state): [`Projection::finish_indexing`] builds them.
    pub(crate) fn defer_indexing(&mut self) {
        self.deferred = self.last_seq == 0 && self.rows.is_empty() && self.cold.is_empty();
    }

    /// Stops keeping indices for a bulk batch of `events` events (a load or
    /// an import, `engine/import.rs`) when building them whole afterwards
    /// costs less than keeping them live: when the hot jobs number at most
    /// [`DEFER_PER_EVENT`] per event of the batch. The stale indices are
    /// dropped at once. Whoever needs them next builds them
    /// ([`Projection::finish_indexing`]): a reader, a write that is not a
    /// bulk one, a deletion. A checkpoint does not need them (it selects
    /// the Completed jobs from the rows, and builds the indices of the
    /// rows it keeps hot only if they are kept). Once deferred, the next
    /// bulk batches keep deferring.
    pub(crate) fn defer_indexing_for(&mut self, events: usize) {
        if !self.deferred && events.saturating_mul(DEFER_PER_EVENT) >= self.by_id.len() {
            self.set_indices(Indices::build(&[]));
            self.deferred = true;
        }
    }

    /// Whether the indices are not kept until [`Projection::finish_indexing`].
    pub(crate) fn indexing_deferred(&self) -> bool {
        self.deferred
    }

    /// Builds the indices that [`Projection::defer_indexing`] or
    /// [`Projection::defer_indexing_for`] stopped keeping (nothing if
    /// they did not).
    pub(crate) fn finish_indexing(&mut self) {
        if self.deferred {
            self.index_all();
        }
    }

    /// Adds row `i` to every index.
    fn index(&mut self, i: u32) {
        let rows = &self.rows;
        let r = &rows[i as usize];
        let created = |x: u32| rows[x as usize].created_key();
        self.all.insert(i, created);
        self.by_type.entry(r.operationtype).or_default().insert(i, created);
        self.by_owner.entry(r.owner).or_default().insert(i, created);
        if r.workflow != NONE {
            self.by_workflow.entry(r.workflow).or_default().insert(i, created);
        }
        if r.regarding != NONE {
            self.by_regarding.insert(i, |x: u32| rows[x as usize].regarding_key());
        }
        self.index_status(i);
    }

    /// The indices that depend on status and wake-up time.
    fn index_status(&mut self, i: u32) {
        let rows = &self.rows;
        let r = &rows[i as usize];
        let created = |x: u32| rows[x as usize].created_key();
        self.by_status.entry(r.status).or_default().insert(i, created);
        if r.status.is_completed() {
            let key = |x: u32| rows[x as usize].completed_key();
            self.completed.entry((r.status.reason(), r.operationtype)).or_default().insert(i, key);
        } else {
            *self.open_counts.entry((r.status, r.operationtype)).or_default() += 1;
            if r.dependencytoken != NONE {
                self.by_token.entry(r.dependencytoken).or_default().insert(i, created);
            }
        }
        if r.on_timer() {
            self.timers.insert(i, |x: u32| rows[x as usize].timer_key());
        }
    }

    fn unindex_status(&mut self, i: u32) {
        let rows = &self.rows;
        let r = &rows[i as usize];
        let created = |x: u32| rows[x as usize].created_key();
        let by_status = self.by_status.get_mut(&r.status).is_some_and(|s| s.remove(i, created));
        let removed = by_status
            && if r.status.is_completed() {
                self.completed
                    .get_mut(&(r.status.reason(), r.operationtype))
                    .is_some_and(|s| s.remove(i, |x| rows[x as usize].completed_key()))
            } else {
                if let Some(set) = self.by_token.get_mut(&r.dependencytoken) {
                    set.remove(i, created);
                    if set.len() == 0 {
                        self.by_token.remove(&r.dependencytoken);
                    }
                }
                let key = (r.status, r.operationtype);
                match self.open_counts.get(&key).copied() {
                    Some(1) => drop(self.open_counts.remove(&key)),
                    Some(n) => drop(self.open_counts.insert(key, n - 1)),
                    None => debug_assert!(false, "row {i} was not counted in its status"),
                }
                true
            };
        debug_assert!(removed, "row {i} was not in its status index");
        if r.on_timer() {
            self.timers.remove(i, |x| rows[x as usize].timer_key());
        }
    }

    /// Reads a job's full row: cold columns from its creation event in the
    /// log, hot ones from the projection, the message from its newest event
    /// that carries one.
    pub fn job(&self, id: Uuid, log: &Log) -> Result<Job, Error> {
        self.job_at(self.locate(id)?.ok_or_else(|| DomainError::job_not_found(id))?, log)
    }

    /// [`Projection::job`] for a job already found.
    pub(crate) fn job_at(&self, loc: Loc, log: &Log) -> Result<Job, Error> {
        self.job_from(self.located(loc)?, log, &log.frames())
    }

    /// [`Projection::job_at`] of every job of `locs`, in their order. Each
    /// job's row needs its creation event (and the event with its
    /// message), frames anywhere in the log: read one job after the other,
    /// each read waited for memory on its own. So each step is asked of
    /// every job before the next: where its events are listed, fetched
    /// ahead; then where its frames are, fetched ahead; then the frames
    /// read (docs/benchmarks.md, "A page's frames fetched at once").
    pub(crate) fn jobs_at(&self, locs: &[Loc], log: &Log) -> Result<Vec<Job>, Error> {
        let frames = log.frames();
        let mut jobs = Vec::with_capacity(locs.len());
        let mut located = Vec::with_capacity(locs.len().min(JOBS_AHEAD));
        // A window at a time: a deletion asks for every job it takes.
        for window in locs.chunks(JOBS_AHEAD) {
            for &loc in window {
                match loc {
                    Loc::Hot(i) => {
                        if let Some(r) = self.rows.get(i as usize) {
                            for e in [r.first_event, r.message_event] {
                                if let Some(e) = self.events.get(e as usize) {
                                    crate::sys::prefetch(e);
                                }
                            }
                        }
                    }
                    Loc::Cold(k, i) => self.cold[k].prefetch_events(i),
                }
            }
            located.clear();
            for &loc in window {
                located.push(self.located(loc)?);
            }
            frames.prefetch(located.iter().flat_map(|l| std::iter::once(l.first).chain(l.message)));
            for l in located.drain(..) {
                jobs.push(self.job_from(l, log, &frames)?);
            }
        }
        Ok(jobs)
    }

    /// A job's columns and where its first event and the event with its
    /// message are.
    fn located(&self, loc: Loc) -> Result<Located<'_>, Error> {
        let (id, c, first, message) = match loc {
            Loc::Hot(i) => {
                let r = &self.rows[i as usize];
                let s = &self.strings;
                let name = |x| s.name(x).unwrap_or_default();
                let c = Columns {
                    status: r.status,
                    owner: name(r.owner),
                    owningbusinessunit: name(r.owningbusinessunit),
                    startedon: r.startedon,
                    completedon: r.completedon,
                    modifiedon: r.modifiedon,
                    postponeuntil: r.postponeuntil,
                    retrycount: r.retrycount,
                    errorcode: r.errorcode,
                    executiontimespan_ms: r.executiontimespan_ms,
                };
                let first = self.position(self.events[r.first_event as usize].0);
                let message =
                    (r.message_event != NO_EVENT).then(|| self.position(self.events[r.message_event as usize].0));
                (r.id, c, first, message)
            }
            Loc::Cold(k, i) => {
                let r = self.cold_row(k, i)?;
                let name = |x| self.cold_name(k, x).map(Option::unwrap_or_default);
                let c = Columns {
                    status: r.status(),
                    owner: name(r.owner)?,
                    owningbusinessunit: name(r.owningbusinessunit)?,
                    startedon: r.startedon,
                    completedon: r.completedon,
                    modifiedon: r.modifiedon,
                    postponeuntil: r.postponeuntil,
                    retrycount: r.retrycount,
                    errorcode: r.errorcode,
                    executiontimespan_ms: r.executiontimespan_ms,
                };
                // Its first event and the one with its message, read in
                // place (no list of them all).
                let mut events = self.cold[k].event_positions(&r)?;
                let first = events.next().ok_or_else(|| Error::corrupt(format!("job {}: no event", r.id)))?;
                let message = match r.message_event {
                    cold::NO_MESSAGE => None,
                    0 => Some(first),
                    m => events.nth(m as usize - 1),
                };
                (r.id, c, first, message)
            }
        };
        Ok(Located { id, c, first, message })
    }

    /// The job [`Projection::located`] found, its creation event read.
    fn job_from(&self, l: Located<'_>, log: &Log, frames: &Frames) -> Result<Job, Error> {
        let Located { id, c, first, message } = l;
        let rec = frames.read_written(first)?;
        let created = match Envelope::decode_job_created(rec.payload) {
            Some(job) => Some(job),
            None => match decode_event(log, rec.seq, rec.position, rec.payload)?.event {
                Event::JobCreated(created) => Some(*created),
                _ => None,
            },
        };
        let mut job = created
            .filter(|job| job.id == id)
            .ok_or_else(|| Error::corrupt(format!("job {id}: its first event is not its creation")))?;
        let job_created_modifiedon = job.modifiedon.micros();
        job.status = c.status;
        // Most jobs keep the owner they were created with: no new string.
        if job.owner != c.owner {
            job.owner = c.owner.to_string();
        }
        if job.owningbusinessunit != c.owningbusinessunit {
            job.owningbusinessunit = c.owningbusinessunit.to_string();
        }
        job.startedon = opt_time(c.startedon);
        job.completedon = opt_time(c.completedon);
        job.modifiedon = Timestamp::from_micros(c.modifiedon);
        job.postponeuntil = opt_time(c.postponeuntil);
        job.retrycount = c.retrycount;
        job.errorcode = (c.errorcode != NO_ERROR).then_some(c.errorcode);
        job.executiontimespan_ms = u64::from(c.executiontimespan_ms);
        if c.modifiedon < job_created_modifiedon {
            // A row replayed as it stood before its imported state
            // (`Job::as_of`): the imported messages are not yet.
            job.message = None;
            job.friendlymessage = None;
        }
        if let Some(m) = message {
            let rec = frames.read_written(m)?;
            if let Event::Transition(Transition { message: Some(m), .. }) =
                decode_event(log, rec.seq, rec.position, rec.payload)?.event
            {
                job.message = Some(m);
            }
        }
        Ok(job)
    }

    /// Every event of a job, oldest first, with its sequence number.
    pub fn history(&self, id: Uuid, log: &Log) -> Result<Vec<(u64, Envelope)>, Error> {
        let positions = match self.locate(id)?.ok_or_else(|| DomainError::job_not_found(id))? {
            Loc::Hot(i) => {
                let mut p: Vec<Position> =
                    self.chain(self.rows[i as usize].last_event).into_iter().map(|p| self.position(p)).collect();
                p.reverse();
                p
            }
            Loc::Cold(k, i) => self.cold[k].events(&self.cold_row(k, i)?)?,
        };
        let mut out = Vec::with_capacity(positions.len());
        let frames = log.frames();
        frames.prefetch(positions.iter().copied());
        for p in positions {
            let rec = frames.read_written(p)?;
            let e = decode_event(log, rec.seq, rec.position, rec.payload)?;
            let about = match &e.event {
                Event::JobCreated(j) => Some(j.id),
                Event::Transition(t) => Some(t.job),
                Event::OwnerChanged { job, .. } | Event::JobResubmitted { job, .. } => Some(*job),
                _ => None,
            };
            if about != Some(id) {
                return Err(Error::corrupt(format!(
                    "job {id}: the event at {}:{} (event {}) is not one of its own",
                    p.segment, p.offset, rec.seq
                )));
            }
            out.push((rec.seq, e));
        }
        Ok(out)
    }

    /// The positions of a job's events, newest first.
    fn chain(&self, mut at: u32) -> Vec<Pos> {
        let mut out = Vec::new();
        while at != NO_EVENT {
            let (p, prev) = self.events[at as usize];
            out.push(p);
            at = prev;
        }
        out
    }

    /// Resident bytes of the job rows and every index, and of what the
    /// cold runs keep in memory besides their maps (the state's bytes per
    /// job that `joblog-bench` reports).
    pub fn heap_bytes(&self) -> usize {
        fn sets<K>(m: &HashMap<K, OrderedRows>) -> usize {
            m.capacity() * (std::mem::size_of::<(K, OrderedRows)>() + 1)
                + m.values().map(OrderedRows::heap_bytes).sum::<usize>()
        }
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self.by_id.heap_bytes()
            + self.events.capacity() * std::mem::size_of::<(Pos, u32)>()
            + self.all.heap_bytes()
            + self.timers.heap_bytes()
            + sets(&self.by_type)
            + sets(&self.by_owner)
            + sets(&self.by_workflow)
            + self.by_regarding.heap_bytes()
            + sets(&self.by_status)
            + sets(&self.by_token)
            + sets(&self.completed)
            + self.open_counts.capacity() * (std::mem::size_of::<((Status, u32), usize)>() + 1)
            + self.strings.heap_bytes()
            + (self.free_rows.capacity() + self.free_events.capacity()) * 4
            + self.garbage.values().map(|v| v.capacity() * 8 + 48).sum::<usize>()
            + self.cold.iter().map(|c| c.run.heap_bytes()).sum::<usize>()
    }
}

/// Decodes the event of the record `seq` at `position` of `log`: a payload
/// that does not decode is corruption at that place
/// ([`Error::Corrupt`] with its seq, file and offset), one of a newer
/// schema [`Error::NewerVersion`].
#[inline(always)]
pub(crate) fn decode_event(log: &Log, seq: u64, position: Position, payload: &[u8]) -> Result<Envelope, Error> {
    Envelope::decode(payload).map_err(|reason| match reason {
        EventDecodeError::Newer { version } => Error::NewerVersion {
            file: None,
            what: format!("event {seq} has schema version {version}, newer than this build's {EVENT_VERSION}"),
        },
        reason => {
            let file = log
                .segments()
                .into_iter()
                .find(|s| s.key == position.segment)
                .map_or_else(|| log.dir().join(crate::log::manifest::file_name_of(position.segment, 0)), |s| s.path);
            Error::Corrupt {
                file: Some(file),
                offset: Some(position.offset),
                seq: Some(seq),
                reason: crate::error::Corruption::Event(reason),
            }
        }
    })
}

/// What applying an event looks up first, likely far away in memory: its
/// job, and the names of a job it creates (their hashes).
pub(crate) struct Lookups {
    pub job: Option<Uuid>,
    pub names: Option<NameHashes>,
}

impl Lookups {
    /// What applying `event` looks up first (a creation and a step go to
    /// [`Projection::apply_view`] whole here; a replay's batch knows its
    /// own).
    pub(crate) fn of(event: &Event) -> Self {
        let (job, names) = match event {
            Event::JobCreated(job) => (Some(job.id), Some(NameHashes::of(&job.columns()))),
            Event::Transition(t) => (Some(t.job), None),
            _ => (None, None),
        };
        Lookups { job, names }
    }
}

/// An event the log holds that contradicts the state: the log is corrupt.
fn bad_event(seq: u64, what: String) -> Error {
    Error::Corrupt { file: None, offset: None, seq: Some(seq), reason: crate::error::Corruption::Other(what) }
}

/// An event as [`Projection::apply_view`] reads it.
pub(crate) struct EventView<'a> {
    pub version: u16,
    pub at: Timestamp,
    pub what: What<'a>,
}

/// What an [`EventView`] holds.
pub(crate) enum What<'a> {
    /// A job's creation, by the columns the state keeps (a reference: an
    /// event view is made for every event, and is small), with the hashes
    /// of its names.
    Created { job: &'a JobColumns<&'a str>, names: NameHashes },
    /// A step of a job's state machine, and whether a user took it.
    Transition { t: &'a Transition, by_user: bool },
    /// Any event, whole.
    Whole { actor: &'a Actor, event: &'a Event },
}

// The row is the bulk of the per-job memory budget: keep it in view (104
// bytes, and 8 more for `first_event`: a hot job's read is not a walk of
// its whole history).
const _: () = assert!(std::mem::size_of::<Row>() <= 112);

impl Projection {
    /// Workflow-definition lookup by id.
    pub fn workflow(&self, id: &str) -> Option<&WorkflowDefinition> {
        self.workflows.get(id)
    }

    /// Symbols for a query's names; `None` when a name was never seen (so
    /// nothing can match).
    pub(crate) fn sym(&self, s: &str) -> Option<Sym> {
        self.strings.get(s)
    }

    pub(crate) fn regarding_sym(&self, r: &Regarding) -> Option<Sym> {
        self.strings.get(&r.to_string())
    }

    pub(crate) fn type_set(&self, t: OperationType) -> Option<&OrderedRows> {
        self.by_type.get(&t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ordered::Key;
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap as StdMap, HashSet};

    /// A row with these keys (the rest as a new job's); an open job with a
    /// time waits until it, a Completed one completed at it.
    fn row(id: u128, createdon: i64, status: Status, time: i64, regarding: Sym, deleted: bool) -> Row {
        Row {
            id: Uuid::from_u128(id),
            createdon,
            startedon: NO_TIME,
            completedon: if status.is_completed() { time } else { NO_TIME },
            modifiedon: createdon,
            postponeuntil: if status.is_completed() { NO_TIME } else { time },
            operationtype: (id % 3) as u32,
            owner: (id % 5) as Sym + 1,
            owningbusinessunit: 1,
            workflow: if id.is_multiple_of(2) { NONE } else { 7 },
            regarding,
            dependencytoken: if id.is_multiple_of(4) { 20 + (id % 3) as Sym } else { NONE },
            retrycount: 0,
            errorcode: NO_ERROR,
            executiontimespan_ms: 0,
            last_event: NO_EVENT,
            first_event: NO_EVENT,
            message_event: NO_EVENT,
            status,
            deleted,
        }
    }

    /// The live rows that `keep` accepts, ordered by `key`: what a set must
    /// hold.
    fn model<K: Ord>(rows: &[Row], keep: impl Fn(&Row) -> bool, key: impl Fn(&Row) -> K) -> Vec<u32> {
        let mut want: Vec<u32> = live(rows).filter(|(_, r)| keep(r)).map(|(i, _)| i).collect();
        want.sort_by_key(|&i| key(&rows[i as usize]));
        want
    }

    /// `set` holds `want`, in that order, and finds each of its keys in its
    /// place (through its chunks' bounds and, tagged, their tags).
    fn holds<K: Key, E: Entry>(
        set: &OrderedRows<K, E>,
        want: &[u32],
        key: impl Fn(u32) -> K,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(set.iter_asc().collect::<Vec<u32>>(), want);
        prop_assert_eq!(set.len(), want.len());
        for (n, &r) in want.iter().enumerate() {
            prop_assert_eq!(set.count_below(&key(r), &key), n, "row {} of {}", n, want.len());
        }
        Ok(())
    }

    /// `sets` has one set for each group `of` puts a live row in (no
    /// other), each holding its rows in `key` order.
    fn groups<G: std::hash::Hash + Eq + Copy + std::fmt::Debug>(
        sets: &HashMap<G, OrderedRows>,
        rows: &[Row],
        of: impl Fn(&Row) -> Option<G>,
        key: fn(&Row) -> (i64, Uuid),
    ) -> Result<(), TestCaseError> {
        let mut want: StdMap<G, Vec<u32>> = StdMap::new();
        live(rows).for_each(|(i, r)| {
            if let Some(g) = of(r) {
                want.entry(g).or_default().push(i);
            }
        });
        prop_assert_eq!(sets.keys().copied().collect::<HashSet<G>>(), want.keys().copied().collect::<HashSet<G>>());
        for (g, mut v) in want {
            v.sort_by_key(|&i| key(&rows[i as usize]));
            holds(&sets[&g], &v, |x| key(&rows[x as usize]))?;
        }
        Ok(())
    }

    proptest! {
        /// Indices built whole hold every live row in every set it belongs
        /// to, in that set's order, with many equal times (ties broken by
        /// id) and rows made in `createdon` order or not, some deleted.
        #[test]
        fn indices_built_whole_order_every_set_by_its_key(
            made in proptest::collection::vec((0i64..40, 0usize..16, 0i64..6, 0u32..12, 0u32..10), 1..3000),
            in_order in any::<bool>(),
        ) {
            let statuses: Vec<Status> = Status::all().collect();
            let mut rows: Vec<Row> = made
                .iter()
                .zip(0u128..)
                .map(|(&(created, status, time, regarding, gone), n)| {
                    // Ids not in row order, so that ties show the order.
                    let id = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1_000_003;
                    let status = statuses[status % statuses.len()];
                    let regarding = if regarding == 0 { NONE } else { regarding };
                    row(id, created, status, time, regarding, gone == 0)
                })
                .collect();
            if in_order {
                rows.sort_by_key(Row::created_key);
            }
            let Indices(views, status) = Indices::build(&rows);
            let created = |x: u32| rows[x as usize].created_key();
            holds(&views.all, &model(&rows, |_| true, Row::created_key), created)?;
            let regarding = model(&rows, |r| r.regarding != NONE, Row::regarding_key);
            holds(&views.by_regarding, &regarding, |x| rows[x as usize].regarding_key())?;
            groups(&views.by_type, &rows, |r| Some(r.operationtype), Row::created_key)?;
            groups(&views.by_owner, &rows, |r| Some(r.owner), Row::created_key)?;
            groups(&views.by_workflow, &rows, |r| (r.workflow != NONE).then_some(r.workflow), Row::created_key)?;
            groups(&status.by_status, &rows, |r| Some(r.status), Row::created_key)?;
            let completed = |r: &Row| r.status.is_completed().then(|| (r.status.reason(), r.operationtype));
            groups(&status.completed, &rows, completed, Row::completed_key)?;
            let token = |r: &Row| (!r.status.is_completed() && r.dependencytoken != NONE).then_some(r.dependencytoken);
            groups(&status.by_token, &rows, token, Row::created_key)?;
            holds(&status.timers, &model(&rows, Row::on_timer, Row::timer_key), |x| rows[x as usize].timer_key())?;
            let mut open: StdMap<(Status, u32), usize> = StdMap::new();
            live(&rows).filter(|(_, r)| !r.status.is_completed()).for_each(|(_, r)| *open.entry((r.status, r.operationtype)).or_default() += 1);
            prop_assert_eq!(status.open_counts.iter().map(|(k, n)| (*k, *n)).collect::<StdMap<_, _>>(), open);
        }
    }
}
