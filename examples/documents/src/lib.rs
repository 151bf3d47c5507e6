//! The documents service: a private object store of uploaded files, the
//! Files RPC surface over it (list, head, download through receive grants,
//! delete), an upload operation with a send transfer, and an event
//! published when a document is created.
//!
//! [`DocumentsService`] is the complete service; `src/bin/documents-caller.rs`
//! is a caller that uploads, lists, heads, downloads and deletes a file.

include!("contract.rs");

mod service;

pub use service::DocumentsService;
