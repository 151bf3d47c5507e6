//! Object store tests against a real nats-server.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::object_store::ObjectMetadata;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use trellis_testing::NatsServer;

use super::*;
use crate::protocol::StoreBinding;

const STREAM: &str = "OBJ_uploads";

struct Fixture {
    _server: NatsServer,
    js: jetstream::Context,
    store: Store,
}

fn binding(max_total_bytes: Option<u64>, ttl_ms: u64) -> StoreBinding {
    StoreBinding {
        bucket: "uploads".into(),
        ttl_ms,
        max_total_bytes,
    }
}

async fn fixture_with(binding: StoreBinding) -> Fixture {
    let server = NatsServer::start().await.expect("nats-server starts");
    let client = server.client().await.expect("client connects");
    let js = jetstream::new(client);
    crate::layout::create_store_for_test(&js, &binding).await;
    let store = StoreHandle::new(js.clone(), binding)
        .open()
        .await
        .expect("store opens");
    Fixture {
        _server: server,
        js,
        store,
    }
}

async fn fixture(max_total_bytes: Option<u64>) -> Fixture {
    fixture_with(binding(max_total_bytes, 0)).await
}

/// (bytes, messages, consumers) of the store's stream.
async fn stream_state(js: &jetstream::Context) -> (u64, u64, usize) {
    let info = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info");
    (
        info.state.bytes,
        info.state.messages,
        info.state.consumer_count,
    )
}

/// Deterministic, incompressible-looking test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u8
        })
        .collect()
}

fn nats_digest(data: &[u8]) -> String {
    format::digest_string(&Sha256::digest(data))
}

async fn content(store: &Store, key: &str) -> Option<Vec<u8>> {
    let object = store.get(key).await.expect("get")?;
    Some(object.bytes().await.expect("read").to_vec())
}

/// A reader that fails after yielding `ok` bytes.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(Err(io::Error::other("disk on fire")));
        }
        let n = buf.remaining().min(self.data.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn bytes_round_trip_with_content_type_and_metadata() {
    let f = fixture(None).await;
    let options = PutOptions::new()
        .content_type("text/plain")
        .metadata("owner", "alice")
        .metadata("purpose", "test");
    let written = f
        .store
        .put("notes/hello.txt", b"hello world", options)
        .await
        .expect("put");
    assert_eq!(written.key, "notes/hello.txt");
    assert_eq!(written.size, 11);
    assert_eq!(written.digest, nats_digest(b"hello world"));
    assert!(written.digest.starts_with("SHA-256="));

    let object = f
        .store
        .get("notes/hello.txt")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(object.info(), &written);
    assert_eq!(object.info().content_type.as_deref(), Some("text/plain"));
    assert_eq!(object.info().metadata["owner"], "alice");
    assert_eq!(object.info().metadata.len(), 2);
    assert_eq!(object.bytes().await.expect("read"), &b"hello world"[..]);

    let info = f.store.info("notes/hello.txt").await.expect("info");
    assert_eq!(info, Some(written));
    assert!(f.store.get("missing").await.expect("get").is_none());
    assert!(f.store.info("missing").await.expect("info").is_none());
}

#[tokio::test]
async fn multi_chunk_reader_round_trip_verifies_digest() {
    let f = fixture(None).await;
    let payload = data(3 * 1024 * 1024 + 17, 1);
    let written = f
        .store
        .put(
            "big.bin",
            Body::from_reader(&payload[..]),
            PutOptions::new().content_type("application/octet-stream"),
        )
        .await
        .expect("put");
    assert_eq!(written.size, payload.len() as u64);
    assert_eq!(written.digest, nats_digest(&payload));
    let (_, messages, _) = stream_state(&f.js).await;
    assert_eq!(messages, 25 + 1, "25 chunks of 128 KiB and one record");

    // AsyncRead, with a small buffer.
    let mut object = f.store.get("big.bin").await.expect("get").expect("exists");
    let mut read = Vec::new();
    let mut buf = [0u8; 10_000];
    loop {
        let n = object.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        read.extend_from_slice(&buf[..n]);
    }
    assert_eq!(read.len(), payload.len());
    assert!(read == payload);

    // Stream of chunks.
    let mut object = f.store.get("big.bin").await.expect("get").expect("exists");
    let mut hasher = Sha256::new();
    let mut chunks = 0;
    while let Some(chunk) = object.next().await {
        let chunk = chunk.expect("chunk");
        assert!(chunk.len() <= write::CHUNK_SIZE);
        hasher.update(&chunk);
        chunks += 1;
    }
    assert_eq!(chunks, 25);
    assert_eq!(format::digest_string(&hasher.finalize()), written.digest);

    // Whole.
    let object = f.store.get("big.bin").await.expect("get").expect("exists");
    assert!(object.bytes().await.expect("bytes") == payload);

    // No consumer was created by any read.
    assert_eq!(stream_state(&f.js).await.2, 0);
}

#[tokio::test]
async fn stream_and_empty_bodies_round_trip() {
    let f = fixture(None).await;
    let payload = data(400_000, 2);
    let items: Vec<io::Result<Bytes>> = payload
        .chunks(50_001)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let written = f
        .store
        .put(
            "streamed",
            Body::from_stream(futures::stream::iter(items)),
            PutOptions::new(),
        )
        .await
        .expect("put");
    assert_eq!(written.size, 400_000);
    assert_eq!(content(&f.store, "streamed").await, Some(payload));

    let empty = f
        .store
        .put("empty", Body::empty(), PutOptions::new())
        .await
        .expect("put empty");
    assert_eq!(empty.size, 0);
    assert_eq!(empty.digest, nats_digest(b""));
    assert_eq!(content(&f.store, "empty").await, Some(Vec::new()));
}

#[tokio::test]
async fn create_refuses_existing_objects() {
    let f = fixture(None).await;
    f.store
        .create("doc", b"one", PutOptions::new())
        .await
        .expect("first create");
    let (bytes, messages, _) = stream_state(&f.js).await;
    let err = f
        .store
        .create("doc", b"two", PutOptions::new())
        .await
        .expect_err("second create");
    assert!(
        matches!(&err, StoreError::AlreadyExists { key } if key == "doc"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "object `doc` already exists");
    assert_eq!(content(&f.store, "doc").await.as_deref(), Some(&b"one"[..]));
    assert_eq!(stream_state(&f.js).await.0, bytes);
    assert_eq!(stream_state(&f.js).await.1, messages);

    assert!(f.store.delete("doc").await.expect("delete"));
    f.store
        .create("doc", b"three", PutOptions::new())
        .await
        .expect("create after delete");
    assert_eq!(
        content(&f.store, "doc").await.as_deref(),
        Some(&b"three"[..])
    );
}

#[tokio::test]
async fn concurrent_creates_have_one_winner() {
    let f = fixture(None).await;
    let tasks: Vec<_> = (0..6u64)
        .map(|i| {
            let store = f.store.clone();
            tokio::spawn(async move {
                store
                    .create("race", data(200_000, i), PutOptions::new())
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => winners += 1,
            Err(StoreError::AlreadyExists { .. }) => {}
            Err(err) => panic!("unexpected error: {err:?}"),
        }
    }
    assert_eq!(winners, 1);
    let (_, messages, _) = stream_state(&f.js).await;
    assert_eq!(
        messages,
        2 + 1,
        "only the winner's 2 chunks and record remain"
    );
    assert_eq!(
        content(&f.store, "race").await.map(|c| c.len()),
        Some(200_000)
    );
}

#[tokio::test]
async fn put_overwrites_and_purges_the_old_content() {
    let f = fixture(None).await;
    f.store
        .put(
            "doc",
            data(300_000, 1),
            PutOptions::new().metadata("v", "1"),
        )
        .await
        .expect("put v1");
    let v2 = data(200_000, 2);
    let written = f
        .store
        .put("doc", &v2, PutOptions::new().metadata("v", "2"))
        .await
        .expect("put v2");
    assert_eq!(written.metadata["v"], "2");
    let object = f.store.get("doc").await.expect("get").expect("exists");
    assert_eq!(object.info().metadata["v"], "2");
    assert!(object.bytes().await.expect("read") == v2);
    let (_, messages, _) = stream_state(&f.js).await;
    assert_eq!(messages, 2 + 1, "v1's chunks are gone");
}

#[tokio::test]
async fn delete_removes_object_and_content() {
    let f = fixture(None).await;
    f.store
        .put("doc", data(300_000, 1), PutOptions::new())
        .await
        .expect("put");
    assert!(f.store.delete("doc").await.expect("delete"));
    assert!(f.store.get("doc").await.expect("get").is_none());
    assert!(f.store.info("doc").await.expect("info").is_none());
    assert!(!f.store.delete("doc").await.expect("second delete"));
    assert!(!f.store.delete("never").await.expect("delete missing"));
    let (bytes, messages, _) = stream_state(&f.js).await;
    assert_eq!((bytes, messages), (0, 0), "nothing remains");
    let page = f.store.list(ListOptions::new(10)).await.expect("list");
    assert_eq!(page.count, 0);
}

#[tokio::test]
async fn list_pages_by_prefix() {
    let f = fixture(None).await;
    for key in ["a/5", "a/1", "b/1", "a/3", "a/2", "a/4", "ab"] {
        f.store
            .put(key, key.as_bytes(), PutOptions::new())
            .await
            .expect("put");
    }
    assert!(f.store.delete("a/3").await.expect("delete"));

    let page = f
        .store
        .list(ListOptions::new(2).prefix("a/"))
        .await
        .expect("list");
    let keys: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(
        (page.count, page.offset, page.limit, page.next_offset),
        (4, 0, 2, Some(2))
    );
    assert_eq!(page.entries[0].size, 3);

    let page = f
        .store
        .list(ListOptions::new(2).prefix("a/").offset(2))
        .await
        .expect("list");
    let keys: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a/4", "a/5"]);
    assert_eq!((page.count, page.next_offset), (4, None));

    let page = f
        .store
        .list(ListOptions::new(1000).offset(10))
        .await
        .expect("list");
    assert!(page.entries.is_empty());
    assert_eq!((page.count, page.next_offset), (6, None));

    let all = f.store.list(ListOptions::new(1000)).await.expect("list");
    let keys: Vec<&str> = all.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["a/1", "a/2", "a/4", "a/5", "ab", "b/1"]);

    for limit in [0, MAX_LIST_LIMIT + 1] {
        let err = f
            .store
            .list(ListOptions::new(limit))
            .await
            .expect_err("invalid limit");
        assert!(
            matches!(err, StoreError::InvalidLimit { limit: l } if l == limit),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn list_handles_more_keys_than_one_batch() {
    let f = fixture(None).await;
    let store = f.store.clone();
    futures::stream::iter(0..1100)
        .map(|i| {
            let store = store.clone();
            async move {
                store
                    .put(&format!("k{i:05}"), b"x", PutOptions::new())
                    .await
                    .expect("put")
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let page = f
        .store
        .list(ListOptions::new(1000).offset(1050))
        .await
        .expect("list");
    assert_eq!(page.count, 1100);
    assert_eq!(page.entries.len(), 50);
    assert_eq!(page.entries[0].key, "k01050");
    assert_eq!(f.store.status().await.expect("status").objects, 1100);
}

#[tokio::test]
async fn status_reports_server_limits_and_usage() {
    let f = fixture_with(binding(Some(5_000_000), 3_600_000)).await;
    let empty = f.store.status().await.expect("status");
    assert_eq!(empty.ttl_ms, 3_600_000);
    assert_eq!(empty.max_total_bytes, Some(5_000_000));
    assert_eq!((empty.used_bytes, empty.objects), (0, 0));

    f.store
        .put("a", data(200_000, 1), PutOptions::new())
        .await
        .expect("put");
    f.store
        .put("b", b"b", PutOptions::new())
        .await
        .expect("put");
    let status = f.store.status().await.expect("status");
    assert_eq!(status.objects, 2);
    assert_eq!(status.used_bytes, stream_state(&f.js).await.0);
    assert!(status.used_bytes > 200_000);

    // The server's configuration wins over the binding the handle holds.
    let mut config =
        f.js.get_stream(STREAM)
            .await
            .expect("stream")
            .get_info()
            .await
            .expect("info")
            .config;
    config.max_bytes = 8_000_000;
    config.max_age = Duration::from_secs(7200);
    f.js.update_stream(&config).await.expect("update");
    let status = f.store.status().await.expect("status");
    assert_eq!(status.max_total_bytes, Some(8_000_000));
    assert_eq!(status.ttl_ms, 7_200_000);
}

#[tokio::test]
async fn wait_for_returns_when_the_object_appears() {
    let f = fixture(None).await;
    let writer = f.store.clone();
    let started = Instant::now();
    let put = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer
            .put("later", b"here", PutOptions::new())
            .await
            .expect("put")
    });
    let info = f
        .store
        .wait_for("later", Duration::from_secs(10))
        .await
        .expect("appears");
    let waited = started.elapsed();
    assert_eq!(info.key, "later");
    assert_eq!(info, put.await.expect("task"));
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Woken by the write, not by the one-second safety re-check.
    eprintln!("wait_for returned after {waited:?}");
    assert!(waited < Duration::from_millis(950), "{waited:?}");

    // Already there: immediate.
    let info = f
        .store
        .wait_for("later", Duration::from_millis(1))
        .await
        .expect("exists");
    assert_eq!(info.size, 4);
}

#[tokio::test]
async fn wait_for_times_out() {
    let f = fixture(None).await;
    // A deleted object does not count.
    f.store
        .put("gone", b"x", PutOptions::new())
        .await
        .expect("put");
    f.store.delete("gone").await.expect("delete");
    let started = Instant::now();
    let err = f
        .store
        .wait_for("gone", Duration::from_millis(400))
        .await
        .expect_err("times out");
    assert!(
        matches!(&err, StoreError::Timeout { key, waited } if key == "gone" && *waited == Duration::from_millis(400)),
        "{err:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn invalid_keys_fail_before_any_io() {
    let f = fixture(None).await;
    let long = "k".repeat(MAX_KEY_LEN + 1);
    for key in ["", ".dot", "dot.", "line\nbreak", "nul\0", long.as_str()] {
        let invalid = |result: Result<(), StoreError>| {
            assert!(
                matches!(&result, Err(StoreError::InvalidKey { key: k, .. }) if k == key),
                "{key:?}: {result:?}"
            );
        };
        invalid(f.store.put(key, b"x", PutOptions::new()).await.map(drop));
        invalid(
            f.store
                .create(key, Body::from_reader(&b"x"[..]), PutOptions::new())
                .await
                .map(drop),
        );
        invalid(f.store.get(key).await.map(drop));
        invalid(f.store.info(key).await.map(drop));
        invalid(f.store.delete(key).await.map(drop));
        invalid(
            f.store
                .wait_for(key, Duration::from_millis(1))
                .await
                .map(drop),
        );
    }
    assert_eq!(stream_state(&f.js).await.1, 0);
    // Dots, slashes, spaces and non-ASCII are fine.
    for key in [
        "a.b",
        "dir/sub/file.tar.gz",
        "with space",
        "ünïcødé",
        "=+&%",
    ] {
        f.store
            .put(key, key.as_bytes(), PutOptions::new())
            .await
            .expect(key);
        assert_eq!(
            content(&f.store, key).await.as_deref(),
            Some(key.as_bytes())
        );
    }
}

#[tokio::test]
async fn oversized_known_size_write_fails_before_uploading() {
    let f = fixture(Some(1024 * 1024)).await;
    f.store
        .put("keep", data(100_000, 1), PutOptions::new())
        .await
        .expect("put");
    let before = stream_state(&f.js).await;
    for body in [
        Body::from(data(2 * 1024 * 1024, 2)),
        Body::from_reader(tokio::io::repeat(7).take(2 * 1024 * 1024)).with_size(2 * 1024 * 1024),
    ] {
        let err = f
            .store
            .put("big", body, PutOptions::new())
            .await
            .expect_err("too big");
        match &err {
            StoreError::StoreFull {
                key,
                limit,
                used,
                needed,
            } => {
                assert_eq!(key, "big");
                assert_eq!(*limit, 1024 * 1024);
                assert_eq!(*used, before.0);
                assert_eq!(*needed, Some(2 * 1024 * 1024));
            }
            other => panic!("expected StoreFull, got {other:?}"),
        }
        assert!(err.to_string().contains("object store is full"), "{err}");
        assert_eq!(stream_state(&f.js).await, before);
    }
    assert!(f.store.get("big").await.expect("get").is_none());
    assert_eq!(content(&f.store, "keep").await, Some(data(100_000, 1)));
}

#[tokio::test]
async fn oversized_streamed_write_is_cleaned_up() {
    let f = fixture(Some(1024 * 1024)).await;
    f.store
        .put("keep", data(100_000, 1), PutOptions::new())
        .await
        .expect("put");
    let before = stream_state(&f.js).await;
    let err = f
        .store
        .put(
            "big",
            Body::from_reader(tokio::io::repeat(1).take(3 * 1024 * 1024)),
            PutOptions::new(),
        )
        .await
        .expect_err("too big");
    assert!(
        matches!(err, StoreError::StoreFull { limit: 1_048_576, used, needed: None, .. } if used == before.0),
        "{err:?}"
    );
    assert_eq!(
        stream_state(&f.js).await,
        before,
        "no partial chunks remain"
    );
    assert!(f.store.get("big").await.expect("get").is_none());
    assert_eq!(content(&f.store, "keep").await, Some(data(100_000, 1)));
}

#[tokio::test]
async fn oversized_overwrite_keeps_the_old_object() {
    let f = fixture(Some(1024 * 1024)).await;
    let old = data(400_000, 1);
    f.store
        .put("doc", &old, PutOptions::new().metadata("v", "1"))
        .await
        .expect("put");
    let before = stream_state(&f.js).await;
    // Fits alone, but not next to the version it replaces.
    let new = data(700_000, 2);
    let err = f
        .store
        .put(
            "doc",
            Body::from_stream(futures::stream::iter(
                new.chunks(10_000)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )),
            PutOptions::new().metadata("v", "2"),
        )
        .await
        .expect_err("does not fit");
    assert!(matches!(err, StoreError::StoreFull { .. }), "{err:?}");
    assert_eq!(stream_state(&f.js).await, before);
    let object = f.store.get("doc").await.expect("get").expect("exists");
    assert_eq!(object.info().metadata["v"], "1");
    assert!(object.bytes().await.expect("read") == old);
}

#[tokio::test]
async fn server_side_rejection_is_store_full_and_cleaned_up() {
    // The handle believes the store is unlimited, so only the server's
    // `DiscardPolicy::New` refusal stops the write.
    let f = fixture(Some(1024 * 1024)).await;
    let unlimited = StoreHandle::new(f.js.clone(), binding(None, 0))
        .open()
        .await
        .expect("open");
    unlimited
        .put("keep", b"keep", PutOptions::new())
        .await
        .expect("put");
    let before = stream_state(&f.js).await;
    for body in [
        Body::from(data(2 * 1024 * 1024, 3)),
        Body::from_reader(tokio::io::repeat(1).take(2 * 1024 * 1024)),
    ] {
        let err = unlimited
            .put("big", body, PutOptions::new())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, StoreError::StoreFull { limit: 1_048_576, used, .. } if used == before.0),
            "{err:?}"
        );
        assert_eq!(stream_state(&f.js).await, before);
    }
    assert!(unlimited.get("big").await.expect("get").is_none());
}

#[tokio::test]
async fn failing_body_leaves_nothing_behind() {
    let f = fixture(None).await;
    let old = data(300_000, 9);
    f.store
        .put("doc", &old, PutOptions::new())
        .await
        .expect("put");
    let before = stream_state(&f.js).await;

    let reader = FailingReader {
        data: data(1_000_000, 1),
        pos: 0,
    };
    let err = f
        .store
        .put("doc", Body::from_reader(reader), PutOptions::new())
        .await
        .expect_err("reader fails");
    match &err {
        StoreError::Body { key, source } => {
            assert_eq!(key, "doc");
            assert_eq!(source.to_string(), "disk on fire");
        }
        other => panic!("expected Body error, got {other:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(stream_state(&f.js).await, before);
    assert_eq!(content(&f.store, "doc").await, Some(old));

    let items = vec![
        Ok(Bytes::from(data(500_000, 2))),
        Err(io::Error::other("upstream reset")),
    ];
    let err = f
        .store
        .create(
            "new",
            Body::from_stream(futures::stream::iter(items)),
            PutOptions::new(),
        )
        .await
        .expect_err("stream fails");
    assert!(matches!(err, StoreError::Body { .. }), "{err:?}");
    assert_eq!(stream_state(&f.js).await, before);
    assert!(f.store.get("new").await.expect("get").is_none());
}

#[tokio::test]
async fn declared_size_must_match() {
    let f = fixture(None).await;
    for (len, declared) in [(100_000usize, 200_000u64), (300_000, 200_000)] {
        let payload = data(len, 1);
        let err = f
            .store
            .put(
                "doc",
                Body::from_reader(&payload[..]).with_size(declared),
                PutOptions::new(),
            )
            .await
            .expect_err("size mismatch");
        assert!(
            matches!(err, StoreError::SizeMismatch { declared: d, .. } if d == declared),
            "{err:?}"
        );
        assert_eq!(stream_state(&f.js).await.1, 0);
    }
}

#[tokio::test]
async fn cancelled_upload_is_cleaned_up() {
    let f = fixture(None).await;
    // Two chunks, then a body that never ends.
    let body = futures::stream::iter(vec![Ok(Bytes::from(data(300_000, 1)))])
        .chain(futures::stream::pending());
    let store = f.store.clone();
    let upload = tokio::spawn(async move {
        store
            .put("stuck", Body::from_stream(body), PutOptions::new())
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream_state(&f.js).await.1 < 2 {
        assert!(Instant::now() < deadline, "chunks never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    upload.abort();
    assert!(upload.await.expect_err("aborted").is_cancelled());
    while stream_state(&f.js).await.1 != 0 {
        assert!(Instant::now() < deadline, "chunks were not purged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(f.store.get("stuck").await.expect("get").is_none());
}

#[tokio::test]
async fn three_thousand_gets_within_thirty_seconds() {
    let f = fixture(None).await;
    // Three chunks (written by async-nats with small chunks) to exercise
    // batched chunk reads, plus a single-chunk object of ours.
    let os =
        f.js.get_object_store("uploads")
            .await
            .expect("object store");
    let multi = data(1500, 4);
    os.put(
        ObjectMetadata {
            name: "multi".into(),
            chunk_size: Some(512),
            ..Default::default()
        },
        &mut &multi[..],
    )
    .await
    .expect("async-nats put");
    let single = data(1000, 5);
    f.store
        .put("single", &single, PutOptions::new())
        .await
        .expect("put");

    let started = Instant::now();
    for i in 0..3000 {
        let (key, expected) = if i % 2 == 0 {
            ("multi", &multi)
        } else {
            ("single", &single)
        };
        let object = f.store.get(key).await.expect("get").expect("exists");
        let read = object.bytes().await.expect("read");
        assert!(read == expected[..], "read {i}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "3000 gets took {elapsed:?}"
    );
    assert_eq!(stream_state(&f.js).await.2, 0, "no consumers");
    eprintln!("3000 gets took {elapsed:?}");
}

#[tokio::test]
async fn async_nats_reads_what_trellis_writes() {
    let f = fixture(None).await;
    let payload = data(1_000_000, 6);
    f.store
        .put(
            "ours",
            &payload,
            PutOptions::new()
                .content_type("image/png")
                .metadata("k", "v"),
        )
        .await
        .expect("put");
    let os =
        f.js.get_object_store("uploads")
            .await
            .expect("object store");
    let mut object = os.get("ours").await.expect("async-nats get");
    let info = object.info().clone();
    assert_eq!(info.size, payload.len());
    assert_eq!(info.chunks, 8);
    assert_eq!(info.metadata.get("k").map(String::as_str), Some("v"));
    let headers = info.headers.expect("headers");
    assert_eq!(
        headers.get("Content-Type").map(|v| v.as_str()),
        Some("image/png")
    );
    let mut read = Vec::new();
    object
        .read_to_end(&mut read)
        .await
        .expect("async-nats read (checks the digest)");
    assert!(read == payload);

    // async-nats deletes ours; trellis agrees it is gone.
    os.delete("ours").await.expect("async-nats delete");
    assert!(f.store.get("ours").await.expect("get").is_none());
    assert_eq!(
        f.store
            .list(ListOptions::new(10))
            .await
            .expect("list")
            .count,
        0
    );
    // And a deletion marker does not block `create`.
    f.store
        .create("ours", b"again", PutOptions::new())
        .await
        .expect("create over a deletion marker");
    assert_eq!(
        content(&f.store, "ours").await.as_deref(),
        Some(&b"again"[..])
    );
}

#[tokio::test]
async fn trellis_reads_what_async_nats_writes() {
    let f = fixture(None).await;
    let os =
        f.js.get_object_store("uploads")
            .await
            .expect("object store");
    let payload = data(700_000, 7);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "text/csv");
    os.put(
        ObjectMetadata {
            name: "theirs".into(),
            metadata: [("team".to_owned(), "blue".to_owned())].into(),
            headers: Some(headers),
            ..Default::default()
        },
        &mut &payload[..],
    )
    .await
    .expect("async-nats put");

    let object = f.store.get("theirs").await.expect("get").expect("exists");
    let info = object.info().clone();
    assert_eq!(info.size, payload.len() as u64);
    assert_eq!(info.digest, nats_digest(&payload));
    assert_eq!(info.content_type.as_deref(), Some("text/csv"));
    assert_eq!(info.metadata["team"], "blue");
    assert!(info.modified > std::time::UNIX_EPOCH);
    assert!(object.bytes().await.expect("read") == payload);
    let page = f.store.list(ListOptions::new(10)).await.expect("list");
    assert_eq!(page.entries, vec![info]);

    // trellis overwrites and deletes async-nats objects cleanly.
    f.store
        .put("theirs", b"v2", PutOptions::new())
        .await
        .expect("overwrite");
    let mut read = Vec::new();
    os.get("theirs")
        .await
        .expect("async-nats get")
        .read_to_end(&mut read)
        .await
        .expect("read");
    assert_eq!(read, b"v2");
    assert!(f.store.delete("theirs").await.expect("delete"));
    assert!(os.get("theirs").await.is_err());
    assert_eq!(stream_state(&f.js).await.1, 0);

    // Links are refused, not misread.
    f.store
        .put("target", b"t", PutOptions::new())
        .await
        .expect("put");
    let target = os.info("target").await.expect("info");
    os.add_link("link", &target).await.expect("link");
    let err = f.store.get("link").await.expect_err("links unsupported");
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
}

#[tokio::test]
async fn corrupt_content_is_detected() {
    let f = fixture(None).await;
    f.store
        .put("doc", data(300_000, 1), PutOptions::new())
        .await
        .expect("put");
    // Tamper: delete the last chunk message.
    let stream = f.js.get_stream(STREAM).await.expect("stream");
    stream.delete_message(3).await.expect("delete chunk");
    let object = f.store.get("doc").await.expect("get").expect("exists");
    let err = object.bytes().await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");

    // Reading through AsyncRead surfaces the error as InvalidData.
    let mut object = f.store.get("doc").await.expect("get").expect("exists");
    let mut sink = Vec::new();
    let err = object.read_to_end(&mut sink).await.expect_err("corrupt");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn object_deleted_while_reading_is_reported() {
    let f = fixture(None).await;
    // More chunks than one read batch (16 MiB) holds.
    const SIZE: usize = 24 * 1024 * 1024;
    f.store
        .put("doc", data(SIZE, 1), PutOptions::new())
        .await
        .expect("put");
    for replace in [false, true] {
        let mut object = f.store.get("doc").await.expect("get").expect("exists");
        let first = object.next().await.expect("chunk").expect("ok");
        assert_eq!(first.len(), write::CHUNK_SIZE);
        if replace {
            f.store
                .put("doc", b"new", PutOptions::new())
                .await
                .expect("overwrite");
        } else {
            f.store.delete("doc").await.expect("delete");
        }
        let mut chunks = 1;
        let err = loop {
            match object.next().await {
                Some(Ok(_)) => chunks += 1,
                Some(Err(err)) => break err,
                None => panic!("read a deleted object to the end"),
            }
        };
        assert!(matches!(err, StoreError::Changed { .. }), "{err:?}");
        assert!(chunks < SIZE / write::CHUNK_SIZE, "{chunks}");
        assert!(
            object.next().await.is_none(),
            "the stream ends after an error"
        );
        if !replace {
            f.store
                .put("doc", data(SIZE, 1), PutOptions::new())
                .await
                .expect("put");
        }
    }
}

#[tokio::test]
async fn chunk_at_finds_chunk_boundaries_and_leaves_no_consumer() {
    let f = fixture(None).await;
    // Chunks of 512, 512 and 476 bytes (async-nats, small chunks), stored
    // after another object's, so sequences do not start at 1.
    f.store
        .put("first", &data(1000, 6), PutOptions::new())
        .await
        .expect("put");
    let os =
        f.js.get_object_store("uploads")
            .await
            .expect("object store");
    let multi = data(1500, 7);
    os.put(
        ObjectMetadata {
            name: "multi".into(),
            chunk_size: Some(512),
            ..Default::default()
        },
        &mut &multi[..],
    )
    .await
    .expect("async-nats put");
    let source = f
        .store
        .chunk_source("multi")
        .await
        .expect("source")
        .expect("live");
    assert_eq!(source.chunks, 3);
    assert_eq!(
        f.store.chunk_at(&source, 0).await.expect("0"),
        ChunkStart::At { index: 0, seq: 1 }
    );
    let at = |offset| {
        let (store, source) = (f.store.clone(), source.clone());
        async move { store.chunk_at(&source, offset).await.expect("scan") }
    };
    let ChunkStart::At { index: 1, seq: one } = at(512).await else {
        panic!("512 is the second chunk");
    };
    let ChunkStart::At { index: 2, seq: two } = at(1024).await else {
        panic!("1024 is the third chunk");
    };
    assert!(one > 2 && two == one + 1, "{one} {two}");
    assert_eq!(at(700).await, ChunkStart::Inside { boundary: 512 });
    assert_eq!(at(1499).await, ChunkStart::Inside { boundary: 1024 });
    assert!(f.store.chunk_at(&source, 1500).await.is_err());
    assert_eq!(
        stream_state(&f.js).await.2,
        0,
        "the scan consumers are gone"
    );
}
