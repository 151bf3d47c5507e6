//! One trace id across services: a caller's upload, the documents
//! provider's operation, the event it publishes, and the indexer's durable
//! consumer (and its call back to documents), seen by a tracing
//! subscriber as spans carrying the same `trace_id`, and by an
//! OpenTelemetry exporter (through `tracing-opentelemetry` and the
//! runtime's `opentelemetry` feature) as one linked trace.
#![allow(missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use indexer_example::{documents, index_key, indexer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
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

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // Hops record their ids right after opening their span.
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = TraceId(None);
        values.record(&mut visitor);
        if let (Some(trace), Some(span)) = (visitor.0, ctx.span(id)) {
            self.0
                .lock()
                .expect("lock")
                .entry(span.name().to_owned())
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
    // An OpenTelemetry pipeline as an application would install it, with
    // an in-memory exporter.
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("trellis-test"));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(spans.clone())
            .with(otel),
    )
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
    // The exporter holds one linked trace: every span of it has the
    // caller's trace id, and each one's parent is another exported span
    // (or the caller's own root).
    let _ = provider.force_flush();
    let exported: Vec<_> = exporter
        .get_finished_spans()
        .expect("exported spans")
        .into_iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace)
        .collect();
    let mut kinds: Vec<&str> = exported.iter().map(|s| &*s.name).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for hop in [
        "trellis.call",
        "trellis.operation",
        "trellis.event",
        "trellis.consume",
        "trellis.rpc",
    ] {
        assert!(kinds.contains(&hop), "{hop} not exported: {kinds:?}");
    }
    // OpenTelemetry writes ids as W3C hex, as trellis does.
    let ids: Vec<_> = exported.iter().map(|s| s.span_context.span_id()).collect();
    for span in &exported {
        let parent = span.parent_span_id;
        assert!(
            ids.contains(&parent) || parent.to_string() == root.span_id(),
            "{} has a parent outside the trace",
            span.name
        );
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
