//! Test builds only: points inside a receive where a test runs code of its
//! own, so that a race between a receive and a publish happens at one
//! chosen instant instead of by chance.
//!
//! A receive that looks at its feeds and then acts on what it saw is only
//! right if it also copes with a publish landing between the two. Threads
//! hit such a window once in many thousand runs; a hook that publishes from
//! inside the window hits it every time, so a test of the window can fail.
//! Release builds compile every call to [`reach`] away.

use std::cell::RefCell;

/// A point a receive passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// A blocking receive found nothing and is about to arm its signal
    /// before it waits.
    BeforeArm,
    /// A reader of several feeds is about to look at cursor `i`'s feed to
    /// refill its buffer.
    Refill(usize),
}

/// What a test runs at each point; it returns `true` once it is done.
type Hook = Box<dyn FnMut(Point) -> bool>;

thread_local! {
    /// This thread's hook: a receive runs the hook of the thread receiving.
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Runs `hook` at every point this thread's receives pass, until it returns
/// `true`.
pub(crate) fn install(hook: impl FnMut(Point) -> bool + 'static) {
    HOOK.with(|slot| *slot.borrow_mut() = Some(Box::new(hook)));
}

/// Called by a receive at `point`: runs the thread's hook, if any.
pub(crate) fn reach(point: Point) {
    // Out of its slot while it runs, so a hook that publishes or receives
    // does not find itself borrowed.
    let Some(mut hook) = HOOK.with(|slot| slot.borrow_mut().take()) else {
        return;
    };
    if !hook(point) {
        HOOK.with(|slot| *slot.borrow_mut() = Some(hook));
    }
}
