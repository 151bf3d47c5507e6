//! Observability with the tools operators already use. Every served
//! instance (a running [`RpcServer`](crate::RpcServer), and the authority)
//! keeps one [`Stats`], the single source of:
//!
//! - the NATS service API (`$SRV.PING|INFO|STATS`, what `nats micro ls`,
//!   `info` and `stats` read), always on ([`ServiceApi`]);
//! - HTTP `/healthz`, `/readyz` and Prometheus `/metrics`, when the service
//!   opts in with [`ServeOptions::metrics`](crate::ServeOptions::metrics)
//!   ([`HttpServer`]).
//!
//! The face declares the children: `instance` (micro name, version and
//! metadata of a contract), `stats` (counters and histograms; the
//! Prometheus families), `service_api` (the `$SRV` responder and its JSON)
//! and `http` (the HTTP endpoints).

mod http;
mod instance;
mod service_api;
mod stats;

pub use http::{HttpServer, METRICS_CONTENT_TYPE, Readiness};
pub use instance::{
    CONTRACT_KEY, DEPLOYMENT_KEY, DIGEST_KEY, ENDPOINT_KIND_KEY, ENDPOINT_NAME_KEY, Instance,
    endpoint_name, service_name, service_version,
};
pub use service_api::{
    EndpointInfo, EndpointStats, INFO_RESPONSE, InfoResponse, PING_RESPONSE, PingResponse,
    SERVICE_API_PREFIX, STATS_RESPONSE, ServiceApi, StatsResponse, SubscribeFailed, VERBS, info,
    ping, stats_response, subjects,
};
pub use stats::{Call, Direction, Endpoint, OK, Stats, register};

/// Re-exported so owners of a [`Stats`] can build the registry
/// [`HttpServer`] serves without naming the crate.
pub use prometheus_client;
