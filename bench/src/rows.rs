//! The workload as table rows, one mapping for every SQL contender: a jobs
//! table (one row per job, its current state) and a transitions table (one
//! row per event, the job's history). See `joblog-bench`.

use std::collections::HashMap;
use std::time::Duration;

use joblog::domain::{Envelope, Event, Timestamp};
use uuid::Uuid;

/// A row of the jobs table, in its columns' order.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub name: String,
    pub operationtype: i32,
    pub statecode: i32,
    pub statuscode: i32,
    pub owner: String,
    pub owningbusinessunit: String,
    pub regarding: Option<String>,
    pub workflow: Option<String>,
    pub createdon: i64,
    pub startedon: Option<i64>,
    pub completedon: Option<i64>,
    pub modifiedon: i64,
    pub postponeuntil: Option<i64>,
    pub retrycount: i32,
    pub errorcode: Option<i32>,
    pub message: Option<String>,
}

/// What one transition changes in its job's row: the statement
/// `UPDATE jobs SET statecode, statuscode, postponeuntil, modifiedon,
/// startedon = COALESCE(startedon, ·), completedon, errorcode =
/// COALESCE(·, errorcode), message = COALESCE(·, message)`.
#[derive(Clone, Debug)]
pub struct Move {
    pub job: Uuid,
    pub statecode: i32,
    pub statuscode: i32,
    pub postponeuntil: Option<i64>,
    pub modifiedon: i64,
    pub started: Option<i64>,
    pub completedon: Option<i64>,
    pub errorcode: Option<i32>,
    pub message: Option<String>,
}

impl Move {
    /// The UPDATE above, on a row held in memory.
    pub fn apply(self, row: &mut JobRow) {
        row.statecode = self.statecode;
        row.statuscode = self.statuscode;
        row.postponeuntil = self.postponeuntil;
        row.modifiedon = self.modifiedon;
        row.startedon = row.startedon.or(self.started);
        row.completedon = self.completedon;
        row.errorcode = self.errorcode.or(row.errorcode);
        row.message = self.message.or(row.message.take());
    }
}

/// A row of the transitions table.
#[derive(Clone, Debug)]
pub struct HistoryRow {
    pub job: Uuid,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub statecode: i32,
    pub statuscode: i32,
    pub postponeuntil: Option<i64>,
    pub message: Option<String>,
}

pub enum Change {
    Created(JobRow),
    Moved(Move),
}

/// The rows the `seq`-th event of the workload makes.
pub fn rows(seq: u64, env: Envelope) -> (Change, HistoryRow) {
    let at = env.at.micros();
    let actor = env.actor.to_string();
    match env.event {
        Event::JobCreated(j) => {
            let history = HistoryRow {
                job: j.id,
                seq: seq as i64,
                at,
                actor,
                statecode: j.status.statecode() as i32,
                statuscode: j.status.statuscode() as i32,
                postponeuntil: None,
                message: None,
            };
            let row = JobRow {
                id: j.id,
                name: j.name,
                operationtype: j.operationtype.0 as i32,
                statecode: j.status.statecode() as i32,
                statuscode: j.status.statuscode() as i32,
                owner: j.owner,
                owningbusinessunit: j.owningbusinessunit,
                regarding: j.regarding.map(|r| r.to_string()),
                workflow: j.workflow,
                createdon: j.createdon.micros(),
                startedon: j.startedon.map(Timestamp::micros),
                completedon: j.completedon.map(Timestamp::micros),
                modifiedon: j.modifiedon.micros(),
                postponeuntil: j.postponeuntil.map(Timestamp::micros),
                retrycount: j.retrycount as i32,
                errorcode: j.errorcode,
                message: j.message,
            };
            (Change::Created(row), history)
        }
        Event::Transition(t) => {
            let postponeuntil = t.postponeuntil.map(Timestamp::micros);
            let history = HistoryRow {
                job: t.job,
                seq: seq as i64,
                at,
                actor,
                statecode: t.to.statecode() as i32,
                statuscode: t.to.statuscode() as i32,
                postponeuntil,
                message: t.message.clone(),
            };
            // The columns as the domain's rules set them (`ColumnChanges`).
            let c = t.columns(env.at);
            let change = Move {
                job: t.job,
                statecode: c.status.statecode() as i32,
                statuscode: c.status.statuscode() as i32,
                postponeuntil: c.postponeuntil.map(Timestamp::micros),
                modifiedon: c.modifiedon.micros(),
                started: c.started.map(Timestamp::micros),
                completedon: c.completedon.map(Timestamp::micros),
                errorcode: c.errorcode,
                message: c.message.map(str::to_string),
            };
            (Change::Moved(change), history)
        }
        other => unreachable!("the workload has job events only, not {other:?}"),
    }
}

/// Folds the changes into final job rows, handing each row out once its
/// job is Completed (it changes no more), so only unfinished jobs are held
/// in memory; [`Fold::rest`] hands out the others at the end.
#[derive(Default)]
pub struct Fold {
    open: HashMap<Uuid, JobRow>,
}

impl Fold {
    /// Applies a change; returns the job's row if it is now final.
    pub fn apply(&mut self, change: Change) -> Option<JobRow> {
        let row = match change {
            Change::Created(row) => row,
            Change::Moved(m) => {
                let mut row = self.open.remove(&m.job).expect("a transition of a created job");
                m.apply(&mut row);
                row
            }
        };
        if row.completedon.is_some() {
            Some(row)
        } else {
            self.open.insert(row.id, row);
            None
        }
    }

    /// The jobs that never completed.
    pub fn rest(self) -> impl Iterator<Item = JobRow> {
        self.open.into_values()
    }
}

/// What `joblog-bench` asks of a SQL contender, each answer timed or
/// counted the same way for every one.
pub trait Contender {
    /// Creates the tables and loads the workload's events.
    fn load(&mut self, events: impl Iterator<Item = Envelope>);
    /// Times one 50-row page.
    fn page(&mut self, q: &SqlPage) -> Duration;
    /// Times reading one job's history.
    fn history(&mut self, id: &Uuid) -> Duration;
    /// Transitions per second from `threads` connections for `secs`
    /// seconds, each moving its own job (from `ids`) back and forth.
    fn transitions(&self, ids: &[Uuid], threads: usize, secs: f64) -> f64;
    /// Bulk deletion: the Completed Workflow jobs that completed before
    /// `cutoff`, oldest first (ties by id), at most `limit`, with their
    /// history. Returns the jobs deleted, the seconds until they are gone,
    /// and the seconds more until the space is back.
    fn delete(&mut self, cutoff: i64, limit: Option<u64>) -> (u64, f64, f64);
    /// Bytes the database takes on disk.
    fn bytes(&mut self) -> u64;
    /// Empties the contender's own cache of the database's pages, for a
    /// page read cold (the kernel's page cache is dropped apart); false
    /// when it cannot be emptied while running (none by default).
    fn forget_cached_pages(&mut self) -> bool {
        false
    }
    /// Reads the database's files back into the page cache (after the
    /// pages read cold, before what follows them).
    fn read_files(&mut self) {}
    /// The database's own command-line client running `sql` once, a whole
    /// process, as a user at a shell would (none by default).
    fn command(&self, _sql: &str) -> Option<std::process::Command> {
        None
    }
    /// The same two deletions (at most `limit`, then the rest) in a second
    /// configuration a user of this database would choose for them, on a
    /// copy of the loaded database made before [`Contender::delete`]
    /// (none by default).
    fn second_config(&mut self, _cutoff: i64, _limit: u64) -> Option<SecondConfig> {
        None
    }
}

/// The deletions measured in a contender's second configuration.
pub struct SecondConfig {
    /// What it is.
    pub name: String,
    /// Jobs deleted by the first run and by the rest.
    pub deleted: (u64, u64),
    /// (seconds until gone, seconds more until the space is back), first run.
    pub first: (f64, f64),
    /// The same for the rest.
    pub rest: (f64, f64),
    /// Bytes on disk before and after deleting.
    pub disk: (u64, u64),
}

/// The indices of both tables, the same for every SQL contender: the five
/// the views need, created-on for the unfiltered view, a job's history.
pub const INDICES: &str = "
    CREATE INDEX jobs_type_status ON jobs (operationtype, statecode, statuscode, createdon);
    CREATE INDEX jobs_regarding ON jobs (regarding, createdon);
    CREATE INDEX jobs_workflow ON jobs (workflow, createdon);
    CREATE INDEX jobs_owner ON jobs (owner, createdon);
    CREATE INDEX jobs_completed ON jobs (completedon);
    CREATE INDEX jobs_created ON jobs (createdon);
    CREATE INDEX transitions_job ON transitions (job, seq);";

/// One 50-row page of a view as SQL, the same page as a joblog filter:
/// `?1` is the view's key (if it has one), `?2` the time to page back from.
pub struct SqlPage {
    pub sql: &'static str,
    pub key: Option<String>,
    pub before: i64,
}

impl SqlPage {
    /// The statement with its parameters written in (`?1` the key quoted,
    /// `?2` the start), for a client that takes SQL text alone.
    pub fn inline(&self) -> String {
        let key = self.key.as_deref().map_or("NULL".to_string(), |k| format!("'{}'", k.replace('\'', "''")));
        self.sql.replace("?2", &self.before.to_string()).replace("?1", &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Workload;

    /// Folding in memory gives exactly the rows that SQLite's INSERTs and
    /// UPDATEs give, so both contenders hold the same tables.
    #[test]
    fn fold_matches_the_updates() {
        let end = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut db = crate::sqlite::Sqlite::open(dir.path());
        db.load_by_statements(Workload::new(2_000, 7, end));
        let mut fold = Fold::default();
        let mut folded = Vec::new();
        for (seq, env) in Workload::new(2_000, 7, end).enumerate() {
            folded.extend(fold.apply(self::rows(seq as u64, env).0));
        }
        folded.extend(fold.rest());
        assert_eq!(folded.len(), 2_000);
        for row in folded {
            assert_eq!(db.job(row.id), Some(row));
        }
    }
}
