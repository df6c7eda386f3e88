//! The script functions of remote registration (admin guide 4.9-4.11, the
//! 5.6.3 additions and the 6.0 ones), shared by the cfg shims (`w_*`) and the KEMI shims (`ki_*`):
//! every function takes the routed message (when it needs one) and byte
//! strings, and returns the script code the admin guide documents.

use std::sync::OnceLock;

use crate::host::avp::SharedPv;
use crate::host::hdr_add;
use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::pv_ref::PvRef;
use crate::sip::uri::{host_part, user_part};
use crate::uac::config::Config;
use crate::uac::reg::engine::{self, OnDemand, Reg, SendNowError};
use crate::uac::reg::record::idx;

/// The auth AVPs `uac_reg_request_to` writes (auth_realm, auth_username, auth_password).
struct AuthSpecs {
    realm: SharedPv,
    username: SharedPv,
    password: SharedPv,
}
static AUTH_SPECS: OnceLock<AuthSpecs> = OnceLock::new();

/// mod_init: parses the auth AVPs `uac_reg_request_to` sets (config validated them).
pub fn init(cfg: &Config) {
    if let Some(a) = &cfg.auth_avps
        && let (Some(realm), Some(username), Some(password)) = (
            SharedPv::parse(&a.realm),
            SharedPv::parse(&a.username),
            SharedPv::parse(&a.password),
        )
    {
        let _ = AUTH_SPECS.set(AuthSpecs {
            realm,
            username,
            password,
        });
    }
}

fn reg_or_err(name: &str) -> Option<&'static Reg> {
    let r = engine::get();
    if r.is_none() {
        kerr!("{name}: uac remote registrations not enabled (reg_db_url not set)");
    }
    r
}

/// `uac_reg_lookup(uuid, dst)` (4.9) and `uac_reg_lookup_uri(uri, dst)`: writes
/// `sip:l_username@l_domain` (by l_uuid) or the l_uuid (by URI user[@host]) into `dst`.
/// 1 found, -1 not found or error, -2 unparsable URI.
pub fn lookup(msg: &mut SipMsg, src: &[u8], dst: &PvRef, by_uri: bool) -> i32 {
    let Some(reg) = reg_or_err("uac_reg_lookup") else {
        return -1;
    };
    let value = if !by_uri {
        let v = reg.table.with_key(src, |r| {
            [b"sip:", r.s(idx::L_USERNAME), b"@", r.s(idx::L_DOMAIN)].concat()
        });
        match v {
            Some(v) => v,
            None => {
                kdbg!("no uuid: {}", Bytes(src));
                return -1;
            }
        }
    } else {
        let Some(host) = host_part(src) else {
            kerr!("failed to parse uri");
            return -2;
        };
        match reg.find_user(user_part(src), Some(host)) {
            Some(k) => k,
            None => {
                kdbg!("no user: {}", Bytes(src));
                return -1;
            }
        }
    };
    if !dst.is_writable() {
        kerr!("dst is not w/");
        return -1;
    }
    if dst.set_bytes(msg, &value) { 1 } else { -1 }
}

/// `uac_reg_status(uuid)` (4.10): 1 registered, -1 unknown, -2 in progress,
/// -3 disabled, -99 other.
pub fn status(src: &[u8]) -> i32 {
    let Some(reg) = reg_or_err("uac_reg_status") else {
        return -1;
    };
    let now = engine::now();
    reg.table
        .with_key(src, |r| r.state.status(now))
        .unwrap_or_else(|| {
            kdbg!("no uuid: {}", Bytes(src));
            -1
        })
}

/// `uac_reg_request_to(user, mode)` (4.11): R-URI, dst URI (auth_proxy) and the auth
/// AVPs from a record. Mode bit 0: match l_username (else l_uuid); bit 1: put the HA1
/// in the password AVP. 1 done, -1 not found or error, -2 unparsable user URI.
pub fn request_to(msg: &mut SipMsg, src: &[u8], mode: i32) -> i32 {
    if !(0..=3).contains(&mode) {
        kerr!("invalid mode");
        return -1;
    }
    let Some(reg) = reg_or_err("uac_reg_request_to") else {
        return -1;
    };
    let key = if mode & 1 == 0 {
        Some(src.to_vec())
    } else if reg.cfg.use_domain {
        let Some(host) = host_part(src) else {
            kerr!("failed to parse uri");
            return -2;
        };
        reg.find_user(user_part(src), Some(host))
    } else {
        reg.find_user(src, None)
    };
    let secret = if mode & 2 != 0 {
        idx::AUTH_HA1
    } else {
        idx::AUTH_PASSWORD
    };
    let data = key.and_then(|k| {
        reg.table.with_key(&k, |r| {
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
        kdbg!("no user: {}", Bytes(src));
        return -1;
    };
    if hdr_add::set_request_uri(msg, &ruri).is_err() {
        kerr!("error while setting request uri");
        return -1;
    }
    if !proxy.is_empty() && !msg.set_dst_uri(&proxy) {
        kerr!("error while setting outbound proxy");
        return -1;
    }
    let Some(specs) = AUTH_SPECS.get() else {
        kerr!("uac_reg_request_to needs auth_realm_avp, auth_username_avp and auth_password_avp");
        return -1;
    };
    if !specs.realm.set(msg, &realm) {
        kerr!("error while setting auth_realm");
        return -1;
    }
    if !specs.username.set(msg, &user) {
        kerr!("error while setting auth_username");
        return -1;
    }
    if !specs.password.set(msg, &secret) {
        kerr!("error while setting auth password (mode: {})", mode & 2);
        return -1;
    }
    1
}

/// `uac_reg_enable(attr, val)` / `uac_reg_disable(attr, val)`: 1 done, -1 bad
/// arguments, -2 no such record, -3 unknown attribute.
pub fn set_disabled(attr: &[u8], val: &[u8], disable: bool) -> i32 {
    let name = if disable {
        "uac_reg_disable"
    } else {
        "uac_reg_enable"
    };
    let Some(reg) = reg_or_err(name) else {
        return -1;
    };
    if attr.is_empty() || val.is_empty() {
        kerr!("bad parameter values");
        return -1;
    }
    let rc = reg.set_disabled(attr, val, disable);
    match rc {
        -2 => kdbg!("record not found for {} = {}", Bytes(attr), Bytes(val)),
        -3 => kerr!("unsupported filter attribute {}", Bytes(attr)),
        _ => {}
    }
    rc
}

/// `uac_reg_refresh(l_uuid)`: reloads one record from the DB. 1 done, -1 otherwise.
pub fn refresh(l_uuid: &[u8]) -> i32 {
    if l_uuid.is_empty() {
        kerr!("invalid parameters");
        return -1;
    }
    let Some(reg) = reg_or_err("uac_reg_refresh") else {
        return -1;
    };
    match reg.refresh(l_uuid) {
        Ok(true) => 1,
        Ok(false) => {
            kwarn!("record not found: {}", Bytes(l_uuid));
            -1
        }
        Err(e) => {
            kwarn!("failed to refresh record: {} - {e}", Bytes(l_uuid));
            -1
        }
    }
}

/// `uac_reg_send_register(attr, val)` ([`OnDemand::Register`]) and
/// `uac_reg_send_unregister(attr, val)` ([`OnDemand::Unregister`]): sends the
/// REGISTER for the record the filter matches now. 1 sent; -1 no such record,
/// unknown attribute, or tm refused the request (each logged at ERR).
pub fn send_now(attr: &[u8], val: &[u8], what: OnDemand) -> i32 {
    let name = match what {
        OnDemand::Register => "uac_reg_send_register",
        OnDemand::Unregister => "uac_reg_send_unregister",
    };
    let Some(reg) = reg_or_err(name) else {
        return -1;
    };
    // The C module's messages, with the filter that failed.
    let key = match reg.find(attr, val) {
        Ok(Some(key)) => key,
        Ok(None) => {
            kerr!("Record not found: {} = {}", Bytes(attr), Bytes(val));
            return -1;
        }
        Err(()) => {
            kerr!("Unsupported filter attribute {}", Bytes(attr));
            return -1;
        }
    };
    match reg.send_now(&key, what) {
        Ok(()) => 1,
        Err(SendNowError::NotFound) => {
            kerr!("Record not found: {} = {}", Bytes(attr), Bytes(val));
            -1
        }
        // engine::send logged tm's error.
        Err(SendNowError::NotSent) => -1,
    }
}
