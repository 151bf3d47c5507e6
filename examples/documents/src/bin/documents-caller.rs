//! A caller of the documents service: uploads a file with a progress bar,
//! lists, heads, downloads it back, checks the digest, and deletes it.
//!
//! ```text
//! cargo run -p documents-example --bin documents-caller -- [FILE]
//! ```
//!
//! Without FILE it uploads 64 MiB of generated data.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use documents_example::documents::{self, FileKey, ListRequest, UploadInput};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;
use trellis::{Body, ConnectOptions, Outcome};

async fn sha256_of(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        hasher.update(&buffer[..n]);
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("TRELLIS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let deployment = std::env::var("TRELLIS_DEPLOYMENT").unwrap_or_else(|_| "dev".to_owned());
    let scratch = tempfile::tempdir()?;
    let source = match std::env::args_os().nth(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            let path = scratch.path().join("sample.bin");
            let mut data = vec![0u8; 64 << 20];
            for (i, byte) in data.iter_mut().enumerate() {
                *byte = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
            }
            tokio::fs::write(&path, &data).await?;
            path
        }
    };
    let client = documents::Client::connect(
        ConnectOptions::new(&url)
            .deployment(&deployment)
            // Without auth (`trellis dev --no-auth`) the principal and its
            // capabilities are asserted; with auth the credential file's
            // key is verified and its granted capabilities apply.
            .principal("documents-caller")
            .capabilities(["documents::read", "documents::write"])
            .from_env(),
    )
    .await
    .with_context(|| format!("connecting to {url} ({deployment})"))?;

    let key = format!(
        "demo/{}",
        source
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
    );
    let body = Body::file(&source)
        .await
        .with_context(|| format!("opening {}", source.display()))?;
    let size = body.size().unwrap_or(0);
    let progress = bar(size, "upload");
    let started = Instant::now();
    let shown = progress.clone();
    let op = client
        .operation
        .files
        .upload
        .input(UploadInput {
            key: key.clone(),
            content_type: "application/octet-stream".into(),
            metadata: [("uploadedBy".to_owned(), "documents-caller".to_owned())].into(),
        })
        .transfer(body)
        .on_progress(move |bytes, _| shown.set_position(bytes))
        .start()
        .await
        .context("uploading")?;
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "uploaded {key}: {size} bytes in {elapsed:.2} s ({:.0} MiB/s), operation {}",
        size as f64 / (1 << 20) as f64 / elapsed.max(1e-9),
        op.id()
    );
    let file = match op.wait().await? {
        Outcome::Completed(output) => output.file,
        other => bail!("upload ended {other:?}"),
    };

    let page = client
        .rpc
        .files
        .list(&ListRequest {
            prefix: "demo/".into(),
            offset: 0,
            limit: 10,
        })
        .await??;
    println!("list demo/: {} of {} files", page.entries.len(), page.count);
    for entry in &page.entries {
        println!("  {} ({} bytes)", entry.key, entry.size);
    }
    let head = client
        .rpc
        .files
        .head(&FileKey { key: key.clone() })
        .await??;
    println!("head {key}: {} bytes, {}", head.size, head.digest);

    let download = client
        .rpc
        .files
        .download(&FileKey { key: key.clone() })
        .await??;
    let target = scratch.path().join("downloaded.bin");
    let started = Instant::now();
    client
        .download(&download.grant)
        .to_file(&target)
        .await
        .context("downloading")?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "downloaded {key} in {elapsed:.2} s ({:.0} MiB/s), verified by size and digest",
        head.size as f64 / (1 << 20) as f64 / elapsed.max(1e-9)
    );
    if sha256_of(&source).await? != sha256_of(&target).await? {
        bail!("the downloaded file differs from the uploaded one");
    }
    println!("local SHA-256 of the downloaded file matches the original");
    if file.digest != head.digest {
        bail!("the stored digest changed");
    }

    let deleted = client
        .rpc
        .files
        .delete(&FileKey { key: key.clone() })
        .await??;
    println!("deleted {}", deleted.key);
    match client.rpc.files.head(&FileKey { key }).await? {
        Err(documents::FilesError::NotFound { .. }) => println!("head after delete: not found"),
        other => bail!("expected not found after delete, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
