//! Tier (c) and foundation tests: the module loads in a real Kamailio with
//! every modparam, bad modparams are refused with a message naming them, and
//! a request relays through a stateful proxy with our module loaded.

mod common;

use common::kamailio::{Config, Kamailio, check_config};

const ALL_PARAMS: &str = r#"
loadmodule "{MODULES}/db_sqlite.so"
modparam("uac", "rr_from_store_param", "vsf")
modparam("uac", "rr_to_store_param", "vst")
modparam("uac", "restore_mode", "auto")
modparam("uac", "restore_dlg", 0)
modparam("uac", "restore_passwd", "my_secret_passwd")
modparam("uac", "restore_from_avp", "$avp(original_uri_from)")
modparam("uac", "restore_to_avp", "$avp(original_uri_to)")
modparam("uac", "credential", "alice:example.com:secret")
modparam("uac", "credential", "bob:example.org:other")
modparam("uac", "auth_realm_avp", "$avp(arealm)")
modparam("uac", "auth_username_avp", "$avp(auser)")
modparam("uac", "auth_password_avp", "$avp(apass)")
modparam("uac", "reg_db_url", "sqlite://{TMP}/uacreg.db")
modparam("uac", "reg_db_table", "uacreg")
modparam("uac", "reg_contact_addr", "127.0.0.1:{PORT}")
modparam("uac", "reg_timer_interval", 60)
modparam("uac", "reg_retry_interval", 300)
modparam("uac", "reg_random_delay", 0)
modparam("uac", "reg_keep_callid", 1)
modparam("uac", "reg_active", 1)
modparam("uac", "reg_gc_interval", 150)
modparam("uac", "reg_hash_size", 4)
modparam("uac", "reg_use_domain", 0)
modparam("uac", "default_socket", "udp:127.0.0.1:{PORT}")
modparam("uac", "event_callback", "ksr_uac_event")
request_route { sl_send_reply("200", "OK"); }
"#;

#[test]
fn module_loads_with_every_modparam() {
    let r = check_config(&Config::new(ALL_PARAMS));
    assert!(r.ok, "kamailio -c refused the config:\n{}", r.output);
}

#[test]
fn c_module_accepts_the_same_modparams() {
    // The same config must be valid for Debian's uac.so: same names and types.
    let r = check_config(&Config::new(ALL_PARAMS).with_c_module());
    assert!(r.ok, "C module refused the config:\n{}", r.output);
}

/// A modparam refused while the config is parsed (type or USE_FUNC check).
fn refused_at_parse(body: &str, needle: &str) {
    let r = check_config(&Config::new(body));
    assert!(!r.ok, "kamailio -c accepted a bad config:\n{body}");
    assert!(
        r.output.contains(needle),
        "output lacks {needle:?}:\n{}",
        r.output
    );
}

/// A modparam refused by mod_init: Kamailio must not start.
fn refused_at_start(body: &str, needle: &str) {
    let log = Kamailio::start_expect_failure(Config::new(body));
    assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    assert!(
        log.contains("Error while initializing module uac"),
        "not a mod_init refusal:\n{log}"
    );
}

const ROUTE: &str = "request_route { sl_send_reply(\"200\", \"OK\"); }";

#[test]
fn malformed_credential_is_refused() {
    for bad in ["alice:example.com", "alice", ":example.com:pw", "alice::pw"] {
        refused_at_parse(
            &format!("modparam(\"uac\", \"credential\", \"{bad}\")\n{ROUTE}"),
            "invalid modparam \"credential\"",
        );
    }
}

#[test]
fn unknown_restore_mode_is_refused() {
    refused_at_start(
        &format!("modparam(\"uac\", \"restore_mode\", \"sometimes\")\n{ROUTE}"),
        "invalid modparam \"restore_mode\": unsupported value 'sometimes'",
    );
}

#[test]
fn partial_auth_avps_are_refused() {
    refused_at_start(
        &format!("modparam(\"uac\", \"auth_username_avp\", \"$avp(u)\")\n{ROUTE}"),
        "partial definition of auth AVPs",
    );
}

#[test]
fn malformed_auth_avp_is_refused() {
    refused_at_start(
        &format!(
            "modparam(\"uac\", \"auth_username_avp\", \"$avp(u\")\n\
             modparam(\"uac\", \"auth_realm_avp\", \"$avp(r)\")\n\
             modparam(\"uac\", \"auth_password_avp\", \"$avp(p)\")\n{ROUTE}"
        ),
        "invalid modparam \"auth_username_avp\"",
    );
}

#[test]
fn restore_avp_must_be_an_avp() {
    refused_at_start(
        &format!("modparam(\"uac\", \"restore_from_avp\", \"$var(x)\")\n{ROUTE}"),
        "invalid modparam \"restore_from_avp\": '$var(x)' is not an AVP",
    );
}

#[test]
fn auto_restore_needs_append_fromtag() {
    refused_at_start(
        &format!("modparam(\"rr\", \"append_fromtag\", 0)\n{ROUTE}"),
        "append_fromtag",
    );
}

#[test]
fn auto_restore_needs_rr() {
    let log = Kamailio::start_expect_failure(Config::new(ROUTE).without_rr());
    assert!(log.contains("restore_mode needs rr"), "{log}");
}

#[test]
fn restore_mode_none_does_not_need_rr() {
    let k = Kamailio::start(
        Config::new(&format!(
            "modparam(\"uac\", \"restore_mode\", \"none\")\n{ROUTE}"
        ))
        .without_rr(),
    );
    assert!(k.is_running());
}

#[test]
fn restore_dlg_needs_dialog() {
    refused_at_start(
        &format!("modparam(\"uac\", \"restore_dlg\", 1)\n{ROUTE}"),
        "invalid modparam \"restore_dlg\"",
    );
}

#[test]
fn reg_db_url_needs_contact_addr() {
    refused_at_start(
        &format!("modparam(\"uac\", \"reg_db_url\", \"sqlite:///tmp/none.db\")\n{ROUTE}"),
        "invalid modparam \"reg_contact_addr\": must be set when reg_db_url is set",
    );
}

#[test]
fn negative_intervals_are_refused() {
    for p in [
        "reg_timer_interval",
        "reg_retry_interval",
        "reg_random_delay",
        "reg_gc_interval",
        "reload_delta",
    ] {
        refused_at_start(
            &format!("modparam(\"uac\", \"{p}\", -5)\n{ROUTE}"),
            &format!("invalid modparam \"{p}\": must be >= 0, got -5"),
        );
    }
}

#[test]
fn request_relays_through_stateful_proxy_with_module_loaded() {
    use std::net::UdpSocket;
    use std::time::Duration;
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let callee_port = callee.local_addr().unwrap().port();
    let k = Kamailio::start(Config::new(&format!(
        "request_route {{\n\
           if (!mf_process_maxfwd_header(\"10\")) {{ sl_send_reply(\"483\", \"Too Many Hops\"); exit; }}\n\
           $du = \"sip:127.0.0.1:{callee_port}\";\n\
           t_relay();\n\
         }}"
    )));
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let cp = caller.local_addr().unwrap().port();
    let msg = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{cp};branch=z9hG4bK-load-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: load-test-1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller.send_to(msg.as_bytes(), k.addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = callee.recv_from(&mut buf).expect("callee got nothing");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        got.starts_with("OPTIONS sip:bob@example.com SIP/2.0\r\n"),
        "{got}"
    );
    assert!(got.contains("Call-ID: load-test-1"), "{got}");
    assert!(
        got.contains(&format!("Via: SIP/2.0/UDP 127.0.0.1:{}", k.port)),
        "no proxy Via: {got}"
    );
    assert!(k.is_running());
}

#[test]
fn example_config_of_make_run_is_valid() {
    // `make run` starts Kamailio with this file from the repository root.
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(common::kamailio::KAMAILIO)
        .current_dir(root)
        .args([
            "-c",
            "-f",
            "examples/kamailio.cfg",
            "-A",
            "UACREG_DB_URL=\"sqlite:///tmp/x.db\"",
            "-A",
            &format!(
                "UAC_MPATH=\"{}/:{}/\"",
                common::kamailio::our_uac()
                    .parent()
                    .expect("module dir")
                    .display(),
                common::kamailio::MODULES_DIR
            ),
        ])
        .output()
        .expect("run kamailio -c");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "examples/kamailio.cfg is invalid:\n{text}"
    );
}
