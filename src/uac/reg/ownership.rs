//! `reg_cluster` at run time: the DMQ peer "uac", what the nodes tell each other
//! ([`cluster_msg`]), and the view of the cluster that decides which records this node
//! registers ([`cluster::Membership`]).
//!
//! Liveness is DMQ's: a node counts while dmq marks it active (it answered dmq's last
//! ping or notification) and it did not say it is leaving (mod_destroy of a clean
//! stop). What the nodes share is the binding of each account: after every 2xx the
//! owner tells the others its Call-ID, From tag, CSeq and expiry, so whoever owns the
//! account next refreshes that binding instead of making a second one.
//!
//! Joining ("yield early, claim late"): a node that starts asks the others for every
//! binding they know (`sync`) and owns nothing until one of them answered (`done`, then
//! [`CLAIM_DELAY`] more for the rest of the answers), or [`SYNC_WAIT`] seconds passed
//! without an answer (it is alone). The others yield its share as soon as DMQ lists it
//! as active; the bindings stay valid meanwhile, and it refreshes them when their
//! previous owner planned to.
//!
//! [`cluster_msg`]: crate::uac::reg::cluster_msg
//! [`cluster::Membership`]: crate::uac::reg::cluster::Membership

use std::cell::RefCell;
use std::sync::OnceLock;

use crate::host::dmq::{self, PeerHandlers};
use crate::host::log::Bytes;
use crate::host::shm::counters::ShmCounter;
use crate::host::shm::keyset::ShmKeySet;
use crate::uac::reg::cluster::Membership;
use crate::uac::reg::cluster_msg::{self, Item, Kind};
use crate::uac::reg::engine::{self, RegError};

/// The DMQ peer id of the module (one per module: dialog uses "dialog", htable
/// "htable").
const PEER_ID: &std::ffi::CStr = c"uac";
const PEER_DESCR: &std::ffi::CStr = c"uac remote registration bindings";

/// Seconds after the timer process starts that a node which got no answer from the
/// cluster decides it is alone and owns everything it sees.
pub const SYNC_WAIT: i64 = 30;
/// Seconds between the first answer to our `sync` and claiming: the other nodes'
/// answers, run by several DMQ workers, may come in any order.
const CLAIM_DELAY: i64 = 2;
/// Seconds between two `sync` requests while no node answered.
const SYNC_ASK_EVERY: i64 = 3;
/// The largest body of a message: one UDP datagram with dmq's headers.
const MAX_BODY: usize = 30_000;

/// What every process must see, in shm.
struct Shared {
    /// When the first `done` arrived (0: none yet).
    answered_at: ShmCounter,
    /// 1 once the timer claims its share (for `uac.reg_cluster`).
    synced: ShmCounter,
    /// 1 once the timer saw DMQ's node list: only then does a clean stop say goodbye.
    started: ShmCounter,
    /// Nodes that said they are leaving while DMQ still lists them as active.
    left: ShmKeySet,
    /// Contact addresses of other nodes' bindings, numbered ([`contact_number`]).
    contacts: ShmKeySet,
    /// `uac:regtakeover`: REGISTERs that refreshed a binding another node made.
    pub takeovers: ShmCounter,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The timer process's side (one process: no lock).
#[derive(Default)]
struct TimerSide {
    first_tick: i64,
    last_ask: i64,
    synced: bool,
}

thread_local! {
    static TIMER: RefCell<TimerSide> = RefCell::new(TimerSide::default());
}

/// mod_init with `reg_cluster` 1: binds dmq and registers the peer.
pub fn init() -> Result<(), RegError> {
    let no_memory = || RegError::NoMemory("failed to init reg_cluster state");
    let shared = Shared {
        answered_at: ShmCounter::new().ok_or_else(no_memory)?,
        synced: ShmCounter::new().ok_or_else(no_memory)?,
        started: ShmCounter::new().ok_or_else(no_memory)?,
        left: ShmKeySet::new().ok_or_else(no_memory)?,
        contacts: ShmKeySet::new().ok_or_else(no_memory)?,
        takeovers: ShmCounter::new().ok_or_else(no_memory)?,
    };
    let _ = SHARED.set(shared);
    dmq::bind(PEER_ID, PEER_DESCR, PeerHandlers { on_message }).map_err(|e| {
        kerr!("reg_cluster needs the dmq module (loaded before uac): {e}");
        RegError::Failed
    })
}

/// `uac:regtakeover`.
pub fn takeovers() -> i64 {
    SHARED.get().map_or(0, |s| s.takeovers.get())
}

/// Counts a REGISTER that refreshed another node's binding.
pub fn count_takeover() {
    if let Some(s) = SHARED.get() {
        s.takeovers.inc();
    }
}

/// The number of a Contact address another node's binding has (for
/// `RegState::peer_contact`); `None` when the table of them is full (32 addresses).
pub fn contact_number(addr: &[u8]) -> Option<u8> {
    let n = SHARED.get()?.contacts.intern(addr);
    if n.is_none() {
        kwarn!(
            "reg_cluster: more than {} Contact addresses in the cluster: a takeover of a \
             binding at {} keeps the old Contact until it expires",
            crate::host::shm::keyset::CAPACITY,
            Bytes(addr)
        );
    }
    n
}

/// The Contact address numbered `n` by [`contact_number`]; `None` for 0 (none).
pub fn contact_addr(n: u8) -> Option<Vec<u8>> {
    SHARED.get()?.contacts.get(n)
}

/// Whether this node claims its share (it heard from the cluster, or waited long
/// enough alone).
pub fn synced() -> bool {
    SHARED.get().is_some_and(|s| s.synced.get() > 0)
}

/// The nodes that said they are leaving (while DMQ still lists them as active).
pub fn left_nodes() -> Vec<Vec<u8>> {
    SHARED.get().map(|s| s.left.keys()).unwrap_or_default()
}

/// This node's key in DMQ's list.
fn local_key() -> Option<Vec<u8>> {
    dmq::nodes().into_iter().find(|n| n.local).map(|n| n.key)
}

/// A message for our peer, in a DMQ worker.
fn on_message(from: &[u8], body: &[u8]) -> u16 {
    let m = match cluster_msg::decode(body) {
        Ok(m) => m,
        Err(e) => {
            kwarn!(
                "reg_cluster: message from {} refused: {e}",
                Bytes(if from.is_empty() { b"?" } else { from })
            );
            return 400;
        }
    };
    if m.bad_lines > 0 {
        kwarn!(
            "reg_cluster: {} unreadable line(s) from {} skipped",
            m.bad_lines,
            Bytes(&m.sender)
        );
    }
    let (Some(shared), Some(reg)) = (SHARED.get(), engine::get()) else {
        return 500;
    };
    // Only what DMQ's nodes say counts: dmq itself authenticates nobody (the KDMQ
    // route should accept only the cluster's addresses), and a goodbye or bindings in
    // the name of a stranger would move accounts.
    let nodes = dmq::nodes();
    let Some(node) = nodes.iter().find(|n| n.key == m.sender) else {
        kwarn!(
            "reg_cluster: message from {} in the name of {}, which dmq does not know: refused",
            Bytes(if from.is_empty() { b"?" } else { from }),
            Bytes(&m.sender)
        );
        return 403;
    };
    if node.local {
        return 200;
    }
    let now = engine::now();
    if let Some(theirs) = &m.contact_addr
        && *theirs != reg.cfg.contact_addr
    {
        knotice!(
            "reg_cluster: {} registers Contact address {}, this node {}: a takeover moves \
             the binding (old Contact removed), but during a network split both may be \
             registered; to keep one binding throughout, give every node the same \
             reg_contact_addr",
            Bytes(&m.sender),
            Bytes(theirs),
            Bytes(&reg.cfg.contact_addr)
        );
    }
    match m.kind {
        Kind::State(items) => {
            let (adopted, forgotten) = reg.apply_peer_items(&items, now);
            kdbg!(
                "reg_cluster: {} from {}: {adopted} binding(s) taken, {forgotten} forgotten",
                items.len(),
                Bytes(&m.sender)
            );
        }
        Kind::Sync => {
            // It is back (a restart after a clean stop).
            shared.left.remove(&m.sender);
            let items: Vec<Item> = reg
                .known_bindings(now)
                .into_iter()
                .map(Item::Binding)
                .collect();
            kinfo!(
                "reg_cluster: {} asks for the bindings: sending {}",
                Bytes(&m.sender),
                items.len()
            );
            share(&items);
            send_signal(&Kind::Done);
        }
        Kind::Done => {
            if shared.answered_at.get() == 0 {
                shared.answered_at.set(now);
            }
        }
        Kind::Leaving => {
            if shared.left.insert(&m.sender) {
                knotice!(
                    "reg_cluster: {} is leaving: its accounts move to the others",
                    Bytes(&m.sender)
                );
            }
        }
    }
    200
}

fn send(body: &[u8]) {
    if let Err(e) = dmq::broadcast(body) {
        kerr!("reg_cluster: cannot send over dmq: {e}");
    }
}

fn send_signal(kind: &Kind) {
    let Some(me) = local_key() else { return };
    // sync and done say which Contact address this node registers.
    let contact = match kind {
        Kind::Sync | Kind::Done => engine::get().map(|r| r.cfg.contact_addr.as_slice()),
        _ => None,
    };
    send(&cluster_msg::encode_signal(kind, &me, contact));
}

/// Tells the other nodes about bindings: those this node changed (the timer, once a
/// tick), or all it knows (answering a sync).
pub fn share(items: &[Item]) {
    let Some(me) = local_key() else { return };
    for body in cluster_msg::encode_state(items, &me, MAX_BODY) {
        send(&body);
    }
}

/// A clean stop (mod_destroy, main process): the others take this node's accounts at
/// once instead of after DMQ's ping timeout. The bindings are kept (not unregistered):
/// the others refresh them.
pub fn leave() {
    if SHARED.get().is_some_and(|s| s.started.get() > 0) {
        knotice!("reg_cluster: leaving the cluster");
        send_signal(&Kind::Leaving);
    }
}

/// The view over DMQ's `nodes`, without the nodes that are leaving.
fn view_of(nodes: &[dmq::Node], left: &[Vec<u8>]) -> Option<Membership> {
    let local = nodes.iter().find(|n| n.local)?;
    let others = nodes
        .iter()
        .filter(|n| !n.local && n.active && !left.contains(&n.key))
        .map(|n| n.key.clone());
    Some(Membership::new(&local.key, others))
}

/// The cluster as DMQ sees it now, with no waiting for the first sync (RPC, logs).
pub fn current() -> Option<Membership> {
    view_of(&dmq::nodes(), &left_nodes())
}

/// The view the timer acts on at `now`: `None` while this node is still waiting for
/// the cluster's answer (it then owns nothing). Asks for the bindings while waiting.
pub fn timer_view(now: i64) -> Option<Membership> {
    let shared = SHARED.get()?;
    let nodes = dmq::nodes();
    // A leaving node DMQ no longer lists as active needs no entry: DMQ excludes it,
    // and when it is back it is a node like any other.
    // This node itself is never leaving (a restarted node may get its former
    // instance's goodbye, e.g. before dmq listed it as local).
    for k in shared.left.keys() {
        if !nodes.iter().any(|n| n.key == k && n.active && !n.local) {
            shared.left.remove(&k);
        }
    }
    let m = view_of(&nodes, &shared.left.keys())?;
    shared.started.set(1);
    TIMER.with(|t| {
        let mut t = t.borrow_mut();
        if t.first_tick == 0 {
            t.first_tick = now;
        }
        if !t.synced {
            let answered = shared.answered_at.get();
            if answered > 0 && now >= answered + CLAIM_DELAY {
                knotice!("reg_cluster: bindings received from the cluster");
                t.synced = true;
            } else if now - t.first_tick >= SYNC_WAIT {
                knotice!("reg_cluster: no answer from another node in {SYNC_WAIT} s: going on");
                t.synced = true;
            } else if answered == 0 && m.nodes().len() > 1 && now - t.last_ask >= SYNC_ASK_EVERY {
                t.last_ask = now;
                send_signal(&Kind::Sync);
            }
            if t.synced {
                shared.synced.set(1);
            }
        }
        t.synced.then_some(m)
    })
}
