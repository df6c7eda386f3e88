//! [`InlineBytes`]: a byte buffer kept on the stack up to `N` bytes and moved
//! to the heap beyond (a hand-written `SmallVec<[u8; N]>`), for the per-call
//! paths where a header value or a decoded URI is copied once and dropped
//! again before the call returns.

use std::ops::{Deref, DerefMut};

/// Bytes, inline up to `N`, on the heap beyond.
#[derive(Clone)]
pub struct InlineBytes<const N: usize> {
    len: usize,
    buf: [u8; N],
    /// Used instead of `buf` once the content outgrew it.
    heap: Option<Vec<u8>>,
}

impl<const N: usize> InlineBytes<N> {
    pub const fn new() -> Self {
        InlineBytes {
            len: 0,
            buf: [0; N],
            heap: None,
        }
    }

    pub fn from_slice(b: &[u8]) -> Self {
        let mut s = Self::new();
        s.extend_from_slice(b);
        s
    }

    /// The concatenation of `parts`.
    pub fn concat(parts: &[&[u8]]) -> Self {
        let mut s = Self::new();
        for p in parts {
            s.extend_from_slice(p);
        }
        s
    }

    /// `len` zero bytes, to be filled through `DerefMut`.
    pub fn zeroed(len: usize) -> Self {
        let mut s = Self::new();
        if len <= N {
            s.len = len;
        } else {
            s.heap = Some(vec![0; len]);
        }
        s
    }

    pub fn extend_from_slice(&mut self, b: &[u8]) {
        if let Some(h) = &mut self.heap {
            h.extend_from_slice(b);
            return;
        }
        let end = self.len + b.len();
        if end <= N {
            self.buf[self.len..end].copy_from_slice(b);
            self.len = end;
        } else {
            let mut h = Vec::with_capacity(end.max(2 * N));
            h.extend_from_slice(&self.buf[..self.len]);
            h.extend_from_slice(b);
            self.heap = Some(h);
        }
    }

    pub fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    pub fn truncate(&mut self, len: usize) {
        match &mut self.heap {
            Some(h) => h.truncate(len),
            None => self.len = self.len.min(len),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(h) => h,
            None => &self.buf[..self.len],
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.heap {
            Some(h) => h,
            None => &mut self.buf[..self.len],
        }
    }
}

impl<const N: usize> Default for InlineBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deref for InlineBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> DerefMut for InlineBytes<N> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl<const N: usize> std::fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize, const M: usize> PartialEq<&[u8; M]> for InlineBytes<N> {
    fn eq(&self, other: &&[u8; M]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<&[u8]> for InlineBytes<N> {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<Vec<u8>> for InlineBytes<N> {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::InlineBytes;

    #[test]
    fn inline_then_spills_to_heap() {
        let mut b = InlineBytes::<4>::from_slice(b"ab");
        assert_eq!(&*b, b"ab");
        b.extend_from_slice(b"cd");
        assert_eq!(&*b, b"abcd");
        b.push(b'e');
        assert_eq!(&*b, b"abcde");
        b.extend_from_slice(b"fgh");
        assert_eq!(&*b, b"abcdefgh");
        b.truncate(3);
        assert_eq!(&*b, b"abc");
        b[0] = b'x';
        assert_eq!(&*b, b"xbc");
        assert_eq!(&*InlineBytes::<2>::zeroed(2), &[0, 0]);
        assert_eq!(&*InlineBytes::<2>::zeroed(3), &[0, 0, 0]);
        assert_eq!(&*InlineBytes::<2>::concat(&[b"a", b"", b"bc"]), b"abc");
        let mut s = InlineBytes::<8>::from_slice(b"abcdef");
        s.truncate(10);
        assert_eq!(&*s, b"abcdef");
        s.truncate(0);
        assert!(s.is_empty());
    }
}
