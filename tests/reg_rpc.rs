//! The uac.reg_* RPC commands (admin guide 8) through kamcmd: output fields, state seen on
//! the wire, and faults for bad arguments.

mod common;
mod reg_support;

use std::time::Duration;

use common::kamailio::{Config, Kamailio};
use reg_support::{RegDb, Registrar, counter, field};

const S: Duration = Duration::from_secs(1);

fn start(db: &RegDb, extra: &str) -> Kamailio {
    Kamailio::start(Config::new(&format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
{extra}
request_route {{ sl_send_reply("404", "Not here"); }}
"#,
        url = db.url()
    )))
}

fn fault(k: &Kamailio, args: &[&str]) -> String {
    match k.try_kamcmd(args) {
        Ok(out) => panic!("{args:?} should fail, got {out}"),
        Err(e) => e,
    }
}

#[test]
fn add_remove_info_dump_and_faults() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let k = start(&db, "modparam(\"uac\", \"reg_active\", 0)");
    let p = reg.proxy();
    // too few parameters: a fault, no half-built record (C reads garbage here)
    let e = fault(&k, &["uac.reg_add", "u9", "alice"]);
    assert!(e.contains("400") && e.contains("Invalid Parameters"), "{e}");
    assert_eq!(k.kamcmd(&["uac.reg_dump"]).trim(), "");
    assert_eq!(counter(&k, "regtotal"), 0);
    // bad password/ha1
    let e = fault(
        &k,
        &[
            "uac.reg_add",
            "u9",
            "alice",
            "local",
            "bob",
            "example.com",
            ".",
            "bob",
            ".",
            ".",
            &p,
            "60",
            "0",
            "0",
            ".",
            ".",
        ],
    );
    assert!(
        e.contains("500") && e.contains("invalid password or ha1"),
        "{e}"
    );
    // good
    k.kamcmd(&[
        "uac.reg_add",
        "u9",
        "alice",
        "local",
        "bob",
        "example.com",
        "example.com",
        "bob",
        "pw",
        ".",
        &p,
        "60",
        "0",
        "0",
        ".",
        ".",
    ]);
    // the same l_uuid again replaces the record (guide 8.9; C: 409, see
    // reg_add_existing_uuid_refused_by_the_c_module)
    k.kamcmd(&[
        "uac.reg_add",
        "u9",
        "alice",
        "local",
        "bob",
        "example.com",
        "example.com",
        "bob",
        "pw",
        ".",
        &p,
        "60",
        "0",
        "0",
        ".",
        ".",
    ]);
    assert_eq!(counter(&k, "regtotal"), 1);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u9"]);
    assert_eq!(field(&out, "l_uuid"), Some("u9"));
    assert_eq!(field(&out, "auth_password"), Some("********"));
    assert_eq!(
        field(&out, "contact_addr"),
        Some(format!("127.0.0.1:{}", k.port).as_str())
    );
    let out = k.kamcmd(&["uac.reg_info", "auth_username", "bob"]);
    assert_eq!(field(&out, "l_uuid"), Some("u9"));
    // faults of reg_info / enable / disable / register / unregister
    for cmd in [
        "uac.reg_info",
        "uac.reg_enable",
        "uac.reg_disable",
        "uac.reg_register",
        "uac.reg_unregister",
    ] {
        let e = fault(&k, &[cmd, "l_uuid"]);
        assert!(
            e.contains("400") && e.contains("Invalid Parameters"),
            "{cmd}: {e}"
        );
        let e = fault(&k, &[cmd, "bogus", "u9"]);
        assert!(e.contains("Unsupported filter attribute"), "{cmd}: {e}");
        let e = fault(&k, &[cmd, "l_uuid", "nope"]);
        assert!(
            e.contains("404") && e.contains("Record not found"),
            "{cmd}: {e}"
        );
    }
    let e = fault(&k, &["uac.reg_refresh"]);
    assert!(e.contains("Invalid Parameters"), "{e}");
    let e = fault(&k, &["uac.reg_refresh", "nope"]);
    assert!(e.contains("Record not found"), "{e}");
    let e = fault(&k, &["uac.reg_remove"]);
    assert!(e.contains("Invalid Parameters"), "{e}");
    let e = fault(&k, &["uac.reg_active"]);
    assert!(e.contains("Missing parameter"), "{e}");
    // disable/enable change flags and counters exactly
    k.kamcmd(&["uac.reg_disable", "l_uuid", "u9"]);
    k.kamcmd(&["uac.reg_disable", "l_uuid", "u9"]);
    assert_eq!(counter(&k, "regdisabled"), 1);
    k.kamcmd(&["uac.reg_enable", "l_uuid", "u9"]);
    k.kamcmd(&["uac.reg_enable", "l_uuid", "u9"]);
    assert_eq!(counter(&k, "regdisabled"), 0);
    // remove then dump (C: use-after-free)
    k.kamcmd(&["uac.reg_remove", "u9"]);
    let e = fault(&k, &["uac.reg_remove", "u9"]);
    assert!(e.contains("404"), "{e}");
    assert_eq!(k.kamcmd(&["uac.reg_dump"]).trim(), "");
    assert_eq!(counter(&k, "regtotal"), 0);
    assert!(k.is_running());
}

/// `uac.reg_add` with 15 parameters: `l_uuid r_username expires`, the rest fixed.
fn reg_add_args<'a>(uuid: &'a str, r_user: &'a str, proxy: &'a str, exp: &'a str) -> [&'a str; 16] {
    [
        "uac.reg_add",
        uuid,
        "alice",
        "local",
        r_user,
        "example.com",
        "example.com",
        r_user,
        "pw",
        ".",
        proxy,
        exp,
        "0",
        "0",
        ".",
        ".",
    ]
}

/// Admin guide 8.9 (5.6.3): `uac.reg_add` with an l_uuid already loaded deletes the old
/// record; the new one's values are used and registered, counters stay exact, and no
/// un-REGISTER is sent for the old one.
#[test]
fn reg_add_existing_uuid_replaces_the_record() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let k = start(&db, "");
    let p = reg.proxy();
    k.kamcmd(&reg_add_args("u7", "bob", &p, "60"));
    let mut seen = Vec::new();
    let r1 = reg
        .recv_new(5 * S, &mut seen)
        .expect("REGISTER of the first record");
    assert!(r1.h("To").unwrap().contains("sip:bob@"), "{}", r1.text);
    reg.ok(&r1, 60);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 1);

    k.kamcmd(&reg_add_args("u7", "carol", &p, "120"));
    let dump = k.kamcmd(&["uac.reg_dump"]);
    assert_eq!(dump.matches("l_uuid").count(), 1, "one record: {dump}");
    assert_eq!(field(&dump, "r_username"), Some("carol"), "{dump}");
    assert_eq!(field(&dump, "expires"), Some("120"), "{dump}");
    assert_eq!(counter(&k, "regtotal"), 1);
    assert_eq!(
        counter(&k, "regactive"),
        0,
        "the new record is not registered yet"
    );
    let r2 = reg
        .recv_new(5 * S, &mut seen)
        .expect("REGISTER of the new record");
    assert_ne!(
        r2.h("Expires"),
        Some("0"),
        "no un-REGISTER for the old record"
    );
    assert!(r2.h("To").unwrap().contains("sip:carol@"), "{}", r2.text);
    assert_eq!(r2.h("Expires"), Some("120"));
    assert_eq!(r2.contact_user(), "u7");
    reg.ok(&r2, 120);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 1);
    assert_eq!(counter(&k, "regtotal"), 1);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u7"]);
    assert_eq!(field(&out, "flags"), Some("20"), "INIT|ONLINE: {out}");
    // only the new record's REGISTER went out
    while let Some(r) = reg.recv_new(S, &mut seen) {
        assert!(r.h("To").unwrap().contains("sip:carol@"), "{}", r.text);
    }
}

/// What the C module does with an l_uuid already loaded: 409, record unchanged.
#[test]
fn reg_add_existing_uuid_refused_by_the_c_module() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let k = Kamailio::start(
        Config::new(&format!(
            r#"
loadmodule "{{MODULES}}/db_sqlite.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_active", 0)
request_route {{ sl_send_reply("404", "Not here"); }}
"#,
            url = db.url()
        ))
        .with_c_module(),
    );
    let p = reg.proxy();
    k.kamcmd(&reg_add_args("u7", "bob", &p, "60"));
    let e = fault(&k, &reg_add_args("u7", "carol", &p, "120"));
    assert!(
        e.contains("409") && e.contains("uuid already exists"),
        "{e}"
    );
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u7"]);
    assert_eq!(field(&out, "r_username"), Some("bob"), "{out}");
}

#[test]
fn unregister_reload_refresh_on_the_wire() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = start(&db, "modparam(\"uac\", \"reg_rpc_show_secrets\", 1)");
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.ok(&r1, 60);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 1);
    let out = k.kamcmd(&["uac.reg_dump"]);
    assert_eq!(
        field(&out, "auth_password"),
        Some("secret"),
        "reg_rpc_show_secrets"
    );

    // unregister: Expires 0 on the binding's Call-ID, then stays unregistered
    k.kamcmd(&["uac.reg_unregister", "l_uuid", "u1"]);
    let r2 = reg.recv_new(3 * S, &mut seen).expect("unREGISTER");
    assert_eq!(r2.h("Expires"), Some("0"));
    assert_eq!(r2.call_id(), r1.call_id());
    reg.ok(&r2, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 0);
    assert_eq!(counter(&k, "regdisabled"), 1);
    assert!(
        reg.recv_new(2 * S, &mut seen).is_none(),
        "stays unregistered"
    );
    // enable registers again with the configured expiry (C left expires=0 forever)
    k.kamcmd(&["uac.reg_enable", "l_uuid", "u1"]);
    let r3 = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER after enable");
    assert_eq!(r3.h("Expires"), Some("60"));
    reg.ok(&r3, 60);

    // reload twice at once: serialised, unchanged record keeps its registration
    db.add("u2", "carol", "dave", &reg.proxy(), 60, &[]);
    let k1 = &k;
    std::thread::scope(|s| {
        let a = s.spawn(|| k1.try_kamcmd(&["uac.reg_reload"]));
        let b = s.spawn(|| k1.try_kamcmd(&["uac.reg_reload"]));
        a.join().unwrap().expect("reload a");
        b.join().unwrap().expect("reload b");
    });
    assert_eq!(counter(&k, "regtotal"), 2);
    let r4 = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER of the new row");
    assert_eq!(r4.contact_user(), "u2");
    reg.ok(&r4, 60);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 2);
    // refresh one row from the DB
    db.exec("UPDATE uacreg SET expires=120 WHERE l_uuid='u2';");
    k.kamcmd(&["uac.reg_refresh", "u2"]);
    let r5 = reg
        .recv_new(3 * S, &mut seen)
        .expect("REGISTER after refresh");
    assert_eq!(r5.h("Expires"), Some("120"));
    // a row deleted from the DB disappears on reload
    db.exec("DELETE FROM uacreg WHERE l_uuid='u1';");
    k.kamcmd(&["uac.reg_reload"]);
    assert_eq!(counter(&k, "regtotal"), 1);
    let e = fault(&k, &["uac.reg_info", "l_uuid", "u1"]);
    assert!(e.contains("404"), "{e}");
}

/// `uac.reg_register attr val` (C module 6.0, offered on every release): a REGISTER at
/// once, long before the refresh is due, by any filter attribute; C's faults.
#[test]
fn register_rpc_on_the_wire_and_faults() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = start(&db, "");
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.ok(&r1, 60);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 1);

    // Granted 60 s: the timer's refresh is ~56 s away, so this one is the command's.
    for (attr, val) in [
        ("l_uuid", "u1"),
        ("l_username", "alice"),
        ("r_username", "bob"),
        ("auth_username", "bob"),
    ] {
        let asked = std::time::Instant::now();
        assert_eq!(k.kamcmd(&["uac.reg_register", attr, val]).trim(), "");
        let r = reg
            .recv_new(2 * S, &mut seen)
            .unwrap_or_else(|| panic!("no REGISTER after uac.reg_register {attr} {val}"));
        assert!(r.at.duration_since(asked) < S, "{attr}: late");
        assert_eq!(r.contact_user(), "u1");
        assert_eq!(r.h("Expires"), Some("60"));
        reg.ok(&r, 60);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 1);
    assert_eq!(counter(&k, "regdisabled"), 0, "the record stays enabled");

    let e = fault(&k, &["uac.reg_register"]);
    assert!(e.contains("400") && e.contains("Invalid Parameters"), "{e}");
    let e = fault(&k, &["uac.reg_register", "l_uuid"]);
    assert!(e.contains("400") && e.contains("Invalid Parameters"), "{e}");
    // "s:" is how kamcmd sends an empty string
    let e = fault(&k, &["uac.reg_register", "l_uuid", "s:"]);
    assert!(
        e.contains("400") && e.contains("Invalid Parameter Values"),
        "{e}"
    );
    let e = fault(&k, &["uac.reg_register", "l_uuid", "nope"]);
    assert!(e.contains("404") && e.contains("Record not found"), "{e}");
    let e = fault(&k, &["uac.reg_register", "r_domain", "example.com"]);
    assert!(
        e.contains("400") && e.contains("Unsupported filter attribute"),
        "{e}"
    );
    assert!(
        reg.recv_new(Duration::from_millis(1500), &mut seen)
            .is_none(),
        "nothing sent after a fault"
    );
    assert!(k.is_running());
}

/// Without `reg_db_url` the registration commands answer 500 "Not enabled".
#[test]
fn register_rpc_without_reg_db_url_is_not_enabled() {
    let k = Kamailio::start(Config::new(
        r#"request_route { sl_send_reply("404", "Not here"); }"#,
    ));
    for args in [
        &["uac.reg_register", "l_uuid", "u1"][..],
        &["uac.reg_unregister", "l_uuid", "u1"],
        &["uac.reg_reload"],
    ] {
        let e = fault(&k, args);
        assert!(
            e.contains("500") && e.contains("Not enabled"),
            "{args:?}: {e}"
        );
    }
}

/// `reload_delta` 2: a reload less than 2 s after the last successful one is refused
/// with C's log line and the reload fault; after 2 s it runs again.
#[test]
fn reload_delta_limits_reloads() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = start(&db, "modparam(\"uac\", \"reload_delta\", 2)");
    // The load at start-up is no reload: the first one runs at once.
    k.kamcmd(&["uac.reg_reload"]);
    let done = std::time::Instant::now();
    let e = fault(&k, &["uac.reg_reload"]);
    assert!(
        e.contains("500") && e.contains("Failed to reload records"),
        "{e}"
    );
    let log = k.wait_log("not possible in less than 2 secs", 2 * S);
    let line = log
        .lines()
        .find(|l| l.contains("not possible in less than 2 secs"))
        .unwrap();
    assert!(line.contains("ERROR"), "{line}");
    // A refused reload changes nothing: the row added meanwhile is not loaded.
    db.add("u2", "carol", "dave", &reg.proxy(), 60, &[]);
    let e = fault(&k, &["uac.reg_reload"]);
    assert!(e.contains("500"), "{e}");
    assert_eq!(counter(&k, "regtotal"), 1);
    std::thread::sleep((2 * S + Duration::from_millis(100)).saturating_sub(done.elapsed()));
    k.kamcmd(&["uac.reg_reload"]);
    assert_eq!(counter(&k, "regtotal"), 2);
    // The limit counts from this reload now.
    let e = fault(&k, &["uac.reg_reload"]);
    assert!(e.contains("500"), "{e}");
    assert!(k.is_running());
}

/// Without `reload_delta` reloads are not limited (C's default 30 s guards against
/// its crash on concurrent reloads; ours are serialised). A negative value refuses
/// to start: `module_load::negative_intervals_are_refused`.
#[test]
fn reloads_back_to_back_without_reload_delta() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = start(&db, "");
    for n in 2..=4 {
        db.add(
            &format!("u{n}"),
            &format!("user{n}"),
            "bob",
            &reg.proxy(),
            60,
            &[],
        );
        k.kamcmd(&["uac.reg_reload"]);
        assert_eq!(counter(&k, "regtotal"), n);
    }
    assert!(!k.log().contains("not possible in less than"));
}
