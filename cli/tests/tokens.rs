//! `joblog token create|list|revoke` end to end (docs/cli.md, "Tokens"):
//! who may make, list and revoke whose tokens, what each refusal exits
//! with and that it writes nothing, the status `list` shows (live,
//! expired, revoked, user deactivated), that no printed token is ever in
//! the store's files, and the same through a running service's socket.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod support;

use support::Store;

const T0: &str = "2026-01-31T12:00:00Z";

fn raw(s: &Store, args: &[&str]) -> Output {
    s.command(args).output().unwrap()
}

/// Runs a command, checks its exit code (and one line on stderr when it
/// fails), returns stdout.
fn run(s: &Store, code: i32, args: &[&str]) -> String {
    let out = raw(s, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "joblog {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    if code != 0 {
        assert_eq!(stderr.trim().lines().count(), 1, "one clear line on stderr: {stderr}");
    }
    stdout.into_owned()
}

/// A failing command's stderr line.
fn fails(s: &Store, code: i32, args: &[&str]) -> String {
    let out = raw(s, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "joblog {args:?}: {stderr}");
    stderr
}

fn json(s: &Store, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = run(s, 0, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn last_seq(s: &Store) -> u64 {
    json(s, &["stats"])["last_seq"].as_u64().unwrap()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn is_token(t: &str) -> bool {
    t.len() == 67 && t.starts_with("jl_") && t[3..].bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `token list --json` as `--as user`: (id, user, status) of each.
fn listed(s: &Store, user: &str, extra: &[&str]) -> Vec<(String, String, String)> {
    let mut a = vec!["--as", user];
    a.extend_from_slice(extra);
    a.extend(["token", "list"]);
    json(s, &a)
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["id"].as_str().unwrap().into(), t["user"].as_str().unwrap().into(), t["status"].as_str().unwrap().into())
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// No file of the store holds any of `tokens`, whole or its hex digits.
fn assert_nowhere_in_the_store(s: &Store, tokens: &[String]) {
    let all = files(&s.data());
    assert!(all.iter().any(|p| p.extension().is_some_and(|e| e == "seg")), "the store has segments: {all:?}");
    for p in all {
        let bytes = std::fs::read(&p).unwrap();
        for t in tokens {
            for needle in [t.as_bytes(), &t.as_bytes()[3..]] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds a printed token", p.display());
            }
        }
    }
}

/// A store with alice and bob, basic users; the tests' clock is T0.
fn store() -> Store {
    let s = Store::new();
    json(&s, &["--now", T0, "user", "add", "alice", "--role", "basic-user"]);
    json(&s, &["--now", T0, "user", "add", "bob", "--role", "basic-user"]);
    s
}

/// The part every way in shares: alone, or through the service (`now`:
/// the `--now` to pass, none through the service, which refuses one).
fn create_list_revoke(s: &Store, now: &[&str]) -> Vec<String> {
    let with = |args: &[&str]| -> Vec<String> { now.iter().chain(args).map(|a| a.to_string()).collect() };
    // An administrator makes one for alice: JSON has the token and its id.
    let a = with(&["token", "create", "alice", "--name", "ci deploys", "--expires-in", "30"]);
    let made = json(s, &args(&a));
    let (for_alice, alice_id) = (made["token"].as_str().unwrap().to_string(), made["id"].as_str().unwrap().to_string());
    assert!(is_token(&for_alice), "{made}");
    assert_eq!(made["user"], "alice");
    // Alice makes one for herself: the text ends with the token alone.
    let a = with(&["--as", "alice", "token", "create", "alice"]);
    let text = run(s, 0, &args(&a));
    let own = text.trim_end().lines().last().unwrap().to_string();
    assert!(is_token(&own), "{text}");
    assert!(text.contains("shown once") && text.contains("for alice"), "{text}");
    // Alice may not make one for bob (permission denied), and nothing is written.
    let before = last_seq(s);
    let a = with(&["--as", "alice", "token", "create", "bob"]);
    assert!(fails(s, 5, &args(&a)).contains("Organization"));
    // Bad values: usage errors, nothing written.
    for bad in [&["--expires-in", "0"][..], &["--expires-in", "3651"], &["--expires-in", "soon"], &["--name", ""]] {
        let mut a = with(&["token", "create", "alice"]);
        a.extend(bad.iter().map(|x| x.to_string()));
        fails(s, 2, &args(&a));
    }
    let a = with(&["token", "create", "nobody"]);
    fails(s, 3, &args(&a));
    assert_eq!(last_seq(s), before);
    // Listing: all for the administrator, their own for the others.
    let all = listed(s, "admin", now);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, u, st)| u == "alice" && st == "live"), "{all:?}");
    assert_eq!(listed(s, "alice", now).len(), 2);
    assert!(listed(s, "bob", now).is_empty());
    let table = run(s, 0, &args(&with(&["token", "list"])));
    assert!(table.contains("ci deploys") && table.contains(&alice_id) && table.contains("live"), "{table}");
    assert!(!table.contains(&for_alice) && !table.contains(&own), "list never shows a secret");
    // Revoking: bob does not see alice's token; a bad id is a usage error.
    let before = last_seq(s);
    let a = with(&["--as", "bob", "token", "revoke", &alice_id]);
    assert!(fails(s, 3, &args(&a)).contains("no token"));
    let a = with(&["token", "revoke", "not-an-id"]);
    fails(s, 2, &args(&a));
    assert_eq!(last_seq(s), before);
    let a = with(&["--as", "alice", "token", "revoke", &alice_id]);
    assert_eq!(json(s, &args(&a))["revoked"], true);
    let a = with(&["token", "revoke", &alice_id]);
    assert!(fails(s, 2, &args(&a)).contains("already revoked"));
    let statuses: Vec<String> = listed(s, "alice", now).into_iter().map(|t| t.2).collect();
    assert_eq!(statuses, ["revoked", "live"]);
    vec![for_alice, own]
}

#[test]
fn tokens_are_made_listed_and_revoked_by_whom_may() {
    let s = store();
    let printed = create_list_revoke(&s, &["--now", T0]);
    // A month later the 30-day token would have expired, and the 90-day one not.
    let later = ["--now", "2026-03-05T12:00:00Z"];
    let statuses: Vec<String> = listed(&s, "admin", &later).into_iter().map(|t| t.2).collect();
    assert_eq!(statuses, ["revoked", "live"]);
    let far = ["--now", "2026-05-05T12:00:00Z"];
    let statuses: Vec<String> = listed(&s, "admin", &far).into_iter().map(|t| t.2).collect();
    assert_eq!(statuses, ["revoked", "expired"]);
    // A deactivated user's tokens stop working; `list` says why.
    json(&s, &["--now", T0, "user", "deactivate", "alice"]);
    let statuses: Vec<String> = listed(&s, "admin", &["--now", T0]).into_iter().map(|t| t.2).collect();
    assert_eq!(statuses, ["revoked", "user deactivated"]);
    // A deactivated user gets no new token, and cannot list theirs.
    fails(&s, 2, &["--now", T0, "token", "create", "alice"]);
    fails(&s, 5, &["--as", "alice", "token", "list"]);
    assert_nowhere_in_the_store(&s, &printed);
    // verify compares the tokens too, and finds nothing wrong.
    run(&s, 0, &["verify"]);
}

#[test]
fn tokens_through_a_running_service() {
    let s = store();
    let service = Command::new(env!("CARGO_BIN_EXE_joblog"))
        .args(["run", "--for", "120s", "--json"])
        .env("JOBLOG_DATA", s.data())
        .env_remove("JOBLOG_USER")
        .env_remove("JOBLOG_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = s.data().join("joblog.sock");
    support::eventually(std::time::Duration::from_secs(10), "the service listens", || socket.exists());
    let printed = create_list_revoke(&s, &[]);
    Command::new("kill").args(["-TERM", &service.id().to_string()]).status().unwrap();
    let out = service.wait_with_output().unwrap();
    assert!(out.status.success(), "the service did not stop cleanly: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!socket.exists());
    // What the service wrote reads back alone, and holds no secret.
    assert_eq!(listed(&s, "admin", &[]).len(), 2);
    assert_nowhere_in_the_store(&s, &printed);
    let service_out = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(printed.iter().all(|t| !service_out.contains(t.as_str())), "the service's own output shows no token");
}
