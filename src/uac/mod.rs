//! The features of the module, on safe types. No raw Kamailio types here.
#![deny(unsafe_code)]

pub mod auth;
pub mod config;
pub mod reg;
#[cfg(feature = "kamailio")]
pub mod replace;
pub mod rng;
pub mod send;
pub mod shm_state;
