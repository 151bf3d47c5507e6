//! The `status` handler: every accepted contract with its reconcile status,
//! and the orphans.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use trellis_runtime::observe::{CONTRACT_KEY, DEPLOYMENT_KEY, DIGEST_KEY, PingResponse};

use super::decode;
use crate::inner::Inner;
use crate::records::Desired;
use trellis_runtime::protocol::{
    AuthorityError, ContractReport, ContractStatus, Orphan, StatusReply,
};

/// `status` request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRequest {
    /// Count running instances per live digest.
    #[serde(default)]
    instances: bool,
}

/// How long `status` collects `$SRV.PING` answers.
const PING_WAIT: Duration = Duration::from_millis(250);
/// Answers counted at most.
const PING_MAX: usize = 100_000;

impl Inner {
    /// Running instances of this deployment by (contract, digest), from
    /// the service API's metadata.
    async fn instances(&self) -> HashMap<(String, String), u64> {
        let mut out = HashMap::new();
        let inbox = self.client.new_inbox();
        let Ok(mut answers) = self.client.subscribe(inbox.clone()).await else {
            return out;
        };
        if self
            .client
            .publish_with_reply("$SRV.PING", inbox, Default::default())
            .await
            .is_err()
        {
            return out;
        }
        let deadline = tokio::time::Instant::now() + PING_WAIT;
        for _ in 0..PING_MAX {
            let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await else {
                break;
            };
            let Ok(ping) = serde_json::from_slice::<PingResponse>(&message.payload) else {
                continue;
            };
            let meta = |k: &str| ping.metadata.get(k).cloned();
            if meta(DEPLOYMENT_KEY).as_deref() != Some(self.config.deployment.as_str()) {
                continue;
            }
            if let (Some(contract), Some(digest)) = (meta(CONTRACT_KEY), meta(DIGEST_KEY)) {
                *out.entry((contract, digest)).or_default() += 1;
            }
        }
        let _ = answers.unsubscribe().await;
        out
    }

    pub(super) async fn status(&self, payload: &[u8]) -> Result<StatusReply, AuthorityError> {
        let request: StatusRequest = if payload.is_empty() {
            StatusRequest::default()
        } else {
            decode(payload)?
        };
        let instances = if request.instances {
            self.instances().await
        } else {
            HashMap::new()
        };
        let mut contracts = Vec::new();
        for key in self.records.keys("contract.>").await? {
            let Some(lineage) = key
                .strip_prefix("contract.")
                .and_then(|k| k.strip_suffix(".desired"))
            else {
                continue;
            };
            let Some(desired) = self.records.read::<Desired>(&key).await? else {
                continue;
            };
            let status = self
                .records
                .read::<ContractStatus>(&format!("contract.{lineage}.status"))
                .await?;
            let mut live = crate::rollout::report(
                &desired.value,
                self.config.rollout_grace,
                crate::records::now_ms(),
            );
            for l in &mut live {
                l.instances = instances
                    .get(&(desired.value.id.clone(), l.digest.clone()))
                    .copied()
                    .unwrap_or(0);
            }
            contracts.push(ContractReport {
                live,
                id: desired.value.id,
                digest: desired.value.digest,
                generation: desired.value.generation,
                status: status.map(|s| s.value),
            });
        }
        let mut orphans = Vec::new();
        for key in self.records.keys("orphan.>").await? {
            if let Some(o) = self.records.read::<Orphan>(&key).await? {
                orphans.push(o.value);
            }
        }
        Ok(StatusReply {
            deployment: self.config.deployment.clone(),
            profile: self.config.profile.clone(),
            replicas: self.config.replicas,
            contracts,
            orphans,
        })
    }
}
