//! PostgreSQL's second configuration in `joblog-bench`: the tables
//! partitioned by month, so that a bulk deletion drops whole partitions
//! instead of deleting rows.
//!
//! The deletion takes Completed Workflow jobs whose `completedon` is before
//! a cut-off, so a partition can be dropped only if every row in it is one
//! of those. The design, as a PostgreSQL user with this retention rule
//! would lay it out:
//!
//! - `jobs` is partitioned `BY LIST (operationtype)`: Workflow jobs in
//!   `jobs_wf`, every other type in `jobs_rest` (the default).
//!   `jobs_wf` is partitioned `BY RANGE (completedon)`, one partition
//!   per calendar month (UTC), each with `CHECK (statecode = 3)` (a job
//!   with a `completedon` is Completed: the constraint makes PostgreSQL
//!   check it rather than the benchmark assume it); open jobs, which have
//!   no `completedon`, go to its default partition `jobs_wf_open`.
//!   The months are the workload's (from the first to the last month any
//!   Workflow job completed in); a user would create them ahead of time.
//! - A job's history follows it: `transitions` carries its job's
//!   `operationtype` and `completedon` (`job_operationtype`,
//!   `job_completedon`) and is partitioned the same way, so each month's
//!   history goes with that month's jobs. The price, not measured here: the
//!   two columns, and a job's completion moves its history rows from the
//!   open partition to the month's (an UPDATE of the partition key).
//! - A partition key must be in every unique constraint, and a NULL
//!   `completedon` cannot be in a primary key: the job's key is
//!   `UNIQUE (id, operationtype, completedon)`, which does not stop one id
//!   being in two partitions (the ids are UUIDs). The views' indices are the
//!   first configuration's (`rows::INDICES`), on every partition.
//!
//! A deletion (at most `limit` jobs, oldest `completedon` first, ties by
//! id, as in the first configuration), in one transaction: the month
//! partitions wholly before the cut-off are dropped, oldest first, jobs and
//! history, as long as all their jobs fit in what is left of the limit
//! (counting them then is part of the timed work; without a limit they are
//! counted before the clock starts, for the report only); then the first
//! configuration's DELETE, by a temporary table of ids, takes the rest: the
//! boundary month's jobs before the cut-off, the part of a month the limit
//! cuts, anything a drop cannot express. Then `VACUUM FULL` of the month
//! partitions that DELETE took rows from gives their space back (a dropped
//! partition's files are gone at commit).
//!
//! It runs on a copy in a database of its own (COPY out of the first
//! configuration's database before its deletions, not timed), so that its
//! bytes are measured as the first configuration's are: `pg_database_size`
//! plus the WAL written for it. The copy is checked to hold the same rows,
//! and each step to delete exactly the jobs and history rows the first
//! configuration's SQL selects on them.

use std::time::Instant;

use joblog::domain::{OperationType, MICROS_PER_DAY};
use postgres::{Client, GenericClient, NoTls};

use super::{wal_position, why, Postgres};
use crate::rows::SecondConfig;

/// Why the partitioned configuration was not measured.
#[derive(Debug)]
pub enum PartitionedError {
    /// The server refused a statement, or the connection failed.
    Server(postgres::Error),
    /// Streaming the rows from one database to the other failed.
    Copy(std::io::Error),
    /// The copy did not hold, or a deletion did not delete, the rows of the
    /// first configuration.
    NotTheSameRows(String),
}

impl std::fmt::Display for PartitionedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(e) => write!(f, "the server: {}", why(e)),
            Self::Copy(e) => write!(f, "copying the rows: {e}"),
            Self::NotTheSameRows(what) => write!(f, "not the same rows: {what}"),
        }
    }
}

impl std::error::Error for PartitionedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Server(e) => Some(e),
            Self::Copy(e) => Some(e),
            Self::NotTheSameRows(_) => None,
        }
    }
}

impl From<postgres::Error> for PartitionedError {
    fn from(e: postgres::Error) -> Self {
        Self::Server(e)
    }
}

impl From<std::io::Error> for PartitionedError {
    fn from(e: std::io::Error) -> Self {
        Self::Copy(e)
    }
}

type Result<T> = std::result::Result<T, PartitionedError>;

const WORKFLOW: i32 = OperationType::WORKFLOW.0 as i32;

/// The first configuration's columns (`SCHEMA`), each list partitioned by
/// the job's type, the Workflow part by its month.
fn schema() -> String {
    format!(
        "CREATE TABLE jobs (id uuid, name text, operationtype int, statecode int, statuscode int,
            owner text, owningbusinessunit text, regarding text, workflow text, createdon bigint, startedon bigint,
            completedon bigint, modifiedon bigint, postponeuntil bigint, retrycount int, errorcode int, message text,
            UNIQUE (id, operationtype, completedon))
            PARTITION BY LIST (operationtype);
        CREATE TABLE jobs_wf PARTITION OF jobs FOR VALUES IN ({WORKFLOW}) PARTITION BY RANGE (completedon);
        CREATE TABLE jobs_wf_open PARTITION OF jobs_wf DEFAULT;
        CREATE TABLE jobs_rest PARTITION OF jobs DEFAULT;
        CREATE TABLE transitions (job uuid, seq bigint, at bigint, actor text, statecode int, statuscode int,
            postponeuntil bigint, message text, job_operationtype int, job_completedon bigint)
            PARTITION BY LIST (job_operationtype);
        CREATE TABLE transitions_wf PARTITION OF transitions FOR VALUES IN ({WORKFLOW})
            PARTITION BY RANGE (job_completedon);
        CREATE TABLE transitions_wf_open PARTITION OF transitions_wf DEFAULT;
        CREATE TABLE transitions_rest PARTITION OF transitions DEFAULT;"
    )
}

/// One calendar month (UTC) of completed Workflow jobs: the partitions
/// `jobs_wf_{name}` and `transitions_wf_{name}`, holding
/// `completedon` in `[start, end)` microseconds.
#[derive(Debug, PartialEq)]
struct Month {
    name: String,
    start: i64,
    end: i64,
    dropped: bool,
}

impl Month {
    fn create(&self) -> String {
        let Month { name, start, end, .. } = self;
        format!(
            "CREATE TABLE jobs_wf_{name} PARTITION OF jobs_wf
                (CONSTRAINT jobs_wf_{name}_completed CHECK (statecode = 3)) FOR VALUES FROM ({start}) TO ({end});
             CREATE TABLE transitions_wf_{name} PARTITION OF transitions_wf FOR VALUES FROM ({start}) TO ({end});"
        )
    }
}

/// The calendar months (UTC) from the one holding `first` to the one
/// holding `last`, microseconds since the epoch.
fn months(first: i64, last: i64) -> Vec<Month> {
    let (mut year, mut month) = civil_month(first.div_euclid(MICROS_PER_DAY));
    let mut out = Vec::new();
    loop {
        let start = days_from_civil(year, month, 1) * MICROS_PER_DAY;
        if start > last {
            return out;
        }
        let name = format!("{year:04}{month:02}");
        (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let end = days_from_civil(year, month, 1) * MICROS_PER_DAY;
        out.push(Month { name, start, end, dropped: false });
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month) of a day counted from 1970-01-01 (`civil_from_days`).
fn civil_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month)
}

/// A database made for the partitioned copy, dropped when this is.
struct Scratch {
    server: postgres::Config,
    name: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut admin) = self.server.connect(NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// The second configuration's two deletions (at most `limit` jobs, then
/// the rest), on a partitioned copy of `pg`'s database as it is now.
pub(super) fn run(pg: &mut Postgres, cutoff: i64, limit: u64) -> Result<SecondConfig> {
    let wal_before = wal_position(pg.client())?;
    let result = measure(pg, cutoff, limit);
    // The first configuration's WAL is counted from the server's position:
    // what this configuration wrote (and its database's drop) is not its.
    let wal_after = wal_position(pg.client())?;
    pg.wal_elsewhere += wal_after.saturating_sub(wal_before);
    result
}

fn measure(pg: &mut Postgres, cutoff: i64, limit: u64) -> Result<SecondConfig> {
    let mut copy = Copy::of(pg)?;
    let before = copy.bytes()?;
    let first = copy.delete(cutoff, Some(limit))?;
    let rest = copy.delete(cutoff, None)?;
    let after = copy.bytes()?;
    Ok(SecondConfig {
        name: "PostgreSQL, monthly partitions (DROP of whole months + DELETE of the rest)".into(),
        deleted: (first.deleted, rest.deleted),
        first: (first.gone, first.space),
        rest: (rest.gone, rest.space),
        disk: (before, after),
    })
}

/// Streams the rows `from` writes out into `to`, by COPY on both sides.
fn stream(source: &mut Client, copy: &mut Client, from: &str, to: &str) -> Result<()> {
    let mut reader = source.copy_out(from)?;
    let mut writer = copy.copy_in(to)?;
    std::io::copy(&mut reader, &mut writer)?;
    writer.finish()?;
    Ok(())
}

fn count(client: &mut impl GenericClient, sql: &str) -> Result<u64> {
    let n: i64 = client.query_one(sql, &[])?.get(0);
    Ok(n as u64)
}

/// The partitioned copy, in a database of its own.
struct Copy {
    client: Client,
    months: Vec<Month>,
    /// The server's WAL position when the copy's database was made.
    wal_start: u64,
    /// Dropped after `client` is closed (fields drop in order).
    _scratch: Scratch,
}

/// What one deletion did.
#[derive(Debug)]
struct Step {
    /// Jobs deleted, by dropping and by DELETE.
    deleted: u64,
    /// Seconds until they were gone (committed).
    gone: f64,
    /// Seconds more until the space was back.
    space: f64,
    /// Months dropped (read by the server test).
    #[cfg_attr(not(test), allow(dead_code))]
    dropped: usize,
    /// Jobs the DELETE took (read by the server test).
    #[cfg_attr(not(test), allow(dead_code))]
    by_delete: u64,
}

impl Copy {
    /// Makes the partitioned tables in a new database and copies `pg`'s
    /// rows into them (not timed); checks they are the same rows.
    fn of(pg: &mut Postgres) -> Result<Self> {
        let scratch = Scratch { server: pg.server.clone(), name: format!("{}_partitioned", pg.dbname) };
        let mut admin = pg.server.connect(NoTls)?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", scratch.name))?;
        admin.batch_execute(&format!("CREATE DATABASE {}", scratch.name))?;
        drop(admin);
        let mut config = pg.config.clone();
        config.dbname(&scratch.name);
        let mut copy = config.connect(NoTls)?;
        let wal_start = wal_position(&mut copy)?;
        let source = pg.client();

        // The tables, their months, the indices, then the rows, as the first
        // configuration is loaded (indices first), then ANALYZE.
        let span = source.query_one(
            &format!("SELECT min(completedon), max(completedon) FROM jobs WHERE operationtype = {WORKFLOW}"),
            &[],
        )?;
        let months = match (span.get::<_, Option<i64>>(0), span.get::<_, Option<i64>>(1)) {
            (Some(first), Some(last)) => months(first, last),
            _ => Vec::new(),
        };
        copy.batch_execute(&schema())?;
        for m in &months {
            copy.batch_execute(&m.create())?;
        }
        copy.batch_execute(crate::rows::INDICES)?;
        stream(source, &mut copy, "COPY jobs TO STDOUT", "COPY jobs FROM STDIN")?;
        stream(
            source,
            &mut copy,
            "COPY (SELECT t.job, t.seq, t.at, t.actor, t.statecode, t.statuscode, t.postponeuntil, t.message,
                          j.operationtype, j.completedon
                   FROM transitions t LEFT JOIN jobs j ON j.id = t.job) TO STDOUT",
            "COPY transitions FROM STDIN",
        )?;
        copy.batch_execute("ANALYZE jobs; ANALYZE transitions")?;
        for (what, sql) in [
            (
                "jobs",
                "SELECT count(*)::text || ' ' || coalesce(sum(hashtextextended(j::text, 0)::numeric), 0)::text
                 FROM jobs j",
            ),
            (
                "history rows",
                "SELECT count(*)::text || ' ' || coalesce(sum(hashtextextended(
                        (job, seq, at, actor, statecode, statuscode, postponeuntil, message)::text, 0)::numeric), 0)::text
                 FROM transitions",
            ),
        ] {
            let (theirs, ours): (String, String) =
                (source.query_one(sql, &[])?.get(0), copy.query_one(sql, &[])?.get(0));
            if theirs != ours {
                return Err(PartitionedError::NotTheSameRows(format!(
                    "the copy's {what} (count, sum of row hashes: {ours}) are not the first configuration's ({theirs})"
                )));
            }
        }
        Ok(Self { client: copy, months, wal_start, _scratch: scratch })
    }

    /// As the first configuration counts them: `pg_database_size` and the
    /// WAL written since the copy's database was made.
    fn bytes(&mut self) -> Result<u64> {
        let size: i64 = self.client.query_one("SELECT pg_database_size(current_database())", &[])?.get(0);
        Ok(size as u64 + wal_position(&mut self.client)?.saturating_sub(self.wal_start))
    }

    /// One deletion: the Completed Workflow jobs that completed before
    /// `cutoff`, oldest first (ties by id), at most `limit`, with their
    /// history, by dropping whole months and deleting the rest. Returns the
    /// jobs deleted, the seconds until they are gone and the seconds more
    /// until the space is back; checks (not timed) that exactly the jobs and
    /// history rows the first configuration's SQL selects are gone.
    fn delete(&mut self, cutoff: i64, limit: Option<u64>) -> Result<Step> {
        let (copy, months) = (&mut self.client, &mut self.months);
        let criteria = format!("operationtype = {WORKFLOW} AND statecode = 3 AND completedon < {cutoff}");
        let all = |n: Option<u64>| n.map_or("ALL".to_string(), |n| n.to_string());

        // What the first configuration's DELETE would take from these rows.
        copy.batch_execute(&format!(
            "CREATE TEMP TABLE expected AS SELECT id FROM jobs WHERE {criteria} ORDER BY completedon, id LIMIT {};
             ANALYZE expected;",
            all(limit)
        ))?;
        let expected_jobs = count(copy, "SELECT count(*) FROM expected")?;
        let expected_history = count(copy, "SELECT count(*) FROM transitions WHERE job IN (SELECT id FROM expected)")?;
        let jobs_before = count(copy, "SELECT count(*) FROM jobs")?;
        let history_before = count(copy, "SELECT count(*) FROM transitions")?;

        // The months wholly before the cut-off, oldest first; counted now when
        // all of them go (the count is for the report only then).
        let whole: Vec<usize> = (0..months.len()).filter(|&i| !months[i].dropped && months[i].end <= cutoff).collect();
        let mut counted = Vec::new();
        if limit.is_none() {
            for &i in &whole {
                counted.push(count(copy, &format!("SELECT count(*) FROM jobs_wf_{}", months[i].name))?);
            }
        }

        let t = Instant::now();
        let mut tx = copy.transaction()?;
        let (mut left, mut deleted, mut dropped) = (limit, 0, Vec::new());
        for (k, &i) in whole.iter().enumerate() {
            let name = &months[i].name;
            let jobs = match limit {
                None => counted[k],
                Some(_) => count(&mut tx, &format!("SELECT count(*) FROM jobs_wf_{name}"))?,
            };
            if let Some(l) = left {
                if jobs > l {
                    break;
                }
                left = Some(l - jobs);
            }
            tx.batch_execute(&format!("DROP TABLE jobs_wf_{name}, transitions_wf_{name}"))?;
            deleted += jobs;
            dropped.push(i);
        }
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE doomed ON COMMIT DROP AS SELECT id, completedon FROM jobs WHERE {criteria}
                ORDER BY completedon, id LIMIT {};
             ANALYZE doomed;
             DELETE FROM transitions WHERE job_operationtype = {WORKFLOW} AND job_completedon < {cutoff}
                AND job IN (SELECT id FROM doomed);",
            all(left)
        ))?;
        let span = tx.query_one("SELECT min(completedon), max(completedon) FROM doomed", &[])?;
        let span: Option<(i64, i64)> = span.get::<_, Option<i64>>(0).zip(span.get::<_, Option<i64>>(1));
        let by_delete =
            tx.execute(&format!("DELETE FROM jobs WHERE {criteria} AND id IN (SELECT id FROM doomed)"), &[])?;
        tx.commit()?;
        let gone = t.elapsed().as_secs_f64();
        let dropped_now = dropped.len();
        for i in dropped {
            months[i].dropped = true;
        }
        deleted += by_delete;

        // The months the DELETE took rows from give their space back.
        let t = Instant::now();
        if let Some((first, last)) = span.filter(|_| by_delete > 0) {
            for m in months.iter().filter(|m| !m.dropped && m.start <= last && first < m.end) {
                copy.batch_execute(&format!("VACUUM FULL jobs_wf_{0}, transitions_wf_{0}", m.name))?;
            }
        }
        let space = t.elapsed().as_secs_f64();

        // Exactly the expected jobs and their history gone, nothing else.
        let jobs_after = count(copy, "SELECT count(*) FROM jobs")?;
        let history_after = count(copy, "SELECT count(*) FROM transitions")?;
        let jobs_left = count(copy, "SELECT count(*) FROM jobs WHERE id IN (SELECT id FROM expected)")?;
        let history_left = count(copy, "SELECT count(*) FROM transitions WHERE job IN (SELECT id FROM expected)")?;
        copy.batch_execute("DROP TABLE expected")?;
        if deleted != expected_jobs
            || jobs_left != 0
            || jobs_before.checked_sub(jobs_after) != Some(expected_jobs)
            || history_left != 0
            || history_before.checked_sub(history_after) != Some(expected_history)
        {
            return Err(PartitionedError::NotTheSameRows(format!(
                "the first configuration's SQL selects {expected_jobs} jobs with {expected_history} history \
                 rows; {deleted} jobs were deleted ({} jobs and {} history rows fewer), {jobs_left} of those \
                 jobs and {history_left} of their history rows are still there",
                jobs_before as i64 - jobs_after as i64,
                history_before as i64 - history_after as i64
            )));
        }
        Ok(Step { deleted, gone, space, dropped: dropped_now, by_delete })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblog::domain::Timestamp;

    fn at(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().micros()
    }

    #[test]
    fn months_cover_the_span_in_calendar_months() {
        let got = months(at("2026-07-04T10:00:00Z"), at("2026-11-01T00:00:00Z"));
        let names: Vec<&str> = got.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["202607", "202608", "202609", "202610", "202611"]);
        assert_eq!(got[0].start, at("2026-07-01T00:00:00Z"));
        assert_eq!(got[0].end, at("2026-08-01T00:00:00Z"));
        assert_eq!(got[4].end, at("2026-12-01T00:00:00Z"));
        let across = months(at("2023-12-31T23:59:59Z"), at("2024-03-01T00:00:00Z"));
        let bounds: Vec<(&str, i64, i64)> = across.iter().map(|m| (m.name.as_str(), m.start, m.end)).collect();
        assert_eq!(
            bounds,
            [
                ("202312", at("2023-12-01T00:00:00Z"), at("2024-01-01T00:00:00Z")),
                ("202401", at("2024-01-01T00:00:00Z"), at("2024-02-01T00:00:00Z")),
                ("202402", at("2024-02-01T00:00:00Z"), at("2024-03-01T00:00:00Z")),
                ("202403", at("2024-03-01T00:00:00Z"), at("2024-04-01T00:00:00Z")),
            ]
        );
        assert_eq!(months(at("1969-12-15T00:00:00Z"), at("1969-12-15T00:00:00Z"))[0].start, at("1969-12-01T00:00:00Z"));
        assert!(months(at("2026-07-04T00:00:00Z"), at("2026-06-04T00:00:00Z")).is_empty());
    }
}

/// Against a server, when `JOBLOG_BENCH_POSTGRES` names one (skipped
/// otherwise): a limit that takes July whole and ten jobs of August, then
/// the rest (August and September dropped, the first days of October
/// deleted); each step deletes what the first configuration deletes.
#[cfg(test)]
mod server_tests {
    use super::*;
    use crate::rows::Contender;
    use crate::workload::Workload;
    use joblog::domain::Timestamp;

    #[test]
    fn drops_whole_months_and_deletes_the_same_jobs_as_the_first_configuration() {
        let Ok(url) = std::env::var("JOBLOG_BENCH_POSTGRES") else {
            eprintln!("skipped: JOBLOG_BENCH_POSTGRES names no server");
            return;
        };
        let mut pg = Postgres::connect(&url).unwrap();
        let end = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
        pg.load(Workload::new(3_000, 7, end));
        let cutoff = Timestamp::parse("2026-10-03T12:00:00Z").unwrap().micros();
        let august = Timestamp::parse("2026-08-01T00:00:00Z").unwrap().micros();
        let july = count(
            pg.client(),
            &format!("SELECT count(*) FROM jobs WHERE operationtype = {WORKFLOW} AND statecode = 3 AND completedon < {august}"),
        )
        .unwrap();
        assert!(july > 0);
        let limit = july + 10;

        let mut copy = Copy::of(&mut pg).unwrap();
        let first = copy.delete(cutoff, Some(limit)).unwrap();
        assert_eq!((first.deleted, first.dropped, first.by_delete), (limit, 1, 10), "{first:?}");
        let rest = copy.delete(cutoff, None).unwrap();
        assert_eq!(rest.dropped, 2, "{rest:?}");
        assert!(rest.by_delete > 0, "{rest:?}");
        let again = copy.delete(cutoff, None).unwrap();
        assert_eq!((again.deleted, again.dropped), (0, 0), "{again:?}");
        drop(copy);

        assert_eq!(pg.delete(cutoff, Some(limit)).0, first.deleted);
        assert_eq!(pg.delete(cutoff, None).0, rest.deleted);
    }
}
