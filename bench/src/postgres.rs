//! PostgreSQL as an optional contender in `joblog-bench` (`--postgres URL`):
//! the same tables and indices as SQLite's, in a database made for the run
//! and dropped after it. Each scenario uses PostgreSQL's own best tool:
//! COPY to load, one statement per transition, VACUUM FULL to give space
//! back. Durability is the server's: the report shows its settings. Its
//! second configuration, monthly partitions dropped instead of DELETE, is
//! in `partitioned`.

use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use joblog::domain::Envelope;
use postgres::{Client, Config, NoTls, Statement};
use uuid::Uuid;

use crate::rows::{self, Contender, Fold, HistoryRow, JobRow, SecondConfig, SqlPage};

mod partitioned;

pub use partitioned::PartitionedError;

const SCHEMA: &str = "
    CREATE TABLE jobs (id uuid PRIMARY KEY, name text, operationtype int, statecode int, statuscode int,
        owner text, owningbusinessunit text, regarding text, workflow text, createdon bigint, startedon bigint,
        completedon bigint, modifiedon bigint, postponeuntil bigint, retrycount int, errorcode int, message text);
    CREATE TABLE transitions (job uuid, seq bigint, at bigint, actor text, statecode int, statuscode int,
        postponeuntil bigint, message text);";

/// A database of its own on a reachable server.
pub struct Postgres {
    /// Connects to the server's maintenance database (to drop ours).
    server: Config,
    /// Connects to the run's database.
    config: Config,
    dbname: String,
    client: Option<Client>,
    /// Statements prepared once, by their SQL (as SQLite's `prepare_cached`).
    prepared: std::collections::HashMap<String, Statement>,
    /// The server's WAL position when the run's database was made: the
    /// WAL written since is the run's ([`Contender::bytes`]).
    wal_start: u64,
    /// WAL written meanwhile for the second configuration's database, not
    /// this one's.
    wal_elsewhere: u64,
}

impl Postgres {
    /// Connects to `url` (`postgresql://user@host:port/db` or
    /// `host=… user=…`) and creates a fresh database for this run; the
    /// error says why not (the benchmark then skips PostgreSQL).
    pub fn connect(url: &str) -> Result<Self, String> {
        let mut server = Config::from_str(url).map_err(|e| format!("not a PostgreSQL address: {e}"))?;
        server.connect_timeout(Duration::from_secs(5));
        let mut admin = server.connect(NoTls).map_err(|e| format!("cannot connect: {}", why(&e)))?;
        let dbname = format!("joblog_bench_{}", std::process::id());
        for statement in [format!("DROP DATABASE IF EXISTS {dbname}"), format!("CREATE DATABASE {dbname}")] {
            admin
                .batch_execute(&statement)
                .map_err(|e| format!("cannot create a database for the run: {}", why(&e)))?;
        }
        let mut config = server.clone();
        config.dbname(&dbname);
        let mut client = config.connect(NoTls).map_err(|e| format!("cannot connect to {dbname}: {}", why(&e)))?;
        let wal_start = wal_position(&mut client).map_err(|e| format!("cannot read the WAL position: {}", why(&e)))?;
        Ok(Self {
            server,
            config,
            dbname,
            client: Some(client),
            prepared: Default::default(),
            wal_start,
            wal_elsewhere: 0,
        })
    }

    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("connected until dropped")
    }

    /// Runs a query through a statement prepared the first time.
    fn query(&mut self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Vec<postgres::Row> {
        let client = self.client.as_mut().expect("connected until dropped");
        if !self.prepared.contains_key(sql) {
            let statement = client.prepare(sql).unwrap();
            self.prepared.insert(sql.to_string(), statement);
        }
        client.query(&self.prepared[sql], params).unwrap()
    }

    /// The server's version and the settings that decide its durability
    /// and memory, for the report.
    pub fn settings(&mut self) -> String {
        let mut show = |what: &str| -> String {
            self.client().query_one(&format!("SHOW {what}"), &[]).map(|r| r.get::<_, String>(0)).unwrap_or_default()
        };
        format!(
            "PostgreSQL {}, fsync={}, synchronous_commit={}, shared_buffers={}",
            show("server_version"),
            show("fsync"),
            show("synchronous_commit"),
            show("shared_buffers")
        )
    }
}

impl Contender for Postgres {
    /// Creates the tables and loads the events with COPY: the history as it
    /// comes, each job's row once it is final (folded on the client, which
    /// is how one bulk-loads PostgreSQL), on two connections at once.
    fn load(&mut self, events: impl Iterator<Item = Envelope>) {
        self.client().batch_execute(SCHEMA).unwrap();
        self.client().batch_execute(crate::rows::INDICES).unwrap();
        let mut second = self.config.connect(NoTls).unwrap();
        let client = self.client.as_mut().expect("connected");
        let mut jobs = client.copy_in("COPY jobs FROM STDIN").unwrap();
        let mut history = second.copy_in("COPY transitions FROM STDIN").unwrap();
        let (mut fold, mut line) = (Fold::default(), String::new());
        for (seq, env) in events.enumerate() {
            let (change, h) = rows::rows(seq as u64, env);
            history_line(&mut line, &h);
            history.write_all(line.as_bytes()).unwrap();
            if let Some(row) = fold.apply(change) {
                job_line(&mut line, &row);
                jobs.write_all(line.as_bytes()).unwrap();
            }
        }
        for row in fold.rest() {
            job_line(&mut line, &row);
            jobs.write_all(line.as_bytes()).unwrap();
        }
        jobs.finish().unwrap();
        history.finish().unwrap();
        self.client().batch_execute("ANALYZE jobs; ANALYZE transitions").unwrap();
    }

    /// Times one 50-row page (the same SQL as SQLite's).
    fn page(&mut self, q: &SqlPage) -> Duration {
        let sql = match &q.key {
            Some(_) => q.sql.replace("?1", "$1").replace("?2", "$2"),
            None => q.sql.replace("?2", "$1"),
        };
        let t = Instant::now();
        let rows = match &q.key {
            Some(key) => self.query(&sql, &[key, &q.before]),
            None => self.query(&sql, &[&q.before]),
        };
        let rows: Vec<(Uuid, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        std::hint::black_box(rows);
        t.elapsed()
    }

    /// Times reading one job's history.
    fn history(&mut self, id: &Uuid) -> Duration {
        let t = Instant::now();
        let rows = self.query(
            "SELECT seq, at, actor, statecode, statuscode, postponeuntil, message FROM transitions WHERE job = $1 ORDER BY seq",
            &[id],
        );
        let rows: Vec<(i64, i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
        std::hint::black_box(rows);
        t.elapsed()
    }

    /// Transitions per second from `threads` connections, each moving its
    /// own job back and forth: one statement per transition (the job's
    /// UPDATE and its history INSERT together), committed as the server's
    /// `synchronous_commit` says.
    fn transitions(&self, ids: &[Uuid], threads: usize, secs: f64) -> f64 {
        let ops = AtomicU64::new(0);
        let stop = Instant::now() + Duration::from_secs_f64(secs);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (ops, id, config) = (&ops, ids[t % ids.len().max(1)], &self.config);
                s.spawn(move || {
                    let mut client = config.connect(NoTls).unwrap();
                    let statement = client
                        .prepare(
                            "WITH moved AS (UPDATE jobs SET statecode = $2, statuscode = $3, modifiedon = $4 WHERE id = $1 RETURNING id)
                             INSERT INTO transitions SELECT id, -$4, $4, 'admin', $2, $3, NULL, NULL FROM moved",
                        )
                        .unwrap();
                    let mut seq = 0i64;
                    while Instant::now() < stop {
                        for (state, status) in [(1i32, 10i32), (0, 0)] {
                            seq += 1;
                            client.execute(&statement, &[&id, &state, &status, &seq]).unwrap();
                            ops.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        ops.into_inner() as f64 / secs
    }

    /// The same bulk deletion as SQLite's, then VACUUM FULL of both tables
    /// (plain VACUUM makes the space reusable but gives none back).
    /// Returns (seconds to delete, seconds to vacuum).
    fn delete(&mut self, cutoff: i64, limit: Option<u64>) -> (u64, f64, f64) {
        let limit = limit.map_or("ALL".to_string(), |l| l.to_string());
        let client = self.client();
        let t = Instant::now();
        client
            .batch_execute(&format!(
                "BEGIN;
                 CREATE TEMP TABLE doomed ON COMMIT DROP AS SELECT id FROM jobs
                    WHERE operationtype = 10 AND statecode = 3 AND completedon < {cutoff}
                    ORDER BY completedon, id LIMIT {limit};
                 ANALYZE doomed;
                 DELETE FROM transitions WHERE job IN (SELECT id FROM doomed);"
            ))
            .unwrap();
        let jobs = client.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)", &[]).unwrap();
        client.batch_execute("COMMIT").unwrap();
        let logical = t.elapsed().as_secs_f64();
        let t = Instant::now();
        client.batch_execute("VACUUM FULL transitions").unwrap();
        client.batch_execute("VACUUM FULL jobs").unwrap();
        (jobs, logical, t.elapsed().as_secs_f64())
    }

    /// What the database needs on disk to reopen: its tables and indices
    /// (`pg_database_size`), and the WAL written for it: the server's WAL
    /// position now less its position when the database was made, less
    /// what the second configuration wrote meanwhile (the server is the
    /// run's own, `postgres-local.sh`, so nothing else writes to it). Not
    /// the WAL directory: that holds the segments earlier runs left for
    /// recycling, whatever this run did.
    fn bytes(&mut self) -> u64 {
        let size: i64 = self.client().query_one("SELECT pg_database_size(current_database())", &[]).unwrap().get(0);
        let now = wal_position(self.client()).unwrap();
        size as u64 + now.saturating_sub(self.wal_start).saturating_sub(self.wal_elsewhere)
    }

    /// Monthly partitions, the oldest dropped whole (`partitioned`). A
    /// server error skips it with a message, as an unreachable server skips
    /// PostgreSQL; a copy that deleted other rows than the first
    /// configuration's SQL selects stops the run.
    fn second_config(&mut self, cutoff: i64, limit: u64) -> Option<SecondConfig> {
        match partitioned::run(self, cutoff, limit) {
            Ok(second) => Some(second),
            Err(e @ PartitionedError::NotTheSameRows(_)) => {
                panic!("PostgreSQL's partitioned configuration: {e}: the comparison would be void")
            }
            Err(e) => {
                eprintln!("PostgreSQL's partitioned configuration: skipped ({e})");
                None
            }
        }
    }
}

/// The server's WAL insert position, in bytes from its start.
fn wal_position(client: &mut impl postgres::GenericClient) -> Result<u64, postgres::Error> {
    let lsn: i64 = client.query_one("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint", &[])?.get(0);
    Ok(lsn.max(0) as u64)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.client.take());
        if let Ok(mut admin) = self.server.connect(NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.dbname));
        }
    }
}

/// The server's own message when it sent one ("db error" says nothing).
fn why(e: &postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.message().to_string(),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// COPY's text format: tab between columns, `\N` for NULL, a backslash
/// before the characters that would end a field or a row.
fn field(line: &mut String, value: Option<&dyn std::fmt::Display>) {
    if !line.is_empty() {
        line.push('\t');
    }
    match value {
        None => line.push_str("\\N"),
        Some(v) => {
            for c in v.to_string().chars() {
                match c {
                    '\\' => line.push_str("\\\\"),
                    '\t' => line.push_str("\\t"),
                    '\n' => line.push_str("\\n"),
                    '\r' => line.push_str("\\r"),
                    c => line.push(c),
                }
            }
        }
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> Option<&dyn std::fmt::Display> {
    v.as_ref().map(|v| v as &dyn std::fmt::Display)
}

fn job_line(line: &mut String, j: &JobRow) {
    line.clear();
    field(line, Some(&j.id));
    field(line, Some(&j.name));
    field(line, Some(&j.operationtype));
    field(line, Some(&j.statecode));
    field(line, Some(&j.statuscode));
    field(line, Some(&j.owner));
    field(line, Some(&j.owningbusinessunit));
    field(line, opt(&j.regarding));
    field(line, opt(&j.workflow));
    field(line, Some(&j.createdon));
    field(line, opt(&j.startedon));
    field(line, opt(&j.completedon));
    field(line, Some(&j.modifiedon));
    field(line, opt(&j.postponeuntil));
    field(line, Some(&j.retrycount));
    field(line, opt(&j.errorcode));
    field(line, opt(&j.message));
    line.push('\n');
}

fn history_line(line: &mut String, h: &HistoryRow) {
    line.clear();
    field(line, Some(&h.job));
    field(line, Some(&h.seq));
    field(line, Some(&h.at));
    field(line, Some(&h.actor));
    field(line, Some(&h.statecode));
    field(line, Some(&h.statuscode));
    field(line, opt(&h.postponeuntil));
    field(line, opt(&h.message));
    line.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_end_a_field() {
        let mut line = String::new();
        field(&mut line, Some(&"a\tb\\c\nd"));
        field(&mut line, None);
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N");
    }
}
