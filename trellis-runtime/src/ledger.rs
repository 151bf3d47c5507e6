//! A contract's ledger: the runtime-owned KV bucket the authority
//! provisions for contracts with operations or receive transfers. It holds
//! operation records (`op.<id>`), receive grants (`grant.<id>`) and
//! rejected consumer events, as JSON records changed with compare-and-set.

use async_nats::jetstream::{self, kv};

use crate::wire::retry::{Attempt, retry_transient};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The ledger bucket could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("opening the ledger bucket `{bucket}` failed: {reason}")]
pub struct LedgerError {
    /// Bucket.
    pub bucket: String,
    /// Why.
    pub reason: String,
}

/// Opens the ledger bucket `bucket`.
pub(crate) async fn open(
    client: &async_nats::Client,
    bucket: &str,
) -> Result<kv::Store, LedgerError> {
    jetstream::new(client.clone())
        .get_key_value(bucket)
        .await
        .map_err(|e| LedgerError {
            bucket: bucket.to_owned(),
            reason: e.to_string(),
        })
}

/// Reads the JSON value under `key`, with its revision, from the stream
/// leader: read-your-writes across a cluster. A direct get may be served
/// by a replica that has not applied the latest write yet, and a reader
/// woken by that write (an operation's `wait`) would then sleep through it.
/// Transient failures are retried (see [`crate::wire::retry`]).
pub(crate) async fn read_json<T: DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
) -> Result<Option<(u64, T)>, String> {
    let subject = format!("{}{key}", kv.prefix);
    let found = retry_transient(|| async {
        match kv.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(e) => Err(Attempt::of("reading the ledger", &e)),
        }
    })
    .await?;
    let Some(message) = found else {
        return Ok(None);
    };
    // Deletes and purges leave a marker whose operation header says so.
    if message
        .headers
        .get("KV-Operation")
        .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
    {
        return Ok(None);
    }
    let value = serde_json::from_slice(&message.payload)
        .map_err(|e| format!("ledger record `{key}` does not decode: {e}"))?;
    Ok(Some((message.sequence, value)))
}

/// Applies `change` to the JSON value under `key` with compare-and-set,
/// retrying on conflicts. `change` returns whether to write. Returns the
/// resulting revision and value (`None` if there is no value).
pub(crate) async fn mutate_json<T: DeserializeOwned + Serialize>(
    kv: &kv::Store,
    key: &str,
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<(u64, T)>, String> {
    for _ in 0..100 {
        let Some((revision, mut value)) = read_json::<T>(kv, key).await? else {
            return Ok(None);
        };
        if !change(&mut value) {
            return Ok(Some((revision, value)));
        }
        let bytes = bytes::Bytes::from(serde_json::to_vec(&value).map_err(|e| e.to_string())?);
        // A write that timed out may still have been applied: the retry
        // then meets a newer revision and re-reads (the change is applied
        // to the current value, never twice to a stale one).
        let written = retry_transient(|| async {
            match kv.update(key, bytes.clone(), revision).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                Err(e) => Err(Attempt::of("writing the ledger", &e)),
            }
        })
        .await?;
        match written {
            Some(revision) => return Ok(Some((revision, value))),
            None => continue,
        }
    }
    Err("writing the ledger: too many concurrent changes".to_owned())
}

/// Unexpired receive grants one caller may hold from one instance.
pub const MAX_GRANTS_PER_CALLER: usize = 256;

/// Callers whose grants one instance tracks at once.
const MAX_GRANT_CALLERS: usize = 10_000;

/// The receive grants this instance issued that are neither redeemed
/// (here) nor expired, per caller: a caller holds at most
/// [`MAX_GRANTS_PER_CALLER`], so neither the ledger nor this map grows with
/// how often someone asks without downloading.
#[derive(Debug, Default)]
pub(crate) struct GrantQuota {
    callers: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, u64)>>>,
}

impl GrantQuota {
    /// Counts grant `id` for `caller`, expiring at `expires_ms`, or says
    /// why it may not be issued.
    pub(crate) fn take(
        &self,
        caller: &str,
        id: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), String> {
        self.take_within(caller, id, now_ms, expires_ms, MAX_GRANTS_PER_CALLER)
    }

    /// Frees grant `id` of `caller` once it is redeemed.
    pub(crate) fn release(&self, caller: &str, id: &str) {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = callers.get_mut(caller) {
            held.retain(|(held_id, _)| held_id != id);
            if held.is_empty() {
                callers.remove(caller);
            }
        }
    }

    fn take_within(
        &self,
        caller: &str,
        id: &str,
        now_ms: u64,
        expires_ms: u64,
        limit: usize,
    ) -> Result<(), String> {
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if !callers.contains_key(caller) && callers.len() >= MAX_GRANT_CALLERS {
            callers.retain(|_, held| {
                held.retain(|&(_, until)| until > now_ms);
                !held.is_empty()
            });
            if callers.len() >= MAX_GRANT_CALLERS {
                return Err(format!(
                    "{MAX_GRANT_CALLERS} callers hold unexpired grants; try again later"
                ));
            }
        }
        let held = callers.entry(caller.to_owned()).or_default();
        held.retain(|&(_, until)| until > now_ms);
        if held.len() >= limit {
            return Err(format!(
                "`{caller}` holds {} unredeemed, unexpired receive grants (at most {limit}); \
                 download or let some expire first",
                held.len()
            ));
        }
        held.push((id.to_owned(), expires_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_per_caller_are_bounded_until_they_expire() {
        let quota = GrantQuota::default();
        for id in ["a", "b", "c"] {
            assert!(quota.take_within("ann", id, 0, 100, 3).is_ok());
        }
        let refused = quota
            .take_within("ann", "d", 10, 100, 3)
            .expect_err("over the bound");
        assert!(refused.contains("(at most 3)"), "{refused}");
        assert!(
            quota.take_within("bob", "e", 10, 100, 3).is_ok(),
            "per caller"
        );
        quota.release("ann", "a");
        assert!(
            quota.take_within("ann", "f", 10, 100, 3).is_ok(),
            "a redeemed one frees room"
        );
        assert!(quota.take_within("ann", "g", 10, 100, 3).is_err());
        assert!(
            quota.take_within("ann", "h", 101, 200, 3).is_ok(),
            "expired ones free room"
        );
    }
}
