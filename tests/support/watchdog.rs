//! A watchdog for tests that could hang: the code under test runs on its own
//! thread, and the test fails (instead of hanging the whole run) if it does
//! not finish in time.
//!
//! Include it with
//!
//! ```ignore
//! #[path = "support/watchdog.rs"]
//! mod watchdog;
//! ```

#![allow(
    dead_code,
    reason = "shared by several test files, each using a subset"
)]

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on its own thread and returns its result, panicking with
/// `hang` (instead of hanging) if it does not finish within `limit`. A
/// panic in `f` is re-raised here.
///
/// The limit only turns a hang into a failure; it never measures speed, so
/// make it generous.
///
/// # Panics
///
/// With `hang` after `limit`, or with `f`'s own panic.
pub(crate) fn guarded<T: Send + 'static>(
    limit: Duration,
    hang: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = done.send(f());
    });
    match result.recv_timeout(limit) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{hang}"),
    }
}
