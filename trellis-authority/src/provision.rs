//! What the authority provisions: the bindings a manifest's resources ask
//! for, whether an existing stream may be adopted, and the durable
//! consumer configuration of an event consumer group.
//!
//! The stream configurations themselves are the runtime's
//! [`trellis_runtime::layout`]: services and the authority share them.

use std::time::Duration;

use async_nats::jetstream::stream::{self, RetentionPolicy};
use trellis_runtime::layout::RUNTIME_RETENTION_MS;
use trellis_runtime::protocol::{ConsumerBinding, KvBinding, StoreBinding};

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

/// The binding of a contract's ledger (runtime-owned): one revision
/// per key, records kept 7 days after their last change.
pub fn ledger_binding(bucket: &str) -> KvBinding {
    KvBinding {
        bucket: bucket.to_owned(),
        history: 1,
        ttl_ms: RUNTIME_RETENTION_MS,
        max_value_bytes: None,
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

/// The JetStream pull-consumer configuration of a consumer binding: a
/// durable, explicitly acked consumer delivering exactly the group's event
/// subjects.
pub fn consumer_config(binding: &ConsumerBinding) -> async_nats::jetstream::consumer::pull::Config {
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
    use async_nats::jetstream::consumer::{self, DeliverPolicy};
    use trellis_runtime::protocol::{ConsumedEvent, ConsumerBinding};

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
