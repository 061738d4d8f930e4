//! Arbitrary bytes as a request to the service (`joblog run`'s socket):
//! decoding never panics and refuses anything over its limits; whatever
//! decodes encodes back to a line that decodes to the same request; the
//! line-length check of a streamed import never panics, whatever the
//! chunking, and agrees with a check of the whole.
#![no_main]

use joblog_cli::protocol::{decode_request, encode_request, LineLimit, MAX_ARGS, MAX_REQUEST_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(req) => {
            assert!(data.len() <= MAX_REQUEST_BYTES);
            assert!(req.argv.len() <= MAX_ARGS);
            let line = encode_request(&req);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(decode_request(&line).ok(), Some(req));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // The same bytes as a streamed file, in chunks and with a maximum line
    // length the first two bytes choose, against the longest line measured
    // at once; a refusal names the first line over the limit.
    let cut = 1 + data.first().copied().unwrap_or(0) as usize;
    let max = data.get(1).copied().unwrap_or(0) as usize;
    let mut limit = LineLimit::new(max);
    let streamed = data.chunks(cut).try_for_each(|c| limit.feed(c));
    let first_long = data.split(|&b| b == b'\n').position(|l| l.len() > max);
    assert_eq!(streamed.err(), first_long.map(|i| i + 1));
});
