//! The caller side of a contract module, shared by the proc macro and the
//! stub generator (which builds it from manifest JSON): the `surface`
//! marker types, the typed `Client` with its RPC, operation and event
//! groups, and `uses` facades built from another module's surfaces.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// One RPC, with types written as seen from the contract module.
pub(crate) struct RpcModel {
    pub name: String,
    pub subject: String,
    pub input: TokenStream,
    /// No declared input: the accessor takes none and sends
    /// `trellis::Empty`.
    pub no_input: bool,
    pub output: TokenStream,
    pub error: Option<TokenStream>,
    /// A receive-transfer RPC (its handler sees the caller).
    pub receive: bool,
    pub docs: TokenStream,
}

/// One operation.
pub(crate) struct OperationModel {
    pub name: String,
    pub subject: String,
    pub input: TokenStream,
    pub output: TokenStream,
    pub progress: TokenStream,
    /// A send-transfer operation.
    pub send: bool,
}

/// One event.
pub(crate) struct EventModel {
    pub name: String,
    pub subject: String,
    pub params: Vec<String>,
    pub ty: TokenStream,
}

/// The caller-visible surfaces of a contract.
#[derive(Default)]
pub(crate) struct ClientModel {
    pub rpcs: Vec<RpcModel>,
    pub operations: Vec<OperationModel>,
    pub events: Vec<EventModel>,
}

/// `Files.List` -> (`files`, `list`).
pub(crate) fn accessor(name: &str) -> (syn::Ident, syn::Ident) {
    let (group, leaf) = name.split_once('.').unwrap_or((name, name));
    (
        format_ident!("{}", trellis_manifest::names::snake_case(group)),
        format_ident!("{}", trellis_manifest::names::snake_case(leaf)),
    )
}

/// `Files.List` -> `FilesList`.
pub(crate) fn marker(name: &str) -> syn::Ident {
    format_ident!(
        "{}",
        trellis_manifest::names::pascal_case(&name.replace('.', "_"))
    )
}

fn event_spec(e: &EventModel) -> TokenStream {
    let (name, subject, params) = (&e.name, &e.subject, &e.params);
    quote! {
        ::trellis::__private::EventSpec {
            name: #name,
            subject: #subject,
            params: &[#(#params),*],
        }
    }
}

/// The `surface` module and its trait impls.
pub(crate) fn surface(m: &ClientModel) -> TokenStream {
    let mut rpc_markers = TokenStream::new();
    let mut op_markers = TokenStream::new();
    let mut event_markers = TokenStream::new();
    let mut impls = TokenStream::new();
    for rpc in &m.rpcs {
        let ident = marker(&rpc.name);
        let (name, subject, input, output) = (&rpc.name, &rpc.subject, &rpc.input, &rpc.output);
        let call = if rpc.receive {
            format_ident!("call_identified")
        } else {
            format_ident!("call")
        };
        let doc = format!("The `{name}` RPC.");
        rpc_markers.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Copy)]
            pub struct #ident;
        });
        let (reply, body) = match &rpc.error {
            Some(error) => (
                quote!(::core::result::Result<::core::result::Result<#output, #error>, ::trellis::CallError>),
                quote!(client.#call(#name, #subject, input).await),
            ),
            None => (
                quote!(::core::result::Result<#output, ::trellis::CallError>),
                quote! {
                    match client.#call::<#input, #output, ()>(#name, #subject, input).await? {
                        ::core::result::Result::Ok(output) => ::core::result::Result::Ok(output),
                        ::core::result::Result::Err(()) => ::core::result::Result::Err(
                            ::trellis::CallError::MalformedReply {
                                rpc: #name.into(),
                                message: "an error reply from an RPC that declares no error".into(),
                            },
                        ),
                    }
                },
            ),
        };
        impls.extend(quote! {
            impl ::trellis::__private::RpcSurface for surface::rpc::#ident {
                type Input = #input;
                type Reply = #reply;
                const NAME: &'static str = #name;
                const SUBJECT: &'static str = #subject;
                fn call(
                    client: &::trellis::__private::RpcClient,
                    input: &#input,
                ) -> impl ::core::future::Future<Output = #reply> + ::core::marker::Send {
                    async move { #body }
                }
            }
        });
    }
    for op in &m.operations {
        let ident = marker(&op.name);
        let (name, subject, input, output, progress) =
            (&op.name, &op.subject, &op.input, &op.output, &op.progress);
        let client = if op.send {
            quote!(::trellis::__private::SendOperationClient<#input, #progress, #output>)
        } else {
            quote!(::trellis::__private::OperationClient<#input, #progress, #output>)
        };
        let doc = format!("The `{name}` operation.");
        op_markers.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Copy)]
            pub struct #ident;
        });
        impls.extend(quote! {
            impl ::trellis::__private::OperationSurface for surface::operation::#ident {
                type Client = #client;
                const NAME: &'static str = #name;
                const SUBJECT: &'static str = #subject;
                fn client(rpc: ::trellis::__private::RpcClient) -> #client {
                    <#client>::new(rpc, #name, #subject)
                }
            }
        });
    }
    for e in &m.events {
        let ident = marker(&e.name);
        let ty = &e.ty;
        let spec = event_spec(e);
        let doc = format!("The `{}` event.", e.name);
        event_markers.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, Copy)]
            pub struct #ident;
        });
        impls.extend(quote! {
            impl ::trellis::__private::EventSurface for surface::event::#ident {
                type Event = #ty;
                const SPEC: ::trellis::__private::EventSpec = #spec;
            }
        });
    }
    quote! {
        /// Type-level markers of this contract's surfaces, used by the
        /// `uses` facades of contracts that call it.
        pub mod surface {
            /// RPCs.
            pub mod rpc { #rpc_markers }
            /// Operations.
            pub mod operation { #op_markers }
            /// Events.
            pub mod event { #event_markers }
        }
        #impls
    }
}

/// A group of generated accessors: `struct <Group><Suffix> { fields }`,
/// with nested groups for names of more than two segments.
#[derive(Default)]
struct Group {
    fields: TokenStream,
    inits: TokenStream,
    methods: TokenStream,
    /// Nested groups by snake-case segment.
    children: BTreeMap<String, Group>,
}

/// The accessor groups of one surface kind, by top-level segment.
struct Groups {
    by_group: BTreeMap<String, Group>,
}

impl Groups {
    fn new() -> Self {
        Groups {
            by_group: BTreeMap::new(),
        }
    }
    /// The group at `path` (a non-empty list of segments).
    fn at(&mut self, path: &[String]) -> &mut Group {
        let (first, rest) = match path.split_first() {
            Some((first, rest)) => (first.clone(), rest),
            None => (String::new(), path),
        };
        let mut node = self.by_group.entry(first).or_default();
        for segment in rest {
            node = node.children.entry(segment.clone()).or_default();
        }
        node
    }
    fn field(&mut self, path: &[String], def: TokenStream, init: TokenStream) {
        let g = self.at(path);
        g.fields.extend(def);
        g.inits.extend(init);
    }
    fn method(&mut self, path: &[String], m: TokenStream) {
        self.at(path).methods.extend(m);
    }
}

/// `Files.List` -> (`[files]`, `list`); `Auth.Capabilities.List` ->
/// (`[auth, capabilities]`, `list`); a one-segment `Ping` -> (`[ping]`,
/// `ping`), as [`accessor`] does.
fn accessor_path(name: &str) -> (Vec<String>, syn::Ident) {
    let segments: Vec<&str> = name.split('.').collect();
    match segments.split_last() {
        Some((leaf, path)) if path.len() >= 2 => (
            path.iter()
                .map(|s| trellis_manifest::names::snake_case(s))
                .collect(),
            format_ident!("{}", trellis_manifest::names::snake_case(leaf)),
        ),
        _ => {
            let (group, leaf) = accessor(name);
            (vec![group.to_string()], leaf)
        }
    }
}

/// Emits the struct of `group` at `path` and its nested groups; returns
/// its type and initializer.
fn group_defs(
    defs: &mut TokenStream,
    group: &Group,
    path: &[String],
    naming: &Naming<'_>,
    suffix: &str,
    what: &str,
    has_inner: bool,
) -> (syn::Ident, TokenStream, String) {
    let pfx = naming.prefix;
    let pascal: String = path
        .iter()
        .map(|s| trellis_manifest::names::pascal_case(s))
        .collect();
    let dotted = path
        .iter()
        .map(|s| trellis_manifest::names::pascal_case(s))
        .collect::<Vec<_>>()
        .join(".");
    let ty = format_ident!("{pfx}{pascal}{suffix}");
    let doc = format!("The `{dotted}.*` {what}{}.", naming.what);
    let mut child_fields = TokenStream::new();
    let mut child_inits = TokenStream::new();
    for (segment, child) in &group.children {
        let mut child_path = path.to_vec();
        child_path.push(segment.clone());
        let (child_ty, child_init, child_doc) =
            group_defs(defs, child, &child_path, naming, suffix, what, has_inner);
        let field = format_ident!("{}", segment);
        child_fields.extend(quote! {
            #[doc = #child_doc]
            pub #field: #child_ty,
        });
        child_inits.extend(quote! { #field: #child_init, });
    }
    let (fields, inits, methods) = (&group.fields, &group.inits, &group.methods);
    let init = if has_inner {
        defs.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            pub struct #ty {
                inner: ::trellis::__private::RpcClient,
                #child_fields
            }
            impl #ty { #methods }
        });
        if group.children.is_empty() {
            quote! { #ty { inner: runtime.rpc_client() } }
        } else {
            quote! { #ty { inner: runtime.rpc_client(), #child_inits } }
        }
    } else {
        defs.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #ty { #fields #child_fields }
        });
        quote! { #ty { #inits #child_inits } }
    };
    (ty, init, doc)
}

/// How a client surface names its types: `prefix` is `""` for the contract
/// module itself and `Docs` (the alias's type) for a facade; `path` leads to
/// the module's `surface` markers.
pub(crate) struct Naming<'a> {
    pub prefix: &'a str,
    pub surface: TokenStream,
    pub what: &'a str,
}

/// The RPC, operation and event accessor structs of a client surface.
/// Returns (definitions, rpc init, operations init, events init, rpc type,
/// operations type, events type); inits use `runtime`.
pub(crate) fn accessors(
    m: &ClientModel,
    naming: &Naming<'_>,
) -> (TokenStream, [TokenStream; 3], [syn::Ident; 3]) {
    let surface = &naming.surface;
    let pfx = naming.prefix;
    let mut rpc = Groups::new();
    for r in &m.rpcs {
        let (group, leaf) = accessor_path(&r.name);
        let ident = marker(&r.name);
        let s = quote!(#surface::rpc::#ident);
        let docs = &r.docs;
        let method = if r.no_input {
            quote! {
                #docs
                pub async fn #leaf(&self) -> <#s as ::trellis::__private::RpcSurface>::Reply {
                    <#s as ::trellis::__private::RpcSurface>::call(&self.inner, &::trellis::Empty {})
                        .await
                }
            }
        } else {
            quote! {
                #docs
                pub async fn #leaf(
                    &self,
                    input: &<#s as ::trellis::__private::RpcSurface>::Input,
                ) -> <#s as ::trellis::__private::RpcSurface>::Reply {
                    <#s as ::trellis::__private::RpcSurface>::call(&self.inner, input).await
                }
            }
        };
        rpc.method(&group, method);
    }
    let mut ops = Groups::new();
    for o in &m.operations {
        let (group, leaf) = accessor_path(&o.name);
        let ident = marker(&o.name);
        let s = quote!(#surface::operation::#ident);
        let doc = if o.send {
            format!(
                "`{}`: `.input(input).transfer(body).start()`, or `.attach(id)`.",
                o.name
            )
        } else {
            format!("`{}`: `.input(input).start()`, or `.attach(id)`.", o.name)
        };
        ops.field(
            &group,
            quote! {
                #[doc = #doc]
                pub #leaf: <#s as ::trellis::__private::OperationSurface>::Client,
            },
            quote! { #leaf: <#s as ::trellis::__private::OperationSurface>::client(runtime.rpc_client()), },
        );
    }
    let mut events = Groups::new();
    for e in &m.events {
        let (group, leaf) = accessor_path(&e.name);
        let ident = marker(&e.name);
        let s = quote!(#surface::event::#ident);
        let doc = format!(
            "Listens to `{}` events: `.filter(\"/param\", value).listen()`.",
            e.name
        );
        events.field(
            &group,
            quote! {
                #[doc = #doc]
                pub #leaf: ::trellis::EventListener<<#s as ::trellis::__private::EventSurface>::Event>,
            },
            quote! {
                #leaf: ::trellis::EventListener::new(
                    runtime.clone(),
                    <#s as ::trellis::__private::EventSurface>::SPEC,
                ),
            },
        );
    }

    let mut defs = TokenStream::new();
    let mut out_inits: Vec<TokenStream> = Vec::new();
    let mut out_types: Vec<syn::Ident> = Vec::new();
    for (groups, suffix, what, has_inner) in [
        (&rpc, "Rpc", "RPCs", true),
        (&ops, "Operations", "operations", false),
        (&events, "EventListeners", "live event listeners", false),
    ] {
        let top = format_ident!("{pfx}{suffix}");
        let mut top_fields = TokenStream::new();
        let mut top_inits = TokenStream::new();
        for (group, node) in &groups.by_group {
            let field = format_ident!("{}", group);
            let (ty, init, doc) = group_defs(
                &mut defs,
                node,
                std::slice::from_ref(group),
                naming,
                suffix,
                what,
                has_inner,
            );
            top_inits.extend(quote! { #field: #init, });
            top_fields.extend(quote! {
                #[doc = #doc]
                pub #field: #ty,
            });
        }
        let doc = format!("The {what}{}, by group.", naming.what);
        defs.extend(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone)]
            #[non_exhaustive]
            pub struct #top { #top_fields }
        });
        out_inits.push(quote! { #top { #top_inits } });
        out_types.push(top);
    }
    let [a, b, c]: [TokenStream; 3] = match out_inits.try_into() {
        Ok(v) => v,
        Err(_) => unreachable!("three accessor kinds"),
    };
    let [x, y, z]: [syn::Ident; 3] = match out_types.try_into() {
        Ok(v) => v,
        Err(_) => unreachable!("three accessor kinds"),
    };
    (defs, [a, b, c], [x, y, z])
}

/// The typed `Client` of a contract module (given its id const `ID`).
pub(crate) fn client(m: &ClientModel) -> TokenStream {
    let naming = Naming {
        prefix: "",
        surface: quote!(surface),
        what: "",
    };
    let (defs, [rpc, ops, events], [rpc_ty, ops_ty, events_ty]) = accessors(m, &naming);
    quote! {
        #defs

        /// A typed caller of this contract.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub struct Client {
            /// RPCs: `client.rpc.<group>.<leaf>(&input)`.
            pub rpc: #rpc_ty,
            /// Operations: `client.operation.<group>.<leaf>.input(input)`.
            pub operation: #ops_ty,
            /// Live events: `client.events.<group>.<leaf>.listen()`.
            pub events: #events_ty,
            runtime: ::trellis::__private::ServiceRuntime,
        }

        impl Client {
            /// Connects a caller to this contract in a deployment.
            pub async fn connect(
                options: ::trellis::ConnectOptions,
            ) -> ::core::result::Result<Self, ::trellis::ConnectError> {
                let runtime = ::trellis::__private::connect_client(options, ID).await?;
                ::core::result::Result::Ok(Client {
                    rpc: #rpc,
                    operation: #ops,
                    events: #events,
                    runtime,
                })
            }

            /// Starts downloading the object `grant` names (a grant this
            /// contract's service issued to this caller).
            pub fn download(&self, grant: &::trellis::ReceiveGrant) -> ::trellis::Download {
                ::trellis::Download::new(self.runtime.clone(), grant)
            }

            /// The NATS connection this caller runs on (its statistics count
            /// reconnects).
            pub fn nats(&self) -> &::trellis::async_nats::Client {
                self.runtime.nats()
            }
        }
    }
}
