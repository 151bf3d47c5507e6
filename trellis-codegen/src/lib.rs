//! Contract parsing, validation, JSON Schema derivation, canonical manifests
//! and digests for trellis-rs.
//!
//! The same parser runs inside the `#[trellis::contract]` proc macro and in
//! your `build.rs`, so the manifest the macro embeds (`MANIFEST_JSON`) and
//! the file `build.rs` writes (`contracts/<id>.json`) are byte-identical.
//!
//! A canonical `build.rs`:
//!
//! ```no_run
//! // Writes contracts/<id>.json next to Cargo.toml (commit it) and
//! // $OUT_DIR/contracts/<id>.json.
//! trellis_codegen::Builder::new().source("src/lib.rs").emit_or_warn();
//! ```
//!
//! Parsing a module directly:
//!
//! ```
//! let src = r#"
//!     #[trellis::contract(id = "items@v1", display_name = "Items", description = "Item records")]
//!     pub mod items {
//!         use serde::{Deserialize, Serialize};
//!         #[derive(Serialize, Deserialize)]
//!         pub struct Item { pub id: String, pub title: String }
//!         #[kv(purpose = "Item records by id", schema = Item)]
//!         pub struct Items;
//!     }
//! "#;
//! let contracts = trellis_codegen::parse_source(src, "lib.rs".as_ref()).unwrap();
//! let manifest = &contracts[0].manifest;
//! assert_eq!(manifest.id, "items@v1");
//! assert!(manifest.to_canonical_string().starts_with(r#"{"description":"Item records""#));
//! assert_eq!(manifest.digest().len(), 43);
//! ```

pub mod args;
pub mod builder;
pub mod errors;
pub mod expand;
pub mod schema;
pub mod stub;
pub mod syntax;

/// The stub type generator's former module path (now [`stub::types`]).
pub use stub::types as stubtypes;
/// The parser's former module path (now [`syntax`]).
pub use syntax as parse;

pub use builder::{BuildError, Builder, Emitted, SourceError, parse_source};
pub use stub::{ClientStub, StubError};
pub use syntax::{Contract, ContractArgs, parse_contract};
/// The manifest model every later stage reads (re-exported from
/// `trellis-manifest`).
pub use trellis_manifest::{
    CheckError, Checked, Issue, Json, Manifest, check, check_manifest, digest, digest_text, json,
    manifest, names, pointer, projection, validate,
};
