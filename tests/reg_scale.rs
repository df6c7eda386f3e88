//! Registrations at scale (issue 16): 100k accounts load and register in time linear in
//! the number of accounts, bounded from a 10k run on the same machine (not an absolute
//! time), with every REGISTER sent once (none retransmitted), in Kamailio's default
//! 8 MB of pkg memory per process (the C module needs the whole table in pkg).

mod common;
mod reg_support;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio};
use reg_support::RegDb;

/// A registrar that answers every REGISTER at once with a 200 OK listing the request's
/// Contact (also a retransmission, as a real registrar does), and counts what it got.
struct FastRegistrar {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    requests: u64,
    /// Via branches: a retransmission repeats its branch.
    branches: HashSet<String>,
}

/// The value of the first header `name` (case-insensitive) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn ok_for(req: &str) -> Option<(String, String)> {
    let head = req.split("\r\n\r\n").next()?;
    if !head.starts_with("REGISTER ") {
        return None;
    }
    let vias: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("via"))
        })
        .collect();
    let branch = vias
        .first()?
        .split(";branch=")
        .nth(1)?
        .split(';')
        .next()?
        .to_string();
    let reply = format!(
        "SIP/2.0 200 OK\r\n{}\r\nFrom: {}\r\nTo: {};tag=scale\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Contact: {};expires=3600\r\nContent-Length: 0\r\n\r\n",
        vias.join("\r\n"),
        header(head, "from")?,
        header(head, "to")?,
        header(head, "call-id")?,
        header(head, "cseq")?,
        header(head, "contact")?,
    );
    Some((branch, reply))
}

impl FastRegistrar {
    fn start() -> FastRegistrar {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind registrar");
        common::peer::large_receive_buffer(&sock);
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (st, sn) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while !st.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..len]);
                let Some((branch, reply)) = ok_for(&text) else {
                    continue;
                };
                sock.send_to(reply.as_bytes(), from).expect("send 200");
                let mut s = sn.lock().unwrap();
                s.requests += 1;
                s.branches.insert(branch);
            }
        });
        FastRegistrar {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// (REGISTERs received, distinct transactions).
    fn counts(&self) -> (u64, u64) {
        let s = self.seen.lock().unwrap();
        (s.requests, s.branches.len() as u64)
    }
}

impl Drop for FastRegistrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn counter(k: &Kamailio, name: &str) -> i64 {
    let out = k.kamcmd(&["cnt.get", "uac", name]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("cnt.get {name}: {out}"))
}

/// Polls `name` until it reaches `want`; the time it took from `t0`, or a panic with
/// `what` after `limit`.
fn time_until(
    k: &Kamailio,
    name: &str,
    want: i64,
    t0: Instant,
    limit: Duration,
    what: &str,
) -> Duration {
    loop {
        let v = counter(k, name);
        if v >= want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{what}: {name} = {v} of {want} after {limit:?} (bound from the 10k run)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Run {
    load: Duration,
    registered: Duration,
}

/// Loads `n` accounts and waits until all are registered, each within `limit` from
/// Kamailio's start.
fn run(n: u64, limit: Duration) -> Run {
    let db = RegDb::new();
    let reg = FastRegistrar::start();
    // One statement: a recursive CTE makes the rows in the DB itself.
    db.exec(&format!(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last}) \
         INSERT INTO uacreg (l_uuid,l_username,l_domain,r_username,r_domain,realm,\
         auth_username,auth_password,auth_proxy,expires) \
         SELECT 'u'||i, 'l'||i, 'local', 'r'||i, 'example.com', 'example.com', 'r'||i, \
         'secret', 'sip:{addr}', 3600 FROM c;",
        last = n - 1,
        addr = reg.addr
    ));
    let body = format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:{{PORT}}")
modparam("uac", "reg_timer_interval", 60)
request_route {{
    sl_send_reply("404", "Not here");
}}
"#,
        url = db.url()
    );
    // shm for 100k records and their transactions (tm keeps each for its 5 s wait
    // timer: about 40k at a time); pkg stays at the default 8 MB.
    let t0 = Instant::now();
    let k = Kamailio::start(Config::new(&body).shm_mb(1024));
    let load = time_until(&k, "regtotal", n as i64, t0, limit, &format!("load of {n}"));
    let registered = time_until(
        &k,
        "regactive",
        n as i64,
        t0,
        limit,
        &format!("{n} registered"),
    );
    // Replies still in flight are answered; give retransmissions a chance to show.
    std::thread::sleep(Duration::from_secs(1));
    let (requests, distinct) = reg.counts();
    assert_eq!(distinct, n, "one REGISTER transaction per account");
    assert_eq!(
        requests,
        n,
        "{n} accounts: {} REGISTERs were retransmissions",
        requests - distinct
    );
    assert_eq!(counter(&k, "regtotal"), n as i64);
    assert!(
        !k.log().contains("no private memory"),
        "pkg memory ran out:\n{}",
        k.log()
    );
    println!(
        "{n} accounts: loaded in {:.2} s, all registered in {:.2} s",
        load.as_secs_f64(),
        registered.as_secs_f64()
    );
    Run { load, registered }
}

/// 10k then 100k accounts: 10 times the accounts may take at most 30 times as long (a
/// linear table with the noise of a shared machine; the quadratic one took 100 times
/// as long), plus 5 s.
#[test]
fn hundred_thousand_accounts_in_linear_time() {
    let small = run(10_000, Duration::from_secs(120));
    let bound = |t: Duration| t * 30 + Duration::from_secs(5);
    let limit = bound(small.registered);
    let big = run(100_000, limit);
    assert!(
        big.load <= bound(small.load),
        "load: 10k {:?}, 100k {:?}",
        small.load,
        big.load
    );
    assert!(big.registered <= limit);
}
