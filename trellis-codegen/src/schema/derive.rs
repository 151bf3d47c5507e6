//! A schema type's serde container as JSON Schema: the container attributes
//! serde accepts here, struct and enum bodies (every tagging), and fields
//! (renames, defaults, flattening, stated schemas).

use proc_macro2::Span;
use serde_derive_internals::{Ctxt, Derive, ast, attr};
use syn::spanned::Spanned as _;

use super::{Deriver, err, hatch, is_option, obj, object_schema, tag_schema, ty};
use trellis_manifest::json::{Json, Object};

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

impl<'a> Deriver<'a> {
    pub(super) fn container(&mut self, input: &syn::DeriveInput) -> syn::Result<Json> {
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
}
