//! Arbitrary bytes as the body of a checkpoint whose header and checksums
//! are made valid here, so that the fuzzer reaches the body decoder and the
//! checks after it: loading never panics, and what it cannot use it skips.
#![no_main]

use joblog::projection::Projection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let file = joblog::projection::checkpoint_file_bytes(5, body);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot-00000000000000000005.bin"), &file).unwrap();
    let (loaded, skipped) = Projection::load_snapshot(dir.path(), 100, &Default::default());
    assert!(loaded.is_some() != (skipped.len() == 1));
});
