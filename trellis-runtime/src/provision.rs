//! The exact JetStream stream configurations behind KV buckets and object
//! stores that trellis provisions, and the checks that decide whether an
//! existing stream may be adopted.
//!
//! The configurations match what async-nats itself creates (so its KV and
//! object-store clients work unchanged) plus an explicit, large
//! `max_consumers`: nats-server 2.15 caps a stream at 1000 consumers by
//! default, and every KV `keys`/`watch` call creates a short-lived one.

use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

use crate::protocol::{EventsBinding, KvBinding, StoreBinding};

/// Consumers allowed per provisioned stream.
pub const STREAM_MAX_CONSUMERS: i32 = 100_000;

/// Room for message headers on top of a KV value limit: the server counts
/// headers (e.g. the expected-revision header of a compare-and-set) against
/// `max_message_size`, so a value of exactly the limit must still fit.
pub const KV_HEADER_ROOM: u64 = 1024;

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

/// The binding a KV resource asks for, on bucket `bucket`.
pub fn kv_binding(bucket: &str, kv: &trellis_manifest::manifest::KvResource) -> KvBinding {
    KvBinding {
        bucket: bucket.to_owned(),
        history: kv.history.unwrap_or(1),
        ttl_ms: kv.ttl_ms.unwrap_or(0),
        max_value_bytes: kv.max_value_bytes,
    }
}

/// The binding a store resource asks for, on bucket `bucket`.
pub fn store_binding(
    bucket: &str,
    store: &trellis_manifest::manifest::StoreResource,
) -> StoreBinding {
    StoreBinding {
        bucket: bucket.to_owned(),
        ttl_ms: store.ttl_ms.unwrap_or(0),
        max_total_bytes: store.max_total_bytes,
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

/// The binding of a contract's runtime-owned state bucket: one revision
/// per key, records kept 7 days after their last change.
pub fn state_binding(bucket: &str) -> KvBinding {
    KvBinding {
        bucket: bucket.to_owned(),
        history: 1,
        ttl_ms: RUNTIME_RETENTION_MS,
        max_value_bytes: None,
    }
}

/// How long runtime-owned records and events are kept.
pub const RUNTIME_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

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

/// Why an existing stream cannot be adopted for a binding. `None` means it
/// has the right shape (limits may still need an update, which is safe).
pub fn incompatibility(existing: &stream::Config, wanted: &stream::Config) -> Option<String> {
    let mut have = existing.subjects.clone();
    let mut want = wanted.subjects.clone();
    have.sort();
    want.sort();
    if have != want {
        return Some(format!(
            "stream `{}` has subjects {:?}, expected {:?}",
            existing.name, existing.subjects, wanted.subjects
        ));
    }
    if existing.retention != RetentionPolicy::Limits {
        return Some(format!(
            "stream `{}` uses {:?} retention, expected limits",
            existing.name, existing.retention
        ));
    }
    if existing.storage != wanted.storage {
        return Some(format!(
            "stream `{}` uses {:?} storage, expected {:?}",
            existing.name, existing.storage, wanted.storage
        ));
    }
    if existing.mirror.is_some() || existing.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return Some(format!(
            "stream `{}` is a mirror or has sources",
            existing.name
        ));
    }
    if !existing.allow_rollup || existing.allow_direct != wanted.allow_direct {
        return Some(format!(
            "stream `{}` does not allow rollups/direct gets as a {} requires",
            existing.name,
            if wanted.deny_delete {
                "KV bucket"
            } else {
                "object store"
            }
        ));
    }
    if existing.discard != wanted.discard {
        return Some(format!(
            "stream `{}` discards {:?} messages when full, expected {:?}",
            existing.name, existing.discard, wanted.discard
        ));
    }
    None
}

/// Whether the limits differ (an in-place update reconciles them).
pub fn limits_differ(existing: &stream::Config, wanted: &stream::Config) -> bool {
    existing.max_messages_per_subject != wanted.max_messages_per_subject
        || existing.max_bytes != wanted.max_bytes
        || existing.max_age != wanted.max_age
        || existing.max_message_size != wanted.max_message_size
        || existing.max_consumers != wanted.max_consumers
        || existing.num_replicas != wanted.num_replicas
        || existing.deny_delete != wanted.deny_delete
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

/// The JetStream pull-consumer configuration of a consumer binding: a
/// durable, explicitly acked consumer delivering exactly the group's event
/// subjects.
pub fn consumer_config(
    binding: &crate::protocol::ConsumerBinding,
) -> async_nats::jetstream::consumer::pull::Config {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy};
    async_nats::jetstream::consumer::pull::Config {
        durable_name: Some(binding.consumer.clone()),
        name: Some(binding.consumer.clone()),
        description: Some(format!(
            "trellis event consumer of {} events",
            binding.source
        )),
        deliver_policy: if binding.replay == "all" {
            DeliverPolicy::All
        } else {
            DeliverPolicy::New
        },
        ack_policy: AckPolicy::Explicit,
        replay_policy: ReplayPolicy::Instant,
        ack_wait: Duration::from_millis(binding.ack_wait_ms),
        max_deliver: i64::try_from(binding.max_deliver).unwrap_or(i64::MAX),
        backoff: binding
            .backoff_ms
            .iter()
            .copied()
            .map(Duration::from_millis)
            .collect(),
        max_ack_pending: i64::try_from(binding.max_ack_pending).unwrap_or(i64::MAX),
        filter_subjects: binding.events.iter().map(|e| e.subject.clone()).collect(),
        ..Default::default()
    }
}

/// How an existing consumer differs from the wanted configuration.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConsumerDiff {
    /// Differences NATS applies in place (consumer update).
    pub in_place: Vec<String>,
    /// Differences NATS cannot apply: the consumer must be recreated, which
    /// loses its cursor.
    pub fixed: Vec<String>,
}

impl ConsumerDiff {
    /// Whether the configurations match.
    pub fn is_empty(&self) -> bool {
        self.in_place.is_empty() && self.fixed.is_empty()
    }
}

/// Compares an installed consumer with the wanted one, field by field. The
/// server reports a single filter as `filter_subject`, so filters compare as
/// sets.
pub fn consumer_diff(
    existing: &async_nats::jetstream::consumer::Config,
    wanted: &async_nats::jetstream::consumer::pull::Config,
) -> ConsumerDiff {
    use std::collections::BTreeSet;
    fn differs<T: PartialEq + std::fmt::Debug>(
        out: &mut Vec<String>,
        what: &str,
        have: T,
        want: T,
    ) {
        if have != want {
            out.push(format!("{what} {have:?} -> {want:?}"));
        }
    }
    let filters = |single: &str, many: &[String]| -> BTreeSet<String> {
        many.iter()
            .cloned()
            .chain((!single.is_empty()).then(|| single.to_owned()))
            .collect()
    };
    let mut diff = ConsumerDiff::default();
    if existing.deliver_subject.is_some() {
        diff.fixed.push("it is a push consumer".to_owned());
    }
    let fixed = &mut diff.fixed;
    differs(
        fixed,
        "deliver policy",
        existing.deliver_policy,
        wanted.deliver_policy,
    );
    differs(fixed, "ack policy", existing.ack_policy, wanted.ack_policy);
    differs(
        fixed,
        "replay policy",
        existing.replay_policy,
        wanted.replay_policy,
    );
    let in_place = &mut diff.in_place;
    differs(
        in_place,
        "filter subjects",
        filters(&existing.filter_subject, &existing.filter_subjects),
        filters(&wanted.filter_subject, &wanted.filter_subjects),
    );
    // With a backoff schedule the server may report its first step as the
    // ack wait; either reading is the wanted configuration.
    if wanted.backoff.first() != Some(&existing.ack_wait) {
        differs(in_place, "ack wait", existing.ack_wait, wanted.ack_wait);
    }
    differs(
        in_place,
        "max deliver",
        existing.max_deliver,
        wanted.max_deliver,
    );
    differs(in_place, "backoff", &existing.backoff, &wanted.backoff);
    differs(
        in_place,
        "max ack pending",
        existing.max_ack_pending,
        wanted.max_ack_pending,
    );
    diff
}

#[cfg(test)]
mod consumer_tests {
    use super::*;
    use crate::protocol::{ConsumedEvent, ConsumerBinding};
    use async_nats::jetstream::consumer::{self, DeliverPolicy};

    fn binding() -> ConsumerBinding {
        ConsumerBinding {
            source: "ledger@v1".into(),
            stream: "s".into(),
            consumer: "c".into(),
            events: vec![ConsumedEvent {
                name: "Ledger.Posted".into(),
                subject: "trellis.dev.ledger@v1.events.v1.Ledger.Posted.*".into(),
            }],
            replay: "new".into(),
            ack_wait_ms: 2_000,
            max_deliver: 4,
            backoff_ms: vec![300, 600, 900],
            max_ack_pending: 1,
        }
    }

    /// What the server reports for a pull config: one filter as
    /// `filter_subject`, and possibly the first backoff step as ack wait.
    fn as_installed(c: &consumer::pull::Config) -> consumer::Config {
        let mut installed = consumer::IntoConsumerConfig::into_consumer_config(c.clone());
        installed.filter_subject = c.filter_subjects[0].clone();
        installed.filter_subjects = Vec::new();
        installed.ack_wait = c.backoff[0];
        installed
    }

    #[test]
    fn an_installed_consumer_matches_its_own_config() {
        let wanted = consumer_config(&binding());
        assert!(consumer_diff(&as_installed(&wanted), &wanted).is_empty());
    }

    #[test]
    fn replay_changes_need_a_recreate_and_tuning_does_not() {
        let wanted = consumer_config(&binding());
        let mut installed = as_installed(&wanted);
        installed.deliver_policy = DeliverPolicy::All;
        installed.max_deliver = 9;
        let diff = consumer_diff(&installed, &wanted);
        assert_eq!(diff.fixed, ["deliver policy All -> New"]);
        assert_eq!(diff.in_place, ["max deliver 9 -> 4"]);
    }
}
