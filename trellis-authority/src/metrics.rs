//! [`AuthorityMetrics`]: what one authority instance counts, through small
//! calls from its request loop, auth callout and reconciler. It feeds the
//! authority's NATS service API (`$SRV.*`, name `trellis-authority`) and
//! its Prometheus `/metrics`:
//!
//! - `trellis_authority_reconcile_phase{contract,phase}`: 1 for the phase
//!   of the contract's last reconcile status this instance computed, 0
//!   for the other phase;
//! - `trellis_authority_reconcile_failed_resources{contract}`: resources
//!   whose provisioning failed in that status;
//! - `trellis_authority_reconcile_passes_total`,
//!   `trellis_authority_reconcile_errors_total{contract}`;
//! - `trellis_authority_callout_duration_seconds` (histogram): from a
//!   callout's arrival to its answer;
//! - `trellis_authority_callout_denials_total`: connections refused
//!   (unknown or revoked key, bad nonce, ...);
//! - the `trellis_requests_total` family and its siblings
//!   ([`trellis_runtime::observe::register`]) for the authority's own
//!   requests (one endpoint per op, plus `callout`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use trellis_runtime::observe::prometheus_client::metrics::counter::Counter;
use trellis_runtime::observe::prometheus_client::metrics::family::Family;
use trellis_runtime::observe::prometheus_client::metrics::gauge::Gauge;
use trellis_runtime::observe::prometheus_client::metrics::histogram::{
    Histogram, exponential_buckets,
};
use trellis_runtime::observe::prometheus_client::registry::{Registry, Unit};
use trellis_runtime::observe::{Call, DEPLOYMENT_KEY, Instance, OK, Stats};
use trellis_runtime::protocol::{ContractStatus, Phase, ResourceStatus, authority_subject};

use crate::callout::CALLOUT_SUBJECT;

/// The authority's micro name on the service API.
pub const SERVICE_NAME: &str = "trellis-authority";

/// The requests the authority answers on `trellis.authority.<dep>.<op>`.
const OPS: &[&str] = &[
    "plan",
    "accept",
    "bindings",
    "status",
    "purge",
    "retire",
    "register",
    "grant",
    "revoke",
    "principals",
];

type Labels = Vec<(&'static str, String)>;

/// How one auth callout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CalloutOutcome {
    /// The connection was authorized.
    Authorized,
    /// The connection was refused (a denial).
    Refused,
    /// Nothing was answered (an unusable request, a signing failure); the
    /// server times the connection out.
    Unanswered,
}

/// The metrics of one authority instance.
#[derive(Debug)]
pub(crate) struct AuthorityMetrics {
    requests: Stats,
    phase: Family<Labels, Gauge>,
    failed_resources: Family<Labels, Gauge>,
    passes: Counter,
    reconcile_errors: Family<Labels, Counter>,
    callout_duration: Histogram,
    callout_denials: Counter,
    reconciling: AtomicBool,
}

impl AuthorityMetrics {
    /// Metrics of an authority of `deployment`, which serves the auth
    /// callout when `callout`.
    pub(crate) fn new(deployment: &str, callout: bool) -> AuthorityMetrics {
        let instance = Instance::new(
            SERVICE_NAME,
            env!("CARGO_PKG_VERSION"),
            "trellis deployment authority",
        )
        .with_metadata(DEPLOYMENT_KEY, deployment);
        let requests = Stats::new(instance);
        let queue = format!("trellis-authority-{deployment}");
        for op in OPS {
            requests.add_endpoint(op, "authority", &authority_subject(deployment, op), &queue);
        }
        if callout {
            let queue = format!("trellis-callout-{deployment}");
            requests.add_endpoint("callout", "callout", CALLOUT_SUBJECT, &queue);
        }
        AuthorityMetrics {
            requests,
            phase: Family::default(),
            failed_resources: Family::default(),
            passes: Counter::default(),
            reconcile_errors: Family::default(),
            // 0.1 ms to ~3 s, doubling.
            callout_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            callout_denials: Counter::default(),
            reconciling: AtomicBool::new(false),
        }
    }

    /// The statistics of the authority's own requests (its service API).
    pub(crate) fn requests(&self) -> &Stats {
        &self.requests
    }

    /// Starts timing a request to the authority on `subject`, if it names
    /// a known op.
    pub(crate) fn request(&self, subject: &str) -> Option<Call> {
        let op = subject.rsplit('.').next()?;
        self.requests.endpoint(op).map(|e| e.begin())
    }

    /// Records a callout that arrived at `started` and ended as `outcome`.
    pub(crate) fn callout(&self, started: Instant, outcome: CalloutOutcome) {
        self.callout_duration
            .observe(started.elapsed().as_secs_f64());
        if outcome == CalloutOutcome::Refused {
            self.callout_denials.inc();
        }
        if let Some(endpoint) = self.requests.endpoint("callout") {
            let mut call = endpoint.begin_at(started);
            match outcome {
                CalloutOutcome::Authorized => call.finish(OK, b""),
                CalloutOutcome::Refused => call.finish("denied", b"the connection was refused"),
                CalloutOutcome::Unanswered => drop(call),
            }
        }
    }

    /// Records the reconcile status this instance computed for a contract.
    pub(crate) fn status(&self, status: &ContractStatus) {
        for (phase, name) in [(Phase::Ready, "ready"), (Phase::Pending, "pending")] {
            let labels = vec![("contract", status.id.clone()), ("phase", name.to_owned())];
            self.phase
                .get_or_create(&labels)
                .set(i64::from(status.phase == phase));
        }
        let failed = status
            .resources
            .iter()
            .filter(|r| matches!(r.status, ResourceStatus::Failed { .. }))
            .count();
        self.failed_resources
            .get_or_create(&vec![("contract", status.id.clone())])
            .set(i64::try_from(failed).unwrap_or(i64::MAX));
    }

    /// Records a finished reconcile pass.
    pub(crate) fn pass(&self) {
        self.passes.inc();
    }

    /// Records a reconcile of contract `id` that failed.
    pub(crate) fn reconcile_failed(&self, id: &str) {
        self.reconcile_errors
            .get_or_create(&vec![("contract", id.to_owned())])
            .inc();
    }

    /// Marks the reconcile loop as running until the guard is dropped
    /// (the loop ends, is aborted or panics).
    pub(crate) fn reconcile_loop(self: &Arc<Self>) -> LoopGuard {
        self.reconciling.store(true, Ordering::Relaxed);
        LoopGuard {
            metrics: self.clone(),
        }
    }

    /// Whether the reconcile loop runs.
    pub(crate) fn reconciling(&self) -> bool {
        self.reconciling.load(Ordering::Relaxed)
    }

    /// A registry of every metric of this instance, with the statistics of
    /// the other services it runs (`also`: the public state service).
    pub(crate) fn registry(&self, also: Vec<Stats>) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "trellis_authority_reconcile_phase",
            "1 for the phase of the contract's last reconcile status this instance computed",
            self.phase.clone(),
        );
        registry.register(
            "trellis_authority_reconcile_failed_resources",
            "Resources whose provisioning failed, in the contract's last reconcile status",
            self.failed_resources.clone(),
        );
        registry.register(
            "trellis_authority_reconcile_passes",
            "Reconcile passes over every accepted contract",
            self.passes.clone(),
        );
        registry.register(
            "trellis_authority_reconcile_errors",
            "Reconciles of a contract that failed (storage, lease)",
            self.reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "trellis_authority_callout_duration",
            "Time from an auth callout's arrival to its answer",
            Unit::Seconds,
            self.callout_duration.clone(),
        );
        registry.register(
            "trellis_authority_callout_denials",
            "Connections the auth callout refused",
            self.callout_denials.clone(),
        );
        let mut stats = vec![self.requests.clone()];
        stats.extend(also);
        trellis_runtime::observe::register(&mut registry, stats);
        registry
    }
}

/// Clears the reconcile loop's running flag when dropped.
#[derive(Debug)]
pub(crate) struct LoopGuard {
    metrics: Arc<AuthorityMetrics>,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        self.metrics.reconciling.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_show_in_the_scrape() {
        let metrics = Arc::new(AuthorityMetrics::new("d", true));
        assert!(metrics.request("trellis.authority.d.nothing").is_none());
        let mut call = metrics
            .request("trellis.authority.d.plan")
            .expect("plan is an op");
        call.finish(OK, b"");
        metrics.callout(Instant::now(), CalloutOutcome::Refused);
        metrics.callout(Instant::now(), CalloutOutcome::Authorized);
        metrics.reconcile_failed("documents@v1");
        metrics.pass();
        {
            let _guard = metrics.reconcile_loop();
            assert!(metrics.reconciling());
        }
        assert!(!metrics.reconciling());
        let mut text = String::new();
        trellis_runtime::observe::prometheus_client::encoding::text::encode(
            &mut text,
            &metrics.registry(Vec::new()),
        )
        .expect("encode");
        for line in [
            "trellis_authority_callout_denials_total 1",
            "trellis_authority_callout_duration_seconds_count 2",
            "trellis_authority_reconcile_passes_total 1",
            r#"trellis_authority_reconcile_errors_total{contract="documents@v1"} 1"#,
            r#"trellis_requests_total{service="trellis-authority",endpoint="plan",kind="authority"} 1"#,
            r#"trellis_requests_total{service="trellis-authority",endpoint="callout",kind="callout"} 2"#,
            r#"trellis_request_errors_total{service="trellis-authority",endpoint="callout",kind="callout",status="denied"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
