//! The caller side of a send transfer: windowed chunk publishing with
//! cumulative acks, resends after silence, and the final digest.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::{ACK_HEADER, DIGEST_HEADER, END_HEADER, SEQ_HEADER, TransferError};
use crate::rpc::STATUS_HEADER;
use crate::store::Body;

/// How long without an ack before unacknowledged chunks are resent.
const RESEND_AFTER: Duration = Duration::from_millis(1500);

/// Progress callback: bytes acknowledged so far, and the total if known.
pub(crate) type Progress<'a> = Box<dyn FnMut(u64, Option<u64>) + Send + 'a>;

/// Where to send and how.
pub(crate) struct Route {
    pub subject: String,
    pub chunk_size: usize,
    pub window: usize,
    pub idle: Duration,
}

struct Pending {
    seq: u64,
    end: bool,
    payload: Bytes,
    headers: HeaderMap,
}

/// Sends `body`; returns the size and digest the provider acknowledged.
pub(crate) async fn send(
    client: &async_nats::Client,
    route: Route,
    body: Body<'_>,
    mut progress: Option<Progress<'_>>,
) -> Result<(u64, String), TransferError> {
    let nats = |e: &dyn std::fmt::Display| TransferError::Nats(e.to_string());
    let inbox = client.new_inbox();
    let mut acks = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| nats(&e))?;
    let (declared, mut chunker) = body.into_parts();
    let mut hasher = Sha256::new();
    let mut unacked: VecDeque<Pending> = VecDeque::new();
    let (mut next_seq, mut acked, mut bytes_sent, mut bytes_acked) = (0u64, 0u64, 0u64, 0u64);
    let mut sizes: VecDeque<u64> = VecDeque::new();
    let mut end_sent = false;
    let mut last_ack = Instant::now();
    let mut last_resend = Instant::now();
    let mut digest = String::new();
    let publish = |p: &Pending| {
        client.publish_with_reply_and_headers(
            route.subject.clone(),
            inbox.clone(),
            p.headers.clone(),
            p.payload.clone(),
        )
    };
    loop {
        while !end_sent && unacked.len() < route.window {
            let chunk = chunker
                .next_chunk(route.chunk_size)
                .await
                .map_err(TransferError::Body)?;
            let mut headers = HeaderMap::new();
            headers.insert(SEQ_HEADER, next_seq.to_string());
            let pending = match chunk {
                Some(payload) => {
                    hasher.update(&payload);
                    bytes_sent += payload.len() as u64;
                    sizes.push_back(payload.len() as u64);
                    Pending {
                        seq: next_seq,
                        end: false,
                        payload,
                        headers,
                    }
                }
                None => {
                    digest = super::digest_of(std::mem::take(&mut hasher));
                    headers.insert(END_HEADER, bytes_sent.to_string());
                    headers.insert(DIGEST_HEADER, digest.as_str());
                    end_sent = true;
                    sizes.push_back(0);
                    Pending {
                        seq: next_seq,
                        end: true,
                        payload: Bytes::new(),
                        headers,
                    }
                }
            };
            publish(&pending).await.map_err(|e| nats(&e))?;
            unacked.push_back(pending);
            next_seq += 1;
        }
        let wait = RESEND_AFTER.min(route.idle);
        match tokio::time::timeout(wait, acks.next()).await {
            Ok(Some(message)) => {
                let status = crate::wire::headers::header(&message, STATUS_HEADER).unwrap_or("ok");
                let ack = crate::wire::headers::header_u64(&message, ACK_HEADER).unwrap_or(acked);
                if ack > acked {
                    last_ack = Instant::now();
                    while unacked.front().is_some_and(|p| p.seq < ack) {
                        let done = unacked.pop_front();
                        bytes_acked += sizes.pop_front().unwrap_or(0);
                        if done.is_some_and(|p| p.end) && status == "ok" {
                            let _ = acks.unsubscribe().await;
                            if let Some(progress) = progress.as_mut() {
                                progress(bytes_acked, declared.or(Some(bytes_sent)));
                            }
                            return Ok((bytes_sent, digest));
                        }
                    }
                    acked = ack;
                    if let Some(progress) = progress.as_mut() {
                        progress(bytes_acked, declared);
                    }
                }
                match status {
                    "ok" => {}
                    "out-of-order" => {
                        // A chunk was lost: go back to the first unacked one,
                        // at most once per round trip burst.
                        if last_resend.elapsed() >= Duration::from_millis(200) {
                            last_resend = Instant::now();
                            for p in &unacked {
                                publish(p).await.map_err(|e| nats(&e))?;
                            }
                        }
                    }
                    other => {
                        let _ = acks.unsubscribe().await;
                        let text = String::from_utf8_lossy(&message.payload).into_owned();
                        return Err(TransferError::from_status(other, text));
                    }
                }
            }
            Ok(None) => {
                return Err(TransferError::Nats("the ack subscription closed".into()));
            }
            Err(_) => {
                if last_ack.elapsed() >= route.idle {
                    let _ = acks.unsubscribe().await;
                    return Err(TransferError::Idle(route.idle));
                }
                // Silence: an ack (or a chunk) was lost; resend the window.
                last_resend = Instant::now();
                for p in &unacked {
                    publish(p).await.map_err(|e| nats(&e))?;
                }
            }
        }
    }
}

/// Where a direct upload goes: the store subject its chunks are published
/// to (opaque, never surfaced) and the transfer subject for the begin and
/// final messages.
pub(crate) struct DirectRoute {
    pub upload: String,
    pub control: String,
    pub chunk_size: usize,
    pub window: usize,
    pub idle: Duration,
}

/// Publishes `body` straight into the provider's store with JetStream
/// publishes (at most `window` unacknowledged), then announces size, chunk
/// count and digest on the transfer subject and waits for the provider's
/// verdict (given once it verified and committed the object). Returns the
/// size and digest.
pub(crate) async fn send_direct(
    client: &async_nats::Client,
    route: DirectRoute,
    body: Body<'_>,
    mut progress: Option<Progress<'_>>,
) -> Result<(u64, String), TransferError> {
    use async_nats::jetstream::context::PublishAckFuture;
    use std::future::IntoFuture as _;
    type PendingAck = <PublishAckFuture as std::future::IntoFuture>::IntoFuture;

    let nats = |e: &dyn std::fmt::Display| TransferError::Nats(e.to_string());
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut verdicts = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| nats(&e))?;
    let mut begin = HeaderMap::new();
    begin.insert(super::BEGIN_HEADER, "1");
    client
        .publish_with_reply_and_headers(route.control.clone(), inbox.clone(), begin, Bytes::new())
        .await
        .map_err(|e| nats(&e))?;
    // The staged subject's last token is unique per transfer: with the
    // chunk number it is the message id, so a resent chunk is stored once.
    let unique = route
        .upload
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (declared, mut chunker) = body.into_parts();
    let mut hasher = Sha256::new();
    let mut inflight: VecDeque<(PendingAck, u64)> = VecDeque::with_capacity(route.window);
    let (mut seq, mut bytes_sent, mut bytes_acked) = (0u64, 0u64, 0u64);
    // The provider's early verdict (a refusal while the chunks flow).
    let refused = |message: async_nats::Message| {
        let status = crate::wire::headers::header(&message, STATUS_HEADER).unwrap_or("ok");
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        TransferError::from_status(status, text)
    };
    let result: Result<(), TransferError> = async {
        loop {
            // (A server status such as "no responders" is not a verdict.)
            if let Some(Some(message)) = verdicts.next().now_or_never()
                && message.status.is_none()
            {
                return Err(refused(message));
            }
            while inflight.len() >= route.window.max(1) {
                let Some((ack, len)) = inflight.pop_front() else {
                    break;
                };
                await_ack(ack, route.idle).await?;
                bytes_acked += len;
                if let Some(progress) = progress.as_mut() {
                    progress(bytes_acked, declared);
                }
            }
            let Some(chunk) = chunker
                .next_chunk(route.chunk_size)
                .await
                .map_err(TransferError::Body)?
            else {
                break;
            };
            hasher.update(&chunk);
            let len = chunk.len() as u64;
            bytes_sent += len;
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("{unique}.{seq}"),
            );
            let ack = js
                .publish_with_headers(route.upload.clone(), headers, chunk)
                .await
                .map_err(|e| publish_error(&e))?;
            inflight.push_back((ack.into_future(), len));
            seq += 1;
        }
        while let Some((ack, len)) = inflight.pop_front() {
            await_ack(ack, route.idle).await?;
            bytes_acked += len;
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        // Tell the provider, so it fails the operation and purges now
        // instead of after its idle timeout.
        let mut headers = HeaderMap::new();
        headers.insert(STATUS_HEADER, error.status());
        let _ = client
            .publish_with_headers(
                route.control.clone(),
                headers,
                Bytes::from(error.to_string()),
            )
            .await;
        let _ = verdicts.unsubscribe().await;
        return Err(error);
    }
    let digest = super::digest_of(hasher);
    let mut end = HeaderMap::new();
    end.insert(END_HEADER, bytes_sent.to_string());
    end.insert(super::CHUNKS_HEADER, seq.to_string());
    end.insert(DIGEST_HEADER, digest.as_str());
    client
        .publish_with_reply_and_headers(route.control.clone(), inbox, end, Bytes::new())
        .await
        .map_err(|e| nats(&e))?;
    // Verifying the last chunks and committing takes a moment after the
    // last ack; the provider answers within its settle time or fails.
    let wait = route.idle.max(Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + wait;
    // Only the provider's answer counts: a server status (e.g. "no
    // responders" because the provider already gave up and its refusal is
    // still on the way) is skipped.
    let verdict = loop {
        match tokio::time::timeout_at(deadline, verdicts.next()).await {
            Ok(Some(message)) if message.status.is_some() => continue,
            other => break other,
        }
    };
    let _ = verdicts.unsubscribe().await;
    match verdict {
        Err(_) => Err(TransferError::Idle(wait)),
        Ok(None) => Err(TransferError::Nats(
            "the verdict subscription closed".into(),
        )),
        Ok(Some(message)) => {
            let status = crate::wire::headers::header(&message, STATUS_HEADER).unwrap_or("ok");
            if status != "ok" {
                return Err(refused(message));
            }
            // A success names the digest the provider verified: ours.
            if crate::wire::headers::header(&message, DIGEST_HEADER) != Some(digest.as_str()) {
                return Err(TransferError::Interrupted(
                    "the provider's answer does not confirm the content".into(),
                ));
            }
            if let Some(progress) = progress.as_mut() {
                progress(bytes_acked, declared.or(Some(bytes_sent)));
            }
            Ok((bytes_sent, digest))
        }
    }
}

/// Waits for one chunk's store acknowledgement.
async fn await_ack<F>(ack: F, idle: Duration) -> Result<(), TransferError>
where
    F: std::future::Future<
            Output = Result<
                async_nats::jetstream::publish::PublishAck,
                async_nats::jetstream::context::PublishError,
            >,
        >,
{
    match tokio::time::timeout(idle, ack).await {
        Err(_) => Err(TransferError::Idle(idle)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(publish_error(&e)),
    }
}

/// A refused or failed chunk publish; the ack names the stream, which is
/// never surfaced.
fn publish_error(error: &async_nats::jetstream::context::PublishError) -> TransferError {
    let full = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.to_string().contains("maximum bytes"));
    if full {
        TransferError::StoreFull("the store refused a chunk: it is full".into())
    } else {
        TransferError::Interrupted("the store did not acknowledge a chunk".into())
    }
}
