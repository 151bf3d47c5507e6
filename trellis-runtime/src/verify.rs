//! Provider-side caller verification. nats-server lets a connection
//! publish requests only below its own key
//! (`trellis.<deployment>.<key>.<contract>.…`), so the caller token of a
//! request subject is proven by the server; the provider checks that the
//! reply goes below that caller's inbox (which nothing nats-server
//! delivers on a principal's behalf ever names) and looks the key up in
//! the sealed principal records the authority publishes (the callers
//! bucket this process watches; see [`crate::sealed`]): a record is opened
//! once per key and change. No cryptography and no round trip per
//! request.
//!
//! Revocation bound: a revoked key or removed capability reaches every
//! provider through the watch (milliseconds in practice). While the watch
//! is down, every request reads the principal's record directly, so a
//! provider never serves from a cache older than [`REVOCATION_BOUND`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tracing::{debug, warn};

use crate::identity::{Proof, ProofError, inbox_prefix};
use crate::principal::Principal;
use crate::protocol::PrincipalRecord;
use crate::wire::limits::{MAX_REQUEST_ID_BYTES, is_token};
use crate::wire::subjects::caller_token;

/// Length of an nkey public key.
const MAX_KEY_BYTES: usize = 56;

/// The longest time a revocation takes to reach a running provider.
pub const REVOCATION_BOUND: Duration = Duration::from_secs(2);

/// A callers-bucket entry as the watch saw it, and its record once a
/// request or event named its key.
struct Entry {
    sealed: bytes::Bytes,
    opened: Option<Arc<PrincipalRecord>>,
}

/// A record read by key (`None`: not registered) and when.
type LookedUp = (Option<Arc<PrincipalRecord>>, std::time::Instant);

/// Callers-bucket entries by entry key.
type Entries = Arc<RwLock<HashMap<String, Entry>>>;

/// Verifies callers of one service connection.
pub struct Verifier {
    entries: Entries,
    /// Decoded public keys (decoding a curve point per request is costly).
    keys: RwLock<HashMap<String, Arc<nkeys::KeyPair>>>,
    live: Arc<AtomicBool>,
    store: kv::Store,
    /// The watch of the whole bucket (`None`: records are read by key).
    watch: Option<tokio::task::JoinHandle<()>>,
    /// Without a watch: records read by key, kept for at most
    /// [`REVOCATION_BOUND`].
    looked_up: RwLock<HashMap<String, LookedUp>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
    }
}

impl Verifier {
    /// Opens the callers bucket and starts watching it.
    pub async fn start(
        js: &async_nats::jetstream::Context,
        bucket: &str,
    ) -> Result<Verifier, String> {
        let mut verifier = Verifier::lookups(js, bucket).await?;
        verifier.watch = Some(tokio::spawn(watch(
            verifier.store.clone(),
            verifier.entries.clone(),
            verifier.live.clone(),
        )));
        Ok(verifier)
    }

    /// Opens the callers bucket without watching it: each key's record is
    /// read when first needed and again once it is older than
    /// [`REVOCATION_BOUND`]. Needs only the bucket's stream info and
    /// direct gets (what callers are granted), not a consumer.
    pub(crate) async fn lookups(
        js: &async_nats::jetstream::Context,
        bucket: &str,
    ) -> Result<Verifier, String> {
        let store = js
            .get_key_value(bucket)
            .await
            .map_err(|e| format!("opening the callers bucket `{bucket}` failed: {e}"))?;
        Ok(Verifier {
            keys: RwLock::default(),
            entries: Entries::default(),
            live: Arc::new(AtomicBool::new(false)),
            store,
            watch: None,
            looked_up: RwLock::default(),
        })
    }

    /// The record of `key`, if registered: opened from the watched entry
    /// (once per key and change), or read directly when the watch has not
    /// seen it (just registered) or is down.
    async fn record(&self, key: &str) -> Result<Option<Arc<PrincipalRecord>>, ProofError> {
        let entry = crate::sealed::entry_key(key);
        if self.live.load(Ordering::Acquire) {
            let sealed = match self.entries.read() {
                Ok(entries) => match entries.get(&entry) {
                    Some(Entry {
                        opened: Some(r), ..
                    }) => return Ok(Some(r.clone())),
                    Some(e) => Some(e.sealed.clone()),
                    None => None,
                },
                Err(_) => None,
            };
            if let Some(sealed) = sealed {
                let Ok(record) = crate::sealed::open(key, &sealed) else {
                    return Ok(None);
                };
                let record = Arc::new(record);
                if let Ok(mut entries) = self.entries.write()
                    && let Some(e) = entries.get_mut(&entry)
                    && e.sealed == sealed
                {
                    e.opened = Some(record.clone());
                }
                return Ok(Some(record));
            }
        }
        if self.watch.is_none()
            && let Ok(looked_up) = self.looked_up.read()
            && let Some((record, at)) = looked_up.get(key)
            && at.elapsed() < REVOCATION_BOUND
        {
            return Ok(record.clone());
        }
        let record = match self.store.entry(&entry).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => {
                crate::sealed::open(key, &e.value).ok().map(Arc::new)
            }
            Ok(_) => None,
            Err(e) => {
                warn!(error = %e, "reading a caller record failed");
                return Err(ProofError::UnknownKey(key.to_owned()));
            }
        };
        if self.watch.is_none()
            && let Ok(mut looked_up) = self.looked_up.write()
        {
            // Bounded: keys that signed an event (or request) reach here.
            if looked_up.len() > 10_000 {
                looked_up.clear();
            }
            looked_up.insert(key.to_owned(), (record.clone(), std::time::Instant::now()));
        }
        Ok(record)
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

    /// The event proof in `headers` and the registered, unrevoked principal
    /// it names; its fields are bounded before any lookup or cache.
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
        let record = self.registered(&proof.key).await?;
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

    /// The registered, unrevoked principal of `key`.
    async fn registered(&self, key: &str) -> Result<Arc<PrincipalRecord>, ProofError> {
        let record = self
            .record(key)
            .await?
            .ok_or_else(|| ProofError::UnknownKey(key.to_owned()))?;
        if record.revoked {
            return Err(ProofError::Revoked(record.id.clone()));
        }
        Ok(record)
    }

    /// Verifies a request to `subject` (in `deployment`) and returns its
    /// caller: the key its subject names (which nats-server lets only that
    /// key's connections publish below), registered and unrevoked, with
    /// the reply below that key's inbox.
    pub(crate) async fn verify(
        &self,
        deployment: &str,
        subject: &str,
        reply: Option<&str>,
    ) -> Result<Principal, ProofError> {
        let token = caller_token(deployment, subject).unwrap_or_default();
        if !is_user_key(token) {
            let shown: String = token.chars().take(MAX_KEY_BYTES).collect();
            return Err(ProofError::NoCaller(shown));
        }
        // Checked before the lookup: a message nats-server delivered on
        // someone's behalf (a push consumer's deliver subject, a JetStream
        // API reply) never replies below the named caller's inbox.
        if let Some(reply) = reply {
            let prefix = inbox_prefix(token);
            if !reply
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
            {
                return Err(ProofError::ReplyOutsideInbox);
            }
        }
        let record = self.registered(token).await?;
        Ok(Principal::verified(&record))
    }
}

/// Whether `token` has the form of an nkey user public key (`U` and 55
/// base32 characters); its checksum is left to the registry lookup.
fn is_user_key(token: &str) -> bool {
    token.len() == MAX_KEY_BYTES
        && token.starts_with('U')
        && token
            .bytes()
            .all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
}

async fn watch(store: kv::Store, entries: Entries, live: Arc<AtomicBool>) {
    loop {
        match store.watch_all_from_revision(1).await {
            Ok(mut changes) => {
                // The watch replays every entry, then follows changes; a
                // change drops the record opened from the old entry.
                while let Some(change) = changes.next().await {
                    let Ok(entry) = change else { break };
                    if let Ok(mut map) = entries.write() {
                        match entry.operation {
                            kv::Operation::Put => {
                                map.insert(
                                    entry.key.clone(),
                                    Entry {
                                        sealed: entry.value.clone(),
                                        opened: None,
                                    },
                                );
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
                debug!("callers watch ended; restarting");
            }
            Err(e) => warn!(error = %e, "watching callers failed; retrying"),
        }
        live.store(false, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_user_keys_name_callers() {
        let key = crate::identity::Credentials::generate(
            crate::identity::PrincipalKind::User,
            "alice",
            None,
            None,
        )
        .expect("generate")
        .public_key();
        assert!(is_user_key(&key));
        assert!(!is_user_key(crate::wire::subjects::NO_CALLER));
        assert!(!is_user_key(&key[1..]));
        assert!(!is_user_key(&key.replace('U', "A")));
        assert!(!is_user_key(&format!("{}*", &key[..55])));
    }
}

/// A [`Verifier`] a caller opens the first time it checks an event's
/// publisher (a live listener), reading records by key rather than
/// watching the bucket. A failed open is not kept, so the next event tries
/// again.
#[derive(Debug)]
pub(crate) struct EventVerifier {
    bucket: String,
    verifier: tokio::sync::OnceCell<Verifier>,
}

impl EventVerifier {
    /// A verifier of events against the callers bucket of `deployment`.
    pub(crate) fn new(deployment: &str) -> EventVerifier {
        EventVerifier {
            bucket: crate::protocol::callers_bucket_name(deployment),
            verifier: tokio::sync::OnceCell::new(),
        }
    }

    /// The started verifier.
    pub(crate) async fn get(&self, client: &async_nats::Client) -> Result<&Verifier, ProofError> {
        self.verifier
            .get_or_try_init(|| async {
                let js = async_nats::jetstream::new(client.clone());
                Verifier::lookups(&js, &self.bucket).await
            })
            .await
            .map_err(ProofError::Unavailable)
    }
}
