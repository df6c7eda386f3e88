//! The vocabulary of HTTP Digest as SIP uses it (RFC 7616 §3.3-§3.4, RFC 8760 §2.2): hash
//! families, algorithms, `qop` and the nonce count. Both the header syntax
//! ([`super::auth_header`]) and the computation ([`super::digest`]) speak it; neither is
//! needed to name these types, so the two depend on this module and the computation on the
//! syntax, never the other way round.

use std::fmt;

use sha2::Digest;

use super::inline::InlineBytes;

/// The hash function behind an [`Algorithm`]; an HA1 hex string belongs to one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFamily {
    Md5,
    Sha256,
    /// SHA-512/256 (FIPS 180-4), token `SHA-512-256` (RFC 7616 §3.2).
    Sha512_256,
}

impl HashFamily {
    /// Length of `H()` output in lowercase hex: 32 for MD5, 64 for the SHA-2 variants.
    pub const fn hex_len(self) -> usize {
        match self {
            HashFamily::Md5 => 32,
            HashFamily::Sha256 | HashFamily::Sha512_256 => 64,
        }
    }

    /// How strong the hash is, higher is stronger: MD5 < SHA-256 < SHA-512/256 (the
    /// order of preference RFC 8760 §2.3 gives UASs for listing their challenges).
    pub const fn strength(self) -> u8 {
        match self {
            HashFamily::Md5 => 1,
            HashFamily::Sha256 => 2,
            HashFamily::Sha512_256 => 3,
        }
    }

    /// Name used in log messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            HashFamily::Md5 => "MD5",
            HashFamily::Sha256 => "SHA-256",
            HashFamily::Sha512_256 => "SHA-512-256",
        }
    }

    /// `H(p0 ":" p1 ":" ...)` as lowercase hex (RFC 7616 §3.4: "H(data)" is the hex
    /// representation of the hash).
    pub fn h(self, parts: &[&[u8]]) -> Vec<u8> {
        self.h_hex(parts).to_vec()
    }

    /// [`HashFamily::h`] into a stack buffer (the per-call digest path).
    pub fn h_hex(self, parts: &[&[u8]]) -> Hex {
        match self {
            HashFamily::Md5 => h_joined::<md5::Md5>(parts),
            HashFamily::Sha256 => h_joined::<sha2::Sha256>(parts),
            HashFamily::Sha512_256 => h_joined::<sha2::Sha512_256>(parts),
        }
    }
}

impl fmt::Display for HashFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase hex of a hash (64 digits at most), on the stack.
pub type Hex = InlineBytes<64>;

fn h_joined<D: Digest>(parts: &[&[u8]]) -> Hex {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    hex_lower(&d.finalize())
}

pub(super) fn hex_lower<const N: usize>(bytes: &[u8]) -> InlineBytes<N> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = InlineBytes::zeroed(bytes.len() * 2);
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// Digest algorithm of a challenge (RFC 7616 §3.3 `algorithm`, RFC 8760 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Also the meaning of an absent `algorithm` parameter (RFC 7616 §3.3).
    #[default]
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm we can answer, strongest first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Parses the token; names are case-insensitive (RFC 7616 §3.3 compares them as tokens;
    /// servers send `md5` and `MD5` alike). Unknown names give `None`.
    pub fn from_token(token: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| token.eq_ignore_ascii_case(a.as_str().as_bytes()))
    }

    /// Canonical spelling, as registered with IANA.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    pub const fn family(self) -> HashFamily {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashFamily::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashFamily::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => HashFamily::Sha512_256,
        }
    }

    /// `-sess` variants fold nonce and cnonce into HA1 (RFC 7616 §3.4.2).
    pub const fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    AuthInt,
}

impl Qop {
    /// Case-insensitive token match; unknown tokens give `None` and are ignored by the parser.
    pub fn from_token(token: &[u8]) -> Option<Qop> {
        if token.eq_ignore_ascii_case(b"auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case(b"auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    /// Picks the qop to answer with: `auth` when offered, `auth-int` only when it is the only
    /// known option (RFC 7616 §3.4 lets the client choose; `auth` needs no body and is what
    /// every SIP server accepts). `None` when the challenge offered no qop (RFC 2069 mode).
    pub fn choose(offered: &[Qop]) -> Option<Qop> {
        if offered.contains(&Qop::Auth) {
            Some(Qop::Auth)
        } else if offered.contains(&Qop::AuthInt) {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Nonce count (RFC 7616 §3.4 `nc`): 8 lowercase hex digits, starts at 1, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nc(u32);

impl Nc {
    /// First use of a nonce.
    pub const FIRST: Nc = Nc(1);

    /// `None` for 0, which is not a valid count.
    pub const fn new(value: u32) -> Option<Nc> {
        if value == 0 { None } else { Some(Nc(value)) }
    }

    pub const fn value(self) -> u32 {
        self.0
    }

    /// The count for the next request with the same nonce; `None` once 8 hex digits are
    /// exhausted (the caller must then wait for a fresh challenge).
    pub const fn next(self) -> Option<Nc> {
        match self.0.checked_add(1) {
            Some(v) => Some(Nc(v)),
            None => None,
        }
    }

    /// The wire form, e.g. `00000001`.
    pub fn to_hex(self) -> [u8; 8] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = DIGITS[((self.0 >> (28 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

impl Default for Nc {
    fn default() -> Self {
        Nc::FIRST
    }
}

impl fmt::Display for Nc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}
