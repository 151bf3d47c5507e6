//! Trace context across hops: the W3C `traceparent` header on every
//! request, operation start, transfer, event and durable-consumer
//! delivery, so one user request keeps one trace id through every service
//! it reaches.
//!
//! The runtime keeps the context of the work it runs (a handler, an
//! operation, a consumer callback) in a task-local. A request or event sent
//! from inside that work continues its trace; one sent from outside starts
//! a new trace. Every hop opens a `tracing` span (`trellis.call`,
//! `trellis.rpc`, `trellis.operation`, `trellis.event`, `trellis.consume`)
//! with `trace_id`, `span_id` and `parent_id` fields, so logs and
//! subscribers can follow one request across services.
//!
//! ```
//! use trellis_runtime::trace::TraceContext;
//!
//! let root = TraceContext::root();
//! let header = root.child().header();
//! let parsed = TraceContext::parse(&header).unwrap();
//! assert_eq!(parsed.trace_id(), root.trace_id());
//! assert_ne!(parsed.span_id(), root.span_id());
//! ```

use std::fmt::Write as _;

use async_nats::HeaderMap;

/// The header name (W3C Trace Context).
pub const TRACEPARENT: &str = "traceparent";

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// One hop's place in a trace: the trace id, this hop's span id and the
/// sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace: [u8; 16],
    span: [u8; 8],
    sampled: bool,
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    loop {
        if getrandom::fill(&mut bytes).is_err() {
            // No randomness: a counter keeps ids distinct in this process.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (b, n) in bytes.iter_mut().zip(n.to_be_bytes().iter().cycle()) {
                *b = *n;
            }
        }
        // All-zero ids are invalid in W3C Trace Context.
        if bytes.iter().any(|b| *b != 0) {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    out.iter().any(|b| *b != 0).then_some(out)
}

impl TraceContext {
    /// A new trace (sampled).
    pub fn root() -> TraceContext {
        TraceContext {
            trace: random(),
            span: random(),
            sampled: true,
        }
    }

    /// The next hop of the same trace: a new span id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span: random(),
            ..*self
        }
    }

    /// Parses a `traceparent` value (version `00`; later versions are read
    /// by their first four fields, as the specification asks).
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        if version.len() != 2 || version == "ff" {
            return None;
        }
        let trace = unhex::<16>(parts.next()?)?;
        let span = unhex::<8>(parts.next()?)?;
        let flags = unhex::<1>(parts.next()?).map_or(0, |f| f[0]);
        if version == "00" && parts.next().is_some() {
            return None;
        }
        Some(TraceContext {
            trace,
            span,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace),
            hex(&self.span),
            u8::from(self.sampled)
        )
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace)
    }

    /// This hop's span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span)
    }

    /// The context of the work running now (a handler, an operation, a
    /// consumer callback), if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(|c| *c).ok()
    }

    /// Runs `work` as part of this context: requests and events it sends
    /// continue this trace.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// The context a message carries, if its `traceparent` is valid.
    pub fn of_headers(headers: Option<&HeaderMap>) -> Option<TraceContext> {
        headers
            .and_then(|h| h.get(TRACEPARENT))
            .and_then(|v| TraceContext::parse(v.as_str()))
    }

    /// Opens an outgoing hop (a call, an event, a redemption) for `what`:
    /// its span continues the current work's trace (or starts one), and
    /// `headers` get its `traceparent`.
    pub(crate) fn send(hop: Hop, what: &str, headers: &mut HeaderMap) -> tracing::Span {
        let (span, context) = open(hop, what, TraceContext::current());
        headers.insert(TRACEPARENT, context.header().as_str());
        span
    }

    /// Opens the hop a received message starts (a handler, an operation, a
    /// consumer callback): its span continues the message's trace (or
    /// starts one); run the work in the returned context's
    /// [`scope`](TraceContext::scope).
    pub(crate) fn receive(
        hop: Hop,
        what: &str,
        headers: Option<&HeaderMap>,
    ) -> (tracing::Span, TraceContext) {
        open(hop, what, TraceContext::of_headers(headers))
    }
}

/// The kinds of hop, each with its span name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// A request sent (`trellis.call`).
    Call,
    /// An RPC handled (`trellis.rpc`).
    Rpc,
    /// An operation started and run (`trellis.operation`).
    Operation,
    /// An event published (`trellis.event`).
    Event,
    /// A durable-consumer delivery handled (`trellis.consume`).
    Consume,
}

/// The span of a hop continuing `parent` (or a new trace), and the context
/// it propagates.
fn open(hop: Hop, what: &str, parent: Option<TraceContext>) -> (tracing::Span, TraceContext) {
    let span = hop_span(hop, what);
    let context = bridge::adopt(&span, parent.as_ref())
        .unwrap_or_else(|| parent.map_or_else(TraceContext::root, |p| p.child()));
    record(&span, &context, parent.as_ref());
    (span, context)
}

/// A hop's span; its ids are recorded once known. (`tracing` needs each
/// span name as a literal.)
fn hop_span(hop: Hop, what: &str) -> tracing::Span {
    use tracing::field::Empty;
    macro_rules! span {
        ($name:literal $(, $extra:ident)*) => {
            tracing::info_span!(
                $name,
                what,
                trace_id = Empty,
                span_id = Empty,
                parent_id = Empty
                $(, $extra = Empty)*
            )
        };
    }
    match hop {
        Hop::Call => span!("trellis.call"),
        Hop::Rpc => span!("trellis.rpc"),
        Hop::Operation => span!("trellis.operation", operation_id),
        Hop::Event => span!("trellis.event"),
        Hop::Consume => span!("trellis.consume"),
    }
}

fn record(span: &tracing::Span, context: &TraceContext, parent: Option<&TraceContext>) {
    span.record("trace_id", context.trace_id().as_str());
    span.record("span_id", context.span_id().as_str());
    if let Some(parent) = parent {
        span.record("parent_id", parent.span_id().as_str());
    }
}

/// The OpenTelemetry bridge (feature `opentelemetry`): a hop's span takes
/// the remote parent, and the hop propagates the OpenTelemetry span's own
/// ids, so exported spans link across services.
#[cfg(feature = "opentelemetry")]
mod bridge {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::TraceContext;

    /// Parents `span` on `parent` (if any) and returns the ids
    /// OpenTelemetry gave it; `None` when no OpenTelemetry layer records
    /// the span.
    pub(super) fn adopt(
        span: &tracing::Span,
        parent: Option<&TraceContext>,
    ) -> Option<TraceContext> {
        if let Some(p) = parent {
            let flags = if p.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(p.trace),
                SpanId::from_bytes(p.span),
                flags,
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        let context = span.context();
        let own = context.span().span_context().clone();
        own.is_valid().then(|| TraceContext {
            trace: own.trace_id().to_bytes(),
            span: own.span_id().to_bytes(),
            sampled: own.is_sampled(),
        })
    }
}

/// Without the OpenTelemetry bridge, trellis' own ids are propagated.
#[cfg(not(feature = "opentelemetry"))]
mod bridge {
    use super::TraceContext;

    pub(super) fn adopt(_: &tracing::Span, _: Option<&TraceContext>) -> Option<TraceContext> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_refuse_malformed_ones() {
        let c = TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("valid");
        assert_eq!(c.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(c.span_id(), "b7ad6b7169203331");
        assert_eq!(
            c.header(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version keeps its first four fields.
        assert!(
            TraceContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x")
                .is_some()
        );
    }

    #[tokio::test]
    async fn work_in_a_scope_continues_its_trace() {
        assert_eq!(TraceContext::current(), None);
        let root = TraceContext::root();
        let mut headers = HeaderMap::new();
        root.scope(async {
            TraceContext::send(Hop::Call, "X", &mut headers);
        })
        .await;
        let sent = TraceContext::of_headers(Some(&headers)).expect("traceparent");
        assert_eq!(sent.trace_id(), root.trace_id());
        assert_ne!(sent.span_id(), root.span_id());
        let (_, received) = TraceContext::receive(Hop::Rpc, "X", Some(&headers));
        assert_eq!(received.trace_id(), root.trace_id());
        assert_ne!(received.span_id(), sent.span_id());
        let mut fresh = HeaderMap::new();
        TraceContext::send(Hop::Call, "X", &mut fresh);
        let fresh = TraceContext::of_headers(Some(&fresh)).expect("traceparent");
        assert_ne!(fresh.trace_id(), root.trace_id());
    }
}
