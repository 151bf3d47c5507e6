//! The runtime spine against a real nats-server: accept → reconcile →
//! connect → typed handles, compatible rollouts, failures, restarts,
//! concurrent reconcilers, drift and detached resources.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use trellis::{ConnectError, ConnectOptions};
use trellis_authority::Authority;
use trellis_runtime::protocol::ResourceStatus;

mod v1 {
    #[trellis::contract(
        id = "inventory@v1",
        display_name = "Inventory",
        description = "Stock levels"
    )]
    pub mod inventory {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Stock {
            pub sku: String,
            pub count: u32,
        }

        #[kv(purpose = "Stock by sku", schema = Stock, history = 2)]
        pub struct Levels;

        #[store(purpose = "Product photos", max_total_bytes = 1_000_000)]
        pub struct Photos;

        #[kv(purpose = "Optional cache", schema = Stock, required = false)]
        pub struct Cache;
    }
}

/// A compatible evolution of v1: more history, an optional field, no store limit.
mod v2 {
    #[trellis::contract(
        id = "inventory@v1",
        display_name = "Inventory",
        description = "Stock levels"
    )]
    pub mod inventory {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Stock {
            pub sku: String,
            pub count: u32,
            #[serde(default)]
            pub location: Option<String>,
        }

        #[kv(purpose = "Stock by sku", schema = Stock, history = 4)]
        pub struct Levels;

        #[store(purpose = "Product photos")]
        pub struct Photos;

        #[kv(purpose = "Optional cache", schema = Stock, required = false)]
        pub struct Cache;
    }
}

/// v1 without the cache alias (a dangerous removal); only its manifest is used.
#[allow(dead_code)]
mod v3 {
    #[trellis::contract(
        id = "inventory@v1",
        display_name = "Inventory",
        description = "Stock levels"
    )]
    pub mod inventory {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Stock {
            pub sku: String,
            pub count: u32,
        }

        #[kv(purpose = "Stock by sku", schema = Stock, history = 2)]
        pub struct Levels;

        #[store(purpose = "Product photos", max_total_bytes = 1_000_000)]
        pub struct Photos;
    }
}

async fn options(stack: &Stack) -> ConnectOptions {
    stack
        .service("inventory@v1")
        .await
        .ready_deadline(Duration::from_secs(15))
}

fn stock(sku: &str, count: u32) -> v1::inventory::Stock {
    v1::inventory::Stock {
        sku: sku.into(),
        count,
    }
}

#[tokio::test]
async fn accept_reconcile_connect_and_compatible_rollout_reuses_data() {
    let stack = stack().await;
    let reply = stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, false)
        .await
        .expect("accept v1");
    assert_eq!(reply.plan.digest, v1::inventory::DIGEST);

    let service = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("v1 connects");
    let rev = service
        .kv
        .levels
        .put("sku-1", &stock("sku-1", 7))
        .await
        .expect("put");
    let entry = service
        .kv
        .levels
        .get("sku-1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(entry.value, stock("sku-1", 7));
    assert_eq!(entry.revision, rev);
    assert!(service.kv.cache.is_some(), "optional cache provisioned");

    let photos = service.store.photos.open().await.expect("open store");
    let info = photos
        .put(
            "sku-1/front.jpg",
            vec![7u8; 300_000],
            trellis::PutOptions::new().content_type("image/jpeg"),
        )
        .await
        .expect("store put");
    assert_eq!(info.size, 300_000);
    let object = photos
        .get("sku-1/front.jpg")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(object.info().content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(object.bytes().await.expect("bytes").len(), 300_000);
    // Writes beyond the installed limit fail whole, leaving nothing behind.
    let err = photos
        .put("huge.bin", vec![0u8; 2_000_000], trellis::PutOptions::new())
        .await
        .expect_err("over max_total_bytes");
    assert!(
        matches!(err, trellis::StoreError::StoreFull { .. }),
        "{err:?}"
    );
    assert!(photos.info("huge.bin").await.expect("info").is_none());
    let status = photos.status().await.expect("status");
    assert_eq!(status.max_total_bytes, Some(1_000_000));
    assert_eq!(status.objects, 1);

    let before = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;
    assert_eq!(
        before.bindings.store["photos"].max_total_bytes,
        Some(1_000_000)
    );
    assert_eq!(before.bindings.kv["levels"].history, 2);

    // A compatible rollout: new digest, same lineage, same buckets.
    assert_ne!(v1::inventory::DIGEST, v2::inventory::DIGEST);
    let reply = stack
        .client
        .accept(v2::inventory::MANIFEST_JSON, false)
        .await
        .expect("compatible rollout is safe");
    assert!(!reply.plan.is_dangerous(), "{:?}", reply.plan);
    let after = ready(&stack.client, "inventory@v1", v2::inventory::DIGEST).await;
    assert_eq!(
        after.bindings.kv["levels"].bucket,
        before.bindings.kv["levels"].bucket
    );
    assert_eq!(after.bindings.kv["levels"].history, 4);
    // Removing max_total_bytes resets the installed limit to unlimited.
    assert_eq!(after.bindings.store["photos"].max_total_bytes, None);
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let mut photos = js
        .get_stream(format!("OBJ_{}", after.bindings.store["photos"].bucket))
        .await
        .expect("photos stream");
    assert_eq!(photos.info().await.expect("info").config.max_bytes, -1);

    let service2 = v2::inventory::Service::connect(options(&stack).await)
        .await
        .expect("v2 connects");
    let old = service2
        .kv
        .levels
        .get("sku-1")
        .await
        .expect("get")
        .expect("old data");
    assert_eq!(old.value.count, 7);
    assert_eq!(old.value.location, None);

    // The superseded build still connects during the rollout (on the
    // accepted build's bindings); retired, it is refused with a typed
    // error naming the retirement.
    let v1_again = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("v1 connects during the rollout");
    let kept = v1_again.kv.levels.get("sku-1").await.expect("get");
    assert_eq!(kept.expect("value").value.count, 7);
    stack
        .client
        .retire("inventory@v1", v1::inventory::DIGEST)
        .await
        .expect("retire v1");
    match v1::inventory::Service::connect(options(&stack).await).await {
        Err(ConnectError::Retired {
            digest, accepted, ..
        }) => {
            assert_eq!(digest, v1::inventory::DIGEST);
            assert_eq!(accepted, v2::inventory::DIGEST);
        }
        other => panic!("expected Retired, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_contract_is_a_typed_error() {
    let stack = stack().await;
    match v1::inventory::Service::connect(options(&stack).await).await {
        Err(ConnectError::NotAccepted { id }) => assert_eq!(id, "inventory@v1"),
        other => panic!("expected NotAccepted, got {other:?}"),
    }
    // Another deployment on the same server: its authority subjects are
    // outside this principal's permissions, so nats-server drops the
    // request and the call times out; without auth nobody answers.
    let err = v1::inventory::Service::connect(
        options(&stack)
            .await
            .deployment("nowhere")
            .request_timeout(Duration::from_millis(500))
            // An absent authority is waited for up to the deadline.
            .ready_deadline(Duration::from_secs(1)),
    )
    .await
    .expect_err("no authority");
    assert!(
        matches!(
            err,
            ConnectError::Authority(
                trellis_runtime::ClientError::Timeout(_)
                    | trellis_runtime::ClientError::Unavailable { .. }
            )
        ),
        "{err}"
    );
    let plain = plain_stack().await;
    let err = v1::inventory::Service::connect(
        plain
            .options()
            .deployment("nowhere")
            .ready_deadline(Duration::from_secs(1)),
    )
    .await
    .expect_err("no authority");
    assert!(err.to_string().contains("no deployment authority"), "{err}");
}

/// Occupies the physical name of `alias` with an incompatible stream.
async fn occupy(stack: &Stack, alias: &str) {
    let plan = stack
        .client
        .plan(v1::inventory::MANIFEST_JSON)
        .await
        .expect("plan");
    let item = plan
        .items
        .iter()
        .find(|i| i.alias == alias)
        .expect("planned");
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: format!("KV_{}", item.physical),
        subjects: vec![format!("squatter.{alias}.>")],
        ..Default::default()
    })
    .await
    .expect("squatter stream");
}

#[tokio::test]
async fn failed_optional_resource_is_absent_and_connect_succeeds() {
    let stack = stack().await;
    occupy(&stack, "cache").await;
    stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, true)
        .await
        .expect("accept with the squatter acknowledged");
    let service = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("optional failure does not block connect");
    assert!(service.kv.cache.is_none());
    service
        .kv
        .levels
        .put("a", &stock("a", 1))
        .await
        .expect("required kv works");
    let state = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;
    let cache = state
        .resources
        .iter()
        .find(|r| r.alias == "cache")
        .expect("cache state");
    assert!(
        matches!(&cache.status, ResourceStatus::Failed { reason } if reason.contains("not adopting"))
    );
}

#[tokio::test]
async fn failed_required_resource_fails_connect_with_the_reason() {
    let stack = stack().await;
    occupy(&stack, "levels").await;
    stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, true)
        .await
        .expect("accept");
    let err = v1::inventory::Service::connect(
        options(&stack).await.ready_deadline(Duration::from_secs(2)),
    )
    .await
    .expect_err("required resource failed");
    match &err {
        ConnectError::NotReady { unready, .. } => {
            let levels = unready
                .iter()
                .find(|u| u.alias == "levels")
                .expect("levels named");
            assert_eq!(levels.kind, "kv");
            assert!(levels.reason.contains("not adopting"), "{}", levels.reason);
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(err.to_string().contains("kv `levels`"), "{err}");
}

#[tokio::test]
async fn accepted_state_bindings_and_data_survive_a_server_restart() {
    let mut stack = stack().await;
    stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, false)
        .await
        .expect("accept");
    let service = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("connect");
    service
        .kv
        .levels
        .put("kept", &stock("kept", 3))
        .await
        .expect("put");
    let before = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;

    stack.server.restart().await.expect("restart");

    let service = eventually(
        Duration::from_secs(20),
        "reconnect after restart",
        || async {
            v1::inventory::Service::connect(options(&stack).await)
                .await
                .ok()
        },
    )
    .await;
    let kept = service
        .kv
        .levels
        .get("kept")
        .await
        .expect("get")
        .expect("value survived");
    assert_eq!(kept.value, stock("kept", 3));
    let after = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;
    assert_eq!(after.bindings, before.bindings);
    assert_eq!(status(&stack.client).await.contracts[0].generation, 1);
}

#[tokio::test]
async fn concurrent_reconcilers_drift_repair_and_detached_orphans() {
    let stack = stack().await;
    // A second authority instance on the same deployment.
    let second = Authority::start(
        stack.server.client().await.expect("client"),
        stack.config.clone(),
    )
    .await
    .expect("second authority");
    stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, false)
        .await
        .expect("accept");
    second.reconcile_now();
    stack.authority.as_ref().expect("authority").reconcile_now();
    let state = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;

    // Exactly one stream per alias.
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let mut names = Vec::new();
    let mut list = js.stream_names();
    use futures::StreamExt as _;
    while let Some(name) = list.next().await {
        names.push(name.expect("stream name"));
    }
    for (alias, b) in &state.bindings.kv {
        let n = names.iter().filter(|n| n.contains(&b.bucket)).count();
        assert_eq!(n, 1, "{alias}: {names:?}");
    }
    let provisioned = names.iter().filter(|n| n.contains("inventory-v1")).count();
    assert_eq!(provisioned, 3, "{names:?}");

    // Drift: someone deletes a bucket by hand; the next pass recreates it.
    let levels = format!("KV_{}", state.bindings.kv["levels"].bucket);
    js.delete_stream(&levels).await.expect("hand delete");
    eventually(
        Duration::from_secs(15),
        "the deleted bucket to come back",
        || async { js.get_stream(&levels).await.ok().map(|_| ()) },
    )
    .await;

    // Detach: dropping the cache alias keeps its data as an orphan.
    let service = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("connect");
    let cache = service.kv.cache.as_ref().expect("cache bound");
    cache.put("warm", &stock("warm", 1)).await.expect("put");
    let cache_bucket = state.bindings.kv["cache"].bucket.clone();
    stack
        .client
        .accept(v3::inventory::MANIFEST_JSON, true)
        .await
        .expect("dangerous removal confirmed");
    let orphan = eventually(
        Duration::from_secs(15),
        "the orphan to be listed",
        || async {
            status(&stack.client)
                .await
                .orphans
                .into_iter()
                .find(|o| o.physical == cache_bucket)
        },
    )
    .await;
    assert_eq!(orphan.alias, "cache");
    let after = ready(&stack.client, "inventory@v1", v3::inventory::DIGEST).await;
    assert!(!after.bindings.kv.contains_key("cache"));
    let raw = js
        .get_key_value(&cache_bucket)
        .await
        .expect("data retained");
    assert!(raw.get("warm").await.expect("get").is_some());

    // Only an explicit purge deletes it.
    let purged = stack.client.purge(&cache_bucket).await.expect("purge");
    assert_eq!(purged.physical, cache_bucket);
    assert!(js.get_stream(format!("KV_{cache_bucket}")).await.is_err());
    assert!(status(&stack.client).await.orphans.is_empty());
    let err = stack
        .client
        .purge(&state.bindings.kv["levels"].bucket)
        .await
        .expect_err("not an orphan");
    assert!(err.to_string().contains("only detached resources"), "{err}");
    second.shutdown().await;
}

#[tokio::test]
async fn failed_reconcile_keeps_last_good_bindings_and_running_services_work() {
    let stack = stack().await;
    stack
        .client
        .accept(v1::inventory::MANIFEST_JSON, false)
        .await
        .expect("accept");
    let service = v1::inventory::Service::connect(options(&stack).await)
        .await
        .expect("connect");
    let good = ready(&stack.client, "inventory@v1", v1::inventory::DIGEST).await;

    // Someone changes the bucket's discard policy by hand: the stream still
    // works, but it is no longer what trellis provisions, so the reconciler
    // refuses to adopt (or fight) it and reports the failure.
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let name = format!("KV_{}", good.bindings.kv["levels"].bucket);
    let mut stream = js.get_stream(&name).await.expect("stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.discard = async_nats::jetstream::stream::DiscardPolicy::Old;
    js.update_stream(&config).await.expect("hand edit");

    let failed = state_where(&stack.client, "inventory@v1", "levels to fail", |s| {
        s.resources
            .iter()
            .any(|r| r.alias == "levels" && matches!(r.status, ResourceStatus::Failed { .. }))
    })
    .await;
    assert_eq!(
        failed.bindings.kv["levels"], good.bindings.kv["levels"],
        "last good binding kept"
    );
    let levels = failed
        .resources
        .iter()
        .find(|r| r.alias == "levels")
        .expect("levels");
    assert!(
        levels.attempts >= 1 && levels.next_attempt_ms > 0,
        "retried with backoff: {levels:?}"
    );

    // The running service keeps working on its bindings.
    service
        .kv
        .levels
        .put("still", &stock("still", 1))
        .await
        .expect("put still works");
    assert!(service.kv.levels.get("still").await.expect("get").is_some());
    // New instances wait for a ready contract instead.
    let err = v1::inventory::Service::connect(
        options(&stack)
            .await
            .ready_deadline(Duration::from_millis(500)),
    )
    .await
    .expect_err("not ready");
    assert!(err.to_string().contains("discards"), "{err}");
}

#[tokio::test]
async fn a_service_started_while_the_authority_is_down_connects_once_it_is_back() {
    let mut stack = stack().await;
    accept_ready(
        &stack,
        v1::inventory::MANIFEST_JSON,
        "inventory@v1",
        v1::inventory::DIGEST,
    )
    .await;
    let options = options(&stack)
        .await
        .ready_deadline(Duration::from_secs(20));
    stack.stop_authority().await;
    let connecting = tokio::spawn(v1::inventory::Service::connect(options));
    // Down long enough that a connect without retries would have failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !connecting.is_finished(),
        "connect gave up while the authority was down"
    );
    stack.start_authority().await;
    let service = connecting
        .await
        .expect("connect task")
        .expect("connects once the authority is back");
    service
        .kv
        .levels
        .put("back", &stock("back", 1))
        .await
        .expect("the service works");
}

#[tokio::test]
async fn a_service_connects_through_any_listed_server() {
    let stack = stack().await;
    accept_ready(
        &stack,
        v1::inventory::MANIFEST_JSON,
        "inventory@v1",
        v1::inventory::DIGEST,
    )
    .await;
    // Three listed servers refuse (nobody listens there) and one answers;
    // the list is tried in random order, so several connects each have to
    // get past the dead ones.
    let dead: Vec<String> = (0..3)
        .map(|_| {
            let port = trellis_testing::free_port().expect("free port");
            format!("nats://127.0.0.1:{port}")
        })
        .collect();
    for _ in 0..4 {
        let options = options(&stack)
            .await
            .server(dead.join(","))
            .ready_deadline(Duration::from_secs(5));
        assert_eq!(options.servers().len(), 4);
        let service = v1::inventory::Service::connect(options)
            .await
            .expect("connects through the live server");
        service
            .kv
            .levels
            .put("listed", &stock("listed", 1))
            .await
            .expect("works");
    }
}
