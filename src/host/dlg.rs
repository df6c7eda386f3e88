//! The dialog module's API (`dlg_binds`): the dialog of a message, its
//! variables, and dialog callbacks.

use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::api::DlgApi;
use crate::host::msg::SipMsg;
use crate::host::str::{KStr, borrowed_str};
use crate::sys;

/// `DLG_DIR_DOWNSTREAM` / `DLG_DIR_UPSTREAM` of dialog/dlg_hash.h (not
/// included in the bindings).
pub const DIR_DOWNSTREAM: u32 = 1;
pub const DIR_UPSTREAM: u32 = 2;

/// A dialog callback (`dialog_cb`).
pub type DlgCallback = unsafe extern "C" fn(*mut sys::dlg_cell, i32, *mut sys::dlg_cb_params);

/// A dialog, borrowed for one call (inside a dialog callback), or referenced
/// by [`DlgApi::get_dlg`] and released on drop.
pub struct Dlg<'a> {
    api: &'a DlgApi,
    cell: NonNull<sys::dlg_cell>,
    owned: bool,
}

impl DlgApi {
    /// The dialog of `msg` (made by dlg_manage()), with a reference held
    /// until the returned value drops.
    pub fn get_dlg(&self, msg: &mut SipMsg) -> Option<Dlg<'_>> {
        let f = self.0.get_dlg?;
        // SAFETY: `msg` is the message being routed.
        let cell = NonNull::new(unsafe { f(msg.as_raw()) })?;
        Some(Dlg {
            api: self,
            cell,
            owned: true,
        })
    }

    /// A dialog passed to a callback, valid for the callback only.
    ///
    /// # Safety
    /// `cell` is the dialog the dialog module passed to the running callback.
    pub unsafe fn borrowed(&self, cell: *mut sys::dlg_cell) -> Option<Dlg<'_>> {
        Some(Dlg {
            api: self,
            cell: NonNull::new(cell)?,
            owned: false,
        })
    }

    /// Registers `cb` for `types` of events of every dialog (dlg NULL: only
    /// DLGCB_LOADED / DLGCB_CREATED are allowed).
    pub fn register_global_cb(&self, types: u32, cb: DlgCallback) -> Result<(), HostError> {
        let f = self
            .0
            .register_dlgcb
            .ok_or(HostError::Refused("register_dlgcb"))?;
        // SAFETY: global registration with a guarded callback and no param.
        let rc = unsafe {
            f(
                std::ptr::null_mut(),
                types as i32,
                Some(cb),
                std::ptr::null_mut(),
                None,
            )
        };
        if rc != 0 {
            return Err(HostError::Refused("register_dlgcb"));
        }
        Ok(())
    }
}

impl Dlg<'_> {
    /// Whether variable `name` is set (`get_dlg_varstatus`).
    pub fn has_var(&self, name: &[u8]) -> bool {
        let Some(f) = self.api.0.get_dlg_varstatus else {
            return false;
        };
        let mut k = borrowed_str(name);
        // SAFETY: live dialog; the key is only read.
        unsafe { f(self.cell.as_ptr(), &mut k) != 0 }
    }

    /// Sets (or with `None` deletes) a dialog variable; the dialog copies the
    /// value into shm.
    pub fn set_var(&self, name: &[u8], value: Option<&[u8]>) -> Result<(), HostError> {
        let f = self
            .api
            .0
            .set_dlg_var
            .ok_or(HostError::Refused("set_dlg_var"))?;
        let mut k = borrowed_str(name);
        let mut v = value.map(borrowed_str);
        let vp = v
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v as *mut sys::str_);
        // SAFETY: live dialog; key and value are read and copied.
        if unsafe { f(self.cell.as_ptr(), &mut k, vp) } < 0 {
            return Err(HostError::Refused("set_dlg_var"));
        }
        Ok(())
    }

    /// The value of a dialog variable, copied (`get_dlg_varval`).
    pub fn get_var(&self, name: &[u8]) -> Option<Vec<u8>> {
        let f = self.api.0.get_dlg_varval?;
        let mut k = borrowed_str(name);
        let mut out = sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: live dialog; the value is copied into a static buffer of the
        // dialog module, which we copy again before any other dialog call.
        let rc = unsafe { f(self.cell.as_ptr(), &mut k, &mut out) };
        if rc < 0 || out.s.is_null() {
            return None;
        }
        // SAFETY: `out` describes the dialog module's buffer, valid until the
        // next variable lookup.
        Some(unsafe { KStr::from_raw(&out) }.to_vec())
    }

    /// Registers `cb` for `types` on this dialog with an integer parameter.
    pub fn register_cb(&self, types: u32, cb: DlgCallback, param: usize) -> Result<(), HostError> {
        let f = self
            .api
            .0
            .register_dlgcb
            .ok_or(HostError::Refused("register_dlgcb"))?;
        // SAFETY: live dialog; `param` is an integer carried as a pointer and
        // never dereferenced, so there is nothing to free.
        let rc = unsafe {
            f(
                self.cell.as_ptr(),
                types as i32,
                Some(cb),
                param as *mut std::ffi::c_void,
                None,
            )
        };
        if rc != 0 {
            return Err(HostError::Refused("register_dlgcb"));
        }
        Ok(())
    }
}

impl Drop for Dlg<'_> {
    fn drop(&mut self) {
        if self.owned
            && let Some(f) = self.api.0.release_dlg
        {
            // SAFETY: get_dlg took a reference that we give back once.
            unsafe { f(self.cell.as_ptr()) };
        }
    }
}

/// What a dialog callback receives.
pub struct DlgEvent<'a> {
    pub request: Option<&'a mut SipMsg>,
    pub direction: u32,
    /// The integer registered with the callback.
    pub param: usize,
}

/// # Safety
/// `p` is the params pointer the dialog module passed to the running callback.
pub unsafe fn dlg_event<'a>(p: *mut sys::dlg_cb_params) -> Option<DlgEvent<'a>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: valid for the callback.
    let p = unsafe { &*p };
    let param = if p.param.is_null() {
        0
    } else {
        // SAFETY: `param` points to the registered parameter slot.
        unsafe { *p.param as usize }
    };
    Some(DlgEvent {
        // SAFETY: the request of the event (or NULL), valid for the callback.
        request: unsafe { SipMsg::from_ptr(p.req) },
        direction: p.direction,
        param,
    })
}

/// Dialog callback types used by the From/To restore.
pub const CB_LOADED: u32 = sys::DLGCB_LOADED;
pub const CB_CONFIRMED: u32 = sys::DLGCB_CONFIRMED;
pub const CB_REQ_WITHIN: u32 = sys::DLGCB_REQ_WITHIN;
pub const CB_TERMINATED: u32 = sys::DLGCB_TERMINATED;
