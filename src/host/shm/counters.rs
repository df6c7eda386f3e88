//! Kamailio counters (`core/counters.h`) whose value is computed on read by a callback,
//! so they always show the true state instead of a sum of increments; and
//! [`ShmCounter`], a count of events shared by every process, for such a callback to
//! read.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::host::HostError;
use crate::host::shm::mem::shm_alloc;
use crate::sys;

/// A number of events, in shared memory: every forked process increments and reads the
/// same value. Made in mod_init (before the fork), never freed while Kamailio runs.
pub struct ShmCounter {
    cell: NonNull<AtomicI64>,
}

// SAFETY: the pointer is immutable and points to an atomic in shm that lives as long
// as Kamailio; all access is atomic.
unsafe impl Send for ShmCounter {}
// SAFETY: see above.
unsafe impl Sync for ShmCounter {}

impl ShmCounter {
    /// A counter at 0; `None` when shm is out.
    pub fn new() -> Option<ShmCounter> {
        // SAFETY: plain allocation of the size of an AtomicI64 (shm_malloc aligns for
        // any type); initialised just below, before anyone else can see it.
        let cell = unsafe { shm_alloc(std::mem::size_of::<AtomicI64>()) }?.cast::<AtomicI64>();
        // SAFETY: a fresh, exclusively owned block of the right size and alignment.
        unsafe { cell.as_ptr().write(AtomicI64::new(0)) };
        Some(ShmCounter { cell })
    }

    fn atomic(&self) -> &AtomicI64 {
        // SAFETY: initialised in `new`, never freed; shared only as an atomic.
        unsafe { self.cell.as_ref() }
    }

    pub fn inc(&self) {
        self.atomic().fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the value (for a shared number that is not a count, e.g. a time).
    pub fn set(&self, v: i64) {
        self.atomic().store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.atomic().load(Ordering::Relaxed)
    }
}

/// One counter of a group: name, description and the function that computes it.
pub struct ComputedCounter {
    pub name: &'static CStr,
    pub descr: &'static CStr,
    pub get: sys::counter_cbk_f,
}

/// `CNT_F_NO_RESET`: a computed value cannot be reset.
const NO_RESET: i32 = 1;

/// Registers `counters` in `group` (mod_init, before counters are initialised).
pub fn register_computed(
    group: &'static CStr,
    counters: &[ComputedCounter],
) -> Result<(), HostError> {
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
    if rc < 0 {
        Err(HostError::Refused("counter registration"))
    } else {
        Ok(())
    }
}
