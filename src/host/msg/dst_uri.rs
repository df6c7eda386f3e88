//! The destination URI (`$du`) of the message being routed.

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::str::borrowed_str;
use crate::sys;

impl SipMsg {
    /// Sets `$du` (the outbound proxy / next hop); fails when the URI does not
    /// fit a `str` or the core fails (out of pkg memory).
    pub fn set_dst_uri(&mut self, uri: &[u8]) -> Result<(), HostError> {
        if uri.len() > i32::MAX as usize / 2 {
            return Err(HostError::BadField("destination URI"));
        }
        let s = borrowed_str(uri);
        // SAFETY: the message is being routed by this process; the core copies
        // the URI into the message's own pkg buffer.
        if unsafe { sys::set_dst_uri(self.as_raw(), &s) } < 0 {
            return Err(HostError::NoPkg);
        }
        Ok(())
    }
}
