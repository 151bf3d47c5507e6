//! Public state (`trellis.state@v1`): per-user JSON values for apps and
//! devices, served by the deployment authority.
//!
//! Callers never name a scope. The namespace of every request is derived
//! from the verified caller: its user (a device's owning user, so all of a
//! user's devices share it), its contract name (the contract id without
//! `@vN`, so a new version of an app reads what the old one wrote)
//! and a named store. Every entry records the contract id and digest that
//! wrote it; a typed [`StateStore`] runs its migration hook on entries
//! written by another contract version.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_runtime::ConnectOptions;
//! use trellis_runtime::state::{StateClient, Writer};
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
//!     .migrate(|writer: &Writer, old: serde_json::Value| {
//!         // v1 stored a bare string.
//!         Ok(Settings { theme: old.as_str().unwrap_or("light").to_owned() })
//!     });
//! settings.put("ui", &Settings { theme: "dark".into() }).await?;
//! let entry = settings.get("ui").await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connect::{ConnectError, ConnectOptions, connect_client};
use crate::rpc::{CallError, RpcClient, RpcSpec};
use crate::runtime::ServiceRuntime;

/// The contract id of public state.
pub const STATE_CONTRACT: &str = "trellis.state@v1";
/// The canonical manifest of `trellis.state@v1`.
pub const STATE_MANIFEST: &str = include_str!("../contracts/trellis.state@v1.json");
/// Longest key (bytes).
pub const MAX_KEY_BYTES: usize = 256;
/// Largest encoded value (bytes).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most entries one `list` page returns.
pub const MAX_LIST_LIMIT: u64 = 1000;

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

/// Which contract version wrote (or reads) an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Writer {
    /// Contract id (e.g. `notes@v1`); `None` for callers without one.
    pub contract: Option<String>,
    /// The accepted digest of that contract when it wrote.
    pub digest: Option<String>,
}

/// `State.Get` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetRequest {
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
}

/// An entry as stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEntry {
    /// Key.
    pub key: String,
    /// JSON value.
    pub value: Value,
    /// Revision (for compare-and-set).
    pub revision: u64,
    /// Who wrote it.
    pub writer: Writer,
    /// When (unix ms).
    pub updated_ms: u64,
}

/// `State.Get` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetReply {
    /// The entry, if present.
    pub entry: Option<RawEntry>,
    /// The caller's own contract version.
    pub reader: Writer,
}

/// `State.Put` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutRequest {
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// JSON value.
    pub value: Value,
    /// Write only if the entry is at this revision (`0`: only if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
}

/// `State.Put` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutReply {
    /// The new revision.
    pub revision: u64,
}

/// `State.Delete` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRequest {
    /// Store name.
    pub store: String,
    /// Key.
    pub key: String,
    /// Delete only if the entry is at this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<u64>,
}

/// `State.Delete` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReply {
    /// Whether an entry was deleted.
    pub deleted: bool,
}

/// `State.List` input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRequest {
    /// Store name.
    pub store: String,
    /// Only keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Entries to skip (in key order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Page size (1 to 1000).
    pub limit: u64,
}

/// `State.List` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListReply {
    /// The page, in key order.
    pub entries: Vec<RawEntry>,
    /// Matching entries in all.
    pub total: u64,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
    /// The caller's own contract version.
    pub reader: Writer,
}

/// Why a state request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", tag = "error")]
pub enum StateError {
    /// The expected revision did not match.
    #[error("the entry is at revision {current} (expected {expected})")]
    Conflict {
        /// The revision asked for.
        expected: u64,
        /// The current revision (`0`: absent).
        current: u64,
    },
    /// The key or store name is unusable.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// `key`, `store` or `limit`.
        what: String,
        /// Why.
        message: String,
    },
    /// The value is larger than allowed.
    #[error("the value is {size} bytes; at most {limit} are allowed")]
    TooLarge {
        /// Encoded size.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// The state service could not read or write its storage.
    #[error("state storage failed: {message}")]
    Unavailable {
        /// Details.
        message: String,
    },
}

/// Failures of the Rust state client.
#[derive(Debug, thiserror::Error)]
pub enum StateClientError {
    /// The call failed (transport, authentication, ...).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The service refused the request.
    #[error(transparent)]
    Refused(#[from] StateError),
    /// A value does not encode.
    #[error("the value does not encode: {0}")]
    Encode(String),
    /// A stored value does not decode (and no migration applied).
    #[error("entry `{key}` does not decode: {message}")]
    Decode {
        /// Key.
        key: String,
        /// Why.
        message: String,
    },
    /// The migration hook refused an entry.
    #[error("migrating entry `{key}` (written by {writer:?}) failed: {message}")]
    Migration {
        /// Key.
        key: String,
        /// Who wrote it.
        writer: Writer,
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
            .call_identified::<I, O, StateError>(spec.name, spec.subject, input)
            .await??)
    }

    /// Reads a raw entry.
    pub async fn get_raw(&self, store: &str, key: &str) -> Result<GetReply, StateClientError> {
        let input = GetRequest {
            store: store.to_owned(),
            key: key.to_owned(),
        };
        self.call(GET, &input).await
    }

    /// Writes a raw value; `expected_revision` makes it a compare-and-set
    /// (`Some(0)`: only if absent).
    pub async fn put_raw(
        &self,
        store: &str,
        key: &str,
        value: Value,
        expected_revision: Option<u64>,
    ) -> Result<u64, StateClientError> {
        let input = PutRequest {
            store: store.to_owned(),
            key: key.to_owned(),
            value,
            expected_revision,
        };
        Ok(self.call::<_, PutReply>(PUT, &input).await?.revision)
    }

    /// Deletes an entry; `false` when there was none.
    pub async fn delete(
        &self,
        store: &str,
        key: &str,
        expected_revision: Option<u64>,
    ) -> Result<bool, StateClientError> {
        let input = DeleteRequest {
            store: store.to_owned(),
            key: key.to_owned(),
            expected_revision,
        };
        Ok(self.call::<_, DeleteReply>(DELETE, &input).await?.deleted)
    }

    /// Lists raw entries in key order.
    pub async fn list_raw(&self, request: &ListRequest) -> Result<ListReply, StateClientError> {
        self.call(LIST, request).await
    }

    /// A typed view of one named store.
    pub fn store<T>(&self, name: &str) -> StateStore<T> {
        StateStore {
            client: self.clone(),
            name: name.to_owned(),
            migrate: None,
            _type: PhantomData,
        }
    }
}

type MigrateFn<T> = Arc<dyn Fn(&Writer, Value) -> Result<T, String> + Send + Sync>;

/// A typed entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEntry<T> {
    /// Key.
    pub key: String,
    /// The value (migrated if it was written by another version).
    pub value: T,
    /// Revision.
    pub revision: u64,
    /// Who wrote it.
    pub writer: Writer,
    /// Whether the migration hook produced `value`.
    pub migrated: bool,
}

/// A typed page of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct StatePage<T> {
    /// Entries in key order.
    pub entries: Vec<StateEntry<T>>,
    /// Matching entries in all.
    pub total: u64,
    /// Offset of the next page, if any.
    pub next_offset: Option<u64>,
}

/// One named store of the caller's namespace, holding `T` values.
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
    /// Sets the migration hook: it gets every entry written by another
    /// contract version than the caller's, with its writer and raw value,
    /// and returns the value in the current shape.
    pub fn migrate<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Writer, Value) -> Result<T, String> + Send + Sync + 'static,
    {
        self.migrate = Some(Arc::new(hook));
        self
    }

    fn typed(&self, raw: RawEntry, reader: &Writer) -> Result<StateEntry<T>, StateClientError> {
        let stale = raw.writer.contract != reader.contract || raw.writer.digest != reader.digest;
        let (value, migrated) = match (&self.migrate, stale) {
            (Some(hook), true) => {
                let value = hook(&raw.writer, raw.value).map_err(|message| {
                    StateClientError::Migration {
                        key: raw.key.clone(),
                        writer: raw.writer.clone(),
                        message,
                    }
                })?;
                (value, true)
            }
            _ => {
                let value =
                    serde_json::from_value(raw.value).map_err(|e| StateClientError::Decode {
                        key: raw.key.clone(),
                        message: e.to_string(),
                    })?;
                (value, false)
            }
        };
        Ok(StateEntry {
            key: raw.key,
            value,
            revision: raw.revision,
            writer: raw.writer,
            migrated,
        })
    }

    /// Reads `key`.
    pub async fn get(&self, key: &str) -> Result<Option<StateEntry<T>>, StateClientError> {
        let reply = self.client.get_raw(&self.name, key).await?;
        reply
            .entry
            .map(|e| self.typed(e, &reply.reader))
            .transpose()
    }

    fn encode(value: &T) -> Result<Value, StateClientError> {
        serde_json::to_value(value).map_err(|e| StateClientError::Encode(e.to_string()))
    }

    /// Writes `key`; returns the new revision.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, StateClientError> {
        let value = Self::encode(value)?;
        self.client.put_raw(&self.name, key, value, None).await
    }

    /// Writes `key` only if it is at `revision` (`0`: only if absent).
    pub async fn put_if(
        &self,
        key: &str,
        value: &T,
        revision: u64,
    ) -> Result<u64, StateClientError> {
        let value = Self::encode(value)?;
        self.client
            .put_raw(&self.name, key, value, Some(revision))
            .await
    }

    /// Deletes `key`; `false` when absent.
    pub async fn delete(&self, key: &str) -> Result<bool, StateClientError> {
        self.client.delete(&self.name, key, None).await
    }

    /// Lists entries whose key starts with `prefix`, in key order.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<StatePage<T>, StateClientError> {
        let reply = self
            .client
            .list_raw(&ListRequest {
                store: self.name.clone(),
                prefix: prefix.map(str::to_owned),
                offset: Some(offset),
                limit,
            })
            .await?;
        let entries = reply
            .entries
            .into_iter()
            .map(|e| self.typed(e, &reply.reader))
            .collect::<Result<_, _>>()?;
        Ok(StatePage {
            entries,
            total: reply.total,
            next_offset: reply.next_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_manifest_is_valid_and_canonical() {
        let checked = trellis_manifest::check_manifest(STATE_MANIFEST).expect("valid manifest");
        assert_eq!(checked.manifest.id, STATE_CONTRACT);
        assert_eq!(checked.manifest.to_canonical_string(), STATE_MANIFEST);
        for spec in [GET, PUT, DELETE, LIST] {
            let rpc = &checked.manifest.rpc[spec.name];
            assert_eq!(rpc.subject, spec.subject);
            assert_eq!(rpc.capabilities.as_ref().and_then(|c| c.call.clone()), None);
        }
    }
}
