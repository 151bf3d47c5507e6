//! Typed RPC calls vs raw async-nats request/reply doing the same work
//! (JSON encode the request, decode it in the handler, encode the reply,
//! decode it in the caller), on one nats-server in the same run.
//!
//! `cargo bench -p trellis-tests --bench rpc`

mod common;

use std::future::Future;
use std::time::Duration;

use common::Stack;
use common::stat::{Stat, info};
use criterion::{Criterion, criterion_group, criterion_main};
use documents_example::documents::{self, FileEntry, FileKey};
use futures::StreamExt as _;
use trellis::{RpcServer, ServeOptions};

const IN_FLIGHT: usize = 64;

struct Fixture {
    client: documents::Client,
    raw: async_nats::Client,
    _server: RpcServer,
    _raw_server: tokio::task::JoinHandle<()>,
    stack: Stack,
}

const RAW_SUBJECT: &str = "bench.raw.stat";

impl Fixture {
    fn start() -> Fixture {
        let stack = Stack::start(&[documents::MANIFEST_JSON]);
        let (server, client, raw, raw_server) = stack.rt.block_on(async {
            let service = documents::Service::connect(stack.options())
                .await
                .expect("service");
            let server = service
                .serve(Stat, ServeOptions::default())
                .await
                .expect("serve");
            let client = documents::Client::connect(stack.options())
                .await
                .expect("client");

            // The raw equivalent: a plain subscription doing the same JSON work.
            let raw_service = stack.server.client().await.expect("client");
            let mut sub = raw_service.subscribe(RAW_SUBJECT).await.expect("subscribe");
            raw_service.flush().await.expect("flush");
            let raw_server = tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    let Some(reply) = msg.reply else { continue };
                    let Ok(key) = serde_json::from_slice::<FileKey>(&msg.payload) else {
                        continue;
                    };
                    let Ok(body) = serde_json::to_vec(&info(key.key)) else {
                        continue;
                    };
                    let _ = raw_service.publish(reply, body.into()).await;
                }
            });
            let raw = stack.server.client().await.expect("client");
            (server, client, raw, raw_server)
        });
        Fixture {
            client,
            raw,
            _server: server,
            _raw_server: raw_server,
            stack,
        }
    }
}

async fn typed(f: &Fixture) -> FileEntry {
    let key = FileKey {
        key: "docs/readme.txt".into(),
    };
    f.client
        .rpc
        .files
        .head(&key)
        .await
        .expect("call")
        .expect("declared ok")
}

async fn raw(f: &Fixture) -> FileEntry {
    let key = FileKey {
        key: "docs/readme.txt".into(),
    };
    let body = serde_json::to_vec(&key).expect("encode");
    let reply = f
        .raw
        .request(RAW_SUBJECT, body.into())
        .await
        .expect("raw request");
    serde_json::from_slice(&reply.payload).expect("decode")
}

/// Interleaved typed/raw rounds (see `Stack::paired`): the median time of
/// 200 sequential calls and of 200 batches of 64 concurrent calls.
fn paired_report(f: &Fixture) {
    eprintln!("--- paired, interleaved (median time; typed/raw < 1: typed faster) ---");
    for (name, in_flight) in [("sequential", 1), ("64 in flight", IN_FLIGHT)] {
        let batch =
            |call: fn(&Fixture) -> std::pin::Pin<Box<dyn Future<Output = FileEntry> + '_>>| {
                move || async move {
                    for _ in 0..200 {
                        futures::future::join_all((0..in_flight).map(|_| call(f))).await;
                    }
                }
            };
        let (t, r) = f.stack.paired(
            15,
            batch(|f| Box::pin(typed(f))),
            batch(|f| Box::pin(raw(f))),
        );
        let per_call = |secs: f64| secs * 1e6 / (200 * in_flight) as f64;
        eprintln!(
            "paired rpc {name:<13} typed {:>7.2} us/call  raw {:>7.2} us/call  \
             time typed/raw {:.3}  throughput typed/raw {:.3}",
            per_call(t),
            per_call(r),
            t / r,
            r / t,
        );
    }
}

fn rpc(c: &mut Criterion) {
    let f = Fixture::start();
    paired_report(&f);
    for (group, in_flight) in [("rpc_call", 1), ("rpc_call_64", IN_FLIGHT)] {
        let mut g = c.benchmark_group(group);
        g.bench_function("typed", |b| {
            b.iter_custom(|n| f.stack.run(n, in_flight, || typed(&f)))
        });
        g.bench_function("raw", |b| {
            b.iter_custom(|n| f.stack.run(n, in_flight, || raw(&f)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = rpc
}
criterion_main!(benches);
