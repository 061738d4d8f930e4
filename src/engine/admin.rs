//! Administration through a session: business units, roles, users (and
//! their OS-user mapping), workflow definitions, reassigning a workflow's
//! runs, the service's policy, and the Organization-depth check that
//! commands on the whole store need. Every write here needs Write (or
//! Assign) at Organization depth. Jobs themselves are in `actions.rs`.

use uuid::Uuid;

use super::Session;
use crate::domain::{DomainError, Event, Privilege, Role, User, WorkflowDefinition};
use crate::error::Error;
use crate::projection::query::{Filter, Visibility};
use crate::projection::Projection;

impl Session {
    /// Sets one number of the service's policy for this store (`None`:
    /// back to its default; keys and ranges: `domain::config`), recorded
    /// as a `PolicySet` event. Needs Write at Organization depth. Returns
    /// whether anything changed (setting a key to the value it has writes
    /// nothing).
    pub fn set_policy(&self, key: &str, value: Option<u64>) -> Result<bool, Error> {
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            let policy = state.policy();
            policy.check(key, value)?;
            if policy.get_set(key) == value {
                return Ok((Vec::new(), false));
            }
            Ok((vec![Event::PolicySet { key: key.to_string(), value }], true))
        })
    }

    /// Administration: business units, roles, users and workflow
    /// definitions. Each needs Write at Organization depth.
    pub fn add_business_unit(&self, name: &str, parent: &str) -> Result<(), Error> {
        self.admin(|state| {
            crate::domain::limits::check_identifier("business unit", name)?;
            state.directory().clone().add_business_unit(name, parent)?;
            Ok(Event::BusinessUnitAdded { name: name.into(), parent: parent.into() })
        })
    }

    /// Adds a role (administrators only: Write at Organization depth). Errors:
    /// the role's name is not an identifier, or a role of that name exists.
    pub fn add_role(&self, role: Role) -> Result<(), Error> {
        self.admin(|state| {
            role.validate()?;
            state.directory().clone().add_role(role.clone())?;
            Ok(Event::RoleAdded(role))
        })
    }

    /// Adds an active user in `business_unit` with `roles` (administrators
    /// only). Errors: a name is not an identifier, the user exists, or the
    /// business unit or a role does not.
    pub fn add_user(&self, name: &str, business_unit: &str, roles: &[&str]) -> Result<(), Error> {
        let user = User {
            name: name.into(),
            business_unit: business_unit.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            active: true,
        };
        self.admin(|state| {
            user.validate()?;
            state.directory().clone().add_user(user.clone())?;
            Ok(Event::UserAdded(user))
        })
    }

    /// Deactivates a user; refused for the last active administrator
    /// ([`DomainError::LastAdministrator`]).
    pub fn deactivate_user(&self, name: &str) -> Result<(), Error> {
        self.admin(|state| {
            if !state.directory().user(name)?.active {
                return Err(DomainError::UserAlreadyInState { name: name.into(), active: false }.into());
            }
            state.directory().check_deactivation(name)?;
            Ok(Event::UserDeactivated { name: name.into() })
        })
    }

    /// Makes a deactivated user active again (administrators only, like
    /// deactivation); refused for a user who is active.
    pub fn reactivate_user(&self, name: &str) -> Result<(), Error> {
        self.admin(|state| {
            if state.directory().user(name)?.active {
                return Err(DomainError::UserAlreadyInState { name: name.into(), active: true }.into());
            }
            Ok(Event::UserReactivated { name: name.into() })
        })
    }

    /// Adds or changes a workflow definition (its owner must exist).
    pub fn save_workflow(&self, workflow: WorkflowDefinition) -> Result<(), Error> {
        self.admin(|state| {
            workflow.validate()?;
            state.directory().user(&workflow.owner)?;
            Ok(Event::WorkflowSaved(workflow))
        })
    }

    /// Adds a workflow definition; one with its id already is refused
    /// (`DomainError::AlreadyExists`), checked under the write lock with
    /// the addition, so two concurrent additions of one id cannot both
    /// succeed. Needs Write at Organization depth; its owner must exist.
    pub fn add_workflow(&self, workflow: WorkflowDefinition) -> Result<(), Error> {
        self.admin(|state| {
            if state.workflow(&workflow.id).is_some() {
                return Err(DomainError::AlreadyExists { kind: "workflow", name: workflow.id.clone() }.into());
            }
            workflow.validate()?;
            state.directory().user(&workflow.owner)?;
            Ok(Event::WorkflowSaved(workflow))
        })
    }

    /// Gives workflow `id` a new owner (who must exist), the rest of its
    /// definition as it stands under the write lock; returns the definition
    /// afterwards. Needs Write at Organization depth. Errors: `NotFound`
    /// (the workflow or the user).
    pub fn set_workflow_owner(&self, id: &str, owner: &str) -> Result<WorkflowDefinition, Error> {
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            let mut w = state
                .workflow(id)
                .cloned()
                .ok_or_else(|| DomainError::NotFound { kind: "workflow", name: id.into() })?;
            w.owner = owner.to_string();
            w.validate()?;
            state.directory().user(owner)?;
            Ok((vec![Event::WorkflowSaved(w.clone())], w))
        })
    }

    /// Moves the runs of `workflow` owned by `from` that have not finished
    /// and are not running (Ready or Suspended) to `to`, each an event with
    /// this administrator as actor. Needs Assign at Organization depth.
    /// Returns the jobs moved.
    pub fn reassign(&self, workflow: &str, from: &str, to: &str) -> Result<Vec<Uuid>, Error> {
        self.engine.commit(self.actor(), |state, _| {
            let dir = state.directory();
            dir.check(&self.user, Privilege::Assign, None)?;
            state
                .workflow(workflow)
                .ok_or_else(|| DomainError::NotFound { kind: "workflow", name: workflow.into() })?;
            dir.user(from)?;
            let new_owner = dir.user(to)?;
            if !new_owner.active {
                return Err(DomainError::UserDeactivated { name: to.into() }.into());
            }
            let filter = Filter { workflow: Some(workflow.into()), owner: Some(from.into()), ..Filter::default() };
            let open =
                |id: &Uuid| {
                    state.status_of(*id).ok().flatten().is_some_and(|s| {
                        matches!(s.state(), crate::domain::State::Ready | crate::domain::State::Suspended)
                    })
                };
            let mut moved: Vec<Uuid> = Vec::new();
            for page in state.pages(&filter, &Visibility::All, 1024) {
                moved.extend(page?.into_iter().filter(|id| open(id)));
            }
            let events = moved
                .iter()
                .map(|&job| Event::OwnerChanged {
                    job,
                    owner: to.to_string(),
                    owningbusinessunit: new_owner.business_unit.clone(),
                })
                .collect();
            Ok((events, moved))
        })
    }

    /// Refused unless this user holds `privilege` at Organization depth:
    /// what commands that act on the whole store need (`verify` reads every
    /// job: Read; starting the service: Write; see README, "Who can act as
    /// whom").
    pub fn require_organization(&self, privilege: Privilege) -> Result<(), Error> {
        Ok(self.engine.state().directory().check(&self.user, privilege, None)?)
    }

    /// Adds a user mapped to OS user id `uid` (one atomic batch).
    pub fn add_user_mapped(&self, name: &str, business_unit: &str, roles: &[&str], uid: u32) -> Result<(), Error> {
        let user = User {
            name: name.into(),
            business_unit: business_unit.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            active: true,
        };
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            let mut dir = state.directory().clone();
            dir.add_user(user.clone())?;
            dir.map_os_user(name, Some(uid))?;
            Ok((vec![Event::UserAdded(user), Event::OsUserMapped { name: name.into(), uid: Some(uid) }], ()))
        })
    }

    /// Maps OS user id `uid` to joblog user `name`, or removes its mapping
    /// (`None`): through the service, a caller with that id acts as `name`
    /// and only as `name`. Needs Write at Organization depth.
    pub fn map_os_user(&self, name: &str, uid: Option<u32>) -> Result<(), Error> {
        self.admin(|state| {
            state.directory().clone().map_os_user(name, uid)?;
            Ok(Event::OsUserMapped { name: name.into(), uid })
        })
    }

    fn admin(&self, build: impl FnOnce(&Projection) -> Result<Event, Error>) -> Result<(), Error> {
        self.engine.commit(self.actor(), |state, _| {
            state.directory().check(&self.user, Privilege::Write, None)?;
            Ok((vec![build(state)?], ()))
        })
    }
}
