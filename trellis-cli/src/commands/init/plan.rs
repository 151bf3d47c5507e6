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
    /// The servers, in order (`n1`, `n2`, ...).
    pub servers: Vec<Server>,
    /// Whether clients and routes use TLS.
    pub tls: bool,
    /// JetStream `max_file_store` of every server, as nats-server reads it.
    pub max_file_store: Option<String>,
}

/// One nats-server of the deployment.
#[derive(Debug)]
pub struct Server {
    /// `server_name`, also its config file's stem (`n1`).
    pub name: String,
    /// Host it listens on and is reached at.
    pub host: String,
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
        let n = args.servers;
        let hosts: Vec<String> = match args.host.as_slice() {
            [one] => vec![one.clone(); n],
            many if many.len() == n => many.to_vec(),
            many => bail!(
                "--host: {} hosts for {n} servers; give one for all or one per server",
                many.len()
            ),
        };
        for host in &hosts {
            check_host(host)?;
        }
        // A server's ports: the base plus the number of earlier servers on
        // the same host.
        let slot = |i: usize| hosts[..i].iter().filter(|h| **h == hosts[i]).count();
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
            for (i, host) in hosts.iter().enumerate() {
                let Some(port) = offset(base, slot(i)) else {
                    bail!(
                        "{flag} {base}: server n{} would need port {base} + {}, above 65535",
                        i + 1,
                        slot(i)
                    );
                };
                ensure!(
                    used.insert((host.clone(), port)),
                    "{flag} {base}: port {port} of {host} is already used by another range \
                     (--client-port, --cluster-port and --http-port each need a free port \
                     per server on a host)"
                );
            }
        }
        let servers = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| Server {
                name: format!("n{}", i + 1),
                host: host.clone(),
                client_port: offset(args.client_port, slot(i)).unwrap_or_default(),
                cluster_port: offset(args.cluster_port, slot(i)).unwrap_or_default(),
                http_port: offset(args.http_port, slot(i)).unwrap_or_default(),
            })
            .collect();
        Ok(Plan {
            deployment: args.deployment.clone(),
            servers,
            tls: args.tls,
            max_file_store: args.max_file_store.as_deref().map(check_size).transpose()?,
        })
    }

    /// Every distinct host, in server order (the certificate names them).
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for s in &self.servers {
            if !hosts.contains(&s.host) {
                hosts.push(s.host.clone());
            }
        }
        hosts
    }

    /// Whether the servers form a cluster.
    pub fn clustered(&self) -> bool {
        self.servers.len() > 1
    }

    /// Replicas of every stream the authority creates.
    pub fn replicas(&self) -> usize {
        if self.clustered() { 3 } else { 1 }
    }

    /// Every server's client URL: `tls://` with TLS, else `nats://`.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls { "tls" } else { "nats" };
        self.servers
            .iter()
            .map(|s| format!("{scheme}://{}", s.address(s.client_port)))
            .collect()
    }
}

impl Server {
    /// `host:port` (IPv6 hosts in brackets), as `listen` and URLs spell it.
    pub fn address(&self, port: u16) -> String {
        if self.host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
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

/// A storage size as nats-server reads it: digits and an optional unit
/// (`K`, `M`, `G`, `T`, each optionally followed by `B`; any case).
fn check_size(size: &str) -> anyhow::Result<String> {
    let digits = size.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = size.split_at(digits);
    let unit_ok = matches!(
        unit.to_ascii_uppercase().as_str(),
        "" | "K" | "KB" | "M" | "MB" | "G" | "GB" | "T" | "TB"
    );
    ensure!(
        !number.is_empty() && number.parse::<u64>().is_ok_and(|n| n > 0) && unit_ok,
        "--max-file-store {size:?}: not a size (a positive number with an optional unit: \
         K, M, G or T, e.g. 200GB)"
    );
    Ok(size.to_owned())
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
            host: vec!["127.0.0.1".to_owned()],
            client_port: 4222,
            cluster_port: 6222,
            http_port: 8222,
            max_file_store: None,
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
            a.host = vec![host.to_owned()];
            assert!(error(&a).contains("--host"), "{host}");
        }
        let mut a = args(1);
        a.host = vec!["::1".to_owned()];
        a.tls = true;
        assert_eq!(Plan::new(&a).expect("valid").urls(), ["tls://[::1]:4222"]);
        for size in ["", "0", "12PB", "GB", "-5G", "1.5G"] {
            let mut a = args(1);
            a.max_file_store = Some(size.to_owned());
            assert!(error(&a).contains("--max-file-store"), "{size}");
        }
        let mut a = args(1);
        a.max_file_store = Some("200gb".to_owned());
        let plan = Plan::new(&a).expect("valid");
        assert_eq!(plan.max_file_store.as_deref(), Some("200gb"));
    }

    #[test]
    fn one_host_per_server_keeps_the_base_ports() {
        let mut a = args(3);
        a.host = ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
            .map(str::to_owned)
            .to_vec();
        let plan = Plan::new(&a).expect("valid");
        assert_eq!(
            plan.urls(),
            [
                "nats://10.0.0.1:4222",
                "nats://10.0.0.2:4222",
                "nats://10.0.0.1:4223"
            ]
        );
        assert_eq!(plan.servers[2].cluster_port, 6223);
        assert_eq!(plan.hosts(), ["10.0.0.1", "10.0.0.2"]);
        a.host.pop();
        assert!(error(&a).contains("2 hosts for 3 servers"), "{}", error(&a));
    }
}
