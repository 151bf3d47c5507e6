//! The indexer service. Reads `TRELLIS_URL` (default
//! `nats://127.0.0.1:4222`), `TRELLIS_DEPLOYMENT` (default `dev`),
//! `TRELLIS_CREDENTIALS` and `TRELLIS_TLS_CA` (optional);
//! indexes created documents until Ctrl-C.

use std::io::Write as _;
use std::sync::Arc;

use indexer_example::indexer;
use trellis::ConnectOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let url = std::env::var("TRELLIS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let deployment = std::env::var("TRELLIS_DEPLOYMENT").unwrap_or_else(|_| "dev".to_owned());
    let service = Arc::new(
        indexer::Service::connect(ConnectOptions::new(url).deployment(deployment).from_env())
            .await?,
    );
    let task = indexer_example::run(service, |entry| {
        println!(
            "indexer@v1 indexed `{}` ({} bytes, {})",
            entry.key, entry.size, entry.digest
        );
        let _ = std::io::stdout().flush();
    })
    .await?;
    println!("indexer@v1 indexing ({})", indexer::DIGEST);
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    task.shutdown().await;
    println!("indexer@v1 stopped");
    Ok(())
}
