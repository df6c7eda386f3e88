//! Digest computation for a SIP UAC (RFC 3261 §22.4 as updated by RFC 8760, using the
//! RFC 7616 algorithms).
//!
//! - Algorithms MD5, SHA-256, SHA-512-256 and their `-sess` variants (RFC 8760 §2.2,
//!   RFC 7616 §3.4.2, IANA "HTTP Digest Hash Algorithms"); an absent `algorithm` means MD5.
//! - HA1 from a plain password or from a precomputed HA1 hex string (per hash family).
//! - HA2 for `qop=auth` and `qop=auth-int` (RFC 7616 §3.4.3), the response with qop
//!   (§3.4.1) and the RFC 2069 form without qop (RFC 2617 §3.2.2.1).
//! - `userhash` (RFC 7616 §3.4.4).
//! - The `credential` modparam format of the C module (`user:realm:password`).
//!
//! The header syntax (challenge parser and `Authorization` printer) lives in
//! [`super::auth_header`]; this module only computes. The types both speak (algorithm, qop,
//! nonce count) live in [`super::digest_types`] and are re-exported here.

use std::borrow::Cow;
use std::fmt;

use rand::Rng;

use super::ParseError;
use super::auth_header::DigestChallenge;
pub use super::auth_header::{Authorization, HeaderKind};
use super::digest_types::hex_lower;
pub use super::digest_types::{Algorithm, HashFamily, Hex, Nc, Qop};

/// Random bytes in a generated cnonce (printed as twice as many hex digits).
pub const CNONCE_BYTES: usize = 16;

/// A fresh client nonce: [`CNONCE_BYTES`] random bytes as 32 lowercase hex digits.
///
/// RFC 7616 §3.4 wants the cnonce unpredictable; the C module used `hash(nonce)` instead.
/// The caller owns the RNG. Kamailio forks its workers after `mod_init`, so a generator
/// seeded before the fork would hand every worker the same sequence: create or reseed it in
/// each process (`child_init`), e.g. from `rand::rngs::SysRng`.
pub fn generate_cnonce<R: Rng + ?Sized>(rng: &mut R) -> Hex {
    let mut raw = [0u8; CNONCE_BYTES];
    rng.fill_bytes(&mut raw);
    hex_lower(&raw)
}

/// The secret half of [`Credentials`].
#[derive(Clone, PartialEq, Eq)]
pub enum Secret<'a> {
    /// Clear-text password; HA1 = H(username:realm:password) in the challenge's hash family.
    Password(Cow<'a, [u8]>),
    /// Precomputed HA1 = H(username:realm:password) as hex.
    ///
    /// `family: None` means the family is unknown (e.g. `uac_auth(1)` with an AVP value), so
    /// only the length is checked: 32 hex digits answer MD5 challenges, 64 answer SHA-256 and
    /// SHA-512-256 ones.
    Ha1 {
        family: Option<HashFamily>,
        hex: Cow<'a, [u8]>,
    },
}

impl Secret<'_> {
    /// The same secret, owning its bytes.
    pub fn into_owned(self) -> Secret<'static> {
        match self {
            Secret::Password(p) => Secret::Password(Cow::Owned(p.into_owned())),
            Secret::Ha1 { family, hex } => Secret::Ha1 {
                family,
                hex: Cow::Owned(hex.into_owned()),
            },
        }
    }

    /// How much we want to answer a challenge of `algo` with this secret, higher is better;
    /// `None` when it cannot be answered at all ([`authorize`] would fail).
    ///
    /// - A password answers every algorithm; a stronger hash is preferred.
    /// - An HA1 answers only its own family, with the right length: a 32-digit HA1 only
    ///   MD5 and MD5-sess. A 64-digit HA1 of unknown family could be SHA-256 or
    ///   SHA-512/256; SHA-256 is preferred, the family every other SIP stack with SHA-2
    ///   HA1s stores (Kamailio, Asterisk), so a server offering both gets the answer that
    ///   is most likely right.
    pub fn preference(&self, algo: Algorithm) -> Option<u8> {
        let fam = algo.family();
        match self {
            Secret::Password(_) => Some(fam.strength()),
            Secret::Ha1 { family, hex } => {
                if family.is_some_and(|f| f != fam) || hex.len() != fam.hex_len() {
                    return None;
                }
                Some(match (family, fam) {
                    (None, HashFamily::Sha256) => HashFamily::Sha512_256.strength() + 1,
                    _ => fam.strength(),
                })
            }
        }
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(<redacted>)"),
            Secret::Ha1 { family, .. } => write!(f, "Ha1 {{ family: {family:?}, <redacted> }}"),
        }
    }
}

/// Who we authenticate as, for one `authorize` call; borrowed from where the credentials
/// are configured when possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub username: Cow<'a, [u8]>,
    /// The realm these credentials are for. Empty matches any realm, like the C module's
    /// `auth_realm_avp` left empty. The realm hashed and printed is always the challenge's.
    pub realm: Cow<'a, [u8]>,
    pub secret: Secret<'a>,
}

/// Why no `Authorization` could be computed. None of these should be retried with the same
/// inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// `Credentials::realm` is set and differs from the challenge's realm.
    RealmMismatch,
    /// A precomputed HA1 of one hash family cannot answer a challenge of another.
    Ha1Family { have: HashFamily, need: Algorithm },
    /// A precomputed HA1 whose length does not fit the challenge's algorithm.
    Ha1Length {
        algorithm: Algorithm,
        expected: usize,
        got: usize,
    },
    /// A precomputed HA1 with a non-hex character.
    Ha1NotHex,
    /// The cnonce is empty or has bytes outside visible ASCII (or `"`/`\`).
    BadCnonce,
    /// A control character (CR, LF, NUL...) in a field we would print into the header.
    ControlCharacter { field: &'static str },
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::RealmMismatch => f.write_str("credentials are for another realm"),
            DigestError::Ha1Family { have, need } => {
                write!(f, "HA1 is {have} but the challenge asks for {need}")
            }
            DigestError::Ha1Length {
                algorithm,
                expected,
                got,
            } => write!(
                f,
                "HA1 has {got} characters, {algorithm} needs {expected} hex digits"
            ),
            DigestError::Ha1NotHex => f.write_str("HA1 is not a hex string"),
            DigestError::BadCnonce => f.write_str("cnonce empty or not printable"),
            DigestError::ControlCharacter { field } => {
                write!(f, "control character in {field}")
            }
        }
    }
}

impl std::error::Error for DigestError {}

/// Rejects bytes that would let a value break out of the header line (CTLs except HT).
fn check_printable(field: &'static str, v: &[u8]) -> Result<(), DigestError> {
    // No early exit: the whole scan vectorises, and values are short.
    if v.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    }) {
        Err(DigestError::ControlCharacter { field })
    } else {
        Ok(())
    }
}

/// HA1 in hex for `algo` (RFC 7616 §3.4.2), before the `-sess` step.
fn base_ha1(
    algo: Algorithm,
    user: &[u8],
    realm: &[u8],
    secret: &Secret,
) -> Result<Hex, DigestError> {
    let fam = algo.family();
    match secret {
        Secret::Password(p) => Ok(fam.h_hex(&[user, realm, p])),
        Secret::Ha1 { family, hex } => {
            if let Some(have) = *family
                && have != fam
            {
                return Err(DigestError::Ha1Family { have, need: algo });
            }
            if hex.len() != fam.hex_len() {
                return Err(DigestError::Ha1Length {
                    algorithm: algo,
                    expected: fam.hex_len(),
                    got: hex.len(),
                });
            }
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(DigestError::Ha1NotHex);
            }
            // H() output is lowercase hex; an uppercase HA1 would hash differently in KD.
            let mut h = Hex::from_slice(hex);
            h.make_ascii_lowercase();
            Ok(h)
        }
    }
}

/// Computes the answer to `challenge` for a request `method` to `digest_uri`.
///
/// - `body` is the message body, used only for `qop=auth-int` (pass `b""` when none).
/// - `cnonce` is used when a qop is chosen and for `-sess` algorithms (see
///   [`generate_cnonce`]); `nc` goes out with a qop only.
/// - qop: `auth` when offered, else `auth-int`, else none (RFC 2069 response).
/// - `-sess` without qop: HA1 still takes the cnonce (RFC 7616 §3.4.2), and the cnonce is
///   sent so the server can recompute it; the response uses the no-qop form. (The C module
///   in master dereferences a NULL cnonce here.)
/// - `userhash=true` in the challenge: the username sent is H(username:realm) (§3.4.4).
pub fn authorize<'a>(
    challenge: &'a DigestChallenge<'_>,
    creds: &Credentials<'_>,
    method: &[u8],
    digest_uri: &'a [u8],
    body: &[u8],
    cnonce: &'a [u8],
    nc: Nc,
) -> Result<Authorization<'a>, DigestError> {
    // RFC 3261 §22.1 / RFC 7235 §2.2: the realm picks the credentials, compared exactly.
    if !creds.realm.is_empty() && creds.realm != challenge.realm {
        return Err(DigestError::RealmMismatch);
    }
    check_printable("username", &creds.username)?;
    check_printable("method", method)?;
    check_printable("uri", digest_uri)?;
    check_printable("realm", &challenge.realm)?;
    check_printable("nonce", &challenge.nonce)?;
    if let Some(o) = &challenge.opaque {
        check_printable("opaque", o)?;
    }
    if cnonce.is_empty()
        || !cnonce
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(DigestError::BadCnonce);
    }

    let algo = challenge.algorithm;
    let fam = algo.family();
    let realm: &'a [u8] = &challenge.realm;
    let nonce: &'a [u8] = &challenge.nonce;

    let mut ha1 = base_ha1(algo, &creds.username, realm, &creds.secret)?;
    if algo.is_sess() {
        ha1 = fam.h_hex(&[&ha1, nonce, cnonce]);
    }

    let qop = Qop::choose(&challenge.qop);
    let ha2 = match qop {
        Some(Qop::AuthInt) => fam.h_hex(&[method, digest_uri, &fam.h_hex(&[body])]),
        Some(Qop::Auth) | None => fam.h_hex(&[method, digest_uri]),
    };

    let nc_hex = nc.to_hex();
    let response = match qop {
        Some(q) => fam.h_hex(&[&ha1, nonce, &nc_hex, cnonce, q.as_str().as_bytes(), &ha2]),
        None => fam.h_hex(&[&ha1, nonce, &ha2]),
    };

    let username = if challenge.userhash {
        fam.h_hex(&[&creds.username, realm])
    } else {
        Hex::from_slice(&creds.username)
    };

    Ok(Authorization {
        username,
        realm,
        nonce,
        uri: digest_uri,
        response,
        algorithm: algo,
        cnonce: (qop.is_some() || algo.is_sess()).then_some(cnonce),
        opaque: challenge.opaque.as_deref(),
        qop,
        nc: qop.map(|_| nc),
        userhash: challenge.userhash,
    })
}

/// One `credential` modparam entry, `user:realm:password`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: Vec<u8>,
    pub realm: Vec<u8>,
    pub password: Vec<u8>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("realm", &String::from_utf8_lossy(&self.realm))
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// The credentials for one `authorize` call. `ha1` is the `uac_auth(1)` mode: the
    /// password field holds an HA1 of unknown family. Computed per call, so the mode never
    /// sticks to the entry (the C module sets a flag on the shared entry and never clears it).
    pub fn to_credentials(&self, ha1: bool) -> Credentials<'_> {
        let password = Cow::Borrowed(&*self.password);
        let secret = if ha1 {
            Secret::Ha1 {
                family: None,
                hex: password,
            }
        } else {
            Secret::Password(password)
        };
        Credentials {
            username: Cow::Borrowed(&self.user),
            realm: Cow::Borrowed(&self.realm),
            secret,
        }
    }
}

const CRED: &str = "credential";

/// C `isspace()` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Parses the `credential` modparam exactly like the C module's `add_credential`:
///
/// - leading/trailing whitespace and whitespace around both `:` separators is skipped;
/// - user and realm run up to the next `:` or whitespace and must not be empty;
/// - the password runs up to whitespace and may contain `:` (`u:r:a:b` has password `a:b`),
///   but not whitespace (`u:r:a b` is refused);
/// - so realms containing `:` cannot be configured, as in C.
///
/// A NUL byte is refused (the C string would have ended there).
pub fn parse_credential(s: &[u8]) -> Result<Credential, ParseError> {
    if s.contains(&0) {
        return Err(ParseError::new(CRED, "NUL byte"));
    }
    let mut p = 0;
    let skip_ws = |p: &mut usize| {
        while s.get(*p).is_some_and(|&b| is_c_space(b)) {
            *p += 1;
        }
    };
    let field = |p: &mut usize, stop_at_colon: bool| -> &[u8] {
        let start = *p;
        while s
            .get(*p)
            .is_some_and(|&b| !(is_c_space(b) || (stop_at_colon && b == b':')))
        {
            *p += 1;
        }
        &s[start..*p]
    };

    skip_ws(&mut p);
    let user = field(&mut p, true);
    if user.is_empty() || p >= s.len() {
        return Err(ParseError::new(CRED, "missing or empty user"));
    }
    skip_ws(&mut p);
    if s.get(p) != Some(&b':') {
        return Err(ParseError::new(CRED, "expected ':' after user"));
    }
    p += 1;
    skip_ws(&mut p);
    let realm = field(&mut p, true);
    if realm.is_empty() || p >= s.len() {
        return Err(ParseError::new(CRED, "missing or empty realm"));
    }
    skip_ws(&mut p);
    if s.get(p) != Some(&b':') {
        return Err(ParseError::new(CRED, "expected ':' after realm"));
    }
    p += 1;
    skip_ws(&mut p);
    let password = field(&mut p, false);
    if password.is_empty() {
        return Err(ParseError::new(CRED, "missing or empty password"));
    }
    skip_ws(&mut p);
    if p != s.len() {
        return Err(ParseError::new(CRED, "trailing characters after password"));
    }
    Ok(Credential {
        user: user.to_vec(),
        realm: realm.to_vec(),
        password: password.to_vec(),
    })
}

/// Finds the credential for a challenge realm.
///
/// The realm is compared byte for byte, case-sensitively: RFC 3261 §22.1 makes the realm
/// string the protection domain and RFC 2617 §1.2 / RFC 7235 §2.2 call it case-sensitive;
/// the C module's `lookup_realm` does the same. `list` is in configuration order; when
/// several entries share a realm the *last* configured one wins, because the C module
/// prepends each `credential` to its list and returns the first match.
pub fn find_credential<'a>(list: &'a [Credential], realm: &[u8]) -> Option<&'a Credential> {
    list.iter().rev().find(|c| c.realm == realm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth_header::parse_challenge;

    fn pw<'a>(user: &'a str, realm: &'a str, pass: &'a str) -> Credentials<'a> {
        Credentials {
            username: user.as_bytes().into(),
            realm: realm.as_bytes().into(),
            secret: Secret::Password(pass.as_bytes().into()),
        }
    }

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC7616_CNONCE: &[u8] = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616_challenge(algo: &str) -> DigestChallenge<'static> {
        let v = format!(
            "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n \
             algorithm={algo},\r\n nonce=\"{RFC7616_NONCE}\",\r\n opaque=\"{RFC7616_OPAQUE}\""
        );
        parse_challenge(v.as_bytes()).unwrap().into_owned()
    }

    #[test]
    fn rfc7616_3_9_1_md5() {
        let ch = rfc7616_challenge("MD5");
        let creds = pw("Mufasa", "http-auth@example.org", "Circle of Life");
        let a = authorize(
            &ch,
            &creds,
            b"GET",
            b"/dir/index.html",
            b"",
            RFC7616_CNONCE,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.response, b"8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(a.qop, Some(Qop::Auth));
        assert_eq!(
            String::from_utf8(a.to_header_value()).unwrap(),
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             response=\"8ca523f5e9506fed4657c9700eebdbec\", algorithm=MD5"
        );
    }

    #[test]
    fn rfc7616_3_9_1_sha256() {
        let ch = rfc7616_challenge("SHA-256");
        let creds = pw("Mufasa", "http-auth@example.org", "Circle of Life");
        let a = authorize(
            &ch,
            &creds,
            b"GET",
            b"/dir/index.html",
            b"",
            RFC7616_CNONCE,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(
            a.response,
            b"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1".to_vec()
        );
        assert!(a.to_header_value().ends_with(b"algorithm=SHA-256"));
    }

    #[test]
    fn rfc2617_3_5() {
        let ch = parse_challenge(
            b"Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let creds = pw("Mufasa", "testrealm@host.com", "Circle Of Life");
        let a = authorize(
            &ch,
            &creds,
            b"GET",
            b"/dir/index.html",
            b"",
            b"0a4f113b",
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.response, b"6629fae49393a05397450978507c4ef1");
    }

    // Expected values below were computed independently with python3 hashlib:
    //   H = lambda s: hashlib.new('sha512_256', s.encode()).hexdigest()
    //   ha1 = H("Mufasa:http-auth@example.org:Circle of Life"); ha2 = H("GET:/dir/index.html")
    //   H(ha1 + ":" + nonce + ":00000001:" + cnonce + ":auth:" + ha2)
    #[test]
    fn sha512_256_rfc7616_inputs() {
        let ch = rfc7616_challenge("SHA-512-256");
        let creds = pw("Mufasa", "http-auth@example.org", "Circle of Life");
        let a = authorize(
            &ch,
            &creds,
            b"GET",
            b"/dir/index.html",
            b"",
            RFC7616_CNONCE,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(
            a.response,
            b"430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0".to_vec(),
            "got {}",
            String::from_utf8_lossy(&a.response)
        );
    }

    // RFC 7616 §3.9.2 inputs (SHA-512-256, userhash, non-ASCII username in UTF-8). The
    // username and response printed in the RFC do not reproduce with standard SHA-512/256;
    // these were computed with python3 hashlib ('sha512_256'):
    //   userhash = H("Jäsøn Doe:api@example.org")
    //   response = H(H("Jäsøn Doe:api@example.org:Secret, or not?") + ":" + nonce
    //                + ":00000001:" + cnonce + ":auth:" + H("GET:/doe.json"))
    #[test]
    fn userhash_rfc7616_3_9_2_inputs() {
        let ch = parse_challenge(
            b"Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
              nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", \
              opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, \
              userhash=true",
        )
        .unwrap();
        assert!(ch.userhash);
        let creds = pw("J\u{e4}s\u{f8}n Doe", "api@example.org", "Secret, or not?");
        let a = authorize(
            &ch,
            &creds,
            b"GET",
            b"/doe.json",
            b"",
            b"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(
            a.username,
            b"793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b".to_vec()
        );
        assert_eq!(
            a.response,
            b"3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5".to_vec()
        );
        assert!(
            a.to_header_value()
                .ends_with(b", algorithm=SHA-512-256, userhash=true")
        );
    }

    fn md5_alice(extra: &str) -> DigestChallenge<'static> {
        parse_challenge(
            format!("Digest realm=\"sip.example.com\", nonce=\"n0nce\"{extra}").as_bytes(),
        )
        .unwrap()
        .into_owned()
    }

    fn alice() -> Credentials<'static> {
        pw("alice", "sip.example.com", "secret")
    }

    const CN: &[u8] = b"0a4f113b";

    // Expected responses in the tests below: python3 hashlib, same formulas as the
    // RFC 7616 §3.4 text, e.g. for MD5-sess with qop=auth:
    //   s = H(H("Mufasa:http-auth@example.org:Circle of Life") + ":" + nonce + ":" + cnonce)
    //   H(s + ":" + nonce + ":00000001:" + cnonce + ":auth:" + H("GET:/dir/index.html"))
    #[test]
    fn sess_variants_with_qop() {
        let cases = [
            ("MD5-sess", "e783283f46242139c486a698fec7211d"),
            (
                "SHA-256-sess",
                "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7",
            ),
            (
                "SHA-512-256-sess",
                "3f2a34f923c38b0fb26dce2fdfc2ce326c23cecf86fbb1444f3e51fbbc2cb92e",
            ),
        ];
        let creds = pw("Mufasa", "http-auth@example.org", "Circle of Life");
        for (algo, want) in cases {
            let ch = rfc7616_challenge(algo);
            assert!(ch.algorithm.is_sess());
            let a = authorize(
                &ch,
                &creds,
                b"GET",
                b"/dir/index.html",
                b"",
                RFC7616_CNONCE,
                Nc::FIRST,
            )
            .unwrap();
            assert_eq!(a.response, want.as_bytes(), "{algo}");
            let hv = String::from_utf8(a.to_header_value()).unwrap();
            assert!(hv.ends_with(&format!("algorithm={algo}")), "{hv}");
        }
    }

    #[test]
    fn sess_from_ha1() {
        // HA1 values: python3 hashlib H("Mufasa:http-auth@example.org:Circle of Life").
        let cases = [
            (
                "MD5-sess",
                "3d78807defe7de2157e2b0b6573a855f",
                "e783283f46242139c486a698fec7211d",
            ),
            (
                "SHA-256-sess",
                "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
                "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7",
            ),
            (
                "SHA-512-256-sess",
                "fb174f5c3c7802721517cae13b98e2b8dae2e0118cb705d94ee29946319204ce",
                "3f2a34f923c38b0fb26dce2fdfc2ce326c23cecf86fbb1444f3e51fbbc2cb92e",
            ),
        ];
        for (algo, ha1, want) in cases {
            let ch = rfc7616_challenge(algo);
            let creds = Credentials {
                username: Cow::Borrowed(b"Mufasa"),
                realm: Cow::Borrowed(b""),
                secret: Secret::Ha1 {
                    family: Some(ch.algorithm.family()),
                    hex: ha1.as_bytes().into(),
                },
            };
            let a = authorize(
                &ch,
                &creds,
                b"GET",
                b"/dir/index.html",
                b"",
                RFC7616_CNONCE,
                Nc::FIRST,
            )
            .unwrap();
            assert_eq!(a.response, want.as_bytes(), "{algo}");
        }
    }

    #[test]
    fn md5_sess_without_qop_uses_and_sends_cnonce() {
        // python3: s = H(H("alice:sip.example.com:secret") + ":n0nce:deadbeefcafe");
        //          H(s + ":n0nce:" + H("REGISTER:sip:sip.example.com"))
        let ch = md5_alice(", algorithm=MD5-sess");
        assert!(ch.qop.is_empty());
        let a = authorize(
            &ch,
            &alice(),
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            b"deadbeefcafe",
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.response, b"329e1a520124016c99d1cb1db62769f0");
        assert_eq!(a.qop, None);
        assert_eq!(a.nc, None);
        assert_eq!(
            String::from_utf8(a.to_header_value()).unwrap(),
            "Digest username=\"alice\", realm=\"sip.example.com\", nonce=\"n0nce\", \
             uri=\"sip:sip.example.com\", cnonce=\"deadbeefcafe\", \
             response=\"329e1a520124016c99d1cb1db62769f0\", algorithm=MD5-sess"
        );
    }

    #[test]
    fn no_qop_rfc2069_form() {
        // python3: H(H("alice:sip.example.com:secret") + ":n0nce:"
        //            + H("REGISTER:sip:sip.example.com"))
        let ch = md5_alice("");
        let a = authorize(
            &ch,
            &alice(),
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.cnonce, None);
        assert_eq!(
            String::from_utf8(a.to_header_line(HeaderKind::Authorization)).unwrap(),
            "Authorization: Digest username=\"alice\", realm=\"sip.example.com\", \
             nonce=\"n0nce\", uri=\"sip:sip.example.com\", \
             response=\"b2128a6a4e97e2945f44b3a35125a481\", algorithm=MD5\r\n"
        );
        // Same with SHA-256 (python3 hashlib sha256, same formula).
        let ch = md5_alice(", algorithm=SHA-256");
        let a = authorize(
            &ch,
            &alice(),
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(
            a.response,
            b"b02c1aab5735bf98008cf67a8c6d7415873fb24455b6b497ce671cd78dc41d95".to_vec()
        );
    }

    #[test]
    fn auth_int_only_when_alone() {
        // python3: H(ha1 + ":n0nce:00000002:0a4f113b:auth-int:"
        //            + H("INVITE:sip:bob@example.com:" + H("v=0\r\n")))
        let ch = md5_alice(", qop=\"auth-int\"");
        let nc = Nc::FIRST.next().unwrap();
        let a = authorize(
            &ch,
            &alice(),
            b"INVITE",
            b"sip:bob@example.com",
            b"v=0\r\n",
            CN,
            nc,
        )
        .unwrap();
        assert_eq!(a.qop, Some(Qop::AuthInt));
        assert_eq!(a.response, b"647ea9157c51459b02159758f92dac2f");
        let hv = String::from_utf8(a.to_header_value()).unwrap();
        assert!(
            hv.contains(", qop=auth-int, nc=00000002, cnonce=\"0a4f113b\", "),
            "{hv}"
        );

        // Empty body: H("") in HA2.
        let a = authorize(
            &ch,
            &alice(),
            b"INVITE",
            b"sip:bob@example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.response, b"3b4657d0a7658fb09e295951330b9a1b");

        // Both offered (auth-int first): auth is chosen, the C module's prefix bug is gone.
        let ch = md5_alice(", qop=\"auth-int,auth\"");
        let a = authorize(
            &ch,
            &alice(),
            b"INVITE",
            b"sip:bob@example.com",
            b"v=0\r\n",
            CN,
            nc,
        )
        .unwrap();
        assert_eq!(a.qop, Some(Qop::Auth));
    }

    #[test]
    fn ha1_mode() {
        let ch = md5_alice("");
        for (family, hex) in [
            (Some(HashFamily::Md5), "a0bbf6034b8565747c15ee9850d9215a"),
            (None, "a0bbf6034b8565747c15ee9850d9215a"),
            (None, "A0BBF6034B8565747C15EE9850D9215A"),
        ] {
            let creds = Credentials {
                username: Cow::Borrowed(b"alice"),
                realm: Cow::Borrowed(b"sip.example.com"),
                secret: Secret::Ha1 {
                    family,
                    hex: hex.as_bytes().into(),
                },
            };
            let a = authorize(
                &ch,
                &creds,
                b"REGISTER",
                b"sip:sip.example.com",
                b"",
                CN,
                Nc::FIRST,
            )
            .unwrap();
            assert_eq!(a.response, b"b2128a6a4e97e2945f44b3a35125a481");
        }
        // SHA-256 HA1 (python3 sha256 of "alice:sip.example.com:secret").
        let ch256 = md5_alice(", algorithm=SHA-256");
        let creds = Credentials {
            username: Cow::Borrowed(b"alice"),
            realm: Cow::Borrowed(b""),
            secret: Secret::Ha1 {
                family: None,
                hex: Cow::Borrowed(
                    b"03d98b60177c9b919ba6998a126e370face2c50fb9e27767af8294541954d6ef",
                ),
            },
        };
        let a = authorize(
            &ch256,
            &creds,
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(
            a.response,
            b"b02c1aab5735bf98008cf67a8c6d7415873fb24455b6b497ce671cd78dc41d95".to_vec()
        );
    }

    #[test]
    fn ha1_mismatch_errors() {
        let ch256 = md5_alice(", algorithm=SHA-256");
        let md5_ha1 = b"a0bbf6034b8565747c15ee9850d9215a".to_vec();
        let mk = |family, hex: &[u8]| Credentials {
            username: Cow::Borrowed(b"alice"),
            realm: Cow::Borrowed(b""),
            secret: Secret::Ha1 {
                family,
                hex: hex.to_vec().into(),
            },
        };
        fn run<'a>(
            ch: &'a DigestChallenge<'_>,
            c: &Credentials<'_>,
        ) -> Result<Authorization<'a>, DigestError> {
            authorize(ch, c, b"REGISTER", b"sip:x", b"", CN, Nc::FIRST)
        }
        assert_eq!(
            run(&ch256, &mk(Some(HashFamily::Md5), &md5_ha1)),
            Err(DigestError::Ha1Family {
                have: HashFamily::Md5,
                need: Algorithm::Sha256
            })
        );
        assert_eq!(
            run(&ch256, &mk(None, &md5_ha1)),
            Err(DigestError::Ha1Length {
                algorithm: Algorithm::Sha256,
                expected: 64,
                got: 32
            })
        );
        let ch = md5_alice("");
        for short in [&b""[..], b"abc", &md5_ha1[..31]] {
            assert!(matches!(
                run(&ch, &mk(None, short)),
                Err(DigestError::Ha1Length { expected: 32, .. })
            ));
        }
        let mut long = md5_ha1.clone();
        long.push(b'0');
        assert!(matches!(
            run(&ch, &mk(None, &long)),
            Err(DigestError::Ha1Length { .. })
        ));
        assert_eq!(
            run(&ch, &mk(None, b"g0bbf6034b8565747c15ee9850d9215a")),
            Err(DigestError::Ha1NotHex)
        );
        let e = run(&ch256, &mk(Some(HashFamily::Md5), &md5_ha1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "HA1 is MD5 but the challenge asks for SHA-256"
        );
    }

    #[test]
    fn userhash_md5() {
        // python3: md5("alice:sip.example.com")
        let ch = md5_alice(", qop=auth, userhash=TRUE");
        let a = authorize(
            &ch,
            &alice(),
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(&a.username[..], b"e47b5c7042994e0f80e5f60481d9d726");
        assert!(a.userhash);
        // The response still uses the clear username in HA1 (RFC 7616 §3.4.4).
        let ch_plain = md5_alice(", qop=auth");
        let plain = authorize(
            &ch_plain,
            &alice(),
            b"REGISTER",
            b"sip:sip.example.com",
            b"",
            CN,
            Nc::FIRST,
        )
        .unwrap();
        assert_eq!(a.response, plain.response);
    }

    #[test]
    fn realm_and_input_checks() {
        let ch = md5_alice(", qop=auth");
        let other = pw("alice", "Sip.Example.Com", "secret");
        let run = |c: &Credentials, uri: &'static [u8], cnonce: &'static [u8]| {
            authorize(&ch, c, b"INVITE", uri, b"", cnonce, Nc::FIRST)
        };
        assert_eq!(run(&other, b"sip:x", CN), Err(DigestError::RealmMismatch));
        // Empty realm in the credentials: any realm, the challenge's is used.
        let any = pw("alice", "", "secret");
        assert_eq!(run(&any, b"sip:x", CN).unwrap().realm, b"sip.example.com");
        assert_eq!(
            run(&alice(), b"sip:x\r\nX-Evil: 1", CN),
            Err(DigestError::ControlCharacter { field: "uri" })
        );
        let evil = pw("al\nice", "", "secret");
        assert_eq!(
            run(&evil, b"sip:x", CN),
            Err(DigestError::ControlCharacter { field: "username" })
        );
        for bad in [&b""[..], b"a b", b"a\"b", b"a\\b", b"\xff"] {
            assert_eq!(run(&alice(), b"sip:x", bad), Err(DigestError::BadCnonce));
        }
    }

    #[test]
    fn printed_values_are_escaped() {
        let ch =
            parse_challenge(b"Digest realm=\"a\\\"b\", nonce=\"n\\\\x\", opaque=\"\", qop=auth")
                .unwrap();
        assert_eq!(&ch.realm[..], b"a\"b");
        assert_eq!(&ch.nonce[..], b"n\\x");
        let creds = pw("bo\"b", "", "pw");
        let a = authorize(&ch, &creds, b"MESSAGE", b"sip:a@b", b"", CN, Nc::FIRST).unwrap();
        let hv = String::from_utf8(a.to_header_value()).unwrap();
        assert!(
            hv.starts_with(
                "Digest username=\"bo\\\"b\", realm=\"a\\\"b\", nonce=\"n\\\\x\", \
                 uri=\"sip:a@b\", opaque=\"\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", "
            ),
            "{hv}"
        );
        assert!(
            String::from_utf8(a.to_header_line(HeaderKind::ProxyAuthorization))
                .unwrap()
                .starts_with("Proxy-Authorization: Digest ")
        );
    }

    #[test]
    fn nc_counter() {
        assert_eq!(&Nc::FIRST.to_hex(), b"00000001");
        assert_eq!(Nc::default(), Nc::FIRST);
        assert_eq!(Nc::new(0), None);
        assert_eq!(Nc::new(10).unwrap().to_string(), "0000000a");
        assert_eq!(&Nc::new(u32::MAX).unwrap().to_hex(), b"ffffffff");
        assert_eq!(Nc::new(u32::MAX).unwrap().next(), None);
        assert_eq!(Nc::FIRST.next().unwrap().value(), 2);
    }

    #[test]
    fn cnonce_generator() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = generate_cnonce(&mut rng);
        let b = generate_cnonce(&mut rng);
        assert_eq!(a.len(), 2 * CNONCE_BYTES);
        assert!(
            a.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        );
        assert_ne!(a, b);
        // Usable as-is in authorize.
        let ch = md5_alice(", qop=auth");
        assert!(authorize(&ch, &alice(), b"INVITE", b"sip:x", b"", &a, Nc::FIRST).is_ok());
    }

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::from_token(b"md5"), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::from_token(b"sha-256-SESS"),
            Some(Algorithm::Sha256Sess)
        );
        assert_eq!(
            Algorithm::from_token(b"sha-512-256"),
            Some(Algorithm::Sha512_256)
        );
        assert_eq!(Algorithm::from_token(b"SHA-1"), None);
        assert_eq!(Algorithm::from_token(b"SHA-512"), None);
        assert_eq!(Algorithm::from_token(b""), None);
        assert_eq!(Algorithm::default(), Algorithm::Md5);
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(a.as_str().as_bytes()), Some(a));
            assert_eq!(a.family().h(&[b"x"]).len(), a.family().hex_len());
        }
        assert_eq!(Algorithm::Sha512_256Sess.to_string(), "SHA-512-256-sess");
    }

    #[test]
    fn credential_modparam() {
        let c = parse_credential(b"alice:sip.example.com:secret").unwrap();
        assert_eq!(
            (&c.user[..], &c.realm[..], &c.password[..]),
            (&b"alice"[..], &b"sip.example.com"[..], &b"secret"[..])
        );
        let c = parse_credential(b"  alice :\tsip.example.com : secret \n").unwrap();
        assert_eq!(
            (&c.user[..], &c.realm[..], &c.password[..]),
            (&b"alice"[..], &b"sip.example.com"[..], &b"secret"[..])
        );
        // Extra colons belong to the password, as in C.
        let c = parse_credential(b"u:r:a:b:c").unwrap();
        assert_eq!(c.password, b"a:b:c");
        // A realm with a port cannot be configured: C splits at its first ':'.
        let c = parse_credential(b"u:host:5060:pw").unwrap();
        assert_eq!(
            (&c.realm[..], &c.password[..]),
            (&b"host"[..], &b"5060:pw"[..])
        );
        for bad in [
            &b""[..],
            b"   ",
            b"alice",
            b"alice:",
            b"alice:realm",
            b"alice:realm:",
            b"alice:realm:  ",
            b":realm:pw",
            b"alice::pw",
            b"alice:realm:pw extra",
            b"al ice:realm:pw",
            b"alice:re alm:pw",
            b"alice:realm:p\0w",
        ] {
            assert!(
                parse_credential(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            !format!("{:?}", parse_credential(b"u:r:topsecret").unwrap()).contains("topsecret")
        );
    }

    #[test]
    fn credential_lookup() {
        let list: Vec<Credential> = [&b"a:realm1:p1"[..], b"b:realm2:p2", b"c:realm1:p3"]
            .iter()
            .map(|s| parse_credential(s).unwrap())
            .collect();
        // Last configured wins for a shared realm (C prepends to its list).
        assert_eq!(find_credential(&list, b"realm1").unwrap().user, b"c");
        assert_eq!(find_credential(&list, b"realm2").unwrap().user, b"b");
        // Case-sensitive, exact.
        assert!(find_credential(&list, b"Realm1").is_none());
        assert!(find_credential(&list, b"realm").is_none());
        // HA1 mode is per call, never sticky.
        let c = &list[0];
        assert!(matches!(
            c.to_credentials(true).secret,
            Secret::Ha1 { family: None, .. }
        ));
        assert!(matches!(
            c.to_credentials(false).secret,
            Secret::Password(_)
        ));
        assert!(!format!("{:?}", c.to_credentials(false)).contains("p1"));
    }
}
