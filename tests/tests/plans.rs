//! Plan classification against a real authority: every dangerous change is
//! reported dangerous and refused without confirmation; safe ones pass.

mod common;

use common::*;
use trellis_runtime::ClientError;
use trellis_runtime::protocol::{AuthorityError, Change};

fn refused_as_dangerous(
    result: Result<trellis_runtime::protocol::AcceptReply, ClientError>,
) -> Vec<String> {
    match result {
        Err(ClientError::Refused(AuthorityError::Dangerous { plan })) => {
            assert!(plan.is_dangerous());
            plan.items.into_iter().flat_map(|i| i.dangers).collect()
        }
        other => panic!("expected a dangerous-plan refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn dangerous_changes_need_confirmation() {
    let stack = stack().await;
    let base = manifest(&shop(KV, STORE, ITEM));
    let first = stack
        .client
        .accept(&base, false)
        .await
        .expect("first accept is safe");
    assert!(!first.plan.is_dangerous());
    assert_eq!(first.plan.items.len(), 2);
    assert!(first.plan.items.iter().all(|i| i.change == Change::Added));

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "lower history",
            manifest(&shop(
                &KV.replace("history = 4", "history = 2"),
                STORE,
                ITEM,
            )),
            "history lowered",
        ),
        (
            "lower kv ttl",
            manifest(&shop(
                &KV.replace("ttl_ms = 60000", "ttl_ms = 1000"),
                STORE,
                ITEM,
            )),
            "ttl lowered",
        ),
        (
            "lower store ttl",
            manifest(&shop(
                KV,
                &STORE.replace("ttl_ms = 60000", "ttl_ms = 59000"),
                ITEM,
            )),
            "ttl lowered",
        ),
        (
            "lower max value",
            manifest(&shop(
                &KV.replace("max_value_bytes = 4096", "max_value_bytes = 100"),
                STORE,
                ITEM,
            )),
            "max value size lowered",
        ),
        (
            "lower store limit",
            manifest(&shop(
                KV,
                &STORE.replace("max_total_bytes = 1000000", "max_total_bytes = 10"),
                ITEM,
            )),
            "size limit lowered",
        ),
        (
            "incompatible schema",
            manifest(&shop(KV, STORE, "pub id: String, pub count: String")),
            "schema changes incompatibly",
        ),
        (
            "new required field",
            manifest(&shop(
                KV,
                STORE,
                "pub id: String, pub count: u32, pub owner: String",
            )),
            "became required",
        ),
        (
            "rename alias",
            manifest(&shop(KV, STORE, ITEM).replace("pub struct Items;", "pub struct Products;")),
            "is removed (or renamed)",
        ),
        (
            "remove alias",
            manifest(
                &shop(KV, STORE, ITEM)
                    .replace(&format!("#[store({STORE})]\n    pub struct Photos;"), ""),
            ),
            "is removed",
        ),
    ];
    for (name, text, expect) in cases {
        let plan = stack.client.plan(&text).await.expect("plan");
        assert!(plan.is_dangerous(), "{name}: plan not dangerous: {plan:?}");
        let dangers = refused_as_dangerous(stack.client.accept(&text, false).await);
        assert!(
            dangers.iter().any(|d| d.contains(expect)),
            "{name}: {dangers:?} lacks `{expect}`"
        );
    }
    // Nothing was accepted by the refusals.
    let report = status(&stack.client).await;
    assert_eq!(report.contracts.len(), 1);
    assert_eq!(report.contracts[0].generation, 1);

    // Safe changes: raise limits, widen the schema additively, unlimit.
    let safe = manifest(&shop(
        &KV.replace("history = 4", "history = 8")
            .replace("ttl_ms = 60000", "ttl_ms = 0"),
        &STORE.replace(", max_total_bytes = 1000000", ""),
        "pub id: String, pub count: u32, #[serde(default)] pub note: Option<String>",
    ));
    let reply = stack
        .client
        .accept(&safe, false)
        .await
        .expect("safe changes accept");
    assert!(!reply.plan.is_dangerous(), "{:?}", reply.plan);
    assert_eq!(reply.generation, 2);

    // Confirmation accepts a dangerous plan.
    let dangerous = manifest(&shop(
        &KV.replace("history = 4", "history = 1"),
        STORE,
        ITEM,
    ));
    let reply = stack
        .client
        .accept(&dangerous, true)
        .await
        .expect("confirmed");
    assert!(reply.plan.is_dangerous());
    assert_eq!(reply.generation, 3);
}

#[tokio::test]
async fn adopting_an_incompatible_existing_stream_is_dangerous_and_not_adopted() {
    let stack = stack().await;
    let text = manifest(&shop(KV, STORE, ITEM));
    let plan = stack.client.plan(&text).await.expect("plan");
    let items = plan
        .items
        .iter()
        .find(|i| i.alias == "items")
        .expect("items planned");
    // Someone already created a stream under the chosen name, for other subjects.
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: format!("KV_{}", items.physical),
        subjects: vec!["elsewhere.>".into()],
        ..Default::default()
    })
    .await
    .expect("foreign stream");
    let dangers = refused_as_dangerous(stack.client.accept(&text, false).await);
    assert!(
        dangers.iter().any(|d| d.contains("will not be adopted")),
        "{dangers:?}"
    );

    stack.client.accept(&text, true).await.expect("confirmed");
    let state = state_where(&stack.client, "shop@v1", "items to fail", |s| {
        s.resources.iter().any(|r| {
            r.alias == "items"
                && matches!(
                    r.status,
                    trellis_runtime::protocol::ResourceStatus::Failed { .. }
                )
        })
    })
    .await;
    let items_state = state
        .resources
        .iter()
        .find(|r| r.alias == "items")
        .expect("items");
    let trellis_runtime::protocol::ResourceStatus::Failed { reason } = &items_state.status else {
        unreachable!()
    };
    assert!(
        reason.contains("not adopting") && reason.contains("subjects"),
        "{reason}"
    );
    // The foreign stream is untouched.
    let mut stream = js
        .get_stream(format!("KV_{}", items.physical))
        .await
        .expect("still there");
    assert_eq!(
        stream.info().await.expect("info").config.subjects,
        vec!["elsewhere.>".to_owned()]
    );
    // The store (no conflict) is provisioned.
    assert!(state.bindings.store.contains_key("photos"));
    assert!(!state.bindings.kv.contains_key("items"));
}

#[tokio::test]
async fn invalid_manifests_are_refused_with_reasons() {
    let stack = stack().await;
    let err = stack
        .client
        .accept("{\"format\": 1}", false)
        .await
        .expect_err("invalid");
    assert!(
        matches!(
            err,
            ClientError::Refused(AuthorityError::InvalidManifest { .. })
        ),
        "{err:?}"
    );
    let unknown_field = manifest(&shop(KV, STORE, ITEM)).replacen("{", "{\"surprise\":1,", 1);
    let err = stack
        .client
        .plan(&unknown_field)
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("surprise"), "{err}");
}
