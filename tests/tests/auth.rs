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
    // An RPC the indexer did not select in `uses`.
    let delete = "trellis.test.documents@v1.rpc.v1.Files.Delete";
    let _ = raw.publish(delete, "{}".into()).await;
    violation(&mut errors, "publish", delete, WAIT).await;
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
    let head = "trellis.test.documents@v1.rpc.v1.Files.Head";
    let reply = raw.request(head, "{}".into()).await;
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
    let stack = auth_stack().await;
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
    let docs =
        documents_example::documents::Service::connect(options.clone().credentials(docs_creds))
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

    // Hand-made requests from mallory (a registered user with read).
    let (raw, _errors) = raw_as(&mallory, &url).await;
    let subject = "trellis.test.documents@v1.rpc.v1.Files.List";
    let payload = serde_json::to_vec(&list).expect("json");
    let signer = mallory.signer().expect("signer");
    let send = |headers: async_nats::HeaderMap, body: Vec<u8>| {
        let raw = raw.clone();
        async move {
            let reply = raw
                .request_with_headers(subject, headers, body.into())
                .await
                .expect("reply");
            status_of(&reply)
        }
    };
    let headers_of = |proof: &trellis_runtime::identity::Proof| {
        let mut h = async_nats::HeaderMap::new();
        proof.write(&mut h);
        h
    };
    // Valid, then replayed.
    let proof = signer.prove(subject, &payload);
    assert_eq!(send(headers_of(&proof), payload.clone()).await.0, "ok");
    let (status, why) = send(headers_of(&proof), payload.clone()).await;
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("already used"), "{why}");
    // No proof at all.
    let (status, why) = send(async_nats::HeaderMap::new(), payload.clone()).await;
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("no caller proof"), "{why}");
    // Forged: mallory's signature presented as alice's key.
    let mut forged = signer.prove(subject, &payload);
    forged.key = alice.public_key();
    let (status, why) = send(headers_of(&forged), payload.clone()).await;
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("does not verify"), "{why}");
    // Stale: issued two minutes ago (window 30 s).
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
        - 120_000;
    let stale = signer.prove_at(subject, &payload, old, "stale-1");
    let (status, why) = send(headers_of(&stale), payload.clone()).await;
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("issued"), "{why}");
    // Wrong payload hash: signed one body, sent another.
    let other = signer.prove(subject, b"{\"limit\":1}");
    let (status, why) = send(headers_of(&other), payload.clone()).await;
    assert_eq!(status, "unauthenticated");
    assert!(why.contains("signed digest"), "{why}");

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
    // Revoking the key drops alice's live connection (the authority kicks
    // it) and providers refuse her key within the bound even on requests
    // that still reach them (here relayed over mallory's connection).
    let alice_signer = alice.signer().expect("signer");
    stack.client.revoke("alice").await.expect("revoke");
    let started = std::time::Instant::now();
    loop {
        let proof = alice_signer.prove(subject, &payload);
        let (status, why) = send(headers_of(&proof), payload.clone()).await;
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
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Settings {
    theme: String,
    font_size: u32,
}

#[tokio::test]
async fn public_state_is_namespaced_by_user_contract_name_and_store_and_migrates() {
    use trellis_runtime::state::{StateClient, StateClientError, StateError, Writer};
    let stack = auth_stack().await;
    let url = stack.server.url();
    let device =
        |id, user, contract| stack.enroll(PrincipalKind::Device, id, Some(user), Some(contract));
    let phone = device("alice-phone", "alice", "notes@v1").await;
    let laptop = device("alice-laptop", "alice", "notes@v1").await;
    let tablet = device("alice-tablet", "alice", "notes@v2").await;
    let bob = device("bob-phone", "bob", "notes@v1").await;
    let other_app = device("alice-chat", "alice", "chat@v1").await;
    let connect = |creds: &Credentials| {
        StateClient::connect(
            ConnectOptions::new(url.clone())
                .deployment("test")
                .credentials(creds.clone()),
        )
    };
    let phone = connect(&phone).await.expect("phone");
    let laptop = connect(&laptop).await.expect("laptop");
    let tablet = connect(&tablet).await.expect("tablet");
    let bob = connect(&bob).await.expect("bob");
    let other_app = connect(&other_app).await.expect("chat app");

    // notes@v1 stored the theme as a bare string.
    let v1 = phone.store::<String>("settings");
    let rev = v1.put("ui", &"dark".to_owned()).await.expect("put");
    assert!(rev > 0);

    // Two devices of one user share the namespace (same contract name).
    let seen = laptop
        .store::<String>("settings")
        .get("ui")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(seen.value, "dark");
    assert!(!seen.migrated);
    assert_eq!(seen.writer.contract.as_deref(), Some("notes@v1"));

    // Another user, another app of the same user, or another store: empty.
    assert_eq!(
        bob.store::<String>("settings")
            .get("ui")
            .await
            .expect("bob"),
        None
    );
    assert_eq!(
        other_app
            .store::<String>("settings")
            .get("ui")
            .await
            .expect("chat"),
        None
    );
    assert_eq!(
        phone
            .store::<String>("drafts")
            .get("ui")
            .await
            .expect("drafts"),
        None
    );
    bob.store::<String>("settings")
        .put("ui", &"light".to_owned())
        .await
        .expect("bob writes his own");
    assert_eq!(
        v1.get("ui").await.expect("get").expect("present").value,
        "dark",
        "bob's write does not touch alice's namespace"
    );

    // notes@v2 reads the v1 entry with its provenance and migrates it.
    let v2 =
        tablet
            .store::<Settings>("settings")
            .migrate(|writer: &Writer, old: serde_json::Value| {
                if writer.contract.as_deref() != Some("notes@v1") {
                    return Err(format!("unknown writer {writer:?}"));
                }
                Ok(Settings {
                    theme: old.as_str().ok_or("not a string")?.to_owned(),
                    font_size: 12,
                })
            });
    let migrated = v2.get("ui").await.expect("get").expect("present");
    assert!(migrated.migrated);
    assert_eq!(migrated.writer.contract.as_deref(), Some("notes@v1"));
    assert_eq!(
        migrated.value,
        Settings {
            theme: "dark".into(),
            font_size: 12
        }
    );
    // Writing it back records the new version; no migration on re-read.
    v2.put_if("ui", &migrated.value, migrated.revision)
        .await
        .expect("compare-and-set");
    let fresh = v2.get("ui").await.expect("get").expect("present");
    assert!(!fresh.migrated);
    assert_eq!(fresh.writer.contract.as_deref(), Some("notes@v2"));
    // A stale revision is a typed conflict.
    match v2.put_if("ui", &fresh.value, migrated.revision).await {
        Err(StateClientError::Refused(StateError::Conflict { current, .. })) => {
            assert_eq!(current, fresh.revision)
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Only-if-absent refuses an existing key.
    assert!(matches!(
        v2.put_if("ui", &fresh.value, 0).await,
        Err(StateClientError::Refused(StateError::Conflict { .. }))
    ));

    // Listing: prefix, offset and limit, in key order.
    let notes = phone.store::<String>("notes");
    for key in ["b/2", "a/1", "b/1", "c/1", "b/3"] {
        notes.put(key, &key.to_owned()).await.expect("put");
    }
    let page = notes.list(Some("b/"), 0, 2).await.expect("list");
    let keys: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["b/1", "b/2"]);
    assert_eq!((page.total, page.next_offset), (3, Some(2)));
    let page = notes.list(Some("b/"), 2, 2).await.expect("list");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.next_offset, None);
    assert_eq!(
        bob.store::<String>("notes")
            .list(None, 0, 10)
            .await
            .expect("bob")
            .total,
        0
    );
    assert!(notes.delete("a/1").await.expect("delete"));
    assert!(!notes.delete("a/1").await.expect("again"));
    // Bad input is a typed error and the service keeps serving.
    assert!(matches!(
        phone.store::<String>("Bad Store").get("x").await,
        Err(StateClientError::Refused(StateError::Invalid { .. }))
    ));
    assert!(matches!(
        notes.put(&"k".repeat(300), &"x".to_owned()).await,
        Err(StateClientError::Refused(StateError::Invalid { .. }))
    ));
    assert_eq!(
        notes.list(None, 0, 10).await.expect("still serving").total,
        4
    );
}
