//! `trellis principal add|list`, `trellis grant`, `trellis revoke`.

use anyhow::Context as _;
use trellis_runtime::AuthorityClient;
use trellis_runtime::identity::PrincipalKind;

use super::connection::client;
use crate::cli::{AddPrincipalArgs, ConnArgs, GrantArgs, RevokeArgs};
use crate::outcome::Outcome;

/// `trellis principal add`.
pub async fn add(args: AddPrincipalArgs) -> anyhow::Result<Outcome> {
    let kind: PrincipalKind = args.kind.parse()?;
    let creds = client(&args.conn)
        .await?
        .enroll(
            kind,
            &args.id,
            args.user.as_deref(),
            args.contract.as_deref(),
        )
        .await?;
    creds
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "registered {} `{}` with key {}",
        kind.as_str(),
        args.id,
        creds.public_key()
    );
    println!("credentials: {} (secret; mode 0600)", args.out.display());
    Ok(Outcome::Ok)
}

/// `trellis grant`.
pub async fn grant(args: GrantArgs) -> anyhow::Result<Outcome> {
    let caps: Vec<&str> = args.capabilities.iter().map(String::as_str).collect();
    let records = client(&args.conn)
        .await?
        .grant(&args.principal, &caps, args.remove)
        .await?;
    for r in records {
        println!(
            "{} `{}` ({}): {}",
            r.kind.as_str(),
            r.id,
            r.public_key,
            if r.capabilities.is_empty() {
                "no capabilities".to_owned()
            } else {
                r.capabilities
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    Ok(Outcome::Ok)
}

/// `trellis revoke`.
pub async fn revoke(args: RevokeArgs) -> anyhow::Result<Outcome> {
    let records = client(&args.conn).await?.revoke(&args.principal).await?;
    for r in records {
        println!("revoked {} `{}` ({})", r.kind.as_str(), r.id, r.public_key);
    }
    Ok(Outcome::Ok)
}

/// `trellis principal list`.
pub async fn list(conn: ConnArgs) -> anyhow::Result<Outcome> {
    print_principals(&client(&conn).await?).await?;
    Ok(Outcome::Ok)
}

/// Prints every principal with its capabilities and issued permissions.
pub async fn print_principals(client: &AuthorityClient) -> anyhow::Result<()> {
    let reply = client.principals().await?;
    if !reply.auth {
        println!("  authentication: off (every connection has full access)");
        return Ok(());
    }
    println!("  principals ({}):", reply.principals.len());
    for p in &reply.principals {
        let r = &p.record;
        let mut about = vec![r.kind.as_str().to_owned()];
        if let Some(c) = &r.contract {
            about.push(format!("contract {c}"));
        }
        if let Some(u) = &r.user {
            about.push(format!("user {u}"));
        }
        if r.revoked {
            about.push("REVOKED".to_owned());
        }
        println!("    {} ({}) {}", r.id, about.join(", "), r.public_key);
        if !r.capabilities.is_empty() {
            let caps: Vec<&str> = r.capabilities.iter().map(String::as_str).collect();
            println!("      capabilities: {}", caps.join(", "));
        }
        if let Some(perms) = &p.permissions {
            for (what, subjects) in [("publish", &perms.publish), ("subscribe", &perms.subscribe)] {
                println!("      {what} ({}):", subjects.len());
                for s in subjects {
                    println!("        {s}");
                }
            }
        }
    }
    Ok(())
}
