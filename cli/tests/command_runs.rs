//! Command jobs on the real `joblog` binary: a run never outlives the
//! service that started it nor overlaps the next run of its job (kill -9
//! included), a run ends when its command's main process exits whatever it
//! leaves behind, timeouts, and a shutdown that ends within a bounded time
//! whatever clients and commands do.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{alive, eventually, exits_within, marked_alive, Store};

impl Store {
    fn raw(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.raw(&[args, &["--json"]].concat());
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "joblog {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    fn submit(&self, name: &str, command: &str, extra: &[&str]) -> String {
        let job =
            self.json(&[&["submit", "--name", name, "--type", "bulk-email", "--command", command], extra].concat());
        job["asyncoperationid"].as_str().unwrap().to_string()
    }

    fn show(&self, id: &str) -> Value {
        self.json(&["show", id])
    }

    /// The messages of a job's history.
    fn history(&self, id: &str) -> String {
        let h = self.json(&["show", id, "--history"]);
        let events = h["history"].as_array().unwrap_or_else(|| panic!("no history in {h}"));
        events.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("\n")
    }

    fn service(&self, args: &[&str]) -> Child {
        self.command(&["run"]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

/// Live processes marked with the store; they are killed (so that a
/// failing test leaves nothing running) and returned.
fn end_marked(s: &Store) -> Vec<i32> {
    let found = marked_alive(&std::fs::canonicalize(s.data()).unwrap());
    if !found.is_empty() {
        let pids: Vec<String> = found.iter().map(|p| p.to_string()).collect();
        let _ = Command::new("kill").arg("-KILL").args(&pids).status();
    }
    found
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A run that takes an exclusive lock on `lock` for its whole life (its
/// children inherit the descriptor), writes "start", sleeps, writes "end"
/// to `log`; "OVERLAP" when another run of the job still holds the lock.
fn locked_run(lock: &Path, log: &Path, secs: u32) -> String {
    format!(
        "exec 9>>'{lock}'; if flock -n 9; then echo \"start $$\" >> '{log}'; else echo \"OVERLAP $$\" >> '{log}'; fi; sleep {secs}; echo \"end $$\" >> '{log}'",
        lock = lock.display(),
        log = log.display()
    )
}

#[test]
fn a_run_killed_with_its_service_never_overlaps_the_next_one() {
    let s = Store::new();
    let (lock, log) = (s.path("lock"), s.path("runs.log"));
    let id = s.submit("once", &locked_run(&lock, &log, 6), &[]);
    let mut service = s.service(&["--for", "120s"]);
    eventually(Duration::from_secs(30), "the run never started", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("start"))
    });
    kill9(&mut service);
    // The command's `sleep` (and its lock) outlived the service: the next
    // service must end it before it runs the job again.
    let out = exits_within(s.service(&["--until-idle"]), Duration::from_secs(60), "run --until-idle");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(!runs.contains("OVERLAP"), "two runs of one job at once:\n{runs}");
    assert_eq!(runs.matches("start").count(), 2, "{runs}");
    assert_eq!(runs.matches("end").count(), 1, "only the second run ended by itself:\n{runs}");
    assert_eq!(s.show(&id)["status"], "Succeeded");
    let history = s.history(&id);
    assert!(
        history.contains("lease lost") && history.contains("still running and w"),
        "the history names the orphaned run's processes:\n{history}"
    );
}

#[test]
fn a_detached_child_does_not_hold_its_run_and_is_ended() {
    let s = Store::new();
    let pidfile = s.path("daemon.pid");
    // The daemon leaves the run's process group (setsid) and only then
    // writes its pid; the shell exits once it is written: only the marks
    // can find the daemon (which keeps the run's stderr open too).
    let p = pidfile.display();
    let command = format!(
        "setsid sh -c 'echo $$ > \"$0\"; exec sleep 300' '{p}' & while [ ! -s '{p}' ]; do sleep 0.01; done; exit 0"
    );
    let id = s.submit("d", &command, &[]);
    let out = exits_within(s.service(&["--until-idle"]), Duration::from_secs(60), "run --until-idle with a daemon");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.show(&id)["status"], "Succeeded");
    let daemon = read_pid(&pidfile);
    let left = end_marked(&s);
    assert!(!alive(daemon) && left.is_empty(), "the detached sleep {daemon} outlived its run (left: {left:?})");
}

/// A detached daemon that forks a child every few milliseconds, each
/// holding what the run holds (its environment, its descriptors).
const FORKING_DAEMON: &str = "setsid sh -c 'while :; do sleep 1000 & sleep 0.001; done' &";

#[test]
fn a_detached_daemon_that_keeps_forking_is_ended_with_its_run() {
    let s = Store::new();
    let id = s.submit("forker", &format!("{FORKING_DAEMON} sleep 0.5; exit 0"), &[]);
    let out = exits_within(s.service(&["--until-idle"]), Duration::from_secs(60), "run --until-idle with a forker");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.show(&id)["status"], "Succeeded");
    let left = end_marked(&s);
    assert!(left.is_empty(), "processes of the run outlived it: {left:?}");
}

#[test]
fn a_forking_daemon_left_by_a_killed_service_never_overlaps_the_next_run() {
    let s = Store::new();
    let (lock, log) = (s.path("lock"), s.path("runs.log"));
    // The daemon and every child it forks hold the run's lock.
    let command = locked_run(&lock, &log, 6).replacen("; sleep 6", &format!("; {FORKING_DAEMON} sleep 6"), 1);
    let id = s.submit("once", &command, &[]);
    let mut service = s.service(&["--for", "120s"]);
    eventually(Duration::from_secs(30), "the run never started", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("start"))
    });
    std::thread::sleep(Duration::from_millis(300));
    kill9(&mut service);
    let out = exits_within(s.service(&["--until-idle"]), Duration::from_secs(60), "run --until-idle");
    let left = end_marked(&s);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(!runs.contains("OVERLAP"), "two runs of one job at once:\n{runs}");
    assert_eq!((runs.matches("start").count(), runs.matches("end").count()), (2, 1), "{runs}");
    assert_eq!(s.show(&id)["status"], "Succeeded");
    assert!(left.is_empty(), "processes of the runs outlived them: {left:?}");
}

/// `joblog ARGS` where `/proc` cannot be listed: in a mount namespace of
/// its own, over an empty tmpfs of mode 000, without the capabilities
/// that bypass file modes. `None` (said loudly) where this cannot be set
/// up (not root, no mount namespaces, no `setpriv`).
fn without_proc(s: &Store, args: &[&str]) -> Option<Output> {
    const DROP: &str = "-dac_override,-dac_read_search";
    let jail = |program: &str, args: &[&str]| {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o mode=000 none /proc && exec setpriv --inh-caps=\"$0\" --bounding-set=\"$0\" \"$@\"",
            DROP,
            program,
        ])
        .args(args);
        c
    };
    let probe = jail("ls", &["/proc"]).output();
    let denied = probe.as_ref().is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("Permission denied"));
    if !denied {
        eprintln!("SKIPPED: cannot hide /proc here (needs root, unshare -m and setpriv): {probe:?}");
        return None;
    }
    let mut c = jail(env!("CARGO_BIN_EXE_joblog"), args);
    c.env("JOBLOG_DATA", s.data()).env_remove("JOBLOG_USER").env_remove("JOBLOG_SOCKET");
    Some(c.output().unwrap())
}

#[test]
fn the_service_does_not_start_when_it_cannot_look_for_leftover_processes() {
    let s = Store::new();
    let id = s.submit("a", "true", &[]);
    let Some(out) = without_proc(&s, &["run", "--until-idle"]) else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot list the processes in /proc") && stderr.contains("does not start"), "{stderr}");
    // Nothing changed: the job was not run, no default job installed.
    assert_eq!(s.show(&id)["status"], "Waiting For Resources");
    assert_eq!(s.json(&["list", "--count"])["count"], 1);
}

#[test]
fn a_command_that_runs_too_long_is_ended_and_fails_with_its_code() {
    let s = Store::new();
    // Ignores SIGTERM (so does its sleep): only SIGKILL after the grace ends it.
    let own = s.submit("own", "trap '' TERM; sleep 300", &["--timeout", "1"]);
    let default = s.submit("default", "sleep 300", &[]);
    let free = s.submit("free", "sleep 1", &["--timeout", "60"]);
    let out = exits_within(
        s.service(&["--until-idle", "--command-timeout", "2"]),
        Duration::from_secs(90),
        "run --until-idle with commands that time out",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (id, secs) in [(&own, 1), (&default, 2)] {
        let job = s.show(id);
        assert_eq!((job["status"].as_str(), job["errorcode"].as_i64()), (Some("Failed"), Some(-1006)), "{job}");
        let message = job["message"].as_str().unwrap();
        assert!(message.contains(&format!("timed out after {secs} s")), "{message}");
    }
    assert_eq!(s.show(&free)["status"], "Succeeded", "a job's own timeout wins over the default");
    // The store's policy wins over the service's flag.
    s.json(&["config", "set", "command.timeout_secs", "1"]);
    let policy = s.submit("policy", "sleep 300", &[]);
    let out = exits_within(
        s.service(&["--until-idle", "--command-timeout", "600"]),
        Duration::from_secs(60),
        "run --until-idle with the store's timeout",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job = s.show(&policy);
    assert_eq!(job["errorcode"].as_i64(), Some(-1006), "{job}");
    assert!(job["message"].as_str().unwrap().contains("timed out after 1 s"), "{job}");
    // Out of range, or without a command: usage errors, nothing submitted.
    for bad in [
        &["--timeout", "0"][..],
        &["--timeout", "x"],
        &["--timeout", "2592001"],
        &["--timeout", "+5"],
        &["--timeout", " 5"],
    ] {
        let out = s.raw(&[&["submit", "--name", "t", "--command", "true"], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("timeout"), "{bad:?}");
    }
    let out = s.raw(&["submit", "--name", "t", "--timeout", "5"]);
    assert_eq!(out.status.code(), Some(2), "--timeout needs --command");
    for bad in ["0", "+5", "5s"] {
        let out = s.raw(&["run", "--until-idle", "--command-timeout", bad]);
        assert_eq!(out.status.code(), Some(2), "--command-timeout {bad}");
    }
    assert_eq!(s.json(&["list", "--count"])["count"], 5, "the four jobs and the default bulk deletion");
}

/// `import` lines for `n` jobs with long names (a big `list --json`).
fn many_jobs(s: &Store, n: usize) {
    let name = "x".repeat(200);
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"{name}-{i}","operationtype":1,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:00:01Z"}}"#
            )
        })
        .collect();
    let file = s.path("jobs.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    s.json(&["import", file.to_str().unwrap()]);
}

#[test]
fn sigterm_ends_the_service_in_bounded_time_whatever_clients_and_commands_do() {
    use std::io::Write;
    let s = Store::new();
    many_jobs(&s, 2000);
    let stubborn = |name: &str| {
        let pidfile = s.path(&format!("{name}.pid"));
        let command = format!("trap '' TERM; setsid sleep 300 & echo $! > '{}'; sleep 300", pidfile.display());
        (s.submit(name, &command, &[]), pidfile)
    };
    let (canceled, canceled_pid) = stubborn("canceled");
    let (id, pidfile) = stubborn("stubborn");
    let service = s.service(&["--for", "600s", "--workers", "2"]);
    let socket = s.data().join("joblog.sock");
    eventually(Duration::from_secs(30), "the stubborn jobs never started", || {
        socket.exists()
            && s.show(&id)["status"] == "In Progress"
            && s.show(&canceled)["status"] == "In Progress"
            && pidfile.exists()
            && canceled_pid.exists()
    });
    // A cancel ends a command that ignores SIGTERM and left a daemon: after
    // the grace period (5 s), with room to spare.
    s.json(&["cancel", &canceled]);
    eventually(Duration::from_secs(20), "cancel did not end a stubborn command", || {
        s.show(&canceled)["status"] == "Canceled"
    });
    let daemon = read_pid(&canceled_pid);
    assert!(!alive(daemon), "the canceled command's detached child {daemon} outlived its run");
    // A client that sends half a request line and waits.
    let mut half = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    half.write_all(b"{\"argv\":[\"joblog\",").unwrap();
    // A client whose reply (about 1 MB) it never reads.
    let mut deaf = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    deaf.write_all(
        b"{\"argv\":[\"joblog\",\"list\",\"--json\",\"--limit\",\"2000\"],\"user\":\"admin\",\"json\":true}\n",
    )
    .unwrap();
    // Not needed for the check (a request still being answered is cut the
    // same way); it only lets the service start writing the reply.
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    // The command's grace (5 s) and the clients' (2 s), with room to spare;
    // before, the deaf client alone held the service for 30 s.
    let out = exits_within(service, Duration::from_secs(25), "SIGTERM with a slow client and a stubborn command");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("the service stopped {:?} after SIGTERM", stopped.elapsed());
    drop((half, deaf));
    assert_eq!(s.show(&id)["status"], "Waiting For Resources", "the stopped run went back to the queue");
    let daemon = read_pid(&pidfile);
    assert!(!alive(daemon), "the stubborn command's detached child {daemon} outlived the service");
}
