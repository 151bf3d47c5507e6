//! The authority's settings file, `authority.toml` (paths in it are
//! relative to its directory).

use std::fmt::Write as _;

use super::plan::Plan;

/// The text of `authority.toml`.
pub fn render(plan: &Plan, operator_public_key: &str) -> String {
    let servers = plan
        .urls()
        .iter()
        .map(|url| quote(url))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "# trellis authority settings (written by `trellis authority init`).\n\
         # Every value can be overridden by an environment variable:\n\
         # TRELLIS_AUTHORITY_<SETTING>, e.g. TRELLIS_AUTHORITY_SERVERS (comma-separated),\n\
         # TRELLIS_AUTHORITY_TLS_CA_FILE, TRELLIS_AUTHORITY_CALLOUT_ACCOUNT.\n\
         \n\
         # Deployment name: scopes subjects, records and resource names.\n\
         deployment = {deployment}\n\
         # nats-server URLs (any reachable subset; the client learns the rest).\n\
         servers = [{servers}]\n\
         # Replicas of every stream the authority creates: 1, or 3 on a cluster.\n\
         replicas = {replicas}\n\
         # How often every accepted contract is re-checked for drift.\n\
         reconcile_interval = \"2s\"\n\
         # Lifetime of the NATS users the auth callout issues.\n\
         session_ttl = \"1h\"\n\
         # How long builds a safe plan superseded may still connect (rolling deploys).\n\
         rollout_grace = \"24h\"\n\
         # How long SIGTERM waits for in-flight requests and the current reconcile pass.\n\
         drain_timeout = \"10s\"\n\
         # `text` or `json`.\n\
         log_format = \"text\"\n\
         \n\
         # The authority's own NATS user: listed in the servers' auth_callout auth_users.\n\
         [nats]\n\
         nkey_seed_file = \"keys/authority.nk\"\n",
        deployment = quote(&plan.deployment),
        replicas = plan.replicas(),
    );
    if plan.tls {
        s.push_str(
            "\n# TLS: the CA the servers' certificates are checked against, and the\n\
             # authority's client certificate.\n\
             [tls]\n\
             ca_file = \"tls/ca.pem\"\n\
             cert_file = \"tls/client.pem\"\n\
             key_file = \"tls/client-key.pem\"\n",
        );
    }
    let _ = write!(
        s,
        "\n# Auth callout: the issuer account key signs the users the authority issues;\n\
         # the system account user disconnects revoked principals.\n\
         [callout]\n\
         issuer_seed_file = \"keys/issuer.nk\"\n\
         account = \"TRELLIS\"\n\
         system_seed_file = \"keys/system.nk\"\n\
         \n\
         # Operators registered at start: the public keys of operator credential files.\n\
         [[operators]]\n\
         id = \"operator\"\n\
         public_key = {key}\n",
        key = quote(operator_public_key),
    );
    s
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
