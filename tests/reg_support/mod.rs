//! Support for the registration tests: a uacreg SQLite DB, and a registrar on UDP that
//! the test drives one reply at a time (the exact replies and their timing are the
//! point of these tests; the autonomous `common::peer::Registrar` serves the others).
//! Digests are checked with the shared verifier `common::digest`.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::digest;
use crate::common::kamailio::Kamailio;

pub const SQL_DIR: &str = "/usr/share/kamailio/db_sqlite";

/// A uacreg DB file created with Kamailio's own schema.
pub struct RegDb {
    pub path: PathBuf,
}

static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl RegDb {
    pub fn new() -> RegDb {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("uacreg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("uacreg.db");
        for f in ["standard-create.sql", "uac-create.sql"] {
            let sql = std::fs::read_to_string(Path::new(SQL_DIR).join(f)).unwrap();
            run_sql(&path, &sql);
        }
        RegDb { path }
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub fn exec(&self, sql: &str) {
        run_sql(&self.path, sql);
    }

    /// Inserts an account (password auth).
    pub fn add(
        &self,
        uuid: &str,
        user: &str,
        r_user: &str,
        proxy: &str,
        expires: u32,
        extra: &[(&str, &str)],
    ) {
        let mut cols = vec![
            ("l_uuid", format!("'{uuid}'")),
            ("l_username", format!("'{user}'")),
            ("l_domain", "'local.test'".to_string()),
            ("r_username", format!("'{r_user}'")),
            ("r_domain", "'example.com'".to_string()),
            ("realm", "'example.com'".to_string()),
            ("auth_username", format!("'{r_user}'")),
            ("auth_password", "'secret'".to_string()),
            ("auth_proxy", format!("'{proxy}'")),
            ("expires", expires.to_string()),
        ];
        for (k, v) in extra {
            cols.retain(|(c, _)| c != k);
            cols.push((k, v.to_string()));
        }
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let vals: Vec<String> = cols.iter().map(|(_, v)| v.clone()).collect();
        self.exec(&format!(
            "INSERT INTO uacreg ({}) VALUES ({});",
            names.join(","),
            vals.join(",")
        ));
    }
}

fn run_sql(path: &Path, sql: &str) {
    use std::io::Write;
    let mut c = Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3");
    c.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "sqlite3 failed on {sql}");
}

/// A received request.
#[derive(Debug, Clone)]
pub struct Req {
    pub from: SocketAddr,
    pub text: String,
    pub method: String,
    pub ruri: String,
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Req {
    fn parse(text: &str, from: SocketAddr) -> Option<Req> {
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let mut p = first.split(' ');
        let method = p.next()?.to_string();
        let ruri = p.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Some(Req {
            from,
            text: text.to_string(),
            method,
            ruri,
            headers,
            at: Instant::now(),
        })
    }

    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn cseq(&self) -> u32 {
        self.h("CSeq")
            .and_then(|c| c.split(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    pub fn call_id(&self) -> String {
        self.h("Call-ID").unwrap_or("").to_string()
    }

    /// The user part of the Contact URI.
    pub fn contact_user(&self) -> String {
        let c = self.h("Contact").unwrap_or("");
        let s = c.split("sip:").nth(1).unwrap_or("");
        s.split('@').next().unwrap_or("").to_string()
    }
}

/// A UDP registrar.
pub struct Registrar {
    pub sock: UdpSocket,
    pub nonce_n: u32,
}

impl Registrar {
    pub fn new() -> Registrar {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Registrar { sock, nonce_n: 0 }
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    pub fn proxy(&self) -> String {
        format!("sip:127.0.0.1:{}", self.port())
    }

    /// The next request (retransmissions included), or None after `t`.
    pub fn recv(&self, t: Duration) -> Option<Req> {
        let deadline = Instant::now() + t;
        let mut buf = vec![0u8; 65535];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if let Some(r) = Req::parse(&text, from) {
                        return Some(r);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The next REGISTER that is not a retransmission of `prev`.
    pub fn recv_new(&self, t: Duration, seen: &mut Vec<(String, u32)>) -> Option<Req> {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let r = self.recv(left)?;
            let key = (r.call_id(), r.cseq());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            return Some(r);
        }
    }

    pub fn reply(&self, req: &Req, code: u16, reason: &str, extra: &str) {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.all("Via") {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        out.push_str(&format!("From: {}\r\n", req.h("From").unwrap_or("")));
        let to = req.h("To").unwrap_or("");
        if to.contains("tag=") {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {to};tag=reg{code}\r\n"));
        }
        out.push_str(&format!("Call-ID: {}\r\n", req.call_id()));
        out.push_str(&format!("CSeq: {}\r\n", req.h("CSeq").unwrap_or("")));
        out.push_str(extra);
        out.push_str("Content-Length: 0\r\n\r\n");
        self.sock.send_to(out.as_bytes(), req.from).unwrap();
    }

    /// 401 with a fresh nonce; returns the nonce.
    pub fn challenge(&mut self, req: &Req) -> String {
        self.nonce_n += 1;
        let nonce = format!("nonce{}x{}", self.nonce_n, std::process::id());
        self.reply(
            req,
            401,
            "Unauthorized",
            &format!("WWW-Authenticate: Digest realm=\"example.com\", nonce=\"{nonce}\", qop=\"auth\"\r\n"),
        );
        nonce
    }

    /// 200 echoing the Contact with `expires`.
    pub fn ok(&self, req: &Req, expires: u32) {
        let c = req.h("Contact").unwrap_or("");
        let uri = c.split(';').next().unwrap_or(c);
        self.reply(
            req,
            200,
            "OK",
            &format!("Contact: {uri};expires={expires}\r\n"),
        );
    }
}

/// Checks a Digest Authorization for REGISTER with the shared verifier, and that it
/// answers the nonce `nonce`.
pub fn verify_digest(h: &str, user: &str, realm: &str, password: &str, nonce: &str) -> bool {
    let nonce_ok = digest::parse_authorization(h)
        .is_ok_and(|p| p.get("nonce").map(String::as_str) == Some(nonce));
    nonce_ok && digest::verify(h, "REGISTER", user, realm, password, b"").is_ok()
}

/// MD5 HA1 (`auth_ha1` column value).
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    digest::h("MD5", format!("{user}:{realm}:{password}").as_bytes()).unwrap()
}

/// Value of `name` in kamcmd output (`name: value` lines).
pub fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines().map(str::trim).find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The value of counter `uac:<name>` (`cnt.get`).
pub fn counter(k: &Kamailio, name: &str) -> i64 {
    let out = k.kamcmd(&["cnt.get", "uac", name]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("cnt.get {name}: {out}"))
}

/// Waits until counter `uac:<name>` is `want`; fails with the log after `t`.
pub fn wait_counter(k: &Kamailio, name: &str, want: i64, t: Duration) {
    let deadline = Instant::now() + t;
    loop {
        let v = counter(k, name);
        if v == want {
            return;
        }
        if Instant::now() > deadline {
            panic!("counter {name} = {v}, want {want}\n{}", k.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The user part of a request's To URI.
pub fn to_user(r: &Req) -> String {
    let to = r.h("To").unwrap_or("");
    let s = to.split("sip:").nth(1).unwrap_or("");
    s.split('@').next().unwrap_or("").to_string()
}
