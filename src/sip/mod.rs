//! Pure SIP logic: parsers and printers over bytes. No Kamailio, no unsafe.
#![forbid(unsafe_code)]

use std::fmt;

pub mod inline;
pub mod name_addr;
pub mod rr_param;

/// Why a peer- or database-controlled input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was being parsed ("WWW-Authenticate", "From", ...).
    pub what: &'static str,
    /// Why it was refused, for the log line.
    pub why: &'static str,
}

impl ParseError {
    pub const fn new(what: &'static str, why: &'static str) -> Self {
        ParseError { what, why }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad {}: {}", self.what, self.why)
    }
}

impl std::error::Error for ParseError {}

/// The Request-URI of a request's first line (`Method SP Request-URI SP
/// SIP-Version`, RFC 3261 §7.1); empty when there is none.
pub fn request_line_uri(request: &[u8]) -> &[u8] {
    let line = request
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    line.split(|&b| b == b' ').nth(1).unwrap_or(&[])
}

pub mod auth_header;
pub mod digest;
pub mod digest_types;
pub mod header;
pub mod lex;
pub mod register;
pub mod uri;

#[cfg(test)]
mod tests {
    use super::request_line_uri;

    #[test]
    fn uri_of_the_request_line() {
        assert_eq!(
            request_line_uri(b"INVITE sip:bob@h;transport=udp SIP/2.0\r\nVia: x\r\n"),
            b"sip:bob@h;transport=udp"
        );
        assert_eq!(request_line_uri(b"garbage"), b"");
        assert_eq!(request_line_uri(b""), b"");
    }
}
