//! KEMI: the module's functions called from an embedded JavaScript routing
//! script (app_jsdt, in Debian's kamailio package), as Lua/Python/JS configs
//! call the C module.

mod common;
mod reg_support;

use std::fs;
use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio};
use common::peer::{RegAction, RegistrarConfig, UasConfig, UdpPeer, WAIT};
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

/// Every remote-registration function called from JavaScript: the request
/// carries the operation (X-Op) and its argument (X-Arg, X-Mode); the reply's
/// X-Out header carries the return code and what the function wrote.
const REG_JS: &str = r#"
function ksr_request_route() {
    var op = KSR.pv.gete("$hdr(X-Op)");
    var arg = KSR.pv.gete("$hdr(X-Arg)");
    var out = "";
    KSR.pv.sets("$var(out)", "");
    if (op == "status") {
        out = "" + KSR.uac.uac_reg_status(arg);
    } else if (op == "lookup") {
        var rc = KSR.uac.uac_reg_lookup(arg, KSR.pv.gete("$hdr(X-Dst)"));
        out = rc + " " + KSR.pv.gete("$var(out)");
    } else if (op == "lookup_uri") {
        var rc = KSR.uac.uac_reg_lookup_uri(arg, "$var(out)");
        out = rc + " " + KSR.pv.gete("$var(out)");
    } else if (op == "request_to") {
        var rc = KSR.uac.uac_reg_request_to(arg, parseInt(KSR.pv.gete("$hdr(X-Mode)")));
        out = rc + " " + KSR.pv.gete("$ru") + " " + KSR.pv.gete("$du") + " "
            + KSR.pv.gete("$avp(arealm)") + " " + KSR.pv.gete("$avp(auser)") + " "
            + KSR.pv.gete("$avp(apass)");
    } else if (op == "disable") {
        out = "" + KSR.uac.uac_reg_disable("l_uuid", arg);
    } else if (op == "enable") {
        out = "" + KSR.uac.uac_reg_enable("l_uuid", arg);
    } else if (op == "refresh") {
        out = "" + KSR.uac.uac_reg_refresh(arg);
    } else if (op == "send_register") {
        out = "" + KSR.uac.uac_reg_send_register("l_uuid", arg);
    } else if (op == "send_unregister") {
        out = "" + KSR.uac.uac_reg_send_unregister("l_uuid", arg);
    }
    KSR.hdr.append_to_reply("X-Out: " + out + "\r\n");
    KSR.sl.sl_send_reply(200, "OK");
}
"#;

#[test]
fn registration_functions_from_javascript() {
    // Bindings granted for 3 s: refreshed every 2 s, lapsing quickly once disabled.
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .contact_expires(3)
        .start();
    let db = reg_support::RegDb::new();
    db.add("u1", "alice", "bob", &registrar.uri(), 60, &[]);
    let ha1 = reg_support::ha1("carol", "example.com", "pw");
    db.add(
        "u2",
        "carol",
        "carol",
        &registrar.uri(),
        60,
        &[("auth_password", "''"), ("auth_ha1", &format!("'{ha1}'"))],
    );
    let params = format!(
        r#"loadmodule "{{MODULES}}/db_sqlite.so"
modparam("uac", "reg_db_url", "{}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
modparam("uac", "auth_username_avp", "$avp(auser)")
modparam("uac", "auth_password_avp", "$avp(apass)")
modparam("uac", "auth_realm_avp", "$avp(arealm)")"#,
        db.url()
    );
    let k = start_js(&params, REG_JS, registrar.addr().port());
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let call = |op: &str, arg: &str, extra: &[(&str, &str)]| -> String {
        let mut r = Request::new("OPTIONS", &format!("sip:kemi@{}", k.addr()))
            .header("X-Op", op)
            .header("X-Arg", arg);
        for (n, v) in extra {
            r = r.header(n, v);
        }
        let sent = caller.send(r);
        caller
            .expect_response_to(&sent, 200, WAIT)
            .hdr("X-Out")
            .to_string()
    };
    let wait_status = |uuid: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = call("status", uuid, &[]);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "status {uuid}: {got}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    wait_status("u1", "1");
    wait_status("u2", "1");
    assert_eq!(call("status", "nobody", &[]), "-1");

    assert_eq!(
        call("lookup", "u1", &[("X-Dst", "$var(out)")]),
        "1 sip:alice@local.test"
    );
    assert_eq!(call("lookup", "nobody", &[("X-Dst", "$var(out)")]), "-1");
    // The destination is a PV name, parsed through the core's PV cache.
    assert_eq!(call("lookup", "u1", &[("X-Dst", "not-a-pv")]), "-1");
    assert_eq!(call("lookup_uri", "sip:alice@local.test", &[]), "1 u1");
    assert_eq!(call("lookup_uri", "sip:nobody@local.test", &[]), "-1");

    let proxy = registrar.uri();
    assert_eq!(
        call("request_to", "u1", &[("X-Mode", "0")]),
        format!("1 sip:bob@example.com {proxy} example.com bob secret")
    );
    assert_eq!(
        call("request_to", "alice", &[("X-Mode", "1")]),
        format!("1 sip:bob@example.com {proxy} example.com bob secret")
    );
    // Mode 3 (by username, HA1): the C module's KEMI export refuses modes > 1.
    assert_eq!(
        call("request_to", "carol", &[("X-Mode", "3")]),
        format!("1 sip:carol@example.com {proxy} example.com carol {ha1}")
    );
    assert!(call("request_to", "u1", &[("X-Mode", "4")]).starts_with("-1 "));
    assert!(call("request_to", "nobody", &[("X-Mode", "0")]).starts_with("-1 "));

    // Disable: no more REGISTER for u1; once its binding lapsed, status -3 (while the
    // binding is valid the status stays 1, as in the C module). Enable: registers again.
    let u1_count = || {
        registrar
            .registers()
            .iter()
            .filter(|r| r.msg.hdr("Contact").contains("sip:u1@"))
            .count()
    };
    assert_eq!(call("disable", "u1", &[]), "1");
    assert_eq!(call("disable", "nobody", &[]), "-2");
    let disabled = u1_count();
    wait_status("u1", "-3");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(u1_count(), disabled, "REGISTER sent for a disabled record");
    assert_eq!(call("enable", "u1", &[]), "1");
    wait_status("u1", "1");
    assert!(u1_count() > disabled);

    // Refresh reloads the row from the DB: the record starts over and registers again.
    let before = registrar.count();
    assert_eq!(call("refresh", "u1", &[]), "1");
    registrar.wait_registers(before + 1, Duration::from_secs(5));
    wait_status("u1", "1");
    assert_eq!(call("refresh", "nobody", &[]), "-1");

    // uac_reg_send_unregister / uac_reg_send_register (cfg functions of C 6.0; not in
    // its KEMI table): Expires 0 and the record disabled, then a REGISTER at once.
    let u1_last = || {
        registrar
            .registers()
            .into_iter()
            .rev()
            .find(|r| r.msg.hdr("Contact").contains("sip:u1@"))
            .expect("a REGISTER of u1")
    };
    let before = u1_count();
    assert_eq!(call("send_unregister", "u1", &[]), "1");
    wait_status("u1", "-3");
    assert_eq!(u1_count(), before + 1);
    assert_eq!(u1_last().expires(), Some(0));
    let before = u1_count();
    assert_eq!(call("send_register", "u1", &[]), "1");
    wait_status("u1", "1");
    assert_eq!(u1_count(), before + 1);
    assert_eq!(u1_last().expires(), Some(60));
    assert_eq!(call("send_register", "nobody", &[]), "-1");
    assert_eq!(call("send_unregister", "nobody", &[]), "-1");
    assert!(
        !k.log().contains("uac_reg"),
        "unexpected errors:\n{}",
        k.log()
    );
}
