//! Consumer changes of a plan: the durable consumers the proposed
//! manifest's event consumer groups need against those the last reconcile
//! installed.

use trellis_runtime::protocol::{Change, PlanItem, ResourceKind};

use super::Existing;

/// Plan items for durable event consumers. `installed` is what the last
/// reconcile provisioned (by `<group>/<source>` alias), `wanted` what the
/// proposed manifest needs, and `existing(alias)` what already sits on the
/// server for an added one.
pub(crate) fn consumer_items(
    installed: &std::collections::BTreeMap<String, trellis_runtime::protocol::ConsumerBinding>,
    wanted: &[crate::consumers::WantedConsumer],
    existing: &dyn Fn(&str) -> Existing,
) -> Vec<PlanItem> {
    let mut items = Vec::new();
    for w in wanted {
        let mut item = |change, dangers| {
            items.push(PlanItem {
                kind: ResourceKind::Consumer,
                alias: w.alias.clone(),
                physical: w.physical.clone(),
                change,
                dangers,
            });
        };
        match (installed.get(&w.alias), &w.binding) {
            (None, _) => {
                let dangers = match existing(&w.alias) {
                    Existing::Incompatible(why) => vec![format!(
                        "a consumer with this name already exists and NATS cannot change it in place ({why}): it is deleted and recreated, and its cursor starts over"
                    )],
                    Existing::Absent | Existing::Compatible => Vec::new(),
                };
                item(Change::Added, dangers);
            }
            (Some(old), Ok(new)) => {
                let mut fields = Vec::new();
                let mut dangers = Vec::new();
                if old.replay != new.replay {
                    fields.push(format!("replay {} -> {}", old.replay, new.replay));
                    dangers.push(format!(
                        "replay changes from `{}` to `{}`: NATS cannot change a consumer's deliver policy, so the consumer is deleted and recreated and its cursor starts over (events may be processed again or skipped)",
                        old.replay, new.replay
                    ));
                }
                let names = |b: &trellis_runtime::protocol::ConsumerBinding| {
                    b.events.iter().map(|e| e.name.clone()).collect::<Vec<_>>()
                };
                if old.events != new.events {
                    fields.push(format!("events {:?} -> {:?}", names(old), names(new)));
                }
                if old.ack_wait_ms != new.ack_wait_ms {
                    fields.push(format!(
                        "ackWaitMs {} -> {}",
                        old.ack_wait_ms, new.ack_wait_ms
                    ));
                }
                if old.max_deliver != new.max_deliver {
                    fields.push(format!(
                        "maxDeliver {} -> {}",
                        old.max_deliver, new.max_deliver
                    ));
                }
                if old.backoff_ms != new.backoff_ms {
                    fields.push(format!(
                        "backoffMs {:?} -> {:?}",
                        old.backoff_ms, new.backoff_ms
                    ));
                }
                if old.max_ack_pending != new.max_ack_pending {
                    fields.push(format!(
                        "maxAckPending {} -> {}",
                        old.max_ack_pending, new.max_ack_pending
                    ));
                }
                if !fields.is_empty() {
                    item(Change::Changed { fields }, dangers);
                }
            }
            (Some(_), Err(_)) => {}
        }
    }
    for (alias, old) in installed {
        if wanted.iter().all(|w| &w.alias != alias) {
            items.push(PlanItem {
                kind: ResourceKind::Consumer,
                alias: alias.clone(),
                physical: old.consumer.clone(),
                change: Change::Removed,
                dangers: vec![format!(
                    "consumer `{alias}` is removed: its durable consumer and cursor are deleted, and unprocessed events of {} are no longer delivered to this service",
                    old.source
                )],
            });
        }
    }
    items
}
