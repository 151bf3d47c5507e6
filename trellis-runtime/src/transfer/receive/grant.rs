//! Grant records: issuing a bounded grant for one object to one caller,
//! and redeeming it (once, or resumed by its own caller) with a
//! compare-and-set on its ledger record.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{DEFAULT_GRANT_TTL, MAX_RESUMES};
use crate::ledger::mutate_json;
use crate::principal::Principal;
use crate::protocol::StoreBinding;
use crate::rpc::Caller;
use crate::runtime::ServiceRuntime;
use crate::store::{ObjectInfo, StoreError, StoreHandle};
use crate::transfer::TransferError;
use crate::wire::ids::now_ms;

/// A bounded, single-use permission to download one object, valid only
/// for the caller it was issued to. Put it into an RPC's (or operation's)
/// output and redeem it with the generated client's `download`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveGrant {
    /// Opaque grant id.
    pub id: String,
    /// Size of the object in bytes.
    pub size: u64,
    /// `SHA-256=<base64url>` of the object.
    pub digest: String,
    /// Expiry (unix ms).
    pub expires_at_ms: u64,
}

/// The stored record of a grant (`grant.<id>` in the ledger).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GrantRecord {
    pub(super) store: StoreBinding,
    pub(super) key: String,
    pub(super) principal: String,
    pub(super) size: u64,
    pub(super) digest: String,
    pub(super) expires_at_ms: u64,
    pub(super) used: bool,
    /// A download of it completed: it cannot be resumed.
    #[serde(default)]
    pub(super) completed: bool,
    /// Resumed redemptions so far.
    #[serde(default)]
    pub(super) resumes: u32,
}

/// Why a grant could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// No object under the key.
    #[error("no object under `{key}`")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Reading the object's metadata failed (including invalid keys).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording the grant failed.
    #[error("recording the grant failed: {0}")]
    State(String),
    /// The caller holds too many unexpired grants from this service.
    #[error("too many receive grants: {0}")]
    TooMany(String),
}

/// Issues receive grants for the caller of one request.
#[derive(Debug, Clone)]
pub struct Grants {
    runtime: ServiceRuntime,
    principal: Principal,
}

impl Grants {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, caller: &Caller) -> Grants {
        Grants {
            runtime,
            principal: caller.principal().clone(),
        }
    }

    pub(crate) fn for_principal(runtime: ServiceRuntime, principal: Principal) -> Grants {
        Grants { runtime, principal }
    }

    /// A grant for the object under `key` in `store`, valid for
    /// [`DEFAULT_GRANT_TTL`].
    pub async fn issue(&self, store: &StoreHandle, key: &str) -> Result<ReceiveGrant, GrantError> {
        self.issue_for(store, key, DEFAULT_GRANT_TTL).await
    }

    /// A grant for the object under `key` in `store`, valid for `ttl`.
    pub async fn issue_for(
        &self,
        store: &StoreHandle,
        key: &str,
        ttl: Duration,
    ) -> Result<ReceiveGrant, GrantError> {
        Ok(self.issue_with_info(store, key, ttl).await?.1)
    }

    /// A grant for the object under `key` in `store`, valid for `ttl`, and
    /// the object's metadata (read once for both).
    pub async fn issue_with_info(
        &self,
        store: &StoreHandle,
        key: &str,
        ttl: Duration,
    ) -> Result<(ObjectInfo, ReceiveGrant), GrantError> {
        let info = store
            .open()
            .await?
            .info(key)
            .await?
            .ok_or_else(|| GrantError::NotFound {
                key: key.to_owned(),
            })?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let now = now_ms();
        let id = crate::wire::ids::random_id();
        self.runtime
            .grant_quota()
            .take(&self.principal.id, &id, now, now.saturating_add(ttl_ms))
            .map_err(GrantError::TooMany)?;
        let record = GrantRecord {
            store: store.binding().clone(),
            key: key.to_owned(),
            principal: self.principal.id.clone(),
            size: info.size,
            digest: info.digest.clone(),
            expires_at_ms: now.saturating_add(ttl_ms),
            used: false,
            completed: false,
            resumes: 0,
        };
        let state = self
            .runtime
            .ledger()
            .await
            .map_err(|e| GrantError::State(e.to_string()))?;
        let value = serde_json::to_vec(&record).map_err(|e| GrantError::State(e.to_string()))?;
        state
            .create(format!("grant.{id}"), value.into())
            .await
            .map_err(|e| GrantError::State(e.to_string()))?;
        let grant = ReceiveGrant {
            id,
            size: record.size,
            digest: record.digest,
            expires_at_ms: record.expires_at_ms,
        };
        Ok((info, grant))
    }
}

/// Redeems `id` for `principal`: the object to send, or the refusal. A
/// `resume` continues a download of the grant that did not complete.
pub(super) async fn redeem(
    state: &kv::Store,
    id: &str,
    principal: &Principal,
    resume: bool,
) -> Result<GrantRecord, TransferError> {
    if !crate::wire::ids::is_id(id) {
        return Err(TransferError::GrantInvalid);
    }
    // One compare-and-set pass: the checks run on the record as read, and
    // only a grant that passes them is marked used (of concurrent
    // redemptions exactly one wins; the others see it used).
    let mut refusal = None;
    let redeemed = mutate_json::<GrantRecord>(state, &format!("grant.{id}"), |r| {
        refusal = if r.principal != principal.id {
            Some(TransferError::GrantForbidden)
        } else if r.expires_at_ms < now_ms() {
            Some(TransferError::GrantExpired)
        } else if r.completed || (r.used && !resume) || (resume && r.resumes >= MAX_RESUMES) {
            Some(TransferError::GrantUsed)
        } else {
            None
        };
        if refusal.is_some() {
            return false;
        }
        r.used = true;
        if resume {
            r.resumes += 1;
        }
        true
    })
    .await
    .map_err(TransferError::Nats)?;
    match (redeemed, refusal) {
        (None, _) => Err(TransferError::GrantInvalid),
        (Some(_), Some(refusal)) => Err(refusal),
        (Some((_, record)), None) => Ok(record),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RedeemRequest {
    pub(super) grant: String,
    pub(super) window: u64,
    /// The receiver takes the chunks as the store's direct-get answers,
    /// sent straight to its inbox (absent: relayed by the provider).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) direct: bool,
    /// A resumed download (direct only): the byte offset to continue at,
    /// a chunk boundary of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) offset: Option<u64>,
}

/// Records that a download of grant `id` completed (it cannot be resumed
/// any more).
pub(super) async fn complete(state: &kv::Store, id: &str) {
    let marked = mutate_json::<GrantRecord>(state, &format!("grant.{id}"), |r| {
        let change = !r.completed;
        r.completed = true;
        change
    })
    .await;
    if let Err(error) = marked {
        debug!(%error, "recording a completed download failed");
    }
}
