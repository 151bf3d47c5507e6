//! Code generation for `#[trellis::contract]` and `#[trellis::schema]`.
//!
//! The module keeps its schema types; resource markers become typed handle
//! aliases; a sealed `Service` struct gathers the handles; and the manifest
//! is embedded as consts. Generated code only names `::trellis::...` paths.
//!
//! `generate` puts the module together; each child emits one surface:
//! `resources` (KV and store handles), `rpc` (the `Handlers` trait and
//! `Service::serve`), `events` (publishers), `peers` (`uses` facades and
//! consumer groups), `client` (the caller side, shared with stubs) and
//! `model` (the caller-side model of the module's own surfaces).

pub(crate) mod client;
mod events;
mod model;
mod peers;
mod resources;
mod rpc;
mod state;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::syntax::{Contract, ContractArgs, parse_contract};
use events::event_surface;
use peers::peers;
use resources::resource_group;
use rpc::rpc_surface;

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

/// Expands `#[trellis::schema]` on a module of shared serde types: checks
/// that every concrete type has a schema (errors at the offending token),
/// removes `#[trellis(schema = ...)]` attributes and otherwise leaves the
/// module as written. Contracts name its file with `schemas = "..."`.
pub fn expand_schema(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut module: syn::ItemMod = match syn::parse2(item) {
        Ok(m) => m,
        Err(e) => {
            let mut err = syn::Error::new(
                e.span(),
                "#[trellis::schema] goes on an inline module of serde types: `pub mod shared { ... }`",
            );
            err.combine(e);
            return err.to_compile_error();
        }
    };
    let mut errors = TokenStream::new();
    if !args.is_empty() {
        errors.extend(
            syn::Error::new_spanned(&args, "#[trellis::schema] takes no arguments")
                .to_compile_error(),
        );
    }
    let Some((_, items)) = &mut module.content else {
        let e = syn::Error::new(
            module.ident.span(),
            "a shared schema module must be inline: write `mod name { ... }`, not `mod name;`",
        );
        return e.to_compile_error();
    };
    let (types, use_errors) = crate::schema::module_types(items);
    let (_, derive_errors) = types.derive_all();
    for e in use_errors
        .into_iter()
        .chain(derive_errors)
        .chain(crate::schema::misplaced_hatches(items))
    {
        errors.extend(e.to_compile_error());
    }
    crate::schema::strip_hatches(items);
    quote! { #errors #module }
}

/// The module as written, minus DSL attributes and body-less declarations,
/// so author code that uses its schema types does not drown the real error
/// in follow-up "unresolved" errors.
fn fallback_module(mut module: syn::ItemMod) -> TokenStream {
    use crate::syntax::is_dsl_attr;
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
        crate::schema::strip_hatches(items);
    }
    quote! { #module }
}

fn generate(c: &Contract) -> TokenStream {
    let vis = &c.vis;
    let ident = &c.ident;
    let attrs = &c.module_attrs;
    let items = &c.items;
    let (json, digest) = c.manifest.canonical_and_digest();
    let id = &c.manifest.id;
    let docs = crate::syntax::docs_of_module(c);

    let kv_group = format_ident!("KvResources");
    let store_group = format_ident!("StoreResources");
    let (kv_defs, kv_build) = resource_group(&c.kv, true, &kv_group, "KV bucket");
    let (store_defs, store_build) = resource_group(&c.stores, false, &store_group, "object store");

    let rpc = rpc_surface(c);
    let state_defs = state::state_stores(&c.states);
    let (event_defs, event_publishers) = event_surface(c);
    let (peer_defs, uses_init, consumers_init) = peers(c);
    // Cargo rebuilds the contract when a shared schema file it read changes.
    let tracked = c.schema_files.iter().map(|path| {
        let path = path.display().to_string();
        quote!(
            const _: &[u8] = ::core::include_bytes!(#path);
        )
    });

    quote! {
        #(#attrs)*
        #[doc = #docs]
        #vis mod #ident {
            #(#items)*
            #(#tracked)*

            #rpc

            #event_defs

            #peer_defs

            #kv_defs
            #store_defs
            #state_defs

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
                /// Event publishers: `service.events.<group>.<leaf>.publish(&event)`.
                pub events: Events,
                /// Used contracts: `service.uses.<alias>.rpc.<group>.<leaf>(&input)`.
                pub uses: Uses,
                /// Durable event consumer groups: `service.consumers.<group>.run(handler)`.
                pub consumers: Consumers,
                __runtime: ::trellis::__private::ServiceRuntime,
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

                /// The NATS connection this service runs on: its statistics,
                /// or subjects the contract does not describe but the
                /// service's principal may use.
                pub fn nats(&self) -> &::trellis::async_nats::Client {
                    self.__runtime.nats()
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
                        events: {
                            let runtime = bindings.runtime();
                            #event_publishers
                        },
                        uses: #uses_init,
                        consumers: #consumers_init,
                        __runtime: bindings.runtime(),
                        __sealed: bindings.seal(),
                    })
                }
            }
        }
    }
}
