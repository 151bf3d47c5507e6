//! Records the authority persists and serves: bindings with the limits
//! actually installed on the server. Operator-facing (the CLI prints them);
//! service code never sees them: it gets typed handles.

use serde::{Deserialize, Serialize};

/// The binding of a KV alias: its bucket and installed limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KvBinding {
    /// Physical bucket name.
    pub bucket: String,
    /// Revisions kept per key (installed).
    pub history: u64,
    /// Expiry in ms; 0 = none (installed).
    pub ttl_ms: u64,
    /// Largest value in bytes, if limited (installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<u64>,
}

/// The binding of a store alias: its bucket and installed limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreBinding {
    /// Physical object-store bucket name.
    pub bucket: String,
    /// Expiry in ms; 0 = none (installed).
    pub ttl_ms: u64,
    /// Bucket size limit, if finite (installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<u64>,
}

use std::collections::BTreeMap;

/// Resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// A KV bucket.
    Kv,
    /// An object store.
    Store,
    /// The contract's ledger: the runtime-owned KV bucket of operation
    /// records and receive grants (`state` in records written before the
    /// rename).
    #[serde(alias = "state")]
    Ledger,
    /// The runtime-owned event stream of the contract's events.
    Events,
    /// A durable consumer of an event consumer group (alias
    /// `<group>/<source contract>`).
    Consumer,
}

impl ResourceKind {
    /// `kv` / `store` / `ledger` / `events` / `consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Kv => "kv",
            ResourceKind::Store => "store",
            ResourceKind::Ledger => "ledger",
            ResourceKind::Events => "events",
            ResourceKind::Consumer => "consumer",
        }
    }
}

/// What happens to one resource (or surface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum Change {
    /// A new alias: a bucket is created (or a compatible one adopted). For
    /// a surface: a new RPC, operation or event.
    Added,
    /// An existing alias (or surface) with different settings.
    Changed {
        /// Human-readable field changes (`history 8 -> 4`).
        fields: Vec<String>,
    },
    /// The alias disappears: its resource is detached and kept as orphaned.
    /// For a surface: it is removed (or renamed).
    Removed,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    /// Resource kind.
    pub kind: ResourceKind,
    /// Logical alias.
    pub alias: String,
    /// Physical name it maps to.
    pub physical: String,
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// Why this is dangerous; empty when safe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dangers: Vec<String>,
}

impl PlanItem {
    /// Whether accepting needs explicit confirmation.
    pub fn is_dangerous(&self) -> bool {
        !self.dangers.is_empty()
    }
}

/// The kind of a contract surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurfaceKind {
    /// An entry of `rpc`.
    Rpc,
    /// An entry of `operations`.
    Operation,
    /// An entry of `events`.
    Event,
}

impl SurfaceKind {
    /// `rpc` / `operation` / `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            SurfaceKind::Rpc => "rpc",
            SurfaceKind::Operation => "operation",
            SurfaceKind::Event => "event",
        }
    }
}

/// An accepted contract whose `uses` selects a surface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependent {
    /// The dependent contract's id.
    pub contract: String,
    /// Its `uses` alias of this contract.
    pub alias: String,
    /// How it selects the surface: `rpc.call`, `operations.call`,
    /// `events.subscribe` or `events.publish`.
    pub selects: String,
}

/// One changed surface (RPC, operation or event) of a contract, compared
/// with the accepted manifest of the same lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurfaceChange {
    /// Surface kind.
    pub kind: SurfaceKind,
    /// Surface name (`Files.List`).
    pub name: String,
    /// The change (`changed` lists what differs).
    #[serde(flatten)]
    pub change: Change,
    /// Why this breaks callers built on the accepted manifest; empty when
    /// the change is additive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dangers: Vec<String>,
    /// Other accepted contracts whose `uses` select this surface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<Dependent>,
}

impl SurfaceChange {
    /// Whether accepting needs explicit confirmation.
    pub fn is_dangerous(&self) -> bool {
        !self.dangers.is_empty()
    }
}

/// The plan for accepting one manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Contract id.
    pub id: String,
    /// Digest of the proposed manifest.
    pub digest: String,
    /// Digest currently accepted, if any.
    pub previous_digest: Option<String>,
    /// Resource changes (unchanged resources are omitted).
    pub items: Vec<PlanItem>,
    /// Surface changes against the accepted manifest of the lineage
    /// (unchanged surfaces are omitted; empty on a first accept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surfaces: Vec<SurfaceChange>,
}

impl Plan {
    /// Whether any change (resource or surface) is dangerous.
    pub fn is_dangerous(&self) -> bool {
        self.items.iter().any(PlanItem::is_dangerous)
            || self.surfaces.iter().any(SurfaceChange::is_dangerous)
    }

    /// Whether nothing would change.
    pub fn is_noop(&self) -> bool {
        self.items.is_empty()
            && self.surfaces.is_empty()
            && self.previous_digest.as_deref() == Some(self.digest.as_str())
    }

    /// Every danger, one line each, naming what it concerns (and, for a
    /// surface, the dependents selecting it).
    pub fn danger_lines(&self) -> Vec<String> {
        let resources = self.items.iter().flat_map(|i| {
            i.dangers
                .iter()
                .map(move |d| format!("{} `{}`: {d}", i.kind.as_str(), i.alias))
        });
        let surfaces = self.surfaces.iter().flat_map(|s| {
            let used_by = if s.dependents.is_empty() {
                String::new()
            } else {
                format!(
                    " (selected by {})",
                    s.dependents
                        .iter()
                        .map(|d| format!("{} via uses `{}` {}", d.contract, d.alias, d.selects))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            s.dangers
                .iter()
                .map(move |d| format!("{} `{}`: {d}{used_by}", s.kind.as_str(), s.name))
        });
        resources.chain(surfaces).collect()
    }
}

/// Prefix of the authority's request subjects.
pub const AUTHORITY_PREFIX: &str = "trellis.authority";

/// The request subject of authority operation `op` in `deployment`.
pub fn authority_subject(deployment: &str, op: &str) -> String {
    format!("{AUTHORITY_PREFIX}.{deployment}.{op}")
}

/// `plan` request: what would accepting this manifest change?
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRequest {
    /// Manifest JSON text.
    pub manifest: String,
}

/// `accept` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptRequest {
    /// Manifest JSON text.
    pub manifest: String,
    /// Confirms dangerous changes.
    #[serde(default)]
    pub allow_dangerous: bool,
}

/// `accept` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptReply {
    /// The plan that was accepted.
    pub plan: Plan,
    /// Monotonic generation of this contract's desired record.
    pub generation: u64,
}

/// `bindings` request from a connecting service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingsRequest {
    /// Contract id.
    pub id: String,
    /// The digest the service was built with.
    pub digest: String,
}

/// `bindings` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingsReply {
    /// Currently accepted digest; `None` when the contract is unknown.
    pub accepted_digest: Option<String>,
    /// Reconcile status, once a pass has run.
    #[serde(alias = "state")]
    pub status: Option<ContractStatus>,
    /// Set when the deployment authenticates callers: providers then
    /// verify every request's caller against the sealed principal records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthBinding>,
    /// Earlier digests of the lineage that may still connect during a
    /// rollout (accepted before a safe plan superseded them, neither
    /// retired nor past the grace period). Their instances run on the
    /// accepted digest's bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_digests: Vec<String>,
    /// Why the requested digest may no longer connect, if it was live once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retired>,
}

/// A digest of a lineage that may no longer connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    /// The digest.
    pub digest: String,
    /// Why.
    pub reason: RetireReason,
    /// When (unix ms).
    pub retired_ms: u64,
}

/// Why a digest stopped being live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RetireReason {
    /// An operator retired it (`trellis contract retire`).
    Retired,
    /// The rollout grace period after it was superseded ended.
    GraceEnded,
    /// A dangerous change superseded it: older builds are refused at once.
    Dangerous,
}

impl std::fmt::Display for RetireReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RetireReason::Retired => "retired by an operator",
            RetireReason::GraceEnded => "its rollout grace period ended",
            RetireReason::Dangerous => "a dangerous change superseded it",
        })
    }
}

/// `retire` request: stop letting an earlier digest of a lineage connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetireRequest {
    /// Contract id.
    pub id: String,
    /// The earlier digest to retire.
    pub digest: String,
}

/// The digests of one lineage: the accepted one and the earlier ones still
/// live, as `status` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveDigestReport {
    /// The digest.
    pub digest: String,
    /// Whether it is the accepted digest.
    pub accepted: bool,
    /// When a later accept superseded it (unix ms); `None` for the
    /// accepted digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_ms: Option<u64>,
    /// When it stops being live unless retired sooner (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Running instances built from it that answered `$SRV.PING` while
    /// `status` waited (when asked to count them).
    #[serde(default)]
    pub instances: u64,
}

/// How a deployment's providers verify callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthBinding {
    /// The KV bucket of sealed principal records (read-only for
    /// services; see [`crate::sealed`]).
    pub callers_bucket: String,
}

/// A registered principal, as the authority publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalRecord {
    /// The nkey public key (`U...`).
    pub public_key: String,
    /// Kind.
    pub kind: crate::identity::PrincipalKind,
    /// Principal id.
    pub id: String,
    /// The user a device belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The contract a service runs, or an app/device acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// Granted capabilities (`<namespace>::<name>`).
    #[serde(default)]
    pub capabilities: std::collections::BTreeSet<String>,
    /// Revoked keys are refused at connect and on every request.
    #[serde(default)]
    pub revoked: bool,
    /// Last change (unix ms).
    pub updated_ms: u64,
}

impl PrincipalRecord {
    /// The user whose state this principal reads: a device's user, or the
    /// principal itself.
    pub fn owning_user(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.id)
    }
}

/// `principals.register` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Public key.
    pub public_key: String,
    /// Kind.
    pub kind: crate::identity::PrincipalKind,
    /// Principal id.
    pub id: String,
    /// A device's user.
    #[serde(default)]
    pub user: Option<String>,
    /// A service's contract.
    #[serde(default)]
    pub contract: Option<String>,
}

/// `principals.grant` request: add or remove capabilities of every key
/// of a principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRequest {
    /// Principal id or public key.
    pub principal: String,
    /// Capabilities (`<namespace>::<name>`).
    pub capabilities: Vec<String>,
    /// Remove instead of add.
    #[serde(default)]
    pub remove: bool,
}

/// `principals.revoke` request: revoke every key of a principal (or one
/// key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeRequest {
    /// Principal id or public key.
    pub principal: String,
}

/// NATS permissions issued to a principal's connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may not publish to, though `publish` covers them
    /// (internal RPCs, for users and devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Subjects it may not subscribe to or receive, though `subscribe`
    /// covers them (gated events it does not satisfy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe_deny: Vec<String>,
}

/// One principal in `principals.list`, with what its connections get.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalReport {
    /// The record.
    pub record: PrincipalRecord,
    /// Permissions a connection would be issued now (none when revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

/// `principals.list` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalsReply {
    /// Whether the deployment authenticates connections.
    pub auth: bool,
    /// Every registered principal.
    pub principals: Vec<PrincipalReport>,
}

/// Status of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ResourceStatus {
    /// Not provisioned yet.
    Pending,
    /// Provisioned and matching the desired configuration.
    Ready,
    /// Provisioning failed; retried with backoff.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One resource in a contract's reconcile status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    /// Kind.
    pub kind: ResourceKind,
    /// Alias.
    pub alias: String,
    /// Physical bucket.
    pub physical: String,
    /// Whether the contract needs it.
    pub required: bool,
    /// Status.
    #[serde(flatten)]
    pub status: ResourceStatus,
    /// Consecutive failed attempts.
    #[serde(default)]
    pub attempts: u32,
    /// Earliest next retry (unix ms) after a failure.
    #[serde(default)]
    pub next_attempt_ms: u64,
}

/// The bindings of one contract, as last successfully reconciled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingsRecord {
    /// KV bindings by alias.
    #[serde(default)]
    pub kv: BTreeMap<String, KvBinding>,
    /// Store bindings by alias.
    #[serde(default)]
    pub store: BTreeMap<String, StoreBinding>,
    /// The contract's ledger (operation records, receive grants, rejected
    /// events), for contracts with operations, receive transfers or
    /// consumer groups.
    #[serde(default, alias = "state", skip_serializing_if = "Option::is_none")]
    pub ledger: Option<KvBinding>,
    /// The runtime-owned event stream, for contracts with events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsBinding>,
    /// Durable event consumers by group: one per source event stream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumers: BTreeMap<String, Vec<ConsumerBinding>>,
}

/// One durable JetStream consumer of an event consumer group, on the event
/// stream of one source contract (the group's own contract or a `uses`
/// contract), with the configuration actually installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerBinding {
    /// The contract whose events it reads.
    pub source: String,
    /// That contract's event stream.
    pub stream: String,
    /// The durable consumer's name.
    pub consumer: String,
    /// The events it delivers, each with its filter subject.
    pub events: Vec<ConsumedEvent>,
    /// `all` (replay every retained event) or `new`.
    pub replay: String,
    /// Ack wait (ms).
    pub ack_wait_ms: u64,
    /// Deliveries before the server gives up on a message.
    pub max_deliver: u64,
    /// Redelivery delays (ms), at most `max_deliver - 1` of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff_ms: Vec<u64>,
    /// Messages delivered and not yet acknowledged at most (1 for strict
    /// ordering).
    pub max_ack_pending: u64,
}

/// An event a consumer delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumedEvent {
    /// The event's name in its contract (`Documents.Created`).
    pub name: String,
    /// The filter subject (template parameters as `*`).
    pub subject: String,
}

/// The event stream of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsBinding {
    /// Physical stream name.
    pub stream: String,
    /// The subjects it captures.
    pub subjects: Vec<String>,
}

/// Contract phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Every required resource is ready for the accepted digest.
    Ready,
    /// Reconciliation has not (yet) provisioned every required resource.
    Pending,
}

/// Reconcile status of one contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractStatus {
    /// Contract id.
    pub id: String,
    /// Digest this status was reconciled for.
    pub digest: String,
    /// Desired generation this status was reconciled for.
    pub generation: u64,
    /// Phase.
    pub phase: Phase,
    /// Every resource of the contract.
    pub resources: Vec<ResourceReport>,
    /// Bindings services receive (last good for resources that failed).
    pub bindings: BindingsRecord,
    /// When this pass ran (unix ms).
    pub updated_ms: u64,
}

/// A resource detached from its contract; data retained until purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    /// Kind.
    pub kind: ResourceKind,
    /// Physical bucket.
    pub physical: String,
    /// Contract id it belonged to.
    pub contract: String,
    /// Alias it was bound to.
    pub alias: String,
    /// When it was detached (unix ms).
    pub detached_ms: u64,
}

/// One contract in a status report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractReport {
    /// Contract id.
    pub id: String,
    /// Accepted digest.
    pub digest: String,
    /// Desired generation.
    pub generation: u64,
    /// Latest reconcile status.
    #[serde(alias = "state")]
    pub status: Option<ContractStatus>,
    /// Digests that may connect: the accepted one first, then earlier ones
    /// still live during a rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<LiveDigestReport>,
}

/// `status` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    /// Deployment name.
    pub deployment: String,
    /// Profile name.
    pub profile: String,
    /// Replicas per resource in this profile.
    pub replicas: usize,
    /// Accepted contracts.
    pub contracts: Vec<ContractReport>,
    /// Detached resources awaiting an explicit purge.
    pub orphans: Vec<Orphan>,
}

/// `purge` request: delete an orphaned resource and its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeRequest {
    /// Physical name of the orphan.
    pub physical: String,
}

/// Errors the authority replies with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", tag = "error")]
pub enum AuthorityError {
    /// The manifest failed `trellis contract check`.
    #[error("invalid manifest: {}", problems.join("; "))]
    InvalidManifest {
        /// Every problem.
        problems: Vec<String>,
    },
    /// The plan is dangerous and confirmation was not given.
    #[error("the plan for {} has dangerous changes; review it and accept with --allow-dangerous: {}", plan.id, plan.danger_lines().join("; "))]
    Dangerous {
        /// The refused plan.
        plan: Box<Plan>,
    },
    /// The contract's `uses` name a contract or surface this deployment
    /// does not have.
    #[error("unknown uses: {}", problems.join("; "))]
    UnknownUses {
        /// One line per problem.
        problems: Vec<String>,
    },
    /// Another accept changed the contract concurrently; retry.
    #[error("contract {id} changed concurrently; re-plan and retry")]
    Conflict {
        /// Contract id.
        id: String,
    },
    /// Something named does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What.
        what: String,
    },
    /// The request was malformed.
    #[error("bad request: {message}")]
    BadRequest {
        /// Why.
        message: String,
    },
    /// The deployment does not authenticate, so it has no principals.
    #[error("this deployment runs without authentication; start it with auth to manage principals")]
    AuthDisabled,
    /// JetStream failed.
    #[error("authority storage error: {message}")]
    Storage {
        /// Details.
        message: String,
    },
}

/// Wire envelope of every authority reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply<T> {
    /// Success.
    Ok(T),
    /// Failure.
    Err(AuthorityError),
}

/// The callers bucket of a deployment: the sealed principal records the
/// authority publishes, which providers and event listeners read.
pub fn callers_bucket_name(deployment: &str) -> String {
    format!("trellis-callers-{deployment}")
}
