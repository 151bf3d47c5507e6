//! Send transfers and receive grants against a real nats-server: sizes from
//! 0 bytes to 256 MiB verified end to end, limits, the raw chunk protocol
//! (gaps, resends, oversize chunks, digest mismatches), callers that
//! vanish, a nats-server restart mid-transfer, cancel during an upload,
//! and grants that are expired, reused, forged or someone else's.

mod common;
mod jobs;

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use common::*;
use documents_example::DocumentsService;
use documents_example::documents;
use futures::StreamExt as _;
use jobs::{JobHandlers, jobs as contract};
use trellis::{
    Body, ConnectOptions, OperationError, OperationStatus, Outcome, RpcServer, ServeOptions,
    StoreHandle, TransferError,
};

const MIB: usize = 1024 * 1024;

fn options(url: &str) -> ConnectOptions {
    ConnectOptions::new(url).deployment("test")
}

fn serve_options() -> ServeOptions {
    ServeOptions::default()
        .transfer_idle_timeout(Duration::from_secs(2))
        .operation_lease(Duration::from_secs(2))
        .staged_sweep(Duration::from_secs(1))
}

async fn download(client: &documents::Client, key: &str) -> Bytes {
    let response = client
        .rpc
        .files
        .download(&documents::FileKey { key: key.into() })
        .await
        .expect("call")
        .expect("grant");
    client
        .download(&response.grant)
        .bytes()
        .await
        .expect("download")
}

/// The content of the object stored under `key` (which must exist).
async fn stored(store: &StoreHandle, key: &str) -> Bytes {
    store
        .open()
        .await
        .expect("open")
        .get(key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("no object under `{key}`"))
        .bytes()
        .await
        .expect("bytes")
}

async fn absent(store: &StoreHandle, key: &str) -> bool {
    store
        .open()
        .await
        .expect("open")
        .info(key)
        .await
        .expect("info")
        .is_none()
}

#[tokio::test]
async fn uploads_of_every_size_verify_end_to_end() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    for (i, size) in [0, 1, 10 * MIB, 256 * MIB].into_iter().enumerate() {
        let data = content(size, i as u8);
        let key = format!("sizes/{size}.bin");
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = acked.clone();
        let op = docs
            .client
            .operation
            .files
            .upload
            .input(upload_input(&key))
            .transfer(data.clone())
            .on_progress(move |bytes, total| {
                assert_eq!(total, Some(size as u64));
                seen.fetch_max(bytes, std::sync::atomic::Ordering::SeqCst);
            })
            .start()
            .await
            .expect("upload");
        assert_eq!(
            acked.load(std::sync::atomic::Ordering::SeqCst),
            size as u64,
            "progress reaches the total"
        );
        let out = match op.wait().await.expect("wait") {
            Outcome::Completed(out) => out,
            other => panic!("{other:?}"),
        };
        assert_eq!(out.file.size, size as u64);
        assert_eq!(out.file.digest, digest(&data), "digest end to end");
        assert_eq!(
            out.file.metadata.get("origin").map(String::as_str),
            Some("test")
        );
        let transfer = op.get().await.expect("get").transfer.expect("transfer");
        assert!(transfer.complete && transfer.bytes == size as u64);
        let head = docs
            .client
            .rpc
            .files
            .head(&documents::FileKey { key: key.clone() })
            .await
            .expect("call")
            .expect("head");
        assert_eq!(head, out.file);
        let back = download(&docs.client, &key).await;
        assert!(back == data, "download of {size} bytes matches");
    }
    let page = docs
        .client
        .rpc
        .files
        .list(&documents::ListRequest {
            prefix: "sizes/".into(),
            offset: 1,
            limit: 2,
        })
        .await
        .expect("call")
        .expect("list");
    assert_eq!((page.count, page.entries.len()), (4, 2));
    assert_eq!(page.next_offset, Some(3));
    assert!(docs.server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn sixteen_concurrent_uploads_of_8_mib_all_verify() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let uploads = (0..16u8).map(|i| {
        let client = docs.client.clone();
        async move {
            let data = content(8 * MIB, i);
            let out = upload(&client, &format!("many/{i}"), data.clone()).await;
            assert_eq!(out.file.digest, digest(&data));
            assert!(download(&client, &format!("many/{i}")).await == data);
        }
    });
    futures::future::join_all(uploads).await;
}

#[tokio::test]
async fn limits_refuse_and_leave_nothing_stored() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    // Declared over the contract's max_bytes: refused before any byte.
    let body = Body::from_reader(tokio::io::empty()).with_size(2 << 30);
    match docs
        .client
        .operation
        .files
        .upload
        .input(upload_input("big"))
        .transfer(body)
        .start()
        .await
    {
        Err(OperationError::Refused { message, .. }) => {
            assert!(message.contains("too-large"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(absent(&docs.store, "big").await);
    // An invalid key is refused the same way.
    match docs
        .client
        .operation
        .files
        .upload
        .input(upload_input(".hidden"))
        .transfer(Bytes::from_static(b"x"))
        .start()
        .await
    {
        Err(OperationError::Refused { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Undeclared size: refused during the transfer once over the limit.
    let (server, store, client) = jobs_stack(&docs.stack).await;
    let chunks = futures::stream::iter((0..3).map(|i| Ok(content(MIB, i))));
    match client
        .operation
        .blobs
        .put
        .input(blob("streamed"))
        .transfer(Body::from_stream(chunks))
        .start()
        .await
    {
        Err(OperationError::Transfer {
            source: TransferError::TooLarge(_),
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(absent(&store, "streamed").await);
    eventually(Duration::from_secs(5), "staged chunks purged", || async {
        let status = store.open().await.ok()?.status().await.ok()?;
        (status.used_bytes == 0).then_some(())
    })
    .await;

    // The store's own limit (8 MiB): fill it to 7.5 MiB, then a 1 MiB
    // upload is refused up front when declared, and during the transfer
    // when not; the filler object is intact either way.
    let open = store.open().await.expect("open");
    open.put("filler", content(7 * MIB + MIB / 2, 8), Default::default())
        .await
        .expect("filler");
    match client
        .operation
        .blobs
        .put
        .input(blob("declared"))
        .transfer(content(MIB, 9))
        .start()
        .await
    {
        Err(OperationError::Refused { message, .. }) => {
            assert!(message.contains("store-full"), "{message}")
        }
        other => panic!("expected a store-full refusal, got {other:?}"),
    }
    let chunks = futures::stream::iter((0..4).map(|i| Ok(content(MIB / 4, i))));
    match client
        .operation
        .blobs
        .put
        .input(blob("undeclared"))
        .transfer(Body::from_stream(chunks))
        .start()
        .await
    {
        Err(OperationError::Transfer {
            source: TransferError::StoreFull(_),
            ..
        }) => {}
        other => panic!("expected StoreFull during the transfer, got {other:?}"),
    }
    assert!(absent(&store, "declared").await && absent(&store, "undeclared").await);
    let filler = open.info("filler").await.expect("info").expect("filler");
    assert_eq!(filler.size, (7 * MIB + MIB / 2) as u64);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

fn blob(key: &str) -> contract::BlobInput {
    contract::BlobInput {
        key: key.into(),
        hold_ms: 0,
    }
}

async fn jobs_stack(stack: &Stack) -> (RpcServer, StoreHandle, contract::Client) {
    accept_ready(
        stack,
        contract::MANIFEST_JSON,
        contract::ID,
        contract::DIGEST,
    )
    .await;
    let service = contract::Service::connect(stack.service(contract::ID).await)
        .await
        .expect("service");
    let store = service.store.blobs.clone();
    let server = service
        .serve(JobHandlers::new(store.clone(), "a"), serve_options())
        .await
        .expect("serve");
    let client = contract::Client::connect(stack.user("alice", &["jobs::run"]).await)
        .await
        .expect("client");
    (server, store, client)
}

/// Speaks the chunk protocol by hand.
struct RawSender {
    nats: async_nats::Client,
    subject: String,
    acks: async_nats::Subscriber,
    inbox: String,
    id: String,
    chunk_size: usize,
    /// The store subject of a direct upload (the start reply's
    /// `Trellis-Upload`).
    upload: Option<String>,
}

const PUT: &str = "operations.v1.Blobs.Put";

impl RawSender {
    async fn start(stack: &Stack, key: &str) -> RawSender {
        let (nats, caller) = stack.raw_user("alice", &["jobs::run"]).await;
        // Below alice's key: nats-server lets only her connections publish
        // there, which is what proves the caller (and, below it, who may
        // send the transfer's chunks).
        let start = caller.subject(contract::ID, PUT);
        let mut headers = HeaderMap::new();
        // The asserted caller, read only without auth.
        headers.insert("Trellis-Principal", "alice");
        let payload = Bytes::from(serde_json::to_vec(&blob(key)).expect("json"));
        let reply = nats
            .request_with_headers(start.clone(), headers, payload)
            .await
            .expect("start reply");
        assert!(
            reply
                .headers
                .as_ref()
                .and_then(|h| h.get("Trellis-Status"))
                .is_none(),
            "started: {}",
            String::from_utf8_lossy(&reply.payload)
        );
        let snapshot: serde_json::Value = serde_json::from_slice(&reply.payload).expect("json");
        let id = snapshot["id"].as_str().expect("id").to_owned();
        let chunk_size = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Trellis-Chunk-Size"))
            .and_then(|v| v.as_str().parse().ok())
            .expect("chunk size");
        let upload = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Trellis-Upload"))
            .map(|v| v.as_str().to_owned());
        let inbox = nats.new_inbox();
        let acks = nats.subscribe(inbox.clone()).await.expect("subscribe");
        RawSender {
            upload,
            subject: format!("{start}.transfer.{id}"),
            nats,
            acks,
            inbox,
            id,
            chunk_size,
        }
    }

    async fn send(&mut self, seq: u64, payload: Bytes, end: Option<(u64, &str)>) {
        let mut headers = HeaderMap::new();
        headers.insert("Trellis-Seq", seq.to_string());
        if let Some((total, digest)) = end {
            headers.insert("Trellis-End", total.to_string());
            headers.insert("Trellis-Digest", digest);
        }
        self.nats
            .publish_with_reply_and_headers(
                self.subject.clone(),
                self.inbox.clone(),
                headers,
                payload,
            )
            .await
            .expect("publish");
    }

    /// Announces a direct upload (its verdicts go to our inbox).
    async fn begin(&self) {
        let mut headers = HeaderMap::new();
        headers.insert("Trellis-Begin", "1");
        self.nats
            .publish_with_reply_and_headers(
                self.subject.clone(),
                self.inbox.clone(),
                headers,
                Bytes::new(),
            )
            .await
            .expect("publish");
    }

    /// Publishes chunk `seq` of a direct upload into the store; the
    /// store's acknowledgement (`Err` if refused or never given).
    async fn publish_direct(&self, seq: u64, payload: Bytes) -> Result<(), String> {
        let upload = self.upload.clone().expect("a direct upload subject");
        direct_publish(&self.nats, &upload, &format!("{}.{seq}", self.id), payload).await
    }

    /// Publishes chunk `seq` under attempt `attempt` (as the runtime does
    /// after a resume: the message id differs from the first attempt's).
    async fn publish_attempt(&self, attempt: u32, seq: u64, payload: Bytes) -> Result<(), String> {
        let upload = self.upload.clone().expect("a direct upload subject");
        let id = format!("{}.{attempt}.{seq}", self.id);
        direct_publish(&self.nats, &upload, &id, payload).await
    }

    /// Asks where a direct upload resumes: the first chunk not stored.
    async fn resume(&self) -> u64 {
        let mut headers = HeaderMap::new();
        headers.insert("Trellis-Resume", "1");
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            self.nats
                .request_with_headers(self.subject.clone(), headers, Bytes::new()),
        )
        .await
        .expect("a resume answer in time")
        .expect("resume answer");
        answer
            .headers
            .as_ref()
            .and_then(|h| h.get("Trellis-Ack"))
            .and_then(|v| v.as_str().parse().ok())
            .expect("the answer names the next chunk")
    }

    /// Ends a direct upload of `chunks` chunks.
    async fn end_direct(&self, total: u64, chunks: u64, digest: &str) {
        let mut headers = HeaderMap::new();
        headers.insert("Trellis-End", total.to_string());
        headers.insert("Trellis-Chunks", chunks.to_string());
        headers.insert("Trellis-Digest", digest);
        self.nats
            .publish_with_reply_and_headers(
                self.subject.clone(),
                self.inbox.clone(),
                headers,
                Bytes::new(),
            )
            .await
            .expect("publish");
    }

    /// The next reply: (status, ack).
    async fn reply(&mut self) -> (String, u64) {
        let m = tokio::time::timeout(Duration::from_secs(10), self.acks.next())
            .await
            .expect("a reply in time")
            .expect("reply");
        let header = |name: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        (
            header("Trellis-Status").unwrap_or_else(|| "ok".into()),
            header("Trellis-Ack")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX),
        )
    }
}

/// A JetStream publish of one chunk to `subject`, with its message id;
/// `Err` if the store refused it or no acknowledgement came within 3 s.
async fn direct_publish(
    nats: &async_nats::Client,
    subject: &str,
    id: &str,
    payload: Bytes,
) -> Result<(), String> {
    direct_publish_within(nats, subject, id, payload, Duration::from_secs(3)).await
}

/// [`direct_publish`], waiting at most `wait` for the acknowledgement.
async fn direct_publish_within(
    nats: &async_nats::Client,
    subject: &str,
    id: &str,
    payload: Bytes,
    wait: Duration,
) -> Result<(), String> {
    use std::future::IntoFuture as _;
    let js = async_nats::jetstream::new(nats.clone());
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    let ack = js
        .publish_with_headers(subject.to_owned(), headers, payload)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(wait, ack.into_future()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no acknowledgement".into()),
    }
}

async fn outcome(client: &contract::Client, id: &str) -> Outcome<contract::BlobOutput> {
    client
        .operation
        .blobs
        .put
        .attach(id)
        .wait()
        .await
        .expect("wait")
}

#[tokio::test]
async fn raw_chunk_protocol_gaps_resends_oversize_and_digest() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;

    // A gap is refused with the expected chunk; a chunk resent after a lost
    // ack is acknowledged again; the transfer then completes verified.
    let a = content(1000, 1);
    let b = content(700, 2);
    let mut raw = RawSender::start(&stack, "resent").await;
    raw.send(1, b.clone(), None).await;
    assert_eq!(raw.reply().await, ("out-of-order".into(), 0));
    raw.send(0, a.clone(), None).await;
    assert_eq!(raw.reply().await, ("ok".into(), 1));
    raw.send(0, a.clone(), None).await; // as if the ack was lost
    assert_eq!(raw.reply().await, ("ok".into(), 1));
    raw.send(1, b.clone(), None).await;
    assert_eq!(raw.reply().await, ("ok".into(), 2));
    let whole = [a.as_ref(), b.as_ref()].concat();
    raw.send(2, Bytes::new(), Some((1700, &digest(&whole))))
        .await;
    assert_eq!(raw.reply().await, ("ok".into(), 3));
    match outcome(&client, &raw.id).await {
        Outcome::Completed(out) => assert_eq!(out.digest, digest(&whole)),
        other => panic!("{other:?}"),
    }
    assert!(stored(&store, "resent").await == whole);

    // An oversize chunk ends the transfer with a typed refusal.
    let mut raw = RawSender::start(&stack, "oversize").await;
    let size = raw.chunk_size + 1;
    raw.send(0, content(size, 3), None).await;
    assert_eq!(raw.reply().await.0, "chunk-too-large");
    assert!(matches!(
        outcome(&client, &raw.id).await,
        Outcome::Failed(_)
    ));
    assert!(absent(&store, "oversize").await);

    // A digest mismatch is refused and nothing is stored: the object the
    // upload would have replaced is intact.
    let mut raw = RawSender::start(&stack, "resent").await;
    raw.send(0, a.clone(), None).await;
    assert_eq!(raw.reply().await, ("ok".into(), 1));
    raw.send(1, Bytes::new(), Some((1000, &digest(b"something else"))))
        .await;
    assert_eq!(raw.reply().await.0, "digest-mismatch");
    assert!(matches!(
        outcome(&client, &raw.id).await,
        Outcome::Failed(_)
    ));
    assert!(stored(&store, "resent").await == whole);
    eventually(Duration::from_secs(5), "failed uploads purged", || async {
        let status = store.open().await.ok()?.status().await.ok()?;
        (status.objects == 1).then_some(())
    })
    .await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_vanished_caller_leaves_no_object() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;
    let mut raw = RawSender::start(&stack, "vanished").await;
    raw.send(0, content(4096, 1), None).await;
    assert_eq!(raw.reply().await, ("ok".into(), 1));
    let id = raw.id.clone();
    // The caller's connection goes away mid-transfer.
    drop(raw);
    match outcome(&client, &id).await {
        Outcome::Failed(message) => assert!(message.contains("no progress"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(absent(&store, "vanished").await);
    eventually(Duration::from_secs(5), "staged chunks purged", || async {
        let status = store.open().await.ok()?.status().await.ok()?;
        (status.used_bytes == 0).then_some(())
    })
    .await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn cancel_stops_the_transfer_or_the_handler() {
    let docs = documents_stack(Duration::from_secs(60), serve_options()).await;
    let other = documents::Client::connect(docs.stack.user("alice", DOCS_RW).await)
        .await
        .expect("client");

    // During the transfer: a slow body, cancelled from another connection.
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let slow = futures::stream::iter(0..200u8).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(content(256 * 1024, i))
    });
    let canceller = tokio::spawn(async move {
        let id = rx.await.expect("id");
        tokio::time::sleep(Duration::from_millis(200)).await;
        other
            .operation
            .files
            .upload
            .attach(id.clone())
            .cancel()
            .await
            .expect("cancel");
        id
    });
    let result = docs
        .client
        .operation
        .files
        .upload
        .input(upload_input("cancelled"))
        .transfer(Body::from_stream(slow))
        .on_started(move |id| {
            let _ = tx.send(id.to_owned());
        })
        .start()
        .await;
    match result {
        Err(OperationError::Transfer {
            source: TransferError::Cancelled,
            ..
        }) => {}
        other => panic!("expected a cancelled transfer, got {other:?}"),
    }
    let id = canceller.await.expect("join");
    let op = docs.client.operation.files.upload.attach(id);
    assert_eq!(op.wait().await.expect("wait"), Outcome::Cancelled);
    assert!(absent(&docs.store, "cancelled").await);

    // During the handler: the bytes are stored, the handler is told.
    let op = docs
        .client
        .operation
        .files
        .upload
        .input(upload_input("processing"))
        .transfer(content(1000, 9))
        .start()
        .await
        .expect("upload");
    eventually(Duration::from_secs(5), "the handler to run", || async {
        let s = op.get().await.ok()?;
        (s.status == OperationStatus::Running && s.progress.is_some()).then_some(())
    })
    .await;
    let started = Instant::now();
    op.cancel().await.expect("cancel");
    assert_eq!(op.wait().await.expect("wait"), Outcome::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not the 60 s processing"
    );
}

#[tokio::test]
async fn a_nats_restart_mid_transfer_ends_verified_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = trellis_testing::free_port().expect("port");
    let mut server = trellis_testing::NatsServer::start_persistent(dir.path(), port)
        .await
        .expect("server");
    let authority =
        trellis_authority::Authority::start(server.client().await.expect("client"), config())
            .await
            .expect("authority");
    let admin =
        trellis_runtime::AuthorityClient::new(server.client().await.expect("client"), "test");
    admin
        .accept(documents::MANIFEST_JSON, false)
        .await
        .expect("accept");
    ready(&admin, documents::ID, documents::DIGEST).await;
    let url = server.url();
    let service = documents::Service::connect(options(&url))
        .await
        .expect("service");
    let store = service.store.uploads.clone();
    let _serving = service
        .serve(DocumentsService::new(&service), serve_options())
        .await
        .expect("serve");
    let client = documents::Client::connect(options(&url).principal("alice"))
        .await
        .expect("client");

    let data = content(64 * MIB, 7);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let upload = {
        let (client, data) = (client.clone(), data.clone());
        tokio::spawn(async move {
            client
                .operation
                .files
                .upload
                .input(upload_input("restart"))
                .transfer(data)
                .on_progress(move |bytes, _| {
                    let _ = tx.send(bytes);
                })
                .idle_timeout(Duration::from_secs(5))
                .start()
                .await
        })
    };
    while let Some(bytes) = rx.recv().await {
        if bytes >= 4 * MIB as u64 {
            break;
        }
    }
    server.restart().await.expect("restart");
    let result = upload.await.expect("join");
    // Once the server is back, the key holds either the verified object or
    // nothing.
    let check = eventually(
        Duration::from_secs(30),
        "the store after restart",
        || async { store.open().await.ok()?.info("restart").await.ok() },
    )
    .await;
    match (result, check) {
        (Ok(op), Some(info)) => {
            assert!(matches!(op.wait().await, Ok(Outcome::Completed(_))));
            assert_eq!(info.digest, digest(&data));
        }
        (Err(e), None) => eprintln!("typed error after the restart: {e}"),
        (Err(e), Some(info)) => panic!("error {e} but an object is stored: {info:?}"),
        (Ok(_), None) => panic!("the upload succeeded but nothing is stored"),
    }
    drop(authority);
}

#[tokio::test]
async fn grants_are_bounded_single_use_and_bound_to_their_caller() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let data = content(300_000, 4);
    upload(&docs.client, "granted", data.clone()).await;
    let grant = docs
        .client
        .rpc
        .files
        .download(&documents::FileKey {
            key: "granted".into(),
        })
        .await
        .expect("call")
        .expect("grant")
        .grant;
    assert_eq!(grant.size, 300_000);

    // Someone else cannot use it (and trying does not consume it).
    let bob = documents::Client::connect(docs.stack.user("bob", &[]).await)
        .await
        .expect("bob");
    assert!(matches!(
        bob.download(&grant).bytes().await,
        Err(TransferError::GrantForbidden)
    ));
    // A forged id is refused.
    let mut forged = grant.clone();
    forged.id = "AAAAAAAAAAAAAAAAAAAAAA".into();
    assert!(matches!(
        docs.client.download(&forged).bytes().await,
        Err(TransferError::GrantInvalid)
    ));
    // The owner downloads it once, to a file, verified.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("granted.bin");
    let size = docs
        .client
        .download(&grant)
        .to_file(&path)
        .await
        .expect("download");
    assert_eq!(size, 300_000);
    assert!(std::fs::read(&path).expect("read") == data.as_ref());
    // Not twice.
    assert!(matches!(
        docs.client.download(&grant).bytes().await,
        Err(TransferError::GrantUsed)
    ));

    // Expired grants are refused.
    let (server, store, client) = jobs_stack(&docs.stack).await;
    store
        .open()
        .await
        .expect("open")
        .put("b", Bytes::from_static(b"blob"), Default::default())
        .await
        .expect("put");
    let grant = client
        .rpc
        .blobs
        .fetch(&contract::FetchInput {
            key: "b".into(),
            ttl_ms: 1,
        })
        .await
        .expect("call")
        .expect("grant")
        .grant;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        client.download(&grant).bytes().await,
        Err(TransferError::GrantExpired)
    ));
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn two_thousand_downloads_from_one_store() {
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let data = content(4096, 5);
    upload(&docs.client, "popular", data.clone()).await;
    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..2000)
        .map(|_| {
            let client = docs.client.clone();
            let data = data.clone();
            async move { download(&client, "popular").await == data }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 2000);
    eprintln!("2000 downloads took {:?}", started.elapsed());
}

#[tokio::test]
async fn killing_the_caller_process_mid_transfer_leaves_no_object() {
    use std::io::BufRead as _;
    let docs = documents_stack(Duration::ZERO, serve_options()).await;
    let _ = docs.stack.user("slow-uploader", DOCS_RW).await;
    let creds_dir = tempfile::tempdir().expect("temp dir");
    let creds = creds_dir.path().join("uploader.creds.json");
    docs.stack
        .user_credentials("slow-uploader")
        .await
        .save(&creds)
        .expect("save credentials");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slow-upload"))
        .args([&docs.stack.server.url(), "killed.bin", "64", "50"])
        .env("TRELLIS_CREDENTIALS", &creds)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("caller process starts");
    let stdout = child.stdout.take().expect("stdout");
    let id = tokio::task::spawn_blocking(move || {
        let line = std::io::BufReader::new(stdout)
            .lines()
            .next()
            .expect("a line")
            .expect("utf-8");
        line.strip_prefix("started ")
            .expect("`started <id>`")
            .to_owned()
    })
    .await
    .expect("join");
    // Another connection of the same principal watches it.
    let watcher = documents::Client::connect(docs.stack.user("slow-uploader", DOCS_RW).await)
        .await
        .expect("watcher");
    let op = watcher.operation.files.upload.attach(id);
    eventually(Duration::from_secs(10), "bytes to arrive", || async {
        let s = op.get().await.ok()?;
        (s.transfer?.bytes >= 2 * MIB as u64).then_some(())
    })
    .await;
    // Kill the caller process by its PID (SIGKILL: no goodbye).
    let pid = child.id();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = child.wait();
    match op.wait().await.expect("wait") {
        Outcome::Failed(message) => assert!(message.contains("no progress"), "{message}"),
        other => panic!("expected the transfer to fail, got {other:?}"),
    }
    assert!(absent(&docs.store, "killed.bin").await);
    eventually(Duration::from_secs(5), "staged chunks purged", || async {
        let status = docs.store.open().await.ok()?.status().await.ok()?;
        (status.used_bytes == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn direct_uploads_are_the_callers_alone() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;
    let raw = RawSender::start(&stack, "mine").await;
    raw.begin().await;
    let upload = raw.upload.clone().expect("the start names a direct upload");
    let bucket = upload.split('.').nth(1).expect("bucket token").to_owned();
    // With auth on, the chunk subject is below alice's key.
    if raw_key(&upload) != "_" {
        // Another caller can neither write into alice's transfer nor read
        // the store it goes to.
        let (bob, _) = stack.raw_user("bob", &["jobs::run"]).await;
        // (The transfer's idle timeout is 2 s: a refused publish is
        // recognised after 500 ms without an acknowledgement.)
        let written = direct_publish_within(
            &bob,
            &upload,
            "bob.0",
            content(1000, 5),
            Duration::from_millis(500),
        )
        .await;
        assert!(written.is_err(), "bob wrote into alice's transfer");
        raw.publish_direct(0, content(900, 4))
            .await
            .expect("alice's chunk");
        // Only alice's chunk was stored.
        let status = store
            .open()
            .await
            .expect("open")
            .status()
            .await
            .expect("status");
        assert!(
            status.used_bytes > 900 && status.used_bytes < 2000,
            "{status:?}"
        );
        let read = tokio::time::timeout(
            Duration::from_secs(3),
            bob.request(
                format!("$JS.API.DIRECT.GET.OBJ_{bucket}"),
                Bytes::from(serde_json::json!({ "last_by_subj": upload }).to_string()),
            ),
        )
        .await;
        assert!(
            !matches!(read, Ok(Ok(ref m)) if !m.payload.is_empty()),
            "bob read alice's transfer: {read:?}"
        );
    }
    drop(raw);

    // Alice's own direct upload verifies and commits; a chunk resent after
    // a lost ack is stored once (its message id).
    let mut raw = RawSender::start(&stack, "mine").await;
    raw.begin().await;
    let a = content(1000, 1);
    let b = content(700, 2);
    raw.publish_direct(0, a.clone()).await.expect("chunk 0");
    raw.publish_direct(1, b.clone()).await.expect("chunk 1");
    raw.publish_direct(1, b.clone())
        .await
        .expect("chunk 1 again");
    let whole = [a.as_ref(), b.as_ref()].concat();
    raw.end_direct(1700, 2, &digest(&whole)).await;
    assert_eq!(raw.reply().await.0, "ok");
    match outcome(&client, &raw.id).await {
        Outcome::Completed(out) => assert_eq!(out.digest, digest(&whole)),
        other => panic!("{other:?}"),
    }
    assert!(stored(&store, "mine").await == whole);

    // A direct upload whose stored content does not match the announced
    // digest is refused and leaves the previous object.
    let mut raw = RawSender::start(&stack, "mine").await;
    raw.begin().await;
    raw.publish_direct(0, a.clone()).await.expect("chunk");
    raw.end_direct(1000, 1, &digest(b"something else")).await;
    assert_eq!(raw.reply().await.0, "digest-mismatch");
    assert!(matches!(
        outcome(&client, &raw.id).await,
        Outcome::Failed(_)
    ));
    assert!(stored(&store, "mine").await == whole);
    // Once the object is deleted, nothing is left: the refused and the
    // abandoned transfers' chunks were purged.
    assert!(
        store
            .open()
            .await
            .expect("open")
            .delete("mine")
            .await
            .expect("delete")
    );
    eventually(
        Duration::from_secs(8),
        "refused and abandoned chunks purged",
        || async {
            let status = store.open().await.ok()?.status().await.ok()?;
            (status.objects == 0 && status.used_bytes == 0).then_some(())
        },
    )
    .await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// The provider keeps a staged subject to exactly the object's chunks in
/// order: a chunk stored ahead of a lost one and a chunk stored twice are
/// deleted, a resume request names the first chunk not stored, and the
/// object committed after the resend reads back whole.
#[tokio::test]
async fn a_direct_upload_resumes_where_the_store_stopped() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;
    let mut raw = RawSender::start(&stack, "resumed").await;
    raw.begin().await;
    let parts: Vec<Bytes> = (0..4).map(|i| content(1000 + i * 10, i as u8)).collect();
    // Chunks 0 and 1 arrive, 2 is lost, 3 is stored ahead of it, and 1 is
    // stored a second time (a resend the server did not deduplicate).
    raw.publish_attempt(0, 0, parts[0].clone())
        .await
        .expect("0");
    raw.publish_attempt(0, 1, parts[1].clone())
        .await
        .expect("1");
    raw.publish_attempt(0, 3, parts[3].clone())
        .await
        .expect("3");
    raw.publish_attempt(1, 1, parts[1].clone())
        .await
        .expect("1 again");
    assert_eq!(raw.resume().await, 2, "resumes at the lost chunk");
    // The resend, under a new attempt.
    raw.publish_attempt(1, 2, parts[2].clone())
        .await
        .expect("2");
    raw.publish_attempt(1, 3, parts[3].clone())
        .await
        .expect("3 again");
    assert_eq!(raw.resume().await, 4, "everything is stored now");
    let whole = parts.concat();
    raw.end_direct(whole.len() as u64, 4, &digest(&whole)).await;
    assert_eq!(raw.reply().await.0, "ok");
    match outcome(&client, &raw.id).await {
        Outcome::Completed(out) => assert_eq!(out.digest, digest(&whole)),
        other => panic!("{other:?}"),
    }
    assert!(stored(&store, "resumed").await == whole);
    // Only the object's own chunks (and its record) remain stored.
    let status = store
        .open()
        .await
        .expect("open")
        .status()
        .await
        .expect("status");
    let payload = whole.len() as u64;
    assert!(
        status.used_bytes > payload && status.used_bytes < payload + 2000,
        "misplaced chunks were deleted: {status:?}"
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// A caller may publish below its staged prefix outside any transfer (its
/// permission names the prefix): no transfer or object refers to those
/// chunks, so the provider's sweep purges them once idle for twice the
/// transfer idle timeout (4 s here, sweeping every second), while a
/// committed object's chunks and a transfer in progress are kept.
#[tokio::test]
async fn chunks_published_outside_any_transfer_are_purged() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;
    // A committed object, uploaded directly (its chunks stay below
    // alice's staged prefix).
    let kept = content(3000, 9);
    let op = client
        .operation
        .blobs
        .put
        .input(blob("kept"))
        .transfer(kept.clone())
        .start()
        .await
        .expect("upload");
    assert!(matches!(
        op.wait().await.expect("wait"),
        Outcome::Completed(_)
    ));
    let raw = RawSender::start(&stack, "stray").await;
    let upload = raw.upload.clone().expect("a direct upload subject");
    let stray = format!("{}.stray", upload.rsplit_once('.').expect("tokens").0);
    direct_publish(&raw.nats, &stray, "stray.0", content(5000, 3))
        .await
        .expect("a stray chunk is stored");
    let published = Instant::now();
    eventually(
        Duration::from_secs(12),
        "the stray chunk purged",
        || async {
            let store = store.open().await.ok()?;
            let status = store.status().await.ok()?;
            (status.used_bytes < 5000).then_some(())
        },
    )
    .await;
    assert!(
        published.elapsed() >= Duration::from_secs(4),
        "purged before its grace"
    );
    assert!(stored(&store, "kept").await == kept);
    drop(raw);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// A 256 MiB upload whose connection nats-server drops at about half way
/// resumes from the last chunk the store acknowledged: one verified
/// object, and at most one window of chunks published twice.
#[tokio::test]
async fn a_dropped_connection_resumes_an_upload_and_resends_at_most_a_window() {
    let options = ServeOptions::default();
    let window_bytes = (options.transfer_window * options.transfer_chunk_size) as u64;
    let docs = documents_stack(Duration::ZERO, options).await;
    let auth = docs.stack.server.auth().expect("an auth stack");
    let admin = auth
        .admin_options()
        .connect(docs.stack.server.url())
        .await
        .expect("admin connection");
    let system = auth
        .system_options()
        .connect(docs.stack.server.url())
        .await
        .expect("system connection");
    // Every byte published to any staged chunk subject.
    let mut staged = admin.subscribe("$O.*.C.>").await.expect("subscribe");
    admin.flush().await.expect("flush");
    let (finished, mut done) = tokio::sync::oneshot::channel::<()>();
    let published = tokio::spawn(async move {
        let mut total = 0u64;
        loop {
            tokio::select! {
                message = staged.next() => match message {
                    Some(message) => total += message.payload.len() as u64,
                    None => break,
                },
                _ = &mut done => break,
            }
        }
        // What is still on its way to this subscriber.
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), staged.next()).await
        {
            total += message.payload.len() as u64;
        }
        total
    });
    let size = 256 * MIB;
    let data = content(size, 7);
    let caller = docs.client.nats().clone();
    let (half, mut halfway) = tokio::sync::oneshot::channel::<()>();
    let mut half = Some(half);
    let kick = tokio::spawn(async move {
        if (&mut halfway).await.is_err() {
            return false;
        }
        let info = caller.server_info();
        let body = serde_json::json!({ "cid": info.client_id }).to_string();
        let answer = system
            .request(
                format!("$SYS.REQ.SERVER.{}.KICK", info.server_id),
                body.into(),
            )
            .await
            .expect("kick answered");
        !String::from_utf8_lossy(&answer.payload).contains("error")
    });
    let op = docs
        .client
        .operation
        .files
        .upload
        .input(upload_input("dropped"))
        .transfer(data.clone())
        .on_progress(move |acked, _| {
            if acked >= (size / 2) as u64
                && let Some(half) = half.take()
            {
                let _ = half.send(());
            }
        })
        .start()
        .await
        .expect("the upload survives the dropped connection");
    assert!(
        kick.await.expect("kick task"),
        "the server dropped the caller"
    );
    let connects = docs
        .client
        .nats()
        .statistics()
        .connects
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(connects, 2, "the caller's connection was dropped once");
    match op.wait().await.expect("wait") {
        Outcome::Completed(out) => assert_eq!(out.file.digest, digest(&data)),
        other => panic!("{other:?}"),
    }
    assert!(stored(&docs.store, "dropped").await == data);
    admin.flush().await.expect("flush");
    let _ = finished.send(());
    let resent = published
        .await
        .expect("counter")
        .saturating_sub(size as u64);
    eprintln!("bytes published twice after the drop: {resent} (window {window_bytes})");
    assert!(
        resent <= window_bytes,
        "{resent} bytes resent, more than one window ({window_bytes})"
    );
    assert!(docs.server.shutdown(Duration::from_secs(5)).await);
}

/// The caller token of a staged chunk subject `$O.<bucket>.C.<caller>.<id>`.
fn raw_key(upload: &str) -> String {
    upload.split('.').nth(3).expect("caller token").to_owned()
}

/// Bound: a direct upload whose caller is gone fails after the transfer's
/// idle timeout (2 s here) and its staged chunks are purged at once; the
/// whole must take less than idle + 8 s.
#[tokio::test]
async fn an_abandoned_direct_upload_fails_and_is_purged_within_its_idle_timeout() {
    let stack = stack().await;
    let (server, store, client) = jobs_stack(&stack).await;
    let raw = RawSender::start(&stack, "abandoned").await;
    raw.begin().await;
    for seq in 0..8 {
        let chunk = content(raw.chunk_size, seq as u8);
        raw.publish_direct(seq, chunk).await.expect("chunk");
    }
    let staged = store
        .open()
        .await
        .expect("open")
        .status()
        .await
        .expect("status");
    assert!(staged.used_bytes >= 8 * raw.chunk_size as u64);
    let id = raw.id.clone();
    let gone = Instant::now();
    drop(raw);
    match outcome(&client, &id).await {
        Outcome::Failed(message) => assert!(message.contains("no progress"), "{message}"),
        other => panic!("{other:?}"),
    }
    eventually(Duration::from_secs(5), "staged chunks purged", || async {
        let status = store.open().await.ok()?.status().await.ok()?;
        (status.used_bytes == 0).then_some(())
    })
    .await;
    let took = gone.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "failed and purged after {took:?}"
    );
    assert!(absent(&store, "abandoned").await);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
