//! Round trips: schemas derived from Rust source, turned back into Rust
//! types, derive the same schemas; fallbacks, formats and names.

use super::classify::is_null_schema;
use super::names::{make_ident, snake_case};
use super::*;
use crate::schema::SchemaTypes;
use trellis_manifest::json::Object;

const DOCUMENTS: &str = include_str!("../../../../examples/documents/contracts/documents@v1.json");

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
        Json::parse(
            r#"{"anyOf":[{"type":"string","format":"ipv4"},{"type":"string","format":"ipv6"}]}"#,
        )
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
