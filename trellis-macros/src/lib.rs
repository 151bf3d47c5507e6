//! The `#[trellis::contract]` attribute macro. Use it through the `trellis`
//! facade crate; all parsing, validation and code generation lives in
//! `trellis-codegen`, shared with `build.rs`.

use proc_macro::TokenStream;

/// Declares a trellis contract on an inline module. See the `trellis` crate.
#[proc_macro_attribute]
pub fn contract(args: TokenStream, item: TokenStream) -> TokenStream {
    trellis_codegen::expand::expand(args.into(), item.into()).into()
}

/// Marks an inline module of serde types that several contracts share.
/// Contracts name the file declaring it with
/// `#[trellis::contract(..., schemas = "src/shared.rs")]` and its types
/// through their paths (`use crate::shared::Money;`).
#[proc_macro_attribute]
pub fn schema(args: TokenStream, item: TokenStream) -> TokenStream {
    trellis_codegen::expand::expand_schema(args.into(), item.into()).into()
}
