//! The documents service contract: a private object store of uploaded files,
//! a Files RPC surface over it, an upload operation with a send transfer,
//! and an event published when a document is created.

include!("contract.rs");
