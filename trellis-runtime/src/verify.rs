//! Provider-side caller verification: each request's proof is checked
//! locally against the principals the authority publishes (a KV bucket
//! this process watches), with a skew window and a replay cache, so no
//! request costs a round trip to the authority.
//!
//! Revocation bound: a revoked key or removed capability reaches every
//! provider through the watch (milliseconds in practice). While the watch
//! is down, every request reads the principal's record directly, so a
//! provider never serves from a cache older than [`REVOCATION_BOUND`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tracing::{debug, warn};

use crate::identity::{Proof, ProofError, inbox_prefix};
use crate::principal::Principal;
use crate::protocol::PrincipalRecord;
use crate::wire::ids::now_ms;
use crate::wire::limits::{MAX_REQUEST_ID_BYTES, is_token};

/// Request ids kept at most (each under 200 bytes with its key and the
/// map's overhead, so under 100 MiB in all): about 8,000 requests a second
/// sustained over the 60 s an id can live.
pub const MAX_REPLAY_ENTRIES: usize = 500_000;

/// Length of an nkey public key.
const MAX_KEY_BYTES: usize = 56;

/// The longest time a revocation takes to reach a running provider.
pub const REVOCATION_BOUND: Duration = Duration::from_secs(2);

/// Verifies callers of one service connection.
pub struct Verifier {
    records: Arc<RwLock<HashMap<String, Arc<PrincipalRecord>>>>,
    /// Decoded public keys (decoding a curve point per request is costly).
    keys: RwLock<HashMap<String, Arc<nkeys::KeyPair>>>,
    live: Arc<AtomicBool>,
    store: kv::Store,
    window: Duration,
    replays: Mutex<Replays>,
    watch: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// Request ids seen within their window, by key. Entries are at most
/// 56 + 64 bytes of key and id; there are at most `cap` of them.
struct Replays {
    seen: HashMap<(String, String), u64>,
    pruned_ms: u64,
    cap: usize,
}

impl Default for Replays {
    fn default() -> Self {
        Replays {
            seen: HashMap::new(),
            pruned_ms: 0,
            cap: MAX_REPLAY_ENTRIES,
        }
    }
}

/// Why a request id could not be recorded.
#[derive(Debug, PartialEq, Eq)]
enum Replay {
    /// Seen within its window.
    Seen,
    /// The cache is full of unexpired ids.
    Full,
}

impl Replays {
    /// Records a request id.
    fn first_use(&mut self, key: &str, id: &str, expires_ms: u64, now: u64) -> Result<(), Replay> {
        // Pruning scans every entry: once a second, or every 50 ms while
        // full (never per request).
        let since = now.saturating_sub(self.pruned_ms);
        if since > 1000 || (self.seen.len() >= self.cap && since > 50) {
            self.seen.retain(|_, until| *until >= now);
            self.pruned_ms = now;
        }
        let full = self.seen.len() >= self.cap;
        match self.seen.entry((key.to_owned(), id.to_owned())) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Replay::Seen),
            std::collections::hash_map::Entry::Vacant(_) if full => Err(Replay::Full),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(expires_ms);
                Ok(())
            }
        }
    }
}

fn decode(value: &[u8]) -> Option<Arc<PrincipalRecord>> {
    serde_json::from_slice(value).ok().map(Arc::new)
}

impl Verifier {
    /// Opens the principals bucket and starts watching it.
    pub async fn start(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        window: Duration,
    ) -> Result<Verifier, String> {
        let store = js
            .get_key_value(bucket)
            .await
            .map_err(|e| format!("opening the principals bucket `{bucket}` failed: {e}"))?;
        let records = Arc::new(RwLock::new(HashMap::new()));
        let live = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn(watch(store.clone(), records.clone(), live.clone()));
        Ok(Verifier {
            keys: RwLock::default(),
            records,
            live,
            store,
            window,
            replays: Mutex::default(),
            watch,
        })
    }

    async fn record(&self, key: &str) -> Result<Option<Arc<PrincipalRecord>>, ProofError> {
        if self.live.load(Ordering::Acquire)
            && let Ok(records) = self.records.read()
            && let Some(r) = records.get(key)
        {
            return Ok(Some(r.clone()));
        }
        // Not seen by the watch yet (just registered), or the watch is down.
        if nkeys::KeyPair::from_public_key(key).is_err() {
            return Ok(None);
        }
        match self.store.entry(key).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => Ok(decode(&e.value)),
            Ok(_) => Ok(None),
            Err(e) => {
                warn!(error = %e, "reading a principal record failed");
                Err(ProofError::UnknownKey(key.to_owned()))
            }
        }
    }

    fn decoded(&self, key: &str) -> Result<Arc<nkeys::KeyPair>, ProofError> {
        if let Ok(keys) = self.keys.read()
            && let Some(k) = keys.get(key)
        {
            return Ok(k.clone());
        }
        let decoded = Arc::new(
            nkeys::KeyPair::from_public_key(key)
                .map_err(|_| ProofError::BadSignature(key.to_owned()))?,
        );
        if let Ok(mut keys) = self.keys.write() {
            // Bounded: registered keys only reach this point.
            if keys.len() > 100_000 {
                keys.clear();
            }
            keys.insert(key.to_owned(), decoded.clone());
        }
        Ok(decoded)
    }

    /// The proof in `headers` and the registered, unrevoked principal it
    /// names; its fields are bounded before any lookup or cache.
    async fn signer(
        &self,
        headers: Option<&async_nats::HeaderMap>,
    ) -> Result<(Proof, Arc<PrincipalRecord>), ProofError> {
        let proof = Proof::read(headers).ok_or(ProofError::Missing)?;
        if !is_token(&proof.request_id, MAX_REQUEST_ID_BYTES) {
            return Err(ProofError::Malformed(format!(
                "the request id must be 1-{MAX_REQUEST_ID_BYTES} bytes of A-Z a-z 0-9 - _ \
                 (it has {} bytes)",
                proof.request_id.len()
            )));
        }
        if proof.key.len() > MAX_KEY_BYTES {
            return Err(ProofError::Malformed(format!(
                "the key has {} bytes; an nkey has {MAX_KEY_BYTES}",
                proof.key.len()
            )));
        }
        let record = self
            .record(&proof.key)
            .await?
            .ok_or_else(|| ProofError::UnknownKey(proof.key.clone()))?;
        if record.revoked {
            return Err(ProofError::Revoked(record.id.clone()));
        }
        Ok((proof, record))
    }

    /// Verifies that an event was published by a service of `contract`:
    /// its proof (digest and signature over the subject) must come from a
    /// registered, unrevoked service principal of that contract. No skew
    /// window or replay cache: events are read long after they are
    /// published, and redelivered.
    pub(crate) async fn verify_event(
        &self,
        contract: &str,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Result<(), ProofError> {
        let (proof, record) = self.signer(headers).await?;
        if record.kind != crate::identity::PrincipalKind::Service
            || record.contract.as_deref() != Some(contract)
        {
            return Err(ProofError::NotPublisher {
                signer: record.id.clone(),
                contract: contract.to_owned(),
            });
        }
        let key = self.decoded(&proof.key)?;
        proof.verify_signature(&key, subject, payload)
    }

    /// Verifies a request and returns its caller.
    pub(crate) async fn verify(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Result<Principal, ProofError> {
        let (proof, record) = self.signer(headers).await?;
        let now = now_ms();
        let key = self.decoded(&proof.key)?;
        proof.verify_with(&key, subject, payload, now, self.window)?;
        if let Some(reply) = reply {
            let prefix = inbox_prefix(&proof.key);
            if !reply
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
            {
                return Err(ProofError::ReplyOutsideInbox);
            }
        }
        let expires = proof
            .issued_at
            .saturating_add(u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX));
        let recorded = self
            .replays
            .lock()
            .map_err(|_| Replay::Full)
            .and_then(|mut r| r.first_use(&proof.key, &proof.request_id, expires, now));
        match recorded {
            Ok(()) => {}
            Err(Replay::Seen) => return Err(ProofError::Replayed(proof.request_id)),
            Err(Replay::Full) => {
                return Err(ProofError::Busy(format!(
                    "{MAX_REPLAY_ENTRIES} requests were accepted within the skew window; \
                     retry shortly"
                )));
            }
        }
        Ok(Principal::verified(&record))
    }
}

async fn watch(
    store: kv::Store,
    records: Arc<RwLock<HashMap<String, Arc<PrincipalRecord>>>>,
    live: Arc<AtomicBool>,
) {
    loop {
        match store.watch_all_from_revision(1).await {
            Ok(mut changes) => {
                // The watch replays every record, then follows changes.
                while let Some(change) = changes.next().await {
                    let Ok(entry) = change else { break };
                    if let Ok(mut map) = records.write() {
                        match (entry.operation, decode(&entry.value)) {
                            (kv::Operation::Put, Some(r)) => {
                                map.insert(entry.key.clone(), r);
                            }
                            _ => {
                                map.remove(&entry.key);
                            }
                        }
                    }
                    if entry.delta == 0 {
                        live.store(true, Ordering::Release);
                    }
                }
                debug!("principals watch ended; restarting");
            }
            Err(e) => warn!(error = %e, "watching principals failed; retrying"),
        }
        live.store(false, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_caught_and_pruned() {
        let mut r = Replays::default();
        assert_eq!(r.first_use("k", "a", 100, 10), Ok(()));
        assert_eq!(r.first_use("k", "a", 100, 20), Err(Replay::Seen));
        assert_eq!(r.first_use("j", "a", 100, 20), Ok(()));
        assert_eq!(
            r.first_use("k", "a", 5000, 2000),
            Ok(()),
            "pruned after expiry"
        );
    }

    #[test]
    fn the_replay_cache_is_bounded() {
        let mut r = Replays {
            cap: 3,
            ..Replays::default()
        };
        for id in ["a", "b", "c"] {
            assert_eq!(r.first_use("k", id, 1000, 10), Ok(()));
        }
        assert_eq!(r.first_use("k", "d", 1000, 20), Err(Replay::Full));
        assert_eq!(r.seen.len(), 3);
        // Once entries expire, their room is reused.
        assert_eq!(r.first_use("k", "d", 5000, 1001), Ok(()));
    }
}
