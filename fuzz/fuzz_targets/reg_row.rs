//! A `uacreg` row from the database, or the 15 arguments of `uac.reg_add`,
//! and the filter attribute of the reg RPC commands / script functions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uac::uac::reg::record::{FilterAttr, RegRow};

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
    };
    let _ = FilterAttr::parse(&row.l_uuid);
    if let Ok(ok) = row.validate(b"127.0.0.1:5060") {
        // Whatever was accepted must not be able to break a SIP header.
        for s in ok.strings() {
            assert!(!s.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0), "control byte kept");
        }
    }
});
