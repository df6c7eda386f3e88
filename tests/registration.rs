//! Remote registration (admin guide 3.12-3.18, 4.9-4.11, 7, 9) against a real Kamailio, a
//! real SQLite uacreg table and a registrar peer on UDP.

mod common;
mod reg_support;

use std::time::Duration;

use common::kamailio::{Config, Kamailio};
use reg_support::{RegDb, Registrar, field, verify_digest};

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

fn counter(k: &Kamailio, name: &str) -> i64 {
    let out = k.kamcmd(&["cnt.get", "uac", name]);
    out.trim().parse().unwrap_or_else(|_| panic!("cnt.get {name}: {out}"))
}

fn wait_counter(k: &Kamailio, name: &str, want: i64, t: Duration) {
    let deadline = std::time::Instant::now() + t;
    loop {
        let v = counter(k, name);
        if v == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("counter {name} = {v}, want {want}\n{}", k.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
    assert!(r1.h("From").unwrap().contains("sip:bob@example.com"), "{}", r1.text);
    assert!(r1.h("From").unwrap().contains("tag="), "{}", r1.text);
    assert!(r1.h("To").unwrap().contains("sip:bob@example.com"), "{}", r1.text);
    assert_eq!(
        r1.h("Contact").unwrap(),
        format!("<sip:u1@127.0.0.1:{}>", k.port)
    );
    assert_eq!(r1.h("Expires"), Some("60"));
    assert!(r1.h("Authorization").is_none());
    let nonce = reg.challenge(&r1);

    let r2 = reg.recv_new(5 * S, &mut seen).expect("REGISTER with credentials");
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
    assert!(since < Duration::from_millis(3900), "refresh after {since:?}");
    assert!(since >= Duration::from_millis(1000), "refresh too early {since:?}");
    assert_eq!(r3.call_id(), r1.call_id(), "reg_keep_callid: same Call-ID");
    assert_eq!(r3.cseq(), r2.cseq() + 1, "reg_keep_callid: CSeq + 1");
    assert_eq!(counter(&k, "regactive"), 1, "still registered while refreshing");
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
    assert!(out.contains("socket"), "{out}");
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
