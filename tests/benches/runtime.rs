//! What does the typed runtime cost over raw async-nats?
//!
//! One process starts one nats-server and one authority (deployment
//! `bench`), accepts the items manifest, connects the items service and
//! opens the same physical bucket with plain async-nats. Then, in the same
//! run, against the same server:
//!
//! 1. `kv_get`: `service.kv.items.get(key)` (typed: key validation, direct
//!    get, JSON decode into [`Item`], [`KvEntry`](trellis::KvEntry)) against
//!    raw `kv::Store::get` plus `serde_json::from_slice::<Item>` (what a user
//!    without trellis does), and raw `get` without decoding as the floor.
//! 2. `kv_put`: typed `put(key, &item)` against raw
//!    `kv::Store::put(key, serde_json::to_vec(&item))`.
//! 3. `kv_get_64` / `kv_put_64`: the same with 64 operations in flight
//!    (`join_all` of 64 futures per iteration; throughput is per operation).
//! 4. `connect`: `items::Service::connect` against the already reconciled
//!    contract, against the floor of a raw `async_nats::connect` plus
//!    `get_key_value` of both buckets (names known in advance).
//!
//! The value is one JSON [`Item`] of exactly 256 bytes.
//!
//! Before the criterion groups, a paired report (`paired ...` lines on
//! stderr) runs each typed/raw pair interleaved, alternating which side goes
//! first, and prints both medians, p10/p90, the ratio of the medians and the
//! median of the per-round ratios. On a shared machine the load drifts
//! between criterion benchmarks that run one after the other, by more than
//! the few microseconds that separate typed from raw; interleaving cancels
//! that drift, so use the paired ratios to judge overhead and the criterion
//! groups for absolute times and history. A control line compares raw with
//! raw over two connections (expected ratio ~1.00), and a connect line adds
//! the authority `bindings` request to the raw floor to attribute the
//! difference.
//!
//! Harness: criterion's async support needs a feature the workspace does not
//! enable, and it would add nothing: every benchmark uses `iter_custom` with
//! one `Runtime::block_on` per sample that awaits `iters` operations in a
//! loop and returns the elapsed time measured inside the runtime. So there is
//! one runtime entry per sample, not per operation, and the setup (server,
//! authority, service, raw store) lives in one [`Fixture`] for the whole run.
//! The runtime is a multi-thread tokio runtime (2 workers), as a service
//! would use; both sides use their own NATS connection to the same server.
//! The authority runs its default 2 s drift check throughout, as deployed.
//!
//! Run with `cargo bench -p trellis-tests --bench runtime`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use common::{DEPLOYMENT, Stack};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use items_example::items::{self, Item, Status};
use trellis_runtime::AuthorityClient;

const GET_KEY: &str = "bench-key";
const PUT_KEY: &str = "bench-put";
const VALUE_BYTES: usize = 256;
const IN_FLIGHT: usize = 64;

/// Everything the benchmarks share, created once. Fields drop in order: the
/// runtime last, so the authority's tasks and the clients go first.
struct Fixture {
    service: items::Service,
    raw_items: kv::Store,
    /// The same bucket over a third connection, for the A/A control.
    raw_items_b: kv::Store,
    /// Physical buckets of `items` and `recent`, for the raw connect floor.
    buckets: [String; 2],
    item: Item,
    stack: Stack,
}

/// An item whose JSON encoding is exactly [`VALUE_BYTES`] long.
fn bench_item() -> Item {
    let mut item = Item {
        id: GET_KEY.to_owned(),
        title: String::new(),
        status: Status::Published,
        tags: vec!["furniture".into(), "oak".into(), "handmade".into()],
        price_cents: Some(129_900),
    };
    let base = serde_json::to_vec(&item).expect("encodes").len();
    item.title = "x".repeat(VALUE_BYTES - base);
    assert_eq!(
        serde_json::to_vec(&item).expect("encodes").len(),
        VALUE_BYTES
    );
    item
}

impl Fixture {
    fn start() -> Fixture {
        let stack = Stack::start(&[items::MANIFEST_JSON]);
        let (service, mut raw_items, buckets) = stack.rt.block_on(async {
            let service = items::Service::connect(stack.options())
                .await
                .expect("items service connects");
            let bindings = stack.bindings(items::ID).await;
            let bucket = |alias: &str| bindings.kv[alias].bucket.clone();
            let buckets = [bucket("items"), bucket("recent")];
            let mut raw = Vec::new();
            for _ in 0..2 {
                let client = async_nats::connect(stack.url()).await.expect("raw client");
                let store = jetstream::new(client)
                    .get_key_value(&buckets[0])
                    .await
                    .expect("raw store");
                raw.push(store);
            }
            (service, raw, buckets)
        });
        let raw_items_b = raw_items.pop().expect("two raw stores");
        let raw_items = raw_items.pop().expect("two raw stores");
        let item = bench_item();
        let fixture = Fixture {
            service,
            raw_items,
            raw_items_b,
            buckets,
            item,
            stack,
        };
        fixture.stack.rt.block_on(async {
            let kv = &fixture.service.kv.items;
            kv.put(GET_KEY, &fixture.item).await.expect("seed put");
            kv.put(PUT_KEY, &fixture.item).await.expect("seed put");
            // Both sides read the same value.
            let typed = kv.get(GET_KEY).await.expect("get").expect("present");
            let raw = fixture
                .raw_items
                .get(GET_KEY)
                .await
                .expect("raw get")
                .expect("present");
            assert_eq!(typed.value, fixture.item);
            assert_eq!(raw.len(), VALUE_BYTES);
        });
        eprintln!(
            "fixture: bucket {} ({}), value {VALUE_BYTES} bytes of JSON",
            fixture.buckets[0], fixture.buckets[1]
        );
        fixture
    }
}

async fn typed_get(f: &Fixture) -> Item {
    f.service
        .kv
        .items
        .get(GET_KEY)
        .await
        .expect("typed get")
        .expect("present")
        .value
}

async fn raw_get_decode(f: &Fixture) -> Item {
    let bytes = f
        .raw_items
        .get(GET_KEY)
        .await
        .expect("raw get")
        .expect("present");
    serde_json::from_slice::<Item>(&bytes).expect("decodes")
}

async fn raw_get_bytes(f: &Fixture) -> usize {
    f.raw_items
        .get(GET_KEY)
        .await
        .expect("raw get")
        .expect("present")
        .len()
}

async fn typed_put(f: &Fixture) -> u64 {
    f.service
        .kv
        .items
        .put(PUT_KEY, &f.item)
        .await
        .expect("typed put")
}

async fn raw_put(f: &Fixture) -> u64 {
    let bytes = serde_json::to_vec(&f.item).expect("encodes");
    f.raw_items
        .put(PUT_KEY, bytes.into())
        .await
        .expect("raw put")
}

/// The `pct`-th percentile (nearest rank) of `values`; sorts them.
fn percentile(values: &mut [f64], pct: usize) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[(values.len() - 1) * pct / 100]
}

/// Runs `a` and `b` alternately (`a` first in even rounds, `b` first in odd
/// ones) `rounds` times each and prints their medians and p10/p90 in µs,
/// the ratio of the medians and the median of the per-round ratios `a/b`.
/// Drift of the machine's load hits both sides alike, unlike separate
/// criterion benchmarks that run one after the other.
fn paired<FA, FutA, FB, FutB>(f: &Fixture, name: &str, rounds: usize, mut a: FA, mut b: FB)
where
    FA: FnMut() -> FutA,
    FutA: Future,
    FB: FnMut() -> FutB,
    FutB: Future,
{
    let (mut ta, mut tb) = f.stack.rt.block_on(async {
        let mut ta = Vec::with_capacity(rounds);
        let mut tb = Vec::with_capacity(rounds);
        // A short warm-up, not recorded.
        for _ in 0..rounds.div_ceil(10) {
            black_box(a().await);
            black_box(b().await);
        }
        for round in 0..rounds {
            for side in [round % 2, 1 - round % 2] {
                let started = Instant::now();
                if side == 0 {
                    black_box(a().await);
                    ta.push(started.elapsed().as_secs_f64() * 1e6);
                } else {
                    black_box(b().await);
                    tb.push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        (ta, tb)
    });
    let mut ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x / y).collect();
    let (ma, mb) = (percentile(&mut ta, 50), percentile(&mut tb, 50));
    eprintln!(
        "paired {name:<36} n={rounds:<6} a: median {ma:>8.1} µs (p10 {:>8.1}, p90 {:>8.1})  \
         b: median {mb:>8.1} µs (p10 {:>8.1}, p90 {:>8.1})  a/b medians {:.3}  median of a/b {:.3}",
        percentile(&mut ta, 10),
        percentile(&mut ta, 90),
        percentile(&mut tb, 10),
        percentile(&mut tb, 90),
        ma / mb,
        percentile(&mut ratios, 50),
    );
}

async fn typed_connect(f: &Fixture) -> items::Service {
    items::Service::connect(f.stack.options())
        .await
        .expect("connects")
}

async fn raw_connect(f: &Fixture) -> (kv::Store, kv::Store) {
    let client = async_nats::connect(f.stack.url()).await.expect("connects");
    let js = jetstream::new(client);
    let items = js.get_key_value(&f.buckets[0]).await.expect("items");
    let recent = js.get_key_value(&f.buckets[1]).await.expect("recent");
    (items, recent)
}

/// [`raw_connect`] plus the authority `bindings` request typed connect
/// makes, to attribute the difference between the two.
async fn raw_connect_with_bindings(f: &Fixture) -> (kv::Store, kv::Store) {
    let client = async_nats::connect(f.stack.url()).await.expect("connects");
    let reply = AuthorityClient::new(client.clone(), DEPLOYMENT)
        .bindings(items::ID, items::DIGEST)
        .await
        .expect("bindings");
    black_box(reply);
    let js = jetstream::new(client);
    let items = js.get_key_value(&f.buckets[0]).await.expect("items");
    let recent = js.get_key_value(&f.buckets[1]).await.expect("recent");
    (items, recent)
}

async fn raw_b_get_decode(f: &Fixture) -> Item {
    let bytes = f
        .raw_items_b
        .get(GET_KEY)
        .await
        .expect("raw get")
        .expect("present");
    serde_json::from_slice::<Item>(&bytes).expect("decodes")
}

/// The interleaved comparisons, printed before the criterion groups.
fn paired_report(f: &Fixture) {
    eprintln!("--- paired, interleaved (a vs b; per op, or per round of {IN_FLIGHT} for _64) ---");
    paired(
        f,
        "control raw_decode(conn A)/(conn B)",
        5000,
        || raw_get_decode(f),
        || raw_b_get_decode(f),
    );
    paired(
        f,
        "kv_get typed/raw_decode",
        5000,
        || typed_get(f),
        || raw_get_decode(f),
    );
    paired(
        f,
        "kv_get typed/raw_bytes",
        5000,
        || typed_get(f),
        || raw_get_bytes(f),
    );
    paired(
        f,
        "kv_get raw_decode/raw_bytes",
        5000,
        || raw_get_decode(f),
        || raw_get_bytes(f),
    );
    paired(f, "kv_put typed/raw", 3000, || typed_put(f), || raw_put(f));
    paired(
        f,
        "kv_get_64 typed/raw_decode",
        400,
        || join_all((0..IN_FLIGHT).map(|_| typed_get(f))),
        || join_all((0..IN_FLIGHT).map(|_| raw_get_decode(f))),
    );
    paired(
        f,
        "kv_put_64 typed/raw",
        40,
        || join_all((0..IN_FLIGHT).map(|_| typed_put(f))),
        || join_all((0..IN_FLIGHT).map(|_| raw_put(f))),
    );
    paired(
        f,
        "connect typed/raw",
        300,
        || typed_connect(f),
        || raw_connect(f),
    );
    paired(
        f,
        "connect typed/raw+bindings request",
        300,
        || typed_connect(f),
        || raw_connect_with_bindings(f),
    );
}

fn kv_get(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("kv_get");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typed", |b| {
        b.iter_custom(|iters| f.stack.run(iters, 1, || typed_get(f)));
    });
    group.bench_function("raw_decode", |b| {
        b.iter_custom(|iters| f.stack.run(iters, 1, || raw_get_decode(f)));
    });
    group.bench_function("raw_bytes", |b| {
        b.iter_custom(|iters| f.stack.run(iters, 1, || raw_get_bytes(f)));
    });
    group.finish();
}

fn kv_put(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("kv_put");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.bench_function("typed", |b| {
        b.iter_custom(|iters| f.stack.run(iters, 1, || typed_put(f)));
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| f.stack.run(iters, 1, || raw_put(f)));
    });
    group.finish();
}

fn kv_get_concurrent(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("kv_get_64");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.sample_size(30);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("typed", |b| {
        b.iter_custom(|iters| f.stack.run(iters, IN_FLIGHT, || typed_get(f)));
    });
    group.bench_function("raw_decode", |b| {
        b.iter_custom(|iters| f.stack.run(iters, IN_FLIGHT, || raw_get_decode(f)));
    });
    group.finish();
}

fn kv_put_concurrent(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("kv_put_64");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.sample_size(20);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("typed", |b| {
        b.iter_custom(|iters| f.stack.run(iters, IN_FLIGHT, || typed_put(f)));
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| f.stack.run(iters, IN_FLIGHT, || raw_put(f)));
    });
    group.finish();
}

fn connect(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("connect");
    // Milliseconds per iteration: fewer, flat samples keep this within the
    // measurement time. Each connection is dropped outside the timed part.
    group.sample_size(30);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("typed", |b| {
        b.iter_custom(|iters| {
            f.stack.rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let service = typed_connect(f).await;
                    total += started.elapsed();
                    drop(black_box(service));
                }
                total
            })
        });
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            f.stack.rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let client = async_nats::connect(f.stack.url()).await.expect("connects");
                    let js = jetstream::new(client);
                    let items = js.get_key_value(&f.buckets[0]).await.expect("items");
                    let recent = js.get_key_value(&f.buckets[1]).await.expect("recent");
                    total += started.elapsed();
                    drop(black_box((items, recent, js)));
                }
                total
            })
        });
    });
    group.finish();
}

fn runtime(c: &mut Criterion) {
    let fixture = Fixture::start();
    paired_report(&fixture);
    kv_get(c, &fixture);
    kv_put(c, &fixture);
    kv_get_concurrent(c, &fixture);
    kv_put_concurrent(c, &fixture);
    connect(c, &fixture);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = runtime
}
criterion_main!(benches);
