//! What a schema node is: its [`Kind`] (with the key set checked and
//! unsupported keywords named), integer widths, and the annotation keywords
//! that are ignored.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::quote;

use trellis_manifest::json::{Json, Number, Object};

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

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Int {
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
    pub(super) fn tokens(self) -> TokenStream {
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
pub(super) enum Kind<'s> {
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
    pub(super) fn needs_own_type(&self) -> bool {
        matches!(
            self,
            Kind::StringEnum(_) | Kind::Object(_) | Kind::OneOf(_) | Kind::AnyOf(_)
        )
    }

    /// A variant name for an untagged enum branch of this kind.
    pub(super) fn variant_name(&self) -> &'static str {
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
pub(super) struct ObjectShape<'s> {
    pub(super) properties: &'s Object,
    pub(super) required: BTreeSet<&'s str>,
    pub(super) additional: Option<&'s Json>,
}

impl ObjectShape<'_> {
    pub(super) fn is_required(&self, name: &str) -> bool {
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

pub(super) fn is_null_schema(json: &Json) -> bool {
    json.as_object()
        .is_some_and(|m| m.len() == 1 && m.get("type").and_then(Json::as_str) == Some("null"))
}

/// The tag value if `json` is exactly `{ "type": "string", "const": "..." }`.
pub(super) fn const_tag(json: &Json) -> Option<&str> {
    let map = json.as_object()?;
    if map.len() != 2 || map.get("type").and_then(Json::as_str) != Some("string") {
        return None;
    }
    map.get("const").and_then(Json::as_str)
}

/// Classifies a schema node, rejecting keywords that have no Rust mapping.
/// `Err` is the reason.
pub(super) fn classify(json: &Json) -> Result<Kind<'_>, String> {
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

/// The keys of a schema object that are not annotations.
pub(super) fn significant_keys(map: &Object) -> impl Iterator<Item = &str> {
    map.keys()
        .map(String::as_str)
        .filter(|k| !ANNOTATIONS.contains(k))
}

/// The format of a schema that is exactly `{"type": "string", "format": ..}`
/// (plus annotations).
pub(super) fn string_format(json: &Json) -> Option<&str> {
    let map = json.as_object()?;
    if significant_keys(map).count() != 2
        || map.get("type").and_then(Json::as_str) != Some("string")
    {
        return None;
    }
    map.get("format").and_then(Json::as_str)
}
