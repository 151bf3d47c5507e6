//! The `trellis.contract.v1` manifest model, shared by every stage after
//! parsing: the typed IR ([`Manifest`]), canonical JSON ([`Json`]), the
//! contract digest, naming rules, the semantic checks and JSON-pointer
//! resolution into schemas.
//!
//! This crate has no `syn`: the runtime, the deployment authority and the
//! CLI read manifests through it without linking a Rust parser.
//! `trellis-codegen` builds manifests from Rust source and re-exports it.
//!
//! Two rule sets ([`Rules`]): `Format` is the published format, lenient where
//! it is (what `trellis contract check` applies); `Dsl` adds what the macro
//! emits (closed objects, `<Group>.<Leaf>` names, declared errors).
//! [`check_manifest`] uses `Dsl`, [`check_manifest_with`] takes either.
//!
//! Checking a manifest file and computing its digest:
//!
//! ```
//! let text = r#"{"format":"trellis.contract.v1","id":"items@v1","displayName":"Items",
//!     "description":"Item records","kind":"service"}"#;
//! let checked = trellis_manifest::check_manifest(text).unwrap();
//! assert_eq!(checked.manifest.id, "items@v1");
//! assert_eq!(checked.digest, trellis_manifest::digest_text(text).unwrap());
//! assert_eq!(checked.digest.len(), 43);
//! ```

pub mod check;
pub mod digest;
pub mod json;
pub mod known;
pub mod manifest;
pub mod names;
pub mod pointer;
pub mod validate;

pub use check::{CheckError, Checked, check_manifest, check_manifest_with};
pub use digest::{digest, digest_text, projection};
pub use json::Json;
pub use manifest::Manifest;
pub use validate::{Issue, Rules};
