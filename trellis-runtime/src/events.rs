//! Typed events: the owner publishes, callers listen live.
//!
//! An event's concrete subject comes from its manifest template
//! (`events.v1.Documents.Created.{/key}`): each `{/pointer}` is replaced by
//! the subject-safe form of that field of the event value (see
//! [`subject_token`]), under the contract prefix
//! `trellis.<deployment>.<contract id>.`. Every event carries the
//! `Trellis-Event-Id` (also `Nats-Msg-Id`, so JetStream drops duplicates of
//! a retried publish) and `Trellis-Event-Time` (unix ms) headers.
//!
//! Published events are stored in the contract's runtime-owned event
//! stream, which the deployment authority provisions when the contract is
//! accepted (capturing `trellis.<deployment>.<contract id>.events.>`), so
//! publishing is acknowledged by JetStream. Live listeners are plain
//! subscriptions: they see events published while they listen, and nothing
//! from before.

use std::marker::PhantomData;
use std::pin::Pin;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::runtime::ServiceRuntime;
use crate::wire::limits::MAX_SUBJECT_BYTES;
use crate::wire::retry::Attempt;
use crate::wire::subjects::{render, surface_subject};

pub use crate::wire::headers::{EVENT_ID_HEADER, EVENT_TIME_HEADER};

/// Why publishing or listening failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event does not encode, or lacks a subject parameter.
    #[error("event `{event}` cannot be published: {reason}")]
    Invalid {
        /// Event name.
        event: String,
        /// Why.
        reason: String,
    },
    /// A filter names something that is not a parameter of the event.
    #[error("event `{event}` has no subject parameter `{param}` (parameters: {params})")]
    UnknownParam {
        /// Event name.
        event: String,
        /// The filter's pointer.
        param: String,
        /// The declared parameters.
        params: String,
    },
    /// NATS failed.
    #[error("event `{event}`: {reason}")]
    Nats {
        /// Event name.
        event: String,
        /// Why.
        reason: String,
    },
    /// A received message carries no proof by a service of the event's
    /// contract (in a deployment that authenticates): it is not the event,
    /// and the listener goes on with the next one.
    #[error("a message on `{subject}` is not a genuine `{event}` event: {reason}")]
    Unverified {
        /// Event name.
        event: String,
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A received event did not decode as the contract says; the listener
    /// goes on with the next one.
    #[error("a `{event}` event on `{subject}` does not decode: {reason}")]
    Decode {
        /// Event name.
        event: String,
        /// Its subject.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// An event as the manifest declares it (used by generated code).
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct EventSpec {
    /// `Group.Leaf`.
    pub name: &'static str,
    /// Subject template (manifest subject).
    pub subject: &'static str,
    /// JSON pointers of the template, in order.
    pub params: &'static [&'static str],
}

/// The subject token for one parameter value: strings and numbers, with
/// every byte outside `A-Z a-z 0-9 - _ =` written as `%XX` (so `.`, `*`,
/// `>` and whitespace cannot change the subject's shape); the empty string
/// is `%`. `None` for other JSON types.
pub fn subject_token(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return Some("%".to_owned());
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'=') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Some(out)
}

/// Publishes one event of the contract (owner side).
pub struct EventPublisher<T> {
    runtime: ServiceRuntime,
    spec: EventSpec,
    js: jetstream::Context,
    _event: PhantomData<fn(&T)>,
}

impl<T> Clone for EventPublisher<T> {
    fn clone(&self) -> Self {
        EventPublisher {
            runtime: self.runtime.clone(),
            spec: self.spec,
            js: self.js.clone(),
            _event: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for EventPublisher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("event", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> EventPublisher<T> {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, spec: EventSpec) -> Self {
        EventPublisher {
            js: jetstream::new(runtime.nats().clone()),
            runtime,
            spec,
            _event: PhantomData,
        }
    }

    /// The concrete subject of `event` (without publishing it).
    pub fn subject_of(&self, event: &T) -> Result<String, EventError> {
        let invalid = |reason: String| EventError::Invalid {
            event: self.spec.name.to_owned(),
            reason,
        };
        let value = serde_json::to_value(event).map_err(|e| invalid(e.to_string()))?;
        let subject = render(self.spec.subject, |pointer| {
            value
                .pointer(pointer)
                .and_then(subject_token)
                .ok_or_else(|| invalid(format!("`{pointer}` is not a string or number")))
        })?;
        let subject = surface_subject(
            self.runtime.deployment(),
            self.runtime.contract_id(),
            &subject,
        );
        // nats-server closes a connection whose protocol line exceeds its
        // control line limit: refuse the event instead.
        if subject.len() > MAX_SUBJECT_BYTES {
            return Err(invalid(format!(
                "its subject would have {} bytes; at most {MAX_SUBJECT_BYTES} are sent \
                 (shorten the parameter values)",
                subject.len()
            )));
        }
        Ok(subject)
    }

    /// Publishes `event`; returns its id once JetStream stored it.
    pub async fn publish(&self, event: &T) -> Result<String, EventError> {
        let subject = self.subject_of(event)?;
        let payload = serde_json::to_vec(event).map_err(|e| EventError::Invalid {
            event: self.spec.name.to_owned(),
            reason: e.to_string(),
        })?;
        let id = crate::wire::ids::random_id();
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_ID_HEADER, id.as_str());
        headers.insert("Nats-Msg-Id", id.as_str());
        headers.insert(EVENT_TIME_HEADER, crate::wire::ids::now_ms().to_string());
        let span = crate::trace::TraceContext::send(
            crate::trace::Hop::Event,
            self.spec.name,
            &mut headers,
        );
        self.runtime.sign_event(&subject, &payload, &mut headers);
        let nats = |e: &dyn std::fmt::Display| EventError::Nats {
            event: self.spec.name.to_owned(),
            reason: e.to_string(),
        };
        // Retried across a failover with the same message id: JetStream's
        // duplicate window stores it once even when an earlier attempt was
        // stored and only its ack was lost.
        let payload = Bytes::from(payload);
        tracing::Instrument::instrument(
            crate::wire::retry::retry_transient(|| async {
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                    .await
                    .map_err(|e| Attempt::of("publishing", &e))?;
                ack.await.map_err(|e| Attempt::of("storing", &e))
            }),
            span,
        )
        .await
        .map_err(|e| nats(&e))?;
        Ok(id)
    }
}

/// One received event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReceivedEvent<T> {
    /// The event.
    pub event: T,
    /// Its id (`Trellis-Event-Id`).
    pub id: String,
    /// When it was published (unix ms).
    pub time_ms: u64,
    /// Its concrete subject.
    pub subject: String,
}

/// Live events; undecodable ones are `Err` items and the stream goes on.
pub type EventStream<T> = Pin<Box<dyn Stream<Item = Result<ReceivedEvent<T>, EventError>> + Send>>;

/// Listens to one event of a contract (caller side).
pub struct EventListener<T> {
    runtime: ServiceRuntime,
    spec: EventSpec,
    filters: Vec<(String, Option<String>)>,
    _event: PhantomData<fn() -> T>,
}

impl<T> Clone for EventListener<T> {
    fn clone(&self) -> Self {
        EventListener {
            runtime: self.runtime.clone(),
            spec: self.spec,
            filters: self.filters.clone(),
            _event: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for EventListener<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventListener")
            .field("event", &self.spec.name)
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static> EventListener<T> {
    #[doc(hidden)]
    pub fn new(runtime: ServiceRuntime, spec: EventSpec) -> Self {
        EventListener {
            runtime,
            spec,
            filters: Vec::new(),
            _event: PhantomData,
        }
    }

    /// Only events whose parameter `pointer` (e.g. `/key`) equals `value`
    /// (a string or number).
    pub fn filter(mut self, pointer: &str, value: impl Into<Value>) -> Self {
        self.filters
            .push((pointer.to_owned(), subject_token(&value.into())));
        self
    }

    /// The subscription subject: the template with filtered parameters
    /// filled in and the others as `*`.
    pub fn subject(&self) -> Result<String, EventError> {
        for (pointer, token) in &self.filters {
            if !self.spec.params.contains(&pointer.as_str()) {
                return Err(EventError::UnknownParam {
                    event: self.spec.name.to_owned(),
                    param: pointer.clone(),
                    params: self.spec.params.join(", "),
                });
            }
            if token.is_none() {
                return Err(EventError::Invalid {
                    event: self.spec.name.to_owned(),
                    reason: format!("the filter on `{pointer}` is not a string or number"),
                });
            }
        }
        let subject = render(self.spec.subject, |pointer| {
            Ok(self
                .filters
                .iter()
                .find(|(p, _)| p == pointer)
                .and_then(|(_, token)| token.clone())
                .unwrap_or_else(|| "*".to_owned()))
        })?;
        Ok(surface_subject(
            self.runtime.deployment(),
            self.runtime.contract_id(),
            &subject,
        ))
    }

    /// Starts listening: events published from now on that match the
    /// filters. The subscription is live on the server when this returns.
    pub async fn listen(&self) -> Result<EventStream<T>, EventError> {
        let subject = self.subject()?;
        let name = self.spec.name;
        let nats = |e: &dyn std::fmt::Display| EventError::Nats {
            event: name.to_owned(),
            reason: e.to_string(),
        };
        let client = self.runtime.nats();
        let sub = client.subscribe(subject).await.map_err(|e| nats(&e))?;
        crate::wire::reply::confirm_subscriptions(client)
            .await
            .map_err(|e| nats(&e))?;
        let runtime = self.runtime.clone();
        Ok(Box::pin(sub.then(move |message| {
            let runtime = runtime.clone();
            async move {
                // A message delivered onto the subject on someone else's
                // behalf is reported, never handed out as the event.
                runtime
                    .verify_event(
                        runtime.contract_id(),
                        &message.subject,
                        message.headers.as_ref(),
                        &message.payload,
                    )
                    .await
                    .map_err(|e| EventError::Unverified {
                        event: name.to_owned(),
                        subject: message.subject.to_string(),
                        reason: e.to_string(),
                    })?;
                let event =
                    serde_json::from_slice(&message.payload).map_err(|e| EventError::Decode {
                        event: name.to_owned(),
                        subject: message.subject.to_string(),
                        reason: e.to_string(),
                    })?;
                Ok(ReceivedEvent {
                    event,
                    id: crate::wire::headers::header(&message, EVENT_ID_HEADER)
                        .unwrap_or_default()
                        .to_owned(),
                    time_ms: crate::wire::headers::header_u64(&message, EVENT_TIME_HEADER)
                        .unwrap_or(0),
                    subject: message.subject.to_string(),
                })
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_subject_safe_and_distinct() {
        let t = |v: Value| subject_token(&v).expect("token");
        assert_eq!(t(Value::from("a-b_c=D9")), "a-b_c=D9");
        assert_eq!(t(Value::from("a.b")), "a%2Eb");
        assert_eq!(t(Value::from("a b*>")), "a%20b%2A%3E");
        assert_eq!(t(Value::from("")), "%");
        assert_eq!(t(Value::from(42)), "42");
        assert_eq!(t(Value::from(-1.5)), "-1%2E5");
        assert_ne!(t(Value::from("a%2Eb")), t(Value::from("a.b")));
        assert!(subject_token(&Value::Bool(true)).is_none());
        assert!(subject_token(&serde_json::json!({"a": 1})).is_none());
    }
}
