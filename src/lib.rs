//! Drop-in Rust replacement for Kamailio's `uac` module.
//!
//! Layers (see ../shared/STYLE.md):
//! - `sip`: pure SIP logic on bytes, no unsafe, no Kamailio;
//! - `guard`: the panic boundary of every entry point (pure, under `host`);
//! - `table_math`: pure arithmetic of the shared registration table;
//! - `uac`: the features, on safe types;
//! - `host`: safe wrappers over Kamailio (feature `kamailio`);
//! - `ffi`: everything Kamailio calls (feature `kamailio`).

// Host wrappers return `Result<_, ()>` where the failure was already logged
// where it happened: the caller only maps it to Kamailio's -1.
#![allow(clippy::result_unit_err)]

#[cfg(feature = "kamailio")]
#[macro_use]
pub mod host;
pub mod guard;
pub mod sip;
pub mod table_math;
pub mod uac;

#[cfg(feature = "kamailio")]
mod ffi;
#[cfg(feature = "kamailio")]
mod sys;
