//! Arbitrary bytes as the two parts of a checkpoint (its first two bytes
//! say where the head part ends) whose header, frame and checksums are
//! made valid here, so that the fuzzer reaches both decoders and the
//! checks after them: loading never panics, and what it cannot use it
//! skips.
#![no_main]

use joblog::projection::Projection;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let (cut, body) = match input {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1), rest),
        _ => (0, input),
    };
    let (head, hot) = body.split_at(cut);
    let file = joblog::projection::checkpoint_file_bytes(5, head, hot);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snapshot-00000000000000000005.bin"), &file).unwrap();
    let (loaded, skipped) = Projection::load_snapshot(dir.path(), 100, &Default::default());
    assert!(loaded.is_some() != (skipped.len() == 1));
});
