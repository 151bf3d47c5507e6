//! Typed RPCs against a real nats-server: declared errors vs call errors,
//! malformed requests, bounded concurrency and graceful shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use documents_example::documents::{
    self, FileEntry, FileKey, FilesError, ListRequest, ListResponse, UploadInput, UploadOutput,
    UploadProgress,
};
use trellis::{CallError, Grants, OperationContext, OperationFailure, ServeOptions};

#[derive(Clone, Default)]
struct Files {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay: Duration,
}

fn file(key: &str) -> FileEntry {
    FileEntry {
        key: key.into(),
        size: 3,
        content_type: None,
        digest: "d".into(),
        metadata: Default::default(),
        modified_ms: 0,
    }
}

impl documents::Handlers for Files {
    async fn files_list(&self, input: ListRequest) -> Result<ListResponse, FilesError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let entries = (0..input.limit)
            .map(|i| file(&format!("{}{i}", input.prefix)))
            .collect();
        Ok(ListResponse {
            entries,
            count: input.limit,
            offset: 0,
            limit: input.limit,
            next_offset: None,
        })
    }

    async fn files_head(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        if input.key == "a.txt" {
            Ok(file("a.txt"))
        } else {
            Err(FilesError::NotFound { key: input.key })
        }
    }

    async fn files_download(
        &self,
        input: FileKey,
        _grants: Grants,
    ) -> Result<documents::DownloadResponse, FilesError> {
        Err(FilesError::NotFound { key: input.key })
    }

    async fn files_delete(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        Err(FilesError::InvalidKey {
            key: input.key,
            reason: "read-only".into(),
        })
    }

    async fn files_upload(
        &self,
        _op: OperationContext<UploadProgress>,
        _input: UploadInput,
    ) -> Result<UploadOutput, OperationFailure> {
        Err(OperationFailure::failed("read-only"))
    }
}

async fn setup(stack: &Stack) -> (documents::Service, documents::Client) {
    stack
        .client
        .accept(documents::MANIFEST_JSON, false)
        .await
        .expect("accept documents");
    let service = documents::Service::connect(stack.service(documents::ID).await)
        .await
        .expect("service connects");
    let client = documents::Client::connect(
        stack
            .user("caller", &["documents::read", "documents::write"])
            .await,
    )
    .await
    .expect("client connects");
    (service, client)
}

fn list(limit: u64) -> ListRequest {
    ListRequest {
        prefix: "k".into(),
        offset: 0,
        limit,
    }
}

#[tokio::test]
async fn typed_calls_declared_errors_and_malformed_requests() {
    let stack = stack().await;
    let (service, client) = setup(&stack).await;

    match client
        .rpc
        .files
        .head(&FileKey {
            key: "a.txt".into(),
        })
        .await
    {
        Err(CallError::NoResponders { rpc }) => assert_eq!(rpc, "Files.Head"),
        other => panic!("expected NoResponders before serving, got {other:?}"),
    }

    let server = service
        .serve(Files::default(), ServeOptions::default())
        .await
        .expect("serve");
    let page = client
        .rpc
        .files
        .list(&list(2))
        .await
        .expect("call")
        .expect("ok");
    assert_eq!(page.entries.len(), 2);
    let info = client
        .rpc
        .files
        .head(&FileKey {
            key: "a.txt".into(),
        })
        .await
        .expect("call")
        .expect("ok");
    assert_eq!(info.key, "a.txt");
    match client.rpc.files.head(&FileKey { key: "nope".into() }).await {
        Ok(Err(FilesError::NotFound { key })) => assert_eq!(key, "nope"),
        other => panic!("expected the declared NotFound error, got {other:?}"),
    }

    // A malformed request gets a typed bad-request reply; serving continues.
    let (nats, caller) = stack.raw_user("raw", &["documents::read"]).await;
    let subject = caller.subject(documents::ID, "rpc.v1.Files.List");
    let reply = raw_request(&nats, subject.clone(), "{not json".into()).await;
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(trellis::rpc::STATUS_HEADER))
        .map(|v| v.as_str().to_owned());
    assert_eq!(status.as_deref(), Some("bad-request"));
    assert!(String::from_utf8_lossy(&reply.payload).contains("does not decode"));
    let reply = raw_request(&nats, subject, r#"{"limit":"x"}"#.into()).await;
    assert_eq!(
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get(trellis::rpc::STATUS_HEADER))
            .map(|v| v.as_str()),
        Some("bad-request")
    );
    assert!(
        client
            .rpc
            .files
            .list(&list(1))
            .await
            .expect("still serving")
            .is_ok()
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn concurrency_is_bounded_and_shutdown_drains() {
    let stack = stack().await;
    let (service, client) = setup(&stack).await;
    let files = Files {
        delay: Duration::from_millis(200),
        ..Files::default()
    };
    let server = service
        .serve(files.clone(), ServeOptions::default().concurrency(2))
        .await
        .expect("serve");
    let calls = (0..6).map(|_| {
        let client = client.clone();
        async move { client.rpc.files.list(&list(1)).await }
    });
    for result in futures::future::join_all(calls).await {
        assert!(result.expect("call").is_ok());
    }
    assert_eq!(
        files.max_in_flight.load(Ordering::SeqCst),
        2,
        "bounded at 2"
    );

    // Shutdown waits for the in-flight call, which still gets its reply.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.rpc.files.list(&list(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(server.shutdown(Duration::from_secs(5)).await, "drained");
    assert!(
        slow.await
            .expect("join")
            .expect("in-flight call answered")
            .is_ok()
    );
    match client.rpc.files.list(&list(1)).await {
        Err(CallError::NoResponders { .. }) => {}
        other => panic!("expected NoResponders after shutdown, got {other:?}"),
    }
}

#[tokio::test]
async fn ten_thousand_requests_at_64_in_flight() {
    use futures::StreamExt as _;
    let stack = stack().await;
    let (service, client) = setup(&stack).await;
    let server = service
        .serve(Files::default(), ServeOptions::default())
        .await
        .expect("serve");
    let results: Vec<_> = futures::stream::iter(0..10_000)
        .map(|i| {
            let client = client.clone();
            async move {
                let key = if i % 2 == 0 {
                    "a.txt".to_owned()
                } else {
                    format!("missing-{i}")
                };
                (i, client.rpc.files.head(&FileKey { key }).await)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(results.len(), 10_000);
    for (i, result) in results {
        match result {
            Ok(Ok(entry)) => assert!(i % 2 == 0 && entry.key == "a.txt"),
            Ok(Err(FilesError::NotFound { key })) => assert_eq!(key, format!("missing-{i}")),
            other => panic!("request {i} failed: {other:?}"),
        }
    }
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
