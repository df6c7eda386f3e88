//! Pseudo-variables: parse a spec once (mod_init or fixup), read and write it
//! per message.

use std::os::raw::c_int;

use crate::host::HostError;
use crate::host::msg::SipMsg;
use crate::host::str::{KStr, borrowed_str};
use crate::host::width;
use crate::sys;

/// `EQ_T` of `core/lvalue.h`: plain assignment.
const ASSIGN_OP: c_int = 254;

/// A parsed PV spec, owned by Rust; read-only after parsing, so forked
/// copies of it stay valid in every process.
pub struct PvSpec {
    spec: Box<sys::pv_spec_t>,
}

/// A PV's value as read from the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvValue {
    Null,
    /// `int` up to 5.6, `long` from 5.7: kept as i64 on every release.
    Int(i64),
    Str(Vec<u8>),
}

impl PvSpec {
    /// Parses `$avp(x)`, `$var(y)`...; `None` if the core refuses it.
    pub fn parse(text: &[u8]) -> Option<PvSpec> {
        let mut spec: Box<sys::pv_spec_t> = Box::default();
        let mut name = borrowed_str(text);
        // SAFETY: `name` points to `text`, valid for the call; the core copies
        // what it keeps (names go to pkg memory), and writes into `spec`.
        let end = unsafe { sys::pv_parse_spec2(&mut name, &mut *spec, 1) };
        if end.is_null() {
            return None;
        }
        Some(PvSpec { spec })
    }

    /// The PV type (`PVT_AVP`, ...).
    pub fn pv_type(&self) -> u32 {
        self.spec.type_
    }

    pub fn is_writable(&self) -> bool {
        self.spec.setf.is_some()
    }

    /// Reads the value for `msg`.
    pub fn get(&self, msg: &mut SipMsg) -> Option<PvValue> {
        let mut val = sys::pv_value_t::default();
        let spec = &*self.spec as *const sys::pv_spec_t as *mut sys::pv_spec_t;
        // SAFETY: `msg` is the message being processed and `spec` a parsed
        // spec; the core only reads the spec and fills `val`.
        let rc = unsafe { sys::pv_get_spec_value(msg.as_raw(), spec, &mut val) };
        if rc != 0 {
            return None;
        }
        Some(value_from_raw(&val))
    }

    /// Reads the value as a string (ints printed in decimal); `None` for
    /// $null / errors.
    pub fn get_bytes(&self, msg: &mut SipMsg) -> Option<Vec<u8>> {
        match self.get(msg)? {
            PvValue::Null => None,
            PvValue::Int(i) => Some(i.to_string().into_bytes()),
            PvValue::Str(s) => Some(s),
        }
    }

    /// Assigns a string.
    pub fn set_bytes(&self, msg: &mut SipMsg, value: &[u8]) -> Result<(), HostError> {
        let mut val = sys::pv_value_t {
            rs: borrowed_str(value),
            ri: 0,
            flags: sys::PV_VAL_STR as c_int,
        };
        self.set_raw(msg, &mut val)
    }

    /// Assigns an integer; fails when the release's `int` cannot hold it.
    pub fn set_int(&self, msg: &mut SipMsg, value: i64) -> Result<(), HostError> {
        let ri = width::narrow(value).ok_or(HostError::BadField("integer"))?;
        let mut val = sys::pv_value_t {
            rs: borrowed_str(b""),
            ri,
            flags: (sys::PV_VAL_INT | sys::PV_TYPE_INT) as c_int,
        };
        self.set_raw(msg, &mut val)
    }

    /// Assigns $null.
    pub fn set_null(&self, msg: &mut SipMsg) -> Result<(), HostError> {
        let mut val = sys::pv_value_t {
            rs: borrowed_str(b""),
            ri: 0,
            flags: sys::PV_VAL_NULL as c_int,
        };
        self.set_raw(msg, &mut val)
    }

    fn set_raw(&self, msg: &mut SipMsg, val: &mut sys::pv_value_t) -> Result<(), HostError> {
        let setf = self.spec.setf.ok_or(HostError::Refused("pv set"))?;
        let pvp = &self.spec.pvp as *const sys::pv_param_t as *mut sys::pv_param_t;
        // SAFETY: `setf` is the setter the core put in this parsed spec; `val`
        // points to bytes valid for the call, and setters copy what they keep.
        if unsafe { setf(msg.as_raw(), pvp, ASSIGN_OP, val) } < 0 {
            return Err(HostError::Refused("pv set"));
        }
        Ok(())
    }
}

/// Copies a `pv_value_t` into Rust.
pub(crate) fn value_from_raw(val: &sys::pv_value_t) -> PvValue {
    let flags = val.flags as u32;
    if flags & sys::PV_VAL_NULL != 0 {
        PvValue::Null
    } else if flags & sys::PV_TYPE_INT != 0 && flags & sys::PV_VAL_STR == 0 {
        PvValue::Int(width::widen(val.ri))
    } else if flags & sys::PV_VAL_STR != 0 {
        // SAFETY: PV_VAL_STR says `rs` holds a valid string for this call.
        PvValue::Str(unsafe { KStr::from_raw(&val.rs) }.to_vec())
    } else if flags & sys::PV_VAL_INT != 0 {
        PvValue::Int(width::widen(val.ri))
    } else {
        PvValue::Null
    }
}
