//! Typed RPCs against a real nats-server: declared errors vs call errors,
//! malformed requests, bounded concurrency and graceful shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use documents_example::documents::{self, FileInfo, FileKey, FilePage, FilesError, ListRequest};
use trellis::{CallError, ConnectOptions, ServeOptions};

#[derive(Clone, Default)]
struct Files {
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay: Duration,
}

fn file(key: &str) -> FileInfo {
    FileInfo {
        key: key.into(),
        size: 3,
        content_type: None,
        digest: "d".into(),
    }
}

impl documents::Handlers for Files {
    async fn files_list(&self, input: ListRequest) -> Result<FilePage, FilesError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let files = (0..input.limit)
            .map(|i| file(&format!("{}{i}", input.prefix)))
            .collect();
        Ok(FilePage {
            files,
            next_offset: None,
        })
    }

    async fn files_stat(&self, input: FileKey) -> Result<FileInfo, FilesError> {
        if input.key == "a.txt" {
            Ok(file("a.txt"))
        } else {
            Err(FilesError::NotFound { key: input.key })
        }
    }

    async fn files_download(&self, input: FileKey) -> Result<documents::DownloadGrant, FilesError> {
        Err(FilesError::NotFound { key: input.key })
    }

    async fn files_delete(&self, input: FileKey) -> Result<FileInfo, FilesError> {
        Err(FilesError::InvalidKey {
            key: input.key,
            reason: "read-only".into(),
        })
    }
}

async fn setup(stack: &Stack) -> (documents::Service, documents::Client) {
    stack
        .client
        .accept(documents::MANIFEST_JSON, false)
        .await
        .expect("accept documents");
    let options = ConnectOptions::new(stack.server.url()).deployment("test");
    let service = documents::Service::connect(options.clone())
        .await
        .expect("service connects");
    let client = documents::Client::connect(options)
        .await
        .expect("client connects");
    (service, client)
}

fn list(limit: u32) -> ListRequest {
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
        .stat(&FileKey {
            key: "a.txt".into(),
        })
        .await
    {
        Err(CallError::NoResponders { rpc }) => assert_eq!(rpc, "Files.Stat"),
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
    assert_eq!(page.files.len(), 2);
    let info = client
        .rpc
        .files
        .stat(&FileKey {
            key: "a.txt".into(),
        })
        .await
        .expect("call")
        .expect("ok");
    assert_eq!(info.key, "a.txt");
    match client.rpc.files.stat(&FileKey { key: "nope".into() }).await {
        Ok(Err(FilesError::NotFound { key })) => assert_eq!(key, "nope"),
        other => panic!("expected the declared NotFound error, got {other:?}"),
    }

    // A malformed request gets a typed bad-request reply; serving continues.
    let nats = stack.server.client().await.expect("client");
    let subject = trellis::rpc::surface_subject("test", documents::ID, "rpc.v1.Files.List");
    let reply = nats
        .request(subject, "{not json".into())
        .await
        .expect("reply");
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(trellis::rpc::STATUS_HEADER))
        .map(|v| v.as_str().to_owned());
    assert_eq!(status.as_deref(), Some("bad-request"));
    assert!(String::from_utf8_lossy(&reply.payload).contains("does not decode"));
    let reply = nats
        .request(
            trellis::rpc::surface_subject("test", documents::ID, "rpc.v1.Files.List"),
            r#"{"limit":"x"}"#.into(),
        )
        .await
        .expect("reply");
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
