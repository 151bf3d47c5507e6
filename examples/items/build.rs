//! Emits `contracts/<id>.json` from the contract module in `src/lib.rs`.

fn main() {
    trellis_codegen::Builder::new()
        .source("src/lib.rs")
        .emit_or_warn();
}
