//! A PV (in practice an AVP, `restore_from_avp` / `restore_to_avp`) parsed in
//! mod_init and shared read-only by every process.

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::script::pv::PvSpec;

/// A parsed PV spec kept in a `static` for the life of the process.
pub struct SharedPv(PvSpec);

// SAFETY: the spec is parsed once in mod_init, before the fork, and only read
// afterwards (getters and setters take it by shared reference and the core
// does not mutate it); each Kamailio process is single-threaded.
unsafe impl Send for SharedPv {}
// SAFETY: see above.
unsafe impl Sync for SharedPv {}

impl SharedPv {
    pub fn parse(text: &[u8]) -> Option<SharedPv> {
        PvSpec::parse(text).map(SharedPv)
    }

    /// Stores `value` (a string) for the current transaction/message.
    pub fn set(&self, msg: &mut SipMsg, value: &[u8]) -> Result<(), HostError> {
        self.0.set_bytes(msg, value)
    }

    /// The current value, if set and not empty.
    pub fn get(&self, msg: &mut SipMsg) -> Option<Vec<u8>> {
        self.0.get_bytes(msg).filter(|v| !v.is_empty())
    }
}
