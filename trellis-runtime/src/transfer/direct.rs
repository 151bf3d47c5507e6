//! The caller side of a direct upload: chunks go straight into the
//! provider's store as JetStream publishes (their acks are the window),
//! then the final message announces size, chunk count and digest and the
//! provider answers once it verified and committed the object.
//!
//! A dropped connection does not start the upload over. The sender keeps
//! the payloads of its unacknowledged chunks (one window); after the
//! client reconnected it asks the provider where to continue (the first
//! chunk not stored, answered once the provider read everything stored
//! so far) and resends from there, under a new attempt number in the
//! message ids. The provider deletes any chunk stored twice or ahead of a
//! lost one, so at most one window is resent and the stored object is the
//! same as without the drop; the end-to-end digest is checked as always.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use tracing::debug;

use super::outbound::Progress;
use super::{ACK_HEADER, CHUNKS_HEADER, DIGEST_HEADER, END_HEADER, RESUME_HEADER, TransferError};
use crate::rpc::STATUS_HEADER;
use crate::store::Body;

/// Resumes one upload may make before a dropped connection fails it.
const MAX_RESUMES: u32 = 8;
/// How often a sender waiting for a store ack looks whether its
/// connection was replaced (the acks of a dropped connection never come).
const RECONNECT_CHECK: Duration = Duration::from_millis(50);
/// How long one resume request waits for the provider's answer.
const RESUME_ANSWER: Duration = Duration::from_secs(5);

type PendingAck = <PublishAckFuture as std::future::IntoFuture>::IntoFuture;

/// Where a direct upload goes: the store subject its chunks are published
/// to (opaque, never surfaced) and the transfer subject for the begin,
/// resume and final messages.
pub(crate) struct DirectRoute {
    pub upload: String,
    pub control: String,
    pub chunk_size: usize,
    pub window: usize,
    pub idle: Duration,
}

/// A published chunk whose store ack has not arrived.
struct Unacked {
    index: u64,
    payload: Bytes,
    ack: PendingAck,
}

/// Why waiting for a store ack stopped.
enum AckFailure {
    /// The connection was dropped or the ack did not come: resumable.
    Lost(TransferError),
    /// The store refused the chunk (full): final.
    Refused(TransferError),
}

/// The sender's state across resumes.
struct Sender<'c> {
    client: &'c async_nats::Client,
    js: async_nats::jetstream::Context,
    route: DirectRoute,
    /// The transfer's unique token (the staged subject's last one).
    unique: String,
    /// Incremented by every resume: message ids of resent chunks differ
    /// from the originals, so the server's deduplication never drops one.
    attempt: u32,
    /// The connection's connect count when the chunks in flight were sent.
    connects: u64,
    inflight: VecDeque<Unacked>,
    resumes: u32,
    /// Bytes published again after resumes.
    resent: u64,
}

impl Sender<'_> {
    fn connects(&self) -> u64 {
        crate::wire::connection::connects(self.client)
    }

    async fn publish(&mut self, index: u64, payload: Bytes) -> Result<PendingAck, AckFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}.{}.{index}", self.unique, self.attempt),
        );
        self.js
            .publish_with_headers(self.route.upload.clone(), headers, payload)
            .await
            .map(IntoFuture::into_future)
            .map_err(|e| AckFailure::Lost(publish_error(&e)))
    }

    /// Publishes chunk `index` and keeps its payload until it is acked.
    async fn send(&mut self, index: u64, payload: Bytes) -> Result<(), AckFailure> {
        let ack = self.publish(index, payload.clone()).await?;
        self.inflight.push_back(Unacked {
            index,
            payload,
            ack,
        });
        Ok(())
    }

    /// Waits for the oldest chunk's store ack; returns its size.
    async fn ack_oldest(&mut self) -> Result<Option<u64>, AckFailure> {
        let Some(front) = self.inflight.front_mut() else {
            return Ok(None);
        };
        let deadline = Instant::now() + self.route.idle;
        loop {
            tokio::select! {
                acked = &mut front.ack => {
                    return match acked {
                        Ok(_) => Ok(self.inflight.pop_front().map(|u| u.payload.len() as u64)),
                        Err(e) => Err(match publish_error(&e) {
                            full @ TransferError::StoreFull(_) => AckFailure::Refused(full),
                            other => AckFailure::Lost(other),
                        }),
                    };
                }
                () = tokio::time::sleep(RECONNECT_CHECK) => {
                    if crate::wire::connection::connects(self.client) != self.connects {
                        return Err(AckFailure::Lost(TransferError::Interrupted(
                            "the connection was dropped".into(),
                        )));
                    }
                    if Instant::now() >= deadline {
                        return Err(AckFailure::Lost(TransferError::Idle(self.route.idle)));
                    }
                }
            }
        }
    }

    /// After a lost connection or ack: waits until the client is connected
    /// again, asks the provider for the first chunk it has not stored, and
    /// resends the kept chunks from there. Returns how many of the chunks
    /// in flight turned out to be stored (their bytes), for progress.
    async fn resume(&mut self, cause: TransferError, sent: u64) -> Result<u64, TransferError> {
        self.resumes += 1;
        if self.resumes > MAX_RESUMES {
            return Err(cause);
        }
        let deadline = Instant::now() + self.route.idle;
        let next = loop {
            if Instant::now() >= deadline {
                return Err(cause);
            }
            if self.client.connection_state() != State::Connected {
                tokio::time::sleep(RECONNECT_CHECK).await;
                continue;
            }
            let mut headers = HeaderMap::new();
            headers.insert(RESUME_HEADER, "1");
            let asked =
                self.client
                    .request_with_headers(self.route.control.clone(), headers, Bytes::new());
            match tokio::time::timeout(RESUME_ANSWER, asked).await {
                Ok(Ok(answer)) if answer.status.is_none() => {
                    let status =
                        crate::wire::headers::header(&answer, STATUS_HEADER).unwrap_or("ok");
                    if status != "ok" {
                        let text = String::from_utf8_lossy(&answer.payload).into_owned();
                        return Err(TransferError::from_status(status, text));
                    }
                    match crate::wire::headers::header_u64(&answer, ACK_HEADER) {
                        Some(next) => break next,
                        None => {
                            return Err(TransferError::Interrupted(
                                "the provider's resume answer names no chunk".into(),
                            ));
                        }
                    }
                }
                // No answer yet (the provider may itself be reconnecting).
                _ => tokio::time::sleep(RECONNECT_CHECK).await,
            }
        };
        let first = self.inflight.front().map_or(sent, |u| u.index);
        if next < first || next > sent {
            return Err(TransferError::Interrupted(format!(
                "the provider resumes at chunk {next}, but chunks {first} to {sent} are the ones not acknowledged"
            )));
        }
        self.attempt += 1;
        self.connects = self.connects();
        let kept: Vec<(u64, Bytes)> = self
            .inflight
            .drain(..)
            .map(|u| (u.index, u.payload))
            .collect();
        let mut stored = 0u64;
        for (index, payload) in kept {
            if index < next {
                stored += payload.len() as u64;
                continue;
            }
            self.resent += payload.len() as u64;
            self.send(index, payload)
                .await
                .map_err(|(AckFailure::Lost(e) | AckFailure::Refused(e))| e)?;
        }
        debug!(
            next,
            attempt = self.attempt,
            resent = self.resent,
            "a direct upload resumed after a dropped connection"
        );
        Ok(stored)
    }
}

/// Publishes `body` straight into the provider's store with JetStream
/// publishes (at most `window` unacknowledged), resuming after dropped
/// connections, then announces size, chunk count and digest on the
/// transfer subject and waits for the provider's verdict (given once it
/// verified and committed the object). Returns the size and digest.
pub(crate) async fn send_direct(
    client: &async_nats::Client,
    route: DirectRoute,
    body: Body<'_>,
    mut progress: Option<Progress<'_>>,
) -> Result<(u64, String), TransferError> {
    let nats = |e: &dyn std::fmt::Display| TransferError::Nats(e.to_string());
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
    // attempt and chunk number it is the message id.
    let unique = route
        .upload
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let window = route.window.max(1);
    let mut sender = Sender {
        client,
        js: async_nats::jetstream::new(client.clone()),
        unique,
        attempt: 0,
        connects: 0,
        inflight: VecDeque::with_capacity(window),
        resumes: 0,
        resent: 0,
        route,
    };
    sender.connects = sender.connects();
    let (declared, mut chunker) = body.into_parts();
    let mut hasher = Sha256::new();
    let (mut seq, mut bytes_sent, mut bytes_acked) = (0u64, 0u64, 0u64);
    let mut body_done = false;
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
            let waiting =
                sender.inflight.len() >= window || (body_done && !sender.inflight.is_empty());
            if waiting {
                match sender.ack_oldest().await {
                    Ok(len) => bytes_acked += len.unwrap_or(0),
                    Err(AckFailure::Refused(e)) => return Err(e),
                    Err(AckFailure::Lost(cause)) => {
                        debug!(error = %cause, "a direct upload lost its connection; resuming");
                        bytes_acked += sender.resume(cause, seq).await?;
                    }
                }
                if let Some(progress) = progress.as_mut() {
                    progress(bytes_acked, declared);
                }
                continue;
            }
            if body_done {
                return Ok(());
            }
            let Some(chunk) = chunker
                .next_chunk(sender.route.chunk_size)
                .await
                .map_err(TransferError::Body)?
            else {
                body_done = true;
                continue;
            };
            hasher.update(&chunk);
            bytes_sent += chunk.len() as u64;
            if let Err(failure) = sender.send(seq, chunk).await {
                let (AckFailure::Lost(cause) | AckFailure::Refused(cause)) = failure;
                // The chunk is not kept unless its publish went out: send
                // it again through the resume.
                return Err(cause);
            }
            seq += 1;
        }
    }
    .await;
    let route = &sender.route;
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
    if sender.resent > 0 {
        debug!(
            resent = sender.resent,
            resumes = sender.resumes,
            "a direct upload completed after resuming"
        );
    }
    let digest = super::digest_of(hasher);
    let mut end = HeaderMap::new();
    end.insert(END_HEADER, bytes_sent.to_string());
    end.insert(CHUNKS_HEADER, seq.to_string());
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

/// A refused or failed chunk publish; the ack names the stream, which is
/// never surfaced.
fn publish_error(error: &PublishError) -> TransferError {
    let full = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.to_string().contains("maximum bytes"));
    if full {
        TransferError::StoreFull("the store refused a chunk: it is full".into())
    } else {
        TransferError::Interrupted("the store did not acknowledge a chunk".into())
    }
}
