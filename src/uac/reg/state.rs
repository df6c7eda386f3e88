//! The registration state of one record and its transitions: when to send, what a reply
//! means, when to refresh or retry. Pure: time is passed in (seconds since the epoch), and
//! the state is a plain `Copy` value that the host keeps in shared memory.
//!
//! Timing (differences from the C module 5.6.3 in brackets):
//! - First REGISTER at `reg_init + reg_delay` (`reg_delay` from the row, or a random value
//!   below `reg_random_delay`).
//! - After a 2xx granting `e` seconds, the refresh is sent `min(reg_timer_interval + 3, e/2)`
//!   seconds before expiry [C checks only every `reg_timer_interval` seconds and lets the
//!   binding lapse when `e` < `reg_timer_interval`; the timer here checks every second].
//!   With `reg_refresh_percent` P > 0 the refresh is sent instead once P % of `e` has
//!   passed (at least 1 second after the 2xx) [not in C].
//! - After a failure, the next attempt is `reg_retry_interval` seconds later (or the
//!   registrar's `Retry-After` when longer); with `reg_retry_interval` 0 the record is
//!   disabled, as the admin guide says [C retries up to `reg_timer_interval + 3` seconds
//!   early]. Every failure has a [`FailureClass`] (temporary, credentials rejected,
//!   fatal); `reg_retry_interval_{temporary,auth,fatal}` override the interval per class
//!   (0 = disable on that class), `reg_retry_backoff_max` doubles it on each consecutive
//!   failure up to a cap with ±[`JITTER_PERCENT`] % jitter, `reg_retry_max_attempts`
//!   disables the record after that many consecutive failures [none of these in C; the
//!   defaults give the flat C behaviour]. A 2xx resets the count. See [`retry_delay`].
//! - 423: the next REGISTER asks for `Min-Expires` (or twice the previous value) at once.
//! - 401/407: answered once; a second challenge is answered again (once) only if it says
//!   `stale=true` (RFC 7616 §3.3) or brings another nonce (a registrar that rotates its
//!   nonce without saying stale, as pjsip also tolerates); a challenge for the nonce just
//!   answered is "credentials rejected" [C never answers a second challenge].
//! - The binding stays "registered" (flag 4) while a refresh is in flight and until it
//!   expires [C drops the flag while refreshing].
//! - A 2xx is a registration only when its Contact list has our binding, the Contact
//!   whose user is the record's `l_uuid`, or with a `contact_user`, whose `line` URI
//!   parameter is the `l_uuid` (RFC 3261 §10.2.4: the 2xx lists all current bindings). A 2xx without Contact, or with Contacts none of which is ours (also a
//!   single rewritten one), is a failed registration, retried after `reg_retry_interval`
//!   [C: no Contact is an error, retried the same way; no Contact of ours leaves the
//!   record unregistered and re-sends on the next timer run].

use std::borrow::Cow;

use crate::sip::auth_header::{self, DigestChallenge, HeaderKind};
use crate::sip::digest::Secret;
use crate::sip::register::{Binding, RegisterReply};
use crate::uac::reg::cluster_msg::{self, Gone, Item};
use crate::uac::reg::events::EventMark;

/// What a reply is checked against besides the state: the record's identity and secret.
#[derive(Debug, Clone, Copy)]
pub struct Ours<'a> {
    /// The record's l_uuid: the user of our Contact, or its `line` parameter.
    pub l_uuid: &'a [u8],
    /// The record has a `contact_user`: our binding in a 2xx is also told by its `line`
    /// parameter (see [`RegisterReply::binding`]).
    pub by_line: bool,
    /// The record's secret: which of several challenges it answers (the strongest it can
    /// compute, see [`Secret::preference`]).
    pub secret: &'a Secret<'a>,
}

/// A password answers every algorithm.
static ANY_ALGORITHM: Secret<'static> = Secret::Password(Cow::Borrowed(b""));

/// An l_uuid alone: a record without `contact_user`, with a password.
impl<'a> From<&'a [u8]> for Ours<'a> {
    fn from(l_uuid: &'a [u8]) -> Ours<'a> {
        Ours {
            l_uuid,
            by_line: false,
            secret: &ANY_ALGORITHM,
        }
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Ours<'a> {
    fn from(l_uuid: &'a [u8; N]) -> Ours<'a> {
        Ours::from(&l_uuid[..])
    }
}

/// Registration disabled (admin guide 7).
pub const F_DISABLED: u32 = 1 << 0;
/// REGISTER in progress.
pub const F_ONGOING: u32 = 1 << 1;
/// Registered (200 OK received, not expired).
pub const F_ONLINE: u32 = 1 << 2;
/// REGISTER with credentials in progress.
pub const F_AUTHSENT: u32 = 1 << 3;
/// Initialised (first REGISTER sent after the delay).
pub const F_INIT: u32 = 1 << 4;

/// An in-flight REGISTER with no final reply after this long is forgotten (tm always
/// reports a final reply, a 408 at worst, well before: this only guards against a lost
/// callback).
pub const ONGOING_TIMEOUT: i64 = 120;
/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: u32 = 86_400;
/// Longest expiry asked for after 423 replies.
pub const MAX_EXPIRES: u32 = 1 << 30;
/// The first CSeq of a new Call-ID (tm's DEFAULT_CSEQ).
pub const FIRST_CSEQ: u32 = 10;
/// CSeq values above this start a new Call-ID (as in C; RFC 3261 §8.1.1.5 < 2^31).
pub const MAX_CSEQ: u32 = 2_147_483_638;

/// Bytes kept in place (no pointers), for shared memory.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FixedBytes<const N: usize> {
    len: u16,
    buf: [u8; N],
}

impl<const N: usize> FixedBytes<N> {
    pub const fn empty() -> Self {
        FixedBytes {
            len: 0,
            buf: [0; N],
        }
    }
    /// `None` when `v` is longer than `N`.
    pub fn new(v: &[u8]) -> Option<Self> {
        if v.len() > N {
            return None;
        }
        let mut f = Self::empty();
        f.buf[..v.len()].copy_from_slice(v);
        f.len = v.len() as u16;
        Some(f)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len).min(N)]
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> std::fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

pub type CallId = FixedBytes<96>;
pub type Tag = FixedBytes<40>;

/// Module-wide timing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub timer_interval: u32,
    /// `reg_retry_interval`: the retry interval of every class without its own; 0
    /// disables the record on failure.
    pub retry_interval: u32,
    pub keep_callid: bool,
    /// Per-class intervals, backoff and attempt limit (all off by default).
    pub retry: RetryPolicy,
    /// `reg_refresh_percent`: refresh once this share (%) of the granted expiry has
    /// passed; 0 = the C margin (see [`refresh_after`]).
    pub refresh_percent: u32,
}

/// How failures are retried beyond the flat `reg_retry_interval`. The default changes
/// nothing: every class uses `reg_retry_interval`, no backoff, no attempt limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// `reg_retry_interval_temporary`; `None`: `reg_retry_interval`. 0 disables.
    pub temporary: Option<u32>,
    /// `reg_retry_interval_auth`; `None`: `reg_retry_interval`. 0 disables.
    pub auth: Option<u32>,
    /// `reg_retry_interval_fatal`; `None`: `reg_retry_interval`. 0 disables.
    pub fatal: Option<u32>,
    /// `reg_retry_backoff_max`: 0 = no backoff; else each consecutive failure doubles
    /// the class interval, up to this many seconds (never below the class interval),
    /// with jitter.
    pub backoff_max: u32,
    /// `reg_retry_max_attempts`: 0 = unlimited; else the record is disabled after this
    /// many consecutive failures.
    pub max_attempts: u32,
}

impl Timing {
    /// The base retry interval of a class (0: disable the record).
    pub fn class_interval(&self, class: FailureClass) -> u32 {
        let own = match class {
            FailureClass::Temporary => self.retry.temporary,
            FailureClass::Auth => self.retry.auth,
            FailureClass::Fatal => self.retry.fatal,
        };
        own.unwrap_or(self.retry_interval)
    }
}

/// What kind of failure a failed registration was; chooses the retry interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FailureClass {
    /// Likely to pass by itself: 408 (also tm's local 408 when nothing answered), 480,
    /// 5xx, 6xx but 603 (RFC 3261 §21.4.9, §21.4.18, §21.5, §21.6), and a REGISTER tm
    /// could not send.
    Temporary = 1,
    /// Credentials rejected: 403, a second challenge for the nonce already answered
    /// (RFC 3261 §22.2, RFC 7616 §3.3), a challenge that cannot be answered (unknown
    /// algorithm, another realm).
    Auth = 2,
    /// Will not change without the operator: 404 and the other 4xx, 3xx (redirects are
    /// not followed), 603, and a 2xx that binds nothing of ours (no Contact, not our
    /// Contact, expires 0).
    Fatal = 3,
}

impl FailureClass {
    /// The class of a final failure status code (not 401/407/423, which the state
    /// machine answers; a 401/407 left over counts as credentials rejected).
    pub fn of_status(code: u16) -> FailureClass {
        match code {
            408 | 480 | 500..=599 => FailureClass::Temporary,
            600..=699 if code != 603 => FailureClass::Temporary,
            401 | 403 | 407 => FailureClass::Auth,
            _ => FailureClass::Fatal,
        }
    }

    /// The name shown by `uac.reg_info` / `uac.reg_dump` and in the log.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Temporary => "temporary",
            FailureClass::Auth => "auth",
            FailureClass::Fatal => "fatal",
        }
    }

    fn from_u8(v: u8) -> Option<FailureClass> {
        match v {
            1 => Some(FailureClass::Temporary),
            2 => Some(FailureClass::Auth),
            3 => Some(FailureClass::Fatal),
            _ => None,
        }
    }
}

/// Largest jitter applied to a backed-off retry interval, in percent either way.
pub const JITTER_PERCENT: u32 = 20;

/// Seconds to wait before the next attempt after the `failures`-th consecutive failure
/// of class `class` (`failures` >= 1), or `None` to disable the record. `rnd` is a
/// uniformly random value (the jitter); it matters only with backoff. A `Retry-After`
/// (RFC 3261 §20.33) is a floor for every class: never retried sooner than it says.
pub fn retry_delay(
    t: &Timing,
    class: FailureClass,
    failures: u32,
    retry_after: Option<u32>,
    rnd: u32,
) -> Option<u32> {
    if t.retry.max_attempts > 0 && failures >= t.retry.max_attempts {
        return None;
    }
    let base = t.class_interval(class);
    if base == 0 {
        return None;
    }
    let wait = if t.retry.backoff_max > 0 {
        let doublings = failures.saturating_sub(1).min(31);
        let cap = t.retry.backoff_max.max(base);
        jitter(base.saturating_mul(1 << doublings).min(cap), rnd)
    } else {
        base
    };
    Some(wait.max(retry_after.unwrap_or(0).min(MAX_RETRY_AFTER)))
}

/// `secs` moved by up to ±[`JITTER_PERCENT`] % (whole seconds), chosen by `rnd`
/// (uniform over `u32` gives a uniform result); at least 1.
pub fn jitter(secs: u32, rnd: u32) -> u32 {
    let spread = u64::from(secs) * u64::from(JITTER_PERCENT) / 100;
    let pick = (u64::from(rnd) * (2 * spread + 1)) >> 32;
    (u64::from(secs) - spread + pick).clamp(1, u64::from(u32::MAX)) as u32
}

/// A well-mixed 32-bit value from `a` and `b` (SplitMix64 finaliser).
fn mix(a: u32, b: u32) -> u32 {
    let mut z = (u64::from(a) << 32 | u64::from(b)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// FNV-1a of a nonce: enough to tell "the nonce just answered" from another one.
fn nonce_hash(n: &[u8]) -> u32 {
    n.iter().fold(0x811c_9dc5u32, |h, &c| {
        (h ^ u32::from(c)).wrapping_mul(0x0100_0193)
    })
}

/// The mutable state of one registration record.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegState {
    pub flags: u32,
    /// Expiry asked for in REGISTER (the row's `expires`, raised by 423).
    pub expires: u32,
    /// Seconds to wait after `reg_init` before the first REGISTER.
    pub reg_delay: u32,
    /// The row's `expires`, `flags` and `reg_delay` as loaded (to detect changed rows).
    pub db_expires: u32,
    pub db_flags: u32,
    pub db_reg_delay: u32,
    /// When the record was loaded.
    pub reg_init: i64,
    /// When the binding expires (registered), or when the last REGISTER was sent.
    pub timer_expires: i64,
    /// When the timer sends the next REGISTER.
    pub next_due: i64,
    /// When the REGISTER in flight was sent.
    pub ongoing_since: i64,
    /// CSeq of the last REGISTER sent (0: start a new Call-ID next time).
    pub cseq: u32,
    /// Identifies the REGISTER in flight: replies carrying another token are stale.
    pub token: u32,
    /// Consecutive failed registrations (0 after a 2xx).
    pub failures: u32,
    /// Hash of the nonce last answered for the REGISTER in flight.
    pub auth_nonce: u32,
    /// Credentials sent for the REGISTER in flight.
    pub auth_count: u8,
    /// The REGISTER in flight removes the binding (Expires: 0).
    pub unregistering: bool,
    /// [`FailureClass`] of the last failure as `u8`; 0 after a 2xx.
    pub fail_class: u8,
    pub call_id: CallId,
    pub from_tag: Tag,
    /// The last state event raised (`events`), so each change is reported once.
    pub event: EventMark,
    /// `reg_cluster`: another node owns the record; the timer looks at it again at
    /// this time, or sooner when the cluster's membership changes (0: not parked).
    pub parked_until: i64,
    /// `reg_cluster`: the binding changed (2xx); the timer tells the other nodes at its
    /// next tick.
    pub share: bool,
    /// `reg_cluster`: `call_id`, `from_tag`, `cseq`, `timer_expires` and `next_due`
    /// describe a binding another node made ([`RegState::adopt`]); the first REGISTER
    /// this node sends refreshes it.
    pub peer: bool,
    /// The record is disabled because a registration failed (not by the operator).
    pub gave_up: bool,
    /// `reg_cluster`: the binding another node made has another Contact address than
    /// this node's: its number (1-based) in the engine's table of such addresses; the
    /// REGISTERs of this node remove that Contact until one is accepted. 0: none.
    pub peer_contact: u8,
}

/// What to put in the next REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPlan {
    pub token: u32,
    pub call_id: Vec<u8>,
    pub from_tag: Vec<u8>,
    pub cseq: u32,
    pub expires: u32,
    /// `reg_cluster`: this REGISTER refreshes a binding another node made.
    pub takeover: bool,
    /// `reg_cluster`: also remove this Contact (see [`RegState::peer_contact`]).
    pub remove_contact: u8,
}

/// What to do after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyAction {
    /// Not for the REGISTER in flight (stale token, or nothing in flight).
    Ignore,
    /// Registered (or unregistered) for this many seconds.
    Registered(u32),
    Unregistered,
    /// Answer the challenge with this request (state already updated).
    Authenticate {
        challenge: Box<DigestChallenge<'static>>,
        kind: HeaderKind,
        plan: SendPlan,
    },
    /// 423: the next REGISTER (immediately) asks for this expiry.
    IntervalTooBrief(u32),
    /// Failed; `retry_at` is the next attempt, `None` when the record is now disabled.
    Failed {
        retry_at: Option<i64>,
        why: Failure,
    },
}

/// Why a registration failed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status(u16),
    AuthRejected,
    NoChallenge,
    BindingRemoved,
    /// A 2xx without any Contact.
    NoContact,
    /// A 2xx whose Contacts do not include ours (user = l_uuid).
    ContactNotOurs,
    SendFailed,
}

impl Failure {
    /// The retry class of this failure (README "Retry classes").
    pub fn class(&self) -> FailureClass {
        match self {
            Failure::Status(code) => FailureClass::of_status(*code),
            Failure::AuthRejected | Failure::NoChallenge => FailureClass::Auth,
            Failure::BindingRemoved | Failure::NoContact | Failure::ContactNotOurs => {
                FailureClass::Fatal
            }
            Failure::SendFailed => FailureClass::Temporary,
        }
    }
}

/// What `uac_reg_status` reports for a record (admin guide 4.10; `ffi::reg` turns it
/// into the documented script code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStatus {
    /// Registered and not expired.
    Registered,
    /// A REGISTER is in flight.
    InProgress,
    /// Disabled (by script, RPC or giving up).
    Disabled,
    /// Anything else (not yet registered, failed, waiting for a retry).
    Other,
}

impl RegState {
    /// A freshly loaded record. Of the row's `flags` only "disabled" (1) is kept: the
    /// other bits are run-time state.
    pub fn new(expires: u32, db_flags: u32, reg_delay: u32, now: i64) -> RegState {
        RegState {
            flags: db_flags & F_DISABLED,
            expires,
            reg_delay,
            db_expires: expires,
            db_flags,
            db_reg_delay: reg_delay,
            reg_init: now,
            timer_expires: 0,
            next_due: 0,
            ongoing_since: 0,
            cseq: 0,
            token: 0,
            failures: 0,
            auth_nonce: 0,
            auth_count: 0,
            unregistering: false,
            fail_class: 0,
            call_id: CallId::empty(),
            from_tag: Tag::empty(),
            event: EventMark::NONE,
            parked_until: 0,
            share: false,
            peer: false,
            gave_up: false,
            peer_contact: 0,
        }
    }

    pub fn is_online(&self) -> bool {
        self.flags & F_ONLINE != 0
    }
    pub fn is_disabled(&self) -> bool {
        self.flags & F_DISABLED != 0
    }

    /// `uac_reg_status()` (admin guide 4.10): registered, in progress, disabled or
    /// other (e.g. failed, waiting for retry).
    pub fn status(&self, now: i64) -> RegStatus {
        if (self.is_online() || self.peer) && self.timer_expires > now {
            RegStatus::Registered
        } else if self.flags & F_ONGOING != 0 {
            RegStatus::InProgress
        } else if self.is_disabled() {
            RegStatus::Disabled
        } else {
            RegStatus::Other
        }
    }

    /// The earliest time at which [`RegState::tick`] may change this record or
    /// send for it (`i64::MAX`: never, until something else changes it). The
    /// timer skips its walk of the table until the earliest of all records.
    pub fn wake_at(&self) -> i64 {
        if self.share {
            return 0;
        }
        // A parked record (owned by another node) is not due before its recheck; one
        // that is never due (disabled, expires 0) stays never due.
        self.due_at().max(self.parked_until)
    }

    /// When the record needs the timer, parking aside.
    fn due_at(&self) -> i64 {
        let mut at = i64::MAX;
        if self.is_online() || self.peer {
            at = self.timer_expires;
        }
        if self.flags & F_ONGOING != 0 {
            return at.min(self.ongoing_since.saturating_add(ONGOING_TIMEOUT));
        }
        if self.expires == 0 || self.is_disabled() {
            return at;
        }
        if self.flags & F_INIT == 0 {
            return at.min(self.reg_init.saturating_add(i64::from(self.reg_delay)));
        }
        at.min(self.next_due)
    }

    /// One timer tick: updates expiry/timeouts and says whether to send a REGISTER now.
    pub fn tick(&mut self, now: i64, active: bool) -> bool {
        if self.is_online() && now >= self.timer_expires {
            self.flags &= !F_ONLINE;
        }
        if self.peer && now >= self.timer_expires {
            // The other node's binding lapsed: the next REGISTER starts a new one.
            self.peer = false;
            self.cseq = 0;
            self.peer_contact = 0;
        }
        if self.flags & F_ONGOING != 0 {
            if now - self.ongoing_since < ONGOING_TIMEOUT {
                return false;
            }
            self.flags &= !(F_ONGOING | F_AUTHSENT);
            self.unregistering = false;
        }
        if self.expires == 0 || !active || self.is_disabled() {
            return false;
        }
        if self.flags & F_INIT == 0 {
            if now < self.reg_init.saturating_add(i64::from(self.reg_delay)) {
                return false;
            }
            self.flags |= F_INIT;
        }
        now >= self.next_due
    }

    /// Marks a REGISTER as sent and returns its identifiers. `new_ids` gives a fresh
    /// (Call-ID, From tag) pair when the Call-ID is not kept.
    pub fn begin_send(
        &mut self,
        now: i64,
        t: &Timing,
        unregister: bool,
        new_ids: &mut dyn FnMut() -> (Vec<u8>, Vec<u8>),
    ) -> SendPlan {
        let known = !self.call_id.is_empty() && self.cseq > 0 && self.cseq < MAX_CSEQ;
        // unREGISTER must use the Call-ID of the binding (RFC 3261 §10.2.2); so does the
        // refresh of a binding another node of the cluster made (one binding, not two).
        let reuse = known && (t.keep_callid || unregister || self.peer);
        let takeover = std::mem::take(&mut self.peer) && reuse;
        if reuse {
            self.cseq += 1;
        } else {
            let (cid, tag) = new_ids();
            self.call_id = CallId::new(&cid).unwrap_or_else(|| {
                CallId::new(&cid[..cid.len().min(96)]).unwrap_or(CallId::empty())
            });
            self.from_tag = Tag::new(&tag)
                .unwrap_or_else(|| Tag::new(&tag[..tag.len().min(40)]).unwrap_or(Tag::empty()));
            self.cseq = FIRST_CSEQ;
        }
        self.token = self.token.wrapping_add(1);
        self.flags |= F_ONGOING;
        self.flags &= !F_AUTHSENT;
        self.auth_count = 0;
        self.ongoing_since = now;
        self.unregistering = unregister;
        if !self.is_online() {
            self.timer_expires = now;
        }
        SendPlan {
            token: self.token,
            call_id: self.call_id.as_bytes().to_vec(),
            from_tag: self.from_tag.as_bytes().to_vec(),
            cseq: self.cseq,
            expires: if unregister { 0 } else { self.expires },
            takeover,
            remove_contact: self.peer_contact,
        }
    }

    /// tm refused the request: treated as a failure.
    pub fn send_failed(&mut self, token: u32, now: i64, t: &Timing) -> Option<ReplyAction> {
        if token != self.token || self.flags & F_ONGOING == 0 {
            return None;
        }
        Some(self.fail(now, t, None, Failure::SendFailed))
    }

    fn fail(
        &mut self,
        now: i64,
        t: &Timing,
        retry_after: Option<u32>,
        why: Failure,
    ) -> ReplyAction {
        self.flags &= !(F_ONGOING | F_AUTHSENT | F_ONLINE);
        self.cseq = 0;
        let unregistering = std::mem::take(&mut self.unregistering);
        if unregistering {
            // The record is already disabled; nothing to retry.
            return ReplyAction::Failed {
                retry_at: None,
                why,
            };
        }
        let class = why.class();
        self.fail_class = class as u8;
        self.failures = self.failures.saturating_add(1);
        // The jitter's randomness: the token starts at a random value per record (the
        // engine draws it) and changes with every send, so records that fail together
        // spread out, while this stays a pure function of the state.
        let rnd = mix(self.token, self.failures);
        match retry_delay(t, class, self.failures, retry_after, rnd) {
            Some(wait) => {
                self.next_due = now + i64::from(wait);
                ReplyAction::Failed {
                    retry_at: Some(self.next_due),
                    why,
                }
            }
            None => {
                self.flags |= F_DISABLED;
                self.gave_up = true;
                ReplyAction::Failed {
                    retry_at: None,
                    why,
                }
            }
        }
    }

    /// The class of the last failure; `None` when the last attempt succeeded (or none
    /// was made yet).
    pub fn failure_class(&self) -> Option<FailureClass> {
        FailureClass::from_u8(self.fail_class)
    }

    /// Whether the last failure disabled the record because `reg_retry_max_attempts`
    /// consecutive attempts had failed.
    pub fn attempts_exhausted(&self, t: &Timing) -> bool {
        t.retry.max_attempts > 0 && self.failures >= t.retry.max_attempts && self.is_disabled()
    }

    /// A challenge that the REGISTER in flight cannot answer (e.g. another realm than
    /// the record's): the credentials are rejected, as after a 403.
    pub fn auth_unanswerable(&mut self, token: u32, now: i64, t: &Timing) -> Option<ReplyAction> {
        if token != self.token || self.flags & F_ONGOING == 0 {
            return None;
        }
        Some(self.fail(now, t, None, Failure::NoChallenge))
    }

    /// A final reply to the REGISTER carrying `token`.
    pub fn on_reply<'a>(
        &mut self,
        token: u32,
        code: u16,
        reply: Option<&RegisterReply>,
        ours: impl Into<Ours<'a>>,
        now: i64,
        t: &Timing,
    ) -> ReplyAction {
        let ours = ours.into();
        if token != self.token || self.flags & F_ONGOING == 0 {
            return ReplyAction::Ignore;
        }
        let empty = RegisterReply::default();
        let r = reply.unwrap_or(&empty);
        match code {
            200..=299 => {
                self.flags &= !(F_ONGOING | F_AUTHSENT);
                // The Contact a takeover removed is gone with this REGISTER.
                self.peer_contact = 0;
                if let (Some(cid), Some(cseq)) = (&r.call_id, r.cseq)
                    && let Some(c) = CallId::new(cid)
                {
                    self.call_id = c;
                    self.cseq = cseq;
                }
                if std::mem::take(&mut self.unregistering) {
                    self.flags &= !F_ONLINE;
                    self.timer_expires = now;
                    self.failures = 0;
                    self.fail_class = 0;
                    return ReplyAction::Unregistered;
                }
                // Without our Contact the 2xx proves no binding (RFC 3261 §10.2.4).
                // Deliberately stricter than "the only Contact, rewritten, is ours": the
                // C module does not accept that either, and a registrar that rewrites
                // Contacts cannot be told from one that bound someone else.
                let granted = match r.binding(ours.l_uuid, ours.by_line) {
                    Binding::Granted(g) => g,
                    Binding::NoContact => {
                        return self.fail(now, t, r.retry_after, Failure::NoContact);
                    }
                    Binding::NotListed => {
                        return self.fail(now, t, r.retry_after, Failure::ContactNotOurs);
                    }
                };
                // A registrar may shorten the interval, not lengthen it (RFC 3261 §10.3
                // step 7): a longer grant (up to 2^32-1 from a broken registrar) is taken
                // as the interval asked for, so refreshes stay on schedule.
                let granted = granted.unwrap_or(self.expires).min(self.expires);
                if granted == 0 {
                    return self.fail(now, t, r.retry_after, Failure::BindingRemoved);
                }
                self.flags |= F_ONLINE;
                self.failures = 0;
                self.fail_class = 0;
                self.timer_expires = now + i64::from(granted);
                self.next_due = now + i64::from(refresh_delay(granted, t));
                ReplyAction::Registered(granted)
            }
            401 | 407 => {
                let kind = if code == 401 {
                    HeaderKind::Authorization
                } else {
                    HeaderKind::ProxyAuthorization
                };
                let values: Vec<&[u8]> = if code == 401 {
                    r.www_authenticate.iter().map(Vec::as_slice).collect()
                } else {
                    r.proxy_authenticate.iter().map(Vec::as_slice).collect()
                };
                // Per realm the strongest challenge the record's secret can answer; the
                // first realm (a registrar names one).
                let preference = |a| ours.secret.preference(a);
                let Some(ch) = auth_header::select_challenges_for(&values, preference)
                    .into_iter()
                    .next()
                else {
                    return self.fail(now, t, r.retry_after, Failure::NoChallenge);
                };
                // One answer per REGISTER; a second only for a stale nonce (RFC 7616 §3.3)
                // or a new one (rotated without stale=true). A challenge for the nonce
                // just answered rejects the credentials.
                let nonce = nonce_hash(&ch.nonce);
                let same_nonce = self.auth_count == 1 && !ch.stale && nonce == self.auth_nonce;
                if self.auth_count >= 2 || same_nonce {
                    return self.fail(now, t, r.retry_after, Failure::AuthRejected);
                }
                self.auth_count += 1;
                self.auth_nonce = nonce;
                self.flags |= F_AUTHSENT;
                // Same Call-ID, CSeq + 1 (RFC 3261 §22.2).
                if let Some(c) = r.call_id.as_deref().and_then(CallId::new) {
                    self.call_id = c;
                }
                let base = r.cseq.unwrap_or(self.cseq);
                self.cseq = base.saturating_add(1);
                self.ongoing_since = now;
                ReplyAction::Authenticate {
                    challenge: Box::new(ch.into_owned()),
                    kind,
                    plan: SendPlan {
                        token: self.token,
                        call_id: self.call_id.as_bytes().to_vec(),
                        from_tag: self.from_tag.as_bytes().to_vec(),
                        cseq: self.cseq,
                        expires: if self.unregistering { 0 } else { self.expires },
                        takeover: false,
                        remove_contact: self.peer_contact,
                    },
                }
            }
            423 if !self.unregistering => {
                self.flags &= !(F_ONGOING | F_AUTHSENT);
                let doubled = self.expires.saturating_mul(2).max(1);
                let next = match r.min_expires {
                    Some(m) if m > self.expires => m,
                    _ => doubled,
                };
                self.expires = next.min(MAX_EXPIRES);
                self.next_due = now;
                ReplyAction::IntervalTooBrief(self.expires)
            }
            _ => self.fail(now, t, r.retry_after, Failure::Status(code)),
        }
    }

    /// Script/RPC enable (`set` false) or disable (`set` true).
    pub fn set_disabled(&mut self, set: bool, now: i64) {
        self.gave_up = false;
        if set {
            self.flags |= F_DISABLED;
        } else {
            if self.is_disabled() {
                // Enabled again: a fresh run of attempts.
                self.failures = 0;
            }
            self.flags &= !F_DISABLED;
            if !self.is_online() {
                self.next_due = now;
            }
        }
    }

    /// `uac.reg_unregister`: marks the record disabled so it stays unregistered until
    /// enabled again; the caller then sends the REGISTER with Expires: 0.
    pub fn prepare_unregister(&mut self) {
        self.flags |= F_DISABLED;
        self.gave_up = false;
    }

    /// Seconds until the next REGISTER (negative when overdue), for `diff_expires`.
    pub fn diff_expires(&self, now: i64) -> i64 {
        self.timer_expires - now
    }

    /// `reg_cluster`: the binding this node knows for the account (its own or a
    /// peer's), if it has not expired.
    pub fn known_binding(&self, l_uuid: &[u8], now: i64) -> Option<cluster_msg::Binding> {
        let live = (self.is_online() || self.peer) && self.timer_expires > now;
        (live && !self.call_id.is_empty() && self.cseq > 0).then(|| cluster_msg::Binding {
            l_uuid: l_uuid.to_vec(),
            call_id: self.call_id.as_bytes().to_vec(),
            from_tag: self.from_tag.as_bytes().to_vec(),
            cseq: self.cseq,
            expires_in: secs(self.timer_expires - now),
            refresh_in: secs(self.next_due - now),
            // The engine knows the record's Contact address.
            contact_addr: Vec::new(),
        })
    }

    /// `reg_cluster`: what to tell the other nodes after this node's 2xx ([`share`]):
    /// the binding, or that it is gone (unREGISTER).
    ///
    /// [`share`]: RegState::share
    pub fn shared_item(&self, l_uuid: &[u8], now: i64) -> Item {
        match self.known_binding(l_uuid, now) {
            Some(b) => Item::Binding(b),
            None => Item::Gone(Gone {
                l_uuid: l_uuid.to_vec(),
                call_id: self.call_id.as_bytes().to_vec(),
                cseq: self.cseq,
            }),
        }
    }

    /// `reg_cluster`: another node's binding for the account. Taken when it is newer
    /// than what this node knows (same Call-ID and a higher CSeq, or another Call-ID
    /// that expires later); then the record is not registered by this node any more
    /// (`peer`), and, should this node own the account, its first REGISTER refreshes
    /// that binding (same Call-ID, CSeq + 1) when the other node planned to. A REGISTER
    /// of ours in flight wins; only its CSeq is kept above theirs for the next one.
    pub fn adopt(&mut self, b: &cluster_msg::Binding, now: i64) -> bool {
        let same = self.call_id.as_bytes() == b.call_id.as_slice();
        if self.flags & F_ONGOING != 0 {
            if same {
                self.cseq = self.cseq.max(b.cseq);
            }
            return false;
        }
        let expires_at = now.saturating_add(i64::from(b.expires_in));
        let known = self.is_online() || self.peer;
        let newer = if same {
            b.cseq > self.cseq
        } else {
            // 1 s of slack: relative times are rounded to seconds on both sides.
            !known || expires_at > self.timer_expires.saturating_add(1)
        };
        let usable = b.cseq > 0 && b.cseq < MAX_CSEQ && b.expires_in > 0;
        let (Some(call_id), Some(from_tag)) = (CallId::new(&b.call_id), Tag::new(&b.from_tag))
        else {
            return false;
        };
        if !newer || !usable || call_id.is_empty() {
            return false;
        }
        self.call_id = call_id;
        self.from_tag = from_tag;
        self.cseq = b.cseq;
        self.flags &= !F_ONLINE;
        // Past the initial delay: the account is registered already.
        self.flags |= F_INIT;
        self.peer = true;
        if self.is_disabled() && self.gave_up {
            // Disabled by a failure (e.g. a refresh refused during a network split:
            // both sides sent the same CSeq), which another node has since overcome:
            // this node may own the account again later.
            self.flags &= !F_DISABLED;
            self.gave_up = false;
        }
        self.failures = 0;
        self.fail_class = 0;
        self.timer_expires = expires_at;
        self.next_due = now.saturating_add(i64::from(b.refresh_in.min(b.expires_in)));
        true
    }

    /// `reg_cluster`: another node removed the binding (unREGISTER). Forgotten when it
    /// is the binding this node knows, at that CSeq or later.
    pub fn forget(&mut self, g: &Gone, now: i64) -> bool {
        let known = self.is_online() || self.peer;
        if !known
            || self.flags & F_ONGOING != 0
            || self.call_id.as_bytes() != g.call_id.as_slice()
            || g.cseq < self.cseq
        {
            return false;
        }
        self.flags &= !F_ONLINE;
        self.peer = false;
        self.cseq = 0;
        self.timer_expires = now;
        true
    }
}

/// Seconds from now until `delta`, as a count of whole seconds (0 when past).
fn secs(delta: i64) -> u32 {
    u32::try_from(delta.max(0)).unwrap_or(u32::MAX)
}

/// When to refresh a binding granted for `granted` seconds: `min(interval + 3, granted/2)`
/// seconds before it expires, and never sooner than 1 second.
pub fn refresh_after(granted: u32, timer_interval: u32) -> u32 {
    let margin = timer_interval.saturating_add(3).min(granted / 2);
    granted.saturating_sub(margin).max(1)
}

/// Seconds after a 2xx granting `granted` seconds to send the refresh: with
/// `reg_refresh_percent` P > 0, once P % of `granted` has passed (at least 1 second),
/// else [`refresh_after`].
pub fn refresh_delay(granted: u32, t: &Timing) -> u32 {
    if t.refresh_percent == 0 {
        return refresh_after(granted, t.timer_interval);
    }
    let at = u64::from(granted) * u64::from(t.refresh_percent.min(100)) / 100;
    (at as u32).max(1)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_parked_record_waits_for_its_recheck_and_a_never_due_one_stays_never_due() {
        // reg_cluster: a record another node owns is parked until a recheck time.
        let mut s = RegState::new(3600, 0, 0, 100);
        assert_eq!(s.wake_at(), 100);
        s.parked_until = 160;
        assert_eq!(s.wake_at(), 160);
        s.parked_until = 0;
        assert_eq!(s.wake_at(), 100, "unparking restores the record's own time");
        let mut never = RegState::new(0, 0, 0, 100);
        never.parked_until = 160;
        assert_eq!(never.wake_at(), i64::MAX);
    }
    use super::*;

    const T: Timing = Timing {
        timer_interval: 2,
        retry_interval: 10,
        keep_callid: true,
        retry: RetryPolicy {
            temporary: None,
            auth: None,
            fatal: None,
            backoff_max: 0,
            max_attempts: 0,
        },
        refresh_percent: 0,
    };

    fn ids() -> impl FnMut() -> (Vec<u8>, Vec<u8>) {
        let mut n = 0;
        move || {
            n += 1;
            (
                format!("cid{n}").into_bytes(),
                format!("tag{n}").into_bytes(),
            )
        }
    }

    fn ok(uuid: &str, expires: u32, cseq: u32, cid: &str) -> RegisterReply {
        let m = format!(
            "SIP/2.0 200 OK\r\nCall-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{uuid}@h>;expires={expires}\r\n\r\n"
        );
        RegisterReply::parse(m.as_bytes()).unwrap()
    }

    /// A record registered by this node at `t` with Call-ID cid1, CSeq 10, 60 s.
    fn registered_at(t: i64, keep_callid: bool) -> RegState {
        let timing = Timing { keep_callid, ..T };
        let mut s = RegState::new(60, 0, 0, t);
        assert!(s.tick(t, true));
        let p = s.begin_send(t, &timing, false, &mut ids());
        let a = s.on_reply(
            p.token,
            200,
            Some(&ok("u", 60, 10, "cid1")),
            b"u",
            t,
            &timing,
        );
        assert_eq!(a, ReplyAction::Registered(60));
        s
    }

    fn peer_binding(
        cid: &str,
        cseq: u32,
        expires_in: u32,
        refresh_in: u32,
    ) -> cluster_msg::Binding {
        cluster_msg::Binding {
            l_uuid: b"u".to_vec(),
            call_id: cid.as_bytes().to_vec(),
            from_tag: b"ptag".to_vec(),
            cseq,
            expires_in,
            refresh_in,
            contact_addr: Vec::new(),
        }
    }

    #[test]
    fn cluster_a_taken_over_binding_is_refreshed_with_its_call_id_when_planned() {
        // Node A registered; node B (keep_callid off) adopts A's binding and, owning the
        // account, refreshes it at A's planned time with the same Call-ID and CSeq + 1.
        let a = registered_at(1000, true);
        let b_shared = a.known_binding(b"u", 1010).unwrap();
        assert_eq!(
            (b_shared.cseq, b_shared.expires_in, b_shared.refresh_in),
            (10, 50, 45)
        );
        let mut b = RegState::new(60, 0, 30, 1005);
        assert!(b.adopt(&b_shared, 1010));
        assert!(b.peer && !b.is_online());
        assert_eq!(
            b.status(1010),
            RegStatus::Registered,
            "registered, by a peer"
        );
        assert_eq!(b.wake_at(), 1055);
        assert!(
            !b.tick(1054, true),
            "not before A's planned refresh (nor its reg_delay)"
        );
        assert!(b.tick(1055, true));
        let timing = Timing {
            keep_callid: false,
            ..T
        };
        // A made it with another Contact address (the engine numbers it): removed by
        // every REGISTER of B until one is accepted.
        b.peer_contact = 3;
        let p = b.begin_send(1055, &timing, false, &mut ids());
        assert_eq!(p.remove_contact, 3);
        assert_eq!(
            (p.call_id.as_slice(), p.cseq, p.from_tag.as_slice()),
            (&b"cid1"[..], 11, &b"tag1"[..]),
            "A's From tag too"
        );
        assert!(p.takeover);
        assert!(!b.peer);
        // After its own 2xx the next refresh follows keep_callid again.
        let r = b.on_reply(
            p.token,
            200,
            Some(&ok("u", 60, 11, "cid1")),
            b"u",
            1056,
            &timing,
        );
        assert_eq!(r, ReplyAction::Registered(60));
        assert_eq!(b.peer_contact, 0, "the old Contact is gone");
        assert!(b.tick(1111, true));
        let p2 = b.begin_send(1111, &timing, false, &mut || {
            (b"fresh".to_vec(), b"t".to_vec())
        });
        assert!(!p2.takeover);
        assert_eq!(p2.call_id, b"fresh");
    }

    #[test]
    fn cluster_adopt_takes_only_newer_bindings() {
        let mut s = registered_at(1000, true);
        // Our own binding echoed back: not newer.
        assert!(!s.adopt(&peer_binding("cid1", 10, 60, 55), 1000));
        assert!(s.is_online() && !s.peer);
        // Another Call-ID that expires no later: ours stays.
        assert!(!s.adopt(&peer_binding("other", 99, 59, 50), 1001));
        // The same binding refreshed by the new owner: adopted, no longer ours.
        assert!(s.adopt(&peer_binding("cid1", 11, 60, 55), 1020));
        assert!(!s.is_online() && s.peer);
        assert_eq!((s.cseq, s.timer_expires, s.next_due), (11, 1080, 1075));
        // Unusable lines are refused.
        let mut f = RegState::new(60, 0, 0, 0);
        assert!(!f.adopt(&peer_binding("", 5, 60, 50), 0));
        assert!(!f.adopt(&peer_binding("c", 0, 60, 50), 0));
        assert!(!f.adopt(&peer_binding("c", 5, 0, 0), 0));
        assert!(!f.adopt(&peer_binding(&"x".repeat(200), 5, 60, 50), 0));
        // refresh_in beyond expiry is capped at the expiry.
        assert!(f.adopt(&peer_binding("c", 5, 60, 500), 0));
        assert_eq!(f.next_due, 60);
    }

    #[test]
    fn cluster_in_flight_register_wins_but_keeps_its_next_cseq_above() {
        let mut s = registered_at(1000, true);
        assert!(s.tick(1055, true));
        let p = s.begin_send(1055, &T, false, &mut ids());
        assert_eq!(p.cseq, 11);
        assert!(!s.adopt(&peer_binding("cid1", 14, 60, 55), 1055));
        assert_eq!(s.cseq, 14);
        assert!(!s.peer);
    }

    #[test]
    fn cluster_share_wakes_the_timer_and_says_gone_after_unregister() {
        let mut s = registered_at(1000, true);
        s.share = true;
        assert_eq!(s.wake_at(), 0);
        assert!(matches!(s.shared_item(b"u", 1001), Item::Binding(_)));
        s.prepare_unregister();
        let p = s.begin_send(1002, &T, true, &mut ids());
        let r = s.on_reply(p.token, 200, Some(&ok("u", 0, 11, "cid1")), b"u", 1002, &T);
        assert_eq!(r, ReplyAction::Unregistered);
        let gone = match s.shared_item(b"u", 1002) {
            Item::Gone(g) => g,
            i => panic!("{i:?}"),
        };
        assert_eq!((gone.call_id.as_slice(), gone.cseq), (&b"cid1"[..], 11));
        // A peer that knew the binding forgets it.
        let mut peer = RegState::new(60, 0, 0, 0);
        assert!(peer.adopt(&peer_binding("cid1", 10, 60, 55), 1000));
        assert!(!peer.forget(
            &Gone {
                l_uuid: b"u".to_vec(),
                call_id: b"zz".to_vec(),
                cseq: 11
            },
            1002
        ));
        assert!(peer.forget(&gone, 1002));
        assert!(!peer.peer && peer.known_binding(b"u", 1002).is_none());
    }

    #[test]
    fn cluster_a_peer_binding_undoes_a_give_up_but_not_an_operator_disable() {
        let t = Timing {
            retry_interval: 0,
            ..T
        };
        let mut s = registered_at(1000, true);
        assert!(s.tick(1055, true));
        let p = s.begin_send(1055, &t, false, &mut ids());
        // Both sides of a split sent CSeq 11: the registrar refused this one.
        let a = s.on_reply(p.token, 500, None, b"u", 1055, &t);
        assert!(matches!(a, ReplyAction::Failed { retry_at: None, .. }));
        assert!(s.is_disabled());
        assert!(s.adopt(&peer_binding("cid1", 11, 60, 55), 1056));
        assert!(!s.is_disabled(), "the other side registered it");
        let mut off = RegState::new(60, F_DISABLED, 0, 0);
        assert!(off.adopt(&peer_binding("c", 5, 60, 50), 0));
        assert!(
            off.is_disabled(),
            "disabled by the operator (or the row) stays disabled"
        );
    }

    #[test]
    fn cluster_a_lapsed_peer_binding_starts_a_new_call_id() {
        let mut s = RegState::new(60, 0, 0, 0);
        assert!(s.adopt(&peer_binding("cid9", 10, 60, 50), 1000));
        // Owned only after the binding expired (e.g. the cluster was split).
        assert!(s.tick(1060, true));
        assert!(!s.peer);
        let p = s.begin_send(1060, &T, false, &mut ids());
        assert!(!p.takeover);
        assert_eq!((p.cseq, p.call_id.as_slice()), (FIRST_CSEQ, &b"cid1"[..]));
    }

    #[test]
    fn delay_then_register_then_refresh_keep_callid() {
        let mut s = RegState::new(60, 0, 5, 1000);
        let mut g = ids();
        assert!(!s.tick(1000, true));
        assert!(!s.tick(1004, true));
        assert!(s.tick(1005, true));
        let p = s.begin_send(1005, &T, false, &mut g);
        assert_eq!(
            (p.cseq, p.call_id.as_slice(), p.expires),
            (10, &b"cid1"[..], 60)
        );
        assert_eq!(s.status(1005), RegStatus::InProgress);
        assert!(!s.tick(1006, true));
        let a = s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 1006, &T);
        assert_eq!(a, ReplyAction::Registered(60));
        assert_eq!(s.status(1006), RegStatus::Registered);
        // refresh at 1006 + 60 - 5
        assert!(!s.tick(1060, true));
        assert!(s.tick(1061, true));
        let p2 = s.begin_send(1061, &T, false, &mut g);
        assert_eq!((p2.cseq, p2.call_id.as_slice()), (11, &b"cid1"[..]));
        assert_eq!(
            s.status(1061),
            RegStatus::Registered,
            "still registered while refreshing"
        );
        assert_ne!(p2.token, p.token);
        // stale reply ignored
        assert_eq!(
            s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 1062, &T),
            ReplyAction::Ignore
        );
    }

    #[test]
    fn longer_grant_than_asked_is_capped() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        assert!(s.tick(0, true));
        let p = s.begin_send(0, &T, false, &mut g);
        let huge = ok("u", u32::MAX, 10, "cid1");
        assert_eq!(
            s.on_reply(p.token, 200, Some(&huge), b"u", 0, &T),
            ReplyAction::Registered(60)
        );
        assert_eq!(s.timer_expires, 60);
    }

    #[test]
    fn new_callid_without_keep() {
        let t = Timing {
            keep_callid: false,
            ..T
        };
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        assert!(s.tick(0, true));
        let p = s.begin_send(0, &t, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 0, &t);
        let p2 = s.begin_send(55, &t, false, &mut g);
        assert_eq!(p2.call_id, b"cid2");
        assert_eq!(p2.cseq, FIRST_CSEQ);
    }

    #[test]
    fn short_expiry_refreshed_before_it_lapses() {
        assert_eq!(refresh_after(3600, 90), 3507);
        assert_eq!(refresh_after(60, 90), 30);
        assert_eq!(refresh_after(4, 1), 2);
        assert_eq!(refresh_after(1, 90), 1);
        assert_eq!(refresh_after(0, 90), 1);
    }

    #[test]
    fn failure_retry_and_give_up() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        assert!(s.tick(0, true));
        let p = s.begin_send(0, &T, false, &mut g);
        let a = s.on_reply(p.token, 403, None, b"u", 1, &T);
        assert_eq!(
            a,
            ReplyAction::Failed {
                retry_at: Some(11),
                why: Failure::Status(403)
            }
        );
        assert_eq!(s.status(2), RegStatus::Other);
        assert!(!s.tick(10, true));
        assert!(s.tick(11, true));
        let t0 = Timing {
            retry_interval: 0,
            ..T
        };
        let p = s.begin_send(11, &t0, false, &mut g);
        let a = s.on_reply(p.token, 408, None, b"u", 12, &t0);
        assert_eq!(
            a,
            ReplyAction::Failed {
                retry_at: None,
                why: Failure::Status(408)
            }
        );
        assert_eq!(s.status(12), RegStatus::Disabled);
        assert!(!s.tick(1000, true));
    }

    #[test]
    fn retry_after_honoured() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &T, false, &mut g);
        let r = RegisterReply::parse(b"SIP/2.0 503 x\r\nRetry-After: 100\r\n\r\n").unwrap();
        let a = s.on_reply(p.token, 503, Some(&r), b"u", 0, &T);
        assert!(matches!(
            a,
            ReplyAction::Failed {
                retry_at: Some(100),
                ..
            }
        ));
    }

    #[test]
    fn interval_too_brief() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &T, false, &mut g);
        let r = RegisterReply::parse(b"SIP/2.0 423 x\r\nMin-Expires: 300\r\n\r\n").unwrap();
        assert_eq!(
            s.on_reply(p.token, 423, Some(&r), b"u", 0, &T),
            ReplyAction::IntervalTooBrief(300)
        );
        assert!(s.tick(0, true));
        let p = s.begin_send(0, &T, false, &mut g);
        assert_eq!(p.expires, 300);
        let r = RegisterReply::parse(b"SIP/2.0 423 x\r\n\r\n").unwrap();
        assert_eq!(
            s.on_reply(p.token, 423, Some(&r), b"u", 0, &T),
            ReplyAction::IntervalTooBrief(600)
        );
    }

    #[test]
    fn auth_once_then_fail_unless_stale() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &T, false, &mut g);
        let ch = |stale: &str| {
            RegisterReply::parse(
                format!("SIP/2.0 401 x\r\nCall-ID: cid1\r\nCSeq: 10 REGISTER\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"{stale}\r\n\r\n").as_bytes(),
            )
            .unwrap()
        };
        match s.on_reply(p.token, 401, Some(&ch("")), b"u", 0, &T) {
            ReplyAction::Authenticate { plan, kind, .. } => {
                assert_eq!(plan.cseq, 11);
                assert_eq!(plan.call_id, b"cid1");
                assert_eq!(kind, HeaderKind::Authorization);
            }
            a => panic!("{a:?}"),
        }
        assert!(matches!(
            s.on_reply(p.token, 401, Some(&ch(", stale=true")), b"u", 0, &T),
            ReplyAction::Authenticate { .. }
        ));
        assert!(matches!(
            s.on_reply(p.token, 401, Some(&ch(", stale=true")), b"u", 0, &T),
            ReplyAction::Failed {
                why: Failure::AuthRejected,
                ..
            }
        ));
        // a non-stale second challenge fails at once
        let p = s.begin_send(20, &T, false, &mut g);
        s.on_reply(p.token, 401, Some(&ch("")), b"u", 20, &T);
        assert!(matches!(
            s.on_reply(p.token, 401, Some(&ch("")), b"u", 20, &T),
            ReplyAction::Failed {
                why: Failure::AuthRejected,
                ..
            }
        ));
        let p = s.begin_send(40, &T, false, &mut g);
        assert!(matches!(
            s.on_reply(p.token, 407, Some(&ch("")), b"u", 20, &T),
            ReplyAction::Failed {
                why: Failure::NoChallenge,
                ..
            }
        ));
    }

    #[test]
    fn inactive_disabled_and_expiry() {
        let mut s = RegState::new(60, 1, 0, 0);
        assert_eq!(s.status(0), RegStatus::Disabled);
        assert!(!s.tick(0, true));
        s.set_disabled(false, 5);
        assert!(!s.tick(5, false));
        assert!(s.tick(5, true));
        let mut g = ids();
        let p = s.begin_send(5, &T, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "c")), b"u", 5, &T);
        s.set_disabled(true, 6);
        assert!(s.is_online());
        assert!(!s.tick(64, true));
        assert!(s.is_online());
        assert!(!s.tick(65, true));
        assert!(!s.is_online());
    }

    #[test]
    fn unregister_keeps_callid_and_disables() {
        let t = Timing {
            keep_callid: false,
            ..T
        };
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &t, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 0, &t);
        s.prepare_unregister();
        let p = s.begin_send(1, &t, true, &mut g);
        assert_eq!(
            (p.expires, p.call_id.as_slice(), p.cseq),
            (0, &b"cid1"[..], 11)
        );
        assert_eq!(
            s.on_reply(p.token, 200, Some(&ok("u", 0, 11, "cid1")), b"u", 1, &t),
            ReplyAction::Unregistered
        );
        assert!(!s.is_online());
        assert_eq!(s.status(2), RegStatus::Disabled);
        assert_eq!(s.expires, 60, "expires kept for a later enable");
    }

    #[test]
    fn stuck_ongoing_is_reset() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        s.begin_send(0, &T, false, &mut g);
        assert!(!s.tick(ONGOING_TIMEOUT - 1, true));
        assert!(s.tick(ONGOING_TIMEOUT, true));
    }

    #[test]
    fn zero_granted_is_failure() {
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &T, false, &mut g);
        assert!(matches!(
            s.on_reply(p.token, 200, Some(&ok("u", 0, 10, "c")), b"u", 0, &T),
            ReplyAction::Failed {
                why: Failure::BindingRemoved,
                ..
            }
        ));
    }

    /// RFC 3261 §10.2.4: a 2xx without our Contact is a failed registration, retried
    /// after `reg_retry_interval` (or disabling the record when that is 0).
    #[test]
    fn ok_without_our_contact_is_failure() {
        let no_contact = RegisterReply::parse(
            b"SIP/2.0 200 OK\r\nCall-ID: cid1\r\nCSeq: 10 REGISTER\r\nExpires: 60\r\n\r\n",
        )
        .unwrap();
        let rewritten = ok("rewritten", 60, 10, "cid1");
        for (reply, why) in [
            (Some(&no_contact), Failure::NoContact),
            (None, Failure::NoContact),
            (Some(&rewritten), Failure::ContactNotOurs),
        ] {
            let mut s = RegState::new(60, 0, 0, 0);
            let mut g = ids();
            assert!(s.tick(0, true));
            let p = s.begin_send(0, &T, false, &mut g);
            assert_eq!(
                s.on_reply(p.token, 200, reply, b"u", 1, &T),
                ReplyAction::Failed {
                    retry_at: Some(11),
                    why: why.clone()
                }
            );
            assert!(!s.is_online());
            assert_eq!(s.status(2), RegStatus::Other);
            assert_eq!(s.flags & (F_ONGOING | F_ONLINE), 0);
            assert!(!s.tick(10, true));
            let p = s.begin_send(11, &T, false, &mut g);
            assert_eq!(p.cseq, FIRST_CSEQ, "a failure starts a new Call-ID");
            // A normal 2xx still registers.
            assert_eq!(
                s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid2")), b"u", 12, &T),
                ReplyAction::Registered(60)
            );
            // With reg_retry_interval 0 the record is disabled.
            let t0 = Timing {
                retry_interval: 0,
                ..T
            };
            let mut s = RegState::new(60, 0, 0, 0);
            let p = s.begin_send(0, &t0, false, &mut g);
            assert_eq!(
                s.on_reply(p.token, 200, reply, b"u", 1, &t0),
                ReplyAction::Failed {
                    retry_at: None,
                    why
                }
            );
            assert_eq!(s.status(2), RegStatus::Disabled);
        }
        // Removing the binding: a 2xx listing no Contact is the expected answer.
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &T, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 0, &T);
        s.prepare_unregister();
        let p = s.begin_send(1, &T, true, &mut g);
        assert_eq!(
            s.on_reply(p.token, 200, Some(&no_contact), b"u", 1, &T),
            ReplyAction::Unregistered
        );
    }

    /// Before `wake_at` a tick neither sends nor changes the record (so the
    /// timer may skip its walk until the earliest wake time of all records);
    /// at `wake_at` something happens.
    #[test]
    fn tick_is_idle_until_wake_at() {
        fn check(s: &RegState, from: i64, to: i64) {
            let w = s.wake_at();
            for now in from..to.min(w) {
                let mut c = *s;
                assert!(!c.tick(now, true), "sent at {now}, wake at {w}");
                assert_eq!(c, *s, "changed at {now}, wake at {w}");
            }
            if w < to {
                let mut c = *s;
                let sent = c.tick(w, true);
                assert!(sent || c != *s, "nothing happens at the wake time {w}");
            }
        }
        let mut g = ids();
        let mut s = RegState::new(60, 0, 5, 1000);
        check(&s, 900, 1100); // initial delay
        assert!(s.tick(1005, true));
        let p = s.begin_send(1005, &T, false, &mut g);
        check(&s, 1005, 1300); // in flight: the ongoing timeout
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 1006, &T);
        check(&s, 1006, 1300); // registered: the refresh
        assert!(s.tick(1061, true));
        let p = s.begin_send(1061, &T, false, &mut g);
        s.on_reply(p.token, 503, None, b"u", 1062, &T);
        check(&s, 1062, 1300); // failed: the retry, or the end of the binding
        s.set_disabled(true, 1063);
        check(&s, 1063, 1300); // disabled: only the binding's end
        let mut idle = RegState::new(0, 0, 0, 0);
        check(&idle, 0, 100); // expires 0: never
        assert!(!idle.tick(50, true));
        assert_eq!(idle.wake_at(), i64::MAX);
    }

    fn policy(t: Option<u32>, a: Option<u32>, f: Option<u32>, max: u32, att: u32) -> Timing {
        Timing {
            retry: RetryPolicy {
                temporary: t,
                auth: a,
                fatal: f,
                backoff_max: max,
                max_attempts: att,
            },
            ..T
        }
    }

    #[test]
    fn failure_classes() {
        use FailureClass::*;
        for (code, class) in [
            (408, Temporary),
            (480, Temporary),
            (500, Temporary),
            (503, Temporary),
            (599, Temporary),
            (600, Temporary),
            (604, Temporary),
            (603, Fatal),
            (403, Auth),
            (401, Auth),
            (407, Auth),
            (404, Fatal),
            (400, Fatal),
            (420, Fatal),
            (423, Fatal),
            (486, Fatal),
            (302, Fatal),
            (700, Fatal),
        ] {
            assert_eq!(FailureClass::of_status(code), class, "{code}");
        }
        assert_eq!(Failure::AuthRejected.class(), Auth);
        assert_eq!(Failure::NoChallenge.class(), Auth);
        assert_eq!(Failure::SendFailed.class(), Temporary);
        for f in [
            Failure::NoContact,
            Failure::ContactNotOurs,
            Failure::BindingRemoved,
        ] {
            assert_eq!(f.class(), Fatal);
        }
        assert_eq!(Temporary.name(), "temporary");
        assert_eq!(Auth.name(), "auth");
        assert_eq!(Fatal.name(), "fatal");
    }

    /// The defaults are the C module's: one flat interval for every class, 0 disables,
    /// no backoff, no limit (the jitter value is irrelevant).
    #[test]
    fn default_policy_is_flat() {
        use FailureClass::*;
        let flat = Timing {
            retry: RetryPolicy::default(),
            ..T
        };
        for class in [Temporary, Auth, Fatal] {
            for failures in [1, 2, 10, 1000, u32::MAX] {
                for rnd in [0, 12345, u32::MAX] {
                    assert_eq!(retry_delay(&flat, class, failures, None, rnd), Some(10));
                }
            }
            let off = Timing {
                retry_interval: 0,
                ..flat
            };
            assert_eq!(retry_delay(&off, class, 1, None, 0), None);
            assert_eq!(retry_delay(&off, class, 1, Some(30), 0), None);
        }
    }

    #[test]
    fn per_class_intervals_and_retry_after() {
        use FailureClass::*;
        let t = policy(Some(3), Some(60), Some(0), 0, 0);
        assert_eq!(retry_delay(&t, Temporary, 1, None, 0), Some(3));
        assert_eq!(retry_delay(&t, Auth, 1, None, 0), Some(60));
        assert_eq!(retry_delay(&t, Fatal, 1, None, 0), None, "0 disables");
        // Retry-After is a floor for every class, never shortens the wait.
        assert_eq!(retry_delay(&t, Temporary, 1, Some(7), 0), Some(7));
        assert_eq!(retry_delay(&t, Auth, 1, Some(7), 0), Some(60));
        assert_eq!(
            retry_delay(&t, Temporary, 1, Some(u32::MAX), 0),
            Some(MAX_RETRY_AFTER)
        );
        // Unset classes fall back to reg_retry_interval.
        let t = policy(None, Some(5), None, 0, 0);
        assert_eq!(retry_delay(&t, Temporary, 1, None, 0), Some(10));
        assert_eq!(retry_delay(&t, Fatal, 1, None, 0), Some(10));
        assert_eq!(retry_delay(&t, Auth, 1, None, 0), Some(5));
        // A class of its own retries even when reg_retry_interval is 0.
        let t = Timing {
            retry_interval: 0,
            ..policy(Some(4), None, None, 0, 0)
        };
        assert_eq!(retry_delay(&t, Temporary, 1, None, 0), Some(4));
        assert_eq!(retry_delay(&t, Auth, 1, None, 0), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        use FailureClass::*;
        let t = policy(Some(10), None, None, 60, 0);
        let mid = u32::MAX / 2; // the middle of the jitter range
        let waits: Vec<_> = (1..=6)
            .map(|n| retry_delay(&t, Temporary, n, None, mid).unwrap())
            .collect();
        assert_eq!(waits, [10, 20, 40, 60, 60, 60]);
        for n in 1..=6 {
            let lo = retry_delay(&t, Temporary, n, None, 0).unwrap();
            let hi = retry_delay(&t, Temporary, n, None, u32::MAX).unwrap();
            let w = waits[n as usize - 1];
            assert_eq!(lo, w - w * JITTER_PERCENT / 100, "failure {n}");
            assert_eq!(hi, w + w * JITTER_PERCENT / 100, "failure {n}");
        }
        // Huge failure counts neither overflow nor pass the cap.
        let far = retry_delay(&t, Temporary, u32::MAX - 1, None, u32::MAX).unwrap();
        assert_eq!(far, 72);
        // A cap below the class interval does not shorten the class interval.
        let t = policy(Some(100), None, None, 30, 0);
        assert_eq!(retry_delay(&t, Temporary, 1, None, mid), Some(100));
        assert_eq!(retry_delay(&t, Temporary, 5, None, mid), Some(100));
        // Retry-After wins over a shorter backed-off wait.
        let t = policy(Some(2), None, None, 8, 0);
        assert_eq!(retry_delay(&t, Temporary, 1, Some(30), 0), Some(30));
    }

    #[test]
    fn jitter_is_bounded_and_spread() {
        assert_eq!(jitter(100, 0), 80);
        assert_eq!(jitter(100, u32::MAX), 120);
        assert_eq!(jitter(1, u32::MAX), 1);
        assert_eq!(jitter(0, u32::MAX), 1, "at least 1 second");
        assert_eq!(jitter(u32::MAX, u32::MAX), u32::MAX);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000u32 {
            let v = jitter(100, mix(i, 7));
            assert!((80..=120).contains(&v), "{v}");
            seen.insert(v);
        }
        assert_eq!(seen.len(), 41, "every second of the range is used");
    }

    #[test]
    fn max_attempts_disables_after_consecutive_failures() {
        use FailureClass::*;
        let t = policy(None, None, None, 0, 3);
        assert_eq!(retry_delay(&t, Temporary, 1, None, 0), Some(10));
        assert_eq!(retry_delay(&t, Temporary, 2, None, 0), Some(10));
        assert_eq!(retry_delay(&t, Temporary, 3, None, 0), None);
        assert_eq!(retry_delay(&t, Fatal, 3, Some(5), 0), None);

        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let mut now = 0;
        for n in 1..=2 {
            let p = s.begin_send(now, &t, false, &mut g);
            assert_eq!(
                s.on_reply(p.token, 503, None, b"u", now, &t),
                ReplyAction::Failed {
                    retry_at: Some(now + 10),
                    why: Failure::Status(503)
                }
            );
            assert_eq!((s.failures, s.failure_class()), (n, Some(Temporary)));
            assert!(!s.attempts_exhausted(&t));
            now += 10;
            assert!(s.tick(now, true));
        }
        // A success in between starts the count again.
        let p = s.begin_send(now, &t, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid")), b"u", now, &t);
        assert_eq!((s.failures, s.failure_class()), (0, None));
        for n in 1..=3 {
            let p = s.begin_send(now, &t, false, &mut g);
            let a = s.on_reply(p.token, 404, None, b"u", now, &t);
            assert_eq!(s.failures, n);
            assert_eq!(s.failure_class(), Some(Fatal));
            if n < 3 {
                assert!(matches!(
                    a,
                    ReplyAction::Failed {
                        retry_at: Some(_),
                        ..
                    }
                ));
            } else {
                assert_eq!(
                    a,
                    ReplyAction::Failed {
                        retry_at: None,
                        why: Failure::Status(404)
                    }
                );
            }
        }
        assert!(s.is_disabled() && s.attempts_exhausted(&t));
        assert_eq!(s.status(now), RegStatus::Disabled);
        // Enabled again: three more attempts.
        s.set_disabled(false, now);
        assert_eq!(s.failures, 0);
        assert!(!s.attempts_exhausted(&t));
        let p = s.begin_send(now, &t, false, &mut g);
        assert!(matches!(
            s.on_reply(p.token, 404, None, b"u", now, &t),
            ReplyAction::Failed {
                retry_at: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn backoff_on_the_record() {
        let t = policy(Some(2), None, None, 8, 0);
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let mut now = 100;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let p = s.begin_send(now, &t, false, &mut g);
            let ReplyAction::Failed {
                retry_at: Some(at), ..
            } = s.on_reply(p.token, 408, None, b"u", now, &t)
            else {
                panic!("not retried")
            };
            waits.push(at - now);
            assert!(!s.tick(at - 1, true));
            assert!(s.tick(at, true));
            now = at;
        }
        // 2, 4, 8, 8, 8 with up to 20 % jitter (whole seconds: none on 2 and 4).
        assert_eq!(&waits[..2], [2, 4]);
        for w in &waits[2..] {
            assert!((7..=9).contains(w), "{waits:?}");
        }
    }

    #[test]
    fn unregister_failure_is_not_counted() {
        let t = policy(None, None, None, 0, 1);
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &t, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 60, 10, "cid1")), b"u", 0, &t);
        s.prepare_unregister();
        let p = s.begin_send(1, &t, true, &mut g);
        s.on_reply(p.token, 500, None, b"u", 1, &t);
        assert_eq!((s.failures, s.failure_class()), (0, None));
        assert!(!s.attempts_exhausted(&t), "disabled by the operator");
    }

    /// A second challenge for the nonce just answered rejects the credentials; one with
    /// a new nonce (rotated without stale=true) is answered once more.
    #[test]
    fn second_challenge_same_nonce_rejects_new_nonce_is_answered() {
        let ch = |nonce: &str| {
            RegisterReply::parse(
                format!("SIP/2.0 401 x\r\nCall-ID: cid1\r\nCSeq: 10 REGISTER\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\"\r\n\r\n").as_bytes(),
            )
            .unwrap()
        };
        let t = policy(None, Some(30), None, 0, 0);
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &t, false, &mut g);
        assert!(matches!(
            s.on_reply(p.token, 401, Some(&ch("a")), b"u", 0, &t),
            ReplyAction::Authenticate { .. }
        ));
        assert_eq!(
            s.on_reply(p.token, 401, Some(&ch("a")), b"u", 0, &t),
            ReplyAction::Failed {
                retry_at: Some(30),
                why: Failure::AuthRejected
            }
        );
        assert_eq!(s.failure_class(), Some(FailureClass::Auth));

        let p = s.begin_send(30, &t, false, &mut g);
        s.on_reply(p.token, 401, Some(&ch("a")), b"u", 30, &t);
        match s.on_reply(p.token, 401, Some(&ch("b")), b"u", 30, &t) {
            ReplyAction::Authenticate {
                challenge, plan, ..
            } => {
                assert_eq!(&*challenge.nonce, b"b");
                assert_eq!(plan.cseq, 11, "the challenged CSeq + 1");
            }
            a => panic!("{a:?}"),
        }
        // Two answers per REGISTER at most, whatever the third nonce.
        assert!(matches!(
            s.on_reply(p.token, 401, Some(&ch("c")), b"u", 30, &t),
            ReplyAction::Failed {
                why: Failure::AuthRejected,
                ..
            }
        ));
        assert_eq!(s.failures, 2);
    }

    #[test]
    fn auth_unanswerable_is_a_credentials_failure() {
        let t = policy(Some(1), Some(40), Some(1), 0, 0);
        let mut s = RegState::new(60, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &t, false, &mut g);
        assert_eq!(s.auth_unanswerable(p.token + 1, 0, &t), None, "stale token");
        assert_eq!(
            s.auth_unanswerable(p.token, 0, &t),
            Some(ReplyAction::Failed {
                retry_at: Some(40),
                why: Failure::NoChallenge
            })
        );
        assert_eq!(
            s.auth_unanswerable(p.token, 0, &t),
            None,
            "nothing in flight"
        );
    }

    #[test]
    fn refresh_at_a_share_of_the_granted_expiry() {
        let pct = |p| Timing {
            refresh_percent: p,
            ..T
        };
        assert_eq!(refresh_delay(3600, &pct(0)), refresh_after(3600, 2));
        assert_eq!(refresh_delay(60, &pct(0)), 55);
        assert_eq!(refresh_delay(60, &pct(50)), 30);
        assert_eq!(refresh_delay(10, &pct(80)), 8);
        assert_eq!(refresh_delay(3, &pct(50)), 1);
        assert_eq!(refresh_delay(1, &pct(50)), 1, "at least 1 second");
        assert_eq!(refresh_delay(u32::MAX, &pct(99)), 4_252_017_622);
        let t = pct(50);
        let mut s = RegState::new(120, 0, 0, 0);
        let mut g = ids();
        let p = s.begin_send(0, &t, false, &mut g);
        s.on_reply(p.token, 200, Some(&ok("u", 20, 10, "c")), b"u", 0, &t);
        assert!(!s.tick(9, true));
        assert!(s.tick(10, true));
    }
}
