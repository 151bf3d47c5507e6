//! Durable event consumer groups against a real nats-server: provisioning
//! by the authority, backlog processing, redelivery after a crash (a
//! consumer process killed by PID), independent cursors, a nats-server
//! restart, backoff and poison messages, and the plan rules for groups.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt as _;
use tokio::io::AsyncBufReadExt as _;
use trellis::{ConnectOptions, Consumed};
use trellis_runtime::protocol::{AuthorityError, Change, ResourceKind, ResourceStatus};
use trellis_tests::ledger::{self, Posted};

/// (n, attempt, stream sequence) of every handled event, in order.
type Seen = Arc<Mutex<Vec<(u64, u64, u64)>>>;

async fn ledger_stack() -> (Stack, ledger::Service, ConnectOptions) {
    let stack = stack().await;
    accept_ready(&stack, ledger::MANIFEST_JSON, ledger::ID, ledger::DIGEST).await;
    let options = stack.service(ledger::ID).await;
    let service = ledger::Service::connect(options.clone())
        .await
        .expect("service");
    (stack, service, options)
}

/// Publishes entries `range` with 64 in flight.
async fn post(service: &ledger::Service, range: std::ops::Range<u64>) {
    let publisher = &service.events.ledger.posted;
    futures::stream::iter(range)
        .for_each_concurrent(64, |n| async move {
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

fn n_of(event: &ledger::Projector) -> u64 {
    match event {
        ledger::Projector::LedgerPosted(p) => p.n,
        _ => panic!("unexpected event"),
    }
}

/// Runs the projector group, recording (n, attempt) of every handled event.
async fn run_projector(service: &ledger::Service, seen: Seen) -> trellis::ConsumerTask {
    service
        .consumers
        .projector
        .run(move |c: Consumed<ledger::Projector>| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .expect("lock")
                    .push((n_of(&c.event), c.attempt, c.stream_sequence));
                Ok::<(), String>(())
            }
        })
        .await
        .expect("run")
}

async fn until_count(seen: &Seen, want: usize, limit: Duration) {
    let seen = seen.clone();
    eventually(limit, &format!("{want} distinct events"), || {
        let seen = seen.clone();
        async move {
            let distinct: BTreeSet<u64> = seen.lock().expect("lock").iter().map(|s| s.0).collect();
            (distinct.len() >= want).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn backlog_published_while_down_is_processed_in_order_and_groups_keep_independent_cursors() {
    let (stack, service, options) = ledger_stack().await;
    let state = ready(&stack.client, ledger::ID, ledger::DIGEST).await;
    let groups: Vec<_> = state
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Consumer)
        .map(|r| r.alias.clone())
        .collect();
    assert_eq!(groups, ["auditor/ledger@v1", "projector/ledger@v1"]);

    // 10,000 events while no consumer runs.
    post(&service, 0..10_000).await;

    let seen: Seen = Arc::default();
    let task = run_projector(&service, seen.clone()).await;
    until_count(&seen, 10_000, Duration::from_secs(120)).await;
    task.shutdown().await;
    let handled = seen.lock().expect("lock").clone();
    // Strict ordering: exactly in stream order, each once (nothing failed).
    let ns: Vec<u64> = handled.iter().map(|s| s.0).collect();
    let mut sorted = ns.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 10_000);
    assert_eq!(ns.len(), 10_000, "no redelivery without failures");
    // Publishing ran 64 at once, so stream order is not `n` order; strict
    // ordering means handling follows the stream sequence exactly.
    assert!(
        handled.windows(2).all(|w| w[0].2 < w[1].2),
        "handled in stream order"
    );

    // The auditor has its own cursor: it still sees everything from the
    // start, and the projector does not see those events again.
    let audited: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let a = audited.clone();
    let auditor = service
        .consumers
        .auditor
        .run(move |c: Consumed<ledger::Auditor>| {
            let a = a.clone();
            async move {
                let ledger::Auditor::LedgerPosted(p) = c.event else {
                    return Err("unexpected event".to_owned());
                };
                *a.lock().expect("lock").entry(p.n).or_default() += 1;
                Ok(())
            }
        })
        .await
        .expect("auditor");
    eventually(Duration::from_secs(120), "auditor sees all", || {
        let a = audited.clone();
        async move { (a.lock().expect("lock").len() == 10_000).then_some(()) }
    })
    .await;
    auditor.shutdown().await;

    // A fresh connection resumes the projector's cursor after the backlog.
    let again = ledger::Service::connect(options).await.expect("service");
    let seen2: Seen = Arc::default();
    let task = run_projector(&again, seen2.clone()).await;
    post(&again, 10_000..10_010).await;
    until_count(&seen2, 10, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.shutdown().await;
    let resumed: BTreeSet<u64> = seen2.lock().expect("lock").iter().map(|s| s.0).collect();
    assert_eq!(resumed, (10_000..10_010).collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn a_consumer_process_killed_mid_batch_gets_its_unacked_message_redelivered() {
    let (stack, service, _options) = ledger_stack().await;
    post(&service, 0..40).await;

    // The process handles one event every 100 ms and prints `acked <n>`
    // after each ack.
    let creds_dir = tempfile::tempdir().expect("temp dir");
    let creds = creds_dir.path().join("ledger.creds.json");
    stack
        .service_credentials(ledger::ID)
        .await
        .save(&creds)
        .expect("save credentials");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_slow-consumer"))
        .args([stack.server.url(), "100".to_owned()])
        .env("TRELLIS_CREDENTIALS", &creds)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn slow-consumer");
    let pid = child.id().expect("pid");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = BTreeSet::new();
    let in_flight = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("progress in time")
            .expect("read")
            .expect("process alive");
        if let Some(n) = line.strip_prefix("acked ") {
            acked.insert(n.parse::<u64>().expect("n"));
        } else if let Some(n) = line.strip_prefix("handling ")
            && acked.len() >= 10
        {
            break n.parse::<u64>().expect("n");
        }
    };
    // SIGKILL by PID while that message is in the handler.
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = child.wait().await;
    // Anything acked after our last read still counts as processed.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(n) = line.strip_prefix("acked ") {
            acked.insert(n.parse::<u64>().expect("n"));
        }
    }

    let seen: Seen = Arc::default();
    let task = run_projector(&service, seen.clone()).await;
    until_count(&seen, 40 - acked.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.shutdown().await;
    let handled = seen.lock().expect("lock").clone();
    let here: BTreeSet<u64> = handled.iter().map(|s| s.0).collect();
    assert!(
        here.is_disjoint(&acked),
        "acked events are not delivered again: {:?}",
        here.intersection(&acked).collect::<Vec<_>>()
    );
    let all: BTreeSet<u64> = here.union(&acked).copied().collect();
    assert_eq!(all, (0..40).collect::<BTreeSet<_>>(), "nothing lost");
    // The message in flight at the kill comes back first, as a redelivery
    // (unless the process got to ack it before dying).
    if !acked.contains(&in_flight) {
        let first = handled.first().expect("some");
        assert_eq!(
            first.0, in_flight,
            "strict order resumes at the unacked message"
        );
        assert!(first.1 >= 2, "a redelivery: {first:?}");
    }
}

#[tokio::test]
async fn the_consumer_survives_a_nats_server_restart() {
    let (mut stack, service, options) = ledger_stack().await;
    post(&service, 0..300).await;
    let seen: Seen = Arc::default();
    let task = run_projector(&service, seen.clone()).await;
    until_count(&seen, 100, Duration::from_secs(30)).await;
    stack.server.restart().await.expect("restart");
    // Publish more once the server is back (publishes retry on reconnect).
    // A connect is authorized by the authority's callout, whose own
    // connection is reconnecting too: until it is back, the server refuses
    // new connections (connect-time retries are issue 14's).
    let service2 = eventually(
        Duration::from_secs(20),
        "a connect after the restart",
        || {
            let options = options.clone();
            async move { ledger::Service::connect(options).await.ok() }
        },
    )
    .await;
    post(&service2, 300..600).await;
    until_count(&seen, 600, Duration::from_secs(90)).await;
    task.shutdown().await;
    let handled = seen.lock().expect("lock").clone();
    let distinct: BTreeSet<u64> = handled.iter().map(|s| s.0).collect();
    assert_eq!(distinct, (0..600).collect::<BTreeSet<_>>());
    // At least once: only messages unacked at the restart may repeat.
    let repeats = handled.len() - distinct.len();
    assert!(
        repeats <= 2,
        "{repeats} repeats beyond at-least-once of unacked messages"
    );
}

#[tokio::test]
async fn handler_errors_back_off_and_poison_messages_are_terminated_and_recorded() {
    let (stack, service, _options) = ledger_stack().await;
    // An undecodable payload on the event's subject, signed by the ledger
    // service (an unsigned one is rejected before decoding: hostile.rs).
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let poison = "trellis.test.ledger@v1.events.v1.Ledger.Posted.poison";
    let mut headers = async_nats::HeaderMap::new();
    stack
        .service_credentials(ledger::ID)
        .await
        .signer()
        .expect("signer")
        .prove(poison, b"{not json")
        .write(&mut headers);
    js.publish_with_headers(poison, headers, "{not json".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    post(&service, 0..3).await;

    // n=1 fails twice then succeeds; n=2 always fails.
    let attempts: Arc<Mutex<BTreeMap<u64, Vec<Instant>>>> = Arc::default();
    let a = attempts.clone();
    let task = service
        .consumers
        .projector
        .run(move |c: Consumed<ledger::Projector>| {
            let a = a.clone();
            async move {
                let n = n_of(&c.event);
                let count = {
                    let mut a = a.lock().expect("lock");
                    let v = a.entry(n).or_default();
                    v.push(Instant::now());
                    v.len()
                };
                match n {
                    1 if count <= 2 => Err(format!("transient failure {count}")),
                    2 => Err("always fails".to_owned()),
                    _ => Ok(()),
                }
            }
        })
        .await
        .expect("run");
    let rejected = eventually(Duration::from_secs(30), "two rejected", || {
        let consumer = service.consumers.projector.clone();
        async move {
            let r = consumer.rejected().await.expect("rejected");
            (r.len() == 2).then_some(r)
        }
    })
    .await;
    task.shutdown().await;
    assert!(rejected[0].reason.contains("undecodable"), "{rejected:?}");
    assert!(rejected[0].subject.ends_with("Ledger.Posted.poison"));
    assert!(
        rejected[1].reason.contains("last delivery (4)"),
        "{rejected:?}"
    );
    let attempts = attempts.lock().expect("lock").clone();
    assert_eq!(attempts[&0].len(), 1);
    assert_eq!(attempts[&1].len(), 3, "retried until it succeeded");
    assert_eq!(
        attempts[&2].len(),
        4,
        "max_deliver attempts, then terminated"
    );
    // Naks wait the backoff step: 300 ms, then 600 ms (never a hot loop).
    let gaps: Vec<Duration> = attempts[&2].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(250), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(550), "{gaps:?}");
}

/// The ledger manifest with its consumer groups edited.
fn edited(f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut m: serde_json::Value = serde_json::from_str(ledger::MANIFEST_JSON).expect("json");
    f(&mut m);
    serde_json::to_string(&m).expect("json")
}

#[tokio::test]
async fn removing_a_group_or_changing_its_replay_is_a_dangerous_plan_change() {
    let (stack, _service, _options) = ledger_stack().await;
    // Tuning in place is safe.
    let tuned = edited(|m| m["eventConsumers"]["auditor"]["ackWaitMs"] = 5_000.into());
    let plan = stack.client.plan(&tuned).await.expect("plan");
    let item = plan
        .items
        .iter()
        .find(|i| i.kind == ResourceKind::Consumer)
        .expect("consumer item");
    assert!(!plan.is_dangerous(), "{plan:?}");
    assert!(matches!(&item.change, Change::Changed { fields } if fields[0].contains("ackWaitMs")));

    // Replay cannot change in place: recreate, dangerous.
    let replay = edited(|m| m["eventConsumers"]["projector"]["replay"] = "all".into());
    let plan = stack.client.plan(&replay).await.expect("plan");
    assert!(plan.is_dangerous(), "{plan:?}");
    let err = stack
        .client
        .accept(&replay, false)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("cursor starts over"), "{err}");
    let accepted = stack.client.accept(&replay, true).await.expect("accepted");
    let digest = accepted.plan.digest.clone();
    let state = ready(&stack.client, ledger::ID, &digest).await;
    assert_eq!(state.bindings.consumers["projector"][0].replay, "all");

    // Removing a group deletes its consumer.
    let removed = edited(|m| {
        m["eventConsumers"]
            .as_object_mut()
            .expect("groups")
            .remove("auditor");
    });
    let plan = stack.client.plan(&removed).await.expect("plan");
    let item = plan
        .items
        .iter()
        .find(|i| i.kind == ResourceKind::Consumer && i.change == Change::Removed)
        .expect("removed item");
    assert!(item.is_dangerous());
    let accepted = stack.client.accept(&removed, true).await.expect("accepted");
    let state = ready(&stack.client, ledger::ID, &accepted.plan.digest).await;
    assert!(!state.bindings.consumers.contains_key("auditor"));
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let stream = js
        .get_stream(&state.bindings.consumers["projector"][0].stream)
        .await
        .expect("stream");
    let names: Vec<String> = stream
        .consumer_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    assert_eq!(
        names.len(),
        1,
        "only the projector's consumer remains: {names:?}"
    );
}

#[tokio::test]
async fn unknown_uses_are_refused_with_a_plan_error() {
    let stack = stack().await;
    let text = manifest(
        r#"
        #[trellis::contract(id = "indexer@v1", display_name = "Indexer", description = "Indexes documents")]
        pub mod indexer {
            #[uses(contract = "documents@v1", rpc = ["Files.List"], subscribe = ["Documents.Created"])]
            pub struct Docs;
        }
        "#,
    );
    let err = stack.client.plan(&text).await.expect_err("refused");
    assert!(
        matches!(&err, trellis_runtime::ClientError::Refused(AuthorityError::UnknownUses { problems })
            if problems[0].contains("documents@v1 is not accepted")),
        "{err:?}"
    );
    accept_ready(
        &stack,
        documents_example::documents::MANIFEST_JSON,
        documents_example::documents::ID,
        documents_example::documents::DIGEST,
    )
    .await;
    let wrong = text.replace("Files.List", "Files.Rename");
    let err = stack.client.plan(&wrong).await.expect_err("refused");
    assert!(
        err.to_string()
            .contains("documents@v1 has no RPC `Files.Rename`"),
        "{err}"
    );
    stack.client.plan(&text).await.expect("known uses plan");
}

#[tokio::test]
async fn a_hand_edited_consumer_is_never_adopted_or_silently_recreated() {
    let (stack, _service, _options) = ledger_stack().await;
    let state = ready(&stack.client, ledger::ID, ledger::DIGEST).await;
    let binding = state.bindings.consumers["projector"][0].clone();
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let stream = js.get_stream(&binding.stream).await.expect("stream");

    // Someone replaces the projector's consumer with one that replays
    // everything: NATS cannot turn that back in place.
    stream
        .delete_consumer(&binding.consumer)
        .await
        .expect("delete");
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(binding.consumer.clone()),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            filter_subject: binding.events[0].subject.clone(),
            ..Default::default()
        })
        .await
        .expect("hand-made consumer");
    let failed = state_where(&stack.client, ledger::ID, "the drift to be reported", |s| {
        s.resources.iter().any(|r| {
            r.alias == "projector/ledger@v1"
                && matches!(&r.status, ResourceStatus::Failed { reason } if reason.contains("deliver policy"))
        })
    })
    .await;
    // The last good binding stays, so running services keep their handle.
    assert_eq!(failed.bindings.consumers["projector"][0], binding);
    let info = stream
        .consumer_info(&binding.consumer)
        .await
        .expect("still there");
    assert_eq!(
        info.config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::All,
        "not touched"
    );

    // Once the operator removes it, reconciliation provisions it again.
    stream
        .delete_consumer(&binding.consumer)
        .await
        .expect("delete");
    stack_reconciles(&stack).await;
    let info = stream
        .consumer_info(&binding.consumer)
        .await
        .expect("recreated");
    assert_eq!(
        info.config.deliver_policy,
        async_nats::jetstream::consumer::DeliverPolicy::New
    );
}

/// Waits until the ledger is ready again with every consumer provisioned.
async fn stack_reconciles(stack: &Stack) {
    state_where(
        &stack.client,
        ledger::ID,
        "the consumers to be ready",
        |s| {
            s.resources
                .iter()
                .filter(|r| r.kind == ResourceKind::Consumer)
                .all(|r| r.status == ResourceStatus::Ready)
        },
    )
    .await;
}
