//! RPC round-trip latency with authentication off and on, against real
//! nats-servers in the same run. Target: auth adds at most 15% to the p50.
//!
//! One process starts two stacks on one tokio runtime (2 workers), each a
//! nats-server, an authority (deployment `bench`) with `documents@v1`
//! accepted, the documents service serving a cheap `Files.Head` handler
//! (no storage: it builds the reply from the key) and a client:
//!
//! - `auth_off`: a plain nats-server; service and client connect without
//!   credentials, requests carry no headers (plain PUBs).
//! - `auth_on`: a nats-server whose connections go through the authority's
//!   auth callout; service and client connect with enrolled credentials
//!   (the service `documents`, the user `alice` granted `documents::read`).
//!   Every request is signed (SHA-256 of the payload, ed25519 over subject,
//!   digest, time and id) and carries five proof headers; the provider
//!   verifies digest, signature, skew window, reply inbox, replay cache and
//!   the `documents::read` call gate before the handler runs.
//!
//! Both run one sequential call per iteration. The criterion group
//! `rpc_latency_auth` has `auth_off` and `auth_on`; after it, a summary on
//! stderr (`auth ...` lines) times every call of [`ROUNDS`] interleaved
//! rounds of [`CALLS`] calls per mode (alternating which mode goes first),
//! prints p50 / p99 per mode and the on/off p50 ratio, and times the
//! client's signing and the provider's proof check in-process, with the
//! size of the proof headers, to show where the difference goes.
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
use trellis_runtime::identity::{Credentials, PrincipalKind, Proof};
use trellis_runtime::protocol::Phase;
use trellis_testing::{NatsServer, ServerAuth};

/// The deployment both stacks run.
const DEPLOYMENT: &str = "bench";
/// Interleaved rounds per mode in the summary.
const ROUNDS: usize = 6;
/// Sequential calls per round.
const CALLS: usize = 2_000;
/// The stated budget: auth adds at most this to the p50.
const BUDGET: f64 = 1.15;

/// One stack: server, authority, the serving service and a client. Fields
/// drop in order: the client and the service before the authority and the
/// server.
struct Side {
    client: documents::Client,
    _rpc: RpcServer,
    _admin: AuthorityClient,
    _authority: Authority,
    _server: NatsServer,
    /// The client's credentials (auth on only), for the cost breakdown.
    alice: Option<Credentials>,
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
        let (service_options, client_options, alice) = if auth {
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
                options.credentials(alice.clone()),
                Some(alice),
            )
        } else {
            (options.clone(), options, None)
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
            alice,
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
    eprintln!(
        "auth budget: p50 on/off <= {BUDGET:.2}: {}",
        if ratio <= BUDGET { "MET" } else { "EXCEEDED" }
    );

    // Where the difference goes: the client's proof and the provider's
    // check, in-process (the provider also looks up the principal record
    // and the replay cache, and checks the gate: map lookups).
    let creds = f.on.alice.as_ref().expect("alice credentials");
    let signer = creds.signer().expect("signer");
    let subject = format!("trellis.{DEPLOYMENT}.{}.rpc.v1.Files.Head", documents::ID);
    let payload = serde_json::to_vec(&key()).expect("json");
    const N: u32 = 2_000;
    let started = Instant::now();
    let mut proofs: Vec<Proof> = Vec::with_capacity(N as usize);
    for _ in 0..N {
        proofs.push(black_box(signer.prove(&subject, &payload)));
    }
    let prove_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let started = Instant::now();
    for _ in 0..N {
        let mut headers = async_nats::HeaderMap::new();
        black_box(&proofs[0]).write(&mut headers);
        black_box(headers);
    }
    let write_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let now = now_ms();
    let started = Instant::now();
    for proof in &proofs {
        let mut headers = async_nats::HeaderMap::new();
        proof.write(&mut headers);
        let read = Proof::read(Some(&headers)).expect("proof reads back");
        read.verify(&subject, &payload, now, Duration::from_secs(30))
            .expect("proof verifies");
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(N) - write_us;
    let mut headers = async_nats::HeaderMap::new();
    proofs[0].write(&mut headers);
    // NATS/1.0\r\n, each `Name: value\r\n`, and the closing \r\n.
    let header_bytes = 10
        + headers
            .iter()
            .map(|(name, values)| {
                values
                    .iter()
                    .map(|v| name.to_string().len() + 2 + v.as_str().len() + 2)
                    .sum::<usize>()
            })
            .sum::<usize>()
        + 2;
    eprintln!(
        "auth cost in-process: sign {prove_us:.1} us (sha256 + ed25519 + id), headers {write_us:.1} us, \
         read + verify {verify_us:.1} us (sha256 + ed25519 verify); proof headers {header_bytes} B \
         on a {} B payload; sum {:.1} us of the +{:.1} us p50",
        payload.len(),
        prove_us + write_us + verify_us,
        on50 - off50,
    );
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
