//! kill -9 of the real `joblog run` binary running command jobs (run as
//! `harness = false`).
//!
//! Each round the harness submits a few command jobs with `joblog submit
//! --command`, starts `joblog run` (2 to 4 workers), SIGKILLs it at a
//! random moment and starts it again in the next round. Every run of a
//! job takes an exclusive, non-blocking `flock` on the job's lock file,
//! held by every process of the run (its children inherit the
//! descriptor, a detached `setsid` child included), and writes "start" and
//! "end" to the job's marker file under that lock, or "OVERLAP" when
//! another run of the same job still holds it. The commands sleep, wait
//! for children, leave detached children behind (one a daemon that keeps
//! forking), ignore SIGTERM, fail, or ask to be retried (exit 75), as the
//! seed decides.
//!
//! At the end the service runs until idle and the harness checks: no two
//! runs of one job ever overlapped (no OVERLAP marker), every job
//! finished (or waits for a retry that is not due yet), no job is left
//! Locked, every finished job started at least once and never ended more
//! often than it started, and no process of the store's runs is still
//! alive.
//!
//! `JOBLOG_KILL9_RUN_ROUNDS` (default 20) and `JOBLOG_KILL9_RUN_SEED`
//! control a run (docs/operations.md has the documented 300-kill run).
//! It needs the `flock` command (util-linux): without it the test fails,
//! unless `JOBLOG_KILL9_RUN_SKIP_WITHOUT_FLOCK=1` asks to skip it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{marked_alive, seed_and_rounds, Rng};

const BIN: &str = env!("CARGO_BIN_EXE_joblog");
/// Set to 1 to skip the campaign where `flock` is not installed (without
/// it, a missing `flock` fails the test).
const SKIP_VAR: &str = "JOBLOG_KILL9_RUN_SKIP_WITHOUT_FLOCK";

fn joblog(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("JOBLOG_DATA", data).env_remove("JOBLOG_USER").env_remove("JOBLOG_SOCKET");
    c
}

fn json(data: &Path, args: &[&str]) -> Value {
    let out = joblog(data).args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "joblog {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("joblog {args:?}: not JSON: {e}"))
}

/// A job's command: locks, marks, does what the seed says.
fn command(marks: &Path, rng: &mut Rng) -> String {
    let m = marks.display();
    let tenths = 1 + rng.u64(..15);
    let pause = format!("{}.{}", tenths / 10, tenths % 10);
    let body = match rng.u64(..8) {
        0 => format!("sleep {pause}"),
        1 => format!("sleep {pause} & wait"),
        // A detached child holding the lock (and stderr) past the main process.
        2 => format!("setsid sleep 3 & sleep {pause}"),
        3 => format!("trap '' TERM; sleep {pause}"),
        // A detached daemon that keeps forking children, each holding the lock.
        7 => format!("setsid sh -c 'while :; do sleep 1000 & sleep 0.01; done' & sleep {pause}"),
        4 => format!("sleep {pause}; exit 3"),
        // Retried once (exit 75), then succeeds.
        5 => format!(
            "sleep {pause}; if [ \"$(grep -c start \"$L\")\" -le 1 ]; then echo \"end $$ (75)\" >> \"$L\"; exit 75; fi"
        ),
        _ => "true".to_string(),
    };
    format!(
        "L='{m}'/\"$JOBLOG_JOB_ID\".log; exec 9>>'{m}'/\"$JOBLOG_JOB_ID\".lock; \
         if flock -n 9; then echo \"start $$\" >> \"$L\"; else echo \"OVERLAP $$\" >> \"$L\"; exit 1; fi; \
         {body}; echo \"end $$\" >> \"$L\""
    )
}

fn overlaps(marks: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for e in std::fs::read_dir(marks).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("OVERLAP") {
                bad.push(format!("{}:\n{text}", p.display()));
            }
        }
    }
    bad
}

fn main() {
    if Command::new("flock").arg("-V").output().is_err() {
        if std::env::var_os(SKIP_VAR).is_some_and(|v| v == "1") {
            eprintln!(
                "SKIPPED kill9_run: the `flock` command is not installed here and {SKIP_VAR}=1; nothing was checked"
            );
            return;
        }
        eprintln!("kill9_run FAILED: the `flock` command (util-linux) is not installed, so nothing can be checked; install it, or set {SKIP_VAR}=1 to skip this test on purpose");
        std::process::exit(1);
    }
    let (seed, rounds) = seed_and_rounds("kill9_run", "JOBLOG_KILL9_RUN_SEED", "JOBLOG_KILL9_RUN_ROUNDS", 20);
    let mut rng = Rng::with_seed(seed);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let marks = tmp.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let mut jobs: Vec<String> = Vec::new();
    let submit = |rng: &mut Rng, jobs: &mut Vec<String>, n: u64| {
        for _ in 0..n {
            let c = command(&marks, rng);
            let name = format!("job {}", jobs.len());
            let j = json(&data, &["submit", "--name", &name, "--type", "bulk-email", "--command", &c]);
            jobs.push(j["asyncoperationid"].as_str().unwrap().to_string());
        }
    };
    submit(&mut rng, &mut jobs, 8);
    let canonical: PathBuf = std::fs::canonicalize(&data).unwrap();
    let started = Instant::now();
    for round in 0..rounds {
        let n = 1 + rng.u64(..4);
        submit(&mut rng, &mut jobs, n);
        let workers = (2 + rng.u64(..3)).to_string();
        let mut service = joblog(&data)
            .args(["run", "--for", "600s", "--workers", &workers])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + rng.u64(..2400)));
        if let Some(status) = service.try_wait().unwrap() {
            let out = service.wait_with_output().unwrap();
            panic!("round {round}: the service exited by itself ({status}): {}", String::from_utf8_lossy(&out.stderr));
        }
        service.kill().unwrap(); // SIGKILL
        service.wait().unwrap();
        let bad = overlaps(&marks);
        assert!(bad.is_empty(), "round {round} (seed {seed}): two runs of one job at once:\n{}", bad.join("\n"));
    }
    // The last service runs until nothing is due. A retry that falls due
    // while it runs may be left when it stops (it stops when nothing is
    // due at that moment, which no poll here sees exactly): what must not
    // be left is a retry due before it started.
    let last_started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut last =
        joblog(&data).args(["run", "--until-idle"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while last.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the last `run --until-idle` did not finish within 300 s (seed {seed})");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = last.wait_with_output().unwrap();
    assert!(out.status.success(), "the last run failed: {}", String::from_utf8_lossy(&out.stderr));
    let summary: String = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let bad = overlaps(&marks);
    assert!(bad.is_empty(), "seed {seed}: two runs of one job at once:\n{}", bad.join("\n"));
    let alive = marked_alive(&canonical);
    assert!(alive.is_empty(), "seed {seed}: processes of the store's runs outlived the service: {alive:?}");
    let (mut finished, mut waiting, mut recovered, mut starts) = (0, 0, 0, 0);
    for id in &jobs {
        let job = json(&data, &["show", id, "--history"]);
        let state = job["state"].as_str().unwrap();
        let log = std::fs::read_to_string(marks.join(format!("{id}.log"))).unwrap_or_default();
        let (s, e) = (log.matches("start").count(), log.matches("end").count());
        starts += s;
        assert!(e <= s, "job {id} ended more often than it started:\n{log}");
        recovered += job["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["message"].as_str().is_some_and(|m| m.contains("lease lost")))
            .count();
        match state {
            "Completed" => {
                assert!(s >= 1, "job {id} completed without a run: {job}");
                finished += 1;
            }
            // A retry not due when the last run started (exit 75 waits
            // 10 s, then longer).
            "Suspended"
                if job["status"] == "Waiting"
                    && job["postponeuntil"].as_str().is_some_and(|t| t > last_started.as_str()) =>
            {
                waiting += 1
            }
            _ => panic!("seed {seed}: job {id} is {state}/{} after the last run: {job}", job["status"]),
        }
    }
    println!(
        "kill9_run: {rounds} kills in {:?}; {} jobs: {finished} finished, {waiting} waiting for a retry; {starts} runs started, {recovered} leases returned after a kill, no overlap, no process left; last run: {summary}",
        started.elapsed(),
        jobs.len()
    );
}
