//! Client stubs for any valid manifest: a hand-written `trellis.contract.v1`
//! manifest (`tests/fixtures/directory@v1.json`) with multi-segment names,
//! built-in errors, `date-time` strings, open objects and a construct with
//! no Rust mapping generates a client (in `build.rs`, as a peer team's
//! build would) that compiles and calls a real nats-server.

mod common;

use common::*;
use futures::StreamExt;
use trellis::{BuiltinError, CallError};

include!(concat!(env!("OUT_DIR"), "/directory.rs"));

use directory::{CapabilityPage, ListQuery, Note, NoteId, NotesArchivePutError, NotesError};

/// Serves the directory RPCs with a raw subscriber on the subjects a
/// provider serves (requests from every caller): `Auth.Capabilities.List`
/// answers a page (or `AuthError` when `limit` is 0), `Notes.Archive.Put`
/// answers `ValidationError` for empty text and the declared `locked`
/// error otherwise. A request not sent to the subject a caller without a
/// key uses (`trellis.test._.…`: no auth here) is answered `bad-request`.
async fn serve(nats: async_nats::Client) {
    const LIST: &str = "rpc.v1.Auth.Capabilities.List";
    const PUT: &str = "rpc.v1.Notes.Archive.Put";
    let served = |s| trellis_runtime::internal::served_subject("test", directory::ID, s);
    let sent = |s| {
        trellis_runtime::rpc::request_subject(
            "test",
            trellis_runtime::rpc::NO_CALLER,
            directory::ID,
            s,
        )
    };
    let (list, put) = (sent(LIST), sent(PUT));
    let mut subs = futures::stream::select(
        nats.subscribe(served(LIST)).await.expect("subscribe"),
        nats.subscribe(served(PUT)).await.expect("subscribe"),
    );
    nats.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(msg) = subs.next().await {
            let Some(reply) = msg.reply.clone() else {
                continue;
            };
            if msg.subject.as_str() != list && msg.subject.as_str() != put {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(trellis_runtime::rpc::STATUS_HEADER, "bad-request");
                let body = format!("unexpected request subject {}", msg.subject);
                nats.publish_with_headers(reply, headers, body.into())
                    .await
                    .expect("reply");
                continue;
            }
            let input: serde_json::Value =
                serde_json::from_slice(&msg.payload).expect("request is JSON");
            let (error, body) = if msg.subject.as_str() == list {
                assert!(input["since"].is_string(), "{input}");
                if input["limit"] == 0 {
                    (
                        true,
                        serde_json::json!({"type": "AuthError", "message": "admins only"}),
                    )
                } else {
                    (
                        false,
                        serde_json::json!({
                            "capabilities": [{
                                "key": "directory::read",
                                "grantedAt": "2026-12-04T09:00:00Z",
                                "attributes": {"scope": "all", "level": 2}
                            }],
                            "labels": {"team": "core"},
                            "annotations": {"source": "ldap"},
                            "tag": ["anything", 1]
                        }),
                    )
                }
            } else if input["text"] == "" {
                (
                    true,
                    serde_json::json!({"type": "ValidationError", "message": "empty text"}),
                )
            } else {
                (true, serde_json::json!({"kind": "locked"}))
            };
            let payload = serde_json::to_vec(&body).expect("encode").into();
            if error {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(trellis_runtime::rpc::STATUS_HEADER, "error");
                nats.publish_with_headers(reply, headers, payload)
                    .await
                    .expect("reply");
            } else {
                nats.publish(reply, payload).await.expect("reply");
            }
        }
    });
}

#[tokio::test]
async fn generated_client_round_trips_through_nats() {
    let stack = plain_stack().await;
    // The authority checks accepted manifests with the macro's stricter
    // rules today (no multi-segment names, every error type declared); the
    // call below does not depend on acceptance in a deployment without auth.
    // `MANIFEST_JSON` is the manifest as the stub read it (unknown fields dropped).
    match stack.client.accept(directory::MANIFEST_JSON, false).await {
        Ok(_) => {
            ready(&stack.client, directory::ID, directory::DIGEST).await;
        }
        Err(e) => eprintln!("the authority refused the manifest: {e}"),
    }
    serve(stack.server.client().await.expect("client")).await;

    let client = directory::Client::connect(stack.options())
        .await
        .expect("client connects");
    let query = ListQuery {
        since: "2026-12-01T00:00:00Z".into(),
        owner: None,
        limit: Some(10),
    };
    let page: CapabilityPage = client
        .rpc
        .auth
        .capabilities
        .list(&query)
        .await
        .expect("call succeeds")
        .expect("no error");
    assert_eq!(page.capabilities.len(), 1);
    let first = &page.capabilities[0];
    assert_eq!(first.key, "directory::read");
    assert_eq!(first.granted_at, "2026-12-04T09:00:00Z");
    assert_eq!(first.attributes["scope"], "all");
    assert_eq!(first.attributes["level"], 2);
    assert_eq!(page.labels["team"], "core");
    assert_eq!(
        page.annotations.as_ref().map(|a| a["source"].clone()),
        Some(serde_json::json!("ldap"))
    );
    assert_eq!(page.tag, Some(serde_json::json!(["anything", 1])));

    // A built-in error the manifest does not declare.
    let denied = client
        .rpc
        .auth
        .capabilities
        .list(&ListQuery {
            limit: Some(0),
            ..query
        })
        .await
        .expect("call completes");
    match denied {
        Err(BuiltinError::AuthError(body)) => {
            assert_eq!(body.message.as_deref(), Some("admins only"));
        }
        other => panic!("expected AuthError, got {other:?}"),
    }

    // Declared and built-in errors of one RPC.
    let note = Note {
        text: String::new(),
        at: "2026-12-04T09:30:00Z".into(),
    };
    let invalid = client
        .rpc
        .notes
        .archive
        .put(&note)
        .await
        .expect("call completes");
    assert!(
        matches!(
            invalid,
            Err(NotesArchivePutError::Builtin(BuiltinError::ValidationError(ref b)))
                if b.message.as_deref() == Some("empty text")
        ),
        "{invalid:?}"
    );
    let locked = client
        .rpc
        .notes
        .archive
        .put(&Note {
            text: "hi".into(),
            ..note
        })
        .await
        .expect("call completes");
    assert_eq!(
        locked,
        Err(NotesArchivePutError::NotesError(NotesError::Locked))
    );

    // Nobody serves `Notes.Get`.
    let unserved = client
        .rpc
        .notes
        .get(&NoteId {
            id: "00000000-0000-0000-0000-000000000000".into(),
        })
        .await;
    assert!(
        matches!(unserved, Err(CallError::NoResponders { .. })),
        "{unserved:?}"
    );
}
