//! Arbitrary text as a JSON-lines import (`joblog import FILE.jsonl`):
//! parsing never panics, every line is answered once, and every job it
//! accepts respects the limits (`docs/limits.md`): it validates, its owner
//! and business unit are in the directory, no number was cut.
#![no_main]

use joblog::domain::{Directory, User};
use libfuzzer_sys::fuzz_target;

fn directory() -> Directory {
    let mut d = Directory::fresh();
    d.add_business_unit("sales", "root").unwrap();
    d.add_user(User { name: "alice".into(), business_unit: "sales".into(), roles: vec!["basic-user".into()], active: true })
        .unwrap();
    d
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = directory();
    let parsed = joblog_tools::cli::import::parse_json_lines(text, &dir, "admin");
    let mut last = 0;
    for (line, job) in parsed {
        assert!(line > last, "line numbers increase");
        last = line;
        if let Ok(job) = job {
            assert!(job.validate().is_ok(), "line {line}: an accepted job breaks a limit: {job:?}");
            assert!(dir.user(&job.owner).is_ok(), "line {line}: unknown owner accepted");
            assert!(dir.has_business_unit(&job.owningbusinessunit), "line {line}: unknown unit accepted");
        }
    }
});
