//! Hostile input from raw, signed clients against a documents service on
//! a stack with auth on: control ids that would build oversized or
//! wildcard subjects, requests without a reply subject, oversized request
//! ids and headers, replies over the server's max payload, and upload
//! starts that never send a byte. Each is refused with a reason before any
//! I/O, nothing is disconnected, and valid calls keep succeeding.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use common::*;
use documents_example::DocumentsService;
use documents_example::documents;
use trellis::{CallError, Outcome, RpcServer, ServeOptions};
use trellis_runtime::rpc::surface_subject;

/// Both documents capabilities.
const DOCS_RW: &[&str] = &["documents::read", "documents::write"];

struct Docs {
    stack: Stack,
    server: RpcServer,
    client: documents::Client,
}

async fn documents_stack(options: ServeOptions) -> Docs {
    let stack = stack().await;
    accept_ready(
        &stack,
        documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let service = documents::Service::connect(stack.service(documents::ID).await)
        .await
        .expect("service");
    let server = service
        .serve(DocumentsService::new(&service), options)
        .await
        .expect("serve");
    let client = documents::Client::connect(stack.user("alice", DOCS_RW).await)
        .await
        .expect("client");
    Docs {
        stack,
        server,
        client,
    }
}

/// The concrete subject of the upload operation.
fn upload_subject() -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(documents::MANIFEST_JSON).expect("manifest");
    let subject = manifest["operations"]["Files.Upload"]["subject"]
        .as_str()
        .expect("upload subject");
    surface_subject("test", documents::ID, subject)
}

fn status(message: &async_nats::Message) -> &str {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get("Trellis-Status"))
        .map_or("ok", |v| v.as_str())
}

fn text(message: &async_nats::Message) -> String {
    String::from_utf8_lossy(&message.payload).into_owned()
}

async fn list_works(client: &documents::Client) {
    client
        .rpc
        .files
        .list(&documents::ListRequest {
            prefix: String::new(),
            offset: 0,
            limit: 10,
        })
        .await
        .expect("Files.List answers")
        .expect("Files.List succeeds");
}

#[tokio::test]
async fn hostile_control_ids_are_refused_while_an_upload_completes() {
    let docs = documents_stack(ServeOptions::default()).await;
    let (raw, signer) = docs.stack.raw_user("mallory", &[]).await;
    let signer = signer.expect("auth is on");
    let control = format!("{}.control", upload_subject());

    // A 32 MiB upload runs while the hostile requests arrive.
    let client = docs.client.clone();
    let upload = tokio::spawn(async move {
        let op = client
            .operation
            .files
            .upload
            .input(documents::UploadInput {
                key: "big.bin".into(),
                content_type: "application/octet-stream".into(),
                metadata: Default::default(),
            })
            .transfer(Bytes::from(vec![7u8; 32 * 1024 * 1024]))
            .start()
            .await
            .expect("upload starts");
        op.wait().await.expect("wait")
    });

    let ids = [
        "x".repeat(4 * 1024),
        "y".repeat(64 * 1024),
        ">".to_owned(),
        "*".to_owned(),
        ".".to_owned(),
        String::new(),
        "an id with spaces".to_owned(),
        "a..b".to_owned(),
    ];
    // Ten a second for three seconds, each answered `bad-request` naming
    // the field; a list keeps answering in between.
    for round in 0..30 {
        let id = &ids[round % ids.len()];
        for op in ["get", "cancel", "wait"] {
            let payload = Bytes::from(
                serde_json::json!({"op": op, "id": id, "after": 0, "timeoutMs": 10}).to_string(),
            );
            let answer = raw_request(&raw, Some(&signer), control.clone(), payload).await;
            assert_eq!(
                status(&answer),
                "bad-request",
                "{op} {}: {}",
                id.len(),
                text(&answer)
            );
            assert!(text(&answer).contains("`id`"), "{}", text(&answer));
        }
        // No reply subject: no work, no answer, no disconnect.
        let mut headers = HeaderMap::new();
        let payload = Bytes::from(serde_json::json!({"op": "get", "id": id}).to_string());
        signer.prove(&control, &payload).write(&mut headers);
        raw.publish_with_headers(control.clone(), headers, payload)
            .await
            .expect("publish");
        if round % 10 == 0 {
            list_works(&docs.client).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match upload.await.expect("upload task") {
        Outcome::Completed(out) => assert_eq!(out.file.size, 32 * 1024 * 1024),
        other => panic!("the upload did not complete: {other:?}"),
    }
    list_works(&docs.client).await;
    assert!(docs.server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn starts_without_a_reply_subject_create_no_records() {
    let docs = documents_stack(ServeOptions::default()).await;
    let (raw, signer) = docs.stack.raw_user("alice", DOCS_RW).await;
    let signer = signer.expect("auth is on");
    let subject = upload_subject();
    for i in 0..20 {
        let payload = Bytes::from(
            serde_json::json!({"key": format!("ghost-{i}"), "contentType": "text/plain"})
                .to_string(),
        );
        let mut headers = HeaderMap::new();
        signer.prove(&subject, &payload).write(&mut headers);
        raw.publish_with_headers(subject.clone(), headers, payload)
            .await
            .expect("publish");
    }
    raw.flush().await.expect("flush");
    // A request with a reply after them is answered: every earlier one
    // was handled (one connection is processed in order).
    list_works(&docs.client).await;
    let ledger = contract_state(&docs.stack, documents::ID)
        .await
        .bindings
        .ledger
        .expect("documents has a ledger")
        .bucket;
    let admin = docs.stack.server.client().await.expect("admin");
    let kv = async_nats::jetstream::new(admin)
        .get_key_value(ledger)
        .await
        .expect("ledger");
    let mut keys = kv.keys().await.expect("keys");
    let mut records = 0;
    while let Some(key) = futures::StreamExt::next(&mut keys).await {
        if key.expect("key").starts_with("op.") {
            records += 1;
        }
    }
    assert_eq!(records, 0, "starts without a reply recorded operations");
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test]
async fn oversized_request_ids_and_headers_are_refused_with_a_reason() {
    let docs = documents_stack(ServeOptions::default()).await;
    let (raw, signer) = docs.stack.raw_user("alice", DOCS_RW).await;
    let signer = signer.expect("auth is on");
    let manifest: serde_json::Value =
        serde_json::from_str(documents::MANIFEST_JSON).expect("manifest");
    let list = surface_subject(
        "test",
        documents::ID,
        manifest["rpc"]["Files.List"]["subject"]
            .as_str()
            .expect("subject"),
    );
    let payload = Bytes::from_static(br#"{"offset":0,"limit":1}"#);
    let before = rss();
    let signed_with_id = |id: &str| {
        let mut headers = HeaderMap::new();
        signer
            .prove_at(&list, &payload, trellis_runtime::internal::now_ms(), id)
            .write(&mut headers);
        headers
    };
    for i in 0..300 {
        // A validly signed request whose request id is 512 KiB long: over
        // the header bound, refused before the proof is even read.
        let id = format!("{i}-{}", "r".repeat(512 * 1024));
        let answer = raw
            .request_with_headers(list.clone(), signed_with_id(&id), payload.clone())
            .await
            .expect("answered");
        assert_eq!(status(&answer), "bad-request", "{}", text(&answer));
        assert!(text(&answer).contains("header bytes"), "{}", text(&answer));
    }
    for i in 0..300 {
        // Within the header bound, a request id over 64 bytes is refused
        // before the replay cache.
        let id = format!("{i}-{}", "r".repeat(8 * 1024));
        let answer = raw
            .request_with_headers(list.clone(), signed_with_id(&id), payload.clone())
            .await
            .expect("answered");
        assert_eq!(status(&answer), "unauthenticated", "{}", text(&answer));
        assert!(text(&answer).contains("request id"), "{}", text(&answer));
    }
    for _ in 0..300 {
        let mut headers = HeaderMap::new();
        signer.prove(&list, &payload).write(&mut headers);
        headers.insert("Padding", "p".repeat(512 * 1024).as_str());
        let answer = raw
            .request_with_headers(list.clone(), headers, payload.clone())
            .await
            .expect("answered");
        assert_eq!(status(&answer), "bad-request", "{}", text(&answer));
        assert!(text(&answer).contains("header bytes"), "{}", text(&answer));
    }
    // 300 x 512 KiB ids kept by the replay cache would be 150 MiB; refused
    // before the cache, the process grows by far less (the bound also
    // covers allocator slack of the test's own 300 MiB of requests).
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "RSS grew by {} MiB",
        grown / 1024 / 1024
    );
    list_works(&docs.client).await;
}

#[tokio::test]
async fn a_page_over_the_payload_limit_is_a_typed_error() {
    let docs = documents_stack(ServeOptions::default()).await;
    for key in ["heavy-a", "heavy-b"] {
        let op = docs
            .client
            .operation
            .files
            .upload
            .input(documents::UploadInput {
                key: key.into(),
                content_type: "text/plain".into(),
                metadata: [("note".to_owned(), "m".repeat(600 * 1000))].into(),
            })
            .transfer(Bytes::from_static(b"small"))
            .start()
            .await
            .expect("upload starts");
        assert!(matches!(
            op.wait().await.expect("wait"),
            Outcome::Completed(_)
        ));
    }
    let page = docs
        .client
        .rpc
        .files
        .list(&documents::ListRequest {
            prefix: String::new(),
            offset: 0,
            limit: 10,
        })
        .await;
    assert!(
        matches!(page, Err(CallError::ReplyTooLarge { .. })),
        "{page:?}"
    );
    // A page that fits is answered.
    let one = docs
        .client
        .rpc
        .files
        .list(&documents::ListRequest {
            prefix: String::new(),
            offset: 0,
            limit: 1,
        })
        .await
        .expect("answered")
        .expect("listed");
    assert_eq!(one.entries.len(), 1);
}

#[tokio::test]
async fn upload_starts_that_never_send_are_bounded_per_caller_and_in_all() {
    let options = ServeOptions::default()
        .transfer_idle_timeout(Duration::from_secs(3))
        .max_pending_transfers(12, 4);
    let docs = documents_stack(options).await;
    let subject = upload_subject();
    let start = |key: String| {
        Bytes::from(serde_json::json!({"key": key, "contentType": "text/plain"}).to_string())
    };
    let mut accepted = 0;
    let mut refused = Vec::new();
    for caller in ["u1", "u2", "u3", "u4"] {
        let (raw, signer) = docs.stack.raw_user(caller, DOCS_RW).await;
        let signer = signer.expect("auth is on");
        for i in 0..5 {
            let answer = raw_request(
                &raw,
                Some(&signer),
                subject.clone(),
                start(format!("{caller}-{i}")),
            )
            .await;
            match status(&answer) {
                "ok" => accepted += 1,
                "refused" => refused.push(text(&answer)),
                other => panic!("unexpected {other}: {}", text(&answer)),
            }
        }
    }
    // Four callers x five starts: each caller's fifth is over its bound of
    // four, and the service holds twelve in all.
    assert_eq!(accepted, 12, "refusals: {refused:?}");
    assert_eq!(refused.len(), 8);
    assert!(
        refused.iter().any(|r| r.contains("(at most 4)")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|r| r.contains("its limit")),
        "{refused:?}"
    );
    // Valid calls keep succeeding meanwhile.
    list_works(&docs.client).await;
    // Idle starts end, freeing their slots: a real upload goes through.
    eventually(
        Duration::from_secs(20),
        "idle starts to time out",
        || async {
            let op = docs
                .client
                .operation
                .files
                .upload
                .input(documents::UploadInput {
                    key: "after.txt".into(),
                    content_type: "text/plain".into(),
                    metadata: Default::default(),
                })
                .transfer(Bytes::from_static(b"hello"))
                .start()
                .await
                .ok()?;
            matches!(op.wait().await.ok()?, Outcome::Completed(_)).then_some(())
        },
    )
    .await;
}
