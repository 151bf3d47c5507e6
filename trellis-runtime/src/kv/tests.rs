//! KV handle tests against a real nats-server.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use trellis_testing::NatsServer;

use super::key::{KEY_RULES, validate_key};
use super::list::KEYS_BATCH;
use super::{KvChange, KvError, KvHandle, KvWatch, MAX_KEY_LEN};
use crate::protocol::KvBinding;

type TestResult = Result<(), Box<dyn StdError + Send + Sync>>;

const STEP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    name: String,
    qty: u32,
}

fn item(name: &str, qty: u32) -> Item {
    Item {
        name: name.to_owned(),
        qty,
    }
}

fn binding(bucket: &str) -> KvBinding {
    KvBinding {
        bucket: bucket.into(),
        history: 5,
        ttl_ms: 0,
        max_value_bytes: Some(1024),
    }
}

struct Fixture {
    server: NatsServer,
    js: jetstream::Context,
    store: jetstream::kv::Store,
    kv: KvHandle<Item>,
}

async fn fixture() -> Result<Fixture, Box<dyn StdError + Send + Sync>> {
    let server = NatsServer::start().await?;
    let client = server.client().await?;
    let js = jetstream::new(client);
    let binding = binding("items");
    let store = crate::layout::create_kv_for_test(&js, &binding).await;
    let kv = KvHandle::<Item>::new(store.clone(), binding);
    Ok(Fixture {
        server,
        js,
        store,
        kv,
    })
}

async fn next<T: DeserializeOwned>(
    watch: &mut KvWatch<T>,
) -> Result<KvChange<T>, Box<dyn StdError + Send + Sync>> {
    match tokio::time::timeout(STEP, watch.next()).await {
        Err(_) => Err("watch yielded nothing within 5 s".into()),
        Ok(None) => Err("watch ended".into()),
        Ok(Some(item)) => Ok(item?),
    }
}

async fn consumer_count(js: &jetstream::Context) -> Result<usize, Box<dyn StdError + Send + Sync>> {
    let mut stream = js.get_stream("KV_items").await?;
    Ok(stream.info().await?.state.consumer_count)
}

#[tokio::test]
async fn put_get_round_trip_with_revisions() -> TestResult {
    let f = fixture().await?;
    assert!(f.kv.get("orders.1").await?.is_none());
    let before = SystemTime::now() - Duration::from_secs(60);
    let r1 = f.kv.put("orders.1", &item("a", 1)).await?;
    let entry = f.kv.get("orders.1").await?.ok_or("missing")?;
    assert_eq!(entry.key, "orders.1");
    assert_eq!(entry.value, item("a", 1));
    assert_eq!(entry.revision, r1);
    assert!(entry.created > before);
    let r2 = f.kv.put("orders.1", &item("a", 2)).await?;
    assert!(r2 > r1);
    let entry = f.kv.get("orders.1").await?.ok_or("missing")?;
    assert_eq!((entry.value.qty, entry.revision), (2, r2));
    // Keys with `/`, `=`, `-`, `_` are fine.
    f.kv.put("path/to=x-y_z.1", &item("p", 0)).await?;
    assert!(f.kv.get("path/to=x-y_z.1").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn create_conflicts_but_succeeds_over_a_tombstone() -> TestResult {
    let f = fixture().await?;
    let r1 = f.kv.create("k", &item("a", 1)).await?;
    match f.kv.create("k", &item("b", 2)).await {
        Err(KvError::AlreadyExists { key }) => assert_eq!(key, "k"),
        other => return Err(format!("expected AlreadyExists, got {other:?}").into()),
    }
    assert_eq!(f.kv.get("k").await?.ok_or("missing")?.revision, r1);
    f.kv.delete("k").await?;
    let r2 = f.kv.create("k", &item("c", 3)).await?;
    assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("c", 3));
    f.kv.purge("k").await?;
    let r3 = f.kv.create("k", &item("d", 4)).await?;
    assert!(r3 > r2);
    assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("d", 4));
    Ok(())
}

#[tokio::test]
async fn update_is_compare_and_set() -> TestResult {
    let f = fixture().await?;
    let r1 = f.kv.put("k", &item("a", 1)).await?;
    let r2 = f.kv.update("k", &item("a", 2), r1).await?;
    assert!(r2 > r1);
    match f.kv.update("k", &item("a", 3), r1).await {
        Err(KvError::RevisionMismatch {
            key,
            expected,
            current,
        }) => {
            assert_eq!((key.as_str(), expected, current), ("k", r1, Some(r2)));
        }
        other => return Err(format!("expected RevisionMismatch, got {other:?}").into()),
    }
    assert_eq!(f.kv.get("k").await?.ok_or("missing")?.value, item("a", 2));
    // Revision 0 on a missing key creates it; on an existing one it misses.
    f.kv.update("fresh", &item("f", 0), 0).await?;
    assert!(matches!(
        f.kv.update("fresh", &item("f", 1), 0).await,
        Err(KvError::RevisionMismatch { expected: 0, .. })
    ));
    Ok(())
}

#[tokio::test]
async fn delete_then_history() -> TestResult {
    let f = fixture().await?;
    assert!(f.kv.history("k").await?.is_empty());
    let r1 = f.kv.put("k", &item("a", 1)).await?;
    f.kv.put("other", &item("o", 0)).await?;
    let r2 = f.kv.put("k", &item("a", 2)).await?;
    f.kv.delete("k").await?;
    assert!(f.kv.get("k").await?.is_none());
    let history = f.kv.history("k").await?;
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(matches!(&history[0], KvChange::Put(e) if e.revision == r1 && e.value.qty == 1));
    assert!(matches!(&history[1], KvChange::Put(e) if e.revision == r2 && e.value.qty == 2));
    assert!(
        matches!(&history[2], KvChange::Delete { key, revision } if key == "k" && *revision > r2)
    );
    // The bucket keeps 5 revisions per key.
    for qty in 0..8 {
        f.kv.put("many", &item("m", qty)).await?;
    }
    let history = f.kv.history("many").await?;
    let qtys: Vec<u32> = history
        .iter()
        .map(|change| match change {
            KvChange::Put(entry) => entry.value.qty,
            _ => u32::MAX,
        })
        .collect();
    assert_eq!(qtys, vec![3, 4, 5, 6, 7]);
    Ok(())
}

#[tokio::test]
async fn purge_removes_history() -> TestResult {
    let f = fixture().await?;
    f.kv.put("k", &item("a", 1)).await?;
    f.kv.put("k", &item("a", 2)).await?;
    f.kv.purge("k").await?;
    assert!(f.kv.get("k").await?.is_none());
    let history = f.kv.history("k").await?;
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(matches!(&history[0], KvChange::Purge { key, .. } if key == "k"));
    assert!(f.kv.keys(">").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn keys_with_filters() -> TestResult {
    let f = fixture().await?;
    assert!(f.kv.keys(">").await?.is_empty());
    for key in ["a.1", "a.2", "a.b.c", "b.1", "a"] {
        f.kv.put(key, &item(key, 0)).await?;
    }
    f.kv.put("a.3", &item("gone", 0)).await?;
    f.kv.delete("a.3").await?;
    f.kv.put("a.4", &item("purged", 0)).await?;
    f.kv.purge("a.4").await?;
    f.kv.put("a.1", &item("again", 1)).await?;
    assert_eq!(f.kv.keys("a.*").await?, vec!["a.1", "a.2"]);
    assert_eq!(f.kv.keys("a.>").await?, vec!["a.1", "a.2", "a.b.c"]);
    assert_eq!(f.kv.keys("*.1").await?, vec!["a.1", "b.1"]);
    assert_eq!(f.kv.keys("a").await?, vec!["a"]);
    assert_eq!(f.kv.keys("a.b.c").await?, vec!["a.b.c"]);
    assert!(f.kv.keys("a.3").await?.is_empty());
    assert!(f.kv.keys("zzz.>").await?.is_empty());
    assert_eq!(
        f.kv.keys(">").await?,
        vec!["a", "a.1", "a.2", "a.b.c", "b.1"]
    );
    // More keys than one fetch batch.
    for n in 0..(KEYS_BATCH + 250) {
        f.store
            .put(format!("bulk.{n}"), Bytes::from_static(b"{}"))
            .await?;
    }
    assert_eq!(f.kv.keys("bulk.*").await?.len(), KEYS_BATCH + 250);
    for bad in ["", "a.", ".a", "a..b", "a.>.b", "a*", "a b", "a.*x", ">.a"] {
        assert!(
            matches!(f.kv.keys(bad).await, Err(KvError::InvalidFilter { .. })),
            "filter {bad:?} accepted"
        );
    }
    assert_eq!(
        consumer_count(&f.js).await?,
        0,
        "keys left consumers behind"
    );
    Ok(())
}

#[tokio::test]
async fn watch_sees_snapshot_then_changes_in_order() -> TestResult {
    let f = fixture().await?;
    f.kv.put("w.old", &item("old", 0)).await?;
    f.kv.put("w.gone", &item("gone", 0)).await?;
    f.kv.delete("w.gone").await?;
    f.kv.put("x.ignored", &item("x", 0)).await?;
    let mut watch = f.kv.watch("w.*").await?;
    assert!(!watch.is_caught_up());
    match next(&mut watch).await? {
        KvChange::Put(entry) => assert_eq!(
            (entry.key.as_str(), entry.value.name.as_str()),
            ("w.old", "old")
        ),
        other => return Err(format!("expected w.old put, got {other:?}").into()),
    }
    assert!(matches!(next(&mut watch).await?, KvChange::Delete { key, .. } if key == "w.gone"));
    assert!(watch.is_caught_up());

    let r1 = f.kv.put("w.1", &item("one", 1)).await?;
    f.kv.put("x.2", &item("not watched", 2)).await?;
    let r2 = f.kv.put("w.1", &item("one", 2)).await?;
    f.kv.delete("w.1").await?;
    f.kv.purge("w.old").await?;
    match next(&mut watch).await? {
        KvChange::Put(entry) => {
            assert_eq!(
                (entry.key.as_str(), entry.value.qty, entry.revision),
                ("w.1", 1, r1)
            );
        }
        other => return Err(format!("expected put, got {other:?}").into()),
    }
    assert_eq!(next(&mut watch).await?.revision(), r2);
    assert!(
        matches!(next(&mut watch).await?, KvChange::Delete { key, revision } if key == "w.1" && revision > r2)
    );
    assert!(matches!(next(&mut watch).await?, KvChange::Purge { key, .. } if key == "w.old"));

    // watch_all sees every key; an empty bucket filter just waits.
    let mut all = f.kv.watch_all().await?;
    let mut keys = Vec::new();
    while !all.is_caught_up() {
        keys.push(next(&mut all).await?.key().to_owned());
    }
    assert_eq!(keys, vec!["w.gone", "x.ignored", "x.2", "w.1", "w.old"]);
    let mut empty = f.kv.watch("nothing.>").await?;
    assert!(empty.is_caught_up());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), empty.next())
            .await
            .is_err()
    );

    drop((watch, all, empty));
    let deadline = Instant::now() + STEP;
    while consumer_count(&f.js).await? > 0 {
        if Instant::now() > deadline {
            return Err("dropped watches left consumers behind".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn undecodable_values_are_typed_errors() -> TestResult {
    let f = fixture().await?;
    let mut watch = f.kv.watch("d.>").await?;
    let bad_rev = f
        .store
        .put("d.bad", Bytes::from_static(b"not json"))
        .await?;
    f.store
        .put("d.wrong", Bytes::from_static(br#"{"name": 5}"#))
        .await?;
    match f.kv.get("d.bad").await {
        Err(KvError::Decode {
            key,
            revision,
            type_name,
            ..
        }) => {
            assert_eq!((key.as_str(), revision), ("d.bad", bad_rev));
            assert!(type_name.ends_with("Item"), "{type_name}");
        }
        other => return Err(format!("expected Decode, got {other:?}").into()),
    }
    assert!(matches!(
        f.kv.history("d.bad").await,
        Err(KvError::Decode { .. })
    ));
    for expected in ["d.bad", "d.wrong"] {
        match tokio::time::timeout(STEP, watch.next()).await? {
            Some(Err(KvError::Decode { key, .. })) => assert_eq!(key, expected),
            other => return Err(format!("expected a Decode item, got {other:?}").into()),
        }
    }
    // The handle and the watch keep working; the raw bytes are still there.
    f.kv.put("d.good", &item("good", 1)).await?;
    assert!(matches!(next(&mut watch).await?, KvChange::Put(e) if e.key == "d.good"));
    assert_eq!(f.kv.keys("d.*").await?, vec!["d.bad", "d.good", "d.wrong"]);
    assert_eq!(
        f.store.get("d.bad").await?.as_deref(),
        Some(&b"not json"[..])
    );
    f.kv.put("d.bad", &item("fixed", 2)).await?;
    assert_eq!(
        f.kv.get("d.bad").await?.ok_or("missing")?.value,
        item("fixed", 2)
    );
    Ok(())
}

#[tokio::test]
async fn invalid_keys_are_rejected_before_any_io() -> TestResult {
    let mut f = fixture().await?;
    // With the server gone, anything that reached the network would fail
    // with a transport error (or hang until a timeout), not InvalidKey.
    f.server.stop().await?;
    let started = Instant::now();
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let bad = [
        "", ".a", "a.", "a..b", "a b", "a.*", "a.>", ">", "tab\tkey", "ümlaut", &long,
    ];
    for key in bad {
        let checks = [
            f.kv.get(key).await.map(|_| ()),
            f.kv.put(key, &item("x", 0)).await.map(|_| ()),
            f.kv.create(key, &item("x", 0)).await.map(|_| ()),
            f.kv.update(key, &item("x", 0), 1).await.map(|_| ()),
            f.kv.delete(key).await,
            f.kv.purge(key).await,
            f.kv.history(key).await.map(|_| ()),
        ];
        for result in checks {
            match result {
                Err(KvError::InvalidKey { key: k, reason }) => {
                    assert_eq!(k, key);
                    assert!(
                        reason.contains("allowed") || reason.contains("keys are"),
                        "{reason}"
                    );
                }
                other => {
                    return Err(format!("key {key:?}: expected InvalidKey, got {other:?}").into());
                }
            }
        }
    }
    for filter in ["", "a..b", "a*", "a.>.b", "a b"] {
        assert!(matches!(
            f.kv.keys(filter).await,
            Err(KvError::InvalidFilter { .. })
        ));
        assert!(matches!(
            f.kv.watch(filter).await,
            Err(KvError::InvalidFilter { .. })
        ));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let reason = |key: &str| match validate_key(key) {
        Err(KvError::InvalidKey { reason, .. }) => reason,
        _ => String::new(),
    };
    assert!(reason("").starts_with("it is empty;"));
    assert!(reason(".a").starts_with("it starts with `.`"));
    assert!(reason("a..b").starts_with("it has an empty token"));
    assert!(reason("a b").starts_with("whitespace ' ' is not allowed"));
    assert!(reason("a.*").starts_with("wildcard `*` is not allowed in a key"));
    assert!(reason("a.*").contains(KEY_RULES));
    Ok(())
}

#[tokio::test]
async fn oversize_values_are_refused_and_nothing_is_written() -> TestResult {
    let f = fixture().await?;
    let big = item(&"x".repeat(2000), 1);
    for result in [
        f.kv.put("big", &big).await,
        f.kv.create("big", &big).await,
        f.kv.update("big", &big, 0).await,
    ] {
        match result {
            Err(KvError::ValueTooLarge { key, size, limit }) => {
                assert_eq!((key.as_str(), limit), ("big", 1024));
                assert!(size > 2000);
            }
            other => return Err(format!("expected ValueTooLarge, got {other:?}").into()),
        }
    }
    let mut stream = f.js.get_stream("KV_items").await?;
    assert_eq!(stream.info().await?.state.messages, 0);
    assert!(f.kv.get("big").await?.is_none());
    // A value exactly at the limit is written.
    let fits = item(&"y".repeat(1024 - r#"{"name":"","qty":1}"#.len()), 1);
    assert_eq!(serde_json::to_vec(&fits)?.len(), 1024);
    let revision = f.kv.put("fits", &fits).await?;
    assert_eq!(f.kv.get("fits").await?.ok_or("missing")?.value, fits);
    // Conditional writes carry headers; provisioning leaves header room
    // above the value limit, so a value exactly at the limit fits too.
    let updated = f.kv.update("fits", &fits, revision).await?;
    assert!(updated > revision);
    f.kv.create("fits2", &fits).await?;
    assert_eq!(f.kv.get("fits2").await?.ok_or("missing")?.value, fits);
    Ok(())
}

#[tokio::test]
async fn encode_failures_are_typed() -> TestResult {
    let f = fixture().await?;
    let kv = KvHandle::<BTreeMap<(u8, u8), u8>>::new(f.store.clone(), binding("items"));
    let map = BTreeMap::from([((1, 2), 3)]);
    assert!(matches!(
        kv.put("m", &map).await,
        Err(KvError::Encode { .. })
    ));
    assert!(kv.get("m").await?.is_none());
    Ok(())
}

async fn many_keys_and_watches(
    kv: &KvHandle<Item>,
    calls: usize,
) -> Result<Duration, Box<dyn StdError + Send + Sync>> {
    kv.put("seed.1", &item("seed", 1)).await?;
    let started = Instant::now();
    for n in 0..calls {
        let keys = kv
            .keys("seed.*")
            .await
            .map_err(|err| format!("keys call {n}: {err}"))?;
        assert_eq!(keys, vec!["seed.1"]);
    }
    let keys_took = started.elapsed();
    for n in 0..calls {
        let mut watch = kv
            .watch("seed.>")
            .await
            .map_err(|err| format!("watch call {n}: {err}"))?;
        let first = next(&mut watch)
            .await
            .map_err(|err| format!("watch call {n}: {err}"))?;
        assert_eq!(first.key(), "seed.1");
    }
    let took = started.elapsed();
    eprintln!(
        "{calls} keys calls: {keys_took:?}; {calls} watch calls: {:?}",
        took - keys_took
    );
    Ok(took)
}

#[tokio::test]
async fn three_thousand_keys_and_watch_calls_within_30s() -> TestResult {
    let f = fixture().await?;
    let elapsed = many_keys_and_watches(&f.kv, 3000).await?;
    eprintln!("3000 keys + 3000 watch calls took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let deadline = Instant::now() + STEP;
    while consumer_count(&f.js).await? > 0 {
        if Instant::now() > deadline {
            return Err("consumers left behind".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn many_calls_work_without_a_raised_consumer_limit() -> TestResult {
    // A bucket created by plain async-nats (server default consumer
    // limit): only deleting our consumers keeps this under the cap.
    let server = NatsServer::start().await?;
    let js = jetstream::new(server.client().await?);
    let store = js
        .create_key_value(jetstream::kv::Config {
            bucket: "items".into(),
            history: 5,
            ..Default::default()
        })
        .await?;
    let kv = KvHandle::<Item>::new(store, binding("items"));
    let elapsed = many_keys_and_watches(&kv, 1500).await?;
    eprintln!("1500 keys + 1500 watch calls (default consumer limit) took {elapsed:?}");
    Ok(())
}
