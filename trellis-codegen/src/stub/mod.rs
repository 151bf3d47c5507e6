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
//! `serde_json::Value` (see [`types`]).
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
//! [`types::Formats`] for what maps and why `FixedOffset`.
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

mod errors;
#[cfg(test)]
mod tests;
pub mod types;

use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::expand::client::{ClientModel, EventModel, OperationModel, RpcModel};
use errors::{RpcError, rpc_error};
use trellis_manifest::manifest::{Docs, Manifest, RpcMethod};
use trellis_manifest::validate::Rules;
use types::{Formats, StubTypeError, rust_types_with};
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
