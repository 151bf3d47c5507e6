//! Reaching the deployment authority: the async runtime a command runs on
//! and the authority client for `--url`, `--credentials` and `--tls-*`.

use std::future::Future;

use anyhow::Context as _;
use trellis_runtime::AuthorityClient;

use crate::cli::ConnArgs;
use crate::outcome::Outcome;

/// Runs an async command on a fresh runtime.
pub fn block_on(f: impl Future<Output = anyhow::Result<Outcome>>) -> anyhow::Result<Outcome> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

pub(crate) async fn client(conn: &ConnArgs) -> anyhow::Result<AuthorityClient> {
    let options = match &conn.credentials {
        Some(path) => trellis_runtime::identity::Credentials::load(path)?.nats_options(),
        None => async_nats::ConnectOptions::new(),
    };
    let mut tls = trellis_runtime::Tls::new();
    if let Some(ca) = &conn.tls_ca {
        tls = tls.ca_file(ca);
    }
    if let (Some(cert), Some(key)) = (&conn.tls_cert, &conn.tls_key) {
        tls = tls.client_certificate(cert, key);
    }
    tls.check()?;
    let nats = tls
        .apply(options)
        .connect(trellis_runtime::split_servers(&conn.url))
        .await
        .with_context(|| {
            format!(
                "connecting to NATS at {} (is `trellis dev` running? with auth, pass \
                 --credentials or set TRELLIS_CREDENTIALS to an operator credential file)",
                conn.url
            )
        })?;
    Ok(AuthorityClient::new(nats, conn.deployment.clone()))
}
