//! Admin guide 4.7 `uac_auth()` / `uac_auth(mode)` / `uac_auth_mode(mode)` and
//! 3.8-3.11 (`credential`, `auth_*_avp`), against a real Kamailio:
//!
//! caller (UdpPeer) → Kamailio (`failure_route { uac_auth(); t_relay(); }`)
//! → a scripted UAS that challenges and checks the answer with the independent
//! verifier of tests/common/digest.rs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::digest::{self, Challenge};
use common::kamailio::{Config, Kamailio};
use common::peer::{QUIET, Server, UdpPeer, WAIT};
use common::sip::{Request, Response, SipMsg};

// ---------------------------------------------------------------------------
// The scripted challenging UAS.

/// What the UAS does with the n-th request it receives (ACKs not counted).
#[derive(Clone, Debug)]
struct Step {
    /// The credentials the request must carry, one header per entry:
    /// (challenge answered, user, password). Empty: no credentials expected.
    expect: Vec<(Challenge, String, String)>,
    /// Reply sent when the check passes (403 otherwise).
    code: u16,
    headers: Vec<(String, String)>,
}

impl Step {
    /// Challenge with `code` (401/407) and the given raw header values.
    fn challenge(code: u16, values: &[&str]) -> Step {
        let name = if code == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        Step {
            expect: Vec::new(),
            code,
            headers: values
                .iter()
                .map(|v| (name.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn with(mut self, name: &str, value: &str) -> Step {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Expect credentials for `ch`, then answer `code` (200, or a new challenge
    /// via `.then_challenge`).
    fn verify(ch: &Challenge, user: &str, pw: &str) -> Step {
        Step {
            expect: vec![(ch.clone(), user.into(), pw.into())],
            code: 200,
            headers: Vec::new(),
        }
    }

    fn and_verify(mut self, ch: &Challenge, user: &str, pw: &str) -> Step {
        self.expect.push((ch.clone(), user.into(), pw.into()));
        self
    }
}

/// One received request and the verdict on its credentials.
#[derive(Clone, Debug)]
struct Seen {
    msg: SipMsg,
    verdict: Result<(), String>,
}

struct AuthUas {
    server: Server,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn auth_headers(m: &SipMsg) -> Vec<String> {
    m.headers("Authorization")
        .into_iter()
        .chain(m.headers("Proxy-Authorization"))
        .map(str::to_string)
        .collect()
}

/// Checks a request against a step: exactly the expected credential headers,
/// each verified by the independent implementation.
fn check(step: &Step, m: &SipMsg) -> Result<(), String> {
    let got = auth_headers(m);
    if got.len() != step.expect.len() {
        return Err(format!(
            "{} credential headers, expected {}: {got:?}",
            got.len(),
            step.expect.len()
        ));
    }
    for (ch, user, pw) in &step.expect {
        ch.verify_request(m, user, pw)?;
    }
    Ok(())
}

impl AuthUas {
    fn start(steps: Vec<Step>) -> AuthUas {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        let peer = UdpPeer::bind().named("auth-uas");
        let server = Server::spawn(peer, move |peer, m| {
            if !m.is_request() || m.method() == "ACK" {
                return;
            }
            let mut seen = seen2.lock().unwrap();
            let i = seen.len();
            let (verdict, reply) = match steps.get(i) {
                None => (
                    Err(format!("unexpected request #{i}")),
                    Response::to(m, 500, "Unexpected"),
                ),
                Some(step) => match check(step, m) {
                    Ok(()) => {
                        let reason = match step.code {
                            401 => "Unauthorized",
                            407 => "Proxy Authentication Required",
                            _ => "OK",
                        };
                        let mut r = Response::to(m, step.code, reason);
                        for (n, v) in &step.headers {
                            r = r.header(n, v);
                        }
                        (Ok(()), r)
                    }
                    Err(e) => (Err(e), Response::to(m, 403, "Forbidden")),
                },
            };
            seen.push(Seen {
                msg: m.clone(),
                verdict,
            });
            drop(seen);
            peer.send(reply);
        });
        AuthUas { server, seen }
    }

    fn uri(&self, user: &str) -> String {
        self.server.uri(user)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every request so far passed its check.
    fn assert_all_ok(&self, n: usize) {
        let seen = self.seen();
        assert_eq!(
            seen.len(),
            n,
            "UAS got {} requests, expected {n}:\n{}",
            seen.len(),
            self.server.log_text()
        );
        for (i, s) in seen.iter().enumerate() {
            if let Err(e) = &s.verdict {
                panic!("request #{i} failed verification: {e}\n{}", s.msg.text());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Kamailio side.

const ROUTES: &str = r#"
request_route {
    if (is_method("ACK")) {
        if (t_check_trans()) { t_relay(); }
        exit;
    }
    #DLG#
    t_on_failure("AUTH");
    if (!t_relay()) { sl_reply_error(); }
    exit;
}

failure_route[AUTH] {
    if (t_is_canceled()) { exit; }
    if (t_check_status("401|407")) {
        if ($hdr(X-Mode) == "ha1") {
            if (uac_auth("1")) { xlog("L_NOTICE", "AUTH-OK\n"); t_on_failure("AUTH"); t_relay(); exit; }
        } else if ($hdr(X-Mode) == "ha1-alias") {
            if (uac_auth_mode("1")) { xlog("L_NOTICE", "AUTH-OK\n"); t_on_failure("AUTH"); t_relay(); exit; }
        } else {
            if (uac_auth()) { xlog("L_NOTICE", "AUTH-OK\n"); t_on_failure("AUTH"); t_relay(); exit; }
        }
        xlog("L_NOTICE", "AUTH-FAILED rc=$rc ci=$ci\n");
    }
}
"#;

const CREDS: &str = r#"
modparam("uac", "credential", "alice:a.example:secret")
modparam("uac", "credential", "bob:b.example:wrong-and-overridden")
modparam("uac", "credential", "bob:b.example:bobpw")
modparam("uac", "credential", "carol:c.example:carolpw")
"#;

/// The routes, with `dlg_manage()` for INVITEs when `dlg`.
fn routes(dlg: bool) -> String {
    ROUTES.replace(
        "#DLG#",
        if dlg {
            "if (is_method(\"INVITE\")) { dlg_manage(); }"
        } else {
            ""
        },
    )
}

fn start(modparams: &str) -> Kamailio {
    Kamailio::start(Config::new(&format!("{modparams}\n{}", routes(false))))
}

/// Waits until `needle` appears at least `n` times in Kamailio's log.
fn wait_count(k: &Kamailio, needle: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = k.log().matches(needle).count();
        if got >= n {
            return;
        }
        if Instant::now() > deadline {
            panic!("{needle:?} logged {got} times, expected {n}\n{}", k.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `method` from a fresh caller through Kamailio to `uas`; returns the
/// final response the caller got.
fn call(k: &Kamailio, uas: &AuthUas, method: &str, extra: &[(&str, &str)], body: &str) -> SipMsg {
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let mut req = Request::new(method, &uas.uri("bob")).headers(extra);
    if !body.is_empty() {
        req = req
            .content_type("text/plain")
            .body(body.as_bytes().to_vec());
    }
    let sent = caller.send(req);
    let fin = caller.expect_final(WAIT);
    if method == "INVITE" && fin.code() >= 300 {
        // ACK the negative final answer (hop by hop to Kamailio).
        let ack = Request::new("ACK", sent.ruri())
            .header("Via", &sent.top_via().unwrap_or_default())
            .from_raw(sent.from())
            .to_raw(fin.to())
            .call_id(sent.call_id())
            .cseq(sent.cseq().0)
            .without("Contact");
        caller.send(ack);
    }
    fin
}

fn md5_hex(s: &str) -> String {
    digest::h("MD5", s.as_bytes()).unwrap()
}

fn auth_value<'a>(m: &'a SipMsg, name: &str) -> &'a str {
    m.header(name)
        .unwrap_or_else(|| panic!("no {name} in\n{}", m.text()))
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn answers_401_with_authorization_and_407_with_proxy_authorization() {
    let k = start(CREDS);
    for code in [401, 407] {
        let ch = Challenge::new("a.example").qop("auth").opaque("op-aque");
        let uas = AuthUas::start(vec![
            Step::challenge(code, &[&ch.to_header_value()]),
            Step::verify(&ch, "alice", "secret"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[], "");
        assert_eq!(fin.code(), 200, "{code}: caller got\n{}", fin.text());
        uas.assert_all_ok(2);
        let retry = &uas.seen()[1].msg;
        let (want, other) = if code == 401 {
            ("Authorization", "Proxy-Authorization")
        } else {
            ("Proxy-Authorization", "Authorization")
        };
        assert!(!retry.has(other));
        let v = auth_value(retry, want);
        // The C module's field order, opaque echoed, algorithm stated.
        assert!(
            v.starts_with("Digest username=\"alice\", realm=\"a.example\", nonce="),
            "{v}"
        );
        assert!(v.contains("opaque=\"op-aque\""), "{v}");
        assert!(v.contains("qop=auth, nc=00000001, cnonce=\""), "{v}");
        assert!(v.ends_with("algorithm=MD5"), "{v}");
        // R-URI and digest-uri are the branch URI.
        assert_eq!(retry.ruri(), uas.uri("bob"));
        assert_eq!(retry.cseq().0, 1);
    }
    let log = k.log();
    assert!(log.contains("AUTH-OK"));
    // No error from the module on the happy path.
    assert!(
        !log.contains("ERROR: uac") && !log.contains("CRITICAL: uac"),
        "{log}"
    );
    assert!(k.is_running());
}

#[test]
fn invite_407_then_200_with_ack_to_challenge() {
    let k = start(CREDS);
    let ch = Challenge::new("b.example").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(407, &[&ch.to_header_value()]),
        Step::verify(&ch, "bob", "bobpw"),
    ]);
    let fin = call(&k, &uas, "INVITE", &[], "");
    assert_eq!(fin.code(), 200, "caller got\n{}", fin.text());
    uas.assert_all_ok(2);
    let seen = uas.seen();
    assert_eq!(seen[1].msg.method(), "INVITE");
    // The retry is a new branch of the same transaction.
    assert_ne!(seen[0].msg.branch(), seen[1].msg.branch());
}

#[test]
fn every_algorithm_with_and_without_qop() {
    let k = start(CREDS);
    let algos = [
        "MD5",
        "MD5-sess",
        "SHA-256",
        "SHA-256-sess",
        "SHA-512-256",
        "SHA-512-256-sess",
    ];
    for (i, algo) in algos.iter().enumerate() {
        for qop in [Some("auth"), None] {
            let mut ch = Challenge::new("c.example").algorithm(algo);
            if let Some(q) = qop {
                ch = ch.qop(q);
            }
            let code = if i % 2 == 0 { 401 } else { 407 };
            let uas = AuthUas::start(vec![
                Step::challenge(code, &[&ch.to_header_value()]),
                Step::verify(&ch, "carol", "carolpw"),
            ]);
            let fin = call(&k, &uas, "MESSAGE", &[], "");
            assert_eq!(
                fin.code(),
                200,
                "{algo} qop {qop:?}: caller got {}",
                fin.code()
            );
            uas.assert_all_ok(2);
            let name = if code == 401 {
                "Authorization"
            } else {
                "Proxy-Authorization"
            };
            let v = auth_value(&uas.seen()[1].msg, name).to_string();
            assert!(v.ends_with(&format!("algorithm={algo}")), "{v}");
            assert_eq!(v.contains("qop="), qop.is_some(), "{v}");
            assert_eq!(v.contains("nc="), qop.is_some(), "{v}");
            // -sess without qop still needs the cnonce (C master dereferenced
            // NULL here); plain algorithms without qop send none.
            let sess = algo.ends_with("-sess");
            assert_eq!(v.contains("cnonce="), qop.is_some() || sess, "{v}");
        }
    }
    assert!(k.is_running());
}

#[test]
fn qop_auth_int_hashes_the_body_and_auth_is_preferred() {
    let k = start(CREDS);
    // auth-int only: the body is hashed into HA2.
    for algo in ["MD5", "SHA-256"] {
        let ch = Challenge::new("a.example").algorithm(algo).qop("auth-int");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&ch.to_header_value()]),
            Step::verify(&ch, "alice", "secret"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[], "hello auth-int body\r\n");
        assert_eq!(fin.code(), 200);
        uas.assert_all_ok(2);
        let v = auth_value(&uas.seen()[1].msg, "Authorization").to_string();
        assert!(v.contains("qop=auth-int"), "{v}");
    }
    // Both offered: auth is chosen.
    let ch = Challenge::new("a.example").qop("auth-int,auth");
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch.to_header_value()]),
        Step::verify(&ch, "alice", "secret"),
    ]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "body").code(), 200);
    uas.assert_all_ok(2);
    let v = auth_value(&uas.seen()[1].msg, "Authorization").to_string();
    assert!(v.contains("qop=auth,"), "{v}");
}

#[test]
fn modparam_credentials_pick_the_realm_last_entry_wins() {
    let k = start(CREDS);
    for (realm, user, pw) in [
        ("a.example", "alice", "secret"),
        ("b.example", "bob", "bobpw"),
        ("c.example", "carol", "carolpw"),
    ] {
        let ch = Challenge::new(realm).qop("auth");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&ch.to_header_value()]),
            Step::verify(&ch, user, pw),
        ]);
        assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200, "{realm}");
        uas.assert_all_ok(2);
    }
    // Realms are compared exactly (case-sensitive, as C and RFC 7235).
    let ch = Challenge::new("A.EXAMPLE").qop("auth");
    let uas = AuthUas::start(vec![Step::challenge(401, &[&ch.to_header_value()])]);
    let fin = call(&k, &uas, "MESSAGE", &[], "");
    assert_eq!(
        fin.code(),
        401,
        "the challenge is relayed when uac_auth fails"
    );
    k.wait_log("no credential for realm \"A.EXAMPLE\"", WAIT);
    k.wait_log("AUTH-FAILED rc=-1", WAIT);
    uas.assert_all_ok(1);
}

const AVPS: &str = r#"
modparam("uac", "auth_username_avp", "$avp(auser)")
modparam("uac", "auth_realm_avp", "$avp(arealm)")
modparam("uac", "auth_password_avp", "$avp(apass)")
modparam("uac", "credential", "alice:a.example:secret")
"#;

const AVP_ROUTES: &str = r#"
request_route {
    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    if ($hdr(X-User) != $null) {
        $avp(auser) = $hdr(X-User);
        $avp(arealm) = $hdr(X-Realm);
        $avp(apass) = $hdr(X-Pass);
    }
    t_on_failure("AUTH");
    t_relay();
    exit;
}
failure_route[AUTH] {
    if (t_check_status("401|407")) {
        if ($hdr(X-Mode) == "ha1") {
            if (uac_auth(1)) { xlog("L_NOTICE", "AUTH-OK\n"); t_relay(); exit; }
        } else if (uac_auth()) { xlog("L_NOTICE", "AUTH-OK\n"); t_relay(); exit; }
        xlog("L_NOTICE", "AUTH-FAILED rc=$rc\n");
    }
}
"#;

#[test]
fn credentials_from_avps_empty_realm_matches_any() {
    let k = Kamailio::start(Config::new(&format!("{AVPS}\n{AVP_ROUTES}")));
    // Empty realm AVP: any challenge realm, answered with that realm.
    let ch = Challenge::new("z.example").algorithm("SHA-256").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(407, &[&ch.to_header_value()]),
        Step::verify(&ch, "zed", "zedpw"),
    ]);
    let h = [("X-User", "zed"), ("X-Realm", ""), ("X-Pass", "zedpw")];
    assert_eq!(call(&k, &uas, "MESSAGE", &h, "").code(), 200);
    uas.assert_all_ok(2);

    // A set realm must match; otherwise the modparam list is used.
    let ch = Challenge::new("a.example").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch.to_header_value()]),
        Step::verify(&ch, "alice", "secret"),
    ]);
    let h = [
        ("X-User", "zed"),
        ("X-Realm", "other.example"),
        ("X-Pass", "zedpw"),
    ];
    assert_eq!(call(&k, &uas, "MESSAGE", &h, "").code(), 200);
    uas.assert_all_ok(2);

    // A matching realm AVP wins over the modparam entry.
    let ch = Challenge::new("a.example").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch.to_header_value()]),
        Step::verify(&ch, "avpuser", "avppw"),
    ]);
    let h = [
        ("X-User", "avpuser"),
        ("X-Realm", "a.example"),
        ("X-Pass", "avppw"),
    ];
    assert_eq!(call(&k, &uas, "MESSAGE", &h, "").code(), 200);
    uas.assert_all_ok(2);

    // HA1 from the AVP with uac_auth(1).
    let ch = Challenge::new("h.example").qop("auth");
    let ha1 = md5_hex("hal:h.example:halpw");
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch.to_header_value()]),
        Step::verify(&ch, "hal", "halpw"),
    ]);
    let h = [
        ("X-User", "hal"),
        ("X-Realm", ""),
        ("X-Pass", ha1.as_str()),
        ("X-Mode", "ha1"),
    ];
    assert_eq!(call(&k, &uas, "MESSAGE", &h, "").code(), 200);
    uas.assert_all_ok(2);
}

#[test]
fn ha1_mode_applies_to_one_call_only() {
    // One worker, so both calls run in the same process (the C module sets
    // the HA1 flag on the shared credential and never clears it).
    let ha1 = md5_hex("hal:h.example:halpw");
    let cfg = format!(
        "modparam(\"uac\", \"credential\", \"hal:h.example:{ha1}\")\n{}",
        routes(false)
    );
    let k = Kamailio::start(Config::new(&cfg).children(1));
    for mode in ["ha1", "ha1-alias"] {
        let ch1 = Challenge::new("h.example").qop("auth");
        let ch2 = Challenge::new("h.example").qop("auth");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&ch1.to_header_value()]),
            // uac_auth(1): the entry's password is HA1 = MD5(hal:h.example:halpw).
            Step::verify(&ch1, "hal", "halpw"),
            Step::challenge(401, &[&ch2.to_header_value()]),
            // uac_auth() afterwards: the same entry is a plain password again.
            Step::verify(&ch2, "hal", &ha1),
        ]);
        assert_eq!(
            call(&k, &uas, "MESSAGE", &[("X-Mode", mode)], "").code(),
            200,
            "{mode}"
        );
        assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200);
        uas.assert_all_ok(4);
    }
    // An MD5 HA1 cannot answer a SHA-256 challenge: clear failure.
    let ch = Challenge::new("h.example").algorithm("SHA-256").qop("auth");
    let uas = AuthUas::start(vec![Step::challenge(401, &[&ch.to_header_value()])]);
    let fin = call(&k, &uas, "MESSAGE", &[("X-Mode", "ha1")], "");
    assert_eq!(fin.code(), 401);
    k.wait_log("SHA-256 needs 64 hex digits", WAIT);
    uas.assert_all_ok(1);
}

#[test]
fn several_challenges_one_answer_per_realm() {
    let k = start(CREDS);
    let a_unknown = "Digest realm=\"a.example\", nonce=\"n0\", algorithm=SHA-1024, qop=\"auth\"";
    let a_sha = Challenge::new("a.example").algorithm("SHA-256").qop("auth");
    let a_md5 = Challenge::new("a.example").qop("auth");
    let b_md5 = Challenge::new("b.example").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(
            401,
            &[
                a_unknown,
                &a_sha.to_header_value(),
                &format!("{}, {}", a_md5, b_md5),
            ],
        ),
        Step::verify(&a_sha, "alice", "secret").and_verify(&b_md5, "bob", "bobpw"),
    ]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200);
    uas.assert_all_ok(2);
    let retry = &uas.seen()[1].msg;
    let hs = retry.headers("Authorization");
    assert_eq!(hs.len(), 2, "{hs:?}");
    assert!(hs[0].contains("realm=\"a.example\"") && hs[0].ends_with("algorithm=SHA-256"));
    assert!(hs[1].contains("realm=\"b.example\"") && hs[1].ends_with("algorithm=MD5"));
}

/// A server offering SHA-256 and MD5 for one realm, in either order (RFC 8760 §2.4; the
/// WhatsApp case of kam#4698): a password answers SHA-256, the strongest it can compute;
/// an MD5 HA1 (`uac_auth(1)`) answers the MD5 challenge instead of failing on SHA-256.
/// The verifier checks the nonce, so the challenge answered is the one named.
#[test]
fn sha256_preferred_and_md5_for_an_md5_ha1() {
    let ha1 = md5_hex("hal:h.example:halpw");
    let k = start(&format!(
        "{CREDS}\nmodparam(\"uac\", \"credential\", \"hal:h.example:{ha1}\")"
    ));
    for sha_first in [true, false] {
        let order = |sha: &Challenge, md5: &Challenge| -> Vec<String> {
            let (a, b) = (sha.to_header_value(), md5.to_header_value());
            if sha_first { vec![a, b] } else { vec![b, a] }
        };
        // password
        let sha = Challenge::new("a.example").algorithm("SHA-256").qop("auth");
        let md5 = Challenge::new("a.example").algorithm("MD5").qop("auth");
        let values = order(&sha, &md5);
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let uas = AuthUas::start(vec![
            Step::challenge(401, &refs),
            Step::verify(&sha, "alice", "secret"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[], "");
        assert_eq!(fin.code(), 200, "sha first: {sha_first}\n{}", fin.text());
        uas.assert_all_ok(2);
        let v = auth_value(&uas.seen()[1].msg, "Authorization").to_string();
        assert!(v.ends_with("algorithm=SHA-256"), "{v}");

        // MD5 HA1
        let sha = Challenge::new("h.example").algorithm("SHA-256").qop("auth");
        let md5 = Challenge::new("h.example").qop("auth");
        let values = order(&sha, &md5);
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let uas = AuthUas::start(vec![
            Step::challenge(407, &refs),
            Step::verify(&md5, "hal", "halpw"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[("X-Mode", "ha1")], "");
        assert_eq!(fin.code(), 200, "sha first: {sha_first}\n{}", fin.text());
        uas.assert_all_ok(2);
        let v = auth_value(&uas.seen()[1].msg, "Proxy-Authorization").to_string();
        assert!(v.ends_with("algorithm=MD5"), "{v}");
    }
    assert!(!k.log().contains("ERROR: uac"), "{}", k.log());
}

#[test]
fn proxy_and_uas_challenges_in_the_same_retry() {
    let k = start(CREDS);
    let p = Challenge::new("a.example").qop("auth");
    let w = Challenge::new("b.example")
        .algorithm("SHA-512-256")
        .qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(407, &[&p.to_header_value()])
            .with("WWW-Authenticate", &w.to_header_value()),
        Step::verify(&p, "alice", "secret").and_verify(&w, "bob", "bobpw"),
    ]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200);
    uas.assert_all_ok(2);
    let retry = &uas.seen()[1].msg;
    assert!(auth_value(retry, "Proxy-Authorization").contains("realm=\"a.example\""));
    assert!(auth_value(retry, "Authorization").contains("realm=\"b.example\""));
}

#[test]
fn stale_nonce_is_answered_again() {
    let k = start(CREDS);
    let ch1 = Challenge::new("a.example").qop("auth");
    let ch2 = ch1.renew().stale(true);
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch1.to_header_value()]),
        Step {
            code: 401,
            headers: vec![("WWW-Authenticate".into(), ch2.to_header_value())],
            ..Step::verify(&ch1, "alice", "secret")
        },
        Step::verify(&ch2, "alice", "secret"),
    ]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200);
    // The last retry carries exactly one Authorization, for the new nonce.
    uas.assert_all_ok(3);
}

#[test]
fn malformed_challenges_fail_cleanly_and_the_worker_survives() {
    let k = start(CREDS);
    let huge = format!(
        "Digest realm=\"a.example\", nonce=\"{}\", qop=\"auth\"",
        "x".repeat(12_000)
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing nonce",
            "Digest realm=\"a.example\", qop=\"auth\"".into(),
            "missing nonce",
        ),
        (
            "unterminated quote",
            "Digest realm=\"a.example\", nonce=\"abc, qop=\"auth".into(),
            "failed to parse auth hdr body",
        ),
        ("huge header", huge, "failed to parse auth hdr body"),
        (
            "unknown algorithm only",
            "Digest realm=\"a.example\", nonce=\"n\", algorithm=SHA-1024".into(),
            "failed to parse auth hdr body",
        ),
        (
            "missing realm",
            "Digest nonce=\"n\", qop=\"auth\"".into(),
            "missing realm",
        ),
        (
            "not digest",
            "Basic realm=\"a.example\"".into(),
            "failed to parse auth hdr body",
        ),
    ];
    for (i, (what, value, log)) in cases.into_iter().enumerate() {
        let ch = Challenge::new("a.example").qop("auth");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&value]),
            // The follow-up call still works.
            Step::challenge(401, &[&ch.to_header_value()]),
            Step::verify(&ch, "alice", "secret"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[], "");
        assert_eq!(fin.code(), 401, "{what}: the challenge is relayed back");
        k.wait_log(log, WAIT);
        wait_count(&k, "AUTH-FAILED rc=-1", i + 1);
        std::thread::sleep(QUIET);
        // Nothing was sent after the malformed challenge.
        uas.assert_all_ok(1);
        assert!(k.is_running(), "{what}");
        assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200, "{what}");
        uas.assert_all_ok(3);
    }
    // Not a 401/407 reply with challenge header: 401 without WWW-Authenticate.
    let uas = AuthUas::start(vec![Step::challenge(401, &[])]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 401);
    k.wait_log("reply has no auth hdr (WWW-Authenticate)", WAIT);
    // Logged at ERR by this module (the level and wording of the C module).
    assert!(k.log().contains("ERROR: uac"));
    assert!(k.is_running());
}

#[test]
fn userhash_is_answered_when_asked() {
    let k = start(CREDS);
    let ch = Challenge::new("a.example")
        .algorithm("SHA-256")
        .qop("auth")
        .userhash(true);
    let uas = AuthUas::start(vec![
        Step::challenge(401, &[&ch.to_header_value()]),
        Step::verify(&ch, "alice", "secret"),
    ]);
    assert_eq!(call(&k, &uas, "MESSAGE", &[], "").code(), 200);
    uas.assert_all_ok(2);
    let v = auth_value(&uas.seen()[1].msg, "Authorization").to_string();
    assert!(
        v.contains("userhash=true") && !v.contains("\"alice\""),
        "{v}"
    );
}

/// Runs the MD5 qop=auth INVITE flow with dialog CSeq tracking on `cfg`;
/// returns the retried INVITE as the UAS saw it.
fn dialog_cseq_flow(cfg: Config) -> SipMsg {
    let k = Kamailio::start(cfg);
    let ch = Challenge::new("a.example").qop("auth");
    let uas = AuthUas::start(vec![
        Step::challenge(407, &[&ch.to_header_value()]),
        Step::verify(&ch, "alice", "secret"),
    ]);
    let fin = call(&k, &uas, "INVITE", &[("X-Dlg", "yes")], "");
    assert_eq!(fin.code(), 200, "caller got\n{}", fin.text());
    // The caller sees its own CSeq back.
    assert_eq!(fin.cseq().0, 1);
    uas.assert_all_ok(2);
    assert!(k.is_running());
    uas.seen()[1].msg.clone()
}

#[test]
fn dialog_track_cseq_updates_like_the_c_module() {
    let body = format!(
        "modparam(\"dialog\", \"track_cseq_updates\", 1)\n\
         modparam(\"uac\", \"credential\", \"alice:a.example:secret\")\n{}",
        routes(true)
    );
    let ours = dialog_cseq_flow(Config::new(&body).pre("loadmodule \"dialog.so\""));
    let theirs = dialog_cseq_flow(
        Config::new(&body)
            .pre("loadmodule \"dialog.so\"")
            .with_c_module(),
    );
    assert_eq!(ours.cseq(), theirs.cseq(), "same CSeq as the C module");
    assert_eq!(ours.cseq().0, 2, "dialog increased the CSeq of the retry");
    assert_eq!(ours.has("P-K-Auth-CSeq"), theirs.has("P-K-Auth-CSeq"));
}

#[test]
fn same_result_as_the_c_module_for_md5_qop_auth() {
    for c in [false, true] {
        let mut cfg = Config::new(&format!("{CREDS}\n{}", routes(false)));
        if c {
            cfg = cfg.with_c_module();
        }
        let k = Kamailio::start(cfg);
        let ch = Challenge::new("a.example").qop("auth").opaque("o1");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&ch.to_header_value()]),
            Step::verify(&ch, "alice", "secret"),
        ]);
        let fin = call(&k, &uas, "MESSAGE", &[], "");
        assert_eq!(fin.code(), 200, "c module: {c}");
        uas.assert_all_ok(2);
        let retry = &uas.seen()[1].msg;
        let v = auth_value(retry, "Authorization");
        // Same header shape: same parameters in the same order.
        let names: Vec<String> = digest::parse_authorization(v)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            names,
            [
                "algorithm",
                "cnonce",
                "nc",
                "nonce",
                "opaque",
                "qop",
                "realm",
                "response",
                "uri",
                "username"
            ],
            "c module: {c}: {v}"
        );
        assert_eq!(retry.ruri(), uas.uri("bob"));
        let order: Vec<&str> = v
            .trim_start_matches("Digest ")
            .split(", ")
            .map(|p| p.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(
            order,
            [
                "username",
                "realm",
                "nonce",
                "uri",
                "opaque",
                "qop",
                "nc",
                "cnonce",
                "response",
                "algorithm"
            ],
            "c module: {c}: {v}"
        );
    }
}

#[test]
fn c_module_keeps_the_ha1_flag_and_we_do_not() {
    // The same two calls as ha1_mode_applies_to_one_call_only, on both
    // modules: the C module's second call (plain uac_auth()) still hashes the
    // entry as an HA1 and fails verification; ours succeeds.
    let ha1 = md5_hex("hal:h.example:halpw");
    let cfg = format!(
        "modparam(\"uac\", \"credential\", \"hal:h.example:{ha1}\")\n{}",
        routes(false)
    );
    for c in [false, true] {
        let mut conf = Config::new(&cfg).children(1);
        if c {
            conf = conf.with_c_module();
        }
        let k = Kamailio::start(conf);
        let ch1 = Challenge::new("h.example").qop("auth");
        let ch2 = Challenge::new("h.example").qop("auth");
        let uas = AuthUas::start(vec![
            Step::challenge(401, &[&ch1.to_header_value()]),
            Step::verify(&ch1, "hal", "halpw"),
            Step::challenge(401, &[&ch2.to_header_value()]),
            Step::verify(&ch2, "hal", &ha1),
        ]);
        assert_eq!(
            call(&k, &uas, "MESSAGE", &[("X-Mode", "ha1")], "").code(),
            200
        );
        let second = call(&k, &uas, "MESSAGE", &[], "").code();
        if c {
            assert_eq!(second, 403, "the C module's HA1 flag sticks");
        } else {
            assert_eq!(second, 200);
            uas.assert_all_ok(4);
        }
    }
}

/// `uac_auth()` in `event_route[tm:branch-failure:...]` of a native cfg, as
/// the C module allows from 5.7 (offered on every release): the cfg loads,
/// the challenged branch is answered there, and in an event route without a
/// failed branch the function fails cleanly.
#[test]
fn uac_auth_in_branch_failure_event_route() {
    let k = Kamailio::start(
        Config::new(&format!(
            "{CREDS}\n{}",
            r#"
request_route {
    if (is_method("ACK")) { exit; }
    t_on_branch_failure("AUTHB");
    if (!t_relay()) { sl_reply_error(); }
    exit;
}

event_route[tm:branch-failure:AUTHB] {
    if (t_check_status("401|407")) {
        if (uac_auth()) {
            xlog("L_NOTICE", "BF-AUTH-OK\n");
        } else {
            xlog("L_NOTICE", "BF-AUTH-FAILED rc=$rc\n");
        }
    }
}

event_route[htable:mod-init] {
    if (uac_auth()) {
        xlog("L_NOTICE", "INIT-AUTH-OK\n");
    } else {
        xlog("L_NOTICE", "INIT-AUTH-FAILED rc=$rc\n");
    }
}
"#
        ))
        .pre("loadmodule \"htable.so\""),
    );
    k.wait_log("INIT-AUTH-FAILED rc=-1", WAIT);
    let ch = Challenge::new("a.example").qop("auth");
    let uas = AuthUas::start(vec![Step::challenge(401, &[&ch.to_header_value()])]);
    let fin = call(&k, &uas, "MESSAGE", &[], "");
    assert_eq!(fin.code(), 401, "caller got\n{}", fin.text());
    k.wait_log("BF-AUTH-OK", WAIT);
    uas.assert_all_ok(1);
    assert!(k.is_running());
}
