//! The service's policy as a store keeps it: the retry, back-off,
//! loop-guard and command-timeout numbers an administrator may set per
//! store (`joblog config set KEY VALUE`), each recorded as a
//! [`super::Event::PolicySet`] so that replaying the log to any time tells
//! which policy was in force then.
//!
//! Every key, its range and its default are in [`KEYS`], and only there.
//! The defaults are the numbers of `src/service/policy.rs` (a test there
//! checks that they agree); the formulas that use them are there too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// One settable number of the service's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyKey {
    /// The key's name (`retry.max_retries`, …), as the command line and events
    /// name it.
    pub name: &'static str,
    /// The smallest value it may be set to.
    pub min: u64,
    /// The largest value it may be set to.
    pub max: u64,
    /// In force while the key is not set (`None`: nothing, e.g. no timeout).
    pub default: Option<u64>,
    /// The unit of its values (`s`, `retries`, …).
    pub unit: &'static str,
    /// One line saying what it governs.
    pub help: &'static str,
}

const DAY: u64 = 86_400;

/// Every key, in the order `config show` lists them.
pub const KEYS: &[PolicyKey] = &[
    PolicyKey {
        name: "retry.max_retries",
        min: 0,
        max: 100,
        default: Some(5),
        unit: "retries",
        help: "retries of one job after transient failures (exit 75) before it fails",
    },
    PolicyKey {
        name: "retry.base_secs",
        min: 1,
        max: DAY,
        default: Some(10),
        unit: "s",
        help: "delay before the first retry",
    },
    PolicyKey {
        name: "retry.factor",
        min: 1,
        max: 16,
        default: Some(2),
        unit: "×",
        help: "each retry waits this many times longer than the one before",
    },
    PolicyKey {
        name: "retry.cap_secs",
        min: 1,
        max: 7 * DAY,
        default: Some(3600),
        unit: "s",
        help: "longest delay before a retry",
    },
    PolicyKey {
        name: "backoff.threshold",
        min: 1,
        max: 1000,
        default: Some(3),
        unit: "failures",
        help: "failures in a row of one workflow that start its back-off",
    },
    PolicyKey {
        name: "backoff.base_secs",
        min: 1,
        max: DAY,
        default: Some(60),
        unit: "s",
        help: "first hold of a failing workflow",
    },
    PolicyKey {
        name: "backoff.factor",
        min: 1,
        max: 16,
        default: Some(2),
        unit: "×",
        help: "each further failure holds the workflow this many times longer",
    },
    PolicyKey {
        name: "backoff.cap_secs",
        min: 1,
        max: 30 * DAY,
        default: Some(DAY),
        unit: "s",
        help: "longest hold of a failing workflow",
    },
    PolicyKey {
        name: "backoff.jitter_percent",
        min: 0,
        max: 50,
        default: Some(10),
        unit: "%",
        help: "largest random change of a hold, as a percentage of it",
    },
    PolicyKey {
        name: "loop_guard.max_runs_per_row",
        min: 1,
        max: 100_000,
        default: Some(16),
        unit: "runs",
        help: "runs of one workflow on one row within the window before the next is canceled",
    },
    PolicyKey {
        name: "loop_guard.window_secs",
        min: 1,
        max: 7 * DAY,
        default: Some(3600),
        unit: "s",
        help: "the loop guard's window",
    },
    PolicyKey {
        name: "loop_guard.max_depth",
        min: 1,
        max: 1000,
        default: Some(8),
        unit: "levels",
        help: "deepest chain of workflows started by workflows",
    },
    PolicyKey {
        name: "command.timeout_secs",
        min: 1,
        max: super::limits::MAX_COMMAND_TIMEOUT_SECS,
        default: None,
        unit: "s",
        help: "default timeout of a command job without its own (submit --timeout wins); unset: run --command-timeout, else none",
    },
];

/// Pairs of keys whose values must keep `first <= second`.
const ORDERED: &[(&str, &str)] = &[("retry.base_secs", "retry.cap_secs"), ("backoff.base_secs", "backoff.cap_secs")];

/// The key named `name`, or a refusal that lists every key.
pub fn policy_key(name: &str) -> Result<&'static PolicyKey, DomainError> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| DomainError::Invalid {
        what: "policy key",
        reason: format!(
            "{name:?} is not a policy key; the keys are: {}",
            KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The policy set in a store: the keys set, and the sequence number of the
/// event that last changed it (0: never), which a running service compares
/// to notice a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePolicy {
    set: BTreeMap<String, u64>,
    changed_at_seq: u64,
}

impl StorePolicy {
    /// The value set for `key` (`None`: not set).
    pub fn get_set(&self, key: &str) -> Option<u64> {
        self.set.get(key).copied()
    }

    /// The value in force: the one set, else the default.
    pub fn value(&self, key: &str) -> Option<u64> {
        self.get_set(key).or_else(|| KEYS.iter().find(|k| k.name == key).and_then(|k| k.default))
    }

    /// Every key set, by name.
    pub fn set_keys(&self) -> &BTreeMap<String, u64> {
        &self.set
    }

    /// The sequence number of the last change (0: never changed).
    pub fn generation(&self) -> u64 {
        self.changed_at_seq
    }

    /// Checks that `key` may take `value` (`None`: back to its default),
    /// given the rest of this policy.
    pub fn check(&self, key: &str, value: Option<u64>) -> Result<(), DomainError> {
        let k = policy_key(key)?;
        // Unsetting a key puts its default back: that too must keep each
        // base at most its cap.
        let v = match (value, k.default) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Ok(()),
        };
        if value.is_some() && !(k.min..=k.max).contains(&v) {
            return Err(DomainError::Invalid {
                what: "policy value",
                reason: format!("{key} = {v}: give a number from {} to {} ({}; {})", k.min, k.max, k.unit, k.help),
            });
        }
        for (low, high) in ORDERED {
            let (lo, hi) = match (key == *low, key == *high) {
                (true, _) => (Some(v), self.value(high)),
                (_, true) => (self.value(low), Some(v)),
                _ => continue,
            };
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    return Err(DomainError::Invalid {
                        what: "policy value",
                        reason: match value {
                            Some(_) => format!("{key} = {v} would make {low} ({lo}) larger than {high} ({hi})"),
                            None => format!(
                                "unsetting {key} (back to its default {v}) would make {low} ({lo}) larger than {high} ({hi})"
                            ),
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies a recorded change (checked when it was written; a key this
    /// build does not know is kept, and has no effect).
    pub fn apply(&mut self, key: &str, value: Option<u64>, seq: u64) {
        match value {
            Some(v) => self.set.insert(key.to_string(), v),
            None => self.set.remove(key),
        };
        self.changed_at_seq = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_defaults_in_range() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(KEYS[i + 1..].iter().all(|o| o.name != k.name), "{} twice", k.name);
            assert!(k.default.is_none_or(|d| (k.min..=k.max).contains(&d)), "{}", k.name);
        }
    }

    #[test]
    fn checks_names_ranges_and_order() {
        let mut p = StorePolicy::default();
        assert!(matches!(p.check("retry.max", Some(1)), Err(DomainError::Invalid { what: "policy key", .. })));
        assert!(matches!(p.check("retry.max_retries", Some(101)), Err(DomainError::Invalid { .. })));
        assert!(p.check("retry.max_retries", Some(100)).is_ok());
        assert!(matches!(p.check("retry.base_secs", Some(7200)), Err(DomainError::Invalid { .. })));
        p.apply("retry.cap_secs", Some(86_400), 9);
        assert!(p.check("retry.base_secs", Some(7200)).is_ok());
        assert_eq!((p.value("retry.cap_secs"), p.value("retry.factor"), p.generation()), (Some(86_400), Some(2), 9));
        // Unsetting the cap under a base above its default is refused.
        p.apply("retry.base_secs", Some(7200), 10);
        assert!(matches!(p.check("retry.cap_secs", None), Err(DomainError::Invalid { what: "policy value", .. })));
        assert!(p.check("retry.base_secs", None).is_ok());
        p.apply("retry.base_secs", None, 11);
        p.apply("retry.cap_secs", None, 12);
        assert_eq!(p.value("retry.cap_secs"), Some(3600));
    }
}
