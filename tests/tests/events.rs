//! Typed events against a real nats-server: the documents service
//! publishes `Documents.Created` after each upload; callers listen live,
//! with and without template filters.

mod common;

use std::time::Duration;

use common::*;
use documents_example::{DocumentsService, documents};
use futures::StreamExt as _;
use trellis::{EventError, ReceivedEvent, ServeOptions};

type Created = ReceivedEvent<documents::DocumentCreated>;

async fn next(events: &mut trellis::EventStream<documents::DocumentCreated>) -> Created {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("decodes")
}

async fn nothing_within(
    events: &mut trellis::EventStream<documents::DocumentCreated>,
    wait: Duration,
) {
    if let Ok(Some(event)) = tokio::time::timeout(wait, events.next()).await {
        panic!("expected no event, got {event:?}");
    }
}

#[tokio::test]
async fn typed_events_with_template_filters_and_live_listeners() {
    let stack = stack().await;
    accept_ready(
        &stack,
        documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let service = documents::Service::connect(stack.service(documents::ID).await)
        .await
        .expect("service");
    let _server = service
        .serve(DocumentsService::new(&service), ServeOptions::default())
        .await
        .expect("serve");
    let client = documents::Client::connect(
        stack
            .user("ann", &["documents::read", "documents::write"])
            .await,
    )
    .await
    .expect("client");

    let mut all = client.events.documents.created.listen().await.expect("all");
    let mut only_report = client
        .events
        .documents
        .created
        .clone()
        .filter("/key", "reports/q3.pdf")
        .listen()
        .await
        .expect("filtered");

    for (key, data) in [("notes.txt", "hello"), ("reports/q3.pdf", "%PDF")] {
        let op = client
            .operation
            .files
            .upload
            .input(documents::UploadInput {
                key: key.into(),
                content_type: "text/plain".into(),
                metadata: Default::default(),
            })
            .transfer(bytes::Bytes::from(data))
            .start()
            .await
            .expect("upload");
        op.wait().await.expect("wait");
    }

    let first = next(&mut all).await;
    let second = next(&mut all).await;
    assert_eq!(first.event.key, "notes.txt");
    assert_eq!(first.event.size, 5);
    assert_eq!(second.event.key, "reports/q3.pdf");
    assert_ne!(first.id, second.id);
    assert!(first.time_ms > 0 && second.time_ms >= first.time_ms);
    // The key's `/` and `.` are escaped into one subject token.
    assert!(
        second
            .subject
            .ends_with("events.v1.Documents.Created.reports%2Fq3%2Epdf"),
        "{}",
        second.subject
    );
    let filtered = next(&mut only_report).await;
    assert_eq!(filtered.event.key, "reports/q3.pdf");
    nothing_within(&mut only_report, Duration::from_millis(300)).await;

    // A listener that starts now sees only what is published from now on.
    let mut late = client
        .events
        .documents
        .created
        .listen()
        .await
        .expect("late");
    nothing_within(&mut late, Duration::from_millis(300)).await;
    service
        .events
        .documents
        .created
        .publish(&documents::DocumentCreated {
            key: "direct".into(),
            size: 1,
            content_type: "x".into(),
        })
        .await
        .expect("publish");
    assert_eq!(next(&mut late).await.event.key, "direct");

    // A message no service of the contract signed (here also not JSON) is
    // an error item, checked before it is decoded; the listener goes on.
    let nats = stack.server.client().await.expect("nats");
    let subject =
        trellis::rpc::surface_subject("test", documents::ID, "events.v1.Documents.Created.broken");
    nats.publish(subject.clone(), "{not json".into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    match tokio::time::timeout(Duration::from_secs(5), late.next()).await {
        Ok(Some(Err(EventError::Unverified { .. }))) => {}
        other => panic!("expected an unverified message, got {other:?}"),
    }
    // Without authentication nothing is verified: the same message is an
    // undecodable event.
    let plain = plain_stack().await;
    accept_ready(
        &plain,
        documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let open = documents::Client::connect(plain.options())
        .await
        .expect("client without credentials");
    let mut undecodable = open
        .events
        .documents
        .created
        .listen()
        .await
        .expect("listen");
    let plain_nats = plain.server.client().await.expect("nats");
    plain_nats
        .publish(subject, "{not json".into())
        .await
        .expect("publish");
    plain_nats.flush().await.expect("flush");
    match tokio::time::timeout(Duration::from_secs(5), undecodable.next()).await {
        Ok(Some(Err(EventError::Decode { .. }))) => {}
        other => panic!("expected a decode error, got {other:?}"),
    }
    service
        .events
        .documents
        .created
        .publish(&documents::DocumentCreated {
            key: "after".into(),
            size: 2,
            content_type: "x".into(),
        })
        .await
        .expect("publish");
    assert_eq!(next(&mut late).await.event.key, "after");

    // Filters on parameters the event does not have are refused.
    match client
        .events
        .documents
        .created
        .clone()
        .filter("/size", 1)
        .listen()
        .await
    {
        Err(EventError::UnknownParam { param, .. }) => assert_eq!(param, "/size"),
        Err(other) => panic!("expected UnknownParam, got {other}"),
        Ok(_) => panic!("expected UnknownParam, got a listener"),
    }

    // Published events are stored in the event stream the authority
    // provisioned for the contract (the four typed ones and the undecodable
    // one).
    let state = ready(&stack.client, documents::ID, documents::DIGEST).await;
    let events = state.bindings.events.expect("an event stream binding");
    let js = async_nats::jetstream::new(nats);
    let mut stream = js.get_stream(&events.stream).await.expect("event stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 5);
}
