//! The contract digest: `base64url_nopad(sha256(canonical(projection)))`.
//!
//! The projection keeps only what changes a contract's meaning, so editing
//! display text (display names, descriptions, `docs`) never moves the
//! digest, while editing a purpose, a capability or a schema does. It works
//! on any manifest JSON, including ones trellis-rs did not write; unknown
//! fields are dropped at every level ([`crate::known`]). Every section of
//! the format is covered: besides the surfaces and resources, `state`,
//! `feeds` and `jobs` keep their fields without `docs`, feed capability
//! lists are sets, and the schemas they reference count as reachable.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::json::{Json, Object};
use crate::known::{strip_unknown, uses_is_grouped};

/// Computes the digest of a manifest value.
pub fn digest(manifest: &Json) -> String {
    let canonical = projection(manifest).to_canonical_string();
    let hash = Sha256::digest(canonical.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash)
}

/// Computes the digest of manifest text.
pub fn digest_text(text: &str) -> Result<String, serde_json::Error> {
    Ok(digest(&Json::parse(text)?))
}

const RPC_FIELDS: &[&str] = &[
    "version",
    "subject",
    "input",
    "output",
    "capabilities",
    "errors",
    "transfer",
    "internal",
];
const OPERATION_FIELDS: &[&str] = &[
    "version",
    "subject",
    "input",
    "progress",
    "output",
    "transfer",
    "capabilities",
    "signals",
    "cancel",
];
const EVENT_FIELDS: &[&str] = &["version", "subject", "params", "event", "capabilities"];
const KV_FIELDS: &[&str] = &[
    "purpose",
    "schema",
    "required",
    "history",
    "ttlMs",
    "maxValueBytes",
];
const STORE_FIELDS: &[&str] = &[
    "purpose",
    "required",
    "ttlMs",
    "maxObjectBytes",
    "maxTotalBytes",
];
const CONSUMER_FIELDS: &[&str] = &[
    "uses",
    "self",
    "replay",
    "ordering",
    "concurrency",
    "ackWaitMs",
    "maxDeliver",
    "backoffMs",
];
const STATE_FIELDS: &[&str] = &["kind", "schema", "stateVersion", "acceptedVersions"];
const FEED_FIELDS: &[&str] = &["version", "subject", "input", "event", "capabilities"];
const JOB_FIELDS: &[&str] = &[
    "payload",
    "result",
    "maxDeliver",
    "backoffMs",
    "ackWaitMs",
    "defaultDeadlineMs",
    "progress",
    "logs",
    "dlq",
    "concurrency",
];
const USE_FIELDS: &[&str] = &["contract", "rpc", "operations", "events", "feeds"];

/// The digest projection of a manifest (see module docs).
pub fn projection(manifest: &Json) -> Json {
    let (known, _) = strip_unknown(manifest);
    let Some(top) = known.as_object() else {
        return Json::Null;
    };
    let mut out = Object::new();
    for key in ["format", "id", "kind", "capabilities"] {
        if let Some(v) = top.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }

    let mut referenced_schemas = BTreeSet::new();
    let mut referenced_errors = BTreeSet::new();

    let surfaces = [
        ("rpc", RPC_FIELDS),
        ("operations", OPERATION_FIELDS),
        ("events", EVENT_FIELDS),
        ("state", STATE_FIELDS),
        ("feeds", FEED_FIELDS),
        ("jobs", JOB_FIELDS),
    ];
    for (section, fields) in surfaces {
        if let Some(entries) = top.get(section).and_then(Json::as_object) {
            let mut projected = Object::new();
            for (name, entry) in entries {
                let mut e = keep_fields(entry, fields);
                normalize_surface(&mut e, &mut referenced_errors);
                collect_schema_refs(&e, &mut referenced_schemas);
                projected.insert(name.clone(), e);
            }
            out.insert(section.to_owned(), Json::Object(projected));
        }
    }

    if let Some(resources) = top.get("resources").and_then(Json::as_object) {
        let mut projected = Object::new();
        for (kind, fields) in [("kv", KV_FIELDS), ("store", STORE_FIELDS)] {
            if let Some(entries) = resources.get(kind).and_then(Json::as_object) {
                let map: Object = entries
                    .iter()
                    .map(|(alias, r)| (alias.clone(), keep_fields(r, fields)))
                    .collect();
                for r in map.values() {
                    collect_schema_refs(r, &mut referenced_schemas);
                }
                projected.insert(kind.to_owned(), Json::Object(map));
            }
        }
        out.insert("resources".to_owned(), Json::Object(projected));
    }

    if let Some(errors) = top.get("errors").and_then(Json::as_object) {
        let kept: Object = errors
            .iter()
            .filter(|(name, decl)| {
                referenced_errors.contains(name.as_str())
                    || decl
                        .get("type")
                        .and_then(Json::as_str)
                        .is_some_and(|t| referenced_errors.contains(t))
            })
            .map(|(name, decl)| (name.clone(), keep_fields(decl, &["type", "schema"])))
            .collect();
        for decl in kept.values() {
            collect_schema_refs(decl, &mut referenced_schemas);
        }
        out.insert("errors".to_owned(), Json::Object(kept));
    }

    if let Some(groups) = top.get("eventConsumers").and_then(Json::as_object) {
        let projected: Object = groups
            .iter()
            .map(|(name, g)| (name.clone(), keep_fields(g, CONSUMER_FIELDS)))
            .collect();
        out.insert("eventConsumers".to_owned(), Json::Object(projected));
    }

    if let Some(uses) = top.get("uses") {
        out.insert("uses".to_owned(), project_uses(uses));
    }

    if let Some(schemas) = top.get("schemas").and_then(Json::as_object) {
        let kept: Object = schemas
            .iter()
            .filter(|(name, _)| referenced_schemas.contains(name.as_str()))
            .map(|(name, schema)| (name.clone(), schema.clone()))
            .collect();
        out.insert("schemas".to_owned(), Json::Object(kept));
    }

    prune_empty(&mut out, &["resources", "uses"]);
    Json::Object(out)
}

/// Drops empty-object sections (an absent map and `{}` mean the same), one
/// level down into `nested` sections first.
fn prune_empty(map: &mut Object, nested: &[&str]) {
    for key in nested {
        if let Some(Json::Object(inner)) = map.get_mut(*key) {
            prune_empty(inner, &[]);
        }
    }
    map.retain(|_, v| !matches!(v, Json::Object(m) if m.is_empty()));
}

fn keep_fields(entry: &Json, fields: &[&str]) -> Json {
    match entry.as_object() {
        Some(map) => Json::Object(
            map.iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => entry.clone(),
    }
}

/// Sorts and de-duplicates capability lists and RPC error types.
fn normalize_surface(entry: &mut Json, errors: &mut BTreeSet<String>) {
    let Some(map) = entry.as_object_mut() else {
        return;
    };
    if let Some(Json::Object(caps)) = map.get_mut("capabilities") {
        for list in caps.values_mut() {
            sort_dedup_strings(list);
        }
    }
    if let Some(Json::Array(items)) = map.get_mut("errors") {
        let mut by_type: BTreeMap<String, Json> = BTreeMap::new();
        for item in items.iter() {
            if let Some(t) = item.get("type").and_then(Json::as_str) {
                errors.insert(t.to_owned());
                by_type
                    .entry(t.to_owned())
                    .or_insert_with(|| keep_fields(item, &["type"]));
            }
        }
        *items = by_type.into_values().collect();
    }
}

fn sort_dedup_strings(list: &mut Json) {
    if let Json::Array(items) = list
        && items.iter().all(|i| matches!(i, Json::String(_)))
    {
        let set: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect();
        *items = set.into_iter().map(Json::String).collect();
    }
}

/// Collects `{ "schema": "<name>" }` references anywhere in a value.
fn collect_schema_refs(value: &Json, out: &mut BTreeSet<String>) {
    match value {
        Json::Object(map) => {
            if map.len() == 1
                && let Some(Json::String(name)) = map.get("schema")
            {
                out.insert(name.clone());
                return;
            }
            for v in map.values() {
                collect_schema_refs(v, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|i| collect_schema_refs(i, out)),
        _ => {}
    }
}

fn project_use_ref(r: &Json) -> Json {
    let mut r = keep_fields(r, USE_FIELDS);
    if let Some(map) = r.as_object_mut() {
        for (key, value) in map.iter_mut() {
            if key == "contract" {
                continue;
            }
            if let Some(selectors) = value.as_object_mut() {
                for list in selectors.values_mut() {
                    sort_dedup_strings(list);
                }
            }
        }
    }
    r
}

fn project_uses(uses: &Json) -> Json {
    let Some(map) = uses.as_object() else {
        return uses.clone();
    };
    let grouped = uses_is_grouped(map);
    let project_flat = |flat: &Json| -> Object {
        flat.as_object()
            .map(|m| {
                m.iter()
                    .map(|(alias, r)| (alias.clone(), project_use_ref(r)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if !grouped {
        return Json::Object(project_flat(uses));
    }
    let required = map.get("required").map(project_flat).unwrap_or_default();
    let mut out = Object::new();
    if let Some(optional) = map.get("optional") {
        let optional: Object = project_flat(optional)
            .into_iter()
            .filter(|(alias, _)| !required.contains_key(alias))
            .collect();
        out.insert("optional".to_owned(), Json::Object(optional));
    }
    if map.contains_key("required") {
        out.insert("required".to_owned(), Json::Object(required));
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Json {
        let text = format!(
            r#"{{"format":"trellis.contract.v1","id":"a@v1","displayName":"A","description":"d","kind":"service"{extra}}}"#
        );
        Json::parse(&text).expect("valid")
    }

    #[test]
    fn display_fields_do_not_move_the_digest() {
        let a = manifest(r#","docs":{"markdown":"x"}"#);
        let b = manifest("");
        assert_eq!(digest(&a), digest(&b));
        let mut c = b.clone();
        if let Some(m) = c.as_object_mut() {
            m.insert("displayName".into(), Json::str("Other"));
        }
        assert_eq!(digest(&b), digest(&c));
    }

    #[test]
    fn unused_schemas_and_unknown_fields_are_dropped() {
        let a = manifest(
            r#","schemas":{"Unused":{"type":"string"}},"rpc":{"A.B":{"version":"v1","subject":"s","input":{"schema":"I"},"output":{"schema":"I"},"x":1,"docs":{"markdown":"m"}}}"#,
        );
        let b = manifest(
            r#","rpc":{"A.B":{"version":"v1","subject":"s","input":{"schema":"I"},"output":{"schema":"I"}}}"#,
        );
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn capability_and_error_lists_are_sets() {
        let a = manifest(
            r#","errors":{"E":{"type":"E"},"F":{"type":"F"}},"rpc":{"A.B":{"version":"v1","subject":"s","input":{"schema":"I"},"output":{"schema":"I"},"capabilities":{"call":["b","a","a"]},"errors":[{"type":"E"},{"type":"E"}]}}"#,
        );
        let b = manifest(
            r#","errors":{"E":{"type":"E"}},"rpc":{"A.B":{"version":"v1","subject":"s","input":{"schema":"I"},"output":{"schema":"I"},"capabilities":{"call":["a","b"]},"errors":[{"type":"E"}]}}"#,
        );
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn semantic_edits_move_the_digest() {
        let a = manifest(
            r#","resources":{"kv":{"items":{"purpose":"p","schema":{"schema":"I"}}}},"schemas":{"I":{"type":"string"}}"#,
        );
        let b = manifest(
            r#","resources":{"kv":{"items":{"purpose":"q","schema":{"schema":"I"}}}},"schemas":{"I":{"type":"string"}}"#,
        );
        let c = manifest(
            r#","resources":{"kv":{"items":{"purpose":"p","schema":{"schema":"I"}}}},"schemas":{"I":{"type":"integer"}}"#,
        );
        assert_ne!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn optional_uses_shadowed_by_required_are_dropped() {
        let a = manifest(
            r#","uses":{"required":{"d":{"contract":"d@v1","rpc":{"call":["B.C","A.B","A.B"]}}},"optional":{"d":{"contract":"d@v1"}}}"#,
        );
        let b = manifest(
            r#","uses":{"required":{"d":{"contract":"d@v1","rpc":{"call":["A.B","B.C"]}}},"optional":{}}"#,
        );
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn a_manifest_without_the_new_sections_keeps_its_digest() {
        // Pinned from the format page's rule, computed outside this crate:
        // base64url_nopad(sha256(canonical projection)).
        let a = manifest(
            r#","docs":{"markdown":"x"},"schemas":{"I":{"type":"string"},"Unused":{}},"rpc":{"A.B":{"version":"v1","subject":"s","input":{"schema":"I"},"output":{"schema":"I"},"capabilities":{"call":["a::x"]}}}"#,
        );
        assert_eq!(digest(&a), "da650CpR6D-GXENZSzDPslD7err1h-LwxlOCAZ31JvU");
    }

    /// Schemas plus one `state`, `feeds` and `jobs` entry, each using its
    /// own schemas.
    const SECTIONS: [(&str, &str); 3] = [
        (
            "state",
            r#""state":{"drafts":{"kind":"map","schema":{"schema":"Note"},"stateVersion":"v2","acceptedVersions":{"v1":{"schema":"OldNote"}},"docs":{"markdown":"Drafts"}}}"#,
        ),
        (
            "feeds",
            r#""feeds":{"Notes.Changes":{"version":"v1","subject":"feeds.v1.Notes.Changes","input":{"schema":"Query"},"event":{"schema":"Change"},"capabilities":{"subscribe":["a::read","a::admin","a::read"]},"docs":{"markdown":"Changes"}}}"#,
        ),
        (
            "jobs",
            r#""jobs":{"reindex":{"payload":{"schema":"Reindex"},"result":{"schema":"Reindexed"},"maxDeliver":3,"backoffMs":[100,1000],"concurrency":2,"docs":{"markdown":"Reindex"}}}"#,
        ),
    ];
    const SECTION_SCHEMAS: &str = r#""schemas":{"Note":{"type":"object"},"OldNote":{"type":"string"},"Query":{"type":"object"},"Change":{"type":"object"},"Reindex":{"type":"object"},"Reindexed":{"type":"object"}}"#;

    fn with_sections(sections: &[&str]) -> Json {
        let mut extra = format!(",{SECTION_SCHEMAS}");
        for (name, text) in SECTIONS {
            if sections.contains(&name) {
                extra.push(',');
                extra.push_str(text);
            }
        }
        manifest(&extra)
    }

    #[test]
    fn state_feeds_and_jobs_are_in_the_projection() {
        let all = with_sections(&["state", "feeds", "jobs"]);
        let p = projection(&all);
        for (name, _) in SECTIONS {
            assert!(p.get(name).is_some(), "{name} projected");
        }
        let schemas = p.get("schemas").and_then(Json::as_object).expect("schemas");
        let kept: Vec<&str> = schemas.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            ["Change", "Note", "OldNote", "Query", "Reindex", "Reindexed"]
        );
        // Docs are dropped, capability lists are sets, backoff order is kept.
        assert!(
            p.get("state")
                .and_then(|s| s.get("drafts"))
                .and_then(|d| d.get("docs"))
                .is_none()
        );
        let subscribe = p
            .get("feeds")
            .and_then(|f| f.get("Notes.Changes"))
            .and_then(|f| f.get("capabilities"))
            .and_then(|c| c.get("subscribe"));
        assert_eq!(subscribe, Some(&Json::strings(["a::admin", "a::read"])));
        let backoff = p
            .get("jobs")
            .and_then(|j| j.get("reindex"))
            .and_then(|j| j.get("backoffMs"));
        assert_eq!(
            backoff,
            Some(&Json::Array(vec![Json::uint(100), Json::uint(1000)]))
        );
    }

    #[test]
    fn adding_or_removing_state_feeds_or_jobs_moves_the_digest() {
        let all = digest(&with_sections(&["state", "feeds", "jobs"]));
        let none = digest(&with_sections(&[]));
        assert_ne!(all, none);
        let mut seen = vec![all.clone(), none.clone()];
        for (name, _) in SECTIONS {
            let only = digest(&with_sections(&[name]));
            let without: Vec<&str> = SECTIONS
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| *n != name)
                .collect();
            let all_but = digest(&with_sections(&without));
            assert!(!seen.contains(&only), "adding {name} moves the digest");
            seen.push(only);
            assert!(!seen.contains(&all_but), "removing {name} moves the digest");
            seen.push(all_but);
        }
        // An empty section means the same as an absent one.
        let empty = manifest(&format!(
            r#",{SECTION_SCHEMAS},"state":{{}},"feeds":{{}},"jobs":{{}}"#
        ));
        assert_eq!(digest(&empty), none);
    }

    #[test]
    fn schemas_only_the_new_sections_reference_are_digested() {
        let base = with_sections(&["state", "feeds", "jobs"]);
        let text = base.to_canonical_string();
        for (schema, edited) in [
            ("OldNote", r#""OldNote":{"type":"integer"}"#),
            ("Query", r#""Query":{"type":"array"}"#),
            ("Reindexed", r#""Reindexed":{"type":"array"}"#),
        ] {
            let from = format!(r#""{schema}":{{"type":"#);
            let at = text.find(&from).expect("schema present");
            let end = at + text[at..].find('}').expect("closing brace") + 1;
            let changed = format!("{}{edited}{}", &text[..at], &text[end..]);
            let changed = Json::parse(&changed).expect("json");
            assert_ne!(digest(&base), digest(&changed), "editing {schema}");
        }
    }

    #[test]
    fn display_text_and_order_in_new_sections_do_not_move_the_digest() {
        let a = with_sections(&["state", "feeds", "jobs"]);
        let b = Json::parse(
            &a.to_canonical_string()
                .replace(r#""markdown":"Drafts""#, r#""markdown":"Other""#)
                .replace(
                    r#"["a::read","a::admin","a::read"]"#,
                    r#"["a::admin","a::read"]"#,
                )
                .replace(r#""docs":{"markdown":"Reindex"},"#, ""),
        )
        .expect("json");
        assert_ne!(a, b);
        assert_eq!(digest(&a), digest(&b));
        let c = Json::parse(
            &a.to_canonical_string()
                .replace(r#""backoffMs":[100,1000]"#, r#""backoffMs":[1000,100]"#),
        )
        .expect("json");
        assert_ne!(digest(&a), digest(&c), "backoff order is meaningful");
    }

    #[test]
    fn unknown_fields_at_any_level_do_not_move_the_digest() {
        let a = with_sections(&["state", "feeds", "jobs"]);
        let b = Json::parse(
            &a.to_canonical_string()
                .replacen('{', r#"{"surprise":{"x":1},"#, 1)
                .replace(
                    r#""payload":{"schema":"Reindex"}"#,
                    r#""payload":{"schema":"Reindex","x":1},"priority":9"#,
                ),
        )
        .expect("json");
        assert!(b.to_canonical_string().contains("priority"));
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn digest_is_base64url_without_padding() {
        let d = digest(&manifest(""));
        assert_eq!(d.len(), 43);
        assert!(
            d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
