//! Frames: any payload encodes to a frame that reads back whole, and
//! reading a frame at any offset of arbitrary bytes never panics and never
//! returns a frame that runs past the end.
#![no_main]

use joblog::log::format::{encode_frame_header, frame_len, read_frame, FrameRead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for offset in (0..data.len()).step_by(7) {
        if let FrameRead::Frame(f) = read_frame(data, offset) {
            assert!(f.end() <= data.len());
            assert_eq!(f.payload_offset, offset + joblog::log::FRAME_HEADER_LEN);
        }
    }
    if data.len() > 12 && data.len() - 12 <= 1 << 16 {
        let (head, payload) = data.split_at(12);
        let seq = u64::from_le_bytes(head[..8].try_into().unwrap());
        let left = u32::from_le_bytes(head[8..12].try_into().unwrap());
        let mut bytes = encode_frame_header(seq, left, payload).to_vec();
        bytes.extend_from_slice(payload);
        match read_frame(&bytes, 0) {
            FrameRead::Frame(f) => {
                assert_eq!((f.seq, f.batch_left, f.payload_len), (seq, left, payload.len()));
                assert_eq!(f.end(), frame_len(payload.len()));
            }
            other => panic!("a frame just encoded reads as {other:?}"),
        }
    }
});
