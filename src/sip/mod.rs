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

pub mod auth_header;
pub mod digest;
pub mod register;
