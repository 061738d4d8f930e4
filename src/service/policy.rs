//! The service's numbers, each with its formula, so that tests and users
//! can predict every delay exactly.
//!
//! * **Retry** of one job after a transient failure number `n` (1, 2, …):
//!   `min(base · factorⁿ⁻¹, cap)`; after `max_retries` retries the next
//!   transient failure fails the job.
//! * **Back-off** of a workflow whose jobs failed `k` times in a row
//!   (`k ≥ threshold`): its jobs are held until `last failure + d`, where
//!   `d = min(base · factor^(k − threshold), cap) · (1 + j)` and the jitter
//!   `j ∈ [−jitter, +jitter]` comes from a hash of (seed, workflow, k), so
//!   the same history gives the same delay on every run. One success ends it.
//! * **Loop guard**: a workflow started on the same row more than
//!   `max_runs_per_row` times within `window` is canceled; a job deeper
//!   than `max_depth` is stopped.

use crate::domain::Timestamp;

const SECOND: i64 = 1_000_000;

/// Retries of one job after transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many retries a job gets before it fails for good.
    pub max_retries: u32,
    /// The first retry's delay, in seconds.
    pub base_secs: u32,
    /// Each next delay is the one before times this.
    pub factor: u32,
    /// No delay is longer than this, in seconds.
    pub cap_secs: u32,
}

impl Default for RetryPolicy {
    /// 10 s, 20 s, 40 s, … capped at 1 h; 5 retries.
    fn default() -> Self {
        Self { max_retries: 5, base_secs: 10, factor: 2, cap_secs: 3600 }
    }
}

impl RetryPolicy {
    /// The delay before retry number `n` (1-based), or `None` when the job
    /// has had all its retries.
    pub fn delay(&self, n: u32) -> Option<i64> {
        (n >= 1 && n <= self.max_retries).then(|| grow(self.base_secs, self.factor, n - 1, self.cap_secs))
    }
}

/// Back-off of a workflow whose jobs keep failing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Consecutive failures that start the back-off.
    pub threshold: u32,
    /// The first hold's length, in seconds.
    pub base_secs: u32,
    /// Each next hold is the one before times this.
    pub factor: u32,
    /// No hold is longer than this, in seconds (before jitter).
    pub cap_secs: u32,
    /// Largest jitter, as a fraction of the delay (0.1: ±10%).
    pub jitter: f64,
    /// The seed of the jitter's hash, so that a store's holds are repeatable.
    pub seed: u64,
}

impl Default for BackoffPolicy {
    /// After 3 failures in a row: 1 min, doubling, capped at 24 h, ±10%.
    fn default() -> Self {
        Self { threshold: 3, base_secs: 60, factor: 2, cap_secs: 86_400, jitter: 0.1, seed: 0x6a6f_626c_6f67 }
    }
}

impl BackoffPolicy {
    /// Until when a workflow that failed `failures` times in a row, the last
    /// at `last_failure`, is held back; `None` below the threshold.
    pub fn until(&self, workflow: &str, failures: u32, last_failure: Timestamp) -> Option<Timestamp> {
        if failures < self.threshold.max(1) {
            return None;
        }
        let d = grow(self.base_secs, self.factor, failures - self.threshold.max(1), self.cap_secs);
        let unit = (hash(self.seed, workflow, failures) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let jitter = (unit * 2.0 - 1.0) * self.jitter;
        Some(last_failure.plus_micros((d as f64 * (1.0 + jitter)) as i64))
    }
}

/// Loop protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopGuard {
    /// The most runs of one workflow on one row created within `window_secs`;
    /// a run past it is canceled.
    pub max_runs_per_row: u32,
    /// The window `max_runs_per_row` counts in, in seconds.
    pub window_secs: u32,
    /// A job whose `depth` is more than this is canceled.
    pub max_depth: u32,
}

impl Default for LoopGuard {
    /// The platform's: 16 runs per row per hour, depth 8.
    fn default() -> Self {
        Self { max_runs_per_row: 16, window_secs: 3600, max_depth: 8 }
    }
}

/// `min(base · factor^k, cap)` seconds, in microseconds, without overflow.
fn grow(base_secs: u32, factor: u32, k: u32, cap_secs: u32) -> i64 {
    let mut d = i64::from(base_secs);
    for _ in 0..k {
        d = d.saturating_mul(i64::from(factor.max(1)));
        if d >= i64::from(cap_secs) {
            break;
        }
    }
    d.min(i64::from(cap_secs)) * SECOND
}

/// FNV-1a over the seed, the workflow and the count, then a final mix.
fn hash(seed: u64, workflow: &str, n: u32) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in workflow.bytes().chain(n.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_and_stop() {
        let p = RetryPolicy::default();
        let secs: Vec<Option<i64>> = (1..=6).map(|n| p.delay(n).map(|d| d / SECOND)).collect();
        assert_eq!(secs, [Some(10), Some(20), Some(40), Some(80), Some(160), None]);
        let capped = RetryPolicy { max_retries: 40, ..p };
        assert_eq!(capped.delay(40), Some(3600 * SECOND));
    }

    #[test]
    fn backoff_starts_at_the_threshold_doubles_caps_and_jitters_deterministically() {
        let p = BackoffPolicy::default();
        let t = Timestamp::from_micros(0);
        assert_eq!(p.until("wf", 2, t), None);
        let d = |k| p.until("wf", k, t).unwrap().micros() as f64 / SECOND as f64;
        for (k, base) in [(3, 60.0), (4, 120.0), (5, 240.0), (20, 86_400.0)] {
            assert!((d(k) - base).abs() <= base * 0.1 + 1e-6, "{k} failures: {} s, want {base} ±10%", d(k));
        }
        assert_eq!(p.until("wf", 4, t), p.until("wf", 4, t), "same history, same delay");
        let exact = BackoffPolicy { jitter: 0.0, ..p };
        assert_eq!(exact.until("wf", 4, t), Some(t.plus_micros(120 * SECOND)));
    }
}
