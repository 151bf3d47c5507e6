//! The `retire` handler: stop letting an earlier digest of a lineage
//! connect before its rollout grace ends.

use super::decode;
use crate::inner::Inner;
use crate::naming::lineage_key;
use crate::records::{Desired, now_ms};
use trellis_runtime::protocol::{AuthorityError, LiveDigestReport, RetireRequest};

impl Inner {
    pub(super) async fn retire(
        &self,
        payload: &[u8],
    ) -> Result<Vec<LiveDigestReport>, AuthorityError> {
        let request: RetireRequest = decode(payload)?;
        let key = format!("contract.{}.desired", lineage_key(&request.id));
        let Some(current) = self.records.read::<Desired>(&key).await? else {
            return Err(AuthorityError::NotFound {
                what: format!("accepted contract {}", request.id),
            });
        };
        let now = now_ms();
        let next = crate::rollout::retire(&current.value, &request.digest, now)?;
        let written = self
            .records
            .write_cas(&key, &next, Some(current.revision))
            .await?;
        if written.is_none() {
            return Err(AuthorityError::Conflict { id: request.id });
        }
        Ok(crate::rollout::report(
            &next,
            self.config.rollout_grace,
            now,
        ))
    }
}
