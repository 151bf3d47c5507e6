//! Writing: chunks are published with a bounded window of outstanding acks,
//! then one metadata record commits the object, guarded by an
//! expected-last-subject-sequence header so concurrent writers cannot lose
//! track of each other's chunks. A failed write purges the chunks it
//! published, so it leaves nothing behind; the previous version of the key
//! is only replaced (and its chunks purged) once the new record is stored.

use std::collections::{BTreeMap, VecDeque};
use std::future::IntoFuture;
use std::time::SystemTime;

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_ROLLUP};
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::body::{Body, Chunker};
use super::error::nats;
use super::format::{self, CONTENT_TYPE, Meta, MetaOptions, MetaRecord};
use super::{ObjectInfo, PutOptions, Store, StoreError};

/// Chunk size, as async-nats uses by default.
pub(super) const CHUNK_SIZE: usize = 128 * 1024;
/// Chunk publishes awaiting their ack at any time (4 MiB at 128 KiB).
pub(super) const PUBLISH_WINDOW: usize = 32;
/// Commit retries when concurrent writers keep changing the key.
const COMMIT_ATTEMPTS: usize = 16;
/// Room left for the metadata message's headers within `max_payload`.
const META_HEADER_ROOM: usize = 256;
/// Headers of a metadata message (rollup + expected sequence), for size
/// estimates.
const META_HEADERS_LEN: usize = 80;

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Create,
    Overwrite,
}

/// The digest a staged write must have, filled in by the writer before its
/// body ends; checked after the last chunk, before the record is written.
pub(crate) type ExpectDigest = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// A failed write; `Full` gets its numbers once the chunks are purged.
enum WriteError {
    Full,
    Store(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(err: StoreError) -> Self {
        WriteError::Store(err)
    }
}

/// Whether the server refused a message because the stream hit `max_bytes`
/// (`DiscardPolicy::New`): err_code 10077, "maximum bytes exceeded".
fn is_store_full(err: &PublishError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|err| {
            err.error_code() == ErrorCode::STREAM_STORE_FAILED
                && err.to_string().contains("maximum bytes")
        })
}

fn publish_failed(operation: impl FnOnce() -> String) -> impl FnOnce(PublishError) -> WriteError {
    move |err| {
        if is_store_full(&err) {
            WriteError::Full
        } else {
            WriteError::Store(StoreError::nats(operation(), err))
        }
    }
}

/// The store's capacity as last seen, and what this write added since.
#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: u64,
    base: u64,
    added: u64,
}

/// A chunk publish awaiting its ack.
type PendingAck = <PublishAckFuture as IntoFuture>::IntoFuture;

/// The chunks of one upload. Unless disarmed, they are purged: explicitly
/// by [`Upload::discard`], or by a spawned task when the write future is
/// dropped midway.
struct Upload {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    subject: Subject,
    /// Oldest first. An ack being awaited stays queued until it resolves,
    /// so a cancelled write still knows every publish it must let settle.
    inflight: VecDeque<PendingAck>,
    published: u64,
    armed: bool,
}

impl Upload {
    fn new(store: &Store, nuid: &str) -> Upload {
        Upload {
            js: store.js.clone(),
            stream: store.stream.clone(),
            subject: Subject::from(format::chunk_subject(&store.bucket, nuid)),
            inflight: VecDeque::with_capacity(PUBLISH_WINDOW),
            published: 0,
            armed: true,
        }
    }

    async fn publish(&mut self, key: &str, chunk: Bytes) -> Result<(), WriteError> {
        if self.inflight.len() >= PUBLISH_WINDOW {
            self.await_oldest(key).await?;
        }
        self.published += 1;
        let ack = self
            .js
            .publish(self.subject.clone(), chunk)
            .await
            .map_err(publish_failed(|| format!("publishing a chunk of `{key}`")))?;
        self.inflight.push_back(ack.into_future());
        Ok(())
    }

    async fn await_oldest(&mut self, key: &str) -> Result<(), WriteError> {
        if let Some(ack) = self.inflight.front_mut() {
            let result = ack.await;
            self.inflight.pop_front();
            result.map_err(publish_failed(|| format!("storing a chunk of `{key}`")))?;
        }
        Ok(())
    }

    /// Waits for every outstanding ack.
    async fn flush(&mut self, key: &str) -> Result<(), WriteError> {
        while !self.inflight.is_empty() {
            self.await_oldest(key).await?;
        }
        Ok(())
    }

    /// Purges this upload's chunks, after the outstanding publishes settled
    /// so that none lands after the purge. Runs in its own task: it
    /// completes even if the caller is cancelled.
    async fn discard(&mut self) {
        self.armed = false;
        if self.published > 0 {
            let inflight = std::mem::take(&mut self.inflight);
            let cleanup = purge_chunks(self.stream.clone(), self.subject.to_string(), inflight);
            if let Err(err) = tokio::spawn(cleanup).await {
                tracing::warn!(%err, "purging the chunks of a failed object upload panicked");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.armed || self.published == 0 {
            return;
        }
        let inflight = std::mem::take(&mut self.inflight);
        let (stream, subject) = (self.stream.clone(), self.subject.to_string());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(purge_chunks(stream, subject, inflight));
            }
            Err(_) => tracing::warn!(
                %subject,
                "an interrupted object upload could not clean up its chunks (no runtime)"
            ),
        }
    }
}

async fn purge_chunks(
    stream: jetstream::stream::Stream,
    subject: String,
    inflight: VecDeque<PendingAck>,
) {
    for ack in inflight {
        // Only settling matters: refused or failed publishes stored nothing.
        let _ = ack.await;
    }
    if let Err(err) = stream.purge().filter(subject.as_str()).await {
        tracing::warn!(%subject, %err, "could not purge the chunks of a failed object upload");
    }
}

/// The JSON record of an object version.
fn encode_record(
    bucket: &str,
    nuid: &str,
    info: &ObjectInfo,
    chunks: u64,
    deleted: bool,
) -> Result<Vec<u8>, StoreError> {
    let headers = info
        .content_type
        .as_deref()
        .map(|content_type| BTreeMap::from([(CONTENT_TYPE, vec![content_type])]));
    let record = MetaRecord {
        name: &info.key,
        headers,
        metadata: &info.metadata,
        options: MetaOptions {
            max_chunk_size: CHUNK_SIZE,
        },
        bucket,
        nuid,
        size: info.size,
        chunks,
        mtime: format::rfc3339(info.modified),
        digest: (!info.digest.is_empty()).then_some(info.digest.as_str()),
        deleted,
    };
    serde_json::to_vec(&record).map_err(nats("encoding an object record"))
}

impl Store {
    /// The stream's size limit (if any) and the bytes in use.
    pub(crate) async fn usage(&self) -> Result<(Option<u64>, u64), StoreError> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(nats("reading the store's usage"))?;
        let limit = u64::try_from(info.config.max_bytes)
            .ok()
            .filter(|limit| *limit > 0);
        Ok((limit, info.state.bytes))
    }

    pub(super) async fn write(
        &self,
        key: &str,
        body: Body<'_>,
        options: PutOptions,
        mode: Mode,
        nuid: String,
        expect: Option<ExpectDigest>,
    ) -> Result<ObjectInfo, StoreError> {
        format::validate_key(key)?;
        let meta_subject = format::meta_subject(&self.bucket, key);
        let PutOptions {
            content_type,
            metadata,
        } = options;

        // The record must fit into one message; check with worst-case numbers.
        let draft = ObjectInfo {
            key: key.to_owned(),
            size: u64::MAX,
            digest: format::digest_string(&[0; 32]),
            content_type,
            metadata,
            modified: SystemTime::now(),
        };
        let draft_len = encode_record(&self.bucket, &nuid, &draft, u64::MAX, false)?.len();
        let max_payload = self.js.client().server_info().max_payload;
        if max_payload > 0 && draft_len + META_HEADER_ROOM > max_payload {
            return Err(StoreError::MetadataTooLarge {
                key: key.to_owned(),
                size: draft_len,
                max: max_payload.saturating_sub(META_HEADER_ROOM),
            });
        }

        if mode == Mode::Create && self.read_meta(key).await?.is_some_and(|m| m.is_live()) {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
            });
        }

        let mut budget = match self.binding.max_total_bytes {
            Some(_) => match self.usage().await? {
                (Some(limit), used) => Some(Budget {
                    limit,
                    base: used,
                    added: 0,
                }),
                (None, _) => None,
            },
            None => None,
        };
        let before = budget;
        let (declared, mut chunker) = body.into_parts();
        let chunk_overhead =
            format::stored_overhead(format::chunk_subject(&self.bucket, &nuid).len(), 0);
        if let (Some(budget), Some(size)) = (budget, declared) {
            let chunks = size.div_ceil(CHUNK_SIZE as u64);
            let record =
                draft_len as u64 + format::stored_overhead(meta_subject.len(), META_HEADERS_LEN);
            let needed = size
                .saturating_add(chunks.saturating_mul(chunk_overhead))
                .saturating_add(record);
            if budget.base.saturating_add(needed) > budget.limit {
                return Err(StoreError::StoreFull {
                    key: key.to_owned(),
                    limit: budget.limit,
                    used: budget.base,
                    needed: Some(size),
                });
            }
        }

        let mut upload = Upload::new(self, &nuid);
        let uploaded = self
            .upload_chunks(
                &mut upload,
                key,
                declared,
                &mut chunker,
                &mut budget,
                chunk_overhead,
            )
            .await;
        let (size, chunks, digest) = match uploaded {
            Ok(uploaded) => uploaded,
            Err(err) => {
                upload.discard().await;
                return Err(self.write_failed(err, key, before, declared).await);
            }
        };
        if let Some(expect) = expect {
            let expected = expect
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            if expected != digest {
                upload.discard().await;
                return Err(StoreError::DigestMismatch {
                    key: key.to_owned(),
                    expected,
                    actual: digest,
                });
            }
        }
        let info = ObjectInfo {
            size,
            digest,
            modified: SystemTime::now(),
            ..draft
        };

        // Committing runs in its own task: once the record may be stored,
        // cancelling the caller must neither purge the chunks it refers to
        // nor skip purging the replaced version's.
        let store = self.clone();
        let owned_key = key.to_owned();
        let committed = tokio::spawn(async move {
            store
                .commit_upload(upload, &owned_key, &nuid, info, chunks, mode)
                .await
        })
        .await
        .map_err(nats(format!("storing the record of `{key}`")))?;
        match committed {
            Ok(info) => Ok(info),
            Err(err) => Err(self.write_failed(err, key, before, declared).await),
        }
    }

    /// Turns a failed write into its [`StoreError`], once its chunks are gone.
    async fn write_failed(
        &self,
        err: WriteError,
        key: &str,
        before: Option<Budget>,
        declared: Option<u64>,
    ) -> StoreError {
        match err {
            WriteError::Store(err) => err,
            WriteError::Full => {
                let (limit, used) = match before {
                    Some(before) => (before.limit, before.base),
                    None => match self.usage().await {
                        Ok((limit, used)) => (limit.unwrap_or(0), used),
                        Err(err) => return err,
                    },
                };
                StoreError::StoreFull {
                    key: key.to_owned(),
                    limit,
                    used,
                    needed: declared,
                }
            }
        }
    }

    /// Stores the record of a fully uploaded version, then purges the
    /// version it replaced; on failure purges the upload.
    async fn commit_upload(
        &self,
        mut upload: Upload,
        key: &str,
        nuid: &str,
        info: ObjectInfo,
        chunks: u64,
        mode: Mode,
    ) -> Result<ObjectInfo, WriteError> {
        let replaced = match self.commit(key, nuid, &info, chunks, mode).await {
            Ok(replaced) => replaced,
            Err(err) => {
                upload.discard().await;
                return Err(err);
            }
        };
        upload.armed = false;
        self.purge_replaced(key, nuid, replaced).await;
        Ok(info)
    }

    /// Publishes the body's chunks; returns size, chunk count and digest.
    async fn upload_chunks(
        &self,
        upload: &mut Upload,
        key: &str,
        declared: Option<u64>,
        chunker: &mut Chunker<'_>,
        budget: &mut Option<Budget>,
        chunk_overhead: u64,
    ) -> Result<(u64, u64, String), WriteError> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut chunks = 0u64;
        while let Some(chunk) =
            chunker
                .next_chunk(CHUNK_SIZE)
                .await
                .map_err(|source| StoreError::Body {
                    key: key.to_owned(),
                    source,
                })?
        {
            size += chunk.len() as u64;
            if let Some(declared) = declared
                && size > declared
            {
                return Err(StoreError::SizeMismatch {
                    key: key.to_owned(),
                    declared,
                    actual: size,
                    truncated: true,
                }
                .into());
            }
            if let Some(current) = budget {
                let cost = chunk.len() as u64 + chunk_overhead;
                if current.base + current.added + cost > current.limit {
                    // Our count says it will not fit: ask the server, which
                    // sees concurrent deletions and writes too, once all our
                    // chunks so far are stored.
                    upload.flush(key).await?;
                    match self.usage().await? {
                        (Some(limit), used) => {
                            if used + cost > limit {
                                return Err(WriteError::Full);
                            }
                            *current = Budget {
                                limit,
                                base: used,
                                added: 0,
                            };
                        }
                        (None, _) => *budget = None,
                    }
                }
                if let Some(current) = budget {
                    current.added += cost;
                }
            }
            hasher.update(&chunk);
            chunks += 1;
            upload.publish(key, chunk).await?;
        }
        upload.flush(key).await?;
        if let Some(declared) = declared
            && size != declared
        {
            return Err(StoreError::SizeMismatch {
                key: key.to_owned(),
                declared,
                actual: size,
                truncated: false,
            }
            .into());
        }
        Ok((size, chunks, format::digest_string(&hasher.finalize())))
    }

    /// Publishes the metadata record with `expected_seq` as the subject's
    /// expected last sequence; returns the record's sequence.
    async fn publish_record(
        &self,
        subject: &str,
        payload: Bytes,
        expected_seq: u64,
    ) -> Result<u64, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_ROLLUP, "sub");
        headers.insert(
            NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected_seq.to_string(),
        );
        let ack = self
            .js
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await?
            .await?;
        Ok(ack.sequence)
    }

    /// Purges the chunks of the version a commit of `nuid` under `key`
    /// replaced, if it was a live one with other chunks (a failure only
    /// leaves unreachable chunks behind, so it is logged).
    async fn purge_replaced(&self, key: &str, nuid: &str, replaced: Option<Meta>) {
        if let Some(old) = replaced
            && old.is_live()
            && old.nuid != nuid
        {
            let subject = format::chunk_subject(&self.bucket, &old.nuid);
            if let Err(err) = self.stream.purge().filter(subject.as_str()).await {
                tracing::warn!(%key, %err, "could not purge the chunks of a replaced object");
            }
        }
    }

    /// Stores the record of a fully uploaded version; returns the record it
    /// replaced.
    async fn commit(
        &self,
        key: &str,
        nuid: &str,
        info: &ObjectInfo,
        chunks: u64,
        mode: Mode,
    ) -> Result<Option<Meta>, WriteError> {
        let payload = Bytes::from(encode_record(&self.bucket, nuid, info, chunks, false)?);
        let meta_subject = format::meta_subject(&self.bucket, key);
        for _ in 0..COMMIT_ATTEMPTS {
            let current = self.read_meta(key).await?;
            if mode == Mode::Create && current.as_ref().is_some_and(Meta::is_live) {
                return Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                }
                .into());
            }
            let expected = current.as_ref().map_or(0, |meta| meta.seq);
            match self
                .publish_record(&meta_subject, payload.clone(), expected)
                .await
            {
                Ok(_) => return Ok(current),
                Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => continue,
                Err(err) if is_store_full(&err) => return Err(WriteError::Full),
                Err(err) => {
                    // The record may be stored even though its ack was lost.
                    if let Ok(Some(meta)) = self.read_meta(key).await
                        && meta.nuid == nuid
                    {
                        return Ok(current);
                    }
                    return Err(
                        StoreError::nats(format!("storing the record of `{key}`"), err).into(),
                    );
                }
            }
        }
        Err(StoreError::nats(
            format!("storing the record of `{key}`"),
            format!("the key changed concurrently {COMMIT_ATTEMPTS} times in a row"),
        )
        .into())
    }

    pub(super) async fn remove(&self, key: &str) -> Result<bool, StoreError> {
        format::validate_key(key)?;
        let Some(meta) = self.read_meta(key).await? else {
            return Ok(false);
        };
        // Purging (rather than writing a deletion marker) needs no space, so
        // it works in a full store; the sequence bound spares a version
        // written concurrently after `meta`.
        let meta_subject = format::meta_subject(&self.bucket, key);
        let purged = self
            .stream
            .purge()
            .filter(meta_subject)
            .sequence(meta.seq + 1)
            .await
            .map_err(nats(format!("deleting `{key}`")))?;
        if !meta.is_live() {
            return Ok(false);
        }
        let chunks = format::chunk_subject(&self.bucket, &meta.nuid);
        self.stream
            .purge()
            .filter(chunks)
            .await
            .map_err(nats(format!("purging the content of deleted `{key}`")))?;
        Ok(purged.purged > 0)
    }
}

impl Store {
    /// Commits content a caller published straight into the store under
    /// chunk id `nuid` (already verified by the provider: `chunks` chunks,
    /// `size` bytes, `digest`): writes the record under `key`, then purges
    /// the version it replaced. On failure the staged chunks are purged, so
    /// nothing unverified or partial is ever reachable under `key`.
    pub(crate) async fn commit_staged(
        &self,
        key: &str,
        nuid: &str,
        options: PutOptions,
        size: u64,
        chunks: u64,
        digest: String,
    ) -> Result<ObjectInfo, StoreError> {
        format::validate_key(key)?;
        let PutOptions {
            content_type,
            metadata,
        } = options;
        let info = ObjectInfo {
            key: key.to_owned(),
            size,
            digest,
            content_type,
            metadata,
            modified: SystemTime::now(),
        };
        let len = encode_record(&self.bucket, nuid, &info, chunks, false)?.len();
        let max_payload = self.js.client().server_info().max_payload;
        let staged = format::chunk_subject(&self.bucket, nuid);
        let purge_staged = || async {
            if let Err(err) = self.stream.purge().filter(staged.as_str()).await {
                tracing::warn!(%key, %err, "could not purge the chunks of a refused upload");
            }
        };
        if max_payload > 0 && len + META_HEADER_ROOM > max_payload {
            purge_staged().await;
            return Err(StoreError::MetadataTooLarge {
                key: key.to_owned(),
                size: len,
                max: max_payload.saturating_sub(META_HEADER_ROOM),
            });
        }
        // As in `write`: once the record may be stored, cancelling the
        // caller must neither purge the chunks it refers to nor skip
        // purging the replaced version's.
        let store = self.clone();
        let (owned_key, owned_nuid) = (key.to_owned(), nuid.to_owned());
        let committed = tokio::spawn(async move {
            let result = store
                .commit(&owned_key, &owned_nuid, &info, chunks, Mode::Overwrite)
                .await;
            (result, info)
        })
        .await
        .map_err(nats(format!("storing the record of `{key}`")))?;
        match committed {
            (Ok(replaced), info) => {
                self.purge_replaced(key, nuid, replaced).await;
                Ok(info)
            }
            (Err(err), _) => {
                purge_staged().await;
                Err(match err {
                    WriteError::Store(err) => err,
                    WriteError::Full => {
                        let (limit, used) = self.usage().await.unwrap_or((None, 0));
                        StoreError::StoreFull {
                            key: key.to_owned(),
                            limit: limit.unwrap_or(0),
                            used,
                            needed: Some(size),
                        }
                    }
                })
            }
        }
    }
}
