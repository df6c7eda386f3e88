#![allow(dead_code)]
pub mod kamailio;
