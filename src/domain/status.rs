//! State and Status Reason, with the platform's codes (`docs/domain.md` §2). The
//! pairing is enforced by the type: a [`Status`] is a State together with a
//! reason that belongs to it, so a Completed job cannot carry In Progress.

use serde::{Deserialize, Serialize};

use super::DomainError;

/// `statecode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    /// Waiting to be picked by the service (code 0).
    Ready = 0,
    /// Not to be picked now: waiting for a time, retrying later, or paused (code 1).
    Suspended = 1,
    /// Taken by the service: a run is under way (code 2).
    Locked = 2,
    /// Finished for good: succeeded, failed or canceled (code 3).
    Completed = 3,
}

/// `statuscode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StatusReason {
    /// Ready: waiting to be picked (code 0).
    WaitingForResources = 0,
    /// Suspended: waiting until its `postponeuntil` (code 10).
    Waiting = 10,
    /// Suspended: a failed run to be tried again after a delay (code 11).
    Retrying = 11,
    /// Suspended: paused by a user until resumed (code 12).
    Paused = 12,
    /// Locked: a run is under way (code 20).
    InProgress = 20,
    /// Locked: a user asked to pause while it runs (code 21).
    Pausing = 21,
    /// Locked: a user asked to cancel while it runs (code 22).
    Canceling = 22,
    /// Completed: the job did its work (code 30).
    Succeeded = 30,
    /// Completed: the job failed for good (code 31).
    Failed = 31,
    /// Completed: a user canceled the job (code 32).
    Canceled = 32,
}

/// A State and a Status Reason that belongs to it. Decoding checks the
/// pair (an event or a checkpoint that pairs Ready with Succeeded is
/// refused); the bytes are those of the two enums, one after the other.
///
/// ```
/// use joblog::domain::{State, Status, StatusReason};
///
/// let s = Status::from_codes(3, 30).unwrap();
/// assert_eq!(s, Status::SUCCEEDED);
/// assert_eq!((s.state(), s.reason()), (State::Completed, StatusReason::Succeeded));
/// assert!(s.is_completed());
/// // A reason that does not belong to the State is refused.
/// assert!(Status::from_codes(0, 30).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "StatusPair", into = "StatusPair")]
pub struct Status {
    state: State,
    reason: StatusReason,
}

/// How a [`Status`] is encoded: the same two fields, unchecked.
#[derive(Serialize, Deserialize)]
struct StatusPair {
    state: State,
    reason: StatusReason,
}

impl TryFrom<StatusPair> for Status {
    type Error = DomainError;

    fn try_from(p: StatusPair) -> Result<Self, DomainError> {
        Status::from_codes(p.state as u32, p.reason as u32)
    }
}

impl From<Status> for StatusPair {
    fn from(s: Status) -> Self {
        StatusPair { state: s.state, reason: s.reason }
    }
}

/// Every valid pair, in code order: the one table the pairing rule lives in.
const PAIRS: [(State, StatusReason); 10] = [
    (State::Ready, StatusReason::WaitingForResources),
    (State::Suspended, StatusReason::Waiting),
    (State::Suspended, StatusReason::Retrying),
    (State::Suspended, StatusReason::Paused),
    (State::Locked, StatusReason::InProgress),
    (State::Locked, StatusReason::Pausing),
    (State::Locked, StatusReason::Canceling),
    (State::Completed, StatusReason::Succeeded),
    (State::Completed, StatusReason::Failed),
    (State::Completed, StatusReason::Canceled),
];

impl Status {
    /// Ready, Waiting For Resources (0, 0): a new job's status.
    pub const READY: Self = Self { state: State::Ready, reason: StatusReason::WaitingForResources };
    /// Suspended, Waiting (1, 10).
    pub const WAITING: Self = Self { state: State::Suspended, reason: StatusReason::Waiting };
    /// Suspended, Retrying (1, 11).
    pub const RETRYING: Self = Self { state: State::Suspended, reason: StatusReason::Retrying };
    /// Suspended, Paused (1, 12).
    pub const PAUSED: Self = Self { state: State::Suspended, reason: StatusReason::Paused };
    /// Locked, In Progress (2, 20).
    pub const IN_PROGRESS: Self = Self { state: State::Locked, reason: StatusReason::InProgress };
    /// Locked, Pausing (2, 21).
    pub const PAUSING: Self = Self { state: State::Locked, reason: StatusReason::Pausing };
    /// Locked, Canceling (2, 22).
    pub const CANCELING: Self = Self { state: State::Locked, reason: StatusReason::Canceling };
    /// Completed, Succeeded (3, 30).
    pub const SUCCEEDED: Self = Self { state: State::Completed, reason: StatusReason::Succeeded };
    /// Completed, Failed (3, 31).
    pub const FAILED: Self = Self { state: State::Completed, reason: StatusReason::Failed };
    /// Completed, Canceled (3, 32).
    pub const CANCELED: Self = Self { state: State::Completed, reason: StatusReason::Canceled };

    /// Every valid status, in code order.
    pub fn all() -> impl Iterator<Item = Status> {
        PAIRS.iter().map(|&(state, reason)| Status { state, reason })
    }

    /// The status the reason belongs to (every reason has exactly one State).
    pub fn of_reason(reason: StatusReason) -> Self {
        let &(state, reason) = PAIRS.iter().find(|p| p.1 == reason).expect("every reason is in PAIRS");
        Self { state, reason }
    }

    /// The status whose Status Reason has code `statuscode` (each code
    /// belongs to one State), if there is one.
    pub fn of_statuscode(statuscode: u32) -> Option<Self> {
        Status::all().find(|s| s.reason as u32 == statuscode)
    }

    /// Checks a pair of codes, as they arrive from an import or a command line.
    pub fn from_codes(statecode: u32, statuscode: u32) -> Result<Self, DomainError> {
        Status::all()
            .find(|s| s.state as u32 == statecode && s.reason as u32 == statuscode)
            .ok_or(DomainError::BadStatusPair { statecode, statuscode })
    }

    /// The status stored as the State's variant index `state` and the
    /// Status Reason's `reason` (`docs/format.md`: a `Status` is those two
    /// indices), if that pair exists. [`PAIRS`] lists the reasons in their
    /// declaration order, and a State's index is its code.
    pub(crate) fn from_indices(state: u32, reason: u32) -> Option<Self> {
        let &(s, r) = PAIRS.get(usize::try_from(reason).ok()?)?;
        (s as u32 == state).then_some(Status { state: s, reason: r })
    }

    /// The State half.
    pub fn state(self) -> State {
        self.state
    }

    /// The Status Reason half.
    pub fn reason(self) -> StatusReason {
        self.reason
    }

    /// The State's code (`statecode`, 0..=3).
    pub fn statecode(self) -> u32 {
        self.state as u32
    }

    /// The Status Reason's code (`statuscode`).
    pub fn statuscode(self) -> u32 {
        self.reason as u32
    }

    /// Whether the job is Completed (and so never changes again, but by
    /// deletion or resubmission as a new job).
    pub fn is_completed(self) -> bool {
        self.state == State::Completed
    }
}

impl State {
    /// The State's name as the platform shows it (`Ready`, `Completed`, …).
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "Ready",
            State::Suspended => "Suspended",
            State::Locked => "Locked",
            State::Completed => "Completed",
        }
    }

    /// Every State, in code order.
    pub fn all() -> [State; 4] {
        [State::Ready, State::Suspended, State::Locked, State::Completed]
    }

    /// A code or a name (`completed`, `Completed`, `3`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::all()
            .into_iter()
            .find(|st| s == (*st as u32).to_string() || slug(st.name()) == slug(s))
            .ok_or_else(|| DomainError::UnknownName { kind: "state", name: s.to_string() })
    }
}

impl StatusReason {
    /// The Status Reason's name as the platform shows it (`In Progress`, …).
    pub fn name(self) -> &'static str {
        match self {
            StatusReason::WaitingForResources => "Waiting For Resources",
            StatusReason::Waiting => "Waiting",
            StatusReason::Retrying => "Retrying",
            StatusReason::Paused => "Paused",
            StatusReason::InProgress => "In Progress",
            StatusReason::Pausing => "Pausing",
            StatusReason::Canceling => "Canceling",
            StatusReason::Succeeded => "Succeeded",
            StatusReason::Failed => "Failed",
            StatusReason::Canceled => "Canceled",
        }
    }

    /// A code or a name (`waiting-for-resources`, `In Progress`, `20`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        PAIRS
            .iter()
            .map(|p| p.1)
            .find(|r| s == (*r as u32).to_string() || slug(r.name()) == slug(s))
            .ok_or_else(|| DomainError::UnknownName { kind: "status reason", name: s.to_string() })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.state.name(), self.reason.name())
    }
}

/// `In Progress`, `in-progress`, `in_progress` and `InProgress` all compare equal.
pub(crate) fn slug(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_platforms() {
        let codes: Vec<(u32, u32)> = Status::all().map(|s| (s.statecode(), s.statuscode())).collect();
        assert_eq!(codes, [(0, 0), (1, 10), (1, 11), (1, 12), (2, 20), (2, 21), (2, 22), (3, 30), (3, 31), (3, 32)]);
    }

    #[test]
    fn only_valid_pairs_are_accepted() {
        assert_eq!(Status::from_codes(3, 30).unwrap(), Status::SUCCEEDED);
        assert!(matches!(Status::from_codes(3, 20), Err(DomainError::BadStatusPair { statecode: 3, statuscode: 20 })));
        assert!(matches!(Status::from_codes(0, 10), Err(DomainError::BadStatusPair { statecode: 0, statuscode: 10 })));
        assert!(matches!(Status::from_codes(9, 0), Err(DomainError::BadStatusPair { statecode: 9, statuscode: 0 })));
        for s in Status::all() {
            assert_eq!(Status::of_reason(s.reason()), s);
            assert_eq!(Status::of_statuscode(s.statuscode()), Some(s));
        }
        assert_eq!(Status::of_statuscode(13), None);
    }

    /// Events and checkpoints decode a Status through the same check: a
    /// pair that does not exist is refused, whichever decoder reads it.
    #[test]
    fn an_invalid_pair_does_not_decode() {
        for s in Status::all() {
            let bytes = crate::codec::encode(&s).unwrap();
            assert_eq!(crate::codec::decode::<Status>(&bytes).unwrap(), s);
        }
        // State::Ready (0) with StatusReason::Succeeded (the 8th reason, 7).
        for bytes in [[0u8, 7], [3, 0], [1, 4]] {
            let e = crate::codec::decode::<Status>(&bytes).unwrap_err().to_string();
            assert!(e.contains("not a valid State/Status Reason pair"), "{e}");
            let e = crate::codec::decode_large::<Vec<Status>>(&[1, bytes[0], bytes[1]]).unwrap_err().to_string();
            assert!(e.contains("not a valid State/Status Reason pair"), "{e}");
        }
    }

    #[test]
    fn names_and_codes_parse() {
        assert_eq!(State::parse("completed").unwrap(), State::Completed);
        assert_eq!(State::parse("2").unwrap(), State::Locked);
        assert_eq!(StatusReason::parse("waiting-for-resources").unwrap(), StatusReason::WaitingForResources);
        assert_eq!(StatusReason::parse("In Progress").unwrap(), StatusReason::InProgress);
        assert_eq!(StatusReason::parse("32").unwrap(), StatusReason::Canceled);
        assert!(matches!(StatusReason::parse("done"), Err(DomainError::UnknownName { kind: "status reason", .. })));
        assert_eq!(Status::PAUSING.to_string(), "Locked/Pausing");
    }
}
