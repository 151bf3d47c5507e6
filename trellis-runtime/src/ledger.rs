//! A contract's ledger: the runtime-owned KV bucket the authority
//! provisions for contracts with operations or receive transfers. It holds
//! operation records (`op.<id>`), receive grants (`grant.<id>`) and
//! rejected consumer events, as JSON records changed with compare-and-set.

use async_nats::jetstream::{self, kv};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The ledger bucket could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("opening the ledger bucket `{bucket}` failed: {reason}")]
pub struct LedgerError {
    /// Bucket.
    pub bucket: String,
    /// Why.
    pub reason: String,
}

/// Opens the ledger bucket `bucket`.
pub(crate) async fn open(
    client: &async_nats::Client,
    bucket: &str,
) -> Result<kv::Store, LedgerError> {
    jetstream::new(client.clone())
        .get_key_value(bucket)
        .await
        .map_err(|e| LedgerError {
            bucket: bucket.to_owned(),
            reason: e.to_string(),
        })
}

/// Reads the JSON value under `key`, with its revision.
pub(crate) async fn read_json<T: DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
) -> Result<Option<(u64, T)>, String> {
    let entry = kv
        .entry(key)
        .await
        .map_err(|e| format!("reading the ledger: {e}"))?;
    match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            let value = serde_json::from_slice(&entry.value)
                .map_err(|e| format!("ledger record `{key}` does not decode: {e}"))?;
            Ok(Some((entry.revision, value)))
        }
        _ => Ok(None),
    }
}

/// Applies `change` to the JSON value under `key` with compare-and-set,
/// retrying on conflicts. `change` returns whether to write. Returns the
/// resulting revision and value (`None` if there is no value).
pub(crate) async fn mutate_json<T: DeserializeOwned + Serialize>(
    kv: &kv::Store,
    key: &str,
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<(u64, T)>, String> {
    for _ in 0..100 {
        let Some((revision, mut value)) = read_json::<T>(kv, key).await? else {
            return Ok(None);
        };
        if !change(&mut value) {
            return Ok(Some((revision, value)));
        }
        let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        match kv.update(key, bytes.into(), revision).await {
            Ok(revision) => return Ok(Some((revision, value))),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(format!("writing the ledger: {e}")),
        }
    }
    Err("writing the ledger: too many concurrent changes".to_owned())
}
