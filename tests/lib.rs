//! End-to-end tests for sockbox live in `tests/*.rs`; see `common/mod.rs` for shared setup.
