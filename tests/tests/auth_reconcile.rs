//! Under auth callout, a failed reconcile does not take permissions away
//! from services that were already running: the permissions a connection
//! is issued come from the accepted contracts and their last good
//! bindings, so the running service, a fresh connection with the same
//! credentials and a reconnect after a server restart all keep exactly
//! their KV access (and the `uses` of the last ready version) while the
//! reconcile of a new version fails, and still nothing more than that.
#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use tokio::sync::mpsc::UnboundedReceiver;
use trellis::{ConnectError, ConnectOptions};
use trellis_runtime::identity::PrincipalKind;
use trellis_runtime::protocol::{ContractStatus, Phase, ResourceStatus};

const ID: &str = "ledger@v1";

mod v1 {
    #[trellis::contract(id = "ledger@v1", display_name = "Ledger", description = "Entries")]
    pub mod ledger {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Entry {
            pub id: String,
            pub amount: u32,
        }

        #[kv(purpose = "Entries by id", schema = Entry, history = 2)]
        pub struct Entries;

        /// Looks documents up (v2 drops this).
        #[uses(contract = "documents@v1", rpc = ["Files.Head"])]
        pub struct Docs;
    }
}

/// v1 without its `uses`, plus a new required bucket; the test occupies its physical name so
/// the reconcile of this version fails.
#[allow(dead_code)]
mod v2 {
    #[trellis::contract(id = "ledger@v1", display_name = "Ledger", description = "Entries")]
    pub mod ledger {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Entry {
            pub id: String,
            pub amount: u32,
        }

        #[kv(purpose = "Entries by id", schema = Entry, history = 2)]
        pub struct Entries;

        #[kv(purpose = "Audit trail", schema = Entry)]
        pub struct Audit;
    }
}

use v1::ledger::Entry;

fn entry(id: &str, amount: u32) -> Entry {
    Entry {
        id: id.into(),
        amount,
    }
}

/// Waits for nats-server to report a permission violation for publishing
/// to `subject`; every server error before it must be something else than
/// a permission violation (the connection did nothing else forbidden).
async fn publish_violation(errors: &mut UnboundedReceiver<String>, subject: &str) {
    let others = violation(errors, "publish", subject, Duration::from_secs(10)).await;
    assert!(others.is_empty(), "unexpected violations: {others:?}");
}

/// Asserts the connection has had no server error at all so far.
fn no_errors(errors: &mut UnboundedReceiver<String>, what: &str) {
    let mut seen = Vec::new();
    while let Ok(e) = errors.try_recv() {
        seen.push(e);
    }
    assert!(seen.is_empty(), "{what}: server errors {seen:?}");
}

fn audit_failed(s: &ContractStatus) -> bool {
    s.digest == v2::ledger::DIGEST
        && s.resources
            .iter()
            .any(|r| r.alias == "audit" && matches!(r.status, ResourceStatus::Failed { .. }))
}

/// The permission-violation lines nats-server logged so far.
fn logged_violations(stack: &Stack) -> Vec<String> {
    stack
        .server
        .log()
        .lines()
        .filter(|l| l.to_lowercase().contains("violation"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn failed_reconcile_keeps_running_services_permissions_under_auth() {
    let mut stack = auth_stack().await;
    let url = stack.server.url();

    // Another contract with its own bucket: never the ledger's to touch.
    let shop = manifest(&shop(KV, STORE, ITEM));
    let accepted = stack
        .client
        .accept(&shop, false)
        .await
        .expect("accept shop");
    let shop_state = ready(&stack.client, "shop@v1", &accepted.plan.digest).await;
    let other_bucket = shop_state.bindings.kv["items"].bucket.clone();

    // 1. The ledger v1 (which uses documents) is ready and its service
    //    runs with its own key.
    accept_ready(
        &stack,
        documents_example::documents::MANIFEST_JSON,
        documents_example::documents::ID,
        documents_example::documents::DIGEST,
    )
    .await;
    accept_ready(&stack, v1::ledger::MANIFEST_JSON, ID, v1::ledger::DIGEST).await;
    let good = contract_state(&stack, ID).await;
    let bucket = good.bindings.kv["entries"].bucket.clone();
    let creds = stack
        .client
        .enroll(PrincipalKind::Service, "ledger", None, Some(ID))
        .await
        .expect("enroll the ledger service");
    let options = ConnectOptions::new(url.clone())
        .deployment("test")
        .ready_deadline(Duration::from_secs(15));
    let service = v1::ledger::Service::connect(options.clone().credentials(creds.clone()))
        .await
        .expect("the ledger service connects with its key");
    service
        .kv
        .entries
        .put("e-1", &entry("e-1", 1))
        .await
        .expect("put before the failure");
    let got = service.kv.entries.get("e-1").await.expect("get");
    assert_eq!(got.map(|e| e.value), Some(entry("e-1", 1)));

    // 2. v2 adds a required bucket whose physical name someone occupied
    //    with an incompatible stream: its reconcile fails (never adopting
    //    the squatter), the contract stays pending.
    let plan = stack
        .client
        .plan(v2::ledger::MANIFEST_JSON)
        .await
        .expect("plan v2");
    let audit_physical = plan
        .items
        .iter()
        .find(|i| i.alias == "audit")
        .expect("audit planned")
        .physical
        .clone();
    let js = async_nats::jetstream::new(stack.server.client().await.expect("admin client"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: format!("KV_{audit_physical}"),
        subjects: vec!["squatter.audit.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("squatter stream");
    stack
        .client
        .accept(v2::ledger::MANIFEST_JSON, true)
        .await
        .expect("accept v2 with the squatter acknowledged");
    let failed = state_where(&stack.client, ID, "the audit bucket to fail", audit_failed).await;
    assert_eq!(failed.phase, Phase::Pending, "{failed:?}");
    let audit = failed
        .resources
        .iter()
        .find(|r| r.alias == "audit")
        .expect("audit state");
    assert!(
        matches!(&audit.status, ResourceStatus::Failed { reason } if reason.contains("not adopting")),
        "{audit:?}"
    );
    assert_eq!(
        failed.bindings.kv.get("entries"),
        good.bindings.kv.get("entries"),
        "the last good binding is kept"
    );
    assert!(
        !failed.bindings.kv.contains_key("audit"),
        "a failed new bucket has no binding"
    );

    // 3a. The running service keeps working on its bindings.
    service
        .kv
        .entries
        .put("e-2", &entry("e-2", 2))
        .await
        .expect("put while the reconcile fails");
    let got = service.kv.entries.get("e-1").await.expect("get");
    assert_eq!(got.map(|e| e.value), Some(entry("e-1", 1)));
    let mut keys = service.kv.entries.keys(">").await.expect("keys");
    keys.sort();
    assert_eq!(keys, ["e-1", "e-2"]);

    // 3b. What a connection would be issued now still covers the bucket
    //     (and nothing of the failed one or of other contracts).
    let principals = stack.client.principals().await.expect("principals");
    assert!(principals.auth);
    let perms = principals
        .principals
        .iter()
        .find(|p| p.record.id == "ledger")
        .and_then(|p| p.permissions.clone())
        .expect("ledger permissions");
    let own_data = format!("$KV.{bucket}.>");
    assert!(
        perms.publish.contains(&own_data),
        "{own_data} missing from {:?}",
        perms.publish
    );
    assert!(
        perms
            .publish
            .contains(&format!("$JS.API.STREAM.INFO.KV_{bucket}")),
        "{:?}",
        perms.publish
    );
    // The `uses` of the last ready version still apply (v2 dropped them).
    let head = trellis::rpc::request_subject(
        "test",
        &creds.public_key(),
        "documents@v1",
        "rpc.v1.Files.Head",
    );
    assert!(perms.publish.contains(&head), "{:?}", perms.publish);
    for foreign in [&audit_physical, &other_bucket] {
        assert!(
            !perms.publish.iter().any(|s| s.contains(foreign.as_str())),
            "{foreign} must not be granted: {:?}",
            perms.publish
        );
    }

    // 3c. A new connection with the same key (the callout runs again, in
    //     the failed state) gets the same access to the bucket.
    let (raw, mut errors) = raw_as(&creds, &url).await;
    let raw_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(raw.clone());
    let kv = raw_js
        .get_key_value(bucket.as_str())
        .await
        .expect("a new connection opens its bucket");
    let written = serde_json::to_vec(&entry("e-3", 3)).expect("json");
    kv.put("e-3", written.into())
        .await
        .expect("a new connection writes its bucket");
    let read = kv
        .get("e-2")
        .await
        .expect("a new connection reads its bucket")
        .expect("e-2 present");
    assert_eq!(
        serde_json::from_slice::<Entry>(&read).expect("entry"),
        entry("e-2", 2)
    );
    let got = service.kv.entries.get("e-3").await.expect("get");
    assert_eq!(got.map(|e| e.value), Some(entry("e-3", 3)));
    raw.flush().await.expect("flush");
    no_errors(&mut errors, "the new connection's own KV traffic");

    // Readiness still gates new typed instances (a separate matter from
    // NATS permissions): the superseded build is refused (v2 was accepted
    // through a dangerous plan), the new one waits for the failed bucket.
    match v1::ledger::Service::connect(options.clone().credentials(creds.clone())).await {
        Err(ConnectError::Retired {
            accepted, reason, ..
        }) => {
            assert_eq!(accepted, v2::ledger::DIGEST);
            assert_eq!(reason, trellis_runtime::protocol::RetireReason::Dangerous);
        }
        other => panic!("expected Retired, got {:?}", other.err()),
    }
    match v2::ledger::Service::connect(
        options
            .clone()
            .credentials(creds.clone())
            .ready_deadline(Duration::from_millis(500)),
    )
    .await
    {
        Err(ConnectError::NotReady { unready, .. }) => {
            assert!(unready.iter().any(|u| u.alias == "audit"), "{unready:?}")
        }
        other => panic!("expected NotReady, got {:?}", other.err()),
    }

    // 3d. The running service's own connection reconnects after a server
    //     restart (a new callout while the reconcile still fails) and
    //     keeps its access.
    stack.server.restart().await.expect("restart");
    eventually(
        Duration::from_secs(45),
        "the running service to write again after reconnecting",
        || async { service.kv.entries.put("e-4", &entry("e-4", 4)).await.ok() },
    )
    .await;
    let got = service.kv.entries.get("e-4").await.expect("get");
    assert_eq!(got.map(|e| e.value), Some(entry("e-4", 4)));
    let after = state_where(
        &stack.client,
        ID,
        "the audit bucket to still fail after the restart",
        audit_failed,
    )
    .await;
    assert_eq!(after.phase, Phase::Pending);
    assert_eq!(
        after.bindings.kv.get("entries"),
        good.bindings.kv.get("entries")
    );
    let got = service.kv.entries.get("e-1").await.expect("get");
    assert_eq!(got.map(|e| e.value), Some(entry("e-1", 1)));

    // Nothing the ledger did so far was denied.
    let denied = logged_violations(&stack);
    assert!(denied.is_empty(), "unexpected violations: {denied:?}");

    // 4. Still least privilege: another contract's bucket and the failed
    //    (never bound) bucket are denied by nats-server itself.
    let (raw, mut errors) = raw_as(&creds, &url).await;
    for foreign in [&other_bucket, &audit_physical] {
        let subject = format!("$KV.{foreign}.x");
        raw.publish(subject.clone(), "x".into()).await.expect("pub");
        publish_violation(&mut errors, &subject).await;
    }
    let raw_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(raw.clone());
    assert!(raw_js.get_key_value(other_bucket.as_str()).await.is_err());
    let info = format!("$JS.API.STREAM.INFO.KV_{other_bucket}");
    publish_violation(&mut errors, &info).await;
    // The server logged those denials (so the empty check above was not
    // vacuous).
    let denied = logged_violations(&stack);
    assert!(
        denied.iter().any(|l| l.contains(&other_bucket)),
        "nats-server logs violations: {denied:?}"
    );
}
