//! `uacreg` table version 6 and its `contact_user` column (Kamailio master, kam
//! 13423d1536, issue kam#4653): the REGISTER's Contact is
//! `<sip:contact_user@contact_addr;line=l_uuid>` and our binding in the 200 is the Contact
//! whose `line` parameter is the l_uuid. Version 5 tables keep working unchanged, other
//! versions are refused. Real Kamailio, Debian's SQLite schema (version 5) upgraded with
//! the SQL the README gives.

mod common;
mod reg_support;

use std::time::Duration;

use common::kamailio::{Config, Kamailio};
use reg_support::{RegDb, Registrar, Req, counter, field, to_user, wait_counter};

const S: Duration = Duration::from_secs(1);

/// The upgrade from version 5 to 6, as in the README.
const UPGRADE_V6: &str =
    "ALTER TABLE uacreg ADD COLUMN contact_user VARCHAR(255) DEFAULT '' NOT NULL;
UPDATE version SET table_version=6 WHERE table_name='uacreg';";

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

/// A 200 listing `contacts` (full contact-param values).
fn ok_with(reg: &Registrar, req: &Req, contacts: &str) {
    reg.reply(req, 200, "OK", &format!("Contact: {contacts}\r\n"));
}

/// Version 6: the Contact carries the contact_user and `;line=<l_uuid>`; the 200 is matched
/// on `line` even when the registrar rewrote the user (kam#4653) and lists another
/// binding first; an empty contact_user is today's Contact. Bad rows are refused with a
/// reason, the others load.
#[test]
fn v6_contact_user_and_line_matching() {
    let db = RegDb::new();
    db.exec(UPGRADE_V6);
    let reg = Registrar::new();
    let p = reg.proxy();
    db.add("u1", "alice", "bob", &p, 60, &[("contact_user", "'1000'")]);
    db.add("u2", "alice2", "carol", &p, 60, &[]);
    // contact_addr may carry parameters: line goes after them
    db.add(
        "u5",
        "alice5",
        "erin",
        &p,
        60,
        &[
            ("contact_user", "'+4930123'"),
            ("contact_addr", "'127.0.0.1:5999;transport=udp'"),
        ],
    );
    // refused: line is ours to set; a contact_user that cannot be a URI user
    db.add(
        "u3",
        "alice3",
        "dave",
        &p,
        60,
        &[
            ("contact_user", "'1000'"),
            ("contact_addr", "'127.0.0.1:5999;line=x'"),
        ],
    );
    db.add(
        "u4",
        "alice4",
        "frank",
        &p,
        60,
        &[("contact_user", "'a@b'")],
    );
    let k = start(&db, "");
    let port = k.port;
    let mut seen = Vec::new();
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 3 {
        let r = reg
            .recv_new(5 * S, &mut seen)
            .unwrap_or_else(|| panic!("REGISTERs: got {:?}\n{}", got.keys(), k.log()));
        let who = to_user(&r);
        let contact = r.h("Contact").unwrap().to_string();
        match who.as_str() {
            "bob" => {
                assert_eq!(contact, format!("<sip:1000@127.0.0.1:{port};line=u1>"));
                // another binding of the AOR first, ours with a rewritten user and host
                ok_with(
                    &reg,
                    &r,
                    "<sip:1000@10.0.0.1;line=u9>;expires=30, \
                     <sip:rewritten@203.0.113.7:5099;transport=udp;line=u1>;expires=50",
                );
            }
            "carol" => {
                assert_eq!(contact, format!("<sip:u2@127.0.0.1:{port}>"));
                ok_with(&reg, &r, &format!("{contact};expires=40"));
            }
            "erin" => {
                assert_eq!(
                    contact,
                    "<sip:+4930123@127.0.0.1:5999;transport=udp;line=u5>"
                );
                // LINE in capitals and escaped: the same parameter (RFC 3261 §19.1.4)
                ok_with(
                    &reg,
                    &r,
                    "<sip:x@127.0.0.1:5999;transport=udp;LINE=%75%35>;expires=45",
                );
            }
            other => panic!("unexpected REGISTER for {other}: {}", r.text),
        }
        got.insert(who, r);
    }
    wait_counter(&k, "regactive", 3, 3 * S);
    assert_eq!(counter(&k, "regtotal"), 3, "u3 and u4 refused");
    let log = k.log();
    assert!(
        log.contains("uacreg record [u3]: contact_addr already contains a line parameter"),
        "{log}"
    );
    assert!(
        log.contains("uacreg record [u4]: invalid character in column 'contact_user'"),
        "{log}"
    );

    let u1 = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&u1, "contact_user"), Some("1000"), "{u1}");
    assert_eq!(field(&u1, "flags"), Some("20"), "INIT|ONLINE: {u1}");
    // the granted expiry is that of the line=u1 binding (50), not the other one's (30)
    let diff: i64 = field(&u1, "diff_expires").unwrap().parse().unwrap();
    assert!((44..=50).contains(&diff), "diff_expires {diff}: {u1}");
    let u2 = k.kamcmd(&["uac.reg_info", "l_uuid", "u2"]);
    assert_eq!(field(&u2, "contact_user"), Some("none"), "{u2}");
    assert_eq!(field(&u2, "flags"), Some("20"), "{u2}");
    let u5 = k.kamcmd(&["uac.reg_info", "l_uuid", "u5"]);
    assert_eq!(field(&u5, "flags"), Some("20"), "{u5}");
    assert!(k.try_kamcmd(&["uac.reg_info", "l_uuid", "u3"]).is_err());
}

/// With a contact_user, a 200 whose Contacts have our user but no (or another) `line` is not
/// our binding: not registered, retried after reg_retry_interval; a 200 with our line then
/// registers.
#[test]
fn v6_without_our_line_is_not_a_registration() {
    let db = RegDb::new();
    db.exec(UPGRADE_V6);
    let reg = Registrar::new();
    db.add(
        "u1",
        "alice",
        "bob",
        &reg.proxy(),
        60,
        &[("contact_user", "'1000'")],
    );
    let k = start(&db, "modparam(\"uac\", \"reg_retry_interval\", 2)");
    let port = k.port;
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    ok_with(
        &reg,
        &r1,
        &format!(
            "<sip:1000@127.0.0.1:{port}>;expires=60, <sip:1000@127.0.0.1:{port};line=u1x>;expires=60, \
             <sip:1000@127.0.0.1:{port}>;line=u1;expires=60"
        ),
    );
    k.wait_log("without our Contact", S);
    assert_eq!(counter(&k, "regactive"), 0);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "flags"), Some("16"), "INIT only: {out}");
    let r2 = reg
        .recv_new(5 * S, &mut seen)
        .expect("retry: the 200 did not list our binding");
    let d = r2.at.duration_since(r1.at);
    assert!(d >= Duration::from_millis(1500), "retried after {d:?}");
    ok_with(
        &reg,
        &r2,
        &format!("<sip:1000@127.0.0.1:{port};line=u1>;expires=60"),
    );
    wait_counter(&k, "regactive", 1, 3 * S);
}

/// A version 5 table is read exactly as before: the contact_user column is not selected
/// even when the table has one. Once the version says 6, a reload picks it up (NULL
/// meaning no contact_user).
#[test]
fn v5_ignores_the_column_until_the_table_says_6() {
    let db = RegDb::new();
    // the column exists, NULL allowed, but the version row still says 5
    db.exec("ALTER TABLE uacreg ADD COLUMN contact_user VARCHAR(255) DEFAULT NULL;");
    let reg = Registrar::new();
    let p = reg.proxy();
    db.add("u1", "alice", "bob", &p, 60, &[("contact_user", "'1000'")]);
    let k = start(&db, "");
    let port = k.port;
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    assert_eq!(
        r1.h("Contact").unwrap(),
        format!("<sip:u1@127.0.0.1:{port}>")
    );
    reg.ok(&r1, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "contact_user"), Some("none"), "{out}");

    db.exec("UPDATE version SET table_version=6 WHERE table_name='uacreg';");
    db.add("u3", "alice3", "carol", &p, 60, &[("contact_user", "NULL")]);
    k.kamcmd(&["uac.reg_reload"]);
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        let r = reg
            .recv_new(5 * S, &mut seen)
            .unwrap_or_else(|| panic!("REGISTERs after reload: {:?}\n{}", got.keys(), k.log()));
        got.insert(to_user(&r), r.h("Contact").unwrap().to_string());
    }
    assert_eq!(got["bob"], format!("<sip:1000@127.0.0.1:{port};line=u1>"));
    assert_eq!(got["carol"], format!("<sip:u3@127.0.0.1:{port}>"));
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u3"]);
    assert_eq!(field(&out, "contact_user"), Some("none"), "{out}");
}

/// Versions other than 5 and 6 are refused with the table's version in the message, at
/// start and on reload; fixing the version and reloading loads the table.
#[test]
fn other_table_versions_are_refused() {
    let db = RegDb::new();
    db.exec("UPDATE version SET table_version=4 WHERE table_name='uacreg';");
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = start(&db, "");
    k.wait_log(
        "invalid table version for table 'uacreg' (found 4, expected 5 or 6)",
        5 * S,
    );
    let mut seen = Vec::new();
    assert!(reg.recv_new(2 * S, &mut seen).is_none(), "nothing loaded");
    assert_eq!(counter(&k, "regtotal"), 0);

    db.exec("UPDATE version SET table_version=7 WHERE table_name='uacreg';");
    let e = k
        .try_kamcmd(&["uac.reg_reload"])
        .expect_err("reload of a version 7 table");
    assert!(e.contains("500"), "{e}");
    k.wait_log("(found 7, expected 5 or 6)", 3 * S);
    assert_eq!(counter(&k, "regtotal"), 0);

    db.exec("DELETE FROM version WHERE table_name='uacreg';");
    assert!(k.try_kamcmd(&["uac.reg_reload"]).is_err());
    k.wait_log("(found 0, expected 5 or 6)", 3 * S);

    db.exec("INSERT INTO version (table_name, table_version) VALUES ('uacreg', 5);");
    k.kamcmd(&["uac.reg_reload"]);
    let r = reg
        .recv_new(5 * S, &mut seen)
        .expect("REGISTER once version 5");
    assert_eq!(r.contact_user(), "u1");
    assert_eq!(counter(&k, "regtotal"), 1);
}

/// `uac.reg_add` takes an optional 16th parameter, contact_user (C master); with 15 it
/// works as before. "." means none. reg_info shows it.
#[test]
fn reg_add_with_and_without_contact_user() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let k = start(&db, "");
    let p = reg.proxy();
    let port = k.port;
    let args = |uuid: &'static str, r_user: &'static str| -> Vec<String> {
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
            &p,
            "60",
            "0",
            "0",
            ".",
            ".",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |v: &[String]| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        k.try_kamcmd(&refs)
    };
    let mut a = args("r1", "bob");
    a.push("2000".into());
    run(&a).unwrap();
    run(&args("r2", "carol")).unwrap();
    let mut a = args("r3", "dave");
    a.push(".".into());
    run(&a).unwrap();
    let mut a = args("r4", "erin");
    a.push("a b".into());
    let e = run(&a).expect_err("invalid contact_user");
    assert!(e.contains("500"), "{e}");

    let mut seen = Vec::new();
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 3 {
        let r = reg
            .recv_new(5 * S, &mut seen)
            .unwrap_or_else(|| panic!("REGISTERs: {:?}\n{}", got.keys(), k.log()));
        got.insert(to_user(&r), r.h("Contact").unwrap().to_string());
    }
    assert_eq!(got["bob"], format!("<sip:2000@127.0.0.1:{port};line=r1>"));
    assert_eq!(got["carol"], format!("<sip:r2@127.0.0.1:{port}>"));
    assert_eq!(got["dave"], format!("<sip:r3@127.0.0.1:{port}>"));
    for (uuid, cu) in [("r1", "2000"), ("r2", "none"), ("r3", "none")] {
        let out = k.kamcmd(&["uac.reg_info", "l_uuid", uuid]);
        assert_eq!(field(&out, "contact_user"), Some(cu), "{out}");
    }
    assert_eq!(counter(&k, "regtotal"), 3);
}
