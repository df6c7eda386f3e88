//! The `uac.reg_*` RPC commands (admin guide 8), with the C module's names, parameters,
//! reply fields and fault codes/messages. Faults instead of crashes for every bad input.

use crate::host::HostError;
use crate::host::rpc::{Rpc, RpcStruct};
use crate::host::shm::reg_table::RecRef;
use crate::uac::reg::cluster::Membership;
use crate::uac::reg::engine::{self, OnDemand, Reg, RegError};
use crate::uac::reg::ownership;
use crate::uac::reg::record::{RegRow, idx};
use crate::uac::reg::state::{F_ONLINE, RegState};

/// What `auth_password` / `auth_ha1` show unless `reg_rpc_show_secrets` is set.
pub const MASK: &[u8] = b"********";

fn enabled<'a>(rpc: &Rpc<'_>) -> Option<&'a Reg> {
    let r = engine::get();
    if r.is_none() {
        rpc.fault(500, "Not enabled");
    }
    r
}

/// `reg_cluster`: the cluster as DMQ sees it now (read before any table lock).
fn cluster_view(reg: &Reg) -> Option<Membership> {
    reg.cfg.cluster.then(ownership::current).flatten()
}

/// One record as the C module's `rpc_uac_reg_add_node_helper` prints it.
fn add_node(
    rpc: &Rpc<'_>,
    reg: &Reg,
    r: &RecRef<'_, RegState, { idx::COUNT }>,
    now: i64,
    view: Option<&Membership>,
) -> Result<(), HostError> {
    let Some(st) = rpc.add_struct() else {
        rpc.fault(500, "Internal error creating rpc");
        return Err(HostError::Refused("rpc add"));
    };
    fill(&st, reg, r, now, view).inspect_err(|_| rpc.fault(500, "Internal error adding item"))
}

fn fill(
    st: &RpcStruct<'_>,
    reg: &Reg,
    r: &RecRef<'_, RegState, { idx::COUNT }>,
    now: i64,
    view: Option<&Membership>,
) -> Result<(), HostError> {
    let none_if_empty = |v: &[u8]| -> Vec<u8> {
        if v.is_empty() {
            b"none".to_vec()
        } else {
            v.to_vec()
        }
    };
    let secret = |v: &[u8]| -> Vec<u8> {
        if v.is_empty() {
            b"none".to_vec()
        } else if reg.cfg.rpc_show_secrets {
            v.to_vec()
        } else {
            MASK.to_vec()
        }
    };
    let s = &r.state;
    // timer_expires: binding expiry when registered, else the next attempt.
    let te = if s.flags & F_ONLINE != 0 {
        s.timer_expires
    } else {
        s.next_due.max(s.timer_expires)
    };
    let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    st.str(c"l_uuid", r.s(idx::L_UUID))?;
    st.str(c"l_username", r.s(idx::L_USERNAME))?;
    st.str(c"l_domain", r.s(idx::L_DOMAIN))?;
    st.str(c"r_username", r.s(idx::R_USERNAME))?;
    st.str(c"r_domain", r.s(idx::R_DOMAIN))?;
    st.str(c"realm", r.s(idx::REALM))?;
    st.str(c"auth_username", r.s(idx::AUTH_USERNAME))?;
    st.str(c"auth_password", &secret(r.s(idx::AUTH_PASSWORD)))?;
    st.str(c"auth_ha1", &secret(r.s(idx::AUTH_HA1)))?;
    st.str(c"auth_proxy", &none_if_empty(r.s(idx::AUTH_PROXY)))?;
    st.int(c"expires", clamp(i64::from(s.expires)))?;
    st.int(c"flags", clamp(i64::from(s.flags)))?;
    st.int(c"diff_expires", clamp(te - now))?;
    st.int(c"timer_expires", clamp(te))?;
    st.int(c"reg_init", clamp(s.reg_init))?;
    st.int(c"reg_delay", clamp(i64::from(s.reg_delay)))?;
    st.str(c"contact_addr", &none_if_empty(r.s(idx::CONTACT_ADDR)))?;
    st.str_or_null(c"socket", r.s(idx::SOCKET))?;
    // Newer C (table version 6, kam 13423d1536) prints it last, "none" when unset.
    st.str(c"contact_user", &none_if_empty(r.s(idx::CONTACT_USER)))?;
    // New (README: Retry classes), after the C module's fields: the last failure's
    // class and the consecutive failures, both reset by a successful registration.
    let class = s.failure_class().map_or("none", |c| c.name());
    st.str(c"failure_class", class.as_bytes())?;
    st.int(c"failures", clamp(i64::from(s.failures)))?;
    // reg_cluster only: the DMQ node (host:port) that registers the record, as this
    // node sees the cluster now.
    if reg.cfg.cluster {
        let owner = view.map_or(&b"none"[..], |m| m.owner(r.s(idx::L_UUID)));
        st.str(c"cluster_owner", owner)?;
        // Whose binding this node knows: its own (it registered), a peer's (shared
        // over DMQ), or none.
        let binding: &[u8] = if s.flags & F_ONLINE != 0 {
            b"own"
        } else if s.peer {
            b"peer"
        } else {
            b"none"
        };
        st.str(c"cluster_binding", binding)?;
    }
    Ok(())
}

/// `uac.reg_dump`
pub fn dump(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    let now = engine::now();
    let mut failed = false;
    let view = cluster_view(reg);
    reg.table.for_each(|r| {
        if !failed && add_node(rpc, reg, r, now, view.as_ref()).is_err() {
            failed = true;
        }
    });
}

/// The two `attr val` parameters, with the C module's faults.
fn scan_filter(rpc: &Rpc<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    let (Some(a), Some(v)) = (rpc.scan_str(), rpc.scan_str()) else {
        rpc.fault(400, "Invalid Parameters");
        return None;
    };
    if a.is_empty() || v.is_empty() {
        rpc.fault(400, "Invalid Parameter Values");
        return None;
    }
    Some((a, v))
}

/// Resolves a filter to an l_uuid with the C module's faults.
fn find(rpc: &Rpc<'_>, reg: &Reg) -> Option<Vec<u8>> {
    let (a, v) = scan_filter(rpc)?;
    match reg.find(&a, &v) {
        Err(_) => {
            rpc.fault(400, "Unsupported filter attribute");
            None
        }
        Ok(None) => {
            rpc.fault(404, "Record not found");
            None
        }
        Ok(Some(k)) => Some(k),
    }
}

/// `uac.reg_info attr val`
pub fn info(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    let Some(key) = find(rpc, reg) else { return };
    let now = engine::now();
    let view = cluster_view(reg);
    if reg
        .table
        .with_key(&key, |r| {
            let _ = add_node(rpc, reg, r, now, view.as_ref());
        })
        .is_none()
    {
        rpc.fault(404, "Record not found");
    }
}

/// `uac.reg_enable attr val` / `uac.reg_disable attr val`
pub fn set_disabled(rpc: &Rpc<'_>, disabled: bool) {
    let Some(reg) = enabled(rpc) else { return };
    let Some((a, v)) = scan_filter(rpc) else {
        return;
    };
    match reg.set_disabled(&a, &v, disabled) {
        Err(RegError::UnknownAttribute) => rpc.fault(400, "Unsupported filter attribute"),
        Err(_) => rpc.fault(404, "Record not found"),
        Ok(()) => {}
    }
}

/// `uac.reg_reload`
pub fn reload(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    if let Err(e) = reg.reload() {
        crate::kerr!("uac.reg_reload: {e}");
        rpc.fault(500, "Failed to reload records - check log messages");
    }
}

/// `uac.reg_refresh l_uuid`
pub fn refresh(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    let Some(uuid) = rpc.scan_str().filter(|u| !u.is_empty()) else {
        rpc.fault(400, "Invalid Parameters");
        return;
    };
    match reg.refresh(&uuid) {
        Ok(()) => {}
        Err(RegError::NotFound) => rpc.fault(404, "Record not found"),
        Err(e) => {
            crate::kerr!("uac.reg_refresh: {e}");
            rpc.fault(500, "Failed to refresh record - check log messages");
        }
    }
}

/// `uac.reg_remove l_uuid`
pub fn remove(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    let Some(uuid) = rpc.scan_str().filter(|u| !u.is_empty()) else {
        rpc.fault(400, "Invalid Parameters");
        return;
    };
    if !reg.remove(&uuid) {
        rpc.fault(404, "Record not found");
    }
}

/// `uac.reg_add` with its 15 parameters: l_uuid l_username l_domain r_username r_domain
/// realm auth_username auth_password auth_ha1 auth_proxy expires flags reg_delay socket
/// contact_addr, and an optional 16th, contact_user (as C master, kam 13423d1536). "."
/// means empty for realm, auth_password, auth_ha1, auth_proxy, socket and contact_user,
/// and the default for contact_addr.
pub fn add(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    let mut s: Vec<Vec<u8>> = Vec::with_capacity(10);
    for _ in 0..10 {
        match rpc.scan_str() {
            Some(v) => s.push(v),
            None => {
                rpc.fault(400, "Invalid Parameters");
                return;
            }
        }
    }
    let mut n = [0u32; 3];
    for slot in &mut n {
        match rpc.scan_int() {
            Some(v) if v >= 0 => *slot = v as u32,
            _ => {
                rpc.fault(400, "Invalid Parameters");
                return;
            }
        }
    }
    let (Some(socket), Some(contact)) = (rpc.scan_str(), rpc.scan_str()) else {
        rpc.fault(400, "Invalid Parameters");
        return;
    };
    let contact_user = rpc.scan_str().unwrap_or_default();
    let dot = |v: Vec<u8>| if v == b"." { Vec::new() } else { v };
    let mut it = s.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let row = RegRow {
        l_uuid: next(),
        l_username: next(),
        l_domain: next(),
        r_username: next(),
        r_domain: next(),
        realm: dot(next()),
        auth_username: next(),
        auth_password: dot(next()),
        auth_ha1: dot(next()),
        auth_proxy: dot(next()),
        expires: n[0],
        flags: n[1],
        reg_delay: n[2],
        socket: dot(socket),
        contact_addr: dot(contact),
        contact_user: dot(contact_user),
    };
    if let Err((code, msg)) = reg.add(row) {
        rpc.fault(code, msg);
    }
}

/// `uac.reg_active 0|1`
pub fn active(rpc: &Rpc<'_>) {
    let Some(reg) = engine::get() else {
        rpc.fault(500, "Not initialized");
        return;
    };
    let Some(nmode) = rpc.scan_int() else {
        rpc.fault(500, "Missing parameter");
        return;
    };
    let omode = reg.table.set_active(nmode != 0);
    let Some(st) = rpc.add_struct() else {
        rpc.fault(500, "Internal error creating rpc struct");
        return;
    };
    if st.int(c"omode", i32::from(omode)).is_err() || st.int(c"nmode", nmode).is_err() {
        rpc.fault(500, "Internal error creating response");
    }
}

/// `uac.reg_register attr val` ([`OnDemand::Register`]) and
/// `uac.reg_unregister attr val` ([`OnDemand::Unregister`]).
pub fn send_now(rpc: &Rpc<'_>, what: OnDemand) {
    let Some(reg) = enabled(rpc) else { return };
    let Some(key) = find(rpc, reg) else { return };
    match reg.send_now(&key, what) {
        Ok(()) => {}
        // Removed by a concurrent reload since `find`.
        Err(RegError::NotFound) => rpc.fault(404, "Record not found"),
        // The C module cannot tell; tm's error is in the log.
        Err(_) => rpc.fault(500, "Failed to send request - check log messages"),
    }
}

/// `uac.reg_cluster` (new, reg_cluster): one struct per DMQ node this node knows:
/// `node` (host:port), `local` (yes/no), `state` (active, left: said it is leaving,
/// inactive: DMQ gets no answer), `owned` (accounts it owns in this node's view; 0 for
/// a node not active). A node still waiting for the cluster's answer owns nothing yet:
/// `synced` says whether this node claims its share.
pub fn cluster(rpc: &Rpc<'_>) {
    let Some(reg) = enabled(rpc) else { return };
    if !reg.cfg.cluster {
        rpc.fault(500, "reg_cluster not enabled");
        return;
    }
    let nodes = crate::host::dmq::nodes();
    let left = ownership::left_nodes();
    let view = ownership::current();
    let owned = view.as_ref().map(|v| reg.owned_per_node(v));
    let synced = ownership::synced();
    for n in &nodes {
        let state: &[u8] = if n.local {
            b"active"
        } else if left.contains(&n.key) {
            b"left"
        } else if n.active {
            b"active"
        } else {
            b"inactive"
        };
        let mut count = 0;
        if let (Some(v), Some(o)) = (&view, &owned)
            && state == b"active"
            && let Some(i) = v.nodes().iter().position(|k| *k == n.key)
        {
            count = o[i];
        }
        if n.local && !synced {
            count = 0;
        }
        let Some(st) = rpc.add_struct() else {
            rpc.fault(500, "Internal error creating rpc");
            return;
        };
        let yes_no = |b: bool| -> &[u8] { if b { b"yes" } else { b"no" } };
        let filled = st
            .str(c"node", &n.key)
            .and_then(|_| st.str(c"local", yes_no(n.local)))
            .and_then(|_| st.str(c"state", state))
            .and_then(|_| st.int(c"owned", i32::try_from(count).unwrap_or(i32::MAX)))
            .and_then(|_| {
                if n.local {
                    st.str(c"synced", yes_no(synced))
                } else {
                    Ok(())
                }
            });
        if filled.is_err() {
            rpc.fault(500, "Internal error adding item");
            return;
        }
    }
}
