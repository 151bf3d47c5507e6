//! The indexer service: `indexer-example [nats url] [deployment]`.

use std::sync::Arc;

use indexer_example::indexer;
use trellis::ConnectOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let deployment = args.next().unwrap_or_else(|| "dev".into());
    let service =
        Arc::new(indexer::Service::connect(ConnectOptions::new(url).deployment(deployment)).await?);
    let task = indexer_example::run(service).await?;
    tracing::info!("indexing documents; ctrl-c stops");
    tokio::signal::ctrl_c().await?;
    task.shutdown().await;
    Ok(())
}
