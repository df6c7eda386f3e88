//! The arithmetic of the shared registration table (`host::shm::reg_table`): key hash,
//! bucket and stripe indexes, growth. Pure, so it is unit-tested without Kamailio.

/// Records per bucket above which the bucket array doubles.
pub const MAX_LOAD: i64 = 2;

/// The 32-bit hash of a key: FNV-1a, then murmur3's finaliser, because buckets and
/// stripes use the top bits, which FNV alone mixes poorly for keys that differ only
/// in their last bytes.
pub fn hash(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &c in b {
        h ^= u32::from(c);
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The top `log2` bits of `h`: its index among `2^log2` buckets or stripes.
pub const fn top_bits(h: u32, log2: u32) -> usize {
    ((h as u64) << log2 >> 32) as usize
}

/// Buckets a table of `records` records grows to from `log2` (never shrinks).
pub fn grown_log2(mut log2: u32, records: i64) -> u32 {
    while records > MAX_LOAD << log2 && log2 < 31 {
        log2 += 1;
    }
    log2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_and_bucket_agree_at_every_size() {
        // A hash keeps its stripe when the array grows: the stripe is the top bits of
        // the bucket index.
        for h in [0u32, 1, 0x7fff_ffff, 0x8000_0000, 0xdead_beef, u32::MAX] {
            for stripes in 0..=14 {
                for buckets in stripes..=31 {
                    let b = top_bits(h, buckets);
                    assert_eq!(b >> (buckets - stripes), top_bits(h, stripes));
                    assert!(b < 1 << buckets);
                }
            }
        }
    }

    #[test]
    fn growth_keeps_the_load_bounded() {
        assert_eq!(grown_log2(10, 0), 10);
        assert_eq!(grown_log2(10, 2048), 10);
        assert_eq!(grown_log2(10, 2049), 11);
        assert_eq!(grown_log2(10, 1_000_000), 19);
        assert!(1_000_000 <= MAX_LOAD << grown_log2(4, 1_000_000));
    }

    #[test]
    fn hash_spreads_similar_keys_over_top_bits() {
        // 100k keys like the bench's l_uuids over 4096 buckets: no bucket far above
        // the mean (about 24).
        let mut counts = vec![0u32; 4096];
        for i in 0..100_000 {
            counts[top_bits(hash(format!("u{i}").as_bytes()), 12)] += 1;
        }
        let max = counts.iter().max().copied().unwrap_or(0);
        assert!(max < 60, "largest bucket {max}");
    }
}
