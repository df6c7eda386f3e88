//! Everything Kamailio calls: export tables, lifecycle, script functions,
//! callbacks. Each entry point runs inside [`guard`].

use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub mod auth;
pub mod exports;
pub mod kemi;
pub mod reg;
pub mod replace;
pub mod send;

/// What an entry point returns when its body panicked.
pub trait FailValue {
    fn fail() -> Self;
}

impl FailValue for c_int {
    /// Script functions, mod_init, child_init, fixups: -1.
    fn fail() -> Self {
        -1
    }
}

impl FailValue for () {
    fn fail() -> Self {}
}

impl<T> FailValue for *mut T {
    fn fail() -> Self {
        std::ptr::null_mut()
    }
}

/// Runs `f`, turning a panic into a logged error and the failure value, so
/// that no unwind ever crosses into C and the worker keeps serving.
pub fn guard<R: FailValue>(name: &str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            kerr!("{name}: internal error (Rust panic caught); returning failure");
            R::fail()
        }
    }
}

/// Routes panic messages to Kamailio's log instead of stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        crate::kcrit!("panic at {}: {}", loc.as_deref().unwrap_or("?"), msg);
    }));
}
