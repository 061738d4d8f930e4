//! What the command line's tests share: a store in a temporary directory
//! driven through the real `joblog` binary, waits with a deadline, and the
//! live processes a store's command runs left (found by their marks). The
//! library's harness kit (seeded RNG, kills, small disks) is re-exported
//! from `tests/support`.

#![allow(dead_code)] // each test file uses its part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

#[path = "../../../tests/support/mod.rs"]
mod common;
#[allow(unused_imports)] // not every test file uses the harness kit
pub use common::*;

/// A data directory of its own, in a temporary directory that also holds
/// whatever a test writes beside it (`path`).
pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Store {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file beside the data directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `joblog ARGS` on this store, taking no user, socket or log level from
    /// the test's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_joblog"));
        c.args(args)
            .env("JOBLOG_DATA", self.data())
            .env_remove("JOBLOG_USER")
            .env_remove("JOBLOG_SOCKET")
            .env_remove("RUST_LOG");
        c
    }
}

/// Waits for `cond`, failing with `what` after `limit`.
pub fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit within `limit`; one still running then is
/// killed and the test fails with `what` and the end of its stderr.
pub fn exits_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() >= limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let tail = &out.stderr[out.stderr.len().saturating_sub(2000)..];
            panic!("{what}: still running after {limit:?} (killed); stderr ends: {}", String::from_utf8_lossy(tail));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Whether `pid` runs (a zombie has ended and holds nothing).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Live processes whose environment marks them as runs of the store in
/// `data` (its canonical path, as the service writes it).
pub fn marked_alive(data: &Path) -> Vec<i32> {
    let mark = format!("JOBLOG_STORE={}", data.display());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if env.split(|&b| b == 0).any(|v| v == mark.as_bytes()) && alive(pid) {
            found.push(pid);
        }
    }
    found
}
