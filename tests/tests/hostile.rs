//! Hostile input from raw clients against a documents service on a stack
//! with auth on: control ids that would build oversized or wildcard
//! subjects, requests without a reply subject (or replying outside the
//! caller's inbox), oversized headers, replies over the server's max
//! payload, upload starts that never send a byte, and requests a service
//! makes nats-server deliver on a user's request subjects. Each is refused
//! with a reason (or dropped, when it could not be answered) before any
//! I/O, nothing is disconnected, and valid calls keep succeeding.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use common::*;
use documents_example::documents;
use futures::StreamExt;
use trellis::{CallError, Outcome, ServeOptions};
use trellis_runtime::identity::inbox_prefix;
use trellis_runtime::rpc::request_subject;
use trellis_tests::ledger;

/// Held exclusively by the tests that measure this process's RSS and by
/// the one that holds a 256 MiB upload, and shared by every other test of
/// this binary: no measurement sees another test's memory, and the others
/// still run in parallel with each other.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The manifest subject of documents' `section` (`rpc` or `operations`)
/// entry `name`.
fn manifest_subject(section: &str, name: &str) -> String {
    let manifest: serde_json::Value =
        serde_json::from_str(documents::MANIFEST_JSON).expect("manifest");
    manifest[section][name]["subject"]
        .as_str()
        .unwrap_or_else(|| panic!("{section} {name} has a subject"))
        .to_owned()
}

/// The manifest subject of the upload operation.
fn upload_op() -> String {
    manifest_subject("operations", "Files.Upload")
}

/// The operation records in documents' ledger.
async fn operation_records(stack: &Stack) -> usize {
    let ledger = contract_state(stack, documents::ID)
        .await
        .bindings
        .ledger
        .expect("documents has a ledger")
        .bucket;
    let admin = stack.server.client().await.expect("admin");
    let kv = async_nats::jetstream::new(admin)
        .get_key_value(ledger)
        .await
        .expect("ledger");
    let mut keys = kv.keys().await.expect("keys");
    let mut records = 0;
    while let Some(key) = keys.next().await {
        if key.expect("key").starts_with("op.") {
            records += 1;
        }
    }
    records
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
    let _memory = MEMORY.write().await;
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let (raw, mallory) = docs.stack.raw_user("mallory", &[]).await;
    let control = format!("{}.control", mallory.subject(documents::ID, &upload_op()));

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
            let answer = raw_request(&raw, control.clone(), payload).await;
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
        let payload = Bytes::from(serde_json::json!({"op": "get", "id": id}).to_string());
        raw.publish(control.clone(), payload)
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
    let _memory = MEMORY.read().await;
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let (raw, alice) = docs.stack.raw_user("alice", DOCS_RW).await;
    let subject = alice.subject(documents::ID, &upload_op());
    // Replies below another principal's inbox: the provider must neither
    // answer there nor do the work.
    let bob = docs.stack.user_credentials("bob").await.public_key();
    let admin = docs.stack.server.client().await.expect("admin");
    let mut bobs_inbox = admin
        .subscribe(format!("{}.>", inbox_prefix(&bob)))
        .await
        .expect("subscribe");
    // A round trip: the server then has the subscription.
    trellis_runtime::internal::confirm_subscriptions(&admin)
        .await
        .expect("the server has the subscription");
    let start = |key: String| {
        Bytes::from(serde_json::json!({"key": key, "contentType": "text/plain"}).to_string())
    };
    for i in 0..20 {
        raw.publish(subject.clone(), start(format!("ghost-{i}")))
            .await
            .expect("publish");
        raw.publish_with_reply(
            subject.clone(),
            format!("{}.stolen-{i}", inbox_prefix(&bob)),
            start(format!("elsewhere-{i}")),
        )
        .await
        .expect("publish");
    }
    raw.flush().await.expect("flush");
    // A start with a reply after them, on the same subject, is answered:
    // the earlier ones reached the provider first.
    let answer = raw_request(&raw, subject.clone(), Bytes::from_static(b"{not json")).await;
    assert_eq!(status(&answer), "bad-request", "{}", text(&answer));
    list_works(&docs.client).await;
    // Each start is handled in its own task: give any stray one time to
    // record itself before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        operation_records(&docs.stack).await,
        0,
        "starts without a reply to their caller recorded operations"
    );
    let leaked = tokio::time::timeout(Duration::from_millis(200), bobs_inbox.next()).await;
    assert!(
        leaked.is_err(),
        "a start was answered in another principal's inbox: {leaked:?}"
    );
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
async fn oversized_headers_are_refused_with_a_reason() {
    let _memory = MEMORY.write().await;
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let (raw, alice) = docs.stack.raw_user("alice", DOCS_RW).await;
    let list = alice.subject(documents::ID, &manifest_subject("rpc", "Files.List"));
    let payload = Bytes::from_static(br#"{"offset":0,"limit":1}"#);
    // Sends a Files.List with a `Padding` header of `padding` bytes.
    let send = async |padding: usize| {
        let mut headers = HeaderMap::new();
        headers.insert("Padding", "p".repeat(padding).as_str());
        raw.request_with_headers(list.clone(), headers, payload.clone())
            .await
            .expect("answered")
    };
    // Within the header bound, a padded request is served.
    let answer = send(8 * 1024).await;
    assert_eq!(status(&answer), "ok", "{}", text(&answer));
    let before = rss();
    for _ in 0..300 {
        // 512 KiB of headers: over the bound, refused before the caller is
        // even looked up.
        let answer = send(512 * 1024).await;
        assert_eq!(status(&answer), "bad-request", "{}", text(&answer));
        assert!(text(&answer).contains("header bytes"), "{}", text(&answer));
    }
    // 300 x 512 KiB of headers kept anywhere would be 150 MiB; refused
    // outright, the process grows by far less (the bound also covers
    // allocator slack of the test's own 150 MiB of requests).
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
    let _memory = MEMORY.read().await;
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
    let _memory = MEMORY.read().await;
    let options = ServeOptions::default()
        .transfer_idle_timeout(Duration::from_secs(3))
        .max_pending_transfers(12, 4);
    let docs = documents_stack(Duration::ZERO, options).await;
    let start = |key: String| {
        Bytes::from(serde_json::json!({"key": key, "contentType": "text/plain"}).to_string())
    };
    let mut accepted = 0;
    let mut refused = Vec::new();
    for caller in ["u1", "u2", "u3", "u4"] {
        let (raw, raw_caller) = docs.stack.raw_user(caller, DOCS_RW).await;
        let subject = raw_caller.subject(documents::ID, &upload_op());
        for i in 0..5 {
            let answer = raw_request(&raw, subject.clone(), start(format!("{caller}-{i}"))).await;
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
    let _memory = MEMORY.write().await;
    // Default bounds: 128 pending transfers in all, 16 per caller.
    let docs = documents_stack(Duration::ZERO, ServeOptions::default()).await;
    let before = rss();
    let mut callers = Vec::new();
    for c in 0..10 {
        let (raw, caller) = docs.stack.raw_user(&format!("flood{c}"), DOCS_RW).await;
        callers.push((raw, caller.subject(documents::ID, &upload_op())));
    }
    let started = std::time::Instant::now();
    let starts = futures::stream::iter(0..8000).map(|i| {
        let (raw, subject) = &callers[i % callers.len()];
        let subject = subject.clone();
        async move {
            let payload = Bytes::from(
                serde_json::json!({"key": format!("idle-{i}"), "contentType": "text/plain"})
                    .to_string(),
            );
            let answer = raw_request(raw, subject, payload).await;
            (status(&answer).to_owned(), text(&answer))
        }
    });
    // Valid calls keep succeeding while the flood runs.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let lister = {
        let client = docs.client.clone();
        let flooding = flooding.clone();
        tokio::spawn(async move {
            let mut listed = 0u32;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) && listed < 10_000 {
                list_works(&client).await;
                listed += 1;
            }
            listed
        })
    };
    let answers: Vec<(String, String)> = starts.buffer_unordered(64).collect().await;
    let elapsed = started.elapsed();
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let listed = lister.await.expect("valid calls during the flood");
    assert!(listed > 0, "no valid call completed during the flood");
    let accepted = answers.iter().filter(|(s, _)| s == "ok").count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| s == "refused").collect();
    // Ten callers of 800 starts each: the service holds 128 in all (eight
    // callers' 16 slots' worth), and every other start is refused with the
    // bound it hit (the caller's or the total).
    assert_eq!(accepted, 128, "in {elapsed:?}");
    assert_eq!(refused.len(), 8000 - 128, "other answers: {answers:?}");
    assert!(
        refused
            .iter()
            .all(|(_, t)| t.contains("at most") || t.contains("its limit")),
        "{refused:?}"
    );
    list_works(&docs.client).await;
    // 8,000 held starts grew an unbounded service by 352 MiB; bounded, the
    // whole process (the service, the test's callers and their 8,000
    // requests) stays well under that.
    let grown = rss().saturating_sub(before);
    eprintln!(
        "8000 starts in {elapsed:?} ({listed} valid lists meanwhile): RSS grew by {} KiB",
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
    let _memory = MEMORY.read().await;
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

    // A live listener of the ledger's postings (no capability needed).
    let carol = ledger::Client::connect(stack.user("carol", &[]).await)
        .await
        .expect("carol");
    let mut live = carol.events.ledger.posted.listen().await.expect("listen");

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
    let ledger_own_start = "trellis.test.ledger@v1.events.v1.Ledger.Posted.evilstart";

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
    // 3. The ledger service aims a delete of alice's file and an upload
    //    start at the documents service, on alice's request subjects (which
    //    only alice may publish to, but nats-server delivers to): the
    //    subject names a registered caller who may delete and upload.
    let alice = stack.user_credentials("alice").await.public_key();
    let alice_request = |subject: &str| request_subject("test", &alice, documents::ID, subject);
    let delete = alice_request(&manifest_subject("rpc", "Files.Delete"));
    let start = alice_request(&upload_op());
    let records = operation_records(stack).await;
    // What nats-server delivers there, seen by the admin connection too.
    let admin = stack.server.client().await.expect("admin");
    let mut observed = admin
        .subscribe(alice_request(">"))
        .await
        .expect("subscribe");
    trellis_runtime::internal::confirm_subscriptions(&admin)
        .await
        .expect("the server has the subscription");
    inject(
        &as_ledger,
        &ledger_stream,
        ledger_own,
        (&delete, Some("trellis.documents@v1")),
        br#"{"key":"keep.txt"}"#,
        "delete",
    )
    .await;
    inject(
        &as_ledger,
        &ledger_stream,
        ledger_own_start,
        (&start, Some("trellis.documents@v1")),
        br#"{"key":"forged.txt","contentType":"text/plain"}"#,
        "start",
    )
    .await;
    // The server does deliver both forgeries where the provider listens:
    // a direct get answers on alice's subject itself, with no reply; a
    // pull request's message keeps its stored subject (the ledger's own,
    // naming no caller) and replies on `$JS.ACK.…`. None replies below
    // alice's inbox, which is what the provider requires.
    let mut forged: Vec<async_nats::Message> = Vec::new();
    let delivered = |forged: &[async_nats::Message], subject: &str| {
        forged.iter().any(|m| m.subject.as_str() == subject)
    };
    let all = [
        delete.as_str(),
        start.as_str(),
        ledger_own,
        ledger_own_start,
    ];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !all.iter().all(|s| delivered(&forged, s)) {
            match observed.next().await {
                Some(m) => forged.push(m),
                None => break,
            }
        }
    })
    .await;
    let shown: Vec<_> = forged
        .iter()
        .map(|m| (m.subject.as_str(), m.reply.as_deref()))
        .collect();
    assert!(
        all.iter().all(|s| delivered(&forged, s)),
        "nats-server did not deliver every forgery: {shown:?}"
    );
    let alice_inbox = format!("{}.", inbox_prefix(&alice));
    assert!(
        forged.iter().all(|m| !m
            .reply
            .as_ref()
            .is_some_and(|r| r.starts_with(&alice_inbox))),
        "a delivery replies below alice's inbox: {shown:?}"
    );

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
    // The live listener reports the forgeries as unverified, never as
    // postings, and then sees the genuine one.
    let mut unverified = 0;
    let genuine = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = live.next().await {
            match item {
                Ok(received) if received.event.n == 999 => return Err(format!("{received:?}")),
                Ok(received) => return Ok(received.event),
                Err(trellis::EventError::Unverified { .. }) => unverified += 1,
                Err(other) => return Err(other.to_string()),
            }
        }
        Err("the listener ended".into())
    })
    .await
    .expect("the genuine posting reaches the live listener");
    assert_eq!(genuine.expect("no forgery is an event").n, 1);
    assert!(
        unverified > 0,
        "no forgery was reported to the live listener"
    );
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
    // The forged start recorded no operation.
    assert_eq!(
        operation_records(stack).await,
        records,
        "a forged start recorded an operation"
    );
    // The provider answered none of the deliveries (they reply on
    // `$JS.ACK.…`: answering would publish for the forger).
    let log = stack.server.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("documents") && l.contains("Violation") && l.contains("$JS.ACK")),
        "the provider answered a forged delivery:\n{log}"
    );
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
    let _memory = MEMORY.read().await;
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
