//! Transfer throughput: the documents example's typed upload operation and
//! download grant against raw async-nats [`ObjectStore`] put/get of the same
//! bytes, on one nats-server in the same run.
//!
//! One process starts one nats-server and one authority (deployment
//! `bench`), accepts `documents@v1`, serves
//! [`DocumentsService`](documents_example::DocumentsService) over its
//! `uploads` store, connects a typed client (principal `bench`) and creates
//! a raw object store bucket (`bench-raw`, File storage, same limits as the
//! uploads store) over a second plain connection. Then, for a 64 MiB object:
//!
//! 1. `transfer_upload`: typed
//!    `client.operation.files.upload.input(..).transfer(bytes).start()` +
//!    `op.wait()` (until `Outcome::Completed`) against raw
//!    `ObjectStore::put(key, &mut &payload[..])`. Both replace the previous
//!    version of their key on every iteration.
//! 2. `transfer_download`: typed `client.rpc.files.download(&key)` (a grant
//!    is single-use, so every iteration asks for a new one: the RPC is part
//!    of the typed flow) + `client.download(&grant).bytes()` against raw
//!    `ObjectStore::get(key)` + `read_to_end` into a `Vec` preallocated to
//!    the object's size.
//!
//! The service runs in this process, so the typed side's time (and memory)
//! includes both the caller and the provider; the raw side has no provider.
//!
//! Before the criterion groups:
//!
//! - `rss ...` lines (stdout): one 1 GiB upload streamed from a generated
//!   body (`Body::from_stream` of fresh 1 MiB chunks, `with_size(1 << 30)`),
//!   with the peak resident set size above the baseline read from
//!   `/proc/self/status` (the high-water mark is reset first through
//!   `/proc/self/clear_refs` where the kernel allows it). Skipped with
//!   `TRELLIS_BENCH_SKIP_RSS=1`. The object is deleted afterwards with
//!   `client.rpc.files.delete`.
//! - `paired ...` lines (stderr): each typed/raw pair interleaved,
//!   alternating which side goes first, with both median throughputs in
//!   MiB/s and their ratio typed/raw: interleaving cancels the load drift of
//!   a shared machine between criterion benchmarks that run one after the
//!   other.
//!
//! Harness as in `store.rs`: `iter_custom` with one `Runtime::block_on` per
//! sample (`Stack::run`), few flat samples so that the whole bench stays
//! within a few minutes.
//!
//! Run with `cargo bench -p trellis-tests --bench transfer`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, object_store::ObjectStore, stream::StorageType};
use bytes::Bytes;
use common::Stack;
use criterion::{Criterion, criterion_group, criterion_main};
use documents_example::DocumentsService;
use documents_example::documents::{self, FileKey, UploadInput};
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use trellis::{Body, Outcome, RpcServer, ServeOptions};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: u64 = 1 << 30;

/// The size of the benchmarked objects.
const SIZE: usize = 64 * MIB;
const LABEL: &str = "64MiB";

/// Criterion samples per benchmark, and their measurement time.
const SAMPLES: usize = 10;
const MEASUREMENT: Duration = Duration::from_secs(9);
/// Interleaved rounds of the paired report.
const PAIRED_ROUNDS: usize = 8;

/// The raw bucket (same storage type and limits as the uploads store).
const RAW_BUCKET: &str = "bench-raw";
const TYPED_UPLOAD_KEY: &str = "bench/upload-64MiB";
const TYPED_DOWNLOAD_KEY: &str = "bench/download-64MiB";
const RSS_KEY: &str = "bench/rss-1GiB";
const RAW_UPLOAD_KEY: &str = "upload-64MiB";
const RAW_DOWNLOAD_KEY: &str = "download-64MiB";

/// Everything the benchmarks share, created once. Fields drop in order: the
/// runtime (in `stack`) last, so the server and the clients go first.
struct Fixture {
    client: documents::Client,
    raw: ObjectStore,
    payload: Bytes,
    _server: RpcServer,
    _service: documents::Service,
    stack: Stack,
}

fn upload_input(key: &str) -> UploadInput {
    UploadInput {
        key: key.to_owned(),
        content_type: "application/octet-stream".to_owned(),
        metadata: BTreeMap::from([("bench".to_owned(), "transfer".to_owned())]),
    }
}

fn file_key(key: &str) -> FileKey {
    FileKey {
        key: key.to_owned(),
    }
}

impl Fixture {
    fn start() -> Fixture {
        let stack = Stack::start(&[documents::MANIFEST_JSON]);
        let (service, server, client, raw) = stack.rt.block_on(async {
            let service = documents::Service::connect(stack.options())
                .await
                .expect("documents service connects");
            let server = service
                .serve(DocumentsService::new(&service), ServeOptions::default())
                .await
                .expect("documents service serves");
            let client = documents::Client::connect(stack.options().principal("bench"))
                .await
                .expect("documents client connects");
            let raw_client = async_nats::connect(stack.url()).await.expect("raw client");
            let raw = jetstream::new(raw_client)
                .create_object_store(jetstream::object_store::Config {
                    bucket: RAW_BUCKET.to_owned(),
                    description: Some("raw transfer benchmark bucket".to_owned()),
                    max_age: Duration::from_millis(86_400_000),
                    max_bytes: 10_737_418_240,
                    storage: StorageType::File,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .expect("raw object store");
            (service, server, client, raw)
        });
        Fixture {
            client,
            raw,
            payload: Bytes::from(common::data(SIZE, 1)),
            _server: server,
            _service: service,
            stack,
        }
    }

    /// Stores the download objects and checks both sides once: every read
    /// returns exactly the payload.
    fn prepare(&self) {
        self.stack.rt.block_on(async {
            assert_eq!(typed_upload(self, TYPED_UPLOAD_KEY).await, SIZE as u64);
            assert_eq!(typed_upload(self, TYPED_DOWNLOAD_KEY).await, SIZE as u64);
            assert_eq!(raw_upload(self, RAW_UPLOAD_KEY).await, SIZE);
            assert_eq!(raw_upload(self, RAW_DOWNLOAD_KEY).await, SIZE);
            let typed = typed_download_bytes(self).await;
            assert!(typed[..] == self.payload[..], "typed download content");
            let raw = raw_download_bytes(self).await;
            assert!(raw[..] == self.payload[..], "raw download content");
        });
        eprintln!("fixture: documents@v1 uploads store and raw bucket {RAW_BUCKET}, {LABEL}");
    }
}

/// Typed upload of the payload under `key` through the upload operation;
/// the stored size.
async fn typed_upload(f: &Fixture, key: &str) -> u64 {
    let op = f
        .client
        .operation
        .files
        .upload
        .input(upload_input(key))
        .transfer(f.payload.clone())
        .start()
        .await
        .expect("typed upload starts and transfers");
    match op.wait().await.expect("typed upload outcome") {
        Outcome::Completed(output) => output.file.size,
        other => panic!("typed upload did not complete: {other:?}"),
    }
}

/// Raw put of the payload under `key`; the stored size.
async fn raw_upload(f: &Fixture, key: &str) -> usize {
    f.raw
        .put(key, &mut &f.payload[..])
        .await
        .expect("raw put")
        .size
}

/// Typed download: a fresh grant through the RPC, then the bytes.
async fn typed_download_bytes(f: &Fixture) -> Bytes {
    let response = f
        .client
        .rpc
        .files
        .download(&file_key(TYPED_DOWNLOAD_KEY))
        .await
        .expect("download call")
        .expect("download declared ok");
    f.client
        .download(&response.grant)
        .bytes()
        .await
        .expect("typed download")
}

async fn typed_download(f: &Fixture) -> usize {
    typed_download_bytes(f).await.len()
}

/// Raw get + `read_to_end` into a preallocated `Vec`.
async fn raw_download_bytes(f: &Fixture) -> Vec<u8> {
    let mut object = f.raw.get(RAW_DOWNLOAD_KEY).await.expect("raw get");
    let mut content = Vec::with_capacity(object.info.size);
    object.read_to_end(&mut content).await.expect("raw read");
    content
}

async fn raw_download(f: &Fixture) -> usize {
    raw_download_bytes(f).await.len()
}

/// A `Vm...` line of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn mib_of_kib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One 1 GiB upload streamed from a generated body (fresh 1 MiB chunks of a
/// repeating pattern); prints the peak RSS above the baseline.
fn rss_report(f: &Fixture) {
    if std::env::var_os("TRELLIS_BENCH_SKIP_RSS").is_some_and(|v| v == "1") {
        println!("rss: skipped (TRELLIS_BENCH_SKIP_RSS=1)");
        return;
    }
    let hwm_before_reset = proc_status_kib("VmHWM").unwrap_or(0);
    // "5" resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let baseline = proc_status_kib("VmRSS").unwrap_or(0);
    let hwm_start = proc_status_kib("VmHWM").unwrap_or(0);
    let pattern = common::data(MIB, 7);
    let chunks = (GIB as usize) / MIB;
    let body = futures::stream::iter(0..chunks)
        .map(move |_| Ok::<_, std::io::Error>(Bytes::copy_from_slice(&pattern)));
    let started = Instant::now();
    let size = f.stack.rt.block_on(async {
        let op = f
            .client
            .operation
            .files
            .upload
            .input(upload_input(RSS_KEY))
            .transfer(Body::from_stream(body).with_size(GIB))
            .start()
            .await
            .expect("1 GiB upload starts and transfers");
        match op.wait().await.expect("1 GiB upload outcome") {
            Outcome::Completed(output) => output.file.size,
            other => panic!("1 GiB upload did not complete: {other:?}"),
        }
    });
    let elapsed = started.elapsed();
    let peak = proc_status_kib("VmHWM").unwrap_or(0);
    let after = proc_status_kib("VmRSS").unwrap_or(0);
    f.stack.rt.block_on(async {
        let deleted = f
            .client
            .rpc
            .files
            .delete(&file_key(RSS_KEY))
            .await
            .expect("delete call")
            .expect("delete declared ok");
        assert_eq!(deleted.size, GIB);
    });
    assert_eq!(size, GIB);
    let peak_base = if reset {
        baseline
    } else {
        baseline.max(hwm_start)
    };
    println!(
        "rss: 1 GiB streamed upload in {:.2} s ({:.1} MiB/s); baseline VmRSS {:.1} MiB, \
         VmHWM {:.1} MiB (before reset {:.1} MiB, reset {}), VmRSS after {:.1} MiB",
        elapsed.as_secs_f64(),
        1024.0 / elapsed.as_secs_f64(),
        mib_of_kib(baseline),
        mib_of_kib(peak),
        mib_of_kib(hwm_before_reset),
        if reset { "ok" } else { "unavailable" },
        mib_of_kib(after),
    );
    println!(
        "peak RSS above baseline: {:.1} MiB",
        mib_of_kib(peak.saturating_sub(peak_base))
    );
}

/// The interleaved comparisons, printed before the criterion groups.
fn paired_report(f: &Fixture) {
    eprintln!("--- paired, interleaved (median throughput; typed/raw > 1: typed faster) ---");
    common::paired_throughput(
        &f.stack,
        &format!("upload {LABEL}"),
        SIZE,
        PAIRED_ROUNDS,
        || typed_upload(f, TYPED_UPLOAD_KEY),
        || raw_upload(f, RAW_UPLOAD_KEY),
    );
    common::paired_throughput(
        &f.stack,
        &format!("download {LABEL}"),
        SIZE,
        PAIRED_ROUNDS,
        || typed_download(f),
        || raw_download(f),
    );
}

const SAMPLING: common::Sampling = common::Sampling {
    bytes: SIZE,
    samples: SAMPLES,
    measurement: MEASUREMENT,
};

fn transfer_upload(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("transfer_upload");
    common::bench_pair(
        &f.stack,
        &mut group,
        LABEL,
        &SAMPLING,
        || typed_upload(f, TYPED_UPLOAD_KEY),
        || raw_upload(f, RAW_UPLOAD_KEY),
    );
    group.finish();
}

fn transfer_download(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("transfer_download");
    common::bench_pair(
        &f.stack,
        &mut group,
        LABEL,
        &SAMPLING,
        || typed_download(f),
        || raw_download(f),
    );
    group.finish();
}

fn transfer(c: &mut Criterion) {
    let fixture = Fixture::start();
    rss_report(&fixture);
    fixture.prepare();
    paired_report(&fixture);
    transfer_upload(c, &fixture);
    transfer_download(c, &fixture);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = transfer
}
criterion_main!(benches);
