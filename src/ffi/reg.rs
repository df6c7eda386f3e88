//! Shims of admin guide 4.9-4.11, 7, 8, 9 (remote registration).

use std::os::raw::{c_char, c_int};

use crate::ffi;
use crate::sys;
use crate::uac::config::Config;

/// Feature setup in mod_init (shm table, RPC, timer process).
pub fn init(_cfg: &Config) -> Result<(), ()> {
    Ok(())
}

/// Per-process setup (the timer process is forked from PROC_MAIN).
pub fn child_init(_cfg: &Config, _rank: c_int) -> Result<(), ()> {
    Ok(())
}

fn not_yet(name: &str) -> c_int {
    kerr!("{name}: not implemented in this build yet");
    -1
}

macro_rules! reg_stub {
    ($(#[$doc:meta])* $w:ident, $name:literal) => {
        $(#[$doc])*
        pub unsafe extern "C" fn $w(
            _msg: *mut sys::sip_msg_t,
            _p1: *mut c_char,
            _p2: *mut c_char,
        ) -> c_int {
            ffi::guard($name, || not_yet($name))
        }
    };
}

reg_stub!(/// 4.9
    w_uac_reg_lookup, "uac_reg_lookup");
reg_stub!(w_uac_reg_lookup_uri, "uac_reg_lookup_uri");
reg_stub!(/// 4.10
    w_uac_reg_status, "uac_reg_status");
reg_stub!(/// 4.11
    w_uac_reg_request_to, "uac_reg_request_to");
reg_stub!(w_uac_reg_enable, "uac_reg_enable");
reg_stub!(w_uac_reg_disable, "uac_reg_disable");
reg_stub!(w_uac_reg_refresh, "uac_reg_refresh");
