//! The authority's `trellis.state@v1` service: one KV bucket per
//! deployment, keyed `<user>.<contract name>.<store>.<key>` (user, contract
//! name and key base64url-encoded; the contract name is the id without
//! `@vN`), with the namespace taken from the verified
//! caller only.

use async_nats::jetstream::kv;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::naming::lineage_key;
use crate::records::{Desired, Records, now_ms};
use trellis_runtime::internal::Endpoints;
use trellis_runtime::internal::ServiceRuntime;
use trellis_runtime::principal::Principal;
use trellis_runtime::state::*;
use trellis_runtime::{Caller, RpcServer, ServeOptions};

/// The public state bucket of a deployment.
pub fn bucket_name(deployment: &str) -> String {
    format!("trellis-public-state-{deployment}")
}

/// What the bucket stores per entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    value: Value,
    writer: Writer,
    updated_ms: u64,
    /// The principal that wrote it (audit).
    principal: String,
}

#[derive(Clone)]
struct Service {
    data: Records,
    authority: Records,
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

fn invalid(what: &str, message: impl Into<String>) -> StateError {
    StateError::Invalid {
        what: what.to_owned(),
        message: message.into(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable {
        message: e.to_string(),
    }
}

/// The caller's namespace prefix within a store (no trailing dot).
fn namespace(caller: &Principal, store: &str) -> Result<String, StateError> {
    if store.is_empty()
        || store.len() > 64
        || !store
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "store",
            format!("`{store}`: use 1-64 lowercase letters, digits, `-` or `_`"),
        ));
    }
    let user = caller.user.as_deref().unwrap_or(&caller.id);
    let contract_name = caller
        .contract
        .as_deref()
        .map_or("-", |c| c.split_once('@').map_or(c, |(name, _)| name));
    Ok(format!("{}.{}.{store}", b64(user), b64(contract_name)))
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid(
            "key",
            format!("keys are 1-{MAX_KEY_BYTES} bytes of UTF-8"),
        ));
    }
    Ok(())
}

impl Service {
    /// The caller's contract version (its accepted digest).
    async fn reader(&self, caller: &Principal) -> Writer {
        let Some(contract) = caller.contract.clone() else {
            return Writer::default();
        };
        let key = format!("contract.{}.desired", lineage_key(&contract));
        let digest = match self.authority.read::<Desired>(&key).await {
            Ok(Some(d)) => Some(d.value.digest),
            _ => None,
        };
        Writer {
            contract: Some(contract),
            digest,
        }
    }

    async fn entry(&self, full: &str, key: &str) -> Result<Option<RawEntry>, StateError> {
        let Some(e) = self.data.kv.entry(full).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if e.operation != kv::Operation::Put {
            return Ok(None);
        }
        let stored: Stored = serde_json::from_slice(&e.value).map_err(unavailable)?;
        Ok(Some(RawEntry {
            key: key.to_owned(),
            value: stored.value,
            revision: e.revision,
            writer: stored.writer,
            updated_ms: stored.updated_ms,
        }))
    }

    async fn get(&self, caller: Caller, req: GetRequest) -> Result<GetReply, StateError> {
        let p = caller.principal();
        check_key(&req.key)?;
        let full = format!("{}.{}", namespace(p, &req.store)?, b64(&req.key));
        Ok(GetReply {
            entry: self.entry(&full, &req.key).await?,
            reader: self.reader(p).await,
        })
    }

    async fn current_revision(&self, full: &str) -> Result<u64, StateError> {
        Ok(match self.data.kv.entry(full).await.map_err(unavailable)? {
            Some(e) if e.operation == kv::Operation::Put => e.revision,
            _ => 0,
        })
    }

    async fn put(&self, caller: Caller, req: PutRequest) -> Result<PutReply, StateError> {
        let p = caller.principal();
        check_key(&req.key)?;
        let full = format!("{}.{}", namespace(p, &req.store)?, b64(&req.key));
        let stored = Stored {
            value: req.value,
            writer: self.reader(p).await,
            updated_ms: now_ms(),
            principal: p.id.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(unavailable)?;
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(StateError::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_VALUE_BYTES as u64,
            });
        }
        let conflict = |expected: u64, current: u64| StateError::Conflict { expected, current };
        let revision = match req.expected_revision {
            None => self
                .data
                .kv
                .put(&full, bytes.into())
                .await
                .map_err(unavailable)?,
            Some(expected) => {
                let written = match expected {
                    // A deleted entry leaves a tombstone: create fails on
                    // it, so re-create over the tombstone's revision.
                    0 => match self.data.kv.entry(&full).await.map_err(unavailable)? {
                        Some(e) if e.operation == kv::Operation::Put => None,
                        Some(e) => {
                            self.data
                                .write_cas_bytes(&full, bytes, Some(e.revision))
                                .await
                        }
                        None => self.data.write_cas_bytes(&full, bytes, None).await,
                    },
                    rev => self.data.write_cas_bytes(&full, bytes, Some(rev)).await,
                };
                match written {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => return Err(unavailable(e)),
                    None => return Err(conflict(expected, self.current_revision(&full).await?)),
                }
            }
        };
        Ok(PutReply { revision })
    }

    async fn delete(&self, caller: Caller, req: DeleteRequest) -> Result<DeleteReply, StateError> {
        let p = caller.principal();
        check_key(&req.key)?;
        let full = format!("{}.{}", namespace(p, &req.store)?, b64(&req.key));
        let current = self.current_revision(&full).await?;
        if let Some(expected) = req.expected_revision
            && expected != current
        {
            return Err(StateError::Conflict { expected, current });
        }
        if current == 0 {
            return Ok(DeleteReply { deleted: false });
        }
        self.data
            .kv
            .delete_expect_revision(&full, Some(current))
            .await
            .map_err(|_| StateError::Conflict {
                expected: current,
                current: 0,
            })?;
        Ok(DeleteReply { deleted: true })
    }

    async fn list(&self, caller: Caller, req: ListRequest) -> Result<ListReply, StateError> {
        let p = caller.principal();
        if req.limit == 0 || req.limit > MAX_LIST_LIMIT {
            return Err(invalid("limit", format!("use 1 to {MAX_LIST_LIMIT}")));
        }
        let ns = namespace(p, &req.store)?;
        let prefix = req.prefix.unwrap_or_default();
        let mut keys: Vec<(String, String)> = self
            .data
            .keys(&format!("{ns}.*"))
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter_map(|full| {
                let key = unb64(full.rsplit('.').next()?)?;
                key.starts_with(&prefix).then_some((key, full))
            })
            .collect();
        keys.sort();
        let total = keys.len() as u64;
        let offset = req.offset.unwrap_or(0);
        let mut entries = Vec::new();
        for (key, full) in keys
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(req.limit).unwrap_or(usize::MAX))
        {
            if let Some(e) = self.entry(full, key).await? {
                entries.push(e);
            }
        }
        let next = offset + entries.len() as u64;
        Ok(ListReply {
            entries,
            total,
            next_offset: (next < total).then_some(next),
            reader: self.reader(p).await,
        })
    }
}

/// Starts serving `trellis.state@v1` on `runtime` (which verifies callers
/// when the deployment authenticates).
pub(crate) async fn serve(
    runtime: &ServiceRuntime,
    data: Records,
    authority: Records,
) -> Result<RpcServer, trellis_runtime::rpc::ServeError> {
    let service = Service { data, authority };
    let mut endpoints = Endpoints::new();
    let s = service.clone();
    endpoints.add_with_caller(GET, move |c, r| {
        let s = s.clone();
        async move { s.get(c, r).await }
    });
    let s = service.clone();
    endpoints.add_with_caller(PUT, move |c, r| {
        let s = s.clone();
        async move { s.put(c, r).await }
    });
    let s = service.clone();
    endpoints.add_with_caller(DELETE, move |c, r| {
        let s = s.clone();
        async move { s.delete(c, r).await }
    });
    let s = service;
    endpoints.add_with_caller(LIST, move |c, r| {
        let s = s.clone();
        async move { s.list(c, r).await }
    });
    trellis_runtime::internal::serve(runtime, endpoints, ServeOptions::default()).await
}
