//! The engine through its embedding API: actions and refusals, privileges,
//! views and paging, history, replay, time.

use joblog::domain::{
    DomainError, Job, OperationType, Regarding, Role, State, Status, StatusReason, Timestamp, WorkflowDefinition,
};
use joblog::engine::{NewJob, UserAction};
use joblog::projection::query::{Cursor, Filter};
use joblog::Error;
use uuid::Uuid;

mod support;

use support::{t, Fixture};

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
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let later = t("2026-02-01T00:00:00Z");
    for from in Status::all() {
        for action in [UserAction::Cancel, UserAction::Pause, UserAction::Resume, UserAction::Postpone(later)] {
            let job = imported(from, OperationType::WORKFLOW);
            admin.import(vec![job.clone()]).unwrap();
            let before = f.engine.next_seq();
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
                    assert_eq!(f.engine.next_seq(), before + 1);
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
                    assert_eq!(f.engine.next_seq(), before, "a refused action wrote something");
                    assert_eq!(admin.get(job.id).unwrap().status, from);
                }
                (got, want) => panic!("{action:?} from {from}: got {got:?}, table says {want:?}"),
            }
        }
    }
}

#[test]
fn refusals_name_the_job_its_status_and_what_is_needed() {
    let f = Fixture::new();
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
    assert!(matches!(
        admin.act(Uuid::now_v7(), UserAction::Cancel),
        Err(Error::Domain(DomainError::NotFound { kind: "job", .. }))
    ));
    // Postponing into the past is refused.
    let ready = admin.create(NewJob::new("r", OperationType::WORKFLOW)).unwrap();
    assert!(matches!(
        admin.act(ready.id, UserAction::Postpone(t("2020-01-01T00:00:00Z"))),
        Err(Error::Domain(DomainError::Invalid { what: "postpone time", .. }))
    ));
}

/// Each Read depth sees exactly the jobs it covers; writes need Write.
#[test]
fn privileges_filter_reads_and_guard_writes() {
    let f = Fixture::new();
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
        assert_eq!(s.count(&Filter::default()).unwrap(), owners.len(), "count for {user}");
        owners
    };
    assert_eq!(sees("admin"), ["admin", "alice", "bob", "dan"]);
    assert_eq!(sees("alice"), ["alice"]);
    assert_eq!(sees("bob"), ["alice", "bob"]);
    assert_eq!(sees("carol"), ["alice", "bob", "dan"]);
    assert_eq!(sees("dan"), ["dan"]);

    let alice = f.engine.session("alice").unwrap();
    let before = f.engine.next_seq();
    assert!(matches!(alice.act(ids["bob"], UserAction::Cancel), Err(Error::Domain(DomainError::Denied { .. }))));
    assert!(matches!(alice.get(ids["bob"]), Err(Error::Domain(DomainError::Denied { .. }))));
    assert!(matches!(alice.add_user("eve", "root", &[]), Err(Error::Domain(DomainError::Denied { .. }))));
    assert_eq!(f.engine.next_seq(), before, "refused calls wrote something");
    assert_eq!(alice.act(ids["alice"], UserAction::Cancel).unwrap().status, Status::CANCELED);
    let bob = f.engine.session("bob").unwrap();
    assert_eq!(bob.act(ids["bob"], UserAction::Cancel).unwrap().status, Status::CANCELED);
    assert!(
        matches!(
            bob.act(ids["dan"], UserAction::Cancel),
            Err(Error::Domain(DomainError::Denied { privilege: joblog::domain::Privilege::Write, .. }))
        ),
        "Business Unit depth does not reach child units"
    );

    // Acting on every matching job: changed and refused, in one batch.
    let outcome = admin.act_on_matching(UserAction::Cancel, &Filter::default()).unwrap();
    assert_eq!(outcome.matched, 4);
    assert_eq!(outcome.changed.len(), 2);
    assert_eq!(outcome.refused.len(), 2);
    assert!(outcome
        .refused
        .iter()
        .all(|(_, why)| matches!(why, DomainError::Refused { .. }) && why.to_string().contains("Completed/Canceled")));
}

/// The jobs regarding each row, listed a few at a time newest first and
/// counted, are exactly those created regarding it: with neighbouring rows
/// (by name and by symbol) in the same index, some jobs of the same second,
/// after deletions, and after a reopen that builds the index whole.
#[test]
fn the_jobs_regarding_a_row_are_listed_page_by_page_through_changes_and_a_reopen() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let rows = ["account:1", "account:10", "account:2", "contact:1"].map(|r| Regarding::parse(r).unwrap());
    let mut made: Vec<(Option<usize>, Uuid)> = vec![];
    for i in 0..120usize {
        let mut spec = NewJob::new(&format!("job {i}"), OperationType::BULK_EMAIL);
        // Row 3 only now and then; every seventh job regards nothing.
        let row = if i % 7 == 6 { None } else { Some(if i % 11 == 0 { 3 } else { i % 3 }) };
        spec.regarding = row.map(|r| rows[r].clone());
        made.push((row, admin.create(spec).unwrap().id));
        if i % 4 == 0 {
            f.clock.advance_secs(1);
        }
    }
    let check = |f: &Fixture, made: &[(Option<usize>, Uuid)]| {
        let admin = f.engine.session("admin").unwrap();
        for (r, row) in rows.iter().enumerate() {
            let filter = Filter { regarding: Some(row.clone()), ..Filter::default() };
            let mut listed = vec![];
            let mut cursor = None;
            loop {
                let (page, next) = admin.list(&filter, cursor.as_ref(), 4).unwrap();
                listed.extend(page.iter().map(|j| j.id));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut expected: Vec<Uuid> = made.iter().filter(|(g, _)| *g == Some(r)).map(|(_, id)| *id).collect();
            expected.reverse();
            assert_eq!(listed, expected, "jobs regarding {row}");
            assert_eq!(admin.count(&filter).unwrap(), expected.len(), "count regarding {row}");
        }
        let none = Filter { regarding: Some(Regarding::parse("account:3").unwrap()), ..Filter::default() };
        assert_eq!(admin.count(&none).unwrap(), 0);
    };
    check(&f, &made);
    // Deleted: every fifth job (Canceled first, so that it may be deleted).
    let gone: Vec<Uuid> = made.iter().step_by(5).map(|(_, id)| *id).collect();
    for id in &gone {
        admin.act(*id, UserAction::Cancel).unwrap();
    }
    assert_eq!(admin.delete_jobs(&gone).unwrap().len(), gone.len());
    made.retain(|(_, id)| !gone.contains(id));
    check(&f, &made);
    drop(admin);
    let f = f.close_and_reopen();
    check(&f, &made);
    assert!(f.engine.state().check_indices().is_empty(), "{:?}", f.engine.state().check_indices());
}

/// A job is read whole (its name comes from its creation event) however
/// long its history, when its events took the slots a deleted job's left,
/// and after a reopen from a checkpoint, hot or after a thaw.
#[test]
fn a_job_is_read_whole_however_long_its_history_and_wherever_its_events_are_kept() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let later = t("2026-03-01T00:00:00Z");
    let old = admin.create(NewJob::new("old", OperationType::BULK_EMAIL)).unwrap();
    admin.act(old.id, UserAction::Postpone(later)).unwrap();
    admin.act(old.id, UserAction::Cancel).unwrap();
    admin.delete_jobs(&[old.id]).unwrap();
    // Its three chain entries are free; this job's first events take them.
    let busy = admin.create(NewJob::new("busy", OperationType::BULK_EMAIL)).unwrap();
    for _ in 0..400 {
        admin.act(busy.id, UserAction::Postpone(later)).unwrap();
        let j = admin.act(busy.id, UserAction::Resume).unwrap();
        assert_eq!(j.name, "busy");
    }
    let check = |f: &Fixture| {
        let admin = f.engine.session("admin").unwrap();
        let j = admin.get(busy.id).unwrap();
        assert_eq!((j.name.as_str(), j.status), ("busy", Status::READY));
        let h = admin.history(busy.id).unwrap();
        assert_eq!(h.len(), 801);
        assert!(matches!(admin.get(old.id), Err(Error::Domain(DomainError::NotFound { .. }))));
    };
    check(&f);
    drop(admin);
    let f = f.close_and_reopen();
    check(&f);
    // Completed, it may go cold at a checkpoint; a change thaws it.
    let admin = f.engine.session("admin").unwrap();
    admin.act(busy.id, UserAction::Cancel).unwrap();
    drop(admin);
    let f = f.close_and_reopen();
    let admin = f.engine.session("admin").unwrap();
    assert_eq!(admin.get(busy.id).unwrap().name, "busy");
    let again = admin.resubmit(busy.id, None).unwrap();
    assert_eq!(admin.get(again.id).unwrap().name, "busy");
    assert_eq!(admin.get(busy.id).unwrap().name, "busy");
    assert_eq!(admin.history(busy.id).unwrap().len(), 803);
}

#[test]
fn views_filter_by_workflow_regarding_type_and_status() {
    let f = Fixture::new();
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
    let count = |filter: Filter| admin.count(&filter).unwrap();
    assert_eq!(count(Filter { workflow: Some("welcome".into()), ..Filter::default() }), 20);
    assert_eq!(count(Filter { regarding: Some(Regarding::parse("contact:2").unwrap()), ..Filter::default() }), 6);
    assert_eq!(count(Filter { operationtype: Some(OperationType::BULK_EMAIL), ..Filter::default() }), 10);
    assert_eq!(count(Filter { regarding: Some(Regarding::parse("contact:99").unwrap()), ..Filter::default() }), 0);
    admin.act(made[4].id, UserAction::Cancel).unwrap();
    assert_eq!(count(Filter { status_reason: Some(StatusReason::Canceled), ..Filter::default() }), 1);
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
    let f = Fixture::new();
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
    let f = Fixture::new();
    let (job, live, midway) = {
        let (engine, clock) = (&f.engine, &f.clock);
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
    let f = f.reopen();
    let engine = &f.engine;
    let admin = engine.session("admin").unwrap();
    assert_eq!(admin.get(job.id).unwrap(), live);
    // The audit view: as it was between the postpone and the resume.
    let then = engine.replay_until(midway).unwrap();
    assert_eq!(then.status_of(job.id).unwrap(), Some(Status::WAITING));
    assert_eq!(engine.replay_until(t("2000-01-01T00:00:00Z")).unwrap().status_of(job.id).unwrap(), None);
    // And as of a sequence number: right after each event of the history.
    for h in admin.history(job.id).unwrap() {
        assert_eq!(engine.replay_until_seq(h.seq).unwrap().status_of(job.id).unwrap(), Some(h.status));
    }
}

#[test]
fn time_never_goes_backwards() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.create(NewJob::new("a", OperationType::WORKFLOW)).unwrap();
    f.clock.set(t("2026-01-30T00:00:00Z"));
    let before = f.engine.next_seq();
    assert!(matches!(admin.create(NewJob::new("b", OperationType::WORKFLOW)), Err(Error::TimeWentBackwards { .. })));
    assert_eq!(f.engine.next_seq(), before);
}

#[test]
fn imports_are_validated_and_all_or_nothing() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let good = imported(Status::FAILED, OperationType::WORKFLOW);
    let mut bad = imported(Status::READY, OperationType::WORKFLOW);
    bad.completedon = Some(t("2026-01-02T00:00:00Z"));
    assert!(matches!(
        admin.import(vec![good.clone(), bad]),
        Err(Error::Domain(DomainError::Invalid { what: "job", .. }))
    ));
    assert_eq!(admin.count(&Filter::default()).unwrap(), 0);
    assert_eq!(admin.import(vec![good.clone()]).unwrap(), 1);
    assert!(
        matches!(admin.import(vec![good]), Err(Error::Domain(DomainError::AlreadyExists { kind: "job", .. }))),
        "an id imported twice"
    );
    let alice_cannot = {
        admin.add_user("alice", "root", &["basic-user"]).unwrap();
        f.engine.session("alice").unwrap().import(vec![imported(Status::READY, OperationType::WORKFLOW)])
    };
    assert!(matches!(alice_cannot, Err(Error::Domain(DomainError::Denied { .. }))));
}

#[test]
fn loading_histories_checks_every_event_like_a_live_one() {
    use joblog::domain::{Action, Actor, Envelope, Event, EVENT_VERSION};
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let at = |s: &str| t(s);
    let env = |when: &str, event: Event| Envelope { version: EVENT_VERSION, at: at(when), actor: Actor::System, event };
    let job = Job::new("loaded", OperationType::WORKFLOW, "admin", "root", at("2026-01-01T00:00:00Z"));
    let step = |action, from, to| support::step(job.id, action, from, to);
    let good = vec![
        env("2026-01-01T00:00:00Z", Event::JobCreated(Box::new(job.clone()))),
        env("2026-01-01T00:00:01Z", Event::Transition(step(Action::Lock, Status::READY, Status::IN_PROGRESS))),
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Succeed, Status::IN_PROGRESS, Status::SUCCEEDED))),
    ];
    // Out of order in time, an impossible step, a step from the wrong status: refused whole.
    // (Swapping two events would be refused for their statuses first: move
    // the time of the last one before the one ahead of it instead.)
    let mut backwards = good.clone();
    backwards[2].at = at("2026-01-01T00:00:00.5Z");
    assert!(matches!(admin.load(backwards), Err(Error::TimeWentBackwards { .. })));
    let mut impossible = good.clone();
    impossible[2] =
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Succeed, Status::IN_PROGRESS, Status::CANCELED)));
    assert!(matches!(admin.load(impossible), Err(Error::Domain(DomainError::Invalid { what: "event", .. }))));
    let mut wrong_from = good.clone();
    wrong_from[2] =
        env("2026-01-01T00:00:02Z", Event::Transition(step(Action::Lock, Status::READY, Status::IN_PROGRESS)));
    assert!(matches!(admin.load(wrong_from), Err(Error::Domain(DomainError::Refused { .. }))));
    // An envelope labeled with an older schema version is never written.
    let mut old_version = good.clone();
    old_version[1].version = 1;
    assert!(matches!(
        admin.load(old_version),
        Err(Error::Domain(DomainError::Invalid { what: "event", reason })) if reason.contains("schema version 1")
    ));
    assert_eq!(admin.count(&Filter::default()).unwrap(), 0);
    assert_eq!(admin.load(good).unwrap(), 3);
    let loaded = admin.get(job.id).unwrap();
    assert_eq!(loaded.status, Status::SUCCEEDED);
    assert_eq!(loaded.completedon, Some(at("2026-01-01T00:00:02Z")));
    assert_eq!(admin.history(job.id).unwrap().len(), 3);
}

/// `replay --until T` follows business time: imported rows (written when
/// they are imported, after newer events) replay at their own dates, as
/// far as their times tell (`Job::as_of`): absent before `createdon`, Ready
/// until `startedon`, In Progress until `modifiedon`, then as imported
/// (docs/domain.md, "Imported history").
#[test]
fn replay_shows_imported_history_at_its_own_dates() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let live = admin.create(NewJob::new("live", OperationType::WORKFLOW)).unwrap();
    f.clock.advance_secs(10);
    let mut failed = imported(Status::FAILED, OperationType::WORKFLOW);
    failed.createdon = t("2025-01-01T00:00:00Z");
    failed.startedon = Some(t("2025-02-01T00:00:00Z"));
    failed.completedon = Some(t("2025-03-01T00:00:00Z"));
    failed.modifiedon = t("2025-03-01T00:00:00Z");
    failed.message = Some("boom".into());
    failed.errorcode = Some(-2147204346);
    failed.executiontimespan_ms = 5_000;
    let mut open = imported(Status::READY, OperationType::WORKFLOW);
    open.createdon = t("2025-06-01T00:00:00Z");
    open.modifiedon = t("2025-06-01T00:00:00Z");
    assert_eq!(admin.import(vec![failed.clone(), open.clone()]).unwrap(), 2);

    let at = |when: &str| f.engine.replay_until(t(when)).unwrap();
    let statuses = |when: &str| {
        let then = at(when);
        [failed.id, open.id, live.id].map(|id| then.status_of(id).unwrap())
    };
    assert_eq!(statuses("2024-12-31T00:00:00Z"), [None, None, None]);
    assert_eq!(statuses("2025-01-15T00:00:00Z"), [Some(Status::READY), None, None]);
    assert_eq!(statuses("2025-02-15T00:00:00Z"), [Some(Status::IN_PROGRESS), None, None]);
    assert_eq!(statuses("2025-03-15T00:00:00Z"), [Some(Status::FAILED), None, None]);
    assert_eq!(statuses("2025-07-01T00:00:00Z"), [Some(Status::FAILED), Some(Status::READY), None]);
    assert_eq!(
        statuses("2026-01-31T12:00:00Z"),
        [Some(Status::FAILED), Some(Status::READY), Some(Status::READY)],
        "the live job from its creation on"
    );

    let ready = at("2025-01-15T00:00:00Z").job(failed.id).unwrap();
    assert_eq!((ready.startedon, ready.completedon, ready.modifiedon), (None, None, failed.createdon));
    assert_eq!((ready.message, ready.errorcode, ready.executiontimespan_ms), (None, None, 0));
    let running = at("2025-02-15T00:00:00Z").job(failed.id).unwrap();
    assert_eq!((running.startedon, running.completedon), (failed.startedon, None));
    assert_eq!(running.message, None, "the imported message is not yet");
    assert_eq!(at("2025-03-15T00:00:00Z").job(failed.id).unwrap(), admin.get(failed.id).unwrap());
    // After the import, the whole store is as live (the verify's own replay).
    assert!(f.engine.verify().ok(), "{:?}", f.engine.verify().problems);
}

// ---------------------------------------------------------------------------
// Depths on trees of four levels, and what bulk actions may touch.

use joblog::domain::{Actor, DeletionCriteria, Depth, Envelope, Event, Privilege, RetentionPolicy, EVENT_VERSION};
use joblog::engine::NewBulkDelete;

const DEPTHS: [Depth; 5] = [Depth::None, Depth::User, Depth::BusinessUnit, Depth::ParentChild, Depth::Organization];

/// root ─ l1 ─ l2 ─ l3   (four levels), and a sibling tree root ─ side.
/// One owner per unit: owner-root, owner-l1, owner-l2, owner-l3, owner-side;
/// each owns one Ready job (returned by owner).
fn four_levels(f: &Fixture) -> std::collections::BTreeMap<&'static str, Uuid> {
    let admin = f.engine.session("admin").unwrap();
    for (unit, parent) in [("l1", "root"), ("l2", "l1"), ("l3", "l2"), ("side", "root")] {
        admin.add_business_unit(unit, parent).unwrap();
    }
    let mut jobs = std::collections::BTreeMap::new();
    for (owner, unit) in
        [("owner-root", "root"), ("owner-l1", "l1"), ("owner-l2", "l2"), ("owner-l3", "l3"), ("owner-side", "side")]
    {
        admin.add_user(owner, unit, &["basic-user"]).unwrap();
        let mut spec = NewJob::new(&format!("{owner}'s job"), OperationType::BULK_EMAIL);
        spec.owner = Some(owner.into());
        jobs.insert(owner, admin.create(spec).unwrap().id);
    }
    jobs
}

/// Parent: Child (`docs/domain.md` §6, "Parent: Child Business Units") is the
/// user's unit and every unit below it, at any depth: from l1 it reaches
/// l2 and l3 (a grandchild), never root or a sibling tree. Every depth,
/// for reads (get, list, count) and writes (cancel), from l1 and from l2.
#[test]
fn every_depth_reaches_exactly_its_units_on_a_four_level_tree() {
    let f = Fixture::new();
    let jobs = four_levels(&f);
    let admin = f.engine.session("admin").unwrap();
    let owners = ["owner-root", "owner-l1", "owner-l2", "owner-l3", "owner-side"];
    for depth in DEPTHS {
        let role = format!("rw-{depth:?}");
        admin.add_role(Role::new(&role, [(Privilege::Read, depth), (Privilege::Write, depth)])).unwrap();
        for unit in ["l1", "l2"] {
            let user = format!("{unit}-{depth:?}");
            admin.add_user(&user, unit, &[&role]).unwrap();
            // The user's own job, in its unit.
            let mut spec = NewJob::new("own", OperationType::BULK_EMAIL);
            spec.owner = Some(user.clone());
            let own = admin.create(spec).unwrap().id;
            let reaches = |owner: &str| -> bool {
                let owner_unit = owner.strip_prefix("owner-").unwrap();
                match depth {
                    Depth::None => false,
                    Depth::User => false,
                    Depth::BusinessUnit => owner_unit == unit,
                    // Below (or at) the user's unit, through any number of levels.
                    Depth::ParentChild => match unit {
                        "l1" => ["l1", "l2", "l3"].contains(&owner_unit),
                        _ => ["l2", "l3"].contains(&owner_unit),
                    },
                    Depth::Organization => true,
                }
            };
            let s = f.engine.session(&user).unwrap();
            let (listed, _) = s.list(&Filter::default(), None, 1000).unwrap();
            let own_seen = depth != Depth::None;
            for owner in owners {
                let want = reaches(owner);
                let id = jobs[owner];
                match s.get(id) {
                    Ok(_) => assert!(want, "{user} read {owner}'s job"),
                    Err(Error::Domain(DomainError::Denied { privilege: Privilege::Read, has, .. })) => {
                        assert!(!want, "{user} could not read {owner}'s job");
                        assert_eq!(has, depth);
                    }
                    Err(e) => panic!("{user} reading {owner}'s job: {e}"),
                }
                assert_eq!(listed.iter().any(|j| j.id == id), want, "{user} lists {owner}'s job");
            }
            assert_eq!(listed.iter().any(|j| j.id == own), own_seen, "{user} lists its own job");
            assert_eq!(s.count(&Filter::default()).unwrap(), listed.len(), "{user} counts what it lists");
            // Writes: a pause needs In Progress, so try a postpone (Ready → Waiting)
            // and undo it with a resume by the administrator.
            let later = f.now().plus_micros(3_600_000_000);
            for owner in owners {
                let before = f.engine.next_seq();
                match s.act(jobs[owner], UserAction::Postpone(later)) {
                    Ok(_) => {
                        assert!(reaches(owner), "{user} wrote {owner}'s job");
                        admin.act(jobs[owner], UserAction::Resume).unwrap();
                    }
                    Err(Error::Domain(DomainError::Denied { privilege: Privilege::Write, has, .. })) => {
                        assert!(!reaches(owner), "{user} could not write {owner}'s job");
                        assert_eq!(has, depth);
                        assert_eq!(f.engine.next_seq(), before, "a refused write wrote");
                    }
                    Err(e) => panic!("{user} postponing {owner}'s job: {e}"),
                }
            }
        }
    }
}

/// Every action that needs Organization depth refuses each lesser depth of
/// its privilege (Parent: Child from the root unit included: it covers every
/// unit, and still is not Organization), writes nothing, and is allowed at
/// Organization.
#[test]
fn organization_only_actions_refuse_every_lesser_depth() {
    type Act = fn(&joblog::engine::Session, &str, Timestamp) -> Result<(), Error>;
    let actions: [(&str, Privilege, Act); 14] = [
        ("delete now", Privilege::Delete, |s, _, _| {
            let c = DeletionCriteria::platform_default();
            s.delete_now(&c, 10).map(|_| ())
        }),
        ("create a bulk delete job", Privilege::Delete, |s, n, _| {
            s.create_bulk_delete(&NewBulkDelete {
                name: n.into(),
                criteria: DeletionCriteria::platform_default(),
                start: None,
                recurrence: None,
            })
            .map(|_| ())
        }),
        ("set retention", Privilege::Delete, |s, _, _| s.set_retention(RetentionPolicy::default()).map(|_| ())),
        ("import", Privilege::Create, |s, _, _| {
            let mut j = Job::new("imported", OperationType::WORKFLOW, "admin", "root", t("2025-01-01T00:00:00Z"));
            j.status = Status::CANCELED;
            j.completedon = Some(j.createdon);
            s.import(vec![j]).map(|_| ())
        }),
        ("load", Privilege::Create, |s, _, now| {
            let j = Job::new("loaded", OperationType::WORKFLOW, "admin", "root", now);
            let env = Envelope {
                version: EVENT_VERSION,
                at: now,
                actor: Actor::User("admin".into()),
                event: Event::JobCreated(Box::new(j)),
            };
            s.load(vec![env]).map(|_| ())
        }),
        ("add a business unit", Privilege::Write, |s, n, _| s.add_business_unit(n, "root")),
        ("add a role", Privilege::Write, |s, n, _| s.add_role(Role::new(n, []))),
        ("add a user", Privilege::Write, |s, n, _| s.add_user(n, "root", &[])),
        ("deactivate a user", Privilege::Write, |s, n, _| s.deactivate_user(&n.replace("made-by-", "victim-"))),
        ("save a workflow", Privilege::Write, |s, n, _| {
            s.save_workflow(WorkflowDefinition { id: n.into(), name: n.into(), owner: "admin".into(), active: true })
        }),
        ("add a workflow", Privilege::Write, |s, n, _| {
            s.add_workflow(WorkflowDefinition { id: n.into(), name: n.into(), owner: "admin".into(), active: true })
        }),
        ("give a workflow an owner", Privilege::Write, |s, _, _| s.set_workflow_owner("wf", "owner-l1").map(|_| ())),
        ("reassign", Privilege::Assign, |s, _, _| s.reassign("wf", "owner-l1", "owner-l2").map(|_| ())),
        ("create a bulk delete job (retention's path)", Privilege::Delete, |s, n, _| {
            s.create_bulk_delete(&NewBulkDelete {
                name: format!("{n} daily"),
                criteria: DeletionCriteria::platform_default(),
                start: None,
                recurrence: Some("FREQ=DAILY".into()),
            })
            .map(|_| ())
        }),
    ];
    let f = Fixture::new();
    four_levels(&f);
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("victim", "l3", &["basic-user"]).unwrap();
    admin
        .save_workflow(WorkflowDefinition {
            id: "wf".into(),
            name: "wf".into(),
            owner: "owner-l1".into(),
            active: true,
        })
        .unwrap();
    let mut n = 0;
    for (what, privilege, act) in actions {
        for depth in DEPTHS {
            for unit in ["root", "l1"] {
                n += 1;
                let role = format!("role-{n}");
                // Every other privilege at Organization, so only this one decides.
                let privileges = Privilege::ALL.map(|p| (p, if p == privilege { depth } else { Depth::Organization }));
                admin.add_role(Role::new(&role, privileges)).unwrap();
                let user = format!("u{n}");
                admin.add_user(&user, unit, &[&role]).unwrap();
                let s = f.engine.session(&user).unwrap();
                // A user of its own for each deactivation (deactivating twice is refused).
                admin.add_user(&format!("victim-{n}"), "l3", &["basic-user"]).unwrap();
                let before = f.engine.next_seq();
                let got = act(&s, &format!("made-by-{n}"), f.now());
                if depth == Depth::Organization {
                    if let Err(e) = got {
                        panic!("{what} at Organization depth ({user} in {unit}): {e}");
                    }
                } else {
                    match got {
                        Err(Error::Domain(DomainError::Denied { privilege: p, has, .. })) => {
                            assert_eq!((p, has), (privilege, depth), "{what}")
                        }
                        other => panic!("{what} with {privilege:?} at {depth:?} ({user} in {unit}): {other:?}"),
                    }
                    assert_eq!(f.engine.next_seq(), before, "{what} refused, yet wrote");
                }
                f.clock.advance_secs(1);
            }
        }
    }
}

/// A bulk action (every user action with `act_on_matching`) counts and
/// names only the jobs the acting user can read, acts only on those it may
/// write, and leaves every other job as it was.
#[test]
fn bulk_actions_touch_only_what_the_user_can_read() {
    let f = Fixture::new();
    let jobs = four_levels(&f);
    let admin = f.engine.session("admin").unwrap();
    admin
        .add_role(Role::new(
            "reads-tree-writes-own",
            [(Privilege::Read, Depth::ParentChild), (Privilege::Write, Depth::User)],
        ))
        .unwrap();
    // Readers in l1: a basic user, a unit manager, a tree reader who writes only its own.
    admin.add_user("basic", "l1", &["basic-user"]).unwrap();
    admin.add_user("manager", "l1", &["business-unit-manager"]).unwrap();
    admin.add_user("tree", "l1", &["reads-tree-writes-own"]).unwrap();
    let mut own = std::collections::BTreeMap::new();
    for user in ["basic", "manager", "tree"] {
        let mut spec = NewJob::new("own", OperationType::BULK_EMAIL);
        spec.owner = Some(user.into());
        own.insert(user, admin.create(spec).unwrap().id);
    }
    let all: Vec<Uuid> = jobs.values().chain(own.values()).copied().collect();
    let later = t("2026-06-01T00:00:00Z");
    for (user, readable, writable) in [
        ("basic", vec![own["basic"]], vec![own["basic"]]),
        (
            "manager",
            vec![own["basic"], own["manager"], own["tree"], jobs["owner-l1"]],
            vec![own["basic"], own["manager"], own["tree"], jobs["owner-l1"]],
        ),
        (
            "tree",
            vec![own["basic"], own["manager"], own["tree"], jobs["owner-l1"], jobs["owner-l2"], jobs["owner-l3"]],
            vec![own["tree"]],
        ),
    ] {
        let s = f.engine.session(user).unwrap();
        for action in [UserAction::Postpone(later), UserAction::Resume, UserAction::Cancel] {
            let before: Vec<Status> = all.iter().map(|&id| admin.get(id).unwrap().status).collect();
            let o = s.act_on_matching(action, &Filter::default()).unwrap();
            assert_eq!(o.matched, readable.len(), "{user} {action:?}: matched only what it can read");
            let named: Vec<Uuid> = o.changed.iter().copied().chain(o.refused.iter().map(|r| r.0)).collect();
            assert_eq!(named.len(), o.matched, "{user} {action:?}");
            for id in &named {
                assert!(readable.contains(id), "{user} {action:?} named {id}, which it cannot read");
            }
            for id in &o.changed {
                assert!(writable.contains(id), "{user} {action:?} changed {id}, which it may not write");
            }
            for (k, &id) in all.iter().enumerate() {
                let now = admin.get(id).unwrap().status;
                if !o.changed.contains(&id) {
                    assert_eq!(now, before[k], "{user} {action:?} changed {id} without saying so");
                }
            }
            f.clock.advance_secs(1);
        }
    }
}

/// Issue 12, section 4: the limits hold in the engine itself, for every
/// path (create, import, load, administration), with typed refusals that
/// name the field; and a refused write changes nothing.
#[test]
fn every_write_path_checks_the_limits_of_its_strings() {
    use joblog::domain::{Actor, Envelope, Event, EVENT_VERSION};
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let before = f.engine.next_seq();
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
    assert_eq!(f.engine.next_seq(), before, "nothing refused was written");
    // At the limit: accepted.
    let mut spec = NewJob::new(&"n".repeat(256), OperationType::WORKFLOW);
    spec.regarding = Some(Regarding { table: "t".repeat(128), id: "i".repeat(256) });
    spec.dependency_token = Some("d".repeat(128));
    admin.create(spec).unwrap();
}

#[test]
fn a_handlers_message_is_kept_up_to_the_limit_never_refused() {
    use joblog::engine::ServiceStep;
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let job = admin.create(NewJob::new("j", OperationType::WORKFLOW)).unwrap();
    f.engine.worker("w").step(job.id, ServiceStep::Lock).unwrap();
    let message = format!("\u{1b}[2J{}", "e".repeat(150_000));
    f.engine.worker("w").step(job.id, ServiceStep::Fail { code: i32::MIN, message }).unwrap();
    let done = admin.get(job.id).unwrap();
    let kept = done.message.unwrap();
    assert_eq!(kept.chars().count(), joblog::domain::MAX_MESSAGE_CHARS);
    assert!(kept.starts_with("\u{1b}[2J") && kept.ends_with('…'));
    assert_eq!(done.errorcode, Some(i32::MIN + 1), "the reserved code is not silently dropped");
}

#[test]
fn the_last_administrator_cannot_be_deactivated_and_reactivation_replays() {
    let f = Fixture::new();
    {
        let engine = &f.engine;
        let admin = engine.session("admin").unwrap();
        let before = engine.next_seq();
        assert!(matches!(
            admin.deactivate_user("admin"),
            Err(Error::Domain(DomainError::LastAdministrator { name })) if name == "admin"
        ));
        assert_eq!(engine.next_seq(), before);
        admin.add_user("alice", "root", &["basic-user"]).unwrap();
        admin.deactivate_user("alice").unwrap();
        assert!(matches!(
            engine.session("alice"),
            Err(Error::Domain(DomainError::UserDeactivated { name })) if name == "alice"
        ));
        let before = engine.next_seq();
        assert!(matches!(
            admin.deactivate_user("alice"),
            Err(Error::Domain(DomainError::UserAlreadyInState { active: false, .. }))
        ));
        assert_eq!(engine.next_seq(), before, "a second deactivation writes nothing");
        assert!(matches!(admin.reactivate_user("nobody"), Err(Error::Domain(DomainError::NotFound { .. }))));
        admin.reactivate_user("alice").unwrap();
        assert!(matches!(
            admin.reactivate_user("alice"),
            Err(Error::Domain(DomainError::UserAlreadyInState { active: true, .. }))
        ));
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
    let f = f.reopen();
    let engine = &f.engine;
    assert!(engine.session("alice").is_ok());
    assert!(engine.session("admin").is_err());
    let replayed = engine.replay_until(t("2100-01-01T00:00:00Z")).unwrap();
    assert!(replayed.directory().user("alice").unwrap().active);
}

#[test]
fn a_service_refuses_more_workers_than_the_limit() {
    use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
    let f = Fixture::new();
    let workers = joblog::domain::limits::MAX_WORKERS + 1;
    let service = Service::new(&f.engine, ServiceConfig { workers, ..ServiceConfig::default() }, Registry::new());
    let before = f.engine.next_seq();
    assert!(matches!(service.run(RunUntil::Once), Err(Error::Domain(DomainError::Invalid { what: "workers", .. }))));
    assert_eq!(f.engine.next_seq(), before, "nothing written");
}

/// A resubmitted workflow run is owned as `submit` would own it (by the
/// workflow's owner, not the administrator who resubmits it), and a user
/// who may read the old job but not act on it may not resubmit it.
#[test]
fn a_resubmitted_run_belongs_to_its_workflow_owner_and_needs_write_on_the_old_job() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    // Reads and creates for everyone, acts on its own jobs only.
    use joblog::domain::{Depth, Privilege};
    let role = [(Privilege::Read, Depth::Organization), (Privilege::Create, Depth::Organization)];
    admin.add_role(Role::new("clerk", role.into_iter().chain([(Privilege::Write, Depth::User)]))).unwrap();
    admin.add_user("carol", "root", &["clerk"]).unwrap();
    let wf = WorkflowDefinition { id: "welcome".into(), name: "Welcome".into(), owner: "alice".into(), active: true };
    admin.save_workflow(wf).unwrap();
    let spec = NewJob { workflow: Some("welcome".into()), ..NewJob::new("run", OperationType::WORKFLOW) };
    let old = admin.create(spec).unwrap();
    f.clock.advance_secs(1);
    admin.act(old.id, UserAction::Cancel).unwrap();
    let carol = f.engine.session("carol").unwrap();
    carol.get(old.id).expect("the clerk reads every job");
    let before = f.engine.next_seq();
    assert!(matches!(carol.resubmit(old.id, None), Err(Error::Domain(DomainError::Denied { .. }))));
    assert_eq!(f.engine.next_seq(), before, "nothing written");
    let new = admin.resubmit(old.id, None).unwrap();
    assert_eq!((new.owner.as_str(), new.workflow.as_deref()), ("alice", Some("welcome")));
    // Once only: a second resubmission of the same job is refused.
    let before = f.engine.next_seq();
    let again = admin.resubmit(old.id, None);
    assert!(
        matches!(&again, Err(Error::Domain(DomainError::NotResubmittable { why, .. })) if why.contains(&new.id.to_string())),
        "{again:?}"
    );
    assert_eq!(f.engine.next_seq(), before, "nothing written");
}

/// `Session::resubmit` (issue 13): a new Ready job with the old one's
/// definition, linked by correlation id, both histories saying so; the new
/// job outlives the old one's deletion and compaction, and a reopen (from
/// the log and from a checkpoint) reads the same.
#[test]
fn a_resubmitted_job_outlives_the_deletion_of_the_old_one() {
    let f = Fixture::new();
    let (engine, clock) = (&f.engine, &f.clock);
    let admin = engine.session("admin").unwrap();
    let mut spec = NewJob::new("export", OperationType::WORKFLOW);
    spec.regarding = Some(Regarding { table: "report".into(), id: "7".into() });
    spec.data = b"opaque".to_vec();
    let old = admin.create(spec).unwrap();
    // Open: refused by kind, nothing written.
    let before = engine.next_seq();
    assert!(matches!(admin.resubmit(old.id, None), Err(Error::Domain(DomainError::NotResubmittable { .. }))));
    assert_eq!(engine.next_seq(), before);
    clock.advance_secs(1);
    admin.act(old.id, UserAction::Cancel).unwrap();
    clock.advance_secs(1);
    let new = admin.resubmit(old.id, None).unwrap();
    assert_eq!(
        (new.status, new.correlationid, new.regarding.clone()),
        (Status::READY, Some(old.id), old.regarding.clone())
    );
    assert_eq!((new.name.as_str(), new.data.as_slice()), ("export", &b"opaque"[..]));
    let said = |id| admin.history(id).unwrap().last().unwrap().message.clone().unwrap();
    assert_eq!(said(old.id), format!("resubmitted as {}", new.id));
    assert_eq!(said(new.id), format!("resubmission of {}", old.id));
    // The old job deleted and compacted away: the new one still reads.
    clock.advance_secs(1);
    let criteria = joblog::domain::DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Canceled],
        older_than_days: 0,
    };
    clock.advance_secs(1);
    let d = admin.delete(&criteria, 10).unwrap();
    assert_eq!(d.deleted, 1);
    engine.compact().unwrap();
    assert!(matches!(admin.get(old.id), Err(Error::Domain(DomainError::NotFound { kind: "job", .. }))));
    assert_eq!(said(new.id), format!("resubmission of {}", old.id));
    drop(admin);
    let mut f = f.close_and_reopen();
    for checkpoint in [true, false] {
        if !checkpoint {
            f = f.reopen_after(|dir| std::fs::remove_dir_all(dir.join("snapshots")).unwrap());
        }
        let engine = &f.engine;
        assert_eq!(engine.open_report().checkpoint_seq.is_some(), checkpoint);
        let admin = engine.session("admin").unwrap();
        assert_eq!(admin.get(new.id).unwrap().correlationid, Some(old.id));
        assert!(engine.verify().problems.is_empty(), "{:?}", engine.verify().problems);
        drop(admin);
    }
}

/// The store's policy (issue 13): set by administrators only, checked,
/// kept across a checkpoint, and replayed to any time.
#[test]
fn the_store_policy_is_checked_kept_and_replayed() {
    let f = Fixture::new();
    let (engine, clock) = (&f.engine, &f.clock);
    let admin = engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    let alice = engine.session("alice").unwrap();
    let before = engine.next_seq();
    assert!(matches!(alice.set_policy("retry.max_retries", Some(1)), Err(Error::Domain(DomainError::Denied { .. }))));
    assert!(matches!(
        admin.set_policy("retry.nope", Some(1)),
        Err(Error::Domain(DomainError::Invalid { what: "policy key", .. }))
    ));
    assert!(matches!(
        admin.set_policy("backoff.jitter_percent", Some(51)),
        Err(Error::Domain(DomainError::Invalid { what: "policy value", .. }))
    ));
    assert_eq!(engine.next_seq(), before, "refusals write nothing");
    clock.advance_secs(10);
    assert!(admin.set_policy("backoff.threshold", Some(5)).unwrap());
    let set_at = engine.now();
    clock.advance_secs(10);
    assert!(admin.set_policy("backoff.threshold", Some(9)).unwrap());
    assert!(!admin.set_policy("backoff.threshold", Some(9)).unwrap(), "the same value: nothing written");
    assert_eq!(engine.replay_until(set_at).unwrap().policy().value("backoff.threshold"), Some(5));
    assert_eq!(engine.replay_until(t("2026-01-31T12:00:00Z")).unwrap().policy().value("backoff.threshold"), Some(3));
    let generation = engine.state().policy().generation();
    drop((admin, alice));
    let f = f.close_and_reopen();
    let engine = &f.engine;
    assert!(engine.open_report().checkpoint_seq.is_some());
    assert_eq!(engine.open_report().events_replayed, 0, "from the checkpoint alone");
    assert_eq!(engine.state().policy().value("backoff.threshold"), Some(9));
    assert_eq!(engine.state().policy().generation(), generation);
}

/// Each kind of error comes as its own typed variant, where an embedder
/// can match it: a job not due yet, a deactivated user, a user already in
/// the state asked for, a salvage target that is not new and empty.
#[test]
fn each_refusal_has_its_own_typed_variant() {
    use joblog::engine::{salvage, SalvageOptions, ServiceStep};
    let f = Fixture::new();
    let engine = &f.engine;
    let admin = engine.session("admin").unwrap();
    // A service step before the job's time: not due (not bad input).
    let later = f.now().plus_micros(3_600_000_000);
    let mut spec = NewJob::new("later", OperationType::WORKFLOW);
    spec.postponeuntil = Some(later);
    let job = admin.create(spec).unwrap();
    let e = engine.worker("w").step(job.id, ServiceStep::Lock).unwrap_err();
    assert!(
        matches!(&e, Error::Domain(DomainError::NotDue { job: id, until: Some(u) }) if *id == job.id && *u == later),
        "{e:?}"
    );
    assert!(e.to_string().contains("is not due until"), "{e}");
    // A job that is not there: the one not-found, like a user's.
    let ghost = Uuid::now_v7();
    let e = engine.worker("w").step(ghost, ServiceStep::Lock).unwrap_err();
    assert!(
        matches!(&e, Error::Domain(DomainError::NotFound { kind: "job", name }) if *name == ghost.to_string()),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("no job {ghost}"));
    // A deactivated user cannot act, nor be given a workflow's runs.
    admin
        .save_workflow(WorkflowDefinition { id: "wf".into(), name: "wf".into(), owner: "admin".into(), active: true })
        .unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    admin.deactivate_user("alice").unwrap();
    let e = engine.session("alice").err().unwrap();
    assert!(matches!(&e, Error::Domain(DomainError::UserDeactivated { name }) if name == "alice"), "{e:?}");
    let e = admin.reassign("wf", "admin", "alice").unwrap_err();
    assert!(matches!(&e, Error::Domain(DomainError::UserDeactivated { name }) if name == "alice"), "{e:?}");
    // A salvage target that holds anything is refused before anything is read.
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("x"), b"x").unwrap();
    let e = salvage(f.path(), target.path(), &SalvageOptions::default()).unwrap_err();
    assert!(matches!(&e, Error::SalvageTarget { target: t, .. } if t == target.path()), "{e:?}");
    assert!(e.to_string().contains("not empty"), "{e}");
}

/// A bulk action's refusals are typed: "not the user's to change" is told
/// from "the status does not allow it" by variant, not by text.
#[test]
fn bulk_refusals_are_typed() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin
        .add_role(Role::new("reader", [(joblog::domain::Privilege::Read, joblog::domain::Depth::Organization)]))
        .unwrap();
    admin.add_user("alice", "root", &["basic-user", "reader"]).unwrap();
    let theirs = admin.create(NewJob::new("admin's", OperationType::WORKFLOW)).unwrap();
    let mut spec = NewJob::new("alice's", OperationType::WORKFLOW);
    spec.owner = Some("alice".into());
    let hers = admin.create(spec).unwrap();
    admin.act(hers.id, UserAction::Cancel).unwrap();
    let done = imported(Status::SUCCEEDED, OperationType::WORKFLOW);
    admin.import(vec![done.clone()]).unwrap();
    let alice = f.engine.session("alice").unwrap();
    let o = alice.preview_on_matching(UserAction::Cancel, &Filter::default()).unwrap();
    assert_eq!(o.matched, 3);
    let why = |id: Uuid| o.refused.iter().find(|(r, _)| *r == id).map(|(_, e)| e.clone()).unwrap();
    assert!(matches!(why(theirs.id), DomainError::Denied { .. }), "{:?}", why(theirs.id));
    assert!(matches!(why(hers.id), DomainError::Refused { .. }), "{:?}", why(hers.id));
    assert!(matches!(why(done.id), DomainError::Denied { .. }), "imported as admin's: {:?}", why(done.id));
    assert_eq!(o.refused_by.get("not the user's to change"), Some(&2));
}

/// The log's damage and newer files come under the engine's one variant
/// for each, with the file named.
#[test]
fn the_logs_kinds_map_onto_the_engines_variants() {
    use joblog::log::format::SegmentHeader;
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    drop(admin);
    let dir = f.path().to_path_buf();
    let config = f.config.clone();
    let clock = f.clock.clone();
    let Fixture { dir: keep, engine, .. } = f;
    engine.close().unwrap();
    let seg = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let good = std::fs::read(&seg).unwrap();
    let open = || joblog::engine::Engine::open(&dir, config.clone(), clock.clone()).err().unwrap();
    // A segment of a newer format.
    let mut header = SegmentHeader::decode(&good).unwrap();
    header.format_version += 1;
    let mut newer = good.clone();
    newer[..joblog::log::HEADER_LEN].copy_from_slice(&header.encode());
    std::fs::write(&seg, &newer).unwrap();
    let e = open();
    assert!(matches!(&e, Error::NewerVersion { file: Some(p), .. } if *p == seg), "{e:?}");
    assert!(e.to_string().contains("upgrade joblog"), "{e}");
    // A damaged segment header.
    let mut damaged = good.clone();
    damaged[0] ^= 0xff;
    std::fs::write(&seg, &damaged).unwrap();
    let e = open();
    assert!(matches!(&e, Error::Corrupt { file: Some(p), offset: Some(0), .. } if *p == seg), "{e:?}");
    assert!(e.is_corruption());
    std::fs::write(&seg, &good).unwrap();
    drop(keep);
}

#[test]
fn writing_while_this_thread_holds_the_state_is_refused_not_a_hang() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let job = admin.create(NewJob::new("a", OperationType::BULK_EMAIL)).unwrap();
    let before = f.engine.next_seq();
    {
        let state = f.engine.state();
        // Refused before anything reaches the log.
        let refused = || assert_eq!(f.engine.next_seq(), before);
        assert_eq!(state.status_of(job.id).unwrap(), Some(Status::READY));
        // Every path that writes, on the thread holding the state.
        assert!(matches!(admin.create(NewJob::new("b", OperationType::BULK_EMAIL)), Err(Error::StateHeld)));
        assert!(matches!(admin.act(job.id, UserAction::Cancel), Err(Error::StateHeld)));
        let step = f.engine.worker("w").step(job.id, joblog::ServiceStep::Lock);
        assert!(matches!(step, Err(Error::StateHeld)));
        assert!(matches!(f.engine.compact(), Err(Error::StateHeld)));
        refused();
        // Reads go on, and another thread's write waits for the state, not forever.
        assert_eq!(admin.get(job.id).unwrap().status, Status::READY);
        let other = admin.clone();
        let writer = std::thread::spawn(move || other.act(job.id, UserAction::Cancel).map(|j| j.status));
        std::thread::sleep(std::time::Duration::from_millis(50));
        // With that writer queued for the state, this thread reads again
        // (a session's read, a second guard): it joins the readers instead
        // of queueing behind the writer, which waits for this thread. A
        // watchdog turns a deadlock into a failure instead of a hang.
        let read = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watched = read.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(10));
            if !watched.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!("deadlock: a read on the thread holding the state waited for a queued writer");
                std::process::exit(101);
            }
        });
        assert_eq!(admin.get(job.id).unwrap().status, Status::READY);
        assert_eq!(f.engine.state().status_of(job.id).unwrap(), Some(Status::READY));
        read.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(state);
        assert_eq!(writer.join().unwrap().unwrap(), Status::CANCELED);
    }
    // Dropped: this thread writes again.
    admin.create(NewJob::new("c", OperationType::BULK_EMAIL)).unwrap();
}

#[test]
fn deleting_needs_the_delete_privilege_on_every_path() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    let alice = f.engine.session("alice").unwrap();
    let criteria = joblog::domain::DeletionCriteria {
        types: vec![OperationType::WORKFLOW],
        reasons: vec![StatusReason::Canceled],
        older_than_days: 0,
    };
    let before = f.engine.next_seq();
    assert!(matches!(alice.delete(&criteria, 10), Err(Error::Domain(DomainError::Denied { .. }))));
    assert_eq!(f.engine.next_seq(), before, "a refused deletion wrote something");
    assert_eq!(admin.delete(&criteria, 10).unwrap().deleted, 0);
}

#[test]
fn a_workflow_is_added_once_and_reowned_only_if_it_exists() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    let wf = |owner: &str| WorkflowDefinition { id: "w".into(), name: "W".into(), owner: owner.into(), active: true };
    admin.add_workflow(wf("admin")).unwrap();
    let before = f.engine.next_seq();
    assert!(matches!(admin.add_workflow(wf("admin")), Err(Error::Domain(DomainError::AlreadyExists { .. }))));
    assert!(matches!(admin.set_workflow_owner("nope", "admin"), Err(Error::Domain(DomainError::NotFound { .. }))));
    assert!(matches!(admin.set_workflow_owner("w", "nobody"), Err(Error::Domain(DomainError::NotFound { .. }))));
    assert_eq!(f.engine.next_seq(), before, "a refusal writes nothing");
    admin.add_user("bob", "root", &["basic-user"]).unwrap();
    assert_eq!(admin.set_workflow_owner("w", "bob").unwrap(), wf("bob"));
    assert_eq!(f.engine.state().workflow("w"), Some(&wf("bob")));
}

/// A conditional change (`act_if`, `delete_job_if`: an HTTP `If-Match`)
/// is checked in the same write as the change: of writers that all read
/// the same `modifiedon`, exactly one changes the job and the others are
/// `Changed` with nothing written; the condition comes after the
/// privilege and before the state machine.
#[test]
fn conditional_changes_are_checked_in_the_write_and_exactly_one_racer_wins() {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    for round in 0..20 {
        let job = admin.create(NewJob::new(&format!("race {round}"), OperationType::BULK_EMAIL)).unwrap();
        let read = admin.get(job.id).unwrap().modifiedon;
        f.clock.advance_secs(1);
        let until = f.now().plus_micros(3_600_000_000);
        let before = f.engine.next_seq();
        let outcomes: Vec<Result<Job, Error>> = std::thread::scope(|s| {
            let racers: Vec<_> =
                (0..4).map(|_| s.spawn(|| admin.act_if(job.id, UserAction::Postpone(until), |m| m == read))).collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            // Postpone of a Waiting job would be refused: the condition
            // is what answers.
            assert!(matches!(o, Error::Domain(DomainError::Changed { job: j, .. }) if *j == job.id), "{o:?}");
        }
        assert_eq!(f.engine.next_seq(), before + 1, "one event written in round {round}");
    }

    // A failed condition writes nothing; the current tag passes.
    let job = admin.create(NewJob::new("cond", OperationType::BULK_EMAIL)).unwrap();
    f.clock.advance_secs(1);
    let before = f.engine.next_seq();
    let e = admin.act_if(job.id, UserAction::Cancel, |_| false).unwrap_err();
    assert!(matches!(e, Error::Domain(DomainError::Changed { .. })), "{e:?}");
    assert_eq!(f.engine.next_seq(), before);
    let canceled = admin.act_if(job.id, UserAction::Cancel, |m| m == job.modifiedon).unwrap();
    assert!(canceled.status.is_completed());
    // Deletion: a stale condition deletes nothing, the current one deletes.
    let e = admin.delete_job_if(job.id, |m| m == job.modifiedon).unwrap_err();
    assert!(matches!(e, Error::Domain(DomainError::Changed { .. })), "{e:?}");
    assert!(admin.get(job.id).is_ok());
    admin.delete_job_if(job.id, |m| m == canceled.modifiedon).unwrap();
    assert!(admin.get(job.id).is_err());

    // A job the user may not change is refused for that before any
    // condition is asked (its tag is not told).
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    let admins = admin.create(NewJob::new("admin's", OperationType::BULK_EMAIL)).unwrap();
    let alice = f.engine.session("alice").unwrap();
    let e = alice.act_if(admins.id, UserAction::Cancel, |_| false).unwrap_err();
    assert!(matches!(e, Error::Domain(DomainError::Denied { .. })), "{e:?}");
}

/// Counts by State, Status Reason and System Job Type alone come from the
/// status indices (the completed sets and the open jobs' counters) without
/// a walk; they must agree with the jobs a walk lists, after creations,
/// actions, imports and deletions, and after a reopen from the checkpoint.
#[test]
fn status_counts_from_the_indices_agree_with_a_walk() {
    let mut f = Fixture::new();
    let types = [OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType::SYSTEM_EVENT];
    let mut done = Vec::new();
    {
        let admin = f.engine.session("admin").unwrap();
        for i in 0..60 {
            let job = admin.create(NewJob::new(&format!("job {i}"), types[i % 3])).unwrap();
            f.clock.advance_secs(1);
            match i % 5 {
                0 => done.push(admin.act(job.id, UserAction::Cancel).unwrap()),
                1 => drop(admin.act(job.id, UserAction::Postpone(f.now().plus_micros(3_600_000_000))).unwrap()),
                2 => drop(admin.act(job.id, UserAction::Pause).unwrap_or(job)),
                _ => {}
            }
        }
        for (i, end) in [Status::SUCCEEDED, Status::FAILED, Status::CANCELED].into_iter().cycle().take(30).enumerate() {
            let mut j = Job::new(&format!("old {i}"), types[i % 2], "admin", "root", t("2025-01-01T00:00:00Z"));
            j.status = end;
            j.completedon = Some(t("2025-01-02T00:00:00Z"));
            j.modifiedon = t("2025-01-02T00:00:00Z");
            admin.import(vec![j.clone()]).unwrap();
            done.push(j);
        }
        admin.delete_jobs(&[done[0].id, done[20].id]).unwrap();
    }
    for round in ["live", "reopened"] {
        let admin = f.engine.session("admin").unwrap();
        let mut states: Vec<(Option<State>, Option<StatusReason>)> =
            Status::all().map(|s| (None, Some(s.reason()))).collect();
        states.extend(Status::all().map(|s| (Some(s.state()), Some(s.reason()))));
        states.extend([State::Ready, State::Suspended, State::Locked, State::Completed].map(|s| (Some(s), None)));
        let mut nonzero = 0;
        for ty in [None, Some(OperationType::WORKFLOW), Some(OperationType::BULK_EMAIL), Some(OperationType(99))] {
            for &(state, status_reason) in &states {
                let filter = Filter { operationtype: ty, state, status_reason, ..Filter::default() };
                let walked = admin.list(&filter, None, 10_000).unwrap().0.len();
                assert_eq!(admin.count(&filter).unwrap(), walked, "{round}: {filter:?}");
                nonzero += usize::from(walked > 0);
            }
        }
        assert!(nonzero > 20, "{round}: the filters found jobs ({nonzero} did)");
        let all_done = Filter { state: Some(State::Completed), ..Filter::default() };
        assert_eq!(admin.count(&all_done).unwrap(), done.len() - 2, "{round}");
        drop(admin);
        f = f.reopen();
    }
}

/// The child of [`a_failed_sync_leaves_readers_the_durable_state`], run
/// with the log's 25th sync armed to fail (`JOBLOG_CRASHPOINT`).
const FAILED_SYNC_CHILD: &str = "JOBLOG_TEST_FAILED_SYNC_CHILD";

/// Commits are pipelined (applied under the write lock, durable after it:
/// `src/engine/write.rs`), so a sync can fail after later batches were
/// applied. Sixteen threads create jobs while two read the state; the 25th
/// sync of the log fails (injected, 20 ms late, as a device error). Then:
/// every write from then on is refused; the state holds exactly the jobs
/// whose creation was acknowledged, and every job a reader ever saw is
/// among them (readers never see what is not durable); a reopen finds
/// every acknowledged job. The test re-runs this binary with the failure
/// armed.
#[test]
fn a_failed_sync_leaves_readers_the_durable_state() {
    if std::env::var_os(FAILED_SYNC_CHILD).is_some() {
        return failed_sync_child();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_failed_sync_leaves_readers_the_durable_state", "--nocapture", "--test-threads=1"])
        .env(FAILED_SYNC_CHILD, "1")
        .env("JOBLOG_CRASHPOINT", "fail-sync:25")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    let summary = text.lines().find_map(|l| l.split_once("failed sync checked")).map(|(_, rest)| rest);
    println!("failed sync checked{}", summary.unwrap_or_else(|| panic!("the child did not finish: {text}")));
}

fn failed_sync_child() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let f = Fixture::new();
    let acked = Mutex::new(HashSet::new());
    let refused = Mutex::new(Vec::new());
    let seen = Mutex::new(HashSet::new());
    let writing = AtomicBool::new(true);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    let admin = f.engine.session("admin").unwrap();
                    for _ in 0..20 {
                        match admin.create(NewJob::new("e", OperationType::BULK_EMAIL)) {
                            Ok(job) => drop(acked.lock().unwrap().insert(job.id)),
                            Err(e) => refused.lock().unwrap().push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            s.spawn(|| {
                while writing.load(Ordering::Relaxed) {
                    let ids: Vec<Uuid> = f.engine.state().ready().collect();
                    seen.lock().unwrap().extend(ids);
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        writing.store(false, Ordering::Relaxed);
    });
    let (acked, refused, seen) =
        (acked.into_inner().unwrap(), refused.into_inner().unwrap(), seen.into_inner().unwrap());
    assert!(!acked.is_empty() && !refused.is_empty(), "{} acknowledged, {} refused", acked.len(), refused.len());
    assert!(refused.iter().any(|e| e.contains("injected failure of sync")), "{refused:?}");
    let admin = f.engine.session("admin").unwrap();
    assert!(admin.create(NewJob::new("after", OperationType::BULK_EMAIL)).is_err(), "a poisoned log takes no write");
    let now: HashSet<Uuid> = f.engine.state().ready().collect();
    assert_eq!(now, acked, "the state holds exactly the acknowledged jobs");
    let lost: Vec<_> = seen.difference(&acked).collect();
    assert!(lost.is_empty(), "readers saw {} jobs that were never durable", lost.len());
    // A refused commit's outcome is unknown, as with any store whose sync
    // failed: its frames may have reached the disk (here they are in the
    // page cache, whole) and a reopen then finds them.
    let syncs = f.engine.log_stats().syncs;
    drop(admin);
    let f = f.reopen();
    let reopened: HashSet<Uuid> = f.engine.state().ready().collect();
    assert!(reopened.is_superset(&acked), "every acknowledged job is there after a reopen");
    f.engine.session("admin").unwrap().create(NewJob::new("reopened", OperationType::BULK_EMAIL)).unwrap();
    println!(
        "failed sync checked: {} acknowledged, {} refused, {} seen, {syncs} syncs",
        acked.len(),
        refused.len(),
        seen.len()
    );
}

/// Jobs' events as a load brings them, `n` new jobs from `next` on, one
/// millisecond apart: each created (of three types, regarding one of
/// seven rows), taken, then succeeded, failed or left waiting for a time
/// (one in three each); and the jobs of `waiting` (left waiting by the
/// batch before) woken, Ready again. `waiting` ends holding this batch's.
fn bulk_batch(next: &mut Timestamp, n: usize, waiting: &mut Vec<Uuid>) -> Vec<joblog::domain::Envelope> {
    use joblog::domain::{Action, Actor, Envelope, Event, EVENT_VERSION};
    let ms = |k: usize| next.plus_micros(1_000 * (k as i64 + 1));
    let mut events = Vec::new();
    for id in std::mem::take(waiting) {
        events.push(Event::Transition(support::step(id, Action::Wake, Status::WAITING, Status::READY)));
    }
    let types = [OperationType::SYSTEM_EVENT, OperationType::BULK_EMAIL, OperationType::WORKFLOW];
    let mut ids = Vec::new();
    for k in 0..n {
        let mut job = Job::new("loaded", types[k % 3], "admin", "root", ms(events.len()));
        job.regarding = Some(Regarding { table: "contact".into(), id: (k % 7).to_string() });
        ids.push(job.id);
        events.push(Event::JobCreated(Box::new(job)));
    }
    for &id in &ids {
        events.push(Event::Transition(support::step(id, Action::Lock, Status::READY, Status::IN_PROGRESS)));
    }
    for (k, &id) in ids.iter().enumerate() {
        events.push(Event::Transition(match k % 3 {
            0 => support::step(id, Action::Succeed, Status::IN_PROGRESS, Status::SUCCEEDED),
            1 => support::step(id, Action::Fail, Status::IN_PROGRESS, Status::FAILED),
            _ => {
                waiting.push(id);
                let mut t = support::step(id, Action::Wait, Status::IN_PROGRESS, Status::WAITING);
                t.postponeuntil = Some(next.plus_micros(86_400_000_000));
                t
            }
        }));
    }
    let out: Vec<Envelope> = (0..)
        .zip(events)
        .map(|(k, event)| Envelope { version: EVENT_VERSION, at: ms(k), actor: Actor::System, event })
        .collect();
    *next = out.last().map_or(*next, |e| e.at);
    out
}

/// What every view shows: the ids and statuses of each filter's jobs.
fn every_view(s: &impl joblog::engine::Reads, completed_before: Timestamp) -> Vec<(String, Vec<(Uuid, Status)>)> {
    let mut filters = vec![Filter::default(), Filter { completed_before: Some(completed_before), ..Filter::default() }];
    for op in [OperationType::SYSTEM_EVENT, OperationType::BULK_EMAIL, OperationType::WORKFLOW] {
        filters.push(Filter { operationtype: Some(op), ..Filter::default() });
        for status in Status::all() {
            let status_reason = Some(status.reason());
            filters.push(Filter { operationtype: Some(op), status_reason, ..Filter::default() });
        }
    }
    for state in [State::Ready, State::Suspended, State::Locked, State::Completed] {
        filters.push(Filter { state: Some(state), ..Filter::default() });
    }
    for r in 0..8 {
        let regarding = Some(Regarding { table: "contact".into(), id: r.to_string() });
        filters.push(Filter { regarding, ..Filter::default() });
    }
    filters.push(Filter { owner: Some("admin".into()), ..Filter::default() });
    filters
        .into_iter()
        .map(|filter| {
            let (jobs, _) = s.list(&filter, None, 100_000).unwrap();
            (format!("{filter:?}"), jobs.into_iter().map(|j| (j.id, j.status)).collect())
        })
        .collect()
}

/// A load (or an import) large against the hot rows stops keeping the
/// indices and builds them once, when something next needs them: a
/// reader, a live write, a checkpoint. Every view then shows what a store
/// that kept them live shows (the same events loaded one at a time, a read
/// after each), whatever comes between the batches: a live action, a
/// checkpoint that moves jobs cold, a load too small to defer, an import.
#[test]
fn bulk_loads_build_their_indices_once_and_every_view_agrees() {
    let start = t("2026-01-01T00:00:00Z");
    let (f, r) = (Fixture::at(start), Fixture::at(start));
    let (fa, ra) = (f.engine.session("admin").unwrap(), r.engine.session("admin").unwrap());
    let (mut next, mut waiting) = (start, Vec::new());
    let later = |next: Timestamp| next.plus_micros(3_600_000_000);
    // Completed jobs in a cold run, and a few hot ones, before the loads.
    let first = bulk_batch(&mut next, 9, &mut waiting);
    for (c, s) in [(&f, &fa), (&r, &ra)] {
        c.clock.set(later(next));
        s.load(first.clone()).unwrap();
        c.engine.checkpoint().unwrap();
    }
    // Each batch loaded whole into `f`, and one event at a time into `r`
    // with a read after each; the clocks then stand an hour past them.
    let load_both = |loads: &[Vec<joblog::domain::Envelope>]| {
        let at = later(loads.last().and_then(|b| b.last()).expect("events").at);
        for (c, s, whole) in [(&f, &fa, true), (&r, &ra, false)] {
            c.clock.set(at);
            for batch in loads {
                if whole {
                    s.load(batch.clone()).unwrap();
                    continue;
                }
                for env in batch {
                    s.load(vec![env.clone()]).unwrap();
                    s.count(&Filter::default()).unwrap();
                }
            }
        }
        at
    };
    // Two batches, each large against the hot rows, back to back.
    let (a, b) = (bulk_batch(&mut next, 60, &mut waiting), bulk_batch(&mut next, 60, &mut waiting));
    load_both(&[a, b]);
    assert!(f.engine.indexing_deferred(), "loads large against the hot rows defer the indices");
    // A live write that selects through the indices has them built
    // first: cancelling every Ready job (3 of the first batch, woken by
    // `a`, and 20 of `a`, woken by `b`).
    let ready = Filter { state: Some(State::Ready), ..Filter::default() };
    for s in [&fa, &ra] {
        assert_eq!(s.act_on_matching(UserAction::Cancel, &ready).unwrap().changed.len(), 23);
    }
    assert!(!f.engine.indexing_deferred(), "a live write built them");
    next = f.now();
    next = load_both(&[bulk_batch(&mut next, 90, &mut waiting)]);
    assert!(f.engine.indexing_deferred());
    assert_eq!(every_view(&fa, next), every_view(&ra, next), "after two loads, an action and a load");
    assert!(!f.engine.indexing_deferred(), "a reader built them");
    // A checkpoint moves the Completed jobs cold; a load too small to
    // defer (3 events against 60 open jobs) keeps the indices live; an
    // import defers them again.
    for c in [&f, &r] {
        c.engine.checkpoint().unwrap();
    }
    next = load_both(&[bulk_batch(&mut next, 1, &mut Vec::new())]);
    assert!(!f.engine.indexing_deferred(), "a small load keeps the indices live");
    let statuses: Vec<Status> = Status::all().collect();
    let rows: Vec<Job> = (0..80)
        .map(|k| {
            let mut j = imported(statuses[k % statuses.len()], OperationType::BULK_EMAIL);
            j.regarding = Some(Regarding { table: "contact".into(), id: "7".into() });
            j
        })
        .collect();
    assert_eq!(fa.import(rows.clone()).unwrap(), 80);
    assert!(f.engine.indexing_deferred(), "an import large against the hot rows defers them");
    for row in rows {
        assert_eq!(ra.import(vec![row]).unwrap(), 1);
        ra.count(&Filter::default()).unwrap();
    }
    next = load_both(&[bulk_batch(&mut next, 30, &mut waiting)]);
    assert!(f.engine.indexing_deferred(), "loads after a deferring import keep deferring");
    // A checkpoint straight after a load: it moves the Completed jobs cold
    // and writes the image of the hot rows that reading commands map,
    // without building the indices.
    for c in [&f, &r] {
        c.engine.checkpoint().unwrap();
    }
    assert!(f.engine.indexing_deferred(), "a checkpoint does not need the indices");
    let cold = |c: &Fixture| c.engine.state().cold_runs().iter().map(|run| run.len()).sum::<usize>();
    let completed = ra.count(&Filter { state: Some(State::Completed), ..Filter::default() }).unwrap();
    assert_eq!((cold(&f), cold(&r)), (completed, completed), "every Completed job moved cold");
    let expected = every_view(&ra, next);
    assert_eq!(every_view(&fa, next), expected, "after a checkpoint, a small load, an import, a load, a checkpoint");
    assert_eq!(f.engine.verify().problems, Vec::<String>::new());
    drop(fa);
    let config = f.config.clone();
    let f = f.reopen_after(|dir| {
        let views = joblog::engine::Views::open(dir, config).unwrap().expect("the checkpoint's image");
        assert_eq!(every_view(&views.reader("admin").unwrap(), next), expected, "a reading command");
    });
    let expected = every_view(&ra, next);
    assert_eq!(every_view(&f.engine.session("admin").unwrap(), next), expected, "opened again");
}

/// Readers during a run of bulk loads see each load whole in every index:
/// the indices the loads stopped keeping are built before any reader looks.
#[test]
fn readers_during_bulk_loads_see_whole_loads() {
    let start = t("2026-01-01T00:00:00Z");
    let f = Fixture::at(start);
    let admin = f.engine.session("admin").unwrap();
    let (mut next, mut waiting) = (start, Vec::new());
    let batches: Vec<_> = (0..40).map(|_| bulk_batch(&mut next, 30, &mut waiting)).collect();
    f.clock.set(next);
    let before = f.engine.state().last_seq();
    let loading = std::sync::atomic::AtomicBool::new(true);
    let reads = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            use joblog::projection::query::Visibility;
            let mut reads = 0;
            while loading.load(std::sync::atomic::Ordering::Relaxed) {
                // How many loads are in, from the events: 90 in the first
                // (30 jobs created, taken, finished or left waiting), 100 in
                // each after (the 10 waiting before woken).
                let state = f.engine.state();
                let events = state.last_seq() - before;
                let loads = if events == 0 { 0 } else { 1 + (events - 90) / 100 };
                assert!(events == 0 || (events - 90).is_multiple_of(100), "{events} events: part of a load");
                let count = |filter: Filter| state.count(&filter, &Visibility::All).unwrap();
                for op in [OperationType::SYSTEM_EVENT, OperationType::BULK_EMAIL, OperationType::WORKFLOW] {
                    assert_eq!(count(Filter { operationtype: Some(op), ..Filter::default() }), 10 * loads as usize);
                }
                let in_state = |state| count(Filter { state: Some(state), ..Filter::default() });
                let expected = [10 * loads.saturating_sub(1), 10 * loads.min(1), 0, 20 * loads].map(|n| n as usize);
                assert_eq!(
                    [State::Ready, State::Suspended, State::Locked, State::Completed].map(in_state),
                    expected,
                    "after {loads} loads"
                );
                assert_eq!(count(Filter::default()), 30 * loads as usize);
                reads += 1;
            }
            reads
        });
        for batch in batches {
            admin.load(batch).unwrap();
        }
        loading.store(false, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(reads > 0);
    assert_eq!(admin.count(&Filter::default()).unwrap(), 1_200);
    assert_eq!(f.engine.verify().problems, Vec::<String>::new());
}

/// A large load is encoded on another core while it is checked: refused
/// by its last event, nothing of it is written; accepted, all of it is.
#[test]
fn a_large_load_is_checked_whole_while_it_is_encoded() {
    use joblog::domain::{Action, Event};
    let start = t("2026-01-01T00:00:00Z");
    let f = Fixture::at(start);
    let admin = f.engine.session("admin").unwrap();
    let (mut next, mut waiting) = (start, Vec::new());
    let good = bulk_batch(&mut next, 400, &mut waiting);
    assert!(good.len() >= 1_200, "{} events: more than a thread is spawned for", good.len());
    f.clock.set(next);
    let mut bad = good.clone();
    let last = bad.last_mut().unwrap();
    let Event::Transition(t) = &last.event else { panic!("the batch ends with a transition") };
    let last_job = t.job;
    last.event = Event::Transition(support::step(last_job, Action::Lock, Status::READY, Status::IN_PROGRESS));
    let before = f.engine.next_seq();
    assert!(matches!(admin.load(bad), Err(Error::Domain(DomainError::Refused { .. }))));
    assert_eq!((f.engine.next_seq(), admin.count(&Filter::default()).unwrap()), (before, 0), "nothing written");
    assert_eq!(admin.load(good.clone()).unwrap(), good.len());
    assert_eq!(admin.count(&Filter::default()).unwrap(), 400);
    let history = admin.history(last_job).unwrap();
    assert_eq!(history.len(), 3, "created, taken, succeeded: read back from the frames encoded aside");
    assert_eq!(f.engine.verify().problems, Vec::<String>::new());
}
