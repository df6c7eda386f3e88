//! From/To replacement and restore (admin guide 3.1-3.7, 4.1-4.6) through a
//! real record-routing Kamailio: caller peer -> Kamailio -> callee peer, with
//! every message each peer receives checked.

mod common;

use common::kamailio::{Config, Kamailio};
use common::peer::{UdpPeer, WAIT};
use common::sip::{Dialog, Request, Response, SipMsg, new_tag, sdp};

/// Which header the proxy replaces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum H {
    From,
    To,
}

/// The proxy: record-routes initial requests, runs `action` on them, and
/// loose-routes sequential ones. `action` may call uac_replace_* etc.
fn routes(action: &str, seq_action: &str) -> String {
    format!(
        r#"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{
            {seq_action}
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{ t_relay(); }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{ t_relay(); }}
        exit;
    }}
    {action}
    if (!t_relay()) {{ sl_reply_error(); }}
}}
"#
    )
}

fn cfg(params: &str, action: &str, seq_action: &str) -> Config {
    let body = format!(
        "modparam(\"rr\", \"append_fromtag\", 1)\n{params}\n{}",
        routes(action, seq_action)
    );
    Config::new(&body)
}

/// The name-addr part of a From/To value (without its parameters).
fn addr_of(v: &str) -> &str {
    let v = v.trim();
    if let Some(lt) = v.find('<')
        && let Some(gt) = v[lt..].find('>')
    {
        return v[..lt + gt + 1].trim();
    }
    v.split(';').next().unwrap_or(v).trim()
}

/// Params of a From/To value (everything after the name-addr).
fn params_of(v: &str) -> &str {
    let a = addr_of(v);
    let start = v.find(a).map_or(0, |i| i + a.len());
    v[start..].trim()
}

struct Call {
    /// What the caller sends in the replaced header and what the callee must
    /// see there instead (initial transaction, and every reply).
    orig: String,
    new: String,
    h: H,
    /// What the callee sees in sequential requests from the caller, and the
    /// caller in sequential requests from the callee. With the RR parameter
    /// only the URI is swapped (the parameter carries no display name, as in
    /// C), so the sender's display name stays.
    seq_down: String,
    seq_up: String,
}

impl Call {
    /// The header carrying the replaced identity in a message of `dir`
    /// (downstream: caller -> callee, and replies to it).
    fn hdr_name(&self, downstream: bool) -> &'static str {
        match (self.h, downstream) {
            (H::From, true) | (H::To, false) => "From",
            _ => "To",
        }
    }

    /// Checks a message the caller (`at_callee` false) or callee received.
    fn check(&self, m: &SipMsg, downstream: bool, at_callee: bool) {
        let sequential = m.is_request() && m.to_tag().is_some() && m.method() != "CANCEL";
        self.check_as(m, downstream, at_callee, sequential)
    }

    fn check_as(&self, m: &SipMsg, downstream: bool, at_callee: bool, sequential: bool) {
        let name = self.hdr_name(downstream);
        let want = match (at_callee, sequential) {
            (true, false) => &self.new,
            (false, false) => &self.orig,
            (true, true) => &self.seq_down,
            (false, true) => &self.seq_up,
        };
        let got = m.hdr(name);
        assert_eq!(
            addr_of(got),
            want.as_str(),
            "{name} seen by the {} in {}:\n{m}",
            if at_callee { "callee" } else { "caller" },
            m.summary()
        );
    }
}

const CALLER_FROM: &str = "\"Alice\" <sip:alice@a.example>";
const CALLEE_TO: &str = "<sip:bob@b.example>";

/// Both ends of an established call.
struct Est {
    caller: UdpPeer,
    callee: UdpPeer,
    a: Dialog,
    b: Dialog,
    inv: SipMsg,
}

/// INVITE/180/200/ACK through `k`, checking every message.
fn establish(k: &Kamailio, c: &Call, from: &str, to: &str) -> Est {
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");

    let inv = caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from(from)
            .to_raw(to)
            .sdp(sdp(caller.addr())),
    );
    let got = callee.expect_request("INVITE", WAIT);
    c.check(&got, true, true);
    // Tags and header parameters survive.
    assert_eq!(params_of(got.from()), params_of(inv.from()));
    assert_eq!(got.from_tag(), inv.from_tag());
    assert_eq!(got.values("Record-Route").len(), 1);

    let t = new_tag();
    callee.send(Response::to(&got, 180, "Ringing").to_tag(&t));
    let r180 = caller.expect_response(180, WAIT);
    c.check(&r180, true, false);
    assert_eq!(r180.to_tag().as_deref(), Some(t.as_str()));
    let ok = callee.send(
        Response::to(&got, 200, "OK")
            .to_tag(&t)
            .contact(&callee.contact("bob"))
            .sdp(sdp(callee.addr())),
    );
    let r200 = caller.expect_response(200, WAIT);
    c.check(&r200, true, false);
    assert_eq!(
        r200.hdr("From"),
        inv.from(),
        "caller gets its own From back"
    );

    let a = Dialog::caller(&inv, &r200);
    let mut b = Dialog::callee(&got, &ok);
    caller.send(a.ack(&r200));
    let ack = callee.expect_request("ACK", WAIT);
    b.on_request(&ack);
    c.check(&ack, true, true);
    Est {
        caller,
        callee,
        a,
        b,
        inv,
    }
}

/// re-INVITE both ways, then BYE from `bye_from_callee`'s side.
fn in_dialog(e: &mut Est, c: &Call, bye_from_callee: bool) {
    let Est {
        caller,
        callee,
        a,
        b,
        ..
    } = e;
    // re-INVITE from the caller.
    let re1 = caller.send(a.reinvite().sdp(sdp(caller.addr())));
    let g = callee.expect_request("INVITE", WAIT);
    b.on_request(&g);
    c.check(&g, true, true);
    callee.send(Response::to(&g, 200, "OK").contact(&callee.contact("bob")));
    let r = caller.expect_response_to(&re1, 200, WAIT);
    c.check(&r, true, false);
    a.on_response(&r);
    caller.send(a.ack(&r));
    let g = callee.expect_request("ACK", WAIT);
    c.check(&g, true, true);

    // re-INVITE from the callee: it uses the identity it saw.
    let re2 = callee.send(b.reinvite().sdp(sdp(callee.addr())));
    let g = caller.expect_request("INVITE", WAIT);
    a.on_request(&g);
    c.check(&g, false, false);
    caller.send(Response::to(&g, 200, "OK").contact(&caller.contact("alice")));
    let r = callee.expect_response_to(&re2, 200, WAIT);
    c.check(&r, false, true);
    b.on_response(&r);
    callee.send(b.ack(&r));
    let g = caller.expect_request("ACK", WAIT);
    c.check(&g, false, false);

    if bye_from_callee {
        let bye = callee.send(b.bye());
        let g = caller.expect_request("BYE", WAIT);
        a.on_request(&g);
        c.check(&g, false, false);
        caller.send(Response::to(&g, 200, "OK"));
        let r = callee.expect_response_to(&bye, 200, WAIT);
        c.check(&r, false, true);
    } else {
        let bye = caller.send(a.bye());
        let g = callee.expect_request("BYE", WAIT);
        b.on_request(&g);
        c.check(&g, true, true);
        callee.send(Response::to(&g, 200, "OK"));
        let r = caller.expect_response_to(&bye, 200, WAIT);
        c.check(&r, true, false);
    }
}

/// A whole call: INVITE/180/200/ACK, re-INVITE both ways, BYE from
/// `bye_from_callee`'s side. Checks every message both peers receive.
fn full_call(k: &Kamailio, c: &Call, from: &str, to: &str, bye_from_callee: bool) {
    let mut e = establish(k, c, from, to);
    in_dialog(&mut e, c, bye_from_callee);
}

/// CANCEL of a pending INVITE: CANCEL and the hop-by-hop ACK reach the callee
/// with the new identity; 180/487 reach the caller with the original.
fn cancelled_call(k: &Kamailio, c: &Call, from: &str, to: &str) {
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");
    let inv = caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from(from)
            .to_raw(to),
    );
    let got = callee.expect_request("INVITE", WAIT);
    c.check(&got, true, true);
    let t = new_tag();
    callee.send(Response::to(&got, 180, "Ringing").to_tag(&t));
    let r180 = caller.expect_response(180, WAIT);
    c.check(&r180, true, false);

    let cancel = caller.send(Request::cancel(&inv));
    let r = caller.expect_response_to(&cancel, 200, WAIT);
    c.check(&r, true, false);
    let gc = callee.expect_request("CANCEL", WAIT);
    c.check(&gc, true, true);
    callee.send(Response::to(&gc, 200, "OK"));
    callee.send(Response::to(&got, 487, "Request Terminated").to_tag(&t));
    let r487 = caller.expect_response(487, WAIT);
    c.check(&r487, true, false);
    // tm's own ACK for the 487, built from the INVITE as forwarded.
    let ack = callee.expect_request("ACK", WAIT);
    c.check_as(&ack, true, true, false);
    caller.send(Request::ack_non2xx(&inv, &r487));
}

/// `display <uri>` of a name-addr with the URI of another one.
fn swap_uri(display_from: &str, uri_from: &str) -> String {
    let uri = |a: &str| {
        let a = addr_of(a);
        match (a.find('<'), a.rfind('>')) {
            (Some(l), Some(g)) => a[l + 1..g].to_string(),
            _ => a.to_string(),
        }
    };
    let a = addr_of(display_from);
    match a.find('<') {
        Some(l) => format!("{}<{}>", &a[..l], uri(uri_from)),
        None => uri(uri_from),
    }
}

/// RR-parameter mode: full swap in the initial transaction and replies, URI
/// only in sequential requests.
fn rr_call(h: H, orig: &str, new: &str) -> Call {
    Call {
        orig: orig.into(),
        new: new.into(),
        h,
        seq_down: swap_uri(orig, new),
        seq_up: swap_uri(new, orig),
    }
}

/// Dialog mode: display and URI swapped everywhere.
fn dlg_call(h: H, orig: &str, new: &str) -> Call {
    Call {
        orig: orig.into(),
        new: new.into(),
        h,
        seq_down: new.into(),
        seq_up: orig.into(),
    }
}

fn from_call(new: &str) -> Call {
    rr_call(H::From, CALLER_FROM, new)
}

fn to_call(new: &str) -> Call {
    rr_call(H::To, CALLEE_TO, new)
}

const ANON: &str = "uac_replace_from(\"\\\"Anon\\\"\", \"sip:anon@anon.invalid\");";
const ANON_ADDR: &str = "\"Anon\" <sip:anon@anon.invalid>";
const CARRIER: &str = "uac_replace_to(\"sip:+4930123@carrier.example;user=phone\");";
const CARRIER_ADDR: &str = "<sip:+4930123@carrier.example;user=phone>";

fn rr_then(action: &str) -> String {
    format!("record_route(); {action}")
}

// ---------------------------------------------------------------------------
// auto mode, RR parameter

#[test]
fn auto_from_no_passwd() {
    let k = Kamailio::start(cfg("", &rr_then(ANON), ""));
    let c = from_call(ANON_ADDR);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
    cancelled_call(&k, &c, CALLER_FROM, CALLEE_TO);
}

#[test]
fn auto_from_with_passwd_replace_before_record_route() {
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_passwd\", \"s3cr3t\")",
        &format!("{ANON} record_route();"),
        "",
    ));
    let c = from_call(ANON_ADDR);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
}

#[test]
fn auto_to_with_passwd() {
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_passwd\", \"s3cr3t\")",
        &rr_then(CARRIER),
        "",
    ));
    let c = to_call(CARRIER_ADDR);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
    cancelled_call(&k, &c, CALLER_FROM, CALLEE_TO);
}

#[test]
fn auto_to_no_passwd_bare_uri_with_params() {
    // To without <> and a From with URI parameters: stays well-formed.
    let k = Kamailio::start(cfg(
        "",
        &rr_then("uac_replace_to(\"Carrier\", \"sip:x@c.example\");"),
        "",
    ));
    let c = rr_call(H::To, "sip:bob@b.example", "Carrier <sip:x@c.example>");
    full_call(
        &k,
        &c,
        "<sip:alice@a.example;user=phone>",
        "sip:bob@b.example",
        true,
    );
}

// ---------------------------------------------------------------------------
// manual and none

#[test]
fn manual_from_with_uac_restore_from() {
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_mode\", \"manual\")",
        &rr_then(ANON),
        "uac_restore_from();",
    ));
    let c = from_call(ANON_ADDR);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
}

#[test]
fn manual_to_with_uac_restore_to() {
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_mode\", \"manual\")\nmodparam(\"uac\", \"restore_passwd\", \"pw\")",
        &rr_then(CARRIER),
        "uac_restore_to();",
    ));
    full_call(&k, &to_call(CARRIER_ADDR), CALLER_FROM, CALLEE_TO, true);
}

#[test]
fn manual_without_restore_call_leaves_sequential_requests() {
    // manual mode and the script does not call uac_restore_from(): the
    // sequential requests pass unchanged (the replies of the INVITE are
    // still restored).
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_mode\", \"manual\")",
        &rr_then(ANON),
        "",
    ));
    let c = Call {
        seq_down: CALLER_FROM.into(),
        seq_up: ANON_ADDR.into(),
        ..from_call(ANON_ADDR)
    };
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
}

#[test]
fn none_mode_replaces_without_state() {
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_mode\", \"none\")",
        &rr_then(ANON),
        "",
    ));
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");
    let inv = caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from(CALLER_FROM)
            .to_raw(CALLEE_TO),
    );
    let got = callee.expect_request("INVITE", WAIT);
    assert_eq!(addr_of(got.from()), ANON_ADDR);
    assert!(!got.hdr("Record-Route").contains("vsf="), "{got}");
    callee.send(Response::to(&got, 486, "Busy Here"));
    // Nothing stored, nothing restored: the reply keeps the new From.
    let r = caller.expect_response(486, WAIT);
    assert_eq!(addr_of(r.from()), ANON_ADDR);
    caller.send(Request::ack_non2xx(&inv, &r));
}

// ---------------------------------------------------------------------------
// restore_dlg=1

fn dlg_cfg(params: &str, action: &str) -> Config {
    cfg(
        &format!("modparam(\"uac\", \"restore_dlg\", 1)\n{params}"),
        &format!("dlg_manage(); record_route(); {action}"),
        "",
    )
    .pre("loadmodule \"dialog.so\"")
}

#[test]
fn dialog_mode_from_restores_display_too() {
    let k = Kamailio::start(dlg_cfg("", ANON));
    let c = dlg_call(H::From, CALLER_FROM, ANON_ADDR);
    let mut e = establish(&k, &c, CALLER_FROM, CALLEE_TO);
    assert!(
        !e.b.route_set[0].contains("vsf="),
        "no RR state in dialog mode"
    );
    in_dialog(&mut e, &c, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
}

#[test]
fn dialog_mode_to() {
    let k = Kamailio::start(dlg_cfg("", CARRIER));
    let c = dlg_call(H::To, CALLEE_TO, CARRIER_ADDR);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, false);
}

// ---------------------------------------------------------------------------
// restore_*_avp

#[test]
fn avp_keeps_the_original_after_msg_apply_changes() {
    // msg_apply_changes() bakes the new From into the request, so the reply
    // can only be restored from the AVP.
    let k = Kamailio::start(
        cfg(
            "modparam(\"uac\", \"restore_from_avp\", \"$avp(rfrom)\")",
            &rr_then(&format!(
                "{ANON} msg_apply_changes(); xlog(\"L_NOTICE\", \"rfrom=[$avp(rfrom)]\\n\");"
            )),
            "",
        )
        .pre("loadmodule \"textopsx.so\""),
    );
    let c = from_call(ANON_ADDR);
    let e = establish(&k, &c, CALLER_FROM, CALLEE_TO);
    k.wait_log(&format!("rfrom=[{CALLER_FROM}]"), WAIT);
    drop(e);
}

// ---------------------------------------------------------------------------
// display-only / URI-only

#[test]
fn display_only_and_uri_only() {
    let k = Kamailio::start(cfg(
        "",
        &rr_then(
            "if ($hdr(X-Case) == \"dsp\") { uac_replace_from(\"Hidden\", \"\"); } \
             else { uac_replace_from(\"sip:anon@anon.invalid\"); }",
        ),
        "",
    ));
    // URI only: the caller's display stays everywhere.
    let c = rr_call(H::From, CALLER_FROM, "\"Alice\" <sip:anon@anon.invalid>");
    full_call(&k, &c, CALLER_FROM, CALLEE_TO, true);

    // Display only: the callee sees it on the INVITE, the caller gets its
    // own From back in the replies.
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");
    let inv = caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from(CALLER_FROM)
            .to_raw(CALLEE_TO)
            .header("X-Case", "dsp"),
    );
    let got = callee.expect_request("INVITE", WAIT);
    assert_eq!(addr_of(got.from()), "Hidden <sip:alice@a.example>");
    callee.send(Response::to(&got, 486, "Busy Here"));
    let r = caller.expect_response(486, WAIT);
    assert_eq!(r.from(), inv.from());
    caller.send(Request::ack_non2xx(&inv, &r));
}

// ---------------------------------------------------------------------------
// Interop with the C module (Debian's uac.so)

/// The dialog's Route set now points at `to` instead of `from` (the proxy
/// that record-routed was replaced by another one on a new port, with the
/// same Record-Route parameters).
fn move_routes(e: &mut Est, from: &Kamailio, to: &Kamailio) {
    let (old, new) = (
        format!("127.0.0.1:{}", from.port),
        format!("127.0.0.1:{}", to.port),
    );
    for r in e.a.route_set.iter_mut().chain(e.b.route_set.iter_mut()) {
        *r = r.replace(&old, &new);
    }
    e.caller.set_target(to.addr());
}

const PW: &str = "modparam(\"uac\", \"restore_passwd\", \"my_secret_passwd\")";

fn interop(first_c: bool, h: H) {
    let (action, c) = match h {
        H::From => (ANON, from_call(ANON_ADDR)),
        H::To => (CARRIER, to_call(CARRIER_ADDR)),
    };
    let mk = |c_module: bool| {
        let cf = cfg(PW, &rr_then(action), "");
        if c_module { cf.with_c_module() } else { cf }
    };
    let k1 = Kamailio::start(mk(first_c));
    let mut e = establish(&k1, &c, CALLER_FROM, CALLEE_TO);
    let k2 = Kamailio::start(mk(!first_c));
    move_routes(&mut e, &k1, &k2);
    in_dialog(&mut e, &c, true);
    drop(k1);
}

#[test]
fn interop_c_writes_rust_restores_from() {
    interop(true, H::From);
}

#[test]
fn interop_c_writes_rust_restores_to() {
    interop(true, H::To);
}

#[test]
fn interop_rust_writes_c_restores_from() {
    interop(false, H::From);
}

#[test]
fn interop_rust_writes_c_restores_to() {
    interop(false, H::To);
}

#[test]
fn c_module_baseline_same_wire_behaviour() {
    // The expectations of these tests hold for the C module too.
    let k = Kamailio::start(cfg(PW, &rr_then(ANON), "").with_c_module());
    full_call(&k, &from_call(ANON_ADDR), CALLER_FROM, CALLEE_TO, true);
}

// ---------------------------------------------------------------------------
// Better than C: hostile parameters, secure format, double replace, peers
// changing their display in dialog

/// Sends a sequential request whose Route carries `;vsf=<value>` straight to
/// the proxy; it must be relayed with the From left as sent, and logged.
fn forged(k: &Kamailio, value: &str) {
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");
    let ftag = new_tag();
    let from = format!("{CALLER_FROM};tag={ftag}");
    let req = caller.send(
        Request::new("BYE", &callee.uri("bob"))
            .from_raw(&from)
            .to_raw(&format!("{CALLEE_TO};tag={}", new_tag()))
            .route(&format!(
                "<sip:127.0.0.1:{};lr;ftag={ftag};vsf={value}>",
                k.port
            )),
    );
    let g = callee.expect_request("BYE", WAIT);
    assert_eq!(g.from(), from, "From must be left untouched");
    callee.send(Response::to(&g, 200, "OK"));
    let r = caller.expect_response_to(&req, 200, WAIT);
    assert_eq!(r.from(), from);
}

#[test]
fn forged_and_garbage_parameters_are_refused() {
    let k = Kamailio::start(cfg(PW, &rr_then(ANON), ""));
    for v in [
        "garbage!!",
        "AAAA",
        "AAAAAAMDCwEcAAAAAAAAAAAADB0K",
        "AAA",
        "----",
        "~Uxyz",
        &"QUFB".repeat(600),
    ] {
        forged(&k, v);
    }
    k.wait_log("skipping the update", WAIT);
    assert!(k.is_running());
    // Workers still serve calls.
    full_call(&k, &from_call(ANON_ADDR), CALLER_FROM, CALLEE_TO, true);
}

#[test]
fn secure_mode_round_trip_and_tamper_rejection() {
    let k = Kamailio::start(cfg(
        &format!("{PW}\nmodparam(\"uac\", \"restore_secure\", 1)"),
        &rr_then(ANON),
        "",
    ));
    let c = from_call(ANON_ADDR);
    let mut e = establish(&k, &c, CALLER_FROM, CALLEE_TO);
    let rr = e.b.route_set[0].clone();
    assert!(rr.contains(";vsf=~U"), "secure value expected: {rr}");
    assert!(!rr.contains("alice"), "{rr}");
    in_dialog(&mut e, &c, true);

    // Flip one character of the parameter: refused, request untouched.
    let mut e = establish(&k, &c, CALLER_FROM, CALLEE_TO);
    let pos = e.a.route_set[0].find(";vsf=~U").unwrap() + 12;
    let mut bytes = e.a.route_set[0].clone().into_bytes();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    e.a.route_set[0] = String::from_utf8(bytes).unwrap();
    let bye = e.caller.send(e.a.bye());
    let g = e.callee.expect_request("BYE", WAIT);
    assert_eq!(g.from(), bye.from(), "tampered value must not be used");
    k.wait_log("authentication failed", WAIT);
}

#[test]
fn secure_mode_needs_a_password() {
    let log =
        Kamailio::start_expect_failure(cfg("modparam(\"uac\", \"restore_secure\", 1)", "", ""));
    assert!(log.contains("restore_secure"), "{log}");
}

#[test]
fn double_replace_last_call_wins() {
    let first = "uac_replace_from(\"First\", \"sip:first@first.example\");";
    // After record_route(): header and RR parameter both follow the last call.
    let k = Kamailio::start(cfg(PW, &rr_then(&format!("{first} {ANON}")), ""));
    full_call(&k, &from_call(ANON_ADDR), CALLER_FROM, CALLEE_TO, true);
    // Without Record-Route state (mode none) too.
    let k = Kamailio::start(cfg(
        "modparam(\"uac\", \"restore_mode\", \"none\")",
        &rr_then(&format!("{first} uac_replace_from(\"sip:x@y.example\");")),
        "",
    ));
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let callee = UdpPeer::bind().named("callee");
    let inv = caller.send(Request::new("INVITE", &callee.uri("bob")).from(CALLER_FROM));
    let got = callee.expect_request("INVITE", WAIT);
    assert_eq!(addr_of(got.from()), "First <sip:x@y.example>");
    callee.send(Response::to(&got, 486, "Busy Here"));
    let r = caller.expect_response(486, WAIT);
    caller.send(Request::ack_non2xx(&inv, &r));
}

#[test]
fn peer_changing_display_in_dialog() {
    let k = Kamailio::start(cfg(PW, &rr_then(ANON), ""));
    let c = from_call(ANON_ADDR);
    let mut e = establish(&k, &c, CALLER_FROM, CALLEE_TO);
    // The caller changes its display name and adds a URI parameter.
    let tag = e.inv.from_tag().unwrap();
    e.a.local_party = format!("\"Alice Smith\" <sip:alice@a.example;x=1>;tag={tag}");
    let re = e.caller.send(e.a.reinvite());
    let g = e.callee.expect_request("INVITE", WAIT);
    assert_eq!(addr_of(g.from()), "\"Alice Smith\" <sip:anon@anon.invalid>");
    e.callee
        .send(Response::to(&g, 200, "OK").contact(&e.callee.contact("bob")));
    let r = e.caller.expect_response_to(&re, 200, WAIT);
    assert_eq!(r.from(), re.from(), "the caller gets back what it sent");
}

/// pkg memory used by each SIP worker (`pkg.stats`: rank > 0), by pid.
fn worker_pkg_used(k: &Kamailio) -> Vec<(u64, u64)> {
    let out = k.kamcmd(&["pkg.stats"]);
    let mut res = Vec::new();
    let (mut pid, mut rank) = (0u64, -1i64);
    for l in out.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("pid:") {
            pid = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("rank:") {
            rank = v.trim().parse().unwrap_or(-1);
        } else if let Some(v) = l.strip_prefix("used:")
            && rank > 0
        {
            res.push((pid, v.trim().parse().unwrap_or(0)));
        }
    }
    assert!(!res.is_empty(), "no worker in pkg.stats: {out}");
    res
}

/// The lumps of a replacement outlive a failed branch and a branch_route:
/// the INVITE replaced in request_route is forwarded again from
/// failure_route (lumps saved with the transaction), a branch_route adds
/// its own replacement to the branch's copy of the lumps, both branches
/// see what they must, the caller gets its identity back, and every pkg
/// block is freed with its message (worker pkg use flat over many calls).
#[test]
fn serial_forking_keeps_the_replacement_and_frees_every_lump() {
    let callee1 = UdpPeer::bind().named("callee1");
    let callee2 = UdpPeer::bind().named("callee2");
    let action = format!("record_route(); {ANON} t_on_failure(\"NEXT\");");
    let body = format!(
        "modparam(\"rr\", \"append_fromtag\", 1)\n{}\n\
         failure_route[NEXT] {{\n\
             if (t_check_status(\"486\")) {{\n\
                 $ru = \"{}\"; t_on_branch(\"SECOND\"); t_relay();\n\
             }}\n\
         }}\n\
         branch_route[SECOND] {{ {CARRIER} }}\n",
        routes(&action, ""),
        callee2.uri("bob"),
    );
    let k = Kamailio::start(Config::new(&body).children(1).pre("loadmodule \"kex.so\""));
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let call = |n: usize| {
        let inv = caller.send(
            Request::new("INVITE", &callee1.uri("bob"))
                .from(CALLER_FROM)
                .to_raw(CALLEE_TO),
        );
        let g1 = callee1.expect_request("INVITE", WAIT);
        assert_eq!(addr_of(g1.from()), ANON_ADDR, "call {n}: first branch From");
        assert_eq!(
            addr_of(g1.hdr("To")),
            CALLEE_TO,
            "call {n}: first branch To"
        );
        callee1.send(Response::to(&g1, 486, "Busy Here").to_tag(&new_tag()));
        callee1.expect_request("ACK", WAIT);
        let g2 = callee2.expect_request("INVITE", WAIT);
        assert_eq!(
            addr_of(g2.from()),
            ANON_ADDR,
            "call {n}: second branch From"
        );
        assert_eq!(
            addr_of(g2.hdr("To")),
            CARRIER_ADDR,
            "call {n}: second branch To"
        );
        callee2.send(Response::to(&g2, 200, "OK").to_tag(&new_tag()));
        let ok = caller.expect_response(200, WAIT);
        assert_eq!(
            ok.hdr("From"),
            inv.from(),
            "call {n}: caller's From restored"
        );
        caller.send(Dialog::caller(&inv, &ok).ack(&ok));
        let ack = callee2.expect_request("ACK", WAIT);
        // Sequential requests get the URI only (RR mode, as in C).
        let seq = swap_uri(CALLER_FROM, ANON_ADDR);
        assert_eq!(addr_of(ack.from()), seq, "call {n}: ACK From");
    };
    for n in 0..5 {
        call(n);
    }
    let before = worker_pkg_used(&k);
    for n in 5..105 {
        call(n);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = worker_pkg_used(&k);
    for ((pid, b), (_, a)) in before.iter().zip(&after) {
        // Allowance for the core's own per-process caches; a leak of one
        // lump per call would be several kB over 100 calls.
        assert!(
            a.abs_diff(*b) < 2048,
            "worker {pid}: pkg used {b} -> {a} over 100 calls"
        );
    }
}
