#![allow(dead_code)]
pub mod digest;
pub mod kamailio;
pub mod peer;
pub mod sip;
