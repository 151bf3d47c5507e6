//! `trellis upload` / `trellis download` against `trellis dev` (auth on)
//! and the documents service: a file goes up through the send-transfer
//! operation named in the manifest and comes back through the receive
//! grant, byte for byte; `--resume` continues a partial `<out>.part`; bad
//! names, non-transfer surfaces, malformed input and missing files are
//! refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Dev, download_args, upload_args};
use documents_example::{DocumentsService, documents};
use trellis::{ConnectOptions, ServeOptions};

fn documents_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/documents/contracts/documents@v1.json")
}

/// Runs `trellis <args>` against `url` as `creds`: (success, stdout, stderr).
async fn trellis(url: &str, creds: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .args(args)
        .env("TRELLIS_URL", url)
        .env("TRELLIS_CREDENTIALS", creds);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run trellis");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_round_trip_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = trellis_testing::free_port().expect("free port");
    let url = format!("nats://127.0.0.1:{port}");
    let _dev = Dev::start(port, dir.path());
    let operator = dir.path().join("operator.creds.json");
    let started = Instant::now();
    while !trellis(&url, &operator, &["status"]).await.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "trellis dev did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let manifest = documents_manifest().display().to_string();
    let (ok, out, err) = trellis(&url, &operator, &["contract", "accept", &manifest]).await;
    assert!(ok, "{out}{err}");
    let path = |name: &str| dir.path().join(name).display().to_string();
    for args in [
        vec!["principal", "add", "service", "documents"],
        vec!["principal", "add", "user", "alice"],
    ] {
        let name = args[3];
        let out_file = path(&format!("{name}.creds.json"));
        let mut args = args.clone();
        if name == "documents" {
            args.extend(["--contract", documents::ID]);
        }
        args.extend(["--out", &out_file]);
        let (ok, out, err) = trellis(&url, &operator, &args).await;
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) = trellis(
        &url,
        &operator,
        &["grant", "alice", "documents::read", "documents::write"],
    )
    .await;
    assert!(ok, "{out}{err}");

    let service = documents::Service::connect(
        ConnectOptions::new(url.clone()).credentials_file(path("documents.creds.json")),
    )
    .await
    .expect("the documents service connects");
    let server = service
        .serve(DocumentsService::new(&service), ServeOptions::default())
        .await
        .expect("serves");

    // Up and back down, compared byte for byte (3 MiB + a partial chunk).
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 777u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = path("data.bin");
    std::fs::write(&file, &data).expect("write");
    let alice = dir.path().join("alice.creds.json");
    let input = r#"{"key":"cli.bin","contentType":"application/octet-stream","metadata":{}}"#;
    let (ok, out, err) = trellis(&url, &alice, &upload_args(&manifest, input, &file)).await;
    assert!(ok, "{out}{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).expect("JSON outcome");
    assert_eq!(outcome["status"], "completed", "{outcome}");

    let key = r#"{"key":"cli.bin"}"#;
    let download = |out: String, resume: bool| {
        let (url, alice, manifest) = (url.clone(), alice.clone(), manifest.clone());
        async move {
            let mut args = download_args(&manifest, key, &out);
            if resume {
                args.push("--resume");
            }
            trellis(&url, &alice, &args).await
        }
    };
    let back = path("back.bin");
    let (ok, out, err) = download(back.clone(), false).await;
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["size"], data.len());
    assert!(std::fs::read(&back).expect("read") == data);

    // `--resume` continues a partial `<out>.part` (two chunks held).
    let resumed = path("resumed.bin");
    std::fs::write(format!("{resumed}.part"), &data[..256 * 1024]).expect("partial");
    let (ok, out, err) = download(resumed.clone(), true).await;
    assert!(ok, "{out}{err}");
    assert!(std::fs::read(&resumed).expect("read") == data);

    // Refusals name the problem and exit non-zero.
    let refused = |args: Vec<String>, expected: &'static str| {
        let (url, alice) = (url.clone(), alice.clone());
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, out, err) = trellis(&url, &alice, &args).await;
            assert!(!ok, "{args:?} succeeded: {out}");
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    };
    let up = |operation: &str, input: &str, file: &str| -> Vec<String> {
        [
            "upload",
            "--manifest",
            &manifest,
            "--operation",
            operation,
            "--input",
            input,
            "--file",
            file,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    refused(
        up("Files.Nope", input, &file),
        "has no operation `Files.Nope`",
    )
    .await;
    refused(
        up("Files.Upload", "{not json", &file),
        "--input is not valid JSON",
    )
    .await;
    refused(
        up("Files.Upload", input, &path("missing.bin")),
        "missing.bin",
    )
    .await;
    let down = [
        "download",
        "--manifest",
        &manifest,
        "--rpc",
        "Files.List",
        "--input",
        "{}",
        "--out",
        &back,
    ]
    .map(str::to_owned)
    .to_vec();
    refused(down, "is not a receive transfer surface").await;

    assert!(server.shutdown(Duration::from_secs(5)).await);
}
