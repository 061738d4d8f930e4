//! Looking past damage: `survey` and `resync` over arbitrary bytes never
//! panic, never report a stretch or a frame outside the bytes, report
//! stretches in order without overlap, and never prove more than they hold.
#![no_main]

use joblog::log::format::{read_frame, resync, survey, FrameRead, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (from, bytes) = match data.split_first() {
        Some((&f, rest)) => (HEADER_LEN + f as usize, rest),
        None => return,
    };
    let s = survey(bytes, from, Some(0), u64::MAX);
    assert!(s.proven <= bytes.len());
    let mut end = 0;
    for st in &s.stretches {
        assert!(st.len > 0 && st.offset >= end && st.offset + st.len <= bytes.len());
        end = st.offset + st.len;
    }
    assert!(s.last_batch_end.is_none_or(|e| e <= bytes.len()));
    if let Some(f) = resync(bytes, from, 1..=u64::MAX) {
        assert!(f.end() <= bytes.len() && f.offset() >= from);
        assert!(matches!(read_frame(bytes, f.offset()), FrameRead::Frame(g) if g == f));
    }
});
