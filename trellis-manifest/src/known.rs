//! The fields `trellis.contract.v1` defines, object by object.
//!
//! The published format keeps every object open: a reader drops what it
//! does not know. [`strip_unknown`] does that drop once, for the digest
//! projection and for reading under [`crate::validate::Rules::Format`].

use crate::json::{Json, Object};

/// Where an object sits in a manifest, which decides its known fields.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Top,
    Docs,
    CapabilityMeta,
    Exports,
    Uses,
    UseRef,
    UseCall,
    UsePubSub,
    UseFeed,
    SchemaRef,
    Rpc,
    RpcCaps,
    ErrorRef,
    ReceiveTransfer,
    Operation,
    OperationCaps,
    SendTransfer,
    Signal,
    Event,
    EventCaps,
    ErrorDecl,
    Consumer,
    Resources,
    Kv,
    Store,
    State,
    Feed,
    FeedCaps,
    Job,
}

/// What a known field holds.
#[derive(Debug, Clone, Copy)]
enum Child {
    /// Kept as is (scalars, string lists, embedded schemas).
    Any,
    /// One object of a shape.
    Obj(Shape),
    /// An object mapping names to objects of a shape.
    Map(Shape),
    /// An array of objects of a shape.
    List(Shape),
}

fn fields(shape: Shape) -> &'static [(&'static str, Child)] {
    use Child::{Any, List, Map, Obj};
    use Shape as S;
    const DOCS: (&str, Child) = ("docs", Obj(S::Docs));
    match shape {
        S::Top => &[
            ("format", Any),
            ("id", Any),
            ("displayName", Any),
            ("description", Any),
            ("kind", Any),
            DOCS,
            ("capabilities", Map(S::CapabilityMeta)),
            ("schemas", Any),
            ("exports", Obj(S::Exports)),
            ("uses", Obj(S::Uses)),
            ("state", Map(S::State)),
            ("rpc", Map(S::Rpc)),
            ("operations", Map(S::Operation)),
            ("events", Map(S::Event)),
            ("feeds", Map(S::Feed)),
            ("errors", Map(S::ErrorDecl)),
            ("jobs", Map(S::Job)),
            ("eventConsumers", Map(S::Consumer)),
            ("resources", Obj(S::Resources)),
        ],
        S::Docs => &[("summary", Any), ("markdown", Any)],
        S::CapabilityMeta => &[
            ("displayName", Any),
            ("description", Any),
            ("consequence", Any),
        ],
        S::Exports => &[("schemas", Any)],
        // Decided per value in `strip`: grouped or flat.
        S::Uses => &[("required", Map(S::UseRef)), ("optional", Map(S::UseRef))],
        S::UseRef => &[
            ("contract", Any),
            ("rpc", Obj(S::UseCall)),
            ("operations", Obj(S::UseCall)),
            ("events", Obj(S::UsePubSub)),
            ("feeds", Obj(S::UseFeed)),
        ],
        S::UseCall | S::RpcCaps => &[("call", Any)],
        S::UsePubSub | S::EventCaps => &[("publish", Any), ("subscribe", Any)],
        S::UseFeed | S::FeedCaps => &[("subscribe", Any)],
        S::SchemaRef => &[("schema", Any)],
        S::Rpc => &[
            ("version", Any),
            ("subject", Any),
            ("input", Obj(S::SchemaRef)),
            ("output", Obj(S::SchemaRef)),
            ("capabilities", Obj(S::RpcCaps)),
            ("errors", List(S::ErrorRef)),
            ("transfer", Obj(S::ReceiveTransfer)),
            ("internal", Any),
            DOCS,
        ],
        S::ErrorRef => &[("type", Any)],
        S::ReceiveTransfer => &[("direction", Any)],
        S::Operation => &[
            ("version", Any),
            ("subject", Any),
            ("input", Obj(S::SchemaRef)),
            ("progress", Obj(S::SchemaRef)),
            ("output", Obj(S::SchemaRef)),
            ("transfer", Obj(S::SendTransfer)),
            ("capabilities", Obj(S::OperationCaps)),
            ("signals", Map(S::Signal)),
            ("cancel", Any),
            DOCS,
        ],
        S::OperationCaps => &[
            ("call", Any),
            ("observe", Any),
            ("cancel", Any),
            ("control", Any),
        ],
        S::SendTransfer => &[
            ("direction", Any),
            ("store", Any),
            ("key", Any),
            ("contentType", Any),
            ("metadata", Any),
            ("expiresInMs", Any),
            ("maxBytes", Any),
        ],
        S::Signal => &[("input", Obj(S::SchemaRef)), DOCS],
        S::Event => &[
            ("version", Any),
            ("subject", Any),
            ("params", Any),
            ("event", Obj(S::SchemaRef)),
            ("capabilities", Obj(S::EventCaps)),
            DOCS,
        ],
        S::ErrorDecl => &[("type", Any), ("schema", Obj(S::SchemaRef))],
        S::Consumer => &[
            ("uses", Any),
            ("self", Any),
            ("replay", Any),
            ("ordering", Any),
            ("concurrency", Any),
            ("ackWaitMs", Any),
            ("maxDeliver", Any),
            ("backoffMs", Any),
            DOCS,
        ],
        S::Resources => &[("kv", Map(S::Kv)), ("store", Map(S::Store))],
        S::Kv => &[
            ("purpose", Any),
            ("schema", Obj(S::SchemaRef)),
            ("required", Any),
            ("history", Any),
            ("ttlMs", Any),
            ("maxValueBytes", Any),
            DOCS,
        ],
        S::Store => &[
            ("purpose", Any),
            ("required", Any),
            ("ttlMs", Any),
            ("maxObjectBytes", Any),
            ("maxTotalBytes", Any),
            DOCS,
        ],
        S::State => &[
            ("kind", Any),
            ("schema", Obj(S::SchemaRef)),
            ("stateVersion", Any),
            ("acceptedVersions", Map(S::SchemaRef)),
            DOCS,
        ],
        S::Feed => &[
            ("version", Any),
            ("subject", Any),
            ("input", Obj(S::SchemaRef)),
            ("event", Obj(S::SchemaRef)),
            ("capabilities", Obj(S::FeedCaps)),
            DOCS,
        ],
        S::Job => &[
            ("payload", Obj(S::SchemaRef)),
            ("result", Obj(S::SchemaRef)),
            ("maxDeliver", Any),
            ("backoffMs", Any),
            ("ackWaitMs", Any),
            ("defaultDeadlineMs", Any),
            ("progress", Any),
            ("logs", Any),
            ("dlq", Any),
            ("concurrency", Any),
            DOCS,
        ],
    }
}

/// Whether a `uses` object is the grouped form (`required` / `optional`)
/// rather than the flat `<alias>: { contract, ... }` form.
pub(crate) fn uses_is_grouped(uses: &Object) -> bool {
    !uses.is_empty()
        && uses.keys().all(|k| k == "required" || k == "optional")
        && uses.values().all(|v| v.get("contract").is_none())
}

/// A copy of `manifest` without the fields the format does not define, and
/// the path of every field dropped (`["rpc", "Files.List", "timeoutMs"]`).
/// Values of the wrong type are kept for the reader to report.
pub fn strip_unknown(manifest: &Json) -> (Json, Vec<Vec<String>>) {
    let mut dropped = Vec::new();
    let mut path = Vec::new();
    let out = strip(manifest, Shape::Top, &mut path, &mut dropped);
    (out, dropped)
}

fn strip(
    value: &Json,
    shape: Shape,
    path: &mut Vec<String>,
    dropped: &mut Vec<Vec<String>>,
) -> Json {
    let Some(map) = value.as_object() else {
        return value.clone();
    };
    if matches!(shape, Shape::Uses) && !uses_is_grouped(map) {
        return strip_map(value, Shape::UseRef, path, dropped);
    }
    let known = fields(shape);
    let mut out = Object::new();
    for (key, v) in map {
        path.push(key.clone());
        match known.iter().find(|(name, _)| name == key) {
            None => dropped.push(path.clone()),
            Some((_, child)) => {
                let kept = match *child {
                    Child::Any => v.clone(),
                    Child::Obj(s) => strip(v, s, path, dropped),
                    Child::Map(s) => strip_map(v, s, path, dropped),
                    Child::List(s) => match v.as_array() {
                        Some(items) => Json::Array(
                            items
                                .iter()
                                .enumerate()
                                .map(|(i, item)| {
                                    path.push(i.to_string());
                                    let kept = strip(item, s, path, dropped);
                                    path.pop();
                                    kept
                                })
                                .collect(),
                        ),
                        None => v.clone(),
                    },
                };
                out.insert(key.clone(), kept);
            }
        }
        path.pop();
    }
    Json::Object(out)
}

fn strip_map(
    value: &Json,
    shape: Shape,
    path: &mut Vec<String>,
    dropped: &mut Vec<Vec<String>>,
) -> Json {
    let Some(map) = value.as_object() else {
        return value.clone();
    };
    let mut out = Object::new();
    for (name, entry) in map {
        path.push(name.clone());
        out.insert(name.clone(), strip(entry, shape, path, dropped));
        path.pop();
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_unknown_fields_at_every_level_with_their_paths() {
        let json = Json::parse(
            r#"{"id":"a@v1","extra":1,"rpc":{"A.B":{"input":{"schema":"I","x":1},"timeoutMs":5,"errors":[{"type":"E","y":2}]}},"uses":{"d":{"contract":"d@v1","z":3}},"schemas":{"I":{"anything":true}}}"#,
        )
        .expect("json");
        let (kept, dropped) = strip_unknown(&json);
        let expected = Json::parse(
            r#"{"id":"a@v1","rpc":{"A.B":{"input":{"schema":"I"},"errors":[{"type":"E"}]}},"uses":{"d":{"contract":"d@v1"}},"schemas":{"I":{"anything":true}}}"#,
        )
        .expect("json");
        assert_eq!(kept, expected);
        let dropped: Vec<String> = dropped.iter().map(|p| p.join("/")).collect();
        assert_eq!(
            dropped,
            [
                "extra",
                "rpc/A.B/errors/0/y",
                "rpc/A.B/input/x",
                "rpc/A.B/timeoutMs",
                "uses/d/z"
            ]
        );
    }

    #[test]
    fn grouped_uses_keep_both_groups() {
        let json = Json::parse(
            r#"{"uses":{"required":{"a":{"contract":"a@v1"}},"optional":{"b":{"contract":"b@v1","q":1}}}}"#,
        )
        .expect("json");
        let (kept, dropped) = strip_unknown(&json);
        assert_eq!(dropped, [vec!["uses", "optional", "b", "q"]]);
        assert!(kept.get("uses").and_then(|u| u.get("required")).is_some());
    }
}
