//! Bulk deletion (`docs/domain.md` §7): which completed jobs a deletion takes,
//! and the event that records it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DomainError, OperationType, Status, StatusReason, Timestamp, MICROS_PER_DAY};

/// The most jobs one Immediately deletion takes; more needs another run.
pub const MAX_IMMEDIATE_DELETE: u64 = 1_000_000;
/// The longest retention a criterion may name (100 years).
pub(crate) const MAX_OLDER_THAN_DAYS: u32 = 36_500;

/// What a bulk deletion deletes: Completed jobs (always; nothing else is
/// ever deleted) of these System Job Types, with one of these Status
/// Reasons, completed more than `older_than_days` before the run.
///
/// ```
/// use joblog::domain::{DeletionCriteria, OperationType, StatusReason, Timestamp};
///
/// let c = DeletionCriteria::platform_default(); // Workflow, Succeeded, 30 days
/// assert!(c.validate().is_ok());
/// assert!(c.matches(OperationType::WORKFLOW, StatusReason::Succeeded));
/// assert!(!c.matches(OperationType::WORKFLOW, StatusReason::Failed));
/// let now = Timestamp::parse("2026-03-31T00:00:00Z").unwrap();
/// assert_eq!(c.cutoff(now).to_rfc3339(), "2026-03-01T00:00:00Z");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionCriteria {
    /// The System Job Types deleted (at least one).
    pub types: Vec<OperationType>,
    /// The Completed Status Reasons deleted (Succeeded, Failed, Canceled; at
    /// least one).
    pub reasons: Vec<StatusReason>,
    /// Only jobs completed more than this many days before the run, at most
    /// `MAX_OLDER_THAN_DAYS`.
    pub older_than_days: u32,
}

impl DeletionCriteria {
    /// The platform's "Delete completed system jobs": Workflow, Succeeded,
    /// older than 30 days.
    pub fn platform_default() -> Self {
        Self { types: vec![OperationType::WORKFLOW], reasons: vec![StatusReason::Succeeded], older_than_days: 30 }
    }

    /// Refuses criteria that name no type, no reason, a reason that is not
    /// a Completed one, or an impossible age.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |reason: String| Err(DomainError::Invalid { what: "deletion criteria", reason });
        if self.types.is_empty() {
            return bad("name at least one System Job Type".into());
        }
        if self.reasons.is_empty() {
            return bad("name at least one Status Reason (succeeded, failed, canceled)".into());
        }
        if let Some(r) = self.reasons.iter().find(|&&r| !Status::of_reason(r).is_completed()) {
            return bad(format!(
                "Status Reason {} is not a Completed one; only Succeeded, Failed and Canceled jobs are deleted",
                r.name()
            ));
        }
        if self.older_than_days > MAX_OLDER_THAN_DAYS {
            return bad(format!("older than {} days is more than {MAX_OLDER_THAN_DAYS}", self.older_than_days));
        }
        Ok(())
    }

    /// Completed On must be strictly before this for a run at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        Timestamp::from_micros(now.micros() - i64::from(self.older_than_days) * MICROS_PER_DAY)
    }

    /// Whether a completed job of this type and reason matches.
    pub fn matches(&self, operationtype: OperationType, reason: StatusReason) -> bool {
        self.types.contains(&operationtype) && self.reasons.contains(&reason)
    }
}

/// A deletion, as recorded in the log: enough to select exactly the same
/// jobs on replay, whether or not compaction has already removed their
/// events, and the audit trail of who deleted what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// Which jobs it deleted.
    pub criteria: DeletionCriteria,
    /// Completed On strictly before this.
    pub cutoff: Timestamp,
    /// The most jobs it could delete; matching jobs beyond it stay for a later
    /// run.
    pub limit: u64,
    /// The (completedon, id) of the last job deleted, oldest first: the run
    /// deleted every matching job at or before it, and no other. `None`
    /// when nothing matched.
    pub through: Option<(Timestamp, Uuid)>,
    /// How many jobs it deleted.
    pub deleted: u64,
    /// Matching jobs left for a later run (beyond the limit).
    pub remaining: u64,
    /// The Bulk Delete system job that ran it, if any.
    pub definition: Option<Uuid>,
}

/// How often a recurring bulk deletion runs: the subset of iCalendar RRULE
/// the platform's bulk deletion uses, `FREQ=HOURLY|DAILY|WEEKLY` with an
/// optional `INTERVAL=N`. Anything else is refused with a message.
///
/// ```
/// use joblog::domain::{Recurrence, Timestamp};
///
/// let every_two_days = Recurrence::parse("FREQ=DAILY;INTERVAL=2").unwrap();
/// assert_eq!(every_two_days.every_secs, 2 * 86_400);
/// let start = Timestamp::parse("2026-01-01T03:00:00Z").unwrap();
/// let now = Timestamp::parse("2026-01-02T00:00:00Z").unwrap();
/// assert_eq!(every_two_days.next_after(start, now).to_rfc3339(), "2026-01-03T03:00:00Z");
/// assert!(Recurrence::parse("FREQ=MONTHLY").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Seconds between runs: an hour, a day or a week times the interval.
    pub every_secs: u64,
}

impl Recurrence {
    /// Parses a rule (`FREQ=DAILY;INTERVAL=2`). Errors: `Invalid`, saying what
    /// is wrong.
    pub fn parse(rule: &str) -> Result<Self, DomainError> {
        let bad = |reason: String| DomainError::Invalid { what: "recurrence", reason };
        let mut freq = None;
        let mut interval = 1u64;
        for part in rule.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
            match (k.trim().to_ascii_uppercase().as_str(), v.trim().to_ascii_uppercase().as_str()) {
                ("FREQ", "HOURLY") => freq = Some(3_600),
                ("FREQ", "DAILY") => freq = Some(86_400),
                ("FREQ", "WEEKLY") => freq = Some(7 * 86_400),
                ("FREQ", other) => {
                    return Err(bad(format!("FREQ={other} is not supported; use HOURLY, DAILY or WEEKLY")))
                }
                ("INTERVAL", n) => {
                    interval = n
                        .parse()
                        .ok()
                        .filter(|&n| (1..=10_000).contains(&n))
                        .ok_or_else(|| bad(format!("INTERVAL={n} must be a whole number from 1 to 10000")))?
                }
                (other, _) => {
                    return Err(bad(format!(
                        "{other} is not supported; only FREQ and INTERVAL are (e.g. FREQ=DAILY;INTERVAL=30)"
                    )))
                }
            }
        }
        let freq = freq.ok_or_else(|| bad(format!("{rule:?} has no FREQ (e.g. FREQ=DAILY;INTERVAL=30)")))?;
        Ok(Self { every_secs: freq * interval })
    }

    /// The first run after `after` of a series that started at `start`.
    pub fn next_after(&self, start: Timestamp, after: Timestamp) -> Timestamp {
        let every = self.every_secs as i64 * 1_000_000;
        if after < start {
            return start;
        }
        let k = (after.micros() - start.micros()) / every + 1;
        Timestamp::from_micros(start.micros() + k * every)
    }
}

/// Retention per Completed reason (the platform's retention service):
/// each becomes a daily Bulk Delete job over every System Job Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Succeeded jobs are deleted this many days after they completed.
    pub succeeded_days: u32,
    /// Failed jobs are deleted this many days after they completed.
    pub failed_days: u32,
    /// Canceled jobs are deleted this many days after they completed.
    pub canceled_days: u32,
}

impl Default for RetentionPolicy {
    /// Succeeded 30 days, Failed 60, Canceled 60.
    fn default() -> Self {
        Self { succeeded_days: 30, failed_days: 60, canceled_days: 60 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recurrence_rules_parse_and_step() {
        assert_eq!(Recurrence::parse("FREQ=DAILY;INTERVAL=30").unwrap().every_secs, 30 * 86_400);
        assert_eq!(Recurrence::parse("freq=hourly").unwrap().every_secs, 3_600);
        assert_eq!(Recurrence::parse("FREQ=WEEKLY;INTERVAL=2").unwrap().every_secs, 14 * 86_400);
        for bad in ["FREQ=MONTHLY", "FREQ=DAILY;BYDAY=MO", "INTERVAL=3", "FREQ=DAILY;INTERVAL=0", "DAILY"] {
            assert!(matches!(Recurrence::parse(bad), Err(DomainError::Invalid { what: "recurrence", .. })), "{bad}");
        }
        let r = Recurrence::parse("FREQ=DAILY").unwrap();
        let start = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let at = |s| Timestamp::parse(s).unwrap();
        assert_eq!(r.next_after(start, at("2025-12-31T10:00:00Z")), start);
        assert_eq!(r.next_after(start, start), at("2026-01-02T00:00:00Z"));
        assert_eq!(r.next_after(start, at("2026-01-05T13:00:00Z")), at("2026-01-06T00:00:00Z"));
    }
}
