//! Small message helpers: read header values (for `uac_auth()`, `uac_req_send()`
//! and the registration) and the body,
//! append header lines at the end of the header section (so the following
//! `t_relay()` sends them), and set the request URI.
//!
//! Free functions over [`SipMsg`] so they never clash with other `impl SipMsg`
//! blocks.

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::msg::lump::{Side, insert_text};
use crate::host::str::{KStr, borrowed_str};
use crate::sip::header::HeaderName;
use crate::sys;

/// The core's header type of `name` (the core's parser recognises compact and
/// mixed-case names).
fn core_type(name: HeaderName) -> sys::hdr_types_t {
    match name {
        HeaderName::CallId => sys::HDR_CALLID_T,
        HeaderName::CSeq => sys::HDR_CSEQ_T,
        HeaderName::Contact => sys::HDR_CONTACT_T,
        HeaderName::ContentLength => sys::HDR_CONTENTLENGTH_T,
        HeaderName::Expires => sys::HDR_EXPIRES_T,
        HeaderName::MinExpires => sys::HDR_MIN_EXPIRES_T,
        HeaderName::RetryAfter => sys::HDR_RETRY_AFTER_T,
        HeaderName::WwwAuthenticate => sys::HDR_WWW_AUTHENTICATE_T,
        HeaderName::ProxyAuthenticate => sys::HDR_PROXY_AUTHENTICATE_T,
    }
}

/// `HDR_EOH_F` of `core/parser/hf.h` (a macro bindgen cannot evaluate).
const HDR_EOH_F: sys::hdr_flags_t = 1 << sys::HDR_EOH_T;

fn parse_all(msg: &mut SipMsg) -> Result<(), HostError> {
    // SAFETY: the message being routed; the core parses into its own fields.
    if unsafe { sys::parse_headers(msg.as_raw(), HDR_EOH_F, 0) } < 0 {
        return Err(HostError::Parse);
    }
    Ok(())
}

/// The header fields of `msg` whose name is one of `names`, top to bottom, each
/// with its value as received (folding included; the parsers handle it), borrowed
/// from the message buffer: the one way features read headers of a message (the
/// challenges of a reply for `uac_auth` and `uac_req_send`, a registrar's reply).
/// One walk of the header list serves every name.
pub fn headers_of<'m>(
    msg: &'m mut SipMsg,
    names: &[HeaderName],
) -> Result<Vec<(HeaderName, &'m [u8])>, HostError> {
    let mut out = Vec::new();
    for_each_header(msg, |ty, v| {
        if let Some(&n) = names.iter().find(|&&n| core_type(n) == ty) {
            out.push((n, v));
        }
        true
    })?;
    Ok(out)
}

/// The values of every header field named `name`, top to bottom ([`headers_of`]).
pub fn header_values(msg: &mut SipMsg, name: HeaderName) -> Result<Vec<&[u8]>, HostError> {
    Ok(headers_of(msg, &[name])?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// Calls `f` with the type and value of every header, top to bottom, until
/// it returns false. The values borrow the message buffer.
fn for_each_header<'m>(
    msg: &'m mut SipMsg,
    mut f: impl FnMut(sys::hdr_types_t, &'m [u8]) -> bool,
) -> Result<(), HostError> {
    parse_all(msg)?;
    // SAFETY: parsed to the end of headers; the list is the core's.
    let mut h = unsafe { (*msg.as_raw()).headers };
    while !h.is_null() {
        // SAFETY: `h` is a node of the message's header list, alive with it.
        let hdr = unsafe { &*h };
        // SAFETY: `body` points into the message buffer, which lives as
        // long as the message, borrowed for 'm.
        if !f(hdr.type_, unsafe { KStr::from_raw(&hdr.body) }.as_bytes()) {
            break;
        }
        h = hdr.next;
    }
    Ok(())
}

/// The request method (first line).
pub fn request_method(msg: &mut SipMsg) -> Result<Vec<u8>, HostError> {
    if !msg.is_request() {
        return Err(HostError::NotRequest);
    }
    // SAFETY: a request, so the `request` member of the first-line union is
    // the one the parser filled; its `method` points into the buffer.
    let m = unsafe { &(*msg.as_raw()).first_line.u.request.method };
    // SAFETY: see above.
    Ok(unsafe { KStr::from_raw(m) }.to_vec())
}

/// The message body as received (for `qop=auth-int`): the bytes after the
/// empty line, cut to `Content-Length` when that header is present and
/// smaller. Lumps on the body (e.g. SDP edits made in the script) are not
/// applied.
pub fn body(msg: &mut SipMsg) -> Result<Vec<u8>, HostError> {
    let mut clen = None;
    let want = core_type(HeaderName::ContentLength);
    for_each_header(msg, |ty, v| {
        if ty != want {
            return true;
        }
        // The first Content-Length counts.
        clen = std::str::from_utf8(v.trim_ascii())
            .ok()
            .and_then(|s| s.parse::<usize>().ok());
        false
    })?;
    // SAFETY: the message being routed; get_body parses to EOH itself and
    // returns a pointer into the buffer or NULL.
    let start = unsafe { sys::get_body(msg.as_raw()) };
    if start.is_null() {
        return Ok(Vec::new());
    }
    let buf = msg.buf();
    let off = (start as usize).wrapping_sub(buf.as_ptr() as usize);
    let Some(rest) = buf.get(off..) else {
        return Ok(Vec::new());
    };
    let n = clen.map_or(rest.len(), |c| c.min(rest.len()));
    Ok(rest[..n].to_vec())
}

/// Inserts `lines` (complete `Name: value\r\n` lines) at the end of the
/// header section, as the C module's `apply_urihdr_changes` does: a lump
/// anchored at the first unparsed byte after the headers.
pub fn append_header_lines(msg: &mut SipMsg, lines: &[u8]) -> Result<(), HostError> {
    parse_all(msg)?;
    // Checked before the anchor exists.
    i32::try_from(lines.len()).map_err(|_| HostError::LumpInsert)?;
    // SAFETY: parsed to EOH, so `unparsed` points into `buf` (at or after it).
    let offset = unsafe {
        let m = &*msg.as_raw();
        (m.unparsed as usize).wrapping_sub(m.buf as usize)
    };
    if offset > msg.buf().len() {
        return Err(HostError::Parse);
    }
    let offset = i32::try_from(offset).map_err(|_| HostError::Parse)?;
    // SAFETY: an offset inside the message; the core allocates the anchor.
    let anchor = unsafe { sys::anchor_lump(msg.as_raw(), offset, 0, 0) };
    if anchor.is_null() {
        return Err(HostError::LumpInsert);
    }
    // SAFETY: `anchor` belongs to the message, which owns the new lump.
    match unsafe { insert_text(anchor, Side::Before, &[lines]) } {
        Ok(_) => Ok(()),
        Err(HostError::NoPkg) => Err(HostError::NoPkg),
        Err(_) => Err(HostError::LumpInsert),
    }
}

/// Sets the request URI (`$ru`), as the C module does with the branch URI.
///
/// When the message has no new R-URI and its first-line URI already is
/// `uri` (the usual case in a failure route), only marks the R-URI as new
/// for the next branch, which is all `rewrite_uri()` would change that is
/// observable: the R-URI reads the same, the parsed URI stays valid, and
/// the pkg copy of the URI (one q_malloc) is saved.
pub fn set_request_uri(msg: &mut SipMsg, uri: &[u8]) -> Result<(), HostError> {
    if msg.is_request() {
        let raw = msg.as_raw();
        // SAFETY: a request, so the `request` member of the first-line union
        // is the one the parser filled; `uri` points into the buffer.
        let unchanged = unsafe {
            (*raw).new_uri.s.is_null()
                && KStr::from_raw(&(*raw).first_line.u.request.uri).as_bytes() == uri
        };
        if unchanged {
            // SAFETY: the core's per-process flag (`ruri_mark_new()`).
            unsafe { sys::ruri_is_new = 1 };
            return Ok(());
        }
    }
    let mut s = borrowed_str(uri);
    // SAFETY: the core copies `uri` into a pkg buffer of the message.
    if unsafe { sys::rewrite_uri(msg.as_raw(), &mut s) } < 0 {
        return Err(HostError::NoPkg);
    }
    Ok(())
}
