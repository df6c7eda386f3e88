//! The panic boundary, in pure Rust so that it sits below `host` (which logs through it)
//! and `ffi` (whose entry points it wraps), and so that it is unit-tested without
//! Kamailio. `host::guard` adds the logging; the `entry!` macro of `host::guard`
//! generates every `extern "C"` entry point around it (rustls-ffi `PanicOrDefault`).
#![forbid(unsafe_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};

/// What an entry point hands back to Kamailio when its body panicked: the value
/// Kamailio reads as "failed" for that kind of entry point.
pub trait FailValue {
    fn fail() -> Self;
}

impl FailValue for i32 {
    /// Script functions, fixups, PV get/set/parse, mod_init, child_init, bind_uac: -1.
    fn fail() -> Self {
        -1
    }
}

impl FailValue for i64 {
    /// Counters (`counter_val_t`, a C `long`): 0, "nothing counted".
    fn fail() -> Self {
        0
    }
}

impl FailValue for () {
    /// Callbacks and handlers returning `void`.
    fn fail() -> Self {}
}

impl<T> FailValue for *mut T {
    /// Pointers: NULL.
    fn fail() -> Self {
        std::ptr::null_mut()
    }
}

/// A guarded body panicked (its message went to the panic hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked;

/// Runs `f`; a panic becomes `Err(Panicked)` and never unwinds further.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| Panicked)
}

/// The fault an RPC command whose handler panicked answers (the code and text the
/// C module uses for its own internal failures).
pub const RPC_PANIC_FAULT: (i32, &str) = (500, "internal error");

/// Where an RPC fault goes: `host::rpc::Rpc` in the module, a recorder in tests.
pub trait FaultSink {
    fn fault(&self, code: i32, msg: &str);
}

/// Runs the body of an RPC handler; when it panics, answers [`RPC_PANIC_FAULT`] on
/// `sink`, so the client gets a reply instead of waiting for one.
pub fn rpc<S: FaultSink + ?Sized>(sink: &S, f: impl FnOnce(&S)) -> Result<(), Panicked> {
    let r = catch(|| f(sink));
    if r.is_err() {
        sink.fault(RPC_PANIC_FAULT.0, RPC_PANIC_FAULT.1);
    }
    r
}

#[cfg(test)]
mod tests {
    //! The default panic hook's report of the intended panics below goes to the
    //! test harness's captured output.
    use super::*;
    use std::cell::RefCell;

    /// Records the faults sent, as a transport would.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<(i32, String)>>);
    impl FaultSink for Recorder {
        fn fault(&self, code: i32, msg: &str) {
            self.0.borrow_mut().push((code, msg.to_string()));
        }
    }

    #[test]
    fn fail_values() {
        assert_eq!(i32::fail(), -1);
        assert_eq!(i64::fail(), 0);
        assert!(<*mut u8>::fail().is_null());
    }

    #[test]
    fn catch_passes_values_and_stops_panics() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(catch(|| -> i32 { panic!("boom") }), Err(Panicked));
        let s = String::from("x");
        assert_eq!(
            catch(|| -> usize { std::panic::panic_any(s) }),
            Err(Panicked)
        );
    }

    #[test]
    fn rpc_panic_answers_a_fault() {
        let r = Recorder::default();
        let out = rpc(&r, |_| panic!("handler bug"));
        assert_eq!(out, Err(Panicked));
        assert_eq!(*r.0.borrow(), [(500, "internal error".to_string())]);
    }

    #[test]
    fn rpc_panic_after_a_partial_answer_still_faults_once() {
        let r = Recorder::default();
        let out = rpc(&r, |s| {
            s.fault(404, "first");
            panic!("then a bug")
        });
        assert_eq!(out, Err(Panicked));
        assert_eq!(
            *r.0.borrow(),
            [
                (404, "first".to_string()),
                (500, "internal error".to_string())
            ]
        );
    }

    #[test]
    fn rpc_without_panic_sends_only_its_own_answer() {
        let r = Recorder::default();
        assert_eq!(rpc(&r, |s| s.fault(400, "bad")), Ok(()));
        assert_eq!(*r.0.borrow(), [(400, "bad".to_string())]);
        let r = Recorder::default();
        assert_eq!(rpc(&r, |_| {}), Ok(()));
        assert!(r.0.borrow().is_empty());
    }
}
