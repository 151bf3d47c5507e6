//! The escape hatch for external types the derivation cannot see into:
//! `#[trellis(schema = r#"{...}"#)]` states the JSON Schema of what serde
//! writes.
//!
//! - On a field: the schema of that field's value, whatever its type (it
//!   may then use `#[serde(with = ...)]`, since the shape is stated).
//! - On a `use` of one type, once for the module:
//!   `#[trellis(schema = r#"{"type": "string"}"#)] use semver::Version;`
//!   gives that type's schema wherever the module's schema types name it.
//!
//! The text is checked at compile time: JSON, a JSON Schema (2020-12, as
//! `jsonschema` compiles it), self-contained (no `$ref`, no `$schema`); the
//! derivation also requires it to accept `null` on an `Option` field that
//! serde writes as `null`. It is inlined in
//! the manifest's schemas, so it is part of the digest. The attribute is
//! removed from the items the macro emits, so rustc and serde never see it.

use proc_macro2::Span;
use syn::LitStr;
use syn::spanned::Spanned as _;

use crate::args::{Args, parse_attr_args};
use crate::errors::Errors;
use trellis_manifest::json::Json;

/// The attribute's name: `#[trellis(...)]`.
const ATTR: &str = "trellis";

/// An example of the attribute, for messages.
pub(crate) const EXAMPLE: &str = r##"#[trellis(schema = r#"{"type": "string"}"#)]"##;

/// A schema stated with `#[trellis(schema = ...)]`.
#[derive(Debug, Clone)]
pub(crate) struct Given {
    /// The schema, with canonical key order.
    pub schema: Json,
    /// Whether it accepts `null`.
    pub accepts_null: bool,
    /// The span of the string literal.
    pub span: Span,
}

/// Whether `attr` is `#[trellis(...)]`.
pub(crate) fn is_attr(attr: &syn::Attribute) -> bool {
    attr.path().is_ident(ATTR)
}

/// The schema stated by the `#[trellis(schema = ...)]` among `attrs`.
pub(crate) fn given(attrs: &[syn::Attribute]) -> syn::Result<Option<Given>> {
    let mut found = attrs.iter().filter(|a| is_attr(a));
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    if let Some(again) = found.next() {
        return Err(syn::Error::new(
            again.span(),
            "`#[trellis(...)]` is given twice here; keep one `schema`",
        ));
    }
    let mut errors = Errors::default();
    let args = parse_attr_args(attr)?;
    let mut a = Args::new(
        "#[trellis(...)]",
        attr.span(),
        &["schema"],
        args,
        &mut errors,
    );
    let lit = a.str("schema");
    a.finish();
    errors.finish()?;
    let Some(lit) = lit else {
        return Err(syn::Error::new(
            attr.span(),
            format!("`#[trellis(...)]` needs the JSON Schema: write {EXAMPLE}"),
        ));
    };
    parse(&lit).map(Some)
}

/// Checks the schema text of `lit`.
fn parse(lit: &LitStr) -> syn::Result<Given> {
    let at = |msg: String| syn::Error::new(lit.span(), msg);
    let text = lit.value();
    let schema = Json::parse(&text)
        .map_err(|e| at(format!("`schema` is not JSON: {e}; write e.g. {EXAMPLE}")))?;
    if !matches!(schema, Json::Object(_) | Json::Bool(_)) {
        return Err(at(
            "`schema` must be a JSON Schema object (or `true`/`false`), e.g. `{\"type\": \"string\"}`"
                .into(),
        ));
    }
    if let Some((key, path)) = reference(&schema, &mut Vec::new()) {
        return Err(at(format!(
            "`schema` uses `{key}` at `{path}`: manifest schemas are self-contained; \
             write the referenced schema inline"
        )));
    }
    if schema.get("$schema").is_some() {
        return Err(at(
            "`schema` declares `$schema`: manifest schemas are JSON Schema 2020-12 \
             without a `$schema` of their own; remove it"
                .into(),
        ));
    }
    let value = serde_json::to_value(&schema).map_err(|e| at(e.to_string()))?;
    let validator = jsonschema::draft202012::new(&value).map_err(|e| {
        let place = e.instance_path().to_string();
        let place = if place.is_empty() {
            String::new()
        } else {
            format!(" at `{place}`")
        };
        at(format!(
            "`schema` is not a valid JSON Schema (2020-12){place}: {e}"
        ))
    })?;
    Ok(Given {
        accepts_null: validator.is_valid(&serde_json::Value::Null),
        schema,
        span: lit.span(),
    })
}

/// The first reference keyword in `schema`, with its JSON pointer.
fn reference(schema: &Json, path: &mut Vec<String>) -> Option<(String, String)> {
    const KEYS: &[&str] = &["$ref", "$dynamicRef", "$recursiveRef"];
    match schema {
        Json::Object(map) => map.iter().find_map(|(k, v)| {
            if KEYS.contains(&k.as_str()) {
                return Some((k.clone(), format!("/{}", path.join("/"))));
            }
            path.push(k.clone());
            let found = reference(v, path);
            path.pop();
            found
        }),
        Json::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            path.push(i.to_string());
            let found = reference(v, path);
            path.pop();
            found
        }),
        _ => None,
    }
}

/// The fields of a struct or enum item.
fn fields_mut(item: &mut syn::Item) -> Vec<&mut syn::Field> {
    match item {
        syn::Item::Struct(s) => s.fields.iter_mut().collect(),
        syn::Item::Enum(e) => e
            .variants
            .iter_mut()
            .flat_map(|v| v.fields.iter_mut())
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes every `#[trellis(...)]` from `items` (fields and `use`s), so
/// the emitted code compiles.
pub(crate) fn strip(items: &mut [syn::Item]) {
    for item in items {
        if let syn::Item::Use(u) = item {
            u.attrs.retain(|a| !is_attr(a));
        }
        for field in fields_mut(item) {
            field.attrs.retain(|a| !is_attr(a));
        }
    }
}

/// An error for each `#[trellis(...)]` anywhere but on a field or a `use`.
pub(crate) fn misplaced(items: &[syn::Item]) -> Vec<syn::Error> {
    let mut attrs: Vec<&syn::Attribute> = Vec::new();
    for item in items {
        match item {
            syn::Item::Use(_) => {}
            syn::Item::Struct(s) => attrs.extend(&s.attrs),
            syn::Item::Enum(e) => {
                attrs.extend(&e.attrs);
                attrs.extend(e.variants.iter().flat_map(|v| &v.attrs));
            }
            syn::Item::Const(c) => attrs.extend(&c.attrs),
            syn::Item::Fn(f) => attrs.extend(&f.attrs),
            syn::Item::Type(t) => attrs.extend(&t.attrs),
            syn::Item::Impl(i) => attrs.extend(&i.attrs),
            _ => {}
        }
    }
    attrs
        .into_iter()
        .filter(|a| is_attr(a))
        .map(|a| {
            syn::Error::new(
                a.span(),
                "`#[trellis(schema = ...)]` goes on a field of a schema type (the schema of that \
                 field's value) or on a `use` that imports one external type (its schema for the \
                 whole module)",
            )
        })
        .collect()
}

/// The message for a type with no schema: the hatch to write, both ways.
pub(crate) fn unsupported(written: &str, full: &str, globs: &[String]) -> String {
    let imported = if full.contains("::") {
        format!("use {full};")
    } else {
        format!("use <path>::{full};")
    };
    let glob = if full.contains("::") || globs.is_empty() {
        String::new()
    } else {
        format!(
            " (names brought in by `use {}::*` cannot be resolved: import `{written}` by name)",
            globs.join("::*`, `use ")
        )
    };
    let named = if written == full {
        format!("`{written}`")
    } else {
        format!("`{written}` (`{full}`)")
    };
    format!(
        "type {named} has no JSON Schema: it is not declared in this contract module and is \
         not a well-known type{glob}; state the JSON its serde implementation writes, on the \
         field: {EXAMPLE}, or once for the module, on its import: {EXAMPLE} {imported} \
         (well-known types: the README's \"Types a contract may use\")"
    )
}
