#![allow(missing_docs)]
//! Every serde shape the schema derivation supports, checked against real
//! serde_json output: each value validates against the schema derived for
//! its type, and near-miss values are rejected.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

#[trellis::contract(
    id = "shapes@v1",
    display_name = "Shapes",
    description = "Serde shape oracle"
)]
pub mod shapes {
    use std::collections::{BTreeMap, HashSet};

    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Inner {
        pub a: String,
        #[serde(default)]
        pub b: u8,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub struct Outer {
        #[serde(rename = "ident")]
        pub id: String,
        pub small: i8,
        pub letter: char,
        pub ratio: f64,
        pub fixed: [u16; 3],
        pub set: HashSet<String>,
        pub boxed: Box<Inner>,
        pub any: serde_json::Value,
        #[serde(skip)]
        pub cache: Vec<u8>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub notes: Vec<String>,
        #[serde(flatten)]
        pub inner: Inner,
        pub unit: (),
    }

    #[derive(Serialize, Deserialize)]
    pub struct WithExtra {
        pub name: String,
        #[serde(flatten)]
        pub extra: BTreeMap<String, u32>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Meters(pub f64);

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    pub struct Label {
        pub text: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase", rename_all_fields = "camelCase")]
    pub enum External {
        Empty,
        Length(Meters),
        Pair {
            left_side: Label,
            right_side: Option<Label>,
        },
    }

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "t", content = "c")]
    pub enum Adjacent {
        Ping,
        Text(String),
        Point { x: i32, y: i32 },
    }

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Untagged {
        Num(u32),
        Word(String),
        Obj { k: bool },
    }

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum Internal {
        Plain,
        Wrapped(Inner),
        Fields {
            n: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            maybe: Option<String>,
        },
    }

    #[kv(purpose = "keeps shapes reachable", schema = Outer)]
    pub struct Outers;
}

fn validator(name: &str) -> jsonschema::Validator {
    let m: serde_json::Value = serde_json::from_str(shapes::MANIFEST_JSON).expect("json");
    jsonschema::validator_for(&m["schemas"][name]).expect("schema compiles")
}

fn ok<T: Serialize>(name: &str, value: &T) {
    let instance = serde_json::to_value(value).expect("serializes");
    let errors: Vec<String> = validator(name)
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{name} rejected {instance}: {errors:?}");
}

fn bad(name: &str, instance: serde_json::Value) {
    assert!(
        !validator(name).is_valid(&instance),
        "{name} accepted {instance}"
    );
}

fn inner() -> shapes::Inner {
    shapes::Inner {
        a: "x".into(),
        b: 7,
    }
}

#[test]
fn structs_with_renames_skips_and_flatten() {
    let outer = shapes::Outer {
        id: "o".into(),
        small: -5,
        letter: 'z',
        ratio: 0.5,
        fixed: [1, 2, 3],
        set: HashSet::from(["a".to_owned()]),
        boxed: Box::new(inner()),
        any: serde_json::json!({"free": ["form"]}),
        cache: vec![1, 2],
        notes: Vec::new(),
        inner: inner(),
        unit: (),
    };
    ok("Outer", &outer);
    let mut json = serde_json::to_value(&outer).expect("json");
    assert!(json.get("CACHE").is_none() && json.get("a").is_some());
    json["SMALL"] = serde_json::json!(200);
    bad("Outer", json.clone());
    json["SMALL"] = serde_json::json!(1);
    json["LETTER"] = serde_json::json!("too long");
    bad("Outer", json.clone());
    json["LETTER"] = serde_json::json!("y");
    json["FIXED"] = serde_json::json!([1, 2]);
    bad("Outer", json.clone());
    json["FIXED"] = serde_json::json!([1, 2, 3]);
    json.as_object_mut().expect("object").remove("a");
    bad("Outer", json);

    ok(
        "WithExtra",
        &shapes::WithExtra {
            name: "n".into(),
            extra: BTreeMap::from([("k".into(), 3)]),
        },
    );
    bad(
        "WithExtra",
        serde_json::json!({"name": "n", "k": "not a number"}),
    );
}

#[test]
fn externally_tagged_enums() {
    ok("External", &shapes::External::Empty);
    ok("External", &shapes::External::Length(shapes::Meters(2.5)));
    ok(
        "External",
        &shapes::External::Pair {
            left_side: shapes::Label { text: "l".into() },
            right_side: None,
        },
    );
    let pair = serde_json::to_value(shapes::External::Pair {
        left_side: shapes::Label { text: "l".into() },
        right_side: Some(shapes::Label { text: "r".into() }),
    })
    .expect("json");
    assert_eq!(
        pair,
        serde_json::json!({"pair": {"leftSide": "l", "rightSide": "r"}})
    );
    ok("External", &pair);
    bad("External", serde_json::json!("Empty"));
    bad("External", serde_json::json!({"length": "far"}));
    bad("External", serde_json::json!({"pair": {"rightSide": "r"}}));
}

#[test]
fn adjacent_untagged_and_internal_enums() {
    ok("Adjacent", &shapes::Adjacent::Ping);
    ok("Adjacent", &shapes::Adjacent::Text("hi".into()));
    ok("Adjacent", &shapes::Adjacent::Point { x: 1, y: -1 });
    bad("Adjacent", serde_json::json!({"t": "Text", "c": 5}));
    bad("Adjacent", serde_json::json!({"t": "Point"}));

    ok("Untagged", &shapes::Untagged::Num(3));
    ok("Untagged", &shapes::Untagged::Word("w".into()));
    ok("Untagged", &shapes::Untagged::Obj { k: true });
    bad("Untagged", serde_json::json!(-3));
    bad("Untagged", serde_json::json!({"k": "yes"}));

    ok("Internal", &shapes::Internal::Plain);
    ok("Internal", &shapes::Internal::Wrapped(inner()));
    ok("Internal", &shapes::Internal::Fields { n: 1, maybe: None });
    ok(
        "Internal",
        &shapes::Internal::Fields {
            n: 1,
            maybe: Some("m".into()),
        },
    );
    bad("Internal", serde_json::json!({"type": "Wrapped"}));
    bad("Internal", serde_json::json!({"type": "Nope"}));
    bad("Internal", serde_json::json!({"n": 1}));
}

#[test]
fn only_reachable_schemas_count_for_the_digest() {
    // `Outer` is reachable through the kv resource; the enums above are not,
    // so editing them would not move the digest (they are still emitted).
    let m: serde_json::Value = serde_json::from_str(shapes::MANIFEST_JSON).expect("json");
    let projection = trellis_codegen::projection(
        &trellis_codegen::Json::parse(shapes::MANIFEST_JSON).expect("json"),
    );
    let kept = projection
        .get("schemas")
        .and_then(|s| s.as_object())
        .expect("schemas");
    assert!(kept.contains_key("Outer"));
    assert!(!kept.contains_key("Adjacent"));
    assert!(m["schemas"]["Adjacent"].is_object());
}
