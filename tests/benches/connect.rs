//! What a user's connect costs as a deployment grows: one nats-server with
//! auth callout and an authority; copies of the documents contract
//! (`docs0@v1`, `docs1@v1`, ..., each store capped at 1 MiB) are accepted
//! until 1, 50 and 200 are ready. At each size, alice (a user holding no capability) connects
//! [`CONNECTS`] times through the callout; the p50 connect time and the
//! number of subjects she is issued (allowed and denied, to publish and to
//! subscribe) are reported, and, as the baseline of
//! the same run, a raw async-nats connect as the authority's own user
//! (no callout).
//!
//! Summary line (stderr), stable:
//! `connect scale  1: <ms> ms (<n> subjects)  50: ...  200: ...  200/1 <ratio>  raw <ms> ms`
//!
//! `cargo bench -p trellis-tests --bench connect`

use std::time::{Duration, Instant};

use documents_example::documents;
use trellis_authority::callout::AuthSettings;
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::AuthorityClient;
use trellis_runtime::identity::PrincipalKind;
use trellis_runtime::protocol::Phase;
use trellis_testing::{NatsServer, ServerAuth};

const DEPLOYMENT: &str = "scale";
/// Connects timed per size.
const CONNECTS: usize = 30;
/// Deployment sizes.
const SIZES: [usize; 3] = [1, 50, 200];

/// The documents manifest as contract `docs<i>@v1`.
fn copy(i: usize) -> String {
    let mut manifest: serde_json::Value =
        serde_json::from_str(documents::MANIFEST_JSON).expect("manifest");
    manifest["id"] = format!("docs{i}@v1").into();
    manifest["displayName"] = format!("Documents {i}").into();
    // 10 GiB each would exceed the server's JetStream storage after a few
    // copies; the size plays no part in a connect.
    manifest["resources"]["store"]["uploads"]["maxTotalBytes"] = (1024 * 1024).into();
    manifest.to_string()
}

async fn wait_ready(admin: &AuthorityClient, n: usize) {
    let started = Instant::now();
    loop {
        let status = admin.status().await.expect("status");
        let ready = status
            .contracts
            .iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.phase == Phase::Ready))
            .count();
        if ready >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {ready} of {n} contracts ready; one that is not: {:?}",
            status
                .contracts
                .iter()
                .find(|c| !c.status.as_ref().is_some_and(|s| s.phase == Phase::Ready))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn p50(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let keys = ServerAuth::generate().expect("keys");
        let settings = AuthSettings::new(&keys.issuer_seed, &keys.account).expect("settings");
        let server = NatsServer::start_with_auth(keys.clone())
            .await
            .expect("nats-server");
        let authority = Authority::start(
            server.client().await.expect("client"),
            AuthorityConfig::local(DEPLOYMENT).auth(settings),
        )
        .await
        .expect("authority");
        let admin = AuthorityClient::new(server.client().await.expect("client"), DEPLOYMENT);
        let alice = admin
            .enroll(PrincipalKind::User, "alice", None, None)
            .await
            .expect("enroll alice");

        let mut raw = Vec::new();
        for _ in 0..CONNECTS {
            let started = Instant::now();
            let client = keys
                .admin_options()
                .connect(server.url())
                .await
                .expect("raw connect");
            raw.push(started.elapsed());
            drop(client);
        }
        let raw = p50(raw);

        let mut rows = Vec::new();
        let mut accepted = 0;
        for size in SIZES {
            while accepted < size {
                admin.accept(&copy(accepted), false).await.expect("accept");
                accepted += 1;
            }
            wait_ready(&admin, size).await;
            let mut times = Vec::new();
            for _ in 0..CONNECTS {
                let started = Instant::now();
                let client = alice
                    .nats_options()
                    .connect(server.url())
                    .await
                    .expect("alice connects");
                times.push(started.elapsed());
                drop(client);
            }
            let subjects = admin
                .principals()
                .await
                .expect("principals")
                .principals
                .into_iter()
                .find(|p| p.record.id == "alice")
                .and_then(|p| p.permissions)
                .map_or(0, |p| {
                    p.publish.len()
                        + p.subscribe.len()
                        + p.publish_deny.len()
                        + p.subscribe_deny.len()
                });
            let time = p50(times);
            eprintln!(
                "  {size} contracts: connect p50 {} ms, {subjects} subjects",
                ms(time)
            );
            rows.push((size, time, subjects));
        }
        let first = rows[0].1.as_secs_f64();
        let last = rows[rows.len() - 1].1.as_secs_f64();
        let cells: Vec<String> = rows
            .iter()
            .map(|(size, time, subjects)| format!("{size}: {} ms ({subjects} subjects)", ms(*time)))
            .collect();
        eprintln!(
            "connect scale  {}  200/1 {:.2}  raw {} ms",
            cells.join("  "),
            last / first,
            ms(raw)
        );
        authority.shutdown().await;
    });
}
