//! The registration table in shared memory: every Kamailio process sees the same records.
//!
//! - `slots` hash slots (a power of two), each with its own `gen_lock_t` and two chains:
//!   records by key 0 (l_uuid) and by key 1 (l_username).
//! - A record is one shm block: fixed header, the plain-data state `S`, then its `N`
//!   strings (immutable after insertion). No Rust heap pointer is ever stored in shm;
//!   chain links point to other shm blocks only.
//! - A record's state is read and written under the lock of its key-0 slot. Callers get
//!   access only inside a closure run under that lock, so no pointer to a record escapes a
//!   lock, and a record can be freed as soon as it is unlinked (under both slot locks).
//! - The table keeps the number of records, of records `S::online()` and of records
//!   `S::disabled()` in shared atomics, updated from the state before and after every
//!   closure: the counters are always the true table state.

use std::marker::PhantomData;
use std::ptr::{NonNull, null_mut};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use crate::host::lock::{InlineLock, ShmLock, ShmLockGuard};
use crate::host::mem::{shm_alloc, shm_free};

/// What the table counts.
pub trait Counted {
    fn online(&self) -> bool;
    fn disabled(&self) -> bool;
    /// The earliest time (seconds) at which the timer has something to do for
    /// this record; `i64::MAX` for never.
    fn wake_at(&self) -> i64;
}

#[repr(C)]
struct Rec<S, const N: usize> {
    next_k0: *mut Rec<S, N>,
    next_k1: *mut Rec<S, N>,
    h0: u32,
    h1: u32,
    /// Length of each string; they follow the header back to back (offsets are the
    /// prefix sums). u16: record strings are database columns of at most
    /// `record::MAX_FIELD` bytes; 2 bytes instead of 8 per string keep a record no
    /// larger than the C module's.
    lens: [u16; N],
    state: S,
}

#[repr(C)]
struct Slot<S, const N: usize> {
    lock: InlineLock,
    by_k0: *mut Rec<S, N>,
    by_k1: *mut Rec<S, N>,
}

#[repr(C)]
struct Header {
    nslots: u32,
    total: AtomicI64,
    online: AtomicI64,
    disabled: AtomicI64,
    /// `reg_active` (shared so RPC changes reach the timer process).
    active: AtomicI32,
    /// The earliest `wake_at` of all records: lowered by every change of a
    /// record (under its slot lock), recomputed by each timer walk.
    next_wake: AtomicI64,
    /// When the last successful reload finished, on the caller's clock;
    /// `i64::MIN`: never. Shared so that `reload_delta` holds whichever
    /// process (RPC worker) runs the next reload.
    last_reload: AtomicI64,
    /// Serialises whole-table operations (reload, refresh, add, remove).
    admin: ShmLock,
}

/// A handle to the table; cheap to copy, valid in every process forked after creation.
pub struct RegTable<S, const N: usize> {
    hdr: NonNull<Header>,
    slots: NonNull<Slot<S, N>>,
    _s: PhantomData<S>,
}

// SAFETY: the handle only holds pointers to shm that is never freed while Kamailio runs;
// all access to mutable data goes through shm locks or atomics.
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

/// Why an insertion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    Exists,
    NoMemory,
}

/// FNV-1a, the slot hash.
fn hash(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &c in b {
        h ^= u32::from(c);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl<S: Copy + Counted, const N: usize> RegTable<S, N> {
    /// Creates an empty table with `nslots` slots (a power of two) in shm; call in
    /// mod_init, before the fork.
    pub fn create(nslots: u32, active: bool) -> Option<Self> {
        let nslots = nslots.max(1).next_power_of_two();
        // SAFETY: sizes of plain structs; the blocks are initialised below before use.
        let hdr = unsafe { shm_alloc(std::mem::size_of::<Header>()) }?.cast::<Header>();
        let admin = ShmLock::new()?;
        // SAFETY: `hdr` is a fresh block of the right size and alignment (shm_malloc
        // aligns for any type).
        unsafe {
            hdr.as_ptr().write(Header {
                nslots,
                total: AtomicI64::new(0),
                online: AtomicI64::new(0),
                disabled: AtomicI64::new(0),
                active: AtomicI32::new(i32::from(active)),
                next_wake: AtomicI64::new(i64::MIN),
                last_reload: AtomicI64::new(i64::MIN),
                admin,
            })
        };
        let size = std::mem::size_of::<Slot<S, N>>() * nslots as usize;
        // SAFETY: as above.
        let slots = unsafe { shm_alloc(size) }?.cast::<Slot<S, N>>();
        for i in 0..nslots as usize {
            // SAFETY: `i` < nslots, inside the block just allocated, not shared
            // yet (mod_init, before the fork).
            unsafe {
                let slot = slots.as_ptr().add(i);
                if !InlineLock::init(&raw mut (*slot).lock) {
                    return None;
                }
                (&raw mut (*slot).by_k0).write(null_mut());
                (&raw mut (*slot).by_k1).write(null_mut());
            }
        }
        Some(RegTable {
            hdr,
            slots,
            _s: PhantomData,
        })
    }

    fn hdr(&self) -> &Header {
        // SAFETY: initialised in create, never freed.
        unsafe { self.hdr.as_ref() }
    }

    fn slot(&self, h: u32) -> *mut Slot<S, N> {
        let i = (h & (self.hdr().nslots - 1)) as usize;
        // SAFETY: `i` < nslots.
        unsafe { self.slots.as_ptr().add(i) }
    }

    fn slot_index(&self, h: u32) -> usize {
        (h & (self.hdr().nslots - 1)) as usize
    }

    /// Locks the slot of hash `h`.
    fn lock(&self, h: u32) -> ShmLockGuard<'_> {
        // SAFETY: the slot is initialised and never freed; the lock is only taken through
        // this shared reference.
        unsafe { (*self.slot(h)).lock.lock() }
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

    /// Starts a timer walk: the walk ([`RegTable::for_each`]) recomputes the
    /// earliest wake time from every record it visits. A change made
    /// meanwhile lowers it again under its record's lock; one made before
    /// this reset is seen by the walk, which takes that lock later.
    pub fn begin_walk(&self) {
        self.hdr().next_wake.store(i64::MAX, Ordering::SeqCst);
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

    fn account(&self, before: Option<&S>, after: Option<&S>) {
        let h = self.hdr();
        let d = |b: bool| i64::from(b);
        let (t0, o0, x0) = before.map_or((0, 0, 0), |s| (1, d(s.online()), d(s.disabled())));
        let (t1, o1, x1) = after.map_or((0, 0, 0), |s| (1, d(s.online()), d(s.disabled())));
        if t1 != t0 {
            h.total.fetch_add(t1 - t0, Ordering::Relaxed);
        }
        if o1 != o0 {
            h.online.fetch_add(o1 - o0, Ordering::Relaxed);
        }
        if x1 != x0 {
            h.disabled.fetch_add(x1 - x0, Ordering::Relaxed);
        }
        if let Some(s) = after {
            h.next_wake.fetch_min(s.wake_at(), Ordering::SeqCst);
        }
    }

    /// # Safety
    /// `r` is a linked record and the caller holds its key-0 slot lock (strings are
    /// immutable, so the key-1 lock also suffices for reading them).
    unsafe fn view<'a>(r: *mut Rec<S, N>) -> RecRef<'a, S, N> {
        // SAFETY: guaranteed by the caller; the strings follow the header in the block.
        unsafe {
            let mut p = (r as *mut u8).add(std::mem::size_of::<Rec<S, N>>()) as *const u8;
            // On the stack: the timer walks every record.
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

    /// # Safety
    /// The caller holds the key-0 lock of the slot `h0` maps to.
    unsafe fn find_k0(&self, h0: u32, key: &[u8]) -> *mut Rec<S, N> {
        // SAFETY: the slot lock is held, so the chain is stable.
        unsafe {
            let mut r = (*self.slot(h0)).by_k0;
            while !r.is_null() {
                if (*r).h0 == h0 && Self::key0(r) == key {
                    return r;
                }
                r = (*r).next_k0;
            }
        }
        null_mut()
    }

    /// Adds a record; fails if its key 0 exists.
    pub fn insert(&self, strings: [&[u8]; N], state: S) -> Result<(), InsertError> {
        let total: usize = strings.iter().map(|s| s.len()).sum();
        let mut lens = [0u16; N];
        for (l, s) in lens.iter_mut().zip(&strings) {
            // Rows are validated to record::MAX_FIELD bytes per column; a longer string
            // cannot be stored (reported like any failed insertion).
            *l = u16::try_from(s.len()).map_err(|_| InsertError::NoMemory)?;
        }
        let h0 = hash(strings[0]);
        let h1 = if N > 1 { hash(strings[1]) } else { 0 };
        // SAFETY: block for the header and the strings; initialised before linking.
        let block = unsafe { shm_alloc(std::mem::size_of::<Rec<S, N>>() + total) }
            .ok_or(InsertError::NoMemory)?;
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
                lens,
                state,
            });
        }
        let _guards = self.lock_pair(h0, h1);
        // SAFETY: both slot locks are held.
        unsafe {
            if !self.find_k0(h0, strings[0]).is_null() {
                shm_free(block);
                return Err(InsertError::Exists);
            }
            let s0 = self.slot(h0);
            (*r).next_k0 = (*s0).by_k0;
            (*s0).by_k0 = r;
            let s1 = self.slot(h1);
            (*r).next_k1 = (*s1).by_k1;
            (*s1).by_k1 = r;
        }
        self.account(None, Some(&state));
        Ok(())
    }

    /// Locks the slots of `h0` and `h1` in index order (one lock if they share a slot).
    fn lock_pair(&self, h0: u32, h1: u32) -> (ShmLockGuard<'_>, Option<ShmLockGuard<'_>>) {
        let (i0, i1) = (self.slot_index(h0), self.slot_index(h1));
        if i0 == i1 {
            (self.lock(h0), None)
        } else if i0 < i1 {
            let a = self.lock(h0);
            (a, Some(self.lock(h1)))
        } else {
            let b = self.lock(h1);
            (b, Some(self.lock(h0)))
        }
    }

    /// Removes the record with key 0 `key`; returns its last state.
    pub fn remove(&self, key: &[u8]) -> Option<S> {
        let h0 = hash(key);
        // Find h1 under the key-0 lock, then take both locks in order and re-check.
        let h1 = {
            let _g = self.lock(h0);
            // SAFETY: lock held.
            let r = unsafe { self.find_k0(h0, key) };
            if r.is_null() {
                return None;
            }
            // SAFETY: linked record under lock.
            unsafe { (*r).h1 }
        };
        let _guards = self.lock_pair(h0, h1);
        // SAFETY: both locks held; unlink from both chains, then free.
        unsafe {
            let r = self.find_k0(h0, key);
            if r.is_null() || (*r).h1 != h1 {
                return None;
            }
            let mut p: *mut *mut Rec<S, N> = &mut (*self.slot(h0)).by_k0;
            while !(*p).is_null() {
                if *p == r {
                    *p = (*r).next_k0;
                    break;
                }
                p = &mut (**p).next_k0;
            }
            let mut p: *mut *mut Rec<S, N> = &mut (*self.slot(h1)).by_k1;
            while !(*p).is_null() {
                if *p == r {
                    *p = (*r).next_k1;
                    break;
                }
                p = &mut (**p).next_k1;
            }
            let state = (*r).state;
            shm_free(NonNull::new_unchecked(r.cast::<u8>()));
            self.account(Some(&state), None);
            Some(state)
        }
    }

    /// Runs `f` on the record with key 0 `key`, under its lock. Keep `f` short: no tm, no
    /// script, no other table call.
    pub fn with_key<R>(&self, key: &[u8], f: impl FnOnce(&mut RecRef<'_, S, N>) -> R) -> Option<R> {
        let h0 = hash(key);
        let _g = self.lock(h0);
        // SAFETY: lock held for the whole closure.
        unsafe {
            let r = self.find_k0(h0, key);
            if r.is_null() {
                return None;
            }
            let before = (*r).state;
            let mut v = Self::view(r);
            let out = f(&mut v);
            let after = (*r).state;
            self.account(Some(&before), Some(&after));
            Some(out)
        }
    }

    /// Key 0 of the first record whose key 1 is `user` (and string `domain_idx` is
    /// `domain`, when given).
    pub fn key_by_user(&self, user: &[u8], domain: Option<(usize, &[u8])>) -> Option<Vec<u8>> {
        let h1 = hash(user);
        let _g = self.lock(h1);
        // SAFETY: key-1 slot lock held: the chain is stable and strings are immutable.
        unsafe {
            let mut r = (*self.slot(h1)).by_k1;
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

    /// Runs `f` on every record, one slot lock at a time.
    pub fn for_each(&self, mut f: impl FnMut(&mut RecRef<'_, S, N>)) {
        for i in 0..self.hdr().nslots {
            let _g = self.lock(i);
            // SAFETY: slot `i` locked for the walk.
            unsafe {
                let mut r = (*self.slot(i)).by_k0;
                while !r.is_null() {
                    let before = (*r).state;
                    let mut v = Self::view(r);
                    f(&mut v);
                    let after = (*r).state;
                    self.account(Some(&before), Some(&after));
                    r = (*r).next_k0;
                }
            }
        }
    }

    /// Key 0 of every record.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.for_each(|r| out.push(r.s(0).to_vec()));
        out
    }
}

impl<S, const N: usize> Clone for RegTable<S, N> {
    fn clone(&self) -> Self {
        RegTable {
            hdr: self.hdr,
            slots: self.slots,
            _s: PhantomData,
        }
    }
}
