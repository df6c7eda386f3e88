//! From/To header access and lumps (the core's deferred edits of a message).
//!
//! A lump edits the message as it was received: offsets index `msg->buf`, and
//! the core applies every lump when it builds the outgoing message. Inserted
//! bytes live in pkg memory the core frees with the message ([`PkgBuf`]).

use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::shm::mem::PkgBuf;
use crate::host::str::KStr;
use crate::host::width;
use crate::sip::inline::InlineBytes;
use crate::sys;

/// Which name-addr header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameAddrHdr {
    From,
    To,
}

impl NameAddrHdr {
    /// The core's message flag telling tm to take this header from the UAC
    /// request (`FL_USE_UAC_FROM` / `FL_USE_UAC_TO`); the C module uses it to
    /// mark requests whose replies must be restored.
    pub fn msg_flag(self) -> u32 {
        match self {
            NameAddrHdr::From => sys::FL_USE_UAC_FROM,
            NameAddrHdr::To => sys::FL_USE_UAC_TO,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NameAddrHdr::From => "From",
            NameAddrHdr::To => "To",
        }
    }
}

/// A header value: where it starts in the message buffer, and a copy of its
/// bytes (on the stack for the usual sizes, so that the message can be
/// edited while the value is read).
#[derive(Debug, Clone)]
pub struct HdrValue {
    pub offset: usize,
    pub value: InlineBytes<HDR_INLINE>,
}

/// Header values up to this size are copied to the stack.
pub const HDR_INLINE: usize = 128;

/// The inserted half of a replacement, kept so a later call on the same
/// message can swap its text (see [`SipMsg::set_lump_text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LumpHandle(NonNull<sys::lump>);

/// The route block being run (`route_type`: REQUEST_ROUTE, BRANCH_ROUTE...).
pub fn route_type() -> u32 {
    // SAFETY: a plain int the core sets before running each route; Kamailio
    // processes are single-threaded.
    (unsafe { sys::route_type }) as u32
}

/// Whether the current route is REQUEST_ROUTE.
pub fn in_request_route() -> bool {
    route_type() & sys::REQUEST_ROUTE != 0
}

/// The raw message behind a shared reference.
fn raw(msg: &SipMsg) -> &sys::sip_msg_t {
    // SAFETY: SipMsg is repr(transparent) over sip_msg_t.
    unsafe { &*(msg as *const SipMsg as *const sys::sip_msg_t) }
}

impl SipMsg {
    /// `msg_flags` (FL_* of core/parser/msg_parser.h).
    pub fn msg_flags(&self) -> u32 {
        width::low_bits(raw(self).msg_flags)
    }

    /// Sets bits in `msg_flags`.
    pub fn add_msg_flags(&mut self, flags: u32) {
        let me = self.as_raw();
        // SAFETY: `me` is this message, exclusively borrowed.
        unsafe { width::set_bits(&mut (*me).msg_flags, flags) };
    }

    /// Parses the From or To header of a message this process received (pkg
    /// message) and returns its value. `None` when absent or unparsable.
    pub fn parse_name_addr_hdr(&mut self, which: NameAddrHdr) -> Option<HdrValue> {
        if !self.core_parse_name_addr(which) {
            return None;
        }
        self.name_addr_hdr(which)
    }

    /// The core's parse_from_header / parse_to_header (a pkg `to_body`,
    /// kept with the message); false when absent or unparsable.
    fn core_parse_name_addr(&mut self, which: NameAddrHdr) -> bool {
        let me = self.as_raw();
        // SAFETY: `me` is the message of the current call; the parsers only
        // fill header fields of this pkg message.
        let rc = unsafe {
            match which {
                NameAddrHdr::From => sys::parse_from_header(me),
                NameAddrHdr::To => sys::parse_to_header(me),
            }
        };
        rc >= 0
    }

    /// [`SipMsg::parse_name_addr_hdr`] without the copy of the value.
    pub fn parse_name_addr_hdr_ref(&mut self, which: NameAddrHdr) -> Option<(usize, &[u8])> {
        if !self.core_parse_name_addr(which) {
            return None;
        }
        self.name_addr_hdr_ref(which)
    }

    /// Finds the From or To header of a message this process received (pkg
    /// message) and returns its raw value, without the core's name-addr
    /// parser: unlike [`SipMsg::parse_name_addr_hdr`] this allocates no
    /// `to_body` in pkg memory (a From of a reply is not otherwise parsed),
    /// for callers that parse the value themselves. `None` when absent.
    pub fn find_name_addr_hdr(&mut self, which: NameAddrHdr) -> Option<HdrValue> {
        if self.name_addr_hdr(which).is_none() {
            let flag = match which {
                NameAddrHdr::From => 1u64 << sys::HDR_FROM_T,
                NameAddrHdr::To => 1u64 << sys::HDR_TO_T,
            };
            // SAFETY: `as_raw()` is the message of the current call;
            // parse_headers only appends header fields to this pkg message.
            if unsafe { sys::parse_headers(self.as_raw(), flag, 0) } < 0 {
                return None;
            }
        }
        self.name_addr_hdr(which)
    }

    /// The From or To header value of an already parsed message (also a
    /// transaction's shm copy of its request, which must not be parsed
    /// again). `None` when the header was never found.
    pub fn name_addr_hdr(&self, which: NameAddrHdr) -> Option<HdrValue> {
        let (offset, value) = self.name_addr_hdr_ref(which)?;
        Some(HdrValue {
            offset,
            value: InlineBytes::from_slice(value),
        })
    }

    /// [`SipMsg::name_addr_hdr`] without the copy: the offset of the value
    /// in the message buffer and the value, borrowed from the message.
    pub fn name_addr_hdr_ref(&self, which: NameAddrHdr) -> Option<(usize, &[u8])> {
        let hdr = match which {
            NameAddrHdr::From => raw(self).from,
            NameAddrHdr::To => raw(self).to,
        };
        if hdr.is_null() {
            return None;
        }
        // SAFETY: `hdr` points into this message's header list, alive as
        // long as the message.
        let body = unsafe { &(*hdr).body };
        let base = raw(self).buf as usize;
        let start = body.s as usize;
        let buf_len = self.buf().len();
        if body.s.is_null() || start < base || body.len < 0 {
            return None;
        }
        let offset = start - base;
        if offset + body.len as usize > buf_len {
            return None;
        }
        // SAFETY: checked above that the body lies inside the message buffer,
        // which lives as long as `self`.
        let value = unsafe { KStr::from_raw(body) }.as_bytes();
        Some((offset, value))
    }

    /// Replaces `len` bytes at `offset` of the received message by `text`
    /// (`len` 0: an insertion), as the C module does: a delete lump (or an
    /// anchor) with the new bytes inserted after it.
    pub fn replace_bytes(
        &mut self,
        offset: usize,
        len: usize,
        text: &[u8],
    ) -> Result<LumpHandle, HostError> {
        self.replace_bytes_parts(offset, len, &[text])
    }

    /// [`SipMsg::replace_bytes`] with the new text given as the
    /// concatenation of `parts` (copied straight into the lump's pkg block).
    pub fn replace_bytes_parts(
        &mut self,
        offset: usize,
        len: usize,
        parts: &[&[u8]],
    ) -> Result<LumpHandle, HostError> {
        let text_len: usize = parts.iter().map(|p| p.len()).sum();
        if offset + len > self.buf().len() {
            return Err(HostError::OutOfRange);
        }
        // The text's length is checked before a lump exists (insert_text
        // checks it again, for its other callers).
        let (Ok(off), Ok(l), Ok(_)) = (
            i32::try_from(offset),
            i32::try_from(len),
            i32::try_from(text_len),
        ) else {
            return Err(HostError::OutOfRange);
        };
        let me = self.as_raw();
        // SAFETY: offset/len are inside the buffer (checked); the core links
        // the new lump into this message's list, freed with the message.
        let anchor = unsafe {
            if len > 0 {
                sys::del_lump(me, off, l, 0)
            } else {
                sys::anchor_lump(me, off, 0, 0)
            }
        };
        if anchor.is_null() {
            return Err(HostError::LumpRefused);
        }
        // SAFETY: `anchor` is the lump just created, part of this message.
        let added = unsafe { insert_text(anchor, Side::After, parts) }?;
        Ok(LumpHandle(added))
    }

    /// Swaps the text of a lump made by [`SipMsg::replace_bytes`] on this
    /// message (a later call in the same route wins).
    ///
    /// # Safety
    /// `lump` was returned by `replace_bytes` for this very message, during
    /// the processing of this message (its lumps have not been freed).
    pub unsafe fn set_lump_text(&mut self, lump: LumpHandle, text: &[u8]) -> Result<(), HostError> {
        let len = i32::try_from(text.len()).map_err(|_| HostError::OutOfRange)?;
        let buf = PkgBuf::from_bytes(text).ok_or(HostError::NoPkg)?;
        let l = lump.0.as_ptr();
        // SAFETY: the caller guarantees `l` is a live LUMP_ADD of this message
        // whose value is a pkg block we gave it; we free the old block and
        // hand over the new one.
        unsafe {
            if (*l).op != sys::LUMP_ADD {
                return Err(HostError::LumpRefused);
            }
            let old = (*l).u.value;
            (*l).u.value = buf.into_raw();
            (*l).len = len;
            if (*l).flags & sys::LUMPFLAG_DUPED != 0 {
                // The old text is not a block of its own (see
                // `insert_text`) or belongs to another lump: not ours
                // to free. The new one is a block of its own: the core frees
                // it once the flag is gone.
                (*l).flags &= !sys::LUMPFLAG_DUPED;
            } else if !old.is_null() {
                sys::ksr_rs_pkg_free(old.cast());
            }
        }
        Ok(())
    }
}

/// Which chain of its anchor an inserted text joins: `before` texts are
/// emitted ahead of the anchor's position, `after` texts behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Before,
    After,
}

/// Links a LUMP_ADD holding the concatenation of `parts` (`text_len` bytes)
/// to `anchor`, like the core's insert_new_lump_after()/_before() but in one
/// pkg block instead of two: the text sits right behind the lump struct,
/// and the lump is flagged LUMPFLAG_DUPED, for which every core path that
/// frees lumps (free_lump_list, free_duped_lump_list, del_nonshm_lump, rr's
/// and tm's cleanups) frees the struct but never the text on its own; the
/// struct's block holds both. On q_malloc, Kamailio's default, each pkg
/// allocation costs thousands of instructions, more than all of our own
/// work per call.
///
/// # Safety
/// `anchor` is a live lump of the message being processed.
pub(crate) unsafe fn insert_text(
    anchor: *mut sys::lump,
    side: Side,
    parts: &[&[u8]],
) -> Result<NonNull<sys::lump>, HostError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let text_len = i32::try_from(len).map_err(|_| HostError::OutOfRange)?;
    let head = std::mem::size_of::<sys::lump>();
    let total = head + len;
    // SAFETY: plain allocation; pkg blocks are aligned for any C struct.
    let block = NonNull::new(unsafe { sys::ksr_rs_pkg_malloc(total) } as *mut u8)
        .ok_or(HostError::NoPkg)?;
    let l = block.as_ptr() as *mut sys::lump;
    // SAFETY: `block` holds `total` bytes: a zeroed lump, then the text;
    // `anchor` is live (caller), and the new lump joins one of its chains,
    // owned by the message from now on.
    unsafe {
        std::ptr::write_bytes(l, 0, 1);
        let mut text = block.as_ptr().add(head);
        (*l).u.value = text as *mut std::os::raw::c_char;
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), text, p.len());
            text = text.add(p.len());
        }
        (*l).op = sys::LUMP_ADD;
        (*l).len = text_len;
        (*l).flags = sys::LUMPFLAG_DUPED;
        match side {
            Side::After => {
                (*l).after = (*anchor).after;
                (*anchor).after = l;
            }
            Side::Before => {
                (*l).before = (*anchor).before;
                (*anchor).before = l;
            }
        }
    }
    Ok(block.cast())
}

/// Both message flags the module uses.
pub const FL_BOTH: u32 = sys::FL_USE_UAC_FROM | sys::FL_USE_UAC_TO;

/// Calls `f` on every lump of `msg` (main list and the before/after chains
/// hanging off each node, recursively). Stops when `f` returns true.
fn walk_lumps(msg: &SipMsg, f: &mut dyn FnMut(*mut sys::lump) -> bool) -> bool {
    /// # Safety
    /// `l` is null or a node of a live lump tree whose links are null or
    /// other nodes of it.
    unsafe fn chain(
        mut l: *mut sys::lump,
        depth: u32,
        f: &mut dyn FnMut(*mut sys::lump) -> bool,
        by_next: bool,
    ) -> bool {
        if depth > 256 {
            return false;
        }
        while !l.is_null() {
            if f(l) {
                return true;
            }
            // SAFETY: `l` is a node of the message's lump tree, alive as long
            // as the message; its links are NULL or other nodes.
            let (before, after, next) = unsafe { ((*l).before, (*l).after, (*l).next) };
            // SAFETY: links of a live node: null or nodes of the same tree.
            if unsafe { chain(before, depth + 1, f, false) || chain(after, depth + 1, f, false) } {
                return true;
            }
            // before/after chains are linked through their own field.
            l = if by_next { next } else { std::ptr::null_mut() };
        }
        false
    }
    // SAFETY: the head of the message's lump tree, alive as long as `msg`.
    unsafe { chain(raw(msg).add_rm, 0, f, true) }
}

/// Swaps the text of `lump`, an insertion made by [`SipMsg::replace_bytes`],
/// after checking that it is still one of `msg`'s lumps.
pub fn swap_text(msg: &mut SipMsg, lump: LumpHandle, text: &[u8]) -> Result<(), HostError> {
    let mut found = false;
    walk_lumps(msg, &mut |l| {
        found = l == lump.0.as_ptr();
        found
    });
    if !found {
        return Err(HostError::LumpRefused);
    }
    // SAFETY: just checked that the lump belongs to this message's live tree.
    unsafe { msg.set_lump_text(lump, text) }
}

/// Replaces `old` by `new` in every added text (LUMP_ADD) of `msg` (used to
/// rewrite a Record-Route parameter this module added earlier: rr adds it to
/// each of its Record-Route lumps, two with double record-routing).
/// Fails when none was found or one could not be rewritten.
pub fn replace_added_text(msg: &mut SipMsg, old: &[u8], new: &[u8]) -> Result<(), HostError> {
    if old.is_empty() {
        return Err(HostError::LumpRefused);
    }
    let mut hits: Vec<(NonNull<sys::lump>, Vec<u8>)> = Vec::new();
    walk_lumps(msg, &mut |l| {
        // SAFETY: `l` is a live node; for LUMP_ADD, `u.value` holds `len` bytes.
        let bytes = unsafe {
            if (*l).op != sys::LUMP_ADD || (*l).u.value.is_null() || (*l).len <= 0 {
                return false;
            }
            std::slice::from_raw_parts((*l).u.value as *const u8, (*l).len as usize)
        };
        if let Some(pos) = bytes.windows(old.len()).position(|w| w == old) {
            let mut text = bytes[..pos].to_vec();
            text.extend_from_slice(new);
            text.extend_from_slice(&bytes[pos + old.len()..]);
            if let Some(p) = NonNull::new(l) {
                hits.push((p, text));
            }
        }
        false
    });
    let mut result = if hits.is_empty() {
        Err(HostError::LumpRefused)
    } else {
        Ok(())
    };
    for (l, text) in hits {
        // SAFETY: found in this message's live lump tree just now.
        let r = unsafe { msg.set_lump_text(LumpHandle(l), &text) };
        // Every hit is rewritten even when one fails (as before).
        result = result.and(r);
    }
    result
}
