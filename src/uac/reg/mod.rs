//! Remote registration (admin guide 3.12-3.18, 4.9-4.11, 7, 8, 9): records loaded from
//! the `uacreg` table into a shared-memory table, kept registered by a timer process.
//!
//! - [`state`]: the per-record state machine (pure, unit-tested);
//! - [`record`]: the row, its validation and the REGISTER pieces (pure);
//! - [`events`]: the state events of `event_route[uac:reg]` (mapping pure, unit-tested);
//! - [`cluster`]: which DMQ node owns which record under `reg_cluster` (pure);
//! - [`cluster_msg`]: what the nodes of a cluster tell each other over DMQ (pure);
//! - `ownership`: the DMQ peer and the cluster view the timer acts on;
//! - [`reload_limit`]: the `reload_delta` rate limit of `uac.reg_reload` (pure);
//! - `engine`: the table, DB, timer, tm sends and replies (needs Kamailio);
//! - `rpc`: the `uac.reg_*` commands.

pub mod cluster;
pub mod cluster_msg;
pub mod events;
pub mod record;
pub mod reload_limit;
pub mod state;

#[cfg(feature = "kamailio")]
pub mod engine;
#[cfg(feature = "kamailio")]
pub mod ownership;
#[cfg(feature = "kamailio")]
pub mod rpc;
#[cfg(feature = "kamailio")]
pub mod script;
