//! Stubs from real and synthetic manifests: formatting, docs, digests,
//! nested accessors, built-in and several errors, typed formats.

use super::*;

const DOCUMENTS: &str = include_str!("../../../examples/documents/contracts/documents@v1.json");

#[test]
fn documents_stub_is_formatted_documented_and_complete() {
    let (module, source) =
        client_source(DOCUMENTS, "documents@v1.json", None, None).expect("stub generates");
    assert_eq!(module, "documents");
    for needle in [
        "pub mod documents",
        "pub struct FileKey",
        "pub enum FilesError",
        "impl ::trellis::__private::RpcSurface for surface::rpc::FilesList",
        "impl ::trellis::__private::OperationSurface for surface::operation::FilesUpload",
        "SendOperationClient",
        "impl ::trellis::__private::EventSurface for surface::event::DocumentsCreated",
        "pub struct Client",
        "/// Download one file through a bounded receive grant.",
    ] {
        assert!(source.contains(needle), "missing `{needle}` in:\n{source}");
    }
    // Deterministic.
    assert_eq!(
        client_source(DOCUMENTS, "documents@v1.json", None, None)
            .expect("again")
            .1,
        source
    );
}

#[test]
fn a_digest_mismatch_or_an_invalid_manifest_fails_with_the_reason() {
    let err = client_source(
        DOCUMENTS,
        "d.json",
        None,
        Some(("AAAA", "the pinned digest")),
    )
    .expect_err("pinned digest differs");
    assert!(
        matches!(err, StubError::DigestMismatch { ref expected, .. } if expected == "AAAA"),
        "{err}"
    );
    let edited = DOCUMENTS.replace("\"maxBytes\":1073741824", "\"maxBytes\":1");
    let actual = trellis_manifest::check_manifest(DOCUMENTS)
        .expect("valid")
        .digest;
    let err = client_source(&edited, "d.json", None, Some((&actual, "d.digest")))
        .expect_err("edited content");
    assert!(err.to_string().contains("was edited"), "{err}");
    // The format drops unknown fields: the stub is the same as without one.
    let unknown = DOCUMENTS.replacen("{", "{\"surprise\":1,", 1);
    let (_, ignored) = client_source(&unknown, "documents@v1.json", None, None)
        .expect("an unknown field is ignored");
    let (_, plain) =
        client_source(DOCUMENTS, "documents@v1.json", None, None).expect("stub generates");
    assert_eq!(ignored, plain);
    let broken = DOCUMENTS.replace("\"kind\":\"service\"", "\"kind\":\"robot\"");
    let err = client_source(&broken, "d.json", None, None).expect_err("bad kind");
    assert!(matches!(err, StubError::Invalid { .. }), "{err}");
}

const DIRECTORY: &str = include_str!("../../../tests/fixtures/directory@v1.json");

/// Source text without whitespace, so checks ignore line breaking.
fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn directory() -> String {
    client_source(DIRECTORY, "directory@v1.json", None, None)
        .expect("stub generates")
        .1
}

#[test]
fn multi_segment_names_nest_accessors() {
    let source = directory();
    for needle in [
        // client.rpc.auth.capabilities.list(&input)
        "pub struct Rpc { /// The `Auth.*` RPCs. pub auth: AuthRpc,",
        "pub struct AuthRpc { inner: ::trellis::__private::RpcClient, /// The `Auth.Capabilities.*` RPCs. pub capabilities: AuthCapabilitiesRpc, }",
        "impl AuthCapabilitiesRpc { /// Calls `Auth.Capabilities.List`.",
        "`AuthError`, `UnexpectedError`. pub async fn list(",
        "auth: AuthRpc { inner: runtime.rpc_client(), capabilities: AuthCapabilitiesRpc { inner: runtime.rpc_client(), }, }",
        // A group with both a method and a nested group.
        "pub struct NotesRpc { inner: ::trellis::__private::RpcClient, /// The `Notes.Archive.*` RPCs. pub archive: NotesArchiveRpc, }",
        "impl NotesRpc { /// Calls `Notes.Get`. pub async fn get(",
        "impl NotesArchiveRpc { /// Calls `Notes.Archive.Put`.",
        "`ValidationError`. pub async fn put(",
        // Operations and events nest the same way.
        "pub struct ReportsOperations { /// The `Reports.Daily.*` operations. pub daily: ReportsDailyOperations, }",
        "pub struct ReportsDailyOperations { /// `Reports.Daily.Build`: `.input(input).start()`, or `.attach(id)`. pub build:",
        "pub struct AuthCapabilitiesEventListeners { /// Listens to `Auth.Capabilities.Changed` events",
        "pub struct AuthCapabilitiesList;",
        "const SUBJECT: &'static str = \"rpc.v1.Auth.Capabilities.List\";",
    ] {
        assert!(
            squash(&source).contains(&squash(needle)),
            "missing `{needle}` in:\n{source}"
        );
    }
    let file: syn::File = syn::parse_str(&source).expect("parses");
    assert!(!file.items.is_empty());
}

#[test]
fn builtin_errors_use_the_runtime_enum() {
    let source = directory();
    for needle in [
        // Built-in errors only.
        "type Reply = ::core::result::Result<::core::result::Result<CapabilityPage, ::trellis::BuiltinError>, ::trellis::CallError,>;",
        "/// Built-in errors (`::trellis::BuiltinError`): `AuthError`, `UnexpectedError`.",
        // One declared error: its type, as before.
        "type Reply = ::core::result::Result<::core::result::Result<Note, NotesError>, ::trellis::CallError,>;",
        // Declared and built-in: an untagged enum, built-in first.
        "#[serde(untagged)] pub enum NotesArchivePutError { /// A built-in error of the format. Builtin(::trellis::BuiltinError), /// The declared error `NotesError`. NotesError(NotesError), }",
        "::core::result::Result<::core::result::Result<NoteId, NotesArchivePutError>, ::trellis::CallError,>",
    ] {
        assert!(
            squash(&source).contains(&squash(needle)),
            "missing `{needle}` in:\n{source}"
        );
    }
}

const STAMPS: &str = include_str!("../../../tests/fixtures/stamps@v1.json");

#[test]
fn typed_formats_are_opt_in() {
    let generate = |formats| {
        client_source_with(STAMPS, "stamps@v1.json", None, None, formats)
            .expect("stub generates")
            .1
    };
    // Without options: every format string is a `String`, and the
    // output is exactly `client_source`'s.
    let plain = generate(Formats::default());
    assert_eq!(
        plain,
        client_source(STAMPS, "stamps@v1.json", None, None)
            .expect("stub generates")
            .1
    );
    for needle in [
        "pub at: String,",
        "pub day: String,",
        "pub expires: Option<String>,",
        "pub holidays: ::std::collections::BTreeMap<String, String>,",
        "pub host: String,",
        "pub id: String,",
        "pub related: ::std::collections::BTreeSet<String>,",
        "pub reviewed: Option<String>,",
        "pub seen: Vec<String>,",
        "pub site: String,",
        "pub struct StampId(pub String);",
        // `anyOf [ipv4, ipv6]` is an untagged enum of two strings.
        "#[serde(untagged)] pub enum StampPeer { /// Branch 0 of the untagged union. String(String), /// Branch 1 of the untagged union. String2(String), }",
    ] {
        assert!(
            squash(&plain).contains(&squash(needle)),
            "missing `{needle}` in:\n{plain}"
        );
    }
    for typed in [
        "::uuid::",
        "::chrono::",
        "::url::",
        "::std::net::",
        "Typed formats",
    ] {
        assert!(!plain.contains(typed), "`{typed}` in:\n{plain}");
    }

    // Each option maps its own formats only.
    let uuid = generate(Formats {
        uuid: true,
        ..Formats::default()
    });
    for needle in [
        "// Typed formats: uuid.",
        "pub id: ::uuid::Uuid,",
        "pub related: ::std::collections::BTreeSet<::uuid::Uuid>,",
        "pub struct StampId(pub ::uuid::Uuid);",
        "pub at: String,",
        "pub site: String,",
        "pub host: String,",
        // A format next to a `pattern` stays a `String`.
        "pub code: String,",
    ] {
        assert!(
            squash(&uuid).contains(&squash(needle)),
            "missing `{needle}` in:\n{uuid}"
        );
    }

    let all = generate(Formats::all());
    for needle in [
        "// Typed formats: uuid, chrono, url, net.",
        "pub at: ::chrono::DateTime<::chrono::FixedOffset>,",
        "pub day: ::chrono::NaiveDate,",
        "pub expires: Option<::chrono::DateTime<::chrono::FixedOffset>>,",
        "pub holidays: ::std::collections::BTreeMap<String, ::chrono::NaiveDate>,",
        "pub host: ::std::net::Ipv4Addr,",
        "pub peer: ::std::net::IpAddr,",
        "pub reviewed: Option<::chrono::NaiveDate>,",
        "pub seen: Vec<::chrono::DateTime<::chrono::FixedOffset>>,",
        "pub site: ::url::Url,",
        "pub code: String,",
        "/// Required field `at`. Format `date-time`.",
    ] {
        assert!(
            squash(&all).contains(&squash(needle)),
            "missing `{needle}` in:\n{all}"
        );
    }
    assert!(!all.contains("StampPeer"), "{all}");
    let file: syn::File = syn::parse_str(&all).expect("parses");
    assert!(!file.items.is_empty());
}

#[test]
fn error_without_schema_and_several_declared_errors() {
    let manifest = r#"{"format":"trellis.contract.v1","id":"e@v1","displayName":"E","description":"E","kind":"service",
        "schemas":{"In":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},
                   "Bad":{"type":"object","properties":{"why":{"type":"string"}},"required":["why"]}},
        "errors":{"Plain":{"type":"Plain"},"BadError":{"type":"BadError","schema":{"schema":"Bad"}}},
        "rpc":{"A.One":{"version":"v1","subject":"rpc.v1.A.One","input":{"schema":"In"},"output":{"schema":"In"},"errors":[{"type":"Plain"}]},
               "A.Two":{"version":"v1","subject":"rpc.v1.A.Two","input":{"schema":"In"},"output":{"schema":"In"},"errors":[{"type":"Plain"},{"type":"BadError"},{"type":"BadError"}]}}}"#;
    let (_, source) = client_source(manifest, "e.json", None, None).expect("generates");
    for needle in [
        "::core::result::Result<::core::result::Result<In, ::serde_json::Value>, ::trellis::CallError,>",
        "/// Error `Plain` declares no schema: its payload is a `serde_json::Value`.",
        "pub enum ATwoError { /// The declared error `BadError`. BadError(Bad), /// The declared error `Plain`. Plain(::serde_json::Value), }",
    ] {
        assert!(
            squash(&source).contains(&squash(needle)),
            "missing `{needle}` in:\n{source}"
        );
    }
}
