//! Requests sent from the script: the per-process `$uac_req(key)` template
//! (admin guide section 5), `uac_req_send()` (4.8) and the outcome reported
//! to `event_route[uac:reply]` or the `event_callback` KEMI function (6.1).
//!
//! Differences from the C module 5.6.3, all on purpose:
//! - `$uac_req(all) = $null` resets every key, `auser`, `apasswd` and `sock`
//!   included (C keeps them, so credentials leak into the next request);
//!   `$uac_req(sock) = $null` clears the socket (C cleared `apasswd`).
//! - No fixed buffers: any value up to [`MAX_VALUE_LEN`] bytes (the largest
//!   SIP message Kamailio reads) is kept whole; longer ones, and values that
//!   would break the request (CR/LF in a URI, Call-ID or user, an empty line
//!   in `hdrs`, a method that is not a token) are refused with a log line.
//!   C refuses at 128/64/1024/2048/32768 bytes and truncates the headers of
//!   the authenticated resubmission at 2048.
//! - `hdrs` without a final CRLF gets one, instead of a malformed request.
//! - A challenge (401/407) answered with `auser`/`apasswd` is resubmitted with
//!   the same Call-ID and From tag and CSeq + 1 (RFC 3261 §22.2; C sent the
//!   same CSeq again), answering every realm challenged (RFC 8760 §2.4) with
//!   the digest code of `sip::digest` (MD5, SHA-256, SHA-512-256, -sess,
//!   qop auth/auth-int).
//! - The event route runs once, for the final outcome; C also ran it for the
//!   challenge it then answered.
//! - The state carried to the reply lives in shm and is freed exactly once
//!   by its own transaction (see `host::tm`), also when every attempt is
//!   challenged, on timeout, or when `event_route[tm:local-request]` drops
//!   the request (C: double free, kam#3522; leaks, kam#3065, 00aac8d483).
//! - A `sock` that is not a local socket (nor a socket name) makes
//!   `uac_req_send()` fail with a log line; C silently let the core choose.
//! - The keys of C 6.0 (`cseqno`) and 6.1 (`fr_timeout`, `fr_inv_timeout`,
//!   `ftag`, `ttag`) exist on every release we build for. `cseqno`, `ftag`
//!   and `ttag` shape the request everywhere, because we build tm's dialog
//!   ourselves (C 6.1 stores `ftag`/`ttag` but never sends them). `cseqno`
//!   must be below 2^31 (RFC 3261 §8.1.1.5), the tags must be tokens, and the
//!   new number keys refuse negative values. The timeouts are milliseconds,
//!   like tm's `fr_timer` (C hands the number to tm, which reads it as
//!   1/16 s ticks); before Kamailio 6.1 tm has no per-request timer, so
//!   they are only stored, with one warning per process when used.

use std::borrow::Cow;

use crate::sip::lex::is_token;
use crate::uac::shm_state::{Reader, Writer};

/// Longest value a key accepts: Kamailio's `BUF_SIZE`, the largest SIP
/// message it reads or writes.
pub const MAX_VALUE_LEN: usize = 65535;

/// `flags` bit: `apasswd` is HA1 (`H(user:realm:password)` in hex).
pub const FL_HA1: u32 = 1;

/// The keys of `$uac_req(key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    All,
    Method,
    Ruri,
    Furi,
    Turi,
    Ouri,
    Hdrs,
    Body,
    Callid,
    Sock,
    Auser,
    Apasswd,
    Evroute,
    Evparam,
    Evcode,
    Evtype,
    Flags,
    Cseqno,
    FrTimeout,
    FrInvTimeout,
    Ftag,
    Ttag,
}

impl Key {
    const NAMES: [(&'static str, Key); 22] = [
        ("all", Key::All),
        ("method", Key::Method),
        ("ruri", Key::Ruri),
        ("furi", Key::Furi),
        ("turi", Key::Turi),
        ("ouri", Key::Ouri),
        ("hdrs", Key::Hdrs),
        ("body", Key::Body),
        ("callid", Key::Callid),
        ("sock", Key::Sock),
        ("auser", Key::Auser),
        ("apasswd", Key::Apasswd),
        ("evroute", Key::Evroute),
        ("evparam", Key::Evparam),
        ("evcode", Key::Evcode),
        ("evtype", Key::Evtype),
        ("flags", Key::Flags),
        // Added by the C module 6.0 (cseqno) and 6.1; accepted on every release.
        ("cseqno", Key::Cseqno),
        ("fr_timeout", Key::FrTimeout),
        ("fr_inv_timeout", Key::FrInvTimeout),
        ("ftag", Key::Ftag),
        ("ttag", Key::Ttag),
    ];

    /// The key named `name` (exact, lowercase, as in C).
    pub fn parse(name: &[u8]) -> Option<Key> {
        Key::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|&(_, k)| k)
    }

    /// A small number stored in the PV spec at fixup time.
    pub fn index(self) -> i32 {
        Key::NAMES
            .iter()
            .position(|&(_, k)| k == self)
            .map(|p| p as i32)
            .unwrap_or(0) // ok: every variant is in NAMES
    }

    pub fn from_index(i: i64) -> Option<Key> {
        usize::try_from(i)
            .ok()
            .and_then(|i| Key::NAMES.get(i))
            .map(|&(_, k)| k)
    }

    pub fn name(self) -> &'static str {
        Key::NAMES[self.index() as usize].0
    }

    fn is_int(self) -> bool {
        matches!(
            self,
            Key::Evroute
                | Key::Evcode
                | Key::Evtype
                | Key::Flags
                | Key::Cseqno
                | Key::FrTimeout
                | Key::FrInvTimeout
        )
    }

    /// Keys of C 5.6 store any script integer as `unsigned int` (so -1
    /// reads back as 4294967295); the keys added since are range-checked.
    fn wraps_like_c(self) -> bool {
        matches!(self, Key::Evroute | Key::Evcode | Key::Evtype | Key::Flags)
    }
}

/// A value assigned from the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    Null,
    Int(i64),
    Str(&'a [u8]),
}

/// A value read by the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    Null,
    Uint(u32),
    Str(&'a [u8]),
}

/// Why an assignment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// A string for a number key that is not a number, or the reverse.
    Type(Key),
    TooLong {
        key: Key,
        len: usize,
    },
    /// A byte that would break the request (CR, LF, NUL, empty header line,
    /// non-token method).
    Invalid {
        key: Key,
        why: &'static str,
    },
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::Type(k) => write!(f, "$uac_req({}): Invalid value type", k.name()),
            SetError::TooLong { key, len } => write!(
                f,
                "$uac_req({}): Value size too big ({len} bytes, at most {MAX_VALUE_LEN})",
                key.name()
            ),
            SetError::Invalid { key, why } => {
                write!(f, "$uac_req({}): invalid value: {why}", key.name())
            }
        }
    }
}

/// The request template of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub method: Vec<u8>,
    pub ruri: Vec<u8>,
    pub furi: Vec<u8>,
    pub turi: Vec<u8>,
    pub ouri: Vec<u8>,
    pub hdrs: Vec<u8>,
    pub body: Vec<u8>,
    pub callid: Vec<u8>,
    pub sock: Vec<u8>,
    pub auser: Vec<u8>,
    pub apasswd: Vec<u8>,
    pub evparam: Vec<u8>,
    pub evroute: u32,
    pub evcode: u32,
    pub evtype: u32,
    pub flags: u32,
    /// CSeq number of the request; 0: tm's default (10).
    pub cseqno: u32,
    /// Final-response timeouts in milliseconds; 0: tm's `fr_timer` /
    /// `fr_inv_timer`.
    pub fr_timeout: u32,
    pub fr_inv_timeout: u32,
    /// From tag; empty: generated.
    pub ftag: Vec<u8>,
    /// To tag; empty: none.
    pub ttag: Vec<u8>,
}

/// The largest CSeq number a request may carry: RFC 3261 §8.1.1.5 wants it
/// below 2**31.
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

fn has_line_break(v: &[u8]) -> bool {
    v.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0)
}

impl Template {
    fn str_field(&mut self, key: Key) -> Option<&mut Vec<u8>> {
        Some(match key {
            Key::Method => &mut self.method,
            Key::Ruri => &mut self.ruri,
            Key::Furi => &mut self.furi,
            Key::Turi => &mut self.turi,
            Key::Ouri => &mut self.ouri,
            Key::Hdrs => &mut self.hdrs,
            Key::Body => &mut self.body,
            Key::Callid => &mut self.callid,
            Key::Sock => &mut self.sock,
            Key::Auser => &mut self.auser,
            Key::Apasswd => &mut self.apasswd,
            Key::Evparam => &mut self.evparam,
            Key::Ftag => &mut self.ftag,
            Key::Ttag => &mut self.ttag,
            _ => return None,
        })
    }

    fn int_field(&mut self, key: Key) -> Option<&mut u32> {
        Some(match key {
            Key::Evroute => &mut self.evroute,
            Key::Evcode => &mut self.evcode,
            Key::Evtype => &mut self.evtype,
            Key::Flags => &mut self.flags,
            Key::Cseqno => &mut self.cseqno,
            Key::FrTimeout => &mut self.fr_timeout,
            Key::FrInvTimeout => &mut self.fr_inv_timeout,
            _ => return None,
        })
    }

    /// `$uac_req(key)`. `all` reads as `flags`, as in C.
    pub fn get(&self, key: Key) -> Output<'_> {
        fn s(v: &[u8]) -> Output<'_> {
            if v.is_empty() {
                Output::Null
            } else {
                Output::Str(v)
            }
        }
        match key {
            Key::All | Key::Flags => Output::Uint(self.flags),
            Key::Method => s(&self.method),
            Key::Ruri => s(&self.ruri),
            Key::Furi => s(&self.furi),
            Key::Turi => s(&self.turi),
            Key::Ouri => s(&self.ouri),
            Key::Hdrs => s(&self.hdrs),
            Key::Body => s(&self.body),
            Key::Callid => s(&self.callid),
            Key::Sock => s(&self.sock),
            Key::Auser => s(&self.auser),
            Key::Apasswd => s(&self.apasswd),
            Key::Evparam => s(&self.evparam),
            Key::Evroute => Output::Uint(self.evroute),
            Key::Evcode => Output::Uint(self.evcode),
            Key::Evtype => Output::Uint(self.evtype),
            Key::Cseqno => Output::Uint(self.cseqno),
            Key::FrTimeout => Output::Uint(self.fr_timeout),
            Key::FrInvTimeout => Output::Uint(self.fr_inv_timeout),
            Key::Ftag => s(&self.ftag),
            Key::Ttag => s(&self.ttag),
        }
    }

    /// `$uac_req(key) = value`. `$null` clears the key (`all`: every key);
    /// any other value for `all` is ignored, as in C. On error the template
    /// is unchanged.
    pub fn set(&mut self, key: Key, value: Input<'_>) -> Result<(), SetError> {
        if key == Key::All {
            if value == Input::Null {
                self.clear();
            }
            return Ok(());
        }
        if key.is_int() {
            let v = match value {
                Input::Null => 0,
                // C stores the int as unsigned.
                Input::Int(i) if key.wraps_like_c() => i as u32,
                Input::Int(i) => u32::try_from(i).map_err(|_| SetError::Invalid {
                    key,
                    why: "a negative number",
                })?,
                Input::Str(s) => std::str::from_utf8(s)
                    .ok()
                    .and_then(|t| t.trim().parse::<u32>().ok())
                    .ok_or(SetError::Type(key))?,
            };
            if key == Key::Cseqno && v > MAX_CSEQ {
                return Err(SetError::Invalid {
                    key,
                    why: "a CSeq number is below 2^31 (RFC 3261 §8.1.1.5)",
                });
            }
            if let Some(f) = self.int_field(key) {
                *f = v;
            }
            return Ok(());
        }
        let int_text;
        let bytes: &[u8] = match value {
            Input::Null => b"",
            Input::Int(i) => {
                int_text = i.to_string();
                int_text.as_bytes()
            }
            Input::Str(s) => s,
        };
        if bytes.len() > MAX_VALUE_LEN {
            return Err(SetError::TooLong {
                key,
                len: bytes.len(),
            });
        }
        if !bytes.is_empty() {
            validate(key, bytes)?;
        }
        if let Some(f) = self.str_field(key) {
            // in place: the buffer of the previous request is reused
            f.clear();
            f.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Every field empty / 0 (`$uac_req(all) = $null`), keeping the
    /// buffers for the next request.
    fn clear(&mut self) {
        for k in Key::NAMES.iter().map(|(_, k)| *k) {
            if let Some(f) = self.str_field(k) {
                f.clear();
            }
            if let Some(f) = self.int_field(k) {
                *f = 0;
            }
        }
    }
}

fn validate(key: Key, v: &[u8]) -> Result<(), SetError> {
    let bad = |why| Err(SetError::Invalid { key, why });
    match key {
        Key::Method if !is_token(v) => bad("a method is a token (RFC 3261 §25.1)"),
        Key::Ftag | Key::Ttag if !is_token(v) => bad("a tag is a token (RFC 3261 §25.1 tag-param)"),
        Key::Ruri | Key::Furi | Key::Turi | Key::Ouri | Key::Callid | Key::Sock | Key::Auser
            if has_line_break(v) =>
        {
            bad("CR, LF or NUL")
        }
        Key::Apasswd if v.contains(&0) => bad("NUL"),
        Key::Hdrs => {
            if v.contains(&0) {
                bad("NUL")
            } else if v.starts_with(b"\r\n") || v.starts_with(b"\n") || contains_empty_line(v) {
                bad("an empty line would end the header section")
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn contains_empty_line(v: &[u8]) -> bool {
    v.windows(4).any(|w| w == b"\r\n\r\n") || v.windows(2).any(|w| w == b"\n\n")
}

/// The extra headers as sent: `hdrs` with a final CRLF, then `extra` lines
/// (each already CRLF-terminated). Borrowed when nothing is added.
pub fn headers_block<'a>(hdrs: &'a [u8], extra: &[Vec<u8>]) -> Cow<'a, [u8]> {
    let terminated = hdrs.is_empty() || hdrs.ends_with(b"\r\n");
    if terminated && extra.is_empty() {
        return Cow::Borrowed(hdrs);
    }
    let mut out = hdrs.to_vec();
    if !terminated {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    for e in extra {
        out.extend_from_slice(e);
    }
    Cow::Owned(out)
}

/// A [`Template`] borrowed: from the process's `$uac_req` when sending, or
/// from the shm callback state when the outcome arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateRef<'a> {
    pub method: &'a [u8],
    pub ruri: &'a [u8],
    pub furi: &'a [u8],
    pub turi: &'a [u8],
    pub ouri: &'a [u8],
    pub hdrs: &'a [u8],
    pub body: &'a [u8],
    pub callid: &'a [u8],
    pub sock: &'a [u8],
    pub auser: &'a [u8],
    pub apasswd: &'a [u8],
    pub evparam: &'a [u8],
    pub evroute: u32,
    pub evcode: u32,
    pub evtype: u32,
    pub flags: u32,
    pub cseqno: u32,
    pub fr_timeout: u32,
    pub fr_inv_timeout: u32,
    pub ftag: &'a [u8],
    pub ttag: &'a [u8],
}

impl Template {
    pub fn as_ref(&self) -> TemplateRef<'_> {
        TemplateRef {
            method: &self.method,
            ruri: &self.ruri,
            furi: &self.furi,
            turi: &self.turi,
            ouri: &self.ouri,
            hdrs: &self.hdrs,
            body: &self.body,
            callid: &self.callid,
            sock: &self.sock,
            auser: &self.auser,
            apasswd: &self.apasswd,
            evparam: &self.evparam,
            evroute: self.evroute,
            evcode: self.evcode,
            evtype: self.evtype,
            flags: self.flags,
            cseqno: self.cseqno,
            fr_timeout: self.fr_timeout,
            fr_inv_timeout: self.fr_inv_timeout,
            ftag: &self.ftag,
            ttag: &self.ttag,
        }
    }
}

impl TemplateRef<'_> {
    /// Copies the values into `t`, reusing its buffers.
    pub fn copy_into(&self, t: &mut Template) {
        for (dst, src) in [
            (&mut t.method, self.method),
            (&mut t.ruri, self.ruri),
            (&mut t.furi, self.furi),
            (&mut t.turi, self.turi),
            (&mut t.ouri, self.ouri),
            (&mut t.hdrs, self.hdrs),
            (&mut t.body, self.body),
            (&mut t.callid, self.callid),
            (&mut t.sock, self.sock),
            (&mut t.auser, self.auser),
            (&mut t.apasswd, self.apasswd),
            (&mut t.evparam, self.evparam),
            (&mut t.ftag, self.ftag),
            (&mut t.ttag, self.ttag),
        ] {
            dst.clear();
            dst.extend_from_slice(src);
        }
        t.evroute = self.evroute;
        t.evcode = self.evcode;
        t.evtype = self.evtype;
        t.flags = self.flags;
        t.cseqno = self.cseqno;
        t.fr_timeout = self.fr_timeout;
        t.fr_inv_timeout = self.fr_inv_timeout;
    }
}

/// What the callback needs of a sent request: the template as it was, the
/// identifiers tm used, and whether a challenge was already answered. A
/// view over bytes that live elsewhere (the template, or the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent<'a> {
    pub req: TemplateRef<'a>,
    pub call_id: &'a [u8],
    pub from_tag: &'a [u8],
    pub cseq: u32,
    pub auth_done: bool,
}

impl<'a> Sent<'a> {
    fn fields(&self) -> [&'a [u8]; 16] {
        let t = &self.req;
        [
            t.method,
            t.ruri,
            t.furi,
            t.turi,
            t.ouri,
            t.hdrs,
            t.body,
            t.callid,
            t.sock,
            t.auser,
            t.apasswd,
            t.evparam,
            t.ftag,
            t.ttag,
            self.call_id,
            self.from_tag,
        ]
    }

    /// The bytes of the shm block ([`crate::uac::shm_state`]), in one allocation.
    pub fn encode(&self) -> Vec<u8> {
        let fields = self.fields();
        let ints = self.ints();
        let len = fields
            .iter()
            .map(|f| Writer::bytes_len(f.len()))
            .sum::<usize>()
            + ints.len() * Writer::U32_LEN;
        let mut w = Writer::with_capacity(len);
        for f in fields {
            w.bytes(f);
        }
        for n in ints {
            w.u32(n);
        }
        w.finish()
    }

    fn ints(&self) -> [u32; 9] {
        let t = &self.req;
        [
            t.evroute,
            t.evcode,
            t.evtype,
            t.flags,
            t.cseqno,
            t.fr_timeout,
            t.fr_inv_timeout,
            self.cseq,
            self.auth_done as u32,
        ]
    }

    /// The inverse of [`Sent::encode`], borrowing from `b`; `None` on
    /// malformed bytes.
    pub fn decode(b: &'a [u8]) -> Option<Sent<'a>> {
        let mut r = Reader::new(b);
        let mut t = TemplateRef {
            method: r.bytes()?,
            ruri: r.bytes()?,
            furi: r.bytes()?,
            turi: r.bytes()?,
            ouri: r.bytes()?,
            hdrs: r.bytes()?,
            body: r.bytes()?,
            callid: r.bytes()?,
            sock: r.bytes()?,
            auser: r.bytes()?,
            apasswd: r.bytes()?,
            evparam: r.bytes()?,
            ftag: r.bytes()?,
            ttag: r.bytes()?,
            ..TemplateRef::default()
        };
        let call_id = r.bytes()?;
        let from_tag = r.bytes()?;
        t.evroute = r.u32()?;
        t.evcode = r.u32()?;
        t.evtype = r.u32()?;
        t.flags = r.u32()?;
        t.cseqno = r.u32()?;
        t.fr_timeout = r.u32()?;
        t.fr_inv_timeout = r.u32()?;
        let cseq = r.u32()?;
        let auth_done = r.u32()? != 0;
        r.end()?;
        Some(Sent {
            req: t,
            call_id,
            from_tag,
            cseq,
            auth_done,
        })
    }
}

#[cfg(feature = "kamailio")]
pub use runtime::*;

/// The parts that talk to Kamailio (through `host`).
#[cfg(feature = "kamailio")]
mod runtime {
    use std::cell::RefCell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::host::hdr_add;
    use crate::host::log::Bytes;
    use crate::host::msg::SipMsg;
    use crate::host::route::{self, EventHandler};
    use crate::host::socket::Socket;
    use crate::host::tm::{self, Callback, CallbackOn, FrTimeouts, OutRequest, TmEvent};
    use crate::sip::auth_header::{HeaderKind, select_challenges_for};
    use crate::sip::digest::{Credentials, Nc, Secret, authorize, generate_cnonce};
    use crate::uac::config::Config;
    use crate::uac::rng::with_rng;

    thread_local! {
        /// This process's `$uac_req`.
        static TEMPLATE: RefCell<Template> = RefCell::new(Template::default());
    }

    /// Settings fixed in mod_init.
    struct Settings {
        default_socket: Option<Socket>,
        event_callback: Option<Vec<u8>>,
    }

    static SETTINGS: OnceLock<Settings> = OnceLock::new();

    /// mod_init: resolves `default_socket` (refusing to start when it is
    /// malformed or not one of ours, as C does). The error is logged.
    pub fn init(cfg: &Config) -> Result<(), SendError> {
        let default_socket = match &cfg.default_socket {
            Some(text) => match Socket::lookup(text) {
                Ok(s) => {
                    kinfo!("default uac socket set to <{}>", Bytes(text));
                    Some(s)
                }
                Err(e) => {
                    kerr!(
                        "invalid modparam \"default_socket\": {e} <{}> (expected \
                         [proto:]address:port of a listen socket)",
                        Bytes(text)
                    );
                    return Err(SendError::Logged);
                }
            },
            None => None,
        };
        let _ = SETTINGS.set(Settings {
            default_socket,
            event_callback: cfg.event_callback.clone(),
        });
        Ok(())
    }

    /// Runs `f` on this process's template.
    pub fn with_template<T>(f: impl FnOnce(&mut Template) -> T) -> T {
        TEMPLATE.with(|t| f(&mut t.borrow_mut()))
    }

    /// Why `uac_req_send()` or the feature's setup failed. Each failure is logged
    /// where it happens, with the C module's message; `ffi::send` maps it to -1.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SendError {
        /// Failed; the reason is in the log.
        Logged,
    }

    impl std::fmt::Display for SendError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("uac_req_send failed (reason logged)")
        }
    }

    impl std::error::Error for SendError {}

    impl From<()> for SendError {
        fn from(_: ()) -> SendError {
            SendError::Logged
        }
    }

    /// `uac_req_send()`: sends the request described by `$uac_req`.
    pub fn req_send() -> Result<(), SendError> {
        // One allocation holds what is sent and what the callback needs;
        // the request is then sent from a view over it, with `$uac_req`
        // released (event_route[tm:local-request] may use it).
        let state = with_template(|t| -> Result<Vec<u8>, SendError> {
            if t.ruri.is_empty() || t.method.is_empty() {
                kerr!("uac_req_send: $uac_req(method) and $uac_req(ruri) must be set");
                return Err(SendError::Logged);
            }
            let generated;
            let call_id: &[u8] = if t.callid.is_empty() {
                generated = tm::generate_call_id().map_err(|e| kerr!("uac_req_send: {e}"))?;
                &generated
            } else {
                &t.callid
            };
            let generated_tag;
            let from_tag: &[u8] = if t.ftag.is_empty() {
                generated_tag = tm::generate_from_tag(call_id, &t.ruri)
                    .map_err(|e| kerr!("uac_req_send: {e}"))?;
                &generated_tag
            } else {
                &t.ftag
            };
            if t.fr_timeout != 0 || t.fr_inv_timeout != 0 {
                warn_once_without_fr_timeouts();
            }
            Ok(Sent {
                req: t.as_ref(),
                call_id,
                from_tag,
                cseq: if t.cseqno == 0 {
                    tm::DEFAULT_CSEQ
                } else {
                    t.cseqno
                },
                auth_done: false,
            }
            .encode())
        })?;
        let Some(sent) = Sent::decode(&state) else {
            kerr!("uac_req_send: cannot encode the request state");
            return Err(SendError::Logged);
        };
        send(&sent, &state, &[]).map_err(|_| SendError::Logged)
    }

    /// Before Kamailio 6.1 tm has no per-request final-response timer for
    /// local requests: the keys are kept (scripts written for 6.1 still
    /// work), and the operator is told once per process that tm's timers
    /// apply.
    fn warn_once_without_fr_timeouts() {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !tm::PER_REQUEST_FR_TIMEOUTS && !WARNED.swap(true, Ordering::Relaxed) {
            kwarn!(
                "uac_req_send: $uac_req(fr_timeout) and $uac_req(fr_inv_timeout) need \
                 Kamailio 6.1; tm's fr_timer applies (fr_inv_timer for INVITE). \
                 Logged once per process."
            );
        }
    }

    fn socket_of(t: &TemplateRef<'_>) -> Result<Option<Socket>, ()> {
        if !t.sock.is_empty() {
            return match Socket::lookup_or_name(t.sock) {
                Ok(s) => Ok(Some(s)),
                Err(e) => {
                    kerr!("uac_req_send: $uac_req(sock): {e} <{}>", Bytes(t.sock));
                    Err(())
                }
            };
        }
        Ok(SETTINGS.get().and_then(|s| s.default_socket))
    }

    fn wants_auth(t: &TemplateRef<'_>) -> bool {
        !t.auser.is_empty() && !t.apasswd.is_empty()
    }

    /// Sends `sent` (with `auth` header lines added) and attaches the
    /// callback when the outcome matters; `state` is `sent` encoded.
    fn send(sent: &Sent<'_>, state: &[u8], auth: &[Vec<u8>]) -> Result<(), ()> {
        let t = &sent.req;
        let socket = socket_of(t)?;
        let headers = headers_block(t.hdrs, auth);
        let req = OutRequest {
            method: t.method,
            ruri: t.ruri,
            from: if t.furi.is_empty() { t.ruri } else { t.furi },
            to: if t.turi.is_empty() { t.ruri } else { t.turi },
            to_tag: t.ttag,
            headers: &headers,
            body: t.body,
            call_id: sent.call_id,
            from_tag: sent.from_tag,
            cseq: sent.cseq,
            next_hop: (!t.ouri.is_empty()).then_some(t.ouri),
            socket,
            fr_timeouts: FrTimeouts {
                fr_ms: t.fr_timeout,
                fr_inv_ms: t.fr_inv_timeout,
            },
        };
        // The callback is needed for the event route, or to answer a
        // challenge that has not been answered yet.
        let need_cb = t.evroute != 0 || (wants_auth(t) && !sent.auth_done);
        let cb = need_cb.then_some(Callback {
            on: if t.evroute == 2 {
                CallbackOn::Failure
            } else {
                CallbackOn::Completed
            },
            handler: on_outcome,
            state,
        });
        tm::send_request(&req, cb)
            .map_err(|e| kerr!("uac_req_send: {} {}: {e}", Bytes(t.method), Bytes(t.ruri)))
    }

    /// The tm callback: answers a challenge once, else reports the outcome.
    fn on_outcome(ev: &mut TmEvent<'_>, state: &[u8]) {
        let Some(sent) = Sent::decode(state) else {
            kerr!("uac_req_send: corrupt callback state");
            return;
        };
        kdbg!("uac_req_send: tm callback with status {}", ev.code);
        let t = &sent.req;
        if (ev.code == 401 || ev.code == 407)
            && wants_auth(t)
            && !sent.auth_done
            && t.evroute != 2
            && let Some(reply) = ev.reply.as_deref_mut()
        {
            match resubmit_with_auth(&sent, ev.code as u16, reply) {
                Ok(()) => return, // the resubmission reports the outcome
                Err(()) => kerr!(
                    "uac_req_send: cannot answer the {} challenge of {} {}",
                    ev.code,
                    Bytes(t.method),
                    Bytes(t.ruri)
                ),
            }
        }
        if t.evroute != 0 && ev.code > 0 {
            run_reply_event(&sent, ev);
        }
    }

    fn resubmit_with_auth(sent: &Sent<'_>, code: u16, reply: &mut SipMsg) -> Result<(), ()> {
        let t = &sent.req;
        let kind = HeaderKind::for_reply_code(code).ok_or(())?;
        // An unparsable reply has no usable challenge.
        let refs = hdr_add::header_values(reply, kind.challenge()).unwrap_or_default();
        let creds = Credentials {
            username: t.auser.into(),
            realm: b"".into(), // $uac_req credentials answer any realm, as in C
            secret: if t.flags & FL_HA1 != 0 {
                Secret::Ha1 {
                    family: None,
                    hex: t.apasswd.into(),
                }
            } else {
                Secret::Password(t.apasswd.into())
            },
        };
        // Per realm, the strongest challenge these credentials can compute.
        let challenges = select_challenges_for(&refs, |a| creds.secret.preference(a));
        if challenges.is_empty() {
            kerr!(
                "uac_req_send: no usable {} in the {code} reply",
                kind.challenge_name()
            );
            return Err(());
        }
        let mut lines = Vec::with_capacity(challenges.len());
        for ch in &challenges {
            let cnonce = with_rng(generate_cnonce);
            match authorize(ch, &creds, t.method, t.ruri, t.body, &cnonce, Nc::FIRST) {
                Ok(a) => lines.push(a.to_header_line(kind)),
                Err(e) => {
                    kerr!(
                        "uac_req_send: cannot answer realm \"{}\": {e}",
                        Bytes(&ch.realm)
                    );
                    return Err(());
                }
            }
        }
        let next = Sent {
            cseq: sent.cseq.wrapping_add(1).max(1),
            auth_done: true,
            ..*sent
        };
        send(&next, &next.encode(), &lines)
    }

    /// Runs `event_route[uac:reply]` (or the KEMI `event_callback`) with
    /// this process's `$uac_req` set to the request that was sent, plus
    /// `evcode` and `evtype` (1: a reply came, 2: local outcome/timeout).
    fn run_reply_event(sent: &Sent<'_>, ev: &mut TmEvent<'_>) {
        let handler = match SETTINGS.get().and_then(|s| s.event_callback.clone()) {
            Some(name) => {
                if !route::kemi_engine_loaded() {
                    kdbg!("event callback ({}) set, but no cfg engine", Bytes(&name));
                    return;
                }
                EventHandler::Kemi(name)
            }
            None => match route::find_event_route(c"uac:reply") {
                Some(rt) => EventHandler::Route(rt),
                None => {
                    kdbg!("event_route[uac:reply] does not exist");
                    return;
                }
            },
        };
        let evtype = if ev.reply.is_some() { 1 } else { 2 };
        with_template(|cur| {
            sent.req.copy_into(cur);
            cur.evcode = ev.code as u32;
            cur.evtype = evtype;
        });
        route::run_event(
            &handler,
            c"uac:reply",
            ev.reply.as_deref_mut(),
            route::REQUEST_ROUTE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_roundtrip() {
        for (n, k) in Key::NAMES {
            assert_eq!(Key::parse(n.as_bytes()), Some(k));
            assert_eq!(Key::from_index(k.index().into()), Some(k));
            assert_eq!(k.name(), n);
        }
        assert_eq!(Key::parse(b"RURI"), None);
        assert_eq!(Key::parse(b"cseq"), None);
        assert_eq!(Key::from_index(99), None);
        assert_eq!(Key::from_index(-1), None);
    }

    #[test]
    fn all_null_clears_credentials_and_socket() {
        let mut t = Template::default();
        for (k, v) in [
            (Key::Method, &b"OPTIONS"[..]),
            (Key::Ruri, b"sip:a@b"),
            (Key::Auser, b"alice"),
            (Key::Apasswd, b"secret"),
            (Key::Sock, b"udp:127.0.0.1:5060"),
            (Key::Evparam, b"x"),
        ] {
            t.set(k, Input::Str(v)).unwrap();
        }
        t.set(Key::Evroute, Input::Int(1)).unwrap();
        t.set(Key::Flags, Input::Int(1)).unwrap();
        t.set(Key::All, Input::Str(b"ignored")).unwrap();
        assert_eq!(t.get(Key::Auser), Output::Str(b"alice"));
        t.set(Key::All, Input::Null).unwrap();
        assert_eq!(t, Template::default());
    }

    #[test]
    fn keys_of_6_0_and_6_1_parse() {
        for (name, key) in [
            (&b"cseqno"[..], Key::Cseqno),
            (b"fr_timeout", Key::FrTimeout),
            (b"fr_inv_timeout", Key::FrInvTimeout),
            (b"ftag", Key::Ftag),
            (b"ttag", Key::Ttag),
        ] {
            assert_eq!(Key::parse(name), Some(key));
        }
        assert_eq!(Key::parse(b"fr_timer"), None);
        assert_eq!(Key::parse(b"fromtag"), None);
    }

    #[test]
    fn new_number_keys_read_back_as_ints_and_refuse_bad_values() {
        let mut t = Template::default();
        for key in [Key::Cseqno, Key::FrTimeout, Key::FrInvTimeout] {
            assert_eq!(t.get(key), Output::Uint(0));
            t.set(key, Input::Int(1500)).unwrap();
            assert_eq!(t.get(key), Output::Uint(1500));
            t.set(key, Input::Str(b" 42 ")).unwrap();
            assert_eq!(t.get(key), Output::Uint(42));
            assert_eq!(t.set(key, Input::Str(b"soon")), Err(SetError::Type(key)));
            assert!(matches!(
                t.set(key, Input::Int(-1)),
                Err(SetError::Invalid { .. })
            ));
            assert_eq!(t.get(key), Output::Uint(42), "unchanged after a refusal");
            t.set(key, Input::Null).unwrap();
            assert_eq!(t.get(key), Output::Uint(0));
        }
        // RFC 3261 §8.1.1.5: below 2**31.
        t.set(Key::Cseqno, Input::Int(i64::from(MAX_CSEQ))).unwrap();
        assert!(matches!(
            t.set(Key::Cseqno, Input::Int(i64::from(MAX_CSEQ) + 1)),
            Err(SetError::Invalid {
                key: Key::Cseqno,
                ..
            })
        ));
        assert_eq!(t.get(Key::Cseqno), Output::Uint(MAX_CSEQ));
        // Timeouts take any u32 (milliseconds).
        t.set(Key::FrTimeout, Input::Int(i64::from(u32::MAX)))
            .unwrap();
        assert!(
            t.set(Key::FrTimeout, Input::Int(i64::from(u32::MAX) + 1))
                .is_err()
        );
        // The keys of C 5.6 still wrap like C.
        t.set(Key::Evcode, Input::Int(-1)).unwrap();
        assert_eq!(t.get(Key::Evcode), Output::Uint(u32::MAX));
    }

    #[test]
    fn tags_are_tokens_and_read_back_as_strings_or_null() {
        let mut t = Template::default();
        for key in [Key::Ftag, Key::Ttag] {
            assert_eq!(t.get(key), Output::Null);
            t.set(key, Input::Str(b"a1b2-C3.d!%*_+`'~")).unwrap();
            assert_eq!(t.get(key), Output::Str(b"a1b2-C3.d!%*_+`'~"));
            for bad in [&b"a b"[..], b"a;b", b"a=b", b"a\r\nX: 1", b"\"q\"", b"a\0"] {
                assert!(
                    matches!(t.set(key, Input::Str(bad)), Err(SetError::Invalid { .. })),
                    "{key:?} {bad:?}"
                );
            }
            assert_eq!(t.get(key), Output::Str(b"a1b2-C3.d!%*_+`'~"));
            t.set(key, Input::Int(77)).unwrap();
            assert_eq!(t.get(key), Output::Str(b"77"));
            t.set(key, Input::Str(b"")).unwrap();
            assert_eq!(t.get(key), Output::Null);
            t.set(key, Input::Str(b"x")).unwrap();
            t.set(key, Input::Null).unwrap();
            assert_eq!(t.get(key), Output::Null);
        }
    }

    #[test]
    fn all_null_resets_the_keys_of_6_0_and_6_1() {
        let mut t = Template::default();
        t.set(Key::Cseqno, Input::Int(7)).unwrap();
        t.set(Key::FrTimeout, Input::Int(1500)).unwrap();
        t.set(Key::FrInvTimeout, Input::Int(3000)).unwrap();
        t.set(Key::Ftag, Input::Str(b"ft")).unwrap();
        t.set(Key::Ttag, Input::Str(b"tt")).unwrap();
        t.set(Key::All, Input::Null).unwrap();
        assert_eq!(t, Template::default());
        for key in [Key::Cseqno, Key::FrTimeout, Key::FrInvTimeout] {
            assert_eq!(t.get(key), Output::Uint(0));
        }
        assert_eq!(t.get(Key::Ftag), Output::Null);
        assert_eq!(t.get(Key::Ttag), Output::Null);
    }

    #[test]
    fn null_clears_one_key_only() {
        let mut t = Template::default();
        t.set(Key::Sock, Input::Str(b"udp:1.2.3.4:5060")).unwrap();
        t.set(Key::Apasswd, Input::Str(b"pw")).unwrap();
        t.set(Key::Sock, Input::Null).unwrap();
        assert_eq!(t.get(Key::Sock), Output::Null);
        assert_eq!(t.get(Key::Apasswd), Output::Str(b"pw"));
    }

    #[test]
    fn ints_and_strings() {
        let mut t = Template::default();
        t.set(Key::Evroute, Input::Str(b" 2 ")).unwrap();
        assert_eq!(t.get(Key::Evroute), Output::Uint(2));
        assert_eq!(
            t.set(Key::Evroute, Input::Str(b"x")),
            Err(SetError::Type(Key::Evroute))
        );
        t.set(Key::Body, Input::Int(42)).unwrap();
        assert_eq!(t.get(Key::Body), Output::Str(b"42"));
        assert_eq!(t.get(Key::All), Output::Uint(0));
        t.set(Key::Flags, Input::Int(1)).unwrap();
        assert_eq!(t.get(Key::All), Output::Uint(1));
    }

    #[test]
    fn lengths() {
        let mut t = Template::default();
        let long = vec![b'a'; 5000];
        t.set(Key::Callid, Input::Str(&long)).unwrap();
        t.set(Key::Auser, Input::Str(&long)).unwrap();
        let too_long = vec![b'a'; MAX_VALUE_LEN + 1];
        assert!(matches!(
            t.set(Key::Body, Input::Str(&too_long)),
            Err(SetError::TooLong { key: Key::Body, .. })
        ));
        assert_eq!(t.get(Key::Body), Output::Null);
    }

    #[test]
    fn injection_refused() {
        let mut t = Template::default();
        assert!(t.set(Key::Ruri, Input::Str(b"sip:a@b\r\nX: y")).is_err());
        assert!(t.set(Key::Method, Input::Str(b"OPT IONS")).is_err());
        assert!(t.set(Key::Callid, Input::Str(b"a\nb")).is_err());
        assert!(t.set(Key::Hdrs, Input::Str(b"X-A: 1\r\n\r\nbody")).is_err());
        assert!(t.set(Key::Hdrs, Input::Str(b"\r\nX: 1")).is_err());
        t.set(Key::Hdrs, Input::Str(b"X-A: 1\r\nX-B: 2\r\n"))
            .unwrap();
        t.set(Key::Body, Input::Str(b"a\r\n\r\nb\0c")).unwrap();
    }

    #[test]
    fn headers_block_adds_crlf() {
        assert_eq!(&*headers_block(b"", &[]), b"");
        assert_eq!(&*headers_block(b"X: 1", &[]), b"X: 1\r\n");
        assert_eq!(&*headers_block(b"X: 1\r", &[]), b"X: 1\r\n");
        assert!(matches!(headers_block(b"X: 1\r\n", &[]), Cow::Borrowed(_)));
        assert_eq!(
            &*headers_block(b"X: 1\r\n", &[b"Authorization: D\r\n".to_vec()]),
            b"X: 1\r\nAuthorization: D\r\n"
        );
    }

    #[test]
    fn sent_roundtrip_and_garbage() {
        let mut t = Template::default();
        t.set(Key::Method, Input::Str(b"MESSAGE")).unwrap();
        t.set(Key::Body, Input::Str(b"\0\x01hello")).unwrap();
        t.set(Key::Evroute, Input::Int(1)).unwrap();
        t.set(Key::Evparam, Input::Str(b"p")).unwrap();
        t.set(Key::Cseqno, Input::Int(100)).unwrap();
        t.set(Key::FrTimeout, Input::Int(1500)).unwrap();
        t.set(Key::FrInvTimeout, Input::Int(2500)).unwrap();
        t.set(Key::Ftag, Input::Str(b"ft")).unwrap();
        t.set(Key::Ttag, Input::Str(b"tt")).unwrap();
        let s = Sent {
            req: t.as_ref(),
            call_id: b"cid",
            from_tag: b"tag",
            cseq: 11,
            auth_done: true,
        };
        let enc = s.encode();
        assert_eq!(Sent::decode(&enc), Some(s));
        let mut back = Template::default();
        Sent::decode(&enc).unwrap().req.copy_into(&mut back);
        assert_eq!(back, t, "every key survives the shm state");
        for cut in 0..enc.len() {
            assert_eq!(Sent::decode(&enc[..cut]), None);
        }
        let mut extra = enc.clone();
        extra.push(0);
        assert_eq!(Sent::decode(&extra), None);
        assert_eq!(Sent::decode(&[0xff; 64]), None);
    }
}
