//! `gen_lock_t` in shared memory, usable by every Kamailio process.

use std::ptr::NonNull;

use crate::sys;

/// A lock every forked process shares. Made in mod_init (before the fork),
/// never freed while Kamailio runs.
pub struct ShmLock {
    raw: NonNull<std::ffi::c_void>,
}

// SAFETY: the lock lives in shm and is designed to be taken from any process;
// we never use it from several threads of one process (Kamailio is single-
// threaded per process), and the pointer itself is immutable.
unsafe impl Send for ShmLock {}
// SAFETY: see above.
unsafe impl Sync for ShmLock {}

impl ShmLock {
    /// Allocates and initialises a lock in shm; `None` when shm is out.
    pub fn new() -> Option<ShmLock> {
        // SAFETY: plain allocation of a gen_lock_t.
        let raw = NonNull::new(unsafe { sys::ksr_rs_lock_alloc() })?;
        // SAFETY: `raw` is a freshly allocated gen_lock_t.
        if unsafe { sys::ksr_rs_lock_init(raw.as_ptr()) } < 0 {
            // SAFETY: allocated above, not shared yet.
            unsafe { sys::ksr_rs_lock_dealloc(raw.as_ptr()) };
            return None;
        }
        Some(ShmLock { raw })
    }

    /// Takes the lock until the guard drops.
    pub fn lock(&self) -> ShmLockGuard<'_> {
        // SAFETY: `raw` is an initialised gen_lock_t for our whole lifetime.
        unsafe { sys::ksr_rs_lock_get(self.raw.as_ptr()) };
        ShmLockGuard { lock: self }
    }
}

/// Holds a [`ShmLock`]; releases it on drop (also when unwinding).
pub struct ShmLockGuard<'a> {
    lock: &'a ShmLock,
}

impl Drop for ShmLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock in `ShmLock::lock`.
        unsafe { sys::ksr_rs_lock_release(self.lock.raw.as_ptr()) };
    }
}
