//! A peer built only from the documents service's emitted JSON (the
//! `indexer-example` crate, whose `documents` module build.rs generates):
//! its generated client uploads, lists, downloads and listens to events
//! against the real documents service, and its `uses` facade and durable
//! consumer group keep the index current.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use indexer_example::{documents, index_key, indexer};
use trellis::ServeOptions;

#[tokio::test]
async fn a_peer_generated_from_json_uploads_lists_listens_and_indexes() {
    let stack = stack().await;
    // The generated module is the same contract as the owner's crate.
    assert_eq!(documents::DIGEST, documents_example::documents::DIGEST);
    assert_eq!(
        documents::MANIFEST_JSON,
        documents_example::documents::MANIFEST_JSON
    );
    accept_ready(
        &stack,
        documents_example::documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    accept_ready(&stack, indexer::MANIFEST_JSON, indexer::ID, indexer::DIGEST).await;
    // The documents service (the owner's crate).
    let docs = documents_example::documents::Service::connect(stack.service(documents::ID).await)
        .await
        .expect("documents service");
    let _server = docs
        .serve(
            documents_example::DocumentsService::new(&docs),
            ServeOptions::default(),
        )
        .await
        .expect("serve");

    // A document stored before the indexer runs (replay = "all").
    let peer = documents::Client::connect(
        stack
            .user("peer", &["documents::read", "documents::write"])
            .await,
    )
    .await
    .expect("peer client");
    let mut live = peer
        .events
        .documents
        .created
        .listen()
        .await
        .expect("listen");
    upload_document(&peer, "early.txt", "first").await;
    let event = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("decodes");
    assert_eq!(event.event.key, "early.txt");

    // The indexer's service principal calls Files.Head (gated by read).
    let indexer_options = stack.service(indexer::ID).await;
    stack
        .client
        .grant("indexer-v1", &["documents::read"], false)
        .await
        .expect("grant the indexer read");
    let service = Arc::new(
        indexer::Service::connect(indexer_options)
            .await
            .expect("indexer service"),
    );
    let task = indexer_example::run(service.clone(), |_| {})
        .await
        .expect("run");
    upload_document(&peer, "reports/q3.pdf", "%PDF-1.7").await;

    for (key, size) in [("early.txt", 5), ("reports/q3.pdf", 8)] {
        let entry = eventually(Duration::from_secs(20), "indexed", || {
            let service = service.clone();
            async move { service.kv.index.get(&index_key(key)).await.expect("get") }
        })
        .await;
        assert_eq!(entry.value.key, key);
        assert_eq!(entry.value.size, size);
        assert!(
            entry.value.digest.starts_with("SHA-256="),
            "{}",
            entry.value.digest
        );
    }
    task.shutdown().await;

    // List and download through the generated client.
    let page = peer
        .rpc
        .files
        .list(&documents::ListRequest {
            prefix: None,
            offset: None,
            limit: 10,
        })
        .await
        .expect("call")
        .expect("list");
    let keys: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["early.txt", "reports/q3.pdf"]);
    let grant = peer
        .rpc
        .files
        .download(&documents::FileKey {
            key: "reports/q3.pdf".into(),
        })
        .await
        .expect("call")
        .expect("grant")
        .grant;
    let bytes = peer.download(&grant).bytes().await.expect("download");
    assert_eq!(&bytes[..], b"%PDF-1.7");
}
