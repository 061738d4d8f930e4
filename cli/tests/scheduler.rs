//! The service's scheduler on the real `joblog` binary: back-off that holds
//! under a burst, a service that always goes idle, `run --once` running
//! what is due, the operator log, and failures in a row counted by run
//! order in `stats` and the service alike.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const T0: &str = "2026-01-31T12:00:00Z";

mod support;

use support::{exits_within, Store};

impl Store {
    /// Runs a command to its end, but never longer than `limit`: a command
    /// still running then is killed and the test fails.
    fn bounded(&self, args: &[&str], limit: Duration) -> Output {
        let child =
            self.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        exits_within(child, limit, &format!("joblog {args:?}"))
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.bounded(args, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "joblog {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn import(&self, lines: &[String]) {
        let file = self.dir.path().join("import.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        assert_eq!(self.json(&["--now", T0, "import", file.to_str().unwrap()])["imported"], lines.len());
    }

    fn jobs(&self, filters: &[&str]) -> Vec<Value> {
        let mut a = vec!["list", "--limit", "1000"];
        a.extend_from_slice(filters);
        self.json(&a).as_array().unwrap().clone()
    }

    fn show(&self, id: &str) -> Value {
        self.json(&["show", id])
    }
}

fn at(t: &str) -> String {
    format!("2026-01-31T{t}Z")
}

#[test]
fn a_burst_of_a_broken_workflow_stops_at_the_threshold_then_probes_one_at_a_time() {
    let s = Store::new();
    s.json(&["--now", T0, "workflow", "add", "broken", "--name", "Broken", "--owner", "admin"]);
    for i in 0..40 {
        s.json(&["--now", T0, "submit", "--name", &format!("b{i}"), "--workflow", "broken", "--command", "false"]);
    }
    // The default back-off: after 3 failures in a row, 1 min (±10%).
    let run = s.json(&["--now", T0, "run", "--until-idle"]);
    assert_eq!((run["ran"].as_u64(), run["failed"].as_u64()), (Some(3), Some(3)), "{run}");
    assert_eq!(run["deferred"], 37, "{run}");
    let held = s.jobs(&["--workflow", "broken", "--status", "waiting"]);
    assert_eq!(held.len(), 37);
    assert!(held.iter().all(|j| j["message"].as_str().unwrap().contains("held until")), "{held:?}");
    assert!(held.iter().all(|j| j["startedon"].is_null()), "a held job never shows a start");
    let stats = s.json(&["--now", T0, "stats"]);
    let backoff = &stats["backoff"][0];
    assert_eq!((backoff["workflow"].as_str(), backoff["consecutive_failures"].as_u64()), (Some("broken"), Some(3)));

    // Still held: nothing runs.
    let run = s.json(&["--now", &at("12:00:30"), "run", "--until-idle"]);
    assert_eq!(run["ran"], 0, "{run}");
    // The hold passed: its jobs wake, one probe runs, fails, and the
    // others are held again (2 min now).
    let run = s.json(&["--now", &at("12:02:00"), "run", "--until-idle"]);
    assert_eq!((run["ran"].as_u64(), run["failed"].as_u64()), (Some(1), Some(1)), "{run}");
    assert_eq!(s.jobs(&["--workflow", "broken", "--status", "failed"]).len(), 4);
    let stats = s.json(&["--now", &at("12:02:00"), "stats"]);
    assert_eq!(stats["backoff"][0]["consecutive_failures"], 4);
}

#[test]
fn until_idle_returns_with_a_past_timer_in_every_suspended_reason() {
    let s = Store::new();
    // Suspended / Waiting, Retrying and Paused, each with a postponeuntil
    // in the past; and Waiting with none (a data error: waits for a user).
    let lines: Vec<String> = [("waiting", 10, true), ("retrying", 11, true), ("paused", 12, true), ("stuck", 10, false)]
        .iter()
        .enumerate()
        .map(|(i, (name, code, timed))| {
            let postpone = if *timed { r#","postponeuntil":"2026-01-01T00:00:00Z""# } else { "" };
            format!(
                r#"{{"asyncoperationid":"0193a3c0-2222-7000-8000-00000000000{i}","name":"{name}","operationtype":10,"statecode":1,"statuscode":{code},"createdon":"2025-12-01T00:00:00Z","command":"true"{postpone}}}"#
            )
        })
        .collect();
    s.import(&lines);
    let out = s.bounded(&["--now", T0, "run", "--until-idle", "--json"], Duration::from_secs(30));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((run["ran"].as_u64(), run["succeeded"].as_u64()), (Some(2), Some(2)), "{run}");
    let status = |i: u32| s.show(&format!("0193a3c0-2222-7000-8000-00000000000{i}"))["status"].clone();
    assert_eq!([status(0), status(1), status(2), status(3)], ["Succeeded", "Succeeded", "Paused", "Waiting"]);
    // And again, with nothing left to wake: still returns.
    let out = s.bounded(&["--now", T0, "run", "--until-idle", "--json"], Duration::from_secs(30));
    assert!(out.status.success());
    // A resumed paused job runs.
    s.json(&["--now", T0, "resume", "0193a3c0-2222-7000-8000-000000000002"]);
    let run = s.json(&["--now", T0, "run", "--until-idle"]);
    assert_eq!(run["succeeded"], 1, "{run}");
}

#[test]
fn run_once_wakes_and_runs_a_due_job_in_the_same_call() {
    let s = Store::new();
    let marker = s.dir.path().join("ran");
    let command = format!("touch {}", marker.display());
    s.import(&[format!(
        r#"{{"asyncoperationid":"0193a3c0-3333-7000-8000-000000000001","name":"due","operationtype":10,"statecode":1,"statuscode":10,"createdon":"2026-01-31T11:00:00Z","postponeuntil":"2026-01-31T11:30:00Z","command":{}}}"#,
        serde_json::to_string(&command).unwrap()
    )]);
    for i in 0..5 {
        s.json(&["--now", T0, "submit", "--name", &format!("ready {i}"), "--type", "bulk-email", "--command", "true"]);
    }
    let run = s.json(&["--now", T0, "run", "--once"]);
    assert_eq!((run["ran"].as_u64(), run["succeeded"].as_u64()), (Some(6), Some(6)), "{run}");
    assert!(marker.exists(), "the due job's command ran");
    let due = s.show("0193a3c0-3333-7000-8000-000000000001");
    assert_eq!(due["status"], "Succeeded", "{due}");
}

#[test]
fn the_operator_log_is_one_json_line_per_event_with_its_fields() {
    let s = Store::new();
    s.json(&["--now", T0, "workflow", "add", "broken", "--name", "Broken", "--owner", "admin"]);
    let ok = s.json(&["--now", T0, "submit", "--name", "fine", "--type", "bulk-email", "--command", "true"]);
    let mut bad = Vec::new();
    for i in 0..4 {
        bad.push(s.json(&[
            "--now",
            T0,
            "submit",
            "--name",
            &format!("bad {i}"),
            "--workflow",
            "broken",
            "--command",
            "exit 3",
        ]));
    }
    let out = s.ok(&["--now", T0, "run", "--until-idle", "--log-format", "json"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let with = |m: &str| lines.iter().filter(|l| l["message"] == m).collect::<Vec<_>>();
    assert_eq!(with("service started").len(), 1, "{lines:?}");
    assert_eq!(with("service stopped").len(), 1, "{lines:?}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string() && l["target"].is_string(), "{l}");
    }
    let id = ok["asyncoperationid"].as_str().unwrap();
    let started = with("job started");
    let ended = with("job ended");
    assert_eq!((started.len(), ended.len()), (4, 4), "1 fine, 3 broken, then the back-off: {lines:?}");
    let end = ended.iter().find(|l| l["id"] == id).expect("the fine job's end");
    assert_eq!((end["name"].as_str(), end["workflow"].as_str()), (Some("fine"), Some("")));
    assert_eq!(end["outcome"], "succeeded");
    assert!(end["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{end}");
    assert!(started.iter().any(|l| l["id"] == id && l["name"] == "fine"));
    let failed: Vec<_> = ended.iter().filter(|l| l["workflow"] == "broken").collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|l| l["outcome"] == "failed" && l["error"].as_str().unwrap().contains('3')));
    let hold = with("workflow held (back-off): its jobs wait until then, then run one at a time");
    assert_eq!(hold.len(), 1, "{lines:?}");
    assert_eq!(
        (hold[0]["level"].as_str(), hold[0]["workflow"].as_str(), hold[0]["failures"].as_u64()),
        (Some("WARN"), Some("broken"), Some(3))
    );
    assert!(hold[0]["until"].is_string());

    // Levels: warn keeps the hold and drops the job lines; a bad level is
    // a usage error that runs nothing.
    let out = s.ok(&["--now", &at("12:30:00"), "run", "--until-idle", "--log-format", "json", "--log-level", "warn"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("job started"), "{text}");
    assert!(text.contains("workflow held"), "the probe failed and the hold is logged: {text}");
    for bad in ["loud=?", "warning", "", "info,"] {
        let out = s.bounded(&["run", "--until-idle", "--log-level", bad], Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.starts_with("joblog: --log-level") && err.contains("info"), "{bad:?}: {err}");
    }
    assert_eq!(s.jobs(&["--state", "ready"]).len(), 1, "a refused level ran nothing (the default Bulk Delete waits)");
    // Human lines by default.
    let out = s.ok(&["--now", &at("12:30:00"), "run", "--until-idle"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.lines().any(|l| l.contains("INFO") && l.contains("service started")), "{text}");
    let _ = bad;
}

#[test]
fn failures_in_a_row_are_counted_by_run_order_in_stats_and_the_service() {
    let s = Store::new();
    s.json(&["--now", T0, "workflow", "add", "w", "--name", "W", "--owner", "admin"]);
    // Created: f1 < f2 < f3 < ok; ended: ok < f1 < f2 < f3. By creation the
    // newest run succeeded; by run order the last three failed.
    let job = |i: u32, name: &str, created: &str, completed: &str, code: u32| {
        format!(
            r#"{{"asyncoperationid":"0193a3c0-4444-7000-8000-00000000000{i}","name":"{name}","operationtype":10,"workflowactivationid":"w","statecode":3,"statuscode":{code},"createdon":"{}","completedon":"{}"}}"#,
            at(created),
            at(completed)
        )
    };
    s.import(&[
        job(1, "f1", "09:00:00", "11:58:00", 31),
        job(2, "f2", "09:01:00", "11:59:00", 31),
        job(3, "f3", "09:02:00", "11:59:50", 31),
        job(4, "ok", "10:00:00", "10:01:00", 30),
    ]);
    let now = T0.to_string();
    let stats = s.json(&["--now", &now, "stats"]);
    let b = &stats["backoff"][0];
    assert_eq!((b["workflow"].as_str(), b["consecutive_failures"].as_u64()), (Some("w"), Some(3)), "{stats}");
    let until = b["held_until"].as_str().expect("held");
    assert!(until > "2026-01-31T12:00:43Z" && until < "2026-01-31T12:00:57Z", "1 min ±10% after the last: {until}");
    let text = String::from_utf8_lossy(&s.ok(&["--now", &now, "stats"]).stdout).into_owned();
    assert!(!text.contains("no workflow is failing"), "{text}");
    // The service holds the workflow's next job just the same.
    let next = s.json(&["--now", &now, "submit", "--name", "next", "--workflow", "w", "--command", "true"]);
    let run = s.json(&["--now", &now, "run", "--until-idle"]);
    assert_eq!((run["ran"].as_u64(), run["deferred"].as_u64()), (Some(0), Some(1)), "{run}");
    let next = s.show(next["asyncoperationid"].as_str().unwrap());
    assert_eq!(next["postponeuntil"].as_str(), Some(until), "{next}");
}

#[test]
fn a_job_shows_in_progress_only_when_a_worker_starts_it() {
    let s = Store::new();
    for i in 0..6 {
        s.json(&[
            "--now",
            T0,
            "submit",
            "--name",
            &format!("slow {i}"),
            "--type",
            "bulk-email",
            "--command",
            "sleep 0.4",
        ]);
    }
    let mut service = s
        .command(&["run", "--until-idle", "--workers", "2", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    let mut seen = 0;
    while service.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the service did not finish 6 jobs of 0.4 s");
        // Through the running service's socket (or the store, once it ended).
        let out = s.command(&["list", "--state", "locked", "--json"]).output().unwrap();
        if let Ok(Value::Array(locked)) = serde_json::from_slice::<Value>(&out.stdout) {
            most = most.max(locked.len());
            seen += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(service.wait().unwrap().success());
    assert!(seen > 0, "the service was never seen running");
    assert!(most <= 2, "{most} jobs shown Locked with 2 workers: a job waiting for a worker is not In Progress");
    assert_eq!(s.jobs(&["--status", "succeeded"]).len(), 6);
}

/// In the human log a job's name (any stored text) is quoted and escaped,
/// so a name cannot forge another field of its line; JSON keeps it exact.
#[test]
fn a_job_name_cannot_forge_a_field_of_a_log_line() {
    let s = Store::new();
    let name = "x outcome=\"succeeded\" duration_ms=1";
    s.json(&["--now", T0, "submit", "--name", name, "--type", "bulk-email", "--command", "exit 3"]);
    let out = s.ok(&["--now", T0, "run", "--until-idle", "--log-format", "human"]);
    let log = String::from_utf8_lossy(&out.stderr);
    let ended = log.lines().find(|l| l.contains("job ended")).unwrap_or_else(|| panic!("no end line: {log}"));
    let quoted = r#"name="x outcome=\"succeeded\" duration_ms=1""#;
    assert!(ended.contains(quoted), "{ended}");
    let fields = ended.replace(quoted, "");
    assert_eq!(fields.matches(" outcome=").count(), 1, "one outcome field: {ended}");
    assert!(fields.contains(r#"outcome="failed""#), "{ended}");
    s.json(&["--now", T0, "submit", "--name", name, "--type", "bulk-email", "--command", "true"]);
    let out = s.ok(&["--now", T0, "run", "--until-idle", "--log-format", "json"]);
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stderr).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["message"] == "job ended" && l["name"] == name), "{lines:?}");
}
