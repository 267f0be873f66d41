//! Receiving everything a subscriber holds right now, for tests that
//! compare it with what they expect.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/drain.rs"]
//! mod drain;
//! ```

use tannoy::{Message, Subscriber, TryRecvError};

/// Everything queued for `sub` right now, oldest first, each as `view`
/// renders it.
///
/// # Panics
///
/// On any receive error but [`TryRecvError::Empty`]: the tests that drain
/// expect a live broker.
pub(crate) fn drain_as<T>(sub: &Subscriber, mut view: impl FnMut(&Message) -> T) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        match sub.try_recv() {
            Ok(msg) => out.push(view(&msg)),
            Err(TryRecvError::Empty) => return out,
            Err(err) => panic!("unexpected receive error: {err:?}"),
        }
    }
}
