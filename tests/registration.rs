//! Remote registration (admin guide 3.12-3.18, 4.9-4.11, 7, 9) against a real Kamailio, a
//! real SQLite uacreg table and a registrar peer on UDP.

mod common;
mod reg_support;

use std::time::Duration;

use common::kamailio::{Config, Kamailio};
use common::peer::{RegAction, RegistrarConfig, UdpPeer, WAIT};
use common::sip::Request;
use reg_support::{RegDb, Registrar, counter, field, verify_digest, wait_counter};

const S: Duration = Duration::from_secs(1);

fn cfg(db: &RegDb, extra: &str, routes: &str) -> Config {
    let body = format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
modparam("uac", "auth_username_avp", "$avp(auser)")
modparam("uac", "auth_password_avp", "$avp(apass)")
modparam("uac", "auth_realm_avp", "$avp(arealm)")
{extra}
request_route {{
{routes}
    sl_send_reply("404", "Not here");
}}
"#,
        url = db.url()
    );
    Config::new(&body)
}

/// Runs the request route for `op` (an OPTIONS to `op@kamailio` with `hdrs`,
/// sent from `ua`) and returns the route's result: the reply's X-R header.
fn route_result(k: &Kamailio, ua: &std::net::UdpSocket, op: &str, hdrs: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let me = ua.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{op}@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKs{n}\r\n\
         From: <sip:t@x>;tag=1\r\nTo: <sip:{op}@x>\r\nCall-ID: s{n}@x\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n{hdrs}Content-Length: 0\r\n\r\n",
        p = k.port
    );
    ua.set_read_timeout(Some(3 * S)).unwrap();
    ua.send_to(msg.as_bytes(), k.addr()).unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, _) = ua.recv_from(&mut buf).expect("reply");
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("X-R: "))
        .unwrap_or_else(|| panic!("no X-R in {text}"))
        .trim()
        .to_string()
}

/// Core path: load → REGISTER (every field) → 401 → digest verified → 200 → refresh
/// before expiry with the same Call-ID and CSeq + 1 → counters → reg_dump fields.
#[test]
fn register_auth_refresh_keep_callid() {
    let db = RegDb::new();
    let mut reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(cfg(&db, r#"modparam("uac", "reg_keep_callid", 1)"#, ""));
    let mut seen = Vec::new();

    let r1 = reg.recv_new(5 * S, &mut seen).expect("first REGISTER");
    assert_eq!(r1.method, "REGISTER");
    assert_eq!(r1.ruri, "sip:example.com");
    assert!(
        r1.h("From").unwrap().contains("sip:bob@example.com"),
        "{}",
        r1.text
    );
    assert!(r1.h("From").unwrap().contains("tag="), "{}", r1.text);
    assert!(
        r1.h("To").unwrap().contains("sip:bob@example.com"),
        "{}",
        r1.text
    );
    assert_eq!(
        r1.h("Contact").unwrap(),
        format!("<sip:u1@127.0.0.1:{}>", k.port)
    );
    assert_eq!(r1.h("Expires"), Some("60"));
    assert!(r1.h("Authorization").is_none());
    let nonce = reg.challenge(&r1);

    let r2 = reg
        .recv_new(5 * S, &mut seen)
        .expect("REGISTER with credentials");
    assert_eq!(r2.call_id(), r1.call_id(), "same Call-ID after 401");
    assert_eq!(r2.cseq(), r1.cseq() + 1, "CSeq + 1 after 401");
    let auth = r2.h("Authorization").expect("Authorization");
    assert!(
        verify_digest(auth, "bob", "example.com", "secret", &nonce),
        "bad digest: {auth}"
    );
    assert!(auth.contains("uri=\"sip:example.com\""), "{auth}");
    reg.ok(&r2, 4);

    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(counter(&k, "regtotal"), 1);
    assert_eq!(counter(&k, "regdisabled"), 0);

    // Granted 4 s with a 1 s timer: refresh well before expiry (C would let it lapse).
    let r3 = reg.recv_new(5 * S, &mut seen).expect("refresh");
    let since = r3.at.duration_since(r2.at);
    assert!(
        since < Duration::from_millis(3900),
        "refresh after {since:?}"
    );
    assert!(
        since >= Duration::from_millis(1000),
        "refresh too early {since:?}"
    );
    assert_eq!(r3.call_id(), r1.call_id(), "reg_keep_callid: same Call-ID");
    assert_eq!(r3.cseq(), r2.cseq() + 1, "reg_keep_callid: CSeq + 1");
    assert_eq!(
        counter(&k, "regactive"),
        1,
        "still registered while refreshing"
    );
    reg.ok(&r3, 60);

    std::thread::sleep(Duration::from_millis(300));
    let out = k.kamcmd(&["uac.reg_dump"]);
    assert_eq!(field(&out, "l_uuid"), Some("u1"), "{out}");
    assert_eq!(field(&out, "l_username"), Some("alice"));
    assert_eq!(field(&out, "l_domain"), Some("local.test"));
    assert_eq!(field(&out, "r_username"), Some("bob"));
    assert_eq!(field(&out, "r_domain"), Some("example.com"));
    assert_eq!(field(&out, "realm"), Some("example.com"));
    assert_eq!(field(&out, "auth_username"), Some("bob"));
    assert_eq!(field(&out, "auth_password"), Some("********"), "masked");
    assert_eq!(field(&out, "auth_ha1"), Some("none"));
    assert_eq!(field(&out, "auth_proxy"), Some(reg.proxy().as_str()));
    assert_eq!(field(&out, "expires"), Some("60"));
    assert_eq!(field(&out, "flags"), Some("20"), "INIT|ONLINE");
    let diff: i64 = field(&out, "diff_expires").unwrap().parse().unwrap();
    assert!((55..=60).contains(&diff), "diff_expires {diff}");
    assert!(field(&out, "timer_expires").is_some());
    assert!(field(&out, "reg_init").is_some());
    assert_eq!(field(&out, "reg_delay"), Some("0"));
    assert_eq!(
        field(&out, "contact_addr"),
        Some(format!("127.0.0.1:{}", k.port).as_str())
    );
    // An unset socket prints as a null string, as with the C module.
    assert_eq!(field(&out, "socket"), Some("<null string>"), "{out}");
}

/// Without reg_keep_callid every REGISTER has a new Call-ID.
#[test]
fn refresh_new_callid_without_keep() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let _k = Kamailio::start(cfg(&db, "", ""));
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.ok(&r1, 3);
    let r2 = reg.recv_new(5 * S, &mut seen).expect("refresh");
    assert_ne!(r2.call_id(), r1.call_id());
}

/// 403 then 503 then no answer (tm 408): retried after reg_retry_interval each time.
#[test]
fn retry_after_failures() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(
        cfg(
            &db,
            "modparam(\"uac\", \"reg_retry_interval\", 2)\nmodparam(\"tm\", \"fr_timer\", 1000)",
            "",
        )
        .pre("modparam(\"tm\", \"fr_timer\", 1000)"),
    );
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.reply(&r1, 403, "Forbidden", "");
    let r2 = reg.recv_new(5 * S, &mut seen).expect("retry after 403");
    let d = r2.at.duration_since(r1.at);
    assert!(
        d >= Duration::from_millis(1500) && d < Duration::from_millis(3900),
        "{d:?}"
    );
    assert_eq!(counter(&k, "regactive"), 0);
    assert_eq!(counter(&k, "regdisabled"), 0);
    reg.reply(&r2, 503, "Busy", "");
    let r3 = reg.recv_new(5 * S, &mut seen).expect("retry after 503");
    // no answer: tm times out (fr_timer 1 s) → local 408 → retry
    let r4 = reg.recv_new(8 * S, &mut seen).expect("retry after timeout");
    assert!(r4.at.duration_since(r3.at) >= Duration::from_millis(2500));
    reg.ok(&r4, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
}

/// reg_retry_interval 0: the first failure disables the record (spec 3.14).
#[test]
fn give_up_without_retry_interval() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(cfg(&db, "", ""));
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.reply(&r1, 403, "Forbidden", "");
    wait_counter(&k, "regdisabled", 1, 3 * S);
    assert!(reg.recv_new(3 * S, &mut seen).is_none(), "no retry");
    assert_eq!(counter(&k, "regtotal"), 1);
    assert_eq!(counter(&k, "regactive"), 0);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "flags"), Some("17"), "INIT|DISABLED: {out}");
}

/// 423 Interval Too Brief: the next REGISTER asks for Min-Expires, at once.
#[test]
fn interval_too_brief_uses_min_expires() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 30, &[]);
    let k = Kamailio::start(cfg(&db, "", ""));
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    assert_eq!(r1.h("Expires"), Some("30"));
    reg.reply(&r1, 423, "Interval Too Brief", "Min-Expires: 120\r\n");
    let r2 = reg.recv_new(3 * S, &mut seen).expect("REGISTER after 423");
    assert_eq!(r2.h("Expires"), Some("120"));
    assert!(r2.h("Contact").unwrap().contains("sip:u1@"));
    reg.ok(&r2, 120);
    wait_counter(&k, "regactive", 1, 3 * S);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "expires"), Some("120"));
}

/// reg_active 0: loaded but silent until uac.reg_active 1.
#[test]
fn reg_active_zero_then_rpc_activates() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(cfg(&db, "modparam(\"uac\", \"reg_active\", 0)", ""));
    let mut seen = Vec::new();
    assert!(
        reg.recv_new(2500 * Duration::from_millis(1), &mut seen)
            .is_none()
    );
    assert_eq!(counter(&k, "regtotal"), 1);
    let out = k.kamcmd(&["uac.reg_active", "1"]);
    assert_eq!(field(&out, "omode"), Some("0"), "{out}");
    assert_eq!(field(&out, "nmode"), Some("1"), "{out}");
    let r = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER after activation");
    reg.ok(&r, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
}

/// reg_delay from the row delays the first REGISTER.
#[test]
fn reg_delay_delays_first_register() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add(
        "u1",
        "alice",
        "bob",
        &reg.proxy(),
        60,
        &[("reg_delay", "3")],
    );
    let t0 = std::time::Instant::now();
    let _k = Kamailio::start(cfg(&db, "", ""));
    let mut seen = Vec::new();
    let r = reg.recv_new(8 * S, &mut seen).expect("REGISTER");
    let d = r.at.duration_since(t0);
    assert!(d >= Duration::from_millis(2500), "sent after {d:?}");
}

/// RFC 3261 §10.2.4: a 200 without Contact, or whose only Contact is not ours (rewritten
/// by the registrar), is not a registration: the record stays unregistered (flags, status,
/// counter) and a new REGISTER goes out after reg_retry_interval; a normal 200 registers.
#[test]
fn ok_without_our_contact_is_not_a_registration() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(cfg(
        &db,
        "modparam(\"uac\", \"reg_retry_interval\", 2)",
        r#"
    if ($rU == "status") {
        $var(r) = uac_reg_status("u1");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK");
        exit;
    }"#,
    ));
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let not_registered = |what: &str| {
        std::thread::sleep(Duration::from_millis(300));
        let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
        // INIT only: not ONLINE (4), not ONGOING (2), not DISABLED (1).
        assert_eq!(field(&out, "flags"), Some("16"), "{what}: {out}");
        assert_eq!(counter(&k, "regactive"), 0, "{what}");
        assert_eq!(counter(&k, "regdisabled"), 0, "{what}");
        assert_eq!(route_result(&k, &ua, "status", ""), "-99", "{what}");
    };
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.reply(&r1, 200, "OK", "Expires: 60\r\n");
    not_registered("200 without Contact");
    assert!(
        k.log()
            .contains("2xx without Contact while registering [u1]: not registered"),
        "WARNING naming the record\n{}",
        k.log()
    );
    let r2 = reg
        .recv_new(5 * S, &mut seen)
        .expect("retry after 200 without Contact");
    let d = r2.at.duration_since(r1.at);
    assert!(
        d >= Duration::from_millis(1500) && d < Duration::from_millis(3900),
        "retried after {d:?}"
    );
    reg.reply(
        &r2,
        200,
        "OK",
        "Contact: <sip:rewritten@10.0.0.1>;expires=60\r\n",
    );
    not_registered("200 with a rewritten Contact");
    assert!(k.log().contains("2xx without our Contact"), "{}", k.log());
    let r3 = reg
        .recv_new(5 * S, &mut seen)
        .expect("retry after rewritten Contact");
    let d = r3.at.duration_since(r2.at);
    assert!(
        d >= Duration::from_millis(1500) && d < Duration::from_millis(3900),
        "retried after {d:?}"
    );
    reg.ok(&r3, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "flags"), Some("20"), "INIT|ONLINE: {out}");
    assert_eq!(route_result(&k, &ua, "status", ""), "1");
    assert!(
        reg.recv_new(2 * S, &mut seen).is_none(),
        "registered: no retry"
    );
}

/// Script functions from a config: lookup, lookup_uri, status, request_to, disable,
/// enable, refresh.
#[test]
fn script_functions() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    db.add(
        "u2",
        "carol",
        "dave",
        &reg.proxy(),
        60,
        &[("auth_ha1", "'0123456789abcdef0123456789abcdef'")],
    );
    let routes = r#"
    if ($rU == "lookup") {
        $var(r) = uac_reg_lookup("$hdr(X-A)", "$var(d)");
        append_to_reply("X-R: $var(r) $var(d)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "lookupuri") {
        $var(r) = uac_reg_lookup_uri("$hdr(X-A)", "$var(d)");
        append_to_reply("X-R: $var(r) $var(d)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "status") {
        $var(r) = uac_reg_status("$hdr(X-A)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "reqto") {
        $var(m) = $(hdr(X-M){s.int});
        $var(r) = uac_reg_request_to("$hdr(X-A)", "$var(m)");
        append_to_reply("X-R: $var(r) $ru $du $avp(auser) $avp(apass) $avp(arealm)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "disable") {
        $var(r) = uac_reg_disable("$hdr(X-A)", "$hdr(X-V)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "enable") {
        $var(r) = uac_reg_enable("$hdr(X-A)", "$hdr(X-V)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "refresh") {
        $var(r) = uac_reg_refresh("$hdr(X-A)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
"#;
    let k = Kamailio::start(cfg(&db, "", routes));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
        if r.contact_user() == "u1" {
            reg.ok(&r, 60);
        } else {
            reg.reply(&r, 403, "Forbidden", "");
        }
    }
    wait_counter(&k, "regactive", 1, 3 * S);
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let call = |op: &str, hdrs: &str| route_result(&k, &ua, op, hdrs);
    assert_eq!(call("lookup", "X-A: u1\r\n"), "1 sip:alice@local.test");
    assert!(call("lookup", "X-A: nope\r\n").starts_with("-1"));
    assert_eq!(call("lookupuri", "X-A: sip:alice@local.test\r\n"), "1 u1");
    assert!(call("lookupuri", "X-A: sip:nobody@local.test\r\n").starts_with("-1"));
    assert_eq!(call("status", "X-A: u1\r\n"), "1");
    assert_eq!(
        call("status", "X-A: u2\r\n"),
        "-3",
        "403 with retry 0 → disabled"
    );
    assert_eq!(call("status", "X-A: nope\r\n"), "-1");
    let p = reg.proxy();
    assert_eq!(
        call("reqto", "X-A: u1\r\nX-M: 0\r\n"),
        format!("1 sip:bob@example.com {p} bob secret example.com")
    );
    assert_eq!(
        call("reqto", "X-A: carol\r\nX-M: 3\r\n"),
        format!("1 sip:dave@example.com {p} dave 0123456789abcdef0123456789abcdef example.com")
    );
    assert!(call("reqto", "X-A: nope\r\nX-M: 0\r\n").starts_with("-1"));
    // disable/enable by attribute
    assert_eq!(call("disable", "X-A: l_uuid\r\nX-V: u1\r\n"), "1");
    assert_eq!(counter(&k, "regdisabled"), 2);
    assert_eq!(call("disable", "X-A: l_uuid\r\nX-V: u1\r\n"), "1");
    assert_eq!(
        counter(&k, "regdisabled"),
        2,
        "no drift on repeated disable"
    );
    assert_eq!(call("disable", "X-A: l_uuid\r\nX-V: nope\r\n"), "-2");
    assert_eq!(counter(&k, "regdisabled"), 2, "no drift on unknown record");
    assert_eq!(call("disable", "X-A: bogus\r\nX-V: u1\r\n"), "-3");
    assert_eq!(call("enable", "X-A: r_username\r\nX-V: dave\r\n"), "1");
    assert_eq!(counter(&k, "regdisabled"), 1);
    let r = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER after enable");
    assert_eq!(r.contact_user(), "u2");
    reg.ok(&r, 60);
    wait_counter(&k, "regactive", 2, 3 * S);
    // refresh from the DB: changed row starts over
    db.exec("UPDATE uacreg SET expires=90 WHERE l_uuid='u1';");
    assert_eq!(call("refresh", "X-A: u1\r\n"), "1");
    assert!(call("refresh", "X-A: nope\r\n").starts_with("-1"));
    let r = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER after refresh");
    assert_eq!(r.h("Expires"), Some("90"));
    assert_eq!(counter(&k, "regtotal"), 2);
}

/// `uac_reg_send_register(attr, val)` / `uac_reg_send_unregister(attr, val)` (C module
/// 6.0, offered on every release): a REGISTER goes out at once, long before the refresh
/// is due; the unregister sends Expires: 0 on the binding's Call-ID and disables the
/// record; filters take variables; an unknown record or attribute returns -1 (logged at
/// ERR) and sends nothing.
#[test]
fn send_register_and_unregister_from_the_script() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let routes = r#"
    if ($rU == "sendreg") {
        $var(r) = uac_reg_send_register("$hdr(X-A)", "$hdr(X-V)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "sendunreg") {
        $var(r) = uac_reg_send_unregister("$hdr(X-A)", "$hdr(X-V)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "status") {
        $var(r) = uac_reg_status("$hdr(X-A)");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
"#;
    let k = Kamailio::start(cfg(&db, "", routes));
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let call = |op: &str, hdrs: &str| route_result(&k, &ua, op, hdrs);
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.ok(&r1, 60);
    wait_counter(&k, "regactive", 1, 3 * S);

    // Granted 60 s: the timer's refresh is ~56 s away, so this one is the function's.
    let asked = std::time::Instant::now();
    assert_eq!(call("sendreg", "X-A: l_uuid\r\nX-V: u1\r\n"), "1");
    let r2 = reg
        .recv_new(2 * S, &mut seen)
        .expect("REGISTER from uac_reg_send_register");
    assert!(
        r2.at.duration_since(asked) < S,
        "sent {:?} after the call",
        r2.at.duration_since(asked)
    );
    assert_eq!(r2.contact_user(), "u1");
    assert_eq!(r2.h("Expires"), Some("60"));
    reg.ok(&r2, 60);
    // Another attribute.
    assert_eq!(call("sendreg", "X-A: r_username\r\nX-V: bob\r\n"), "1");
    let r3 = reg
        .recv_new(2 * S, &mut seen)
        .expect("REGISTER by r_username");
    assert_eq!(r3.h("Expires"), Some("60"));
    reg.ok(&r3, 60);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(call("status", "X-A: u1\r\n"), "1");

    // Unregister: Expires 0 on the binding's Call-ID; the record is then disabled.
    assert_eq!(call("sendunreg", "X-A: auth_username\r\nX-V: bob\r\n"), "1");
    let r4 = reg
        .recv_new(2 * S, &mut seen)
        .expect("REGISTER from uac_reg_send_unregister");
    assert_eq!(r4.h("Expires"), Some("0"));
    assert_eq!(r4.call_id(), r3.call_id(), "the binding's Call-ID");
    assert_eq!(r4.cseq(), r3.cseq() + 1);
    reg.ok(&r4, 0);
    wait_counter(&k, "regactive", 0, 3 * S);
    assert_eq!(counter(&k, "regdisabled"), 1);
    assert_eq!(call("status", "X-A: u1\r\n"), "-3");
    assert!(
        reg.recv_new(2 * S, &mut seen).is_none(),
        "stays unregistered"
    );

    // Register again: the record's expiry (C would send Expires: 0 once more); the
    // record stays disabled (registered once, not refreshed).
    assert_eq!(call("sendreg", "X-A: l_username\r\nX-V: alice\r\n"), "1");
    let r5 = reg
        .recv_new(2 * S, &mut seen)
        .expect("REGISTER after unregister");
    assert_eq!(r5.h("Expires"), Some("60"));
    reg.ok(&r5, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(counter(&k, "regdisabled"), 1);

    // Unknown record or attribute: -1, an error in the log, nothing on the wire.
    for (op, hdrs) in [
        ("sendreg", "X-A: l_uuid\r\nX-V: nope\r\n"),
        ("sendunreg", "X-A: r_username\r\nX-V: nope\r\n"),
        ("sendreg", "X-A: bogus\r\nX-V: u1\r\n"),
        ("sendunreg", "X-A: bogus\r\nX-V: u1\r\n"),
    ] {
        assert_eq!(call(op, hdrs), "-1", "{op} {hdrs:?}");
    }
    assert!(
        reg.recv_new(Duration::from_millis(1500), &mut seen)
            .is_none(),
        "nothing sent for a bad filter"
    );
    let log = k.log();
    for needle in [
        "Record not found: l_uuid = nope",
        "Record not found: r_username = nope",
        "Unsupported filter attribute bogus",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"));
        assert!(line.contains("ERROR"), "not at ERR: {line}");
    }
    assert!(k.is_running());
}

/// 1000 accounts, all registered (with a challenge each) and counted.
#[test]
fn thousand_accounts() {
    let db = RegDb::new();
    let mut reg = Registrar::new();
    let mut sql = String::from("BEGIN;");
    for i in 0..1000 {
        sql.push_str(&format!(
            "INSERT INTO uacreg (l_uuid,l_username,l_domain,r_username,r_domain,realm,auth_username,auth_password,auth_proxy,expires) \
             VALUES ('u{i}','l{i}','local','r{i}','example.com','example.com','r{i}','secret','{}',300);",
            reg.proxy()
        ));
    }
    sql.push_str("COMMIT;");
    db.exec(&sql);
    let k = Kamailio::start(cfg(
        &db,
        "modparam(\"uac\", \"reg_hash_size\", 8)\nmodparam(\"uac\", \"reg_retry_interval\", 2)",
        "",
    ));
    let mut registered = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while registered.len() < 1000 && std::time::Instant::now() < deadline {
        // Retransmissions (a reply lost in a burst) are answered again, as a registrar does.
        let Some(r) = reg.recv(5 * S) else { break };
        if r.h("Authorization").is_some() {
            registered.insert(r.contact_user());
            reg.ok(&r, 300);
        } else {
            reg.challenge(&r);
        }
    }
    assert_eq!(registered.len(), 1000);
    // Keep answering: a 200 lost in the burst comes back as a retransmission.
    let deadline = std::time::Instant::now() + 10 * S;
    while counter(&k, "regactive") != 1000 && std::time::Instant::now() < deadline {
        while let Some(r) = reg.recv(Duration::from_millis(50)) {
            if r.h("Authorization").is_some() {
                reg.ok(&r, 300);
            } else {
                reg.challenge(&r);
            }
        }
    }
    wait_counter(&k, "regactive", 1000, S);
    assert_eq!(counter(&k, "regtotal"), 1000);
}

/// reg_random_delay (3.17): the first REGISTERs are spread over the window, none later.
#[test]
fn random_delay_spreads_first_registers() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let db = RegDb::new();
    for i in 0..30 {
        db.add(
            &format!("u{i}"),
            &format!("l{i}"),
            &format!("r{i}"),
            &registrar.uri(),
            300,
            &[],
        );
    }
    let _k = Kamailio::start(cfg(&db, r#"modparam("uac", "reg_random_delay", 4)"#, ""));
    let regs = registrar.wait_registers(30, 10 * S);
    let first = regs.iter().map(|r| r.at).min().unwrap();
    let offsets: Vec<Duration> = regs.iter().map(|r| r.at.duration_since(first)).collect();
    let span = offsets.iter().max().unwrap();
    // Delays are drawn from [0, 4) s and sent on 1 s timer ticks.
    assert!(
        *span <= Duration::from_millis(4500),
        "a first REGISTER came after the window: {offsets:?}"
    );
    let ticks: std::collections::BTreeSet<u64> = offsets
        .iter()
        .map(|d| (d.as_millis() as u64 + 500) / 1000)
        .collect();
    assert!(ticks.len() >= 3, "not spread over the window: {offsets:?}");
    // Every account registered exactly once (no burst of duplicates).
    let mut users: Vec<String> = regs
        .iter()
        .map(|r| r.msg.hdr("Contact").to_string())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 30, "{users:?}");
}

/// An account with auth_ha1 and an empty password answers the challenge with the HA1;
/// the registrar verifies the digest against the plain password.
#[test]
fn ha1_record_answers_challenge() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Auth)
        .start();
    let db = RegDb::new();
    let ha1 = reg_support::ha1("bob", "example.com", "secret");
    db.add(
        "u1",
        "alice",
        "bob",
        &registrar.uri(),
        60,
        &[("auth_password", "''"), ("auth_ha1", &format!("'{ha1}'"))],
    );
    let k = Kamailio::start(cfg(&db, "", ""));
    let regs = registrar.wait_registers(2, 5 * S);
    assert_eq!(regs[0].reply, Some(401));
    assert!(!regs[0].has_credentials());
    assert_eq!(regs[1].auth, Some(Ok(())), "digest from HA1 not accepted");
    assert_eq!(regs[1].reply, Some(200));
    assert_eq!(regs[1].msg.call_id(), regs[0].msg.call_id());
    wait_counter(&k, "regactive", 1, 3 * S);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "auth_ha1"), Some("********"), "masked: {out}");
}

/// Two concurrent `uac.reg_reload` (several rounds) while requests are routed through
/// uac_reg_lookup: every request answered correctly, no crash, registrations kept.
#[test]
fn reload_while_requests_arrive() {
    const N: usize = 200;
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let db = RegDb::new();
    let mut sql = String::from("BEGIN;");
    for i in 0..N {
        sql.push_str(&format!(
            "INSERT INTO uacreg (l_uuid,l_username,l_domain,r_username,r_domain,realm,auth_username,auth_password,auth_proxy,expires) \
             VALUES ('u{i}','l{i}','local','r{i}','example.com','example.com','r{i}','secret','{}',300);",
            registrar.uri()
        ));
    }
    sql.push_str("COMMIT;");
    db.exec(&sql);
    let routes = r#"
    if (uac_reg_lookup("$hdr(X-U)", "$var(d)")) {
        append_to_reply("X-L: $var(d)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
"#;
    let k = Kamailio::start(cfg(&db, "", routes));
    registrar.wait_registers(N, 10 * S);
    wait_counter(&k, "regactive", N as i64, 5 * S);
    let before = registrar.count();

    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|sc| {
        let reloaders: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    for _ in 0..5 {
                        k.kamcmd(&["uac.reg_reload"]);
                    }
                })
            })
            .collect();
        let sender = sc.spawn(|| {
            let caller = UdpPeer::bind().named("caller").with_target(k.addr());
            let mut n = 0;
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || n < 50 {
                let u = format!("u{}", i % N);
                let sent = caller.send(
                    Request::new("OPTIONS", &format!("sip:x@{}", k.addr())).header("X-U", &u),
                );
                let r = caller.expect_response_to(&sent, 200, WAIT);
                assert_eq!(r.hdr("X-L"), format!("sip:l{}@local", i % N));
                n += 1;
                i += 7;
            }
            n
        });
        for r in reloaders {
            r.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        sender.join().unwrap()
    });
    assert!(answered >= 50);
    assert!(k.is_running());
    assert_eq!(counter(&k, "regtotal"), N as i64);
    assert_eq!(
        counter(&k, "regactive"),
        N as i64,
        "registrations dropped by reload"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        registrar.count(),
        before,
        "unchanged records re-registered after reload"
    );
}

/// Malformed replies to REGISTER: the worker survives and the record is handled sensibly.
#[test]
fn malformed_register_replies() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let db = RegDb::new();
    db.add("u1", "alice", "bob", &registrar.uri(), 60, &[]);
    let k = Kamailio::start(cfg(&db, r#"modparam("uac", "reg_retry_interval", 1)"#, ""));
    registrar.wait_registers(1, 5 * S);
    wait_counter(&k, "regactive", 1, 3 * S);
    let contact = format!("<sip:u1@127.0.0.1:{}>", k.port);
    let info = |name: &str| -> i64 {
        let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
        field(&out, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    let reply = |code: u16, reason: &str, hs: &[(&str, &str)]| {
        RegAction::Reply(
            code,
            reason.to_string(),
            hs.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    };
    // Each case: the reply, then a fresh REGISTER (reg_refresh restarts the record).
    let registered_for_at_most_60 = |what: &str| {
        wait_counter(&k, "regactive", 1, 3 * S);
        let d = info("diff_expires");
        assert!((1..=60).contains(&d), "{what}: diff_expires {d}");
        assert!(k.is_running(), "{what}");
    };
    let cases: Vec<(&str, RegAction)> = vec![
        (
            "garbage Contact",
            reply(200, "OK", &[("Contact", "<sip:u1@;;;expires=\"<<>")]),
        ),
        (
            "huge expires",
            reply(
                200,
                "OK",
                &[("Contact", &format!("{contact};expires=99999999999"))],
            ),
        ),
        (
            "huge Expires",
            reply(
                200,
                "OK",
                &[("Contact", &contact), ("Expires", "99999999999999999999")],
            ),
        ),
        (
            "negative Expires",
            reply(200, "OK", &[("Contact", &contact), ("Expires", "-5")]),
        ),
        (
            "non-numeric Expires",
            reply(200, "OK", &[("Contact", &contact), ("Expires", "soon")]),
        ),
    ];
    for (what, action) in cases {
        let n = registrar.count();
        registrar.push(action);
        assert_eq!(k.kamcmd(&["uac.reg_refresh", "u1"]).trim(), "", "{what}");
        registrar.wait_registers(n + 1, 3 * S);
        std::thread::sleep(Duration::from_millis(200));
        registered_for_at_most_60(what);
    }

    // 423 without Min-Expires: the interval is doubled and the REGISTER sent again.
    let n = registrar.count();
    registrar.push(reply(423, "Interval Too Brief", &[]));
    k.kamcmd(&["uac.reg_refresh", "u1"]);
    let regs = registrar.wait_registers(n + 2, 3 * S);
    assert_eq!(regs[n].reply, Some(423));
    assert_eq!(regs[n + 1].msg.hdr("Expires"), "120", "doubled after 423");
    wait_counter(&k, "regactive", 1, 3 * S);

    // 503 with a garbage Retry-After: retried after reg_retry_interval.
    let n = registrar.count();
    registrar.push(reply(503, "Busy", &[("Retry-After", "tomorrow, maybe")]));
    k.kamcmd(&["uac.reg_refresh", "u1"]);
    let regs = registrar.wait_registers(n + 2, 4 * S);
    assert_eq!(regs[n].reply, Some(503));
    let gap = regs[n + 1].at.duration_since(regs[n].at);
    assert!(
        gap >= Duration::from_millis(500) && gap < Duration::from_millis(3500),
        "retry after {gap:?}"
    );
    wait_counter(&k, "regactive", 1, 3 * S);
    assert!(k.is_running());
    assert!(!k.log().contains("panic"), "{}", k.log());
}

/// The `socket` column picks the local socket of the REGISTER, `default_socket` applies to
/// rows without one, and a socket Kamailio does not listen on is ignored (as tm does).
#[test]
fn socket_column_and_default_socket() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let (p2, p3) = (common::kamailio::free_port(), common::kamailio::free_port());
    let db = RegDb::new();
    let proxy = registrar.uri();
    let sock3 = format!("'udp:127.0.0.1:{p3}'");
    db.add("u1", "l1", "r1", &proxy, 300, &[("socket", &sock3)]);
    db.add("u2", "l2", "r2", &proxy, 300, &[]);
    db.add(
        "u3",
        "l3",
        "r3",
        &proxy,
        300,
        &[("socket", "'udp:192.0.2.1:5060'")],
    );
    let k = Kamailio::start(
        cfg(
            &db,
            &format!(r#"modparam("uac", "default_socket", "udp:127.0.0.1:{p2}")"#),
            "",
        )
        .pre(&format!(
            "listen=udp:127.0.0.1:{p2}\nlisten=udp:127.0.0.1:{p3}"
        )),
    );
    let regs = registrar.wait_registers(3, 5 * S);
    let port_of = |uuid: &str| {
        regs.iter()
            .find(|r| r.msg.hdr("Contact").contains(&format!("sip:{uuid}@")))
            .and_then(|r| r.msg.remote)
            .map(|a| a.port())
    };
    assert_eq!(port_of("u1"), Some(p3), "socket column");
    assert_eq!(port_of("u2"), Some(p2), "default_socket");
    assert!(port_of("u3").is_some(), "unknown socket: sent anyway");
    wait_counter(&k, "regactive", 3, 3 * S);
}
