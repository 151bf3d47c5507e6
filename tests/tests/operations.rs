//! Durable operations against a real nats-server: progress, watch, wait,
//! cancel, ownership and capability gates, reattaching after the caller
//! reconnects and after the provider restarts, abandoned operations, and
//! control through a second provider instance.

mod common;
mod jobs;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use jobs::{JobHandlers, jobs as contract};
use trellis::{OperationError, OperationStatus, Outcome, RpcServer, ServeOptions};

fn serve_options() -> ServeOptions {
    ServeOptions::default().operation_lease(Duration::from_millis(900))
}

async fn provider(stack: &Stack, instance: &str) -> (RpcServer, JobHandlers) {
    provider_with(stack, instance, serve_options()).await
}

async fn provider_with(
    stack: &Stack,
    instance: &str,
    serve: ServeOptions,
) -> (RpcServer, JobHandlers) {
    let service = contract::Service::connect(stack.service(contract::ID).await)
        .await
        .expect("service connects");
    let handlers = JobHandlers::new(service.store.blobs.clone(), instance);
    let server = service.serve(handlers.clone(), serve).await.expect("serve");
    (server, handlers)
}

type JobRef = trellis::OperationRef<contract::JobProgress, contract::JobOutput>;

/// Waits until `op`'s handler runs.
async fn until_running(op: &JobRef) {
    eventually(Duration::from_secs(5), "the job to run", || async {
        (op.get().await.ok()?.status == OperationStatus::Running).then_some(())
    })
    .await;
}

/// Starts a job that runs (practically) forever, once its handler runs.
async fn start_endless(client: &contract::Client) -> JobRef {
    let op = client
        .operation
        .jobs
        .run
        .input(job(100_000, 20))
        .start()
        .await
        .expect("start");
    until_running(&op).await;
    op
}

async fn caller(stack: &Stack, principal: &str, caps: &[&str]) -> contract::Client {
    contract::Client::connect(stack.user(principal, caps).await)
        .await
        .expect("client connects")
}

fn job(steps: u32, step_ms: u64) -> contract::JobInput {
    contract::JobInput {
        steps,
        step_ms,
        fail: false,
    }
}

async fn setup() -> Stack {
    let stack = stack().await;
    accept_ready(
        &stack,
        contract::MANIFEST_JSON,
        contract::ID,
        contract::DIGEST,
    )
    .await;
    stack
}

#[tokio::test]
async fn progress_watch_wait_cancel_and_failure() {
    let stack = setup().await;
    let (server, _) = provider(&stack, "a").await;
    let alice = caller(&stack, "alice", &["jobs::run"]).await;

    // watch: the snapshot, then changes with rising revisions, ending after
    // the terminal one.
    let op = alice
        .operation
        .jobs
        .run
        .input(job(5, 40))
        .start()
        .await
        .expect("start");
    let seen: Vec<_> = op.watch().collect().await;
    let seen: Vec<_> = seen.into_iter().map(|s| s.expect("watch")).collect();
    assert!(seen.windows(2).all(|w| w[0].revision < w[1].revision));
    assert!(seen.iter().any(|s| s.progress.is_some()), "{seen:?}");
    let last = seen.last().expect("events");
    assert_eq!(last.status, OperationStatus::Completed);
    assert_eq!(last.output.as_ref().map(|o| o.total), Some(5));
    assert_eq!(last.progress, Some(contract::JobProgress { done: 5 }));
    assert_eq!(op.get().await.expect("get").revision, last.revision);

    // wait.
    let op = alice
        .operation
        .jobs
        .run
        .input(job(3, 10))
        .start()
        .await
        .expect("start");
    match op.wait().await.expect("wait") {
        Outcome::Completed(out) => assert_eq!(out.total, 3),
        other => panic!("expected completion, got {other:?}"),
    }

    // Cooperative cancel: the handler sees the signal and ends cancelled.
    let op = alice
        .operation
        .jobs
        .run
        .input(job(1_000, 20))
        .start()
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = op.cancel().await.expect("cancel");
    assert!(after.cancel_requested);
    assert_eq!(op.wait().await.expect("wait"), Outcome::Cancelled);

    // A handler failure is a terminal state with its message.
    let op = alice
        .operation
        .jobs
        .run
        .input(contract::JobInput {
            fail: true,
            ..job(1, 1)
        })
        .start()
        .await
        .expect("start");
    assert_eq!(
        op.wait().await.expect("wait"),
        Outcome::Failed("asked to fail".into())
    );

    // Cancel of an operation that does not support it is an expected error
    // that changes nothing.
    let quick = alice
        .operation
        .jobs
        .quick
        .input(job(10, 30))
        .start()
        .await
        .expect("start");
    let before = quick.get().await.expect("get");
    match quick.cancel().await {
        Err(OperationError::CancelUnsupported { operation }) => {
            assert_eq!(operation, "Jobs.Quick")
        }
        other => panic!("expected CancelUnsupported, got {other:?}"),
    }
    let after = quick.get().await.expect("get");
    assert!(!after.cancel_requested);
    assert!(matches!(
        quick.wait().await.expect("wait"),
        Outcome::Completed(_)
    ));
    assert!(after.revision >= before.revision);

    match alice
        .operation
        .jobs
        .run
        .attach("AAAAAAAAAAAAAAAAAAAAAA")
        .get()
        .await
    {
        Err(OperationError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn reattach_after_reconnect_with_ownership_and_capability_gates() {
    let stack = setup().await;
    let (_server, _) = provider(&stack, "a").await;
    let id = {
        let alice = caller(&stack, "alice", &["jobs::run"]).await;
        let op = alice
            .operation
            .jobs
            .run
            .input(job(10, 50))
            .start()
            .await
            .expect("start");
        op.id().to_owned()
        // The caller's connection ends here.
    };

    // The same principal reattaches from a new connection and observes.
    let alice = caller(&stack, "alice", &[]).await;
    let op = alice.operation.jobs.run.attach(id.clone());
    match op.wait().await.expect("wait") {
        Outcome::Completed(out) => assert_eq!(out.total, 10),
        other => panic!("expected completion, got {other:?}"),
    }

    // Someone else can neither observe nor cancel it...
    let bob = caller(&stack, "bob", &[]).await;
    let theirs = bob.operation.jobs.run.attach(id.clone());
    assert!(matches!(
        theirs.get().await,
        Err(OperationError::Forbidden { .. })
    ));
    assert!(matches!(
        theirs.cancel().await,
        Err(OperationError::Forbidden { .. })
    ));
    // ...unless they hold the observe capability (observe only) or the
    // cancel capability.
    let running = start_endless(&caller(&stack, "alice", &["jobs::run"]).await).await;
    let carol = caller(&stack, "carol", &["jobs::watch"]).await;
    let observed = carol.operation.jobs.run.attach(running.id().to_owned());
    assert_eq!(
        observed.get().await.expect("observe").status,
        OperationStatus::Running
    );
    assert!(matches!(
        observed.cancel().await,
        Err(OperationError::Forbidden { .. })
    ));
    let dave = caller(&stack, "dave", &["jobs::stop"]).await;
    dave.operation
        .jobs
        .run
        .attach(running.id().to_owned())
        .cancel()
        .await
        .expect("cancel with the capability");
    assert_eq!(running.wait().await.expect("wait"), Outcome::Cancelled);
}

#[tokio::test]
async fn provider_restart_keeps_results_and_fails_abandoned_operations() {
    let stack = setup().await;
    let alice = caller(&stack, "alice", &["jobs::run"]).await;

    let (server, _) = provider(&stack, "first").await;
    let done = alice
        .operation
        .jobs
        .run
        .input(job(2, 10))
        .start()
        .await
        .expect("start");
    assert!(matches!(
        done.wait().await.expect("wait"),
        Outcome::Completed(_)
    ));
    let stuck = start_endless(&alice).await;
    // The provider dies without recording anything.
    server.abort();

    let (server, _) = provider(&stack, "second").await;
    // A finished operation's result survives the restart.
    match done.get().await.expect("get").outcome() {
        Some(Outcome::Completed(out)) => assert_eq!(out.instance, "first"),
        other => panic!("expected the stored result, got {other:?}"),
    }
    // The orphaned one is failed once its lease runs out.
    match stuck.wait().await.expect("wait") {
        Outcome::Failed(message) => assert!(message.contains("abandoned"), "{message}"),
        other => panic!("expected an abandoned failure, got {other:?}"),
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn any_instance_answers_control_for_any_operation() {
    let stack = setup().await;
    let (a, ha) = provider(&stack, "a").await;
    let (b, hb) = provider(&stack, "b").await;
    let alice = caller(&stack, "alice", &["jobs::run"]).await;
    let mut ops = Vec::new();
    for _ in 0..12 {
        ops.push(
            alice
                .operation
                .jobs
                .run
                .input(job(100_000, 20))
                .start()
                .await
                .expect("start"),
        );
    }
    for op in &ops {
        until_running(op).await;
    }
    let ran_on_a = ha.started.lock().expect("lock").len();
    let ran_on_b = hb.started.lock().expect("lock").len();
    assert_eq!(ran_on_a + ran_on_b, 12);
    // Cancels land on either instance (queue group); each reaches the
    // instance running the handler through the ledger.
    for op in &ops {
        op.cancel().await.expect("cancel");
    }
    for op in &ops {
        assert_eq!(op.wait().await.expect("wait"), Outcome::Cancelled);
    }
    // Shut one instance down: the other still answers for every operation.
    assert!(a.shutdown(Duration::from_secs(5)).await);
    for op in &ops {
        assert_eq!(
            op.get().await.expect("get").status,
            OperationStatus::Cancelled
        );
    }
    assert!(b.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn shutdown_answers_pending_long_polls() {
    let stack = setup().await;
    let alice = caller(&stack, "alice", &["jobs::run"]).await;
    let long_lease = || ServeOptions::default().operation_lease(Duration::from_secs(60));
    // An operation whose instance died keeps its lease for a minute: it
    // stays `running` and watchers long-poll.
    let (a, _) = provider_with(&stack, "a", long_lease()).await;
    let op = start_endless(&alice).await;
    a.abort();
    let (b, _) = provider_with(&stack, "b", long_lease()).await;
    let waiter = {
        let op = op.clone();
        tokio::spawn(async move { op.wait().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        b.shutdown(Duration::from_secs(5)).await,
        "a pending long poll does not hold up shutdown"
    );
    // With no instance left, the waiter gets a typed error, not a hang.
    match tokio::time::timeout(Duration::from_secs(10), waiter).await {
        Ok(Ok(Err(OperationError::Call(trellis::CallError::NoResponders { .. })))) => {}
        other => panic!("expected NoResponders, got {other:?}"),
    }
}

#[tokio::test]
async fn operations_in_flight_are_bounded_and_refused_beyond() {
    let stack = setup().await;
    let alice = caller(&stack, "alice", &["jobs::run"]).await;
    let serve = ServeOptions::default()
        .operation_concurrency(1)
        .max_operations_in_flight(3);
    let (server, _) = provider_with(&stack, "a", serve).await;
    // One runs, two wait for the handler slot: three in flight.
    let running = start_endless(&alice).await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(
            alice
                .operation
                .jobs
                .run
                .input(job(100_000, 20))
                .start()
                .await
                .expect("start"),
        );
    }
    match alice.operation.jobs.run.input(job(1, 1)).start().await {
        Err(OperationError::Refused { message, .. }) => {
            assert!(message.contains("3 operations in flight"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Ending one frees its place.
    running.cancel().await.expect("cancel");
    eventually(
        Duration::from_secs(10),
        "a start to be accepted again",
        || async { alice.operation.jobs.run.input(job(1, 1)).start().await.ok() },
    )
    .await;
    for op in waiting {
        op.cancel().await.expect("cancel");
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
