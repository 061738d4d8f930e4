//! Crash points for the power-cut harness (`tests/powercut.rs`).
//!
//! Inert unless the environment variable `JOBLOG_CRASHPOINT` names a point
//! (`roll`, `manifest`, `install`, `checkpoint`), optionally with the hit to
//! stop at (`roll:3`: the third time; default the first). When that hit is
//! reached, the process announces it on stderr with a line
//! `joblog-crashpoint: NAME reached` and blocks the calling thread for good,
//! so that the harness can cut the power at exactly that moment. Nothing
//! else in joblog reads this variable; never set it outside a test.
//!
//! The points (one line each at the call site):
//! * `roll` — `log/writer.rs`: a full segment sealed in the manifest, its
//!   successor not yet created;
//! * `manifest` — `log/manifest.rs`: the new manifest renamed into place,
//!   the directory not yet synced (a roll, a compaction's install);
//! * `install` — `log/compact.rs`: a compaction's new segment files synced
//!   and renamed, not yet listed in the manifest;
//! * `checkpoint` — `projection/snapshot.rs`: a checkpoint renamed into
//!   place, the directory not yet synced.
//!
//! A failure can be injected the same way: `fail-sync:N` makes the Nth
//! sync of the log's frames (`log/durable.rs`) fail with an I/O error
//! (20 ms late) instead of syncing, as a device error would (tests/engine.rs,
//! `a_failed_sync_leaves_readers_the_durable_state`); `fail-write:N`, the
//! write of the Nth batch's last frames (`log/writer.rs`; tests/log.rs,
//! `a_failed_write_is_an_error_and_the_log_refuses_until_reopened`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const ENV: &str = "JOBLOG_CRASHPOINT";

/// The points a harness may name.
pub(crate) const POINTS: [&str; 6] = ["roll", "manifest", "install", "checkpoint", "fail-sync", "fail-write"];

/// The armed point and the hit (1-based) to stop at, parsed once.
fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var(ENV).ok()?;
            let (name, nth) = match v.split_once(':') {
                Some((name, nth)) => (name, nth.parse().ok()?),
                None => (v.as_str(), 1),
            };
            POINTS.contains(&name).then(|| (name.to_string(), nth))
        })
        .as_ref()
}

/// Called at a dangerous moment named `point`; returns at once unless the
/// harness armed this point (see the module's documentation).
pub fn reached(point: &'static str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((name, nth)) = armed() else { return };
    if name != point || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *nth {
        return;
    }
    eprintln!("joblog-crashpoint: {point} reached (pid {})", std::process::id());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Called before an operation `point` that can fail (`sync`); an error
/// instead of the operation when the harness armed `fail-POINT` for this
/// hit (see the module's documentation).
pub fn fail(point: &'static str) -> std::io::Result<()> {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((name, nth)) = armed() else { return Ok(()) };
    if name.strip_prefix("fail-") != Some(point) || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *nth {
        return Ok(());
    }
    // As a device error: after a while, not at once (the other writers
    // meanwhile place and apply their batches, and wait).
    std::thread::sleep(std::time::Duration::from_millis(20));
    Err(std::io::Error::other(format!("{ENV}: injected failure of {point}")))
}
