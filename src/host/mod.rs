//! Safe wrappers over Kamailio. Every `unsafe` block here has a SAFETY line;
//! nothing outside `host` and `ffi` touches raw Kamailio types.

pub mod api;
pub mod avp;
pub mod dlg;
pub mod fixup;
pub mod hdr_add;
pub mod lock;
#[macro_use]
pub mod log;
pub mod counters;
pub mod db;
pub mod dst_uri;
pub mod lump;
pub mod mem;
pub mod msg;
pub mod pv;
pub mod pv_ref;
pub mod reg_table;
pub mod route;
pub mod rpc;
pub mod rr;
pub mod socket;
pub mod str;
pub mod timer;
pub mod tm;
pub mod tm_failure;
pub mod tmcb;
pub mod width;
