//! Durable event consumer groups: `service.consumers.<group>`.
//!
//! The deployment authority provisions one durable JetStream pull consumer
//! per group and source contract (see `docs/wire-and-storage.md`). The
//! handle reads all of them and yields typed [`Delivery`]s that are acked,
//! nak'd with a delay, or terminated. [`EventConsumer::run`] is the usual
//! way in: a handler error naks with the group's backoff delay (never a hot
//! loop), the final failed attempt is terminated and recorded, and an
//! undecodable payload is terminated and recorded at once instead of being
//! redelivered until `max_deliver` runs out.
//!
//! Delivery is at least once: a message is acknowledged only after the
//! handler returns `Ok`, so a crash or a lost ack redelivers it after the
//! ack wait.

use std::fmt::Display;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::events::{EVENT_ID_HEADER, EVENT_TIME_HEADER};
use crate::protocol::ConsumerBinding;
use crate::runtime::ServiceRuntime;

/// Nak delays when a group declares no backoff schedule.
const DEFAULT_NAK_DELAYS_MS: &[u64] = &[1_000, 5_000, 30_000, 60_000, 300_000];

/// Decodes the events one consumer group receives (implemented by
/// generated code: one enum variant per consumed event).
pub trait GroupEvent: Sized + Send + 'static {
    /// Decodes an event named `event` of contract `contract`.
    fn decode(contract: &str, event: &str, payload: &[u8]) -> Result<Self, String>;
}

/// Why a consumer could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The group has no binding: the contract was accepted without it, or
    /// its consumers are not provisioned.
    #[error("consumer group `{group}` has no provisioned consumer")]
    Unbound {
        /// Group.
        group: String,
    },
    /// NATS failed.
    #[error("consumer group `{group}`: {reason}")]
    Nats {
        /// Group.
        group: String,
        /// Why.
        reason: String,
    },
    /// A message did not decode as its event; it was terminated and
    /// recorded, and the group goes on.
    #[error("consumer group `{group}`: a message on `{subject}` was rejected: {reason}")]
    Rejected {
        /// Group.
        group: String,
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// The event and its metadata.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Consumed<E> {
    /// The typed event.
    pub event: E,
    /// Its id (`Trellis-Event-Id`).
    pub id: String,
    /// When it was published (unix ms).
    pub time_ms: u64,
    /// Its concrete subject.
    pub subject: String,
    /// The contract that published it.
    pub source: String,
    /// The event's name in that contract.
    pub name: String,
    /// Which delivery this is (1 for the first).
    pub attempt: u64,
    /// Its sequence in the source's event stream.
    pub stream_sequence: u64,
}

/// Settles one delivered message.
#[derive(Debug)]
pub struct Acker {
    message: jetstream::Message,
    policy: Arc<Policy>,
    attempt: u64,
}

#[derive(Debug)]
struct Policy {
    group: String,
    max_deliver: u64,
    backoff_ms: Vec<u64>,
    ack_wait_ms: u64,
}

impl Policy {
    fn nak_delay(&self, attempt: u64) -> Duration {
        let schedule = if self.backoff_ms.is_empty() {
            DEFAULT_NAK_DELAYS_MS
        } else {
            &self.backoff_ms
        };
        let i = usize::try_from(attempt.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(schedule.len() - 1);
        Duration::from_millis(schedule[i])
    }

    /// How long the server waits for this attempt's ack (the backoff step
    /// when a schedule is installed).
    fn ack_wait(&self, attempt: u64) -> Duration {
        if self.backoff_ms.is_empty() {
            return Duration::from_millis(self.ack_wait_ms);
        }
        let i = usize::try_from(attempt.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(self.backoff_ms.len() - 1);
        Duration::from_millis(self.backoff_ms[i])
    }
}

impl Acker {
    fn nats(&self, e: impl Display) -> ConsumerError {
        ConsumerError::Nats {
            group: self.policy.group.clone(),
            reason: e.to_string(),
        }
    }

    /// Acknowledges: the message is done.
    pub async fn ack(self) -> Result<(), ConsumerError> {
        self.message.ack().await.map_err(|e| self.nats(e))
    }

    /// Asks for redelivery after `delay` (the group's backoff step for this
    /// attempt when `None`).
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), ConsumerError> {
        let delay = delay.unwrap_or_else(|| self.policy.nak_delay(self.attempt));
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| self.nats(e))
    }

    /// Terminates: the message is never redelivered.
    pub async fn term(self) -> Result<(), ConsumerError> {
        self.message
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| self.nats(e))
    }

    /// Tells the server the message is still being worked on (resets its
    /// ack wait).
    pub async fn in_progress(&self) -> Result<(), ConsumerError> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| self.nats(e))
    }

    /// Whether the server will not deliver it again if this attempt fails.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.policy.max_deliver
    }
}

/// A delivered, decoded message: read it through `Deref`, settle it with
/// [`ack`](Delivery::ack), [`nak`](Delivery::nak) or
/// [`term`](Delivery::term).
#[derive(Debug)]
pub struct Delivery<E> {
    consumed: Consumed<E>,
    acker: Acker,
}

impl<E> std::ops::Deref for Delivery<E> {
    type Target = Consumed<E>;
    fn deref(&self) -> &Consumed<E> {
        &self.consumed
    }
}

impl<E> Delivery<E> {
    /// Splits into the event and its acker.
    pub fn into_parts(self) -> (Consumed<E>, Acker) {
        (self.consumed, self.acker)
    }
    /// See [`Acker::ack`].
    pub async fn ack(self) -> Result<(), ConsumerError> {
        self.acker.ack().await
    }
    /// See [`Acker::nak`].
    pub async fn nak(self, delay: Option<Duration>) -> Result<(), ConsumerError> {
        self.acker.nak(delay).await
    }
    /// See [`Acker::term`].
    pub async fn term(self) -> Result<(), ConsumerError> {
        self.acker.term().await
    }
}

/// A message the group gave up on: undecodable, or failed on its last
/// delivery. Recorded in the contract's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    /// Group.
    pub group: String,
    /// Source contract.
    pub source: String,
    /// Subject.
    pub subject: String,
    /// Sequence in the source's event stream.
    pub stream_sequence: u64,
    /// Why.
    pub reason: String,
    /// When (unix ms).
    pub time_ms: u64,
}

/// Typed deliveries; rejected messages appear as `Err` items and the stream
/// goes on.
pub type Deliveries<E> = Pin<Box<dyn Stream<Item = Result<Delivery<E>, ConsumerError>> + Send>>;

/// The handle of one durable consumer group.
pub struct EventConsumer<E> {
    runtime: ServiceRuntime,
    group: &'static str,
    bindings: Vec<ConsumerBinding>,
    _event: PhantomData<fn() -> E>,
}

impl<E> Clone for EventConsumer<E> {
    fn clone(&self) -> Self {
        EventConsumer {
            runtime: self.runtime.clone(),
            group: self.group,
            bindings: self.bindings.clone(),
            _event: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for EventConsumer<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("group", &self.group)
            .field(
                "sources",
                &self.bindings.iter().map(|b| &b.source).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A running [`EventConsumer::run`] loop.
#[derive(Debug)]
pub struct ConsumerTask {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ConsumerTask {
    /// Stops fetching, lets handlers in flight settle their messages, and
    /// waits for the loop to end.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Stops at once, as a crash would: messages in flight stay unacked
    /// and are redelivered after the ack wait.
    pub fn abort(self) {
        self.task.abort();
    }
}

use crate::wire::ids::now_ms;

impl<E: GroupEvent> EventConsumer<E> {
    #[doc(hidden)]
    pub fn new(
        runtime: ServiceRuntime,
        group: &'static str,
        bindings: Vec<ConsumerBinding>,
    ) -> Self {
        EventConsumer {
            runtime,
            group,
            bindings,
            _event: PhantomData,
        }
    }

    fn nats(&self, e: impl Display) -> ConsumerError {
        ConsumerError::Nats {
            group: self.group.to_owned(),
            reason: e.to_string(),
        }
    }

    /// The group's deliveries from every source, as they arrive.
    pub async fn messages(&self) -> Result<Deliveries<E>, ConsumerError> {
        if self.bindings.is_empty() {
            return Err(ConsumerError::Unbound {
                group: self.group.to_owned(),
            });
        }
        let js = jetstream::new(self.runtime.nats().clone());
        let runtime = Arc::new(self.runtime.clone());
        let mut streams = Vec::new();
        for binding in &self.bindings {
            let consumer: jetstream::consumer::Consumer<pull::Config> = js
                .get_consumer_from_stream(&binding.consumer, &binding.stream)
                .await
                .map_err(|e| self.nats(format!("opening consumer of {}: {e}", binding.source)))?;
            let batch = usize::try_from(binding.max_ack_pending)
                .unwrap_or(usize::MAX)
                .clamp(1, 256);
            let mut pulls = Pulls {
                consumer,
                batch,
                current: None,
                group: self.group,
                failures: 0,
            };
            pulls.current = Some(pulls.open().await.map_err(|e| self.nats(e))?);
            let policy = Arc::new(Policy {
                group: self.group.to_owned(),
                max_deliver: binding.max_deliver,
                backoff_ms: binding.backoff_ms.clone(),
                ack_wait_ms: binding.ack_wait_ms,
            });
            let (runtime, binding) = (runtime.clone(), Arc::new(binding.clone()));
            streams.push(
                futures::stream::unfold(pulls, |mut pulls| async move {
                    let message = pulls.next().await;
                    Some((message, pulls))
                })
                .then(move |message| {
                    let (runtime, binding, policy) =
                        (runtime.clone(), binding.clone(), policy.clone());
                    async move { decode::<E>(message, &runtime, &binding, policy).await }
                })
                .boxed(),
            );
        }
        Ok(Box::pin(futures::stream::select_all(streams)))
    }

    /// Runs `handler` on every delivery until shut down: `Ok` acks, `Err`
    /// naks with the group's backoff delay, and an `Err` on the last
    /// allowed delivery terminates the message and records it. Up to
    /// `concurrency` handlers run at once (one under strict ordering); a
    /// long handler keeps its message with in-progress acks.
    pub async fn run<F, Fut, Err>(&self, handler: F) -> Result<ConsumerTask, ConsumerError>
    where
        F: Fn(Consumed<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Err>> + Send,
        Err: Display + Send,
    {
        let concurrency = self
            .bindings
            .iter()
            .map(|b| b.max_ack_pending)
            .max()
            .unwrap_or(1)
            .max(1);
        let concurrency = usize::try_from(concurrency).unwrap_or(usize::MAX);
        let messages = self.messages().await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let handler = Arc::new(handler);
        let (runtime, group) = (Arc::new(self.runtime.clone()), self.group);
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            messages
                .take_until(stopped.cancelled_owned())
                .for_each_concurrent(concurrency, |item| {
                    let (handler, runtime) = (handler.clone(), runtime.clone());
                    async move {
                        match item {
                            Ok(delivery) => handle(delivery, &*handler, &runtime).await,
                            Err(e) => warn!(group, error = %e, "consumer"),
                        }
                    }
                })
                .await;
        });
        Ok(ConsumerTask { stop, task })
    }

    /// The messages this group gave up on, oldest first.
    pub async fn rejected(&self) -> Result<Vec<Rejected>, ConsumerError> {
        let state = self.runtime.ledger().await.map_err(|e| self.nats(e))?;
        let prefixes: Vec<String> = self
            .bindings
            .iter()
            .map(|b| rejected_prefix(&b.consumer))
            .collect();
        let keys = state
            .keys()
            .await
            .map_err(|e| self.nats(e))?
            .filter_map(|k| async move { k.ok() })
            .filter(|k| futures::future::ready(prefixes.iter().any(|p| k.starts_with(p))))
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::new();
        for key in keys {
            if let Some(value) = state.get(&key).await.map_err(|e| self.nats(e))?
                && let Ok(r) = serde_json::from_slice::<Rejected>(&value)
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| (r.time_ms, r.stream_sequence));
        Ok(out)
    }
}

async fn handle<E, F, Fut, Err>(delivery: Delivery<E>, handler: &F, runtime: &ServiceRuntime)
where
    F: Fn(Consumed<E>) -> Fut,
    Fut: Future<Output = Result<(), Err>>,
    Err: Display,
{
    let (consumed, acker) = delivery.into_parts();
    let (subject, sequence, source) = (
        consumed.subject.clone(),
        consumed.stream_sequence,
        consumed.source.clone(),
    );
    // The handler continues the publisher's trace.
    let (span, trace) = crate::trace::TraceContext::receive(
        crate::trace::Hop::Consume,
        &consumed.name,
        acker.message.headers.as_ref(),
    );
    // Keep the message while the handler runs longer than half its ack wait.
    let work = tracing::Instrument::instrument(trace.scope(handler(consumed)), span);
    tokio::pin!(work);
    // Most handlers finish on their first poll: no timer for those. Longer
    // ones keep their message with in-progress acks every half ack wait.
    let result = match futures::poll!(&mut work) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => {
            let every = (acker.policy.ack_wait(acker.attempt) / 2).max(Duration::from_millis(100));
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    result = &mut work => break result,
                    _ = ticker.tick() => {
                        if let Err(e) = acker.in_progress().await {
                            debug!(error = %e, "in-progress ack failed");
                        }
                    }
                }
            }
        }
    };
    let group = acker.policy.group.clone();
    let settled = match result {
        Ok(()) => acker.ack().await,
        Err(e) if acker.is_last_attempt() => {
            let reason = format!(
                "handler failed on the last delivery ({}): {e}",
                acker.attempt
            );
            warn!(group = %group, subject = %subject, reason = %reason, "giving up on an event");
            record(runtime, &acker, &source, &subject, sequence, &reason).await;
            acker.term().await
        }
        Err(e) => {
            debug!(group = %group, subject = %subject, attempt = acker.attempt, error = %e, "handler failed; redelivering later");
            acker.nak(None).await
        }
    };
    if let Err(e) = settled {
        warn!(group = %group, error = %e, "could not settle a message; it is redelivered after the ack wait");
    }
}

/// The state-bucket key prefix of the messages consumer `consumer` gave up on.
fn rejected_prefix(consumer: &str) -> String {
    format!("rejected.{consumer}.")
}

/// Records a message the group gave up on.
async fn record(
    runtime: &ServiceRuntime,
    acker: &Acker,
    source: &str,
    subject: &str,
    sequence: u64,
    reason: &str,
) {
    let rejected = Rejected {
        group: acker.policy.group.clone(),
        source: source.to_owned(),
        subject: subject.to_owned(),
        stream_sequence: sequence,
        reason: reason.to_owned(),
        time_ms: now_ms(),
    };
    let consumer = acker
        .message
        .info()
        .map(|i| i.consumer.to_owned())
        .unwrap_or_default();
    let key = format!("{}{sequence:020}", rejected_prefix(&consumer));
    let stored = match (runtime.ledger().await, serde_json::to_vec(&rejected)) {
        (Ok(state), Ok(value)) => state
            .put(&key, value.into())
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    if let Err(e) = stored {
        warn!(key = %key, error = %e, "could not record a rejected event");
    }
}

/// Decodes one pulled message; an undecodable one is terminated, recorded
/// and reported as an `Err` item.
async fn decode<E: GroupEvent>(
    message: jetstream::Message,
    runtime: &ServiceRuntime,
    binding: &ConsumerBinding,
    policy: Arc<Policy>,
) -> Result<Delivery<E>, ConsumerError> {
    let (attempt, sequence) = message
        .info()
        .map(|i| (u64::try_from(i.delivered).unwrap_or(1), i.stream_sequence))
        .unwrap_or((1, 0));
    let subject = message.subject.to_string();
    let name = binding
        .events
        .iter()
        .find(|e| subject_matches(&e.subject, &subject))
        .map(|e| e.name.clone());
    let acker = Acker {
        message,
        policy: policy.clone(),
        attempt,
    };
    // A message nats-server was made to deliver onto the source's event
    // subject on someone else's behalf carries no proof by a service of
    // the source contract: rejected and recorded, never handled.
    let verified = runtime
        .verify_event(
            &binding.source,
            &subject,
            acker.message.headers.as_ref(),
            &acker.message.payload,
        )
        .await
        .map_err(|e| format!("unverified publisher: {e}"));
    let decoded = match (&name, verified) {
        (_, Err(reason)) => Err(reason),
        (Some(name), Ok(())) => E::decode(&binding.source, name, &acker.message.payload)
            .map_err(|reason| format!("undecodable: {reason}")),
        (None, Ok(())) => Err("undecodable: the subject matches no event of the group".to_owned()),
    };
    match decoded {
        Ok(event) => Ok(Delivery {
            consumed: Consumed {
                event,
                id: crate::wire::headers::header(&acker.message, EVENT_ID_HEADER)
                    .unwrap_or_default()
                    .to_owned(),
                time_ms: crate::wire::headers::header_u64(&acker.message, EVENT_TIME_HEADER)
                    .unwrap_or(0),
                subject,
                source: binding.source.clone(),
                name: name.unwrap_or_default(),
                attempt,
                stream_sequence: sequence,
            },
            acker,
        }),
        Err(reason) => {
            warn!(group = %policy.group, subject = %subject, reason = %reason, "terminating a rejected event");
            record(
                runtime,
                &acker,
                &binding.source,
                &subject,
                sequence,
                &reason,
            )
            .await;
            if let Err(e) = acker.term().await {
                warn!(error = %e, "could not terminate an undecodable event");
            }
            Err(ConsumerError::Rejected {
                group: policy.group.clone(),
                subject,
                reason,
            })
        }
    }
}

/// The pull subscription of one durable consumer, reopened whenever
/// async-nats reports it unhealthy: a missed heartbeat can otherwise leave
/// a pull request counted as open after the server filled it, and the
/// stream idles until the request expires.
struct Pulls {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    batch: usize,
    current: Option<pull::Stream>,
    group: &'static str,
    failures: u32,
}

impl Pulls {
    async fn open(&self) -> Result<pull::Stream, jetstream::consumer::StreamError> {
        self.consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
    }

    /// The next message, reopening the subscription as needed (with a
    /// growing pause while the consumer cannot be opened).
    async fn next(&mut self) -> jetstream::Message {
        loop {
            let Some(current) = self.current.as_mut() else {
                match self.open().await {
                    Ok(stream) => {
                        self.failures = 0;
                        self.current = Some(stream);
                    }
                    Err(e) => {
                        self.failures += 1;
                        let pause = Duration::from_millis(100 << self.failures.min(8));
                        warn!(group = self.group, error = %e, ?pause, "cannot reopen the pull consumer; retrying");
                        tokio::time::sleep(pause).await;
                    }
                }
                continue;
            };
            match current.next().await {
                Some(Ok(message)) => return message,
                Some(Err(e)) => {
                    debug!(group = self.group, error = %e, "pull consumer; reopening");
                    self.current = None;
                }
                None => self.current = None,
            }
        }
    }
}

/// NATS subject matching with `*` and `>` wildcards in `filter`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_wildcards() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(subject_matches("a.b", "a.b"));
    }

    #[test]
    fn nak_delays_follow_the_schedule_and_stop_at_its_end() {
        let p = Policy {
            group: "g".into(),
            max_deliver: 6,
            backoff_ms: vec![10, 20],
            ack_wait_ms: 300_000,
        };
        assert_eq!(p.nak_delay(1), Duration::from_millis(10));
        assert_eq!(p.nak_delay(2), Duration::from_millis(20));
        assert_eq!(p.nak_delay(9), Duration::from_millis(20));
        assert_eq!(p.ack_wait(1), Duration::from_millis(10));
        let d = Policy {
            backoff_ms: vec![],
            ..p
        };
        assert_eq!(d.nak_delay(1), Duration::from_secs(1));
        assert_eq!(d.ack_wait(3), Duration::from_secs(300));
    }
}
