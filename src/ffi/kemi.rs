//! The KEMI table (`sr_kemi_uac_exports` of the C module): the same function
//! names and parameter types, so Lua, Python and JavaScript configs call the
//! module as they call the C one. Registered by `mod_register`.

use std::os::raw::{c_char, c_int, c_void};

use crate::ffi::{auth, reg, replace, send};
use crate::host::guard;
use crate::sys;

const NONE: c_int = sys::SR_KEMIP_NONE as c_int;
const INT: c_int = sys::SR_KEMIP_INT as c_int;
const STR: c_int = sys::SR_KEMIP_STR as c_int;

const fn kstr(s: &'static std::ffi::CStr) -> sys::str_ {
    sys::str_ {
        s: s.as_ptr() as *mut c_char,
        len: s.count_bytes() as c_int,
    }
}

const fn export(
    fname: &'static std::ffi::CStr,
    func: *mut c_void,
    p: [c_int; 6],
) -> sys::sr_kemi_t {
    sys::sr_kemi_t {
        mname: kstr(c"uac"),
        fname: kstr(fname),
        rtype: INT,
        func,
        ptypes: p,
    }
}

const P0: [c_int; 6] = [NONE; 6];
const P_INT: [c_int; 6] = [INT, NONE, NONE, NONE, NONE, NONE];
const P_STR: [c_int; 6] = [STR, NONE, NONE, NONE, NONE, NONE];
const P_STR_STR: [c_int; 6] = [STR, STR, NONE, NONE, NONE, NONE];
const P_STR_INT: [c_int; 6] = [STR, INT, NONE, NONE, NONE, NONE];

/// The table; `static mut` because the core takes a mutable pointer.
static mut KEMI_EXPORTS: [sys::sr_kemi_t; 19] = [
    export(c"uac_auth", auth::ki_uac_auth as *mut c_void, P0),
    export(
        c"uac_auth_mode",
        auth::ki_uac_auth_mode as *mut c_void,
        P_INT,
    ),
    export(c"uac_req_send", send::ki_uac_req_send as *mut c_void, P0),
    export(
        c"uac_replace_from_uri",
        replace::ki_replace_from_uri as *mut c_void,
        P_STR,
    ),
    export(
        c"uac_replace_from",
        replace::ki_replace_from as *mut c_void,
        P_STR_STR,
    ),
    export(
        c"uac_restore_from",
        replace::ki_restore_from as *mut c_void,
        P0,
    ),
    export(
        c"uac_replace_to_uri",
        replace::ki_replace_to_uri as *mut c_void,
        P_STR,
    ),
    export(
        c"uac_replace_to",
        replace::ki_replace_to as *mut c_void,
        P_STR_STR,
    ),
    export(c"uac_restore_to", replace::ki_restore_to as *mut c_void, P0),
    // 4.9 uac_reg_lookup(uuid, "$pv"): the destination is a PV name
    export(
        c"uac_reg_lookup",
        reg::ki_uac_reg_lookup as *mut c_void,
        P_STR_STR,
    ),
    // uac_reg_lookup_uri(uri, "$pv")
    export(
        c"uac_reg_lookup_uri",
        reg::ki_uac_reg_lookup_uri as *mut c_void,
        P_STR_STR,
    ),
    // 4.10 uac_reg_status(uuid)
    export(
        c"uac_reg_status",
        reg::ki_uac_reg_status as *mut c_void,
        P_STR,
    ),
    // 4.11 uac_reg_request_to(user, mode)
    export(
        c"uac_reg_request_to",
        reg::ki_uac_reg_request_to as *mut c_void,
        P_STR_INT,
    ),
    // uac_reg_enable(attr, val)
    export(
        c"uac_reg_enable",
        reg::ki_uac_reg_enable as *mut c_void,
        P_STR_STR,
    ),
    // uac_reg_disable(attr, val)
    export(
        c"uac_reg_disable",
        reg::ki_uac_reg_disable as *mut c_void,
        P_STR_STR,
    ),
    // uac_reg_refresh(l_uuid)
    export(
        c"uac_reg_refresh",
        reg::ki_uac_reg_refresh as *mut c_void,
        P_STR,
    ),
    // uac_reg_send_register(attr, val): the cfg function of C 6.0, whose KEMI
    // table lacks it; named and typed like uac_reg_enable
    export(
        c"uac_reg_send_register",
        reg::ki_uac_reg_send_register as *mut c_void,
        P_STR_STR,
    ),
    // uac_reg_send_unregister(attr, val): likewise
    export(
        c"uac_reg_send_unregister",
        reg::ki_uac_reg_send_unregister as *mut c_void,
        P_STR_STR,
    ),
    sys::sr_kemi_t {
        mname: sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        fname: sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        },
        rtype: 0,
        func: std::ptr::null_mut(),
        ptypes: [0; 6],
    },
];

entry! {
    /// Called by the core right after loading the module, before config parsing.
    #[unsafe(no_mangle)]
    pub fn mod_register(
        _path: *mut c_char,
        _dlflags: *mut c_int,
        _p1: *mut c_void,
        _p2: *mut c_void,
    ) -> c_int as "mod_register" {
        guard::install_panic_hook();
        // SAFETY: the core keeps the pointer to this static table for the
        // life of the process; nothing in Rust reads or writes it.
        unsafe { sys::sr_kemi_modules_add((&raw mut KEMI_EXPORTS).cast()) };
        0
    }
}
