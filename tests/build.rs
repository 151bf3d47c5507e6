//! Generates the client stubs of the hand-written manifests in `fixtures/`
//! that the tests compile and call, as a peer team's `build.rs` would:
//! `directory@v1.json` (`tests/stubs_any_manifest.rs`) with format strings
//! as `String`s, and `stamps@v1.json` (`tests/stubs_typed_formats.rs`) with
//! every typed format on (`uuid`, `chrono` and `url` are dev-dependencies).

fn main() {
    trellis_codegen::ClientStub::new("fixtures/directory@v1.json").generate_or_panic();
    trellis_codegen::ClientStub::new("fixtures/stamps@v1.json")
        .uuid()
        .chrono()
        .url()
        .net()
        .generate_or_panic();
}
