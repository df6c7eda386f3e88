//! `uac_auth()` / `uac_auth(mode)` / `uac_auth_mode(mode)` (admin guide 4.7):
//! answer the 401/407 of the failed branch with `Authorization` /
//! `Proxy-Authorization` headers added to the request, so that the next
//! `t_relay()` in the failure route sends them.
//!
//! The decision (which challenges, which credentials, which headers) is the
//! pure [`answer_challenges`]; the Kamailio side ([`uac_auth`]) gathers its
//! inputs from tm and the message and applies the result like the C module:
//! R-URI := the branch URI, one lump before the end of the headers, then the
//! `FL_UAC_AUTH` mark and the dialog module's CSeq hook.
//!
//! Better than C 5.6.3: every RFC 7616/8760 algorithm and qop (via
//! `sip::digest`), all challenge headers of the reply considered (one answer
//! per realm, proxy and UAS challenges in the same retry), random cnonces, and
//! the HA1 mode applies to one call only.

use std::borrow::Cow;
use std::fmt;

use crate::sip::ParseError;
use crate::sip::auth_header::{DigestChallenge, HeaderKind, challenges_by_realm, preferred};
use crate::sip::digest::{Algorithm, Credentials, DigestError, Hex, Nc, authorize};

/// `UACAUTH_MODE_HA1` of the C module: the password is an HA1 hex string.
pub const MODE_HA1: i32 = 1;

/// Why `uac_auth` failed; every variant maps to the script code -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The transaction or its failed branch could not be read (C wording).
    Branch(String),
    /// The branch's final reply is neither 401 nor 407.
    NotAuthReply(i32),
    /// A 401 without WWW-Authenticate, or a 407 without Proxy-Authenticate.
    NoAuthHeader(&'static str),
    /// No challenge could be read or has an algorithm we support.
    NoUsableChallenge(Vec<ParseError>),
    /// No credentials for the realm(s) of the challenges.
    NoCredential(Vec<u8>),
    /// The digest could not be computed for a realm (e.g. an MD5 HA1 against
    /// a SHA-256 challenge).
    Digest { realm: Vec<u8>, err: DigestError },
    /// The request could not be changed (lump, R-URI, parsing).
    Apply(String),
    /// The dialog module's CSeq update hook failed.
    CseqUpdate,
}

fn lossy(v: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(v)
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Branch(why) => f.write_str(why),
            AuthError::NotAuthReply(code) => {
                write!(f, "reply is not an auth request (code {code})")
            }
            AuthError::NoAuthHeader(name) => write!(f, "reply has no auth hdr ({name})"),
            AuthError::NoUsableChallenge(errs) => {
                f.write_str("failed to parse auth hdr body")?;
                for (i, e) in errs.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{}", e.why)?;
                }
                Ok(())
            }
            AuthError::NoCredential(realm) => {
                write!(f, "no credential for realm \"{}\"", lossy(realm))
            }
            AuthError::Digest { realm, err } => write!(
                f,
                "failed to build authorization hdr for realm \"{}\": {err}",
                lossy(realm)
            ),
            AuthError::Apply(why) => write!(f, "failed to apply changes: {why}"),
            AuthError::CseqUpdate => f.write_str("dialog CSeq update failed"),
        }
    }
}

impl std::error::Error for AuthError {}

/// What the failed branch received and what the retry will be.
pub struct Inputs<'a, 'v> {
    /// Final reply code of the branch.
    pub code: i32,
    /// Every WWW-Authenticate value of the reply, top to bottom.
    pub www: &'a [&'v [u8]],
    /// Every Proxy-Authenticate value of the reply, top to bottom.
    pub proxy: &'a [&'v [u8]],
    /// Method of the request being retried.
    pub method: &'a [u8],
    /// Digest-URI: the branch's request URI (as C: `t->uac[branch].uri`).
    pub uri: &'a [u8],
    /// Request body (hashed for `qop=auth-int` only).
    pub body: &'a [u8],
}

/// One header that will be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<'a> {
    pub kind: HeaderKind,
    /// Borrowed from the challenge header.
    pub realm: Cow<'a, [u8]>,
    pub algorithm: Algorithm,
}

/// The headers to add, and notes on what was skipped (for debug logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// `Name: value\r\n` lines, in the order the challenges were answered.
    pub lines: Vec<u8>,
    pub answered: Vec<Answered<'a>>,
    pub skipped: Vec<String>,
}

/// Answers the challenges of a 401/407 (pure: no Kamailio).
///
/// - The reply code picks the header that must be present (401 →
///   WWW-Authenticate, 407 → Proxy-Authenticate), as in C.
/// - Both header kinds are answered when present (RFC 3261 §22.3: a forking
///   proxy aggregates the challenges of several branches into one reply).
/// - Per kind and realm, one header: among the realm's challenges, the
///   strongest algorithm its credentials can compute, the topmost among equals
///   ([`preferred`]: SHA-256 over MD5 with a password, MD5 with an MD5 HA1).
/// - `lookup(realm)` gives the credentials for a realm; a realm without
///   credentials is skipped; the call fails when nothing can be answered.
/// - `cnonce()` is called once per answered challenge.
pub fn answer_challenges<'v, 'c>(
    inp: &Inputs<'_, 'v>,
    lookup: &mut dyn FnMut(&[u8]) -> Option<Credentials<'c>>,
    cnonce: &mut dyn FnMut() -> Hex,
) -> Result<Answer<'v>, AuthError> {
    let code = u16::try_from(inp.code).ok();
    let primary = code
        .and_then(HeaderKind::for_reply_code)
        .ok_or(AuthError::NotAuthReply(inp.code))?;
    let (first, second) = match primary {
        HeaderKind::Authorization => (inp.www, inp.proxy),
        HeaderKind::ProxyAuthorization => (inp.proxy, inp.www),
    };
    if first.is_empty() {
        return Err(AuthError::NoAuthHeader(primary.challenge_name()));
    }
    let other = match primary {
        HeaderKind::Authorization => HeaderKind::ProxyAuthorization,
        HeaderKind::ProxyAuthorization => HeaderKind::Authorization,
    };

    let mut out = Answer {
        lines: Vec::new(),
        answered: Vec::new(),
        skipped: Vec::new(),
    };
    let mut parse_errors = Vec::new();
    let mut first_failure: Option<AuthError> = None;
    let mut any_challenge = false;

    for (kind, values) in [(primary, first), (other, second)] {
        let (groups, errs) = challenges_by_realm(values);
        for e in &errs {
            out.skipped
                .push(format!("{}: {}", kind.challenge_name(), e.why));
        }
        if kind == primary {
            parse_errors = errs;
        }
        for offers in groups {
            any_challenge = true;
            match answer_realm(offers, kind, inp, lookup, cnonce, &mut out.lines) {
                Ok((realm, algorithm)) => {
                    out.answered.push(Answered {
                        kind,
                        realm,
                        algorithm,
                    });
                }
                Err(e) => {
                    out.skipped.push(format!("{}: {e}", kind.challenge_name()));
                    first_failure.get_or_insert(e);
                }
            }
        }
    }

    if out.answered.is_empty() {
        return Err(match first_failure {
            Some(e) => e,
            None if !any_challenge => AuthError::NoUsableChallenge(parse_errors),
            None => AuthError::NoUsableChallenge(Vec::new()),
        });
    }
    Ok(out)
}

/// Answers one realm's challenges (`offers`, top to bottom, all of that realm) with the
/// one its credentials prefer; returns the realm and the algorithm used.
fn answer_realm<'v, 'c>(
    offers: Vec<DigestChallenge<'v>>,
    kind: HeaderKind,
    inp: &Inputs<'_, '_>,
    lookup: &mut dyn FnMut(&[u8]) -> Option<Credentials<'c>>,
    cnonce: &mut dyn FnMut() -> Hex,
    lines: &mut Vec<u8>,
) -> Result<(Cow<'v, [u8]>, Algorithm), AuthError> {
    let realm = match offers.first() {
        Some(ch) => ch.realm.to_vec(),
        None => return Err(AuthError::NoUsableChallenge(Vec::new())),
    };
    let creds = lookup(&realm).ok_or_else(|| AuthError::NoCredential(realm.clone()))?;
    let Some(ch) = preferred(offers, |a| creds.secret.preference(a)) else {
        return Err(AuthError::NoUsableChallenge(Vec::new()));
    };
    let cn = cnonce();
    let auth = authorize(&ch, &creds, inp.method, inp.uri, inp.body, &cn, Nc::FIRST)
        .map_err(|err| AuthError::Digest { realm, err })?;
    auth.write_header_line(kind, lines);
    Ok((ch.realm, ch.algorithm))
}

#[cfg(feature = "kamailio")]
pub use host_side::{init, uac_auth};

#[cfg(feature = "kamailio")]
mod host_side {
    use std::cell::OnceCell;
    use std::sync::OnceLock;

    use super::{AuthError, Inputs, MODE_HA1, answer_challenges};
    use crate::host::HostError;
    use crate::host::log::Bytes;
    use crate::host::msg::SipMsg;
    use crate::host::msg::hdr_add;
    use crate::host::script::pv::PvSpec;
    use crate::host::tm;
    use crate::sip::digest::{
        Credential, Credentials, Secret, find_credential, generate_cnonce, parse_credential,
    };
    use crate::sip::header::HeaderName;
    use crate::uac::config::Config;
    use crate::uac::rng::with_rng;

    /// The `credential` modparam entries, parsed once in mod_init.
    static CREDENTIALS: OnceLock<Vec<Credential>> = OnceLock::new();

    /// The auth_*_avp PV specs, parsed once in mod_init.
    struct AvpSpecs {
        username: PvSpec,
        realm: PvSpec,
        password: PvSpec,
    }

    thread_local! {
        // Kamailio processes are single-threaded and forked from the thread
        // that ran mod_init, so every worker inherits this parsed copy.
        static AVPS: OnceCell<AvpSpecs> = const { OnceCell::new() };
    }

    /// mod_init: parse the credentials and the auth PVs once.
    pub fn init(cfg: &Config) -> Result<(), String> {
        let mut creds = Vec::with_capacity(cfg.credentials.len());
        for raw in &cfg.credentials {
            let c = parse_credential(raw)
                .map_err(|e| format!("invalid modparam \"credential\": {}", e.why))?;
            creds.push(c);
        }
        let _ = CREDENTIALS.set(creds);
        if let Some(a) = &cfg.auth_avps {
            let parse = |name: &str, text: &[u8]| {
                PvSpec::parse(text).ok_or_else(|| {
                    format!(
                        "invalid modparam \"{name}\": malformed PV definition '{}'",
                        Bytes(text)
                    )
                })
            };
            let specs = AvpSpecs {
                username: parse("auth_username_avp", &a.username)?,
                realm: parse("auth_realm_avp", &a.realm)?,
                password: parse("auth_password_avp", &a.password)?,
            };
            AVPS.with(|cell| {
                let _ = cell.set(specs);
            });
        }
        Ok(())
    }

    /// The C module's `get_avp_credential`: an empty or $null realm PV means
    /// "any realm"; a set realm must equal the challenge's; username and
    /// password must be non-empty.
    fn avp_credentials(msg: &mut SipMsg, realm: &[u8], ha1: bool) -> Option<Credentials<'static>> {
        AVPS.with(|cell| {
            let a = cell.get()?;
            let want = a.realm.get_bytes(msg).unwrap_or_default();
            if !want.is_empty() && want != realm {
                return None;
            }
            let username = a.username.get_bytes(msg).filter(|u| !u.is_empty())?;
            let password = a.password.get_bytes(msg).filter(|p| !p.is_empty())?;
            Some(Credentials {
                username: username.into(),
                realm: want.into(),
                secret: if ha1 {
                    Secret::Ha1 {
                        family: None,
                        hex: password.into(),
                    }
                } else {
                    Secret::Password(password.into())
                },
            })
        })
    }

    fn log_branch_error(e: HostError) -> AuthError {
        match e {
            HostError::FakedReply | HostError::BranchLayout => kerr!("{e}"),
            _ => kcrit!("{e}"),
        }
        AuthError::Branch(e.to_string())
    }

    /// `uac_auth_mode(msg, mode)` of the C module; `Ok` means the headers
    /// were added (script code 1).
    pub fn uac_auth(msg: &mut SipMsg, mode: i32) -> Result<(), AuthError> {
        let ha1 = mode & MODE_HA1 != 0;
        let mut branch = tm::failure::failed_branch().map_err(log_branch_error)?;
        let code = branch.code();
        kdbg!("picked branch {}, code {code}", branch.index());

        let (reply, uri) = branch.reply_and_uri();
        let (www, proxy) = {
            let Some(rpl) = reply else {
                return Err(log_branch_error(HostError::EmptyReply));
            };
            match hdr_add::headers_of(
                rpl,
                &[HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate],
            ) {
                Ok(fields) => {
                    let of = |name| -> Vec<&[u8]> {
                        fields.iter().filter(|f| f.0 == name).map(|f| f.1).collect()
                    };
                    (
                        of(HeaderName::WwwAuthenticate),
                        of(HeaderName::ProxyAuthenticate),
                    )
                }
                Err(_) => {
                    kerr!("failed to parse reply");
                    return Err(AuthError::Apply("failed to parse reply".into()));
                }
            }
        };
        let method = hdr_add::request_method(msg).map_err(|e| {
            kerr!("failed to get the request method: {e}");
            AuthError::Apply(e.to_string())
        })?;
        let body = hdr_add::body(msg).unwrap_or_default();

        let inputs = Inputs {
            code,
            www: &www,
            proxy: &proxy,
            method: &method,
            uri,
            body: &body,
        };
        let creds = CREDENTIALS.get().map(Vec::as_slice).unwrap_or(&[]);
        let result = {
            let mut lookup = |realm: &[u8]| {
                avp_credentials(msg, realm, ha1)
                    .or_else(|| find_credential(creds, realm).map(|c| c.to_credentials(ha1)))
            };
            let mut cnonce = || with_rng(generate_cnonce);
            answer_challenges(&inputs, &mut lookup, &mut cnonce)
        };
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                match &e {
                    AuthError::NoCredential(_) => kinfo!("{e}"),
                    AuthError::NotAuthReply(_) | AuthError::NoAuthHeader(_) => {
                        kerr!("{e}");
                        kerr!("failed to extract authenticate hdr");
                    }
                    _ => kerr!("{e}"),
                }
                return Err(e);
            }
        };
        for s in &answer.skipped {
            kdbg!("challenge skipped: {s}");
        }
        for a in &answer.answered {
            kdbg!(
                "answering {} challenge of realm \"{}\" with {}",
                a.kind.challenge_name(),
                Bytes(&a.realm),
                a.algorithm.as_str()
            );
        }

        let apply = |msg: &mut SipMsg| -> Result<(), HostError> {
            hdr_add::set_request_uri(msg, uri)?;
            hdr_add::append_header_lines(msg, &answer.lines)
        };
        if let Err(e) = apply(msg) {
            kerr!("failed to apply changes: {e}");
            return Err(AuthError::Apply(e.to_string()));
        }
        if let Err(e) = branch.mark_uac_auth(msg) {
            match e {
                HostError::CseqHook(rc) => {
                    kerr!("dialog CSeq update failed after uac_auth ({rc})")
                }
                e => kerr!("dialog CSeq update failed after uac_auth: {e}"),
            }
            return Err(AuthError::CseqUpdate);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::Secret;

    fn creds<'a>(user: &'a str, realm: &'a str, pw: &'a str) -> Credentials<'a> {
        Credentials {
            username: user.as_bytes().into(),
            realm: realm.as_bytes().into(),
            secret: Secret::Password(pw.as_bytes().into()),
        }
    }

    fn run<'v>(
        code: i32,
        www: &[&'v str],
        proxy: &[&'v str],
        lookup: &mut dyn FnMut(&[u8]) -> Option<Credentials<'static>>,
    ) -> Result<Answer<'v>, AuthError> {
        let www: Vec<&[u8]> = www.iter().map(|s| s.as_bytes()).collect();
        let proxy: Vec<&[u8]> = proxy.iter().map(|s| s.as_bytes()).collect();
        let inp = Inputs {
            code,
            www: &www,
            proxy: &proxy,
            method: b"INVITE",
            uri: b"sip:bob@example.com",
            body: b"",
        };
        let mut n = 0;
        let mut cnonce = || {
            n += 1;
            Hex::from_slice(format!("cn{n}").as_bytes())
        };
        answer_challenges(&inp, lookup, &mut cnonce)
    }

    fn alice(realm: &[u8]) -> Option<Credentials<'static>> {
        (realm == b"a.com").then(|| creds("alice", "a.com", "pw"))
    }

    #[test]
    fn answers_401_with_authorization() {
        let a = run(
            401,
            &["Digest realm=\"a.com\", nonce=\"n1\", qop=\"auth\""],
            &[],
            &mut alice,
        )
        .unwrap();
        let s = String::from_utf8(a.lines).unwrap();
        assert!(s.starts_with("Authorization: Digest username=\"alice\", realm=\"a.com\""));
        assert!(s.contains("qop=auth, nc=00000001, cnonce=\"cn1\""));
        assert!(s.ends_with("algorithm=MD5\r\n"));
        assert_eq!(s.matches("\r\n").count(), 1);
    }

    #[test]
    fn answers_407_and_aggregated_www_in_one_retry() {
        let a = run(
            407,
            &["Digest realm=\"a.com\", nonce=\"w\""],
            &["Digest realm=\"a.com\", nonce=\"p\", algorithm=SHA-256"],
            &mut alice,
        )
        .unwrap();
        let s = String::from_utf8(a.lines).unwrap();
        let lines: Vec<&str> = s.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("Proxy-Authorization: Digest"));
        assert!(lines[0].contains("nonce=\"p\"") && lines[0].ends_with("algorithm=SHA-256"));
        assert!(lines[1].starts_with("Authorization: Digest") && lines[1].contains("nonce=\"w\""));
    }

    #[test]
    fn one_header_per_realm_strongest_supported() {
        let mut both = |r: &[u8]| match r {
            b"a.com" => Some(creds("alice", "a.com", "pw")),
            b"b.com" => Some(creds("bob", "b.com", "pw2")),
            _ => None,
        };
        let a = run(
            401,
            &[
                "Digest realm=\"a.com\", nonce=\"x\", algorithm=SHA-1024",
                "Digest realm=\"a.com\", nonce=\"y\", algorithm=SHA-512-256, Digest realm=\"b.com\", nonce=\"z\"",
                "Digest realm=\"a.com\", nonce=\"w\", algorithm=MD5",
            ],
            &[],
            &mut both,
        )
        .unwrap();
        assert_eq!(a.answered.len(), 2);
        assert_eq!(a.answered[0].algorithm, Algorithm::Sha512_256);
        assert_eq!(&a.answered[1].realm[..], b"b.com");
        assert!(!a.skipped.is_empty());
    }

    #[test]
    fn refusals() {
        assert_eq!(
            run(
                403,
                &["Digest realm=\"a.com\", nonce=\"n\""],
                &[],
                &mut alice
            )
            .unwrap_err(),
            AuthError::NotAuthReply(403)
        );
        assert_eq!(
            run(
                401,
                &[],
                &["Digest realm=\"a.com\", nonce=\"n\""],
                &mut alice
            )
            .unwrap_err(),
            AuthError::NoAuthHeader("WWW-Authenticate")
        );
        assert_eq!(
            run(
                401,
                &["Digest realm=\"b.com\", nonce=\"n\""],
                &[],
                &mut alice
            )
            .unwrap_err(),
            AuthError::NoCredential(b"b.com".to_vec())
        );
        for bad in [
            "Digest realm=\"a.com\"",
            "Digest realm=\"a.com\", nonce=\"n",
            "Digest realm=\"a.com\", nonce=\"n\", algorithm=SHA-1024",
            "Basic realm=\"a.com\"",
        ] {
            let e = run(401, &[bad], &[], &mut alice).unwrap_err();
            assert!(
                matches!(e, AuthError::NoUsableChallenge(ref v) if !v.is_empty()),
                "{bad}: {e:?}"
            );
            assert!(e.to_string().starts_with("failed to parse auth hdr body: "));
        }
        let huge = format!("Digest realm=\"a.com\", nonce=\"{}\"", "n".repeat(20_000));
        assert!(matches!(
            run(401, &[&huge], &[], &mut alice).unwrap_err(),
            AuthError::NoUsableChallenge(_)
        ));
    }

    /// A server offering SHA-256 and MD5 (in either order): a password answers SHA-256,
    /// an MD5 HA1 answers MD5 instead of failing.
    #[test]
    fn sha256_preferred_md5_for_an_md5_ha1() {
        let sha = "Digest realm=\"a.com\", nonce=\"s\", algorithm=SHA-256, qop=\"auth\"";
        let md5 = "Digest realm=\"a.com\", nonce=\"m\", algorithm=MD5, qop=\"auth\"";
        let mut ha1 = |_: &[u8]| {
            Some(Credentials {
                username: Cow::Borrowed(b"alice"),
                realm: Cow::Borrowed(b""),
                secret: Secret::Ha1 {
                    family: None,
                    hex: Cow::Borrowed(b"0123456789abcdef0123456789abcdef"),
                },
            })
        };
        for order in [[sha, md5], [md5, sha]] {
            let a = run(401, &order, &[], &mut alice).unwrap();
            assert_eq!(a.answered.len(), 1);
            assert_eq!(a.answered[0].algorithm, Algorithm::Sha256);
            let line = String::from_utf8(a.lines.clone()).unwrap();
            assert!(line.contains("nonce=\"s\""), "{line}");
            let a = run(401, &order, &[], &mut ha1).unwrap();
            assert_eq!(a.answered[0].algorithm, Algorithm::Md5);
            let line = String::from_utf8(a.lines.clone()).unwrap();
            assert!(
                line.contains("nonce=\"m\"") && line.contains("algorithm=MD5"),
                "{line}"
            );
        }
    }

    #[test]
    fn md5_ha1_cannot_answer_sha256() {
        let mut ha1 = |_: &[u8]| {
            Some(Credentials {
                username: Cow::Borrowed(b"alice"),
                realm: Cow::Borrowed(b""),
                secret: Secret::Ha1 {
                    family: None,
                    hex: Cow::Borrowed(b"0123456789abcdef0123456789abcdef"),
                },
            })
        };
        let e = run(
            401,
            &["Digest realm=\"a.com\", nonce=\"n\", algorithm=SHA-256"],
            &[],
            &mut ha1,
        )
        .unwrap_err();
        assert!(matches!(e, AuthError::Digest { .. }));
        assert!(e.to_string().contains("needs 64 hex digits"), "{e}");
    }
}
