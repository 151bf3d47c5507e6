//! A deployment built the way `docs/deploy.md` says, for the fault tests:
//! `trellis authority init --servers 3 --tls`, three nats-servers from the
//! generated configurations (on loopback, or each in its own network
//! namespace), two `trellis authority run` processes, the documents and
//! indexer services and a caller over TLS with their own credentials, and
//! traffic (uploads, RPCs, indexed events) to check across a fault.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use documents_example::{DocumentsService, documents};
use futures::StreamExt as _;
use indexer_example::indexer;
use sha2::Digest as _;
use trellis::{ConnectOptions, OperationStatus, Outcome, ServeOptions, Tls};
use trellis_runtime::AuthorityClient;
use trellis_runtime::identity::{Credentials, PrincipalKind};
use trellis_runtime::protocol::Phase;

use super::netns::Netns;

pub const DEPLOYMENT: &str = "e2e";
/// How long one call may keep failing across a fault before the test calls
/// it lost. The worst case seen: a silent partition is noticed after two
/// missed pings (up to 15 s), the services reconnect through the callout,
/// streams elect new leaders, and an upload caught mid-handler waits out
/// its event publish and record write, each retried for up to 15 s.
pub const RETRY_WINDOW: Duration = Duration::from_secs(90);
/// How long one attempt may take (a lost operation poll costs its long
/// poll plus the request timeout, 10 s).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(15);
pub const UPLOADS: usize = 24;

/// A child process killed (SIGKILL, by its own PID) when dropped.
#[derive(Default)]
pub struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &str, mut command: Command, log: &Path) -> Proc {
        let file = std::fs::File::create(log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    /// SIGKILL by its own PID: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (at most 20 s) for the exit; whether it was
    /// clean.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} did not stop within 20 s of SIGTERM", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first of `n` consecutive loopback ports that are free now, none of
/// them in `taken`.
fn free_run(n: u16, taken: &mut Vec<std::net::TcpListener>) -> u16 {
    for _ in 0..200 {
        let base = trellis_testing::free_port().expect("free port");
        if base > u16::MAX - n {
            continue;
        }
        let held: Vec<_> = (base..base + n)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            taken.extend(held);
            return base;
        }
    }
    panic!("no run of {n} free ports");
}

/// Three servers and two authorities from one `init` directory.
/// Fields drop in order: processes first, then their namespaces, then
/// their directory.
pub struct Deployment {
    pub servers: Vec<Proc>,
    pub authorities: Vec<Proc>,
    netns: Option<Netns>,
    /// Each server's (host, monitoring port).
    monitors: Vec<(String, u16)>,
    pub urls: String,
    dir: tempfile::TempDir,
}

impl Deployment {
    /// `trellis authority init --servers 3 --tls` on loopback ports.
    pub fn on_loopback() -> Deployment {
        let mut held = Vec::new();
        let (client, cluster, http) = (
            free_run(3, &mut held),
            free_run(3, &mut held),
            free_run(3, &mut held),
        );
        drop(held);
        let hosts = ["127.0.0.1"; 3].map(str::to_owned);
        Deployment::init(hosts, [client, cluster, http], None)
    }

    /// The same, each server in its own network namespace (`netns`), at
    /// its own address, on the default ports.
    pub fn in_namespaces(netns: Netns) -> Deployment {
        let hosts = [0, 1, 2].map(|i| netns.address(i));
        Deployment::init(hosts, [4222, 6222, 8222], Some(netns))
    }

    fn init(
        hosts: [String; 3],
        [client, cluster, http]: [u16; 3],
        netns: Option<Netns>,
    ) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args([
                "authority",
                "init",
                "--servers",
                "3",
                "--tls",
                "--deployment",
            ])
            .arg(DEPLOYMENT)
            .arg("--out")
            .arg(dir.path())
            .args(["--host", &hosts.join(",")])
            .args(["--client-port", &client.to_string()])
            .args(["--cluster-port", &cluster.to_string()])
            .args(["--http-port", &http.to_string()])
            // The three servers share this machine's disk; left to its
            // default each would claim 75% of what is free, too little for
            // the documents store's 10 GiB on a small CI disk.
            .args(["--max-file-store", "1TB"])
            .output()
            .expect("trellis authority init");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // One host for all: ports count up; one host each: the same ports.
        let port = |base: u16, i: usize| {
            if hosts[0] == hosts[1] {
                base + i as u16
            } else {
                base
            }
        };
        let urls = (0..3)
            .map(|i| format!("tls://{}:{}", hosts[i], port(client, i)))
            .collect::<Vec<_>>()
            .join(",");
        let monitors = (0..3).map(|i| (hosts[i].clone(), port(http, i))).collect();
        Deployment {
            servers: (0..3).map(|_| Proc::default()).collect(),
            authorities: (0..2).map(|_| Proc::default()).collect(),
            netns,
            monitors,
            urls,
            dir,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// Starts the three servers and both authorities, and waits until both
    /// authorities run (they retry their R3 buckets while the cluster
    /// forms).
    pub fn start_all(&mut self) {
        for i in 0..3 {
            self.start_server(i);
        }
        for i in 0..2 {
            self.start_authority(i);
        }
        for i in 0..2 {
            self.wait_authority(i, Duration::from_secs(60));
        }
    }

    /// Starts server `i` from `nats/n<i+1>.conf` (in its namespace, if any).
    pub fn start_server(&mut self, i: usize) {
        let binary = trellis_testing::nats_server_binary().expect("nats-server");
        let config = self.path(&format!("nats/n{}.conf", i + 1));
        let command = match &self.netns {
            // `ip netns exec` execs the server: the PID is the server's.
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &netns.name(i)])
                    .arg(binary)
                    .arg("-c")
                    .arg(config);
                c
            }
            None => {
                let mut c = Command::new(binary);
                c.arg("-c").arg(config);
                c
            }
        };
        let log = self.path(&format!("n{}.log", i + 1));
        self.servers[i] = Proc::spawn(&format!("nats-server n{}", i + 1), command, &log);
    }

    /// Starts authority process `i` from the generated `authority.toml`.
    pub fn start_authority(&mut self, i: usize) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
        command
            .args(["authority", "run", "--config"])
            .arg(self.path("authority.toml"))
            .env("RUST_LOG", "info");
        let log = self.path(&format!("authority-{i}.log"));
        self.authorities[i] = Proc::spawn(&format!("authority {i}"), command, &log);
    }

    /// `trellis <args>` as the operator `init` wrote, configured only by
    /// the environment `docs/deploy.md` shows; its success and output.
    pub fn operator_cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(args)
            .env("TRELLIS_URL", &self.urls)
            .env("TRELLIS_DEPLOYMENT", DEPLOYMENT)
            .env("TRELLIS_CREDENTIALS", self.path("operator.creds.json"))
            .env("TRELLIS_TLS_CA", self.path("tls/ca.pem"))
            .output()
            .expect("run trellis");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits until authority `i` logs that it runs (at most `limit`).
    pub fn wait_authority(&self, i: usize, limit: Duration) {
        let name = format!("authority-{i}.log");
        let started = Instant::now();
        while !self.log(&name).contains("trellis authority running") {
            assert!(
                started.elapsed() < limit,
                "authority {i} did not start:\n{}",
                self.log(&name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn tls(&self) -> Tls {
        Tls::new().ca_file(self.path("tls/ca.pem"))
    }

    pub fn options(&self, creds: Credentials) -> ConnectOptions {
        ConnectOptions::new(&self.urls)
            .deployment(DEPLOYMENT)
            .credentials(creds)
            .tls(self.tls())
            .ping_interval(Duration::from_secs(2))
            .ready_deadline(Duration::from_secs(30))
    }

    fn jsz(&self, i: usize) -> Option<serde_json::Value> {
        let (host, port) = &self.monitors[i];
        http_get(host, *port, "/jsz").and_then(|b| serde_json::from_str(&b).ok())
    }

    /// The index of the server leading the JetStream meta group.
    pub fn meta_leader(&self) -> usize {
        let leader = (0..3)
            .find_map(|i| {
                self.jsz(i)?["meta_cluster"]["leader"]
                    .as_str()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
            })
            .expect("a meta leader");
        // `init` names server i `n<i+1>`.
        leader
            .trim_start_matches('n')
            .parse::<usize>()
            .expect("server name n<k>")
            - 1
    }

    /// Waits (at most 60 s) until server `i` knows a meta leader that
    /// sees both other servers as current.
    pub async fn wait_meta_whole(&self, i: usize) {
        let started = Instant::now();
        loop {
            let whole = self
                .jsz(i)
                .and_then(|j| j["meta_cluster"]["leader"].as_str().map(str::to_owned))
                .and_then(|l| l.trim_start_matches('n').parse::<usize>().ok())
                .and_then(|k| self.jsz(k - 1))
                .is_some_and(|j| {
                    j["meta_cluster"]["replicas"].as_array().is_some_and(|r| {
                        r.len() == 2 && r.iter().all(|p| p["current"].as_bool() == Some(true))
                    })
                });
            if whole {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "n{} did not rejoin the meta group: {:?}",
                i + 1,
                (0..3).map(|k| self.jsz(k)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A plain HTTP GET (the servers' monitoring port).
fn http_get(host: &str, port: u16, path: &str) -> Option<String> {
    let address: std::net::SocketAddr = format!("{host}:{port}").parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

fn nats_digest(data: &[u8]) -> String {
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(data))
    )
}

/// Runs `attempt` until it succeeds, for at most [`RETRY_WINDOW`];
/// returns the value and how many attempts failed.
pub async fn retried<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> (T, usize) {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        let error = match tokio::time::timeout(ATTEMPT_LIMIT, attempt()).await {
            Ok(Ok(value)) => return (value, failures),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {ATTEMPT_LIMIT:?}"),
        };
        eprintln!("{what}: attempt {failures} failed: {error}");
        assert!(
            started.elapsed() < RETRY_WINDOW,
            "{what} kept failing for {RETRY_WINDOW:?}: {error}"
        );
        failures += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One attempt at uploading `key`, idempotent across attempts: an
/// operation an earlier attempt started (`started` keeps its id) is
/// reattached and waited for, never uploaded again; one whose transfer
/// never finished is cancelled first.
async fn upload(
    client: &documents::Client,
    key: &str,
    data: Bytes,
    started: &Mutex<Option<String>>,
) -> Result<(), String> {
    let earlier = started.lock().expect("lock").clone();
    if let Some(id) = earlier {
        let op = client.operation.files.upload.attach(id);
        let snapshot = op.get().await.map_err(|e| e.to_string())?;
        eprintln!("{key}: reattached to {} ({:?})", op.id(), snapshot.status);
        match snapshot.status {
            OperationStatus::Completed => return Ok(()),
            OperationStatus::Running => return wait(&op).await,
            OperationStatus::Pending => {
                let snapshot = op.cancel().await.map_err(|e| e.to_string())?;
                if snapshot.status != OperationStatus::Cancelled {
                    return wait(&op).await;
                }
            }
            OperationStatus::Failed | OperationStatus::Cancelled => {}
        }
    }
    let op = client
        .operation
        .files
        .upload
        .input(documents::UploadInput {
            key: key.to_owned(),
            content_type: "application/octet-stream".into(),
            metadata: Default::default(),
        })
        .transfer(data)
        .on_started(|id| *started.lock().expect("lock") = Some(id.to_owned()))
        .start()
        .await
        .map_err(|e| e.to_string())?;
    wait(&op).await
}

async fn wait(
    op: &trellis::OperationRef<documents::UploadProgress, documents::UploadOutput>,
) -> Result<(), String> {
    match op.wait().await.map_err(|e| e.to_string())? {
        Outcome::Completed(_) => Ok(()),
        other => Err(format!("upload ended {other:?}")),
    }
}

/// The operator's authority client, the services and alice's client.
pub struct Stack {
    pub authority: AuthorityClient,
    server: trellis::RpcServer,
    indexing: trellis::ConsumerTask,
    client: documents::Client,
    indexed: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Document keys a watch on the indexer's bucket has seen written.
    watched: Arc<Mutex<std::collections::BTreeSet<String>>>,
    watching: tokio::task::JoinHandle<()>,
}

impl Stack {
    /// Accepts documents and indexer as the operator `init` wrote, enrolls
    /// both services and alice, and connects them over TLS.
    pub async fn start(d: &Deployment) -> Stack {
        let operator = Credentials::load(d.path("operator.creds.json")).expect("operator creds");
        let nats = d
            .tls()
            .apply(operator.nats_options())
            .connect(trellis_runtime::split_servers(&d.urls).as_slice())
            .await
            .expect("operator connects over TLS");
        let authority = AuthorityClient::new(nats, DEPLOYMENT.to_owned());
        for manifest in [documents::MANIFEST_JSON, indexer::MANIFEST_JSON] {
            authority.accept(manifest, false).await.expect("accept");
        }
        let started = Instant::now();
        loop {
            let status = authority.status().await.expect("status");
            let ready = [
                (documents::ID, documents::DIGEST),
                (indexer::ID, indexer::DIGEST),
            ]
            .iter()
            .all(|(id, digest)| {
                status.contracts.iter().any(|c| {
                    c.id == *id
                        && c.status
                            .as_ref()
                            .is_some_and(|s| s.phase == Phase::Ready && s.digest == *digest)
                })
            });
            if ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{status:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let enroll = |kind, id: &'static str, contract: Option<&'static str>| {
            let authority = &authority;
            async move {
                authority
                    .enroll(kind, id, None, contract)
                    .await
                    .expect("enroll")
            }
        };
        let docs = enroll(PrincipalKind::Service, "documents", Some(documents::ID)).await;
        let indexer_creds = enroll(PrincipalKind::Service, "indexer", Some(indexer::ID)).await;
        let alice = enroll(PrincipalKind::User, "alice", None).await;
        authority
            .grant("alice", &["documents::read", "documents::write"], false)
            .await
            .expect("grant alice");
        authority
            .grant("indexer", &["documents::read"], false)
            .await
            .expect("grant indexer");

        let service = documents::Service::connect(d.options(docs))
            .await
            .expect("documents connects");
        let server = service
            .serve(DocumentsService::new(&service), ServeOptions::default())
            .await
            .expect("serve");
        let indexer_service = Arc::new(
            indexer::Service::connect(d.options(indexer_creds))
                .await
                .expect("indexer connects"),
        );
        // A watch started before the traffic must see every entry the
        // indexer writes, across the fault.
        let mut watch = indexer_service
            .kv
            .index
            .watch_all()
            .await
            .expect("watch the index");
        let watched: Arc<Mutex<std::collections::BTreeSet<String>>> = Arc::default();
        let watching = {
            let watched = watched.clone();
            tokio::spawn(async move {
                while let Some(change) = watch.next().await {
                    match change {
                        Ok(trellis::KvChange::Put(entry)) => {
                            watched.lock().expect("lock").insert(entry.value.key);
                        }
                        Ok(_) => {}
                        Err(e) => eprintln!("index watch: {e}"),
                    }
                }
            })
        };
        let indexed: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
        let indexing = {
            let indexed = indexed.clone();
            indexer_example::run(indexer_service, move |entry| {
                indexed
                    .lock()
                    .expect("lock")
                    .entry(entry.key.clone())
                    .or_default()
                    .push(entry.event_id.clone());
            })
            .await
            .expect("indexer runs")
        };
        let client = documents::Client::connect(d.options(alice))
            .await
            .expect("alice connects");
        Stack {
            authority,
            server,
            indexing,
            client,
            indexed,
            watched,
            watching,
        }
    }

    /// Starts traffic: [`UPLOADS`] uploads one after another (each retried
    /// within the window), and `Files.List` calls beside them.
    pub fn traffic(&self) -> Traffic {
        let data: Vec<(String, Bytes)> = (0..UPLOADS)
            .map(|i| {
                let bytes: Vec<u8> = (0..256 * 1024).map(|b| (b * 7 + i * 13) as u8).collect();
                (format!("doc-{i:02}.bin"), Bytes::from(bytes))
            })
            .collect();
        let uploads = {
            let (client, data) = (self.client.clone(), data.clone());
            tokio::spawn(async move {
                let mut failures = 0;
                for (key, bytes) in &data {
                    let started = Mutex::new(None);
                    let (_, failed) =
                        retried(key, || upload(&client, key, bytes.clone(), &started)).await;
                    failures += failed;
                }
                failures
            })
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let rpcs = {
            let (client, stop) = (self.client.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut calls, mut failures) = (0usize, 0usize);
                while !stop.is_cancelled() {
                    let (_, failed) = retried("Files.List", || async {
                        client
                            .rpc
                            .files
                            .list(&documents::ListRequest {
                                prefix: String::new(),
                                offset: 0,
                                limit: 5,
                            })
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| format!("{e:?}"))
                    })
                    .await;
                    calls += 1;
                    failures += failed;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (calls, failures)
            })
        };
        Traffic {
            data,
            uploads,
            rpcs,
            stop,
        }
    }

    /// Waits (at most 90 s) until `n` keys are indexed.
    pub async fn wait_indexed(&self, n: usize) {
        let started = Instant::now();
        while self.indexed.lock().expect("lock").len() < n {
            assert!(
                started.elapsed() < RETRY_WINDOW + Duration::from_secs(30),
                "only {} of {n} uploads indexed",
                self.indexed.lock().expect("lock").len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the traffic and checks it: every call succeeded within the
    /// retry window, every upload is whole and was indexed from exactly one
    /// event.
    pub async fn finish(&self, traffic: Traffic) {
        let upload_failures = traffic.uploads.await.expect("uploads");
        self.wait_indexed(UPLOADS).await;
        traffic.stop.cancel();
        let (calls, rpc_failures) = traffic.rpcs.await.expect("rpcs");
        let deliveries: usize = self
            .indexed
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum();
        eprintln!(
            "{UPLOADS} uploads ({upload_failures} failed attempts retried), {calls} lists \
             ({rpc_failures} failed attempts retried), {deliveries} indexer deliveries"
        );
        let started = Instant::now();
        while traffic
            .data
            .iter()
            .any(|(key, _)| !self.watched.lock().expect("lock").contains(key))
        {
            assert!(
                started.elapsed() < RETRY_WINDOW,
                "the index watch saw only {:?}",
                self.watched.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (key, bytes) in &traffic.data {
            let (head, _) = retried("Files.Head", || async {
                self.client
                    .rpc
                    .files
                    .head(&documents::FileKey { key: key.clone() })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("{e:?}"))
            })
            .await;
            assert_eq!(head.size, bytes.len() as u64, "{key} is partial");
            assert_eq!(head.digest, nats_digest(bytes), "{key} differs");
            // A redelivered event (same id) is the same effect; two events
            // would be two uploads.
            let mut events = self
                .indexed
                .lock()
                .expect("lock")
                .get(key)
                .cloned()
                .unwrap_or_default();
            events.sort();
            events.dedup();
            assert_eq!(events.len(), 1, "{key} indexed from {events:?}");
        }
    }

    pub async fn shutdown(self) {
        self.watching.abort();
        self.indexing.shutdown().await;
        assert!(self.server.shutdown(Duration::from_secs(10)).await);
    }
}

/// Traffic in flight.
pub struct Traffic {
    data: Vec<(String, Bytes)>,
    uploads: tokio::task::JoinHandle<usize>,
    rpcs: tokio::task::JoinHandle<(usize, usize)>,
    stop: tokio_util::sync::CancellationToken,
}
