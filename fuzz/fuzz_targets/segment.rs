//! Arbitrary bytes as a segment: header decoding and frame scanning must
//! never panic, never read out of bounds, and never size anything from a
//! length that the bytes left cannot hold.
#![no_main]

use joblog::log::format::{read_frame, scan, FrameRead, SegmentHeader, SeqRule, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let first_seq = SegmentHeader::decode(data).map(|h| h.first_seq).unwrap_or(1);
    for rule in [SeqRule::Contiguous, SeqRule::Increasing] {
        let s = scan(data, data.len(), first_seq, rule);
        assert!(s.committed_end <= data.len().max(HEADER_LEN));
        // Every frame before the committed end reads back as a frame.
        let mut off = HEADER_LEN;
        let mut frames = 0;
        while off < s.committed_end {
            match read_frame(data, off) {
                FrameRead::Frame(f) => {
                    off = f.end();
                    frames += 1;
                }
                other => panic!("committed prefix holds {other:?} at {off}"),
            }
        }
        assert_eq!(frames, s.frames);
    }
});
