//! Sending requests of our own through tm, with a callback for the outcome.
//!
//! [`send_request`] builds a tm dialog (`dlg_t`, on the stack) with exactly the
//! Call-ID, From tag, To tag and CSeq the caller chose, points it at the
//! R-URI, the optional next hop (outbound proxy) and the optional local
//! socket, and hands it to `t_uac`. This is tm's own `request()` (`t_request`)
//! with the identifiers under the caller's control, on every release (tm's
//! `uac_req_t.cseqno`/`fromtag` exist only from 6.0/6.1, and only
//! `t_request` reads them), so a resubmission after a challenge can keep
//! Call-ID and From tag and send CSeq + 1 (RFC 3261 §22.2), and a REGISTER
//! refresh can keep its Call-ID (§10.2.4).
//!
//! The optional callback is a plain `fn` plus caller bytes copied into one
//! shm block. tm calls it in whichever process gets the final reply (a
//! receiver) or the timeout (the timer process); the bytes are there, and
//! the `fn` address is the same in every process because the module is
//! loaded before the fork.
//!
//! Ownership of the shm block, the rule that makes "freed exactly once" hold:
//! - `t_uac` returns > 0 only after it registered the callback
//!   (`insert_tmcb` is the last fallible step of tm's `t_uac_prepare`);
//!   from then on the block belongs to the transaction and is freed in its
//!   `TMCB_DESTROY` callback, which tm runs once per cell, whatever happened
//!   (final reply, timeout, every attempt challenged, shutdown).
//! - Any other return (an error, or 0 when `event_route[tm:local-request]`
//!   dropped the request: tm 5.6.3 has no `TMCB_LOCAL_REQUEST_DROP`) means
//!   no callback was registered: [`send_request`] frees the block itself.
//! - The handler never frees or re-uses the block; a resubmission gets its
//!   own block, owned by its own transaction.

pub mod failure;
pub mod tmcb;

use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::api;
use crate::host::msg::SipMsg;
use crate::host::shm::mem::{shm_alloc, shm_free};
use crate::host::socket::Socket;
use crate::host::str::{KStr, borrowed_str};
use crate::sys;

/// `DEFAULT_CSEQ` of tm's `uac.h`: what `t_request` puts in a new request.
pub const DEFAULT_CSEQ: u32 = 10;

/// Whether tm takes final-response timeouts per local request
/// (`uac_req_t.fr_timeout`/`fr_inv_timeout`, Kamailio 6.1). Elsewhere
/// [`OutRequest::fr_timeouts`] is ignored and tm's `fr_timer`/`fr_inv_timer`
/// apply.
pub const PER_REQUEST_FR_TIMEOUTS: bool = cfg!(kamailio_ge_6_1);

/// tm's `FAKED_REPLY` marker for `tmcb_params.rpl` (a local 408, a cancel).
const FAKED_REPLY: *mut sys::sip_msg = usize::MAX as *mut sys::sip_msg;

/// A request to send outside any dialog.
#[derive(Debug, Clone, Copy)]
pub struct OutRequest<'a> {
    pub method: &'a [u8],
    /// Request-URI (also the dialog's remote target).
    pub ruri: &'a [u8],
    /// From URI (tm prints it as `<uri>;tag=...`).
    pub from: &'a [u8],
    /// To URI.
    pub to: &'a [u8],
    /// To tag (tm prints `;tag=` after the To URI); empty for none.
    pub to_tag: &'a [u8],
    /// Extra header lines, each ending in CRLF; empty for none.
    pub headers: &'a [u8],
    /// Body; empty for none (tm adds Content-Length).
    pub body: &'a [u8],
    pub call_id: &'a [u8],
    pub from_tag: &'a [u8],
    pub cseq: u32,
    /// Outbound proxy / destination URI: where the request is sent instead
    /// of the R-URI's host.
    pub next_hop: Option<&'a [u8]>,
    /// Local socket to send from; `None` lets the core choose.
    pub socket: Option<Socket>,
    /// Used where [`PER_REQUEST_FR_TIMEOUTS`].
    pub fr_timeouts: FrTimeouts,
}

/// Final-response timeouts of one request in milliseconds, as tm's
/// `fr_timer`/`fr_inv_timer`; 0 keeps tm's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrTimeouts {
    pub fr_ms: u32,
    pub fr_inv_ms: u32,
}

/// tm keeps its timers in ticks (`MS_TO_TICKS` of `core/timer_ticks.h`:
/// rounded up, so any non-zero value stays non-zero).
fn ms_to_ticks(ms: u32) -> u32 {
    let ticks = (u64::from(ms) * u64::from(sys::TIMER_TICKS_HZ)).div_ceil(1000);
    u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// Puts the request's own final-response timeouts into `uac_r` (tm 6.1
/// copies non-zero ones into the transaction, in ticks as its cfg values).
/// Earlier tm has no such fields: a no-op, see [`PER_REQUEST_FR_TIMEOUTS`].
fn set_fr_timeouts(uac_r: &mut sys::uac_req_t, timeouts: FrTimeouts) {
    let fr = ms_to_ticks(timeouts.fr_ms);
    let fr_inv = ms_to_ticks(timeouts.fr_inv_ms);
    #[cfg(kamailio_ge_6_1)]
    {
        uac_r.fr_timeout = fr;
        uac_r.fr_inv_timeout = fr_inv;
    }
    #[cfg(not(kamailio_ge_6_1))]
    let _ = (uac_r, fr, fr_inv);
}

/// Which transaction event runs the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOn {
    /// `TMCB_LOCAL_COMPLETED`: the final reply of the local transaction,
    /// received or generated (timeout 408).
    Completed,
    /// `TMCB_ON_FAILURE`: a negative final outcome (needs tm's
    /// `enable_uac_fr` for local transactions).
    Failure,
}

/// What the callback is told.
pub struct TmEvent<'a> {
    /// The final status code (408 on timeout).
    pub code: i32,
    /// The received reply; `None` when tm generated the outcome itself
    /// (timeout, cancel) or there is no reply.
    pub reply: Option<&'a mut SipMsg>,
    /// Whether the outcome was generated locally (no reply received).
    pub local: bool,
}

/// A callback: runs in the process that gets the outcome, with the bytes
/// given to [`send_request`].
pub type TmHandler = fn(&mut TmEvent<'_>, &[u8]);

/// A callback to attach to the transaction.
pub struct Callback<'a> {
    pub on: CallbackOn,
    pub handler: TmHandler,
    /// Copied into shm; handed back to `handler`.
    pub state: &'a [u8],
}

/// Header of the shm block; `len` state bytes follow it.
#[repr(C)]
struct CbBlock {
    handler: TmHandler,
    len: usize,
}

/// The shm block while [`send_request`] still owns it.
struct ShmState(NonNull<u8>);

impl ShmState {
    fn new(handler: TmHandler, state: &[u8]) -> Option<ShmState> {
        let size = std::mem::size_of::<CbBlock>() + state.len();
        // SAFETY: initialised right below, freed once (Drop, or TMCB_DESTROY
        // after ownership passed to tm through `into_raw`).
        let p = unsafe { shm_alloc(size) }?;
        // SAFETY: shm_malloc returns memory aligned for any type, `size`
        // bytes long: room for the header then the bytes, no overlap.
        unsafe {
            p.as_ptr().cast::<CbBlock>().write(CbBlock {
                handler,
                len: state.len(),
            });
            std::ptr::copy_nonoverlapping(
                state.as_ptr(),
                p.as_ptr().add(std::mem::size_of::<CbBlock>()),
                state.len(),
            );
        }
        Some(ShmState(p))
    }

    /// Ownership passes to the transaction.
    fn into_raw(self) -> *mut c_void {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p.cast()
    }
}

impl Drop for ShmState {
    fn drop(&mut self) {
        // SAFETY: still ours: tm never saw it, or did not register it.
        unsafe { shm_free(self.0) };
    }
}

/// A Call-ID from tm's generator (or the one a module registered with the
/// core, as `t_request` uses).
pub fn generate_call_id() -> Result<Vec<u8>, HostError> {
    let tm = api::tm().ok_or(HostError::TmNotBound)?;
    let f = tm.0.generate_callid.ok_or(HostError::TmNotBound)?;
    let mut out = sys::str_ {
        s: std::ptr::null_mut(),
        len: 0,
    };
    // SAFETY: the generator writes a pointer to its static buffer into `out`.
    unsafe { f(&mut out) };
    // SAFETY: the static buffer stays valid until the next call; copied now.
    Ok(unsafe { KStr::from_raw(&out) }.to_vec())
}

/// A From tag as tm's `t_request` makes it for `call_id` and `ruri`.
pub fn generate_from_tag(call_id: &[u8], ruri: &[u8]) -> Result<Vec<u8>, HostError> {
    let tm = api::tm().ok_or(HostError::TmNotBound)?;
    let f = tm.0.generate_fromtag.ok_or(HostError::TmNotBound)?;
    let mut out = sys::str_ {
        s: std::ptr::null_mut(),
        len: 0,
    };
    let mut cid = borrowed_str(call_id);
    let mut ru = borrowed_str(ruri);
    // SAFETY: inputs point to our bytes for the call; tm only reads them and
    // writes a pointer to its static buffer into `out`.
    unsafe { f(&mut out, &mut cid, &mut ru) };
    // SAFETY: valid until the next call; copied now.
    Ok(unsafe { KStr::from_raw(&out) }.to_vec())
}

fn checked<'a>(name: &'static str, v: &'a [u8]) -> Result<&'a [u8], HostError> {
    if v.len() > i32::MAX as usize / 2 || v.contains(&0) {
        return Err(HostError::BadField(name));
    }
    Ok(v)
}

/// Sends `req` statefully as a new local transaction, with `cb` attached.
///
/// Ok means tm took the request (it sends and retransmits it); the callback
/// then runs exactly once for the final outcome and its state is freed when
/// the transaction is destroyed. On error nothing is left allocated.
pub fn send_request(req: &OutRequest<'_>, cb: Option<Callback<'_>>) -> Result<(), HostError> {
    let tm = api::tm().ok_or(HostError::TmNotBound)?;
    let t_uac = tm.0.t_uac.ok_or(HostError::TmNotBound)?;

    let method = checked("method", req.method)?;
    let ruri = checked("R-URI", req.ruri)?;
    let from = checked("From URI", req.from)?;
    let to = checked("To URI", req.to)?;
    let headers = checked("headers", req.headers)?;
    // A body may carry any byte (tm adds Content-Length).
    let body = req.body;
    if body.len() > i32::MAX as usize / 2 {
        return Err(HostError::BadField("body"));
    }
    let call_id = checked("Call-ID", req.call_id)?;
    let from_tag = checked("From tag", req.from_tag)?;
    let to_tag = checked("To tag", req.to_tag)?;
    let next_hop = match req.next_hop {
        Some(n) => Some(checked("outbound proxy", n)?),
        None => None,
    };
    if method.is_empty() || ruri.is_empty() || call_id.is_empty() || from_tag.is_empty() {
        return Err(HostError::BadField(
            "request (empty method, R-URI, Call-ID or From tag)",
        ));
    }

    let state = match &cb {
        Some(c) => Some(ShmState::new(c.handler, c.state).ok_or(HostError::NoShm)?),
        None => None,
    };

    // The dialog lives on our stack and borrows our bytes: tm's request()
    // makes it with new_dlg_uac (five shm blocks, freed right after t_uac),
    // but t_uac only reads it (build_uac_req copies what the transaction
    // keeps, and computes the hooks itself); tm 5.6.3 is built without
    // DIALOG_CALLBACKS, so new_dlg_uac has nothing else to do. CSeq 0 would
    // mean "default" to tm, so it is sent as 1.
    let mut dlg = sys::dlg_t {
        id: sys::dlg_id_t {
            call_id: borrowed_str(call_id),
            loc_tag: borrowed_str(from_tag),
            // tm's print_to adds `;tag=` when this is not empty.
            rem_tag: borrowed_str(to_tag),
        },
        loc_seq: sys::dlg_seq_t {
            value: req.cseq.max(1),
            is_set: 1,
        },
        loc_uri: borrowed_str(from),
        rem_uri: borrowed_str(to),
        rem_target: borrowed_str(ruri),
        dst_uri: next_hop.map(borrowed_str).unwrap_or_default(),
        send_sock: req.socket.map_or(std::ptr::null_mut(), |s| s.as_raw()),
        ..Default::default()
    };

    let mut s_method = borrowed_str(method);
    let mut s_headers = borrowed_str(headers);
    let mut s_body = borrowed_str(body);
    let mut uac_r = sys::uac_req_t {
        method: &mut s_method,
        headers: if headers.is_empty() {
            std::ptr::null_mut()
        } else {
            &mut s_headers
        },
        body: if body.is_empty() {
            std::ptr::null_mut()
        } else {
            &mut s_body
        },
        dialog: &mut dlg,
        ..Default::default()
    };
    set_fr_timeouts(&mut uac_r, req.fr_timeouts);
    if let (Some(c), Some(st)) = (&cb, &state) {
        let on = match c.on {
            CallbackOn::Completed => sys::TMCB_LOCAL_COMPLETED,
            CallbackOn::Failure => sys::TMCB_ON_FAILURE,
        };
        // `int` up to 5.8, `unsigned int` from 6.0; the flags fit both.
        uac_r.cb_flags = (on | sys::TMCB_DESTROY) as _;
        uac_r.cb = Some(tm_callback);
        uac_r.cbp = st.0.as_ptr().cast();
    }

    // SAFETY: `uac_r` and everything it points to live until the call
    // returns; t_uac copies what the transaction keeps into shm.
    let rc = unsafe { t_uac(&mut uac_r) };

    if rc > 0 {
        // The callback is registered: the transaction owns the state now.
        if let Some(st) = state {
            let _ = st.into_raw();
        }
        Ok(())
    } else if rc == 0 {
        // `state` drops here: never registered.
        Err(HostError::TmDropped)
    } else {
        Err(HostError::TmSend(rc))
    }
}

entry! {
    /// The one tm callback of every request sent by [`send_request`].
    fn tm_callback(
        _t: *mut sys::cell,
        kind: c_int,
        ps: *mut sys::tmcb_params,
    ) as "uac tm callback" {
        // SAFETY: tm passes valid params for the duration of the callback.
        let Some(ps) = (unsafe { ps.as_mut() }) else {
            return;
        };
        if ps.param.is_null() {
            return;
        }
        // SAFETY: `param` points at the callback entry's parameter slot.
        let block = unsafe { *ps.param } as *mut u8;
        if block.is_null() {
            return;
        }
        if kind as u32 & sys::TMCB_DESTROY != 0 {
            // SAFETY: the block we registered; DESTROY runs once per cell,
            // and the slot is cleared so nothing can see it again.
            unsafe {
                *ps.param = std::ptr::null_mut();
                shm_free(NonNull::new_unchecked(block));
            }
            return;
        }
        // SAFETY: a block written by ShmState::new: header then `len` bytes,
        // alive until DESTROY (which cannot run while we are in here).
        let (handler, state) = unsafe {
            let hdr = &*block.cast::<CbBlock>();
            let data =
                std::slice::from_raw_parts(block.add(std::mem::size_of::<CbBlock>()), hdr.len);
            (hdr.handler, data)
        };
        let faked = ps.rpl.is_null() || ps.rpl == FAKED_REPLY;
        let reply = if faked {
            None
        } else {
            // SAFETY: a received reply tm is processing; exclusive for this
            // call (tm does not touch it while the callback runs).
            unsafe { SipMsg::from_ptr(ps.rpl) }
        };
        let mut ev = TmEvent {
            code: ps.code,
            reply,
            local: faked,
        };
        handler(&mut ev, state);
    }
}
