//! Code generation for `#[trellis::contract]`.
//!
//! The module keeps its schema types; resource markers become typed handle
//! aliases; a sealed `Service` struct gathers the handles; and the manifest
//! is embedded as consts. Generated code only names `::trellis::...` paths.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::syntax::{Contract, ContractArgs, ResourceDecl, parse_contract};

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
    let docs = crate::syntax::docs_of_module(c);

    let kv_group = format_ident!("KvResources");
    let store_group = format_ident!("StoreResources");
    let (kv_defs, kv_build) = resource_group(&c.kv, true, &kv_group, "KV bucket");
    let (store_defs, store_build) = resource_group(&c.stores, false, &store_group, "object store");

    let rpc = rpc_surface(c);
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

/// `Service::events`: publishers by group. Returns (definitions,
/// publisher init).
fn event_surface(c: &Contract) -> (TokenStream, TokenStream) {
    let mut groups: std::collections::BTreeMap<
        String,
        Vec<(syn::Ident, TokenStream, TokenStream)>,
    > = Default::default();
    // Every event has a `surface` marker carrying its spec.
    for event in c
        .events
        .iter()
        .filter(|e| c.manifest.events.contains_key(&e.name))
    {
        let ty = &event.ident;
        let marker = crate::client::marker(&event.name);
        let spec = quote!(<surface::event::#marker as ::trellis::__private::EventSurface>::SPEC);
        let (group, leaf) = crate::client::accessor(&event.name);
        groups
            .entry(group.to_string())
            .or_default()
            .push((leaf, quote!(#ty), spec));
    }
    let mut defs = TokenStream::new();
    let (mut pub_fields, mut pub_inits) = (TokenStream::new(), TokenStream::new());
    for (group, leaves) in &groups {
        let field = format_ident!("{}", group);
        let pascal = trellis_manifest::names::pascal_case(group);
        let pub_ty = format_ident!("{}Events", pascal);
        let (mut pf, mut pi) = (TokenStream::new(), TokenStream::new());
        for (leaf, ty, spec) in leaves {
            let doc = format!("Publishes [`{ty}`] events.");
            pf.extend(quote! { #[doc = #doc] pub #leaf: ::trellis::EventPublisher<#ty>, });
            pi.extend(quote! { #leaf: ::trellis::EventPublisher::new(runtime.clone(), #spec), });
        }
        let pub_doc = format!("Publishers of the `{pascal}.*` events.");
        defs.extend(quote! {
            #[doc = #pub_doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #pub_ty { #pf }
        });
        pub_fields.extend(quote! { #[doc = #pub_doc] pub #field: #pub_ty, });
        pub_inits.extend(quote! { #field: #pub_ty { #pi }, });
    }
    let defs = quote! {
        /// This contract's event publishers, by group (owner side).
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Events { #pub_fields }
        #defs
    };
    (defs, quote! { Events { #pub_inits } })
}

/// The Rust input type of a surface: the declared one, or `trellis::Empty`.
fn input_type(input: &Option<syn::Type>) -> TokenStream {
    match input {
        Some(ty) => quote!(#ty),
        None => quote!(::trellis::Empty),
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

/// The caller-side model of a contract module's own surfaces.
fn client_model(c: &Contract) -> crate::client::ClientModel {
    use crate::client::{ClientModel, EventModel, OperationModel, RpcModel};
    let mut m = ClientModel::default();
    for rpc in &c.rpcs {
        let Some(method) = c.manifest.rpc.get(&rpc.name) else {
            continue;
        };
        let (input, output, docs) = (input_type(&rpc.input), &rpc.output, &rpc.docs);
        m.rpcs.push(RpcModel {
            name: rpc.name.clone(),
            subject: method.subject.clone(),
            no_input: rpc.input.is_none(),
            input,
            output: quote!(#output),
            error: rpc.error.as_ref().map(|e| quote!(#e)),
            receive: method.transfer.is_some(),
            docs: quote!(#(#docs)*),
        });
    }
    for op in &c.operations {
        let Some(spec) = c.manifest.operations.get(&op.name) else {
            continue;
        };
        let (input, output) = (input_type(&op.input), &op.output);
        m.operations.push(OperationModel {
            name: op.name.clone(),
            subject: spec.subject.clone(),
            input,
            output: quote!(#output),
            progress: match &op.progress {
                Some(p) => quote!(#p),
                None => quote!(()),
            },
            send: spec.transfer.is_some(),
        });
    }
    for event in &c.events {
        let Some(spec) = c.manifest.events.get(&event.name) else {
            continue;
        };
        let ty = &event.ident;
        m.events.push(EventModel {
            name: event.name.clone(),
            subject: spec.subject.clone(),
            params: spec.params.clone().unwrap_or_default(),
            ty: quote!(#ty),
        });
    }
    m
}

/// The handler trait, `Service::serve`, the `surface` markers and the
/// typed `Client`.
fn rpc_surface(c: &Contract) -> TokenStream {
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
    let surface = crate::client::surface(&model);
    let client = crate::client::client(&model);
    quote! {
        #serve
        #surface
        #client
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

/// The `#[uses]` facades (`service.uses.<alias>`) and the typed consumer
/// groups (`service.consumers.<group>`). Returns (definitions, uses init,
/// consumers init); inits use `bindings`.
fn peers(c: &Contract) -> (TokenStream, TokenStream, TokenStream) {
    use crate::client::{ClientModel, EventModel, Naming, OperationModel, RpcModel, marker};
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
            crate::client::accessors(&model, &naming);
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
