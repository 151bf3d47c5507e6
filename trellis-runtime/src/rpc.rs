//! Typed RPCs: serving a contract's RPCs and calling them.
//!
//! Requests and replies are JSON. A successful reply has no headers and
//! carries the output; any other reply carries the `Trellis-Status` header:
//! `error` (payload = the contract's declared error), `bad-request` (the
//! request did not decode; payload = message) or `internal`. Declared errors reach callers as the inner
//! `Err` of `Result<Result<Output, DeclaredError>, CallError>`; everything
//! else is a [`CallError`]. Subjects derive from the deployment, the
//! contract id and the manifest subject, never from author strings.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Reply status header.
pub const STATUS_HEADER: &str = "Trellis-Status";

/// The concrete subject of a contract surface in a deployment.
pub fn surface_subject(deployment: &str, contract_id: &str, manifest_subject: &str) -> String {
    let contract = contract_id.replace('.', "_");
    format!("trellis.{deployment}.{contract}.{manifest_subject}")
}

/// How RPCs are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Requests handled at once (across all RPCs of the service).
    pub concurrency: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { concurrency: 64 }
    }
}

impl ServeOptions {
    /// Sets the concurrency bound (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
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

type Reply = (&'static str, Bytes);
type BoxFut = Pin<Box<dyn Future<Output = Reply> + Send>>;
type HandlerFn = Arc<dyn Fn(Bytes) -> BoxFut + Send + Sync>;

/// The RPC endpoints of one service, built by generated code.
#[derive(Default)]
pub struct Endpoints {
    list: Vec<(String, String, HandlerFn)>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|(n, _, _)| n))
            .finish()
    }
}

fn json<T: Serialize>(value: &T) -> Result<Bytes, String> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

impl Endpoints {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds RPC `name` served on the manifest subject `subject`.
    pub fn add<I, O, E, F, Fut>(&mut self, name: &str, subject: &str, handler: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Serialize + Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let rpc = name.to_owned();
        let handler = Arc::new(handler);
        let f: HandlerFn = Arc::new(move |payload: Bytes| {
            let handler = handler.clone();
            let rpc = rpc.clone();
            Box::pin(async move {
                let input: I = match serde_json::from_slice(&payload) {
                    Ok(i) => i,
                    Err(e) => {
                        debug!(rpc = %rpc, error = %e, "malformed request");
                        return (
                            "bad-request",
                            Bytes::from(format!("request does not decode: {e}")),
                        );
                    }
                };
                match handler(input).await {
                    Ok(out) => match json(&out) {
                        Ok(b) => ("ok", b),
                        Err(e) => (
                            "internal",
                            Bytes::from(format!("output does not encode: {e}")),
                        ),
                    },
                    Err(err) => match json(&err) {
                        Ok(b) => ("error", b),
                        Err(e) => (
                            "internal",
                            Bytes::from(format!("error does not encode: {e}")),
                        ),
                    },
                }
            }) as BoxFut
        });
        self.list.push((name.to_owned(), subject.to_owned(), f));
    }
}

/// A running RPC server; [`RpcServer::shutdown`] drains in-flight requests.
pub struct RpcServer {
    tasks: Vec<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    subscriptions: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcServer")
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Starts serving `endpoints` for `contract_id` in `deployment`. Instances
/// of one contract share a queue group, so requests are load-balanced.
pub(crate) async fn serve(
    client: &async_nats::Client,
    deployment: &str,
    contract_id: &str,
    endpoints: Endpoints,
    options: ServeOptions,
) -> Result<RpcServer, ServeError> {
    let concurrency = options.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    let mut stops = Vec::new();
    for (name, manifest_subject, handler) in endpoints.list {
        let subject = surface_subject(deployment, contract_id, &manifest_subject);
        let mut sub = client
            .queue_subscribe(subject.clone(), format!("trellis.{contract_id}"))
            .await
            .map_err(|source| ServeError::Subscribe {
                subject: subject.clone(),
                source,
            })?;
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        let permits = permits.clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = sub.next() => m,
                    _ = &mut stop_rx => {
                        let _ = sub.unsubscribe().await;
                        break;
                    }
                };
                let Some(message) = message else { break };
                let Some(reply) = message.reply.clone() else {
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let handler = handler.clone();
                let client = client.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let (status, body) = handler(message.payload).await;
                    // `ok` is the header-less common case.
                    let sent = if status == "ok" {
                        client.publish(reply, body).await
                    } else {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(STATUS_HEADER, status);
                        client.publish_with_headers(reply, headers, body).await
                    };
                    if let Err(e) = sent {
                        warn!(rpc = %name, error = %e, "could not send reply");
                    }
                    drop(permit);
                });
            }
        }));
    }
    // Once `serve` returns, the subscriptions are live on the server.
    confirm_subscriptions(client).await?;
    Ok(RpcServer {
        tasks,
        permits,
        concurrency,
        subscriptions: stops,
    })
}

/// A round trip on the same connection: the server handles one
/// connection's protocol in order, so once our own probe message comes
/// back, every earlier subscription is registered. (`flush` only empties
/// the socket buffer.)
pub(crate) async fn confirm_subscriptions(client: &async_nats::Client) -> Result<(), ServeError> {
    let probe = client.new_inbox();
    let mut sub =
        client
            .subscribe(probe.clone())
            .await
            .map_err(|source| ServeError::Subscribe {
                subject: probe.clone(),
                source,
            })?;
    client
        .publish(probe, Bytes::new())
        .await
        .map_err(|e| ServeError::Flush(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ServeError::Flush("probe subscription closed".into())),
        Err(_) => Err(ServeError::Flush("no probe round trip within 10 s".into())),
    }
}

impl RpcServer {
    /// Stops taking requests, waits for in-flight ones to finish (up to
    /// `grace`), and returns whether all finished.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        for stop in self.subscriptions.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.permits.acquire_many(all))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Calls the RPCs of one contract.
#[derive(Debug, Clone)]
pub struct RpcClient {
    client: async_nats::Client,
    deployment: String,
    contract_id: String,
    timeout: Duration,
}

impl RpcClient {
    pub(crate) fn new(
        client: async_nats::Client,
        deployment: &str,
        contract_id: &str,
        timeout: Duration,
    ) -> Self {
        RpcClient {
            client,
            deployment: deployment.to_owned(),
            contract_id: contract_id.to_owned(),
            timeout,
        }
    }

    /// Calls RPC `name` on its manifest subject.
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
        let rpc = || name.to_owned();
        let payload =
            serde_json::to_vec(input).map_err(|source| CallError::Encode { rpc: rpc(), source })?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(self.timeout));
        let subject = surface_subject(&self.deployment, &self.contract_id, subject);
        let reply = self
            .client
            .send_request(subject, request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    CallError::NoResponders { rpc: rpc() }
                }
                async_nats::RequestErrorKind::TimedOut => CallError::Timeout {
                    rpc: rpc(),
                    timeout: self.timeout,
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
            .map_or("ok", |v| v.as_str());
        let text = || String::from_utf8_lossy(&reply.payload).into_owned();
        let malformed = |e: serde_json::Error| CallError::MalformedReply {
            rpc: rpc(),
            message: e.to_string(),
        };
        match status {
            "ok" => Ok(Ok(
                serde_json::from_slice(&reply.payload).map_err(malformed)?
            )),
            "error" => Ok(Err(
                serde_json::from_slice(&reply.payload).map_err(malformed)?
            )),
            "bad-request" => Err(CallError::BadRequest {
                rpc: rpc(),
                message: text(),
            }),
            "internal" => Err(CallError::Internal {
                rpc: rpc(),
                message: text(),
            }),
            other => Err(CallError::MalformedReply {
                rpc: rpc(),
                message: format!("unknown reply status `{other}`"),
            }),
        }
    }
}
