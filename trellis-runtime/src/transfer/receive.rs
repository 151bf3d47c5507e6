//! Receive grants: a provider hands a caller a bounded, single-use grant
//! for one object of its store; the caller downloads it with
//! [`Download`] without ever seeing the store's name or subjects.
//!
//! A grant is a random 128-bit id whose record (object, size, digest,
//! expiry, the caller it was issued to) lives in the provider's
//! contract's ledger. Redeeming it marks it used with a
//! compare-and-set, so of concurrent redemptions exactly one wins.
//!
//! The download is credit-based: the caller tells the provider how many
//! chunks it may send ahead (`window`) and acknowledges cumulatively as it
//! consumes, so the provider never runs ahead of the caller. The caller
//! verifies order, size and SHA-256 at the end.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tracing::debug;

use super::{ACK_HEADER, CHUNKS_HEADER, DIGEST_HEADER, END_HEADER, SEQ_HEADER, TransferError};
use crate::ledger::mutate_json;
use crate::principal::Principal;
use crate::protocol::StoreBinding;
use crate::rpc::{Caller, ServeError};
use crate::runtime::ServiceRuntime;
use crate::store::{ObjectInfo, StoreError, StoreHandle};
use crate::wire::headers::STATUS_HEADER;
use crate::wire::ids::now_ms;
use crate::wire::reply::reply;

/// Manifest-style subject (under the contract) where grants are redeemed.
pub const RECEIVE_SUBJECT: &str = "transfer.v1.receive";
/// On the first download message: where the caller sends its acks.
const CREDIT_HEADER: &str = "Trellis-Credit";
/// On a direct download's acks: the stream sequence after the last chunk
/// received (where the next batch starts).
const FROM_HEADER: &str = "Trellis-From";
/// How many chunks the caller lets the provider send ahead. Every
/// download on one connection shares its server-side pending buffer
/// (64 MiB by default, and a slow consumer is disconnected): 16 chunks of
/// 128 KiB keep sixteen concurrent downloads at half of it.
const DEFAULT_WINDOW: u64 = 16;
/// How long either side waits for the other before giving up.
const IDLE: Duration = Duration::from_secs(30);
/// How long a grant is valid unless the issuer says otherwise.
pub const DEFAULT_GRANT_TTL: Duration = Duration::from_secs(300);

/// A bounded, single-use permission to download one object, valid only
/// for the caller it was issued to. Put it into an RPC's (or operation's)
/// output and redeem it with the generated client's `download`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveGrant {
    /// Opaque grant id.
    pub id: String,
    /// Size of the object in bytes.
    pub size: u64,
    /// `SHA-256=<base64url>` of the object.
    pub digest: String,
    /// Expiry (unix ms).
    pub expires_at_ms: u64,
}

/// The stored record of a grant (`grant.<id>` in the ledger).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrantRecord {
    store: StoreBinding,
    key: String,
    principal: String,
    size: u64,
    digest: String,
    expires_at_ms: u64,
    used: bool,
}

/// Why a grant could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// No object under the key.
    #[error("no object under `{key}`")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Reading the object's metadata failed (including invalid keys).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording the grant failed.
    #[error("recording the grant failed: {0}")]
    State(String),
    /// The caller holds too many unexpired grants from this service.
    #[error("too many receive grants: {0}")]
    TooMany(String),
}

/// Issues receive grants for the caller of one request.
#[derive(Debug, Clone)]
pub struct Grants {
    runtime: ServiceRuntime,
    principal: Principal,
}

impl Grants {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, caller: &Caller) -> Grants {
        Grants {
            runtime,
            principal: caller.principal().clone(),
        }
    }

    pub(crate) fn for_principal(runtime: ServiceRuntime, principal: Principal) -> Grants {
        Grants { runtime, principal }
    }

    /// A grant for the object under `key` in `store`, valid for
    /// [`DEFAULT_GRANT_TTL`].
    pub async fn issue(&self, store: &StoreHandle, key: &str) -> Result<ReceiveGrant, GrantError> {
        self.issue_for(store, key, DEFAULT_GRANT_TTL).await
    }

    /// A grant for the object under `key` in `store`, valid for `ttl`.
    pub async fn issue_for(
        &self,
        store: &StoreHandle,
        key: &str,
        ttl: Duration,
    ) -> Result<ReceiveGrant, GrantError> {
        Ok(self.issue_with_info(store, key, ttl).await?.1)
    }

    /// A grant for the object under `key` in `store`, valid for `ttl`, and
    /// the object's metadata (read once for both).
    pub async fn issue_with_info(
        &self,
        store: &StoreHandle,
        key: &str,
        ttl: Duration,
    ) -> Result<(ObjectInfo, ReceiveGrant), GrantError> {
        let info = store
            .open()
            .await?
            .info(key)
            .await?
            .ok_or_else(|| GrantError::NotFound {
                key: key.to_owned(),
            })?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let now = now_ms();
        let id = crate::wire::ids::random_id();
        self.runtime
            .grant_quota()
            .take(&self.principal.id, &id, now, now.saturating_add(ttl_ms))
            .map_err(GrantError::TooMany)?;
        let record = GrantRecord {
            store: store.binding().clone(),
            key: key.to_owned(),
            principal: self.principal.id.clone(),
            size: info.size,
            digest: info.digest.clone(),
            expires_at_ms: now.saturating_add(ttl_ms),
            used: false,
        };
        let state = self
            .runtime
            .ledger()
            .await
            .map_err(|e| GrantError::State(e.to_string()))?;
        let value = serde_json::to_vec(&record).map_err(|e| GrantError::State(e.to_string()))?;
        state
            .create(format!("grant.{id}"), value.into())
            .await
            .map_err(|e| GrantError::State(e.to_string()))?;
        let grant = ReceiveGrant {
            id,
            size: record.size,
            digest: record.digest,
            expires_at_ms: record.expires_at_ms,
        };
        Ok((info, grant))
    }
}

/// Redeems `id` for `principal`: the object to send, or the refusal.
async fn redeem(
    state: &kv::Store,
    id: &str,
    principal: &Principal,
) -> Result<GrantRecord, TransferError> {
    if !crate::wire::ids::is_id(id) {
        return Err(TransferError::GrantInvalid);
    }
    // One compare-and-set pass: the checks run on the record as read, and
    // only a grant that passes them is marked used (of concurrent
    // redemptions exactly one wins; the others see it used).
    let mut refusal = None;
    let redeemed = mutate_json::<GrantRecord>(state, &format!("grant.{id}"), |r| {
        refusal = if r.principal != principal.id {
            Some(TransferError::GrantForbidden)
        } else if r.expires_at_ms < now_ms() {
            Some(TransferError::GrantExpired)
        } else if r.used {
            Some(TransferError::GrantUsed)
        } else {
            None
        };
        if refusal.is_some() {
            return false;
        }
        r.used = true;
        true
    })
    .await
    .map_err(TransferError::Nats)?;
    match (redeemed, refusal) {
        (None, _) => Err(TransferError::GrantInvalid),
        (Some(_), Some(refusal)) => Err(refusal),
        (Some((_, record)), None) => Ok(record),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RedeemRequest {
    grant: String,
    window: u64,
    /// The receiver takes the chunks as the store's direct-get answers,
    /// sent straight to its inbox (absent: relayed by the provider).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    direct: bool,
}

/// Serves grant redemptions until `stop` fires; each download holds one
/// of `permits` (the service's request bound); the bytes sent are counted
/// in `stats`.
pub(crate) async fn serve(
    runtime: &ServiceRuntime,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    stats: crate::observe::Stats,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let state = runtime.ledger().await?;
    let subject = runtime.served_subject(RECEIVE_SUBJECT);
    let mut sub = runtime
        .nats()
        .queue_subscribe(
            subject.clone(),
            format!("trellis.{}", runtime.contract_id()),
        )
        .await
        .map_err(|source| ServeError::Subscribe { subject, source })?;
    let runtime = runtime.clone();
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                m = sub.next() => m,
                _ = &mut stop => {
                    let _ = sub.unsubscribe().await;
                    break;
                }
            };
            let Some(message) = message else { break };
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (runtime, state, stats) = (runtime.clone(), state.clone(), stats.clone());
            tokio::spawn(async move {
                send_download(&runtime, &state, message, &stats).await;
                drop(permit);
            });
        }
    }))
}

async fn send_download(
    runtime: &ServiceRuntime,
    state: &kv::Store,
    message: async_nats::Message,
    stats: &crate::observe::Stats,
) {
    let client = runtime.nats();
    let Some(to) = message.reply.clone() else {
        return;
    };
    let Some(principal) =
        crate::rpc::admit(runtime, &message, "receive-grant redemption", None).await
    else {
        return;
    };
    let refuse = |error: TransferError| {
        let to = to.clone();
        async move {
            let body = Bytes::from(error.to_string());
            reply(client, Some(to), error.status(), HeaderMap::new(), body).await;
        }
    };
    let request: RedeemRequest = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(_) => return refuse(TransferError::GrantInvalid).await,
    };
    let record = match redeem(state, &request.grant, &principal).await {
        Ok(r) => r,
        Err(e) => return refuse(e).await,
    };
    runtime.grant_quota().release(&principal.id, &request.grant);
    let js = async_nats::jetstream::new(client.clone());
    let handle = StoreHandle::new(js, record.store.clone());
    let object = match handle.open().await {
        // The receiver verifies size and digest end to end.
        Ok(store) => store.get_unhashed(&record.key).await,
        Err(e) => Err(e),
    };
    let mut object = match object {
        Ok(Some(o)) if o.info().digest == record.digest => o,
        Ok(_) => {
            let e = TransferError::Interrupted(format!(
                "`{}` changed or was deleted after the grant was issued",
                record.key
            ));
            return refuse(e).await;
        }
        Err(e) => return refuse(TransferError::Interrupted(e.to_string())).await,
    };
    let credit = client.new_inbox();
    let mut credits = match client.subscribe(credit.clone()).await {
        Ok(s) => s,
        Err(e) => return refuse(TransferError::Nats(e.to_string())).await,
    };
    let window = request.window.clamp(1, 1024);
    if request.direct {
        drop(object);
        let result =
            send_direct(&handle, &record, &to, &credit, &mut credits, window, client).await;
        let _ = credits.unsubscribe().await;
        match result {
            Ok(()) => stats.transfer(crate::observe::Direction::Sent, record.size),
            Err(error) => {
                debug!(%error, "direct download failed");
                refuse(error).await;
            }
        }
        return;
    }
    let mut headers = HeaderMap::new();
    headers.insert(CREDIT_HEADER, credit.as_str());
    headers.insert(END_HEADER, record.size.to_string());
    headers.insert(DIGEST_HEADER, record.digest.as_str());
    reply(client, Some(to.clone()), "ok", headers, Bytes::new()).await;
    let (mut seq, mut acked) = (0u64, 0u64);
    let result: Result<(), TransferError> = async {
        while let Some(chunk) = object.next().await {
            let chunk = chunk.map_err(|e| TransferError::Interrupted(e.to_string()))?;
            while seq >= acked + window {
                let message = tokio::time::timeout(IDLE, credits.next())
                    .await
                    .map_err(|_| TransferError::Idle(IDLE))?
                    .ok_or_else(|| TransferError::Interrupted("credits closed".into()))?;
                if crate::wire::headers::header(&message, STATUS_HEADER).is_some() {
                    return Err(TransferError::Interrupted("the receiver stopped".into()));
                }
                acked = acked
                    .max(crate::wire::headers::header_u64(&message, ACK_HEADER).unwrap_or(acked));
            }
            let mut headers = HeaderMap::new();
            headers.insert(SEQ_HEADER, seq.to_string());
            let bytes = chunk.len() as u64;
            client
                .publish_with_headers(to.clone(), headers, chunk)
                .await
                .map_err(|e| TransferError::Nats(e.to_string()))?;
            stats.transfer(crate::observe::Direction::Sent, bytes);
            seq += 1;
        }
        let mut headers = HeaderMap::new();
        headers.insert(SEQ_HEADER, seq.to_string());
        headers.insert(END_HEADER, record.size.to_string());
        headers.insert(DIGEST_HEADER, record.digest.as_str());
        client
            .publish_with_headers(to.clone(), headers, Bytes::new())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))
    }
    .await;
    let _ = credits.unsubscribe().await;
    if let Err(error) = result {
        debug!(%error, "download failed");
        refuse(error).await;
    }
}

/// Paces a direct download: asks the store for `window` chunks at a time,
/// answered straight to the receiver's inbox `to` (the bytes never pass
/// through the provider), and asks for the next batch once the receiver
/// acknowledged the last one (`Trellis-Ack`: chunks received so far,
/// `Trellis-From`: the stream sequence to continue from).
async fn send_direct(
    handle: &StoreHandle,
    record: &GrantRecord,
    to: &async_nats::Subject,
    credit: &str,
    credits: &mut async_nats::Subscriber,
    window: u64,
    client: &async_nats::Client,
) -> Result<(), TransferError> {
    let interrupted = |e: StoreError| TransferError::Interrupted(e.to_string());
    let store = handle.open().await.map_err(interrupted)?;
    let source = match store.chunk_source(&record.key).await.map_err(interrupted)? {
        Some(source) if source.info.digest == record.digest => source,
        _ => {
            return Err(TransferError::Interrupted(format!(
                "`{}` changed or was deleted after the grant was issued",
                record.key
            )));
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(CREDIT_HEADER, credit);
    headers.insert(END_HEADER, record.size.to_string());
    headers.insert(DIGEST_HEADER, record.digest.as_str());
    headers.insert(CHUNKS_HEADER, source.chunks.to_string());
    reply(client, Some(to.clone()), "ok", headers, Bytes::new()).await;
    let (mut received, mut from) = (0u64, 1u64);
    while received < source.chunks {
        let batch = window.min(source.chunks - received);
        store
            .direct_batch_to(to.as_str(), &source.subject, from, batch)
            .await
            .map_err(interrupted)?;
        loop {
            let message = tokio::time::timeout(IDLE, credits.next())
                .await
                .map_err(|_| TransferError::Idle(IDLE))?
                .ok_or_else(|| TransferError::Interrupted("credits closed".into()))?;
            if crate::wire::headers::header(&message, STATUS_HEADER).is_some() {
                return Err(TransferError::Interrupted("the receiver stopped".into()));
            }
            let ack = crate::wire::headers::header_u64(&message, ACK_HEADER).unwrap_or(0);
            let next = crate::wire::headers::header_u64(&message, FROM_HEADER).unwrap_or(0);
            if ack > received && next > from {
                received = ack.min(source.chunks);
                from = next;
                break;
            }
        }
    }
    Ok(())
}

/// A download of one grant. Consume it as a stream of chunks, as bytes, or
/// into a file; every subscription is released when it ends or is dropped.
#[must_use = "a download does nothing until consumed"]
pub struct Download {
    runtime: ServiceRuntime,
    grant: ReceiveGrant,
    window: u64,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.grant.size)
            .finish_non_exhaustive()
    }
}

/// The chunks of a download; the last item is an error if verification
/// failed.
pub type DownloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransferError>> + Send>>;

struct Receiving {
    client: async_nats::Client,
    sub: async_nats::Subscriber,
    credit: Option<String>,
    expected: Option<(u64, String)>,
    next: u64,
    acked: u64,
    window: u64,
    bytes: u64,
    hasher: Sha256,
    done: bool,
    /// A direct download: the number of chunks the store sends.
    chunks: Option<u64>,
    /// Direct: the stream sequence of the last chunk received.
    last_seq: u64,
    /// Direct: every chunk arrived and verified.
    complete: bool,
}

impl Receiving {
    /// Acknowledges a direct download's chunks so far (the provider then
    /// asks the store for the next batch).
    async fn ack_direct(&mut self) -> Result<(), TransferError> {
        let Some(credit) = self.credit.clone() else {
            return Ok(());
        };
        self.acked = self.next;
        let mut headers = HeaderMap::new();
        headers.insert(ACK_HEADER, self.next.to_string());
        headers.insert(FROM_HEADER, (self.last_seq + 1).to_string());
        self.client
            .publish_with_headers(credit, headers, Bytes::new())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))
    }

    /// Checks size and digest once every byte arrived.
    fn verify(&mut self) -> Result<(), TransferError> {
        let Some((size, digest)) = &self.expected else {
            return Err(TransferError::Interrupted("no grant accepted".into()));
        };
        if self.bytes != *size {
            return Err(TransferError::SizeMismatch(format!(
                "{size} bytes granted, {} received",
                self.bytes
            )));
        }
        let ours = super::digest_of(std::mem::take(&mut self.hasher));
        if &ours != digest {
            return Err(TransferError::DigestMismatch(format!(
                "granted {digest}, received {ours}"
            )));
        }
        Ok(())
    }

    /// One answer of the store in a direct download.
    async fn direct_chunk(
        &mut self,
        chunks: u64,
        message: async_nats::Message,
    ) -> Result<Option<Bytes>, TransferError> {
        match message.status.map(|s| s.as_u16()) {
            // End of a batch: ask for the next one.
            Some(204) => {
                if self.next > self.acked {
                    self.ack_direct().await?;
                }
                return Ok(None);
            }
            Some(code) => {
                return Err(TransferError::Interrupted(format!(
                    "the content is no longer readable (status {code})"
                )));
            }
            None => {}
        }
        let seq = crate::wire::headers::header_u64(&message, "Nats-Sequence")
            .filter(|seq| *seq > self.last_seq)
            .ok_or_else(|| TransferError::Interrupted("a chunk out of order".into()))?;
        self.last_seq = seq;
        self.next += 1;
        self.bytes += message.payload.len() as u64;
        if self
            .expected
            .as_ref()
            .is_some_and(|(size, _)| self.bytes > *size)
            || self.next > chunks
        {
            return Err(TransferError::SizeMismatch(
                "more than the granted bytes arrived".into(),
            ));
        }
        self.hasher.update(&message.payload);
        if self.next == chunks {
            self.verify()?;
            self.complete = true;
            // The provider waits for this to finish.
            self.ack_direct().await?;
        }
        Ok(Some(message.payload))
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransferError> {
        loop {
            if self.complete {
                return Ok(None);
            }
            let message = tokio::time::timeout(IDLE, self.sub.next())
                .await
                .map_err(|_| TransferError::Idle(IDLE))?
                .ok_or_else(|| TransferError::Interrupted("the subscription closed".into()))?;
            if let Some(status) = crate::wire::headers::header(&message, STATUS_HEADER) {
                let text = String::from_utf8_lossy(&message.payload).into_owned();
                return Err(TransferError::from_status(status, text));
            }
            if let Some(credit) = crate::wire::headers::header(&message, CREDIT_HEADER) {
                self.credit = Some(credit.to_owned());
                let size = crate::wire::headers::header_u64(&message, END_HEADER).unwrap_or(0);
                let digest = crate::wire::headers::header(&message, DIGEST_HEADER)
                    .unwrap_or("")
                    .to_owned();
                self.expected = Some((size, digest));
                self.chunks = crate::wire::headers::header_u64(&message, CHUNKS_HEADER);
                if self.chunks == Some(0) {
                    self.verify()?;
                    self.complete = true;
                }
                continue;
            }
            if let Some(chunks) = self.chunks {
                match self.direct_chunk(chunks, message).await? {
                    Some(chunk) => return Ok(Some(chunk)),
                    None => continue,
                }
            }
            let (Some(credit), Some((size, _))) = (&self.credit, &self.expected) else {
                return Err(TransferError::Interrupted(
                    "data before the grant was accepted".into(),
                ));
            };
            let seq = crate::wire::headers::header_u64(&message, SEQ_HEADER)
                .ok_or_else(|| TransferError::Interrupted("a chunk without a sequence".into()))?;
            if seq != self.next {
                return Err(TransferError::Interrupted(format!(
                    "chunk {} is missing (got {seq})",
                    self.next
                )));
            }
            if crate::wire::headers::header(&message, END_HEADER).is_some() {
                self.verify()?;
                return Ok(None);
            }
            self.next += 1;
            self.bytes += message.payload.len() as u64;
            if self.bytes > *size {
                return Err(TransferError::SizeMismatch(format!(
                    "more than the {size} granted bytes arrived"
                )));
            }
            self.hasher.update(&message.payload);
            if self.next - self.acked >= (self.window / 2).max(1) {
                self.acked = self.next;
                let mut headers = HeaderMap::new();
                headers.insert(ACK_HEADER, self.acked.to_string());
                self.client
                    .publish_with_headers(credit.clone(), headers, Bytes::new())
                    .await
                    .map_err(|e| TransferError::Nats(e.to_string()))?;
            }
            return Ok(Some(message.payload));
        }
    }
}

impl Download {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, grant: &ReceiveGrant) -> Download {
        Download {
            runtime,
            grant: grant.clone(),
            window: DEFAULT_WINDOW,
        }
    }

    /// Chunks the provider may send ahead of consumption (default 32).
    pub fn window(mut self, chunks: u64) -> Download {
        self.window = chunks.clamp(1, 1024);
        self
    }

    /// The size the grant announces.
    pub fn size(&self) -> u64 {
        self.grant.size
    }

    /// The content as a stream of chunks, verified at the end.
    pub async fn stream(self) -> Result<DownloadStream, TransferError> {
        let client = self.runtime.nats().clone();
        let inbox = client.new_inbox();
        let sub = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))?;
        let request = RedeemRequest {
            grant: self.grant.id.clone(),
            window: self.window,
            direct: true,
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| TransferError::Nats(e.to_string()))?;
        let subject = self.runtime.request_subject(RECEIVE_SUBJECT);
        let mut headers = HeaderMap::new();
        self.runtime.identify(&mut headers, true);
        let _span = crate::trace::TraceContext::send(
            crate::trace::Hop::Call,
            RECEIVE_SUBJECT,
            &mut headers,
        );
        client
            .publish_with_reply_and_headers(subject, inbox, headers, payload.into())
            .await
            .map_err(|e| TransferError::Nats(e.to_string()))?;
        let state = Receiving {
            client,
            sub,
            credit: None,
            expected: None,
            next: 0,
            acked: 0,
            window: self.window,
            bytes: 0,
            hasher: Sha256::new(),
            done: false,
            chunks: None,
            last_seq: 0,
            complete: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut state| async move {
                if state.done {
                    return None;
                }
                match state.next_chunk().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), state)),
                    Ok(None) => {
                        state.done = true;
                        let _ = state.sub.unsubscribe().await;
                        None
                    }
                    Err(e) => {
                        state.done = true;
                        let _ = state.sub.unsubscribe().await;
                        Some((Err(e), state))
                    }
                }
            },
        )))
    }

    /// The whole content in memory, verified.
    pub async fn bytes(self) -> Result<Bytes, TransferError> {
        let capacity = usize::try_from(self.grant.size).unwrap_or(0).min(1 << 30);
        let mut stream = self.stream().await?;
        let mut all = bytes::BytesMut::with_capacity(capacity);
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all.freeze())
    }

    /// Writes the content to `path`. The bytes go to `<path>.part` first,
    /// which is renamed into place only after size and digest verify (and
    /// removed otherwise). Returns the size.
    pub async fn to_file(self, path: impl AsRef<Path>) -> Result<u64, TransferError> {
        let path = path.as_ref();
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = std::path::PathBuf::from(part);
        let result: Result<u64, TransferError> = async {
            let mut file = tokio::fs::File::create(&part)
                .await
                .map_err(TransferError::Write)?;
            let mut stream = self.stream().await?;
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(TransferError::Write)?;
                written += chunk.len() as u64;
            }
            file.sync_all().await.map_err(TransferError::Write)?;
            tokio::fs::rename(&part, path)
                .await
                .map_err(TransferError::Write)?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }
}
