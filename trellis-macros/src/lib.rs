//! The `#[trellis::contract]` attribute macro. Use it through the `trellis`
//! facade crate; all parsing, validation and code generation lives in
//! `trellis-codegen`, shared with `build.rs`.

use proc_macro::TokenStream;

/// Declares a trellis contract on an inline module. See the `trellis` crate.
#[proc_macro_attribute]
pub fn contract(args: TokenStream, item: TokenStream) -> TokenStream {
    trellis_codegen::expand::expand(args.into(), item.into()).into()
}
