//! Bulk deletion (`domain.md` §7): which completed jobs a deletion takes,
//! and the event that records it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DomainError, OperationType, Status, StatusReason, Timestamp};

/// The most jobs one Immediately deletion takes; more needs another run.
pub const MAX_IMMEDIATE_DELETE: u64 = 1_000_000;
/// The longest retention a criterion may name (100 years).
pub const MAX_OLDER_THAN_DAYS: u32 = 36_500;

/// What a bulk deletion deletes: Completed jobs (always; nothing else is
/// ever deleted) of these System Job Types, with one of these Status
/// Reasons, completed more than `older_than_days` before the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionCriteria {
    pub types: Vec<OperationType>,
    pub reasons: Vec<StatusReason>,
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
        Timestamp::from_micros(now.micros() - i64::from(self.older_than_days) * 86_400_000_000)
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
    pub criteria: DeletionCriteria,
    /// Completed On strictly before this.
    pub cutoff: Timestamp,
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
