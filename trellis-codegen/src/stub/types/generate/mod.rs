//! Writes the Rust definitions: [`Gen`] walks each schema, reusing types
//! for equal shapes, naming nested ones `<Parent><Field>`, and falling back
//! to a documented `serde_json::Value` where no mapping is faithful. This
//! file holds types, definitions and struct fields; `enums` the enums.

mod enums;

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::classify::{Kind, ObjectShape, classify};
use super::names::{make_ident, pascal_case, snake_case, unique_ident, unraw};
use super::{Formats, StubTypeError};
use enums::unit_variant;
use trellis_manifest::json::Json;

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
}
