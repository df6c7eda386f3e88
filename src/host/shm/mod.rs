//! Memory and state shared by every Kamailio process: the `pkg`/`shm`
//! allocators, locks over `gen_lock_t`, counters, and the registration table
//! built on them.

pub mod counters;
pub mod keyset;
pub mod lock;
pub mod mem;
pub mod reg_table;
