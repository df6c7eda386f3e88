//! A small, tolerant SIP message model for the integration tests (RFC 3261).
//!
//! - [`SipMsg`]: a parsed datagram (request or response), ordered headers with
//!   case-insensitive and compact-form lookup, body, raw bytes and the remote address.
//! - [`Request`] / [`Response`]: builders that fill in the mandatory headers.
//! - [`Dialog`]: RFC 3261 §12 dialog state for the caller and the callee side, to
//!   build ACK / re-INVITE / BYE through a record-routing proxy.
//! - Free helpers: [`uri_of`], [`param`], [`split_list`], [`Uri`].
//!
//! This is test tooling: it never refuses what it can make sense of, and getters
//! that tests use in assertions panic with the whole message when a header is missing.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

// ---------------------------------------------------------------------------
// Random identifiers
// ---------------------------------------------------------------------------

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A fresh RFC 3261 §8.1.1.7 branch (magic cookie `z9hG4bK` + random).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_hex(8))
}

/// A fresh From/To tag (§19.3).
pub fn new_tag() -> String {
    random_hex(6)
}

/// A fresh Call-ID (§8.1.1.4).
pub fn new_call_id() -> String {
    format!("{}@127.0.0.1", random_hex(10))
}

/// A minimal SDP body offering PCMU on `addr` (enough for proxies and for `uac` tests).
pub fn sdp(addr: SocketAddr) -> String {
    let ip = addr.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        addr.port().wrapping_add(1000)
    )
}

// ---------------------------------------------------------------------------
// Header names
// ---------------------------------------------------------------------------

/// Lowercase full header name, resolving the compact forms of RFC 3261 §7.3.3
/// and later RFCs (Event, Refer-To, Session-Expires...).
pub fn canonical_name(name: &str) -> String {
    let l = name.trim().to_ascii_lowercase();
    let full = match l.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        "a" => "accept-contact",
        "j" => "reject-contact",
        "d" => "request-disposition",
        "y" => "identity",
        "n" => "identity-info",
        _ => return l,
    };
    full.to_string()
}

/// Whether two header names denote the same header (case-insensitive, compact aware).
pub fn name_eq(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim()) || canonical_name(a) == canonical_name(b)
}

// ---------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------

/// Split a header value at top-level `sep` (outside quotes and `<...>`), trimming
/// the pieces and dropping empty ones.
fn split_top(value: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_q, mut esc, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, ch) in value.char_indices() {
        if in_q {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_q = false;
            }
            continue;
        }
        match ch {
            '"' => in_q = true,
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                out.push(value[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Split a comma-separated header value (RFC 3261 §7.3.1) into its elements,
/// honouring quoted strings and `<...>`: `"a, b" <sip:x>;p=1, <sip:y>` gives two.
pub fn split_list(value: &str) -> Vec<String> {
    split_top(value, ',')
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Remove surrounding double quotes and backslash escapes (§25.1 quoted-string).
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        let mut out = String::new();
        let mut esc = false;
        for ch in s[1..s.len() - 1].chars() {
            if esc {
                out.push(ch);
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        s.to_string()
    }
}

/// Byte offset where the header parameters of a name-addr / addr-spec / Via value
/// start (just after the first `;` outside quotes and `<...>`), if any.
fn header_params_start(value: &str) -> Option<usize> {
    let (mut in_q, mut esc, mut angle) = (false, false, false);
    for (i, ch) in value.char_indices() {
        if in_q {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_q = false;
            }
            continue;
        }
        match ch {
            '"' => in_q = true,
            '<' => angle = true,
            '>' => angle = false,
            ';' if !angle => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Look up a parameter in a `;`-separated parameter string. Flag parameters
/// (`;lr`, `;rport`) give `Some("")`; quoted values are unquoted.
fn find_param(params: &str, name: &str) -> Option<String> {
    for p in split_top(params, ';') {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if k.eq_ignore_ascii_case(name) {
            return Some(v.map(unquote).unwrap_or_default());
        }
    }
    None
}

/// A header parameter of a From/To/Contact/Route/Via value (RFC 3261 §20):
/// the parameters after `>` for name-addr, after the first `;` for addr-spec / Via.
/// `param("<sip:a@b;lr>;tag=1", "tag") == Some("1")`; flags give `Some("")`.
pub fn param(header_value: &str, name: &str) -> Option<String> {
    let start = header_params_start(header_value)?;
    find_param(&header_value[start..], name)
}

/// The `tag` parameter of a From/To value.
pub fn tag(header_value: &str) -> Option<String> {
    param(header_value, "tag")
}

/// The URI of a name-addr (`"Bob" <sip:bob@b>;tag=1` → `sip:bob@b`) or addr-spec
/// (`sip:bob@b;tag=1` → `sip:bob@b`, header params stripped per §20.10).
pub fn uri_of(header_value: &str) -> &str {
    let v = header_value.trim();
    let mut in_q = false;
    let mut esc = false;
    for (i, ch) in v.char_indices() {
        if in_q {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                in_q = false;
            }
            continue;
        }
        match ch {
            '"' => in_q = true,
            '<' => {
                let rest = &v[i + 1..];
                return rest.find('>').map_or(rest, |e| &rest[..e]).trim();
            }
            _ => {}
        }
    }
    match header_params_start(v) {
        Some(p) => v[..p - 1].trim(),
        None => v,
    }
}

/// The display name of a name-addr, unquoted (`"Bob B" <sip:..>` → `Bob B`), if any.
pub fn display_name(header_value: &str) -> Option<String> {
    let v = header_value.trim();
    let lt = v.find('<')?;
    let d = v[..lt].trim();
    if d.is_empty() { None } else { Some(unquote(d)) }
}

/// A URI parameter (`uri_param("sip:p@h;lr;ftag=x", "ftag") == Some("x")`).
pub fn uri_param(uri: &str, name: &str) -> Option<String> {
    Uri::parse(uri)?.param(name)
}

/// Whether a Route/Record-Route value designates a loose router (`;lr`, §19.1.1).
pub fn is_loose(route_value: &str) -> bool {
    uri_param(uri_of(route_value), "lr").is_some()
}

/// Append `;tag=<random>` unless the value already carries a tag.
fn with_tag(value: String) -> String {
    if tag(&value).is_some() {
        value
    } else {
        format!("{value};tag={}", new_tag())
    }
}

/// Wrap a bare URI in `<>` so that later parameters are header parameters.
fn as_name_addr(v: &str) -> String {
    if v.contains('<') {
        v.to_string()
    } else {
        format!("<{}>", v.trim())
    }
}

// ---------------------------------------------------------------------------
// URI
// ---------------------------------------------------------------------------

/// The pieces of a SIP/SIPS/TEL URI (RFC 3261 §19.1.1), tolerant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    /// User part without the password (`alice` in `sip:alice:pw@h`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host, IPv6 references keep their brackets.
    pub host: String,
    pub port: Option<u16>,
    /// `;name[=value]` parameters in order; flags have `None`.
    pub params: Vec<(String, Option<String>)>,
    /// Everything after `?`, undecoded.
    pub headers: Option<String>,
}

impl Uri {
    /// Parse `sip:user:pw@host:port;params?headers` (or `<...>` around it);
    /// `None` when there is no scheme.
    pub fn parse(s: &str) -> Option<Uri> {
        // `<...>` is unwrapped; a bare URI keeps its `;params` (they are URI params here).
        let s = if s.contains('<') { uri_of(s) } else { s.trim() };
        let (scheme, rest) = s.split_once(':')?;
        if scheme.is_empty() || scheme.contains(['@', ';', '<', ' ']) {
            return None;
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(ui.to_string()), None),
            },
            None => (None, None),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((hp, p)) => (hp, p),
            None => (hostpart, ""),
        };
        let (host, port) = if hostport.starts_with('[') {
            match hostport.find(']') {
                Some(e) => {
                    let port = hostport[e + 1..]
                        .strip_prefix(':')
                        .and_then(|p| p.parse().ok());
                    (hostport[..=e].to_string(), port)
                }
                None => (hostport.to_string(), None),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                    (h.to_string(), p.parse().ok())
                }
                _ => (hostport.to_string(), None),
            }
        };
        let params = params
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                None => (p.trim().to_string(), None),
            })
            .collect();
        Some(Uri {
            scheme: scheme.to_string(),
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI parameter; flags give `Some("")`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone().unwrap_or_default())
    }

    /// `host[:port]` as written.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The UDP address to send to (port 5060 when absent; names resolved).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let port = self.port.unwrap_or(5060);
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        (host, port).to_socket_addrs().ok()?.next()
    }
}

/// Where a Via value says responses go (§18.2.2): `received`/`rport` if present,
/// else sent-by (default port 5060).
pub fn via_addr(via: &str) -> Option<SocketAddr> {
    let sent_by = via.split_whitespace().nth(1)?.split(';').next()?;
    let uri = Uri::parse(&format!("sip:{sent_by}"))?;
    let mut addr = uri.socket_addr()?;
    if let Some(r) = param(via, "received").and_then(|r| r.parse::<IpAddr>().ok()) {
        addr.set_ip(r);
    }
    if let Some(p) = param(via, "rport").and_then(|p| p.parse::<u16>().ok()) {
        addr.set_port(p);
    }
    Some(addr)
}

// ---------------------------------------------------------------------------
// Parsed message
// ---------------------------------------------------------------------------

/// First line of a SIP message (§7.1, §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: String,
        uri: String,
        version: String,
    },
    Response {
        version: String,
        code: u16,
        reason: String,
    },
}

/// A parsed SIP datagram.
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub start: StartLine,
    /// Headers in wire order: (name as written, value trimmed, folding undone).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The datagram as received / sent.
    pub raw: Vec<u8>,
    /// The other end: source of a received message, destination of a sent one.
    pub remote: Option<SocketAddr>,
}

fn find_sub(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

// `from_tag`/`from_uri` read the From header; they are not conversions.
#[allow(clippy::wrong_self_convention)]
impl SipMsg {
    /// Parse a datagram. Tolerant: LF line ends, leading CRLFs, folded headers,
    /// lines without a colon (kept as a header with an empty value), missing or
    /// wrong Content-Length (the body is what follows the blank line, cut at
    /// Content-Length when that is shorter).
    pub fn parse(data: &[u8]) -> Result<SipMsg, String> {
        let mut off = 0;
        while data[off..].starts_with(b"\r\n") || data[off..].starts_with(b"\n") {
            off += if data[off] == b'\r' { 2 } else { 1 };
        }
        let d = &data[off..];
        if d.is_empty() {
            return Err("empty datagram".into());
        }
        let (head, body) = match (find_sub(d, b"\r\n\r\n"), find_sub(d, b"\n\n")) {
            (Some(a), Some(b)) if b + 1 < a => (&d[..b], &d[b + 2..]),
            (Some(a), _) => (&d[..a], &d[a + 4..]),
            (None, Some(b)) => (&d[..b], &d[b + 2..]),
            (None, None) => (d, &d[d.len()..]),
        };
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("").trim();
        let start = if let Some(rest) = first.strip_prefix("SIP/") {
            let mut it = rest.splitn(3, ' ');
            let ver = it.next().unwrap_or("");
            let code = it
                .next()
                .and_then(|c| c.trim().parse::<u16>().ok())
                .ok_or_else(|| format!("bad status line {first:?}"))?;
            StartLine::Response {
                version: format!("SIP/{ver}"),
                code,
                reason: it.next().unwrap_or("").trim().to_string(),
            }
        } else {
            let mut it = first.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(m), Some(u), Some(v)) if v.starts_with("SIP/") => StartLine::Request {
                    method: m.to_string(),
                    uri: u.to_string(),
                    version: v.to_string(),
                },
                _ => return Err(format!("bad start line {first:?}")),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // §7.3.1 line folding: continuation of the previous header.
                if let Some(last) = headers.last_mut() {
                    if !last.1.is_empty() {
                        last.1.push(' ');
                    }
                    last.1.push_str(line.trim());
                    continue;
                }
            }
            if line.trim().is_empty() {
                continue;
            }
            match line.split_once(':') {
                Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
                None => headers.push((line.trim().to_string(), String::new())),
            }
        }
        let mut msg = SipMsg {
            start,
            headers,
            body: body.to_vec(),
            raw: data.to_vec(),
            remote: None,
        };
        if let Some(cl) = msg
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            && cl < msg.body.len()
        {
            msg.body.truncate(cl);
        }
        Ok(msg)
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// Request method, `""` for responses.
    pub fn method(&self) -> &str {
        match &self.start {
            StartLine::Request { method, .. } => method,
            _ => "",
        }
    }

    /// Request-URI, `""` for responses.
    pub fn ruri(&self) -> &str {
        match &self.start {
            StartLine::Request { uri, .. } => uri,
            _ => "",
        }
    }

    /// Status code, 0 for requests.
    pub fn code(&self) -> u16 {
        match &self.start {
            StartLine::Response { code, .. } => *code,
            _ => 0,
        }
    }

    /// Reason phrase, `""` for requests.
    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            _ => "",
        }
    }

    pub fn first_line(&self) -> String {
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => format!("{method} {uri} {version}"),
            StartLine::Response {
                version,
                code,
                reason,
            } => format!("{version} {code} {reason}"),
        }
    }

    /// First value of a header (case-insensitive, compact forms accepted).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| name_eq(n, name))
            .map(|(_, v)| v.as_str())
    }

    /// First value of a header; panics with the whole message when missing.
    pub fn hdr(&self, name: &str) -> &str {
        match self.header(name) {
            Some(v) => v,
            None => panic!("header {name:?} missing in:\n{self}"),
        }
    }

    /// Values of every header line with this name, in order, not split at commas.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| name_eq(n, name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every element of a list header (Via, Route, Record-Route, Contact...):
    /// all header lines, each split at top-level commas.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers(name)
            .into_iter()
            .flat_map(split_list)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Number of header lines with this name.
    pub fn count(&self, name: &str) -> usize {
        self.headers(name).len()
    }

    /// From value (panics when missing).
    pub fn from(&self) -> &str {
        self.hdr("From")
    }

    /// To value (panics when missing).
    pub fn to(&self) -> &str {
        self.hdr("To")
    }

    /// Call-ID value (panics when missing).
    pub fn call_id(&self) -> &str {
        self.hdr("Call-ID")
    }

    pub fn from_tag(&self) -> Option<String> {
        self.header("From").and_then(tag)
    }

    pub fn to_tag(&self) -> Option<String> {
        self.header("To").and_then(tag)
    }

    pub fn from_uri(&self) -> &str {
        uri_of(self.from())
    }

    pub fn to_uri(&self) -> &str {
        uri_of(self.to())
    }

    /// CSeq number and method (panics when missing or malformed).
    pub fn cseq(&self) -> (u32, String) {
        let v = self.hdr("CSeq");
        let mut it = v.split_whitespace();
        match (it.next().and_then(|n| n.parse().ok()), it.next()) {
            (Some(n), Some(m)) => (n, m.to_string()),
            _ => panic!("malformed CSeq {v:?} in:\n{self}"),
        }
    }

    /// Topmost Via element.
    pub fn top_via(&self) -> Option<String> {
        self.values("Via").into_iter().next()
    }

    /// Branch of the topmost Via.
    pub fn branch(&self) -> Option<String> {
        self.top_via().and_then(|v| param(&v, "branch"))
    }

    /// URI of the first Contact.
    pub fn contact_uri(&self) -> Option<String> {
        self.values("Contact")
            .first()
            .map(|c| uri_of(c).to_string())
    }

    /// `Expires` header as a number.
    pub fn expires(&self) -> Option<u32> {
        self.header("Expires").and_then(|v| v.trim().parse().ok())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The raw datagram as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// One line for logs: first line, CSeq, Call-ID, tags.
    pub fn summary(&self) -> String {
        format!(
            "{} [CSeq: {}; Call-ID: {}; ftag={} ttag={}]",
            self.first_line(),
            self.header("CSeq").unwrap_or("-"),
            self.header("Call-ID").unwrap_or("-"),
            self.from_tag().unwrap_or_default(),
            self.to_tag().unwrap_or_default(),
        )
    }

    /// Replace the first header with this name, or append it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        match self.headers.iter_mut().find(|(n, _)| name_eq(n, name)) {
            Some(h) => h.1 = value.to_string(),
            None => self.headers.push((name.to_string(), value.to_string())),
        }
    }

    /// Insert a header line at `index` (0 = first).
    pub fn insert_header(&mut self, index: usize, name: &str, value: &str) {
        let i = index.min(self.headers.len());
        self.headers
            .insert(i, (name.to_string(), value.to_string()));
    }

    /// Insert before the first header with this name (or at the top).
    pub fn prepend_header(&mut self, name: &str, value: &str) {
        let i = self
            .headers
            .iter()
            .position(|(n, _)| name_eq(n, name))
            .unwrap_or(0);
        self.insert_header(i, name, value);
    }

    /// Remove every header line with this name; returns how many were removed.
    pub fn remove_header(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        self.headers.retain(|(n, _)| !name_eq(n, name));
        before - self.headers.len()
    }

    /// Remove the first element of a list header (e.g. the top Via or Route),
    /// handling both separate lines and comma-joined values. Returns it.
    pub fn pop_first_value(&mut self, name: &str) -> Option<String> {
        let i = self.headers.iter().position(|(n, _)| name_eq(n, name))?;
        let mut elems = split_list(&self.headers[i].1);
        let first = if elems.is_empty() {
            String::new()
        } else {
            elems.remove(0)
        };
        if elems.is_empty() {
            self.headers.remove(i);
        } else {
            self.headers[i].1 = elems.join(", ");
        }
        Some(first)
    }

    /// Serialise from `start`/`headers`/`body` (Content-Length rewritten to the
    /// body length when present, added when absent).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.first_line();
        s.push_str("\r\n");
        let mut had_cl = false;
        for (n, v) in &self.headers {
            if name_eq(n, "Content-Length") {
                had_cl = true;
                s.push_str(&format!("{n}: {}\r\n", self.body.len()));
            } else {
                s.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        if !had_cl {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

impl fmt::Display for SipMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

/// Something a peer can send: builders fill in the local address (Via sent-by,
/// Contact) at send time and may carry a default destination.
pub trait Outgoing {
    /// The datagram, with `local` as the sender's address where the builder left it open.
    fn render(&self, local: SocketAddr) -> Vec<u8>;
    /// Destination chosen by the builder (response → request source, dialog → next hop).
    fn dest(&self) -> Option<SocketAddr> {
        None
    }
}

impl<T: Outgoing + ?Sized> Outgoing for &T {
    fn render(&self, local: SocketAddr) -> Vec<u8> {
        (**self).render(local)
    }
    fn dest(&self) -> Option<SocketAddr> {
        (**self).dest()
    }
}

impl Outgoing for SipMsg {
    fn render(&self, _local: SocketAddr) -> Vec<u8> {
        self.to_bytes()
    }
}

#[derive(Clone, Debug)]
enum ContactSpec {
    Auto,
    Set(String),
    Omit,
}

/// Methods that carry a Contact by default (target-refresh and REGISTER).
fn wants_contact(method: &str) -> bool {
    matches!(
        method,
        "INVITE" | "REGISTER" | "SUBSCRIBE" | "NOTIFY" | "REFER" | "UPDATE"
    )
}

/// Builder for an outgoing request. Defaults (RFC 3261 §8.1.1): a Via with a
/// fresh branch and `;rport` (sent-by filled with the sending peer's address),
/// `Max-Forwards: 70`, From `<sip:tester@127.0.0.1>;tag=<random>`, To `<R-URI>`,
/// a random Call-ID, `CSeq: 1 <METHOD>`, a Contact for INVITE/REGISTER/SUBSCRIBE/
/// NOTIFY/REFER/UPDATE, and a computed Content-Length.
///
/// `.header(name, value)` on one of those headers replaces the default
/// (Via/Route are appended, the first explicit Via replacing the automatic one);
/// any other name is appended. `.raw_header` always appends verbatim;
/// `.without(name)` omits a header entirely.
#[derive(Clone, Debug)]
pub struct Request {
    method: String,
    ruri: String,
    vias: Option<Vec<String>>,
    branch: String,
    max_forwards: Option<String>,
    routes: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
    contact: ContactSpec,
    extra: Vec<(String, String)>,
    content_type: Option<String>,
    content_length: Option<Option<String>>,
    body: Vec<u8>,
    user: String,
    local: Option<SocketAddr>,
    dest: Option<SocketAddr>,
}

// Builder methods are named after the headers they set (`from`, `to_raw`, ...).
#[allow(clippy::wrong_self_convention)]
impl Request {
    pub fn new(method: &str, ruri: &str) -> Request {
        Request {
            method: method.to_string(),
            ruri: ruri.to_string(),
            vias: None,
            branch: new_branch(),
            max_forwards: Some("70".into()),
            routes: Vec::new(),
            from: Some(format!("<sip:tester@127.0.0.1>;tag={}", new_tag())),
            to: Some(as_name_addr(ruri)),
            call_id: Some(new_call_id()),
            cseq: Some(format!("1 {method}")),
            contact: ContactSpec::Auto,
            extra: Vec::new(),
            content_type: None,
            content_length: None,
            body: Vec::new(),
            user: "tester".into(),
            local: None,
            dest: None,
        }
    }

    /// From: a bare URI is wrapped in `<>`, a tag is added when missing.
    /// Use `from_raw` for an exact value.
    pub fn from(mut self, v: &str) -> Self {
        self.from = Some(with_tag(as_name_addr(v)));
        self
    }

    /// From, exactly as given (no tag added).
    pub fn from_raw(mut self, v: &str) -> Self {
        self.from = Some(v.to_string());
        self
    }

    /// To: a bare URI is wrapped in `<>`; no tag is added.
    pub fn to(mut self, v: &str) -> Self {
        self.to = Some(as_name_addr(v));
        self
    }

    /// To, exactly as given.
    pub fn to_raw(mut self, v: &str) -> Self {
        self.to = Some(v.to_string());
        self
    }

    pub fn call_id(mut self, v: &str) -> Self {
        self.call_id = Some(v.to_string());
        self
    }

    /// CSeq number; the method is the request's.
    pub fn cseq(mut self, n: u32) -> Self {
        self.cseq = Some(format!("{n} {}", self.method));
        self
    }

    /// Branch of the automatic Via.
    pub fn branch(mut self, b: &str) -> Self {
        self.branch = b.to_string();
        self
    }

    /// Add an explicit Via (the first call replaces the automatic one).
    pub fn via(mut self, v: &str) -> Self {
        self.vias.get_or_insert_with(Vec::new).push(v.to_string());
        self
    }

    /// Append a Route header.
    pub fn route(mut self, v: &str) -> Self {
        self.routes.push(v.to_string());
        self
    }

    pub fn max_forwards(mut self, n: u32) -> Self {
        self.max_forwards = Some(n.to_string());
        self
    }

    pub fn contact(mut self, v: &str) -> Self {
        self.contact = ContactSpec::Set(v.to_string());
        self
    }

    pub fn no_contact(mut self) -> Self {
        self.contact = ContactSpec::Omit;
        self
    }

    /// User part of the automatic Contact (`tester` by default).
    pub fn contact_user(mut self, u: &str) -> Self {
        self.user = u.to_string();
        self
    }

    pub fn content_type(mut self, v: &str) -> Self {
        self.content_type = Some(v.to_string());
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }

    /// Body with `Content-Type: application/sdp`.
    pub fn sdp(self, b: impl Into<Vec<u8>>) -> Self {
        self.content_type("application/sdp").body(b)
    }

    /// Set or override a header (see the type docs).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let v = value.to_string();
        match canonical_name(name).as_str() {
            "via" => self.vias.get_or_insert_with(Vec::new).push(v),
            "route" => self.routes.push(v),
            "max-forwards" => self.max_forwards = Some(v),
            "from" => self.from = Some(v),
            "to" => self.to = Some(v),
            "call-id" => self.call_id = Some(v),
            "cseq" => self.cseq = Some(v),
            "contact" => self.contact = ContactSpec::Set(v),
            "content-type" => self.content_type = Some(v),
            "content-length" => self.content_length = Some(Some(v)),
            _ => self.extra.push((name.to_string(), v)),
        }
        self
    }

    /// Several headers at once (same rules as `header`).
    pub fn headers(mut self, hs: &[(&str, &str)]) -> Self {
        for (n, v) in hs {
            self = self.header(n, v);
        }
        self
    }

    /// Append a header line verbatim, never replacing anything.
    pub fn raw_header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    /// Leave a header out entirely (including Content-Length and Via).
    pub fn without(mut self, name: &str) -> Self {
        match canonical_name(name).as_str() {
            "via" => self.vias = Some(Vec::new()),
            "route" => self.routes.clear(),
            "max-forwards" => self.max_forwards = None,
            "from" => self.from = None,
            "to" => self.to = None,
            "call-id" => self.call_id = None,
            "cseq" => self.cseq = None,
            "contact" => self.contact = ContactSpec::Omit,
            "content-type" => self.content_type = None,
            "content-length" => self.content_length = Some(None),
            _ => {}
        }
        self.extra.retain(|(n, _)| !name_eq(n, name));
        self
    }

    /// Sender address used for Via/Contact (normally filled in by the peer).
    pub fn local(mut self, a: SocketAddr) -> Self {
        self.local = Some(a);
        self
    }

    /// Default destination for `UdpPeer::send`.
    pub fn dest(mut self, a: SocketAddr) -> Self {
        self.dest = Some(a);
        self
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn ruri(&self) -> &str {
        &self.ruri
    }

    /// Branch of the automatic Via.
    pub fn get_branch(&self) -> &str {
        &self.branch
    }

    pub fn get_call_id(&self) -> Option<&str> {
        self.call_id.as_deref()
    }

    pub fn get_from(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// The datagram with `127.0.0.1:5060` (or `.local`) as sender address.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.render(SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    /// The datagram parsed back.
    pub fn to_msg(&self) -> SipMsg {
        SipMsg::parse(&self.to_bytes()).expect("built request parses")
    }
}

fn push_hdr(s: &mut String, n: &str, v: &str) {
    s.push_str(n);
    s.push_str(": ");
    s.push_str(v);
    s.push_str("\r\n");
}

fn finish(mut s: String, ct: &Option<String>, cl: &Option<Option<String>>, body: &[u8]) -> Vec<u8> {
    if let Some(ct) = ct {
        push_hdr(&mut s, "Content-Type", ct);
    }
    match cl {
        None => push_hdr(&mut s, "Content-Length", &body.len().to_string()),
        Some(Some(v)) => push_hdr(&mut s, "Content-Length", v),
        Some(None) => {}
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

impl Outgoing for Request {
    fn render(&self, local: SocketAddr) -> Vec<u8> {
        let local = self.local.unwrap_or(local);
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.ruri);
        match &self.vias {
            None => push_hdr(
                &mut s,
                "Via",
                &format!("SIP/2.0/UDP {local};branch={};rport", self.branch),
            ),
            Some(vs) => vs.iter().for_each(|v| push_hdr(&mut s, "Via", v)),
        }
        if let Some(v) = &self.max_forwards {
            push_hdr(&mut s, "Max-Forwards", v);
        }
        for r in &self.routes {
            push_hdr(&mut s, "Route", r);
        }
        for (n, v) in [
            ("From", &self.from),
            ("To", &self.to),
            ("Call-ID", &self.call_id),
        ] {
            if let Some(v) = v {
                push_hdr(&mut s, n, v);
            }
        }
        if let Some(v) = &self.cseq {
            push_hdr(&mut s, "CSeq", v);
        }
        match &self.contact {
            ContactSpec::Auto if wants_contact(&self.method) => {
                push_hdr(&mut s, "Contact", &format!("<sip:{}@{local}>", self.user))
            }
            ContactSpec::Set(v) => push_hdr(&mut s, "Contact", v),
            _ => {}
        }
        for (n, v) in &self.extra {
            push_hdr(&mut s, n, v);
        }
        finish(s, &self.content_type, &self.content_length, &self.body)
    }

    fn dest(&self) -> Option<SocketAddr> {
        self.dest
    }
}

/// Builder for a response to a received request (RFC 3261 §8.2.6): copies all
/// Vias, From, To, Call-ID, CSeq; adds a To tag (random unless `.to_tag`) for
/// codes above 100 when the request had none; copies Record-Route for 101–299;
/// adds a Contact for 101–299 answers to INVITE/SUBSCRIBE/UPDATE/REFER/NOTIFY.
/// Its default destination is where the request came from.
#[derive(Clone, Debug)]
pub struct Response {
    code: u16,
    reason: String,
    vias: Vec<String>,
    from: Option<String>,
    req_to: Option<String>,
    to_tag: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
    record_routes: Vec<String>,
    contact: ContactSpec,
    wants_contact: bool,
    extra: Vec<(String, String)>,
    content_type: Option<String>,
    content_length: Option<Option<String>>,
    body: Vec<u8>,
    user: String,
    local: Option<SocketAddr>,
    dest: Option<SocketAddr>,
}

#[allow(clippy::wrong_self_convention)]
impl Response {
    pub fn to(req: &SipMsg, code: u16, reason: &str) -> Response {
        let req_to = req.header("To").map(str::to_string);
        let needs_tag = code > 100 && req_to.as_deref().and_then(tag).is_none();
        let method = req.method();
        let dest = req
            .remote
            .or_else(|| req.top_via().and_then(|v| via_addr(&v)));
        Response {
            code,
            reason: reason.to_string(),
            vias: req.headers("Via").into_iter().map(str::to_string).collect(),
            from: req.header("From").map(str::to_string),
            req_to,
            to_tag: needs_tag.then(new_tag),
            call_id: req.header("Call-ID").map(str::to_string),
            cseq: req.header("CSeq").map(str::to_string),
            record_routes: if (101..300).contains(&code) {
                req.headers("Record-Route")
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            } else {
                Vec::new()
            },
            contact: ContactSpec::Auto,
            wants_contact: (101..300).contains(&code)
                && matches!(
                    method,
                    "INVITE" | "SUBSCRIBE" | "UPDATE" | "REFER" | "NOTIFY"
                ),
            extra: Vec::new(),
            content_type: None,
            content_length: None,
            body: Vec::new(),
            user: "tester".into(),
            local: None,
            dest,
        }
    }

    /// Use this To tag (ignored when the request's To already has one).
    pub fn to_tag(mut self, t: &str) -> Self {
        self.to_tag = Some(t.to_string());
        self
    }

    /// Do not add a To tag.
    pub fn no_to_tag(mut self) -> Self {
        self.to_tag = None;
        self
    }

    /// The To value this response will carry.
    pub fn to_value(&self) -> Option<String> {
        let to = self.req_to.clone()?;
        Some(match &self.to_tag {
            Some(t) if tag(&to).is_none() => format!("{to};tag={t}"),
            _ => to,
        })
    }

    /// The To tag this response will carry.
    pub fn get_to_tag(&self) -> Option<String> {
        self.to_value().as_deref().and_then(tag)
    }

    pub fn contact(mut self, v: &str) -> Self {
        self.contact = ContactSpec::Set(v.to_string());
        self
    }

    pub fn no_contact(mut self) -> Self {
        self.contact = ContactSpec::Omit;
        self
    }

    pub fn contact_user(mut self, u: &str) -> Self {
        self.user = u.to_string();
        self
    }

    pub fn content_type(mut self, v: &str) -> Self {
        self.content_type = Some(v.to_string());
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }

    pub fn sdp(self, b: impl Into<Vec<u8>>) -> Self {
        self.content_type("application/sdp").body(b)
    }

    /// Set or override a header: From/To/Call-ID/CSeq/Contact/Content-* replace the
    /// copied value, Via/Record-Route are appended, anything else is appended.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let v = value.to_string();
        match canonical_name(name).as_str() {
            "via" => self.vias.push(v),
            "record-route" => self.record_routes.push(v),
            "from" => self.from = Some(v),
            "to" => {
                self.req_to = Some(v);
                self.to_tag = None;
            }
            "call-id" => self.call_id = Some(v),
            "cseq" => self.cseq = Some(v),
            "contact" => self.contact = ContactSpec::Set(v),
            "content-type" => self.content_type = Some(v),
            "content-length" => self.content_length = Some(Some(v)),
            _ => self.extra.push((name.to_string(), v)),
        }
        self
    }

    pub fn headers(mut self, hs: &[(&str, &str)]) -> Self {
        for (n, v) in hs {
            self = self.header(n, v);
        }
        self
    }

    pub fn raw_header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        match canonical_name(name).as_str() {
            "via" => self.vias.clear(),
            "record-route" => self.record_routes.clear(),
            "from" => self.from = None,
            "to" => self.req_to = None,
            "call-id" => self.call_id = None,
            "cseq" => self.cseq = None,
            "contact" => self.contact = ContactSpec::Omit,
            "content-type" => self.content_type = None,
            "content-length" => self.content_length = Some(None),
            _ => {}
        }
        self.extra.retain(|(n, _)| !name_eq(n, name));
        self
    }

    pub fn local(mut self, a: SocketAddr) -> Self {
        self.local = Some(a);
        self
    }

    pub fn dest(mut self, a: SocketAddr) -> Self {
        self.dest = Some(a);
        self
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.render(SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    pub fn to_msg(&self) -> SipMsg {
        SipMsg::parse(&self.to_bytes()).expect("built response parses")
    }
}

impl Outgoing for Response {
    fn render(&self, local: SocketAddr) -> Vec<u8> {
        let local = self.local.unwrap_or(local);
        let mut s = format!("SIP/2.0 {} {}\r\n", self.code, self.reason);
        for v in &self.vias {
            push_hdr(&mut s, "Via", v);
        }
        for r in &self.record_routes {
            push_hdr(&mut s, "Record-Route", r);
        }
        if let Some(v) = &self.from {
            push_hdr(&mut s, "From", v);
        }
        if let Some(v) = self.to_value() {
            push_hdr(&mut s, "To", &v);
        }
        if let Some(v) = &self.call_id {
            push_hdr(&mut s, "Call-ID", v);
        }
        if let Some(v) = &self.cseq {
            push_hdr(&mut s, "CSeq", v);
        }
        match &self.contact {
            ContactSpec::Auto if self.wants_contact => {
                push_hdr(&mut s, "Contact", &format!("<sip:{}@{local}>", self.user))
            }
            ContactSpec::Set(v) => push_hdr(&mut s, "Contact", v),
            _ => {}
        }
        for (n, v) in &self.extra {
            push_hdr(&mut s, n, v);
        }
        finish(s, &self.content_type, &self.content_length, &self.body)
    }

    fn dest(&self) -> Option<SocketAddr> {
        self.dest
    }
}

impl Request {
    /// ACK for a non-2xx final response (§17.1.1.3): same R-URI, Call-ID, From,
    /// top Via (same branch) and Route as the INVITE, To from the response,
    /// CSeq number of the INVITE. Sent to where the INVITE went.
    pub fn ack_non2xx(invite: &SipMsg, resp: &SipMsg) -> Request {
        let mut r = Request::new("ACK", invite.ruri())
            .from_raw(invite.from())
            .to_raw(resp.to())
            .call_id(invite.call_id())
            .cseq(invite.cseq().0)
            .no_contact();
        r.max_forwards = Some("70".into());
        if let Some(v) = invite.top_via() {
            r = r.via(&v);
        }
        for rt in invite.headers("Route") {
            r = r.route(rt);
        }
        r.dest = invite.remote;
        r
    }

    /// CANCEL for a sent INVITE (§9.1): same R-URI, Call-ID, From, To, top Via,
    /// Route, CSeq number. Sent to where the INVITE went.
    pub fn cancel(invite: &SipMsg) -> Request {
        let mut r = Request::new("CANCEL", invite.ruri())
            .from_raw(invite.from())
            .to_raw(invite.to())
            .call_id(invite.call_id())
            .cseq(invite.cseq().0)
            .no_contact();
        if let Some(v) = invite.top_via() {
            r = r.via(&v);
        }
        for rt in invite.headers("Route") {
            r = r.route(rt);
        }
        r.dest = invite.remote;
        r
    }
}

// ---------------------------------------------------------------------------
// Dialog (RFC 3261 §12)
// ---------------------------------------------------------------------------

/// Dialog state of one side, built from the INVITE and its 18x/2xx.
///
/// Caller: `Dialog::caller(&invite_sent, &resp_received)`; callee:
/// `Dialog::callee(&invite_received, &resp_sent)`. `request(method)` builds an
/// in-dialog request (CSeq incremented, R-URI = remote target, Route = route set,
/// loose or strict routing per §12.2.1.1) whose destination is the next hop.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    /// Our From value in requests we send (with our tag).
    pub local_party: String,
    /// Our To value in requests we send (with the remote tag).
    pub remote_party: String,
    pub local_tag: String,
    pub remote_tag: String,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// Contact we put in target-refresh requests.
    pub local_contact: Option<String>,
    pub remote_target: String,
    /// Route set, in the order used for requests we send.
    pub route_set: Vec<String>,
    /// CSeq number of the last INVITE we sent (for the ACK of its 2xx).
    pub invite_seq: Option<u32>,
}

fn is_target_refresh(method: &str) -> bool {
    matches!(
        method,
        "INVITE" | "UPDATE" | "SUBSCRIBE" | "NOTIFY" | "REFER"
    )
}

impl Dialog {
    /// UAC side (§12.1.2): route set = Record-Route of the response, reversed;
    /// remote target = its Contact.
    pub fn caller(invite: &SipMsg, resp: &SipMsg) -> Dialog {
        let mut rs = resp.values("Record-Route");
        rs.reverse();
        let seq = invite.cseq().0;
        Dialog {
            call_id: invite.call_id().to_string(),
            local_party: invite.from().to_string(),
            remote_party: resp.to().to_string(),
            local_tag: invite.from_tag().unwrap_or_default(),
            remote_tag: resp.to_tag().unwrap_or_default(),
            local_seq: seq,
            remote_seq: None,
            local_contact: invite.header("Contact").map(str::to_string),
            remote_target: resp
                .contact_uri()
                .unwrap_or_else(|| panic!("response has no Contact:\n{resp}")),
            route_set: rs,
            invite_seq: Some(seq),
        }
    }

    /// UAS side (§12.1.1): route set = Record-Route of the request, in order;
    /// remote target = its Contact. Our CSeq starts at 100.
    pub fn callee(invite: &SipMsg, resp: &SipMsg) -> Dialog {
        Dialog {
            call_id: invite.call_id().to_string(),
            local_party: resp.to().to_string(),
            remote_party: invite.from().to_string(),
            local_tag: resp.to_tag().unwrap_or_default(),
            remote_tag: invite.from_tag().unwrap_or_default(),
            local_seq: 100,
            remote_seq: Some(invite.cseq().0),
            local_contact: resp.header("Contact").map(str::to_string),
            remote_target: invite
                .contact_uri()
                .unwrap_or_else(|| panic!("request has no Contact:\n{invite}")),
            route_set: invite.values("Record-Route"),
            invite_seq: None,
        }
    }

    /// R-URI and Route headers per §12.2.1.1 (loose vs strict first route).
    fn target_and_routes(&self) -> (String, Vec<String>) {
        match self.route_set.first() {
            Some(first) if !is_loose(first) => {
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri_of(first).to_string(), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }

    /// Where requests of this dialog go: the first route, else the remote target.
    pub fn next_hop(&self) -> Option<SocketAddr> {
        let uri = match self.route_set.first() {
            Some(r) => uri_of(r).to_string(),
            None => self.remote_target.clone(),
        };
        Uri::parse(&uri)?.socket_addr()
    }

    fn base(&self, method: &str, seq: u32) -> Request {
        let (ruri, routes) = self.target_and_routes();
        let mut r = Request::new(method, &ruri)
            .from_raw(&self.local_party)
            .to_raw(&self.remote_party)
            .call_id(&self.call_id)
            .cseq(seq)
            .no_contact();
        for rt in routes {
            r = r.route(&rt);
        }
        if is_target_refresh(method)
            && let Some(c) = &self.local_contact
        {
            r = r.contact(c);
        }
        r.dest = self.next_hop();
        r
    }

    /// A new in-dialog request (not ACK): local CSeq incremented.
    pub fn request(&mut self, method: &str) -> Request {
        self.local_seq += 1;
        if method == "INVITE" {
            self.invite_seq = Some(self.local_seq);
        }
        self.base(method, self.local_seq)
    }

    pub fn reinvite(&mut self) -> Request {
        self.request("INVITE")
    }

    pub fn bye(&mut self) -> Request {
        self.request("BYE")
    }

    /// ACK for a 2xx (§13.2.2.4): CSeq number of the INVITE being answered.
    pub fn ack(&self, resp_2xx: &SipMsg) -> Request {
        self.base("ACK", resp_2xx.cseq().0)
    }

    /// Check that a received request belongs to this dialog (§12.2.2) and update
    /// the remote CSeq and, for target refreshes, the remote target. Panics with
    /// the message on mismatch.
    pub fn on_request(&mut self, req: &SipMsg) {
        assert_eq!(req.call_id(), self.call_id, "Call-ID mismatch in:\n{req}");
        assert_eq!(
            req.from_tag().unwrap_or_default(),
            self.remote_tag,
            "From tag is not the remote tag in:\n{req}"
        );
        assert_eq!(
            req.to_tag().unwrap_or_default(),
            self.local_tag,
            "To tag is not the local tag in:\n{req}"
        );
        let (n, m) = req.cseq();
        assert_eq!(m, req.method(), "CSeq method mismatch in:\n{req}");
        if m != "ACK" && m != "CANCEL" {
            if let Some(prev) = self.remote_seq {
                assert!(n > prev, "CSeq {n} not above previous {prev} in:\n{req}");
            }
            self.remote_seq = Some(n);
        }
        if is_target_refresh(req.method())
            && let Some(c) = req.contact_uri()
        {
            self.remote_target = c;
        }
    }

    /// Update the remote target from a 2xx to a target refresh we sent (§12.2.1.2).
    pub fn on_response(&mut self, resp: &SipMsg) {
        if (200..300).contains(&resp.code())
            && is_target_refresh(&resp.cseq().1)
            && let Some(c) = resp.contact_uri()
        {
            self.remote_target = c;
        }
    }
}
