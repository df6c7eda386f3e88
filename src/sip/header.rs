//! Header fields by name (RFC 3261 §7.3): which well-known field a name is (long or
//! compact form, case-insensitive), and the split of a raw header section into
//! fields for the pure parsers. In Kamailio, the host layer reads the fields of a
//! [`HeaderName`] from the core's parse of a message (`host::msg::hdr`), so every
//! feature reads headers one way.
//!
//! ```text
//! message-header = field-name HCOLON field-value CRLF      ; folding: CRLF 1*(SP/HT)
//! ```

use super::ParseError;
use super::lex::{self, trim_lws};

/// At most this many header fields are looked at.
pub const MAX_HEADERS: usize = 256;

fn err(why: &'static str) -> ParseError {
    ParseError::new("REGISTER reply", why)
}

/// The header fields the module reads from messages it did not build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName {
    CallId,
    CSeq,
    Contact,
    ContentLength,
    Expires,
    MinExpires,
    RetryAfter,
    WwwAuthenticate,
    ProxyAuthenticate,
}

impl HeaderName {
    /// The long name and the compact form, if any (RFC 3261 §7.3.3).
    pub const fn names(self) -> (&'static str, Option<u8>) {
        match self {
            HeaderName::CallId => ("Call-ID", Some(b'i')),
            HeaderName::CSeq => ("CSeq", None),
            HeaderName::Contact => ("Contact", Some(b'm')),
            HeaderName::ContentLength => ("Content-Length", Some(b'l')),
            HeaderName::Expires => ("Expires", None),
            HeaderName::MinExpires => ("Min-Expires", None),
            HeaderName::RetryAfter => ("Retry-After", None),
            HeaderName::WwwAuthenticate => ("WWW-Authenticate", None),
            HeaderName::ProxyAuthenticate => ("Proxy-Authenticate", None),
        }
    }

    /// Every name this module reads.
    pub const ALL: [HeaderName; 9] = [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::Contact,
        HeaderName::ContentLength,
        HeaderName::Expires,
        HeaderName::MinExpires,
        HeaderName::RetryAfter,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
    ];

    /// Which of [`HeaderName::ALL`] the field name `name` is, if any.
    pub fn of(name: &[u8]) -> Option<HeaderName> {
        HeaderName::ALL.into_iter().find(|h| {
            let (long, short) = h.names();
            name.eq_ignore_ascii_case(long.as_bytes())
                || short.is_some_and(|s| name.len() == 1 && name[0].eq_ignore_ascii_case(&s))
        })
    }
}

/// One header field, name and value as received (value trimmed, folding kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// Splits the header section of `msg` (after the start line, up to the empty line).
pub fn header_fields(msg: &[u8]) -> Result<Vec<HeaderField<'_>>, ParseError> {
    // The start line.
    let Some(first_end) = find_eol(msg, 0) else {
        return Err(err("no start line"));
    };
    let mut pos = first_end.1;
    let mut out: Vec<HeaderField<'_>> = Vec::new();
    while pos < msg.len() {
        let Some((end, next)) = find_eol(msg, pos) else {
            // Last line without CRLF: take it.
            push_field(&mut out, &msg[pos..])?;
            break;
        };
        if end == pos {
            break; // empty line: end of headers
        }
        // Unfold: continuation lines start with SP/HT (RFC 3261 §7.3.1).
        let mut line_end = end;
        let mut cursor = next;
        while cursor < msg.len() && (msg[cursor] == b' ' || msg[cursor] == b'\t') {
            match find_eol(msg, cursor) {
                Some((e, n)) => {
                    line_end = e;
                    cursor = n;
                }
                None => {
                    line_end = msg.len();
                    cursor = msg.len();
                }
            }
        }
        push_field(&mut out, &msg[pos..line_end])?;
        if out.len() > MAX_HEADERS {
            return Err(err("too many header fields"));
        }
        pos = cursor;
    }
    Ok(out)
}

/// (end of line content, start of next line); accepts CRLF or bare LF.
fn find_eol(msg: &[u8], from: usize) -> Option<(usize, usize)> {
    let i = msg.get(from..)?.iter().position(|&b| b == b'\n')? + from;
    let end = if i > from && msg[i - 1] == b'\r' {
        i - 1
    } else {
        i
    };
    Some((end, i + 1))
}

fn push_field<'a>(out: &mut Vec<HeaderField<'a>>, line: &'a [u8]) -> Result<(), ParseError> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(err("header line without colon"));
    };
    let name = trim_lws(&line[..colon]);
    if !lex::is_token(name) {
        return Err(err("bad header name"));
    }
    out.push(HeaderField {
        name,
        value: trim_lws(&line[colon + 1..]),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_long_compact_any_case() {
        assert_eq!(HeaderName::of(b"call-id"), Some(HeaderName::CallId));
        assert_eq!(HeaderName::of(b"I"), Some(HeaderName::CallId));
        assert_eq!(HeaderName::of(b"m"), Some(HeaderName::Contact));
        assert_eq!(HeaderName::of(b"l"), Some(HeaderName::ContentLength));
        assert_eq!(
            HeaderName::of(b"www-authenticate"),
            Some(HeaderName::WwwAuthenticate)
        );
        assert_eq!(
            HeaderName::of(b"Proxy-Authenticate"),
            Some(HeaderName::ProxyAuthenticate)
        );
        assert_eq!(HeaderName::of(b"Contacts"), None);
        assert_eq!(HeaderName::of(b"x"), None);
        assert_eq!(HeaderName::of(b""), None);
    }

    #[test]
    fn fields_unfolded_trimmed() {
        let m = b"SIP/2.0 200 OK\r\nA: 1\r\nB:\r\n  2\r\n\r\nbody: x\r\n";
        let f = header_fields(m).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].name, f[0].value), (&b"A"[..], &b"1"[..]));
        assert_eq!((f[1].name, f[1].value), (&b"B"[..], &b"2"[..]));
        assert!(header_fields(b"SIP/2.0 200\r\nnocolon\r\n\r\n").is_err());
    }
}
