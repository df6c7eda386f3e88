//! Shims of admin guide 4.1-4.6 (From/To replacement and restore), the
//! rr / tm / dialog callbacks of the restore, and the bind_uac entries.

use std::os::raw::{c_char, c_int, c_void};

use crate::host::dlg::dlg_event;
use crate::host::msg::SipMsg;
use crate::host::msg::lump::NameAddrHdr;
use crate::host::script::fixup;
use crate::host::str::KStr;
use crate::host::{api, tm::tmcb};
use crate::sys;
use crate::uac::config::Config;
use crate::uac::replace::{self, Hooks};

/// Feature setup in mod_init (rr / dialog callbacks).
pub fn init(cfg: &'static Config) -> Result<(), ()> {
    let hooks = Hooks {
        rr: rr_checker,
        reply: restore_uris_reply,
        dlg: replace_callback,
    };
    replace::init(cfg, hooks).map_err(|_| ())
}

/// The script code of a From/To function: 1 done, -1 failed (as C).
fn ret(r: Result<(), replace::ReplaceError>) -> c_int {
    match r {
        Ok(()) => 1,
        Err(replace::ReplaceError::Logged) => -1,
    }
}

/// Common body of w_replace_from / w_replace_to: one parameter is the URI,
/// two are display and URI (C `w_replace_from`).
///
/// # Safety
/// As for the `w_*` functions: the core's message and fixed-up parameters.
unsafe fn w_replace(
    which: NameAddrHdr,
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    // SAFETY: the core passes the message being routed.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    let (pd, pu) = if p2.is_null() {
        (None, p1)
    } else {
        (Some(p1), p2)
    };
    let display = match pd {
        // SAFETY: p1 was fixed up by fixup_spve_spve for this export.
        Some(p) => match unsafe { fixup::spve(msg, p) } {
            Some(v) => Some(v),
            None => {
                kerr!("cannot get the display name value");
                return -1;
            }
        },
        None => None,
    };
    // SAFETY: as above.
    let Some(uri) = (unsafe { fixup::spve(msg, pu) }) else {
        kerr!("cannot get the uri value");
        return -1;
    };
    ret(replace::replace(msg, which, display.as_deref(), Some(&uri)))
}

entry! {
    /// `uac_replace_from([display,] uri)`: admin guide 4.1, 4.2.
    pub fn w_replace_from(
        msg: *mut sys::sip_msg_t,
        p1: *mut c_char,
        p2: *mut c_char,
    ) -> c_int as "uac_replace_from" {
        // SAFETY: forwarded from the core.
        unsafe { w_replace(NameAddrHdr::From, msg, p1, p2) }
    }

    /// `uac_restore_from()`: admin guide 4.3.
    pub fn w_restore_from(
        msg: *mut sys::sip_msg_t,
        _p1: *mut c_char,
        _p2: *mut c_char,
    ) -> c_int as "uac_restore_from" {
        // SAFETY: the core passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        ret(replace::restore(msg, NameAddrHdr::From))
    }

    /// `uac_replace_to([display,] uri)`: admin guide 4.4, 4.5.
    pub fn w_replace_to(
        msg: *mut sys::sip_msg_t,
        p1: *mut c_char,
        p2: *mut c_char,
    ) -> c_int as "uac_replace_to" {
        // SAFETY: forwarded from the core.
        unsafe { w_replace(NameAddrHdr::To, msg, p1, p2) }
    }

    /// `uac_restore_to()`: admin guide 4.6.
    pub fn w_restore_to(
        msg: *mut sys::sip_msg_t,
        _p1: *mut c_char,
        _p2: *mut c_char,
    ) -> c_int as "uac_restore_to" {
        // SAFETY: the core passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        ret(replace::restore(msg, NameAddrHdr::To))
    }
}

/// Body of the bind_uac entries (C `replace_from_api`): an empty display
/// or URI means "keep"; returns 0 on success, -1 on error.
///
/// # Safety
/// `msg` is the message being routed; `dsp`/`uri` are NULL or valid `str`s.
#[allow(dead_code)]
unsafe fn api_replace(
    which: NameAddrHdr,
    msg: *mut sys::sip_msg_t,
    dsp: *mut sys::str_,
    uri: *mut sys::str_,
) -> c_int {
    // SAFETY: guaranteed by the caller.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    // SAFETY: NULL or a valid str for the call (caller's promise).
    let get =
        |p: *mut sys::str_| unsafe { p.as_ref() }.map(|s| unsafe { KStr::from_raw(s) }.to_vec());
    let d = get(dsp).filter(|v| !v.is_empty());
    let u = get(uri).filter(|v| !v.is_empty());
    match replace::replace(msg, which, d.as_deref(), u.as_deref()) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

entry! {
    /// `bind_uac` `replace_from(msg, display, uri)`.
    ///
    /// Called by another module with the message it is routing and NULL or
    /// valid `str` pointers.
    pub fn api_replace_from(
        msg: *mut sys::sip_msg_t,
        dsp: *mut sys::str_,
        uri: *mut sys::str_,
    ) -> c_int as "replace_from" {
        // SAFETY: forwarded from the caller.
        unsafe { api_replace(NameAddrHdr::From, msg, dsp, uri) }
    }

    /// `bind_uac` `replace_to(msg, display, uri)`.
    ///
    /// As for [`api_replace_from`].
    pub fn api_replace_to(
        msg: *mut sys::sip_msg_t,
        dsp: *mut sys::str_,
        uri: *mut sys::str_,
    ) -> c_int as "replace_to" {
        // SAFETY: forwarded from the caller.
        unsafe { api_replace(NameAddrHdr::To, msg, dsp, uri) }
    }

    /// rr callback (C `rr_checker`): every loose-routed request, auto mode.
    fn rr_checker(
        msg: *mut sys::sip_msg_t,
        _param: *mut sys::str_,
        _cb: *mut c_void,
    ) as "rr_checker" {
        // SAFETY: rr passes the request being loose-routed.
        if let Some(msg) = unsafe { SipMsg::from_ptr(msg) } {
            replace::rr_checker(msg);
        }
    }

    /// TMCB_RESPONSE_IN (C `restore_uris_reply`).
    fn restore_uris_reply(
        t: *mut sys::tm_cell_t,
        _type: c_int,
        p: *mut sys::tmcb_params,
    ) as "restore_uris_reply" {
        // SAFETY: tm passes the transaction and the callback params.
        if let Some(ev) = unsafe { tmcb::response_in(t, p) } {
            replace::restore_reply(ev);
        }
    }

    /// Dialog callback (C `replace_callback` and `uac_on_load_callback`).
    fn replace_callback(
        d: *mut sys::dlg_cell,
        types: c_int,
        p: *mut sys::dlg_cb_params,
    ) as "replace_callback" {
        let Some(dapi) = api::dlg() else { return };
        // SAFETY: the dialog module passes the dialog of the event.
        let Some(d) = (unsafe { dapi.borrowed(d) }) else {
            return;
        };
        // SAFETY: the params of the running callback.
        match unsafe { dlg_event(p) } {
            Some(ev) => replace::dialog_event(&d, types as u32, ev.request, ev.direction, ev.param),
            None => replace::dialog_event(&d, types as u32, None, 0, 0),
        }
    }
}

/// Reads a KEMI `str*` argument (NULL gives `None`).
///
/// # Safety
/// `p` is NULL or a `str` valid for the call, as KEMI engines pass them.
unsafe fn kemi_arg(p: *mut sys::str_) -> Option<Vec<u8>> {
    // SAFETY: guaranteed by the caller.
    unsafe { p.as_ref() }.map(|s| unsafe { KStr::from_raw(s) }.to_vec())
}

/// KEMI body (C `ki_replace_from`): the display is always applied ("" removes
/// it), an empty URI keeps the URI.
///
/// # Safety
/// `msg` is the message being routed; `dsp`/`uri` NULL or valid `str`s.
unsafe fn ki_replace(
    which: NameAddrHdr,
    msg: *mut sys::sip_msg_t,
    dsp: Option<*mut sys::str_>,
    uri: *mut sys::str_,
) -> c_int {
    // SAFETY: the KEMI engine passes the message being routed.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    // SAFETY: NULL or valid strs (caller's promise).
    let display = dsp.and_then(|p| unsafe { kemi_arg(p) });
    // SAFETY: as above.
    let uri = unsafe { kemi_arg(uri) }.filter(|u| !u.is_empty());
    ret(replace::replace(
        msg,
        which,
        display.as_deref(),
        uri.as_deref(),
    ))
}

entry! {
    /// KEMI `uac_replace_from(display, uri)`.
    pub fn ki_replace_from(
        msg: *mut sys::sip_msg_t,
        dsp: *mut sys::str_,
        uri: *mut sys::str_,
    ) -> c_int as "uac_replace_from" {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_replace(NameAddrHdr::From, msg, Some(dsp), uri) }
    }

    /// KEMI `uac_replace_from_uri(uri)`.
    pub fn ki_replace_from_uri(
        msg: *mut sys::sip_msg_t,
        uri: *mut sys::str_,
    ) -> c_int as "uac_replace_from_uri" {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_replace(NameAddrHdr::From, msg, None, uri) }
    }

    /// KEMI `uac_replace_to(display, uri)`.
    pub fn ki_replace_to(
        msg: *mut sys::sip_msg_t,
        dsp: *mut sys::str_,
        uri: *mut sys::str_,
    ) -> c_int as "uac_replace_to" {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_replace(NameAddrHdr::To, msg, Some(dsp), uri) }
    }

    /// KEMI `uac_replace_to_uri(uri)`.
    pub fn ki_replace_to_uri(msg: *mut sys::sip_msg_t, uri: *mut sys::str_) -> c_int
        as "uac_replace_to_uri"
    {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_replace(NameAddrHdr::To, msg, None, uri) }
    }
}

entry! {
    /// KEMI `uac_restore_from()`.
    pub fn ki_restore_from(msg: *mut sys::sip_msg_t) -> c_int as "uac_restore_from" {
        // SAFETY: the KEMI engine passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        ret(replace::restore(msg, NameAddrHdr::From))
    }

    /// KEMI `uac_restore_to()`.
    pub fn ki_restore_to(msg: *mut sys::sip_msg_t) -> c_int as "uac_restore_to" {
        // SAFETY: the KEMI engine passes the message being routed.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        ret(replace::restore(msg, NameAddrHdr::To))
    }
}
