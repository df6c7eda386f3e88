//! Kamailio's private (pkg) and shared (shm) memory.

use std::ptr::NonNull;

use crate::sys;

/// Bytes in pkg memory, owned until handed to the core (lumps free them).
pub struct PkgBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl PkgBuf {
    /// Copies `bytes` into a new pkg block; `None` when pkg memory is out.
    pub fn from_bytes(bytes: &[u8]) -> Option<PkgBuf> {
        Self::from_parts(&[bytes])
    }

    /// Copies the concatenation of `parts` into a new pkg block.
    pub fn from_parts(parts: &[&[u8]]) -> Option<PkgBuf> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        // SAFETY: plain allocation; one extra byte so the size is never 0.
        let raw = unsafe { sys::ksr_rs_pkg_malloc(len + 1) } as *mut u8;
        let ptr = NonNull::new(raw)?;
        let mut at = 0;
        for p in parts {
            // SAFETY: `raw` has room for len + 1 bytes, the parts add up to
            // len, and no part overlaps the new block.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), ptr.as_ptr().add(at), p.len()) };
            at += p.len();
        }
        // SAFETY: `at` == len, inside the block.
        unsafe { *ptr.as_ptr().add(at) = 0 };
        Some(PkgBuf { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives up ownership: the core now frees the block.
    pub fn into_raw(self) -> *mut std::os::raw::c_char {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p.cast()
    }
}

impl Drop for PkgBuf {
    fn drop(&mut self) {
        // SAFETY: the block came from pkg_malloc and was not given away.
        unsafe { sys::ksr_rs_pkg_free(self.ptr.as_ptr().cast()) };
    }
}

/// Raw shm allocation for the shared structures built on top of it.
///
/// # Safety
/// The result is uninitialised; the caller initialises it before use and
/// frees it once with [`shm_free`].
pub unsafe fn shm_alloc(size: usize) -> Option<NonNull<u8>> {
    // SAFETY: plain allocation.
    NonNull::new(unsafe { sys::ksr_rs_shm_malloc(size.max(1)) } as *mut u8)
}

/// # Safety
/// `p` came from [`shm_alloc`] and is freed once, by one process.
pub unsafe fn shm_free(p: NonNull<u8>) {
    // SAFETY: guaranteed by the caller.
    unsafe { sys::ksr_rs_shm_free(p.as_ptr().cast()) };
}
