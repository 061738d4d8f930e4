//! An import through the service, with the service killed (`kill -9`)
//! while it writes: afterwards the store holds whole batches of the file
//! (each batch one atomic write, docs/cli.md "import FILE"), and running
//! the same import again finishes it, counting what an earlier run wrote
//! as already there. A job of the file that exists with other values is
//! still refused, nothing written.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{dir_bytes, eventually, Store};

/// Rows in the file: three batches of the importer's 50,000.
const ROWS: u128 = 120_000;

fn row(i: u128, name: &str) -> String {
    format!(
        r#"{{"asyncoperationid":"{}","name":"{name} {i}","operationtype":10,"statecode":3,"statuscode":30,"createdon":"2025-06-01T00:00:00Z","completedon":"2025-06-01T00:01:00Z","regardingobjectid":"account:{}"}}"#,
        uuid::Uuid::from_u128(0x0193_a3c0_0000_7000_8000_0000_0000_0000 + i),
        i % 97
    )
}

fn count(s: &Store) -> u64 {
    // The file's jobs (Workflow), not the Bulk Delete job the service makes.
    let out = s.command(&["--as", "admin", "list", "--type", "workflow", "--count", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["count"].as_u64().unwrap()
}

#[test]
fn an_import_killed_part_way_is_finished_by_running_it_again() {
    let s = Store::new();
    let file = s.path("big.jsonl");
    std::fs::write(&file, (1..=ROWS).map(|i| row(i, "imported")).collect::<Vec<_>>().join("\n")).unwrap();
    let file = file.to_str().unwrap();
    // The store made (an administrator's first change), empty of jobs.
    assert!(s.command(&["--as", "admin", "user", "add", "bob"]).output().unwrap().status.success());
    assert_eq!(count(&s), 0);
    let before = dir_bytes(&s.data());

    let mut service = s.command(&["run", "--for", "300s"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    eventually(Duration::from_secs(20), "the service's socket", || s.data().join("joblog.sock").exists());
    let client = s.command(&["--as", "admin", "import", file, "--json"]).stdout(Stdio::piped()).spawn().unwrap();
    // Killed once the first batch is on its way to disk (the store grew by
    // a few MB), or when the client is done, whichever comes first.
    let grew = || dir_bytes(&s.data()) > before + (4 << 20);
    eventually(Duration::from_secs(120), "the import to start writing", grew);
    Command::new("kill").args(["-9", &service.id().to_string()]).status().unwrap();
    service.wait().unwrap();
    let first = client.wait_with_output().unwrap();
    let written = count(&s);
    eprintln!(
        "killed with {written} of {ROWS} jobs written (the client exited {}: {})",
        first.status,
        String::from_utf8_lossy(&first.stdout).trim()
    );
    assert!(written.is_multiple_of(50_000) || written == ROWS as u64, "whole batches only: {written}");
    if first.status.success() {
        let v: Value = serde_json::from_slice(&first.stdout).unwrap();
        assert_eq!(v["imported"], ROWS as u64, "an acknowledged import is all there: {v}");
        assert_eq!(written, ROWS as u64);
    }

    // The same import again (no service now: the command opens the store).
    let out = s.command(&["--as", "admin", "import", file, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"].as_u64().unwrap() + v["already_there"].as_u64().unwrap_or(0), ROWS as u64, "{v}");
    assert_eq!(v["already_there"].as_u64().unwrap_or(0), written, "{v}");
    assert_eq!(count(&s), ROWS as u64);
    let verify = s.command(&["--as", "admin", "verify"]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));

    // Run once more: everything is there already, nothing written.
    let v: Value =
        serde_json::from_slice(&s.command(&["--as", "admin", "import", file, "--json"]).output().unwrap().stdout)
            .unwrap();
    assert_eq!((v["imported"].as_u64(), v["already_there"].as_u64()), (Some(0), Some(ROWS as u64)), "{v}");

    // A job of the file that exists with other values: a bad line, and
    // nothing of that file is written.
    let other = s.path("other.jsonl");
    std::fs::write(&other, [row(ROWS + 1, "new"), row(7, "renamed")].join("\n")).unwrap();
    let out = s.command(&["--as", "admin", "import", other.to_str().unwrap(), "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("line 2") && report.contains("already exists, with other values"), "{report}");
    assert_eq!(count(&s), ROWS as u64, "nothing of the refused file written");
}
