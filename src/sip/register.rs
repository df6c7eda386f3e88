//! What a REGISTER client needs from a registrar's reply (RFC 3261 §10.2.4, §10.3, §20):
//! the header fields of a raw SIP message, the Contact list with its `expires` parameters,
//! `Expires`, `Min-Expires`, `Retry-After`, `Call-ID`, `CSeq` and the Digest challenges.
//!
//! ```text
//! message-header = field-name HCOLON field-value CRLF      ; folding: CRLF 1*(SP/HT)
//! Contact        = ("Contact" / "m") HCOLON ( STAR / (contact-param *(COMMA contact-param)))
//! contact-param  = (name-addr / addr-spec) *(SEMI contact-params)
//! contact-params = c-p-q / c-p-expires / contact-extension
//! c-p-expires    = "expires" EQUAL delta-seconds
//! Expires        = "Expires" HCOLON delta-seconds
//! Min-Expires    = "Min-Expires" HCOLON delta-seconds
//! Retry-After    = "Retry-After" HCOLON delta-seconds [ comment ] *( SEMI retry-param )
//! delta-seconds  = 1*DIGIT
//! ```
//!
//! Everything is bytes; nothing here trusts the peer: sizes are bounded, numbers saturate at
//! 2^32-1 (RFC 3261 §20.19 says larger values are taken as 2^32-1) and malformed pieces are
//! skipped rather than aborting the whole reply.

use super::ParseError;
use super::header::{HeaderName, header_fields};
use super::lex::{self, trim_lws};
use super::name_addr;
use super::uri;

/// At most this many Contact entries are kept.
pub const MAX_CONTACTS: usize = 64;

/// `delta-seconds`, saturating at 2^32-1 (RFC 3261 §20.19, §20.33).
pub fn parse_delta_seconds(v: &[u8]) -> Option<u32> {
    let v = trim_lws(v);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in v {
        n = (n * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX));
    }
    Some(n as u32)
}

/// One entry of a Contact header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The URI, without `<>`.
    pub uri: Vec<u8>,
    /// The user part of the URI (between the scheme and `@`), empty when none.
    pub user: Vec<u8>,
    /// The `expires` contact parameter, if present and numeric.
    pub expires: Option<u32>,
}

/// Parses one contact-param; `None` when it has no usable URI.
fn parse_contact(c: &[u8]) -> Option<Contact> {
    let na = name_addr::parse_loose(c)?;
    if na.uri.is_empty() || !na.uri.contains(&b':') {
        return None;
    }
    let mut expires = None;
    for (name, value) in na.params() {
        if name.eq_ignore_ascii_case(b"expires") {
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            expires = parse_delta_seconds(value);
        }
    }
    Some(Contact {
        uri: na.uri.to_vec(),
        user: uri::user_part(na.uri).to_vec(),
        expires,
    })
}

/// What a REGISTER reply says, as far as a registering UA cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterReply {
    pub call_id: Option<Vec<u8>>,
    /// The CSeq number.
    pub cseq: Option<u32>,
    /// `Contact: *`.
    pub star: bool,
    pub contacts: Vec<Contact>,
    pub expires: Option<u32>,
    pub min_expires: Option<u32>,
    pub retry_after: Option<u32>,
    /// `WWW-Authenticate` values, top to bottom.
    pub www_authenticate: Vec<Vec<u8>>,
    /// `Proxy-Authenticate` values, top to bottom.
    pub proxy_authenticate: Vec<Vec<u8>>,
}

impl RegisterReply {
    /// The header fields a REGISTER client reads; [`RegisterReply::from_fields`]
    /// ignores any other.
    pub const FIELDS: &'static [HeaderName] = &[
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Contact,
        HeaderName::Expires,
        HeaderName::MinExpires,
        HeaderName::RetryAfter,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
    ];

    /// Reads the fields of a raw reply (start line + headers; the body is ignored):
    /// the pure path of the unit tests and the fuzz target. In Kamailio the fields
    /// come from the core's parse of the reply (`host::msg::hdr::headers_of`).
    pub fn parse(msg: &[u8]) -> Result<RegisterReply, ParseError> {
        let fields = header_fields(msg)?;
        Ok(RegisterReply::from_fields(fields.iter().filter_map(|h| {
            HeaderName::of(h.name).map(|n| (n, h.value))
        })))
    }

    /// Reads the values of the header fields of [`RegisterReply::FIELDS`], top to
    /// bottom, each as received (trimmed, folding kept).
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (HeaderName, &'a [u8])>,
    ) -> RegisterReply {
        let mut r = RegisterReply::default();
        for (name, v) in fields {
            match name {
                HeaderName::CallId => r.call_id = Some(v.to_vec()),
                HeaderName::CSeq => {
                    let num = v.split(|&b| b == b' ' || b == b'\t').next().unwrap_or(b"");
                    r.cseq = parse_delta_seconds(num);
                }
                HeaderName::Contact => {
                    if v == b"*" {
                        r.star = true;
                        continue;
                    }
                    for part in lex::split_top_commas(v) {
                        if r.contacts.len() >= MAX_CONTACTS {
                            break;
                        }
                        if let Some(c) = parse_contact(part) {
                            r.contacts.push(c);
                        }
                    }
                }
                HeaderName::Expires => r.expires = parse_delta_seconds(v),
                HeaderName::MinExpires => r.min_expires = parse_delta_seconds(v),
                HeaderName::RetryAfter => {
                    // delta-seconds [comment] *(;param)
                    let end = v
                        .iter()
                        .position(|&b| !b.is_ascii_digit())
                        .unwrap_or(v.len());
                    r.retry_after = parse_delta_seconds(&v[..end]);
                }
                HeaderName::WwwAuthenticate => r.www_authenticate.push(v.to_vec()),
                HeaderName::ProxyAuthenticate => r.proxy_authenticate.push(v.to_vec()),
                HeaderName::ContentLength => {}
            }
        }
        r
    }

    /// Our binding in a 2xx to a REGISTER (RFC 3261 §10.2.4: the 2xx lists every current
    /// binding of the AOR in Contact). Ours is the Contact whose user is `l_uuid`, or, with
    /// `by_line` (the record has a `contact_user`, so our Contact carried `;line=<l_uuid>`),
    /// the Contact whose URI has a `line` parameter equal to `l_uuid`. Its `expires`
    /// parameter, else the `Expires` header field, is the granted expiry.
    ///
    /// As in the C module (kam 13423d1536), the user match applies with `by_line` too. The
    /// `line` parameter is a URI parameter: its name is compared case-insensitively and
    /// escapes are decoded (RFC 3261 §19.1.4); its value is compared exactly, since it is
    /// the l_uuid we sent and l_uuids differing in case are different records. In an
    /// addr-spec Contact (no `<>`), `;line` belongs to the header field, not to the URI
    /// (RFC 3261 §20.10), and is not looked at, as in C.
    ///
    /// A Contact with another user is not ours even when it is the only one (a registrar
    /// that rewrote our Contact): as in the C module, which does not mark the record
    /// registered otherwise.
    pub fn binding(&self, l_uuid: &[u8], by_line: bool) -> Binding {
        let line_is_ours = |c: &Contact| {
            uri::parse(&c.uri)
                .ok()
                .and_then(|u| u.param(b"line"))
                .is_some_and(|p| p.value.is_some_and(|v| uri::unescape(v) == l_uuid))
        };
        if let Some(c) = self
            .contacts
            .iter()
            .find(|c| c.user == l_uuid || (by_line && line_is_ours(c)))
        {
            return Binding::Granted(c.expires.or(self.expires));
        }
        if self.contacts.is_empty() && !self.star {
            Binding::NoContact
        } else {
            Binding::NotListed
        }
    }
}

/// What a 2xx to a REGISTER says about our binding ([`RegisterReply::binding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Our Contact is listed; the expiry granted, `None` when the reply states none.
    Granted(Option<u32>),
    /// The reply has no (usable) Contact at all.
    NoContact,
    /// The reply lists Contacts (or `*`), none of them ours.
    NotListed,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:bob@example.com>;tag=1\r\n\
To: <sip:bob@example.com>;tag=2\r\n\
i: abc@host\r\n\
CSeq: 11 REGISTER\r\n\
m: <sip:other@1.2.3.4>;expires=30, \"A, <b>\" <sip:uuid1@127.0.0.1:5060;transport=udp>;q=0.5;EXPIRES=120\r\n\
Expires: 3600\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn reads_fields() {
        let r = RegisterReply::parse(OK).unwrap();
        assert_eq!(r.call_id.as_deref(), Some(&b"abc@host"[..]));
        assert_eq!(r.cseq, Some(11));
        assert_eq!(r.contacts.len(), 2);
        assert_eq!(r.contacts[1].user, b"uuid1");
        assert_eq!(r.contacts[1].expires, Some(120));
        assert_eq!(r.expires, Some(3600));
        assert_eq!(r.binding(b"uuid1", false), Binding::Granted(Some(120)));
        assert_eq!(r.binding(b"other", false), Binding::Granted(Some(30)));
        assert_eq!(r.binding(b"nobody", false), Binding::NotListed);
    }

    #[test]
    fn contact_without_expires_uses_header() {
        let m = b"SIP/2.0 200 OK\r\nContact: <sip:u@h>\r\nExpires: 60\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::Granted(Some(60)));
        let m = b"SIP/2.0 200 OK\r\nContact: sip:u@h;expires=5\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::Granted(Some(5)));
        let m = b"SIP/2.0 200 OK\r\nContact: <sip:u@h>\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::Granted(None));
    }

    /// RFC 3261 §10.2.4: without our Contact in the 2xx, nothing says we are bound.
    #[test]
    fn no_contact_or_none_of_ours() {
        let m = b"SIP/2.0 200 OK\r\nExpires: 60\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::NoContact);
        // a Contact header field with nothing usable in it
        let m = b"SIP/2.0 200 OK\r\nContact: <sip:u@h;expires=60\r\nm: nocolon\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::NoContact);
        // rewritten contact, single entry: not ours (as in the C module)
        let m = b"SIP/2.0 200 OK\r\nContact: <sip:x@h>;expires=7\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::NotListed);
        // user compared exactly: a prefix or a host named like us is not ours
        let m = b"SIP/2.0 200 OK\r\nContact: <sip:uu@h>, <sip:u>, <sip:h;u=u>\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::NotListed);
        let m = b"SIP/2.0 200 OK\r\nContact: *\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::NotListed);
    }

    /// `contact_user` records (kam 13423d1536): our binding is the Contact whose URI has
    /// `line=<l_uuid>`, whatever its user (the registrar may rewrite it).
    #[test]
    fn binding_by_line_parameter() {
        let m = b"SIP/2.0 200 OK\r\n\
Contact: <sip:1000@10.0.0.9:5060;line=other>;expires=10, <sip:rewritten@10.0.0.1;transport=udp;LINE=tr%75nk1>;expires=50\r\n\
Expires: 90\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"trunk1", true), Binding::Granted(Some(50)));
        assert_eq!(r.binding(b"other", true), Binding::Granted(Some(10)));
        // without contact_user the line parameter means nothing (C: user match only)
        assert_eq!(r.binding(b"trunk1", false), Binding::NotListed);
        // the value is compared exactly: case and prefixes matter
        assert_eq!(r.binding(b"TRUNK1", true), Binding::NotListed);
        assert_eq!(r.binding(b"trunk", true), Binding::NotListed);
        // the user match still applies, as in C
        assert_eq!(r.binding(b"rewritten", true), Binding::Granted(Some(50)));

        for (contact, ours) in [
            // a header parameter of an addr-spec, not a URI parameter (RFC 3261 §20.10)
            ("sip:x@h;line=u", false),
            // a header parameter after the name-addr
            ("<sip:x@h>;line=u", false),
            // in the user part (user-unreserved allows ';'), not a parameter
            ("<sip:a;line=u@h>", false),
            // valueless, empty, other parameter, headers
            ("<sip:x@h;line>", false),
            ("<sip:x@h;line=>", false),
            ("<sip:x@h;xline=u;linex=u>", false),
            ("<sip:x@h?line=u>", false),
            // unparsable URI: no parameter can be trusted
            ("<sip:x@h;line=u;bad param>", false),
            ("<tel:+123;line=u>", false),
            // ok: escaped name and value, uppercase name, among others, IPv6 host, port
            ("<sip:x@h;%6Cine=%75>", true),
            ("<sips:x@[2001:db8::1]:5061;lr;Line=u;transport=tls>", true),
            ("\"Name, with <comma>\" <sip:h;line=u>", true),
        ] {
            let m = format!("SIP/2.0 200 OK\r\nContact: {contact}\r\nExpires: 5\r\n\r\n");
            let r = RegisterReply::parse(m.as_bytes()).unwrap();
            let want = if ours {
                Binding::Granted(Some(5))
            } else {
                Binding::NotListed
            };
            assert_eq!(r.binding(b"u", true), want, "{contact}");
        }
    }

    #[test]
    fn folding_and_lf_only() {
        let m = b"SIP/2.0 423 Interval Too Brief\nMin-Expires:\n   600\nRetry-After: 30 (busy);duration=5\n\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.min_expires, Some(600));
        assert_eq!(r.retry_after, Some(30));
    }

    #[test]
    fn star_and_challenges() {
        let m = b"SIP/2.0 401 Unauthorized\r\nContact: *\r\nWWW-Authenticate: Digest realm=\"a\", nonce=\"n\"\r\nwww-authenticate: Digest realm=\"b\", nonce=\"m\"\r\nProxy-Authenticate: Digest realm=\"p\", nonce=\"x\"\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert!(r.star);
        assert_eq!(r.www_authenticate.len(), 2);
        assert_eq!(r.proxy_authenticate.len(), 1);
    }

    #[test]
    fn saturates_and_rejects() {
        assert_eq!(parse_delta_seconds(b"99999999999999999999"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds(b"-1"), None);
        assert_eq!(parse_delta_seconds(b""), None);
        assert_eq!(parse_delta_seconds(b" 12 "), Some(12));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let cases: &[&[u8]] = &[
            b"",
            b"\n",
            b"SIP/2.0 200\r\nContact: <<<>>>,,,\"\r\n\r\n",
            b"SIP/2.0 200\r\nContact: \"<sip:a@b>\r\n\r\n",
            b"SIP/2.0 200\r\nContact: <sip:a@b;expires=\"\r\n",
            b"SIP/2.0 200\r\nm: \"x\\\"<\" <sip:u@h>;expires=3\r\n\r\n",
            b"SIP/2.0 200\r\nnocolon\r\n\r\n",
            b"SIP/2.0 200\r\n : x\r\n",
            b"SIP/2.0 200\r\nContact: ;;;=;\r\n\t\r\n",
        ];
        for c in cases {
            let _ = RegisterReply::parse(c);
        }
        // random bytes
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let mut buf = b"SIP/2.0 200 OK\r\nContact: ".to_vec();
            for _ in 0..40 {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                let alphabet = b"<>\";,=:@ \r\n\tsipexpires0123";
                buf.push(alphabet[(x >> 16) as usize % alphabet.len()]);
            }
            if let Ok(r) = RegisterReply::parse(&buf) {
                let _ = r.binding(b"sip", true);
            }
        }
        let m = b"SIP/2.0 200\r\nm: \"x\\\"<\" <sip:u@h>;expires=3\r\n\r\n";
        let r = RegisterReply::parse(m).unwrap();
        assert_eq!(r.binding(b"u", false), Binding::Granted(Some(3)));
        assert_eq!(r.binding(b"u", true), Binding::Granted(Some(3)));
    }

    #[test]
    fn too_many_headers_refused() {
        let mut m = b"SIP/2.0 200 OK\r\n".to_vec();
        for _ in 0..300 {
            m.extend_from_slice(b"X: y\r\n");
        }
        assert!(RegisterReply::parse(&m).is_err());
    }
}
