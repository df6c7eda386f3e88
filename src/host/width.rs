//! Kamailio fields and arguments whose C integer type differs between the
//! releases we build for, converted through generic functions: each
//! release's build checks the conversion, and none is a no-op cast (which
//! clippy refuses) on another.

/// Sets flag bits in a core field whose width differs between releases
/// (`sip_msg.msg_flags`: `unsigned int` up to 5.7, 64-bit `msg_flags_t` from
/// 5.8). Every FL_* flag the module uses is below bit 32.
pub fn set_bits<T: core::ops::BitOrAssign + From<u32>>(field: &mut T, bits: u32) {
    *field |= T::from(bits);
}

/// The low 32 bits of such a field (see [`set_bits`]).
pub fn low_bits<T: Into<u64>>(field: T) -> u32 {
    (field.into() & u64::from(u32::MAX)) as u32
}

/// Widens an integer whose C type grew between releases (`int` to `long` for
/// script integers in 5.7, `unsigned int` to `unsigned long` for PV getters).
pub fn widen<F, T: From<F>>(value: F) -> T {
    T::from(value)
}

/// The narrowing counterpart of [`widen`]: `None` when the value does not fit.
pub fn narrow<F, T: TryFrom<F>>(value: F) -> Option<T> {
    T::try_from(value).ok()
}
