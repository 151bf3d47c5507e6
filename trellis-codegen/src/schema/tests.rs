//! External types end to end through the parser: paths resolved through
//! the module's imports, the well-known table, and the escape hatch with
//! its compile-time checks.

use crate::builder::parse_source;
use trellis_manifest::Manifest;

fn contract(body: &str) -> Result<Manifest, String> {
    let src = format!(
        r#"#[trellis::contract(id = "ext@v1", display_name = "Ext", description = "External types")]
        pub mod ext {{
            use serde::{{Deserialize, Serialize}};
            {body}
        }}"#
    );
    parse_source(&src, "lib.rs".as_ref())
        .map(|mut c| c.remove(0).manifest)
        .map_err(|e| e.to_string())
}

fn schema_of(body: &str, name: &str) -> String {
    let manifest = contract(body).unwrap_or_else(|e| panic!("{e}"));
    manifest.schemas[name].to_canonical_string()
}

fn error_of(body: &str) -> String {
    match contract(body) {
        Ok(_) => panic!("accepted: {body}"),
        Err(e) => e,
    }
}

#[test]
fn well_known_types_resolve_through_imports_and_full_paths() {
    let schema = schema_of(
        r#"use uuid::Uuid as Id;
           use std::net;
           use chrono::{DateTime, Utc};
           #[derive(Serialize, Deserialize)]
           pub struct T {
               pub a: Id,
               pub b: ::uuid::Uuid,
               pub c: uuid::Uuid,
               pub d: net::Ipv4Addr,
               pub e: DateTime<Utc>,
               pub f: core::num::NonZeroU8,
               pub g: Option<chrono::NaiveDate>,
           }"#,
        "T",
    );
    for field in ["a", "b", "c"] {
        assert!(
            schema.contains(&format!(r#""{field}":{{"format":"uuid","type":"string"}}"#)),
            "{schema}"
        );
    }
    assert!(schema.contains(r#""d":{"format":"ipv4","type":"string"}"#));
    assert!(schema.contains(r#""e":{"format":"date-time","type":"string"}"#));
    assert!(schema.contains(r#""f":{"maximum":255,"minimum":1,"type":"integer"}"#));
    assert!(
        schema.contains(r#""g":{"anyOf":[{"format":"date","type":"string"},{"type":"null"}]}"#)
    );
}

#[test]
fn generic_wrappers_and_wide_integers() {
    let schema = schema_of(
        r#"use std::borrow::Cow;
           use std::num::{NonZero, NonZeroI16};
           use std::collections::HashMap as Map;
           #[derive(Serialize, Deserialize)]
           pub struct T {
               pub a: Cow<'static, str>,
               pub b: NonZero<u16>,
               pub c: NonZeroI16,
               pub d: u128,
               pub e: i128,
               pub f: std::num::NonZeroI128,
               pub g: Box<str>,
               pub h: Map<String, bool>,
               pub i: std::sync::Arc<str>,
           }"#,
        "T",
    );
    assert!(schema.contains(r#""a":{"type":"string"}"#), "{schema}");
    assert!(schema.contains(r#""b":{"maximum":65535,"minimum":1,"type":"integer"}"#));
    assert!(
        schema.contains(
            r#""c":{"maximum":32767,"minimum":-32768,"not":{"const":0},"type":"integer"}"#
        )
    );
    assert!(schema.contains(r#""d":{"minimum":0,"type":"integer"}"#));
    assert!(schema.contains(r#""e":{"type":"integer"}"#));
    assert!(schema.contains(r#""f":{"not":{"const":0},"type":"integer"}"#));
    assert!(schema.contains(r#""g":{"type":"string"}"#));
    assert!(schema.contains(r#""i":{"type":"string"}"#));
    assert!(schema.contains(r#""h":{"additionalProperties":{"type":"boolean"},"type":"object"}"#));
}

#[test]
fn time_types_are_refused_with_the_fix() {
    let e = error_of(
        r#"#[derive(Serialize, Deserialize)]
           pub struct T { pub at: time::OffsetDateTime }"#,
    );
    assert!(e.contains("`time::OffsetDateTime` cannot be used"), "{e}");
    assert!(e.contains("serde-human-readable"), "{e}");
    assert!(
        e.contains(r#"#[serde(with = "time::serde::rfc3339")]"#),
        "{e}"
    );
    assert!(e.contains("chrono::DateTime<Utc>"), "{e}");
}

#[test]
fn unknown_external_types_show_the_attribute_to_write() {
    let e = error_of(
        r#"use semver::Version;
           #[derive(Serialize, Deserialize)]
           pub struct T { pub v: Version }"#,
    );
    assert!(
        e.contains("type `Version` (`semver::Version`) has no JSON Schema"),
        "{e}"
    );
    assert!(
        e.contains(r##"#[trellis(schema = r#"{"type": "string"}"#)]"##),
        "{e}"
    );
    assert!(e.contains("use semver::Version;"), "{e}");

    let e = error_of(
        r#"use chrono::prelude::*;
           #[derive(Serialize, Deserialize)]
           pub struct T { pub at: DateTime<Utc> }"#,
    );
    assert!(
        e.contains("`use chrono::prelude::*` cannot be resolved"),
        "{e}"
    );
}

#[test]
fn stated_schemas_on_fields_and_imports() {
    let body = r##"#[trellis(schema = r#"{"type": "string", "pattern": "^[0-9]+[.][0-9]+[.][0-9]+$"}"#)]
           use semver::Version;
           #[derive(Serialize, Deserialize)]
           pub struct T {
               pub v: Version,
               pub w: Option<semver::Version>,
               #[serde(with = "time::serde::rfc3339")]
               #[trellis(schema = r#"{"format": "date-time", "type": "string"}"#)]
               pub at: time::OffsetDateTime,
               #[trellis(schema = r#"{"anyOf": [{"type": "string"}, {"type": "null"}]}"#)]
               pub maybe: Option<mime::Mime>,
           }"##;
    let schema = schema_of(body, "T");
    let version = r#"{"pattern":"^[0-9]+[.][0-9]+[.][0-9]+$","type":"string"}"#;
    assert!(schema.contains(&format!(r#""v":{version}"#)), "{schema}");
    assert!(schema.contains(&format!(r#""w":{{"anyOf":[{version},{{"type":"null"}}]}}"#)));
    assert!(schema.contains(r#""at":{"format":"date-time","type":"string"}"#));
    assert!(schema.contains(r#""maybe":{"anyOf":[{"type":"string"},{"type":"null"}]}"#));

    // The emitted items no longer carry the attribute.
    let src = format!(
        r#"#[trellis::contract(id = "ext@v1", display_name = "Ext", description = "E")]
        pub mod ext {{ use serde::{{Deserialize, Serialize}}; {body} }}"#
    );
    let contracts = parse_source(&src, "lib.rs".as_ref()).expect("parses");
    let items = &contracts[0].items;
    let text = quote::quote!(#(#items)*).to_string();
    assert!(!text.contains("trellis"), "{text}");
}

#[test]
fn a_stated_schema_is_part_of_the_digest() {
    let with = |schema: &str| {
        let body = format!(
            r##"#[derive(Serialize, Deserialize)]
               pub struct T {{ #[trellis(schema = r#"{schema}"#)] pub v: semver::Version }}
               #[kv(purpose = "keeps T reachable", schema = T)]
               pub struct Ts;"##
        );
        contract(&body).unwrap_or_else(|e| panic!("{e}")).digest()
    };
    let a = with(r#"{"type": "string"}"#);
    assert_eq!(
        a,
        with(r#"{ "type" : "string" }"#),
        "whitespace is not semantic"
    );
    assert_ne!(a, with(r#"{"type": "string", "minLength": 1}"#));
}

#[test]
fn stated_schemas_are_checked() {
    let field = |schema: &str, ty: &str| {
        error_of(&format!(
            r##"#[derive(Serialize, Deserialize)]
               pub struct T {{ #[trellis(schema = r#"{schema}"#)] pub v: {ty} }}"##
        ))
    };
    let e = field(r#"{"type": "string""#, "semver::Version");
    assert!(e.contains("`schema` is not JSON"), "{e}");
    let e = field(r#"{"type": "strin"}"#, "semver::Version");
    assert!(
        e.contains("`schema` is not a valid JSON Schema (2020-12)"),
        "{e}"
    );
    let e = field(r#"{"minLength": -1}"#, "semver::Version");
    assert!(e.contains("not a valid JSON Schema"), "{e}");
    let e = field(r#"{"pattern": "(unclosed"}"#, "semver::Version");
    assert!(e.contains("not a valid JSON Schema"), "{e}");
    let e = field(r#"{"items": {"$ref": "Other"}}"#, "semver::Version");
    assert!(e.contains("`$ref` at `/items`"), "{e}");
    let e = field(r#""string""#, "semver::Version");
    assert!(e.contains("must be a JSON Schema object"), "{e}");
    let e = field(r#"{"type": "string"}"#, "Option<semver::Version>");
    assert!(e.contains("rejects `null`"), "{e}");
    let e = field(
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema"}"#,
        "semver::Version",
    );
    assert!(e.contains("declares `$schema`"), "{e}");
}

#[test]
fn misuse_of_the_attribute_is_reported() {
    let e = error_of(
        r##"#[trellis(schema = r#"{"type": "string"}"#)]
           #[derive(Serialize, Deserialize)]
           pub struct T { pub v: String }"##,
    );
    assert!(e.contains("goes on a field of a schema type"), "{e}");
    let e = error_of(
        r##"#[trellis(schema = r#"{"type": "string"}"#)]
           use semver::{Version, VersionReq};"##,
    );
    assert!(e.contains("imports exactly one type"), "{e}");
    let e = error_of(
        r#"#[derive(Serialize, Deserialize)]
           pub struct T { #[trellis(shema = "{}")] pub v: semver::Version }"#,
    );
    assert!(e.contains("did you mean `schema`?"), "{e}");
    let e = error_of(
        r#"#[derive(Serialize, Deserialize)]
           pub struct T { #[serde(with = "my_format")] pub v: String }"#,
    );
    assert!(e.contains("state the shape it writes on the field"), "{e}");
    let e = error_of(
        r##"#[trellis(schema = r#"{"type": "string"}"#)]
           use semver::Version;
           #[trellis(schema = r#"{"type": "string"}"#)]
           use semver::Version as V;"##,
    );
    assert!(e.contains("stated twice"), "{e}");
}
