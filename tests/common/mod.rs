//! Shared helpers for the black-box integration tests (STYLE.md §14b).
#![allow(dead_code)]

pub mod digest;
pub mod peer;
pub mod sip;
