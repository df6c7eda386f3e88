//! The module's export tables, in the order and with the names of the C
//! module's `uac.c`, and its lifecycle (mod_init, child_init, mod_destroy).

use std::cell::UnsafeCell;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::null_mut;
use std::sync::OnceLock;

use crate::ffi::{auth, reg, replace, send};
use crate::host::{api, guard, log::Bytes, script::pv::PvSpec, str::KStr};
use crate::sys;
use crate::uac::config::{Config, RawParams};

// ---------------------------------------------------------------------------
// Version check: the core compares these with its own at load time.

/// `char *module_version` of MODULE_VERSION.
#[repr(transparent)]
pub struct VersionPtr(*const c_char);
// SAFETY: points to an immutable C string compiled into the glue.
unsafe impl Sync for VersionPtr {}

// Only the addresses of the glue's arrays are taken (no read), which is safe.
#[unsafe(no_mangle)]
pub static module_version: VersionPtr = VersionPtr((&raw const sys::ksr_rs_full_version).cast());
#[unsafe(no_mangle)]
pub static module_flags: VersionPtr = VersionPtr((&raw const sys::ksr_rs_compile_flags).cast());

// ---------------------------------------------------------------------------
// Modparam storage: written by the core while it parses the config (before
// mod_init, single process), read once in mod_init.

/// A cell the core writes a modparam value into through `param_pointer`.
#[repr(transparent)]
pub struct ModParam<T>(UnsafeCell<T>);
// SAFETY: written only by the core during config parsing, before any fork
// and before mod_init reads it; never written afterwards.
unsafe impl<T> Sync for ModParam<T> {}

impl<T> ModParam<T> {
    const fn new(v: T) -> Self {
        ModParam(UnsafeCell::new(v))
    }
    const fn ptr(&'static self) -> *mut c_void {
        self.0.get().cast()
    }
}

impl ModParam<sys::str_> {
    /// The value, `None` when never set.
    fn bytes(&self) -> Option<Vec<u8>> {
        // SAFETY: see the Sync impl; the core set a pkg copy or left it null.
        let s = unsafe { &*self.0.get() };
        if s.s.is_null() {
            return None;
        }
        // SAFETY: the core wrote a valid (s, len) pair.
        Some(unsafe { KStr::from_raw(s) }.to_vec())
    }
}

impl ModParam<*mut c_char> {
    fn bytes(&self) -> Option<Vec<u8>> {
        // SAFETY: see the Sync impl; the core set a NUL-terminated pkg copy.
        let p = unsafe { *self.0.get() };
        if p.is_null() {
            return None;
        }
        // SAFETY: NUL-terminated string from the core.
        Some(unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec())
    }
}

impl ModParam<c_int> {
    fn get(&self) -> c_int {
        // SAFETY: see the Sync impl.
        unsafe { *self.0.get() }
    }
}

const fn unset_str() -> sys::str_ {
    sys::str_ {
        s: null_mut(),
        len: 0,
    }
}
const fn str_lit(s: &'static std::ffi::CStr) -> sys::str_ {
    sys::str_ {
        s: s.as_ptr() as *mut c_char,
        len: s.count_bytes() as c_int,
    }
}

static RR_FROM_PARAM: ModParam<sys::str_> = ModParam::new(str_lit(c"vsf"));
static RR_TO_PARAM: ModParam<sys::str_> = ModParam::new(str_lit(c"vst"));
static RESTORE_MODE: ModParam<*mut c_char> = ModParam::new(null_mut());
static RESTORE_DLG: ModParam<c_int> = ModParam::new(0);
static RESTORE_PASSWD: ModParam<sys::str_> = ModParam::new(unset_str());
static RESTORE_SECURE: ModParam<c_int> = ModParam::new(0);
static RESTORE_FROM_AVP: ModParam<sys::str_> = ModParam::new(unset_str());
static RESTORE_TO_AVP: ModParam<sys::str_> = ModParam::new(unset_str());
static AUTH_USERNAME_AVP: ModParam<*mut c_char> = ModParam::new(null_mut());
static AUTH_REALM_AVP: ModParam<*mut c_char> = ModParam::new(null_mut());
static AUTH_PASSWORD_AVP: ModParam<*mut c_char> = ModParam::new(null_mut());
static REG_DB_URL: ModParam<sys::str_> = ModParam::new(unset_str());
static REG_DB_TABLE: ModParam<sys::str_> = ModParam::new(str_lit(c"uacreg"));
static REG_CONTACT_ADDR: ModParam<sys::str_> = ModParam::new(unset_str());
static REG_TIMER_INTERVAL: ModParam<c_int> = ModParam::new(90);
static REG_RETRY_INTERVAL: ModParam<c_int> = ModParam::new(0);
static REG_KEEP_CALLID: ModParam<c_int> = ModParam::new(0);
static REG_RANDOM_DELAY: ModParam<c_int> = ModParam::new(0);
static REG_ACTIVE: ModParam<c_int> = ModParam::new(1);
static REG_GC_INTERVAL: ModParam<c_int> = ModParam::new(150);
static REG_HASH_SIZE: ModParam<c_int> = ModParam::new(4);
static REG_USE_DOMAIN: ModParam<c_int> = ModParam::new(0);
static DEFAULT_SOCKET: ModParam<sys::str_> = ModParam::new(unset_str());
static EVENT_CALLBACK: ModParam<sys::str_> = ModParam::new(unset_str());
static RELOAD_DELTA: ModParam<c_int> = ModParam::new(0);
static REG_SEND_WINDOW: ModParam<c_int> =
    ModParam::new(crate::uac::config::DEFAULT_SEND_WINDOW as c_int);
static REG_RPC_SHOW_SECRETS: ModParam<c_int> = ModParam::new(0);
static REG_RETRY_INTERVAL_TEMPORARY: ModParam<c_int> = ModParam::new(-1);
static REG_RETRY_INTERVAL_AUTH: ModParam<c_int> = ModParam::new(-1);
static REG_RETRY_INTERVAL_FATAL: ModParam<c_int> = ModParam::new(-1);
static REG_RETRY_BACKOFF_MAX: ModParam<c_int> = ModParam::new(0);
static REG_RETRY_MAX_ATTEMPTS: ModParam<c_int> = ModParam::new(0);
static REG_REFRESH_PERCENT: ModParam<c_int> = ModParam::new(0);
static REG_CLUSTER: ModParam<c_int> = ModParam::new(0);

/// `credential` values, collected by [`add_credential`] while the core
/// parses the config (single process, before mod_init).
struct Credentials(UnsafeCell<Vec<Vec<u8>>>);
// SAFETY: as for ModParam: written during config parsing only.
unsafe impl Sync for Credentials {}
static CREDENTIALS: Credentials = Credentials(UnsafeCell::new(Vec::new()));

entry! {
    /// USE_FUNC_PARAM handler of `credential` (repeatable).
    fn add_credential(_type: sys::modparam_t, val: *mut c_void) -> c_int as "credential" {
        if val.is_null() {
            kerr!("invalid modparam \"credential\": empty value");
            return -1;
        }
        // SAFETY: PARAM_STRING: the core passes a NUL-terminated string.
        let bytes = unsafe { std::ffi::CStr::from_ptr(val as *const c_char) }.to_bytes();
        if let Err(e) = crate::uac::config::validate_credential(bytes) {
            kerr!("{e}");
            return -1;
        }
        // SAFETY: config parsing runs in one process, one thread, before
        // mod_init; nothing else holds a reference to the vector.
        unsafe { (*CREDENTIALS.0.get()).push(bytes.to_vec()) };
        0
    }
}

fn raw_params() -> RawParams {
    let d = RawParams::default();
    RawParams {
        rr_from_store_param: RR_FROM_PARAM.bytes().unwrap_or_default(),
        rr_to_store_param: RR_TO_PARAM.bytes().unwrap_or_default(),
        restore_mode: RESTORE_MODE.bytes(),
        restore_dlg: RESTORE_DLG.get(),
        restore_passwd: RESTORE_PASSWD.bytes().unwrap_or_default(),
        restore_secure: RESTORE_SECURE.get(),
        restore_from_avp: RESTORE_FROM_AVP.bytes(),
        restore_to_avp: RESTORE_TO_AVP.bytes(),
        // SAFETY: mod_init runs after config parsing, in one process.
        credentials: unsafe { (*CREDENTIALS.0.get()).clone() },
        auth_username_avp: AUTH_USERNAME_AVP.bytes(),
        auth_realm_avp: AUTH_REALM_AVP.bytes(),
        auth_password_avp: AUTH_PASSWORD_AVP.bytes(),
        reg_db_url: REG_DB_URL.bytes(),
        reg_db_table: REG_DB_TABLE.bytes().unwrap_or(d.reg_db_table),
        reg_contact_addr: REG_CONTACT_ADDR.bytes(),
        reg_timer_interval: REG_TIMER_INTERVAL.get(),
        reg_retry_interval: REG_RETRY_INTERVAL.get(),
        reg_keep_callid: REG_KEEP_CALLID.get(),
        reg_random_delay: REG_RANDOM_DELAY.get(),
        reg_active: REG_ACTIVE.get(),
        reg_gc_interval: REG_GC_INTERVAL.get(),
        reg_hash_size: REG_HASH_SIZE.get(),
        reg_use_domain: REG_USE_DOMAIN.get(),
        default_socket: DEFAULT_SOCKET.bytes(),
        event_callback: EVENT_CALLBACK.bytes(),
        reload_delta: RELOAD_DELTA.get(),
        reg_send_window: REG_SEND_WINDOW.get(),
        reg_rpc_show_secrets: REG_RPC_SHOW_SECRETS.get(),
        reg_retry_interval_temporary: REG_RETRY_INTERVAL_TEMPORARY.get(),
        reg_retry_interval_auth: REG_RETRY_INTERVAL_AUTH.get(),
        reg_retry_interval_fatal: REG_RETRY_INTERVAL_FATAL.get(),
        reg_retry_backoff_max: REG_RETRY_BACKOFF_MAX.get(),
        reg_retry_max_attempts: REG_RETRY_MAX_ATTEMPTS.get(),
        reg_refresh_percent: REG_REFRESH_PERCENT.get(),
        reg_cluster: REG_CLUSTER.get(),
    }
}

// ---------------------------------------------------------------------------
// The tables.

/// A C array exported to the core; `static mut` like the C module's tables.
#[repr(transparent)]
pub struct Table<T, const N: usize>(pub [T; N]);

const fn cmd(
    name: &'static std::ffi::CStr,
    function: sys::cmd_function,
    param_no: c_int,
    fixup: sys::fixup_function,
    free_fixup: sys::fixup_function,
    flags: u32,
) -> sys::cmd_export_t {
    sys::cmd_export_t {
        name: name.as_ptr() as *mut c_char,
        function,
        param_no,
        fixup,
        free_fixup,
        flags,
    }
}

const fn param(name: &'static std::ffi::CStr, type_: u32, ptr: *mut c_void) -> sys::param_export_t {
    sys::param_export_t {
        name: name.as_ptr() as *mut c_char,
        type_,
        param_pointer: ptr,
    }
}

/// `PARAM_USE_FUNC` (`1U << (8*sizeof(int)-1)`), which bindgen cannot evaluate.
const PARAM_USE_FUNC: u32 = 1 << 31;

const REQ_BRANCH: u32 = sys::REQUEST_ROUTE | sys::BRANCH_ROUTE;
// EVENT_ROUTE: `event_route[tm:branch-failure:...]` in a native cfg (C 5.7+).
const FAIL_ROUTES: u32 = sys::FAILURE_ROUTE | sys::BRANCH_FAILURE_ROUTE | sys::EVENT_ROUTE;
const REQ_FAIL_BRANCH: u32 = sys::REQUEST_ROUTE | sys::FAILURE_ROUTE | sys::BRANCH_ROUTE;

#[rustfmt::skip]
static mut CMDS: Table<sys::cmd_export_t, 21> = Table([
    // 4.1 uac_replace_from(display, uri)
    cmd(c"uac_replace_from", Some(replace::w_replace_from), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), REQ_BRANCH),
    // 4.2 uac_replace_from(uri)
    cmd(c"uac_replace_from", Some(replace::w_replace_from), 1, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), REQ_BRANCH),
    // 4.3 uac_restore_from()
    cmd(c"uac_restore_from", Some(replace::w_restore_from), 0, None, None, sys::REQUEST_ROUTE),
    // 4.4 uac_replace_to(display, uri)
    cmd(c"uac_replace_to", Some(replace::w_replace_to), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), REQ_BRANCH),
    // 4.5 uac_replace_to(uri)
    cmd(c"uac_replace_to", Some(replace::w_replace_to), 1, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), REQ_BRANCH),
    // 4.6 uac_restore_to()
    cmd(c"uac_restore_to", Some(replace::w_restore_to), 0, None, None, sys::REQUEST_ROUTE),
    // 4.7 uac_auth()
    cmd(c"uac_auth", Some(auth::w_uac_auth), 0, None, None, FAIL_ROUTES),
    // 4.7 uac_auth(mode)
    cmd(c"uac_auth", Some(auth::w_uac_auth_mode), 1, Some(sys::fixup_igp_null), Some(sys::fixup_free_igp_null), FAIL_ROUTES),
    // uac_auth_mode(mode) (C module 5.6.3)
    cmd(c"uac_auth_mode", Some(auth::w_uac_auth_mode), 1, Some(sys::fixup_igp_null), Some(sys::fixup_free_igp_null), FAIL_ROUTES),
    // 4.8 uac_req_send()
    cmd(c"uac_req_send", Some(send::w_uac_req_send), 0, None, None, sys::ANY_ROUTE),
    // 4.9 uac_reg_lookup(uuid, dst)
    cmd(c"uac_reg_lookup", Some(reg::w_uac_reg_lookup), 2, Some(sys::fixup_spve_pvar), Some(sys::fixup_free_spve_pvar), sys::ANY_ROUTE),
    // uac_reg_lookup_uri(uri, dst) (C module 5.6.3)
    cmd(c"uac_reg_lookup_uri", Some(reg::w_uac_reg_lookup_uri), 2, Some(sys::fixup_spve_pvar), Some(sys::fixup_free_spve_pvar), sys::ANY_ROUTE),
    // 4.10 uac_reg_status(uuid)
    cmd(c"uac_reg_status", Some(reg::w_uac_reg_status), 1, Some(sys::fixup_spve_null), None, sys::ANY_ROUTE),
    // 4.11 uac_reg_request_to(user, mode)
    cmd(c"uac_reg_request_to", Some(reg::w_uac_reg_request_to), 2, Some(sys::fixup_spve_igp), Some(sys::fixup_free_spve_igp), REQ_FAIL_BRANCH),
    // uac_reg_enable(attr, val) (C module 5.6.3)
    cmd(c"uac_reg_enable", Some(reg::w_uac_reg_enable), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), sys::ANY_ROUTE),
    // uac_reg_disable(attr, val) (C module 5.6.3)
    cmd(c"uac_reg_disable", Some(reg::w_uac_reg_disable), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), sys::ANY_ROUTE),
    // uac_reg_refresh(l_uuid) (C module 5.6.3)
    cmd(c"uac_reg_refresh", Some(reg::w_uac_reg_refresh), 1, Some(sys::fixup_spve_null), Some(sys::fixup_free_spve_null), sys::ANY_ROUTE),
    // uac_reg_send_register(attr, val) (C module 6.0; offered on every release)
    cmd(c"uac_reg_send_register", Some(reg::w_uac_reg_send_register), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), sys::ANY_ROUTE),
    // uac_reg_send_unregister(attr, val) (C module 6.0; offered on every release)
    cmd(c"uac_reg_send_unregister", Some(reg::w_uac_reg_send_unregister), 2, Some(sys::fixup_spve_spve), Some(sys::fixup_free_spve_spve), sys::ANY_ROUTE),
    // bind_uac: the API other modules load (load_uac_api)
    cmd(c"bind_uac", send::BIND_UAC, 1, None, None, 0),
    sys::cmd_export_t { name: null_mut(), function: None, param_no: 0, fixup: None, free_fixup: None, flags: 0 },
]);

static mut PARAMS: Table<sys::param_export_t, 36> = Table([
    // 3.1
    param(c"rr_from_store_param", sys::PARAM_STR, RR_FROM_PARAM.ptr()),
    // 3.2
    param(c"rr_to_store_param", sys::PARAM_STR, RR_TO_PARAM.ptr()),
    // 3.3
    param(c"restore_mode", sys::PARAM_STRING, RESTORE_MODE.ptr()),
    // 3.4
    param(c"restore_dlg", sys::PARAM_INT, RESTORE_DLG.ptr()),
    // 3.5
    param(c"restore_passwd", sys::PARAM_STR, RESTORE_PASSWD.ptr()),
    // ours: authenticated RR parameter format for new dialogs (README: From/To replacement)
    param(c"restore_secure", sys::PARAM_INT, RESTORE_SECURE.ptr()),
    // 3.6
    param(c"restore_from_avp", sys::PARAM_STR, RESTORE_FROM_AVP.ptr()),
    // 3.7
    param(c"restore_to_avp", sys::PARAM_STR, RESTORE_TO_AVP.ptr()),
    // 3.8 (repeatable)
    param(
        c"credential",
        sys::PARAM_STRING | PARAM_USE_FUNC,
        add_credential as *mut c_void,
    ),
    // 3.10
    param(
        c"auth_username_avp",
        sys::PARAM_STRING,
        AUTH_USERNAME_AVP.ptr(),
    ),
    // 3.9
    param(c"auth_realm_avp", sys::PARAM_STRING, AUTH_REALM_AVP.ptr()),
    // 3.11
    param(
        c"auth_password_avp",
        sys::PARAM_STRING,
        AUTH_PASSWORD_AVP.ptr(),
    ),
    // 3.12
    param(c"reg_db_url", sys::PARAM_STR, REG_DB_URL.ptr()),
    // 3.16
    param(c"reg_db_table", sys::PARAM_STR, REG_DB_TABLE.ptr()),
    // 3.17
    param(c"reg_contact_addr", sys::PARAM_STR, REG_CONTACT_ADDR.ptr()),
    // 3.13 (int, as in the C code)
    param(
        c"reg_timer_interval",
        sys::PARAM_INT,
        REG_TIMER_INTERVAL.ptr(),
    ),
    // 3.14
    param(
        c"reg_retry_interval",
        sys::PARAM_INT,
        REG_RETRY_INTERVAL.ptr(),
    ),
    // 3.18 (int, as in the C code)
    param(c"reg_keep_callid", sys::PARAM_INT, REG_KEEP_CALLID.ptr()),
    // 3.15
    param(c"reg_random_delay", sys::PARAM_INT, REG_RANDOM_DELAY.ptr()),
    // C module 5.6.3
    param(c"reg_active", sys::PARAM_INT, REG_ACTIVE.ptr()),
    param(c"reg_gc_interval", sys::PARAM_INT, REG_GC_INTERVAL.ptr()),
    param(c"reg_hash_size", sys::PARAM_INT, REG_HASH_SIZE.ptr()),
    param(c"reg_use_domain", sys::PARAM_INT, REG_USE_DOMAIN.ptr()),
    param(c"default_socket", sys::PARAM_STR, DEFAULT_SOCKET.ptr()),
    param(c"event_callback", sys::PARAM_STR, EVENT_CALLBACK.ptr()),
    // C module 6.0 (offered on every release): min seconds between uac.reg_reload;
    // default 0 here, 30 in C (README: `reload_delta`)
    param(c"reload_delta", sys::PARAM_INT, RELOAD_DELTA.ptr()),
    param(c"reg_send_window", sys::PARAM_INT, REG_SEND_WINDOW.ptr()),
    // new: show secrets in uac.reg_dump / uac.reg_info (README: Parameters, RPC)
    param(
        c"reg_rpc_show_secrets",
        sys::PARAM_INT,
        REG_RPC_SHOW_SECRETS.ptr(),
    ),
    // new: retry interval of temporary failures, -1 = reg_retry_interval (README: Retry classes)
    param(
        c"reg_retry_interval_temporary",
        sys::PARAM_INT,
        REG_RETRY_INTERVAL_TEMPORARY.ptr(),
    ),
    // new: retry interval after rejected credentials, -1 = reg_retry_interval (README: Retry classes)
    param(
        c"reg_retry_interval_auth",
        sys::PARAM_INT,
        REG_RETRY_INTERVAL_AUTH.ptr(),
    ),
    // new: retry interval of fatal failures, -1 = reg_retry_interval (README: Retry classes)
    param(
        c"reg_retry_interval_fatal",
        sys::PARAM_INT,
        REG_RETRY_INTERVAL_FATAL.ptr(),
    ),
    // new: cap of the exponential backoff, 0 = off (README: Retry classes)
    param(
        c"reg_retry_backoff_max",
        sys::PARAM_INT,
        REG_RETRY_BACKOFF_MAX.ptr(),
    ),
    // new: consecutive failures before the record is disabled, 0 = no limit (README: Retry classes)
    param(
        c"reg_retry_max_attempts",
        sys::PARAM_INT,
        REG_RETRY_MAX_ATTEMPTS.ptr(),
    ),
    // new: refresh at this % of the granted expiry, 0 = as C (README: Retry classes)
    param(
        c"reg_refresh_percent",
        sys::PARAM_INT,
        REG_REFRESH_PERCENT.ptr(),
    ),
    // new: share the accounts among the active DMQ nodes (README: Cluster)
    param(c"reg_cluster", sys::PARAM_INT, REG_CLUSTER.ptr()),
    sys::param_export_t {
        name: null_mut(),
        type_: 0,
        param_pointer: null_mut(),
    },
]);

static mut PVS: Table<sys::pv_export_t, 3> = Table([
    // 5. $uac_req(key)
    sys::pv_export_t {
        name: str_lit(c"uac_req"),
        type_: sys::PVT_OTHER,
        getf: Some(send::pv_get_uac_req),
        setf: Some(send::pv_set_uac_req),
        parse_name: Some(send::pv_parse_uac_req_name),
        parse_index: None,
        init_param: None,
        iparam: 0,
    },
    // $uac_reg_event(key): read-only, set while event_route[uac:reg] runs (our addition)
    sys::pv_export_t {
        name: str_lit(c"uac_reg_event"),
        type_: sys::PVT_OTHER,
        getf: Some(reg::pv_get_uac_reg_event),
        setf: None,
        parse_name: Some(reg::pv_parse_uac_reg_event_name),
        parse_index: None,
        init_param: None,
        iparam: 0,
    },
    sys::pv_export_t {
        name: unset_str(),
        type_: 0,
        getf: None,
        setf: None,
        parse_name: None,
        parse_index: None,
        init_param: None,
        iparam: 0,
    },
]);

/// The module interface the core looks up with dlsym("exports").
#[unsafe(no_mangle)]
pub static mut exports: sys::module_exports = sys::module_exports {
    name: c"uac".as_ptr() as *mut c_char,
    dlflags: sys::DEFAULT_DLFLAGS,
    cmds: (&raw mut CMDS).cast(),
    params: (&raw mut PARAMS).cast(),
    rpc_methods: null_mut(), // registered in mod_init, as the C module does
    pv_items: (&raw mut PVS).cast(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(mod_destroy),
};

// ---------------------------------------------------------------------------
// Lifecycle.

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The validated configuration (set in mod_init, before the fork).
pub fn config() -> Option<&'static Config> {
    CONFIG.get()
}

/// Parses a PV modparam, naming the modparam when the core refuses it.
fn parse_pv_param(param: &str, text: &[u8], want_avp: bool) -> Result<PvSpec, ()> {
    let Some(spec) = PvSpec::parse(text) else {
        kerr!(
            "invalid modparam \"{param}\": malformed PV definition '{}'",
            Bytes(text)
        );
        return Err(());
    };
    if want_avp && spec.pv_type() != sys::PVT_AVP {
        kerr!(
            "invalid modparam \"{param}\": '{}' is not an AVP",
            Bytes(text)
        );
        return Err(());
    }
    if !spec.is_writable() {
        kerr!(
            "invalid modparam \"{param}\": '{}' cannot be assigned",
            Bytes(text)
        );
        return Err(());
    }
    Ok(spec)
}

entry! {
    /// `init_mod_f`: validates the modparams, binds tm / rr / dialog and sets up
    /// each feature; -1 refuses to start, as the C module's `mod_init`.
    fn mod_init() -> c_int as "mod_init" {
        guard::install_panic_hook();
        match init() {
            Ok(()) => 0,
            Err(()) => -1,
        }
    }
}

fn init() -> Result<(), ()> {
    let cfg = Config::from_raw(&raw_params()).map_err(|e| kerr!("{e}"))?;

    if let Some(a) = &cfg.auth_avps {
        parse_pv_param("auth_username_avp", &a.username, false)?;
        parse_pv_param("auth_realm_avp", &a.realm, false)?;
        parse_pv_param("auth_password_avp", &a.password, false)?;
    }
    if cfg.needs_rr() {
        if let Some(a) = &cfg.restore_from_avp {
            parse_pv_param("restore_from_avp", a, true)?;
        }
        if let Some(a) = &cfg.restore_to_avp {
            parse_pv_param("restore_to_avp", a, true)?;
        }
    }

    api::bind_tm().map_err(|e| kerr!("{e}"))?;
    if cfg.needs_rr() {
        api::bind_rr().map_err(|e| kerr!("restore_mode needs rr: {e}"))?;
        if cfg.needs_append_fromtag() && !api::rr().is_some_and(|rr| rr.append_fromtag()) {
            kerr!(
                "invalid modparam \"restore_mode\": auto restore needs \
                 modparam(\"rr\", \"append_fromtag\", 1) (or restore_dlg=1 with dialog)"
            );
            return Err(());
        }
    }
    if cfg.needs_dialog() {
        api::bind_dlg().map_err(|e| kerr!("invalid modparam \"restore_dlg\": {e}"))?;
    }

    let cfg = CONFIG.get_or_init(|| cfg);
    replace::init(cfg)?;
    auth::init(cfg)?;
    send::init(cfg)?;
    reg::init(cfg)?;
    Ok(())
}

entry! {
    /// `init_child_f`: forks the registration timer process from PROC_MAIN.
    fn child_init(rank: c_int) -> c_int as "child_init" {
        match config() {
            Some(cfg) => match reg::child_init(cfg, rank) {
                Ok(()) => 0,
                Err(()) => -1,
            },
            None => 0,
        }
    }

    /// `destroy_mod_f`: nothing to free (shm goes with the core's pool).
    fn mod_destroy() as "mod_destroy" {
        reg::destroy();
    }
}
