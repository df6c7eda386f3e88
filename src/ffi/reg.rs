//! Shims of admin guide 4.9-4.11, 7, 8, 9 (remote registration): script functions, the
//! tm completion callback, the counters and the `uac.reg_*` RPC commands.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;
use std::time::Duration;

use crate::ffi;
use crate::host::counters::{self, ComputedCounter};
use crate::host::fixup;
use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::pv::PvSpec;
use crate::host::rpc::{self, DocStrings, Rpc, RpcCommand};
use crate::host::str::borrowed_str;
use crate::host::timer;
use crate::host::tm_reg::CallbackParam;
use crate::sip::register::{uri_host, uri_user};
use crate::sys;
use crate::uac::config::Config;
use crate::uac::reg::engine;
use crate::uac::reg::record::idx;

/// The auth AVPs `uac_reg_request_to` writes (auth_realm, auth_username, auth_password).
struct AuthSpecs {
    realm: PvSpec,
    username: PvSpec,
    password: PvSpec,
}
// SAFETY: parsed in mod_init, read-only afterwards; one thread per process.
unsafe impl Send for AuthSpecs {}
// SAFETY: see above.
unsafe impl Sync for AuthSpecs {}
static AUTH_SPECS: OnceLock<AuthSpecs> = OnceLock::new();

/// Feature setup in mod_init (shm table, counters, RPC, timer process).
pub fn init(cfg: &Config) -> Result<(), ()> {
    let Some(rc) = &cfg.reg else { return Ok(()) };
    if let Some(a) = &cfg.auth_avps
        && let (Some(realm), Some(username), Some(password)) = (
            PvSpec::parse(&a.realm),
            PvSpec::parse(&a.username),
            PvSpec::parse(&a.password),
        )
    {
        let _ = AUTH_SPECS.set(AuthSpecs {
            realm,
            username,
            password,
        });
    }
    engine::init(cfg, Some(uac_reg_tm_callback)).map_err(|e| kerr!("{e}"))?;
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
        ],
    )
    .map_err(|()| kerr!("failed to register uac counters"))?;
    rpc::register(&RPC_CMDS).map_err(|()| kerr!("failed to register RPC commands"))?;
    timer::reserve_process();
    kdbg!(
        "remote registration enabled: {} slots, timer {} s",
        rc.hash_slots,
        rc.timer_interval
    );
    Ok(())
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
            ffi::guard("uac reg load", || match reg.load_all() {
                Ok(n) => kdbg!("loaded {n} uacreg records"),
                Err(e) => kerr!("failed to load uacreg records: {e}"),
            });
            kdbg!("run initial uac registration routine");
            ffi::guard("uac reg timer", || reg.tick());
        },
        Duration::from_secs(1),
        || ffi::guard("uac reg timer", || reg.tick()),
    )
    .map_err(|()| kerr!("failed to register timer routine as process"))
}

// ---------------------------------------------------------------------------
// tm callback and counters.

/// TMCB_LOCAL_COMPLETED of every REGISTER.
unsafe extern "C" fn uac_reg_tm_callback(
    _t: *mut sys::cell,
    _type: c_int,
    ps: *mut sys::tmcb_params,
) {
    ffi::guard("uac_reg_tm_callback", || {
        // SAFETY: tm calls this once per REGISTER sent by tm_reg::send, with its params.
        let Some((p, c)) = (unsafe { CallbackParam::take(ps) }) else {
            kdbg!("uuid not received");
            return;
        };
        if let Some(reg) = engine::get() {
            reg.on_completion(p, c);
        }
    })
}

unsafe extern "C" fn cnt_regtotal(
    _h: sys::counter_handle_t,
    _p: *mut c_void,
) -> sys::counter_val_t {
    ffi::guard("regtotal", || {
        engine::get().map_or(0, |r| r.table.counts().0) as _
    })
}
unsafe extern "C" fn cnt_regactive(
    _h: sys::counter_handle_t,
    _p: *mut c_void,
) -> sys::counter_val_t {
    ffi::guard("regactive", || {
        engine::get().map_or(0, |r| r.table.counts().1) as _
    })
}
unsafe extern "C" fn cnt_regdisabled(
    _h: sys::counter_handle_t,
    _p: *mut c_void,
) -> sys::counter_val_t {
    ffi::guard("regdisabled", || {
        engine::get().map_or(0, |r| r.table.counts().2) as _
    })
}

impl ffi::FailValue for sys::counter_val_t {
    fn fail() -> Self {
        0
    }
}

// ---------------------------------------------------------------------------
// Script functions.

fn reg_or_err(name: &str) -> Option<&'static engine::Reg> {
    let r = engine::get();
    if r.is_none() {
        kerr!("{name}: uac remote registrations not enabled (reg_db_url not set)");
    }
    r
}

/// Assigns a string to a PV given as a raw spec (fixup_spve_pvar's second parameter).
///
/// # Safety
/// `spec` is a parsed `pv_spec_t` made by the fixup; `msg` the message being routed.
unsafe fn set_pv_str(msg: &mut SipMsg, spec: *mut c_char, v: &[u8]) -> bool {
    let spec = spec as *mut sys::pv_spec_t;
    if spec.is_null() {
        return false;
    }
    // SAFETY: `spec` is valid (caller); read-only check of the setter.
    if unsafe { (*spec).setf.is_none() } {
        kerr!("dst is not w/");
        return false;
    }
    let mut val = sys::pv_value_t {
        rs: borrowed_str(v),
        ri: 0,
        flags: sys::PV_VAL_STR as c_int,
    };
    // SAFETY: the core copies the string; `val` lives for the call.
    unsafe { sys::pv_set_spec_value(msg.as_raw(), spec, 0, &mut val) == 0 }
}

/// `uac_reg_lookup(uuid, dst)` / `uac_reg_lookup_uri(uri, dst)` (4.9).
fn lookup(msg: *mut sys::sip_msg_t, p1: *mut c_char, p2: *mut c_char, by_uri: bool) -> c_int {
    // SAFETY: the core passes the routed message.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    // SAFETY: p1 was fixed up by fixup_spve_pvar.
    let Some(src) = (unsafe { fixup::spve(msg, p1) }) else {
        kerr!("cannot get the uuid parameter");
        return -1;
    };
    let Some(reg) = reg_or_err("uac_reg_lookup") else {
        return -1;
    };
    let value = if !by_uri {
        match reg.table.with_key(&src, |r| {
            [b"sip:", r.s(idx::L_USERNAME), b"@", r.s(idx::L_DOMAIN)].concat()
        }) {
            Some(v) => v,
            None => {
                kdbg!("no uuid: {}", Bytes(&src));
                return -1;
            }
        }
    } else {
        let user = uri_user(&src);
        let Some(host) = uri_host(&src) else {
            kerr!("failed to parse uri");
            return -2;
        };
        match reg.find_user(user, Some(host)) {
            Some(k) => k,
            None => {
                kdbg!("no user: {}", Bytes(&src));
                return -1;
            }
        }
    };
    // SAFETY: p2 is the pv_spec_t made by fixup_spve_pvar.
    if unsafe { set_pv_str(msg, p2, &value) } {
        1
    } else {
        -1
    }
}

/// 4.9 `uac_reg_lookup(uuid, dst)`
pub unsafe extern "C" fn w_uac_reg_lookup(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_lookup", || lookup(msg, p1, p2, false))
}

/// `uac_reg_lookup_uri(uri, dst)`
pub unsafe extern "C" fn w_uac_reg_lookup_uri(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_lookup_uri", || lookup(msg, p1, p2, true))
}

/// 4.10 `uac_reg_status(uuid)`: 1 registered, -1 unknown, -2 in progress, -3 disabled,
/// -99 other.
pub unsafe extern "C" fn w_uac_reg_status(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_status", || {
        // SAFETY: the core passes the routed message.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        // SAFETY: p1 was fixed up by fixup_spve_null.
        let Some(src) = (unsafe { fixup::spve(msg, p1) }) else {
            kerr!("cannot get the uuid parameter");
            return -1;
        };
        let Some(reg) = reg_or_err("uac_reg_status") else {
            return -1;
        };
        let now = engine::now();
        reg.table
            .with_key(&src, |r| r.state.status(now))
            .unwrap_or_else(|| {
                kdbg!("no uuid: {}", Bytes(&src));
                -1
            })
    })
}

/// 4.11 `uac_reg_request_to(user, mode)`: R-URI, dst URI and the auth AVPs from a record.
pub unsafe extern "C" fn w_uac_reg_request_to(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_request_to", || {
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
        if !(0..=3).contains(&mode) {
            kerr!("invalid mode");
            return -1;
        }
        let Some(reg) = reg_or_err("uac_reg_request_to") else {
            return -1;
        };
        let key = if mode & 1 == 0 {
            Some(src.clone())
        } else if reg.cfg.use_domain {
            let Some(host) = uri_host(&src) else {
                kerr!("failed to parse uri");
                return -2;
            };
            reg.find_user(uri_user(&src), Some(host))
        } else {
            reg.find_user(&src, None)
        };
        let data = key.and_then(|k| {
            reg.table.with_key(&k, |r| {
                let secret = if mode & 2 != 0 {
                    idx::AUTH_HA1
                } else {
                    idx::AUTH_PASSWORD
                };
                (
                    [b"sip:", r.s(idx::R_USERNAME), b"@", r.s(idx::R_DOMAIN)].concat(),
                    r.s(idx::AUTH_PROXY).to_vec(),
                    r.s(idx::REALM).to_vec(),
                    r.s(idx::AUTH_USERNAME).to_vec(),
                    r.s(secret).to_vec(),
                )
            })
        });
        let Some((ruri, proxy, realm, user, secret)) = data else {
            kdbg!("no user: {}", Bytes(&src));
            return -1;
        };
        let mut s = borrowed_str(&ruri);
        // SAFETY: the core copies the new R-URI.
        if unsafe { sys::rewrite_uri(msg.as_raw(), &mut s) } < 0 {
            kerr!("error while setting request uri");
            return -1;
        }
        if !proxy.is_empty() {
            let d = borrowed_str(&proxy);
            // SAFETY: the core copies the dst URI.
            if unsafe { sys::set_dst_uri(msg.as_raw(), &d) } < 0 {
                kerr!("error while setting outbound proxy");
                return -1;
            }
        }
        let Some(specs) = AUTH_SPECS.get() else {
            kerr!(
                "uac_reg_request_to needs auth_realm_avp, auth_username_avp and auth_password_avp"
            );
            return -1;
        };
        if !specs.realm.set_bytes(msg, &realm) {
            kerr!("error while setting auth_realm");
            return -1;
        }
        if !specs.username.set_bytes(msg, &user) {
            kerr!("error while setting auth_username");
            return -1;
        }
        if !specs.password.set_bytes(msg, &secret) {
            kerr!("error while setting auth password (mode: {})", mode & 2);
            return -1;
        }
        1
    })
}

fn enable_disable(
    name: &str,
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
    disable: bool,
) -> c_int {
    // SAFETY: the core passes the routed message.
    let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
        return -1;
    };
    // SAFETY: fixup_spve_spve.
    let (Some(a), Some(v)) = (unsafe { fixup::spve(msg, p1) }, unsafe {
        fixup::spve(msg, p2)
    }) else {
        kerr!("cannot get the filter parameters");
        return -1;
    };
    let Some(reg) = reg_or_err(name) else {
        return -1;
    };
    if a.is_empty() || v.is_empty() {
        kerr!("bad parameter values");
        return -1;
    }
    let rc = reg.set_disabled(&a, &v, disable);
    match rc {
        -2 => kdbg!("record not found for {} = {}", Bytes(&a), Bytes(&v)),
        -3 => kerr!("unsupported filter attribute {}", Bytes(&a)),
        _ => {}
    }
    rc
}

/// `uac_reg_enable(attr, val)`
pub unsafe extern "C" fn w_uac_reg_enable(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_enable", || {
        enable_disable("uac_reg_enable", msg, p1, p2, false)
    })
}

/// `uac_reg_disable(attr, val)`
pub unsafe extern "C" fn w_uac_reg_disable(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_disable", || {
        enable_disable("uac_reg_disable", msg, p1, p2, true)
    })
}

/// `uac_reg_refresh(l_uuid)`: reloads one record from the DB.
pub unsafe extern "C" fn w_uac_reg_refresh(
    msg: *mut sys::sip_msg_t,
    p1: *mut c_char,
    _p2: *mut c_char,
) -> c_int {
    ffi::guard("uac_reg_refresh", || {
        // SAFETY: the core passes the routed message.
        let Some(msg) = (unsafe { SipMsg::from_ptr(msg) }) else {
            return -1;
        };
        // SAFETY: fixup_spve_null.
        let Some(uuid) = (unsafe { fixup::spve(msg, p1) }).filter(|u| !u.is_empty()) else {
            kerr!("invalid parameters");
            return -1;
        };
        let Some(reg) = reg_or_err("uac_reg_refresh") else {
            return -1;
        };
        match reg.refresh(&uuid) {
            Ok(true) => 1,
            Ok(false) => {
                kwarn!("record not found: {}", Bytes(&uuid));
                -1
            }
            Err(e) => {
                kwarn!("failed to refresh record: {} - {e}", Bytes(&uuid));
                -1
            }
        }
    })
}

// ---------------------------------------------------------------------------
// RPC.

macro_rules! rpc_handler {
    ($name:ident, $label:literal, $body:expr) => {
        unsafe extern "C" fn $name(rpc: *mut sys::rpc_t, ctx: *mut c_void) {
            ffi::guard($label, || {
                // SAFETY: the core passes a live rpc interface and context.
                if let Some(r) = unsafe { Rpc::from_raw(rpc, ctx) } {
                    let f: fn(&Rpc<'_>) = $body;
                    f(&r);
                }
            })
        }
    };
}

use crate::uac::reg::rpc as cmds;
rpc_handler!(rpc_reg_dump, "uac.reg_dump", cmds::dump);
rpc_handler!(rpc_reg_info, "uac.reg_info", cmds::info);
rpc_handler!(rpc_reg_enable, "uac.reg_enable", |r| cmds::set_disabled(
    r, false
));
rpc_handler!(rpc_reg_disable, "uac.reg_disable", |r| cmds::set_disabled(
    r, true
));
rpc_handler!(rpc_reg_reload, "uac.reg_reload", cmds::reload);
rpc_handler!(rpc_reg_refresh, "uac.reg_refresh", cmds::refresh);
rpc_handler!(rpc_reg_remove, "uac.reg_remove", cmds::remove);
rpc_handler!(rpc_reg_add, "uac.reg_add", cmds::add);
rpc_handler!(rpc_reg_active, "uac.reg_active", cmds::active);
rpc_handler!(rpc_reg_unregister, "uac.reg_unregister", cmds::unregister);

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
static DOC_UNREGISTER: DocStrings = DocStrings::new(c"Send a register request with expires 0.");

/// The C module's `uac_reg_rpc` table, same order.
static RPC_CMDS: [RpcCommand; 10] = [
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
    RpcCommand {
        name: c"uac.reg_unregister",
        function: Some(rpc_reg_unregister),
        doc: &DOC_UNREGISTER,
        flags: 0,
    },
];
