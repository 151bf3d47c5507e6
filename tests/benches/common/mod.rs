//! Set-up shared by the benches: one tokio runtime (2 workers), one real
//! nats-server and one authority (deployment `bench`) with the benched
//! contracts accepted, and the timing loop every `iter_custom` uses.
#![allow(dead_code)]

pub mod stat;

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::runtime::Runtime;
use trellis::ConnectOptions;
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::AuthorityClient;
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
            .and_then(|c| c.status)
            .expect("the contract has a reconcile status");
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

    /// Like [`Stack::run`] with one op at a time, but awaits `prepare`
    /// before every op, untimed; the summed time of the ops.
    pub fn run_prepared<P, FutP, F, Fut>(&self, iters: u64, mut prepare: P, mut op: F) -> Duration
    where
        P: FnMut() -> FutP,
        FutP: Future<Output = ()>,
        F: FnMut() -> Fut,
        Fut: Future,
    {
        self.rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                prepare().await;
                let started = Instant::now();
                black_box(op().await);
                total += started.elapsed();
            }
            total
        })
    }

    /// Runs `typed` and `raw` alternately (`typed` first in even rounds,
    /// `raw` first in odd ones) `rounds` times each after one warm-up
    /// round; returns their median times in seconds. Interleaving cancels
    /// the load drift of a shared machine that separate criterion
    /// benchmarks, run one after the other, pick up.
    pub fn paired<FA, FutA, FB, FutB>(&self, rounds: usize, typed: FA, raw: FB) -> (f64, f64)
    where
        FA: FnMut() -> FutA,
        FutA: Future,
        FB: FnMut() -> FutB,
        FutB: Future,
    {
        self.paired_prepared(rounds, || async {}, typed, raw)
    }

    /// [`Stack::paired`] with `prepare` awaited, untimed, before every
    /// round (the warm-up round too): for work that consumes its input,
    /// such as draining a consumer.
    pub fn paired_prepared<P, FutP, FA, FutA, FB, FutB>(
        &self,
        rounds: usize,
        mut prepare: P,
        mut typed: FA,
        mut raw: FB,
    ) -> (f64, f64)
    where
        P: FnMut() -> FutP,
        FutP: Future<Output = ()>,
        FA: FnMut() -> FutA,
        FutA: Future,
        FB: FnMut() -> FutB,
        FutB: Future,
    {
        let (mut t, mut r) = self.rt.block_on(async {
            let mut t = Vec::with_capacity(rounds);
            let mut r = Vec::with_capacity(rounds);
            prepare().await;
            black_box(typed().await);
            black_box(raw().await);
            for round in 0..rounds {
                prepare().await;
                for side in [round % 2, 1 - round % 2] {
                    let started = Instant::now();
                    if side == 0 {
                        black_box(typed().await);
                        t.push(started.elapsed().as_secs_f64());
                    } else {
                        black_box(raw().await);
                        r.push(started.elapsed().as_secs_f64());
                    }
                }
            }
            (t, r)
        });
        (median(&mut t), median(&mut r))
    }
}

/// Runs `typed` and `raw` interleaved ([`Stack::paired`]), each moving
/// `bytes`, and prints the median throughputs and their ratio typed/raw.
pub fn paired_throughput<FA, FutA, FB, FutB>(
    stack: &Stack,
    name: &str,
    bytes: usize,
    rounds: usize,
    typed: FA,
    raw: FB,
) where
    FA: FnMut() -> FutA,
    FutA: Future,
    FB: FnMut() -> FutB,
    FutB: Future,
{
    let (t, r) = stack.paired(rounds, typed, raw);
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let (typed_rate, raw_rate) = (mib / t, mib / r);
    eprintln!(
        "paired {name:<18} n={rounds:<4} typed {typed_rate:>8.1} MiB/s  raw {raw_rate:>8.1} MiB/s  \
         typed/raw {:.3}",
        typed_rate / raw_rate,
    );
}

/// The median of `values`; sorts them.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Deterministic, incompressible-looking data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u8
        })
        .collect()
}

/// How a typed/raw pair of throughput benchmarks is sampled.
pub struct Sampling {
    /// Bytes moved per iteration.
    pub bytes: usize,
    /// Samples per side.
    pub samples: usize,
    /// Measurement time per side.
    pub measurement: Duration,
}

/// Adds `typed/<label>` and `raw/<label>` to `group`: one operation per
/// iteration, flat sampling, throughput in bytes.
pub fn bench_pair<FA, FutA, FB, FutB>(
    stack: &Stack,
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    sampling: &Sampling,
    mut typed: FA,
    mut raw: FB,
) where
    FA: FnMut() -> FutA,
    FutA: Future,
    FB: FnMut() -> FutB,
    FutB: Future,
{
    group
        .throughput(criterion::Throughput::Bytes(sampling.bytes as u64))
        .sample_size(sampling.samples)
        .measurement_time(sampling.measurement)
        .sampling_mode(criterion::SamplingMode::Flat);
    group.bench_function(criterion::BenchmarkId::new("typed", label), |b| {
        b.iter_custom(|iters| stack.run(iters, 1, &mut typed));
    });
    group.bench_function(criterion::BenchmarkId::new("raw", label), |b| {
        b.iter_custom(|iters| stack.run(iters, 1, &mut raw));
    });
}
