//! SIP and SIPS URIs, as far as a registering UA needs them: the user part, the host and
//! port, and the URI parameters (RFC 3261 §19.1.1, grammar §25.1).
//!
//! ```text
//! SIP-URI          = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//! SIPS-URI         = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
//! userinfo         = ( user / telephone-subscriber ) [ ":" password ] "@"
//! user             = 1*( unreserved / escaped / user-unreserved )
//! user-unreserved  = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
//! hostport         = host [ ":" port ]
//! host             = hostname / IPv4address / IPv6reference
//! uri-parameters   = *( ";" uri-parameter )
//! other-param      = pname [ "=" pvalue ]
//! pname            = 1*paramchar
//! pvalue           = 1*paramchar
//! paramchar        = param-unreserved / unreserved / escaped
//! param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
//! headers          = "?" header *( "&" header )
//! unreserved       = alphanum / mark
//! mark             = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
//! escaped          = "%" HEXDIG HEXDIG
//! ```
//!
//! Neither the user nor the host, nor any parameter, nor a header may hold `@`, so the
//! first `@` of a valid URI ends the userinfo (a user may hold `;` and `?`).
//!
//! Tolerances, each of them something deployed registrars send: an empty `pvalue`
//! (`;x=`), and any visible byte in the host but the delimiters (`_` in host names).
//! Everything else outside the grammar is refused: a parameter we cannot delimit must not
//! be taken for one we look for.

use std::borrow::Cow;

use super::ParseError;

fn err(why: &'static str) -> ParseError {
    ParseError::new("SIP URI", why)
}

/// A parsed SIP or SIPS URI; every part borrows the input, as written (still escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sip` or `sips`, as written (the scheme is case-insensitive, §19.1.4).
    pub scheme: &'a [u8],
    /// The user (or telephone-subscriber), without the password; `None` without `@`.
    pub user: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    /// Host name, IPv4 address or `[IPv6]` reference.
    pub host: &'a [u8],
    pub port: Option<u16>,
    /// The uri-parameters as written, each with its leading `;` (empty when none).
    pub params: &'a [u8],
    /// The headers without the leading `?`.
    pub headers: Option<&'a [u8]>,
}

/// RFC 3261 §25.1 `unreserved`.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// RFC 3261 §25.1 `paramchar` other than `escaped`.
fn is_param_unescaped(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$".contains(&b)
}

/// RFC 3261 §25.1 `user` characters other than `escaped`.
fn is_user_unescaped(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}

/// Whether `v` is made of `allowed` bytes and well-formed `%HH` escapes.
fn all_chars(v: &[u8], allowed: fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let ok = v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else if allowed(v[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Whether `v` can be written as the `user` of a SIP URI as it is (RFC 3261 §25.1).
pub fn is_valid_user(v: &[u8]) -> bool {
    !v.is_empty() && all_chars(v, is_user_unescaped)
}

/// Host bytes we accept: visible ASCII except the URI delimiters.
fn is_host_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !b"@:;?<>\"[]/\\,".contains(&b)
}

/// Parses a SIP or SIPS URI (`<` `>` already removed).
pub fn parse(u: &[u8]) -> Result<SipUri<'_>, ParseError> {
    let colon = u
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| err("no scheme"))?;
    let scheme = &u[..colon];
    if !scheme.eq_ignore_ascii_case(b"sip") && !scheme.eq_ignore_ascii_case(b"sips") {
        return Err(err("not a sip or sips URI"));
    }
    let rest = &u[colon + 1..];
    let (user, password, rest) = match rest.iter().position(|&b| b == b'@') {
        Some(at) => {
            let ui = &rest[..at];
            let (user, pw) = match ui.iter().position(|&b| b == b':') {
                Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                None => (ui, None),
            };
            // A telephone-subscriber (RFC 2806) allows more than `user`; we only need the
            // user to be delimited, so any visible byte is accepted here.
            if user.is_empty() || !user.iter().all(|b| (0x21..=0x7e).contains(b)) {
                return Err(err("bad user"));
            }
            if pw.is_some_and(|p| !p.iter().all(|b| (0x21..=0x7e).contains(b))) {
                return Err(err("bad password"));
            }
            (Some(user), pw, &rest[at + 1..])
        }
        None => (None, None, rest),
    };
    // hostport
    let (host, mut i) = if rest.first() == Some(&b'[') {
        let close = rest
            .iter()
            .position(|&b| b == b']')
            .ok_or_else(|| err("unterminated IPv6 reference"))?;
        let inner = &rest[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(err("bad IPv6 reference"));
        }
        (&rest[..=close], close + 1)
    } else {
        let end = rest
            .iter()
            .position(|&b| !is_host_char(b))
            .unwrap_or(rest.len());
        (&rest[..end], end)
    };
    if host.is_empty() {
        return Err(err("empty host"));
    }
    let mut port = None;
    if rest.get(i) == Some(&b':') {
        let digits = rest[i + 1..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len() - i - 1);
        let p = &rest[i + 1..i + 1 + digits];
        // port = 1*DIGIT; larger than 65535 cannot be a port.
        let n = std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| err("bad port"))?;
        port = Some(n);
        i += 1 + digits;
    }
    let tail = &rest[i..];
    let (params, headers) = match tail.iter().position(|&b| b == b'?') {
        Some(q) => (&tail[..q], Some(&tail[q + 1..])),
        None => (tail, None),
    };
    if params.first().is_some_and(|&b| b != b';') {
        return Err(err("unexpected character after host"));
    }
    for p in Params(params) {
        if !is_param_name(p.name) || !p.value.is_none_or(|v| all_chars(v, is_param_unescaped)) {
            return Err(err("bad uri-parameter"));
        }
    }
    if headers.is_some_and(|h| !h.iter().all(|&b| (0x21..=0x7e).contains(&b) && b != b'@')) {
        return Err(err("bad headers"));
    }
    Ok(SipUri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

fn is_param_name(n: &[u8]) -> bool {
    !n.is_empty() && all_chars(n, is_param_unescaped)
}

/// One uri-parameter as written (still escaped); `value` is `None` for `;lr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParam<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// The parameters of a [`SipUri`], in order (an empty one for `;;`).
#[derive(Debug, Clone)]
pub struct Params<'a>(&'a [u8]);

impl<'a> Iterator for Params<'a> {
    type Item = UriParam<'a>;

    fn next(&mut self) -> Option<UriParam<'a>> {
        // `self.0` is empty or starts with the `;` of the next parameter.
        let rest = self.0.get(1..)?;
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        let p = &rest[..end];
        self.0 = &rest[end..];
        Some(match p.iter().position(|&b| b == b'=') {
            Some(eq) => UriParam {
                name: &p[..eq],
                value: Some(&p[eq + 1..]),
            },
            None => UriParam {
                name: p,
                value: None,
            },
        })
    }
}

impl<'a> SipUri<'a> {
    /// The uri-parameters, in order.
    pub fn params(&self) -> Params<'a> {
        Params(self.params)
    }

    /// The first parameter named `name`. Parameter names compare case-insensitively
    /// (RFC 3261 §19.1.4), after unescaping.
    pub fn param(&self, name: &[u8]) -> Option<UriParam<'a>> {
        self.params()
            .find(|p| unescape(p.name).eq_ignore_ascii_case(name))
    }
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.4: an escaped character equals its decoded form).
/// A `%` not followed by two hex digits is kept as it is.
pub fn unescape(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.contains(&b'%') {
        return Cow::Borrowed(v);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let (Some(h), Some(l)) = (
                v.get(i + 1).copied().and_then(hex),
                v.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// Appends `v` as a `pvalue`: bytes outside `paramchar` are escaped as `%HH`, so any value
/// round-trips through [`unescape`].
pub fn push_param_value(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v {
        if is_param_unescaped(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// URIs as found in headers, database rows and script arguments: read loosely, without
// [`parse`]'s validation (a lookup by user and host must work on what peers send), and the
// checks on URIs we are asked to write.

/// `scheme ":" rest` with `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986
/// §3.1) and a non-empty rest.
pub fn has_scheme(u: &[u8]) -> bool {
    let Some(colon) = u.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && colon + 1 < u.len()
        && u[0].is_ascii_alphabetic()
        && u[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// Printable ASCII without space, `<`, `>` or `"`: a URI that can be written into a header
/// field as it is.
fn is_writable(u: &[u8]) -> bool {
    u.iter()
        .all(|&b| (0x21..=0x7e).contains(&b) && !b"<>\"".contains(&b))
}

/// A URI we are asked to write into a From/To header: [`has_scheme`] and writable.
pub fn valid_new(u: &[u8]) -> bool {
    has_scheme(u) && is_writable(u)
}

/// A URI we may write back into a From/To header on restore: `sip:`, `sips:` or `tel:` (any
/// case) and something after it, printable ASCII only, no space, CR, LF, NUL, `<`, `>` or
/// `"`.
pub fn valid_restored(u: &[u8]) -> bool {
    let scheme_len = [&b"sip:"[..], b"sips:", b"tel:"]
        .iter()
        .find(|s| u.len() > s.len() && u[..s.len()].eq_ignore_ascii_case(s))
        .map(|s| s.len());
    scheme_len.is_some() && is_writable(u)
}

/// RFC 3261 §20.10: a URI with a comma, question mark or semicolon must be in `<>`.
pub fn needs_enclosure(u: &[u8]) -> bool {
    u.iter().any(|b| b";?,".contains(b))
}

/// The URI without its parameters and headers (up to the first `;` or `?`).
pub fn base(u: &[u8]) -> &[u8] {
    let end = u.iter().position(|b| b";?".contains(b)).unwrap_or(u.len());
    &u[..end]
}

/// Whether `current` (a URI found in a header) is `expected`: byte-equal, or equal ignoring
/// ASCII case once URI parameters/headers are dropped (a peer that re-formats its URI or
/// adds a parameter in dialog, kam#833, kam#3498).
pub fn matches(current: &[u8], expected: &[u8]) -> bool {
    current == expected || base(current).eq_ignore_ascii_case(base(expected))
}

/// The user part of a URI, loosely: after `scheme:` up to `@`, without `:password`; empty
/// when there is no `@` before the first `;`, `?` or `>` (the host part never has `@`).
pub fn user_part(u: &[u8]) -> &[u8] {
    let Some(colon) = u.iter().position(|&b| b == b':') else {
        return &[];
    };
    let rest = &u[colon + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b';' || b == b'?' || b == b'>')
        .unwrap_or(rest.len());
    match rest[..end].iter().position(|&b| b == b'@') {
        // user may carry ":password" (RFC 3261 §19.1.1); drop it.
        Some(at) => {
            let ui = &rest[..at];
            let u_end = ui.iter().position(|&b| b == b':').unwrap_or(ui.len());
            &ui[..u_end]
        }
        None => &[],
    }
}

/// The host part of a URI, loosely (without port and parameters); `None` when the URI has
/// no `scheme:` or an empty host.
pub fn host_part(u: &[u8]) -> Option<&[u8]> {
    let colon = u.iter().position(|&b| b == b':')?;
    let rest = &u[colon + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b';' || b == b'?' || b == b'>')
        .unwrap_or(rest.len());
    let hostport = match rest[..end].iter().rposition(|&b| b == b'@') {
        Some(at) => &rest[at + 1..end],
        None => &rest[..end],
    };
    let host = if hostport.first() == Some(&b'[') {
        let close = hostport.iter().position(|&b| b == b']')?;
        &hostport[..=close]
    } else {
        let c = hostport
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(hostport.len());
        &hostport[..c]
    };
    (!host.is_empty()).then_some(host)
}

/// Appends `u` with the uri-parameter `;name=value` added after its parameters, before any
/// `?headers`; the value is escaped by [`push_param_value`].
pub fn push_with_param(out: &mut Vec<u8>, u: &[u8], name: &[u8], value: &[u8]) {
    let q = u.iter().position(|&b| b == b'?').unwrap_or(u.len());
    out.extend_from_slice(&u[..q]);
    out.push(b';');
    out.extend_from_slice(name);
    out.push(b'=');
    push_param_value(out, value);
    out.extend_from_slice(&u[q..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let u = parse(b"sip:alice:pw@host.example:5070;transport=tcp;lr;line=ab%41?X=1").unwrap();
        assert_eq!(u.scheme, b"sip");
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"pw"[..]));
        assert_eq!(u.host, b"host.example");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params, b";transport=tcp;lr;line=ab%41");
        assert_eq!(u.headers, Some(&b"X=1"[..]));
        let ps: Vec<_> = u.params().collect();
        assert_eq!(ps.len(), 3);
        assert_eq!(
            ps[1],
            UriParam {
                name: b"lr",
                value: None
            }
        );
        assert_eq!(u.param(b"line").unwrap().value, Some(&b"ab%41"[..]));
        assert_eq!(
            unescape(u.param(b"line").unwrap().value.unwrap()),
            &b"abA"[..]
        );
        assert_eq!(u.param(b"maddr"), None);

        let u = parse(b"SIPS:[2001:db8::1]:5061").unwrap();
        assert_eq!(
            (u.host, u.port, u.user),
            (&b"[2001:db8::1]"[..], Some(5061), None)
        );
        assert_eq!(u.params().count(), 0);
        let u = parse(b"sip:h").unwrap();
        assert_eq!((u.host, u.port, u.params), (&b"h"[..], None, &b""[..]));
    }

    /// RFC 3261 §19.1.4: parameter names are case-insensitive, and an escaped character
    /// equals its unescaped form.
    #[test]
    fn param_names_case_insensitive_and_escaped() {
        let u = parse(b"sip:u@h;LINE=x").unwrap();
        assert_eq!(u.param(b"line").unwrap().value, Some(&b"x"[..]));
        let u = parse(b"sip:u@h;Li%6Ee=y;line=z").unwrap();
        assert_eq!(
            u.param(b"line").unwrap().value,
            Some(&b"y"[..]),
            "first one wins"
        );
        // a name that merely starts or ends like it is another parameter
        let u = parse(b"sip:u@h;lines=1;xline=2;line").unwrap();
        assert_eq!(u.param(b"line").unwrap().value, None);
    }

    /// A user may hold `;` and `?` (user-unreserved): the parameters start after the host.
    #[test]
    fn user_with_semicolon() {
        let u = parse(b"sip:a;line=evil@h;line=good").unwrap();
        assert_eq!(u.user, Some(&b"a;line=evil"[..]));
        assert_eq!(u.param(b"line").unwrap().value, Some(&b"good"[..]));
        let u = parse(b"sip:+1234;isub=5@h").unwrap();
        assert_eq!(u.params().count(), 0);
    }

    #[test]
    fn refused() {
        for bad in [
            &b""[..],
            b"sip",
            b"tel:+1234;line=x",
            b"http://h",
            b"sip:",
            b"sip:@h",
            b"sip:u@",
            b"sip:u@h:",
            b"sip:u@h:99999",
            b"sip:u@h:12a",
            b"sip:u@[::1",
            b"sip:u@[zz]",
            b"sip:u@h;",
            b"sip:u@h;;x",
            b"sip:u@h;=x",
            b"sip:u@h;line=a b",
            b"sip:u@h;line=a%4",
            b"sip:u@h;line=a\"b",
            b"sip:u@h;line=<x>",
            b"sip:u@h x",
            b"sip:u@h?a=@",
            b"sip:u\r\n@h",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // tolerated
        assert_eq!(
            parse(b"sip:u@h;x=").unwrap().param(b"x").unwrap().value,
            Some(&b""[..])
        );
        assert_eq!(parse(b"sip:u@my_host").unwrap().host, b"my_host");
    }

    #[test]
    fn users() {
        assert!(is_valid_user(b"alice"));
        assert!(is_valid_user(b"+49301234;isub=1"));
        assert!(is_valid_user(b"a%40b"));
        for bad in [
            &b""[..],
            b"a@b",
            b"a b",
            b"a:b",
            b"a%4",
            b"a<b",
            b"a\"b",
            b"a\r\n",
            b"\xff",
        ] {
            assert!(!is_valid_user(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn escape_round_trip() {
        for v in [
            &b"plain-uuid_1.2"[..],
            b"a;b=c@d",
            b"100%",
            b" \x00\xff<>\"",
            b"",
        ] {
            let mut out = Vec::new();
            push_param_value(&mut out, v);
            assert!(all_chars(&out, is_param_unescaped));
            assert_eq!(unescape(&out), v);
            let uri = [&b"sip:u@h;line="[..], &out].concat();
            if !v.is_empty() {
                let u = parse(&uri).unwrap();
                assert_eq!(unescape(u.param(b"line").unwrap().value.unwrap()), v);
            }
        }
        let mut out = Vec::new();
        push_param_value(&mut out, b"trunk-1");
        assert_eq!(out, b"trunk-1", "ordinary l_uuids are written as they are");
        assert_eq!(unescape(b"%zz%4"), &b"%zz%4"[..]);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let mut x: u32 = 0x1234_5678;
        let alphabet = b"sip:@;=?%[]:.0123456789abfLINE<>\" \r\n\xff";
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut u = b"sip:".to_vec();
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            for _ in 0..(x >> 27) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                u.push(alphabet[(x >> 16) as usize % alphabet.len()]);
            }
            if let Ok(p) = parse(&u) {
                parsed += 1;
                // whatever parsed is delimited consistently
                for q in p.params() {
                    assert!(!q.name.is_empty());
                    assert!(!q.name.contains(&b';') && !q.name.contains(&b'='));
                }
                let _ = p
                    .param(b"line")
                    .map(|q| unescape(q.value.unwrap_or_default()));
            }
        }
        assert!(parsed > 500, "corpus too destructive: {parsed}");
    }

    #[test]
    fn loose_user_parts() {
        assert_eq!(user_part(b"sip:a@b"), b"a");
        assert_eq!(user_part(b"sip:a:pw@b;x=@"), b"a");
        assert_eq!(user_part(b"sip:b;x=@y"), b"");
        assert_eq!(user_part(b"nocolon"), b"");
    }

    #[test]
    fn loose_host_parts() {
        assert_eq!(host_part(b"sip:a@b.com:5060;x"), Some(&b"b.com"[..]));
        assert_eq!(host_part(b"sip:[::1]:5060"), Some(&b"[::1]"[..]));
        assert_eq!(host_part(b"sip:h"), Some(&b"h"[..]));
        assert_eq!(host_part(b"sip:u@"), None);
        assert_eq!(host_part(b"nothing"), None);
    }

    #[test]
    fn loose_helpers() {
        assert!(has_scheme(b"sip:x") && has_scheme(b"tel:+1") && has_scheme(b"x-y.z+1:a"));
        for bad in [&b""[..], b"sip:", b":x", b"1sip:x", b"s p:x", b"nocolon"] {
            assert!(!has_scheme(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(valid_new(b"sip:a@b;x=y?h=1"));
        assert!(!valid_new(b"sip:a b") && !valid_new(b"sip:<a>") && !valid_new(b"a@b"));
        assert!(valid_restored(b"SIPS:a") && valid_restored(b"tel:+1"));
        assert!(!valid_restored(b"sip:") && !valid_restored(b"http:x"));
        assert!(!valid_restored(b"sip:a\"b") && !valid_restored(b"sip:\xff"));
        assert!(needs_enclosure(b"sip:a;b") && needs_enclosure(b"sip:a?b"));
        assert!(needs_enclosure(b"sip:a,b") && !needs_enclosure(b"sip:a@b"));
        assert_eq!(base(b"sip:a@b;x?y"), b"sip:a@b");
        assert_eq!(base(b"sip:a@b?y;x"), b"sip:a@b");
        assert!(matches(b"sip:A@B;x=1", b"sip:a@b"));
        assert!(matches(b"sip:a@b?x", b"sip:a@b;y"));
        assert!(!matches(b"sip:a@c", b"sip:a@b"));
        let mut out = Vec::new();
        push_with_param(&mut out, b"h:5060;transport=tcp?X=1", b"line", b"a b");
        assert_eq!(out, b"h:5060;transport=tcp;line=a%20b?X=1");
        out.clear();
        push_with_param(&mut out, b"h", b"line", b"u");
        assert_eq!(out, b"h;line=u");
    }
}
