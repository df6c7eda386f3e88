//! UDP SIP peers for the integration tests.
//!
//! - [`UdpPeer`]: a socket on 127.0.0.1 that sends builders / raw bytes and waits
//!   for specific messages, buffering the others, skipping retransmissions and
//!   (optionally) 100 Trying, and logging every datagram with a timestamp. The
//!   log is printed when a test panics while the peer is alive.
//! - [`Server`]: runs a handler for every message on a background thread.
//! - [`Registrar`]: a scripted digest-authenticating registrar on a [`Server`].
//! - [`Uas`]: a tiny user agent server (180/200 to INVITE, 200 to BYE, optional
//!   401/407 challenge) on a [`Server`].

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::digest::Challenge;
use super::sip::{Outgoing, Response, SipMsg, new_tag, sdp, via_addr};

/// Default wait for a message that should arrive.
pub const WAIT: Duration = Duration::from_secs(3);
/// Default quiet period for `expect_nothing`.
pub const QUIET: Duration = Duration::from_millis(300);

/// Milliseconds as a Duration.
/// Gives `sock` a 16 MB receive buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF, up
/// to rmem_max), for peers that take thousands of REGISTERs in a burst: a datagram
/// lost here would come back as a retransmission.
pub fn large_receive_buffer(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 16 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Process-wide time origin so logs of different peers line up.
fn epoch() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Log
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Sent,
    Received,
}

/// One datagram seen by a peer.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub at: Instant,
    pub dir: Dir,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
    /// Why it was not delivered ("retransmission, skipped", "unparseable: ...").
    pub note: Option<String>,
}

impl LogEntry {
    pub fn render(&self, name: &str) -> String {
        let t = self.at.saturating_duration_since(epoch()).as_secs_f64();
        let arrow = match self.dir {
            Dir::Sent => format!("{} -> {}", self.local, self.remote),
            Dir::Received => format!("{} <- {}", self.local, self.remote),
        };
        let mut s = format!("[{t:9.3}s] {name} {arrow} ({} bytes)", self.data.len());
        if let Some(n) = &self.note {
            let _ = write!(s, " [{n}]");
        }
        s.push('\n');
        let text = String::from_utf8_lossy(&self.data);
        for line in text.trim_end_matches(['\r', '\n']).split('\n') {
            let _ = writeln!(s, "    | {}", line.trim_end_matches('\r'));
        }
        s
    }
}

/// A log shared between a peer and whoever watches it (e.g. a [`Server`] handle).
#[derive(Clone, Default)]
pub struct SharedLog(Arc<Mutex<Vec<LogEntry>>>);

impl SharedLog {
    pub fn push(&self, e: LogEntry) {
        lock(&self.0).push(e);
    }

    pub fn entries(&self) -> Vec<LogEntry> {
        lock(&self.0).clone()
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    pub fn render(&self, name: &str) -> String {
        let mut s = format!("===== SIP log of {name} =====\n");
        for e in lock(&self.0).iter() {
            s.push_str(&e.render(name));
        }
        s
    }
}

// ---------------------------------------------------------------------------
// UdpPeer
// ---------------------------------------------------------------------------

/// A SIP endpoint on a UDP socket bound to 127.0.0.1.
pub struct UdpPeer {
    sock: UdpSocket,
    addr: SocketAddr,
    name: String,
    target: Option<SocketAddr>,
    log: SharedLog,
    pending: Mutex<VecDeque<SipMsg>>,
    seen: Mutex<HashSet<String>>,
    skip_retransmissions: AtomicBool,
    ignore_100: AtomicBool,
    print_log_on_panic: AtomicBool,
    /// Set when a panic message already carried the log.
    log_in_panic: AtomicBool,
}

/// Key identifying a message for retransmission detection: requests by method,
/// top branch, CSeq and Call-ID; responses additionally by code and To tag.
fn retrans_key(m: &SipMsg) -> String {
    let (branch, cseq, cid) = (m.branch(), m.header("CSeq"), m.header("Call-ID"));
    if branch.is_none() || cseq.is_none() {
        return format!("raw {:?}", m.raw);
    }
    let b = branch.unwrap_or_default();
    let (cs, ci) = (cseq.unwrap_or(""), cid.unwrap_or(""));
    if m.is_request() {
        format!("Q {} {b} {cs} {ci}", m.method())
    } else {
        format!(
            "S {} {b} {cs} {ci} {}",
            m.code(),
            m.to_tag().unwrap_or_default()
        )
    }
}

impl UdpPeer {
    /// Bind 127.0.0.1 on an ephemeral port. Panics on failure.
    pub fn bind() -> UdpPeer {
        Self::bind_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Bind 127.0.0.1:`port`.
    pub fn bind_port(port: u16) -> UdpPeer {
        Self::bind_addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    pub fn bind_addr(addr: SocketAddr) -> UdpPeer {
        let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = sock.local_addr().expect("local_addr");
        epoch();
        UdpPeer {
            sock,
            addr,
            name: format!("peer@{}", addr.port()),
            target: None,
            log: SharedLog::default(),
            pending: Mutex::new(VecDeque::new()),
            seen: Mutex::new(HashSet::new()),
            skip_retransmissions: AtomicBool::new(true),
            ignore_100: AtomicBool::new(true),
            print_log_on_panic: AtomicBool::new(true),
            log_in_panic: AtomicBool::new(false),
        }
    }

    /// Name used in logs and panic messages.
    pub fn named(mut self, name: &str) -> Self {
        self.name = format!("{name}@{}", self.addr.port());
        self
    }

    /// Default destination for [`send`](Self::send) (e.g. Kamailio's address).
    pub fn with_target(mut self, t: SocketAddr) -> Self {
        self.target = Some(t);
        self
    }

    pub fn set_target(&mut self, t: SocketAddr) {
        self.target = Some(t);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `sip:user@127.0.0.1:port`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    /// `<sip:user@127.0.0.1:port>`.
    pub fn contact(&self, user: &str) -> String {
        format!("<{}>", self.uri(user))
    }

    /// Drop retransmissions (same method/branch/CSeq/Call-ID, or same response)
    /// before anyone sees them. On by default.
    pub fn set_skip_retransmissions(&self, on: bool) {
        self.skip_retransmissions.store(on, Ordering::SeqCst);
    }

    /// Make 100 Trying invisible to `expect_*` / `expect_nothing` unless
    /// explicitly expected. On by default.
    pub fn set_ignore_100(&self, on: bool) {
        self.ignore_100.store(on, Ordering::SeqCst);
    }

    /// Print this peer's log to stderr when dropped during a panic. On by default.
    pub fn set_print_log_on_panic(&self, on: bool) {
        self.print_log_on_panic.store(on, Ordering::SeqCst);
    }

    pub fn log(&self) -> SharedLog {
        self.log.clone()
    }

    /// The whole log, formatted.
    pub fn log_text(&self) -> String {
        self.log.render(&self.name)
    }

    pub fn print_log(&self) {
        eprintln!("{}", self.log_text());
    }

    /// Panic with `what` prefixed by the peer's name and followed by its log
    /// (which is then not printed again when the peer is dropped).
    pub fn fail(&self, what: String) -> ! {
        self.log_in_panic.store(true, Ordering::SeqCst);
        panic!("{}: {what}\n{}", self.name, self.log_text());
    }

    // ---- sending ----

    /// Send raw bytes (no parsing, e.g. malformed input).
    pub fn send_to(&self, bytes: impl AsRef<[u8]>, dest: SocketAddr) {
        let data = bytes.as_ref();
        if let Err(e) = self.sock.send_to(data, dest) {
            self.fail(format!("send_to {dest} failed: {e}"));
        }
        self.log.push(LogEntry {
            at: Instant::now(),
            dir: Dir::Sent,
            local: self.addr,
            remote: dest,
            data: data.to_vec(),
            note: None,
        });
    }

    /// Send a builder or message to `dest`; returns what was sent, parsed
    /// (`remote` = `dest`).
    pub fn send_msg_to(&self, msg: impl Outgoing, dest: SocketAddr) -> SipMsg {
        let data = msg.render(self.addr);
        self.send_to(&data, dest);
        let mut m = SipMsg::parse(&data)
            .unwrap_or_else(|e| panic!("{}: sent an unparseable message ({e})", self.name));
        m.remote = Some(dest);
        m
    }

    /// Send to the builder's destination (responses: the request's source;
    /// dialog requests: the next hop), else to the peer's target.
    pub fn send(&self, msg: impl Outgoing) -> SipMsg {
        let dest = msg.dest().or(self.target).unwrap_or_else(|| {
            panic!(
                "{}: no destination (use with_target or send_msg_to)",
                self.name
            )
        });
        self.send_msg_to(msg, dest)
    }

    /// Send a previously sent message again, byte for byte, to the same place.
    pub fn retransmit(&self, sent: &SipMsg) {
        let dest = sent
            .remote
            .expect("retransmit: message has no remote address");
        self.send_to(&sent.raw, dest);
    }

    /// Reply to a received request with extra headers; returns what was sent.
    pub fn reply(&self, req: &SipMsg, code: u16, reason: &str, extra: &[(&str, &str)]) -> SipMsg {
        self.send(Response::to(req, code, reason).headers(extra))
    }

    /// Where responses to `req` go: its source, else its top Via.
    pub fn reply_addr(req: &SipMsg) -> Option<SocketAddr> {
        req.remote
            .or_else(|| req.top_via().and_then(|v| via_addr(&v)))
    }

    // ---- receiving ----

    /// Next parsed datagram from the socket before `deadline` (retransmissions
    /// and unparseable datagrams are logged and skipped).
    fn next_datagram(&self, deadline: Instant) -> Option<SipMsg> {
        let mut buf = vec![0u8; 65536];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.sock
                .set_read_timeout(Some(wait))
                .expect("set_read_timeout");
            let (n, src) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // e.g. ICMP port unreachable reported on the socket.
                    self.log.push(LogEntry {
                        at: Instant::now(),
                        dir: Dir::Received,
                        local: self.addr,
                        remote: self.addr,
                        data: Vec::new(),
                        note: Some(format!("socket error: {e}")),
                    });
                    continue;
                }
            };
            let data = &buf[..n];
            let mut entry = LogEntry {
                at: Instant::now(),
                dir: Dir::Received,
                local: self.addr,
                remote: src,
                data: data.to_vec(),
                note: None,
            };
            if data.iter().all(|b| b.is_ascii_whitespace()) {
                entry.note = Some("keepalive, skipped".into());
                self.log.push(entry);
                continue;
            }
            match SipMsg::parse(data) {
                Ok(mut m) => {
                    m.remote = Some(src);
                    let fresh = lock(&self.seen).insert(retrans_key(&m));
                    if !fresh && self.skip_retransmissions.load(Ordering::SeqCst) {
                        entry.note = Some("retransmission, skipped".into());
                        self.log.push(entry);
                        continue;
                    }
                    self.log.push(entry);
                    return Some(m);
                }
                Err(e) => {
                    entry.note = Some(format!("unparseable, skipped: {e}"));
                    self.log.push(entry);
                }
            }
        }
    }

    /// Next message (buffered ones first), or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<(SipMsg, SocketAddr)> {
        if let Some(m) = lock(&self.pending).pop_front() {
            let src = m.remote.unwrap_or(self.addr);
            return Some((m, src));
        }
        let m = self.next_datagram(Instant::now() + timeout)?;
        let src = m.remote.unwrap_or(self.addr);
        Some((m, src))
    }

    /// Raw next datagram, bypassing parsing, buffering and filters.
    pub fn recv_raw(&self, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .ok()?;
        let (n, src) = self.sock.recv_from(&mut buf).ok()?;
        self.log.push(LogEntry {
            at: Instant::now(),
            dir: Dir::Received,
            local: self.addr,
            remote: src,
            data: buf[..n].to_vec(),
            note: Some("raw".into()),
        });
        Some((buf[..n].to_vec(), src))
    }

    /// Messages received but not yet consumed by an `expect_*`.
    pub fn pending(&self) -> Vec<SipMsg> {
        lock(&self.pending).iter().cloned().collect()
    }

    /// Discard buffered messages.
    pub fn clear_pending(&self) {
        lock(&self.pending).clear();
    }

    fn is_hidden_100(&self, m: &SipMsg) -> bool {
        m.code() == 100 && self.ignore_100.load(Ordering::SeqCst)
    }

    /// Wait for the first message matching `pred`, described as `what` in the
    /// failure message. Buffered messages are searched first; non-matching
    /// arrivals are kept for later expects (100 Trying dropped when ignored).
    /// Panics on timeout, listing what arrived instead and the peer's log.
    pub fn expect(&self, what: &str, timeout: Duration, pred: impl Fn(&SipMsg) -> bool) -> SipMsg {
        {
            let mut p = lock(&self.pending);
            if let Some(i) = p.iter().position(&pred) {
                return p.remove(i).expect("index valid");
            }
        }
        let deadline = Instant::now() + timeout;
        let mut others: Vec<String> = Vec::new();
        while let Some(m) = self.next_datagram(deadline) {
            if pred(&m) {
                return m;
            }
            let from = m.remote.map(|a| a.to_string()).unwrap_or_default();
            if self.is_hidden_100(&m) {
                others.push(format!("(ignored) {} from {from}", m.summary()));
                continue;
            }
            others.push(format!("{} from {from}", m.summary()));
            lock(&self.pending).push_back(m);
        }
        let queued: Vec<String> = lock(&self.pending).iter().map(SipMsg::summary).collect();
        self.fail(format!(
            "timed out after {:.3}s waiting for {what}\n\
             received meanwhile: {}\n\
             still buffered: {}",
            timeout.as_secs_f64(),
            if others.is_empty() {
                "nothing".to_string()
            } else {
                others.join("\n    ")
            },
            if queued.is_empty() {
                "nothing".to_string()
            } else {
                queued.join("\n    ")
            },
        ));
    }

    /// Wait for a request with this method.
    pub fn expect_request(&self, method: &str, timeout: Duration) -> SipMsg {
        self.expect(&format!("request {method}"), timeout, |m| {
            m.is_request() && m.method() == method
        })
    }

    /// Wait for any request.
    pub fn expect_any_request(&self, timeout: Duration) -> SipMsg {
        self.expect("any request", timeout, SipMsg::is_request)
    }

    /// Wait for a response with this code (100 Trying skipped unless `code == 100`).
    pub fn expect_response(&self, code: u16, timeout: Duration) -> SipMsg {
        self.expect(&format!("response {code}"), timeout, |m| m.code() == code)
    }

    /// Wait for a response with this code to `req` (same Call-ID and CSeq).
    pub fn expect_response_to(&self, req: &SipMsg, code: u16, timeout: Duration) -> SipMsg {
        let (cid, cseq) = (req.call_id().to_string(), req.hdr("CSeq").to_string());
        self.expect(
            &format!("response {code} to {}", req.summary()),
            timeout,
            |m| {
                m.code() == code
                    && m.header("Call-ID") == Some(cid.as_str())
                    && m.header("CSeq") == Some(cseq.as_str())
            },
        )
    }

    /// Wait for any final (>= 200) response.
    pub fn expect_final(&self, timeout: Duration) -> SipMsg {
        self.expect("a final response", timeout, |m| m.code() >= 200)
    }

    /// Collect everything that arrives within `duration` (buffered messages first,
    /// hidden 100s excluded).
    pub fn collect(&self, duration: Duration) -> Vec<SipMsg> {
        let mut out: Vec<SipMsg> = lock(&self.pending).drain(..).collect();
        let deadline = Instant::now() + duration;
        while let Some(m) = self.next_datagram(deadline) {
            if !self.is_hidden_100(&m) {
                out.push(m);
            }
        }
        out
    }

    /// Panic if anything (buffered or new; hidden 100s and retransmissions
    /// excepted) arrives within `duration`.
    pub fn expect_nothing(&self, duration: Duration) {
        let got = self.collect(duration);
        if !got.is_empty() {
            let list: Vec<String> = got.iter().map(SipMsg::summary).collect();
            self.fail(format!(
                "expected nothing for {:.3}s, got:\n    {}",
                duration.as_secs_f64(),
                list.join("\n    "),
            ));
        }
    }
}

impl Drop for UdpPeer {
    fn drop(&mut self) {
        if thread::panicking()
            && self.print_log_on_panic.load(Ordering::SeqCst)
            && !self.log_in_panic.load(Ordering::SeqCst)
        {
            eprintln!("{}", self.log_text());
        }
    }
}

// ---------------------------------------------------------------------------
// Server: a peer with a handler on a background thread
// ---------------------------------------------------------------------------

/// A message a [`Server`] received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    /// Since the server started.
    pub elapsed: Duration,
    pub msg: SipMsg,
}

/// Runs `handler(&peer, &msg)` for every message on a background thread until
/// stopped or dropped. A panic in the handler is re-raised by `stop`/drop.
pub struct Server {
    name: String,
    addr: SocketAddr,
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: SharedLog,
    received: Arc<Mutex<Vec<Received>>>,
    log_in_panic: AtomicBool,
}

impl Server {
    pub fn spawn<F>(peer: UdpPeer, mut handler: F) -> Server
    where
        F: FnMut(&UdpPeer, &SipMsg) + Send + 'static,
    {
        peer.set_print_log_on_panic(false);
        let (name, addr, log) = (peer.name.clone(), peer.addr, peer.log());
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop2, rec2) = (stop.clone(), received.clone());
        let thread = thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    if let Some((m, _)) = peer.recv(Duration::from_millis(20)) {
                        let at = Instant::now();
                        lock(&rec2).push(Received {
                            at,
                            elapsed: at - started,
                            msg: m.clone(),
                        });
                        handler(&peer, &m);
                    }
                }
            })
            .expect("spawn server thread");
        Server {
            name,
            addr,
            started,
            stop,
            thread: Some(thread),
            log,
            received,
            log_in_panic: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// `sip:user@127.0.0.1:port`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    /// Requests received with this method.
    pub fn requests(&self, method: &str) -> Vec<SipMsg> {
        lock(&self.received)
            .iter()
            .filter(|r| r.msg.method() == method)
            .map(|r| r.msg.clone())
            .collect()
    }

    /// Wait until at least `n` requests with this method arrived; returns them all.
    pub fn wait_requests(&self, method: &str, n: usize, timeout: Duration) -> Vec<SipMsg> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests(method);
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                self.fail(format!(
                    "expected {n} {method} within {:.3}s, got {}",
                    timeout.as_secs_f64(),
                    got.len(),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> SharedLog {
        self.log.clone()
    }

    pub fn log_text(&self) -> String {
        self.log.render(&self.name)
    }

    /// Panic with `what` and the server's log (not printed again on drop).
    pub fn fail(&self, what: String) -> ! {
        self.log_in_panic.store(true, Ordering::SeqCst);
        panic!("{}: {what}\n{}", self.name, self.log_text());
    }

    /// Stop the thread and wait for it; re-raises a handler panic.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && let Err(p) = t.join()
            && !thread::panicking()
        {
            eprintln!("{}", self.log_text());
            std::panic::resume_unwind(p);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() && !self.log_in_panic.load(Ordering::SeqCst) {
            eprintln!("{}", self.log_text());
        }
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// Registrar
// ---------------------------------------------------------------------------

/// What the registrar does with one REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegAction {
    /// Digest flow: 401 (407 with `proxy_auth`) without credentials, or with
    /// `stale=true` when their nonce is not one we issued; 403 when they do
    /// not verify; 200 when they do.
    Auth,
    /// 200 without asking for credentials.
    Accept,
    /// 401 with a fresh challenge whatever the request carries.
    Challenge,
    /// 423 Interval Too Brief with `Min-Expires`.
    IntervalTooBrief(u32),
    /// Any other reply (403, 503...), with extra headers.
    Reply(u16, String, Vec<(String, String)>),
    /// Do not answer.
    Ignore,
}

impl RegAction {
    pub fn reply(code: u16, reason: &str) -> RegAction {
        RegAction::Reply(code, reason.to_string(), Vec::new())
    }
}

/// Registrar settings; `RegistrarConfig::new(realm, user, password)` then setters.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    pub name: String,
    pub port: u16,
    pub realm: String,
    pub user: String,
    pub password: String,
    /// Template for challenges (realm, algorithm, qop, opaque...); nonces are fresh.
    pub challenge: Challenge,
    /// Challenge with 407 + Proxy-Authenticate (and read Proxy-Authorization)
    /// instead of 401 + WWW-Authenticate.
    pub proxy_auth: bool,
    /// `Expires` header in the 200 (None: omitted).
    pub expires: Option<u32>,
    /// `;expires=` on the Contacts echoed in the 200 (None: the requested value).
    pub contact_expires: Option<u32>,
    /// Used when the script is empty.
    pub default_action: RegAction,
    /// Consumed one per REGISTER before falling back to `default_action`.
    pub script: VecDeque<RegAction>,
}

impl RegistrarConfig {
    pub fn new(realm: &str, user: &str, password: &str) -> RegistrarConfig {
        RegistrarConfig {
            name: "registrar".into(),
            port: 0,
            realm: realm.into(),
            user: user.into(),
            password: password.into(),
            challenge: Challenge::new(realm),
            proxy_auth: false,
            expires: None,
            contact_expires: None,
            default_action: RegAction::Auth,
            script: VecDeque::new(),
        }
    }

    pub fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }

    pub fn algorithm(mut self, a: &str) -> Self {
        self.challenge.algorithm = Some(a.into());
        self
    }

    pub fn qop(mut self, q: &str) -> Self {
        self.challenge.qop = Some(q.into());
        self
    }

    pub fn opaque(mut self, o: &str) -> Self {
        self.challenge.opaque = Some(o.into());
        self
    }

    /// Challenge with 407 Proxy Authentication Required.
    pub fn proxy_auth(mut self) -> Self {
        self.proxy_auth = true;
        self
    }

    /// Adjust the challenge template (userhash, stale, domain...).
    pub fn with_challenge(mut self, f: impl FnOnce(Challenge) -> Challenge) -> Self {
        self.challenge = f(self.challenge);
        self
    }

    pub fn expires(mut self, e: u32) -> Self {
        self.expires = Some(e);
        self
    }

    pub fn contact_expires(mut self, e: u32) -> Self {
        self.contact_expires = Some(e);
        self
    }

    pub fn default_action(mut self, a: RegAction) -> Self {
        self.default_action = a;
        self
    }

    /// Queue actions for the next REGISTERs.
    pub fn then(mut self, a: RegAction) -> Self {
        self.script.push_back(a);
        self
    }

    pub fn start(self) -> Registrar {
        Registrar::start(self)
    }
}

/// One REGISTER the registrar received, and what it did.
#[derive(Clone, Debug)]
pub struct RegisterRecord {
    pub at: Instant,
    /// Since the registrar started.
    pub elapsed: Duration,
    pub msg: SipMsg,
    pub action: RegAction,
    /// Status code sent, None when ignored.
    pub reply: Option<u16>,
    /// Result of digest verification when credentials were checked.
    pub auth: Option<Result<(), String>>,
}

impl RegisterRecord {
    /// Requested expiry: first Contact's `expires` param, else `Expires` header.
    pub fn expires(&self) -> Option<u32> {
        requested_expires(&self.msg)
    }

    /// Whether it carried Authorization or Proxy-Authorization.
    pub fn has_credentials(&self) -> bool {
        self.msg.has("Authorization") || self.msg.has("Proxy-Authorization")
    }
}

fn requested_expires(m: &SipMsg) -> Option<u32> {
    m.values("Contact")
        .first()
        .and_then(|c| super::sip::param(c, "expires"))
        .and_then(|e| e.parse().ok())
        .or_else(|| m.expires())
}

struct RegState {
    cfg: RegistrarConfig,
    issued: Vec<Challenge>,
    records: Vec<RegisterRecord>,
}

/// A digest-authenticating registrar on a background thread.
///
/// ```ignore
/// let reg = RegistrarConfig::new("example.com", "alice", "secret").expires(60).start();
/// // ... Kamailio registers to reg.uri() ...
/// let recs = reg.wait_registers(2, WAIT);
/// assert_eq!(recs[0].reply, Some(401));
/// assert_eq!(recs[1].auth, Some(Ok(())));
/// ```
pub struct Registrar {
    server: Server,
    state: Arc<Mutex<RegState>>,
}

impl Registrar {
    pub fn start(cfg: RegistrarConfig) -> Registrar {
        let peer = UdpPeer::bind_port(cfg.port).named(&cfg.name);
        let state = Arc::new(Mutex::new(RegState {
            cfg,
            issued: Vec::new(),
            records: Vec::new(),
        }));
        let st = state.clone();
        let started = Instant::now();
        let server = Server::spawn(peer, move |peer, m| {
            if !m.is_request() || m.method() == "ACK" {
                return;
            }
            if m.method() != "REGISTER" {
                let code = if m.method() == "OPTIONS" { 200 } else { 405 };
                peer.reply(
                    m,
                    code,
                    if code == 200 {
                        "OK"
                    } else {
                        "Method Not Allowed"
                    },
                    &[],
                );
                return;
            }
            let mut s = lock(&st);
            let action = s
                .cfg
                .script
                .pop_front()
                .unwrap_or_else(|| s.cfg.default_action.clone());
            let (reply, auth) = registrar_handle(&mut s, peer, m, &action);
            let at = Instant::now();
            s.records.push(RegisterRecord {
                at,
                elapsed: at - started,
                msg: m.clone(),
                action,
                reply,
                auth,
            });
        });
        Registrar { server, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `sip:127.0.0.1:port`, a registrar URI.
    pub fn uri(&self) -> String {
        format!("sip:{}", self.addr())
    }

    /// Queue an action for the next REGISTER.
    pub fn push(&self, a: RegAction) {
        lock(&self.state).cfg.script.push_back(a);
    }

    pub fn set_default(&self, a: RegAction) {
        lock(&self.state).cfg.default_action = a;
    }

    pub fn set_expires(&self, e: Option<u32>) {
        lock(&self.state).cfg.expires = e;
    }

    pub fn set_contact_expires(&self, e: Option<u32>) {
        lock(&self.state).cfg.contact_expires = e;
    }

    pub fn set_password(&self, p: &str) {
        lock(&self.state).cfg.password = p.to_string();
    }

    /// Every REGISTER received so far (retransmissions excluded).
    pub fn registers(&self) -> Vec<RegisterRecord> {
        lock(&self.state).records.clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.state).records.len()
    }

    /// Wait until at least `n` REGISTERs arrived; returns them all.
    pub fn wait_registers(&self, n: usize, timeout: Duration) -> Vec<RegisterRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.registers();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                self.server.fail(format!(
                    "expected {n} REGISTER within {:.3}s, got {}",
                    timeout.as_secs_f64(),
                    got.len(),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panic if the number of REGISTERs grows during `duration`.
    pub fn expect_no_register(&self, duration: Duration) {
        let before = self.count();
        thread::sleep(duration);
        let after = self.count();
        if before != after {
            self.server
                .fail(format!("{} unexpected REGISTER(s)", after - before));
        }
    }

    /// The last challenge issued.
    pub fn last_challenge(&self) -> Option<Challenge> {
        lock(&self.state).issued.last().cloned()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn send_challenge(s: &mut RegState, peer: &UdpPeer, m: &SipMsg, stale: bool) -> u16 {
    let c = s.cfg.challenge.renew().stale(stale);
    let (code, reason, hname) = if s.cfg.proxy_auth {
        (407, "Proxy Authentication Required", "Proxy-Authenticate")
    } else {
        (401, "Unauthorized", "WWW-Authenticate")
    };
    peer.reply(m, code, reason, &[(hname, &c.to_header_value())]);
    s.issued.push(c);
    code
}

fn send_register_ok(s: &RegState, peer: &UdpPeer, m: &SipMsg) -> u16 {
    let mut r = Response::to(m, 200, "OK");
    let requested = requested_expires(m).unwrap_or(3600);
    if requested > 0 {
        for c in m.values("Contact") {
            if c.trim() == "*" {
                continue;
            }
            let e = s.cfg.contact_expires.unwrap_or(requested);
            let base = match c.find(";expires=") {
                Some(i) => {
                    let rest = &c[i + 1..];
                    let tail = rest.find(';').map(|j| &rest[j..]).unwrap_or("");
                    format!("{}{tail}", &c[..i])
                }
                None => c.clone(),
            };
            r = r.raw_header("Contact", &format!("{base};expires={e}"));
        }
    }
    if let Some(e) = s.cfg.expires {
        r = r.header("Expires", &e.to_string());
    }
    peer.send(r);
    200
}

fn registrar_handle(
    s: &mut RegState,
    peer: &UdpPeer,
    m: &SipMsg,
    action: &RegAction,
) -> (Option<u16>, Option<Result<(), String>>) {
    match action {
        RegAction::Ignore => (None, None),
        RegAction::Accept => (Some(send_register_ok(s, peer, m)), None),
        RegAction::Challenge => (Some(send_challenge(s, peer, m, false)), None),
        RegAction::IntervalTooBrief(min) => {
            peer.reply(
                m,
                423,
                "Interval Too Brief",
                &[("Min-Expires", &min.to_string())],
            );
            (Some(423), None)
        }
        RegAction::Reply(code, reason, extra) => {
            let ex: Vec<(&str, &str)> = extra
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            peer.reply(m, *code, reason, &ex);
            (Some(*code), None)
        }
        RegAction::Auth => {
            let hname = if s.cfg.proxy_auth {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            let Some(authz) = m.header(hname).map(str::to_string) else {
                return (Some(send_challenge(s, peer, m, false)), None);
            };
            let nonce = super::digest::parse_authorization(&authz)
                .ok()
                .and_then(|p| p.get("nonce").cloned())
                .unwrap_or_default();
            let Some(c) = s.issued.iter().find(|c| c.nonce == nonce).cloned() else {
                return (Some(send_challenge(s, peer, m, true)), None);
            };
            let res = c.verify_request(m, &s.cfg.user, &s.cfg.password);
            let code = if res.is_ok() {
                send_register_ok(s, peer, m)
            } else {
                peer.reply(m, 403, "Forbidden", &[]);
                403
            };
            (Some(code), Some(res))
        }
    }
}

// ---------------------------------------------------------------------------
// Uas
// ---------------------------------------------------------------------------

/// Credentials a [`Uas`] demands before answering.
#[derive(Clone, Debug)]
pub struct UasAuth {
    /// 407 + Proxy-Authenticate instead of 401 + WWW-Authenticate.
    pub proxy: bool,
    pub user: String,
    pub password: String,
    /// Template (realm, algorithm, qop, opaque); nonces are fresh.
    pub challenge: Challenge,
    /// Also challenge requests inside a dialog (To tag present).
    pub in_dialog: bool,
}

/// [`Uas`] behaviour.
#[derive(Clone, Debug)]
pub struct UasConfig {
    pub name: String,
    pub port: u16,
    /// Send 180 Ringing before the final answer to an initial INVITE.
    pub ring: bool,
    pub final_code: u16,
    pub final_reason: String,
    /// Put SDP in 2xx to INVITE.
    pub sdp: bool,
    pub auth: Option<UasAuth>,
}

impl Default for UasConfig {
    fn default() -> Self {
        UasConfig {
            name: "uas".into(),
            port: 0,
            ring: true,
            final_code: 200,
            final_reason: "OK".into(),
            sdp: true,
            auth: None,
        }
    }
}

impl UasConfig {
    pub fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }

    pub fn no_ring(mut self) -> Self {
        self.ring = false;
        self
    }

    pub fn answer(mut self, code: u16, reason: &str) -> Self {
        self.final_code = code;
        self.final_reason = reason.into();
        self
    }

    /// Challenge with 401 (`proxy == false`) or 407 first.
    pub fn challenge(mut self, proxy: bool, realm: &str, user: &str, password: &str) -> Self {
        self.auth = Some(UasAuth {
            proxy,
            user: user.into(),
            password: password.into(),
            challenge: Challenge::new(realm),
            in_dialog: false,
        });
        self
    }

    /// Adjust the challenge template (after `challenge`).
    pub fn with_challenge(mut self, f: impl FnOnce(Challenge) -> Challenge) -> Self {
        if let Some(a) = self.auth.as_mut() {
            a.challenge = f(a.challenge.clone());
        }
        self
    }

    pub fn start(self) -> Uas {
        Uas::start(self)
    }
}

struct UasState {
    cfg: UasConfig,
    tag: String,
    issued: Vec<Challenge>,
    auth_results: Vec<(String, Result<(), String>)>,
}

/// A tiny UAS on a background thread: INVITE → [401/407 →] 180 → 200 (with SDP),
/// re-INVITE → 200, BYE/CANCEL/other → 200, ACK → nothing.
pub struct Uas {
    server: Server,
    state: Arc<Mutex<UasState>>,
}

impl Uas {
    pub fn start(cfg: UasConfig) -> Uas {
        let peer = UdpPeer::bind_port(cfg.port).named(&cfg.name);
        let state = Arc::new(Mutex::new(UasState {
            cfg,
            tag: new_tag(),
            issued: Vec::new(),
            auth_results: Vec::new(),
        }));
        let st = state.clone();
        let server = Server::spawn(peer, move |peer, m| {
            if m.is_request() && m.method() != "ACK" {
                uas_handle(&mut lock(&st), peer, m);
            }
        });
        Uas { server, state }
    }

    /// A UAS with default behaviour.
    pub fn answering() -> Uas {
        Uas::start(UasConfig::default())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn uri(&self, user: &str) -> String {
        self.server.uri(user)
    }

    pub fn received(&self) -> Vec<Received> {
        self.server.received()
    }

    pub fn requests(&self, method: &str) -> Vec<SipMsg> {
        self.server.requests(method)
    }

    pub fn wait_requests(&self, method: &str, n: usize, timeout: Duration) -> Vec<SipMsg> {
        self.server.wait_requests(method, n, timeout)
    }

    /// (method, verification result) for every request that carried credentials.
    pub fn auth_results(&self) -> Vec<(String, Result<(), String>)> {
        lock(&self.state).auth_results.clone()
    }

    pub fn log_text(&self) -> String {
        self.server.log_text()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

fn uas_handle(s: &mut UasState, peer: &UdpPeer, m: &SipMsg) {
    let in_dialog = m.to_tag().is_some();
    if let Some(a) = s.cfg.auth.clone() {
        let applies = m.method() != "CANCEL" && (!in_dialog || a.in_dialog);
        if applies {
            let hname = if a.proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            let nonce = m
                .header(hname)
                .and_then(|v| super::digest::parse_authorization(v).ok())
                .and_then(|p| p.get("nonce").cloned());
            let known = nonce.and_then(|n| s.issued.iter().find(|c| c.nonce == n).cloned());
            match known {
                Some(c) => {
                    let res = c.verify_request(m, &a.user, &a.password);
                    s.auth_results.push((m.method().to_string(), res.clone()));
                    if res.is_err() {
                        peer.send(Response::to(m, 403, "Forbidden").to_tag(&s.tag));
                        return;
                    }
                }
                None => {
                    let c = a.challenge.renew();
                    let (code, reason, h) = if a.proxy {
                        (407, "Proxy Authentication Required", "Proxy-Authenticate")
                    } else {
                        (401, "Unauthorized", "WWW-Authenticate")
                    };
                    peer.send(
                        Response::to(m, code, reason)
                            .to_tag(&s.tag)
                            .header(h, &c.to_header_value()),
                    );
                    s.issued.push(c);
                    return;
                }
            }
        }
    }
    match m.method() {
        "INVITE" => {
            if s.cfg.ring && !in_dialog {
                peer.send(
                    Response::to(m, 180, "Ringing")
                        .to_tag(&s.tag)
                        .contact_user("uas"),
                );
            }
            let mut r = Response::to(m, s.cfg.final_code, &s.cfg.final_reason)
                .to_tag(&s.tag)
                .contact_user("uas");
            if s.cfg.sdp && (200..300).contains(&s.cfg.final_code) {
                r = r.sdp(sdp(peer.addr()));
            }
            peer.send(r);
        }
        _ => {
            peer.send(Response::to(m, 200, "OK").to_tag(&s.tag));
        }
    }
}
