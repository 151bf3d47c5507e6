//! The contract DSL parser, used by the proc macro and by `build.rs`: one
//! file per DSL item, put together by [`parse_contract`].
//!
//! It turns a `#[trellis::contract(...)]` module into a [`Contract`]: the
//! [`Manifest`] it declares, a [`SpanMap`] that points manifest paths back
//! at source tokens (so semantic validation can report spanned errors), and
//! the Rust-side declarations code generation needs. It never stringifies
//! token streams: every name comes from an identifier or a literal, so the
//! proc macro and `build.rs` produce identical manifests.

mod attrs;
mod capability;
mod consumer;
mod contract_args;
mod event;
mod items;
mod operation;
mod resources;
mod rpc;
mod signature;
mod state;
mod uses;

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::Ident;

use crate::args::attr_name;
use crate::errors::Errors;
use crate::schema::{SchemaTypes, misplaced_hatches, strip_hatches};
use attrs::attr_span;
use contract_args::{Header, load_schemas};
use trellis_manifest::manifest::*;
use trellis_manifest::names;

pub use attrs::{docs_of, is_dsl_attr};
pub use contract_args::ContractArgs;

/// Names the expansion defines inside the module; authors cannot reuse them.
pub const RESERVED: &[&str] = &[
    "Service",
    "Client",
    "Rpc",
    "Operations",
    "Events",
    "EventListeners",
    "Uses",
    "Consumers",
    "Handlers",
    "KvResources",
    "StoreResources",
    "ID",
    "LINEAGE",
    "DIGEST",
    "MANIFEST_JSON",
];

/// Manifest paths (e.g. `["rpc", "Files.List", "input"]`) → source spans.
#[derive(Default, Debug, Clone)]
pub struct SpanMap {
    map: BTreeMap<Vec<String>, Span>,
}

impl SpanMap {
    /// Records the span of a manifest path.
    pub fn insert<I, S>(&mut self, path: I, span: Span)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.map
            .insert(path.into_iter().map(Into::into).collect(), span);
    }

    /// The span of the longest recorded prefix of `path`.
    pub fn lookup(&self, path: &[String]) -> Option<Span> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.map.get(&path[..n]).copied())
    }
}

/// A KV or store resource declared by a marker struct.
#[derive(Debug, Clone)]
pub struct ResourceDecl {
    /// The marker's identifier (`Items`).
    pub ident: Ident,
    /// Its visibility.
    pub vis: syn::Visibility,
    /// The manifest alias (`items`).
    pub alias: String,
    /// KV value type.
    pub schema: Option<Ident>,
    /// Whether the service needs it.
    pub required: bool,
    /// Doc attributes to carry over.
    pub docs: Vec<syn::Attribute>,
}

/// A public state store declared by a marker struct (`#[state(...)]`).
#[derive(Debug, Clone)]
pub struct StateDecl {
    /// The marker's identifier (`UiSettings`).
    pub ident: Ident,
    /// Its visibility.
    pub vis: syn::Visibility,
    /// The store's name in `trellis.state@v1` (`ui_settings`).
    pub name: String,
    /// The current value type.
    pub schema: Ident,
    /// Doc attributes to carry over.
    pub docs: Vec<syn::Attribute>,
}

/// An RPC or operation declaration (`fn name(input: In) -> Out;`).
#[derive(Debug, Clone)]
pub struct SurfaceDecl {
    /// `Files.List`.
    pub name: String,
    /// The declaring function's identifier.
    pub ident: Ident,
    /// Input type (`None`: the declaration takes no input, and callers
    /// send `trellis::Empty`).
    pub input: Option<syn::Type>,
    /// Output type.
    pub output: syn::Type,
    /// Declared error type.
    pub error: Option<Ident>,
    /// Progress type (operations).
    pub progress: Option<Ident>,
    /// Doc attributes.
    pub docs: Vec<syn::Attribute>,
}

/// An event declaration.
#[derive(Debug, Clone)]
pub struct EventDecl {
    /// `Documents.Created`.
    pub name: String,
    /// The event type.
    pub ident: Ident,
}

/// A `#[uses]` declaration.
#[derive(Debug, Clone)]
pub struct UseDecl {
    /// Alias (`docs`).
    pub alias: String,
    /// The marker struct's identifier (becomes the alias's facade type).
    pub ident: Ident,
    /// The used contract's id.
    pub contract: String,
    /// The used contract's generated module (`module = path`): its
    /// `#[trellis::contract]` module or a stub generated from its JSON.
    pub module: Option<syn::Path>,
    /// Doc attributes.
    pub docs: Vec<syn::Attribute>,
}

/// A parsed contract module.
#[derive(Debug, Clone)]
pub struct Contract {
    /// The declared manifest (not yet validated; see [`trellis_manifest::validate`]).
    pub manifest: Manifest,
    /// Where each manifest part came from.
    pub spans: SpanMap,
    /// Outer attributes of the module other than docs.
    pub module_attrs: Vec<syn::Attribute>,
    /// Module visibility.
    pub vis: syn::Visibility,
    /// Module name.
    pub ident: Ident,
    /// Items passed through (schema types, `use`, `impl`, capability consts),
    /// with DSL attributes removed.
    pub items: Vec<syn::Item>,
    /// KV resources.
    pub kv: Vec<ResourceDecl>,
    /// Store resources.
    pub stores: Vec<ResourceDecl>,
    /// Public state stores.
    pub states: Vec<StateDecl>,
    /// RPCs.
    pub rpcs: Vec<SurfaceDecl>,
    /// Operations.
    pub operations: Vec<SurfaceDecl>,
    /// Events.
    pub events: Vec<EventDecl>,
    /// `uses` declarations.
    pub uses: Vec<UseDecl>,
    /// Event consumer groups (group name, ident).
    pub consumers: Vec<(String, Ident)>,
    /// Shared schema files the contract reads (`schemas = "..."`), so the
    /// expansion and `build.rs` can track them.
    pub schema_files: Vec<std::path::PathBuf>,
}

struct Parser {
    errors: Errors,
    spans: SpanMap,
    namespace: String,
    version: String,
    capabilities: BTreeMap<String, String>,
    stores: BTreeMap<String, String>,
    uses: BTreeMap<String, String>,
}

/// Parses a contract module.
pub fn parse_contract(args: ContractArgs, module: &syn::ItemMod) -> syn::Result<Contract> {
    let mut errors = Errors::default();
    let Header {
        id: id_value,
        display_name,
        description,
        schemas: schemas_file,
        spans,
    } = args.read(&mut errors);

    let (namespace, version) = names::split_id(&id_value);
    let mut p = Parser {
        errors,
        spans,
        namespace: namespace.to_owned(),
        version: version.to_owned(),
        capabilities: BTreeMap::new(),
        stores: BTreeMap::new(),
        uses: BTreeMap::new(),
    };

    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        id: id_value.clone(),
        display_name,
        description,
        kind: Kind::Service,
        docs: docs_of(&module.attrs),
        capabilities: BTreeMap::new(),
        schemas: BTreeMap::new(),
        exports: None,
        uses: None,
        state: None,
        rpc: BTreeMap::new(),
        operations: BTreeMap::new(),
        events: BTreeMap::new(),
        feeds: None,
        errors: BTreeMap::new(),
        jobs: None,
        event_consumers: BTreeMap::new(),
        resources: None,
    };

    let Some((_, content)) = &module.content else {
        p.errors.at(
            module.ident.span(),
            "a contract module must be inline: write `mod name { ... }`, not `mod name;`",
        );
        p.errors.finish()?;
        return Err(syn::Error::new(
            module.ident.span(),
            "contract module has no body",
        ));
    };

    for attr in &module.attrs {
        if attr_name(attr) == "cfg" || attr_name(attr) == "cfg_attr" {
            p.errors.at(
                attr_span(attr),
                "`#[cfg]` on a contract module is not supported: build.rs would emit a manifest \
                 for a module that may not be compiled; gate the whole crate instead",
            );
        }
    }

    // Pass 1: names that other declarations refer to.
    let mut schema_types = SchemaTypes::default();
    let mut schema_files = Vec::new();
    if let Some(lit) = &schemas_file {
        load_schemas(lit, &mut p.errors, &mut schema_types, &mut schema_files);
    }
    for item in content {
        p.collect_names(item, &mut schema_types);
    }
    let (schemas, schema_errors) = schema_types.derive_all();
    for e in schema_errors {
        p.errors.push(e);
    }
    manifest.schemas = schemas;

    // Pass 2: declarations.
    let mut out = Contract {
        manifest: Manifest { ..manifest },
        spans: SpanMap::default(),
        module_attrs: module
            .attrs
            .iter()
            .filter(|a| !a.path().is_ident("doc"))
            .cloned()
            .collect(),
        vis: module.vis.clone(),
        ident: module.ident.clone(),
        items: Vec::new(),
        kv: Vec::new(),
        stores: Vec::new(),
        states: Vec::new(),
        rpcs: Vec::new(),
        operations: Vec::new(),
        events: Vec::new(),
        uses: Vec::new(),
        consumers: Vec::new(),
        schema_files,
    };
    let mut uses = UsesGrouped::default();
    let mut resources = Resources::default();
    for item in content {
        p.item(item, &mut out, &mut uses, &mut resources, &schema_types);
    }
    if !uses.required.is_empty() || !uses.optional.is_empty() {
        out.manifest.uses = Some(Uses::Grouped(uses));
    }
    if !resources.kv.is_empty() || !resources.store.is_empty() {
        out.manifest.resources = Some(resources);
    }
    out.spans = std::mem::take(&mut p.spans);
    for e in misplaced_hatches(content) {
        p.errors.push(e);
    }
    strip_hatches(&mut out.items);

    // Semantic rules shared with `trellis contract check`.
    if p.errors.is_empty() {
        for issue in trellis_manifest::validate::validate(&out.manifest) {
            let span = out
                .spans
                .lookup(&issue.path)
                .unwrap_or_else(|| module.ident.span());
            p.errors.at(span, issue.render_for_source());
        }
    }
    if p.errors.is_empty() {
        p.facade_names_are_free(&out);
    }
    p.errors.finish()?;
    Ok(out)
}

/// The module's doc text for the generated module doc.
pub fn docs_of_module(c: &Contract) -> String {
    let mut text = format!(
        " Contract `{}`: {}\n\n {}",
        c.manifest.id, c.manifest.display_name, c.manifest.description
    );
    if let Some(d) = &c.manifest.docs {
        text.push_str("\n\n");
        for line in d.markdown.lines() {
            text.push(' ');
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}
