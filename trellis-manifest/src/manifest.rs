//! The typed `trellis.contract.v1` manifest model.
//!
//! One model serves both directions: the parser builds it from a contract
//! module, and [`crate::check`] reads foreign manifests into it (unknown
//! fields are rejected with their path). Maps are `BTreeMap`, and the
//! canonical bytes always go through [`Json`], never through
//! `serde_json::Value` ordering.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::json::Json;

/// The format tag every manifest carries.
pub const FORMAT: &str = "trellis.contract.v1";

/// Error types every contract knows without declaring them under `errors`.
pub const BUILTIN_ERRORS: &[&str] = &[
    "UnexpectedError",
    "ValidationError",
    "AuthError",
    "TransferError",
];

/// Capabilities every contract knows without declaring them.
pub const BUILTIN_CAPABILITIES: &[&str] = &["admin", "service"];

fn is_empty_map<K, V>(map: &BTreeMap<K, V>) -> bool {
    map.is_empty()
}

/// A full contract manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// `<name>@v<N>`.
    pub id: String,
    /// Human name.
    pub display_name: String,
    /// One-line description.
    pub description: String,
    /// What kind of participant this is.
    pub kind: Kind,
    /// Long-form documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
    /// Declared capabilities by global key.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub capabilities: BTreeMap<String, CapabilityMeta>,
    /// Self-contained JSON Schemas by name.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub schemas: BTreeMap<String, Json>,
    /// Exported schema names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<Exports>,
    /// Dependencies on other contracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<Uses>,
    /// Public state stores by name (read, not emitted by the macro yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BTreeMap<String, StateStore>>,
    /// RPCs by `<Group>.<Leaf>` name.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub rpc: BTreeMap<String, RpcMethod>,
    /// Operations by `<Group>.<Leaf>` name.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub operations: BTreeMap<String, Operation>,
    /// Events by `<Group>.<Leaf>` name.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub events: BTreeMap<String, Event>,
    /// Feeds by name (read, not emitted by the macro yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeds: Option<BTreeMap<String, Feed>>,
    /// Declared error types.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub errors: BTreeMap<String, ErrorDecl>,
    /// Job queues by name (read, not emitted: v1 has no job resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<BTreeMap<String, JobQueue>>,
    /// Durable event consumer groups.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub event_consumers: BTreeMap<String, EventConsumerGroup>,
    /// Provisioned resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// Participant kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A service (what `#[trellis::contract]` emits).
    Service,
    /// An application.
    App,
    /// A device.
    Device,
    /// An agent.
    Agent,
}

/// Documentation attached to a manifest entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Docs {
    /// First sentence or line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The full markdown text.
    pub markdown: String,
}

/// Capability metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapabilityMeta {
    /// Human name.
    pub display_name: String,
    /// What holding it allows.
    pub description: String,
    /// What could go wrong when granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consequence: Option<String>,
}

/// Exported schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exports {
    /// Schema names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Vec<String>>,
}

/// A reference to a named schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRef {
    /// The schema name in `schemas`.
    pub schema: String,
}

impl SchemaRef {
    /// A reference to `name`.
    pub fn new(name: impl Into<String>) -> Self {
        SchemaRef {
            schema: name.into(),
        }
    }
}

/// `uses`: grouped (`required` / `optional`) or flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Uses {
    /// `{ required: {...}, optional: {...} }`.
    Grouped(UsesGrouped),
    /// `{ <alias>: {...} }` (treated as required).
    Flat(BTreeMap<String, UseRef>),
}

impl Uses {
    /// Required aliases.
    pub fn required(&self) -> &BTreeMap<String, UseRef> {
        match self {
            Uses::Grouped(g) => &g.required,
            Uses::Flat(map) => map,
        }
    }

    /// Optional aliases (empty for the flat form).
    pub fn optional(&self) -> Option<&BTreeMap<String, UseRef>> {
        match self {
            Uses::Grouped(g) => Some(&g.optional),
            Uses::Flat(_) => None,
        }
    }

    /// Every alias with its reference; required wins over optional.
    pub fn all(&self) -> BTreeMap<&str, &UseRef> {
        let mut out = BTreeMap::new();
        if let Some(optional) = self.optional() {
            for (alias, r) in optional {
                out.insert(alias.as_str(), r);
            }
        }
        for (alias, r) in self.required() {
            out.insert(alias.as_str(), r);
        }
        out
    }
}

/// Grouped `uses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsesGrouped {
    /// Aliases the service cannot run without.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub required: BTreeMap<String, UseRef>,
    /// Aliases the service degrades without.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub optional: BTreeMap<String, UseRef>,
}

/// One dependency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseRef {
    /// The used contract id.
    pub contract: String,
    /// Selected RPCs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<UseCall>,
    /// Selected operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<UseCall>,
    /// Selected events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<UsePubSub>,
    /// Selected feeds (accepted, not emitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeds: Option<Json>,
}

/// `{ call: [names] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseCall {
    /// Names of called surfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Vec<String>>,
}

/// `{ publish: [...], subscribe: [...] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsePubSub {
    /// Events published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Events subscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
}

/// RPC capability gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcCapabilities {
    /// Needed to call; empty means "authenticated".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Vec<String>>,
}

/// A declared error of an RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRef {
    /// The error type (key of top-level `errors`).
    #[serde(rename = "type")]
    pub ty: String,
}

/// `{ direction: "receive" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveTransfer {
    /// Always `receive`.
    pub direction: ReceiveDirection,
}

/// The only RPC transfer direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiveDirection {
    /// The caller receives bytes.
    #[serde(rename = "receive")]
    Receive,
}

/// An RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpcMethod {
    /// `v<N>`.
    pub version: String,
    /// Request subject.
    pub subject: String,
    /// Request schema.
    pub input: SchemaRef,
    /// Response schema.
    pub output: SchemaRef,
    /// Capability gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<RpcCapabilities>,
    /// Declared expected errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ErrorRef>>,
    /// Receive transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<ReceiveTransfer>,
    /// Internal-only RPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// Operation capability gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OperationCapabilities {
    /// Needed to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Vec<String>>,
    /// Needed to observe someone else's operation (defaults to `call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observe: Option<Vec<String>>,
    /// Needed to cancel someone else's operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Vec<String>>,
    /// Needed for control requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Vec<String>>,
}

/// `{ direction: "send", store, key, ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendTransfer {
    /// Always `send`.
    pub direction: SendDirection,
    /// Store alias of this contract.
    pub store: String,
    /// JSON pointer into the input: object key.
    pub key: String,
    /// JSON pointer into the input: content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// JSON pointer into the input: metadata map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Transfer expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// Largest accepted body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// The only operation transfer direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendDirection {
    /// The caller sends bytes.
    #[serde(rename = "send")]
    Send,
}

/// A long-running operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `v<N>`.
    pub version: String,
    /// Start subject (`<subject>.control` for control).
    pub subject: String,
    /// Start input schema.
    pub input: SchemaRef,
    /// Progress schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<SchemaRef>,
    /// Output schema.
    pub output: SchemaRef,
    /// Send transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<SendTransfer>,
    /// Capability gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<OperationCapabilities>,
    /// Signals (accepted, not emitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Json>,
    /// Whether callers may cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<bool>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// Event capability gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCapabilities {
    /// Needed to publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Needed to subscribe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
}

/// An event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// `v<N>`.
    pub version: String,
    /// Subject template.
    pub subject: String,
    /// JSON pointers, one subject token each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
    /// Event schema.
    pub event: SchemaRef,
    /// Capability gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<EventCapabilities>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// A declared error type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDecl {
    /// The error type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its payload schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaRef>,
}

/// Shape of a public state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// One value per namespace.
    Value,
    /// A keyed map per namespace.
    Map,
}

/// A public state store (`state.<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateStore {
    /// Single value or keyed map.
    pub kind: StateKind,
    /// Current value schema.
    pub schema: SchemaRef,
    /// Version label of the current schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<String>,
    /// Older versions still readable, by version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_versions: Option<BTreeMap<String, SchemaRef>>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// Feed capability gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedCapabilities {
    /// Needed to subscribe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
}

/// A feed (`feeds.<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Feed {
    /// `v<N>`.
    pub version: String,
    /// Subscription subject.
    pub subject: String,
    /// Subscription input schema.
    pub input: SchemaRef,
    /// Event schema.
    pub event: SchemaRef,
    /// Capability gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<FeedCapabilities>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// A job queue (`jobs.<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobQueue {
    /// Job payload schema.
    pub payload: SchemaRef,
    /// Job result schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<SchemaRef>,
    /// Deliveries before giving up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<u64>,
    /// Redelivery delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<Vec<u64>>,
    /// Ack wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait_ms: Option<u64>,
    /// Default job deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_deadline_ms: Option<u64>,
    /// Whether jobs report progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<bool>,
    /// Whether jobs keep logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<bool>,
    /// Whether failed jobs go to a dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq: Option<bool>,
    /// Jobs handled at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// Replay policy of a new consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replay {
    /// Only events published after the group is created.
    New,
    /// Every retained event.
    All,
}

/// Ordering guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// One message at a time, in order.
    Strict,
}

/// A durable event consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventConsumerGroup {
    /// Events from `uses` aliases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<BTreeMap<String, Vec<String>>>,
    /// Own events.
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub own: Option<Vec<String>>,
    /// Replay policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    /// Ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
    /// Messages handled at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Ack wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait_ms: Option<u64>,
    /// Deliveries before giving up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<u64>,
    /// Redelivery delays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<Vec<u64>>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// Provisioned resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// KV buckets by alias.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub kv: BTreeMap<String, KvResource>,
    /// Object stores by alias.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub store: BTreeMap<String, StoreResource>,
}

/// A KV bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KvResource {
    /// Why it exists.
    pub purpose: String,
    /// Value schema.
    pub schema: SchemaRef,
    /// Whether the service needs it to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Revisions kept per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u64>,
    /// Expiry; 0 = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<u64>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

/// An object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreResource {
    /// Why it exists.
    pub purpose: String,
    /// Whether the service needs it to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Expiry; 0 = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Per-object limit (format-legal; never emitted by trellis-rs v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
    /// Bucket limit; omitted = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_bytes: Option<u64>,
    /// Documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs: Option<Docs>,
}

impl Manifest {
    /// The manifest as a canonical-ordering [`Json`] value.
    pub fn to_json(&self) -> Json {
        // Serializing plain data structs into a Value cannot fail (no
        // non-string map keys, no failing Serialize impls).
        match serde_json::to_value(self) {
            Ok(value) => Json::from_value(&value),
            Err(_) => Json::Null,
        }
    }

    /// The canonical manifest file bytes (canonical JSON + trailing newline).
    pub fn to_canonical_string(&self) -> String {
        self.canonical_and_digest().0
    }

    /// The canonical file text and the digest, from one JSON rendering.
    pub fn canonical_and_digest(&self) -> (String, String) {
        let json = self.to_json();
        let mut text = json.to_canonical_string();
        text.push('\n');
        (text, crate::digest::digest(&json))
    }

    /// The contract digest (see [`digest`](fn@crate::digest)).
    pub fn digest(&self) -> String {
        crate::digest::digest(&self.to_json())
    }
}
