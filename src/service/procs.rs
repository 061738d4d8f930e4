//! The processes of command runs, found by the marks every one of them
//! carries in its environment: `JOBLOG_STORE` (the store's data directory,
//! canonical) and `JOBLOG_JOB_ID`. A command's children inherit them, so
//! processes that left the run's process group (`setsid`, a daemon) are
//! found too, while the service runs (at the end of each run) and after it
//! died (when the next service starts, before any lease is returned), by
//! [`sweep`], which scans again until nothing is left.
//!
//! A process is named by a process file descriptor before its environment
//! is read, and is known to be the same process if it still runs after the
//! read: a pid reused in between is never signalled. Only processes of the
//! service's own OS user are looked at (root's service too ignores other
//! users' processes that carry a mark).
//!
//! Not found: a process that cleared or rewrote its environment (`env -i`)
//! *and* left the run's process group, and programs that change user
//! (setuid). See docs/operations.md, "Command jobs".

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use uuid::Uuid;

use crate::error::Error;
use crate::sys::process::ProcHandle;

/// The environment variable that names the store a run belongs to.
pub(crate) const STORE_VAR: &str = "JOBLOG_STORE";
/// The environment variable that names the job a run belongs to.
pub(crate) const JOB_VAR: &str = "JOBLOG_JOB_ID";
/// How long the service waits for a process it killed to be gone.
pub(crate) const END_WAIT: Duration = Duration::from_secs(10);

/// The mark of a store: its data directory, canonical when it can be.
pub(crate) fn store_mark(dir: &Path) -> OsString {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).into_os_string()
}

/// A live process of one of the store's runs.
#[derive(Debug)]
pub(crate) struct Marked {
    pub(crate) job: Option<Uuid>,
    handle: ProcHandle,
}

impl Marked {
    pub(crate) fn pid(&self) -> i32 {
        self.handle.pid()
    }
}

/// Every live process marked with `store` (and with `job`, if given),
/// but this process. Fails when `/proc` cannot be listed: an empty list
/// would claim that nothing is left running.
pub(crate) fn find(store: &OsStr, job: Option<Uuid>) -> Result<Vec<Marked>, Error> {
    let me = std::process::id() as i32;
    let uid = nix::unistd::geteuid().as_raw();
    let unreadable = |source| Error::ProcessesUnreadable { source };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        // Only this OS user's processes: a service run by root must not
        // act on (or wait for) another user's process that claims a mark.
        if pid == me || entry.metadata().map_or(true, |m| m.uid() != uid) {
            continue;
        }
        let Ok(handle) = ProcHandle::open(pid) else { continue };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let Some(marks) = marks(&environ) else { continue };
        if marks.0 != store.as_bytes() || job.is_some_and(|j| marks.1 != Some(j)) {
            continue;
        }
        // Still running after the read: the environment was its own.
        if handle.signal(None).is_ok() {
            found.push(Marked { job: marks.1, handle });
        }
    }
    Ok(found)
}

/// The store and job marks of an environment block (`NAME=VALUE\0...`).
fn marks(environ: &[u8]) -> Option<(&[u8], Option<Uuid>)> {
    let mut store = None;
    let mut job = None;
    for var in environ.split(|&b| b == 0) {
        if let Some(v) = var.strip_prefix(STORE_VAR.as_bytes()).and_then(|v| v.strip_prefix(b"=")) {
            store = Some(v);
        } else if let Some(v) = var.strip_prefix(JOB_VAR.as_bytes()).and_then(|v| v.strip_prefix(b"=")) {
            job = std::str::from_utf8(v).ok().and_then(|s| Uuid::parse_str(s).ok());
        }
    }
    store.map(|s| (s, job))
}

/// What [`sweep`] did: the pids it ended, per job mark (`None`: a
/// process with the store's mark and no valid job mark), and the pids
/// still running when its time was up.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub(crate) ended: BTreeMap<Option<Uuid>, Vec<i32>>,
    pub(crate) left: Vec<i32>,
}

/// Ends every process marked with `store` (and `job`, if given), within
/// `within`: each scan's processes are stopped (SIGSTOP: none of them
/// forks again), then killed (SIGKILL) and waited for, and the scan is
/// repeated until one finds nothing. A process that keeps forking (a
/// daemon's loop) cannot outrun it: what it forked before it was stopped
/// is found by the next scan. Processes still there when the time is up
/// are in [`Swept::left`].
pub(crate) fn sweep(store: &OsStr, job: Option<Uuid>, within: Duration) -> Result<Swept, Error> {
    let deadline = Instant::now() + within;
    let mut swept = Swept::default();
    loop {
        let mut found = find(store, job)?;
        if found.is_empty() {
            return Ok(swept);
        }
        found.sort_by_key(Marked::pid);
        if Instant::now() >= deadline {
            swept.left = found.iter().map(Marked::pid).collect();
            return Ok(swept);
        }
        for p in &found {
            let _ = p.handle.signal(Some(Signal::SIGSTOP));
        }
        for p in &found {
            let _ = p.handle.signal(Some(Signal::SIGKILL));
        }
        for p in found {
            // One that outlives the deadline is found again by the next
            // scan, and reported as left.
            if p.handle.wait_ended(deadline) {
                swept.ended.entry(p.job).or_default().push(p.pid());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_read_from_an_environment_block() {
        let id = Uuid::now_v7();
        let env = format!("A=1\0JOBLOG_STORE=/d/x\0JOBLOG_JOB_ID={id}\0JOBLOG_STOREX=/e\0");
        assert_eq!(marks(env.as_bytes()), Some((&b"/d/x"[..], Some(id))));
        assert_eq!(marks(b"JOBLOG_JOB_ID=zz\0"), None);
        assert_eq!(marks(b"JOBLOG_STORE=/d\0"), Some((&b"/d"[..], None)));
    }
}
