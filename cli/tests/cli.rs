//! The `joblog` binary end to end, against `docs/cli.md`: every
//! command, its JSON field by field, each exit code, imports good and bad,
//! the views, replay at past times, verify catching a flipped byte, the
//! service serving other commands through its socket, and a small demo.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const T0: &str = "2026-01-31T12:00:00Z";

fn at(secs: u32) -> String {
    format!("2026-01-31T12:{:02}:{:02}Z", secs / 60, secs % 60)
}

mod support;

use support::{eventually, Store};

impl Store {
    fn raw(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command; checks its exit code; returns stdout.
    fn run(&self, code: i32, args: &[&str]) -> String {
        let out = self.raw(args);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "joblog {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        if code != 0 {
            assert_eq!(stderr.trim().lines().count(), 1, "one clear line on stderr: {stderr}");
        }
        stdout.into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(0, &a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// A failing command's stderr line.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.raw(args);
        assert_eq!(out.status.code(), Some(code), "joblog {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn submit(s: &Store, now: &str, extra: &[&str]) -> Value {
    let mut a = vec!["--now", now, "submit"];
    if !extra.contains(&"--command") {
        // (`joblog run` runs command jobs only: a job without a command
        // says that a program embedding joblog runs it.)
        a.push("--external-handler");
    }
    a.extend_from_slice(extra);
    s.json(&a)
}

const JOB_FIELDS: [&str; 21] = [
    "asyncoperationid",
    "name",
    "operationtype",
    "operationtype_name",
    "statecode",
    "state",
    "statuscode",
    "status",
    "ownerid",
    "owningbusinessunit",
    "regardingobjectid",
    "workflowactivationid",
    "createdon",
    "startedon",
    "completedon",
    "postponeuntil",
    "retrycount",
    "errorcode",
    "message",
    "dependencytoken",
    "depth",
];

#[test]
fn users_workflows_submit_list_show_and_actions() {
    let s = Store::new();
    assert!(s.fails(3, &["list"]).contains("no joblog data"));
    let u = s.json(&["--now", T0, "user", "add", "alice", "--role", "basic-user", "--business-unit", "root"]);
    assert_eq!((u["name"].as_str(), u["active"].as_bool()), (Some("alice"), Some(true)));
    s.json(&["--now", T0, "business-unit", "add", "sales", "--parent", "root"]);
    s.json(&["--now", T0, "user", "add", "bob", "--business-unit", "sales"]);
    s.json(&["--now", T0, "role", "add", "auditor", "--privilege", "read:organization"]);
    s.json(&["--now", T0, "user", "add", "carol", "--role", "auditor"]);
    let w = s.json(&["--now", T0, "workflow", "add", "welcome", "--name", "Welcome email", "--owner", "alice"]);
    assert_eq!(w["owner"], "alice");
    assert_eq!(s.json(&["workflow", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(s.json(&["user", "list"]).as_array().unwrap().len(), 4);

    let job =
        submit(&s, &at(1), &["--name", "Send welcome email", "--workflow", "welcome", "--regarding", "contact:42"]);
    for f in JOB_FIELDS {
        assert!(job.get(f).is_some(), "Job JSON lacks {f}: {job}");
    }
    assert_eq!(job["operationtype"], 10);
    assert_eq!(job["operationtype_name"], "Workflow");
    assert_eq!((job["statecode"].as_u64(), job["state"].as_str()), (Some(0), Some("Ready")));
    assert_eq!((job["statuscode"].as_u64(), job["status"].as_str()), (Some(0), Some("Waiting For Resources")));
    assert_eq!(job["ownerid"], "alice", "a workflow job is owned by its workflow's owner");
    assert_eq!(job["regardingobjectid"], "contact:42");
    assert_eq!(job["createdon"], at(1));
    assert!(job["startedon"].is_null() && job["completedon"].is_null());
    let id = job["asyncoperationid"].as_str().unwrap().to_string();

    let other = submit(&s, &at(2), &["--name", "Newsletter", "--type", "bulk-email", "--owner", "bob"]);
    let later = submit(&s, &at(3), &["--name", "Later", "--type", "2", "--postpone-until", "2026-02-01T00:00:00Z"]);
    assert_eq!(later["postponeuntil"], "2026-02-01T00:00:00Z");

    // Views.
    let all = s.json(&["list"]);
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Later", "Newsletter", "Send welcome email"], "newest first");
    assert_eq!(s.json(&["list", "--type", "bulk-email"]).as_array().unwrap().len(), 2);
    assert_eq!(s.json(&["list", "--workflow", "welcome"]).as_array().unwrap().len(), 1);
    assert_eq!(s.json(&["list", "--regarding", "contact:42"])[0]["asyncoperationid"], id.as_str());
    assert_eq!(s.json(&["list", "--count"])["count"], 3);
    assert_eq!(s.json(&["--as", "alice", "list", "--count"])["count"], 1, "basic users see their own");
    assert_eq!(s.json(&["--as", "carol", "list", "--count"])["count"], 3, "auditors read everything");
    let page = s.raw(&["list", "--limit", "1", "--json"]);
    let cursor = String::from_utf8_lossy(&page.stderr).trim().strip_prefix("next page: --after ").unwrap().to_string();
    let next = s.json(&["list", "--limit", "1", "--after", &cursor]);
    assert_eq!(next[0]["name"], "Newsletter");
    let table = s.run(0, &["list"]);
    assert!(table.starts_with("System Job Name"), "{table}");
    assert!(table.contains("Waiting For Resources"));

    // Actions and their refusals.
    let paused = s.fails(4, &["--now", &at(10), "pause", &id]);
    assert!(paused.contains("cannot pause job") && paused.contains("Ready/Waiting For Resources"), "{paused}");
    let denied =
        s.fails(5, &["--now", &at(10), "--as", "alice", "cancel", other["asyncoperationid"].as_str().unwrap()]);
    assert!(denied.contains("alice may not"), "{denied}");
    let err = s.fails(3, &["show", "0193a3c0-0000-7000-8000-000000000000"]);
    assert!(err.contains("no job 0193a3c0-0000-7000-8000-000000000000"), "{err}");
    s.fails(2, &["show", "not-an-id"]);
    s.fails(2, &["list", "--status", "sleeping"]);
    s.fails(2, &["frobnicate"]);
    let back = s.fails(2, &["--now", "2026-01-01T00:00:00Z", "cancel", &id]);
    assert!(back.contains("earlier than the newest"), "{back}");
    let canceled = s.json(&["--now", &at(11), "--as", "alice", "cancel", &id]);
    assert_eq!((canceled["state"].as_str(), canceled["status"].as_str()), (Some("Completed"), Some("Canceled")));
    let postponed = s.json(&[
        "--now",
        &at(12),
        "postpone",
        other["asyncoperationid"].as_str().unwrap(),
        "--until",
        "2026-03-01T00:00:00Z",
    ]);
    assert_eq!(postponed["status"], "Waiting");
    let resumed = s.json(&["--now", &at(13), "resume", "--type", "bulk-email", "--all-matching"]);
    assert_eq!((resumed["matched"].as_u64(), resumed["changed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(resumed["refused"].as_array().unwrap().len(), 1);
    assert!(resumed["refused"][0]["reason"].as_str().unwrap().contains("resume"));
    s.fails(2, &["--now", &at(14), "cancel"]);

    let shown = s.json(&["show", &id, "--history"]);
    let h = shown["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    for f in ["seq", "at", "actor", "statecode", "statuscode", "postponeuntil", "message"] {
        assert!(h[1].get(f).is_some(), "history lacks {f}");
    }
    assert_eq!(
        (h[1]["statecode"].as_u64(), h[1]["statuscode"].as_u64(), h[1]["actor"].as_str()),
        (Some(3), Some(32), Some("alice"))
    );

    // Owner change and reassignment.
    s.json(&["--now", &at(20), "workflow", "set-owner", "welcome", "bob"]);
    let r = s.json(&["--now", &at(21), "reassign", "--workflow", "welcome", "--from", "alice", "--to", "bob"]);
    assert_eq!(r["moved"], 0, "alice's only run is canceled");
    s.fails(
        5,
        &["--now", &at(22), "--as", "bob", "reassign", "--workflow", "welcome", "--from", "bob", "--to", "alice"],
    );
    let d = s.json(&["--now", &at(23), "user", "deactivate", "bob"]);
    assert_eq!(d["active"], false);
}

#[test]
fn import_is_all_or_nothing_with_line_numbers_and_replay_shows_the_past() {
    let s = Store::new();
    let good = s.dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        [
            r#"{"name":"old import","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","startedon":"2025-06-01T00:00:01Z","completedon":"2025-06-01T00:01:00Z","regardingobjectid":"account:7"}"#,
            r#"{"name":"failed import","operationtype_name":"Bulk Email","state":"completed","status":"failed","createdon":"2025-07-01T00:00:00Z","completedon":"2025-07-01T00:05:00Z","errorcode":-2147204783,"message":"bad address"}"#,
            r#"{"asyncoperationid":"0193a3c0-1111-7000-8000-000000000001","name":"waiting import","operationtype":10,"statecode":1,"statuscode":10,"createdon":"2025-08-01T00:00:00Z","postponeuntil":"2026-03-01T00:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    assert_eq!(s.json(&["--now", T0, "import", good.to_str().unwrap()])["imported"], 3);
    let waiting = s.json(&["show", "0193a3c0-1111-7000-8000-000000000001"]);
    assert_eq!(
        (waiting["state"].as_str(), waiting["postponeuntil"].as_str()),
        (Some("Suspended"), Some("2026-03-01T00:00:00Z"))
    );

    let bad = s.dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        [
            r#"{"name":"fine","operationtype":10,"statecode":0,"statuscode":0,"createdon":"2025-06-01T00:00:00Z"}"#,
            r#"{"name":"bad pair","operationtype":10,"statecode":3,"statuscode":10,"createdon":"2025-06-01T00:00:00Z"}"#,
            r#"not json"#,
            r#"{"name":"bad time","operationtype":10,"statecode":0,"statuscode":0,"createdon":"yesterday"}"#,
            r#"{"asyncoperationid":"0193a3c0-1111-7000-8000-000000000001","name":"dup","statecode":0,"statuscode":0,"createdon":"2025-06-01T00:00:00Z"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = s.raw(&["--now", T0, "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let report = String::from_utf8_lossy(&out.stdout);
    for line in ["line 2:", "line 3:", "line 4:", "line 5:"] {
        assert!(report.contains(line), "{line} not reported: {report}");
    }
    assert!(!report.contains("line 1:"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was imported"));
    assert_eq!(s.json(&["list", "--count"])["count"], 3, "nothing of the bad file was kept");

    let csv = s.dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "System Job Name,System Job Type,Status,Status Reason,Owner,Regarding,Created On,Started On,Completed On,Message\n\
         CSV one,Workflow,Completed,Succeeded,admin,contact:1,2025-09-01 10:00:00,2025-09-01 10:00:01,2025-09-01 10:00:05,\n\
         CSV two,System Event,Completed,Canceled,admin,,2025-09-02T10:00:00Z,,2025-09-02T11:00:00Z,\"canceled, by hand\"\n",
    )
    .unwrap();
    assert_eq!(s.json(&["--now", T0, "import", csv.to_str().unwrap()])["imported"], 2);
    let two = s.json(&["list", "--type", "system-event"]);
    assert_eq!((two[0]["status"].as_str(), two[0]["message"].as_str()), (Some("Canceled"), Some("canceled, by hand")));
    let bad_csv = s.dir.path().join("bad.csv");
    std::fs::write(&bad_csv, "System Job Name,System Job Type,Status,Status Reason,Created On\nx,Workflow,Ready,Succeeded,2025-09-01 10:00:00\n").unwrap();
    assert!(s.fails(2, &["--now", T0, "import", bad_csv.to_str().unwrap()]).contains("line 2"));

    // Later changes, then the past as it was.
    let id = s.json(&["list", "--status", "waiting"])[0]["asyncoperationid"].as_str().unwrap().to_string();
    s.json(&["--now", &at(5), "cancel", &id]);
    let before = s.json(&["replay", "--until", "2026-01-31T12:00:01Z", "--status", "waiting"]);
    assert_eq!(before.as_array().unwrap().len(), 1, "still waiting then");
    let after = s.json(&["replay", "--until", &at(6), "--status", "waiting"]);
    assert_eq!(after.as_array().unwrap().len(), 0);
    let long_ago = s.json(&["replay", "--until", "2025-01-01T00:00:00Z"]);
    assert_eq!(long_ago.as_array().unwrap().len(), 0, "imports are recorded when they were imported");
    assert_eq!(s.json(&["replay"]).as_array().unwrap().len(), 5);
}

#[test]
fn bulk_delete_stats_compact_and_verify() {
    let s = Store::new();
    let file = s.dir.path().join("old.jsonl");
    let lines: Vec<String> = (0..300)
        .map(|i| {
            // 100 bulk emails, then Workflow: 100 Succeeded, 50 Failed, 50 Canceled.
            let op = if i < 100 { 2 } else { 10 };
            let st = match i {
                0..200 => 30,
                200..250 => 31,
                _ => 32,
            };
            format!(r#"{{"name":"job {i}","operationtype":{op},"statecode":3,"statuscode":{st},"createdon":"2025-10-01T00:00:00Z","completedon":"2025-10-0{}T00:00:00Z"}}"#, 1 + i % 5)
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    s.json(&["--now", T0, "import", file.to_str().unwrap()]);
    s.json(&["--now", T0, "user", "add", "dave"]);
    // Refusals: the privilege first (5), then the Workflow criterion (2).
    assert!(s.fails(5, &["--now", T0, "--as", "dave", "bulk-delete", "now"]).contains("Delete"));
    assert!(s.fails(2, &["--now", T0, "bulk-delete", "now"]).contains("Workflow"));
    assert!(s.fails(2, &["--now", T0, "bulk-delete", "now", "--type", "bulk-email"]).contains("Workflow"));
    assert!(s
        .fails(2, &["--now", T0, "bulk-delete", "now", "--type", "workflow", "--limit", "1000001"])
        .contains("1000000"));
    let r =
        s.json(&["--now", T0, "bulk-delete", "now", "--type", "workflow", "--status", "succeeded", "--limit", "50"]);
    assert_eq!((r["deleted"].as_u64(), r["remaining_matching"].as_u64()), (Some(50), Some(50)));
    for f in ["bytes_before", "bytes_after", "seconds"] {
        assert!(r[f].is_number(), "{f}");
    }
    let r = s.json(&["--now", T0, "bulk-delete", "now", "--type", "workflow"]);
    assert_eq!(r["deleted"], 150);
    assert_eq!(s.json(&["list", "--count"])["count"], 100, "the bulk email jobs stay");

    let created = s.json(&[
        "--now",
        T0,
        "bulk-delete",
        "create",
        "--name",
        "Nightly",
        "--type",
        "bulk-email",
        "--older-than",
        "10",
        "--recurrence",
        "FREQ=DAILY;INTERVAL=1",
        "--start",
        "2026-02-01T00:00:00Z",
    ]);
    assert_eq!(
        (created["operationtype"].as_u64(), created["recurrencepattern"].as_str()),
        (Some(13), Some("FREQ=DAILY;INTERVAL=1"))
    );
    assert!(s
        .fails(
            2,
            &[
                "--now",
                T0,
                "bulk-delete",
                "create",
                "--name",
                "x",
                "--type",
                "workflow",
                "--recurrence",
                "FREQ=MONTHLY"
            ]
        )
        .contains("MONTHLY"));
    s.run(0, &["--now", "2026-02-01T00:00:01Z", "run", "--until-idle"]);
    let list = s.json(&["bulk-delete", "list"]);
    let nightly: Vec<&Value> = list.as_array().unwrap().iter().filter(|j| j["name"] == "Nightly").collect();
    assert_eq!(nightly.len(), 2, "the run and its next");
    let done = nightly.iter().find(|j| j["state"] == "Completed").unwrap();
    assert_eq!((done["successcount"].as_u64(), done["failurecount"].as_u64()), (Some(100), Some(0)));

    let stats = s.json(&["stats"]);
    for f in [
        "jobs",
        "by_status",
        "by_type",
        "segments",
        "log_bytes",
        "disk_bytes",
        "projection_heap_bytes",
        "resident_bytes",
        "backoff",
    ] {
        assert!(stats.get(f).is_some(), "stats lacks {f}");
    }
    s.json(&["compact"]);
    let c = s.json(&["compact"]);
    assert_eq!(c["frames_dropped"], 0, "nothing left to drop");
    let v = s.json(&["verify"]);
    assert_eq!((v["ok"].as_bool(), v["problems"].as_array().map(Vec::len)), (Some(true), Some(0)));
    assert!(v["segments"].as_u64().unwrap() >= 1 && v["events"].as_u64().unwrap() >= 5, "{v}");

    // A flipped byte in a sealed segment: verify names it and exits 1.
    let seg = first_sealed_segment(&s.data().join("segments"));
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&seg, bytes).unwrap();
    let out = s.raw(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let problems = v["problems"].to_string();
    assert!(problems.contains(seg.file_name().unwrap().to_str().unwrap()), "{problems}");
    assert!(problems.contains("offset"), "{problems}");
}

fn first_sealed_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 2, "a sealed segment and the active one: {segs:?}");
    segs.remove(0)
}

#[test]
fn commands_reach_a_running_service_through_its_socket() {
    let s = Store::new();
    let job = submit(&s, T0, &["--name", "slow", "--type", "bulk-email", "--command", "sleep 30"]);
    let id = job["asyncoperationid"].as_str().unwrap().to_string();
    let service = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "60s", "--json"])
        .env("JOBLOG_DATA", s.data())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = s.data().join("joblog.sock");
    for _ in 0..500 {
        if socket.exists() && s.json(&["show", &id])["status"] == "In Progress" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    // Same output and exit codes as alone, same privilege checks.
    assert_eq!(s.json(&["list", "--count"])["count"], 2, "the job and the default bulk deletion");
    s.fails(4, &["resume", &id]);
    s.json(&["user", "add", "erin"]);
    s.fails(5, &["--as", "erin", "cancel", &id]);
    assert!(s.fails(2, &["--now", T0, "list"]).contains("--now"));
    // The next page's cursor reaches the client's stderr, as without the
    // service (it used to stay on the service's).
    let out = s.raw(&["list", "--limit", "1", "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let cursor = err.trim().strip_prefix("next page: --after ").unwrap_or_else(|| panic!("no cursor: {err:?}"));
    let second: Value =
        serde_json::from_slice(&s.raw(&["list", "--limit", "1", "--json", "--after", cursor]).stdout).unwrap();
    assert_eq!(second.as_array().unwrap().len(), 1, "{second}");
    let started = std::time::Instant::now();
    let canceled = s.json(&["cancel", &id]);
    assert_eq!(canceled["status"], "Canceling");
    while s.json(&["show", &id])["status"] != "Canceled" {
        assert!(started.elapsed().as_secs() < 20, "cancel did not stop the command");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGTERM stops the service gracefully.
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    let out = service.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["canceled"], 1);
    assert!(!socket.exists());
}

#[test]
fn a_small_demo_runs_and_reports() {
    let s = Store::new();
    let out = s.run(0, &["demo", "--jobs", "6000", "--days", "40", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["jobs"].as_u64().unwrap() > 5000);
    assert!(v["service"]["failed"].as_u64().unwrap() > 0 && v["service"]["deferred_by_backoff"].as_u64().unwrap() > 0);
    assert!(v["deletion"]["deleted"].as_u64().unwrap() > 0);
    assert!(v["deletion"]["bytes_after"].as_u64() <= v["deletion"]["bytes_before"].as_u64());
    assert_eq!(v["verify_ok"], true);
    // Without --data or JOBLOG_DATA: a temporary directory.
    let out = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["demo", "--jobs", "3000", "--days", "35"])
        .env_remove("JOBLOG_DATA")
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!s.dir.path().join("joblog-data").exists(), "the demo left a store behind");
    let text = String::from_utf8_lossy(&out.stdout);
    for part in ["System Jobs", "Process Session", "Background Processes", "Bulk deletion"] {
        assert!(text.contains(part), "{part} missing:\n{text}");
    }
}

/// Bulk actions by a basic user, on the real binary (issue #12, section 8):
/// `cancel`/`pause`/`resume`/`postpone --all-matching` count and name only
/// the jobs that user can read, and leave every other job as it was. Runs
/// on the system clock (no `--now`).
#[test]
fn bulk_actions_by_a_basic_user_count_and_name_only_their_jobs() {
    let s = Store::new();
    s.json(&["business-unit", "add", "sales", "--parent", "root"]);
    s.json(&["business-unit", "add", "sales-east", "--parent", "sales"]);
    s.json(&["business-unit", "add", "sales-east-nyc", "--parent", "sales-east"]);
    s.json(&["user", "add", "alice", "--role", "basic-user", "--business-unit", "sales"]);
    s.json(&["user", "add", "bob", "--role", "basic-user", "--business-unit", "sales"]);
    s.json(&["user", "add", "mia", "--role", "business-unit-manager", "--business-unit", "sales-east"]);
    s.json(&["user", "add", "nyc", "--role", "basic-user", "--business-unit", "sales-east-nyc"]);
    let mut owned: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for owner in ["admin", "alice", "bob", "mia", "nyc", "alice"] {
        let job = s.json(&[
            "submit",
            "--external-handler",
            "--name",
            &format!("{owner}'s mail"),
            "--type",
            "bulk-email",
            "--owner",
            owner,
        ]);
        owned.entry(owner).or_default().push(job["asyncoperationid"].as_str().unwrap().to_string());
    }
    let statuses = || -> std::collections::BTreeMap<String, String> {
        s.json(&["list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["asyncoperationid"].as_str().unwrap().to_string(), j["status"].as_str().unwrap().to_string()))
            .collect()
    };
    for (user, readable) in [("alice", vec!["alice"]), ("mia", vec!["mia"])] {
        let mine: Vec<&String> = readable.iter().flat_map(|o| &owned[o]).collect();
        for action in [vec!["postpone", "--until", "2099-01-01T00:00:00Z"], vec!["resume"], vec!["cancel"]] {
            let before = statuses();
            let mut args = vec!["--as", user];
            args.extend(action.iter().copied());
            args.extend(["--type", "bulk-email", "--all-matching"]);
            let out = s.json(&args);
            assert_eq!(out["matched"].as_u64(), Some(mine.len() as u64), "{user} {action:?}: {out}");
            for r in out["refused"].as_array().unwrap() {
                let id = r["id"].as_str().unwrap().to_string();
                assert!(mine.contains(&&id), "{user} {action:?} named {id}, which it cannot read: {out}");
            }
            let after = statuses();
            let changed: Vec<&String> = after.keys().filter(|id| before[*id] != after[*id]).collect();
            assert_eq!(changed.len() as u64, out["changed"].as_u64().unwrap(), "{user} {action:?}");
            for id in changed {
                assert!(mine.contains(&id), "{user} {action:?} changed {id}, another user's job");
            }
        }
    }
    // What alice and mia did not own is untouched: Ready.
    let after = statuses();
    for owner in ["admin", "bob", "nyc"] {
        for id in &owned[owner] {
            assert_eq!(after[id], "Waiting For Resources", "{owner}'s job {id}");
        }
    }
    for id in owned["alice"].iter().chain(&owned["mia"]) {
        assert_eq!(after[id], "Canceled", "{id}");
    }
}

/// An event whose frame is whole (its checksum holds) but whose bytes do
/// not decode: every command refuses with exit 1 and names the event's
/// sequence number, file and offset (a corruption, not a codec error), and
/// `verify` reports it. Nothing is changed on disk.
#[test]
fn an_undecodable_event_is_reported_with_its_place() {
    let s = Store::new();
    s.json(&["user", "add", "u1"]);
    let seg = s.data().join("segments");
    let pos = {
        let log = joblog::log::Log::open(&seg, joblog::log::LogConfig::default()).unwrap();
        let appended = log.append_batch(joblog::log::Batch::from_payloads([&b"\x02\x05garbage"[..]])).unwrap();
        log.close().unwrap();
        appended
    };
    wait_unlocked(&s);
    let _ = std::fs::remove_dir_all(s.data().join("snapshots"));
    let file = seg.join(format!("{:020}.seg", pos.first.segment));
    let before = std::fs::read(&file).unwrap();
    let seq = pos.seqs.start;
    let err = s.fails(1, &["user", "list"]);
    for want in
        [format!("event {seq}"), format!("offset {}", pos.first.offset), format!("{:020}.seg", pos.first.segment)]
    {
        assert!(err.contains(&want), "{want:?} not in: {err}");
    }
    assert!(err.contains("corrupt"), "{err}");
    let out = s.raw(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert!(report["problems"][0].as_str().unwrap().contains(&format!("event {seq}")), "{report}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "a refused open changed the segment");
}

/// Every administrative command needs Organization depth: a user whose
/// every privilege is Parent: Child from the root unit (which covers every
/// unit of a four-level tree, and still is not Organization) is refused
/// with exit 5 by each of them, and nothing changes. Runs on the system
/// clock (no `--now`).
#[test]
fn organization_only_commands_refuse_parent_child_from_the_root() {
    let s = Store::new();
    s.json(&["business-unit", "add", "l1", "--parent", "root"]);
    s.json(&["business-unit", "add", "l2", "--parent", "l1"]);
    s.json(&["business-unit", "add", "l3", "--parent", "l2"]);
    let everything_pc: Vec<String> = ["create", "read", "write", "delete", "assign"]
        .iter()
        .flat_map(|p| ["--privilege".to_string(), format!("{p}:parent-child")])
        .collect();
    let mut role = vec!["role", "add", "tree-admin"];
    role.extend(everything_pc.iter().map(String::as_str));
    s.json(&role);
    s.json(&["user", "add", "tina", "--role", "tree-admin", "--business-unit", "root"]);
    s.json(&["user", "add", "deep", "--role", "basic-user", "--business-unit", "l3"]);
    s.json(&["workflow", "add", "wf", "--owner", "deep"]);
    let job = s.json(&["submit", "--external-handler", "--name", "deep's run", "--workflow", "wf"]);
    // Parent: Child from the root reaches a job three levels down…
    let id = job["asyncoperationid"].as_str().unwrap();
    assert_eq!(s.json(&["--as", "tina", "show", id])["ownerid"], "deep");
    let file = s.dir.path().join("rows.jsonl");
    std::fs::write(
        &file,
        r#"{"name":"old","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:01:00Z"}"#,
    )
    .unwrap();
    let state = || (s.json(&["list"]), s.json(&["user", "list"]), s.json(&["workflow", "list"]));
    let before = state();
    // …but none of these.
    for cmd in [
        vec!["bulk-delete", "now", "--type", "workflow"],
        vec!["bulk-delete", "create", "--name", "nightly", "--type", "workflow"],
        vec!["import", file.to_str().unwrap()],
        vec!["user", "add", "eve"],
        vec!["user", "deactivate", "deep"],
        vec!["role", "add", "r2", "--privilege", "read:user"],
        vec!["business-unit", "add", "l4", "--parent", "l3"],
        vec!["workflow", "add", "wf2", "--owner", "deep"],
        vec!["reassign", "--workflow", "wf", "--from", "deep", "--to", "tina"],
    ] {
        let mut args = vec!["--as", "tina"];
        args.extend(cmd.iter().copied());
        let err = s.fails(5, &args);
        assert!(err.contains("tina may not") && err.contains("Organization"), "{cmd:?}: {err}");
    }
    assert_eq!(state(), before, "a refused command changed something");
}

// ---- Local security: who can act as whom (README, "Who can act as whom") ----

use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// Runs `joblog` under `umask 000`: what it creates must not depend on it.
fn under_umask_000(s: &Store, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_joblog"))
        .args(args)
        .env("JOBLOG_DATA", s.data())
        .env_remove("JOBLOG_USER")
        .env_remove("JOBLOG_SOCKET")
        .output()
        .unwrap()
}

/// Every directory under `dir` 0700, every file 0600; returns how many
/// files were checked.
fn assert_private(dir: &Path) -> usize {
    let mut files = 0;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            files += assert_private(&p);
        } else {
            let mode = m.permissions().mode() & 0o7777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            files += 1;
        }
    }
    files
}

fn wait_for(path: &Path) {
    for _ in 0..500 {
        if path.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn every_file_is_0600_and_every_directory_0700_whatever_the_umask() {
    let s = Store::new();
    let ok = |args: &[&str]| {
        let out = under_umask_000(&s, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // Each kind of write: the first segment and LOCK, an import, the
    // service's socket and its checkpoint, an Immediately deletion (sealed
    // segment, MANIFEST, rewritten segments, checkpoint), a compaction.
    ok(&["--now", T0, "user", "add", "alice"]);
    assert!(assert_private(&s.data()) >= 2);
    let file = s.dir.path().join("old.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"name":"job {i}","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-10-01T00:00:00Z","completedon":"2025-10-02T00:00:00Z"}}"#))
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    ok(&["--now", T0, "import", file.to_str().unwrap()]);
    let service = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "60s"])
        .env("JOBLOG_DATA", s.data())
        .env_remove("JOBLOG_USER")
        .env_remove("JOBLOG_SOCKET")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let socket = s.data().join("joblog.sock");
    wait_for(&socket);
    assert_eq!(std::fs::symlink_metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    ok(&["submit", "--external-handler", "--name", "through the service", "--type", "bulk-email"]);
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    assert!(service.wait_with_output().unwrap().status.success());
    // (The service wrote at the system clock's time: no --now from here.)
    ok(&["bulk-delete", "now", "--type", "workflow", "--limit", "20"]);
    ok(&["bulk-delete", "now", "--type", "workflow", "--limit", "20"]);
    ok(&["compact"]);
    let segments = s.data().join("segments");
    for name in ["LOCK", "MANIFEST"] {
        assert!(segments.join(name).exists(), "{name} was written");
    }
    assert!(std::fs::read_dir(s.data().join("snapshots")).unwrap().count() > 0, "a checkpoint was written");
    let n = assert_private(&s.data());
    assert!(n >= 5, "{n} files checked");
    // A salvaged copy and a simulation (with its marker) too.
    let copy = s.dir.path().join("copy");
    ok(&["salvage", "--to", copy.to_str().unwrap()]);
    assert!(assert_private(&copy) >= 2);
    let sim = s.dir.path().join("sim");
    ok(&["--data", sim.to_str().unwrap(), "--simulation", "--now", T0, "user", "add", "alice"]);
    assert!(assert_private(&sim) >= 3);
    // An older store (0755, made before this) is closed to others when
    // opened for writing (a read-only command never writes, not even that).
    std::fs::set_permissions(s.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.json(&["user", "list"]);
    assert_eq!(std::fs::metadata(s.data()).unwrap().permissions().mode() & 0o777, 0o755);
    s.json(&["user", "add", "zed"]);
    assert_eq!(std::fs::metadata(s.data()).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn a_link_named_lock_is_never_followed_and_lock_is_never_truncated() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let lock = s.data().join("segments").join("LOCK");
    let target = s.dir.path().join("precious.txt");
    std::fs::write(&target, "precious content\n").unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    for args in [&["user", "list"][..], &["--now", &at(1), "user", "add", "bob"][..], &["verify"][..]] {
        let err = s.fails(1, args);
        assert!(err.contains("symbolic link"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious content\n", "the link's target was written");
    assert!(std::fs::symlink_metadata(&lock).unwrap().file_type().is_symlink(), "the link was replaced");
    // A lock file is written in place, never cut short.
    std::fs::remove_file(&lock).unwrap();
    let long = "x".repeat(200);
    std::fs::write(&lock, &long).unwrap();
    s.json(&["--now", &at(2), "user", "add", "carol"]);
    let after = std::fs::read_to_string(&lock).unwrap();
    assert_eq!(after.len(), 200, "LOCK was truncated: {after:?}");
    assert!(after.starts_with("pid "), "{after:?}");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[test]
fn a_store_that_belongs_to_another_os_user_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED a_store_that_belongs_to_another_os_user_is_refused: needs root to chown to uid 65534");
        return;
    }
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let chown = |p: &Path, uid: u32| std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    let listing = |dir: &Path| -> Vec<(String, u64, u32)> {
        let mut v: Vec<_> = walk(dir)
            .into_iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(&p).unwrap();
                (p.display().to_string(), m.len(), m.uid())
            })
            .collect();
        v.sort();
        v
    };
    // One file of another user's in it is enough.
    let seg = s.data().join("segments").join("00000000000000000001.seg");
    chown(&seg, 65534);
    let before = listing(&s.data());
    let err = s.fails(5, &["user", "list"]);
    assert!(err.contains("uid 65534"), "{err}");
    s.fails(5, &["--now", &at(1), "user", "add", "bob"]);
    assert_eq!(listing(&s.data()), before, "a refused open changed the store");
    // The whole directory: root is refused too.
    for p in walk(&s.data()) {
        chown(&p, 65534);
    }
    chown(&s.data(), 65534);
    let err = s.fails(5, &["--now", &at(1), "user", "add", "bob"]);
    assert!(err.contains("belongs to uid 65534"), "{err}");
    s.fails(5, &["run", "--until-idle"]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn running_a_command_is_a_privilege_of_its_own() {
    let s = Store::new();
    s.json(&[
        "--now",
        T0,
        "role",
        "add",
        "creator",
        "--privilege",
        "create:organization",
        "--privilege",
        "read:organization",
    ]);
    s.json(&["--now", T0, "user", "add", "carol", "--role", "creator"]);
    s.json(&["--now", T0, "user", "add", "bob"]);
    // Create at Organization depth: jobs yes, commands no.
    s.json(&["--now", T0, "--as", "carol", "submit", "--external-handler", "--name", "plain", "--type", "bulk-email"]);
    let err = s.fails(5, &["--now", T0, "--as", "carol", "submit", "--name", "shell", "--command", "touch /tmp/owned"]);
    assert!(err.contains("RunCommand"), "{err}");
    assert!(s.fails(5, &["--now", T0, "--as", "bob", "submit", "--name", "shell", "--command", "id"]).contains("bob"));
    let rows = s.dir.path().join("rows.jsonl");
    std::fs::write(
        &rows,
        [
            r#"{"name":"harmless","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:01:00Z"}"#,
            r#"{"name":"runs later","operationtype":10,"statecode":0,"statuscode":0,"createdon":"2025-06-01T00:00:00Z","command":"touch /tmp/owned"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let count = || s.json(&["list", "--count"])["count"].as_u64().unwrap();
    let before = count();
    let err = s.fails(5, &["--now", T0, "--as", "carol", "import", rows.to_str().unwrap()]);
    assert!(err.contains("RunCommand"), "{err}");
    assert_eq!(count(), before, "nothing of the file was kept");
    // The administrator has it.
    assert_eq!(s.json(&["--now", T0, "import", rows.to_str().unwrap()])["imported"], 2);
    s.json(&["--now", T0, "submit", "--name", "shell", "--type", "bulk-email", "--command", "true"]);
    // And a role may be given it.
    s.json(&[
        "--now",
        T0,
        "role",
        "add",
        "runner",
        "--privilege",
        "create:organization",
        "--privilege",
        "run-command:organization",
    ]);
    s.json(&["--now", T0, "user", "add", "rita", "--role", "runner"]);
    s.json(&["--now", T0, "--as", "rita", "submit", "--name", "shell", "--type", "bulk-email", "--command", "true"]);
}

#[test]
fn verify_compact_and_run_need_an_administrator() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    for args in [&["verify"][..], &["compact"][..], &["run", "--until-idle"][..]] {
        let mut a = vec!["--as", "alice"];
        a.extend_from_slice(args);
        let err = s.fails(5, &a);
        assert!(err.contains("alice") && err.contains("Organization"), "{args:?}: {err}");
    }
    s.json(&["verify"]);
    s.json(&["compact"]);
    s.json(&["run", "--until-idle"]);
}

/// Sends raw bytes to a socket; returns the reply line (or "").
/// Sends `bytes` on the service's socket and reads its whole answer (an
/// HTTP one: the native API), until it closes the connection.
fn http_exchange(socket: &Path, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut conn = std::os::unix::net::UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let _ = conn.write_all(bytes);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Starts `joblog run` on `s` and waits until it listens: on
/// `DATA/joblog.sock` always, and on `--socket PATH` when `extra` gives one.
fn start_service(s: &Store, extra: &[&str]) -> std::process::Child {
    let service = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "120s", "--json"])
        .args(extra)
        .env("JOBLOG_DATA", s.data())
        .env_remove("JOBLOG_USER")
        .env_remove("JOBLOG_SOCKET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&s.data().join("joblog.sock"));
    if let Some(at) = extra.iter().position(|a| *a == "--socket") {
        wait_for(Path::new(extra[at + 1]));
    }
    service
}

fn stop_service(service: std::process::Child) {
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    let out = service.wait_with_output().unwrap();
    assert!(out.status.success(), "the service did not stop cleanly: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn hostile_requests_get_an_error_and_never_stop_the_service() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let service = start_service(&s, &[]);
    let socket = s.data().join("joblog.sock");
    // The native API on the socket (HTTP): a 1 MB head, bytes that are not
    // HTTP, a request without a user, one naming a user who does not exist.
    let mut huge = b"GET /api/v1/me HTTP/1.1\r\nx-big: ".to_vec();
    huge.extend(vec![b'x'; 1 << 20]);
    huge.extend(b"\r\n\r\n");
    let r = http_exchange(&socket, &huge);
    assert!(r.starts_with("HTTP/1.1 4") || r.is_empty(), "{r}");
    let r = http_exchange(&socket, b"\xff\xfe not http\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400") || r.is_empty(), "{r}");
    let r = http_exchange(&socket, b"GET /api/v1/users HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("names no user"), "a request without a user is refused: {r}");
    let r = http_exchange(
        &socket,
        b"GET /api/v1/me HTTP/1.1\r\nhost: x\r\nx-joblog-user: nobody\r\nconnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 403") && r.contains("no user named"), "{r}");
    let r = http_exchange(
        &socket,
        b"GET /api/v1/me HTTP/1.1\r\nhost: x\r\nx-joblog-user: alice\r\nconnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("\"user\":\"alice\""), "{r}");
    // Slow clients (connected, sending nothing) hold up nobody.
    let slow: Vec<_> = (0..3).map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap()).collect();
    let started = std::time::Instant::now();
    assert_eq!(s.json(&["user", "list"]).as_array().unwrap().len(), 2);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "a slow client held up the next one");
    drop(slow);
    stop_service(service);
    assert!(!socket.exists());
}

#[test]
fn import_through_the_service_reads_the_clients_file_relative_to_the_client() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let row = |name: &str| {
        format!(
            r#"{{"name":"{name}","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:01:00Z"}}"#
        )
    };
    // Same relative name in the service's directory and in the client's.
    let service_cwd = s.dir.path().join("service");
    let client_cwd = s.dir.path().join("client");
    std::fs::create_dir_all(&service_cwd).unwrap();
    std::fs::create_dir_all(&client_cwd).unwrap();
    std::fs::write(service_cwd.join("rows.jsonl"), row("the service's file")).unwrap();
    std::fs::write(client_cwd.join("rows.jsonl"), [row("client one"), row("client two")].join("\n")).unwrap();
    let mut long = row("long");
    long.insert_str(long.len() - 1, &format!(",\"message\":\"{}\"", "m".repeat(5 << 20)));
    std::fs::write(client_cwd.join("long.jsonl"), [row("before"), long].join("\n")).unwrap();
    let service = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "120s"])
        .env("JOBLOG_DATA", s.data())
        .env_remove("JOBLOG_USER")
        .current_dir(&service_cwd)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&s.data().join("joblog.sock"));
    let client = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_joblog"))
            .args(args)
            .env("JOBLOG_DATA", s.data())
            .env_remove("JOBLOG_USER")
            .current_dir(&client_cwd)
            .output()
            .unwrap()
    };
    let out = client(&["import", "rows.jsonl", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"], 2, "{v}");
    let names: Vec<String> =
        s.json(&["list"]).as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap().to_string()).collect();
    assert!(
        names.contains(&"client one".to_string()) && !names.contains(&"the service's file".to_string()),
        "{names:?}"
    );
    // A line over the limit: a clear refusal, nothing imported.
    let out = client(&["import", "long.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("long.jsonl: line 2 is longer than"), "{err}");
    assert!(!s.json(&["list"]).as_array().unwrap().iter().any(|j| j["name"] == "before"));
    // A file the client cannot read is the client's error.
    let out = client(&["import", "missing.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.jsonl"));
    stop_service(service);
    // Alone, the same line limit.
    let err = s.fails(2, &["import", client_cwd.join("long.jsonl").to_str().unwrap()]);
    assert!(err.contains("line 2 is longer than"), "{err}");
}

#[test]
fn a_long_data_path_still_runs_the_service() {
    let s = Store::new();
    let deep = s.data().join("a".repeat(60)).join("b".repeat(60));
    let long = Store { dir: tempfile::tempdir().unwrap() };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_joblog"))
            .args(args)
            .env("JOBLOG_DATA", &deep)
            .env_remove("JOBLOG_USER")
            .env_remove("JOBLOG_SOCKET")
            .output()
            .unwrap()
    };
    drop(long);
    assert!(deep.join("joblog.sock").as_os_str().len() > 108);
    assert!(run(&["--now", T0, "user", "add", "alice"]).status.success());
    let service = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "120s"])
        .env("JOBLOG_DATA", &deep)
        .env_remove("JOBLOG_USER")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&deep.join("joblog.sock"));
    let out = run(&["user", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().len(), 2);
    stop_service(service);
    assert!(!deep.join("joblog.sock").exists());
}

/// A copy of the binary that another OS user can run.
fn shared_binary() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("joblog");
    std::fs::copy(env!("CARGO_BIN_EXE_joblog"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

#[test]
fn through_the_socket_another_os_user_acts_only_as_the_user_it_is_mapped_to() {
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
    if !is_root() || !setpriv {
        eprintln!(
            "SKIPPED through_the_socket_another_os_user_...: needs root and setpriv to run a client as uid 65534"
        );
        return;
    }
    let s = Store::new();
    s.json(&[
        "--now",
        T0,
        "role",
        "add",
        "maker",
        "--privilege",
        "create:user",
        "--privilege",
        "read:user",
        "--privilege",
        "write:user",
    ]);
    s.json(&["--now", T0, "user", "add", "alice", "--role", "maker"]);
    s.json(&["--now", T0, "submit", "--external-handler", "--name", "admin's job", "--type", "bulk-email"]);
    let (shared, bin) = shared_binary();
    let socket = shared.path().join("joblog.sock");
    let service = start_service(&s, &["--socket", socket.to_str().unwrap()]);
    let as_nobody = |args: &[&str], env: &[(&str, &str)]| -> Output {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .env("JOBLOG_SOCKET", &socket)
            .env_remove("JOBLOG_USER")
            .env_remove("JOBLOG_DATA")
            .envs(env.iter().copied())
            .current_dir(shared.path())
            .output()
            .unwrap()
    };
    let code_and_err = |o: &Output| (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned());
    // Unmapped: refused, whatever it claims.
    for args in [&["list"][..], &["--as", "admin", "list"][..], &["--as", "alice", "list"][..]] {
        let (code, err) = code_and_err(&as_nobody(args, &[]));
        assert_eq!(code, Some(5), "{args:?}: {err}");
        assert!(err.contains("not mapped"), "{err}");
    }
    // The directory itself stays closed to it.
    let data = s.data();
    let out = as_nobody(&["--data", data.to_str().unwrap(), "--socket", "/nonexistent/sock", "list"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    // The owner maps it, through the service.
    let out = Command::new(&bin)
        .args(["--socket", socket.to_str().unwrap(), "user", "map", "alice", "--os-user", "65534", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["os_uid"], 65534);
    // Mapped: acts as alice and only as alice.
    let out = as_nobody(&["list", "--json"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().len(),
        0,
        "admin's job is not alice's"
    );
    let out = as_nobody(&["submit", "--external-handler", "--name", "mine", "--type", "bulk-email", "--json"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["ownerid"], "alice");
    let history = s.json(&["show", job["asyncoperationid"].as_str().unwrap(), "--history"]);
    assert_eq!(history["history"][0]["actor"], "alice");
    for (args, env) in [(&["--as", "admin", "list"][..], &[][..]), (&["list"][..], &[("JOBLOG_USER", "admin")][..])] {
        let (code, err) = code_and_err(&as_nobody(args, env));
        assert_eq!(code, Some(5), "{args:?} {env:?}: {err}");
        assert!(err.contains("acts only as alice"), "{err}");
    }
    let (code, err) =
        code_and_err(&as_nobody(&["submit", "--name", "shell", "--type", "bulk-email", "--command", "id"], &[]));
    assert_eq!(code, Some(5), "{err}");
    let (code, _) = code_and_err(&as_nobody(&["user", "add", "mallory", "--role", "system-administrator"], &[]));
    assert_eq!(code, Some(5));
    // Unmapped again: refused again.
    s.run(0, &["--socket", socket.to_str().unwrap(), "user", "map", "alice", "--none"]);
    assert_eq!(as_nobody(&["list"], &[]).status.code(), Some(5));
    stop_service(service);
    assert!(!socket.exists());
}

// ---------------------------------------------------------------------------
// Issue 12: verify and salvage, a full disk, the clock.

fn id_of(job: &Value) -> String {
    job["asyncoperationid"].as_str().unwrap().to_string()
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0xff;
    std::fs::write(path, b).unwrap();
}

/// A store with a sealed segment (`-g1`, written by a bulk deletion's
/// compaction) and an active one: job `kept` was created in the sealed
/// segment and canceled in the active one; `fresh` lives in the active one.
struct Sealed {
    s: Store,
    kept: String,
    fresh: String,
}

fn sealed_store() -> Sealed {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let gone = id_of(&submit(&s, T0, &["--name", "gone"]));
    s.json(&["--now", T0, "cancel", &gone]);
    let kept = id_of(&submit(&s, T0, &["--name", "kept"]));
    // Completed on T0, more than 30 days ago: deleted; the active segment
    // holds garbage, so it is sealed and rewritten.
    assert_eq!(s.json(&["bulk-delete", "now", "--type", "workflow"])["deleted"], 1);
    s.json(&["cancel", &kept]);
    let fresh = id_of(&s.json(&["submit", "--external-handler", "--name", "fresh"]));
    s.json(&["user", "add", "bob"]);
    Sealed { s, kept, fresh }
}

fn segments_dir(s: &Store) -> std::path::PathBuf {
    s.data().join("segments")
}

fn sealed_file(s: &Store) -> std::path::PathBuf {
    let p = segments_dir(s).join("00000000000000000001-g1.seg");
    assert!(p.exists(), "the fixture has a sealed, rewritten segment");
    p
}

fn verify_json(s: &Store) -> (Option<i32>, Value, String) {
    let out = s.raw(&["verify", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify --json prints its report whatever happens ({e}): {stdout:?}"));
    (out.status.code(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn verify_reports_a_damaged_or_missing_manifest_as_what_it_is() {
    let f = sealed_store();
    let (code, v, _) = verify_json(&f.s);
    assert_eq!((code, &v["ok"]), (Some(0), &Value::Bool(true)), "{v}");

    // Deleted: named as missing, not as "two segments after the last sealed one".
    let manifest = segments_dir(&f.s).join("MANIFEST");
    let saved = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let (code, v, stderr) = verify_json(&f.s);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(v["ok"], false);
    let problems = v["problems"].to_string();
    assert!(problems.contains("MANIFEST is missing"), "{problems}");
    assert!(!problems.contains("two segments"), "{problems}");
    // Every other command names it too, and points to the operator's tools.
    let err = f.s.fails(1, &["list"]);
    assert!(err.contains("MANIFEST is missing") && err.contains("joblog salvage --to NEWDIR"), "{err}");
    assert!(!err.contains("LogConfig"), "no library function in a message: {err}");

    // Damaged: its checksum fails.
    let mut bad = saved.clone();
    bad[40] ^= 0xff;
    std::fs::write(&manifest, &bad).unwrap();
    let (code, v, _) = verify_json(&f.s);
    assert_eq!(code, Some(1));
    let problems = v["problems"].to_string();
    assert!(problems.contains("MANIFEST") && problems.contains("damaged"), "{problems}");
    std::fs::write(&manifest, &saved).unwrap();
    assert_eq!(verify_json(&f.s).0, Some(0));
}

#[test]
fn verify_reports_every_problem_of_the_segments() {
    let f = sealed_store();
    let dir = segments_dir(&f.s);
    let sealed = sealed_file(&f.s);
    // A flipped byte in the sealed segment, and an extra segment file.
    flip(&sealed, 40);
    std::fs::write(dir.join("00000000000000099999.seg"), b"not a segment").unwrap();
    let (code, v, stderr) = verify_json(&f.s);
    assert_eq!(code, Some(1), "{stderr}");
    let problems: Vec<String> = v["problems"].as_array().unwrap().iter().map(|p| p.to_string()).collect();
    assert!(problems.iter().any(|p| p.contains("00000000000000000001-g1.seg")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("00000000000000099999.seg")), "{problems:?}");
    assert!(problems.len() >= 2, "every problem, not the first only: {problems:?}");
    std::fs::remove_file(dir.join("00000000000000099999.seg")).unwrap();

    // A sealed segment that is gone: named, with the events it held.
    std::fs::remove_file(&sealed).unwrap();
    let (code, v, _) = verify_json(&f.s);
    assert_eq!(code, Some(1));
    let problems = v["problems"].to_string();
    assert!(problems.contains("00000000000000000001-g1.seg") && problems.contains("missing"), "{problems}");
    // Plain text too: one line per problem on stdout, the first on stderr.
    let out = f.s.raw(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));
}

#[test]
fn salvage_copies_what_is_intact_and_never_touches_the_damaged_store() {
    let f = sealed_store();
    let sealed = sealed_file(&f.s);
    // Damage the frame where job "kept" is created (its cancel is in the
    // active segment).
    let bytes = std::fs::read(&sealed).unwrap();
    let id = *uuid::Uuid::parse_str(&f.kept).unwrap().as_bytes();
    let at = bytes.windows(16).position(|w| w == id).expect("the creation of kept is in the sealed segment");
    flip(&sealed, at);

    // Every command that reads the damaged frame refuses and says what to
    // do. (Opening reads only what the checkpoint does not hold, so damage
    // in an old sealed segment shows where a read meets it: ARCHITECTURE.md,
    // "Opening"; `verify` finds it whatever is read.)
    for args in [&["list"][..], &["show", &f.kept], &["show", &f.kept, "--history"], &["replay"]] {
        let err = f.s.fails(1, args);
        assert!(err.contains("joblog salvage --to NEWDIR") && err.contains("joblog verify"), "{args:?}: {err}");
        assert!(!err.contains("LogConfig"), "{err}");
    }

    let before = support::tree(&f.s.data());
    let to = f.s.dir.path().join("salvaged");
    let out = f.s.raw(&["salvage", "--to", to.to_str().unwrap(), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(support::tree(&f.s.data()), before, "salvage never changes the damaged store");

    // What was lost: the file, the offset, the sequence numbers.
    let lost = &r["lost"][0];
    assert!(lost["file"].as_str().unwrap().ends_with("00000000000000000001-g1.seg"), "{r}");
    let offset = lost["offset"].as_u64().unwrap();
    assert!(offset >= 32 && offset < at as u64, "the frame's start: {r}");
    assert!(lost["first_seq"].as_u64().is_some() && lost["last_seq"].as_u64().is_some(), "{r}");
    // The cancel of "kept" is intact but its creation is lost: left out, reported.
    assert_eq!(r["dropped"].as_array().unwrap().len(), 1, "{r}");
    assert!(r["dropped"][0]["reason"].as_str().unwrap().contains(&f.kept), "{r}");

    // The new store opens, verifies, and holds what was intact.
    let new = Store { dir: tempfile::tempdir().unwrap() };
    std::fs::rename(&to, new.data()).unwrap();
    assert_eq!(new.json(&["verify"])["ok"], true);
    let jobs = new.json(&["list"]);
    let ids: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["asyncoperationid"].as_str().unwrap()).collect();
    assert_eq!(ids, [f.fresh.as_str()]);
    let users = new.json(&["user", "list"]).to_string();
    assert!(users.contains("bob"), "{users}");
    new.json(&["submit", "--external-handler", "--name", "after the salvage"]);

    // A target that holds anything, or lies inside the store: refused.
    std::fs::create_dir_all(f.s.dir.path().join("busy/x")).unwrap();
    let err = f.s.fails(2, &["salvage", "--to", f.s.dir.path().join("busy").to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    let inside = f.s.data().join("copy");
    let err = f.s.fails(2, &["salvage", "--to", inside.to_str().unwrap()]);
    assert!(err.contains("inside"), "{err}");
    assert_eq!(support::tree(&f.s.data()), before);
}

#[test]
fn salvage_works_without_a_manifest() {
    let f = sealed_store();
    std::fs::remove_file(segments_dir(&f.s).join("MANIFEST")).unwrap();
    let before = support::tree(&f.s.data());
    let to = f.s.dir.path().join("salvaged");
    let r: Value = serde_json::from_str(&f.s.run(0, &["salvage", "--to", to.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(support::tree(&f.s.data()), before);
    assert!(r["problems"].to_string().contains("MANIFEST is missing"), "{r}");
    let new = Store { dir: tempfile::tempdir().unwrap() };
    std::fs::rename(&to, new.data()).unwrap();
    let jobs = new.json(&["list"]);
    assert_eq!(jobs.as_array().unwrap().len(), 2, "kept and fresh: {jobs}");
    assert_eq!(new.json(&["show", &f.kept])["status"], "Canceled");
}

#[test]
fn the_clock_cannot_lock_a_live_store() {
    let s = Store::new();
    s.json(&["user", "add", "alice"]);
    let mine = id_of(&s.json(&["--as", "admin", "submit", "--external-handler", "--name", "mine", "--owner", "alice"]));
    // The repro: a basic user, on her own job, 73 years ahead.
    let err = s.fails(2, &["--as", "alice", "--now", "2099-01-01T00:00:00Z", "cancel", &mine]);
    assert!(err.contains("ahead of the system clock"), "{err}");
    // An administrator neither.
    let err = s.fails(2, &["--now", "2099-01-01T00:00:00Z", "user", "add", "eve"]);
    assert!(err.contains("ahead of the system clock"), "{err}");
    assert_eq!(s.json(&["show", &mine])["status"], "Waiting For Resources", "nothing changed");
    // Every later write still works, at the real time.
    assert_eq!(s.json(&["--as", "alice", "cancel", &mine])["status"], "Canceled");
    s.json(&["user", "add", "eve"]);
    // A fresh directory is not created by a refused command.
    let other = Store::new();
    other.fails(2, &["--now", "2099-01-01T00:00:00Z", "user", "add", "x"]);
    assert!(!other.data().exists());
    // Nor by a job its own arguments refuse: a regarding id, a name or a
    // dependency token over its limit, a bad type or time.
    let long = "x".repeat(300);
    for args in [
        vec!["--regarding", &*format!("contact:{long}")],
        vec!["--name", &*long],
        vec!["--dependency-token", &*long],
        vec!["--type", "no-such-type"],
        vec!["--postpone-until", "tomorrow"],
    ] {
        let mut line = vec!["submit", "--external-handler", "--name", "n"];
        line.extend(args);
        other.fails(2, &line);
        assert!(!other.data().exists(), "{line:?} left a store behind");
    }
    // A live store cannot become a simulation.
    let err = s.fails(2, &["--simulation", "user", "add", "sim"]);
    assert!(err.contains("simulation"), "{err}");

    // A simulation runs ahead as far as it likes.
    let sim = Store::new();
    sim.json(&["--simulation", "--now", "2099-01-01T00:00:00Z", "user", "add", "x"]);
    let j = id_of(&sim.json(&["--now", "2099-01-02T00:00:00Z", "submit", "--external-handler", "--name", "later"]));
    assert_eq!(sim.json(&["--now", "2099-01-03T00:00:00Z", "cancel", &j])["completedon"], "2099-01-03T00:00:00Z");
}

#[test]
fn identifiers_that_could_pass_for_another_are_refused() {
    let s = Store::new();
    for name in ["admin ", " admin", " ", "ad\u{200b}min", "admin\u{feff}"] {
        let err = s.fails(2, &["user", "add", name]);
        assert!(err.contains("white space") || err.contains("invisible character"), "{name:?}: {err}");
    }
    let users = s.json(&["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 1, "nothing written: {users}");
}

#[test]
fn a_fifo_where_the_store_keeps_a_file_is_refused_not_waited_on() {
    // The FIFO itself, and a link to one.
    for through_a_link in [false, true] {
        let s = Store::new();
        s.json(&["user", "add", "u1"]);
        let manifest = segments_dir(&s).join("MANIFEST");
        let _ = std::fs::remove_file(&manifest);
        let fifo = if through_a_link { s.path("fifo") } else { manifest.clone() };
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        if through_a_link {
            std::os::unix::fs::symlink(&fifo, &manifest).unwrap();
        }
        // Without the check this blocks forever in open(2): `timeout` ends it.
        let out = Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_joblog"))
            .arg("--data")
            .arg(s.data())
            .args(["user", "list"])
            .env_remove("JOBLOG_DATA")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "link: {through_a_link}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"), "{out:?}");
    }
}

#[test]
fn a_write_a_little_ahead_does_not_block_writes_on_the_system_clock() {
    // Within the allowed skew, --now may run ahead; the writes that follow
    // on the system clock are stamped no earlier than it, never refused.
    let s = Store::new();
    let ahead = (chrono::Utc::now() + chrono::Duration::seconds(240)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let a = s.json(&["--now", &ahead, "submit", "--external-handler", "--name", "a"]);
    assert_eq!(a["createdon"], ahead.as_str());
    let b = s.json(&["submit", "--external-handler", "--name", "b"]);
    assert_eq!(b["createdon"], ahead.as_str(), "stamped at the newest event's time: {b}");
    assert_eq!(s.json(&["cancel", &id_of(&a)])["status"], "Canceled");
    // A clock that moves only when told to is still refused going back.
    let before = (chrono::Utc::now() - chrono::Duration::seconds(60)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let err = s.fails(2, &["--now", &before, "submit", "--external-handler", "--name", "c"]);
    assert!(err.contains("backwards"), "{err}");
}

#[test]
fn a_store_already_in_the_future_has_a_way_out() {
    use joblog::domain::{ManualClock, OperationType, Timestamp};
    use joblog::engine::{Config, Engine, NewJob, UserAction};
    let s = Store::new();
    // Written as an older joblog would have let it be: a job canceled at
    // 2099 (made as a simulation, whose mark is then taken away).
    {
        let clock = std::sync::Arc::new(ManualClock::new(Timestamp::parse("2026-01-31T12:00:00Z").unwrap()));
        let e = Engine::open_simulation(s.data(), Config::default(), clock.clone()).unwrap();
        let admin = e.session("admin").unwrap();
        let job = admin.create(NewJob::new("locked", OperationType::WORKFLOW)).unwrap();
        clock.set(Timestamp::parse("2099-01-01T00:00:00Z").unwrap());
        admin.act(job.id, UserAction::Cancel).unwrap();
        e.close().unwrap();
        std::fs::remove_file(s.data().join(joblog::engine::SIMULATION_MARKER)).unwrap();
    }
    wait_unlocked(&s);
    let err = s.fails(2, &["user", "add", "u"]);
    assert!(err.contains("time would go backwards") && err.contains("--clamp-future"), "{err}");

    let to = s.dir.path().join("fixed");
    let r: Value =
        serde_json::from_str(&s.run(0, &["salvage", "--to", to.to_str().unwrap(), "--clamp-future", "--json"]))
            .unwrap();
    assert_eq!(r["restamped"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["restamped"][0]["at"], "2099-01-01T00:00:00Z");
    let fixed = Store { dir: tempfile::tempdir().unwrap() };
    std::fs::rename(&to, fixed.data()).unwrap();
    fixed.json(&["user", "add", "u"]);
    let job = &fixed.json(&["list"])[0];
    assert_eq!(job["status"], "Canceled");
    assert!(job["completedon"].as_str().unwrap() < "2099", "{job}");
}

/// Every writing command on a full disk either fails cleanly or tells the
/// truth, and afterwards the store shows exactly what its exit code said;
/// every reading command works there.
#[test]
fn a_full_disk_changes_nothing_a_command_does_not_report() {
    let s = Store::new();
    let Some(_mount) = support::Tmpfs::mount(s.dir.path(), "200M") else {
        eprintln!(
            "SKIPPED a_full_disk_changes_nothing_a_command_does_not_report: cannot mount a tmpfs here (needs root)"
        );
        return;
    };
    s.json(&["--now", T0, "user", "add", "alice"]);
    s.json(&["--now", T0, "workflow", "add", "wf"]);
    let mut done = Vec::new();
    for i in 0..3 {
        let id = id_of(&submit(&s, T0, &["--name", &format!("old {i}")]));
        s.json(&["--now", T0, "cancel", &id]);
        done.push(id);
    }
    let ready = id_of(&s.json(&["submit", "--external-handler", "--name", "ready"]));
    let waiting = id_of(&s.json(&["submit", "--external-handler", "--name", "waiting"]));
    s.json(&["postpone", &waiting, "--until", "2099-01-01T00:00:00Z"]);
    let import = s.dir.path().join("import.jsonl");
    let imported = "0193aaaa-0000-7000-8000-000000000001";
    std::fs::write(
        &import,
        format!(
            "{{\"asyncoperationid\": \"{imported}\", \"name\": \"imported\", \"operationtype_name\": \"Bulk Email\", \"statecode\": 0, \"statuscode\": 0, \"createdon\": \"{T0}\"}}\n"
        ),
    )
    .unwrap();
    // Almost full: small files (a lock, a manifest) still fit, a segment
    // does not.
    let filler = support::fill_disk(s.dir.path(), 16 << 10);

    // Reads work on the full disk.
    for args in [
        &["list"][..],
        &["show", &ready],
        &["stats"],
        &["verify"],
        &["user", "list"],
        &["workflow", "list"],
        &["bulk-delete", "list"],
        &["replay"],
    ] {
        let out = s.raw(args);
        assert_eq!(out.status.code(), Some(0), "{args:?} on a full disk: {}", String::from_utf8_lossy(&out.stderr));
    }

    // Writes: each exit code recorded, then checked once there is room.
    let mut codes = Vec::new();
    let mut w = |args: &[&str]| {
        let out = s.raw(args);
        let code = out.status.code().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(code == 0 || code == 1 || code == 4, "{args:?}: exit {code}: {stderr}");
        if code != 0 {
            assert!(!stderr.trim().is_empty(), "{args:?}: a failure says why");
        }
        codes.push((args.join(" "), code, stderr));
        code
    };
    let submitted = w(&["submit", "--external-handler", "--name", "on a full disk", "--regarding", "full:1"]);
    let canceled = w(&["cancel", &ready]);
    let resumed = w(&["resume", &waiting]);
    let paused = w(&["pause", &waiting]);
    let postponed = w(&["postpone", &ready, "--until", "2099-06-01T00:00:00Z"]);
    let user = w(&["user", "add", "full-user"]);
    let role = w(&["role", "add", "full-role", "--privilege", "read:user"]);
    let workflow = w(&["workflow", "add", "full-wf"]);
    let imp = w(&["import", import.to_str().unwrap()]);
    let deleted = w(&["bulk-delete", "now", "--type", "workflow"]);
    let compacted = w(&["compact"]);
    for args in [&["list"][..], &["verify"], &["stats"]] {
        assert_eq!(s.raw(args).status.code(), Some(0), "{args:?} after the writes, disk still full");
    }

    std::fs::remove_file(&filler).unwrap();
    let report = format!("{codes:#?}");
    assert_eq!(s.json(&["list", "--regarding", "full:1", "--count"])["count"], u64::from(submitted == 0), "{report}");
    let ready_now = s.json(&["show", &ready]);
    let waiting_now = s.json(&["show", &waiting]);
    match (canceled, postponed) {
        (0, _) => assert_eq!(ready_now["status"], "Canceled", "{report}"),
        (_, 0) => assert_eq!(ready_now["postponeuntil"], "2099-06-01T00:00:00Z", "{report}"),
        _ => assert_eq!(ready_now["status"], "Waiting For Resources", "{report}"),
    }
    if resumed == 0 {
        assert_eq!(waiting_now["state"], "Ready", "{report}");
    } else {
        assert_eq!(waiting_now["postponeuntil"], "2099-01-01T00:00:00Z", "{report}");
    }
    let _ = paused; // a Ready job cannot be paused (4); either way nothing else changes
    let users = s.json(&["user", "list"]).to_string();
    assert_eq!(users.contains("full-user"), user == 0, "{report}");
    let probe = s.raw(&["user", "add", "probe", "--role", "full-role"]);
    let probe_err = String::from_utf8_lossy(&probe.stderr);
    assert_eq!(probe.status.code() == Some(0), role == 0, "{report}\nprobe: {probe_err}");
    assert_eq!(s.json(&["workflow", "list"]).to_string().contains("full-wf"), workflow == 0, "{report}");
    let imported_now = s.raw(&["show", imported]).status.code();
    let old_left = done.iter().filter(|id| s.raw(&["show", id]).status.code() == Some(0)).count();
    assert_eq!(imported_now == Some(0), imp == 0, "{report}");
    if deleted == 0 {
        assert_eq!(old_left, 0, "the deletion said it deleted: {report}");
    } else {
        assert_eq!(old_left, 3, "a failed deletion deletes nothing: {report}");
    }
    let _ = compacted;
    assert_eq!(s.json(&["verify"])["ok"], true, "{report}");
    // The bulk deletion is the one that wrote and then did more: on this
    // disk it deletes and tells the truth about the space.
    assert_eq!(deleted, 0, "{report}");
    assert!(codes.iter().any(|(a, _, e)| a.starts_with("bulk-delete") && e.contains("next compaction")), "{report}");
}

#[test]
fn a_torn_tail_is_reported_on_stderr_by_every_command() {
    let s = Store::new();
    s.json(&["user", "add", "alice"]);
    let seg = segments_dir(&s).join("00000000000000000001.seg");
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    // Half a frame header after the last frame: a write that never finished.
    let mut torn = bytes.clone();
    torn[end..end + 10].copy_from_slice(&[7u8; 10]);
    std::fs::write(&seg, &torn).unwrap();

    // A read leaves it in place and says so.
    let out = s.raw(&["user", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("found 10 torn bytes at offset {end} of ")), "{stderr}");
    assert_eq!(std::fs::read(&seg).unwrap(), torn, "a read-only command changes nothing");
    // A write cuts it and says so.
    let out = s.raw(&["user", "add", "bob"]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cut 10 torn bytes at offset {end} of {}", seg.display())), "{stderr}");
    let out = s.raw(&["user", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "reported once");
}

#[test]
fn damage_in_the_active_segment_is_refused_reported_and_salvaged() {
    // The issue's repro: five users, one byte flipped in the second frame.
    let s = Store::new();
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        s.json(&["user", "add", u]);
    }
    let seg = segments_dir(&s).join("00000000000000000001.seg");
    let bytes = std::fs::read(&seg).unwrap();
    let first_len = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
    let second = 32 + joblog::log::FRAME_HEADER_LEN + first_len;
    flip(&seg, second + 30);
    let before = support::tree(&s.data());

    let err = s.fails(1, &["user", "list"]);
    assert!(err.contains(&format!("offset {second}")) && err.contains("joblog salvage --to NEWDIR"), "{err}");
    s.fails(1, &["user", "add", "u6"]);
    let (code, v, _) = verify_json(&s);
    assert_eq!((code, &v["ok"]), (Some(1), &Value::Bool(false)), "{v}");
    assert!(v["problems"].to_string().contains(&format!("offset {second}")), "{v}");
    // (LOCK names the last process that took it: the refused writer.)
    let data = |t: Vec<(std::path::PathBuf, u64, u32)>| -> Vec<_> {
        t.into_iter().filter(|f| !f.0.ends_with("LOCK")).collect()
    };
    assert_eq!(data(support::tree(&s.data())), data(before.clone()), "nothing on disk changed");
    let before = support::tree(&s.data());

    let to = s.dir.path().join("salvaged");
    let r: Value = serde_json::from_str(&s.run(0, &["salvage", "--to", to.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(support::tree(&s.data()), before);
    assert_eq!((r["lost"][0]["offset"].as_u64(), r["lost"][0]["first_seq"].as_u64()), (Some(second as u64), Some(2)));
    let new = Store { dir: tempfile::tempdir().unwrap() };
    std::fs::rename(&to, new.data()).unwrap();
    let users: Vec<String> =
        new.json(&["user", "list"]).as_array().unwrap().iter().map(|u| u["name"].to_string()).collect();
    assert_eq!(users, ["\"admin\"", "\"u1\"", "\"u3\"", "\"u4\"", "\"u5\""]);
}

// ---- Bad input (issue 12, section 4): refused clearly, never a panic, never a silent change.

/// Bytes that must never reach a terminal raw.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let raw = text.chars().find(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c));
    assert!(raw.is_none(), "{what}: a raw {raw:?} reaches the terminal:\n{text}");
}

/// The refusal's exit code and the one stderr line, which must contain
/// every part of `parts`.
fn refused(s: &Store, code: i32, args: &[&str], parts: &[&str]) {
    let err = s.fails(code, args);
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    for p in parts {
        assert!(err.contains(p), "joblog {:?}: {p:?} missing from {err}", &args[..args.len().min(4)]);
    }
}

fn count(s: &Store) -> u64 {
    s.json(&["list", "--count"])["count"].as_u64().unwrap()
}

fn write_file(s: &Store, name: &str, text: &str) -> String {
    let p = s.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn every_string_has_a_limit_on_every_path() {
    let s = Store::new();
    submit(&s, T0, &["--name", "first"]);
    let long = "a".repeat(70_000);
    let regarding = format!("contact:{long}");
    refused(
        &s,
        2,
        &["--now", &at(1), "submit", "--external-handler", "--name", "x", "--regarding", &regarding],
        &["regarding id", "256"],
    );
    refused(
        &s,
        2,
        &["--now", &at(1), "submit", "--external-handler", "--name", &"n".repeat(257)],
        &["name is too long", "256"],
    );
    refused(
        &s,
        2,
        &["--now", &at(1), "submit", "--external-handler", "--name", "x", "--dependency-token", &long],
        &["dependency token", "128"],
    );
    refused(&s, 2, &["--now", &at(1), "user", "add", &long], &["user is too long", "128"]);
    refused(&s, 2, &["--now", &at(1), "business-unit", "add", &long], &["business unit is too long"]);
    refused(&s, 2, &["--now", &at(1), "role", "add", &long, "--privilege", "read:user"], &["role is too long"]);
    refused(&s, 2, &["--now", &at(1), "workflow", "add", &long], &["workflow id is too long", "128"]);
    refused(&s, 2, &["--now", &at(1), "workflow", "add", "wf", "--name", &long], &["workflow name is too long", "256"]);
    // The same limits hold for an import (another path into the store).
    let line = format!(
        r#"{{"name": "ok", "statecode": 0, "statuscode": 0, "createdon": "{T0}"}}
{{"name": "imported", "statecode": 0, "statuscode": 0, "createdon": "{T0}", "regardingobjectid": "{regarding}"}}"#
    );
    let file = write_file(&s, "long.jsonl", &line);
    refused(&s, 2, &["--now", &at(1), "import", &file], &["line 2", "regarding id is too long"]);
    assert_eq!(count(&s), 1, "nothing of the refused commands was kept");
    // 128 characters of four bytes each are one identifier of 128 characters.
    s.json(&["--now", &at(2), "user", "add", &"é".repeat(128)]);
}

#[test]
fn tables_print_stored_values_of_any_length_without_panicking() {
    use joblog::domain::{Actor, Envelope, Event, Job, OperationType, Regarding, Timestamp};
    let s = Store::new();
    submit(&s, T0, &["--name", "first"]);
    // A store written before the limits existed: events appended to the log
    // directly, as an older joblog (or another embedding) could have.
    let t1 = Timestamp::parse(&at(1)).unwrap();
    let mut job =
        Job::new(&format!("evil\u{1b}[2J\u{7}{}", "n".repeat(4000)), OperationType::WORKFLOW, "admin", "root", t1);
    job.regarding = Some(Regarding { table: "contact".into(), id: "r".repeat(70_000) });
    job.dependencytoken = Some("\u{1b}]0;pwned\u{7}".into());
    let id = job.id.to_string();
    {
        let log = joblog::log::Log::open(s.data().join("segments"), joblog::log::LogConfig::default()).unwrap();
        let env = Envelope {
            version: 2, // as joblog wrote it before the limits
            at: t1,
            actor: Actor::User("admin".into()),
            event: Event::JobCreated(Box::new(job)),
        };
        let mut batch = joblog::log::Batch::new();
        batch.push(&joblog::codec::encode(&env).unwrap());
        log.append_batch(batch).unwrap();
        log.close().unwrap();
    }
    wait_unlocked(&s);
    for args in [vec!["list"], vec!["show", &id, "--history"], vec!["replay"], vec!["stats"]] {
        let out = s.raw(&args);
        assert_eq!(out.status.code(), Some(0), "joblog {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_terminal_safe(&format!("{args:?}"), &out.stdout);
        let widest = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest < 3000, "joblog {args:?}: a line of {widest} characters");
    }
    let table = s.run(0, &["list"]);
    assert!(table.contains("evil\\u001b[2J\\u0007"), "escaped, visibly:\n{table}");
    assert!(table.contains('…'), "cut with an ellipsis:\n{table}");
    // JSON keeps the value whole (serde escapes it).
    let v = s.json(&["show", &id]);
    assert_eq!(v["regardingobjectid"].as_str().unwrap().len(), "contact:".len() + 70_000);
}

#[test]
fn control_characters_are_refused_in_identifiers_and_escaped_in_every_output() {
    let s = Store::new();
    submit(&s, T0, &["--name", "first"]);
    for (args, field) in [
        (
            vec!["submit", "--external-handler", "--name", "evil\u{1b}[2Jname"],
            "name contains a control character (U+001B",
        ),
        (vec!["user", "add", "bob\r"], "user contains a control character (U+000D"),
        (vec!["user", "add", "bob", "--business-unit", "x\u{7}"], "business unit contains a control character"),
        (vec!["business-unit", "add", "sales\nroot"], "business unit contains a control character (U+000A"),
        (vec!["role", "add", "r\u{7f}", "--privilege", "read:user"], "role contains a control character (U+007F"),
        (vec!["workflow", "add", "wf\u{9b}1m"], "workflow id contains a control character (U+009B"),
        (
            vec!["submit", "--external-handler", "--name", "x", "--dependency-token", "t\u{1b}"],
            "dependency token contains",
        ),
        (
            vec!["submit", "--external-handler", "--name", "x", "--regarding", "contact:4\u{202e}2"],
            "regarding id contains",
        ),
    ] {
        let mut a = vec!["--now", T0];
        a.extend(args);
        let out = s.raw(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{a:?}: {err}");
        assert_terminal_safe("stderr", &out.stderr);
    }
    assert_eq!(count(&s), 1);
    // Input echoed in an error is escaped too, the parser's own included.
    let out = s.raw(&["--as", "x\u{1b}[31m", "list"]);
    assert_eq!(out.status.code(), Some(5));
    assert_terminal_safe("stderr", &out.stderr);
    for args in [vec!["x\u{1b}[2J"], vec!["list", "--state", "\u{1b}[2J"], vec!["list", "--bogus\u{7}"]] {
        let out = s.raw(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_terminal_safe(&format!("{args:?}"), &out.stderr);
    }
    // A command's stderr is kept as it is in the message (free text) and
    // escaped wherever a person reads it.
    let job =
        submit(&s, T0, &["--name", "noisy", "--command", r"printf '\033[2J\033]0;pwned\007boom\r\n' >&2; exit 3"]);
    let id = job["asyncoperationid"].as_str().unwrap();
    s.run(0, &["run", "--until-idle"]);
    let v = s.json(&["show", id]);
    assert_eq!(v["status"], "Failed");
    assert!(v["message"].as_str().unwrap().contains("\u{1b}[2J"), "JSON keeps the message: {v}");
    let out = s.raw(&["show", id, "--history"]);
    assert_eq!(out.status.code(), Some(0));
    assert_terminal_safe("show --history", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\u001b[2J"));
}

#[test]
fn import_refuses_numbers_that_do_not_fit_with_their_line_and_imports_nothing() {
    let s = Store::new();
    s.json(&["--now", T0, "business-unit", "add", "sales"]);
    let good =
        format!(r#"{{"name": "good", "statecode": 3, "statuscode": 30, "createdon": "{T0}", "completedon": "{T0}"}}"#);
    for (bad, parts) in [
        (r#""statecode": 4294967299, "statuscode": 0"#, vec!["statecode: 4294967299 is out of range (0..=4294967295)"]),
        (r#""statecode": -1, "statuscode": 0"#, vec!["statecode: -1 is out of range"]),
        (
            r#""statecode": 0, "statuscode": 0, "errorcode": 99999999999"#,
            vec!["errorcode: 99999999999 is out of range"],
        ),
        (r#""statecode": 0, "statuscode": 0, "retrycount": 1.5"#, vec!["retrycount: 1.5 is not a whole number"]),
        (r#""statecode": 0, "statuscode": 0, "depth": 18446744073709551615"#, vec!["depth", "out of range"]),
        (r#""statecode": "0", "statuscode": 0"#, vec!["statecode", "is not a number"]),
        (r#""statecode": 0, "statuscode": 30"#, vec!["statecode 0 with statuscode 30"]),
        (r#""statecode": 0, "statuscode": 0, "state": "Completed""#, vec!["disagrees with statecode 0"]),
        (r#""statecode": 0, "statuscode": 0, "ownerid": "ghost""#, vec!["ownerid", "ghost"]),
        (r#""statecode": 0, "statuscode": 0, "owningbusinessunit": "nowhere""#, vec!["owningbusinessunit", "nowhere"]),
    ] {
        let text = format!("{good}\n\n{{\"name\": \"bad\", \"createdon\": \"{T0}\", {bad}}}\n");
        let file = write_file(&s, "bad.jsonl", &text);
        let out = s.raw(&["--now", &at(5), "import", &file, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["imported"], 0);
        let first = report["errors"][0].as_str().unwrap();
        assert!(first.starts_with("line 3: "), "{bad}: {first}");
        for p in parts {
            assert!(first.contains(p), "{bad}: {p:?} missing from {first}");
        }
        assert_eq!(count(&s), 0, "{bad}: nothing imported");
    }
    // In range, known owner and unit: imported as written.
    let ok = format!(
        "{good}\n{{\"name\": \"edge\", \"statecode\": 0, \"statuscode\": 0, \"createdon\": \"{T0}\", \"errorcode\": -2147483647, \"retrycount\": 4294967295, \"owningbusinessunit\": \"sales\"}}\n"
    );
    let file = write_file(&s, "ok.jsonl", &ok);
    assert_eq!(s.json(&["--now", &at(5), "import", &file])["imported"], 2);
    let edge = s.json(&["list", "--status", "waiting-for-resources"]);
    assert_eq!(edge[0]["errorcode"], -2147483647i64);
    assert_eq!(edge[0]["retrycount"], 4294967295u64);
    assert_eq!(edge[0]["owningbusinessunit"], "sales");
}

#[test]
fn the_last_administrator_stays_and_users_can_be_reactivated() {
    let s = Store::new();
    refused(&s, 2, &["--now", T0, "user", "deactivate", "admin"], &["admin", "last active administrator"]);
    assert_eq!(s.json(&["user", "list"])[0]["active"], true, "nothing changed");
    s.json(&["--now", T0, "user", "add", "alice"]);
    s.json(&["--now", T0, "user", "deactivate", "alice"]);
    refused(&s, 2, &["--now", T0, "user", "deactivate", "alice"], &["\"alice\" is already deactivated"]);
    // A deactivated user cannot act: permission denied, not a usage error.
    refused(&s, 5, &["--as", "alice", "list"], &["alice is deactivated"]);
    refused(&s, 5, &["--as", "alice", "user", "reactivate", "alice"], &["alice is deactivated"]);
    s.json(&["--now", T0, "user", "add", "bob"]);
    refused(&s, 5, &["--as", "bob", "--now", T0, "user", "reactivate", "alice"], &["bob may not do this"]);
    let alice = s.json(&["--now", &at(1), "user", "reactivate", "alice"]);
    assert_eq!(alice["active"], true);
    assert_eq!(s.json(&["--as", "alice", "list", "--count"])["count"], 0);
    refused(&s, 2, &["--now", &at(1), "user", "reactivate", "alice"], &["is active"]);
    refused(&s, 3, &["--now", &at(1), "user", "reactivate", "nobody"], &["nobody"]);
    // Another administrator (any role with Write at Organization depth):
    // then admin may go, and come back.
    s.json(&["--now", &at(2), "role", "add", "directory-admin", "--privilege", "write:organization"]);
    s.json(&["--now", &at(2), "user", "add", "carol", "--role", "directory-admin"]);
    s.json(&["--now", &at(3), "user", "deactivate", "admin"]);
    refused(&s, 2, &["--as", "carol", "--now", &at(3), "user", "deactivate", "carol"], &["last active administrator"]);
    s.json(&["--as", "carol", "--now", &at(4), "user", "reactivate", "admin"]);
    // The new event replays: a fresh replay equals the projection.
    assert_eq!(s.json(&["verify"])["ok"], true);
    let users = s.json(&["user", "list"]);
    assert!(users.as_array().unwrap().iter().all(|u| u["active"] == true), "{users}");
}

#[test]
fn run_caps_its_workers() {
    let s = Store::new();
    submit(&s, T0, &["--name", "first"]);
    for n in ["100000", "0", "257", "many"] {
        // A usage error in clap's own words (several lines, with a hint).
        let err = s.fails(2, &["run", "--once", "--workers", n]);
        assert!(err.contains("--workers") && err.contains("from 1 to 256"), "{n}: {err}");
    }
    let v = s.json(&["run", "--once", "--workers", "256"]);
    assert_eq!(v["ran"], 1);
}

#[test]
fn a_data_path_that_is_not_utf8_works_alone_and_through_the_service() {
    use std::os::unix::ffi::OsStrExt;
    let s = Store::new();
    let data = s.dir.path().join(std::ffi::OsStr::from_bytes(b"data\xff"));
    let joblog = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_joblog"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .env_remove("JOBLOG_DATA")
            .output()
            .unwrap()
    };
    let out = joblog(&["--now", T0, "submit", "--name", "slow", "--command", "sleep 30"]);
    assert!(out.status.success(), "{out:?}");
    let mut service = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_joblog"))
            .arg("--data")
            .arg(&data)
            .args(["run", "--for", "60s", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let socket = data.join("joblog.sock");
    for _ in 0..500 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = joblog(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "through the service: {}", String::from_utf8_lossy(&out.stderr));
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(jobs.as_array().unwrap().iter().any(|j| j["name"] == "slow"));
    // An over-long value through the service: refused, and the service
    // still answers the next client.
    let regarding = format!("contact:{}", "r".repeat(70_000));
    let out = joblog(&["submit", "--external-handler", "--name", "x", "--regarding", &regarding]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("regarding id is too long"));
    assert_eq!(joblog(&["list"]).status.code(), Some(0));
    // A file whose name is not UTF-8: the client reads it itself and sends
    // its content (the name only for messages), so it imports through the
    // service too.
    let file = s.dir.path().join(std::ffi::OsStr::from_bytes(b"jobs\xfe.jsonl"));
    std::fs::write(
        &file,
        r#"{"name":"from a non-UTF-8 name","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:01:00Z"}"#,
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_joblog")).arg("--data").arg(&data).arg("import").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 1 jobs"), "{out:?}");
    let service = service.0.take().unwrap();
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    let out = service.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A service started by a test, killed if the test fails before stopping it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn filters_that_cannot_match_or_would_be_ignored_are_usage_errors() {
    let s = Store::new();
    let id = submit(&s, T0, &["--name", "first"])["asyncoperationid"].as_str().unwrap().to_string();
    refused(
        &s,
        2,
        &["list", "--state", "completed", "--status", "waiting"],
        &["--state Completed", "--status Waiting", "cannot both match"],
    );
    refused(
        &s,
        2,
        &["list", "--created-before", T0, "--created-after", &at(5)],
        &["--created-before", "--created-after"],
    );
    refused(&s, 2, &["list", "--state", "ready", "--completed-before", T0], &["--state Ready", "--completed-before"]);
    refused(&s, 2, &["replay", "--state", "locked", "--status", "failed"], &["cannot both match"]);
    refused(
        &s,
        2,
        &["--now", &at(1), "cancel", "--state", "ready", "--status", "canceled", "--all-matching"],
        &["cannot both match"],
    );
    refused(&s, 2, &["--now", &at(1), "cancel", &id, "--status", "failed"], &["--status would be ignored"]);
    refused(
        &s,
        2,
        &["--now", &at(1), "pause", &id, "--owner", "admin", "--type", "workflow"],
        &["--type, --owner would be ignored"],
    );
    assert_eq!(s.json(&["show", &id])["status"], "Waiting For Resources", "nothing changed");
    // Filters that can match still work.
    assert_eq!(s.json(&["list", "--state", "ready", "--status", "waiting-for-resources", "--count"])["count"], 1);
    assert_eq!(s.json(&["--now", &at(1), "cancel", &id])["status"], "Canceled");
}

/// `--sync` (for testing and benchmarks: the power-cut harness's negative
/// control runs `joblog run --sync never`): the modes are accepted, anything
/// else is a usage error naming them, and nothing is written.
#[test]
fn sync_mode_is_a_checked_global_option() {
    let s = Store::new();
    s.run(0, &["--sync", "never", "user", "add", "u1"]);
    s.run(0, &["--sync", "interval:50", "user", "add", "u2"]);
    s.run(0, &["user", "add", "u3", "--sync", "every-batch"]);
    let users = s.run(0, &["user", "list"]);
    assert!(["u1", "u2", "u3"].iter().all(|u| users.contains(u)), "{users}");
    for bad in ["sometimes", "interval:0", "interval:x", ""] {
        let err = s.fails(2, &["--sync", bad, "user", "add", "u4"]);
        assert!(err.contains("every-batch") || err.contains("1 to 60000 milliseconds"), "--sync {bad:?}: {err}");
    }
    assert!(!s.run(0, &["user", "list"]).contains("u4"), "a refused command wrote");
}

#[test]
fn a_request_head_trickled_in_is_cut_at_its_deadline() {
    use std::io::Write;
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice"]);
    let service = start_service(&s, &[]);
    let socket = s.data().join("joblog.sock");
    // A byte every 0.7 s: each read is quick, the head never ends. The
    // whole head must arrive within 10 s, not each byte.
    let conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(40))).unwrap();
    let started = std::time::Instant::now();
    let mut writer = conn.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /api/v1/me HTTP/1.1\r\nx: ".iter().chain(b"aaaaaaaaaaaaaaa") {
            if writer.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(700));
        }
    });
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &conn, &mut answer);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "a trickled head held its connection {took:?}");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "{}", String::from_utf8_lossy(&answer));
    trickle.join().unwrap();
    assert_eq!(s.json(&["user", "list"]).as_array().unwrap().len(), 2);
    stop_service(service);
}

#[test]
fn an_unmapped_os_user_cannot_hold_the_services_connections() {
    use std::os::unix::process::CommandExt;
    let python = Path::new("/usr/bin/python3");
    if !is_root() || !python.exists() {
        eprintln!(
            "SKIPPED an_unmapped_os_user_cannot_hold_...: needs root and /usr/bin/python3 for a client as uid 65534"
        );
        return;
    }
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice", "--os-user", "65534"]);
    let (shared, bin) = shared_binary();
    let socket = shared.path().join("joblog.sock");
    let service = start_service(&s, &["--socket", socket.to_str().unwrap()]);
    // 20 connections by an OS user nobody mapped, each sending nothing: all
    // refused at once, none holding a slot.
    let script = "import socket,sys\nfor _ in range(20):\n    c=socket.socket(socket.AF_UNIX); c.settimeout(5); c.connect(sys.argv[1]); f=c.makefile('rb'); print(repr(f.read()))\n";
    let out =
        Command::new(python).args(["-c", script, socket.to_str().unwrap()]).uid(65533).gid(65533).output().unwrap();
    let replies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        replies.lines().filter(|l| l.contains("not mapped")).count(),
        20,
        "{replies}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Held open while the mapped user asks: served, not "busy".
    let holders: Vec<_> = (0..20)
        .map(|_| {
            Command::new(python)
                .args([
                    "-c",
                    "import socket,sys,time\nc=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); time.sleep(20)",
                    socket.to_str().unwrap(),
                ])
                .uid(65533)
                .gid(65533)
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = Command::new(&bin)
        .args(["list", "--json"])
        .env("JOBLOG_SOCKET", &socket)
        .env_remove("JOBLOG_DATA")
        .env_remove("JOBLOG_USER")
        .uid(65534)
        .gid(65534)
        .current_dir(shared.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "a mapped user was not served: {}", String::from_utf8_lossy(&out.stderr));
    for mut h in holders {
        let _ = h.kill();
        let _ = h.wait();
    }
    stop_service(service);
}

#[test]
fn a_checkpoint_ahead_of_the_log_is_reported_and_never_loaded_for_another_history() {
    let s = Store::new();
    for u in ["lost1", "lost2", "lost3"] {
        s.json(&["user", "add", u]);
    }
    s.json(&["run", "--until-idle"]); // ends with a checkpoint
    let snapshots = s.data().join("snapshots");
    let checkpoints = || std::fs::read_dir(&snapshots).unwrap().count();
    assert!(checkpoints() > 0, "run wrote no checkpoint");
    // The log's end lost (zeroed: no checksum can tell), the checkpoint kept.
    let seg = segments_dir(&s).join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[32..].fill(0);
    std::fs::write(&seg, bytes).unwrap();
    let out = s.raw(&["user", "list", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ahead of the log"), "no warning");
    let (code, report, _) = verify_json(&s);
    assert_eq!((code, &report["ok"]), (Some(1), &Value::Bool(false)), "{report}");
    assert!(report["problems"].to_string().contains("ahead of the log"), "{report}");
    // New writes bring the log past the checkpoint's sequence number: the
    // checkpoint of the lost history must never be loaded for this one.
    for i in 0..8 {
        s.json(&["user", "add", &format!("new{i}")]);
    }
    let names: Vec<String> =
        s.json(&["user", "list"]).as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_string()).collect();
    assert!(!names.iter().any(|n| n.starts_with("lost")), "a checkpoint of the lost history was loaded: {names:?}");
    assert_eq!(names.len(), 9, "{names:?}");
    // Still reported, the evidence kept.
    let (code, report, _) = verify_json(&s);
    assert_eq!(code, Some(1), "{report}");
    assert!(report["problems"].to_string().contains("ahead of the log"), "{report}");
}

// ---------------------------------------------------------------------------
// Issue 13 (§5): the store's policy, resubmit, bulk actions that need a
// filter, submit refused when nothing would run the job, stats per user.

/// Waits until the store's lock is free after this test process wrote to it
/// in-process: another test's child, forked by this multi-threaded process,
/// holds a copy of the lock's descriptor until it execs (close-on-exec).
fn wait_unlocked(s: &Store) {
    let lock = std::fs::File::open(s.data().join("segments").join("LOCK")).unwrap();
    eventually(std::time::Duration::from_secs(10), "the store's lock is released", || lock.try_lock().is_ok());
    lock.unlock().unwrap();
}

fn last_seq(s: &Store) -> u64 {
    s.json(&["stats"])["last_seq"].as_u64().unwrap()
}

fn policy_value(v: &Value, key: &str) -> Value {
    v.as_array().unwrap().iter().find(|k| k["key"] == key).unwrap_or_else(|| panic!("{key} in {v}"))["value"].clone()
}

#[test]
fn config_is_per_store_for_administrators_recorded_and_replayed() {
    let s = Store::new();
    s.json(&["--now", &at(0), "user", "add", "alice"]);
    let before = last_seq(&s);
    // A basic user: exit 5, nothing written.
    let err = s.fails(5, &["--as", "alice", "config", "set", "retry.max_retries", "1"]);
    assert!(err.contains("may not"), "{err}");
    s.fails(5, &["--as", "alice", "config", "unset", "retry.max_retries"]);
    // A bad key or value: exit 2 naming the keys or the range, nothing written.
    let err = s.fails(2, &["config", "set", "retry.max", "1"]);
    assert!(err.contains("retry.max_retries") && err.contains("command.timeout_secs"), "names the keys: {err}");
    let err = s.fails(2, &["config", "set", "retry.max_retries", "1000"]);
    assert!(err.contains("from 0 to 100"), "names the range: {err}");
    let err = s.fails(2, &["config", "set", "retry.max_retries", "1.5"]);
    assert!(err.contains("whole number from 0 to 100"), "{err}");
    let err = s.fails(2, &["config", "set", "retry.base_secs", "7200"]);
    assert!(err.contains("retry.cap_secs"), "base above the cap: {err}");
    assert_eq!(last_seq(&s), before, "refusals write nothing");
    assert_eq!(policy_value(&s.json(&["config", "show"]), "retry.max_retries"), 5, "the default");

    // Set at 1:00, changed at 2:00: each time sees its own.
    let v = s.json(&["--now", &at(60), "config", "set", "retry.max_retries", "2"]);
    assert_eq!((v["value"].as_u64(), v["changed"].as_bool()), (Some(2), Some(true)));
    s.json(&["--now", &at(120), "config", "set", "retry.max_retries", "0"]);
    s.json(&["--now", &at(120), "config", "set", "command.timeout_secs", "600"]);
    assert_eq!(policy_value(&s.json(&["config", "show", "--until", &at(90)]), "retry.max_retries"), 2);
    assert_eq!(policy_value(&s.json(&["config", "show", "--until", &at(90)]), "command.timeout_secs"), Value::Null);
    assert_eq!(policy_value(&s.json(&["config", "show", "--until", &at(30)]), "retry.max_retries"), 5);
    let replayed = s.run(0, &["replay", "--until", &at(90)]);
    assert!(replayed.contains("policy then: retry.max_retries=2"), "{replayed}");
    let stats = s.json(&["stats"]);
    assert_eq!(policy_value(&stats["policy"], "retry.max_retries"), 0, "stats shows the policy in force: {stats}");
    assert_eq!(policy_value(&stats["policy"], "command.timeout_secs"), 600);
    assert!(s.run(0, &["stats"]).contains("command.timeout_secs"), "and in text");
    let same = s.json(&["config", "set", "retry.max_retries", "0"]);
    assert_eq!(same["changed"], false, "setting the value it has writes nothing");
    s.json(&["config", "unset", "command.timeout_secs"]);
    assert_eq!(policy_value(&s.json(&["config", "show"]), "command.timeout_secs"), Value::Null);

    // The service uses the store's policy: no retries, so a transient
    // failure (exit 75) fails the job at once (by default it would wait
    // 10 s for its first retry).
    let job = s.json(&["submit", "--name", "flaky", "--command", "exit 75"]);
    let id = job["asyncoperationid"].as_str().unwrap().to_string();
    s.run(0, &["run", "--until-idle"]);
    let shown = s.json(&["show", &id]);
    assert_eq!(shown["status"], "Failed", "{shown}");
    assert!(shown["message"].as_str().unwrap().contains("gave up after 0 retries"), "{shown}");
}

#[test]
fn a_running_service_takes_a_policy_change_at_once() {
    let s = Store::new();
    // Set before the service starts: taken at its start.
    s.json(&["config", "set", "retry.max_retries", "0"]);
    let service = start_service(&s, &[]);
    let job = s.json(&["submit", "--name", "flaky", "--command", "exit 75"]);
    let id = job["asyncoperationid"].as_str().unwrap().to_string();
    eventually(std::time::Duration::from_secs(60), "the job fails without a retry", || {
        s.json(&["show", &id])["status"] == "Failed"
    });
    // Unset through the running service (an event it notices at its next
    // pass): back to the default, not to the value it started with, so the
    // next transient failure waits for its retry.
    s.json(&["config", "unset", "retry.max_retries"]);
    let job = s.json(&["submit", "--name", "flaky again", "--command", "exit 75"]);
    let id = job["asyncoperationid"].as_str().unwrap().to_string();
    eventually(std::time::Duration::from_secs(60), "the job waits for its retry", || {
        s.json(&["show", &id])["retrycount"] == 1
    });
    assert_eq!(s.json(&["show", &id])["state"], "Suspended");
    stop_service(service);
}

#[test]
fn resubmit_makes_a_linked_job_and_both_histories_say_so() {
    let s = Store::new();
    s.json(&["user", "add", "alice"]);
    let failed = id_of(&s.json(&["submit", "--name", "export", "--command", "exit 3", "--regarding", "report:7"]));
    let ok = id_of(&s.json(&["submit", "--name", "fine", "--command", "true"]));
    let ready =
        id_of(&s.json(&["submit", "--name", "later", "--command", "true", "--postpone-until", "2099-01-01T00:00:00Z"]));
    s.run(0, &["run", "--until-idle"]);
    assert_eq!(s.json(&["show", &failed])["status"], "Failed");
    let before = last_seq(&s);
    // Refused: not completed (4), succeeded (4), not a job (3), another's
    // job a basic user may not read (5); none writes anything.
    let err = s.fails(4, &["resubmit", &ready]);
    assert!(err.contains("not Completed"), "{err}");
    assert!(s.fails(4, &["resubmit", &ok]).contains("succeeded"));
    s.fails(3, &["resubmit", "01900000-0000-7000-8000-000000000000"]);
    s.fails(2, &["resubmit", "not-an-id"]);
    s.fails(5, &["--as", "alice", "resubmit", &failed]);
    assert_eq!(last_seq(&s), before, "refusals write nothing");

    let new = s.json(&["resubmit", &failed]);
    let new_id = id_of(&new);
    assert_ne!(new_id, failed);
    assert_eq!((new["status"].as_str(), new["name"].as_str()), (Some("Waiting For Resources"), Some("export")));
    assert_eq!(new["regardingobjectid"], "report:7");
    assert_eq!(new["correlationid"], failed.as_str(), "linked by correlation id");
    assert_eq!(new["resubmission_of"], failed.as_str());
    let old_history = s.json(&["show", &failed, "--history"])["history"].clone();
    let last = old_history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["message"], format!("resubmitted as {new_id}"), "{old_history}");
    assert_eq!((last["action"].as_str(), last["status"].as_str()), (Some("note"), Some("Failed")));
    let new_history = s.json(&["show", &new_id, "--history"])["history"].clone();
    assert_eq!(new_history[0]["message"], format!("resubmission of {failed}"), "{new_history}");
    // It runs like the original (and fails like it).
    s.run(0, &["run", "--until-idle"]);
    assert_eq!(s.json(&["show", &new_id])["status"], "Failed");
    // A resubmission of the resubmission keeps the first correlation id.
    let third = s.json(&["resubmit", &new_id]);
    assert_eq!(third["correlationid"], failed.as_str());
}

#[test]
fn all_matching_needs_a_filter_or_everything_and_prints_a_summary() {
    let s = Store::new();
    for i in 0..3 {
        s.json(&["submit", "--name", &format!("open {i}"), "--command", "true"]);
    }
    for i in 0..5 {
        let id = id_of(&s.json(&["submit", "--name", &format!("done {i}"), "--command", "true"]));
        s.json(&["cancel", &id]);
    }
    let before = last_seq(&s);
    // No filter: refused, nothing changed.
    let err = s.fails(2, &["cancel", "--all-matching"]);
    assert!(err.contains("--everything") && err.contains("filter"), "{err}");
    s.fails(2, &["pause", "--all-matching"]);
    s.fails(2, &["cancel", "--all-matching", "--everything", "--state", "ready"]);
    s.fails(2, &["cancel", "--dry-run"]);
    // A dry run: how many and which, nothing written.
    let dry = s.json(&["cancel", "--all-matching", "--everything", "--dry-run"]);
    assert_eq!((dry["matched"].as_u64(), dry["changed"].as_u64()), (Some(8), Some(3)), "{dry}");
    assert_eq!(dry["would_change"].as_array().unwrap().len(), 3);
    let text = s.run(0, &["cancel", "--all-matching", "--state", "ready", "--dry-run"]);
    assert!(text.contains("dry run") && text.contains("would be canceled: 3"), "{text}");
    assert_eq!(last_seq(&s), before, "a dry run writes nothing");
    assert_eq!(s.json(&["list", "--state", "ready", "--count"])["count"], 3);
    // For real: a summary line, not a line per refusal; the refusals in JSON.
    let out = s.run(0, &["cancel", "--all-matching", "--everything"]);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("canceled 3") && out.contains("refused 5 (already completed 5)"), "{out}");
    let again = s.json(&["cancel", "--all-matching", "--everything"]);
    assert_eq!(again["refused"].as_array().unwrap().len(), 8, "{again}");
    assert_eq!(again["refused_by"]["already completed"], 8);
}

#[test]
fn submit_without_a_command_or_a_handler_is_refused_and_writes_nothing() {
    let s = Store::new();
    let err = s.fails(2, &["submit", "--name", "nothing runs me"]);
    assert!(err.contains("--command") && err.contains("--external-handler"), "{err}");
    assert!(!s.data().join("segments").exists(), "no store was created for a refused submit");
    // Nor for any other command refused by its arguments alone, nor a dry run.
    for (code, args) in [
        (2, &["cancel", "--all-matching"][..]),
        (2, &["cancel", "--all-matching", "--everything", "--owner", "bob"]),
        (2, &["postpone", "--all-matching", "--everything", "--until", "tomorrow"]),
        (2, &["config", "set", "retry.max", "1"]),
        (2, &["config", "set", "retry.max_retries", "many"]),
        (2, &["config", "unset", "nothing.here"]),
        (2, &["resubmit", "not-an-id"]),
    ] {
        s.fails(code, args);
        assert!(!s.data().join("segments").exists(), "{args:?} created a store");
    }
    s.fails(3, &["pause", "--all-matching", "--everything", "--dry-run"]);
    assert!(!s.data().join("segments").exists(), "a dry run created a store");
    s.json(&["submit", "--name", "first", "--command", "true"]);
    let before = last_seq(&s);
    s.fails(2, &["submit", "--name", "workflow job", "--type", "workflow"]);
    assert_eq!(last_seq(&s), before);
    // Through a running service as well.
    let service = start_service(&s, &[]);
    s.fails(2, &["submit", "--name", "nothing runs me either"]);
    let kept = s.json(&[
        "submit",
        "--name",
        "an embedder runs me",
        "--external-handler",
        "--postpone-until",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(kept["name"], "an embedder runs me");
    stop_service(service);
}

#[test]
fn stats_counts_only_what_the_user_may_see() {
    let s = Store::new();
    s.json(&["user", "add", "alice"]);
    s.json(&["user", "add", "bob"]);
    for owner in ["admin", "admin", "bob", "alice"] {
        s.json(&["submit", "--name", &format!("{owner}'s"), "--owner", owner, "--external-handler"]);
    }
    let admin = s.json(&["stats"]);
    assert_eq!(admin["jobs"], 4, "{admin}");
    let alice = s.json(&["--as", "alice", "stats"]);
    assert_eq!(alice["jobs"], 1, "a basic user's total is what they may see: {alice}");
    let by_status: u64 = alice["by_status"].as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(by_status, 1, "and agrees with the table");
    assert!(s.run(0, &["--as", "alice", "stats"]).starts_with("1 jobs"), "and in text");
    assert_eq!(s.json(&["--as", "alice", "list", "--count"])["count"], 1, "the same as list");
    // The back-off table names the whole organisation's workflows: for
    // those who may read every job only.
    assert!(alice["backoff"].is_null(), "{alice}");
    assert!(admin["backoff"].is_array(), "{admin}");
}

/// A command that finds the directory held by another process that does
/// not answer (another command, a service starting or stopping) waits for
/// it (`BUSY_WAIT`), and so does `joblog run`; before, both failed at once
/// (exit 1), and a script's command failed whenever two ran together.
#[test]
fn a_command_waits_for_a_directory_held_a_moment() {
    use joblog::domain::SystemClock;
    use joblog::engine::{Config, Engine};
    let s = Store::new();
    s.json(&["submit", "--name", "first", "--command", "true"]);
    for args in [&["list", "--count"][..], &["run", "--until-idle"]] {
        let held = Engine::open(s.data(), Config::default(), std::sync::Arc::new(SystemClock)).unwrap();
        let cmd = s.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        held.close().unwrap();
        let out = cmd.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(s.json(&["list", "--status", "succeeded", "--count"])["count"], 1);
}

/// A reader that goes away never breaks a command: `joblog run` whose
/// stderr (its log) is a closed pipe still runs every job and returns, and
/// `joblog list` into a closed pipe ends quietly (before: the workers died
/// on the log write, the jobs stayed Locked and `run` spun for ever; `list`
/// panicked, exit 101).
#[test]
fn a_closed_stdout_or_stderr_breaks_nothing() {
    let s = Store::new();
    for i in 0..10 {
        s.json(&["submit", "--name", &format!("j{i}"), "--command", "true"]);
    }
    let mut run = s.command(&["run", "--until-idle"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    drop(run.stderr.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            panic!("joblog run with a closed stderr did not return within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(s.json(&["list", "--status", "succeeded", "--count"])["count"], 10);
    let mut list = s.command(&["list"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(list.stdout.take());
    let out = list.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn delete_takes_chosen_completed_jobs_all_or_nothing_alone_and_through_the_service() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice", "--role", "basic-user", "--business-unit", "root"]);
    let ids: Vec<String> =
        (1..=4).map(|n| id_of(&submit(&s, &at(n), &["--name", &format!("job {n}"), "--type", "bulk-email"]))).collect();
    let alices = id_of(&submit(&s, &at(5), &["--name", "alice's", "--type", "bulk-email", "--owner", "alice"]));
    for id in [&ids[0], &ids[1], &ids[2], &alices] {
        s.json(&["--now", &at(10), "cancel", id]);
    }
    let (c1, c2, c3, ready) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let count = || s.json(&["list", "--count"])["count"].as_u64().unwrap();
    let total = count();
    let unknown = "01900000-0000-7000-8000-000000000999";
    // Usage: no id, not an id, too many ids (before the store is touched).
    s.fails(2, &["delete"]);
    assert!(s.fails(2, &["delete", "not-an-id"]).contains("not-an-id"));
    let many: Vec<String> = (0..1001).map(|i| format!("01900000-0000-7000-8000-{i:012}")).collect();
    let mut args = vec!["delete"];
    args.extend(many.iter().map(String::as_str));
    assert!(s.fails(2, &args).contains("1000"));
    // Refusals, each changing nothing.
    assert!(s.fails(4, &["--now", &at(20), "delete", ready]).contains("Completed"));
    assert!(s.fails(4, &["--now", &at(20), "delete", c1, ready]).contains(ready.as_str()));
    s.fails(3, &["--now", &at(20), "delete", c1, unknown]);
    s.fails(3, &["--now", &at(20), "--as", "alice", "delete", c1]);
    s.fails(5, &["--now", &at(20), "--as", "alice", "delete", &alices]);
    assert_eq!(count(), total);
    assert_eq!(s.json(&["show", ready])["status"], "Waiting For Resources");
    assert_eq!(s.json(&["show", c1])["status"], "Canceled");

    // Deleted, each once, in the order asked.
    let out = s.json(&["--now", &at(30), "delete", c2, c1, c2]);
    assert_eq!(out["deleted"], serde_json::json!([c2, c1]));
    assert_eq!(count(), total - 2);
    s.fails(3, &["show", c1]);
    s.fails(3, &["--now", &at(31), "delete", c1]);
    // Replay as of before the deletion still shows them.
    let past = s.json(&["replay", "--until", &at(29)]);
    assert!(past.as_array().unwrap().iter().any(|j| j["asyncoperationid"] == c1.as_str()), "{past}");
    // And compaction then gives their space back.
    let compacted = s.json(&["compact"]);
    assert!(compacted["frames_dropped"].as_u64().unwrap() >= 4, "{compacted}");
    assert_eq!(s.json(&["verify"])["ok"], true);

    // While the service runs: the request goes through its socket; a job
    // it is running is refused, and deleted once canceled.
    let slow = id_of(&submit(&s, &at(40), &["--name", "slow", "--type", "bulk-email", "--command", "sleep 30"]));
    let service = start_service(&s, &[]);
    let text = s.run(0, &["delete", c3]);
    assert!(text.contains(c3.as_str()), "{text}");
    s.fails(3, &["show", c3]);
    eventually(std::time::Duration::from_secs(30), "the slow job runs", || {
        s.json(&["show", &slow])["status"] == "In Progress"
    });
    assert!(s.fails(4, &["delete", &slow]).contains("In Progress"));
    s.json(&["cancel", &slow]);
    eventually(std::time::Duration::from_secs(30), "the slow job is canceled", || {
        s.json(&["show", &slow])["status"] == "Canceled"
    });
    s.run(0, &["delete", &slow]);
    s.fails(3, &["show", &slow]);
    stop_service(service);
    let left = s.json(&["list"]);
    let left: Vec<&str> = left.as_array().unwrap().iter().map(|j| j["asyncoperationid"].as_str().unwrap()).collect();
    for gone in [c1, c2, c3, &slow] {
        assert!(!left.contains(&gone.as_str()), "{gone} is still listed");
    }
    assert!(left.contains(&ready.as_str()) && left.contains(&alices.as_str()));
}

/// `joblog list` and `joblog show` on a store whose newest checkpoint has
/// an image of its hot rows read that image (and the events after it)
/// instead
/// of opening the engine (`joblog::engine::Views`): they print exactly
/// what they print otherwise; with the image damaged they still do (the
/// engine is opened), and `verify` names the damage.
#[test]
fn list_and_show_print_the_same_from_a_checkpoints_image_and_without_it() {
    let s = Store::new();
    s.json(&["--now", T0, "user", "add", "alice", "--role", "basic-user", "--business-unit", "root"]);
    let mut ids = Vec::new();
    for i in 0..40u32 {
        let (kind, owner) = if i % 3 == 0 { ("bulk-email", "alice") } else { ("workflow", "admin") };
        let job = submit(&s, &at(i + 1), &["--name", &format!("job {i}"), "--type", kind, "--owner", owner]);
        ids.push(id_of(&job));
    }
    for id in ids.iter().step_by(4) {
        s.json(&["--now", &at(50), "cancel", id]);
    }
    let reads: Vec<Vec<String>> = [
        &["list"][..],
        &["list", "--count"],
        &["list", "--status", "canceled", "--limit", "3"],
        &["list", "--state", "ready", "--type", "bulk-email"],
        &["--as", "alice", "list"],
        &["--as", "alice", "list", "--count"],
        &["show", &ids[4], "--history"],
        &["show", &ids[5]],
    ]
    .iter()
    .map(|a| a.iter().map(|x| x.to_string()).collect())
    .collect();
    let print = |json: bool| -> Vec<String> {
        let mut out = Vec::new();
        for a in &reads {
            let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
            if json {
                a.push("--json");
            }
            out.push(s.run(0, &a));
        }
        out
    };
    // The command line checkpoints at close only after many events: the
    // reads above replay them (no image holds them).
    let (text, json) = (print(false), print(true));
    let clock = std::sync::Arc::new(joblog::ManualClock::new(joblog::Timestamp::parse(&at(60)).unwrap()));
    joblog::Engine::open(s.data(), joblog::engine::Config::default(), clock).unwrap().close().unwrap();
    let images: Vec<std::path::PathBuf> = std::fs::read_dir(s.data().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| joblog::projection::cold::ColdRun::open(p).is_ok_and(|r| r.holds_open()))
        .collect();
    assert_eq!(images.len(), 1, "the checkpoint's image of its hot rows");
    assert_eq!((print(false), print(true)), (text.clone(), json.clone()), "read from the image");
    assert_eq!(s.fails(3, &["show", "0190b7e3-0000-7000-8000-000000000000"]).lines().count(), 1);

    // A flipped byte in the image's rows: the same answers, from the engine.
    let mut bytes = std::fs::read(&images[0]).unwrap();
    bytes[300] ^= 0x40;
    std::fs::write(&images[0], &bytes).unwrap();
    assert_eq!((print(false), print(true)), (text, json), "the engine answers");
    let out = s.raw(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].to_string();
    assert!(problems.contains("image of the hot rows"), "{problems}");
    assert!(problems.contains(images[0].file_name().unwrap().to_str().unwrap()), "{problems}");
}
