//! `trellis dev`: a local stack in one command.

use anyhow::Context as _;
use trellis_runtime::authority::{Authority, AuthorityConfig};
use trellis_testing::NatsServer;

use crate::cli::DevArgs;
use crate::outcome::Outcome;

/// Starts nats-server (JetStream store under `--dir`) and the authority,
/// prints how to connect, and runs until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<Outcome> {
    let server = NatsServer::start_persistent(&args.dir, args.port)
        .await
        .context("starting nats-server")?;
    let client = server
        .client()
        .await
        .context("connecting to the local nats-server")?;
    let authority = Authority::start(client, AuthorityConfig::local(&args.deployment))
        .await
        .context("starting the deployment authority")?;
    println!("trellis dev: local stack running");
    println!("  NATS:        {}", server.url());
    println!("  deployment:  {} (profile local, R1)", args.deployment);
    println!("  store:       {}", server.store_dir().display());
    println!(
        "  next:        trellis contract accept contracts/<id>.json --url {}",
        server.url()
    );
    println!(
        "  services:    ConnectOptions::new(\"{}\").deployment(\"{}\")",
        server.url(),
        args.deployment
    );
    println!("Ctrl-C stops it; data stays in {}", args.dir.display());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    authority.shutdown().await;
    drop(server);
    println!("trellis dev: stopped");
    Ok(Outcome::Ok)
}
