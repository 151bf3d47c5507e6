//! The `bindings` handler: a service's accepted digest (and the earlier
//! ones still live in a rollout), reconciled bindings and authentication
//! settings.

use super::decode;
use crate::inner::Inner;
use crate::naming::lineage_key;
use crate::principals;
use crate::records::{Desired, now_ms};
use trellis_runtime::protocol::{
    AuthBinding, AuthorityError, BindingsReply, BindingsRequest, ContractStatus,
};

impl Inner {
    pub(super) async fn bindings(&self, payload: &[u8]) -> Result<BindingsReply, AuthorityError> {
        let request: BindingsRequest = decode(payload)?;
        let lineage = lineage_key(&request.id);
        let (desired_key, status_key) = (
            format!("contract.{lineage}.desired"),
            format!("contract.{lineage}.status"),
        );
        let (desired, status) = tokio::join!(
            self.records.read::<Desired>(&desired_key),
            self.records.read::<ContractStatus>(&status_key),
        );
        let (desired, status) = (desired?, status?);
        let now = now_ms();
        let grace = self.config.rollout_grace;
        let live_digests = desired.as_ref().map_or_else(Vec::new, |d| {
            crate::rollout::live(&d.value, grace, now)
                .into_iter()
                .map(|e| e.digest.clone())
                .collect()
        });
        let retired = desired
            .as_ref()
            .and_then(|d| crate::rollout::retirement(&d.value, &request.digest, grace, now));
        Ok(BindingsReply {
            accepted_digest: desired.map(|d| d.value.digest),
            status: status.map(|s| s.value),
            live_digests,
            retired,
            auth: self.config.auth.as_ref().map(|_| AuthBinding {
                callers_bucket: principals::callers_bucket_name(&self.config.deployment),
            }),
        })
    }
}
