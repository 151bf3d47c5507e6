//! Stopping a served subscription without losing what the server already
//! routed to it: drain (unsubscribe at the server, keep receiving until it
//! confirmed), bounded in time.

use std::time::Duration;

use futures::StreamExt as _;

/// How long a stopping subscription waits for the messages the server
/// routed to it before it processed the unsubscribe.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Starts draining `sub`: the server stops routing to it, and what it
/// routed here before still arrives (then the stream ends). Returns the
/// deadline after which nothing more is waited for.
pub(crate) async fn drain(sub: &mut async_nats::Subscriber) -> tokio::time::Instant {
    if let Err(e) = sub.drain().await {
        tracing::debug!(error = %e, "could not drain a subscription");
    }
    tokio::time::Instant::now() + DRAIN_WAIT
}

/// The next message of `sub`; once draining, `None` at the deadline.
pub(crate) async fn next_or_drained(
    sub: &mut async_nats::Subscriber,
    draining: Option<tokio::time::Instant>,
) -> Option<async_nats::Message> {
    match draining {
        None => sub.next().await,
        Some(deadline) => tokio::time::timeout_at(deadline, sub.next())
            .await
            .ok()
            .flatten(),
    }
}
