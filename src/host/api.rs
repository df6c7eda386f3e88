//! The tm, rr and dialog APIs, bound once in mod_init.
//!
//! Each is copied out of the owning module into Rust memory before the fork,
//! so every process has the same function pointers.

use std::sync::OnceLock;

use crate::host::HostError;
use crate::sys;

/// tm's exported functions (`tm_binds`).
pub struct TmApi(pub(crate) sys::tm_binds);
/// rr's exported functions (`rr_binds`).
pub struct RrApi(pub(crate) sys::rr_binds);
/// dialog's exported functions (`dlg_binds`).
pub struct DlgApi(pub(crate) sys::dlg_binds);

// SAFETY: plain tables of function pointers and ints, written once in
// mod_init and read-only afterwards; Kamailio processes are single-threaded.
unsafe impl Send for TmApi {}
// SAFETY: see above.
unsafe impl Sync for TmApi {}
// SAFETY: see above.
unsafe impl Send for RrApi {}
// SAFETY: see above.
unsafe impl Sync for RrApi {}
// SAFETY: see above.
unsafe impl Send for DlgApi {}
// SAFETY: see above.
unsafe impl Sync for DlgApi {}

static TM: OnceLock<TmApi> = OnceLock::new();
static RR: OnceLock<RrApi> = OnceLock::new();
static DLG: OnceLock<DlgApi> = OnceLock::new();

/// An API table as the loaders fill it, followed by slack that must stay
/// zero. The owning module clears and fills `sizeof` of *its* build's
/// struct: if that is larger than the headers of ours (a release or patch
/// release whose API grew), it writes into the slack instead of past our
/// memory, and binding fails with a message instead of running with
/// shifted function pointers.
#[repr(C)]
struct Checked<T> {
    binds: T,
    slack: [usize; 64],
}

/// Loads `module`'s API table; `not_loaded` is the C module's message for a
/// module that is missing or loaded after us.
pub(crate) fn load_checked<T: Default>(
    load: unsafe extern "C" fn(*mut T) -> std::os::raw::c_int,
    module: &'static str,
    not_loaded: &'static str,
) -> Result<T, HostError> {
    let mut c = Checked {
        binds: T::default(),
        slack: [0; 64],
    };
    // SAFETY: the loader fills the table through find_export; the table
    // and its slack are ours and live across the call.
    if unsafe { load(&mut c.binds) } != 0 {
        return Err(HostError::ApiNotLoaded(not_loaded));
    }
    if c.slack.iter().any(|&w| w != 0) {
        return Err(HostError::ApiTooLarge(module));
    }
    Ok(c.binds)
}

/// Binds tm (mod_init). Fails when tm is not loaded before us.
pub fn bind_tm() -> Result<(), HostError> {
    let b = load_checked(
        sys::ksr_rs_load_tm_api,
        "tm",
        "can't load TM API - is the tm module loaded before uac?",
    )?;
    let _ = TM.set(TmApi(b));
    Ok(())
}

/// Binds rr (mod_init).
pub fn bind_rr() -> Result<(), HostError> {
    let b = load_checked(
        sys::ksr_rs_load_rr_api,
        "rr",
        "can't load RR API - is the rr module loaded before uac?",
    )?;
    let _ = RR.set(RrApi(b));
    Ok(())
}

/// Binds dialog (mod_init).
pub fn bind_dlg() -> Result<(), HostError> {
    let b = load_checked(
        sys::ksr_rs_load_dlg_api,
        "dialog",
        "failed to find dialog API - is the dialog module loaded before uac?",
    )?;
    let _ = DLG.set(DlgApi(b));
    Ok(())
}

/// tm, once bound in mod_init.
pub fn tm() -> Option<&'static TmApi> {
    TM.get()
}

/// rr, when the config needs it.
pub fn rr() -> Option<&'static RrApi> {
    RR.get()
}

/// dialog, when the config needs it.
pub fn dlg() -> Option<&'static DlgApi> {
    DLG.get()
}

impl RrApi {
    /// Whether rr's `append_fromtag` is on (needed by restore_mode auto).
    pub fn append_fromtag(&self) -> bool {
        self.0.append_fromtag != 0
    }
}
