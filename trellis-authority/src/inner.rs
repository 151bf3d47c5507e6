//! [`Inner`]: what one authority instance's request handlers, auth callout
//! and reconcile loop share, with the reads several of them need.

use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::Notify;
use trellis_manifest::manifest::Manifest;

use crate::config::AuthorityConfig;
use crate::permissions::Deployed;
use crate::principals::Principals;
use crate::reconcile::Reconciler;
use crate::records::{self, Desired, Records};
use trellis_runtime::protocol::{AuthorityError, ContractStatus};

/// One authority instance: its connection, records, configuration,
/// reconciler, principal registry and the sessions it authorized.
pub(crate) struct Inner {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) records: Records,
    pub(crate) config: AuthorityConfig,
    pub(crate) reconciler: Reconciler,
    pub(crate) wake: Arc<Notify>,
    pub(crate) principals: Option<Principals>,
    /// The accepted contracts as permissions need them, kept current by a
    /// watch on the records.
    pub(crate) deployed: Arc<crate::deployed::DeployedCache>,
    /// Connections this instance authorized, by principal key: (server
    /// id, client id), so a revocation can disconnect them.
    pub(crate) sessions: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, u64)>>>,
}

impl Inner {
    pub(crate) fn principals(&self) -> Result<&Principals, AuthorityError> {
        self.principals.as_ref().ok_or(AuthorityError::AuthDisabled)
    }

    /// Every accepted contract with its last good bindings (cached; see
    /// [`crate::deployed`]).
    pub(crate) async fn deployed(&self) -> Result<crate::deployed::DeployedSet, AuthorityError> {
        self.deployed
            .get(&self.records.kv, || self.read_deployed())
            .await
    }

    /// Every accepted contract with its last good bindings, read from the
    /// records.
    async fn read_deployed(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Deployed>, AuthorityError> {
        let mut out = std::collections::BTreeMap::new();
        for key in self.records.keys("contract.*.desired").await? {
            let Some(desired) = self.records.read::<Desired>(&key).await? else {
                continue;
            };
            // The last manifest that reconciled to ready, if any: a newer
            // accept that fails to reconcile does not change permissions.
            let ready = self
                .records
                .read::<Desired>(&key.replace(".desired", ".ready"))
                .await?;
            let text = ready.map_or(desired.value.manifest, |r| r.value.manifest);
            let manifest: Manifest = serde_json::from_str(&text).map_err(records::storage)?;
            let state_key = key.replace(".desired", ".status");
            let bindings = self
                .records
                .read::<ContractStatus>(&state_key)
                .await?
                .map(|s| s.value.bindings);
            out.insert(desired.value.id, Deployed { manifest, bindings });
        }
        Ok(out)
    }
}
