//! Principal handlers: `register`, `grant`, `revoke` (kicking the revoked
//! connections) and `principals` (the registry with computed permissions).

use std::time::Duration;

use tracing::{debug, warn};

use super::decode;
use crate::inner::Inner;
use crate::{permissions, principals};
use trellis_runtime::protocol::{
    AuthorityError, PrincipalRecord, PrincipalReport, PrincipalsReply, RevokeRequest,
};

impl Inner {
    pub(super) async fn register(&self, payload: &[u8]) -> Result<PrincipalRecord, AuthorityError> {
        self.principals()?.register(decode(payload)?).await
    }

    pub(super) async fn grant(
        &self,
        payload: &[u8],
    ) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        self.principals()?.grant(decode(payload)?).await
    }

    pub(super) async fn revoke(
        &self,
        payload: &[u8],
    ) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        let request: RevokeRequest = decode(payload)?;
        let revoked = self.principals()?.revoke(&request.principal).await?;
        for record in &revoked {
            self.disconnect(&record.public_key).await;
        }
        Ok(revoked)
    }

    /// Disconnects the connections this instance authorized for `key`
    /// (they would otherwise keep their permissions until the session
    /// expires). Reconnecting is refused by the callout.
    async fn disconnect(&self, key: &str) {
        let sessions = self
            .sessions
            .lock()
            .map(|mut s| s.remove(key).unwrap_or_default())
            .unwrap_or_default();
        let Some(system) = self.config.auth.as_ref().and_then(|a| a.system.as_ref()) else {
            if !sessions.is_empty() {
                warn!(
                    key,
                    "no system connection: revoked connections stay until their session expires"
                );
            }
            return;
        };
        for (server, cid) in sessions {
            let subject = format!("$SYS.REQ.SERVER.{server}.KICK");
            let body = serde_json::json!({ "cid": cid }).to_string();
            let asked =
                tokio::time::timeout(Duration::from_secs(2), system.request(subject, body.into()))
                    .await;
            match asked {
                Ok(Ok(reply)) => {
                    debug!(cid, reply = %String::from_utf8_lossy(&reply.payload), "kicked a revoked connection")
                }
                Ok(Err(e)) => warn!(cid, error = %e, "kicking a revoked connection failed"),
                Err(_) => warn!(cid, "kicking a revoked connection timed out"),
            }
        }
    }

    pub(super) async fn list_principals(&self) -> Result<PrincipalsReply, AuthorityError> {
        let Some(registry) = &self.principals else {
            return Ok(PrincipalsReply {
                auth: false,
                principals: Vec::new(),
            });
        };
        let deployed = self.deployed().await?;
        let bucket = principals::callers_bucket_name(&self.config.deployment);
        let principals = registry
            .list()
            .await?
            .into_iter()
            .map(|record| PrincipalReport {
                permissions: (!record.revoked).then(|| {
                    permissions::compute(&self.config.deployment, &record, &deployed, &bucket)
                }),
                record,
            })
            .collect();
        Ok(PrincipalsReply {
            auth: true,
            principals,
        })
    }
}
