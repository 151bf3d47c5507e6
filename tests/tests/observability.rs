//! Observability with the tools operators already use, against real
//! processes on loopback: the NATS service API (`$SRV.PING|INFO|STATS`, what
//! `nats micro` reads) of a service and of the authority, asked over an
//! operator connection with auth on, and the HTTP `/healthz`, `/readyz` and
//! Prometheus `/metrics` of both.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use documents_example::documents;
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis::ServeOptions;
use trellis_runtime::observe::{
    CONTRACT_KEY, DEPLOYMENT_KEY, DIGEST_KEY, INFO_RESPONSE, InfoResponse, PING_RESPONSE,
    PingResponse, STATS_RESPONSE, StatsResponse,
};

/// How long one reply may take (each wait is bounded by it).
const WAIT: Duration = Duration::from_secs(10);

/// A raw HTTP/1.1 GET on loopback: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .expect("read");
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The value of the sample `series` (metric name and labels, exactly) in
/// a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

/// Sends a service API request on `subject` and collects the replies
/// until `want` arrived (or none came for [`WAIT`]).
async fn ask<T: DeserializeOwned>(nats: &async_nats::Client, subject: &str, want: usize) -> Vec<T> {
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(inbox.clone()).await.expect("subscribe");
    nats.publish_with_reply(subject.to_owned(), inbox, Bytes::new())
        .await
        .expect("publish");
    let mut out = Vec::new();
    while out.len() < want {
        match tokio::time::timeout(WAIT, replies.next()).await {
            Ok(Some(message)) => out.push(
                serde_json::from_slice(&message.payload)
                    .unwrap_or_else(|e| panic!("{subject} reply does not decode: {e}")),
            ),
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn a_service_answers_the_service_api_and_serves_its_metrics() {
    let options = ServeOptions::default().metrics("127.0.0.1:0".parse().expect("addr"));
    let docs = documents_stack(Duration::ZERO, options).await;
    let addr = docs.server.metrics_addr().expect("metrics are served");
    let operator = docs
        .stack
        .server
        .client()
        .await
        .expect("operator connection");

    // Traffic: three listings, one refused listing, an upload and its
    // download.
    let list = documents::ListRequest {
        prefix: String::new(),
        offset: 0,
        limit: 10,
    };
    for _ in 0..3 {
        let page = docs.client.rpc.files.list(&list).await.expect("call");
        assert!(page.is_ok(), "{page:?}");
    }
    let bob = documents::Client::connect(docs.stack.user("bob", &[]).await)
        .await
        .expect("bob");
    match bob.rpc.files.list(&list).await {
        Err(trellis::CallError::Forbidden { .. }) => {}
        other => panic!("bob must be forbidden, got {other:?}"),
    }
    let data = content(300 * 1024, 7);
    upload(&docs.client, "observed.bin", data.clone()).await;
    let granted = docs
        .client
        .rpc
        .files
        .download(&documents::FileKey {
            key: "observed.bin".into(),
        })
        .await
        .expect("call")
        .expect("grant");
    let back = docs
        .client
        .download(&granted.grant)
        .bytes()
        .await
        .expect("download");
    assert!(back == data);

    // PING: every service answers `$SRV.PING`; this one by name too.
    let all: Vec<PingResponse> = ask(&operator, "$SRV.PING", 3).await;
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    for name in ["documents", "trellis-authority", "trellis_state"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let pings: Vec<PingResponse> = ask(&operator, "$SRV.PING.documents", 1).await;
    let [ping] = pings.as_slice() else {
        panic!("one documents instance answers: {pings:?}")
    };
    assert_eq!(ping.kind, PING_RESPONSE);
    assert_eq!(ping.version, "1.0.0");
    assert_eq!(ping.id, docs.server.stats().instance().id);
    assert_eq!(ping.metadata[CONTRACT_KEY], documents::ID);
    assert_eq!(ping.metadata[DIGEST_KEY], documents::DIGEST);
    assert_eq!(ping.metadata[DEPLOYMENT_KEY], "test");

    // INFO, addressed to the instance: every RPC and operation with its
    // concrete subject and queue group.
    let infos: Vec<InfoResponse> =
        ask(&operator, &format!("$SRV.INFO.documents.{}", ping.id), 1).await;
    let info = infos.first().expect("info");
    assert_eq!(info.kind, INFO_RESPONSE);
    let mut names: Vec<&str> = info.endpoints.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "Files_Delete",
            "Files_Download",
            "Files_Head",
            "Files_List",
            "Files_Upload",
            "Files_Upload_control",
        ]
    );
    for endpoint in &info.endpoints {
        assert_eq!(endpoint.queue_group, "trellis.documents@v1");
        assert!(
            endpoint.subject.starts_with("trellis.test.*.documents@v1."),
            "{endpoint:?}"
        );
    }
    let listing = info
        .endpoints
        .iter()
        .find(|e| e.name == "Files_List")
        .expect("Files.List");
    assert_eq!(
        listing.subject,
        "trellis.test.*.documents@v1.rpc.v1.Files.List"
    );
    assert_eq!(listing.metadata["trellis.name"], "Files.List");
    assert_eq!(listing.metadata["trellis.kind"], "rpc");

    // STATS counts exactly the calls made.
    let stats: Vec<StatsResponse> = ask(&operator, "$SRV.STATS.documents", 1).await;
    let stats = stats.first().expect("stats");
    assert_eq!(stats.kind, STATS_RESPONSE);
    assert_eq!(stats.metadata[DIGEST_KEY], documents::DIGEST);
    let of = |name: &str| {
        stats
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} in stats"))
    };
    let listing = of("Files_List");
    assert_eq!(listing.num_requests, 4);
    assert_eq!(listing.num_errors, 1);
    assert!(
        listing.last_error.starts_with("forbidden: `bob`"),
        "{}",
        listing.last_error
    );
    assert!(listing.processing_time > 0);
    assert_eq!(listing.average_processing_time, listing.processing_time / 4);
    assert_eq!(of("Files_Upload").num_requests, 1);
    assert_eq!(of("Files_Upload").num_errors, 0);
    assert!(of("Files_Upload_control").num_requests >= 1);
    assert_eq!(of("Files_Download").num_requests, 1);
    assert_eq!(of("Files_Head").num_requests, 0);

    // The same counters over HTTP.
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    let (code, scrape) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let labels = |endpoint: &str, kind: &str| {
        format!(r#"{{service="documents",endpoint="{endpoint}",kind="{kind}"}}"#)
    };
    let rpc = labels("Files.List", "rpc");
    assert_eq!(
        sample(&scrape, &format!("trellis_requests_total{rpc}")),
        Some(4.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_request_errors_total{service="documents",endpoint="Files.List",kind="rpc",status="forbidden"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            &format!("trellis_request_duration_seconds_count{rpc}")
        ),
        Some(4.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            &format!(
                "trellis_requests_total{}",
                labels("Files.Upload", "operation")
            )
        ),
        Some(1.0),
        "{scrape}"
    );
    let bytes = data.len() as f64;
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_transfer_bytes_total{service="documents",direction="received"}"#
        ),
        Some(bytes),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_transfer_bytes_total{service="documents",direction="sent"}"#
        ),
        Some(bytes),
        "{scrape}"
    );
    assert!(
        scrape.contains(&format!(r#"digest="{}""#, documents::DIGEST)),
        "{scrape}"
    );

    // A shutdown stops the service API and the HTTP endpoints.
    assert!(docs.server.shutdown(Duration::from_secs(5)).await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // Once its unsubscriptions reach the server, nothing answers for it.
    // (Each try waits briefly: one sent before the server processed the
    // unsubscribes would otherwise wait out the whole request timeout.)
    eventually(WAIT, "documents to leave the service API", || async {
        let ping = async_nats::Request::new()
            .payload(Bytes::new())
            .timeout(Some(Duration::from_millis(500)));
        match operator.send_request("$SRV.PING.documents", ping).await {
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test]
async fn a_busy_metrics_address_fails_the_start_and_names_it() {
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let service = documents::Service::connect(docs.stack.service(documents::ID).await)
        .await
        .expect("service");
    let handlers = documents_example::DocumentsService::new(&service);
    match service
        .serve(handlers, ServeOptions::default().metrics(addr))
        .await
    {
        Err(e @ trellis::ServeError::Metrics { .. }) => {
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("the start must fail on {addr}: {other:?}"),
    }
}

#[tokio::test]
async fn the_authority_serves_health_readiness_metrics_and_its_service_api() {
    let mut stack = stack().await;
    let addr = stack
        .authority
        .as_mut()
        .expect("authority")
        .serve_http("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("http");
    assert_eq!(get(addr, "/healthz").await.0, 200);
    // Ready once its reconcile loop runs.
    eventually(WAIT, "the authority to be ready", || async {
        (get(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;

    // Traffic: an accept (reconciled to ready), a refused connect, and a
    // public state write.
    accept_ready(
        &stack,
        documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let anonymous = async_nats::connect(stack.server.url().as_str()).await;
    assert!(anonymous.is_err(), "no key, no connection");
    let state = trellis_runtime::state::StateClient::connect(stack.user("alice", &[]).await)
        .await
        .expect("state client");
    state
        .store::<String>("settings")
        .put("ui", &"dark".to_owned())
        .await
        .expect("put");

    let (code, scrape) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_requests_total{service="trellis-authority",endpoint="accept",kind="authority"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert!(
        sample(
            &scrape,
            r#"trellis_requests_total{service="trellis-authority",endpoint="register",kind="authority"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_requests_total{service="trellis_state",endpoint="State.Put",kind="rpc"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"trellis_authority_reconcile_phase{contract="documents@v1",phase="ready"}"#
        ),
        Some(1.0),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "trellis_authority_callout_denials_total").is_some_and(|n| n >= 1.0),
        "{scrape}"
    );
    // Every connect above went through the callout: alice's and the
    // refused one.
    assert!(
        sample(&scrape, "trellis_authority_callout_duration_seconds_count")
            .is_some_and(|n| n >= 2.0),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "trellis_authority_reconcile_passes_total").is_some_and(|n| n >= 1.0),
        "{scrape}"
    );

    // Its service API, over the operator connection.
    let operator = stack.server.client().await.expect("operator connection");
    let stats: Vec<StatsResponse> = ask(&operator, "$SRV.STATS.trellis-authority", 1).await;
    let stats = stats.first().expect("authority stats");
    assert_eq!(stats.metadata[DEPLOYMENT_KEY], "test");
    let accept = stats
        .endpoints
        .iter()
        .find(|e| e.name == "accept")
        .expect("accept endpoint");
    assert_eq!(accept.num_requests, 1);
    assert_eq!(accept.subject, "trellis.authority.test.accept");
    assert_eq!(accept.queue_group, "trellis-authority-test");
    let callout = stats
        .endpoints
        .iter()
        .find(|e| e.name == "callout")
        .expect("callout endpoint");
    assert!(callout.num_errors >= 1, "{callout:?}");
    assert!(callout.num_requests > callout.num_errors, "{callout:?}");

    // A drain stops the HTTP endpoints with the authority.
    let authority = stack.authority.take().expect("authority");
    assert!(authority.drain(Duration::from_secs(10)).await);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
