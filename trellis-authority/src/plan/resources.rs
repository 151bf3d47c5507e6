//! Resource changes of a plan: the `kv` and `store` aliases of the
//! proposed manifest against the accepted one, each classified safe or
//! dangerous.
//!
//! Dangerous: removing (or renaming) an alias, lowering history / TTL /
//! byte limits, changing a KV value schema incompatibly, and adopting an
//! existing resource whose configuration does not fit.

use std::collections::BTreeSet;

use trellis_manifest::manifest::{KvResource, Manifest, StoreResource};
use trellis_runtime::protocol::{Change, PlanItem, ResourceKind};

use super::Existing;
use super::schema::schema_compatible;

/// The resource items of a plan. `existing` reports, for an added alias,
/// what already sits under its physical name; `physical` names resources.
pub(super) fn items(
    previous: Option<&Manifest>,
    next: &Manifest,
    physical: &dyn Fn(ResourceKind, &str) -> String,
    existing: &dyn Fn(ResourceKind, &str) -> Existing,
) -> Vec<PlanItem> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
