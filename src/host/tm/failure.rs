//! The failed branch of the current transaction, as seen from a
//! FAILURE_ROUTE or BRANCH_FAILURE_ROUTE (what `uac_auth()` answers).
//!
//! Mirrors the C module's `uac_auth_mode()` lookups: tm's `t_gett()` for the
//! transaction, `t_get_picked_branch()` for the branch, then
//! `t->uac[branch].reply` / `.last_received` / `.uri`. All of these are owned by
//! tm and stay valid while the failure route runs (tm holds the reply lock of
//! the transaction for the whole route).
//!
//! Only the head of tm's `struct ua_client` is read (`reply`, then the
//! `request` retr_buf with its buffer and back-pointer to the cell): its tail
//! changes within a release series (6.1.5 grew `dns_srv_handle`, inside
//! ua_client, by 16 bytes over the 6.1.4 headers Debian's archive offers). So
//! the stride of the `uac` array is checked against each entry's back-pointer
//! to its cell, the reply code is read from the reply itself and the branch
//! URI from the request line tm sent, never from fields past the head.

use std::ptr::NonNull;

use crate::host::HostError;
use crate::host::api;
use crate::host::msg::SipMsg;
use crate::host::width;
use crate::sip;
use crate::sys;

/// `T_UNDEFINED` of `tm/t_lookup.h`: `(struct cell *) -1`.
const T_UNDEFINED: usize = usize::MAX;
/// `FAKED_REPLY` of `tm/h_table.h`: `(struct sip_msg *) -1`.
const FAKED_REPLY: usize = usize::MAX;

/// The picked (failed) branch of the current transaction.
///
/// Only valid during the failure route that looked it up; it is not `Send`
/// and must not be stored.
pub struct FailedBranch {
    cell: NonNull<sys::cell>,
    branch: usize,
    /// Size of one `uac` array entry in the running tm.
    stride: usize,
}

/// The running tm's `sizeof(struct ua_client)`: the headers' size, or up to
/// 64 bytes more, whichever puts entry `branch`'s `request.my_T` on the cell.
/// Entry 0 always agrees (and proves nothing); the first checked branch > 0
/// fixes the answer for the process.
///
/// # Safety
/// `cell` is the live transaction tm handed us for this route and `branch` <
/// its `nr_of_outgoings`.
unsafe fn ua_client_stride(cell: NonNull<sys::cell>, branch: usize) -> Option<usize> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static KNOWN: AtomicUsize = AtomicUsize::new(0);
    let headers = std::mem::size_of::<sys::ua_client>();
    let known = KNOWN.load(Ordering::Relaxed);
    if branch == 0 {
        return Some(if known != 0 { known } else { headers });
    }
    let my_t =
        std::mem::offset_of!(sys::ua_client, request) + std::mem::offset_of!(sys::retr_buf, my_T);
    // SAFETY: the live transaction (caller's promise).
    let base = unsafe { cell.as_ref().uac } as *const u8;
    let candidates = (headers..=headers + 64).step_by(8);
    let found = [known]
        .into_iter()
        .filter(|&k| k != 0)
        .chain(candidates)
        .find(|&stride| {
            // SAFETY: `branch` < nr_of_outgoings, so entry `branch` exists in
            // tm's `uac` array (shm, alive with the transaction). Candidates
            // are tried in increasing order from the headers' size and the
            // search stops at the first match, so when tm's entry is at least
            // as large as our headers say (every change seen so far grew it)
            // no candidate read lies past entry `branch`. Each read is one
            // aligned pointer (strides and offsets are multiples of 8).
            let back = unsafe {
                base.add(stride * branch + my_t)
                    .cast::<*mut sys::cell>()
                    .read()
            };
            back == cell.as_ptr()
        })?;
    if found != headers && known == 0 {
        crate::kwarn!(
            "tm's ua_client is {found} bytes, the headers of this build say {headers}: \
             reading only the fields before their difference"
        );
    }
    KNOWN.store(found, Ordering::Relaxed);
    Some(found)
}

/// Looks up the transaction and its picked branch, as `uac_auth_mode()` in C.
pub fn failed_branch() -> Result<FailedBranch, HostError> {
    let tm = api::tm().ok_or(HostError::TmNotBound)?;
    let (Some(t_gett), Some(t_get_picked_branch)) = (tm.0.t_gett, tm.0.t_get_picked_branch) else {
        return Err(HostError::TmNotBound);
    };
    // SAFETY: tm's exported getter of the current transaction; no arguments.
    let t = unsafe { t_gett() };
    if t.is_null() || t as usize == T_UNDEFINED {
        return Err(HostError::NoTransaction);
    }
    let cell = NonNull::new(t).ok_or(HostError::NoTransaction)?;
    // SAFETY: tm's exported getter of the picked branch; no arguments.
    let branch = unsafe { t_get_picked_branch() };
    // SAFETY: `cell` is the live transaction tm handed us for this route.
    let (outgoings, uac) = unsafe {
        let c = cell.as_ref();
        (c.nr_of_outgoings, c.uac)
    };
    // Stricter than C: also refuse an index past the branches tm created.
    // `nr_of_outgoings` is a short before 6.1 and an int since.
    if branch < 0 || branch >= width::widen::<_, i32>(outgoings) || uac.is_null() {
        return Err(HostError::NoPickedBranch(branch));
    }
    let branch = branch as usize; // ok: 0 <= branch checked above
    // SAFETY: the live transaction; `branch` < nr_of_outgoings, checked above.
    let stride = unsafe { ua_client_stride(cell, branch) }.ok_or(HostError::BranchLayout)?;
    let fb = FailedBranch {
        cell,
        branch,
        stride,
    };
    let reply = fb.uac().reply;
    if reply.is_null() {
        return Err(HostError::EmptyReply);
    }
    if reply as usize == FAKED_REPLY {
        return Err(HostError::FakedReply);
    }
    Ok(fb)
}

impl FailedBranch {
    /// The head of the branch's entry (see the module comment: fields past
    /// `request` are never read).
    fn uac(&self) -> &sys::ua_client {
        // SAFETY: `branch` < nr_of_outgoings (checked in failed_branch) and
        // `stride` is the running tm's entry size (checked against the
        // entry's back-pointer), so the entry exists in tm's `uac` array,
        // which lives as long as the transaction, i.e. longer than this route.
        unsafe {
            &*(self.cell.as_ref().uac as *const u8)
                .add(self.stride * self.branch)
                .cast::<sys::ua_client>()
        }
    }

    /// The branch index.
    pub fn index(&self) -> usize {
        self.branch
    }

    /// The final reply code received on the branch: the status code of the
    /// stored reply (what tm copies into `last_received`), 0 without one.
    pub fn code(&mut self) -> i32 {
        self.reply()
            .and_then(|r| r.status_code())
            .map_or(0, i32::from)
    }

    /// The reply received on the branch, to read its headers.
    ///
    /// The reply is tm's shm clone; only its own parsing state is touched
    /// (as the C module does with `parse_headers(rpl, HDR_EOH_F, 0)`).
    pub fn reply(&mut self) -> Option<&mut SipMsg> {
        let p = self.uac().reply;
        if p as usize == FAKED_REPLY {
            return None;
        }
        // SAFETY: not FAKED_REPLY (and NULL gives None); tm keeps the reply
        // while the failure route runs; `&mut self` keeps the borrow unique
        // on our side.
        unsafe { SipMsg::from_ptr(p) }
    }

    /// [`FailedBranch::reply`] and the request URI the branch was sent to
    /// (`t->uac[branch].uri`), to read the reply's headers while holding
    /// the URI.
    pub fn reply_and_uri(&mut self) -> (Option<&mut SipMsg>, &[u8]) {
        // SAFETY: tm keeps the sent request in shm for the transaction's
        // life, longer than this borrow of the branch; it is not the reply.
        let uri = sip::request_line_uri(unsafe { self.sent_request() });
        (self.reply(), uri)
    }

    /// The request tm sent on the branch (`request.buffer`, in the head of
    /// the entry), empty when tm has none.
    ///
    /// # Safety
    /// The returned bytes are tm's and live as long as the transaction; the
    /// caller must not keep them past the failure route.
    unsafe fn sent_request<'t>(&self) -> &'t [u8] {
        let rb = &self.uac().request;
        match usize::try_from(rb.buffer_len) {
            Ok(len) if len > 0 && !rb.buffer.is_null() => {
                // SAFETY: tm's shm copy of the sent request, `buffer_len` bytes.
                unsafe { std::slice::from_raw_parts(rb.buffer as *const u8, len) }
            }
            _ => &[],
        }
    }

    /// Marks the transaction as re-sent with UAC authentication and lets the
    /// dialog module bump the CSeq, exactly as the C module does:
    /// `t->uas.request->msg_flags |= FL_UAC_AUTH`, then the core's
    /// `cb_cseq_update(msg)` hook (set by dialog with `track_cseq_updates`).
    ///
    /// Fails when the dialog hook returns a negative code.
    pub fn mark_uac_auth(&mut self, msg: &mut SipMsg) -> Result<(), HostError> {
        // SAFETY: the live transaction (see failed_branch).
        let uas_req = unsafe { self.cell.as_ref().uas.request };
        if uas_req.is_null() {
            return Ok(());
        }
        // SAFETY: tm's shm copy of the request, alive with the transaction;
        // the failure route runs under the transaction's reply lock, as in C.
        unsafe { width::set_bits(&mut (*uas_req).msg_flags, sys::FL_UAC_AUTH) };
        // SAFETY: the core's static config environment, never NULL.
        let cenv = unsafe { sys::sr_cfgenv_get() };
        if cenv.is_null() {
            return Ok(());
        }
        // SAFETY: `cenv` points to the core's static struct.
        if let Some(cb) = unsafe { (*cenv).cb_cseq_update } {
            // SAFETY: the dialog module's hook, called with the message being
            // routed, as the C module does.
            let rc = unsafe { cb(msg.as_raw()) };
            if rc < 0 {
                return Err(HostError::CseqHook(rc));
            }
        }
        Ok(())
    }
}
