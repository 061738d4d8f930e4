//! Arbitrary text as a CSV import (the platform's export): parsing never
//! panics, and every job it accepts respects the limits (`docs/limits.md`),
//! with its owner and business unit in the directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/import.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = common::directory();
    // With and without the header the importer needs, so that the fuzzer
    // reaches the rows quickly.
    let with_header =
        format!("System Job Name,System Job Type,Status,Status Reason,Owner,Regarding,Created On,Message\n{text}");
    for input in [text, with_header.as_str()] {
        for (line, job) in joblog_cli::import::parse_csv(input, &dir, "admin") {
            if let Ok(job) = job {
                common::check_accepted(&dir, line, &job);
            }
        }
    }
});
