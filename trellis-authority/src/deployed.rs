//! [`DeployedCache`]: the accepted contracts as permissions need them
//! (each with its last good bindings), read once and kept current by a
//! watch on the records bucket, so an auth callout costs one request
//! whether 1 or 200 contracts are accepted.
//!
//! Freshness: every change of a `contract.*` record drops the cached set.
//! Before using it, a reader asks the stream for its last sequence and
//! waits (briefly) until the watch has applied that far, so a change that
//! was written before the read began is never missed, whichever instance
//! wrote it. A set is also kept at most [`MAX_AGE`], which bounds what a
//! read served by a lagging replica could leave behind.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tracing::debug;

use crate::permissions::Deployed;
use trellis_runtime::protocol::AuthorityError;

/// The accepted contracts, by id.
pub(crate) type DeployedSet = Arc<BTreeMap<String, Deployed>>;

/// How long a reader waits for the watch to catch up before it reads the
/// records itself.
const CATCH_UP: Duration = Duration::from_millis(250);

/// How long a read set is used at most (within the revocation bound).
const MAX_AGE: Duration = Duration::from_secs(2);

/// The cached set and what keeps it current.
#[derive(Default)]
pub(crate) struct DeployedCache {
    cached: Mutex<Cached>,
    /// The last stream sequence the watch applied.
    applied: AtomicU64,
    /// Whether the watch runs (otherwise every read goes to the records).
    watching: AtomicBool,
}

#[derive(Default)]
struct Cached {
    /// The set and when it was read.
    set: Option<(DeployedSet, tokio::time::Instant)>,
    /// Bumped by every invalidation: a set read while it moved is not kept.
    generation: u64,
}

impl DeployedCache {
    /// Keeps the cache current from `records` until `stop`;
    /// re-establishes a failed watch (the cache is bypassed meanwhile).
    pub(crate) fn spawn_watch(
        self: &Arc<Self>,
        records: kv::Store,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                tokio::select! {
                    result = cache.watch(&records) => {
                        if let Err(e) = result {
                            debug!(error = %e, "records watch ended; re-establishing");
                        }
                    }
                    () = stop.cancelled() => {}
                }
                cache.watching.store(false, Ordering::SeqCst);
                cache.invalidate();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = stop.cancelled() => {}
                }
            }
        })
    }

    async fn watch(&self, records: &kv::Store) -> Result<(), String> {
        let mut changes = records.watch_all().await.map_err(|e| e.to_string())?;
        // Changes up to now are in what the next read sees; later ones
        // arrive on the watch (it was created first).
        let last = records
            .stream
            .get_info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        self.applied.fetch_max(last, Ordering::SeqCst);
        self.invalidate();
        self.watching.store(true, Ordering::SeqCst);
        while let Some(change) = changes.next().await {
            let entry = change.map_err(|e| e.to_string())?;
            if entry.key.starts_with("contract.") {
                self.invalidate();
            }
            self.applied.fetch_max(entry.revision, Ordering::SeqCst);
        }
        Err("the watch ended".to_owned())
    }

    fn invalidate(&self) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.set = None;
        cached.generation += 1;
    }

    /// The current set: cached when the watch has applied every change up
    /// to the records' last sequence, else read with `read` (and kept if
    /// nothing moved meanwhile).
    pub(crate) async fn get<F, Fut>(
        &self,
        records: &kv::Store,
        read: F,
    ) -> Result<DeployedSet, AuthorityError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<BTreeMap<String, Deployed>, AuthorityError>>,
    {
        let caught_up = self.watching.load(Ordering::SeqCst) && self.caught_up(records).await;
        let generation = {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let (true, Some((set, read_at))) = (caught_up, &cached.set)
                && read_at.elapsed() < MAX_AGE
            {
                return Ok(set.clone());
            }
            cached.generation
        };
        let read_at = tokio::time::Instant::now();
        let set = Arc::new(read().await?);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        // Kept only if read while the watch was current and nothing moved.
        if caught_up && cached.generation == generation {
            cached.set = Some((set.clone(), read_at));
        }
        Ok(set)
    }

    /// Whether the watch has applied everything the records hold now
    /// (waiting up to [`CATCH_UP`]).
    async fn caught_up(&self, records: &kv::Store) -> bool {
        let Ok(info) = records.stream.get_info().await else {
            return false;
        };
        let last = info.state.last_sequence;
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while self.applied.load(Ordering::SeqCst) < last {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}
