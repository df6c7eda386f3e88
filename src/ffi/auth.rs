//! Shims of admin guide 4.7 (uac_auth).

use std::os::raw::{c_char, c_int};

use crate::ffi;
use crate::sys;
use crate::uac::config::Config;

/// Feature setup in mod_init.
pub fn init(_cfg: &Config) -> Result<(), ()> {
    Ok(())
}

fn not_yet(name: &str) -> c_int {
    kerr!("{name}: not implemented in this build yet");
    -1
}

/// `uac_auth()`: admin guide 4.7.
pub unsafe extern "C" fn w_uac_auth(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_auth", || not_yet("uac_auth"))
}

/// `uac_auth(mode)` / `uac_auth_mode(mode)`.
pub unsafe extern "C" fn w_uac_auth_mode(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_auth", || not_yet("uac_auth"))
}
