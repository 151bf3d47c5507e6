//! A single nats-server, [`NatsServer`].

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::auth::ServerAuth;
use crate::binary::nats_server_binary;
use crate::error::{HarnessError, io};
use crate::ports::free_port;
use crate::probe::jetstream_answers;
use crate::process::{kill_and_forget, kill_now, spawn_logged, stop_gracefully};
use crate::store_lock::StoreLock;

/// A running (or stopped) nats-server owned by a test.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: Dir,
    child: Option<Child>,
    sync_always: bool,
    auth: Option<ServerAuth>,
    /// The name this process gave its server (unique per start), to tell
    /// it from another server on the same port.
    name: String,
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
            name: String::new(),
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
            name: String::new(),
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
        // a test kills the server with SIGKILL. `max_file_store` is set so a
        // store's reservation (the documents example asks 10 GiB) does not
        // depend on the free space of the machine running the tests; tests
        // write far less than they reserve.
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
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"{name}\"\n{auth}\
             jetstream {{\n  store_dir: {store:?}\n  max_file_store: 1TB\n{sync}}}\n",
            port = self.port,
            name = self.name,
            store = self.store_dir().display().to_string(),
        );
        std::fs::write(&config, text).map_err(io("writing nats-server.conf"))?;
        Ok(config)
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        self.name = unique_name(self.port);
        let config = self.write_config()?;
        // One server per store: the child holds the lock for its whole
        // life, so an orphan of a crashed parent still owns the store and
        // is stopped (after checking it is ours) before a new one starts.
        let lock = StoreLock::of(self.dir.path());
        let locked = match lock.try_take()? {
            Some(file) => file,
            None => lock.reclaim(&config).await?,
        };
        let (child, watchdog) = spawn_logged(
            &self.binary,
            &config,
            &self.log_path(),
            std::process::Stdio::from(locked),
        )?;
        lock.record(child.id(), watchdog)?;
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
                // Most often it could not listen: say who does.
                if let Some(found) = server_name_on(self.port) {
                    return Err(HarnessError::NotOurs {
                        port: self.port,
                        found,
                    });
                }
                return Err(HarnessError::Exited {
                    status: status.to_string(),
                    log: std::fs::read_to_string(self.log_path()).unwrap_or_default(),
                });
            }
            match jetstream_answers(&self.url(), self.options()).await {
                // Only our own server counts as ready.
                Ok(name) if name == self.name => return Ok(()),
                Ok(found) => {
                    if let Some(child) = self.child.as_mut()
                        && let Ok(Some(_)) = child.try_wait()
                    {
                        self.child = None;
                        return Err(HarnessError::NotOurs {
                            port: self.port,
                            found,
                        });
                    }
                    last_error = format!("`{found}` answers, not `{}`", self.name);
                }
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

/// A server name no other start uses: port, this process and a counter.
fn unique_name(port: u16) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTS: AtomicU64 = AtomicU64::new(0);
    format!(
        "trellis-{port}-{}-{}",
        std::process::id(),
        STARTS.fetch_add(1, Ordering::Relaxed)
    )
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_forget(child);
        }
    }
}

/// The name a NATS server listening on loopback `port` announces in its
/// `INFO` line, if one answers within a second.
fn server_name_on(port: u16) -> Option<String> {
    use std::io::BufRead as _;
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line).ok()?;
    let info: serde_json::Value = serde_json::from_str(line.strip_prefix("INFO ")?.trim()).ok()?;
    info.get("server_name")?.as_str().map(str::to_owned)
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
}
