//! Authentication and least privilege against a real nats-server whose
//! connections all go through the authority's auth callout: services run
//! with exactly the permissions their accepted contracts give them, and
//! nats-server itself denies everything else.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use indexer_example::{documents, index_key, indexer};
use trellis::{ConnectOptions, ServeOptions};
use trellis_runtime::identity::{Credentials, PrincipalKind};

/// How long nats-server may take to report a permission violation.
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn services_run_with_exactly_their_contracts_permissions() {
    let stack = auth_stack().await;
    let url = stack.server.url();
    for (manifest, id, digest) in [
        (
            documents_example::documents::MANIFEST_JSON,
            documents::ID,
            documents::DIGEST,
        ),
        (indexer::MANIFEST_JSON, indexer::ID, indexer::DIGEST),
        (
            items_example::items::MANIFEST_JSON,
            items_example::items::ID,
            items_example::items::DIGEST,
        ),
    ] {
        accept_ready(&stack, manifest, id, digest).await;
    }
    let enroll = |kind, id, contract| stack.enroll(kind, id, None, contract);
    let docs_creds = enroll(PrincipalKind::Service, "documents", Some(documents::ID)).await;
    let indexer_creds = enroll(PrincipalKind::Service, "indexer", Some(indexer::ID)).await;
    let items_creds = enroll(
        PrincipalKind::Service,
        "items",
        Some(items_example::items::ID),
    )
    .await;
    let alice = enroll(PrincipalKind::User, "alice", None).await;
    stack
        .client
        .grant("alice", &["documents::read", "documents::write"], false)
        .await
        .expect("grant alice");
    stack
        .client
        .grant("indexer", &["documents::read"], false)
        .await
        .expect("grant indexer");

    // Nothing connects without a registered key.
    let anonymous = async_nats::connect(url.as_str()).await;
    assert!(
        anonymous.is_err(),
        "an unauthenticated connection is refused"
    );
    let stranger = Credentials::generate(PrincipalKind::User, "stranger", None, None).expect("gen");
    assert!(
        stranger.nats_options().connect(url.as_str()).await.is_err(),
        "an unregistered key is refused"
    );

    // The whole flow works under auth: documents serves, alice uploads,
    // the indexer consumes its durable consumer, calls Files.Head through
    // its `uses` facade and writes its own bucket.
    let options = ConnectOptions::new(url.clone()).deployment("test");
    let docs = documents_example::documents::Service::connect(
        options.clone().credentials(docs_creds.clone()),
    )
    .await
    .expect("documents service connects with its key");
    let _server = docs
        .serve(
            documents_example::DocumentsService::new(&docs),
            ServeOptions::default(),
        )
        .await
        .expect("serve");
    let client = documents::Client::connect(options.clone().credentials(alice.clone()))
        .await
        .expect("alice connects");
    upload_document(&client, "a.txt", "hello").await;
    let service = Arc::new(
        indexer::Service::connect(options.clone().credentials(indexer_creds.clone()))
            .await
            .expect("indexer connects with its key"),
    );
    let task = indexer_example::run(service.clone(), |_| {})
        .await
        .expect("run");
    let entry = eventually(Duration::from_secs(20), "indexed under auth", || {
        let service = service.clone();
        async move {
            service
                .kv
                .index
                .get(&index_key("a.txt"))
                .await
                .expect("get")
        }
    })
    .await;
    assert_eq!(entry.value.size, 5);
    task.shutdown().await;

    // nats-server denies everything outside the contracts.
    let items_state = contract_state(&stack, items_example::items::ID).await;
    let items_bucket = &items_state
        .bindings
        .kv
        .values()
        .next()
        .expect("items kv")
        .bucket;
    let docs_state = contract_state(&stack, documents::ID).await;
    let docs_store = &docs_state
        .bindings
        .store
        .values()
        .next()
        .expect("store")
        .bucket;
    let indexer_state = contract_state(&stack, indexer::ID).await;
    let consumer = indexer_state
        .bindings
        .consumers
        .values()
        .flatten()
        .next()
        .expect("indexer consumer")
        .clone();

    let (raw, mut errors) = raw_as(&indexer_creds, &url).await;
    // Another service's KV bucket: neither its data nor its stream API.
    let kv_put = format!("$KV.{items_bucket}.stolen");
    raw.publish(kv_put.clone(), "x".into()).await.expect("pub");
    violation(&mut errors, "publish", &kv_put, WAIT).await;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(raw.clone());
    assert!(js.get_key_value(items_bucket.as_str()).await.is_err());
    violation(
        &mut errors,
        "publish",
        &format!("$JS.API.STREAM.INFO.KV_{items_bucket}"),
        WAIT,
    )
    .await;
    // Another service's object store.
    assert!(js.get_object_store(docs_store.as_str()).await.is_err());
    violation(
        &mut errors,
        "publish",
        &format!("$JS.API.STREAM.INFO.OBJ_{docs_store}"),
        WAIT,
    )
    .await;
    // Requests go below the caller's own key (its proof of identity).
    let indexer_key = indexer_creds.public_key();
    let as_caller = |key: &str, rpc: &str| {
        trellis::rpc::request_subject("test", key, documents::ID, &format!("rpc.v1.{rpc}"))
    };
    // An RPC the indexer did not select in `uses`.
    let delete = as_caller(&indexer_key, "Files.Delete");
    let _ = raw.publish(delete.clone(), "{}".into()).await;
    violation(&mut errors, "publish", &delete, WAIT).await;
    // A selected RPC, but under another principal's key.
    let as_alice = as_caller(&alice.public_key(), "Files.Head");
    let _ = raw.publish(as_alice.clone(), "{}".into()).await;
    violation(&mut errors, "publish", &as_alice, WAIT).await;
    // Another principal's inbox.
    let other_inbox = format!("_INBOX.{}.>", alice.public_key());
    let _sub = raw.subscribe(other_inbox.clone()).await.expect("sub");
    violation(&mut errors, "subscription", &other_inbox, WAIT).await;
    // Through a typed client the refusal is a typed error at once, not a
    // timeout.
    let stray = documents::Client::connect(options.clone().credentials(indexer_creds.clone()))
        .await
        .expect("a client as the indexer");
    let started = std::time::Instant::now();
    match stray
        .rpc
        .files
        .delete(&documents::FileKey {
            key: "a.txt".into(),
        })
        .await
    {
        Err(trellis::CallError::PermissionDenied { subject, .. }) => assert_eq!(subject, delete),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "not a timeout");
    // The selected RPC is allowed (no violation; documents answers).
    let head = as_caller(&indexer_key, "Files.Head");
    let reply = raw.request(head.clone(), "{}".into()).await;
    assert!(
        reply.is_ok(),
        "the selected RPC reaches documents: {reply:?}"
    );

    // Another service's consumer: info, pull-next and acks are denied.
    let (raw, mut errors) = raw_as(&items_creds, &url).await;
    let (s, c) = (&consumer.stream, &consumer.consumer);
    for subject in [
        format!("$JS.API.CONSUMER.INFO.{s}.{c}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{c}"),
        format!("$JS.ACK.{s}.{c}.1.1.1.1.1"),
    ] {
        raw.publish(subject.clone(), "".into()).await.expect("pub");
        violation(&mut errors, "publish", &subject, WAIT).await;
    }
    // Least knowledge: a service cannot read the principal records; it
    // may watch the sealed callers bucket, but opens only the records of
    // keys it knows (its callers name theirs in their request subjects).
    let (as_docs, mut docs_errors) = raw_as(&docs_creds, &url).await;
    let docs_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(as_docs.clone());
    assert!(
        docs_js
            .get_key_value("trellis-principals-test")
            .await
            .is_err()
    );
    violation(
        &mut docs_errors,
        "publish",
        "$JS.API.STREAM.INFO.KV_trellis-principals-test",
        WAIT,
    )
    .await;
    let callers = docs_js
        .get_key_value("trellis-callers-test")
        .await
        .expect("the callers bucket is readable");
    let mut keys = callers.keys().await.expect("keys");
    let mut seen = 0;
    while let Some(entry) = futures::StreamExt::next(&mut keys).await {
        let entry = entry.expect("key");
        let sealed = callers.get(&entry).await.expect("get").expect("value");
        let text = String::from_utf8_lossy(&sealed);
        for secret in ["alice", "indexer", "documents::read", "\"kind\""] {
            assert!(!text.contains(secret), "entry {entry} shows {secret}");
        }
        seen += 1;
    }
    assert!(
        seen >= 4,
        "{seen} entries (documents, indexer, items, alice)"
    );
    let alice_entry = trellis_runtime::sealed::entry_key(&alice.public_key());
    let sealed = callers
        .get(&alice_entry)
        .await
        .expect("get")
        .expect("alice's entry");
    let opened = trellis_runtime::sealed::open(&alice.public_key(), &sealed).expect("opens");
    assert_eq!(opened.id, "alice");
    assert!(trellis_runtime::sealed::open(&indexer_key, &sealed).is_err());

    // Nor may a service call the authority's operator surface.
    let accept = "trellis.authority.test.accept";
    raw.publish(accept, "{}".into()).await.expect("pub");
    violation(&mut errors, "publish", accept, WAIT).await;

    // The audit view lists what each principal is issued.
    let principals = stack.client.principals().await.expect("principals");
    assert!(principals.auth);
    let indexer_perms = principals
        .principals
        .iter()
        .find(|p| p.record.id == "indexer")
        .and_then(|p| p.permissions.clone())
        .expect("indexer permissions");
    assert!(indexer_perms.publish.contains(&head.to_owned()));
    assert!(
        !indexer_perms
            .publish
            .iter()
            .any(|s| s.contains("Files.Delete"))
    );
    assert!(
        indexer_perms
            .publish
            .contains(&format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{c}"))
    );

    // Revoking a key disconnects its open connections at once (through
    // the system account) and refuses new ones.
    let items_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(raw.clone());
    assert!(items_js.get_key_value(items_bucket.as_str()).await.is_ok());
    stack.client.revoke("items").await.expect("revoke");
    eventually(
        Duration::from_secs(2),
        "the revoked connection to drop",
        || {
            let raw = raw.clone();
            async move {
                (raw.connection_state() != async_nats::connection::State::Connected).then_some(())
            }
        },
    )
    .await;
    assert!(items_js.get_key_value(items_bucket.as_str()).await.is_err());
    assert!(
        items_creds
            .nats_options()
            .connect(url.as_str())
            .await
            .is_err(),
        "a revoked key is refused"
    );
}

/// The reply status of a raw request (`ok` when the header is absent).
fn status_of(reply: &async_nats::Message) -> (String, String) {
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get("Trellis-Status"))
        .map_or("ok".to_owned(), |v| v.as_str().to_owned());
    (status, String::from_utf8_lossy(&reply.payload).into_owned())
}

#[tokio::test]
async fn requests_are_verified_authorized_and_revocable() {
    let mut stack = auth_stack().await;
    let url = stack.server.url();
    accept_ready(
        &stack,
        documents_example::documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let enroll = |kind, id, contract| stack.enroll(kind, id, None, contract);
    let docs_creds = enroll(PrincipalKind::Service, "documents", Some(documents::ID)).await;
    let alice = enroll(PrincipalKind::User, "alice", None).await;
    let bob = enroll(PrincipalKind::User, "bob", None).await;
    let mallory = enroll(PrincipalKind::User, "mallory", None).await;
    stack
        .client
        .grant("alice", &["documents::read", "documents::write"], false)
        .await
        .expect("grant");
    stack
        .client
        .grant("mallory", &["documents::read"], false)
        .await
        .expect("grant");
    let options = ConnectOptions::new(url.clone()).deployment("test");
    let docs = documents_example::documents::Service::connect(
        options.clone().credentials(docs_creds.clone()),
    )
    .await
    .expect("documents service");
    let _server = docs
        .serve(
            documents_example::DocumentsService::new(&docs),
            ServeOptions::default(),
        )
        .await
        .expect("serve");
    let as_user = |creds: &Credentials| {
        documents::Client::connect(options.clone().credentials(creds.clone()))
    };
    let alice_client = as_user(&alice).await.expect("alice");
    let bob_client = as_user(&bob).await.expect("bob");
    let list = documents::ListRequest {
        prefix: None,
        offset: None,
        limit: 10,
    };

    // A capability gate: alice holds documents::read, bob does not.
    upload_document(&alice_client, "a.txt", "hello").await;
    let page = alice_client.rpc.files.list(&list).await.expect("call");
    assert_eq!(page.expect("listed").entries.len(), 1);
    match bob_client.rpc.files.list(&list).await {
        Err(trellis::CallError::Forbidden { message, .. }) => {
            assert!(message.contains("documents::read"), "{message}")
        }
        other => panic!("bob must be forbidden, got {other:?}"),
    }

    // Hand-made requests from mallory (a registered user with read). Her
    // requests go below her key; nats-server lets no one else publish
    // there, and nothing else there is answered.
    let (raw, mut errors) = raw_as(&mallory, &url).await;
    let subject_of =
        |key: &str| trellis::rpc::request_subject("test", key, documents::ID, "rpc.v1.Files.List");
    let mine = subject_of(&mallory.public_key());
    let payload = serde_json::to_vec(&list).expect("json");
    let (status, why) = status_of(
        &raw.request(mine.clone(), payload.clone().into())
            .await
            .expect("reply"),
    );
    assert_eq!(status, "ok", "{why}");
    // Under alice's key: refused by nats-server, and the typed client
    // would report it as `PermissionDenied`.
    let as_alice = subject_of(&alice.public_key());
    let _ = raw.publish(as_alice.clone(), payload.clone().into()).await;
    violation(&mut errors, "publish", &as_alice, WAIT).await;
    // Under her own key with a reply into alice's inbox: the provider
    // answers nothing (it would reply into someone else's inbox). Seen
    // from an operator connection that listens on alice's inbox; the
    // same request with mallory's own inbox is answered, after it.
    let operator = stack.server.client().await.expect("operator");
    let alice_inbox = format!("_INBOX.{}.stolen", alice.public_key());
    let mut spied = operator.subscribe(alice_inbox.clone()).await.expect("sub");
    // A round trip: the server then has the subscription (a flush only
    // writes the socket).
    trellis_runtime::internal::confirm_subscriptions(&operator)
        .await
        .expect("the server has the subscription");
    raw.publish_with_reply(mine.clone(), alice_inbox, payload.clone().into())
        .await
        .expect("publish");
    let (status, _) = status_of(
        &raw.request(mine.clone(), payload.clone().into())
            .await
            .expect("reply"),
    );
    assert_eq!(status, "ok");
    let leaked = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut spied),
    )
    .await;
    assert!(
        leaked.is_err(),
        "the provider replied into alice's inbox: {leaked:?}"
    );
    // A subject that names no caller key (only operators may publish it):
    // refused with the reason.
    let nobody = subject_of(trellis::rpc::NO_CALLER);
    let (status, why) = status_of(
        &operator
            .request(nobody, payload.clone().into())
            .await
            .expect("reply"),
    );
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("names no caller key"), "{why}");
    // Resending her own request runs it again as her: a replay is only
    // possible for the caller itself, which could send it anyway.

    // A receive grant issued to alice is refused for bob.
    let grant = alice_client
        .rpc
        .files
        .download(&documents::FileKey {
            key: "a.txt".into(),
        })
        .await
        .expect("call")
        .expect("grant")
        .grant;
    match bob_client.download(&grant).bytes().await {
        Err(trellis::TransferError::GrantForbidden) => {}
        other => panic!("bob must not redeem alice's grant: {other:?}"),
    }
    let bytes = alice_client.download(&grant).bytes().await.expect("alice");
    assert_eq!(&bytes[..], b"hello");

    // A request seen on the wire cannot be replayed by anyone else, to
    // any provider instance: a second instance serves, an operator
    // captures alice's delete, alice uploads the file again, and mallory
    // sends the captured request (its subject and reply) once more.
    let second = documents_example::documents::Service::connect(
        options.clone().credentials(docs_creds.clone()),
    )
    .await
    .expect("a second documents instance");
    let _second = second
        .serve(
            documents_example::DocumentsService::new(&second),
            ServeOptions::default(),
        )
        .await
        .expect("serve");
    let deletes = trellis::rpc::request_subject("test", "*", documents::ID, "rpc.v1.Files.Delete");
    let mut sniffed = operator.subscribe(deletes).await.expect("sniff");
    trellis_runtime::internal::confirm_subscriptions(&operator)
        .await
        .expect("the server has the subscription");
    let key = documents::FileKey {
        key: "a.txt".into(),
    };
    alice_client
        .rpc
        .files
        .delete(&key)
        .await
        .expect("call")
        .expect("deleted");
    let captured = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut sniffed))
        .await
        .expect("captured")
        .expect("message");
    upload_document(&alice_client, "a.txt", "again!").await;
    for _ in 0..4 {
        raw.publish_with_reply(
            captured.subject.clone(),
            captured.reply.clone().expect("reply"),
            captured.payload.clone(),
        )
        .await
        .expect("publish");
        violation(&mut errors, "publish", &captured.subject, WAIT).await;
    }
    let head = alice_client.rpc.files.head(&key).await.expect("call");
    assert_eq!(head.expect("still there").size, 6, "the delete ran twice");

    // Two authority instances from here on: the capability removal may be
    // handled by either, the revocation by the second alone (the first is
    // stopped before it).
    let second_authority = trellis_authority::Authority::start(
        stack.server.client().await.expect("client"),
        stack.config.clone(),
    )
    .await
    .expect("second authority");

    // Taking a capability away takes effect within the bound, on the
    // running connection.
    stack
        .client
        .grant("alice", &["documents::read"], true)
        .await
        .expect("remove read");
    let started = std::time::Instant::now();
    loop {
        match alice_client.rpc.files.list(&list).await {
            Err(trellis::CallError::Forbidden { .. }) => break,
            Ok(_) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            started.elapsed() < trellis::REVOCATION_BOUND,
            "still allowed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.stop_authority().await;
    // Revoking the key drops alice's live connection (the authority kicks
    // it) and providers refuse her key within the bound even on requests
    // that still reach them (here sent by an operator below her key, with
    // a reply below her inbox).
    stack.client.revoke("alice").await.expect("revoke");
    let started = std::time::Instant::now();
    let mut replies = operator
        .subscribe(format!("_INBOX.{}.revoked", alice.public_key()))
        .await
        .expect("sub");
    loop {
        operator
            .publish_with_reply(
                as_alice.clone(),
                format!("_INBOX.{}.revoked", alice.public_key()),
                payload.clone().into(),
            )
            .await
            .expect("publish");
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            futures::StreamExt::next(&mut replies),
        )
        .await
        .expect("answered")
        .expect("reply");
        let (status, why) = status_of(&reply);
        if status == "unauthenticated" && why.contains("revoked") {
            break;
        }
        assert!(
            started.elapsed() < trellis::REVOCATION_BOUND,
            "still accepted: {status} {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = documents::FileKey {
        key: "a.txt".into(),
    };
    assert!(
        alice_client.rpc.files.head(&key).await.is_err(),
        "the revoked connection no longer gets answers"
    );
    second_authority.shutdown().await;
}
