//! Registration state events (issue 16, README "`event_route[uac:reg]`: registration events"):
//! `event_route[uac:reg]` and the KEMI `event_callback` with `$uac_reg_event(key)`,
//! against a real Kamailio, a SQLite uacreg table and registrars on UDP.

mod common;
mod reg_support;

use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio, check_config};
use common::peer::{RegAction, RegistrarConfig};
use reg_support::{RegDb, Registrar};

const S: Duration = Duration::from_secs(1);

/// The route logs every event as `UACREG|l_uuid|state|code|reason|expires|avps`, where
/// `avps` counts the AVPs the route has set in this process so far (1 when the process
/// cleans up after each event, as the timer process must).
const EVENT_ROUTE: &str = r#"
event_route[uac:reg] {
    $avp(evs) = $uac_reg_event(state);
    xlog("L_NOTICE", "UACREG|$uac_reg_event(l_uuid)|$uac_reg_event(state)|$uac_reg_event(code)|$uac_reg_event(reason)|$uac_reg_event(expires)|$cnt($avp(evs))\n");
}
"#;

fn cfg(db: &RegDb, extra: &str, routes: &str, event_route: &str) -> Config {
    let body = format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
{extra}
request_route {{
{routes}
    sl_send_reply("404", "Not here");
}}
{event_route}
"#,
        url = db.url()
    );
    Config::new(&body)
}

/// One line the event route logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    uuid: String,
    state: String,
    code: u32,
    reason: String,
    expires: u32,
    avps: u32,
}

fn events_in(log: &str, tag: &str) -> Vec<Ev> {
    log.lines()
        .filter_map(|l| l.split_once(tag).map(|(_, rest)| rest))
        .map(|rest| {
            let f: Vec<&str> = rest.trim_end().split('|').collect();
            assert_eq!(f.len(), 6, "malformed event line: {rest}");
            Ev {
                uuid: f[0].into(),
                state: f[1].into(),
                code: f[2].parse().unwrap_or_else(|_| panic!("code in {rest}")),
                reason: f[3].into(),
                expires: f[4].parse().unwrap_or_else(|_| panic!("expires in {rest}")),
                avps: f[5].parse().unwrap_or_else(|_| panic!("avps in {rest}")),
            }
        })
        .collect()
}

/// Waits until the log has `n` events with `tag` and returns them all.
fn wait_events(k: &Kamailio, tag: &str, n: usize, t: Duration) -> Vec<Ev> {
    let deadline = Instant::now() + t;
    loop {
        let ev = events_in(&k.log(), tag);
        if ev.len() >= n {
            return ev;
        }
        assert!(
            Instant::now() < deadline,
            "{} events with {tag:?} after {t:?}, want {n}: {ev:#?}",
            ev.len()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn brief(ev: &[Ev]) -> Vec<(String, String, u32)> {
    ev.iter()
        .map(|e| (e.uuid.clone(), e.state.clone(), e.code))
        .collect()
}

fn want(list: &[(&str, &str, u32)]) -> Vec<(String, String, u32)> {
    list.iter()
        .map(|(u, s, c)| (u.to_string(), s.to_string(), *c))
        .collect()
}

/// Runs the request route for `op` and returns the reply's X-R header.
fn route_result(k: &Kamailio, ua: &std::net::UdpSocket, op: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let me = ua.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:{op}@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKe{n}\r\n\
         From: <sip:t@x>;tag=1\r\nTo: <sip:{op}@x>\r\nCall-ID: e{n}@x\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = k.port
    );
    ua.set_read_timeout(Some(3 * S)).unwrap();
    ua.send_to(msg.as_bytes(), k.addr()).unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, _) = ua.recv_from(&mut buf).expect("reply");
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("X-R: "))
        .unwrap_or_else(|| panic!("no X-R in {text}"))
        .trim()
        .to_string()
}

/// Every state of one record, each seen once and in order, with its code: first
/// registration through a challenge (registering, registered), a refresh failing with
/// 503 (failed 503; the retry failing the same way is silent), 403 (auth_failed), back to
/// registered, uac.reg_disable (disabled) and uac_reg_send_unregister (unregistered).
#[test]
fn each_state_change_once_in_order() {
    let db = RegDb::new();
    let mut reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let routes = r#"
    if ($rU == "unreg") {
        $var(r) = uac_reg_send_unregister("l_uuid", "u1");
        append_to_reply("X-R: $var(r)\r\n");
        sl_send_reply("200", "OK"); exit;
    }
    if ($rU == "pv") {
        append_to_reply("X-R: [$uac_reg_event(state)][$uac_reg_event(code)]\r\n");
        sl_send_reply("200", "OK"); exit;
    }
"#;
    let k = Kamailio::start(cfg(
        &db,
        r#"modparam("uac", "reg_retry_interval", 1)"#,
        routes,
        EVENT_ROUTE,
    ));
    let tag = "UACREG|";
    let mut seen = Vec::new();
    let mut expected = vec![("u1", "registering", 0)];

    // First REGISTER: the event runs before it is sent.
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    assert_eq!(brief(&wait_events(&k, tag, 1, 2 * S)), want(&expected));
    reg.challenge(&r1);
    let r2 = reg
        .recv_new(5 * S, &mut seen)
        .expect("REGISTER with credentials");
    reg.ok(&r2, 4);
    expected.push(("u1", "registered", 200));
    let ev = wait_events(&k, tag, 2, 3 * S);
    assert_eq!(brief(&ev), want(&expected), "the challenge is no event");
    assert_eq!(
        (ev[1].expires, ev[1].reason.as_str()),
        (4, "binding granted")
    );
    assert_eq!(ev[0].reason, "REGISTER sent");

    // Granted 4 s: refreshed ~2 s later; that refresh fails with 503.
    let r3 = reg.recv_new(5 * S, &mut seen).expect("refresh");
    reg.reply(&r3, 503, "Service Unavailable", "");
    expected.push(("u1", "failed", 503));
    let ev = wait_events(&k, tag, 3, 3 * S);
    assert_eq!(brief(&ev), want(&expected));
    assert_eq!(ev[2].reason, "error reply");
    // The retry fails the same way: no event. The next one, 403: auth_failed.
    let r4 = reg.recv_new(5 * S, &mut seen).expect("retry");
    reg.reply(&r4, 503, "Service Unavailable", "");
    let r5 = reg.recv_new(5 * S, &mut seen).expect("second retry");
    reg.reply(&r5, 403, "Forbidden", "");
    expected.push(("u1", "auth_failed", 403));
    assert_eq!(brief(&wait_events(&k, tag, 4, 3 * S)), want(&expected));
    // Registered again (no `registering` for a retry).
    let r6 = reg.recv_new(5 * S, &mut seen).expect("third retry");
    reg.ok(&r6, 60);
    expected.push(("u1", "registered", 200));
    let ev = wait_events(&k, tag, 5, 3 * S);
    assert_eq!(brief(&ev), want(&expected));
    assert_eq!(ev[4].expires, 60);

    // Disabled by RPC, then unregistered by the script function.
    k.kamcmd(&["uac.reg_disable", "l_uuid", "u1"]);
    expected.push(("u1", "disabled", 0));
    assert_eq!(brief(&wait_events(&k, tag, 6, 3 * S)), want(&expected));
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(route_result(&k, &ua, "unreg"), "1");
    let r7 = reg.recv_new(3 * S, &mut seen).expect("un-REGISTER");
    assert_eq!(r7.h("Expires"), Some("0"));
    reg.ok(&r7, 0);
    expected.push(("u1", "unregistered", 200));
    assert_eq!(brief(&wait_events(&k, tag, 7, 3 * S)), want(&expected));

    // Outside the event route the PV is $null.
    assert_eq!(route_result(&k, &ua, "pv"), "[<null>][<null>]");
    // Nothing else comes: no REGISTER (disabled), no event.
    assert!(
        reg.recv_new(1500 * Duration::from_millis(1), &mut seen)
            .is_none()
    );
    let ev = events_in(&k.log(), tag);
    assert_eq!(brief(&ev), want(&expected), "{ev:#?}");
    // The only errors: the module's own lines for the error replies.
    let log = k.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.iter().all(|l| l.contains("got sip response")) && errors.len() == 3,
        "{errors:#?}"
    );
}

/// A REGISTER tm refuses to send (a TCP next hop, no TCP socket) fails in the timer
/// process: `registering` then `failed` with code 0, once per record however often the
/// retry fails again; the AVPs the route set are freed after each event there.
#[test]
fn send_failures_in_the_timer_process() {
    let db = RegDb::new();
    for u in ["t1", "t2"] {
        db.add(u, u, u, "sip:127.0.0.1:5999;transport=tcp", 60, &[]);
    }
    let k = Kamailio::start(cfg(
        &db,
        r#"modparam("uac", "reg_retry_interval", 1)"#,
        "",
        EVENT_ROUTE,
    ));
    let tag = "UACREG|";
    wait_events(&k, tag, 4, 5 * S);
    // Three more retries of each record.
    std::thread::sleep(3 * S);
    let ev = events_in(&k.log(), tag);
    for u in ["t1", "t2"] {
        let mine: Vec<&Ev> = ev.iter().filter(|e| e.uuid == u).collect();
        let states: Vec<(&str, u32, &str)> = mine
            .iter()
            .map(|e| (e.state.as_str(), e.code, e.reason.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("registering", 0, "REGISTER sent"),
                ("failed", 0, "send failure")
            ],
            "{u}: {ev:#?}"
        );
    }
    assert_eq!(ev.len(), 4, "{ev:#?}");
    assert!(
        ev.iter().all(|e| e.avps == 1),
        "AVPs kept between events of the timer process: {ev:#?}"
    );
    let retries = k.log().matches("failed to send request for [t1]").count();
    assert!(retries >= 3, "{retries} sends of t1:\n{}", k.log());
}

/// reg_retry_interval 0: a failure disables the record: `failed` then `disabled`, both
/// with the reply's code.
#[test]
fn failure_without_retry_disables() {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), 60, &[]);
    let k = Kamailio::start(cfg(&db, "", "", EVENT_ROUTE));
    let mut seen = Vec::new();
    let r1 = reg.recv_new(5 * S, &mut seen).expect("REGISTER");
    reg.reply(&r1, 503, "Service Unavailable", "");
    let ev = wait_events(&k, "UACREG|", 3, 3 * S);
    assert_eq!(
        brief(&ev),
        want(&[
            ("u1", "registering", 0),
            ("u1", "failed", 503),
            ("u1", "disabled", 503)
        ])
    );
    assert_eq!(ev[2].reason, "failure not retried");
    std::thread::sleep(S);
    assert_eq!(events_in(&k.log(), "UACREG|").len(), 3);
}

/// Without `event_route[uac:reg]` registration works as before, quietly; a config that
/// names an unknown key of `$uac_reg_event` or assigns it does not start.
#[test]
fn without_the_route_nothing_changes() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let db = RegDb::new();
    db.add("u1", "alice", "bob", &registrar.uri(), 60, &[]);
    // At debug level, to see that no event is even queued.
    let k = Kamailio::start(cfg(&db, "", "", "").debug(3));
    registrar.wait_registers(1, 5 * S);
    let deadline = Instant::now() + 3 * S;
    while k.kamcmd(&["cnt.get", "uac", "regactive"]).trim() != "1" {
        assert!(Instant::now() < deadline, "not registered:\n{}", k.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    k.kamcmd(&["uac.reg_disable", "l_uuid", "u1"]);
    k.kamcmd(&["uac.reg_unregister", "l_uuid", "u1"]);
    registrar.wait_registers(2, 3 * S);
    std::thread::sleep(Duration::from_millis(300));
    let log = k.log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(
        log.contains("no event_route[uac:reg]: registration events not reported"),
        "{log}"
    );
    assert!(!log.contains("uac:reg [u1]"), "an event was raised:\n{log}");

    let db2 = RegDb::new();
    for (bad, why) in [
        (
            r#"event_route[uac:reg] { $var(x) = $uac_reg_event(nosuch); }"#,
            "unknown uac_reg_event name nosuch",
        ),
        (
            r#"event_route[uac:reg] { $uac_reg_event(state) = "x"; }"#,
            "read only pvar",
        ),
    ] {
        let r = check_config(&cfg(&db2, "", "", bad));
        assert!(!r.ok && r.output.contains(why), "{bad}:\n{}", r.output);
    }
    let r = check_config(&cfg(&db2, "", "", EVENT_ROUTE));
    assert!(r.ok, "{}", r.output);
}

/// KEMI: with `event_callback` the function gets `"uac:reg"` and reads the same values
/// through `KSR.pv.get("$uac_reg_event(key)")`.
#[test]
fn kemi_event_callback_gets_uac_reg() {
    let registrar = RegistrarConfig::new("example.com", "bob", "secret")
        .default_action(RegAction::Accept)
        .start();
    let db = RegDb::new();
    db.add("k1", "alice", "bob", &registrar.uri(), 60, &[]);
    let dir = common::kamailio::temp_dir("jsdt-reg");
    let js = r#"
function ksr_request_route() {
    KSR.sl.sl_send_reply(404, "Not here");
}
function ksr_uac_event(evname) {
    KSR.notice("KEMIREG|" + evname + "|" + KSR.pv.get("$uac_reg_event(l_uuid)")
        + "|" + KSR.pv.get("$uac_reg_event(state)") + "|" + KSR.pv.get("$uac_reg_event(code)")
        + "|" + KSR.pv.get("$uac_reg_event(expires)") + "\n");
}
"#;
    let path = dir.join("script.js");
    std::fs::write(&path, js).expect("write script.js");
    let body = format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
modparam("uac", "event_callback", "ksr_uac_event")
modparam("app_jsdt", "load", "{js}")
cfgengine "jsdt"
"#,
        url = db.url(),
        js = path.display()
    );
    let k = Kamailio::start(Config::new(&body).pre("loadmodule \"app_jsdt.so\""));
    let lines = |k: &Kamailio| -> Vec<String> {
        k.log()
            .lines()
            .filter_map(|l| {
                l.split_once("KEMIREG|")
                    .map(|(_, r)| r.trim_end().to_string())
            })
            .collect()
    };
    let wait = |n: usize| {
        let deadline = Instant::now() + 5 * S;
        loop {
            let l = lines(&k);
            if l.len() >= n {
                return l;
            }
            assert!(Instant::now() < deadline, "{l:#?}\n{}", k.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    assert_eq!(
        wait(2),
        ["uac:reg|k1|registering|0|0", "uac:reg|k1|registered|200|60"]
    );
    k.kamcmd(&["uac.reg_disable", "l_uuid", "k1"]);
    assert_eq!(
        wait(3),
        [
            "uac:reg|k1|registering|0|0",
            "uac:reg|k1|registered|200|60",
            "uac:reg|k1|disabled|0|0"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
