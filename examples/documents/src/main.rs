//! The documents service, run against a deployment: serves the Files API
//! and the upload operation until Ctrl-C, then drains in-flight work.
//!
//! ```text
//! trellis dev &                                                   # local stack
//! trellis contract accept examples/documents/contracts/documents@v1.json
//! cargo run -p documents-example                                  # this service
//! cargo run -p documents-example --bin documents-caller -- FILE   # a caller
//! ```

use std::time::Duration;

use anyhow::Context as _;
use documents_example::{DocumentsService, documents};
use trellis::{ConnectOptions, ServeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("TRELLIS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let deployment = std::env::var("TRELLIS_DEPLOYMENT").unwrap_or_else(|_| "dev".to_owned());
    let service = documents::Service::connect(
        ConnectOptions::new(&url)
            .deployment(&deployment)
            .from_env()
            .ready_deadline(Duration::from_secs(20)),
    )
    .await
    .with_context(|| format!("connecting the documents service to {url} ({deployment})"))?;
    let handlers = DocumentsService::new(&service);
    let server = service
        .serve(handlers, ServeOptions::default())
        .await
        .context("serving")?;
    println!("documents@v1 serving ({})", documents::DIGEST);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    let drained = server.shutdown(Duration::from_secs(30)).await;
    println!("documents@v1 stopped (drained: {drained})");
    Ok(())
}
