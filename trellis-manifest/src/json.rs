//! A JSON value with a canonical byte form.
//!
//! Objects are `BTreeMap<String, Json>`, so keys are always sorted by code
//! point (UTF-8 byte order equals code point order) whatever features other
//! crates enable on `serde_json`. Never serialize manifests through
//! `serde_json::Value` directly: its key order flips with `preserve_order`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A JSON number, kept exact where it is an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A finite non-integral number.
    Float(f64),
}

/// A JSON value whose objects are always sorted.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json {
    /// `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A finite number.
    Number(Number),
    /// A string.
    String(String),
    /// An array (order is significant and kept).
    Array(Vec<Json>),
    /// An object (keys sorted).
    Object(BTreeMap<String, Json>),
}

/// Shorthand for building a [`Json::Object`].
pub type Object = BTreeMap<String, Json>;

impl Json {
    /// An empty object.
    pub fn object() -> Json {
        Json::Object(BTreeMap::new())
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// An unsigned integer value.
    pub fn uint(n: u64) -> Json {
        Json::Number(Number::UInt(n))
    }

    /// A signed integer value (normalized to [`Number::UInt`] when non-negative).
    pub fn int(n: i64) -> Json {
        if n >= 0 {
            Json::Number(Number::UInt(n as u64))
        } else {
            Json::Number(Number::Int(n))
        }
    }

    /// An array of strings.
    pub fn strings<I, S>(items: I) -> Json
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Json::Array(items.into_iter().map(|s| Json::String(s.into())).collect())
    }

    /// The object map, if this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The mutable object map, if this is an object.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Json::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The array items, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// Converts a parsed `serde_json` value; key order is normalized.
    pub fn from_value(value: &serde_json::Value) -> Json {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(number_from(n)),
            serde_json::Value::String(s) => Json::String(s.clone()),
            serde_json::Value::Array(items) => {
                Json::Array(items.iter().map(Json::from_value).collect())
            }
            serde_json::Value::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Parses JSON text; duplicate object keys are an error.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The canonical text: sorted keys, no whitespace, serde_json string
    /// escaping, integers as integers, no `-0`.
    pub fn to_canonical_string(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Number(n) => write_number(*n, out),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_canonical(out);
                }
                out.push(']');
            }
            Json::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write_canonical(out);
                }
                out.push('}');
            }
        }
    }
}

fn number_from(n: &serde_json::Number) -> Number {
    if let Some(u) = n.as_u64() {
        Number::UInt(u)
    } else if let Some(i) = n.as_i64() {
        Number::Int(i)
    } else {
        // serde_json only yields finite floats from text.
        let f = n.as_f64().unwrap_or(0.0);
        normalize_float(f)
    }
}

/// Integral floats within the exactly-representable range become integers
/// (so `1.0` and `1` canonicalize alike) and `-0` becomes `0`.
fn normalize_float(f: f64) -> Number {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f == 0.0 {
        Number::UInt(0)
    } else if f.fract() == 0.0 && f.abs() <= EXACT {
        if f < 0.0 {
            Number::Int(f as i64)
        } else {
            Number::UInt(f as u64)
        }
    } else {
        Number::Float(f)
    }
}

fn write_number(n: Number, out: &mut String) {
    match n {
        Number::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Number::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Number::Float(f) => match normalize_float(f) {
            Number::Float(f) => {
                // serde_json's shortest round-trip formatting.
                let text = serde_json::Number::from_f64(f)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "0".to_owned());
                out.push_str(&text);
            }
            other => write_number(other, out),
        },
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping is the canonical one; serializing a &str cannot fail.
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("\"\""),
    }
}

impl serde::Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(Number::Int(i)) => serializer.serialize_i64(*i),
            Json::Number(Number::UInt(u)) => serializer.serialize_u64(*u),
            Json::Number(Number::Float(f)) => serializer.serialize_f64(*f),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(map) => {
                let mut m = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// Builds [`Json`] directly, refusing duplicate object keys (which
/// `serde_json::Value` would silently collapse to the last one).
struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::uint(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        if !v.is_finite() {
            return Err(E::custom("non-finite numbers are not JSON"));
        }
        Ok(Json::Number(normalize_float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        serde::Deserialize::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = Object::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let value = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Json::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_strips_whitespace() {
        let json =
            Json::parse(r#"{ "b": 1, "a": [true, null, "x\"y"], "é": -0.0, "c": 1.0, "d": 0.5 }"#)
                .expect("valid json");
        assert_eq!(
            json.to_canonical_string(),
            r#"{"a":[true,null,"x\"y"],"b":1,"c":1,"d":0.5,"é":0}"#
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = Json::parse(r#"{"rpc":{"A.B":1,"A.B":2}}"#).expect_err("duplicate");
        assert!(err.to_string().contains("duplicate key `A.B`"), "{err}");
        assert!(Json::parse(r#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
    }

    #[test]
    fn control_characters_escape_like_serde_json() {
        let json = Json::str("a\u{1}\n\u{2028}");
        assert_eq!(json.to_canonical_string(), "\"a\\u0001\\n\u{2028}\"");
    }
}
