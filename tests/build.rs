//! Generates the client stubs of the hand-written manifests in `fixtures/`
//! that the tests compile and call, as a peer team's `build.rs` would:
//! `directory@v1.json` (`tests/stubs_any_manifest.rs`) with format strings
//! as `String`s, and `stamps@v1.json` (`tests/stubs_typed_formats.rs`) with
//! every typed format on (`uuid`, `chrono` and `url` are dev-dependencies).

fn main() {
    // The catalog contract of `tests/generic_surfaces.rs`: its manifest as
    // the owner's build writes it, then a peer's stub generated from that
    // JSON with the uuid and chrono options.
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set"),
    );
    let emitted = trellis_codegen::Builder::new()
        .source(dir.join("tests/generic_surfaces.rs"))
        .manifest_dir(&out)
        .emit()
        .unwrap_or_else(|e| panic!("{e}"));
    for contract in &emitted {
        trellis_codegen::ClientStub::new(&contract.path)
            .uuid()
            .chrono()
            .generate_or_panic();
    }
    trellis_codegen::ClientStub::new("fixtures/directory@v1.json").generate_or_panic();
    trellis_codegen::ClientStub::new("fixtures/stamps@v1.json")
        .uuid()
        .chrono()
        .url()
        .net()
        .generate_or_panic();
}
