//! A `uacreg` row from the database, or the 15 (16) arguments of `uac.reg_add`,
//! and the filter attribute of the reg RPC commands / script functions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::uac::reg::record::{self, FilterAttr, RegRow};

fuzz_target!(|data: &[u8]| {
    let mut f = data.split(|&b| b == 0).map(<[u8]>::to_vec);
    let mut next = || f.next().unwrap_or_default();
    let num = |v: Vec<u8>| std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let row = RegRow {
        l_uuid: next(),
        l_username: next(),
        l_domain: next(),
        r_username: next(),
        r_domain: next(),
        realm: next(),
        auth_username: next(),
        auth_password: next(),
        auth_ha1: next(),
        auth_proxy: next(),
        expires: num(next()),
        flags: num(next()),
        reg_delay: num(next()),
        contact_addr: next(),
        socket: next(),
        contact_user: next(),
    };
    let _ = FilterAttr::parse(&row.l_uuid);
    if let Ok(ok) = row.validate(b"127.0.0.1:5060") {
        // The Contact built from an accepted row is a URI whose line parameter, when
        // contact_user is set, gives back the l_uuid.
        let c = record::contact_uri(&ok.l_uuid, &ok.contact_user, &ok.contact_addr);
        if !ok.contact_user.is_empty() {
            let u = uac::sip::uri::parse(&c).expect("Contact of an accepted row parses");
            let line = u.param(b"line").and_then(|p| p.value).expect("line parameter");
            assert_eq!(uac::sip::uri::unescape(line), &ok.l_uuid[..], "line is the l_uuid");
        }
        // Whatever was accepted must not be able to break a SIP header.
        for s in ok.strings() {
            assert!(!s.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0), "control byte kept");
        }
    }
});
