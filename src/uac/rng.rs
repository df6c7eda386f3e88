//! The per-process random generator (cnonces, Call-IDs, nonces, delays).
//!
//! Kamailio forks its workers after mod_init; a generator seeded before the
//! fork would give every worker the same sequence. This one remembers the
//! pid it was seeded in and reseeds from the OS whenever it finds itself in
//! another process.

use std::cell::RefCell;

use rand::SeedableRng;
use rand::rngs::{StdRng, SysRng};

thread_local! {
    static PROCESS_RNG: RefCell<Option<(u32, StdRng)>> = const { RefCell::new(None) };
}

fn fresh() -> StdRng {
    StdRng::try_from_rng(&mut SysRng).unwrap_or_else(|_| {
        // No OS entropy (should not happen): still differ per process and time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        StdRng::seed_from_u64(t ^ ((std::process::id() as u64) << 32))
    })
}

/// Runs `f` with this process's generator.
pub fn with_rng<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
    PROCESS_RNG.with(|cell| {
        let mut slot = cell.borrow_mut();
        let pid = std::process::id();
        if slot.as_ref().is_none_or(|(p, _)| *p != pid) {
            *slot = Some((pid, fresh()));
        }
        let (_, rng) = slot.as_mut().expect("set above"); // ok: just initialised
        f(rng)
    })
}

#[cfg(test)]
mod tests {
    use rand::RngExt;

    #[test]
    fn gives_different_values() {
        let a: u64 = super::with_rng(|r| r.random());
        let b: u64 = super::with_rng(|r| r.random());
        assert_ne!(a, b);
    }
}
