//! Record-Route restore parameters (legacy and secure) from the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::rr_param::{SecureKey, decode_any};
use uac::sip::uri;

fuzz_target!(|data: &[u8]| {
    // First line: the header URI; rest: the parameter value.
    let (uri, value) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"sip:anonymous@anonymous.invalid"[..], data),
    };
    let key = SecureKey::derive(b"secret");
    for passwd in [&b""[..], b"secret"] {
        if let Ok(swap) = decode_any(value, uri, passwd, key.as_ref()) {
            assert!(uri::valid_restored(&swap.put_back), "restored an invalid URI");
        }
    }
});
