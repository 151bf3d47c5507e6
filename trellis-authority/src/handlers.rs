//! The authority's request handlers: [`Inner::handle`] answers each
//! request on `trellis.authority.<deployment>.<op>` with the handler of its
//! op; the handlers are grouped by concept in the children. The auth
//! callout, served on its own subscription, is answered in [`callout`].

mod bindings;
mod callout;
mod contracts;
mod principals;
mod rollout;
mod status;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::inner::Inner;
use trellis_runtime::protocol::{AuthorityError, Reply};

impl Inner {
    pub(crate) async fn handle(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        // Requests come from clients, which reply below an inbox. A message
        // nats-server delivers on a service's behalf (a push consumer's
        // deliveries aimed at this subject, a JetStream API response) has a
        // `$JS.` reply subject or none: ignore it, whatever it carries.
        if !reply.starts_with(INBOX_PREFIX) {
            warn!(subject = %message.subject, reply = %reply, "ignoring an authority request that no client sent");
            return;
        }
        let op = message
            .subject
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        debug!(op = %op, "authority request");
        let payload = match op.as_str() {
            "plan" => encode(self.plan(&message.payload).await),
            "accept" => encode(self.accept(&message.payload).await),
            "bindings" => encode(self.bindings(&message.payload).await),
            "status" => encode(self.status(&message.payload).await),
            "purge" => encode(self.purge(&message.payload).await),
            "retire" => encode(self.retire(&message.payload).await),
            "register" => encode(self.register(&message.payload).await),
            "grant" => encode(self.grant(&message.payload).await),
            "revoke" => encode(self.revoke(&message.payload).await),
            "principals" => encode(self.list_principals().await),
            other => encode::<()>(Err(AuthorityError::BadRequest {
                message: format!("unknown authority operation `{other}`"),
            })),
        };
        if let Err(e) = self.client.publish(reply, payload.into()).await {
            warn!(error = %e, "could not send authority reply");
        }
    }
}

/// Where every client's replies arrive (with auth, the principal's own
/// prefix below it).
const INBOX_PREFIX: &str = trellis_runtime::identity::INBOXES;

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, AuthorityError> {
    serde_json::from_slice(payload).map_err(|e| AuthorityError::BadRequest {
        message: format!("request does not decode: {e}"),
    })
}

fn encode<T: Serialize>(result: Result<T, AuthorityError>) -> Vec<u8> {
    let reply = match result {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Err(e),
    };
    serde_json::to_vec(&reply).unwrap_or_else(|e| {
        format!(r#"{{"err":{{"error":"storage","message":"reply does not encode: {e}"}}}}"#)
            .into_bytes()
    })
}
