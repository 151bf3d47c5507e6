//! A JetStream cluster of nats-servers, [`NatsCluster`].

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::binary::nats_server_binary;
use crate::error::{HarnessError, io};
use crate::ports::free_ports;
use crate::probe::{healthz, jetstream_answers};
use crate::process::{kill_and_forget, kill_now, spawn_logged, stop_gracefully};

/// How long [`NatsCluster::start`] and [`NatsCluster::start_node`] wait for
/// the cluster (or the restarted node) to be ready.
pub const CLUSTER_READY_LIMIT: Duration = Duration::from_secs(30);

/// Name of the replicated stream [`NatsCluster::start`] creates and deletes
/// to prove that the JetStream meta-cluster has a leader and can place
/// replicated streams.
const PROBE_STREAM: &str = "TRELLIS_HARNESS_PROBE";

/// How often a start is retried when a node could not bind its ports
/// (another process took a port between picking and binding it).
const START_ATTEMPTS: usize = 3;

/// A cluster of real nats-server processes with clustered JetStream, owned
/// by a test: each node on loopback with its own client, route and
/// monitoring port, its own temporary store directory and `server_name`,
/// all in one `cluster { ... }` with routes to each other. Nodes can be
/// stopped, killed (a crash) and started again on the same ports and store;
/// every node is killed and its directory removed on drop.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cluster = trellis_testing::NatsCluster::start(3).await?;
/// let client = cluster.client().await?; // knows every node, fails over
/// cluster.kill_node(1)?; // SIGKILL: quorum (2 of 3) remains
/// cluster.start_node(1).await?; // same ports and store, caught up
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    binary: PathBuf,
    name: String,
    nodes: Vec<Node>,
}

/// One server of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    server_name: String,
    port: u16,
    cluster_port: u16,
    http_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `Err` (with the node's log) when the process has exited on its own.
    fn check_alive(&mut self) -> Result<(), HarnessError> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            return Err(HarnessError::Exited {
                status: format!("{status} (cluster node {})", self.server_name),
                log: self.log(),
            });
        }
        Ok(())
    }
}

impl NatsCluster {
    /// Starts `n` nodes (3 for replicated R3 streams) and waits, up to
    /// [`CLUSTER_READY_LIMIT`], until every node reports itself healthy and
    /// a stream with `min(n, 3)` replicas can be created and deleted, i.e.
    /// the JetStream meta-cluster has a leader and knows every peer. On a
    /// timeout the error carries every node's log.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub async fn start(n: usize) -> Result<NatsCluster, HarnessError> {
        assert!(n >= 1, "a cluster needs at least one node");
        let binary = nats_server_binary()?;
        let mut attempt = 1;
        loop {
            let mut cluster = NatsCluster::allocate(binary.clone(), n)?;
            let started = async {
                for i in 0..n {
                    cluster.spawn_node(i)?;
                }
                cluster.wait_formed(CLUSTER_READY_LIMIT).await
            }
            .await;
            match started {
                Ok(()) => return Ok(cluster),
                // A port was taken between picking and binding it: drop
                // (kill) this attempt and try again on fresh ports.
                Err(HarnessError::Exited { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn allocate(binary: PathBuf, n: usize) -> Result<NatsCluster, HarnessError> {
        let ports = free_ports(3 * n)?;
        let mut nodes = Vec::with_capacity(n);
        for (i, ports) in ports.chunks(3).enumerate() {
            let dir = tempfile::Builder::new()
                .prefix(&format!("trellis-nats-cluster-n{i}-"))
                .tempdir()
                .map_err(io("creating a cluster node's temp dir"))?;
            nodes.push(Node {
                server_name: format!("trellis-n{i}-{}", ports[0]),
                port: ports[0],
                cluster_port: ports[1],
                http_port: ports[2],
                dir,
                child: None,
            });
        }
        Ok(NatsCluster {
            binary,
            name: format!("trellis-test-{}", nodes[0].cluster_port),
            nodes,
        })
    }

    fn write_config(&self, i: usize) -> Result<PathBuf, HarnessError> {
        let node = &self.nodes[i];
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, peer)| format!("    \"nats-route://127.0.0.1:{}\"\n", peer.cluster_port))
            .collect::<String>();
        // `sync_interval: always`: acknowledged writes survive a SIGKILL.
        // `max_file_store`: reservations do not depend on the free disk.
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"{server_name}\"\n\
             http: \"127.0.0.1:{http}\"\n\
             jetstream {{\n  store_dir: {store:?}\n  max_file_store: 1TB\n  sync_interval: always\n}}\n\
             cluster {{\n  name: \"{cluster}\"\n  listen: \"127.0.0.1:{cluster_port}\"\n  \
             routes: [\n{routes}  ]\n}}\n",
            port = node.port,
            server_name = node.server_name,
            http = node.http_port,
            store = node.store_dir().display().to_string(),
            cluster = self.name,
            cluster_port = node.cluster_port,
        );
        let config = node.dir.path().join("nats-server.conf");
        std::fs::write(&config, text).map_err(io("writing a cluster node's nats-server.conf"))?;
        Ok(config)
    }

    fn spawn_node(&mut self, i: usize) -> Result<(), HarnessError> {
        let config = self.write_config(i)?;
        let node = &mut self.nodes[i];
        let (child, _watchdog) = spawn_logged(
            &self.binary,
            &config,
            &node.log_path(),
            std::process::Stdio::null(),
        )?;
        node.child = Some(child);
        Ok(())
    }

    /// Fails fast (with its log) if a node that should run has exited.
    fn check_alive(&mut self) -> Result<(), HarnessError> {
        self.nodes.iter_mut().try_for_each(Node::check_alive)
    }

    /// One readiness check of the whole cluster.
    async fn formed_once(&self) -> Result<(), String> {
        for node in &self.nodes {
            healthz(node.http_port)
                .await
                .map_err(|e| format!("{} /healthz: {e}", node.server_name))?;
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.urls())
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let js = async_nats::jetstream::new(client);
        js.query_account()
            .await
            .map_err(|e| format!("account info: {e}"))?;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: PROBE_STREAM.to_owned(),
            subjects: vec!["trellis.harness.probe".to_owned()],
            num_replicas: self.nodes.len().min(3),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating a replicated probe stream: {e}"))?;
        js.delete_stream(PROBE_STREAM)
            .await
            .map_err(|e| format!("deleting the probe stream: {e}"))?;
        Ok(())
    }

    async fn wait_formed(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let last_error = match self.formed_once().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if started.elapsed() >= limit {
                return Err(self.not_ready(started.elapsed(), last_error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn not_ready(&self, waited: Duration, last_error: String) -> HarnessError {
        HarnessError::ClusterNotReady {
            waited,
            last_error,
            logs: self.logs(),
        }
    }

    /// Waits, up to `limit`, until every running node reports itself
    /// healthy on its monitoring port (JetStream current with the meta
    /// leader and with every stream and consumer it hosts).
    pub async fn wait_healthy(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let mut last_error = None;
            for node in self.nodes.iter().filter(|n| n.child.is_some()) {
                if let Err(e) = healthz(node.http_port).await {
                    last_error = Some(format!("{} /healthz: {e}", node.server_name));
                    break;
                }
            }
            let Some(last_error) = last_error else {
                return Ok(());
            };
            if started.elapsed() >= limit {
                return Err(self.not_ready(started.elapsed(), last_error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: [`NatsCluster::start`]
    /// needs at least one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The cluster's name (its `cluster { name }`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every node's client URL, `nats://127.0.0.1:<port>`, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Node `i`'s client URL (stable across restarts).
    ///
    /// # Panics
    ///
    /// If `i` is out of range (likewise every method taking a node index).
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Node `i`'s client port.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// Node `i`'s cluster (route) port.
    pub fn cluster_port(&self, i: usize) -> u16 {
        self.nodes[i].cluster_port
    }

    /// Node `i`'s HTTP monitoring port (`/healthz`, `/jsz`, ...).
    pub fn monitoring_port(&self, i: usize) -> u16 {
        self.nodes[i].http_port
    }

    /// Node `i`'s `server_name`, as stream and consumer cluster info
    /// reports leaders and replicas.
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].server_name
    }

    /// The index of the node called `server_name`.
    pub fn node_index(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.server_name == server_name)
    }

    /// Node `i`'s JetStream store directory (stable across restarts).
    pub fn store_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].store_dir()
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Whether node `i` was started and not stopped or killed since.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        self.nodes[i].log()
    }

    /// Every node's log, each under a header naming the node.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== {} =====\n{}", n.server_name, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A new client connection that knows every node's URL, so it connects
    /// to any running node and fails over when its node goes away.
    pub async fn client(&self) -> Result<async_nats::Client, HarnessError> {
        async_nats::connect(self.urls())
            .await
            .map_err(|source| HarnessError::Connect {
                url: self.urls().join(","),
                source,
            })
    }

    /// A new client connection to node `i` (it still learns the other
    /// nodes from the server and may fail over to them).
    pub async fn node_client(&self, i: usize) -> Result<async_nats::Client, HarnessError> {
        async_nats::connect(self.url(i))
            .await
            .map_err(|source| HarnessError::Connect {
                url: self.url(i),
                source,
            })
    }

    /// Stops node `i` gracefully (SIGTERM, then SIGKILL after 10 s).
    /// Stopping a stopped node does nothing.
    pub async fn stop_node(&mut self, i: usize) -> Result<(), HarnessError> {
        match self.nodes[i].child.take() {
            Some(child) => stop_gracefully(child).await,
            None => Ok(()),
        }
    }

    /// Kills node `i` with SIGKILL to its own process id (a crash).
    /// Killing a stopped node does nothing.
    pub fn kill_node(&mut self, i: usize) -> Result<(), HarnessError> {
        match self.nodes[i].child.take() {
            Some(child) => kill_now(child),
            None => Ok(()),
        }
    }

    /// Starts a stopped or killed node `i` again on the same ports, name
    /// and store, and waits, up to [`CLUSTER_READY_LIMIT`], until it
    /// answers JetStream requests and reports itself healthy (caught up
    /// with the meta leader and every stream it hosts). Starting a running
    /// node does nothing.
    pub async fn start_node(&mut self, i: usize) -> Result<(), HarnessError> {
        if self.nodes[i].child.is_some() {
            return Ok(());
        }
        self.spawn_node(i)?;
        let started = Instant::now();
        loop {
            self.nodes[i].check_alive()?;
            let node = &self.nodes[i];
            let last_error =
                match jetstream_answers(&node.url(), async_nats::ConnectOptions::new()).await {
                    Ok(_) => match healthz(node.http_port).await {
                        Ok(()) => return Ok(()),
                        Err(e) => format!("{} /healthz: {e}", node.server_name),
                    },
                    Err(e) => format!("{}: {e}", node.server_name),
                };
            if started.elapsed() >= CLUSTER_READY_LIMIT {
                return Err(self.not_ready(started.elapsed(), last_error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.take() {
                kill_and_forget(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cluster_forms_replicates_and_survives_a_killed_node() {
        let started = Instant::now();
        let mut cluster = NatsCluster::start(3).await.expect("cluster starts");
        eprintln!("cluster formed in {:?}", started.elapsed());
        assert_eq!(cluster.len(), 3);
        let ports: Vec<u16> = (0..3).map(|i| cluster.port(i)).collect();
        let mut all: Vec<u16> = (0..3)
            .flat_map(|i| {
                [
                    cluster.port(i),
                    cluster.cluster_port(i),
                    cluster.monitoring_port(i),
                ]
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9, "distinct ports");
        assert_eq!(cluster.node_index(cluster.server_name(2)), Some(2));

        let js = async_nats::jetstream::new(cluster.client().await.expect("client"));
        let kv = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "harness".into(),
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .expect("R3 kv");
        // A just-created R3 stream takes writes once its group has elected a
        // leader; until then the ack says the stream is not found.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Err(e) = kv.put("k", "v".into()).await {
            assert!(Instant::now() < deadline, "put: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut stream = js.get_stream("KV_harness").await.expect("stream");
        let info = stream.info().await.expect("info");
        let placement = info.cluster.clone().expect("cluster info");
        assert_eq!(placement.name.as_deref(), Some(cluster.name()));
        assert_eq!(placement.replicas.len(), 2, "{placement:?}");
        let leader = cluster
            .node_index(placement.leader.as_deref().expect("leader"))
            .expect("leader is a node");

        // Kill the stream's leader: the other two elect a new one.
        let pid = cluster.pid(leader).expect("running");
        cluster.kill_node(leader).expect("kill");
        assert!(!cluster.is_running(leader));
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the killed process is gone"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match kv.put("k", "w".into()).await {
                Ok(_) => break,
                Err(e) => assert!(Instant::now() < deadline, "no quorum after a kill: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(kv.get("k").await.expect("get").as_deref(), Some(&b"w"[..]));

        cluster.start_node(leader).await.expect("node restarts");
        assert_eq!(cluster.port(leader), ports[leader]);
        cluster
            .wait_healthy(Duration::from_secs(30))
            .await
            .expect("all healthy");
        let other = (leader + 1) % 3;
        cluster.stop_node(other).await.expect("graceful stop");
        assert!(cluster.pid(other).is_none());
        cluster.start_node(other).await.expect("restart after stop");
        // Stopping `other` may have cost the bucket its leader again: allow
        // for one more election.
        let js = async_nats::jetstream::new(cluster.node_client(leader).await.expect("client"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = async {
                let kv = js
                    .get_key_value("harness")
                    .await
                    .map_err(|e| e.to_string())?;
                kv.get("k").await.map_err(|e| e.to_string())
            };
            match read.await {
                Ok(value) => {
                    assert_eq!(value.as_deref(), Some(&b"w"[..]));
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "no read after restarts: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("harness cluster test took {:?}", started.elapsed());
    }
}
