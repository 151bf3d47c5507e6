//! `trellis dev` survives its own crash: on SIGKILL its nats-server is
//! stopped by its watchdog and the next start recovers the store; were the
//! watchdog killed as well, the orphaned server still holds the store's
//! lock, and the next `trellis dev` on the same directory stops it and
//! takes the store over. Nothing written before or after is lost: the
//! accepted contracts (KV) and objects uploaded before the crash and after
//! the takeover, read back whole after a clean restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Dev, download_args, upload_args};

fn trellis(url: &str, creds: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .env("TRELLIS_URL", url)
        .env("TRELLIS_CREDENTIALS", creds)
        .output()
        .expect("run trellis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn wait_up(url: &str, creds: &Path) {
    let started = Instant::now();
    while !trellis(url, creds, &["status"]).0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "trellis dev did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn manifest(example: &str, id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example)
        .join("contracts")
        .join(format!("{id}.json"))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `trellis contract accept` of example `example`'s manifest `id`.
fn accept(url: &str, operator: &Path, example: &str, id: &str) {
    let path = manifest(example, id).display().to_string();
    let (ok, out) = trellis(url, operator, &["contract", "accept", &path]);
    assert!(ok, "{out}");
}

/// The documents service on `trellis dev` at `url`, with its credentials
/// in `dir` (made by `enroll`), until the returned server is shut down.
fn documents_up(rt: &tokio::runtime::Runtime, url: &str, dir: &Path) -> trellis::RpcServer {
    use documents_example::{DocumentsService, documents};
    let options =
        trellis::ConnectOptions::new(url).credentials_file(dir.join("documents.creds.json"));
    rt.block_on(async {
        let service = documents::Service::connect(options)
            .await
            .expect("the documents service connects");
        service
            .serve(
                DocumentsService::new(&service),
                trellis::ServeOptions::default(),
            )
            .await
            .expect("serves")
    })
}

fn documents_down(rt: &tokio::runtime::Runtime, server: trellis::RpcServer) {
    assert!(
        rt.block_on(server.shutdown(Duration::from_secs(5))),
        "documents stopped"
    );
}

/// The documents service's and alice's credentials in `dir`, alice with
/// both documents capabilities.
fn enroll(url: &str, operator: &Path, dir: &Path) {
    let out = |name: &str| dir.join(format!("{name}.creds.json")).display().to_string();
    for args in [
        vec![
            "principal",
            "add",
            "service",
            "documents",
            "--contract",
            "documents@v1",
            "--out",
            &out("documents"),
        ],
        vec!["principal", "add", "user", "alice", "--out", &out("alice")],
        vec!["grant", "alice", "documents::read", "documents::write"],
    ] {
        let (ok, text) = trellis(url, operator, &args);
        assert!(ok, "{text}");
    }
}

/// Uploads `data` as `key` with `trellis upload`, as alice.
fn upload(url: &str, dir: &Path, key: &str, data: &[u8]) {
    let file = dir.join(format!("{key}.up"));
    std::fs::write(&file, data).expect("write");
    let input =
        format!(r#"{{"key":"{key}","contentType":"application/octet-stream","metadata":{{}}}}"#);
    let manifest = manifest("documents", "documents@v1").display().to_string();
    let file = file.display().to_string();
    let (ok, text) = trellis(
        url,
        &dir.join("alice.creds.json"),
        &upload_args(&manifest, &input, &file),
    );
    assert!(ok && text.contains("completed"), "{text}");
}

/// `key` as `trellis download` brings it back, as alice.
fn download(url: &str, dir: &Path, key: &str) -> Vec<u8> {
    let out = dir.join(format!("{key}.down"));
    let _ = std::fs::remove_file(&out);
    let input = format!(r#"{{"key":"{key}"}}"#);
    let manifest = manifest("documents", "documents@v1").display().to_string();
    let target = out.display().to_string();
    let (ok, text) = trellis(
        url,
        &dir.join("alice.creds.json"),
        &download_args(&manifest, &input, &target),
    );
    assert!(ok, "{key}: {text}");
    std::fs::read(&out).expect("downloaded file")
}

#[test]
fn a_crashed_dev_stack_leaves_no_orphan_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = trellis_testing::free_port().expect("free port");
    let url = format!("nats://127.0.0.1:{port}");
    let operator = dir.path().join("operator.creds.json");

    let dev = Dev::start(port, dir.path());
    wait_up(&url, &operator);
    accept(&url, &operator, "items", "items@v1");
    let pid = |file: &str| -> u32 {
        std::fs::read_to_string(dir.path().join(file))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    };
    // The server dies with its parent: its watchdog stops it.
    let server = pid("nats-server.pid");
    dev.crash();
    let started = Instant::now();
    while alive(server) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "nats-server {server} outlived the crashed trellis dev"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dev = Dev::start(port, dir.path());
    wait_up(&url, &operator);
    let (ok, out) = trellis(&url, &operator, &["status"]);
    assert!(
        ok && out.contains("items@v1"),
        "written before the crash: {out}"
    );

    // An object written before the next crash (the data the original
    // report lost: objects went missing after an orphan's store was
    // opened twice).
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    accept(&url, &operator, "documents", "documents@v1");
    enroll(&url, &operator, dir.path());
    let before: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let server = documents_up(&rt, &url, dir.path());
    upload(&url, dir.path(), "before.bin", &before);
    documents_down(&rt, server);

    // Were the watchdog killed too (a whole process tree SIGKILLed by
    // pid), the orphan would keep the store locked and its pid recorded.
    let orphan = pid("nats-server.pid");
    let watchdog = pid("watchdog.pid");
    let _ = Command::new("kill")
        .args(["-KILL", &watchdog.to_string()])
        .status();
    dev.crash();
    assert!(
        alive(orphan),
        "without its watchdog the server keeps running"
    );

    // The next start stops the orphan and takes its store over.
    let dev = Dev::start(port, dir.path());
    wait_up(&url, &operator);
    let started = Instant::now();
    while alive(orphan) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the orphaned nats-server {orphan} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out) = trellis(&url, &operator, &["status"]);
    assert!(
        ok && out.contains("items@v1"),
        "written before the crash: {out}"
    );
    // The object written before the crash is whole; one written after
    // the takeover is stored too.
    let after: Vec<u8> = before.iter().rev().copied().collect();
    let server = documents_up(&rt, &url, dir.path());
    assert!(
        download(&url, dir.path(), "before.bin") == before,
        "before.bin changed"
    );
    upload(&url, dir.path(), "after.bin", &after);
    documents_down(&rt, server);
    drop(dev);

    // A clean restart keeps what was written before and after the crash.
    let _dev = Dev::start(port, dir.path());
    wait_up(&url, &operator);
    let (ok, out) = trellis(&url, &operator, &["status"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("items@v1") && out.contains("documents@v1"),
        "{out}"
    );
    // And so does every object: written before the crash and after it.
    let server = documents_up(&rt, &url, dir.path());
    assert!(
        download(&url, dir.path(), "before.bin") == before,
        "before.bin after the restart"
    );
    assert!(
        download(&url, dir.path(), "after.bin") == after,
        "after.bin after the restart"
    );
    documents_down(&rt, server);
}

/// A nats-server `trellis dev` did not start answers on its port: the start
/// fails, naming the port and the server that answers, instead of using it.
#[test]
fn a_foreign_server_on_the_port_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = trellis_testing::free_port().expect("free port");
    let binary = std::env::var("TRELLIS_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let mut foreign = Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-n", "foreign"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a foreign nats-server starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the foreign server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut dev = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["dev", "--port", &port.to_string(), "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("trellis dev starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = dev.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = dev.kill();
            let _ = foreign.kill();
            panic!("trellis dev kept running beside a foreign server");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = dev.wait_with_output().expect("output");
    let _ = foreign.kill();
    let _ = foreign.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("another nats-server (`foreign`)") && text.contains(&port.to_string()),
        "{text}"
    );
}
