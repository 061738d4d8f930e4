//! The engine through its embedding API: actions and refusals, privileges,
//! views and paging, history, replay, time.

use std::sync::Arc;

use joblog::domain::{
    DomainError, Job, ManualClock, OperationType, Regarding, Role, State, Status, StatusReason, Timestamp,
    WorkflowDefinition,
};
use joblog::engine::{Config, Engine, NewJob, UserAction};
use joblog::projection::query::{Cursor, Filter};
use joblog::Error;
use uuid::Uuid;

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    engine: Engine,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-01-31T12:00:00Z")));
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    Fixture { _dir: dir, clock, engine }
}

/// A job imported in `status`, so every row of the table can be tried.
fn imported(status: Status, op: OperationType) -> Job {
    let created = t("2026-01-01T00:00:00Z");
    let mut j = Job::new("imported", op, "admin", "root", created);
    j.status = status;
    if status.state() == State::Locked || status.is_completed() {
        j.startedon = Some(created);
    }
    if status.is_completed() {
        j.completedon = Some(created.plus_micros(1_000_000));
        j.modifiedon = created.plus_micros(1_000_000);
    }
    j
}

#[test]
fn user_actions_from_every_status_change_exactly_what_the_table_says() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let later = t("2026-02-01T00:00:00Z");
    for from in Status::all() {
        for action in [UserAction::Cancel, UserAction::Pause, UserAction::Resume, UserAction::Postpone(later)] {
            let job = imported(from, OperationType::WORKFLOW);
            admin.import(vec![job.clone()]).unwrap();
            let before = f.engine.log().next_seq();
            let want = joblog::domain::transition(
                job.id,
                job.operationtype,
                from,
                match action {
                    UserAction::Cancel => joblog::domain::Action::Cancel,
                    UserAction::Pause => joblog::domain::Action::Pause,
                    UserAction::Resume => joblog::domain::Action::Resume,
                    UserAction::Postpone(_) => joblog::domain::Action::Postpone,
                },
            );
            match (admin.act(job.id, action), want) {
                (Ok(after), Ok(to)) => {
                    assert_eq!(after.status, to, "{action:?} from {from}");
                    assert_eq!(f.engine.log().next_seq(), before + 1);
                    if let UserAction::Postpone(until) = action {
                        assert_eq!(after.postponeuntil, Some(until));
                    }
                    if action == UserAction::Resume {
                        assert_eq!(after.postponeuntil, None);
                    }
                    if to.is_completed() {
                        assert_eq!(after.completedon, Some(f.now()));
                    }
                }
                (Err(Error::Domain(DomainError::Refused { current, .. })), Err(_)) => {
                    assert_eq!(current, from);
                    assert_eq!(f.engine.log().next_seq(), before, "a refused action wrote something");
                    assert_eq!(admin.get(job.id).unwrap().status, from);
                }
                (got, want) => panic!("{action:?} from {from}: got {got:?}, table says {want:?}"),
            }
        }
    }
}

impl Fixture {
    fn now(&self) -> Timestamp {
        use joblog::domain::Clock;
        self.clock.now()
    }
}

#[test]
fn refusals_name_the_job_its_status_and_what_is_needed() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let job = imported(Status::SUCCEEDED, OperationType::WORKFLOW);
    admin.import(vec![job.clone()]).unwrap();
    let err = admin.act(job.id, UserAction::Resume).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot resume job {}: it is Completed/Succeeded; resume needs Suspended", job.id)
    );
    let stats = imported(Status::WAITING, OperationType(16));
    admin.import(vec![stats.clone()]).unwrap();
    assert!(matches!(
        admin.act(stats.id, UserAction::Cancel),
        Err(Error::Domain(DomainError::PlatformGenerated { .. }))
    ));
    assert!(matches!(admin.act(Uuid::now_v7(), UserAction::Cancel), Err(Error::JobNotFound(_))));
    // Postponing into the past is refused.
    let ready = admin.create(NewJob::new("r", OperationType::WORKFLOW)).unwrap();
    assert!(admin.act(ready.id, UserAction::Postpone(t("2020-01-01T00:00:00Z"))).is_err());
}

/// Each Read depth sees exactly the jobs it covers; writes need Write.
#[test]
fn privileges_filter_reads_and_guard_writes() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    admin.add_business_unit("sales", "root").unwrap();
    admin.add_business_unit("sales-east", "sales").unwrap();
    admin
        .add_role(Role::new("auditor", [(joblog::domain::Privilege::Read, joblog::domain::Depth::ParentChild)]))
        .unwrap();
    admin.add_user("alice", "sales", &["basic-user"]).unwrap();
    admin.add_user("bob", "sales", &["business-unit-manager"]).unwrap();
    admin.add_user("carol", "sales", &["auditor"]).unwrap();
    admin.add_user("dan", "sales-east", &["basic-user"]).unwrap();
    let mut ids = std::collections::HashMap::new();
    for owner in ["admin", "alice", "bob", "dan"] {
        let mut spec = NewJob::new(&format!("{owner}'s job"), OperationType::WORKFLOW);
        spec.owner = Some(owner.to_string());
        ids.insert(owner, admin.create(spec).unwrap().id);
    }
    let sees = |user: &str| -> Vec<&str> {
        let s = f.engine.session(user).unwrap();
        let (jobs, _) = s.list(&Filter::default(), None, 100).unwrap();
        let mut owners: Vec<&str> =
            ["admin", "alice", "bob", "dan"].into_iter().filter(|o| jobs.iter().any(|j| j.id == ids[o])).collect();
        owners.sort();
        assert_eq!(s.count(&Filter::default()), owners.len(), "count for {user}");
        owners
    };
    assert_eq!(sees("admin"), ["admin", "alice", "bob", "dan"]);
    assert_eq!(sees("alice"), ["alice"]);
    assert_eq!(sees("bob"), ["alice", "bob"]);
    assert_eq!(sees("carol"), ["alice", "bob", "dan"]);
    assert_eq!(sees("dan"), ["dan"]);

    let alice = f.engine.session("alice").unwrap();
    let before = f.engine.log().next_seq();
    assert!(matches!(alice.act(ids["bob"], UserAction::Cancel), Err(Error::Domain(DomainError::Denied { .. }))));
    assert!(matches!(alice.get(ids["bob"]), Err(Error::Domain(DomainError::Denied { .. }))));
    assert!(matches!(alice.add_user("eve", "root", &[]), Err(Error::Domain(DomainError::Denied { .. }))));
    assert_eq!(f.engine.log().next_seq(), before, "refused calls wrote something");
    assert_eq!(alice.act(ids["alice"], UserAction::Cancel).unwrap().status, Status::CANCELED);
    let bob = f.engine.session("bob").unwrap();
    assert_eq!(bob.act(ids["bob"], UserAction::Cancel).unwrap().status, Status::CANCELED);
    assert!(bob.act(ids["dan"], UserAction::Cancel).is_err(), "Business Unit depth does not reach child units");

    // Acting on every matching job: changed and refused, in one batch.
    let outcome = admin.act_on_matching(UserAction::Cancel, &Filter::default()).unwrap();
    assert_eq!(outcome.matched, 4);
    assert_eq!(outcome.changed.len(), 2);
    assert_eq!(outcome.refused.len(), 2);
    assert!(outcome.refused.iter().all(|(_, why)| why.contains("Completed/Canceled")));
}

#[test]
fn views_filter_by_workflow_regarding_type_and_status() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    admin
        .save_workflow(WorkflowDefinition {
            id: "welcome".into(),
            name: "Welcome".into(),
            owner: "alice".into(),
            active: true,
        })
        .unwrap();
    let mut made = vec![];
    for i in 0..30 {
        let mut spec = NewJob::new(
            &format!("job {i}"),
            if i % 3 == 0 { OperationType::BULK_EMAIL } else { OperationType::WORKFLOW },
        );
        if i % 3 != 0 {
            spec.workflow = Some("welcome".into());
        }
        spec.regarding = Some(Regarding::parse(&format!("contact:{}", i % 5)).unwrap());
        made.push(admin.create(spec).unwrap());
        f.clock.advance_secs(1);
    }
    // A workflow job is owned by its workflow's owner.
    assert_eq!(made[1].owner, "alice");
    assert_eq!(made[0].owner, "admin");
    let count = |filter: Filter| admin.count(&filter);
    assert_eq!(count(Filter { workflow: Some("welcome".into()), ..Filter::default() }), 20);
    assert_eq!(count(Filter { regarding: Some(Regarding::parse("contact:2").unwrap()), ..Filter::default() }), 6);
    assert_eq!(count(Filter { operationtype: Some(OperationType::BULK_EMAIL), ..Filter::default() }), 10);
    assert_eq!(count(Filter { regarding: Some(Regarding::parse("contact:99").unwrap()), ..Filter::default() }), 0);
    admin.act(made[4].id, UserAction::Cancel).unwrap();
    assert_eq!(count(Filter { status: Some(StatusReason::Canceled), ..Filter::default() }), 1);
    assert_eq!(count(Filter { state: Some(State::Ready), ..Filter::default() }), 29);
    let (jobs, _) =
        admin.list(&Filter { created_after: Some(made[25].createdon), ..Filter::default() }, None, 100).unwrap();
    assert_eq!(jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["job 29", "job 28", "job 27", "job 26"]);
    // Cold columns come back from the log.
    let got = admin.get(made[7].id).unwrap();
    assert_eq!(got.name, "job 7");
    assert_eq!(got.regarding, Some(Regarding::parse("contact:2").unwrap()));
}

#[test]
fn paging_skips_and_repeats_nothing_while_jobs_arrive() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let mut originals = vec![];
    for i in 0..230 {
        originals.push(admin.create(NewJob::new(&format!("{i}"), OperationType::WORKFLOW)).unwrap().id);
        if i % 7 == 0 {
            f.clock.advance_secs(1); // several jobs share a createdon
        }
    }
    let mut seen = vec![];
    let mut after: Option<Cursor> = None;
    loop {
        let (page, next) = admin.list(&Filter::default(), after.as_ref(), 50).unwrap();
        seen.extend(page.iter().map(|j| j.id));
        // New jobs arrive between pages.
        f.clock.advance_secs(1);
        admin.create(NewJob::new("newcomer", OperationType::WORKFLOW)).unwrap();
        match next {
            Some(c) => after = Some(c.to_string().parse().unwrap()),
            None => break,
        }
    }
    let newest_first: Vec<Uuid> = originals.iter().rev().copied().collect();
    assert_eq!(seen, newest_first);
}

#[test]
fn history_replay_and_reopen_agree_with_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-01-31T12:00:00Z")));
    let (job, live, midway) = {
        let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        let job = admin.create(NewJob::new("j", OperationType::WORKFLOW)).unwrap();
        clock.advance_secs(10);
        admin.act(job.id, UserAction::Postpone(t("2026-02-02T00:00:00Z"))).unwrap();
        let midway = t("2026-01-31T12:00:15Z");
        clock.advance_secs(10);
        admin.act(job.id, UserAction::Resume).unwrap();
        clock.advance_secs(10);
        let live = admin.act(job.id, UserAction::Cancel).unwrap();
        let history = admin.history(job.id).unwrap();
        let statuses: Vec<Status> = history.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [Status::READY, Status::WAITING, Status::READY, Status::CANCELED]);
        assert!(history.windows(2).all(|w| w[0].seq < w[1].seq && w[0].at <= w[1].at));
        assert_eq!(history[1].postponeuntil, Some(t("2026-02-02T00:00:00Z")));
        assert_eq!(history[3].actor.to_string(), "admin");
        (job, live, midway)
    };
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    assert_eq!(admin.get(job.id).unwrap(), live);
    // The audit view: as it was between the postpone and the resume.
    let then = engine.replay_until(midway).unwrap();
    assert_eq!(then.status_of(job.id), Some(Status::WAITING));
    assert_eq!(engine.replay_until(t("2000-01-01T00:00:00Z")).unwrap().status_of(job.id), None);
    // And as of a sequence number: right after each event of the history.
    for h in admin.history(job.id).unwrap() {
        assert_eq!(engine.replay_until_seq(h.seq).unwrap().status_of(job.id), Some(h.status));
    }
}

#[test]
fn time_never_goes_backwards() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    admin.create(NewJob::new("a", OperationType::WORKFLOW)).unwrap();
    f.clock.set(t("2026-01-30T00:00:00Z"));
    let before = f.engine.log().next_seq();
    assert!(matches!(admin.create(NewJob::new("b", OperationType::WORKFLOW)), Err(Error::TimeWentBackwards { .. })));
    assert_eq!(f.engine.log().next_seq(), before);
}

#[test]
fn imports_are_validated_and_all_or_nothing() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let good = imported(Status::FAILED, OperationType::WORKFLOW);
    let mut bad = imported(Status::READY, OperationType::WORKFLOW);
    bad.completedon = Some(t("2026-01-02T00:00:00Z"));
    assert!(admin.import(vec![good.clone(), bad]).is_err());
    assert_eq!(admin.count(&Filter::default()), 0);
    assert_eq!(admin.import(vec![good.clone()]).unwrap(), 1);
    assert!(admin.import(vec![good]).is_err(), "an id imported twice");
    let alice_cannot = {
        admin.add_user("alice", "root", &["basic-user"]).unwrap();
        f.engine.session("alice").unwrap().import(vec![imported(Status::READY, OperationType::WORKFLOW)])
    };
    assert!(matches!(alice_cannot, Err(Error::Domain(DomainError::Denied { .. }))));
}

#[test]
fn loading_histories_checks_every_event_like_a_live_one() {
    use joblog::domain::{Action, Actor, Envelope, Event, Transition, EVENT_VERSION};
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let at = |s: &str| t(s);
    let env = |when: &str, event: Event| Envelope { version: EVENT_VERSION, at: at(when), actor: Actor::System, event };
    let job = Job::new("loaded", OperationType::WORKFLOW, "admin", "root", at("2026-01-01T00:00:00Z"));
    let step = |action, from, to| Transition {
        job: job.id,
        action,
        from,
        to,
        postponeuntil: None,
        retrycount: 0,
        errorcode: None,
        message: None,
    };
    let good = vec![
        env("2026-01-01T00:00:00Z", Event::JobCreated(Box::new(job.clone()))),
        env("2026-01-01T00:00:01Z", Event::Transition(step(Action::Lock, Status::READY, Status::IN_PROGRESS))),
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Succeed, Status::IN_PROGRESS, Status::SUCCEEDED))),
    ];
    // Out of order in time, an impossible step, a step from the wrong status: refused whole.
    let mut backwards = good.clone();
    backwards.swap(1, 2);
    assert!(admin.load(backwards).is_err());
    let mut impossible = good.clone();
    impossible[2] =
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Succeed, Status::IN_PROGRESS, Status::CANCELED)));
    assert!(admin.load(impossible).is_err());
    let mut wrong_from = good.clone();
    wrong_from[2] =
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Lock, Status::READY, Status::IN_PROGRESS)));
    assert!(admin.load(wrong_from).is_err());
    assert_eq!(admin.count(&Filter::default()), 0);
    assert_eq!(admin.load(good).unwrap(), 3);
    let loaded = admin.get(job.id).unwrap();
    assert_eq!(loaded.status, Status::SUCCEEDED);
    assert_eq!(loaded.completedon, Some(at("2026-01-01T00:00:02Z")));
    assert_eq!(admin.history(job.id).unwrap().len(), 3);
}

/// Issue 12, section 4: the limits hold in the engine itself, for every
/// path (create, import, load, administration), with typed refusals that
/// name the field; and a refused write changes nothing.
#[test]
fn every_write_path_checks_the_limits_of_its_strings() {
    use joblog::domain::{Actor, Envelope, Event, EVENT_VERSION};
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let before = f.engine.log().next_seq();
    let too_long = |e: Error, want: &str| {
        assert!(matches!(&e, Error::Domain(DomainError::TooLong { field, .. }) if *field == want), "{want}: {e:?}")
    };
    let control = |e: Error, want: &str| {
        assert!(
            matches!(&e, Error::Domain(DomainError::ControlCharacter { field, .. }) if *field == want),
            "{want}: {e:?}"
        )
    };
    let long = "x".repeat(70_000);
    let mut spec = NewJob::new("j", OperationType::WORKFLOW);
    spec.regarding = Some(Regarding { table: "contact".into(), id: long.clone() });
    too_long(admin.create(spec).unwrap_err(), "regarding id");
    let mut spec = NewJob::new("j", OperationType::WORKFLOW);
    spec.dependency_token = Some(long.clone());
    too_long(admin.create(spec).unwrap_err(), "dependency token");
    too_long(admin.create(NewJob::new(&long, OperationType::WORKFLOW)).unwrap_err(), "name");
    control(admin.create(NewJob::new("a\u{1b}[2J", OperationType::WORKFLOW)).unwrap_err(), "name");
    let mut spec = NewJob::new("j", OperationType::WORKFLOW);
    spec.data = vec![0; (1 << 20) + 1];
    too_long(admin.create(spec).unwrap_err(), "data");
    too_long(admin.add_user(&long, "root", &["basic-user"]).unwrap_err(), "user");
    control(admin.add_user("bob\r", "root", &["basic-user"]).unwrap_err(), "user");
    too_long(admin.add_business_unit(&long, "root").unwrap_err(), "business unit");
    control(admin.add_business_unit("a\nb", "root").unwrap_err(), "business unit");
    too_long(admin.add_role(Role::new(&long, [])).unwrap_err(), "role");
    let wf = |id: &str, name: &str| WorkflowDefinition {
        id: id.into(),
        name: name.into(),
        owner: "admin".into(),
        active: true,
    };
    too_long(admin.save_workflow(wf(&long, "n")).unwrap_err(), "workflow id");
    control(admin.save_workflow(wf("w", "n\u{7}")).unwrap_err(), "workflow name");
    // Import and load: the same checks, and owners from the directory.
    let mut j = imported(Status::READY, OperationType::WORKFLOW);
    j.workflow = Some(long.clone());
    too_long(admin.import(vec![j.clone()]).unwrap_err(), "workflow");
    let load = |job: Job| {
        admin.load(vec![Envelope {
            version: EVENT_VERSION,
            at: t("2026-01-01T00:00:00Z"),
            actor: Actor::User("admin".into()),
            event: Event::JobCreated(Box::new(job)),
        }])
    };
    too_long(load(j).unwrap_err(), "workflow");
    let mut j = imported(Status::READY, OperationType::WORKFLOW);
    j.owner = "ghost".into();
    assert!(matches!(admin.import(vec![j]), Err(Error::Domain(DomainError::NotFound { kind: "user", .. }))));
    let mut j = imported(Status::READY, OperationType::WORKFLOW);
    j.owningbusinessunit = "nowhere".into();
    assert!(matches!(admin.import(vec![j]), Err(Error::Domain(DomainError::NotFound { kind: "business unit", .. }))));
    let mut j = imported(Status::READY, OperationType::WORKFLOW);
    j.errorcode = Some(i32::MIN);
    assert!(matches!(admin.import(vec![j]), Err(Error::Domain(DomainError::Invalid { what: "errorcode", .. }))));
    assert_eq!(f.engine.log().next_seq(), before, "nothing refused was written");
    // At the limit: accepted.
    let mut spec = NewJob::new(&"n".repeat(256), OperationType::WORKFLOW);
    spec.regarding = Some(Regarding { table: "t".repeat(128), id: "i".repeat(256) });
    spec.dependency_token = Some("d".repeat(128));
    admin.create(spec).unwrap();
}

#[test]
fn a_handlers_message_is_kept_up_to_the_limit_never_refused() {
    use joblog::engine::ServiceStep;
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let job = admin.create(NewJob::new("j", OperationType::WORKFLOW)).unwrap();
    f.engine.step("w", job.id, ServiceStep::Lock).unwrap();
    let message = format!("\u{1b}[2J{}", "e".repeat(150_000));
    f.engine.step("w", job.id, ServiceStep::Fail { code: i32::MIN, message }).unwrap();
    let done = admin.get(job.id).unwrap();
    let kept = done.message.unwrap();
    assert_eq!(kept.chars().count(), joblog::domain::MAX_MESSAGE_CHARS);
    assert!(kept.starts_with("\u{1b}[2J") && kept.ends_with('…'));
    assert_eq!(done.errorcode, Some(i32::MIN + 1), "the reserved code is not silently dropped");
}

#[test]
fn the_last_administrator_cannot_be_deactivated_and_reactivation_replays() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-01-31T12:00:00Z")));
    {
        let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
        let admin = engine.session("admin").unwrap();
        let before = engine.log().next_seq();
        assert!(matches!(
            admin.deactivate_user("admin"),
            Err(Error::Domain(DomainError::LastAdministrator { name })) if name == "admin"
        ));
        assert_eq!(engine.log().next_seq(), before);
        admin.add_user("alice", "root", &["basic-user"]).unwrap();
        admin.deactivate_user("alice").unwrap();
        assert!(engine.session("alice").is_err());
        let before = engine.log().next_seq();
        assert!(matches!(
            admin.deactivate_user("alice"),
            Err(Error::Domain(DomainError::Invalid { what: "deactivation", .. }))
        ));
        assert_eq!(engine.log().next_seq(), before, "a second deactivation writes nothing");
        assert!(matches!(admin.reactivate_user("nobody"), Err(Error::Domain(DomainError::NotFound { .. }))));
        admin.reactivate_user("alice").unwrap();
        assert!(matches!(admin.reactivate_user("alice"), Err(Error::Domain(DomainError::Invalid { .. }))));
        engine.session("alice").unwrap();
        // A basic user may not reactivate anyone.
        admin.add_user("bob", "root", &["basic-user"]).unwrap();
        admin.deactivate_user("alice").unwrap();
        let bob = engine.session("bob").unwrap();
        assert!(matches!(bob.reactivate_user("alice"), Err(Error::Domain(DomainError::Denied { .. }))));
        admin.reactivate_user("alice").unwrap();
        // A second administrator: admin may go.
        admin.add_user("root2", "root", &["system-administrator"]).unwrap();
        admin.deactivate_user("admin").unwrap();
        let root2 = engine.session("root2").unwrap();
        assert!(matches!(root2.deactivate_user("root2"), Err(Error::Domain(DomainError::LastAdministrator { .. }))));
        // Deactivated administrators do not count.
        assert!(matches!(root2.deactivate_user("root2"), Err(Error::Domain(DomainError::LastAdministrator { .. }))));
    }
    // Replayed from the log: alice is active, admin is not.
    let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
    assert!(engine.session("alice").is_ok());
    assert!(engine.session("admin").is_err());
    let replayed = engine.replay_until(t("2100-01-01T00:00:00Z")).unwrap();
    assert!(replayed.directory().user("alice").unwrap().active);
}

#[test]
fn a_service_refuses_more_workers_than_the_limit() {
    use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
    let f = fixture();
    let workers = joblog::domain::limits::MAX_WORKERS + 1;
    let service = Service::new(&f.engine, ServiceConfig { workers, ..ServiceConfig::default() }, Registry::new());
    let before = f.engine.log().next_seq();
    assert!(matches!(service.run(RunUntil::Once), Err(Error::Domain(DomainError::Invalid { what: "workers", .. }))));
    assert_eq!(f.engine.log().next_seq(), before, "nothing written");
}
