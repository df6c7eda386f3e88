//! Registrars that offer SHA-256 and MD5 challenges together (RFC 8760 §2.4; kam#4698),
//! in either order: the REGISTER answers the strongest algorithm the record can compute.
//! A password record answers SHA-256; an MD5 HA1 record (`auth_ha1`, 32 hex digits)
//! answers MD5 instead of failing; a SHA-256 HA1 (64 digits) answers SHA-256. Every
//! answer is checked by the independent verifier (tests/common/digest.rs), nonce included,
//! so the challenge answered is the one expected.

mod common;
mod reg_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::digest;
use common::kamailio::{Config, Kamailio};
use reg_support::{RegDb, Registrar, counter, ha1, to_user, verify_digest};

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

/// `WWW-Authenticate` lines offering SHA-256 (nonce `s-<tag>`) and MD5 (nonce `m-<tag>`).
fn both(tag: &str, sha_first: bool) -> String {
    let sha = format!(
        "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"s-{tag}\", algorithm=SHA-256, qop=\"auth\"\r\n"
    );
    let md5 = format!(
        "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"m-{tag}\", algorithm=MD5, qop=\"auth\"\r\n"
    );
    if sha_first { sha + &md5 } else { md5 + &sha }
}

/// Four records: password and MD5 HA1, each challenged SHA-256-first and MD5-first; and a
/// SHA-256 HA1 challenged MD5-first.
#[test]
fn strongest_challenge_the_record_can_answer() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let p = reg.proxy();
    // r_username = auth_username = the record's name; password "secret"
    let md5_ha1 = |user: &str| format!("'{}'", ha1(user, "example.com", "secret"));
    let sha_ha1 = |user: &str| {
        format!(
            "'{}'",
            digest::h("SHA-256", format!("{user}:example.com:secret").as_bytes()).unwrap()
        )
    };
    db.add("p1", "a", "pwsha", &p, 60, &[]);
    db.add("p2", "a", "pwmd5", &p, 60, &[]);
    db.add(
        "h1",
        "a",
        "hasha",
        &p,
        60,
        &[("auth_password", "''"), ("auth_ha1", &md5_ha1("hasha"))],
    );
    db.add(
        "h2",
        "a",
        "hamd5",
        &p,
        60,
        &[("auth_password", "''"), ("auth_ha1", &md5_ha1("hamd5"))],
    );
    db.add(
        "s1",
        "a",
        "shaha1",
        &p,
        60,
        &[("auth_password", "''"), ("auth_ha1", &sha_ha1("shaha1"))],
    );
    // (SHA-256 listed first, nonce expected to be answered)
    let plan: BTreeMap<&str, (bool, &str)> = [
        ("pwsha", (true, "s")),
        ("pwmd5", (false, "s")),
        ("hasha", (true, "m")),
        ("hamd5", (false, "m")),
        ("shaha1", (false, "s")),
    ]
    .into_iter()
    .collect();
    let k = start(&db, "");
    let mut seen = Vec::new();
    let mut done = BTreeMap::new();
    while done.len() < plan.len() {
        let r = reg
            .recv_new(5 * S, &mut seen)
            .unwrap_or_else(|| panic!("REGISTERs, done {:?}\n{}", done.keys(), k.log()));
        let who = to_user(&r);
        let (sha_first, want) = plan[who.as_str()];
        match r.h("Authorization") {
            None => reg.reply(&r, 401, "Unauthorized", &both(&who, sha_first)),
            Some(auth) => {
                let nonce = format!("{want}-{who}");
                assert!(
                    verify_digest(auth, &who, "example.com", "secret", &nonce),
                    "{who}: expected the answer to nonce {nonce}: {auth}"
                );
                let algo = if want == "s" { "SHA-256" } else { "MD5" };
                assert!(
                    auth.ends_with(&format!("algorithm={algo}")),
                    "{who}: {auth}"
                );
                reg.ok(&r, 60);
                done.insert(who, ());
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&k, "regactive"), 5, "{}", k.log());
    assert!(!k.log().contains("authentication failed"), "{}", k.log());
}

/// An MD5 HA1 against a registrar offering SHA-256 only cannot answer: the failure says
/// why and no REGISTER with wrong credentials is sent.
#[test]
fn md5_ha1_against_sha256_only_fails_cleanly() {
    let db = RegDb::new();
    let reg = Registrar::new();
    let h = format!("'{}'", ha1("bob", "example.com", "secret"));
    db.add(
        "u1",
        "alice",
        "bob",
        &reg.proxy(),
        60,
        &[("auth_password", "''"), ("auth_ha1", &h)],
    );
    let k = start(&db, "");
    let mut seen = Vec::new();
    let r = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.reply(
        &r,
        401,
        "Unauthorized",
        "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"s1\", algorithm=SHA-256, qop=\"auth\"\r\n",
    );
    k.wait_log("SHA-256 needs 64 hex digits", 3 * S);
    // reg_retry_interval 0: disabled after the failure, nothing else sent
    assert!(reg.recv_new(2 * S, &mut seen).is_none());
    assert_eq!(counter(&k, "regdisabled"), 1);
}
