//! Active-active registration over DMQ (`reg_cluster`, issue 12): Kamailio nodes with
//! dmq read one uacreg table, and each account is registered by exactly one of them
//! (rendezvous hashing of the l_uuid over the active DMQ nodes). The owner shares each
//! binding (Call-ID, CSeq, expiry, planned refresh) with the others, so a node that
//! takes an account over (owner killed, owner stopped cleanly, node back) refreshes the
//! SAME binding: same Call-ID, CSeq + 1, at the time the old owner planned to.
//!
//! The registrar here keeps RFC 3261 §10.3 bindings and records every accepted
//! REGISTER, every CSeq it refused and every binding that lapsed, so the tests can
//! say "one binding per account, never lapsed, no duplicate REGISTER".
//!
//! Each test has its own loopback IPs for its DMQ nodes (A: 127.0.0.1-3, B: .4-6,
//! C: .7-9, D: .10-12, E: .13-15, F: .16-18): from 6.0 dmq matches nodes by IP without port (`find_dmq_node_ip`), so
//! nodes sharing one IP never all see each other, and tests running in parallel must
//! not meet.

mod common;
mod reg_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio, free_port};
use common::sip::{SipMsg, param, uri_of};
use reg_support::{RegDb, counter, field};

// ---------------------------------------------------------------------------
// A registrar with RFC 3261 §10.3 bindings
// ---------------------------------------------------------------------------

/// One REGISTER the registrar accepted (one per Contact it changed).
#[derive(Debug, Clone)]
struct Accepted {
    /// The user of the Contact URI (the module's l_uuid).
    l_uuid: String,
    aor: String,
    contact: String,
    call_id: String,
    cseq: u32,
    /// Granted seconds; 0: the binding was removed.
    expires: u32,
    from: SocketAddr,
    at: Instant,
}

/// A REGISTER refused with 500 because its CSeq was not higher than the binding's
/// (same Call-ID, RFC 3261 §10.3 step 7).
#[derive(Debug, Clone)]
struct Rejected {
    l_uuid: String,
    call_id: String,
    cseq: u32,
    stored_cseq: u32,
    from: SocketAddr,
    at: Instant,
}

/// A binding found past its expiry (by a REGISTER of its AOR or the periodic check).
#[derive(Debug, Clone)]
struct Lapse {
    aor: String,
    contact: String,
    l_uuid: String,
    expired_at: Instant,
    noticed_at: Instant,
}

#[derive(Debug, Clone)]
struct Binding {
    call_id: String,
    cseq: u32,
    expires_at: Instant,
}

/// The registrar's state and history.
#[derive(Default)]
struct Book {
    /// AOR (To URI) -> Contact URI -> binding.
    bindings: HashMap<String, BTreeMap<String, Binding>>,
    accepted: Vec<Accepted>,
    rejected: Vec<Rejected>,
    lapses: Vec<Lapse>,
    /// The most bindings an AOR had at once.
    max_bindings: HashMap<String, usize>,
    /// Answer per top Via branch: a retransmission gets the same answer again.
    answers: HashMap<String, Vec<u8>>,
    retransmissions: u64,
}

/// The user part of a SIP URI (`sip:acc1@h:5060;x` -> `acc1`).
fn uri_user(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((u, _)) => u.to_string(),
        None => String::new(),
    }
}

impl Book {
    /// Drops the bindings past their expiry (of `aor` only, or all), recording a lapse
    /// for each.
    fn expire(&mut self, aor: Option<&str>, now: Instant) {
        let Book {
            bindings, lapses, ..
        } = self;
        let mut drop_expired = |a: &str, contacts: &mut BTreeMap<String, Binding>| {
            contacts.retain(|contact, b| {
                if b.expires_at > now {
                    return true;
                }
                lapses.push(Lapse {
                    aor: a.to_string(),
                    contact: contact.clone(),
                    l_uuid: uri_user(contact),
                    expired_at: b.expires_at,
                    noticed_at: now,
                });
                false
            });
        };
        match aor {
            Some(a) => {
                if let Some(contacts) = bindings.get_mut(a) {
                    drop_expired(a, contacts);
                }
            }
            None => {
                for (a, contacts) in bindings.iter_mut() {
                    drop_expired(a, contacts);
                }
                bindings.retain(|_, c| !c.is_empty());
            }
        }
    }

    /// Handles one datagram from `from` at `now`; the answer to send back, if any.
    fn handle(&mut self, data: &[u8], from: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        let msg = SipMsg::parse(data).ok()?;
        if !msg.is_request() || msg.method() != "REGISTER" {
            return None;
        }
        let branch = msg.branch().unwrap_or_default();
        if let Some(answer) = self.answers.get(&branch) {
            self.retransmissions += 1;
            return Some(answer.clone());
        }
        let answer = self.register(&msg, from, now);
        self.answers.insert(branch, answer.clone());
        Some(answer)
    }

    /// RFC 3261 §10.3 steps 6-8 for one (new) REGISTER transaction.
    fn register(&mut self, msg: &SipMsg, from: SocketAddr, now: Instant) -> Vec<u8> {
        let (Some(to), Some(call_id), Some(cseq)) = (
            msg.header("To"),
            msg.header("Call-ID"),
            msg.header("CSeq")
                .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok()),
        ) else {
            return reply(msg, 400, "Bad Request", &[]);
        };
        let aor = uri_of(to).to_string();
        let call_id = call_id.to_string();
        let default_expires = msg
            .header("Expires")
            .and_then(|e| e.trim().parse::<u32>().ok());
        self.expire(Some(&aor), now);
        // (contact URI or "*", expires); the registrar grants what was asked.
        let mut changes: Vec<(String, u32)> = Vec::new();
        for c in msg.values("Contact") {
            if c.trim() == "*" {
                changes.push(("*".into(), default_expires.unwrap_or(3600)));
                continue;
            }
            let e = param(&c, "expires")
                .and_then(|e| e.parse::<u32>().ok())
                .or(default_expires)
                .unwrap_or(3600);
            changes.push((uri_of(&c).to_string(), e));
        }
        let current = self.bindings.entry(aor.clone()).or_default();
        // Step 6/7: every change is checked first; one refused aborts them all.
        for (contact, _) in &changes {
            let hits: Vec<(&String, &Binding)> = if contact == "*" {
                current.iter().collect()
            } else {
                current.get_key_value(contact).into_iter().collect()
            };
            for (stored_contact, b) in hits {
                if b.call_id == call_id && cseq <= b.cseq {
                    self.rejected.push(Rejected {
                        l_uuid: uri_user(stored_contact),
                        call_id: call_id.clone(),
                        cseq,
                        stored_cseq: b.cseq,
                        from,
                        at: now,
                    });
                    return reply(msg, 500, "CSeq Not Higher", &[]);
                }
            }
        }
        for (contact, e) in changes {
            if contact == "*" {
                current.clear();
            } else if e == 0 {
                current.remove(&contact);
            } else {
                current.insert(
                    contact.clone(),
                    Binding {
                        call_id: call_id.clone(),
                        cseq,
                        expires_at: now + Duration::from_secs(e.into()),
                    },
                );
            }
            self.accepted.push(Accepted {
                l_uuid: uri_user(&contact),
                aor: aor.clone(),
                contact,
                call_id: call_id.clone(),
                cseq,
                expires: e,
                from,
                at: now,
            });
        }
        let max = self.max_bindings.entry(aor.clone()).or_default();
        *max = (*max).max(current.len());
        // §10.3 step 8: the 200 lists every current binding with its remaining time.
        let contacts: Vec<String> = current
            .iter()
            .map(|(uri, b)| {
                let left = b.expires_at.saturating_duration_since(now).as_secs_f64();
                format!("<{uri}>;expires={}", left.round() as u64)
            })
            .collect();
        reply(msg, 200, "OK", &contacts)
    }
}

/// A response to `msg` with `contacts` as Contact headers.
fn reply(msg: &SipMsg, code: u16, reason: &str, contacts: &[String]) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for v in msg.headers("Via") {
        let _ = write!(out, "Via: {v}\r\n");
    }
    let to = msg.header("To").unwrap_or("");
    let to_tag = if param(to, "tag").is_some() {
        ""
    } else {
        ";tag=binder"
    };
    let _ = write!(
        out,
        "From: {}\r\nTo: {to}{to_tag}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        msg.header("From").unwrap_or(""),
        msg.header("Call-ID").unwrap_or(""),
        msg.header("CSeq").unwrap_or("")
    );
    for c in contacts {
        let _ = write!(out, "Contact: {c}\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// The registrar on a UDP socket of 127.0.0.1, in its own thread; it also checks
/// every 200 ms for bindings past their expiry.
struct Registrar {
    addr: SocketAddr,
    t0: Instant,
    stop: Arc<AtomicBool>,
    book: Arc<Mutex<Book>>,
    thread: Option<JoinHandle<()>>,
}

impl Registrar {
    fn start() -> Registrar {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind registrar");
        common::peer::large_receive_buffer(&sock);
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let book = Arc::new(Mutex::new(Book::default()));
        let (st, bk) = (stop.clone(), book.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            let mut last_check = Instant::now();
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let answer = bk.lock().unwrap().handle(&buf[..n], from, Instant::now());
                    if let Some(a) = answer {
                        let _ = sock.send_to(&a, from);
                    }
                }
                if last_check.elapsed() >= Duration::from_millis(200) {
                    last_check = Instant::now();
                    bk.lock().unwrap().expire(None, last_check);
                }
            }
        });
        Registrar {
            addr,
            t0: Instant::now(),
            stop,
            book,
            thread: Some(thread),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&Book) -> R) -> R {
        f(&self.book.lock().unwrap())
    }

    /// How many accounts have an accepted REGISTER.
    fn accounts(&self) -> usize {
        self.with(|b| {
            b.accepted
                .iter()
                .map(|a| a.l_uuid.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len()
        })
    }

    /// Accepted REGISTERs per l_uuid, in order.
    fn by_account(&self) -> BTreeMap<String, Vec<Accepted>> {
        self.with(|b| {
            let mut m: BTreeMap<String, Vec<Accepted>> = BTreeMap::new();
            for a in &b.accepted {
                m.entry(a.l_uuid.clone()).or_default().push(a.clone());
            }
            m
        })
    }

    /// Seconds since the registrar started, for the histories.
    fn t(&self, at: Instant) -> f64 {
        at.duration_since(self.t0).as_secs_f64()
    }

    /// Everything the registrar saw of `l_uuid`, one line each, in time order.
    fn history(&self, l_uuid: &str, who: &dyn Fn(&SocketAddr) -> String) -> String {
        let mut lines: Vec<(Instant, String)> = Vec::new();
        self.with(|b| {
            for a in b.accepted.iter().filter(|a| a.l_uuid == l_uuid) {
                lines.push((
                    a.at,
                    format!(
                        "{:8.3} s  accepted from {} ({}): {} -> {} Call-ID {} CSeq {} expires {}",
                        self.t(a.at),
                        who(&a.from),
                        a.from,
                        a.aor,
                        a.contact,
                        a.call_id,
                        a.cseq,
                        a.expires
                    ),
                ));
            }
            for r in b.rejected.iter().filter(|r| r.l_uuid == l_uuid) {
                lines.push((
                    r.at,
                    format!(
                        "{:8.3} s  REJECTED (500, CSeq {} <= stored {}) from {} ({}): Call-ID {}",
                        self.t(r.at),
                        r.cseq,
                        r.stored_cseq,
                        who(&r.from),
                        r.from,
                        r.call_id
                    ),
                ));
            }
            for l in b.lapses.iter().filter(|l| l.l_uuid == l_uuid) {
                lines.push((
                    l.expired_at,
                    format!(
                        "{:8.3} s  LAPSED: binding {} of {} (noticed at {:.3} s)",
                        self.t(l.expired_at),
                        l.contact,
                        l.aor,
                        self.t(l.noticed_at)
                    ),
                ));
            }
        });
        lines.sort_by_key(|(at, _)| *at);
        let mut s = format!("history of {l_uuid}:\n");
        for (_, l) in lines {
            s.push_str("  ");
            s.push_str(&l);
            s.push('\n');
        }
        s
    }

    /// The histories of up to 10 of `accounts`, for failure messages.
    fn histories<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a String>,
        who: &dyn Fn(&SocketAddr) -> String,
    ) -> String {
        let accounts: Vec<&String> = accounts.into_iter().collect();
        let mut s = String::new();
        for a in accounts.iter().take(10) {
            s.push_str(&self.history(a, who));
        }
        if accounts.len() > 10 {
            let _ = writeln!(s, "(and {} more accounts)", accounts.len() - 10);
        }
        s
    }

    /// What every test requires of the registrar's whole history: no binding lapsed,
    /// no REGISTER refused for its CSeq (a duplicate or stale refresh), never two
    /// bindings for one AOR, nothing unregistered.
    fn assert_clean(&self, who: &dyn Fn(&SocketAddr) -> String) {
        let (lapses, rejected, crowded, removed) = self.with(|b| {
            (
                b.lapses.clone(),
                b.rejected.clone(),
                b.max_bindings
                    .iter()
                    .filter(|(_, n)| **n > 1)
                    .map(|(a, n)| (a.clone(), *n))
                    .collect::<Vec<_>>(),
                b.accepted
                    .iter()
                    .filter(|a| a.expires == 0)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        });
        let accounts = |ids: Vec<String>| -> String {
            let set: BTreeSet<String> = ids.into_iter().collect();
            self.histories(&set, who)
        };
        assert!(
            lapses.is_empty(),
            "{} binding(s) lapsed:\n{}",
            lapses.len(),
            accounts(lapses.iter().map(|l| l.l_uuid.clone()).collect())
        );
        assert!(
            rejected.is_empty(),
            "{} REGISTER(s) refused for a CSeq not higher than the binding's:\n{}",
            rejected.len(),
            accounts(rejected.iter().map(|r| r.l_uuid.clone()).collect())
        );
        assert!(
            crowded.is_empty(),
            "AORs with more than one binding at once: {crowded:?}"
        );
        assert!(
            removed.is_empty(),
            "bindings were unregistered:\n{}",
            accounts(removed.iter().map(|a| a.l_uuid.clone()).collect())
        );
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

/// Seconds the uacreg rows of tests A and B ask for.
const SHORT_EXPIRES: u32 = 40;
/// `reg_timer_interval` of every node.
const TIMER_INTERVAL: u32 = 10;
/// The module refreshes `min(reg_timer_interval + 3, granted / 2)` seconds before
/// expiry: 27 s after each REGISTER here.
const REFRESH_AFTER: f64 = (SHORT_EXPIRES - (TIMER_INTERVAL + 3)) as f64;
/// The gap between two REGISTERs of one binding, when the refresh comes at the
/// planned time: the module's clock counts whole seconds and its timer ticks every
/// second (so up to 1 s early against our clock, as sharing the plan in whole seconds
/// can be), plus a loaded machine's delay.
const ON_SCHEDULE: std::ops::Range<f64> = (REFRESH_AFTER - 3.0)..(REFRESH_AFTER + 5.0);

/// A node: its Kamailio and its DMQ address.
struct Node {
    k: Kamailio,
    dmq_ip: String,
    dmq_port: u16,
    /// Every SIP port its Kamailios had (a restart gets a new one).
    sip_ports: Vec<u16>,
}

impl Node {
    /// The node's DMQ key, as `cluster_owner` and `uac.reg_cluster` name it.
    fn key(&self) -> String {
        format!("{}:{}", self.dmq_ip, self.dmq_port)
    }

    fn dmq_addr(&self) -> SocketAddr {
        self.key().parse().unwrap()
    }

    /// Whether `from` is one of the sockets of this node's current Kamailio.
    fn sent_now(&self, from: &SocketAddr) -> bool {
        *from == self.dmq_addr() || *from == self.k.addr()
    }

    /// Whether `from` is one of the sockets this node ever had.
    fn sent(&self, from: &SocketAddr) -> bool {
        *from == self.dmq_addr()
            || (from.ip() == IpAddr::from([127, 0, 0, 1]) && self.sip_ports.contains(&from.port()))
    }
}

/// Three nodes with DMQ on 127.0.0.`base`..`base+2`.
struct Cluster {
    url: String,
    base: u8,
    ports: [u16; 3],
    shm_mb: u32,
    /// More uac modparams for every node.
    extra: String,
    nodes: Vec<Node>,
    /// Kamailios that were stopped and replaced: kept for their logs, which are
    /// printed if the test fails.
    retired: Vec<Kamailio>,
}

impl Cluster {
    /// Starts the three nodes (node 0 asks node 1 for the node list, the others ask
    /// node 0) and waits until every node sees all three active.
    fn start(db: &RegDb, base: u8, shm_mb: u32) -> Cluster {
        Self::start_with(db, base, shm_mb, "")
    }

    /// [`Cluster::start`] with `extra` lines in every node's config.
    fn start_with(db: &RegDb, base: u8, shm_mb: u32, extra: &str) -> Cluster {
        let mut c = Cluster {
            url: db.url(),
            base,
            ports: [free_port(), free_port(), free_port()],
            shm_mb,
            extra: extra.to_string(),
            nodes: Vec::new(),
            retired: Vec::new(),
        };
        for (i, notify) in [(0, 1), (1, 0), (2, 0)] {
            let k = c.spawn(i, notify);
            c.nodes.push(Node {
                sip_ports: vec![k.port],
                k,
                dmq_ip: c.ip(i),
                dmq_port: c.ports[i],
            });
        }
        c.wait_all_active(Duration::from_secs(30));
        c
    }

    fn ip(&self, i: usize) -> String {
        format!("127.0.0.{}", self.base as usize + i)
    }

    fn spawn(&self, i: usize, notify: usize) -> Kamailio {
        let (ip, dmq_port) = (self.ip(i), self.ports[i]);
        let (notify_ip, notify_port) = (self.ip(notify), self.ports[notify]);
        let pre = format!(
            r#"
listen=udp:{ip}:{dmq_port}
modparam("tm", "fr_timer", 2000)
loadmodule "{{MODULES}}/dmq.so"
modparam("dmq", "server_address", "sip:{ip}:{dmq_port}")
modparam("dmq", "notification_address", "sip:{notify_ip}:{notify_port}")
modparam("dmq", "ping_interval", 5)
modparam("dmq", "num_workers", 1)
"#
        );
        // Every node has the same Contact address, so the binding is the same whichever
        // node refreshes it.
        let body = format!(
            r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:5999")
modparam("uac", "reg_timer_interval", {TIMER_INTERVAL})
modparam("uac", "reg_keep_callid", 1)
modparam("uac", "reg_cluster", 1)
{extra}
request_route {{
    if (is_method("KDMQ")) {{
        dmq_handle_message();
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"#,
            url = self.url,
            extra = self.extra
        );
        Kamailio::start(Config::new(&body).pre(&pre).shm_mb(self.shm_mb))
    }

    /// Which node `from` is, for the histories.
    fn who(&self, from: &SocketAddr) -> String {
        match self.index_of(from) {
            Some(i) => format!("node {i}"),
            None => "an unknown socket".into(),
        }
    }

    fn index_of(&self, from: &SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.sent(from))
    }

    /// Waits until every running node lists every running node as active.
    fn wait_all_active(&self, timeout: Duration) {
        let want: BTreeSet<String> = self.nodes.iter().map(Node::key).collect();
        let mut last = Vec::new();
        let ok = wait_until(timeout, || {
            last = self.nodes.iter().map(|n| dmq_active(&n.k)).collect();
            last.iter().all(|seen| *seen == want)
        });
        assert!(
            ok,
            "not every node lists {want:?} as active in {timeout:?}: {last:?}"
        );
    }

    /// Tells every running node to load the table again (accounts added).
    fn reload(&self) {
        for n in &self.nodes {
            n.k.kamcmd(&["uac.reg_reload"]);
        }
    }

    /// Restarts node `i` (after a stop or a kill): same DMQ address, asking node
    /// `notify` for the node list; its SIP port is new.
    fn restart(&mut self, i: usize, notify: usize) {
        let k = self.spawn(i, notify);
        self.nodes[i].sip_ports.push(k.port);
        let old = std::mem::replace(&mut self.nodes[i].k, k);
        self.retired.push(old);
    }
}

/// Removes a test's uacreg DB directory when the test ends (passed or failed).
struct RemoveDb(std::path::PathBuf);

impl Drop for RemoveDb {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Polls `f` every 200 ms until it holds; false after `timeout`.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The structs of a kamcmd answer, as `name -> value` maps.
fn structs(out: &str) -> Vec<BTreeMap<String, String>> {
    let mut all = Vec::new();
    let mut cur: Option<BTreeMap<String, String>> = None;
    for l in out.lines().map(str::trim) {
        match l {
            "{" => cur = Some(BTreeMap::new()),
            "}" => all.extend(cur.take()),
            _ => {
                if let (Some(c), Some((k, v))) = (cur.as_mut(), l.split_once(':')) {
                    c.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
    }
    all
}

/// The nodes (`host:port`) `k` lists as active in `dmq.list_nodes`, itself included.
fn dmq_active(k: &Kamailio) -> BTreeSet<String> {
    let Ok(out) = k.try_kamcmd(&["dmq.list_nodes"]) else {
        return BTreeSet::new();
    };
    structs(&out)
        .into_iter()
        .filter(|s| s.get("status").map(String::as_str) == Some("active"))
        .filter_map(|s| Some(format!("{}:{}", s.get("host")?, s.get("port")?)))
        .collect()
}

/// One node of `uac.reg_cluster`.
#[derive(Debug, Clone)]
struct ClusterEntry {
    node: String,
    local: String,
    state: String,
    owned: Option<i64>,
}

/// `uac.reg_cluster` of `k`: one entry per DMQ node it knows. Each entry starts at
/// its `node:` line (with or without the braces kamcmd prints around a struct).
fn reg_cluster(k: &Kamailio) -> Vec<ClusterEntry> {
    let out = k.kamcmd(&["uac.reg_cluster"]);
    let mut entries: Vec<ClusterEntry> = Vec::new();
    for (name, value) in out.lines().filter_map(|l| l.trim().split_once(':')) {
        let value = value.trim().to_string();
        if name.trim() == "node" {
            entries.push(ClusterEntry {
                node: value,
                local: String::new(),
                state: String::new(),
                owned: None,
            });
            continue;
        }
        let Some(e) = entries.last_mut() else {
            panic!("uac.reg_cluster: {name} before the first node: {out}");
        };
        match name.trim() {
            "local" => e.local = value,
            "state" => e.state = value,
            "owned" => {
                e.owned = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("uac.reg_cluster: owned {value:?}: {out}")),
                )
            }
            _ => {}
        }
    }
    assert!(
        !entries.is_empty(),
        "uac.reg_cluster lists no node: {out:?}"
    );
    entries
}

/// `cluster_owner` of `l_uuid` in `uac.reg_info` of `k`.
fn cluster_owner(k: &Kamailio, l_uuid: &str) -> String {
    let out = k.kamcmd(&["uac.reg_info", "l_uuid", l_uuid]);
    field(&out, "cluster_owner")
        .unwrap_or_else(|| panic!("no cluster_owner in uac.reg_info of {l_uuid}: {out}"))
        .to_string()
}

/// Fills the table with `n` accounts (l_uuid `acc<i>`, AOR `r<i>@example.com`) that
/// register at `registrar` for `expires` seconds, in one statement (one transaction).
fn fill(db: &RegDb, n: usize, registrar: SocketAddr, expires: u32) {
    db.exec(&format!(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {last}) \
         INSERT INTO uacreg (l_uuid,l_username,l_domain,r_username,r_domain,realm,\
         auth_username,auth_password,auth_proxy,expires) \
         SELECT 'acc'||i, 'l'||i, 'local.test', 'r'||i, 'example.com', 'example.com', \
         'r'||i, 'secret', 'sip:{registrar}', {expires} FROM c;",
        last = n - 1,
    ));
}

/// Waits until each of `accounts` has a REGISTER accepted after `since` (from
/// `from(addr)` if given); panics with their histories after `timeout`.
fn wait_refreshed(
    reg: &Registrar,
    c: &Cluster,
    accounts: &[String],
    since: Instant,
    from: &dyn Fn(&SocketAddr) -> bool,
    timeout: Duration,
    what: &str,
) {
    let mut missing: Vec<String> = Vec::new();
    let ok = wait_until(timeout, || {
        let by = reg.by_account();
        missing = accounts
            .iter()
            .filter(|a| {
                !by.get(*a)
                    .is_some_and(|r| r.iter().any(|x| x.at > since && from(&x.from)))
            })
            .cloned()
            .collect();
        missing.is_empty()
    });
    assert!(
        ok,
        "{what}: {} of {} accounts not refreshed in {timeout:?}:\n{}",
        missing.len(),
        accounts.len(),
        reg.histories(&missing, &|a| c.who(a))
    );
}

/// Checks that each account's accepted REGISTERs are one binding kept on schedule:
/// one Call-ID, CSeq + 1 each time, each refresh at the planned time after the one
/// before (not at once, not late: [`ON_SCHEDULE`]). Returns the accounts that broke
/// it, with why.
fn off_schedule(by: &BTreeMap<String, Vec<Accepted>>, reg: &Registrar) -> BTreeMap<String, String> {
    let mut bad = BTreeMap::new();
    for (acc, regs) in by {
        for w in regs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let gap = b.at.duration_since(a.at).as_secs_f64();
            let why = if b.call_id != a.call_id {
                format!("new Call-ID at {:.3} s", reg.t(b.at))
            } else if b.cseq != a.cseq + 1 {
                format!("CSeq {} after {} at {:.3} s", b.cseq, a.cseq, reg.t(b.at))
            } else if !ON_SCHEDULE.contains(&gap) {
                format!(
                    "refresh {gap:.1} s after the REGISTER before (plan: {REFRESH_AFTER} s) at {:.3} s",
                    reg.t(b.at)
                )
            } else {
                continue;
            };
            bad.insert(acc.clone(), why);
            break;
        }
    }
    bad
}

fn assert_on_schedule(reg: &Registrar, c: &Cluster, what: &str) {
    let bad = off_schedule(&reg.by_account(), reg);
    assert!(
        bad.is_empty(),
        "{what}: {} account(s) not refreshed as one binding on schedule: {bad:?}\n{}",
        bad.len(),
        reg.histories(bad.keys(), &|a| c.who(a))
    );
}

/// Each of the `n` accounts was registered exactly once; returns the registrar's
/// history per account.
fn assert_each_once(reg: &Registrar, c: &Cluster, n: usize) -> BTreeMap<String, Vec<Accepted>> {
    let by = reg.by_account();
    assert_eq!(by.len(), n);
    let twice: Vec<&String> = by
        .iter()
        .filter(|(_, r)| r.len() != 1)
        .map(|(a, _)| a)
        .collect();
    assert!(
        twice.is_empty(),
        "{} account(s) registered more than once:\n{}",
        twice.len(),
        reg.histories(twice.iter().copied(), &|a| c.who(a))
    );
    by
}

/// Registers `n` accounts on a standing cluster and checks that each was registered
/// exactly once, by a node that shares the work. Returns the index of the node that
/// sent each account.
fn register_all(
    db: &RegDb,
    reg: &Registrar,
    c: &Cluster,
    n: usize,
    expires: u32,
) -> BTreeMap<String, usize> {
    fill(db, n, reg.addr, expires);
    c.reload();
    let ok = wait_until(Duration::from_secs(20), || reg.accounts() == n);
    assert!(
        ok,
        "only {} of {n} accounts registered in 20 s",
        reg.by_account().len()
    );
    // Time for a second REGISTER of any account to show (the timer runs every second).
    std::thread::sleep(Duration::from_secs(3));
    let by = assert_each_once(reg, c, n);
    let mut sender = BTreeMap::new();
    for (acc, regs) in &by {
        let i = c.index_of(&regs[0].from).unwrap_or_else(|| {
            panic!(
                "{acc} from an unknown socket:\n{}",
                reg.history(acc, &|a| c.who(a))
            )
        });
        sender.insert(acc.clone(), i);
    }
    for i in 0..3 {
        assert!(
            sender.values().any(|&s| s == i),
            "node {i} registered no account: {sender:?}"
        );
    }
    sender
}

/// The accounts `sender` says node `i` sent.
fn share(sender: &BTreeMap<String, usize>, i: usize) -> Vec<String> {
    sender
        .iter()
        .filter(|&(_, &s)| s == i)
        .map(|(a, _)| a.clone())
        .collect()
}

/// Checks that each of `accounts` was taken over once, after `since`, by one of the
/// nodes `by`: its first REGISTER after `since` comes from that node and refreshes the
/// binding (same Call-ID, CSeq + 1) at the time its old owner planned. Returns the
/// taking node per account.
fn assert_taken_over(
    reg: &Registrar,
    c: &Cluster,
    accounts: &[String],
    since: Instant,
    by: &[usize],
    what: &str,
) -> BTreeMap<String, usize> {
    let all = reg.by_account();
    let mut taker = BTreeMap::new();
    let mut bad = BTreeMap::new();
    for acc in accounts {
        let regs = &all[acc];
        let Some(k) = regs.iter().position(|r| r.at > since).filter(|&k| k > 0) else {
            bad.insert(acc.clone(), "no REGISTER after the first one".to_string());
            continue;
        };
        let (prev, next) = (&regs[k - 1], &regs[k]);
        let Some(i) = by.iter().copied().find(|&i| c.nodes[i].sent(&next.from)) else {
            bad.insert(acc.clone(), format!("refreshed by {}", c.who(&next.from)));
            continue;
        };
        let gap = next.at.duration_since(prev.at).as_secs_f64();
        if next.call_id != prev.call_id {
            bad.insert(acc.clone(), "new Call-ID (not the shared binding)".into());
        } else if next.cseq != prev.cseq + 1 {
            bad.insert(
                acc.clone(),
                format!("CSeq {} after {}", next.cseq, prev.cseq),
            );
        } else if !ON_SCHEDULE.contains(&gap) {
            bad.insert(
                acc.clone(),
                format!("{gap:.1} s after the REGISTER before (plan: {REFRESH_AFTER} s)"),
            );
        }
        taker.insert(acc.clone(), i);
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} accounts not taken over as the same binding at the planned time: {bad:?}\n{}",
        bad.len(),
        accounts.len(),
        reg.histories(bad.keys(), &|a| c.who(a))
    );
    taker
}

/// Every node in `nodes` names `owner[acc]` as the owner of each account in
/// `uac.reg_info`.
fn assert_owners(c: &Cluster, nodes: &[usize], owner: &BTreeMap<String, usize>) {
    for (acc, &o) in owner {
        let want = c.nodes[o].key();
        for &i in nodes {
            let got = cluster_owner(&c.nodes[i].k, acc);
            assert_eq!(
                got, want,
                "{acc}: node {i} names {got} as owner, node {o} sent it"
            );
        }
    }
}

fn sum_counter(c: &Cluster, nodes: &[usize], name: &str) -> (i64, Vec<i64>) {
    let each: Vec<i64> = nodes
        .iter()
        .map(|&i| counter(&c.nodes[i].k, name))
        .collect();
    (each.iter().sum(), each)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const ACCOUNTS: usize = 60;

/// Test A. Three nodes share 60 accounts (40 s registrations, refreshed 27 s after
/// each REGISTER): each registered exactly once. One node is killed (SIGKILL, no
/// goodbye): DMQ marks it inactive within a few seconds, and the survivors refresh
/// each of its accounts at the time it planned to, as the same binding (same Call-ID,
/// CSeq + 1), and keep refreshing it. Over the whole test no binding lapses, no AOR
/// ever has two bindings, and no account is registered more often than its schedule.
#[test]
fn sigkill_survivors_refresh_the_same_binding_at_the_planned_time() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    let mut c = Cluster::start(&db, 1, 64);
    let sender = register_all(&db, &reg, &c, ACCOUNTS, SHORT_EXPIRES);
    let by = reg.by_account();
    let orphans = share(&sender, 2);
    let first_planned = orphans
        .iter()
        .map(|a| by[a][0].at + Duration::from_secs_f64(ON_SCHEDULE.start))
        .min()
        .unwrap();

    // Node 2 dies. The survivors' DMQ pings it every 5 s; a ping without answer (408
    // after tm's fr_timer, 2 s here) makes it inactive.
    let killed_at = Instant::now();
    c.nodes[2].k.kill_hard();
    let survivors = [c.nodes[0].key(), c.nodes[1].key()];
    let gone = wait_until(Duration::from_secs(15), || {
        c.nodes[..2]
            .iter()
            .all(|n| dmq_active(&n.k) == survivors.iter().cloned().collect())
    });
    assert!(
        gone,
        "the survivors still list the killed node as active after 15 s"
    );
    let detected = killed_at.elapsed();
    // The test's timing: the kill is noticed before any orphan's refresh is due, so
    // each must come at its planned time, not at once.
    assert!(
        Instant::now() < first_planned,
        "the kill was noticed {:.1} s after it, later than the first planned refresh",
        detected.as_secs_f64()
    );

    wait_refreshed(
        &reg,
        &c,
        &orphans,
        killed_at,
        &|a| c.nodes[0].sent(a) || c.nodes[1].sent(a),
        Duration::from_secs(45),
        "the killed node's accounts",
    );
    let took = killed_at.elapsed();
    let taker = assert_taken_over(&reg, &c, &orphans, killed_at, &[0, 1], "SIGKILL takeover");
    assert_owners(&c, &[0, 1], &taker);
    let (takeovers, each) = sum_counter(&c, &[0, 1], "regtakeover");
    assert_eq!(
        takeovers,
        orphans.len() as i64,
        "uac:regtakeover of the survivors {each:?}, {} orphans",
        orphans.len()
    );
    let (owned, each) = sum_counter(&c, &[0, 1], "regowned");
    assert_eq!(
        owned, ACCOUNTS as i64,
        "uac:regowned of the survivors {each:?}"
    );

    // One more round: the takers keep refreshing the binding (it would lapse 40 s
    // after the takeover otherwise), and the survivors their own.
    let round = Instant::now();
    let all: Vec<String> = sender.keys().cloned().collect();
    wait_refreshed(
        &reg,
        &c,
        &all,
        round,
        &|a| c.nodes[0].sent(a) || c.nodes[1].sent(a),
        Duration::from_secs(35),
        "the round after the takeover",
    );
    std::thread::sleep(Duration::from_secs(2));
    reg.assert_clean(&|a| c.who(a));
    assert_on_schedule(&reg, &c, "SIGKILL");
    // Each account stays with one node: its first sender, or for an orphan its taker.
    for (acc, regs) in reg.by_account() {
        let want = taker.get(&acc).copied().unwrap_or(sender[&acc]);
        let skip = usize::from(taker.contains_key(&acc));
        assert!(
            regs[skip..].iter().all(|r| c.nodes[want].sent(&r.from)),
            "{acc} moved between survivors:\n{}",
            reg.history(&acc, &|a| c.who(a))
        );
    }
    let (after, each) = sum_counter(&c, &[0, 1], "regtakeover");
    assert_eq!(
        after, takeovers,
        "uac:regtakeover {each:?} grew after the takeover (refreshes of its own bindings counted)"
    );
    eprintln!(
        "takeover of {} accounts: DMQ noticed the kill in {:.1} s, all refreshed {:.1} s after it",
        orphans.len(),
        detected.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// Test B. A node stopped cleanly (SIGTERM) says it leaves: the survivors take its
/// accounts over at once and refresh them at the planned time as the same binding; its
/// bindings are not unregistered; `uac.reg_cluster` on a survivor shows it as left
/// (or inactive) and owning nothing. Started again (same DMQ address), it asks the
/// others for the bindings and refreshes its share itself, same binding, at the
/// planned time: no gap, no duplicate.
#[test]
fn clean_stop_hands_over_and_restart_takes_the_share_back() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    let mut c = Cluster::start(&db, 4, 64);
    let sender = register_all(&db, &reg, &c, ACCOUNTS, SHORT_EXPIRES);
    let leaving = share(&sender, 2);
    let key2 = c.nodes[2].key();

    let stopped_at = Instant::now();
    c.nodes[2].k.stop();
    let stop_took = stopped_at.elapsed();
    // `stop()` sends SIGKILL after 5 s: that would be no clean stop.
    assert!(
        stop_took < Duration::from_millis(4900),
        "node 2 did not exit within 5 s of SIGTERM (killed instead):\n{}",
        c.nodes[2].k.log()
    );
    // The survivors' view: node 2 left (or is inactive), owning nothing; the two
    // survivors active and owning every account between them.
    let mut view: Vec<Vec<ClusterEntry>> = Vec::new();
    let ok = wait_until(Duration::from_secs(10), || {
        view = c.nodes[..2].iter().map(|n| reg_cluster(&n.k)).collect();
        view.iter().all(|v| {
            v.iter()
                .any(|e| e.node == key2 && (e.state == "left" || e.state == "inactive"))
        })
    });
    assert!(
        ok,
        "the survivors do not show {key2} as left or inactive: {view:?}"
    );
    for (i, v) in view.iter().enumerate() {
        let me = c.nodes[i].key();
        let node2 = v.iter().find(|e| e.node == key2).unwrap();
        assert!(
            node2.owned.unwrap_or(0) == 0,
            "node {i} shows the stopped node owning accounts: {v:?}"
        );
        let locals: Vec<&ClusterEntry> = v.iter().filter(|e| e.local == "yes").collect();
        assert!(
            locals.len() == 1 && locals[0].node == me,
            "node {i} ({me}): local entries {locals:?}"
        );
        for k in [c.nodes[0].key(), c.nodes[1].key()] {
            assert!(
                v.iter().any(|e| e.node == k && e.state == "active"),
                "node {i} does not show {k} active: {v:?}"
            );
        }
        let owned: i64 = v.iter().filter_map(|e| e.owned).sum();
        assert_eq!(owned, ACCOUNTS as i64, "node {i}'s view: {v:?}");
    }
    eprintln!(
        "clean stop took {:.1} s; survivors' view: {:?}",
        stop_took.as_secs_f64(),
        view[0]
    );

    wait_refreshed(
        &reg,
        &c,
        &leaving,
        stopped_at,
        &|a| c.nodes[0].sent(a) || c.nodes[1].sent(a),
        Duration::from_secs(45),
        "the stopped node's accounts",
    );
    let taker = assert_taken_over(
        &reg,
        &c,
        &leaving,
        stopped_at,
        &[0, 1],
        "clean-stop takeover",
    );
    assert_owners(&c, &[0, 1], &taker);
    let (takeovers, each) = sum_counter(&c, &[0, 1], "regtakeover");
    assert_eq!(
        takeovers,
        leaving.len() as i64,
        "uac:regtakeover of the survivors {each:?}, {} accounts of the stopped node",
        leaving.len()
    );
    reg.assert_clean(&|a| c.who(a));

    // Node 2 comes back on the same DMQ address and asks node 0.
    let restarted_at = Instant::now();
    c.restart(2, 0);
    c.wait_all_active(Duration::from_secs(30));
    let rejoined = restarted_at.elapsed();
    let rejoined_at = Instant::now();
    wait_refreshed(
        &reg,
        &c,
        &leaving,
        restarted_at,
        &|a| c.nodes[2].sent_now(a),
        Duration::from_secs(45),
        "the restarted node's share",
    );
    let back = assert_taken_over(
        &reg,
        &c,
        &leaving,
        restarted_at,
        &[2],
        "share back to the restarted node",
    );
    assert!(back.values().all(|&i| i == 2));
    // The survivors yield the share as soon as DMQ shows node 2 active: after that
    // (plus a timer tick) only node 2 sends its accounts.
    let yield_by = rejoined_at + Duration::from_secs(2);
    for acc in &leaving {
        let regs = &reg.by_account()[acc];
        assert!(
            regs.iter()
                .filter(|r| r.at > yield_by)
                .all(|r| c.nodes[2].sent_now(&r.from)),
            "{acc} sent by a survivor after the restarted node was active:\n{}",
            reg.history(acc, &|a| c.who(a))
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let owner: BTreeMap<String, usize> = leaving.iter().map(|a| (a.clone(), 2)).collect();
    assert_owners(&c, &[0, 1, 2], &owner);
    let (owned, each) = sum_counter(&c, &[0, 1, 2], "regowned");
    assert_eq!(
        owned, ACCOUNTS as i64,
        "uac:regowned of the three nodes {each:?}"
    );
    assert_eq!(
        each[2],
        leaving.len() as i64,
        "uac:regowned of the restarted node {each:?}, its share {}",
        leaving.len()
    );
    assert_eq!(
        counter(&c.nodes[2].k, "regtakeover"),
        leaving.len() as i64,
        "uac:regtakeover of the restarted node (it refreshed bindings the survivors made)"
    );
    let view = reg_cluster(&c.nodes[0].k);
    assert!(
        view.iter().filter(|e| e.state == "active").count() == 3
            && view.iter().filter_map(|e| e.owned).sum::<i64>() == ACCOUNTS as i64,
        "node 0's view after the restart: {view:?}"
    );
    reg.assert_clean(&|a| c.who(a));
    assert_on_schedule(&reg, &c, "clean stop and restart");
    eprintln!(
        "restarted node active on every node {:.1} s after its start",
        rejoined.as_secs_f64()
    );
}

/// FNV-1a 64 then SplitMix64's finaliser over (length of node, node, l_uuid): the
/// rendezvous weight `src/uac/reg/cluster.rs` documents as a fixed function (nodes
/// built apart must agree), written again here as the test's oracle.
fn weight(node: &str, l_uuid: &str) -> u64 {
    let fnv = |mut h: u64, bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let h = fnv(0xcbf2_9ce4_8422_2325, &(node.len() as u64).to_le_bytes());
    let h = fnv(h, node.as_bytes());
    let mut z = fnv(h, l_uuid.as_bytes());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Test C. 10,000 accounts across three nodes: each registered exactly once across
/// the cluster, each node sends exactly the accounts it owns, and every node owns a
/// fair share.
#[test]
fn ten_thousand_accounts_each_registered_once_across_three_nodes() {
    const N: usize = 10_000;
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    // shm for 10k records, their transactions and the shared bindings.
    let c = Cluster::start(&db, 7, 256);
    fill(&db, N, reg.addr, 3600);
    let t0 = Instant::now();
    c.reload();
    // One node registers 10k accounts in about 1 s (tests/reg_scale.rs); three nodes
    // share them, so 30 s is reg_scale's linear bound (30 times, plus margin) with room
    // for this registrar, which keeps every binding (about 4 s in all here).
    let ok = wait_until(Duration::from_secs(30), || reg.accounts() == N);
    let took = t0.elapsed();
    assert!(
        ok,
        "only {} of {N} accounts registered in 30 s",
        reg.by_account().len()
    );
    std::thread::sleep(Duration::from_secs(3));
    let by = assert_each_once(&reg, &c, N);
    reg.assert_clean(&|a| c.who(a));

    // Who sent what, against who owns what (the rendezvous oracle, cross-checked with
    // `cluster_owner` of a sample on every node).
    let keys: Vec<String> = c.nodes.iter().map(Node::key).collect();
    let owner_of = |acc: &str| {
        (0..3)
            .max_by(|&a, &b| {
                weight(&keys[a], acc)
                    .cmp(&weight(&keys[b], acc))
                    .then_with(|| keys[b].cmp(&keys[a]))
            })
            .unwrap()
    };
    let sample: BTreeMap<String, usize> = (0..N)
        .step_by(N / 20)
        .map(|i| {
            let acc = format!("acc{i}");
            let o = owner_of(&acc);
            (acc, o)
        })
        .collect();
    assert_owners(&c, &[0, 1, 2], &sample);
    let mut sent: [BTreeSet<String>; 3] = Default::default();
    let mut wrong = Vec::new();
    for (acc, regs) in &by {
        match c.index_of(&regs[0].from) {
            Some(i) => {
                sent[i].insert(acc.clone());
                if owner_of(acc) != i {
                    wrong.push(acc.clone());
                }
            }
            None => wrong.push(acc.clone()),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} account(s) sent by a node that does not own them:\n{}",
        wrong.len(),
        reg.histories(&wrong, &|a| c.who(a))
    );
    let (owned, each) = sum_counter(&c, &[0, 1, 2], "regowned");
    assert_eq!(owned, N as i64, "uac:regowned {each:?}");
    for i in 0..3 {
        assert!(each[i] > 2_000, "node {i} owns only {}: {each:?}", each[i]);
        assert_eq!(
            each[i],
            sent[i].len() as i64,
            "node {i}: uac:regowned {} but it sent {} accounts",
            each[i],
            sent[i].len()
        );
    }
    let retrans = reg.with(|b| b.retransmissions);
    eprintln!(
        "{N} accounts registered across three nodes in {:.2} s (sent {:?}, {retrans} retransmissions)",
        took.as_secs_f64(),
        sent.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
}

/// The registrar itself (no Kamailio): RFC 3261 §10.3 bindings, CSeq ordering,
/// retransmissions, removal, lapses.
/// The processes of `n`'s Kamailio that receive on its DMQ socket (`core.psx`).
fn dmq_receivers(n: &Node) -> Vec<libc::pid_t> {
    let sock = format!("sock={}", n.key());
    let mut pids = Vec::new();
    let mut pid: Option<libc::pid_t> = None;
    for l in n.k.kamcmd(&["core.psx"]).lines().map(str::trim) {
        if let Some(p) = l.strip_prefix("PID:") {
            pid = p.trim().parse().ok();
        } else if let Some(d) = l.strip_prefix("DSC:")
            && d.contains("udp receiver")
            && d.trim_end().ends_with(&sock)
        {
            pids.extend(pid);
        }
    }
    assert!(!pids.is_empty(), "no receiver of {sock} in core.psx");
    pids
}

fn signal_all(pids: &[libc::pid_t], sig: libc::c_int) {
    for &p in pids {
        // SAFETY: signalling processes of a Kamailio this test started.
        assert_eq!(unsafe { libc::kill(p, sig) }, 0, "kill({p}, {sig})");
    }
}

/// Test D. A network split: every node stops hearing DMQ (its DMQ receivers are
/// stopped, SIGSTOP), so each sees itself alone and owns every account, while all
/// keep reaching the registrar. Each side refreshes with the shared Call-ID and the
/// same Contact, so the registrar never holds two bindings for an account and none
/// lapses (it may refuse a refresh whose CSeq another side used first: the refused
/// node registers again, `reg_retry_interval` later). Healed (SIGCONT), the nodes see
/// each other again, share what they registered meanwhile, and from then on each
/// account is refreshed by one node only, the owner all three name, with no refusal.
#[test]
fn split_brain_heals_to_one_owner_and_one_binding_per_account() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    // REGISTERs leave from the SIP socket (not the stopped DMQ one), and a refused
    // refresh is retried 5 s later.
    let c = Cluster::start_with(
        &db,
        10,
        64,
        r#"modparam("uac", "default_socket", "udp:127.0.0.1:{PORT}")
modparam("uac", "reg_retry_interval", 5)"#,
    );
    let sender = register_all(&db, &reg, &c, ACCOUNTS, SHORT_EXPIRES);
    let all: Vec<String> = sender.keys().cloned().collect();

    let receivers: Vec<Vec<libc::pid_t>> = c.nodes.iter().map(dmq_receivers).collect();
    let split_at = Instant::now();
    for p in &receivers {
        signal_all(p, libc::SIGSTOP);
    }
    // Each node alone: its pings go unanswered (5 s interval, 2 s fr_timer).
    let alone = wait_until(Duration::from_secs(20), || {
        c.nodes
            .iter()
            .all(|n| dmq_active(&n.k) == BTreeSet::from([n.key()]))
    });
    let views: Vec<BTreeSet<String>> = c.nodes.iter().map(|n| dmq_active(&n.k)).collect();
    if !alone {
        for p in &receivers {
            signal_all(p, libc::SIGCONT);
        }
    }
    assert!(
        alone,
        "the nodes still see each other after 20 s: {views:?}"
    );
    // Every account is refreshed during the split (its refresh falls 27 s after its
    // REGISTER).
    wait_refreshed(
        &reg,
        &c,
        &all,
        split_at,
        &|_| true,
        Duration::from_secs(45),
        "during the split",
    );
    std::thread::sleep(Duration::from_secs(3));
    // The split is real: several nodes refreshed the same accounts, the registrar
    // took the first and refused the others' equal CSeq.
    let (refused_in_split, contested) = reg.with(|b| {
        let accounts: BTreeSet<&String> = b.rejected.iter().map(|r| &r.l_uuid).collect();
        (b.rejected.len(), accounts.len())
    });
    assert!(
        contested > 0,
        "no account was refreshed by two sides of the split:\n{}",
        reg.histories(&all, &|a| c.who(a))
    );

    for p in &receivers {
        signal_all(p, libc::SIGCONT);
    }
    let healed_at = Instant::now();
    c.wait_all_active(Duration::from_secs(30));
    // The owners' views settle, and what each side registered is shared.
    std::thread::sleep(Duration::from_secs(5));
    let settled = Instant::now();
    // A full round of refreshes after the heal (27 s apart, plus retries).
    wait_refreshed(
        &reg,
        &c,
        &all,
        settled,
        &|_| true,
        Duration::from_secs(45),
        "after the heal",
    );
    std::thread::sleep(Duration::from_secs(3));

    // Whole test: never two bindings for an AOR, none lapsed, nothing unregistered.
    let (lapses, crowded, removed, refused_after) = reg.with(|b| {
        (
            b.lapses.len(),
            b.max_bindings.values().filter(|n| **n > 1).count(),
            b.accepted.iter().filter(|a| a.expires == 0).count(),
            b.rejected
                .iter()
                .filter(|r| r.at > settled)
                .map(|r| r.l_uuid.clone())
                .collect::<BTreeSet<String>>(),
        )
    });
    let everything = || reg.histories(&all, &|a| c.who(a));
    assert_eq!(lapses, 0, "bindings lapsed:\n{}", everything());
    assert_eq!(
        crowded,
        0,
        "AORs with two bindings at once:\n{}",
        everything()
    );
    assert_eq!(removed, 0, "bindings were unregistered:\n{}", everything());
    assert!(
        refused_after.is_empty(),
        "refreshes refused after the heal settled: {refused_after:?}\n{}",
        reg.histories(&refused_after, &|a| c.who(a))
    );
    // After the heal each account has one sender, the owner every node names.
    let owners: BTreeMap<String, String> = all
        .iter()
        .map(|a| (a.clone(), cluster_owner(&c.nodes[0].k, a)))
        .collect();
    let by = reg.by_account();
    let mut wrong = BTreeMap::new();
    for acc in &all {
        let o = c
            .nodes
            .iter()
            .position(|n| n.key() == owners[acc])
            .unwrap_or_else(|| panic!("{acc}: owner {} is no node", owners[acc]));
        for i in 1..3 {
            let other = cluster_owner(&c.nodes[i].k, acc);
            assert_eq!(other, owners[acc], "{acc}: node {i} names another owner");
        }
        let after: Vec<&Accepted> = by[acc].iter().filter(|r| r.at > settled).collect();
        if after.is_empty() || !after.iter().all(|r| c.nodes[o].sent(&r.from)) {
            wrong.insert(acc.clone(), o);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} account(s) not refreshed by their owner alone after the heal: {wrong:?}\n{}",
        wrong.len(),
        reg.histories(wrong.keys(), &|a| c.who(a))
    );
    let (owned, each) = sum_counter(&c, &[0, 1, 2], "regowned");
    assert_eq!(
        owned, ACCOUNTS as i64,
        "uac:regowned after the heal {each:?}"
    );
    eprintln!(
        "split: {contested} of {} accounts refreshed by several nodes ({refused_in_split} \
         refresh(es) refused); healed {:.1} s after the split; after it one sender each",
        all.len(),
        healed_at.duration_since(split_at).as_secs_f64()
    );
}

/// Sends a KDMQ request for the `uac` peer with `body` to `to` and returns the code of
/// the final answer.
fn kdmq(to: SocketAddr, body: &[u8]) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = sock.local_addr().unwrap();
    let call_id = common::sip::new_call_id();
    let mut req = format!(
        "KDMQ sip:uac@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch={branch}\r\n\
         From: <sip:{me}>;tag={tag}\r\n\
         To: <sip:uac@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 KDMQ\r\n\
         Max-Forwards: 1\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {len}\r\n\r\n",
        branch = common::sip::new_branch(),
        tag = common::sip::new_tag(),
        len = body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    sock.send_to(&req, to).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!("no answer to KDMQ {:?}: {e}", String::from_utf8_lossy(body))
        });
        let text = String::from_utf8_lossy(&buf[..n]);
        if !text.contains(&call_id) {
            continue;
        }
        let code: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not a SIP answer: {text}"));
        if code >= 200 {
            return code;
        }
    }
}

/// Test E. Bodies for the `uac` DMQ peer that are not ours, malformed, or sent in the
/// name of a node DMQ does not know get an answer (400, or 403 for a stranger) and
/// change nothing: the node stays up, keeps its view and its accounts, and no account
/// is registered again. A message from a known node with some bad lines is taken
/// (200), the bad lines skipped.
#[test]
fn hostile_dmq_bodies_are_answered_and_change_nothing() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    let c = Cluster::start(&db, 13, 64);
    let sender = register_all(&db, &reg, &c, 12, 3600);
    let target = c.nodes[0].dmq_addr();
    let processes = c.nodes[0].k.process_count();
    let view_before = reg_cluster(&c.nodes[0].k);
    let known = c.nodes[1].key();

    let mut long = b"uac-reg/1 state ".to_vec();
    long.extend_from_slice(known.as_bytes());
    long.push(b'\n');
    for i in 0..300 {
        long.extend_from_slice(format!("b acc{i} %ZZ\x01\x7f {i} x y\n").as_bytes());
        long.extend_from_slice(b"g \xff\xfe 1 2\n");
    }
    let refused: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        b"uac-reg/1".to_vec(),
        b"uac-reg/1 state".to_vec(),
        b"uac-reg/1 state %".to_vec(),
        b"uac-reg/9 sync 127.0.0.13:1".to_vec(),
        format!("uac-reg/1 explode {known}").into_bytes(),
        format!("uac-reg/1 sync {known} extra more").into_bytes(),
        b"\xff\xfe\x00uac-reg/1 leaving x\n".to_vec(),
    ];
    for body in &refused {
        assert_eq!(
            kdmq(target, body),
            400,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Strangers: DMQ does not list them; a goodbye or bindings in their name are
    // refused.
    for body in [
        "uac-reg/1 leaving 127.0.0.99:5090\n".to_string(),
        "uac-reg/1 state 127.0.0.99:5090\nb acc1 forged tag 99 3600 1\n".to_string(),
        "uac-reg/1 sync 127.0.0.99:5090\n".to_string(),
    ] {
        assert_eq!(kdmq(target, body.as_bytes()), 403, "{body}");
    }
    // A known node's message with only unreadable lines: taken, nothing in it applied.
    assert_eq!(kdmq(target, &long), 200);
    let log = c.nodes[0].k.log();
    assert!(log.contains("unreadable line(s) from"), "{log}");
    assert!(log.contains("refused"), "{log}");

    std::thread::sleep(Duration::from_secs(3));
    assert!(c.nodes[0].k.is_running(), "{}", c.nodes[0].k.log());
    assert_eq!(c.nodes[0].k.process_count(), processes);
    let view_after = reg_cluster(&c.nodes[0].k);
    let states = |v: &[ClusterEntry]| -> Vec<(String, String, Option<i64>)> {
        let mut s: Vec<_> = v
            .iter()
            .map(|e| (e.node.clone(), e.state.clone(), e.owned))
            .collect();
        s.sort();
        s
    };
    assert_eq!(states(&view_after), states(&view_before));
    assert!(
        view_after.iter().all(|e| e.state == "active"),
        "{view_after:?}"
    );
    // No account registered again, none moved.
    for (acc, regs) in reg.by_account() {
        assert_eq!(
            regs.len(),
            1,
            "{acc}:\n{}",
            reg.history(&acc, &|a| c.who(a))
        );
        assert_eq!(c.index_of(&regs[0].from), Some(sender[&acc]));
    }
    reg.assert_clean(&|a| c.who(a));
}

/// Test F. Every node registers its own Contact address (`reg_contact_addr` per node,
/// which the nodes warn about). A node is killed: each survivor that takes one of its
/// accounts over refreshes the binding (same Call-ID, CSeq + 1, at the planned time)
/// with its own Contact and removes the dead node's in the same REGISTER, so the
/// registrar never holds two bindings for an account and none lapses.
#[test]
fn per_node_contacts_a_takeover_moves_the_binding() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let reg = Registrar::start();
    let mut c = Cluster::start_with(
        &db,
        16,
        64,
        r#"modparam("uac", "reg_contact_addr", "127.0.0.1:{PORT}")"#,
    );
    let sender = register_all(&db, &reg, &c, ACCOUNTS, SHORT_EXPIRES);
    let log = c.nodes[0].k.log();
    assert!(
        log.contains("give every node the same reg_contact_addr"),
        "no warning about per-node Contacts:\n{log}"
    );
    let orphans = share(&sender, 2);
    let dead_port = c.nodes[2].k.port;
    let dead_contact = |acc: &str| format!("sip:{acc}@127.0.0.1:{dead_port}");
    let killed_at = Instant::now();
    c.nodes[2].k.kill_hard();
    wait_refreshed(
        &reg,
        &c,
        &orphans,
        killed_at,
        &|a| c.nodes[0].sent(a) || c.nodes[1].sent(a),
        Duration::from_secs(45),
        "the killed node's accounts",
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut bad = BTreeMap::new();
    let (book, max_bindings, lapses, rejected) = reg.with(|b| {
        (
            b.bindings.clone(),
            b.max_bindings.clone(),
            b.lapses.len(),
            b.rejected.len(),
        )
    });
    let all = reg.by_account();
    for acc in &orphans {
        let regs = &all[acc];
        let first = &regs[0];
        let after: Vec<&Accepted> = regs.iter().filter(|r| r.at > killed_at).collect();
        let (Some(new), Some(removed)) = (
            after.iter().find(|r| r.expires > 0),
            after.iter().find(|r| r.expires == 0),
        ) else {
            bad.insert(
                acc.clone(),
                "no REGISTER adding ours and removing the dead node's".to_string(),
            );
            continue;
        };
        let survivor = [0, 1].into_iter().find(|&i| c.nodes[i].sent(&new.from));
        let gap = new.at.duration_since(first.at).as_secs_f64();
        if survivor.is_none() {
            bad.insert(acc.clone(), format!("sent by {}", c.who(&new.from)));
        } else if new.call_id != first.call_id || new.cseq != first.cseq + 1 {
            bad.insert(
                acc.clone(),
                "not the shared binding (Call-ID, CSeq + 1)".into(),
            );
        } else if removed.contact != dead_contact(acc) || removed.at != new.at {
            bad.insert(
                acc.clone(),
                format!("removed {} separately", removed.contact),
            );
        } else if !ON_SCHEDULE.contains(&gap) {
            bad.insert(acc.clone(), format!("{gap:.1} s after the first REGISTER"));
        }
        let held: Vec<&String> = book
            .get(&first.aor)
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let want = format!(
            "sip:{acc}@127.0.0.1:{}",
            survivor.map_or(0, |i| c.nodes[i].k.port)
        );
        if held != [&want] {
            bad.insert(
                acc.clone(),
                format!("registrar holds {held:?}, want [{want}]"),
            );
        }
    }
    assert!(
        bad.is_empty(),
        "{bad:?}\n{}",
        reg.histories(bad.keys(), &|a| c.who(a))
    );
    let crowded: Vec<_> = max_bindings.iter().filter(|(_, n)| **n > 1).collect();
    assert!(crowded.is_empty(), "two bindings at once: {crowded:?}");
    assert_eq!((lapses, rejected), (0, 0), "lapses, refusals");
    // Nothing but the dead node's Contacts was removed.
    let removed: Vec<Accepted> = reg.with(|b| {
        b.accepted
            .iter()
            .filter(|a| a.expires == 0)
            .cloned()
            .collect()
    });
    assert_eq!(removed.len(), orphans.len(), "{removed:?}");
}

#[test]
fn registrar_keeps_rfc3261_bindings() {
    let mut b = Book::default();
    let ua: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let t = Instant::now();
    let req = |branch: &str, cid: &str, cseq: u32, contact: &str, expires: Option<u32>| {
        let exp = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
        format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
             From: <sip:r1@example.com>;tag=f\r\nTo: <sip:r1@example.com>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{exp}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let status = |a: &[u8]| SipMsg::parse(a).unwrap().code();
    let contacts = |a: &[u8]| SipMsg::parse(a).unwrap().values("Contact");
    let s = Duration::from_secs;

    let a = b
        .handle(&req("z1", "c1", 1, "<sip:acc1@h>", Some(40)), ua, t)
        .unwrap();
    assert_eq!(status(&a), 200);
    assert_eq!(contacts(&a), vec!["<sip:acc1@h>;expires=40"]);
    // A retransmission: same answer, not recorded again.
    let again = b
        .handle(&req("z1", "c1", 1, "<sip:acc1@h>", Some(40)), ua, t + s(1))
        .unwrap();
    assert_eq!(again, a);
    assert_eq!((b.accepted.len(), b.retransmissions), (1, 1));
    // Same Call-ID, same CSeq, new transaction: 500, recorded as rejected.
    let a = b
        .handle(&req("z2", "c1", 1, "<sip:acc1@h>", Some(40)), ua, t + s(2))
        .unwrap();
    assert_eq!(status(&a), 500);
    assert_eq!(b.rejected.len(), 1);
    // A refresh: the 200 lists the binding with its new time; the Contact's expires
    // wins over Expires.
    let a = b
        .handle(
            &req("z3", "c1", 2, "<sip:acc1@h>;expires=30", Some(40)),
            ua,
            t + s(10),
        )
        .unwrap();
    assert_eq!(status(&a), 200);
    assert_eq!(contacts(&a), vec!["<sip:acc1@h>;expires=30"]);
    // Another Contact of the AOR (another Call-ID): both listed, two bindings.
    let a = b
        .handle(&req("z4", "c2", 1, "<sip:acc2@h>", None), ua, t + s(20))
        .unwrap();
    assert_eq!(
        contacts(&a),
        vec!["<sip:acc1@h>;expires=20", "<sip:acc2@h>;expires=3600"]
    );
    assert_eq!(b.max_bindings["sip:r1@example.com"], 2);
    // Expires 0 removes.
    let a = b
        .handle(&req("z5", "c2", 2, "<sip:acc2@h>", Some(0)), ua, t + s(21))
        .unwrap();
    assert_eq!(contacts(&a), vec!["<sip:acc1@h>;expires=19"]);
    assert!(b.lapses.is_empty());
    // acc1 expires at t+40: the check records the lapse and drops it.
    b.expire(None, t + s(39));
    assert!(b.lapses.is_empty());
    b.expire(None, t + s(41));
    assert_eq!(b.lapses.len(), 1);
    assert_eq!(b.lapses[0].l_uuid, "acc1");
    assert!(b.bindings.is_empty());
    // A new Call-ID after a lapse is a fresh binding.
    let a = b
        .handle(&req("z6", "c3", 1, "<sip:acc1@h>", Some(40)), ua, t + s(42))
        .unwrap();
    assert_eq!(status(&a), 200);
    assert_eq!(b.accepted.len(), 5);
}

/// `reg_cluster` 1 without dmq refuses to start, naming what is missing; values other
/// than 0 and 1 refuse too.
#[test]
fn reg_cluster_needs_dmq_and_a_boolean() {
    let db = RegDb::new();
    let _rm = RemoveDb(db.path.clone());
    let body = |v: &str| {
        format!(
            r#"
loadmodule "{{MODULES}}/db_sqlite.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:5999")
modparam("uac", "reg_cluster", {v})
request_route {{
    sl_send_reply("404", "Not here");
}}
"#,
            url = db.url()
        )
    };
    let log = Kamailio::start_expect_failure(Config::new(&body("1")));
    assert!(
        log.contains("reg_cluster needs the dmq module (loaded before uac)"),
        "{log}"
    );
    let log = Kamailio::start_expect_failure(Config::new(&body("2")));
    assert!(log.contains("reg_cluster"), "{log}");
    assert!(log.contains("must be 0 or 1, got 2"), "{log}");
}
