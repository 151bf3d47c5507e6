//! The authority's HTTP health and metrics (setting `http`):
//! `/healthz` (the process serves), `/readyz` (connected to NATS, its
//! buckets open and its reconcile loop running) and Prometheus `/metrics`
//! ([`crate::metrics`], plus the public state service's requests).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use trellis_runtime::observe::{HttpServer, Stats};

use crate::metrics::AuthorityMetrics;

/// Serves HTTP on `addr` for the authority whose connection is `client`,
/// whose metrics are `metrics` and which stops when `stop` fires; `also`
/// are the statistics of the other services it runs. Its buckets were
/// opened before it started, so an authority that runs has them.
pub(crate) async fn serve(
    addr: SocketAddr,
    client: async_nats::Client,
    metrics: Arc<AuthorityMetrics>,
    also: Vec<Stats>,
    stop: CancellationToken,
) -> std::io::Result<HttpServer> {
    let registry = metrics.registry(also);
    let ready = move || {
        !stop.is_cancelled()
            && metrics.reconciling()
            && client.connection_state() == async_nats::connection::State::Connected
    };
    HttpServer::start(addr, registry, Arc::new(ready)).await
}
