//! An accepted send transfer before its bytes flow, and what both upload
//! protocols (relayed chunks in `inbound`, direct uploads in `direct`)
//! answer with: chunk acknowledgements and store failures as transfer
//! errors.

use std::time::Duration;

use async_nats::HeaderMap;

use crate::store::{PutOptions, Store, StoreError};
use crate::transfer::{ACK_HEADER, TransferError};

/// One accepted transfer, before bytes flow.
pub(crate) struct Plan {
    pub key: String,
    pub declared: Option<u64>,
    pub staging: String,
    pub chunk_size: usize,
    pub window: usize,
    pub(super) limit: Option<u64>,
    pub(super) idle: Duration,
    pub(super) options: PutOptions,
    pub(super) store: Store,
}

impl Plan {
    /// The store subject a direct upload's chunks are published to.
    pub(crate) fn upload_subject(&self) -> String {
        self.store.staged_subject(&self.staging)
    }
}

/// The acknowledgement of every chunk before `next`.
pub(super) fn ack(next: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACK_HEADER, next.to_string());
    headers
}

/// A store error as the transfer error its caller sees.
pub(super) fn store_failure(error: StoreError) -> TransferError {
    match error {
        e @ StoreError::StoreFull { .. } => TransferError::StoreFull(e.to_string()),
        StoreError::DigestMismatch {
            expected, actual, ..
        } => TransferError::DigestMismatch(format!(
            "sender says {expected}, received content is {actual}"
        )),
        e => TransferError::Interrupted(format!("storing failed: {e}")),
    }
}
