//! What the routing script sees: pseudo-variables ([`pv`], [`pv_ref`]), AVPs
//! ([`avp`]), fixed-up function parameters ([`fixup`]) and event routes
//! ([`route`]).

pub mod avp;
pub mod fixup;
pub mod pv;
pub mod pv_ref;
pub mod route;
