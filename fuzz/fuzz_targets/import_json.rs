//! Arbitrary text as a JSON-lines import (`joblog import FILE.jsonl`):
//! parsing never panics, every line is answered once, and every job it
//! accepts respects the limits (`docs/limits.md`): it validates, its owner
//! and business unit are in the directory, no number was cut.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common/import.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = common::directory();
    let parsed = joblog_cli::import::parse_json_lines(text, &dir, "admin");
    let mut last = 0;
    for (line, job) in parsed {
        assert!(line > last, "line numbers increase");
        last = line;
        if let Ok(job) = job {
            common::check_accepted(&dir, line, &job);
        }
    }
});
