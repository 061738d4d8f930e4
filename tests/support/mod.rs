//! What the integration tests share (`cli/tests/cli.rs` too, by path; the
//! engine benchmark by path as well): an engine on a temporary store with a
//! manual clock, timestamps from text, a seeded random source, running a child process until a SIGKILL at a
//! chosen moment, small tmpfs mounts, filling them, and checksums of a directory tree.

#![allow(dead_code)] // each harness uses its part

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use joblog::domain::{Clock, ManualClock, Timestamp};
use joblog::engine::{Config, Engine};

/// The time most tests start at (a Saturday, mid-day UTC).
pub const NOW: &str = "2026-01-31T12:00:00Z";

/// A timestamp from RFC 3339 text (`t("2026-01-31T12:00:00Z")`).
pub fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// A manual clock standing at `at` (RFC 3339), shared with the engine.
/// A step of job `job` from `from` to `to` by `action`, setting nothing
/// else (no wake-up time, retry, error code nor message).
pub fn step(
    job: uuid::Uuid,
    action: joblog::domain::Action,
    from: joblog::domain::Status,
    to: joblog::domain::Status,
) -> joblog::domain::Transition {
    joblog::domain::Transition {
        job,
        action,
        from,
        to,
        postponeuntil: None,
        retrycount: 0,
        errorcode: None,
        message: None,
    }
}

pub fn clock_at(at: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t(at)))
}

/// An engine opened on a temporary directory of its own with a manual
/// clock: the fixture of the engine, service, deletion and model tests.
/// The directory lives as long as the fixture.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub engine: Engine,
}

impl Fixture {
    /// At [`NOW`], with the default configuration.
    pub fn new() -> Self {
        Self::at(t(NOW))
    }

    /// At `now`, with the default configuration but for `cold_after`: every
    /// checkpoint moves the Completed jobs into a cold run, so that the
    /// tests read and change both tiers.
    pub fn at(now: Timestamp) -> Self {
        Self::with_config(now, Config { cold_after: 1, ..Config::default() })
    }

    /// At `now`, with `config` (kept for [`Fixture::reopen`]).
    pub fn with_config(now: Timestamp, config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let engine = Engine::open(dir.path(), config.clone(), clock.clone()).unwrap();
        Self { dir, clock, config, engine }
    }

    /// What the fixture's clock says.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The store's directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The engine dropped without a clean close (as after a crash) and the
    /// store opened again on the same directory, clock and configuration.
    pub fn reopen(self) -> Self {
        self.reopen_after(|_| {})
    }

    /// As [`Fixture::reopen`], with `between` done to the store's directory
    /// while no engine holds it (e.g. removing the checkpoints).
    pub fn reopen_after(self, between: impl FnOnce(&std::path::Path)) -> Self {
        let Self { dir, clock, config, engine } = self;
        drop(engine);
        between(dir.path());
        let engine = Engine::open(dir.path(), config.clone(), clock.clone()).unwrap();
        Self { dir, clock, config, engine }
    }

    /// As [`Fixture::reopen`], after a clean close (a checkpoint written).
    pub fn close_and_reopen(self) -> Self {
        let Self { dir, clock, config, engine } = self;
        engine.close().unwrap();
        let engine = Engine::open(dir.path(), config.clone(), clock.clone()).unwrap();
        Self { dir, clock, config, engine }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The seeded random source of every test and harness (and of the
/// benchmark workload in `bench/src/workload.rs`): `Rng::with_seed(seed)`
/// repeats a run from its printed seed; `rng.u64(..n)` picks below `n`.
#[allow(unused_imports)] // not every test file draws random numbers
pub use fastrand::Rng;

/// The seed from `var` or the clock (printed, so a run can be repeated),
/// and the number of rounds from `rounds_var` (default `default_rounds`).
pub fn seed_and_rounds(name: &str, seed_var: &str, rounds_var: &str, default_rounds: u64) -> (u64, u64) {
    let rounds: u64 = std::env::var(rounds_var).ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    let seed: u64 = std::env::var(seed_var).ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("{name}: {rounds} rounds, seed {seed} ({seed_var}={seed} repeats this run)");
    (seed, rounds)
}

/// Runs this test binary again as a child with `env`, SIGKILLs it after
/// `after`, and returns the whole lines it printed (a line cut by the kill
/// is dropped: nothing is claimed for it).
pub fn run_and_kill(env: &[(&str, String)], after: Duration) -> Vec<String> {
    spawn_and_kill(env, None, after)
}

/// As [`run_and_kill`], but the delay starts once the child printed its
/// first line starting with `ack` (waiting at most 60 s, then failing):
/// every round has at least one acknowledgement to check.
pub fn run_and_kill_after_ack(env: &[(&str, String)], ack: &str, after: Duration) -> Vec<String> {
    spawn_and_kill(env, Some(ack), after)
}

fn spawn_and_kill(env: &[(&str, String)], ack: Option<&str>, after: Duration) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let ack = ack.map(str::to_string);
    let waits = ack.is_some();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                if ack.as_deref().is_some_and(|a| line.starts_with(a)) {
                    let _ = tx.send(());
                }
                out.push_str(&line);
            }
            line.clear();
        }
        out
    });
    let acked = !waits || rx.recv_timeout(Duration::from_secs(60)).is_ok();
    if acked {
        std::thread::sleep(after);
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(acked, "the child acknowledged nothing within 60 s");
    assert!(status.code().is_none(), "child exited by itself: {status}");
    reader.join().unwrap().lines().map(str::to_string).collect()
}

/// Files in a log directory that opening should have removed: temporary
/// files and segment files the log does not list (`listed`). Empty when
/// the directory is clean.
pub fn leftover_files(dir: &std::path::Path, listed: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tmp") || (name.ends_with(".seg") && !listed.contains(p))
        })
        .collect()
}

/// After an open that recovered from a kill: every file recovery says it
/// removed is gone from disk, and no temporary or unlisted segment file is
/// left in the log's directory.
pub fn assert_cleaned_up(log: &joblog::log::Log) {
    assert_recovered_clean(log.recovery(), log.segments(), log.dir());
}

/// [`assert_cleaned_up`] for the log of an opened engine.
#[allow(dead_code)]
pub fn assert_engine_cleaned_up(engine: &joblog::Engine) {
    assert_recovered_clean(engine.recovery(), engine.segments(), &engine.dir().join("segments"));
}

fn assert_recovered_clean(
    rec: &joblog::log::RecoveryReport,
    segments: Vec<joblog::log::SegmentInfo>,
    dir: &std::path::Path,
) {
    for p in rec.temp_files_removed.iter().chain(&rec.obsolete_files_removed) {
        assert!(!p.exists(), "recovery said it removed {}, yet it is there", p.display());
    }
    let listed: Vec<_> = segments.into_iter().map(|s| s.path).collect();
    let left = leftover_files(dir, &listed);
    assert!(left.is_empty(), "files left after opening: {left:?}");
}

/// A tmpfs of `size` (e.g. "1m") mounted over the directory `at` for the
/// life of the guard (unmounted lazily on drop); `None` where mounting is
/// not allowed (needs root: the caller skips, saying so).
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(at: &std::path::Path, size: &str) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A [`Tmpfs`] of `size` on a temporary directory of its own; `None` (after
/// saying so on stderr) where mounting is not allowed.
pub struct SmallDisk {
    // Unmounted before the directory is removed: fields drop in order.
    _mount: Tmpfs,
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let Some(mount) = Tmpfs::mount(dir.path(), size) else {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        };
        Some(Self { _mount: mount, dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Every file under `dir` (recursively, sorted) with its length and a
/// checksum of its bytes: two calls are equal when nothing was written,
/// added or removed.
pub fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes.len() as u64, crc32fast::hash(&bytes)));
            }
        }
    }
    out.sort();
    out
}

/// Fills the file system of `dir` with a file `filler` until it refuses a
/// byte more, then gives `leave` bytes back; returns the filler.
pub fn fill_disk(dir: &std::path::Path, leave: u64) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![1u8; 1 << 16];
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = f.sync_all();
    for small in [4096usize, 512, 1] {
        while f.write_all(&chunk[..small]).is_ok() {}
    }
    if leave > 0 {
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }
    path
}

/// Bytes of every file under `dir`, measured (file lengths, recursively).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}
