//! The tm calls the From/To restore needs: a TMCB_RESPONSE_IN callback on the
//! transaction of a request, and the flags of the transaction's request.

use crate::host::HostError;
use crate::host::api::TmApi;
use crate::host::msg::SipMsg;
use crate::host::width;
use crate::sys;

/// A tm transaction callback (`transaction_cb`).
pub type TmCallback = unsafe extern "C" fn(*mut sys::tm_cell_t, i32, *mut sys::tmcb_params);

/// `T_UNDEFINED` of tm/t_lookup.h: the transaction is not yet looked up.
const T_UNDEFINED: usize = usize::MAX;

impl TmApi {
    /// Runs `cb` for every reply of the transaction of `msg` (created now or
    /// later by t_relay(): tm keeps it pending until then).
    pub fn on_response_in(&self, msg: &mut SipMsg, cb: TmCallback) -> Result<(), HostError> {
        let f = self.0.register_tmcb.ok_or(HostError::TmNotBound)?;
        // SAFETY: `msg` is the request being routed; `cb` is a guarded
        // extern "C" fn valid for the process; no parameter to free.
        let rc = unsafe {
            f(
                msg.as_raw(),
                std::ptr::null_mut(),
                sys::TMCB_RESPONSE_IN as i32,
                Some(cb),
                std::ptr::null_mut(),
                None,
            )
        };
        if rc != 1 {
            return Err(HostError::Refused("register_tmcb"));
        }
        Ok(())
    }

    /// Sets `flags` on the request kept by the current transaction, if one
    /// exists already (t_newtran() or branch route before the replace).
    pub fn add_uas_request_flags(&self, flags: u32) {
        let Some(gett) = self.0.t_gett else {
            return;
        };
        // SAFETY: t_gett only reads tm's per-process current transaction.
        let t = unsafe { gett() };
        if t.is_null() || t as usize == T_UNDEFINED {
            return;
        }
        // SAFETY: `t` is the live current transaction of this process; its
        // uas.request is its shm copy of the request, or NULL.
        unsafe {
            let req = (*t).uas.request;
            if !req.is_null() {
                width::set_bits(&mut (*req).msg_flags, flags);
            }
        }
    }
}

/// What a TMCB_RESPONSE_IN callback receives: the transaction's request (shm
/// copy, read-only) and the reply being processed.
pub struct ResponseIn<'a> {
    pub request: &'a SipMsg,
    pub reply: &'a mut SipMsg,
}

/// # Safety
/// `t` and `p` are the arguments tm passed to a transaction callback.
pub unsafe fn response_in<'a>(
    t: *mut sys::tm_cell_t,
    p: *mut sys::tmcb_params,
) -> Option<ResponseIn<'a>> {
    if t.is_null() || p.is_null() {
        return None;
    }
    // SAFETY: tm passes a live cell and params for the call.
    let (req, rpl) = unsafe { ((*t).uas.request, (*p).rpl) };
    // FAKED_REPLY is (struct sip_msg*)-1: a locally generated reply.
    if rpl.is_null() || rpl as usize == usize::MAX {
        return None;
    }
    // SAFETY: the request and reply are valid for the callback and distinct.
    let request = unsafe { SipMsg::from_ptr(req) }?;
    // SAFETY: as above.
    let reply = unsafe { SipMsg::from_ptr(rpl) }?;
    Some(ResponseIn { request, reply })
}
