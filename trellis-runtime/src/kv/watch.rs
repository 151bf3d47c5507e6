//! Watching keys: [`KvHandle::watch`] and the [`KvWatch`] stream.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::SystemTime;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{self, DeliverPolicy, ReplayPolicy};
use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entry::KvChange;
use super::error::KvError;
use super::handle::KvHandle;
use super::key::validate_filter;
use super::message::change_from_message;

impl<T> KvHandle<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Watches the keys matching `filter` (a key or a wildcard pattern, as
    /// for [`keys`](Self::keys)).
    ///
    /// The stream first yields the latest change of every matching key (a
    /// `Put`, or a `Delete`/`Purge` whose marker is still stored), oldest
    /// first, then every later change as it happens. A value that does not
    /// decode yields an `Err(KvError::Decode { .. })` item and the stream
    /// goes on. The watch's server-side consumer is deleted when the stream
    /// is dropped.
    pub async fn watch(&self, filter: &str) -> Result<KvWatch<T>, KvError> {
        validate_filter(filter)?;
        let stream = &self.store.stream;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                description: Some("trellis kv watch".to_owned()),
                filter_subject: format!("{}{filter}", self.store.prefix),
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: ReplayPolicy::Instant,
                // Short pulls: async-nats sets the idle heartbeat to half
                // the pull expiry, and recreates a lost consumer (its
                // server cut off) after two missed heartbeats: 12 s, not
                // the default 60 s.
                max_expires: WATCH_PULL_EXPIRY,
                ..Default::default()
            })
            .await
            .map_err(|err| KvError::nats("watch", filter, err))?;
        let name = consumer.cached_info().name.clone();
        let caught_up = consumer.cached_info().num_pending == 0;
        let messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(err) => {
                if let Err(err) = stream.delete_consumer(&name).await {
                    tracing::debug!(consumer = %name, error = %err, "deleting the kv watch consumer");
                }
                return Err(KvError::nats("watch", filter, err));
            }
        };
        let mut quiet = tokio::time::interval(QUIET_POLL);
        quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(KvWatch {
            messages: Some(Box::pin(messages)),
            quiet,
            stream: stream.clone(),
            consumer: name,
            prefix: self.store.prefix.clone(),
            filter: filter.to_owned(),
            caught_up,
            _values: PhantomData,
        })
    }

    /// Watches every key of the bucket; see [`watch`](Self::watch).
    pub async fn watch_all(&self) -> Result<KvWatch<T>, KvError> {
        self.watch(">").await
    }
}

/// How long one pull of a watch's consumer lasts (see [`KvHandle::watch`]).
const WATCH_PULL_EXPIRY: std::time::Duration = std::time::Duration::from_secs(6);

/// How often a quiet watch polls its consumer again.
const QUIET_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// A typed stream of changes to the keys a [`KvHandle::watch`] matches.
///
/// Items are `Ok(change)` or an error: [`KvError::Decode`] for a value that
/// does not decode, [`KvError::Nats`] for a transport problem (the watch
/// re-establishes itself and goes on). Dropping it deletes its server-side
/// consumer.
pub struct KvWatch<T> {
    messages: Option<Pin<Box<consumer::pull::Ordered>>>,
    /// Re-polls the ordered consumer while it is quiet. async-nats notices
    /// a lost consumer (its server cut off or gone) by two missed idle
    /// heartbeats, but after the first miss it waits for a message before
    /// it arms the second timer; on a partition none comes, and the watch
    /// would stall for good. A poll every few seconds arms it.
    quiet: tokio::time::Interval,
    stream: jetstream::stream::Stream,
    consumer: String,
    prefix: String,
    filter: String,
    caught_up: bool,
    _values: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for KvWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvWatch")
            .field("filter", &self.filter)
            .field("caught_up", &self.caught_up)
            .finish_non_exhaustive()
    }
}

impl<T> KvWatch<T> {
    /// Whether the initial changes (the latest one of every matching key at
    /// the time of the call) have all been yielded; later items are live
    /// changes.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up
    }
}

impl<T: DeserializeOwned> Stream for KvWatch<T> {
    type Item = Result<KvChange<T>, KvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(messages) = this.messages.as_mut() else {
            return Poll::Ready(None);
        };
        let message = match messages.as_mut().poll_next(cx) {
            Poll::Pending => {
                // Wake again on the next quiet tick to poll once more.
                if this.quiet.poll_tick(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => {
                return Poll::Ready(Some(Err(KvError::nats("watch", &this.filter, err))));
            }
            Poll::Ready(Some(Ok(message))) => message,
        };
        let info = match message.info() {
            Ok(info) => info,
            Err(err) => return Poll::Ready(Some(Err(KvError::nats("watch", &this.filter, err)))),
        };
        if info.pending == 0 {
            this.caught_up = true;
        }
        let revision = info.stream_sequence;
        let created = SystemTime::from(info.published);
        Poll::Ready(Some(change_from_message(
            &this.prefix,
            &message.subject,
            message.headers.as_ref(),
            &message.payload,
            revision,
            created,
        )))
    }
}

impl<T> Drop for KvWatch<T> {
    fn drop(&mut self) {
        // Stop pulling first, then delete the consumer in the background
        // (without a runtime it expires on its own).
        self.messages = None;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stream = self.stream.clone();
        let name = std::mem::take(&mut self.consumer);
        runtime.spawn(async move {
            if let Err(err) = stream.delete_consumer(&name).await {
                tracing::debug!(consumer = %name, error = %err, "deleting the kv watch consumer");
            }
        });
    }
}
