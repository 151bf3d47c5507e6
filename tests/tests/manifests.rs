//! Conformance of emitted manifests: the published JSON Schema, byte
//! equality between the macro and build.rs paths, digest stability, and
//! which edits move the digest.

use std::path::{Path, PathBuf};

use trellis_codegen::{Manifest, parse_source};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate sits in the workspace")
        .to_path_buf()
}

fn example_source(name: &str) -> (String, PathBuf) {
    let path = workspace()
        .join("examples")
        .join(name)
        .join("src/contract.rs");
    let text = std::fs::read_to_string(&path).expect("example source");
    (text, path)
}

fn parse_one(text: &str, path: &Path) -> Manifest {
    let mut contracts = parse_source(text, path).expect("contract parses");
    assert_eq!(contracts.len(), 1);
    contracts.remove(0).manifest
}

const EXAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "documents",
        "documents@v1",
        documents_example::documents::MANIFEST_JSON,
        documents_example::documents::DIGEST,
    ),
    (
        "items",
        "items@v1",
        items_example::items::MANIFEST_JSON,
        items_example::items::DIGEST,
    ),
];

/// The published format schema lives beside the design docs, outside this
/// repository (`../shared/`); `TRELLIS_CONTRACT_SCHEMA` overrides the path.
fn format_schema() -> Option<serde_json::Value> {
    let path = std::env::var_os("TRELLIS_CONTRACT_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/trellis.contract.v1.schema.json"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("format schema is JSON")),
        Err(e) => {
            assert!(
                std::env::var_os("TRELLIS_REQUIRE_FORMAT_SCHEMA").is_none(),
                "format schema {} is required but unreadable: {e}",
                path.display()
            );
            eprintln!(
                "warning: format schema {} not readable ({e}); schema conformance NOT checked",
                path.display()
            );
            None
        }
    }
}

#[test]
fn committed_manifests_validate_against_the_format_schema() {
    let Some(schema) = format_schema() else {
        return;
    };
    let validator = jsonschema::validator_for(&schema).expect("format schema compiles");
    for (name, id, _, _) in EXAMPLES {
        let path = workspace()
            .join("examples")
            .join(name)
            .join("contracts")
            .join(format!("{id}.json"));
        let text = std::fs::read_to_string(&path).expect("committed manifest exists");
        let instance: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    // The validator is not vacuous: a removed v1 concept is refused.
    let bad = serde_json::json!({
        "format": "trellis.contract.v1", "id": "x@v1", "displayName": "X",
        "description": "x", "kind": "service", "subjects": {}
    });
    assert!(!validator.is_valid(&bad));
}

#[test]
fn committed_manifests_equal_macro_and_build_rs_output() {
    for (name, id, macro_json, macro_digest) in EXAMPLES {
        let committed = std::fs::read_to_string(
            workspace()
                .join("examples")
                .join(name)
                .join("contracts")
                .join(format!("{id}.json")),
        )
        .expect("committed manifest exists");
        assert_eq!(
            &committed, macro_json,
            "{name}: committed file differs from MANIFEST_JSON"
        );

        // The build.rs path, run again here, is byte-identical and stable.
        let (text, path) = example_source(name);
        let first = parse_one(&text, &path);
        let second = parse_one(&text, &path);
        assert_eq!(first.to_canonical_string(), *macro_json);
        assert_eq!(second.to_canonical_string(), *macro_json);
        assert_eq!(first.digest(), *macro_digest);
        assert_eq!(second.digest(), *macro_digest);
        assert_eq!(
            trellis_codegen::digest_text(macro_json).expect("json"),
            *macro_digest
        );
    }
}

#[test]
fn manifest_text_is_canonical() {
    for (_, _, json, _) in EXAMPLES {
        assert!(json.ends_with("}\n"));
        assert!(!json[..json.len() - 1].contains('\n'), "no raw newlines");
        let reparsed = trellis_codegen::Json::parse(json).expect("json");
        assert_eq!(format!("{}\n", reparsed.to_canonical_string()), *json);
        let checked = trellis_codegen::check_manifest(json).expect("own manifests check clean");
        assert!(checked.canonical);
    }
}

fn digest_after(name: &str, from: &str, to: &str) -> (String, String) {
    let (text, path) = example_source(name);
    assert!(
        text.contains(from),
        "fixture text `{from}` not found in {name}"
    );
    let edited = text.replacen(from, to, 1);
    (
        parse_one(&text, &path).digest(),
        parse_one(&edited, &path).digest(),
    )
}

#[test]
fn doc_comment_edits_keep_the_digest() {
    let cases = [
        (
            "documents",
            "/// List stored files, one page at a time (live offsets).",
            "/// Lists files.",
        ),
        (
            "documents",
            "/// Temporary uploaded files awaiting processing.",
            "/// Scratch space.",
        ),
        (
            "documents",
            "/// Emitted once a document is stored.",
            "/// Fired after storing.",
        ),
        (
            "documents",
            "/// Stores and serves documents.",
            "/// Serves documents.",
        ),
        ("items", "/// Item records by id.", "/// All the items."),
        (
            "items",
            "/// Display title.",
            "/// The title shown to people.",
        ),
        (
            "documents",
            "description = \"Stores and serves documents\"",
            "description = \"Serves documents\"",
        ),
        (
            "documents",
            "display_name = \"Documents\"",
            "display_name = \"Docs\"",
        ),
    ];
    for (name, from, to) in cases {
        let (before, after) = digest_after(name, from, to);
        assert_eq!(before, after, "{name}: `{from}` -> `{to}` moved the digest");
    }
}

#[test]
fn semantic_edits_move_the_digest() {
    let cases = [
        (
            "items",
            "purpose = \"Store item records\"",
            "purpose = \"Keep item records\"",
        ),
        ("items", "history = 8", "history = 9"),
        ("items", "pub tags: Vec<String>,", "pub tags: Vec<u32>,"),
        (
            "documents",
            "capabilities(call = [READ]))]\n    fn files_list",
            "capabilities(call = [WRITE]))]\n    fn files_list",
        ),
        (
            "documents",
            "pub const READ: &str = \"read\";",
            "pub const READ: &str = \"view\";",
        ),
        (
            "documents",
            "max_bytes = 1_073_741_824",
            "max_bytes = 1_073_741_825",
        ),
        (
            "documents",
            "params = [\"/key\"]",
            "params = [\"/contentType\"]",
        ),
    ];
    for (name, from, to) in cases {
        let (before, after) = digest_after(name, from, to);
        assert_ne!(before, after, "{name}: `{from}` -> `{to}` kept the digest");
    }
}
