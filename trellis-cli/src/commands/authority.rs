//! Commands that talk to the deployment authority over NATS.

use trellis_runtime::ClientError;
use trellis_runtime::protocol::{AuthorityError, Change, Phase, Plan, ResourceStatus};

use super::connection::client;
use crate::cli::{ConnArgs, ProposeArgs, PurgeArgs, RetireArgs};
use crate::outcome::Outcome;

/// Prints a plan, one line per change: resources first, then surfaces
/// (with the accepted contracts whose `uses` select them).
pub fn print_plan(plan: &Plan) {
    print!("{}", plan_text(plan));
}

/// The text [`print_plan`] prints.
fn plan_text(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let from = plan
        .previous_digest
        .as_deref()
        .unwrap_or("(nothing accepted)");
    let _ = writeln!(out, "plan for {}: {from} -> {}", plan.id, plan.digest);
    if plan.items.is_empty() {
        let _ = writeln!(out, "  no resource changes");
    }
    for item in &plan.items {
        let (mark, what) = change(&item.change, "detach");
        let _ = writeln!(
            out,
            "  {mark} {} {:<16} {what}  [{}]  ({})",
            item.kind.as_str(),
            item.alias,
            verdict(item.is_dangerous()),
            item.physical
        );
        for danger in &item.dangers {
            let _ = writeln!(out, "      ! {danger}");
        }
    }
    if plan.previous_digest.is_some() && plan.surfaces.is_empty() {
        let _ = writeln!(out, "  no surface changes");
    }
    for surface in &plan.surfaces {
        let (mark, what) = change(&surface.change, "remove");
        let _ = writeln!(
            out,
            "  {mark} {} {:<16} {what}  [{}]",
            surface.kind.as_str(),
            surface.name,
            verdict(surface.is_dangerous())
        );
        for danger in &surface.dangers {
            let _ = writeln!(out, "      ! {danger}");
        }
        for d in &surface.dependents {
            let _ = writeln!(
                out,
                "      used by {} (uses `{}`, {})",
                d.contract, d.alias, d.selects
            );
        }
    }
    out
}

fn change(change: &Change, removed: &str) -> (&'static str, String) {
    match change {
        Change::Added => ("+", "add".to_owned()),
        Change::Removed => ("-", removed.to_owned()),
        Change::Changed { fields } => ("~", fields.join(", ")),
    }
}

fn verdict(dangerous: bool) -> &'static str {
    if dangerous { "DANGEROUS" } else { "safe" }
}

fn refused(e: ClientError) -> anyhow::Result<Outcome> {
    match e {
        ClientError::Refused(AuthorityError::Dangerous { plan }) => {
            print_plan(&plan);
            eprintln!(
                "refused: the plan has dangerous changes; re-run with --allow-dangerous to accept them"
            );
            Ok(Outcome::Invalid)
        }
        ClientError::Refused(AuthorityError::InvalidManifest { problems }) => {
            for p in problems {
                eprintln!("invalid manifest: {p}");
            }
            Ok(Outcome::Invalid)
        }
        other => Err(other.into()),
    }
}

/// `trellis contract plan`.
pub async fn plan(args: ProposeArgs) -> anyhow::Result<Outcome> {
    let text = super::read_text(&args.file)?;
    match client(&args.conn).await?.plan(&text).await {
        Ok(plan) => {
            print_plan(&plan);
            if plan.is_dangerous() {
                println!("accepting needs --allow-dangerous");
            }
            Ok(Outcome::Ok)
        }
        Err(e) => refused(e),
    }
}

/// `trellis contract accept`.
pub async fn accept(args: ProposeArgs) -> anyhow::Result<Outcome> {
    let text = super::read_text(&args.file)?;
    match client(&args.conn)
        .await?
        .accept(&text, args.allow_dangerous)
        .await
    {
        Ok(reply) => {
            print_plan(&reply.plan);
            println!(
                "accepted {} at generation {}; reconciling (see `trellis status`)",
                reply.plan.id, reply.generation
            );
            Ok(Outcome::Ok)
        }
        Err(e) => refused(e),
    }
}

/// `trellis status`.
pub async fn status(conn: ConnArgs) -> anyhow::Result<Outcome> {
    let authority = client(&conn).await?;
    let report = authority.status_with_instances().await?;
    println!(
        "deployment {} (profile {}, R{})",
        report.deployment, report.profile, report.replicas
    );
    if report.contracts.is_empty() {
        println!("  no accepted contracts");
    }
    for c in &report.contracts {
        let phase = match &c.status {
            Some(s) if s.digest == c.digest && s.phase == Phase::Ready => "ready",
            Some(_) | None => "pending",
        };
        let running = |digest: &str| {
            c.live
                .iter()
                .find(|l| l.digest == digest)
                .map_or(0, |l| l.instances)
        };
        println!(
            "  {} {} (generation {}): {phase}, {} instance(s) running",
            c.id,
            c.digest,
            c.generation,
            running(&c.digest)
        );
        for live in c.live.iter().filter(|l| !l.accepted) {
            println!(
                "    also live (rolling deploy): {}, {} instance(s) running, until {} ms since the epoch; `trellis contract retire {} {}` ends it",
                live.digest,
                live.instances,
                live.expires_ms.unwrap_or_default(),
                c.id,
                live.digest
            );
        }
        let Some(contract) = &c.status else { continue };
        for r in &contract.resources {
            let status = match &r.status {
                ResourceStatus::Ready => "ready".to_owned(),
                ResourceStatus::Pending => "pending".to_owned(),
                ResourceStatus::Failed { reason } => {
                    format!("failed (attempt {}): {reason}", r.attempts)
                }
            };
            let limits = match r.kind {
                trellis_runtime::protocol::ResourceKind::Kv => {
                    contract.bindings.kv.get(&r.alias).map(|b| {
                        format!(
                            "history {}, ttl {} ms, max value {}",
                            b.history,
                            b.ttl_ms,
                            b.max_value_bytes
                                .map_or("unlimited".to_owned(), |n| format!("{n} B"))
                        )
                    })
                }
                trellis_runtime::protocol::ResourceKind::Store => {
                    contract.bindings.store.get(&r.alias).map(|b| {
                        format!(
                            "ttl {} ms, max total {}",
                            b.ttl_ms,
                            b.max_total_bytes
                                .map_or("unlimited".to_owned(), |n| format!("{n} B"))
                        )
                    })
                }
                trellis_runtime::protocol::ResourceKind::Ledger => contract
                    .bindings
                    .ledger
                    .as_ref()
                    .map(|b| format!("operations, grants and rejected events, ttl {} ms", b.ttl_ms)),
                trellis_runtime::protocol::ResourceKind::Events => contract
                    .bindings
                    .events
                    .as_ref()
                    .map(|b| format!("subjects {}", b.subjects.join(", "))),
                trellis_runtime::protocol::ResourceKind::Consumer => {
                    r.alias.split_once('/').and_then(|(group, source)| {
                        contract
                            .bindings
                            .consumers
                            .get(group)
                            .and_then(|list| list.iter().find(|b| b.source == source))
                            .map(|b| {
                                format!(
                                    "on {}, events {}, replay {}, ack wait {} ms, max deliver {}, max ack pending {}",
                                    b.stream,
                                    b.events
                                        .iter()
                                        .map(|e| e.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    b.replay,
                                    b.ack_wait_ms,
                                    b.max_deliver,
                                    b.max_ack_pending
                                )
                            })
                    })
                }
            };
            println!(
                "    {} {:<16} {status}{}  -> {}",
                r.kind.as_str(),
                r.alias,
                if r.required { "" } else { " (optional)" },
                r.physical
            );
            if let Some(limits) = limits {
                println!("      installed: {limits}");
            }
        }
    }
    if !report.orphans.is_empty() {
        println!("  orphaned (detached, data retained; `trellis purge <physical>` deletes):");
        for o in &report.orphans {
            println!(
                "    {} {} (was {} `{}`)",
                o.kind.as_str(),
                o.physical,
                o.contract,
                o.alias
            );
        }
    }
    super::principals::print_principals(&authority).await?;
    Ok(Outcome::Ok)
}

/// `trellis contract retire`.
pub async fn retire(args: RetireArgs) -> anyhow::Result<Outcome> {
    let live = client(&args.conn)
        .await?
        .retire(&args.id, &args.digest)
        .await?;
    println!("retired {} {}", args.id, args.digest);
    for l in live {
        let what = if l.accepted { "accepted" } else { "still live" };
        println!("  {what}: {}", l.digest);
    }
    Ok(Outcome::Ok)
}

/// `trellis purge`.
pub async fn purge(args: PurgeArgs) -> anyhow::Result<Outcome> {
    let orphan = client(&args.conn).await?.purge(&args.physical).await?;
    println!(
        "purged {} {} (was {} `{}`)",
        orphan.kind.as_str(),
        orphan.physical,
        orphan.contract,
        orphan.alias
    );
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_runtime::protocol::{
        Dependent, PlanItem, ResourceKind, SurfaceChange, SurfaceKind,
    };

    #[test]
    fn plans_show_resources_then_surfaces_with_their_dependents() {
        let plan = Plan {
            id: "catalog@v1".into(),
            digest: "new".into(),
            previous_digest: Some("old".into()),
            items: vec![PlanItem {
                kind: ResourceKind::Kv,
                alias: "items".into(),
                physical: "phys".into(),
                change: Change::Changed {
                    fields: vec!["history 4 -> 8".into()],
                },
                dangers: Vec::new(),
            }],
            surfaces: vec![
                SurfaceChange {
                    kind: SurfaceKind::Rpc,
                    name: "Catalog.Get".into(),
                    change: Change::Removed,
                    dangers: vec!["rpc `Catalog.Get` is removed (or renamed)".into()],
                    dependents: vec![Dependent {
                        contract: "shelf@v1".into(),
                        alias: "catalog".into(),
                        selects: "rpc.call".into(),
                    }],
                },
                SurfaceChange {
                    kind: SurfaceKind::Event,
                    name: "Catalog.Removed".into(),
                    change: Change::Added,
                    dangers: Vec::new(),
                    dependents: Vec::new(),
                },
            ],
        };
        let text = plan_text(&plan);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "plan for catalog@v1: old -> new");
        assert!(lines[1].starts_with("  ~ kv items") && lines[1].ends_with("[safe]  (phys)"));
        assert!(
            lines[2].starts_with("  - rpc Catalog.Get")
                && lines[2].ends_with("remove  [DANGEROUS]")
        );
        assert_eq!(
            lines[3],
            "      ! rpc `Catalog.Get` is removed (or renamed)"
        );
        assert_eq!(
            lines[4],
            "      used by shelf@v1 (uses `catalog`, rpc.call)"
        );
        assert!(
            lines[5].starts_with("  + event Catalog.Removed") && lines[5].ends_with("add  [safe]")
        );
        assert_eq!(lines.len(), 6);
    }
}
