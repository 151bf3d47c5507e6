//! `trellis authority init`: the keys, certificates, nats-server
//! configurations and `authority.toml` of a new deployment.

mod files;
mod keys;
mod plan;
mod readme;
mod server_config;
mod settings_file;
mod tls;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use trellis_runtime::identity::{Credentials, PrincipalKind};

use crate::cli::AuthorityInitArgs;
use crate::outcome::Outcome;
use files::Output;
use keys::{Keys, seed_file};
use plan::Plan;

/// Writes a new deployment into `--out` (created; refused if any file it
/// would write exists) and prints how to start it.
pub fn run(args: &AuthorityInitArgs) -> anyhow::Result<Outcome> {
    let plan = Plan::new(args)?;
    // Checked again once absolute; this one runs before anything exists.
    server_config::config_dir(&args.out)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("--out {}: cannot create", args.out.display()))?;
    // nats-server configs need absolute store and certificate paths.
    let dir = args
        .out
        .canonicalize()
        .with_context(|| format!("--out {}: cannot resolve", args.out.display()))?;
    let conf_dir = server_config::config_dir(&dir)?;

    let stores: Vec<PathBuf> = plan
        .servers
        .iter()
        .map(|s| Path::new("data").join(&s.name))
        .collect();
    let (outputs, readme) = outputs(&plan, conf_dir)?;
    files::refuse_existing(
        &dir,
        outputs
            .iter()
            .map(|o| o.path.as_path())
            .chain(stores.iter().map(PathBuf::as_path)),
    )?;
    files::write_all(&dir, &outputs)?;
    print!("{readme}");
    Ok(Outcome::Ok)
}

/// Every file of the deployment, and the summary (also `README.txt`).
fn outputs(plan: &Plan, dir: &str) -> anyhow::Result<(Vec<Output>, String)> {
    let keys = Keys::generate();
    let operator = Credentials::generate(PrincipalKind::Operator, "operator", None, None)?;
    let mut out = vec![
        Output::secret("keys/issuer.nk", seed_file(&keys.issuer)?),
        Output::secret("keys/authority.nk", seed_file(&keys.authority)?),
        Output::secret("keys/system.nk", seed_file(&keys.system)?),
        Output::secret("operator.creds.json", operator.to_json()),
    ];
    for (i, server) in plan.servers.iter().enumerate() {
        let path = format!("nats/{}.conf", server.name);
        out.push(Output::public(
            path,
            server_config::render(plan, &keys, dir, i),
        ));
    }
    let mut expires = None;
    if plan.tls {
        let certs = tls::generate(&plan.deployment, &plan.hosts())?;
        out.extend([
            Output::public("tls/ca.pem", certs.ca),
            Output::secret("tls/ca-key.pem", certs.ca_key),
            Output::public("tls/server.pem", certs.server),
            Output::secret("tls/server-key.pem", certs.server_key),
            Output::public("tls/client.pem", certs.client),
            Output::secret("tls/client-key.pem", certs.client_key),
        ]);
        expires = Some(certs.expires);
    }
    let settings = settings_file::render(plan, &operator.public_key());
    out.push(Output::public("authority.toml", settings));
    let readme = readme::render(plan, dir, expires.as_deref());
    out.push(Output::public("README.txt", readme.clone()));
    Ok((out, readme))
}
