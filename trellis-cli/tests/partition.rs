//! The same deployment as `deploy.rs`, each nats-server in its own network
//! namespace joined by veth pairs: mid-traffic the server leading the
//! JetStream meta group is cut off by setting its link down (silence, no
//! resets), then joined again. Every call succeeds within the retry
//! window, every upload is whole and indexed once, and the server rejoins.
//! Needs root for `ip netns`; where namespaces cannot be made, the case
//! says so and is skipped.

mod common;

use common::deployment::{Deployment, Stack, UPLOADS, retried};
use common::netns::Netns;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_cut_off_by_a_partition_is_ridden_through() {
    let Some(netns) = Netns::create().expect("network namespaces set up") else {
        return;
    };
    let mut d = Deployment::in_namespaces(netns);
    d.start_all();
    let stack = Stack::start(&d).await;
    let traffic = stack.traffic();

    stack.wait_indexed(UPLOADS / 3).await;
    let leader = d.meta_leader();
    let netns = d.netns().expect("namespaces");
    netns.cut(leader);
    eprintln!("cut off meta leader n{}", leader + 1);
    stack.finish(traffic).await;

    netns.heal(leader);
    d.wait_meta_whole(leader).await;
    let (status, _) = retried("status", || stack.authority.status()).await;
    assert_eq!(status.replicas, 3);
    stack.shutdown().await;
}
