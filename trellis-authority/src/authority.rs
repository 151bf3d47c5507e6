//! [`Authority`]: starting an authority instance (request server, auth
//! callout, reconcile loop, public state service) and shutting it down.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::callout::CALLOUT_SUBJECT;
use crate::config::AuthorityConfig;
use crate::inner::Inner;
use crate::metrics::AuthorityMetrics;
use crate::naming::valid_scope_name;
use crate::principals::{self, Principals};
use crate::public_state;
use crate::reconcile::Reconciler;
use crate::records::Records;
use trellis_runtime::protocol::{
    AuthorityError, PrincipalRecord, RegisterRequest, authority_subject,
};

/// Why the authority could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Deployment or profile name unusable in subjects.
    #[error("invalid {what} name `{name}`: use 1-32 lowercase letters, digits or `-`")]
    InvalidName {
        /// `deployment` or `profile`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The records bucket (or another authority-owned bucket) could not be
    /// opened.
    #[error(transparent)]
    Records(#[from] AuthorityError),
    /// Subscribing failed.
    #[error("subscribing to authority requests failed: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The subscription could not be confirmed with the server.
    #[error("confirming the authority's subscription failed: {0}")]
    Confirm(String),
    /// The public state service (`trellis.state@v1`) could not start.
    #[error("starting the public state service failed: {0}")]
    PublicState(String),
}

/// A running authority; stops when shut down or dropped.
pub struct Authority {
    tasks: Vec<JoinHandle<()>>,
    wake: Arc<Notify>,
    inner: Arc<Inner>,
    public_state: Option<trellis_runtime::RpcServer>,
    /// Ends the request, callout and reconcile loops (they unsubscribe or
    /// finish their pass first).
    stop: CancellationToken,
    /// Every request and callout being handled.
    handlers: TaskTracker,
    /// What its service API and `/metrics` report.
    metrics: Arc<AuthorityMetrics>,
    service_api: Option<trellis_runtime::observe::ServiceApi>,
    http: Option<trellis_runtime::observe::HttpServer>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// Starts serving requests and reconciling. Several instances may run
    /// against one deployment: requests are load-balanced through a queue
    /// group and reconciliation is coordinated through KV leases.
    pub async fn start(
        client: async_nats::Client,
        config: AuthorityConfig,
    ) -> Result<Authority, StartError> {
        for (what, name) in [
            ("deployment", &config.deployment),
            ("profile", &config.profile),
        ] {
            if !valid_scope_name(name) {
                return Err(StartError::InvalidName {
                    what,
                    name: name.clone(),
                });
            }
        }
        let js = jetstream::new(client.clone());
        let records = Records::open(&js, &config.deployment, config.replicas).await?;
        let principals = match &config.auth {
            Some(_) => Some(Principals::open(&js, &config.deployment, config.replicas).await?),
            None => None,
        };
        let wake = Arc::new(Notify::new());
        let metrics = Arc::new(AuthorityMetrics::new(
            &config.deployment,
            config.auth.is_some(),
        ));
        let holder = format!("authority-{}-{}", std::process::id(), next_instance());
        let inner = Arc::new(Inner {
            client: client.clone(),
            js: js.clone(),
            records: records.clone(),
            config: config.clone(),
            reconciler: Reconciler {
                js,
                records,
                config: config.clone(),
                holder,
                metrics: metrics.clone(),
            },
            wake: wake.clone(),
            principals,
            deployed: Arc::default(),
            sessions: std::sync::Mutex::default(),
        });
        let subject = authority_subject(&config.deployment, "*");
        let requests = client
            .queue_subscribe(subject, format!("trellis-authority-{}", config.deployment))
            .await?;
        let stop = CancellationToken::new();
        let mut tasks = vec![
            inner
                .deployed
                .spawn_watch(inner.records.kv.clone(), stop.clone()),
        ];
        let handlers = TaskTracker::new();
        if config.auth.is_some() {
            let callouts = client
                .queue_subscribe(
                    CALLOUT_SUBJECT,
                    format!("trellis-callout-{}", config.deployment),
                )
                .await?;
            let inner = inner.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(serve_until(
                callouts,
                stop.clone(),
                handlers.clone(),
                move |message| {
                    let (inner, metrics) = (inner.clone(), metrics.clone());
                    let started = std::time::Instant::now();
                    async move { metrics.callout(started, inner.callout(message).await) }
                },
            )));
        }
        let service_api =
            trellis_runtime::observe::ServiceApi::start(&client, metrics.requests().clone())
                .await
                .map_err(|e| StartError::Subscribe(e.source))?;
        trellis_runtime::internal::confirm_subscriptions(&client)
            .await
            .map_err(|e| StartError::Confirm(e.to_string()))?;
        let server = {
            let inner = inner.clone();
            let metrics = metrics.clone();
            tokio::spawn(serve_until(
                requests,
                stop.clone(),
                handlers.clone(),
                move |message| {
                    let inner = inner.clone();
                    let call = metrics.request(&message.subject);
                    // Replies carry their outcome in the payload; the
                    // service API counts requests and their time (and
                    // those `handle` drops: no client sent them).
                    let answered = message
                        .reply
                        .as_ref()
                        .is_some_and(|r| r.starts_with(trellis_runtime::identity::INBOXES));
                    async move {
                        inner.handle(message).await;
                        if let Some(mut call) = call {
                            let status = if answered {
                                trellis_runtime::observe::OK
                            } else {
                                "dropped"
                            };
                            call.finish(status, b"");
                        }
                    }
                },
            ))
        };
        let reconciler = {
            let inner = inner.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let _running = inner.reconciler.metrics.reconcile_loop();
                // A pass is never cut short by a drain: it ends, then the
                // loop stops.
                while !stop.is_cancelled() {
                    if let Err(e) = inner.reconciler.pass().await {
                        warn!(error = %e, "reconcile pass failed");
                    }
                    tokio::select! {
                        _ = tokio::time::timeout(
                            inner.config.reconcile_interval,
                            inner.wake.notified(),
                        ) => {}
                        () = stop.cancelled() => {}
                    }
                }
            })
        };
        tasks.extend([server, reconciler]);
        let public_state =
            Some(start_public_state(&client, &inner.js, &config, &inner.records).await?);
        Ok(Authority {
            tasks,
            wake,
            inner,
            public_state,
            stop,
            handlers,
            metrics,
            service_api: Some(service_api),
            http: None,
        })
    }

    /// Serves HTTP on `addr` (setting `http`; port 0 picks a free port):
    /// `/healthz`, `/readyz` (connected to NATS, buckets open, reconcile
    /// loop running) and Prometheus `/metrics`. Returns the bound address.
    /// It stops with the authority.
    pub async fn serve_http(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<std::net::SocketAddr> {
        let also = self
            .public_state
            .iter()
            .map(|s| s.stats().clone())
            .collect();
        let http = crate::http::serve(
            addr,
            self.inner.client.clone(),
            self.metrics.clone(),
            also,
            self.stop.clone(),
        )
        .await?;
        let bound = http.local_addr();
        self.http = Some(http);
        Ok(bound)
    }

    /// Registers (or re-registers, keeping its capabilities) a principal
    /// key directly, without a request: how a deployment bootstraps its
    /// first operator.
    pub async fn register_principal(
        &self,
        request: RegisterRequest,
    ) -> Result<PrincipalRecord, AuthorityError> {
        self.inner.principals()?.register(request).await
    }

    /// Runs a reconcile pass now instead of waiting for the interval.
    pub fn reconcile_now(&self) {
        self.wake.notify_one();
    }

    /// Stops gracefully: unsubscribes (other instances take new requests
    /// and callouts), handles what was already received, lets the current
    /// reconcile pass end, and stops the public state service; waits up to
    /// `grace` in all, then aborts the rest. Returns whether everything
    /// finished in time.
    pub async fn drain(mut self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        self.stop.cancel();
        if let Some(api) = self.service_api.take() {
            api.stop().await;
        }
        let mut finished = true;
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                finished = false;
            }
        }
        self.handlers.close();
        if tokio::time::timeout_at(deadline, self.handlers.wait())
            .await
            .is_err()
        {
            finished = false;
        }
        if let Some(server) = self.public_state.take() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            finished &= server.shutdown(left).await;
        }
        if let Some(http) = self.http.take() {
            http.stop().await;
        }
        self.unsubscribed().await;
        info!(finished, "authority drained");
        finished
    }

    /// Waits until the server has processed this instance's unsubscribes
    /// (one round trip on its connection), so no request is routed to a
    /// subscription that is gone while another instance could answer it.
    async fn unsubscribed(&self) {
        if let Err(e) = trellis_runtime::internal::confirm_subscriptions(&self.inner.client).await {
            warn!(error = %e, "could not confirm the unsubscribes of a stopping authority");
        }
    }

    /// Stops serving and reconciling at once (in-flight requests are
    /// dropped; see [`Authority::drain`]).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(server) = self.public_state.take() {
            server.abort();
        }
        // The request and callout loops unsubscribe as soon as they see
        // the stop (a reconcile pass in progress is cut short).
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        for mut task in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        if let Some(api) = self.service_api.take() {
            api.stop().await;
        }
        self.unsubscribed().await;
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if let Some(server) = self.public_state.take() {
            server.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves `trellis.state@v1`, verifying callers when the deployment
/// authenticates.
async fn start_public_state(
    client: &async_nats::Client,
    js: &jetstream::Context,
    config: &AuthorityConfig,
    authority_records: &Records,
) -> Result<trellis_runtime::RpcServer, StartError> {
    let data = Records::open_bucket(
        js,
        &public_state::bucket_name(&config.deployment),
        1,
        config.replicas,
    )
    .await?;
    let verifier = match &config.auth {
        Some(_) => Some(
            trellis_runtime::internal::Verifier::start(
                js,
                &principals::callers_bucket_name(&config.deployment),
            )
            .await
            .map_err(StartError::PublicState)?,
        ),
        None => None,
    };
    let runtime = trellis_runtime::internal::ServiceRuntime::new(
        client.clone(),
        &config.deployment,
        trellis_runtime::state::STATE_CONTRACT,
        Duration::from_secs(5),
        trellis_runtime::principal::Principal::new("authority"),
    )
    .with_verifier(verifier);
    let runtime = match trellis_manifest::digest_text(trellis_runtime::state::STATE_MANIFEST) {
        Ok(digest) => runtime.with_digest(&digest),
        Err(_) => runtime,
    };
    public_state::serve(&runtime, data, authority_records.clone())
        .await
        .map_err(|e| StartError::PublicState(e.to_string()))
}

/// Hands every message of `subscription` to `handle` (tracked by
/// `handlers`) until `stop`; then unsubscribes and still handles what the
/// subscription had already received, so nothing accepted is dropped.
async fn serve_until<F, Fut>(
    mut subscription: async_nats::Subscriber,
    stop: CancellationToken,
    handlers: TaskTracker,
    handle: F,
) where
    F: Fn(async_nats::Message) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            message = subscription.next() => match message {
                Some(message) => {
                    handlers.spawn(handle(message));
                }
                None => return,
            },
            () = stop.cancelled() => break,
        }
    }
    if let Err(e) = subscription.unsubscribe().await {
        warn!(error = %e, "unsubscribing at drain failed");
        return;
    }
    // Already delivered to this instance: handle it (bounded by what the
    // server sent before the unsubscribe).
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
    {
        handlers.spawn(handle(message));
    }
}

fn next_instance() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
