//! The tm, rr and dialog APIs, bound once in mod_init.
//!
//! Each is copied out of the owning module into Rust memory before the fork,
//! so every process has the same function pointers.

use std::sync::OnceLock;

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

/// Binds tm (mod_init). Fails when tm is not loaded before us.
pub fn bind_tm() -> Result<(), &'static str> {
    let mut b = sys::tm_binds::default();
    // SAFETY: the loader fills `b` through find_export; `b` is ours.
    if unsafe { sys::ksr_rs_load_tm_api(&mut b) } != 0 {
        return Err("can't load TM API - is the tm module loaded before uac?");
    }
    let _ = TM.set(TmApi(b));
    Ok(())
}

/// Binds rr (mod_init).
pub fn bind_rr() -> Result<(), &'static str> {
    let mut b = sys::rr_binds::default();
    // SAFETY: as for tm.
    if unsafe { sys::ksr_rs_load_rr_api(&mut b) } != 0 {
        return Err("can't load RR API - is the rr module loaded before uac?");
    }
    let _ = RR.set(RrApi(b));
    Ok(())
}

/// Binds dialog (mod_init).
pub fn bind_dlg() -> Result<(), &'static str> {
    let mut b = sys::dlg_binds::default();
    // SAFETY: as for tm.
    if unsafe { sys::ksr_rs_load_dlg_api(&mut b) } != 0 {
        return Err("failed to find dialog API - is the dialog module loaded before uac?");
    }
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
