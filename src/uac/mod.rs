//! The features of the module, on safe types. No raw Kamailio types here.
#![deny(unsafe_code)]

pub mod config;
pub mod rng;
pub mod reg;
