mod pattern;
pub use pattern::{Pattern, glob_match};
