//! Shims of admin guide 4.8, 5, 6.1 (uac_req_send, $uac_req, uac:reply) and
//! the bind_uac API.

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

/// `uac_req_send()`: admin guide 4.8.
pub unsafe extern "C" fn w_uac_req_send(
    _msg: *mut sys::sip_msg_t,
    _p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_req_send", || not_yet("uac_req_send"))
}

/// `bind_uac(uac_api_t*)`, called by other modules through find_export.
unsafe extern "C" fn bind_uac(_api: *mut std::ffi::c_void) -> c_int {
    ffi::guard("bind_uac", || not_yet("bind_uac"))
}

/// bind_uac as the core stores it in the cmd table.
pub const BIND_UAC: sys::cmd_function = Some(
    // SAFETY: the core never calls a param_no=1/flags=0 export from the
    // script; other modules call it with the single uac_api_t* argument, as
    // in C, where the same cast is made.
    unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut std::ffi::c_void) -> c_int,
            unsafe extern "C" fn(*mut sys::sip_msg_t, *mut c_char, *mut c_char) -> c_int,
        >(bind_uac)
    },
);

/// `$uac_req(key)` getter.
pub unsafe extern "C" fn pv_get_uac_req(
    _msg: *mut sys::sip_msg_t,
    _param: *mut sys::pv_param_t,
    _res: *mut sys::pv_value_t,
) -> c_int {
    ffi::guard("$uac_req", || not_yet("$uac_req"))
}

/// `$uac_req(key)` setter.
pub unsafe extern "C" fn pv_set_uac_req(
    _msg: *mut sys::sip_msg_t,
    _param: *mut sys::pv_param_t,
    _op: c_int,
    _val: *mut sys::pv_value_t,
) -> c_int {
    ffi::guard("$uac_req", || not_yet("$uac_req"))
}

/// `$uac_req(key)` name parser (fixup time).
pub unsafe extern "C" fn pv_parse_uac_req_name(
    _sp: *mut sys::pv_spec_t,
    _name: *mut sys::str_,
) -> c_int {
    // Accept any name for now so configs load; keys are checked when the
    // feature lands.
    ffi::guard("$uac_req", || 0)
}
