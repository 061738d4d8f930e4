//! Model-based test: random sequences of user actions and service steps, by
//! random users with different privileges, applied both to the engine and
//! to a small reference model written straight from `docs/domain.md`'s tables
//! (§4, §5, §6) — not from joblog's code. After every step, and after
//! reopening, the two must agree on every job's status and columns, on
//! which calls were refused and why, and on what each user can see.

use std::collections::HashMap;
use std::sync::Arc;

use joblog::domain::{Clock, DomainError, Job, ManualClock, OperationType, Timestamp};
use joblog::engine::{Config, Engine, NewJob, ServiceStep, UserAction};
use joblog::log::LogConfig;
use joblog::projection::query::Filter;
use joblog::Error;
use proptest::prelude::*;
use uuid::Uuid;

mod support;

/// (statecode, statuscode), as `docs/domain.md` §2 lists them.
type Code = (u32, u32);
const READY: Code = (0, 0);
const WAITING: Code = (1, 10);
const IN_PROGRESS: Code = (2, 20);
const PAUSING: Code = (2, 21);
const CANCELING: Code = (2, 22);
const SUCCEEDED: Code = (3, 30);
const FAILED: Code = (3, 31);
const CANCELED: Code = (3, 32);

/// Depths as `docs/domain.md` §6 orders them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum D {
    None,
    User,
    Unit,
    Tree,
    Org,
}

struct ModelUser {
    name: &'static str,
    unit: &'static str,
    read: D,
    write: D,
    create: D,
    delete: D,
}

/// Four levels: root ─ sales ─ sales-east ─ sales-east-nyc (Parent: Child
/// is the unit and every unit below it, at any depth: `docs/domain.md` §6).
const UNITS: [(&str, Option<&str>); 4] =
    [("root", None), ("sales", Some("root")), ("sales-east", Some("sales")), ("sales-east-nyc", Some("sales-east"))];

const USERS: [ModelUser; 8] = [
    ModelUser { name: "admin", unit: "root", read: D::Org, write: D::Org, create: D::Org, delete: D::Org },
    ModelUser { name: "alice", unit: "sales", read: D::User, write: D::User, create: D::None, delete: D::None },
    ModelUser { name: "bob", unit: "sales", read: D::Unit, write: D::Unit, create: D::None, delete: D::None },
    ModelUser { name: "carol", unit: "sales", read: D::Tree, write: D::None, create: D::Org, delete: D::None },
    ModelUser { name: "dan", unit: "sales-east", read: D::User, write: D::User, create: D::None, delete: D::None },
    ModelUser { name: "erin", unit: "sales-east-nyc", read: D::User, write: D::User, create: D::None, delete: D::None },
    ModelUser { name: "frank", unit: "sales-east", read: D::Tree, write: D::Tree, create: D::None, delete: D::Tree },
    ModelUser { name: "gina", unit: "root", read: D::Tree, write: D::Tree, create: D::None, delete: D::Tree },
];

/// `unit` is `ancestor` or below it, through any number of levels.
fn within(unit: &str, ancestor: &str) -> bool {
    let mut at = Some(unit);
    while let Some(u) = at {
        if u == ancestor {
            return true;
        }
        at = UNITS.iter().find(|(n, _)| *n == u).and_then(|(_, p)| *p);
    }
    false
}

fn reaches(depth: D, actor: &ModelUser, owner: &ModelUser) -> bool {
    match depth {
        D::None => false,
        D::User => actor.name == owner.name,
        D::Unit => actor.unit == owner.unit,
        D::Tree => within(owner.unit, actor.unit),
        D::Org => true,
    }
}

#[derive(Clone, Debug)]
struct ModelJob {
    id: Uuid,
    owner: usize,
    platform: bool,
    code: Code,
    postponeuntil: Option<i64>,
    retrycount: u32,
}

/// What a call came to.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Done,
    Refused,
    PlatformGenerated,
    Denied,
    NotDue,
    NotFound,
    NotDeletable,
}

fn outcome<T>(r: &Result<T, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Done,
        Err(Error::Domain(DomainError::Refused { .. })) => Outcome::Refused,
        Err(Error::Domain(DomainError::PlatformGenerated { .. })) => Outcome::PlatformGenerated,
        Err(Error::Domain(DomainError::Denied { .. })) => Outcome::Denied,
        Err(Error::Domain(DomainError::NotDue { .. })) => Outcome::NotDue,
        Err(Error::Domain(DomainError::NotFound { .. })) => Outcome::NotFound,
        Err(Error::Domain(DomainError::NotDeletable { .. })) => Outcome::NotDeletable,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// `docs/domain.md` §4: a user action from a status, or None if refused.
fn user_next(code: Code, action: u8) -> Option<Code> {
    match (action, code) {
        (0, (0, _) | (1, _)) => Some(CANCELED),
        (0, IN_PROGRESS | PAUSING) => Some(CANCELING),
        (1, IN_PROGRESS) => Some(PAUSING),
        (2, (1, _)) => Some(READY),
        (3, READY) => Some(WAITING),
        (3, IN_PROGRESS) => Some(PAUSING),
        _ => None,
    }
}

/// `docs/domain.md` §5: a service step from a status, or None if refused.
fn step_next(code: Code, step: u8) -> Option<Code> {
    match (step, code) {
        (0, READY) => Some(IN_PROGRESS),
        (1, IN_PROGRESS | PAUSING) => Some(SUCCEEDED),
        (2, IN_PROGRESS | PAUSING | CANCELING) => Some(FAILED),
        (3 | 4, IN_PROGRESS | PAUSING) => Some(WAITING),
        (5, PAUSING) => Some(WAITING),
        (6, CANCELING) => Some(CANCELED),
        (7, IN_PROGRESS) => Some(READY),
        (8, (1, 10 | 11)) => Some(READY),
        _ => None,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        by: usize,
        owner: usize,
        platform: bool,
    },
    /// An import of `n` Ready jobs (a bulk batch: it may defer the
    /// indices, `Projection::defer_indexing_for`).
    Import {
        by: usize,
        owner: usize,
        n: usize,
    },
    User {
        by: usize,
        job: usize,
        action: u8,
    },
    Step {
        job: usize,
        step: u8,
    },
    Advance {
        secs: u16,
    },
    Reopen {
        clean: bool,
    },
    Delete {
        by: usize,
        jobs: Vec<usize>,
    },
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS.len(), 0..USERS.len(), proptest::bool::weighted(0.2)).prop_map(|(by, owner, platform)| Op::Create { by, owner, platform }),
        1 => (0..USERS.len(), 0..USERS.len(), 1..12usize).prop_map(|(by, owner, n)| Op::Import { by, owner, n }),
        5 => (0..USERS.len(), 0..64usize, 0..4u8).prop_map(|(by, job, action)| Op::User { by, job, action }),
        5 => (0..64usize, 0..9u8).prop_map(|(job, step)| Op::Step { job, step }),
        2 => (1..7200u16).prop_map(|secs| Op::Advance { secs }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        2 => (0..USERS.len(), proptest::collection::vec(0..64usize, 1..4)).prop_map(|(by, jobs)| Op::Delete { by, jobs }),
        1 => Just(Op::Compact),
    ]
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Engine {
    let config = Config {
        log: LogConfig { segment_size_bytes: 64 << 10, ..LogConfig::default() },
        checkpoint_every_events: 40,
        cold_after: 1,
        // Replays from the log (opens without a usable checkpoint, `verify`)
        // spill their Completed jobs into cold runs.
        replay_spill_rows: 16,
        // Checkpoints and spills write several runs of a System Job Type
        // at once (one a core).
        cold_run_rows: 4,
    };
    Engine::open(dir, config, clock.clone()).unwrap()
}

fn setup(engine: &Engine) {
    let admin = engine.session("admin").unwrap();
    for (unit, parent) in UNITS.iter().skip(1) {
        admin.add_business_unit(unit, parent.unwrap()).unwrap();
    }
    use joblog::domain::{Depth, Privilege, Role};
    admin
        .add_role(Role::new(
            "auditor",
            [(Privilege::Read, Depth::ParentChild), (Privilege::Create, Depth::Organization)],
        ))
        .unwrap();
    admin
        .add_role(Role::new(
            "tree-manager",
            [
                (Privilege::Read, Depth::ParentChild),
                (Privilege::Write, Depth::ParentChild),
                (Privilege::Delete, Depth::ParentChild),
            ],
        ))
        .unwrap();
    admin.add_user("alice", "sales", &["basic-user"]).unwrap();
    admin.add_user("bob", "sales", &["business-unit-manager"]).unwrap();
    admin.add_user("carol", "sales", &["auditor"]).unwrap();
    admin.add_user("dan", "sales-east", &["basic-user"]).unwrap();
    admin.add_user("erin", "sales-east-nyc", &["basic-user"]).unwrap();
    admin.add_user("frank", "sales-east", &["tree-manager"]).unwrap();
    admin.add_user("gina", "root", &["tree-manager"]).unwrap();
}

fn check_agreement(engine: &Engine, jobs: &[ModelJob]) {
    // The indices the queries and the queue read agree with the rows
    // (`Projection::check_indices`, also what `joblog verify` runs).
    let problems = engine.state().check_indices();
    assert!(problems.is_empty(), "index problems: {problems:?}");
    let admin = engine.session("admin").unwrap();
    for m in jobs {
        let j: Job = admin.get(m.id).unwrap();
        assert_eq!((j.status.statecode(), j.status.statuscode()), m.code, "status of job {}", m.id);
        assert_eq!(j.postponeuntil.map(Timestamp::micros), m.postponeuntil, "postponeuntil of {}", m.id);
        assert_eq!(j.retrycount, m.retrycount);
        assert_eq!(j.completedon.is_some(), m.code.0 == 3);
    }
    for u in &USERS {
        let visible = jobs.iter().filter(|m| reaches(u.read, u, &USERS[m.owner])).count();
        assert_eq!(engine.session(u.name).unwrap().count(&Filter::default()).unwrap(), visible, "what {} sees", u.name);
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = support::clock_at(support::NOW);
    let mut engine = open(dir.path(), &clock);
    setup(&engine);
    let mut jobs: Vec<ModelJob> = Vec::new();
    for op in ops {
        let now = clock.now().micros();
        // After an import the next operation runs first, on indices the
        // import may have left to be built (`Projection::defer_indexing_for`).
        let imported = matches!(op, Op::Import { .. });
        match op {
            Op::Create { by, owner, platform } => {
                let (actor, o) = (&USERS[by], &USERS[owner]);
                let mut spec = NewJob::new("model", if platform { OperationType(16) } else { OperationType::WORKFLOW });
                spec.owner = Some(o.name.to_string());
                let r = engine.session(actor.name).unwrap().create(spec);
                let want = if reaches(actor.create, actor, o) { Outcome::Done } else { Outcome::Denied };
                assert_eq!(outcome(&r), want, "{} creating for {}", actor.name, o.name);
                if let Ok(j) = r {
                    jobs.push(ModelJob { id: j.id, owner, platform, code: READY, postponeuntil: None, retrycount: 0 });
                }
            }
            Op::Import { by, owner, n } => {
                let (actor, o) = (&USERS[by], &USERS[owner]);
                let created = Timestamp::from_micros(now - 1_000_000);
                let rows: Vec<Job> =
                    (0..n).map(|_| Job::new("imported", OperationType::WORKFLOW, o.name, o.unit, created)).collect();
                let r = engine.session(actor.name).unwrap().import(rows.clone());
                // Imports need Create at Organization depth (`docs/domain.md` §6).
                let want = if actor.create == D::Org { Outcome::Done } else { Outcome::Denied };
                assert_eq!(outcome(&r), want, "{} importing for {}", actor.name, o.name);
                if r.is_ok() {
                    jobs.extend(rows.iter().map(|j| ModelJob {
                        id: j.id,
                        owner,
                        platform: false,
                        code: READY,
                        postponeuntil: None,
                        retrycount: 0,
                    }));
                }
            }
            Op::User { by, job, action } if !jobs.is_empty() => {
                let i = job % jobs.len();
                let (actor, m) = (&USERS[by], jobs[i].clone());
                let until = now + 3_600_000_000;
                let a = [
                    UserAction::Cancel,
                    UserAction::Pause,
                    UserAction::Resume,
                    UserAction::Postpone(Timestamp::from_micros(until)),
                ][action as usize];
                let r = engine.session(actor.name).unwrap().act(m.id, a);
                let next = user_next(m.code, action);
                let want = if !reaches(actor.write, actor, &USERS[m.owner]) {
                    Outcome::Denied
                } else if m.platform && action < 3 && m.code.0 != 3 {
                    Outcome::PlatformGenerated
                } else if next.is_none() {
                    Outcome::Refused
                } else {
                    Outcome::Done
                };
                assert_eq!(outcome(&r), want, "{} doing {a:?} on a job at {:?}", actor.name, m.code);
                if want == Outcome::Done {
                    let j = &mut jobs[i];
                    j.code = next.unwrap();
                    match action {
                        2 => j.postponeuntil = None,
                        3 => j.postponeuntil = Some(until),
                        _ => {}
                    }
                }
            }
            Op::Step { job, step } if !jobs.is_empty() => {
                let i = job % jobs.len();
                let m = jobs[i].clone();
                let later = Timestamp::from_micros(now + 60_000_000);
                let s = match step {
                    0 => ServiceStep::Lock,
                    1 => ServiceStep::Succeed,
                    2 => ServiceStep::Fail { code: -1, message: "boom".into() },
                    3 => ServiceStep::Wait { until: later, message: None },
                    4 => ServiceStep::Retry { until: later, message: "busy".into() },
                    5 => ServiceStep::StopPausing { message: None },
                    6 => ServiceStep::StopCanceling { message: None },
                    7 => ServiceStep::ReturnToReady { message: "lease lost".into() },
                    _ => ServiceStep::Wake,
                };
                let r = engine.worker("worker-1").step(m.id, s);
                let next = step_next(m.code, step);
                let due = match step {
                    0 => m.postponeuntil.is_none_or(|t| t <= now),
                    8 => m.postponeuntil.is_some_and(|t| t <= now),
                    _ => true,
                };
                let want = match (next, due) {
                    (None, _) => Outcome::Refused,
                    (Some(_), false) => Outcome::NotDue,
                    (Some(_), true) => Outcome::Done,
                };
                assert_eq!(outcome(&r), want, "step {step} on a job at {:?}", m.code);
                if want == Outcome::Done {
                    let j = &mut jobs[i];
                    j.code = next.unwrap();
                    match step {
                        3 => j.postponeuntil = Some(later.micros()),
                        4 => {
                            j.postponeuntil = Some(later.micros());
                            j.retrycount += 1;
                        }
                        5 => {}
                        _ => j.postponeuntil = None,
                    }
                }
            }
            Op::Advance { secs } => clock.advance_secs(i64::from(secs)),
            Op::Reopen { clean } => {
                if clean {
                    engine.close().unwrap();
                } else {
                    drop(engine);
                }
                engine = open(dir.path(), &clock);
            }
            Op::Delete { by, jobs: picked } if !jobs.is_empty() => {
                let actor = &USERS[by];
                let mut ids: Vec<Uuid> = Vec::new();
                for p in picked {
                    let id = jobs[p % jobs.len()].id;
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                // The first refused id, in the order given, decides.
                let want = ids
                    .iter()
                    .map(|id| {
                        let m = jobs.iter().find(|m| m.id == *id).unwrap();
                        let owner = &USERS[m.owner];
                        if !reaches(actor.read, actor, owner) {
                            Outcome::NotFound
                        } else if !reaches(actor.delete, actor, owner) {
                            Outcome::Denied
                        } else if m.code.0 != 3 {
                            Outcome::NotDeletable
                        } else {
                            Outcome::Done
                        }
                    })
                    .find(|o| *o != Outcome::Done)
                    .unwrap_or(Outcome::Done);
                let r = engine.session(actor.name).unwrap().delete_jobs(&ids);
                assert_eq!(outcome(&r), want, "{} deleting {} jobs", actor.name, ids.len());
                if want == Outcome::Done {
                    jobs.retain(|m| !ids.contains(&m.id));
                    for id in &ids {
                        let gone = engine.session("admin").unwrap().get(*id);
                        assert_eq!(outcome(&gone), Outcome::NotFound);
                    }
                }
            }
            Op::Compact => {
                engine.compact().unwrap();
                assert!(engine.state().garbage().is_empty());
            }
            Op::User { .. } | Op::Step { .. } | Op::Delete { .. } => {}
        }
        if !imported {
            check_agreement(&engine, &jobs);
        }
    }
    // Replay equals live: a full replay of the log, a reopen from a
    // checkpoint, and the live projection show the same jobs.
    let live: HashMap<Uuid, Job> =
        jobs.iter().map(|m| (m.id, engine.session("admin").unwrap().get(m.id).unwrap())).collect();
    let replayed = engine.replay_until(clock.now()).unwrap();
    for m in &jobs {
        assert_eq!(replayed.status_of(m.id).unwrap(), Some(live[&m.id].status));
    }
    let problems = replayed.check_indices();
    assert!(problems.is_empty(), "index problems after a full replay: {problems:?}");
    engine.close().unwrap();
    let engine = open(dir.path(), &clock);
    for m in &jobs {
        assert_eq!(engine.session("admin").unwrap().get(m.id).unwrap(), live[&m.id]);
    }
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    drop(engine);
    let engine = open(dir.path(), &clock);
    for m in &jobs {
        assert_eq!(engine.session("admin").unwrap().get(m.id).unwrap(), live[&m.id]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn the_engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}

#[test]
fn the_model_itself_follows_domain_md() {
    // Spot checks of the model against the text of `docs/domain.md`, so that the
    // model is not merely a copy of whatever the engine does.
    assert_eq!(user_next(WAITING, 0), Some(CANCELED)); // Cancel: Suspended → Completed/Canceled at once
    assert_eq!(user_next(PAUSING, 0), Some(CANCELING)); // Cancel: Locked (Pausing) → Canceling
    assert_eq!(user_next(CANCELING, 0), None);
    assert_eq!(user_next(READY, 1), None); // Pause needs Locked/In Progress
    assert_eq!(user_next(SUCCEEDED, 2), None); // Completed refuses everything
    assert_eq!(step_next(WAITING, 0), None); // Suspended never goes straight to Locked
                                             // Parent: Child is the unit and every unit below it, at any depth.
    let user = |n: &str| USERS.iter().find(|u| u.name == n).unwrap();
    assert!(reaches(D::Tree, user("gina"), user("erin"))); // root reaches a great-grandchild unit
    assert!(reaches(D::Tree, user("carol"), user("erin"))); // sales reaches a grandchild unit
    assert!(!reaches(D::Tree, user("frank"), user("alice"))); // never upwards
    assert!(!reaches(D::Unit, user("bob"), user("dan"))); // Business Unit is one unit only
}
