//! `Service::uses` and `Service::consumers`: a facade per `#[uses]` with
//! only the selected surfaces of the used contract, and a typed event enum
//! and `EventConsumer` per `#[event_consumer]` group.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::client::{ClientModel, EventModel, Naming, OperationModel, RpcModel, accessors, marker};
use crate::syntax::Contract;

/// The `#[uses]` facades (`service.uses.<alias>`) and the typed consumer
/// groups (`service.consumers.<group>`). Returns (definitions, uses init,
/// consumers init); inits use `bindings`.
pub(super) fn peers(c: &Contract) -> (TokenStream, TokenStream, TokenStream) {
    let mut defs = TokenStream::new();
    let (mut use_fields, mut use_inits) = (TokenStream::new(), TokenStream::new());
    let all_uses = c
        .manifest
        .uses
        .as_ref()
        .map(|u| u.all())
        .unwrap_or_default();
    for decl in &c.uses {
        let Some(module) = &decl.module else {
            continue;
        };
        let Some(r) = all_uses.get(decl.alias.as_str()) else {
            continue;
        };
        let ident = &decl.ident;
        let contract = &decl.contract;
        let names = |l: Option<&Vec<String>>| l.cloned().unwrap_or_default();
        let empty = || TokenStream::new();
        let model = ClientModel {
            rpcs: names(r.rpc.as_ref().and_then(|c| c.call.as_ref()))
                .into_iter()
                .map(|name| RpcModel {
                    docs: {
                        let doc = format!("Calls `{name}` of `{contract}`.");
                        quote!(#[doc = #doc])
                    },
                    name,
                    subject: String::new(),
                    input: empty(),
                    no_input: false,
                    output: empty(),
                    error: None,
                    receive: false,
                })
                .collect(),
            operations: names(r.operations.as_ref().and_then(|c| c.call.as_ref()))
                .into_iter()
                .map(|name| OperationModel {
                    name,
                    subject: String::new(),
                    input: empty(),
                    output: empty(),
                    progress: empty(),
                    send: false,
                })
                .collect(),
            events: names(r.events.as_ref().and_then(|e| e.subscribe.as_ref()))
                .into_iter()
                .map(|name| EventModel {
                    name,
                    subject: String::new(),
                    params: Vec::new(),
                    ty: empty(),
                })
                .collect(),
        };
        let what = format!(" of `{contract}`");
        let span = syn::spanned::Spanned::span(module);
        let naming = Naming {
            prefix: &ident.to_string(),
            surface: quote::quote_spanned!(span=> #module::surface),
            what: &what,
        };
        let (accessor_defs, [rpc, ops, events], [rpc_ty, ops_ty, events_ty]) =
            accessors(&model, &naming);
        let docs = &decl.docs;
        let doc = format!(
            "`{contract}` as this contract uses it (alias `{}`): only the selected surfaces.",
            decl.alias
        );
        let mismatch = format!(
            "#[uses] alias `{}` declares contract `{contract}`, but its `module` is a different contract",
            decl.alias
        );
        let field = format_ident!("{}", decl.alias);
        let check = quote::quote_spanned! {span=>
            const _: () = ::core::assert!(::trellis::__private::same_str(#module::ID, #contract), #mismatch);
        };
        defs.extend(quote! {
            #(#docs)*
            #[doc = #doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #ident {
                /// Selected RPCs.
                pub rpc: #rpc_ty,
                /// Selected operations.
                pub operation: #ops_ty,
                /// Selected events, live.
                pub events: #events_ty,
                runtime: ::trellis::__private::ServiceRuntime,
            }
            impl #ident {
                /// Starts downloading the object `grant` names (a grant the
                /// used contract's service issued to this service).
                pub fn download(&self, grant: &::trellis::ReceiveGrant) -> ::trellis::Download {
                    ::trellis::Download::new(self.runtime.clone(), grant)
                }
            }
            #check
            #accessor_defs
        });
        let adoc = format!("`{contract}` (alias `{}`).", decl.alias);
        use_fields.extend(quote! { #[doc = #adoc] pub #field: #ident, });
        use_inits.extend(quote! {
            #field: {
                let runtime = bindings.runtime().for_contract(#module::ID);
                #ident { rpc: #rpc, operation: #ops, events: #events, runtime }
            },
        });
    }

    let (mut con_fields, mut con_inits) = (TokenStream::new(), TokenStream::new());
    for (group, ident) in &c.consumers {
        let Some(g) = c.manifest.event_consumers.get(group) else {
            continue;
        };
        let mut variants = TokenStream::new();
        let mut arms = TokenStream::new();
        for name in g.own.iter().flatten() {
            let Some(event) = c.events.iter().find(|e| &e.name == name) else {
                continue;
            };
            let (variant, ty) = (marker(name), &event.ident);
            let doc = format!("`{name}` of this contract.");
            variants.extend(quote! { #[doc = #doc] #variant(#ty), });
            arms.extend(quote! {
                (ID, #name) => ::trellis::__private::decode_json(payload).map(Self::#variant),
            });
        }
        for (alias, events) in g.uses.iter().flatten() {
            let Some(decl) = c.uses.iter().find(|u| &u.alias == alias) else {
                continue;
            };
            let Some(module) = &decl.module else {
                let msg = format!(
                    "event consumer `{group}` reads events of `{alias}`, so this #[uses] needs the used \
                     contract's generated module to type them: add `module = path::to::{}` (its \
                     #[trellis::contract] module, or a stub generated from its JSON with trellis_codegen)",
                    decl.contract.split('@').next().unwrap_or_default()
                );
                let error = syn::Error::new(decl.ident.span(), msg).to_compile_error();
                return (
                    quote! {
                        #error
                        /// Unavailable: see the error above.
                        #[derive(Debug, Clone)]
                        pub struct Uses {}
                        /// Unavailable: see the error above.
                        #[derive(Debug, Clone)]
                        pub struct Consumers {}
                    },
                    quote!(Uses {}),
                    quote!(Consumers {}),
                );
            };
            let contract = &decl.contract;
            for name in events {
                let m = marker(name);
                let variant = format_ident!("{}{}", decl.ident, m);
                let doc = format!("`{name}` of `{contract}` (alias `{alias}`).");
                variants.extend(quote! {
                    #[doc = #doc]
                    #variant(<#module::surface::event::#m as ::trellis::__private::EventSurface>::Event),
                });
                arms.extend(quote! {
                    (#contract, #name) => ::trellis::__private::decode_json(payload).map(Self::#variant),
                });
            }
        }
        let doc = format!("The events consumer group `{group}` receives.");
        let group_lit = group.as_str();
        defs.extend(quote! {
            #[doc = #doc]
            #[non_exhaustive]
            pub enum #ident { #variants }
            impl ::trellis::__private::GroupEvent for #ident {
                fn decode(contract: &str, event: &str, payload: &[u8]) -> ::core::result::Result<Self, ::std::string::String> {
                    match (contract, event) {
                        #arms
                        (contract, event) => ::core::result::Result::Err(::std::format!(
                            "`{event}` of `{contract}` is not an event of this group"
                        )),
                    }
                }
            }
        });
        let field = format_ident!("{}", group);
        let fdoc = format!("Consumer group `{group}`: `.run(handler)` or `.messages()`.");
        con_fields.extend(quote! { #[doc = #fdoc] pub #field: ::trellis::EventConsumer<#ident>, });
        con_inits.extend(quote! { #field: bindings.consumer::<#ident>(#group_lit)?, });
    }
    let defs = quote! {
        /// The contracts this contract uses, by alias: each facade has only
        /// the surfaces this contract selected.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Uses { #use_fields }
        /// This contract's durable event consumer groups.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Consumers { #con_fields }
        #defs
    };
    (
        defs,
        quote!(Uses { #use_inits }),
        quote!(Consumers { #con_inits }),
    )
}
