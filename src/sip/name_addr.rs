//! From/To header values (RFC 3261 §20.20, §20.39, grammar in §25.1): parse into byte spans,
//! and compute the edits that replace or restore the display name and the URI.
//!
//! ```text
//! from-spec    = ( name-addr / addr-spec ) *( SEMI from-param )
//! name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
//! display-name = *(token LWS) / quoted-string
//! ```
//!
//! Everything works on the header *value* (what follows `From:`), as bytes. Edits are
//! expressed as [`Edit`]s (replace a byte range of the value) so that the host layer can turn
//! each one into a delete + insert lump, exactly like the C module does, or apply them all
//! with [`apply`] to get the new value.
//!
//! Differences from the C module (5.6.3 `replace.c` `replace_uri()`), all in cases where the
//! C output is not well-formed:
//! - Removing the display name also removes the whitespace that followed it (C 5.6.3 left
//!   it, giving `From:  <sip:..>`; fixed in C master by kam 1018ff6934, which removes spaces
//!   only, we also remove tabs and folding).
//! - A new URI containing `;`, `?` or `,` written into an addr-spec that had no `<>` is
//!   enclosed in `<>` (RFC 3261 §20.10). C 5.6.3 wrote it bare, so its parameters became
//!   header parameters; C master (kam d9e6bb39ca) encloses for `;` only, and writes `<<..>>`
//!   when a display name is added in the same call.
//! - A new display name written directly against `<` (`"A"<sip:..>`) gets one space before
//!   the `<`: `*(token LWS)` requires the LWS after a token display name.
//! - New display names and URIs are validated (no CR/LF/NUL, balanced quotes, a scheme) and
//!   refused otherwise, instead of being written verbatim into the message.

use std::ops::Range;

use super::ParseError;
use super::inline::InlineBytes;
use super::lex::{
    self, LexError, QuotedPair, is_display_char, is_param_char, is_uri_char, lws_end,
};
use super::uri;

const WHAT: &str = "From/To header";

fn err(why: &'static str) -> ParseError {
    ParseError::new(WHAT, why)
}

/// Byte spans of a parsed From/To header value. All ranges index the parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, with its quotes if it is a quoted-string; `None` if absent.
    pub display: Option<Range<usize>>,
    /// The URI alone (inside `<>` if enclosed).
    pub uri: Range<usize>,
    /// Position of `<` and `>` when the URI is enclosed (name-addr form).
    pub angle: Option<(usize, usize)>,
    /// From the first byte of the display name (or `<`, or the URI) to the end of `>` (or of
    /// the URI): the part the C module stores in `restore_*_avp` and swaps in replies.
    pub addr: Range<usize>,
    /// Everything after `addr`: header parameters including `tag`, with the surrounding
    /// whitespace. Left untouched by every edit in this module.
    pub params: Range<usize>,
    /// The value of the `tag` parameter, if present (RFC 3261 §19.3).
    pub tag: Option<Range<usize>>,
}

impl NameAddr {
    /// Whether the URI is enclosed in `<>` (name-addr rather than addr-spec).
    pub fn is_enclosed(&self) -> bool {
        self.angle.is_some()
    }
}

/// One change to a header value: replace `range` (possibly empty: an insertion) by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<usize>,
    pub text: Vec<u8>,
}

/// Apply non-overlapping edits sorted by position (as returned by this module).
pub fn apply(value: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(value.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut pos = 0;
    for e in edits {
        out.extend_from_slice(&value[pos..e.range.start]);
        out.extend_from_slice(&e.text);
        pos = e.range.end;
    }
    out.extend_from_slice(&value[pos..]);
    out
}

/// `v[i]` is `"`; returns the index after the closing quote (RFC 3261 §25.1 `quoted-string`,
/// `quoted-pair` may escape anything but CR and LF).
fn quoted_end(v: &[u8], i: usize) -> Result<usize, ParseError> {
    lex::quoted_end(v, i, QuotedPair::AnyButCrLf).map_err(|e| {
        err(match e {
            LexError::Unterminated => "unterminated quoted-string",
            LexError::PairAtEnd | LexError::BadPair => "bad quoted-pair",
            LexError::BareCrLf => "CR/LF in quoted-string",
            LexError::Ctl => "control character in quoted-string",
        })
    })
}

/// A display name we are asked to write: a whole quoted-string, or words of display
/// characters separated by SP/HT.
fn valid_new_display(d: &[u8]) -> bool {
    match d.first() {
        Some(b'"') => {
            quoted_end(d, 0).is_ok_and(|e| e == d.len()) && !d.iter().any(|b| b"\r\n".contains(b))
        }
        Some(_) => d
            .iter()
            .all(|&b| is_display_char(b) || b == b' ' || b == b'\t'),
        None => true,
    }
}

// ---------------------------------------------------------------------------------------
// Parser

/// Scan an unquoted display name starting at `i`: display words and LWS up to `<`.
/// Returns (end of the last word, position of `<`), or `None` if this is not a display name
/// (then the value is an addr-spec).
fn token_display(v: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    let mut end = i;
    loop {
        match v.get(j) {
            Some(b'<') if end > i => return Some((end, j)),
            Some(&b) if is_display_char(b) => {
                j += 1;
                end = j;
            }
            Some(_) => {
                let k = lws_end(v, j);
                if k == j {
                    return None;
                }
                j = k;
            }
            None => return None,
        }
    }
}

/// Parse a From/To header value (RFC 3261 §20.20 / §20.39).
///
/// Tolerant where Kamailio's own parser is (LWS inside `<>`, wide display-name characters,
/// folded lines), strict about what would make a replacement ambiguous.
pub fn parse(v: &[u8]) -> Result<NameAddr, ParseError> {
    let start = lws_end(v, 0);
    let Some(&first) = v.get(start) else {
        return Err(err("empty value"));
    };
    let (display, lt) = match first {
        b'"' => {
            let end = quoted_end(v, start)?;
            let lt = lws_end(v, end);
            if v.get(lt) != Some(&b'<') {
                return Err(err("quoted display-name not followed by <"));
            }
            (Some(start..end), Some(lt))
        }
        b'<' => (None, Some(start)),
        _ => match token_display(v, start) {
            Some((end, lt)) => (Some(start..end), Some(lt)),
            None => (None, None),
        },
    };

    let (uri, angle, addr_end) = match lt {
        Some(lt) => {
            // LAQUOT addr-spec RAQUOT; whitespace inside <> is tolerated like Kamailio does.
            let us = lws_end(v, lt + 1);
            let mut j = us;
            while v.get(j).is_some_and(|&b| is_uri_char(b)) {
                j += 1;
            }
            let ue = j;
            let gt = lws_end(v, ue);
            if v.get(gt) != Some(&b'>') {
                return Err(err("missing > after URI"));
            }
            (us..ue, Some((lt, gt)), gt + 1)
        }
        None => {
            // addr-spec: parameters after ';' belong to the header (RFC 3261 §20.10).
            let mut j = start;
            while v
                .get(j)
                .is_some_and(|&b| is_uri_char(b) && b != b';' && b != b',')
            {
                j += 1;
            }
            (start..j, None, j)
        }
    };
    if !uri::has_scheme(&v[uri.clone()]) {
        return Err(err("URI without scheme"));
    }
    let tag = parse_params(v, addr_end)?;
    let addr_start = display
        .as_ref()
        .map_or(lt.unwrap_or(uri.start), |d| d.start);
    Ok(NameAddr {
        display,
        uri,
        angle,
        addr: addr_start..addr_end,
        params: addr_end..v.len(),
        tag,
    })
}

/// `*( SEMI generic-param )` up to the end of the value; returns the `tag` value span.
fn parse_params(v: &[u8], from: usize) -> Result<Option<Range<usize>>, ParseError> {
    let mut tag = None;
    let mut j = lws_end(v, from);
    while j < v.len() {
        // A header value handed over with its line end.
        if matches!(&v[j..], b"\r\n" | b"\n") {
            break;
        }
        if v[j] != b';' {
            return Err(err("unexpected character after URI"));
        }
        j = lws_end(v, j + 1);
        let ns = j;
        while v.get(j).is_some_and(|&b| is_param_char(b)) {
            j += 1;
        }
        if j == ns {
            return Err(err("empty parameter name"));
        }
        let name = ns..j;
        j = lws_end(v, j);
        let mut value = None;
        if v.get(j) == Some(&b'=') {
            j = lws_end(v, j + 1);
            let vs = j;
            if v.get(j) == Some(&b'"') {
                j = quoted_end(v, j)?;
            } else {
                while v.get(j).is_some_and(|&b| is_param_char(b)) {
                    j += 1;
                }
            }
            if j == vs {
                return Err(err("empty parameter value"));
            }
            value = Some(vs..j);
            j = lws_end(v, j);
        }
        if tag.is_none() && v[name].eq_ignore_ascii_case(b"tag") {
            tag = Some(value.ok_or(err("tag without value"))?);
        }
    }
    Ok(tag)
}

// ---------------------------------------------------------------------------------------
// Loose reading

/// One element of a Contact list as [`parse_loose`] reads it: the URI and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LooseNameAddr<'a> {
    /// The URI without `<>`, trimmed; may be empty or lack a scheme (the caller decides).
    pub uri: &'a [u8],
    /// Everything after the `>` (name-addr) or from the first `;` (addr-spec): the header
    /// parameters with their `;`.
    pub params: &'a [u8],
}

/// Reads `(name-addr / addr-spec) *(SEMI generic-param)` the way a registering UA reads the
/// Contacts of a registrar's reply, where [`parse`] is for the From/To we rewrite: nothing
/// is validated, so that one odd Contact (a display name with any bytes, a URI Kamailio would
/// refuse) neither hides the others nor our own. The URI is between the first `<` outside a
/// quoted display name and the next `>`; without `<`, up to the first `;` (whose parameters
/// are the header's, RFC 3261 §20.10). `None` only for a `<` without a `>`.
pub fn parse_loose(v: &[u8]) -> Option<LooseNameAddr<'_>> {
    let v = lex::trim_lws(v);
    let (uri, params) = match lex::find_top_level(v, b'<') {
        Some(lt) => {
            let gt = lt + v[lt..].iter().position(|&b| b == b'>')?;
            (&v[lt + 1..gt], &v[gt + 1..])
        }
        None => {
            let semi = v.iter().position(|&b| b == b';').unwrap_or(v.len());
            (&v[..semi], &v[semi..])
        }
    };
    Some(LooseNameAddr {
        uri: lex::trim_lws(uri),
        params,
    })
}

impl<'a> LooseNameAddr<'a> {
    /// The header parameters as (name, value), both trimmed, in order; the value is empty
    /// for a parameter without `=`, and keeps its quotes. Split at every `;`, as loosely as
    /// the rest.
    pub fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        self.params.split(|&b| b == b';').map(|p| {
            let p = lex::trim_lws(p);
            match p.iter().position(|&b| b == b'=') {
                Some(eq) => (lex::trim_lws(&p[..eq]), lex::trim_lws(&p[eq + 1..])),
                None => (p, &p[p.len()..]),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Replacement

/// An [`Edit`] whose new text is the concatenation of up to four borrowed pieces: what the
/// per-call paths turn into lumps without building the text first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRef<'a> {
    pub range: Range<usize>,
    pub text: [&'a [u8]; 4],
}

impl<'a> EditRef<'a> {
    fn new(range: Range<usize>, parts: &[&'a [u8]]) -> EditRef<'a> {
        let mut text: [&'a [u8]; 4] = [b""; 4];
        text[..parts.len()].copy_from_slice(parts);
        EditRef { range, text }
    }

    /// The owned form.
    pub fn to_edit(&self) -> Edit {
        Edit {
            range: self.range.clone(),
            text: self.text.concat(),
        }
    }
}

/// At most two [`EditRef`]s (display name, then URI), sorted by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits<'a>([Option<EditRef<'a>>; 2]);

impl<'a> Edits<'a> {
    fn push(&mut self, e: EditRef<'a>) {
        let slot = if self.0[0].is_none() { 0 } else { 1 };
        self.0[slot] = Some(e);
    }

    pub fn iter(&self) -> impl Iterator<Item = &EditRef<'a>> {
        self.0.iter().flatten()
    }

    pub fn to_vec(&self) -> Vec<Edit> {
        self.iter().map(EditRef::to_edit).collect()
    }
}

/// [`apply`] for borrowed edits, into a stack buffer.
pub fn apply_ref<const N: usize>(value: &[u8], edits: &Edits<'_>) -> InlineBytes<N> {
    let mut out = InlineBytes::new();
    let mut pos = 0;
    for e in edits.iter() {
        out.extend_from_slice(&value[pos..e.range.start]);
        for t in e.text {
            out.extend_from_slice(t);
        }
        pos = e.range.end;
    }
    out.extend_from_slice(&value[pos..]);
    out
}

/// Edits that replace the display name and/or the URI of a From/To value
/// (`uac_replace_from/to`, admin guide 4.1/4.2).
///
/// - `display`: `None` keeps it; `Some(b"")` (or only whitespace) removes it; `Some(x)` writes
///   `x` verbatim (quoting is the caller's business), trimmed of surrounding SP/HT.
/// - `uri`: `None` or empty keeps it.
///
/// The result is always a well-formed value that keeps the tag and header parameters. When
/// only the URI changes and no `<>` are needed, the single edit covers exactly
/// [`NameAddr::uri`] (the C module's lump).
pub fn replace(
    value: &[u8],
    display: Option<&[u8]>,
    uri: Option<&[u8]>,
) -> Result<Vec<Edit>, ParseError> {
    let na = parse(value)?;
    Ok(replace_parsed(value, &na, display, uri)?.to_vec())
}

/// [`replace`] on a value the caller has parsed into `na`, with borrowed edits.
pub fn replace_parsed<'a>(
    value: &'a [u8],
    na: &NameAddr,
    display: Option<&'a [u8]>,
    uri: Option<&'a [u8]>,
) -> Result<Edits<'a>, ParseError> {
    let display = display.map(lex::trim_wsp);
    if display.is_some_and(|d| !valid_new_display(d)) {
        return Err(err("invalid new display name"));
    }
    let uri = uri.filter(|u| !u.is_empty());
    if uri.is_some_and(|u| !uri::valid_new(u)) {
        return Err(err("invalid new URI"));
    }
    Ok(edits_for(value, na, display, uri))
}

fn edits_for<'a>(
    value: &'a [u8],
    na: &NameAddr,
    display: Option<&'a [u8]>,
    uri: Option<&'a [u8]>,
) -> Edits<'a> {
    let mut edits = Edits::default();
    match na.angle {
        Some((lt, _)) => {
            match (display, &na.display) {
                (None, _) | (Some(b""), None) => {}
                // Remove the display name and the LWS up to '<' (kam 1018ff6934).
                (Some(b""), Some(d)) => edits.push(EditRef::new(d.start..lt, &[])),
                (Some(x), Some(d)) => {
                    let sp: &[u8] = if d.end == lt { b" " } else { b"" };
                    edits.push(EditRef::new(d.clone(), &[x, sp]));
                }
                // C: "x " anchored before '<' (get_display_anchor()).
                (Some(x), None) => edits.push(EditRef::new(lt..lt, &[x, b" "])),
            }
            if let Some(u) = uri {
                edits.push(EditRef::new(na.uri.clone(), &[u]));
            }
        }
        None => {
            let new_uri = uri.unwrap_or(&value[na.uri.clone()]);
            match display {
                // C: "x <" before the URI and ">" after it (get_display_anchor()).
                Some(x) if !x.is_empty() => {
                    edits.push(EditRef::new(na.uri.clone(), &[x, b" <", new_uri, b">"]))
                }
                _ if uri.is_none() => {}
                _ if uri::needs_enclosure(new_uri) => {
                    edits.push(EditRef::new(na.uri.clone(), &[b"<", new_uri, b">"]))
                }
                _ => edits.push(EditRef::new(na.uri.clone(), &[new_uri])),
            }
        }
    }
    edits
}

/// [`replace`], applied: the new full header value.
pub fn replace_value(
    value: &[u8],
    display: Option<&[u8]>,
    uri: Option<&[u8]>,
) -> Result<Vec<u8>, ParseError> {
    Ok(apply(value, &replace(value, display, uri)?))
}

/// Restore only the URI part of a From/To value of an in-dialog request: if its URI is
/// `expected` (see [`uri::matches`]), swap it for `put_back`, leaving the display name and the
/// parameters as the peer sent them. Any other URI is refused (not the one the module
/// replaced: never write a URI computed from someone else's).
pub fn restore_uri(
    value: &[u8],
    expected: &[u8],
    put_back: &[u8],
) -> Result<Vec<Edit>, ParseError> {
    let na = parse(value)?;
    Ok(restore_uri_parsed(value, &na, expected, put_back)?.to_vec())
}

/// [`restore_uri`] on a value the caller has parsed into `na`, with borrowed edits.
pub fn restore_uri_parsed<'a>(
    value: &'a [u8],
    na: &NameAddr,
    expected: &[u8],
    put_back: &'a [u8],
) -> Result<Edits<'a>, ParseError> {
    if !uri::matches(&value[na.uri.clone()], expected) {
        return Err(err("URI is not the one the module replaced"));
    }
    if !uri::valid_new(put_back) {
        return Err(err("invalid URI to restore"));
    }
    Ok(edits_for(value, na, None, Some(put_back)))
}

/// Replace the [`NameAddr::addr`] part of a reply's From/To with `addr` (the same part of the
/// request as it was received, or the `restore_*_avp` value), keeping the reply's parameters
/// (its To tag). This is what the C module's `restore_uris_reply()` writes.
pub fn replace_addr(value: &[u8], addr: &[u8]) -> Result<Vec<Edit>, ParseError> {
    replace_addr_parsed(&parse(value)?, addr)
}

/// [`replace_addr`] for a caller that has already parsed the reply's value
/// into `na` (saves parsing it twice on the per-reply path).
pub fn replace_addr_parsed(na: &NameAddr, addr: &[u8]) -> Result<Vec<Edit>, ParseError> {
    check_addr(na, addr)?;
    Ok(vec![Edit {
        range: na.addr.clone(),
        text: addr.to_vec(),
    }])
}

/// What [`replace_addr_parsed`] checks: `addr` may replace [`NameAddr::addr`] of `na` (the
/// edit is then `na.addr` → `addr`, built by the caller without a copy).
pub fn check_addr(na: &NameAddr, addr: &[u8]) -> Result<(), ParseError> {
    let new = parse(addr)?;
    if new.params.start != addr.len() {
        return Err(err("address to restore has parameters"));
    }
    if !na.is_enclosed() && !new.is_enclosed() && uri::needs_enclosure(&addr[new.uri.clone()]) {
        return Err(err("address to restore needs <>"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngExt, SeedableRng};

    fn s(r: &Option<Range<usize>>, v: &[u8]) -> Option<String> {
        r.clone()
            .map(|r| String::from_utf8_lossy(&v[r]).into_owned())
    }

    fn rep(v: &str, d: Option<&str>, u: Option<&str>) -> String {
        let out = replace_value(v.as_bytes(), d.map(str::as_bytes), u.map(str::as_bytes))
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        String::from_utf8(out).unwrap()
    }

    /// value, display, uri, enclosed, addr, tag
    type ParseCase = (
        &'static str,
        Option<&'static str>,
        &'static str,
        bool,
        &'static str,
        Option<&'static str>,
    );

    #[test]
    fn parse_table() {
        // value, display, uri, enclosed, addr, tag
        #[rustfmt::skip]
        let cases: &[ParseCase] = &[
            ("<sip:a@b>", None, "sip:a@b", true, "<sip:a@b>", None),
            ("<sip:a@b>;tag=1", None, "sip:a@b", true, "<sip:a@b>", Some("1")),
            ("sip:a@b", None, "sip:a@b", false, "sip:a@b", None),
            ("sip:a@b;tag=x1", None, "sip:a@b", false, "sip:a@b", Some("x1")),
            ("sip:a@b ; tag = x1 ", None, "sip:a@b", false, "sip:a@b", Some("x1")),
            ("Alice <sip:a@b;user=phone>;tag=9", Some("Alice"), "sip:a@b;user=phone", true,
             "Alice <sip:a@b;user=phone>", Some("9")),
            ("John  Q. Public\t<sip:j@p>", Some("John  Q. Public"), "sip:j@p", true,
             "John  Q. Public\t<sip:j@p>", None),
            ("\"Alice \\\"A\\\" <x>\" <sip:a@b>;x=\"y;z\";tag=t", Some("\"Alice \\\"A\\\" <x>\""),
             "sip:a@b", true, "\"Alice \\\"A\\\" <x>\" <sip:a@b>", Some("t")),
            ("\"Bob\"<sips:b@c:5061>", Some("\"Bob\""), "sips:b@c:5061", true,
             "\"Bob\"<sips:b@c:5061>", None),
            ("  < sip:a@b >  ;tag=z  ", None, "sip:a@b", true, "< sip:a@b >", Some("z")),
            ("tel:+123;tag=q;x", None, "tel:+123", false, "tel:+123", Some("q")),
            ("M\u{fc}ller <sip:m@x>", Some("M\u{fc}ller"), "sip:m@x", true, "M\u{fc}ller <sip:m@x>",
             None),
            ("sip:a@b <sip:c@d>", Some("sip:a@b"), "sip:c@d", true, "sip:a@b <sip:c@d>", None),
            ("<sip:a@b>;TAG=Up", None, "sip:a@b", true, "<sip:a@b>", Some("Up")),
            ("\"A\"\r\n <sip:a@b>", Some("\"A\""), "sip:a@b", true, "\"A\"\r\n <sip:a@b>", None),
            ("<sip:a@b>;tag=1\r\n", None, "sip:a@b", true, "<sip:a@b>", Some("1")),
            ("sip:a@b\r\n", None, "sip:a@b", false, "sip:a@b", None),
        ];
        for (v, d, u, enc, addr, tag) in cases {
            let b = v.as_bytes();
            let na = parse(b).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert_eq!(s(&na.display, b).as_deref(), *d, "{v:?}");
            assert_eq!(&v[na.uri.clone()], *u, "{v:?}");
            assert_eq!(na.is_enclosed(), *enc, "{v:?}");
            assert_eq!(&v[na.addr.clone()], *addr, "{v:?}");
            assert_eq!(s(&na.tag, b).as_deref(), *tag, "{v:?}");
            assert_eq!(na.params.end, b.len());
        }
    }

    #[test]
    fn parse_garbage() {
        for v in [
            "",
            "   ",
            "<",
            "<>",
            "<sip:a@b",
            "sip",
            "Alice",
            "Alice <>",
            "\"Alice <sip:a@b>",
            "\"A\" sip:a@b",
            "<sip:a@b> junk",
            "<sip:a@b>;",
            "<sip:a@b>;=x",
            "<sip:a@b>;tag",
            "<sip:a@b>;tag=",
            "sip:a@b,sip:c@d",
            "<sip:a@b>,<sip:c@d>",
            "Dr \"Who\" <sip:a@b>",
            "<a@b>",
            "<:x>",
            "<sip:a@b>;x=\"unterminated",
            "\"a\\",
            "\"a\r\nb\" <sip:a@b>",
            "<sip:a\"b@c>",
            "<sip:a@b>\r\n;tag=1",
            "\"x\u{0}\" <sip:a@b>",
            ";tag=1",
        ] {
            assert!(parse(v.as_bytes()).is_err(), "{v:?} should not parse");
        }
    }

    /// Each replacement case against each header shape. Where C 5.6.3 (replace_uri()) writes
    /// a well-formed value, the expected output is what it writes, byte for byte.
    #[test]
    fn replace_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            // display only
            ("Alice <sip:a@b>;tag=1", Some("\"Bob\""), None, "\"Bob\" <sip:a@b>;tag=1"),
            ("\"Al\\\"ice\"  <sip:a@b>;tag=1", Some("Bob"), None, "Bob  <sip:a@b>;tag=1"),
            ("<sip:a@b>;tag=1", Some("Bob"), None, "Bob <sip:a@b>;tag=1"),
            ("sip:a@b;tag=1", Some("Bob"), None, "Bob <sip:a@b>;tag=1"),
            ("sip:a@b", Some("\"B o b\""), None, "\"B o b\" <sip:a@b>"),
            ("\"A\"<sip:a@b>", Some("\"B\""), None, "\"B\" <sip:a@b>"),
            ("<sip:a@b>", Some("  Bob  "), None, "Bob <sip:a@b>"),
            // remove display (C 5.6.3: leading space; C master and we: none)
            ("Alice <sip:a@b>;tag=1", Some(""), None, "<sip:a@b>;tag=1"),
            ("\"Alice\" \t <sip:a@b>;tag=1", Some(""), None, "<sip:a@b>;tag=1"),
            ("<sip:a@b>;tag=1", Some(""), None, "<sip:a@b>;tag=1"),
            ("sip:a@b;tag=1", Some(""), None, "sip:a@b;tag=1"),
            ("sip:a@b;tag=1", Some(" "), None, "sip:a@b;tag=1"),
            // URI only
            ("Alice <sip:a@b>;tag=1", None, Some("sip:x@y"), "Alice <sip:x@y>;tag=1"),
            ("<sip:a@b;user=phone>;tag=1", None, Some("sip:x@y"), "<sip:x@y>;tag=1"),
            ("<sip:a@b>;tag=1", None, Some("sip:x@y;user=phone"), "<sip:x@y;user=phone>;tag=1"),
            ("sip:a@b;tag=1", None, Some("sip:x@y"), "sip:x@y;tag=1"),
            ("sip:a@b;tag=1", None, Some("sip:x@y;user=phone"), "<sip:x@y;user=phone>;tag=1"),
            ("sip:a@b;tag=1", None, Some("sip:x@y?h=v"), "<sip:x@y?h=v>;tag=1"),
            ("sip:a@b", None, Some("tel:+1;phone-context=x"), "<tel:+1;phone-context=x>"),
            ("Alice <sip:a@b>", Some("Alice"), Some(""), "Alice <sip:a@b>"),
            ("Alice <sip:a@b>", None, Some(""), "Alice <sip:a@b>"),
            // both
            ("Alice <sip:a@b>;tag=1", Some("Bob"), Some("sip:x@y"), "Bob <sip:x@y>;tag=1"),
            ("<sip:a@b>;tag=1", Some("Bob"), Some("sip:x@y"), "Bob <sip:x@y>;tag=1"),
            ("sip:a@b;tag=1", Some("Bob"), Some("sip:x@y"), "Bob <sip:x@y>;tag=1"),
            ("sip:a@b;tag=1", Some("Bob"), Some("sip:x@y;u=1"), "Bob <sip:x@y;u=1>;tag=1"),
            ("Alice <sip:a@b>;tag=1", Some(""), Some("sip:x@y"), "<sip:x@y>;tag=1"),
            ("sip:a@b;tag=1", Some(""), Some("sip:x@y;u=1"), "<sip:x@y;u=1>;tag=1"),
            ("  Alice <sip:a@b> ; tag=1 ", Some("B"), Some("sip:x@y"), "  B <sip:x@y> ; tag=1 "),
            // neither
            ("Alice <sip:a@b>;tag=1", None, None, "Alice <sip:a@b>;tag=1"),
        ];
        for (v, d, u, want) in cases {
            let got = rep(v, *d, *u);
            assert_eq!(&got, want, "{v:?} display={d:?} uri={u:?}");
            // The output is well-formed and keeps the tag.
            let b = got.as_bytes();
            let na = parse(b).unwrap_or_else(|e| panic!("{got:?} does not reparse: {e}"));
            let before = parse(v.as_bytes()).unwrap();
            assert_eq!(s(&na.tag, b), s(&before.tag, v.as_bytes()));
            if let Some(u) = u.filter(|u| !u.is_empty()) {
                assert_eq!(&got[na.uri.clone()], u);
            }
            assert!(
                !got.contains("  <") || v.contains("  <"),
                "double space in {got:?}"
            );
        }
    }

    #[test]
    fn uri_only_edit_is_the_uri_span() {
        let v = b"\"Alice\" <sip:alice@example.com;user=phone>;tag=abc";
        let na = parse(v).unwrap();
        let e = replace(v, None, Some(b"sip:anon@anonymous.invalid")).unwrap();
        assert_eq!(
            e,
            vec![Edit {
                range: na.uri,
                text: b"sip:anon@anonymous.invalid".to_vec()
            }]
        );
        // display-only: one edit over the display, C's del lump + insert.
        let e = replace(v, Some(b"Anonymous"), None).unwrap();
        assert_eq!(
            e,
            vec![Edit {
                range: na.display.unwrap(),
                text: b"Anonymous".to_vec()
            }]
        );
    }

    #[test]
    fn replace_refuses_bad_arguments() {
        let v = b"Alice <sip:a@b>;tag=1";
        for d in [
            &b"\"Bob"[..],
            b"Bob\r\nX: y",
            b"B<o>b",
            b"\"B\" x",
            b"a;b",
            b"\"a\"\"b\"",
            b"a\0",
        ] {
            assert!(
                replace(v, Some(d), None).is_err(),
                "{:?}",
                String::from_utf8_lossy(d)
            );
        }
        for u in [
            &b"x@y"[..],
            b"sip:a b",
            b"sip:a>b",
            b"sip:\r\n",
            b"sip:",
            b":x",
            b"sip:\xc3\xbc",
        ] {
            assert!(
                replace(v, None, Some(u)).is_err(),
                "{:?}",
                String::from_utf8_lossy(u)
            );
        }
    }

    #[test]
    fn chained_replace_last_call_wins() {
        let v = b"Alice <sip:a@b>;tag=1";
        let one = replace_value(v, Some(b"Bob"), Some(b"sip:x@y")).unwrap();
        let two = replace_value(&one, None, Some(b"sip:z@w")).unwrap();
        assert_eq!(two, b"Bob <sip:z@w>;tag=1");
        let three = replace_value(&two, Some(b""), None).unwrap();
        assert_eq!(three, b"<sip:z@w>;tag=1");
    }

    #[test]
    fn restore_only_the_uri() {
        let peer = b"\"Changed By Peer\" <sip:anon@x.invalid>;tag=9;foo=bar";
        let e = restore_uri(peer, b"sip:anon@x.invalid", b"sip:alice@example.com").unwrap();
        assert_eq!(
            apply(peer, &e),
            b"\"Changed By Peer\" <sip:alice@example.com>;tag=9;foo=bar"
        );
        // Peer added a URI parameter and changed case: still ours.
        let peer = b"<sip:ANON@x.invalid;transport=udp>;tag=9";
        let e = restore_uri(peer, b"sip:anon@x.invalid", b"sip:alice@example.com").unwrap();
        assert_eq!(apply(peer, &e), b"<sip:alice@example.com>;tag=9");
        // Unenclosed, restored URI with params gets <>.
        let peer = b"sip:anon@x.invalid;tag=9";
        let e = restore_uri(peer, b"sip:anon@x.invalid", b"sip:a@b;user=phone").unwrap();
        assert_eq!(apply(peer, &e), b"<sip:a@b;user=phone>;tag=9");
        // Not ours: refused.
        assert!(restore_uri(b"<sip:other@x.invalid>", b"sip:anon@x.invalid", b"sip:a@b").is_err());
        assert!(restore_uri(b"<sip:anon@x.invalid>", b"sip:anon@x.invalid", b"a\r\nb").is_err());
    }

    #[test]
    fn reply_addr_swap() {
        let rpl = b"Anonymous <sip:anon@x.invalid>;tag=callee";
        let req = b"\"Alice\" <sip:alice@example.com>;tag=caller";
        let addr = &req[parse(req).unwrap().addr];
        let e = replace_addr(rpl, addr).unwrap();
        assert_eq!(
            apply(rpl, &e),
            b"\"Alice\" <sip:alice@example.com>;tag=callee"
        );
        let e = replace_addr(b"sip:anon@x;tag=t", b"sip:alice@example.com").unwrap();
        assert_eq!(
            apply(b"sip:anon@x;tag=t", &e),
            b"sip:alice@example.com;tag=t"
        );
        assert!(replace_addr(rpl, b"<sip:a@b>;tag=x").is_err());
        assert!(replace_addr(rpl, b"junk").is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let alphabet = b"\"\\<>;,= \t\r\n:@abcSIPsip123\x00\xff~tag";
        for n in 0..20_000 {
            let len = rng.random_range(0..48);
            let mut v = vec![0u8; len];
            if n % 2 == 0 {
                rng.fill_bytes(&mut v);
            } else {
                for b in &mut v {
                    *b = alphabet[rng.random_range(0..alphabet.len())];
                }
            }
            if let Ok(na) = parse(&v) {
                assert!(na.uri.end <= v.len() && na.addr.end <= v.len());
                for (d, u) in [
                    (Some(&b"X"[..]), None),
                    (Some(b""), Some(&b"sip:x@y;p"[..])),
                ] {
                    let out = replace_value(&v, d, u).expect("parsed value must be replaceable");
                    assert!(parse(&out).is_ok(), "{:?} -> {:?}", v, out);
                }
            }
            let _ = restore_uri(&v, b"sip:a@b", b"sip:c@d");
            let _ = replace_addr(b"<sip:a@b>", &v);
        }
    }
}
