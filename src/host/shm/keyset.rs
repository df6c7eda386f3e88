//! A small set of short keys in shared memory, for state every process must see
//! (`reg_cluster`: the DMQ nodes that announced they are leaving; the Contact
//! addresses of other nodes' bindings).

use std::ptr::NonNull;

use crate::host::shm::lock::InlineLock;
use crate::host::shm::mem::shm_alloc;

/// Keys kept at most.
pub const CAPACITY: usize = 32;
/// Longest key (`[IPv6]:port` fits).
pub const KEY_MAX: usize = 80;

#[repr(C)]
struct Inner {
    lock: InlineLock,
    lens: [u8; CAPACITY],
    keys: [[u8; KEY_MAX]; CAPACITY],
}

/// Made in mod_init (before the fork), never freed while Kamailio runs. Its lock is a
/// leaf: taken under a registration record's lock, it never takes another.
pub struct ShmKeySet {
    inner: NonNull<Inner>,
}

// SAFETY: the block lives in shm as long as Kamailio; every access but `new`'s
// initialisation is under its lock.
unsafe impl Send for ShmKeySet {}
// SAFETY: see above.
unsafe impl Sync for ShmKeySet {}

impl ShmKeySet {
    /// An empty set; `None` when shm is out or the lock cannot be made.
    pub fn new() -> Option<ShmKeySet> {
        // SAFETY: plain allocation of an `Inner` (shm_malloc aligns for any type).
        let p = unsafe { shm_alloc(std::mem::size_of::<Inner>()) }?.cast::<Inner>();
        // SAFETY: a fresh block of the right size, not shared yet: the lengths are
        // zeroed (an empty set; the key bytes are only read up to them), then the lock
        // initialised in place.
        unsafe {
            (&raw mut (*p.as_ptr()).lens).write([0; CAPACITY]);
            InlineLock::init(&raw mut (*p.as_ptr()).lock).ok()?;
        }
        Some(ShmKeySet { inner: p })
    }

    /// Runs `f` on the lengths and keys under the lock.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut [u8; CAPACITY], &mut [[u8; KEY_MAX]; CAPACITY]) -> R,
    ) -> R {
        let p = self.inner.as_ptr();
        // SAFETY: initialised in `new`, never freed.
        let lock = unsafe { &(*p).lock };
        let _g = lock.lock();
        // SAFETY: the lock is held: no other process touches the arrays.
        unsafe { f(&mut (*p).lens, &mut (*p).keys) }
    }

    /// Adds `key`; false when it is too long or the set is full.
    pub fn insert(&self, key: &[u8]) -> bool {
        self.intern(key).is_some()
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&self, key: &[u8]) -> bool {
        self.with(|lens, keys| {
            let at = (0..CAPACITY).find(|&i| {
                let n = usize::from(lens[i]);
                n > 0 && &keys[i][..n] == key
            });
            if let Some(i) = at {
                lens[i] = 0;
            }
            at.is_some()
        })
    }

    /// The number (1-based, stable: keys are never moved) of `key`, added when new;
    /// `None` when it is too long or the set is full.
    pub fn intern(&self, key: &[u8]) -> Option<u8> {
        if key.is_empty() || key.len() > KEY_MAX {
            return None;
        }
        self.with(|lens, keys| {
            let n = |i: usize| usize::from(lens[i]);
            if let Some(i) = (0..CAPACITY).find(|&i| n(i) > 0 && &keys[i][..n(i)] == key) {
                return Some(i as u8 + 1);
            }
            let free = (0..CAPACITY).find(|&i| lens[i] == 0)?;
            keys[free][..key.len()].copy_from_slice(key);
            lens[free] = key.len() as u8;
            Some(free as u8 + 1)
        })
    }

    /// The key numbered `number` by [`ShmKeySet::intern`].
    pub fn get(&self, number: u8) -> Option<Vec<u8>> {
        let i = usize::from(number.checked_sub(1)?);
        self.with(|lens, keys| {
            let n = usize::from(*lens.get(i)?);
            (n > 0).then(|| keys[i][..n].to_vec())
        })
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.with(|lens, keys| {
            (0..CAPACITY)
                .filter(|&i| lens[i] > 0)
                .map(|i| keys[i][..usize::from(lens[i])].to_vec())
                .collect()
        })
    }
}
