//! Code generation for `#[trellis::contract]`.
//!
//! The module keeps its schema types; resource markers become typed handle
//! aliases; a sealed `Service` struct gathers the handles; and the manifest
//! is embedded as consts. Generated code only names `::trellis::...` paths.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::parse::{Contract, ContractArgs, ResourceDecl, parse_contract};

/// Names the expansion defines inside the module; authors cannot reuse them.
pub const RESERVED: &[&str] = &[
    "Service",
    "KvResources",
    "StoreResources",
    "ID",
    "LINEAGE",
    "DIGEST",
    "MANIFEST_JSON",
];

/// Expands `#[trellis::contract(args)] mod ... { ... }`.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let module: syn::ItemMod = match syn::parse2(item.clone()) {
        Ok(m) => m,
        Err(e) => {
            let mut err = syn::Error::new(
                e.span(),
                "#[trellis::contract] goes on an inline module: `pub mod name { ... }`",
            );
            err.combine(e);
            return err.to_compile_error();
        }
    };
    let parsed = ContractArgs::parse(args).and_then(|args| parse_contract(args, &module));
    match parsed {
        Ok(contract) => generate(&contract),
        Err(e) => {
            let err = e.to_compile_error();
            let fallback = fallback_module(module);
            quote! { #err #fallback }
        }
    }
}

/// The module as written, minus DSL attributes and body-less declarations,
/// so author code that uses its schema types does not drown the real error
/// in follow-up "unresolved" errors.
fn fallback_module(mut module: syn::ItemMod) -> TokenStream {
    use crate::parse::is_dsl_attr;
    if let Some((_, items)) = &mut module.content {
        items.retain(|item| !matches!(item, syn::Item::Verbatim(_)));
        for item in items.iter_mut() {
            let attrs = match item {
                syn::Item::Struct(s) => &mut s.attrs,
                syn::Item::Enum(e) => &mut e.attrs,
                syn::Item::Const(c) => &mut c.attrs,
                syn::Item::Fn(f) => &mut f.attrs,
                syn::Item::Type(t) => &mut t.attrs,
                _ => continue,
            };
            attrs.retain(|a| !is_dsl_attr(a));
        }
    }
    quote! { #module }
}

fn handle_type(decl: &ResourceDecl, kv: bool) -> TokenStream {
    if kv {
        let schema = &decl.schema;
        quote! { ::trellis::KvHandle<#schema> }
    } else {
        quote! { ::trellis::StoreHandle }
    }
}

fn resource_group(
    decls: &[ResourceDecl],
    kv: bool,
    group: &syn::Ident,
    what: &str,
) -> (TokenStream, TokenStream) {
    let mut aliases = TokenStream::new();
    let mut fields = TokenStream::new();
    let mut inits = TokenStream::new();
    for decl in decls {
        let ident = &decl.ident;
        let vis = &decl.vis;
        let docs = &decl.docs;
        let handle = handle_type(decl, kv);
        let alias = &decl.alias;
        let field = format_ident!("{}", decl.alias);
        aliases.extend(quote! {
            #(#docs)*
            #vis type #ident = #handle;
        });
        let (ty, init) = match (kv, decl.required) {
            (true, true) => (quote!(#ident), quote!(bindings.kv(#alias)?)),
            (true, false) => (
                quote!(::core::option::Option<#ident>),
                quote!(bindings.kv_optional(#alias)?),
            ),
            (false, true) => (quote!(#ident), quote!(bindings.store(#alias)?)),
            (false, false) => (
                quote!(::core::option::Option<#ident>),
                quote!(bindings.store_optional(#alias)?),
            ),
        };
        let doc = format!("The `{alias}` {what} (see [`{ident}`]).");
        fields.extend(quote! {
            #[doc = #doc]
            pub #field: #ty,
        });
        inits.extend(quote! { #field: #init, });
    }
    let doc = format!("The {what}s this contract declares, by alias.");
    let def = quote! {
        #[doc = #doc]
        #[derive(Debug)]
        #[non_exhaustive]
        pub struct #group {
            #fields
        }
    };
    let build = quote! { #group { #inits } };
    (quote! { #aliases #def }, build)
}

fn generate(c: &Contract) -> TokenStream {
    let vis = &c.vis;
    let ident = &c.ident;
    let attrs = &c.module_attrs;
    let items = &c.items;
    let (json, digest) = c.manifest.canonical_and_digest();
    let id = &c.manifest.id;
    let docs = crate::parse::docs_of_module(c);

    let kv_group = format_ident!("KvResources");
    let store_group = format_ident!("StoreResources");
    let (kv_defs, kv_build) = resource_group(&c.kv, true, &kv_group, "KV bucket");
    let (store_defs, store_build) = resource_group(&c.stores, false, &store_group, "object store");

    quote! {
        #(#attrs)*
        #[doc = #docs]
        #vis mod #ident {
            #(#items)*

            #kv_defs
            #store_defs

            /// The contract id (`<name>@v<N>`).
            pub const ID: &str = #id;
            /// The contract lineage: physical resources are scoped to it, so
            /// compatible rollouts (new digest, same id) keep their data.
            pub const LINEAGE: &str = #id;
            /// The contract digest (base64url SHA-256 of the digest projection).
            pub const DIGEST: &str = #digest;
            /// The canonical `trellis.contract.v1` manifest, byte-identical to
            /// the file `build.rs` writes to `contracts/<id>.json`.
            pub const MANIFEST_JSON: &str = #json;

            /// This contract's service: typed handles to its provisioned
            /// resources. Obtained only by connecting through the runtime;
            /// it cannot be constructed by hand.
            #[derive(Debug)]
            #[non_exhaustive]
            pub struct Service {
                /// KV buckets by alias.
                pub kv: #kv_group,
                /// Object stores by alias.
                pub store: #store_group,
                __sealed: ::trellis::__private::Sealed,
            }

            impl Service {
                /// Connects this contract's service to a deployment: fetches
                /// the bindings its authority persisted, waits (bounded) while
                /// reconciliation is pending, and opens the resources.
                pub async fn connect(
                    options: ::trellis::ConnectOptions,
                ) -> ::core::result::Result<Self, ::trellis::ConnectError> {
                    ::trellis::__private::connect::<Self>(options).await
                }
            }

            impl ::trellis::__private::Contract for Service {
                const ID: &'static str = ID;
                const DIGEST: &'static str = DIGEST;
                const MANIFEST_JSON: &'static str = MANIFEST_JSON;

                fn from_bindings(
                    bindings: &::trellis::__private::Bindings,
                ) -> ::core::result::Result<Self, ::trellis::BindError> {
                    ::core::result::Result::Ok(Service {
                        kv: #kv_build,
                        store: #store_build,
                        __sealed: bindings.seal(),
                    })
                }
            }
        }
    }
}
