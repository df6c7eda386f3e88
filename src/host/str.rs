//! Kamailio's `str` (pointer + length, not NUL-terminated).

use std::marker::PhantomData;
use std::os::raw::c_char;

use crate::sys;

/// A borrowed view of a Kamailio `str`.
#[derive(Clone, Copy)]
pub struct KStr<'a> {
    bytes: &'a [u8],
    _life: PhantomData<&'a sys::str_>,
}

impl<'a> KStr<'a> {
    /// # Safety
    /// `s.s` must point to `s.len` readable bytes that stay valid for `'a`
    /// (or be NULL, or `len` <= 0, which give an empty view).
    pub unsafe fn from_raw(s: &sys::str_) -> KStr<'a> {
        let bytes = if s.s.is_null() || s.len <= 0 {
            &[][..]
        } else {
            // SAFETY: guaranteed by the caller (see above).
            unsafe { std::slice::from_raw_parts(s.s as *const u8, s.len as usize) }
        };
        KStr {
            bytes,
            _life: PhantomData,
        }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }
}

/// A `str` pointing into Rust-owned bytes, for passing to the core for the
/// duration of one call. The core must not keep the pointer.
pub fn borrowed_str(bytes: &[u8]) -> sys::str_ {
    sys::str_ {
        s: bytes.as_ptr() as *mut c_char,
        len: bytes.len() as i32,
    }
}
