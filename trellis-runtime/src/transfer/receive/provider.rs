//! The provider side of a download: redemptions served by pacing
//! direct-get batches of the object's chunks straight to the caller.

use async_nats::HeaderMap;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt as _;
use tracing::debug;

use super::grant::{GrantRecord, RedeemRequest, complete, redeem};
use super::{BOUNDARY_HEADER, CREDIT_HEADER, FROM_HEADER, IDLE, RECEIVE_SUBJECT};
use crate::rpc::ServeError;
use crate::runtime::ServiceRuntime;
use crate::store::{ChunkStart, StoreError, StoreHandle};
use crate::transfer::{
    ACK_HEADER, CHUNKS_HEADER, DIGEST_HEADER, END_HEADER, SEQ_HEADER, TransferError,
};
use crate::wire::headers::STATUS_HEADER;
use crate::wire::reply::reply;

/// The headers of a refusal: a bad offset names the boundary below it.
fn refusal_headers(error: &TransferError) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let TransferError::BadOffset {
        boundary: Some(boundary),
        ..
    } = error
    {
        headers.insert(BOUNDARY_HEADER, boundary.to_string());
    }
    headers
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
        let mut draining = None;
        loop {
            let message = tokio::select! {
                m = crate::wire::drain::next_or_drained(&mut sub, draining) => m,
                _ = &mut stop, if draining.is_none() => {
                    // Redemptions the server routed here before it
                    // processed the unsubscribe are still served.
                    draining = Some(crate::wire::drain::drain(&mut sub).await);
                    continue;
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
            let headers = refusal_headers(&error);
            reply(client, Some(to), error.status(), headers, body).await;
        }
    };
    let request: RedeemRequest = match serde_json::from_slice(&message.payload) {
        Ok(r) => r,
        Err(_) => return refuse(TransferError::GrantInvalid).await,
    };
    if request.offset.is_some() && !request.direct {
        let e = TransferError::Interrupted("only a direct download can resume".into());
        return refuse(e).await;
    }
    let resume = request.offset.is_some();
    let record = match redeem(state, &request.grant, &principal, resume).await {
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
        let offset = request.offset.unwrap_or(0);
        let pacing = Pacing {
            to: &to,
            credit: &credit,
            window,
            client,
        };
        let result = send_direct(&handle, &record, offset, &mut credits, pacing).await;
        let _ = credits.unsubscribe().await;
        match result {
            Ok(()) => {
                complete(state, &request.grant).await;
                stats.transfer(
                    crate::observe::Direction::Sent,
                    record.size.saturating_sub(offset),
                );
            }
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
                let message = next_credit(&mut credits).await?;
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

/// Where a direct download's answers and credits go.
struct Pacing<'a> {
    /// The receiver's inbox.
    to: &'a async_nats::Subject,
    /// Where the receiver acknowledges.
    credit: &'a str,
    /// Chunks per batch.
    window: u64,
    client: &'a async_nats::Client,
}

/// Paces a direct download from byte `offset` (a chunk boundary): asks
/// the store for `window` chunks at a time, answered straight to the
/// receiver's inbox (the bytes never pass through the provider), and asks
/// for the next batch once the receiver acknowledged the last one
/// (`Trellis-Ack`: chunks received so far, `Trellis-From`: the stream
/// sequence to continue from). Returns once the receiver acknowledged the
/// last chunk.
async fn send_direct(
    handle: &StoreHandle,
    record: &GrantRecord,
    offset: u64,
    credits: &mut async_nats::Subscriber,
    pacing: Pacing<'_>,
) -> Result<(), TransferError> {
    let Pacing {
        to,
        credit,
        window,
        client,
    } = pacing;
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
    let bad = |boundary: Option<u64>, reason: String| TransferError::BadOffset {
        offset,
        boundary,
        reason,
    };
    let (first, mut from) = if offset > source.info.size {
        let reason = format!("the object has {} bytes", source.info.size);
        return Err(bad(None, reason));
    } else if offset == source.info.size {
        (source.chunks, 1)
    } else {
        match store.chunk_at(&source, offset).await.map_err(interrupted)? {
            ChunkStart::At { index, seq } => (index, seq),
            ChunkStart::Inside { boundary } => {
                let reason = format!(
                    "it is not a chunk boundary (the chunk around it begins at byte {boundary})"
                );
                return Err(bad(Some(boundary), reason));
            }
        }
    };
    let chunks = source.chunks - first;
    let mut headers = HeaderMap::new();
    headers.insert(CREDIT_HEADER, credit);
    headers.insert(END_HEADER, record.size.to_string());
    headers.insert(DIGEST_HEADER, record.digest.as_str());
    headers.insert(CHUNKS_HEADER, chunks.to_string());
    reply(client, Some(to.clone()), "ok", headers, Bytes::new()).await;
    let mut received = 0u64;
    while received < chunks {
        let batch = window.min(chunks - received);
        store
            .direct_batch_to(to.as_str(), &source.subject, from, batch)
            .await
            .map_err(interrupted)?;
        loop {
            let message = next_credit(credits).await?;
            let ack = crate::wire::headers::header_u64(&message, ACK_HEADER).unwrap_or(0);
            let next = crate::wire::headers::header_u64(&message, FROM_HEADER).unwrap_or(0);
            if ack > received && next > from {
                received = ack.min(chunks);
                from = next;
                break;
            }
        }
    }
    Ok(())
}

/// The receiver's next credit message, within the idle timeout; a receiver
/// that stopped (a status) or went away ends the download.
async fn next_credit(
    credits: &mut async_nats::Subscriber,
) -> Result<async_nats::Message, TransferError> {
    let message = tokio::time::timeout(IDLE, credits.next())
        .await
        .map_err(|_| TransferError::Idle(IDLE))?
        .ok_or_else(|| TransferError::Interrupted("credits closed".into()))?;
    if crate::wire::headers::header(&message, STATUS_HEADER).is_some() {
        return Err(TransferError::Interrupted("the receiver stopped".into()));
    }
    Ok(message)
}
