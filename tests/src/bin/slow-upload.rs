//! A caller process for fault tests: starts a documents upload of a slow
//! generated body, prints `started <operation id>`, and keeps sending until
//! it is killed.
//!
//! `slow-upload <nats url> <key> <MiB> <ms per MiB>`

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use documents_example::documents::{self, UploadInput};
use trellis::{Body, ConnectOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, mib, pause] = args.as_slice() else {
        anyhow::bail!("usage: slow-upload <nats url> <key> <MiB> <ms per MiB>");
    };
    let mib: u64 = mib.parse().context("MiB")?;
    let pause = Duration::from_millis(pause.parse().context("ms per MiB")?);
    let client = documents::Client::connect(
        ConnectOptions::new(url)
            .deployment("test")
            .principal("slow-uploader")
            .credentials_from_env(),
    )
    .await?;
    let chunks = futures::stream::unfold(0u64, move |i| async move {
        if i == mib {
            return None;
        }
        tokio::time::sleep(pause).await;
        Some((Ok(bytes::Bytes::from(vec![i as u8; 1 << 20])), i + 1))
    });
    let op = client
        .operation
        .files
        .upload
        .input(UploadInput {
            key: key.clone(),
            content_type: "application/octet-stream".into(),
            metadata: Default::default(),
        })
        .transfer(Body::from_stream(chunks).with_size(mib << 20))
        .on_started(|id| {
            println!("started {id}");
            let _ = std::io::stdout().flush();
        })
        .start()
        .await?;
    println!("finished {}", op.id());
    Ok(())
}
