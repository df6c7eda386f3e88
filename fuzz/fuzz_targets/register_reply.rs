//! A registrar's reply to our REGISTER (Contact, Expires, Min-Expires,
//! Retry-After, challenges): parse and interpret, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::register::{RegisterReply, parse_delta_seconds, uri_host, uri_user};
use uac::sip::uri;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = RegisterReply::parse(data) {
        let _ = reply.binding(b"acc1", false);
        let _ = reply.binding(b"acc1", true);
        let _ = reply.binding(b"", true);
    }
    let _ = parse_delta_seconds(data);
    let _ = uri_user(data);
    let _ = uri_host(data);
    if let Ok(u) = uri::parse(data) {
        for p in u.params() {
            let _ = uri::unescape(p.value.unwrap_or_default());
        }
    }
});
