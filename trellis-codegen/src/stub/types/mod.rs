//! Rust type definitions from a manifest's `schemas` (the inverse of
//! [`crate::schema`]): [`rust_types`] and its options ([`Formats`]); each
//! schema node is classified (`classify`), named (`names`) and written out
//! (`generate`).
//!
//! A peer crate that only has another team's manifest JSON gets typed structs
//! and enums with serde derives whose wire shape is the schema's. Nested
//! objects are inlined in manifest schemas (no `$ref`); an inlined object that
//! equals a top-level schema reuses that type, one that equals
//! [`crate::schema::receive_grant_schema`] becomes `::trellis::ReceiveGrant`,
//! and any other gets a generated name `<Parent><Field>`.
//!
//! Client view of optional fields: a property missing from `required` becomes
//! `Option<T>` with `#[serde(default, skip_serializing_if = "...::is_none")]`,
//! so `None` is never sent. Deriving a schema back from such a field gives
//! `anyOf [T, null]` (serde accepts `null` for an `Option`), which is the only
//! place where the round trip through [`crate::schema`] is not the identity.
//!
//! Beyond what [`crate::schema`] derives, other tools' schemas map too:
//! annotation keywords (`description`, `title`, ...) are ignored, a string
//! with `format`, `pattern` or length limits is a `String` (unless a
//! [`Formats`] option maps its format, below), an integer with
//! other bounds a `u64` (lower bound >= 0) or an `i64`, an object with
//! neither `properties` nor `additionalProperties` (or with
//! `additionalProperties: true`) a `serde_json::Map`, and
//! `additionalProperties: true`/`false` next to `properties` a struct.
//!
//! A construct with no faithful mapping becomes `serde_json::Value`, with a
//! doc comment on the enclosing field or type naming the JSON path and the
//! reason; it never fails generation.
//!
//! **Typed formats** ([`Formats`], each off by default): a string whose only
//! keywords besides annotations are `type` and `format` maps back to the
//! well-known type [`crate::schema`] derives that format from
//! (`schema/known.rs`), when the peer opts in: `uuid` is `::uuid::Uuid`;
//! `date-time` is `::chrono::DateTime<::chrono::FixedOffset>` and `date`
//! `::chrono::NaiveDate`; `uri` is `::url::Url`; `ipv4`/`ipv6` are
//! `::std::net::Ipv4Addr`/`Ipv6Addr` and `anyOf [ipv4, ipv6]` is
//! `::std::net::IpAddr`. A format string with a `pattern` or length limits
//! stays a `String` (the typed value's serde output might not match them).
//! `date-time` is `FixedOffset`, not `Utc`: both parse any RFC 3339 offset,
//! but `DateTime<Utc>` converts to UTC and writes `Z`, so a value received
//! with `+02:00` would be sent back with another text; `FixedOffset` keeps
//! the offset it was given (equality still compares instants).

mod classify;
mod generate;
mod names;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use classify::{classify, significant_keys, string_format};
use generate::{Gen, derives, doc, fallback_note, notes_doc};
use names::{RESERVED, pascal_case, unique_ident, unraw};
use trellis_manifest::json::Json;

/// Rust definitions generated from a manifest's `schemas`.
pub struct RustTypes {
    /// Struct/enum definitions (with `#[derive(Debug, Clone, PartialEq,
    /// ::serde::Serialize, ::serde::Deserialize)]`) for every top-level schema
    /// and every inlined nested object/enum that needs its own type. They
    /// refer to `::serde`, `::serde_json` (for untyped values) and
    /// `::trellis` (for receive grants).
    pub defs: TokenStream,
    /// For each top-level schema name, the Rust type to write where the
    /// manifest says `{ "schema": "<name>" }`.
    pub names: BTreeMap<String, TokenStream>,
    /// Every type name the definitions use, for callers adding their own.
    pub taken: BTreeSet<String>,
}

/// Why a schema cannot become Rust types.
#[derive(Debug, thiserror::Error)]
pub enum StubTypeError {
    /// A construct of the schema has no faithful Rust mapping.
    #[error("contract `{contract}`, schema `{schema}` at `{path}`: {reason}")]
    Unsupported {
        /// The contract id.
        contract: String,
        /// The top-level schema name.
        schema: String,
        /// JSON pointer into that schema (`#` is its root).
        path: String,
        /// What construct is not supported.
        reason: String,
    },
    /// A top-level schema name cannot be a Rust type name (no longer
    /// produced: such names are given a PascalCase type name).
    #[error("contract `{contract}`: schema name `{schema}` cannot be a Rust type name: {reason}")]
    InvalidName {
        /// The contract id.
        contract: String,
        /// The schema name.
        schema: String,
        /// Why not.
        reason: String,
    },
}

/// Which well-known Rust types format-annotated strings map to (the
/// inverse of `schema/known.rs`). Every option is off by default: the
/// format's value is then a `String`. The crate a type names must be a
/// dependency of the crate that compiles the generated code (the code names
/// it with a leading `::`); `net` needs none (`std::net`) but is opt-in too,
/// so that existing stubs keep their types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Formats {
    /// `uuid` → `::uuid::Uuid`.
    pub uuid: bool,
    /// `date-time` → `::chrono::DateTime<::chrono::FixedOffset>`, `date` →
    /// `::chrono::NaiveDate`.
    pub chrono: bool,
    /// `uri` → `::url::Url`.
    pub url: bool,
    /// `ipv4` → `::std::net::Ipv4Addr`, `ipv6` → `::std::net::Ipv6Addr`,
    /// `anyOf [ipv4, ipv6]` → `::std::net::IpAddr`.
    pub net: bool,
}

impl Formats {
    /// Every option on.
    pub fn all() -> Self {
        Formats {
            uuid: true,
            chrono: true,
            url: true,
            net: true,
        }
    }

    /// The names of the options that are on (`uuid`, `chrono`, `url`, `net`).
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            ("uuid", self.uuid),
            ("chrono", self.chrono),
            ("url", self.url),
            ("net", self.net),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name)
        .collect()
    }

    /// The Rust type (and a variant name for untagged unions) of a schema
    /// node that an enabled option maps, if any.
    fn typed(&self, json: &Json) -> Option<(TokenStream, &'static str)> {
        if self.net
            && let Some(map) = json.as_object()
            && significant_keys(map).eq(["anyOf"])
            && let Some([v4, v6]) = map.get("anyOf").and_then(Json::as_array)
            && string_format(v4) == Some("ipv4")
            && string_format(v6) == Some("ipv6")
        {
            return Some((quote!(::std::net::IpAddr), "IpAddr"));
        }
        Some(match string_format(json)? {
            "uuid" if self.uuid => (quote!(::uuid::Uuid), "Uuid"),
            "date-time" if self.chrono => (
                quote!(::chrono::DateTime<::chrono::FixedOffset>),
                "DateTime",
            ),
            "date" if self.chrono => (quote!(::chrono::NaiveDate), "Date"),
            "uri" if self.url => (quote!(::url::Url), "Url"),
            "ipv4" if self.net => (quote!(::std::net::Ipv4Addr), "Ipv4"),
            "ipv6" if self.net => (quote!(::std::net::Ipv6Addr), "Ipv6"),
            _ => return None,
        })
    }
}

/// Generates Rust definitions for every schema of contract `contract_id`,
/// format-annotated strings as `String`.
pub fn rust_types(
    contract_id: &str,
    schemas: &BTreeMap<String, Json>,
) -> Result<RustTypes, StubTypeError> {
    rust_types_with(contract_id, schemas, Formats::default())
}

/// [`rust_types`] with the typed formats `formats` enables.
pub fn rust_types_with(
    contract_id: &str,
    schemas: &BTreeMap<String, Json>,
    formats: Formats,
) -> Result<RustTypes, StubTypeError> {
    let mut taken: BTreeSet<String> = RESERVED.iter().map(|s| (*s).to_owned()).collect();
    // Names that are plain Rust type names are kept; others (`Files.Page`,
    // `String`, `2fa`) get a PascalCase name that no kept name takes.
    let plain = |name: &str| {
        !RESERVED.contains(&name)
            && !name.starts_with("r#")
            && syn::parse_str::<Ident>(name).is_ok_and(|ident| ident == name)
    };
    taken.extend(schemas.keys().filter(|n| plain(n)).cloned());
    let mut top = Vec::with_capacity(schemas.len());
    for (name, schema) in schemas {
        let ident = if plain(name) {
            Ident::new(name, Span::call_site())
        } else {
            let mut base = pascal_case(name);
            if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
                base = format!("Schema{base}");
            } else if RESERVED.contains(&base.as_str()) {
                base.push_str("Schema");
            }
            unique_ident(&base, "", &mut taken)
        };
        top.push((name, ident, schema));
    }

    let mut top_by_shape = BTreeMap::new();
    for (_, ident, schema) in &top {
        if let Ok(kind) = classify(schema)
            && kind.needs_own_type()
            && formats.typed(schema).is_none()
        {
            top_by_shape
                .entry(schema.to_canonical_string())
                .or_insert_with(|| unraw(ident));
        }
    }

    let mut cx = Gen {
        contract: contract_id,
        formats,
        schema: String::new(),
        top_by_shape,
        grant: crate::schema::receive_grant_schema().to_canonical_string(),
        taken,
        nested_by_shape: BTreeMap::new(),
        nested_defs: BTreeMap::new(),
        notes: Vec::new(),
    };
    let mut defs = TokenStream::new();
    let mut names = BTreeMap::new();
    for (name, ident, schema) in top {
        cx.schema = name.clone();
        let doc = format!(" Schema `{name}` of contract `{contract_id}`.");
        let def = match cx.definition(&ident, schema, "#", &doc, true) {
            Ok(def) => def,
            Err(StubTypeError::Unsupported { path, reason, .. }) => {
                let notes = [fallback_note(&path, &reason)];
                let notes = notes_doc(&notes);
                let derives = derives();
                let doc = self::doc(&doc);
                quote! {
                    #doc
                    #notes
                    #derives
                    pub struct #ident(pub ::serde_json::Value);
                }
            }
            Err(other) => return Err(other),
        };
        defs.extend(def);
        names.insert(name.clone(), quote!(#ident));
    }
    for def in cx.nested_defs.into_values() {
        defs.extend(def);
    }
    Ok(RustTypes {
        defs,
        names,
        taken: cx.taken,
    })
}
