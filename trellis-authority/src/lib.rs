//! The deployment authority: a control plane served over NATS.
//!
//! It takes contract proposals, answers with a [`Plan`], records accepted
//! contracts as desired state in a JetStream KV bucket (so it survives
//! restarts and is shared by every instance), reconciles them into real
//! KV buckets and object stores, and serves each service its bindings.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_authority::{Authority, AuthorityConfig};
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let authority = Authority::start(client, AuthorityConfig::local("dev")).await?;
//! // ... serve until shutdown
//! authority.shutdown().await;
//! # Ok(()) }
//! ```

pub mod callout;
pub(crate) mod consumers;
pub(crate) mod naming;
pub(crate) mod permissions;
pub mod plan;
pub mod principals;
pub mod provision;
pub mod public_state;
mod reconcile;
pub(crate) mod state;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, warn};
use trellis_manifest::manifest::Manifest;

use callout::{AuthSettings, CALLOUT_SUBJECT, CalloutRequest};
use naming::{lineage_key, physical_name, valid_scope_name};
use permissions::Deployed;
use plan::Existing;
use principals::Principals;
use reconcile::Reconciler;
use state::{Desired, StateStore, now_ms};
use trellis_runtime::protocol::*;

/// Where and how the authority provisions.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// Deployment name (scopes subjects, state and physical names).
    pub deployment: String,
    /// Profile name (`local`, `cluster`, ...).
    pub profile: String,
    /// Replicas per provisioned resource (R1 locally, R3 on a cluster).
    pub replicas: usize,
    /// How often every contract is re-checked for drift.
    pub reconcile_interval: Duration,
    /// Authentication: when set, the authority serves the server's auth
    /// callout and keeps the principal registry.
    pub auth: Option<AuthSettings>,
}

impl AuthorityConfig {
    /// The local profile: one replica.
    pub fn local(deployment: &str) -> Self {
        AuthorityConfig {
            deployment: deployment.to_owned(),
            profile: "local".to_owned(),
            replicas: 1,
            reconcile_interval: Duration::from_secs(2),
            auth: None,
        }
    }

    /// The cluster profile: three replicas.
    pub fn cluster(deployment: &str) -> Self {
        AuthorityConfig {
            profile: "cluster".to_owned(),
            replicas: 3,
            ..Self::local(deployment)
        }
    }

    /// The physical name of a resource of contract `id` in this deployment
    /// and profile.
    pub(crate) fn physical(&self, id: &str, kind: ResourceKind, alias: &str) -> String {
        physical_name(&self.deployment, &self.profile, id, kind.as_str(), alias)
    }

    /// Sets the drift-check interval.
    pub fn reconcile_interval(mut self, interval: Duration) -> Self {
        self.reconcile_interval = interval;
        self
    }

    /// Turns authentication on.
    pub fn auth(mut self, settings: AuthSettings) -> Self {
        self.auth = Some(settings);
        self
    }
}

/// Why the authority could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Deployment or profile name unusable in subjects.
    #[error("invalid {what} name `{name}`: use 1-32 lowercase letters, digits or `-`")]
    InvalidName {
        /// `deployment` or `profile`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The state bucket could not be opened.
    #[error(transparent)]
    State(#[from] AuthorityError),
    /// Subscribing failed.
    #[error("subscribing to authority requests failed: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The subscription could not be confirmed with the server.
    #[error("confirming the authority's subscription failed: {0}")]
    Confirm(String),
    /// The public state service (`trellis.state@v1`) could not start.
    #[error("starting the public state service failed: {0}")]
    PublicState(String),
}

/// A running authority; stops when shut down or dropped.
pub struct Authority {
    tasks: Vec<JoinHandle<()>>,
    wake: Arc<Notify>,
    inner: Arc<Inner>,
    public_state: Option<trellis_runtime::RpcServer>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    state: StateStore,
    config: AuthorityConfig,
    reconciler: Reconciler,
    wake: Arc<Notify>,
    principals: Option<Principals>,
    /// Connections this instance authorized, by principal key: (server
    /// id, client id), so a revocation can disconnect them.
    sessions: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, u64)>>>,
}

impl Authority {
    /// Starts serving requests and reconciling. Several instances may run
    /// against one deployment: requests are load-balanced through a queue
    /// group and reconciliation is coordinated through KV leases.
    pub async fn start(
        client: async_nats::Client,
        config: AuthorityConfig,
    ) -> Result<Authority, StartError> {
        for (what, name) in [
            ("deployment", &config.deployment),
            ("profile", &config.profile),
        ] {
            if !valid_scope_name(name) {
                return Err(StartError::InvalidName {
                    what,
                    name: name.clone(),
                });
            }
        }
        let js = jetstream::new(client.clone());
        let state = StateStore::open(&js, &config.deployment, config.replicas).await?;
        let principals = match &config.auth {
            Some(_) => Some(Principals::open(&js, &config.deployment, config.replicas).await?),
            None => None,
        };
        let wake = Arc::new(Notify::new());
        let holder = format!("authority-{}-{}", std::process::id(), next_instance());
        let inner = Arc::new(Inner {
            client: client.clone(),
            js: js.clone(),
            state: state.clone(),
            config: config.clone(),
            reconciler: Reconciler {
                js,
                state,
                config: config.clone(),
                holder,
            },
            wake: wake.clone(),
            principals,
            sessions: std::sync::Mutex::default(),
        });
        let subject = authority_subject(&config.deployment, "*");
        let mut requests = client
            .queue_subscribe(subject, format!("trellis-authority-{}", config.deployment))
            .await?;
        let mut tasks = Vec::new();
        if config.auth.is_some() {
            let mut callouts = client
                .queue_subscribe(
                    CALLOUT_SUBJECT,
                    format!("trellis-callout-{}", config.deployment),
                )
                .await?;
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(message) = callouts.next().await {
                    let inner = inner.clone();
                    tokio::spawn(async move { inner.callout(message).await });
                }
            }));
        }
        trellis_runtime::internal::confirm_subscriptions(&client)
            .await
            .map_err(|e| StartError::Confirm(e.to_string()))?;
        let server = {
            let inner = inner.clone();
            tokio::spawn(async move {
                while let Some(message) = requests.next().await {
                    let inner = inner.clone();
                    tokio::spawn(async move { inner.handle(message).await });
                }
            })
        };
        let reconciler = {
            let inner = inner.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = inner.reconciler.pass().await {
                        warn!(error = %e, "reconcile pass failed");
                    }
                    let _ = tokio::time::timeout(
                        inner.config.reconcile_interval,
                        inner.wake.notified(),
                    )
                    .await;
                }
            })
        };
        tasks.extend([server, reconciler]);
        let public_state =
            Some(start_public_state(&client, &inner.js, &config, &inner.state).await?);
        Ok(Authority {
            tasks,
            wake,
            inner,
            public_state,
        })
    }

    /// Registers (or re-registers, keeping its capabilities) a principal
    /// key directly, without a request: how a deployment bootstraps its
    /// first operator.
    pub async fn register_principal(
        &self,
        request: RegisterRequest,
    ) -> Result<PrincipalRecord, AuthorityError> {
        self.inner.principals()?.register(request).await
    }

    /// Runs a reconcile pass now instead of waiting for the interval.
    pub fn reconcile_now(&self) {
        self.wake.notify_one();
    }

    /// Stops serving and reconciling.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.public_state.take() {
            server.abort();
        }
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if let Some(server) = self.public_state.take() {
            server.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves `trellis.state@v1`, verifying callers when the deployment
/// authenticates.
async fn start_public_state(
    client: &async_nats::Client,
    js: &jetstream::Context,
    config: &AuthorityConfig,
    authority_state: &StateStore,
) -> Result<trellis_runtime::RpcServer, StartError> {
    let data = StateStore::open_bucket(
        js,
        &public_state::bucket_name(&config.deployment),
        1,
        config.replicas,
    )
    .await?;
    let verifier = match &config.auth {
        Some(auth) => Some(
            trellis_runtime::internal::Verifier::start(
                js,
                &principals::bucket_name(&config.deployment),
                auth.skew_window,
            )
            .await
            .map_err(StartError::PublicState)?,
        ),
        None => None,
    };
    let runtime = trellis_runtime::internal::ServiceRuntime::new(
        client.clone(),
        &config.deployment,
        trellis_runtime::state::STATE_CONTRACT,
        Duration::from_secs(5),
        trellis_runtime::principal::Principal::new("authority"),
    )
    .with_verifier(verifier);
    public_state::serve(&runtime, data, authority_state.clone())
        .await
        .map_err(|e| StartError::PublicState(e.to_string()))
}

fn next_instance() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, AuthorityError> {
    serde_json::from_slice(payload).map_err(|e| AuthorityError::BadRequest {
        message: format!("request does not decode: {e}"),
    })
}

impl Inner {
    async fn handle(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            return;
        };
        let op = message
            .subject
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        debug!(op = %op, "authority request");
        let payload = match op.as_str() {
            "plan" => encode(self.plan(&message.payload).await),
            "accept" => encode(self.accept(&message.payload).await),
            "bindings" => encode(self.bindings(&message.payload).await),
            "status" => encode(self.status().await),
            "purge" => encode(self.purge(&message.payload).await),
            "register" => encode(self.register(&message.payload).await),
            "grant" => encode(self.grant(&message.payload).await),
            "revoke" => encode(self.revoke(&message.payload).await),
            "principals" => encode(self.list_principals().await),
            other => encode::<()>(Err(AuthorityError::BadRequest {
                message: format!("unknown authority operation `{other}`"),
            })),
        };
        if let Err(e) = self.client.publish(reply, payload.into()).await {
            warn!(error = %e, "could not send authority reply");
        }
    }

    async fn existing(
        &self,
        id: &str,
        manifest: &Manifest,
    ) -> Vec<((ResourceKind, String), Existing)> {
        let mut out = Vec::new();
        let Some(resources) = &manifest.resources else {
            return out;
        };
        let replicas = self.config.replicas;
        let wanted = resources
            .kv
            .iter()
            .map(|(alias, kv)| {
                let b =
                    provision::kv_binding(&self.config.physical(id, ResourceKind::Kv, alias), kv);
                (
                    ResourceKind::Kv,
                    alias.clone(),
                    trellis_runtime::layout::kv_stream_config(&b, replicas),
                )
            })
            .chain(resources.store.iter().map(|(alias, st)| {
                let b = provision::store_binding(
                    &self.config.physical(id, ResourceKind::Store, alias),
                    st,
                );
                (
                    ResourceKind::Store,
                    alias.clone(),
                    trellis_runtime::layout::object_stream_config(&b, replicas),
                )
            }));
        for (kind, alias, config) in wanted {
            let found = match self.js.get_stream(&config.name).await {
                Ok(stream) => {
                    match provision::incompatibility(&stream.cached_info().config, &config) {
                        Some(why) => Existing::Incompatible(why),
                        None => Existing::Compatible,
                    }
                }
                Err(_) => Existing::Absent,
            };
            out.push(((kind, alias), found));
        }
        out
    }

    async fn make_plan(
        &self,
        text: &str,
    ) -> Result<(Plan, Manifest, Option<state::Versioned<Desired>>, String), AuthorityError> {
        let checked = trellis_manifest::check_manifest(text).map_err(|e| {
            AuthorityError::InvalidManifest {
                problems: e.to_string().lines().map(str::to_owned).collect(),
            }
        })?;
        let manifest = checked.manifest;
        let canonical = manifest.to_canonical_string();
        let key = format!("contract.{}.desired", lineage_key(&manifest.id));
        let previous = self.state.read::<Desired>(&key).await?;
        let previous_manifest: Option<Manifest> = match &previous {
            Some(p) => Some(serde_json::from_str(&p.value.manifest).map_err(state::storage)?),
            None => None,
        };
        let used = consumers::used_manifests(&self.state, &manifest).await?;
        let problems = consumers::uses_problems(&manifest, &used);
        if !problems.is_empty() {
            return Err(AuthorityError::UnknownUses { problems });
        }
        let existing = self.existing(&manifest.id, &manifest).await;
        let id = manifest.id.clone();
        let mut plan = plan::compute(
            previous_manifest.as_ref(),
            &manifest,
            &checked.digest,
            previous.as_ref().map(|p| p.value.digest.as_str()),
            &|kind, alias| self.config.physical(&id, kind, alias),
            &|kind, alias| {
                existing
                    .iter()
                    .find(|((k, a), _)| *k == kind && a == alias)
                    .map(|(_, e)| e.clone())
                    .unwrap_or(Existing::Absent)
            },
        );
        let wanted = consumers::wanted(&self.config, &manifest, &used);
        let installed = self.installed_consumers(&manifest.id).await?;
        let mut on_server = Vec::new();
        for w in wanted.iter().filter(|w| !installed.contains_key(&w.alias)) {
            on_server.push((w.alias.clone(), self.existing_consumer(w).await));
        }
        plan.items
            .extend(plan::consumer_items(&installed, &wanted, &|alias| {
                on_server
                    .iter()
                    .find(|(a, _)| a == alias)
                    .map(|(_, e)| e.clone())
                    .unwrap_or(Existing::Absent)
            }));
        Ok((plan, manifest, previous, canonical))
    }

    /// The consumers the last reconcile of `id` provisioned, by alias.
    async fn installed_consumers(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, ConsumerBinding>, AuthorityError> {
        let key = format!("contract.{}.state", lineage_key(id));
        let state = self.state.read::<ContractState>(&key).await?;
        Ok(state
            .map(|s| consumers::by_alias(&s.value.bindings.consumers))
            .unwrap_or_default())
    }

    /// What sits on the server under a wanted consumer's name.
    async fn existing_consumer(&self, wanted: &consumers::WantedConsumer) -> Existing {
        let Ok(binding) = &wanted.binding else {
            return Existing::Absent;
        };
        let Ok(stream) = self.js.get_stream(&binding.stream).await else {
            return Existing::Absent;
        };
        match stream.consumer_info(&binding.consumer).await {
            Ok(info) => {
                let diff =
                    provision::consumer_diff(&info.config, &provision::consumer_config(binding));
                if diff.fixed.is_empty() {
                    Existing::Compatible
                } else {
                    Existing::Incompatible(diff.fixed.join(", "))
                }
            }
            Err(_) => Existing::Absent,
        }
    }

    async fn plan(&self, payload: &[u8]) -> Result<Plan, AuthorityError> {
        let request: PlanRequest = decode(payload)?;
        Ok(self.make_plan(&request.manifest).await?.0)
    }

    async fn accept(&self, payload: &[u8]) -> Result<AcceptReply, AuthorityError> {
        let request: AcceptRequest = decode(payload)?;
        let (plan, manifest, previous, canonical) = self.make_plan(&request.manifest).await?;
        if plan.is_dangerous() && !request.allow_dangerous {
            return Err(AuthorityError::Dangerous {
                plan: Box::new(plan),
            });
        }
        let generation = previous.as_ref().map_or(0, |p| p.value.generation) + 1;
        let desired = Desired {
            id: manifest.id.clone(),
            digest: plan.digest.clone(),
            manifest: canonical,
            generation,
            accepted_ms: now_ms(),
            recreate_consumers: plan
                .items
                .iter()
                .filter(|i| {
                    i.kind == ResourceKind::Consumer
                        && i.is_dangerous()
                        && i.change != Change::Removed
                })
                .map(|i| i.alias.clone())
                .collect(),
        };
        let key = format!("contract.{}.desired", lineage_key(&manifest.id));
        let written = self
            .state
            .write_cas(&key, &desired, previous.as_ref().map(|p| p.revision))
            .await?;
        if written.is_none() {
            return Err(AuthorityError::Conflict { id: manifest.id });
        }
        // Accepting a previously detached alias again re-attaches its data.
        for item in &plan.items {
            if item.change == Change::Added {
                let _ = self
                    .state
                    .delete(&format!("orphan.{}", item.physical))
                    .await;
            }
        }
        self.wake.notify_one();
        Ok(AcceptReply { plan, generation })
    }

    async fn bindings(&self, payload: &[u8]) -> Result<BindingsReply, AuthorityError> {
        let request: BindingsRequest = decode(payload)?;
        let lineage = lineage_key(&request.id);
        let (desired_key, state_key) = (
            format!("contract.{lineage}.desired"),
            format!("contract.{lineage}.state"),
        );
        let (desired, state) = tokio::join!(
            self.state.read::<Desired>(&desired_key),
            self.state.read::<ContractState>(&state_key),
        );
        let (desired, state) = (desired?, state?);
        Ok(BindingsReply {
            accepted_digest: desired.map(|d| d.value.digest),
            state: state.map(|s| s.value),
            auth: self.config.auth.as_ref().map(|a| AuthBinding {
                principals_bucket: principals::bucket_name(&self.config.deployment),
                skew_window_ms: u64::try_from(a.skew_window.as_millis()).unwrap_or(u64::MAX),
            }),
        })
    }

    fn principals(&self) -> Result<&Principals, AuthorityError> {
        self.principals.as_ref().ok_or(AuthorityError::AuthDisabled)
    }

    async fn register(&self, payload: &[u8]) -> Result<PrincipalRecord, AuthorityError> {
        self.principals()?.register(decode(payload)?).await
    }

    async fn grant(&self, payload: &[u8]) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        self.principals()?.grant(decode(payload)?).await
    }

    async fn revoke(&self, payload: &[u8]) -> Result<Vec<PrincipalRecord>, AuthorityError> {
        let request: RevokeRequest = decode(payload)?;
        let revoked = self.principals()?.revoke(&request.principal).await?;
        for record in &revoked {
            self.disconnect(&record.public_key).await;
        }
        Ok(revoked)
    }

    /// Disconnects the connections this instance authorized for `key`
    /// (they would otherwise keep their permissions until the session
    /// expires). Reconnecting is refused by the callout.
    async fn disconnect(&self, key: &str) {
        let sessions = self
            .sessions
            .lock()
            .map(|mut s| s.remove(key).unwrap_or_default())
            .unwrap_or_default();
        let Some(system) = self.config.auth.as_ref().and_then(|a| a.system.as_ref()) else {
            if !sessions.is_empty() {
                warn!(
                    key,
                    "no system connection: revoked connections stay until their session expires"
                );
            }
            return;
        };
        for (server, cid) in sessions {
            let subject = format!("$SYS.REQ.SERVER.{server}.KICK");
            let body = serde_json::json!({ "cid": cid }).to_string();
            let asked =
                tokio::time::timeout(Duration::from_secs(2), system.request(subject, body.into()))
                    .await;
            match asked {
                Ok(Ok(reply)) => {
                    debug!(cid, reply = %String::from_utf8_lossy(&reply.payload), "kicked a revoked connection")
                }
                Ok(Err(e)) => warn!(cid, error = %e, "kicking a revoked connection failed"),
                Err(_) => warn!(cid, "kicking a revoked connection timed out"),
            }
        }
    }

    /// Every accepted contract with its last good bindings.
    async fn deployed(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Deployed>, AuthorityError> {
        let mut out = std::collections::BTreeMap::new();
        for key in self.state.keys("contract.*.desired").await? {
            let Some(desired) = self.state.read::<Desired>(&key).await? else {
                continue;
            };
            // The last manifest that reconciled to ready, if any: a newer
            // accept that fails to reconcile does not change permissions.
            let ready = self
                .state
                .read::<Desired>(&key.replace(".desired", ".ready"))
                .await?;
            let text = ready.map_or(desired.value.manifest, |r| r.value.manifest);
            let manifest: Manifest = serde_json::from_str(&text).map_err(state::storage)?;
            let state_key = key.replace(".desired", ".state");
            let bindings = self
                .state
                .read::<ContractState>(&state_key)
                .await?
                .map(|s| s.value.bindings);
            out.insert(desired.value.id, Deployed { manifest, bindings });
        }
        Ok(out)
    }

    async fn list_principals(&self) -> Result<PrincipalsReply, AuthorityError> {
        let Some(registry) = &self.principals else {
            return Ok(PrincipalsReply {
                auth: false,
                principals: Vec::new(),
            });
        };
        let deployed = self.deployed().await?;
        let bucket = principals::bucket_name(&self.config.deployment);
        let principals = registry
            .list()
            .await?
            .into_iter()
            .map(|record| PrincipalReport {
                permissions: (!record.revoked).then(|| {
                    permissions::compute(&self.config.deployment, &record, &deployed, &bucket)
                }),
                record,
            })
            .collect();
        Ok(PrincipalsReply {
            auth: true,
            principals,
        })
    }

    /// Answers one auth callout request.
    async fn callout(&self, message: async_nats::Message) {
        let (Some(reply), Some(settings)) = (message.reply.clone(), self.config.auth.as_ref())
        else {
            return;
        };
        let request = match std::str::from_utf8(&message.payload)
            .map_err(|e| callout::JwtError(e.to_string()))
            .and_then(CalloutRequest::parse)
        {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "unusable auth callout request");
                return;
            }
        };
        let decided = self.authorize(&request).await;
        let response = match &decided {
            Ok((record, permissions)) => {
                debug!(principal = %record.id, kind = record.kind.as_str(), "connection authorized");
                if let (Some(cid), Ok(mut sessions)) = (request.client_id, self.sessions.lock()) {
                    let list = sessions.entry(record.public_key.clone()).or_default();
                    // Bounded: the most recent connections of each key.
                    if list.len() >= 256 {
                        list.remove(0);
                    }
                    list.push((request.server_id.clone(), cid));
                }
                callout::respond(settings, &request, Ok((record, permissions)))
            }
            Err(why) => {
                warn!(reason = %why, "connection refused");
                callout::respond(settings, &request, Err(why.clone()))
            }
        };
        match response {
            Ok(token) => {
                if let Err(e) = self.client.publish(reply, token.into()).await {
                    warn!(error = %e, "could not answer the auth callout");
                }
            }
            Err(e) => warn!(error = %e, "could not sign the auth callout response"),
        }
    }

    async fn authorize(
        &self,
        request: &CalloutRequest,
    ) -> Result<(PrincipalRecord, Permissions), String> {
        let key = request.proven_key()?;
        let registry = self.principals().map_err(|e| e.to_string())?;
        let record = registry
            .get(key)
            .await
            .map_err(|e| format!("principal lookup failed: {e}"))?
            .ok_or_else(|| format!("key {key} is not a registered principal"))?;
        if record.revoked {
            return Err(format!("principal `{}` is revoked", record.id));
        }
        let deployed = self
            .deployed()
            .await
            .map_err(|e| format!("reading accepted contracts failed: {e}"))?;
        let bucket = principals::bucket_name(&self.config.deployment);
        let permissions =
            permissions::compute(&self.config.deployment, &record, &deployed, &bucket);
        Ok((record, permissions))
    }

    async fn status(&self) -> Result<StatusReply, AuthorityError> {
        let mut contracts = Vec::new();
        for key in self.state.keys("contract.>").await? {
            let Some(lineage) = key
                .strip_prefix("contract.")
                .and_then(|k| k.strip_suffix(".desired"))
            else {
                continue;
            };
            let Some(desired) = self.state.read::<Desired>(&key).await? else {
                continue;
            };
            let state = self
                .state
                .read::<ContractState>(&format!("contract.{lineage}.state"))
                .await?;
            contracts.push(ContractReport {
                id: desired.value.id,
                digest: desired.value.digest,
                generation: desired.value.generation,
                state: state.map(|s| s.value),
            });
        }
        let mut orphans = Vec::new();
        for key in self.state.keys("orphan.>").await? {
            if let Some(o) = self.state.read::<Orphan>(&key).await? {
                orphans.push(o.value);
            }
        }
        Ok(StatusReply {
            deployment: self.config.deployment.clone(),
            profile: self.config.profile.clone(),
            replicas: self.config.replicas,
            contracts,
            orphans,
        })
    }

    async fn purge(&self, payload: &[u8]) -> Result<Orphan, AuthorityError> {
        let request: PurgeRequest = decode(payload)?;
        let key = format!("orphan.{}", request.physical);
        let Some(orphan) = self.state.read::<Orphan>(&key).await? else {
            return Err(AuthorityError::NotFound {
                what: format!(
                    "orphan `{}` (only detached resources can be purged)",
                    request.physical
                ),
            });
        };
        let stream = match orphan.value.kind {
            ResourceKind::Kv | ResourceKind::State => {
                trellis_runtime::layout::kv_stream_name(&orphan.value.physical)
            }
            ResourceKind::Store => {
                trellis_runtime::layout::object_stream_name(&orphan.value.physical)
            }
            ResourceKind::Events | ResourceKind::Consumer => orphan.value.physical.clone(),
        };
        match self.js.delete_stream(&stream).await {
            Ok(_) => {}
            Err(e) => {
                if !matches!(e.kind(), jetstream::context::DeleteStreamErrorKind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
                {
                    return Err(state::storage(e));
                }
            }
        }
        self.state.delete(&key).await?;
        Ok(orphan.value)
    }
}

fn encode<T: Serialize>(result: Result<T, AuthorityError>) -> Vec<u8> {
    let reply = match result {
        Ok(v) => Reply::Ok(v),
        Err(e) => Reply::Err(e),
    };
    serde_json::to_vec(&reply).unwrap_or_else(|e| {
        format!(r#"{{"err":{{"error":"storage","message":"reply does not encode: {e}"}}}}"#)
            .into_bytes()
    })
}
