//! Hostile input over the wire: hundreds of mutated challenges, From headers
//! and forged Record-Route restore parameters thrown at a live Kamailio with
//! our module. Every request must still get an answer, no Kamailio process may
//! die, and nothing malformed may be sent on. The same challenges also go to
//! Debian's C module, whose challenge parser has crashed workers on inputs of
//! this kind: that is printed as an observation, never required, so a fixed C
//! module does not fail this file.

mod common;
mod reg_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::digest::parse_authorization;
use common::kamailio::{Config, Kamailio};
use common::peer::{Server, UdpPeer, WAIT};
use common::sip::{Request, Response, SipMsg};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const VALID_CHALLENGES: &[&str] = &[
    r#"Digest realm="hostile.example", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth,auth-int", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    r#"Digest realm="hostile.example", nonce="7ypf/xlj9XXwfDPEoM4URrv", algorithm=SHA-256, qop="auth""#,
    r#"Digest realm="hostile.example", nonce="abc", algorithm=MD5-sess"#,
    r#"Digest realm="hostile.example", nonce="abc", algorithm=SHA-512-256-sess, qop=auth, userhash=true, stale=TRUE"#,
];

const PIECES: &[&str] = &[
    ",",
    "\"",
    "=",
    "\\",
    " ",
    "\t",
    "Digest ",
    "realm=",
    "nonce=",
    "algorithm=",
    "qop=",
    "opaque=\"",
    "\\\"",
    ",,,,",
    "MD5-sess",
    "SHA-256",
    "auth-int",
    "stale=true",
    "=\"\"",
    "\u{e9}",
    "\u{fffd}",
    "%00",
    "<",
    ">",
    ";",
    "Basic abc==",
];

/// A random edit of a valid value: truncation, insertion, deletion,
/// duplication or a huge value. Never CR, LF or NUL (they end the header).
fn mutate(rng: &mut StdRng, base: &str) -> String {
    let mut s = base.to_string();
    for _ in 0..rng.random_range(1..4) {
        let at = |rng: &mut StdRng, s: &String| {
            let mut i = rng.random_range(0..=s.len());
            while !s.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match rng.random_range(0..6) {
            0 => {
                let i = at(rng, &s);
                s.truncate(i);
            }
            1 | 2 => {
                let i = at(rng, &s);
                let p = PIECES[rng.random_range(0..PIECES.len())];
                s.insert_str(i, p);
            }
            3 => {
                let i = at(rng, &s);
                let j = at(rng, &s);
                let (a, b) = (i.min(j), i.max(j));
                s.replace_range(a..b, "");
            }
            4 => {
                let dup = s.clone();
                s.push_str(", ");
                s.push_str(dup.trim_start_matches("Digest "));
            }
            _ => {
                let i = at(rng, &s);
                s.insert_str(i, &"x".repeat(rng.random_range(100..6000)));
            }
        }
    }
    s
}

/// Every credential header we sent on must be a well-formed Digest header.
fn check_credentials(m: &SipMsg) -> Result<(), String> {
    for v in m
        .headers("Authorization")
        .into_iter()
        .chain(m.headers("Proxy-Authorization"))
    {
        let p = parse_authorization(v)?;
        for k in ["username", "realm", "nonce", "uri", "response"] {
            if !p.contains_key(k) {
                return Err(format!("{k} missing in {v}"));
            }
        }
    }
    Ok(())
}

/// The next final response, or None after a few seconds of silence.
fn recv_final(peer: &UdpPeer) -> Option<SipMsg> {
    let deadline = std::time::Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match peer.recv(left) {
            Some((m, _)) if !m.is_request() && m.code() >= 200 => return Some(m),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// Sends the hostile challenges through Kamailio with `module`'s uac.so;
/// returns the first problem seen, or None when everything held.
fn run_hostile_challenges(c_module: bool) -> Option<String> {
    let mut rng = StdRng::seed_from_u64(0x5eed_c4a1);
    let challenges: Vec<String> = (0..400)
        .map(|i| mutate(&mut rng, VALID_CHALLENGES[i % VALID_CHALLENGES.len()]))
        .collect();
    let bad_retries: Arc<Mutex<Vec<String>>> = Arc::default();
    let bad2 = bad_retries.clone();
    let list = challenges.clone();
    let uas = Server::spawn(UdpPeer::bind().named("uas"), move |peer, m| {
        if !m.is_request() || m.method() == "ACK" {
            return;
        }
        if m.has("Authorization") || m.has("Proxy-Authorization") {
            if let Err(e) = check_credentials(m) {
                bad2.lock().unwrap().push(e);
            }
            peer.send(Response::to(m, 200, "OK"));
            return;
        }
        // The caller numbers its requests in the Call-ID: hostile-<i>.
        let i: usize = m
            .call_id()
            .trim_start_matches("hostile-")
            .parse()
            .unwrap_or(0);
        let (code, name) = if i.is_multiple_of(2) {
            (401, "WWW-Authenticate")
        } else {
            (407, "Proxy-Authenticate")
        };
        peer.send(Response::to(m, code, "Challenge").header(name, &list[i % list.len()]));
    });
    let cfg = Config::new(&format!(
        "modparam(\"uac\", \"credential\", \"alice:hostile.example:secret\")\n\
         request_route {{\n\
           $du = \"sip:{}\";\n\
           t_on_failure(\"AUTH\");\n\
           t_relay();\n\
         }}\n\
         failure_route[AUTH] {{\n\
           if (t_check_status(\"401|407\")) {{\n\
             if (uac_auth()) {{ t_relay(); exit; }}\n\
           }}\n\
         }}",
        uas.addr()
    ));
    let k = Kamailio::start(if c_module { cfg.with_c_module() } else { cfg });
    let procs = k.process_count();
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    for (i, challenge) in challenges.iter().enumerate() {
        caller.send(
            Request::new("OPTIONS", "sip:bob@hostile.example").call_id(&format!("hostile-{i}")),
        );
        match recv_final(&caller) {
            Some(r) if r.code() >= 200 => {}
            other => {
                return Some(format!(
                    "request {i} (challenge {:?}) got {:?}; log:\n{}",
                    challenge,
                    other.map(|r| r.code()),
                    k.log()
                ));
            }
        }
    }
    if !k.is_running() || k.process_count() != procs || k.log().contains("exited by a signal") {
        return Some(format!("a Kamailio process died:\n{}", k.log()));
    }
    let bad = bad_retries.lock().unwrap();
    if !bad.is_empty() {
        return Some(format!("malformed credentials sent on: {bad:?}"));
    }
    None
}

#[test]
fn hostile_challenges_never_take_a_worker_down() {
    if let Some(problem) = run_hostile_challenges(false) {
        panic!("{problem}");
    }
}

/// The same input against Debian's C module, as an observation: so far a
/// worker dies (SIGSEGV), which is what operators gain by switching. Printed,
/// not asserted: the day Debian ships a C module that survives this input,
/// the observation changes and the test still passes. Everything about our
/// module is asserted above.
#[test]
fn the_same_hostile_challenges_against_the_c_module() {
    let observation = match run_hostile_challenges(true) {
        None => "the C module survived every hostile challenge".to_string(),
        Some(problem) => {
            let crashed = problem.contains("signal 11") || problem.contains("died");
            // The first line says what went wrong; the rest is Kamailio's log.
            let first = problem.lines().next().unwrap_or_default();
            let first = first.trim_end_matches("; log:").trim_end_matches(':');
            if crashed {
                format!("a C module worker crashed: {first}")
            } else {
                format!("the C module did not crash but failed: {first}")
            }
        }
    };
    // Written to stderr directly, not through eprintln!, which the test
    // harness captures: the observation is shown on every run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "observation (not asserted): {observation}"
    );
}

/// Garbage for a `vsf` parameter value.
fn forged_param(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-~_.!%*";
    let n = match rng.random_range(0..4) {
        0 => rng.random_range(0..5),
        1 => rng.random_range(5..64),
        2 => 4 * rng.random_range(1..40),
        _ => rng.random_range(1000..3000),
    };
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The core's own log line when its parser refuses a request before any
/// route runs (Kamailio 6.1 checks From there; 5.6 and 6.0 leave it to us).
const CORE_DROPPED: &str = "required headers not found in request";

/// How many requests the core's parser dropped so far.
fn core_drops(k: &Kamailio) -> usize {
    k.log().matches(CORE_DROPPED).count()
}

/// Waits for a final response to the request just sent, or for the core to
/// log that it dropped the request unparsed (no route, so no module, ran):
/// `dropped_before` is [`core_drops`] from before the request was sent.
/// True when answered.
fn final_or_dropped_by_core(
    k: &Kamailio,
    caller: &UdpPeer,
    dropped_before: usize,
    what: &str,
) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if caller
            .collect(Duration::from_millis(20))
            .iter()
            .any(|m| m.code() >= 200)
        {
            return true;
        }
        if core_drops(k) > dropped_before {
            return false;
        }
    }
    panic!(
        "{what}: no final response and no drop by the core's parser\n{}",
        k.log()
    );
}

#[test]
fn hostile_from_headers_and_forged_restore_params() {
    let mut rng = StdRng::seed_from_u64(0xf0e1_d2c3);
    // The callee answers everything; what it received is checked at the end.
    let callee = Server::spawn(UdpPeer::bind().named("callee"), |peer, m| {
        if m.is_request() && m.method() != "ACK" {
            peer.send(Response::to(m, 200, "OK"));
        }
    });
    let k = Kamailio::start(Config::new(&format!(
        "modparam(\"uac\", \"restore_passwd\", \"hostile\")\n\
         request_route {{\n\
           if (has_totag()) {{\n\
             if (loose_route()) {{ t_relay(); exit; }}\n\
             sl_send_reply(\"404\", \"No route\"); exit;\n\
           }}\n\
           record_route();\n\
           if (!uac_replace_from(\"Anonymous\", \"sip:anonymous@anonymous.invalid\")) {{\n\
             sl_send_reply(\"400\", \"Bad From\"); exit;\n\
           }}\n\
           $du = \"sip:{}\";\n\
           t_relay();\n\
         }}",
        callee.addr()
    )));
    let procs = k.process_count();
    let caller = UdpPeer::bind().named("caller").with_target(k.addr());
    let froms = [
        "\"Alice\" <sip:alice@example.com>;tag=a1",
        "sip:alice@example.com;tag=a1",
        "Alice <sip:alice@example.com;transport=udp>;tag=a1",
    ];
    // Mutated From headers on initial requests: refused (400) or relayed.
    let mut answered = 0;
    for i in 0..200 {
        let from = mutate(&mut rng, froms[i % froms.len()]);
        let dropped_before = core_drops(&k);
        caller.send(
            Request::new("MESSAGE", "sip:bob@example.com")
                .from_raw(&from)
                .call_id(&format!("hostile-from-{i}")),
        );
        answered += usize::from(final_or_dropped_by_core(
            &k,
            &caller,
            dropped_before,
            &format!("request {i} (From: {from})"),
        ));
    }
    // On 5.6 and 6.0 every request reaches uac_replace_from(); the 6.1 core
    // drops those whose From it cannot parse (117 of these 200). Enough must
    // remain for the test to say something about our module.
    eprintln!("{answered} of 200 mutated From headers reached the script");
    assert!(
        answered >= 50,
        "only {answered} of 200 requests reached the script"
    );
    // Forged restore parameters on sequential requests.
    let route_base = format!("<sip:127.0.0.1:{};lr;ftag=a1;vsf=", k.port);
    let callee_uri = format!("sip:bob@{}", callee.addr());
    for i in 0..200 {
        let route = format!("{route_base}{}>", forged_param(&mut rng));
        caller.send(
            Request::new("BYE", &callee_uri)
                .from_raw("<sip:anonymous@anonymous.invalid>;tag=a1")
                .to_raw("<sip:bob@example.com>;tag=b1")
                .route(&route)
                .call_id(&format!("hostile-route-{i}")),
        );
        let r = caller.expect_final(WAIT);
        assert!(r.code() >= 200, "BYE {i} got {}", r.code());
    }
    for rec in callee.received() {
        let m = &rec.msg;
        if !m.is_request() {
            continue;
        }
        // Relayed initial requests carry the new identity; sequential ones
        // either stay untouched (refused parameter) or get a well-formed URI.
        let from = m.hdr("From");
        let uri = common::sip::uri_of(from);
        if m.call_id().starts_with("hostile-from-") {
            assert!(uri.starts_with("sip:anonymous@"), "relayed From {from:?}");
        } else {
            assert!(
                uri.starts_with("sip:") && !uri.contains(' ') && !uri.contains('"'),
                "restored From is {from:?}"
            );
        }
    }
    assert!(k.is_running(), "kamailio died");
    assert_eq!(k.process_count(), procs, "a Kamailio process died");
}

/// Hostile replies to REGISTER: mutated challenges, Contact lists, Expires,
/// Min-Expires and Retry-After values.
fn hostile_register_replies(rng: &mut StdRng, n: usize) -> Vec<(u16, String, String)> {
    let contacts = [
        "<sip:acc{N}@127.0.0.1:5060>;expires=60",
        "<sip:acc{N}@127.0.0.1:5060>;expires=60, <sip:other@10.0.0.1>;expires=3600",
        "\"Acc\" <sip:acc{N}@127.0.0.1:5060;transport=udp>;q=0.5;expires=30",
    ];
    (0..n)
        .map(|i| match i % 4 {
            0 => {
                let v = mutate(rng, VALID_CHALLENGES[i % VALID_CHALLENGES.len()]);
                (401, "WWW-Authenticate".to_string(), v)
            }
            1 => (
                200,
                "Contact".to_string(),
                mutate(rng, contacts[i % contacts.len()]),
            ),
            2 => (200, "Expires".to_string(), mutate(rng, "3600")),
            _ => (423, "Min-Expires".to_string(), mutate(rng, "120")),
        })
        .collect()
}

/// Runs 30 registrations for a few seconds against a registrar answering
/// with hostile replies; returns the problem seen, if any.
fn run_hostile_register_replies() -> Option<String> {
    let mut rng = StdRng::seed_from_u64(0x4e61_5e6e);
    let replies = hostile_register_replies(&mut rng, 600);
    let count = Arc::new(Mutex::new(0usize));
    let count2 = count.clone();
    let registrar = Server::spawn(UdpPeer::bind().named("registrar"), move |peer, m| {
        if !m.is_request() || m.method() != "REGISTER" {
            return;
        }
        let mut n = count2.lock().unwrap();
        let (code, name, value) = &replies[*n % replies.len()];
        *n += 1;
        let value = value.replace("{N}", "");
        peer.send(Response::to(m, *code, "Hostile").header(name, &value));
    });
    let db = reg_support::RegDb::new();
    for i in 0..30 {
        db.add(
            &format!("acc{i}"),
            &format!("user{i}"),
            &format!("r{i}"),
            &format!("sip:{}", registrar.addr()),
            60,
            &[],
        );
    }
    let cfg = Config::new(&format!(
        "loadmodule \"{{MODULES}}/db_sqlite.so\"\n\
         modparam(\"uac\", \"reg_db_url\", \"{}\")\n\
         modparam(\"uac\", \"reg_contact_addr\", \"127.0.0.1:{{PORT}}\")\n\
         modparam(\"uac\", \"reg_timer_interval\", 1)\n\
         modparam(\"uac\", \"reg_retry_interval\", 1)\n\
         request_route {{ sl_send_reply(\"404\", \"Not here\"); }}",
        db.url()
    ));
    let k = Kamailio::start(cfg);
    let procs = k.process_count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        if !k.is_running() || k.log().contains("exited by a signal") {
            return Some(format!("a Kamailio process died:\n{}", k.log()));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let sent = *count.lock().unwrap();
    if sent < 60 {
        return Some(format!("only {sent} REGISTERs were sent:\n{}", k.log()));
    }
    if k.process_count() != procs {
        return Some(format!("a Kamailio process died:\n{}", k.log()));
    }
    None
}

#[test]
fn hostile_register_replies_never_take_a_process_down() {
    if let Some(problem) = run_hostile_register_replies() {
        panic!("{problem}");
    }
}
