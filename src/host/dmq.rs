//! The dmq module, for active-active registration (`reg_cluster`): its API, bound once
//! in mod_init; one peer registered under our name; and a read of dmq's node list,
//! which is where DMQ keeps what it knows of each node's liveness.
//!
//! dmq exports its API through `bind_dmq` (`dmq_load_api`, a static inline loader,
//! wrapped in `kamailio-glue/dmq.c`), but not its node list: `dmq_node_list` is a
//! global of dmq.so, which the core opens without RTLD_GLOBAL. We look the symbol up in
//! dmq's own handle (the core's module list keeps it), once, in mod_init. Its layout
//! differs between releases (6.1 adds `fail_count` in front of `local`): bindgen reads
//! the struct from the headers of the release we build for.

use std::ffi::{CStr, c_int};
use std::sync::OnceLock;

use crate::host::HostError;
use crate::host::api::load_checked;
use crate::host::shm::lock::InlineLock;
use crate::host::str::{KStr, borrowed_str};
use crate::sys;

/// What a peer message receives, and what we answer.
pub struct PeerHandlers {
    /// A message for our peer id arrived from the node whose host is `from` (empty
    /// when dmq does not know it) with `body`: returns the SIP code of the answer.
    pub on_message: fn(from: &[u8], body: &[u8]) -> u16,
}

/// What the module keeps of dmq, bound in mod_init.
struct Dmq {
    api: sys::dmq_api_t,
    /// `&dmq_node_list` inside dmq.so: the list itself is created in dmq's mod_init
    /// (before ours, dmq being loaded first) and never freed.
    list: *mut *mut sys::dmq_node_list_t,
    /// The peer `register_dmq_peer` returned (in shm, owned by dmq).
    peer: *mut sys::dmq_peer_t,
    handlers: PeerHandlers,
}

// SAFETY: written once in mod_init before the fork and read-only afterwards; the
// pointers are into dmq.so's data and shm, valid for the life of Kamailio; the list
// is only dereferenced under dmq's list lock, the peer only passed back to dmq.
unsafe impl Send for Dmq {}
// SAFETY: see above.
unsafe impl Sync for Dmq {}

static DMQ: OnceLock<Dmq> = OnceLock::new();

/// One node of dmq's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `host:port` of the node's DMQ server address: the same text on every node
    /// (dmq's own notifications carry `sip:host:port;status=...`).
    pub key: Vec<u8>,
    /// This node itself (dmq's `local`).
    pub local: bool,
    /// `DMQ_NODE_ACTIVE`: the node answered dmq's last ping or notification.
    pub active: bool,
}

/// Binds dmq (mod_init) and registers the peer `peer_id`. Fails when dmq is not
/// loaded before us.
pub fn bind(
    peer_id: &'static CStr,
    description: &'static CStr,
    h: PeerHandlers,
) -> Result<(), HostError> {
    let api = load_checked(
        sys::ksr_rs_load_dmq_api,
        "dmq",
        "cannot bind dmq api - is the dmq module loaded before uac?",
    )?;
    let list = node_list_symbol()?;
    let register = api
        .register_dmq_peer
        .ok_or(HostError::ApiNotLoaded("dmq api without register_dmq_peer"))?;
    let id = borrowed_str(peer_id.to_bytes());
    let descr = borrowed_str(description.to_bytes());
    // SAFETY: a zeroed dmq_peer_t is a valid value (NULL pointers, None callbacks).
    let mut peer: sys::dmq_peer_t = unsafe { std::mem::zeroed() };
    peer.peer_id = id;
    peer.description = descr;
    peer.callback = Some(dmq_peer_callback);
    // SAFETY: register_dmq_peer copies the peer and its strings into shm (add_peer);
    // ours lives across the call.
    let registered = unsafe { register(&mut peer) };
    if registered.is_null() {
        return Err(HostError::Refused("register_dmq_peer"));
    }
    let _ = DMQ.set(Dmq {
        api,
        list,
        peer: registered,
        handlers: h,
    });
    Ok(())
}

/// Whether [`bind`] succeeded.
pub fn bound() -> bool {
    DMQ.get().is_some()
}

/// `dmq_node_list`'s address, from dmq.so's handle.
fn node_list_symbol() -> Result<*mut *mut sys::dmq_node_list_t, HostError> {
    const NOT_FOUND: HostError = HostError::ApiNotLoaded("cannot find dmq's node list");
    // SAFETY: the name is a NUL-terminated literal; the core's module list is only
    // changed while the config is parsed, before mod_init.
    let m = unsafe { sys::find_module_by_name(c"dmq".as_ptr().cast_mut()) };
    if m.is_null() {
        return Err(NOT_FOUND);
    }
    // SAFETY: `m` is the core's live record of dmq; `handle` is its dlopen handle.
    let handle = unsafe { (*m).handle };
    if handle.is_null() {
        return Err(NOT_FOUND);
    }
    // SAFETY: dlsym on a live handle with a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle, c"dmq_node_list".as_ptr()) };
    if p.is_null() {
        return Err(NOT_FOUND);
    }
    Ok(p.cast())
}

/// dmq's node list as it is now; empty when dmq is not bound or has no list yet.
pub fn nodes() -> Vec<Node> {
    let Some(d) = DMQ.get() else {
        return Vec::new();
    };
    // SAFETY: `d.list` is the address of dmq's global, valid for dmq.so's life.
    let list = unsafe { *d.list };
    if list.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // SAFETY: `list` is dmq's shm list; its inline gen_lock_t (InlineLock is
    // repr(transparent) over it) protects the chain and every node's fields, which
    // dmq changes only under it. The guard releases it also when unwinding.
    unsafe {
        let lock = &*(&raw mut (*list).lock).cast::<InlineLock>();
        let _held = lock.lock();
        let mut n = (*list).nodes;
        while !n.is_null() {
            let node = &*n;
            let host = KStr::from_raw(&node.uri.host).as_bytes();
            let port = KStr::from_raw(&node.uri.port).as_bytes();
            let mut key = Vec::with_capacity(host.len() + 6);
            key.extend_from_slice(host);
            key.push(b':');
            key.extend_from_slice(if port.is_empty() { b"5060" } else { port });
            out.push(Node {
                key,
                local: node.local != 0,
                active: node.status == sys::DMQ_NODE_ACTIVE as c_int,
            });
            n = node.next;
        }
    }
    out
}

/// The content type of our bodies.
const CONTENT_TYPE: &[u8] = b"text/plain";

/// Sends `body` to every active node but this one (dmq's `bcast_message`), without
/// waiting for answers (dmq retransmits over UDP as tm does; a node that does not
/// answer is marked inactive by dmq's own pings).
pub fn broadcast(body: &[u8]) -> Result<(), HostError> {
    let d = DMQ.get().ok_or(HostError::ApiNotLoaded("dmq not bound"))?;
    let f = d
        .api
        .bcast_message
        .ok_or(HostError::ApiNotLoaded("dmq api without bcast_message"))?;
    let mut b = borrowed_str(body);
    let mut ct = borrowed_str(CONTENT_TYPE);
    // dmq copies `*resp_cback` into every transaction's parameter (no NULL check): an
    // empty one (no function) means "no reply callback".
    // SAFETY: a zeroed dmq_resp_cback_t is valid (None function, NULL param).
    let mut no_callback: sys::dmq_resp_cback_t = unsafe { std::mem::zeroed() };
    // SAFETY: dmq copies the body into the request it builds (t_request) and the
    // callback struct into shm; all borrow our values for the call only. No except node.
    let r = unsafe {
        f(
            d.peer,
            &mut b,
            std::ptr::null_mut(),
            &mut no_callback,
            1,
            &mut ct,
        )
    };
    if r < 0 {
        return Err(HostError::Refused("dmq bcast_message"));
    }
    Ok(())
}

const REASON_OK: &[u8] = b"OK";
const REASON_BAD: &[u8] = b"Bad Request";
const REASON_FORBIDDEN: &[u8] = b"Forbidden";
const REASON_ERR: &[u8] = b"Server Internal Error";

entry! {
    /// `peer_callback_t`: a DMQ request for our peer id, in a DMQ worker process.
    fn dmq_peer_callback(
        msg: *mut sys::sip_msg,
        resp: *mut sys::peer_reponse_t,
        node: *mut sys::dmq_node_t,
    ) -> c_int as "dmq_peer_callback" {
        let Some(d) = DMQ.get() else { return -1 };
        if resp.is_null() {
            return -1;
        }
        // SAFETY: dmq passes the request it is handling and the sending node (or NULL),
        // valid for the call; the body is the request's own buffer.
        let (from, body) = unsafe {
            let from = match node.as_ref() {
                Some(n) => KStr::from_raw(&n.uri.host).to_vec(),
                None => Vec::new(),
            };
            let body = match msg.as_mut() {
                Some(m) => {
                    let p = sys::get_body(m);
                    let len = usize::try_from(m.len).unwrap_or(0);
                    if p.is_null() {
                        &[][..]
                    } else {
                        let off = p.offset_from(m.buf);
                        let blen = len.saturating_sub(usize::try_from(off).unwrap_or(len));
                        std::slice::from_raw_parts(p.cast::<u8>(), blen)
                    }
                }
                None => &[][..],
            };
            (from, body)
        };
        let code = (d.handlers.on_message)(&from, body);
        let reason = match code {
            200..=299 => REASON_OK,
            403 => REASON_FORBIDDEN,
            400..=499 => REASON_BAD,
            _ => REASON_ERR,
        };
        // SAFETY: `resp` is dmq's answer for this request; the reason is static, and we
        // set no body (dmq would pkg_free it).
        unsafe {
            (*resp).resp_code = c_int::from(code);
            (*resp).reason = borrowed_str(reason);
        }
        0
    }
}
