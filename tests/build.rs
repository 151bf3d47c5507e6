//! Generates the client stub of the hand-written directory manifest
//! (`fixtures/directory@v1.json`) that `tests/stubs_any_manifest.rs`
//! compiles and calls, as a peer team's `build.rs` would.

fn main() {
    trellis_codegen::ClientStub::new("fixtures/directory@v1.json").generate_or_panic();
}
