//! Rust type definitions from a manifest's `schemas` (the inverse of
//! [`crate::schema`]).
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

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::quote;

use trellis_manifest::json::{Json, Number, Object};

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

/// The keys of a schema object that are not annotations.
fn significant_keys(map: &Object) -> impl Iterator<Item = &str> {
    map.keys()
        .map(String::as_str)
        .filter(|k| !ANNOTATIONS.contains(k))
}

/// The format of a schema that is exactly `{"type": "string", "format": ..}`
/// (plus annotations).
fn string_format(json: &Json) -> Option<&str> {
    let map = json.as_object()?;
    if significant_keys(map).count() != 2
        || map.get("type").and_then(Json::as_str) != Some("string")
    {
        return None;
    }
    map.get("format").and_then(Json::as_str)
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

/// Keywords that only annotate a schema; ignored when mapping it.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Type names the generated code spells without a path.
const RESERVED: &[&str] = &[
    "String", "Option", "Vec", "Some", "None", "Result", "Ok", "Err", "Box", "bool", "char", "str",
    "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128",
    "usize",
];

/// The largest fixed-size array serde implements (de)serialization for.
const MAX_SERDE_ARRAY: u64 = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Int {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Int {
    fn tokens(self) -> TokenStream {
        match self {
            Int::I8 => quote!(i8),
            Int::I16 => quote!(i16),
            Int::I32 => quote!(i32),
            Int::I64 => quote!(i64),
            Int::U8 => quote!(u8),
            Int::U16 => quote!(u16),
            Int::U32 => quote!(u32),
            Int::U64 => quote!(u64),
        }
    }
}

/// What a schema node is, with its key set checked.
enum Kind<'s> {
    Any,
    Null,
    Bool,
    Number,
    Integer(Int),
    String,
    Char,
    StringEnum(Vec<&'s str>),
    Array {
        items: &'s Json,
        unique: bool,
        len: Option<u64>,
    },
    Map(&'s Json),
    /// An object with no declared fields (`serde_json::Map`).
    OpenObject,
    Object(ObjectShape<'s>),
    Nullable(&'s Json),
    OneOf(&'s [Json]),
    AnyOf(&'s [Json]),
}

impl Kind<'_> {
    fn needs_own_type(&self) -> bool {
        matches!(
            self,
            Kind::StringEnum(_) | Kind::Object(_) | Kind::OneOf(_) | Kind::AnyOf(_)
        )
    }

    /// A variant name for an untagged enum branch of this kind.
    fn variant_name(&self) -> &'static str {
        match self {
            Kind::Any => "Any",
            Kind::Null => "Null",
            Kind::Bool => "Bool",
            Kind::Number => "Number",
            Kind::Integer(_) => "Integer",
            Kind::String => "String",
            Kind::Char => "Char",
            Kind::StringEnum(_) => "Enum",
            Kind::Array { unique: true, .. } => "Set",
            Kind::Array { .. } => "Array",
            Kind::Map(_) => "Map",
            Kind::OpenObject | Kind::Object(_) => "Object",
            Kind::Nullable(_) => "Optional",
            Kind::OneOf(_) | Kind::AnyOf(_) => "Union",
        }
    }
}

/// An object with named properties.
struct ObjectShape<'s> {
    properties: &'s Object,
    required: BTreeSet<&'s str>,
    additional: Option<&'s Json>,
}

impl ObjectShape<'_> {
    fn is_required(&self, name: &str) -> bool {
        self.required.contains(name)
    }
}

fn int_value(json: &Json) -> Option<i128> {
    match json {
        Json::Number(Number::Int(i)) => Some(i128::from(*i)),
        Json::Number(Number::UInt(u)) => Some(i128::from(*u)),
        _ => None,
    }
}

fn is_null_schema(json: &Json) -> bool {
    json.as_object()
        .is_some_and(|m| m.len() == 1 && m.get("type").and_then(Json::as_str) == Some("null"))
}

/// The tag value if `json` is exactly `{ "type": "string", "const": "..." }`.
fn const_tag(json: &Json) -> Option<&str> {
    let map = json.as_object()?;
    if map.len() != 2 || map.get("type").and_then(Json::as_str) != Some("string") {
        return None;
    }
    map.get("const").and_then(Json::as_str)
}

/// Classifies a schema node, rejecting keywords that have no Rust mapping.
/// `Err` is the reason.
fn classify(json: &Json) -> Result<Kind<'_>, String> {
    if *json == Json::Bool(true) {
        return Ok(Kind::Any);
    }
    let Some(map) = json.as_object() else {
        return Err(format!(
            "a schema must be an object, found `{}`",
            json.to_canonical_string()
        ));
    };
    let keys: BTreeSet<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !ANNOTATIONS.contains(k))
        .collect();
    let only = |allowed: &[&str]| -> Result<(), String> {
        let extra: Vec<String> = keys
            .iter()
            .filter(|k| !allowed.contains(k))
            .map(|k| format!("`{k}`"))
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unsupported keyword(s) {} next to {}",
                extra.join(", "),
                allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    if keys.is_empty() {
        return Ok(Kind::Any);
    }
    for union in ["oneOf", "anyOf"] {
        if let Some(list) = map.get(union) {
            only(&[union])?;
            let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
                return Err(format!("`{union}` must be a non-empty array"));
            };
            return Ok(if union == "oneOf" {
                Kind::OneOf(list)
            } else if list.len() == 2 && is_null_schema(&list[1]) {
                Kind::Nullable(&list[0])
            } else {
                Kind::AnyOf(list)
            });
        }
    }
    let Some(ty) = map.get("type") else {
        return Err(format!(
            "schema without `type`, `oneOf` or `anyOf` (keywords: {})",
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let Some(ty) = ty.as_str() else {
        return Err(format!(
            "`type` must be a single string, found `{}`",
            ty.to_canonical_string()
        ));
    };
    match ty {
        "number" => {
            only(&["type", "format", "minimum", "maximum"])?;
            Ok(Kind::Number)
        }
        "null" | "boolean" => {
            only(&["type"])?;
            Ok(match ty {
                "null" => Kind::Null,
                "boolean" => Kind::Bool,
                _ => Kind::Number,
            })
        }
        "integer" => integer(map, &only),
        "string" => {
            if keys.contains("enum") {
                only(&["type", "enum"])?;
                let values = map.get("enum").and_then(Json::as_array).unwrap_or(&[]);
                let names: Vec<&str> = values.iter().filter_map(Json::as_str).collect();
                if names.is_empty() || names.len() != values.len() {
                    return Err("`enum` must be a non-empty array of strings".to_owned());
                }
                let distinct: BTreeSet<&str> = names.iter().copied().collect();
                if distinct.len() != names.len() {
                    return Err("`enum` lists a value twice".to_owned());
                }
                return Ok(Kind::StringEnum(names));
            }
            if keys.contains("const") {
                return Err(
                    "`const` outside the tag property of a tagged enum has no Rust type".to_owned(),
                );
            }
            only(&["type", "format", "pattern", "minLength", "maxLength"])?;
            let one = |k: &str| map.get(k).and_then(int_value) == Some(1);
            if keys.len() == 3 && one("minLength") && one("maxLength") {
                return Ok(Kind::Char);
            }
            // `format`, `pattern` and other lengths: every valid value is a `String`.
            Ok(Kind::String)
        }
        "array" => {
            only(&["type", "items", "uniqueItems", "minItems", "maxItems"])?;
            let Some(items) = map.get("items") else {
                return Err("an array needs `items`".to_owned());
            };
            let unique = match map.get("uniqueItems") {
                None => false,
                Some(Json::Bool(true)) => true,
                Some(_) => return Err("`uniqueItems` must be `true` when present".to_owned()),
            };
            let bound = |k: &str| -> Result<Option<u64>, String> {
                match map.get(k) {
                    None => Ok(None),
                    Some(Json::Number(Number::UInt(n))) => Ok(Some(*n)),
                    Some(_) => Err(format!("`{k}` must be a non-negative integer")),
                }
            };
            let len = match (bound("minItems")?, bound("maxItems")?) {
                (None, None) => None,
                (Some(min), Some(max)) if min == max => Some(min),
                _ => {
                    return Err(
                        "array length limits other than one fixed length (`[T; N]`) have no Rust type"
                            .to_owned(),
                    );
                }
            };
            if unique && len.is_some() {
                return Err("a fixed-length array with `uniqueItems` has no Rust type".to_owned());
            }
            Ok(Kind::Array { items, unique, len })
        }
        "object" => {
            // `additionalProperties: true` is the default (open); `false`
            // only closes an object whose fields are all known.
            let additional = match map.get("additionalProperties") {
                None | Some(Json::Bool(_)) => None,
                Some(extra) if extra.as_object().is_some() => Some(extra),
                Some(extra) => {
                    return Err(format!(
                        "`additionalProperties: {}` is not supported (only a schema or a boolean)",
                        extra.to_canonical_string()
                    ));
                }
            };
            if let Some(properties) = map.get("properties") {
                only(&["type", "properties", "required", "additionalProperties"])?;
                let Some(properties) = properties.as_object() else {
                    return Err("`properties` must be an object".to_owned());
                };
                let mut required = BTreeSet::new();
                if let Some(list) = map.get("required") {
                    let Some(list) = list.as_array() else {
                        return Err("`required` must be an array".to_owned());
                    };
                    for item in list {
                        match item.as_str() {
                            Some(name) if properties.contains_key(name) => {
                                required.insert(name);
                            }
                            _ => {
                                return Err(format!(
                                    "`required` lists `{}`, which is not a property",
                                    item.to_canonical_string()
                                ));
                            }
                        }
                    }
                }
                return Ok(Kind::Object(ObjectShape {
                    properties,
                    required,
                    additional,
                }));
            }
            only(&["type", "additionalProperties"])?;
            match (additional, map.get("additionalProperties")) {
                (Some(values), _) => Ok(Kind::Map(values)),
                (None, None | Some(Json::Bool(true))) => Ok(Kind::OpenObject),
                (None, _) => Err(
                    "`additionalProperties: false` without `properties` (an always-empty object)"
                        .to_owned(),
                ),
            }
        }
        other => Err(format!("`type: \"{other}\"` is not supported")),
    }
}

fn integer<'s>(
    map: &'s Object,
    only: &dyn Fn(&[&str]) -> Result<(), String>,
) -> Result<Kind<'s>, String> {
    only(&["type", "format", "minimum", "maximum"])?;
    let bound = |k: &str| -> Result<Option<i128>, String> {
        match map.get(k) {
            None => Ok(None),
            Some(v) => int_value(v)
                .map(Some)
                .ok_or_else(|| format!("`{k}` of an integer must be an integer")),
        }
    };
    let (min, max) = (bound("minimum")?, bound("maximum")?);
    let int = match (min, max) {
        (None, None) => Int::I64,
        (Some(0), None) => Int::U64,
        (Some(0), Some(0xff)) => Int::U8,
        (Some(0), Some(0xffff)) => Int::U16,
        (Some(0), Some(0xffff_ffff)) => Int::U32,
        (Some(-0x80), Some(0x7f)) => Int::I8,
        (Some(-0x8000), Some(0x7fff)) => Int::I16,
        (Some(-0x8000_0000), Some(0x7fff_ffff)) => Int::I32,
        // Other bounds: the widest type of the sign that holds every valid value.
        (Some(lo), hi) if lo >= 0 && hi.is_none_or(|hi| hi <= i128::from(u64::MAX)) => Int::U64,
        (lo, hi)
            if lo.is_none_or(|lo| lo >= i128::from(i64::MIN))
                && hi.is_none_or(|hi| hi <= i128::from(i64::MAX)) =>
        {
            Int::I64
        }
        _ => {
            let show = |b: Option<i128>| b.map_or_else(|| "..".to_owned(), |b| b.to_string());
            return Err(format!(
                "integer range [{}, {}] is not the range of a Rust integer type",
                show(min),
                show(max)
            ));
        }
    };
    Ok(Kind::Integer(int))
}

/// Splits a wire name into ASCII words (`expiresAtMs` -> `expires`, `At`, `Ms`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !current.is_empty() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push(std::mem::take(&mut current));
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn snake_case(name: &str) -> String {
    let snake = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    if snake.is_empty() {
        "field".to_owned()
    } else if snake.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{snake}")
    } else {
        snake
    }
}

fn pascal_case(name: &str) -> String {
    words(name)
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect()
}

/// A Rust identifier for `text`: plain, raw (`r#type`) for keywords that
/// allow it, else with a trailing `_` (`self_`).
fn make_ident(text: &str) -> Ident {
    if let Ok(ident) = syn::parse_str::<Ident>(text) {
        return ident;
    }
    if let Ok(ident) = syn::parse_str::<Ident>(&format!("r#{text}")) {
        return ident;
    }
    match syn::parse_str::<Ident>(&format!("{text}_")) {
        Ok(ident) => ident,
        Err(_) => Ident::new("field_", Span::call_site()),
    }
}

/// The name serde uses for an identifier (without `r#`).
fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    match text.strip_prefix("r#") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// Picks a unique identifier: `base`, then `base{sep}2`, `base{sep}3`, ...
fn unique_ident(base: &str, sep: &str, used: &mut BTreeSet<String>) -> Ident {
    let mut n = 1u32;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{sep}{n}")
        };
        let ident = make_ident(&candidate);
        if used.insert(unraw(&ident)) {
            return ident;
        }
        n += 1;
    }
}

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn doc(text: &str) -> TokenStream {
    quote!(#[doc = #text])
}

/// Why the node at `path` is typed `serde_json::Value`.
fn fallback_note(path: &str, reason: &str) -> String {
    format!(" Untyped (`serde_json::Value`) at `{path}`: {reason}.")
}

/// Doc lines for fallback notes (after an empty line), or nothing.
fn notes_doc(notes: &[String]) -> TokenStream {
    if notes.is_empty() {
        return TokenStream::new();
    }
    quote!(#[doc = ""] #(#[doc = #notes])*)
}

fn derives() -> TokenStream {
    quote!(#[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)])
}

struct Gen<'a> {
    contract: &'a str,
    /// Which format-annotated strings get a well-known Rust type.
    formats: Formats,
    /// The top-level schema being generated (for errors).
    schema: String,
    /// Canonical text of top-level schemas that need their own type -> Rust name.
    top_by_shape: BTreeMap<String, String>,
    /// Canonical text of `trellis::ReceiveGrant`'s schema.
    grant: String,
    /// Type names in use.
    taken: BTreeSet<String>,
    /// Canonical text of generated nested types -> name.
    nested_by_shape: BTreeMap<String, String>,
    nested_defs: BTreeMap<String, TokenStream>,
    /// Why nodes under the field or type being generated fell back to
    /// `serde_json::Value` (attached to its doc comment).
    notes: Vec<String>,
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

    fn definition(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaTypes;

    const DOCUMENTS: &str = include_str!("../../examples/documents/contracts/documents@v1.json");

    /// Schemas derived by `crate::schema` from Rust source.
    fn derive(src: &str) -> BTreeMap<String, Json> {
        let file: syn::File = syn::parse_str(src).expect("test source parses");
        let mut types = SchemaTypes::default();
        for item in file.items {
            let input: syn::DeriveInput = match item {
                syn::Item::Struct(s) => s.into(),
                syn::Item::Enum(e) => e.into(),
                _ => continue,
            };
            types.insert(input.ident.to_string(), input);
        }
        let (schemas, errors) = types.derive_all();
        assert!(
            errors.is_empty(),
            "{:?}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        schemas
    }

    /// The schema `crate::schema` derives from the generated types: optional
    /// properties come back nullable (`Option<T>` accepts `null`).
    fn client_view(schema: &Json) -> Json {
        match schema {
            Json::Array(items) => Json::Array(items.iter().map(client_view).collect()),
            Json::Object(map) => {
                let mut out: Object = map
                    .iter()
                    .map(|(k, v)| {
                        let v = match k.as_str() {
                            "properties" => match v {
                                Json::Object(props) => Json::Object(
                                    props
                                        .iter()
                                        .map(|(p, s)| (p.clone(), client_view(s)))
                                        .collect(),
                                ),
                                other => other.clone(),
                            },
                            "items" | "additionalProperties" | "anyOf" | "oneOf" => client_view(v),
                            _ => v.clone(),
                        };
                        (k.clone(), v)
                    })
                    .collect();
                let required: BTreeSet<String> = map
                    .get("required")
                    .and_then(Json::as_array)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect();
                if let Some(Json::Object(props)) = out.get_mut("properties") {
                    for (name, prop) in props.iter_mut() {
                        let nullable = prop
                            .get("anyOf")
                            .and_then(Json::as_array)
                            .is_some_and(|l| l.len() == 2 && is_null_schema(&l[1]));
                        if !required.contains(name) && !nullable {
                            let inner = std::mem::take(prop);
                            let mut wrapped = Object::new();
                            wrapped.insert(
                                "anyOf".into(),
                                Json::Array(vec![inner, Json::Object(null_object())]),
                            );
                            *prop = Json::Object(wrapped);
                        }
                    }
                }
                Json::Object(out)
            }
            other => other.clone(),
        }
    }

    fn null_object() -> Object {
        let mut map = Object::new();
        map.insert("type".into(), Json::str("null"));
        map
    }

    /// Generates types, derives their schemas back and compares.
    fn round_trip(contract: &str, schemas: &BTreeMap<String, Json>) -> String {
        let types = rust_types(contract, schemas).expect("types generate");
        let file: syn::File = syn::parse2(types.defs.clone()).expect("defs parse as a file");
        let pretty = prettyplease::unparse(&file);
        let mut derived_types = SchemaTypes::default();
        for item in file.items {
            let input: syn::DeriveInput = match item {
                syn::Item::Struct(s) => s.into(),
                syn::Item::Enum(e) => e.into(),
                other => panic!("unexpected item {other:?}"),
            };
            derived_types.insert(input.ident.to_string(), input);
        }
        let (derived, errors) = derived_types.derive_all();
        assert!(
            errors.is_empty(),
            "{:?}\n{pretty}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        assert_eq!(
            types.names.keys().collect::<Vec<_>>(),
            schemas.keys().collect::<Vec<_>>()
        );
        for (name, schema) in schemas {
            assert_eq!(types.names[name].to_string(), *name);
            let back = derived
                .get(name)
                .unwrap_or_else(|| panic!("{name} derived"));
            assert_eq!(
                back.to_canonical_string(),
                client_view(schema).to_canonical_string(),
                "schema `{name}` does not round-trip\n{pretty}"
            );
        }
        // Deterministic.
        let again = rust_types(contract, schemas).expect("types generate");
        assert_eq!(again.defs.to_string(), types.defs.to_string());
        pretty
    }

    fn documents_schemas() -> BTreeMap<String, Json> {
        let manifest = Json::parse(DOCUMENTS).expect("manifest parses");
        manifest
            .get("schemas")
            .and_then(Json::as_object)
            .expect("manifest has schemas")
            .clone()
    }

    #[test]
    fn documents_manifest_round_trips() {
        let schemas = documents_schemas();
        assert!(schemas.len() >= 10);
        let pretty = round_trip("documents@v1", &schemas);
        for expected in [
            "/// Schema `FileEntry` of contract `documents@v1`.",
            "pub struct DownloadResponse {",
            "pub file: FileEntry,",
            "pub grant: ::trellis::ReceiveGrant,",
            "pub entries: Vec<FileEntry>,",
            "#[serde(rename = \"contentType\", default, skip_serializing_if = \"::std::option::Option::is_none\")]",
            "pub content_type: Option<String>,",
            "pub metadata: Option<::std::collections::BTreeMap<String, String>>,",
            "pub next_offset: Option<u64>,",
            "pub size: u64,",
            "#[serde(tag = \"kind\")]\npub enum FilesError {",
            "#[serde(rename = \"notFound\")] NotFound { /// Required field `key`.\n key: String, },",
        ] {
            assert!(
                squash(&pretty).contains(&squash(expected)),
                "missing {expected:?} in\n{pretty}"
            );
        }
        // No nested type was needed: every inlined object is a known type.
        let types = rust_types("documents@v1", &schemas).expect("types");
        let file: syn::File = syn::parse2(types.defs).expect("parses");
        assert_eq!(file.items.len(), schemas.len());
    }

    const SYNTHETIC: &str = r#"
        use std::collections::{BTreeMap, BTreeSet};

        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct Record {
            pub record_id: String,
            pub r#type: String,
            #[serde(rename = "self")]
            pub myself: bool,
            #[serde(rename = "fooBar")]
            pub foo_bar_camel: u64,
            #[serde(rename = "foo_bar")]
            pub foo_bar_snake: u64,
            pub r#match: Option<u64>,
            pub count: u64,
            pub delta: i64,
            pub ratio: f64,
            pub small: u8,
            pub medium: u16,
            pub large: u32,
            pub tiny: i8,
            pub short: i16,
            pub int: i32,
            pub letter: char,
            pub flag: bool,
            pub note: Option<String>,
            pub twice: Option<Option<u64>>,
            #[serde(default)]
            pub tags: Vec<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub maybe: Option<i32>,
            pub labels: BTreeMap<String, Vec<u32>>,
            pub unique: BTreeSet<String>,
            pub pair: [u16; 2],
            pub owner: Owner,
            pub inner: Inner,
            pub inners: Vec<Option<Inner>>,
            pub grant: trellis::ReceiveGrant,
            pub status: Status,
            pub shape: Shape,
            pub command: Command,
            pub event: Event,
            pub value: Loose,
            pub any: serde_json::Value,
            pub unit: (),
        }

        #[derive(Serialize, Deserialize)]
        pub struct Owner { pub name: String, #[serde(default)] pub age: u32 }

        #[derive(Serialize, Deserialize)]
        pub struct Inner { pub depth: u64, pub deeper: Deeper }

        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub struct Deeper { pub last_word: String, pub mode: Mode }

        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Mode { Fast, Slow }

        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub enum Status { Active, OnHold, Gone }

        #[derive(Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "camelCase")]
        pub enum Shape {
            Circle { radius: f64 },
            Rect { width: f64, height: f64, #[serde(default)] label: Option<String> },
            Dot,
            Blob(Blob),
        }

        #[derive(Serialize, Deserialize)]
        pub struct Blob {
            pub size: u64,
            #[serde(flatten)]
            pub rest: BTreeMap<String, serde_json::Value>,
        }

        #[derive(Serialize, Deserialize)]
        #[serde(tag = "op", content = "args")]
        pub enum Command { Start(String), Stop, Resize { w: u32, h: u32 }, Move(Vec<i64>) }

        #[derive(Serialize, Deserialize)]
        pub enum Event { Ping, Pong, Data(u64), Moved { from: String, to: String }, Owned(Owner) }

        #[derive(Serialize, Deserialize)]
        #[serde(untagged)]
        pub enum Loose { Number(f64), Text(String), Owner(Owner), Pair { a: u64 }, Nothing }

        #[derive(Serialize, Deserialize)]
        pub struct Id(pub String);

        #[derive(Serialize, Deserialize)]
        pub struct Ping;

        #[derive(Serialize, Deserialize)]
        pub struct MaybeCount(pub Option<u64>);

        #[derive(Serialize, Deserialize)]
        pub struct Flags(pub BTreeMap<String, bool>);

        #[derive(Serialize, Deserialize)]
        pub struct Empty {}
    "#;

    #[test]
    fn synthetic_types_round_trip() {
        let mut schemas = derive(SYNTHETIC);
        // Inner/Deeper/Mode/Blob are only reachable inlined: they need generated names.
        for nested in ["Inner", "Deeper", "Mode", "Blob"] {
            schemas.remove(nested);
        }
        let pretty = round_trip("synthetic@v1", &schemas);
        for expected in [
            "#[serde(rename = \"recordId\")]\n    pub record_id: String,",
            "pub r#type: String,",
            "#[serde(rename = \"self\")]\n    pub self_: bool,",
            "#[serde(rename = \"fooBar\")]\n    pub foo_bar: u64,",
            "#[serde(rename = \"foo_bar\")]\n    pub foo_bar_2: u64,",
            "pub r#match: Option<u64>,",
            "pub twice: Option<Option<u64>>,",
            "pub small: u8,",
            "pub tiny: i8,",
            "pub int: i32,",
            "pub letter: char,",
            "pub ratio: f64,",
            "pub tags: Option<Vec<String>>,",
            "pub labels: ::std::collections::BTreeMap<String, Vec<u32>>,",
            "pub unique: ::std::collections::BTreeSet<String>,",
            "pub pair: [u16; 2],",
            "pub owner: Owner,",
            "pub inner: RecordInner,",
            "pub inners: Vec<Option<RecordInner>>,",
            "pub deeper: RecordInnerDeeper,",
            "pub mode: RecordInnerDeeperMode,",
            "pub grant: ::trellis::ReceiveGrant,",
            "pub any: ::serde_json::Value,",
            "pub unit: (),",
            "#[serde(tag = \"op\", content = \"args\")]",
            "#[serde(untagged)]",
            "Blob(ShapeBlob),",
            "#[serde(flatten)]\n    pub extra: ::std::collections::BTreeMap<String, ::serde_json::Value>,",
            "Owner(Owner),",
            "Owned(Owner),",
            "pub struct Id(pub String);",
            "pub struct Ping;",
            "pub struct MaybeCount(pub Option<u64>);",
            "pub struct Empty {}",
            "#[serde(rename = \"onHold\")]\n    OnHold,",
        ] {
            assert!(
                squash(&pretty).contains(&squash(expected)),
                "missing {expected:?} in\n{pretty}"
            );
        }
    }

    /// Text without whitespace, so checks ignore line breaking.
    fn squash(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    fn one_schema(name: &str, json: &str) -> BTreeMap<String, Json> {
        let mut map = BTreeMap::new();
        map.insert(name.to_owned(), Json::parse(json).expect("test json"));
        map
    }

    /// The formatted definitions of one schema `Thing`.
    fn generate(json: &str) -> String {
        let types = rust_types("t@v1", &one_schema("Thing", json)).expect("types generate");
        let file: syn::File = syn::parse2(types.defs).expect("defs parse");
        prettyplease::unparse(&file)
    }

    fn assert_contains(pretty: &str, expected: &[&str]) {
        for e in expected {
            assert!(
                squash(pretty).contains(&squash(e)),
                "missing {e:?} in\n{pretty}"
            );
        }
    }

    #[test]
    fn constructs_without_a_mapping_fall_back_to_documented_values() {
        let cases = [
            (
                r##"{"type":"object","properties":{"x":{"$ref":"#/defs/X"}}}"##,
                "#/properties/x",
                "`$ref`",
            ),
            (
                r#"{"type":"object","properties":{"k":{"type":"string","const":"a"}}}"#,
                "#/properties/k",
                "`const`",
            ),
            (
                r#"{"type":"object","properties":{"l":{"type":"array","items":{"type":"number"},"uniqueItems":true}}}"#,
                "#/properties/l",
                "uniqueItems",
            ),
            (
                r#"{"type":"object","properties":{"l":{"type":"array","items":{"type":"number"},"minItems":40,"maxItems":40}}}"#,
                "#/properties/l",
                "up to",
            ),
            (
                r#"{"type":"object","properties":{"a/b":{"type":["string","null"]}}}"#,
                "#/properties/a~1b",
                "single string",
            ),
            (
                r#"{"type":"object","properties":{"n":{"not":{"type":"null"}}}}"#,
                "#/properties/n",
                "`not`",
            ),
            (
                r#"{"type":"object","properties":{"e":{"oneOf":[{"type":"object","properties":{"t":{"type":"string","const":"a"}},"required":["t"]},{"type":"object","properties":{"t":{"type":"string","const":"a"}},"required":["t"]}]}}}"#,
                "#/properties/e/oneOf/1",
                "tag value `a` appears in two branches",
            ),
        ];
        for (json, path, reason) in cases {
            let pretty = generate(json);
            assert!(pretty.contains("::serde_json::Value"), "{json}:\n{pretty}");
            let note = format!(" Untyped (`serde_json::Value`) at `{path}`: ");
            let line = pretty
                .lines()
                .find(|l| l.contains(&note))
                .unwrap_or_else(|| panic!("{json}: no note for `{path}` in\n{pretty}"));
            assert!(line.contains(reason), "{json}: {line}");
            // The note documents the field it belongs to.
            assert!(line.trim_start().starts_with("///"), "{line}");
        }
        // Top-level constructs without a mapping: a newtype of `Value`.
        for (json, reason) in [
            (
                r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
                "neither a tagged variant",
            ),
            (
                r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}"#,
                "`required` lists `\"b\"`",
            ),
            (r#"{"allOf":[{"type":"string"}]}"#, "`allOf`"),
        ] {
            let pretty = generate(json);
            assert_contains(
                &pretty,
                &[
                    "/// Schema `Thing` of contract `t@v1`.\n///\n/// Untyped (`serde_json::Value`) at `#",
                    reason,
                    "pub struct Thing(pub ::serde_json::Value);",
                ],
            );
        }
        // An untagged union keeps its other branches typed.
        let pretty = generate(r#"{"anyOf":[{"type":"string"},{"not":{}}]}"#);
        assert_contains(
            &pretty,
            &[
                "/// Untyped (`serde_json::Value`) at `#/anyOf/1`",
                "String(String),",
                "Value(::serde_json::Value),",
            ],
        );
    }

    #[test]
    fn string_formats_are_strings() {
        let pretty = generate(
            r#"{"type":"object","properties":{
                "at":{"type":"string","format":"date-time"},
                "id":{"type":"string","format":"uuid"},
                "site":{"type":"string","format":"uri"},
                "mail":{"type":"string","format":"email","maxLength":254},
                "code":{"type":"string","pattern":"^[A-Z]+$","minLength":2},
                "letter":{"type":"string","minLength":1,"maxLength":1},
                "when":{"anyOf":[{"type":"string","format":"date"},{"type":"null"}]}
            },"required":["at","id","letter"]}"#,
        );
        assert_contains(
            &pretty,
            &[
                "/// Required field `at`. Format `date-time`.\n pub at: String,",
                "/// Required field `id`. Format `uuid`.\n pub id: String,",
                "/// Optional field `site`; omitted when `None`. Format `uri`.",
                "pub site: Option<String>,",
                "pub mail: Option<String>,",
                "pub code: Option<String>,",
                "pub letter: char,",
                "Format `date`.",
                "pub when: Option<String>,",
            ],
        );
        assert!(!pretty.contains("serde_json::Value"), "{pretty}");
    }

    /// The formats of `schema/known.rs` map back to the types they are
    /// derived from: deriving schemas from the generated types gives the
    /// same schemas again.
    #[test]
    fn typed_formats_round_trip_through_the_schema_derivation() {
        let mut schemas = BTreeMap::new();
        let object = r#"{"type":"object","properties":{
            "id":{"type":"string","format":"uuid"},
            "at":{"type":"string","format":"date-time"},
            "day":{"type":"string","format":"date"},
            "site":{"type":"string","format":"uri"},
            "v4":{"type":"string","format":"ipv4"},
            "v6":{"type":"string","format":"ipv6"},
            "ip":{"anyOf":[{"type":"string","format":"ipv4"},{"type":"string","format":"ipv6"}]},
            "ids":{"type":"array","items":{"type":"string","format":"uuid"},"uniqueItems":true},
            "when":{"anyOf":[{"type":"string","format":"date-time"},{"type":"null"}]},
            "either":{"anyOf":[{"type":"string","format":"date"},{"type":"integer"}]}
        },"required":["at","day","either","id","ids","ip","site","v4","v6"]}"#;
        schemas.insert("Stamp".to_owned(), Json::parse(object).expect("json"));
        schemas.insert(
            "Addr".to_owned(),
            Json::parse(r#"{"anyOf":[{"type":"string","format":"ipv4"},{"type":"string","format":"ipv6"}]}"#)
                .expect("json"),
        );
        let types = rust_types_with("t@v1", &schemas, Formats::all()).expect("types");
        let file: syn::File = syn::parse2(types.defs).expect("defs parse");
        let pretty = prettyplease::unparse(&file);
        assert_contains(
            &pretty,
            &[
                "pub struct Addr(pub ::std::net::IpAddr);",
                "pub id: ::uuid::Uuid,",
                "pub at: ::chrono::DateTime<::chrono::FixedOffset>,",
                "pub day: ::chrono::NaiveDate,",
                "pub site: ::url::Url,",
                "pub v4: ::std::net::Ipv4Addr,",
                "pub v6: ::std::net::Ipv6Addr,",
                "pub ip: ::std::net::IpAddr,",
                "pub ids: ::std::collections::BTreeSet<::uuid::Uuid>,",
                "pub when: Option<::chrono::DateTime<::chrono::FixedOffset>>,",
                "Date(::chrono::NaiveDate),",
            ],
        );
        let mut derived_types = SchemaTypes::default();
        for item in file.items {
            let input: syn::DeriveInput = match item {
                syn::Item::Struct(s) => s.into(),
                syn::Item::Enum(e) => e.into(),
                other => panic!("unexpected item {other:?}"),
            };
            derived_types.insert(input.ident.to_string(), input);
        }
        let (derived, errors) = derived_types.derive_all();
        assert!(
            errors.is_empty(),
            "{:?}\n{pretty}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        for (name, schema) in &schemas {
            assert_eq!(
                derived[name].to_canonical_string(),
                client_view(schema).to_canonical_string(),
                "schema `{name}` does not round-trip\n{pretty}"
            );
        }
        // Without the options, the same schemas are strings.
        let plain = generate(object);
        assert!(
            !plain.contains("::uuid::") && !plain.contains("::chrono::"),
            "{plain}"
        );
        assert_contains(&plain, &["pub id: String,", "pub at: String,"]);
    }

    #[test]
    fn bare_objects_are_json_maps_and_open_objects_maps() {
        let map = "::serde_json::Map<::std::string::String, ::serde_json::Value>";
        let pretty = generate(
            r#"{"type":"object","properties":{
                "meta":{"type":"object"},
                "open":{"type":"object","additionalProperties":true},
                "noted":{"type":"object","description":"free-form"},
                "labels":{"type":"object","additionalProperties":{"type":"string","format":"date-time"}},
                "counts":{"type":"object","additionalProperties":{"type":"integer","minimum":0}}
            },"required":["meta","open","noted","labels","counts"]}"#,
        );
        assert_contains(
            &pretty,
            &[
                &format!("pub meta: {map},"),
                &format!("pub open: {map},"),
                &format!("pub noted: {map},"),
                "pub labels: ::std::collections::BTreeMap<String, String>,",
                "pub counts: ::std::collections::BTreeMap<String, u64>,",
            ],
        );
        assert_contains(
            &generate(r#"{"type":"object"}"#),
            &[&format!("pub struct Thing(pub {map});")],
        );
        // `additionalProperties: true`/`false` next to `properties`: a struct.
        for extra in ["true", "false"] {
            let json = format!(
                r#"{{"type":"object","properties":{{"a":{{"type":"string"}}}},"required":["a"],"additionalProperties":{extra}}}"#
            );
            assert_contains(
                &generate(&json),
                &["pub struct Thing { /// Required field `a`. pub a: String, }"],
            );
        }
    }

    #[test]
    fn annotations_are_ignored_and_integer_bounds_widen() {
        let pretty = generate(
            r#"{"type":"object","title":"T","description":"d","properties":{
                "page":{"type":"integer","minimum":1,"maximum":500,"description":"Page size."},
                "offset":{"type":"integer","minimum":-10},
                "count":{"type":"integer","format":"int64","minimum":0},
                "ratio":{"type":"number","minimum":0,"maximum":1},
                "flag":{"type":"boolean","default":false,"deprecated":true}
            },"required":["page","offset","count","ratio","flag"]}"#,
        );
        assert_contains(
            &pretty,
            &[
                "pub page: u64,",
                "pub offset: i64,",
                "pub count: u64,",
                "pub ratio: f64,",
                "pub flag: bool,",
            ],
        );
        assert!(!pretty.contains("serde_json::Value"), "{pretty}");
    }

    #[test]
    fn any_schema_name_gets_a_type_name() {
        let mut schemas = BTreeMap::new();
        for name in [
            "String",
            "not-an-ident",
            "type",
            "r#Foo",
            "",
            "Files.Page",
            "NotAnIdent",
        ] {
            schemas.insert(
                name.to_owned(),
                Json::parse(r#"{"type":"string"}"#).expect("json"),
            );
        }
        let types = rust_types("t@v1", &schemas).expect("types");
        let names: BTreeMap<&str, String> = types
            .names
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        assert_eq!(names["String"], "StringSchema");
        assert_eq!(names["NotAnIdent"], "NotAnIdent");
        assert_eq!(names["not-an-ident"], "NotAnIdent2");
        assert_eq!(names["type"], "Type");
        assert_eq!(names["r#Foo"], "RFoo");
        assert_eq!(names[""], "Schema");
        assert_eq!(names["Files.Page"], "FilesPage");
        let file: syn::File = syn::parse2(types.defs).expect("parses");
        let pretty = prettyplease::unparse(&file);
        assert!(
            pretty.contains("/// Schema `Files.Page` of contract `t@v1`.\n"),
            "{pretty}"
        );
    }

    #[test]
    fn required_nullable_field_is_a_plain_option() {
        let schemas = one_schema(
            "Thing",
            r#"{"type":"object","properties":{"v":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["v"]}"#,
        );
        let types = rust_types("t@v1", &schemas).expect("types");
        let file: syn::File = syn::parse2(types.defs).expect("parses");
        let pretty = prettyplease::unparse(&file);
        assert!(pretty.contains("    pub v: Option<String>,"), "{pretty}");
        assert!(!pretty.contains("skip_serializing_if"), "{pretty}");
    }

    #[test]
    fn nested_names_avoid_collisions() {
        let mut schemas = BTreeMap::new();
        let nested = r#"{"type":"object","properties":{"inner":{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]},"other":{"type":"object","properties":{"y":{"type":"integer"}},"required":["y"]}},"required":["inner","other"]}"#;
        schemas.insert("A".to_owned(), Json::parse(nested).expect("json"));
        // A top-level name that the generated name for `A.inner` would take.
        schemas.insert(
            "AInner".to_owned(),
            Json::parse(r#"{"type":"boolean"}"#).expect("json"),
        );
        let pretty = round_trip("t@v1", &schemas);
        assert!(pretty.contains("pub inner: AInner2,"), "{pretty}");
        assert!(pretty.contains("pub other: AOther,"), "{pretty}");
        assert!(pretty.contains("pub struct AInner(pub bool);"), "{pretty}");
    }

    #[test]
    fn word_splitting() {
        assert_eq!(snake_case("expiresAtMs"), "expires_at_ms");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("content-type"), "content_type");
        assert_eq!(snake_case("2fa"), "_2fa");
        assert_eq!(snake_case("__"), "field");
        assert_eq!(pascal_case("notFound"), "NotFound");
        assert_eq!(pascal_case("in_progress"), "InProgress");
        assert_eq!(make_ident("type").to_string(), "r#type");
        assert_eq!(make_ident("self").to_string(), "self_");
        assert_eq!(make_ident("Self").to_string(), "Self_");
    }
}
