//! The caller side of operations: start (with or without a send
//! transfer), reattach, get, wait, watch, cancel.

use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use futures::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::{Control, OperationError, Outcome, Snapshot, WireSnapshot};
use crate::rpc::{CallError, RpcClient};
use crate::store::Body;
use crate::transfer::{CHUNK_SIZE_HEADER, WINDOW_HEADER};
use crate::transfer::{SIZE_HEADER, direct, outbound};
use crate::wire::reply::RawReply;

/// How long one `wait` long poll may be held by the provider. Short, so a
/// poll lost in a failover (NATS requests are at most once) costs at most
/// this plus the request timeout before the caller learns of it; a poll
/// per operation every few seconds costs next to nothing.
const LONG_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Target {
    rpc: RpcClient,
    name: &'static str,
    subject: &'static str,
}

impl Target {
    async fn request(
        &self,
        subject: &str,
        payload: Vec<u8>,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<RawReply, OperationError> {
        Ok(self
            .rpc
            .request(self.name, subject, payload.into(), headers, timeout, true)
            .await?)
    }

    fn error(&self, reply: &RawReply) -> OperationError {
        let operation = self.name.to_owned();
        let message = reply.text();
        match reply.status.as_str() {
            "not-found" => OperationError::NotFound {
                operation,
                id: message,
            },
            "forbidden" => OperationError::Forbidden { operation, message },
            "cancel-unsupported" => OperationError::CancelUnsupported { operation },
            "refused" => OperationError::Refused { operation, message },
            "bad-request" => CallError::BadRequest {
                rpc: operation,
                message,
            }
            .into(),
            "internal" => CallError::Internal {
                rpc: operation,
                message,
            }
            .into(),
            "unauthenticated" => CallError::Unauthenticated {
                rpc: operation,
                message,
            }
            .into(),
            other => CallError::MalformedReply {
                rpc: operation,
                message: format!("unknown reply status `{other}`"),
            }
            .into(),
        }
    }

    fn snapshot<P: DeserializeOwned, O: DeserializeOwned>(
        &self,
        reply: &RawReply,
    ) -> Result<Snapshot<P, O>, OperationError> {
        if reply.status != "ok" {
            return Err(self.error(reply));
        }
        let malformed = |message: String| {
            OperationError::Call(CallError::MalformedReply {
                rpc: self.name.to_owned(),
                message,
            })
        };
        let wire: WireSnapshot =
            serde_json::from_slice(&reply.payload).map_err(|e| malformed(e.to_string()))?;
        Snapshot::decode(wire).map_err(malformed)
    }

    async fn control<P: DeserializeOwned, O: DeserializeOwned>(
        &self,
        control: &Control,
        timeout: Duration,
    ) -> Result<Snapshot<P, O>, OperationError> {
        let payload = serde_json::to_vec(control).map_err(|source| CallError::Encode {
            rpc: self.name.to_owned(),
            source,
        })?;
        let subject = crate::wire::subjects::control_subject(self.subject);
        let reply = self
            .request(&subject, payload, HeaderMap::new(), timeout)
            .await?;
        self.snapshot(&reply)
    }

    fn reference<P, O>(&self, id: String) -> OperationRef<P, O> {
        OperationRef {
            target: self.clone(),
            id,
            _types: PhantomData,
        }
    }

    async fn start<I: Serialize, P: DeserializeOwned, O: DeserializeOwned>(
        &self,
        input: &I,
        headers: HeaderMap,
    ) -> Result<(RawReply, Snapshot<P, O>), OperationError> {
        let payload = serde_json::to_vec(input).map_err(|source| CallError::Encode {
            rpc: self.name.to_owned(),
            source,
        })?;
        let timeout = self.rpc.runtime().request_timeout();
        let reply = self
            .request(self.subject, payload, headers, timeout)
            .await?;
        let snapshot = self.snapshot(&reply)?;
        Ok((reply, snapshot))
    }
}

/// Starts and reattaches to one operation (without a send transfer).
pub struct OperationClient<I, P, O> {
    target: Target,
    _types: PhantomData<fn(I) -> (P, O)>,
}

/// Starts and reattaches to one operation that takes a send transfer.
pub struct SendOperationClient<I, P, O> {
    target: Target,
    _types: PhantomData<fn(I) -> (P, O)>,
}

macro_rules! common {
    ($ty:ident) => {
        impl<I, P, O> std::fmt::Debug for $ty<I, P, O> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("operation", &self.target.name)
                    .finish_non_exhaustive()
            }
        }

        impl<I, P, O> Clone for $ty<I, P, O> {
            fn clone(&self) -> Self {
                $ty {
                    target: self.target.clone(),
                    _types: PhantomData,
                }
            }
        }

        impl<I, P, O> $ty<I, P, O> {
            #[doc(hidden)]
            pub fn new(rpc: RpcClient, name: &'static str, subject: &'static str) -> Self {
                $ty {
                    target: Target { rpc, name, subject },
                    _types: PhantomData,
                }
            }

            /// Reattaches to operation `id` (e.g. after a restart). The
            /// reference can observe and cancel, never send bytes.
            pub fn attach(&self, id: impl Into<String>) -> OperationRef<P, O> {
                self.target.reference(id.into())
            }
        }
    };
}
common!(OperationClient);
common!(SendOperationClient);

impl<I: Serialize, P: DeserializeOwned, O: DeserializeOwned> OperationClient<I, P, O> {
    /// Prepares a start with `input`.
    pub fn input(&self, input: I) -> Start<I, P, O> {
        Start {
            target: self.target.clone(),
            input,
            _types: PhantomData,
        }
    }
}

impl<P: DeserializeOwned, O: DeserializeOwned> OperationClient<crate::Empty, P, O> {
    /// Starts an operation that declares no input.
    pub async fn start(&self) -> Result<OperationRef<P, O>, OperationError> {
        self.input(crate::Empty {}).start().await
    }
}

impl<I: Serialize, P: DeserializeOwned, O: DeserializeOwned> SendOperationClient<I, P, O> {
    /// Prepares a start with `input`; the bytes follow with
    /// [`SendStart::transfer`].
    pub fn input(&self, input: I) -> SendStart<I, P, O> {
        SendStart {
            target: self.target.clone(),
            input,
            _types: PhantomData,
        }
    }
}

/// A prepared start.
#[must_use = "nothing happens until `start` is awaited"]
pub struct Start<I, P, O> {
    target: Target,
    input: I,
    _types: PhantomData<fn() -> (P, O)>,
}

impl<I: Serialize, P: DeserializeOwned, O: DeserializeOwned> Start<I, P, O> {
    /// Starts the operation; returns its reference once it is recorded.
    pub async fn start(self) -> Result<OperationRef<P, O>, OperationError> {
        let (_, snapshot) = self
            .target
            .start::<I, P, O>(&self.input, HeaderMap::new())
            .await?;
        Ok(self.target.reference(snapshot.id))
    }
}

/// A start that still needs its bytes.
#[must_use = "add the bytes with `transfer`"]
pub struct SendStart<I, P, O> {
    target: Target,
    input: I,
    _types: PhantomData<fn() -> (P, O)>,
}

/// Not implemented by any type: names the rule a call broke. An operation
/// that declares a send transfer starts only together with its bytes.
#[diagnostic::on_unimplemented(
    message = "this operation declares a send transfer: it cannot start without its bytes",
    label = "add the bytes first: `.input(input).transfer(body).start()`",
    note = "input and bytes are one start flow; bytes cannot be attached to a started operation"
)]
pub trait StartsWithBytes {}

/// Not implemented by any type: names the rule a call broke. An operation
/// reference (started or reattached) observes and cancels; it never sends.
#[diagnostic::on_unimplemented(
    message = "an operation reference can only observe and cancel; it cannot send bytes",
    label = "bytes travel only in the start flow: `.input(input).transfer(body).start()`",
    note = "a reattached operation cannot resume or add to a transfer"
)]
pub trait SendsBytes {}

impl<I, P, O> SendStart<I, P, O> {
    /// Unavailable: an operation with a send transfer starts with
    /// `.transfer(body).start()`. Calling this is a compile error.
    pub fn start(self) -> std::future::Ready<Result<OperationRef<P, O>, OperationError>>
    where
        Self: StartsWithBytes,
    {
        std::future::ready(Err(OperationError::Refused {
            operation: self.target.name.to_owned(),
            message: "a send transfer operation starts with its bytes".to_owned(),
        }))
    }

    /// The bytes to send: in-memory bytes, a file
    /// ([`Body::file`](crate::Body::file)), a reader or a stream.
    pub fn transfer<'a>(self, body: impl Into<Body<'a>>) -> TransferStart<'a, I, P, O> {
        TransferStart {
            target: self.target,
            input: self.input,
            body: body.into(),
            progress: None,
            started: None,
            idle: Duration::from_secs(30),
            _types: PhantomData,
        }
    }
}

/// Called with the operation id once the provider recorded it.
type Started<'a> = Box<dyn FnOnce(&str) + Send + 'a>;

/// A start with its bytes.
#[must_use = "nothing happens until `start` is awaited"]
pub struct TransferStart<'a, I, P, O> {
    target: Target,
    input: I,
    body: Body<'a>,
    progress: Option<outbound::Progress<'a>>,
    started: Option<Started<'a>>,
    idle: Duration,
    _types: PhantomData<fn() -> (P, O)>,
}

impl<I, P, O> std::fmt::Debug for TransferStart<'_, I, P, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferStart")
            .field("operation", &self.target.name)
            .field("size", &self.body.size())
            .finish_non_exhaustive()
    }
}

impl<'a, I: Serialize, P: DeserializeOwned, O: DeserializeOwned> TransferStart<'a, I, P, O> {
    /// Calls `progress(bytes_acknowledged, total_if_known)` as the provider
    /// acknowledges chunks.
    pub fn on_progress(mut self, progress: impl FnMut(u64, Option<u64>) + Send + 'a) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Calls `started(id)` once the provider recorded the operation, before
    /// the bytes flow (e.g. to log the id, or to cancel from elsewhere).
    pub fn on_started(mut self, started: impl FnOnce(&str) + Send + 'a) -> Self {
        self.started = Some(Box::new(started));
        self
    }

    /// Gives up when the provider acknowledges nothing for this long
    /// (default 30 s).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Starts the operation and sends the bytes. Returns once the provider
    /// verified the digest and stored the object under its final key; the
    /// handler runs from then on.
    pub async fn start(self) -> Result<OperationRef<P, O>, OperationError> {
        let TransferStart {
            target,
            input,
            body,
            progress,
            started,
            idle,
            ..
        } = self;
        let mut headers = HeaderMap::new();
        if let Some(size) = body.size() {
            headers.insert(SIZE_HEADER, size.to_string());
        }
        let (reply, snapshot) = target.start::<I, P, O>(&input, headers).await?;
        let number = |name: &str| reply.header(name).and_then(|v| v.parse::<usize>().ok());
        let (Some(chunk_size), Some(window)) = (number(CHUNK_SIZE_HEADER), number(WINDOW_HEADER))
        else {
            return Err(CallError::MalformedReply {
                rpc: target.name.to_owned(),
                message: "the start reply has no transfer parameters".into(),
            }
            .into());
        };
        if let Some(started) = started {
            started(&snapshot.id);
        }
        let runtime = target.rpc.runtime();
        let control = crate::transfer::transfer_subject(
            &runtime.request_subject(target.subject),
            &snapshot.id,
        );
        let sent = match reply.header(crate::transfer::UPLOAD_HEADER) {
            // Straight into the provider's store (the subject stays inside
            // the runtime).
            Some(upload) => {
                let route = direct::DirectRoute {
                    upload: upload.to_owned(),
                    control,
                    chunk_size,
                    window,
                    idle,
                };
                direct::send_direct(runtime.nats(), route, body, progress).await
            }
            None => {
                let route = outbound::Route {
                    subject: control,
                    chunk_size,
                    window,
                    idle,
                };
                outbound::send(runtime.nats(), route, body, progress).await
            }
        };
        match sent {
            Ok(_) => Ok(target.reference(snapshot.id)),
            Err(source) => Err(OperationError::Transfer {
                operation: target.name.to_owned(),
                source,
            }),
        }
    }
}

/// A started operation: observe it, wait for it, cancel it.
pub struct OperationRef<P, O> {
    target: Target,
    id: String,
    _types: PhantomData<fn() -> (P, O)>,
}

impl<P, O> std::fmt::Debug for OperationRef<P, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationRef")
            .field("operation", &self.target.name)
            .field("id", &self.id)
            .finish()
    }
}

impl<I, P, O> std::fmt::Debug for Start<I, P, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start")
            .field("operation", &self.target.name)
            .finish_non_exhaustive()
    }
}

impl<I, P, O> std::fmt::Debug for SendStart<I, P, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendStart")
            .field("operation", &self.target.name)
            .finish_non_exhaustive()
    }
}

impl<P, O> Clone for OperationRef<P, O> {
    fn clone(&self) -> Self {
        OperationRef {
            target: self.target.clone(),
            id: self.id.clone(),
            _types: PhantomData,
        }
    }
}

/// The changes of an operation: its snapshot, then every change that is
/// still current when observed, ending after the terminal one.
pub type OperationEvents<P, O> =
    Pin<Box<dyn Stream<Item = Result<Snapshot<P, O>, OperationError>> + Send>>;

impl<P, O> OperationRef<P, O>
where
    P: DeserializeOwned + Send + 'static,
    O: DeserializeOwned + Send + 'static,
{
    /// The operation id (keep it to reattach later).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current snapshot.
    pub async fn get(&self) -> Result<Snapshot<P, O>, OperationError> {
        let timeout = self.target.rpc.runtime().request_timeout();
        self.target
            .control(
                &Control::Get {
                    id: self.id.clone(),
                },
                timeout,
            )
            .await
    }

    /// The next snapshot after `revision` (or the current one after a
    /// provider-side poll timeout).
    async fn next_after(&self, revision: u64) -> Result<Snapshot<P, O>, OperationError> {
        let timeout = self.target.rpc.runtime().request_timeout() + LONG_POLL;
        let control = Control::Wait {
            id: self.id.clone(),
            after: revision,
            timeout_ms: u64::try_from(LONG_POLL.as_millis()).unwrap_or(u64::MAX),
        };
        self.target.control(&control, timeout).await
    }

    /// Asks the operation to cancel. Returns the snapshot after the request
    /// (the handler decides when and how the operation ends).
    pub async fn cancel(&self) -> Result<Snapshot<P, O>, OperationError> {
        let timeout = self.target.rpc.runtime().request_timeout();
        self.target
            .control(
                &Control::Cancel {
                    id: self.id.clone(),
                },
                timeout,
            )
            .await
    }

    /// Waits for the operation to finish.
    pub async fn wait(&self) -> Result<Outcome<O>, OperationError>
    where
        O: Clone,
    {
        let mut snapshot = self.get().await?;
        loop {
            if let Some(outcome) = snapshot.outcome() {
                return Ok(outcome);
            }
            snapshot = self.next_after(snapshot.revision).await?;
        }
    }

    /// The snapshot, then changes, ending after the terminal one.
    pub fn watch(&self) -> OperationEvents<P, O> {
        let this = self.clone();
        let stream = futures::stream::unfold(
            (this, None::<u64>, false),
            |(this, last, done)| async move {
                if done {
                    return None;
                }
                let next = match last {
                    None => this.get().await,
                    Some(revision) => loop {
                        match this.next_after(revision).await {
                            Ok(s) if s.revision <= revision && !s.status.is_terminal() => continue,
                            other => break other,
                        }
                    },
                };
                match next {
                    Ok(snapshot) => {
                        let finished = snapshot.status.is_terminal();
                        let revision = snapshot.revision;
                        Some((Ok(snapshot), (this, Some(revision), finished)))
                    }
                    Err(e) => Some((Err(e), (this, last, true))),
                }
            },
        );
        Box::pin(stream)
    }
}

impl<P, O> OperationRef<P, O> {
    /// Unavailable: bytes travel only in the start flow. Calling this is a
    /// compile error.
    pub fn transfer<'a>(&self, _body: impl Into<Body<'a>>) -> Result<(), OperationError>
    where
        Self: SendsBytes,
    {
        Err(OperationError::Refused {
            operation: self.target.name.to_owned(),
            message: "bytes travel only in the start flow".to_owned(),
        })
    }

    /// The operation's name (`Group.Leaf`).
    pub fn operation(&self) -> &str {
        self.target.name
    }
}
