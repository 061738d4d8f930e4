//! Arbitrary bytes as an event payload: decoding (by version, as replay
//! does) never panics nor allocates without bound, and whatever decodes
//! encodes back to the same value.
#![no_main]

use joblog::domain::{Envelope, EVENT_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        let today = Envelope { version: EVENT_VERSION, ..env.clone() };
        let again = today.encode().unwrap();
        assert_eq!(Envelope::decode(&again).unwrap(), today);
    }
});
