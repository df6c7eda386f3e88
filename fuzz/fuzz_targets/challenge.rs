//! WWW-/Proxy-Authenticate values from a peer: parse, select, answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::auth_header::{parse_challenge, select_challenges};
use uac::sip::digest::{Credentials, Nc, Secret, authorize};

fuzz_target!(|data: &[u8]| {
    let _ = parse_challenge(data);
    // Several header values: split the input on NUL.
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    for ch in select_challenges(&values) {
        let creds = Credentials {
            username: b"alice".as_slice().into(),
            realm: b"".as_slice().into(),
            secret: Secret::Password(b"secret".as_slice().into()),
        };
        if let Ok(a) = authorize(&ch, &creds, b"INVITE", b"sip:bob@example.com", b"v=0", b"0a4f113b", Nc::FIRST) {
            let line = a.to_header_value();
            assert!(!line.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0), "header injection");
        }
    }
});
