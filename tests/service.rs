//! The service: every path of a job's life on the manual clock, live
//! actions against running handlers, dependency tokens, timers, retries and
//! back-off, leases after a crash, owners, the loop guard, command jobs,
//! and many jobs on real threads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use joblog::domain::{codes, Clock, Job, OperationType, Regarding, Status, Timestamp, WorkflowDefinition};
use joblog::engine::{HistoryEntry, NewJob, ServiceStep, UserAction};
use joblog::service::{
    command_data, BackoffPolicy, JobContext, Outcome, Registry, RetryPolicy, RunUntil, Service, ServiceConfig,
    StopRequest,
};
use uuid::Uuid;

mod support;

use support::{Fixture, Rng};

const SEC: i64 = 1_000_000;

fn t0() -> Timestamp {
    Timestamp::parse("2026-03-01T09:00:00Z").unwrap()
}

/// The kit's engine fixture at `t0`, with the workflows the tests run.
fn fixture() -> Fixture {
    let f = Fixture::at(t0());
    let admin = f.engine.session("admin").unwrap();
    for w in ["welcome", "flaky", "broken", "chain"] {
        admin
            .save_workflow(WorkflowDefinition { id: w.into(), name: w.into(), owner: "admin".into(), active: true })
            .unwrap();
    }
    drop(admin);
    f
}

fn config() -> ServiceConfig {
    ServiceConfig {
        workers: 2,
        host: "test-host".into(),
        backoff: BackoffPolicy { jitter: 0.0, ..BackoffPolicy::default() },
        poll: Duration::from_millis(2),
        ..ServiceConfig::default()
    }
}

fn workflow_job(name: &str, workflow: &str) -> NewJob {
    NewJob { workflow: Some(workflow.into()), ..NewJob::new(name, OperationType::WORKFLOW) }
}

fn status(f: &Fixture, id: Uuid) -> Status {
    f.engine.state().status_of(id).unwrap().unwrap()
}

fn history(f: &Fixture, id: Uuid) -> Vec<HistoryEntry> {
    f.engine.session("admin").unwrap().history(id).unwrap()
}

fn outcomes() -> Registry {
    Registry::new()
        .workflow("welcome", |_: &JobContext<'_>| Outcome::Succeeded)
        .workflow("broken", |_: &JobContext<'_>| Outcome::Failed { code: 42, message: "bad input".into() })
        .workflow("flaky", |_: &JobContext<'_>| Outcome::Transient("server busy".into()))
}

#[test]
fn succeed_fail_and_no_handler() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let ok = admin.create(workflow_job("ok", "welcome")).unwrap();
    let bad = admin.create(workflow_job("bad", "broken")).unwrap();
    let none = admin.create(NewJob::new("mail", OperationType::BULK_EMAIL)).unwrap();
    let svc = Service::new(&f.engine, config(), outcomes());
    let s = svc.run(RunUntil::Idle).unwrap();
    assert_eq!((s.ran, s.succeeded, s.failed), (3, 1, 2));
    assert_eq!(status(&f, ok.id), Status::SUCCEEDED);
    let bad = admin.get(bad.id).unwrap();
    assert_eq!((bad.status, bad.errorcode, bad.message.as_deref()), (Status::FAILED, Some(42), Some("bad input")));
    let none = admin.get(none.id).unwrap();
    assert_eq!(none.errorcode, Some(codes::NO_HANDLER));
    let h = history(&f, ok.id);
    assert_eq!(h.iter().map(|e| e.status).collect::<Vec<_>>(), [Status::READY, Status::IN_PROGRESS, Status::SUCCEEDED]);
    assert_eq!(h[1].actor.to_string(), "worker:test-host");
}

#[test]
fn transient_failures_retry_on_the_documented_schedule_then_fail() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let job = admin.create(workflow_job("flaky", "flaky")).unwrap();
    let retry = RetryPolicy { max_retries: 3, base_secs: 10, factor: 2, cap_secs: 3600 };
    let svc = Service::new(&f.engine, ServiceConfig { retry, ..config() }, outcomes());
    let mut waits = Vec::new();
    for n in 1..=3u32 {
        svc.run(RunUntil::Idle).unwrap();
        let j = admin.get(job.id).unwrap();
        assert_eq!((j.status, j.retrycount), (Status::WAITING, n));
        let wait = (j.postponeuntil.unwrap().micros() - f.clock.now().micros()) / SEC;
        waits.push(wait);
        // Not due yet: nothing runs.
        f.clock.advance_secs(wait - 1);
        assert_eq!(svc.run(RunUntil::Idle).unwrap().ran, 0);
        f.clock.advance_secs(1);
    }
    assert_eq!(waits, [10, 20, 40]);
    svc.run(RunUntil::Idle).unwrap();
    let j = admin.get(job.id).unwrap();
    assert_eq!((j.status, j.errorcode), (Status::FAILED, Some(codes::RETRIES_EXHAUSTED)));
    assert!(j.message.unwrap().contains("gave up after 3 retries: server busy"));
}

#[test]
fn waits_wake_at_their_time_and_suspended_jobs_wait_for_resume() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let wake_at = t0().plus_micros(3600 * SEC);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let registry = Registry::new()
        .workflow("welcome", move |_: &JobContext<'_>| {
            if r.fetch_add(1, Ordering::SeqCst) == 0 {
                Outcome::Wait(wake_at)
            } else {
                Outcome::Succeeded
            }
        })
        .workflow("broken", |ctx: &JobContext<'_>| {
            if ctx.job().retrycount == 0 && ctx.job().message.is_none() {
                Outcome::Suspend("contact 7 has no email address".into())
            } else {
                Outcome::Succeeded
            }
        });
    let waiting = admin.create(workflow_job("w", "welcome")).unwrap();
    let data = admin.create(workflow_job("d", "broken")).unwrap();
    let svc = Service::new(&f.engine, config(), registry);
    svc.run(RunUntil::Idle).unwrap();
    let w = admin.get(waiting.id).unwrap();
    assert_eq!((w.status, w.postponeuntil), (Status::WAITING, Some(wake_at)));
    let d = admin.get(data.id).unwrap();
    assert_eq!((d.status, d.postponeuntil), (Status::WAITING, None));
    // An hour later the timer wakes the first; the second waits for a user.
    f.clock.set(wake_at);
    let s = svc.run(RunUntil::Idle).unwrap();
    assert_eq!(s.ran, 1);
    assert_eq!(status(&f, waiting.id), Status::SUCCEEDED);
    assert_eq!(status(&f, data.id), Status::WAITING);
    admin.act(data.id, UserAction::Resume).unwrap();
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(status(&f, data.id), Status::SUCCEEDED);
    let path: Vec<Status> = history(&f, waiting.id).iter().map(|e| e.status).collect();
    assert_eq!(
        path,
        [Status::READY, Status::IN_PROGRESS, Status::WAITING, Status::READY, Status::IN_PROGRESS, Status::SUCCEEDED]
    );
}

/// A handler that signals it started, then checks its token until asked
/// to stop (or `release` is set).
fn cooperative(started: Arc<Mutex<Vec<Uuid>>>) -> impl Fn(&JobContext<'_>) -> Outcome + Send + Sync {
    move |ctx: &JobContext<'_>| {
        started.lock().unwrap().push(ctx.job().id);
        for _ in 0..5000 {
            if ctx.stop_requested().is_some() {
                return Outcome::Stopped;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Outcome::Succeeded
    }
}

fn wait_started(started: &Mutex<Vec<Uuid>>, id: Uuid) {
    for _ in 0..5000 {
        if started.lock().unwrap().contains(&id) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("job {id} never started");
}

#[test]
fn pause_cancel_and_postpone_reach_a_running_handler() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let started = Arc::new(Mutex::new(Vec::new()));
    let svc = Service::new(&f.engine, config(), Registry::new().workflow("welcome", cooperative(started.clone())));
    let later = t0().plus_micros(600 * SEC);
    for action in [UserAction::Pause, UserAction::Cancel, UserAction::Postpone(later)] {
        let job = admin.create(workflow_job("long", "welcome")).unwrap();
        std::thread::scope(|s| {
            let runner = s.spawn(|| svc.run(RunUntil::Idle).unwrap());
            wait_started(&started, job.id);
            let during = admin.act(job.id, action).unwrap();
            let want = if action == UserAction::Cancel { Status::CANCELING } else { Status::PAUSING };
            assert_eq!(during.status, want);
            runner.join().unwrap();
        });
        let j = admin.get(job.id).unwrap();
        match action {
            UserAction::Cancel => assert_eq!(j.status, Status::CANCELED),
            UserAction::Pause => assert_eq!((j.status, j.postponeuntil), (Status::WAITING, None)),
            _ => assert_eq!((j.status, j.postponeuntil), (Status::WAITING, Some(later))),
        }
    }
}

#[test]
fn shutdown_returns_running_jobs_to_ready() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let started = Arc::new(Mutex::new(Vec::new()));
    let svc = Service::new(&f.engine, config(), Registry::new().workflow("welcome", cooperative(started.clone())));
    let job = admin.create(workflow_job("long", "welcome")).unwrap();
    std::thread::scope(|s| {
        let runner = s.spawn(|| svc.run(RunUntil::Stopped).unwrap());
        wait_started(&started, job.id);
        svc.stop();
        let summary = runner.join().unwrap();
        assert_eq!(summary.returned, 1);
    });
    let j = admin.get(job.id).unwrap();
    assert_eq!(j.status, Status::READY);
    assert!(j.message.unwrap().contains("shut down"));
}

#[test]
fn dependency_tokens_run_one_at_a_time_in_creation_order() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicUsize::new(0));
    let (o, r) = (order.clone(), running.clone());
    let registry = Registry::new().workflow("welcome", move |ctx: &JobContext<'_>| {
        assert_eq!(r.fetch_add(1, Ordering::SeqCst), 0, "two jobs of one token ran at once");
        std::thread::sleep(Duration::from_millis(5));
        o.lock().unwrap().push(ctx.job().name.clone());
        r.fetch_sub(1, Ordering::SeqCst);
        Outcome::Succeeded
    });
    let token = |name: &str| NewJob { dependency_token: Some("account-9".into()), ..workflow_job(name, "welcome") };
    let first = admin.create(NewJob { postponeuntil: Some(t0().plus_micros(60 * SEC)), ..token("a") }).unwrap();
    for name in ["b", "c", "d"] {
        f.clock.advance_secs(1);
        admin.create(token(name)).unwrap();
    }
    let svc = Service::new(&f.engine, ServiceConfig { workers: 4, ..config() }, registry);
    // The first is postponed: it holds back the others.
    assert_eq!(svc.run(RunUntil::Idle).unwrap().ran, 0);
    f.clock.set(t0().plus_micros(60 * SEC));
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(status(&f, first.id), Status::SUCCEEDED);
}

#[test]
fn a_failing_workflow_backs_off_by_the_formula_and_one_success_ends_it() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fl = fail.clone();
    let registry = Registry::new().workflow("welcome", move |_: &JobContext<'_>| {
        if fl.load(Ordering::SeqCst) {
            Outcome::Failed { code: 1, message: "mail server down".into() }
        } else {
            Outcome::Succeeded
        }
    });
    let svc = Service::new(&f.engine, ServiceConfig { workers: 1, ..config() }, registry);
    for _ in 0..3 {
        admin.create(workflow_job("x", "welcome")).unwrap();
        svc.run(RunUntil::Idle).unwrap();
        f.clock.advance_secs(1);
    }
    let failed_at = f.clock.now().micros() - SEC;
    // Three failures in a row: the next job is held 60 s after the last.
    let held = admin.create(workflow_job("held", "welcome")).unwrap();
    let s = svc.run(RunUntil::Idle).unwrap();
    assert_eq!((s.ran, s.deferred), (0, 1));
    let j = admin.get(held.id).unwrap();
    assert_eq!((j.status, j.postponeuntil.map(|t| t.micros())), (Status::WAITING, Some(failed_at + 60 * SEC)));
    assert!(j.message.unwrap().contains("failed 3 times in a row"));
    // At that time it runs, fails again: the next is held 120 s.
    f.clock.set(Timestamp::from_micros(failed_at + 60 * SEC));
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(status(&f, held.id), Status::FAILED);
    let next = admin.create(workflow_job("next", "welcome")).unwrap();
    svc.run(RunUntil::Idle).unwrap();
    let j = admin.get(next.id).unwrap();
    assert_eq!(j.postponeuntil.map(|t| t.micros()), Some(failed_at + 60 * SEC + 120 * SEC));
    let report = joblog::service::backoff_report(&f.engine, &config().backoff);
    assert_eq!(report[0].consecutive_failures, 4);
    assert_eq!(report[0].held_until.map(|t| t.micros()), Some(failed_at + 180 * SEC));
    // One success returns the workflow to normal.
    fail.store(false, Ordering::SeqCst);
    f.clock.set(Timestamp::from_micros(failed_at + 180 * SEC));
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(status(&f, next.id), Status::SUCCEEDED);
    let fresh = admin.create(workflow_job("fresh", "welcome")).unwrap();
    assert_eq!(svc.run(RunUntil::Idle).unwrap().ran, 1);
    assert_eq!(status(&f, fresh.id), Status::SUCCEEDED);
    assert!(joblog::service::backoff_report(&f.engine, &config().backoff).is_empty());
}

#[test]
fn jobs_locked_by_a_dead_service_go_back_when_the_service_starts() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let ids: Vec<Uuid> = (0..3).map(|i| admin.create(workflow_job(&format!("j{i}"), "welcome")).unwrap().id).collect();
    // A service on another host took all three, then died; one was being
    // paused and one canceled.
    for &id in &ids {
        f.engine.worker("dead-host").step(id, ServiceStep::Lock).unwrap();
    }
    admin.act(ids[1], UserAction::Pause).unwrap();
    admin.act(ids[2], UserAction::Cancel).unwrap();
    // Opening the store changes nothing by itself.
    assert_eq!(status(&f, ids[0]), Status::IN_PROGRESS);
    let svc = Service::new(&f.engine, config(), outcomes());
    let s = svc.run(RunUntil::Idle).unwrap();
    assert_eq!((s.recovered, s.ran), (3, 1));
    assert_eq!(
        [status(&f, ids[0]), status(&f, ids[1]), status(&f, ids[2])],
        [Status::SUCCEEDED, Status::WAITING, Status::CANCELED]
    );
    let h = history(&f, ids[0]);
    assert!(h.iter().any(|e| e.status == Status::READY && e.message.as_deref().unwrap_or("").contains("lease lost")));
}

#[test]
fn the_loop_guard_stops_the_seventeenth_run_on_a_row_and_deep_chains() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let row = Regarding::parse("contact:7").unwrap();
    let ids: Vec<Uuid> = (0..20)
        .map(|i| {
            f.clock.advance_secs(60);
            admin
                .create(NewJob { regarding: Some(row.clone()), ..workflow_job(&format!("r{i}"), "welcome") })
                .unwrap()
                .id
        })
        .collect();
    let deep = admin.create(NewJob { depth: 9, ..workflow_job("deep", "chain") }).unwrap();
    let svc = Service::new(&f.engine, config(), outcomes());
    let s = svc.run(RunUntil::Idle).unwrap();
    assert_eq!(s.loop_stopped, 5);
    let states: Vec<Status> = ids.iter().map(|&id| status(&f, id)).collect();
    assert!(states[..16].iter().all(|&s| s == Status::SUCCEEDED));
    assert!(states[16..].iter().all(|&s| s == Status::CANCELED));
    let msg = admin.get(ids[16]).unwrap().message.unwrap();
    assert!(msg.contains("loop guard") && msg.contains("17 times"), "{msg}");
    let deep = admin.get(deep.id).unwrap();
    assert_eq!(deep.status, Status::CANCELED);
    assert!(deep.message.unwrap().contains("depth 9"));
}

/// A job the platform generates (no user may cancel it) that the loop guard
/// must stop is canceled by the service all the same, and the store reopens
/// with that step in its log; before, the guard's step was refused and the
/// job stayed Ready for ever.
#[test]
fn the_loop_guard_stops_a_deep_platform_generated_job_and_the_store_reopens() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let generated = OperationType(16);
    assert!(generated.is_platform_generated());
    let deep = admin.create(NewJob { depth: 9, ..NewJob::new("deep import", generated) }).unwrap();
    // A user still may not cancel such a job.
    assert!(admin.act(deep.id, UserAction::Cancel).is_err());
    drop(admin);
    let svc = Service::new(&f.engine, config(), outcomes());
    let s = svc.run(RunUntil::Idle).unwrap();
    drop(svc);
    assert_eq!(s.loop_stopped, 1);
    assert_eq!(status(&f, deep.id), Status::CANCELED);
    let f = f.reopen();
    assert_eq!(status(&f, deep.id), Status::CANCELED);
    assert_eq!(f.engine.state().check_indices(), Vec::<String>::new());
}

#[test]
fn owner_deactivation_and_owner_change_fail_waiting_runs_and_reassign_saves_them() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    for u in ["alice", "bob"] {
        admin.add_user(u, "root", &["basic-user"]).unwrap();
    }
    for (w, owner) in [("alice-wf", "alice"), ("bob-wf", "bob")] {
        admin
            .save_workflow(WorkflowDefinition { id: w.into(), name: w.into(), owner: owner.into(), active: true })
            .unwrap();
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let wake = t0().plus_micros(3600 * SEC);
    let wait_then_succeed = move |ctx: &JobContext<'_>| {
        c.fetch_add(1, Ordering::SeqCst);
        if ctx.job().startedon.is_none() || ctx.now() < wake {
            Outcome::Wait(wake)
        } else {
            Outcome::Succeeded
        }
    };
    let registry =
        Registry::new().workflow("alice-wf", wait_then_succeed.clone()).workflow("bob-wf", wait_then_succeed);
    let a = admin.create(workflow_job("a", "alice-wf")).unwrap();
    let b1 = admin.create(workflow_job("b1", "bob-wf")).unwrap();
    let b2 = admin.create(workflow_job("b2", "bob-wf")).unwrap();
    assert_eq!((a.owner.as_str(), b1.owner.as_str()), ("alice", "bob"));
    let svc = Service::new(&f.engine, config(), registry);
    svc.run(RunUntil::Idle).unwrap();
    assert!([a.id, b1.id, b2.id].iter().all(|&id| status(&f, id) == Status::WAITING));

    admin.deactivate_user("alice").unwrap();
    admin
        .save_workflow(WorkflowDefinition {
            id: "bob-wf".into(),
            name: "b".into(),
            owner: "admin".into(),
            active: true,
        })
        .unwrap();
    // The administrator moves one of bob's waiting runs to the new owner.
    let moved = admin.reassign("bob-wf", "bob", "admin").unwrap();
    assert_eq!(moved.len(), 2);
    admin.act(b2.id, UserAction::Cancel).unwrap();
    let bob = f.engine.session("bob").unwrap();
    assert!(
        matches!(
            bob.reassign("bob-wf", "admin", "bob"),
            Err(joblog::Error::Domain(joblog::domain::DomainError::Denied {
                privilege: joblog::domain::Privilege::Assign,
                ..
            }))
        ),
        "only administrators reassign"
    );

    f.clock.set(wake);
    svc.run(RunUntil::Idle).unwrap();
    let a = admin.get(a.id).unwrap();
    assert_eq!((a.status, a.errorcode), (Status::FAILED, Some(codes::OWNER_DEACTIVATED)));
    assert!(a.message.unwrap().contains("alice is deactivated"));
    let b1 = admin.get(b1.id).unwrap();
    assert_eq!((b1.status, b1.owner.as_str()), (Status::SUCCEEDED, "admin"));
    let h = history(&f, b1.id);
    assert!(h.iter().any(|e| e.actor.to_string() == "admin" && e.action.is_none() && e.status == Status::WAITING));

    // Without the reassignment, a run whose workflow changed owner fails.
    let c1 = admin.create(workflow_job("c1", "welcome")).unwrap();
    let registry = Registry::new().workflow("welcome", move |ctx: &JobContext<'_>| {
        if ctx.job().startedon.is_none() {
            Outcome::Wait(wake.plus_micros(60 * SEC))
        } else {
            Outcome::Succeeded
        }
    });
    let svc = Service::new(&f.engine, config(), registry);
    svc.run(RunUntil::Idle).unwrap();
    admin
        .save_workflow(WorkflowDefinition { id: "welcome".into(), name: "w".into(), owner: "bob".into(), active: true })
        .unwrap();
    f.clock.set(wake.plus_micros(60 * SEC));
    svc.run(RunUntil::Idle).unwrap();
    let c1 = admin.get(c1.id).unwrap();
    assert_eq!((c1.status, c1.errorcode), (Status::FAILED, Some(codes::WORKFLOW_OWNER_CHANGED)));
}

#[test]
fn command_jobs_map_exit_codes_and_cancel_kills_the_process_group() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let cmd = |name: &str, c: &str| NewJob { data: command_data(c), ..NewJob::new(name, OperationType::WORKFLOW) };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("injected");
    let ok = admin.create(cmd(&format!("$(touch {})", marker.display()), "test -n \"$JOBLOG_JOB_NAME\"")).unwrap();
    let retry = admin.create(cmd("retry", "echo busy >&2; exit 75")).unwrap();
    let fail = admin.create(cmd("fail", "echo one >&2; echo 'disk full' >&2; exit 3")).unwrap();
    let svc = Service::new(&f.engine, config(), Registry::new());
    svc.run(RunUntil::Idle).unwrap();
    assert_eq!(status(&f, ok.id), Status::SUCCEEDED);
    assert!(!marker.exists(), "a job field was run as shell");
    let r = admin.get(retry.id).unwrap();
    assert_eq!((r.status, r.retrycount, r.message.as_deref()), (Status::WAITING, 1, Some("busy")));
    let fl = admin.get(fail.id).unwrap();
    assert_eq!((fl.status, fl.errorcode, fl.message.as_deref()), (Status::FAILED, Some(3), Some("one\ndisk full")));

    // Cancel of a runaway command: its process group goes at once.
    let pidfile = dir.path().join("pid");
    let long = admin.create(cmd("long", &format!("sleep 60 & echo $! > {}; wait", pidfile.display()))).unwrap();
    std::thread::scope(|s| {
        let started = std::time::Instant::now();
        let runner = s.spawn(|| svc.run(RunUntil::Idle).unwrap());
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        admin.act(long.id, UserAction::Cancel).unwrap();
        runner.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(30), "cancel waited for the command");
    });
    assert_eq!(status(&f, long.id), Status::CANCELED);
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || zombie(&pid), "the grandchild sleep survived");
}

fn zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split(' ').nth(2) == Some("Z"))
}

#[test]
fn ten_thousand_jobs_on_four_workers_with_users_acting_meanwhile() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let running: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let ran_twice = Arc::new(AtomicUsize::new(0));
    let (r, twice) = (running.clone(), ran_twice.clone());
    let registry = Registry::new().workflow("welcome", move |ctx: &JobContext<'_>| {
        let id = ctx.job().id;
        if !r.lock().unwrap().insert(id) {
            twice.fetch_add(1, Ordering::SeqCst);
        }
        let b = id.as_bytes()[15];
        if b % 7 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let out = match (b % 10, ctx.stop_requested()) {
            (_, Some(StopRequest::Cancel | StopRequest::Pause)) => Outcome::Stopped,
            (0, _) => Outcome::Failed { code: 9, message: "no".into() },
            (1, _) => Outcome::Transient("busy".into()),
            (2, _) => Outcome::Suspend("fix me".into()),
            _ => Outcome::Succeeded,
        };
        r.lock().unwrap().remove(&id);
        out
    });
    let specs: Vec<NewJob> = (0..10_000).map(|i| workflow_job(&format!("j{i}"), "welcome")).collect();
    let jobs: Vec<Job> = specs.chunks(1000).flat_map(|c| admin.create_many(c.to_vec()).unwrap()).collect();
    let svc = Service::new(&f.engine, ServiceConfig { workers: 4, ..config() }, registry);
    std::thread::scope(|s| {
        let runner = s.spawn(|| svc.run(RunUntil::Idle).unwrap());
        // Users act on random jobs while the service runs.
        let mut rng = Rng::with_seed(12345);
        for _ in 0..2000 {
            let job = &jobs[rng.usize(..jobs.len())];
            let action = [UserAction::Cancel, UserAction::Pause, UserAction::Resume][rng.usize(..3)];
            let _ = admin.act(job.id, action);
        }
        runner.join().unwrap();
    });
    assert_eq!(ran_twice.load(Ordering::SeqCst), 0, "a job ran twice at once");
    // Every job is in a status the table allows, and each history is a path
    // through the state machine (replay checks every step's from-status).
    let replayed = f.engine.replay_until(f.clock.now()).unwrap();
    for job in &jobs {
        let st = status(&f, job.id);
        assert_eq!(replayed.status_of(job.id).unwrap(), Some(st));
        assert!(!matches!(st, Status::IN_PROGRESS | Status::PAUSING | Status::CANCELING), "{st} left locked");
        let h = history(&f, job.id);
        for w in h.windows(2) {
            assert_eq!(w[1].from, Some(w[0].status), "history of {} is not a path", job.id);
            let to = joblog::domain::transition(job.id, job.operationtype, w[0].status, w[1].action.unwrap());
            assert_eq!(to.ok(), Some(w[1].status));
        }
    }
}

/// A handler that panics fails its run (HANDLER_PANICKED, the panic's text
/// in the message); the worker and the service go on: the next job runs
/// and `RunUntil::Idle` returns (before, the worker thread died with the
/// run, and the scheduler waited for it for ever).
#[test]
fn a_panicking_handler_fails_its_run_and_the_service_goes_on() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let bad = admin.create(workflow_job("panics", "broken")).unwrap();
    let good = admin.create(workflow_job("fine", "welcome")).unwrap();
    let registry = Registry::new()
        .workflow("broken", |_: &JobContext<'_>| -> Outcome { panic!("handler bug") })
        .workflow("welcome", |_: &JobContext<'_>| Outcome::Succeeded);
    let service = Service::new(&f.engine, ServiceConfig { workers: 1, ..config() }, registry);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| tx.send(service.run(RunUntil::Idle)).unwrap());
        let ran = rx.recv_timeout(Duration::from_secs(60)).expect("the service returned").unwrap();
        assert_eq!((ran.failed, ran.succeeded), (1, 1));
    });
    let failed = admin.get(bad.id).unwrap();
    assert_eq!((failed.status, failed.errorcode), (Status::FAILED, Some(codes::HANDLER_PANICKED)));
    assert!(failed.message.as_deref().unwrap_or_default().contains("handler bug"), "{failed:?}");
    assert_eq!(status(&f, good.id), Status::SUCCEEDED);
}

/// What runs of a kind took is kept from one `run` to the next: an
/// embedder that calls `run(RunUntil::Idle)` after each burst keeps the
/// prefetch for kinds it has seen, instead of taking them as never seen
/// (one free worker's job per pass each): before, the demo took 97 s
/// instead of 57 s.
#[test]
fn run_time_estimates_outlive_one_run() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let mut registry = Registry::new();
    for w in 0..40 {
        let id = format!("w{w}");
        admin
            .save_workflow(WorkflowDefinition { id: id.clone(), name: id.clone(), owner: "admin".into(), active: true })
            .unwrap();
        registry = registry.workflow(&id, |_: &JobContext<'_>| Outcome::Succeeded);
    }
    let service = Service::new(&f.engine, ServiceConfig { install_defaults: false, ..config() }, registry);
    let burst =
        |n| (0..40).flat_map(|w| (0..n).map(move |i| workflow_job(&format!("{w}.{i}"), &format!("w{w}")))).collect();
    admin.create_many(burst(1)).unwrap();
    assert_eq!(service.run(RunUntil::Idle).unwrap().succeeded, 40);
    admin.create_many(burst(5)).unwrap();
    let syncs = f.engine.log_stats().syncs;
    assert_eq!(service.run(RunUntil::Idle).unwrap().succeeded, 200);
    let used = f.engine.log_stats().syncs - syncs;
    assert!(used <= 10, "{used} syncs for 200 no-op runs of 40 workflows already seen: their estimates were forgotten");
}

/// A second service on an engine whose service runs is refused as busy
/// (`Error::ServiceRunning`), not as bad input, and changes nothing.
#[test]
fn a_second_service_on_the_same_engine_is_refused_as_busy() {
    let f = fixture();
    let admin = f.engine.session("admin").unwrap();
    let started = Arc::new(Mutex::new(Vec::new()));
    let svc = Service::new(&f.engine, config(), Registry::new().workflow("welcome", cooperative(started.clone())));
    let second = Service::new(&f.engine, config(), outcomes());
    let job = admin.create(workflow_job("long", "welcome")).unwrap();
    std::thread::scope(|s| {
        let runner = s.spawn(|| svc.run(RunUntil::Stopped).unwrap());
        wait_started(&started, job.id);
        let e = second.run(RunUntil::Idle).unwrap_err();
        assert!(matches!(e, joblog::Error::ServiceRunning), "{e:?}");
        svc.stop();
        runner.join().unwrap();
    });
    // Once the first returned, another may run.
    second.run(RunUntil::Idle).unwrap();
}
