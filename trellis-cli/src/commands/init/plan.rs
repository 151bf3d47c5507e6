//! The validated arguments of `trellis authority init`: the deployment's
//! name, where its servers listen and whether they speak TLS.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{bail, ensure};

use crate::cli::AuthorityInitArgs;

/// Most servers `init` writes configurations for.
const MAX_SERVERS: usize = 9;

/// A validated `trellis authority init` request.
#[derive(Debug)]
pub struct Plan {
    /// Deployment name.
    pub deployment: String,
    /// Host every server listens on and is reached at.
    pub host: String,
    /// The servers, in order (`n1`, `n2`, ...).
    pub servers: Vec<Server>,
    /// Whether clients and routes use TLS.
    pub tls: bool,
}

/// One nats-server of the deployment.
#[derive(Debug)]
pub struct Server {
    /// `server_name`, also its config file's stem (`n1`).
    pub name: String,
    /// Client port.
    pub client_port: u16,
    /// Route port (clusters only).
    pub cluster_port: u16,
    /// Monitoring (HTTP) port.
    pub http_port: u16,
}

impl Plan {
    /// Checks the arguments; errors name the flag at fault.
    pub fn new(args: &AuthorityInitArgs) -> anyhow::Result<Plan> {
        check_count(args.servers)?;
        check_deployment(&args.deployment)?;
        check_host(&args.host)?;
        let n = args.servers;
        let mut ports = vec![
            ("--client-port", args.client_port),
            ("--http-port", args.http_port),
        ];
        if n > 1 {
            ports.push(("--cluster-port", args.cluster_port));
        }
        let mut used = BTreeSet::new();
        for (flag, base) in ports {
            ensure!(base != 0, "{flag} 0: servers need fixed ports");
            for i in 0..n {
                let Some(port) = offset(base, i) else {
                    bail!(
                        "{flag} {base}: server n{} would need port {base} + {i}, above 65535",
                        i + 1
                    );
                };
                ensure!(
                    used.insert(port),
                    "{flag} {base}: port {port} is already used by another range \
                     (--client-port, --cluster-port and --http-port each need {n} free ports)"
                );
            }
        }
        let servers = (0..n)
            .map(|i| Server {
                name: format!("n{}", i + 1),
                client_port: offset(args.client_port, i).unwrap_or_default(),
                cluster_port: offset(args.cluster_port, i).unwrap_or_default(),
                http_port: offset(args.http_port, i).unwrap_or_default(),
            })
            .collect();
        Ok(Plan {
            deployment: args.deployment.clone(),
            host: args.host.clone(),
            servers,
            tls: args.tls,
        })
    }

    /// Whether the servers form a cluster.
    pub fn clustered(&self) -> bool {
        self.servers.len() > 1
    }

    /// Replicas of every stream the authority creates.
    pub fn replicas(&self) -> usize {
        if self.clustered() { 3 } else { 1 }
    }

    /// `host:port` (IPv6 hosts in brackets), as `listen` and URLs spell it.
    pub fn address(&self, port: u16) -> String {
        if self.host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// Every server's client URL: `tls://` with TLS, else `nats://`.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls { "tls" } else { "nats" };
        self.servers
            .iter()
            .map(|s| format!("{scheme}://{}", self.address(s.client_port)))
            .collect()
    }
}

/// `base + i`, if it is a port.
fn offset(base: u16, i: usize) -> Option<u16> {
    u16::try_from(i).ok().and_then(|i| base.checked_add(i))
}

fn check_count(n: usize) -> anyhow::Result<()> {
    match n {
        0 => bail!("--servers 0: a deployment needs at least one nats-server"),
        2 => bail!(
            "--servers 2: a JetStream cluster keeps working while a majority of its servers \
             is up, and the majority of 2 is both, so 2 servers tolerate no failure at all; \
             use 1, or 3 or more"
        ),
        n if n > MAX_SERVERS => bail!("--servers {n}: at most {MAX_SERVERS}"),
        _ => Ok(()),
    }
}

/// The authority's rule for scope names (they appear in subjects and
/// resource names).
fn check_deployment(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ensure!(
        valid,
        "--deployment {name:?}: use 1 to 32 lowercase letters, digits and `-`"
    );
    Ok(())
}

fn check_host(host: &str) -> anyhow::Result<()> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        ensure!(
            !ip.is_unspecified(),
            "--host {host}: clients and routes reach the servers at this address, so it \
             must be a real one (edit `listen` in the configs to listen on every interface)"
        );
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    ensure!(
        host.len() <= 253 && host.split('.').all(label_ok),
        "--host {host:?}: not an IP address or DNS name"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn args(servers: usize) -> AuthorityInitArgs {
        AuthorityInitArgs {
            out: PathBuf::from("out"),
            servers,
            tls: false,
            deployment: "main".to_owned(),
            host: "127.0.0.1".to_owned(),
            client_port: 4222,
            cluster_port: 6222,
            http_port: 8222,
        }
    }

    fn error(args: &AuthorityInitArgs) -> String {
        format!("{:#}", Plan::new(args).expect_err("refused"))
    }

    #[test]
    fn servers_count_ports_and_names_are_checked() {
        let plan = Plan::new(&args(3)).expect("valid");
        assert_eq!(plan.replicas(), 3);
        assert_eq!(plan.servers[2].name, "n3");
        assert_eq!(plan.servers[2].cluster_port, 6224);
        assert_eq!(plan.urls()[1], "nats://127.0.0.1:4223");
        assert_eq!(Plan::new(&args(1)).expect("valid").replicas(), 1);
        for n in [0, 2, 10] {
            assert!(error(&args(n)).contains("--servers"));
        }
        let mut a = args(3);
        a.client_port = 65534;
        assert!(error(&a).contains("--client-port"), "{}", error(&a));
        let mut a = args(3);
        a.http_port = 4224;
        assert!(error(&a).contains("already used"), "{}", error(&a));
        let mut a = args(1);
        a.deployment = "Main".to_owned();
        assert!(error(&a).contains("--deployment"));
        for host in ["0.0.0.0", "bad host", "-x.example", ""] {
            let mut a = args(1);
            a.host = host.to_owned();
            assert!(error(&a).contains("--host"), "{host}");
        }
        let mut a = args(1);
        a.host = "::1".to_owned();
        a.tls = true;
        assert_eq!(Plan::new(&a).expect("valid").urls(), ["tls://[::1]:4222"]);
    }
}
