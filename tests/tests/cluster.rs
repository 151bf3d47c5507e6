//! The profiles against a real three-node JetStream cluster: the cluster
//! profile provisions R3 streams (KV buckets, object stores and the
//! authority's own state) that keep serving reads, writes and bindings with
//! one node killed, and the local profile provisions R1 streams on the same
//! kind of cluster, so the replica count comes from the profile.
#![allow(missing_docs)]

mod common;

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::eventually;
use trellis::{ConnectOptions, PutOptions, StoreError};
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::AuthorityClient;
use trellis_runtime::protocol::{ContractStatus, Phase, StatusReply};
use trellis_testing::NatsCluster;

mod contract {
    #[trellis::contract(
        id = "ledger@v1",
        display_name = "Ledger",
        description = "Account balances and receipt scans"
    )]
    pub mod ledger {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Balance {
            pub account: String,
            pub cents: i64,
        }

        #[kv(purpose = "Balance by account", schema = Balance, history = 2)]
        pub struct Balances;

        #[store(purpose = "Receipt scans")]
        pub struct Receipts;
    }
}

use contract::ledger;

/// Bound on every wait that involves replication, elections or failover
/// (leader elections take a few seconds; the machine may be loaded).
const LIMIT: Duration = Duration::from_secs(30);

/// Each test runs its own cluster; running them one at a time keeps a
/// loaded machine from hosting six clustered servers at once.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn balance(account: &str, cents: i64) -> ledger::Balance {
    ledger::Balance {
        account: account.into(),
        cents,
    }
}

/// Retries `op` until it succeeds or `limit` passes; panics with the last
/// error. Logs each new kind of failure and the time to success (shown
/// when a test fails, or with `--nocapture`).
async fn retry<T, E, F, Fut>(limit: Duration, what: &str, mut op: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut last = None;
    let mut failures = 0;
    loop {
        match op().await {
            Ok(v) => {
                if failures > 0 {
                    eprintln!(
                        "{what}: succeeded after {failures} failures in {:?}",
                        started.elapsed()
                    );
                }
                return v;
            }
            Err(e) => {
                failures += 1;
                let e = e.to_string();
                if last.as_ref() != Some(&e) {
                    eprintln!("{what}: failing at {:?}: {e}", started.elapsed());
                }
                assert!(
                    started.elapsed() < limit,
                    "{what}: still failing after {limit:?}: {e}"
                );
                last = Some(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An authority client on a connection that knows every node. Short
/// request timeouts: while leaders are re-elected after a crash, the
/// authority can stall for seconds, and `retry` should try again soon.
async fn admin(cluster: &NatsCluster) -> AuthorityClient {
    AuthorityClient::new(cluster.client().await.expect("client"), "test")
        .with_timeout(Duration::from_secs(5))
}

/// The authority's status. Retried: on a cluster, a just-created replicated
/// stream or consumer can briefly answer `503 no responders` until its
/// interest has reached every node (logged by `retry`).
async fn status(admin: &AuthorityClient) -> StatusReply {
    retry(LIMIT, "authority status", || admin.status()).await
}

/// The content of object `key`, if present.
async fn object_bytes(store: &trellis::Store, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match store.get(key).await? {
        Some(object) => Ok(Some(object.bytes().await?.to_vec())),
        None => Ok(None),
    }
}

/// Waits until the ledger contract is ready at this build's digest.
async fn ledger_ready(admin: &AuthorityClient) -> ContractStatus {
    eventually(LIMIT, "the ledger contract to be ready", || async {
        admin
            .status()
            .await
            .ok()?
            .contracts
            .into_iter()
            .find(|c| c.id == "ledger@v1")?
            .status
            .filter(|s| s.phase == Phase::Ready && s.digest == ledger::DIGEST)
    })
    .await
}

/// The streams behind the contract's bindings and the authority's state.
fn provisioned_streams(state: &ContractStatus) -> Vec<String> {
    let mut streams = vec!["KV_trellis-authority-test".to_owned()];
    streams.extend(
        state
            .bindings
            .kv
            .values()
            .map(|b| format!("KV_{}", b.bucket)),
    );
    streams.extend(
        state
            .bindings
            .store
            .values()
            .map(|b| format!("OBJ_{}", b.bucket)),
    );
    assert_eq!(streams.len(), 3, "{streams:?}");
    streams
}

async fn stream_info(js: &jetstream::Context, name: &str) -> jetstream::stream::Info {
    retry(LIMIT, &format!("stream info of {name}"), || async {
        let mut stream = js.get_stream(name).await.map_err(|e| e.to_string())?;
        stream.info().await.cloned().map_err(|e| e.to_string())
    })
    .await
}

/// Waits until `name` has a leader and two replicas, all three on distinct
/// cluster nodes, with the replicas satisfying `replica_ok`; returns the
/// leader's node index.
async fn r3_placement(
    cluster: &NatsCluster,
    js: &jetstream::Context,
    name: &str,
    replica_ok: impl Fn(&jetstream::stream::PeerInfo) -> bool,
) -> usize {
    let started = Instant::now();
    loop {
        let info = stream_info(js, name).await;
        assert_eq!(info.config.num_replicas, 3, "{name}: {:?}", info.config);
        let placement = info.cluster.clone().unwrap_or_default();
        assert_eq!(placement.name.as_deref(), Some(cluster.name()), "{name}");
        let leader = placement
            .leader
            .as_deref()
            .and_then(|l| cluster.node_index(l));
        let mut nodes: Vec<usize> = placement
            .replicas
            .iter()
            .filter_map(|p| cluster.node_index(&p.name))
            .chain(leader)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        if let Some(leader) = leader
            && placement.replicas.len() == 2
            && nodes == [0, 1, 2]
            && placement.replicas.iter().all(&replica_ok)
        {
            return leader;
        }
        assert!(
            started.elapsed() < LIMIT,
            "{name}: no leader with two good replicas after {LIMIT:?}: {placement:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cluster_profile_provisions_r3_and_survives_losing_a_node() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = NatsCluster::start(3).await.expect("3-node cluster starts");
    let authority = Authority::start(
        cluster.client().await.expect("client"),
        AuthorityConfig::cluster("test").reconcile_interval(Duration::from_millis(200)),
    )
    .await
    .expect("authority starts");
    let admin = admin(&cluster).await;
    // A failed accept (the state read got no responders) writes nothing.
    let reply = retry(LIMIT, "accept", || {
        admin.accept(ledger::MANIFEST_JSON, false)
    })
    .await;
    assert_eq!(reply.plan.digest, ledger::DIGEST);
    let state = ledger_ready(&admin).await;
    let reported = status(&admin).await;
    assert_eq!(
        (reported.profile.as_str(), reported.replicas),
        ("cluster", 3)
    );

    // Every stream is R3: a leader and two replicas, one per node.
    let js = jetstream::new(cluster.client().await.expect("client"));
    let streams = provisioned_streams(&state);
    for name in &streams {
        r3_placement(&cluster, &js, name, |_| true).await;
    }

    // The node to lose leads the KV bucket, so losing it forces an
    // election; the service talks to another node.
    let kv_stream = format!("KV_{}", state.bindings.kv["balances"].bucket);
    let victim = r3_placement(&cluster, &js, &kv_stream, |_| true).await;
    let service_node = (victim + 1) % 3;
    eprintln!(
        "killing {} (KV leader); the service is on {}",
        cluster.server_name(victim),
        cluster.server_name(service_node)
    );
    let options = ConnectOptions::new(cluster.url(service_node))
        .deployment("test")
        .ready_deadline(LIMIT);
    let service = retry(LIMIT, "service connect", || {
        ledger::Service::connect(options.clone())
    })
    .await;
    let balances = &service.kv.balances;
    let acct1 = balance("acct-1", 100);
    retry(LIMIT, "kv put", || balances.put("acct-1", &acct1)).await;
    let got = retry(LIMIT, "kv get", || balances.get("acct-1")).await;
    assert_eq!(got.expect("written").value, acct1);
    let receipts = service.store.receipts.open().await.expect("open store");
    let scan: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    retry(LIMIT, "store put", || {
        receipts.put("2024/r-1.png", &scan[..], PutOptions::new())
    })
    .await;
    let got = retry(LIMIT, "store get", || {
        object_bytes(&receipts, "2024/r-1.png")
    })
    .await;
    assert_eq!(got.as_deref(), Some(&scan[..]));

    // Crash the KV leader's node.
    let pid = cluster.pid(victim).expect("victim runs");
    cluster.kill_node(victim).expect("kill");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "node {victim} (pid {pid}) is gone"
    );

    // Two of three replicas are a quorum: writes and reads go on once the
    // survivors have elected a new leader.
    let acct2 = balance("acct-2", 250);
    retry(LIMIT, "kv put with a node down", || {
        balances.put("acct-2", &acct2)
    })
    .await;
    let got = retry(LIMIT, "kv get with a node down", || balances.get("acct-2")).await;
    assert_eq!(got.expect("written").value, acct2);
    let got = retry(LIMIT, "kv get of old data", || balances.get("acct-1")).await;
    assert_eq!(got.expect("kept").value, acct1);
    let got = retry(LIMIT, "store get with a node down", || {
        object_bytes(&receipts, "2024/r-1.png")
    })
    .await;
    assert_eq!(got.as_deref(), Some(&scan[..]));
    retry(LIMIT, "store put with a node down", || {
        receipts.put("2024/r-2.png", &b"second scan"[..], PutOptions::new())
    })
    .await;
    // Reads are direct gets, which any replica answers: right after a
    // leader change a follower may not have applied the write yet, so the
    // new object shows up within the limit rather than at once.
    let got = eventually(LIMIT, "the new object to be readable", || async {
        object_bytes(&receipts, "2024/r-2.png").await.ok().flatten()
    })
    .await;
    assert_eq!(&got[..], &b"second scan"[..]);
    let js = jetstream::new(cluster.node_client(service_node).await.expect("client"));
    let new_leader = eventually(LIMIT, "a new KV leader", || async {
        let info = js
            .get_stream(&kv_stream)
            .await
            .ok()?
            .info()
            .await
            .ok()?
            .clone();
        info.cluster?
            .leader
            .and_then(|l| cluster.node_index(&l))
            .filter(|&l| l != victim)
    })
    .await;
    assert_ne!(new_leader, victim);

    // The authority (whose connection may have been on the lost node) still
    // serves its replicated state, and new instances still connect.
    let reported = status(&admin).await;
    let ledger_state = reported
        .contracts
        .iter()
        .find(|c| c.id == "ledger@v1")
        .and_then(|c| c.status.as_ref())
        .expect("ledger state reported");
    assert_eq!(ledger_state.phase, Phase::Ready);
    assert_eq!(ledger_state.digest, ledger::DIGEST);
    assert_eq!(ledger_state.bindings, state.bindings);
    let second = retry(LIMIT, "a service connecting with a node down", || {
        ledger::Service::connect(options.clone())
    })
    .await;
    let got = retry(LIMIT, "kv get from a new instance", || {
        second.kv.balances.get("acct-2")
    })
    .await;
    assert_eq!(got.expect("written").value, acct2);

    // The node comes back on its ports and store and catches up.
    cluster.start_node(victim).await.expect("node restarts");
    cluster
        .wait_healthy(LIMIT)
        .await
        .expect("all nodes healthy");
    for name in &streams {
        r3_placement(&cluster, &js, name, |p| p.current && !p.offline).await;
    }
    let got = retry(LIMIT, "kv get after the node is back", || {
        balances.get("acct-2")
    })
    .await;
    assert_eq!(got.expect("written").value, acct2);

    authority.shutdown().await;
}

#[tokio::test]
async fn local_profile_on_a_cluster_provisions_single_replica_streams() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = NatsCluster::start(3).await.expect("3-node cluster starts");
    let authority = Authority::start(
        cluster.client().await.expect("client"),
        AuthorityConfig::local("test").reconcile_interval(Duration::from_millis(200)),
    )
    .await
    .expect("authority starts");
    let admin = admin(&cluster).await;
    retry(LIMIT, "accept", || {
        admin.accept(ledger::MANIFEST_JSON, false)
    })
    .await;
    let state = ledger_ready(&admin).await;
    let reported = status(&admin).await;
    assert_eq!((reported.profile.as_str(), reported.replicas), ("local", 1));

    // Same cluster, other profile: every stream has a single replica.
    let js = jetstream::new(cluster.client().await.expect("client"));
    for name in provisioned_streams(&state) {
        let info = stream_info(&js, &name).await;
        assert_eq!(info.config.num_replicas, 1, "{name}: {:?}", info.config);
        let placement = info.cluster.clone().unwrap_or_default();
        assert!(placement.replicas.is_empty(), "{name}: {placement:?}");
        assert!(
            placement
                .leader
                .as_deref()
                .and_then(|l| cluster.node_index(l))
                .is_some(),
            "{name} lives on one of the nodes: {placement:?}"
        );
    }

    let options = ConnectOptions::new(cluster.url(0))
        .deployment("test")
        .ready_deadline(LIMIT);
    let service = retry(LIMIT, "service connect", || {
        ledger::Service::connect(options.clone())
    })
    .await;
    let acct1 = balance("acct-1", 5);
    retry(LIMIT, "kv put", || {
        service.kv.balances.put("acct-1", &acct1)
    })
    .await;
    let got = retry(LIMIT, "kv get", || service.kv.balances.get("acct-1")).await;
    assert_eq!(got.expect("written").value, acct1);

    authority.shutdown().await;
}
