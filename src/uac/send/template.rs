//! The `$uac_req(key)` template (admin guide section 5): its keys, the values the
//! script may assign, and the headers block as sent. Pure; see the module docs of
//! [`crate::uac::send`] for the differences from the C module.

use std::borrow::Cow;

use crate::sip::lex::is_token;

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
}
