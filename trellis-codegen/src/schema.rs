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

mod generic;
mod hatch;
mod imports;
pub mod known;
mod library;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use proc_macro2::Span;
use serde_derive_internals::{Ctxt, Derive, ast, attr};
use syn::spanned::Spanned as _;

use trellis_manifest::json::{Json, Object};

pub use generic::{EMPTY, empty_schema};
pub(crate) use hatch::{misplaced as misplaced_hatches, strip as strip_hatches};
use imports::Imports;
use known::Mapping;
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
        matches!(full.as_slice(), [.., module, item]
            if self.library.modules.get(module).is_some_and(|m| m.contains(item)))
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

/// The span of `key` inside a `#[serde(...)]` attribute, e.g. the
/// `deny_unknown_fields` in `#[serde(deny_unknown_fields)]`.
fn serde_key_span(attrs: &[syn::Attribute], key: &str) -> Option<Span> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if found.is_none() && meta.path.is_ident(key) {
                found = Some(meta.path.span());
            }
            // Skip the value of `key = value` so parsing can continue.
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|_| Ok(()))?;
            }
            Ok(())
        });
    }
    found
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

fn generic_args(seg: &syn::PathSegment) -> Vec<&syn::Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

const SUPPORTED: &str = "supported: bool, String, char, integers, f32/f64, \
Option<T>, Vec<T>, VecDeque<T>, [T; N], HashSet/BTreeSet<T>, HashMap/BTreeMap<String, T>, \
Box/Arc/Rc<T>, serde_json::Value, (), trellis::ReceiveGrant, the schema types declared in \
this contract module and the well-known types (README: \"Types a contract may use\")";

impl<'a> Deriver<'a> {
    fn container(&mut self, input: &syn::DeriveInput) -> syn::Result<Json> {
        let cx = Ctxt::new();
        let private = syn::Ident::new("__private", Span::call_site());
        let container = ast::Container::from_ast(&cx, input, Derive::Deserialize, &private);
        cx.check()?;
        let Some(container) = container else {
            return Err(err(input.span(), "serde cannot derive this item"));
        };
        self.reject_container_attrs(input, &container.attrs)?;
        match &container.data {
            ast::Data::Struct(style, fields) => {
                if container.attrs.transparent() {
                    let field = fields
                        .iter()
                        .find(|f| !(f.attrs.skip_serializing() && f.attrs.skip_deserializing()))
                        .ok_or_else(|| {
                            err(input.ident.span(), "transparent struct has no field")
                        })?;
                    return self.field_type(field);
                }
                self.struct_body(*style, fields, &container.attrs, input.ident.span())
            }
            ast::Data::Enum(variants) => self.enum_body(input, &container.attrs, variants),
        }
    }

    fn reject_container_attrs(
        &self,
        input: &syn::DeriveInput,
        attrs: &attr::Container,
    ) -> syn::Result<()> {
        let span = input.ident.span();
        if attrs.deny_unknown_fields() {
            return Err(err(
                serde_key_span(&input.attrs, "deny_unknown_fields").unwrap_or(span),
                "`#[serde(deny_unknown_fields)]` is not allowed on contract schema types: wire objects \
                 stay open to unknown fields so additive rollouts work; remove it",
            ));
        }
        if let Some(t) = attrs
            .type_from()
            .or(attrs.type_try_from())
            .or(attrs.type_into())
        {
            return Err(err(
                t.span(),
                "`#[serde(from/try_from/into = ...)]` hides the wire shape from the contract; \
                 declare the wire type itself as the schema type instead",
            ));
        }
        if let Some(remote) = attrs.remote() {
            return Err(err(
                remote.span(),
                "`#[serde(remote = ...)]` is not supported in a contract; declare the type in the module",
            ));
        }
        if !matches!(attrs.identifier(), attr::Identifier::No) {
            return Err(err(
                serde_key_span(&input.attrs, "field_identifier")
                    .or_else(|| serde_key_span(&input.attrs, "variant_identifier"))
                    .unwrap_or(span),
                "`#[serde(field_identifier/variant_identifier)]` types are not wire types; remove the attribute",
            ));
        }
        Ok(())
    }

    fn check_field_attrs(&self, field: &ast::Field) -> syn::Result<()> {
        let span = field.original.span();
        let a = &field.attrs;
        let stated = field.original.attrs.iter().any(hatch::is_attr);
        if (a.serialize_with().is_some() || a.deserialize_with().is_some()) && !stated {
            return Err(err(
                span,
                format!(
                    "`#[serde(with/serialize_with/deserialize_with)]` changes the wire shape \
                     invisibly; use a schema type that serializes as intended, or state the \
                     shape it writes on the field: {}",
                    hatch::EXAMPLE
                ),
            ));
        }
        if a.getter().is_some() {
            return Err(err(
                span,
                "`#[serde(getter)]` is not supported in a contract",
            ));
        }
        if a.skip_serializing() != a.skip_deserializing() {
            return Err(err(
                span,
                "skipping a field in only one direction makes the wire shape asymmetric; \
                 use `#[serde(skip)]` or neither",
            ));
        }
        if a.name().serialize_name().value != a.name().deserialize_name().value {
            return Err(err(
                span,
                "a field must have the same name when serialized and deserialized; \
                 use `#[serde(rename = \"...\")]` (aliases are fine)",
            ));
        }
        Ok(())
    }

    /// The schema of a field's value: stated on the field, or its type's.
    fn field_type(&mut self, field: &ast::Field) -> syn::Result<Json> {
        let Some(given) = hatch::given(&field.original.attrs)? else {
            return self.type_schema(field.ty);
        };
        if is_option(field.ty) && field.attrs.skip_serializing_if().is_none() && !given.accepts_null
        {
            return Err(err(
                given.span,
                "this field is an `Option`, which serde writes as `null` when it is `None`, but \
                 the stated schema rejects `null`: allow it, e.g. \
                 `{\"anyOf\": [{...}, {\"type\": \"null\"}]}`, or skip `None` with \
                 `#[serde(default, skip_serializing_if = \"Option::is_none\")]`",
            ));
        }
        Ok(given.schema)
    }

    fn fields_object(
        &mut self,
        fields: &[ast::Field],
        container_default: &attr::Default,
    ) -> syn::Result<(Object, Vec<String>, Option<Json>)> {
        let mut properties = Object::new();
        let mut required = Vec::new();
        let mut additional = None;
        for field in fields {
            self.check_field_attrs(field)?;
            if field.attrs.skip_serializing() && field.attrs.skip_deserializing() {
                continue;
            }
            let schema = self.field_type(field)?;
            let optional_ty = is_option(field.ty);
            let has_default = !field.attrs.default().is_none() || !container_default.is_none();
            if field.attrs.flatten() {
                match schema.as_object() {
                    Some(map) if map.contains_key("properties") => {
                        if let Some(Json::Object(props)) = map.get("properties") {
                            for (k, v) in props {
                                properties.insert(k.clone(), v.clone());
                            }
                        }
                        if !optional_ty && let Some(Json::Array(req)) = map.get("required") {
                            required
                                .extend(req.iter().filter_map(|r| r.as_str().map(str::to_owned)));
                        }
                    }
                    Some(map) if map.contains_key("additionalProperties") => {
                        additional = map.get("additionalProperties").cloned();
                    }
                    _ => {
                        return Err(err(
                            field.original.span(),
                            "`#[serde(flatten)]` is supported on struct schema types of this module \
                             and on maps with String keys",
                        ));
                    }
                }
                continue;
            }
            let skip_if = field.attrs.skip_serializing_if();
            if skip_if.is_some() && !optional_ty && !has_default {
                return Err(err(
                    field.original.span(),
                    "`skip_serializing_if` without a default makes deserializing the omitted field fail; \
                     add `#[serde(default)]` to the field",
                ));
            }
            let name = field.attrs.name().serialize_name().value.clone();
            if !optional_ty && !has_default && skip_if.is_none() {
                required.push(name.clone());
            }
            properties.insert(name, schema);
        }
        Ok((properties, required, additional))
    }

    fn struct_body(
        &mut self,
        style: ast::Style,
        fields: &[ast::Field],
        attrs: &attr::Container,
        span: Span,
    ) -> syn::Result<Json> {
        match style {
            ast::Style::Struct => {
                if let attr::TagType::Internal { tag } = attrs.tag() {
                    return Err(err(
                        span,
                        format!(
                            "`#[serde(tag = \"{tag}\")]` on a struct is not supported in a contract; \
                             add the field explicitly"
                        ),
                    ));
                }
                let (properties, required, additional) =
                    self.fields_object(fields, attrs.default())?;
                let mut schema = object_schema(properties, required);
                if let (Some(extra), Some(map)) = (additional, schema.as_object_mut()) {
                    map.insert("additionalProperties".into(), extra);
                }
                Ok(schema)
            }
            ast::Style::Newtype => {
                let field = &fields[0];
                self.check_field_attrs(field)?;
                self.field_type(field)
            }
            ast::Style::Unit => Ok(ty("null")),
            ast::Style::Tuple => Err(err(
                span,
                "tuple structs with several fields have no self-describing JSON shape; \
                 use named fields",
            )),
        }
    }

    fn enum_body(
        &mut self,
        input: &syn::DeriveInput,
        attrs: &attr::Container,
        variants: &[ast::Variant],
    ) -> syn::Result<Json> {
        let tag = attrs.tag();
        let mut unit_names = Vec::new();
        let mut branches = Vec::new();
        for variant in variants {
            let a = &variant.attrs;
            if a.skip_serializing() && a.skip_deserializing() {
                continue;
            }
            let span = variant.original.span();
            if a.skip_serializing() != a.skip_deserializing() {
                return Err(err(
                    span,
                    "skipping a variant in only one direction is not supported; use `#[serde(skip)]`",
                ));
            }
            if a.serialize_with().is_some() || a.deserialize_with().is_some() {
                return Err(err(
                    span,
                    "`#[serde(with = ...)]` on a variant hides its wire shape; remove it",
                ));
            }
            if a.untagged() {
                return Err(err(
                    span,
                    "`#[serde(untagged)]` on a single variant is not supported; \
                     put it on the enum or remove it",
                ));
            }
            if a.name().serialize_name().value != a.name().deserialize_name().value {
                return Err(err(
                    span,
                    "a variant must have the same name both ways; use `#[serde(rename = \"...\")]`",
                ));
            }
            let name = a.name().serialize_name().value.clone();
            let body = match variant.style {
                ast::Style::Unit => None,
                ast::Style::Newtype => {
                    self.check_field_attrs(&variant.fields[0])?;
                    Some(self.field_type(&variant.fields[0])?)
                }
                ast::Style::Struct => {
                    let (props, req, _) =
                        self.fields_object(&variant.fields, &attr::Default::None)?;
                    Some(object_schema(props, req))
                }
                ast::Style::Tuple => {
                    return Err(err(
                        span,
                        "tuple variants have no self-describing JSON shape; use a struct variant",
                    ));
                }
            };
            match (tag, body) {
                (attr::TagType::External, None) => unit_names.push(name),
                (attr::TagType::External, Some(body)) => {
                    let mut props = Object::new();
                    props.insert(name.clone(), body);
                    branches.push(object_schema(props, vec![name]));
                }
                (attr::TagType::Internal { tag }, body) => {
                    let mut schema = match body {
                        None => object_schema(Object::new(), Vec::new()),
                        Some(b) if b.get("properties").is_some() => b,
                        Some(_) => {
                            return Err(err(
                                span,
                                "an internally tagged (`tag = \"...\"`) newtype variant must wrap a \
                                 struct schema type; use a struct variant",
                            ));
                        }
                    };
                    if let Some(map) = schema.as_object_mut() {
                        if let Some(Json::Object(props)) = map.get_mut("properties") {
                            props.insert(tag.clone(), tag_schema(&name));
                        }
                        let mut req: Vec<String> = map
                            .get("required")
                            .and_then(Json::as_array)
                            .map(|r| {
                                r.iter()
                                    .filter_map(|s| s.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        req.push(tag.clone());
                        req.sort();
                        req.dedup();
                        map.insert("required".into(), Json::strings(req));
                    }
                    branches.push(schema);
                }
                (attr::TagType::Adjacent { tag, content }, body) => {
                    let mut props = Object::new();
                    props.insert(tag.clone(), tag_schema(&name));
                    let mut req = vec![tag.clone()];
                    if let Some(body) = body {
                        props.insert(content.clone(), body);
                        req.push(content.clone());
                    }
                    branches.push(object_schema(props, req));
                }
                (attr::TagType::None, body) => branches.push(body.unwrap_or_else(|| ty("null"))),
            }
        }
        if !unit_names.is_empty() {
            let units = obj([
                ("type", Json::str("string")),
                ("enum", Json::strings(unit_names)),
            ]);
            if branches.is_empty() {
                return Ok(units);
            }
            branches.insert(0, units);
        }
        if branches.is_empty() {
            return Err(err(
                input.ident.span(),
                "an enum schema type needs at least one variant",
            ));
        }
        let key = if matches!(tag, attr::TagType::None) {
            "anyOf"
        } else {
            "oneOf"
        };
        Ok(obj([(key, Json::Array(branches))]))
    }

    /// Maps a Rust type to its schema.
    fn type_schema(&mut self, t: &syn::Type) -> syn::Result<Json> {
        match t {
            syn::Type::Group(g) => self.type_schema(&g.elem),
            syn::Type::Paren(p) => self.type_schema(&p.elem),
            syn::Type::Tuple(tuple) if tuple.elems.is_empty() => Ok(ty("null")),
            syn::Type::Array(array) => {
                let items = self.type_schema(&array.elem)?;
                let len = match &array.len {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(n),
                        ..
                    }) => n.base10_parse::<u64>()?,
                    other => {
                        return Err(err(
                            other.span(),
                            "array lengths in schema types must be integer literals",
                        ));
                    }
                };
                Ok(obj([
                    ("type", Json::str("array")),
                    ("items", items),
                    ("minItems", Json::uint(len)),
                    ("maxItems", Json::uint(len)),
                ]))
            }
            syn::Type::Path(p) if p.qself.is_none() => self.path_schema(t, &p.path),
            syn::Type::Reference(r) => Err(err(
                r.span(),
                "references are not allowed in schema types: schema types own their data; \
                 use `String` or `Vec<T>`",
            )),
            other => Err(err(
                other.span(),
                format!("this type cannot be described in a contract schema; {SUPPORTED}"),
            )),
        }
    }

    fn path_schema(&mut self, t: &syn::Type, path: &syn::Path) -> syn::Result<Json> {
        let Some(seg) = path.segments.last() else {
            return Err(err(t.span(), "empty type path"));
        };
        let name = seg.ident.to_string();
        let args = generic_args(seg);
        if path.segments.len() == 1
            && args.is_empty()
            && let Some((_, schema)) = self.bound.get(&name)
        {
            return Ok(schema.clone());
        }
        let one = |args: &[&syn::Type]| -> syn::Result<syn::Type> {
            args.first()
                .map(|t| (*t).clone())
                .ok_or_else(|| err(seg.span(), format!("`{name}` needs a type argument")))
        };
        let int = |signed: bool, bits: u32| -> Json {
            let mut map = Object::new();
            map.insert("type".into(), Json::str("integer"));
            if signed && bits < 64 {
                map.insert("minimum".into(), Json::int(-(1i64 << (bits - 1))));
                map.insert("maximum".into(), Json::int((1i64 << (bits - 1)) - 1));
            } else if !signed {
                map.insert("minimum".into(), Json::uint(0));
                if bits < 64 {
                    map.insert("maximum".into(), Json::uint((1u64 << bits) - 1));
                }
            }
            Json::Object(map)
        };
        if path.segments.len() == 1 || name == "Value" {
            match name.as_str() {
                "bool" => return Ok(ty("boolean")),
                "String" | "str" => return Ok(ty("string")),
                "char" => {
                    return Ok(obj([
                        ("type", Json::str("string")),
                        ("minLength", Json::uint(1)),
                        ("maxLength", Json::uint(1)),
                    ]));
                }
                "i8" => return Ok(int(true, 8)),
                "i16" => return Ok(int(true, 16)),
                "i32" => return Ok(int(true, 32)),
                "i64" | "isize" => return Ok(int(true, 64)),
                "u8" => return Ok(int(false, 8)),
                "u16" => return Ok(int(false, 16)),
                "u32" => return Ok(int(false, 32)),
                "u64" | "usize" => return Ok(int(false, 64)),
                // serde_json writes every digit; readers without big
                // integers lose precision beyond 2^53, as with 64 bits.
                "i128" => return Ok(int(true, 128)),
                "u128" => return Ok(int(false, 128)),
                "f32" | "f64" => return Ok(ty("number")),
                _ => {}
            }
        }
        if name == "ReceiveGrant"
            && path.segments.len() >= 2
            && path.segments.first().is_some_and(|s| s.ident == "trellis")
        {
            return Ok(receive_grant_schema());
        }
        let full = self.types.imports.resolve(path);
        if let Some(schema) = self.types.stated.get(&full) {
            return Ok(schema.clone());
        }
        if let [.., module, item] = full.as_slice()
            && let Some(home) = self.library.modules.get(module)
            && home.contains(item)
        {
            return self.declared(t, home, item, seg, &args);
        }
        if let Some(row) = known::lookup(&full) {
            return self.well_known(t, row, &args);
        }
        // An imported alias of a std container (`use std::collections::HashMap as Map`).
        let name = full.last().cloned().unwrap_or_else(|| name.clone());
        match name.as_str() {
            "Option" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([("anyOf", Json::Array(vec![inner, ty("null")]))]))
            }
            "Vec" | "VecDeque" | "LinkedList" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([("type", Json::str("array")), ("items", inner)]))
            }
            "HashSet" | "BTreeSet" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([
                    ("type", Json::str("array")),
                    ("items", inner),
                    ("uniqueItems", Json::Bool(true)),
                ]))
            }
            "HashMap" | "BTreeMap" => {
                let (Some(key), Some(value)) = (args.first(), args.get(1)) else {
                    return Err(err(
                        seg.span(),
                        format!("`{name}` needs key and value types"),
                    ));
                };
                if last_segment(key).is_none_or(|s| s.ident != "String") {
                    return Err(err(
                        key.span(),
                        "map keys in schema types must be `String` (JSON object keys are strings)",
                    ));
                }
                let inner = self.type_schema(value)?;
                Ok(obj([
                    ("type", Json::str("object")),
                    ("additionalProperties", inner),
                ]))
            }
            "Box" | "Arc" | "Rc" => self.type_schema(&one(&args)?),
            "Value"
                if path.segments.len() == 1
                    || path
                        .segments
                        .first()
                        .is_some_and(|s| s.ident == "serde_json") =>
            {
                if self.types.contains("Value") && path.segments.len() == 1 {
                    self.named(&name, seg.span())
                } else {
                    Ok(Json::object())
                }
            }
            _ if path.segments.len() == 1 && self.types.contains(&name) => {
                self.declared(t, self.types, &name, seg, &args)
            }
            _ => Err(syn::Error::new_spanned(
                t,
                hatch::unsupported(
                    &path
                        .segments
                        .iter()
                        .map(|s| s.ident.to_string())
                        .collect::<Vec<_>>()
                        .join("::"),
                    &full.join("::"),
                    self.types.imports.globs(),
                ),
            )),
        }
    }

    /// The schema of a well-known external type.
    fn well_known(
        &mut self,
        t: &syn::Type,
        row: &known::WellKnown,
        args: &[&syn::Type],
    ) -> syn::Result<Json> {
        let argument = || {
            args.first()
                .copied()
                .ok_or_else(|| err(t.span(), format!("`{}` needs a type argument", row.rust)))
        };
        match row.mapping {
            Mapping::Schema(text) => Json::parse(text).map_err(|e| {
                err(
                    t.span(),
                    format!("well-known schema of `{}`: {e}", row.rust),
                )
            }),
            Mapping::Argument => self.type_schema(argument()?),
            Mapping::NonZero(wrapped) => {
                let inner = match wrapped {
                    Some(primitive) => {
                        let ident = syn::Ident::new(primitive, t.span());
                        self.type_schema(&syn::parse_quote!(#ident))?
                    }
                    None => self.type_schema(argument()?)?,
                };
                known::non_zero(inner)
                    .ok_or_else(|| err(t.span(), format!("`{}` wraps an integer type", row.rust)))
            }
            Mapping::Refused { .. } => Err(syn::Error::new_spanned(
                t,
                known::refusal(row).unwrap_or_default(),
            )),
        }
    }

    /// A schema type declared in `home` (this module, or a shared schema
    /// module), written with `args`: a plain type, or an instance of a
    /// generic one. Arguments are derived here, in the writer's context;
    /// the declaration's body is derived in `home`'s, with each parameter
    /// bound to its argument's name and schema.
    fn declared(
        &mut self,
        t: &syn::Type,
        home: &'a SchemaTypes,
        name: &str,
        seg: &syn::PathSegment,
        args: &[&syn::Type],
    ) -> syn::Result<Json> {
        let Some(input) = home.items.get(name) else {
            return Err(err(seg.span(), format!("unknown schema type `{name}`")));
        };
        let params = generic::type_params(input)?;
        if params.is_empty() {
            if !args.is_empty() {
                return Err(err(
                    seg.arguments.span(),
                    format!("`{name}` has no type parameters: write `{name}`"),
                ));
            }
            return self.enter(name, seg.span(), home, input, BTreeMap::new());
        }
        let list = params
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if args.len() != params.len() {
            return Err(err(
                seg.span(),
                format!(
                    "`{name}` is generic over `{list}`: a contract schema is concrete, so name \
                     {} type argument{} here, e.g. `{name}<{}>`",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    params.iter().map(|_| "Task").collect::<Vec<_>>().join(", "),
                ),
            ));
        }
        let mut bound = BTreeMap::new();
        for (param, arg) in params.iter().zip(args) {
            if let Some(open) = generic::open_parameter(arg, &params)
                && !self.types.contains(&open.to_string())
                && !self.bound.contains_key(&open.to_string())
            {
                return Err(err(
                    open.span(),
                    format!(
                        "type parameter `{open}` is left open in `{name}<...>`: a manifest \
                         schema is concrete; name a concrete type here, e.g. `{name}<Task>` with \
                         `Task` a schema type of this module"
                    ),
                ));
            }
            let schema = self.type_schema(arg)?;
            bound.insert(param.to_string(), (self.name_of(arg)?, schema));
        }
        let instance_name = self.name_of(t)?;
        if let Some(done) = self.instances.get(&instance_name) {
            return Ok(done.clone());
        }
        let schema = self.enter(&instance_name, seg.span(), home, input, bound)?;
        self.instances.insert(instance_name, schema.clone());
        Ok(schema)
    }

    /// The manifest name of a type expression written in the current
    /// context (bound parameters read as their arguments' names).
    fn name_of(&self, t: &syn::Type) -> syn::Result<String> {
        generic::expression_name(t, &|p| {
            if let Some(ident) = p.get_ident()
                && let Some((name, _)) = self.bound.get(&ident.to_string())
            {
                return (vec![name.clone()], false);
            }
            let full = self.types.imports.resolve(p);
            let declared = match full.as_slice() {
                [one] => self.types.items.get(one),
                [.., module, item] => self
                    .library
                    .modules
                    .get(module)
                    .and_then(|m| m.items.get(item)),
                [] => None,
            };
            let generic = declared.is_some_and(|d| !d.generics.params.is_empty());
            (full, generic)
        })
    }

    fn named(&mut self, name: &str, span: Span) -> syn::Result<Json> {
        let types = self.types;
        let Some(input) = types.items.get(name) else {
            return Err(err(span, format!("unknown schema type `{name}`")));
        };
        self.enter(name, span, types, input, BTreeMap::new())
    }

    /// Derives `input` (declared in `home`) under `name` with `bound`
    /// parameters, refusing recursion through it.
    fn enter(
        &mut self,
        name: &str,
        span: Span,
        home: &'a SchemaTypes,
        input: &syn::DeriveInput,
        bound: BTreeMap<String, (String, Json)>,
    ) -> syn::Result<Json> {
        if self.stack.iter().any(|n| n == name) {
            let cycle = self.stack.join(" -> ");
            return Err(err(
                span,
                format!(
                    "recursive schema type `{name}` ({cycle} -> {name}): manifest schemas are \
                     self-contained without `$ref`, so recursion cannot be expressed; \
                     break the cycle (e.g. store child ids instead of children)"
                ),
            ));
        }
        self.stack.push(name.to_owned());
        let types = std::mem::replace(&mut self.types, home);
        let outer = std::mem::replace(&mut self.bound, bound);
        let result = self.container(input);
        self.bound = outer;
        self.types = types;
        self.stack.pop();
        result
    }
}
