//! Durable event consumers: what a contract's `eventConsumers` groups need
//! on the server, and the `uses` checks a plan makes.
//!
//! A group may read events of several contracts (its own and those of its
//! `uses` aliases). Each contract's events live in that contract's own
//! stream, and a JetStream consumer reads one stream, so a group gets one
//! durable consumer per source contract, named from the deployment, the
//! consuming contract's lineage, the group and the source. Ordering is
//! therefore per source stream; no order exists across contracts anyway.

use std::collections::BTreeMap;

use trellis_manifest::manifest::{Manifest, Ordering, Replay};

use crate::config::AuthorityConfig;
use crate::naming::lineage_key;
use crate::records::{Desired, Records, storage};
use trellis_runtime::protocol::{AuthorityError, ConsumedEvent, ConsumerBinding, ResourceKind};

/// Ack wait when a group declares none (the format's default).
pub(crate) const DEFAULT_ACK_WAIT_MS: u64 = 300_000;
/// Deliveries when a group declares none (the format's default).
pub(crate) const DEFAULT_MAX_DELIVER: u64 = 6;

/// One consumer a group needs.
#[derive(Debug, Clone)]
pub(crate) struct WantedConsumer {
    /// `<group>/<source contract>`.
    pub(crate) alias: String,
    pub(crate) group: String,
    /// False when the source is an optional `uses` alias.
    pub(crate) required: bool,
    /// Durable consumer name.
    pub(crate) physical: String,
    /// The binding, or why it cannot be computed yet (source not accepted).
    pub(crate) binding: Result<ConsumerBinding, String>,
}

/// The accepted manifests of the contracts `manifest` uses, by id.
pub(crate) async fn used_manifests(
    records: &Records,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Manifest>, AuthorityError> {
    let mut out = BTreeMap::new();
    let Some(uses) = &manifest.uses else {
        return Ok(out);
    };
    for used in uses.all().values() {
        if out.contains_key(&used.contract) || used.contract == manifest.id {
            continue;
        }
        let key = format!("contract.{}.desired", lineage_key(&used.contract));
        if let Some(desired) = records.read::<Desired>(&key).await? {
            let m: Manifest = serde_json::from_str(&desired.value.manifest).map_err(storage)?;
            out.insert(used.contract.clone(), m);
        }
    }
    Ok(out)
}

/// Why `manifest`'s `uses` cannot be accepted: an unknown required
/// contract, or a selected surface the used contract does not have.
pub(crate) fn uses_problems(manifest: &Manifest, used: &BTreeMap<String, Manifest>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(uses) = &manifest.uses else {
        return problems;
    };
    let required = uses.required();
    for (alias, r) in uses.all() {
        let remote = if r.contract == manifest.id {
            Some(manifest)
        } else {
            used.get(&r.contract)
        };
        let Some(remote) = remote else {
            if required.contains_key(alias) {
                problems.push(format!(
                    "uses.required.{alias}: contract {} is not accepted in this deployment; \
                     accept it first, or mark the alias optional",
                    r.contract
                ));
            }
            continue;
        };
        let mut check = |kind: &str, names: Option<&Vec<String>>, known: &dyn Fn(&str) -> bool| {
            for name in names.into_iter().flatten() {
                if !known(name) {
                    problems.push(format!(
                        "uses.{alias}: {} has no {kind} `{name}`",
                        r.contract
                    ));
                }
            }
        };
        check("RPC", r.rpc.as_ref().and_then(|c| c.call.as_ref()), &|n| {
            remote.rpc.contains_key(n)
        });
        check(
            "operation",
            r.operations.as_ref().and_then(|c| c.call.as_ref()),
            &|n| remote.operations.contains_key(n),
        );
        check(
            "event",
            r.events.as_ref().and_then(|e| e.subscribe.as_ref()),
            &|n| remote.events.contains_key(n),
        );
        check(
            "event",
            r.events.as_ref().and_then(|e| e.publish.as_ref()),
            &|n| remote.events.contains_key(n),
        );
    }
    problems
}

/// The filter subject of an event: its template with every parameter `*`.
pub(crate) fn filter_subject(deployment: &str, contract: &str, template: &str) -> String {
    let wildcarded =
        trellis_runtime::internal::render_template(template, |_| Ok::<_, ()>("*".to_owned()))
            .unwrap_or_else(|_| template.to_owned());
    trellis_runtime::internal::surface_subject(deployment, contract, &wildcarded)
}

/// The alias of a group's consumer on one source contract.
pub(crate) fn alias(group: &str, source: &str) -> String {
    format!("{group}/{source}")
}

/// Installed consumer bindings by alias.
pub(crate) fn by_alias(
    consumers: &BTreeMap<String, Vec<ConsumerBinding>>,
) -> BTreeMap<String, ConsumerBinding> {
    consumers
        .iter()
        .flat_map(|(group, list)| {
            list.iter()
                .map(move |b| (alias(group, &b.source), b.clone()))
        })
        .collect()
}

/// Every consumer `manifest`'s groups need, sorted by alias.
pub(crate) fn wanted(
    config: &AuthorityConfig,
    manifest: &Manifest,
    used: &BTreeMap<String, Manifest>,
) -> Vec<WantedConsumer> {
    let mut out = Vec::new();
    let all_uses = manifest.uses.as_ref().map(|u| u.all()).unwrap_or_default();
    let required_uses = manifest.uses.as_ref().map(|u| u.required());
    for (group, g) in &manifest.event_consumers {
        // Source contract -> (required, event names).
        let mut sources: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        if let Some(own) = &g.own {
            let entry = sources
                .entry(manifest.id.clone())
                .or_insert((true, Vec::new()));
            entry.1.extend(own.iter().cloned());
        }
        for (alias, events) in g.uses.iter().flatten() {
            let Some(r) = all_uses.get(alias.as_str()) else {
                continue;
            };
            let required = required_uses.is_some_and(|req| req.contains_key(alias));
            let entry = sources
                .entry(r.contract.clone())
                .or_insert((required, Vec::new()));
            entry.0 |= required;
            entry.1.extend(events.iter().cloned());
        }
        let max_deliver = g.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER).max(1);
        let backoff_ms: Vec<u64> = g
            .backoff_ms
            .iter()
            .flatten()
            .copied()
            .take(usize::try_from(max_deliver - 1).unwrap_or(usize::MAX))
            .collect();
        let max_ack_pending = match g.ordering {
            Some(Ordering::Strict) => 1,
            None => g.concurrency.unwrap_or(1).max(1),
        };
        for (source, (required, mut events)) in sources {
            events.sort();
            events.dedup();
            let alias = alias(group, &source);
            let physical = config.physical(&manifest.id, ResourceKind::Consumer, &alias);
            let source_manifest = if source == manifest.id {
                Some(manifest)
            } else {
                used.get(&source)
            };
            let binding = match source_manifest {
                None => Err(format!(
                    "contract {source} is not accepted in this deployment yet"
                )),
                Some(m) => events
                    .iter()
                    .map(|name| {
                        m.events
                            .get(name)
                            .map(|e| ConsumedEvent {
                                name: name.clone(),
                                subject: filter_subject(&config.deployment, &source, &e.subject),
                            })
                            .ok_or_else(|| format!("contract {source} has no event `{name}`"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|events| ConsumerBinding {
                        stream: config.physical(&source, ResourceKind::Events, "events"),
                        source: source.clone(),
                        consumer: physical.clone(),
                        events,
                        replay: match g.replay {
                            Some(Replay::All) => "all",
                            Some(Replay::New) | None => "new",
                        }
                        .to_owned(),
                        ack_wait_ms: g.ack_wait_ms.unwrap_or(DEFAULT_ACK_WAIT_MS),
                        max_deliver,
                        backoff_ms: backoff_ms.clone(),
                        max_ack_pending,
                    }),
            };
            out.push(WantedConsumer {
                alias,
                group: group.clone(),
                required,
                physical,
                binding,
            });
        }
    }
    out.sort_by(|a, b| a.alias.cmp(&b.alias));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_subjects_wildcard_every_parameter() {
        assert_eq!(
            filter_subject("dev", "documents@v1", "events.v1.Documents.Created.{/key}"),
            "trellis.dev.documents@v1.events.v1.Documents.Created.*"
        );
        assert_eq!(
            filter_subject("dev", "a.b@v1", "events.v1.A.B.{/x}.{/y}"),
            "trellis.dev.a_b@v1.events.v1.A.B.*.*"
        );
        assert_eq!(
            filter_subject("dev", "a@v1", "events.v1.A.B"),
            "trellis.dev.a@v1.events.v1.A.B"
        );
    }
}
