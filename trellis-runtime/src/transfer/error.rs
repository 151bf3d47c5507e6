//! Why a transfer failed, and the wire status of each failure.

use std::time::Duration;

/// Why a transfer failed. Nothing is stored under the final key after any
/// of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// More bytes than the contract (or the declared size) allows.
    #[error("the transfer is too large: {0}")]
    TooLarge(String),
    /// A chunk larger than the negotiated chunk size.
    #[error("a chunk is larger than allowed: {0}")]
    ChunkTooLarge(String),
    /// The content does not match the digest sent with it.
    #[error("the content does not match its digest: {0}")]
    DigestMismatch(String),
    /// The content does not have the size sent with it.
    #[error("the content does not have its declared size: {0}")]
    SizeMismatch(String),
    /// The store has no room for the object.
    #[error("the store is full: {0}")]
    StoreFull(String),
    /// The operation was cancelled during the transfer.
    #[error("the operation was cancelled during the transfer")]
    Cancelled,
    /// No progress for too long.
    #[error("the transfer made no progress for {0:?}")]
    Idle(Duration),
    /// Reading the local body (file, reader, stream) failed.
    #[error("reading the body failed: {0}")]
    Body(#[source] std::io::Error),
    /// Writing the received bytes locally failed.
    #[error("writing the received bytes failed: {0}")]
    Write(#[source] std::io::Error),
    /// The grant has expired.
    #[error("the receive grant expired")]
    GrantExpired,
    /// The grant was already used.
    #[error("the receive grant was already used")]
    GrantUsed,
    /// The grant is unknown (forged, or long expired).
    #[error("the receive grant is not valid")]
    GrantInvalid,
    /// The grant was issued to another caller.
    #[error("the receive grant was issued to another caller")]
    GrantForbidden,
    /// A download cannot resume at this byte offset.
    #[error("cannot resume the download at byte {offset}: {reason}")]
    BadOffset {
        /// The offset asked for.
        offset: u64,
        /// The chunk boundary at or below the offset, where a resume can
        /// start instead (when the offset falls inside a chunk).
        boundary: Option<u64>,
        /// What is wrong with it.
        reason: String,
    },
    /// The other side stopped or sent something unexpected.
    #[error("the transfer was interrupted: {0}")]
    Interrupted(String),
    /// NATS failed.
    #[error("NATS failed during the transfer: {0}")]
    Nats(String),
}

impl TransferError {
    /// The error for a non-ok transfer status from the other side.
    pub(crate) fn from_status(status: &str, message: String) -> TransferError {
        match status {
            "too-large" => TransferError::TooLarge(message),
            "chunk-too-large" => TransferError::ChunkTooLarge(message),
            "digest-mismatch" => TransferError::DigestMismatch(message),
            "size-mismatch" => TransferError::SizeMismatch(message),
            "store-full" => TransferError::StoreFull(message),
            "cancelled" => TransferError::Cancelled,
            "grant-expired" => TransferError::GrantExpired,
            "grant-used" => TransferError::GrantUsed,
            "grant-invalid" => TransferError::GrantInvalid,
            "grant-forbidden" => TransferError::GrantForbidden,
            "bad-offset" => TransferError::BadOffset {
                offset: 0,
                boundary: None,
                reason: message,
            },
            _ => TransferError::Interrupted(format!("{status}: {message}")),
        }
    }

    /// The wire status of this error.
    pub(crate) fn status(&self) -> &'static str {
        match self {
            TransferError::TooLarge(_) => "too-large",
            TransferError::ChunkTooLarge(_) => "chunk-too-large",
            TransferError::DigestMismatch(_) => "digest-mismatch",
            TransferError::SizeMismatch(_) => "size-mismatch",
            TransferError::StoreFull(_) => "store-full",
            TransferError::Cancelled => "cancelled",
            TransferError::Idle(_) => "idle",
            TransferError::GrantExpired => "grant-expired",
            TransferError::GrantUsed => "grant-used",
            TransferError::GrantInvalid => "grant-invalid",
            TransferError::GrantForbidden => "grant-forbidden",
            TransferError::BadOffset { .. } => "bad-offset",
            _ => "failed",
        }
    }
}
