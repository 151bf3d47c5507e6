//! The derived JSON Schemas describe exactly what serde_json puts on the
//! wire: real values of the example types validate, malformed ones do not.

use std::collections::BTreeMap;

use documents_example::documents;
use items_example::items;
use serde::Serialize;

fn schema_of(manifest: &str, name: &str) -> jsonschema::Validator {
    let m: serde_json::Value = serde_json::from_str(manifest).expect("manifest json");
    let schema = m["schemas"][name].clone();
    assert!(schema.is_object(), "schema {name} missing");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn assert_valid<T: Serialize>(manifest: &str, name: &str, value: &T) {
    let validator = schema_of(manifest, name);
    let instance = serde_json::to_value(value).expect("serializes");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{name} rejected {instance}: {errors:?}");
}

fn assert_invalid(manifest: &str, name: &str, instance: serde_json::Value) {
    assert!(
        !schema_of(manifest, name).is_valid(&instance),
        "{name} accepted {instance}"
    );
}

#[test]
fn item_values_match_their_schema() {
    let m = items::MANIFEST_JSON;
    let mut item = items::Item {
        id: "i1".into(),
        title: "Chair".into(),
        status: items::Status::Published,
        tags: vec!["wood".into()],
        price_cents: Some(4_500),
    };
    assert_valid(m, "Item", &item);
    item.price_cents = None;
    assert_valid(m, "Item", &item);
    // serde accepts a missing `tags` (default) and `priceCents`.
    let minimal = serde_json::json!({"id": "i2", "title": "T", "status": "draft"});
    let _: items::Item = serde_json::from_value(minimal.clone()).expect("serde accepts");
    assert!(schema_of(m, "Item").is_valid(&minimal));

    assert_invalid(m, "Item", serde_json::json!({"id": "i", "title": "t"}));
    assert_invalid(
        m,
        "Item",
        serde_json::json!({"id": "i", "title": "t", "status": "gone"}),
    );
    assert_invalid(
        m,
        "Item",
        serde_json::json!({"id": 1, "title": "t", "status": "draft"}),
    );
    assert_invalid(
        m,
        "Item",
        serde_json::json!({"id": "i", "title": "t", "status": "draft", "priceCents": -1}),
    );
    // Unknown fields stay allowed so additive rollouts work.
    assert!(schema_of(m, "Item").is_valid(
        &serde_json::json!({"id": "i", "title": "t", "status": "draft", "addedLater": true})
    ));
}

#[test]
fn internally_tagged_errors_match_their_schema() {
    let m = documents::MANIFEST_JSON;
    assert_valid(
        m,
        "FilesError",
        &documents::FilesError::NotFound { key: "a".into() },
    );
    assert_valid(
        m,
        "FilesError",
        &documents::FilesError::InvalidKey {
            key: ".a".into(),
            reason: "leading dot".into(),
        },
    );
    assert_invalid(m, "FilesError", serde_json::json!({"kind": "notFound"}));
    assert_invalid(
        m,
        "FilesError",
        serde_json::json!({"kind": "other", "key": "a"}),
    );
}

#[test]
fn nested_and_optional_values_match_their_schema() {
    let m = documents::MANIFEST_JSON;
    let file = documents::FileEntry {
        key: "a/b.pdf".into(),
        size: 10,
        content_type: None,
        digest: "abc".into(),
        metadata: BTreeMap::new(),
        modified_ms: 1,
    };
    assert_valid(
        m,
        "ListResponse",
        &documents::ListResponse {
            entries: vec![file.clone()],
            count: 1,
            offset: 0,
            limit: 10,
            next_offset: None,
        },
    );
    // `trellis::ReceiveGrant` has a built-in schema: a real grant matches it.
    assert_valid(
        m,
        "DownloadResponse",
        &documents::DownloadResponse {
            file: file.clone(),
            grant: trellis::ReceiveGrant {
                id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
                size: 10,
                digest: "SHA-256=abc".into(),
                expires_at_ms: 5,
            },
        },
    );
    assert_invalid(
        m,
        "DownloadResponse",
        serde_json::json!({"file": serde_json::to_value(&file).unwrap(), "grant": {"id": "x", "size": 1}}),
    );
    assert_valid(
        m,
        "UploadInput",
        &documents::UploadInput {
            key: "k".into(),
            content_type: "application/pdf".into(),
            metadata: BTreeMap::from([("owner".into(), "ann".into())]),
        },
    );
    assert_invalid(
        m,
        "ListResponse",
        serde_json::json!({"entries": [{"key": "k", "size": "big", "digest": "d", "modifiedMs": 1}], "count": 1, "offset": 0, "limit": 1, "nextOffset": null}),
    );
    assert_invalid(m, "ListRequest", serde_json::json!({"limit": -1}));
}
