//! System Job Type (`operationtype`, `docs/domain.md` §3): any code is accepted
//! and kept; the listed ones have names.

use serde::{Deserialize, Serialize};

use super::status::slug;
use super::DomainError;

/// A System Job Type (`operationtype`, `docs/domain.md` §3): a number,
/// named for the platform's known codes; any other number is kept as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OperationType(pub u32);

const NAMES: &[(u32, &str)] = &[
    (1, "System Event"),
    (2, "Bulk Email"),
    (3, "Import File Parse"),
    (4, "Transform Parse Data"),
    (5, "Import"),
    (6, "Activity Propagation"),
    (7, "Duplicate Detection Rule Publish"),
    (8, "Bulk Duplicate Detection"),
    (9, "SQM Data Collection"),
    (10, "Workflow"),
    (11, "Quick Campaign"),
    (12, "Matchcode Update"),
    (13, "Bulk Delete"),
    (14, "Deletion Service"),
    (15, "Index Management"),
    (16, "Collect Organization Statistics"),
    (17, "Import Subprocess"),
    (18, "Calculate Organization Storage Size"),
    (19, "Collect Organization Database Statistics"),
    (20, "Collection Organization Size Statistics"),
    (21, "Database Tuning"),
    (22, "Calculate Organization Maximum Storage Size"),
    (23, "Bulk Delete Subprocess"),
    (24, "Update Statistic Intervals"),
    (25, "Organization Full Text Catalog Index"),
    (27, "Update Contract States"),
    (31, "Storage Limit Notification"),
    (54, "Execute Async Request"),
    (57, "Calculate Rollup Field"),
    (92, "Event Expander"),
];

/// Types the platform generates itself: users cannot pause, cancel or resume them.
const PLATFORM_GENERATED: &[u32] = &[9, 16, 18, 19, 20, 22, 24, 25, 27, 31];

impl OperationType {
    /// System Event (1).
    pub const SYSTEM_EVENT: Self = Self(1);
    /// Bulk E-mail (2).
    pub const BULK_EMAIL: Self = Self(2);
    /// Workflow (10): a run of a workflow definition.
    pub const WORKFLOW: Self = Self(10);
    /// Bulk Delete (13): a job that deletes completed jobs
    /// ([`DeletionCriteria`](crate::domain::DeletionCriteria) in its data).
    pub const BULK_DELETE: Self = Self(13);

    /// Every type joblog names.
    pub fn named() -> impl Iterator<Item = OperationType> {
        NAMES.iter().map(|(c, _)| OperationType(*c))
    }

    /// The platform's name, if the code is one joblog names.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(c, _)| *c == self.0).map(|(_, n)| *n)
    }

    /// The name, or the number for codes without one.
    pub fn display_name(self) -> String {
        self.name().map_or_else(|| self.0.to_string(), str::to_string)
    }

    /// Whether the platform itself generates jobs of this type: users cannot
    /// pause, cancel or resume them (`docs/domain.md` §3).
    pub fn is_platform_generated(self) -> bool {
        PLATFORM_GENERATED.contains(&self.0)
    }

    /// A code (`10`) or a name in any case and spacing (`workflow`, `bulk-email`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if let Ok(code) = s.parse::<u32>() {
            return Ok(Self(code));
        }
        let want = slug(s);
        NAMES
            .iter()
            .find(|(_, n)| slug(n) == want)
            .map(|(c, _)| Self(*c))
            .ok_or_else(|| DomainError::UnknownName { kind: "system job type", name: s.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_unknown_codes() {
        assert_eq!(OperationType::parse("workflow").unwrap(), OperationType::WORKFLOW);
        assert_eq!(OperationType::parse("bulk-delete").unwrap(), OperationType::BULK_DELETE);
        assert_eq!(OperationType::parse("System Event").unwrap(), OperationType::SYSTEM_EVENT);
        assert_eq!(OperationType::parse("777").unwrap(), OperationType(777));
        assert_eq!(OperationType(777).name(), None);
        assert_eq!(OperationType(777).display_name(), "777");
        assert_eq!(OperationType(92).display_name(), "Event Expander");
        assert!(matches!(
            OperationType::parse("no such type"),
            Err(DomainError::UnknownName { kind: "system job type", .. })
        ));
        assert!(OperationType(16).is_platform_generated());
        assert!(!OperationType::WORKFLOW.is_platform_generated());
    }
}
