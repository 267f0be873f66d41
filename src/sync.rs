//! The synchronisation primitives the crate uses, in one place.
//!
//! Every lock is `parking_lot`'s: small, fast when uncontended, and free of
//! poisoning, so a panic in one thread (say, in a payload's `Clone`) never
//! makes the broker unusable for the others. Keeping the imports here means
//! a model checker such as loom could be swapped in without touching the
//! modules that use them.

pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
