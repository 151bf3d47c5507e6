//! The principal registry: one record per public key in a KV bucket only
//! the authority (and its auth callout) reads and writes, and each record
//! sealed for its own key in the callers bucket services watch to resolve
//! their callers (see `trellis_runtime::sealed`).

use std::collections::BTreeSet;

use async_nats::jetstream;

use crate::records::{Records, now_ms, storage};
use trellis_runtime::identity::{PrincipalKind, valid_principal_id};
use trellis_runtime::protocol::{AuthorityError, GrantRequest, PrincipalRecord, RegisterRequest};

/// The principals bucket of a deployment (the authority's own).
pub fn bucket_name(deployment: &str) -> String {
    format!("trellis-principals-{deployment}")
}

pub use trellis_runtime::protocol::callers_bucket_name;

#[derive(Clone, Debug)]
pub(crate) struct Principals {
    store: Records,
    callers: Records,
}

fn bad(message: impl Into<String>) -> AuthorityError {
    AuthorityError::BadRequest {
        message: message.into(),
    }
}

/// Capability keys are `<namespace>::<name>`, or one of the format's
/// built-in capabilities (`admin`, `service`).
fn valid_capability(c: &str) -> bool {
    if trellis_manifest::manifest::BUILTIN_CAPABILITIES.contains(&c) {
        return true;
    }
    c.split_once("::").is_some_and(|(ns, name)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        ok(ns) && ok(name)
    })
}

impl Principals {
    pub(crate) async fn open(
        js: &jetstream::Context,
        deployment: &str,
        replicas: usize,
    ) -> Result<Principals, AuthorityError> {
        let store = Records::open_bucket(js, &bucket_name(deployment), 1, replicas).await?;
        let callers =
            Records::open_bucket(js, &callers_bucket_name(deployment), 1, replicas).await?;
        let principals = Principals { store, callers };
        principals.republish().await?;
        Ok(principals)
    }

    /// Writes a record, then its sealed copy for providers.
    async fn put(&self, record: &PrincipalRecord) -> Result<(), AuthorityError> {
        self.store.put(&record.public_key, record).await?;
        self.publish(record).await
    }

    async fn publish(&self, record: &PrincipalRecord) -> Result<(), AuthorityError> {
        let sealed = trellis_runtime::sealed::seal(record).map_err(storage)?;
        self.callers
            .kv
            .put(
                trellis_runtime::sealed::entry_key(&record.public_key),
                sealed.into(),
            )
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Brings the callers bucket in line with the records (a deployment
    /// from before it existed, or a write that stopped between the two):
    /// missing or stale entries are written, entries of no record deleted.
    async fn republish(&self) -> Result<(), AuthorityError> {
        let mut expected = std::collections::BTreeSet::new();
        for record in self.list().await? {
            let entry = trellis_runtime::sealed::entry_key(&record.public_key);
            let current = self.callers.kv.get(&entry).await.map_err(storage)?;
            let same = current
                .and_then(|b| trellis_runtime::sealed::open(&record.public_key, &b).ok())
                .is_some_and(|r| r == record);
            if !same {
                self.publish(&record).await?;
            }
            expected.insert(entry);
        }
        for entry in self.callers.keys(">").await? {
            if !expected.contains(&entry) {
                self.callers.delete(&entry).await?;
            }
        }
        Ok(())
    }

    /// The record of a public key.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<PrincipalRecord>, AuthorityError> {
        if nkeys::KeyPair::from_public_key(key).is_err() {
            return Ok(None);
        }
        Ok(self.store.read(key).await?.map(|v| v.value))
    }

    pub(crate) async fn list(&self) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        let mut out = Vec::new();
        for key in self.store.keys(">").await? {
            if let Some(r) = self.store.read::<PrincipalRecord>(&key).await? {
                out.push(r.value);
            }
        }
        out.sort_by(|a, b| (&a.id, &a.public_key).cmp(&(&b.id, &b.public_key)));
        Ok(out)
    }

    pub(crate) async fn register(
        &self,
        request: RegisterRequest,
    ) -> Result<PrincipalRecord, AuthorityError> {
        let key = nkeys::KeyPair::from_public_key(&request.public_key).map_err(|e| {
            bad(format!(
                "`{}` is not a public nkey: {e}",
                request.public_key
            ))
        })?;
        if !key.public_key().starts_with('U') {
            return Err(bad("principals use user nkeys (`U...`)"));
        }
        if !valid_principal_id(&request.id) {
            return Err(bad(format!(
                "principal id `{}` must be 1-64 of lowercase letters, digits, `-`, `_`, `.`, `@`",
                request.id
            )));
        }
        match request.kind {
            PrincipalKind::Device if request.user.is_none() => {
                return Err(bad("a device needs the user it belongs to"));
            }
            PrincipalKind::Service if request.contract.is_none() => {
                return Err(bad("a service needs the contract it runs"));
            }
            _ => {}
        }
        let existing = self.get(&request.public_key).await?;
        if let Some(e) = &existing
            && (e.id != request.id || e.kind != request.kind)
        {
            return Err(bad(format!(
                "key {} already belongs to {} `{}`",
                request.public_key,
                e.kind.as_str(),
                e.id
            )));
        }
        let record = PrincipalRecord {
            public_key: request.public_key.clone(),
            kind: request.kind,
            id: request.id,
            user: request.user,
            contract: request.contract,
            capabilities: existing
                .as_ref()
                .map(|e| e.capabilities.clone())
                .unwrap_or_default(),
            revoked: false,
            updated_ms: now_ms(),
        };
        self.put(&record).await?;
        Ok(record)
    }

    /// Every key record of a principal given by id or public key.
    async fn matching(&self, principal: &str) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        let found: Vec<_> = self
            .list()
            .await?
            .into_iter()
            .filter(|r| r.id == principal || r.public_key == principal)
            .collect();
        if found.is_empty() {
            return Err(AuthorityError::NotFound {
                what: format!("principal `{principal}`"),
            });
        }
        Ok(found)
    }

    pub(crate) async fn grant(
        &self,
        request: GrantRequest,
    ) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        if let Some(c) = request.capabilities.iter().find(|c| !valid_capability(c)) {
            return Err(bad(format!(
                "capability `{c}` must be `<namespace>::<name>` (e.g. `documents::read`), `admin` or `service`"
            )));
        }
        let caps: BTreeSet<String> = request.capabilities.iter().cloned().collect();
        let mut out = Vec::new();
        for mut record in self.matching(&request.principal).await? {
            if request.remove {
                record.capabilities.retain(|c| !caps.contains(c));
            } else {
                record.capabilities.extend(caps.iter().cloned());
            }
            record.updated_ms = now_ms();
            self.put(&record).await?;
            out.push(record);
        }
        Ok(out)
    }

    pub(crate) async fn revoke(
        &self,
        principal: &str,
    ) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        let mut out = Vec::new();
        for mut record in self.matching(principal).await? {
            record.revoked = true;
            record.updated_ms = now_ms();
            self.put(&record).await?;
            out.push(record);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn capability_keys() {
        assert!(super::valid_capability("documents::read"));
        assert!(!super::valid_capability("read"));
        assert!(!super::valid_capability("documents::"));
        assert!(!super::valid_capability("a b::c"));
    }
}
