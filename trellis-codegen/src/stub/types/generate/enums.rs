//! Enums from `oneOf` (internally, adjacently or externally tagged) and
//! `anyOf` (untagged) schemas, and their variants.

use std::collections::BTreeSet;

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::{Gen, doc, pointer_token};
use crate::stub::types::StubTypeError;
use crate::stub::types::classify::{Kind, ObjectShape, classify, const_tag};
use crate::stub::types::names::{pascal_case, unique_ident, unraw};
use trellis_manifest::json::{Json, Object};

impl Gen<'_> {
    /// A `oneOf`: internally, adjacently or externally tagged enum.
    pub(super) fn tagged_enum(
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
    pub(super) fn untagged_enum(
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

pub(super) fn unit_variant(wire: &str, used: &mut BTreeSet<String>) -> TokenStream {
    let (ident, head) = variant_head(wire, used);
    quote!(#head #ident)
}
