//! Typed KV handles.
//!
//! A [`KvHandle<T>`] stores values of type `T` as JSON in a KV bucket the
//! deployment authority provisioned. Keys are validated before any network
//! call (see [`KvError::InvalidKey`]); values are checked against the
//! binding's installed size limit before they are sent.
//!
//! Reads that need a server-side consumer (`keys`, `watch`) delete that
//! consumer when they are done (or, for a watch, when it is dropped) instead
//! of leaving it to expire, so thousands of calls in a short time do not run
//! into the server's per-stream consumer limit. `history` needs no consumer
//! at all: it walks the key's revisions with direct gets.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::{Operation, UpdateErrorKind};
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::KvBinding;

/// Longest key (and filter) accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// What a key may contain, for error messages.
const KEY_RULES: &str = "keys are one or more `.`-separated tokens of ASCII letters, digits, \
`_`, `-`, `=` and `/`, at most 1024 bytes";

/// What a filter may contain, for error messages.
const FILTER_RULES: &str = "filters are `.`-separated tokens, each a key token (ASCII letters, \
digits, `_`, `-`, `=`, `/`), `*` (exactly one token) or, as the last token only, `>` (one or \
more tokens); e.g. `orders.*`, `orders.>`, `>`";

/// Messages fetched per pull request while listing keys.
const KEYS_BATCH: usize = 1000;

/// How long the server keeps an abandoned consumer of ours (one whose
/// explicit deletion failed).
const CONSUMER_INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// Extra attempts of a `keys` listing after a transport failure.
const KEYS_RETRIES: u32 = 2;

const KV_OPERATION: &str = "KV-Operation";
const MARKER_REASON: &str = "Nats-Marker-Reason";

type BoxError = Box<dyn StdError + Send + Sync>;

/// Errors of [`KvHandle`] operations and of the items of a [`KvWatch`].
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
    fn nats(op: &'static str, key: &str, source: impl Into<BoxError>) -> Self {
        KvError::Nats {
            op,
            key: key.to_owned(),
            source: source.into(),
        }
    }
}

/// The latest value of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry<T> {
    /// The key.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// The revision that wrote the value (pass it to [`KvHandle::update`]).
    pub revision: u64,
    /// When the server stored this revision.
    pub created: SystemTime,
}

/// One change to a key, as seen by [`KvHandle::watch`] and
/// [`KvHandle::history`].
#[derive(Debug, Clone, PartialEq)]
pub enum KvChange<T> {
    /// A value was written.
    Put(KvEntry<T>),
    /// The key was deleted (earlier revisions are kept as history).
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion marker.
        revision: u64,
    },
    /// The key was purged (earlier revisions were removed), or its value
    /// expired.
    Purge {
        /// The key.
        key: String,
        /// The revision of the purge marker.
        revision: u64,
    },
}

impl<T> KvChange<T> {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            KvChange::Put(entry) => &entry.key,
            KvChange::Delete { key, .. } | KvChange::Purge { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> u64 {
        match self {
            KvChange::Put(entry) => entry.revision,
            KvChange::Delete { revision, .. } | KvChange::Purge { revision, .. } => *revision,
        }
    }
}

/// A typed handle to a KV bucket whose values are `T`, stored as JSON.
pub struct KvHandle<T> {
    store: jetstream::kv::Store,
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
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|err| KvError::nats("get", key, err))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => Ok(Some(KvEntry {
                value: decode(&entry.key, entry.revision, &entry.value)?,
                key: entry.key,
                revision: entry.revision,
                created: SystemTime::from(entry.created),
            })),
            _ => Ok(None),
        }
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

    /// The keys with a live value that match `filter`, sorted.
    ///
    /// `filter` is a key, or a pattern with NATS wildcards: `*` matches
    /// exactly one token, a trailing `>` one or more tokens (`orders.*`,
    /// `orders.>`; `>` lists every key).
    pub async fn keys(&self, filter: &str) -> Result<Vec<String>, KvError> {
        validate_filter(filter)?;
        // Listing is read-only and idempotent: retry transport failures a
        // couple of times (a freshly elected stream leader briefly answers
        // "no responders" on clusters).
        let mut attempt = 0;
        loop {
            match self.keys_once(filter).await {
                Err(KvError::Nats { .. }) if attempt < KEYS_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                result => return result,
            }
        }
    }

    async fn keys_once(&self, filter: &str) -> Result<Vec<String>, KvError> {
        let stream = &self.store.stream;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                description: Some("trellis kv keys".to_owned()),
                filter_subject: format!("{}{filter}", self.store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                replay_policy: ReplayPolicy::Instant,
                headers_only: true,
                max_deliver: 1,
                inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                num_replicas: 1,
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|err| KvError::nats("keys", filter, err))?;
        let name = consumer.cached_info().name.clone();
        let listed = self.list_keys(&consumer, filter).await;
        // Delete the consumer now rather than let it linger until its
        // inactivity threshold: lingering ones count against the stream's
        // consumer limit.
        if let Err(err) = stream.delete_consumer(&name).await {
            tracing::debug!(consumer = %name, error = %err, "deleting the kv keys consumer");
        }
        listed
    }

    async fn list_keys(
        &self,
        consumer: &consumer::PullConsumer,
        filter: &str,
    ) -> Result<Vec<String>, KvError> {
        // Latest operation per key; a key can show up again if it changes
        // while we list.
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        let mut pending = consumer.cached_info().num_pending;
        while pending > 0 {
            // `fetch` does not wait: it ends when nothing more is available.
            let mut batch = consumer
                .fetch()
                .max_messages(KEYS_BATCH)
                .messages()
                .await
                .map_err(|err| KvError::nats("keys", filter, err))?;
            let mut received = 0usize;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|err| KvError::nats("keys", filter, err))?;
                let info = message
                    .info()
                    .map_err(|err| KvError::nats("keys", filter, err))?;
                pending = info.pending;
                received += 1;
                let key = strip_prefix(&self.store.prefix, &message.subject);
                let operation = operation(message.headers.as_ref());
                live.insert(key.to_owned(), operation == Operation::Put);
            }
            if received == 0 {
                // The pending count went stale (entries expired or were
                // purged before delivery): nothing is left.
                break;
            }
        }
        Ok(live
            .into_iter()
            .filter_map(|(key, is_live)| is_live.then_some(key))
            .collect())
    }

    /// Watches the keys matching `filter` (a key or a wildcard pattern, as
    /// for [`keys`](Self::keys)).
    ///
    /// The stream first yields the latest change of every matching key (a
    /// `Put`, or a `Delete`/`Purge` whose marker is still stored), oldest
    /// first, then every later change as it happens. A value that does not
    /// decode yields an `Err(KvError::Decode { .. })` item and the stream
    /// goes on. The watch's server-side consumer is deleted when the stream
    /// is dropped.
    pub async fn watch(&self, filter: &str) -> Result<KvWatch<T>, KvError> {
        validate_filter(filter)?;
        let stream = &self.store.stream;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                description: Some("trellis kv watch".to_owned()),
                filter_subject: format!("{}{filter}", self.store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: ReplayPolicy::Instant,
                ..Default::default()
            })
            .await
            .map_err(|err| KvError::nats("watch", filter, err))?;
        let name = consumer.cached_info().name.clone();
        let caught_up = consumer.cached_info().num_pending == 0;
        let messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(err) => {
                if let Err(err) = stream.delete_consumer(&name).await {
                    tracing::debug!(consumer = %name, error = %err, "deleting the kv watch consumer");
                }
                return Err(KvError::nats("watch", filter, err));
            }
        };
        Ok(KvWatch {
            messages: Some(Box::pin(messages)),
            stream: stream.clone(),
            consumer: name,
            prefix: self.store.prefix.clone(),
            filter: filter.to_owned(),
            caught_up,
            _values: PhantomData,
        })
    }

    /// Watches every key of the bucket; see [`watch`](Self::watch).
    pub async fn watch_all(&self) -> Result<KvWatch<T>, KvError> {
        self.watch(">").await
    }

    /// Every stored revision of `key`, oldest first: values, deletion and
    /// purge markers (a purge removes the revisions before it). The bucket
    /// keeps a limited number of revisions per key. Empty if the key was
    /// never written. Fails with [`KvError::Decode`] if a stored value does
    /// not decode.
    pub async fn history(&self, key: &str) -> Result<Vec<KvChange<T>>, KvError> {
        validate_key(key)?;
        let subject = format!("{}{key}", self.store.prefix);
        let stream = &self.store.stream;
        let direct = stream.cached_info().config.allow_direct;
        // Walk the key's messages with direct gets (no consumer), up to the
        // latest one at the time of the call.
        let Some(last) = self.message_for(direct, &subject, None, key).await? else {
            return Ok(Vec::new());
        };
        let mut changes = Vec::new();
        let mut next = 1;
        while next < last.sequence {
            let Some(message) = self.message_for(direct, &subject, Some(next), key).await? else {
                break;
            };
            if message.sequence >= last.sequence {
                break;
            }
            next = message.sequence + 1;
            changes.push(change_from_message(
                &self.store.prefix,
                &message.subject,
                Some(&message.headers),
                &message.payload,
                message.sequence,
                SystemTime::from(message.time),
            )?);
        }
        changes.push(change_from_message(
            &self.store.prefix,
            &last.subject,
            Some(&last.headers),
            &last.payload,
            last.sequence,
            SystemTime::from(last.time),
        )?);
        Ok(changes)
    }

    /// The first message on `subject` at or after sequence `from`, or the
    /// last one if `from` is `None`.
    async fn message_for(
        &self,
        direct: bool,
        subject: &str,
        from: Option<u64>,
        key: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, KvError> {
        let stream = &self.store.stream;
        if direct {
            let builder = stream.direct_get_builder();
            let builder = match from {
                Some(from) => builder.next_by_subject(subject).sequence(from),
                None => builder.last_by_subject(subject),
            };
            match builder.send().await {
                Ok(message) => Ok(Some(message)),
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(err) => Err(KvError::nats("history", key, err)),
            }
        } else {
            let builder = stream.raw_message_builder();
            let builder = match from {
                Some(from) => builder.next_by_subject(subject).sequence(from),
                None => builder.last_by_subject(subject),
            };
            match builder.send().await {
                Ok(message) => Ok(Some(message)),
                Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(err) => Err(KvError::nats("history", key, err)),
            }
        }
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

/// A typed stream of changes to the keys a [`KvHandle::watch`] matches.
///
/// Items are `Ok(change)` or an error: [`KvError::Decode`] for a value that
/// does not decode, [`KvError::Nats`] for a transport problem (the watch
/// re-establishes itself and goes on). Dropping it deletes its server-side
/// consumer.
pub struct KvWatch<T> {
    messages: Option<Pin<Box<consumer::pull::Ordered>>>,
    stream: jetstream::stream::Stream,
    consumer: String,
    prefix: String,
    filter: String,
    caught_up: bool,
    _values: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for KvWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvWatch")
            .field("filter", &self.filter)
            .field("caught_up", &self.caught_up)
            .finish_non_exhaustive()
    }
}

impl<T> KvWatch<T> {
    /// Whether the initial changes (the latest one of every matching key at
    /// the time of the call) have all been yielded; later items are live
    /// changes.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }
}

impl<T: DeserializeOwned> Stream for KvWatch<T> {
    type Item = Result<KvChange<T>, KvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(messages) = this.messages.as_mut() else {
            return Poll::Ready(None);
        };
        let message = match messages.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => {
                return Poll::Ready(Some(Err(KvError::nats("watch", &this.filter, err))));
            }
            Poll::Ready(Some(Ok(message))) => message,
        };
        let info = match message.info() {
            Ok(info) => info,
            Err(err) => return Poll::Ready(Some(Err(KvError::nats("watch", &this.filter, err)))),
        };
        if info.pending == 0 {
            this.caught_up = true;
        }
        let revision = info.stream_sequence;
        let created = SystemTime::from(info.published);
        Poll::Ready(Some(change_from_message(
            &this.prefix,
            &message.subject,
            message.headers.as_ref(),
            &message.payload,
            revision,
            created,
        )))
    }
}

impl<T> Drop for KvWatch<T> {
    fn drop(&mut self) {
        // Stop pulling first, then delete the consumer in the background
        // (without a runtime it expires on its own).
        self.messages = None;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stream = self.stream.clone();
        let name = std::mem::take(&mut self.consumer);
        runtime.spawn(async move {
            if let Err(err) = stream.delete_consumer(&name).await {
                tracing::debug!(consumer = %name, error = %err, "deleting the kv watch consumer");
            }
        });
    }
}

fn strip_prefix<'a>(prefix: &str, subject: &'a str) -> &'a str {
    subject.strip_prefix(prefix).unwrap_or(subject)
}

/// The KV operation a message records (as async-nats reads it).
fn operation(headers: Option<&HeaderMap>) -> Operation {
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

fn change_from_message<T: DeserializeOwned>(
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

fn decode<T: DeserializeOwned>(key: &str, revision: u64, bytes: &[u8]) -> Result<T, KvError> {
    serde_json::from_slice(bytes).map_err(|source| KvError::Decode {
        key: key.to_owned(),
        revision,
        type_name: std::any::type_name::<T>(),
        source,
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '/')
}

/// Why `text` is not a well-formed `.`-separated token list, if it is not.
/// `wildcards` allows `*` tokens and a final `>` token.
fn token_problem(text: &str, wildcards: bool) -> Option<String> {
    if text.is_empty() {
        return Some("it is empty".to_owned());
    }
    if text.len() > MAX_KEY_LEN {
        return Some(format!(
            "it is {} bytes long, over the limit of {MAX_KEY_LEN}",
            text.len()
        ));
    }
    if text.starts_with('.') {
        return Some("it starts with `.` (an empty first token)".to_owned());
    }
    if text.ends_with('.') {
        return Some("it ends with `.` (an empty last token)".to_owned());
    }
    if let Some(at) = text.find("..") {
        return Some(format!("it has an empty token (`..` at byte {at})"));
    }
    let tokens: Vec<&str> = text.split('.').collect();
    let count = tokens.len();
    for (index, token) in tokens.into_iter().enumerate() {
        if wildcards && token == "*" {
            continue;
        }
        if wildcards && token == ">" {
            if index + 1 == count {
                continue;
            }
            return Some("`>` is only allowed as the last token".to_owned());
        }
        if let Some(c) = token.chars().find(|&c| !is_token_char(c)) {
            let what = match c {
                '*' | '>' if wildcards => {
                    format!("wildcard `{c}` must be a whole token (`a.*`, not `a*`)")
                }
                '*' | '>' => format!(
                    "wildcard `{c}` is not allowed in a key (use `keys` or `watch` with a filter to match many keys)"
                ),
                c if c.is_whitespace() => format!("whitespace {c:?} is not allowed"),
                c => format!("character {c:?} is not allowed"),
            };
            return Some(format!("{what} (in token `{token}`)"));
        }
    }
    None
}

fn validate_key(key: &str) -> Result<(), KvError> {
    match token_problem(key, false) {
        None => Ok(()),
        Some(problem) => Err(KvError::InvalidKey {
            key: key.to_owned(),
            reason: format!("{problem}; {KEY_RULES}"),
        }),
    }
}

fn validate_filter(filter: &str) -> Result<(), KvError> {
    match token_problem(filter, true) {
        None => Ok(()),
        Some(problem) => Err(KvError::InvalidFilter {
            filter: filter.to_owned(),
            reason: format!("{problem}; {FILTER_RULES}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Instant;

    use serde::Deserialize;
    use trellis_testing::NatsServer;

    type TestResult = Result<(), Box<dyn StdError + Send + Sync>>;

    const STEP: Duration = Duration::from_secs(5);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        name: String,
        qty: u32,
    }

    fn item(name: &str, qty: u32) -> Item {
        Item {
            name: name.to_owned(),
            qty,
        }
    }

    fn binding(bucket: &str) -> KvBinding {
        KvBinding {
            bucket: bucket.into(),
            history: 5,
            ttl_ms: 0,
            max_value_bytes: Some(1024),
        }
    }

    struct Fixture {
        server: NatsServer,
        js: jetstream::Context,
        store: jetstream::kv::Store,
        kv: KvHandle<Item>,
    }

    async fn fixture() -> Result<Fixture, Box<dyn StdError + Send + Sync>> {
        let server = NatsServer::start().await?;
        let client = server.client().await?;
        let js = jetstream::new(client);
        let binding = binding("items");
        let store = crate::layout::create_kv_for_test(&js, &binding).await;
        let kv = KvHandle::<Item>::new(store.clone(), binding);
        Ok(Fixture {
            server,
            js,
            store,
            kv,
        })
    }

    async fn next<T: DeserializeOwned>(
        watch: &mut KvWatch<T>,
    ) -> Result<KvChange<T>, Box<dyn StdError + Send + Sync>> {
        match tokio::time::timeout(STEP, watch.next()).await {
            Err(_) => Err("watch yielded nothing within 5 s".into()),
            Ok(None) => Err("watch ended".into()),
            Ok(Some(item)) => Ok(item?),
        }
    }

    async fn consumer_count(
        js: &jetstream::Context,
    ) -> Result<usize, Box<dyn StdError + Send + Sync>> {
        let mut stream = js.get_stream("KV_items").await?;
        Ok(stream.info().await?.state.consumer_count)
    }

    #[tokio::test]
    async fn put_get_round_trip_with_revisions() -> TestResult {
        let f = fixture().await?;
        assert!(f.kv.get("orders.1").await?.is_none());
        let before = SystemTime::now() - Duration::from_secs(60);
        let r1 = f.kv.put("orders.1", &item("a", 1)).await?;
        let entry = f.kv.get("orders.1").await?.ok_or("missing")?;
        assert_eq!(entry.key, "orders.1");
        assert_eq!(entry.value, item("a", 1));
        assert_eq!(entry.revision, r1);
        assert!(entry.created > before);
        let r2 = f.kv.put("orders.1", &item("a", 2)).await?;
        assert!(r2 > r1);
        let entry = f.kv.get("orders.1").await?.ok_or("missing")?;
        assert_eq!((entry.value.qty, entry.revision), (2, r2));
        // Keys with `/`, `=`, `-`, `_` are fine.
        f.kv.put("path/to=x-y_z.1", &item("p", 0)).await?;
        assert!(f.kv.get("path/to=x-y_z.1").await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn create_conflicts_but_succeeds_over_a_tombstone() -> TestResult {
        let f = fixture().await?;
        let r1 = f.kv.create("k", &item("a", 1)).await?;
        match f.kv.create("k", &item("b", 2)).await {
            Err(KvError::AlreadyExists { key }) => assert_eq!(key, "k"),
            other => return Err(format!("expected AlreadyExists, got {other:?}").into()),
        }
        assert_eq!(f.kv.get("k").await?.ok_or("missing")?.revision, r1);
        f.kv.delete("k").await?;
        let r2 = f.kv.create("k", &item("c", 3)).await?;
        assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("c", 3));
        f.kv.purge("k").await?;
        let r3 = f.kv.create("k", &item("d", 4)).await?;
        assert!(r3 > r2);
        assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("d", 4));
        Ok(())
    }

    #[tokio::test]
    async fn update_is_compare_and_set() -> TestResult {
        let f = fixture().await?;
        let r1 = f.kv.put("k", &item("a", 1)).await?;
        let r2 = f.kv.update("k", &item("a", 2), r1).await?;
        assert!(r2 > r1);
        match f.kv.update("k", &item("a", 3), r1).await {
            Err(KvError::RevisionMismatch {
                key,
                expected,
                current,
            }) => {
                assert_eq!((key.as_str(), expected, current), ("k", r1, Some(r2)));
            }
            other => return Err(format!("expected RevisionMismatch, got {other:?}").into()),
        }
        assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("a", 2));
        // Revision 0 on a missing key creates it; on an existing one it misses.
        f.kv.update("fresh", &item("f", 0), 0).await?;
        assert!(matches!(
            f.kv.update("fresh", &item("f", 1), 0).await,
            Err(KvError::RevisionMismatch { expected: 0, .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn delete_then_history() -> TestResult {
        let f = fixture().await?;
        assert!(f.kv.history("k").await?.is_empty());
        let r1 = f.kv.put("k", &item("a", 1)).await?;
        f.kv.put("other", &item("o", 0)).await?;
        let r2 = f.kv.put("k", &item("a", 2)).await?;
        f.kv.delete("k").await?;
        assert!(f.kv.get("k").await?.is_none());
        let history = f.kv.history("k").await?;
        assert_eq!(history.len(), 3, "{history:?}");
        assert!(matches!(&history[0], KvChange::Put(e) if e.revision == r1 && e.value.qty == 1));
        assert!(matches!(&history[1], KvChange::Put(e) if e.revision == r2 && e.value.qty == 2));
        assert!(
            matches!(&history[2], KvChange::Delete { key, revision } if key == "k" && *revision > r2)
        );
        // The bucket keeps 5 revisions per key.
        for qty in 0..8 {
            f.kv.put("many", &item("m", qty)).await?;
        }
        let history = f.kv.history("many").await?;
        let qtys: Vec<u32> = history
            .iter()
            .map(|change| match change {
                KvChange::Put(entry) => entry.value.qty,
                _ => u32::MAX,
            })
            .collect();
        assert_eq!(qtys, vec![3, 4, 5, 6, 7]);
        Ok(())
    }

    #[tokio::test]
    async fn purge_removes_history() -> TestResult {
        let f = fixture().await?;
        f.kv.put("k", &item("a", 1)).await?;
        f.kv.put("k", &item("a", 2)).await?;
        f.kv.purge("k").await?;
        assert!(f.kv.get("k").await?.is_none());
        let history = f.kv.history("k").await?;
        assert_eq!(history.len(), 1, "{history:?}");
        assert!(matches!(&history[0], KvChange::Purge { key, .. } if key == "k"));
        assert!(f.kv.keys(">").await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn keys_with_filters() -> TestResult {
        let f = fixture().await?;
        assert!(f.kv.keys(">").await?.is_empty());
        for key in ["a.1", "a.2", "a.b.c", "b.1", "a"] {
            f.kv.put(key, &item(key, 0)).await?;
        }
        f.kv.put("a.3", &item("gone", 0)).await?;
        f.kv.delete("a.3").await?;
        f.kv.put("a.4", &item("purged", 0)).await?;
        f.kv.purge("a.4").await?;
        f.kv.put("a.1", &item("again", 1)).await?;
        assert_eq!(f.kv.keys("a.*").await?, vec!["a.1", "a.2"]);
        assert_eq!(f.kv.keys("a.>").await?, vec!["a.1", "a.2", "a.b.c"]);
        assert_eq!(f.kv.keys("*.1").await?, vec!["a.1", "b.1"]);
        assert_eq!(f.kv.keys("a").await?, vec!["a"]);
        assert_eq!(f.kv.keys("a.b.c").await?, vec!["a.b.c"]);
        assert!(f.kv.keys("a.3").await?.is_empty());
        assert!(f.kv.keys("zzz.>").await?.is_empty());
        assert_eq!(
            f.kv.keys(">").await?,
            vec!["a", "a.1", "a.2", "a.b.c", "b.1"]
        );
        // More keys than one fetch batch.
        for n in 0..(KEYS_BATCH + 250) {
            f.store
                .put(format!("bulk.{n}"), Bytes::from_static(b"{}"))
                .await?;
        }
        assert_eq!(f.kv.keys("bulk.*").await?.len(), KEYS_BATCH + 250);
        for bad in ["", "a.", ".a", "a..b", "a.>.b", "a*", "a b", "a.*x", ">.a"] {
            assert!(
                matches!(f.kv.keys(bad).await, Err(KvError::InvalidFilter { .. })),
                "filter {bad:?} accepted"
            );
        }
        assert_eq!(
            consumer_count(&f.js).await?,
            0,
            "keys left consumers behind"
        );
        Ok(())
    }

    #[tokio::test]
    async fn watch_sees_snapshot_then_changes_in_order() -> TestResult {
        let f = fixture().await?;
        f.kv.put("w.old", &item("old", 0)).await?;
        f.kv.put("w.gone", &item("gone", 0)).await?;
        f.kv.delete("w.gone").await?;
        f.kv.put("x.ignored", &item("x", 0)).await?;
        let mut watch = f.kv.watch("w.*").await?;
        assert!(!watch.is_caught_up());
        match next(&mut watch).await? {
            KvChange::Put(entry) => assert_eq!(
                (entry.key.as_str(), entry.value.name.as_str()),
                ("w.old", "old")
            ),
            other => return Err(format!("expected w.old put, got {other:?}").into()),
        }
        assert!(matches!(next(&mut watch).await?, KvChange::Delete { key, .. } if key == "w.gone"));
        assert!(watch.is_caught_up());

        let r1 = f.kv.put("w.1", &item("one", 1)).await?;
        f.kv.put("x.2", &item("not watched", 2)).await?;
        let r2 = f.kv.put("w.1", &item("one", 2)).await?;
        f.kv.delete("w.1").await?;
        f.kv.purge("w.old").await?;
        match next(&mut watch).await? {
            KvChange::Put(entry) => {
                assert_eq!(
                    (entry.key.as_str(), entry.value.qty, entry.revision),
                    ("w.1", 1, r1)
                );
            }
            other => return Err(format!("expected put, got {other:?}").into()),
        }
        assert_eq!(next(&mut watch).await?.revision(), r2);
        assert!(
            matches!(next(&mut watch).await?, KvChange::Delete { key, revision } if key == "w.1" && revision > r2)
        );
        assert!(matches!(next(&mut watch).await?, KvChange::Purge { key, .. } if key == "w.old"));

        // watch_all sees every key; an empty bucket filter just waits.
        let mut all = f.kv.watch_all().await?;
        let mut keys = Vec::new();
        while !all.is_caught_up() {
            keys.push(next(&mut all).await?.key().to_owned());
        }
        assert_eq!(keys, vec!["w.gone", "x.ignored", "x.2", "w.1", "w.old"]);
        let mut empty = f.kv.watch("nothing.>").await?;
        assert!(empty.is_caught_up());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), empty.next())
                .await
                .is_err()
        );

        drop((watch, all, empty));
        let deadline = Instant::now() + STEP;
        while consumer_count(&f.js).await? > 0 {
            if Instant::now() > deadline {
                return Err("dropped watches left consumers behind".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn undecodable_values_are_typed_errors() -> TestResult {
        let f = fixture().await?;
        let mut watch = f.kv.watch("d.>").await?;
        let bad_rev = f
            .store
            .put("d.bad", Bytes::from_static(b"not json"))
            .await?;
        f.store
            .put("d.wrong", Bytes::from_static(br#"{"name": 5}"#))
            .await?;
        match f.kv.get("d.bad").await {
            Err(KvError::Decode {
                key,
                revision,
                type_name,
                ..
            }) => {
                assert_eq!((key.as_str(), revision), ("d.bad", bad_rev));
                assert!(type_name.ends_with("Item"), "{type_name}");
            }
            other => return Err(format!("expected Decode, got {other:?}").into()),
        }
        assert!(matches!(
            f.kv.history("d.bad").await,
            Err(KvError::Decode { .. })
        ));
        for expected in ["d.bad", "d.wrong"] {
            match tokio::time::timeout(STEP, watch.next()).await? {
                Some(Err(KvError::Decode { key, .. })) => assert_eq!(key, expected),
                other => return Err(format!("expected a Decode item, got {other:?}").into()),
            }
        }
        // The handle and the watch keep working; the raw bytes are still there.
        f.kv.put("d.good", &item("good", 1)).await?;
        assert!(matches!(next(&mut watch).await?, KvChange::Put(e) if e.key == "d.good"));
        assert_eq!(f.kv.keys("d.*").await?, vec!["d.bad", "d.good", "d.wrong"]);
        assert_eq!(
            f.store.get("d.bad").await?.as_deref(),
            Some(&b"not json"[..])
        );
        f.kv.put("d.bad", &item("fixed", 2)).await?;
        assert_eq!(
            f.kv.get("d.bad").await?.ok_or("missing")?.value,
            item("fixed", 2)
        );
        Ok(())
    }

    #[tokio::test]
    async fn invalid_keys_are_rejected_before_any_io() -> TestResult {
        let mut f = fixture().await?;
        // With the server gone, anything that reached the network would fail
        // with a transport error (or hang until a timeout), not InvalidKey.
        f.server.stop().await?;
        let started = Instant::now();
        let long = "k".repeat(MAX_KEY_LEN + 1);
        let bad = [
            "", ".a", "a.", "a..b", "a b", "a.*", "a.>", ">", "tab\tkey", "ümlaut", &long,
        ];
        for key in bad {
            let checks = [
                f.kv.get(key).await.map(|_| ()),
                f.kv.put(key, &item("x", 0)).await.map(|_| ()),
                f.kv.create(key, &item("x", 0)).await.map(|_| ()),
                f.kv.update(key, &item("x", 0), 1).await.map(|_| ()),
                f.kv.delete(key).await,
                f.kv.purge(key).await,
                f.kv.history(key).await.map(|_| ()),
            ];
            for result in checks {
                match result {
                    Err(KvError::InvalidKey { key: k, reason }) => {
                        assert_eq!(k, key);
                        assert!(
                            reason.contains("allowed") || reason.contains("keys are"),
                            "{reason}"
                        );
                    }
                    other => {
                        return Err(
                            format!("key {key:?}: expected InvalidKey, got {other:?}").into()
                        );
                    }
                }
            }
        }
        for filter in ["", "a..b", "a*", "a.>.b", "a b"] {
            assert!(matches!(
                f.kv.keys(filter).await,
                Err(KvError::InvalidFilter { .. })
            ));
            assert!(matches!(
                f.kv.watch(filter).await,
                Err(KvError::InvalidFilter { .. })
            ));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let reason = |key: &str| match validate_key(key) {
            Err(KvError::InvalidKey { reason, .. }) => reason,
            _ => String::new(),
        };
        assert!(reason("").starts_with("it is empty;"));
        assert!(reason(".a").starts_with("it starts with `.`"));
        assert!(reason("a..b").starts_with("it has an empty token"));
        assert!(reason("a b").starts_with("whitespace ' ' is not allowed"));
        assert!(reason("a.*").starts_with("wildcard `*` is not allowed in a key"));
        assert!(reason("a.*").contains(KEY_RULES));
        Ok(())
    }

    #[tokio::test]
    async fn oversize_values_are_refused_and_nothing_is_written() -> TestResult {
        let f = fixture().await?;
        let big = item(&"x".repeat(2000), 1);
        for result in [
            f.kv.put("big", &big).await,
            f.kv.create("big", &big).await,
            f.kv.update("big", &big, 0).await,
        ] {
            match result {
                Err(KvError::ValueTooLarge { key, size, limit }) => {
                    assert_eq!((key.as_str(), limit), ("big", 1024));
                    assert!(size > 2000);
                }
                other => return Err(format!("expected ValueTooLarge, got {other:?}").into()),
            }
        }
        let mut stream = f.js.get_stream("KV_items").await?;
        assert_eq!(stream.info().await?.state.messages, 0);
        assert!(f.kv.get("big").await?.is_none());
        // A value exactly at the limit is written.
        let fits = item(&"y".repeat(1024 - r#"{"name":"","qty":1}"#.len()), 1);
        assert_eq!(serde_json::to_vec(&fits)?.len(), 1024);
        let revision = f.kv.put("fits", &fits).await?;
        assert_eq!(f.kv.get("fits").await?.ok_or("missing")?.value, fits);
        // Conditional writes carry headers; provisioning leaves header room
        // above the value limit, so a value exactly at the limit fits too.
        let updated = f.kv.update("fits", &fits, revision).await?;
        assert!(updated > revision);
        f.kv.create("fits2", &fits).await?;
        assert_eq!(f.kv.get("fits2").await?.ok_or("missing")?.value, fits);
        Ok(())
    }

    #[tokio::test]
    async fn encode_failures_are_typed() -> TestResult {
        let f = fixture().await?;
        let kv = KvHandle::<BTreeMap<(u8, u8), u8>>::new(f.store.clone(), binding("items"));
        let map = BTreeMap::from([((1, 2), 3)]);
        assert!(matches!(
            kv.put("m", &map).await,
            Err(KvError::Encode { .. })
        ));
        assert!(kv.get("m").await?.is_none());
        Ok(())
    }

    async fn many_keys_and_watches(
        kv: &KvHandle<Item>,
        calls: usize,
    ) -> Result<Duration, Box<dyn StdError + Send + Sync>> {
        kv.put("seed.1", &item("seed", 1)).await?;
        let started = Instant::now();
        for n in 0..calls {
            let keys = kv
                .keys("seed.*")
                .await
                .map_err(|err| format!("keys call {n}: {err}"))?;
            assert_eq!(keys, vec!["seed.1"]);
        }
        let keys_took = started.elapsed();
        for n in 0..calls {
            let mut watch = kv
                .watch("seed.>")
                .await
                .map_err(|err| format!("watch call {n}: {err}"))?;
            let first = next(&mut watch)
                .await
                .map_err(|err| format!("watch call {n}: {err}"))?;
            assert_eq!(first.key(), "seed.1");
        }
        let took = started.elapsed();
        eprintln!(
            "{calls} keys calls: {keys_took:?}; {calls} watch calls: {:?}",
            took - keys_took
        );
        Ok(took)
    }

    #[tokio::test]
    async fn three_thousand_keys_and_watch_calls_within_30s() -> TestResult {
        let f = fixture().await?;
        let elapsed = many_keys_and_watches(&f.kv, 3000).await?;
        eprintln!("3000 keys + 3000 watch calls took {elapsed:?}");
        assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
        let deadline = Instant::now() + STEP;
        while consumer_count(&f.js).await? > 0 {
            if Instant::now() > deadline {
                return Err("consumers left behind".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn many_calls_work_without_a_raised_consumer_limit() -> TestResult {
        // A bucket created by plain async-nats (server default consumer
        // limit): only deleting our consumers keeps this under the cap.
        let server = NatsServer::start().await?;
        let js = jetstream::new(server.client().await?);
        let store = js
            .create_key_value(jetstream::kv::Config {
                bucket: "items".into(),
                history: 5,
                ..Default::default()
            })
            .await?;
        let kv = KvHandle::<Item>::new(store, binding("items"));
        let elapsed = many_keys_and_watches(&kv, 1500).await?;
        eprintln!("1500 keys + 1500 watch calls (default consumer limit) took {elapsed:?}");
        Ok(())
    }
}
