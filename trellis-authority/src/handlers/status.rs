//! The `status` handler: every accepted contract with its reconcile status,
//! and the orphans.

use crate::inner::Inner;
use crate::records::Desired;
use trellis_runtime::protocol::{
    AuthorityError, ContractReport, ContractStatus, Orphan, StatusReply,
};

impl Inner {
    pub(super) async fn status(&self) -> Result<StatusReply, AuthorityError> {
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
            let live = crate::rollout::report(
                &desired.value,
                self.config.rollout_grace,
                crate::records::now_ms(),
            );
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
