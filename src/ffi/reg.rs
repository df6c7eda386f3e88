//! Shims of admin guide 4.9-4.11, 7, 8, 9 (remote registration): script functions (cfg
//! and KEMI), the counters, the `uac.reg_*` RPC commands and `$uac_reg_event(key)` (the
//! state events of `event_route[uac:reg]`, our addition).

use std::os::raw::{c_char, c_int, c_void};
use std::time::Duration;

use crate::host::guard;
use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::rpc::{self, DocStrings, RpcCommand};
use crate::host::script::fixup;
use crate::host::script::pv_ref::PvRef;
use crate::host::shm::counters::{self, ComputedCounter};
use crate::host::str::{KStr, borrowed_str};
use crate::host::timer;
use crate::host::width;
use crate::sys;
use crate::uac::config::Config;
use crate::uac::reg::engine::{self, OnDemand, RegError};
use crate::uac::reg::events::{self, Key, Value};
use crate::uac::reg::ownership;
use crate::uac::reg::script;
use crate::uac::reg::state::RegStatus;

/// Feature setup in mod_init (shm table, counters, RPC, timer process).
pub fn init(cfg: &Config) -> Result<(), ()> {
    // Also without reg_db_url, so that the commands answer "500 Not enabled"
    // as their C code intends (C registers them only with reg_db_url, so the
    // operator gets "command not found" instead).
    rpc::register(&RPC_CMDS).map_err(|_| kerr!("failed to register RPC commands"))?;
    let Some(rc) = &cfg.reg else { return Ok(()) };
    script::init(cfg);
    engine::init(cfg).map_err(|e| kerr!("{e}"))?;
    events::init(cfg);
    counters::register_computed(
        c"uac",
        &[
            ComputedCounter {
                name: c"regtotal",
                descr: c"Total number of registration accounts in memory",
                get: Some(cnt_regtotal),
            },
            ComputedCounter {
                name: c"regactive",
                descr: c"Number of successfully registered accounts (200 OK)",
                get: Some(cnt_regactive),
            },
            ComputedCounter {
                name: c"regdisabled",
                descr: c"Number of disabled registration accounts",
                get: Some(cnt_regdisabled),
            },
            ComputedCounter {
                name: c"reggiveup",
                descr: c"Number of times a failed registration disabled its account",
                get: Some(cnt_reggiveup),
            },
        ],
    )
    .map_err(|_| kerr!("failed to register uac counters"))?;
    if rc.cluster {
        counters::register_computed(
            c"uac",
            &[
                ComputedCounter {
                    name: c"regowned",
                    descr: c"reg_cluster: accounts this node owns (registers) now",
                    get: Some(cnt_regowned),
                },
                ComputedCounter {
                    name: c"regtakeover",
                    descr: c"reg_cluster: REGISTERs refreshing a binding another node made",
                    get: Some(cnt_regtakeover),
                },
            ],
        )
        .map_err(|_| kerr!("failed to register uac cluster counters"))?;
    }
    timer::reserve_process();
    kdbg!(
        "remote registration enabled: {} slots, timer {} s",
        rc.hash_slots,
        rc.timer_interval
    );
    Ok(())
}

/// mod_destroy (main process, clean stop): a cluster node says it is leaving.
pub fn destroy() {
    if engine::get().is_some_and(|r| r.cfg.cluster) {
        ownership::leave();
    }
}

/// Per-process setup: the timer process is forked from PROC_MAIN.
pub fn child_init(cfg: &Config, rank: c_int) -> Result<(), ()> {
    if rank != sys::PROC_MAIN as c_int || cfg.reg.is_none() {
        return Ok(());
    }
    let Some(reg) = engine::get() else {
        return Ok(());
    };
    timer::fork_periodic(
        c"TIMER UAC REG",
        || {
            guard::guard("uac reg load", || match reg.load_all() {
                Ok(n) => kdbg!("loaded {n} uacreg records"),
                Err(e) => kerr!("failed to load uacreg records: {e}"),
            });
            kdbg!("run initial uac registration routine");
            guard::guard("uac reg timer", || reg.tick());
        },
        Duration::from_secs(1),
        || guard::guard("uac reg timer", || reg.tick()),
    )
    .map_err(|_| kerr!("failed to register timer routine as process"))
}

// ---------------------------------------------------------------------------
// Counters.

entry! {
    fn cnt_regtotal(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "regtotal" {
        engine::get().map_or(0, |r| r.table.counts().0) as _
    }

    fn cnt_regactive(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "regactive" {
        engine::get().map_or(0, |r| r.table.counts().1) as _
    }

    fn cnt_regdisabled(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "regdisabled" {
        engine::get().map_or(0, |r| r.table.counts().2) as _
    }

    /// New (reg_cluster): computed from the current view (a walk of the table).
    fn cnt_regowned(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "regowned" {
        engine::get().map_or(0, |r| r.owned_here()) as _
    }

    /// New (reg_cluster).
    fn cnt_regtakeover(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "regtakeover" {
        ownership::takeovers() as _
    }

    /// New (README: Retry classes): not reset by `cnt.reset`, as the others.
    fn cnt_reggiveup(
        _h: sys::counter_handle_t,
        _p: *mut c_void,
    ) -> sys::counter_val_t as "reggiveup" {
        engine::get().map_or(0, |r| r.giveups.get()) as _
    }
}

// ---------------------------------------------------------------------------
// Script functions: cfg (`w_*`, fixed-up params) and KEMI (`ki_*`, `str*` params).
// Each converts its arguments, calls `uac::reg::script` and maps the outcome to the
// script code the admin guide documents, here and only here.

/// 1 done; -2 unparsable URI (`uac_reg_lookup_uri`, `uac_reg_request_to`); -1 any
/// other failure (not found, not enabled, bad argument, tm or PV failure).
fn code(r: Result<(), RegError>) -> c_int {
    match r {
        Ok(()) => 1,
        Err(RegError::BadUri) => -2,
        Err(_) => -1,
    }
}

/// `uac_reg_enable` / `uac_reg_disable`: 1 done, -2 no such record, -3 unknown
/// attribute, -1 otherwise.
fn filter_code(r: Result<(), RegError>) -> c_int {
    match r {
        Ok(()) => 1,
        Err(RegError::NotFound) => -2,
        Err(RegError::UnknownAttribute) => -3,
        Err(_) => -1,
    }
}

/// `uac_reg_status` (4.10): 1 registered, -1 unknown, -2 in progress, -3 disabled,
/// -99 other.
fn status_code(r: Result<RegStatus, RegError>) -> c_int {
    match r {
        Ok(RegStatus::Registered) => 1,
        Ok(RegStatus::InProgress) => -2,
        Ok(RegStatus::Disabled) => -3,
        Ok(RegStatus::Other) => -99,
        Err(_) => -1,
    }
}

/// The bytes of a KEMI `str*` argument.
///
/// # Safety
/// `p` is NULL or a `str` the KEMI engine passed to the current call.
unsafe fn kemi_arg(p: *mut sys::str_) -> Option<Vec<u8>> {
    // SAFETY: guaranteed by the caller.
    unsafe { p.as_ref() }.map(|s| unsafe { KStr::from_raw(s) }.to_vec())
}

/// Both KEMI `str*` arguments (`None` if either is NULL).
///
/// # Safety
/// As for [`kemi_arg`].
unsafe fn kemi_args(a: *mut sys::str_, b: *mut sys::str_) -> Option<(Vec<u8>, Vec<u8>)> {
    // SAFETY: caller's promise.
    Some((unsafe { kemi_arg(a) }?, unsafe { kemi_arg(b) }?))
}

/// The routed message and the first parameter, fixed up as a `spve` (every cfg
/// registration function takes one); logs `what` when it cannot be evaluated.
///
/// # Safety
/// `msg` is the routed message; `p1` a parameter fixed up as `spve` for this export.
unsafe fn w_msg_spve<'a>(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    what: &str,
) -> Option<(&'a mut SipMsg, Vec<u8>)> {
    // SAFETY: the core passes the routed message.
    let msg = unsafe { SipMsg::from_ptr(msg) }?;
    // SAFETY: p1 was fixed up as spve (caller's promise).
    let Some(v) = (unsafe { fixup::spve(msg, p1) }) else {
        kerr!("{what}");
        return None;
    };
    Some((msg, v))
}

/// The `attr, val` filter of a cfg call (uac_reg_enable, uac_reg_disable,
/// uac_reg_send_register, uac_reg_send_unregister), evaluated for `msg`.
///
/// # Safety
/// `msg` is the routed message; `p1`/`p2` the parameters fixed up by
/// fixup_spve_spve for this export.
unsafe fn w_filter(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> Option<(Vec<u8>, Vec<u8>)> {
    // SAFETY: the core passes the routed message.
    let msg = unsafe { SipMsg::from_ptr(msg) }?;
    // SAFETY: fixup_spve_spve, by the caller's promise.
    let (Some(a), Some(v)) = (unsafe { fixup::spve(msg, p1) }, unsafe {
        fixup::spve(msg, p2)
    }) else {
        kerr!("cannot get the filter parameters");
        return None;
    };
    Some((a, v))
}

/// `w_uac_reg_lookup` / `w_uac_reg_lookup_uri` (fixup_spve_pvar).
///
/// # Safety
/// As for [`w_msg_spve`]; `p2` is the pv_spec_t made by fixup_spve_pvar.
unsafe fn w_lookup(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
    by_uri: bool,
) -> c_int {
    // SAFETY: caller's promise.
    let Some((msg, src)) = (unsafe { w_msg_spve(msg, p1, "cannot get the uuid parameter") }) else {
        return -1;
    };
    // SAFETY: p2 is the pv_spec_t made by fixup_spve_pvar, alive with the config.
    let Some(dst) = (unsafe { PvRef::from_fixup(p2) }) else {
        return -1;
    };
    code(script::lookup(msg, &src, &dst, by_uri))
}

/// `ki_uac_reg_lookup` / `ki_uac_reg_lookup_uri`: the destination is a PV name.
///
/// # Safety
/// Arguments as passed by the KEMI engine (message, NULL or valid `str`s).
unsafe fn ki_lookup(
    msg: *mut sys::sip_msg_t,
    src: *mut sys::str_,
    dst: *mut sys::str_,
    by_uri: bool,
) -> c_int {
    // SAFETY: the KEMI engine passes the routed message.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    // SAFETY: NULL or valid strs (caller's promise).
    let Some((src, name)) = (unsafe { kemi_args(src, dst) }) else {
        return -1;
    };
    let Some(dst) = PvRef::from_cache(&name) else {
        kerr!("cannot get pv spec for [{}]", Bytes(&name));
        return -1;
    };
    code(script::lookup(msg, &src, &dst, by_uri))
}

type MsgP = *mut sys::sip_msg_t;
type ArgP = *mut c_char;
type KStrP = *mut sys::str_;

entry! {
    /// 4.9 `uac_reg_lookup(uuid, dst)`
    pub fn w_uac_reg_lookup(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int as "uac_reg_lookup" {
        // SAFETY: forwarded from the core (this export's fixed-up parameters).
        unsafe { w_lookup(msg, p1, p2, false) }
    }

    /// KEMI `uac_reg_lookup(uuid, "$pv")`
    pub fn ki_uac_reg_lookup(msg: MsgP, uuid: KStrP, dst: KStrP) -> c_int as "uac_reg_lookup" {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_lookup(msg, uuid, dst, false) }
    }

    /// `uac_reg_lookup_uri(uri, dst)`
    pub fn w_uac_reg_lookup_uri(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int as "uac_reg_lookup_uri" {
        // SAFETY: forwarded from the core (this export's fixed-up parameters).
        unsafe { w_lookup(msg, p1, p2, true) }
    }

    /// KEMI `uac_reg_lookup_uri(uri, "$pv")`
    pub fn ki_uac_reg_lookup_uri(msg: MsgP, uri: KStrP, dst: KStrP) -> c_int
        as "uac_reg_lookup_uri"
    {
        // SAFETY: forwarded from the KEMI engine.
        unsafe { ki_lookup(msg, uri, dst, true) }
    }

    /// 4.10 `uac_reg_status(uuid)`
    pub fn w_uac_reg_status(msg: MsgP, p1: ArgP, _p2: ArgP) -> c_int as "uac_reg_status" {
        // SAFETY: the routed message; p1 was fixed up by fixup_spve_null.
        match unsafe { w_msg_spve(msg, p1, "cannot get the uuid parameter") } {
            Some((_, src)) => status_code(script::status(&src)),
            None => -1,
        }
    }

    /// KEMI `uac_reg_status(uuid)`
    pub fn ki_uac_reg_status(_msg: MsgP, uuid: KStrP) -> c_int as "uac_reg_status" {
        // SAFETY: NULL or a valid str from the KEMI engine.
        unsafe { kemi_arg(uuid) }.map_or(-1, |src| status_code(script::status(&src)))
    }

    /// 4.11 `uac_reg_request_to(user, mode)`
    pub fn w_uac_reg_request_to(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int as "uac_reg_request_to" {
        // SAFETY: the core passes the routed message.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        // SAFETY: fixup_spve_igp.
        let (Some(src), Some(mode)) = (unsafe { fixup::spve(msg, p1) }, unsafe {
            fixup::igp(msg, p2)
        }) else {
            kerr!("cannot get the parameters");
            return -1;
        };
        code(script::request_to(msg, &src, mode))
    }

    /// KEMI `uac_reg_request_to(user, mode)`: modes 0..3 (the C module's KEMI takes 0..1).
    pub fn ki_uac_reg_request_to(msg: MsgP, user: KStrP, mode: c_int) -> c_int
        as "uac_reg_request_to"
    {
        // SAFETY: the KEMI engine passes the routed message.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        // SAFETY: NULL or a valid str from the KEMI engine.
        let Some(src) = (unsafe { kemi_arg(user) }) else {
            return -1;
        };
        code(script::request_to(msg, &src, mode))
    }

    /// `uac_reg_enable(attr, val)`
    pub fn w_uac_reg_enable(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int as "uac_reg_enable" {
        // SAFETY: registered with fixup_spve_spve; the core passes the routed message.
        let f = unsafe { w_filter(msg, p1, p2) };
        f.map_or(-1, |(a, v)| filter_code(script::set_disabled(&a, &v, false)))
    }

    /// KEMI `uac_reg_enable(attr, val)`
    pub fn ki_uac_reg_enable(_msg: MsgP, attr: KStrP, val: KStrP) -> c_int as "uac_reg_enable" {
        // SAFETY: forwarded from the KEMI engine.
        let f = unsafe { kemi_args(attr, val) };
        f.map_or(-1, |(a, v)| filter_code(script::set_disabled(&a, &v, false)))
    }

    /// `uac_reg_disable(attr, val)`
    pub fn w_uac_reg_disable(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int as "uac_reg_disable" {
        // SAFETY: registered with fixup_spve_spve; the core passes the routed message.
        let f = unsafe { w_filter(msg, p1, p2) };
        f.map_or(-1, |(a, v)| filter_code(script::set_disabled(&a, &v, true)))
    }

    /// KEMI `uac_reg_disable(attr, val)`
    pub fn ki_uac_reg_disable(_msg: MsgP, attr: KStrP, val: KStrP) -> c_int as "uac_reg_disable" {
        // SAFETY: forwarded from the KEMI engine.
        let f = unsafe { kemi_args(attr, val) };
        f.map_or(-1, |(a, v)| filter_code(script::set_disabled(&a, &v, true)))
    }

    /// `uac_reg_send_register(attr, val)` (C module 6.0)
    pub fn w_uac_reg_send_register(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int
        as "uac_reg_send_register"
    {
        // SAFETY: registered with fixup_spve_spve; the core passes the routed message.
        let f = unsafe { w_filter(msg, p1, p2) };
        f.map_or(-1, |(a, v)| code(script::send_now(&a, &v, OnDemand::Register)))
    }

    /// KEMI `uac_reg_send_register(attr, val)` (not in the C module's KEMI table)
    pub fn ki_uac_reg_send_register(_msg: MsgP, attr: KStrP, val: KStrP) -> c_int
        as "uac_reg_send_register"
    {
        // SAFETY: forwarded from the KEMI engine.
        let f = unsafe { kemi_args(attr, val) };
        f.map_or(-1, |(a, v)| code(script::send_now(&a, &v, OnDemand::Register)))
    }

    /// `uac_reg_send_unregister(attr, val)` (C module 6.0)
    pub fn w_uac_reg_send_unregister(msg: MsgP, p1: ArgP, p2: ArgP) -> c_int
        as "uac_reg_send_unregister"
    {
        // SAFETY: registered with fixup_spve_spve; the core passes the routed message.
        let f = unsafe { w_filter(msg, p1, p2) };
        f.map_or(-1, |(a, v)| code(script::send_now(&a, &v, OnDemand::Unregister)))
    }

    /// KEMI `uac_reg_send_unregister(attr, val)` (not in the C module's KEMI table)
    pub fn ki_uac_reg_send_unregister(_msg: MsgP, attr: KStrP, val: KStrP) -> c_int
        as "uac_reg_send_unregister"
    {
        // SAFETY: forwarded from the KEMI engine.
        let f = unsafe { kemi_args(attr, val) };
        f.map_or(-1, |(a, v)| code(script::send_now(&a, &v, OnDemand::Unregister)))
    }

    /// `uac_reg_refresh(l_uuid)`: reloads one record from the DB.
    pub fn w_uac_reg_refresh(msg: MsgP, p1: ArgP, _p2: ArgP) -> c_int as "uac_reg_refresh" {
        // SAFETY: the routed message; p1 was fixed up by fixup_spve_null.
        match unsafe { w_msg_spve(msg, p1, "invalid parameters") } {
            Some((_, uuid)) => code(script::refresh(&uuid)),
            None => -1,
        }
    }

    /// KEMI `uac_reg_refresh(l_uuid)`
    pub fn ki_uac_reg_refresh(_msg: MsgP, uuid: KStrP) -> c_int as "uac_reg_refresh" {
        // SAFETY: NULL or a valid str from the KEMI engine.
        unsafe { kemi_arg(uuid) }.map_or(-1, |uuid| code(script::refresh(&uuid)))
    }
}

// ---------------------------------------------------------------------------
// $uac_reg_event(key): the change being reported to event_route[uac:reg].

/// `PV_NAME_INTSTR` of `core/pvar.h`.
const PV_NAME_INTSTR: c_int = 0;

/// The key stored in the spec by [`pv_parse_uac_reg_event_name`].
///
/// # Safety
/// `param` is NULL or the parameter of a spec parsed by our name parser.
unsafe fn event_key(param: *mut sys::pv_param_t) -> Option<Key> {
    // SAFETY: guaranteed by the caller.
    let p = unsafe { param.as_ref() }?;
    // SAFETY: the parser set `isname.name.n` (an int_str holding an int);
    // `int` up to 5.6, `long` from 5.7.
    Key::from_index(width::widen(unsafe { p.pvn.u.isname.name.n }))
}

entry! {
    /// `$uac_reg_event(key)` getter: `$null` outside the event route.
    pub fn pv_get_uac_reg_event(
        msg: *mut sys::sip_msg_t,
        param: *mut sys::pv_param_t,
        res: *mut sys::pv_value_t,
    ) -> c_int as "$uac_reg_event" {
        // SAFETY: the core passes the spec's param (parsed by us).
        let Some(key) = (unsafe { event_key(param) }) else {
            return -1;
        };
        events::with_current(|ev| match ev.map(|e| e.get(key)) {
            // SAFETY: the core's PV helper fills `res` from its arguments.
            None => unsafe { sys::pv_get_null(msg, param, res) },
            // SAFETY: as above.
            Some(Value::Uint(v)) => unsafe {
                sys::pv_get_uintval(msg, param, res, width::widen(v))
            },
            Some(Value::Str(s)) => {
                let mut st = borrowed_str(s);
                // SAFETY: `res` gets a str pointing into this process's current
                // event, which stays unchanged until the route returns (the
                // script copies values it keeps, as with $uac_req).
                unsafe { sys::pv_get_strval(msg, param, res, &mut st) }
            }
        })
    }

    /// `$uac_reg_event(key)` name parser (fixup time): unknown keys refuse the config.
    pub fn pv_parse_uac_reg_event_name(
        sp: *mut sys::pv_spec_t,
        name: *mut sys::str_,
    ) -> c_int as "$uac_reg_event" {
        // SAFETY: the core passes its spec and the name text for the call.
        let (Some(sp), Some(name)) = (unsafe { sp.as_mut() }, unsafe { name.as_ref() }) else {
            return -1;
        };
        // SAFETY: the name points into the config text, valid for the call.
        let text = unsafe { KStr::from_raw(name) }.as_bytes();
        let Some(key) = Key::parse(text) else {
            kerr!("unknown uac_reg_event name {}", Bytes(text));
            return -1;
        };
        sp.pvp.pvn.type_ = PV_NAME_INTSTR;
        sp.pvp.pvn.u.isname.type_ = 0;
        sp.pvp.pvn.u.isname.name.n = width::widen(key.index());
        0
    }
}

// ---------------------------------------------------------------------------
// RPC.

use crate::uac::reg::rpc as cmds;

entry! {
    rpc fn rpc_reg_dump as "uac.reg_dump" => cmds::dump;
    rpc fn rpc_reg_cluster as "uac.reg_cluster" => cmds::cluster;
    rpc fn rpc_reg_info as "uac.reg_info" => cmds::info;
    rpc fn rpc_reg_enable as "uac.reg_enable" => |r| cmds::set_disabled(r, false);
    rpc fn rpc_reg_disable as "uac.reg_disable" => |r| cmds::set_disabled(r, true);
    rpc fn rpc_reg_reload as "uac.reg_reload" => cmds::reload;
    rpc fn rpc_reg_refresh as "uac.reg_refresh" => cmds::refresh;
    rpc fn rpc_reg_remove as "uac.reg_remove" => cmds::remove;
    rpc fn rpc_reg_add as "uac.reg_add" => cmds::add;
    rpc fn rpc_reg_active as "uac.reg_active" => cmds::active;
    rpc fn rpc_reg_register as "uac.reg_register" => |r| cmds::send_now(r, OnDemand::Register);
    rpc fn rpc_reg_unregister as "uac.reg_unregister" =>
        |r| cmds::send_now(r, OnDemand::Unregister);
}

static DOC_CLUSTER: DocStrings = DocStrings::new(
    c"reg_cluster: the DMQ nodes this node knows, their state and the accounts each owns.",
);
static DOC_DUMP: DocStrings = DocStrings::new(c"Dump the contents of user registrations table.");
static DOC_INFO: DocStrings =
    DocStrings::new(c"Return the details of registration for a particular record.");
static DOC_ENABLE: DocStrings = DocStrings::new(c"Enable registration for a particular record.");
static DOC_DISABLE: DocStrings = DocStrings::new(c"Disable registration for a particular record.");
static DOC_RELOAD: DocStrings = DocStrings::new(c"Reload records from database.");
static DOC_REFRESH: DocStrings = DocStrings::new(c"Refresh a record from database.");
static DOC_REMOVE: DocStrings = DocStrings::new(c"Remove a record from memory.");
static DOC_ADD: DocStrings = DocStrings::new(c"Add a record to memory.");
static DOC_ACTIVE: DocStrings =
    DocStrings::new(c"Set remote registration active or inactive for all records.");
static DOC_REGISTER: DocStrings = DocStrings::new(c"Send a register request.");
static DOC_UNREGISTER: DocStrings = DocStrings::new(c"Send a register request with expires 0.");

/// The C module's `uac_reg_rpc` table (6.0), same order.
static RPC_CMDS: [RpcCommand; 12] = [
    RpcCommand {
        name: c"uac.reg_dump",
        function: Some(rpc_reg_dump),
        doc: &DOC_DUMP,
        flags: rpc::RET_ARRAY,
    },
    RpcCommand {
        name: c"uac.reg_info",
        function: Some(rpc_reg_info),
        doc: &DOC_INFO,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_enable",
        function: Some(rpc_reg_enable),
        doc: &DOC_ENABLE,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_disable",
        function: Some(rpc_reg_disable),
        doc: &DOC_DISABLE,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_reload",
        function: Some(rpc_reg_reload),
        doc: &DOC_RELOAD,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_refresh",
        function: Some(rpc_reg_refresh),
        doc: &DOC_REFRESH,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_remove",
        function: Some(rpc_reg_remove),
        doc: &DOC_REMOVE,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_add",
        function: Some(rpc_reg_add),
        doc: &DOC_ADD,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_active",
        function: Some(rpc_reg_active),
        doc: &DOC_ACTIVE,
        flags: 0,
    },
    // C module 6.0, offered on every release
    RpcCommand {
        name: c"uac.reg_register",
        function: Some(rpc_reg_register),
        doc: &DOC_REGISTER,
        flags: 0,
    },
    RpcCommand {
        name: c"uac.reg_unregister",
        function: Some(rpc_reg_unregister),
        doc: &DOC_UNREGISTER,
        flags: 0,
    },
    // New (reg_cluster)
    RpcCommand {
        name: c"uac.reg_cluster",
        function: Some(rpc_reg_cluster),
        doc: &DOC_CLUSTER,
        flags: rpc::RET_ARRAY,
    },
];
