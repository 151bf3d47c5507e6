//! The NATS service API ("micro", ADR-32): what `nats micro ls`, `info` and
//! `stats` read. A served instance answers `$SRV.PING`, `$SRV.INFO` and
//! `$SRV.STATS`, each also as `.<name>` and `.<name>.<id>`, from its
//! [`Stats`].
//!
//! Why not async-nats' `service` module: it owns each endpoint's
//! subscription and its reply path (`Request::respond` writes its own error
//! headers) and keeps its counters to itself. trellis answers from its own
//! serving loops (RPCs, operation starts and controls, each with
//! `Trellis-Status` replies and admission before any handler) and shares
//! one set of counters with `/metrics`. What remains of the protocol is
//! three JSON replies, written here with serde.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::stats::Stats;

/// The subject prefix of the service API.
pub const SERVICE_API_PREFIX: &str = "$SRV";
/// `type` of a PING reply.
pub const PING_RESPONSE: &str = "io.nats.micro.v1.ping_response";
/// `type` of an INFO reply.
pub const INFO_RESPONSE: &str = "io.nats.micro.v1.info_response";
/// `type` of a STATS reply.
pub const STATS_RESPONSE: &str = "io.nats.micro.v1.stats_response";
/// The verbs answered.
pub const VERBS: [&str; 3] = ["PING", "INFO", "STATS"];

/// A `$SRV.PING` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResponse {
    /// [`PING_RESPONSE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Micro name.
    pub name: String,
    /// Instance id.
    pub id: String,
    /// Semver version.
    pub version: String,
    /// Metadata (`trellis.contract`, `trellis.digest`, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// One endpoint in a `$SRV.INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// Micro endpoint name (`Files_List`).
    pub name: String,
    /// The subject it is subscribed to.
    pub subject: String,
    /// Its queue group.
    pub queue_group: String,
    /// `trellis.name` (declared name) and `trellis.kind`.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A `$SRV.INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoResponse {
    /// [`INFO_RESPONSE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Micro name.
    pub name: String,
    /// Instance id.
    pub id: String,
    /// Semver version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Every endpoint.
    pub endpoints: Vec<EndpointInfo>,
}

/// One endpoint in a `$SRV.STATS` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Micro endpoint name.
    pub name: String,
    /// The subject it is subscribed to.
    pub subject: String,
    /// Its queue group.
    pub queue_group: String,
    /// Requests handled (answered or refused).
    pub num_requests: u64,
    /// Requests answered with another status than `ok`.
    pub num_errors: u64,
    /// Total processing time (nanoseconds).
    pub processing_time: u64,
    /// Average processing time (nanoseconds).
    pub average_processing_time: u64,
    /// The last error (`<status>: <message>`), empty if none.
    pub last_error: String,
    /// Errors by reply status, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// A `$SRV.STATS` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    /// [`STATS_RESPONSE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Micro name.
    pub name: String,
    /// Instance id.
    pub id: String,
    /// Semver version.
    pub version: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When the instance started (RFC 3339, UTC).
    pub started: String,
    /// Every endpoint's statistics.
    pub endpoints: Vec<EndpointStats>,
}

/// The PING reply of `stats`' instance.
pub fn ping(stats: &Stats) -> PingResponse {
    let i = stats.instance();
    PingResponse {
        kind: PING_RESPONSE.to_owned(),
        name: i.name.clone(),
        id: i.id.clone(),
        version: i.version.clone(),
        metadata: i.metadata.clone(),
    }
}

/// The INFO reply of `stats`' instance.
pub fn info(stats: &Stats) -> InfoResponse {
    let i = stats.instance();
    InfoResponse {
        kind: INFO_RESPONSE.to_owned(),
        name: i.name.clone(),
        id: i.id.clone(),
        version: i.version.clone(),
        description: i.description.clone(),
        metadata: i.metadata.clone(),
        endpoints: stats
            .endpoints()
            .iter()
            .map(|e| EndpointInfo {
                name: e.name().to_owned(),
                subject: e.subject().to_owned(),
                queue_group: e.queue_group().to_owned(),
                metadata: e.metadata(),
            })
            .collect(),
    }
}

/// The STATS reply of `stats`' instance.
pub fn stats_response(stats: &Stats) -> StatsResponse {
    let i = stats.instance();
    StatsResponse {
        kind: STATS_RESPONSE.to_owned(),
        name: i.name.clone(),
        id: i.id.clone(),
        version: i.version.clone(),
        metadata: i.metadata.clone(),
        started: rfc3339(stats.started()),
        endpoints: stats
            .endpoints()
            .iter()
            .map(|e| {
                let requests = e.requests();
                let processing = e.processing_ns();
                let by_status = e.errors_by_status();
                EndpointStats {
                    name: e.name().to_owned(),
                    subject: e.subject().to_owned(),
                    queue_group: e.queue_group().to_owned(),
                    num_requests: requests,
                    num_errors: e.errors(),
                    processing_time: processing,
                    average_processing_time: processing.checked_div(requests).unwrap_or(0),
                    last_error: e.last_error(),
                    data: (!by_status.is_empty())
                        .then(|| serde_json::json!({ "errorsByStatus": by_status })),
                }
            })
            .collect(),
    }
}

/// `time` as RFC 3339 in UTC with nanoseconds (`2025-01-31T12:00:00.000000001Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    crate::wire::time::rfc3339_nanos(time)
}

/// Subscribing to a service API subject failed.
#[derive(Debug, thiserror::Error)]
#[error("subscribing to `{subject}` failed: {source}")]
pub struct SubscribeFailed {
    /// The subject.
    pub subject: String,
    /// Why.
    pub source: async_nats::SubscribeError,
}

/// The subjects an instance named `name` with id `id` answers on.
pub fn subjects(name: &str, id: &str) -> Vec<String> {
    VERBS
        .iter()
        .flat_map(|verb| {
            [
                format!("{SERVICE_API_PREFIX}.{verb}"),
                format!("{SERVICE_API_PREFIX}.{verb}.{name}"),
                format!("{SERVICE_API_PREFIX}.{verb}.{name}.{id}"),
            ]
        })
        .collect()
}

/// A running responder; stops (unsubscribing) when stopped or dropped.
#[derive(Debug)]
pub struct ServiceApi {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServiceApi {
    /// Answers the service API for `stats`' instance on `client`. Once
    /// this returns the subscriptions are sent; confirm them with the
    /// server (a round trip) before announcing the service.
    pub async fn start(
        client: &async_nats::Client,
        stats: Stats,
    ) -> Result<ServiceApi, SubscribeFailed> {
        let (name, id) = (&stats.instance().name, &stats.instance().id);
        let mut subscriptions = Vec::new();
        for subject in subjects(name, id) {
            let sub = client
                .subscribe(subject.clone())
                .await
                .map_err(|source| SubscribeFailed { subject, source })?;
            subscriptions.push(sub);
        }
        let mut requests = futures::stream::select_all(subscriptions);
        let stop = CancellationToken::new();
        let client = client.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = requests.next() => m,
                    () = stopped.cancelled() => break,
                };
                let Some(message) = message else { break };
                let Some(reply) = message.reply else { continue };
                let verb = message.subject.split('.').nth(1).unwrap_or_default();
                let body = match verb {
                    "PING" => serde_json::to_vec(&ping(&stats)),
                    "INFO" => serde_json::to_vec(&info(&stats)),
                    "STATS" => serde_json::to_vec(&stats_response(&stats)),
                    _ => continue,
                };
                let Ok(body) = body else { continue };
                if let Err(e) = client.publish(reply, body.into()).await {
                    warn!(error = %e, "could not answer a service API request");
                }
            }
            // Dropping the subscriptions unsubscribes them.
            drop(requests);
        });
        Ok(ServiceApi {
            stop,
            task: Some(task),
        })
    }

    /// Lets it answer for as long as the process runs, without a handle.
    pub fn detach(mut self) {
        drop(self.task.take());
    }

    /// Stops answering and waits until the subscriptions are dropped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServiceApi {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.stop.cancel();
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::instance::Instance;
    use crate::observe::stats::OK;
    use std::time::UNIX_EPOCH;

    #[test]
    fn rfc3339_renders_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + std::time::Duration::new(951_782_400 + 3_723, 5);
        assert_eq!(rfc3339(t), "2000-02-29T01:02:03.000000005Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn replies_follow_the_micro_schema() {
        let stats = Stats::new(Instance::of_contract("d", "documents@v1", Some("dig")));
        let e = stats.add_endpoint("Files.List", "rpc", "trellis.d.*.documents@v1.rpc", "q");
        for status in [OK, OK, "forbidden"] {
            let mut call = e.begin();
            call.finish(status, b"no");
        }
        let ping = serde_json::to_value(ping(&stats)).expect("json");
        assert_eq!(ping["type"], PING_RESPONSE);
        assert_eq!(ping["name"], "documents");
        assert_eq!(ping["version"], "1.0.0");
        assert_eq!(ping["metadata"]["trellis.digest"], "dig");
        let info = serde_json::to_value(info(&stats)).expect("json");
        assert_eq!(info["type"], INFO_RESPONSE);
        assert_eq!(info["endpoints"][0]["name"], "Files_List");
        assert_eq!(info["endpoints"][0]["queue_group"], "q");
        assert_eq!(
            info["endpoints"][0]["metadata"]["trellis.name"],
            "Files.List"
        );
        let s = serde_json::to_value(stats_response(&stats)).expect("json");
        assert_eq!(s["type"], STATS_RESPONSE);
        let endpoint = &s["endpoints"][0];
        assert_eq!(endpoint["num_requests"], 3);
        assert_eq!(endpoint["num_errors"], 1);
        assert_eq!(endpoint["last_error"], "forbidden: no");
        assert_eq!(endpoint["data"]["errorsByStatus"]["forbidden"], 1);
        let total = endpoint["processing_time"].as_u64().expect("ns");
        assert_eq!(endpoint["average_processing_time"], total / 3);
        assert!(s["started"].as_str().expect("started").ends_with('Z'));
        assert_eq!(
            subjects("documents", "ID")[..3],
            ["$SRV.PING", "$SRV.PING.documents", "$SRV.PING.documents.ID"]
        );
    }
}
