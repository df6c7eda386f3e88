//! The registration table in shared memory: every Kamailio process sees the same records.
//!
//! Every operation costs time independent of the number of records, whatever
//! `reg_hash_size` says, so loading N records is linear in N:
//!
//! - Records hash (32 bits) into a bucket array that doubles when the table holds
//!   more than two records per bucket. A bucket holds two chains: records by key 0
//!   (l_uuid) and by key 1 (l_username).
//! - Locks are a fixed set of `2^reg_hash_size` stripes (`gen_lock_t` each). Both the
//!   stripe and the bucket of a hash are its top bits, so a stripe guards a contiguous
//!   range of buckets and a hash keeps its stripe when the array grows. Growing takes
//!   the `resize` lock and then every stripe, in order; all other operations take at
//!   most two stripes, in order, so there is no deadlock.
//! - A record is one shm block: fixed header, the plain-data state `S`, then its `N`
//!   strings (immutable after insertion). No Rust heap pointer is ever stored in shm;
//!   chain links point to other shm blocks only.
//! - A record's state is read and written under the stripe of its key 0. Callers get
//!   access only inside a closure run under that lock, so no pointer to a record escapes
//!   a lock, and a record can be freed as soon as it is unlinked (under both stripes).
//! - The table keeps the number of records, of records `S::online()`, `S::disabled()`
//!   and `S::in_flight()` in shared atomics, updated from the state before and after
//!   every closure: the counters are always the true table state.
//! - Wake times: every bucket, every group of [`GROUP`] buckets and the table keep a
//!   lower bound of the `S::wake_at()` of their records, lowered by every change. The
//!   timer ([`RegTable::walk_due`]) skips groups and buckets whose bound is in the
//!   future, so a tick costs the number of groups plus the records due, not a walk of
//!   every record.

use std::marker::PhantomData;
use std::ptr::{NonNull, null_mut};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, Ordering};

use crate::host::HostError;
use crate::host::shm::lock::{InlineLock, ShmLock, ShmLockGuard};
use crate::host::shm::mem::{shm_alloc, shm_free};
use crate::table_math::{grown_log2, hash, top_bits};

/// What the table counts.
pub trait Counted {
    fn online(&self) -> bool;
    fn disabled(&self) -> bool;
    /// A request for this record is waiting for its final reply.
    fn in_flight(&self) -> bool;
    /// The earliest time (seconds) at which the timer has something to do for
    /// this record; `i64::MAX` for never.
    fn wake_at(&self) -> i64;
}

/// Buckets per wake-time group: the timer reads one bound per group.
pub const GROUP: usize = 64;
/// Initial number of buckets (at least one per stripe).
const MIN_BUCKETS_LOG2: u32 = 10;

#[repr(C)]
struct Rec<S, const N: usize> {
    next_k0: *mut Rec<S, N>,
    next_k1: *mut Rec<S, N>,
    h0: u32,
    h1: u32,
    /// The generation of the last [`RegTable::mark`] (reload sweeps the others).
    mark: u32,
    /// Length of each string; they follow the header back to back (offsets are the
    /// prefix sums). u16: record strings are database columns of at most
    /// `record::MAX_FIELD` bytes; 2 bytes instead of 8 per string keep a record no
    /// larger than the C module's.
    lens: [u16; N],
    state: S,
}

#[repr(C)]
struct Bucket<S, const N: usize> {
    by_k0: *mut Rec<S, N>,
    by_k1: *mut Rec<S, N>,
    /// Lower bound of the wake times of the records in `by_k0`.
    min_wake: AtomicI64,
}

#[repr(C)]
struct Header<S, const N: usize> {
    /// log2 of the number of stripes (fixed).
    stripes_log2: u32,
    stripes: *mut InlineLock,
    /// log2 of the number of buckets, the bucket array and the group bounds:
    /// written only with `resize` and every stripe held, read with any stripe
    /// or `resize` held.
    buckets_log2: u32,
    buckets: *mut Bucket<S, N>,
    groups: *mut AtomicI64,
    total: AtomicI64,
    online: AtomicI64,
    disabled: AtomicI64,
    in_flight: AtomicI64,
    /// `reg_active` (shared so RPC changes reach the timer process).
    active: AtomicI32,
    /// The earliest `wake_at` of all records: lowered by every change of a
    /// record (under its stripe), recomputed by each timer walk.
    next_wake: AtomicI64,
    /// When the last successful reload finished, on the caller's clock;
    /// `i64::MIN`: never. Shared so that `reload_delta` holds whichever
    /// process (RPC worker) runs the next reload.
    last_reload: AtomicI64,
    /// The last generation handed out by [`RegTable::next_generation`].
    generation: AtomicU32,
    /// Serialises whole-table operations (reload, refresh, add, remove).
    admin: ShmLock,
    /// Held while the bucket array is replaced, and by the timer walk (which
    /// reads group bounds without a stripe).
    resize: ShmLock,
}

/// A handle to the table; cheap to copy, valid in every process forked after creation.
pub struct RegTable<S, const N: usize> {
    hdr: NonNull<Header<S, N>>,
    _s: PhantomData<S>,
}

// SAFETY: the handle only holds a pointer to shm that is never freed while Kamailio
// runs; all access to mutable data goes through shm locks or atomics.
unsafe impl<S, const N: usize> Send for RegTable<S, N> {}
// SAFETY: see above.
unsafe impl<S, const N: usize> Sync for RegTable<S, N> {}

/// A record seen under its lock.
pub struct RecRef<'a, S, const N: usize> {
    strings: [&'a [u8]; N],
    pub state: &'a mut S,
}

impl<S, const N: usize> RecRef<'_, S, N> {
    /// String `i` (empty if out of range).
    pub fn s(&self, i: usize) -> &[u8] {
        self.strings.get(i).copied().unwrap_or(&[])
    }
}

/// What the closure of [`RegTable::walk_due`] tells the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    Continue,
    /// Stop after the current bucket (the rest is visited by the next walk).
    Stop,
}

/// A bucket array with its group bounds, fresh from shm.
struct Arrays<S, const N: usize> {
    buckets: *mut Bucket<S, N>,
    groups: *mut AtomicI64,
}

fn group_count(buckets_log2: u32) -> usize {
    (1usize << buckets_log2).div_ceil(GROUP)
}

/// Allocates and initialises empty buckets and group bounds.
fn alloc_arrays<S, const N: usize>(log2: u32) -> Option<Arrays<S, N>> {
    let nb = 1usize << log2;
    let ng = group_count(log2);
    // SAFETY: plain allocations, initialised below before anyone can see them.
    let buckets = unsafe { shm_alloc(std::mem::size_of::<Bucket<S, N>>() * nb) }?;
    // SAFETY: as above.
    let Some(groups) = (unsafe { shm_alloc(std::mem::size_of::<AtomicI64>() * ng) }) else {
        // SAFETY: allocated above, not shared.
        unsafe { shm_free(buckets) };
        return None;
    };
    let buckets = buckets.as_ptr().cast::<Bucket<S, N>>();
    let groups = groups.as_ptr().cast::<AtomicI64>();
    for i in 0..nb {
        // SAFETY: `i` < nb, inside the fresh block.
        unsafe {
            buckets.add(i).write(Bucket {
                by_k0: null_mut(),
                by_k1: null_mut(),
                min_wake: AtomicI64::new(i64::MAX),
            })
        };
    }
    for g in 0..ng {
        // SAFETY: `g` < ng, inside the fresh block.
        unsafe { groups.add(g).write(AtomicI64::new(i64::MAX)) };
    }
    Some(Arrays { buckets, groups })
}

impl<S: Copy + Counted, const N: usize> RegTable<S, N> {
    /// Creates an empty table with `stripes` locks (a power of two) in shm; call in
    /// mod_init, before the fork.
    pub fn create(stripes: u32, active: bool) -> Option<Self> {
        let stripes_log2 = stripes.max(1).next_power_of_two().trailing_zeros();
        let buckets_log2 = stripes_log2.max(MIN_BUCKETS_LOG2);
        let admin = ShmLock::new()?;
        let resize = ShmLock::new()?;
        let ns = 1usize << stripes_log2;
        // SAFETY: plain allocation; the locks are initialised below before use.
        let locks = unsafe { shm_alloc(std::mem::size_of::<InlineLock>() * ns) }?
            .as_ptr()
            .cast::<InlineLock>();
        for i in 0..ns {
            // SAFETY: `i` < ns, inside the block just allocated, not shared yet
            // (mod_init, before the fork).
            if unsafe { InlineLock::init(locks.add(i)) }.is_err() {
                return None;
            }
        }
        let arrays = alloc_arrays::<S, N>(buckets_log2)?;
        // SAFETY: size of a plain struct; written before use.
        let hdr = unsafe { shm_alloc(std::mem::size_of::<Header<S, N>>()) }?.cast::<Header<S, N>>();
        // SAFETY: `hdr` is a fresh block of the right size and alignment (shm_malloc
        // aligns for any type).
        unsafe {
            hdr.as_ptr().write(Header {
                stripes_log2,
                stripes: locks,
                buckets_log2,
                buckets: arrays.buckets,
                groups: arrays.groups,
                total: AtomicI64::new(0),
                online: AtomicI64::new(0),
                disabled: AtomicI64::new(0),
                in_flight: AtomicI64::new(0),
                active: AtomicI32::new(i32::from(active)),
                next_wake: AtomicI64::new(i64::MIN),
                last_reload: AtomicI64::new(i64::MIN),
                generation: AtomicU32::new(0),
                admin,
                resize,
            })
        };
        Some(RegTable {
            hdr,
            _s: PhantomData,
        })
    }

    fn hdr(&self) -> &Header<S, N> {
        // SAFETY: initialised in create, never freed. Fields written after creation
        // are atomics, or read only under the locks that guard their writes.
        unsafe { self.hdr.as_ref() }
    }

    fn hdr_mut(&self) -> *mut Header<S, N> {
        self.hdr.as_ptr()
    }

    fn stripe_of(&self, h: u32) -> usize {
        top_bits(h, self.hdr().stripes_log2)
    }

    /// Locks stripe `i`.
    fn lock_stripe(&self, i: usize) -> ShmLockGuard<'_> {
        // SAFETY: `i` < number of stripes (callers derive it with `stripe_of` or
        // iterate below the count); locks are initialised and never freed.
        unsafe { (*self.hdr().stripes.add(i)).lock() }
    }

    /// Locks the stripe of hash `h`.
    fn lock(&self, h: u32) -> ShmLockGuard<'_> {
        self.lock_stripe(self.stripe_of(h))
    }

    /// The bucket of `h`.
    ///
    /// # Safety
    /// The caller holds a stripe or `resize` (the array is stable).
    unsafe fn bucket(&self, h: u32) -> (usize, *mut Bucket<S, N>) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            let hd = &*self.hdr_mut();
            let b = top_bits(h, hd.buckets_log2);
            (b, hd.buckets.add(b))
        }
    }

    /// Number of records, registered records, disabled records.
    pub fn counts(&self) -> (i64, i64, i64) {
        let h = self.hdr();
        (
            h.total.load(Ordering::Relaxed),
            h.online.load(Ordering::Relaxed),
            h.disabled.load(Ordering::Relaxed),
        )
    }

    /// Records with a request waiting for its final reply.
    pub fn in_flight(&self) -> i64 {
        self.hdr().in_flight.load(Ordering::Relaxed)
    }

    /// `reg_active`.
    pub fn active(&self) -> bool {
        self.hdr().active.load(Ordering::Relaxed) != 0
    }

    /// Sets `reg_active`, returning the old value.
    pub fn set_active(&self, on: bool) -> bool {
        let was = self.hdr().active.swap(i32::from(on), Ordering::Relaxed) != 0;
        if on {
            // Records due while inactive are due now.
            self.hdr().next_wake.store(i64::MIN, Ordering::SeqCst);
        }
        was
    }

    /// Whether a timer walk at `now` may find work: the earliest wake time of
    /// the records has come.
    pub fn due(&self, now: i64) -> bool {
        now >= self.hdr().next_wake.load(Ordering::SeqCst)
    }

    /// Serialises administrative operations (reload, refresh, add, remove).
    pub fn admin_lock(&self) -> ShmLockGuard<'_> {
        self.hdr().admin.lock()
    }

    /// When the last successful reload finished (as stored by
    /// [`RegTable::set_last_reload`]), `None` if there was none.
    pub fn last_reload(&self) -> Option<i64> {
        let at = self.hdr().last_reload.load(Ordering::SeqCst);
        (at != i64::MIN).then_some(at)
    }

    /// Records the end of a successful reload (call under [`RegTable::admin_lock`]).
    pub fn set_last_reload(&self, at: i64) {
        self.hdr().last_reload.store(at, Ordering::SeqCst);
    }

    /// The generation records inserted now belong to.
    pub fn generation(&self) -> u32 {
        self.hdr().generation.load(Ordering::SeqCst)
    }

    /// A new generation for [`RegTable::mark`] / [`RegTable::sweep`]; records
    /// inserted from now on belong to it.
    pub fn next_generation(&self) -> u32 {
        self.hdr()
            .generation
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1)
    }

    /// Updates the counters and wake bounds after a change of a record in bucket `b`.
    ///
    /// # Safety
    /// The caller holds the stripe of bucket `b` (the array is stable).
    unsafe fn account(&self, before: Option<&S>, after: Option<&S>, b: usize) {
        let h = self.hdr();
        let d = |b: bool| i64::from(b);
        let counts = |s: Option<&S>| {
            s.map_or((0, 0, 0, 0), |s| {
                (1, d(s.online()), d(s.disabled()), d(s.in_flight()))
            })
        };
        let (t0, o0, x0, f0) = counts(before);
        let (t1, o1, x1, f1) = counts(after);
        for (c, delta) in [
            (&h.total, t1 - t0),
            (&h.online, o1 - o0),
            (&h.disabled, x1 - x0),
            (&h.in_flight, f1 - f0),
        ] {
            if delta != 0 {
                c.fetch_add(delta, Ordering::Relaxed);
            }
        }
        if let Some(s) = after {
            let w = s.wake_at();
            // SAFETY: `b` is a bucket of the current array (caller's lock).
            unsafe {
                (*h.buckets.add(b)).min_wake.fetch_min(w, Ordering::SeqCst);
                (*h.groups.add(b / GROUP)).fetch_min(w, Ordering::SeqCst);
            }
            h.next_wake.fetch_min(w, Ordering::SeqCst);
        }
    }

    /// # Safety
    /// `r` is a linked record and the caller holds its key-0 stripe (strings are
    /// immutable, so the key-1 stripe also suffices for reading them).
    unsafe fn view<'a>(r: *mut Rec<S, N>) -> RecRef<'a, S, N> {
        // SAFETY: guaranteed by the caller; the strings follow the header in the block.
        unsafe {
            let mut p = (r as *mut u8).add(std::mem::size_of::<Rec<S, N>>()) as *const u8;
            // On the stack: the timer walks many records.
            let strings = (*r).lens.map(|len| {
                let s = std::slice::from_raw_parts(p, usize::from(len)) as &[u8];
                p = p.add(usize::from(len));
                s
            });
            RecRef {
                strings,
                state: &mut (*r).state,
            }
        }
    }

    /// String 0 (the key) of a record, without building the whole view.
    ///
    /// # Safety
    /// As for [`Self::view`].
    unsafe fn key0<'a>(r: *mut Rec<S, N>) -> &'a [u8] {
        // SAFETY: guaranteed by the caller; string 0 is the first after the header.
        unsafe {
            let p = (r as *mut u8).add(std::mem::size_of::<Rec<S, N>>());
            match (*r).lens.first() {
                Some(&len) => std::slice::from_raw_parts(p, usize::from(len)),
                None => &[],
            }
        }
    }

    /// The record with key 0 `key`, and its bucket.
    ///
    /// # Safety
    /// The caller holds the stripe of `h0`.
    unsafe fn find_k0(&self, h0: u32, key: &[u8]) -> (usize, *mut Rec<S, N>) {
        // SAFETY: the stripe is held, so the array and the chain are stable.
        unsafe {
            let (b, bucket) = self.bucket(h0);
            let mut r = (*bucket).by_k0;
            while !r.is_null() {
                if (*r).h0 == h0 && Self::key0(r) == key {
                    return (b, r);
                }
                r = (*r).next_k0;
            }
            (b, null_mut())
        }
    }

    /// Adds a record (of the current generation); fails if its key 0 exists.
    pub fn insert(&self, strings: [&[u8]; N], state: S) -> Result<(), HostError> {
        let mark = self.hdr().generation.load(Ordering::SeqCst);
        let total: usize = strings.iter().map(|s| s.len()).sum();
        let mut lens = [0u16; N];
        for (l, s) in lens.iter_mut().zip(&strings) {
            // Rows are validated to record::MAX_FIELD bytes per column; a longer string
            // cannot be stored (reported like any failed insertion).
            *l = u16::try_from(s.len()).map_err(|_| HostError::NoShm)?;
        }
        let h0 = hash(strings[0]);
        let h1 = if N > 1 { hash(strings[1]) } else { 0 };
        // SAFETY: block for the header and the strings; initialised before linking.
        let block = unsafe { shm_alloc(std::mem::size_of::<Rec<S, N>>() + total) }
            .ok_or(HostError::NoShm)?;
        let r = block.as_ptr().cast::<Rec<S, N>>();
        let mut off = 0usize;
        // SAFETY: offsets stay within `total` bytes after the header.
        unsafe {
            let base = block.as_ptr().add(std::mem::size_of::<Rec<S, N>>());
            for s in &strings {
                std::ptr::copy_nonoverlapping(s.as_ptr(), base.add(off), s.len());
                off += s.len();
            }
            r.write(Rec {
                next_k0: null_mut(),
                next_k1: null_mut(),
                h0,
                h1,
                mark,
                lens,
                state,
            });
        }
        {
            let _guards = self.lock_pair(h0, h1);
            // SAFETY: both stripes are held: the array and both chains are stable.
            unsafe {
                let (b0, found) = self.find_k0(h0, strings[0]);
                if !found.is_null() {
                    shm_free(block);
                    return Err(HostError::Exists);
                }
                let (_, s0) = self.bucket(h0);
                (*r).next_k0 = (*s0).by_k0;
                (*s0).by_k0 = r;
                let (_, s1) = self.bucket(h1);
                (*r).next_k1 = (*s1).by_k1;
                (*s1).by_k1 = r;
                self.account(None, Some(&state), b0);
            }
        }
        self.grow_if_loaded();
        Ok(())
    }

    /// Doubles the bucket array (as often as needed) when records outnumber
    /// [`MAX_LOAD`] per bucket. The new array is filled before it replaces the old
    /// one, with every stripe held; when shm is short the old one stays (longer
    /// chains, still correct).
    fn grow_if_loaded(&self) {
        let total = self.hdr().total.load(Ordering::Relaxed);
        // An unlocked read of `buckets_log2` is only a hint; it is checked again
        // below with every lock held.
        // SAFETY: an aligned u32 in the header; a stale value only skips or
        // attempts a growth that is re-checked.
        let log2 = unsafe { std::ptr::read_volatile(&raw const (*self.hdr_mut()).buckets_log2) };
        if grown_log2(log2, total) == log2 {
            return;
        }
        let _r = self.hdr().resize.lock();
        let ns = 1usize << self.hdr().stripes_log2;
        let _all: Vec<ShmLockGuard<'_>> = (0..ns).map(|i| self.lock_stripe(i)).collect();
        // SAFETY: `resize` and every stripe are held: nobody reads or writes the
        // array, the chains or the header's array fields meanwhile.
        unsafe {
            let hd = self.hdr_mut();
            let old_log2 = (*hd).buckets_log2;
            let new_log2 = grown_log2(old_log2, (*hd).total.load(Ordering::Relaxed));
            if new_log2 == old_log2 {
                return;
            }
            let Some(new) = alloc_arrays::<S, N>(new_log2) else {
                kwarn!(
                    "uac reg table: no shared memory to grow to {} buckets; lookups get slower",
                    1u64 << new_log2
                );
                return;
            };
            let old_buckets = (*hd).buckets;
            let old_groups = (*hd).groups;
            for i in 0..1usize << old_log2 {
                let old = &*old_buckets.add(i);
                let mut r = old.by_k0;
                while !r.is_null() {
                    let next = (*r).next_k0;
                    let b = top_bits((*r).h0, new_log2);
                    let nb = new.buckets.add(b);
                    (*r).next_k0 = (*nb).by_k0;
                    (*nb).by_k0 = r;
                    let w = (*r).state.wake_at();
                    (*nb).min_wake.fetch_min(w, Ordering::SeqCst);
                    (*new.groups.add(b / GROUP)).fetch_min(w, Ordering::SeqCst);
                    r = next;
                }
                let mut r = old.by_k1;
                while !r.is_null() {
                    let next = (*r).next_k1;
                    let nb = new.buckets.add(top_bits((*r).h1, new_log2));
                    (*r).next_k1 = (*nb).by_k1;
                    (*nb).by_k1 = r;
                    r = next;
                }
            }
            (*hd).buckets = new.buckets;
            (*hd).groups = new.groups;
            (*hd).buckets_log2 = new_log2;
            shm_free(NonNull::new_unchecked(old_buckets.cast::<u8>()));
            shm_free(NonNull::new_unchecked(old_groups.cast::<u8>()));
        }
    }

    /// Locks the stripes of `h0` and `h1` in index order (one lock if they share one).
    fn lock_pair(&self, h0: u32, h1: u32) -> (ShmLockGuard<'_>, Option<ShmLockGuard<'_>>) {
        let (i0, i1) = (self.stripe_of(h0), self.stripe_of(h1));
        if i0 == i1 {
            (self.lock_stripe(i0), None)
        } else {
            let (lo, hi) = (i0.min(i1), i0.max(i1));
            let a = self.lock_stripe(lo);
            (a, Some(self.lock_stripe(hi)))
        }
    }

    /// Removes the record with key 0 `key`; returns its last state.
    pub fn remove(&self, key: &[u8]) -> Option<S> {
        let h0 = hash(key);
        // Find h1 under the key-0 stripe, then take both stripes in order and re-check.
        let h1 = {
            let _g = self.lock(h0);
            // SAFETY: stripe held.
            let (_, r) = unsafe { self.find_k0(h0, key) };
            if r.is_null() {
                return None;
            }
            // SAFETY: linked record under lock.
            unsafe { (*r).h1 }
        };
        let _guards = self.lock_pair(h0, h1);
        // SAFETY: both stripes held; unlink from both chains, then free.
        unsafe {
            let (b0, r) = self.find_k0(h0, key);
            if r.is_null() || (*r).h1 != h1 {
                return None;
            }
            let (_, s0) = self.bucket(h0);
            let mut p: *mut *mut Rec<S, N> = &mut (*s0).by_k0;
            while !(*p).is_null() {
                if *p == r {
                    *p = (*r).next_k0;
                    break;
                }
                p = &mut (**p).next_k0;
            }
            let (_, s1) = self.bucket(h1);
            let mut p: *mut *mut Rec<S, N> = &mut (*s1).by_k1;
            while !(*p).is_null() {
                if *p == r {
                    *p = (*r).next_k1;
                    break;
                }
                p = &mut (**p).next_k1;
            }
            let state = (*r).state;
            shm_free(NonNull::new_unchecked(r.cast::<u8>()));
            self.account(Some(&state), None, b0);
            Some(state)
        }
    }

    /// Runs `f` on the record with key 0 `key`, under its lock. Keep `f` short: no tm, no
    /// script, no other table call.
    pub fn with_key<R>(&self, key: &[u8], f: impl FnOnce(&mut RecRef<'_, S, N>) -> R) -> Option<R> {
        let h0 = hash(key);
        let _g = self.lock(h0);
        // SAFETY: stripe held for the whole closure.
        unsafe {
            let (b, r) = self.find_k0(h0, key);
            if r.is_null() {
                return None;
            }
            let before = (*r).state;
            let mut v = Self::view(r);
            let out = f(&mut v);
            let after = (*r).state;
            self.account(Some(&before), Some(&after), b);
            Some(out)
        }
    }

    /// Sets the generation of the record with key 0 `key`; false if there is none.
    pub fn mark(&self, key: &[u8], generation: u32) -> bool {
        let h0 = hash(key);
        let _g = self.lock(h0);
        // SAFETY: stripe held.
        unsafe {
            let (_, r) = self.find_k0(h0, key);
            if r.is_null() {
                return false;
            }
            (*r).mark = generation;
        }
        true
    }

    /// Removes every record whose generation is not `generation`; returns how many.
    pub fn sweep(&self, generation: u32) -> usize {
        let mut stale = Vec::new();
        self.for_each_raw(|r| {
            // SAFETY: `for_each_raw` runs under the record's stripe.
            unsafe {
                if (*r).mark != generation {
                    stale.push(Self::key0(r).to_vec());
                }
            }
        });
        stale.iter().filter(|k| self.remove(k).is_some()).count()
    }

    /// Key 0 of the first record whose key 1 is `user` (and string `domain_idx` is
    /// `domain`, when given).
    pub fn key_by_user(&self, user: &[u8], domain: Option<(usize, &[u8])>) -> Option<Vec<u8>> {
        let h1 = hash(user);
        let _g = self.lock(h1);
        // SAFETY: key-1 stripe held: the array and the chain are stable, and strings are
        // immutable.
        unsafe {
            let (_, bucket) = self.bucket(h1);
            let mut r = (*bucket).by_k1;
            while !r.is_null() {
                let v = Self::view(r);
                if (*r).h1 == h1 && v.s(1) == user && domain.is_none_or(|(i, d)| v.s(i) == d) {
                    return Some(v.s(0).to_vec());
                }
                r = (*r).next_k1;
            }
        }
        None
    }

    /// Key 0 of the first record whose string `field` equals `value` (full scan).
    pub fn key_by_field(&self, field: usize, value: &[u8]) -> Option<Vec<u8>> {
        let mut found = None;
        self.for_each(|r| {
            if found.is_none() && r.s(field) == value {
                found = Some(r.s(0).to_vec());
            }
        });
        found
    }

    /// Runs `f` on every linked record, one stripe at a time, with that stripe held.
    /// A stripe covers a fixed range of hashes, so a growth between two stripes
    /// neither skips nor repeats a record.
    fn for_each_raw(&self, mut f: impl FnMut(*mut Rec<S, N>)) {
        let stripes_log2 = self.hdr().stripes_log2;
        for s in 0..1usize << stripes_log2 {
            let _g = self.lock_stripe(s);
            // SAFETY: stripe `s` held: its buckets and chains are stable.
            unsafe {
                let hd = &*self.hdr_mut();
                let per = 1usize << (hd.buckets_log2 - stripes_log2);
                for b in s * per..(s + 1) * per {
                    let mut r = (*hd.buckets.add(b)).by_k0;
                    while !r.is_null() {
                        let next = (*r).next_k0;
                        f(r);
                        r = next;
                    }
                }
            }
        }
    }

    /// Runs `f` on every record, one stripe at a time.
    pub fn for_each(&self, mut f: impl FnMut(&mut RecRef<'_, S, N>)) {
        self.for_each_raw(|r| {
            // SAFETY: under the record's stripe (for_each_raw); the bucket is the
            // record's own, recomputed from its hash with the array stable.
            unsafe {
                let before = (*r).state;
                let mut v = Self::view(r);
                f(&mut v);
                let after = (*r).state;
                let (b, _) = self.bucket((*r).h0);
                self.account(Some(&before), Some(&after), b);
            }
        });
    }

    /// The timer walk: runs `f` on the records of every bucket whose wake bound has
    /// come (`<= now`), and recomputes the bounds it passes. When `f` says
    /// [`Walk::Stop`], the walk ends after that bucket and the next [`RegTable::due`]
    /// is true at once. Returns whether the walk went through the whole table.
    pub fn walk_due(&self, now: i64, mut f: impl FnMut(&mut RecRef<'_, S, N>) -> Walk) -> bool {
        // `resize` keeps the array and group bounds in place for the whole walk.
        let _r = self.hdr().resize.lock();
        let h = self.hdr();
        // Changes made from here on lower the bound again; a change made before
        // this store is seen by the walk, which takes that record's stripe later.
        h.next_wake.store(i64::MAX, Ordering::SeqCst);
        // SAFETY: `resize` held: the array fields are stable.
        let (buckets, groups, log2) = unsafe {
            let hd = &*self.hdr_mut();
            (hd.buckets, hd.groups, hd.buckets_log2)
        };
        let nb = 1usize << log2;
        for g in 0..group_count(log2) {
            // SAFETY: `g` < group count of the array held stable by `resize`.
            let group = unsafe { &*groups.add(g) };
            let bound = group.load(Ordering::SeqCst);
            if bound > now {
                h.next_wake.fetch_min(bound, Ordering::SeqCst);
                continue;
            }
            group.store(i64::MAX, Ordering::SeqCst);
            let end = ((g + 1) * GROUP).min(nb);
            for b in g * GROUP..end {
                let _s = self.lock_stripe(b >> (log2 - h.stripes_log2));
                // SAFETY: the bucket's stripe is held: its chain is stable.
                let stop = unsafe {
                    let bucket = &*buckets.add(b);
                    let bound = bucket.min_wake.load(Ordering::SeqCst);
                    if bound > now {
                        group.fetch_min(bound, Ordering::SeqCst);
                        h.next_wake.fetch_min(bound, Ordering::SeqCst);
                        continue;
                    }
                    bucket.min_wake.store(i64::MAX, Ordering::SeqCst);
                    let mut stop = false;
                    let mut r = bucket.by_k0;
                    while !r.is_null() {
                        let before = (*r).state;
                        if !stop {
                            let mut v = Self::view(r);
                            stop = f(&mut v) == Walk::Stop;
                        }
                        self.account(Some(&before), Some(&(*r).state), b);
                        r = (*r).next_k0;
                    }
                    stop
                };
                if stop {
                    // The buckets not visited keep their bounds: fold them into the
                    // group's, and walk again at the next tick.
                    for rest in b + 1..end {
                        // SAFETY: inside the stable array.
                        let m = unsafe { (*buckets.add(rest)).min_wake.load(Ordering::SeqCst) };
                        group.fetch_min(m, Ordering::SeqCst);
                    }
                    h.next_wake.store(i64::MIN, Ordering::SeqCst);
                    return false;
                }
            }
        }
        true
    }
}

impl<S, const N: usize> Clone for RegTable<S, N> {
    fn clone(&self) -> Self {
        RegTable {
            hdr: self.hdr,
            _s: PhantomData,
        }
    }
}
