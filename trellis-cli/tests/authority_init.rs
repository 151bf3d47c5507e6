//! `trellis authority init`: the files it writes start a working
//! deployment (a TLS JetStream cluster, a single plain server) that admits
//! the authority's user and refuses plain and foreign-CA clients; secrets
//! are owner-only; it never overwrites a file and refuses 2 servers.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use async_nats::jetstream::{self, stream};

/// How long the servers get to accept a connection and place a stream.
const READY_LIMIT: Duration = Duration::from_secs(30);

fn init(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["authority", "init", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run trellis")
}

fn init_ok(out: &Path, args: &[&str]) -> String {
    let output = init(out, args);
    assert!(
        output.status.success(),
        "init {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Ports handed out by [`free_range`] in this process (tests run in
/// parallel).
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A base port such that `base..base + len` are free now, below the
/// ephemeral range (so outgoing connections do not take them) and not
/// handed out to another test.
fn free_range(len: u16) -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let seed = trellis_testing::free_port().expect("free port");
        let base = 10_000 + (u32::from(seed) * 7_919 % 20_000) as u16;
        let range: Vec<u16> = (base..base + len).collect();
        if range.iter().any(|p| taken.contains(p)) {
            continue;
        }
        let bound: Result<Vec<TcpListener>, _> = range
            .iter()
            .map(|p| TcpListener::bind(("127.0.0.1", *p)))
            .collect();
        if bound.is_ok() {
            taken.extend(range);
            return base;
        }
    }
    panic!("no free range of {len} ports");
}

/// `--client-port`, `--cluster-port` and `--http-port` flags with free
/// ports for `n` servers, and the servers' monitoring ports.
fn port_flags(n: u16) -> (Vec<String>, Vec<u16>) {
    let http = free_range(n);
    let flags = [
        ("--client-port", free_range(n)),
        ("--cluster-port", free_range(n)),
        ("--http-port", http),
    ]
    .iter()
    .flat_map(|(flag, base)| [flag.to_string(), base.to_string()])
    .collect();
    (flags, (http..http + n).collect())
}

/// `GET /healthz` on a monitoring port: `Ok` once the server is ready
/// (with JetStream: current with the meta leader).
async fn healthz(port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut http = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("monitoring port {port}: {e}"))?;
    let mut response = String::new();
    http.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    http.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    match response.lines().next() {
        Some(status) if status.contains(" 200 ") => Ok(()),
        _ => Err(format!("monitoring port {port}: {response}")),
    }
}

/// nats-servers started from the generated configs, killed (SIGKILL to
/// each one's own pid) on drop, also when a test panics.
struct Servers {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Servers {
    /// Starts `nats-server -c <dir>/nats/nI.conf` for I in 1..=n, logging
    /// to `<logs>/nI.log`.
    fn start(dir: &Path, logs: &Path, n: usize) -> Servers {
        let binary = trellis_testing::nats_server_binary().expect("nats-server binary");
        let mut servers = Servers {
            children: Vec::new(),
            logs: Vec::new(),
        };
        for i in 1..=n {
            let log = logs.join(format!("n{i}.log"));
            let child = Command::new(&binary)
                .arg("-c")
                .arg(dir.join(format!("nats/n{i}.conf")))
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("log file"))
                .spawn()
                .expect("nats-server starts");
            servers.children.push(child);
            servers.logs.push(log);
        }
        servers
    }

    fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|log| format!("===== {} =====\n{}", log.display(), read(log)))
            .collect()
    }

    /// Panics, with the logs, if a server has exited.
    fn check_alive(&mut self) {
        for child in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("a nats-server exited ({status}):\n{}", self.logs());
            }
        }
    }

    /// Retries `attempt` (each bounded to 10 s) until it succeeds, up to
    /// [`READY_LIMIT`].
    async fn wait_until<F, Fut>(&mut self, what: &str, mut attempt: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let started = Instant::now();
        loop {
            self.check_alive();
            let error = match tokio::time::timeout(Duration::from_secs(10), attempt()).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(_) => "attempt timed out".to_owned(),
            };
            if started.elapsed() >= READY_LIMIT {
                panic!("{what}: {error}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn authority_seed(dir: &Path) -> String {
    read(dir.join("keys/authority.nk")).trim().to_owned()
}

/// The authority's connection as `authority.toml` describes it.
fn authority_options(dir: &Path, tls: bool) -> ConnectOptions {
    let options =
        ConnectOptions::with_nkey(authority_seed(dir)).connection_timeout(Duration::from_secs(3));
    if !tls {
        return options;
    }
    options
        .add_root_certificates(dir.join("tls/ca.pem"))
        .add_client_certificate(dir.join("tls/client.pem"), dir.join("tls/client-key.pem"))
        .require_tls(true)
}

/// Once every server is healthy, connects, creates a stream with
/// `replicas` and deletes it again.
async fn stream_round_trip(
    options: ConnectOptions,
    urls: &[String],
    http_ports: &[u16],
    replicas: usize,
) -> Result<(), String> {
    for port in http_ports {
        healthz(*port).await?;
    }
    let client = options
        .connect(urls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let js = jetstream::new(client);
    let mut created = js
        .create_stream(stream::Config {
            name: "INIT_PROBE".to_owned(),
            subjects: vec!["init.probe".to_owned()],
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create an R{replicas} stream: {e}"))?;
    let info = created.info().await.map_err(|e| format!("info: {e}"))?;
    assert_eq!(info.config.num_replicas, replicas);
    if replicas > 1 {
        let cluster = info.cluster.as_ref().and_then(|c| c.name.as_deref());
        assert_eq!(cluster, Some("trellis"), "{info:?}");
    }
    js.delete_stream("INIT_PROBE")
        .await
        .map_err(|e| format!("delete the stream: {e}"))?;
    Ok(())
}

fn settings(dir: &Path) -> toml::Table {
    read(dir.join("authority.toml"))
        .parse()
        .expect("authority.toml is TOML")
}

fn servers_setting(settings: &toml::Table) -> Vec<String> {
    settings["servers"]
        .as_array()
        .expect("servers is an array")
        .iter()
        .map(|url| url.as_str().expect("a URL").to_owned())
        .collect()
}

#[tokio::test]
async fn a_tls_cluster_starts_from_the_generated_files_and_refuses_other_clients() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("deploy");
    let (flags, http_ports) = port_flags(3);
    let mut args = vec!["--servers", "3", "--tls"];
    args.extend(flags.iter().map(String::as_str));
    init_ok(&dir, &args);
    let urls = servers_setting(&settings(&dir));
    assert_eq!(urls.len(), 3);
    assert!(
        urls.iter().all(|u| u.starts_with("tls://127.0.0.1:")),
        "{urls:?}"
    );

    let mut servers = Servers::start(&dir, temp.path(), 3);
    // Routes form over mutual TLS, or no R3 stream can be placed.
    servers
        .wait_until("R3 stream over TLS", || {
            stream_round_trip(authority_options(&dir, true), &urls, &http_ports, 3)
        })
        .await;

    // Plain text is not spoken: the server announces TLS and drops a
    // client that answers in plain text.
    let port = urls[0].rsplit(':').next().expect("port");
    let mut plain = TcpStream::connect(format!("127.0.0.1:{port}")).expect("tcp connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut info = String::new();
    BufReader::new(&plain)
        .read_line(&mut info)
        .expect("INFO line");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    let _ = plain.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("PONG"),
        "a plain-text client got an answer"
    );
    let plain_url = urls[0].replace("tls://", "nats://");
    let without_ca = ConnectOptions::with_nkey(authority_seed(&dir))
        .connection_timeout(Duration::from_secs(3))
        .connect(plain_url.as_str())
        .await;
    assert!(without_ca.is_err(), "connected without trusting the CA");

    // A client trusting another deployment's CA rejects these servers.
    let other = temp.path().join("other");
    init_ok(&other, &["--tls"]);
    let foreign = ConnectOptions::with_nkey(authority_seed(&dir))
        .add_root_certificates(other.join("tls/ca.pem"))
        .require_tls(true)
        .connection_timeout(Duration::from_secs(3))
        .connect(urls.as_slice())
        .await;
    assert!(foreign.is_err(), "connected trusting a foreign CA");
    servers.check_alive();
}

#[tokio::test]
async fn a_single_plain_server_admits_the_authority_and_system_users() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("deploy");
    let (flags, http_ports) = port_flags(1);
    let mut args = vec!["--servers", "1", "--max-file-store", "1G"];
    args.extend(flags.iter().map(String::as_str));
    init_ok(&dir, &args);
    assert!(read(dir.join("nats/n1.conf")).contains("max_file_store: 1G\n"));
    let loaded = trellis_authority::Settings::load(&dir.join("authority.toml"))
        .unwrap_or_else(|e| panic!("the authority rejects authority.toml: {e}"));
    assert!(!loaded.tls.is_set());
    let settings = settings(&dir);
    assert_eq!(settings["replicas"].as_integer(), Some(1));
    assert!(!settings.contains_key("tls"));
    assert!(!dir.join("tls").exists());
    assert!(!read(dir.join("nats/n1.conf")).contains("cluster {"));
    let urls = servers_setting(&settings);
    assert_eq!(urls.len(), 1);
    assert!(urls[0].starts_with("nats://127.0.0.1:"), "{urls:?}");

    let mut servers = Servers::start(&dir, temp.path(), 1);
    servers
        .wait_until("R1 stream", || {
            stream_round_trip(authority_options(&dir, false), &urls, &http_ports, 1)
        })
        .await;
    // `--max-file-store` bounds what streams may reserve.
    let js = jetstream::new(
        authority_options(&dir, false)
            .connect(urls.as_slice())
            .await
            .expect("the authority connects"),
    );
    for (mib, fits) in [(2048, false), (512, true)] {
        let created = js
            .create_stream(stream::Config {
                name: format!("RESERVE_{mib}"),
                subjects: vec![format!("reserve.{mib}")],
                max_bytes: mib << 20,
                ..Default::default()
            })
            .await;
        assert_eq!(created.is_ok(), fits, "{mib} MiB: {:?}", created.err());
    }
    let system = read(dir.join("keys/system.nk")).trim().to_owned();
    let client = ConnectOptions::with_nkey(system)
        .connection_timeout(Duration::from_secs(3))
        .connect(urls.as_slice())
        .await
        .expect("the system user connects");
    client.flush().await.expect("flush");
    servers.check_alive();
}

#[test]
fn secrets_are_owner_only_and_the_files_agree() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("deploy");
    let stdout = init_ok(
        &dir,
        &[
            "--servers",
            "3",
            "--tls",
            "--deployment",
            "prod-1",
            "--host",
            "localhost",
        ],
    );
    assert_eq!(stdout, read(dir.join("README.txt")));
    assert!(stdout.contains("nats-server -c "), "{stdout}");
    assert!(stdout.contains("TRELLIS_TLS_CA="), "{stdout}");

    for secret in [
        "keys/issuer.nk",
        "keys/authority.nk",
        "keys/system.nk",
        "operator.creds.json",
        "tls/ca-key.pem",
        "tls/server-key.pem",
        "tls/client-key.pem",
    ] {
        let mode = std::fs::metadata(dir.join(secret))
            .expect(secret)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }

    let key = |file: &str| {
        nkeys::KeyPair::from_seed(read(dir.join(file)).trim())
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let issuer = key("keys/issuer.nk").public_key();
    let authority = key("keys/authority.nk").public_key();
    let system = key("keys/system.nk").public_key();
    assert!(issuer.starts_with('A') && authority.starts_with('U') && system.starts_with('U'));
    for i in 1..=3 {
        let conf = read(dir.join(format!("nats/n{i}.conf")));
        assert!(conf.contains(&format!("server_name: n{i}")), "{conf}");
        assert!(conf.contains(&format!("listen: \"localhost:{}\"", 4221 + i)));
        assert!(conf.contains(&format!("issuer: {issuer}")));
        assert!(conf.contains(&format!("auth_users: [ {authority} ]")));
        assert!(conf.contains(&format!("nkey: {system}")));
        assert!(conf.contains(&format!(
            "{}/data/n{i}\"",
            dir.canonicalize().expect("dir").display()
        )));
        for j in 1..=3 {
            let route = format!("nats-route://localhost:{}", 6221 + j);
            assert_eq!(conf.contains(&route), i != j, "n{i} routes to n{j}: {conf}");
        }
    }

    // The authority reads the file as written.
    let loaded = trellis_authority::Settings::load(&dir.join("authority.toml"))
        .unwrap_or_else(|e| panic!("the authority rejects authority.toml: {e}"));
    assert_eq!(loaded.deployment, "prod-1");
    assert_eq!(loaded.replicas, 3);
    assert!(loaded.tls.is_set());

    let settings = settings(&dir);
    assert_eq!(settings["deployment"].as_str(), Some("prod-1"));
    assert_eq!(settings["replicas"].as_integer(), Some(3));
    assert_eq!(
        servers_setting(&settings),
        [
            "tls://localhost:4222",
            "tls://localhost:4223",
            "tls://localhost:4224"
        ]
    );
    let relative = |table: &str, key: &str| {
        let path = settings[table][key].as_str().expect("a path");
        assert!(dir.join(path).is_file(), "[{table}] {key} = {path}");
    };
    relative("nats", "nkey_seed_file");
    relative("tls", "ca_file");
    relative("tls", "cert_file");
    relative("tls", "key_file");
    relative("callout", "issuer_seed_file");
    relative("callout", "system_seed_file");
    assert_eq!(settings["callout"]["account"].as_str(), Some("TRELLIS"));
    let operator = trellis_runtime::identity::Credentials::load(dir.join("operator.creds.json"))
        .expect("operator credentials");
    let operators = settings["operators"].as_array().expect("operators");
    assert_eq!(operators.len(), 1);
    assert_eq!(operators[0]["id"].as_str(), Some("operator"));
    assert_eq!(
        operators[0]["public_key"].as_str(),
        Some(operator.public_key().as_str())
    );
}

/// Every file below `dir`: contents and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let mode = std::fs::metadata(&path)
                    .expect("metadata")
                    .permissions()
                    .mode();
                let bytes = std::fs::read(&path).expect("read");
                files.insert(path, (bytes, mode));
            }
        }
    }
    files
}

#[test]
fn init_never_overwrites_a_file() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("deploy");
    init_ok(&dir, &["--servers", "3", "--tls"]);
    let before = snapshot(&dir);
    let again = init(&dir, &["--servers", "3", "--tls"]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}", dir.canonicalize().expect("dir").display())),
        "{stderr}"
    );
    assert_eq!(snapshot(&dir), before, "a refused init changed files");

    // One existing file is enough, and nothing else gets written.
    let partial = temp.path().join("partial");
    std::fs::create_dir_all(partial.join("nats")).expect("mkdir");
    std::fs::write(partial.join("nats/n2.conf"), "mine\n").expect("write");
    let refused = init(&partial, &["--servers", "3"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("nats/n2.conf: already exists"), "{stderr}");
    let left = snapshot(&partial);
    assert_eq!(left.len(), 1, "{:?}", left.keys());
    assert_eq!(read(partial.join("nats/n2.conf")), "mine\n");
}

#[test]
fn unusable_server_counts_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    for n in ["0", "2", "10"] {
        let dir = temp.path().join(format!("servers-{n}"));
        let output = init(&dir, &["--servers", n]);
        assert_eq!(output.status.code(), Some(2), "--servers {n}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("--servers {n}")), "{stderr}");
        assert!(!dir.exists(), "--servers {n} created {}", dir.display());
    }
    let output = init(&temp.path().join("bad"), &["--deployment", "Main"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--deployment"));
}
