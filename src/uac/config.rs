//! The module parameters, validated once in mod_init into an immutable
//! [`Config`]. Pure: no Kamailio calls, so every refusal is unit-tested.
//!
//! Checks that need the core (PV specs, sockets, the rr/dialog modules) are
//! done by the caller after [`Config::from_raw`].

use std::fmt;

use crate::sip::{digest, lex};
use crate::uac::reg::state::RetryPolicy;

/// Modparam values exactly as the script set them (defaults of the C module
/// 5.6.3 where unset).
#[derive(Debug, Clone)]
pub struct RawParams {
    pub rr_from_store_param: Vec<u8>,
    pub rr_to_store_param: Vec<u8>,
    pub restore_mode: Option<Vec<u8>>,
    pub restore_dlg: i32,
    pub restore_passwd: Vec<u8>,
    pub restore_secure: i32,
    pub restore_from_avp: Option<Vec<u8>>,
    pub restore_to_avp: Option<Vec<u8>>,
    pub credentials: Vec<Vec<u8>>,
    pub auth_username_avp: Option<Vec<u8>>,
    pub auth_realm_avp: Option<Vec<u8>>,
    pub auth_password_avp: Option<Vec<u8>>,
    pub reg_db_url: Option<Vec<u8>>,
    pub reg_db_table: Vec<u8>,
    pub reg_contact_addr: Option<Vec<u8>>,
    pub reg_timer_interval: i32,
    pub reg_retry_interval: i32,
    pub reg_keep_callid: i32,
    pub reg_random_delay: i32,
    pub reg_active: i32,
    pub reg_gc_interval: i32,
    pub reg_hash_size: i32,
    pub reg_use_domain: i32,
    pub default_socket: Option<Vec<u8>>,
    pub event_callback: Option<Vec<u8>>,
    pub reload_delta: i32,
    pub reg_send_window: i32,
    pub reg_rpc_show_secrets: i32,
    /// Retry classes (README "Retry classes"): -1 = `reg_retry_interval`.
    pub reg_retry_interval_temporary: i32,
    pub reg_retry_interval_auth: i32,
    pub reg_retry_interval_fatal: i32,
    pub reg_retry_backoff_max: i32,
    pub reg_retry_max_attempts: i32,
    pub reg_refresh_percent: i32,
    pub reg_cluster: i32,
}

impl Default for RawParams {
    fn default() -> Self {
        RawParams {
            rr_from_store_param: b"vsf".to_vec(),
            rr_to_store_param: b"vst".to_vec(),
            restore_mode: None,
            restore_dlg: 0,
            restore_passwd: Vec::new(),
            restore_secure: 0,
            restore_from_avp: None,
            restore_to_avp: None,
            credentials: Vec::new(),
            auth_username_avp: None,
            auth_realm_avp: None,
            auth_password_avp: None,
            reg_db_url: None,
            reg_db_table: b"uacreg".to_vec(),
            reg_contact_addr: None,
            reg_timer_interval: 90,
            reg_retry_interval: 0,
            reg_keep_callid: 0,
            reg_random_delay: 0,
            reg_active: 1,
            reg_gc_interval: 150,
            reg_hash_size: 4,
            reg_use_domain: 0,
            default_socket: None,
            event_callback: None,
            // C's default is 30, a guard against its crash on concurrent
            // reloads; ours serialises reloads, so no limit unless asked for.
            reload_delta: 0,
            reg_send_window: DEFAULT_SEND_WINDOW as i32,
            reg_rpc_show_secrets: 0,
            // New; every default keeps the C module's behaviour.
            reg_retry_interval_temporary: -1,
            reg_retry_interval_auth: -1,
            reg_retry_interval_fatal: -1,
            reg_retry_backoff_max: 0,
            reg_retry_max_attempts: 0,
            reg_refresh_percent: 0,
            reg_cluster: 0,
        }
    }
}

/// `restore_mode` (admin guide 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    None,
    Manual,
    Auto,
}

/// The three auth PV names, all set or none (admin guide 3.9-3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAvps {
    pub username: Vec<u8>,
    pub realm: Vec<u8>,
    pub password: Vec<u8>,
}

/// Remote registration settings; present only with `reg_db_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegConfig {
    pub db_url: Vec<u8>,
    pub db_table: Vec<u8>,
    pub contact_addr: Vec<u8>,
    pub timer_interval: u32,
    pub retry_interval: u32,
    pub keep_callid: bool,
    pub random_delay: u32,
    pub active: bool,
    pub gc_interval: u32,
    /// Number of hash slots (2^reg_hash_size, clamped to 2..14 as in C).
    pub hash_slots: u32,
    pub use_domain: bool,
    /// `reg_rpc_show_secrets`: print auth_password/auth_ha1 in uac.reg_dump/reg_info.
    pub rpc_show_secrets: bool,
    /// `reload_delta`: seconds a `uac.reg_reload` is refused after the last
    /// successful one; 0 = no limit.
    pub reload_delta: u32,
    /// `reg_send_window`: REGISTERs waiting for a final reply at most (0: no limit).
    pub send_window: u32,
    /// `reg_retry_interval_{temporary,auth,fatal}`, `reg_retry_backoff_max`,
    /// `reg_retry_max_attempts`.
    pub retry: RetryPolicy,
    /// `reg_refresh_percent`: 0 = the C margin, else 1..=99.
    pub refresh_percent: u32,
    /// `reg_cluster`: share the accounts among the active DMQ nodes (needs dmq).
    pub cluster: bool,
}

/// Default `reg_send_window`: enough for thousands of registrations per second
/// to a nearby registrar, few enough that their replies fit a default UDP
/// receive buffer.
pub const DEFAULT_SEND_WINDOW: u32 = 256;

/// The validated configuration, immutable after mod_init.
#[derive(Debug, Clone)]
pub struct Config {
    pub rr_from_param: Vec<u8>,
    pub rr_to_param: Vec<u8>,
    pub restore_mode: RestoreMode,
    pub restore_dlg: bool,
    pub restore_passwd: Vec<u8>,
    /// New dialogs use the authenticated RR parameter format (ours).
    pub restore_secure: bool,
    pub restore_from_avp: Option<Vec<u8>>,
    pub restore_to_avp: Option<Vec<u8>>,
    pub credentials: Vec<Vec<u8>>,
    pub auth_avps: Option<AuthAvps>,
    pub reg: Option<RegConfig>,
    pub default_socket: Option<Vec<u8>>,
    pub event_callback: Option<Vec<u8>>,
}

/// A refused modparam: names the parameter and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub param: &'static str,
    pub why: String,
}

impl ConfigError {
    pub fn new(param: &'static str, why: impl Into<String>) -> Self {
        ConfigError {
            param,
            why: why.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid modparam \"{}\": {}", self.param, self.why)
    }
}

impl std::error::Error for ConfigError {}

fn non_empty(v: &Option<Vec<u8>>) -> Option<Vec<u8>> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn non_negative(param: &'static str, v: i32) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| ConfigError::new(param, format!("must be >= 0, got {v}")))
}

/// A per-class retry interval: -1 (the default) = `reg_retry_interval`, else seconds
/// (0 disables the record on a failure of that class).
fn class_interval(param: &'static str, v: i32) -> Result<Option<u32>, ConfigError> {
    match v {
        -1 => Ok(None),
        v => u32::try_from(v).map(Some).map_err(|_| {
            ConfigError::new(
                param,
                format!("must be -1 (use reg_retry_interval) or >= 0 seconds, got {v}"),
            )
        }),
    }
}

/// The retry policy and refresh share, checked whether or not `reg_db_url` is set.
fn retry_params(raw: &RawParams) -> Result<(RetryPolicy, u32), ConfigError> {
    let retry = RetryPolicy {
        temporary: class_interval(
            "reg_retry_interval_temporary",
            raw.reg_retry_interval_temporary,
        )?,
        auth: class_interval("reg_retry_interval_auth", raw.reg_retry_interval_auth)?,
        fatal: class_interval("reg_retry_interval_fatal", raw.reg_retry_interval_fatal)?,
        backoff_max: non_negative("reg_retry_backoff_max", raw.reg_retry_backoff_max)?,
        max_attempts: non_negative("reg_retry_max_attempts", raw.reg_retry_max_attempts)?,
    };
    let percent = raw.reg_refresh_percent;
    if !(0..=99).contains(&percent) {
        return Err(ConfigError::new(
            "reg_refresh_percent",
            format!(
                "must be 0 (refresh as the C module does) or 1..99 (% of the granted \
                 expiry), got {percent}"
            ),
        ));
    }
    Ok((retry, percent as u32))
}

fn boolean(param: &'static str, v: i32) -> Result<bool, ConfigError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ConfigError::new(param, format!("must be 0 or 1, got {v}"))),
    }
}

impl Config {
    /// Validates the raw values as the C module's mod_init does, and more.
    pub fn from_raw(raw: &RawParams) -> Result<Config, ConfigError> {
        let restore_mode = match raw.restore_mode.as_deref() {
            None | Some(b"") => RestoreMode::Auto,
            Some(m) if m.eq_ignore_ascii_case(b"none") => RestoreMode::None,
            Some(m) if m.eq_ignore_ascii_case(b"manual") => RestoreMode::Manual,
            Some(m) if m.eq_ignore_ascii_case(b"auto") => RestoreMode::Auto,
            Some(m) => {
                return Err(ConfigError::new(
                    "restore_mode",
                    format!(
                        "unsupported value '{}' (use none, manual or auto)",
                        lossy(m)
                    ),
                ));
            }
        };
        if restore_mode != RestoreMode::None {
            for (name, v) in [
                ("rr_from_store_param", &raw.rr_from_store_param),
                ("rr_to_store_param", &raw.rr_to_store_param),
            ] {
                if !lex::is_token(v) {
                    return Err(ConfigError::new(
                        name,
                        format!(
                            "'{}' is not a valid Record-Route parameter name (must be a \
                             non-empty token when restore_mode is not none)",
                            lossy(v)
                        ),
                    ));
                }
            }
            if raw.rr_from_store_param == raw.rr_to_store_param {
                return Err(ConfigError::new(
                    "rr_to_store_param",
                    "must differ from rr_from_store_param",
                ));
            }
        }
        let restore_dlg = boolean("restore_dlg", raw.restore_dlg)?;
        let restore_secure = boolean("restore_secure", raw.restore_secure)?;
        if restore_secure && raw.restore_passwd.is_empty() {
            return Err(ConfigError::new(
                "restore_secure",
                "needs restore_passwd (the key)",
            ));
        }

        let auth_avps = match (
            non_empty(&raw.auth_username_avp),
            non_empty(&raw.auth_realm_avp),
            non_empty(&raw.auth_password_avp),
        ) {
            (None, None, None) => None,
            (Some(username), Some(realm), Some(password)) => Some(AuthAvps {
                username,
                realm,
                password,
            }),
            (u, r, p) => {
                let missing: Vec<&str> = [
                    ("auth_username_avp", u.is_none()),
                    ("auth_realm_avp", r.is_none()),
                    ("auth_password_avp", p.is_none()),
                ]
                .iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| *n)
                .collect();
                return Err(ConfigError::new(
                    if u.is_none() {
                        "auth_username_avp"
                    } else if r.is_none() {
                        "auth_realm_avp"
                    } else {
                        "auth_password_avp"
                    },
                    format!(
                        "partial definition of auth AVPs: all three must be set, missing {}",
                        missing.join(", ")
                    ),
                ));
            }
        };

        for c in &raw.credentials {
            validate_credential(c)?;
        }

        let reg = match non_empty(&raw.reg_db_url) {
            None => None,
            Some(db_url) => {
                let contact_addr = non_empty(&raw.reg_contact_addr).ok_or_else(|| {
                    ConfigError::new("reg_contact_addr", "must be set when reg_db_url is set")
                })?;
                if contact_addr.len() >= 4 && contact_addr[..4].eq_ignore_ascii_case(b"sip:") {
                    return Err(ConfigError::new(
                        "reg_contact_addr",
                        "must not include 'sip:' (give host[:port][;params])",
                    ));
                }
                if contact_addr
                    .iter()
                    .any(|&c| c <= b' ' || c == b'<' || c == b'>' || c == 0x7f)
                {
                    return Err(ConfigError::new(
                        "reg_contact_addr",
                        "must not contain spaces, control characters or <>",
                    ));
                }
                if raw.reg_db_table.is_empty() {
                    return Err(ConfigError::new("reg_db_table", "must not be empty"));
                }
                let timer_interval = non_negative("reg_timer_interval", raw.reg_timer_interval)?;
                if timer_interval == 0 {
                    return Err(ConfigError::new(
                        "reg_timer_interval",
                        "must be >= 1 second",
                    ));
                }
                let hash_size = raw.reg_hash_size;
                if hash_size < 0 {
                    return Err(ConfigError::new(
                        "reg_hash_size",
                        format!("must be >= 0, got {hash_size}"),
                    ));
                }
                let (retry, refresh_percent) = retry_params(raw)?;
                Some(RegConfig {
                    db_url,
                    db_table: raw.reg_db_table.clone(),
                    contact_addr,
                    timer_interval,
                    retry_interval: non_negative("reg_retry_interval", raw.reg_retry_interval)?,
                    keep_callid: raw.reg_keep_callid != 0,
                    random_delay: non_negative("reg_random_delay", raw.reg_random_delay)?,
                    active: boolean("reg_active", raw.reg_active)?,
                    gc_interval: non_negative("reg_gc_interval", raw.reg_gc_interval)?,
                    hash_slots: 1u32 << hash_size.clamp(2, 14),
                    use_domain: boolean("reg_use_domain", raw.reg_use_domain)?,
                    rpc_show_secrets: raw.reg_rpc_show_secrets != 0,
                    reload_delta: non_negative("reload_delta", raw.reload_delta)?,
                    send_window: non_negative("reg_send_window", raw.reg_send_window)?,
                    retry,
                    refresh_percent,
                    cluster: boolean("reg_cluster", raw.reg_cluster)?,
                })
            }
        };
        // Checked also without reg_db_url: a negative value is a typo either way.
        non_negative("reg_timer_interval", raw.reg_timer_interval)?;
        non_negative("reg_retry_interval", raw.reg_retry_interval)?;
        non_negative("reg_random_delay", raw.reg_random_delay)?;
        non_negative("reg_gc_interval", raw.reg_gc_interval)?;
        non_negative("reload_delta", raw.reload_delta)?;
        non_negative("reg_send_window", raw.reg_send_window)?;
        boolean("reg_cluster", raw.reg_cluster)?;
        retry_params(raw)?;

        let event_callback = non_empty(&raw.event_callback);
        if let Some(cb) = &event_callback
            && !cb
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            {
                return Err(ConfigError::new(
                    "event_callback",
                    format!("'{}' is not a KEMI function name", lossy(cb)),
                ));
            }
        }

        Ok(Config {
            rr_from_param: raw.rr_from_store_param.clone(),
            rr_to_param: raw.rr_to_store_param.clone(),
            restore_mode,
            restore_dlg,
            restore_passwd: raw.restore_passwd.clone(),
            restore_secure,
            restore_from_avp: non_empty(&raw.restore_from_avp),
            restore_to_avp: non_empty(&raw.restore_to_avp),
            credentials: raw.credentials.clone(),
            auth_avps,
            reg,
            default_socket: non_empty(&raw.default_socket),
            event_callback,
        })
    }

    /// Whether the rr module must be bound (C: any restore mode but none).
    pub fn needs_rr(&self) -> bool {
        self.restore_mode != RestoreMode::None
    }

    /// Whether auto restore keeps its state in the Record-Route parameter
    /// (then rr's append_fromtag is required).
    pub fn needs_append_fromtag(&self) -> bool {
        self.restore_mode == RestoreMode::Auto && !self.restore_dlg
    }

    /// Whether the dialog module must be bound.
    pub fn needs_dialog(&self) -> bool {
        self.restore_dlg && self.restore_mode != RestoreMode::None
    }
}

/// `credential` = `username:realm:password` (admin guide 3.8), with the C
/// module's rules: no empty part, no whitespace inside a part. Checked by the
/// parser `mod_init` uses ([`digest::parse_credential`]), so a value accepted
/// here is never refused there.
pub fn validate_credential(c: &[u8]) -> Result<(), ConfigError> {
    match digest::parse_credential(c) {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::new(
            "credential",
            "expected 'username:realm:password' with no empty part (value not shown)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut RawParams)) -> Result<Config, ConfigError> {
        let mut raw = RawParams::default();
        f(&mut raw);
        Config::from_raw(&raw)
    }

    #[test]
    fn defaults_match_the_c_module() {
        let c = Config::from_raw(&RawParams::default()).expect("defaults are valid");
        assert_eq!(c.rr_from_param, b"vsf");
        assert_eq!(c.rr_to_param, b"vst");
        assert_eq!(c.restore_mode, RestoreMode::Auto);
        assert!(!c.restore_dlg);
        assert!(c.reg.is_none());
        assert!(c.needs_rr() && c.needs_append_fromtag() && !c.needs_dialog());
    }

    #[test]
    fn restore_mode_is_case_insensitive_and_checked() {
        assert_eq!(
            with(|r| r.restore_mode = Some(b"NONE".to_vec()))
                .unwrap()
                .restore_mode,
            RestoreMode::None
        );
        assert_eq!(
            with(|r| r.restore_mode = Some(b"Manual".to_vec()))
                .unwrap()
                .restore_mode,
            RestoreMode::Manual
        );
        let e = with(|r| r.restore_mode = Some(b"automatic".to_vec())).unwrap_err();
        assert_eq!(e.param, "restore_mode");
        assert!(e.to_string().contains("automatic"));
    }

    #[test]
    fn rr_params_must_be_tokens_unless_restore_is_off() {
        let e = with(|r| r.rr_from_store_param = Vec::new()).unwrap_err();
        assert_eq!(e.param, "rr_from_store_param");
        let e = with(|r| r.rr_to_store_param = b"a=b".to_vec()).unwrap_err();
        assert_eq!(e.param, "rr_to_store_param");
        let e = with(|r| r.rr_to_store_param = b"vsf".to_vec()).unwrap_err();
        assert_eq!(e.param, "rr_to_store_param");
        assert!(
            with(|r| {
                r.restore_mode = Some(b"none".to_vec());
                r.rr_from_store_param = Vec::new();
            })
            .is_ok()
        );
    }

    #[test]
    fn auth_avps_all_or_none() {
        let e = with(|r| r.auth_username_avp = Some(b"$avp(u)".to_vec())).unwrap_err();
        assert_eq!(e.param, "auth_realm_avp");
        assert!(e.why.contains("auth_password_avp"));
        let c = with(|r| {
            r.auth_username_avp = Some(b"$avp(u)".to_vec());
            r.auth_realm_avp = Some(b"$avp(r)".to_vec());
            r.auth_password_avp = Some(b"$avp(p)".to_vec());
        })
        .unwrap();
        assert_eq!(c.auth_avps.unwrap().realm, b"$avp(r)");
    }

    #[test]
    fn credentials_are_validated() {
        assert!(validate_credential(b"alice:example.com:secret").is_ok());
        assert!(validate_credential(b" alice : example.com : se:cret ").is_ok());
        for bad in [
            &b""[..],
            b"alice",
            b"alice:example.com",
            b":r:p",
            b"u::p",
            b"u:r:",
            b"u u:r:p",
        ] {
            let e = with(|r| r.credentials = vec![bad.to_vec()]).unwrap_err();
            assert_eq!(e.param, "credential", "{:?}", String::from_utf8_lossy(bad));
            assert!(!e.to_string().contains("secret"));
        }
    }

    #[test]
    fn registration_needs_contact_and_sane_numbers() {
        let db = |r: &mut RawParams| r.reg_db_url = Some(b"sqlite:///tmp/x.db".to_vec());
        assert_eq!(with(db).unwrap_err().param, "reg_contact_addr");
        let ok = with(|r| {
            db(r);
            r.reg_contact_addr = Some(b"127.0.0.1:5060".to_vec());
        })
        .unwrap();
        let reg = ok.reg.unwrap();
        assert_eq!(
            (reg.timer_interval, reg.hash_slots, reg.gc_interval),
            (90, 16, 150)
        );
        assert!(reg.active && !reg.keep_callid);
        let e = with(|r| {
            db(r);
            r.reg_contact_addr = Some(b"sip:1.2.3.4".to_vec());
        })
        .unwrap_err();
        assert_eq!(e.param, "reg_contact_addr");
        for (name, set) in [
            (
                "reg_timer_interval",
                (|r: &mut RawParams| r.reg_timer_interval = -1) as fn(&mut RawParams),
            ),
            ("reg_retry_interval", |r| r.reg_retry_interval = -5),
            ("reg_random_delay", |r| r.reg_random_delay = -1),
            ("reg_gc_interval", |r| r.reg_gc_interval = -1),
            ("reg_hash_size", |r| r.reg_hash_size = -1),
            ("reg_active", |r| r.reg_active = 2),
            ("reg_timer_interval", |r| r.reg_timer_interval = 0),
        ] {
            let e = with(|r| {
                db(r);
                r.reg_contact_addr = Some(b"127.0.0.1".to_vec());
                set(r);
            })
            .unwrap_err();
            assert_eq!(e.param, name);
        }
        let big = with(|r| {
            db(r);
            r.reg_contact_addr = Some(b"127.0.0.1".to_vec());
            r.reg_hash_size = 30;
        })
        .unwrap();
        assert_eq!(big.reg.unwrap().hash_slots, 1 << 14);
    }

    #[test]
    fn send_window_defaults_and_refuses_negative_values() {
        let db = |r: &mut RawParams| {
            r.reg_db_url = Some(b"sqlite:///tmp/x.db".to_vec());
            r.reg_contact_addr = Some(b"127.0.0.1".to_vec());
        };
        assert_eq!(
            with(db).unwrap().reg.unwrap().send_window,
            DEFAULT_SEND_WINDOW
        );
        let unlimited = with(|r| {
            db(r);
            r.reg_send_window = 0;
        });
        assert_eq!(unlimited.unwrap().reg.unwrap().send_window, 0);
        let e = with(|r| {
            db(r);
            r.reg_send_window = -1;
        });
        assert_eq!(e.unwrap_err().param, "reg_send_window");
    }

    #[test]
    fn reload_delta_defaults_to_no_limit_and_refuses_negative_values() {
        let db = |r: &mut RawParams| {
            r.reg_db_url = Some(b"sqlite:///tmp/x.db".to_vec());
            r.reg_contact_addr = Some(b"127.0.0.1".to_vec());
        };
        assert_eq!(with(db).unwrap().reg.unwrap().reload_delta, 0);
        let c = with(|r| {
            db(r);
            r.reload_delta = 30;
        })
        .unwrap();
        assert_eq!(c.reg.unwrap().reload_delta, 30);
        let e = with(|r| {
            db(r);
            r.reload_delta = -1;
        })
        .unwrap_err();
        assert_eq!(e.param, "reload_delta");
        assert!(e.to_string().contains("-1"), "{e}");
        assert_eq!(
            with(|r| r.reload_delta = -5).unwrap_err().param,
            "reload_delta",
            "a typo even without reg_db_url"
        );
    }

    #[test]
    fn negative_intervals_refused_even_without_db() {
        assert_eq!(
            with(|r| r.reg_retry_interval = -1).unwrap_err().param,
            "reg_retry_interval"
        );
    }

    #[test]
    fn restore_dlg_is_boolean() {
        assert_eq!(
            with(|r| r.restore_dlg = 7).unwrap_err().param,
            "restore_dlg"
        );
        let c = with(|r| r.restore_dlg = 1).unwrap();
        assert!(c.needs_dialog() && !c.needs_append_fromtag());
    }

    #[test]
    fn event_callback_must_be_a_function_name() {
        assert!(with(|r| r.event_callback = Some(b"ksr_uac_reply".to_vec())).is_ok());
        assert_eq!(
            with(|r| r.event_callback = Some(b"x; drop".to_vec()))
                .unwrap_err()
                .param,
            "event_callback"
        );
    }

    fn with_db(f: impl FnOnce(&mut RawParams)) -> Result<Config, ConfigError> {
        with(|r| {
            r.reg_db_url = Some(b"sqlite:///tmp/x.db".to_vec());
            r.reg_contact_addr = Some(b"127.0.0.1".to_vec());
            f(r);
        })
    }

    /// Unset, the retry-class parameters change nothing: every class uses
    /// reg_retry_interval, no backoff, no limit, the C refresh margin.
    #[test]
    fn retry_classes_default_to_the_c_behaviour() {
        let reg = with_db(|_| {}).unwrap().reg.unwrap();
        assert_eq!(reg.retry, RetryPolicy::default());
        assert_eq!(
            (reg.retry.temporary, reg.retry.auth, reg.retry.fatal),
            (None, None, None)
        );
        assert_eq!((reg.retry.backoff_max, reg.retry.max_attempts), (0, 0));
        assert_eq!(reg.refresh_percent, 0);
        assert_eq!(reg.retry_interval, 0);
    }

    #[test]
    fn retry_classes_are_read_and_checked() {
        let reg = with_db(|r| {
            r.reg_retry_interval_temporary = 5;
            r.reg_retry_interval_auth = 0;
            r.reg_retry_interval_fatal = 3600;
            r.reg_retry_backoff_max = 300;
            r.reg_retry_max_attempts = 10;
            r.reg_refresh_percent = 80;
        })
        .unwrap()
        .reg
        .unwrap();
        assert_eq!(
            reg.retry,
            RetryPolicy {
                temporary: Some(5),
                auth: Some(0),
                fatal: Some(3600),
                backoff_max: 300,
                max_attempts: 10,
            }
        );
        assert_eq!(reg.refresh_percent, 80);
        for (name, set) in [
            (
                "reg_retry_interval_temporary",
                (|r: &mut RawParams| r.reg_retry_interval_temporary = -2) as fn(&mut RawParams),
            ),
            ("reg_retry_interval_auth", |r| {
                r.reg_retry_interval_auth = -5
            }),
            ("reg_retry_interval_fatal", |r| {
                r.reg_retry_interval_fatal = i32::MIN
            }),
            ("reg_retry_backoff_max", |r| r.reg_retry_backoff_max = -1),
            ("reg_retry_max_attempts", |r| r.reg_retry_max_attempts = -1),
            ("reg_refresh_percent", |r| r.reg_refresh_percent = -1),
            ("reg_refresh_percent", |r| r.reg_refresh_percent = 100),
        ] {
            let e = with_db(set).unwrap_err();
            assert_eq!(e.param, name);
            let e2 = with(set).unwrap_err();
            assert_eq!(e2, e, "a typo even without reg_db_url");
        }
        let e = with(|r| r.reg_refresh_percent = 150).unwrap_err();
        assert!(e.to_string().contains("got 150"), "{e}");
        let e = with(|r| r.reg_retry_interval_fatal = -3).unwrap_err();
        assert!(e.to_string().contains("-1 (use reg_retry_interval)"), "{e}");
        assert!(with(|r| r.reg_refresh_percent = 99).is_ok());
        assert!(with(|r| r.reg_refresh_percent = 1).is_ok());
    }
}
