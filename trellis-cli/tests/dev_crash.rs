//! `trellis dev` survives its own crash: on SIGKILL its nats-server is
//! stopped by its watchdog and the next start recovers the store; were the
//! watchdog killed as well, the orphaned server still holds the store's
//! lock, and the next `trellis dev` on the same directory stops it and
//! takes the store over. Nothing written before or after is lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Dev;

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

#[test]
fn a_crashed_dev_stack_leaves_no_orphan_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = trellis_testing::free_port().expect("free port");
    let url = format!("nats://127.0.0.1:{port}");
    let operator = dir.path().join("operator.creds.json");

    let dev = Dev::start(port, dir.path());
    wait_up(&url, &operator);
    let items = manifest("items", "items@v1");
    let (ok, out) = trellis(
        &url,
        &operator,
        &["contract", "accept", &items.display().to_string()],
    );
    assert!(ok, "{out}");
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
    let documents = manifest("documents", "documents@v1");
    let (ok, out) = trellis(
        &url,
        &operator,
        &["contract", "accept", &documents.display().to_string()],
    );
    assert!(ok, "{out}");
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
