//! The caller side of a send transfer: windowed chunk publishing with
//! cumulative acks, resends after silence, and the final digest.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
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
