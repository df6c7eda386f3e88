//! Typed helpers over the core's RPC interface (`core/rpc.h`): read parameters one at a
//! time, add structs with named fields, send faults. Works for every transport (ctl /
//! kamcmd binrpc, jsonrpcs, xmlrpc).

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};

use crate::host::HostError;
use crate::host::str::{KStr, borrowed_str};
use crate::sys;

/// An RPC call in progress.
pub struct Rpc<'a> {
    rpc: &'a sys::rpc_t,
    ctx: *mut c_void,
}

/// A struct node of the reply.
pub struct RpcStruct<'a> {
    rpc: &'a sys::rpc_t,
    node: *mut c_void,
}

impl<'a> Rpc<'a> {
    /// # Safety
    /// `rpc` and `ctx` are the arguments the core passed to an RPC handler, valid until
    /// the handler returns.
    pub unsafe fn from_raw(rpc: *mut sys::rpc_t, ctx: *mut c_void) -> Option<Rpc<'a>> {
        // SAFETY: guaranteed by the caller.
        let rpc = unsafe { rpc.as_ref() }?;
        Some(Rpc { rpc, ctx })
    }

    /// Sends a fault with `code` and `msg` (printed with "%s", never as a format).
    pub fn fault(&self, code: i32, msg: &str) {
        let Some(f) = self.rpc.fault else { return };
        let m = CString::new(msg.replace('\0', " ")).unwrap_or_default();
        // SAFETY: ctx is live; "%s" with a NUL-terminated string.
        unsafe {
            f(
                self.ctx,
                code as c_int,
                c"%s".as_ptr() as *mut c_char,
                m.as_ptr(),
            )
        };
    }

    /// The next parameter as a string (numbers converted); `None` when absent.
    pub fn scan_str(&self) -> Option<Vec<u8>> {
        let f = self.rpc.scan?;
        let mut s = borrowed_str(b"");
        // SAFETY: "*.S": optional (no automatic fault), auto-converted, into a str.
        let n = unsafe {
            f(
                self.ctx,
                c"*.S".as_ptr() as *mut c_char,
                &mut s as *mut sys::str_,
            )
        };
        if n < 1 {
            return None;
        }
        // SAFETY: the transport returned a string valid until the reply is sent.
        Some(unsafe { KStr::from_raw(&s) }.to_vec())
    }

    /// The next parameter as an integer (strings converted); `None` when absent or not
    /// a number.
    pub fn scan_int(&self) -> Option<i32> {
        let f = self.rpc.scan?;
        let mut v: c_int = 0;
        // SAFETY: "*.d": optional, auto-converted, into an int.
        let n = unsafe {
            f(
                self.ctx,
                c"*.d".as_ptr() as *mut c_char,
                &mut v as *mut c_int,
            )
        };
        (n >= 1).then_some(v)
    }

    /// Adds a struct to the reply.
    pub fn add_struct(&self) -> Option<RpcStruct<'a>> {
        let f = self.rpc.add?;
        let mut node: *mut c_void = std::ptr::null_mut();
        // SAFETY: "{" writes the new node handle into `node`.
        let rc = unsafe {
            f(
                self.ctx,
                c"{".as_ptr() as *mut c_char,
                &mut node as *mut *mut c_void,
            )
        };
        if rc < 0 || node.is_null() {
            return None;
        }
        Some(RpcStruct {
            rpc: self.rpc,
            node,
        })
    }
}

impl RpcStruct<'_> {
    /// Adds a string field.
    pub fn str(&self, name: &CStr, v: &[u8]) -> Result<(), HostError> {
        let f = self
            .rpc
            .struct_add
            .ok_or(HostError::Refused("rpc struct_add"))?;
        let mut s = borrowed_str(v);
        // SAFETY: "S" takes a name and a str*; the transport copies the value.
        let rc = unsafe {
            f(
                self.node,
                c"S".as_ptr() as *mut c_char,
                name.as_ptr(),
                &mut s as *mut sys::str_,
            )
        };
        if rc < 0 {
            Err(HostError::Refused("rpc struct_add"))
        } else {
            Ok(())
        }
    }

    /// Adds a string field; an empty value goes out as a null string, as
    /// the C module prints unset columns (`<null string>` in kamcmd).
    pub fn str_or_null(&self, name: &CStr, v: &[u8]) -> Result<(), HostError> {
        if !v.is_empty() {
            return self.str(name, v);
        }
        let f = self
            .rpc
            .struct_add
            .ok_or(HostError::Refused("rpc struct_add"))?;
        let mut s = sys::str_ {
            s: std::ptr::null_mut(),
            len: 0,
        };
        // SAFETY: "S" takes a name and a str*; transports print a NULL str as null.
        let rc = unsafe {
            f(
                self.node,
                c"S".as_ptr() as *mut c_char,
                name.as_ptr(),
                &mut s as *mut sys::str_,
            )
        };
        if rc < 0 {
            Err(HostError::Refused("rpc struct_add"))
        } else {
            Ok(())
        }
    }

    /// Adds an integer field.
    pub fn int(&self, name: &CStr, v: i32) -> Result<(), HostError> {
        let f = self
            .rpc
            .struct_add
            .ok_or(HostError::Refused("rpc struct_add"))?;
        // SAFETY: "d" takes a name and an int.
        let rc = unsafe {
            f(
                self.node,
                c"d".as_ptr() as *mut c_char,
                name.as_ptr(),
                v as c_int,
            )
        };
        if rc < 0 {
            Err(HostError::Refused("rpc struct_add"))
        } else {
            Ok(())
        }
    }
}

/// One entry of an RPC export array.
pub struct RpcCommand {
    pub name: &'static CStr,
    pub function: sys::rpc_function_t,
    pub doc: &'static DocStrings,
    pub flags: u32,
}

/// The `{doc, NULL}` array the core expects for an RPC's documentation.
#[repr(transparent)]
pub struct DocStrings(pub [*const c_char; 2]);
// SAFETY: points to 'static C strings only, never written.
unsafe impl Sync for DocStrings {}

impl DocStrings {
    pub const fn new(doc: &'static CStr) -> DocStrings {
        DocStrings([doc.as_ptr(), std::ptr::null()])
    }
}

/// `RET_ARRAY`: the command may return several values.
pub const RET_ARRAY: u32 = 1 << 0;

/// Registers `cmds` with the core (mod_init). The array is leaked: the core keeps it.
pub fn register(cmds: &[RpcCommand]) -> Result<(), HostError> {
    let mut arr: Vec<sys::rpc_export_t> = cmds
        .iter()
        .map(|c| sys::rpc_export_t {
            name: c.name.as_ptr(),
            function: c.function,
            doc_str: c.doc.0.as_ptr() as *mut *const c_char,
            flags: c.flags,
        })
        .collect();
    arr.push(sys::rpc_export_t {
        name: std::ptr::null(),
        function: None,
        doc_str: std::ptr::null_mut(),
        flags: 0,
    });
    let arr: &'static mut [sys::rpc_export_t] = Box::leak(arr.into_boxed_slice());
    // SAFETY: NULL-terminated array that lives for the rest of the process.
    let rc = unsafe { sys::rpc_register_array(arr.as_mut_ptr()) };
    if rc != 0 {
        Err(HostError::Refused("rpc_register_array"))
    } else {
        Ok(())
    }
}
