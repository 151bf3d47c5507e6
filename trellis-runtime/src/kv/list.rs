//! Listing keys: [`KvHandle::keys`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::KvError;
use super::handle::KvHandle;
use super::key::validate_filter;
use super::message::{operation, strip_prefix};

/// Messages fetched per pull request while listing keys.
pub(super) const KEYS_BATCH: usize = 1000;

/// How long the server keeps an abandoned consumer of ours (one whose
/// explicit deletion failed).
const CONSUMER_INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// Extra attempts of a `keys` listing after a transport failure.
const KEYS_RETRIES: u32 = 2;

impl<T> KvHandle<T>
where
    T: Serialize + DeserializeOwned,
{
    /// The keys with a live value that match `filter`, sorted.
    ///
    /// `filter` is a key, or a pattern with NATS wildcards: `*` matches
    /// exactly one token, a trailing `>` one or more tokens (`orders.*`,
    /// `orders.>`; `>` lists every key).
    pub async fn keys(&self, filter: &str) -> Result<Vec<String>, KvError> {
        validate_filter(filter)?;
        // Listing is read-only and idempotent: retry transport failures a
        // couple of times (a freshly elected stream leader briefly answers
        // "no responders" on clusters).
        let mut attempt = 0;
        loop {
            match self.keys_once(filter).await {
                Err(KvError::Nats { .. }) if attempt < KEYS_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                result => return result,
            }
        }
    }

    async fn keys_once(&self, filter: &str) -> Result<Vec<String>, KvError> {
        let stream = &self.store.stream;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                description: Some("trellis kv keys".to_owned()),
                filter_subject: format!("{}{filter}", self.store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                replay_policy: ReplayPolicy::Instant,
                headers_only: true,
                max_deliver: 1,
                inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
                num_replicas: 1,
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|err| KvError::nats("keys", filter, err))?;
        let name = consumer.cached_info().name.clone();
        let listed = self.list_keys(&consumer, filter).await;
        // Delete the consumer now rather than let it linger until its
        // inactivity threshold: lingering ones count against the stream's
        // consumer limit.
        if let Err(err) = stream.delete_consumer(&name).await {
            tracing::debug!(consumer = %name, error = %err, "deleting the kv keys consumer");
        }
        listed
    }

    async fn list_keys(
        &self,
        consumer: &consumer::PullConsumer,
        filter: &str,
    ) -> Result<Vec<String>, KvError> {
        // Latest operation per key; a key can show up again if it changes
        // while we list.
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        let mut pending = consumer.cached_info().num_pending;
        while pending > 0 {
            // `fetch` does not wait: it ends when nothing more is available.
            let mut batch = consumer
                .fetch()
                .max_messages(KEYS_BATCH)
                .messages()
                .await
                .map_err(|err| KvError::nats("keys", filter, err))?;
            let mut received = 0usize;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|err| KvError::nats("keys", filter, err))?;
                let info = message
                    .info()
                    .map_err(|err| KvError::nats("keys", filter, err))?;
                pending = info.pending;
                received += 1;
                let key = strip_prefix(&self.store.prefix, &message.subject);
                let operation = operation(message.headers.as_ref());
                live.insert(key.to_owned(), operation == Operation::Put);
            }
            if received == 0 {
                // The pending count went stale (entries expired or were
                // purged before delivery): nothing is left.
                break;
            }
        }
        Ok(live
            .into_iter()
            .filter_map(|(key, is_live)| is_live.then_some(key))
            .collect())
    }
}
