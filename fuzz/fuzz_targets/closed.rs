//! Arbitrary bytes as the mark of a clean close: decoding never panics,
//! and whatever decodes encodes back to the same bytes.
#![no_main]

use joblog::log::closed::Closed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(m) = Closed::decode(data) {
        assert_eq!(&m.encode()[..], data);
    }
});
