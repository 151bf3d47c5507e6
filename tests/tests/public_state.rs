//! Public state (`trellis.state@v1`) against a real nats-server with auth
//! on: the shipped contract is the published one, namespaces come from
//! the verified caller, conditional writes, expiry, migration keyed on the
//! declared state version, and the admin RPCs behind the `admin` gate.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use trellis::ConnectOptions;
use trellis_runtime::BuiltinError;
use trellis_runtime::identity::{Credentials, PrincipalKind};
use trellis_runtime::rpc::CallError;
use trellis_runtime::state::*;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Settings {
    theme: String,
    font_size: u32,
}

fn connect(stack: &Stack, creds: &Credentials) -> impl Future<Output = StateClient> {
    let options = ConnectOptions::new(stack.server.url())
        .deployment("test")
        .credentials(creds.clone());
    async move { StateClient::connect(options).await.expect("state client") }
}

/// A caller contract (`kind: app`) declaring store `settings` at
/// `state_version`, whose value schema is `schema`.
fn notes(state_version: &str, schema: serde_json::Value, accepted: &[&str]) -> String {
    let mut store = json!({
        "kind": "map",
        "schema": {"schema": "Settings"},
        "stateVersion": state_version,
    });
    if !accepted.is_empty() {
        store["acceptedVersions"] = accepted
            .iter()
            .map(|v| ((*v).to_owned(), json!({"schema": "Settings"})))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    let manifest = json!({
        "format": "trellis.contract.v1",
        "id": "notes@v1",
        "displayName": "Notes",
        "description": "A notes app keeping its settings in public state",
        "kind": "app",
        "schemas": {"Settings": schema},
        "state": {"settings": store, "profile": {"kind": "value", "schema": {"schema": "Settings"}}},
    });
    trellis_codegen::Json::from_value(&manifest).to_canonical_string()
}

async fn accept_notes(stack: &Stack, manifest: &str) -> String {
    let digest = trellis_codegen::digest_text(manifest).expect("digest");
    accept_ready(stack, manifest, "notes@v1", &digest).await;
    digest
}

fn is_validation(r: &Result<impl std::fmt::Debug, StateClientError>) -> bool {
    matches!(
        r,
        Err(StateClientError::Refused(BuiltinError::ValidationError(_)))
    )
}

#[test]
fn the_shipped_contract_is_the_published_one() {
    assert_eq!(
        trellis_codegen::digest_text(STATE_MANIFEST).expect("digest"),
        "XfWDYLTBlYFjDqMPBEXrTBccZbFvHp0MnqscehdRKT4"
    );
    let checked = trellis_codegen::check::check_manifest_with(
        STATE_MANIFEST,
        trellis_codegen::validate::Rules::Format,
    )
    .expect("valid");
    let rpcs: Vec<&str> = checked.manifest.rpc.keys().map(String::as_str).collect();
    assert_eq!(
        rpcs,
        [
            "State.Admin.Delete",
            "State.Admin.Get",
            "State.Admin.List",
            "State.Delete",
            "State.Get",
            "State.List",
            "State.Put",
        ]
    );
    for name in ["State.Admin.Delete", "State.Admin.Get", "State.Admin.List"] {
        let gate = checked.manifest.rpc[name]
            .capabilities
            .as_ref()
            .and_then(|c| c.call.clone());
        assert_eq!(gate, Some(vec!["admin".to_owned()]), "{name}");
    }
}

/// What the client sends and the server answers validates against the
/// published schemas.
#[test]
fn wire_values_validate_against_the_published_schemas() {
    let manifest: serde_json::Value = serde_json::from_str(STATE_MANIFEST).expect("json");
    let check = |schema: &str, value: serde_json::Value| {
        let validator =
            jsonschema::validator_for(&manifest["schemas"][schema]).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{schema}: {value} => {errors:?}");
    };
    let entry = Entry {
        key: Some("ui".into()),
        value: json!({"theme": "dark"}),
        revision: "3".into(),
        updated_at: rfc3339_ms(1_700_000_000_000),
        expires_at: Some(rfc3339_ms(1_700_000_060_000)),
    };
    let notice = MigrationRequired {
        migration_required: True,
        entry: entry.clone(),
        state_version: "1".into(),
        current_state_version: "2".into(),
        writer_contract_digest: "abc".into(),
    };
    let v = |x: &dyn erased::Ser| x.value();
    check("StateEntry", v(&entry));
    check("StateMigrationRequired", v(&notice));
    for lookup in [
        Lookup::Missing,
        Lookup::Found(entry.clone()),
        Lookup::MigrationRequired(Box::new(notice.clone())),
    ] {
        check("StateGetResponse", v(&lookup));
        check("StateAdminGetResponse", v(&lookup));
    }
    for put in [
        PutResponse::Applied(entry.clone()),
        PutResponse::NotApplied { current: None },
        PutResponse::NotApplied {
            current: Some(Listed::Entry(entry.clone())),
        },
        PutResponse::NotApplied {
            current: Some(Listed::MigrationRequired(Box::new(notice.clone()))),
        },
    ] {
        check("StatePutResponse", v(&put));
    }
    let list = ListResponse {
        entries: vec![
            Listed::Entry(entry.clone()),
            Listed::MigrationRequired(Box::new(notice)),
        ],
        count: 5,
        offset: 0,
        limit: 2,
        next_offset: Some(2),
    };
    check("StateListResponse", v(&list));
    check("StateAdminListResponse", v(&list));
    for expected in [
        Expected::Any,
        Expected::Absent,
        Expected::Revision("4".into()),
    ] {
        check(
            "StatePutRequest",
            v(&PutRequest {
                store: "settings".into(),
                key: Some("ui".into()),
                value: json!(1),
                expected_revision: expected,
                ttl_ms: Some(1000),
            }),
        );
    }
    let scope = AdminScope {
        target: StateTarget::UserApp {
            user: StateUserTarget::principal("alice"),
        },
        contract_id: "notes@v1".into(),
        contract_digest: "abc".into(),
        store: "settings".into(),
    };
    check(
        "StateAdminGetRequest",
        v(&AdminGetRequest {
            scope: scope.clone(),
            key: Some("ui".into()),
        }),
    );
    check(
        "StateAdminListRequest",
        v(&AdminListRequest {
            scope: scope.clone(),
            prefix: None,
            offset: None,
            limit: 10,
        }),
    );
    check(
        "StateAdminDeleteRequest",
        v(&AdminDeleteRequest {
            scope,
            key: Some("ui".into()),
            expected_revision: Some("2".into()),
        }),
    );
}

/// `serde_json::to_value` behind a trait object, so one closure takes
/// every wire type.
mod erased {
    pub trait Ser {
        fn value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn value(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("encodes")
        }
    }
}

#[tokio::test]
async fn public_state_is_namespaced_by_user_contract_name_and_store() {
    let stack = auth_stack().await;
    let device =
        |id, user, contract| stack.enroll(PrincipalKind::Device, id, Some(user), Some(contract));
    let phone = device("alice-phone", "alice", "notes@v1").await;
    let laptop = device("alice-laptop", "alice", "notes@v1").await;
    let tablet = device("alice-tablet", "alice", "notes@v2").await;
    let bob = device("bob-phone", "bob", "notes@v1").await;
    let other_app = device("alice-chat", "alice", "chat@v1").await;
    let phone = connect(&stack, &phone).await;
    let laptop = connect(&stack, &laptop).await;
    let tablet = connect(&stack, &tablet).await;
    let bob = connect(&stack, &bob).await;
    let other_app = connect(&stack, &other_app).await;

    let mine = phone.store::<String>("settings");
    let rev = mine.put("ui", &"dark".to_owned()).await.expect("put");
    assert!(rev.parse::<u64>().expect("decimal revision") > 0);

    // Two devices of one user share the namespace, and so does another
    // version of the contract (same name, same default state version).
    for reader in [&laptop, &tablet] {
        let seen = reader
            .store::<String>("settings")
            .get("ui")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(seen.value, "dark");
        assert_eq!(seen.revision, rev);
        assert_eq!(seen.migrated, None);
        assert_eq!(seen.expires_at, None);
    }
    // Another user, another app of the same user, or another store: empty.
    let get = |client: &StateClient, store: &str| {
        let store = client.store::<String>(store);
        async move { store.get("ui").await.expect("get") }
    };
    assert_eq!(get(&bob, "settings").await, None);
    assert_eq!(get(&other_app, "settings").await, None);
    assert_eq!(get(&phone, "drafts").await, None);
    bob.store::<String>("settings")
        .put("ui", &"light".to_owned())
        .await
        .expect("bob writes his own");
    assert_eq!(
        get(&phone, "settings").await.expect("present").value,
        "dark",
        "bob's write does not touch alice's namespace"
    );

    // Conditional writes: create-if-absent (`expectedRevision: null`)
    // conflicts with the existing entry, a stale revision conflicts, the
    // current one applies.
    match mine
        .put_with("ui", &"x".to_owned(), WriteOptions::new().if_absent())
        .await
        .expect("answered")
    {
        PutOutcome::Conflict { current: Some(c) } => {
            assert_eq!(
                (c.value.as_str(), c.revision.as_str()),
                ("dark", rev.as_str())
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let applied = match mine
        .put_with(
            "ui",
            &"dim".to_owned(),
            WriteOptions::new().if_revision(&rev),
        )
        .await
        .expect("answered")
    {
        PutOutcome::Applied(e) => e,
        other => panic!("expected the write, got {other:?}"),
    };
    assert_ne!(applied.revision, rev);
    assert_eq!(applied.value, "dim");
    match mine
        .put_with("ui", &"y".to_owned(), WriteOptions::new().if_revision(&rev))
        .await
        .expect("answered")
    {
        PutOutcome::Conflict { current: Some(c) } => assert_eq!(c.revision, applied.revision),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        !mine.delete_if("ui", &rev).await.expect("delete"),
        "a stale revision deletes nothing"
    );
    assert!(
        mine.delete_if("ui", &applied.revision)
            .await
            .expect("delete")
    );
    // Create-if-absent over the deleted entry applies.
    assert!(matches!(
        mine.put_with("ui", &"new".to_owned(), WriteOptions::new().if_absent())
            .await
            .expect("answered"),
        PutOutcome::Applied(_)
    ));

    // Listing: prefix, offset and limit, in key order.
    let notes = phone.store::<String>("notes");
    for key in ["b/2", "a/1", "b/1", "c/1", "b/3"] {
        notes.put(key, &key.to_owned()).await.expect("put");
    }
    let page = notes.list(Some("b/"), 0, 2).await.expect("list");
    let keys: Vec<&str> = page
        .entries
        .iter()
        .filter_map(|e| e.key.as_deref())
        .collect();
    assert_eq!(keys, ["b/1", "b/2"]);
    assert_eq!((page.count, page.next_offset), (3, Some(2)));
    let page = notes.list(Some("b/"), 2, 2).await.expect("list");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.next_offset, None);
    assert_eq!(
        bob.store::<String>("notes")
            .list(None, 0, 10)
            .await
            .expect("bob")
            .count,
        0
    );
    assert!(notes.delete("a/1").await.expect("delete"));
    assert!(!notes.delete("a/1").await.expect("again"));
    // A store the contract does not declare takes one unkeyed value too.
    let single = phone.store::<String>("flags");
    assert!(matches!(
        single
            .put_value(&"on".to_owned(), WriteOptions::new())
            .await
            .expect("put"),
        PutOutcome::Applied(_)
    ));
    let value = single.get_value().await.expect("get").expect("present");
    assert_eq!((value.key, value.value.as_str()), (None, "on"));
    // Bad input is a typed ValidationError and the service keeps serving.
    assert!(is_validation(
        &phone.store::<String>("Bad Store").get("x").await
    ));
    assert!(is_validation(
        &notes.put(&"k".repeat(300), &"x".to_owned()).await
    ));
    assert!(is_validation(&notes.delete_if("b/1", "not-a-number").await));
    assert_eq!(
        notes.list(None, 0, 10).await.expect("still serving").count,
        4
    );
}

#[tokio::test]
async fn migration_follows_the_declared_state_version_not_the_digest() {
    let stack = auth_stack().await;
    let v1 = notes("1", json!({"type": "string"}), &[]);
    let first = accept_notes(&stack, &v1).await;
    let phone = stack
        .enroll(
            PrincipalKind::Device,
            "alice-phone",
            Some("alice"),
            Some("notes@v1"),
        )
        .await;
    let phone = connect(&stack, &phone).await;
    // State version "1" stored the theme as a bare string.
    let old = phone.store::<String>("settings");
    old.put("ui", &"dark".to_owned()).await.expect("put");

    // A new digest with the same state version: read as it is.
    let same_version = notes("1", json!({"type": "string", "minLength": 1}), &[]);
    let second = accept_notes(&stack, &same_version).await;
    assert_ne!(first, second, "the contract changed");
    let entry = old.get("ui").await.expect("get").expect("present");
    assert_eq!(entry.value, "dark");
    assert_eq!(entry.migrated, None, "a new digest alone migrates nothing");

    // State version "2": the entry needs migrating.
    let v2 = notes(
        "2",
        json!({"type": "object", "properties": {"theme": {"type": "string"}}}),
        &[],
    );
    accept_notes(&stack, &v2).await;
    let plain = phone.store::<Settings>("settings");
    let notice = match plain.get("ui").await {
        Err(StateClientError::MigrationRequired(notice)) => notice,
        other => panic!("expected a migration notice, got {other:?}"),
    };
    assert_eq!(
        (
            notice.state_version.as_str(),
            notice.current_state_version.as_str()
        ),
        ("1", "2")
    );
    assert_eq!(
        notice.writer_contract_digest, first,
        "the writer's digest is reported"
    );
    assert_eq!(notice.entry.value, json!("dark"));
    let migrating = phone
        .store::<Settings>("settings")
        .migrate(|old: &MigrationRequired| {
            if old.state_version != "1" {
                return Err(format!("unknown state version {}", old.state_version));
            }
            Ok(Settings {
                theme: old.entry.value.as_str().ok_or("not a string")?.to_owned(),
                font_size: 12,
            })
        });
    let migrated = migrating.get("ui").await.expect("get").expect("present");
    let how = migrated.migrated.clone().expect("migrated");
    assert_eq!((how.from.as_str(), how.to.as_str()), ("1", "2"));
    assert_eq!(
        migrated.value,
        Settings {
            theme: "dark".into(),
            font_size: 12
        }
    );
    // Lists migrate too.
    let page = migrating.list(None, 0, 10).await.expect("list");
    assert_eq!(page.entries.len(), 1);
    assert!(page.entries[0].migrated.is_some());
    // Writing it back records version "2": no migration on re-read.
    let written = migrating
        .put_with(
            "ui",
            &migrated.value,
            WriteOptions::new().if_revision(&migrated.revision),
        )
        .await
        .expect("compare-and-set");
    assert!(matches!(written, PutOutcome::Applied(_)));
    let fresh = plain.get("ui").await.expect("get").expect("present");
    assert_eq!(fresh.migrated, None);
    assert_eq!(fresh.value.theme, "dark");

    // A version the store lists under `acceptedVersions` reads as it is.
    let v3 = notes(
        "3",
        json!({"type": "object", "properties": {"theme": {"type": "string"}}, "required": ["theme"]}),
        &["2"],
    );
    accept_notes(&stack, &v3).await;
    let accepted = plain.get("ui").await.expect("get").expect("present");
    assert_eq!(
        accepted.migrated, None,
        "version 2 is accepted by version 3"
    );

    // A declared `value` store holds one entry, without a key.
    let profile = phone.store::<Settings>("profile");
    assert!(is_validation(&profile.get("x").await));
    profile
        .put_value(&fresh.value, WriteOptions::new())
        .await
        .expect("put");
    assert!(profile.get_value().await.expect("get").is_some());
    // A declared `map` store needs keys.
    assert!(is_validation(&plain.get_value().await));
}

#[tokio::test]
async fn admins_reach_every_namespace_and_entries_expire() {
    let stack = auth_stack().await;
    let manifest = notes("1", json!({"type": "string"}), &[]);
    let digest = accept_notes(&stack, &manifest).await;
    let phone = stack
        .enroll(
            PrincipalKind::Device,
            "alice-phone",
            Some("alice"),
            Some("notes@v1"),
        )
        .await;
    let phone = connect(&stack, &phone).await;
    let settings = phone.store::<String>("settings");
    for key in ["ui", "font", "lang"] {
        settings
            .put(key, &format!("{key}-value"))
            .await
            .expect("put");
    }
    let ops = StateClient::connect(stack.user("ops", &["admin"]).await)
        .await
        .expect("ops");
    let bob = StateClient::connect(stack.user("bob", &[]).await)
        .await
        .expect("bob");
    let scope = AdminScope {
        target: StateTarget::UserApp {
            user: StateUserTarget::principal("alice"),
        },
        contract_id: "notes@v1".into(),
        contract_digest: digest.clone(),
        store: "settings".into(),
    };
    let get_ui = AdminGetRequest {
        scope: scope.clone(),
        key: Some("ui".into()),
    };

    // The admin reads alice's entry (once its grant reached the service).
    let found = eventually(Duration::from_secs(5), "admin get", || async {
        ops.admin().get(&get_ui).await.ok()
    })
    .await;
    match found {
        Lookup::Found(entry) => assert_eq!(entry.value, json!("ui-value")),
        other => panic!("expected alice's entry, got {other:?}"),
    }
    let page = ops
        .admin()
        .list(&AdminListRequest {
            scope: scope.clone(),
            prefix: None,
            offset: None,
            limit: 2,
        })
        .await
        .expect("admin list");
    assert_eq!(
        (page.count, page.entries.len(), page.next_offset),
        (3, 2, Some(2))
    );
    assert!(
        ops.admin()
            .delete(&AdminDeleteRequest {
                scope: scope.clone(),
                key: Some("font".into()),
                expected_revision: None,
            })
            .await
            .expect("admin delete")
    );
    assert_eq!(settings.get("font").await.expect("get"), None);
    // A digest other than the accepted one, an unknown origin and the
    // device scope are refused as invalid.
    let mut stale = get_ui.clone();
    stale.scope.contract_digest = "not-the-digest".into();
    assert!(is_validation(&ops.admin().get(&stale).await));
    let mut foreign = get_ui.clone();
    foreign.scope.target = StateTarget::UserApp {
        user: StateUserTarget {
            origin: "github".into(),
            id: "123".into(),
            user_id: None,
        },
    };
    assert!(is_validation(&ops.admin().get(&foreign).await));
    let mut device = get_ui.clone();
    device.scope.target = StateTarget::DeviceApp {
        device_id: "alice-phone".into(),
    };
    assert!(is_validation(&ops.admin().get(&device).await));

    // Everyone else is refused by the call gate, before the handler.
    for client in [&bob, &phone] {
        match client.admin().get(&get_ui).await {
            Err(StateClientError::Call(CallError::Forbidden { .. })) => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
        match client
            .admin()
            .delete(&AdminDeleteRequest {
                scope: scope.clone(),
                key: Some("ui".into()),
                expected_revision: None,
            })
            .await
        {
            Err(StateClientError::Call(CallError::Forbidden { .. })) => {}
            other => panic!("expected forbidden, got {other:?}"),
        }
    }
    assert!(settings.get("ui").await.expect("get").is_some());

    // Expiry: an entry written with a time to live reports it, then is
    // gone for reads and lists, and a create-if-absent takes its place.
    let ttl = WriteOptions::new().ttl(Duration::from_millis(2000));
    let written = match settings
        .put_with("otp", &"123456".to_owned(), ttl.clone())
        .await
        .expect("put")
    {
        PutOutcome::Applied(e) => e,
        other => panic!("expected the write, got {other:?}"),
    };
    assert!(written.expires_at.is_some());
    let read = settings.get("otp").await.expect("get").expect("present");
    assert_eq!(read.expires_at, written.expires_at);
    settings
        .put_with("session", &"s".to_owned(), ttl.clone())
        .await
        .expect("put");
    // In a store nobody reads or lists again, so only the sweep purges it.
    phone
        .store::<String>("codes")
        .put_with("unread", &"x".to_owned(), ttl)
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Create-if-absent over the expired entry (not read since) applies.
    match settings
        .put_with("otp", &"654321".to_owned(), WriteOptions::new().if_absent())
        .await
        .expect("put")
    {
        PutOutcome::Applied(e) => assert_eq!((e.value.as_str(), e.expires_at), ("654321", None)),
        other => panic!("expected the write, got {other:?}"),
    }
    assert_eq!(settings.get("session").await.expect("get"), None);
    let page = settings.list(None, 0, 10).await.expect("list");
    let keys: Vec<&str> = page
        .entries
        .iter()
        .filter_map(|e| e.key.as_deref())
        .collect();
    assert_eq!((page.count, keys), (3, vec!["lang", "otp", "ui"]));
    // The expired entry nobody read again is purged from the bucket.
    let js = async_nats::jetstream::new(stack.server.client().await.expect("client"));
    let bucket = js
        .get_key_value(trellis_authority::public_state::bucket_name("test"))
        .await
        .expect("bucket");
    let b64 = |s: &str| trellis_runtime::internal::b64url(s.as_bytes());
    let unread = format!("{}.{}.codes.{}", b64("alice"), b64("notes"), b64("unread"));
    eventually(
        trellis_authority::public_state::SWEEP_INTERVAL + Duration::from_secs(5),
        "the sweep purges the expired entry",
        || async {
            bucket
                .get(&unread)
                .await
                .expect("read")
                .is_none()
                .then_some(())
        },
    )
    .await;
}

/// A contract declaring its public state stores with `#[state]`: the
/// current value schema's version, the older version it still reads as it
/// is, and a keyed store without a declared version.
#[trellis::contract(
    id = "journal@v1",
    display_name = "Journal",
    description = "Keeps each user's drafts and preferences in public state"
)]
pub mod journal {
    use serde::{Deserialize, Serialize};

    /// Display preferences.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Prefs {
        /// Colour scheme.
        pub theme: String,
        /// Text size in points, when chosen.
        #[serde(default)]
        pub font_size: Option<u32>,
    }

    /// Display preferences as version v1 wrote them.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct PrefsV1 {
        /// Colour scheme.
        pub theme: String,
    }

    /// A draft.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Draft {
        /// What the user wrote.
        pub text: String,
    }

    /// One set of preferences per user.
    #[state(kind = "value", schema = Prefs, version = "v2", accepts(v1 = PrefsV1))]
    pub struct UiPrefs;

    /// Drafts by id.
    #[state(kind = "map", schema = Draft, name = "drafts")]
    pub struct DraftStore;
}

#[test]
fn state_stores_declared_in_rust_are_the_manifest_state_section() {
    let manifest: serde_json::Value =
        serde_json::from_str(journal::MANIFEST_JSON).expect("manifest is JSON");
    let docs = |text: &str| json!({"markdown": text, "summary": text});
    assert_eq!(
        manifest["state"],
        json!({
            "drafts": {"docs": docs("Drafts by id."), "kind": "map", "schema": {"schema": "Draft"}},
            "ui_prefs": {
                "docs": docs("One set of preferences per user."),
                "kind": "value",
                "schema": {"schema": "Prefs"},
                "stateVersion": "v2",
                "acceptedVersions": {"v1": {"schema": "PrefsV1"}}
            }
        })
    );
    assert_eq!(journal::UiPrefs::NAME, "ui_prefs");
    assert_eq!(journal::DraftStore::NAME, "drafts");
    // The format's own checks accept it, and the version is in the digest.
    let checked = trellis_codegen::check_manifest(journal::MANIFEST_JSON).expect("check");
    assert_eq!(checked.digest, journal::DIGEST);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/public_state.rs");
    let text = std::fs::read_to_string(&path).expect("this file");
    let digest_of = |text: &str| {
        let contracts = trellis_codegen::parse_source(text, &path).expect("parses");
        let journal = contracts
            .iter()
            .find(|c| c.manifest.id == "journal@v1")
            .expect("journal");
        journal.manifest.digest()
    };
    assert_eq!(
        digest_of(&text),
        journal::DIGEST,
        "macro and build.rs agree"
    );
    let bumped = text.replace(r#"version = "v2", accepts"#, r#"version = "v3", accepts"#);
    assert_ne!(
        digest_of(&bumped),
        journal::DIGEST,
        "the state version is part of the digest"
    );
}

#[tokio::test]
async fn a_rust_declared_store_reads_its_accepted_version_and_migrates_others() {
    let stack = auth_stack().await;
    // Version v1 of the contract's preferences, before the `#[state]` above.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/public_state.rs");
    let text = std::fs::read_to_string(&path).expect("this file");
    let manifest_of = |text: &str| {
        trellis_codegen::parse_source(text, &path)
            .expect("parses")
            .into_iter()
            .find(|c| c.manifest.id == "journal@v1")
            .expect("journal")
            .manifest
            .to_canonical_string()
    };
    let v1 = manifest_of(&text.replace(
        r#"schema = Prefs, version = "v2", accepts(v1 = PrefsV1)"#,
        r#"schema = PrefsV1, version = "v1""#,
    ));
    let v1_digest = trellis_codegen::digest_text(&v1).expect("digest");
    accept_ready(&stack, &v1, "journal@v1", &v1_digest).await;
    let phone = stack
        .enroll(
            PrincipalKind::Device,
            "carol-phone",
            Some("carol"),
            Some("journal@v1"),
        )
        .await;
    let phone = connect(&stack, &phone).await;
    phone
        .store::<journal::PrefsV1>(journal::UiPrefs::NAME)
        .put_value(
            &journal::PrefsV1 {
                theme: "dark".into(),
            },
            WriteOptions::new(),
        )
        .await
        .expect("put v1");

    // The Rust declaration: v2, which accepts v1 as it is.
    accept_ready(
        &stack,
        journal::MANIFEST_JSON,
        "journal@v1",
        journal::DIGEST,
    )
    .await;
    let prefs = journal::UiPrefs::open(&phone);
    let read = prefs.get_value().await.expect("get").expect("present");
    assert_eq!(read.migrated, None, "v1 is accepted by v2");
    assert_eq!(read.value.theme, "dark");
    let drafts = journal::DraftStore::open(&phone);
    drafts
        .put(
            "first",
            &journal::Draft {
                text: "hello".into(),
            },
        )
        .await
        .expect("put draft");
    assert_eq!(
        drafts
            .get("first")
            .await
            .expect("get")
            .map(|e| e.value.text),
        Some("hello".to_owned())
    );

    // v3 without `accepts`: the v1 entry needs the migration hook.
    let v3 = manifest_of(&text.replace(
        r#"version = "v2", accepts(v1 = PrefsV1)"#,
        r#"version = "v3""#,
    ));
    let v3_digest = trellis_codegen::digest_text(&v3).expect("digest");
    accept_ready(&stack, &v3, "journal@v1", &v3_digest).await;
    match prefs.get_value().await {
        Err(StateClientError::MigrationRequired(notice)) => {
            assert_eq!(
                (
                    notice.state_version.as_str(),
                    notice.current_state_version.as_str()
                ),
                ("v1", "v3")
            );
        }
        other => panic!("expected a migration notice, got {other:?}"),
    }
}
