//! What the two import targets share: a small directory to import into,
//! and the promise every accepted job keeps (`docs/limits.md`).

use joblog::domain::{Directory, Job, User};

pub fn directory() -> Directory {
    let mut d = Directory::fresh();
    d.add_business_unit("sales", "root").unwrap();
    d.add_user(User {
        name: "alice".into(),
        business_unit: "sales".into(),
        roles: vec!["basic-user".into()],
        active: true,
    })
    .unwrap();
    d
}

/// An accepted job validates, and its owner and business unit exist.
pub fn check_accepted(dir: &Directory, line: usize, job: &Job) {
    assert!(job.validate().is_ok(), "line {line}: an accepted job breaks a limit: {job:?}");
    assert!(dir.user(&job.owner).is_ok(), "line {line}: unknown owner accepted");
    assert!(dir.has_business_unit(&job.owningbusinessunit), "line {line}: unknown unit accepted");
}
