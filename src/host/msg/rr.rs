//! The rr module's API (`rr_binds`): Record-Route parameters, the direction of
//! sequential requests, and the callback loose_route() runs for them.

use crate::host::HostError;
use crate::host::api::RrApi;
use crate::host::msg::SipMsg;
use crate::host::str::{KStr, borrowed_str};
use crate::sip::inline::InlineBytes;
use crate::sys;

/// A callback loose_route() runs for each sequential request carrying Route
/// parameters (`rr_cb_t`).
pub type RrCallback =
    unsafe extern "C" fn(*mut sys::sip_msg_t, *mut sys::str_, *mut std::ffi::c_void);

impl RrApi {
    /// `add_rr_param`: `param` (`;name=value`) goes into the Record-Route
    /// header this proxy adds (now, or when record_route() runs later).
    pub fn add_rr_param(&self, msg: &mut SipMsg, param: &[u8]) -> Result<(), HostError> {
        let f = self
            .0
            .add_rr_param
            .ok_or(HostError::Refused("add_rr_param"))?;
        let mut s = borrowed_str(param);
        // SAFETY: `msg` is the message being routed; rr copies the bytes
        // (into its static buffer or a pkg lump) before returning.
        if unsafe { f(msg.as_raw(), &mut s) } != 0 {
            return Err(HostError::Refused("add_rr_param"));
        }
        Ok(())
    }

    /// `get_route_param`: the value of parameter `name` of the Route header
    /// that points to this proxy (sequential requests, after loose_route()).
    pub fn get_route_param(&self, msg: &mut SipMsg, name: &[u8]) -> Option<InlineBytes<128>> {
        let f = self.0.get_route_param?;
        let mut n = borrowed_str(name);
        let mut out = sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: `msg` is the message being routed; `n` is only read; `out`
        // is set to bytes inside the message.
        if unsafe { f(msg.as_raw(), &mut n, &mut out) } != 0 {
            return None;
        }
        // SAFETY: `out` points into the message buffer, valid for this call.
        Some(InlineBytes::from_slice(
            unsafe { KStr::from_raw(&out) }.as_bytes(),
        ))
    }

    /// `is_direction`: whether the sequential request flows `upstream`
    /// (callee to caller, decided by rr's ftag parameter) or downstream.
    pub fn is_upstream(&self, msg: &mut SipMsg) -> bool {
        let Some(f) = self.0.is_direction else {
            return false;
        };
        // SAFETY: `msg` is the message being routed.
        unsafe { f(msg.as_raw(), sys::RR_FLOW_UPSTREAM as i32) == 0 }
    }

    /// Rewrites a parameter added earlier by [`RrApi::add_rr_param`] once
    /// record_route() made it a lump (`new` empty: removes it).
    pub fn replace_added_rr_param(
        &self,
        msg: &mut SipMsg,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), HostError> {
        crate::host::msg::lump::replace_added_text(msg, old, new)
    }

    /// `register_rrcb`: `cb` runs for every loose-routed request (mod_init).
    pub fn register_rrcb(&self, cb: RrCallback) -> Result<(), HostError> {
        let f = self
            .0
            .register_rrcb
            .ok_or(HostError::Refused("register_rrcb"))?;
        // SAFETY: `cb` is a guarded extern "C" function with rr's signature,
        // valid for the life of the process.
        if unsafe { f(Some(cb), std::ptr::null_mut()) } != 0 {
            return Err(HostError::Refused("register_rrcb"));
        }
        Ok(())
    }
}
