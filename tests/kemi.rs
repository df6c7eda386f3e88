//! KEMI: the module's functions called from an embedded JavaScript routing
//! script (app_jsdt, in Debian's kamailio package), as Lua/Python/JS configs
//! call the C module.

mod common;

use std::fs;

use common::kamailio::{Config, Kamailio};
use common::peer::{UasConfig, UdpPeer, WAIT};
use common::sip::Request;

/// Starts Kamailio with `cfgengine "jsdt"` running `js`; `{UAS}` in the
/// script is replaced by the UAS port.
fn start_js(params: &str, js: &str, uas_port: u16) -> Kamailio {
    let tmp = std::env::temp_dir().join(format!("uac-kemi-{}-{uas_port}.js", std::process::id()));
    fs::write(&tmp, js.replace("{UAS}", &uas_port.to_string())).expect("write js");
    Kamailio::start(
        Config::new(&format!(
            "{params}\nmodparam(\"app_jsdt\", \"load\", \"{}\")\ncfgengine \"jsdt\"\n",
            tmp.display()
        ))
        .pre("loadmodule \"app_jsdt.so\""),
    )
}

const PROXY_JS: &str = r#"
function ksr_request_route() {
    if (KSR.siputils.has_totag() > 0) {
        if (KSR.rr.loose_route() > 0) { KSR.tm.t_relay(); }
        return;
    }
    KSR.rr.record_route();
    KSR.pv.sets("$du", "sip:127.0.0.1:{UAS}");
    KSR.tm.t_on_failure("ksr_failure_auth");
    KSR.tm.t_relay();
}

function ksr_failure_auth() {
    if (KSR.tm.t_is_canceled() > 0) { return; }
    if (KSR.tm.t_check_status("401|407") > 0) {
        if (KSR.uac.uac_auth() > 0) {
            KSR.tm.t_relay();
        } else {
            KSR.err("uac_auth failed from KEMI\n");
        }
    }
}
"#;

#[test]
fn uac_auth_from_javascript() {
    let uas = UasConfig::default()
        .challenge(true, "kemi.example", "kuser", "kpass")
        .start();
    let k = start_js(
        "modparam(\"uac\", \"credential\", \"kuser:kemi.example:kpass\")",
        PROXY_JS,
        uas.addr().port(),
    );
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    caller.send(Request::new("OPTIONS", &uas.uri("bob")));
    caller.expect_response(200, WAIT);
    let results = uas.auth_results();
    assert!(
        results.iter().any(|(m, r)| m == "OPTIONS" && r.is_ok()),
        "the retry was not authenticated: {results:?}"
    );
    assert!(
        !k.log().contains("uac_auth failed from KEMI"),
        "{}",
        k.log()
    );
}

const REPLACE_JS: &str = r#"
function ksr_request_route() {
    if (KSR.siputils.has_totag() > 0) {
        if (KSR.rr.loose_route() > 0) { KSR.tm.t_relay(); }
        return;
    }
    KSR.rr.record_route();
    if (KSR.is_INVITE()) {
        KSR.uac.uac_replace_from("\"Anonymous\"", "sip:anonymous@anonymous.invalid");
        KSR.uac.uac_replace_to_uri("sip:carrier-bob@carrier.example");
    }
    KSR.pv.sets("$du", "sip:127.0.0.1:{UAS}");
    KSR.tm.t_relay();
}
"#;

#[test]
fn replace_from_and_to_from_javascript_with_auto_restore() {
    let callee = UdpPeer::bind().named("callee");
    let k = start_js("", REPLACE_JS, callee.port());
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    caller.send(
        Request::new("INVITE", &callee.uri("bob"))
            .from_raw("\"Alice\" <sip:alice@example.com>;tag=a1")
            .to_raw("<sip:bob@example.com>"),
    );
    let inv = callee.expect_request("INVITE", WAIT);
    assert_eq!(
        inv.from(),
        "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=a1"
    );
    assert_eq!(inv.to_uri(), "sip:carrier-bob@carrier.example");
    let rr = inv.hdr("Record-Route");
    assert!(
        rr.contains(";vsf=") && rr.contains(";vst="),
        "no restore params: {rr}"
    );
    callee.send(common::sip::Response::to(&inv, 200, "OK").to_tag("b1"));
    let ok = caller.expect_response(200, WAIT);
    assert_eq!(ok.from(), "\"Alice\" <sip:alice@example.com>;tag=a1");
    assert_eq!(ok.to(), "<sip:bob@example.com>;tag=b1");
}
