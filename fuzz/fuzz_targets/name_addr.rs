//! From/To header values: parse, replace, restore; results must re-parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::name_addr::{parse, replace_value, restore_uri};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data);
    for (dsp, uri) in [
        (None, Some(&b"sip:anon@anonymous.invalid"[..])),
        (Some(&b""[..]), None),
        (Some(&b"\"Batman\""[..]), Some(&b"sip:robin@gotham.org;transport=udp"[..])),
    ] {
        if let Ok(v) = replace_value(data, dsp, uri) {
            assert!(parse(&v).is_ok(), "replacement does not parse");
        }
    }
    let _ = restore_uri(data, b"sip:anon@anonymous.invalid", b"sip:alice@example.com");
});
