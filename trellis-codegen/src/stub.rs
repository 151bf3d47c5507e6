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
//! Generation fails (and so does the build) when the file is not a valid
//! `trellis.contract.v1` manifest, when its digest differs from the pinned
//! one ([`ClientStub::expect_digest`]) or from the `<id>.digest` file the
//! owner's build writes beside it, or when a schema has no faithful Rust
//! mapping.

use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::client::{ClientModel, EventModel, OperationModel, RpcModel};
use crate::stubtypes::{StubTypeError, rust_types};
use trellis_manifest::manifest::{Docs, Manifest};

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
}

impl ClientStub {
    /// A stub of the manifest at `path` (relative to the crate root).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ClientStub {
            manifest: path.into(),
            digest: None,
            out_dir: None,
            module: None,
        }
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
        let (module, source) = client_source(
            &text,
            &shown,
            self.module.as_deref(),
            pinned.as_ref().map(|(d, from)| (d.as_str(), from.as_str())),
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
/// expectation came from).
pub fn client_source(
    text: &str,
    path: &str,
    module: Option<&str>,
    pinned: Option<(&str, &str)>,
) -> Result<(String, String), StubError> {
    let checked = trellis_manifest::check_manifest(text).map_err(|e| StubError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
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
    let tokens = module_tokens(m, &checked.digest, path, &module)?;
    let file: syn::File = syn::parse2(tokens).map_err(|e| StubError::Generated {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let header = format!(
        "// Generated by trellis-codegen from {} ({}, digest {}). Do not edit.\n\n",
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
) -> Result<TokenStream, StubError> {
    let types = rust_types(&m.id, &m.schemas)?;
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
    let mut model = ClientModel::default();
    for (name, rpc) in &m.rpc {
        let error = match rpc.errors.as_deref().unwrap_or_default() {
            [] => None,
            [one] => {
                let decl = m.errors.get(&one.ty).and_then(|e| e.schema.as_ref());
                match decl {
                    Some(s) => Some(ty(&s.schema, &format!("error `{}`", one.ty))?),
                    None => {
                        return Err(StubError::Unsupported {
                            path: path.to_owned(),
                            reason: format!("RPC `{name}`: error `{}` has no schema", one.ty),
                        });
                    }
                }
            }
            _ => {
                return Err(StubError::Unsupported {
                    path: path.to_owned(),
                    reason: format!(
                        "RPC `{name}` declares several error types; stubs support one per RPC"
                    ),
                });
            }
        };
        let fallback = format!("Calls `{name}`.");
        model.rpcs.push(RpcModel {
            name: name.clone(),
            subject: rpc.subject.clone(),
            input: ty(&rpc.input.schema, &format!("RPC `{name}` input"))?,
            output: ty(&rpc.output.schema, &format!("RPC `{name}` output"))?,
            error,
            receive: rpc.transfer.is_some(),
            docs: doc_attrs(rpc.docs.as_ref(), &fallback),
        });
    }
    for (name, op) in &m.operations {
        model.operations.push(OperationModel {
            name: name.clone(),
            subject: op.subject.clone(),
            input: ty(&op.input.schema, &format!("operation `{name}` input"))?,
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
    let surface = crate::client::surface(&model);
    let client = crate::client::client(&model);
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
        let unknown = DOCUMENTS.replacen("{", "{\"surprise\":1,", 1);
        let err = client_source(&unknown, "d.json", None, None).expect_err("unknown field");
        assert!(matches!(err, StubError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("surprise"), "{err}");
    }
}
