//! `trellis authority run` refuses bad configuration with an error naming
//! the setting and a non-zero exit: a missing or malformed file, an unknown
//! setting (in the file or the environment), unreachable servers, and a CA
//! that did not sign the servers' certificates.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn trellis(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run trellis")
}

/// Runs `trellis authority run --config <config>` and returns its stderr,
/// asserting a non-zero exit within the time it takes to give up.
fn refused(config: &Path, env: &[(&str, &str)]) -> String {
    let started = Instant::now();
    let config = config.to_str().expect("utf-8 path");
    let out = trellis(&["authority", "run", "--config", config], env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started: {stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    stderr
}

fn init(dir: &Path, tls: bool, client_port: u16, http_port: u16) {
    let mut args = vec![
        "authority".to_owned(),
        "init".to_owned(),
        "--out".to_owned(),
        dir.display().to_string(),
        "--client-port".to_owned(),
        client_port.to_string(),
        "--http-port".to_owned(),
        http_port.to_string(),
    ];
    if tls {
        args.push("--tls".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = trellis(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A nats-server killed (by its own PID) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_settings_name_the_setting_and_exit_non_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let port = trellis_testing::free_port().expect("port");
    let http = trellis_testing::free_port().expect("port");
    init(dir.path(), false, port, http);
    let config = dir.path().join("authority.toml");
    let text = std::fs::read_to_string(&config).expect("authority.toml");

    let e = refused(&dir.path().join("missing.toml"), &[]);
    assert!(
        e.contains("setting `file`") && e.contains("cannot read"),
        "{e}"
    );

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "deployment = [\n").expect("write");
    let e = refused(&broken, &[]);
    assert!(e.contains("not valid TOML"), "{e}");

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, format!("colour = \"blue\"\n{text}")).expect("write");
    let e = refused(&unknown, &[]);
    assert!(e.contains("setting `colour`"), "{e}");

    let e = refused(&config, &[("TRELLIS_AUTHORITY_COLOUR", "blue")]);
    assert!(
        e.contains("TRELLIS_AUTHORITY_COLOUR") && e.contains("unknown setting"),
        "{e}"
    );

    let e = refused(&config, &[("TRELLIS_AUTHORITY_REPLICAS", "2")]);
    assert!(
        e.contains("setting `replicas` (from TRELLIS_AUTHORITY_REPLICAS)"),
        "{e}"
    );

    // Nothing listens on the configured port.
    let e = refused(&config, &[("TRELLIS_AUTHORITY_CONNECT_TIMEOUT", "1s")]);
    assert!(
        e.contains("setting `servers`") && e.contains("could not connect"),
        "{e}"
    );
}

#[test]
fn a_ca_that_did_not_sign_the_servers_is_named() {
    let (ours, theirs) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let port = trellis_testing::free_port().expect("port");
    let http = trellis_testing::free_port().expect("port");
    init(ours.path(), true, port, http);
    init(theirs.path(), true, port, http);
    let server = Server(
        Command::new(trellis_testing::nats_server_binary().expect("nats-server"))
            .arg("-c")
            .arg(ours.path().join("nats/n1.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "no server");
        std::thread::sleep(Duration::from_millis(50));
    }
    let wrong_ca = theirs.path().join("tls/ca.pem");
    let e = refused(
        &ours.path().join("authority.toml"),
        &[
            (
                "TRELLIS_AUTHORITY_TLS_CA_FILE",
                wrong_ca.to_str().expect("utf-8"),
            ),
            ("TRELLIS_AUTHORITY_CONNECT_TIMEOUT", "2s"),
        ],
    );
    assert!(e.contains("setting `tls.ca_file`"), "{e}");
    drop(server);
}
