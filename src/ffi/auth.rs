//! Shims of admin guide 4.7 (uac_auth).

use std::os::raw::{c_char, c_int};

use crate::host::msg::SipMsg;
use crate::host::script::fixup;
use crate::sys;
use crate::uac::auth;
use crate::uac::config::Config;

/// Feature setup in mod_init: parses the `credential` entries and the
/// auth_*_avp PVs once.
pub fn init(cfg: &Config) -> Result<(), ()> {
    auth::init(cfg).map_err(|e| kerr!("{e}"))
}

/// The script code of `uac_auth`: 1 done, -1 for every [`auth::AuthError`] (as C).
fn run(msg: &mut SipMsg, mode: i32) -> c_int {
    match auth::uac_auth(msg, mode) {
        Ok(()) => 1,
        Err(_) => -1,
    }
}

entry! {
    /// `uac_auth()`: admin guide 4.7.
    pub fn w_uac_auth(msg: *mut sys::sip_msg_t, _p1: *mut c_char, _p2: *mut c_char) -> c_int
        as "uac_auth"
    {
        // SAFETY: Kamailio passes the message being routed, valid for this call.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        run(msg, 0)
    }

    /// `uac_auth(mode)` / `uac_auth_mode(mode)`: mode 1 = the password is an HA1,
    /// for this call only.
    pub fn w_uac_auth_mode(msg: *mut sys::sip_msg_t, p1: *mut c_char, _p2: *mut c_char) -> c_int
        as "uac_auth"
    {
        // SAFETY: Kamailio passes the message being routed, valid for this call.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        // SAFETY: p1 was fixed up by fixup_igp_null (export table).
        let Some(mode) = (unsafe { fixup::igp(msg, p1) }) else {
            kerr!("failed to get the mode parameter");
            return -1;
        };
        run(msg, mode)
    }

    /// KEMI `uac.uac_auth()`.
    pub fn ki_uac_auth(msg: *mut sys::sip_msg_t) -> c_int as "uac_auth" {
        // SAFETY: the KEMI engine passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        run(msg, 0)
    }

    /// KEMI `uac.uac_auth_mode(mode)`.
    pub fn ki_uac_auth_mode(msg: *mut sys::sip_msg_t, mode: c_int) -> c_int as "uac_auth_mode" {
        // SAFETY: the KEMI engine passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        run(msg, mode)
    }
}
