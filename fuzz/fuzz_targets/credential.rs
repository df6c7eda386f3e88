//! The `credential` modparam.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::digest::parse_credential;

fuzz_target!(|data: &[u8]| {
    let _ = parse_credential(data);
});
