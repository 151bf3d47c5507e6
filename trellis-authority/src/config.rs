//! [`AuthorityConfig`]: where and how the authority provisions (deployment,
//! profile, replicas, drift-check interval, authentication).

use std::time::Duration;

use crate::callout::AuthSettings;
use crate::naming::physical_name;
use trellis_runtime::protocol::ResourceKind;

/// How long a superseded digest may connect by default: a day, enough for
/// a rolling deploy that pauses overnight.
pub const DEFAULT_ROLLOUT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Where and how the authority provisions.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// Deployment name (scopes subjects, records and physical names).
    pub deployment: String,
    /// Profile name (`local`, `cluster`, ...).
    pub profile: String,
    /// Replicas per provisioned resource (R1 locally, R3 on a cluster).
    pub replicas: usize,
    /// How often every contract is re-checked for drift.
    pub reconcile_interval: Duration,
    /// Authentication: when set, the authority serves the server's auth
    /// callout and keeps the principal registry.
    pub auth: Option<AuthSettings>,
    /// How long a digest superseded through a safe plan may still connect
    /// (a rolling deploy's window), unless retired sooner.
    pub rollout_grace: Duration,
}

impl AuthorityConfig {
    /// The local profile: one replica.
    pub fn local(deployment: &str) -> Self {
        AuthorityConfig {
            deployment: deployment.to_owned(),
            profile: "local".to_owned(),
            replicas: 1,
            reconcile_interval: Duration::from_secs(2),
            auth: None,
            rollout_grace: DEFAULT_ROLLOUT_GRACE,
        }
    }

    /// The cluster profile: three replicas.
    pub fn cluster(deployment: &str) -> Self {
        AuthorityConfig {
            profile: "cluster".to_owned(),
            replicas: 3,
            ..Self::local(deployment)
        }
    }

    /// The physical name of a resource of contract `id` in this deployment
    /// and profile.
    pub(crate) fn physical(&self, id: &str, kind: ResourceKind, alias: &str) -> String {
        physical_name(&self.deployment, &self.profile, id, kind.as_str(), alias)
    }

    /// Sets the drift-check interval.
    pub fn reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = interval;
        self
    }

    /// Sets how long a superseded digest may still connect.
    pub fn rollout_grace(mut self, grace: Duration) -> Self {
        self.rollout_grace = grace;
        self
    }

    /// Turns authentication on.
    pub fn auth(mut self, settings: AuthSettings) -> Self {
        self.auth = Some(settings);
        self
    }
}
