//! Values of script-function parameters after the core's fixups.

use std::os::raw::c_char;

use crate::host::msg::SipMsg;
use crate::host::str::KStr;
use crate::sys;

/// The string value of a `fixup_spve_*` parameter for `msg`.
///
/// # Safety
/// `param` is the parameter the core passed to the function, fixed up by
/// one of the `fixup_spve_*` fixups registered for it (a `fparam_t`).
pub unsafe fn spve(msg: &mut SipMsg, param: *mut c_char) -> Option<Vec<u8>> {
    if param.is_null() {
        return None;
    }
    let mut out = sys::str_ {
        s: std::ptr::null_mut(),
        len: 0,
    };
    // SAFETY: `param` is an fparam_t made by the fixup (caller's promise).
    let rc = unsafe { sys::get_str_fparam(&mut out, msg.as_raw(), param.cast()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the core returned a string valid until the next PV evaluation.
    Some(unsafe { KStr::from_raw(&out) }.to_vec())
}

/// The integer value of a `fixup_igp_*` parameter for `msg`.
///
/// # Safety
/// `param` was fixed up by a `fixup_igp_*` / `fixup_*_igp` fixup.
pub unsafe fn igp(msg: &mut SipMsg, param: *mut c_char) -> Option<i32> {
    if param.is_null() {
        return None;
    }
    let mut out: i32 = 0;
    // SAFETY: `param` is an fparam_t made by the fixup (caller's promise).
    let rc = unsafe { sys::get_int_fparam(&mut out, msg.as_raw(), param.cast()) };
    (rc == 0).then_some(out)
}
