//! Tests of the integration-test toolkit itself (tests/common): SIP parsing and
//! building, peers over loopback, dialogs through a record-routing proxy, the
//! registrar and UAS helpers, and the digest verifier against RFC vectors.
//! No Kamailio involved.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::digest::{self, Challenge, DigestInput};
use common::peer::{QUIET, RegAction, RegistrarConfig, Server, Uas, UasConfig, UdpPeer, WAIT, ms};
use common::sip::{
    Dialog, Request, Response, SipMsg, Uri, display_name, new_branch, param, sdp, split_list, tag,
    uri_of, uri_param, via_addr,
};

// ---------------------------------------------------------------------------
// sip.rs
// ---------------------------------------------------------------------------

const FOLDED: &str = "\r\nINVITE sip:bob@example.com;transport=udp SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKaaa;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKbbb\r\n\
Via: SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKccc;received=192.0.2.1;rport=6000\r\n\
f: \"Alice, A.\" <sip:alice@example.com>;tag=1928301774\r\n\
t: Bob\r\n <sip:bob@example.com>\r\n\
i: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@10.0.0.1:5060;transport=udp>\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p3.example.com;lr>\r\n\
X-Custom: one\r\n\
x-custom: two\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\nextra";

#[test]
fn parse_request_compact_folding_lists() {
    let m = SipMsg::parse(FOLDED.as_bytes()).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), "INVITE");
    assert_eq!(m.ruri(), "sip:bob@example.com;transport=udp");
    assert_eq!(
        m.from(),
        "\"Alice, A.\" <sip:alice@example.com>;tag=1928301774"
    );
    assert_eq!(m.header("FROM"), Some(m.from()));
    assert_eq!(m.to(), "Bob <sip:bob@example.com>");
    assert_eq!(m.call_id(), "a84b4c76e66710");
    assert_eq!(m.header("i"), Some("a84b4c76e66710"));
    assert_eq!(m.cseq(), (314159, "INVITE".to_string()));
    assert_eq!(m.from_tag().as_deref(), Some("1928301774"));
    assert_eq!(m.to_tag(), None);
    assert_eq!(m.from_uri(), "sip:alice@example.com");
    assert_eq!(m.to_uri(), "sip:bob@example.com");
    assert_eq!(m.count("Via"), 2);
    let vias = m.values("Via");
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1], "SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKbbb");
    assert_eq!(m.branch().as_deref(), Some("z9hG4bKaaa"));
    assert_eq!(m.values("Record-Route").len(), 3);
    assert_eq!(m.headers("X-CUSTOM"), vec!["one", "two"]);
    assert_eq!(
        m.contact_uri().as_deref(),
        Some("sip:alice@10.0.0.1:5060;transport=udp")
    );
    assert_eq!(m.header("Content-Type"), Some("application/sdp"));
    assert_eq!(m.body, b"v=0\r");
    assert!(!m.has("Route"));
    // The From display name holds a comma: still one element.
    assert_eq!(m.values("From").len(), 1);
}

#[test]
fn parse_response_lf_only_and_garbage_lines() {
    let raw = "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <sip:b@h>;tag=x\n\
               broken line\nContent-Length: 0\n\n";
    let m = SipMsg::parse(raw.as_bytes()).unwrap();
    assert!(m.is_response());
    assert_eq!(m.code(), 486);
    assert_eq!(m.reason(), "Busy Here");
    assert_eq!(m.to_tag().as_deref(), Some("x"));
    assert!(m.has("broken line"));
    assert!(m.body.is_empty());
    assert!(SipMsg::parse(b"").is_err());
    assert!(SipMsg::parse(b"hello\r\n\r\n").is_err());
    assert!(SipMsg::parse(b"SIP/2.0 abc OK\r\n\r\n").is_err());
}

#[test]
fn value_helpers() {
    assert_eq!(uri_of("\"Bob <x>\" <sip:bob@b;lr>;tag=1"), "sip:bob@b;lr");
    assert_eq!(uri_of("sip:bob@b;tag=1"), "sip:bob@b");
    assert_eq!(uri_of(" <sip:x@y> "), "sip:x@y");
    assert_eq!(
        param("<sip:a@b;tag=no>;tag=yes;lr", "tag").as_deref(),
        Some("yes")
    );
    assert_eq!(param("<sip:a@b;tag=no>;lr", "lr").as_deref(), Some(""));
    assert_eq!(param("<sip:a@b;tag=no>", "tag"), None);
    assert_eq!(param("sip:a@b;tag=7", "TAG").as_deref(), Some("7"));
    assert_eq!(param("x;q=\"a;b\";z=1", "q").as_deref(), Some("a;b"));
    assert_eq!(tag("\"a;tag=q\" <sip:a@b>;tag=t").as_deref(), Some("t"));
    assert_eq!(
        display_name("\"Bob B\" <sip:b@h>").as_deref(),
        Some("Bob B")
    );
    assert_eq!(display_name("<sip:b@h>"), None);
    assert_eq!(uri_param("sip:p@h;lr;ftag=x", "ftag").as_deref(), Some("x"));
    assert_eq!(uri_param("sip:p@h;lr;ftag=x", "lr").as_deref(), Some(""));
    assert_eq!(
        split_list("\"x, y\" <sip:a@b>;p=1 , <sip:c@d>"),
        vec!["\"x, y\" <sip:a@b>;p=1", "<sip:c@d>"]
    );

    let u = Uri::parse("<sip:alice:pw@127.0.0.1:5070;transport=udp;lr?h=1>").unwrap();
    assert_eq!(u.scheme, "sip");
    assert_eq!(u.user.as_deref(), Some("alice"));
    assert_eq!(u.password.as_deref(), Some("pw"));
    assert_eq!(u.host, "127.0.0.1");
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.param("transport").as_deref(), Some("udp"));
    assert_eq!(u.headers.as_deref(), Some("h=1"));
    assert_eq!(u.socket_addr(), Some("127.0.0.1:5070".parse().unwrap()));
    let v6 = Uri::parse("sip:[::1]:5080").unwrap();
    assert_eq!((v6.host.as_str(), v6.port), ("[::1]", Some(5080)));
    assert_eq!(v6.socket_addr(), Some("[::1]:5080".parse().unwrap()));
    assert_eq!(
        Uri::parse("sip:127.0.0.1")
            .unwrap()
            .socket_addr()
            .unwrap()
            .port(),
        5060
    );

    assert_eq!(
        via_addr("SIP/2.0/UDP 10.0.0.3:5070;branch=z;received=127.0.0.2;rport=6000"),
        Some("127.0.0.2:6000".parse().unwrap())
    );
    assert_eq!(
        via_addr("SIP/2.0/UDP 127.0.0.1:5070;branch=z;rport"),
        Some("127.0.0.1:5070".parse().unwrap())
    );
}

#[test]
fn request_builder_defaults() {
    let local = "127.0.0.1:40000".parse().unwrap();
    let r = Request::new("INVITE", "sip:bob@127.0.0.1:5060")
        .from("sip:alice@a.example")
        .sdp("v=0\r\n")
        .local(local);
    let m = r.to_msg();
    assert_eq!(m.method(), "INVITE");
    assert_eq!(m.ruri(), "sip:bob@127.0.0.1:5060");
    let via = m.top_via().unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK"),
        "{via}"
    );
    assert_eq!(param(&via, "rport").as_deref(), Some(""));
    assert_eq!(m.branch().as_deref(), Some(r.get_branch()));
    assert_eq!(m.from_uri(), "sip:alice@a.example");
    assert!(m.from_tag().is_some());
    assert_eq!(m.to(), "<sip:bob@127.0.0.1:5060>");
    assert_eq!(m.hdr("Max-Forwards"), "70");
    assert_eq!(m.cseq(), (1, "INVITE".into()));
    assert_eq!(m.hdr("Contact"), "<sip:tester@127.0.0.1:40000>");
    assert_eq!(m.hdr("Content-Type"), "application/sdp");
    assert_eq!(m.hdr("Content-Length"), "5");
    assert_eq!(m.body, b"v=0\r\n");
    assert_eq!(m.call_id(), r.get_call_id().unwrap());
    // Rendering twice gives the same bytes (same branch, tag, Call-ID).
    assert_eq!(r.to_bytes(), r.to_bytes());
    // No Contact for BYE by default.
    assert!(!Request::new("BYE", "sip:b@h").to_msg().has("Contact"));
}

#[test]
fn request_builder_overrides() {
    let m = Request::new("MESSAGE", "sip:b@h")
        .from_raw("<sip:a@h>")
        .to("sip:b@h;x=1")
        .header("Call-ID", "cid-1")
        .header("CSeq", "7 MESSAGE")
        .header("Subject", "hi")
        .raw_header("Subject", "again")
        .header("Via", "SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx")
        .via("SIP/2.0/UDP 5.6.7.8;branch=z9hG4bKy")
        .route("<sip:127.0.0.1:5060;lr>")
        .header("Content-Length", "99")
        .without("Max-Forwards")
        .body("hello")
        .to_msg();
    assert_eq!(m.from(), "<sip:a@h>");
    assert_eq!(m.to(), "<sip:b@h;x=1>");
    assert_eq!(m.call_id(), "cid-1");
    assert_eq!(m.cseq(), (7, "MESSAGE".into()));
    assert_eq!(m.headers("Subject"), vec!["hi", "again"]);
    assert_eq!(m.values("Via").len(), 2);
    assert_eq!(m.branch().as_deref(), Some("z9hG4bKx"));
    assert_eq!(m.hdr("Route"), "<sip:127.0.0.1:5060;lr>");
    assert_eq!(m.hdr("Content-Length"), "99");
    assert!(!m.has("Max-Forwards"));
    let m = Request::new("OPTIONS", "sip:h")
        .without("Content-Length")
        .without("Via")
        .to_msg();
    assert!(!m.has("Content-Length") && !m.has("Via"));
}

#[test]
fn response_builder_copies() {
    let req = SipMsg::parse(FOLDED.as_bytes()).unwrap();
    let ok = Response::to(&req, 200, "OK").to_tag("t1").to_msg();
    assert_eq!(ok.code(), 200);
    assert_eq!(ok.values("Via"), req.values("Via"));
    assert_eq!(ok.headers("Via"), req.headers("Via"));
    assert_eq!(ok.from(), req.from());
    assert_eq!(ok.to(), "Bob <sip:bob@example.com>;tag=t1");
    assert_eq!(ok.call_id(), req.call_id());
    assert_eq!(ok.hdr("CSeq"), "314159 INVITE");
    assert_eq!(ok.headers("Record-Route"), req.headers("Record-Route"));
    assert!(ok.has("Contact"));
    assert_eq!(ok.hdr("Content-Length"), "0");

    let trying = Response::to(&req, 100, "Trying").to_msg();
    assert_eq!(trying.to_tag(), None);
    assert!(!trying.has("Record-Route") && !trying.has("Contact"));

    let busy = Response::to(&req, 486, "Busy Here")
        .header("Retry-After", "5")
        .to_msg();
    assert!(busy.to_tag().is_some());
    assert!(!busy.has("Record-Route") && !busy.has("Contact"));
    assert_eq!(busy.hdr("Retry-After"), "5");

    // A To tag already present is kept.
    let mut inside = req.clone();
    inside.set_header("To", "<sip:bob@example.com>;tag=old");
    let r = Response::to(&inside, 200, "OK").to_tag("new").to_msg();
    assert_eq!(r.to_tag().as_deref(), Some("old"));

    // Destination: the request's top Via (received/rport) when no source is known.
    assert_eq!(
        Response::to(&req, 200, "OK").to_msg().remote,
        None,
        "to_msg has no remote"
    );
}

#[test]
fn sipmsg_mutation_roundtrip() {
    let mut m = SipMsg::parse(FOLDED.as_bytes()).unwrap();
    assert_eq!(
        m.pop_first_value("Via").unwrap(),
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKaaa;rport"
    );
    assert_eq!(m.values("Via").len(), 2);
    m.prepend_header("Via", "SIP/2.0/UDP p;branch=z9hG4bKp");
    m.remove_header("x-custom");
    m.set_header("Subject", "s");
    let back = SipMsg::parse(&m.to_bytes()).unwrap();
    assert_eq!(back.branch().as_deref(), Some("z9hG4bKp"));
    assert_eq!(back.values("Via").len(), 3);
    assert!(!back.has("X-Custom"));
    assert_eq!(back.hdr("Subject"), "s");
    assert_eq!(back.hdr("l"), "4");
    assert_eq!(back.body, m.body);
}

// ---------------------------------------------------------------------------
// peer.rs
// ---------------------------------------------------------------------------

#[test]
fn direct_call_with_dialog() {
    let alice = UdpPeer::bind().named("alice");
    let bob = UdpPeer::bind().named("bob");
    let inv = alice.send_msg_to(
        Request::new("INVITE", &bob.uri("bob"))
            .from(&alice.uri("alice"))
            .sdp(sdp(alice.addr())),
        bob.addr(),
    );
    let got = bob.expect_request("INVITE", WAIT);
    assert_eq!(got.from(), inv.from());
    assert_eq!(got.remote, Some(alice.addr()));
    bob.reply(&got, 100, "Trying", &[]);
    let ringing = Response::to(&got, 180, "Ringing");
    let bob_tag = ringing.get_to_tag().unwrap();
    bob.send(ringing);
    let ok = bob.send(
        Response::to(&got, 200, "OK")
            .to_tag(&bob_tag)
            .sdp(sdp(bob.addr())),
    );
    assert_eq!(ok.to_tag().as_deref(), Some(bob_tag.as_str()));

    // 100 is ignored, 180 and 200 arrive.
    let r180 = alice.expect_response(180, WAIT);
    let r200 = alice.expect_response_to(&inv, 200, WAIT);
    assert_eq!(r180.to_tag(), r200.to_tag());

    let mut a = Dialog::caller(&inv, &r200);
    let mut b = Dialog::callee(&got, &ok);
    assert_eq!(a.remote_target, bob.uri("tester"));
    assert_eq!(a.next_hop(), Some(bob.addr()));
    assert!(a.route_set.is_empty());
    alice.send(a.ack(&r200));
    let ack = bob.expect_request("ACK", WAIT);
    b.on_request(&ack);
    assert_eq!(ack.cseq(), (inv.cseq().0, "ACK".into()));
    assert_ne!(ack.branch(), inv.branch());

    // BYE from the callee.
    let bye = bob.send(b.bye());
    let got_bye = alice.expect_request("BYE", WAIT);
    a.on_request(&got_bye);
    assert_eq!(got_bye.ruri(), alice.uri("tester"));
    assert_eq!(got_bye.from(), ok.to());
    assert_eq!(got_bye.to(), inv.from());
    assert_eq!(got_bye.cseq(), (101, "BYE".into()));
    alice.reply(&got_bye, 200, "OK", &[]);
    bob.expect_response_to(&bye, 200, WAIT);
    alice.expect_nothing(QUIET);
    bob.expect_nothing(QUIET);
}

/// A stateless record-routing proxy (RFC 3261 §16.11) for the dialog tests.
fn spawn_proxy() -> Server {
    let peer = UdpPeer::bind().named("proxy");
    let me = peer.addr();
    let rr = format!("<sip:{me};lr;ftag=x>");
    Server::spawn(peer, move |peer, m| {
        let mut m = m.clone();
        if m.is_request() {
            let ours = |r: &str| Uri::parse(uri_of(r)).and_then(|u| u.socket_addr()) == Some(me);
            if m.values("Route").first().is_some_and(|r| ours(r)) {
                m.pop_first_value("Route");
            }
            let next = match m.values("Route").first() {
                Some(r) => Uri::parse(uri_of(r)).unwrap().socket_addr().unwrap(),
                None => Uri::parse(m.ruri()).unwrap().socket_addr().unwrap(),
            };
            if m.method() == "INVITE" && m.to_tag().is_none() {
                m.prepend_header("Record-Route", &rr);
            }
            m.prepend_header("Via", &format!("SIP/2.0/UDP {me};branch={}", new_branch()));
            peer.send_msg_to(&m, next);
        } else {
            m.pop_first_value("Via");
            let next = via_addr(&m.top_via().unwrap()).unwrap();
            peer.send_msg_to(&m, next);
        }
    })
}

#[test]
fn dialog_through_record_routing_proxy() {
    let proxy = spawn_proxy();
    let caller = UdpPeer::bind().named("caller").with_target(proxy.addr());
    let callee = UdpPeer::bind().named("callee");

    let inv = caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from("sip:alice@a.example")
            .to("sip:bob@b"),
    );
    let got = callee.expect_request("INVITE", WAIT);
    assert_eq!(got.values("Via").len(), 2);
    assert_eq!(got.values("Record-Route").len(), 1);
    let ok = callee.send(Response::to(&got, 200, "OK").contact(&callee.contact("bob")));
    let r200 = caller.expect_response(200, WAIT);
    assert_eq!(r200.values("Via").len(), 1);
    assert_eq!(r200.headers("Record-Route"), got.headers("Record-Route"));

    let mut a = Dialog::caller(&inv, &r200);
    let mut b = Dialog::callee(&got, &ok);
    assert_eq!(a.next_hop(), Some(proxy.addr()));
    assert_eq!(b.next_hop(), Some(proxy.addr()));
    assert_eq!(a.remote_target, callee.uri("bob"));

    caller.send(a.ack(&r200));
    let ack = callee.expect_request("ACK", WAIT);
    b.on_request(&ack);
    assert_eq!(ack.ruri(), callee.uri("bob"));
    assert!(!ack.has("Route"), "proxy popped its Route");

    // re-INVITE from the callee, with a new contact (target refresh).
    b.local_contact = Some(format!("<sip:bob2@{}>", callee.addr()));
    let reinv = callee.send(b.reinvite().sdp(sdp(callee.addr())));
    let got_re = caller.expect_request("INVITE", WAIT);
    a.on_request(&got_re);
    assert_eq!(a.remote_target, format!("sip:bob2@{}", callee.addr()));
    assert_eq!(got_re.ruri(), caller.uri("tester"));
    let re_ok = caller.send(Response::to(&got_re, 200, "OK").sdp(sdp(caller.addr())));
    let re_200 = callee.expect_response_to(&reinv, 200, WAIT);
    b.on_response(&re_200);
    callee.send(b.ack(&re_200));
    let re_ack = caller.expect_request("ACK", WAIT);
    a.on_request(&re_ack);
    assert_eq!(re_ack.cseq().0, reinv.cseq().0);
    let _ = re_ok;

    // re-INVITE from the caller, then BYE from the caller.
    let reinv2 = caller.send(a.reinvite());
    assert_eq!(reinv2.cseq(), (inv.cseq().0 + 1, "INVITE".into()));
    assert_eq!(reinv2.ruri(), format!("sip:bob2@{}", callee.addr()));
    assert_eq!(reinv2.hdr("Route"), got.hdr("Record-Route"));
    let g = callee.expect_request("INVITE", WAIT);
    b.on_request(&g);
    let ok2 = callee.send(Response::to(&g, 200, "OK"));
    let r = caller.expect_response(200, WAIT);
    caller.send(a.ack(&r));
    callee.expect_request("ACK", WAIT);
    let _ = ok2;

    let bye = caller.send(a.bye());
    let gb = callee.expect_request("BYE", WAIT);
    b.on_request(&gb);
    callee.reply(&gb, 200, "OK", &[]);
    caller.expect_response_to(&bye, 200, WAIT);
    caller.expect_nothing(QUIET);
    callee.expect_nothing(QUIET);
}

#[test]
fn ack_non2xx_and_cancel() {
    let a = UdpPeer::bind();
    let b = UdpPeer::bind();
    let inv = a.send_msg_to(
        Request::new("INVITE", &b.uri("b")).route("<sip:x;lr>"),
        b.addr(),
    );
    let got = b.expect_request("INVITE", WAIT);
    let c = a.send(Request::cancel(&inv));
    let gc = b.expect_request("CANCEL", WAIT);
    assert_eq!(gc.branch(), inv.branch());
    assert_eq!(gc.cseq(), (inv.cseq().0, "CANCEL".into()));
    assert_eq!(gc.to(), inv.to());
    assert_eq!(gc.hdr("Route"), "<sip:x;lr>");
    b.reply(&gc, 200, "OK", &[]);
    a.expect_response_to(&c, 200, WAIT);
    b.reply(&got, 487, "Request Terminated", &[]);
    let r487 = a.expect_response(487, WAIT);
    a.send(Request::ack_non2xx(&inv, &r487));
    let ack = b.expect_request("ACK", WAIT);
    assert_eq!(ack.branch(), inv.branch());
    assert_eq!(ack.to(), r487.to());
    assert_eq!(ack.ruri(), inv.ruri());
    assert_eq!(ack.cseq(), (inv.cseq().0, "ACK".into()));
    assert_eq!(ack.values("Via").len(), 1);
}

#[test]
fn buffering_retransmissions_and_failures() {
    let a = UdpPeer::bind()
        .named("a")
        .with_target(UdpPeer::bind().addr());
    let b = UdpPeer::bind().named("b");
    let bye = a.send_msg_to(Request::new("BYE", "sip:b@h"), b.addr());
    a.retransmit(&bye);
    a.send_msg_to(Request::new("INFO", "sip:b@h"), b.addr());
    // INFO first: BYE is buffered, its retransmission skipped.
    b.expect_request("INFO", WAIT);
    assert_eq!(b.pending().len(), 1);
    let got = b.expect_request("BYE", WAIT);
    assert_eq!(got.call_id(), bye.call_id());
    b.expect_nothing(ms(100));

    // Retransmissions delivered when asked.
    b.set_skip_retransmissions(false);
    a.retransmit(&bye);
    b.expect_request("BYE", WAIT);

    // 100 Trying hidden from expect_nothing and expect_response(200).
    b.reply(&got, 100, "Trying", &[]);
    a.expect_nothing(ms(100));
    b.reply(&got, 100, "Trying", &[]);
    b.reply(&got, 200, "OK", &[]);
    a.expect_response(200, WAIT);
    a.set_ignore_100(false);
    let t = a.send_msg_to(Request::new("OPTIONS", "sip:b@h"), b.addr());
    let gt = b.expect_request("OPTIONS", WAIT);
    b.reply(&gt, 100, "Trying", &[]);
    assert_eq!(a.expect_response_to(&t, 100, WAIT).code(), 100);

    // Timeout panics with what arrived instead; that message stays buffered.
    a.send_msg_to(Request::new("NOTIFY", "sip:b@h"), b.addr());
    let err = catch_unwind(AssertUnwindSafe(|| b.expect_request("SUBSCRIBE", ms(200))))
        .expect_err("must time out");
    let text = err.downcast_ref::<String>().unwrap();
    assert!(text.contains("waiting for request SUBSCRIBE"), "{text}");
    assert!(text.contains("NOTIFY sip:b@h SIP/2.0"), "{text}");
    assert!(text.contains("SIP log of b@"), "{text}");
    b.expect_request("NOTIFY", ms(10));

    let err = catch_unwind(AssertUnwindSafe(|| {
        a.send_msg_to(Request::new("PUBLISH", "sip:b@h"), b.addr());
        b.expect_nothing(ms(200))
    }))
    .expect_err("must fail");
    assert!(err.downcast_ref::<String>().unwrap().contains("PUBLISH"));

    // Raw bytes and unparseable datagrams.
    a.send_to(b"garbage\r\n\r\n", b.addr());
    assert!(b.recv(ms(100)).is_none());
    assert!(b.log_text().contains("unparseable"));
    a.send_to(b"OPTIONS sip:x SIP/2.0\r\n\r\n", b.addr());
    let (m, src) = b.recv(WAIT).unwrap();
    assert_eq!((m.method(), src), ("OPTIONS", a.addr()));
    assert!(a.log_text().contains("-> "));
}

#[test]
fn server_collects_requests() {
    let mut srv = Server::spawn(UdpPeer::bind().named("echo"), |p, m| {
        if m.is_request() {
            p.reply(m, 202, "Accepted", &[("X-Seen", m.method())]);
        }
    });
    let c = UdpPeer::bind().with_target(srv.addr());
    c.send(Request::new("MESSAGE", &srv.uri("x")).body("hi"));
    let r = c.expect_response(202, WAIT);
    assert_eq!(r.hdr("X-Seen"), "MESSAGE");
    let got = srv.wait_requests("MESSAGE", 1, WAIT);
    assert_eq!(got[0].body_str(), "hi");
    assert!(srv.received()[0].elapsed < WAIT);
    srv.stop();
}

// ---------------------------------------------------------------------------
// Registrar and Uas
// ---------------------------------------------------------------------------

/// REGISTER as a UA would, answering one challenge.
fn register(ua: &UdpPeer, reg_uri: &str, pass: &str, expires: u32) -> (SipMsg, SipMsg) {
    let base = Request::new("REGISTER", reg_uri)
        .from("sip:alice@example.com")
        .to("sip:alice@example.com")
        .header("Expires", &expires.to_string());
    let first = ua.send(base.clone());
    let r401 = ua.expect_response_to(&first, 401, WAIT);
    let ch = r401.hdr("WWW-Authenticate");
    let authz = digest::authorize(ch, "REGISTER", reg_uri, "alice", pass, b"").unwrap();
    let second = ua.send(
        base.cseq(2)
            .branch(&new_branch())
            .header("Authorization", &authz),
    );
    let fin = ua.expect_final(WAIT);
    assert_eq!(fin.call_id(), second.call_id());
    (second, fin)
}

#[test]
fn registrar_digest_flow_and_expiry() {
    for alg in [
        "MD5",
        "MD5-sess",
        "SHA-256",
        "SHA-256-sess",
        "SHA-512-256",
        "SHA-512-256-sess",
    ] {
        let reg = RegistrarConfig::new("example.com", "alice", "secret")
            .algorithm(alg)
            .qop("auth")
            .opaque("op")
            .expires(60)
            .contact_expires(120)
            .start();
        let ua = UdpPeer::bind().with_target(reg.addr());
        let (_, ok) = register(&ua, &reg.uri(), "secret", 300);
        assert_eq!(ok.code(), 200, "{alg}");
        assert_eq!(ok.hdr("Expires"), "60");
        assert_eq!(param(ok.hdr("Contact"), "expires").as_deref(), Some("120"));
        assert_eq!(uri_of(ok.hdr("Contact")), ua.uri("tester"));
        let recs = reg.wait_registers(2, WAIT);
        assert_eq!(recs[0].reply, Some(401));
        assert!(!recs[0].has_credentials());
        assert_eq!(recs[1].reply, Some(200));
        assert_eq!(recs[1].auth, Some(Ok(())));
        assert_eq!(recs[1].expires(), Some(300));
        assert!(recs[1].elapsed >= recs[0].elapsed);
        assert_eq!(
            reg.last_challenge().unwrap().algorithm.as_deref(),
            Some(alg)
        );
    }
}

#[test]
fn registrar_scripted_replies() {
    let reg = RegistrarConfig::new("r", "alice", "secret")
        .then(RegAction::IntervalTooBrief(1800))
        .then(RegAction::reply(503, "Service Unavailable"))
        .then(RegAction::Ignore)
        .then(RegAction::Accept)
        .start();
    let ua = UdpPeer::bind().with_target(reg.addr());
    let r = || Request::new("REGISTER", &reg.uri()).header("Expires", "60");
    ua.send(r());
    assert_eq!(ua.expect_final(WAIT).hdr("Min-Expires"), "1800");
    ua.send(r());
    ua.expect_response(503, WAIT);
    ua.send(r());
    ua.expect_nothing(ms(200));
    ua.send(r());
    let ok = ua.expect_response(200, WAIT);
    assert_eq!(param(ok.hdr("Contact"), "expires").as_deref(), Some("60"));
    assert!(!ok.has("Expires"));

    // Default action is Auth: wrong password → 403; unknown nonce → stale 401.
    let (_, fin) = register(&ua, &reg.uri(), "wrong", 60);
    assert_eq!(fin.code(), 403);
    let recs = reg.registers();
    let last = recs.last().unwrap();
    assert!(
        last.auth
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap_err()
            .contains("wrong response")
    );
    let forged = digest::authorize(
        &Challenge::new("r").to_header_value(),
        "REGISTER",
        &reg.uri(),
        "alice",
        "secret",
        b"",
    )
    .unwrap();
    ua.send(r().header("Authorization", &forged));
    let stale = ua.expect_response(401, WAIT);
    assert!(
        Challenge::parse(stale.hdr("WWW-Authenticate"))
            .unwrap()
            .stale
    );

    // Unregister: 200 without Contact.
    reg.set_default(RegAction::Accept);
    ua.send(
        Request::new("REGISTER", &reg.uri())
            .contact("*")
            .header("Expires", "0"),
    );
    assert!(!ua.expect_response(200, WAIT).has("Contact"));
    assert_eq!(reg.count(), 8);
    reg.expect_no_register(ms(50));
}

#[test]
fn uas_answers_and_challenges() {
    let uas = UasConfig::default()
        .challenge(true, "proxy.example", "bob", "pw")
        .start();
    let c = UdpPeer::bind().named("caller").with_target(uas.addr());
    let ruri = uas.uri("bob");
    let inv = c.send(Request::new("INVITE", &ruri).sdp(sdp(c.addr())));
    let r407 = c.expect_response(407, WAIT);
    c.send(Request::ack_non2xx(&inv, &r407));
    let authz = digest::authorize(
        r407.hdr("Proxy-Authenticate"),
        "INVITE",
        &ruri,
        "bob",
        "pw",
        b"",
    )
    .unwrap();
    let inv2 = c.send(
        Request::new("INVITE", &ruri)
            .from_raw(inv.from())
            .call_id(inv.call_id())
            .cseq(2)
            .header("Proxy-Authorization", &authz),
    );
    c.expect_response(180, WAIT);
    let ok = c.expect_response(200, WAIT);
    assert_eq!(ok.hdr("Content-Type"), "application/sdp");
    let mut d = Dialog::caller(&inv2, &ok);
    c.send(d.ack(&ok));
    let bye = c.send(d.bye());
    c.expect_response_to(&bye, 200, WAIT);
    uas.wait_requests("BYE", 1, WAIT);
    assert_eq!(uas.wait_requests("ACK", 2, WAIT).len(), 2);
    assert_eq!(uas.auth_results(), vec![("INVITE".to_string(), Ok(()))]);

    let plain = Uas::start(UasConfig::default().no_ring().answer(486, "Busy Here"));
    let c2 = UdpPeer::bind().with_target(plain.addr());
    c2.send(Request::new("INVITE", &plain.uri("x")));
    assert_eq!(c2.expect_final(WAIT).code(), 486);
    c2.expect_nothing(ms(100));
}

// ---------------------------------------------------------------------------
// digest.rs: RFC vectors
// ---------------------------------------------------------------------------

#[test]
fn rfc2617_section_3_5() {
    let authz = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
    digest::verify(
        authz,
        "GET",
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        b"",
    )
    .unwrap();
    let ch = Challenge::new("testrealm@host.com")
        .nonce("dcd98b7102dd2f0e8b11d0f600bfb0c093")
        .qop("auth,auth-int")
        .opaque("5ccc069c403ebaf9f0171e9517f40e41");
    ch.verify(authz, "GET", "Mufasa", "Circle Of Life", b"")
        .unwrap();
    let e = digest::verify(
        authz,
        "GET",
        "Mufasa",
        "testrealm@host.com",
        "circle of life",
        b"",
    );
    assert!(e.unwrap_err().contains("wrong response"));
    assert!(
        digest::verify(
            authz,
            "POST",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            b""
        )
        .is_err()
    );
    assert!(
        digest::verify(
            authz,
            "GET",
            "Simba",
            "testrealm@host.com",
            "Circle Of Life",
            b""
        )
        .unwrap_err()
        .contains("username")
    );
    assert!(
        ch.clone()
            .nonce("other")
            .verify(authz, "GET", "Mufasa", "Circle Of Life", b"")
            .is_err()
    );
    assert!(
        ch.clone()
            .opaque("x")
            .verify(authz, "GET", "Mufasa", "Circle Of Life", b"")
            .is_err()
    );
    assert!(
        ch.clone()
            .qop("auth-int")
            .verify(authz, "GET", "Mufasa", "Circle Of Life", b"")
            .is_err()
    );
    assert!(
        ch.clone()
            .algorithm("SHA-256")
            .verify(authz, "GET", "Mufasa", "Circle Of Life", b"")
            .is_err()
    );
}

const RFC7616_CHALLENGE: &str = r#"Digest
    realm="http-auth@example.org",
    qop="auth, auth-int",
    algorithm=SHA-256,
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

fn rfc7616_authz(alg: &str, response: &str) -> String {
    format!(
        r#"Digest username="Mufasa",
    realm="http-auth@example.org",
    uri="/dir/index.html",
    algorithm={alg},
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    nc=00000001,
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    qop=auth,
    response="{response}",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
    )
}

#[test]
fn rfc7616_section_3_9_1() {
    let pw = "Circle of Life";
    let realm = "http-auth@example.org";
    let md5 = rfc7616_authz("MD5", "8ca523f5e9506fed4657c9700eebdbec");
    let sha = rfc7616_authz(
        "SHA-256",
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
    );
    digest::verify(&md5, "GET", "Mufasa", realm, pw, b"").unwrap();
    digest::verify(&sha, "GET", "Mufasa", realm, pw, b"").unwrap();
    let ch = Challenge::parse(RFC7616_CHALLENGE).unwrap();
    assert_eq!(ch.qops(), vec!["auth", "auth-int"]);
    ch.verify(&sha, "GET", "Mufasa", pw, b"").unwrap();
    // The MD5 credentials do not answer the SHA-256 challenge.
    assert!(
        ch.verify(&md5, "GET", "Mufasa", pw, b"")
            .unwrap_err()
            .contains("algorithm")
    );
    // Round trip of the challenge text.
    assert_eq!(Challenge::parse(&ch.to_header_value()).unwrap(), ch);
    // The client side reproduces the vector.
    let mine = digest::authorize_with(
        RFC7616_CHALLENGE,
        "GET",
        "/dir/index.html",
        "Mufasa",
        pw,
        b"",
        Some("auth"),
        Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
    )
    .unwrap();
    let p = digest::parse_authorization(&mine).unwrap();
    assert_eq!(
        p["response"],
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc7616_section_3_9_2_userhash_sha512_256() {
    let realm = "api@example.org";
    let user = "J\u{e4}s\u{f8}n Doe";
    let uh = digest::h("SHA-512-256", format!("{user}:{realm}").as_bytes()).unwrap();
    assert_eq!(
        uh,
        "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    );
    let input = DigestInput {
        algorithm: Some("SHA-512-256"),
        username: user,
        realm,
        password: "Secret, or not?",
        method: "GET",
        uri: "/doe.json",
        nonce: "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
        qop: Some("auth"),
        nc: "00000001",
        cnonce: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
        body: b"",
    };
    let resp = input.response().unwrap();
    assert_eq!(
        resp,
        "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    );
}

#[test]
fn digest_roundtrips_all_algorithms_and_qops() {
    let body = b"v=0\r\n";
    for alg in [
        None,
        Some("MD5"),
        Some("MD5-sess"),
        Some("SHA-256"),
        Some("SHA-256-sess"),
        Some("SHA-512-256"),
        Some("SHA-512-256-sess"),
    ] {
        for qop in [None, Some("auth"), Some("auth-int"), Some("auth,auth-int")] {
            for userhash in [false, true] {
                let mut ch = Challenge::new("sip.example")
                    .opaque("o\"q")
                    .userhash(userhash);
                if let Some(a) = alg {
                    ch = ch.algorithm(a);
                }
                if let Some(q) = qop {
                    ch = ch.qop(q);
                }
                let hv = ch.to_header_value();
                let pref = if qop == Some("auth,auth-int") {
                    Some("auth-int")
                } else {
                    None
                };
                let authz =
                    digest::authorize_with(&hv, "INVITE", "sip:b@h", "bob", "pw", body, pref, None)
                        .unwrap();
                let what = format!("{hv} / {authz}");
                ch.verify(&authz, "INVITE", "bob", "pw", body).expect(&what);
                let err = ch.verify(&authz, "INVITE", "bob", "pw2", body).unwrap_err();
                assert!(err.contains("wrong response"), "{what}: {err}");
                if qop.is_some_and(|q| q.contains("auth-int")) {
                    assert!(
                        ch.verify(&authz, "INVITE", "bob", "pw", b"x").is_err(),
                        "{what}"
                    );
                }
                if userhash {
                    assert!(!authz.contains("\"bob\""), "{authz}");
                }
            }
        }
    }
}

#[test]
fn digest_verify_request_and_malformed() {
    let ch = Challenge::new("r").qop("auth");
    let ruri = "sip:bob@127.0.0.1:5060";
    let authz = digest::authorize(&ch.to_header_value(), "INVITE", ruri, "bob", "pw", b"").unwrap();
    let req = Request::new("INVITE", ruri)
        .header("Proxy-Authorization", &authz)
        .to_msg();
    ch.verify_request(&req, "bob", "pw").unwrap();
    let other = Request::new("INVITE", "sip:bob@elsewhere")
        .header("Authorization", &authz)
        .to_msg();
    assert!(
        ch.verify_request(&other, "bob", "pw")
            .unwrap_err()
            .contains("Request-URI")
    );
    let none = Request::new("INVITE", ruri).to_msg();
    assert!(ch.verify_request(&none, "bob", "pw").is_err());

    for bad in [
        "",
        "Basic dXNlcjpwYXNz",
        "Digest username=\"a",
        "Digest username",
        "Digest username=a, username=b",
        "Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
    ] {
        assert!(
            digest::verify(bad, "INVITE", "a", "r", "p", b"").is_err(),
            "{bad:?}"
        );
    }
    let (scheme, p) = digest::parse_params("Digest  a=1,b=\"x\\\"y, z\" ,  c = tok ").unwrap();
    assert_eq!(scheme, "Digest");
    assert_eq!(
        (p["a"].as_str(), p["b"].as_str(), p["c"].as_str()),
        ("1", "x\"y, z", "tok")
    );
    // qop with no cnonce / nc.
    let no_cnonce = authz.replace("cnonce=", "xcnonce=");
    assert!(digest::verify(&no_cnonce, "INVITE", "bob", "r", "pw", b"").is_err());
}

#[test]
fn registrar_proxy_auth_with_userhash() {
    let reg = RegistrarConfig::new("example.com", "alice", "secret")
        .proxy_auth()
        .algorithm("SHA-256")
        .qop("auth-int")
        .with_challenge(|c| c.userhash(true))
        .start();
    let ua = UdpPeer::bind().with_target(reg.addr());
    let base = Request::new("REGISTER", &reg.uri()).header("Expires", "60");
    let first = ua.send(base.clone());
    let r407 = ua.expect_response_to(&first, 407, WAIT);
    let ch = r407.hdr("Proxy-Authenticate");
    assert!(Challenge::parse(ch).unwrap().userhash);
    let authz = digest::authorize(ch, "REGISTER", &reg.uri(), "alice", "secret", b"").unwrap();
    let second = base
        .cseq(2)
        .branch(&new_branch())
        .header("Proxy-Authorization", &authz);
    ua.send(second);
    ua.expect_response(200, WAIT);
    let recs = reg.wait_registers(2, WAIT);
    assert_eq!(recs[1].auth, Some(Ok(())));
    assert!(recs[1].has_credentials());
}
