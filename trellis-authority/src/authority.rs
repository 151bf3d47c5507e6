//! [`Authority`]: starting an authority instance (request server, auth
//! callout, reconcile loop, public state service) and shutting it down.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::callout::CALLOUT_SUBJECT;
use crate::config::AuthorityConfig;
use crate::inner::Inner;
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
            },
            wake: wake.clone(),
            principals,
            sessions: std::sync::Mutex::default(),
        });
        let subject = authority_subject(&config.deployment, "*");
        let mut requests = client
            .queue_subscribe(subject, format!("trellis-authority-{}", config.deployment))
            .await?;
        let mut tasks = Vec::new();
        if config.auth.is_some() {
            let mut callouts = client
                .queue_subscribe(
                    CALLOUT_SUBJECT,
                    format!("trellis-callout-{}", config.deployment),
                )
                .await?;
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(message) = callouts.next().await {
                    let inner = inner.clone();
                    tokio::spawn(async move { inner.callout(message).await });
                }
            }));
        }
        trellis_runtime::internal::confirm_subscriptions(&client)
            .await
            .map_err(|e| StartError::Confirm(e.to_string()))?;
        let server = {
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Some(message) = requests.next().await {
                    let inner = inner.clone();
                    tokio::spawn(async move { inner.handle(message).await });
                }
            })
        };
        let reconciler = {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = inner.reconciler.pass().await {
                        warn!(error = %e, "reconcile pass failed");
                    }
                    let _ = tokio::time::timeout(
                        inner.config.reconcile_interval,
                        inner.wake.notified(),
                    )
                    .await;
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
        })
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

    /// Stops serving and reconciling.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.public_state.take() {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
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
        Some(auth) => Some(
            trellis_runtime::internal::Verifier::start(
                js,
                &principals::bucket_name(&config.deployment),
                auth.skew_window,
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
    public_state::serve(&runtime, data, authority_records.clone())
        .await
        .map_err(|e| StartError::PublicState(e.to_string()))
}

fn next_instance() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
