//! `reload_delta`: the minimum time between two `uac.reg_reload` (C module 6.0).
//!
//! The C module needs it because two reloads at once crash it; here reloads are
//! serialised, so the default is 0 (no limit) and a positive value only gives
//! operators C's rate limit back. Pure: times are milliseconds on a clock the
//! caller chooses.

/// Whether a reload may run at `now_ms`, given when the last successful one
/// finished (`None`: none yet). `delta_secs` 0 means no limit.
pub fn reload_allowed(last_ms: Option<i64>, now_ms: i64, delta_secs: u32) -> bool {
    match last_ms {
        Some(last) if delta_secs > 0 => {
            now_ms.saturating_sub(last) >= i64::from(delta_secs).saturating_mul(1000)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_by_default_and_before_the_first_reload() {
        assert!(reload_allowed(Some(1000), 1000, 0));
        assert!(reload_allowed(None, 0, 30));
    }

    #[test]
    fn refused_for_delta_seconds_after_the_last_reload() {
        assert!(!reload_allowed(Some(10_000), 10_000, 2));
        assert!(!reload_allowed(Some(10_000), 11_999, 2));
        assert!(reload_allowed(Some(10_000), 12_000, 2));
        assert!(reload_allowed(Some(10_000), 60_000, 2));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        assert!(reload_allowed(Some(i64::MIN + 1), i64::MAX, u32::MAX));
        assert!(!reload_allowed(Some(i64::MAX), i64::MIN, 1));
    }
}
