//! Connecting a service: fetch the persisted bindings of its contract from
//! the authority, wait (bounded) while reconciliation is pending, open the
//! resources and build the typed service object.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use tracing::debug;

use crate::bindings::{BindError, Bindings, Contract};
use crate::client::{AuthorityClient, ClientError};
use crate::identity::Credentials;
use crate::principal::Principal;
use crate::protocol::*;
use crate::runtime::{Denials, ServiceRuntime};
use crate::verify::Verifier;

/// The environment variable naming a credential file.
pub const CREDENTIALS_ENV: &str = "TRELLIS_CREDENTIALS";

/// Server URLs from a comma-separated list (blank entries dropped).
pub fn split_servers(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How a service connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    servers: Vec<String>,
    deployment: String,
    name: Option<String>,
    ready_deadline: Duration,
    request_timeout: Duration,
    principal: Option<Principal>,
    credentials: Option<Credentials>,
    credentials_file: Option<std::path::PathBuf>,
    tls: crate::tls::Tls,
    ping_interval: Duration,
}

/// How often a connection pings its server by default: a server cut off
/// by a partition (no reset, just silence) is noticed after two missed
/// pings, and the connection moves to another server.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);

impl ConnectOptions {
    /// Connect to the NATS server at `url`, deployment `dev`. A
    /// comma-separated list names several servers of one cluster (as
    /// `TRELLIS_URL=nats://a:4222,nats://b:4222`): the connection takes any
    /// that answers and moves to another when it fails.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            servers: split_servers(&url.into()),
            deployment: "dev".to_owned(),
            name: None,
            ready_deadline: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            principal: None,
            credentials: None,
            credentials_file: None,
            tls: crate::tls::Tls::new(),
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }

    /// How often the connection pings its server (default
    /// [`DEFAULT_PING_INTERVAL`]); two unanswered pings make it reconnect
    /// elsewhere.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Connects with TLS: trusts `tls`'s CA and presents its client
    /// certificate, and refuses servers that do not speak TLS.
    pub fn tls(mut self, tls: crate::tls::Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Uses the TLS files named by `TRELLIS_TLS_CA`, `TRELLIS_TLS_CERT`
    /// and `TRELLIS_TLS_KEY`, when set.
    pub fn tls_from_env(self) -> Self {
        let tls = crate::tls::Tls::from_env();
        if tls.is_set() { self.tls(tls) } else { self }
    }

    /// [`ConnectOptions::credentials_from_env`] and
    /// [`ConnectOptions::tls_from_env`]: how a deployment hands a service
    /// its identity and trust without code changes.
    pub fn from_env(self) -> Self {
        self.credentials_from_env().tls_from_env()
    }

    /// Adds server `url` to the ones the connection may use.
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.extend(split_servers(&url.into()));
        self
    }

    /// The servers the connection may use.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Authenticates as the principal of `credentials`: the connection
    /// proves its key to the server (auth callout), and every request is
    /// signed with it.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Like [`ConnectOptions::credentials`], loading the credential file
    /// at connect.
    pub fn credentials_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// Uses the credential file named by `TRELLIS_CREDENTIALS`, if set
    /// (how `trellis dev` deployments hand services their keys).
    pub fn credentials_from_env(self) -> Self {
        match std::env::var_os(CREDENTIALS_ENV) {
            Some(path) if !path.is_empty() => self.credentials_file(path),
            _ => self,
        }
    }

    fn load_credentials(&self) -> Result<Option<Credentials>, ConnectError> {
        if let Some(c) = &self.credentials {
            return Ok(Some(c.clone()));
        }
        match &self.credentials_file {
            Some(path) => Ok(Some(Credentials::load(path)?)),
            None => Ok(None),
        }
    }

    /// The deployment whose authority serves the bindings.
    pub fn deployment(mut self, deployment: impl Into<String>) -> Self {
        self.deployment = deployment.into();
        self
    }

    /// The participant name the connection presents.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long to wait while reconciliation is pending (default 30 s).
    pub fn ready_deadline(mut self, deadline: Duration) -> Self {
        self.ready_deadline = deadline;
        self
    }

    /// The principal this connection acts as (default: a fresh anonymous
    /// principal per connection). Operations are owned by the principal
    /// that started them; reattaching from a new connection needs the same
    /// principal (or the operation's observe capability).
    pub fn principal(mut self, id: impl Into<String>) -> Self {
        let capabilities = self.principal.take().map(|p| p.capabilities);
        let mut principal = Principal::new(id);
        principal.capabilities = capabilities.unwrap_or_default();
        self.principal = Some(principal);
        self
    }

    /// Capabilities this connection's principal holds, as manifests name
    /// them (`<contract>::<capability>`, e.g. `documents::read`).
    pub fn capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let principal = self.principal.get_or_insert_with(Principal::anonymous);
        principal.capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    fn principal_or_anonymous(&self) -> Principal {
        self.principal.clone().unwrap_or_else(Principal::anonymous)
    }

    /// Timeout of each authority request (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

/// A resource that keeps a contract from being ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unready {
    /// `kv` or `store`.
    pub kind: &'static str,
    /// Alias.
    pub alias: String,
    /// Why (`pending`, or the failure reason).
    pub reason: String,
}

impl std::fmt::Display for Unready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`: {}", self.kind, self.alias, self.reason)
    }
}

/// Why a service could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The NATS connection failed.
    #[error("connecting to NATS at {url} failed: {source}")]
    Nats {
        /// URL.
        url: String,
        /// Error.
        source: async_nats::ConnectError,
    },
    /// Talking to the authority failed.
    #[error(transparent)]
    Authority(#[from] ClientError),
    /// The contract was never accepted in this deployment.
    #[error(
        "contract {id} is not accepted in this deployment; run `trellis contract accept contracts/{id}.json`"
    )]
    NotAccepted {
        /// Contract id.
        id: String,
    },
    /// The accepted contract has another digest than this build.
    #[error(
        "contract {id}: this build has digest {local}, but the accepted digest is {accepted}; accept this build's manifest or deploy the accepted build"
    )]
    DigestMismatch {
        /// Contract id.
        id: String,
        /// This build's digest.
        local: String,
        /// The accepted digest.
        accepted: String,
    },
    /// This build's digest was live in a rollout and no longer is.
    #[error(
        "contract {id}: this build's digest {digest} was retired ({reason}, at {retired_ms} ms since the epoch); deploy the accepted build {accepted}"
    )]
    Retired {
        /// Contract id.
        id: String,
        /// This build's digest.
        digest: String,
        /// Why it may no longer connect.
        reason: crate::protocol::RetireReason,
        /// When (unix ms).
        retired_ms: u64,
        /// The accepted digest.
        accepted: String,
    },
    /// Required resources were still not ready at the deadline.
    #[error("contract {id} is not ready after {waited:?}: {}", unready.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotReady {
        /// Contract id.
        id: String,
        /// How long we waited.
        waited: Duration,
        /// What is missing, with reasons.
        unready: Vec<Unready>,
    },
    /// Opening a bound resource failed.
    #[error("opening {kind} `{alias}` failed: {reason}")]
    Open {
        /// `kv` or `store`.
        kind: &'static str,
        /// Alias.
        alias: String,
        /// Why.
        reason: String,
    },
    /// The bindings do not fit the generated service type.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The credentials could not be loaded.
    #[error(transparent)]
    Credentials(#[from] crate::identity::IdentityError),
    /// A TLS file is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The deployment authenticates, but the caller verification could not
    /// start.
    #[error("starting caller verification failed: {0}")]
    Verification(String),
}

fn unready(status: Option<&ContractStatus>, digest: &str) -> Vec<Unready> {
    let Some(state) = status else {
        return vec![Unready {
            kind: "contract",
            alias: String::new(),
            reason: "no reconcile pass has run yet".to_owned(),
        }];
    };
    if state.digest != digest {
        return vec![Unready {
            kind: "contract",
            alias: String::new(),
            reason: format!("reconciliation has not reached digest {digest} yet"),
        }];
    }
    state
        .resources
        .iter()
        .filter(|r| r.required && r.status != ResourceStatus::Ready)
        .map(|r| Unready {
            kind: r.kind.as_str(),
            alias: r.alias.clone(),
            reason: match &r.status {
                ResourceStatus::Failed { reason } => reason.clone(),
                _ => "pending".to_owned(),
            },
        })
        .collect()
}

/// The resources a manifest declares, by kind and alias (read once per
/// connect of an earlier build in a rollout).
struct Declared {
    kv: Vec<String>,
    store: Vec<String>,
    ledger: bool,
    events: bool,
    consumers: Vec<String>,
}

impl Declared {
    fn of(manifest_json: &str) -> Declared {
        let m: serde_json::Value = serde_json::from_str(manifest_json).unwrap_or_default();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let present = |k: &str| m[k].as_object().is_some_and(|o| !o.is_empty());
        let has_receive = m["rpc"]
            .as_object()
            .is_some_and(|o| o.values().any(|r| r.get("transfer").is_some()));
        Declared {
            kv: keys(&m["resources"]["kv"]),
            store: keys(&m["resources"]["store"]),
            ledger: present("operations") || present("eventConsumers") || has_receive,
            events: present("events"),
            consumers: keys(&m["eventConsumers"]),
        }
    }

    /// Whether this build needs the resource `u` is about.
    fn covers(&self, u: &Unready) -> bool {
        match u.kind {
            "kv" => self.kv.contains(&u.alias),
            "store" => self.store.contains(&u.alias),
            "ledger" => self.ledger,
            "events" => self.events,
            "consumer" => u
                .alias
                .split_once('/')
                .is_some_and(|(group, _)| self.consumers.iter().any(|g| g == group)),
            _ => true,
        }
    }
}

/// The NATS connection and the identity it acts as.
struct Connected {
    client: async_nats::Client,
    principal: Principal,
    signer: Option<crate::identity::Signer>,
    denials: Option<Denials>,
}

async fn nats(options: &ConnectOptions, default_name: &str) -> Result<Connected, ConnectError> {
    let credentials = options.load_credentials()?;
    options.tls.check()?;
    let denials = credentials
        .as_ref()
        .map(|_| tokio::sync::broadcast::channel::<String>(64).0);
    let mut nats = match &credentials {
        // The server nonce is signed with the principal key; replies come
        // back below the principal's own inbox prefix, the only inbox its
        // NATS user may subscribe to.
        Some(c) => c.nats_options(),
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(tx) = &denials {
        let tx = tx.clone();
        nats = nats.event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(message)) =
                    event
                    && message.to_lowercase().contains("permissions violation")
                {
                    tracing::warn!(%message, "nats-server refused a subject");
                    let _ = tx.send(message);
                }
            }
        });
    }
    nats = options
        .tls
        .apply(nats)
        .ping_interval(options.ping_interval)
        .name(options.name.as_deref().unwrap_or(default_name));
    let client = nats
        .connect(options.servers.as_slice())
        .await
        .map_err(|source| ConnectError::Nats {
            url: options.servers.join(","),
            source,
        })?;
    Ok(match credentials {
        Some(c) => Connected {
            client,
            principal: Principal::new(c.id.clone()),
            signer: Some(c.signer()?),
            denials,
        },
        None => Connected {
            client,
            principal: options.principal_or_anonymous(),
            signer: None,
            denials: None,
        },
    })
}

/// Connects a caller of contract `id` (used by generated clients).
#[doc(hidden)]
pub async fn connect_client(
    options: ConnectOptions,
    id: &str,
) -> Result<ServiceRuntime, ConnectError> {
    let connected = nats_within(&options, &format!("{id} client"), Instant::now()).await?;
    let authenticated = connected.signer.is_some();
    let runtime = ServiceRuntime::new(
        connected.client,
        &options.deployment,
        id,
        options.request_timeout,
        connected.principal,
    )
    .with_signer(connected.signer)
    .with_denials(connected.denials);
    Ok(if authenticated {
        runtime.with_event_verifier()
    } else {
        runtime
    })
}

/// Connects to NATS, retrying with a bounded backoff until `deadline` has
/// passed since `started`: with auth, nats-server refuses connections while
/// the authority's callout is down (a restart, a rolling deploy), and a
/// service starting then should wait for it rather than fail at once.
async fn nats_within(
    options: &ConnectOptions,
    name: &str,
    started: Instant,
) -> Result<Connected, ConnectError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match nats(options, name).await {
            Ok(connected) => return Ok(connected),
            Err(e @ ConnectError::Nats { .. })
                if started.elapsed() + delay <= options.ready_deadline =>
            {
                debug!(error = %e, ?delay, "NATS refused the connection; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects the service of contract `S`.
pub async fn connect<S: Contract>(options: ConnectOptions) -> Result<S, ConnectError> {
    let started = Instant::now();
    let mut connected = nats_within(&options, S::ID, started).await?;
    let mut client = connected.client.clone();
    let authority = AuthorityClient::new(client.clone(), options.deployment.clone())
        .with_timeout(options.request_timeout);
    let mut delay = Duration::from_millis(20);
    let mut auth;
    // This build's resources, read from its manifest once it is known to
    // be an earlier build in a rollout.
    let mut declared: Option<Declared> = None;
    let status = loop {
        // An authority that is briefly away (restarting, electing its
        // bucket's leader) is waited for within the same deadline.
        let reply = match authority.bindings(S::ID, S::DIGEST).await {
            Ok(reply) => reply,
            Err(e @ (ClientError::Unavailable { .. } | ClientError::Timeout(_)))
                if started.elapsed() + delay <= options.ready_deadline =>
            {
                debug!(error = %e, ?delay, "the authority does not answer yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        auth = reply.auth.clone();
        let Some(accepted) = reply.accepted_digest else {
            return Err(ConnectError::NotAccepted {
                id: S::ID.to_owned(),
            });
        };
        // An earlier digest still live in a rollout runs on the accepted
        // digest's bindings (a safe plan only extends them).
        if accepted != S::DIGEST && !reply.live_digests.iter().any(|d| d == S::DIGEST) {
            if let Some(retired) = reply.retired {
                return Err(ConnectError::Retired {
                    id: S::ID.to_owned(),
                    digest: retired.digest,
                    reason: retired.reason,
                    retired_ms: retired.retired_ms,
                    accepted,
                });
            }
            return Err(ConnectError::DigestMismatch {
                id: S::ID.to_owned(),
                local: S::DIGEST.to_owned(),
                accepted,
            });
        }
        let earlier = accepted != S::DIGEST;
        let mut missing = unready(reply.status.as_ref(), &accepted);
        if earlier {
            // An earlier build waits only for the resources it declares
            // (the accepted build may add one that is still failing).
            let ours = declared.get_or_insert_with(|| Declared::of(S::MANIFEST_JSON));
            missing.retain(|u| ours.covers(u));
        }
        match reply.status {
            Some(status) if missing.is_empty() && (earlier || status.phase == Phase::Ready) => {
                break status;
            }
            _ => {
                if started.elapsed() + delay > options.ready_deadline {
                    return Err(ConnectError::NotReady {
                        id: S::ID.to_owned(),
                        waited: started.elapsed(),
                        unready: missing,
                    });
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    };
    if auth.is_some() {
        // The server fixed this connection's permissions when it was
        // authorized, possibly before reconciliation bound the resources:
        // connect again so they cover the bindings the service will use.
        connected = nats(&options, S::ID).await?;
        let _ = client.drain().await;
        client = connected.client.clone();
    }
    let js = jetstream::new(client.clone());
    let verifier = match &auth {
        Some(auth) => Some(
            Verifier::start(&js, &auth.callers_bucket)
                .await
                .map_err(ConnectError::Verification)?,
        ),
        None => None,
    };
    let mut bindings = Bindings::new(
        ServiceRuntime::new(
            client,
            &options.deployment,
            S::ID,
            options.request_timeout,
            connected.principal,
        )
        .with_digest(S::DIGEST)
        .with_ledger_bucket(status.bindings.ledger.as_ref().map(|b| b.bucket.clone()))
        .with_signer(connected.signer)
        .with_denials(connected.denials)
        .with_verifier(verifier),
    );
    let opened =
        futures::future::join_all(status.bindings.kv.into_iter().map(|(alias, binding)| {
            let js = js.clone();
            async move {
                let store = js.get_key_value(&binding.bucket).await;
                (alias, binding, store)
            }
        }))
        .await;
    for (alias, binding, store) in opened {
        let store = store.map_err(|e| ConnectError::Open {
            kind: "kv",
            alias: alias.clone(),
            reason: e.to_string(),
        })?;
        bindings.insert_kv(alias, binding, store);
    }
    bindings.set_consumers(status.bindings.consumers);
    for (alias, binding) in status.bindings.store {
        bindings.insert_store(alias, binding, js.clone());
    }
    Ok(S::from_bindings(&bindings)?)
}
