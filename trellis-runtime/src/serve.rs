//! Serving a contract: its RPC, operation and download endpoints, built by
//! generated code into one [`Endpoints`] set and served together by
//! [`serve`] under one concurrency limit, with one graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::observe::{HttpServer, Instance, ServiceApi, Stats};
use crate::operation::server::OperationEndpoint;
use crate::operation::{OperationContext, OperationFailure, OperationSpec};
use crate::rpc::{Caller, RpcSpec, ServeError, ServeOptions, admission, gate};
use crate::runtime::ServiceRuntime;
use crate::store::StoreHandle;
use crate::trace::TraceContext;
use crate::wire::reply::{confirm_subscriptions, json, reply};

type Reply = (&'static str, Bytes);
type BoxFut = Pin<Box<dyn Future<Output = Reply> + Send>>;
type HandlerFn = Arc<dyn Fn(Caller, Bytes) -> BoxFut + Send + Sync>;

/// The RPC and operation endpoints of one service, built by generated code.
#[derive(Default)]
pub struct Endpoints {
    list: Vec<(RpcSpec, HandlerFn)>,
    operations: Vec<OperationEndpoint>,
    downloads: bool,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|(spec, _)| spec.name))
            .entries(self.operations.iter().map(|o| o.spec.name))
            .finish()
    }
}

impl Endpoints {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also serves receive-grant redemptions (downloads).
    pub fn serve_downloads(&mut self) {
        self.downloads = true;
    }

    /// Adds the RPC `spec` declares.
    pub fn add<I, O, E, F, Fut>(&mut self, spec: RpcSpec, handler: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Serialize + Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        self.add_with_caller(spec, move |_caller: Caller, input: I| handler(input));
    }

    /// Adds the RPC `spec` declares, whose handler also sees the [`Caller`].
    pub fn add_with_caller<I, O, E, F, Fut>(&mut self, spec: RpcSpec, handler: F)
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Serialize + Send + 'static,
        F: Fn(Caller, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let rpc = spec.name;
        let handler = Arc::new(handler);
        let f: HandlerFn = Arc::new(move |caller: Caller, payload: Bytes| {
            let handler = handler.clone();
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
                match handler(caller, input).await {
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
        self.list.push((spec, f));
    }
}

impl Endpoints {
    /// Adds the operation `spec` declares. `store` is the store its send
    /// transfer writes to, if it declares one.
    pub fn add_operation<I, P, O, F, Fut>(
        &mut self,
        spec: OperationSpec,
        store: Option<StoreHandle>,
        handler: F,
    ) where
        I: DeserializeOwned + Send + 'static,
        P: Serialize + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(OperationContext<P>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, OperationFailure>> + Send + 'static,
    {
        self.operations
            .push(OperationEndpoint::new(spec, store, handler));
    }
}

/// A running RPC server; [`RpcServer::shutdown`] drains in-flight requests.
pub struct RpcServer {
    tasks: Vec<JoinHandle<()>>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    subscriptions: Vec<tokio::sync::oneshot::Sender<()>>,
    operations: Option<crate::operation::server::OperationServer>,
    /// What its service API and `/metrics` report.
    stats: Stats,
    service_api: Option<ServiceApi>,
    http: Option<HttpServer>,
    /// Cleared when a shutdown starts (`/readyz` then answers 503).
    serving: Arc<std::sync::atomic::AtomicBool>,
    /// The connection the subscriptions live on.
    client: async_nats::Client,
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
pub async fn serve(
    runtime: &ServiceRuntime,
    endpoints: Endpoints,
    options: ServeOptions,
) -> Result<RpcServer, ServeError> {
    let client = runtime.nats();
    let contract_id = runtime.contract_id();
    let stats = Stats::new(Instance::of_contract(
        runtime.deployment(),
        contract_id,
        runtime.digest(),
    ));
    let queue = format!("trellis.{contract_id}");
    // Bound before anything is subscribed, so a busy address fails the
    // start cleanly; `/readyz` says 503 until serving starts.
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http = match options.metrics {
        Some(addr) => Some(
            serve_http(addr, client, &stats, &serving)
                .await
                .map_err(|source| ServeError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let operations = if endpoints.operations.is_empty() {
        None
    } else {
        Some(
            crate::operation::server::serve(runtime, endpoints.operations, &options, &stats)
                .await?,
        )
    };
    let concurrency = options.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    let mut stops = Vec::new();
    for (spec, handler) in endpoints.list {
        let gate = gate(spec.call);
        let name = spec.name;
        let what = format!("`{}`", spec.name);
        let runtime = runtime.clone();
        let subject = runtime.served_subject(spec.subject);
        let endpoint = stats.add_endpoint(spec.name, "rpc", &subject, &queue);
        let mut sub = client
            .queue_subscribe(subject.clone(), queue.clone())
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
            let mut draining = None;
            loop {
                let message = tokio::select! {
                    m = crate::wire::drain::next_or_drained(&mut sub, draining) => m,
                    _ = &mut stop_rx, if draining.is_none() => {
                        draining = Some(crate::wire::drain::drain(&mut sub).await);
                        continue;
                    }
                };
                let Some(message) = message else { break };
                let Some(to) = message.reply.clone() else {
                    continue;
                };
                let mut call = endpoint.begin();
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let principal = match admission(&runtime, &message, &what, gate.as_deref()).await {
                    Ok(principal) => principal,
                    Err(refusal) => {
                        call.finish(refusal.status, refusal.reason.as_bytes());
                        continue;
                    }
                };
                // The handler continues the caller's trace.
                let (span, trace) =
                    TraceContext::receive(crate::trace::Hop::Rpc, name, message.headers.as_ref());
                let work = handler(Caller::new(principal), message.payload);
                let mut pending =
                    Box::pin(tracing::Instrument::instrument(trace.scope(work), span));
                // Handlers that finish without waiting (decode errors, cached
                // or computed answers) are answered inline, saving a task
                // spawn and a cross-thread wake-up; the others get a task.
                match futures::poll!(pending.as_mut()) {
                    std::task::Poll::Ready((status, body)) => {
                        call.finish(status, &body);
                        reply(
                            &client,
                            Some(to),
                            status,
                            async_nats::HeaderMap::new(),
                            body,
                        )
                        .await;
                        drop(permit);
                    }
                    std::task::Poll::Pending => {
                        let client = client.clone();
                        tokio::spawn(async move {
                            let (status, body) = pending.await;
                            call.finish(status, &body);
                            reply(
                                &client,
                                Some(to),
                                status,
                                async_nats::HeaderMap::new(),
                                body,
                            )
                            .await;
                            drop(permit);
                        });
                    }
                }
            }
        }));
    }
    if endpoints.downloads {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop_tx);
        tasks.push(
            crate::transfer::receive::serve(runtime, permits.clone(), stop_rx, stats.clone())
                .await?,
        );
    }
    let service_api = ServiceApi::start(client, stats.clone()).await?;
    // Once `serve` returns, the subscriptions are live on the server.
    confirm_subscriptions(client).await?;
    serving.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(RpcServer {
        tasks,
        permits,
        concurrency,
        subscriptions: stops,
        operations,
        stats,
        service_api: Some(service_api),
        http,
        serving,
        client: client.clone(),
    })
}

/// HTTP health and metrics of one instance: ready while its connection is
/// up and it has not started shutting down.
async fn serve_http(
    addr: std::net::SocketAddr,
    client: &async_nats::Client,
    stats: &Stats,
    serving: &Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<HttpServer> {
    let mut registry = crate::observe::prometheus_client::registry::Registry::default();
    crate::observe::register(&mut registry, vec![stats.clone()]);
    let (client, serving) = (client.clone(), serving.clone());
    let ready = move || {
        serving.load(std::sync::atomic::Ordering::Relaxed)
            && client.connection_state() == async_nats::connection::State::Connected
    };
    HttpServer::start(addr, registry, Arc::new(ready)).await
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        // Dropping the handle leaves the RPC loops running (as before):
        // the service API and HTTP endpoints stay with them.
        if let Some(api) = self.service_api.take() {
            api.detach();
        }
        if let Some(http) = self.http.take() {
            http.detach();
        }
    }
}

impl RpcServer {
    /// Stops serving at once without draining, as a crash would: in-flight
    /// RPCs are dropped and running operations keep their records as they
    /// are until their lease runs out (then another instance fails them).
    /// Use [`RpcServer::shutdown`] for a graceful stop.
    pub fn abort(mut self) {
        self.serving
            .store(false, std::sync::atomic::Ordering::Relaxed);
        drop(self.service_api.take());
        drop(self.http.take());
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(operations) = self.operations.take() {
            operations.abort();
        }
    }

    /// Stops taking requests, waits for in-flight ones to finish (up to
    /// `grace`), and returns whether all finished.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        self.serving
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(api) = self.service_api.take() {
            api.stop().await;
        }
        for stop in self.subscriptions.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let deadline = tokio::time::Instant::now() + grace;
        let rpcs = tokio::time::timeout(grace, self.permits.acquire_many(all))
            .await
            .is_ok_and(|r| r.is_ok());
        let operations = match self.operations.take() {
            Some(ops) => ops.shutdown(deadline).await,
            None => true,
        };
        if let Some(http) = self.http.take() {
            http.stop().await;
        }
        // Once `shutdown` returns, the server has processed the unsubscribes:
        // the next request goes to another instance, not into a subscription
        // nobody reads any more.
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "could not confirm the unsubscribes at shutdown");
        }
        rpcs && operations
    }

    /// Where HTTP health and metrics are served, when
    /// [`ServeOptions::metrics`] asked for them (the bound address, so
    /// port 0 shows the port picked).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// This instance's statistics: what its service API
    /// (`$SRV.PING|INFO|STATS`) and `/metrics` report. Its
    /// [`instance`](Stats::instance) names it on the service API.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl ServiceRuntime {
    /// Serves RPC endpoints (used by generated code).
    #[doc(hidden)]
    pub async fn serve(
        &self,
        endpoints: Endpoints,
        options: ServeOptions,
    ) -> Result<RpcServer, ServeError> {
        serve(self, endpoints, options).await
    }
}
