//! Arbitrary bytes as a manifest: decoding never panics nor allocates from
//! an unchecked count, and whatever decodes encodes back to the same bytes.
#![no_main]

use joblog::log::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
