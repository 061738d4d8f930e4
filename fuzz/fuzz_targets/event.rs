//! Arbitrary bytes as an event payload: decoding never panics nor allocates
//! without bound, and whatever decodes encodes back to the same value.
#![no_main]

use joblog::domain::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = joblog::codec::decode::<Envelope>(data) {
        let again = joblog::codec::encode(&env).unwrap();
        assert_eq!(joblog::codec::decode::<Envelope>(&again).unwrap(), env);
    }
});
