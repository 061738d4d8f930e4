//! The state machine, as one table (`docs/domain.md` §4 and §5): for each action,
//! the statuses it is allowed from and the status it leads to. Everything
//! that changes a job's status goes through [`transition`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::Actor;
use super::operation::OperationType;
use super::status::{State, Status};
use super::DomainError;

/// What can happen to a job: the four user actions, then the service's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// A user cancels the job (a running one is Canceling until its run ends).
    Cancel,
    /// A user pauses a running job: Pausing until its run ends.
    Pause,
    /// A user makes a Suspended job Ready now.
    Resume,
    /// A user postpones the job to a later time (a running one pauses).
    Postpone,
    /// A worker takes the job (a lease).
    Lock,
    /// The run succeeded.
    Succeed,
    /// The run failed for good.
    Fail,
    /// The run waits for a time or a condition.
    Wait,
    /// A transient failure: retried later.
    Retry,
    /// The worker reached a checkpoint after a pause (or postpone) was asked.
    StopPausing,
    /// The worker stopped after a cancel was asked.
    StopCanceling,
    /// The lease was lost (the worker died): the job goes back to the queue.
    ReturnToReady,
    /// A Suspended job's `postponeuntil` has passed.
    Wake,
}

impl Action {
    /// Every action, in declaration order: the one stored as index `i` is
    /// `ALL[i]` (`src/domain/wire.rs` reads them so; a test checks it).
    pub const ALL: [Action; 13] = [
        Action::Cancel,
        Action::Pause,
        Action::Resume,
        Action::Postpone,
        Action::Lock,
        Action::Succeed,
        Action::Fail,
        Action::Wait,
        Action::Retry,
        Action::StopPausing,
        Action::StopCanceling,
        Action::ReturnToReady,
        Action::Wake,
    ];

    /// The four actions a user may ask for; the rest are the service's.
    pub fn is_user_action(self) -> bool {
        matches!(self, Action::Cancel | Action::Pause | Action::Resume | Action::Postpone)
    }

    /// The action's name in messages and the command line (`cancel`, `lock`, …).
    pub fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Postpone => "postpone",
            Action::Lock => "lock",
            Action::Succeed => "succeed",
            Action::Fail => "fail",
            Action::Wait => "wait",
            Action::Retry => "retry",
            Action::StopPausing => "stop pausing",
            Action::StopCanceling => "stop canceling",
            Action::ReturnToReady => "return to ready",
            Action::Wake => "wake",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The action this row is about.
    pub action: Action,
    /// The statuses it is allowed from; from any other it is refused.
    pub from: &'static [Status],
    /// The status it leads to.
    pub to: Status,
}

const SUSPENDED: &[Status] = &[Status::WAITING, Status::RETRYING, Status::PAUSED];
const NOT_STARTED: &[Status] = &[Status::READY, Status::WAITING, Status::RETRYING, Status::PAUSED];

/// The state machine. An action not allowed from a status by some row is
/// refused; no other code decides a transition.
pub(crate) const RULES: &[Rule] = &[
    // Users (§4).
    Rule { action: Action::Cancel, from: NOT_STARTED, to: Status::CANCELED },
    Rule { action: Action::Cancel, from: &[Status::IN_PROGRESS, Status::PAUSING], to: Status::CANCELING },
    Rule { action: Action::Pause, from: &[Status::IN_PROGRESS], to: Status::PAUSING },
    Rule { action: Action::Resume, from: SUSPENDED, to: Status::READY },
    Rule { action: Action::Postpone, from: &[Status::READY], to: Status::WAITING },
    Rule { action: Action::Postpone, from: &[Status::IN_PROGRESS], to: Status::PAUSING },
    // The service (§5).
    Rule { action: Action::Lock, from: &[Status::READY], to: Status::IN_PROGRESS },
    Rule { action: Action::Succeed, from: &[Status::IN_PROGRESS, Status::PAUSING], to: Status::SUCCEEDED },
    Rule { action: Action::Fail, from: &[Status::IN_PROGRESS, Status::PAUSING, Status::CANCELING], to: Status::FAILED },
    Rule { action: Action::Wait, from: &[Status::IN_PROGRESS, Status::PAUSING], to: Status::WAITING },
    Rule { action: Action::Retry, from: &[Status::IN_PROGRESS, Status::PAUSING], to: Status::WAITING },
    Rule { action: Action::StopPausing, from: &[Status::PAUSING], to: Status::WAITING },
    Rule { action: Action::StopCanceling, from: &[Status::CANCELING], to: Status::CANCELED },
    Rule { action: Action::ReturnToReady, from: &[Status::IN_PROGRESS], to: Status::READY },
    Rule { action: Action::Wake, from: &[Status::WAITING, Status::RETRYING], to: Status::READY },
];

/// The status `action` leads a job to from `current` when a user asks for
/// it, or why it is refused. Jobs the platform generates cannot be paused,
/// canceled or resumed by a user (`docs/domain.md` §4).
pub fn transition(job: Uuid, operation: OperationType, current: Status, action: Action) -> Result<Status, DomainError> {
    transition_by(&Actor::User(String::new()), job, operation, current, action)
}

/// [`transition`] for a step recorded as `by`: the platform-generated rule
/// binds users only. The service (a worker, or the engine itself) may stop
/// such a job: the loop guard cancels a Ready job of any type that must not
/// run (`docs/domain.md` §5), which it could not do if the rule bound it too,
/// and the job would stay Ready for ever.
pub fn transition_by(
    by: &Actor,
    job: Uuid,
    operation: OperationType,
    current: Status,
    action: Action,
) -> Result<Status, DomainError> {
    transition_by_user(matches!(by, Actor::User(_)), job, operation, current, action)
}

/// [`transition_by`] for a step recorded as a user's (`by_user`) or not:
/// all it needs to know of who did it.
pub(crate) fn transition_by_user(
    by_user: bool,
    job: Uuid,
    operation: OperationType,
    current: Status,
    action: Action,
) -> Result<Status, DomainError> {
    if by_user
        && action.is_user_action()
        && action != Action::Postpone
        && operation.is_platform_generated()
        && !current.is_completed()
    {
        return Err(DomainError::PlatformGenerated { job, action, operation });
    }
    RULES
        .iter()
        .find(|r| r.action == action && r.from.contains(&current))
        .map(|r| r.to)
        .ok_or_else(|| DomainError::Refused { job, action, current, needs: needs(action) })
}

/// What `action` needs, in words: "Ready or Suspended", "Locked/In Progress".
/// A State whose every reason is allowed is named alone.
pub fn needs(action: Action) -> String {
    let allowed: Vec<Status> =
        RULES.iter().filter(|r| r.action == action).flat_map(|r| r.from.iter().copied()).collect();
    let mut parts: Vec<String> = Vec::new();
    for state in State::all() {
        let of_state: Vec<Status> = Status::all().filter(|s| s.state() == state).collect();
        let have: Vec<&Status> = of_state.iter().filter(|s| allowed.contains(s)).collect();
        if have.is_empty() {
            continue;
        }
        if have.len() == of_state.len() {
            parts.push(state.name().to_string());
        } else {
            parts.extend(have.iter().map(|s| s.to_string()));
        }
    }
    match parts.len() {
        0 => "nothing".into(),
        1 => parts.remove(0),
        n => format!("{} or {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: Uuid = Uuid::nil();

    fn go(current: Status, action: Action) -> Result<Status, DomainError> {
        transition(JOB, OperationType::WORKFLOW, current, action)
    }

    /// `docs/domain.md` §4, row by row, from every status: what each user action does.
    #[test]
    fn user_actions_follow_the_platform_table() {
        use Status as S;
        #[rustfmt::skip]
        let table: &[(Status, [Option<Status>; 4])] = &[
            //  from           cancel              pause             resume            postpone
            (S::READY,       [Some(S::CANCELED),  None,             None,             Some(S::WAITING)]),
            (S::WAITING,     [Some(S::CANCELED),  None,             Some(S::READY),   None]),
            (S::RETRYING,    [Some(S::CANCELED),  None,             Some(S::READY),   None]),
            (S::PAUSED,      [Some(S::CANCELED),  None,             Some(S::READY),   None]),
            (S::IN_PROGRESS, [Some(S::CANCELING), Some(S::PAUSING), None,             Some(S::PAUSING)]),
            (S::PAUSING,     [Some(S::CANCELING), None,             None,             None]),
            (S::CANCELING,   [None,               None,             None,             None]),
            (S::SUCCEEDED,   [None,               None,             None,             None]),
            (S::FAILED,      [None,               None,             None,             None]),
            (S::CANCELED,    [None,               None,             None,             None]),
        ];
        assert_eq!(table.len(), Status::all().count());
        for &(from, expected) in table {
            for (action, want) in
                [Action::Cancel, Action::Pause, Action::Resume, Action::Postpone].into_iter().zip(expected)
            {
                let got = go(from, action);
                match want {
                    Some(to) => assert_eq!(got.unwrap(), to, "{action:?} from {from}"),
                    None => assert!(
                        matches!(got, Err(DomainError::Refused { current, action: a, .. }) if current == from && a == action),
                        "{action:?} from {from} should be refused"
                    ),
                }
            }
        }
    }

    #[test]
    fn completed_is_final_for_every_action() {
        for from in Status::all().filter(|s| s.is_completed()) {
            for rule in RULES {
                assert!(
                    matches!(go(from, rule.action), Err(DomainError::Refused { current, .. }) if current == from),
                    "{:?} from {from}",
                    rule.action
                );
            }
        }
    }

    #[test]
    fn suspended_never_goes_straight_to_locked() {
        for rule in RULES {
            if rule.to.state() == State::Locked {
                assert!(rule.from.iter().all(|s| s.state() != State::Suspended), "{:?}", rule.action);
            }
        }
    }

    #[test]
    fn refusals_say_what_the_action_needs() {
        let err = go(Status::SUCCEEDED, Action::Resume).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot resume job {JOB}: it is Completed/Succeeded; resume needs Suspended")
        );
        assert_eq!(needs(Action::Cancel), "Ready, Suspended, Locked/In Progress or Locked/Pausing");
        assert_eq!(needs(Action::Pause), "Locked/In Progress");
    }

    #[test]
    fn platform_generated_types_refuse_user_actions() {
        let stats = OperationType(16);
        for action in [Action::Cancel, Action::Pause, Action::Resume] {
            let from = if action == Action::Pause { Status::IN_PROGRESS } else { Status::WAITING };
            assert!(matches!(transition(JOB, stats, from, action), Err(DomainError::PlatformGenerated { .. })));
        }
        // The service still runs them.
        assert_eq!(transition(JOB, stats, Status::READY, Action::Lock).unwrap(), Status::IN_PROGRESS);
    }

    #[test]
    fn the_service_steps() {
        assert_eq!(go(Status::READY, Action::Lock).unwrap(), Status::IN_PROGRESS);
        assert_eq!(go(Status::IN_PROGRESS, Action::Succeed).unwrap(), Status::SUCCEEDED);
        assert_eq!(go(Status::IN_PROGRESS, Action::Retry).unwrap(), Status::WAITING);
        assert_eq!(go(Status::PAUSING, Action::StopPausing).unwrap(), Status::WAITING);
        assert_eq!(go(Status::CANCELING, Action::StopCanceling).unwrap(), Status::CANCELED);
        assert_eq!(go(Status::IN_PROGRESS, Action::ReturnToReady).unwrap(), Status::READY);
        assert_eq!(go(Status::WAITING, Action::Wake).unwrap(), Status::READY);
        assert!(matches!(go(Status::WAITING, Action::Lock), Err(DomainError::Refused { action: Action::Lock, .. })));
        assert!(matches!(
            go(Status::CANCELING, Action::Succeed),
            Err(DomainError::Refused { action: Action::Succeed, .. })
        ));
    }
}
