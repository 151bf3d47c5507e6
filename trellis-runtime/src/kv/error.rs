//! [`KvError`], the error type of KV operations.

use std::error::Error as StdError;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Errors of [`KvHandle`](super::KvHandle) operations and of the items of a
/// [`KvWatch`](super::KvWatch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is malformed; nothing was sent to the server.
    #[error("invalid KV key `{key}`: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it and what is allowed.
        reason: String,
    },
    /// The key filter is malformed; nothing was sent to the server.
    #[error("invalid KV key filter `{filter}`: {reason}")]
    InvalidFilter {
        /// The rejected filter.
        filter: String,
        /// What is wrong with it and what is allowed.
        reason: String,
    },
    /// `create` found a live value under the key.
    #[error("KV key `{key}` already exists; use `update` with its revision to change it")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// `update` expected a different latest revision (another writer got
    /// there first); re-read the key and retry.
    #[error(
        "KV key `{key}` is not at revision {expected}{}; re-read it and retry",
        latest_note(.current)
    )]
    RevisionMismatch {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: u64,
        /// The key's latest revision (of a value or a deletion marker) when
        /// the mismatch was reported, if it could be read.
        current: Option<u64>,
    },
    /// The encoded value exceeds the bucket's installed value limit, checked
    /// before sending; or the server refused the message as too large (it
    /// counts the NATS headers that `create` and `update` add against the
    /// same limit). Nothing was written.
    #[error(
        "value for KV key `{key}` is too large: {size} bytes of JSON against a limit of {limit} \
         bytes per message (NATS headers, which `create` and `update` add, count too); nothing \
         was written"
    )]
    ValueTooLarge {
        /// The key.
        key: String,
        /// Encoded size in bytes.
        size: usize,
        /// The installed limit in bytes (value plus headers, for the server).
        limit: u64,
    },
    /// The value could not be encoded as JSON; nothing was written.
    #[error("value for KV key `{key}` could not be encoded as JSON: {source}")]
    Encode {
        /// The key.
        key: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not valid JSON for the handle's value type. The raw
    /// bytes stay in the bucket; overwrite or delete the key to repair it.
    #[error(
        "value of KV key `{key}` at revision {revision} does not decode as `{type_name}`: {source}"
    )]
    Decode {
        /// The key.
        key: String,
        /// The revision holding the undecodable value.
        revision: u64,
        /// The expected value type.
        type_name: &'static str,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The NATS operation failed (connection, timeout, server error).
    #[error("KV {op} of `{key}` failed: {source}")]
    Nats {
        /// The operation: `get`, `put`, `create`, `update`, `delete`,
        /// `purge`, `keys`, `watch` or `history`.
        op: &'static str,
        /// The key or filter the operation was for.
        key: String,
        /// The async-nats error.
        #[source]
        source: BoxError,
    },
}

fn latest_note(current: &Option<u64>) -> String {
    match current {
        Some(current) => format!(" (its latest revision is {current})"),
        None => " (it has no revisions)".to_owned(),
    }
}

impl KvError {
    pub(super) fn nats(op: &'static str, key: &str, source: impl Into<BoxError>) -> Self {
        KvError::Nats {
            op,
            key: key.to_owned(),
            source: source.into(),
        }
    }
}
