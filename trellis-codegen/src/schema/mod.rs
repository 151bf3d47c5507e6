//! JSON Schema derived syntactically from a contract module's schema types.
//!
//! Serde's own attribute parser (`serde_derive_internals`) decides names,
//! tagging, defaults and flattening, so the schema describes exactly what
//! `serde_json` puts on the wire. Schemas are self-contained: other schema
//! types of the module are inlined (no `$ref`), so recursive types are
//! rejected. Doc comments are deliberately not copied into schemas: schemas
//! are part of the digest, and editing a comment must not change it.
//!
//! Types from other crates are read by the full path they name (through the
//! module's own `use`s, `imports`): a schema stated with
//! `#[trellis(schema = ...)]` (`hatch`) wins, then the well-known types
//! ([`known`]); anything else is an error that shows the attribute to write.
//!
//! This file holds the public face ([`SchemaTypes`], [`Library`]) and the
//! small JSON builders the children share; `derive` reads a serde container
//! into its schema and `types` maps a Rust type expression to one.

mod derive;
mod generic;
mod hatch;
mod imports;
pub mod known;
mod library;
#[cfg(test)]
mod tests;
mod types;

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::spanned::Spanned as _;

use trellis_manifest::json::{Json, Object};

pub use generic::{EMPTY, empty_schema};
pub(crate) use hatch::{misplaced as misplaced_hatches, strip as strip_hatches};
use imports::Imports;
pub use library::{
    has_serde_derives, is_schema_attr, load as load_library, locate as locate_library, module_types,
};

/// The schema types of a module, by Rust name, and what the module imports.
#[derive(Default)]
pub struct SchemaTypes {
    items: BTreeMap<String, syn::DeriveInput>,
    imports: Imports,
    /// Schemas stated once for the module, by full type path.
    stated: BTreeMap<Vec<String>, Json>,
    /// Shared schema modules this module may name (`schemas = "..."`).
    library: Library,
}

/// Shared schema modules (`#[trellis::schema] mod name { ... }`), by module
/// name. A contract names their types through a path ending in
/// `<module>::<Type>` (usually via a `use`).
#[derive(Default)]
pub struct Library {
    modules: BTreeMap<String, SchemaTypes>,
}

impl Library {
    /// The shared module declaring the type a full path names (its last two
    /// segments are `<module>::<Type>`), with the type's name.
    fn home<'p>(&self, full: &'p [String]) -> Option<(&SchemaTypes, &'p str)> {
        let [.., module, item] = full else {
            return None;
        };
        let home = self.modules.get(module)?;
        home.contains(item).then_some((home, item.as_str()))
    }
}

impl SchemaTypes {
    /// Registers a struct or enum.
    pub fn insert(&mut self, name: String, input: syn::DeriveInput) {
        self.items.insert(name, input);
    }

    /// Records a `use` item: the names it imports, and the schema it states
    /// for its type with `#[trellis(schema = ...)]`.
    pub fn add_use(&mut self, item: &syn::ItemUse) -> syn::Result<()> {
        self.imports.add(item);
        let Some(given) = hatch::given(&item.attrs)? else {
            return Ok(());
        };
        let mut names = imports::flatten(&item.tree).into_iter();
        let (Some(Ok(one)), None) = (names.next(), names.next()) else {
            return Err(err(
                item.tree.span(),
                "a `use` carrying `#[trellis(schema = ...)]` imports exactly one type, \
                 e.g. `use semver::Version;`: split the import",
            ));
        };
        let path = imports::normalized(one.path);
        if self.stated.insert(path.clone(), given.schema).is_some() {
            return Err(err(
                given.span,
                format!(
                    "the schema of `{}` is stated twice in this module; keep one",
                    path.join("::")
                ),
            ));
        }
        Ok(())
    }

    /// Makes the types of shared schema modules nameable from this module.
    pub fn set_library(&mut self, library: Library) {
        self.library = library;
    }

    /// Whether `ident`, as this module imports it, names a type of a shared
    /// schema module.
    pub fn is_shared(&self, ident: &syn::Ident) -> bool {
        let full = self.imports.resolve(&syn::Path::from(ident.clone()));
        self.library.home(&full).is_some()
    }

    /// Whether `name` is a schema type.
    pub fn contains(&self, name: &str) -> bool {
        self.items.contains_key(name)
    }

    /// Every schema type name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.items.keys()
    }

    /// Derives the schema of every concrete type, and of every instance of a
    /// generic type (`Page<Task>`) the types use, under its expression name
    /// (`PageOfTask`). Errors are spanned at the offending type, field or
    /// attribute.
    pub fn derive_all(&self) -> (BTreeMap<String, Json>, Vec<syn::Error>) {
        let mut out = BTreeMap::new();
        let mut instances = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, input) in &self.items {
            if !input.generics.params.is_empty() {
                // Derived per instance; only the parameters are checked here.
                if let Err(e) = generic::type_params(input) {
                    errors.push(e);
                }
                continue;
            }
            let mut cx = Deriver::new(self);
            cx.stack.push(name.clone());
            match cx.container(input) {
                Ok(schema) => {
                    out.insert(name.clone(), schema);
                    instances.append(&mut cx.instances);
                }
                Err(e) => errors.push(e),
            }
        }
        for (name, schema) in instances {
            out.entry(name).or_insert(schema);
        }
        (out, errors)
    }

    /// The manifest schema name of a type written at a surface position (an
    /// RPC or operation input or output), and the named schemas it needs
    /// beyond the module's declared types: the expression's own (unless it
    /// is a declared type) and those of the generic instances it uses.
    pub fn surface_schema(&self, ty: &syn::Type) -> syn::Result<(String, BTreeMap<String, Json>)> {
        if let syn::Type::Path(p) = ty
            && p.qself.is_none()
            && let Some(ident) = p.path.get_ident()
            && self
                .items
                .get(&ident.to_string())
                .is_some_and(|i| i.generics.params.is_empty())
        {
            return Ok((ident.to_string(), BTreeMap::new()));
        }
        let mut cx = Deriver::new(self);
        let schema = cx.type_schema(ty)?;
        let name = cx.name_of(ty)?;
        let mut named = cx.instances;
        named.insert(name.clone(), schema);
        Ok((name, named))
    }
}

struct Deriver<'a> {
    /// The module whose declarations are being read.
    types: &'a SchemaTypes,
    /// The shared schema modules the contract may name.
    library: &'a Library,
    stack: Vec<String>,
    /// Generic instances derived so far, by expression name.
    instances: BTreeMap<String, Json>,
    /// The type parameters of the generic being derived: argument name and
    /// schema.
    bound: BTreeMap<String, (String, Json)>,
}

impl<'a> Deriver<'a> {
    fn new(types: &'a SchemaTypes) -> Self {
        Deriver {
            types,
            library: &types.library,
            stack: Vec::new(),
            instances: BTreeMap::new(),
            bound: BTreeMap::new(),
        }
    }
}

fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

fn obj(pairs: impl IntoIterator<Item = (&'static str, Json)>) -> Json {
    Json::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn ty(name: &str) -> Json {
    obj([("type", Json::str(name))])
}

fn tag_schema(value: &str) -> Json {
    obj([("type", Json::str("string")), ("const", Json::str(value))])
}

fn object_schema(properties: Object, mut required: Vec<String>) -> Json {
    let mut map = Object::new();
    map.insert("type".into(), Json::str("object"));
    map.insert("properties".into(), Json::Object(properties));
    required.sort();
    required.dedup();
    if !required.is_empty() {
        map.insert("required".into(), Json::strings(required));
    }
    Json::Object(map)
}

/// The schema of `trellis::ReceiveGrant` (the runtime's serde shape;
/// checked against real values in the runtime's tests).
pub fn receive_grant_schema() -> Json {
    let string = || ty("string");
    let count = || obj([("type", Json::str("integer")), ("minimum", Json::uint(0))]);
    let mut properties = Object::new();
    properties.insert("id".into(), string());
    properties.insert("size".into(), count());
    properties.insert("digest".into(), string());
    properties.insert("expiresAtMs".into(), count());
    object_schema(
        properties,
        vec![
            "id".into(),
            "size".into(),
            "digest".into(),
            "expiresAtMs".into(),
        ],
    )
}

fn last_segment(ty: &syn::Type) -> Option<&syn::PathSegment> {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        syn::Type::Group(g) => last_segment(&g.elem),
        syn::Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// Whether the type is spelled `Option<...>`.
pub fn is_option(ty: &syn::Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Option")
}
