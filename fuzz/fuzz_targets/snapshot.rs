//! Arbitrary bytes as a checkpoint whose header, frame and checksums are
//! made valid here, so that the fuzzer reaches the decoders and the checks
//! after them: loading never panics, and what it cannot use it skips. The
//! first two bytes choose the format and where the head part ends: an odd
//! first byte makes a format 8 checkpoint of the rest as its body, an even
//! one a checkpoint of format 9 (the second byte odd) or 10 (even) whose
//! head part ends where the two bytes say.
#![no_main]

use joblog::projection::Projection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let file = match input {
        [a, _, rest @ ..] if a % 2 == 1 => joblog::projection::checkpoint_file_bytes(8, 5, rest, None),
        [a, b, rest @ ..] => {
            let version = if b % 2 == 1 { 9 } else { 10 };
            let cut = usize::from(u16::from_le_bytes([*a, *b]) >> 2) % (rest.len() + 1);
            let (head, hot) = rest.split_at(cut);
            joblog::projection::checkpoint_file_bytes(version, 5, head, Some(hot))
        }
        _ => joblog::projection::checkpoint_file_bytes(10, 5, input, Some(&[])),
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot-00000000000000000005.bin"), &file).unwrap();
    let (loaded, skipped) = Projection::load_snapshot(dir.path(), 100, &Default::default());
    assert!(loaded.is_some() != (skipped.len() == 1));
});
