//! The script functions of remote registration (admin guide 4.9-4.11, the
//! 5.6.3 additions and the 6.0 ones), shared by the cfg shims (`w_*`) and the KEMI shims (`ki_*`):
//! every function takes the routed message (when it needs one) and byte
//! strings, and returns a [`RegError`] on failure; `ffi::reg` turns the outcome into the
//! script code the admin guide documents.

use std::sync::OnceLock;

use crate::host::log::Bytes;
use crate::host::msg::SipMsg;
use crate::host::msg::hdr_add;
use crate::host::script::avp::SharedPv;
use crate::host::script::pv_ref::PvRef;
use crate::sip::uri::{host_part, user_part};
use crate::uac::config::Config;
use crate::uac::reg::engine::{self, OnDemand, Reg, RegError};
use crate::uac::reg::record::idx;
use crate::uac::reg::state::RegStatus;

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

fn reg_or_err(name: &str) -> Result<&'static Reg, RegError> {
    engine::get().ok_or_else(|| {
        kerr!("{name}: {}", RegError::NotEnabled);
        RegError::NotEnabled
    })
}

/// `uac_reg_lookup(uuid, dst)` (4.9) and `uac_reg_lookup_uri(uri, dst)`: writes
/// `sip:l_username@l_domain` (by l_uuid) or the l_uuid (by URI user[@host]) into `dst`.
/// [`RegError::BadUri`] for an unparsable URI.
pub fn lookup(msg: &mut SipMsg, src: &[u8], dst: &PvRef, by_uri: bool) -> Result<(), RegError> {
    let reg = reg_or_err("uac_reg_lookup")?;
    let value = if !by_uri {
        let v = reg.table.with_key(src, |r| {
            [b"sip:", r.s(idx::L_USERNAME), b"@", r.s(idx::L_DOMAIN)].concat()
        });
        match v {
            Some(v) => v,
            None => {
                kdbg!("no uuid: {}", Bytes(src));
                return Err(RegError::NotFound);
            }
        }
    } else {
        let Some(host) = host_part(src) else {
            kerr!("{}", RegError::BadUri);
            return Err(RegError::BadUri);
        };
        match reg.find_user(user_part(src), Some(host)) {
            Some(k) => k,
            None => {
                kdbg!("no user: {}", Bytes(src));
                return Err(RegError::NotFound);
            }
        }
    };
    if !dst.is_writable() {
        kerr!("dst is not w/");
        return Err(RegError::Failed);
    }
    dst.set_bytes(msg, &value).map_err(|_| RegError::Failed)
}

/// `uac_reg_status(uuid)` (4.10): the record's [`RegStatus`].
pub fn status(src: &[u8]) -> Result<RegStatus, RegError> {
    let reg = reg_or_err("uac_reg_status")?;
    let now = engine::now();
    reg.table
        .with_key(src, |r| r.state.status(now))
        .ok_or_else(|| {
            kdbg!("no uuid: {}", Bytes(src));
            RegError::NotFound
        })
}

/// `uac_reg_request_to(user, mode)` (4.11): R-URI, dst URI (auth_proxy) and the auth
/// AVPs from a record. Mode bit 0: match l_username (else l_uuid); bit 1: put the HA1
/// in the password AVP. [`RegError::BadUri`] for an unparsable user URI.
pub fn request_to(msg: &mut SipMsg, src: &[u8], mode: i32) -> Result<(), RegError> {
    if !(0..=3).contains(&mode) {
        kerr!("invalid mode");
        return Err(RegError::BadArguments);
    }
    let reg = reg_or_err("uac_reg_request_to")?;
    let key = if mode & 1 == 0 {
        Some(src.to_vec())
    } else if reg.cfg.use_domain {
        let Some(host) = host_part(src) else {
            kerr!("{}", RegError::BadUri);
            return Err(RegError::BadUri);
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
        return Err(RegError::NotFound);
    };
    if hdr_add::set_request_uri(msg, &ruri).is_err() {
        kerr!("error while setting request uri");
        return Err(RegError::Failed);
    }
    if !proxy.is_empty() && msg.set_dst_uri(&proxy).is_err() {
        kerr!("error while setting outbound proxy");
        return Err(RegError::Failed);
    }
    let Some(specs) = AUTH_SPECS.get() else {
        kerr!("uac_reg_request_to needs auth_realm_avp, auth_username_avp and auth_password_avp");
        return Err(RegError::Failed);
    };
    if specs.realm.set(msg, &realm).is_err() {
        kerr!("error while setting auth_realm");
        return Err(RegError::Failed);
    }
    if specs.username.set(msg, &user).is_err() {
        kerr!("error while setting auth_username");
        return Err(RegError::Failed);
    }
    if specs.password.set(msg, &secret).is_err() {
        kerr!("error while setting auth password (mode: {})", mode & 2);
        return Err(RegError::Failed);
    }
    Ok(())
}

/// `uac_reg_enable(attr, val)` / `uac_reg_disable(attr, val)`:
/// [`RegError::BadArguments`], [`RegError::NotFound`], [`RegError::UnknownAttribute`].
pub fn set_disabled(attr: &[u8], val: &[u8], disable: bool) -> Result<(), RegError> {
    let name = if disable {
        "uac_reg_disable"
    } else {
        "uac_reg_enable"
    };
    let reg = reg_or_err(name)?;
    if attr.is_empty() || val.is_empty() {
        kerr!("bad parameter values");
        return Err(RegError::BadArguments);
    }
    let r = reg.set_disabled(attr, val, disable);
    match r {
        Err(RegError::NotFound) => kdbg!("record not found for {} = {}", Bytes(attr), Bytes(val)),
        Err(RegError::UnknownAttribute) => {
            kerr!("unsupported filter attribute {}", Bytes(attr))
        }
        _ => {}
    }
    r
}

/// `uac_reg_refresh(l_uuid)`: reloads one record from the DB.
pub fn refresh(l_uuid: &[u8]) -> Result<(), RegError> {
    if l_uuid.is_empty() {
        kerr!("invalid parameters");
        return Err(RegError::BadArguments);
    }
    let reg = reg_or_err("uac_reg_refresh")?;
    let r = reg.refresh(l_uuid);
    match &r {
        Ok(()) => {}
        Err(RegError::NotFound) => kwarn!("record not found: {}", Bytes(l_uuid)),
        Err(e) => kwarn!("failed to refresh record: {} - {e}", Bytes(l_uuid)),
    }
    r
}

/// `uac_reg_send_register(attr, val)` ([`OnDemand::Register`]) and
/// `uac_reg_send_unregister(attr, val)` ([`OnDemand::Unregister`]): sends the
/// REGISTER for the record the filter matches now: no such record, unknown attribute,
/// or tm refused the request are errors (each logged at ERR).
pub fn send_now(attr: &[u8], val: &[u8], what: OnDemand) -> Result<(), RegError> {
    let name = match what {
        OnDemand::Register => "uac_reg_send_register",
        OnDemand::Unregister => "uac_reg_send_unregister",
    };
    let reg = reg_or_err(name)?;
    // The C module's messages, with the filter that failed.
    let key = match reg.find(attr, val) {
        Ok(Some(key)) => key,
        Ok(None) => {
            kerr!("Record not found: {} = {}", Bytes(attr), Bytes(val));
            return Err(RegError::NotFound);
        }
        Err(e) => {
            kerr!("Unsupported filter attribute {}", Bytes(attr));
            return Err(e);
        }
    };
    let r = reg.send_now(&key, what);
    if let Err(RegError::NotFound) = r {
        kerr!("Record not found: {} = {}", Bytes(attr), Bytes(val));
    }
    // Otherwise engine::send logged tm's error.
    r
}
