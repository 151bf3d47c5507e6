//! `trellis dev`: a local stack in one command.

use std::path::Path;

use anyhow::Context as _;
use trellis_authority::callout::AuthSettings;
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::identity::{Credentials, PrincipalKind, write_secret};
use trellis_runtime::protocol::RegisterRequest;
use trellis_testing::{NatsServer, ServerAuth};

use crate::cli::DevArgs;
use crate::outcome::Outcome;

/// The server's auth keys, kept beside its store so restarts keep them.
fn load_or_create_keys(path: &Path) -> anyhow::Result<ServerAuth> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        let field = |name: &str| {
            v[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{} has no `{name}`", path.display()))
        };
        return Ok(ServerAuth {
            issuer_seed: field("issuerSeed")?,
            admin_seed: field("adminSeed")?,
            system_seed: field("systemSeed")?,
            account: field("account")?,
        });
    }
    let keys = ServerAuth::generate()?;
    let text = serde_json::json!({
        "issuerSeed": keys.issuer_seed,
        "adminSeed": keys.admin_seed,
        "systemSeed": keys.system_seed,
        "account": keys.account,
    });
    write_secret(path, &format!("{text:#}\n"))?;
    Ok(keys)
}

/// Starts nats-server (JetStream store under `--dir`, auth callout on
/// unless `--no-auth`) and the authority, writes the operator's credential
/// file, prints how to connect, and runs until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let keys = if args.no_auth {
        None
    } else {
        Some(load_or_create_keys(&args.dir.join("auth-keys.json"))?)
    };
    let server = NatsServer::start_persistent_with(&args.dir, args.port, keys.clone())
        .await
        .context("starting nats-server")?;
    let client = server
        .client()
        .await
        .context("connecting to the local nats-server")?;
    let mut config = AuthorityConfig::local(&args.deployment);
    if let Some(keys) = &keys {
        let system = keys
            .system_options()
            .connect(server.url())
            .await
            .context("connecting to the system account")?;
        config = config
            .auth(AuthSettings::new(&keys.issuer_seed, &keys.account)?.system_connection(system));
    }
    let authority = Authority::start(client, config)
        .await
        .context("starting the deployment authority")?;
    let operator_file = args.dir.join("operator.creds.json");
    if keys.is_some() {
        let operator = match Credentials::load(&operator_file) {
            Ok(c) => c,
            Err(_) => {
                let c = Credentials::generate(PrincipalKind::Operator, "operator", None, None)?;
                c.save(&operator_file)?;
                c
            }
        };
        authority
            .register_principal(RegisterRequest {
                public_key: operator.public_key(),
                kind: PrincipalKind::Operator,
                id: operator.id.clone(),
                user: None,
                contract: None,
            })
            .await
            .context("registering the operator")?;
    }
    println!("trellis dev: local stack running");
    println!("  NATS:        {}", server.url());
    println!("  deployment:  {} (profile local, R1)", args.deployment);
    println!("  store:       {}", server.store_dir().display());
    if keys.is_some() {
        println!("  auth:        on (auth callout; unknown keys are refused)");
        println!(
            "  operator:    export TRELLIS_CREDENTIALS={}",
            operator_file.display()
        );
        println!(
            "  principals:  trellis principal add service <name> --contract <id> --out <file>"
        );
    } else {
        println!("  auth:        off (--no-auth: every connection has full access)");
    }
    println!(
        "  next:        trellis contract accept contracts/<id>.json --url {}",
        server.url()
    );
    println!(
        "  services:    ConnectOptions::new(\"{}\").deployment(\"{}\"){}",
        server.url(),
        args.deployment,
        if keys.is_some() {
            ".credentials_file(<file>)"
        } else {
            ""
        }
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
