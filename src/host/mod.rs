//! Safe wrappers over Kamailio. Every `unsafe` block here has a SAFETY line;
//! nothing outside `host` and `ffi` touches raw Kamailio types.
//!
//! Grouped by what they wrap:
//! - the SIP message being routed, `SipMsg` and all its methods (headers,
//!   lumps, `$du`, Record-Route parameters), in [`msg`];
//! - the tm module (our own requests, the failed branch, callbacks) in [`tm`];
//! - memory and state shared by every process (allocators, locks, counters,
//!   the registration table) in [`shm`];
//! - what the script sees (PVs, AVPs, fixups, event routes) in [`script`];
//! - the database API, the dialog module and RPC replies in [`db`], [`dlg`],
//!   [`rpc`];
//! - module APIs, the panic guard, logging, strings, sockets, processes and the
//!   C widths that differ by release in [`api`], [`guard`], [`log`],
//!   [`mod@str`], [`socket`], [`timer`], [`width`].

pub mod api;
pub mod dlg;
#[macro_use]
pub mod log;
// After `log` (it logs), before the modules whose entry points it generates.
#[macro_use]
pub mod guard;
pub mod db;
pub mod dmq;
pub mod msg;
pub mod rpc;
pub mod script;
pub mod shm;
pub mod socket;
pub mod str;
pub mod timer;
pub mod tm;
pub mod width;

/// Why a call into Kamailio did not do what was asked: the one error type of the
/// host layer. Display gives the C module's wording where the message is logged
/// (operators grep for it); features choose what to log, `ffi` the script code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    // --- modules and APIs
    /// A module's API could not be loaded: the C module's message for it.
    ApiNotLoaded(&'static str),
    /// A module's API table is larger than the headers we were built with.
    ApiTooLarge(&'static str),
    /// The core refused a registration or an operation (`what` names it).
    Refused(&'static str),
    // --- memory
    /// Out of pkg memory.
    NoPkg,
    /// Out of shared memory.
    NoShm,
    // --- tm
    /// tm is not bound (mod_init did not run or failed).
    TmNotBound,
    /// A field contains a NUL byte or does not fit a Kamailio `str`.
    BadField(&'static str),
    /// `t_uac` failed with this code (no route to the destination...).
    TmSend(i32),
    /// `event_route[tm:local-request]` dropped the request.
    TmDropped,
    /// No transaction for the message being routed.
    NoTransaction,
    /// tm has no picked branch, or one outside the transaction's branches.
    NoPickedBranch(i32),
    /// tm's `uac` array does not have the layout this build expects.
    BranchLayout,
    /// The branch has no stored reply.
    EmptyReply,
    /// The branch "reply" is a local timeout/cancel, not a received message.
    FakedReply,
    /// The core's `cb_cseq_update` hook (dialog's `track_cseq_updates`) failed.
    CseqHook(i32),
    // --- the message
    /// `parse_headers` failed.
    Parse,
    /// The core refused the lump anchor / insertion.
    LumpInsert,
    /// An edit outside the message.
    OutOfRange,
    /// The core refused the lump.
    LumpRefused,
    /// The message is not a request.
    NotRequest,
    // --- the database
    DbBind,
    DbCapabilities,
    DbConnect,
    DbTableVersion,
    DbUseTable,
    DbQuery,
    // --- sockets
    /// Not `[proto:]host[:port]`.
    SocketSyntax,
    /// Well-formed but not one of the addresses Kamailio listens on.
    SocketNotLocal,
    // --- the shared registration table
    /// A record with that key exists.
    Exists,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::ApiNotLoaded(msg) => f.write_str(msg),
            HostError::ApiTooLarge(module) => write!(
                f,
                "{module}'s API table is larger than the headers this module was built with: \
                 rebuild the module against the installed Kamailio"
            ),
            HostError::Refused(what) => write!(f, "{what} failed"),
            HostError::NoPkg => f.write_str("out of pkg memory"),
            HostError::NoShm => f.write_str("no more shared memory"),
            HostError::TmNotBound => f.write_str("tm API not bound"),
            HostError::BadField(w) => write!(f, "invalid {w}"),
            HostError::TmSend(rc) => write!(f, "tm refused to send the request (code {rc})"),
            HostError::TmDropped => f.write_str("request dropped by event_route[tm:local-request]"),
            // The C module's wording.
            HostError::NoTransaction => f.write_str("no current transaction found"),
            HostError::NoPickedBranch(b) => write!(f, "no picked branch ({b})"),
            HostError::BranchLayout => f.write_str(
                "tm's branch table does not match the headers this module was built with",
            ),
            HostError::EmptyReply => f.write_str("empty reply on picked branch"),
            HostError::FakedReply => f.write_str("cannot process a FAKED reply"),
            HostError::CseqHook(rc) => write!(f, "cseq update hook failed ({rc})"),
            HostError::Parse => f.write_str("failed to parse message"),
            HostError::LumpInsert => f.write_str("failed to insert lump"),
            HostError::OutOfRange => f.write_str("edit outside the message"),
            HostError::LumpRefused => f.write_str("the core refused the lump"),
            HostError::NotRequest => f.write_str("not a request"),
            HostError::DbBind => f.write_str("database module not found"),
            HostError::DbCapabilities => {
                f.write_str("database module does not implement all functions needed by the module")
            }
            HostError::DbConnect => f.write_str("failed to connect to the database"),
            HostError::DbTableVersion => f.write_str("invalid table version"),
            HostError::DbUseTable => f.write_str("failed to use_table"),
            HostError::DbQuery => f.write_str("Error while querying db"),
            HostError::SocketSyntax => f.write_str("bad socket"),
            HostError::SocketNotLocal => f.write_str("non-local socket"),
            HostError::Exists => f.write_str("record exists"),
        }
    }
}

impl std::error::Error for HostError {}
