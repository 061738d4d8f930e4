//! The dashboard in a real browser: a server started in this process over a
//! seeded temporary store, driven by `tests/browser/test_dashboard.py`
//! (Playwright for Python, the system's Chromium). Outside CI, a machine
//! without Chromium or Playwright skips it with a notice; in CI (`CI` set)
//! their absence fails the test (`.ci/run` installs both).
//!
//! `JOBLOG_SCREENSHOTS=$PWD/docs/screenshots cargo test -p joblog-server
//! --test browser` refreshes the screenshots in `docs/screenshots/`.
//!
//! `cargo test -p joblog-server --test browser -- --ignored serve` serves
//! the same seeded store on 127.0.0.1:8080 for a person to look at (it
//! prints the tokens), until the process is stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use joblog::domain::{Clock, Depth, Privilege, Regarding, Role, SystemClock, Timestamp, WorkflowDefinition};
use joblog::engine::{NewJob, ServiceStep};
use joblog::{Config, Engine, OperationType};
use joblog_server::{HttpConfig, Limits};

/// The system's clock moved by an offset: the seed writes jobs as if weeks
/// ago (so that some are old enough for a bulk deletion), then the clock
/// is set back to now for the browser.
struct Shifted(AtomicI64);

impl Clock for Shifted {
    fn now(&self) -> Timestamp {
        SystemClock.now().plus_micros(self.0.load(Ordering::Relaxed))
    }
}

const DAY: i64 = 86_400_000_000;

/// The seeded store: what the browser test expects to find.
struct Seeded {
    engine: Engine,
    /// Tokens: an administrator's and a read-only user's.
    admin_token: String,
    viewer_token: String,
}

fn seed(dir: &Path) -> Seeded {
    let clock = Arc::new(Shifted(AtomicI64::new(-40 * DAY)));
    let engine = Engine::open(dir, Config::default(), clock.clone()).expect("open");
    let admin = engine.session("admin").expect("admin");
    admin.add_business_unit("sales", "root").expect("unit");
    admin.add_role(Role::new("org-reader", [(Privilege::Read, Depth::Organization)])).expect("role");
    admin.add_user("viewer", "sales", &["org-reader"]).expect("viewer");
    admin.add_user("alice", "sales", &["basic-user"]).expect("alice");
    for (id, name) in [("wf-invoice", "Send invoices"), ("wf-sync", "Sync contacts")] {
        admin
            .save_workflow(WorkflowDefinition { id: id.into(), name: name.into(), owner: "alice".into(), active: true })
            .expect("workflow");
    }
    let worker = engine.worker("seed-host");
    // Forty days ago: completed runs, old enough for a 30-day deletion.
    let mut old = Vec::new();
    for i in 0..30 {
        let mut j = NewJob::new(&format!("Nightly export {i:02}"), OperationType::WORKFLOW);
        j.workflow = Some("wf-sync".into());
        old.push(admin.create(j).expect("create").id);
    }
    for (i, id) in old.iter().enumerate() {
        worker.step(*id, ServiceStep::Lock).expect("lock");
        if i % 5 == 4 {
            worker
                .step(*id, ServiceStep::Fail { code: -2147220891, message: "remote host refused".into() })
                .expect("fail");
        } else {
            worker.step(*id, ServiceStep::Succeed).expect("succeed");
        }
    }
    // A name that would be markup if a page did not escape it.
    let mut j = NewJob::new("Report <b>Q4</b> <img src=x onerror=alert(1)> & co", OperationType::SYSTEM_EVENT);
    j.regarding = Some(Regarding::parse("account:9").expect("regarding"));
    let report = admin.create(j).expect("create").id;
    worker.step(report, ServiceStep::Lock).expect("lock");
    worker.step(report, ServiceStep::Succeed).expect("succeed");
    // The last day: a few runs an hour, for the overview's charts.
    for h in (2..24).rev() {
        clock.0.store(-h * 3_600_000_000, Ordering::Relaxed);
        for k in 0..(h % 5 + 1) {
            let id = admin
                .create(NewJob::new(&format!("Hourly sync {h}.{k}"), OperationType::SYSTEM_EVENT))
                .expect("create")
                .id;
            worker.step(id, ServiceStep::Lock).expect("lock");
            if (h + k) % 4 == 0 {
                worker
                    .step(id, ServiceStep::Fail { code: -2147204345, message: "endpoint unavailable".into() })
                    .expect("fail");
            } else {
                worker.step(id, ServiceStep::Succeed).expect("succeed");
            }
        }
    }
    // Now: a live queue of every kind.
    clock.0.store(-3_600_000_000, Ordering::Relaxed);
    let mut ready = Vec::new();
    for i in 0..70 {
        let (name, t) = match i % 3 {
            0 => (format!("Send invoice #{}", 1000 + i), OperationType::WORKFLOW),
            1 => (format!("Bulk email campaign {i}"), OperationType::BULK_EMAIL),
            _ => (format!("System event {i}"), OperationType::SYSTEM_EVENT),
        };
        let mut j = NewJob::new(&name, t);
        if t == OperationType::WORKFLOW {
            j.workflow = Some("wf-invoice".into());
            j.regarding = Some(Regarding::parse(&format!("account:{}", i % 4)).expect("regarding"));
        }
        if i % 7 == 0 {
            j.owner = Some("alice".into());
        }
        ready.push(admin.create(j).expect("create").id);
    }
    worker.step(ready[3], ServiceStep::Lock).expect("lock");
    // One retried twice and waiting for its next try.
    clock.0.store(-3_000_000_000, Ordering::Relaxed);
    let mut j = NewJob::new("Import contacts.csv", OperationType(5));
    j.regarding = Some(Regarding::parse("contact:42").expect("regarding"));
    let retried = admin.create(j).expect("create").id;
    for n in 0..2 {
        worker.step(retried, ServiceStep::Lock).expect("lock");
        let until = clock.now().plus_micros(if n == 0 { 1_000_000 } else { 2 * 3_600_000_000 });
        worker
            .step(
                retried,
                ServiceStep::Retry { until, message: format!("timeout reading row {} (attempt {})", 17 + n, n + 1) },
            )
            .expect("retry");
        if n == 0 {
            clock.0.store(-2_400_000_000, Ordering::Relaxed);
            worker.step(retried, ServiceStep::Wake).expect("wake");
        }
    }
    // A failing workflow, seconds ago: seven failures in a row hold it back
    // for 16 minutes, longer than the browser test takes to get to it.
    clock.0.store(-5_000_000, Ordering::Relaxed);
    for i in 0..7 {
        let mut j = NewJob::new(&format!("Send invoice retry {i}"), OperationType::WORKFLOW);
        j.workflow = Some("wf-invoice".into());
        let id = admin.create(j).expect("create").id;
        worker.step(id, ServiceStep::Lock).expect("lock");
        worker
            .step(id, ServiceStep::Fail { code: -2147220970, message: format!("SMTP 451 temporary failure ({i})") })
            .expect("fail");
    }
    clock.0.store(0, Ordering::Relaxed);
    let admin_token = token(&engine, "admin");
    let viewer_token = token(&engine, "viewer");
    Seeded { engine, admin_token, viewer_token }
}

/// A bearer token for `user`, as `joblog token create USER` makes one.
fn token(engine: &Engine, user: &str) -> String {
    let admin = engine.session("admin").expect("admin");
    admin.create_token(user, Some("browser test"), None).expect("token").token
}

fn start(engine: Engine, addr: &str) -> joblog_server::Server {
    let config = HttpConfig { addr: addr.into(), tls: None, limits: Limits::default() };
    joblog_server::start(engine, Arc::new(AtomicBool::new(true)), config).expect("start the server")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/test_dashboard.py")
}

/// What is missing to run the browser test here, if anything.
fn missing_tools() -> Option<String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (apt-get install -y chromium)".into());
    }
    match Command::new("python3").args(["-c", "import playwright.sync_api"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(_) => Some("Playwright for Python is missing (pip install playwright)".into()),
        Err(e) => Some(format!("python3 cannot run: {e}")),
    }
}

#[test]
fn dashboard_in_a_real_browser() {
    if let Some(why) = missing_tools() {
        assert!(std::env::var_os("CI").is_none(), "the browser test cannot run in CI: {why}");
        eprintln!("SKIPPED dashboard_in_a_real_browser: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seed(dir.path());
    let server = start(s.engine.clone(), "127.0.0.1:0");
    let base = format!("http://{}", server.local_addr().unwrap());
    // The screenshots go to a scratch directory, or where
    // JOBLOG_SCREENSHOTS says (`JOBLOG_SCREENSHOTS=docs/screenshots`
    // refreshes the committed ones).
    let shots = match std::env::var_os("JOBLOG_SCREENSHOTS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"),
    };
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let status = Command::new("python3")
        .arg(script())
        .args(["--base", &base, "--token", &s.admin_token, "--viewer-token", &s.viewer_token])
        .arg("--shots")
        .arg(&shots)
        .status()
        .expect("run the browser test");
    server.stop();
    assert!(status.success(), "the browser test failed ({status}); its output is above");
}

/// Serves the seeded store for a person to look at.
#[test]
#[ignore = "serves until stopped: run it by name"]
fn serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = seed(dir.path());
    let server = start(s.engine.clone(), "127.0.0.1:8080");
    println!(
        "serving on http://{} — admin token {} — read-only token {}",
        server.local_addr().unwrap(),
        s.admin_token,
        s.viewer_token
    );
    loop {
        std::thread::park();
    }
}
