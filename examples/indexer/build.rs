//! Generates the documents client from the JSON the documents service
//! emits (checked against its `.digest`), and emits this service's own
//! `contracts/indexer@v1.json`.

fn main() {
    trellis_codegen::ClientStub::new("../documents/contracts/documents@v1.json")
        .generate_or_panic();
    trellis_codegen::Builder::new()
        .source("src/contract.rs")
        .emit_or_warn();
}
