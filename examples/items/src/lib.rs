//! The items service contract: typed item records in a KV bucket.

include!("contract.rs");
