//! Arbitrary bytes as a cold run (`docs/format.md`, "Cold runs"): opening
//! and every read either answer or return an error, never panic. The bytes
//! get valid checksums here, so that the fuzzer reaches the sections'
//! decoders behind them (seed the corpus with the data part of
//! `tests/fixtures/cold-v2.run`).
#![no_main]

use joblog::projection::cold::{ColdRun, POSTINGS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(run) = ColdRun::from_bytes(joblog::projection::cold::with_valid_checksums(bytes)) else { return };
    let _ = run.check_all();
    for i in 0..run.len().min(64) as u32 {
        if let Ok(row) = run.row(i) {
            let _ = run.events(&row);
            let _ = run.name(row.owner);
            let _ = run.find(row.id);
        }
    }
    for s in POSTINGS {
        if let Ok(keys) = run.keys(s) {
            for (k, _) in keys.into_iter().take(16) {
                if let Ok(p) = run.postings(s, k) {
                    for i in 0..p.len().min(16) {
                        let _ = p.get(i);
                    }
                }
            }
        }
    }
    let _ = run.segments();
    // More names than a run answers before it reads its fence of names
    // (64): the fence is read from these bytes too.
    for k in 0..80 {
        let _ = run.sym(["alice", "root", "", "account:7", "\u{10FFFF}"][k % 5]);
    }
});
