//! Sending REGISTER through tm, and reading its completion callback.
//!
//! Every REGISTER goes out with `t_request_within` on a dialog built here, so Call-ID,
//! From tag and CSeq are ours (needed for `reg_keep_callid` and for answering challenges
//! on the same Call-ID). tm increments the CSeq of the dialog before sending, so the
//! dialog carries `cseq - 1`.
//!
//! The callback parameter is a small shm block (token + l_uuid) freed by
//! [`CallbackParam::take`] in the callback, or by [`send`] when tm refuses the request
//! (tm never frees it, `tm/uac.c prepare_req_within`).
//!
//! This is a registration-specific wrapper; a generic `host/tm.rs` (uac_req_send) can
//! absorb it: the only specific parts are the param layout and the dialog setup.

use std::os::raw::c_int;
use std::ptr::NonNull;

use crate::host::api;
use crate::host::mem::{shm_alloc, shm_free};
use crate::host::str::borrowed_str;
use crate::sys;

/// One REGISTER to send.
pub struct RegisterRequest<'a> {
    pub ruri: &'a [u8],
    /// From and To URI (the AoR).
    pub aor: &'a [u8],
    pub call_id: &'a [u8],
    pub from_tag: &'a [u8],
    pub cseq: u32,
    /// Extra header lines, each ending in CRLF.
    pub headers: &'a [u8],
    /// Outbound proxy (`auth_proxy`), empty for none.
    pub dst_uri: &'a [u8],
    /// Local socket (`proto:ip:port`), empty for tm's choice.
    pub socket: &'a [u8],
    /// Identifies the request in the callback.
    pub token: u32,
    pub l_uuid: &'a [u8],
}

#[repr(C)]
struct ParamHdr {
    token: u32,
    len: u32,
}

/// The callback parameter, decoded and freed.
pub struct CallbackParam {
    pub token: u32,
    pub l_uuid: Vec<u8>,
}

fn alloc_param(token: u32, l_uuid: &[u8]) -> Option<NonNull<u8>> {
    let size = std::mem::size_of::<ParamHdr>() + l_uuid.len();
    // SAFETY: plain allocation, initialised right below.
    let p = unsafe { shm_alloc(size) }?;
    // SAFETY: `p` has room for the header and the bytes.
    unsafe {
        p.as_ptr().cast::<ParamHdr>().write_unaligned(ParamHdr {
            token,
            len: l_uuid.len() as u32,
        });
        std::ptr::copy_nonoverlapping(
            l_uuid.as_ptr(),
            p.as_ptr().add(std::mem::size_of::<ParamHdr>()),
            l_uuid.len(),
        );
    }
    Some(p)
}

/// The completion callback type (an `extern "C"` fn of the ffi layer).
pub type CompletionCb = sys::transaction_cb;

/// Why a REGISTER was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    NoTm,
    NoMemory,
    Refused(c_int),
}

/// Sends `req`; `cb` is called once with the final reply (or a local 408/503).
pub fn send(req: &RegisterRequest<'_>, cb: sys::transaction_cb) -> Result<(), SendError> {
    let tm = api::tm().ok_or(SendError::NoTm)?;
    let request_within = tm.0.t_request_within.ok_or(SendError::NoTm)?;
    let param = alloc_param(req.token, req.l_uuid).ok_or(SendError::NoMemory)?;

    let mut method = borrowed_str(b"REGISTER");
    let mut headers = borrowed_str(req.headers);
    let mut ssock = borrowed_str(req.socket);
    let mut dlg = sys::dlg_t::default();
    dlg.id.call_id = borrowed_str(req.call_id);
    dlg.id.loc_tag = borrowed_str(req.from_tag);
    dlg.loc_seq.value = req.cseq.wrapping_sub(1);
    dlg.loc_seq.is_set = 1;
    dlg.loc_uri = borrowed_str(req.aor);
    dlg.rem_uri = borrowed_str(req.aor);
    dlg.rem_target = borrowed_str(req.ruri);
    if !req.dst_uri.is_empty() {
        dlg.dst_uri = borrowed_str(req.dst_uri);
    }
    dlg.state = sys::DLG_CONFIRMED;

    let mut uac_r = sys::uac_req_t {
        method: &mut method,
        headers: &mut headers,
        body: std::ptr::null_mut(),
        ssock: if req.socket.is_empty() {
            std::ptr::null_mut()
        } else {
            &mut ssock
        },
        ssockname: std::ptr::null_mut(),
        dialog: &mut dlg,
        cb_flags: sys::TMCB_LOCAL_COMPLETED as c_int,
        cb,
        cbp: param.as_ptr().cast(),
        callid: std::ptr::null_mut(),
    };
    // SAFETY: every pointer in `uac_r` and `dlg` refers to locals or to `req`'s bytes,
    // valid for the call; tm copies what it keeps (the request is built into shm) and
    // keeps only `cbp`, our shm block.
    let rc = unsafe { request_within(&mut uac_r) };
    if rc < 0 {
        // SAFETY: tm refused the request and did not keep the parameter.
        unsafe { shm_free(param) };
        return Err(SendError::Refused(rc));
    }
    Ok(())
}

/// What the completion callback received.
pub struct Completion<'a> {
    pub code: u16,
    /// The reply bytes; `None` for a local (faked) reply such as a timeout.
    pub reply: Option<&'a [u8]>,
}

impl CallbackParam {
    /// Decodes the callback arguments and frees the parameter block.
    ///
    /// # Safety
    /// `ps` is the `tmcb_params` tm passed to a callback registered by [`send`], called
    /// once for that request.
    pub unsafe fn take<'a>(ps: *mut sys::tmcb_params) -> Option<(CallbackParam, Completion<'a>)> {
        // SAFETY: tm passes valid params for the duration of the callback.
        let ps = unsafe { ps.as_mut() }?;
        if ps.param.is_null() {
            return None;
        }
        // SAFETY: `param` points to the cell's callback parameter slot.
        let p = unsafe { *ps.param } as *mut u8;
        let p = NonNull::new(p)?;
        // SAFETY: `p` is the block made by alloc_param.
        let (hdr, l_uuid) = unsafe {
            let hdr = p.as_ptr().cast::<ParamHdr>().read_unaligned();
            let bytes = std::slice::from_raw_parts(
                p.as_ptr().add(std::mem::size_of::<ParamHdr>()),
                hdr.len as usize,
            )
            .to_vec();
            (hdr, bytes)
        };
        // SAFETY: the callback runs once; free the block and clear the slot.
        unsafe {
            *ps.param = std::ptr::null_mut();
            shm_free(p);
        }
        let code = u16::try_from(ps.code).unwrap_or(500);
        // FAKED_REPLY is (sip_msg*)-1.
        let reply = if ps.rpl.is_null() || ps.rpl as isize == -1 {
            None
        } else {
            // SAFETY: a real reply message, valid during the callback.
            let m = unsafe { &*ps.rpl };
            if m.buf.is_null() || m.len == 0 {
                None
            } else {
                // SAFETY: `buf` holds `len` bytes.
                Some(unsafe { std::slice::from_raw_parts(m.buf as *const u8, m.len as usize) })
            }
        };
        Some((
            CallbackParam {
                token: hdr.token,
                l_uuid,
            },
            Completion { code, reply },
        ))
    }
}
