//! Emits `contracts/<id>.json` from the contract module in `src/contract.rs`.

fn main() {
    trellis_codegen::Builder::new()
        .source("src/contract.rs")
        .emit_or_warn();
}
