//! Client stubs generated from another service's manifest JSON.
//!
//! A peer crate that only has another team's emitted `contracts/<id>.json`
//! gets the same typed caller surface the `#[trellis::contract]` macro gives
//! the owner's crate: schema types as Rust structs and enums with serde,
//! `Client` with RPCs, operations (with transfers) and live events, the
//! `surface` markers `#[uses(module = ...)]` facades are built from, and the
//! `ID` / `DIGEST` / `MANIFEST_JSON` consts. The output is formatted with
//! prettyplease and documented from the contract's descriptions.
//!
//! ```no_run
//! // build.rs of a peer crate, inside `fn main()`:
//! trellis_codegen::ClientStub::new("../documents/contracts/documents@v1.json")
//!     .generate_or_panic();
//! // src/lib.rs:
//! // include!(concat!(env!("OUT_DIR"), "/documents.rs"));
//! ```
//!
//! Any manifest the published format allows generates (read under
//! [`Rules::Format`]: unknown fields are dropped). Names of more than two
//! segments nest (`Auth.Capabilities.List` is
//! `client.rpc.auth.capabilities.list(&input)`); an RPC error type the
//! format defines but the manifest does not declare (`AuthError`, ...) is
//! `::trellis::BuiltinError`; several error types make an untagged enum per
//! RPC; a schema construct without a faithful Rust mapping is a documented
//! `serde_json::Value` (see [`crate::stubtypes`]).
//!
//! Format-annotated strings are `String`s unless the peer opts in to the
//! well-known type the contract side derives that format from (the inverse
//! of `schema/known.rs`): [`ClientStub::uuid`] (`uuid` → `::uuid::Uuid`),
//! [`ClientStub::chrono`] (`date-time` →
//! `::chrono::DateTime<::chrono::FixedOffset>`, `date` →
//! `::chrono::NaiveDate`), [`ClientStub::url`] (`uri` → `::url::Url`) and
//! [`ClientStub::net`] (`ipv4`/`ipv6` → `::std::net::Ipv4Addr`/`Ipv6Addr`,
//! `anyOf [ipv4, ipv6]` → `::std::net::IpAddr`). The generated code names
//! those crates with a leading `::`: the crate compiling it must depend on
//! them (a dev-dependency when only tests include the stub). See
//! [`crate::stubtypes::Formats`] for what maps and why `FixedOffset`.
//!
//! ```no_run
//! // build.rs: uuids and dates typed; `uuid` and `chrono` (with its `serde`
//! // feature) are dependencies of this crate.
//! trellis_codegen::ClientStub::new("contracts/ledger@v1.json")
//!     .uuid()
//!     .chrono()
//!     .generate_or_panic();
//! ```
//!
//! Generation fails (and so does the build) when the file is not a valid
//! `trellis.contract.v1` manifest, or when its digest differs from the
//! pinned one ([`ClientStub::expect_digest`]) or from the `<id>.digest` file
//! the owner's build writes beside it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::expand::client::{ClientModel, EventModel, OperationModel, RpcModel};
use crate::stubtypes::{Formats, StubTypeError, rust_types_with};
use trellis_manifest::manifest::{BUILTIN_ERRORS, Docs, Manifest, RpcMethod};
use trellis_manifest::validate::Rules;

/// Why a stub could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A Cargo environment variable is missing (not run from build.rs?).
    #[error(
        "environment variable {0} is not set; call this from build.rs or set the directory explicitly"
    )]
    Env(&'static str),
    /// The file is not a valid manifest.
    #[error("{path}: not a valid trellis.contract.v1 manifest: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The digest of the content differs from the expected one.
    #[error(
        "{path}: the manifest's digest is {actual}, but {expected_from} says {expected}; the file was edited \
         or is from another build: fetch the owner's emitted manifest again (and update the pin if the change \
         is intended)"
    )]
    DigestMismatch {
        /// The file.
        path: String,
        /// The digest of its content.
        actual: String,
        /// The expected digest.
        expected: String,
        /// Where the expectation came from.
        expected_from: String,
    },
    /// A schema has no faithful Rust mapping.
    #[error(transparent)]
    Types(#[from] StubTypeError),
    /// The manifest uses a construct stubs do not support.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: String,
        /// What.
        reason: String,
    },
    /// The generated code does not parse (a bug; please report it).
    #[error("generated code for {path} does not parse: {reason}")]
    Generated {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Configures stub generation from a `build.rs`.
#[derive(Debug, Clone)]
pub struct ClientStub {
    manifest: PathBuf,
    digest: Option<String>,
    out_dir: Option<PathBuf>,
    module: Option<String>,
    formats: Formats,
}

impl ClientStub {
    /// A stub of the manifest at `path` (relative to the crate root).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ClientStub {
            manifest: path.into(),
            digest: None,
            out_dir: None,
            module: None,
            formats: Formats::default(),
        }
    }

    /// Strings of format `uuid` become `::uuid::Uuid` (the crate must be a
    /// dependency, with its `serde` feature).
    pub fn uuid(mut self) -> Self {
        self.formats.uuid = true;
        self
    }

    /// Strings of format `date-time` become
    /// `::chrono::DateTime<::chrono::FixedOffset>` (any RFC 3339 offset, kept
    /// as received; `.to_utc()` / `Utc::now().fixed_offset()` convert), and
    /// of format `date` `::chrono::NaiveDate` (the crate must be a
    /// dependency, with its `serde` feature).
    pub fn chrono(mut self) -> Self {
        self.formats.chrono = true;
        self
    }

    /// Strings of format `uri` become `::url::Url` (the crate must be a
    /// dependency, with its `serde` feature). `Url` normalizes what it
    /// parses (`HTTP://Host` is sent back as `http://host/`).
    pub fn url(mut self) -> Self {
        self.formats.url = true;
        self
    }

    /// Strings of format `ipv4`/`ipv6` become `::std::net::Ipv4Addr` /
    /// `Ipv6Addr`, and `anyOf [ipv4, ipv6]` `::std::net::IpAddr`. No crate
    /// is needed; it is opt-in so that existing stubs keep their types.
    pub fn net(mut self) -> Self {
        self.formats.net = true;
        self
    }

    /// Sets every typed-format option at once.
    pub fn formats(mut self, formats: Formats) -> Self {
        self.formats = formats;
        self
    }

    /// Pins the digest the generated client must be built from.
    pub fn expect_digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// Overrides the output directory (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Names the generated module (default: the contract name, e.g.
    /// `documents` for `documents@v1`).
    pub fn module_name(mut self, name: impl Into<String>) -> Self {
        self.module = Some(name.into());
        self
    }

    /// Writes `<OUT_DIR>/<module>.rs` and returns its path. Prints
    /// `cargo:rerun-if-changed` for the manifest (and its digest file).
    pub fn generate(&self) -> Result<PathBuf, StubError> {
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
        let path = match &crate_dir {
            Some(dir) if self.manifest.is_relative() => dir.join(&self.manifest),
            _ => self.manifest.clone(),
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path).map_err(|source| StubError::Io {
            path: path.clone(),
            source,
        })?;
        let sidecar = path.with_extension("digest");
        println!("cargo:rerun-if-changed={}", sidecar.display());
        let pinned = match (&self.digest, fs::read_to_string(&sidecar)) {
            (Some(d), _) => Some((d.clone(), "the pinned digest".to_owned())),
            (None, Ok(d)) => Some((d.trim().to_owned(), sidecar.display().to_string())),
            (None, Err(_)) => None,
        };
        let shown = path.display().to_string();
        let (module, source) = client_source_with(
            &text,
            &shown,
            self.module.as_deref(),
            pinned.as_ref().map(|(d, from)| (d.as_str(), from.as_str())),
            self.formats,
        )?;
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(StubError::Env("OUT_DIR"))?,
        };
        let file = out.join(format!("{module}.rs"));
        crate::builder::write_file_if_changed(&file, &source, |path, source| StubError::Io {
            path,
            source,
        })?;
        Ok(file)
    }

    /// [`ClientStub::generate`] for build scripts: any failure fails the
    /// build with its message.
    pub fn generate_or_panic(&self) -> PathBuf {
        match self.generate() {
            Ok(p) => p,
            Err(e) => panic!("trellis client stub: {e}"),
        }
    }
}

fn doc_attrs(docs: Option<&Docs>, fallback: &str) -> TokenStream {
    let text = docs.map_or(fallback, |d| d.markdown.as_str());
    let lines = text.lines().map(|l| format!(" {l}"));
    quote!(#(#[doc = #lines])*)
}

/// The generated module for manifest `text`: (module name, formatted
/// source). `path` names the file in errors; `pinned` is (digest, where the
/// expectation came from). Format-annotated strings are `String`s.
pub fn client_source(
    text: &str,
    path: &str,
    module: Option<&str>,
    pinned: Option<(&str, &str)>,
) -> Result<(String, String), StubError> {
    client_source_with(text, path, module, pinned, Formats::default())
}

/// [`client_source`] with the typed formats `formats` enables.
pub fn client_source_with(
    text: &str,
    path: &str,
    module: Option<&str>,
    pinned: Option<(&str, &str)>,
    formats: Formats,
) -> Result<(String, String), StubError> {
    let checked = trellis_manifest::check_manifest_with(text, Rules::Format).map_err(|e| {
        StubError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    if let Some((expected, from)) = pinned
        && expected != checked.digest
    {
        return Err(StubError::DigestMismatch {
            path: path.to_owned(),
            actual: checked.digest.clone(),
            expected: expected.to_owned(),
            expected_from: from.to_owned(),
        });
    }
    let m = &checked.manifest;
    let module = module.map(str::to_owned).unwrap_or_else(|| {
        trellis_manifest::names::snake_case(m.id.split('@').next().unwrap_or(&m.id))
    });
    let tokens = module_tokens(m, &checked.digest, path, &module, formats)?;
    let file: syn::File = syn::parse2(tokens).map_err(|e| StubError::Generated {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let enabled = formats.enabled();
    let typed = if enabled.is_empty() {
        String::new()
    } else {
        format!("// Typed formats: {}.\n", enabled.join(", "))
    };
    let header = format!(
        "// Generated by trellis-codegen from {} ({}, digest {}). Do not edit.\n{typed}\n",
        Path::new(path)
            .file_name()
            .map_or(path.into(), |f| f.to_string_lossy()),
        m.id,
        checked.digest
    );
    Ok((module, header + &prettyplease::unparse(&file)))
}

fn module_tokens(
    m: &Manifest,
    digest: &str,
    path: &str,
    module: &str,
    formats: Formats,
) -> Result<TokenStream, StubError> {
    let types = rust_types_with(&m.id, &m.schemas, formats)?;
    let ty = |name: &str, at: &str| -> Result<TokenStream, StubError> {
        types
            .names
            .get(name)
            .cloned()
            .ok_or_else(|| StubError::Unsupported {
                path: path.to_owned(),
                reason: format!("{at} names schema `{name}`, which `schemas` does not define"),
            })
    };
    let no_input =
        |rpc: &RpcMethod| m.schemas.get(&rpc.input.schema) == Some(&crate::schema::empty_schema());
    let mut model = ClientModel::default();
    let mut taken = types.taken.clone();
    let mut error_defs = TokenStream::new();
    for (name, rpc) in &m.rpc {
        let RpcError { error, def, notes } = rpc_error(m, name, rpc, path, &ty, &mut taken)?;
        error_defs.extend(def);
        let fallback = format!("Calls `{name}`.");
        model.rpcs.push(RpcModel {
            name: name.clone(),
            subject: rpc.subject.clone(),
            // An input that is exactly the empty object is no input: the
            // method takes none, as the owner's own client does.
            input: if no_input(rpc) {
                quote!(::trellis::Empty)
            } else {
                ty(&rpc.input.schema, &format!("RPC `{name}` input"))?
            },
            no_input: no_input(rpc),
            output: ty(&rpc.output.schema, &format!("RPC `{name}` output"))?,
            error,
            receive: rpc.transfer.is_some(),
            docs: {
                let docs = doc_attrs(rpc.docs.as_ref(), &fallback);
                if notes.is_empty() {
                    docs
                } else {
                    quote!(#docs #[doc = ""] #(#[doc = #notes])*)
                }
            },
        });
    }
    for (name, op) in &m.operations {
        model.operations.push(OperationModel {
            name: name.clone(),
            subject: op.subject.clone(),
            input: if m.schemas.get(&op.input.schema) == Some(&crate::schema::empty_schema()) {
                quote!(::trellis::Empty)
            } else {
                ty(&op.input.schema, &format!("operation `{name}` input"))?
            },
            output: ty(&op.output.schema, &format!("operation `{name}` output"))?,
            progress: match &op.progress {
                Some(p) => ty(&p.schema, &format!("operation `{name}` progress"))?,
                None => quote!(()),
            },
            send: op.transfer.is_some(),
        });
    }
    for (name, event) in &m.events {
        model.events.push(EventModel {
            name: name.clone(),
            subject: event.subject.clone(),
            params: event.params.clone().unwrap_or_default(),
            ty: ty(&event.event.schema, &format!("event `{name}`"))?,
        });
    }
    let module_ident = format_ident!("{}", module);
    let summary = format!(
        " Typed client of `{}` ({}), generated from its manifest.",
        m.id, m.display_name
    );
    let description = format!(" {}", m.description);
    let body = doc_attrs(m.docs.as_ref(), "");
    let defs = &types.defs;
    let surface = crate::expand::client::surface(&model);
    let client = crate::expand::client::client(&model);
    let id = &m.id;
    let json = m.to_canonical_string();
    Ok(quote! {
        #[doc = #summary]
        ///
        #[doc = #description]
        ///
        #body
        #[allow(clippy::all, dead_code)]
        pub mod #module_ident {
            #defs
            #error_defs

            /// The contract id (`<name>@v<N>`).
            pub const ID: &str = #id;
            /// The contract digest this client was generated from.
            pub const DIGEST: &str = #digest;
            /// The canonical manifest this client was generated from.
            pub const MANIFEST_JSON: &str = #json;

            #surface
            #client
        }
    })
}

/// How an RPC's errors reach its callers.
struct RpcError {
    /// The error type (`None`: the RPC declares no error).
    error: Option<TokenStream>,
    /// A generated enum of its error types, if it needs one.
    def: TokenStream,
    /// Doc lines for the RPC's method.
    notes: Vec<String>,
}

/// `base`, else `base2`, `base3`, ...: the first name not in `used`.
fn fresh(base: &str, used: &mut BTreeSet<String>) -> syn::Ident {
    let mut n = 1u32;
    loop {
        let candidate = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}{n}")
        };
        if used.insert(candidate.clone()) {
            return format_ident!("{}", candidate);
        }
        n += 1;
    }
}

/// The error type of RPC `name`: `None` without errors, the declared
/// error's type for one, `::trellis::BuiltinError` for built-in errors only,
/// else a generated untagged enum `<Rpc>Error` (built-in first, untyped
/// payloads last) named apart from `taken`.
fn rpc_error(
    m: &Manifest,
    name: &str,
    rpc: &RpcMethod,
    path: &str,
    ty: &dyn Fn(&str, &str) -> Result<TokenStream, StubError>,
    taken: &mut BTreeSet<String>,
) -> Result<RpcError, StubError> {
    let mut notes = Vec::new();
    let mut seen = BTreeSet::new();
    // (error type, Rust type, whether typed)
    let mut declared: Vec<(&str, TokenStream, bool)> = Vec::new();
    let mut builtin = Vec::new();
    for reference in rpc.errors.as_deref().unwrap_or_default() {
        let error = reference.ty.as_str();
        if !seen.insert(error) {
            continue;
        }
        match m.errors.get(error) {
            Some(decl) => match &decl.schema {
                Some(s) => {
                    declared.push((error, ty(&s.schema, &format!("error `{error}`"))?, true))
                }
                None => {
                    notes.push(format!(
                        " Error `{error}` declares no schema: its payload is a `serde_json::Value`."
                    ));
                    declared.push((error, quote!(::serde_json::Value), false));
                }
            },
            None if BUILTIN_ERRORS.contains(&error) => builtin.push(error),
            None => {
                return Err(StubError::Unsupported {
                    path: path.to_owned(),
                    reason: format!(
                        "RPC `{name}`: error `{error}` is neither declared nor built in"
                    ),
                });
            }
        }
    }
    if !builtin.is_empty() {
        notes.push(format!(
            " Built-in errors (`::trellis::BuiltinError`): {}.",
            builtin
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let simple = |error| RpcError {
        error,
        def: TokenStream::new(),
        notes: notes.clone(),
    };
    match (declared.as_slice(), builtin.is_empty()) {
        ([], true) => return Ok(simple(None)),
        ([(_, one, _)], true) => return Ok(simple(Some(one.clone()))),
        ([], false) => return Ok(simple(Some(quote!(::trellis::BuiltinError)))),
        _ => {}
    }
    let ident = fresh(
        &format!("{}Error", crate::expand::client::marker(name)),
        taken,
    );
    let mut variants = Vec::new();
    let mut used = BTreeSet::new();
    if !builtin.is_empty() {
        used.insert("Builtin".to_owned());
        variants.push(quote! {
            /// A built-in error of the format.
            Builtin(::trellis::BuiltinError)
        });
    }
    declared.sort_by_key(|(_, _, typed)| !typed);
    for (error, rust, _) in &declared {
        let base = trellis_manifest::names::pascal_case(error);
        let base = if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            format!("E{base}")
        } else {
            base
        };
        let variant = fresh(&base, &mut used);
        let doc = format!(" The declared error `{error}`.");
        variants.push(quote! {
            #[doc = #doc]
            #variant(#rust)
        });
    }
    let doc = format!(
        " The errors of RPC `{name}`, told apart by shape (built-in errors by their `type` tag)."
    );
    Ok(RpcError {
        error: Some(quote!(#ident)),
        def: quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
            #[serde(untagged)]
            pub enum #ident { #(#variants,)* }
        },
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTS: &str = include_str!("../../examples/documents/contracts/documents@v1.json");

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

    const DIRECTORY: &str = include_str!("../../tests/fixtures/directory@v1.json");

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

    const STAMPS: &str = include_str!("../../tests/fixtures/stamps@v1.json");

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
}
