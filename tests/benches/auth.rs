//! RPC round-trip latency with authentication off and on, against real
//! nats-servers in the same run. Goals: auth adds at most 10% to the p50
//! and 30% to the p99.
//!
//! One process starts two stacks on one tokio runtime (2 workers), each a
//! nats-server, an authority (deployment `bench`) with `documents@v1`
//! accepted, the documents service serving a cheap `Files.Head` handler
//! (no storage: it builds the reply from the key) and a client:
//!
//! - `auth_off`: a plain nats-server; service and client connect without
//!   credentials, requests carry no headers (plain PUBs) and go below the
//!   caller token `_`.
//! - `auth_on`: a nats-server whose connections go through the authority's
//!   auth callout; service and client connect with enrolled credentials
//!   (the service `documents`, the user `alice` granted `documents::read`).
//!   Requests go below alice's key, which nats-server lets only her
//!   connections publish to; they carry no headers either. The provider
//!   reads the key from the subject, checks the reply is below her inbox,
//!   looks her record up in its watched copy of the principals and checks
//!   the `documents::read` call gate before the handler runs.
//!
//! Both run one sequential call per iteration. The criterion group
//! `rpc_latency_auth` has `auth_off` and `auth_on`; after it, a summary on
//! stderr (`auth ...` lines) times every call of [`ROUNDS`] interleaved
//! rounds of [`CALLS`] calls per mode (alternating which mode goes first)
//! and prints p50 / p99 per mode and the on/off ratios.
//!
//! `cargo bench -p trellis-tests --bench auth`

mod common;

use std::hint::black_box;

use std::time::{Duration, Instant};

use common::stat::Stat;
use criterion::{Criterion, criterion_group, criterion_main};
use documents_example::documents::{self, FileEntry, FileKey};
use tokio::runtime::Runtime;
use trellis::{ConnectOptions, RpcServer, ServeOptions};
use trellis_authority::callout::AuthSettings;
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::AuthorityClient;
use trellis_runtime::identity::PrincipalKind;
use trellis_runtime::protocol::Phase;
use trellis_testing::{NatsServer, ServerAuth};

/// The deployment both stacks run.
const DEPLOYMENT: &str = "bench";
/// Interleaved rounds per mode in the summary.
const ROUNDS: usize = 6;
/// Sequential calls per round.
const CALLS: usize = 2_000;
/// The goals: auth adds at most this to the p50 ...
const BUDGET_P50: f64 = 1.10;
/// ... and this to the p99.
const BUDGET_P99: f64 = 1.30;

/// One stack: server, authority, the serving service and a client. Fields
/// drop in order: the client and the service before the authority and the
/// server.
struct Side {
    client: documents::Client,
    _rpc: RpcServer,
    _admin: AuthorityClient,
    _authority: Authority,
    _server: NatsServer,
}

async fn wait_ready(admin: &AuthorityClient) {
    let started = Instant::now();
    loop {
        let ready = admin
            .status()
            .await
            .expect("status")
            .contracts
            .into_iter()
            .find(|c| c.id == documents::ID)
            .and_then(|c| c.status)
            .is_some_and(|s| s.phase == Phase::Ready && s.digest == documents::DIGEST);
        if ready {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "documents@v1 did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Side {
    async fn start(auth: bool) -> Side {
        let config = AuthorityConfig::local(DEPLOYMENT);
        // Both servers use the same (test) JetStream sync setting; plain
        // RPC does not touch JetStream anyway.
        let (server, config) = if auth {
            let keys = ServerAuth::generate().expect("keys");
            let settings = AuthSettings::new(&keys.issuer_seed, &keys.account).expect("settings");
            let server = NatsServer::start_with_auth(keys)
                .await
                .expect("nats-server with auth starts");
            (server, config.auth(settings))
        } else {
            let server = NatsServer::start().await.expect("nats-server starts");
            (server, config)
        };
        let authority = Authority::start(server.client().await.expect("client"), config)
            .await
            .expect("authority starts");
        let admin = AuthorityClient::new(server.client().await.expect("client"), DEPLOYMENT);
        admin
            .accept(documents::MANIFEST_JSON, false)
            .await
            .expect("documents accepted");
        wait_ready(&admin).await;

        let options = ConnectOptions::new(server.url())
            .deployment(DEPLOYMENT)
            .ready_deadline(Duration::from_secs(30));
        let (service_options, client_options) = if auth {
            let docs = admin
                .enroll(
                    PrincipalKind::Service,
                    "documents",
                    None,
                    Some(documents::ID),
                )
                .await
                .expect("enroll documents");
            let alice = admin
                .enroll(PrincipalKind::User, "alice", None, None)
                .await
                .expect("enroll alice");
            admin
                .grant("alice", &["documents::read"], false)
                .await
                .expect("grant alice documents::read");
            (
                options.clone().credentials(docs),
                options.credentials(alice),
            )
        } else {
            (options.clone(), options)
        };
        let service = documents::Service::connect(service_options)
            .await
            .expect("service connects");
        let rpc = service
            .serve(Stat, ServeOptions::default())
            .await
            .expect("serve");
        let client = documents::Client::connect(client_options)
            .await
            .expect("client connects");
        let side = Side {
            client,
            _rpc: rpc,
            _admin: admin,
            _authority: authority,
            _server: server,
        };
        // The first call proves the path works (and, under auth, that the
        // grant reached the provider).
        let started = Instant::now();
        loop {
            match side.client.rpc.files.head(&key()).await {
                Ok(Ok(_)) => break,
                other => {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "Files.Head keeps failing (auth {auth}): {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        side
    }
}

fn key() -> FileKey {
    FileKey {
        key: "docs/readme.txt".into(),
    }
}

async fn call(side: &Side) -> FileEntry {
    side.client
        .rpc
        .files
        .head(&key())
        .await
        .expect("call")
        .expect("declared ok")
}

struct Fixture {
    off: Side,
    on: Side,
    /// Last: everything above runs on it.
    rt: Runtime,
}

impl Fixture {
    fn start() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (off, on) = rt.block_on(async { (Side::start(false).await, Side::start(true).await) });
        Fixture { off, on, rt }
    }

    fn side(&self, auth: bool) -> &Side {
        if auth { &self.on } else { &self.off }
    }

    /// The time of `iters` sequential calls.
    fn run(&self, auth: bool, iters: u64) -> Duration {
        let side = self.side(auth);
        self.rt.block_on(async {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(call(side).await);
            }
            started.elapsed()
        })
    }

    /// Appends the latency of each of `n` sequential calls, in µs.
    fn sample(&self, auth: bool, n: usize, into: &mut Vec<f64>) {
        let side = self.side(auth);
        self.rt.block_on(async {
            for _ in 0..n {
                let started = Instant::now();
                black_box(call(side).await);
                into.push(started.elapsed().as_secs_f64() * 1e6);
            }
        });
    }
}

/// The `q` quantile (nearest rank) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_unstable_by(f64::total_cmp);
    values
}

/// Interleaved per-call latencies of both modes, then the in-process cost
/// of signing and verifying one request.
fn summary(f: &Fixture) {
    // Warm-up, untimed.
    let mut scratch = Vec::with_capacity(CALLS);
    f.sample(false, CALLS / 4, &mut scratch);
    f.sample(true, CALLS / 4, &mut scratch);

    let mut off = Vec::with_capacity(ROUNDS * CALLS);
    let mut on = Vec::with_capacity(ROUNDS * CALLS);
    let mut round_ratios = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (mut r_off, mut r_on) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for auth in order {
            if auth {
                f.sample(true, CALLS, &mut r_on);
            } else {
                f.sample(false, CALLS, &mut r_off);
            }
        }
        let (r_off, r_on) = (sorted(r_off), sorted(r_on));
        round_ratios.push(quantile(&r_on, 0.5) / quantile(&r_off, 0.5));
        off.extend(r_off);
        on.extend(r_on);
    }
    let (off, on) = (sorted(off), sorted(on));
    let (off50, off99) = (quantile(&off, 0.5), quantile(&off, 0.99));
    let (on50, on99) = (quantile(&on, 0.5), quantile(&on, 0.99));
    let ratio = on50 / off50;
    eprintln!(
        "--- auth summary: {ROUNDS} interleaved rounds x {CALLS} sequential Files.Head calls per mode ---"
    );
    eprintln!("auth off  p50 {off50:>8.1} us  p99 {off99:>8.1} us");
    eprintln!("auth on   p50 {on50:>8.1} us  p99 {on99:>8.1} us");
    eprintln!(
        "auth on/off  p50 {ratio:.3} (+{:.1} us)  p99 {:.3}  per-round p50 ratios {}",
        on50 - off50,
        on99 / off99,
        round_ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let met = |ok: bool| if ok { "MET" } else { "EXCEEDED" };
    eprintln!(
        "auth budget: p50 on/off <= {BUDGET_P50:.2}: {}  p99 on/off <= {BUDGET_P99:.2}: {}",
        met(ratio <= BUDGET_P50),
        met(on99 / off99 <= BUDGET_P99),
    );
}

fn auth(c: &mut Criterion) {
    let f = Fixture::start();
    {
        let mut g = c.benchmark_group("rpc_latency_auth");
        g.bench_function("auth_off", |b| b.iter_custom(|n| f.run(false, n)));
        g.bench_function("auth_on", |b| b.iter_custom(|n| f.run(true, n)));
        g.finish();
    }
    summary(&f);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    targets = auth
}
criterion_main!(benches);
