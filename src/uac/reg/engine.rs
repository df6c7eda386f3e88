//! The registration engine on top of the host: the shared table, loading from the DB,
//! the timer, sending REGISTER and handling replies, and the operations behind the
//! script functions and RPC commands.
//!
//! Locking rule: a record's lock is held only inside `RegTable` closures, which never
//! call tm, the DB or the script. Sends happen after the closure returned, and so do the
//! state events (`event_route[uac:reg]`): the closures note them in the record's state and
//! return them; [`events::emit`] runs them after the lock is released.
//!
//! REGISTERs go out through the generic [`host::tm::send_request`] (the Call-ID,
//! From tag and CSeq are ours, for `reg_keep_callid` and for answering challenges on
//! the same Call-ID); the completion callback gets back the record's l_uuid and the
//! token of the send (see [`CallbackParam`]).

use std::sync::OnceLock;
use std::time::Instant;

use rand::RngExt;

use crate::host::HostError;
use crate::host::db::{DbConn, DbValue};
use crate::host::log::Bytes;
use crate::host::msg::hdr_add;
use crate::host::shm::counters::ShmCounter;
use crate::host::shm::reg_table::{Counted, RecRef, RegTable, Walk};
use crate::host::socket::Socket;
use crate::host::tm::{self, Callback, CallbackOn, FrTimeouts, OutRequest, TmEvent};
use crate::sip::auth_header::HeaderKind;
use crate::sip::digest::{self, Credentials, Nc, Secret};
use crate::sip::register::RegisterReply;
use crate::uac::config::{Config, RegConfig};
use crate::uac::reg::cluster::{self, Membership};
use crate::uac::reg::cluster_msg::{Binding, Item};
use crate::uac::reg::events;
use crate::uac::reg::ownership;
use crate::uac::reg::record::{self, FilterAttr, RegRow, idx};
use crate::uac::reg::reload_limit::reload_allowed;
use crate::uac::reg::state::{Failure, Ours, RegState, ReplyAction, SendPlan, Timing};
use crate::uac::rng::with_rng;
use crate::uac::shm_state::{Reader, Writer};

pub type Table = RegTable<RegState, { idx::COUNT }>;

thread_local! {
    /// `reg_cluster`: the view of the last timer tick (timer process only; `None`:
    /// no tick yet).
    static LAST_VIEW: std::cell::RefCell<Option<Option<Membership>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// `reg_cluster`: shares of own bindings to joining nodes (timer process only).
    static RESHARE: cluster::ReshareGate = cluster::ReshareGate::default();
}

impl Counted for RegState {
    fn online(&self) -> bool {
        self.is_online()
    }
    fn disabled(&self) -> bool {
        self.is_disabled()
    }
    fn in_flight(&self) -> bool {
        self.flags & crate::uac::reg::state::F_ONGOING != 0
    }
    fn wake_at(&self) -> i64 {
        RegState::wake_at(self)
    }
}

/// Everything the engine needs, set in mod_init.
pub struct Reg {
    pub table: Table,
    pub cfg: RegConfig,
    pub timing: Timing,
    pub default_socket: Vec<u8>,
    /// `uac:reggiveup`: records disabled by a failed registration.
    pub giveups: ShmCounter,
}

static REG: OnceLock<Reg> = OnceLock::new();

/// The engine, when `reg_db_url` is set.
pub fn get() -> Option<&'static Reg> {
    REG.get()
}

/// Why remote registration could not do what was asked. The script code and RPC
/// fault of each case are chosen by the caller (`ffi::reg`, [`super::rpc`]); the
/// Display texts are the C module's log messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegError {
    /// `reg_db_url` is not set: the feature is off.
    NotEnabled,
    /// An empty or unreadable argument.
    BadArguments,
    /// No record matches the l_uuid, user or filter.
    NotFound,
    /// The user or URI argument does not parse as a SIP URI.
    BadUri,
    /// A filter attribute the records do not have.
    UnknownAttribute,
    /// Writing the result (PV, R-URI, dst URI, AVP) failed; logged where it happened.
    Failed,
    /// tm refused the REGISTER (logged; the record counts as failed).
    NotSent,
    /// Out of shared memory for the table (`what` failed).
    NoMemory(&'static str),
    /// The database (bind, connect, query).
    Db(HostError),
    /// The `version` table has no row for the registration table.
    NoTableVersion(Vec<u8>),
    /// The registration table has a version this module cannot read.
    BadTableVersion { table: Vec<u8>, found: u32 },
    /// `uac.reg_reload` sooner than `reload_delta` seconds after the last one.
    ReloadTooSoon(u32),
    /// The challenge's realm is not the record's.
    RealmMismatch(Vec<u8>),
    /// No answer to the challenge could be computed.
    Digest(digest::DigestError),
}

impl std::fmt::Display for RegError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegError::NotEnabled => {
                f.write_str("uac remote registrations not enabled (reg_db_url not set)")
            }
            RegError::BadArguments => f.write_str("invalid parameters"),
            RegError::NotFound => f.write_str("record not found"),
            RegError::BadUri => f.write_str("failed to parse uri"),
            RegError::UnknownAttribute => f.write_str("unsupported filter attribute"),
            RegError::Failed => f.write_str("failed"),
            RegError::NotSent => f.write_str("failed to send request"),
            RegError::NoMemory(what) => f.write_str(what),
            RegError::Db(e) => write!(f, "{e}"),
            RegError::NoTableVersion(t) => write!(
                f,
                "cannot read the version of table '{}' from table 'version'",
                Bytes(t)
            ),
            RegError::BadTableVersion { table, found } => write!(
                f,
                "invalid table version for table '{}' (found {found}, expected {})",
                Bytes(table),
                record::TABLE_VERSIONS
            ),
            // The C module's wording, which operators grep for.
            RegError::ReloadTooSoon(delta) => write!(
                f,
                "shifting in-memory table is not possible in less than {delta} secs"
            ),
            RegError::RealmMismatch(realm) => write!(
                f,
                "realms do not match. requested realm: [{}]",
                Bytes(realm)
            ),
            RegError::Digest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RegError {}

/// mod_init: creates the shared table.
pub fn init(cfg: &Config) -> Result<(), RegError> {
    let Some(rc) = &cfg.reg else { return Ok(()) };
    CLOCK_BASE.get_or_init(Instant::now);
    let table = Table::create(rc.hash_slots, rc.active)
        .ok_or(RegError::NoMemory("failed to init reg htable"))?;
    let reg = Reg {
        table,
        cfg: rc.clone(),
        timing: Timing {
            timer_interval: rc.timer_interval,
            retry_interval: rc.retry_interval,
            keep_callid: rc.keep_callid,
            retry: rc.retry,
            refresh_percent: rc.refresh_percent,
        },
        default_socket: cfg.default_socket.clone().unwrap_or_default(),
        giveups: ShmCounter::new().ok_or(RegError::NoMemory("failed to init reg counters"))?,
    };
    if rc.cluster {
        ownership::init()?;
    }
    let _ = REG.set(reg);
    Ok(())
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The origin of [`monotonic_ms`], taken in mod_init before the fork, so every
/// process measures from the same instant.
static CLOCK_BASE: OnceLock<Instant> = OnceLock::new();

/// Milliseconds on a clock that all Kamailio processes share and that wall-clock
/// changes do not move: `Instant` reads CLOCK_MONOTONIC, which is system-wide.
fn monotonic_ms() -> i64 {
    let base = CLOCK_BASE.get_or_init(Instant::now);
    i64::try_from(base.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn hex(n: usize) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    with_rng(|r| (0..n).map(|_| H[r.random_range(0..16)]).collect())
}

/// A fresh Call-ID and From tag.
fn new_ids() -> (Vec<u8>, Vec<u8>) {
    (hex(32), hex(16))
}

// ---------------------------------------------------------------------------
// Database.

fn row_from_values(v: &[DbValue]) -> RegRow {
    let s = |i: usize| v.get(i).map(DbValue::bytes).unwrap_or_default();
    let n = |i: usize| {
        v.get(i)
            .map(DbValue::int)
            .unwrap_or(0)
            .clamp(0, u32::MAX as i64) as u32
    };
    RegRow {
        l_uuid: s(0),
        l_username: s(1),
        l_domain: s(2),
        r_username: s(3),
        r_domain: s(4),
        realm: s(5),
        auth_username: s(6),
        auth_password: s(7),
        auth_ha1: s(8),
        auth_proxy: s(9),
        expires: n(10),
        flags: n(11),
        reg_delay: n(12),
        contact_addr: s(13),
        socket: s(14),
        // Absent (version 5: not selected) or NULL: empty, the l_uuid is the Contact user.
        contact_user: s(15),
    }
}

/// Rows of the driver's result held in pkg memory at a time while loading.
const LOAD_BATCH: usize = 1000;
/// The longest a timer tick keeps sending (the timer runs every second).
const TICK_BUDGET: std::time::Duration = std::time::Duration::from_millis(900);
/// How often a tick with a full send window looks again.
const WINDOW_POLL: std::time::Duration = std::time::Duration::from_millis(2);

impl Reg {
    fn open_db(&self) -> Result<DbConn, RegError> {
        DbConn::open(&self.cfg.db_url).map_err(RegError::Db)
    }

    /// The columns to read: the table's version picks them (6 adds contact_user).
    fn columns(&self, db: &mut DbConn) -> Result<&'static [&'static str], RegError> {
        let version = db
            .table_version(&self.cfg.db_table)
            .map_err(|_| RegError::NoTableVersion(self.cfg.db_table.clone()))?;
        record::columns(version).ok_or_else(|| RegError::BadTableVersion {
            table: self.cfg.db_table.clone(),
            found: version,
        })
    }

    /// Hands every valid row of the table to `f`, a batch of rows at a time (no
    /// memory proportional to the table). Invalid rows are logged and skipped.
    fn each_row(&self, mut f: impl FnMut(RegRow)) -> Result<(), RegError> {
        let mut db = self.open_db()?;
        let columns = self.columns(&mut db)?;
        let mode = db
            .select_each(&self.cfg.db_table, columns, LOAD_BATCH, |v| {
                let row = row_from_values(v);
                let uuid = row.l_uuid.clone();
                match row.validate(&self.cfg.contact_addr) {
                    Ok(r) => f(r),
                    Err(e) => kerr!("uacreg record [{}]: {e}", Bytes(&uuid)),
                }
            })
            .map_err(RegError::Db)?;
        kdbg!("uacreg table read ({mode:?})");
        Ok(())
    }

    /// The valid row with `l_uuid`, if any.
    fn load_row(&self, l_uuid: &[u8]) -> Result<Option<RegRow>, RegError> {
        let mut db = self.open_db()?;
        let columns = self.columns(&mut db)?;
        let rows = db
            .select(&self.cfg.db_table, columns, Some(("l_uuid", l_uuid)))
            .map_err(RegError::Db)?;
        Ok(rows.first().and_then(|v| {
            row_from_values(v)
                .validate(&self.cfg.contact_addr)
                .map_err(|e| kerr!("uacreg record [{}]: {e}", Bytes(l_uuid)))
                .ok()
        }))
    }

    fn new_state(&self, row: &RegRow, now: i64) -> RegState {
        let delay = if row.reg_delay > 0 {
            row.reg_delay
        } else if self.cfg.random_delay > 0 {
            with_rng(|r| r.random_range(0..self.cfg.random_delay))
        } else {
            0
        };
        let mut st = RegState::new(row.expires, row.flags, delay, now);
        // A replaced record must not take replies meant for its predecessor.
        st.token = with_rng(|r| r.random());
        st
    }

    /// Inserts `row`, or keeps the existing record's state when the row is unchanged
    /// (`keep`), else replaces the record (its registration starts over). Either way
    /// the record belongs to the table's current generation.
    fn upsert(&self, row: &RegRow, now: i64, keep: bool, generation: u32) -> Result<(), HostError> {
        let strings = row.strings();
        let same = self.table.with_key(&row.l_uuid, |r| {
            keep && (0..idx::COUNT).all(|i| r.s(i) == strings[i])
                && r.state.db_expires == row.expires
                && r.state.db_flags == row.flags
                && (row.reg_delay == 0 || r.state.db_reg_delay == row.reg_delay)
        });
        match same {
            Some(true) => {
                self.table.mark(&row.l_uuid, generation);
                Ok(())
            }
            Some(false) => {
                self.table.remove(&row.l_uuid);
                self.table.insert(strings, self.new_state(row, now))
            }
            None => self.table.insert(strings, self.new_state(row, now)),
        }
    }

    /// Upserts every row of the table into a new generation; returns how many rows
    /// were stored.
    fn load_generation(&self) -> Result<(usize, u32), RegError> {
        let generation = self.table.next_generation();
        let now = now();
        let mut stored = 0;
        let mut no_memory = false;
        self.each_row(|row| {
            if no_memory {
                return;
            }
            match self.upsert(&row, now, true, generation) {
                Ok(()) => stored += 1,
                // Two rows with one l_uuid: the later one replaced the earlier.
                Err(HostError::Exists) => {}
                Err(_) => no_memory = true,
            }
        })?;
        if no_memory {
            return Err(RegError::NoMemory("Error adding reg to htable"));
        }
        Ok((stored, generation))
    }

    /// Initial load (timer process start).
    pub fn load_all(&self) -> Result<usize, RegError> {
        let _g = self.table.admin_lock();
        self.load_generation().map(|(n, _)| n)
    }

    /// `uac.reg_reload`: syncs the table with the DB. Unchanged records keep their
    /// registration; changed ones start over; rows gone from the DB are dropped.
    /// Concurrent reloads are serialised; with `reload_delta` N > 0, a reload less
    /// than N seconds after the last successful one is refused. A reload that fails
    /// midway keeps the rows it read and drops nothing.
    pub fn reload(&self) -> Result<(), RegError> {
        let _g = self.table.admin_lock();
        let delta = self.cfg.reload_delta;
        if !reload_allowed(self.table.last_reload(), monotonic_ms(), delta) {
            return Err(RegError::ReloadTooSoon(delta));
        }
        let (stored, generation) = self.load_generation()?;
        let dropped = self.table.sweep(generation);
        kdbg!("uacreg reload: {stored} rows, {dropped} records dropped");
        self.table.set_last_reload(monotonic_ms());
        Ok(())
    }

    /// `uac_reg_refresh` / `uac.reg_refresh`: reloads one record. `Ok(false)`: no row.
    pub fn refresh(&self, l_uuid: &[u8]) -> Result<(), RegError> {
        let _g = self.table.admin_lock();
        let Some(row) = self.load_row(l_uuid)? else {
            return Err(RegError::NotFound);
        };
        self.upsert(&row, now(), false, self.table.generation())
            .map_err(|_| RegError::NoMemory("Error adding reg to htable"))
    }

    /// `uac.reg_add`: adds the record, replacing one with the same l_uuid as the admin
    /// guide (5.6.3, 8.9) says: "If one with the same unique id is found, it is deleted."
    /// [The C module answers 409 "uuid already exists" instead.]
    ///
    /// The old record is dropped without an un-REGISTER: the guide says only "deleted",
    /// and deleting (`uac.reg_remove`, C and ours) sends none. Its binding lapses at the
    /// registrar, or the new record's REGISTER overwrites it (same AOR and Contact). The
    /// new record starts with a new token, so replies to the old one's REGISTER in
    /// flight are ignored.
    pub fn add(&self, row: RegRow) -> Result<(), (i32, &'static str)> {
        let row = row.validate(&self.cfg.contact_addr).map_err(|e| {
            kerr!("uac.reg_add: {e}");
            (500, "Failed to add record - invalid password or ha1")
        })?;
        // Under the admin lock no other reload/refresh/add/remove runs between the
        // removal and the insertion; the table's counters follow both exactly.
        let _g = self.table.admin_lock();
        if self.table.remove(&row.l_uuid).is_some() {
            kinfo!("uac.reg_add: record [{}] replaced", Bytes(&row.l_uuid));
        }
        match self
            .table
            .insert(row.strings(), self.new_state(&row, now()))
        {
            Ok(()) => Ok(()),
            Err(HostError::Exists) => Err((409, "uuid already exists")),
            Err(_) => Err((500, "Failed to add record - check log messages")),
        }
    }

    /// `uac.reg_remove`.
    pub fn remove(&self, l_uuid: &[u8]) -> bool {
        let _g = self.table.admin_lock();
        self.table.remove(l_uuid).is_some()
    }

    // -----------------------------------------------------------------------
    // Sending.

    /// A REGISTER to send, built under the record lock.
    fn job(r: &RecRef<'_, RegState, { idx::COUNT }>, plan: &SendPlan, auth: Option<&[u8]>) -> Job {
        Job {
            l_uuid: r.s(idx::L_UUID).to_vec(),
            ruri: record::request_uri(r.s(idx::R_DOMAIN)),
            aor: record::aor(r.s(idx::R_USERNAME), r.s(idx::R_DOMAIN)),
            headers: record::register_headers(
                r.s(idx::L_UUID),
                r.s(idx::CONTACT_USER),
                r.s(idx::CONTACT_ADDR),
                plan.expires,
                auth,
                ownership::contact_addr(plan.remove_contact).as_deref(),
            ),
            dst_uri: r.s(idx::AUTH_PROXY).to_vec(),
            socket: r.s(idx::SOCKET).to_vec(),
            call_id: plan.call_id.clone(),
            from_tag: plan.from_tag.clone(),
            cseq: plan.cseq,
            token: plan.token,
            takeover: plan.takeover,
        }
    }

    /// Hands the REGISTER to tm; `false` when tm refused it (the record is then
    /// marked failed, as after an error reply).
    fn send(&self, job: Job) -> bool {
        let socket = if job.socket.is_empty() {
            &self.default_socket
        } else {
            &job.socket
        };
        // As tm does with `uac_req_t.ssock`: an unknown socket lets the core choose.
        let socket = if socket.is_empty() {
            None
        } else {
            Socket::lookup(socket)
                .map_err(|e| {
                    kdbg!(
                        "socket <{}> for [{}]: {e}",
                        Bytes(socket),
                        Bytes(&job.l_uuid)
                    )
                })
                .ok()
        };
        let req = OutRequest {
            method: b"REGISTER",
            ruri: &job.ruri,
            from: &job.aor,
            to: &job.aor,
            to_tag: b"",
            headers: &job.headers,
            body: b"",
            call_id: &job.call_id,
            from_tag: &job.from_tag,
            cseq: job.cseq,
            next_hop: (!job.dst_uri.is_empty()).then_some(job.dst_uri.as_slice()),
            socket,
            fr_timeouts: FrTimeouts::default(),
        };
        let cb = Callback {
            on: CallbackOn::Completed,
            handler: tm_completed,
            state: &CallbackParam::encode(job.token, &job.l_uuid),
        };
        if let Err(e) = tm::send_request(&req, Some(cb)) {
            kerr!("failed to send request for [{}]: {e}", Bytes(&job.l_uuid));
            let now = now();
            let timing = self.timing;
            let r = self.table.with_key(&job.l_uuid, |r| {
                let was_enabled = !r.state.is_disabled();
                let a = r.state.send_failed(job.token, now, &timing)?;
                let ev = events::on_action(&mut r.state.event, &a, 0, true);
                Some((a, ev, gave_up(was_enabled, r.state)))
            });
            if let Some(Some((a, ev, given_up))) = r {
                log_action(&job.l_uuid, &a);
                events::emit(&job.l_uuid, ev);
                self.count_give_up(&job.l_uuid, given_up);
            }
            return false;
        }
        true
    }

    /// One timer tick: sends the REGISTERs that are due, keeping at most
    /// `reg_send_window` of them waiting for a final reply (0: no limit), for up to
    /// [`TICK_BUDGET`]; what is left is due at the next tick. The window spreads a
    /// large table's first registrations at the pace the registrar and the workers
    /// answer, instead of a burst whose replies overflow the socket buffers and come
    /// back as retransmissions.
    pub fn tick(&self) {
        let started = Instant::now();
        let window = self.cfg.send_window;
        let timing = self.timing;
        let view = if self.cfg.cluster {
            Some(self.cluster_view(now()))
        } else {
            None
        };
        loop {
            let now = now();
            // Walking every record each second is what a large table would cost
            // when idle; the walk visits only buckets whose time has come.
            if !self.table.due(now) {
                return;
            }
            let room = if window == 0 {
                usize::MAX
            } else {
                usize::try_from(i64::from(window) - self.table.in_flight()).unwrap_or(0)
            };
            if room == 0 {
                if started.elapsed() >= TICK_BUDGET {
                    return;
                }
                std::thread::sleep(WINDOW_POLL);
                continue;
            }
            let active = self.table.active();
            let mut jobs = Vec::new();
            let mut shares = Vec::new();
            let park_until = now + i64::from(timing.timer_interval.max(1));
            let whole = self.table.walk_due(now, |r| {
                if std::mem::take(&mut r.state.share) {
                    shares.push(with_contact(r.state.shared_item(r.s(idx::L_UUID), now), r));
                }
                if jobs.len() >= room {
                    return Walk::Stop;
                }
                if let Some(v) = &view
                    && !v.as_ref().is_some_and(|m| m.owns(r.s(idx::L_UUID)))
                {
                    // Another node's (or nobody's yet): keep the record's own
                    // housekeeping, send nothing, and look again at the next change of
                    // the cluster (which unparks every record) or after the interval.
                    r.state.tick(now, false);
                    r.state.parked_until = park_until;
                    return Walk::Continue;
                }
                if r.state.tick(now, active) {
                    let plan = r.state.begin_send(now, &timing, false, &mut new_ids);
                    let ev = events::on_send(&mut r.state.event, false);
                    jobs.push((Self::job(r, &plan, None), ev));
                }
                Walk::Continue
            });
            if !shares.is_empty() {
                ownership::share(&shares);
            }
            let mut taken_over = 0;
            for (job, ev) in jobs {
                // Before the send, so that the reply's event cannot run first.
                events::emit(&job.l_uuid, ev);
                if job.takeover {
                    ownership::count_takeover();
                    taken_over += 1;
                    kdbg!(
                        "reg_cluster: [{}] taken over: refreshing the binding of Call-ID {} with CSeq {}",
                        Bytes(&job.l_uuid),
                        Bytes(&job.call_id),
                        job.cseq
                    );
                }
                self.send(job);
            }
            if taken_over > 0 {
                // One line per batch, not per account: a node's death moves thousands.
                knotice!(
                    "reg_cluster: {taken_over} account(s) taken over: refreshing the bindings \
                     other nodes made (same Call-ID, next CSeq)"
                );
            }
            if whole || started.elapsed() >= TICK_BUDGET {
                return;
            }
        }
    }

    /// `reg_cluster`: the view of the cluster for this tick. When it differs from the
    /// last tick's (a node joined or left, or this node first heard from the
    /// cluster), every record is unparked, so ownership is decided again at once.
    fn cluster_view(&self, now: i64) -> Option<Membership> {
        let view = ownership::timer_view(now);
        let (changed, gained) = LAST_VIEW.with(|last| {
            let mut last = last.borrow_mut();
            if last.as_ref() == Some(&view) {
                return (false, false);
            }
            // A node this node did not see before: back from a split, or (re)started.
            let gained = match (last.as_ref(), &view) {
                (Some(Some(old)), Some(new)) => {
                    new.nodes().iter().any(|n| !old.nodes().contains(n))
                }
                _ => false,
            };
            *last = Some(view.clone());
            (true, gained)
        });
        if RESHARE.with(|r| r.due(gained, now)) {
            // What this node registered while the other could not hear it: after a
            // split each side refreshed some accounts; the newest binding must win on
            // every node before the next owner refreshes it.
            let own: Vec<Item> = self
                .own_bindings(now)
                .into_iter()
                .map(Item::Binding)
                .collect();
            kinfo!(
                "reg_cluster: a node joined: sharing {} binding(s)",
                own.len()
            );
            ownership::share(&own);
        }
        if changed {
            match &view {
                Some(m) => knotice!(
                    "reg_cluster: {} active node(s), this is {}: {}",
                    m.nodes().len(),
                    Bytes(m.local()),
                    m.nodes()
                        .iter()
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                None => knotice!("reg_cluster: waiting for the DMQ node list"),
            }
            self.table.for_each(|r| r.state.parked_until = 0);
        }
        view
    }

    /// `reg_cluster`: other nodes' bindings (their 2xx, or their answer to our sync):
    /// each taken when newer than what this node knows ([`RegState::adopt`]). Returns
    /// how many were taken and how many removed bindings forgotten.
    pub fn apply_peer_items(&self, items: &[Item], now: i64) -> (usize, usize) {
        let (mut adopted, mut forgotten) = (0, 0);
        for item in items {
            match item {
                Item::Binding(b) => {
                    let number = if b.contact_addr.is_empty() {
                        None
                    } else {
                        ownership::contact_number(&b.contact_addr)
                    };
                    let taken = self.table.with_key(&b.l_uuid, |r| {
                        let taken = r.state.adopt(b, now);
                        if taken {
                            // Another Contact than ours: removed by our next REGISTER.
                            let ours = b.contact_addr.is_empty()
                                || b.contact_addr.as_slice() == r.s(idx::CONTACT_ADDR);
                            r.state.peer_contact = if ours { 0 } else { number.unwrap_or(0) };
                        }
                        taken
                    });
                    if taken == Some(true) {
                        adopted += 1;
                    }
                }
                Item::Gone(g) => {
                    if self.table.with_key(&g.l_uuid, |r| r.state.forget(g, now)) == Some(true) {
                        forgotten += 1;
                    }
                }
            }
        }
        (adopted, forgotten)
    }

    /// `reg_cluster`: every live binding this node knows, its own and its peers'
    /// (the answer to a joining node's sync).
    pub fn known_bindings(&self, now: i64) -> Vec<Binding> {
        let mut out = Vec::new();
        self.table.for_each(|r| {
            if let Some(b) = r.state.known_binding(r.s(idx::L_UUID), now) {
                out.push(binding_with_contact(b, r));
            }
        });
        out
    }

    /// `reg_cluster`: the live bindings this node registered itself.
    pub fn own_bindings(&self, now: i64) -> Vec<Binding> {
        let mut out = Vec::new();
        self.table.for_each(|r| {
            if r.state.is_online()
                && let Some(b) = r.state.known_binding(r.s(idx::L_UUID), now)
            {
                out.push(binding_with_contact(b, r));
            }
        });
        out
    }

    /// `reg_cluster`: how many records this node owns now (0 while it waits for the
    /// cluster's answer, or without a view).
    pub fn owned_here(&self) -> usize {
        let Some(view) = ownership::current().filter(|_| ownership::synced()) else {
            return 0;
        };
        let local = view
            .nodes()
            .iter()
            .position(|n| n.as_slice() == view.local());
        local.map_or(0, |i| self.owned_per_node(&view)[i])
    }

    /// `reg_cluster`: how many records each node of `view` owns.
    pub fn owned_per_node(&self, view: &Membership) -> Vec<usize> {
        let mut counts = vec![0; view.nodes().len()];
        self.table.for_each(|r| {
            if let Some(i) = cluster::owner_index(r.s(idx::L_UUID), view.nodes()) {
                counts[i] += 1;
            }
        });
        counts
    }

    /// The tm completion callback.
    pub fn on_completion(&self, p: CallbackParam, c: Completion) {
        let local = c.reply.is_none();
        let reply = match c.reply {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                kwarn!("reply for [{}] not understood: {e}", Bytes(&p.l_uuid));
                None
            }
            None => None,
        };
        let now = now();
        let timing = self.timing;
        let cluster = self.cfg.cluster;
        let out = self.table.with_key(&p.l_uuid, |r| {
            // Copied out: the state is borrowed mutably below.
            let secret = secret_of(r).into_owned();
            let ours = Ours {
                l_uuid: &p.l_uuid,
                by_line: !r.s(idx::CONTACT_USER).is_empty(),
                secret: &secret,
            };
            let was_enabled = !r.state.is_disabled();
            let a = r
                .state
                .on_reply(p.token, c.code, reply.as_ref(), ours, now, &timing);
            let (a, job) = match &a {
                ReplyAction::Authenticate {
                    challenge,
                    kind,
                    plan,
                } => match authorization(r, challenge, *kind) {
                    Ok(line) => {
                        let job = Self::job(r, plan, Some(&line));
                        (a, Some(job))
                    }
                    Err(e) => {
                        kerr!("authentication failed for <{}>: {e}", Bytes(&p.l_uuid));
                        let f = r.state.auth_unanswerable(p.token, now, &timing);
                        (f.unwrap_or(ReplyAction::Ignore), None)
                    }
                },
                _ => (a, None),
            };
            let ev = events::on_action(&mut r.state.event, &a, c.code, local);
            if cluster && matches!(a, ReplyAction::Registered(_) | ReplyAction::Unregistered) {
                // The other nodes learn the binding at the timer's next tick.
                r.state.share = true;
            }
            (a, job, ev, gave_up(was_enabled, r.state))
        });
        let Some((action, job, ev, given_up)) = out else {
            kdbg!("no user with uuid {}", Bytes(&p.l_uuid));
            return;
        };
        match &action {
            ReplyAction::Failed {
                why: why @ Failure::Status(code),
                retry_at,
            } => kerr!(
                // The C module's wording, then the class and what happens next.
                "got sip response {code} while registering [{}] ({}, {})",
                Bytes(&p.l_uuid),
                why.class().name(),
                match retry_at {
                    Some(t) => format!("retry in {} s", t - now),
                    None => "record disabled".to_string(),
                }
            ),
            ReplyAction::Failed {
                why: why @ (Failure::NoContact | Failure::ContactNotOurs),
                retry_at,
            } => {
                // WARNING, not the C module's DBG: the registrar said 2xx, so an
                // operator would otherwise not know why the record stays unregistered.
                let what = if *why == Failure::NoContact {
                    "without Contact"
                } else {
                    "without our Contact (user is not the l_uuid)"
                };
                let next = match retry_at {
                    Some(t) => format!("retry in {} s", t - now),
                    None => "record disabled".to_string(),
                };
                kwarn!(
                    "2xx {what} while registering [{}]: not registered, {next}",
                    Bytes(&p.l_uuid)
                );
            }
            a => log_action(&p.l_uuid, a),
        }
        events::emit(&p.l_uuid, ev);
        self.count_give_up(&p.l_uuid, given_up);
        if let Some(job) = job {
            self.send(job);
        }
    }

    /// Sends a REGISTER for the record now, whatever its timer says:
    /// `uac_reg_send_register` / `uac.reg_register` ([`OnDemand::Register`]) and
    /// `uac_reg_send_unregister` / `uac.reg_unregister` ([`OnDemand::Unregister`]).
    /// A REGISTER still in flight is superseded: its reply will be ignored.
    pub fn send_now(&self, l_uuid: &[u8], what: OnDemand) -> Result<(), RegError> {
        let now = now();
        let timing = self.timing;
        let unregister = what == OnDemand::Unregister;
        let (job, ev) = self
            .table
            .with_key(l_uuid, |r| {
                if unregister {
                    r.state.prepare_unregister();
                }
                let plan = r.state.begin_send(now, &timing, unregister, &mut new_ids);
                let ev = events::on_send(&mut r.state.event, unregister);
                (Self::job(r, &plan, None), ev)
            })
            .ok_or(RegError::NotFound)?;
        events::emit(&job.l_uuid, ev);
        if self.send(job) {
            Ok(())
        } else {
            Err(RegError::NotSent)
        }
    }

    /// Counts a record that a failed registration has just disabled (`uac:reggiveup`);
    /// `failures`: its consecutive failures, from [`gave_up`].
    fn count_give_up(&self, l_uuid: &[u8], failures: Option<u32>) {
        let Some(n) = failures else { return };
        self.giveups.inc();
        let max = self.timing.retry.max_attempts;
        if max > 0 && n >= max {
            knotice!(
                "registration of [{}] given up after {n} consecutive failures \
                 (reg_retry_max_attempts): record disabled",
                Bytes(l_uuid)
            );
        }
    }

    // -----------------------------------------------------------------------
    // Lookups for script functions and RPC.

    /// The l_uuid of the record matching a filter.
    pub fn find(&self, attr: &[u8], val: &[u8]) -> Result<Option<Vec<u8>>, RegError> {
        let a = FilterAttr::parse(attr).ok_or(RegError::UnknownAttribute)?;
        Ok(match a {
            FilterAttr::LUuid => self.table.with_key(val, |r| r.s(idx::L_UUID).to_vec()),
            FilterAttr::LUsername => self.table.key_by_user(val, None),
            other => self.table.key_by_field(other.field(), val),
        })
    }

    /// The l_uuid for a local user (with its domain when `reg_use_domain`).
    pub fn find_user(&self, user: &[u8], domain: Option<&[u8]>) -> Option<Vec<u8>> {
        let d = if self.cfg.use_domain { domain } else { None };
        self.table.key_by_user(user, d.map(|d| (idx::L_DOMAIN, d)))
    }

    /// `uac_reg_enable` / `uac_reg_disable`: [`RegError::NotFound`] or
    /// [`RegError::UnknownAttribute`] when the filter matches nothing.
    pub fn set_disabled(&self, attr: &[u8], val: &[u8], disabled: bool) -> Result<(), RegError> {
        let key = self.find(attr, val)?.ok_or(RegError::NotFound)?;
        let now = now();
        let changed = self.table.with_key(&key, |r| {
            let was = r.state.is_disabled();
            r.state.set_disabled(disabled, now);
            events::on_set_disabled(&mut r.state.event, was, disabled)
        });
        let ev = changed.ok_or(RegError::NotFound)?;
        events::emit(&key, ev);
        Ok(())
    }
}

/// A REGISTER asked for by a script function or an RPC command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDemand {
    /// With the record's expiry; the record's enabled/disabled state is kept
    /// (a disabled record registers once and is not refreshed, as in C).
    Register,
    /// Expires: 0 on the binding's Call-ID; the record is disabled so it stays
    /// unregistered until enabled again.
    Unregister,
}

/// `reg_cluster`: the Contact address of the binding `b` of record `r`: the other
/// node's when it made the binding with another one, else the record's.
fn binding_with_contact(mut b: Binding, r: &RecRef<'_, RegState, { idx::COUNT }>) -> Binding {
    b.contact_addr = r
        .state
        .peer
        .then(|| ownership::contact_addr(r.state.peer_contact))
        .flatten()
        .unwrap_or_else(|| r.s(idx::CONTACT_ADDR).to_vec());
    b
}

fn with_contact(item: Item, r: &RecRef<'_, RegState, { idx::COUNT }>) -> Item {
    match item {
        Item::Binding(b) => Item::Binding(binding_with_contact(b, r)),
        gone => gone,
    }
}

/// The record's secret: its HA1 when set (32 hex digits: MD5; 64: SHA-256 or
/// SHA-512-256), else its password.
fn secret_of<'r>(r: &'r RecRef<'_, RegState, { idx::COUNT }>) -> Secret<'r> {
    let ha1 = r.s(idx::AUTH_HA1);
    if ha1.is_empty() {
        Secret::Password(r.s(idx::AUTH_PASSWORD).into())
    } else {
        Secret::Ha1 {
            family: None,
            hex: ha1.into(),
        }
    }
}

/// The credentials line answering `challenge` for the record.
fn authorization(
    r: &RecRef<'_, RegState, { idx::COUNT }>,
    challenge: &crate::sip::auth_header::DigestChallenge<'_>,
    kind: HeaderKind,
) -> Result<Vec<u8>, RegError> {
    let creds = Credentials {
        username: r.s(idx::AUTH_USERNAME).into(),
        realm: r.s(idx::REALM).into(),
        secret: secret_of(r),
    };
    let uri = record::request_uri(r.s(idx::R_DOMAIN));
    let cnonce = with_rng(digest::generate_cnonce);
    let a = digest::authorize(
        challenge,
        &creds,
        b"REGISTER",
        &uri,
        b"",
        &cnonce,
        Nc::default(),
    )
    .map_err(|e| match e {
        digest::DigestError::RealmMismatch => RegError::RealmMismatch(challenge.realm.to_vec()),
        e => RegError::Digest(e),
    })?;
    Ok(a.to_header_line(kind))
}

/// The consecutive failures of a record that the reply just handled disabled (it was
/// enabled before), for [`Reg::count_give_up`].
fn gave_up(was_enabled: bool, s: &RegState) -> Option<u32> {
    (was_enabled && s.is_disabled()).then_some(s.failures)
}

fn log_action(l_uuid: &[u8], a: &ReplyAction) {
    match a {
        ReplyAction::Registered(e) => {
            kdbg!("[{}] registered for {e} s", Bytes(l_uuid))
        }
        ReplyAction::Unregistered => kinfo!("[{}] unregistered", Bytes(l_uuid)),
        ReplyAction::IntervalTooBrief(e) => kdbg!(
            "got 423 response while registering [{}], set new expires to {e}",
            Bytes(l_uuid)
        ),
        ReplyAction::Failed { retry_at, why } => {
            let what = match why {
                Failure::Status(c) => format!("sip response {c}"),
                Failure::AuthRejected => "credentials rejected".into(),
                Failure::NoChallenge => "no usable challenge".into(),
                Failure::BindingRemoved => "binding not kept by the registrar".into(),
                Failure::NoContact => "2xx without Contact".into(),
                Failure::ContactNotOurs => "2xx without our Contact".into(),
                Failure::SendFailed => "send failure".into(),
            };
            let class = why.class().name();
            match retry_at {
                Some(t) => knotice!(
                    "registration of [{}] failed ({what}, {class}), retry in {} s",
                    Bytes(l_uuid),
                    t - now()
                ),
                None => knotice!(
                    "registration of [{}] failed ({what}, {class}), record disabled",
                    Bytes(l_uuid)
                ),
            }
        }
        ReplyAction::Authenticate { .. } | ReplyAction::Ignore => {}
    }
}

/// What the tm callback of a REGISTER carries: the record and the send's token (a
/// replaced record gets a new token, so it ignores replies meant for its predecessor).
pub struct CallbackParam {
    pub token: u32,
    pub l_uuid: Vec<u8>,
}

impl CallbackParam {
    /// The bytes of the shm block ([`crate::uac::shm_state`]).
    fn encode(token: u32, l_uuid: &[u8]) -> Vec<u8> {
        Writer::with_capacity(Writer::U32_LEN + Writer::bytes_len(l_uuid.len()))
            .u32(token)
            .bytes(l_uuid)
            .finish()
    }

    fn decode(b: &[u8]) -> Option<CallbackParam> {
        let mut r = Reader::new(b);
        let token = r.u32()?;
        let l_uuid = r.bytes()?.to_vec();
        r.end()?;
        Some(CallbackParam { token, l_uuid })
    }
}

/// The outcome of a REGISTER transaction.
pub struct Completion {
    pub code: u16,
    /// What the reply says, read from the core's parse of it; `None` for a local
    /// (faked) reply such as a timeout.
    pub reply: Option<Result<RegisterReply, HostError>>,
}

/// tm callback (TMCB_LOCAL_COMPLETED) of every REGISTER.
fn tm_completed(ev: &mut TmEvent<'_>, state: &[u8]) {
    let Some(p) = CallbackParam::decode(state) else {
        kdbg!("uuid not received");
        return;
    };
    let c = Completion {
        code: u16::try_from(ev.code).unwrap_or(500),
        reply: ev
            .reply
            .as_deref_mut()
            .filter(|m| !m.buf().is_empty())
            .map(|m| hdr_add::headers_of(m, RegisterReply::FIELDS).map(RegisterReply::from_fields)),
    };
    if let Some(reg) = get() {
        reg.on_completion(p, c);
    }
}

/// A REGISTER ready to hand to tm (owned copies, no lock held).
struct Job {
    l_uuid: Vec<u8>,
    ruri: Vec<u8>,
    aor: Vec<u8>,
    headers: Vec<u8>,
    dst_uri: Vec<u8>,
    socket: Vec<u8>,
    call_id: Vec<u8>,
    from_tag: Vec<u8>,
    cseq: u32,
    token: u32,
    /// `reg_cluster`: refreshes a binding another node made.
    takeover: bool,
}
