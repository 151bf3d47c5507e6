//! Replies and round trips: the reply every request path sends, a reply
//! as the calling side sees it, and the probe that proves subscriptions
//! are live on the server.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use tracing::warn;

use crate::wire::headers::STATUS_HEADER;
use crate::wire::limits::header_bytes;

/// Reply status of an answer too large for the server's max payload.
pub const REPLY_TOO_LARGE: &str = "reply-too-large";

/// Why subscriptions could not be confirmed with the server.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// Subscribing to the probe subject failed.
    #[error("subscribing to `{subject}` failed: {source}")]
    Subscribe {
        /// Subject.
        subject: String,
        /// Error.
        source: async_nats::SubscribeError,
    },
    /// The probe did not come back.
    #[error("{0}")]
    RoundTrip(String),
}

/// A value as a JSON payload.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<Bytes, String> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Sends a reply to `to` (if the request had one): `status` other than
/// `ok` goes into the `Trellis-Status` header, and a reply without headers
/// (the common `ok` case) is a plain PUB.
pub(crate) async fn reply(
    client: &async_nats::Client,
    to: Option<async_nats::Subject>,
    status: &str,
    mut headers: async_nats::HeaderMap,
    body: Bytes,
) {
    let Some(to) = to else { return };
    if status != "ok" {
        headers.insert(STATUS_HEADER, status);
    }
    // nats-server drops a message over its max payload (and async-nats
    // refuses to send it): answer with a typed status instead of silence.
    let limit = client.server_info().max_payload;
    let size = body.len() + header_bytes(Some(&headers));
    if limit > 0 && size > limit {
        warn!(size, limit, "a reply exceeds the server's max payload");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(STATUS_HEADER, REPLY_TOO_LARGE);
        let body = Bytes::from(format!(
            "the reply has {size} bytes; the server's max payload is {limit} bytes"
        ));
        if let Err(e) = client.publish_with_headers(to, headers, body).await {
            warn!(error = %e, "could not send a reply");
        }
        return;
    }
    let sent = if headers.is_empty() {
        client.publish(to, body).await
    } else {
        client.publish_with_headers(to, headers, body).await
    };
    if let Err(e) = sent {
        warn!(error = %e, "could not send a reply");
    }
}

/// A round trip on the same connection: the server handles one
/// connection's protocol in order, so once our own probe message comes
/// back, every earlier subscription is registered. (`flush` only empties
/// the socket buffer.)
pub async fn confirm_subscriptions(client: &async_nats::Client) -> Result<(), ConfirmError> {
    let probe = client.new_inbox();
    let mut sub =
        client
            .subscribe(probe.clone())
            .await
            .map_err(|source| ConfirmError::Subscribe {
                subject: probe.clone(),
                source,
            })?;
    client
        .publish(probe, Bytes::new())
        .await
        .map_err(|e| ConfirmError::RoundTrip(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ConfirmError::RoundTrip("probe subscription closed".into())),
        Err(_) => Err(ConfirmError::RoundTrip(
            "no probe round trip within 10 s".into(),
        )),
    }
}

/// A reply as the runtime sees it: status, headers, payload.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub status: String,
    pub headers: Option<async_nats::HeaderMap>,
    pub payload: Bytes,
}

impl RawReply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}
