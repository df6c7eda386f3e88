//! The features of the module, on safe types. No raw Kamailio types here.
#![deny(unsafe_code)]

pub mod auth;
pub mod config;
#[cfg(feature = "kamailio")]
pub mod replace;
pub mod rng;
pub mod reg;
pub mod send;
