//! The one contract parser, used by the proc macro and by `build.rs`.
//!
//! It turns a `#[trellis::contract(...)]` module into a [`Contract`]: the
//! [`Manifest`] it declares, a [`SpanMap`] that points manifest paths back
//! at source tokens (so semantic validation can report spanned errors), and
//! the Rust-side declarations code generation needs. It never stringifies
//! token streams: every name comes from an identifier or a literal, so the
//! proc macro and `build.rs` produce identical manifests.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Ident, LitStr, Token};

use crate::args::{Arg, Args, attr_name, parse_attr_args};
use crate::errors::Errors;
use crate::schema::{SchemaTypes, has_serde_derives, misplaced_hatches, strip_hatches};
use trellis_manifest::manifest::*;
use trellis_manifest::names;

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

const DSL_ATTRS: &[&str] = &[
    "kv",
    "store",
    "rpc",
    "operation",
    "event",
    "capability",
    "uses",
    "event_consumer",
];

/// Attributes that name concepts v1 does not have, with the fix.
const REJECTED_ATTRS: &[(&str, &str)] = &[
    (
        "stream",
        "stream resources do not exist in trellis.contract.v1: declare #[event]s (the runtime owns their streams) or a #[kv]/#[store] resource",
    ),
    (
        "job",
        "job resources do not exist in trellis.contract.v1: model long-running work as an #[operation]",
    ),
    (
        "jobs",
        "job resources do not exist in trellis.contract.v1: model long-running work as an #[operation]",
    ),
    (
        "subject",
        "raw subjects do not exist in trellis.contract.v1: subjects are derived from the contract; declare an #[rpc], #[operation] or #[event]",
    ),
    (
        "subjects",
        "raw subjects do not exist in trellis.contract.v1: subjects are derived from the contract; declare an #[rpc], #[operation] or #[event]",
    ),
];

fn dsl_attr_name(attr: &syn::Attribute) -> Option<String> {
    let segs: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect();
    match segs.as_slice() {
        [one] => Some(one.clone()),
        [t, one] if t == "trellis" => Some(one.clone()),
        _ => None,
    }
}

/// Whether `attr` belongs to the contract DSL (`#[kv]`, `#[rpc]`, ...).
pub fn is_dsl_attr(attr: &syn::Attribute) -> bool {
    dsl_attr_name(attr).is_some_and(|n| {
        DSL_ATTRS.contains(&n.as_str()) || REJECTED_ATTRS.iter().any(|(r, _)| *r == n)
    })
}

/// Collects doc comments into manifest docs.
pub fn docs_of(attrs: &[syn::Attribute]) -> Option<Docs> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }),
                ..
            }) => Some(s.value()),
            _ => None,
        })
        .flat_map(|s| s.split('\n').map(str::to_owned).collect::<Vec<_>>())
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned())
        .collect();
    let markdown = lines.join("\n").trim().to_owned();
    if markdown.is_empty() {
        return None;
    }
    let summary = markdown.lines().next().map(str::to_owned);
    Some(Docs { summary, markdown })
}

fn doc_attrs(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}

/// Arguments of `#[trellis::contract(...)]`.
pub struct ContractArgs {
    args: Vec<Arg>,
    span: Span,
}

impl ContractArgs {
    /// Parses the attribute's argument tokens.
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        // The attribute itself (`#[trellis::contract(...)]`): errors about
        // missing keys belong there, not on whichever argument comes first.
        let span = Span::call_site();
        let args =
            syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens)?;
        Ok(ContractArgs {
            args: args.into_iter().collect(),
            span,
        })
    }
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
    let mut a = Args::new(
        "#[trellis::contract(...)]",
        args.span,
        &["id", "display_name", "description", "schemas"],
        args.args,
        &mut errors,
    );
    let id = a.str("id");
    let display_name = a.str("display_name");
    let description = a.str("description");
    let schemas_file = a.str("schemas");
    a.finish();

    let mut spans = SpanMap::default();
    let id_value = match &id {
        Some(lit) => {
            let v = lit.value();
            spans.insert(["id"], lit.span());
            if !names::valid_contract_id(&v) {
                errors.at(
                    lit.span(),
                    format!(
                        "invalid contract id `{v}`: write `<name>@v<N>`, e.g. `documents@v1` \
                         (lowercase name, dot/dash separated; N >= 1)"
                    ),
                );
            }
            v
        }
        None => {
            errors.at(
                args.span,
                "missing contract id: add `id = \"<name>@v<N>\"`, e.g. `id = \"documents@v1\"`",
            );
            String::new()
        }
    };
    let mut text_arg = |lit: &Option<LitStr>, key: &str, example: &str| -> String {
        match lit {
            Some(l) if !l.value().trim().is_empty() => l.value(),
            Some(l) => {
                errors.at(l.span(), format!("`{key}` must not be empty"));
                String::new()
            }
            None => {
                errors.at(
                    args.span,
                    format!("missing `{key}`: add `{key} = \"{example}\"`"),
                );
                String::new()
            }
        }
    };
    let display_name = text_arg(&display_name, "display_name", "Documents");
    let description = text_arg(&description, "description", "What this service does");

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
        match crate::schema::locate_library(&lit.value()) {
            None => p.errors.at(
                lit.span(),
                "`schemas = \"...\"` is relative to the crate root, but CARGO_MANIFEST_DIR is \
                 not set; build with Cargo",
            ),
            Some(path) => match crate::schema::load_library(&path) {
                Ok(library) => {
                    schema_types.set_library(library);
                    schema_files.push(path);
                }
                Err(why) => p.errors.at(
                    lit.span(),
                    format!(
                        "shared schema file `{}` ({}): {why}",
                        lit.value(),
                        path.display()
                    ),
                ),
            },
        }
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
    p.errors.finish()?;
    Ok(out)
}

impl Parser {
    fn global_cap(&self, local: &str) -> String {
        format!("{}::{local}", self.namespace)
    }

    fn collect_names(&mut self, item: &syn::Item, schema_types: &mut SchemaTypes) {
        if let syn::Item::Use(u) = item
            && let Err(e) = schema_types.add_use(u)
        {
            self.errors.push(e);
        }
        let (attrs, ident) = match item {
            syn::Item::Struct(s) => (&s.attrs, &s.ident),
            syn::Item::Enum(e) => (&e.attrs, &e.ident),
            syn::Item::Const(c) => (&c.attrs, &c.ident),
            _ => return,
        };
        if RESERVED.contains(&ident.to_string().as_str()) {
            self.errors.at(
                ident.span(),
                format!(
                    "`{ident}` is generated by #[trellis::contract] in this module; rename your item"
                ),
            );
        }
        let dsl: Vec<String> = attrs.iter().filter_map(dsl_attr_name).collect();
        let has = |n: &str| dsl.iter().any(|d| d == n);
        if has("store") {
            let alias = find_dsl(attrs, "store")
                .and_then(alias_override)
                .unwrap_or_else(|| names::snake_case(&ident.to_string()));
            self.stores.insert(ident.to_string(), alias);
        } else if has("uses") {
            let alias = attrs
                .iter()
                .find(|a| dsl_attr_name(a).as_deref() == Some("uses"))
                .and_then(alias_override)
                .unwrap_or_else(|| names::snake_case(&ident.to_string()));
            self.uses.insert(ident.to_string(), alias);
        } else if has("capability") {
            if let syn::Item::Const(c) = item
                && let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &*c.expr
            {
                self.capabilities.insert(ident.to_string(), s.value());
            }
        } else if !has("kv") && !has("event_consumer") {
            let (ser, de) = has_serde_derives(attrs);
            if ser && de {
                let input = match item {
                    syn::Item::Struct(s) => syn::DeriveInput::from(s.clone()),
                    syn::Item::Enum(e) => syn::DeriveInput::from(e.clone()),
                    _ => return,
                };
                schema_types.insert(ident.to_string(), input);
            }
        }
    }

    fn item(
        &mut self,
        item: &syn::Item,
        out: &mut Contract,
        uses: &mut UsesGrouped,
        resources: &mut Resources,
        schema_types: &SchemaTypes,
    ) {
        if let Some(attrs) = item_attrs(item) {
            for attr in attrs {
                let name = attr_name(attr);
                if name == "cfg" || name == "cfg_attr" {
                    self.errors.at(
                        attr_span(attr),
                        "`#[cfg]`/`#[cfg_attr]` inside a contract module is not supported: the \
                         manifest must not depend on build configuration; move the item out of \
                         the contract module",
                    );
                    return;
                }
                if let Some(n) = dsl_attr_name(attr)
                    && let Some((_, why)) = REJECTED_ATTRS.iter().find(|(r, _)| *r == n)
                {
                    self.errors.at(attr_span(attr), *why);
                    return;
                }
            }
        }
        match item {
            syn::Item::Use(_) | syn::Item::Impl(_) => out.items.push(item.clone()),
            syn::Item::Struct(s) => self.struct_item(s, out, uses, resources, schema_types),
            syn::Item::Enum(e) => {
                if let Some(attr) = find_dsl(&e.attrs, "event") {
                    self.event(attr, &e.attrs, &e.ident, out, schema_types);
                } else if let Some(attr) = e.attrs.iter().find(|a| is_dsl_attr(a)) {
                    self.errors.at(
                        attr_span(attr),
                        format!("`#[{}]` cannot be used on an enum", attr_name(attr)),
                    );
                    return;
                } else if !schema_types.contains(&e.ident.to_string()) {
                    self.not_schema(&e.ident);
                    return;
                }
                out.items
                    .push(syn::Item::Enum(strip_dsl(e.clone(), |e| &mut e.attrs)));
            }
            syn::Item::Const(c) => {
                if let Some(attr) = find_dsl(&c.attrs, "capability") {
                    self.capability(attr, c, &mut out.manifest);
                }
                out.items
                    .push(syn::Item::Const(strip_dsl(c.clone(), |c| &mut c.attrs)));
            }
            syn::Item::Verbatim(tokens) => self.verbatim(tokens, out, schema_types),
            syn::Item::Fn(f) => {
                if f.attrs.iter().any(is_dsl_attr) {
                    self.errors.at(
                        f.block.span(),
                        "RPC and operation declarations have no body: end the signature with `;` \
                         and implement the handler outside the contract module",
                    );
                } else {
                    self.errors.at(
                        f.sig.ident.span(),
                        "functions with bodies do not belong in a contract module; move them out \
                         (declare RPCs as `#[rpc(\"Group.Leaf\")] fn name(input: In) -> Out;`)",
                    );
                }
            }
            syn::Item::Type(t) => {
                let hint = if t.attrs.iter().any(is_dsl_attr) {
                    "declare resources on a unit struct: `#[kv(purpose = \"...\", schema = Item)] pub struct Items;`"
                } else {
                    "type aliases are not schema types; declare a struct or enum with #[derive(Serialize, Deserialize)]"
                };
                self.errors.at(t.ident.span(), hint);
            }
            syn::Item::Macro(m) => self.errors.at(
                m.span(),
                "macro invocations inside a contract module are not supported: build.rs cannot \
                 expand them, so the manifest would differ; write the items out",
            ),
            syn::Item::Mod(m) => self.errors.at(
                m.ident.span(),
                "nested modules inside a contract module are not supported; declare everything \
                 at the top level of the contract module",
            ),
            other => self.errors.at(
                other.span(),
                "this item is not allowed in a contract module; allowed: `use`, schema types \
                 (structs/enums deriving Serialize and Deserialize), `impl` blocks and the \
                 #[kv], #[store], #[rpc], #[operation], #[event], #[capability], #[uses] and \
                 #[event_consumer] declarations",
            ),
        }
    }

    fn not_schema(&mut self, ident: &Ident) {
        self.errors.at(
            ident.span(),
            format!(
                "`{ident}` is neither a schema type nor a declaration: add \
                 `#[derive(Serialize, Deserialize)]` to make it a schema type, or annotate it \
                 with #[kv], #[store], #[event], #[uses] or #[event_consumer]"
            ),
        );
    }

    fn struct_item(
        &mut self,
        s: &syn::ItemStruct,
        out: &mut Contract,
        uses: &mut UsesGrouped,
        resources: &mut Resources,
        schema_types: &SchemaTypes,
    ) {
        let kinds: Vec<&syn::Attribute> = s.attrs.iter().filter(|a| is_dsl_attr(a)).collect();
        if kinds.len() > 1 {
            self.errors.at(
                attr_span(kinds[1]),
                format!(
                    "`{}` carries two declarations (`#[{}]` and `#[{}]`); use one per item",
                    s.ident,
                    attr_name(kinds[0]),
                    attr_name(kinds[1])
                ),
            );
            return;
        }
        let Some(attr) = kinds.first() else {
            if !schema_types.contains(&s.ident.to_string()) {
                self.not_schema(&s.ident);
                return;
            }
            out.items.push(syn::Item::Struct(s.clone()));
            return;
        };
        let name = dsl_attr_name(attr).unwrap_or_default();
        let is_marker = matches!(s.fields, syn::Fields::Unit);
        match name.as_str() {
            "event" => {
                self.event(attr, &s.attrs, &s.ident, out, schema_types);
                out.items
                    .push(syn::Item::Struct(strip_dsl(s.clone(), |s| &mut s.attrs)));
            }
            "kv" | "store" | "uses" | "event_consumer" if !is_marker => {
                self.errors.at(
                    s.fields.span(),
                    format!(
                        "`#[{name}]` goes on a unit struct that names the declaration, e.g. \
                         `pub struct {};`; remove the fields",
                        s.ident
                    ),
                );
            }
            "kv" => self.kv(attr, s, out, resources, schema_types),
            "store" => self.store(attr, s, out, resources),
            "uses" => self.uses(attr, s, out, uses),
            "event_consumer" => self.consumer(attr, s, out),
            other => self.errors.at(
                attr_span(attr),
                format!("`#[{other}]` cannot be used on a struct"),
            ),
        }
    }

    fn args<'a>(
        &'a mut self,
        attr: &syn::Attribute,
        what: &str,
        allowed: &'static [&'static str],
    ) -> Option<Args<'a>> {
        match parse_attr_args(attr) {
            Ok(args) => Some(Args::new(
                format!("#[{what}(...)]"),
                attr_span(attr),
                allowed,
                args,
                &mut self.errors,
            )),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn alias_of(&mut self, ident: &Ident, explicit: Option<LitStr>) -> String {
        match explicit {
            Some(lit) => {
                let v = lit.value();
                if !names::valid_alias(&v) {
                    self.errors.at(
                        lit.span(),
                        format!("alias `{v}` must be snake_case (`[a-z][a-z0-9_]*`)"),
                    );
                }
                v
            }
            None => names::snake_case(&ident.to_string()),
        }
    }

    fn check_alias_unique(&mut self, alias: &str, span: Span, taken: &[(&str, &str)]) -> bool {
        let norm = names::normalized(alias);
        if let Some((other, kind)) = taken.iter().find(|(a, _)| names::normalized(a) == norm) {
            self.errors.at(
                span,
                format!(
                    "duplicate resource alias `{alias}`: it collides with {kind} `{other}` \
                     (aliases must be unique across kv and store after case normalization); \
                     rename one of them"
                ),
            );
            return false;
        }
        true
    }

    fn taken_aliases(resources: &Resources) -> Vec<(&str, &'static str)> {
        resources
            .kv
            .keys()
            .map(|a| (a.as_str(), "kv"))
            .chain(resources.store.keys().map(|a| (a.as_str(), "store")))
            .collect()
    }

    fn kv(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        resources: &mut Resources,
        types: &SchemaTypes,
    ) {
        let ident = &s.ident;
        let Some(mut a) = self.args(
            attr,
            "kv",
            &[
                "purpose",
                "schema",
                "history",
                "ttl_ms",
                "max_value_bytes",
                "required",
                "alias",
            ],
        ) else {
            return;
        };
        let purpose = a.str("purpose");
        let schema = a.ident("schema");
        let history = a.uint("history");
        let ttl = a.uint("ttl_ms");
        let max_value = a.uint("max_value_bytes");
        let required = a.bool("required");
        let alias_lit = a.str("alias");
        let span = a.span();
        if purpose.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[kv] `{ident}` needs a `purpose`: add `purpose = \"why this bucket exists\"`"
                ),
            );
        }
        if schema.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[kv] `{ident}` needs a value `schema`: add `schema = Item` naming a schema \
                     type declared in this module"
                ),
            );
        }
        a.finish();
        let alias = self.alias_of(ident, alias_lit);
        let taken = Self::taken_aliases(resources);
        if !self.check_alias_unique(&alias, ident.span(), &taken) {
            return;
        }
        let path = |k: &str| {
            vec![
                "resources".to_owned(),
                "kv".to_owned(),
                alias.clone(),
                k.to_owned(),
            ]
        };
        self.spans
            .insert(["resources", "kv", alias.as_str()], ident.span());
        if let Some(p) = &purpose {
            self.spans.insert(path("purpose"), p.span());
        }
        if let Some(s) = &schema {
            self.spans.insert(path("schema"), s.span());
        }
        for (k, v) in [
            ("history", &history),
            ("ttlMs", &ttl),
            ("maxValueBytes", &max_value),
        ] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(k), *sp);
            }
        }
        let (Some(purpose), Some(schema)) = (purpose, schema) else {
            return;
        };
        // A type of a shared schema module gets its named schema here; a
        // name of this module's is already in `schemas`.
        let schema_name = if types.is_shared(&schema) {
            let ty: syn::Type = syn::parse_quote!(#schema);
            match self.surface_schema(Some(&ty), schema.span(), types, &mut out.manifest) {
                Some(name) => name,
                None => return,
            }
        } else {
            schema.to_string()
        };
        let required = required.map(|(b, _)| b).unwrap_or(true);
        resources.kv.insert(
            alias.clone(),
            KvResource {
                purpose: purpose.value(),
                schema: SchemaRef::new(schema_name),
                required: Some(required),
                history: Some(history.map(|(n, _)| n).unwrap_or(1)),
                ttl_ms: Some(ttl.map(|(n, _)| n).unwrap_or(0)),
                max_value_bytes: max_value.map(|(n, _)| n),
                docs: docs_of(&s.attrs),
            },
        );
        out.kv.push(ResourceDecl {
            ident: ident.clone(),
            vis: s.vis.clone(),
            alias,
            schema: Some(schema),
            required,
            docs: doc_attrs(&s.attrs),
        });
    }

    fn store(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        resources: &mut Resources,
    ) {
        let ident = &s.ident;
        let Some(mut a) = self.args(
            attr,
            "store",
            &["purpose", "ttl_ms", "max_total_bytes", "required", "alias"],
        ) else {
            return;
        };
        if let Some((k, _)) = a.value("max_object_bytes") {
            a.errors().at(
                k.span(),
                "per-object limits are not supported in trellis-rs v1: remove `max_object_bytes` \
                 and bound single uploads with the operation's `transfer(max_bytes = ...)` instead",
            );
        }
        let purpose = a.str("purpose");
        let ttl = a.uint("ttl_ms");
        let max_total = a.uint("max_total_bytes");
        let required = a.bool("required");
        let alias_lit = a.str("alias");
        let span = a.span();
        if purpose.is_none() {
            a.errors().at(
                span,
                format!(
                    "#[store] `{ident}` needs a `purpose`: add `purpose = \"why this store exists\"`"
                ),
            );
        }
        a.finish();
        let alias = self.alias_of(ident, alias_lit);
        let taken = Self::taken_aliases(resources);
        if !self.check_alias_unique(&alias, ident.span(), &taken) {
            return;
        }
        let path = |k: &str| {
            vec![
                "resources".to_owned(),
                "store".to_owned(),
                alias.clone(),
                k.to_owned(),
            ]
        };
        self.spans
            .insert(["resources", "store", alias.as_str()], ident.span());
        for (k, v) in [("ttlMs", &ttl), ("maxTotalBytes", &max_total)] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(k), *sp);
            }
        }
        let Some(purpose) = purpose else {
            return;
        };
        let required = required.map(|(b, _)| b).unwrap_or(true);
        resources.store.insert(
            alias.clone(),
            StoreResource {
                purpose: purpose.value(),
                required: Some(required),
                ttl_ms: Some(ttl.map(|(n, _)| n).unwrap_or(0)),
                max_object_bytes: None,
                max_total_bytes: max_total.map(|(n, _)| n),
                docs: docs_of(&s.attrs),
            },
        );
        out.stores.push(ResourceDecl {
            ident: ident.clone(),
            vis: s.vis.clone(),
            alias,
            schema: None,
            required,
            docs: doc_attrs(&s.attrs),
        });
    }

    /// Maps capability identifiers to global keys, reporting undeclared ones.
    fn caps(&mut self, idents: Option<Vec<Ident>>) -> Option<Vec<String>> {
        let idents = idents?;
        let mut out = Vec::new();
        for ident in idents {
            match self.capabilities.get(&ident.to_string()) {
                Some(local) => out.push(self.global_cap(local)),
                None => self.errors.at(
                    ident.span(),
                    format!(
                        "undeclared capability `{ident}`: declare it in this module, e.g. \
                         `#[capability(display_name = \"...\", description = \"...\")] \
                         pub const {ident}: &str = \"{}\";`",
                        names::snake_case(&ident.to_string()).replace('_', ".")
                    ),
                ),
            }
        }
        Some(out)
    }

    fn capability(&mut self, attr: &syn::Attribute, c: &syn::ItemConst, manifest: &mut Manifest) {
        let Some(mut a) = self.args(
            attr,
            "capability",
            &["display_name", "description", "consequence"],
        ) else {
            return;
        };
        let display = a.str("display_name");
        let description = a.str("description");
        let consequence = a.str("consequence");
        a.finish();
        let local = match &*c.expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.clone(),
            other => {
                self.errors.at(
                    other.span(),
                    "a capability const must be a string literal naming it locally, e.g. `\"read\"`",
                );
                return;
            }
        };
        if !names::valid_capability(&local.value()) {
            self.errors.at(
                local.span(),
                format!(
                    "capability name `{}` must be lowercase words separated by `.`, `-` or `_`",
                    local.value()
                ),
            );
        }
        let docs = docs_of(&c.attrs);
        let description = description
            .map(|d| d.value())
            .or_else(|| docs.map(|d| d.markdown));
        let Some(description) = description else {
            self.errors.at(
                c.ident.span(),
                format!(
                    "capability `{}` needs a description: add a doc comment or `description = \"...\"`",
                    c.ident
                ),
            );
            return;
        };
        let Some(display) = display else {
            self.errors.at(
                attr_span(attr),
                "a capability needs `display_name = \"...\"`",
            );
            return;
        };
        let key = self.global_cap(&local.value());
        if manifest.capabilities.contains_key(&key) {
            self.errors.at(
                local.span(),
                format!("duplicate capability `{}`", local.value()),
            );
        }
        self.spans
            .insert(["capabilities", key.as_str()], c.ident.span());
        manifest.capabilities.insert(
            key,
            CapabilityMeta {
                display_name: display.value(),
                description,
                consequence: consequence.map(|c| c.value()),
            },
        );
    }

    fn verbatim(&mut self, tokens: &TokenStream, out: &mut Contract, types: &SchemaTypes) {
        let f: syn::ForeignItemFn = match syn::parse2(tokens.clone()) {
            Ok(f) => f,
            Err(_) => {
                self.errors.at(
                    tokens.span(),
                    "this item is not allowed in a contract module",
                );
                return;
            }
        };
        let Some(attr) = f.attrs.iter().find(|a| is_dsl_attr(a)) else {
            self.errors.at(
                f.sig.ident.span(),
                "a function without a body must be an #[rpc(\"Group.Leaf\")] or \
                 #[operation(\"Group.Leaf\")] declaration",
            );
            return;
        };
        match dsl_attr_name(attr).as_deref() {
            Some("rpc") => self.rpc(attr, &f, out, types),
            Some("operation") => self.operation(attr, &f, out, types),
            Some(other) => self.errors.at(
                attr_span(attr),
                format!("`#[{other}]` cannot be used on a function; use #[rpc] or #[operation]"),
            ),
            None => {}
        }
    }

    /// Checks `fn name(input: In) -> Out` (or `fn name() -> Out`) and
    /// returns (input, output, error).
    fn signature(
        &mut self,
        f: &syn::ForeignItemFn,
        allow_result: bool,
    ) -> Option<(Option<syn::Type>, syn::Type, Option<Ident>)> {
        let sig = &f.sig;
        if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
            self.errors.at(
                sig.ident.span(),
                "declare the signature plainly (`fn name(input: In) -> Out;`): no `async`, no generics",
            );
            return None;
        }
        let inputs: Vec<&syn::FnArg> = sig.inputs.iter().collect();
        let input = match inputs.as_slice() {
            [] => None,
            [syn::FnArg::Typed(pt)] => Some((*pt.ty).clone()),
            _ => {
                self.errors.at(
                    sig.inputs
                        .span()
                        .join(sig.ident.span())
                        .unwrap_or(sig.ident.span()),
                    "declare at most one input parameter, whose type is a schema type \
                     expression, e.g. `fn files_list(input: ListRequest) -> FilePage;` \
                     (or none: `fn health() -> Health;`)",
                );
                return None;
            }
        };
        let syn::ReturnType::Type(_, ret) = &sig.output else {
            self.errors.at(
                sig.ident.span(),
                "declare the output type: `-> Output` (a schema type expression such as \
                 `Task`, `Vec<Task>` or `Page<Task>`; `-> ()` for none)",
            );
            return None;
        };
        if let syn::Type::Path(p) = &**ret
            && let Some(last) = p.path.segments.last()
            && last.ident == "Result"
        {
            if !allow_result {
                let ok = match &last.arguments {
                    syn::PathArguments::AngleBracketed(args) => {
                        args.args.iter().find_map(|a| match a {
                            syn::GenericArgument::Type(t) => {
                                Some(format!(" (`-> {}`)", written_type(t)))
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                };
                self.errors.at(
                    last.ident.span(),
                    format!(
                        "operations report failure through their terminal state, not `Result`: \
                         return the output type itself{}",
                        ok.unwrap_or_default()
                    ),
                );
                return None;
            }
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                self.errors.at(last.span(), "write `Result<Output, Error>`");
                return None;
            };
            let tys: Vec<&syn::Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            let [ok, error] = tys.as_slice() else {
                self.errors.at(last.span(), "write `Result<Output, Error>`");
                return None;
            };
            let error = self.schema_ident(error, "error")?;
            return Some((input, (*ok).clone(), Some(error)));
        }
        Some((input, (**ret).clone(), None))
    }

    /// A declared error type: a schema type of this module, by its name.
    fn schema_ident(&mut self, ty: &syn::Type, role: &str) -> Option<Ident> {
        if let syn::Type::Path(p) = ty
            && p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
        {
            return Some(ident.clone());
        }
        self.errors.at(
            ty.span(),
            format!(
                "the {role} must be a schema type declared in this module (a plain name): \
                 its name is the error's `type` on the wire"
            ),
        );
        None
    }

    /// The manifest schema name of a surface's input or output (`None`: no
    /// input), adding the named schemas it needs to the manifest. Two
    /// different schemas under one name are an error at `ty`.
    fn surface_schema(
        &mut self,
        ty: Option<&syn::Type>,
        at: Span,
        types: &SchemaTypes,
        manifest: &mut Manifest,
    ) -> Option<String> {
        let (name, named) = match ty {
            None => (
                crate::schema::EMPTY.to_owned(),
                BTreeMap::from([(
                    crate::schema::EMPTY.to_owned(),
                    crate::schema::empty_schema(),
                )]),
            ),
            Some(ty) => match types.surface_schema(ty) {
                Ok(found) => found,
                Err(e) => {
                    self.errors.push(e);
                    return None;
                }
            },
        };
        for (key, schema) in named {
            match manifest.schemas.get(&key) {
                Some(existing) if *existing != schema => {
                    let written = ty
                        .map(written_type)
                        .unwrap_or_else(|| "no input".to_owned());
                    let message = format!(
                        "`{written}` needs the manifest schema `{key}`, but that name already \
                         holds a different schema (a schema type of this module, or another \
                         expression with the same name); rename the schema type `{key}`"
                    );
                    match ty {
                        Some(ty) => self.errors.push(syn::Error::new_spanned(ty, message)),
                        None => self.errors.at(at, message),
                    }
                    return None;
                }
                Some(_) => {}
                None => {
                    manifest.schemas.insert(key, schema);
                }
            }
        }
        Some(name)
    }

    fn rpc(
        &mut self,
        attr: &syn::Attribute,
        f: &syn::ForeignItemFn,
        out: &mut Contract,
        types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.rpc.keys().cloned().collect();
        let Some(mut a) = self.args(attr, "rpc", &["capabilities", "transfer"]) else {
            return;
        };
        let name = self_surface_name(&mut a, "rpc", &taken);
        let caps = a.list("capabilities");
        let transfer = a.list("transfer");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        self.spans.insert(["rpc", name.as_str()], name_span);
        let call = caps.and_then(|(k, args)| {
            let mut c = Args::new(
                "capabilities(...)",
                k.span(),
                &["call"],
                args,
                &mut self.errors,
            );
            let call = c.ident_list("call");
            c.finish();
            call
        });
        let call = self.caps(call);
        let transfer = transfer.and_then(|(k, args)| {
            let mut t = Args::new(
                "transfer(...)",
                k.span(),
                &["receive"],
                args,
                &mut self.errors,
            );
            let receive = t.bool("receive");
            t.finish();
            if receive.is_none() {
                self.errors.at(
                    k.span(),
                    "an RPC transfer hands bytes to the caller: write `transfer(receive)` \
                     (uploads are operations with `transfer(send, ...)`)",
                );
            }
            receive.map(|_| ReceiveTransfer {
                direction: ReceiveDirection::Receive,
            })
        });
        let Some((input, output, error)) = self.signature(f, true) else {
            return;
        };
        let input_at = input.as_ref().map_or(f.sig.ident.span(), |t| t.span());
        let input_schema = self.surface_schema(input.as_ref(), input_at, types, &mut out.manifest);
        let output_schema =
            self.surface_schema(Some(&output), output.span(), types, &mut out.manifest);
        let (Some(input_schema), Some(output_schema)) = (input_schema, output_schema) else {
            return;
        };
        let path = |k: &str| vec!["rpc".to_owned(), name.clone(), k.to_owned()];
        self.spans.insert(path("input"), input_at);
        self.spans.insert(path("output"), output.span());
        let errors = error.as_ref().map(|e| {
            self.spans.insert(path("errors"), e.span());
            out.manifest.errors.insert(
                e.to_string(),
                ErrorDecl {
                    ty: e.to_string(),
                    schema: Some(SchemaRef::new(e.to_string())),
                },
            );
            self.spans
                .insert(["errors", &e.to_string(), "schema"], e.span());
            vec![ErrorRef { ty: e.to_string() }]
        });
        out.manifest.rpc.insert(
            name.clone(),
            RpcMethod {
                version: self.version.clone(),
                subject: format!("rpc.{}.{name}", self.version),
                input: SchemaRef::new(input_schema),
                output: SchemaRef::new(output_schema),
                capabilities: call.map(|call| RpcCapabilities { call: Some(call) }),
                errors,
                transfer,
                internal: None,
                docs: docs_of(&f.attrs),
            },
        );
        out.rpcs.push(SurfaceDecl {
            name,
            ident: f.sig.ident.clone(),
            input,
            output,
            error,
            progress: None,
            docs: doc_attrs(&f.attrs),
        });
    }

    fn operation(
        &mut self,
        attr: &syn::Attribute,
        f: &syn::ForeignItemFn,
        out: &mut Contract,
        types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.operations.keys().cloned().collect();
        let Some(mut a) = self.args(
            attr,
            "operation",
            &["progress", "capabilities", "cancel", "transfer"],
        ) else {
            return;
        };
        let name = self_surface_name(&mut a, "operation", &taken);
        let progress = a.ident("progress");
        let caps = a.list("capabilities");
        let cancel = a.bool("cancel");
        let transfer = a.list("transfer");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        self.spans.insert(["operations", name.as_str()], name_span);
        let base = |k: &str| vec!["operations".to_owned(), name.clone(), k.to_owned()];
        let capabilities = match caps {
            Some((k, args)) => {
                let mut c = Args::new(
                    "capabilities(...)",
                    k.span(),
                    &["call", "observe", "cancel", "control"],
                    args,
                    &mut self.errors,
                );
                let call = c.ident_list("call");
                let observe = c.ident_list("observe");
                let cancel = c.ident_list("cancel");
                let control = c.ident_list("control");
                c.finish();
                Some(OperationCapabilities {
                    call: self.caps(call),
                    observe: self.caps(observe),
                    cancel: self.caps(cancel),
                    control: self.caps(control),
                })
            }
            None => None,
        };
        let transfer = match transfer {
            Some((k, args)) => self.send_transfer(k, args, &name),
            None => None,
        };
        let Some((input, output, _)) = self.signature(f, false) else {
            return;
        };
        let input_at = input.as_ref().map_or(f.sig.ident.span(), |t| t.span());
        let input_schema = self.surface_schema(input.as_ref(), input_at, types, &mut out.manifest);
        let output_schema =
            self.surface_schema(Some(&output), output.span(), types, &mut out.manifest);
        let (Some(input_schema), Some(output_schema)) = (input_schema, output_schema) else {
            return;
        };
        self.spans.insert(base("input"), input_at);
        self.spans.insert(base("output"), output.span());
        if let Some(p) = &progress {
            self.spans.insert(base("progress"), p.span());
        }
        out.manifest.operations.insert(
            name.clone(),
            Operation {
                version: self.version.clone(),
                subject: format!("operations.{}.{name}", self.version),
                input: SchemaRef::new(input_schema),
                progress: progress.as_ref().map(|p| SchemaRef::new(p.to_string())),
                output: SchemaRef::new(output_schema),
                transfer,
                capabilities,
                signals: None,
                cancel: cancel.map(|(b, _)| b),
                docs: docs_of(&f.attrs),
            },
        );
        out.operations.push(SurfaceDecl {
            name,
            ident: f.sig.ident.clone(),
            input,
            output,
            error: None,
            progress,
            docs: doc_attrs(&f.attrs),
        });
    }

    fn send_transfer(&mut self, k: Ident, args: Vec<Arg>, op: &str) -> Option<SendTransfer> {
        let mut t = Args::new(
            "transfer(...)",
            k.span(),
            &[
                "send",
                "store",
                "key",
                "content_type",
                "metadata",
                "max_bytes",
                "expires_in_ms",
            ],
            args,
            &mut self.errors,
        );
        let send = t.bool("send");
        let store = t.ident("store");
        let key = t.str("key");
        let content_type = t.str("content_type");
        let metadata = t.str("metadata");
        let max_bytes = t.uint("max_bytes");
        let expires = t.uint("expires_in_ms");
        if send.is_none() {
            t.errors().at(
                k.span(),
                "an operation transfer receives bytes from the caller: write `transfer(send, store = ..., key = \"/...\")`",
            );
        }
        if store.is_none() {
            t.errors().at(
                k.span(),
                "the transfer needs `store = <Store>` naming a #[store] of this contract",
            );
        }
        if key.is_none() {
            t.errors().at(
                k.span(),
                "the transfer needs `key = \"/pointer\"`: a JSON pointer to the object key in the input",
            );
        }
        t.finish();
        let path = |f: &str| {
            vec![
                "operations".to_owned(),
                op.to_owned(),
                "transfer".to_owned(),
                f.to_owned(),
            ]
        };
        let store_ident = store?;
        let alias = match self.stores.get(&store_ident.to_string()) {
            Some(alias) => alias.clone(),
            None => {
                self.errors.at(
                    store_ident.span(),
                    format!(
                        "`{store_ident}` is not a #[store] of this contract: declare \
                         `#[store(purpose = \"...\")] pub struct {store_ident};` or name an existing store"
                    ),
                );
                return None;
            }
        };
        self.spans.insert(path("store"), store_ident.span());
        let key = key?;
        self.spans.insert(path("key"), key.span());
        for (f, lit) in [("contentType", &content_type), ("metadata", &metadata)] {
            if let Some(l) = lit {
                self.spans.insert(path(f), l.span());
            }
        }
        for (f, v) in [("maxBytes", &max_bytes), ("expiresInMs", &expires)] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(f), *sp);
            }
        }
        Some(SendTransfer {
            direction: SendDirection::Send,
            store: alias,
            key: key.value(),
            content_type: content_type.map(|l| l.value()),
            metadata: metadata.map(|l| l.value()),
            expires_in_ms: expires.map(|(n, _)| n),
            max_bytes: max_bytes.map(|(n, _)| n),
        })
    }

    fn event(
        &mut self,
        attr: &syn::Attribute,
        item_attrs: &[syn::Attribute],
        ident: &Ident,
        out: &mut Contract,
        schema_types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.events.keys().cloned().collect();
        let Some(mut a) = self.args(attr, "event", &["params", "capabilities"]) else {
            return;
        };
        let name = self_surface_name(&mut a, "event", &taken);
        let params = a.str_list("params");
        let caps = a.list("capabilities");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        if !schema_types.contains(&ident.to_string()) {
            self.errors.at(
                ident.span(),
                format!("event type `{ident}` must derive Serialize and Deserialize"),
            );
            return;
        }
        self.spans.insert(["events", name.as_str()], name_span);
        let capabilities = caps.map(|(k, args)| {
            let mut c = Args::new(
                "capabilities(...)",
                k.span(),
                &["publish", "subscribe"],
                args,
                &mut self.errors,
            );
            let publish = c.ident_list("publish");
            let subscribe = c.ident_list("subscribe");
            c.finish();
            EventCapabilities {
                publish: self.caps(publish),
                subscribe: self.caps(subscribe),
            }
        });
        let mut subject = format!("events.{}.{name}", self.version);
        let params = params.map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, lit)| {
                    self.spans.insert(
                        [
                            "events".to_owned(),
                            name.clone(),
                            "params".to_owned(),
                            i.to_string(),
                        ],
                        lit.span(),
                    );
                    subject.push_str(&format!(".{{{}}}", lit.value()));
                    lit.value()
                })
                .collect::<Vec<_>>()
        });
        out.manifest.events.insert(
            name.clone(),
            Event {
                version: self.version.clone(),
                subject,
                params,
                event: SchemaRef::new(ident.to_string()),
                capabilities,
                docs: docs_of(item_attrs),
            },
        );
        out.events.push(EventDecl {
            name,
            ident: ident.clone(),
        });
    }

    fn uses(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        uses: &mut UsesGrouped,
    ) {
        let Some(mut a) = self.args(
            attr,
            "uses",
            &[
                "contract",
                "rpc",
                "operations",
                "publish",
                "subscribe",
                "optional",
                "alias",
                "module",
            ],
        ) else {
            return;
        };
        let contract = a.str("contract");
        let module = a.path("module");
        let rpc = a.str_list("rpc");
        let operations = a.str_list("operations");
        let publish = a.str_list("publish");
        let subscribe = a.str_list("subscribe");
        let optional = a.bool("optional").map(|(b, _)| b).unwrap_or(false);
        let _ = a.str("alias");
        let span = a.span();
        if contract.is_none() {
            a.errors().at(
                span,
                "#[uses] needs the used contract: add `contract = \"<name>@v<N>\"`",
            );
        }
        a.finish();
        let Some(contract) = contract else {
            return;
        };
        if !names::valid_contract_id(&contract.value()) {
            self.errors.at(
                contract.span(),
                format!(
                    "invalid contract id `{}`: write `<name>@v<N>`, e.g. `documents@v1`",
                    contract.value()
                ),
            );
            return;
        }
        let alias = self
            .uses
            .get(&s.ident.to_string())
            .cloned()
            .unwrap_or_else(|| names::snake_case(&s.ident.to_string()));
        let norm = names::normalized(&alias);
        if let Some(other) = uses
            .required
            .keys()
            .chain(uses.optional.keys())
            .find(|a| names::normalized(a) == norm)
        {
            self.errors.at(
                s.ident.span(),
                format!("duplicate uses alias `{alias}` (collides with `{other}`); rename one"),
            );
            return;
        }
        let group = if optional { "optional" } else { "required" };
        self.spans
            .insert(["uses", group, alias.as_str()], s.ident.span());
        let names_of =
            |l: Option<Vec<LitStr>>| l.map(|l| l.iter().map(LitStr::value).collect::<Vec<_>>());
        for (kind, list) in [
            ("rpc", &rpc),
            ("operations", &operations),
            ("publish", &publish),
            ("subscribe", &subscribe),
        ] {
            for lit in list.iter().flatten() {
                if !names::valid_surface_name(&lit.value()) {
                    self.errors.at(
                        lit.span(),
                        format!(
                            "`{}` in `{kind}` is not a `<Group>.<Leaf>` name",
                            lit.value()
                        ),
                    );
                }
            }
        }
        let (publish, subscribe) = (names_of(publish), names_of(subscribe));
        let r = UseRef {
            contract: contract.value(),
            rpc: names_of(rpc).map(|call| UseCall { call: Some(call) }),
            operations: names_of(operations).map(|call| UseCall { call: Some(call) }),
            events: (publish.is_some() || subscribe.is_some())
                .then_some(UsePubSub { publish, subscribe }),
            feeds: None,
        };
        if optional {
            uses.optional.insert(alias.clone(), r);
        } else {
            uses.required.insert(alias.clone(), r);
        }
        out.uses.push(UseDecl {
            alias,
            ident: s.ident.clone(),
            contract: contract.value(),
            module,
            docs: s
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
        });
    }

    fn consumer(&mut self, attr: &syn::Attribute, s: &syn::ItemStruct, out: &mut Contract) {
        let group = names::snake_case(&s.ident.to_string());
        let Some(mut a) = self.args(
            attr,
            "event_consumer",
            &[
                "uses",
                "self",
                "replay",
                "ordering",
                "concurrency",
                "ack_wait_ms",
                "max_deliver",
                "backoff_ms",
            ],
        ) else {
            return;
        };
        let uses_arg = a.list("uses");
        let own = a.str_list("self");
        let replay = a.str("replay");
        let ordering = a.str("ordering");
        let concurrency = a.uint("concurrency");
        let ack_wait = a.uint("ack_wait_ms");
        let max_deliver = a.uint("max_deliver");
        let backoff = a.uint_list("backoff_ms");
        let span = a.span();
        a.finish();
        let base = |k: &str| vec!["eventConsumers".to_owned(), group.clone(), k.to_owned()];
        self.spans
            .insert(["eventConsumers", group.as_str()], s.ident.span());
        let mut uses_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some((k, args)) = uses_arg {
            let mut u = Args::new("uses(...)", k.span(), &[], args, &mut self.errors);
            let pairs = u.remaining_str_lists();
            for (alias_ident, events) in pairs {
                let Some(alias) = self.uses.get(&alias_ident.to_string()).cloned() else {
                    self.errors.at(
                        alias_ident.span(),
                        format!(
                            "`{alias_ident}` is not a #[uses] declaration of this contract: \
                             declare `#[uses(contract = \"...\", subscribe = [...])] pub struct {alias_ident};`"
                        ),
                    );
                    continue;
                };
                for lit in &events {
                    self.spans.insert(
                        [
                            "eventConsumers".to_owned(),
                            group.clone(),
                            "uses".to_owned(),
                            alias.clone(),
                            lit.value(),
                        ],
                        lit.span(),
                    );
                }
                uses_map.insert(alias, events.iter().map(LitStr::value).collect());
            }
        }
        if let Some(list) = &own {
            for lit in list {
                self.spans.insert(
                    [
                        "eventConsumers".to_owned(),
                        group.clone(),
                        "self".to_owned(),
                        lit.value(),
                    ],
                    lit.span(),
                );
            }
        }
        if uses_map.is_empty() && own.as_ref().is_none_or(Vec::is_empty) {
            self.errors.at(
                span,
                "an event consumer needs events: `uses(Alias = [\"Group.Event\"])` and/or `self = [\"Group.Event\"]`",
            );
            return;
        }
        let replay = match replay {
            None => Replay::New,
            Some(l) => match l.value().as_str() {
                "new" => Replay::New,
                "all" => Replay::All,
                other => {
                    self.errors.at(
                        l.span(),
                        format!("unknown replay `{other}`: use \"new\" or \"all\""),
                    );
                    return;
                }
            },
        };
        let concurrency_n = concurrency.map(|(n, _)| n).unwrap_or(1);
        if let Some((_, sp)) = concurrency {
            self.spans.insert(base("concurrency"), sp);
        }
        let ordering = match ordering {
            None => (concurrency_n == 1).then_some(Ordering::Strict),
            Some(l) => {
                self.spans.insert(base("ordering"), l.span());
                match l.value().as_str() {
                    "strict" => Some(Ordering::Strict),
                    "unordered" => None,
                    other => {
                        self.errors.at(
                            l.span(),
                            format!("unknown ordering `{other}`: use \"strict\" or \"unordered\""),
                        );
                        return;
                    }
                }
            }
        };
        for (k, v) in [("ackWaitMs", &ack_wait), ("maxDeliver", &max_deliver)] {
            if let Some((_, sp)) = v {
                self.spans.insert(base(k), *sp);
            }
        }
        out.manifest.event_consumers.insert(
            group.clone(),
            EventConsumerGroup {
                uses: (!uses_map.is_empty()).then_some(uses_map),
                own: own.map(|l| l.iter().map(LitStr::value).collect()),
                replay: Some(replay),
                ordering,
                concurrency: Some(concurrency_n),
                ack_wait_ms: Some(ack_wait.map(|(n, _)| n).unwrap_or(300_000)),
                max_deliver: Some(max_deliver.map(|(n, _)| n).unwrap_or(6)),
                backoff_ms: backoff,
                docs: docs_of(&s.attrs),
            },
        );
        out.consumers.push((group, s.ident.clone()));
    }
}

/// A type as its author wrote it (`Vec<Task>`, not `Vec < Task >`).
fn written_type(ty: &syn::Type) -> String {
    quote::ToTokens::to_token_stream(ty)
        .to_string()
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
}

fn self_surface_name(a: &mut Args<'_>, kind: &str, taken: &[String]) -> Option<(String, Span)> {
    let span = a.span();
    let Some(lit) = a.positional_str() else {
        a.errors().at(
            span,
            format!("#[{kind}] needs a name first: `#[{kind}(\"Group.Leaf\", ...)]`"),
        );
        return None;
    };
    let name = lit.value();
    if !names::valid_surface_name(&name) {
        a.errors().at(
            lit.span(),
            format!(
                "invalid {kind} name `{name}`: write `<Group>.<Leaf>` in PascalCase, e.g. `Files.List`"
            ),
        );
        return None;
    }
    let norm = names::normalized(&name);
    if let Some(other) = taken.iter().find(|t| names::normalized(t) == norm) {
        let msg = if *other == name {
            format!(
                "duplicate {kind} name `{name}`: this contract already declares an {kind} \
                 named `{name}`; rename one of them or remove the duplicate"
            )
        } else {
            format!(
                "duplicate {kind} name `{name}`: it collides with `{other}` (names must differ \
                 by more than case); rename one of them"
            )
        };
        a.errors().at(lit.span(), msg);
        return None;
    }
    Some((name, lit.span()))
}

fn alias_override(attr: &syn::Attribute) -> Option<String> {
    let args = parse_attr_args(attr).ok()?;
    args.into_iter().find_map(|a| match a {
        Arg::Assign(k, crate::args::Value::Str(s)) if k == "alias" => Some(s.value()),
        _ => None,
    })
}

/// Where to point errors about an attribute as a whole: its name (`kv` in
/// `#[kv(...)]`). `attr.span()` would cover only the `#` on stable Rust.
fn attr_span(attr: &syn::Attribute) -> Span {
    attr.path()
        .segments
        .last()
        .map_or_else(|| attr.span(), |s| s.ident.span())
}

fn find_dsl<'a>(attrs: &'a [syn::Attribute], name: &str) -> Option<&'a syn::Attribute> {
    attrs
        .iter()
        .find(|a| dsl_attr_name(a).as_deref() == Some(name))
}

fn item_attrs(item: &syn::Item) -> Option<&[syn::Attribute]> {
    Some(match item {
        syn::Item::Struct(s) => &s.attrs,
        syn::Item::Enum(e) => &e.attrs,
        syn::Item::Const(c) => &c.attrs,
        syn::Item::Use(u) => &u.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Type(t) => &t.attrs,
        _ => return None,
    })
}

fn strip_dsl<T>(mut item: T, attrs: impl Fn(&mut T) -> &mut Vec<syn::Attribute>) -> T {
    attrs(&mut item).retain(|a| !is_dsl_attr(a));
    item
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
