//! A deployment as `docs/deploy.md` builds it, from `trellis authority init
//! --servers 3 --tls`: three nats-servers from the generated
//! configurations, two `trellis authority run` processes, the documents and
//! indexer services and a caller, each over TLS with its own credentials.
//! Mid-traffic one authority process and the server leading the JetStream
//! meta group are SIGKILLed (by their own PIDs); every call succeeds within
//! the retry window, every upload is whole and indexed once, and the
//! killed processes restart and rejoin.

mod common;

use std::time::Duration;

use common::deployment::{DEPLOYMENT, Deployment, Stack, UPLOADS, retried};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_cluster_with_two_authorities_rides_through_killed_processes() {
    let mut d = Deployment::on_loopback();
    d.start_all();
    let stack = Stack::start(&d).await;
    let traffic = stack.traffic();

    stack.wait_indexed(UPLOADS / 3).await;
    let leader = d.meta_leader();
    d.authorities[0].kill();
    d.servers[leader].kill();
    eprintln!("killed authority 0 and meta leader n{}", leader + 1);
    stack.finish(traffic).await;

    // The killed processes restart and rejoin: the meta group has all three
    // current peers again, and with authority 1 drained away, the
    // restarted authority 0 answers alone.
    d.start_server(leader);
    d.start_authority(0);
    d.wait_authority(0, Duration::from_secs(60));
    d.wait_meta_whole(leader).await;
    assert!(
        d.authorities[1].terminate(),
        "authority 1 drains and exits 0"
    );
    assert!(
        d.log("authority-1.log").contains("authority drained"),
        "{}",
        d.log("authority-1.log")
    );
    let (status, _) = retried("status", || stack.authority.status()).await;
    assert_eq!(status.deployment, DEPLOYMENT);
    assert_eq!(status.replicas, 3);
    // The operator's command line over TLS, configured as docs/deploy.md
    // shows.
    let (ok, text) = d.operator_cli(&["status"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("documents@v1") && text.contains("ready"),
        "{text}"
    );
    stack.shutdown().await;
}
