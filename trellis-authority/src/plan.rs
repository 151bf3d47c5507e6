//! Plans: what accepting a contract would change, each change classified
//! safe or dangerous.
//!
//! Dangerous: removing (or renaming) an alias, lowering history / TTL /
//! byte limits, changing a KV value schema incompatibly, and adopting an
//! existing resource whose configuration does not fit.

use std::collections::BTreeSet;

use trellis_manifest::Json;
use trellis_manifest::manifest::{KvResource, Manifest, StoreResource};
use trellis_runtime::protocol::{Change, Plan, PlanItem, ResourceKind};

/// How an existing physical resource relates to what a plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// No stream with that name.
    Absent,
    /// A stream that can be adopted.
    Compatible,
    /// A stream that cannot be adopted, and why.
    Incompatible(String),
}

/// Computes a plan. `existing` reports, for an added alias, what already
/// sits under its physical name; `physical` names resources.
pub fn compute(
    previous: Option<&Manifest>,
    next: &Manifest,
    digest: &str,
    previous_digest: Option<&str>,
    physical: &dyn Fn(ResourceKind, &str) -> String,
    existing: &dyn Fn(ResourceKind, &str) -> Existing,
) -> Plan {
    let empty = trellis_manifest::manifest::Resources::default();
    let old = previous
        .and_then(|m| m.resources.as_ref())
        .unwrap_or(&empty);
    let new = next.resources.as_ref().unwrap_or(&empty);
    let mut items = Vec::new();
    let mut item = |kind, alias: &str, change, dangers: Vec<String>| {
        items.push(PlanItem {
            kind,
            alias: alias.to_owned(),
            physical: physical(kind, alias),
            change,
            dangers,
        });
    };

    let kv_aliases: BTreeSet<&String> = old.kv.keys().chain(new.kv.keys()).collect();
    for alias in kv_aliases {
        match (old.kv.get(alias), new.kv.get(alias)) {
            (None, Some(_)) => item(
                ResourceKind::Kv,
                alias,
                Change::Added,
                adoption(existing(ResourceKind::Kv, alias)),
            ),
            (Some(_), None) => item(
                ResourceKind::Kv,
                alias,
                Change::Removed,
                vec![removal(alias)],
            ),
            (Some(a), Some(b)) => {
                let (fields, dangers) = kv_diff(a, b, previous, next);
                if !fields.is_empty() {
                    item(ResourceKind::Kv, alias, Change::Changed { fields }, dangers);
                }
            }
            (None, None) => {}
        }
    }
    let store_aliases: BTreeSet<&String> = old.store.keys().chain(new.store.keys()).collect();
    for alias in store_aliases {
        match (old.store.get(alias), new.store.get(alias)) {
            (None, Some(_)) => item(
                ResourceKind::Store,
                alias,
                Change::Added,
                adoption(existing(ResourceKind::Store, alias)),
            ),
            (Some(_), None) => item(
                ResourceKind::Store,
                alias,
                Change::Removed,
                vec![removal(alias)],
            ),
            (Some(a), Some(b)) => {
                let (fields, dangers) = store_diff(a, b);
                if !fields.is_empty() {
                    item(
                        ResourceKind::Store,
                        alias,
                        Change::Changed { fields },
                        dangers,
                    );
                }
            }
            (None, None) => {}
        }
    }
    Plan {
        id: next.id.clone(),
        digest: digest.to_owned(),
        previous_digest: previous_digest.map(str::to_owned),
        items,
    }
}

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

fn removal(alias: &str) -> String {
    format!(
        "alias `{alias}` is removed (or renamed): its resource is detached from the service and \
         kept as orphaned data until an operator purges it"
    )
}

fn adoption(existing: Existing) -> Vec<String> {
    match existing {
        Existing::Incompatible(why) => vec![format!(
            "an incompatible resource already exists under this name and will not be adopted: {why}"
        )],
        Existing::Absent | Existing::Compatible => Vec::new(),
    }
}

/// `0` means unlimited for TTLs.
fn lowered_ttl(old: u64, new: u64) -> bool {
    new != 0 && (old == 0 || new < old)
}

/// `None` means unlimited.
fn lowered_limit(old: Option<u64>, new: Option<u64>) -> bool {
    match (old, new) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(o), Some(n)) => n < o,
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

fn kv_diff(
    a: &KvResource,
    b: &KvResource,
    previous: Option<&Manifest>,
    next: &Manifest,
) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut dangers = Vec::new();
    let (ha, hb) = (a.history.unwrap_or(1), b.history.unwrap_or(1));
    if ha != hb {
        fields.push(format!("history {ha} -> {hb}"));
        if hb < ha {
            dangers.push(format!(
                "history lowered from {ha} to {hb}: older revisions are dropped"
            ));
        }
    }
    let (ta, tb) = (a.ttl_ms.unwrap_or(0), b.ttl_ms.unwrap_or(0));
    if ta != tb {
        fields.push(format!("ttlMs {ta} -> {tb}"));
        if lowered_ttl(ta, tb) {
            dangers.push(format!(
                "ttl lowered from {ta} ms to {tb} ms: older values expire"
            ));
        }
    }
    if a.max_value_bytes != b.max_value_bytes {
        fields.push(format!(
            "maxValueBytes {} -> {}",
            show(a.max_value_bytes),
            show(b.max_value_bytes)
        ));
        if lowered_limit(a.max_value_bytes, b.max_value_bytes) {
            dangers.push(
                "max value size lowered: existing larger values can no longer be rewritten".into(),
            );
        }
    }
    if a.required != b.required {
        fields.push(format!("required {:?} -> {:?}", a.required, b.required));
    }
    if a.purpose != b.purpose {
        fields.push("purpose".to_owned());
    }
    let old_schema = previous.and_then(|m| m.schemas.get(&a.schema.schema));
    let new_schema = next.schemas.get(&b.schema.schema);
    if a.schema != b.schema || old_schema != new_schema {
        fields.push(format!("schema {} -> {}", a.schema.schema, b.schema.schema));
        match (old_schema, new_schema) {
            (Some(o), Some(n)) => {
                if let Err(why) = schema_compatible(o, n, "") {
                    dangers.push(format!(
                        "value schema changes incompatibly ({why}): stored values may no longer decode"
                    ));
                }
            }
            _ => dangers.push("value schema cannot be compared".to_owned()),
        }
    }
    (fields, dangers)
}

fn store_diff(a: &StoreResource, b: &StoreResource) -> (Vec<String>, Vec<String>) {
    let mut fields = Vec::new();
    let mut dangers = Vec::new();
    let (ta, tb) = (a.ttl_ms.unwrap_or(0), b.ttl_ms.unwrap_or(0));
    if ta != tb {
        fields.push(format!("ttlMs {ta} -> {tb}"));
        if lowered_ttl(ta, tb) {
            dangers.push(format!(
                "ttl lowered from {ta} ms to {tb} ms: older objects expire"
            ));
        }
    }
    if a.max_total_bytes != b.max_total_bytes {
        fields.push(format!(
            "maxTotalBytes {} -> {}",
            show(a.max_total_bytes),
            show(b.max_total_bytes)
        ));
        if lowered_limit(a.max_total_bytes, b.max_total_bytes) {
            dangers.push("store size limit lowered: writes may be refused once above it".into());
        }
    }
    if a.max_object_bytes != b.max_object_bytes {
        fields.push("maxObjectBytes".to_owned());
    }
    if a.required != b.required {
        fields.push(format!("required {:?} -> {:?}", a.required, b.required));
    }
    if a.purpose != b.purpose {
        fields.push("purpose".to_owned());
    }
    (fields, dangers)
}

fn strings(v: Option<&Json>) -> BTreeSet<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn num(v: Option<&Json>) -> Option<f64> {
    match v? {
        Json::Number(trellis_manifest::json::Number::Int(i)) => Some(*i as f64),
        Json::Number(trellis_manifest::json::Number::UInt(u)) => Some(*u as f64),
        Json::Number(trellis_manifest::json::Number::Float(f)) => Some(*f),
        _ => None,
    }
}

/// Whether every value valid under `old` is still valid under `new`
/// (conservative: unknown differences count as incompatible).
pub fn schema_compatible(old: &Json, new: &Json, at: &str) -> Result<(), String> {
    if old == new || new.as_object().is_some_and(|m| m.is_empty()) {
        return Ok(());
    }
    let here = if at.is_empty() { "/" } else { at };
    let branches = |s: &Json| -> Option<Vec<Json>> {
        s.get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Json::as_array)
            .map(<[Json]>::to_vec)
    };
    if let Some(old_branches) = branches(old) {
        return old_branches
            .iter()
            .try_for_each(|b| schema_compatible(b, new, at));
    }
    if let Some(new_branches) = branches(new) {
        return if new_branches
            .iter()
            .any(|b| schema_compatible(old, b, at).is_ok())
        {
            Ok(())
        } else {
            Err(format!(
                "{here}: no alternative of the new schema accepts the old values"
            ))
        };
    }
    let (ot, nt) = (
        old.get("type").and_then(Json::as_str),
        new.get("type").and_then(Json::as_str),
    );
    if ot != nt && !(ot == Some("integer") && nt == Some("number")) {
        return Err(format!("{here}: type {ot:?} became {nt:?}"));
    }
    if let Some(new_enum) = new.get("enum") {
        let (o, n) = (strings(old.get("enum")), strings(Some(new_enum)));
        if old.get("enum").is_none() || !o.is_subset(&n) {
            return Err(format!("{here}: allowed values narrowed"));
        }
    }
    if new.get("const").is_some() && new.get("const") != old.get("const") {
        return Err(format!("{here}: constant changed"));
    }
    for key in ["minimum", "minLength", "minItems"] {
        if let Some(n) = num(new.get(key))
            && num(old.get(key)).is_none_or(|o| o < n)
        {
            return Err(format!("{here}: {key} raised"));
        }
    }
    for key in ["maximum", "maxLength", "maxItems"] {
        if let Some(n) = num(new.get(key))
            && num(old.get(key)).is_none_or(|o| o > n)
        {
            return Err(format!("{here}: {key} lowered"));
        }
    }
    if new.get("uniqueItems") == Some(&Json::Bool(true))
        && old.get("uniqueItems") != Some(&Json::Bool(true))
    {
        return Err(format!("{here}: items must now be unique"));
    }
    if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
        schema_compatible(o, n, &format!("{at}/items"))?;
    }
    if let (Some(o), Some(n)) = (
        old.get("additionalProperties"),
        new.get("additionalProperties"),
    ) {
        schema_compatible(o, n, &format!("{at}/*"))?;
    }
    let (old_req, new_req) = (strings(old.get("required")), strings(new.get("required")));
    if let Some(added) = new_req.difference(&old_req).next() {
        return Err(format!("{here}: field `{added}` became required"));
    }
    if let (Some(Json::Object(op)), Some(Json::Object(np))) =
        (old.get("properties"), new.get("properties"))
    {
        for (name, ns) in np {
            if let Some(os) = op.get(name) {
                schema_compatible(os, ns, &format!("{at}/{name}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        Json::parse(text).expect("json")
    }

    #[test]
    fn additive_schema_changes_are_compatible() {
        let old = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id","n"]}"#,
        );
        let added_optional = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"number"},"x":{"type":"string"}},"required":["id"]}"#,
        );
        assert_eq!(schema_compatible(&old, &added_optional, ""), Ok(()));
        let widened_enum = (
            j(r#"{"type":"string","enum":["a"]}"#),
            j(r#"{"type":"string","enum":["a","b"]}"#),
        );
        assert_eq!(
            schema_compatible(&widened_enum.0, &widened_enum.1, ""),
            Ok(())
        );
        let made_optional = j(r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#);
        assert_eq!(
            schema_compatible(&j(r#"{"type":"string"}"#), &made_optional, ""),
            Ok(())
        );
    }

    #[test]
    fn narrowing_schema_changes_are_incompatible() {
        let old = j(r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#);
        let new_required = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"string"}},"required":["id","x"]}"#,
        );
        assert!(
            schema_compatible(&old, &new_required, "")
                .unwrap_err()
                .contains("`x` became required")
        );
        let retyped =
            j(r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#);
        assert!(
            schema_compatible(&old, &retyped, "")
                .unwrap_err()
                .contains("/id")
        );
        let narrowed = (
            j(r#"{"type":"string","enum":["a","b"]}"#),
            j(r#"{"type":"string","enum":["a"]}"#),
        );
        assert!(schema_compatible(&narrowed.0, &narrowed.1, "").is_err());
        let bounded = (
            j(r#"{"type":"integer"}"#),
            j(r#"{"type":"integer","maximum":5}"#),
        );
        assert!(schema_compatible(&bounded.0, &bounded.1, "").is_err());
    }

    #[test]
    fn limit_direction_rules() {
        assert!(lowered_ttl(0, 1000));
        assert!(lowered_ttl(2000, 1000));
        assert!(!lowered_ttl(1000, 0));
        assert!(!lowered_ttl(1000, 2000));
        assert!(lowered_limit(None, Some(5)));
        assert!(lowered_limit(Some(6), Some(5)));
        assert!(!lowered_limit(Some(5), None));
    }
}
