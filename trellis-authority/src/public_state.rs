//! The authority's `trellis.state@v1` service: one KV bucket per
//! deployment, keyed `<user>.<contract name>.<store>.<key>` (user, contract
//! name and key base64url-encoded, `_` for a `value` store's single entry;
//! the contract name is the id without `@vN`). `State.Get/Put/Delete/List`
//! take the namespace from the verified caller only; `State.Admin.*` name
//! it in the request and are served only to principals holding `admin`.
//!
//! Every entry records the state version it was written under: the
//! `stateVersion` the writer's accepted contract declares for the store
//! (or [`DEFAULT_STATE_VERSION`]). A read under another version that the
//! reader's store does not accept is answered with a migration notice.
//! Entries written with `ttlMs` carry their expiry: they are absent to
//! every read from then on, purged when a read meets them and by a sweep
//! of the bucket every [`SWEEP_INTERVAL`].

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, warn};

use crate::naming::lineage_key;
use crate::records::{Desired, Records, now_ms};
use trellis_manifest::manifest::StateKind;
use trellis_runtime::internal::Endpoints;
use trellis_runtime::internal::ServiceRuntime;
use trellis_runtime::principal::Principal;
use trellis_runtime::state::*;
use trellis_runtime::{BuiltinError, BuiltinErrorBody, Caller, RpcServer, ServeOptions};

/// How often expired entries nobody read are purged.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The key token of a `value` store's single entry (base64url of a
/// non-empty key is at least two characters, so it cannot collide).
const VALUE_TOKEN: &str = "_";

/// The public state bucket of a deployment.
pub fn bucket_name(deployment: &str) -> String {
    format!("trellis-public-state-{deployment}")
}

/// Which contract version wrote an entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Writer {
    contract: Option<String>,
    digest: Option<String>,
}

/// What the bucket stores per entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    value: Value,
    /// `None` for entries written before state versions were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_version: Option<String>,
    writer: Writer,
    updated_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_ms: Option<u64>,
    /// The principal that wrote it (audit).
    principal: String,
}

impl Stored {
    fn expired(&self, now: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now)
    }
}

/// The state declarations that decide how a store is read and written.
#[derive(Debug, Clone)]
struct Declared {
    /// The reader's (and writer's) state version.
    current: String,
    /// Older versions read without migration.
    accepted: BTreeSet<String>,
    /// `value` or `map`, if the contract declares the store.
    kind: Option<StateKind>,
    /// The contract id and digest writes are recorded under.
    writer: Writer,
}

/// One resolved namespace and store.
#[derive(Debug, Clone)]
struct Place {
    /// `<user>.<contract name>.<store>` (no trailing dot).
    namespace: String,
    declared: Declared,
}

/// A live (unexpired) entry as read, with its KV revision.
struct Live {
    revision: u64,
    stored: Stored,
}

/// What occupies a key: a live entry, or the revision of whatever a
/// create must replace (a tombstone or an expired entry).
enum Slot {
    Live(Live),
    Vacant { occupied: Option<u64> },
}

struct Inner {
    data: Records,
    authority: Records,
}

#[derive(Clone)]
struct Service {
    inner: Arc<Inner>,
}

fn b64(s: &str) -> String {
    trellis_runtime::internal::b64url(s.as_bytes())
}

fn unb64(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn validation(message: impl Into<String>) -> BuiltinError {
    BuiltinError::ValidationError(BuiltinErrorBody {
        message: Some(message.into()),
        details: serde_json::Map::new(),
    })
}

fn unexpected(e: impl std::fmt::Display) -> BuiltinError {
    warn!(error = %e, "public state storage failed");
    BuiltinError::UnexpectedError(BuiltinErrorBody {
        message: Some(format!("state storage failed: {e}")),
        details: serde_json::Map::new(),
    })
}

fn auth_error(message: impl Into<String>) -> BuiltinError {
    BuiltinError::AuthError(BuiltinErrorBody {
        message: Some(message.into()),
        details: serde_json::Map::new(),
    })
}

fn check_store(store: &str) -> Result<(), BuiltinError> {
    if store.is_empty()
        || store.len() > 64
        || !store
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(validation(format!(
            "store `{store}`: use 1-64 lowercase letters, digits, `-` or `_`"
        )));
    }
    Ok(())
}

/// The key token of `key` in `place`, checking it against the store's kind.
fn key_token(place: &Place, key: Option<&str>) -> Result<String, BuiltinError> {
    match (key, place.declared.kind) {
        (None, Some(StateKind::Map)) => {
            Err(validation("this store is a `map`: name the entry's `key`"))
        }
        (Some(_), Some(StateKind::Value)) => Err(validation(
            "this store is a `value` store: it holds one entry, send no `key`",
        )),
        (None, _) => Ok(VALUE_TOKEN.to_owned()),
        (Some(key), _) => {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(validation(format!(
                    "keys are 1-{MAX_KEY_BYTES} bytes of UTF-8"
                )));
            }
            Ok(b64(key))
        }
    }
}

fn contract_name(contract: &str) -> &str {
    contract.split_once('@').map_or(contract, |(name, _)| name)
}

fn parse_revision(revision: &str) -> Result<u64, BuiltinError> {
    revision
        .parse::<u64>()
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| {
            validation(format!(
                "revision `{revision}` is not one this store issued"
            ))
        })
}

fn wire_entry(key: Option<String>, live: &Live) -> Entry {
    Entry {
        key,
        value: live.stored.value.clone(),
        revision: live.revision.to_string(),
        updated_at: rfc3339_ms(live.stored.updated_ms),
        expires_at: live.stored.expires_ms.map(rfc3339_ms),
    }
}

/// An entry as `declared` reads it: plain, or a migration notice.
fn as_read(key: Option<String>, live: &Live, declared: &Declared) -> Listed {
    let entry = wire_entry(key, live);
    let version = live
        .stored
        .state_version
        .as_deref()
        .unwrap_or(DEFAULT_STATE_VERSION);
    if version == declared.current || declared.accepted.contains(version) {
        return Listed::Entry(entry);
    }
    Listed::MigrationRequired(Box::new(MigrationRequired {
        migration_required: True,
        entry,
        state_version: version.to_owned(),
        current_state_version: declared.current.clone(),
        writer_contract_digest: live
            .stored
            .writer
            .digest
            .clone()
            .unwrap_or_else(|| "-".to_owned()),
    }))
}

fn lookup(listed: Listed) -> Lookup {
    match listed {
        Listed::Entry(e) => Lookup::Found(e),
        Listed::MigrationRequired(m) => Lookup::MigrationRequired(m),
    }
}

impl Service {
    fn data(&self) -> &Records {
        &self.inner.data
    }

    /// The state declarations of `contract` for `store`: from the manifest
    /// of its accepted digest, which must be `digest` when one is named.
    async fn declared(
        &self,
        contract: Option<&str>,
        digest: Option<&str>,
        store: &str,
    ) -> Result<Declared, BuiltinError> {
        let mut declared = Declared {
            current: DEFAULT_STATE_VERSION.to_owned(),
            accepted: BTreeSet::new(),
            kind: None,
            writer: Writer {
                contract: contract.map(str::to_owned),
                digest: None,
            },
        };
        let Some(contract) = contract else {
            return Ok(declared);
        };
        let key = format!("contract.{}.desired", lineage_key(contract));
        let Some(desired) = self
            .inner
            .authority
            .read::<Desired>(&key)
            .await
            .map_err(unexpected)?
        else {
            // Not accepted (yet): no declarations, every store at the default.
            return Ok(declared);
        };
        let desired = desired.value;
        if let Some(named) = digest
            && named != desired.digest
        {
            return Err(validation(format!(
                "`{named}` is not the accepted digest of `{contract}` (`{}`)",
                desired.digest
            )));
        }
        let manifest: trellis_manifest::Manifest =
            serde_json::from_str(&desired.manifest).map_err(unexpected)?;
        if let Some(decl) = manifest.state.as_ref().and_then(|s| s.get(store)) {
            if let Some(v) = &decl.state_version {
                declared.current.clone_from(v);
            }
            declared.accepted = decl
                .accepted_versions
                .iter()
                .flatten()
                .map(|(v, _)| v.clone())
                .collect();
            declared.kind = Some(decl.kind);
        }
        declared.writer.digest = Some(desired.digest);
        Ok(declared)
    }

    /// The caller's own namespace and store.
    async fn own(&self, caller: &Principal, store: &str) -> Result<Place, BuiltinError> {
        check_store(store)?;
        let user = caller.user.as_deref().unwrap_or(&caller.id);
        let name = caller.contract.as_deref().map_or("-", contract_name);
        Ok(Place {
            namespace: format!("{}.{}.{store}", b64(user), b64(name)),
            declared: self
                .declared(caller.contract.as_deref(), None, store)
                .await?,
        })
    }

    /// The namespace an admin request names; refuses callers without
    /// `admin` even where the call gate is not checked (no authentication).
    async fn admin_place(
        &self,
        caller: &Principal,
        scope: &AdminScope,
    ) -> Result<Place, BuiltinError> {
        if !caller.capabilities.contains(ADMIN_CAPABILITY) {
            return Err(auth_error(format!(
                "`{}` lacks `{ADMIN_CAPABILITY}`",
                caller.id
            )));
        }
        check_store(&scope.store)?;
        if !trellis_manifest::names::valid_contract_id(&scope.contract_id) {
            return Err(validation(format!(
                "`{}` is no contract id (`<name>@v<N>`)",
                scope.contract_id
            )));
        }
        let user = match &scope.target {
            StateTarget::UserApp { user } => match (&user.user_id, user.origin.as_str()) {
                (Some(id), _) => id.clone(),
                (None, "trellis") => user.id.clone(),
                (None, origin) => {
                    return Err(validation(format!(
                        "origin `{origin}` is unknown here: name the user by `userId` or with origin `trellis`"
                    )));
                }
            },
            StateTarget::DeviceApp { .. } => {
                return Err(validation(
                    "this deployment keeps no device-scoped state: a device's entries are its user's (scope `userApp`)",
                ));
            }
        };
        if user.is_empty() {
            return Err(validation("the user id is empty"));
        }
        Ok(Place {
            namespace: format!(
                "{}.{}.{}",
                b64(&user),
                b64(contract_name(&scope.contract_id)),
                scope.store
            ),
            declared: self
                .declared(
                    Some(&scope.contract_id),
                    Some(&scope.contract_digest),
                    &scope.store,
                )
                .await?,
        })
    }

    /// Reads what occupies `full`. An expired entry is vacant: purged on
    /// the way if `purge`, else left for a write to replace at its revision.
    async fn slot(&self, full: &str, purge: bool) -> Result<Slot, BuiltinError> {
        let Some(e) = self.data().kv.entry(full).await.map_err(unexpected)? else {
            return Ok(Slot::Vacant { occupied: None });
        };
        if e.operation != kv::Operation::Put {
            return Ok(Slot::Vacant {
                occupied: Some(e.revision),
            });
        }
        let stored: Stored = serde_json::from_slice(&e.value).map_err(unexpected)?;
        if stored.expired(now_ms()) {
            if purge {
                self.purge(full, e.revision).await;
            }
            return Ok(Slot::Vacant {
                occupied: Some(e.revision),
            });
        }
        Ok(Slot::Live(Live {
            revision: e.revision,
            stored,
        }))
    }

    /// Deletes an expired entry unless it changed since `revision`.
    async fn purge(&self, full: &str, revision: u64) {
        if let Err(e) = self
            .data()
            .kv
            .delete_expect_revision(full, Some(revision))
            .await
        {
            debug!(key = full, error = %e, "expired entry changed before its purge");
        }
    }

    async fn get(&self, place: &Place, key: Option<String>) -> Result<Lookup, BuiltinError> {
        let full = format!("{}.{}", place.namespace, key_token(place, key.as_deref())?);
        Ok(match self.slot(&full, true).await? {
            Slot::Live(live) => lookup(as_read(key, &live, &place.declared)),
            Slot::Vacant { .. } => Lookup::Missing,
        })
    }

    async fn put(&self, caller: &Principal, req: PutRequest) -> Result<PutResponse, BuiltinError> {
        let place = self.own(caller, &req.store).await?;
        let full = format!(
            "{}.{}",
            place.namespace,
            key_token(&place, req.key.as_deref())?
        );
        if req.ttl_ms == Some(0) {
            return Err(validation("`ttlMs` is at least 1"));
        }
        let expected = match &req.expected_revision {
            Expected::Revision(r) => Some(parse_revision(r)?),
            Expected::Any | Expected::Absent => None,
        };
        let now = now_ms();
        let stored = Stored {
            value: req.value,
            state_version: Some(place.declared.current.clone()),
            writer: place.declared.writer.clone(),
            updated_ms: now,
            expires_ms: req.ttl_ms.map(|ttl| now.saturating_add(ttl)),
            principal: caller.id.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(unexpected)?;
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(validation(format!(
                "the entry is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
                bytes.len()
            )));
        }
        let current = |slot: Slot| match slot {
            Slot::Live(live) => Some(as_read(req.key.clone(), &live, &place.declared)),
            Slot::Vacant { .. } => None,
        };
        // Not purged here: a create-if-absent replaces an expired entry at
        // its revision.
        let slot = self.slot(&full, false).await?;
        let written = match (&req.expected_revision, slot) {
            (Expected::Any, _) => Some(
                self.data()
                    .kv
                    .put(&full, bytes.into())
                    .await
                    .map_err(unexpected)?,
            ),
            (Expected::Absent, Slot::Vacant { occupied }) => self
                .data()
                .write_cas_bytes(&full, bytes, occupied)
                .await
                .transpose()
                .map_err(unexpected)?,
            (Expected::Revision(_), Slot::Live(live)) if Some(live.revision) == expected => self
                .data()
                .write_cas_bytes(&full, bytes, expected)
                .await
                .transpose()
                .map_err(unexpected)?,
            (_, slot) => {
                return Ok(PutResponse::NotApplied {
                    current: current(slot),
                });
            }
        };
        match written {
            Some(revision) => Ok(PutResponse::Applied(wire_entry(
                req.key,
                &Live { revision, stored },
            ))),
            // Someone wrote in between: report what is there now.
            None => Ok(PutResponse::NotApplied {
                current: current(self.slot(&full, true).await?),
            }),
        }
    }

    async fn delete(
        &self,
        place: &Place,
        key: Option<&str>,
        expected: Option<&str>,
    ) -> Result<bool, BuiltinError> {
        let full = format!("{}.{}", place.namespace, key_token(place, key)?);
        let expected = expected.map(parse_revision).transpose()?;
        let Slot::Live(live) = self.slot(&full, true).await? else {
            return Ok(false);
        };
        if expected.is_some_and(|r| r != live.revision) {
            return Ok(false);
        }
        match self
            .data()
            .kv
            .delete_expect_revision(&full, Some(live.revision))
            .await
        {
            Ok(()) => Ok(true),
            // Changed in between: with a condition that is a mismatch;
            // without one, delete what is there now.
            Err(_) if expected.is_some() => Ok(false),
            Err(_) => {
                self.data().kv.delete(&full).await.map_err(unexpected)?;
                Ok(true)
            }
        }
    }

    async fn list(
        &self,
        place: &Place,
        prefix: Option<&str>,
        offset: Option<u64>,
        limit: u64,
    ) -> Result<ListResponse, BuiltinError> {
        let limit = limit.min(MAX_LIST_LIMIT);
        let offset = offset.unwrap_or(0);
        let mut keys: Vec<(Option<String>, String)> = self
            .data()
            .keys(&format!("{}.*", place.namespace))
            .await
            .map_err(unexpected)?
            .into_iter()
            .filter_map(|full| {
                let token = full.rsplit('.').next()?;
                let key = if token == VALUE_TOKEN {
                    None
                } else {
                    Some(unb64(token)?)
                };
                match (prefix, &key) {
                    (None, _) => Some((key, full)),
                    (Some(p), Some(k)) if k.starts_with(p) => Some((key, full)),
                    _ => None,
                }
            })
            .collect();
        keys.sort();
        // Every match is read: expired entries are not counted (and are
        // purged on the way).
        let mut live = Vec::new();
        for (key, full) in keys {
            if let Slot::Live(entry) = self.slot(&full, true).await? {
                live.push((key, entry));
            }
        }
        let count = live.len() as u64;
        let entries: Vec<Listed> = live
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(key, entry)| as_read(key, &entry, &place.declared))
            .collect();
        let next = offset.saturating_add(entries.len() as u64);
        Ok(ListResponse {
            entries,
            count,
            offset,
            limit,
            next_offset: (next < count && limit > 0).then_some(next),
        })
    }

    /// Purges every expired entry of the bucket.
    async fn sweep(&self) -> Result<usize, BuiltinError> {
        let now = now_ms();
        let mut purged = 0;
        for full in self.data().keys(">").await.map_err(unexpected)? {
            let Some(e) = self.data().kv.entry(&full).await.map_err(unexpected)? else {
                continue;
            };
            if e.operation != kv::Operation::Put {
                continue;
            }
            let expired = serde_json::from_slice::<Stored>(&e.value)
                .map(|s| s.expired(now))
                .unwrap_or(false);
            if expired {
                self.purge(&full, e.revision).await;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// Sweeps expired entries every [`SWEEP_INTERVAL`] while the service runs
/// (it ends once the server dropped its handlers).
fn spawn_sweeper(inner: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let service = Service { inner };
            match service.sweep().await {
                Ok(0) => {}
                Ok(n) => debug!(purged = n, "expired public state entries purged"),
                Err(e) => debug!(error = %e, "public state sweep failed"),
            }
        }
    });
}

/// Starts serving `trellis.state@v1` on `runtime` (which verifies callers
/// and checks the `admin` gate when the deployment authenticates).
pub(crate) async fn serve(
    runtime: &ServiceRuntime,
    data: Records,
    authority: Records,
) -> Result<RpcServer, trellis_runtime::rpc::ServeError> {
    let inner = Arc::new(Inner { data, authority });
    spawn_sweeper(Arc::downgrade(&inner));
    let service = Service { inner };
    let mut endpoints = Endpoints::new();
    let s = service.clone();
    endpoints.add_with_caller(GET, move |c: Caller, r: GetRequest| {
        let s = s.clone();
        async move {
            let place = s.own(c.principal(), &r.store).await?;
            s.get(&place, r.key).await
        }
    });
    let s = service.clone();
    endpoints.add_with_caller(PUT, move |c: Caller, r: PutRequest| {
        let s = s.clone();
        async move { s.put(c.principal(), r).await }
    });
    let s = service.clone();
    endpoints.add_with_caller(DELETE, move |c: Caller, r: DeleteRequest| {
        let s = s.clone();
        async move {
            let place = s.own(c.principal(), &r.store).await?;
            let deleted = s
                .delete(&place, r.key.as_deref(), r.expected_revision.as_deref())
                .await?;
            Ok::<_, BuiltinError>(DeleteResponse { deleted })
        }
    });
    let s = service.clone();
    endpoints.add_with_caller(LIST, move |c: Caller, r: ListRequest| {
        let s = s.clone();
        async move {
            let place = s.own(c.principal(), &r.store).await?;
            s.list(&place, r.prefix.as_deref(), r.offset, r.limit).await
        }
    });
    let s = service.clone();
    endpoints.add_with_caller(ADMIN_GET, move |c: Caller, r: AdminGetRequest| {
        let s = s.clone();
        async move {
            let place = s.admin_place(c.principal(), &r.scope).await?;
            s.get(&place, r.key).await
        }
    });
    let s = service.clone();
    endpoints.add_with_caller(ADMIN_LIST, move |c: Caller, r: AdminListRequest| {
        let s = s.clone();
        async move {
            let place = s.admin_place(c.principal(), &r.scope).await?;
            s.list(&place, r.prefix.as_deref(), r.offset, r.limit).await
        }
    });
    let s = service;
    endpoints.add_with_caller(ADMIN_DELETE, move |c: Caller, r: AdminDeleteRequest| {
        let s = s.clone();
        async move {
            let place = s.admin_place(c.principal(), &r.scope).await?;
            let deleted = s
                .delete(&place, r.key.as_deref(), r.expected_revision.as_deref())
                .await?;
            Ok::<_, BuiltinError>(DeleteResponse { deleted })
        }
    });
    trellis_runtime::internal::serve(runtime, endpoints, ServeOptions::default()).await
}
