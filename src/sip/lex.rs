//! The lexical layer every header parser of `sip` stands on (RFC 3261 §25.1, and RFC 7230
//! §3.2.6 / RFC 7235 §2.1 where the HTTP authentication grammar differs): one byte-class
//! table, `token`, `LWS`, `quoted-string` with `quoted-pair`, the top level of a header
//! value (outside quotes and `<>`), and the trims.
//!
//! ```text
//! LWS           = [*WSP CRLF] 1*WSP     ; linear whitespace (a line fold)
//! SWS           = [LWS]                 ; sep whitespace
//! token         = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
//! quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
//! qdtext        = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
//! quoted-pair   = "\" (%x00-09 / %x0B-0C / %x0E-7F)
//! ```
//!
//! Deployed peers fold lines with a bare LF as well as CRLF; Kamailio's parser accepts it,
//! so [`lws_end`] does too. The parsers differ only in how tolerant they are of what a
//! quoted-pair escapes ([`QuotedPair`]) and of a CR/LF that is not a fold (the strict
//! [`lws_end_strict`] or the tolerant [`lws_end`]); the scanning is this module's.

use std::borrow::Cow;

// ---------------------------------------------------------------------------------------
// Byte classes

/// RFC 3261 §25.1 `token`.
const TOKEN: u8 = 1;
/// RFC 7230 §3.2.6 `tchar`, a superset of `token` (`#`, `$`, `&`, `^`, `|`).
const TCHAR: u8 = 2;
/// RFC 7235 §2.1 `token68` without its `=` padding.
const TOKEN68: u8 = 4;
/// What a quoted-string holds as it is: not `"`, `\`, or a CTL other than HT.
const PLAIN_QUOTED: u8 = 8;
/// A tolerated unquoted auth-param value: visible, not `,` or `"`, any non-ASCII.
const BARE_VALUE: u8 = 16;
/// An unquoted display-name byte: visible, none of `"<>;,\`.
const DISPLAY: u8 = 32;
/// A URI byte as received in a name-addr: visible, none of `<>"`.
const URI: u8 = 64;
/// A header parameter name or unquoted value byte: visible, none of `"<>;,=`.
const PARAM: u8 = 128;

/// Every class of every byte: a scanner tests one table entry per byte instead of a chain
/// of comparisons.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let visible = b > 0x20 && b != 0x7f;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            t[i] |= TOKEN | TCHAR;
        }
        if matches!(b, b'#' | b'$' | b'&' | b'^' | b'|') {
            t[i] |= TCHAR;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/') {
            t[i] |= TOKEN68;
        }
        if b != b'"' && b != b'\\' && !is_ctl(b) {
            t[i] |= PLAIN_QUOTED;
        }
        if visible && b != b',' && b != b'"' {
            t[i] |= BARE_VALUE;
        }
        if visible && !matches!(b, b'"' | b'<' | b'>' | b';' | b',' | b'\\') {
            t[i] |= DISPLAY;
        }
        if visible && !matches!(b, b'<' | b'>' | b'"') {
            t[i] |= URI;
        }
        if visible && !matches!(b, b'"' | b'<' | b'>' | b';' | b',' | b'=') {
            t[i] |= PARAM;
        }
        i += 1;
    }
    t
};

#[inline]
fn class(b: u8, c: u8) -> bool {
    CLASS[usize::from(b)] & c != 0
}

/// RFC 3261 §25.1 `token` character.
#[inline]
pub fn is_token_char(b: u8) -> bool {
    class(b, TOKEN)
}

/// RFC 3261 §25.1 `token`: one or more token characters.
pub fn is_token(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&b| is_token_char(b))
}

/// RFC 7230 §3.2.6 `tchar` (auth-scheme and auth-param names, RFC 7235 §2.1).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    class(b, TCHAR)
}

/// RFC 7235 §2.1 `token68` character (without the trailing `=` padding).
#[inline]
pub fn is_token68(b: u8) -> bool {
    class(b, TOKEN68)
}

/// A byte of a tolerated unquoted auth-param value: visible, not `,` / `"`, any non-ASCII.
#[inline]
pub fn is_bare_value(b: u8) -> bool {
    class(b, BARE_VALUE)
}

/// A byte a quoted-string holds as it is: not `"`, `\` or a CTL other than HT.
#[inline]
pub fn is_plain_quoted(b: u8) -> bool {
    class(b, PLAIN_QUOTED)
}

/// A byte of an unquoted display name. Wider than `token` (real UAs send `(`, `@`,
/// UTF-8 ...), as Kamailio's parser is; still excludes everything that delimits a name-addr.
#[inline]
pub fn is_display_char(b: u8) -> bool {
    class(b, DISPLAY)
}

/// A byte of a URI as received in a name-addr. Non-ASCII is tolerated in parsed input (left
/// as the peer sent it); URIs we write are checked by [`super::uri::valid_new`].
#[inline]
pub fn is_uri_char(b: u8) -> bool {
    class(b, URI)
}

/// A byte of a header parameter name or unquoted value (`token` / `host`, widened the way
/// Kamailio's parser is).
#[inline]
pub fn is_param_char(b: u8) -> bool {
    class(b, PARAM)
}

/// CTLs except HT (RFC 5234 CTL = %x00-1F / %x7F).
pub const fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

// ---------------------------------------------------------------------------------------
// Whitespace

/// Why a piece of a header value is not lexically well-formed; each parser words it its own
/// way in its [`super::ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexError {
    /// A quoted-string without its closing quote.
    Unterminated,
    /// A `\` that is the last byte.
    PairAtEnd,
    /// A quoted-pair escaping a byte the [`QuotedPair`] rule refuses.
    BadPair,
    /// A CR or LF that is not part of a line fold (it ends the header field).
    BareCrLf,
    /// A control character other than HT in a quoted-string.
    Ctl,
}

/// End of linear whitespace at `i` (RFC 3261 §25.1 `LWS`: SP/HT, or a line fold CRLF/LF
/// followed by SP/HT); `i` when there is none. A CR or LF that is not a fold is left where it
/// is, for the caller to take as the end of the value or refuse.
#[inline]
pub fn lws_end(v: &[u8], i: usize) -> usize {
    match v.get(i) {
        Some(b' ' | b'\t' | b'\r' | b'\n') => lws_end_slow(v, i),
        _ => i,
    }
}

fn lws_end_slow(v: &[u8], mut i: usize) -> usize {
    loop {
        match v.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\r')
                if v.get(i + 1) == Some(&b'\n') && matches!(v.get(i + 2), Some(b' ' | b'\t')) =>
            {
                i += 3
            }
            Some(b'\n') if matches!(v.get(i + 1), Some(b' ' | b'\t')) => i += 2,
            _ => return i,
        }
    }
}

/// [`lws_end`] for a value that must hold no line end: a CR or LF after the whitespace that is
/// not a fold is [`LexError::BareCrLf`].
pub fn lws_end_strict(v: &[u8], i: usize) -> Result<usize, LexError> {
    let end = lws_end(v, i);
    match v.get(end) {
        Some(b'\r' | b'\n') => Err(LexError::BareCrLf),
        _ => Ok(end),
    }
}

fn trim_by(v: &[u8], ws: impl Fn(u8) -> bool) -> &[u8] {
    let start = v.iter().position(|&b| !ws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !ws(b)).map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Trims SP and HT (RFC 5234 `WSP`) on both sides; a CR or LF stays, to be refused.
pub fn trim_wsp(v: &[u8]) -> &[u8] {
    trim_by(v, |b| b == b' ' || b == b'\t')
}

/// Trims SP, HT, CR and LF on both sides: a header value that may still hold its folds or its
/// line end.
pub fn trim_lws(v: &[u8]) -> &[u8] {
    trim_by(v, |b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

// ---------------------------------------------------------------------------------------
// quoted-string

/// What a quoted-pair may escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotedPair {
    /// RFC 3261 §25.1: anything but CR and LF (non-ASCII tolerated, left to the caller).
    AnyButCrLf,
    /// Stricter, for values we unescape and hash: no CTL but HT (RFC 7230 §3.2.6
    /// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`).
    NoCtl,
}

impl QuotedPair {
    fn allows(self, b: u8) -> bool {
        match self {
            QuotedPair::AnyButCrLf => b != b'\r' && b != b'\n',
            QuotedPair::NoCtl => !is_ctl(b),
        }
    }
}

/// `v[i]` is `"`: the index after the closing quote of the quoted-string. Folds inside are
/// accepted, other CTLs but HT refused, quoted-pairs checked against `pair`.
pub fn quoted_end(v: &[u8], i: usize, pair: QuotedPair) -> Result<usize, LexError> {
    let mut j = i + 1;
    loop {
        let Some(&b) = v.get(j) else {
            return Err(LexError::Unterminated);
        };
        match b {
            _ if is_plain_quoted(b) => j += 1,
            b'"' => return Ok(j + 1),
            b'\\' => match v.get(j + 1) {
                None => return Err(LexError::PairAtEnd),
                Some(&c) if !pair.allows(c) => return Err(LexError::BadPair),
                Some(_) => j += 2,
            },
            b'\r' | b'\n' => {
                let k = lws_end(v, j);
                if k == j {
                    return Err(LexError::BareCrLf);
                }
                j = k;
            }
            _ => return Err(LexError::Ctl),
        }
    }
}

/// The content of a quoted-string that [`quoted_end`] accepted (between the quotes), as its
/// `unq()` value: quoted-pairs unescaped, each fold (with the whitespace that follows it)
/// one SP. Borrowed when there is nothing to rewrite (the usual case).
pub fn unquote(content: &[u8]) -> Cow<'_, [u8]> {
    if !content.iter().any(|&b| matches!(b, b'\\' | b'\r' | b'\n')) {
        return Cow::Borrowed(content);
    }
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while let Some(&b) = content.get(i) {
        match b {
            b'\\' => {
                out.extend(content.get(i + 1));
                i += 2;
            }
            b'\r' | b'\n' => {
                out.push(b' ');
                // Accepted by quoted_end, so a fold: it always advances; `+ 1` guards input
                // that was not.
                i = lws_end(content, i).max(i + 1);
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Appends `"v"` with `"` and `\` escaped as quoted-pairs (RFC 3261 §25.1).
pub fn push_quoted(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    // Almost no value needs escaping: one scan without early exit (vectorised), one copy.
    if !v
        .iter()
        .fold(false, |found, &b| found | (b == b'"') | (b == b'\\'))
    {
        out.extend_from_slice(v);
        out.push(b'"');
        return;
    }
    // Copy the runs between characters that need a backslash in one go.
    let mut rest = v;
    while let Some(i) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\\');
        out.push(rest[i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

// ---------------------------------------------------------------------------------------
// The top level of a header value

/// The positions of the bytes of a header value that stand outside quoted-strings and
/// outside `<>`, in order: where list commas and the `<` of a name-addr are found. The `<`
/// that opens an enclosure is itself at the top level; the quotes are not.
///
/// Lenient by design (it never fails): an unterminated quote or `<` hides the rest, a
/// quoted-pair hides the byte after `\`, and `"` inside `<>` is an ordinary byte.
#[derive(Debug, Clone)]
pub struct TopLevel<'a> {
    v: &'a [u8],
    i: usize,
    in_quotes: bool,
    in_angle: bool,
}

/// [`TopLevel`] over `v`.
pub fn top_level(v: &[u8]) -> TopLevel<'_> {
    TopLevel {
        v,
        i: 0,
        in_quotes: false,
        in_angle: false,
    }
}

impl Iterator for TopLevel<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while let Some(&b) = self.v.get(self.i) {
            let i = self.i;
            self.i += 1;
            match b {
                b'\\' if self.in_quotes => self.i += 1,
                b'"' if !self.in_angle => self.in_quotes = !self.in_quotes,
                _ if self.in_quotes => {}
                b'>' if self.in_angle => self.in_angle = false,
                _ if self.in_angle => {}
                b'<' => {
                    self.in_angle = true;
                    return Some(i);
                }
                _ => return Some(i),
            }
        }
        None
    }
}

/// Position of the first `needle` at the top level of `v` (see [`TopLevel`]).
pub fn find_top_level(v: &[u8], needle: u8) -> Option<usize> {
    top_level(v).find(|&i| v[i] == needle)
}

/// Splits a header value at its top-level commas (RFC 3261 §7.3.1: a list of values in
/// one field), not inside quotes or `<>`. Always at least one piece; pieces are not trimmed.
pub fn split_top_commas(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut commas = top_level(v).filter(|&i| v[i] == b',');
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let s = start?;
        match commas.next() {
            Some(c) => {
                start = Some(c + 1);
                Some(&v[s..c])
            }
            None => {
                start = None;
                Some(&v[s..])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            let alnum = b.is_ascii_alphanumeric();
            let printable = b > 0x20 && b != 0x7f;
            assert_eq!(is_token_char(b), alnum || b"-.!%*_+`'~".contains(&b), "{b}");
            assert_eq!(is_tchar(b), alnum || b"!#$%&'*+-.^_`|~".contains(&b), "{b}");
            assert_eq!(is_token68(b), alnum || b"-._~+/".contains(&b), "{b}");
            assert_eq!(
                is_bare_value(b),
                b > 0x20 && b != 0x7f && b != b',' && b != b'"',
                "{b}"
            );
            assert_eq!(
                is_plain_quoted(b),
                b != b'"' && b != b'\\' && !is_ctl(b),
                "{b}"
            );
            assert_eq!(
                is_display_char(b),
                printable && !b"\"<>;,\\".contains(&b),
                "{b}"
            );
            assert_eq!(is_uri_char(b), printable && !b"<>\"".contains(&b), "{b}");
            assert_eq!(
                is_param_char(b),
                printable && !b"\"<>;,=".contains(&b),
                "{b}"
            );
        }
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"INVITE"));
        assert!(is_token(b"a-b.c!d%e*f_g+h`i'j~k"));
        assert!(!is_token(b""));
        for bad in [&b"a b"[..], b"a;b", b"a=b", b"a\"", b"a#", b"\xff"] {
            assert!(!is_token(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn linear_whitespace() {
        assert_eq!(lws_end(b"  x", 0), 2);
        assert_eq!(lws_end(b"x", 0), 0);
        assert_eq!(lws_end(b" \r\n\tx", 0), 4);
        assert_eq!(lws_end(b" \n x", 0), 3, "bare-LF fold");
        assert_eq!(lws_end(b" \r\nx", 0), 1, "a line end, not a fold");
        assert_eq!(lws_end(b"\r\n", 0), 0);
        assert_eq!(lws_end_strict(b" \r\n x", 0), Ok(4));
        assert_eq!(lws_end_strict(b" \r\nx", 0), Err(LexError::BareCrLf));
        assert_eq!(lws_end_strict(b"\n", 0), Err(LexError::BareCrLf));
        assert_eq!(lws_end_strict(b"", 0), Ok(0));
    }

    #[test]
    fn trims() {
        assert_eq!(trim_wsp(b" \ta b\t "), b"a b");
        assert_eq!(trim_wsp(b"\r\na\r\n"), b"\r\na\r\n");
        assert_eq!(trim_wsp(b"  "), b"");
        assert_eq!(trim_lws(b"\r\n a b \t\r\n"), b"a b");
        assert_eq!(trim_lws(b" \r\n"), b"");
        assert_eq!(trim_lws(b""), b"");
    }

    #[test]
    fn quoted_strings() {
        use QuotedPair::*;
        assert_eq!(quoted_end(b"\"abc\" x", 0, AnyButCrLf), Ok(5));
        assert_eq!(quoted_end(b"\"a\\\"b\"", 0, AnyButCrLf), Ok(6));
        assert_eq!(quoted_end(b"\"a\r\n b\"", 0, NoCtl), Ok(7));
        assert_eq!(quoted_end(b"\"a\tb\xc3\xa9\"", 0, NoCtl), Ok(7));
        assert_eq!(quoted_end(b"\"abc", 0, NoCtl), Err(LexError::Unterminated));
        assert_eq!(quoted_end(b"\"abc\\", 0, NoCtl), Err(LexError::PairAtEnd));
        assert_eq!(quoted_end(b"\"a\\\rb\"", 0, NoCtl), Err(LexError::BadPair));
        assert_eq!(
            quoted_end(b"\"a\\\rb\"", 0, AnyButCrLf),
            Err(LexError::BadPair)
        );
        assert_eq!(quoted_end(b"\"a\\\x01b\"", 0, AnyButCrLf), Ok(6));
        assert_eq!(
            quoted_end(b"\"a\\\x01b\"", 0, NoCtl),
            Err(LexError::BadPair)
        );
        assert_eq!(quoted_end(b"\"a\r\nb\"", 0, NoCtl), Err(LexError::BareCrLf));
        assert_eq!(quoted_end(b"\"a\x00b\"", 0, AnyButCrLf), Err(LexError::Ctl));

        assert!(matches!(unquote(b"plain"), Cow::Borrowed(b"plain")));
        assert_eq!(unquote(b"a\\\"b\\\\c\\d"), &b"a\"b\\cd"[..]);
        assert_eq!(unquote(b"auth,\r\n auth-int"), &b"auth, auth-int"[..]);
        assert_eq!(unquote(b"a \r\n\t \n b"), &b"a  b"[..]);

        for v in [&b""[..], b"plain", b"a\"b", b"\\", b"\"\\\""] {
            let mut out = Vec::new();
            push_quoted(&mut out, v);
            assert_eq!(quoted_end(&out, 0, NoCtl), Ok(out.len()));
            assert_eq!(unquote(&out[1..out.len() - 1]), v);
        }
    }

    #[test]
    fn top_level_commas_and_angles() {
        let split = |v: &'static [u8]| split_top_commas(v).collect::<Vec<_>>();
        assert_eq!(split(b""), [b""]);
        assert_eq!(split(b"a,b"), [&b"a"[..], b"b"]);
        assert_eq!(split(b"a,"), [&b"a"[..], b""]);
        assert_eq!(
            split(b"\"A, <b>\" <sip:x@h;p=a,b>;q=1, <sip:y>"),
            [&b"\"A, <b>\" <sip:x@h;p=a,b>;q=1"[..], b" <sip:y>"]
        );
        // a quoted-pair hides the quote; a quote inside <> is an ordinary byte
        assert_eq!(split(b"\"a\\\",b\",c"), [&b"\"a\\\",b\""[..], b"c"]);
        assert_eq!(split(b"<sip:\"x>,y"), [&b"<sip:\"x>"[..], b"y"]);
        // unterminated: the rest is hidden
        assert_eq!(split(b"\"a,b"), [b"\"a,b"]);
        assert_eq!(split(b"<a,b"), [b"<a,b"]);

        assert_eq!(find_top_level(b"\"<x>\" <sip:u>", b'<'), Some(6));
        assert_eq!(find_top_level(b"\"x\\\"<\" <sip:u>", b'<'), Some(7));
        assert_eq!(find_top_level(b"sip:u;x", b'<'), None);
        assert_eq!(find_top_level(b"\"<", b'<'), None);
    }
}
