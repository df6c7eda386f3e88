//! The core's listening sockets (`socket_info`), looked up by
//! `[proto:]host[:port]` or by the name given in a `listen=... name "x"`.
//!
//! The core builds its socket lists in pkg memory before it forks the
//! workers and never frees them while Kamailio runs, so a `socket_info`
//! pointer found in one process (even in mod_init) is valid, at the same
//! address, in every process for the whole run.

use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::str::{KStr, borrowed_str};
use crate::sys;

/// One of the core's listening sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Socket(NonNull<sys::socket_info>);

// SAFETY: the pointee is created before the fork and is read-only and alive
// until Kamailio exits (see the module docs); Kamailio processes are
// single-threaded, so sharing the pointer value is harmless.
unsafe impl Send for Socket {}
// SAFETY: see above.
unsafe impl Sync for Socket {}

impl Socket {
    /// Finds the local socket `text` (`udp:127.0.0.1:5060`, `127.0.0.1:5060`,
    /// `tcp:[::1]:5060`...), as tm does for `uac_req_t.ssock`.
    pub fn lookup(text: &[u8]) -> Result<Socket, HostError> {
        if text.is_empty() || text.len() > 1024 || text.contains(&0) {
            return Err(HostError::SocketSyntax);
        }
        // parse_phostport reads a NUL-terminated string.
        let mut z = text.to_vec();
        z.push(0);
        let mut host: *mut c_char = std::ptr::null_mut();
        let mut hlen: c_int = 0;
        let mut port: c_int = 0;
        let mut proto: c_int = 0;
        // SAFETY: `z` is NUL-terminated and outlives the call; the parser only
        // reads it and writes the four out-parameters (host points into `z`).
        let rc = unsafe {
            sys::parse_phostport(
                z.as_mut_ptr().cast(),
                &mut host,
                &mut hlen,
                &mut port,
                &mut proto,
            )
        };
        if rc != 0 || host.is_null() || hlen <= 0 {
            return Err(HostError::SocketSyntax);
        }
        let mut host_str = sys::str_ { s: host, len: hlen };
        // SAFETY: `host_str` points into `z`, alive for the call; the core
        // only compares it with its socket list.
        let si = unsafe { sys::grep_sock_info(&mut host_str, port as u16, proto as u16) };
        NonNull::new(si)
            .map(Socket)
            .ok_or(HostError::SocketNotLocal)
    }

    /// Finds a socket by its `name` attribute (`listen=... name "pub"`).
    pub fn by_name(name: &[u8]) -> Option<Socket> {
        if name.is_empty() {
            return None;
        }
        let mut s = borrowed_str(name);
        // SAFETY: `s` points to `name` for the call; the core only compares.
        let si = unsafe { sys::ksr_get_socket_by_name(&mut s) };
        NonNull::new(si.cast()).map(Socket)
    }

    /// `lookup`, then the socket name as a fallback.
    pub fn lookup_or_name(text: &[u8]) -> Result<Socket, HostError> {
        match Socket::lookup(text) {
            Ok(s) => Ok(s),
            Err(e) => Socket::by_name(text).ok_or(e),
        }
    }

    /// `proto:ip:port` as the core prints it.
    pub fn sock_str(&self) -> Vec<u8> {
        // SAFETY: the socket is alive for the whole run (module docs); its
        // sock_str is set by the core when the socket is created.
        unsafe { KStr::from_raw(&(*self.0.as_ptr()).sock_str) }.to_vec()
    }

    /// The raw pointer, for tm's dialog structure.
    pub(crate) fn as_raw(&self) -> *mut sys::socket_info {
        self.0.as_ptr()
    }
}
