//! The one codec of state carried in shm from the process that sends a request
//! to the process that gets its outcome (`host::tm` copies the bytes into the
//! transaction's shm block): `uac_req_send`'s `send::Sent` and a
//! REGISTER's `reg::engine::CallbackParam`.
//!
//! A flat sequence of fields in a fixed order, each a little-endian `u32` or a
//! `u32` length followed by that many bytes. The order is the type's own; the
//! bytes never leave the machine (every process runs the same module image), so
//! there is no version and no tag. Decoding borrows from the bytes and refuses
//! short, over-long and trailing input.

/// Builds the bytes of one state, in one allocation when sized with
/// [`Writer::with_capacity`].
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// Room for `n` bytes (see [`Writer::bytes_len`]).
    pub fn with_capacity(n: usize) -> Writer {
        Writer(Vec::with_capacity(n))
    }

    /// The encoded size of a bytes field of `len` bytes.
    pub const fn bytes_len(len: usize) -> usize {
        4 + len
    }

    /// The encoded size of a number field.
    pub const U32_LEN: usize = 4;

    pub fn u32(&mut self, n: u32) -> &mut Writer {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// A length-prefixed field. Fields are bounded by Kamailio's message size
    /// (far below 4 GiB); a longer one would not decode.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Writer {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads the fields of one state back, borrowing from its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader(b)
    }

    pub fn u32(&mut self) -> Option<u32> {
        let (h, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*h))
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        if self.0.len() < n {
            return None;
        }
        let (v, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(v)
    }

    /// `Some` when every byte was read.
    pub fn end(self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let enc = Writer::default()
            .u32(7)
            .bytes(b"abc")
            .bytes(b"")
            .u32(u32::MAX)
            .finish();
        assert_eq!(
            enc.len(),
            4 + Writer::bytes_len(3) + Writer::bytes_len(0) + 4
        );
        let mut r = Reader::new(&enc);
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.bytes(), Some(&b"abc"[..]));
        assert_eq!(r.bytes(), Some(&b""[..]));
        assert_eq!(r.u32(), Some(u32::MAX));
        assert_eq!(r.end(), Some(()));
    }

    #[test]
    fn short_long_and_trailing_input_refused() {
        let enc = Writer::default().u32(1).bytes(b"xyz").finish();
        for cut in 0..enc.len() {
            let mut r = Reader::new(&enc[..cut]);
            let whole = r.u32().and_then(|_| r.bytes()).and_then(|_| r.end());
            assert_eq!(whole, None, "cut at {cut}");
        }
        let mut r = Reader::new(&enc);
        assert_eq!(r.u32(), Some(1));
        assert_eq!(r.bytes(), Some(&b"xyz"[..]));
        assert_eq!(r.end(), Some(()));
        // a length beyond the input
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(r.bytes(), None);
        // trailing bytes
        let mut r = Reader::new(&[1, 0, 0, 0, 9]);
        assert_eq!(r.u32(), Some(1));
        assert_eq!(r.end(), None);
    }
}
