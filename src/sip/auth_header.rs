//! `WWW-Authenticate` / `Proxy-Authenticate` parsing and `Authorization` /
//! `Proxy-Authorization` printing for Digest (RFC 3261 §20.27, §20.44, §22, §25.1;
//! RFC 7616 §3.3-§3.4; RFC 8760 §2.4).
//!
//! Grammar accepted for a header field value (RFC 7235 §2.1 / §4.1, RFC 3261 §25.1):
//!
//! ```text
//! value     = 1#challenge                       ; empty list elements tolerated (RFC 7230 §7)
//! challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param = token LWS "=" LWS ( token / quoted-string )
//! ```
//!
//! LWS includes folded lines (CRLF followed by SP/HT, RFC 3261 §7.3.1). Inside a
//! quoted-string, quoted-pairs are unescaped; the stored values are the `unq()` form that
//! RFC 7616 §3.4 hashes, and the printers escape `"` and `\` again.
//!
//! Tolerances beyond the strict grammar, each seen in deployed servers: unquoted values may
//! hold any visible byte except `,` and `"` (e.g. base64 nonces), `algorithm` and `qop` may
//! be quoted or not, `stale`/`userhash` values other than `true` mean false (RFC 2617
//! §3.2.1). Input is bytes, not necessarily UTF-8; CTLs other than folding are refused.

use super::ParseError;
use super::digest_types::{Algorithm, Hex, Nc, Qop};
use super::header::HeaderName;
use super::lex::{self, LexError, QuotedPair, is_bare_value, is_tchar, is_token68, push_quoted};
use std::borrow::Cow;

/// Largest header field value we look at.
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Most auth-params in one header field value (over all its challenges).
pub const MAX_PARAMS: usize = 64;

const WHAT: &str = "Authenticate header";

fn err(why: &'static str) -> ParseError {
    ParseError::new(WHAT, why)
}

/// A Digest challenge (RFC 7616 §3.3), values unquoted and unescaped.
///
/// Values borrow the header field value they were parsed from, and are owned only where
/// unescaping changed them; [`DigestChallenge::into_owned`] detaches one from its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge<'a> {
    pub realm: Cow<'a, [u8]>,
    pub nonce: Cow<'a, [u8]>,
    pub opaque: Option<Cow<'a, [u8]>>,
    pub stale: bool,
    /// MD5 when the parameter is absent (RFC 7616 §3.3).
    pub algorithm: Algorithm,
    /// Known options in the order offered; empty when the challenge had no `qop`
    /// (RFC 2069 compatibility, answered without qop).
    pub qop: QopOptions,
    pub userhash: bool,
    pub domain: Option<Cow<'a, [u8]>>,
    pub charset: Option<Cow<'a, [u8]>>,
    /// Unknown auth-params, names as received, values unquoted (RFC 7616 §3.3: ignored).
    pub other: Vec<AuthParam<'a>>,
}

/// An auth-param as received: name, unquoted value.
pub type AuthParam<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

fn owned(v: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
    Cow::Owned(v.into_owned())
}

impl DigestChallenge<'_> {
    /// A copy that no longer borrows the header value (to keep it past the reply).
    pub fn into_owned(self) -> DigestChallenge<'static> {
        DigestChallenge {
            realm: owned(self.realm),
            nonce: owned(self.nonce),
            opaque: self.opaque.map(owned),
            stale: self.stale,
            algorithm: self.algorithm,
            qop: self.qop,
            userhash: self.userhash,
            domain: self.domain.map(owned),
            charset: self.charset.map(owned),
            other: self
                .other
                .into_iter()
                .map(|(n, v)| (owned(n), owned(v)))
                .collect(),
        }
    }
}

/// The known `qop` options of a challenge, deduplicated, in the order offered. Both fit
/// inline, so a parsed challenge needs no allocation for them.
#[derive(Clone, Copy)]
pub struct QopOptions {
    offered: [Qop; 2],
    len: u8,
}

impl QopOptions {
    pub const fn new() -> QopOptions {
        QopOptions {
            offered: [Qop::Auth; 2],
            len: 0,
        }
    }

    /// Adds `q` unless already offered.
    pub fn insert(&mut self, q: Qop) {
        if self.contains(&q) {
            return;
        }
        if let Some(slot) = self.offered.get_mut(usize::from(self.len)) {
            *slot = q;
            self.len += 1;
        }
    }
}

impl Default for QopOptions {
    fn default() -> Self {
        QopOptions::new()
    }
}

impl std::ops::Deref for QopOptions {
    type Target = [Qop];
    fn deref(&self) -> &[Qop] {
        &self.offered[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for QopOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for QopOptions {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for QopOptions {}

impl PartialEq<Vec<Qop>> for QopOptions {
    fn eq(&self, other: &Vec<Qop>) -> bool {
        **self == **other
    }
}

impl FromIterator<Qop> for QopOptions {
    fn from_iter<I: IntoIterator<Item = Qop>>(iter: I) -> Self {
        let mut q = QopOptions::new();
        for o in iter {
            q.insert(o);
        }
        q
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips LWS: SP, HT and line folds (CRLF followed by SP/HT). A CR or LF that is not
    /// part of a fold ends the header, so it is refused. Returns whether anything was skipped.
    fn skip_lws(&mut self) -> Result<bool, ParseError> {
        let start = self.pos;
        self.pos = lex::lws_end_strict(self.s, self.pos).map_err(lex_err)?;
        Ok(self.pos != start)
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// A quoted-string starting at `"`; returns the unescaped content. Folds become one SP.
    /// Borrowed when there is nothing to unescape (the usual case).
    fn quoted(&mut self) -> Result<Cow<'a, [u8]>, ParseError> {
        let start = self.pos;
        let end = lex::quoted_end(self.s, start, QuotedPair::NoCtl).map_err(lex_err)?;
        self.pos = end;
        Ok(lex::unquote(&self.s[start + 1..end - 1]))
    }

    /// After an auth-param or a bare scheme: LWS, then end, or `,` plus LWS.
    /// Returns false at the end of input.
    fn list_separator(&mut self) -> Result<bool, ParseError> {
        self.skip_lws()?;
        if self.at_end() {
            return Ok(false);
        }
        if self.peek() != Some(b',') {
            return Err(err("expected ','"));
        }
        self.pos += 1;
        Ok(true)
    }
}

/// This parser's wording of a lexical error.
fn lex_err(e: LexError) -> ParseError {
    err(match e {
        LexError::Unterminated | LexError::PairAtEnd => "unterminated quoted-string",
        LexError::BadPair | LexError::Ctl => "control character",
        LexError::BareCrLf => "CR or LF outside a line fold",
    })
}

/// The auth-params RFC 7616 §3.3 gives a meaning; one bit each in [`ChallengeReader::seen`].
#[derive(Clone, Copy)]
enum KnownParam {
    Realm,
    Nonce,
    Opaque,
    Stale,
    Userhash,
    Domain,
    Charset,
    Algorithm,
    Qop,
}

impl KnownParam {
    fn from_name(name: &[u8]) -> Option<KnownParam> {
        // Lowercased on the stack; no known name is longer than 16 bytes.
        let mut lower = [0u8; 16];
        let l = lower.get_mut(..name.len())?;
        l.copy_from_slice(name);
        l.make_ascii_lowercase();
        Some(match &*l {
            b"realm" => KnownParam::Realm,
            b"nonce" => KnownParam::Nonce,
            b"opaque" => KnownParam::Opaque,
            b"stale" => KnownParam::Stale,
            b"userhash" => KnownParam::Userhash,
            b"domain" => KnownParam::Domain,
            b"charset" => KnownParam::Charset,
            b"algorithm" => KnownParam::Algorithm,
            b"qop" => KnownParam::Qop,
            _ => return None,
        })
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// `"true"`, case-insensitive, is true; any other value is false (RFC 2617 §3.2.1).
fn is_true(v: &[u8]) -> bool {
    v.eq_ignore_ascii_case(b"true")
}

/// One challenge being read: its auth-params are interpreted as the parser meets them, so
/// no list of raw params is built.
struct ChallengeReader<'a> {
    /// RFC 7235 §2.1: auth-scheme is case-insensitive. Params of other schemes are skipped.
    digest: bool,
    token68: bool,
    has_params: bool,
    realm: Option<Cow<'a, [u8]>>,
    nonce: Option<Cow<'a, [u8]>>,
    /// Everything but realm and nonce, which must be checked for presence at the end.
    ch: DigestChallenge<'a>,
    /// [`KnownParam`]s met so far.
    seen: u16,
    /// RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
    duplicate: bool,
    /// The first value we cannot answer (reported after a duplicate, as when the params
    /// were checked for duplicates before being interpreted).
    unusable: Option<&'static str>,
}

impl<'a> ChallengeReader<'a> {
    fn new(scheme: &[u8]) -> ChallengeReader<'a> {
        ChallengeReader {
            digest: scheme.eq_ignore_ascii_case(b"Digest"),
            token68: false,
            has_params: false,
            realm: None,
            nonce: None,
            ch: DigestChallenge {
                realm: Cow::Borrowed(b""),
                nonce: Cow::Borrowed(b""),
                opaque: None,
                stale: false,
                algorithm: Algorithm::Md5,
                qop: QopOptions::new(),
                userhash: false,
                domain: None,
                charset: None,
                other: Vec::new(),
            },
            seen: 0,
            duplicate: false,
            unusable: None,
        }
    }

    fn param(&mut self, name: &'a [u8], val: Cow<'a, [u8]>) {
        self.has_params = true;
        if !self.digest || self.duplicate {
            // The challenge is refused whatever its params say.
            return;
        }
        let Some(known) = KnownParam::from_name(name) else {
            if self
                .ch
                .other
                .iter()
                .any(|(m, _)| m.eq_ignore_ascii_case(name))
            {
                self.duplicate = true;
            } else {
                self.ch.other.push((Cow::Borrowed(name), val));
            }
            return;
        };
        if self.seen & known.bit() != 0 {
            self.duplicate = true;
            return;
        }
        self.seen |= known.bit();
        if self.unusable.is_some() {
            return;
        }
        let ch = &mut self.ch;
        match known {
            KnownParam::Realm => self.realm = Some(val),
            KnownParam::Nonce => self.nonce = Some(val),
            KnownParam::Opaque => ch.opaque = Some(val),
            KnownParam::Stale => ch.stale = is_true(&val),
            KnownParam::Userhash => ch.userhash = is_true(&val),
            KnownParam::Domain => ch.domain = Some(val),
            KnownParam::Charset => ch.charset = Some(val),
            KnownParam::Algorithm => match Algorithm::from_token(&val) {
                Some(a) => ch.algorithm = a,
                None => self.unusable = Some("unsupported algorithm"),
            },
            KnownParam::Qop => {
                // qop-options = quoted list of tokens; unknown ones are ignored (§3.3).
                for tok in val.split(|&b| b == b',') {
                    if let Some(q) = Qop::from_token(tok.trim_ascii()) {
                        ch.qop.insert(q);
                    }
                }
                if ch.qop.is_empty() {
                    self.unusable = Some("qop offers no supported option");
                }
            }
        }
    }

    fn finish(self) -> Result<DigestChallenge<'a>, ParseError> {
        if !self.digest {
            return Err(err("not a Digest challenge"));
        }
        if self.token68 {
            return Err(err("token68 in a Digest challenge"));
        }
        if self.duplicate {
            return Err(err("duplicate auth-param"));
        }
        if let Some(why) = self.unusable {
            return Err(err(why));
        }
        // The C module also refuses empty realm/nonce ("realm or nonce missing").
        let realm = self
            .realm
            .filter(|r| !r.is_empty())
            .ok_or_else(|| err("missing realm"))?;
        let nonce = self
            .nonce
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("missing nonce"))?;
        Ok(DigestChallenge {
            realm,
            nonce,
            ..self.ch
        })
    }
}

/// Reads the challenges of a header field value, handing each to `emit` in order, as a
/// challenge or why it cannot be answered (non-Digest scheme, unknown algorithm, missing
/// realm...). A syntax error fails the whole value, since after one the boundaries of
/// later challenges are unknown: the caller must then drop what was emitted for the value.
fn read_challenges<'a>(
    value: &'a [u8],
    emit: &mut impl FnMut(Result<DigestChallenge<'a>, ParseError>),
) -> Result<(), ParseError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(err("header value too long"));
    }
    let mut c = Cursor { s: value, pos: 0 };
    let mut nparams = 0usize;

    loop {
        // Between challenges: skip LWS and empty list elements.
        c.skip_lws()?;
        while c.peek() == Some(b',') {
            c.pos += 1;
            c.skip_lws()?;
        }
        if c.at_end() {
            break;
        }
        let scheme = c.take_while(is_tchar);
        if scheme.is_empty() {
            return Err(err("expected auth-scheme"));
        }
        let mut ch = ChallengeReader::new(scheme);
        let had_space = c.skip_lws()?;
        if c.at_end() {
            emit(ch.finish());
            break;
        }
        if c.peek() != Some(b',') {
            if !had_space {
                return Err(err("expected space after auth-scheme"));
            }
            // token68 (RFC 7235 §2.1): only right after the scheme, and only if what follows
            // is the end of the value or a list comma. Otherwise rewind and read auth-params.
            let save = c.pos;
            let t = c.take_while(is_token68);
            if !t.is_empty() {
                c.take_while(|b| b == b'=');
                let after = c.pos;
                c.skip_lws()?;
                if c.at_end() || c.peek() == Some(b',') {
                    ch.token68 = true;
                    c.pos = after;
                    let more = c.list_separator()?;
                    emit(ch.finish());
                    if more {
                        continue;
                    }
                    break;
                }
            }
            c.pos = save;
        }

        // #auth-param; a list element of the form `token LWS` not followed by `=` starts
        // the next challenge (`Digest a=1, Digest b=2` in one value).
        let mut after_comma = false;
        loop {
            c.skip_lws()?;
            if c.peek() == Some(b',') {
                c.pos += 1;
                after_comma = true;
                continue;
            }
            if c.at_end() {
                break;
            }
            let elem_start = c.pos;
            let name = c.take_while(is_tchar);
            if name.is_empty() {
                return Err(err("expected auth-param name"));
            }
            c.skip_lws()?;
            if c.peek() != Some(b'=') {
                // Not an auth-param: the next challenge's scheme, or a stray word right after
                // the scheme (refused below).
                c.pos = elem_start;
                break;
            }
            c.pos += 1;
            c.skip_lws()?;
            let val = match c.peek() {
                Some(b'"') => c.quoted()?,
                _ => {
                    let v = c.take_while(is_bare_value);
                    if v.is_empty() {
                        return Err(err("empty auth-param value"));
                    }
                    Cow::Borrowed(v)
                }
            };
            nparams += 1;
            if nparams > MAX_PARAMS {
                return Err(err("too many auth-params"));
            }
            ch.param(name, val);
            if !c.list_separator()? {
                break;
            }
            after_comma = true;
        }
        if !ch.has_params && !c.at_end() && !after_comma {
            // `Digest foo` with neither `=` nor `,`: not a list we can read.
            return Err(err("expected auth-param"));
        }
        emit(ch.finish());
    }
    Ok(())
}

/// Parses one header field value holding exactly one Digest challenge.
///
/// Use [`parse_challenge_list`] or [`select_challenges`] for values that may hold several
/// challenges or other schemes.
pub fn parse_challenge(value: &[u8]) -> Result<DigestChallenge<'_>, ParseError> {
    let mut first = None;
    let mut count = 0usize;
    read_challenges(value, &mut |ch| {
        count += 1;
        if first.is_none() {
            first = Some(ch);
        }
    })?;
    match first {
        None => Err(err("empty header value")),
        Some(_) if count > 1 => Err(err("several challenges in one value")),
        Some(ch) => ch,
    }
}

/// Parses every challenge of one header field value, in order.
///
/// The outer error is a syntax error that makes the whole value unreadable; inner errors
/// are per challenge (non-Digest scheme, unknown algorithm, missing realm...).
pub fn parse_challenge_list(
    value: &[u8],
) -> Result<Vec<Result<DigestChallenge<'_>, ParseError>>, ParseError> {
    let mut list = Vec::new();
    read_challenges(value, &mut |ch| list.push(ch))?;
    Ok(list)
}

/// The challenges to answer, given all `WWW-Authenticate` (or all `Proxy-Authenticate`)
/// header field values of a reply, top to bottom, for a password (which answers every
/// algorithm): see [`select_challenges_for`].
pub fn select_challenges<'a>(values: &[&'a [u8]]) -> Vec<DigestChallenge<'a>> {
    select_challenges_with_errors(values).0
}

/// Like [`select_challenges`], also returning why values or challenges were skipped (for
/// logging).
pub fn select_challenges_with_errors<'a>(
    values: &[&'a [u8]],
) -> (Vec<DigestChallenge<'a>>, Vec<ParseError>) {
    let (groups, skipped) = challenges_by_realm(values);
    let chosen = groups
        .into_iter()
        .filter_map(|g| preferred(g, |a| Some(a.family().strength())))
        .collect();
    (chosen, skipped)
}

/// The challenges to answer with a secret that rates algorithms with `preference` (see
/// [`crate::sip::digest::Secret::preference`]): one per realm, ordered by first
/// appearance, each the [`preferred`] one of its realm. Empty means nothing can be
/// answered (give up, do not loop).
pub fn select_challenges_for<'a>(
    values: &[&'a [u8]],
    preference: impl Fn(Algorithm) -> Option<u8>,
) -> Vec<DigestChallenge<'a>> {
    challenges_by_realm(values)
        .0
        .into_iter()
        .filter_map(|g| preferred(g, &preference))
        .collect()
}

/// Every challenge of the header field values that we can read, grouped by realm (groups
/// in order of first appearance, each top to bottom), and why the others were skipped.
/// A value with a syntax error is skipped whole: we cannot know what it offered.
pub fn challenges_by_realm<'a>(
    values: &[&'a [u8]],
) -> (Vec<Vec<DigestChallenge<'a>>>, Vec<ParseError>) {
    let mut groups: Vec<Vec<DigestChallenge<'a>>> = Vec::new();
    let mut skipped = Vec::new();
    for v in values {
        let mut read = Vec::new();
        let mut errs = Vec::new();
        match read_challenges(v, &mut |res| match res {
            Ok(ch) => read.push(ch),
            Err(e) => errs.push(e),
        }) {
            Ok(()) => skipped.append(&mut errs),
            Err(e) => {
                skipped.push(e);
                continue;
            }
        }
        for ch in read {
            match groups.iter_mut().find(|g| g[0].realm == ch.realm) {
                Some(g) => g.push(ch),
                None => groups.push(vec![ch]),
            }
        }
    }
    (groups, skipped)
}

/// The challenge to answer among one realm's, given top to bottom: the one `preference`
/// rates highest (`None`: cannot be answered), the topmost among equals.
///
/// RFC 8760 §2.4 has a UAC use the topmost challenge it supports "unless a local policy
/// dictates otherwise"; ours is the strongest hash we can compute (as Kamailio master,
/// kam bbda6a2b89), so a registrar listing MD5 before SHA-256 still gets SHA-256, and
/// the server's order decides only between equally strong ones. When none can be
/// answered, the strongest is returned all the same: answering it fails with the precise
/// reason (e.g. an MD5 HA1 against SHA-256 only), which goes to the log.
pub fn preferred<'a>(
    offers: Vec<DigestChallenge<'a>>,
    preference: impl Fn(Algorithm) -> Option<u8>,
) -> Option<DigestChallenge<'a>> {
    offers
        .into_iter()
        .enumerate()
        .max_by_key(|(i, ch)| {
            let rank = match preference(ch.algorithm) {
                Some(p) => (true, p),
                None => (false, ch.algorithm.family().strength()),
            };
            (rank, std::cmp::Reverse(*i))
        })
        .map(|(_, ch)| ch)
}

fn push_param_quoted(out: &mut Vec<u8>, name: &str, v: &[u8]) {
    out.extend_from_slice(b", ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    push_quoted(out, v);
}

fn push_param_bare(out: &mut Vec<u8>, name: &str, v: &[u8]) {
    out.extend_from_slice(b", ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(v);
}

impl DigestChallenge<'_> {
    /// Prints the challenge as a header field value (for tests, logs and the round trip).
    pub fn to_header_value(&self) -> Vec<u8> {
        let mut out = b"Digest realm=".to_vec();
        push_quoted(&mut out, &self.realm);
        push_param_quoted(&mut out, "nonce", &self.nonce);
        if let Some(o) = &self.opaque {
            push_param_quoted(&mut out, "opaque", o);
        }
        if let Some(d) = &self.domain {
            push_param_quoted(&mut out, "domain", d);
        }
        if self.stale {
            push_param_bare(&mut out, "stale", b"true");
        }
        push_param_bare(&mut out, "algorithm", self.algorithm.as_str().as_bytes());
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            push_param_quoted(&mut out, "qop", list.join(",").as_bytes());
        }
        if let Some(c) = &self.charset {
            push_param_bare(&mut out, "charset", c);
        }
        if self.userhash {
            push_param_bare(&mut out, "userhash", b"true");
        }
        for (n, v) in &self.other {
            out.extend_from_slice(b", ");
            out.extend_from_slice(n);
            out.push(b'=');
            push_quoted(&mut out, v);
        }
        out
    }
}

/// Which header carries the answer: `Authorization` for 401, `Proxy-Authorization` for 407
/// (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    Authorization,
    ProxyAuthorization,
}

impl HeaderKind {
    /// 401 → `Authorization`, 407 → `Proxy-Authorization`, anything else `None`.
    pub const fn for_reply_code(code: u16) -> Option<HeaderKind> {
        match code {
            401 => Some(HeaderKind::Authorization),
            407 => Some(HeaderKind::ProxyAuthorization),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            HeaderKind::Authorization => "Authorization",
            HeaderKind::ProxyAuthorization => "Proxy-Authorization",
        }
    }

    /// The challenge header this kind answers.
    pub const fn challenge(self) -> HeaderName {
        match self {
            HeaderKind::Authorization => HeaderName::WwwAuthenticate,
            HeaderKind::ProxyAuthorization => HeaderName::ProxyAuthenticate,
        }
    }

    /// Name of the challenge header this kind answers.
    pub const fn challenge_name(self) -> &'static str {
        self.challenge().names().0
    }
}

/// Digest credentials for a request (RFC 7616 §3.4), as computed by
/// [`super::digest::authorize`]. Values are unescaped; the printer quotes them. They borrow
/// the challenge, credentials and request they were computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The username, or H(username:realm) when `userhash` is set. A copy (inline up to
    /// 64 bytes), so that the credentials need not outlive the answer.
    pub username: Hex,
    pub realm: &'a [u8],
    pub nonce: &'a [u8],
    pub uri: &'a [u8],
    /// Lowercase hex.
    pub response: Hex,
    pub algorithm: Algorithm,
    /// Present with a qop, and for `-sess` algorithms even without one.
    pub cnonce: Option<&'a [u8]>,
    pub opaque: Option<&'a [u8]>,
    pub qop: Option<Qop>,
    /// Present exactly when `qop` is.
    pub nc: Option<Nc>,
    pub userhash: bool,
}

impl Authorization<'_> {
    /// The header field value, in the C module's field order (`build_authorization_hdr`):
    ///
    /// `Digest username="…", realm="…", nonce="…", uri="…"[, opaque="…"]`
    /// `[, qop=auth, nc=00000001][, cnonce="…"], response="…", algorithm=MD5[, userhash=true]`
    ///
    /// Unlike C, `qop` is the one actually used (may be `auth-int`), `algorithm` is the
    /// challenge's, and quoted values are escaped.
    pub fn to_header_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.value_len_hint());
        self.write_header_value(&mut out);
        out
    }

    /// Enough room for the header value (quoting may add a few bytes), so
    /// that building it does not reallocate.
    fn value_len_hint(&self) -> usize {
        let opt = |v: Option<&[u8]>| v.map_or(0, <[u8]>::len);
        160 + self.username.len()
            + self.realm.len()
            + self.nonce.len()
            + self.uri.len()
            + self.response.len()
            + opt(self.opaque)
            + opt(self.cnonce)
    }

    fn write_header_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Digest username=");
        push_quoted(out, &self.username);
        push_param_quoted(out, "realm", self.realm);
        push_param_quoted(out, "nonce", self.nonce);
        push_param_quoted(out, "uri", self.uri);
        if let Some(o) = self.opaque {
            // C prints opaque only when non-empty; an empty opaque="" is echoed here, as
            // RFC 7616 §3.4 says opaque is returned unchanged.
            push_param_quoted(out, "opaque", o);
        }
        if let (Some(q), Some(nc)) = (self.qop, self.nc) {
            push_param_bare(out, "qop", q.as_str().as_bytes());
            push_param_bare(out, "nc", &nc.to_hex());
        }
        if let Some(c) = self.cnonce {
            push_param_quoted(out, "cnonce", c);
        }
        push_param_quoted(out, "response", &self.response);
        push_param_bare(out, "algorithm", self.algorithm.as_str().as_bytes());
        if self.userhash {
            push_param_bare(out, "userhash", b"true");
        }
    }

    /// The whole header line, `Name: value\r\n`, as the C module inserts it.
    pub fn to_header_line(&self, kind: HeaderKind) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_header_line(kind, &mut out);
        out
    }

    /// [`Authorization::to_header_line`], appended to `out`.
    pub fn write_header_line(&self, kind: HeaderKind, out: &mut Vec<u8>) {
        let name = kind.name().as_bytes();
        out.reserve(name.len() + 4 + self.value_len_hint());
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        self.write_header_value(out);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Result<DigestChallenge<'_>, ParseError> {
        parse_challenge(v.as_bytes())
    }

    #[test]
    fn basic_fields() {
        let ch = p(
            "Digest realm=\"atlanta.com\", nonce=\"84a4cc6f3082121f32b42a2187831a9e\", \
                    opaque=\"xyz\", domain=\"sip:ss1.carrier.com\", stale=FALSE, \
                    algorithm=MD5, qop=\"auth\"",
        )
        .unwrap();
        assert_eq!(&ch.realm[..], b"atlanta.com");
        assert_eq!(&ch.nonce[..], b"84a4cc6f3082121f32b42a2187831a9e");
        assert_eq!(ch.opaque.as_deref(), Some(&b"xyz"[..]));
        assert_eq!(ch.domain.as_deref(), Some(&b"sip:ss1.carrier.com"[..]));
        assert!(!ch.stale);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.qop, vec![Qop::Auth]);
    }

    fn why(v: &[u8]) -> &'static str {
        parse_challenge(v).unwrap_err().why
    }

    #[test]
    fn quoted_pair_escapes() {
        let ch = p(r#"Digest realm="a\"b\\c\d", nonce="x""#).unwrap();
        assert_eq!(&ch.realm[..], b"a\"b\\cd");
        assert_eq!(why(b"Digest realm=\"abc\\"), "unterminated quoted-string");
        assert_eq!(
            why(b"Digest realm=\"a\\\rb\", nonce=x"),
            "control character"
        );
    }

    #[test]
    fn folding_and_whitespace() {
        let ch =
            p("  Digest\r\n realm=\"r\" ,\r\n\tnonce = \"n\"\t,  qop=\"auth,\r\n auth-int\"  ")
                .unwrap();
        assert_eq!((&ch.realm[..], &ch.nonce[..]), (&b"r"[..], &b"n"[..]));
        assert_eq!(ch.qop, vec![Qop::Auth, Qop::AuthInt]);
        // Bare-LF fold tolerated; CR/LF not followed by whitespace is the end of the header.
        assert!(p("Digest realm=\"r\",\n nonce=\"n\"").is_ok());
        assert_eq!(
            why(b"Digest realm=\"r\",\r\nnonce=\"n\""),
            "CR or LF outside a line fold"
        );
        assert_eq!(
            why(b"Digest realm=\"r\", nonce=\"n\"\r\n"),
            "CR or LF outside a line fold"
        );
        assert_eq!(
            why(b"Digest realm=\"r\r\", nonce=\"n\""),
            "CR or LF outside a line fold"
        );
        assert_eq!(why(b"Digest realm=\"r\" nonce=\"n\""), "expected ','");
        assert_eq!(why(b"Digest,realm=\"r\""), "missing nonce");
        assert_eq!(
            why(b"Digestrealm=\"r\""),
            "expected space after auth-scheme"
        );
    }

    #[test]
    fn case_insensitive_names() {
        let ch = p(
            "dIgEsT REALM=\"R\", NoNcE=\"n\", ALGORITHM=sha-256-SESS, QOP=AUTH, \
                    Stale=TRUE, UserHash=True",
        )
        .unwrap();
        assert_eq!(&ch.realm[..], b"R"); // values keep their case
        assert_eq!(ch.algorithm, Algorithm::Sha256Sess);
        assert_eq!(ch.qop, vec![Qop::Auth]);
        assert!(ch.stale && ch.userhash);
    }

    #[test]
    fn tolerated_forms() {
        // Quoted algorithm, unquoted qop and base64 nonce, unknown stale value, charset.
        let ch = p(
            "Digest realm=r, nonce=YWJj+/=, algorithm=\"MD5\", qop=auth-int, \
                    stale=maybe, charset=UTF-8, foo=bar, baz=\"q\"",
        )
        .unwrap();
        assert_eq!(&ch.nonce[..], b"YWJj+/=");
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.qop, vec![Qop::AuthInt]);
        assert!(!ch.stale);
        assert_eq!(ch.charset.as_deref(), Some(&b"UTF-8"[..]));
        assert_eq!(
            ch.other,
            vec![
                (Cow::Borrowed(&b"foo"[..]), Cow::Borrowed(&b"bar"[..])),
                (Cow::Borrowed(&b"baz"[..]), Cow::Borrowed(&b"q"[..]))
            ]
        );
        // Unknown qop tokens ignored; none known is an error.
        assert_eq!(
            p("Digest realm=r, nonce=n, qop=\"x-new, auth-int, auth-int\"")
                .unwrap()
                .qop,
            vec![Qop::AuthInt]
        );
        assert_eq!(
            why(b"Digest realm=r, nonce=n, qop=\"x-new\""),
            "qop offers no supported option"
        );
        assert_eq!(
            why(b"Digest realm=r, nonce=n, qop=\"\""),
            "qop offers no supported option"
        );
        // Empty list elements (RFC 7230 §7).
        assert!(p(", ,Digest , realm=r,, ,nonce=n,").is_ok());
    }

    #[test]
    fn duplicates_rejected() {
        assert_eq!(
            why(b"Digest realm=a, nonce=n, realm=b"),
            "duplicate auth-param"
        );
        assert_eq!(
            why(b"Digest realm=a, nonce=n, REALM=a"),
            "duplicate auth-param"
        );
        assert_eq!(
            why(b"Digest realm=a, nonce=n, x=1, X=2"),
            "duplicate auth-param"
        );
        assert_eq!(
            why(b"Digest realm=a, nonce=n, algorithm=MD5, algorithm=MD5"),
            "duplicate auth-param"
        );
    }

    #[test]
    fn hostile_inputs() {
        assert_eq!(why(b""), "empty header value");
        assert_eq!(why(b"   "), "empty header value");
        assert_eq!(why(b"Digest"), "missing realm");
        assert_eq!(why(b"Digest "), "missing realm");
        assert_eq!(why(b"digest realm=\"r"), "unterminated quoted-string");
        assert_eq!(
            why(b"Digest realm=\"r\", nonce=\""),
            "unterminated quoted-string"
        );
        assert_eq!(why(b"Digest nonce=\"n\""), "missing realm");
        assert_eq!(why(b"Digest realm=\"r\""), "missing nonce");
        assert_eq!(why(b"Digest realm=\"\", nonce=\"n\""), "missing realm");
        assert_eq!(why(b"Digest realm=\"r\", nonce=\"\""), "missing nonce");
        assert_eq!(
            why(b"Digest realm=r, nonce=n, algorithm=SHA-1"),
            "unsupported algorithm"
        );
        assert_eq!(
            why(b"Digest realm=r, nonce=n, algorithm=\"\""),
            "unsupported algorithm"
        );
        assert_eq!(why(b"Digest realm=r, nonce="), "empty auth-param value");
        assert_eq!(why(b"Digest realm=r, =n"), "expected auth-param name");
        assert_eq!(why(b"Basic realm=\"r\""), "not a Digest challenge");
        assert_eq!(why(b"Digest abc=="), "token68 in a Digest challenge");
        assert_eq!(why(b"Digest foo bar"), "expected auth-param");
        assert_eq!(why(b"\"Digest\" realm=r"), "expected auth-scheme");
        // 100k commas: over the size limit.
        let mut v = b"Digest ".to_vec();
        v.extend(std::iter::repeat_n(b',', 100_000));
        assert_eq!(why(&v), "header value too long");
        // Just under the limit: linear scan, clean error.
        let mut v = b"Digest ".to_vec();
        v.extend(std::iter::repeat_n(b',', MAX_VALUE_LEN - 7));
        assert_eq!(why(&v), "missing realm");
        // Too many params.
        let mut v = b"Digest realm=r, nonce=n".to_vec();
        for i in 0..MAX_PARAMS {
            v.extend_from_slice(format!(", p{i}=1").as_bytes());
        }
        assert_eq!(why(&v), "too many auth-params");
        // NUL bytes anywhere.
        for v in [
            &b"\0"[..],
            b"Digest\0 realm=r, nonce=n",
            b"Digest realm=r\0, nonce=n",
            b"Digest realm=\"r\0\", nonce=n",
            b"Digest realm=r, nonce=n\0",
            b"Digest realm=r, no\0nce=n",
        ] {
            assert!(parse_challenge(v).is_err(), "{v:?}");
        }
        // Non-UTF-8: fine inside values (kept as bytes), refused in names.
        let ch = parse_challenge(b"Digest realm=\"r\xff\xfe\", nonce=n\xc3\x28").unwrap();
        assert_eq!(&ch.realm[..], b"r\xff\xfe");
        assert_eq!(&ch.nonce[..], b"n\xc3\x28");
        assert!(parse_challenge(b"Digest re\xffalm=r, nonce=n").is_err());
        // MD5-sess without qop parses (and is answered, see digest tests).
        let ch = p("Digest realm=r, nonce=n, algorithm=MD5-sess").unwrap();
        assert_eq!((ch.algorithm, ch.qop.len()), (Algorithm::Md5Sess, 0));
    }

    #[test]
    fn several_challenges_in_one_value() {
        let v =
            b"Digest realm=\"a\", nonce=\"1\", algorithm=SHA-256, Digest realm=\"a\", nonce=\"2\"";
        assert_eq!(why(v), "several challenges in one value");
        let list = parse_challenge_list(v).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].as_ref().unwrap().algorithm, Algorithm::Sha256);
        assert_eq!(&list[1].as_ref().unwrap().nonce[..], b"2");

        let v = b"Negotiate abc==, Basic realm=\"x\", Bearer, Digest realm=\"y\", nonce=\"z\", \
                  Newauth realm=\"apps\", type=1, title=\"Login to \\\"apps\\\"\"";
        let list = parse_challenge_list(v).unwrap();
        assert_eq!(list.len(), 5);
        assert_eq!(list[0].as_ref().unwrap_err().why, "not a Digest challenge");
        assert_eq!(&list[3].as_ref().unwrap().realm[..], b"y");
        assert!(list[4].is_err());
    }

    fn sel(values: &[&str]) -> Vec<(String, Algorithm)> {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        select_challenges(&v)
            .into_iter()
            .map(|c| {
                (
                    String::from_utf8(c.realm.into_owned()).unwrap(),
                    c.algorithm,
                )
            })
            .collect()
    }

    #[test]
    fn rfc8760_selection() {
        // SHA-256 listed first, then MD5: the topmost supported one.
        assert_eq!(
            sel(&[
                "Digest realm=\"r\", nonce=\"1\", algorithm=SHA-256, qop=\"auth\"",
                "Digest realm=\"r\", nonce=\"2\", algorithm=MD5, qop=\"auth\"",
            ]),
            vec![("r".into(), Algorithm::Sha256)]
        );
        // MD5 listed first: the stronger one all the same (local policy, RFC 8760 §2.4).
        assert_eq!(
            sel(&[
                "Digest realm=r, nonce=1",
                "Digest realm=r, nonce=2, algorithm=SHA-512-256"
            ]),
            vec![("r".into(), Algorithm::Sha512_256)]
        );
        assert_eq!(
            sel(&[
                "Digest realm=r, nonce=1, algorithm=MD5",
                "Digest realm=r, nonce=2, algorithm=SHA-256",
                "Digest realm=r, nonce=3, algorithm=MD5-sess",
            ]),
            vec![("r".into(), Algorithm::Sha256)]
        );
        // Equally strong (same hash): the topmost, whichever it is.
        assert_eq!(
            sel(&[
                "Digest realm=r, nonce=1, algorithm=MD5-sess",
                "Digest realm=r, nonce=2, algorithm=MD5"
            ]),
            vec![("r".into(), Algorithm::Md5Sess)]
        );
        assert_eq!(
            sel(&[
                "Digest realm=r, nonce=1, algorithm=SHA-256",
                "Digest realm=r, nonce=2, algorithm=SHA-256-sess"
            ]),
            vec![("r".into(), Algorithm::Sha256)]
        );
        // Unknown algorithm first is skipped; so are garbage and other schemes.
        assert_eq!(
            sel(&[
                "Digest realm=r, nonce=1, algorithm=SHA-3",
                "Digest realm=\"unterminated",
                "Basic realm=r",
                "Digest realm=r, nonce=2, algorithm=MD5",
            ]),
            vec![("r".into(), Algorithm::Md5)]
        );
        // Two realms (proxy + UAS, or forked branches): one answer each, first-seen order.
        assert_eq!(
            sel(&[
                "Digest realm=a, nonce=1, algorithm=SHA-256",
                "Digest realm=b, nonce=2",
                "Digest realm=a, nonce=3",
                "Digest realm=b, nonce=4, algorithm=SHA-256",
                "Digest realm=c, nonce=5",
            ]),
            vec![
                ("a".into(), Algorithm::Sha256),
                ("b".into(), Algorithm::Sha256),
                ("c".into(), Algorithm::Md5)
            ]
        );
        // Several challenges in one value count in order too.
        assert_eq!(
            sel(&[
                "Digest realm=a, nonce=1, algorithm=SHA-1, Digest realm=a, nonce=2, algorithm=SHA-256"
            ]),
            vec![("a".into(), Algorithm::Sha256)]
        );
        // Nothing answerable.
        let (chosen, errs) = select_challenges_with_errors(&[b"Basic realm=r", b"Digest"]);
        assert!(chosen.is_empty());
        assert_eq!(errs.len(), 2);
        assert!(select_challenges(&[]).is_empty());
    }

    /// The choice follows what the secret can compute: an MD5 HA1 takes the MD5
    /// challenge whatever the order, a password the strongest; nonces tell which one.
    #[test]
    fn selection_for_the_secret() {
        use crate::sip::digest::{HashFamily, Secret};
        let sha_first: [&[u8]; 2] = [
            b"Digest realm=r, nonce=s, algorithm=SHA-256, qop=auth",
            b"Digest realm=r, nonce=m, algorithm=MD5, qop=auth",
        ];
        let md5_first = [sha_first[1], sha_first[0]];
        let pick = |values: &[&[u8]], secret: &Secret<'_>| -> Vec<Vec<u8>> {
            select_challenges_for(values, |a| secret.preference(a))
                .into_iter()
                .map(|c| c.nonce.into_owned())
                .collect()
        };
        let pw = Secret::Password(Cow::Borrowed(b"p"));
        let md5_ha1 = Secret::Ha1 {
            family: None,
            hex: Cow::Borrowed(b"0123456789abcdef0123456789abcdef"),
        };
        let sha_ha1 = Secret::Ha1 {
            family: None,
            hex: Cow::Owned(vec![b'a'; 64]),
        };
        for values in [&sha_first[..], &md5_first[..]] {
            assert_eq!(pick(values, &pw), vec![b"s".to_vec()]);
            assert_eq!(pick(values, &md5_ha1), vec![b"m".to_vec()]);
            assert_eq!(pick(values, &sha_ha1), vec![b"s".to_vec()]);
        }
        // Nothing the HA1 can answer: the strongest comes back, so that answering it
        // gives the precise error.
        assert_eq!(pick(&sha_first[..1], &md5_ha1), vec![b"s".to_vec()]);
        // A 64-digit HA1 of unknown family: SHA-256 rather than SHA-512-256; of a known
        // family: that family only.
        let both: [&[u8]; 2] = [
            b"Digest realm=r, nonce=x, algorithm=SHA-512-256",
            b"Digest realm=r, nonce=s, algorithm=SHA-256",
        ];
        assert_eq!(pick(&both, &sha_ha1), vec![b"s".to_vec()]);
        assert_eq!(pick(&both, &pw), vec![b"x".to_vec()]);
        let x_ha1 = Secret::Ha1 {
            family: Some(HashFamily::Sha512_256),
            hex: Cow::Owned(vec![b'a'; 64]),
        };
        assert_eq!(pick(&both, &x_ha1), vec![b"x".to_vec()]);
        // An unreadable value is skipped whole, whatever it seemed to offer.
        let (groups, errs) = challenges_by_realm(&[
            b"Digest realm=r, nonce=1, algorithm=SHA-256, Digest realm=\"bad",
            b"Digest realm=r, nonce=2",
        ]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].len(), 1);
        assert_eq!(&groups[0][0].nonce[..], b"2");
        assert_eq!(errs.len(), 1);
        assert!(preferred(Vec::new(), |_| Some(1)).is_none());
    }

    #[test]
    fn round_trip() {
        for v in [
            "Digest realm=\"atlanta.com\", nonce=\"abc\"",
            "Digest realm=\"a\\\"b\\\\\", nonce=\"n\", opaque=\"o\", domain=\"sip:a sip:b\", \
             stale=true, algorithm=SHA-512-256-sess, qop=\"auth-int, auth\", charset=UTF-8, \
             userhash=true, x-foo=\"b\\\"ar\"",
        ] {
            let ch = p(v).unwrap();
            let printed = ch.to_header_value();
            assert_eq!(
                parse_challenge(&printed).unwrap(),
                ch,
                "{}",
                String::from_utf8_lossy(&printed)
            );
        }
    }

    #[test]
    fn header_kind() {
        assert_eq!(
            HeaderKind::for_reply_code(401),
            Some(HeaderKind::Authorization)
        );
        assert_eq!(
            HeaderKind::for_reply_code(407),
            Some(HeaderKind::ProxyAuthorization)
        );
        assert_eq!(HeaderKind::for_reply_code(403), None);
        assert_eq!(
            HeaderKind::ProxyAuthorization.challenge_name(),
            "Proxy-Authenticate"
        );
    }

    /// Random bytes and mutated valid challenges never panic; whatever parses can be
    /// answered, and the answer is a single header line.
    #[test]
    fn robustness_no_panic() {
        use crate::sip::digest::{Credentials, Secret, authorize};
        use rand::{RngExt, SeedableRng};

        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_d1e5);
        const ALPHABET: &[u8] = b"Digest realmnoncqpuh=,\"\\ \t\r\n\0\xff\x80aA5-_/:+";
        let templates: [&[u8]; 4] = [
            b"Digest realm=\"r\", nonce=\"n\", opaque=\"o\", qop=\"auth,auth-int\", algorithm=MD5",
            b"Digest realm=r,\r\n nonce=\"a\\\"b\", algorithm=SHA-512-256-sess, userhash=true",
            b"Basic realm=\"x\", Digest realm=\"y\", nonce=\"z\", Negotiate abc==",
            b"Digest realm=\"r\", nonce=\"n\", stale=TRUE, domain=\"sip:a\", x=\"y\"",
        ];
        let creds = Credentials {
            username: Cow::Borrowed(b"u"),
            realm: Cow::Borrowed(b""),
            secret: Secret::Password(Cow::Borrowed(b"p")),
        };
        let mut parsed = 0usize;
        for i in 0..30_000usize {
            let v: Vec<u8> = if i % 2 == 0 {
                let len = rng.random_range(0..200usize);
                (0..len)
                    .map(|_| {
                        if rng.random_bool(0.7) {
                            ALPHABET[rng.random_range(0..ALPHABET.len())]
                        } else {
                            rng.random()
                        }
                    })
                    .collect()
            } else {
                let mut v = templates[rng.random_range(0..templates.len())].to_vec();
                for _ in 0..rng.random_range(1..6usize) {
                    let at = rng.random_range(0..=v.len());
                    match rng.random_range(0..5u8) {
                        0 => v.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
                        1 if at < v.len() => {
                            v.remove(at);
                        }
                        2 if at < v.len() => v[at] = rng.random(),
                        3 => v.truncate(at),
                        _ => {
                            let end = rng.random_range(at..=v.len());
                            let dup = v[at..end].to_vec();
                            v.splice(at..at, dup);
                        }
                    }
                }
                v
            };
            let single = parse_challenge(&v);
            let _ = parse_challenge_list(&v);
            let chosen = select_challenges(&[&v, &v]);
            for (k, c) in chosen.iter().enumerate() {
                assert!(chosen[..k].iter().all(|o| o.realm != c.realm));
            }
            if let Ok(ch) = single {
                parsed += 1;
                assert_eq!(parse_challenge(&ch.to_header_value()).as_ref(), Ok(&ch));
                if let Ok(a) = authorize(&ch, &creds, b"INVITE", b"sip:x", b"", b"c", Nc::FIRST) {
                    let hv = a.to_header_value();
                    assert!(!hv.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
                }
            }
        }
        assert!(parsed > 100, "mutation corpus too destructive: {parsed}");
    }
}
