//! `README.txt`: what `init` wrote and how to start the deployment (also
//! printed when `init` is done).

use std::fmt::Write as _;

use super::plan::Plan;

/// The summary; `dir` is the absolute output directory, `expires` the
/// certificates' last day (with TLS).
pub fn render(plan: &Plan, dir: &str, expires: Option<&str>) -> String {
    let n = plan.servers.len();
    let configs = match n {
        1 => "nats/n1.conf".to_owned(),
        n => format!("nats/n1.conf .. n{n}.conf"),
    };
    let mut files = vec![
        ("authority.toml", "the authority's settings"),
        (
            "operator.creds.json",
            "the first operator's credentials (secret)",
        ),
        (
            "keys/issuer.nk",
            "auth callout issuer account seed (secret)",
        ),
        (
            "keys/authority.nk",
            "the authority's NATS user seed (secret)",
        ),
        ("keys/system.nk", "system account user seed (secret)"),
        (
            configs.as_str(),
            "nats-server configurations (JetStream in data/nI)",
        ),
    ];
    if plan.tls {
        files.extend([
            ("tls/ca.pem", "the CA every client trusts"),
            (
                "tls/ca-key.pem",
                "the CA's key (secret: signs certificates)",
            ),
            (
                "tls/server.pem",
                "the servers' certificate (clients and routes)",
            ),
            ("tls/server-key.pem", "its key (secret)"),
            ("tls/client.pem", "the authority's client certificate"),
            ("tls/client-key.pem", "its key (secret)"),
        ]);
    }
    let mut r = format!(
        "trellis deployment \"{deployment}\": {n} nats-server(s), TLS {tls}.\n\
         Written by `trellis authority init` into {dir}:\n\n",
        deployment = plan.deployment,
        tls = if plan.tls { "on" } else { "off" },
    );
    for (file, what) in files {
        let _ = writeln!(r, "  {file:<26} {what}");
    }
    if let Some(expires) = expires {
        let _ = writeln!(
            r,
            "The server and client certificates are valid until {expires}."
        );
    }
    r.push_str("\nStart the servers (each on the machine its `listen` address belongs to):\n");
    for server in &plan.servers {
        let config = format!("{dir}/nats/{}.conf", server.name);
        let _ = writeln!(r, "  nats-server -c {}", shell_word(&config));
    }
    let _ = write!(
        r,
        "\nStart the authority:\n  trellis authority run --config {config}\n\
         \nAdminister the deployment as the operator:\n  \
         export TRELLIS_CREDENTIALS={creds} TRELLIS_URL={urls} TRELLIS_DEPLOYMENT={deployment}\n",
        config = shell_word(&format!("{dir}/authority.toml")),
        creds = shell_word(&format!("{dir}/operator.creds.json")),
        urls = plan.urls().join(","),
        deployment = plan.deployment,
    );
    if plan.tls {
        let ca = format!("{dir}/tls/ca.pem");
        let _ = writeln!(r, "  export TRELLIS_TLS_CA={}", shell_word(&ca));
    }
    r.push_str("  trellis status\n");
    r
}

/// `text` as one shell word: quoted unless it needs no quoting.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
