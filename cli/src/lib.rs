//! Nothing but a switch: this workspace member depends on ringdb with its
//! `cli` feature, so that any cargo command run in the repository (a
//! default member, so `cargo run --release -- bench`, `cargo test`,
//! `cargo clippy`) builds the `ringdb` command (`src/bin/ringdb`), while a
//! crate that depends on ringdb compiles the library alone, without clap,
//! hdrhistogram, indicatif, serde_json, tracing-subscriber or tempfile.
