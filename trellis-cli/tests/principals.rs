//! `trellis dev` with auth, driven through the binary: the operator's
//! credential file administers principals; everything else is refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Dev;

fn trellis(url: &str, creds: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command.args(args).env("TRELLIS_URL", url);
    match creds {
        Some(c) => command.env("TRELLIS_CREDENTIALS", c),
        None => command.env_remove("TRELLIS_CREDENTIALS"),
    };
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run trellis");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn dev_runs_with_auth_and_the_operator_manages_principals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = trellis_testing::free_port().expect("free port");
    let url = format!("nats://127.0.0.1:{port}");
    let _dev = Dev::start(port, dir.path());
    let operator = dir.path().join("operator.creds.json");
    let started = Instant::now();
    while trellis(&url, Some(&operator), &["status"]).0 != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "trellis dev did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Without credentials nothing connects, and the error says what to do.
    let (code, _, err) = trellis(&url, None, &["status"]);
    assert_ne!(code, 0);
    assert!(err.contains("TRELLIS_CREDENTIALS"), "{err}");

    let alice = dir.path().join("alice.creds.json");
    let (code, out, err) = trellis(
        &url,
        Some(&operator),
        &[
            "principal",
            "add",
            "user",
            "alice",
            "--out",
            &alice.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("registered user `alice`"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&alice)
            .expect("creds")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "credential files are private");
    }
    let (code, out, err) = trellis(
        &url,
        Some(&operator),
        &["grant", "alice", "documents::read"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("documents::read"), "{out}");
    let (code, _, err) = trellis(
        &url,
        Some(&operator),
        &["grant", "alice", "not-a-capability"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("<namespace>::<name>"), "{err}");

    // The audit view: every principal with the subjects it is issued.
    let (code, out, err) = trellis(&url, Some(&operator), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice (user)"), "{out}");
    assert!(out.contains("capabilities: documents::read"), "{out}");
    assert!(out.contains("_INBOX."), "{out}");

    // A user may not administer the deployment.
    let (code, _, _) = trellis(&url, Some(&alice), &["grant", "alice", "documents::write"]);
    assert_ne!(code, 0, "a user cannot grant");

    // Revoked: alice can no longer connect at all.
    let (code, out, err) = trellis(&url, Some(&operator), &["revoke", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked user `alice`"), "{out}");
    let (code, _, _) = trellis(&url, Some(&alice), &["status"]);
    assert_ne!(code, 0, "a revoked key is refused");
}
