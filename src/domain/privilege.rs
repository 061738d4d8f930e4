//! Users, business units, roles and privileges at depths (`docs/domain.md` §6),
//! and the one place where a privilege is checked: [`Directory::check`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{check_identifier, MAX_ROLES_PER_USER};
use super::status::slug;
use super::DomainError;

/// A privilege on system jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Privilege {
    /// Creating a job (at a depth that covers its owner; importing jobs needs
    /// Organization depth).
    Create,
    /// Seeing a job: in every list, count, replay and `show`.
    Read,
    /// Acting on a job (cancel, pause, resume, postpone); at Organization depth,
    /// administering the store.
    Write,
    /// Deleting completed jobs (only Organization depth counts).
    Delete,
    /// The platform's Append: can be granted, nothing checks it.
    Append,
    /// The platform's Append To: can be granted, nothing checks it.
    AppendTo,
    /// Reassigning jobs to another owner (only Organization depth counts).
    Assign,
    /// The platform's Share: can be granted, nothing checks it.
    Share,
    /// Creating a job that runs a shell command (data starting with
    /// `COMMAND_PREFIX`): the command runs as the OS user who owns the
    /// data directory, so only Organization depth counts (version 3).
    RunCommand,
}

/// How far a privilege reaches, from nothing to everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Depth {
    /// No jobs at all.
    None,
    /// The user's own jobs.
    User,
    /// Jobs owned in the user's business unit.
    BusinessUnit,
    /// Jobs owned in the user's business unit and every unit below it.
    ParentChild,
    /// Every job in the store.
    Organization,
}

impl Privilege {
    /// Every privilege, in code order.
    pub const ALL: [Privilege; 9] = [
        Privilege::Create,
        Privilege::Read,
        Privilege::Write,
        Privilege::Delete,
        Privilege::Append,
        Privilege::AppendTo,
        Privilege::Assign,
        Privilege::Share,
        Privilege::RunCommand,
    ];

    /// A privilege by its name, in any case and with or without separators
    /// (`read`, `AppendTo`, `append-to`, `run-command`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|p| slug(&format!("{p:?}")) == slug(s))
            .ok_or_else(|| DomainError::UnknownName { kind: "privilege", name: s.to_string() })
    }
}

impl Depth {
    /// `user`, `business-unit`, `parent-child`, `organization` (and `none`).
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        [Depth::None, Depth::User, Depth::BusinessUnit, Depth::ParentChild, Depth::Organization]
            .into_iter()
            .find(|d| slug(&format!("{d:?}")) == slug(s))
            .ok_or_else(|| DomainError::UnknownName { kind: "depth", name: s.to_string() })
    }
}

/// A named set of privileges, each at a depth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The role's name, an identifier (`docs/limits.md`), unique in the store.
    pub name: String,
    /// Each privilege the role grants, at its depth; a missing one is
    /// [`Depth::None`].
    pub privileges: BTreeMap<Privilege, Depth>,
}

impl Role {
    /// A role named `name` granting `privileges`; not yet checked
    /// ([`Role::validate`]).
    pub fn new(name: &str, privileges: impl IntoIterator<Item = (Privilege, Depth)>) -> Self {
        Self { name: name.to_string(), privileges: privileges.into_iter().collect() }
    }

    fn depth(&self, p: Privilege) -> Depth {
        self.privileges.get(&p).copied().unwrap_or(Depth::None)
    }

    /// The name is an identifier (`docs/limits.md`).
    pub fn validate(&self) -> Result<(), DomainError> {
        check_identifier("role", &self.name)
    }
}

/// A joblog user: who acts on jobs (a session's acting user, a job's
/// owner). Users are never removed, only deactivated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's name, an identifier (`docs/limits.md`), unique in the store.
    pub name: String,
    /// The business unit the user belongs to: what their depths are measured
    /// from, and the unit of the jobs they own.
    pub business_unit: String,
    /// The names of the user's roles; for each privilege the deepest depth any
    /// of them gives counts.
    pub roles: Vec<String>,
    /// Whether the user can act; a deactivated user has no privilege.
    pub active: bool,
}

impl User {
    /// The name, business unit and roles are identifiers (`docs/limits.md`).
    pub fn validate(&self) -> Result<(), DomainError> {
        check_identifier("user", &self.name)?;
        check_identifier("business unit", &self.business_unit)?;
        if self.roles.len() > MAX_ROLES_PER_USER {
            return Err(DomainError::TooLong {
                field: "roles",
                max: MAX_ROLES_PER_USER,
                len: self.roles.len(),
                unit: "roles",
            });
        }
        self.roles.iter().try_for_each(|r| check_identifier("role", r))
    }
}

/// The organisation: business units (a tree), roles and users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Business unit → its parent (`None` for the root).
    business_units: BTreeMap<String, Option<String>>,
    roles: BTreeMap<String, Role>,
    users: BTreeMap<String, User>,
    /// OS user id → the joblog user a caller with that id acts as through
    /// the service (and only as that user).
    os_users: BTreeMap<u32, String>,
}

/// The business unit every store has, the root of the tree.
pub(crate) const ROOT_BUSINESS_UNIT: &str = "root";
/// The user every fresh store has: a System Administrator in `root`.
pub(crate) const ADMIN: &str = "admin";
/// The built-in role with every privilege at Organization depth.
pub(crate) const SYSTEM_ADMINISTRATOR: &str = "system-administrator";

impl Directory {
    /// A fresh store: the root business unit, the built-in roles, and
    /// `admin`, System Administrator.
    pub fn fresh() -> Self {
        let mut d = Self {
            business_units: BTreeMap::new(),
            roles: BTreeMap::new(),
            users: BTreeMap::new(),
            os_users: BTreeMap::new(),
        };
        d.business_units.insert(ROOT_BUSINESS_UNIT.into(), None);
        for role in [
            Role::new(SYSTEM_ADMINISTRATOR, Privilege::ALL.map(|p| (p, Depth::Organization))),
            Role::new("basic-user", [(Privilege::Read, Depth::User), (Privilege::Write, Depth::User)]),
            Role::new(
                "business-unit-manager",
                [(Privilege::Read, Depth::BusinessUnit), (Privilege::Write, Depth::BusinessUnit)],
            ),
        ] {
            d.roles.insert(role.name.clone(), role);
        }
        d.users.insert(
            ADMIN.into(),
            User {
                name: ADMIN.into(),
                business_unit: ROOT_BUSINESS_UNIT.into(),
                roles: vec![SYSTEM_ADMINISTRATOR.into()],
                active: true,
            },
        );
        d
    }

    /// Adds business unit `name` under the existing `parent`. Errors:
    /// `NotFound` (no such parent), `AlreadyExists`.
    pub fn add_business_unit(&mut self, name: &str, parent: &str) -> Result<(), DomainError> {
        if !self.business_units.contains_key(parent) {
            return Err(DomainError::NotFound { kind: "business unit", name: parent.into() });
        }
        if self.business_units.contains_key(name) {
            return Err(DomainError::AlreadyExists { kind: "business unit", name: name.into() });
        }
        self.business_units.insert(name.into(), Some(parent.into()));
        Ok(())
    }

    /// Adds a role. Errors: `AlreadyExists` (a role of that name).
    pub fn add_role(&mut self, role: Role) -> Result<(), DomainError> {
        if self.roles.contains_key(&role.name) {
            return Err(DomainError::AlreadyExists { kind: "role", name: role.name });
        }
        self.roles.insert(role.name.clone(), role);
        Ok(())
    }

    /// Adds a user. Errors: `AlreadyExists` (a user of that name), `NotFound`
    /// (their business unit or one of their roles).
    pub fn add_user(&mut self, user: User) -> Result<(), DomainError> {
        if self.users.contains_key(&user.name) {
            return Err(DomainError::AlreadyExists { kind: "user", name: user.name });
        }
        if !self.business_units.contains_key(&user.business_unit) {
            return Err(DomainError::NotFound { kind: "business unit", name: user.business_unit });
        }
        if let Some(r) = user.roles.iter().find(|r| !self.roles.contains_key(*r)) {
            return Err(DomainError::NotFound { kind: "role", name: r.clone() });
        }
        self.users.insert(user.name.clone(), user);
        Ok(())
    }

    /// Deactivates user `name` (its jobs stay). Errors: `NotFound`. The engine
    /// first asks `Directory::check_deactivation`.
    pub fn deactivate_user(&mut self, name: &str) -> Result<(), DomainError> {
        let user = self.users.get_mut(name).ok_or_else(|| DomainError::NotFound { kind: "user", name: name.into() })?;
        user.active = false;
        Ok(())
    }

    /// Makes a deactivated user active again.
    pub fn reactivate_user(&mut self, name: &str) -> Result<(), DomainError> {
        let user = self.users.get_mut(name).ok_or_else(|| DomainError::NotFound { kind: "user", name: name.into() })?;
        user.active = true;
        Ok(())
    }

    /// Whether `user` is an administrator: active, with Write at
    /// Organization depth (what every administrative write needs, so the
    /// one who can add users, roles and reactivate them).
    pub(crate) fn is_administrator(&self, user: &User) -> bool {
        self.depth(user, Privilege::Write) == Depth::Organization
    }

    /// Refuses deactivating `name` when no other active administrator would
    /// be left: nobody could administer the store, or reactivate anyone.
    pub(crate) fn check_deactivation(&self, name: &str) -> Result<(), DomainError> {
        let user = self.user(name)?;
        if self.is_administrator(user) && !self.users.values().any(|u| u.name != name && self.is_administrator(u)) {
            return Err(DomainError::LastAdministrator { name: name.into() });
        }
        Ok(())
    }

    /// Maps OS user id `uid` to joblog user `name` (`None`: removes the
    /// mapping of `name`). An id maps to one user and a user to one id.
    pub fn map_os_user(&mut self, name: &str, uid: Option<u32>) -> Result<(), DomainError> {
        self.user(name)?;
        if let Some(uid) = uid {
            if let Some(other) = self.os_users.get(&uid).filter(|o| o.as_str() != name) {
                return Err(DomainError::AlreadyExists {
                    kind: "OS user mapping",
                    name: format!("uid {uid} (mapped to {other}; unmap it first)"),
                });
            }
        }
        self.os_users.retain(|_, n| n != name);
        if let Some(uid) = uid {
            self.os_users.insert(uid, name.to_string());
        }
        Ok(())
    }

    /// Whether business unit `name` exists.
    pub fn has_business_unit(&self, name: &str) -> bool {
        self.business_units.contains_key(name)
    }

    /// The joblog user OS user id `uid` is mapped to.
    pub fn os_user(&self, uid: u32) -> Option<&str> {
        self.os_users.get(&uid).map(String::as_str)
    }

    /// The OS user id mapped to joblog user `name`.
    pub fn os_uid_of(&self, name: &str) -> Option<u32> {
        self.os_users.iter().find(|(_, n)| n.as_str() == name).map(|(&u, _)| u)
    }

    /// User `name`, active or not. Errors: `NotFound`.
    pub fn user(&self, name: &str) -> Result<&User, DomainError> {
        self.users.get(name).ok_or_else(|| DomainError::NotFound { kind: "user", name: name.into() })
    }

    /// Every user, active or not, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Every business unit with its parent (`None` for the root), by name.
    pub fn business_units(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.business_units.iter().map(|(u, p)| (u.as_str(), p.as_deref()))
    }

    /// Every role, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The deepest reach of `privilege` among the user's roles; an inactive
    /// user has none.
    pub fn depth(&self, user: &User, privilege: Privilege) -> Depth {
        if !user.active {
            return Depth::None;
        }
        user.roles.iter().filter_map(|r| self.roles.get(r)).map(|r| r.depth(privilege)).max().unwrap_or(Depth::None)
    }

    /// Whether `unit` is `ancestor` or below it.
    fn is_within(&self, unit: &str, ancestor: &str) -> bool {
        let mut at = Some(unit);
        // The tree is acyclic (a unit is added under an existing parent), so
        // this walks at most its height.
        while let Some(u) = at {
            if u == ancestor {
                return true;
            }
            at = self.business_units.get(u).and_then(|p| p.as_deref());
        }
        false
    }

    /// `unit` and every business unit below it.
    pub(crate) fn units_within(&self, unit: &str) -> Vec<String> {
        self.business_units.keys().filter(|u| self.is_within(u, unit)).cloned().collect()
    }

    /// Whether `actor`'s `privilege` reaches a job owned by `owner` in
    /// business unit `owner_unit`.
    pub fn reaches(&self, actor: &User, privilege: Privilege, owner: &str, owner_unit: &str) -> bool {
        match self.depth(actor, privilege) {
            Depth::None => false,
            Depth::User => actor.name == owner,
            Depth::BusinessUnit => actor.business_unit == owner_unit,
            Depth::ParentChild => self.is_within(owner_unit, &actor.business_unit),
            Depth::Organization => true,
        }
    }

    /// The one privilege check: `actor` needs `privilege` reaching the
    /// owner of what it acts on (`None`: needs Organization depth).
    pub fn check(&self, actor: &str, privilege: Privilege, owner: Option<(&str, &str)>) -> Result<(), DomainError> {
        let user = self.user(actor)?;
        let ok = match owner {
            Some((owner, unit)) => self.reaches(user, privilege, owner, unit),
            None => self.depth(user, privilege) == Depth::Organization,
        };
        if ok {
            Ok(())
        } else {
            Err(DomainError::Denied {
                user: actor.to_string(),
                privilege,
                needs: match owner {
                    Some((owner, _)) => format!("a depth that covers {owner}'s jobs"),
                    None => "Organization depth".to_string(),
                },
                has: self.depth(user, privilege),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// root ─ sales ─ sales-east
    ///      └ ops
    fn org() -> Directory {
        let mut d = Directory::fresh();
        d.add_business_unit("sales", "root").unwrap();
        d.add_business_unit("sales-east", "sales").unwrap();
        d.add_business_unit("ops", "root").unwrap();
        d.add_role(Role::new("tree-reader", [(Privilege::Read, Depth::ParentChild)])).unwrap();
        for (name, unit, role) in [
            ("alice", "sales", "basic-user"),
            ("bob", "sales", "business-unit-manager"),
            ("carol", "sales", "tree-reader"),
            ("dan", "sales-east", "basic-user"),
            ("erin", "ops", "basic-user"),
        ] {
            d.add_user(User { name: name.into(), business_unit: unit.into(), roles: vec![role.into()], active: true })
                .unwrap();
        }
        d
    }

    /// Each depth, seen and not seen: who may read a job owned by each user.
    #[test]
    fn read_depths() {
        let d = org();
        let owners = [("alice", "sales"), ("dan", "sales-east"), ("erin", "ops")];
        #[rustfmt::skip]
        let table = [
            // reader     alice's  dan's   erin's
            ("admin", [true,   true,   true]),   // Organization
            ("alice", [true,   false,  false]),  // User
            ("bob",   [true,   false,  false]),  // Business Unit (sales only)
            ("carol", [true,   true,   false]),  // Parent: Child (sales and below)
            ("erin",  [false,  false,  true]),   // User
        ];
        for (reader, expected) in table {
            for ((owner, unit), want) in owners.into_iter().zip(expected) {
                let got = d.check(reader, Privilege::Read, Some((owner, unit))).is_ok();
                assert_eq!(got, want, "{reader} reading {owner}'s job");
            }
        }
        // carol may read but not write.
        assert!(matches!(
            d.check("carol", Privilege::Write, Some(("alice", "sales"))),
            Err(DomainError::Denied { has: Depth::None, .. })
        ));
    }

    #[test]
    fn organization_depth_and_deactivation() {
        let mut d = org();
        assert!(d.check("admin", Privilege::Delete, None).is_ok());
        assert!(matches!(
            d.check("bob", Privilege::Delete, None),
            Err(DomainError::Denied { privilege: Privilege::Delete, has: Depth::None, .. })
        ));
        d.deactivate_user("admin").unwrap();
        assert!(matches!(
            d.check("admin", Privilege::Read, Some(("alice", "sales"))),
            Err(DomainError::Denied { has: Depth::None, .. })
        ));
        assert!(matches!(d.check("nobody", Privilege::Read, None), Err(DomainError::NotFound { .. })));
    }

    #[test]
    fn os_users_map_one_to_one_and_run_command_is_organization_only() {
        let mut d = org();
        d.map_os_user("alice", Some(1001)).unwrap();
        assert_eq!(d.os_user(1001), Some("alice"));
        assert!(matches!(d.map_os_user("bob", Some(1001)), Err(DomainError::AlreadyExists { .. })));
        d.map_os_user("alice", Some(1002)).unwrap();
        assert_eq!((d.os_user(1001), d.os_user(1002), d.os_uid_of("alice")), (None, Some("alice"), Some(1002)));
        d.map_os_user("alice", None).unwrap();
        assert_eq!(d.os_user(1002), None);
        assert!(matches!(d.map_os_user("ghost", Some(7)), Err(DomainError::NotFound { .. })));
        assert!(d.check("admin", Privilege::RunCommand, None).is_ok());
        for user in ["alice", "bob", "carol"] {
            assert!(matches!(d.check(user, Privilege::RunCommand, None), Err(DomainError::Denied { .. })));
        }
        assert_eq!(Privilege::parse("run-command").unwrap(), Privilege::RunCommand);
    }

    #[test]
    fn bad_additions_are_refused() {
        let mut d = org();
        assert!(matches!(
            d.add_business_unit("x", "nowhere"),
            Err(DomainError::NotFound { kind: "business unit", .. })
        ));
        assert!(matches!(
            d.add_business_unit("sales", "root"),
            Err(DomainError::AlreadyExists { kind: "business unit", .. })
        ));
        let ghost =
            User { name: "g".into(), business_unit: "root".into(), roles: vec!["no-role".into()], active: true };
        assert!(matches!(d.add_user(ghost), Err(DomainError::NotFound { kind: "role", .. })));
        assert_eq!(Privilege::parse("write").unwrap(), Privilege::Write);
        assert_eq!(Depth::parse("parent-child").unwrap(), Depth::ParentChild);
        assert_eq!(Depth::parse("business-unit").unwrap(), Depth::BusinessUnit);
    }
}
