//! Checks of what a value's `Debug` (or `Display`) output shows.
//!
//! Include it with `#[path = "support/shows.rs"] mod shows;`.

/// Asserts that `shown` contains every one of `fields`, naming the first
/// one missing.
#[track_caller]
pub(crate) fn assert_shows(shown: &str, fields: &[&str]) {
    for field in fields {
        assert!(shown.contains(field), "{field} missing from {shown}");
    }
}
