//! Retry classes (README "Retry classes"; issue 16): per-class retry intervals,
//! Retry-After, capped exponential backoff with jitter, a maximum of attempts counted in
//! `uac:reggiveup`, refresh at a share of the granted expiry, and the C module's
//! behaviour when none of it is configured. Real Kamailio, a real uacreg table, and a
//! registrar on UDP that the test drives one reply at a time.
//!
//! Timing: the state machine counts whole seconds and the timer process runs once a
//! second, so a retry due `w` seconds after a reply goes out after more than `w - 1` and
//! less than `w + 1` seconds; [`SLACK`] more is allowed for scheduling on a busy machine.
//! The intervals of each test are chosen so that these windows do not overlap between
//! the values a test tells apart.

mod common;
mod reg_support;

use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio, check_config};
use reg_support::{RegDb, Registrar, Req, counter, field, wait_counter};

const S: Duration = Duration::from_secs(1);
/// Scheduling latency allowed on top of the 1 s timer granularity.
const SLACK: Duration = Duration::from_millis(500);

fn cfg(db: &RegDb, extra: &str) -> Config {
    Config::new(&format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 1)
modparam("tm", "fr_timer", 1000)
{extra}
request_route {{
    sl_send_reply("404", "Not here");
}}
"#,
        url = db.url()
    ))
}

/// One account `u1` (user bob, password secret) at the test registrar.
fn start(extra: &str, expires: u32) -> (Kamailio, Registrar, RegDb) {
    let db = RegDb::new();
    let reg = Registrar::new();
    db.add("u1", "alice", "bob", &reg.proxy(), expires, &[]);
    let k = Kamailio::start(cfg(&db, extra));
    (k, reg, db)
}

/// `failure_class` and `failures` of `u1` in `uac.reg_info`.
fn failure_info(k: &Kamailio) -> (String, u32) {
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    let class = field(&out, "failure_class")
        .unwrap_or_else(|| panic!("no failure_class: {out}"))
        .to_string();
    let n = field(&out, "failures")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no failures: {out}"));
    (class, n)
}

/// Waits until the failure just answered has been handled (`failures` = `n`).
fn wait_failures(k: &Kamailio, class: &str, n: u32) {
    let deadline = Instant::now() + 3 * S;
    loop {
        let got = failure_info(k);
        if got == (class.to_string(), n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reg_info shows {got:?}, want ({class:?}, {n})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A driven registrar conversation: every reply's send time, to measure the retries.
struct Run {
    reg: Registrar,
    seen: Vec<(String, u32)>,
}

impl Run {
    fn new(reg: Registrar) -> Run {
        Run {
            reg,
            seen: Vec::new(),
        }
    }

    /// The next REGISTER (not a retransmission), within `t`.
    fn next(&mut self, t: Duration, what: &str) -> Req {
        self.reg
            .recv_new(t, &mut self.seen)
            .unwrap_or_else(|| panic!("no REGISTER {what} within {t:?}"))
    }

    /// Answers `r` with `code` (and `extra` headers); returns when it was sent.
    fn answer(&self, r: &Req, code: u16, extra: &str) -> Instant {
        self.reg.reply(r, code, "Test", extra);
        Instant::now()
    }

    /// The next REGISTER must come `wait` ± `jitter` seconds after `since`, within the
    /// timer's granularity (see the module comment).
    fn retry_after(&mut self, since: Instant, wait: u64, jitter: u64, what: &str) -> Req {
        let lo = Duration::from_secs(wait - jitter).saturating_sub(S);
        let hi = Duration::from_secs(wait + jitter) + S + SLACK;
        let r = self.next(hi + S, what);
        let d = r.at.duration_since(since);
        assert!(
            d > lo && d < hi,
            "{what}: retried after {d:?}, want {wait} s ± {jitter} s (window {lo:?}..{hi:?})"
        );
        r
    }

    /// No REGISTER for `t`.
    fn silent(&mut self, t: Duration, what: &str) {
        if let Some(r) = self.reg.recv_new(t, &mut self.seen) {
            panic!("{what}: unexpected REGISTER {}", r.text);
        }
    }

    /// A 401 with `nonce`.
    fn challenge(&self, r: &Req, nonce: &str) -> Instant {
        self.answer(
            r,
            401,
            &format!(
                "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"{nonce}\", \
                 qop=\"auth\"\r\n"
            ),
        )
    }

    /// 200 with our Contact for `expires` seconds.
    fn ok(&self, r: &Req, expires: u32) -> Instant {
        self.reg.ok(r, expires);
        Instant::now()
    }
}

/// Temporary failures (503, 408, no answer at all, 480) retry after
/// `reg_retry_interval_temporary`, not the flat `reg_retry_interval`; a Retry-After
/// longer than the interval is waited for; `uac.reg_info` shows the class and the
/// consecutive failures, both reset by the 200.
#[test]
fn temporary_failures_retry_after_their_interval() {
    let (k, reg, _db) = start(
        "modparam(\"uac\", \"reg_retry_interval\", 30)\n\
         modparam(\"uac\", \"reg_retry_interval_temporary\", 2)\n\
         modparam(\"uac\", \"reg_retry_interval_auth\", 30)\n\
         modparam(\"uac\", \"reg_retry_interval_fatal\", 30)",
        60,
    );
    let mut run = Run::new(reg);
    let r = run.next(5 * S, "at start");
    let t = run.answer(&r, 503, "");
    let r = run.retry_after(t, 2, 0, "after 503");
    assert_eq!(failure_info(&k), ("temporary".into(), 1));
    let t = run.answer(&r, 408, "");
    let r = run.retry_after(t, 2, 0, "after 408");
    // No answer: tm's fr_timer (1 s) ends the transaction with a local 408.
    let r = run.retry_after(r.at, 1 + 2, 0, "after no answer");
    assert_eq!(failure_info(&k), ("temporary".into(), 3));
    let t = run.answer(&r, 480, "");
    let r = run.retry_after(t, 2, 0, "after 480");
    let t = run.answer(&r, 503, "Retry-After: 5\r\n");
    let r = run.retry_after(t, 5, 0, "after 503 with Retry-After: 5");
    assert_eq!(failure_info(&k), ("temporary".into(), 5));
    assert!(
        k.log()
            .contains("got sip response 503 while registering [u1] (temporary, retry in 5 s)"),
        "{}",
        k.log()
    );
    run.ok(&r, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(failure_info(&k), ("none".into(), 0), "reset by the 200");
    assert_eq!(counter(&k, "reggiveup"), 0);
}

/// 403 and a second 401 for the nonce just answered are "credentials rejected" (the
/// auth interval); 404 is fatal (the fatal interval); Retry-After is honoured for these
/// classes too; a second 401 with a new nonce is a rotation, answered at once.
#[test]
fn auth_and_fatal_failures_retry_after_their_intervals() {
    let (k, reg, _db) = start(
        "modparam(\"uac\", \"reg_retry_interval\", 30)\n\
         modparam(\"uac\", \"reg_retry_interval_temporary\", 30)\n\
         modparam(\"uac\", \"reg_retry_interval_auth\", 2)\n\
         modparam(\"uac\", \"reg_retry_interval_fatal\", 5)",
        60,
    );
    let mut run = Run::new(reg);
    let r = run.next(5 * S, "at start");
    let t = run.answer(&r, 403, "");
    let r = run.retry_after(t, 2, 0, "after 403");
    assert_eq!(failure_info(&k), ("auth".into(), 1));

    // 401, answered; 401 again with the same nonce: credentials rejected.
    run.challenge(&r, "same-nonce");
    let r2 = run.next(3 * S, "with credentials");
    assert!(r2.h("Authorization").is_some(), "{}", r2.text);
    let t = run.challenge(&r2, "same-nonce");
    let r = run.retry_after(t, 2, 0, "after a second 401 with the same nonce");
    assert_eq!(failure_info(&k), ("auth".into(), 2));
    assert!(
        k.log()
            .contains("registration of [u1] failed (credentials rejected, auth), retry in"),
        "{}",
        k.log()
    );

    let t = run.answer(&r, 404, "");
    let r = run.retry_after(t, 5, 0, "after 404");
    assert_eq!(failure_info(&k), ("fatal".into(), 3));
    let t = run.answer(&r, 403, "Retry-After: 4 (maintenance)\r\n");
    let r = run.retry_after(t, 4, 0, "after 403 with Retry-After: 4");
    assert_eq!(failure_info(&k), ("auth".into(), 4));

    // A new nonce without stale=true: answered once more, then registered.
    run.challenge(&r, "first");
    let r2 = run.next(3 * S, "with credentials");
    run.challenge(&r2, "rotated");
    let r3 = run.next(3 * S, "with credentials for the rotated nonce");
    let auth = r3.h("Authorization").unwrap_or_default();
    assert!(auth.contains("nonce=\"rotated\""), "{auth}");
    assert_eq!(r3.call_id(), r.call_id());
    assert_eq!(r3.cseq(), r2.cseq() + 1);
    run.ok(&r3, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(failure_info(&k), ("none".into(), 0));
    assert_eq!(counter(&k, "regdisabled"), 0);
}

/// reg_retry_backoff_max: each consecutive failure doubles the interval (1, 2, 4) up to
/// the cap (5, with up to 20 % jitter); reg_retry_max_attempts 5: the fifth failure
/// disables the record, counted in uac:reggiveup; uac.reg_enable starts a new run.
#[test]
fn backoff_doubles_to_the_cap_and_max_attempts_gives_up() {
    let (k, reg, _db) = start(
        "modparam(\"uac\", \"reg_retry_interval\", 1)\n\
         modparam(\"uac\", \"reg_retry_backoff_max\", 5)\n\
         modparam(\"uac\", \"reg_retry_max_attempts\", 5)",
        60,
    );
    let mut run = Run::new(reg);
    let mut r = run.next(5 * S, "at start");
    // 5 * 20 % = 1 s of jitter at the cap; none on 1, 2 and 4 (whole seconds).
    for (n, (wait, jitter)) in [(1, 0), (2, 0), (4, 0), (5, 1)].into_iter().enumerate() {
        let t = run.answer(&r, 503, "");
        r = run.retry_after(t, wait, jitter, &format!("after failure {}", n + 1));
    }
    assert_eq!(failure_info(&k), ("temporary".into(), 4));
    assert_eq!(counter(&k, "reggiveup"), 0);
    run.answer(&r, 500, "");
    wait_counter(&k, "reggiveup", 1, 3 * S);
    assert_eq!(counter(&k, "regdisabled"), 1);
    assert_eq!(failure_info(&k), ("temporary".into(), 5));
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "flags"), Some("17"), "INIT|DISABLED: {out}");
    assert!(
        k.log().contains(
            "registration of [u1] given up after 5 consecutive failures \
             (reg_retry_max_attempts): record disabled"
        ),
        "{}",
        k.log()
    );
    run.silent(6 * S, "given up");

    // Enabled again: registers at once, with a fresh count.
    k.kamcmd(&["uac.reg_enable", "l_uuid", "u1"]);
    let asked = Instant::now();
    let r = run.next(3 * S, "after uac.reg_enable");
    assert!(r.at.duration_since(asked) < S + SLACK);
    assert_eq!(failure_info(&k).1, 0);
    let t = run.answer(&r, 503, "");
    let r = run.retry_after(t, 1, 0, "first failure after enabling");
    run.ok(&r, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(counter(&k, "regdisabled"), 0);
    assert_eq!(counter(&k, "reggiveup"), 1, "counts events, not records");
}

/// None of the new parameters set: every class retries after the flat
/// reg_retry_interval, without backoff, without a limit, as the C module does.
#[test]
fn defaults_retry_every_class_after_the_flat_interval() {
    let (k, reg, _db) = start("modparam(\"uac\", \"reg_retry_interval\", 2)", 60);
    let mut run = Run::new(reg);
    let mut r = run.next(5 * S, "at start");
    for (n, code) in [404, 403, 503, 503].into_iter().enumerate() {
        let t = run.answer(&r, code, "");
        r = run.retry_after(t, 2, 0, &format!("after {code} (failure {})", n + 1));
    }
    // The same nonce twice: credentials rejected, still the flat interval.
    run.challenge(&r, "n");
    let r2 = run.next(3 * S, "with credentials");
    let t = run.challenge(&r2, "n");
    let r = run.retry_after(t, 2, 0, "after a second 401 with the same nonce");
    assert_eq!(failure_info(&k), ("auth".into(), 5));
    run.ok(&r, 60);
    wait_counter(&k, "regactive", 1, 3 * S);
    assert_eq!(counter(&k, "reggiveup"), 0);
    assert_eq!(counter(&k, "regdisabled"), 0);
}

/// Defaults (reg_retry_interval 0): the first failure disables the record, whatever
/// its class and a Retry-After (the C module's behaviour); uac:reggiveup counts it.
#[test]
fn defaults_disable_on_the_first_failure_and_count_it() {
    let (k, reg, _db) = start("", 60);
    let mut run = Run::new(reg);
    let r = run.next(5 * S, "at start");
    run.answer(&r, 503, "Retry-After: 1\r\n");
    wait_counter(&k, "regdisabled", 1, 3 * S);
    assert_eq!(counter(&k, "reggiveup"), 1);
    wait_failures(&k, "temporary", 1);
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", "u1"]);
    assert_eq!(field(&out, "flags"), Some("17"), "INIT|DISABLED: {out}");
    run.silent(3 * S, "disabled");
    assert!(
        !k.log().contains("given up after"),
        "no reg_retry_max_attempts message without the parameter"
    );
}

/// reg_refresh_percent 25: the refresh goes out once a quarter of the granted expiry
/// has passed (12 s granted: after 3 s, where the C margin would wait 8 s; 4 s granted:
/// after 1 s), with the binding still valid each time.
#[test]
fn refresh_at_a_share_of_short_granted_expiries() {
    let (k, reg, _db) = start("modparam(\"uac\", \"reg_refresh_percent\", 25)", 60);
    let mut run = Run::new(reg);
    let r = run.next(5 * S, "at start");
    let t = run.ok(&r, 12);
    let r = run.retry_after(t, 3, 0, "refresh of a 12 s binding");
    assert_eq!(counter(&k, "regactive"), 1, "still registered");
    let t = run.ok(&r, 4);
    let r = run.retry_after(t, 1, 0, "refresh of a 4 s binding");
    let t = run.ok(&r, 12);
    run.retry_after(t, 3, 0, "refresh of a 12 s binding again");
    assert_eq!(counter(&k, "regactive"), 1, "never lapsed");
    assert_eq!(failure_info(&k), ("none".into(), 0));
}

/// Without reg_refresh_percent the refresh keeps the C margin: min(reg_timer_interval
/// + 3, e/2) before expiry (12 s granted, timer 1 s: after 8 s).
#[test]
fn refresh_default_keeps_the_c_margin() {
    let (_k, reg, _db) = start("", 60);
    let mut run = Run::new(reg);
    let r = run.next(5 * S, "at start");
    let t = run.ok(&r, 12);
    run.retry_after(t, 8, 0, "refresh of a 12 s binding");
}

/// The new parameters are ints; bad values stop Kamailio at start with a message that
/// names the parameter.
#[test]
fn bad_retry_parameters_are_refused() {
    let db = RegDb::new();
    let ok = check_config(&cfg(
        &db,
        "modparam(\"uac\", \"reg_retry_interval_temporary\", 5)\n\
         modparam(\"uac\", \"reg_retry_interval_auth\", -1)\n\
         modparam(\"uac\", \"reg_retry_interval_fatal\", 0)\n\
         modparam(\"uac\", \"reg_retry_backoff_max\", 300)\n\
         modparam(\"uac\", \"reg_retry_max_attempts\", 10)\n\
         modparam(\"uac\", \"reg_refresh_percent\", 80)",
    ));
    assert!(ok.ok, "{}", ok.output);
    for (param, value, needle) in [
        ("reg_refresh_percent", "100", "got 100"),
        (
            "reg_retry_interval_fatal",
            "-2",
            "must be -1 (use reg_retry_interval)",
        ),
        ("reg_retry_max_attempts", "-1", "must be >= 0"),
    ] {
        let log = Kamailio::start_expect_failure(cfg(
            &db,
            &format!("modparam(\"uac\", \"{param}\", {value})"),
        ));
        let want = format!("invalid modparam \"{param}\"");
        assert!(
            log.contains(&want) && log.contains(needle),
            "{param}: {log}"
        );
    }
    let bad = check_config(&cfg(
        &db,
        "modparam(\"uac\", \"reg_retry_backoff_max\", \"long\")",
    ));
    assert!(!bad.ok, "a string for an int parameter: {}", bad.output);
}
