//! Shims of admin guide 4.1-4.6 (From/To replacement and restore).

use std::os::raw::{c_char, c_int};

use crate::ffi;
use crate::sys;
use crate::uac::config::Config;

/// Feature setup in mod_init (rr / dialog callbacks).
pub fn init(_cfg: &Config) -> Result<(), ()> {
    Ok(())
}

fn not_yet(name: &str) -> c_int {
    kerr!("{name}: not implemented in this build yet");
    -1
}

/// `uac_replace_from([display,] uri)`: admin guide 4.1, 4.2.
pub unsafe extern "C" fn w_replace_from(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_replace_from", || not_yet("uac_replace_from"))
}

/// `uac_restore_from()`: admin guide 4.3.
pub unsafe extern "C" fn w_restore_from(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_restore_from", || not_yet("uac_restore_from"))
}

/// `uac_replace_to([display,] uri)`: admin guide 4.4, 4.5.
pub unsafe extern "C" fn w_replace_to(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_replace_to", || not_yet("uac_replace_to"))
}

/// `uac_restore_to()`: admin guide 4.6.
pub unsafe extern "C" fn w_restore_to(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_restore_to", || not_yet("uac_restore_to"))
}

// STUB(send branch): the bind_uac API entry points; the replace feature
// replaces these bodies with the real From/To replacement.

/// bind_uac `replace_from(msg, display, uri)` (C `replace_from_api`).
pub unsafe extern "C" fn api_replace_from(
    _msg: *mut sys::sip_msg_t,
    _display: *mut sys::str_,
    _uri: *mut sys::str_,
) -> c_int {
    ffi::guard("uac api replace_from", || not_yet("uac api replace_from"))
}

/// bind_uac `replace_to(msg, display, uri)` (C `replace_to_api`).
pub unsafe extern "C" fn api_replace_to(
    _msg: *mut sys::sip_msg_t,
    _display: *mut sys::str_,
    _uri: *mut sys::str_,
) -> c_int {
    ffi::guard("uac api replace_to", || not_yet("uac api replace_to"))
}
