//! Surface compatibility in plans, against a real authority: within a
//! lineage, every breaking change of an RPC, operation or event is reported
//! dangerous (and refused without confirmation), naming the accepted
//! contracts whose `uses` select the surface; additive changes are safe and
//! accepted.

mod common;

use common::*;
use trellis_runtime::ClientError;
use trellis_runtime::protocol::{
    AuthorityError, Change, Dependent, Plan, SurfaceChange, SurfaceKind,
};

const ID: &str = "catalog@v1";

const QUERY: &str =
    "pub id: String, #[serde(default)] pub limit: u32, #[serde(default)] pub color: Option<Color>";
const ENTRY: &str = "pub id: String, pub count: u32";
const COLOR: &str = "Red, Green";
const PROGRESS: &str = "pub stage: String";
const CHANGED: &str = "pub id: String, pub count: u32";
const SURFACES: &str = r#"
    #[rpc("Catalog.Get")]
    fn catalog_get(input: Query) -> Entry;

    #[rpc("Catalog.Stats")]
    fn catalog_stats(input: Query) -> Entry;

    #[operation("Catalog.Import", progress = Progress)]
    fn catalog_import(input: Query) -> Entry;
"#;

/// The provider contract; every part can be replaced.
#[derive(Clone)]
struct Catalog {
    query: String,
    entry: String,
    color: String,
    progress: String,
    changed: String,
    /// Event attribute arguments; empty drops the event.
    event: String,
    surfaces: String,
    /// More declarations.
    extra: String,
}

impl Catalog {
    fn base() -> Catalog {
        Catalog {
            query: QUERY.into(),
            entry: ENTRY.into(),
            color: COLOR.into(),
            progress: PROGRESS.into(),
            changed: CHANGED.into(),
            event: r#""Catalog.Changed""#.into(),
            surfaces: SURFACES.into(),
            extra: String::new(),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Catalog)) -> Catalog {
        f(&mut self);
        self
    }

    fn source(&self) -> String {
        let Catalog {
            query,
            entry,
            color,
            progress,
            changed,
            event,
            surfaces,
            extra,
        } = self;
        let event = if event.is_empty() {
            String::new()
        } else {
            format!(
                "#[event({event})]\n    #[derive(Serialize, Deserialize)]\n    pub struct Changed {{ {changed} }}"
            )
        };
        format!(
            r#"
#[trellis::contract(id = "{ID}", display_name = "Catalog", description = "A catalog")]
pub mod catalog {{
    use serde::{{Deserialize, Serialize}};
    #[derive(Serialize, Deserialize)]
    pub enum Color {{ {color} }}
    #[derive(Serialize, Deserialize)]
    pub struct Query {{ {query} }}
    #[derive(Serialize, Deserialize)]
    pub struct Entry {{ {entry} }}
    #[derive(Serialize, Deserialize)]
    pub struct Progress {{ {progress} }}
    {event}
    {surfaces}
    {extra}
}}
"#
        )
    }

    fn manifest(&self) -> String {
        manifest(&self.source())
    }
}

/// A contract that calls `Catalog.Get` and `Catalog.Import` and subscribes
/// to `Catalog.Changed` (not `Catalog.Stats`).
const SHELF: &str = r#"
#[trellis::contract(id = "shelf@v1", display_name = "Shelf", description = "Shows the catalog")]
pub mod shelf {
    #[uses(contract = "catalog@v1", rpc = ["Catalog.Get"], operations = ["Catalog.Import"], subscribe = ["Catalog.Changed"])]
    pub struct Catalog;
}
"#;

fn dependent(selects: &str) -> Dependent {
    Dependent {
        contract: "shelf@v1".into(),
        alias: "catalog".into(),
        selects: selects.into(),
    }
}

fn surface<'a>(plan: &'a Plan, kind: SurfaceKind, name: &str) -> &'a SurfaceChange {
    plan.surfaces
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no {} `{name}` in {plan:#?}", kind.as_str()))
}

/// Accepts `text` and waits until it is ready.
async fn accept(stack: &Stack, text: &str, id: &str) {
    let reply = stack
        .client
        .accept(text, false)
        .await
        .unwrap_or_else(|e| panic!("accept {id}: {e}"));
    ready(&stack.client, id, &reply.plan.digest).await;
}

/// The catalog manifest JSON edited in place.
fn edited(text: &str, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut m: serde_json::Value = serde_json::from_str(text).expect("json");
    f(&mut m);
    serde_json::to_string(&m).expect("json")
}

struct Case {
    name: &'static str,
    text: String,
    kind: SurfaceKind,
    surface: &'static str,
    expect: &'static str,
    /// What the shelf's `uses` selects of the surface (`None`: nothing).
    selected: Option<&'static str>,
}

#[tokio::test]
async fn breaking_surface_changes_are_dangerous_and_name_their_dependents() {
    let stack = stack().await;
    let base = Catalog::base();
    let first = stack
        .client
        .accept(&base.manifest(), false)
        .await
        .expect("first accept");
    assert!(
        first.plan.surfaces.is_empty(),
        "a first accept has no lineage to compare: {:?}",
        first.plan
    );
    ready(&stack.client, ID, &first.plan.digest).await;
    accept(&stack, &manifest(SHELF), "shelf@v1").await;

    let case = |name, c: Catalog, kind, surface, expect, selected| Case {
        name,
        text: c.manifest(),
        kind,
        surface,
        expect,
        selected,
    };
    let rpc = SurfaceKind::Rpc;
    let op = SurfaceKind::Operation;
    let event = SurfaceKind::Event;
    let cases = vec![
        case(
            "remove an rpc",
            base.clone().with(|c| {
                c.surfaces = SURFACES.replace(
                    "#[rpc(\"Catalog.Get\")]\n    fn catalog_get(input: Query) -> Entry;",
                    "",
                )
            }),
            rpc,
            "Catalog.Get",
            "is removed (or renamed)",
            Some("rpc.call"),
        ),
        case(
            "rename an rpc",
            base.clone().with(|c| {
                c.surfaces = SURFACES.replace("\"Catalog.Get\"", "\"Catalog.Fetch\"")
            }),
            rpc,
            "Catalog.Get",
            "is removed (or renamed)",
            Some("rpc.call"),
        ),
        case(
            "remove an rpc nobody selects",
            base.clone().with(|c| {
                c.surfaces = SURFACES.replace(
                    "#[rpc(\"Catalog.Stats\")]\n    fn catalog_stats(input: Query) -> Entry;",
                    "",
                )
            }),
            rpc,
            "Catalog.Stats",
            "is removed (or renamed)",
            None,
        ),
        case(
            "remove an operation",
            base.clone().with(|c| {
                c.surfaces = SURFACES.replace(
                    "#[operation(\"Catalog.Import\", progress = Progress)]\n    fn catalog_import(input: Query) -> Entry;",
                    "",
                )
            }),
            op,
            "Catalog.Import",
            "is removed (or renamed)",
            Some("operations.call"),
        ),
        case(
            "remove an event",
            base.clone().with(|c| c.event = String::new()),
            event,
            "Catalog.Changed",
            "is removed (or renamed)",
            Some("events.subscribe"),
        ),
        case(
            "new required input field",
            base.clone()
                .with(|c| c.query = format!("{QUERY}, pub owner: String")),
            rpc,
            "Catalog.Get",
            "new field `owner` became required",
            Some("rpc.call"),
        ),
        case(
            "optional input field made required",
            base.clone().with(|c| {
                c.query = QUERY.replace("#[serde(default)] pub limit", "pub limit")
            }),
            op,
            "Catalog.Import",
            "optional field `limit` became required",
            Some("operations.call"),
        ),
        case(
            "required output field removed",
            base.clone().with(|c| c.entry = "pub id: String".into()),
            rpc,
            "Catalog.Get",
            "required field `count` was removed",
            Some("rpc.call"),
        ),
        case(
            "output field type changed",
            base.clone()
                .with(|c| c.entry = "pub id: String, pub count: String".into()),
            rpc,
            "Catalog.Stats",
            "/count: type integer became string",
            None,
        ),
        case(
            "input enum narrowed",
            base.clone().with(|c| c.color = "Red".into()),
            rpc,
            "Catalog.Get",
            "allowed values narrowed",
            Some("rpc.call"),
        ),
        case(
            "progress type changed",
            base.clone().with(|c| c.progress = "pub stage: u32".into()),
            op,
            "Catalog.Import",
            "progress may carry values",
            Some("operations.call"),
        ),
        case(
            "event payload field removed",
            base.clone().with(|c| c.changed = "pub id: String".into()),
            event,
            "Catalog.Changed",
            "payload may carry values",
            Some("events.subscribe"),
        ),
        Case {
            name: "moved subject",
            text: edited(&base.manifest(), |m| {
                m["rpc"]["Catalog.Get"]["subject"] = "rpc.v2.Catalog.Get".into();
            }),
            kind: rpc,
            surface: "Catalog.Get",
            expect: "subject moved",
            selected: Some("rpc.call"),
        },
    ];

    for c in cases {
        let plan = stack.client.plan(&c.text).await.expect("plan");
        assert!(
            plan.is_dangerous(),
            "{}: plan not dangerous: {plan:#?}",
            c.name
        );
        assert!(
            plan.items.iter().all(|i| !i.is_dangerous()),
            "{}: only surfaces change: {:?}",
            c.name,
            plan.items
        );
        let s = surface(&plan, c.kind, c.surface);
        assert!(
            s.dangers.iter().any(|d| d.contains(c.expect)),
            "{}: {:?} lacks `{}`",
            c.name,
            s.dangers,
            c.expect
        );
        let named: Vec<Dependent> = c.selected.map(dependent).into_iter().collect();
        assert_eq!(s.dependents, named, "{}: dependents", c.name);

        let err = stack
            .client
            .accept(&c.text, false)
            .await
            .expect_err("refused");
        let ClientError::Refused(AuthorityError::Dangerous { plan: refused }) = &err else {
            panic!("{}: expected a dangerous-plan refusal, got {err:?}", c.name);
        };
        assert_eq!(surface(refused, c.kind, c.surface), s);
        if let Some(selects) = c.selected {
            let message = err.to_string();
            assert!(
                message.contains(&format!(
                    "selected by shelf@v1 via uses `catalog` {selects}"
                )),
                "{}: {message}",
                c.name
            );
        }
    }
    // Nothing was accepted by the refusals.
    let report = status(&stack.client).await;
    let catalog = report
        .contracts
        .iter()
        .find(|c| c.id == ID)
        .expect("catalog");
    assert_eq!(catalog.generation, 1);

    // A rename reports the old name removed and the new one added.
    let renamed = Catalog::base()
        .with(|c| c.surfaces = SURFACES.replace("\"Catalog.Get\"", "\"Catalog.Fetch\""));
    let plan = stack.client.plan(&renamed.manifest()).await.expect("plan");
    assert_eq!(surface(&plan, rpc, "Catalog.Get").change, Change::Removed);
    let added = surface(&plan, rpc, "Catalog.Fetch");
    assert_eq!(added.change, Change::Added);
    assert!(!added.is_dangerous() && added.dependents.is_empty());

    // Confirmation accepts a breaking change.
    let reply = stack
        .client
        .accept(&renamed.manifest(), true)
        .await
        .expect("confirmed");
    assert!(reply.plan.is_dangerous());
    assert_eq!(reply.generation, 2);
}

#[tokio::test]
async fn additive_surface_changes_are_safe_and_accepted() {
    let stack = stack().await;
    let base = Catalog::base();
    accept(&stack, &base.manifest(), ID).await;
    accept(&stack, &manifest(SHELF), "shelf@v1").await;

    let grown = base.with(|c| {
        // New optional fields in an input, an output and an event payload,
        // and a widened input enum.
        c.query = format!("{QUERY}, #[serde(default)] pub owner: Option<String>");
        c.entry = format!("{ENTRY}, #[serde(default)] pub note: Option<String>");
        c.changed = format!("{CHANGED}, #[serde(default)] pub note: Option<String>");
        c.color = "Red, Green, Blue".into();
        // A new RPC, a new operation and a new event.
        c.surfaces = format!(
            r#"{SURFACES}
    #[rpc("Catalog.List")]
    fn catalog_list(input: Query) -> Entry;

    #[operation("Catalog.Export")]
    fn catalog_export(input: Query) -> Entry;
"#
        );
        c.extra = r#"
    #[event("Catalog.Removed")]
    #[derive(Serialize, Deserialize)]
    pub struct Removed { pub id: String }
"#
        .into();
    });
    let text = grown.manifest();
    let plan = stack.client.plan(&text).await.expect("plan");
    assert!(!plan.is_dangerous(), "{plan:#?}");
    for (kind, name) in [
        (SurfaceKind::Rpc, "Catalog.List"),
        (SurfaceKind::Operation, "Catalog.Export"),
        (SurfaceKind::Event, "Catalog.Removed"),
    ] {
        assert_eq!(surface(&plan, kind, name).change, Change::Added);
    }
    let get = surface(&plan, SurfaceKind::Rpc, "Catalog.Get");
    assert!(
        matches!(&get.change, Change::Changed { fields } if fields.iter().any(|f| f.starts_with("input Query")))
    );
    assert_eq!(get.dependents, vec![dependent("rpc.call")]);
    let changed = surface(&plan, SurfaceKind::Event, "Catalog.Changed");
    assert_eq!(changed.dependents, vec![dependent("events.subscribe")]);
    assert!(!changed.is_dangerous());

    let reply = stack
        .client
        .accept(&text, false)
        .await
        .expect("safe accept");
    assert!(!reply.plan.is_dangerous(), "{:?}", reply.plan);
    assert_eq!(reply.generation, 2);
    assert_eq!(reply.plan.surfaces, plan.surfaces);
    ready(&stack.client, ID, &reply.plan.digest).await;

    // Re-planning the accepted manifest changes nothing.
    let again = stack.client.plan(&text).await.expect("plan");
    assert!(again.is_noop(), "{again:#?}");
}
