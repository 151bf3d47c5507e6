//! The authority's records: desired contracts, reconcile status, leases,
//! bindings, in a runtime-owned JetStream KV bucket so they survive
//! restarts and are shared by every authority instance.
//!
//! Keys (`<l>` is the lineage key, e.g. `documents=v1`; the key strings are
//! persisted and keep their names):
//! - `contract.<l>.desired`: the accepted manifest ([`Desired`]),
//! - `contract.<l>.status`: the latest reconcile status with the bindings
//!   (the runtime's `ContractStatus`),
//! - `contract.<l>.ready`: the last accepted manifest that reconciled to
//!   ready ([`Desired`]),
//! - `lock.<l>`: the reconcile lease (compare-and-set on revisions),
//! - `orphan.<physical>`: detached resources.

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use trellis_runtime::kv::KvHandle;
use trellis_runtime::protocol::{AuthorityError, KvBinding};

/// The accepted (desired) contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    /// Contract id.
    pub id: String,
    /// Digest of `manifest`.
    pub digest: String,
    /// Canonical manifest text.
    pub manifest: String,
    /// Increases with every accept.
    pub generation: u64,
    /// When accepted (unix ms).
    pub accepted_ms: u64,
    /// Consumers (`<group>/<source>`) the accepted plan allowed to be
    /// recreated: their existing configuration differs in a way NATS
    /// cannot apply in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recreate_consumers: Vec<String>,
    /// Earlier digests superseded through safe plans that may still
    /// connect (newest first), until retired or past the rollout grace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Earlier>,
    /// Digests that may no longer connect, and why (newest first, at most
    /// [`RETIRED_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<trellis_runtime::protocol::Retired>,
}

/// Retired digests remembered per lineage (to name the retirement to a
/// build that tries to connect).
pub const RETIRED_KEPT: usize = 16;

/// An earlier digest of a lineage still live in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Earlier {
    /// The digest.
    pub digest: String,
    /// When a later accept superseded it (unix ms).
    pub superseded_ms: u64,
}

/// The reconcile lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Holder id.
    pub holder: String,
    /// Expiry (unix ms).
    pub until_ms: u64,
}

pub(crate) fn storage(e: impl std::fmt::Display) -> AuthorityError {
    AuthorityError::Storage {
        message: e.to_string(),
    }
}

pub(crate) use trellis_runtime::internal::now_ms;

/// Typed access to the records bucket (and, through
/// [`Records::open_bucket`], to the other authority-owned buckets).
#[derive(Clone, Debug)]
pub(crate) struct Records {
    pub(crate) kv: kv::Store,
    /// Typed view used for key listing (no lingering consumers).
    keys: KvHandle<serde_json::Value>,
}

/// A value with the revision it was read at.
pub(crate) struct Versioned<T> {
    pub(crate) value: T,
    pub(crate) revision: u64,
}

impl Records {
    pub(crate) fn bucket_name(deployment: &str) -> String {
        format!("trellis-authority-{deployment}")
    }

    pub(crate) async fn open(
        js: &jetstream::Context,
        deployment: &str,
        replicas: usize,
    ) -> Result<Self, AuthorityError> {
        Self::open_bucket(js, &Self::bucket_name(deployment), 16, replicas).await
    }

    /// Opens (creating if needed) an authority-owned bucket.
    pub(crate) async fn open_bucket(
        js: &jetstream::Context,
        bucket: &str,
        history: u64,
        replicas: usize,
    ) -> Result<Self, AuthorityError> {
        let bucket = bucket.to_owned();
        let binding = KvBinding {
            bucket: bucket.clone(),
            history,
            ttl_ms: 0,
            max_value_bytes: None,
        };
        // Creating a replicated stream right after a cluster forms (or
        // while it is loaded) can time out before the meta leader answers:
        // retried for a bounded time, the last error is reported.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let kv = loop {
            let attempt = async {
                if let Ok(kv) = js.get_key_value(&bucket).await {
                    return Ok(kv);
                }
                js.get_or_create_stream(trellis_runtime::layout::kv_stream_config(
                    &binding, replicas,
                ))
                .await
                .map_err(|e| format!("cannot create the authority bucket `{bucket}`: {e}"))?;
                js.get_key_value(&bucket)
                    .await
                    .map_err(|e| format!("cannot open the authority bucket `{bucket}`: {e}"))
            };
            match attempt.await {
                Ok(kv) => break kv,
                Err(message) if std::time::Instant::now() >= deadline => {
                    return Err(AuthorityError::Storage { message });
                }
                Err(message) => {
                    tracing::debug!(%message, "retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        };
        let keys = trellis_runtime::internal::kv_handle(kv.clone(), binding);
        // Serve only once the bucket answers (a replicated bucket that was
        // just created answers "no responders" until it has a leader).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while let Err(e) = kv.entry("lock.probe").await {
            if std::time::Instant::now() >= deadline {
                return Err(AuthorityError::Storage {
                    message: format!("the authority bucket `{bucket}` does not answer: {e}"),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(Records { kv, keys })
    }

    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, AuthorityError> {
        let Some(entry) = self.kv.entry(key).await.map_err(storage)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value = serde_json::from_slice(&entry.value).map_err(|e| AuthorityError::Storage {
            message: format!("record `{key}` does not decode: {e}"),
        })?;
        Ok(Some(Versioned {
            value,
            revision: entry.revision,
        }))
    }

    /// Writes `value` only if `key` is still at `expected` (`None`: absent).
    /// Returns `Ok(None)` when someone else wrote first.
    pub(crate) async fn write_cas<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Result<Option<u64>, AuthorityError> {
        let bytes = serde_json::to_vec(value).map_err(storage)?;
        self.write_cas_bytes(key, bytes, expected).await.transpose()
    }

    /// [`Records::write_cas`] of raw bytes: `None` on a conflict.
    pub(crate) async fn write_cas_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> Option<Result<u64, AuthorityError>> {
        let result = match expected {
            Some(revision) => {
                self.kv
                    .update(key, bytes.into(), revision)
                    .await
                    .map_err(|e| match e.kind() {
                        kv::UpdateErrorKind::WrongLastRevision => None,
                        _ => Some(storage(e)),
                    })
            }
            None => self
                .kv
                .create(key, bytes.into())
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => None,
                    _ => Some(storage(e)),
                }),
        };
        match result {
            Ok(revision) => Some(Ok(revision)),
            Err(None) => None,
            Err(Some(e)) => Some(Err(e)),
        }
    }

    pub(crate) async fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<u64, AuthorityError> {
        let bytes = serde_json::to_vec(value).map_err(storage)?;
        self.kv.put(key, bytes.into()).await.map_err(storage)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), AuthorityError> {
        self.kv.delete(key).await.map_err(storage)
    }

    /// Keys matching a filter (e.g. `orphan.>`), sorted.
    pub(crate) async fn keys(&self, filter: &str) -> Result<Vec<String>, AuthorityError> {
        self.keys.keys(filter).await.map_err(storage)
    }

    /// Takes (or renews) the reconcile lease of a contract; `false` when
    /// another live holder has it.
    pub(crate) async fn acquire_lease(
        &self,
        lineage: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<bool, AuthorityError> {
        let key = format!("lock.{lineage}");
        let lease = Lease {
            holder: holder.to_owned(),
            until_ms: now_ms() + ttl_ms,
        };
        let expected = match self.kv.entry(&key).await.map_err(storage)? {
            None => None,
            Some(entry) if entry.operation != kv::Operation::Put => Some(entry.revision),
            Some(entry) => {
                let current: Option<Lease> = serde_json::from_slice(&entry.value).ok();
                let free = current
                    .as_ref()
                    .is_none_or(|l| l.holder == holder || l.until_ms < now_ms());
                if !free {
                    return Ok(false);
                }
                Some(entry.revision)
            }
        };
        Ok(self.write_cas(&key, &lease, expected).await?.is_some())
    }

    /// Gives the lease up early.
    pub(crate) async fn release_lease(
        &self,
        lineage: &str,
        holder: &str,
    ) -> Result<(), AuthorityError> {
        let key = format!("lock.{lineage}");
        if let Some(current) = self.read::<Lease>(&key).await?
            && current.value.holder == holder
        {
            let expired = Lease {
                holder: holder.to_owned(),
                until_ms: 0,
            };
            self.write_cas(&key, &expired, Some(current.revision))
                .await?;
        }
        Ok(())
    }
}
