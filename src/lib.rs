//! Drop-in Rust replacement for Kamailio's `uac` module.
//!
//! Layers (see ../shared/STYLE.md):
//! - `sip`: pure SIP logic on bytes, no unsafe, no Kamailio;
//! - `uac`: the features, on safe types;
//! - `host`: safe wrappers over Kamailio (feature `kamailio`);
//! - `ffi`: everything Kamailio calls (feature `kamailio`).

pub mod sip;
