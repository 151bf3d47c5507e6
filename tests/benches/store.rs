//! Object store throughput: the typed [`trellis::Store`] against raw
//! async-nats [`ObjectStore`], on one nats-server in the same run.
//!
//! One process starts one nats-server and one authority (deployment
//! `bench`), accepts the bench-local `bench-files@v1` contract (a single
//! store, `blobs`), connects its service and opens the same physical bucket
//! with plain async-nats over a second connection. Then, for objects of
//! 64 KiB (half a chunk), 4 MiB (32 chunks) and 64 MiB (512 chunks):
//!
//! 1. `store_put`: typed `store.put(key, &payload[..], PutOptions::new())`
//!    against raw `ObjectStore::put(key, &mut &payload[..])`. Both read the
//!    same in-memory slice and copy it chunk by chunk; both replace the
//!    previous version of their key (and drop its chunks) on every
//!    iteration.
//! 2. `store_get`: typed `store.get(key)` + `Object::bytes()` against raw
//!    `ObjectStore::get(key)` + `read_to_end` into a `Vec` preallocated to
//!    the object's size (what a careful raw user does).
//!
//! Typed and raw use distinct keys (`typed-<size>`, `raw-<size>`) in the
//! same bucket, so they never overwrite each other and share the stream
//! configuration. Criterion reports throughput in bytes per second (MiB/s).
//!
//! Before the criterion groups, a paired report (`paired ...` lines on
//! stderr) runs each typed/raw pair interleaved, alternating which side goes
//! first, and prints both medians in MiB/s and the ratio typed/raw of the
//! median throughputs: interleaving cancels the load drift of a shared
//! machine between criterion benchmarks that run one after the other.
//!
//! Harness as in `runtime.rs`: `iter_custom` with one `Runtime::block_on`
//! per sample on a multi-thread tokio runtime (2 workers), the setup in one
//! [`Fixture`] for the whole run. Samples are few and flat for the large
//! sizes so that the whole bench stays within a few minutes.
//!
//! Run with `cargo bench -p trellis-tests --bench store`.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, object_store::ObjectStore};
use common::Stack;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::io::AsyncReadExt as _;
use trellis::{PutOptions, Store};

/// The bench-local contract: one object store.
#[trellis::contract(
    id = "bench-files@v1",
    display_name = "Bench files",
    description = "Object store throughput benchmark"
)]
pub mod files {
    /// Objects of the benchmark sizes, under `typed-<size>` and `raw-<size>`.
    #[store(purpose = "Benchmark blobs")]
    pub struct Blobs;
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// One object size and how to sample it.
struct Size {
    label: &'static str,
    bytes: usize,
    /// Criterion samples per benchmark.
    samples: usize,
    measurement: Duration,
    /// Interleaved rounds of the paired report.
    paired_rounds: usize,
}

const SIZES: [Size; 3] = [
    Size {
        label: "64KiB",
        bytes: 64 * KIB,
        samples: 50,
        measurement: Duration::from_secs(4),
        paired_rounds: 200,
    },
    Size {
        label: "4MiB",
        bytes: 4 * MIB,
        samples: 20,
        measurement: Duration::from_secs(5),
        paired_rounds: 30,
    },
    Size {
        label: "64MiB",
        bytes: 64 * MIB,
        samples: 10,
        measurement: Duration::from_secs(10),
        paired_rounds: 6,
    },
];

/// Everything the benchmarks share, created once. Fields drop in order: the
/// runtime last, so the authority's tasks and the clients go first.
struct Fixture {
    store: Store,
    raw: ObjectStore,
    /// One payload per entry of [`SIZES`].
    payloads: Vec<Vec<u8>>,
    _service: files::Service,
    stack: Stack,
}

fn typed_key(size: &Size) -> String {
    format!("typed-{}", size.label)
}

fn raw_key(size: &Size) -> String {
    format!("raw-{}", size.label)
}

impl Fixture {
    fn start() -> Fixture {
        let stack = Stack::start(&[files::MANIFEST_JSON]);
        let (service, store, raw, bucket) = stack.rt.block_on(async {
            let service = files::Service::connect(stack.options())
                .await
                .expect("files service connects");
            let store = service.store.blobs.open().await.expect("store opens");
            let bucket = stack.bindings(files::ID).await.store["blobs"]
                .bucket
                .clone();
            let raw_client = async_nats::connect(stack.url()).await.expect("raw client");
            let raw = jetstream::new(raw_client)
                .get_object_store(&bucket)
                .await
                .expect("raw object store");
            (service, store, raw, bucket)
        });
        let payloads = SIZES
            .iter()
            .zip(1..)
            .map(|(size, seed)| common::data(size.bytes, seed))
            .collect();
        let fixture = Fixture {
            store,
            raw,
            payloads,
            _service: service,
            stack,
        };
        fixture.stack.rt.block_on(async {
            for (i, size) in SIZES.iter().enumerate() {
                let payload = &fixture.payloads[i];
                typed_put(&fixture, i).await;
                raw_put(&fixture, i).await;
                // Each side reads what it wrote, and what the other wrote.
                assert_eq!(typed_get(&fixture, i).await, payload.len());
                assert_eq!(raw_get(&fixture, i).await, payload.len());
                let typed = fixture
                    .store
                    .get(&raw_key(size))
                    .await
                    .expect("typed get of raw object")
                    .expect("present")
                    .bytes()
                    .await
                    .expect("typed read of raw object");
                assert!(typed[..] == payload[..], "typed read of raw object");
                let mut raw = Vec::new();
                fixture
                    .raw
                    .get(typed_key(size))
                    .await
                    .expect("raw get of typed object")
                    .read_to_end(&mut raw)
                    .await
                    .expect("raw read of typed object");
                assert!(raw[..] == payload[..], "raw read of typed object");
            }
        });
        eprintln!(
            "fixture: bucket {bucket}, sizes {}",
            SIZES.map(|s| s.label).join(", ")
        );
        fixture
    }
}

/// Typed put of payload `i`; the stored size.
async fn typed_put(f: &Fixture, i: usize) -> u64 {
    f.store
        .put(&typed_key(&SIZES[i]), &f.payloads[i][..], PutOptions::new())
        .await
        .expect("typed put")
        .size
}

/// Raw put of payload `i`; the stored size.
async fn raw_put(f: &Fixture, i: usize) -> usize {
    f.raw
        .put(raw_key(&SIZES[i]).as_str(), &mut &f.payloads[i][..])
        .await
        .expect("raw put")
        .size
}

/// Typed get + `bytes()` of object `i`; the length read.
async fn typed_get(f: &Fixture, i: usize) -> usize {
    f.store
        .get(&typed_key(&SIZES[i]))
        .await
        .expect("typed get")
        .expect("present")
        .bytes()
        .await
        .expect("typed read")
        .len()
}

/// Raw get + `read_to_end` of object `i`; the length read.
async fn raw_get(f: &Fixture, i: usize) -> usize {
    let mut object = f.raw.get(raw_key(&SIZES[i])).await.expect("raw get");
    let mut content = Vec::with_capacity(object.info.size);
    object.read_to_end(&mut content).await.expect("raw read")
}

/// The interleaved comparisons, printed before the criterion groups.
fn paired_report(f: &Fixture) {
    eprintln!("--- paired, interleaved (median throughput; typed/raw > 1: typed faster) ---");
    for (i, size) in SIZES.iter().enumerate() {
        common::paired_throughput(
            &f.stack,
            &format!("put {}", size.label),
            size.bytes,
            size.paired_rounds,
            || typed_put(f, i),
            || raw_put(f, i),
        );
        common::paired_throughput(
            &f.stack,
            &format!("get {}", size.label),
            size.bytes,
            size.paired_rounds,
            || typed_get(f, i),
            || raw_get(f, i),
        );
    }
}

fn sampling(size: &Size) -> common::Sampling {
    common::Sampling {
        bytes: size.bytes,
        samples: size.samples,
        measurement: size.measurement,
    }
}

fn store_put(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("store_put");
    for (i, size) in SIZES.iter().enumerate() {
        common::bench_pair(
            &f.stack,
            &mut group,
            size.label,
            &sampling(size),
            || typed_put(f, i),
            || raw_put(f, i),
        );
    }
    group.finish();
}

fn store_get(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("store_get");
    for (i, size) in SIZES.iter().enumerate() {
        common::bench_pair(
            &f.stack,
            &mut group,
            size.label,
            &sampling(size),
            || typed_get(f, i),
            || raw_get(f, i),
        );
    }
    group.finish();
}

fn store(c: &mut Criterion) {
    let fixture = Fixture::start();
    paired_report(&fixture);
    store_put(c, &fixture);
    store_get(c, &fixture);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = store
}
criterion_main!(benches);
