//! Writes the Rust definitions: [`Gen`] walks each schema, reusing types
//! for equal shapes, naming nested ones `<Parent><Field>`, and falling back
//! to a documented `serde_json::Value` where no mapping is faithful.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::classify::{Kind, ObjectShape, classify, const_tag};
use super::names::{make_ident, pascal_case, snake_case, unique_ident, unraw};
use super::{Formats, StubTypeError};
use trellis_manifest::json::{Json, Object};

/// The largest fixed-size array serde implements (de)serialization for.
const MAX_SERDE_ARRAY: u64 = 32;

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub(super) fn doc(text: &str) -> TokenStream {
    quote!(#[doc = #text])
}

/// Why the node at `path` is typed `serde_json::Value`.
pub(super) fn fallback_note(path: &str, reason: &str) -> String {
    format!(" Untyped (`serde_json::Value`) at `{path}`: {reason}.")
}

/// Doc lines for fallback notes (after an empty line), or nothing.
pub(super) fn notes_doc(notes: &[String]) -> TokenStream {
    if notes.is_empty() {
        return TokenStream::new();
    }
    quote!(#[doc = ""] #(#[doc = #notes])*)
}

pub(super) fn derives() -> TokenStream {
    quote!(#[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)])
}

pub(super) struct Gen<'a> {
    pub(super) contract: &'a str,
    /// Which format-annotated strings get a well-known Rust type.
    pub(super) formats: Formats,
    /// The top-level schema being generated (for errors).
    pub(super) schema: String,
    /// Canonical text of top-level schemas that need their own type -> Rust name.
    pub(super) top_by_shape: BTreeMap<String, String>,
    /// Canonical text of `trellis::ReceiveGrant`'s schema.
    pub(super) grant: String,
    /// Type names in use.
    pub(super) taken: BTreeSet<String>,
    /// Canonical text of generated nested types -> name.
    pub(super) nested_by_shape: BTreeMap<String, String>,
    pub(super) nested_defs: BTreeMap<String, TokenStream>,
    /// Why nodes under the field or type being generated fell back to
    /// `serde_json::Value` (attached to its doc comment).
    pub(super) notes: Vec<String>,
}

impl Gen<'_> {
    fn err(&self, path: &str, reason: impl Into<String>) -> StubTypeError {
        StubTypeError::Unsupported {
            contract: self.contract.to_owned(),
            schema: self.schema.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn classify<'s>(&self, json: &'s Json, path: &str) -> Result<Kind<'s>, StubTypeError> {
        classify(json).map_err(|reason| self.err(path, reason))
    }

    /// The Rust type of a schema node; `hint` names a nested type if needed.
    /// A node without a faithful mapping is `serde_json::Value`, noted in
    /// [`Gen::notes`].
    fn rust_type(
        &mut self,
        json: &Json,
        path: &str,
        hint: &str,
    ) -> Result<TokenStream, StubTypeError> {
        match self.mapped_type(json, path, hint) {
            Err(StubTypeError::Unsupported { path, reason, .. }) => {
                self.notes.push(fallback_note(&path, &reason));
                Ok(quote!(::serde_json::Value))
            }
            other => other,
        }
    }

    /// [`Gen::rust_type`] without the fallback at this node.
    fn mapped_type(
        &mut self,
        json: &Json,
        path: &str,
        hint: &str,
    ) -> Result<TokenStream, StubTypeError> {
        if let Some((ty, _)) = self.formats.typed(json) {
            return Ok(ty);
        }
        Ok(match self.classify(json, path)? {
            Kind::Any => quote!(::serde_json::Value),
            Kind::Null => quote!(()),
            Kind::Bool => quote!(bool),
            Kind::Number => quote!(f64),
            Kind::Integer(int) => int.tokens(),
            Kind::String => quote!(String),
            Kind::Char => quote!(char),
            Kind::StringEnum(_) | Kind::Object(_) | Kind::OneOf(_) | Kind::AnyOf(_) => {
                self.named(json, path, hint)?
            }
            Kind::Nullable(inner) => {
                let inner = self.rust_type(inner, &format!("{path}/anyOf/0"), hint)?;
                quote!(Option<#inner>)
            }
            Kind::OpenObject => {
                quote!(::serde_json::Map<::std::string::String, ::serde_json::Value>)
            }
            Kind::Map(values) => {
                let values =
                    self.rust_type(values, &format!("{path}/additionalProperties"), hint)?;
                quote!(::std::collections::BTreeMap<String, #values>)
            }
            Kind::Array { items, unique, len } => {
                let items_path = format!("{path}/items");
                if unique {
                    // Every typed format's type is `Ord` too.
                    let ordered = self.formats.typed(items).is_some()
                        || matches!(
                            self.classify(items, &items_path)?,
                            Kind::Bool | Kind::Integer(_) | Kind::String | Kind::Char
                        );
                    if !ordered {
                        return Err(self.err(
                            path,
                            "`uniqueItems` arrays are supported for strings, integers, chars and \
                             booleans only (as `BTreeSet<T>`)",
                        ));
                    }
                }
                let item = self.rust_type(items, &items_path, hint)?;
                match len {
                    _ if unique => quote!(::std::collections::BTreeSet<#item>),
                    None => quote!(Vec<#item>),
                    Some(n) if n <= MAX_SERDE_ARRAY => {
                        let n = Literal::u64_unsuffixed(n);
                        quote!([#item; #n])
                    }
                    Some(n) => {
                        return Err(self.err(
                            path,
                            format!(
                                "a fixed-length array of {n} items: serde supports `[T; N]` up to \
                                 N = {MAX_SERDE_ARRAY}"
                            ),
                        ));
                    }
                }
            }
        })
    }

    /// The name of the type of an object/enum node: `::trellis::ReceiveGrant`,
    /// an equal top-level schema, or a (possibly new) nested type.
    fn named(&mut self, json: &Json, path: &str, hint: &str) -> Result<TokenStream, StubTypeError> {
        let shape = json.to_canonical_string();
        if shape == self.grant {
            return Ok(quote!(::trellis::ReceiveGrant));
        }
        if let Some(name) = self
            .top_by_shape
            .get(&shape)
            .or_else(|| self.nested_by_shape.get(&shape))
        {
            let ident = make_ident(name);
            return Ok(quote!(#ident));
        }
        let ident = unique_ident(hint, "", &mut self.taken);
        let name = unraw(&ident);
        self.nested_by_shape.insert(shape.clone(), name.clone());
        let text = format!(
            " Nested at `{path}` of schema `{}` of contract `{}`.",
            self.schema, self.contract
        );
        match self.definition(&ident, json, path, &text, false) {
            Ok(def) => {
                self.nested_defs.insert(name, def);
                Ok(quote!(#ident))
            }
            Err(e) => {
                self.nested_by_shape.remove(&shape);
                Err(e)
            }
        }
    }

    /// The top-level schema name or `ReceiveGrant` an object equals, if any.
    fn known_name(&self, json: &Json) -> Option<String> {
        let shape = json.to_canonical_string();
        if shape == self.grant {
            return Some("ReceiveGrant".to_owned());
        }
        self.top_by_shape.get(&shape).cloned()
    }

    pub(super) fn definition(
        &mut self,
        ident: &Ident,
        json: &Json,
        path: &str,
        text: &str,
        top: bool,
    ) -> Result<TokenStream, StubTypeError> {
        let outer = std::mem::take(&mut self.notes);
        let def = self.definition_body(ident, json, path, top);
        let notes = std::mem::replace(&mut self.notes, outer);
        let (attrs, body) = def?;
        let doc = doc(text);
        let notes = notes_doc(&notes);
        let derives = derives();
        Ok(quote! {
            #doc
            #notes
            #derives
            #attrs
            #body
        })
    }

    /// The attributes after the derives and the item of [`Gen::definition`].
    fn definition_body(
        &mut self,
        ident: &Ident,
        json: &Json,
        path: &str,
        top: bool,
    ) -> Result<(TokenStream, TokenStream), StubTypeError> {
        let name = unraw(ident);
        if top && let Some((ty, _)) = self.formats.typed(json) {
            return Ok((TokenStream::new(), quote!(pub struct #ident(pub #ty);)));
        }
        match self.classify(json, path)? {
            Kind::Object(shape) => {
                let fields = self.fields(&shape, path, &name, None, true)?;
                Ok((
                    TokenStream::new(),
                    quote!(pub struct #ident { #(#fields,)* }),
                ))
            }
            Kind::StringEnum(values) => {
                let mut used = BTreeSet::new();
                let variants = values.iter().map(|v| unit_variant(v, &mut used));
                let variants: Vec<TokenStream> = variants.collect();
                Ok((
                    TokenStream::new(),
                    quote!(pub enum #ident { #(#variants,)* }),
                ))
            }
            Kind::OneOf(branches) => {
                let (attr, variants) = self.tagged_enum(branches, path, &name)?;
                Ok((attr, quote!(pub enum #ident { #(#variants,)* })))
            }
            Kind::AnyOf(branches) => {
                let variants = self.untagged_enum(branches, path, &name)?;
                Ok((
                    quote!(#[serde(untagged)]),
                    quote!(pub enum #ident { #(#variants,)* }),
                ))
            }
            Kind::Null if top => Ok((TokenStream::new(), quote!(pub struct #ident;))),
            _ if top => {
                let inner = self.rust_type(json, path, &format!("{name}Inner"))?;
                Ok((TokenStream::new(), quote!(pub struct #ident(pub #inner);)))
            }
            _ => Err(self.err(path, "internal: this schema does not need its own type")),
        }
    }

    /// Fields of an object (`skip` leaves out an internal tag property).
    fn fields(
        &mut self,
        shape: &ObjectShape<'_>,
        path: &str,
        parent: &str,
        skip: Option<&str>,
        public: bool,
    ) -> Result<Vec<TokenStream>, StubTypeError> {
        // Struct fields are `pub`; variant fields cannot have a visibility.
        let vis = if public {
            quote!(pub)
        } else {
            TokenStream::new()
        };
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        for (wire, schema) in shape.properties {
            if Some(wire.as_str()) == skip {
                continue;
            }
            let field_path = format!("{path}/properties/{}", pointer_token(wire));
            let ident = unique_ident(&snake_case(wire), "_", &mut used);
            let hint = format!("{parent}{}", pascal_case(wire));
            let required = shape.is_required(wire);
            let nullable = match classify(schema) {
                Ok(Kind::Nullable(inner)) => Some(inner),
                _ => None,
            };
            let outer = std::mem::take(&mut self.notes);
            let mut serde_args = Vec::new();
            if unraw(&ident) != *wire {
                serde_args.push(quote!(rename = #wire));
            }
            let (ty, text) = match (required, nullable) {
                (true, None) => (
                    self.rust_type(schema, &field_path, &hint)?,
                    format!(" Required field `{wire}`."),
                ),
                (true, Some(_)) => (
                    self.rust_type(schema, &field_path, &hint)?,
                    format!(" Required field `{wire}`; `None` is sent as `null`."),
                ),
                (false, inner) => {
                    let ty = match inner {
                        Some(inner) => {
                            self.rust_type(inner, &format!("{field_path}/anyOf/0"), &hint)?
                        }
                        None => self.rust_type(schema, &field_path, &hint)?,
                    };
                    serde_args.push(quote!(default));
                    serde_args.push(quote!(
                        skip_serializing_if = "::std::option::Option::is_none"
                    ));
                    (
                        quote!(Option<#ty>),
                        format!(" Optional field `{wire}`; omitted when `None`."),
                    )
                }
            };
            let notes = std::mem::replace(&mut self.notes, outer);
            let format = match nullable {
                Some(inner) => inner.get("format"),
                None => schema.get("format"),
            };
            let text = match format.and_then(Json::as_str) {
                Some(format) => format!("{text} Format `{format}`."),
                None => text,
            };
            let doc = doc(&text);
            let notes = notes_doc(&notes);
            let serde_attr = if serde_args.is_empty() {
                TokenStream::new()
            } else {
                quote!(#[serde(#(#serde_args),*)])
            };
            out.push(quote!(#doc #notes #serde_attr #vis #ident: #ty));
        }
        if let Some(extra) = shape.additional {
            let ident = unique_ident("extra", "_", &mut used);
            let hint = format!("{parent}Extra");
            let outer = std::mem::take(&mut self.notes);
            let values = self.rust_type(extra, &format!("{path}/additionalProperties"), &hint);
            let notes = std::mem::replace(&mut self.notes, outer);
            let values = values?;
            let doc = doc(" Any other fields.");
            let notes = notes_doc(&notes);
            out.push(quote! {
                #doc
                #notes
                #[serde(flatten)]
                #vis #ident: ::std::collections::BTreeMap<String, #values>
            });
        }
        Ok(out)
    }

    /// A `oneOf`: internally, adjacently or externally tagged enum.
    fn tagged_enum(
        &mut self,
        branches: &[Json],
        path: &str,
        name: &str,
    ) -> Result<(TokenStream, Vec<TokenStream>), StubTypeError> {
        let mut kinds = Vec::with_capacity(branches.len());
        for (i, branch) in branches.iter().enumerate() {
            kinds.push(self.classify(branch, &format!("{path}/oneOf/{i}"))?);
        }
        let objects: Vec<&ObjectShape<'_>> = kinds
            .iter()
            .filter_map(|k| match k {
                Kind::Object(o) => Some(o),
                _ => None,
            })
            .collect();
        if objects.len() == kinds.len() {
            // Tag candidates: required `const` string properties of every branch.
            let mut tags: Option<BTreeSet<&str>> = None;
            for object in &objects {
                let here: BTreeSet<&str> = object
                    .properties
                    .iter()
                    .filter(|(k, v)| object.is_required(k) && const_tag(v).is_some())
                    .map(|(k, _)| k.as_str())
                    .collect();
                tags = Some(match tags {
                    None => here,
                    Some(prev) => prev.intersection(&here).copied().collect(),
                });
            }
            let tags: Vec<&str> = tags.unwrap_or_default().into_iter().collect();
            if tags.len() > 1 {
                return Err(self.err(
                    path,
                    format!(
                        "`oneOf` branches share several constant properties ({}); the tag is ambiguous",
                        tags.join(", ")
                    ),
                ));
            }
            if let Some(tag) = tags.first().copied() {
                return self.internal_or_adjacent(&objects, tag, path, name);
            }
        }
        self.external(&kinds, path, name)
    }

    fn internal_or_adjacent(
        &mut self,
        objects: &[&ObjectShape<'_>],
        tag: &str,
        path: &str,
        name: &str,
    ) -> Result<(TokenStream, Vec<TokenStream>), StubTypeError> {
        let mut values = BTreeSet::new();
        for (i, object) in objects.iter().enumerate() {
            let value = object.properties.get(tag).and_then(const_tag).unwrap_or("");
            if !values.insert(value) {
                return Err(self.err(
                    &format!("{path}/oneOf/{i}"),
                    format!("tag value `{value}` appears in two branches"),
                ));
            }
        }
        // Adjacent: every branch is `{tag}` or `{tag, content}` (content required).
        let mut content: Option<&str> = None;
        let mut adjacent = true;
        for object in objects {
            if object.additional.is_some() {
                adjacent = false;
            }
            for key in object.properties.keys().filter(|k| k.as_str() != tag) {
                if !object.is_required(key) || content.is_some_and(|c| c != key) {
                    adjacent = false;
                }
                content = Some(key);
            }
        }
        let mut used = BTreeSet::new();
        let mut variants = Vec::new();
        match content {
            Some(content) if adjacent => {
                for (i, object) in objects.iter().enumerate() {
                    let value = object.properties.get(tag).and_then(const_tag).unwrap_or("");
                    let body = object.properties.get(content);
                    let body_path =
                        format!("{path}/oneOf/{i}/properties/{}", pointer_token(content));
                    variants.push(self.variant(value, body, &body_path, name, &mut used)?);
                }
                Ok((quote!(#[serde(tag = #tag, content = #content)]), variants))
            }
            _ => {
                for (i, object) in objects.iter().enumerate() {
                    let value = object.properties.get(tag).and_then(const_tag).unwrap_or("");
                    let branch_path = format!("{path}/oneOf/{i}");
                    let (ident, head) = variant_head(value, &mut used);
                    let variant_name = format!("{name}{}", unraw(&ident));
                    let rest = object
                        .properties
                        .keys()
                        .filter(|k| k.as_str() != tag)
                        .count();
                    let body = if object.additional.is_some() {
                        // Only a newtype variant keeps the extra-fields map.
                        let mut schema = Object::new();
                        schema.insert("type".into(), Json::str("object"));
                        let mut props = object.properties.clone();
                        props.remove(tag);
                        schema.insert("properties".into(), Json::Object(props));
                        let required: Vec<&str> = object
                            .required
                            .iter()
                            .copied()
                            .filter(|r| *r != tag)
                            .collect();
                        if !required.is_empty() {
                            schema.insert("required".into(), Json::strings(required));
                        }
                        if let Some(extra) = object.additional {
                            schema.insert("additionalProperties".into(), extra.clone());
                        }
                        let ty = self.named(&Json::Object(schema), &branch_path, &variant_name)?;
                        quote!((#ty))
                    } else if rest == 0 {
                        TokenStream::new()
                    } else {
                        let fields =
                            self.fields(object, &branch_path, &variant_name, Some(tag), false)?;
                        quote!({ #(#fields,)* })
                    };
                    variants.push(quote!(#head #ident #body));
                }
                Ok((quote!(#[serde(tag = #tag)]), variants))
            }
        }
    }

    /// A variant whose body (if any) is a struct variant when the body is a
    /// plain object that is not a known type, else a newtype variant.
    fn variant(
        &mut self,
        wire: &str,
        body: Option<&Json>,
        body_path: &str,
        enum_name: &str,
        used: &mut BTreeSet<String>,
    ) -> Result<TokenStream, StubTypeError> {
        let (ident, head) = variant_head(wire, used);
        let variant_name = format!("{enum_name}{}", unraw(&ident));
        let Some(body) = body else {
            return Ok(quote!(#head #ident));
        };
        match classify(body) {
            Ok(Kind::Object(shape))
                if shape.additional.is_none() && self.known_name(body).is_none() =>
            {
                let fields = self.fields(&shape, body_path, &variant_name, None, false)?;
                Ok(quote!(#head #ident { #(#fields,)* }))
            }
            _ => {
                let ty = self.rust_type(body, body_path, &variant_name)?;
                Ok(quote!(#head #ident(#ty)))
            }
        }
    }

    fn external(
        &mut self,
        kinds: &[Kind<'_>],
        path: &str,
        name: &str,
    ) -> Result<(TokenStream, Vec<TokenStream>), StubTypeError> {
        let mut used = BTreeSet::new();
        let mut wire_names = BTreeSet::new();
        let mut variants = Vec::new();
        let mut seen_units = false;
        for (i, kind) in kinds.iter().enumerate() {
            let branch_path = format!("{path}/oneOf/{i}");
            match kind {
                Kind::StringEnum(values) if !seen_units => {
                    seen_units = true;
                    for value in values {
                        if !wire_names.insert(*value) {
                            return Err(
                                self.err(&branch_path, format!("variant `{value}` appears twice"))
                            );
                        }
                        variants.push(unit_variant(value, &mut used));
                    }
                }
                Kind::Object(shape)
                    if shape.properties.len() == 1
                        && shape.required.len() == 1
                        && shape.additional.is_none() =>
                {
                    let Some((wire, body)) = shape.properties.iter().next() else {
                        continue;
                    };
                    if !wire_names.insert(wire.as_str()) {
                        return Err(
                            self.err(&branch_path, format!("variant `{wire}` appears twice"))
                        );
                    }
                    let body_path = format!("{branch_path}/properties/{}", pointer_token(wire));
                    variants.push(self.variant(wire, Some(body), &body_path, name, &mut used)?);
                }
                _ => {
                    return Err(self.err(
                        &branch_path,
                        "`oneOf` branch is neither a tagged variant (an object with one required \
                         `const` tag property shared by all branches, or one required property \
                         naming the variant) nor a list of unit variants",
                    ));
                }
            }
        }
        Ok((TokenStream::new(), variants))
    }

    /// An `anyOf` that is not `[T, null]`: an untagged enum.
    fn untagged_enum(
        &mut self,
        branches: &[Json],
        path: &str,
        name: &str,
    ) -> Result<Vec<TokenStream>, StubTypeError> {
        let mut used = BTreeSet::new();
        let mut variants = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            let branch_path = format!("{path}/anyOf/{i}");
            let Ok(kind) = classify(branch) else {
                let ident = unique_ident("Value", "", &mut used);
                let ty = self.rust_type(branch, &branch_path, name)?;
                let text = format!(" Branch {i} of the untagged union.");
                let doc = doc(&text);
                variants.push(quote!(#doc #ident(#ty)));
                continue;
            };
            let typed = self.formats.typed(branch).map(|(_, name)| name);
            let known = if kind.needs_own_type() && typed.is_none() {
                self.known_name(branch)
            } else {
                None
            };
            let base = known
                .clone()
                .unwrap_or_else(|| typed.unwrap_or(kind.variant_name()).to_owned());
            let ident = unique_ident(&base, "", &mut used);
            let text = format!(" Branch {i} of the untagged union.");
            let doc = doc(&text);
            let hint = format!("{name}{}", unraw(&ident));
            variants.push(match kind {
                Kind::Null => quote!(#doc #ident),
                Kind::Object(shape) if shape.additional.is_none() && known.is_none() => {
                    let fields = self.fields(&shape, &branch_path, &hint, None, false)?;
                    quote!(#doc #ident { #(#fields,)* })
                }
                _ => {
                    let ty = self.rust_type(branch, &branch_path, &hint)?;
                    quote!(#doc #ident(#ty))
                }
            });
        }
        Ok(variants)
    }
}

/// The identifier and doc/rename attributes of a variant with wire name `wire`.
fn variant_head(wire: &str, used: &mut BTreeSet<String>) -> (Ident, TokenStream) {
    let mut base = pascal_case(wire);
    if base.is_empty() {
        base = "Empty".to_owned();
    } else if base.starts_with(|c: char| c.is_ascii_digit()) {
        base = format!("V{base}");
    }
    let ident = unique_ident(&base, "", used);
    let text = format!(" Variant `{wire}`.");
    let doc = doc(&text);
    let rename = if unraw(&ident) == wire {
        TokenStream::new()
    } else {
        quote!(#[serde(rename = #wire)])
    };
    (ident, quote!(#doc #rename))
}

fn unit_variant(wire: &str, used: &mut BTreeSet<String>) -> TokenStream {
    let (ident, head) = variant_head(wire, used);
    quote!(#head #ident)
}
