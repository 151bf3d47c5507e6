//! One served instance's statistics, the single source of both its
//! `$SRV.STATS` answer and its Prometheus `/metrics`: per endpoint the
//! requests, the errors (by reply status), the processing time and a
//! latency histogram; per instance the transfer bytes.
//!
//! A request is timed by a [`Call`], taken when it arrives and finished
//! with the status of its reply (`ok`, or the `Trellis-Status` of any other
//! reply: every other status counts as an error). A call dropped without a
//! reply counts as the error `unanswered`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::instance::{ENDPOINT_KIND_KEY, ENDPOINT_NAME_KEY, Instance, endpoint_name};

/// The status of a successful reply.
pub const OK: &str = "ok";
/// How long the last error message kept per endpoint may be (bytes).
const LAST_ERROR_BYTES: usize = 256;

/// Latency buckets: 0.5 ms to ~16 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

/// One endpoint: what it serves and what it has counted.
#[derive(Debug)]
pub struct Endpoint {
    declared: String,
    name: String,
    subject: String,
    queue_group: String,
    kind: &'static str,
    requests: AtomicU64,
    errors: AtomicU64,
    processing_ns: AtomicU64,
    last_error: Mutex<String>,
    by_status: Mutex<BTreeMap<String, u64>>,
    latency: Histogram,
}

impl Endpoint {
    /// Starts timing one request.
    pub fn begin(self: &Arc<Self>) -> Call {
        self.begin_at(Instant::now())
    }

    /// Times one request that arrived at `started`.
    pub fn begin_at(self: &Arc<Self>, started: Instant) -> Call {
        Call {
            endpoint: self.clone(),
            started,
            done: false,
        }
    }

    fn record(&self, status: &str, detail: &[u8], elapsed: std::time::Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.processing_ns.fetch_add(ns, Ordering::Relaxed);
        self.latency.observe(elapsed.as_secs_f64());
        if status == OK {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.by_status).entry(status.to_owned()).or_default() += 1;
        let mut message = format!("{status}: {}", String::from_utf8_lossy(detail));
        if message.len() > LAST_ERROR_BYTES {
            let mut end = LAST_ERROR_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        *lock(&self.last_error) = message;
    }

    /// The declared name (`Files.List`, an authority op).
    pub fn declared(&self) -> &str {
        &self.declared
    }

    /// The micro endpoint name (`Files_List`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject it is subscribed to.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Its queue group.
    pub fn queue_group(&self) -> &str {
        &self.queue_group
    }

    /// What it serves (`rpc`, `operation`, ...).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Its micro metadata: declared name and kind.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ENDPOINT_NAME_KEY.to_owned(), self.declared.clone()),
            (ENDPOINT_KIND_KEY.to_owned(), self.kind.to_owned()),
        ])
    }

    /// Requests handled (answered or refused).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests answered with another status than `ok`.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Errors by reply status.
    pub fn errors_by_status(&self) -> BTreeMap<String, u64> {
        lock(&self.by_status).clone()
    }

    /// Total processing time, in nanoseconds.
    pub fn processing_ns(&self) -> u64 {
        self.processing_ns.load(Ordering::Relaxed)
    }

    /// The last error (`<status>: <message>`), empty if none.
    pub fn last_error(&self) -> String {
        lock(&self.last_error).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One request being handled; records itself once finished (or dropped).
#[derive(Debug)]
#[must_use = "a call records when finished or dropped"]
pub struct Call {
    endpoint: Arc<Endpoint>,
    started: Instant,
    done: bool,
}

impl Call {
    /// Records the request as answered with `status` (`ok`, or the
    /// `Trellis-Status` of the reply) and `detail` (the reply's text, kept
    /// as the last error). Only the first finish counts.
    pub fn finish(&mut self, status: &str, detail: &[u8]) {
        if !self.done {
            self.done = true;
            self.endpoint.record(status, detail, self.started.elapsed());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish("unanswered", b"no reply was sent");
    }
}

/// Bytes a transfer moved, as the serving instance sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent to callers (downloads of receive grants).
    Sent,
    /// Received from callers (send transfers, counted once stored).
    Received,
}

#[derive(Debug)]
struct Inner {
    instance: Instance,
    started: SystemTime,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    sent: AtomicU64,
    received: AtomicU64,
}

/// The statistics of one served instance (cheap to clone; clones share).
#[derive(Debug, Clone)]
pub struct Stats {
    inner: Arc<Inner>,
}

impl Stats {
    /// Empty statistics of `instance`, started now.
    pub fn new(instance: Instance) -> Stats {
        Stats {
            inner: Arc::new(Inner {
                instance,
                started: SystemTime::now(),
                endpoints: RwLock::default(),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
            }),
        }
    }

    /// The instance counted.
    pub fn instance(&self) -> &Instance {
        &self.inner.instance
    }

    /// When the instance started serving.
    pub fn started(&self) -> SystemTime {
        self.inner.started
    }

    /// Adds endpoint `declared` of `kind`, subscribed to `subject` in
    /// `queue_group`, and returns it.
    pub fn add_endpoint(
        &self,
        declared: &str,
        kind: &'static str,
        subject: &str,
        queue_group: &str,
    ) -> Arc<Endpoint> {
        let endpoint = Arc::new(Endpoint {
            declared: declared.to_owned(),
            name: endpoint_name(declared),
            subject: subject.to_owned(),
            queue_group: queue_group.to_owned(),
            kind,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            processing_ns: AtomicU64::new(0),
            last_error: Mutex::default(),
            by_status: Mutex::default(),
            latency: Histogram::new(latency_buckets()),
        });
        self.inner
            .endpoints
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(endpoint.clone());
        endpoint
    }

    /// Every endpoint, in the order added.
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The endpoint declared as `declared`, if any.
    pub fn endpoint(&self, declared: &str) -> Option<Arc<Endpoint>> {
        self.inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.declared == declared)
            .cloned()
    }

    /// Counts `bytes` moved by a transfer in `direction`.
    pub fn transfer(&self, direction: Direction, bytes: u64) {
        let counter = match direction {
            Direction::Sent => &self.inner.sent,
            Direction::Received => &self.inner.received,
        };
        counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes moved by transfers in `direction` so far.
    pub fn transfer_bytes(&self, direction: Direction) -> u64 {
        match direction {
            Direction::Sent => self.inner.sent.load(Ordering::Relaxed),
            Direction::Received => self.inner.received.load(Ordering::Relaxed),
        }
    }
}

/// Registers the Prometheus metrics of every instance in `stats` with
/// `registry`, as one family per metric (so one scrape may hold several
/// instances, e.g. the authority's own requests and its public state
/// service):
///
/// - `trellis_service_info{service,version,id,contract?,digest?,deployment?}` 1;
/// - `trellis_requests_total{service,endpoint,kind}`;
/// - `trellis_request_errors_total{service,endpoint,kind,status}`;
/// - `trellis_request_duration_seconds{service,endpoint,kind}` (histogram);
/// - `trellis_transfer_bytes_total{service,direction="sent"|"received"}`.
pub fn register(registry: &mut Registry, stats: Vec<Stats>) {
    registry.register_collector(Box::new(Metrics { stats }));
}

#[derive(Debug)]
struct Metrics {
    stats: Vec<Stats>,
}

type Labels = Vec<(&'static str, String)>;

fn endpoint_labels(service: &str, e: &Endpoint) -> Labels {
    vec![
        ("service", service.to_owned()),
        ("endpoint", e.declared.clone()),
        ("kind", e.kind.to_owned()),
    ]
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut family = encoder.encode_descriptor(
                "trellis_service",
                "A served instance: its service API name, version and id, contract and digest",
                None,
                MetricType::Info,
            )?;
            for stats in &self.stats {
                let i = stats.instance();
                let mut labels: Labels = vec![
                    ("service", i.name.clone()),
                    ("version", i.version.clone()),
                    ("id", i.id.clone()),
                ];
                for (label, key) in [
                    ("contract", super::instance::CONTRACT_KEY),
                    ("digest", super::instance::DIGEST_KEY),
                    ("deployment", super::instance::DEPLOYMENT_KEY),
                ] {
                    if let Some(v) = i.metadata.get(key) {
                        labels.push((label, v.clone()));
                    }
                }
                family.encode_info(&labels)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "trellis_requests",
                "Requests handled per endpoint (answered or refused)",
                None,
                MetricType::Counter,
            )?;
            for stats in &self.stats {
                for e in stats.endpoints() {
                    let labels = endpoint_labels(&stats.instance().name, &e);
                    ConstCounter::new(e.requests()).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "trellis_request_errors",
                "Requests answered with another status than ok, per endpoint and status",
                None,
                MetricType::Counter,
            )?;
            for stats in &self.stats {
                for e in stats.endpoints() {
                    for (status, n) in e.errors_by_status() {
                        let mut labels = endpoint_labels(&stats.instance().name, &e);
                        labels.push(("status", status));
                        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "trellis_request_duration",
                "Time from a request's arrival to its reply, per endpoint",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for stats in &self.stats {
                for e in stats.endpoints() {
                    let labels = endpoint_labels(&stats.instance().name, &e);
                    e.latency.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "trellis_transfer",
                "Bytes moved by transfers: sent to callers (downloads), received from callers (send transfers, once stored)",
                Some(&Unit::Bytes),
                MetricType::Counter,
            )?;
            for stats in &self.stats {
                for (direction, label) in
                    [(Direction::Sent, "sent"), (Direction::Received, "received")]
                {
                    let labels: Labels = vec![
                        ("service", stats.instance().name.clone()),
                        ("direction", label.to_owned()),
                    ];
                    ConstCounter::new(stats.transfer_bytes(direction))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_requests_errors_and_time_once() {
        let stats = Stats::new(Instance::of_contract("d", "documents@v1", Some("dig")));
        let list = stats.add_endpoint("Files.List", "rpc", "trellis.d.*.documents@v1.x", "q");
        stats.add_endpoint("Files.Head", "rpc", "trellis.d.*.documents@v1.y", "q");
        let mut call = list.begin();
        call.finish(OK, b"");
        call.finish("internal", b"ignored: finished already");
        drop(call);
        let mut call = list.begin();
        call.finish("forbidden", b"`bob` may not call `Files.List`");
        drop(list.begin());
        assert_eq!(list.requests(), 3);
        assert_eq!(list.errors(), 2);
        assert_eq!(
            list.errors_by_status(),
            BTreeMap::from([("forbidden".to_owned(), 1), ("unanswered".to_owned(), 1)])
        );
        assert_eq!(list.last_error(), "unanswered: no reply was sent");
        assert!(list.processing_ns() > 0);
        assert_eq!(list.name(), "Files_List");
        assert_eq!(stats.endpoints().len(), 2);
        assert!(stats.endpoint("Files.Head").is_some());
        stats.transfer(Direction::Sent, 10);
        stats.transfer(Direction::Sent, 5);
        assert_eq!(stats.transfer_bytes(Direction::Sent), 15);
        assert_eq!(stats.transfer_bytes(Direction::Received), 0);
    }

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        let stats = Stats::new(Instance::new("x", "1.0.0", ""));
        let e = stats.add_endpoint("A.B", "rpc", "s", "q");
        let mut call = e.begin();
        call.finish("error", "é".repeat(400).as_bytes());
        assert!(e.last_error().len() <= LAST_ERROR_BYTES);
        assert!(e.last_error().starts_with("error: é"));
    }

    #[test]
    fn several_instances_share_one_family_per_metric() {
        let a = Stats::new(Instance::of_contract("d", "documents@v1", Some("dig")));
        let b = Stats::new(Instance::new("trellis-authority", "0.1.0", ""));
        let mut call = a.add_endpoint("Files.List", "rpc", "s", "q").begin();
        call.finish(OK, b"");
        let mut call = b.add_endpoint("plan", "authority", "s", "q").begin();
        call.finish("error", b"nope");
        a.transfer(Direction::Received, 42);
        let mut registry = Registry::default();
        register(&mut registry, vec![a, b]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for family in [
            "# TYPE trellis_service info",
            "# TYPE trellis_requests counter",
            "# TYPE trellis_request_errors counter",
            "# TYPE trellis_request_duration_seconds histogram",
            "# TYPE trellis_transfer_bytes counter",
        ] {
            assert_eq!(text.matches(family).count(), 1, "{family} in\n{text}");
        }
        assert!(
            text.contains(
                r#"trellis_requests_total{service="documents",endpoint="Files.List",kind="rpc"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"trellis_request_errors_total{service="trellis-authority",endpoint="plan",kind="authority",status="error"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"trellis_request_duration_seconds_count{service="documents",endpoint="Files.List",kind="rpc"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"trellis_transfer_bytes_total{service="documents",direction="received"} 42"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"digest="dig""#), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
