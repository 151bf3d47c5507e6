//! The physical layout of provisioned resources: stream names and the
//! exact JetStream stream configurations behind KV buckets, object stores
//! and event streams.
//!
//! The deployment authority creates streams with these configurations; the
//! handles rely on them (direct gets, rollups, the header room of a value
//! limit). They match what async-nats itself creates (so its KV and
//! object-store clients work unchanged) plus an explicit, large
//! `max_consumers`: nats-server 2.15 caps a stream at 1000 consumers by
//! default, and every KV `keys`/`watch` call creates a short-lived one.

use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};

use crate::protocol::{EventsBinding, KvBinding, StoreBinding};

/// Consumers allowed per provisioned stream.
pub const STREAM_MAX_CONSUMERS: i32 = 100_000;

/// Room for message headers on top of a KV value limit: the server counts
/// headers (e.g. the expected-revision header of a compare-and-set) against
/// `max_message_size`, so a value of exactly the limit must still fit.
pub const KV_HEADER_ROOM: u64 = 1024;

/// How long runtime-owned records and events are kept.
pub const RUNTIME_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Stream name of KV bucket `bucket`.
pub fn kv_stream_name(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// Stream name of object store `bucket`.
pub fn object_stream_name(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

fn ttl(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Duplicate window: the server default (2 min), never beyond a finite TTL.
fn duplicate_window(ttl_ms: u64) -> Duration {
    let default = Duration::from_secs(120);
    if ttl_ms == 0 {
        default
    } else {
        default.min(ttl(ttl_ms))
    }
}

/// The stream configuration of a KV binding.
pub fn kv_stream_config(binding: &KvBinding, replicas: usize) -> stream::Config {
    stream::Config {
        name: kv_stream_name(&binding.bucket),
        description: Some("trellis KV bucket".to_owned()),
        subjects: vec![format!("$KV.{}.>", binding.bucket)],
        max_messages_per_subject: binding.history as i64,
        max_bytes: -1,
        max_age: ttl(binding.ttl_ms),
        max_message_size: binding
            .max_value_bytes
            .map(|b| i32::try_from(b.saturating_add(KV_HEADER_ROOM)).unwrap_or(i32::MAX))
            .unwrap_or(-1),
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: replicas,
        discard: DiscardPolicy::New,
        duplicate_window: duplicate_window(binding.ttl_ms),
        max_consumers: STREAM_MAX_CONSUMERS,
        ..Default::default()
    }
}

/// The stream configuration of a contract's event stream.
pub fn events_stream_config(binding: &EventsBinding, replicas: usize) -> stream::Config {
    stream::Config {
        name: binding.stream.clone(),
        description: Some("trellis event stream".to_owned()),
        subjects: binding.subjects.clone(),
        max_bytes: -1,
        max_age: ttl(RUNTIME_RETENTION_MS),
        storage: StorageType::File,
        // Rollups and direct gets as for the other runtime streams.
        allow_rollup: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: DiscardPolicy::Old,
        max_consumers: STREAM_MAX_CONSUMERS,
        ..Default::default()
    }
}

/// The stream configuration of a store binding. Discard policy `New`: a
/// full store refuses writes instead of silently dropping old objects.
pub fn object_stream_config(binding: &StoreBinding, replicas: usize) -> stream::Config {
    stream::Config {
        name: object_stream_name(&binding.bucket),
        description: Some("trellis object store".to_owned()),
        subjects: vec![
            format!("$O.{}.C.>", binding.bucket),
            format!("$O.{}.M.>", binding.bucket),
        ],
        max_bytes: binding
            .max_total_bytes
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX))
            .unwrap_or(-1),
        max_age: ttl(binding.ttl_ms),
        storage: StorageType::File,
        num_replicas: replicas,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        duplicate_window: duplicate_window(binding.ttl_ms),
        max_consumers: STREAM_MAX_CONSUMERS,
        ..Default::default()
    }
}

/// Creates the KV bucket of `binding` in a test (the authority provisions
/// real ones) and opens it.
#[cfg(test)]
pub(crate) async fn create_kv_for_test(
    js: &async_nats::jetstream::Context,
    binding: &KvBinding,
) -> async_nats::jetstream::kv::Store {
    js.create_stream(kv_stream_config(binding, 1))
        .await
        .expect("create kv stream");
    js.get_key_value(&binding.bucket).await.expect("open kv")
}

/// Creates the object store of `binding` in a test.
#[cfg(test)]
pub(crate) async fn create_store_for_test(
    js: &async_nats::jetstream::Context,
    binding: &StoreBinding,
) {
    js.create_stream(object_stream_config(binding, 1))
        .await
        .expect("create object stream");
}
