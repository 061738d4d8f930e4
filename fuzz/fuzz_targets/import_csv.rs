//! Arbitrary text as a CSV import (the platform's export): parsing never
//! panics, and every job it accepts respects the limits (`docs/limits.md`),
//! with its owner and business unit in the directory.
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
    // With and without the header the importer needs, so that the fuzzer
    // reaches the rows quickly.
    let with_header = format!("System Job Name,System Job Type,Status,Status Reason,Owner,Regarding,Created On,Message\n{text}");
    for input in [text, with_header.as_str()] {
        for (line, job) in joblog_tools::cli::import::parse_csv(input, &dir, "admin") {
            if let Ok(job) = job {
                assert!(job.validate().is_ok(), "line {line}: an accepted job breaks a limit: {job:?}");
                assert!(dir.user(&job.owner).is_ok(), "line {line}: unknown owner accepted");
                assert!(dir.has_business_unit(&job.owningbusinessunit), "line {line}: unknown unit accepted");
            }
        }
    }
});
