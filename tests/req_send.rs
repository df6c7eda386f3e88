//! Admin guide 4.8, 5, 6.1: `uac_req_send()`, `$uac_req(key)`,
//! `event_route[uac:reply]`, `default_socket`, and the `bind_uac` API.
//!
//! Each test starts a real Kamailio whose request_route builds a request in
//! `$uac_req` when a "trigger" request (R-URI user `send`) arrives from the
//! test's client peer; other Rust peers play the far end and assert what
//! crosses the wire. Kamailio's log shows what the event route saw.

mod common;

use std::time::Duration;

use common::digest::Challenge;
use common::kamailio::{Config, Kamailio, free_port};
use common::peer::{QUIET, Server, UdpPeer, WAIT, ms};
use common::sip::{Request, SipMsg};

/// tm timers short enough for the timeout case; transactions destroyed
/// soon after completion (for the memory test).
const TM_FAST: &str = r#"
modparam("tm", "fr_timer", 1000)
modparam("tm", "wt_timer", 200)
"#;

/// Logs what the event route sees, one line per outcome.
const EVENT_ROUTE: &str = r#"
event_route[uac:reply] {
    xlog("L_NOTICE", "UACREPLY code=$uac_req(evcode) type=$uac_req(evtype) param=$uac_req(evparam) method=$uac_req(method) ruri=$uac_req(ruri)\n");
}
"#;

/// A config whose trigger branch is `send_block` (script statements).
fn cfg_with(send_block: &str, extra: &str) -> Config {
    Config::new(&format!(
        r#"{TM_FAST}
{extra}
{EVENT_ROUTE}
request_route {{
    if (is_method("ACK")) {{ exit; }}
    if ($rU == "send") {{
{send_block}
        sl_send_reply("200", "Triggered");
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"#
    ))
}

/// Sends one trigger request (extra headers carry per-request values) and
/// waits for Kamailio's 200.
fn trigger(client: &UdpPeer, k: &Kamailio, headers: &[(&str, &str)]) -> SipMsg {
    let req = Request::new("OPTIONS", &format!("sip:send@{}", k.addr())).headers(headers);
    let sent = client.send(req);
    client.expect_response_to(&sent, 200, WAIT);
    sent
}

fn client_for(k: &Kamailio) -> UdpPeer {
    UdpPeer::bind().named("client").with_target(k.addr())
}

/// Counts log lines containing `needle`.
fn count_log(k: &Kamailio, needle: &str) -> usize {
    k.log().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn peer_receives_the_request_described_by_uac_req() {
    let uas = UdpPeer::bind().named("uas");
    let long_callid = format!("cid-{}", "x".repeat(200)); // C refuses >= 128
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(furi) = "sip:alice@example.com";
        $uac_req(turi) = "sip:bob@example.org";
        $uac_req(callid) = $hdr(X-Callid);
        $uac_req(hdrs) = "X-A: 1\r\nContent-Type: text/plain";
        $uac_req(body) = "hello world";
        xlog("L_NOTICE", "TEMPLATE method=$uac_req(method) furi=$uac_req(furi) body=$uac_req(body) evroute=$uac_req(evroute) auser=$uac_req(auser)\n");
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);
    trigger(
        &client,
        &k,
        &[
            ("X-Ruri", uas.uri("bob").as_str()),
            ("X-Callid", long_callid.as_str()),
        ],
    );

    let req = uas.expect_request("MESSAGE", WAIT);
    assert_eq!(req.ruri(), uas.uri("bob"));
    assert_eq!(req.from_uri(), "sip:alice@example.com");
    assert!(req.from_tag().is_some_and(|t| !t.is_empty()), "From tag");
    assert_eq!(req.to_uri(), "sip:bob@example.org");
    assert_eq!(req.to_tag(), None);
    assert_eq!(req.call_id(), long_callid);
    assert_eq!(req.cseq(), (10, "MESSAGE".to_string()));
    assert_eq!(req.hdr("X-A"), "1");
    assert_eq!(req.hdr("Content-Type"), "text/plain");
    assert_eq!(req.body_str(), "hello world");
    assert_eq!(req.hdr("Content-Length"), "11");
    let via = req.top_via().expect("Via");
    assert!(
        via.contains(&format!("127.0.0.1:{}", k.addr().port())),
        "{via}"
    );
    uas.reply(&req, 200, "OK", &[]);

    let log = k.wait_log("TEMPLATE ", WAIT);
    assert!(
        log.contains("TEMPLATE method=MESSAGE furi=sip:alice@example.com body=hello world evroute=0 auser=<null>"),
        "{log}"
    );
    // No event route without evroute.
    std::thread::sleep(QUIET);
    assert_eq!(count_log(&k, "UACREPLY"), 0);
}

#[test]
fn defaults_from_and_to_are_the_ruri_and_ouri_is_the_next_hop() {
    let proxy = UdpPeer::bind().named("proxy");
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(method) = "OPTIONS";
        $uac_req(ruri) = "sip:carol@far.invalid";
        $uac_req(ouri) = $hdr(X-Ouri);
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);
    trigger(
        &client,
        &k,
        &[("X-Ouri", format!("sip:{}", proxy.addr()).as_str())],
    );
    let req = proxy.expect_request("OPTIONS", WAIT);
    assert_eq!(req.ruri(), "sip:carol@far.invalid");
    assert_eq!(req.from_uri(), "sip:carol@far.invalid");
    assert_eq!(req.to_uri(), "sip:carol@far.invalid");
    assert!(!req.has("Route"));
    proxy.reply(&req, 200, "OK", &[]);
}

#[test]
fn event_route_sees_200_404_and_timeout() {
    let uas = UdpPeer::bind().named("uas");
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(method) = "OPTIONS";
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(evroute) = 1;
        $uac_req(evparam) = $hdr(X-Param);
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);

    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("ok").as_str()), ("X-Param", "p-ok")],
    );
    let r = uas.expect_request("OPTIONS", WAIT);
    uas.reply(&r, 200, "OK", &[]);
    k.wait_log("UACREPLY code=200 type=1 param=p-ok method=OPTIONS", WAIT);

    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("nf").as_str()), ("X-Param", "p-404")],
    );
    let r = uas.expect_request("OPTIONS", WAIT);
    uas.reply(&r, 404, "Not Found", &[]);
    k.wait_log("UACREPLY code=404 type=1 param=p-404", WAIT);

    // No answer: tm's fr_timer (1 s) ends it with a local 408.
    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("to").as_str()), ("X-Param", "p-408")],
    );
    uas.expect_request("OPTIONS", WAIT);
    k.wait_log(
        &format!(
            "UACREPLY code=408 type=2 param=p-408 method=OPTIONS ruri={}",
            uas.uri("to")
        ),
        Duration::from_secs(5),
    );
    assert_eq!(count_log(&k, "UACREPLY"), 3, "{}", k.log());
}

/// A UAS that challenges every request without credentials, verifies the
/// credentials of the others with the independent verifier, and answers 200.
fn challenging_uas(user: &'static str, password: &'static str, proxy: bool) -> Server {
    let realm = "example.com";
    let mut issued: Vec<Challenge> = Vec::new();
    Server::spawn(UdpPeer::bind().named("uas"), move |peer, m| {
        if !m.is_request() || m.method() == "ACK" {
            return;
        }
        let has = m.has("Authorization") || m.has("Proxy-Authorization");
        if !has {
            let ch = Challenge::new(realm).qop("auth").opaque("op4que");
            let (code, reason, hdr) = if proxy {
                (407, "Proxy Authentication Required", "Proxy-Authenticate")
            } else {
                (401, "Unauthorized", "WWW-Authenticate")
            };
            peer.reply(m, code, reason, &[(hdr, &ch.to_header_value())]);
            issued.push(ch);
            return;
        }
        let ok = issued
            .iter()
            .any(|ch| ch.verify_request(m, user, password).is_ok());
        if ok {
            peer.reply(m, 200, "OK", &[]);
        } else {
            peer.reply(m, 403, "Bad credentials", &[]);
        }
    })
}

fn auth_config() -> Config {
    cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(furi) = "sip:alice@example.com";
        $uac_req(hdrs) = "X-Keep: yes\r\n";
        $uac_req(body) = "authenticated body";
        $uac_req(auser) = "alice";
        $uac_req(apasswd) = "s3cret";
        $uac_req(evroute) = 1;
        $uac_req(evparam) = "auth";
        uac_req_send();
"#,
        "",
    )
}

fn check_auth_exchange(uas: &Server, header: &str) {
    let reqs = uas.wait_requests("MESSAGE", 2, WAIT);
    let (first, second) = (&reqs[0].clone(), &reqs[1].clone());
    assert!(!first.has(header));
    assert!(second.has(header), "{}", second.text());
    // RFC 3261 §22.2: same Call-ID and From tag, CSeq + 1.
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.from_tag(), first.from_tag());
    assert_eq!(second.cseq().0, first.cseq().0 + 1);
    assert_eq!(second.cseq().1, "MESSAGE");
    assert_ne!(second.branch(), first.branch());
    assert_eq!(second.hdr("X-Keep"), "yes");
    assert_eq!(second.body_str(), "authenticated body");
    assert_eq!(second.ruri(), first.ruri());
    let answered: Vec<_> = uas
        .received()
        .into_iter()
        .filter(|r| r.msg.is_request())
        .collect();
    assert_eq!(answered.len(), 2, "exactly one resubmission");
}

#[test]
fn authenticated_request_after_401_carries_valid_credentials_and_cseq_plus_1() {
    let uas = challenging_uas("alice", "s3cret", false);
    let k = Kamailio::start(auth_config());
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    check_auth_exchange(&uas, "Authorization");
    k.wait_log("UACREPLY code=200 type=1 param=auth method=MESSAGE", WAIT);
    std::thread::sleep(QUIET);
    // The event route runs once, for the final outcome (C also ran it for the 401).
    assert_eq!(count_log(&k, "UACREPLY"), 1, "{}", k.log());
    assert_eq!(count_log(&k, "code=403"), 0);
}

#[test]
fn authenticated_request_after_407_uses_proxy_authorization() {
    let uas = challenging_uas("alice", "s3cret", true);
    let k = Kamailio::start(auth_config());
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    check_auth_exchange(&uas, "Proxy-Authorization");
    k.wait_log("UACREPLY code=200 type=1 param=auth", WAIT);
}

#[test]
fn second_challenge_is_final_and_reported_once() {
    // Every request challenged: one resubmission, then the 401 is the outcome.
    let uas = Server::spawn(UdpPeer::bind().named("uas"), |peer, m| {
        if m.is_request() && m.method() != "ACK" {
            let ch = Challenge::new("example.com");
            peer.reply(
                m,
                401,
                "Unauthorized",
                &[("WWW-Authenticate", &ch.to_header_value())],
            );
        }
    });
    let k = Kamailio::start(auth_config());
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    k.wait_log("UACREPLY code=401 type=1 param=auth", WAIT);
    std::thread::sleep(ms(500));
    assert_eq!(uas.requests("MESSAGE").len(), 2);
    assert_eq!(count_log(&k, "UACREPLY"), 1, "{}", k.log());
}

#[test]
fn all_null_clears_everything_including_credentials() {
    let uas = Server::spawn(UdpPeer::bind().named("uas"), |peer, m| {
        if m.is_request() && m.method() != "ACK" {
            let ch = Challenge::new("example.com");
            peer.reply(
                m,
                401,
                "Unauthorized",
                &[("WWW-Authenticate", &ch.to_header_value())],
            );
        }
    });
    let other = free_port();
    let k = Kamailio::start(
        cfg_with(
            r#"
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = "sip:x@127.0.0.1:1";
        $uac_req(furi) = "sip:f@example.com";
        $uac_req(turi) = "sip:t@example.com";
        $uac_req(ouri) = "sip:127.0.0.1:1";
        $uac_req(hdrs) = "X-Old: 1\r\n";
        $uac_req(body) = "old";
        $uac_req(callid) = "old-callid";
        $uac_req(sock) = "udp:127.0.0.1:{OTHER}";
        $uac_req(auser) = "alice";
        $uac_req(apasswd) = "s3cret";
        $uac_req(evroute) = 1;
        $uac_req(evparam) = "old";
        $uac_req(flags) = 1;
        $uac_req(evcode) = 5;
        $uac_req(evtype) = 5;
        $uac_req(cseqno) = 77;
        $uac_req(fr_timeout) = 1500;
        $uac_req(fr_inv_timeout) = 3000;
        $uac_req(ftag) = "old-ftag";
        $uac_req(ttag) = "old-ttag";
        $uac_req(all) = $null;
        xlog("L_NOTICE", "CLEARED [$uac_req(method)|$uac_req(ruri)|$uac_req(furi)|$uac_req(turi)|$uac_req(ouri)|$uac_req(hdrs)|$uac_req(body)|$uac_req(callid)|$uac_req(sock)|$uac_req(auser)|$uac_req(apasswd)|$uac_req(evparam)|$uac_req(evroute)|$uac_req(flags)|$uac_req(evcode)|$uac_req(evtype)|$uac_req(all)]\n");
        xlog("L_NOTICE", "CLEARED-6.x [$uac_req(cseqno)|$uac_req(fr_timeout)|$uac_req(fr_inv_timeout)|$uac_req(ftag)|$uac_req(ttag)]\n");
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        uac_req_send();
"#
            .replace("{OTHER}", &other.to_string())
            .as_str(),
            "",
        )
        .pre(&format!("listen=udp:127.0.0.1:{other}")),
    );
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    let log = k.wait_log("CLEARED [", WAIT);
    assert!(
        log.contains("CLEARED [<null>|<null>|<null>|<null>|<null>|<null>|<null>|<null>|<null>|<null>|<null>|<null>|0|0|0|0|0]"),
        "{log}"
    );
    let log = k.wait_log("CLEARED-6.x [", WAIT);
    assert!(log.contains("CLEARED-6.x [0|0|0|<null>|<null>]"), "{log}");
    let reqs = uas.wait_requests("MESSAGE", 1, WAIT);
    let m = &reqs[0];
    assert_ne!(m.call_id(), "old-callid");
    assert_eq!(m.cseq().0, 10);
    assert_ne!(m.from_tag().as_deref(), Some("old-ftag"));
    assert_eq!(m.to_tag(), None);
    assert!(!m.has("X-Old"));
    assert_eq!(m.body_str(), "");
    assert_eq!(m.from_uri(), uas.uri("bob"));
    // Sent from the main socket, not the cleared `sock`.
    assert_eq!(m.remote.map(|a| a.port()), Some(k.addr().port()));
    // The 401 is not answered: no credentials are left.
    std::thread::sleep(ms(700));
    assert_eq!(uas.requests("MESSAGE").len(), 1, "{}", uas.log_text());
    assert_eq!(count_log(&k, "UACREPLY"), 0);
}

#[test]
fn over_long_values_are_refused_and_long_ones_kept_whole() {
    let uas = UdpPeer::bind().named("uas");
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $var(big) = "0123456789abcdef";
        $var(i) = 0;
        while ($var(i) < 12) {
            $var(big) = $var(big) + $var(big);
            $var(i) = $var(i) + 1;
        }
        # 65536 bytes: one more than any SIP message Kamailio handles.
        $uac_req(body) = "kept";
        $uac_req(body) = $var(big);
        xlog("L_NOTICE", "BODY-NOW $uac_req(body)\n");
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        # 3000-byte header and 300-byte Call-ID: over C's 2048/128 limits.
        $var(h) = $(var(big){s.substr,0,3000});
        $uac_req(hdrs) = "X-Long: " + $var(h) + "\r\n";
        $uac_req(callid) = $(var(big){s.substr,0,300});
        $uac_req(apasswd) = $(var(big){s.substr,0,200});
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    let log = k.wait_log("BODY-NOW", WAIT);
    assert!(
        log.contains("$uac_req(body): Value size too big (65536 bytes"),
        "{log}"
    );
    assert!(log.contains("BODY-NOW kept"), "{log}");
    let req = uas.expect_request("MESSAGE", WAIT);
    let big: String = "0123456789abcdef".repeat(4096);
    assert_eq!(req.hdr("X-Long"), &big[..3000]);
    assert_eq!(req.call_id(), &big[..300]);
    assert_eq!(req.body_str(), "kept");
    uas.reply(&req, 200, "OK", &[]);
}

#[test]
fn header_injection_is_refused() {
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(ruri) = "sip:a@b";
        $uac_req(ruri) = "sip:x@y\r\nX-Evil: 1";
        $uac_req(method) = "BAD METHOD";
        xlog("L_NOTICE", "INJ ruri=$uac_req(ruri) method=$uac_req(method)\n");
"#,
        "",
    ));
    let client = client_for(&k);
    trigger(&client, &k, &[]);
    let log = k.wait_log("INJ ruri", WAIT);
    assert!(log.contains("INJ ruri=sip:a@b method=<null>"), "{log}");
    assert!(log.contains("$uac_req(ruri): invalid value"), "{log}");
    assert!(log.contains("$uac_req(method): invalid value"), "{log}");
}

#[test]
fn sock_and_default_socket_choose_the_source() {
    let uas = UdpPeer::bind().named("uas");
    let (p2, p3) = (free_port(), free_port());
    let k = Kamailio::start(
        cfg_with(
            r#"
        $uac_req(all) = $null;
        $uac_req(method) = "OPTIONS";
        $uac_req(ruri) = $hdr(X-Ruri);
        if (is_present_hf("X-Sock")) { $uac_req(sock) = $hdr(X-Sock); }
        if (!uac_req_send()) { xlog("L_NOTICE", "SEND-FAILED\n"); }
"#,
            &format!(r#"modparam("uac", "default_socket", "udp:127.0.0.1:{p2}")"#),
        )
        .pre(&format!(
            "listen=udp:127.0.0.1:{p2}\nlisten=udp:127.0.0.1:{p3}"
        )),
    );
    k.wait_log(
        &format!("default uac socket set to <udp:127.0.0.1:{p2}>"),
        WAIT,
    );
    let client = client_for(&k);

    trigger(&client, &k, &[("X-Ruri", uas.uri("a").as_str())]);
    let r = uas.expect_request("OPTIONS", WAIT);
    assert_eq!(r.remote.map(|a| a.port()), Some(p2), "default_socket");
    uas.reply(&r, 200, "OK", &[]);

    trigger(
        &client,
        &k,
        &[
            ("X-Ruri", uas.uri("b").as_str()),
            ("X-Sock", format!("udp:127.0.0.1:{p3}").as_str()),
        ],
    );
    let r = uas.expect_request("OPTIONS", WAIT);
    assert_eq!(r.remote.map(|a| a.port()), Some(p3), "$uac_req(sock)");
    uas.reply(&r, 200, "OK", &[]);

    // Not a local socket: refused with a log line, nothing sent.
    trigger(
        &client,
        &k,
        &[
            ("X-Ruri", uas.uri("c").as_str()),
            ("X-Sock", "udp:192.0.2.1:5060"),
        ],
    );
    k.wait_log("SEND-FAILED", WAIT);
    assert!(k.log().contains("non-local socket <udp:192.0.2.1:5060>"));
    uas.expect_nothing(QUIET);
}

#[test]
fn default_socket_must_be_local() {
    let log = Kamailio::start_expect_failure(Config::new(
        r#"
modparam("uac", "default_socket", "udp:192.0.2.1:5060")
request_route { sl_send_reply("200", "OK"); }
"#,
    ));
    assert!(log.contains("default_socket"), "{log}");
    assert!(
        log.contains("non-local socket <udp:192.0.2.1:5060>"),
        "{log}"
    );
}

#[test]
fn unknown_uac_req_key_is_refused_at_startup() {
    let log = Kamailio::start_expect_failure(Config::new(
        r#"
request_route { $uac_req(cseq) = 1; sl_send_reply("200", "OK"); }
"#,
    ));
    assert!(log.contains("unknown uac_req name cseq"), "{log}");
}

/// 100 requests from routes on several workers, every one with its shm
/// callback state (event route and credentials), half of them challenged
/// twice: shared memory returns to where it was.
#[test]
fn hundred_requests_leave_no_shm_behind() {
    let uas = Server::spawn(UdpPeer::bind().named("uas"), |peer, m| {
        if !m.is_request() || m.method() == "ACK" {
            return;
        }
        if m.ruri().contains("chal") {
            let ch = Challenge::new("example.com");
            peer.reply(
                m,
                401,
                "Unauthorized",
                &[("WWW-Authenticate", &ch.to_header_value())],
            );
        } else {
            peer.reply(m, 200, "OK", &[]);
        }
    });
    let k = Kamailio::start(
        cfg_with(
            r#"
        $var(n) = 0;
        while ($var(n) < 10) {
            $uac_req(all) = $null;
            $uac_req(method) = "MESSAGE";
            $uac_req(ruri) = $hdr(X-Ruri);
            $uac_req(body) = "payload";
            $uac_req(auser) = "alice";
            $uac_req(apasswd) = "s3cret";
            $uac_req(evroute) = 1;
            $uac_req(evparam) = "pid=" + $pp;
            uac_req_send();
            $var(n) = $var(n) + 1;
        }
"#,
            "",
        )
        .children(4),
    );
    let client = client_for(&k);
    let round = |n: usize| {
        for i in 0..n {
            let who = if i % 2 == 0 { "ok" } else { "chal" };
            trigger(&client, &k, &[("X-Ruri", uas.uri(who).as_str())]);
        }
    };
    let settle = || {
        // Let every transaction finish and be destroyed (wt_timer 200 ms).
        std::thread::sleep(ms(1500));
    };
    round(2); // warm-up: per-process allocations happen once
    settle();
    let before = k.shm_used();
    let events_before = count_log(&k, "UACREPLY");
    round(10); // 100 requests (+50 resubmissions)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count_log(&k, "UACREPLY") < events_before + 100 && std::time::Instant::now() < deadline {
        std::thread::sleep(ms(50));
    }
    assert_eq!(
        count_log(&k, "UACREPLY") - events_before,
        100,
        "{}",
        k.log()
    );
    settle();
    let after = k.shm_used();
    assert!(
        after <= before + 16 * 1024,
        "shm grew from {before} to {after} bytes after 100 requests"
    );
    // Several workers ran the route.
    let pids: std::collections::HashSet<String> = k
        .log()
        .lines()
        .filter_map(|l| l.split("param=pid=").nth(1))
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert!(pids.len() >= 2, "event routes ran in {pids:?}");
    assert_eq!(uas.requests("MESSAGE").len(), 30 + 150);
}

#[test]
fn pv_headers_binds_the_uac_api() {
    let k = Kamailio::start(
        cfg_with("        uac_req_send();\n", "").pre(r#"loadmodule "pv_headers.so""#),
    );
    std::thread::sleep(ms(200));
    let log = k.log();
    assert!(!log.contains("could not bind to the 'uac' module"), "{log}");
    assert!(!log.contains("bind_uac"), "{log}");
}

/// pv_headers rewrites From through uac's `replace_from` (bind_uac API).
#[test]
fn pv_headers_from_rewrite_goes_through_uac() {
    let uas = UdpPeer::bind().named("uas");
    let k = Kamailio::start(
        Config::new(
            r#"
modparam("pv_headers", "auto_msg", 0)
request_route {
    if (is_method("ACK")) { exit; }
    record_route();
    pvh_collect_headers();
    $x_hdr(From) = "\"New\" <sip:new@example.net>";
    pvh_apply_headers();
    $du = $hdr(X-Dst);
    t_relay();
}
"#,
        )
        .pre(r#"loadmodule "pv_headers.so""#),
    );
    let client = client_for(&k);
    let sent = client.send(
        Request::new("MESSAGE", "sip:bob@example.org")
            .header("X-Dst", &format!("sip:{}", uas.addr())),
    );
    let req = uas.expect_request("MESSAGE", WAIT);
    assert_eq!(req.from_uri(), "sip:new@example.net");
    uas.reply(&req, 200, "OK", &[]);
    client.expect_response_to(&sent, 200, WAIT);
}

/// `event_callback`: with a KEMI engine (app_jsdt here), the named script
/// function gets the outcome instead of `event_route[uac:reply]`.
#[test]
fn event_callback_runs_the_kemi_function() {
    let uas = UdpPeer::bind().named("uas");
    let cfg = Config::new(
        r#"
modparam("tm", "fr_timer", 1000)
modparam("uac", "event_callback", "ksr_uac_event")
loadmodule "app_jsdt.so"
modparam("app_jsdt", "load", "{TMP}/script.js")
cfgengine "jsdt"
"#,
    );
    let k = {
        // The JS script lives in a temp dir of its own, written before start-up.
        let dir = common::kamailio::temp_dir("jsdt");
        let js = r#"
function ksr_request_route() {
    if (KSR.is_ACK()) { return; }
    KSR.pv.sets("$uac_req(method)", "OPTIONS");
    KSR.pv.sets("$uac_req(ruri)", KSR.pv.get("$hdr(X-Ruri)"));
    KSR.pv.seti("$uac_req(evroute)", 1);
    KSR.pv.sets("$uac_req(evparam)", "kemi-param");
    KSR.uac.uac_req_send();
    KSR.sl.sl_send_reply(200, "Triggered");
}
function ksr_uac_event(evname) {
    KSR.notice("KEMIEV " + evname + " code=" + KSR.pv.get("$uac_req(evcode)")
        + " type=" + KSR.pv.get("$uac_req(evtype)")
        + " param=" + KSR.pv.get("$uac_req(evparam)") + "\n");
}
"#;
        let path = dir.join("script.js");
        std::fs::write(&path, js).expect("write script.js");
        let mut cfg = cfg;
        cfg.body = cfg
            .body
            .replace("{TMP}/script.js", &path.display().to_string());
        Kamailio::start(cfg)
    };
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    let r = uas.expect_request("OPTIONS", WAIT);
    uas.reply(&r, 486, "Busy Here", &[]);
    k.wait_log("KEMIEV uac:reply code=486 type=1 param=kemi-param", WAIT);
}

/// `evroute = 2` (C module 5.6.3): the event route runs from tm's failure
/// handling (`TMCB_ON_FAILURE`, needs tm's `enable_uac_fr`), without auth.
#[test]
fn evroute_2_reports_failures_through_tm_failure_handling() {
    let uas = UdpPeer::bind().named("uas");
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(method) = "OPTIONS";
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(evroute) = 2;
        $uac_req(evparam) = $hdr(X-Param);
        uac_req_send();
"#,
        r#"modparam("tm", "enable_uac_fr", 1)"#,
    ));
    let client = client_for(&k);
    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("a").as_str()), ("X-Param", "fail")],
    );
    let r = uas.expect_request("OPTIONS", WAIT);
    uas.reply(&r, 503, "Unavailable", &[]);
    k.wait_log("UACREPLY code=503 type=1 param=fail", WAIT);

    // A 200 is not a failure: nothing reported.
    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("b").as_str()), ("X-Param", "success")],
    );
    let r = uas.expect_request("OPTIONS", WAIT);
    uas.reply(&r, 200, "OK", &[]);
    std::thread::sleep(QUIET);
    assert_eq!(count_log(&k, "param=success"), 0, "{}", k.log());
}

/// bind_uac through rtjson (in Debian's kamailio package): its per-branch
/// From/To rewriting calls uac's replace_from/replace_to through the API.
#[test]
fn rtjson_branch_headers_go_through_uac() {
    let uas = UdpPeer::bind().named("uas");
    let json = format!(
        r#"{{"version":"1.0","routing":"serial","routes":[{{"uri":"sip:bob@{uas}","headers":{{"from":{{"display":"\"RtJson\"","uri":"sip:rtjson@example.net"}},"to":{{"display":"","uri":"sip:carrier@example.net"}}}}}}]}}"#,
        uas = uas.addr()
    );
    let k = Kamailio::start(
        Config::new(&format!(
            r#"
request_route {{
    if (is_method("ACK")) {{ exit; }}
    record_route();
    $var(json) = '{json}';
    if (!rtjson_init_routes("$var(json)")) {{ sl_send_reply("500", "rtjson init"); exit; }}
    if (!rtjson_push_routes()) {{ sl_send_reply("500", "rtjson push"); exit; }}
    t_on_branch("RTJ");
    t_relay();
}}
branch_route[RTJ] {{
    rtjson_update_branch();
}}
"#
        ))
        .pre(r#"loadmodule "rtjson.so""#),
    );
    let client = client_for(&k);
    let sent = client.send(
        Request::new("MESSAGE", "sip:bob@example.org")
            .from_raw("\"Alice\" <sip:alice@example.com>;tag=a1"),
    );
    let req = uas.expect_request("MESSAGE", WAIT);
    assert_eq!(req.from(), "\"RtJson\" <sip:rtjson@example.net>;tag=a1");
    assert_eq!(req.to_uri(), "sip:carrier@example.net");
    uas.reply(&req, 200, "OK", &[]);
    let ok = client.expect_response_to(&sent, 200, WAIT);
    // The reply is restored (restore_mode auto by default).
    assert_eq!(ok.from(), "\"Alice\" <sip:alice@example.com>;tag=a1");
}

// ---------------------------------------------------------------------------
// Keys of the C module 6.0 (`cseqno`) and 6.1 (`ftag`, `ttag`, `fr_timeout`,
// `fr_inv_timeout`), available on every release.

#[test]
fn cseqno_ftag_and_ttag_shape_the_request() {
    let uas = UdpPeer::bind().named("uas");
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        if ($hdr(X-Keys) == "set") {
            $uac_req(cseqno) = 4711;
            $uac_req(ftag) = "from-Tag.1";
            $uac_req(ttag) = "to-Tag.2";
            # Not tokens: refused, the values above stay.
            $uac_req(ftag) = "bad tag";
            $uac_req(ttag) = "bad;tag";
            $uac_req(cseqno) = 2147483648;
        }
        xlog("L_NOTICE", "KEYS-$hdr(X-Keys) cseqno=$uac_req(cseqno) ftag=$uac_req(ftag) ttag=$uac_req(ttag)\n");
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);

    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("bob").as_str()), ("X-Keys", "set")],
    );
    let req = uas.expect_request("MESSAGE", WAIT);
    assert_eq!(req.cseq(), (4711, "MESSAGE".to_string()));
    assert_eq!(req.from_tag().as_deref(), Some("from-Tag.1"));
    assert_eq!(req.to_tag().as_deref(), Some("to-Tag.2"));
    assert_eq!(req.to_uri(), uas.uri("bob"));
    uas.reply(&req, 200, "OK", &[]);
    let log = k.wait_log("KEYS-set", WAIT);
    assert!(
        log.contains("KEYS-set cseqno=4711 ftag=from-Tag.1 ttag=to-Tag.2"),
        "{log}"
    );
    assert!(log.contains("$uac_req(ftag): invalid value"), "{log}");
    assert!(log.contains("$uac_req(ttag): invalid value"), "{log}");
    assert!(log.contains("$uac_req(cseqno): invalid value"), "{log}");

    // After `$uac_req(all) = $null`: tm's defaults again.
    trigger(
        &client,
        &k,
        &[("X-Ruri", uas.uri("carol").as_str()), ("X-Keys", "none")],
    );
    let req = uas.expect_request("MESSAGE", WAIT);
    assert_eq!(req.cseq(), (10, "MESSAGE".to_string()));
    let tag = req.from_tag().expect("From tag");
    assert!(!tag.is_empty() && tag != "from-Tag.1", "{tag}");
    assert_eq!(req.to_tag(), None);
    uas.reply(&req, 200, "OK", &[]);
    let log = k.wait_log("KEYS-none", WAIT);
    assert!(
        log.contains("KEYS-none cseqno=0 ftag=<null> ttag=<null>"),
        "{log}"
    );
}

#[test]
fn auth_retry_keeps_ftag_and_ttag_and_sends_cseqno_plus_1() {
    let uas = challenging_uas("alice", "s3cret", false);
    let k = Kamailio::start(cfg_with(
        r#"
        $uac_req(all) = $null;
        $uac_req(method) = "MESSAGE";
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(cseqno) = 200;
        $uac_req(ftag) = "auth-ftag";
        $uac_req(ttag) = "auth-ttag";
        $uac_req(auser) = "alice";
        $uac_req(apasswd) = "s3cret";
        $uac_req(evroute) = 1;
        $uac_req(evparam) = "keys";
        uac_req_send();
"#,
        "",
    ));
    let client = client_for(&k);
    trigger(&client, &k, &[("X-Ruri", uas.uri("bob").as_str())]);
    let reqs = uas.wait_requests("MESSAGE", 2, WAIT);
    let (first, second) = (&reqs[0], &reqs[1]);
    assert!(!first.has("Authorization"));
    assert!(second.has("Authorization"), "{}", second.text());
    assert_eq!(first.cseq().0, 200);
    assert_eq!(second.cseq().0, 201);
    for r in [first, second] {
        assert_eq!(r.from_tag().as_deref(), Some("auth-ftag"));
        assert_eq!(r.to_tag().as_deref(), Some("auth-ttag"));
    }
    assert_eq!(second.call_id(), first.call_id());
    k.wait_log("UACREPLY code=200 type=1 param=keys", WAIT);
}

/// `$uac_req(fr_timeout)` / `$uac_req(fr_inv_timeout)` in milliseconds. On
/// Kamailio >= 6.1 tm takes them per request: with tm's timers at 10 s and
/// 20 s, a silent peer's OPTIONS times out after ~1.5 s and a ringing peer's
/// INVITE ~3 s after the 180. Older tm has no such timers: the keys are kept
/// and readable, the request goes out, and one warning per process says so.
#[test]
fn fr_timeout_keys_follow_the_release() {
    let (major, minor, _) = common::kamailio::kamailio_version();
    let per_request_timers = (major, minor) >= (6, 1);
    let uas = Server::spawn(UdpPeer::bind().named("uas"), |peer, m| {
        if !m.is_request() || m.method() == "ACK" {
            return;
        }
        if m.method() == "CANCEL" {
            peer.reply(m, 200, "OK", &[]);
        } else if m.ruri().contains("silent") {
            // never answers
        } else if m.method() == "INVITE" {
            peer.reply(m, 180, "Ringing", &[]);
        } else {
            peer.reply(m, 200, "OK", &[]);
        }
    });
    let k = Kamailio::start(
        Config::new(&format!(
            r#"
modparam("tm", "fr_timer", 10000)
modparam("tm", "fr_inv_timer", 20000)
modparam("tm", "wt_timer", 200)
{EVENT_ROUTE}
request_route {{
    if (is_method("ACK")) {{ exit; }}
    if ($rU == "send") {{
        $uac_req(all) = $null;
        $uac_req(method) = $hdr(X-Method);
        $uac_req(ruri) = $hdr(X-Ruri);
        $uac_req(fr_timeout) = 1500;
        $uac_req(fr_inv_timeout) = 3000;
        $uac_req(evroute) = 1;
        $uac_req(evparam) = $hdr(X-Param);
        xlog("L_NOTICE", "TIMERS fr=$uac_req(fr_timeout) fr_inv=$uac_req(fr_inv_timeout)\n");
        uac_req_send();
        sl_send_reply("200", "Triggered");
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"#
        ))
        // One worker: "once per process" means once here.
        .children(1),
    );
    let client = client_for(&k);
    let send = |method: &str, user: &str, param: &str| {
        trigger(
            &client,
            &k,
            &[
                ("X-Method", method),
                ("X-Ruri", uas.uri(user).as_str()),
                ("X-Param", param),
            ],
        );
    };
    const WARNING: &str = "need Kamailio 6.1";

    if per_request_timers {
        let start = std::time::Instant::now();
        send("OPTIONS", "silent", "fr");
        k.wait_log(
            "UACREPLY code=408 type=2 param=fr method=OPTIONS",
            Duration::from_secs(8),
        );
        let took = start.elapsed();
        assert!(
            took >= ms(1000) && took < ms(2800),
            "408 after {took:?}, want ~1.5 s (tm's fr_timer is 10 s)"
        );

        let start = std::time::Instant::now();
        send("INVITE", "ring", "fr-inv");
        k.wait_log(
            "UACREPLY code=408 type=2 param=fr-inv method=INVITE",
            Duration::from_secs(10),
        );
        let took = start.elapsed();
        assert!(
            took >= ms(2500) && took < ms(6000),
            "408 after {took:?}, want ~3 s after the 180 (tm's fr_inv_timer is 20 s)"
        );
        assert_eq!(count_log(&k, WARNING), 0, "{}", k.log());
    } else {
        send("OPTIONS", "one", "a");
        send("OPTIONS", "two", "b");
        k.wait_log("UACREPLY code=200 type=1 param=a", WAIT);
        k.wait_log("UACREPLY code=200 type=1 param=b", WAIT);
        let reqs = uas.requests("OPTIONS");
        assert!(reqs.iter().any(|r| r.ruri() == uas.uri("one")));
        assert!(reqs.iter().any(|r| r.ruri() == uas.uri("two")));
        assert_eq!(count_log(&k, WARNING), 1, "{}", k.log());
        assert_eq!(count_log(&k, "tm's fr_timer applies"), 1);
    }
    assert_eq!(
        count_log(&k, "TIMERS fr=1500 fr_inv=3000"),
        2,
        "{}",
        k.log()
    );
}
