//! A dedicated Kamailio process for periodic work, forked the host's way (as the C
//! module's `child_init` does for "TIMER UAC REG").

use std::ffi::CStr;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::host::HostError;
use crate::sys;

/// mod_init: reserve one process and its config-framework child slot.
pub fn reserve_process() {
    // SAFETY: plain calls allowed during mod_init.
    unsafe {
        sys::register_procs(1);
        sys::cfg_register_child(1);
    }
}

/// Set in the process [`fork_periodic`] made, which processes no SIP message.
static OWN_PROCESS: AtomicBool = AtomicBool::new(false);

/// Whether this is the process [`fork_periodic`] made (its work runs outside any
/// message or transaction of the core).
pub fn in_own_process() -> bool {
    OWN_PROCESS.load(Ordering::Relaxed)
}

/// child_init(PROC_MAIN): forks the process. In the child, initialises the config
/// framework and then calls `tick` every `period`, forever. Returns in the parent.
pub fn fork_periodic(
    name: &'static CStr,
    first: impl FnOnce(),
    period: Duration,
    mut tick: impl FnMut(),
) -> Result<(), HostError> {
    // SAFETY: called from child_init(PROC_MAIN) after register_procs in mod_init.
    let pid = unsafe { sys::fork_process(sys::PROC_TIMER, name.as_ptr() as *mut c_char, 1) };
    if pid < 0 {
        return Err(HostError::Refused("fork_process"));
    }
    if pid > 0 {
        return Ok(());
    }
    // Child.
    OWN_PROCESS.store(true, Ordering::Relaxed);
    // SAFETY: first call in the new process, as the core requires.
    if unsafe { sys::cfg_child_init() } != 0 {
        return Err(HostError::Refused("cfg_child_init"));
    }
    // The config framework's current values before anything is sent (the C
    // module sent its first REGISTERs with stale tm timers: kamailio GH #4356).
    // SAFETY: the config framework was initialised above in this process.
    unsafe { sys::ksr_rs_cfg_update() };
    first();
    loop {
        // SAFETY: the config framework was initialised above in this process.
        unsafe { sys::ksr_rs_cfg_update() };
        std::thread::sleep(period);
        tick();
    }
}
