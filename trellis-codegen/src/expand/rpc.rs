//! The server side of RPCs and operations: the `Handlers` trait, one method
//! per declaration, and `Service::serve`, which registers each with its
//! spec (capability gates, transfers); then the caller side from `client`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::client::{client, surface};
use super::model::client_model;
use crate::syntax::Contract;

/// The handler trait, `Service::serve`, the `surface` markers and the
/// typed `Client`.
pub(super) fn rpc_surface(c: &Contract) -> TokenStream {
    let mut trait_fns = TokenStream::new();
    let mut registrations = TokenStream::new();
    for rpc in &c.rpcs {
        let Some(method) = c.manifest.rpc.get(&rpc.name) else {
            continue;
        };
        let name = &rpc.name;
        let subject = &method.subject;
        let f = &rpc.ident;
        let output = &rpc.output;
        let docs = &rpc.docs;
        let receive = method.transfer.is_some();
        // A declaration without input gets a handler without the parameter.
        let (input_param, input_arg, closure_input) = surface_input(&rpc.input);
        let call = capabilities(method.capabilities.as_ref().and_then(|c| c.call.as_ref()));
        let spec = quote! {
            ::trellis::__private::RpcSpec { name: #name, subject: #subject, call: #call }
        };
        // The handler's return type, and how the registration turns its
        // value into the `Result` the endpoint encodes.
        let (returns, outcome) = match &rpc.error {
            Some(error) => (
                quote!(::core::result::Result<#output, #error>),
                quote!(value),
            ),
            None => (
                quote!(#output),
                quote!(::core::result::Result::<#output, ()>::Ok(value)),
            ),
        };
        // Receive RPCs also get `Grants` bound to the caller.
        let (grants_param, grants_doc, register, params, capture, grants_let, grants_arg) =
            if receive {
                (
                    quote!(grants: ::trellis::Grants),
                    quote! {
                        ///
                        /// `grants` issues receive grants bound to this caller.
                    },
                    quote!(add_with_caller),
                    quote!(caller: ::trellis::Caller, #closure_input),
                    quote!(let runtime = self.__runtime.clone();),
                    quote!(let grants = ::trellis::Grants::new(runtime.clone(), &caller);),
                    quote!(grants),
                )
            } else {
                (
                    TokenStream::new(),
                    TokenStream::new(),
                    quote!(add),
                    quote!(#closure_input),
                    TokenStream::new(),
                    TokenStream::new(),
                    TokenStream::new(),
                )
            };
        trait_fns.extend(quote! {
            #(#docs)*
            #grants_doc
            fn #f(&self, #input_param #grants_param) -> impl ::core::future::Future<
                Output = #returns,
            > + ::core::marker::Send;
        });
        registrations.extend(quote! {{
            let handlers = handlers.clone();
            #capture
            endpoints.#register(#spec, move |#params| {
                let handlers = handlers.clone();
                #grants_let
                async move {
                    let value = handlers.#f(#input_arg #grants_arg).await;
                    #outcome
                }
            });
        }});
    }
    for op in &c.operations {
        let Some(spec) = c.manifest.operations.get(&op.name) else {
            continue;
        };
        let name = &op.name;
        let f = &op.ident;
        let (input_param, input_arg, closure_input) = surface_input(&op.input);
        let output = &op.output;
        let docs = &op.docs;
        let progress = match &op.progress {
            Some(p) => quote!(#p),
            None => quote!(()),
        };
        let store = match spec
            .transfer
            .as_ref()
            .and_then(|t| c.stores.iter().find(|s| s.alias == t.store))
        {
            Some(decl) => {
                let field = format_ident!("{}", decl.alias);
                if decl.required {
                    quote!(::core::option::Option::Some(self.store.#field.clone()))
                } else {
                    quote!(self.store.#field.clone())
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let op_spec = operation_spec(name, spec);
        trait_fns.extend(quote! {
            #(#docs)*
            ///
            /// `op` reports progress, signals cancellation and (for send
            /// transfers) names the verified object.
            fn #f(
                &self,
                op: ::trellis::OperationContext<#progress>,
                #input_param
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#output, ::trellis::OperationFailure>,
            > + ::core::marker::Send;
        });
        registrations.extend(quote! {{
            let handlers = handlers.clone();
            endpoints.add_operation(
                #op_spec,
                #store,
                move |op: ::trellis::OperationContext<#progress>, #closure_input| {
                    let handlers = handlers.clone();
                    async move { handlers.#f(op, #input_arg).await }
                },
            );
        }});
    }
    let has_receive = c.manifest.rpc.values().any(|m| m.transfer.is_some());
    let downloads = if !c.stores.is_empty() && (has_receive || !c.operations.is_empty()) {
        quote!(endpoints.serve_downloads();)
    } else {
        TokenStream::new()
    };
    let serve = if c.rpcs.is_empty() && c.operations.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            /// The handlers of this contract's RPCs and operations: implement
            /// it and pass it to [`Service::serve`].
            pub trait Handlers: ::core::marker::Send + ::core::marker::Sync + 'static {
                #trait_fns
            }

            impl Service {
                /// Serves this contract's RPCs and operations with `handlers`
                /// until the returned server is shut down. Malformed requests
                /// get a typed `bad-request` reply and the service keeps serving.
                pub async fn serve<H: Handlers>(
                    &self,
                    handlers: H,
                    options: ::trellis::ServeOptions,
                ) -> ::core::result::Result<::trellis::RpcServer, ::trellis::ServeError> {
                    let handlers = ::std::sync::Arc::new(handlers);
                    let mut endpoints = ::trellis::__private::Endpoints::new();
                    #registrations
                    #downloads
                    self.__runtime.serve(endpoints, options).await
                }
            }
        }
    };
    let model = client_model(c);
    let surface = surface(&model);
    let client = client(&model);
    quote! {
        #serve
        #surface
        #client
    }
}

/// How a handler takes its input: (trait parameter, call argument, the
/// registration closure's parameter). Without a declared input the handler
/// has no parameter and the closure discards the decoded `trellis::Empty`.
fn surface_input(input: &Option<syn::Type>) -> (TokenStream, TokenStream, TokenStream) {
    match input {
        Some(ty) => (quote!(input: #ty,), quote!(input,), quote!(input: #ty)),
        None => (
            TokenStream::new(),
            TokenStream::new(),
            quote!(_: ::trellis::Empty),
        ),
    }
}

/// A capability gate as generated code passes it: `Some(&["a::b", ..])`
/// or `None` (not gated).
fn capabilities(gate: Option<&Vec<String>>) -> TokenStream {
    match gate {
        Some(caps) => quote!(::core::option::Option::Some(&[#(#caps),*])),
        None => quote!(::core::option::Option::None),
    }
}

/// An optional value as generated code spells it.
fn optional<T: quote::ToTokens>(value: Option<T>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// The `OperationSpec` constant of operation `name`, from its manifest
/// entry: the runtime serves it without parsing the manifest.
fn operation_spec(name: &str, op: &trellis_manifest::manifest::Operation) -> TokenStream {
    let subject = &op.subject;
    let cancel = op.cancel.unwrap_or(false);
    let caps = op.capabilities.as_ref();
    let call = capabilities(caps.and_then(|c| c.call.as_ref()));
    let observe = capabilities(caps.and_then(|c| c.observe.as_ref()));
    let cancel_caps = capabilities(caps.and_then(|c| c.cancel.as_ref()));
    let transfer = optional(op.transfer.as_ref().map(|t| {
        let (store, key) = (&t.store, &t.key);
        let content_type = optional(t.content_type.as_ref());
        let metadata = optional(t.metadata.as_ref());
        let max_bytes = optional(t.max_bytes);
        let expires_in_ms = optional(t.expires_in_ms);
        quote! {
            ::trellis::__private::SendTransferSpec {
                store: #store,
                key: #key,
                content_type: #content_type,
                metadata: #metadata,
                max_bytes: #max_bytes,
                expires_in_ms: #expires_in_ms,
            }
        }
    }));
    quote! {
        ::trellis::__private::OperationSpec {
            name: #name,
            subject: #subject,
            cancel: #cancel,
            call: #call,
            observe: #observe,
            cancel_caps: #cancel_caps,
            transfer: #transfer,
        }
    }
}
