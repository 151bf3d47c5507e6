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
    "Client",
    "Rpc",
    "Operations",
    "Events",
    "EventListeners",
    "Handlers",
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

    let rpc = rpc_surface(c);
    let (event_defs, event_publishers, _) = event_surface(c);

    quote! {
        #(#attrs)*
        #[doc = #docs]
        #vis mod #ident {
            #(#items)*

            #rpc

            #event_defs

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
                /// Event publishers: `service.events.<group>.<leaf>.publish(&event)`.
                pub events: Events,
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
                        __runtime: bindings.runtime(),
                        __sealed: bindings.seal(),
                    })
                }
            }
        }
    }
}

/// `Service::events` (publishers) and `Client::events` (live listeners),
/// by group. Returns (definitions, publisher init, listener init).
fn event_surface(c: &Contract) -> (TokenStream, TokenStream, TokenStream) {
    let mut groups: std::collections::BTreeMap<
        String,
        Vec<(syn::Ident, TokenStream, TokenStream)>,
    > = Default::default();
    for event in &c.events {
        let Some(spec) = c.manifest.events.get(&event.name) else {
            continue;
        };
        let name = &event.name;
        let subject = &spec.subject;
        let params = spec.params.clone().unwrap_or_default();
        let ty = &event.ident;
        let spec = quote! {
            ::trellis::__private::EventSpec {
                name: #name,
                subject: #subject,
                params: &[#(#params),*],
            }
        };
        let (group, leaf) = accessor(name);
        groups
            .entry(group.to_string())
            .or_default()
            .push((leaf, quote!(#ty), spec));
    }
    let mut defs = TokenStream::new();
    let (mut pub_fields, mut pub_inits) = (TokenStream::new(), TokenStream::new());
    let (mut lis_fields, mut lis_inits) = (TokenStream::new(), TokenStream::new());
    for (group, leaves) in &groups {
        let field = format_ident!("{}", group);
        let pascal = crate::names::pascal_case(group);
        let pub_ty = format_ident!("{}Events", pascal);
        let lis_ty = format_ident!("{}EventListeners", pascal);
        let (mut pf, mut pi, mut lf, mut li) = (
            TokenStream::new(),
            TokenStream::new(),
            TokenStream::new(),
            TokenStream::new(),
        );
        for (leaf, ty, spec) in leaves {
            let doc = format!("Publishes [`{ty}`] events.");
            pf.extend(quote! { #[doc = #doc] pub #leaf: ::trellis::EventPublisher<#ty>, });
            pi.extend(quote! { #leaf: ::trellis::EventPublisher::new(runtime.clone(), #spec), });
            let doc = format!("Listens to [`{ty}`] events: `.filter(\"/param\", value).listen()`.");
            lf.extend(quote! { #[doc = #doc] pub #leaf: ::trellis::EventListener<#ty>, });
            li.extend(quote! { #leaf: ::trellis::EventListener::new(runtime.clone(), #spec), });
        }
        let pub_doc = format!("Publishers of the `{pascal}.*` events.");
        let lis_doc = format!("Live listeners of the `{pascal}.*` events.");
        defs.extend(quote! {
            #[doc = #pub_doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #pub_ty { #pf }
            #[doc = #lis_doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #lis_ty { #lf }
        });
        pub_fields.extend(quote! { #[doc = #pub_doc] pub #field: #pub_ty, });
        pub_inits.extend(quote! { #field: #pub_ty { #pi }, });
        lis_fields.extend(quote! { #[doc = #lis_doc] pub #field: #lis_ty, });
        lis_inits.extend(quote! { #field: #lis_ty { #li }, });
    }
    let defs = quote! {
        /// This contract's event publishers, by group (owner side).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Events { #pub_fields }
        /// This contract's live event listeners, by group (caller side).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct EventListeners { #lis_fields }
        #defs
    };
    (
        defs,
        quote! { Events { #pub_inits } },
        quote! { EventListeners { #lis_inits } },
    )
}

/// `Files.List` -> (`files`, `list`).
fn accessor(name: &str) -> (syn::Ident, syn::Ident) {
    let (group, leaf) = name.split_once('.').unwrap_or((name, name));
    (
        format_ident!("{}", crate::names::snake_case(group)),
        format_ident!("{}", crate::names::snake_case(leaf)),
    )
}

/// The handler trait, `Service::serve`, and the typed `Client`.
fn rpc_surface(c: &Contract) -> TokenStream {
    let (_, _, event_listeners) = event_surface(c);
    let mut trait_fns = TokenStream::new();
    let mut registrations = TokenStream::new();
    let mut groups: std::collections::BTreeMap<String, Vec<TokenStream>> = Default::default();
    for rpc in &c.rpcs {
        let Some(method) = c.manifest.rpc.get(&rpc.name) else {
            continue;
        };
        let name = &rpc.name;
        let subject = &method.subject;
        let f = &rpc.ident;
        let input = &rpc.input;
        let output = &rpc.output;
        let docs = &rpc.docs;
        let (group, leaf) = accessor(name);
        let receive = method.transfer.is_some();
        // Only handlers that see the caller need its principal on the wire.
        let call = if receive {
            format_ident!("call_identified")
        } else {
            format_ident!("call")
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
                    quote!(, grants: ::trellis::Grants),
                    quote! {
                        ///
                        /// `grants` issues receive grants bound to this caller.
                    },
                    quote!(add_with_caller),
                    quote!(caller: ::trellis::Caller, input: #input),
                    quote!(let runtime = self.__runtime.clone();),
                    quote!(let grants = ::trellis::Grants::new(runtime.clone(), &caller);),
                    quote!(, grants),
                )
            } else {
                (
                    TokenStream::new(),
                    TokenStream::new(),
                    quote!(add),
                    quote!(input: #input),
                    TokenStream::new(),
                    TokenStream::new(),
                    TokenStream::new(),
                )
            };
        trait_fns.extend(quote! {
            #(#docs)*
            #grants_doc
            fn #f(&self, input: #input #grants_param) -> impl ::core::future::Future<
                Output = #returns,
            > + ::core::marker::Send;
        });
        registrations.extend(quote! {{
            let handlers = handlers.clone();
            #capture
            endpoints.#register(#name, #subject, move |#params| {
                let handlers = handlers.clone();
                #grants_let
                async move {
                    let value = handlers.#f(input #grants_arg).await;
                    #outcome
                }
            });
        }});
        match &rpc.error {
            Some(error) => {
                groups.entry(group.to_string()).or_default().push(quote! {
                    #(#docs)*
                    ///
                    /// The outer `Result` is the call (transport, timeouts, malformed
                    /// requests); the inner one is the RPC's declared outcome.
                    pub async fn #leaf(
                        &self,
                        input: &#input,
                    ) -> ::core::result::Result<::core::result::Result<#output, #error>, ::trellis::CallError> {
                        self.inner.#call(#name, #subject, input).await
                    }
                });
            }
            None => {
                groups.entry(group.to_string()).or_default().push(quote! {
                    #(#docs)*
                    pub async fn #leaf(
                        &self,
                        input: &#input,
                    ) -> ::core::result::Result<#output, ::trellis::CallError> {
                        match self.inner.#call::<#input, #output, ()>(#name, #subject, input).await? {
                            ::core::result::Result::Ok(output) => ::core::result::Result::Ok(output),
                            ::core::result::Result::Err(()) => ::core::result::Result::Err(
                                ::trellis::CallError::MalformedReply {
                                    rpc: #name.into(),
                                    message: "an error reply from an RPC that declares no error".into(),
                                },
                            ),
                        }
                    }
                });
            }
        }
    }
    // Operations.
    let mut op_groups: std::collections::BTreeMap<String, Vec<(syn::Ident, TokenStream, String)>> =
        Default::default();
    for op in &c.operations {
        let Some(spec) = c.manifest.operations.get(&op.name) else {
            continue;
        };
        let name = &op.name;
        let subject = &spec.subject;
        let f = &op.ident;
        let input = &op.input;
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
        trait_fns.extend(quote! {
            #(#docs)*
            ///
            /// `op` reports progress, signals cancellation and (for send
            /// transfers) names the verified object.
            fn #f(
                &self,
                op: ::trellis::OperationContext<#progress>,
                input: #input,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#output, ::trellis::OperationFailure>,
            > + ::core::marker::Send;
        });
        registrations.extend(quote! {{
            let handlers = handlers.clone();
            endpoints.add_operation(
                #name,
                #subject,
                #store,
                move |op: ::trellis::OperationContext<#progress>, input: #input| {
                    let handlers = handlers.clone();
                    async move { handlers.#f(op, input).await }
                },
            );
        }});
        let (group, leaf) = accessor(name);
        let client_ty = if spec.transfer.is_some() {
            quote!(::trellis::__private::SendOperationClient<#input, #progress, #output>)
        } else {
            quote!(::trellis::__private::OperationClient<#input, #progress, #output>)
        };
        let doc = match spec.transfer {
            Some(_) => {
                format!("`{name}`: `.input(input).transfer(body).start()`, or `.attach(id)`.")
            }
            None => format!("`{name}`: `.input(input).start()`, or `.attach(id)`."),
        };
        op_groups
            .entry(group.to_string())
            .or_default()
            .push((leaf, quote!(#client_ty), doc));
    }
    let mut op_defs = TokenStream::new();
    let mut op_fields = TokenStream::new();
    let mut op_inits = TokenStream::new();
    for (group, leaves) in &op_groups {
        let field = format_ident!("{}", group);
        let ty = format_ident!("{}Operations", crate::names::pascal_case(group));
        let doc = format!("The `{}.*` operations.", crate::names::pascal_case(group));
        let mut fields = TokenStream::new();
        let mut inits = TokenStream::new();
        for (leaf, client_ty, leaf_doc) in leaves {
            let op = c
                .operations
                .iter()
                .find(|o| accessor(&o.name) == (field.clone(), leaf.clone()));
            let Some(op) = op else { continue };
            let Some(spec) = c.manifest.operations.get(&op.name) else {
                continue;
            };
            let (name, subject) = (&op.name, &spec.subject);
            fields.extend(quote! {
                #[doc = #leaf_doc]
                pub #leaf: #client_ty,
            });
            inits.extend(
                quote! { #leaf: <#client_ty>::new(runtime.rpc_client(), #name, #subject), },
            );
        }
        op_defs.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #ty {
                #fields
            }
        });
        op_fields.extend(quote! {
            #[doc = #doc]
            pub #field: #ty,
        });
        op_inits.extend(quote! { #field: #ty { #inits }, });
    }
    let has_receive = c.manifest.rpc.values().any(|m| m.transfer.is_some());
    let downloads = if !c.stores.is_empty() && (has_receive || !c.operations.is_empty()) {
        quote!(endpoints.serve_downloads();)
    } else {
        TokenStream::new()
    };

    let mut group_defs = TokenStream::new();
    let mut group_fields = TokenStream::new();
    let mut group_inits = TokenStream::new();
    for (group, methods) in &groups {
        let field = format_ident!("{}", group);
        let ty = format_ident!("{}Rpc", crate::names::pascal_case(group));
        let doc = format!("The `{}.*` RPCs.", crate::names::pascal_case(group));
        group_defs.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            pub struct #ty {
                inner: ::trellis::__private::RpcClient,
            }
            impl #ty {
                #(#methods)*
            }
        });
        group_fields.extend(quote! {
            #[doc = #doc]
            pub #field: #ty,
        });
        group_inits.extend(quote! { #field: #ty { inner: runtime.rpc_client() }, });
    }
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
                    let mut endpoints = ::trellis::__private::Endpoints::with_manifest(MANIFEST_JSON);
                    #registrations
                    #downloads
                    self.__runtime.serve(endpoints, options).await
                }
            }
        }
    };
    quote! {
        #serve

        /// This contract's RPCs, by group.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Rpc {
            #group_fields
        }

        #group_defs

        /// This contract's operations, by group.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Operations {
            #op_fields
        }

        #op_defs

        /// A typed caller of this contract.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Client {
            /// RPCs: `client.rpc.<group>.<leaf>(&input)`.
            pub rpc: Rpc,
            /// Operations: `client.operation.<group>.<leaf>.input(input)`.
            pub operation: Operations,
            /// Live events: `client.events.<group>.<leaf>.listen()`.
            pub events: EventListeners,
            runtime: ::trellis::__private::ServiceRuntime,
        }

        impl Client {
            /// Connects a caller to this contract in a deployment.
            pub async fn connect(
                options: ::trellis::ConnectOptions,
            ) -> ::core::result::Result<Self, ::trellis::ConnectError> {
                let runtime = ::trellis::__private::connect_client(options, ID).await?;
                ::core::result::Result::Ok(Client {
                    rpc: Rpc { #group_inits },
                    operation: Operations { #op_inits },
                    events: #event_listeners,
                    runtime,
                })
            }

            /// Starts downloading the object `grant` names (a grant this
            /// contract's service issued to this caller).
            pub fn download(&self, grant: &::trellis::ReceiveGrant) -> ::trellis::Download {
                ::trellis::Download::new(self.runtime.clone(), grant)
            }
        }
    }
}
