#![allow(missing_docs)]
//! Surfaces whose inputs and outputs are any schema expression, against a
//! real nats-server: a generic `Page<T>` used with two item types (two
//! named schemas), a `Vec<_>` output, a primitive output, an `Option<_>`
//! output, RPCs and an operation without input. The owner's typed client
//! and a peer stub generated from this contract's JSON (by `build.rs`, with
//! the uuid and chrono options, as a peer team's build would) call the same
//! service and read the same values.

mod common;

use chrono::{DateTime, TimeZone as _, Utc};
use common::*;
use trellis::{OperationContext, OperationFailure, ServeOptions};

#[trellis::contract(
    id = "catalog@v1",
    display_name = "Catalog",
    description = "Tasks and teams, listed in pages"
)]
pub mod catalog {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use uuid::Uuid;

    /// One page of any item type.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Page<T> {
        pub items: Vec<T>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next: Option<String>,
    }

    /// A task.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Task {
        pub id: Uuid,
        pub title: String,
        pub due: DateTime<Utc>,
    }

    /// A team.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Team {
        pub id: Uuid,
        pub name: String,
    }

    /// Where a listing starts: after the item with this id.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Cursor {
        pub after: Option<Uuid>,
    }

    /// One page of tasks.
    #[rpc("Tasks.List")]
    fn tasks_list(input: Cursor) -> Page<Task>;

    /// Every task.
    #[rpc("Tasks.All")]
    fn tasks_all() -> Vec<Task>;

    /// How many tasks there are.
    #[rpc("Tasks.Count")]
    fn tasks_count() -> u64;

    /// One task by id, if it exists.
    #[rpc("Tasks.Get")]
    fn tasks_get(input: Uuid) -> Option<Task>;

    /// One page of teams.
    #[rpc("Teams.List")]
    fn teams_list(input: Cursor) -> Page<Team>;

    /// Counts the tasks again.
    #[operation("Tasks.Recount")]
    fn tasks_recount() -> u64;
}

/// The peer's view: a stub generated from `catalog@v1.json`.
mod peer {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

fn tasks() -> Vec<catalog::Task> {
    (0..3u128)
        .map(|i| catalog::Task {
            id: uuid::Uuid::from_u128(i + 1),
            title: format!("task {i}"),
            due: Utc
                .with_ymd_and_hms(2026, 12, 4 + i as u32, 9, 30, 0)
                .single()
                .expect("valid time"),
        })
        .collect()
}

struct Catalog;

impl catalog::Handlers for Catalog {
    async fn tasks_list(&self, input: catalog::Cursor) -> catalog::Page<catalog::Task> {
        let all = tasks();
        let start = match input.after {
            Some(after) => all.iter().position(|t| t.id == after).map_or(0, |i| i + 1),
            None => 0,
        };
        let items: Vec<_> = all.into_iter().skip(start).take(2).collect();
        let next = (start + items.len() < tasks().len())
            .then(|| items.last().map(|t| t.id.to_string()))
            .flatten();
        catalog::Page { items, next }
    }
    async fn tasks_all(&self) -> Vec<catalog::Task> {
        tasks()
    }
    async fn tasks_count(&self) -> u64 {
        tasks().len() as u64
    }
    async fn tasks_get(&self, input: uuid::Uuid) -> Option<catalog::Task> {
        tasks().into_iter().find(|t| t.id == input)
    }
    async fn teams_list(&self, _input: catalog::Cursor) -> catalog::Page<catalog::Team> {
        catalog::Page {
            items: vec![catalog::Team {
                id: uuid::Uuid::from_u128(7),
                name: "platform".into(),
            }],
            next: None,
        }
    }
    async fn tasks_recount(&self, _op: OperationContext<()>) -> Result<u64, OperationFailure> {
        Ok(tasks().len() as u64)
    }
}

#[test]
fn page_instances_are_distinct_named_schemas() {
    let manifest: serde_json::Value =
        serde_json::from_str(catalog::MANIFEST_JSON).expect("manifest is JSON");
    let schemas = manifest["schemas"].as_object().expect("schemas");
    let names: Vec<&str> = schemas.keys().map(String::as_str).collect();
    for name in [
        "PageOfTask",
        "PageOfTeam",
        "TaskList",
        "U64",
        "OptionalTask",
        "Uuid",
        "Empty",
    ] {
        assert!(names.contains(&name), "no schema {name} in {names:?}");
    }
    assert!(!names.contains(&"Page"), "the generic itself has no schema");
    assert_ne!(schemas["PageOfTask"], schemas["PageOfTeam"]);
    assert_eq!(
        schemas["PageOfTask"]["properties"]["items"]["items"],
        schemas["Task"]
    );
    assert_eq!(manifest["rpc"]["Tasks.All"]["input"]["schema"], "Empty");
    assert_eq!(manifest["rpc"]["Tasks.All"]["output"]["schema"], "TaskList");
    assert_eq!(
        manifest["operations"]["Tasks.Recount"]["input"]["schema"],
        "Empty"
    );
    // The peer's stub was generated from the same manifest.
    assert_eq!(peer::catalog::DIGEST, catalog::DIGEST);
}

#[tokio::test]
async fn owner_client_and_peer_stub_round_trip_through_nats() {
    let stack = stack().await;
    stack
        .client
        .accept(catalog::MANIFEST_JSON, false)
        .await
        .expect("accept catalog");
    let service = catalog::Service::connect(stack.service(catalog::ID).await)
        .await
        .expect("service connects");
    let server = service
        .serve(Catalog, ServeOptions::default())
        .await
        .expect("serve");
    let owner = catalog::Client::connect(stack.user("owner-view", &[]).await)
        .await
        .expect("owner client connects");
    let peer = peer::catalog::Client::connect(stack.user("peer-view", &[]).await)
        .await
        .expect("peer stub connects");

    // The owner's client, with the owner's types.
    let first = owner
        .rpc
        .tasks
        .list(&catalog::Cursor { after: None })
        .await
        .expect("list");
    assert_eq!(first.items, tasks()[..2].to_vec());
    let after = first.items[1].id;
    let rest = owner
        .rpc
        .tasks
        .list(&catalog::Cursor { after: Some(after) })
        .await
        .expect("second page");
    assert_eq!(rest.items, tasks()[2..].to_vec());
    assert_eq!(rest.next, None);
    assert_eq!(owner.rpc.tasks.all().await.expect("all"), tasks());
    assert_eq!(owner.rpc.tasks.count().await.expect("count"), 3);
    assert_eq!(
        owner
            .rpc
            .tasks
            .get(&uuid::Uuid::from_u128(2))
            .await
            .expect("get"),
        Some(tasks()[1].clone())
    );
    assert_eq!(
        owner
            .rpc
            .tasks
            .get(&uuid::Uuid::nil())
            .await
            .expect("get none"),
        None
    );
    let teams = owner
        .rpc
        .teams
        .list(&catalog::Cursor { after: None })
        .await
        .expect("teams");
    assert_eq!(teams.items[0].name, "platform");
    let recount = owner
        .operation
        .tasks
        .recount
        .start()
        .await
        .expect("start without input");
    match recount.wait().await.expect("recount") {
        trellis::Outcome::Completed(n) => assert_eq!(n, 3),
        other => panic!("recount did not complete: {other:?}"),
    }

    // The peer's stub: uuid and chrono map back to their Rust types
    // (`DateTime<FixedOffset>` keeps the offset it received); named
    // schemas that are not objects are newtypes around them.
    let page = peer
        .rpc
        .tasks
        .list(&peer::catalog::Cursor { after: None })
        .await
        .expect("peer list");
    let id: uuid::Uuid = page.items[0].id;
    assert_eq!(id, tasks()[0].id);
    assert_eq!(page.items[0].due, tasks()[0].due);
    assert_eq!(
        page.next.as_deref(),
        Some(tasks()[1].id.to_string().as_str())
    );
    let all = peer.rpc.tasks.all().await.expect("peer all").0;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].title, "task 2");
    assert_eq!(peer.rpc.tasks.count().await.expect("peer count").0, 3);
    let found = peer
        .rpc
        .tasks
        .get(&peer::catalog::Uuid(uuid::Uuid::from_u128(3)))
        .await
        .expect("peer get")
        .0
        .expect("task 3 exists");
    let due: DateTime<Utc> = found.due.with_timezone(&Utc);
    assert_eq!(due, tasks()[2].due);
    let recount = peer
        .operation
        .tasks
        .recount
        .start()
        .await
        .expect("peer starts without input");
    assert!(matches!(
        recount.wait().await.expect("peer recount"),
        trellis::Outcome::Completed(peer::catalog::U64(3))
    ));

    assert!(server.shutdown(std::time::Duration::from_secs(5)).await);
}
