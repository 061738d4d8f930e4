//! Arbitrary bytes as the files of a log directory, opened for real. The
//! first two bytes (little-endian) say how many of the rest form the segment
//! `00000000000000000001.seg`; what follows, if anything, is the MANIFEST.
//! Opening (for salvage, and normally), reading everything and verifying
//! must return data or errors, never panic. `seeds.py` makes valid inputs.
#![no_main]

use joblog::log::{Log, LogConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let split = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (segment, manifest) = rest.split_at(split);
    let dir = tempfile::tempdir().unwrap();
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
            for r in log.iter_from(0).flatten() {
                std::hint::black_box(r.payload());
            }
            let _ = log.verify();
            if !log.segments().is_empty() {
                let _ = log.append(b"after");
            }
        }
    }
});
