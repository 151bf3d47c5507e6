//! The nats-server configuration of each server (`nats/nI.conf`),
//! commented for the operators who adapt it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, ensure};

use super::keys::Keys;
use super::plan::Plan;

/// The absolute output directory as the configs spell it: nats-server
/// strings are double-quoted, so the path must need no escaping.
pub fn config_dir(dir: &Path) -> anyhow::Result<&str> {
    let text = dir
        .to_str()
        .with_context(|| format!("{}: the path is not UTF-8", dir.display()))?;
    ensure!(
        !text
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control()),
        "{text}: nats-server configs cannot name paths holding quotes, backslashes or \
         control characters; choose another --out"
    );
    Ok(text)
}

/// The config of server `i` (0-based); `dir` is the absolute output
/// directory (see [`config_dir`]).
pub fn render(plan: &Plan, keys: &Keys, dir: &str, i: usize) -> String {
    let server = &plan.servers[i];
    let name = &server.name;
    let authority = keys.authority.public_key();
    let system = keys.system.public_key();
    let issuer = keys.issuer.public_key();
    let mut c = format!(
        "# nats-server {name} of trellis deployment \"{deployment}\" ({n} server(s)),\n\
         # written by `trellis authority init`. Start it with:\n\
         #   nats-server -c {dir}/nats/{name}.conf\n\
         # {adapt}\n\
         \n\
         # Unique name of this server; JetStream tracks its peers by name.\n\
         server_name: {name}\n\
         \n\
         # Client connections: services, users, devices and the authority.\n\
         listen: \"{client}\"\n\
         \n\
         # Monitoring endpoint (/healthz, /varz, /jsz): keep it off public networks.\n\
         http: \"{http}\"\n\
         \n\
         # How fast a client or route that went silent (a partition: no reset, no\n\
         # error) is dropped: after `ping_max` unanswered pings. The default (2m)\n\
         # keeps routing requests into a cut-off server for minutes.\n\
         ping_interval: \"5s\"\n\
         ping_max: 2\n\
         \n\
         # JetStream: streams and key-value buckets, stored in this server's own\n\
         # directory (never share one between servers).\n\
         jetstream {{\n\
         \x20 store_dir: \"{dir}/data/{name}\"\n\
         \x20 # Storage this server may reserve for streams; unset, 75% of the disk\n\
         \x20 # free at start. Accepted contracts reserve their full limits (times\n\
         \x20 # the replicas, spread over the servers).\n\
         \x20 {store}\n\
         \x20 # fsync every write (slower; survives power loss without replicas):\n\
         \x20 # sync_interval: always\n\
         }}\n",
        deployment = plan.deployment,
        n = plan.servers.len(),
        adapt = if plan.clustered() {
            "Other addresses: run `init` again with `--host` (one per server), or change\n\
             # `listen`, `http`, the cluster's `listen` and `routes`, and the certificates."
        } else {
            "Another host: change it in `listen` and `http`, and the certificates' names."
        },
        client = server.address(server.client_port),
        http = server.address(server.http_port),
        store = match &plan.max_file_store {
            Some(size) => format!("max_file_store: {size}"),
            None => "# max_file_store: 200GB".to_owned(),
        },
    );
    if plan.tls {
        let _ = write!(
            c,
            "\n# TLS for client connections: required of every client. Client\n\
             # certificates are not required: clients authenticate with nkeys and\n\
             # only need to trust ca.pem.\n\
             tls {{\n{files}  timeout: 5\n}}\n",
            files = tls_files(dir, "  "),
        );
    }
    if plan.clustered() {
        let routes: String = plan
            .servers
            .iter()
            .filter(|peer| peer.name != *name)
            .map(|peer| format!("    \"nats-route://{}\"\n", peer.address(peer.cluster_port)))
            .collect();
        let _ = write!(
            c,
            "\n# Cluster: the servers route messages to each other and form one\n\
             # JetStream cluster; `routes` lists every other server.\n\
             cluster {{\n\
             \x20 name: trellis\n\
             \x20 listen: \"{listen}\"\n",
            listen = server.address(server.cluster_port),
        );
        if plan.tls {
            let _ = write!(
                c,
                "  # Routes use mutual TLS: each server verifies the other's certificate.\n\
                 \x20 tls {{\n{files}    verify: true\n    timeout: 5\n  }}\n",
                files = tls_files(dir, "    "),
            );
        }
        let _ = write!(c, "  routes: [\n{routes}  ]\n}}\n");
    }
    let _ = write!(
        c,
        "\n# Accounts. TRELLIS holds every application connection and JetStream;\n\
         # the authority's own user (keys/authority.nk) is its only static user.\n\
         # SYS is the system account; its user (keys/system.nk) lets the authority\n\
         # disconnect revoked principals.\n\
         accounts {{\n\
         \x20 TRELLIS {{\n\
         \x20   jetstream: enabled\n\
         \x20   users: [ {{ nkey: {authority} }} ]\n\
         \x20 }}\n\
         \x20 SYS {{\n\
         \x20   users: [ {{ nkey: {system} }} ]\n\
         \x20 }}\n\
         }}\n\
         system_account: SYS\n\
         \n\
         # Auth callout: the server asks the authority about every other connection;\n\
         # the authority answers with a user signed by the issuer account key\n\
         # (keys/issuer.nk). `auth_users` bypass the callout.\n\
         authorization {{\n\
         \x20 auth_callout {{\n\
         \x20   issuer: {issuer}\n\
         \x20   account: TRELLIS\n\
         \x20   auth_users: [ {authority} ]\n\
         \x20   allowed_accounts: [ TRELLIS ]\n\
         \x20 }}\n\
         }}\n"
    );
    c
}

/// The `cert_file`, `key_file` and `ca_file` lines of a `tls` block.
fn tls_files(dir: &str, indent: &str) -> String {
    [
        ("cert_file", "server.pem"),
        ("key_file", "server-key.pem"),
        ("ca_file", "ca.pem"),
    ]
    .iter()
    .map(|(key, file)| format!("{indent}{key}: \"{dir}/tls/{file}\"\n"))
    .collect()
}
