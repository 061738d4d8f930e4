//! The text the administration commands print without `--json`, pinned
//! line by line: since issue #15 each is rendered from the JSON the native
//! API answers (`cli/src/render.rs`), and must read exactly as before.

use std::process::Output;

mod support;

use support::Store;

const T0: &str = "2026-01-31T12:00:00Z";
const T1: &str = "2026-01-31T13:00:00Z";

fn raw(s: &Store, now: &str, args: &[&str]) -> Output {
    let mut a = vec!["--now", now];
    a.extend_from_slice(args);
    s.command(&a).output().unwrap()
}

/// Stdout of a command that must succeed, without its final newline.
fn ok(s: &Store, now: &str, args: &[&str]) -> String {
    let out = raw(s, now, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "joblog {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    stdout.strip_suffix('\n').unwrap_or(&stdout).to_string()
}

/// The row of `table` whose first cell is `first`, as its cells.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

#[test]
fn users_roles_units_and_workflows_print_as_before() {
    let s = Store::new();
    assert_eq!(ok(&s, T0, &["business-unit", "add", "sales"]), "business unit sales added under root");
    assert_eq!(
        ok(&s, T0, &["business-unit", "add", "east", "--parent", "sales"]),
        "business unit east added under sales"
    );
    assert_eq!(
        ok(&s, T0, &["role", "add", "auditor", "--privilege", "read:organization", "--privilege", "write:user"]),
        "role auditor added"
    );
    assert_eq!(ok(&s, T0, &["user", "add", "bob"]), "user bob added to root as basic-user");
    assert_eq!(
        ok(&s, T0, &["user", "add", "carol", "--role", "auditor", "--role", "basic-user", "--business-unit", "east"]),
        "user carol added to east as auditor, basic-user"
    );
    assert_eq!(
        ok(&s, T0, &["user", "map", "bob", "--os-user", "4242"]),
        "OS user 4242 now acts as bob (and only as bob) through the service"
    );
    assert_eq!(ok(&s, T0, &["user", "map", "bob", "--none"]), "bob is no longer mapped to an OS user");
    assert_eq!(ok(&s, T0, &["user", "deactivate", "carol"]), "user carol deactivated");
    let users = ok(&s, T0, &["user", "list"]);
    assert_eq!(row(&users, "User"), ["User", "Business Unit", "Roles", "Active"]);
    assert_eq!(row(&users, "carol"), ["carol", "east", "auditor, basic-user", "no"]);
    assert_eq!(row(&users, "bob"), ["bob", "root", "basic-user", "yes"]);
    assert_eq!(ok(&s, T0, &["user", "reactivate", "carol"]), "user carol reactivated");

    assert_eq!(ok(&s, T0, &["workflow", "add", "welcome"]), "workflow welcome added, owned by admin");
    assert_eq!(
        ok(&s, T0, &["workflow", "add", "sync", "--name", "Invoice sync", "--owner", "bob"]),
        "workflow sync added, owned by bob"
    );
    assert_eq!(ok(&s, T0, &["workflow", "set-owner", "welcome", "bob"]), "workflow welcome is now owned by bob");
    let workflows = ok(&s, T0, &["workflow", "list"]);
    assert_eq!(row(&workflows, "Workflow"), ["Workflow", "Name", "Owner"]);
    assert_eq!(row(&workflows, "sync"), ["sync", "Invoice sync", "bob"]);
    assert_eq!(row(&workflows, "welcome"), ["welcome", "welcome", "bob"]);
}

#[test]
fn tokens_print_as_before() {
    let s = Store::new();
    ok(&s, T0, &["user", "add", "bob"]);
    let made = ok(&s, T0, &["token", "create", "bob", "--name", "ci", "--expires-in", "30"]);
    let lines: Vec<&str> = made.lines().collect();
    assert_eq!(lines.len(), 2, "{made}");
    let id = lines[0].strip_prefix("token ").unwrap().split(' ').next().unwrap();
    assert_eq!(
        lines[0],
        format!("token {id} for bob, expires 2026-03-02T12:00:00Z; shown once (joblog keeps only its hash):")
    );
    assert!(lines[1].starts_with("jl_") && lines[1].len() == 67, "{made}");
    let listed = ok(&s, T0, &["token", "list"]);
    assert_eq!(row(&listed, "Id"), ["Id", "User", "Name", "Created", "Expires", "Status"]);
    assert_eq!(row(&listed, id), [id, "bob", "ci", "2026-01-31T12:00:00Z", "2026-03-02T12:00:00Z", "live"]);
    assert_eq!(ok(&s, T0, &["token", "revoke", id]), format!("token {id} revoked"));
    assert_eq!(row(&ok(&s, T0, &["token", "list"]), id)[5], "revoked");
    // No name: an empty cell (the Created cell comes third once blanks are dropped).
    let made = ok(&s, T0, &["token", "create", "bob"]);
    let id = made.strip_prefix("token ").unwrap().split(' ').next().unwrap().to_string();
    assert_eq!(row(&ok(&s, T0, &["token", "list"]), &id)[2], "2026-01-31T12:00:00Z");
}

#[test]
fn config_prints_as_before() {
    let s = Store::new();
    let key = "backoff.threshold";
    ok(&s, T0, &["user", "add", "bob"]);
    let shown = ok(&s, T0, &["config", "show"]);
    assert_eq!(row(&shown, "Key"), ["Key", "In force", "From", "Default", "Range"]);
    assert_eq!(row(&shown, key), [key, "3", "default", "3", "1..=1000 failures"]);
    assert_eq!(ok(&s, T1, &["config", "set", key, "5"]), format!("{key} set to 5 failures (default 3)"));
    assert_eq!(ok(&s, T1, &["config", "set", key, "5"]), format!("{key} is already 5: nothing changed"));
    assert_eq!(row(&ok(&s, T1, &["config", "show"]), key), [key, "5", "set", "3", "1..=1000 failures"]);
    let past = ok(&s, T1, &["config", "show", "--until", T0]);
    assert!(past.starts_with(&format!("as of {T0} (replayed from the log):\nKey")), "{past}");
    assert_eq!(row(&past, key), [key, "3", "default", "3", "1..=1000 failures"]);
    assert_eq!(ok(&s, T1, &["config", "unset", key]), format!("{key} back to its default: 3"));
    assert_eq!(ok(&s, T1, &["config", "unset", key]), format!("{key} is already 3: nothing changed"));
    assert_eq!(
        ok(&s, T1, &["config", "set", "command.timeout_secs", "600"]),
        "command.timeout_secs set to 600 s (default none)"
    );
}
