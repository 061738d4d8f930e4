//! Arbitrary bytes as the body of a checkpoint whose header and checksums
//! are made valid here, so that the fuzzer reaches the body decoder and the
//! checks after it: loading never panics, and what it cannot use it skips.
#![no_main]

use joblog::projection::Projection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut file = Vec::with_capacity(40 + body.len());
    file.extend_from_slice(b"JOBLOGSN");
    file.extend_from_slice(&1u16.to_le_bytes()); // snapshot format version
    file.extend_from_slice(&joblog::codec::CODEC_VERSION.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&5u64.to_le_bytes()); // last_seq
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    let header_crc = crc32fast::hash(&file);
    file.extend_from_slice(&header_crc.to_le_bytes());
    file.extend_from_slice(body);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot-00000000000000000005.bin"), &file).unwrap();
    let (loaded, skipped) = Projection::load_snapshot(dir.path(), 100);
    assert!(loaded.is_some() != (skipped.len() == 1));
});
