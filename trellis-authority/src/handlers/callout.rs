//! The auth callout handler: answers the server's authorization requests
//! (see [`crate::callout`] for the wire format) and remembers the sessions
//! it authorized.

use tracing::{debug, warn};

use crate::callout::{self, CalloutRequest};
use crate::inner::Inner;
use crate::metrics::CalloutOutcome;
use crate::{permissions, principals};
use trellis_runtime::protocol::{Permissions, PrincipalRecord};

impl Inner {
    /// Answers one auth callout request; says how it ended.
    pub(crate) async fn callout(&self, message: async_nats::Message) -> CalloutOutcome {
        let (Some(reply), Some(settings)) = (message.reply.clone(), self.config.auth.as_ref())
        else {
            return CalloutOutcome::Unanswered;
        };
        let request = match std::str::from_utf8(&message.payload)
            .map_err(|e| callout::JwtError(e.to_string()))
            .and_then(CalloutRequest::parse)
        {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "unusable auth callout request");
                return CalloutOutcome::Unanswered;
            }
        };
        let decided = self.authorize(&request).await;
        let response = match &decided {
            Ok((record, permissions)) => {
                debug!(principal = %record.id, kind = record.kind.as_str(), "connection authorized");
                if let (Some(cid), Ok(mut sessions)) = (request.client_id, self.sessions.lock()) {
                    let list = sessions.entry(record.public_key.clone()).or_default();
                    // Bounded: the most recent connections of each key.
                    if list.len() >= 256 {
                        list.remove(0);
                    }
                    list.push((request.server_id.clone(), cid));
                }
                callout::respond(settings, &request, Ok((record, permissions)))
            }
            Err(why) => {
                warn!(reason = %why, "connection refused");
                callout::respond(settings, &request, Err(why.clone()))
            }
        };
        match response {
            Ok(token) => {
                if let Err(e) = self.client.publish(reply, token.into()).await {
                    warn!(error = %e, "could not answer the auth callout");
                    return CalloutOutcome::Unanswered;
                }
            }
            Err(e) => {
                warn!(error = %e, "could not sign the auth callout response");
                return CalloutOutcome::Unanswered;
            }
        }
        match decided {
            Ok(_) => CalloutOutcome::Authorized,
            Err(_) => CalloutOutcome::Refused,
        }
    }

    async fn authorize(
        &self,
        request: &CalloutRequest,
    ) -> Result<(PrincipalRecord, Permissions), String> {
        let key = request.proven_key()?;
        let registry = self.principals().map_err(|e| e.to_string())?;
        let record = registry
            .get(key)
            .await
            .map_err(|e| format!("principal lookup failed: {e}"))?
            .ok_or_else(|| format!("key {key} is not a registered principal"))?;
        if record.revoked {
            return Err(format!("principal `{}` is revoked", record.id));
        }
        let deployed = self
            .deployed()
            .await
            .map_err(|e| format!("reading accepted contracts failed: {e}"))?;
        let bucket = principals::callers_bucket_name(&self.config.deployment);
        let permissions =
            permissions::compute(&self.config.deployment, &record, &deployed, &bucket);
        Ok((record, permissions))
    }
}
