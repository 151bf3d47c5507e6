//! The `bindings` handler: a service's accepted digest, reconciled
//! bindings and authentication settings.

use super::decode;
use crate::inner::Inner;
use crate::naming::lineage_key;
use crate::principals;
use crate::records::Desired;
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
        Ok(BindingsReply {
            accepted_digest: desired.map(|d| d.value.digest),
            status: status.map(|s| s.value),
            auth: self.config.auth.as_ref().map(|_| AuthBinding {
                callers_bucket: principals::callers_bucket_name(&self.config.deployment),
            }),
        })
    }
}
