//! `gen_lock_t` in shared memory, usable by every Kamailio process.

use std::ptr::NonNull;

use crate::host::HostError;
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
        unsafe { ShmLockGuard::take(self.raw) }
    }
}

/// A `gen_lock_t` stored inside a larger shm structure instead of a block of
/// its own: a table of thousands of locks is one allocation.
#[repr(transparent)]
pub struct InlineLock(std::cell::UnsafeCell<sys::gen_lock_t>);

// SAFETY: as for ShmLock: shm, taken from any process, one thread per process.
unsafe impl Send for InlineLock {}
// SAFETY: see above.
unsafe impl Sync for InlineLock {}

impl InlineLock {
    /// Initialises the lock at `at`; fails when the core refuses.
    ///
    /// # Safety
    /// `at` points to writable shm memory for an `InlineLock`, not yet
    /// shared with another process.
    pub unsafe fn init(at: *mut InlineLock) -> Result<(), HostError> {
        // SAFETY: guaranteed by the caller; repr(transparent) over gen_lock_t.
        if unsafe { sys::ksr_rs_lock_init(at.cast()) } < 0 {
            return Err(HostError::Refused("lock init"));
        }
        Ok(())
    }

    /// Takes the lock until the guard drops.
    pub fn lock(&self) -> ShmLockGuard<'_> {
        // The UnsafeCell makes writes through this pointer legitimate.
        let raw = NonNull::from(&self.0).cast::<std::ffi::c_void>();
        // SAFETY: an initialised lock (`init`), living as long as the shm
        // structure holding it, which outlives `&self`.
        unsafe { ShmLockGuard::take(raw) }
    }
}

/// Holds a [`ShmLock`] or an [`InlineLock`]; releases it on drop (also when
/// unwinding).
pub struct ShmLockGuard<'a> {
    raw: NonNull<std::ffi::c_void>,
    _lock: std::marker::PhantomData<&'a ()>,
}

impl ShmLockGuard<'_> {
    /// # Safety
    /// `raw` is an initialised gen_lock_t that outlives the guard.
    unsafe fn take(raw: NonNull<std::ffi::c_void>) -> Self {
        // SAFETY: guaranteed by the caller.
        unsafe { sys::ksr_rs_lock_get(raw.as_ptr()) };
        ShmLockGuard {
            raw,
            _lock: std::marker::PhantomData,
        }
    }
}

impl Drop for ShmLockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard took the lock in `take`.
        unsafe { sys::ksr_rs_lock_release(self.raw.as_ptr()) };
    }
}
