//! Logging through Kamailio's log engine.
//!
//! Each macro asks the core first whether the level is printable for this
//! module (so disabled debug lines cost one call), formats in Rust into a
//! bounded stack buffer, and hands the bytes to the glue, which prints them
//! with a constant `"%.*s"` format: user data is never a format string.

use std::fmt::{self, Write};

use crate::sys;

/// Longest log line; longer messages are cut and end with "...".
const LOG_LINE_MAX: usize = 2048;

/// Kamailio log levels (`core/dprint.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Crit = -2,
    Err = -1,
    Warn = 0,
    Notice = 1,
    Info = 2,
    Dbg = 3,
}

/// Whether a line at `level` would be printed by this module.
pub fn enabled(level: Level) -> bool {
    // SAFETY: reads the core's debug level; no pointers involved.
    unsafe { sys::ksr_rs_log_enabled(level as i32) != 0 }
}

/// A fixed buffer that silently truncates instead of allocating.
struct LineBuf {
    buf: [u8; LOG_LINE_MAX],
    len: usize,
    truncated: bool,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = LOG_LINE_MAX - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

/// Formats and prints one line; use the macros instead.
pub fn write(level: Level, file: &str, line_no: u32, args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; LOG_LINE_MAX],
        len: 0,
        truncated: false,
    };
    let _ = line.write_fmt(args);
    if line.truncated {
        line.buf[LOG_LINE_MAX - 3..].copy_from_slice(b"...");
    }
    // "uac [auth.rs:88]: ", NUL-terminated, like the C module's LOC_INFO.
    let base = file.rsplit('/').next().unwrap_or(file);
    let mut loc = LineBuf {
        buf: [0; LOG_LINE_MAX],
        len: 0,
        truncated: false,
    };
    let _ = write!(loc, "uac [{base}:{line_no}]: ");
    let nul = loc.len.min(LOG_LINE_MAX - 1);
    loc.buf[nul] = 0;
    // SAFETY: `loc` is NUL-terminated; the pointer and length of `line`
    // describe initialised bytes; both outlive the call, and the glue prints
    // the message with "%.*s".
    unsafe {
        sys::ksr_rs_log(
            level as i32,
            loc.buf.as_ptr().cast(),
            std::ptr::null(),
            line.buf.as_ptr().cast(),
            line.len as i32,
        )
    };
}

#[macro_export]
macro_rules! klog {
    ($lvl:expr, $($arg:tt)+) => {{
        let lvl = $lvl;
        if $crate::host::log::enabled(lvl) {
            $crate::host::log::write(lvl, file!(), line!(), format_args!($($arg)+));
        }
    }};
}
#[macro_export]
macro_rules! kcrit { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Crit, $($arg)+) } }
#[macro_export]
macro_rules! kerr { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Err, $($arg)+) } }
#[macro_export]
macro_rules! kwarn { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Warn, $($arg)+) } }
#[macro_export]
macro_rules! knotice { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Notice, $($arg)+) } }
#[macro_export]
macro_rules! kinfo { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Info, $($arg)+) } }
#[macro_export]
macro_rules! kdbg { ($($arg:tt)+) => { $crate::klog!($crate::host::log::Level::Dbg, $($arg)+) } }

/// Displays bytes from the wire or the config lossily, for log lines.
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}
