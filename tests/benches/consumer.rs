//! Durable event consumer throughput: the typed consumer group
//! (`service.consumers.<group>.run(handler)`) against a raw async-nats pull
//! consumer doing the same work, on one nats-server in the same run.
//!
//! One process starts one nats-server and one authority (deployment
//! `bench`), accepts `ledger@v1` (event `Ledger.Posted`, groups `auditor`
//! and `projector`) and connects its service. For each group it creates a
//! second durable pull consumer, `bench-raw-<group>`, on the same event
//! stream with the configuration the authority installed for the group
//! (same filter subjects, explicit ack, ack wait, backoff and
//! `max_ack_pending`), read over a second connection. Two pairs:
//!
//! 1. concurrent: `auditor` (concurrency 4, so `max_ack_pending` 4)
//!    against the raw consumer pulling batches of 4 and handling up to 4
//!    messages at once (`for_each_concurrent(4)`); the paired report and
//!    the criterion group `consumer_concurrent`.
//! 2. strict: `projector` (strict ordering, `max_ack_pending` 1) against
//!    the raw consumer pulling and handling one at a time; the paired
//!    report only, as it stalls (below) too often for criterion's means.
//!
//! One operation drains exactly [`BATCH`] events published beforehand:
//! typed, `run` with a handler that counts the decoded event, until the
//! count is reached, then `ConsumerTask::shutdown`; raw, open the consumer,
//! `stream().max_messages_per_batch(..).messages()` with the pull settings
//! the runtime uses (batch = `max_ack_pending`, heartbeat 5 s, expiry
//! 30 s), decode each payload into `Posted` with serde_json and `ack` it,
//! `take(BATCH)`. Both sides open their consumer inside the operation
//! (`run` does), decode the same JSON, ack every message, and run in a
//! spawned task (as `run`'s loop does), not on the thread in `block_on`.
//!
//! Publishing is untimed: before every operation the consumer is brought
//! to exactly [`BATCH`] pending messages and none awaiting an ack
//! (publishing a batch, or first draining any other backlog), so a drain
//! never pulls past its batch and leaves nothing unacked. Both consumers
//! read the same stream with their own cursors: in the paired report one
//! publish per round feeds both; before the criterion `raw` benchmark the
//! raw consumer is recreated past the backlog the `typed` one published.
//! Criterion reports messages per second.
//!
//! Before the criterion groups, a paired report (`paired ...` lines on
//! stderr) runs each typed/raw pair interleaved, alternating which side goes
//! first, and prints both medians in messages/s and the ratio typed/raw of
//! the median throughputs.
//!
//! Stalls: async-nats' pull `Stream` can count a pull request as
//! outstanding after the server already filled it (a message that arrives
//! before the stream has seen its request's send result), and then sends
//! no new request until the request's expiry plus 5 s: left alone, the
//! drain stops for about 35 s with the consumer showing pending messages,
//! none awaiting an ack and no waiting pull. Batches of 1 (strict
//! ordering) hit it most, batches of 4 now and then. Both sides use that
//! stream, so both stall. A drain that has handled no message for
//! [`STALL`] while its consumer is in that state (pending messages, none
//! delivered and unacked, no waiting pull) reopens the consumer for the
//! rest of its batch (typed: `shutdown` and `run` again; raw: a new pull
//! stream) and counts a stall; the report lines print the counts. The
//! paired medians are robust to the extra second; criterion's means less
//! so.
//!
//! Run with `cargo bench -p trellis-tests --bench consumer`.

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use common::Stack;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt as _;
use tokio::sync::Notify;
use trellis::consumer::GroupEvent;
use trellis::{Consumed, EventConsumer};
use trellis_tests::ledger::{self, Posted};

/// Messages drained per operation.
const BATCH: u64 = 2_000;
/// Interleaved rounds of the paired report.
const PAIRED_ROUNDS: usize = 21;
/// Criterion samples per benchmark.
const SAMPLES: usize = 10;
/// Criterion measurement time per benchmark (timed drains only).
const MEASUREMENT: Duration = Duration::from_secs(4);
/// Events published at once while preparing.
const PUBLISH_IN_FLIGHT: usize = 256;
/// A drain that handled no message for this long has stalled (see the
/// module docs).
const STALL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Typed = 0,
    Raw = 1,
}

#[derive(Clone, Copy)]
enum Group {
    Auditor,
    Projector,
}

/// The durable consumers of one pair.
#[derive(Clone)]
struct Pair {
    /// The event stream both read.
    stream: String,
    /// The typed group's durable consumer (provisioned by the authority).
    typed: String,
    /// The raw durable consumer.
    raw: String,
    /// Messages per pull request (as the typed group).
    batch: usize,
    /// Messages handled at once (the group's `max_ack_pending`).
    concurrency: usize,
    /// The raw consumer's configuration.
    config: pull::Config,
}

struct Fixture {
    service: ledger::Service,
    /// The raw consumers' connection.
    raw: jetstream::Context,
    /// Consumer info queries (preparing, stall probes).
    control: jetstream::Context,
    auditor: Pair,
    projector: Pair,
    /// The next `Posted::n`.
    next: AtomicU64,
    /// Stalled drains, typed and raw.
    stalls: [AtomicU64; 2],
    stack: Stack,
}

impl Fixture {
    fn start() -> Fixture {
        let stack = Stack::start(&[ledger::MANIFEST_JSON]);
        let (service, raw, control, auditor, projector) = stack.rt.block_on(async {
            let service = ledger::Service::connect(stack.options())
                .await
                .expect("service");
            let raw = jetstream::new(stack.server.client().await.expect("client"));
            let control = jetstream::new(stack.server.client().await.expect("client"));
            let bindings = stack.bindings(ledger::ID).await;
            let mut pairs = Vec::new();
            for group in ["auditor", "projector"] {
                let [binding] = bindings.consumers[group].as_slice() else {
                    panic!("group `{group}` reads one stream");
                };
                let mut config = trellis_authority::provision::consumer_config(binding);
                let name = format!("bench-raw-{group}");
                config.durable_name = Some(name.clone());
                config.name = Some(name.clone());
                config.description = Some(format!("raw counterpart of `{group}`"));
                let _: jetstream::consumer::Consumer<pull::Config> = raw
                    .create_consumer_on_stream(config.clone(), &binding.stream)
                    .await
                    .expect("raw consumer");
                let max_ack_pending = usize::try_from(binding.max_ack_pending).expect("usize");
                pairs.push(Pair {
                    stream: binding.stream.clone(),
                    typed: binding.consumer.clone(),
                    raw: name,
                    batch: max_ack_pending.clamp(1, 256),
                    concurrency: max_ack_pending.max(1),
                    config,
                });
            }
            let projector = pairs.pop().expect("projector");
            let auditor = pairs.pop().expect("auditor");
            (service, raw, control, auditor, projector)
        });
        eprintln!(
            "consumer bench: auditor batch {} x {} at once, projector batch {} x {} at once, \
             {BATCH} messages per drain",
            auditor.batch, auditor.concurrency, projector.batch, projector.concurrency
        );
        Fixture {
            service,
            raw,
            control,
            auditor,
            projector,
            next: AtomicU64::new(0),
            stalls: Default::default(),
            stack,
        }
    }

    /// The durable consumer `side` reads `group`'s events with.
    fn consumer_name(&self, group: Group, side: Side) -> &str {
        let pair = self.pair(group);
        match side {
            Side::Typed => &pair.typed,
            Side::Raw => &pair.raw,
        }
    }

    fn pair(&self, group: Group) -> &Pair {
        match group {
            Group::Auditor => &self.auditor,
            Group::Projector => &self.projector,
        }
    }

    /// Drains exactly `n` messages through `side`'s consumer of `group`.
    /// Both sides run in a spawned task (`run` spawns its loop), not on
    /// the thread blocked in `block_on`.
    async fn drain(&self, group: Group, side: Side, n: u64) {
        let pair = self.pair(group);
        let probe = Probe {
            js: self.control.clone(),
            stream: pair.stream.clone(),
            consumer: self.consumer_name(group, side).to_owned(),
        };
        let restarts = match (side, group) {
            (Side::Typed, Group::Auditor) => {
                typed_drain(&self.service.consumers.auditor, n, &probe).await
            }
            (Side::Typed, Group::Projector) => {
                typed_drain(&self.service.consumers.projector, n, &probe).await
            }
            (Side::Raw, _) => tokio::spawn(raw_drain(self.raw.clone(), pair.clone(), n, probe))
                .await
                .expect("raw drain"),
        };
        self.stalls[side as usize].fetch_add(restarts, Ordering::Relaxed);
    }

    /// Moves the raw consumer of `group` past everything published so far
    /// (recreates it delivering only new messages), so that a backlog the
    /// typed side's publishing left needs no draining.
    async fn skip_raw_backlog(&self, group: Group) {
        let pair = self.pair(group);
        self.raw
            .delete_consumer_from_stream(&pair.raw, &pair.stream)
            .await
            .expect("delete raw consumer");
        let config = pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..pair.config.clone()
        };
        let _: jetstream::consumer::Consumer<pull::Config> = self
            .raw
            .create_consumer_on_stream(config, &pair.stream)
            .await
            .expect("raw consumer");
    }

    /// Takes the stall counts (typed, raw) since the last call.
    fn take_stalls(&self) -> (u64, u64) {
        (
            self.stalls[0].swap(0, Ordering::Relaxed),
            self.stalls[1].swap(0, Ordering::Relaxed),
        )
    }

    /// Publishes `n` events (JetStream-acked).
    async fn publish(&self, n: u64) {
        let first = self.next.fetch_add(n, Ordering::Relaxed);
        let publisher = &self.service.events.ledger.posted;
        futures::stream::iter(first..first + n)
            .for_each_concurrent(PUBLISH_IN_FLIGHT, |n| async move {
                publisher
                    .publish(&Posted {
                        account: format!("acct-{}", n % 7),
                        n,
                    })
                    .await
                    .expect("publish");
            })
            .await;
    }

    /// The messages `side`'s consumer has not been delivered yet, once none
    /// awaits an ack (acks are published without confirmation, on another
    /// connection).
    async fn pending(&self, group: Group, side: Side) -> u64 {
        let pair = self.pair(group);
        let name = self.consumer_name(group, side);
        let stream = self.control.get_stream(&pair.stream).await.expect("stream");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = stream.consumer_info(name).await.expect("consumer info");
            if info.num_ack_pending == 0 {
                return info.num_pending;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {} messages stay unacked: {info:?}",
                info.num_ack_pending
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Brings `side`'s consumer to exactly [`BATCH`] pending messages,
    /// none awaiting an ack: drains any other backlog entirely (untimed),
    /// then publishes a batch, which the other side also sees (its own
    /// `prepare` drains that later).
    async fn prepare(&self, group: Group, side: Side) {
        loop {
            match self.pending(group, side).await {
                BATCH => return,
                0 => self.publish(BATCH).await,
                backlog => self.drain(group, side, backlog).await,
            }
        }
    }

    /// Both sides of `group` at exactly [`BATCH`] pending messages: drains
    /// any other backlog of either side entirely (untimed), then publishes
    /// one batch for both.
    async fn prepare_both(&self, group: Group) {
        loop {
            let typed = self.pending(group, Side::Typed).await;
            let raw = self.pending(group, Side::Raw).await;
            match (typed, raw) {
                (BATCH, BATCH) => return,
                (0, 0) => self.publish(BATCH).await,
                _ => {
                    for (side, backlog) in [(Side::Typed, typed), (Side::Raw, raw)] {
                        if backlog > 0 {
                            self.drain(group, side, backlog).await;
                        }
                    }
                }
            }
        }
    }
}

/// The typed group: `run` until `n` events are handled, then shut down
/// (which lets the last handlers settle their messages). Returns how often
/// it stalled and was restarted for the rest of the batch.
async fn typed_drain<E: GroupEvent>(consumer: &EventConsumer<E>, n: u64, probe: &Probe) -> u64 {
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let mut restarts = 0;
    loop {
        let (h, d) = (handled.clone(), done.clone());
        let task = consumer
            .run(move |c: Consumed<E>| {
                black_box(c.event);
                if h.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    d.notify_one();
                }
                async { Ok::<(), Infallible>(()) }
            })
            .await
            .expect("run");
        let finished = done_or_stalled(&handled, done.notified(), probe).await;
        task.shutdown().await;
        if finished {
            break;
        }
        restarts += 1;
    }
    assert_eq!(handled.load(Ordering::Relaxed), n, "handled past the batch");
    restarts
}

/// The raw consumer: the same pull settings as the typed group, decode
/// each payload and ack it, up to `concurrency` at once. Returns how often
/// it stalled and was restarted for the rest of the batch.
async fn raw_drain(js: jetstream::Context, pair: Pair, n: u64, probe: Probe) -> u64 {
    let handled = Arc::new(AtomicU64::new(0));
    let mut restarts = 0;
    loop {
        let consumer: jetstream::consumer::Consumer<pull::Config> = js
            .get_consumer_from_stream(&pair.raw, &pair.stream)
            .await
            .expect("raw consumer");
        let messages = consumer
            .stream()
            .max_messages_per_batch(pair.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .expect("messages");
        let left = n - handled.load(Ordering::Relaxed);
        let work = messages
            .filter_map(|m| async move { m.ok() })
            .take(usize::try_from(left).expect("usize"))
            .for_each_concurrent(pair.concurrency, |message| {
                let handled = handled.clone();
                async move {
                    let posted: Posted = serde_json::from_slice(&message.payload).expect("decode");
                    black_box(posted);
                    message.ack().await.expect("ack");
                    handled.fetch_add(1, Ordering::Relaxed);
                }
            });
        if done_or_stalled(&handled, work, &probe).await {
            break;
        }
        restarts += 1;
    }
    restarts
}

/// Awaits `done`: true, or false once the drain has stalled: `handled`
/// has not moved for [`STALL`] and the consumer is in the stalled state
/// (see [`Probe::stalled`]).
async fn done_or_stalled(
    handled: &AtomicU64,
    done: impl Future<Output = ()>,
    probe: &Probe,
) -> bool {
    tokio::pin!(done);
    let mut last = handled.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = &mut done => return true,
            () = tokio::time::sleep(STALL) => {
                let now = handled.load(Ordering::Relaxed);
                if now == last && probe.stalled().await {
                    return false;
                }
                last = now;
            }
        }
    }
}

/// Where a drain checks its consumer's state.
struct Probe {
    js: jetstream::Context,
    stream: String,
    consumer: String,
}

impl Probe {
    /// Whether the consumer is stuck the way a stalled pull stream leaves
    /// it: messages pending, none delivered and unacked, no pull request
    /// waiting. Reopening the consumer then loses nothing.
    async fn stalled(&self) -> bool {
        let Ok(stream) = self.js.get_stream(&self.stream).await else {
            return false;
        };
        stream
            .consumer_info(&self.consumer)
            .await
            .is_ok_and(|i| i.num_pending > 0 && i.num_ack_pending == 0 && i.num_waiting == 0)
    }
}

/// The paired comparisons.
const PAIRS: [(&str, Group); 2] = [
    ("auditor (4 at once)", Group::Auditor),
    ("projector (strict)", Group::Projector),
];

/// The criterion groups.
const GROUPS: [(&str, Group); 1] = [("consumer_concurrent", Group::Auditor)];

/// The interleaved comparisons, printed before the criterion groups.
fn paired_report(f: &Fixture) {
    eprintln!("--- paired, interleaved (median throughput; typed/raw > 1: typed faster) ---");
    for (label, group) in PAIRS {
        let (t, r) = f.stack.paired_prepared(
            PAIRED_ROUNDS,
            || f.prepare_both(group),
            || f.drain(group, Side::Typed, BATCH),
            || f.drain(group, Side::Raw, BATCH),
        );
        let (typed, raw) = (BATCH as f64 / t, BATCH as f64 / r);
        let (typed_stalls, raw_stalls) = f.take_stalls();
        eprintln!(
            "paired {label:<20} n={PAIRED_ROUNDS:<3} typed {typed:>8.0} msg/s  raw {raw:>8.0} msg/s  \
             typed/raw {:.3}  stalled drains: typed {typed_stalls} raw {raw_stalls}",
            typed / raw
        );
    }
}

fn consumer(c: &mut Criterion) {
    let f = Fixture::start();
    paired_report(&f);
    for (name, group) in GROUPS {
        let mut g = c.benchmark_group(name);
        g.throughput(criterion::Throughput::Elements(BATCH))
            .sample_size(SAMPLES)
            .measurement_time(MEASUREMENT)
            .sampling_mode(criterion::SamplingMode::Flat);
        for (id, side) in [("typed", Side::Typed), ("raw", Side::Raw)] {
            // Untimed catch-up first: criterion's warm-up counts wall time.
            f.stack.rt.block_on(async {
                if side == Side::Raw {
                    f.skip_raw_backlog(group).await;
                }
                f.prepare(group, side).await;
            });
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    f.stack.run_prepared(
                        iters,
                        || f.prepare(group, side),
                        || f.drain(group, side, BATCH),
                    )
                })
            });
        }
        g.finish();
        let (typed_stalls, raw_stalls) = f.take_stalls();
        eprintln!("{name}: stalled drains: typed {typed_stalls} raw {raw_stalls}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = consumer
}
criterion_main!(benches);
