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
use documents_example::documents;
use futures::StreamExt;
use trellis::{CallError, Outcome, ServeOptions};
use trellis_runtime::rpc::surface_subject;
use trellis_tests::ledger;

/// Held by the tests that measure this process's RSS and by the one that
/// holds a 256 MiB upload, so no measurement sees another test's memory.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _memory = MEMORY.lock().await;
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let (raw, signer) = docs.stack.raw_user("mallory", &[]).await;
    let signer = signer.expect("auth is on");
    let control = format!("{}.control", upload_subject());

    // A 256 MiB upload runs while the hostile requests arrive.
    const SIZE: usize = 256 * 1024 * 1024;
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
            .transfer(Bytes::from(vec![7u8; SIZE]))
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
    // Ten rounds a second for ten seconds, each answered `bad-request`
    // naming the field; a list keeps answering in between.
    let started = std::time::Instant::now();
    for round in 0..100u64 {
        let id = &ids[round as usize % ids.len()];
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
        tokio::time::sleep_until((started + Duration::from_millis(100 * (round + 1))).into()).await;
    }
    match upload.await.expect("upload task") {
        Outcome::Completed(out) => assert_eq!(out.file.size, SIZE as u64),
        other => panic!("the upload did not complete: {other:?}"),
    }
    list_works(&docs.client).await;
    // Neither the service's nor the caller's connection ever reconnected
    // (a disconnect is followed by a reconnect, counted here).
    let connects = |c: &async_nats::Client| {
        c.statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(connects(&docs.service_nats), 1, "the service reconnected");
    assert_eq!(connects(&raw), 1, "the hostile caller was disconnected");
    // nats-server closed no connection for a protocol violation.
    let log = docs.stack.server.log().to_lowercase();
    for closed in ["control line", "slow consumer", "protocol violation"] {
        assert!(
            !log.contains(closed),
            "the server log reports `{closed}`:\n{log}"
        );
    }
    assert!(docs.server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn starts_without_a_reply_subject_create_no_records() {
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
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
    let _memory = MEMORY.lock().await;
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
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
    // Sends a Files.List with `headers`; it must be answered `status` with
    // a reason mentioning `reason`.
    let refused = async |headers: HeaderMap, want: &str, reason: &str| {
        let answer = raw
            .request_with_headers(list.clone(), headers, payload.clone())
            .await
            .expect("answered");
        assert_eq!(status(&answer), want, "{}", text(&answer));
        assert!(text(&answer).contains(reason), "{}", text(&answer));
    };
    for i in 0..300 {
        // A validly signed request whose request id is 512 KiB long: over
        // the header bound, refused before the proof is even read.
        let id = format!("{i}-{}", "r".repeat(512 * 1024));
        refused(signed_with_id(&id), "bad-request", "header bytes").await;
    }
    for i in 0..300 {
        // Within the header bound, a request id over 64 bytes is refused
        // before the replay cache.
        let id = format!("{i}-{}", "r".repeat(8 * 1024));
        refused(signed_with_id(&id), "unauthenticated", "request id").await;
    }
    for _ in 0..300 {
        let mut headers = HeaderMap::new();
        signer.prove(&list, &payload).write(&mut headers);
        headers.insert("Padding", "p".repeat(512 * 1024).as_str());
        refused(headers, "bad-request", "header bytes").await;
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
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
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
    let docs = documents_stack(Duration::ZERO, options).await;
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

#[tokio::test]
async fn eight_thousand_idle_starts_stay_within_the_default_bounds() {
    let _memory = MEMORY.lock().await;
    // Default bounds: 128 pending transfers in all, 16 per caller.
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let subject = upload_subject();
    let before = rss();
    let mut callers = Vec::new();
    for c in 0..10 {
        let (raw, signer) = docs.stack.raw_user(&format!("flood{c}"), DOCS_RW).await;
        callers.push((raw, signer.expect("auth is on")));
    }
    let started = std::time::Instant::now();
    let starts = futures::stream::iter(0..8000).map(|i| {
        let (raw, signer) = &callers[i % callers.len()];
        let subject = subject.clone();
        async move {
            let payload = Bytes::from(
                serde_json::json!({"key": format!("idle-{i}"), "contentType": "text/plain"})
                    .to_string(),
            );
            let answer = raw_request(raw, Some(signer), subject, payload).await;
            (status(&answer).to_owned(), text(&answer))
        }
    });
    let answers: Vec<(String, String)> = starts.buffer_unordered(64).collect().await;
    let elapsed = started.elapsed();
    let accepted = answers.iter().filter(|(s, _)| s == "ok").count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| s == "refused").collect();
    // Eight callers fill their 16 slots; the service holds 128 in all, and
    // every other start is refused with the bound it hit.
    assert_eq!(accepted, 128, "in {elapsed:?}");
    assert_eq!(refused.len(), 8000 - 128, "other answers: {answers:?}");
    assert!(
        refused
            .iter()
            .all(|(_, t)| t.contains("at most") || t.contains("its limit")),
        "{refused:?}"
    );
    // Valid calls keep succeeding meanwhile.
    list_works(&docs.client).await;
    // 8,000 held starts grew an unbounded service by 352 MiB; bounded, the
    // whole process (the service, the test's callers and their 8,000
    // requests) stays well under that.
    let grown = rss().saturating_sub(before);
    eprintln!(
        "8000 starts in {elapsed:?}: RSS grew by {} KiB",
        grown / 1024
    );
    assert!(
        grown < 48 * 1024 * 1024,
        "RSS grew by {} MiB",
        grown / 1024 / 1024
    );
}

/// What one service can make nats-server deliver on its behalf: a message
/// it stored on its own event subject, sent to `target` through a push
/// consumer's deliver subject (in the queue group `group` the target's
/// subscribers use), a direct get's reply subject and a pull request's
/// reply subject. The server may refuse any of these calls.
async fn inject(
    raw: &async_nats::Client,
    own_stream: &str,
    own_subject: &str,
    (target, group): (&str, Option<&str>),
    payload: &'static [u8],
    tag: &str,
) {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull, push};
    let js = async_nats::jetstream::new(raw.clone());
    let stored = js
        .publish(own_subject.to_owned(), Bytes::from_static(payload))
        .await;
    if let Ok(ack) = stored {
        let _ = ack.await;
    }
    let _ = js
        .create_consumer_on_stream(
            push::Config {
                name: Some(format!("evil-push-{tag}")),
                deliver_subject: target.to_owned(),
                deliver_group: group.map(str::to_owned),
                filter_subject: own_subject.to_owned(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                ..Default::default()
            },
            own_stream,
        )
        .await;
    let _ = raw
        .publish_with_reply(
            format!("$JS.API.DIRECT.GET.{own_stream}"),
            target.to_owned(),
            Bytes::from(serde_json::json!({"last_by_subj": own_subject}).to_string()),
        )
        .await;
    let durable = format!("evil-pull-{tag}");
    if js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: own_subject.to_owned(),
                ..Default::default()
            },
            own_stream,
        )
        .await
        .is_ok()
    {
        let _ = raw
            .publish_with_reply(
                format!("$JS.API.CONSUMER.MSG.NEXT.{own_stream}.{durable}"),
                target.to_owned(),
                Bytes::from_static(br#"{"batch":1}"#),
            )
            .await;
    }
    let _ = raw.flush().await;
}

#[tokio::test]
async fn services_cannot_forge_requests_grants_or_events_through_the_server() {
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let stack = &docs.stack;
    accept_ready(stack, ledger::MANIFEST_JSON, ledger::ID, ledger::DIGEST).await;
    let ledger_service = ledger::Service::connect(stack.service(ledger::ID).await)
        .await
        .expect("ledger service");
    // A document the forged delete aims at.
    upload(&docs.client, "keep.txt", Bytes::from_static(b"precious")).await;
    // The ledger's projector records what it handles.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>> = Default::default();
    let s = seen.clone();
    let task = ledger_service
        .consumers
        .projector
        .run(move |c: trellis::Consumed<ledger::Projector>| {
            let s = s.clone();
            async move {
                let ledger::Projector::LedgerPosted(p) = c.event else {
                    return Ok(());
                };
                s.lock().expect("lock").push(p.n);
                Ok::<_, std::io::Error>(())
            }
        })
        .await
        .expect("projector");

    let events_of = |id: &'static str| async move {
        contract_state(stack, id)
            .await
            .bindings
            .events
            .expect("event stream")
            .stream
    };
    let docs_stream = events_of(documents::ID).await;
    let ledger_stream = events_of(ledger::ID).await;
    let docs_creds = stack.service_credentials(documents::ID).await;
    let ledger_creds = stack.service_credentials(ledger::ID).await;
    let (as_docs, _) = raw_as(&docs_creds, &stack.server.url()).await;
    let (as_ledger, _) = raw_as(&ledger_creds, &stack.server.url()).await;
    // The authority takes the operation from the delivered message's
    // subject, which is the stored one: the attacker names it `grant`.
    let docs_own = "trellis.test.documents@v1.events.v1.Documents.Created.grant";
    let ledger_own = "trellis.test.ledger@v1.events.v1.Ledger.Posted.evil";

    // 1. The documents service aims a grant of `ledger` capabilities to
    //    itself at the authority.
    inject(
        &as_docs,
        &docs_stream,
        docs_own,
        (
            "trellis.authority.test.grant",
            Some("trellis-authority-test"),
        ),
        br#"{"principal":"documents-v1","capabilities":["documents::write"]}"#,
        "grant",
    )
    .await;
    // 2. The documents service aims a posting at the ledger's events.
    inject(
        &as_docs,
        &docs_stream,
        docs_own,
        (
            "trellis.test.ledger@v1.events.v1.Ledger.Posted.forged",
            None,
        ),
        br#"{"account":"forged","n":999}"#,
        "event",
    )
    .await;
    // 3. The ledger service aims a delete at the documents service.
    let delete =
        surface_subject(
            "test",
            documents::ID,
            serde_json::from_str::<serde_json::Value>(documents::MANIFEST_JSON).expect("manifest")
                ["rpc"]["Files.Delete"]["subject"]
                .as_str()
                .expect("subject"),
        );
    inject(
        &as_ledger,
        &ledger_stream,
        ledger_own,
        (&delete, Some("trellis.documents@v1")),
        br#"{"key":"keep.txt"}"#,
        "delete",
    )
    .await;

    // A genuine posting is handled; every forged one is rejected and
    // recorded, never handled.
    ledger_service
        .events
        .ledger
        .posted
        .publish(&ledger::Posted {
            account: "real".into(),
            n: 1,
        })
        .await
        .expect("publish");
    let rejected = eventually(
        Duration::from_secs(20),
        "the forged postings rejected",
        || {
            let consumer = ledger_service.consumers.projector.clone();
            let seen = seen.clone();
            async move {
                let rejected = consumer.rejected().await.ok()?;
                let forged = rejected
                    .iter()
                    .filter(|r| r.subject.ends_with(".forged"))
                    .count();
                (seen.lock().expect("lock").contains(&1) && forged > 0).then_some(rejected)
            }
        },
    )
    .await;
    task.shutdown().await;
    assert!(
        rejected
            .iter()
            .filter(|r| r.subject.ends_with(".forged"))
            .all(|r| r.reason.contains("unverified publisher")),
        "{rejected:?}"
    );
    assert!(
        !seen.lock().expect("lock").contains(&999),
        "a forged event was handled"
    );
    // The forged delete did nothing.
    let head = docs
        .client
        .rpc
        .files
        .head(&documents::FileKey {
            key: "keep.txt".into(),
        })
        .await
        .expect("answered");
    assert!(head.is_ok(), "the forged delete removed the file: {head:?}");
    // The forged grant did nothing.
    let principals = stack.client.principals().await.expect("principals");
    let documents_service = principals
        .principals
        .iter()
        .find(|p| p.record.id == "documents-v1")
        .expect("the documents service principal");
    assert!(
        !documents_service
            .record
            .capabilities
            .iter()
            .any(|c| c == "documents::write"),
        "the forged grant applied: {:?}",
        documents_service.record.capabilities
    );
}

#[tokio::test]
async fn receive_grants_per_caller_are_bounded() {
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    upload(&docs.client, "shared.txt", Bytes::from_static(b"shared")).await;
    let key = documents::FileKey {
        key: "shared.txt".into(),
    };
    for _ in 0..trellis_runtime::MAX_GRANTS_PER_CALLER {
        docs.client
            .rpc
            .files
            .download(&key)
            .await
            .expect("answered")
            .expect("a grant");
    }
    match docs
        .client
        .rpc
        .files
        .download(&key)
        .await
        .expect("answered")
    {
        Err(documents::FilesError::InvalidRequest { reason }) => {
            assert!(
                reason.contains("unredeemed, unexpired receive grants"),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Another caller is not affected.
    let bob = documents::Client::connect(docs.stack.user("bob", DOCS_RW).await)
        .await
        .expect("bob");
    bob.rpc
        .files
        .download(&key)
        .await
        .expect("answered")
        .expect("bob's grant");
}
