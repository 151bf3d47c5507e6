//! Decoding stored KV messages into entries and changes.

use std::time::SystemTime;

use async_nats::HeaderMap;
use async_nats::jetstream::kv::Operation;
use serde::de::DeserializeOwned;

use super::entry::{KvChange, KvEntry};
use super::error::KvError;

const KV_OPERATION: &str = "KV-Operation";
const MARKER_REASON: &str = "Nats-Marker-Reason";

pub(super) fn strip_prefix<'a>(prefix: &str, subject: &'a str) -> &'a str {
    subject.strip_prefix(prefix).unwrap_or(subject)
}

/// The KV operation a message records (as async-nats reads it).
pub(super) fn operation(headers: Option<&HeaderMap>) -> Operation {
    let Some(headers) = headers else {
        return Operation::Put;
    };
    if let Some(op) = headers.get(KV_OPERATION) {
        return op.as_str().parse().unwrap_or(Operation::Put);
    }
    match headers
        .get(MARKER_REASON)
        .map(async_nats::HeaderValue::as_str)
    {
        Some("MaxAge" | "Purge") => Operation::Purge,
        Some("Remove") => Operation::Delete,
        _ => Operation::Put,
    }
}

pub(super) fn change_from_message<T: DeserializeOwned>(
    prefix: &str,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
    revision: u64,
    created: SystemTime,
) -> Result<KvChange<T>, KvError> {
    let key = strip_prefix(prefix, subject).to_owned();
    Ok(match operation(headers) {
        Operation::Put => KvChange::Put(KvEntry {
            value: decode(&key, revision, payload)?,
            key,
            revision,
            created,
        }),
        Operation::Delete => KvChange::Delete { key, revision },
        Operation::Purge => KvChange::Purge { key, revision },
    })
}

pub(super) fn decode<T: DeserializeOwned>(
    key: &str,
    revision: u64,
    bytes: &[u8],
) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|source| KvError::Decode {
        key: key.to_owned(),
        revision,
        type_name: std::any::type_name::<T>(),
        source,
    })
}
