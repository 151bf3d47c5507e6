//! Public state (`trellis.state@v1`): small per-user JSON entries for apps
//! and devices, served by the deployment authority.
//!
//! Callers never name whose state they reach. The namespace of
//! `State.Get`, `State.Put`, `State.Delete` and `State.List` is derived
//! from the verified caller: its user (a device's owning user, so all of a
//! user's devices share it, the format's `userApp` scope), its contract
//! name (the contract id without `@vN`, so a new version of an app reads
//! what the old one wrote) and a named store. Principals holding the
//! built-in `admin` capability reach any user's namespace through
//! `State.Admin.Get`, `State.Admin.List` and `State.Admin.Delete`
//! ([`StateClient::admin`]).
//!
//! **State versions.** The caller's contract may declare its stores under
//! `state` (`"state": {"settings": {"kind": "map", "schema": …,
//! "stateVersion": "2", "acceptedVersions": {"1": …}}}`); a store it does not
//! declare, or one without `stateVersion`, is at [`DEFAULT_STATE_VERSION`].
//! Every entry records the state version it was written under. Reading an
//! entry written under another version than the reader's store declares
//! (and not listed in its `acceptedVersions`) gives a [`MigrationRequired`]
//! notice instead of a plain entry: a typed [`StateStore`] hands it to its
//! migration hook, or returns [`StateClientError::MigrationRequired`] when
//! it has none. A new contract digest with the same state version reads
//! its entries as they are.
//!
//! **Expiry.** A write may carry a time to live ([`WriteOptions::ttl`]);
//! the entry reports `expiresAt`, is absent for every read and list from
//! then on, and the authority purges it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use trellis_runtime::ConnectOptions;
//! use trellis_runtime::state::{MigrationRequired, PutOutcome, StateClient, WriteOptions};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Settings { theme: String }
//!
//! let state = StateClient::connect(
//!     ConnectOptions::new("nats://127.0.0.1:4222").credentials_file("phone.creds.json"),
//! )
//! .await?;
//! let settings = state
//!     .store::<Settings>("settings")
//!     .migrate(|old: &MigrationRequired| {
//!         // State version "1" stored a bare string.
//!         let theme = old.entry.value.as_str().ok_or("not a string")?;
//!         Ok(Settings { theme: theme.to_owned() })
//!     });
//! settings.put("ui", &Settings { theme: "dark".into() }).await?;
//! if let Some(entry) = settings.get("ui").await? {
//!     // Write a migrated value back under the current version, unless
//!     // someone else wrote in between.
//!     let options = WriteOptions::new().if_revision(&entry.revision);
//!     if let PutOutcome::Conflict { .. } = settings.put_with("ui", &entry.value, options).await? {
//!         // Reread and retry.
//!     }
//! }
//! // Only if absent, gone after a minute.
//! let once = WriteOptions::new().if_absent().ttl(Duration::from_secs(60));
//! settings.put_with("banner", &Settings { theme: "light".into() }, once).await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::builtin_errors::BuiltinError;
use crate::connect::{ConnectError, ConnectOptions, connect_client};
use crate::rpc::{CallError, RpcClient, RpcSpec};
use crate::runtime::ServiceRuntime;

/// The contract id of public state.
pub const STATE_CONTRACT: &str = "trellis.state@v1";
/// The canonical manifest of `trellis.state@v1` (the published contract).
pub const STATE_MANIFEST: &str = include_str!("../contracts/trellis.state@v1.json");
/// The digest of [`STATE_MANIFEST`], the published one.
pub const STATE_DIGEST: &str = "XfWDYLTBlYFjDqMPBEXrTBccZbFvHp0MnqscehdRKT4";
/// The capability the `State.Admin.*` RPCs require.
pub const ADMIN_CAPABILITY: &str = "admin";
/// The state version of a store its contract does not declare (or
/// declares without `stateVersion`).
pub const DEFAULT_STATE_VERSION: &str = "v1";
/// Longest key (bytes).
pub const MAX_KEY_BYTES: usize = 256;
/// Largest encoded value (bytes).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most entries one list page returns (a larger `limit` is lowered to it).
pub const MAX_LIST_LIMIT: u64 = 1000;

const ADMIN_GATE: &[&str] = &[ADMIN_CAPABILITY];

/// The `State.Get` RPC.
pub const GET: RpcSpec = RpcSpec {
    name: "State.Get",
    subject: "rpc.v1.State.Get",
    call: None,
};
/// The `State.Put` RPC.
pub const PUT: RpcSpec = RpcSpec {
    name: "State.Put",
    subject: "rpc.v1.State.Put",
    call: None,
};
/// The `State.Delete` RPC.
pub const DELETE: RpcSpec = RpcSpec {
    name: "State.Delete",
    subject: "rpc.v1.State.Delete",
    call: None,
};
/// The `State.List` RPC.
pub const LIST: RpcSpec = RpcSpec {
    name: "State.List",
    subject: "rpc.v1.State.List",
    call: None,
};
/// The `State.Admin.Get` RPC (requires [`ADMIN_CAPABILITY`]).
pub const ADMIN_GET: RpcSpec = RpcSpec {
    name: "State.Admin.Get",
    subject: "rpc.v1.State.Admin.Get",
    call: Some(ADMIN_GATE),
};
/// The `State.Admin.List` RPC (requires [`ADMIN_CAPABILITY`]).
pub const ADMIN_LIST: RpcSpec = RpcSpec {
    name: "State.Admin.List",
    subject: "rpc.v1.State.Admin.List",
    call: Some(ADMIN_GATE),
};
/// The `State.Admin.Delete` RPC (requires [`ADMIN_CAPABILITY`]).
pub const ADMIN_DELETE: RpcSpec = RpcSpec {
    name: "State.Admin.Delete",
    subject: "rpc.v1.State.Admin.Delete",
    call: Some(ADMIN_GATE),
};
/// The RPCs every principal may call on its own namespace.
pub const CALLER_RPCS: [RpcSpec; 4] = [GET, PUT, DELETE, LIST];
/// The RPCs only principals holding [`ADMIN_CAPABILITY`] may call.
pub const ADMIN_RPCS: [RpcSpec; 3] = [ADMIN_GET, ADMIN_LIST, ADMIN_DELETE];

/// A stored entry as the wire carries it (`StateEntry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The key; absent for the single entry of a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The JSON value.
    pub value: Value,
    /// The revision (decimal), for compare-and-set.
    pub revision: String,
    /// When it was written (RFC 3339, UTC).
    pub updated_at: String,
    /// When it expires (RFC 3339, UTC), if written with a time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The literal `true` (what `"const": true` allows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct True;

impl Serialize for True {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for True {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            Ok(True)
        } else {
            Err(serde::de::Error::custom("expected `true`"))
        }
    }
}

/// An entry written under another state version than the reader's store
/// declares (`StateMigrationRequired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRequired {
    /// Always `true` on the wire.
    pub migration_required: True,
    /// The entry as stored.
    pub entry: Entry,
    /// The state version it was written under.
    pub state_version: String,
    /// The reader's state version for the store.
    pub current_state_version: String,
    /// The digest of the contract that wrote it (`-` when unknown).
    pub writer_contract_digest: String,
}

/// What a read found (`StateGetResponse`, `StateAdminGetResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LookupWire", into = "LookupWire")]
pub enum Lookup {
    /// No entry (or an expired one).
    Missing,
    /// The entry, at the reader's state version (or one it accepts).
    Found(Entry),
    /// An entry the reader must migrate first.
    MigrationRequired(Box<MigrationRequired>),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    found: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migration_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_state_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    writer_contract_digest: Option<String>,
}

impl TryFrom<LookupWire> for Lookup {
    type Error = String;

    fn try_from(w: LookupWire) -> Result<Self, String> {
        if w.migration_required == Some(true) {
            let missing = |what: &str| format!("a migration notice without `{what}`");
            return Ok(Lookup::MigrationRequired(Box::new(MigrationRequired {
                migration_required: True,
                entry: w.entry.ok_or_else(|| missing("entry"))?,
                state_version: w.state_version.ok_or_else(|| missing("stateVersion"))?,
                current_state_version: w
                    .current_state_version
                    .ok_or_else(|| missing("currentStateVersion"))?,
                writer_contract_digest: w
                    .writer_contract_digest
                    .ok_or_else(|| missing("writerContractDigest"))?,
            })));
        }
        match (w.found, w.entry) {
            (Some(true), Some(entry)) => Ok(Lookup::Found(entry)),
            (Some(false), _) => Ok(Lookup::Missing),
            _ => Err("neither `found` with an entry nor a migration notice".to_owned()),
        }
    }
}

impl From<Lookup> for LookupWire {
    fn from(l: Lookup) -> Self {
        let mut w = LookupWire {
            found: None,
            migration_required: None,
            entry: None,
            state_version: None,
            current_state_version: None,
            writer_contract_digest: None,
        };
        match l {
            Lookup::Missing => w.found = Some(false),
            Lookup::Found(entry) => {
                w.found = Some(true);
                w.entry = Some(entry);
            }
            Lookup::MigrationRequired(m) => {
                w.migration_required = Some(true);
                w.entry = Some(m.entry);
                w.state_version = Some(m.state_version);
                w.current_state_version = Some(m.current_state_version);
                w.writer_contract_digest = Some(m.writer_contract_digest);
            }
        }
        w
    }
}

/// One entry of a list page: plain, or one the reader must migrate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Listed {
    /// An entry the reader must migrate first.
    MigrationRequired(Box<MigrationRequired>),
    /// An entry at the reader's state version (or one it accepts).
    Entry(Entry),
}

impl Listed {
    fn into_lookup(self) -> Lookup {
        match self {
            Listed::Entry(e) => Lookup::Found(e),
            Listed::MigrationRequired(m) => Lookup::MigrationRequired(m),
        }
    }
}

/// `State.Get` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRequest {
    /// Store name.
    pub store: String,
    /// Key; absent for a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The revision condition of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Expected {
    /// Write whatever is there (the field is absent).
    #[default]
    Any,
    /// Write only if there is no entry (`"expectedRevision": null`).
    Absent,
    /// Write only if the entry is at this revision.
    Revision(String),
}

impl Expected {
    fn is_any(&self) -> bool {
        *self == Expected::Any
    }
}

mod expected_serde {
    use super::*;

    // Only called when the field is present (`Any` is skipped).
    pub(super) fn serialize<S: Serializer>(e: &Expected, s: S) -> Result<S::Ok, S::Error> {
        match e {
            Expected::Revision(r) => s.serialize_str(r),
            Expected::Any | Expected::Absent => s.serialize_none(),
        }
    }

    // Only called when the field is present: `null` means "absent".
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Expected, D::Error> {
        Ok(match Option::<String>::deserialize(d)? {
            Some(r) => Expected::Revision(r),
            None => Expected::Absent,
        })
    }
}

/// `State.Put` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRequest {
    /// Store name.
    pub store: String,
    /// Key; absent for a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The JSON value.
    pub value: Value,
    /// The revision condition.
    #[serde(
        default,
        skip_serializing_if = "Expected::is_any",
        with = "expected_serde"
    )]
    pub expected_revision: Expected,
    /// Time to live in milliseconds (at least 1), if the entry expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// What a write did (`StatePutResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PutWire", into = "PutWire")]
pub enum PutResponse {
    /// Written; the entry as stored now.
    Applied(Entry),
    /// Not written: the revision condition failed.
    NotApplied {
        /// The current entry, if there is one.
        current: Option<Listed>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutWire {
    applied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    found: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<Listed>,
}

impl TryFrom<PutWire> for PutResponse {
    type Error = String;

    fn try_from(w: PutWire) -> Result<Self, String> {
        match (w.applied, w.entry) {
            (true, Some(Listed::Entry(e))) => Ok(PutResponse::Applied(e)),
            (true, _) => Err("an applied write without its entry".to_owned()),
            (false, entry) => Ok(PutResponse::NotApplied {
                current: entry.filter(|_| w.found != Some(false)),
            }),
        }
    }
}

impl From<PutResponse> for PutWire {
    fn from(p: PutResponse) -> Self {
        match p {
            PutResponse::Applied(e) => PutWire {
                applied: true,
                found: None,
                entry: Some(Listed::Entry(e)),
            },
            PutResponse::NotApplied { current } => PutWire {
                applied: false,
                found: Some(current.is_some()),
                entry: current,
            },
        }
    }
}

/// `State.Delete` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    /// Store name.
    pub store: String,
    /// Key; absent for a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Delete only if the entry is at this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<String>,
}

/// `State.Delete` and `State.Admin.Delete` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResponse {
    /// Whether an entry was deleted (`false`: none, or not at the
    /// expected revision).
    pub deleted: bool,
}

/// `State.List` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Store name.
    pub store: String,
    /// Only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Entries to skip (in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Page size (lowered to [`MAX_LIST_LIMIT`]).
    pub limit: u64,
}

/// `State.List` and `State.Admin.List` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// The page, in key order.
    #[serde(default)]
    pub entries: Vec<Listed>,
    /// Matching (unexpired) entries in all.
    pub count: u64,
    /// The offset of this page.
    pub offset: u64,
    /// The page size used.
    pub limit: u64,
    /// Offset of the next page, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

/// The user an admin request names (`StateUserTarget`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateUserTarget {
    /// Where the identity comes from; this deployment knows `trellis`
    /// (its principal registry) unless `user_id` is given.
    pub origin: String,
    /// The identity at `origin` (with origin `trellis`, the user's
    /// principal id).
    pub id: String,
    /// The user's principal id, which wins over `origin`/`id` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl StateUserTarget {
    /// The user whose principal id is `id`.
    pub fn principal(id: impl Into<String>) -> StateUserTarget {
        StateUserTarget {
            origin: "trellis".to_owned(),
            id: id.into(),
            user_id: None,
        }
    }
}

/// The scopes of public state (`StateScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateScope {
    /// Per user and contract (what every caller's own requests reach).
    #[serde(rename = "userApp")]
    UserApp,
    /// Per device and contract (this deployment keeps none: a device's
    /// entries are its user's).
    #[serde(rename = "deviceApp")]
    DeviceApp,
}

/// Whose namespace an admin request reaches, tagged by `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope")]
pub enum StateTarget {
    /// A user's namespace.
    #[serde(rename = "userApp")]
    UserApp {
        /// The user.
        user: StateUserTarget,
    },
    /// A device's namespace.
    #[serde(rename = "deviceApp")]
    DeviceApp {
        /// The device's principal id.
        #[serde(rename = "deviceId")]
        device_id: String,
    },
}

impl StateTarget {
    /// The scope this target names.
    pub fn scope(&self) -> StateScope {
        match self {
            StateTarget::UserApp { .. } => StateScope::UserApp,
            StateTarget::DeviceApp { .. } => StateScope::DeviceApp,
        }
    }
}

/// The namespace and store an admin request reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminScope {
    /// Scope and whose namespace.
    #[serde(flatten)]
    pub target: StateTarget,
    /// The contract whose namespace (its name is the namespace part).
    pub contract_id: String,
    /// The digest whose state declarations decide the current state
    /// version (the accepted one, or a still-live earlier one).
    pub contract_digest: String,
    /// Store name.
    pub store: String,
}

/// `State.Admin.Get` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminGetRequest {
    /// Whose namespace and which store.
    #[serde(flatten)]
    pub scope: AdminScope,
    /// Key; absent for a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `State.Admin.List` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminListRequest {
    /// Whose namespace and which store.
    #[serde(flatten)]
    pub scope: AdminScope,
    /// Only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Entries to skip (in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Page size (lowered to [`MAX_LIST_LIMIT`]).
    pub limit: u64,
}

/// `State.Admin.Delete` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminDeleteRequest {
    /// Whose namespace and which store.
    #[serde(flatten)]
    pub scope: AdminScope,
    /// Key; absent for a `value` store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Delete only if the entry is at this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<String>,
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds
/// (`2026-12-04T14:06:02.123Z`), the `date-time` strings entries carry.
pub fn rfc3339_ms(ms: u64) -> String {
    crate::wire::time::rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Failures of the Rust state client.
#[derive(Debug, thiserror::Error)]
pub enum StateClientError {
    /// The call failed (transport, authentication, a refused gate, ...).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The service refused the request (`ValidationError`, `AuthError`,
    /// `UnexpectedError`).
    #[error(transparent)]
    Refused(#[from] BuiltinError),
    /// A value does not encode.
    #[error("the value does not encode: {0}")]
    Encode(String),
    /// A stored value does not decode.
    #[error("entry {key:?} does not decode: {message}")]
    Decode {
        /// Key (`None`: a `value` store's entry).
        key: Option<String>,
        /// Why.
        message: String,
    },
    /// The entry was written under another state version and the store
    /// has no migration hook.
    #[error(
        "entry {:?} was written under state version `{}`; this store is at `{}` and has no migration hook",
        .0.entry.key, .0.state_version, .0.current_state_version
    )]
    MigrationRequired(Box<MigrationRequired>),
    /// The migration hook refused an entry.
    #[error("migrating entry {key:?} from state version `{from}` failed: {message}")]
    Migration {
        /// Key.
        key: Option<String>,
        /// The state version it was written under.
        from: String,
        /// The hook's reason.
        message: String,
    },
}

/// A client of `trellis.state@v1`.
#[derive(Debug, Clone)]
pub struct StateClient {
    rpc: RpcClient,
}

impl StateClient {
    /// Connects (the credentials in `options` decide the namespace).
    pub async fn connect(options: ConnectOptions) -> Result<StateClient, ConnectError> {
        let runtime = connect_client(options, STATE_CONTRACT).await?;
        Ok(StateClient::new(runtime))
    }

    pub(crate) fn new(runtime: ServiceRuntime) -> StateClient {
        StateClient {
            rpc: RpcClient::new(runtime),
        }
    }

    async fn call<I: Serialize, O: DeserializeOwned>(
        &self,
        spec: RpcSpec,
        input: &I,
    ) -> Result<O, StateClientError> {
        Ok(self
            .rpc
            .call_identified::<I, O, BuiltinError>(spec.name, spec.subject, input)
            .await??)
    }

    /// `State.Get`: reads one entry of the caller's namespace.
    pub async fn get_raw(&self, request: &GetRequest) -> Result<Lookup, StateClientError> {
        self.call(GET, request).await
    }

    /// `State.Put`: writes one entry of the caller's namespace.
    pub async fn put_raw(&self, request: &PutRequest) -> Result<PutResponse, StateClientError> {
        self.call(PUT, request).await
    }

    /// `State.Delete`: deletes one entry; `false` when there was none (or
    /// it was not at the expected revision).
    pub async fn delete_raw(&self, request: &DeleteRequest) -> Result<bool, StateClientError> {
        Ok(self
            .call::<_, DeleteResponse>(DELETE, request)
            .await?
            .deleted)
    }

    /// `State.List`: one page of a store's entries, in key order.
    pub async fn list_raw(&self, request: &ListRequest) -> Result<ListResponse, StateClientError> {
        self.call(LIST, request).await
    }

    /// The `State.Admin.*` RPCs (the caller needs [`ADMIN_CAPABILITY`]).
    pub fn admin(&self) -> StateAdmin {
        StateAdmin {
            client: self.clone(),
        }
    }

    /// A typed view of one named store of the caller's namespace.
    pub fn store<T>(&self, name: &str) -> StateStore<T> {
        StateStore {
            client: self.clone(),
            name: name.to_owned(),
            migrate: None,
            _type: PhantomData,
        }
    }
}

/// The operator side of public state: any user's entries, for principals
/// holding [`ADMIN_CAPABILITY`] (others get [`CallError::Forbidden`]).
#[derive(Debug, Clone)]
pub struct StateAdmin {
    client: StateClient,
}

impl StateAdmin {
    /// `State.Admin.Get`.
    pub async fn get(&self, request: &AdminGetRequest) -> Result<Lookup, StateClientError> {
        self.client.call(ADMIN_GET, request).await
    }

    /// `State.Admin.List`.
    pub async fn list(&self, request: &AdminListRequest) -> Result<ListResponse, StateClientError> {
        self.client.call(ADMIN_LIST, request).await
    }

    /// `State.Admin.Delete`; `false` when there was no entry (or it was
    /// not at the expected revision).
    pub async fn delete(&self, request: &AdminDeleteRequest) -> Result<bool, StateClientError> {
        Ok(self
            .client
            .call::<_, DeleteResponse>(ADMIN_DELETE, request)
            .await?
            .deleted)
    }
}

type MigrateFn<T> = Arc<dyn Fn(&MigrationRequired) -> Result<T, String> + Send + Sync>;

/// How an entry written under another state version became `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The state version it was written under.
    pub from: String,
    /// The reader's state version.
    pub to: String,
    /// The digest of the contract that wrote it.
    pub writer_contract_digest: String,
}

/// A typed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEntry<T> {
    /// Key (`None`: a `value` store's entry).
    pub key: Option<String>,
    /// The value (migrated if it was written under another version).
    pub value: T,
    /// Revision, for [`WriteOptions::if_revision`].
    pub revision: String,
    /// When it was written (RFC 3339).
    pub updated_at: String,
    /// When it expires (RFC 3339), if it does.
    pub expires_at: Option<String>,
    /// Set when the migration hook produced `value`.
    pub migrated: Option<Migrated>,
}

/// A typed page of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePage<T> {
    /// Entries in key order.
    pub entries: Vec<StateEntry<T>>,
    /// Matching entries in all.
    pub count: u64,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
}

/// The condition and expiry of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    expected: Expected,
    ttl: Option<Duration>,
}

impl WriteOptions {
    /// Write unconditionally, never expire.
    pub fn new() -> WriteOptions {
        WriteOptions::default()
    }

    /// Write only if there is no entry (an expired one counts as none).
    pub fn if_absent(mut self) -> WriteOptions {
        self.expected = Expected::Absent;
        self
    }

    /// Write only if the entry is still at `revision`.
    pub fn if_revision(mut self, revision: &str) -> WriteOptions {
        self.expected = Expected::Revision(revision.to_owned());
        self
    }

    /// The entry expires after `ttl` (rounded up to whole milliseconds).
    pub fn ttl(mut self, ttl: Duration) -> WriteOptions {
        self.ttl = Some(ttl);
        self
    }

    fn ttl_ms(&self) -> Option<u64> {
        self.ttl.map(|d| {
            let ms = d.as_nanos().div_ceil(1_000_000);
            u64::try_from(ms).unwrap_or(u64::MAX).max(1)
        })
    }
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome<T> {
    /// Written.
    Applied(StateEntry<T>),
    /// Not written: the condition failed. `current` is the entry there
    /// now, as [`StateStore::get`] reads it.
    Conflict {
        /// The current entry, if any.
        current: Option<StateEntry<T>>,
    },
}

/// One named store of the caller's namespace, holding `T` values.
///
/// Map stores address entries by key ([`get`](Self::get),
/// [`put`](Self::put), ...); a store its contract declares with kind
/// `value` holds one entry ([`get_value`](Self::get_value),
/// [`put_value`](Self::put_value), ...).
pub struct StateStore<T> {
    client: StateClient,
    name: String,
    migrate: Option<MigrateFn<T>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for StateStore<T> {
    fn clone(&self) -> Self {
        StateStore {
            client: self.client.clone(),
            name: self.name.clone(),
            migrate: self.migrate.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for StateStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("name", &self.name)
            .field("migrate", &self.migrate.is_some())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> StateStore<T> {
    /// Sets the migration hook: it gets every entry written under another
    /// state version than the caller's contract declares for this store
    /// (the notice carries both versions, the writer's digest and the raw
    /// entry) and returns the value in the current shape. The migrated
    /// value is not written back by itself.
    pub fn migrate<F>(mut self, hook: F) -> Self
    where
        F: Fn(&MigrationRequired) -> Result<T, String> + Send + Sync + 'static,
    {
        self.migrate = Some(Arc::new(hook));
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn decode(entry: Entry) -> Result<StateEntry<T>, StateClientError> {
        let value = serde_json::from_value(entry.value).map_err(|e| StateClientError::Decode {
            key: entry.key.clone(),
            message: e.to_string(),
        })?;
        Ok(StateEntry {
            key: entry.key,
            value,
            revision: entry.revision,
            updated_at: entry.updated_at,
            expires_at: entry.expires_at,
            migrated: None,
        })
    }

    fn typed(&self, found: Lookup) -> Result<Option<StateEntry<T>>, StateClientError> {
        match found {
            Lookup::Missing => Ok(None),
            Lookup::Found(entry) => Self::decode(entry).map(Some),
            Lookup::MigrationRequired(notice) => {
                let Some(hook) = &self.migrate else {
                    return Err(StateClientError::MigrationRequired(notice));
                };
                let value = hook(&notice).map_err(|message| StateClientError::Migration {
                    key: notice.entry.key.clone(),
                    from: notice.state_version.clone(),
                    message,
                })?;
                let MigrationRequired {
                    entry,
                    state_version,
                    current_state_version,
                    writer_contract_digest,
                    ..
                } = *notice;
                Ok(Some(StateEntry {
                    key: entry.key,
                    value,
                    revision: entry.revision,
                    updated_at: entry.updated_at,
                    expires_at: entry.expires_at,
                    migrated: Some(Migrated {
                        from: state_version,
                        to: current_state_version,
                        writer_contract_digest,
                    }),
                }))
            }
        }
    }

    async fn read(&self, key: Option<&str>) -> Result<Option<StateEntry<T>>, StateClientError> {
        let found = self
            .client
            .get_raw(&GetRequest {
                store: self.name.clone(),
                key: key.map(str::to_owned),
            })
            .await?;
        self.typed(found)
    }

    async fn write(
        &self,
        key: Option<&str>,
        value: &T,
        options: WriteOptions,
    ) -> Result<PutOutcome<T>, StateClientError> {
        let value =
            serde_json::to_value(value).map_err(|e| StateClientError::Encode(e.to_string()))?;
        let ttl_ms = options.ttl_ms();
        let request = PutRequest {
            store: self.name.clone(),
            key: key.map(str::to_owned),
            value,
            expected_revision: options.expected,
            ttl_ms,
        };
        match self.client.put_raw(&request).await? {
            PutResponse::Applied(entry) => Ok(PutOutcome::Applied(Self::decode(entry)?)),
            PutResponse::NotApplied { current } => Ok(PutOutcome::Conflict {
                current: match current {
                    Some(listed) => self.typed(listed.into_lookup())?,
                    None => None,
                },
            }),
        }
    }

    async fn remove(
        &self,
        key: Option<&str>,
        expected_revision: Option<&str>,
    ) -> Result<bool, StateClientError> {
        self.client
            .delete_raw(&DeleteRequest {
                store: self.name.clone(),
                key: key.map(str::to_owned),
                expected_revision: expected_revision.map(str::to_owned),
            })
            .await
    }

    /// Reads `key` (`None` when absent or expired).
    pub async fn get(&self, key: &str) -> Result<Option<StateEntry<T>>, StateClientError> {
        self.read(Some(key)).await
    }

    /// Writes `key` unconditionally; returns the new revision.
    pub async fn put(&self, key: &str, value: &T) -> Result<String, StateClientError> {
        match self.write(Some(key), value, WriteOptions::new()).await? {
            PutOutcome::Applied(entry) => Ok(entry.revision),
            PutOutcome::Conflict { .. } => Err(StateClientError::Decode {
                key: Some(key.to_owned()),
                message: "an unconditional write was not applied".to_owned(),
            }),
        }
    }

    /// Writes `key` with a condition and an expiry.
    pub async fn put_with(
        &self,
        key: &str,
        value: &T,
        options: WriteOptions,
    ) -> Result<PutOutcome<T>, StateClientError> {
        self.write(Some(key), value, options).await
    }

    /// Deletes `key`; `false` when absent.
    pub async fn delete(&self, key: &str) -> Result<bool, StateClientError> {
        self.remove(Some(key), None).await
    }

    /// Deletes `key` only if it is at `revision`; `false` when absent or
    /// at another revision.
    pub async fn delete_if(&self, key: &str, revision: &str) -> Result<bool, StateClientError> {
        self.remove(Some(key), Some(revision)).await
    }

    /// Reads the single entry of a `value` store.
    pub async fn get_value(&self) -> Result<Option<StateEntry<T>>, StateClientError> {
        self.read(None).await
    }

    /// Writes the single entry of a `value` store.
    pub async fn put_value(
        &self,
        value: &T,
        options: WriteOptions,
    ) -> Result<PutOutcome<T>, StateClientError> {
        self.write(None, value, options).await
    }

    /// Deletes the single entry of a `value` store; `false` when absent.
    pub async fn delete_value(&self) -> Result<bool, StateClientError> {
        self.remove(None, None).await
    }

    /// Lists entries whose key starts with `prefix`, in key order
    /// (`limit` is lowered to [`MAX_LIST_LIMIT`]). Entries written under
    /// another state version go through the migration hook.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<StatePage<T>, StateClientError> {
        let page = self
            .client
            .list_raw(&ListRequest {
                store: self.name.clone(),
                prefix: prefix.map(str::to_owned),
                offset: Some(offset),
                limit,
            })
            .await?;
        let mut entries = Vec::with_capacity(page.entries.len());
        for listed in page.entries {
            if let Some(entry) = self.typed(listed.into_lookup())? {
                entries.push(entry);
            }
        }
        Ok(StatePage {
            entries,
            count: page.count,
            next_offset: page.next_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shipped_manifest_is_the_published_contract() {
        let checked =
            trellis_manifest::check_manifest_with(STATE_MANIFEST, trellis_manifest::Rules::Format)
                .expect("valid manifest");
        assert_eq!(checked.manifest.id, STATE_CONTRACT);
        assert_eq!(checked.digest, STATE_DIGEST);
        assert_eq!(
            trellis_manifest::digest_text(STATE_MANIFEST).expect("digest"),
            "XfWDYLTBlYFjDqMPBEXrTBccZbFvHp0MnqscehdRKT4"
        );
        assert!(checked.canonical, "the shipped file is canonical JSON");
        assert!(checked.ignored.is_empty(), "{:?}", checked.ignored);
        let names: Vec<&str> = checked.manifest.rpc.keys().map(String::as_str).collect();
        let mut specs: Vec<&str> = CALLER_RPCS
            .iter()
            .chain(&ADMIN_RPCS)
            .map(|s| s.name)
            .collect();
        specs.sort_unstable();
        assert_eq!(names, specs, "exactly the seven RPCs");
        for spec in CALLER_RPCS.iter().chain(&ADMIN_RPCS) {
            let rpc = &checked.manifest.rpc[spec.name];
            assert_eq!(rpc.subject, spec.subject);
            let gate = rpc.capabilities.as_ref().and_then(|c| c.call.clone());
            assert_eq!(
                gate,
                spec.call
                    .map(|caps| caps.iter().map(|c| (*c).to_owned()).collect())
            );
        }
    }

    #[test]
    fn wire_shapes_follow_the_published_schemas() {
        let entry = Entry {
            key: Some("ui".into()),
            value: json!({"dark": true}),
            revision: "7".into(),
            updated_at: rfc3339_ms(0),
            expires_at: None,
        };
        assert_eq!(
            serde_json::to_value(Lookup::Found(entry.clone())).expect("json"),
            json!({"found": true, "entry": {"key": "ui", "value": {"dark": true}, "revision": "7", "updatedAt": "1970-01-01T00:00:00.000Z"}})
        );
        assert_eq!(
            serde_json::to_value(Lookup::Missing).expect("json"),
            json!({"found": false})
        );
        let notice = MigrationRequired {
            migration_required: True,
            entry: entry.clone(),
            state_version: "1".into(),
            current_state_version: "2".into(),
            writer_contract_digest: "d".into(),
        };
        let wire = serde_json::to_value(Lookup::MigrationRequired(Box::new(notice.clone())))
            .expect("json");
        assert_eq!(wire["migrationRequired"], json!(true));
        assert_eq!(
            serde_json::from_value::<Lookup>(wire).expect("back"),
            Lookup::MigrationRequired(Box::new(notice.clone()))
        );
        let listed: Vec<Listed> = serde_json::from_value(json!([
            serde_json::to_value(&entry).expect("json"),
            serde_json::to_value(&notice).expect("json"),
        ]))
        .expect("list items");
        assert!(matches!(listed[0], Listed::Entry(_)));
        assert!(matches!(listed[1], Listed::MigrationRequired(_)));

        // `expectedRevision`: absent, null (only if absent) or a revision.
        let put = |expected| PutRequest {
            store: "s".into(),
            key: None,
            value: json!(1),
            expected_revision: expected,
            ttl_ms: None,
        };
        let text = |p: &PutRequest| serde_json::to_string(p).expect("json");
        assert_eq!(text(&put(Expected::Any)), r#"{"store":"s","value":1}"#);
        assert_eq!(
            text(&put(Expected::Absent)),
            r#"{"store":"s","value":1,"expectedRevision":null}"#
        );
        for expected in [
            Expected::Any,
            Expected::Absent,
            Expected::Revision("3".into()),
        ] {
            let back: PutRequest =
                serde_json::from_str(&text(&put(expected.clone()))).expect("back");
            assert_eq!(back.expected_revision, expected);
        }
        let conflict: PutResponse =
            serde_json::from_value(json!({"applied": false, "found": false})).expect("conflict");
        assert_eq!(conflict, PutResponse::NotApplied { current: None });

        let admin = AdminGetRequest {
            scope: AdminScope {
                target: StateTarget::UserApp {
                    user: StateUserTarget::principal("alice"),
                },
                contract_id: "notes@v1".into(),
                contract_digest: "d".into(),
                store: "settings".into(),
            },
            key: Some("ui".into()),
        };
        let wire = serde_json::to_value(&admin).expect("json");
        assert_eq!(
            wire,
            json!({"scope": "userApp", "user": {"origin": "trellis", "id": "alice"}, "contractId": "notes@v1", "contractDigest": "d", "store": "settings", "key": "ui"})
        );
        assert_eq!(
            serde_json::from_value::<AdminGetRequest>(wire).expect("back"),
            admin
        );
        let device: AdminDeleteRequest = serde_json::from_value(json!({"scope": "deviceApp", "deviceId": "p", "contractId": "c@v1", "contractDigest": "d", "store": "s"})).expect("device");
        assert_eq!(device.scope.target.scope(), StateScope::DeviceApp);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(rfc3339_ms(1_796_392_800_500), "2026-12-04T14:00:00.500Z");
    }
}
