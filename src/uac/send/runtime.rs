//! The parts of `uac_req_send` that talk to Kamailio (through `host`): the
//! process's `$uac_req` template, the send through tm, the challenge answer and
//! the `event_route[uac:reply]` / `event_callback` run for the outcome.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::sent::Sent;
use super::template::*;
use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::msg::hdr_add;
use crate::host::script::route::{self, EventHandler};
use crate::host::socket::Socket;
use crate::host::tm::{self, Callback, CallbackOn, FrTimeouts, OutRequest, TmEvent};
use crate::sip::auth_header::{HeaderKind, select_challenges_for};
use crate::sip::digest::{Credentials, Nc, Secret, authorize, generate_cnonce};
use crate::uac::config::Config;
use crate::uac::rng::with_rng;

thread_local! {
    /// This process's `$uac_req`.
    static TEMPLATE: RefCell<Template> = RefCell::new(Template::default());
}

/// Settings fixed in mod_init.
struct Settings {
    default_socket: Option<Socket>,
    event_callback: Option<Vec<u8>>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// mod_init: resolves `default_socket` (refusing to start when it is
/// malformed or not one of ours, as C does). The error is logged.
pub fn init(cfg: &Config) -> Result<(), SendError> {
    let default_socket = match &cfg.default_socket {
        Some(text) => match Socket::lookup(text) {
            Ok(s) => {
                kinfo!("default uac socket set to <{}>", Bytes(text));
                Some(s)
            }
            Err(e) => {
                kerr!(
                    "invalid modparam \"default_socket\": {e} <{}> (expected \
                     [proto:]address:port of a listen socket)",
                    Bytes(text)
                );
                return Err(SendError::Logged);
            }
        },
        None => None,
    };
    let _ = SETTINGS.set(Settings {
        default_socket,
        event_callback: cfg.event_callback.clone(),
    });
    Ok(())
}

/// Runs `f` on this process's template.
pub fn with_template<T>(f: impl FnOnce(&mut Template) -> T) -> T {
    TEMPLATE.with(|t| f(&mut t.borrow_mut()))
}

/// Why `uac_req_send()` or the feature's setup failed. Each failure is logged
/// where it happens, with the C module's message; `ffi::send` maps it to -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Failed; the reason is in the log.
    Logged,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("uac_req_send failed (reason logged)")
    }
}

impl std::error::Error for SendError {}

impl From<()> for SendError {
    fn from(_: ()) -> SendError {
        SendError::Logged
    }
}

/// `uac_req_send()`: sends the request described by `$uac_req`.
pub fn req_send() -> Result<(), SendError> {
    // One allocation holds what is sent and what the callback needs;
    // the request is then sent from a view over it, with `$uac_req`
    // released (event_route[tm:local-request] may use it).
    let state = with_template(|t| -> Result<Vec<u8>, SendError> {
        if t.ruri.is_empty() || t.method.is_empty() {
            kerr!("uac_req_send: $uac_req(method) and $uac_req(ruri) must be set");
            return Err(SendError::Logged);
        }
        let generated;
        let call_id: &[u8] = if t.callid.is_empty() {
            generated = tm::generate_call_id().map_err(|e| kerr!("uac_req_send: {e}"))?;
            &generated
        } else {
            &t.callid
        };
        let generated_tag;
        let from_tag: &[u8] = if t.ftag.is_empty() {
            generated_tag =
                tm::generate_from_tag(call_id, &t.ruri).map_err(|e| kerr!("uac_req_send: {e}"))?;
            &generated_tag
        } else {
            &t.ftag
        };
        if t.fr_timeout != 0 || t.fr_inv_timeout != 0 {
            warn_once_without_fr_timeouts();
        }
        Ok(Sent {
            req: t.as_ref(),
            call_id,
            from_tag,
            cseq: if t.cseqno == 0 {
                tm::DEFAULT_CSEQ
            } else {
                t.cseqno
            },
            auth_done: false,
        }
        .encode())
    })?;
    let Some(sent) = Sent::decode(&state) else {
        kerr!("uac_req_send: cannot encode the request state");
        return Err(SendError::Logged);
    };
    send(&sent, &state, &[]).map_err(|_| SendError::Logged)
}

/// Before Kamailio 6.1 tm has no per-request final-response timer for
/// local requests: the keys are kept (scripts written for 6.1 still
/// work), and the operator is told once per process that tm's timers
/// apply.
fn warn_once_without_fr_timeouts() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !tm::PER_REQUEST_FR_TIMEOUTS && !WARNED.swap(true, Ordering::Relaxed) {
        kwarn!(
            "uac_req_send: $uac_req(fr_timeout) and $uac_req(fr_inv_timeout) need \
             Kamailio 6.1; tm's fr_timer applies (fr_inv_timer for INVITE). \
             Logged once per process."
        );
    }
}

fn socket_of(t: &TemplateRef<'_>) -> Result<Option<Socket>, ()> {
    if !t.sock.is_empty() {
        return match Socket::lookup_or_name(t.sock) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                kerr!("uac_req_send: $uac_req(sock): {e} <{}>", Bytes(t.sock));
                Err(())
            }
        };
    }
    Ok(SETTINGS.get().and_then(|s| s.default_socket))
}

fn wants_auth(t: &TemplateRef<'_>) -> bool {
    !t.auser.is_empty() && !t.apasswd.is_empty()
}

/// Sends `sent` (with `auth` header lines added) and attaches the
/// callback when the outcome matters; `state` is `sent` encoded.
fn send(sent: &Sent<'_>, state: &[u8], auth: &[Vec<u8>]) -> Result<(), ()> {
    let t = &sent.req;
    let socket = socket_of(t)?;
    let headers = headers_block(t.hdrs, auth);
    let req = OutRequest {
        method: t.method,
        ruri: t.ruri,
        from: if t.furi.is_empty() { t.ruri } else { t.furi },
        to: if t.turi.is_empty() { t.ruri } else { t.turi },
        to_tag: t.ttag,
        headers: &headers,
        body: t.body,
        call_id: sent.call_id,
        from_tag: sent.from_tag,
        cseq: sent.cseq,
        next_hop: (!t.ouri.is_empty()).then_some(t.ouri),
        socket,
        fr_timeouts: FrTimeouts {
            fr_ms: t.fr_timeout,
            fr_inv_ms: t.fr_inv_timeout,
        },
    };
    // The callback is needed for the event route, or to answer a
    // challenge that has not been answered yet.
    let need_cb = t.evroute != 0 || (wants_auth(t) && !sent.auth_done);
    let cb = need_cb.then_some(Callback {
        on: if t.evroute == 2 {
            CallbackOn::Failure
        } else {
            CallbackOn::Completed
        },
        handler: on_outcome,
        state,
    });
    tm::send_request(&req, cb)
        .map_err(|e| kerr!("uac_req_send: {} {}: {e}", Bytes(t.method), Bytes(t.ruri)))
}

/// The tm callback: answers a challenge once, else reports the outcome.
fn on_outcome(ev: &mut TmEvent<'_>, state: &[u8]) {
    let Some(sent) = Sent::decode(state) else {
        kerr!("uac_req_send: corrupt callback state");
        return;
    };
    kdbg!("uac_req_send: tm callback with status {}", ev.code);
    let t = &sent.req;
    if (ev.code == 401 || ev.code == 407)
        && wants_auth(t)
        && !sent.auth_done
        && t.evroute != 2
        && let Some(reply) = ev.reply.as_deref_mut()
    {
        match resubmit_with_auth(&sent, ev.code as u16, reply) {
            Ok(()) => return, // the resubmission reports the outcome
            Err(()) => kerr!(
                "uac_req_send: cannot answer the {} challenge of {} {}",
                ev.code,
                Bytes(t.method),
                Bytes(t.ruri)
            ),
        }
    }
    if t.evroute != 0 && ev.code > 0 {
        run_reply_event(&sent, ev);
    }
}

fn resubmit_with_auth(sent: &Sent<'_>, code: u16, reply: &mut SipMsg) -> Result<(), ()> {
    let t = &sent.req;
    let kind = HeaderKind::for_reply_code(code).ok_or(())?;
    // An unparsable reply has no usable challenge.
    let refs = hdr_add::header_values(reply, kind.challenge()).unwrap_or_default();
    let creds = Credentials {
        username: t.auser.into(),
        realm: b"".into(), // $uac_req credentials answer any realm, as in C
        secret: if t.flags & FL_HA1 != 0 {
            Secret::Ha1 {
                family: None,
                hex: t.apasswd.into(),
            }
        } else {
            Secret::Password(t.apasswd.into())
        },
    };
    // Per realm, the strongest challenge these credentials can compute.
    let challenges = select_challenges_for(&refs, |a| creds.secret.preference(a));
    if challenges.is_empty() {
        kerr!(
            "uac_req_send: no usable {} in the {code} reply",
            kind.challenge_name()
        );
        return Err(());
    }
    let mut lines = Vec::with_capacity(challenges.len());
    for ch in &challenges {
        let cnonce = with_rng(generate_cnonce);
        match authorize(ch, &creds, t.method, t.ruri, t.body, &cnonce, Nc::FIRST) {
            Ok(a) => lines.push(a.to_header_line(kind)),
            Err(e) => {
                kerr!(
                    "uac_req_send: cannot answer realm \"{}\": {e}",
                    Bytes(&ch.realm)
                );
                return Err(());
            }
        }
    }
    let next = Sent {
        cseq: sent.cseq.wrapping_add(1).max(1),
        auth_done: true,
        ..*sent
    };
    send(&next, &next.encode(), &lines)
}

/// Runs `event_route[uac:reply]` (or the KEMI `event_callback`) with
/// this process's `$uac_req` set to the request that was sent, plus
/// `evcode` and `evtype` (1: a reply came, 2: local outcome/timeout).
fn run_reply_event(sent: &Sent<'_>, ev: &mut TmEvent<'_>) {
    let handler = match SETTINGS.get().and_then(|s| s.event_callback.clone()) {
        Some(name) => {
            if !route::kemi_engine_loaded() {
                kdbg!("event callback ({}) set, but no cfg engine", Bytes(&name));
                return;
            }
            EventHandler::Kemi(name)
        }
        None => match route::find_event_route(c"uac:reply") {
            Some(rt) => EventHandler::Route(rt),
            None => {
                kdbg!("event_route[uac:reply] does not exist");
                return;
            }
        },
    };
    let evtype = if ev.reply.is_some() { 1 } else { 2 };
    with_template(|cur| {
        sent.req.copy_into(cur);
        cur.evcode = ev.code as u32;
        cur.evtype = evtype;
    });
    route::run_event(
        &handler,
        c"uac:reply",
        ev.reply.as_deref_mut(),
        route::REQUEST_ROUTE,
    );
}
