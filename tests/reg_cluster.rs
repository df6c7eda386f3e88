//! Active-active registration over DMQ (`reg_cluster`, issue 12, first slice): three
//! Kamailio nodes with dmq (on 127.0.0.1-3) read one uacreg table, and each account is registered by
//! exactly one of them (rendezvous hashing of the l_uuid over the active DMQ nodes).
//! When a node dies (SIGKILL), DMQ marks it inactive and the survivors register its
//! accounts. The takeover makes a new binding (new Call-ID): sharing the Call-ID and
//! CSeq over DMQ is the next slice.

mod common;
mod reg_support;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::kamailio::{Config, Kamailio, free_port};
use reg_support::{RegDb, field};

/// One REGISTER as the registrar saw it.
#[derive(Debug, Clone)]
struct Seen {
    l_uuid: String,
    call_id: String,
    from: SocketAddr,
    at: Instant,
}

/// A registrar that answers every REGISTER at once with a 200 OK (Contact with
/// expires=3600) and records each new transaction (a retransmission, same Via branch,
/// is answered but not recorded).
struct Registrar {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Registrar {
    fn start() -> Registrar {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut branches = std::collections::HashSet::new();
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let head = req.split("\r\n\r\n").next().unwrap_or("");
                if !head.starts_with("REGISTER ") {
                    continue;
                }
                let vias: Vec<&str> = head
                    .split("\r\n")
                    .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
                    .collect();
                let contact = header(head, "contact").unwrap_or("").to_string();
                let uri = contact.trim_start_matches('<');
                let l_uuid = uri
                    .strip_prefix("sip:")
                    .and_then(|u| u.split('@').next())
                    .unwrap_or("")
                    .to_string();
                let branch = vias.first().map(|v| v.to_string()).unwrap_or_default();
                if branches.insert(branch) {
                    sn.lock().unwrap().push(Seen {
                        l_uuid,
                        call_id: header(head, "call-id").unwrap_or("").to_string(),
                        from,
                        at: Instant::now(),
                    });
                }
                let mut rsp = String::from("SIP/2.0 200 OK\r\n");
                for v in &vias {
                    rsp.push_str(v);
                    rsp.push_str("\r\n");
                }
                for h in ["From", "To", "Call-ID", "CSeq"] {
                    if let Some(v) = header(head, h) {
                        let to_tag = if h == "To" && !v.contains("tag=") {
                            ";tag=r1"
                        } else {
                            ""
                        };
                        rsp.push_str(&format!("{h}: {v}{to_tag}\r\n"));
                    }
                }
                let c = contact.split(";expires").next().unwrap_or("");
                rsp.push_str(&format!(
                    "Contact: {c};expires=3600\r\nContent-Length: 0\r\n\r\n"
                ));
                let _ = sock.send_to(rsp.as_bytes(), from);
            }
        });
        Registrar {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
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

/// A node: its Kamailio and its DMQ address.
struct Node {
    k: Kamailio,
    dmq_ip: String,
    dmq_port: u16,
}

impl Node {
    fn key(&self) -> String {
        format!("{}:{}", self.dmq_ip, self.dmq_port)
    }
    /// Whether `from` is one of this node's sockets.
    fn sent(&self, from: &SocketAddr) -> bool {
        from.port() == self.dmq_port || from.port() == self.k.port
    }
}

const ACCOUNTS: usize = 60;

/// Node `i`'s DMQ address is on 127.0.0.`i+1`: from 6.0 dmq takes a node it does not
/// know by host:port for a known one with the same IP (`find_dmq_node_ip` compares
/// addresses without ports), so nodes sharing one IP never all see each other.
fn dmq_ip(i: usize) -> String {
    format!("127.0.0.{}", i + 1)
}

fn start_node(db: &RegDb, i: usize, ports: &[u16; 3], notify: usize) -> Node {
    let (ip, dmq_port) = (dmq_ip(i), ports[i]);
    let (notify_ip, notify_port) = (dmq_ip(notify), ports[notify]);
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
    let body = format!(
        r#"
loadmodule "{{MODULES}}/db_sqlite.so"
loadmodule "{{MODULES}}/kex.so"
loadmodule "{{MODULES}}/counters.so"
modparam("uac", "reg_db_url", "{url}")
modparam("uac", "reg_contact_addr", "127.0.0.1:5999")
modparam("uac", "reg_timer_interval", 60)
modparam("uac", "reg_keep_callid", 1)
modparam("uac", "reg_cluster", 1)
request_route {{
    if (is_method("KDMQ")) {{
        dmq_handle_message();
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"#,
        url = db.url()
    );
    Node {
        k: Kamailio::start(Config::new(&body).pre(&pre)),
        dmq_ip: ip,
        dmq_port,
    }
}

/// Number of nodes `k` lists as active in `dmq.list_nodes` (itself included).
fn active_nodes(k: &Kamailio) -> usize {
    k.try_kamcmd(&["dmq.list_nodes"])
        .map(|out| out.lines().filter(|l| l.trim() == "status: active").count())
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// REGISTERs per account.
fn per_account(seen: &[Seen]) -> BTreeMap<String, Vec<Seen>> {
    let mut m: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for s in seen {
        m.entry(s.l_uuid.clone()).or_default().push(s.clone());
    }
    m
}

/// Three nodes share the accounts: each registered exactly once, every node takes a
/// share, and all three name the same owner in `uac.reg_info` (the node that sent it).
/// Then one node is killed: its accounts are registered by the survivors within DMQ's
/// detection time, and no other account is registered again.
#[test]
fn three_nodes_register_each_account_once_and_take_over_a_killed_node() {
    let db = RegDb::new();
    let reg = Registrar::start();
    let ports = [free_port(), free_port(), free_port()];
    // Node 1 asks node 2 for the list; nodes 2 and 3 ask node 1.
    let mut nodes = vec![
        start_node(&db, 0, &ports, 1),
        start_node(&db, 1, &ports, 0),
        start_node(&db, 2, &ports, 0),
    ];
    wait_for(
        "three active DMQ nodes on every node",
        Duration::from_secs(30),
        || nodes.iter().all(|n| active_nodes(&n.k) == 3),
    );

    // The table is filled once the cluster stands, then every node reloads it, as an
    // operator adding accounts would.
    for i in 0..ACCOUNTS {
        let proxy = format!("sip:{}", reg.addr);
        db.add(
            &format!("acc{i}"),
            &format!("l{i}"),
            &format!("r{i}"),
            &proxy,
            3600,
            &[],
        );
    }
    for n in &nodes {
        n.k.kamcmd(&["uac.reg_reload"]);
    }
    wait_for("every account registered", Duration::from_secs(20), || {
        per_account(&reg.seen()).len() == ACCOUNTS
    });
    // Time for a second REGISTER of any account to show (the timer runs every second).
    std::thread::sleep(Duration::from_secs(3));
    let seen = reg.seen();
    let by_acc = per_account(&seen);
    assert_eq!(by_acc.len(), ACCOUNTS);
    for (acc, regs) in &by_acc {
        assert_eq!(
            regs.len(),
            1,
            "{acc} registered {} times: {regs:?}",
            regs.len()
        );
    }
    let mut sender_of: HashMap<String, usize> = HashMap::new();
    for (acc, regs) in &by_acc {
        let idx = nodes
            .iter()
            .position(|n| n.sent(&regs[0].from))
            .unwrap_or_else(|| panic!("{acc} from an unknown socket {}", regs[0].from));
        sender_of.insert(acc.clone(), idx);
    }
    for i in 0..3 {
        let share = sender_of.values().filter(|&&s| s == i).count();
        assert!(share > 0, "node {i} registered no account: {sender_of:?}");
    }
    // Every node names the sender as the owner.
    for acc in ["acc0", "acc1", "acc2", "acc3", "acc4"] {
        let owner = nodes[sender_of[acc]].key();
        for n in &nodes {
            let out = n.k.kamcmd(&["uac.reg_info", "l_uuid", acc]);
            assert_eq!(
                field(&out, "cluster_owner"),
                Some(owner.as_str()),
                "{acc}: {out}"
            );
        }
    }

    // Node 3 dies. The survivors' DMQ pings it every 5 s; a ping without answer (408
    // after tm's fr_timer, 2 s here) makes it inactive.
    let killed_at = Instant::now();
    nodes[2].k.kill_hard();
    let orphans: Vec<String> = sender_of
        .iter()
        .filter(|&(_, &s)| s == 2)
        .map(|(a, _)| a.clone())
        .collect();
    wait_for(
        "the killed node's accounts registered again",
        Duration::from_secs(25),
        || {
            let after = per_account(&reg.seen());
            orphans
                .iter()
                .all(|a| after.get(a).is_some_and(|r| r.len() >= 2))
        },
    );
    let took = killed_at.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let after = per_account(&reg.seen());
    for (acc, regs) in &after {
        if orphans.contains(acc) {
            assert_eq!(regs.len(), 2, "{acc}: {regs:?}");
            let survivor = nodes[..2].iter().position(|n| n.sent(&regs[1].from));
            assert!(survivor.is_some(), "{acc} taken over by {}", regs[1].from);
            assert!(regs[1].at >= killed_at);
            // First slice: a new binding (the Call-ID is not shared yet).
            assert_ne!(regs[1].call_id, regs[0].call_id);
            let owner = nodes[survivor.unwrap()].key();
            for n in &nodes[..2] {
                let out = n.k.kamcmd(&["uac.reg_info", "l_uuid", acc]);
                assert_eq!(
                    field(&out, "cluster_owner"),
                    Some(owner.as_str()),
                    "{acc}: {out}"
                );
            }
        } else {
            assert_eq!(
                regs.len(),
                1,
                "{acc} (a survivor's) registered again: {regs:?}"
            );
        }
    }
    eprintln!(
        "takeover of {} accounts {:.1} s after SIGKILL",
        orphans.len(),
        took.as_secs_f64()
    );
}

/// `reg_cluster` 1 without dmq refuses to start, naming what is missing; values other
/// than 0 and 1 refuse too.
#[test]
fn reg_cluster_needs_dmq_and_a_boolean() {
    let db = RegDb::new();
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
