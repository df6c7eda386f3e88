//! Kamailio counters (`core/counters.h`) whose value is computed on read by a callback,
//! so they always show the true state instead of a sum of increments.

use std::ffi::CStr;

use crate::sys;

/// One counter of a group: name, description and the function that computes it.
pub struct ComputedCounter {
    pub name: &'static CStr,
    pub descr: &'static CStr,
    pub get: sys::counter_cbk_f,
}

/// `CNT_F_NO_RESET`: a computed value cannot be reset.
const NO_RESET: i32 = 1;

/// Registers `counters` in `group` (mod_init, before counters are initialised).
pub fn register_computed(group: &'static CStr, counters: &[ComputedCounter]) -> Result<(), ()> {
    let mut defs: Vec<sys::counter_def_t> = counters
        .iter()
        .map(|c| sys::counter_def_t {
            handle: std::ptr::null_mut(),
            name: c.name.as_ptr(),
            flags: NO_RESET,
            get_cbk: c.get,
            get_cbk_param: std::ptr::null_mut(),
            descr: c.descr.as_ptr(),
        })
        .collect();
    defs.push(sys::counter_def_t {
        handle: std::ptr::null_mut(),
        name: std::ptr::null(),
        flags: 0,
        get_cbk: None,
        get_cbk_param: std::ptr::null_mut(),
        descr: std::ptr::null(),
    });
    // SAFETY: `defs` is NULL-terminated; the core copies names/descriptions pointers,
    // which are 'static, and does not keep `defs`.
    let rc = unsafe { sys::counter_register_array(group.as_ptr(), defs.as_mut_ptr()) };
    if rc < 0 { Err(()) } else { Ok(()) }
}
