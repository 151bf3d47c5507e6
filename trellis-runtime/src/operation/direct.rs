//! The provider side of a direct upload: the caller publishes its chunks
//! straight into the store (a staged chunk subject below its own key, so
//! the bytes cross the server once); the provider follows what is stored,
//! hashing and counting as it goes, and commits the object by writing its
//! record once the caller's final message announces size, chunk count and
//! digest and all of it verifies.

use std::time::Duration;

use async_nats::Message;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::plan::{Plan, ack, store_failure};
use super::record::{OperationFailure, record_transfer};
use crate::rpc::STATUS_HEADER;
use crate::store::ObjectInfo;
use crate::transfer::budget::Budget;
use crate::transfer::{CHUNKS_HEADER, DIGEST_HEADER, END_HEADER, RESUME_HEADER, TransferError};
use crate::wire::reply::reply;

/// How often received-byte progress is written to the operation record.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Chunks all direct uploads this process follows may have requested from
/// the server at once (48 MiB at 128 KiB): below nats-server's
/// per-connection pending limit (64 MiB, beyond which it disconnects a
/// slow consumer), whatever the number of concurrent uploads. A single
/// upload reads back in batches of at most 64 chunks (8 MiB; 16 MiB
/// measured 63 MiB of peak RSS above baseline for a streamed 1 GiB upload,
/// too close to its 64 MiB bound), many share the budget, at least 16
/// chunks each.
static FOLLOWING: Budget = Budget::new(384, 16, 64);

/// How long a poll waits for the server's answer before asking again.
const POLL_ANSWER: Duration = Duration::from_secs(1);
/// Pause between polls that found nothing new.
const POLL_IDLE: Duration = Duration::from_millis(4);
/// After the final message, how long the announced chunks may take to be
/// readable before the transfer fails (the caller sends it only once every
/// chunk was acknowledged by the store).
const SETTLE: Duration = Duration::from_secs(5);
/// A failed upload's chunk subject is purged again after this long, for
/// publishes that were in flight when the transfer failed.
const LATE_PURGE: Duration = Duration::from_secs(2);
/// Attempts of that late purge (doubling the delay after a failure, so an
/// unreachable server gets about a minute to come back).
const LATE_PURGE_ATTEMPTS: u32 = 5;

/// What the caller's final message announced.
struct End {
    total: u64,
    chunks: u64,
    digest: String,
    at: Instant,
}

/// Follows, verifies and commits the direct upload of operation `id`;
/// `begin` is its first message (its reply inbox gets the verdict).
pub(super) async fn receive(
    client: &async_nats::Client,
    ledger: &async_nats::jetstream::kv::Store,
    id: &str,
    plan: Plan,
    mut sub: async_nats::Subscriber,
    begin: Message,
    cancel: CancellationToken,
) -> Result<ObjectInfo, OperationFailure> {
    let mut notify = begin.reply.clone();
    let mut follower = plan.store.follow_staged(&plan.staging);
    let mut hasher = Sha256::new();
    let (mut chunks, mut bytes) = (0u64, 0u64);
    let mut last_activity = Instant::now();
    let mut last_progress = Instant::now();
    let mut end: Option<End> = None;
    // A resume request waiting for its answer, and how many stored
    // messages were not the next chunk.
    let mut resume: Option<async_nats::Subject> = None;
    let mut misplaced = 0u64;
    let following = FOLLOWING.join();
    let outcome: Result<ObjectInfo, TransferError> = 'follow: loop {
        if cancel.is_cancelled() {
            break Err(TransferError::Cancelled);
        }
        // A failed read (the server restarting, say) is no progress: the
        // idle timeout decides, so a transfer survives a short outage.
        let got = match follower.poll(following.chunks(), POLL_ANSWER).await {
            Ok(got) => got,
            Err(e) => {
                // Not evidence that the caller stopped: only polls that
                // were answered count towards the idle timeout.
                debug!(%id, error = %e, "reading a direct upload failed; retrying");
                last_activity = Instant::now();
                Vec::new()
            }
        };
        let fresh = !got.is_empty();
        for staged in got {
            // The staged subject becomes the object's chunk subject, so it
            // must hold exactly the chunks in order: a chunk stored twice
            // (resent after a dropped connection) or ahead of a lost one
            // is deleted; the sender resends from where this stopped.
            if chunk_index(staged.id.as_deref()) != Some(chunks) {
                misplaced += 1;
                if let Err(e) = plan.store.delete_staged(staged.seq).await {
                    break 'follow Err(store_failure(e));
                }
                continue;
            }
            let chunk = staged.payload;
            let len = chunk.len() as u64;
            if chunk.len() > plan.chunk_size {
                break 'follow Err(TransferError::ChunkTooLarge(format!(
                    "chunk {chunks} has {len} bytes, at most {} are accepted",
                    plan.chunk_size
                )));
            }
            if let Some(limit) = plan.limit
                && bytes + len > limit
            {
                break 'follow Err(TransferError::TooLarge(format!(
                    "more than {limit} bytes sent"
                )));
            }
            hasher.update(&chunk);
            bytes += len;
            chunks += 1;
        }
        // A resume is answered once everything stored so far was read:
        // the sender continues from the first chunk not yet here.
        if !fresh && let Some(to) = resume.take() {
            debug!(%id, next = chunks, misplaced, "a direct upload resumes");
            reply(client, Some(to), "ok", ack(chunks), Bytes::new()).await;
        }
        if fresh {
            last_activity = Instant::now();
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                record_transfer(ledger, id, bytes, false).await;
            }
        }
        if let Some(announced) = &end {
            if chunks > announced.chunks || bytes > announced.total {
                break Err(TransferError::SizeMismatch(format!(
                    "{} bytes in {} chunks announced, more stored",
                    announced.total, announced.chunks
                )));
            }
            if chunks == announced.chunks {
                if bytes != announced.total {
                    break Err(TransferError::SizeMismatch(format!(
                        "{} bytes announced, {bytes} stored",
                        announced.total
                    )));
                }
                let digest = crate::transfer::digest_of(std::mem::take(&mut hasher));
                if digest != announced.digest {
                    break Err(TransferError::DigestMismatch(format!(
                        "sender says {}, stored content is {digest}",
                        announced.digest
                    )));
                }
                match plan
                    .store
                    .commit_staged(
                        &plan.key,
                        &plan.staging,
                        plan.options.clone(),
                        bytes,
                        chunks,
                        digest,
                    )
                    .await
                {
                    Ok(info) => break Ok(info),
                    Err(e) => break Err(store_failure(e)),
                }
            }
            if !fresh && announced.at.elapsed() >= SETTLE {
                break Err(TransferError::SizeMismatch(format!(
                    "{} chunks announced, {chunks} stored",
                    announced.chunks
                )));
            }
        }
        if fresh {
            // Keep reading while chunks flow; look at the control subject
            // without waiting.
            if let Some(Some(message)) = sub.next().now_or_never()
                && let Err(e) = control(message, &mut notify, &mut end, &mut resume)
            {
                break Err(e);
            }
            continue;
        }
        if last_activity.elapsed() >= plan.idle && end.is_none() {
            break Err(TransferError::Idle(plan.idle));
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Err(TransferError::Cancelled),
            m = sub.next() => match m {
                Some(message) => {
                    last_activity = Instant::now();
                    if let Err(e) = control(message, &mut notify, &mut end, &mut resume) {
                        break Err(e);
                    }
                }
                None => break Err(TransferError::Interrupted(
                    "the transfer subscription closed".into(),
                )),
            },
            () = tokio::time::sleep(POLL_IDLE) => {}
        }
    };
    let _ = sub.unsubscribe().await;
    match outcome {
        Ok(info) => {
            let mut headers = ack(chunks + 1);
            headers.insert(DIGEST_HEADER, info.digest.as_str());
            reply(client, notify, "ok", headers, Bytes::new()).await;
            record_transfer(ledger, id, bytes, true).await;
            Ok(info)
        }
        Err(error) => {
            debug!(%id, %error, "direct upload failed");
            // The verdict first: the caller stops publishing sooner.
            let body = Bytes::from(error.to_string());
            reply(client, notify, error.status(), ack(chunks), body).await;
            purge(&plan).await;
            purge_late(&plan);
            Err(match error {
                TransferError::Cancelled => OperationFailure::Cancelled,
                other => OperationFailure::Failed(format!("transfer failed: {other}")),
            })
        }
    }
}

/// Purges the staged chunks again later (doubling the delay after a
/// failure), for publishes that were in flight when the transfer failed.
pub(super) fn purge_late(plan: &Plan) {
    let (store, staging) = (plan.store.clone(), plan.staging.clone());
    let key = plan.key.clone();
    tokio::spawn(async move {
        let mut delay = LATE_PURGE;
        for attempt in 1..=LATE_PURGE_ATTEMPTS {
            tokio::time::sleep(delay).await;
            match store.purge_staged(&key, &staging).await {
                Ok(()) => break,
                Err(e) if attempt == LATE_PURGE_ATTEMPTS => {
                    warn!(%key, error = %e, "could not purge a failed upload's late chunks");
                }
                Err(_) => delay *= 2,
            }
        }
    });
}

async fn purge(plan: &Plan) {
    if let Err(e) = plan.store.purge_staged(&plan.key, &plan.staging).await {
        warn!(key = %plan.key, error = %e, "could not purge a failed upload's staged chunks");
    }
}

/// A message on the transfer subject during a direct upload: a resume
/// request (answered once the stored chunks were read), the final message
/// (size, chunk count, digest), or the caller giving up with a status.
fn control(
    message: Message,
    notify: &mut Option<async_nats::Subject>,
    end: &mut Option<End>,
    resume: &mut Option<async_nats::Subject>,
) -> Result<(), TransferError> {
    let headers = message.headers.clone().unwrap_or_default();
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    if get(RESUME_HEADER).is_some() {
        if message.reply.is_some() {
            resume.clone_from(&message.reply);
        }
        return Ok(());
    }
    if message.reply.is_some() {
        notify.clone_from(&message.reply);
    }
    if let Some(status) = get(STATUS_HEADER) {
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        return Err(TransferError::Interrupted(format!(
            "the sender gave up: {status}: {text}"
        )));
    }
    let number = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(total), Some(chunks)) = (number(END_HEADER), number(CHUNKS_HEADER)) {
        if end.is_none() {
            *end = Some(End {
                total,
                chunks,
                digest: get(DIGEST_HEADER).unwrap_or_default(),
                at: Instant::now(),
            });
        }
        return Ok(());
    }
    // A repeated begin: nothing to do.
    Ok(())
}

/// The chunk number a staged chunk was published as: the last token of
/// its message id (`<transfer>.<attempt>.<chunk>`).
fn chunk_index(id: Option<&str>) -> Option<u64> {
    id?.rsplit('.').next()?.parse().ok()
}
