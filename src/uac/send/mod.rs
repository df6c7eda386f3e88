//! Requests sent from the script: the per-process `$uac_req(key)` template
//! (admin guide section 5), `uac_req_send()` (4.8) and the outcome reported
//! to `event_route[uac:reply]` or the `event_callback` KEMI function (6.1).
//!
//! Differences from the C module 5.6.3, all on purpose:
//! - `$uac_req(all) = $null` resets every key, `auser`, `apasswd` and `sock`
//!   included (C keeps them, so credentials leak into the next request);
//!   `$uac_req(sock) = $null` clears the socket (C cleared `apasswd`).
//! - No fixed buffers: any value up to [`MAX_VALUE_LEN`] bytes (the largest
//!   SIP message Kamailio reads) is kept whole; longer ones, and values that
//!   would break the request (CR/LF in a URI, Call-ID or user, an empty line
//!   in `hdrs`, a method that is not a token) are refused with a log line.
//!   C refuses at 128/64/1024/2048/32768 bytes and truncates the headers of
//!   the authenticated resubmission at 2048.
//! - `hdrs` without a final CRLF gets one, instead of a malformed request.
//! - A challenge (401/407) answered with `auser`/`apasswd` is resubmitted with
//!   the same Call-ID and From tag and CSeq + 1 (RFC 3261 §22.2; C sent the
//!   same CSeq again), answering every realm challenged (RFC 8760 §2.4) with
//!   the digest code of `sip::digest` (MD5, SHA-256, SHA-512-256, -sess,
//!   qop auth/auth-int).
//! - The event route runs once, for the final outcome; C also ran it for the
//!   challenge it then answered.
//! - The state carried to the reply lives in shm and is freed exactly once
//!   by its own transaction (see `host::tm`), also when every attempt is
//!   challenged, on timeout, or when `event_route[tm:local-request]` drops
//!   the request (C: double free, kam#3522; leaks, kam#3065, 00aac8d483).
//! - A `sock` that is not a local socket (nor a socket name) makes
//!   `uac_req_send()` fail with a log line; C silently let the core choose.
//! - The keys of C 6.0 (`cseqno`) and 6.1 (`fr_timeout`, `fr_inv_timeout`,
//!   `ftag`, `ttag`) exist on every release we build for. `cseqno`, `ftag`
//!   and `ttag` shape the request everywhere, because we build tm's dialog
//!   ourselves (C 6.1 stores `ftag`/`ttag` but never sends them). `cseqno`
//!   must be below 2^31 (RFC 3261 §8.1.1.5), the tags must be tokens, and the
//!   new number keys refuse negative values. The timeouts are milliseconds,
//!   like tm's `fr_timer` (C hands the number to tm, which reads it as
//!   1/16 s ticks); before Kamailio 6.1 tm has no per-request timer, so
//!   they are only stored, with one warning per process when used.

mod sent;
mod template;

pub use sent::Sent;
pub use template::*;

#[cfg(feature = "kamailio")]
mod runtime;
#[cfg(feature = "kamailio")]
pub use runtime::*;
