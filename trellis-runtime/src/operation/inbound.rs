//! The provider side of a send transfer: plan (limits, key), receive the
//! chunks into a staged object, verify, commit under the final key.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::plan::{Plan, ack, store_failure};
use super::record::{OperationFailure, record_transfer};
use super::spec::SendTransferSpec;
use crate::rpc::ServeOptions;
use crate::store::{Body, ObjectInfo, PutOptions, Store, StoreError, StoreHandle};
use crate::transfer::{
    BEGIN_HEADER, DIGEST_HEADER, END_HEADER, SEQ_HEADER, SIZE_HEADER, TransferError,
};
use crate::wire::reply::reply;

/// How often received-byte progress is written to the operation record.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A send transfer as the contract declares it.
pub(crate) struct SendSpec {
    key: String,
    content_type: Option<String>,
    metadata: Option<String>,
    max_bytes: Option<u64>,
    expires_in: Option<Duration>,
    store: StoreHandle,
}

fn string_at(input: &Value, pointer: &str) -> Result<String, String> {
    input
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the input has no string at `{pointer}`"))
}

impl SendSpec {
    pub(crate) fn new(transfer: &SendTransferSpec, store: StoreHandle) -> SendSpec {
        SendSpec {
            key: transfer.key.to_owned(),
            content_type: transfer.content_type.map(str::to_owned),
            metadata: transfer.metadata.map(str::to_owned),
            max_bytes: transfer.max_bytes,
            expires_in: transfer.expires_in_ms.map(Duration::from_millis),
            store,
        }
    }

    /// Checks a start request against the contract's limits and the
    /// store's room; `Err` is the refusal sent back (nothing is recorded).
    pub(crate) async fn plan(
        &self,
        payload: &Bytes,
        headers: Option<&HeaderMap>,
        options: &ServeOptions,
        caller: &str,
    ) -> Result<Plan, String> {
        let input: Value =
            serde_json::from_slice(payload).map_err(|e| format!("input does not decode: {e}"))?;
        let key = string_at(&input, &self.key)?;
        crate::store::validate_key(&key).map_err(|e| e.to_string())?;
        let mut put = PutOptions::new();
        if let Some(pointer) = &self.content_type {
            put.content_type = input
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(pointer) = &self.metadata
            && let Some(map) = input.pointer(pointer).and_then(Value::as_object)
        {
            let mut metadata = BTreeMap::new();
            for (name, value) in map {
                let Some(value) = value.as_str() else {
                    return Err(format!("metadata `{name}` is not a string"));
                };
                metadata.insert(name.clone(), value.to_owned());
            }
            put.metadata = metadata;
        }
        let declared = match headers.and_then(|h| h.get(SIZE_HEADER)) {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{SIZE_HEADER}` is not a byte count"))?,
            ),
        };
        if let (Some(size), Some(max)) = (declared, self.max_bytes)
            && size > max
        {
            return Err(format!(
                "too-large: {size} bytes declared, the contract allows at most {max}"
            ));
        }
        let store = self.store.open().await.map_err(|e| e.to_string())?;
        if let Some(size) = declared {
            let (limit, used) = store.usage().await.map_err(|e| e.to_string())?;
            if let Some(limit) = limit
                && used.saturating_add(size) > limit
            {
                return Err(format!(
                    "store-full: {size} bytes do not fit ({used} of {limit} bytes in use)"
                ));
            }
        }
        let idle = match self.expires_in {
            Some(expiry) => options.transfer_idle_timeout.min(expiry),
            None => options.transfer_idle_timeout,
        };
        let limit = match (declared, self.max_bytes) {
            (Some(d), Some(m)) => Some(d.min(m)),
            (d, m) => d.or(m),
        };
        Ok(Plan {
            key,
            declared,
            // Below the caller's token: a direct upload's chunk subject is
            // one only that caller may publish to.
            staging: format!("{caller}.{}", Store::new_staging_id()),
            chunk_size: options.transfer_chunk_size,
            window: options.transfer_window,
            limit,
            idle,
            options: put,
            store,
        })
    }

    /// Purges a staged upload whose writer stopped.
    ///
    /// Also covers a direct upload's chunks: they are staged under the same
    /// chunk id.
    /// The transfer's store, opened.
    pub(crate) async fn open_store(&self) -> Result<Store, StoreError> {
        self.store.open().await
    }

    pub(crate) async fn purge_staged(&self, key: &str, nuid: &str) {
        match self.store.open().await {
            Ok(store) => {
                if let Err(e) = store.purge_staged(key, nuid).await {
                    warn!(%key, error = %e, "could not purge an abandoned staged upload");
                }
            }
            Err(e) => warn!(%key, error = %e, "could not open the store to purge a staged upload"),
        }
    }

    /// Receives the chunks of operation `id` into the staged object and
    /// commits it under its key once size and digest verify.
    pub(crate) async fn receive(
        &self,
        client: &async_nats::Client,
        ledger: &async_nats::jetstream::kv::Store,
        id: &str,
        plan: Plan,
        mut sub: async_nats::Subscriber,
        cancel: CancellationToken,
    ) -> Result<ObjectInfo, OperationFailure> {
        // The first message decides the mode: a direct upload announces
        // itself (its chunks go straight into the store), anything else is
        // the relayed chunk protocol.
        let first = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            m = tokio::time::timeout(plan.idle, sub.next()) => m.ok().flatten(),
        };
        let Some(first) = first else {
            let _ = sub.unsubscribe().await;
            self.purge_staged(&plan.key, &plan.staging).await;
            super::direct::purge_late(&plan);
            return Err(if cancel.is_cancelled() {
                OperationFailure::Cancelled
            } else {
                OperationFailure::Failed(format!(
                    "transfer failed: {}",
                    TransferError::Idle(plan.idle)
                ))
            });
        };
        if first
            .headers
            .as_ref()
            .and_then(|h| h.get(BEGIN_HEADER))
            .is_some()
        {
            return super::direct::receive(client, ledger, id, plan, sub, first, cancel).await;
        }
        let mut first = Some(first);
        let client = client.clone();
        // `Some(bytes)` is content, `None` the verified end; a channel that
        // closes without `None` fails the write, so nothing unverified can
        // ever be committed. The channel is a quarter of the sender's window:
        // chunks are acknowledged once queued here, so this bounds what the
        // provider holds beyond the store writer's own publish window.
        let (tx, rx) = tokio::sync::mpsc::channel::<Option<Bytes>>((plan.window / 4).max(2));
        let body = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Some(bytes)) => Some((Ok(bytes), rx)),
                Some(None) => None,
                None => Some((Err(std::io::Error::other("the transfer was aborted")), rx)),
            }
        });
        let (store, key) = (plan.store.clone(), plan.key.clone());
        let (options, staging) = (plan.options.clone(), plan.staging.clone());
        // The store hashes the content as it writes it and commits only if
        // the digest matches the sender's, announced with the last message.
        let expect = crate::store::ExpectDigest::default();
        let expected = expect.clone();
        let mut put = tokio::spawn(async move {
            store
                .put_staged(&key, Body::from_stream(body), options, staging, expected)
                .await
        });
        let mut tx = Some(tx);
        // Whether the write task has ended (its handle must not be polled
        // again).
        let mut put_done = false;
        let (mut next, mut bytes) = (0u64, 0u64);
        let mut last_reply = None;
        let mut last_progress = Instant::now();
        let outcome: Result<ObjectInfo, TransferError> = loop {
            let message = if let Some(first) = first.take() {
                first
            } else {
                tokio::select! {
                biased;
                () = cancel.cancelled() => break Err(TransferError::Cancelled),
                r = &mut put, if !put_done => {
                    put_done = true;
                    break Err(ended_early(joined(r)));
                }
                m = tokio::time::timeout(plan.idle, sub.next()) => match m {
                    Err(_) => break Err(TransferError::Idle(plan.idle)),
                    Ok(None) => break Err(TransferError::Interrupted("the transfer subscription closed".into())),
                    Ok(Some(m)) => m,
                },
                }
            };
            last_reply = message.reply.clone();
            let Some(seq) = crate::wire::headers::header_u64(&message, SEQ_HEADER) else {
                let body = Bytes::from(format!("a chunk needs a `{SEQ_HEADER}` header"));
                reply(&client, message.reply, "bad-request", ack(next), body).await;
                continue;
            };
            if seq < next {
                // A resend after a lost ack: already stored.
                reply(&client, message.reply, "ok", ack(next), Bytes::new()).await;
                continue;
            }
            if seq > next {
                let body = Bytes::from(format!("chunk {seq} arrived, {next} was expected"));
                reply(&client, message.reply, "out-of-order", ack(next), body).await;
                continue;
            }
            if let Some(total) = crate::wire::headers::header_u64(&message, END_HEADER) {
                let digest = crate::wire::headers::header(&message, DIGEST_HEADER)
                    .unwrap_or("")
                    .to_owned();
                if total != bytes {
                    break Err(TransferError::SizeMismatch(format!(
                        "{total} bytes announced, {bytes} received"
                    )));
                }
                *expect
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(digest);
                if let Some(tx) = tx.take()
                    && tx.send(None).await.is_err()
                {
                    // The write already ended (with an error): reported below.
                }
                put_done = true;
                match joined((&mut put).await) {
                    Ok(info) => {
                        let mut headers = ack(next + 1);
                        headers.insert(DIGEST_HEADER, info.digest.as_str());
                        reply(&client, last_reply.take(), "ok", headers, Bytes::new()).await;
                        record_transfer(ledger, id, bytes, true).await;
                        break Ok(info);
                    }
                    Err(e) => break Err(store_failure(e)),
                }
            }
            let len = message.payload.len() as u64;
            if message.payload.len() > plan.chunk_size {
                break Err(TransferError::ChunkTooLarge(format!(
                    "chunk {seq} has {len} bytes, at most {} are accepted",
                    plan.chunk_size
                )));
            }
            if let Some(limit) = plan.limit
                && bytes + len > limit
            {
                break Err(TransferError::TooLarge(format!(
                    "more than {limit} bytes sent"
                )));
            }
            bytes += len;
            next += 1;
            let sent = match &tx {
                Some(tx) => tx.send(Some(message.payload)).await.is_ok(),
                None => false,
            };
            if !sent {
                put_done = true;
                break Err(ended_early(joined((&mut put).await)));
            }
            reply(&client, message.reply, "ok", ack(next), Bytes::new()).await;
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                record_transfer(ledger, id, bytes, false).await;
            }
        };
        let _ = sub.unsubscribe().await;
        match outcome {
            Ok(info) => Ok(info),
            Err(error) => {
                debug!(%id, %error, "send transfer failed");
                if !put_done {
                    put.abort();
                    let _ = put.await;
                }
                if let Err(e) = plan.store.purge_staged(&plan.key, &plan.staging).await {
                    warn!(%id, error = %e, "could not purge a failed upload's staged chunks");
                }
                let body = Bytes::from(error.to_string());
                reply(&client, last_reply, error.status(), ack(next), body).await;
                Err(match error {
                    TransferError::Cancelled => OperationFailure::Cancelled,
                    other => OperationFailure::Failed(format!("transfer failed: {other}")),
                })
            }
        }
    }
}

/// The write task's result (a panicked or aborted task is a failed write).
fn joined(
    result: Result<Result<ObjectInfo, StoreError>, tokio::task::JoinError>,
) -> Result<ObjectInfo, StoreError> {
    result.unwrap_or_else(|e| Err(StoreError::nats("writing", e.to_string())))
}

/// The error for a write that ended before the sender's last message.
fn ended_early(result: Result<ObjectInfo, StoreError>) -> TransferError {
    match result {
        Err(e) => store_failure(e),
        Ok(_) => TransferError::Interrupted("the write ended before the transfer did".into()),
    }
}
