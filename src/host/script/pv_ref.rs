//! A PV spec the core owns: the output of a `fixup_*_pvar` fixup, or an entry of
//! the core's PV cache (`pv_cache_get`, as the C module's KEMI functions use
//! for a destination variable given by name).

use std::os::raw::c_int;
use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::str::borrowed_str;
use crate::sys;

/// A writable-or-not PV spec owned by the core (fixup params and the PV cache
/// live in pkg memory for the life of the process).
pub struct PvRef(NonNull<sys::pv_spec_t>);

impl PvRef {
    /// Wraps the spec a `fixup_*_pvar` fixup made; `None` for NULL.
    ///
    /// # Safety
    /// `p` is NULL or a parsed `pv_spec_t` that outlives the returned value
    /// (fixup output: it lives as long as the config).
    pub unsafe fn from_fixup(p: *mut std::os::raw::c_char) -> Option<PvRef> {
        NonNull::new(p.cast::<sys::pv_spec_t>()).map(PvRef)
    }

    /// The spec of `$name` from the core's PV cache (parsed and cached on first use).
    pub fn from_cache(name: &[u8]) -> Option<PvRef> {
        if name.is_empty() || name.len() > i32::MAX as usize / 2 {
            return None;
        }
        let mut s = borrowed_str(name);
        // SAFETY: `s` points to `name` for the call; the cache copies the name it
        // keeps and returns a spec in pkg memory that is never freed while the
        // process runs.
        NonNull::new(unsafe { sys::pv_cache_get(&mut s) }).map(PvRef)
    }

    /// Whether the PV can be assigned.
    pub fn is_writable(&self) -> bool {
        // SAFETY: a valid spec (constructors); read-only access.
        unsafe { self.0.as_ref() }.setf.is_some()
    }

    /// Assigns a string; fails if the PV is read-only or the setter fails.
    pub fn set_bytes(&self, msg: &mut SipMsg, value: &[u8]) -> Result<(), HostError> {
        if !self.is_writable() {
            return Err(HostError::Refused("pv set"));
        }
        let mut val = sys::pv_value_t {
            rs: borrowed_str(value),
            ri: 0,
            flags: sys::PV_VAL_STR as c_int,
        };
        // SAFETY: `msg` is the message being routed, the spec valid (constructors);
        // the core copies the string, `val` lives for the call.
        if unsafe { sys::pv_set_spec_value(msg.as_raw(), self.0.as_ptr(), 0, &mut val) } != 0 {
            return Err(HostError::Refused("pv set"));
        }
        Ok(())
    }
}
