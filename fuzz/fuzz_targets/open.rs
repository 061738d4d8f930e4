//! Arbitrary bytes as the files of a log directory, opened for real: the
//! first half of the input as the active segment and the rest, if it is a
//! manifest, as the manifest. Opening (for salvage, and normally) and
//! reading everything must return data or errors, never panic.
#![no_main]

use joblog::log::{Log, LogConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let split = data.first().map_or(0, |&b| (b as usize * data.len()) / 256);
    let (segment, manifest) = data.split_at(split);
    std::fs::write(dir.path().join("00000000000000000001.seg"), segment).unwrap();
    if !manifest.is_empty() {
        std::fs::write(dir.path().join("MANIFEST"), manifest).unwrap();
    }
    let small = LogConfig::MIN_SEGMENT_BYTES;
    for config in [
        LogConfig { segment_size_bytes: small, ..LogConfig::salvage() },
        LogConfig { segment_size_bytes: small, ..LogConfig::default() },
    ] {
        if let Ok(log) = Log::open(dir.path(), config) {
            for r in log.iter_from(0) {
                if let Ok(r) = r {
                    std::hint::black_box(r.payload());
                }
            }
            let _ = log.verify();
        }
    }
});
