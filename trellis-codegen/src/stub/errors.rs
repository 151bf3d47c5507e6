//! The error type of each RPC in a stub: none, the one declared error's
//! type, `::trellis::BuiltinError`, or a generated untagged enum of them.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::StubError;
use trellis_manifest::manifest::{BUILTIN_ERRORS, Manifest, RpcMethod};

/// How an RPC's errors reach its callers.
pub(super) struct RpcError {
    /// The error type (`None`: the RPC declares no error).
    pub(super) error: Option<TokenStream>,
    /// A generated enum of its error types, if it needs one.
    pub(super) def: TokenStream,
    /// Doc lines for the RPC's method.
    pub(super) notes: Vec<String>,
}

/// `base`, else `base2`, `base3`, ...: the first name not in `used`.
fn fresh(base: &str, used: &mut BTreeSet<String>) -> syn::Ident {
    let mut n = 1u32;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{n}")
        };
        if used.insert(candidate.clone()) {
            return format_ident!("{}", candidate);
        }
        n += 1;
    }
}

/// The error type of RPC `name`: `None` without errors, the declared
/// error's type for one, `::trellis::BuiltinError` for built-in errors only,
/// else a generated untagged enum `<Rpc>Error` (built-in first, untyped
/// payloads last) named apart from `taken`.
pub(super) fn rpc_error(
    m: &Manifest,
    name: &str,
    rpc: &RpcMethod,
    path: &str,
    ty: &dyn Fn(&str, &str) -> Result<TokenStream, StubError>,
    taken: &mut BTreeSet<String>,
) -> Result<RpcError, StubError> {
    let mut notes = Vec::new();
    let mut seen = BTreeSet::new();
    // (error type, Rust type, whether typed)
    let mut declared: Vec<(&str, TokenStream, bool)> = Vec::new();
    let mut builtin = Vec::new();
    for reference in rpc.errors.as_deref().unwrap_or_default() {
        let error = reference.ty.as_str();
        if !seen.insert(error) {
            continue;
        }
        match m.errors.get(error) {
            Some(decl) => match &decl.schema {
                Some(s) => {
                    declared.push((error, ty(&s.schema, &format!("error `{error}`"))?, true))
                }
                None => {
                    notes.push(format!(
                        " Error `{error}` declares no schema: its payload is a `serde_json::Value`."
                    ));
                    declared.push((error, quote!(::serde_json::Value), false));
                }
            },
            None if BUILTIN_ERRORS.contains(&error) => builtin.push(error),
            None => {
                return Err(StubError::Unsupported {
                    path: path.to_owned(),
                    reason: format!(
                        "RPC `{name}`: error `{error}` is neither declared nor built in"
                    ),
                });
            }
        }
    }
    if !builtin.is_empty() {
        notes.push(format!(
            " Built-in errors (`::trellis::BuiltinError`): {}.",
            builtin
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let simple = |error| RpcError {
        error,
        def: TokenStream::new(),
        notes: notes.clone(),
    };
    match (declared.as_slice(), builtin.is_empty()) {
        ([], true) => return Ok(simple(None)),
        ([(_, one, _)], true) => return Ok(simple(Some(one.clone()))),
        ([], false) => return Ok(simple(Some(quote!(::trellis::BuiltinError)))),
        _ => {}
    }
    let ident = fresh(
        &format!("{}Error", crate::expand::client::marker(name)),
        taken,
    );
    let mut variants = Vec::new();
    let mut used = BTreeSet::new();
    if !builtin.is_empty() {
        used.insert("Builtin".to_owned());
        variants.push(quote! {
            /// A built-in error of the format.
            Builtin(::trellis::BuiltinError)
        });
    }
    declared.sort_by_key(|(_, _, typed)| !typed);
    for (error, rust, _) in &declared {
        let base = trellis_manifest::names::pascal_case(error);
        let base = if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            format!("E{base}")
        } else {
            base
        };
        let variant = fresh(&base, &mut used);
        let doc = format!(" The declared error `{error}`.");
        variants.push(quote! {
            #[doc = #doc]
            #variant(#rust)
        });
    }
    let doc = format!(
        " The errors of RPC `{name}`, told apart by shape (built-in errors by their `type` tag)."
    );
    Ok(RpcError {
        error: Some(quote!(#ident)),
        def: quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
            #[serde(untagged)]
            pub enum #ident { #(#variants,)* }
        },
        notes,
    })
}
