//! One trace id across services: a caller's upload, the documents
//! provider's operation, the event it publishes, and the indexer's durable
//! consumer (and its call back to documents), seen by a tracing
//! subscriber as spans carrying the same `trace_id`.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use indexer_example::{documents, index_key, indexer};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use trellis_runtime::trace::TraceContext;

/// Every span opened, by name: the trace ids it carried.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<BTreeMap<String, Vec<String>>>>);

struct TraceId(Option<String>);

impl Visit for TraceId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: Context<'_, S>,
    ) {
        let mut visitor = TraceId(None);
        attrs.record(&mut visitor);
        if let Some(trace) = visitor.0 {
            self.0
                .lock()
                .expect("lock")
                .entry(attrs.metadata().name().to_owned())
                .or_default()
                .push(trace);
        }
    }
}

impl Spans {
    fn names_with(&self, trace: &str) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, ids)| ids.iter().any(|id| id == trace))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[tokio::test]
async fn one_trace_spans_an_upload_its_operation_event_and_consumer() {
    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .expect("the only subscriber of this test binary");

    let docs = documents_stack(Duration::ZERO, trellis::ServeOptions::default()).await;
    let stack = &docs.stack;
    accept_ready(stack, indexer::MANIFEST_JSON, indexer::ID, indexer::DIGEST).await;
    let service = Arc::new(
        indexer::Service::connect(stack.service(indexer::ID).await)
            .await
            .expect("indexer connects"),
    );
    stack
        .client
        .grant("indexer-v1", &["documents::read"], false)
        .await
        .expect("grant the indexer documents::read");
    let task = indexer_example::run(service.clone(), |_| {})
        .await
        .expect("run");

    // The caller's own trace: everything the upload causes continues it.
    let caller = documents::Client::connect(stack.user("alice", DOCS_RW).await)
        .await
        .expect("caller");
    let root = TraceContext::root();
    root.scope(upload_document(&caller, "traced.txt", "hello"))
        .await;
    eventually(Duration::from_secs(20), "indexed", || {
        let service = service.clone();
        async move {
            service
                .kv
                .index
                .get(&index_key("traced.txt"))
                .await
                .expect("get")
        }
    })
    .await;
    // The indexer's call back to documents (Files.Head) ends the chain.
    let trace = root.trace_id();
    eventually(Duration::from_secs(10), "the whole chain", || {
        let names = spans.names_with(&trace);
        async move { (names.len() >= 5).then_some(()) }
    })
    .await;
    let names = spans.names_with(&trace);
    for hop in [
        "trellis.call",
        "trellis.operation",
        "trellis.event",
        "trellis.consume",
        "trellis.rpc",
    ] {
        assert!(names.iter().any(|n| n == hop), "{hop} missing: {names:?}");
    }
    // A call made outside any trace starts its own.
    let before = spans.0.lock().expect("lock")["trellis.call"].len();
    let _ = caller
        .rpc
        .files
        .head(&documents::FileKey {
            key: "traced.txt".into(),
        })
        .await
        .expect("call");
    let calls = spans.0.lock().expect("lock")["trellis.call"].clone();
    assert!(calls.len() > before);
    assert_ne!(calls[calls.len() - 1], trace);
    task.shutdown().await;
}
