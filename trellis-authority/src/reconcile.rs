//! Reconciliation: make the materialized JetStream resources match the
//! accepted contracts, idempotently.
//!
//! Safety rules:
//! - one reconciler per contract at a time (a KV lease taken with
//!   compare-and-set), and physical names are deterministic, so concurrent
//!   reconcilers can never create two resources for one alias;
//! - an existing stream is adopted only after its configuration is checked
//!   ([`provision::incompatibility`]); an incompatible one is a failure with
//!   the reason, never adopted or overwritten;
//! - a failed resource keeps its last good binding, so running services
//!   keep working, and is retried with exponential backoff;
//! - every pass re-reads the actual streams, so hand edits and deletions
//!   (drift) are repaired;
//! - aliases that disappear are detached: the binding goes, the data stays,
//!   and an orphan record lists it until an operator purges it.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, stream};
use tracing::{debug, info, warn};
use trellis_manifest::manifest::Manifest;

use crate::config::AuthorityConfig;
use crate::provision;
use crate::records::{Desired, Records, now_ms};
use trellis_runtime::protocol::*;

/// Lease length; a pass over one contract takes far less.
const LEASE_MS: u64 = 15_000;

/// Backoff after `attempts` consecutive failures.
pub(crate) fn backoff_ms(attempts: u32) -> u64 {
    let exp = 250u64.saturating_mul(1 << attempts.min(10));
    exp.min(30_000)
}

pub(crate) struct Reconciler {
    pub(crate) js: jetstream::Context,
    pub(crate) records: Records,
    pub(crate) config: AuthorityConfig,
    pub(crate) holder: String,
    /// Phase gauges and pass counters.
    pub(crate) metrics: std::sync::Arc<crate::metrics::AuthorityMetrics>,
}

/// Outcome of ensuring one resource.
enum Ensured<B> {
    Ready(B),
    Failed(String),
}

fn read_kv_binding(bucket: &str, config: &stream::Config) -> KvBinding {
    KvBinding {
        bucket: bucket.to_owned(),
        history: config.max_messages_per_subject.max(1) as u64,
        ttl_ms: config.max_age.as_millis() as u64,
        max_value_bytes: u64::try_from(config.max_message_size)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.saturating_sub(trellis_runtime::layout::KV_HEADER_ROOM)),
    }
}

fn read_store_binding(bucket: &str, config: &stream::Config) -> StoreBinding {
    StoreBinding {
        bucket: bucket.to_owned(),
        ttl_ms: config.max_age.as_millis() as u64,
        max_total_bytes: u64::try_from(config.max_bytes).ok().filter(|n| *n > 0),
    }
}

impl Reconciler {
    /// Reconciles every accepted contract once.
    pub(crate) async fn pass(&self) -> Result<(), AuthorityError> {
        let keys = self.records.keys("contract.>").await?;
        for key in keys.iter().filter(|k| k.ends_with(".desired")) {
            let lineage = key
                .trim_start_matches("contract.")
                .trim_end_matches(".desired")
                .to_owned();
            if let Err(e) = self.reconcile(&lineage).await {
                warn!(contract = %lineage, error = %e, "reconcile failed");
                self.metrics.reconcile_failed(&lineage.replace('=', "@"));
            }
        }
        self.metrics.pass();
        Ok(())
    }

    /// Reconciles one contract, if this reconciler holds its lease.
    pub(crate) async fn reconcile(&self, lineage: &str) -> Result<(), AuthorityError> {
        if !self
            .records
            .acquire_lease(lineage, &self.holder, LEASE_MS)
            .await?
        {
            debug!(contract = %lineage, "another reconciler holds the lease");
            return Ok(());
        }
        let result = self.reconcile_locked(lineage).await;
        if let Err(e) = self.records.release_lease(lineage, &self.holder).await {
            warn!(contract = %lineage, error = %e, "could not release the reconcile lease");
        }
        result
    }

    async fn reconcile_locked(&self, lineage: &str) -> Result<(), AuthorityError> {
        // Loop until the state is written for the latest desired generation
        // (an accept may land while we work).
        for _ in 0..5 {
            let Some(desired) = self
                .records
                .read::<Desired>(&format!("contract.{lineage}.desired"))
                .await?
            else {
                return Ok(());
            };
            let state_key = format!("contract.{lineage}.status");
            let previous = self.records.read::<ContractStatus>(&state_key).await?;
            let next = self
                .compute_state(&desired.value, previous.as_ref().map(|p| &p.value))
                .await?;
            self.metrics.status(&next);
            if previous.as_ref().map(|p| &p.value.resources) != Some(&next.resources)
                || previous
                    .as_ref()
                    .map(|p| (&p.value.bindings, p.value.generation, p.value.phase))
                    != Some((&next.bindings, next.generation, next.phase))
            {
                let written = self
                    .records
                    .write_cas(&state_key, &next, previous.as_ref().map(|p| p.revision))
                    .await?;
                if written.is_none() {
                    continue;
                }
                info!(contract = %desired.value.id, phase = ?next.phase, generation = next.generation, "reconciled");
            }
            if next.phase == Phase::Ready {
                // The last ready manifest: NATS permissions follow it (not
                // a newer accepted one still failing to reconcile).
                let ready_key = format!("contract.{lineage}.ready");
                let current = self.records.read::<Desired>(&ready_key).await?;
                if current.map(|c| c.value.digest) != Some(desired.value.digest.clone()) {
                    self.records.put(&ready_key, &desired.value).await?;
                }
            }
            let latest = self
                .records
                .read::<Desired>(&format!("contract.{lineage}.desired"))
                .await?;
            if latest.map(|d| d.revision) == Some(desired.revision) {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn compute_state(
        &self,
        desired: &Desired,
        previous: Option<&ContractStatus>,
    ) -> Result<ContractStatus, AuthorityError> {
        let manifest: Manifest =
            serde_json::from_str(&desired.manifest).map_err(crate::records::storage)?;
        let resources = manifest.resources.clone().unwrap_or_default();
        let last_good = previous.map(|p| p.bindings.clone()).unwrap_or_default();
        let previous_status: BTreeMap<(ResourceKind, String), &ResourceReport> = previous
            .map(|p| {
                p.resources
                    .iter()
                    .map(|r| ((r.kind, r.alias.clone()), r))
                    .collect()
            })
            .unwrap_or_default();
        let now = now_ms();
        let mut states = Vec::new();
        let mut bindings = BindingsRecord::default();

        for (alias, kv) in &resources.kv {
            let physical = self.config.physical(&desired.id, ResourceKind::Kv, alias);
            let wanted = provision::kv_binding(&physical, kv);
            let (state, binding) = self
                .resource(
                    ResourceKind::Kv,
                    alias,
                    &physical,
                    kv.required.unwrap_or(true),
                    trellis_runtime::layout::kv_stream_config(&wanted, self.config.replicas),
                    |c| read_kv_binding(&physical, c),
                    &previous_status,
                    last_good.kv.get(alias).cloned(),
                    now,
                )
                .await;
            if let Some(b) = binding {
                bindings.kv.insert(alias.clone(), b);
            }
            states.push(state);
        }
        for (alias, st) in &resources.store {
            let physical = self
                .config
                .physical(&desired.id, ResourceKind::Store, alias);
            let wanted = provision::store_binding(&physical, st);
            let (state, binding) = self
                .resource(
                    ResourceKind::Store,
                    alias,
                    &physical,
                    st.required.unwrap_or(true),
                    trellis_runtime::layout::object_stream_config(&wanted, self.config.replicas),
                    |c| read_store_binding(&physical, c),
                    &previous_status,
                    last_good.store.get(alias).cloned(),
                    now,
                )
                .await;
            if let Some(b) = binding {
                bindings.store.insert(alias.clone(), b);
            }
            states.push(state);
        }

        // Runtime-owned resources derived from the contract: the ledger
        // (operations, receive grants, rejected events) and the event stream.
        let needs_ledger = !manifest.operations.is_empty()
            || manifest.rpc.values().any(|m| m.transfer.is_some())
            || !manifest.event_consumers.is_empty();
        if needs_ledger {
            let physical = self
                .config
                .physical(&desired.id, ResourceKind::Ledger, "ledger");
            let wanted = provision::ledger_binding(&physical);
            let (state, binding) = self
                .resource(
                    ResourceKind::Ledger,
                    "ledger",
                    &physical,
                    true,
                    trellis_runtime::layout::kv_stream_config(&wanted, self.config.replicas),
                    |c| read_kv_binding(&physical, c),
                    &previous_status,
                    last_good.ledger.clone(),
                    now,
                )
                .await;
            bindings.ledger = binding;
            states.push(state);
        }
        if !manifest.events.is_empty() {
            let physical = self
                .config
                .physical(&desired.id, ResourceKind::Events, "events");
            let wanted = EventsBinding {
                stream: physical.clone(),
                subjects: vec![trellis_runtime::internal::surface_subject(
                    &self.config.deployment,
                    &desired.id,
                    "events.>",
                )],
            };
            let (state, binding) = self
                .resource(
                    ResourceKind::Events,
                    "events",
                    &physical,
                    true,
                    trellis_runtime::layout::events_stream_config(&wanted, self.config.replicas),
                    |c| EventsBinding {
                        stream: c.name.clone(),
                        subjects: c.subjects.clone(),
                    },
                    &previous_status,
                    last_good.events.clone(),
                    now,
                )
                .await;
            bindings.events = binding;
            states.push(state);
        }

        // Durable event consumers, after the own event stream they may read.
        let used = crate::consumers::used_manifests(&self.records, &manifest).await?;
        let wanted = crate::consumers::wanted(&self.config, &manifest, &used);
        let installed = crate::consumers::by_alias(&last_good.consumers);
        for w in &wanted {
            let prior = previous_status
                .get(&(ResourceKind::Consumer, w.alias.clone()))
                .copied();
            let last = installed.get(&w.alias).cloned();
            let outcome = if backing_off(prior, now) {
                None
            } else {
                Some(match &w.binding {
                    Err(why) => Ensured::Failed(why.clone()),
                    Ok(b) => {
                        self.ensure_consumer(b, desired.recreate_consumers.contains(&w.alias))
                            .await
                    }
                })
            };
            let (status, binding) = settle(outcome, prior, last);
            states.push(resource_state(
                ResourceKind::Consumer,
                &w.alias,
                w.physical.clone(),
                w.required,
                status,
                prior,
                now,
            ));
            if let Some(b) = binding {
                bindings
                    .consumers
                    .entry(w.group.clone())
                    .or_default()
                    .push(b);
            }
        }
        // Groups (or sources) that disappeared: the accepted plan said the
        // cursor goes, so the consumer is deleted. A failed delete keeps the
        // binding so the next pass retries.
        for (group, list) in &last_good.consumers {
            for b in list {
                let alias = crate::consumers::alias(group, &b.source);
                if wanted.iter().any(|w| w.alias == alias) {
                    continue;
                }
                if let Err(e) = self.delete_consumer(b).await {
                    warn!(consumer = %b.consumer, error = %e, "could not delete a removed consumer");
                    bindings
                        .consumers
                        .entry(group.clone())
                        .or_default()
                        .push(b.clone());
                } else {
                    info!(contract = %desired.id, consumer = %b.consumer, "deleted removed consumer");
                }
            }
        }

        // Aliases that disappeared: detach, keep the data, list the orphan.
        for (kind, alias, physical) in last_good
            .kv
            .iter()
            .filter(|(a, _)| !resources.kv.contains_key(*a))
            .map(|(a, b)| (ResourceKind::Kv, a, &b.bucket))
            .chain(
                last_good
                    .store
                    .iter()
                    .filter(|(a, _)| !resources.store.contains_key(*a))
                    .map(|(a, b)| (ResourceKind::Store, a, &b.bucket)),
            )
        {
            let orphan = Orphan {
                kind,
                physical: physical.clone(),
                contract: desired.id.clone(),
                alias: alias.clone(),
                detached_ms: now,
            };
            self.records
                .put(&format!("orphan.{physical}"), &orphan)
                .await?;
            info!(contract = %desired.id, alias = %alias, physical = %physical, "detached resource; data retained as orphan");
        }

        let phase = if states
            .iter()
            .filter(|r| r.required)
            .all(|r| r.status == ResourceStatus::Ready)
        {
            Phase::Ready
        } else {
            Phase::Pending
        };
        Ok(ContractStatus {
            id: desired.id.clone(),
            digest: desired.digest.clone(),
            generation: desired.generation,
            phase,
            resources: states,
            bindings,
            updated_ms: now,
        })
    }

    /// One resource's pass: ensure its stream unless it is backing off after
    /// a failure, and settle its status and binding (the last good binding
    /// survives a failure).
    #[allow(clippy::too_many_arguments)]
    async fn resource<B>(
        &self,
        kind: ResourceKind,
        alias: &str,
        physical: &str,
        required: bool,
        config: stream::Config,
        read: impl Fn(&stream::Config) -> B,
        previous: &BTreeMap<(ResourceKind, String), &ResourceReport>,
        last_good: Option<B>,
        now: u64,
    ) -> (ResourceReport, Option<B>) {
        let prior = previous.get(&(kind, alias.to_owned())).copied();
        let outcome = if backing_off(prior, now) {
            None
        } else {
            Some(self.ensure(config, read).await)
        };
        let (status, binding) = settle(outcome, prior, last_good);
        (
            resource_state(
                kind,
                alias,
                physical.to_owned(),
                required,
                status,
                prior,
                now,
            ),
            binding,
        )
    }

    /// Creates, adopts or updates one stream; reads the installed limits back.
    async fn ensure<B>(
        &self,
        wanted: stream::Config,
        binding: impl Fn(&stream::Config) -> B,
    ) -> Ensured<B> {
        let name = wanted.name.clone();
        match self.js.get_stream(&name).await {
            Ok(existing) => {
                let config = existing.cached_info().config.clone();
                if let Some(why) = provision::incompatibility(&config, &wanted) {
                    return Ensured::Failed(format!("not adopting existing stream: {why}"));
                }
                if provision::limits_differ(&config, &wanted) {
                    match self.js.update_stream(&wanted).await {
                        Ok(_) => return led(existing, &name, binding).await,
                        Err(e) => {
                            return Ensured::Failed(format!(
                                "updating stream `{name}` failed: {e}"
                            ));
                        }
                    }
                }
                led(existing, &name, binding).await
            }
            Err(e) if is_not_found(&e) => match self.js.create_stream(wanted).await {
                Ok(created) => {
                    info!(stream = %name, "created");
                    led(created, &name, binding).await
                }
                Err(e) => Ensured::Failed(format!("creating stream `{name}` failed: {e}")),
            },
            Err(e) => Ensured::Failed(format!("looking up stream `{name}` failed: {e}")),
        }
    }
}

impl Reconciler {
    /// Creates, adopts, updates or (when the accepted plan allowed it)
    /// recreates one durable consumer, then checks what the server
    /// installed.
    async fn ensure_consumer(
        &self,
        wanted: &ConsumerBinding,
        recreate: bool,
    ) -> Ensured<ConsumerBinding> {
        let stream = match self.js.get_stream(&wanted.stream).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => {
                return Ensured::Failed(format!(
                    "the event stream of {} (`{}`) does not exist yet",
                    wanted.source, wanted.stream
                ));
            }
            Err(e) => {
                return Ensured::Failed(format!(
                    "looking up stream `{}` failed: {e}",
                    wanted.stream
                ));
            }
        };
        let config = provision::consumer_config(wanted);
        let name = &wanted.consumer;
        match stream.consumer_info(name).await {
            Ok(info) => {
                let diff = provision::consumer_diff(&info.config, &config);
                if !diff.fixed.is_empty() {
                    if !recreate {
                        return Ensured::Failed(format!(
                            "not adopting existing consumer `{name}`: {}; accept a plan that \
                             recreates it (--allow-dangerous)",
                            diff.fixed.join(", ")
                        ));
                    }
                    if let Err(e) = stream.delete_consumer(name).await {
                        return Ensured::Failed(format!("deleting consumer `{name}` failed: {e}"));
                    }
                    info!(consumer = %name, why = %diff.fixed.join(", "), "recreating consumer");
                } else if diff.is_empty() {
                    return Ensured::Ready(wanted.clone());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::context::ConsumerInfoErrorKind::NotFound
                ) || matches!(e.kind(), jetstream::context::ConsumerInfoErrorKind::JetStream(js)
                        if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND) => {}
            Err(e) => {
                return Ensured::Failed(format!("reading consumer `{name}` failed: {e}"));
            }
        }
        match stream.create_consumer(config.clone()).await {
            Ok(mut consumer) => match consumer.info().await {
                Ok(info) => {
                    let diff = provision::consumer_diff(&info.config, &config);
                    if diff.is_empty() {
                        info!(consumer = %name, stream = %wanted.stream, "consumer ready");
                        Ensured::Ready(wanted.clone())
                    } else {
                        Ensured::Failed(format!(
                            "consumer `{name}` was installed with a different configuration: {}",
                            diff.in_place
                                .iter()
                                .chain(&diff.fixed)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
                Err(e) => Ensured::Failed(format!("reading consumer `{name}` failed: {e}")),
            },
            Err(e) => Ensured::Failed(format!("creating consumer `{name}` failed: {e}")),
        }
    }

    /// Deletes a consumer of a removed group; a missing one is fine.
    async fn delete_consumer(&self, b: &ConsumerBinding) -> Result<(), String> {
        let stream = match self.js.get_stream(&b.stream).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        match stream.delete_consumer(&b.consumer).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(e.kind(), jetstream::stream::ConsumerErrorKind::JetStream(js)
                if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND) =>
            {
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A stream is ready only once it has a leader: a replicated stream that
/// was just created (or lost its leader) answers "no responders" until an
/// election completes. Waits a bounded time, then reports the failure so
/// the next pass retries.
async fn led<B>(
    mut stream: jetstream::stream::Stream,
    name: &str,
    binding: impl Fn(&stream::Config) -> B,
) -> Ensured<B> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match stream.info().await {
            Ok(info) => {
                let leaderless = info.cluster.as_ref().is_some_and(|c| c.leader.is_none());
                if !leaderless {
                    return Ensured::Ready(binding(&info.config));
                }
            }
            Err(e) if std::time::Instant::now() >= deadline => {
                return Ensured::Failed(format!("reading stream `{name}` failed: {e}"));
            }
            Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            return Ensured::Failed(format!("stream `{name}` has no leader yet"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Decided by the JetStream error code, never by error text.
fn is_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn backing_off(prior: Option<&ResourceReport>, now: u64) -> bool {
    prior.is_some_and(|p| {
        matches!(p.status, ResourceStatus::Failed { .. }) && p.next_attempt_ms > now
    })
}

/// Status and binding after an attempt (`None` = skipped while backing off).
fn settle<B>(
    outcome: Option<Ensured<B>>,
    prior: Option<&ResourceReport>,
    last_good: Option<B>,
) -> (ResourceStatus, Option<B>) {
    match outcome {
        Some(Ensured::Ready(b)) => (ResourceStatus::Ready, Some(b)),
        Some(Ensured::Failed(reason)) => (ResourceStatus::Failed { reason }, last_good),
        None => (
            prior
                .map(|p| p.status.clone())
                .unwrap_or(ResourceStatus::Pending),
            last_good,
        ),
    }
}

fn resource_state(
    kind: ResourceKind,
    alias: &str,
    physical: String,
    required: bool,
    status: ResourceStatus,
    prior: Option<&ResourceReport>,
    now: u64,
) -> ResourceReport {
    let (attempts, next_attempt_ms) = match (&status, prior) {
        (ResourceStatus::Failed { .. }, Some(p)) if p.next_attempt_ms > now => {
            (p.attempts, p.next_attempt_ms)
        }
        (ResourceStatus::Failed { .. }, p) => {
            let attempts = p.map_or(0, |p| p.attempts) + 1;
            (attempts, now + backoff_ms(attempts))
        }
        _ => (0, 0),
    };
    ResourceReport {
        kind,
        alias: alias.to_owned(),
        physical,
        required,
        status,
        attempts,
        next_attempt_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_limits_read_back_as_requested() {
        for max_value_bytes in [None, Some(1), Some(65_536)] {
            for (history, ttl_ms) in [(1, 0), (64, 86_400_000)] {
                let wanted = KvBinding {
                    bucket: "b".into(),
                    history,
                    ttl_ms,
                    max_value_bytes,
                };
                let config = trellis_runtime::layout::kv_stream_config(&wanted, 1);
                assert_eq!(read_kv_binding("b", &config), wanted);
            }
        }
        for max_total_bytes in [None, Some(1_000_000)] {
            let wanted = StoreBinding {
                bucket: "s".into(),
                ttl_ms: 5_000,
                max_total_bytes,
            };
            let config = trellis_runtime::layout::object_stream_config(&wanted, 1);
            assert_eq!(read_store_binding("s", &config), wanted);
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 500);
        assert!(backoff_ms(3) > backoff_ms(2));
        assert_eq!(backoff_ms(30), 30_000);
    }
}
