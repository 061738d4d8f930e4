//! SQLite as a contender in `joblog-bench`: the bundled SQLite through
//! rusqlite, WAL with `synchronous = NORMAL` (its fastest safe setting),
//! the jobs table with the views' indices and the transitions table,
//! loaded by its fastest path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use joblog::domain::Envelope;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use crate::rows::{self, Contender, JobRow, SecondConfig, SqlPage};

const SCHEMA: &str = "
    CREATE TABLE jobs (id BLOB PRIMARY KEY, name TEXT, operationtype INTEGER, statecode INTEGER, statuscode INTEGER,
        owner TEXT, owningbusinessunit TEXT, regarding TEXT, workflow TEXT, createdon INTEGER, startedon INTEGER,
        completedon INTEGER, modifiedon INTEGER, postponeuntil INTEGER, retrycount INTEGER, errorcode INTEGER, message TEXT);
    CREATE TABLE transitions (job BLOB, seq INTEGER, at INTEGER, actor TEXT, statecode INTEGER, statuscode INTEGER,
        postponeuntil INTEGER, message TEXT);";

const SETTINGS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;";

/// A database file of its own in a directory.
pub struct Sqlite {
    dir: PathBuf,
    path: PathBuf,
    db: Connection,
    /// `auto_vacuum = INCREMENTAL`: deletion gives space back with
    /// `PRAGMA incremental_vacuum` instead of `VACUUM`.
    incremental: bool,
}

impl Sqlite {
    /// Opens (creating) `DIR/jobs.db`.
    pub fn open(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("jobs.db");
        let db = Connection::open(&path).unwrap();
        Self { dir: dir.to_path_buf(), path, db, incremental: false }
    }

    /// One job's row, if it is there.
    pub fn job(&self, id: Uuid) -> Option<JobRow> {
        job(&self.db, id)
    }

    /// Loads by statements, an INSERT or UPDATE per event (the test of
    /// the fold).
    #[cfg(test)]
    pub(crate) fn load_by_statements(&mut self, events: impl Iterator<Item = Envelope>) {
        load_by_statements(&mut self.db, events)
    }
}

impl Contender for Sqlite {
    /// Creates the tables and loads the events by SQLite's fastest path
    /// (see the `load` function: rows folded in memory, no journal during
    /// the load of the new file, indices afterwards).
    fn load(&mut self, events: impl Iterator<Item = Envelope>) {
        load(&mut self.db, events)
    }

    fn page(&mut self, q: &SqlPage) -> Duration {
        page(&self.db, q)
    }

    fn history(&mut self, id: &Uuid) -> Duration {
        history(&self.db, id)
    }

    /// One transaction per transition (UPDATE the job, INSERT its history
    /// row), from `threads` connections.
    fn transitions(&self, ids: &[Uuid], threads: usize, secs: f64) -> f64 {
        transitions(&self.path, ids, threads, secs)
    }

    /// The transitions then the rows in one transaction, then VACUUM to
    /// give the space back.
    fn delete(&mut self, cutoff: i64, limit: Option<u64>) -> (u64, f64, f64) {
        delete(&self.db, cutoff, limit, self.incremental)
    }

    fn bytes(&mut self) -> u64 {
        crate::probe::dir_bytes(&self.dir)
    }

    /// Read by `cat`, a process of its own: closing a descriptor of the
    /// database in this process would drop the connection's POSIX locks,
    /// and the next `sqlite3` (`command`), finding the database free, would
    /// checkpoint and remove the WAL under the connection when it closed.
    fn read_files(&mut self) {
        let files = std::fs::read_dir(&self.dir).into_iter().flatten().flatten().map(|e| e.path());
        let read = std::process::Command::new("cat")
            .args(files)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status();
        if !read.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("joblog-bench: SQLite's files could not be read back into the page cache ({read:?})");
        }
    }

    /// `sqlite3 FILE SQL`: the SQLite shell, when it is installed.
    fn command(&self, sql: &str) -> Option<std::process::Command> {
        let mut c = std::process::Command::new("sqlite3");
        c.arg(&self.path).arg(sql);
        Some(c)
    }

    /// `PRAGMA shrink_memory`: the connection frees its page cache.
    fn forget_cached_pages(&mut self) -> bool {
        self.db.execute_batch("PRAGMA shrink_memory;").unwrap();
        true
    }

    /// `auto_vacuum = INCREMENTAL`, the setting a user who deletes in bulk
    /// would choose: freed pages go back to the file system with `PRAGMA
    /// incremental_vacuum`, without VACUUM's rewrite of the whole file. On
    /// a copy of the loaded database (WAL checkpointed), switched with
    /// `PRAGMA auto_vacuum = INCREMENTAL; VACUUM` (set-up, not timed).
    fn second_config(&mut self, cutoff: i64, limit: u64) -> Option<SecondConfig> {
        self.db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        let dir = self.dir.with_extension("incremental");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&self.path, dir.join("jobs.db")).unwrap();
        let mut copy = Sqlite::open(&dir);
        copy.db.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;").unwrap();
        copy.db.execute_batch(SETTINGS).unwrap();
        copy.incremental = true;
        let before = copy.bytes();
        let (first_jobs, first_gone, first_space) = copy.delete(cutoff, Some(limit));
        let (rest_jobs, rest_gone, rest_space) = copy.delete(cutoff, None);
        let after = copy.bytes();
        drop(copy);
        std::fs::remove_dir_all(&dir).unwrap();
        Some(SecondConfig {
            name: "SQLite, auto_vacuum=INCREMENTAL (incremental_vacuum)".into(),
            deleted: (first_jobs, rest_jobs),
            first: (first_gone, first_space),
            rest: (rest_gone, rest_space),
            disk: (before, after),
        })
    }
}

/// SQLite's fastest load of a new database: each job's final row folded in
/// memory (`rows::Fold`, as PostgreSQL's COPY gets), every row inserted by
/// prepared statements in one transaction with no journal and no syncs (a
/// new file: a crash means loading again), a 1 GiB page cache, the
/// indices built afterwards; then WAL mode and one sync of the file.
fn load(db: &mut Connection, events: impl Iterator<Item = Envelope>) {
    db.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576;").unwrap();
    db.execute_batch(SCHEMA).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert_job = tx
            .prepare(
                "INSERT INTO jobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .unwrap();
        let mut insert_tr = tx.prepare("INSERT INTO transitions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").unwrap();
        let mut job = |j: &JobRow| insert_job_row(&mut insert_job, j);
        let mut fold = rows::Fold::default();
        for (seq, env) in events.enumerate() {
            let (change, h) = rows::rows(seq as u64, env);
            insert_history_row(&mut insert_tr, &h);
            if let Some(row) = fold.apply(change) {
                job(&row);
            }
        }
        for row in fold.rest() {
            job(&row);
        }
    }
    tx.commit().unwrap();
    db.execute_batch(crate::rows::INDICES).unwrap();
    db.execute_batch("ANALYZE; PRAGMA cache_size = -2000;").unwrap();
    db.execute_batch(SETTINGS).unwrap();
    std::fs::File::open(db.path().expect("a file database")).and_then(|f| f.sync_all()).unwrap();
}

/// The load as statements, an INSERT or UPDATE per event (what an
/// application writing each change would do): kept to check the fold that
/// [`load`] uses against (`rows.rs`, `fold_matches_the_updates`).
#[cfg(test)]
pub(crate) fn load_by_statements(db: &mut Connection, events: impl Iterator<Item = Envelope>) {
    db.execute_batch(SETTINGS).unwrap();
    db.execute_batch(SCHEMA).unwrap();
    db.execute_batch(crate::rows::INDICES).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert_job = tx
            .prepare(
                "INSERT INTO jobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .unwrap();
        let mut update_job = tx
            .prepare("UPDATE jobs SET statecode = ?2, statuscode = ?3, postponeuntil = ?4, modifiedon = ?5, startedon = COALESCE(startedon, ?6), completedon = ?7, errorcode = COALESCE(?8, errorcode), message = COALESCE(?9, message) WHERE id = ?1")
            .unwrap();
        let mut insert_tr = tx.prepare("INSERT INTO transitions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)").unwrap();
        for (seq, env) in events.enumerate() {
            let (change, h) = rows::rows(seq as u64, env);
            match change {
                rows::Change::Created(j) => insert_job_row(&mut insert_job, &j),
                rows::Change::Moved(m) => {
                    update_job
                        .execute(params![
                            m.job.as_bytes(),
                            m.statecode,
                            m.statuscode,
                            m.postponeuntil,
                            m.modifiedon,
                            m.started,
                            m.completedon,
                            m.errorcode,
                            m.message
                        ])
                        .unwrap();
                }
            };
            insert_history_row(&mut insert_tr, &h);
        }
    }
    tx.commit().unwrap();
}

fn insert_job_row(stmt: &mut rusqlite::Statement<'_>, j: &JobRow) {
    stmt.execute(params![
        j.id.as_bytes(),
        j.name,
        j.operationtype,
        j.statecode,
        j.statuscode,
        j.owner,
        j.owningbusinessunit,
        j.regarding,
        j.workflow,
        j.createdon,
        j.startedon,
        j.completedon,
        j.modifiedon,
        j.postponeuntil,
        j.retrycount,
        j.errorcode,
        j.message
    ])
    .unwrap();
}

fn insert_history_row(stmt: &mut rusqlite::Statement<'_>, h: &rows::HistoryRow) {
    stmt.execute(params![
        h.job.as_bytes(),
        h.seq,
        h.at,
        h.actor,
        h.statecode,
        h.statuscode,
        h.postponeuntil,
        h.message
    ])
    .unwrap();
}

fn job(db: &Connection, id: Uuid) -> Option<JobRow> {
    db.query_row("SELECT * FROM jobs WHERE id = ?1", params![id.as_bytes()], |r| {
        Ok(JobRow {
            id: Uuid::from_slice(&r.get::<_, Vec<u8>>(0)?).expect("16 bytes"),
            name: r.get(1)?,
            operationtype: r.get(2)?,
            statecode: r.get(3)?,
            statuscode: r.get(4)?,
            owner: r.get(5)?,
            owningbusinessunit: r.get(6)?,
            regarding: r.get(7)?,
            workflow: r.get(8)?,
            createdon: r.get(9)?,
            startedon: r.get(10)?,
            completedon: r.get(11)?,
            modifiedon: r.get(12)?,
            postponeuntil: r.get(13)?,
            retrycount: r.get(14)?,
            errorcode: r.get(15)?,
            message: r.get(16)?,
        })
    })
    .optional()
    .unwrap()
}

fn page(db: &Connection, q: &SqlPage) -> Duration {
    let t = Instant::now();
    let mut stmt = db.prepare_cached(q.sql).unwrap();
    let rows: Vec<(Vec<u8>, String)> = stmt
        .query_map(params![q.key, q.before], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    std::hint::black_box(rows);
    t.elapsed()
}

fn history(db: &Connection, id: &Uuid) -> Duration {
    let t = Instant::now();
    let mut stmt = db.prepare_cached("SELECT seq, at, actor, statecode, statuscode, postponeuntil, message FROM transitions WHERE job = ?1 ORDER BY seq").unwrap();
    let rows: Vec<(i64, i64, String)> = stmt
        .query_map(params![id.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    std::hint::black_box(rows);
    t.elapsed()
}

fn transitions(path: &Path, ids: &[Uuid], threads: usize, secs: f64) -> f64 {
    let ops = AtomicU64::new(0);
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (ops, id) = (&ops, ids[t % ids.len().max(1)]);
            s.spawn(move || {
                let db = Connection::open(path).unwrap();
                db.execute_batch(SETTINGS).unwrap();
                let mut seq = 0i64;
                while Instant::now() < stop {
                    for (state, status) in [(1, 10), (0, 0)] {
                        seq += 1;
                        db.execute_batch("BEGIN IMMEDIATE").unwrap();
                        db.execute(
                            "UPDATE jobs SET statecode = ?2, statuscode = ?3, modifiedon = ?4 WHERE id = ?1",
                            params![id.as_bytes(), state, status, seq],
                        )
                        .unwrap();
                        db.execute(
                            "INSERT INTO transitions VALUES (?1, ?2, ?3, 'admin', ?4, ?5, NULL, NULL)",
                            params![id.as_bytes(), -seq, seq, state, status],
                        )
                        .unwrap();
                        db.execute_batch("COMMIT").unwrap();
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    ops.into_inner() as f64 / secs
}

fn delete(db: &Connection, cutoff: i64, limit: Option<u64>, incremental: bool) -> (u64, f64, f64) {
    let t = Instant::now();
    db.execute_batch("BEGIN").unwrap();
    db.execute(
        "CREATE TEMP TABLE doomed AS SELECT id FROM jobs WHERE operationtype = 10 AND statecode = 3 AND completedon < ?1 ORDER BY completedon, id LIMIT ?2",
        params![cutoff, limit.map_or(-1, |l| l as i64)],
    )
    .unwrap();
    db.execute_batch("DELETE FROM transitions WHERE job IN (SELECT id FROM doomed);").unwrap();
    let jobs = db.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)", []).unwrap();
    db.execute_batch("DROP TABLE doomed; COMMIT;").unwrap();
    let logical = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if incremental {
        db.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    } else {
        db.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
    (jobs as u64, logical, t.elapsed().as_secs_f64())
}

/// Another connection to a loaded database, for one thread of a
/// concurrent mix (`joblog-httpbench`): pages, and the two writes a user
/// makes, each its own transaction.
pub struct Client {
    db: Connection,
}

impl Sqlite {
    /// A new connection to this database, with the same settings.
    pub fn client(&self) -> Client {
        let db = Connection::open(&self.path).unwrap();
        db.execute_batch(SETTINGS).unwrap();
        Client { db }
    }
}

impl Client {
    /// Times one 50-row page.
    pub fn page(&self, q: &SqlPage) -> Duration {
        page(&self.db, q)
    }

    /// Times creating a Ready Bulk Email job owned by `admin` at `now`
    /// (microseconds): its row and its history's first line, one
    /// transaction.
    pub fn create(&self, id: Uuid, name: &str, now: i64) -> Duration {
        let t = Instant::now();
        let op = joblog::domain::OperationType::BULK_EMAIL.0 as i32;
        self.db.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.db
            .prepare_cached("INSERT INTO jobs (id, name, operationtype, statecode, statuscode, owner, owningbusinessunit, createdon, modifiedon, retrycount) VALUES (?1, ?2, ?3, 0, 0, 'admin', 'root', ?4, ?4, 0)")
            .unwrap()
            .execute(params![id.as_bytes(), name, op, now])
            .unwrap();
        self.db
            .prepare_cached("INSERT INTO transitions VALUES (?1, NULL, ?2, 'admin', 0, 0, NULL, NULL)")
            .unwrap()
            .execute(params![id.as_bytes(), now])
            .unwrap();
        self.db.execute_batch("COMMIT").unwrap();
        t.elapsed()
    }

    /// Times canceling a Ready job at `now`: Completed/Canceled and a
    /// line of history, one transaction.
    pub fn cancel(&self, id: Uuid, now: i64) -> Duration {
        let t = Instant::now();
        self.db.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.db
            .prepare_cached("UPDATE jobs SET statecode = 3, statuscode = 32, modifiedon = ?2, completedon = ?2 WHERE id = ?1 AND statecode = 0")
            .unwrap()
            .execute(params![id.as_bytes(), now])
            .unwrap();
        self.db
            .prepare_cached("INSERT INTO transitions VALUES (?1, NULL, ?2, 'admin', 3, 32, NULL, NULL)")
            .unwrap()
            .execute(params![id.as_bytes(), now])
            .unwrap();
        self.db.execute_batch("COMMIT").unwrap();
        t.elapsed()
    }
}
