//! An operation's record in the ledger (status, progress, output or
//! error, owner, lease, transfer progress), its wire snapshot and control
//! messages, and the errors callers see.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::debug;

use crate::ledger::{mutate_json, read_json};
use crate::rpc::CallError;
use crate::transfer::TransferError;
use crate::wire::ids::now_ms;

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Accepted; waiting for its transfer or for a free handler slot.
    Pending,
    /// The handler runs.
    Running,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Finished after a cancel request.
    Cancelled,
}

impl OperationStatus {
    /// Whether the operation has finished.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Completed | OperationStatus::Failed | OperationStatus::Cancelled
        )
    }
}

/// How a send transfer is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferProgress {
    /// The object key the bytes go to.
    pub key: String,
    /// Bytes received and acknowledged so far.
    pub bytes: u64,
    /// The size the sender declared, if it knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Whether the object is verified and stored under its key.
    pub complete: bool,
    /// Chunk id of the staged content (runtime internal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) staging: Option<String>,
}

/// The stored record of one operation (value of `op.<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub operation: String,
    pub status: OperationStatus,
    pub owner: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub lease_until_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferProgress>,
}

/// A record as control replies carry it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSnapshot {
    pub id: String,
    pub revision: u64,
    #[serde(flatten)]
    pub record: Record,
}

/// A control request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum Control {
    Get {
        id: String,
    },
    Wait {
        id: String,
        after: u64,
        #[serde(default)]
        timeout_ms: u64,
    },
    Cancel {
        id: String,
    },
}

/// One observed state of an operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot<P, O> {
    /// Operation id.
    pub id: String,
    /// Operation name (`Group.Leaf`).
    pub operation: String,
    /// Status.
    pub status: OperationStatus,
    /// Monotonic revision: every change of the record increases it.
    pub revision: u64,
    /// Latest progress reported by the handler.
    pub progress: Option<P>,
    /// Output, once completed.
    pub output: Option<O>,
    /// Error message, once failed.
    pub error: Option<String>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// The send transfer, for operations that have one.
    pub transfer: Option<TransferProgress>,
}

impl<P: DeserializeOwned, O: DeserializeOwned> Snapshot<P, O> {
    pub(crate) fn decode(wire: WireSnapshot) -> Result<Self, String> {
        let WireSnapshot {
            id,
            revision,
            record,
        } = wire;
        let progress = record
            .progress
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("progress does not decode: {e}"))?;
        let output = record
            .output
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("output does not decode: {e}"))?;
        Ok(Snapshot {
            id,
            operation: record.operation,
            status: record.status,
            revision,
            progress,
            output,
            error: record.error,
            cancel_requested: record.cancel_requested,
            transfer: record.transfer,
        })
    }
}

impl<P, O> Snapshot<P, O> {
    /// The terminal outcome, if the operation has finished.
    pub fn outcome(&self) -> Option<Outcome<O>>
    where
        O: Clone,
    {
        match self.status {
            OperationStatus::Completed => self.output.clone().map(Outcome::Completed),
            OperationStatus::Failed => Some(Outcome::Failed(
                self.error.clone().unwrap_or_else(|| "failed".to_owned()),
            )),
            OperationStatus::Cancelled => Some(Outcome::Cancelled),
            OperationStatus::Pending | OperationStatus::Running => None,
        }
    }
}

/// How an operation finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// Completed with this output.
    Completed(O),
    /// Failed with this message.
    Failed(String),
    /// Cancelled.
    Cancelled,
}

/// How a handler ends an operation other than with an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationFailure {
    /// The operation failed; the message is shown to callers.
    #[error("{0}")]
    Failed(String),
    /// The handler stopped because it was asked to cancel.
    #[error("cancelled")]
    Cancelled,
}

impl OperationFailure {
    /// A failure with `message`.
    pub fn failed(message: impl Into<String>) -> OperationFailure {
        OperationFailure::Failed(message.into())
    }
}

/// Why starting or controlling an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Transport, timeout, malformed request or reply.
    #[error(transparent)]
    Call(#[from] CallError),
    /// No operation with this id (or it expired from the ledger).
    #[error("operation `{operation}` has no instance `{id}`")]
    NotFound {
        /// Operation name.
        operation: String,
        /// Id.
        id: String,
    },
    /// The caller is neither the owner nor holds the needed capability.
    #[error("not allowed on operation `{operation}`: {message}")]
    Forbidden {
        /// Operation name.
        operation: String,
        /// Why.
        message: String,
    },
    /// The operation does not support cancel; nothing was changed.
    #[error("operation `{operation}` cannot be cancelled")]
    CancelUnsupported {
        /// Operation name.
        operation: String,
    },
    /// The provider refused to start it (e.g. the declared size is over
    /// the limit, or the object key is invalid); nothing was stored.
    #[error("operation `{operation}` refused to start: {message}")]
    Refused {
        /// Operation name.
        operation: String,
        /// Why.
        message: String,
    },
    /// The byte transfer failed; nothing is stored under the final key.
    #[error("operation `{operation}`: {source}")]
    Transfer {
        /// Operation name.
        operation: String,
        /// What went wrong.
        source: TransferError,
    },
}

pub(crate) fn key(id: &str) -> String {
    format!("op.{id}")
}

/// Opens the ledger the authority provisioned.
pub(crate) async fn read(kv: &kv::Store, id: &str) -> Result<Option<(u64, Record)>, String> {
    read_json(kv, &key(id)).await
}

/// [`mutate_json`] of an operation record; stamps `updated_ms`.
pub(crate) async fn mutate(
    kv: &kv::Store,
    id: &str,
    mut change: impl FnMut(&mut Record) -> bool,
) -> Result<Option<(u64, Record)>, String> {
    mutate_json(kv, &key(id), |record: &mut Record| {
        let changed = change(record);
        if changed {
            record.updated_ms = now_ms();
        }
        changed
    })
    .await
}

pub(crate) fn snapshot_bytes(id: &str, revision: u64, record: Record) -> Bytes {
    let wire = WireSnapshot {
        id: id.to_owned(),
        revision,
        record,
    };
    serde_json::to_vec(&wire).map_or_else(|_| Bytes::new(), Bytes::from)
}

/// Records transfer progress (bytes received so far) in the operation
/// record, where callers and every provider instance see it.
pub(crate) async fn record_transfer(ledger: &kv::Store, id: &str, bytes: u64, complete: bool) {
    debug!(%id, bytes, complete, "send transfer progress");
    let result = mutate(ledger, id, |record| {
        let Some(transfer) = record.transfer.as_mut() else {
            return false;
        };
        if record.status.is_terminal() || (transfer.bytes == bytes && transfer.complete == complete)
        {
            return false;
        }
        transfer.bytes = bytes;
        transfer.complete = complete;
        true
    })
    .await;
    if let Err(e) = result {
        debug!(%id, error = %e, "could not record transfer progress");
    }
}
