//! Set-up shared by the benches: one tokio runtime (2 workers), one real
//! nats-server and one authority (deployment `bench`) with the benched
//! contracts accepted, and the timing loop every `iter_custom` uses.
#![allow(dead_code)]

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::runtime::Runtime;
use trellis::ConnectOptions;
use trellis_runtime::AuthorityClient;
use trellis_runtime::authority::{Authority, AuthorityConfig};
use trellis_runtime::protocol::{BindingsRecord, Phase};
use trellis_testing::NatsServer;

/// The deployment the benches run in.
pub const DEPLOYMENT: &str = "bench";

/// The stack under a bench. Fields drop in order: the runtime last, so the
/// authority's tasks and the clients go first. Put it last in a fixture.
pub struct Stack {
    /// A client of the authority.
    pub client: AuthorityClient,
    _authority: Authority,
    /// The nats-server.
    pub server: NatsServer,
    /// The runtime everything runs on.
    pub rt: Runtime,
}

impl Stack {
    /// Starts the stack and accepts `manifests`.
    pub fn start(manifests: &[&str]) -> Stack {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (server, authority, client) = rt.block_on(async {
            // Benchmarks run nats-server with JetStream's default sync
            // schedule (a default deployment); tests use `sync_interval:
            // always` so that killed servers keep acknowledged writes.
            // `TRELLIS_BENCH_SYNC_ALWAYS=1` measures with the test setting.
            let server = if std::env::var_os("TRELLIS_BENCH_SYNC_ALWAYS").is_some_and(|v| v == "1")
            {
                NatsServer::start().await
            } else {
                NatsServer::start_periodic_sync().await
            }
            .expect("nats-server starts");
            let authority = Authority::start(
                server.client().await.expect("client"),
                AuthorityConfig::local(DEPLOYMENT),
            )
            .await
            .expect("authority starts");
            let client = AuthorityClient::new(server.client().await.expect("client"), DEPLOYMENT);
            for manifest in manifests {
                client
                    .accept(manifest, false)
                    .await
                    .expect("manifest accepted");
            }
            (server, authority, client)
        });
        Stack {
            client,
            _authority: authority,
            server,
            rt,
        }
    }

    /// The server URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Connect options for this deployment (connect waits, bounded, for the
    /// first reconcile pass).
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions::new(self.url())
            .deployment(DEPLOYMENT)
            .ready_deadline(Duration::from_secs(30))
    }

    /// The bindings of contract `id`, which must be ready.
    pub async fn bindings(&self, id: &str) -> BindingsRecord {
        let state = self
            .client
            .status()
            .await
            .expect("status")
            .contracts
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.state)
            .expect("the contract has a reconcile state");
        assert_eq!(state.phase, Phase::Ready);
        state.bindings
    }

    /// Runs `iters` rounds of `in_flight` concurrent `op`s (one at a time
    /// when `in_flight` is 1) inside one `block_on`; the time of the loop.
    pub fn run<F, Fut>(&self, iters: u64, in_flight: usize, mut op: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: Future,
    {
        self.rt.block_on(async {
            let started = Instant::now();
            for _ in 0..iters {
                if in_flight == 1 {
                    black_box(op().await);
                } else {
                    black_box(join_all((0..in_flight).map(|_| op())).await);
                }
            }
            started.elapsed()
        })
    }
}
