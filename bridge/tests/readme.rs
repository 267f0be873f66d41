//! The README's "Outgrowing one process" example is the crate docs'
//! first example, which runs as a doctest: the two must not drift apart.

use std::path::Path;

/// The visible lines of the first code block in the crate docs of
/// `src/lib.rs` (hidden `# ` lines left out).
fn crate_docs_example() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("src/lib.rs");
    let docs: Vec<&str> = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = docs
        .iter()
        .position(|l| l.starts_with("```"))
        .expect("a code block in the crate docs");
    docs[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.starts_with("# ") && **l != "#")
        .map(|l| (*l).to_owned())
        .collect()
}

/// The first `rust` code block of the README's "Outgrowing one process"
/// section.
fn readme_example() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("the workspace README");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Outgrowing one process"))
        .expect("a section \"Outgrowing one process\" in README.md");
    section
        .lines()
        .skip_while(|l| *l != "```rust")
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(str::to_owned)
        .collect()
}

/// The README quotes the doctested example line for line.
#[test]
fn the_readme_quotes_the_crate_docs_example() {
    let docs = crate_docs_example();
    assert!(
        docs.iter().any(|l| l.contains("Bridge::builder()")),
        "found the example"
    );
    assert_eq!(readme_example(), docs);
}
