//! Registration state events (issue 16): each change of a record's state runs
//! `event_route[uac:reg]` (or the KEMI `event_callback` with the event name `"uac:reg"`),
//! with the change readable through `$uac_reg_event(key)`.
//!
//! The states, as the script sees them in `$uac_reg_event(state)`:
//!
//! | state | raised when | `code` |
//! | --- | --- | --- |
//! | `registering` | a REGISTER is sent for a record that is not registered and not already failing: the first one after loading, enabling, `uac_reg_send_register` or an un-REGISTER | 0 |
//! | `registered` | a 2xx lists our binding, and the record was not registered | the 2xx code |
//! | `failed` | a registration or refresh failed (error reply, tm timeout 408, 2xx without our binding, send failure) | the reply code; 0 when nothing was sent |
//! | `auth_failed` | the credentials were rejected (retry class `auth`): 403, a second 401/407, or a challenge that cannot be answered (another realm, unknown algorithm) | 403, 401 or 407 |
//! | `disabled` | the record was disabled: by script/RPC, or after a failure with no retry (`reg_retry_interval` 0, or a failed un-REGISTER) | 0 by script/RPC, else the failure's code |
//! | `unregistered` | a 2xx to an un-REGISTER (`uac_reg_send_unregister`, `uac.reg_unregister`) | the 2xx code |
//!
//! Each change is reported once: the last event of a record (state and code) is kept in
//! its shared state ([`EventMark`]) and an event equal to it is not raised again. So a
//! successful refresh of a registered record raises nothing, a retry that fails again with
//! the same code raises nothing (one that fails with another code raises `failed` again),
//! and retries after a failure raise no `registering`: the record stays failed until it
//! registers or fails differently. Re-enabling raises nothing by itself; the REGISTER it
//! leads to raises `registering`.
//!
//! The mapping below is pure; the part that runs the script is in `runtime` (after the
//! record's lock is released, in the process that made the change).

use crate::uac::reg::state::{Failure, FailureClass, ReplyAction};

/// A record's state as reported to the script (`$uac_reg_event(state)`).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    Registering = 1,
    Registered = 2,
    Failed = 3,
    AuthFailed = 4,
    Disabled = 5,
    Unregistered = 6,
}

impl EventState {
    const ALL: [EventState; 6] = [
        EventState::Registering,
        EventState::Registered,
        EventState::Failed,
        EventState::AuthFailed,
        EventState::Disabled,
        EventState::Unregistered,
    ];

    /// The script-visible name.
    pub fn name(self) -> &'static str {
        match self {
            EventState::Registering => "registering",
            EventState::Registered => "registered",
            EventState::Failed => "failed",
            EventState::AuthFailed => "auth_failed",
            EventState::Disabled => "disabled",
            EventState::Unregistered => "unregistered",
        }
    }

    fn from_u8(v: u8) -> Option<EventState> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }

    /// Whether a repeat of this state with another code is a new event.
    fn code_matters(self) -> bool {
        matches!(self, EventState::Failed | EventState::AuthFailed)
    }
}

/// The last event raised for a record; kept in the record's shared state (plain data).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventMark {
    /// `EventState as u8`; 0: none yet.
    state: u8,
    code: u16,
}

impl EventMark {
    /// A record that has raised no event yet.
    pub const NONE: EventMark = EventMark { state: 0, code: 0 };

    /// The state of the last event raised.
    pub fn last(&self) -> Option<EventState> {
        EventState::from_u8(self.state)
    }

    /// Records `c` and returns it, unless it repeats the last event.
    fn note(&mut self, c: Change) -> Option<Change> {
        if self.last() == Some(c.state) && (!c.state.code_matters() || self.code == c.code) {
            return None;
        }
        *self = EventMark {
            state: c.state as u8,
            code: c.code,
        };
        Some(c)
    }
}

/// One change to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub state: EventState,
    /// The SIP code (0: none, e.g. nothing was sent).
    pub code: u16,
    /// Short text saying why.
    pub reason: &'static str,
    /// Seconds granted (`registered` only, else 0).
    pub expires: u32,
}

impl Change {
    fn new(state: EventState, code: u16, reason: &'static str) -> Change {
        Change {
            state,
            code,
            reason,
            expires: 0,
        }
    }
}

/// Up to two changes (a failure, then `disabled` when it is not retried).
pub type Changes = Vec<Change>;

/// A REGISTER is being sent for the record (`unregister`: with Expires: 0).
pub fn on_send(mark: &mut EventMark, unregister: bool) -> Option<Change> {
    if unregister {
        return None; // reported by its reply
    }
    match mark.last() {
        None | Some(EventState::Disabled) | Some(EventState::Unregistered) => {
            mark.note(Change::new(EventState::Registering, 0, "REGISTER sent"))
        }
        // Refresh of a registered record, retry of a failed one, 423 or challenge
        // answered: no change.
        Some(_) => None,
    }
}

/// The state machine's verdict on a reply (or a send failure). `code` is the final reply
/// code tm reported; `local`: tm made it up (no reply arrived: timeout).
pub fn on_action(mark: &mut EventMark, action: &ReplyAction, code: u16, local: bool) -> Changes {
    let mut out = Changes::new();
    match action {
        ReplyAction::Ignore
        | ReplyAction::Authenticate { .. }
        | ReplyAction::IntervalTooBrief(_) => {}
        ReplyAction::Registered(granted) => out.extend(mark.note(Change {
            expires: *granted,
            ..Change::new(EventState::Registered, code, "binding granted")
        })),
        ReplyAction::Unregistered => out.extend(mark.note(Change::new(
            EventState::Unregistered,
            code,
            "binding removed",
        ))),
        ReplyAction::Failed { retry_at, why } => {
            let failure = failure_change(why, code, local);
            let fcode = failure.code;
            out.extend(mark.note(failure));
            if retry_at.is_none() {
                out.extend(mark.note(Change::new(
                    EventState::Disabled,
                    fcode,
                    "failure not retried",
                )));
            }
        }
    }
    out
}

/// Script or RPC set the record's disabled flag (`was`: its value before).
pub fn on_set_disabled(mark: &mut EventMark, was: bool, disabled: bool) -> Option<Change> {
    if disabled && !was {
        mark.note(Change::new(
            EventState::Disabled,
            0,
            "disabled by script or RPC",
        ))
    } else {
        None // enabling: the REGISTER it leads to raises `registering`
    }
}

fn failure_change(why: &Failure, code: u16, local: bool) -> Change {
    // The event follows the retry class: what retries as "credentials rejected"
    // is reported as such.
    let state = if why.class() == FailureClass::Auth {
        EventState::AuthFailed
    } else {
        EventState::Failed
    };
    let (code, reason) = match why {
        Failure::AuthRejected => (code, "credentials rejected"),
        Failure::Status(403) => (403, "forbidden"),
        Failure::Status(408) if local => (408, "timeout"),
        Failure::Status(c) => (*c, "error reply"),
        Failure::NoChallenge => (code, "no usable challenge"),
        Failure::BindingRemoved => (code, "2xx granting 0 s"),
        Failure::NoContact => (code, "2xx without Contact"),
        Failure::ContactNotOurs => (code, "2xx without our Contact"),
        Failure::SendFailed => (0, "send failure"),
    };
    Change::new(state, code, reason)
}

/// The keys of `$uac_reg_event(key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    LUuid,
    State,
    Code,
    Reason,
    Expires,
}

impl Key {
    pub const NAMES: [(&'static str, Key); 5] = [
        ("l_uuid", Key::LUuid),
        ("state", Key::State),
        ("code", Key::Code),
        ("reason", Key::Reason),
        ("expires", Key::Expires),
    ];

    pub fn parse(name: &[u8]) -> Option<Key> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, k)| *k)
    }

    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn from_index(i: i64) -> Option<Key> {
        Self::NAMES
            .iter()
            .map(|(_, k)| *k)
            .find(|k| i64::from(k.index()) == i)
    }
}

/// A change of one record, as the script reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegEvent {
    pub l_uuid: Vec<u8>,
    pub change: Change,
}

/// A value of `$uac_reg_event(key)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a [u8]),
    Uint(u32),
}

impl RegEvent {
    pub fn get(&self, key: Key) -> Value<'_> {
        match key {
            Key::LUuid => Value::Str(&self.l_uuid),
            Key::State => Value::Str(self.change.state.name().as_bytes()),
            Key::Code => Value::Uint(u32::from(self.change.code)),
            Key::Reason => Value::Str(self.change.reason.as_bytes()),
            Key::Expires => Value::Uint(self.change.expires),
        }
    }
}

#[cfg(feature = "kamailio")]
pub use runtime::*;

/// Running the script (through `host::script::route`).
#[cfg(feature = "kamailio")]
mod runtime {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::sync::OnceLock;

    use super::*;
    use crate::host::log::Bytes;
    use crate::host::script::route::{self, EventHandler};
    use crate::uac::config::Config;

    /// The event name: the route's name and the KEMI callback's argument.
    const EVENT: &std::ffi::CStr = c"uac:reg";

    /// Events a route may raise (through script functions) while events run; more are
    /// dropped with a warning, so a route that toggles its own record cannot loop.
    const MAX_RAISED_BY_ROUTE: usize = 64;

    /// What handles the events (resolved in mod_init); `None`: nothing to run.
    static HANDLER: OnceLock<Option<EventHandler>> = OnceLock::new();

    thread_local! {
        /// Events waiting to run in this process, in the order raised.
        static QUEUE: RefCell<VecDeque<RegEvent>> = const { RefCell::new(VecDeque::new()) };
        /// The event whose route is running (what `$uac_reg_event` reads).
        static CURRENT: RefCell<Option<RegEvent>> = const { RefCell::new(None) };
        /// A route runs in this process: events it raises are queued behind it.
        static RUNNING: Cell<bool> = const { Cell::new(false) };
    }

    /// mod_init: the KEMI `event_callback` when a KEMI engine runs the config, else
    /// `event_route[uac:reg]` when the config has it, else nothing.
    pub fn init(cfg: &Config) {
        let handler = match &cfg.event_callback {
            Some(name) if route::kemi_engine_loaded() => Some(EventHandler::Kemi(name.clone())),
            _ => route::find_event_route(EVENT).map(EventHandler::Route),
        };
        match &handler {
            Some(EventHandler::Kemi(n)) => kdbg!("uac:reg events go to {}", Bytes(n)),
            Some(EventHandler::Route(_)) => kdbg!("uac:reg events go to event_route[uac:reg]"),
            None => kdbg!("no event_route[uac:reg]: registration events not reported"),
        }
        let _ = HANDLER.set(handler);
    }

    /// Runs `f` on the event being reported (`None` outside the event route).
    pub fn with_current<T>(f: impl FnOnce(Option<&RegEvent>) -> T) -> T {
        CURRENT.with(|c| f(c.borrow().as_ref()))
    }

    /// Reports `changes` of the record `l_uuid`, in order. Call with no lock held: the
    /// script runs here (or, when a route is already running in this process, right
    /// after it).
    pub fn emit(l_uuid: &[u8], changes: impl IntoIterator<Item = Change>) {
        let Some(Some(handler)) = HANDLER.get() else {
            return;
        };
        let running = RUNNING.with(Cell::get);
        QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            for change in changes {
                kdbg!(
                    "uac:reg [{}] {} code {} ({})",
                    Bytes(l_uuid),
                    change.state.name(),
                    change.code,
                    change.reason
                );
                if running && q.len() >= MAX_RAISED_BY_ROUTE {
                    kwarn!(
                        "uac:reg event {} of [{}] dropped: raised from the event route \
                         with {} events pending",
                        change.state.name(),
                        Bytes(l_uuid),
                        q.len()
                    );
                    continue;
                }
                q.push_back(RegEvent {
                    l_uuid: l_uuid.to_vec(),
                    change,
                });
            }
        });
        if !running {
            drain(handler);
        }
    }

    /// Resets [`RUNNING`] also if a route run unwinds.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.with(|r| r.set(false));
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }

    fn drain(handler: &EventHandler) {
        RUNNING.with(|r| r.set(true));
        let _running = Running;
        while let Some(ev) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
            CURRENT.with(|c| *c.borrow_mut() = Some(ev));
            route::run_event(handler, EVENT, None, route::REQUEST_ROUTE);
            CURRENT.with(|c| c.borrow_mut().take());
            // In the timer process: the AVPs the route set are freed (no-op elsewhere).
            route::reset_msg_env();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventState::*;

    fn failed(why: Failure, retry: bool) -> ReplyAction {
        ReplyAction::Failed {
            retry_at: retry.then_some(100),
            why,
        }
    }

    fn states(c: &[Change]) -> Vec<(EventState, u16)> {
        c.iter().map(|c| (c.state, c.code)).collect()
    }

    #[test]
    fn first_registration_then_refreshes_are_silent() {
        let mut m = EventMark::NONE;
        let c = on_send(&mut m, false).unwrap();
        assert_eq!((c.state, c.code), (Registering, 0));
        // 401 answered, then 423: no change
        assert_eq!(on_send(&mut m, false), None);
        assert!(on_action(&mut m, &ReplyAction::IntervalTooBrief(120), 423, false).is_empty());
        let c = on_action(&mut m, &ReplyAction::Registered(60), 200, false);
        assert_eq!(states(&c), [(Registered, 200)]);
        assert_eq!(c[0].expires, 60);
        // refresh: no registering, no second registered
        assert_eq!(on_send(&mut m, false), None);
        assert!(on_action(&mut m, &ReplyAction::Registered(60), 200, false).is_empty());
        assert_eq!(m.last(), Some(Registered));
    }

    #[test]
    fn failures_once_per_code_and_recovery() {
        let mut m = EventMark::NONE;
        on_send(&mut m, false);
        on_action(&mut m, &ReplyAction::Registered(60), 200, false);
        let c = on_action(&mut m, &failed(Failure::Status(503), true), 503, false);
        assert_eq!(states(&c), [(Failed, 503)]);
        assert_eq!(c[0].reason, "error reply");
        // the retry raises no registering, the same failure nothing
        assert_eq!(on_send(&mut m, false), None);
        assert!(on_action(&mut m, &failed(Failure::Status(503), true), 503, false).is_empty());
        // another code is a new event; a local 408 is a timeout
        let c = on_action(&mut m, &failed(Failure::Status(408), true), 408, true);
        assert_eq!(states(&c), [(Failed, 408)]);
        assert_eq!(c[0].reason, "timeout");
        let c = on_action(&mut m, &failed(Failure::Status(408), true), 408, false);
        assert!(c.is_empty(), "same state and code: {c:?}");
        let c = on_action(&mut m, &ReplyAction::Registered(30), 200, false);
        assert_eq!(states(&c), [(Registered, 200)]);
        // failed again after recovering: reported again
        let c = on_action(&mut m, &failed(Failure::Status(408), true), 408, true);
        assert_eq!(states(&c), [(Failed, 408)]);
    }

    #[test]
    fn credentials_rejected() {
        let mut m = EventMark::NONE;
        let c = on_action(&mut m, &failed(Failure::Status(403), true), 403, false);
        assert_eq!(states(&c), [(AuthFailed, 403)]);
        let c = on_action(&mut m, &failed(Failure::AuthRejected, true), 401, false);
        assert_eq!(states(&c), [(AuthFailed, 401)]);
        assert_eq!(c[0].reason, "credentials rejected");
        assert!(on_action(&mut m, &failed(Failure::AuthRejected, true), 401, false).is_empty());
        // a challenge that cannot be answered retries in the auth class: auth_failed
        let c = on_action(&mut m, &failed(Failure::NoChallenge, true), 407, false);
        assert_eq!(states(&c), [(AuthFailed, 407)]);
        assert_eq!(c[0].reason, "no usable challenge");
        let c = on_action(&mut m, &failed(Failure::Status(503), true), 503, false);
        assert_eq!(states(&c), [(Failed, 503)]);
    }

    #[test]
    fn not_retried_means_disabled_with_the_code() {
        let mut m = EventMark::NONE;
        on_send(&mut m, false);
        let c = on_action(&mut m, &failed(Failure::Status(503), false), 503, false);
        assert_eq!(states(&c), [(Failed, 503), (Disabled, 503)]);
        // enabled again: registering when it sends
        assert_eq!(on_set_disabled(&mut m, true, false), None);
        assert_eq!(on_send(&mut m, false).map(|c| c.state), Some(Registering));
        let c = on_action(&mut m, &failed(Failure::SendFailed, false), 0, false);
        assert_eq!(states(&c), [(Failed, 0), (Disabled, 0)]);
        assert_eq!(c[0].reason, "send failure");
    }

    #[test]
    fn disable_unregister_enable() {
        let mut m = EventMark::NONE;
        on_send(&mut m, false);
        on_action(&mut m, &ReplyAction::Registered(60), 200, false);
        let c = on_set_disabled(&mut m, false, true).unwrap();
        assert_eq!((c.state, c.code), (Disabled, 0));
        assert_eq!(
            on_set_disabled(&mut m, true, true),
            None,
            "already disabled"
        );
        // un-REGISTER: nothing when sent, unregistered on its 2xx
        assert_eq!(on_send(&mut m, true), None);
        let c = on_action(&mut m, &ReplyAction::Unregistered, 200, false);
        assert_eq!(states(&c), [(Unregistered, 200)]);
        assert!(on_action(&mut m, &ReplyAction::Unregistered, 200, false).is_empty());
        // uac_reg_send_register after unregistering
        assert_eq!(on_send(&mut m, false).map(|c| c.state), Some(Registering));
        // a stale reply changes nothing
        assert!(on_action(&mut m, &ReplyAction::Ignore, 200, false).is_empty());
        assert_eq!(m.last(), Some(Registering));
    }

    #[test]
    fn two_xx_without_our_binding_is_a_failure() {
        for (why, reason) in [
            (Failure::NoContact, "2xx without Contact"),
            (Failure::ContactNotOurs, "2xx without our Contact"),
            (Failure::BindingRemoved, "2xx granting 0 s"),
        ] {
            let mut m = EventMark::NONE;
            let c = on_action(&mut m, &failed(why, true), 200, false);
            assert_eq!(states(&c), [(Failed, 200)]);
            assert_eq!(c[0].reason, reason);
        }
    }

    #[test]
    fn keys_and_values() {
        for (n, k) in Key::NAMES {
            assert_eq!(Key::parse(n.as_bytes()), Some(k));
            assert_eq!(Key::from_index(k.index().into()), Some(k));
        }
        assert_eq!(Key::parse(b"State"), None);
        assert_eq!(Key::from_index(5), None);
        let ev = RegEvent {
            l_uuid: b"t1".to_vec(),
            change: Change {
                expires: 60,
                ..Change::new(Registered, 200, "binding granted")
            },
        };
        assert_eq!(ev.get(Key::LUuid), Value::Str(b"t1"));
        assert_eq!(ev.get(Key::State), Value::Str(b"registered"));
        assert_eq!(ev.get(Key::Code), Value::Uint(200));
        assert_eq!(ev.get(Key::Reason), Value::Str(b"binding granted"));
        assert_eq!(ev.get(Key::Expires), Value::Uint(60));
        for s in EventState::ALL {
            assert_eq!(EventState::from_u8(s as u8), Some(s));
        }
        assert_eq!(EventState::from_u8(0), None);
    }
}
