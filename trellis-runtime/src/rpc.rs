//! Typed RPCs: serving a contract's RPCs and calling them.
//!
//! Requests and replies are JSON. A successful reply has no headers and
//! carries the output; any other reply carries the `Trellis-Status` header:
//! `error` (payload = the contract's declared error), `bad-request` (the
//! request did not decode; payload = message) or `internal`. Declared errors reach callers as the inner
//! `Err` of `Result<Result<Output, DeclaredError>, CallError>`; everything
//! else is a [`CallError`]. Subjects derive from the deployment, the
//! contract id and the manifest subject, never from author strings.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::debug;

use crate::ledger::LedgerError;
use crate::principal::Principal;
use crate::runtime::ServiceRuntime;
use crate::wire::limits::{MAX_HEADER_BYTES, header_bytes};
use crate::wire::reply::{ConfirmError, REPLY_TOO_LARGE, RawReply, reply};

pub use crate::wire::headers::STATUS_HEADER;
pub use crate::wire::subjects::{NO_CALLER, request_subject, surface_subject};

/// How RPCs and operations are served.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Requests handled at once (across all RPCs of the service).
    pub concurrency: usize,
    /// Operation handlers running at once; further started operations stay
    /// `pending` until one finishes.
    pub operation_concurrency: usize,
    /// How long an operation stays owned by this instance without a
    /// heartbeat; after that any instance fails it as abandoned.
    pub operation_lease: Duration,
    /// A send transfer with no chunk for this long is aborted (capped by the
    /// contract's `expiresInMs`).
    pub transfer_idle_timeout: Duration,
    /// Largest chunk a sender may send (bytes).
    pub transfer_chunk_size: usize,
    /// Chunks a sender may have unacknowledged.
    pub transfer_window: usize,
    /// Operations this instance holds at once (recorded and not finished,
    /// running or waiting for a handler slot); further starts are refused
    /// with a typed error before anything is recorded.
    pub max_operations_in_flight: usize,
    /// Send transfers this instance accepts at once (started and not yet
    /// stored); further starts are refused with a typed error.
    pub max_pending_transfers: usize,
    /// Send transfers one caller may have pending at once.
    pub max_pending_transfers_per_caller: usize,
    /// How often staged chunk subjects that no transfer and no object
    /// refers to (published outside any accepted transfer) are looked for
    /// and purged; one idle for twice the transfer idle timeout is purged.
    pub staged_sweep: Duration,
    /// Where to serve HTTP `/healthz`, `/readyz` and Prometheus
    /// `/metrics` for this instance (off when `None`).
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            concurrency: 64,
            operation_concurrency: 64,
            operation_lease: Duration::from_secs(30),
            transfer_idle_timeout: Duration::from_secs(30),
            transfer_chunk_size: 128 * 1024,
            transfer_window: 64,
            max_operations_in_flight: 1024,
            max_pending_transfers: 128,
            max_pending_transfers_per_caller: 16,
            staged_sweep: Duration::from_secs(300),
            metrics: None,
        }
    }
}

impl ServeOptions {
    /// Sets the RPC concurrency bound (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the operation concurrency bound (at least 1).
    pub fn operation_concurrency(mut self, n: usize) -> Self {
        self.operation_concurrency = n.max(1);
        self
    }

    /// Sets the operation lease (at least 300 ms).
    pub fn operation_lease(mut self, lease: Duration) -> Self {
        self.operation_lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Sets the transfer idle timeout.
    pub fn transfer_idle_timeout(mut self, timeout: Duration) -> Self {
        self.transfer_idle_timeout = timeout;
        self
    }

    /// Sets the transfer chunk size (1 KiB to 1 MiB minus header room).
    pub fn transfer_chunk_size(mut self, bytes: usize) -> Self {
        self.transfer_chunk_size = bytes.clamp(1024, 1024 * 1024 - 4096);
        self
    }

    /// Sets the transfer window (at least 1 chunk).
    pub fn transfer_window(mut self, chunks: usize) -> Self {
        self.transfer_window = chunks.max(1);
        self
    }

    /// Sets how many operations this instance holds at once (at least 1).
    pub fn max_operations_in_flight(mut self, n: usize) -> Self {
        self.max_operations_in_flight = n.max(1);
        self
    }

    /// Sets how many send transfers may be pending at once, in all and per
    /// caller (each at least 1).
    pub fn max_pending_transfers(mut self, total: usize, per_caller: usize) -> Self {
        self.max_pending_transfers = total.max(1);
        self.max_pending_transfers_per_caller = per_caller.max(1);
        self
    }

    /// Sets how often stray staged chunks are looked for (at least 1 s).
    pub fn staged_sweep(mut self, every: Duration) -> Self {
        self.staged_sweep = every.max(Duration::from_secs(1));
        self
    }

    /// Also serves HTTP on `addr` (port 0 picks a free one, see
    /// [`RpcServer::metrics_addr`](crate::RpcServer::metrics_addr)):
    /// `/healthz` (200 while the process serves), `/readyz` (200 while
    /// connected to NATS and serving) and Prometheus `/metrics` (this
    /// instance's requests, errors and latency per RPC and operation, and
    /// its transfer bytes; see [`crate::observe::register`]).
    pub fn metrics(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics = Some(addr);
        self
    }
}

/// Serving failures.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Subscribing to an RPC subject failed.
    #[error("subscribing to `{subject}` failed: {source}")]
    Subscribe {
        /// Subject.
        subject: String,
        /// Error.
        source: async_nats::SubscribeError,
    },
    /// The subscriptions could not be confirmed with the server.
    #[error("confirming RPC subscriptions with the server failed: {0}")]
    Flush(String),
    /// The contract's ledger (operation records) could not be opened.
    #[error("opening the ledger `{bucket}` failed: {reason}")]
    Ledger {
        /// Bucket.
        bucket: String,
        /// Why.
        reason: String,
    },
    /// The HTTP health and metrics address could not be bound.
    #[error("serving HTTP health and metrics on {addr} failed: {source}")]
    Metrics {
        /// The address of [`ServeOptions::metrics`].
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The contract's manifest does not describe a registered operation.
    #[error("operation `{name}` cannot be served: {reason}")]
    Manifest {
        /// Operation name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl From<LedgerError> for ServeError {
    fn from(e: LedgerError) -> Self {
        ServeError::Ledger {
            bucket: e.bucket,
            reason: e.reason,
        }
    }
}

impl From<crate::observe::SubscribeFailed> for ServeError {
    fn from(e: crate::observe::SubscribeFailed) -> Self {
        ServeError::Subscribe {
            subject: e.subject,
            source: e.source,
        }
    }
}

impl From<ConfirmError> for ServeError {
    fn from(e: ConfirmError) -> Self {
        ServeError::Flush(e.to_string())
    }
}

/// Why a call failed (other than with the contract's declared error).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No instance of the service is serving this RPC.
    #[error("no service is serving `{rpc}`")]
    NoResponders {
        /// RPC name.
        rpc: String,
    },
    /// No reply in time.
    #[error("`{rpc}` did not answer within {timeout:?}")]
    Timeout {
        /// RPC name.
        rpc: String,
        /// Timeout.
        timeout: Duration,
    },
    /// Transport failure.
    #[error("calling `{rpc}` failed: {source}")]
    Transport {
        /// RPC name.
        rpc: String,
        /// Error.
        source: async_nats::RequestError,
    },
    /// The request could not be encoded.
    #[error("encoding the `{rpc}` request failed: {source}")]
    Encode {
        /// RPC name.
        rpc: String,
        /// Error.
        source: serde_json::Error,
    },
    /// The service could not decode the request.
    #[error("`{rpc}` refused the request as malformed: {message}")]
    BadRequest {
        /// RPC name.
        rpc: String,
        /// The service's explanation.
        message: String,
    },
    /// The provider could not verify who is calling (missing, forged,
    /// replayed or stale proof, unknown or revoked key).
    #[error("`{rpc}` refused the caller's identity: {message}")]
    Unauthenticated {
        /// RPC name.
        rpc: String,
        /// The provider's reason.
        message: String,
    },
    /// nats-server refused the request: this principal may not publish to
    /// the RPC's subject.
    #[error(
        "nats-server refused `{rpc}`: this principal may not publish to `{subject}` (a service must select the surface in its contract's `uses`)"
    )]
    PermissionDenied {
        /// RPC name.
        rpc: String,
        /// The refused subject.
        subject: String,
    },
    /// The reply would exceed the server's max payload (e.g. a page of
    /// large entries): ask for less.
    #[error("the reply of `{rpc}` is too large to send: {message}")]
    ReplyTooLarge {
        /// RPC name.
        rpc: String,
        /// Its size and the limit.
        message: String,
    },
    /// The caller lacks a capability the RPC requires.
    #[error("`{rpc}` is forbidden: {message}")]
    Forbidden {
        /// RPC name.
        rpc: String,
        /// The provider's reason.
        message: String,
    },
    /// The service failed internally.
    #[error("`{rpc}` failed inside the service: {message}")]
    Internal {
        /// RPC name.
        rpc: String,
        /// Details.
        message: String,
    },
    /// The reply did not decode as the contract says.
    #[error("`{rpc}` sent a malformed reply: {message}")]
    MalformedReply {
        /// RPC name.
        rpc: String,
        /// Why.
        message: String,
    },
}

/// Who sent a request, as the service sees it.
#[derive(Debug, Clone)]
pub struct Caller {
    principal: Principal,
}

impl Caller {
    pub(crate) fn new(principal: Principal) -> Caller {
        Caller { principal }
    }

    /// The calling principal (an anonymous one if the request named none).
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// Resolves once nats-server reports a publish violation on `subject`
/// (never, if the channel closes).
async fn refused(denied: &mut tokio::sync::broadcast::Receiver<String>, subject: &str) {
    let quoted = format!("\"{subject}\"");
    loop {
        match denied.recv().await {
            Ok(message) if message.contains(&quoted) => return,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return std::future::pending().await;
            }
        }
    }
}

/// Admits a request: verifies its caller and, in a deployment that
/// authenticates, checks the `call` gate. A refused request is answered
/// (`unauthenticated` or `forbidden`) and `None` returned, before any
/// handler runs.
pub(crate) async fn admit(
    runtime: &ServiceRuntime,
    message: &async_nats::Message,
    what: &str,
    gate: Option<&[String]>,
) -> Option<Principal> {
    admission(runtime, message, what, gate).await.ok()
}

/// Why [`admission`] refused a request: the status it answered with, or
/// [`DROPPED`] when it answered nothing, and the reason.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: &'static str,
    pub(crate) reason: String,
}

/// The refusal status of a request left unanswered (no reply subject, a
/// reply that is no inbox or outside the caller's inbox).
pub(crate) const DROPPED: &str = "dropped";

/// [`admit`], saying why a request was refused (for the statistics).
pub(crate) async fn admission(
    runtime: &ServiceRuntime,
    message: &async_nats::Message,
    what: &str,
    gate: Option<&[String]>,
) -> Result<Principal, Refusal> {
    let dropped = |reason: &str| Refusal {
        status: DROPPED,
        reason: reason.to_owned(),
    };
    // A request that needs a reply but names none does no work. With
    // authentication, one whose reply is no inbox is not answered either:
    // JetStream deliveries nats-server was made to route here reply on
    // `$JS.ACK.…`, and answering them would publish for the forger.
    let to = message
        .reply
        .as_ref()
        .ok_or_else(|| dropped("the request names no reply subject"))?;
    if runtime.authenticates() && !to.starts_with(crate::identity::INBOXES) {
        debug!(subject = %message.subject, reply = %to, "request dropped: its reply is no inbox");
        return Err(dropped("its reply subject is no inbox"));
    }
    let refuse = |status: &'static str, body: String| async move {
        debug!(status, reason = %body, "request refused");
        reply(
            runtime.nats(),
            message.reply.clone(),
            status,
            async_nats::HeaderMap::new(),
            Bytes::from(body.clone()),
        )
        .await;
        Refusal {
            status,
            reason: body,
        }
    };
    let header_bytes = header_bytes(message.headers.as_ref());
    if header_bytes > MAX_HEADER_BYTES {
        let body = format!(
            "the request carries {header_bytes} header bytes; at most {MAX_HEADER_BYTES} are accepted"
        );
        return Err(refuse("bad-request", body).await);
    }
    match runtime.caller(message).await {
        Err(crate::identity::ProofError::ReplyOutsideInbox) => {
            // Not answered: the reply would go to someone else's inbox.
            debug!(
                subject = %message.subject,
                "request refused: its reply is not below the caller's inbox"
            );
            Err(dropped("its reply subject is not below the caller's inbox"))
        }
        Err(e) => Err(refuse("unauthenticated", e.to_string()).await),
        Ok(caller) if runtime.authenticates() && !caller.may_call(gate) => {
            let missing: Vec<&str> = gate
                .unwrap_or_default()
                .iter()
                .filter(|c| !caller.capabilities.contains(*c))
                .map(String::as_str)
                .collect();
            let body = format!(
                "`{}` may not call {what}: it lacks {}",
                caller.id,
                missing.join(", ")
            );
            Err(refuse("forbidden", body).await)
        }
        Ok(caller) => Ok(caller),
    }
}

/// An RPC as the contract declares it (generated by `#[trellis::contract]`
/// from the manifest it embeds, so nothing is parsed at run time).
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct RpcSpec {
    /// `Group.Leaf`.
    pub name: &'static str,
    /// Manifest subject.
    pub subject: &'static str,
    /// Capabilities a caller needs (the `call` gate), if the contract
    /// gates it; empty means "any authenticated caller".
    pub call: Option<&'static [&'static str]>,
}

/// A declared capability gate as the admission check takes it.
pub(crate) fn gate(capabilities: Option<&'static [&'static str]>) -> Option<Vec<String>> {
    capabilities.map(|caps| caps.iter().map(|c| (*c).to_owned()).collect())
}

/// Calls the RPCs of one contract.
#[derive(Debug, Clone)]
pub struct RpcClient {
    runtime: ServiceRuntime,
}

impl RpcClient {
    pub(crate) fn new(runtime: ServiceRuntime) -> Self {
        RpcClient { runtime }
    }

    /// The connection this client calls on.
    pub(crate) fn runtime(&self) -> &ServiceRuntime {
        &self.runtime
    }

    /// Sends `payload` to the contract surface `subject` (a manifest
    /// subject), with the caller's principal if `identify`, mapping
    /// transport failures.
    pub(crate) async fn request(
        &self,
        name: &str,
        subject: &str,
        payload: Bytes,
        mut headers: async_nats::HeaderMap,
        timeout: Duration,
        identify: bool,
    ) -> Result<RawReply, CallError> {
        let rpc = || name.to_owned();
        let subject = self.runtime.request_subject(subject);
        self.runtime.identify(&mut headers, identify);
        let span = crate::trace::TraceContext::send(crate::trace::Hop::Call, name, &mut headers);
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout))
            .headers(headers);
        let denied = self.runtime.denials();
        let sent = tracing::Instrument::instrument(
            self.runtime.nats().send_request(subject.clone(), request),
            span,
        );
        let sent = match denied {
            None => sent.await,
            Some(mut denied) => {
                tokio::select! {
                    reply = sent => reply,
                    () = refused(&mut denied, &subject) => {
                        return Err(CallError::PermissionDenied { rpc: rpc(), subject });
                    }
                }
            }
        };
        let reply = sent.map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => CallError::NoResponders { rpc: rpc() },
            async_nats::RequestErrorKind::TimedOut => CallError::Timeout {
                rpc: rpc(),
                timeout,
            },
            _ => CallError::Transport {
                rpc: rpc(),
                source: e,
            },
        })?;
        let status = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(STATUS_HEADER))
            .map_or("ok", |v| v.as_str())
            .to_owned();
        Ok(RawReply {
            status,
            headers: reply.headers,
            payload: reply.payload,
        })
    }

    /// Calls RPC `name` on its manifest subject. The request carries no
    /// principal: only RPCs whose handlers see the caller need one (see
    /// [`RpcClient::call_identified`]).
    #[doc(hidden)]
    pub async fn call<I, O, E>(
        &self,
        name: &str,
        subject: &str,
        input: &I,
    ) -> Result<Result<O, E>, CallError>
    where
        I: Serialize,
        O: DeserializeOwned,
        E: DeserializeOwned,
    {
        self.call_with(name, subject, input, false).await
    }

    /// Calls RPC `name` with the caller's principal (for RPCs whose
    /// handlers see the caller, e.g. to bind receive grants to it).
    #[doc(hidden)]
    pub async fn call_identified<I, O, E>(
        &self,
        name: &str,
        subject: &str,
        input: &I,
    ) -> Result<Result<O, E>, CallError>
    where
        I: Serialize,
        O: DeserializeOwned,
        E: DeserializeOwned,
    {
        self.call_with(name, subject, input, true).await
    }

    async fn call_with<I, O, E>(
        &self,
        name: &str,
        subject: &str,
        input: &I,
        identify: bool,
    ) -> Result<Result<O, E>, CallError>
    where
        I: Serialize,
        O: DeserializeOwned,
        E: DeserializeOwned,
    {
        let rpc = || name.to_owned();
        let payload =
            serde_json::to_vec(input).map_err(|source| CallError::Encode { rpc: rpc(), source })?;
        let reply = self
            .request(
                name,
                subject,
                payload.into(),
                async_nats::HeaderMap::new(),
                self.runtime.request_timeout(),
                identify,
            )
            .await?;
        let malformed = |e: serde_json::Error| CallError::MalformedReply {
            rpc: rpc(),
            message: e.to_string(),
        };
        match reply.status.as_str() {
            "ok" => Ok(Ok(
                serde_json::from_slice(&reply.payload).map_err(malformed)?
            )),
            "error" => Ok(Err(
                serde_json::from_slice(&reply.payload).map_err(malformed)?
            )),
            "bad-request" => Err(CallError::BadRequest {
                rpc: rpc(),
                message: reply.text(),
            }),
            "internal" => Err(CallError::Internal {
                rpc: rpc(),
                message: reply.text(),
            }),
            "unauthenticated" => Err(CallError::Unauthenticated {
                rpc: rpc(),
                message: reply.text(),
            }),
            "forbidden" => Err(CallError::Forbidden {
                rpc: rpc(),
                message: reply.text(),
            }),
            REPLY_TOO_LARGE => Err(CallError::ReplyTooLarge {
                rpc: rpc(),
                message: reply.text(),
            }),
            other => Err(CallError::MalformedReply {
                rpc: rpc(),
                message: format!("unknown reply status `{other}`"),
            }),
        }
    }
}

impl ServiceRuntime {
    /// A caller of this contract's RPCs (used by generated code).
    #[doc(hidden)]
    pub fn rpc_client(&self) -> crate::rpc::RpcClient {
        crate::rpc::RpcClient::new(self.clone())
    }
}
