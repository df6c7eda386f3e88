//! A registrar's reply to our REGISTER (Contact, Expires, Min-Expires,
//! Retry-After, challenges): parse and interpret, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::sip::register::{RegisterReply, parse_delta_seconds};
use uac::sip::{lex, name_addr, uri};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = RegisterReply::parse(data) {
        let _ = reply.binding(b"acc1", false);
        let _ = reply.binding(b"acc1", true);
        let _ = reply.binding(b"", true);
    }
    let _ = parse_delta_seconds(data);
    let _ = uri::user_part(data);
    let _ = uri::host_part(data);
    for part in lex::split_top_commas(data) {
        if let Some(na) = name_addr::parse_loose(part) {
            assert!(na.params().count() > 0, "params always yields a piece");
        }
    }
    if let Ok(u) = uri::parse(data) {
        for p in u.params() {
            let _ = uri::unescape(p.value.unwrap_or_default());
        }
    }
});
