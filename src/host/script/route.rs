//! Running a script event: an `event_route[name]` of the native config, or
//! a function of the KEMI script (`event_callback` style), on a received
//! message or on the core's faked message.

use std::ffi::CStr;
use std::os::raw::c_int;

use crate::host::msg::SipMsg;
use crate::host::str::borrowed_str;
use crate::sys;

/// `REQUEST_ROUTE`, the route type the C module runs its event route with.
pub const REQUEST_ROUTE: u32 = sys::REQUEST_ROUTE;

/// What handles an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventHandler {
    /// Index of an `event_route[...]` block in the core's `event_rt`.
    Route(c_int),
    /// Name of a function of the KEMI script.
    Kemi(Vec<u8>),
}

/// The index of `event_route[name]` when the config defines it (looked up,
/// never created; the core's `route_get` would add an empty entry).
pub fn find_event_route(name: &CStr) -> Option<c_int> {
    // SAFETY: `event_rt` is the core's route table, filled while the config
    // was parsed and read-only afterwards; `name` is NUL-terminated and only
    // read by route_lookup.
    unsafe {
        let rt = sys::route_lookup(&raw mut sys::event_rt, name.as_ptr() as *mut _);
        let list = sys::event_rt.rlist;
        if rt < 0
            || rt >= sys::event_rt.entries
            || list.is_null()
            || (*list.add(rt as usize)).is_null()
        {
            return None;
        }
        Some(rt)
    }
}

/// Whether a KEMI engine (app_lua, app_jsdt, ...) runs the config.
pub fn kemi_engine_loaded() -> bool {
    // SAFETY: returns the engine the core selected, or NULL.
    !unsafe { sys::sr_kemi_eng_get() }.is_null()
}

/// Runs `handler` for the event `event_name` on `msg`, or on the core's
/// faked message when `msg` is `None`, with the route type set to
/// `route_type` meanwhile (the C module uses REQUEST_ROUTE so that most
/// functions are allowed). Returns false when nothing could run.
pub fn run_event(
    handler: &EventHandler,
    event_name: &CStr,
    msg: Option<&mut SipMsg>,
    route_type: u32,
) -> bool {
    let raw_msg = match msg {
        Some(m) => m.as_raw(),
        // SAFETY: returns the core's static faked request, prepared for a
        // new use (fresh id), valid in this process.
        None => unsafe { sys::faked_msg_get_next() },
    };
    if raw_msg.is_null() {
        return false;
    }
    // SAFETY: `route_type` is the core's per-process global; we restore it.
    let backup = unsafe { sys::route_type };
    // SAFETY: as above.
    unsafe { sys::route_type = route_type as c_int };
    let ok = match handler {
        EventHandler::Route(rt) => {
            // SAFETY: `rt` came from find_event_route (a valid, non-empty
            // entry of the read-only table); `raw_msg` is a valid message.
            unsafe {
                let a = *sys::event_rt.rlist.add(*rt as usize);
                sys::run_top_route(a, raw_msg, std::ptr::null_mut());
            }
            true
        }
        EventHandler::Kemi(func) => {
            // SAFETY: as in kemi_engine_loaded.
            let keng = unsafe { sys::sr_kemi_eng_get() };
            if keng.is_null() {
                kdbg!("event callback set, but no cfg engine");
                false
            } else {
                let mut f = borrowed_str(func);
                let mut ev = borrowed_str(event_name.to_bytes());
                // SAFETY: the engine, message and both strs are valid for the
                // call; the engine only reads the names.
                let rc = unsafe {
                    sys::sr_kemi_route(keng, raw_msg, sys::EVENT_ROUTE as c_int, &mut f, &mut ev)
                };
                if rc < 0 {
                    kerr!("error running event route kemi callback");
                }
                true
            }
        }
    };
    // SAFETY: restores the value read above.
    unsafe { sys::route_type = backup };
    ok
}

/// In the process of [`crate::host::timer::fork_periodic`], frees what a script
/// run on the faked message left in the process's message environment (AVPs,
/// XAVPs), as the core does after each received message and rtimer after each
/// run. Elsewhere nothing: in a SIP worker or a tm callback the lists belong to
/// the message or transaction being processed.
pub fn reset_msg_env() {
    if !crate::host::timer::in_own_process() {
        return;
    }
    // SAFETY: in our own periodic process no message or transaction is being
    // processed between script runs; the core frees only its per-process lists.
    unsafe { sys::ksr_msg_env_reset() };
}
