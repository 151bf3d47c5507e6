//! Object store handles.
//!
//! A contract's store alias becomes a [`StoreHandle`]; [`StoreHandle::open`]
//! gives a [`Store`] that writes, reads, lists and deletes objects:
//!
//! ```no_run
//! # async fn demo(uploads: trellis_runtime::StoreHandle) -> Result<(), trellis_runtime::store::StoreError> {
//! use trellis_runtime::store::{ListOptions, PutOptions};
//!
//! let store = uploads.open().await?;
//! let options = PutOptions::new().content_type("text/plain");
//! store.put("notes/today.txt", b"hello", options).await?;
//! if let Some(object) = store.get("notes/today.txt").await? {
//!     assert_eq!(object.bytes().await?, &b"hello"[..]);
//! }
//! let page = store.list(ListOptions::new(100).prefix("notes/")).await?;
//! assert_eq!(page.count, 1);
//! # Ok(()) }
//! ```
//!
//! Objects use the NATS object store format, so other NATS clients (e.g.
//! async-nats's `ObjectStore`) read what trellis writes and vice versa.
//! Unlike async-nats, trellis
//!
//! - validates keys before any I/O,
//! - uploads chunks with a window of outstanding acks instead of one at a
//!   time,
//! - enforces the store's size limit and never leaves a partial object or
//!   orphaned chunks behind when a write fails (full store, failing body,
//!   cancelled future), keeping the previous version of the key intact,
//! - reads without creating JetStream consumers (direct gets), so any
//!   number of reads is fine.

mod body;
mod error;
mod format;
mod read;
mod sweep;
mod write;

pub(crate) use read::ChunkStart;
pub(crate) use write::ExpectDigest;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use futures::StreamExt;

use crate::layout;
use crate::protocol::StoreBinding;

pub use body::Body;
pub use error::StoreError;
pub use read::Object;

use error::nats;
use write::Mode;

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The largest page [`Store::list`] returns.
pub const MAX_LIST_LIMIT: usize = 1000;

/// A handle to an object store; `open()` it to read and write objects.
#[derive(Clone)]
pub struct StoreHandle {
    js: jetstream::Context,
    binding: StoreBinding,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    pub(crate) fn new(js: jetstream::Context, binding: StoreBinding) -> Self {
        StoreHandle { js, binding }
    }

    /// The binding (runtime internal).
    pub(crate) fn binding(&self) -> &StoreBinding {
        &self.binding
    }

    /// Opens the object store (one JetStream request).
    pub async fn open(&self) -> Result<Store, StoreError> {
        let stream_name = layout::object_stream_name(&self.binding.bucket);
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(nats("opening the object store"))?;
        if !stream.cached_info().config.allow_direct {
            return Err(StoreError::Misconfigured {
                reason: "its stream does not allow direct gets".to_owned(),
            });
        }
        Ok(Store {
            js: self.js.clone(),
            stream,
            stream_name,
            bucket: self.binding.bucket.clone(),
            binding: self.binding.clone(),
        })
    }
}

/// An open object store. Cheap to clone; clones share the connection.
///
/// Keys are non-empty strings of at most [`MAX_KEY_LEN`] bytes without
/// control characters that do not start or end with `.`; `/` has no special
/// meaning but makes prefixes useful for [`Store::list`].
///
/// Links (objects other NATS clients can create that point to another
/// object or bucket) are not supported: [`Store::get`] and [`Store::info`]
/// refuse them with [`StoreError::Unsupported`] and listings skip them.
#[derive(Clone)]
pub struct Store {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    stream_name: String,
    bucket: String,
    binding: StoreBinding,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Options of [`Store::put`] and [`Store::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// MIME type, stored as the object's `Content-Type` header.
    pub content_type: Option<String>,
    /// Free-form metadata stored with the object.
    pub metadata: BTreeMap<String, String>,
}

impl PutOptions {
    /// No content type, no metadata.
    pub fn new() -> PutOptions {
        PutOptions::default()
    }

    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> PutOptions {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> PutOptions {
        self.metadata.insert(name.into(), value.into());
        self
    }
}

/// What the store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The key.
    pub key: String,
    /// Content size in bytes.
    pub size: u64,
    /// SHA-256 of the content in the NATS object store form:
    /// `SHA-256=` followed by the base64url (padded) digest, as every NATS
    /// client writes and checks it.
    pub digest: String,
    /// MIME type, if set when writing.
    pub content_type: Option<String>,
    /// Metadata set when writing.
    pub metadata: BTreeMap<String, String>,
    /// When this version was written (writer's clock).
    pub modified: SystemTime,
}

/// Which part of the key space [`Store::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this prefix (empty: all).
    pub prefix: String,
    /// Skip this many matching objects.
    pub offset: usize,
    /// Return at most this many; must be between 1 and [`MAX_LIST_LIMIT`].
    pub limit: usize,
}

impl ListOptions {
    /// The first `limit` objects of the store.
    pub fn new(limit: usize) -> ListOptions {
        ListOptions {
            prefix: String::new(),
            offset: 0,
            limit,
        }
    }

    /// Restricts the listing to keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> ListOptions {
        self.prefix = prefix.into();
        self
    }

    /// Skips `offset` matching objects.
    pub fn offset(mut self, offset: usize) -> ListOptions {
        self.offset = offset;
        self
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPage {
    /// Matching objects `offset..offset + limit`, sorted by key (byte order).
    pub entries: Vec<ObjectInfo>,
    /// How many objects match in total.
    pub count: usize,
    /// The requested offset.
    pub offset: usize,
    /// The requested limit.
    pub limit: usize,
    /// The offset of the next page, if there are more matches.
    pub next_offset: Option<usize>,
}

/// Limits and usage of a store, as the server reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStatus {
    /// Object expiry in ms; 0 = none.
    pub ttl_ms: u64,
    /// Size limit in bytes, if finite.
    pub max_total_bytes: Option<u64>,
    /// Bytes in use, including per-message overhead.
    pub used_bytes: u64,
    /// Number of objects.
    pub objects: u64,
}

impl Store {
    /// Writes `key` unless a live object exists there
    /// ([`StoreError::AlreadyExists`]). The check is atomic: of concurrent
    /// `create`s of one key, exactly one succeeds.
    ///
    /// On any failure nothing of the write is kept.
    pub async fn create<'a>(
        &self,
        key: &str,
        body: impl Into<Body<'a>>,
        options: PutOptions,
    ) -> Result<ObjectInfo, StoreError> {
        self.write(
            key,
            body.into(),
            options,
            Mode::Create,
            crate::wire::ids::new_nuid(),
            None,
        )
        .await
    }

    /// Writes `key`, replacing any existing object once the new content is
    /// completely stored.
    ///
    /// If the store has a size limit, a write that does not fit fails with
    /// [`StoreError::StoreFull`] (before uploading anything when the size is
    /// known). On any failure nothing of the write is kept and the previous
    /// object, if any, is intact.
    pub async fn put<'a>(
        &self,
        key: &str,
        body: impl Into<Body<'a>>,
        options: PutOptions,
    ) -> Result<ObjectInfo, StoreError> {
        self.write(
            key,
            body.into(),
            options,
            Mode::Overwrite,
            crate::wire::ids::new_nuid(),
            None,
        )
        .await
    }

    /// Like [`Store::put`], with the content staged under chunk id `nuid`
    /// (recorded by the caller beforehand, so that a crashed writer's
    /// chunks can be purged with [`Store::purge_staged`]); the record is
    /// written only if the content's digest equals the one in `expect`
    /// when the body ends ([`StoreError::DigestMismatch`] otherwise).
    pub(crate) async fn put_staged(
        &self,
        key: &str,
        body: Body<'_>,
        options: PutOptions,
        nuid: String,
        expect: write::ExpectDigest,
    ) -> Result<ObjectInfo, StoreError> {
        self.write(key, body, options, Mode::Overwrite, nuid, Some(expect))
            .await
    }

    /// Purges the chunks staged under `nuid` unless a live record of `key`
    /// refers to them (the write committed before its writer stopped).
    pub(crate) async fn purge_staged(&self, key: &str, nuid: &str) -> Result<(), StoreError> {
        if let Some(meta) = self.live_meta(key).await?
            && meta.nuid == nuid
        {
            return Ok(());
        }
        self.stream
            .purge()
            .filter(format::chunk_subject(&self.bucket, nuid))
            .await
            .map_err(nats("purging staged chunks"))?;
        Ok(())
    }

    /// A fresh chunk id for [`Store::put_staged`].
    pub(crate) fn new_staging_id() -> String {
        crate::wire::ids::new_nuid()
    }

    /// The object stored under `key`, or `None` if there is none. The
    /// content is fetched when read from the returned [`Object`].
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        format::validate_key(key)?;
        Ok(self
            .live_meta(key)
            .await?
            .map(|meta| Object::new(self.clone(), meta)))
    }

    /// Like [`Store::get`] without hashing the content while reading: for
    /// consumers that verify the digest end to end themselves.
    pub(crate) async fn get_unhashed(&self, key: &str) -> Result<Option<Object>, StoreError> {
        format::validate_key(key)?;
        Ok(self
            .live_meta(key)
            .await?
            .map(|meta| Object::with_hashing(self.clone(), meta, false)))
    }

    /// The metadata of the object under `key`, or `None` if there is none.
    pub async fn info(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        format::validate_key(key)?;
        Ok(self.live_meta(key).await?.map(|meta| meta.info))
    }

    /// Deletes the object under `key` and its content. Returns whether there
    /// was one (`false` also when a concurrent write replaced it first; the
    /// new version stays).
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.remove(key).await
    }

    /// One page of the objects whose keys start with `options.prefix`,
    /// sorted by key. A limit of 0 or above [`MAX_LIST_LIMIT`] fails with
    /// [`StoreError::InvalidLimit`].
    ///
    /// The page is computed from all matching keys (to report `count`), so
    /// its cost grows with the number of matches, not with the limit.
    pub async fn list(&self, options: ListOptions) -> Result<ListPage, StoreError> {
        let ListOptions {
            prefix,
            offset,
            limit,
        } = options;
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(StoreError::InvalidLimit { limit });
        }
        let mut entries = Vec::new();
        let count = self
            .scan(&prefix, |index, meta| {
                if index >= offset && entries.len() < limit {
                    entries.push(meta.info.clone());
                }
            })
            .await?;
        let end = offset + entries.len();
        Ok(ListPage {
            entries,
            count,
            offset,
            limit,
            next_offset: (end < count).then_some(end),
        })
    }

    /// The store's effective limits (read from the server's stream
    /// configuration, which may differ from what the handle was bound
    /// with) and usage. Counting objects reads every object record, so the
    /// cost grows with the number of objects.
    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(nats("reading the store's status"))?;
        let objects = self.scan("", |_, _| {}).await?;
        Ok(StoreStatus {
            ttl_ms: u64::try_from(info.config.max_age.as_millis()).unwrap_or(u64::MAX),
            max_total_bytes: u64::try_from(info.config.max_bytes)
                .ok()
                .filter(|limit| *limit > 0),
            used_bytes: info.state.bytes,
            objects: objects as u64,
        })
    }

    /// Waits until an object exists under `key` and returns its metadata;
    /// fails with [`StoreError::Timeout`] after `timeout`.
    ///
    /// Returns at once if the object exists. Otherwise it listens for
    /// writes to the key's metadata subject (no polling), re-checking
    /// every second as a safety net.
    pub async fn wait_for(&self, key: &str, timeout: Duration) -> Result<ObjectInfo, StoreError> {
        format::validate_key(key)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let client = self.js.client();
        let mut writes = client
            .subscribe(format::meta_subject(&self.bucket, key))
            .await
            .map_err(nats(format!("watching `{key}`")))?;
        // The subscription is active before the first check.
        client
            .flush()
            .await
            .map_err(nats(format!("watching `{key}`")))?;
        loop {
            if let Some(meta) = self.live_meta(key).await? {
                return Ok(meta.info);
            }
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            match tokio::time::timeout_at(wake, writes.next()).await {
                Ok(Some(_)) => {
                    // A write was published; the stream may store it a moment
                    // after we see it, or refuse it.
                    for pause in read::WAIT_RECHECK {
                        if let Some(meta) = self.live_meta(key).await? {
                            return Ok(meta.info);
                        }
                        if tokio::time::Instant::now() + pause >= deadline {
                            break;
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
                Ok(None) => {
                    return Err(StoreError::nats(
                        format!("watching `{key}`"),
                        "the subscription ended",
                    ));
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError::Timeout {
                        key: key.to_owned(),
                        waited: timeout,
                    });
                }
                Err(_) => {}
            }
        }
    }
}

/// Checks an object key before any I/O.
pub(crate) fn validate_key(key: &str) -> Result<(), StoreError> {
    format::validate_key(key)
}

/// `SHA-256=<base64url>` of a digest, as the object store records it.
pub(crate) fn digest_string(sha256: &[u8]) -> String {
    format::digest_string(sha256)
}
