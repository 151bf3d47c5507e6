//! The error type of object store operations.

use std::io;
use std::time::Duration;

use super::MAX_LIST_LIMIT;

/// A boxed error from the NATS client.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an object store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is not a valid object key (checked before any I/O).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `create` found a live object under the key.
    #[error("object `{key}` already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },

    /// The write does not fit into the store's size limit. Nothing of it
    /// was kept: an object previously stored under the key is intact.
    #[error(
        "object store is full: `{key}` does not fit ({used} of {limit} bytes in use{})",
        needed_suffix(*.needed)
    )]
    StoreFull {
        /// The key being written.
        key: String,
        /// The store's effective size limit in bytes.
        limit: u64,
        /// Bytes the store used before the write.
        used: u64,
        /// The object's size, when it was known up front.
        needed: Option<u64>,
    },

    /// The content does not have the digest its writer expected; nothing
    /// of the write was kept.
    #[error("object `{key}`: content digest {actual} does not match the expected {expected}")]
    DigestMismatch {
        /// The key being written.
        key: String,
        /// The digest the writer expected.
        expected: String,
        /// The digest of the content received.
        actual: String,
    },

    /// A list limit of 0 or above [`MAX_LIST_LIMIT`].
    #[error("invalid list limit {limit}: must be between 1 and {MAX_LIST_LIMIT}")]
    InvalidLimit {
        /// The rejected limit.
        limit: usize,
    },

    /// `wait_for` gave up.
    #[error("object `{key}` did not appear within {waited:?}")]
    Timeout {
        /// The awaited key.
        key: String,
        /// How long we waited.
        waited: Duration,
    },

    /// A body declared its size with [`Body::with_size`](super::Body::with_size)
    /// and produced a different number of bytes. Nothing was kept.
    #[error("body of `{key}` declared {declared} bytes but produced {actual}{}", if *.truncated { " or more" } else { "" })]
    SizeMismatch {
        /// The key being written.
        key: String,
        /// The declared size.
        declared: u64,
        /// The bytes produced (a lower bound when `truncated`).
        actual: u64,
        /// Whether reading stopped early because the body exceeded its size.
        truncated: bool,
    },

    /// Reading the body failed. Nothing was kept.
    #[error("reading the body of `{key}` failed: {source}")]
    Body {
        /// The key being written.
        key: String,
        /// The reader's or stream's error.
        #[source]
        source: io::Error,
    },

    /// The object's metadata (content type, metadata map, key) would not fit
    /// into one NATS message.
    #[error("metadata of `{key}` is too large: {size} bytes, at most {max} fit into a message")]
    MetadataTooLarge {
        /// The key being written.
        key: String,
        /// Encoded metadata size.
        size: usize,
        /// The largest accepted size.
        max: usize,
    },

    /// The object was overwritten or deleted while it was being read.
    #[error("object `{key}` was overwritten or deleted while it was being read")]
    Changed {
        /// The key being read.
        key: String,
    },

    /// The stored object is inconsistent (missing chunks, wrong size or
    /// digest, unreadable metadata).
    #[error("object `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is inconsistent.
        reason: String,
    },

    /// The object uses a feature trellis does not support (links written by
    /// other NATS clients).
    #[error("object `{key}` is not supported: {reason}")]
    Unsupported {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },

    /// The stream behind the store does not have the configuration trellis
    /// provisions (e.g. direct gets are disabled).
    #[error("the object store is misconfigured: {reason}")]
    Misconfigured {
        /// What is wrong.
        reason: String,
    },

    /// NATS or JetStream failed.
    #[error("object store error while {operation}: {source}")]
    Nats {
        /// What was being done.
        operation: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

fn needed_suffix(needed: Option<u64>) -> String {
    needed
        .map(|n| format!(", the object needs {n}"))
        .unwrap_or_default()
}

impl StoreError {
    /// A [`StoreError::Nats`] for `operation`.
    pub(crate) fn nats(operation: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Nats {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// The `io::ErrorKind` this error maps to when surfaced through
    /// `AsyncRead`.
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            StoreError::Corrupt { .. } => io::ErrorKind::InvalidData,
            StoreError::Changed { .. } => io::ErrorKind::NotFound,
            StoreError::Timeout { .. } => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        }
    }
}

/// `map_err` helper: wraps a client error into [`StoreError::Nats`].
pub(crate) fn nats<E: Into<BoxError>>(
    operation: impl Into<String>,
) -> impl FnOnce(E) -> StoreError {
    let operation = operation.into();
    move |source| StoreError::nats(operation, source)
}
