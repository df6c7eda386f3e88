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
