//! Surface changes: the RPCs, operations and events of a proposed
//! manifest against the accepted manifest of the same lineage, each
//! classified additive (safe) or breaking (dangerous), with the other
//! accepted contracts that select it.
//!
//! The question is always whether a caller built on the accepted manifest
//! keeps working against a provider built on the proposed one:
//!
//! - safe: a new RPC, operation or event; a new optional field; a schema
//!   change that accepts every previous input and produces only values
//!   the previous output schema allowed;
//! - breaking: a removed (or renamed) surface; a moved subject (including
//!   changed event parameters); an input that no longer accepts every
//!   previous request (a field became required, a type changed, an enum
//!   narrowed, a bound tightened); an output, progress or event payload
//!   that may carry values earlier readers reject (a required field
//!   removed or made optional, a type changed, an enum widened); a call,
//!   observe, cancel, control, publish or subscribe gate that now needs
//!   more capabilities; an RPC made internal; cancelling withdrawn; a
//!   byte transfer added, removed or given a lower size limit;
//! - listed but safe: a version label, error types, other transfer
//!   settings, progress added or removed, looser gates, a schema renamed
//!   or changed compatibly.
//!
//! A breaking change is dangerous whether or not an accepted contract
//! selects the surface: apps, devices and users call through capabilities,
//! not `uses`, so the authority cannot see every caller, and the format
//! says a breaking change needs a new `@vN`. Dependents make the report
//! explicit; one rule depends on them: an event some dependent publishes
//! (`uses.events.publish`) is also an input, so its payload must keep
//! accepting what the dependent sends.

use std::collections::BTreeSet;

use trellis_manifest::Json;
use trellis_manifest::manifest::{Manifest, SchemaRef};
use trellis_runtime::protocol::{Change, SurfaceChange, SurfaceKind};

use super::dependents::Dependents;
use super::schema::{Direction, Located, compare_in};

/// Every surface that differs between `previous` and `next`, RPCs first,
/// then operations, then events, each by name.
pub fn surface_changes(
    previous: &Manifest,
    next: &Manifest,
    dependents: &Dependents,
) -> Vec<SurfaceChange> {
    let sides = Sides::new(previous, next);
    let mut out = Vec::new();
    let mut push = |kind: SurfaceKind, name: &str, diff: Option<Diff>, removed: bool| {
        let change = match (&diff, removed) {
            (_, true) => Change::Removed,
            (None, false) => Change::Added,
            (Some(d), false) if d.fields.is_empty() => return,
            (Some(d), false) => Change::Changed {
                fields: d.fields.clone(),
            },
        };
        let mut dangers = diff.map(|d| d.dangers).unwrap_or_default();
        if removed {
            dangers.push(format!(
                "{} `{name}` is removed (or renamed): callers built on the previous manifest can no longer reach it",
                kind.as_str()
            ));
        }
        // A new surface has no dependents yet (`uses` of an unknown
        // surface is refused when the dependent is accepted).
        let dependents = if matches!(change, Change::Added) {
            Vec::new()
        } else {
            dependents.selecting(kind, name)
        };
        out.push(SurfaceChange {
            kind,
            name: name.to_owned(),
            change,
            dangers,
            dependents,
        });
    };

    for name in names(&previous.rpc, &next.rpc) {
        match (previous.rpc.get(name), next.rpc.get(name)) {
            (Some(_), None) => push(SurfaceKind::Rpc, name, None, true),
            (None, Some(_)) => push(SurfaceKind::Rpc, name, None, false),
            (Some(a), Some(b)) => {
                let mut d = Diff::default();
                d.text("version", &a.version, &b.version);
                d.subject(&a.subject, &b.subject);
                sides.schema(&mut d, "input", &a.input, &b.input, Direction::Accepts);
                sides.schema(&mut d, "output", &a.output, &b.output, Direction::Produces);
                d.gate(
                    "call",
                    a.capabilities.as_ref().and_then(|c| c.call.as_ref()),
                    b.capabilities.as_ref().and_then(|c| c.call.as_ref()),
                    false,
                );
                let errors = |m: &trellis_manifest::manifest::RpcMethod| -> BTreeSet<String> {
                    m.errors.iter().flatten().map(|e| e.ty.clone()).collect()
                };
                let (ea, eb) = (errors(a), errors(b));
                if ea != eb {
                    d.fields
                        .push(format!("errors {} -> {}", list(&ea), list(&eb)));
                }
                if a.transfer != b.transfer {
                    d.fields.push("transfer".to_owned());
                    d.dangers.push(format!(
                        "the receive transfer is {}: the reply callers built on the previous manifest expect changes shape",
                        if b.transfer.is_some() { "added" } else { "removed" }
                    ));
                }
                let (ia, ib) = (a.internal.unwrap_or(false), b.internal.unwrap_or(false));
                if ia != ib {
                    d.fields.push(format!("internal {ia} -> {ib}"));
                    if ib {
                        d.dangers.push(
                            "made internal: users and devices can no longer call it".to_owned(),
                        );
                    }
                }
                push(SurfaceKind::Rpc, name, Some(d), false);
            }
            (None, None) => {}
        }
    }

    for name in names(&previous.operations, &next.operations) {
        match (previous.operations.get(name), next.operations.get(name)) {
            (Some(_), None) => push(SurfaceKind::Operation, name, None, true),
            (None, Some(_)) => push(SurfaceKind::Operation, name, None, false),
            (Some(a), Some(b)) => {
                let mut d = Diff::default();
                d.text("version", &a.version, &b.version);
                d.subject(&a.subject, &b.subject);
                sides.schema(&mut d, "input", &a.input, &b.input, Direction::Accepts);
                match (&a.progress, &b.progress) {
                    (Some(pa), Some(pb)) => {
                        sides.schema(&mut d, "progress", pa, pb, Direction::Produces);
                    }
                    (None, Some(p)) => d.fields.push(format!("progress added ({})", p.schema)),
                    (Some(p), None) => d.fields.push(format!("progress removed ({})", p.schema)),
                    (None, None) => {}
                }
                sides.schema(&mut d, "output", &a.output, &b.output, Direction::Produces);
                let caps = |o: &trellis_manifest::manifest::Operation| o.capabilities.clone();
                let (ca, cb) = (caps(a).unwrap_or_default(), caps(b).unwrap_or_default());
                d.gate("call", ca.call.as_ref(), cb.call.as_ref(), false);
                // `observe` defaults to `call`.
                d.gate(
                    "observe",
                    ca.observe.as_ref().or(ca.call.as_ref()),
                    cb.observe.as_ref().or(cb.call.as_ref()),
                    true,
                );
                d.gate("cancel", ca.cancel.as_ref(), cb.cancel.as_ref(), true);
                d.gate("control", ca.control.as_ref(), cb.control.as_ref(), true);
                let (xa, xb) = (a.cancel.unwrap_or(false), b.cancel.unwrap_or(false));
                if xa != xb {
                    d.fields.push(format!("cancel {xa} -> {xb}"));
                    if xa {
                        d.dangers.push(
                            "cancelling is withdrawn: callers that cancel are refused".to_owned(),
                        );
                    }
                }
                match (&a.transfer, &b.transfer) {
                    (None, None) => {}
                    (Some(_), None) | (None, Some(_)) => {
                        d.fields.push("transfer".to_owned());
                        d.dangers.push(format!(
                            "the send transfer is {}: callers built on the previous manifest start it the old way",
                            if b.transfer.is_some() { "added" } else { "removed" }
                        ));
                    }
                    (Some(ta), Some(tb)) => {
                        let pairs = [
                            ("store", Some(ta.store.clone()), Some(tb.store.clone())),
                            ("key", Some(ta.key.clone()), Some(tb.key.clone())),
                            (
                                "contentType",
                                ta.content_type.clone(),
                                tb.content_type.clone(),
                            ),
                            ("metadata", ta.metadata.clone(), tb.metadata.clone()),
                            (
                                "expiresInMs",
                                ta.expires_in_ms.map(|n| n.to_string()),
                                tb.expires_in_ms.map(|n| n.to_string()),
                            ),
                            (
                                "maxBytes",
                                ta.max_bytes.map(|n| n.to_string()),
                                tb.max_bytes.map(|n| n.to_string()),
                            ),
                        ];
                        for (key, va, vb) in pairs {
                            if va != vb {
                                d.fields.push(format!(
                                    "transfer.{key} {} -> {}",
                                    va.as_deref().unwrap_or("(none)"),
                                    vb.as_deref().unwrap_or("(none)")
                                ));
                            }
                        }
                        let lowered = match (ta.max_bytes, tb.max_bytes) {
                            (_, None) => false,
                            (None, Some(_)) => true,
                            (Some(o), Some(n)) => n < o,
                        };
                        if lowered {
                            d.dangers.push(
                                "transfer size limit lowered: uploads that fitted before are refused"
                                    .to_owned(),
                            );
                        }
                    }
                }
                push(SurfaceKind::Operation, name, Some(d), false);
            }
            (None, None) => {}
        }
    }

    for name in names(&previous.events, &next.events) {
        match (previous.events.get(name), next.events.get(name)) {
            (Some(_), None) => push(SurfaceKind::Event, name, None, true),
            (None, Some(_)) => push(SurfaceKind::Event, name, None, false),
            (Some(a), Some(b)) => {
                let mut d = Diff::default();
                d.text("version", &a.version, &b.version);
                d.subject(&a.subject, &b.subject);
                let (pa, pb) = (
                    a.params.clone().unwrap_or_default(),
                    b.params.clone().unwrap_or_default(),
                );
                if pa != pb {
                    d.fields
                        .push(format!("params [{}] -> [{}]", pa.join(", "), pb.join(", ")));
                    if a.subject == b.subject {
                        d.dangers.push(
                            "subject parameters changed: subscribers built on the previous manifest filter on the old tokens"
                                .to_owned(),
                        );
                    }
                }
                sides.schema(&mut d, "payload", &a.event, &b.event, Direction::Produces);
                if dependents.publish(name) {
                    sides.schema(&mut d, "payload", &a.event, &b.event, Direction::Accepts);
                }
                let (ca, cb) = (a.capabilities.as_ref(), b.capabilities.as_ref());
                d.gate(
                    "publish",
                    ca.and_then(|c| c.publish.as_ref()),
                    cb.and_then(|c| c.publish.as_ref()),
                    true,
                );
                d.gate(
                    "subscribe",
                    ca.and_then(|c| c.subscribe.as_ref()),
                    cb.and_then(|c| c.subscribe.as_ref()),
                    true,
                );
                push(SurfaceKind::Event, name, Some(d), false);
            }
            (None, None) => {}
        }
    }
    out
}

fn names<'a, V>(
    a: &'a std::collections::BTreeMap<String, V>,
    b: &'a std::collections::BTreeMap<String, V>,
) -> BTreeSet<&'a String> {
    a.keys().chain(b.keys()).collect()
}

fn list(items: &BTreeSet<String>) -> String {
    format!("[{}]", items.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// What differs in one surface present on both sides.
#[derive(Debug, Default)]
struct Diff {
    fields: Vec<String>,
    dangers: Vec<String>,
}

impl Diff {
    fn text(&mut self, key: &str, a: &str, b: &str) {
        if a != b {
            self.fields.push(format!("{key} {a} -> {b}"));
        }
    }

    fn subject(&mut self, a: &str, b: &str) {
        if a != b {
            self.fields.push(format!("subject {a} -> {b}"));
            self.dangers.push(format!(
                "subject moved from `{a}` to `{b}`: callers built on the previous manifest still use the old one"
            ));
        }
    }

    /// A capability gate. An absent `call` gate needs no capability; an
    /// absent observe/cancel/control/publish/subscribe gate grants nothing
    /// to others (`closed_when_absent`). Needing more is breaking:
    /// principals holding only the previous capabilities are refused.
    fn gate(
        &mut self,
        what: &str,
        a: Option<&Vec<String>>,
        b: Option<&Vec<String>>,
        closed_when_absent: bool,
    ) {
        let gate = |v: Option<&Vec<String>>| -> Option<BTreeSet<String>> {
            match v {
                Some(caps) => Some(caps.iter().cloned().collect()),
                None if closed_when_absent => None,
                None => Some(BTreeSet::new()),
            }
        };
        let (a, b) = (gate(a), gate(b));
        if a == b {
            return;
        }
        let show = |g: &Option<BTreeSet<String>>| g.as_ref().map_or("(none)".to_owned(), list);
        self.fields
            .push(format!("capabilities.{what} {} -> {}", show(&a), show(&b)));
        match (&a, &b) {
            (Some(_), None) => self.dangers.push(format!(
                "{what} is no longer granted by any capability: principals that had it are refused"
            )),
            (Some(a), Some(b)) => {
                let added: Vec<String> = b.difference(a).map(|c| format!("`{c}`")).collect();
                if !added.is_empty() {
                    self.dangers.push(format!(
                        "{what} now needs {}: principals holding only the previous capabilities are refused",
                        added.join(", ")
                    ));
                }
            }
            (None, _) => {}
        }
    }
}

/// The manifests a surface's schemas are looked up in, and their
/// `{ "schemas": .. }` documents for `$ref`s.
struct Sides<'a> {
    previous: &'a Manifest,
    next: &'a Manifest,
    documents: [Json; 2],
}

impl<'a> Sides<'a> {
    fn new(previous: &'a Manifest, next: &'a Manifest) -> Sides<'a> {
        let document = |m: &Manifest| {
            let mut doc = Json::object();
            if let Some(map) = doc.as_object_mut() {
                map.insert("schemas".into(), Json::Object(m.schemas.clone()));
            }
            doc
        };
        Sides {
            previous,
            next,
            documents: [document(previous), document(next)],
        }
    }
}

impl Sides<'_> {
    /// Compares one schema reference of a surface. `Accepts`: the provider
    /// receives these values; `Produces`: callers decode them.
    fn schema(&self, d: &mut Diff, what: &str, a: &SchemaRef, b: &SchemaRef, direction: Direction) {
        let (old, new) = (
            self.previous.schemas.get(&a.schema),
            self.next.schemas.get(&b.schema),
        );
        if a.schema == b.schema && old == new {
            return;
        }
        let field = if a.schema == b.schema {
            format!("{what} {} changed", a.schema)
        } else {
            format!("{what} {} -> {}", a.schema, b.schema)
        };
        if !d.fields.contains(&field) {
            d.fields.push(field);
        }
        let (Some(old), Some(new)) = (old, new) else {
            d.dangers
                .push(format!("{what} schema cannot be compared (unknown schema)"));
            return;
        };
        let located = |schema, document| Located {
            schema,
            document: Some(document),
        };
        let (old, new) = (
            located(old, &self.documents[0]),
            located(new, &self.documents[1]),
        );
        if let Err(why) = compare_in(old, new, direction, "") {
            d.dangers.push(match direction {
                Direction::Accepts if what == "payload" => format!(
                    "payload no longer accepts every event publishers built on the previous manifest send ({why})"
                ),
                Direction::Accepts => format!(
                    "{what} no longer accepts every request valid before ({why})"
                ),
                Direction::Produces => format!(
                    "{what} may carry values callers built on the previous manifest cannot read ({why})"
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const ITEM: &str =
        r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#;

    /// A manifest of `svc@v1` with `schemas` and surfaces given as JSON
    /// members.
    fn m(schemas: &str, surfaces: &str) -> Manifest {
        let text = format!(
            r#"{{"format":"trellis.contract.v1","id":"svc@v1","displayName":"S","description":"S","kind":"service","schemas":{{{schemas}}}{surfaces}}}"#
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn rpc(name: &str, subject: &str, input: &str, output: &str) -> String {
        format!(
            r#""{name}":{{"version":"v1","subject":"{subject}","input":{{"schema":"{input}"}},"output":{{"schema":"{output}"}}}}"#
        )
    }

    fn schemas(item: &str) -> String {
        format!(r#""Item":{item},"Empty":{{"type":"object"}}"#)
    }

    fn with_rpcs(item: &str, rpcs: &[String]) -> Manifest {
        m(&schemas(item), &format!(r#","rpc":{{{}}}"#, rpcs.join(",")))
    }

    fn base() -> Manifest {
        with_rpcs(
            ITEM,
            &[rpc("Items.Get", "rpc.v1.Items.Get", "Item", "Item")],
        )
    }

    fn no_dependents() -> Dependents {
        Dependents::default()
    }

    fn caller() -> Dependents {
        let caller: Manifest = serde_json::from_str(
            r#"{"format":"trellis.contract.v1","id":"caller@v1","displayName":"C","description":"C","kind":"service",
                "uses":{"required":{"svc":{"contract":"svc@v1","rpc":{"call":["Items.Get"]},"events":{"publish":["Items.Seen"]}}}}}"#,
        )
        .expect("caller");
        Dependents::of(
            "svc@v1",
            &BTreeMap::from([("caller@v1".to_owned(), caller)]),
        )
    }

    #[test]
    fn unchanged_surfaces_are_omitted_and_additions_are_safe() {
        assert!(surface_changes(&base(), &base(), &caller()).is_empty());
        let more = with_rpcs(
            ITEM,
            &[
                rpc("Items.Get", "rpc.v1.Items.Get", "Item", "Item"),
                rpc("Items.List", "rpc.v1.Items.List", "Empty", "Empty"),
            ],
        );
        let changes = surface_changes(&base(), &more, &caller());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].name, "Items.List");
        assert_eq!(changes[0].change, Change::Added);
        assert!(!changes[0].is_dangerous() && changes[0].dependents.is_empty());
    }

    #[test]
    fn a_removed_surface_is_dangerous_and_names_its_dependents() {
        let renamed = with_rpcs(
            ITEM,
            &[rpc("Items.Fetch", "rpc.v1.Items.Fetch", "Item", "Item")],
        );
        let changes = surface_changes(&base(), &renamed, &caller());
        let removed = changes
            .iter()
            .find(|c| c.name == "Items.Get")
            .expect("removed");
        assert_eq!(removed.change, Change::Removed);
        assert!(removed.dangers[0].contains("is removed (or renamed)"));
        assert_eq!(removed.dependents.len(), 1);
        assert_eq!(removed.dependents[0].contract, "caller@v1");
        assert_eq!(removed.dependents[0].selects, "rpc.call");
        // Nobody selecting it does not make a removal safe.
        let alone = surface_changes(&base(), &renamed, &no_dependents());
        assert!(
            alone
                .iter()
                .any(|c| c.change == Change::Removed && c.is_dangerous())
        );
    }

    #[test]
    fn a_moved_subject_is_dangerous() {
        let moved = with_rpcs(
            ITEM,
            &[rpc("Items.Get", "rpc.v2.Items.Get", "Item", "Item")],
        );
        let changes = surface_changes(&base(), &moved, &no_dependents());
        assert!(
            changes[0].dangers[0].contains("subject moved"),
            "{changes:?}"
        );
    }

    #[test]
    fn schema_rules_apply_per_direction() {
        let check = |item: &str| {
            surface_changes(
                &base(),
                &with_rpcs(
                    item,
                    &[rpc("Items.Get", "rpc.v1.Items.Get", "Item", "Item")],
                ),
                &no_dependents(),
            )
        };
        // Optional field added: input and output both fine.
        let optional = check(
            r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"integer"}},"required":["id"]}"#,
        );
        assert!(!optional[0].is_dangerous(), "{optional:?}");
        assert_eq!(
            optional[0].change,
            Change::Changed {
                fields: vec!["input Item changed".into(), "output Item changed".into()]
            }
        );
        // Required field added: the input breaks, the output does not.
        let required = check(
            r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"integer"}},"required":["id","x"]}"#,
        );
        assert_eq!(required[0].dangers.len(), 1, "{required:?}");
        assert!(required[0].dangers[0].starts_with("input no longer accepts"));
        // Required field removed: the output breaks, the input does not.
        let removed = check(r#"{"type":"object","properties":{}}"#);
        assert_eq!(removed[0].dangers.len(), 1, "{removed:?}");
        assert!(removed[0].dangers[0].starts_with("output may carry values"));
        assert!(removed[0].dangers[0].contains("`id` was removed"));
        // Type changed: both.
        let retyped =
            check(r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#);
        assert_eq!(retyped[0].dangers.len(), 2, "{retyped:?}");
    }

    #[test]
    fn operation_progress_and_outputs_are_read_by_callers() {
        let op = |progress: &str| {
            m(
                &format!(r#"{},"P":{progress}"#, schemas(ITEM)),
                r#","operations":{"Items.Import":{"version":"v1","subject":"operations.v1.Items.Import","input":{"schema":"Item"},"progress":{"schema":"P"},"output":{"schema":"Item"},"cancel":true}}"#,
            )
        };
        let before = op(r#"{"type":"string","enum":["copying","indexing"]}"#);
        let widened = op(r#"{"type":"string","enum":["copying","indexing","verifying"]}"#);
        let changes = surface_changes(&before, &widened, &no_dependents());
        assert_eq!(changes[0].kind, SurfaceKind::Operation);
        assert!(
            changes[0].dangers[0].starts_with("progress may carry values"),
            "{changes:?}"
        );
        let narrowed = op(r#"{"type":"string","enum":["copying"]}"#);
        assert!(!surface_changes(&before, &narrowed, &no_dependents())[0].is_dangerous());
        // Withdrawing cancel breaks callers that cancel.
        let mut no_cancel = before.clone();
        no_cancel
            .operations
            .get_mut("Items.Import")
            .expect("op")
            .cancel = None;
        let changes = surface_changes(&before, &no_cancel, &no_dependents());
        assert!(changes[0].dangers[0].contains("cancelling is withdrawn"));
    }

    #[test]
    fn event_payloads_are_outputs_and_inputs_of_publishing_dependents() {
        let event = |item: &str| {
            m(
                &schemas(item),
                r#","events":{"Items.Seen":{"version":"v1","subject":"events.v1.Items.Seen","event":{"schema":"Item"}}}"#,
            )
        };
        let required = event(
            r#"{"type":"object","properties":{"id":{"type":"string"},"at":{"type":"integer"}},"required":["at","id"]}"#,
        );
        // Only the owner publishes: new payloads carry the field, readers ignore it.
        assert!(
            surface_changes(&event(ITEM), &required, &no_dependents())[0]
                .dangers
                .is_empty()
        );
        // A dependent publishes it: its payloads lack the new required field.
        let changes = surface_changes(&event(ITEM), &required, &caller());
        assert!(
            changes[0].dangers[0].contains("publishers built on the previous manifest"),
            "{changes:?}"
        );
        assert_eq!(changes[0].dependents[0].selects, "events.publish");
        // A payload field removed breaks subscribers either way.
        let removed = event(r#"{"type":"object","properties":{}}"#);
        assert!(surface_changes(&event(ITEM), &removed, &no_dependents())[0].is_dangerous());
    }

    #[test]
    fn stricter_gates_are_dangerous_looser_ones_safe() {
        let gated = |caps: &str| {
            m(
                &schemas(ITEM),
                &format!(
                    r#","rpc":{{"Items.Get":{{"version":"v1","subject":"rpc.v1.Items.Get","input":{{"schema":"Item"}},"output":{{"schema":"Item"}},"capabilities":{{"call":[{caps}]}}}}}}"#
                ),
            )
        };
        let (one, two) = (
            gated(r#""svc::read""#),
            gated(r#""svc::read","svc::admin""#),
        );
        let stricter = surface_changes(&one, &two, &no_dependents());
        assert!(
            stricter[0].dangers[0].contains("call now needs `svc::admin`"),
            "{stricter:?}"
        );
        let looser = surface_changes(&two, &one, &no_dependents());
        assert!(!looser[0].is_dangerous());
        assert!(!surface_changes(&one, &base(), &no_dependents())[0].is_dangerous());
    }

    #[test]
    fn a_first_accept_has_no_surface_changes() {
        let plan = super::super::compute(
            None,
            &base(),
            "d",
            None,
            &BTreeMap::new(),
            &|_, a| a.to_owned(),
            &|_, _| super::super::Existing::Absent,
        );
        assert!(plan.surfaces.is_empty() && !plan.is_dangerous());
    }
}
