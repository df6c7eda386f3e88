//! The SIP message Kamailio is routing: [`SipMsg`] here, and the rest of its
//! methods grouped by what they touch.
//!
//! - header values (the one header reader), the body, appended header lines,
//!   the R-URI in [`hdr_add`];
//! - the core's lumps (From/To replacement and its restore) in [`lump`];
//! - `$du` in [`dst_uri`];
//! - Record-Route parameters through the rr module in [`rr`].

pub mod dst_uri;
pub mod hdr_add;
pub mod lump;
pub mod rr;

use crate::sys;

/// Kamailio's `sip_msg_t`, borrowed for one call from the core.
#[repr(transparent)]
pub struct SipMsg(sys::sip_msg_t);

impl SipMsg {
    /// # Safety
    /// `p` is NULL or a message the core passed to the current call, valid
    /// and not aliased by other Rust references until the call returns.
    pub unsafe fn from_ptr<'a>(p: *mut sys::sip_msg_t) -> Option<&'a mut SipMsg> {
        // SAFETY: `SipMsg` is repr(transparent) over sip_msg_t; validity and
        // exclusivity are guaranteed by the caller.
        unsafe { (p as *mut SipMsg).as_mut() }
    }

    /// The raw pointer, for passing back to the core.
    pub(crate) fn as_raw(&mut self) -> *mut sys::sip_msg_t {
        &mut self.0
    }

    /// The received bytes of the message.
    pub fn buf(&self) -> &[u8] {
        if self.0.buf.is_null() || self.0.len == 0 {
            return &[];
        }
        // SAFETY: `buf` holds `len` bytes for the lifetime of the message.
        unsafe { std::slice::from_raw_parts(self.0.buf as *const u8, self.0.len as usize) }
    }

    /// Whether this is a request (not a reply).
    pub fn is_request(&self) -> bool {
        self.0.first_line.type_ as u32 == sys::SIP_REQUEST
    }

    /// Whether this is an ACK request (which never gets a reply).
    pub fn is_ack(&self) -> bool {
        // SAFETY: for a request the core filled the `request` variant.
        self.is_request()
            && unsafe { self.0.first_line.u.request.method_value } as u32 == sys::METHOD_ACK
    }

    /// The status code of a reply (`None` for a request).
    pub fn status_code(&self) -> Option<u16> {
        if self.0.first_line.type_ as u32 != sys::SIP_REPLY {
            return None;
        }
        // SAFETY: for a reply the core filled the `reply` variant.
        u16::try_from(unsafe { self.0.first_line.u.reply.statuscode }).ok()
    }

    /// The message id the core gives each received message.
    pub fn id(&self) -> u32 {
        self.0.id
    }
}
