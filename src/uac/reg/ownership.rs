//! `reg_cluster` at run time: the DMQ peer "uac" and the view of the cluster that
//! decides which records this node registers ([`cluster::Membership`]).
//!
//! Liveness is DMQ's: a node counts while dmq marks it active (it answered dmq's last
//! ping or notification). Until this node has heard from the cluster once (dmq's init
//! callback), or [`SYNC_WAIT`] seconds have passed, it owns nothing: a node that
//! started alone would otherwise register every account before it learned of the
//! others.

use std::cell::Cell;
use std::sync::OnceLock;

use crate::host::dmq::{self, PeerHandlers};
use crate::host::shm::counters::ShmCounter;
use crate::uac::reg::cluster::Membership;
use crate::uac::reg::engine::RegError;

/// The DMQ peer id of the module (one per module: dialog uses "dialog", htable
/// "htable").
const PEER_ID: &std::ffi::CStr = c"uac";
const PEER_DESCR: &std::ffi::CStr = c"uac remote registration ownership";

/// Seconds after the timer process starts that a node which heard from no other node
/// decides it is alone and owns everything it sees.
pub const SYNC_WAIT: i64 = 30;

/// Set (in shm) by dmq's init callback, which runs in whichever process got the first
/// node list.
static SYNCED: OnceLock<ShmCounter> = OnceLock::new();

thread_local! {
    /// When the timer process first asked for the view (timer process only).
    static FIRST_ASKED: Cell<i64> = const { Cell::new(0) };
}

/// mod_init with `reg_cluster` 1: binds dmq and registers the peer.
pub fn init() -> Result<(), RegError> {
    let flag = ShmCounter::new().ok_or(RegError::NoMemory("failed to init reg_cluster flag"))?;
    let _ = SYNCED.set(flag);
    dmq::bind(
        PEER_ID,
        PEER_DESCR,
        PeerHandlers {
            on_message,
            on_sync,
        },
    )
    .map_err(|e| {
        kerr!("reg_cluster needs the dmq module (loaded before uac): {e}");
        RegError::Failed
    })
}

/// Nothing is shared yet over the peer (first slice): any message is answered 200.
fn on_message(from: &[u8], body: &[u8]) -> u16 {
    kdbg!(
        "dmq message from {} ({} bytes)",
        crate::host::log::Bytes(from),
        body.len()
    );
    200
}

fn on_sync() {
    if let Some(f) = SYNCED.get() {
        f.inc();
    }
}

/// The cluster as DMQ sees it now, with no waiting for the first sync (RPC, logs).
pub fn current() -> Option<Membership> {
    let nodes = dmq::nodes();
    let local = nodes.iter().find(|n| n.local)?;
    let others = nodes
        .iter()
        .filter(|n| !n.local && n.active)
        .map(|n| n.key.clone());
    Some(Membership::new(&local.key, others))
}

/// The view the timer acts on at `now`: `None` while this node is still waiting to
/// hear from the cluster (it then owns nothing).
pub fn timer_view(now: i64) -> Option<Membership> {
    let first = FIRST_ASKED.with(|c| {
        if c.get() == 0 {
            c.set(now);
        }
        c.get()
    });
    let m = current()?;
    let synced = SYNCED.get().is_some_and(|f| f.get() > 0)
        || m.nodes().len() > 1
        || now - first >= SYNC_WAIT;
    synced.then_some(m)
}
