//! Records the authority persists and serves: bindings with the limits
//! actually installed on the server. Operator-facing (the CLI prints them);
//! service code never sees them: it gets typed handles.

use serde::{Deserialize, Serialize};

/// The binding of a KV alias: its bucket and installed limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvBinding {
    /// Physical bucket name.
    pub bucket: String,
    /// Revisions kept per key (installed).
    pub history: u64,
    /// Expiry in ms; 0 = none (installed).
    pub ttl_ms: u64,
    /// Largest value in bytes, if limited (installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<u64>,
}

/// The binding of a store alias: its bucket and installed limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreBinding {
    /// Physical object-store bucket name.
    pub bucket: String,
    /// Expiry in ms; 0 = none (installed).
    pub ttl_ms: u64,
    /// Bucket size limit, if finite (installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<u64>,
}
