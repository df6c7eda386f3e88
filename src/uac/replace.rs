//! From/To replacement and restore (admin guide 3.1-3.7, 4.1-4.6): the C
//! module's `replace.c` on safe types.
//!
//! State of a replaced dialog travels either in a Record-Route parameter
//! (`;vsf=` / `;vst=`, [`crate::sip::rr_param`]) or, with `restore_dlg=1`, in
//! dialog variables named as in C (`_uac_fu`, `_uac_funew`, ...), so calls
//! survive swapping the C module for this one and mixed clusters work.
//!
//! Replies are restored by a tm TMCB_RESPONSE_IN callback on every request
//! whose From/To was changed (request flags `FL_USE_UAC_FROM/TO`, as in C):
//! the reply's name-addr gets back the request's name-addr as received (or
//! the `restore_*_avp` value).

use std::sync::OnceLock;

use crate::host::api;
use crate::host::dlg::{self, Dlg, DlgCallback};
use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::msg::lump::{HDR_INLINE, HdrValue, LumpHandle, NameAddrHdr, in_request_route};
use crate::host::msg::rr::RrCallback;
use crate::host::script::avp::SharedPv;
use crate::host::tm::tmcb::{ResponseIn, TmCallback};
use crate::sip::inline::InlineBytes;
use crate::sip::name_addr::{self, Edit, Edits};
use crate::sip::rr_param::{self, SecureKey};
use crate::sip::uri;
use crate::uac::config::{Config, RestoreMode};
use crate::uac::rng::with_rng;

/// Dialog variable names of the C module (replace.c `from_dlgvar`/`to_dlgvar`):
/// original URI, new URI, original display, new display.
pub const FROM_DLGVARS: [&[u8]; 4] = [b"_uac_fu", b"_uac_funew", b"_uac_fdp", b"_uac_fdpnew"];
pub const TO_DLGVARS: [&[u8]; 4] = [b"_uac_to", b"_uac_tonew", b"_uac_tdp", b"_uac_tdpnew"];

/// The extern "C" entry points (in `ffi::replace`) registered with the core.
pub struct Hooks {
    pub rr: RrCallback,
    pub reply: TmCallback,
    pub dlg: DlgCallback,
}

struct State {
    cfg: &'static Config,
    from_avp: Option<SharedPv>,
    to_avp: Option<SharedPv>,
    key: Option<SecureKey>,
    hooks: Hooks,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Why a From/To function failed. Each failure is logged where it happens, with the
/// C module's message, so the one variant carries no detail; `ffi::replace` maps it to
/// the script's -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceError {
    /// Failed; the reason is in the log.
    Logged,
}

impl std::fmt::Display for ReplaceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("From/To replacement failed (reason logged)")
    }
}

impl std::error::Error for ReplaceError {}

type Res = Result<(), ReplaceError>;

fn state() -> Result<&'static State, ReplaceError> {
    STATE.get().ok_or_else(|| {
        kerr!("uac: From/To replacement used before mod_init");
        ReplaceError::Logged
    })
}

fn dlgvars(which: NameAddrHdr) -> [&'static [u8]; 4] {
    match which {
        NameAddrHdr::From => FROM_DLGVARS,
        NameAddrHdr::To => TO_DLGVARS,
    }
}

fn lower(which: NameAddrHdr) -> &'static str {
    match which {
        NameAddrHdr::From => "from",
        NameAddrHdr::To => "to",
    }
}

const BOTH_FLAGS: u32 = crate::host::msg::lump::FL_BOTH;

/// mod_init part: AVP specs, the secure key, the rr / dialog callbacks.
pub fn init(cfg: &'static Config, hooks: Hooks) -> Res {
    let parse = |name: &str, v: &Option<Vec<u8>>| -> Result<Option<SharedPv>, ReplaceError> {
        match v {
            Some(t) if cfg.restore_mode != RestoreMode::None => match SharedPv::parse(t) {
                Some(p) => Ok(Some(p)),
                None => {
                    kerr!("invalid modparam \"{name}\": malformed AVP '{}'", Bytes(t));
                    Err(ReplaceError::Logged)
                }
            },
            _ => Ok(None),
        }
    };
    let from_avp = parse("restore_from_avp", &cfg.restore_from_avp)?;
    let to_avp = parse("restore_to_avp", &cfg.restore_to_avp)?;
    let key = SecureKey::derive(&cfg.restore_passwd);

    if cfg.restore_mode == RestoreMode::Auto {
        let rr = api::rr().ok_or_else(|| {
            kerr!("can't load RR API - is the rr module loaded before uac?");
            ReplaceError::Logged
        })?;
        if rr.register_rrcb(hooks.rr).is_err() {
            kerr!("failed to install RR callback");
            return Err(ReplaceError::Logged);
        }
        if cfg.restore_dlg {
            let d = api::dlg().ok_or_else(|| {
                kerr!("failed to find dialog API - is dialog module loaded?");
                ReplaceError::Logged
            })?;
            if d.register_global_cb(dlg::CB_LOADED, hooks.dlg).is_err() {
                kerr!("can't register on load callback");
                return Err(ReplaceError::Logged);
            }
        }
    }
    let _ = STATE.set(State {
        cfg,
        from_avp,
        to_avp,
        key,
        hooks,
    });
    Ok(())
}

impl State {
    fn avp(&self, which: NameAddrHdr) -> Option<&SharedPv> {
        match which {
            NameAddrHdr::From => self.from_avp.as_ref(),
            NameAddrHdr::To => self.to_avp.as_ref(),
        }
    }

    fn rr_param_name(&self, which: NameAddrHdr) -> &[u8] {
        match which {
            NameAddrHdr::From => &self.cfg.rr_from_param,
            NameAddrHdr::To => &self.cfg.rr_to_param,
        }
    }

    fn dlg_mode(&self) -> bool {
        self.cfg.restore_mode == RestoreMode::Auto && self.cfg.restore_dlg
    }
}

/// Writes `edits` of the header value starting at `offset` as lumps of
/// `msg`; returns the lump of the last one.
fn apply_edits(
    msg: &mut SipMsg,
    offset: usize,
    edits: &Edits<'_>,
) -> Result<Option<LumpHandle>, ReplaceError> {
    let mut last = None;
    for e in edits.iter() {
        let h = msg
            .replace_bytes_parts(offset + e.range.start, e.range.len(), &e.text)
            .map_err(|err| {
                kerr!("failed to build lump: {err}");
                ReplaceError::Logged
            })?;
        last = Some(h);
    }
    Ok(last)
}

/// One lump over the whole name-addr (`display <uri>`) of `hv`, so that a
/// second replacement on the same message can simply swap its text.
fn addr_edit(value: &[u8], na: &name_addr::NameAddr, edits: &[Edit]) -> Edit {
    let new_value = name_addr::apply(value, edits);
    let suffix = value.len() - na.addr.end;
    Edit {
        range: na.addr.clone(),
        text: new_value[na.addr.start..new_value.len() - suffix].to_vec(),
    }
}

// ---------------------------------------------------------------------------
// Last call wins: what an earlier replacement did to this message.

/// Per-process record of the replacements made on the message being routed.
struct Done {
    /// False: a free slot whose buffers the next record reuses.
    live: bool,
    msg_id: u32,
    pid: u32,
    which: NameAddrHdr,
    lump: LumpHandle,
    /// The header value as our lumps make it.
    value: Vec<u8>,
    /// Our RR parameter as added, to find and rewrite it (empty: none).
    rr_param: Vec<u8>,
}

thread_local! {
    static DONE: std::cell::RefCell<Vec<Done>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What an earlier call made of this message's header (last call wins).
struct Earlier {
    /// The lump over the name-addr, whose text a later call swaps.
    lump: LumpHandle,
    /// The header value as that lump makes it.
    value: Vec<u8>,
    /// The RR parameter it added, if any.
    rr_param: Option<Vec<u8>>,
}

fn find_done(msg: &SipMsg, which: NameAddrHdr) -> Option<Earlier> {
    let (id, pid) = (msg.id(), std::process::id());
    DONE.with(|d| {
        d.borrow()
            .iter()
            .find(|x| x.live && x.msg_id == id && x.pid == pid && x.which == which)
            .map(|x| Earlier {
                lump: x.lump,
                value: x.value.clone(),
                rr_param: (!x.rr_param.is_empty()).then(|| x.rr_param.clone()),
            })
    })
}

/// Records a replacement; the entry of an earlier message (or of the same
/// header) is overwritten in place, reusing its buffers.
fn record_done(
    msg: &SipMsg,
    which: NameAddrHdr,
    lump: LumpHandle,
    value: &[u8],
    rr: Option<&[u8]>,
) {
    let (id, pid) = (msg.id(), std::process::id());
    DONE.with(|d| {
        let mut d = d.borrow_mut();
        for x in d.iter_mut() {
            if x.msg_id != id || x.pid != pid || x.which == which {
                x.live = false;
            }
        }
        let i = match d.iter().position(|x| !x.live) {
            Some(i) => i,
            None => {
                d.push(Done {
                    live: false,
                    msg_id: id,
                    pid,
                    which,
                    lump,
                    value: Vec::new(),
                    rr_param: Vec::new(),
                });
                d.len() - 1
            }
        };
        let x = &mut d[i];
        x.live = true;
        x.msg_id = id;
        x.pid = pid;
        x.which = which;
        x.lump = lump;
        x.value.clear();
        x.value.extend_from_slice(value);
        x.rr_param.clear();
        x.rr_param.extend_from_slice(rr.unwrap_or_default());
    });
}

// ---------------------------------------------------------------------------
// uac_replace_from / uac_replace_to

/// One replacement of the From/To header of the message being routed: the header as
/// received, what an earlier call on the same message made of it, and the value this
/// call makes.
struct Replacement {
    which: NameAddrHdr,
    /// The header as received.
    hv: HdrValue,
    /// `hv` parsed.
    na: name_addr::NameAddr,
    earlier: Option<Earlier>,
    /// The header value as this call makes it.
    new_value: InlineBytes<HDR_INLINE>,
    /// `new_value` parsed.
    new_na: name_addr::NameAddr,
}

impl Replacement {
    fn orig_uri(&self) -> &[u8] {
        &self.hv.value[self.na.uri.clone()]
    }

    fn new_uri(&self) -> &[u8] {
        &self.new_value[self.new_na.uri.clone()]
    }

    fn uri_changed(&self) -> bool {
        self.new_uri() != self.orig_uri()
    }

    /// The new text of the whole name-addr (one lump over the received bytes).
    fn addr_text(&self) -> &[u8] {
        let suffix = self.hv.value.len() - self.na.addr.end;
        &self.new_value[self.na.addr.start..self.new_value.len() - suffix]
    }

    /// The RR parameter of an earlier call, if it added one.
    fn earlier_rr_param(&self) -> Option<&[u8]> {
        self.earlier.as_ref().and_then(|e| e.rr_param.as_deref())
    }
}

/// `uac_replace_from/to([display,] uri)`: `display` `None` keeps it, empty
/// removes it; `uri` `None`/empty keeps it.
pub fn replace(
    msg: &mut SipMsg,
    which: NameAddrHdr,
    display: Option<&[u8]>,
    uri: Option<&[u8]>,
) -> Res {
    let st = state()?;
    let uri = uri.filter(|u| !u.is_empty());
    let Some(hv) = msg.parse_name_addr_hdr(which) else {
        kerr!("failed to find/parse {} hdr", which.name().to_uppercase());
        return Err(ReplaceError::Logged);
    };
    if st.cfg.restore_mode == RestoreMode::Auto && uri.is_some() {
        refuse_sequential(msg, which)?;
    }
    let r = plan(msg, which, hv, display, uri)?;
    if st.cfg.restore_mode != RestoreMode::None && r.earlier.is_none() {
        save_original(st, msg, &r);
    }
    // RR parameter first (it may fail), then the header.
    let rr_added = store_restore_state(st, msg, &r, display)?;
    let lump = write_header(msg, &r)?;
    if in_request_route() {
        record_done(msg, which, lump, &r.new_value, rr_added.as_deref());
    }
    if st.cfg.restore_mode == RestoreMode::None {
        return Ok(());
    }
    mark_for_reply_restore(st, msg, which.msg_flag())
}

/// auto mode: never change the URI of a sequential request (C's check).
fn refuse_sequential(msg: &mut SipMsg, which: NameAddrHdr) -> Res {
    let Some((_, to)) = msg.parse_name_addr_hdr_ref(NameAddrHdr::To) else {
        kerr!("failed to parse TO hdr");
        return Err(ReplaceError::Logged);
    };
    if name_addr::parse(to).is_ok_and(|na| na.tag.is_some()) {
        kerr!(
            "decline {} replacing in sequential request in auto mode (has TO tag)",
            which.name().to_uppercase()
        );
        return Err(ReplaceError::Logged);
    }
    Ok(())
}

/// Parses the header as received, finds what an earlier call on the message made
/// of it, and computes the new value on top of that.
fn plan(
    msg: &SipMsg,
    which: NameAddrHdr,
    hv: HdrValue,
    display: Option<&[u8]>,
    uri: Option<&[u8]>,
) -> Result<Replacement, ReplaceError> {
    let na = name_addr::parse(&hv.value).map_err(|e| {
        kerr!(
            "cannot replace {} header '{}': {e}",
            which.name(),
            Bytes(&hv.value)
        );
        ReplaceError::Logged
    })?;
    // A second call on the same message (REQUEST_ROUTE): build on what the
    // first one made and swap the text of its lump (the last call wins).
    let earlier = if in_request_route() {
        match find_done(msg, which) {
            Some(e) => Some(e),
            None if msg.msg_flags() & which.msg_flag() != 0 => {
                kerr!(
                    "called uac_replace_{}() multiple times on the message",
                    lower(which)
                );
                return Err(ReplaceError::Logged);
            }
            None => None,
        }
    } else {
        None
    };
    let base: &[u8] = earlier.as_ref().map_or(&hv.value, |e| &e.value);
    let cannot = |e| {
        kerr!(
            "cannot replace {} header '{}': {e}",
            which.name(),
            Bytes(base)
        );
        ReplaceError::Logged
    };
    let base_na = match &earlier {
        Some(_) => name_addr::parse(base).map_err(cannot)?,
        None => na.clone(),
    };
    let edits = name_addr::replace_parsed(base, &base_na, display, uri).map_err(cannot)?;
    let new_value: InlineBytes<HDR_INLINE> = name_addr::apply_ref(base, &edits);
    let Ok(new_na) = name_addr::parse(&new_value) else {
        kerr!("replacing {} header gives an invalid header", which.name());
        return Err(ReplaceError::Logged);
    };
    Ok(Replacement {
        which,
        hv,
        na,
        earlier,
        new_value,
        new_na,
    })
}

/// `restore_*_avp`: the name-addr as received, for the reply restore.
fn save_original(st: &State, msg: &mut SipMsg, r: &Replacement) {
    if let Some(avp) = st.avp(r.which)
        && avp.set(msg, &r.hv.value[r.na.addr.clone()]).is_err()
    {
        kerr!("cannot store the original {} in the AVP", r.which.name());
    }
}

/// Keeps what sequential requests need to restore the header: in the dialog
/// (`restore_dlg`) or in a Record-Route parameter, which is returned. When the URI
/// is back to the original, an earlier call's parameter is neutralised.
fn store_restore_state(
    st: &State,
    msg: &mut SipMsg,
    r: &Replacement,
    display: Option<&[u8]>,
) -> Result<Option<InlineBytes<128>>, ReplaceError> {
    if st.cfg.restore_mode == RestoreMode::None || !r.uri_changed() {
        if let Some(old) = r.earlier_rr_param() {
            // The URI is back to the original: neutralise the earlier parameter.
            if let Some(rr) = api::rr() {
                let _ = rr.replace_added_rr_param(msg, old, b"");
            }
        }
        return Ok(None);
    }
    if st.dlg_mode() && store_in_dialog(msg, r, display)? {
        return Ok(None);
    }
    let param = rr_param_for(st, r.which, r.orig_uri(), r.new_uri())?;
    let rr = api::rr().ok_or(ReplaceError::Logged)?;
    match r.earlier_rr_param() {
        Some(old) => {
            if rr.replace_added_rr_param(msg, old, &param).is_err() {
                kerr!(
                    "called uac_replace_{}() multiple times on the message before \
                     record_route(): cannot update the Record-Route parameter",
                    lower(r.which)
                );
                return Err(ReplaceError::Logged);
            }
        }
        None => {
            if rr.add_rr_param(msg, &param).is_err() {
                kerr!("add_RR_param failed");
                return Err(ReplaceError::Logged);
            }
        }
    }
    Ok(Some(param))
}

/// The new name-addr in one lump over the received bytes: a new lump, or the
/// earlier call's lump with its text swapped.
fn write_header(msg: &mut SipMsg, r: &Replacement) -> Result<LumpHandle, ReplaceError> {
    match &r.earlier {
        Some(e) => {
            // Checked by swap_text to still be one of this message's lumps.
            crate::host::msg::lump::swap_text(msg, e.lump, r.addr_text()).map_err(|e| {
                kerr!("failed to update lump: {e}");
                ReplaceError::Logged
            })?;
            Ok(e.lump)
        }
        None => msg
            .replace_bytes(
                r.hv.offset + r.na.addr.start,
                r.na.addr.len(),
                r.addr_text(),
            )
            .map_err(|err| {
                kerr!("failed to build lump: {err}");
                ReplaceError::Logged
            }),
    }
}

/// Registers the reply restore once per request and marks the request (and
/// its transaction's copy, if it exists already) with `flag`.
fn mark_for_reply_restore(st: &State, msg: &mut SipMsg, flag: u32) -> Res {
    let tm = api::tm().ok_or(ReplaceError::Logged)?;
    if msg.msg_flags() & BOTH_FLAGS == 0 && tm.on_response_in(msg, st.hooks.reply).is_err() {
        kerr!("failed to install TM callback");
        return Err(ReplaceError::Logged);
    }
    msg.add_msg_flags(flag);
    tm.add_uas_request_flags(flag);
    Ok(())
}

/// `;name=value` for the RR state of a replacement.
fn rr_param_for(
    st: &State,
    which: NameAddrHdr,
    old: &[u8],
    new: &[u8],
) -> Result<InlineBytes<128>, ReplaceError> {
    let rr = api::rr().ok_or(ReplaceError::Logged)?;
    if !rr.append_fromtag() {
        kerr!("'append_fromtag' RR param is not enabled! - required by AUTO restore mode");
        return Err(ReplaceError::Logged);
    }
    let value = match (&st.key, st.cfg.restore_secure) {
        (Some(key), true) => with_rng(|r| rr_param::secure_encode(old, new, key, r)),
        _ => rr_param::legacy_encode(old, new, &st.cfg.restore_passwd),
    }
    .map_err(|e| {
        kerr!("failed to encode uris for {}: {e}", which.name());
        ReplaceError::Logged
    })?;
    Ok(InlineBytes::concat(&[
        b";",
        st.rr_param_name(which),
        b"=",
        &value,
    ]))
}

/// restore_dlg=1: keep the state in dialog variables (C names and values).
/// `Ok(false)` when the message has no dialog (then the RR way is used).
fn store_in_dialog(
    msg: &mut SipMsg,
    r: &Replacement,
    display: Option<&[u8]>,
) -> Result<bool, ReplaceError> {
    let st = state()?;
    let Some(d) = api::dlg().and_then(|a| a.get_dlg(msg)) else {
        return Ok(false);
    };
    let (which, hv, na) = (r.which, &r.hv, &r.na);
    let names = dlgvars(which);
    let fail = |what: &str| {
        kerr!("cannot store {what} value");
        ReplaceError::Logged
    };
    if d.has_var(names[0]) {
        kinfo!("Already called uac_replace for this dialog");
        if d.set_var(names[1], None).is_err() {
            return Err(fail("new uri"));
        }
    } else {
        if d.set_var(names[0], Some(&hv.value[na.uri.clone()]))
            .is_err()
        {
            return Err(fail("original uri"));
        }
        // CONFIRMED runs for the ACK of the 2xx, TERMINATED for the BYE.
        let types = dlg::CB_REQ_WITHIN | dlg::CB_CONFIRMED | dlg::CB_TERMINATED;
        if d.register_cb(types, st.hooks.dlg, which.msg_flag() as usize)
            .is_err()
        {
            kerr!("cannot register callback");
            return Err(ReplaceError::Logged);
        }
    }
    if d.set_var(names[1], Some(r.new_uri())).is_err() {
        return Err(fail("new uri"));
    }
    let old_dsp = na.display.clone().map_or(&b""[..], |r| &hv.value[r]);
    if d.set_var(names[2], Some(old_dsp)).is_err() {
        return Err(fail("display"));
    }
    // C stores "" when no display was given, which then removes the caller's
    // display in sequential requests; we store what the header now has.
    let _ = display;
    let new_dsp = r
        .new_na
        .display
        .clone()
        .map_or(&b""[..], |d| &r.new_value[d]);
    if d.set_var(names[3], Some(new_dsp)).is_err() {
        return Err(fail("new display"));
    }
    Ok(true)
}

// ---------------------------------------------------------------------------
// Sequential requests: RR parameter (auto: rr callback; manual: script)

/// Outcome of one restore attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    Yes,
    NoParam,
    Refused,
}

/// C `restore_uri()`: find the parameter `param_of` in the Route header and
/// swap the URI of the header it designates for this direction.
fn restore_from_rr(st: &State, msg: &mut SipMsg, param_of: NameAddrHdr) -> Restored {
    let Some(rr) = api::rr() else {
        return Restored::NoParam;
    };
    let name = st.rr_param_name(param_of);
    let Some(value) = rr.get_route_param(msg, name) else {
        kdbg!("route param '{}' not found", Bytes(name));
        return Restored::NoParam;
    };
    // vsf: From downstream, To upstream; vst: the other way round.
    let upstream = rr.is_upstream(msg);
    let which = match (param_of, upstream) {
        (NameAddrHdr::From, false) | (NameAddrHdr::To, true) => NameAddrHdr::From,
        _ => NameAddrHdr::To,
    };
    if msg.msg_flags() & which.msg_flag() != 0 {
        kdbg!("{} already restored/replaced on this request", which.name());
        return Restored::Yes;
    }
    let Some(hv) = msg.parse_name_addr_hdr(which) else {
        kerr!("failed to find/parse {} hdr", which.name().to_uppercase());
        return Restored::Refused;
    };
    let na = match name_addr::parse(&hv.value) {
        Ok(na) => na,
        Err(e) => {
            kwarn!(
                "cannot restore {} header '{}': {e}",
                which.name(),
                Bytes(&hv.value)
            );
            return Restored::Refused;
        }
    };
    let cur_uri = &hv.value[na.uri.clone()];
    let passwd = &st.cfg.restore_passwd;
    let (expected, put_back) =
        match rr_param::decode_any_inline::<64>(&value, cur_uri, passwd, st.key.as_ref()) {
            Ok((n, put_back)) => (&cur_uri[..n], put_back),
            Err(e) => {
                kwarn!(
                    "invalid Route parameter '{}' for {} URI [{}]: {e} - skipping the update",
                    Bytes(name),
                    which.name(),
                    Bytes(cur_uri)
                );
                return Restored::Refused;
            }
        };
    let edits = match name_addr::restore_uri_parsed(&hv.value, &na, expected, &put_back) {
        Ok(e) => e,
        Err(e) => {
            kwarn!(
                "cannot restore {} header: {e} - skipping the update",
                which.name()
            );
            return Restored::Refused;
        }
    };
    if let Some(avp) = st.avp(which) {
        let _ = avp.set(msg, &hv.value[na.addr.clone()]);
    }
    // Keep the parameter if this proxy record-routes the sequential request.
    let again = InlineBytes::<128>::concat(&[b";", name, b"=", &value]);
    if rr.add_rr_param(msg, &again).is_err() {
        kerr!("add rr param failed");
    }
    kdbg!(
        "restoring {}: [{}] -> [{}]",
        which.name(),
        Bytes(expected),
        Bytes(&put_back)
    );
    if apply_edits(msg, hv.offset, &edits).is_err() {
        return Restored::Refused;
    }
    msg.add_msg_flags(which.msg_flag());
    Restored::Yes
}

/// rr callback (auto mode): restore From/To of every loose-routed request.
pub fn rr_checker(msg: &mut SipMsg) {
    let Ok(st) = state() else { return };
    let before = msg.msg_flags() & BOTH_FLAGS;
    let a = restore_from_rr(st, msg, NameAddrHdr::From);
    let b = restore_from_rr(st, msg, NameAddrHdr::To);
    // An ACK gets no reply to restore: no callback (C registers one anyway).
    if (a == Restored::Yes || b == Restored::Yes)
        && !msg.is_ack()
        && before == 0
        && msg.msg_flags() & BOTH_FLAGS != 0
        && let Some(tm) = api::tm()
        && tm.on_response_in(msg, st.hooks.reply).is_err()
    {
        kerr!("failed to install TM callback");
    }
}

/// `uac_restore_from()` / `uac_restore_to()` (manual mode).
pub fn restore(msg: &mut SipMsg, param_of: NameAddrHdr) -> Res {
    let st = state()?;
    if !msg.is_request() {
        kerr!("called for something not request");
        return Err(ReplaceError::Logged);
    }
    let before = msg.msg_flags() & BOTH_FLAGS;
    match restore_from_rr(st, msg, param_of) {
        Restored::Yes => {
            // Also fix the replies (the C module does not in manual mode).
            if before == 0
                && !msg.is_ack()
                && msg.msg_flags() & BOTH_FLAGS != 0
                && let Some(tm) = api::tm()
                && tm.on_response_in(msg, st.hooks.reply).is_err()
            {
                kerr!("failed to install TM callback");
            }
            Ok(())
        }
        _ => Err(ReplaceError::Logged),
    }
}

// ---------------------------------------------------------------------------
// Replies

/// TMCB_RESPONSE_IN: give each marked header of the reply the name-addr its
/// receiver sent in the request (or the AVP value).
pub fn restore_reply(ev: ResponseIn<'_>) {
    let Ok(st) = state() else { return };
    let ResponseIn { request, reply } = ev;
    let flags = request.msg_flags();
    for which in [NameAddrHdr::From, NameAddrHdr::To] {
        if flags & which.msg_flag() == 0 {
            continue;
        }
        // Our own parser checks the value (parsed once, here); the core's
        // would only cost a pkg to_body per reply.
        let Some((rpl, rpl_na)) = reply
            .find_name_addr_hdr(which)
            .and_then(|h| name_addr::parse(&h.value).ok().map(|na| (h, na)))
        else {
            kerr!("failed to find/parse {} hdr", which.name().to_uppercase());
            continue;
        };
        let stored = st.avp(which).and_then(|a| a.get(reply));
        let addr: &[u8] = match &stored {
            Some(v) => v,
            None => {
                // The transaction's request, never the reply being edited:
                // borrowed, not copied.
                let Some((_, req)) = request.name_addr_hdr_ref(which) else {
                    kerr!(
                        "failed to restore {}: no header in the request",
                        which.name()
                    );
                    continue;
                };
                match name_addr::parse(req) {
                    Ok(na) => &req[na.addr],
                    Err(e) => {
                        kerr!("failed to restore {}: {e}", which.name());
                        continue;
                    }
                }
            }
        };
        match name_addr::check_addr(&rpl_na, addr) {
            Ok(()) => {
                let at = rpl.offset + rpl_na.addr.start;
                if let Err(err) = reply.replace_bytes(at, rpl_na.addr.len(), addr) {
                    kerr!("failed to build lump: {err}");
                    kerr!("failed to restore {}", which.name().to_uppercase());
                }
            }
            Err(e) => kerr!(
                "failed to restore {} '{}' in reply: {e}",
                which.name(),
                Bytes(addr)
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Dialog mode

/// Dialog callback (REQ_WITHIN / CONFIRMED / TERMINATED, and LOADED).
pub fn dialog_event(
    d: &Dlg<'_>,
    types: u32,
    req: Option<&mut SipMsg>,
    direction: u32,
    param: usize,
) {
    let Ok(st) = state() else { return };
    if types & dlg::CB_LOADED != 0 {
        // A dialog loaded from the database after a restart: install the
        // callbacks for both headers (the C module does the same).
        let t = dlg::CB_REQ_WITHIN | dlg::CB_CONFIRMED | dlg::CB_TERMINATED;
        for which in [NameAddrHdr::From, NameAddrHdr::To] {
            if d.register_cb(t, st.hooks.dlg, which.msg_flag() as usize)
                .is_err()
            {
                kerr!(
                    "can't register create dialog callbacks for UAC {}",
                    which.name()
                );
            }
        }
        return;
    }
    let Some(msg) = req else { return };
    if direction != dlg::DIR_DOWNSTREAM && direction != dlg::DIR_UPSTREAM {
        return;
    }
    let flag = param as u32;
    let owner = if flag == NameAddrHdr::From.msg_flag() {
        NameAddrHdr::From
    } else if flag == NameAddrHdr::To.msg_flag() {
        NameAddrHdr::To
    } else {
        return;
    };
    let downstream = direction == dlg::DIR_DOWNSTREAM;
    let which = match (owner, downstream) {
        (NameAddrHdr::To, true) | (NameAddrHdr::From, false) => NameAddrHdr::To,
        _ => NameAddrHdr::From,
    };
    // Flag of the header actually changed (C sets the owner's flag, so the
    // reply of an upstream request was not restored).
    let flag = which.msg_flag();
    if msg.msg_flags() & flag != 0 {
        return;
    }
    let names = dlgvars(owner);
    let (Some(orig), Some(new)) = (d.get_var(names[0]), d.get_var(names[1])) else {
        kdbg!("<{}> dialog variables not found", Bytes(names[1]));
        return;
    };
    let orig_dsp = d.get_var(names[2]).unwrap_or_default();
    let new_dsp = d.get_var(names[3]).unwrap_or_default();
    let (expected, put_back, exp_dsp, put_dsp) = if downstream {
        (orig, new, orig_dsp, new_dsp)
    } else {
        (new, orig, new_dsp, orig_dsp)
    };
    let Some(hv) = msg.parse_name_addr_hdr(which) else {
        kerr!("failed to find/parse {} hdr", which.name().to_uppercase());
        return;
    };
    let Ok(na) = name_addr::parse(&hv.value) else {
        kwarn!(
            "cannot restore {} header '{}'",
            which.name(),
            Bytes(&hv.value)
        );
        return;
    };
    let cur_uri = &hv.value[na.uri.clone()];
    if !uri::matches(cur_uri, &expected) {
        kwarn!(
            "{} URI [{}] is not the one replaced in this dialog - skipping the update",
            which.name(),
            Bytes(cur_uri)
        );
        return;
    }
    // Only swap the display back if the peer kept the one we know.
    let cur_dsp = na.display.clone().map_or(&b""[..], |r| &hv.value[r]);
    let display =
        (cur_dsp == exp_dsp.as_slice() && exp_dsp != put_dsp).then_some(put_dsp.as_slice());
    let edits = match name_addr::replace(&hv.value, display, Some(&put_back)) {
        Ok(e) => e,
        Err(e) => {
            kwarn!(
                "cannot restore {} header: {e} - skipping the update",
                which.name()
            );
            return;
        }
    };
    let e = addr_edit(&hv.value, &na, &edits);
    if let Err(err) = msg.replace_bytes(hv.offset + e.range.start, e.range.len(), &e.text) {
        kerr!("failed to build lump: {err}");
        return;
    }
    if msg.msg_flags() & BOTH_FLAGS == 0
        && let Some(tm) = api::tm()
        && tm.on_response_in(msg, st.hooks.reply).is_err()
    {
        kerr!("failed to install TM callback");
        return;
    }
    msg.add_msg_flags(flag);
}
