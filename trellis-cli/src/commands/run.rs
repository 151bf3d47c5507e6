//! `trellis authority run`: the deployment authority as a long-running
//! process against an existing NATS deployment.

use anyhow::Context as _;
use tracing::info;
use trellis_authority::settings::LogFormat;
use trellis_authority::{Authority, Settings};
use trellis_runtime::identity::PrincipalKind;
use trellis_runtime::protocol::RegisterRequest;

use crate::cli::AuthorityRunArgs;
use crate::outcome::Outcome;

/// Loads the settings, connects, starts the authority, registers the
/// configured operators, and serves until SIGTERM or Ctrl-C; then drains.
pub fn run(args: &AuthorityRunArgs) -> anyhow::Result<Outcome> {
    let settings = Settings::load(&args.config)
        .with_context(|| format!("{}: unusable settings", args.config.display()))?;
    init_logging(settings.log_format);
    super::connection::block_on(serve(settings))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Another subscriber already set (never in this binary) keeps its own.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn serve(settings: Settings) -> anyhow::Result<Outcome> {
    let (client, system) = settings.connect().await?;
    let config = settings.authority_config(system)?;
    let mut authority = Authority::start(client, config)
        .await
        .context("starting the deployment authority")?;
    if let Some(addr) = settings.http {
        authority
            .serve_http(addr)
            .await
            .with_context(|| format!("setting `http`: cannot listen on {addr}"))?;
    }
    for operator in &settings.operators {
        authority
            .register_principal(RegisterRequest {
                public_key: operator.public_key.clone(),
                kind: PrincipalKind::Operator,
                id: operator.id.clone(),
                user: None,
                contract: None,
            })
            .await
            .with_context(|| format!("registering operator `{}`", operator.id))?;
    }
    info!(
        deployment = %settings.deployment,
        servers = %settings.servers.join(","),
        replicas = settings.replicas,
        auth = settings.authenticates(),
        pid = std::process::id(),
        "trellis authority running"
    );
    let signal = stop_signal().await?;
    info!(
        signal,
        grace = ?settings.drain_timeout,
        "draining: no new requests; finishing in-flight work"
    );
    let finished = authority.drain(settings.drain_timeout).await;
    info!(finished, "trellis authority stopped");
    Ok(Outcome::Ok)
}

/// Waits for SIGTERM or SIGINT and names it.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
