//! Shims of admin guide 4.8, 5, 6.1 (uac_req_send, $uac_req, uac:reply) and
//! the bind_uac API (the C module's `api.h`).

use std::os::raw::{c_char, c_int};

use crate::host::script::pv::{PvValue, value_from_raw};
use crate::host::str::borrowed_str;
use crate::host::width;
use crate::sys;
use crate::uac::config::Config;
use crate::uac::send::{self, Input, Key, Output};

/// Feature setup in mod_init (`default_socket`).
pub fn init(cfg: &Config) -> Result<(), ()> {
    send::init(cfg).map_err(|_| ())
}

/// The script code of `uac_req_send()`: 1 sent, -1 failed (as C).
fn req_send_code() -> c_int {
    match send::req_send() {
        Ok(()) => 1,
        Err(send::SendError::Logged) => -1,
    }
}

entry! {
    /// `uac_req_send()`: admin guide 4.8.
    pub fn w_uac_req_send(_msg: *mut sys::sip_msg_t, _p1: *mut c_char, _p2: *mut c_char) -> c_int
        as "uac_req_send"
    {
        req_send_code()
    }

    /// KEMI `KSR.uac.uac_req_send()`.
    pub fn ki_uac_req_send(_msg: *mut sys::sip_msg_t) -> c_int as "uac_req_send" {
        req_send_code()
    }
}

// ---------------------------------------------------------------------------
// bind_uac

/// `int (*)(sip_msg_t *, str *display, str *uri)` of api.h.
pub type ReplaceFn =
    unsafe extern "C" fn(*mut sys::sip_msg_t, *mut sys::str_, *mut sys::str_) -> c_int;

/// `uac_api_t` of the C module's `api.h`, field for field.
#[repr(C)]
pub struct UacApi {
    pub replace_from: Option<ReplaceFn>,
    pub replace_to: Option<ReplaceFn>,
    pub req_send: Option<unsafe extern "C" fn() -> c_int>,
}

entry! {
    /// api.h `req_send`: `uac_req_send()` for other modules.
    fn api_req_send() -> c_int as "uac api req_send" {
        req_send_code()
    }

    /// `bind_uac(uac_api_t*)`, called by other modules through find_export.
    fn bind_uac(api: *mut UacApi) -> c_int as "bind_uac" {
        // SAFETY: the caller passes its own uac_api_t (or NULL).
        let Some(api) = (unsafe { api.as_mut() }) else {
            kwarn!("bind_uac: Cannot load uac API into a NULL pointer");
            return -1;
        };
        *api = UacApi {
            replace_from: Some(crate::ffi::replace::api_replace_from),
            replace_to: Some(crate::ffi::replace::api_replace_to),
            req_send: Some(api_req_send),
        };
        0
    }
}

/// bind_uac as the core stores it in the cmd table.
pub const BIND_UAC: sys::cmd_function = Some(
    // SAFETY: the core never calls a param_no=1/flags=0 export from the
    // script; other modules call it with the single uac_api_t* argument, as
    // in C, where the same cast is made.
    unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(*mut UacApi) -> c_int,
            unsafe extern "C" fn(*mut sys::sip_msg_t, *mut c_char, *mut c_char) -> c_int,
        >(bind_uac)
    },
);

// ---------------------------------------------------------------------------
// $uac_req(key)

/// `PV_NAME_INTSTR` of `core/pvar.h`.
const PV_NAME_INTSTR: c_int = 0;

/// The key stored in the spec by [`pv_parse_uac_req_name`].
///
/// # Safety
/// `param` is NULL or the parameter of a spec parsed by our name parser.
unsafe fn key_of(param: *mut sys::pv_param_t) -> Option<Key> {
    // SAFETY: guaranteed by the caller; reading the int member written by
    // the parser.
    let p = unsafe { param.as_ref() }?;
    // SAFETY: the parser set `isname.name.n` (an int_str holding an int).
    // `int` up to 5.6, `long` from 5.7.
    Key::from_index(width::widen(unsafe { p.pvn.u.isname.name.n }))
}

entry! {
    /// `$uac_req(key)` getter.
    pub fn pv_get_uac_req(
        msg: *mut sys::sip_msg_t,
        param: *mut sys::pv_param_t,
        res: *mut sys::pv_value_t,
    ) -> c_int as "$uac_req" {
        // SAFETY: the core passes the spec's param (parsed by us).
        let Some(key) = (unsafe { key_of(param) }) else {
            return -1;
        };
        send::with_template(|t| match t.get(key) {
            // SAFETY: the core's PV helper fills `res` from its arguments.
            Output::Null => unsafe { sys::pv_get_null(msg, param, res) },
            // SAFETY: as above.
            Output::Uint(v) => unsafe { sys::pv_get_uintval(msg, param, res, width::widen(v)) },
            Output::Str(s) => {
                let mut st = borrowed_str(s);
                // SAFETY: `res` gets a str pointing into this process's
                // template, which stays unchanged until the script assigns
                // $uac_req again (as the C module's static buffers).
                unsafe { sys::pv_get_strval(msg, param, res, &mut st) }
            }
        })
    }

    /// `$uac_req(key)` setter.
    pub fn pv_set_uac_req(
        _msg: *mut sys::sip_msg_t,
        param: *mut sys::pv_param_t,
        _op: c_int,
        val: *mut sys::pv_value_t,
    ) -> c_int as "$uac_req" {
        // SAFETY: the core passes the spec's param (parsed by us).
        let Some(key) = (unsafe { key_of(param) }) else {
            return -1;
        };
        // SAFETY: NULL or a value valid for this call.
        let value = match unsafe { val.as_ref() } {
            None => PvValue::Null,
            Some(v) => value_from_raw(v),
        };
        let input = match &value {
            PvValue::Null => Input::Null,
            PvValue::Int(i) => Input::Int(*i),
            PvValue::Str(s) => Input::Str(s),
        };
        match send::with_template(|t| t.set(key, input)) {
            Ok(()) => 0,
            Err(e) => {
                kerr!("{e}");
                -1
            }
        }
    }

    /// `$uac_req(key)` name parser (fixup time).
    pub fn pv_parse_uac_req_name(
        sp: *mut sys::pv_spec_t,
        name: *mut sys::str_,
    ) -> c_int as "$uac_req" {
        // SAFETY: the core passes its spec and the name text for the call.
        let (Some(sp), Some(name)) = (unsafe { sp.as_mut() }, unsafe { name.as_ref() }) else {
            return -1;
        };
        // SAFETY: the name points into the config text, valid for the call.
        let text = unsafe { crate::host::str::KStr::from_raw(name) }.as_bytes();
        let Some(key) = Key::parse(text) else {
            kerr!("unknown uac_req name {}", crate::host::log::Bytes(text));
            return -1;
        };
        sp.pvp.pvn.type_ = PV_NAME_INTSTR;
        sp.pvp.pvn.u.isname.type_ = 0;
        sp.pvp.pvn.u.isname.name.n = width::widen(key.index());
        0
    }
}
