//! [`KvHandle`] and its single-key operations: get, put, create, update,
//! delete, purge.

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use async_nats::jetstream;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::KvBinding;

use super::entry::KvEntry;
use super::error::KvError;
use super::key::validate_key;
use super::message::{decode, operation};

/// A typed handle to a KV bucket whose values are `T`, stored as JSON.
pub struct KvHandle<T> {
    pub(super) store: jetstream::kv::Store,
    binding: KvBinding,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for KvHandle<T> {
    fn clone(&self) -> Self {
        KvHandle {
            store: self.store.clone(),
            binding: self.binding.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for KvHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvHandle").finish_non_exhaustive()
    }
}

impl<T> KvHandle<T> {
    pub(crate) fn new(store: jetstream::kv::Store, binding: KvBinding) -> Self {
        KvHandle {
            store,
            binding,
            _values: PhantomData,
        }
    }
}

impl<T> KvHandle<T>
where
    T: Serialize + DeserializeOwned,
{
    /// The latest value of `key`, or `None` if the key has never been
    /// written, or was deleted or purged.
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry<T>>, KvError> {
        validate_key(key)?;
        // From the stream leader, not a direct get (which any replica may
        // answer before it applied the latest write): a read after an
        // acknowledged write sees it, even right after a leader change.
        let subject = format!("{}{key}", self.store.prefix);
        let message = match self
            .store
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(KvError::nats("get", key, e)),
        };
        if operation(Some(&message.headers)) != Operation::Put {
            return Ok(None);
        }
        Ok(Some(KvEntry {
            value: decode(key, message.sequence, &message.payload)?,
            key: key.to_owned(),
            revision: message.sequence,
            created: SystemTime::from(message.time),
        }))
    }

    /// Writes `value` under `key` unconditionally; returns the new revision.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, KvError> {
        validate_key(key)?;
        let bytes = self.encode(key, value)?;
        let size = bytes.len();
        let revision = self
            .store
            .put(key, bytes)
            .await
            .map_err(|err| self.write_error("put", key, size, err))?;
        tracing::debug!(key, revision, "kv put");
        Ok(revision)
    }

    /// Writes `value` under `key` only if the key has no live value (never
    /// written, deleted or purged); returns the new revision. Fails with
    /// [`KvError::AlreadyExists`] otherwise.
    pub async fn create(&self, key: &str, value: &T) -> Result<u64, KvError> {
        validate_key(key)?;
        let bytes = self.encode(key, value)?;
        let size = bytes.len();
        let already_exists = || KvError::AlreadyExists {
            key: key.to_owned(),
        };
        // Expected revision 0: the key has no message at all.
        match self.store.update(key, bytes.clone(), 0).await {
            Ok(revision) => return Ok(revision),
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {}
            Err(err) => return Err(self.write_error("create", key, size, err)),
        }
        // The key has a message: a live value, or a deletion marker that may
        // be overwritten (conditionally on it still being the latest).
        let latest = self
            .store
            .entry(key)
            .await
            .map_err(|err| KvError::nats("create", key, err))?;
        let expected = match latest {
            Some(entry) if entry.operation == Operation::Put => return Err(already_exists()),
            Some(marker) => marker.revision,
            // Gone in between (e.g. expired): try "no message" again.
            None => 0,
        };
        match self.store.update(key, bytes, expected).await {
            Ok(revision) => Ok(revision),
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => Err(already_exists()),
            Err(err) => Err(self.write_error("create", key, size, err)),
        }
    }

    /// Writes `value` under `key` only if the key's latest revision is
    /// `expected_revision` (compare-and-set); returns the new revision.
    /// Fails with [`KvError::RevisionMismatch`] otherwise. Revision 0 means
    /// "the key has no revisions at all".
    pub async fn update(
        &self,
        key: &str,
        value: &T,
        expected_revision: u64,
    ) -> Result<u64, KvError> {
        validate_key(key)?;
        let bytes = self.encode(key, value)?;
        let size = bytes.len();
        match self.store.update(key, bytes, expected_revision).await {
            Ok(revision) => Ok(revision),
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                let current = match self.store.entry(key).await {
                    Ok(entry) => entry.map(|entry| entry.revision),
                    Err(err) => {
                        tracing::debug!(key, error = %err, "reading the latest revision after a CAS miss");
                        None
                    }
                };
                Err(KvError::RevisionMismatch {
                    key: key.to_owned(),
                    expected: expected_revision,
                    current,
                })
            }
            Err(err) => Err(self.write_error("update", key, size, err)),
        }
    }

    /// Deletes `key`: writes a deletion marker, keeping earlier revisions as
    /// history. Deleting a missing key succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        validate_key(key)?;
        self.store
            .delete(key)
            .await
            .map_err(|err| KvError::nats("delete", key, err))
    }

    /// Purges `key`: writes a purge marker and removes every earlier
    /// revision. Purging a missing key succeeds.
    pub async fn purge(&self, key: &str) -> Result<(), KvError> {
        validate_key(key)?;
        self.store
            .purge(key)
            .await
            .map_err(|err| KvError::nats("purge", key, err))
    }

    fn encode(&self, key: &str, value: &T) -> Result<Bytes, KvError> {
        let bytes = serde_json::to_vec(value).map_err(|source| KvError::Encode {
            key: key.to_owned(),
            source,
        })?;
        if let Some(limit) = self.binding.max_value_bytes
            && u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit
        {
            return Err(KvError::ValueTooLarge {
                key: key.to_owned(),
                size: bytes.len(),
                limit,
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// The error of a failed write of `size` value bytes: `ValueTooLarge`
    /// if the server refused the message's size, else `Nats`.
    fn write_error<E>(&self, op: &'static str, key: &str, size: usize, err: E) -> KvError
    where
        E: StdError + Send + Sync + 'static,
    {
        if server_error_code(&err) == Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM) {
            let installed = self.store.stream.cached_info().config.max_message_size;
            return KvError::ValueTooLarge {
                key: key.to_owned(),
                size,
                limit: self
                    .binding
                    .max_value_bytes
                    .unwrap_or_else(|| u64::try_from(installed).unwrap_or(0)),
            };
        }
        KvError::nats(op, key, err)
    }
}

/// The `JetStream` API error code somewhere in `err`'s source chain.
fn server_error_code(err: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(api) = err.downcast_ref::<jetstream::Error>() {
            return Some(api.error_code());
        }
        current = err.source();
    }
    None
}
