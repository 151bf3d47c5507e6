//! JSON pointers into a schema: which field a subject token, event key or
//! metadata map points at, and whether that field always has the wanted
//! type (every branch of a union, never through an optional value).

use std::collections::BTreeSet;

use crate::json::Json;

/// Which node types a pointer target may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// `string` only.
    String,
    /// `string`, `number` or `integer` (subject tokens).
    Scalar,
    /// An object (metadata maps).
    Object,
}

impl Want {
    fn accepts(self, t: &str) -> bool {
        match self {
            Want::String => t == "string",
            Want::Scalar => matches!(t, "string" | "number" | "integer"),
            Want::Object => t == "object",
        }
    }

    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Want::String => "a string field",
            Want::Scalar => "a string or number field",
            Want::Object => "an object (map) field",
        }
    }
}

/// Resolves a JSON pointer (`/a/b`) against a schema. Every branch of a
/// union must resolve; with `required` the field may not be optional or
/// nullable. Returns a reason on failure.
pub fn resolve_pointer(
    schema: &Json,
    pointer: &str,
    want: Want,
    required: bool,
) -> Result<(), String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "it is not a JSON pointer (write `/{pointer}`: pointers start with `/`)"
        ));
    };
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    resolve_tokens(schema, &tokens, want, required)
}

fn branches(schema: &Json) -> Option<&[Json]> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Json::as_array)
}

fn is_null_schema(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("null")
}

fn resolve_tokens(
    schema: &Json,
    tokens: &[String],
    want: Want,
    required: bool,
) -> Result<(), String> {
    if let Some(list) = branches(schema) {
        let non_null: Vec<&Json> = list.iter().filter(|b| !is_null_schema(b)).collect();
        if required && non_null.len() != list.len() {
            return Err("it passes through an optional (nullable) value".to_owned());
        }
        for branch in non_null {
            resolve_tokens(branch, tokens, want, required)?;
        }
        return Ok(());
    }
    let Some((first, rest)) = tokens.split_first() else {
        let t = schema.get("type").and_then(Json::as_str).unwrap_or("any");
        return if want.accepts(t) {
            Ok(())
        } else {
            Err(format!("it is `{t}`, not {}", want.describe()))
        };
    };
    let Some(prop) = schema.get("properties").and_then(|p| p.get(first)) else {
        let known: BTreeSet<&str> = schema
            .get("properties")
            .and_then(Json::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let known = known.into_iter().collect::<Vec<_>>().join(", ");
        return Err(format!(
            "no field `{first}` there (fields: {})",
            if known.is_empty() { "none" } else { &known }
        ));
    };
    if required {
        let listed = schema
            .get("required")
            .and_then(Json::as_array)
            .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(first)));
        if !listed {
            return Err(format!(
                "field `{first}` is optional; it must always be present"
            ));
        }
    }
    resolve_tokens(prop, rest, want, required)
}
