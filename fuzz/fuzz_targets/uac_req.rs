//! `$uac_req(key)` assignments from the script and the shm callback state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::uac::send::{Input, Key, Sent, Template};

fuzz_target!(|data: &[u8]| {
    // Input: a sequence of "key\0value\0" assignments; "#n" values are ints.
    let mut t = Template::default();
    let mut parts = data.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let Some(key) = Key::parse(name) else { continue };
        let input = match value.strip_prefix(b"#") {
            Some(n) => Input::Int(std::str::from_utf8(n).ok().and_then(|s| s.parse().ok()).unwrap_or(0)),
            None if value.is_empty() => Input::Null,
            None => Input::Str(value),
        };
        let _ = t.set(key, input);
        let _ = t.get(key);
    }
    let sent = Sent { req: t.as_ref(), call_id: b"c", from_tag: b"f", cseq: 1, auth_done: false };
    assert_eq!(Sent::decode(&sent.encode()).as_ref(), Some(&sent), "shm state round trip");
    // Arbitrary bytes as shm state must decode or be refused, never panic.
    let _ = Sent::decode(data);
});
