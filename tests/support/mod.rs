//! What the kill -9 harnesses share: a seedable random source, and running
//! a child process until a SIGKILL at a chosen moment.

#![allow(dead_code)] // each harness uses its part

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// splitmix64: small, seedable, good enough to pick kill points.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                out.push_str(&line);
            }
            line.clear();
        }
        out
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "child exited by itself: {status}");
    reader.join().unwrap().lines().map(str::to_string).collect()
}

/// As [`run_and_kill`], but the delay starts once the child printed its
/// first line starting with `ack` (waiting at most 60 s, then failing):
/// every round has at least one acknowledgement to check.
pub fn run_and_kill_after_ack(env: &[(&str, String)], ack: &str, after: Duration) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let ack = ack.to_string();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') {
                if line.starts_with(&ack) {
                    let _ = tx.send(());
                }
                out.push_str(&line);
            }
            line.clear();
        }
        out
    });
    let acked = rx.recv_timeout(Duration::from_secs(60)).is_ok();
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

/// A tmpfs of `size` (e.g. "1m") mounted on a temporary directory, unmounted
/// on drop; `None` where mounting is not allowed (the caller skips, saying so).
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(Self { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
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
