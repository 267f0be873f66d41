//! The package of the tannoy tour, `examples/tour.rs`: run it with
//! `cargo run --release --example tour` from the repository root. The
//! library is empty; the package exists so that the tour builds without the
//! engine's dev-dependencies.
