//! [`Settings`]: the settings file a long-running authority starts from
//! (`authority.toml`), with `TRELLIS_AUTHORITY_*` environment overrides,
//! checked into the connections and [`AuthorityConfig`] it runs with.
//!
//! ```toml
//! deployment = "main"
//! servers = ["tls://10.0.0.1:4222", "tls://10.0.0.2:4222"]
//! replicas = 3
//! reconcile_interval = "2s"
//! session_ttl = "1h"
//! rollout_grace = "24h"
//! drain_timeout = "10s"
//! connect_timeout = "30s"
//! log_format = "json"
//! http = "127.0.0.1:9090"
//!
//! [nats]
//! nkey_seed_file = "keys/authority.nk"
//!
//! [tls]
//! ca_file = "tls/ca.pem"
//!
//! [callout]
//! issuer_seed_file = "keys/issuer.nk"
//! account = "TRELLIS"
//! system_seed_file = "keys/system.nk"
//!
//! [[operators]]
//! id = "operator"
//! public_key = "U..."
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::callout::AuthSettings;
use crate::config::AuthorityConfig;
use crate::naming::valid_scope_name;

/// The prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "TRELLIS_AUTHORITY_";

/// A setting that is missing, malformed or unusable.
#[derive(Debug, thiserror::Error)]
#[error("setting `{setting}`{}: {reason}", source_note(.from_env))]
pub struct SettingsError {
    /// The setting, as a dotted path (`tls.ca_file`), or `file` for the
    /// settings file itself.
    pub setting: String,
    /// The environment variable the value came from, if it did.
    pub from_env: Option<String>,
    /// What is wrong.
    pub reason: String,
}

fn source_note(from_env: &Option<String>) -> String {
    from_env
        .as_ref()
        .map(|v| format!(" (from {v})"))
        .unwrap_or_default()
}

impl SettingsError {
    fn new(setting: &str, reason: impl Into<String>) -> Self {
        SettingsError {
            setting: setting.to_owned(),
            from_env: None,
            reason: reason.into(),
        }
    }
}

/// How the authority writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// An operator principal registered at start (how a deployment gets its
/// first administrator).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// Principal id.
    pub id: String,
    /// The public key of the operator's credential file.
    pub public_key: String,
}

/// The authority's settings, checked.
#[derive(Clone)]
pub struct Settings {
    /// Deployment name.
    pub deployment: String,
    /// Profile name (physical resource names carry it).
    pub profile: String,
    /// nats-server URLs.
    pub servers: Vec<String>,
    /// Replicas of every stream the authority creates (1 or 3).
    pub replicas: usize,
    /// How often every contract is re-checked for drift.
    pub reconcile_interval: Duration,
    /// Lifetime of the users the auth callout issues.
    pub session_ttl: Duration,
    /// How long builds a safe plan superseded may still connect.
    pub rollout_grace: Duration,
    /// How long a SIGTERM waits for in-flight work.
    pub drain_timeout: Duration,
    /// How long start-up keeps trying the servers.
    pub connect_timeout: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Where to serve HTTP `/healthz`, `/readyz` and Prometheus `/metrics`
    /// (off when unset); see [`Authority::serve_http`](crate::Authority::serve_http).
    pub http: Option<std::net::SocketAddr>,
    /// TLS of every connection the authority makes.
    pub tls: trellis_runtime::Tls,
    /// Operators registered at start.
    pub operators: Vec<Operator>,
    nkey_seed: Option<String>,
    callout: Option<Callout>,
}

#[derive(Clone)]
struct Callout {
    issuer_seed: String,
    account: String,
    system_seed: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("deployment", &self.deployment)
            .field("servers", &self.servers)
            .field("replicas", &self.replicas)
            .field("callout", &self.callout.is_some())
            .finish_non_exhaustive()
    }
}

/// The file as written (paths still relative, durations as text).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    deployment: String,
    servers: Vec<String>,
    #[serde(default = "one")]
    replicas: usize,
    profile: Option<String>,
    reconcile_interval: Option<String>,
    session_ttl: Option<String>,
    rollout_grace: Option<String>,
    drain_timeout: Option<String>,
    connect_timeout: Option<String>,
    log_format: Option<String>,
    http: Option<String>,
    #[serde(default)]
    nats: NatsSection,
    tls: Option<TlsSection>,
    callout: Option<CalloutSection>,
    #[serde(default)]
    operators: Vec<Operator>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatsSection {
    nkey_seed_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalloutSection {
    issuer_seed_file: PathBuf,
    account: String,
    system_seed_file: Option<PathBuf>,
}

/// What an environment override sets.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    List,
    Number,
    Path,
}

/// Every setting an environment variable may override.
const OVERRIDES: &[(&str, Kind)] = &[
    ("deployment", Kind::Text),
    ("profile", Kind::Text),
    ("servers", Kind::List),
    ("replicas", Kind::Number),
    ("reconcile_interval", Kind::Text),
    ("session_ttl", Kind::Text),
    ("rollout_grace", Kind::Text),
    ("drain_timeout", Kind::Text),
    ("connect_timeout", Kind::Text),
    ("log_format", Kind::Text),
    ("http", Kind::Text),
    ("nats.nkey_seed_file", Kind::Path),
    ("tls.ca_file", Kind::Path),
    ("tls.cert_file", Kind::Path),
    ("tls.key_file", Kind::Path),
    ("callout.issuer_seed_file", Kind::Path),
    ("callout.account", Kind::Text),
    ("callout.system_seed_file", Kind::Path),
];

/// The environment variable overriding `setting`.
pub fn env_name(setting: &str) -> String {
    format!("{ENV_PREFIX}{}", setting.replace('.', "_").to_uppercase())
}

impl Settings {
    /// Reads and checks the settings file at `path`, applying overrides
    /// from this process's environment.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::new("file", format!("cannot read {}: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        Settings::parse(&text, base, &env)
    }

    /// Checks settings `text` (relative paths are relative to `base`),
    /// with `env` as `(variable, value)` overrides.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &[(String, String)],
    ) -> Result<Settings, SettingsError> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| SettingsError::new("file", format!("not valid TOML: {e}")))?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut from_env = std::collections::BTreeMap::new();
        for (name, value) in env {
            let Some((setting, kind)) = OVERRIDES.iter().find(|(s, _)| env_name(s) == *name) else {
                let known: Vec<String> = OVERRIDES.iter().map(|(s, _)| env_name(s)).collect();
                return Err(SettingsError {
                    setting: name.clone(),
                    from_env: Some(name.clone()),
                    reason: format!("unknown setting; known: {}", known.join(", ")),
                });
            };
            let value = match kind {
                Kind::Text => toml::Value::String(value.clone()),
                Kind::Path => toml::Value::String(cwd.join(value).display().to_string()),
                Kind::List => toml::Value::Array(
                    trellis_runtime::split_servers(value)
                        .into_iter()
                        .map(toml::Value::String)
                        .collect(),
                ),
                Kind::Number => {
                    toml::Value::Integer(value.trim().parse().map_err(|_| SettingsError {
                        setting: (*setting).to_owned(),
                        from_env: Some(name.clone()),
                        reason: format!("`{value}` is not a whole number"),
                    })?)
                }
            };
            set(&mut table, setting, value);
            from_env.insert((*setting).to_owned(), name.clone());
        }
        let file: FileSettings = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let setting = if path == "." { "file".to_owned() } else { path };
            SettingsError {
                from_env: from_env.get(&setting).cloned(),
                setting,
                reason: e.into_inner().to_string(),
            }
        })?;
        file.check(base).map_err(|mut e| {
            e.from_env = from_env.get(&e.setting).cloned();
            e
        })
    }

    /// Connects as the authority's own NATS user, and (when a system seed
    /// is set) the system-account user that disconnects revoked
    /// principals. Errors name the setting at fault.
    pub async fn connect(
        &self,
    ) -> Result<(async_nats::Client, Option<async_nats::Client>), SettingsError> {
        let main = self
            .connect_as(self.nkey_seed.as_deref())
            .await
            .map_err(|reason| SettingsError::new(self.connect_setting(&reason), reason))?;
        let system = match self.callout.as_ref().and_then(|c| c.system_seed.as_deref()) {
            Some(seed) => Some(
                self.connect_as(Some(seed))
                    .await
                    .map_err(|reason| SettingsError::new("callout.system_seed_file", reason))?,
            ),
            None => None,
        };
        Ok((main, system))
    }

    /// Connects with `seed` (or without credentials), trying the servers
    /// for up to `connect_timeout` before reporting the last error. Once
    /// connected, the client reconnects on its own for as long as it runs.
    async fn connect_as(&self, seed: Option<&str>) -> Result<async_nats::Client, String> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            let options = match seed {
                Some(seed) => async_nats::ConnectOptions::with_nkey(seed.to_owned()),
                None => async_nats::ConnectOptions::new(),
            };
            let options = self
                .tls
                .apply(options)
                .name(format!("trellis-authority-{}", self.deployment))
                .ping_interval(trellis_runtime::DEFAULT_PING_INTERVAL)
                .max_reconnects(None);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let error =
                match tokio::time::timeout(left, options.connect(self.servers.as_slice())).await {
                    Ok(Ok(client)) => return Ok(client),
                    Ok(Err(e)) => format!("{e}"),
                    Err(_) => "no server answered".to_owned(),
                };
            if tokio::time::Instant::now() + Duration::from_millis(500) >= deadline {
                return Err(format!(
                    "could not connect to {} within {:?}: {error}",
                    self.servers.join(","),
                    self.connect_timeout
                ));
            }
            tracing::warn!(%error, "nats-server not reachable yet; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The setting a connect failure most likely points at.
    fn connect_setting(&self, reason: &str) -> &'static str {
        let reason = reason.to_lowercase();
        if self.tls.is_set()
            && ["certificate", "tls", "handshake", "issuer"]
                .iter()
                .any(|w| reason.contains(w))
        {
            "tls.ca_file"
        } else if reason.contains("authorization") || reason.contains("authentication") {
            "nats.nkey_seed_file"
        } else {
            "servers"
        }
    }

    /// The authority configuration, with the system connection (if any)
    /// for kicks.
    pub fn authority_config(
        &self,
        system: Option<async_nats::Client>,
    ) -> Result<AuthorityConfig, SettingsError> {
        let mut config = AuthorityConfig::local(&self.deployment);
        config.profile = self.profile.clone();
        config.replicas = self.replicas;
        config.reconcile_interval = self.reconcile_interval;
        config.rollout_grace = self.rollout_grace;
        if let Some(callout) = &self.callout {
            let mut auth = AuthSettings::new(&callout.issuer_seed, &callout.account)
                .map_err(|e| SettingsError::new("callout.issuer_seed_file", e.to_string()))?
                .session_ttl(self.session_ttl);
            if let Some(system) = system {
                auth = auth.system_connection(system);
            }
            config = config.auth(auth);
        }
        Ok(config)
    }

    /// Whether the deployment authenticates (a callout is configured).
    pub fn authenticates(&self) -> bool {
        self.callout.is_some()
    }
}

/// Sets the dotted `setting` in `table`, creating sections.
fn set(table: &mut toml::Table, setting: &str, value: toml::Value) {
    match setting.split_once('.') {
        Some((section, rest)) => {
            let entry = table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set(inner, rest, value);
            }
        }
        None => {
            table.insert(setting.to_owned(), value);
        }
    }
}

fn duration(
    setting: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, SettingsError> {
    match value {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            SettingsError::new(
                setting,
                format!("`{text}` is not a duration like `2s` or `1h`: {e}"),
            )
        }),
    }
}

/// The trimmed contents of a key file.
fn read_seed(
    setting: &str,
    base: &Path,
    path: &Path,
    prefix: char,
) -> Result<String, SettingsError> {
    let path = base.join(path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SettingsError::new(setting, format!("cannot read {}: {e}", path.display())))?;
    let seed = text.trim().to_owned();
    let kind = if prefix == 'A' {
        "an account"
    } else {
        "a user"
    };
    match nkeys::KeyPair::from_seed(&seed) {
        Ok(key) if key.public_key().starts_with(prefix) => Ok(seed),
        Ok(_) => Err(SettingsError::new(
            setting,
            format!("{} holds no {kind} seed", path.display()),
        )),
        Err(e) => Err(SettingsError::new(
            setting,
            format!("{} holds no nkey seed: {e}", path.display()),
        )),
    }
}

impl FileSettings {
    fn check(self, base: &Path) -> Result<Settings, SettingsError> {
        if !valid_scope_name(&self.deployment) {
            return Err(SettingsError::new(
                "deployment",
                format!(
                    "`{}`: use 1-32 lowercase letters, digits or `-`",
                    self.deployment
                ),
            ));
        }
        let profile = self.profile.unwrap_or_else(|| {
            if self.replicas > 1 {
                "cluster"
            } else {
                "local"
            }
            .to_owned()
        });
        if !valid_scope_name(&profile) {
            return Err(SettingsError::new(
                "profile",
                format!("`{profile}`: use 1-32 lowercase letters, digits or `-`"),
            ));
        }
        if self.servers.is_empty() {
            return Err(SettingsError::new(
                "servers",
                "list at least one nats-server URL",
            ));
        }
        for url in &self.servers {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("nats" | "tls" | "ws" | "wss")) {
                return Err(SettingsError::new(
                    "servers",
                    format!("`{url}` is not a nats://, tls://, ws:// or wss:// URL"),
                ));
            }
        }
        if !matches!(self.replicas, 1 | 3) {
            return Err(SettingsError::new(
                "replicas",
                format!(
                    "{}: use 1, or 3 on a cluster of three or more servers",
                    self.replicas
                ),
            ));
        }
        let reconcile_interval = duration(
            "reconcile_interval",
            self.reconcile_interval.as_deref(),
            Duration::from_secs(2),
        )?;
        if reconcile_interval < Duration::from_millis(100) {
            return Err(SettingsError::new(
                "reconcile_interval",
                "use at least 100ms",
            ));
        }
        let session_ttl = duration(
            "session_ttl",
            self.session_ttl.as_deref(),
            Duration::from_secs(3600),
        )?;
        if session_ttl < Duration::from_secs(2) {
            return Err(SettingsError::new("session_ttl", "use at least 2s"));
        }
        let rollout_grace = duration(
            "rollout_grace",
            self.rollout_grace.as_deref(),
            crate::config::DEFAULT_ROLLOUT_GRACE,
        )?;
        let drain_timeout = duration(
            "drain_timeout",
            self.drain_timeout.as_deref(),
            Duration::from_secs(10),
        )?;
        let connect_timeout = duration(
            "connect_timeout",
            self.connect_timeout.as_deref(),
            Duration::from_secs(30),
        )?;
        let log_format = match self.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError::new(
                    "log_format",
                    format!("`{other}`: use `text` or `json`"),
                ));
            }
        };
        let http = self
            .http
            .as_deref()
            .map(|text| {
                text.trim().parse::<std::net::SocketAddr>().map_err(|e| {
                    SettingsError::new(
                        "http",
                        format!("`{text}` is not a listen address like `127.0.0.1:9090`: {e}"),
                    )
                })
            })
            .transpose()?;
        let mut tls = trellis_runtime::Tls::new();
        if let Some(section) = self.tls {
            if let Some(ca) = section.ca_file {
                tls = tls.ca_file(base.join(ca));
            }
            match (section.cert_file, section.key_file) {
                (Some(cert), Some(key)) => {
                    tls = tls.client_certificate(base.join(cert), base.join(key));
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(SettingsError::new(
                        "tls.key_file",
                        "set it with `tls.cert_file`",
                    ));
                }
                (None, Some(_)) => {
                    return Err(SettingsError::new(
                        "tls.cert_file",
                        "set it with `tls.key_file`",
                    ));
                }
            }
            tls.check().map_err(|e| {
                let setting = match e.what {
                    "CA certificate" => "tls.ca_file",
                    "client certificate" => "tls.cert_file",
                    _ => "tls.key_file",
                };
                SettingsError::new(setting, e.to_string())
            })?;
        }
        let nkey_seed = self
            .nats
            .nkey_seed_file
            .map(|path| read_seed("nats.nkey_seed_file", base, &path, 'U'))
            .transpose()?;
        let callout = match self.callout {
            Some(c) => {
                if c.account.is_empty() {
                    return Err(SettingsError::new("callout.account", "must not be empty"));
                }
                Some(Callout {
                    issuer_seed: read_seed(
                        "callout.issuer_seed_file",
                        base,
                        &c.issuer_seed_file,
                        'A',
                    )?,
                    account: c.account,
                    system_seed: c
                        .system_seed_file
                        .map(|p| read_seed("callout.system_seed_file", base, &p, 'U'))
                        .transpose()?,
                })
            }
            None => None,
        };
        if callout.is_some() && nkey_seed.is_none() {
            return Err(SettingsError::new(
                "nats.nkey_seed_file",
                "a deployment with a callout needs the authority's own user (listed in the \
                 servers' auth_callout auth_users)",
            ));
        }
        for (i, operator) in self.operators.iter().enumerate() {
            if !operator.public_key.starts_with('U')
                || nkeys::KeyPair::from_public_key(&operator.public_key).is_err()
            {
                return Err(SettingsError::new(
                    &format!("operators[{i}].public_key"),
                    format!("`{}` is not a user public key", operator.public_key),
                ));
            }
        }
        if !self.operators.is_empty() && callout.is_none() {
            return Err(SettingsError::new(
                "operators",
                "operators are registered only in a deployment with a `[callout]`",
            ));
        }
        Ok(Settings {
            deployment: self.deployment,
            profile,
            servers: self.servers,
            replicas: self.replicas,
            reconcile_interval,
            session_ttl,
            rollout_grace,
            drain_timeout,
            connect_timeout,
            log_format,
            http,
            tls,
            operators: self.operators,
            nkey_seed,
            callout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new() -> Dir {
            let dir = tempfile::tempdir().expect("dir");
            let seed = |k: nkeys::KeyPair| format!("{}\n", k.seed().expect("seed"));
            std::fs::create_dir(dir.path().join("keys")).expect("keys");
            for (name, key) in [
                ("issuer.nk", nkeys::KeyPair::new_account()),
                ("authority.nk", nkeys::KeyPair::new_user()),
                ("system.nk", nkeys::KeyPair::new_user()),
            ] {
                std::fs::write(dir.path().join("keys").join(name), seed(key)).expect("write");
            }
            Dir { dir }
        }

        fn parse(&self, text: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Settings::parse(text, self.dir.path(), &env)
        }
    }

    const FULL: &str = r#"
deployment = "main"
servers = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
replicas = 3
reconcile_interval = "500ms"
rollout_grace = "2h"
session_ttl = "10m"
log_format = "json"
[nats]
nkey_seed_file = "keys/authority.nk"
[callout]
issuer_seed_file = "keys/issuer.nk"
account = "TRELLIS"
system_seed_file = "keys/system.nk"
[[operators]]
id = "operator"
public_key = "UAOPERATOR"
"#;

    fn full() -> String {
        let operator = nkeys::KeyPair::new_user().public_key();
        FULL.replace("UAOPERATOR", &operator)
    }

    #[test]
    fn a_full_file_is_read_with_its_defaults() {
        let dir = Dir::new();
        let s = dir.parse(&full(), &[]).expect("valid");
        assert_eq!(s.deployment, "main");
        assert_eq!(s.profile, "cluster");
        assert_eq!(s.replicas, 3);
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.reconcile_interval, Duration::from_millis(500));
        assert_eq!(s.rollout_grace, Duration::from_secs(7200));
        assert_eq!(s.session_ttl, Duration::from_secs(600));
        assert_eq!(s.drain_timeout, Duration::from_secs(10));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.http, None);
        assert!(s.authenticates());
        let config = s.authority_config(None).expect("config");
        assert_eq!(config.replicas, 3);
        assert_eq!(
            config.auth.expect("auth").session_ttl,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn environment_overrides_win_and_are_named_in_errors() {
        let dir = Dir::new();
        let s = dir
            .parse(
                &full(),
                &[
                    (
                        "TRELLIS_AUTHORITY_SERVERS",
                        "nats://a:1, nats://b:2,nats://c:3",
                    ),
                    ("TRELLIS_AUTHORITY_REPLICAS", "1"),
                    ("TRELLIS_AUTHORITY_CALLOUT_ACCOUNT", "APP"),
                ],
            )
            .expect("valid");
        assert_eq!(s.servers, ["nats://a:1", "nats://b:2", "nats://c:3"]);
        assert_eq!(s.replicas, 1);
        assert_eq!(s.profile, "local");

        let s = dir
            .parse(
                &format!("http = \"127.0.0.1:9090\"\n{}", full()),
                &[("TRELLIS_AUTHORITY_HTTP", "[::1]:9191")],
            )
            .expect("valid");
        assert_eq!(s.http, Some("[::1]:9191".parse().expect("addr")));
        let e = dir
            .parse(&full(), &[("TRELLIS_AUTHORITY_HTTP", "localhost")])
            .expect_err("no port");
        assert_eq!(e.setting, "http");
        assert_eq!(e.from_env.as_deref(), Some("TRELLIS_AUTHORITY_HTTP"));

        let e = dir
            .parse(&full(), &[("TRELLIS_AUTHORITY_REPLICAS", "three")])
            .expect_err("not a number");
        assert_eq!(e.setting, "replicas");
        assert_eq!(e.from_env.as_deref(), Some("TRELLIS_AUTHORITY_REPLICAS"));
        let e = dir
            .parse(&full(), &[("TRELLIS_AUTHORITY_REPLICAS", "2")])
            .expect_err("two");
        assert!(
            e.to_string().contains("(from TRELLIS_AUTHORITY_REPLICAS)"),
            "{e}"
        );
        let e = dir
            .parse(&full(), &[("TRELLIS_AUTHORITY_COLOUR", "blue")])
            .expect_err("unknown");
        assert!(e.to_string().contains("TRELLIS_AUTHORITY_COLOUR"), "{e}");
        assert!(e.reason.contains("TRELLIS_AUTHORITY_TLS_CA_FILE"), "{e}");
    }

    #[test]
    fn every_bad_value_names_its_setting() {
        let dir = Dir::new();
        let cases: Vec<(String, &str)> = vec![
            ("deployment = [".to_owned(), "file"),
            (
                full().replace("deployment = \"main\"", "deployment = \"Main!\""),
                "deployment",
            ),
            (full().replace("replicas = 3", "replicas = 2"), "replicas"),
            (
                full().replace("replicas = 3", "replicas = \"3\""),
                "replicas",
            ),
            (format!("colour = \"blue\"\n{}", full()), "colour"),
            (
                full().replace("account = \"TRELLIS\"", "account = \"TRELLIS\"\nextra = 1"),
                "callout.extra",
            ),
            (
                full().replace("\"500ms\"", "\"soon\""),
                "reconcile_interval",
            ),
            (full().replace("\"10m\"", "\"1s\""), "session_ttl"),
            (full().replace("\"json\"", "\"xml\""), "log_format"),
            (format!("http = \"9090\"\n{}", full()), "http"),
            (format!("http = 9090\n{}", full()), "http"),
            (
                full().replace("keys/issuer.nk", "keys/missing.nk"),
                "callout.issuer_seed_file",
            ),
            (
                full().replace("keys/issuer.nk", "keys/system.nk"),
                "callout.issuer_seed_file",
            ),
            (
                full().replace("keys/authority.nk", "keys/issuer.nk"),
                "nats.nkey_seed_file",
            ),
            (
                full().replace("nats://127.0.0.1:4222", "http://x"),
                "servers",
            ),
            (full().replace("servers = [", "servers = [] #"), "servers"),
            (
                format!("{}\n[tls]\nca_file = \"tls/ca.pem\"\n", full()),
                "tls.ca_file",
            ),
            (
                format!("{}\n[tls]\ncert_file = \"c.pem\"\n", full()),
                "tls.key_file",
            ),
            (
                full().replace(
                    "id = \"operator\"\npublic_key = \"U",
                    "id = \"operator\"\npublic_key = \"X",
                ),
                "operators[0].public_key",
            ),
            (
                full().replace("[nats]\nnkey_seed_file = \"keys/authority.nk\"", ""),
                "nats.nkey_seed_file",
            ),
        ];
        for (text, setting) in cases {
            let e = dir.parse(&text, &[]).expect_err(setting);
            assert_eq!(e.setting, setting, "{e}");
            assert!(
                e.to_string().starts_with(&format!("setting `{setting}`")),
                "{e}"
            );
        }
        // Unknown keys are named with the known ones.
        let e = dir
            .parse(&format!("colour = \"blue\"\n{}", full()), &[])
            .expect_err("unknown");
        assert!(e.reason.contains("expected one of"), "{e}");
    }
}
