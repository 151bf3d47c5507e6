//! Bindings: which physical resource backs each logical alias, opened and
//! ready. Only the runtime builds them (in `connect`); generated code turns
//! them into a contract's typed `Service`.

use std::collections::BTreeMap;
use std::fmt;

use async_nats::jetstream;

use crate::kv::KvHandle;
use crate::protocol::{KvBinding, StoreBinding};
use crate::store::StoreHandle;

/// Why a contract's bindings could not produce its service object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// A required resource has no binding (not provisioned yet, or failed).
    #[error("required {kind} `{alias}` has no binding: {reason}")]
    Missing {
        /// `kv` or `store`.
        kind: &'static str,
        /// The logical alias.
        alias: String,
        /// Why (e.g. the reconcile status).
        reason: String,
    },
}

/// Every opened binding of one contract. Only the runtime creates these.
pub struct Bindings {
    runtime: ServiceRuntime,
    kv: BTreeMap<String, (KvBinding, jetstream::kv::Store)>,
    store: BTreeMap<String, (StoreBinding, jetstream::Context)>,
    consumers: BTreeMap<String, Vec<crate::protocol::ConsumerBinding>>,
}

/// The connection a service or client runs on: NATS, deployment and
/// contract. Only the runtime creates it.
#[derive(Clone)]
pub struct ServiceRuntime {
    client: async_nats::Client,
    deployment: String,
    contract_id: String,
    request_timeout: std::time::Duration,
    principal: crate::principal::Principal,
    state: std::sync::Arc<tokio::sync::OnceCell<async_nats::jetstream::kv::Store>>,
    state_bucket: Option<String>,
    signer: Option<crate::identity::Signer>,
    verifier: Option<std::sync::Arc<crate::verify::Verifier>>,
    denials: Option<crate::connect::Denials>,
}

impl fmt::Debug for ServiceRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceRuntime")
            .field("deployment", &self.deployment)
            .field("contract", &self.contract_id)
            .finish_non_exhaustive()
    }
}

impl ServiceRuntime {
    /// A runtime for contract `contract_id` in `deployment`, calling as
    /// `principal`.
    pub fn new(
        client: async_nats::Client,
        deployment: &str,
        contract_id: &str,
        request_timeout: std::time::Duration,
        principal: crate::principal::Principal,
    ) -> Self {
        ServiceRuntime {
            client,
            deployment: deployment.to_owned(),
            contract_id: contract_id.to_owned(),
            request_timeout,
            principal,
            state: std::sync::Arc::default(),
            state_bucket: None,
            signer: None,
            verifier: None,
            denials: None,
        }
    }

    /// Reports the server's permission violations on this connection.
    pub(crate) fn with_denials(mut self, denials: Option<crate::connect::Denials>) -> Self {
        self.denials = denials;
        self
    }

    /// A receiver of this connection's permission violations (with auth).
    pub(crate) fn denials(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.denials.as_ref().map(|d| d.subscribe())
    }

    /// Signs this connection's requests with `signer`.
    pub(crate) fn with_signer(mut self, signer: Option<crate::identity::Signer>) -> Self {
        self.signer = signer;
        self
    }

    /// Verifies callers of this service with `verifier`.
    pub fn with_verifier(mut self, verifier: Option<crate::verify::Verifier>) -> Self {
        self.verifier = verifier.map(std::sync::Arc::new);
        self
    }

    /// Adds the caller's identity to a request to `subject`: a signed
    /// proof when this connection has a key, else the asserted principal
    /// (only when `assert_principal`).
    pub(crate) fn identify(
        &self,
        subject: &str,
        payload: &[u8],
        headers: &mut async_nats::HeaderMap,
        assert_principal: bool,
    ) {
        match &self.signer {
            Some(signer) => signer.prove(subject, payload).write(headers),
            None if assert_principal => self.principal.write(headers),
            None => {}
        }
    }

    /// Whether this service verifies its callers (the deployment
    /// authenticates); capability gates are enforced only then.
    pub(crate) fn authenticates(&self) -> bool {
        self.verifier.is_some()
    }

    /// The caller of a request this service received: verified against
    /// the published principals in a deployment with authentication, else
    /// the principal the request asserts (or an anonymous one).
    pub(crate) async fn caller(
        &self,
        message: &async_nats::Message,
    ) -> Result<crate::principal::Principal, crate::identity::ProofError> {
        match &self.verifier {
            Some(v) => {
                v.verify(
                    &message.subject,
                    message.reply.as_deref(),
                    message.headers.as_ref(),
                    &message.payload,
                )
                .await
            }
            None => Ok(crate::principal::Principal::of_request(
                message.headers.as_ref(),
            )),
        }
    }

    /// Sets the state bucket the authority provisioned for this contract.
    pub(crate) fn with_state_bucket(mut self, bucket: Option<String>) -> Self {
        self.state_bucket = bucket;
        self
    }

    /// The runtime-owned state bucket of this contract (operations,
    /// grants), as the authority provisioned it; opened once per connection.
    pub(crate) async fn state(
        &self,
    ) -> Result<async_nats::jetstream::kv::Store, crate::rpc::ServeError> {
        let Some(bucket) = &self.state_bucket else {
            return Err(crate::rpc::ServeError::OperationState {
                bucket: String::new(),
                reason: format!(
                    "contract {} has no state bucket binding: only services of a contract with \
                     operations or receive transfers have one, provisioned when it is accepted",
                    self.contract_id
                ),
            });
        };
        self.state
            .get_or_try_init(|| crate::operation::server::open_state(&self.client, bucket))
            .await
            .cloned()
    }

    /// The same connection and caller, addressing contract `id` (used by
    /// generated `uses` facades).
    #[doc(hidden)]
    pub fn for_contract(&self, id: &str) -> ServiceRuntime {
        ServiceRuntime {
            client: self.client.clone(),
            deployment: self.deployment.clone(),
            contract_id: id.to_owned(),
            request_timeout: self.request_timeout,
            principal: self.principal.clone(),
            state: std::sync::Arc::default(),
            state_bucket: None,
            signer: self.signer.clone(),
            verifier: None,
            denials: self.denials.clone(),
        }
    }

    /// The NATS connection.
    pub(crate) fn nats(&self) -> &async_nats::Client {
        &self.client
    }

    /// The deployment.
    pub(crate) fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The contract id.
    pub(crate) fn contract_id(&self) -> &str {
        &self.contract_id
    }

    /// Timeout of single requests.
    pub(crate) fn request_timeout(&self) -> std::time::Duration {
        self.request_timeout
    }

    /// Serves RPC endpoints (used by generated code).
    #[doc(hidden)]
    pub async fn serve(
        &self,
        endpoints: crate::rpc::Endpoints,
        options: crate::rpc::ServeOptions,
    ) -> Result<crate::rpc::RpcServer, crate::rpc::ServeError> {
        crate::rpc::serve(self, endpoints, options).await
    }

    /// A caller of this contract's RPCs (used by generated code).
    #[doc(hidden)]
    pub fn rpc_client(&self) -> crate::rpc::RpcClient {
        crate::rpc::RpcClient::new(self.clone())
    }
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bindings")
            .field("kv", &self.kv.keys().collect::<Vec<_>>())
            .field("store", &self.store.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Proof that a value was built by the runtime; private constructor.
#[derive(Debug)]
pub struct Sealed(());

/// Implemented by the `Service` type `#[trellis::contract]` generates.
pub trait Contract: Sized {
    /// Contract id.
    const ID: &'static str;
    /// Contract digest.
    const DIGEST: &'static str;
    /// Canonical manifest.
    const MANIFEST_JSON: &'static str;

    /// Builds the typed service object from resolved bindings.
    fn from_bindings(bindings: &Bindings) -> Result<Self, BindError>;
}

impl Bindings {
    pub(crate) fn new(runtime: ServiceRuntime) -> Self {
        Bindings {
            runtime,
            kv: BTreeMap::new(),
            store: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    pub(crate) fn insert_kv(
        &mut self,
        alias: String,
        binding: KvBinding,
        store: jetstream::kv::Store,
    ) {
        self.kv.insert(alias, (binding, store));
    }

    pub(crate) fn insert_store(
        &mut self,
        alias: String,
        binding: StoreBinding,
        js: jetstream::Context,
    ) {
        self.store.insert(alias, (binding, js));
    }

    pub(crate) fn set_consumers(
        &mut self,
        consumers: BTreeMap<String, Vec<crate::protocol::ConsumerBinding>>,
    ) {
        self.consumers = consumers;
    }

    /// The handle of consumer group `group` (bound to every source the
    /// authority provisioned for it).
    #[doc(hidden)]
    pub fn consumer<E: crate::consumer::GroupEvent>(
        &self,
        group: &'static str,
    ) -> Result<crate::consumer::EventConsumer<E>, BindError> {
        let bindings = self
            .consumers
            .get(group)
            .cloned()
            .ok_or_else(|| Self::missing("consumer", group))?;
        Ok(crate::consumer::EventConsumer::new(
            self.runtime.clone(),
            group,
            bindings,
        ))
    }

    /// The connection the service runs on (used by generated code).
    #[doc(hidden)]
    pub fn runtime(&self) -> ServiceRuntime {
        self.runtime.clone()
    }

    /// Seals a generated service object.
    #[doc(hidden)]
    pub fn seal(&self) -> Sealed {
        Sealed(())
    }

    fn missing(kind: &'static str, alias: &str) -> BindError {
        BindError::Missing {
            kind,
            alias: alias.to_owned(),
            reason: "no binding was persisted for this alias".to_owned(),
        }
    }

    /// The handle of required KV alias `alias`.
    #[doc(hidden)]
    pub fn kv<T>(&self, alias: &str) -> Result<KvHandle<T>, BindError> {
        self.kv_optional(alias)?
            .ok_or_else(|| Self::missing("kv", alias))
    }

    /// The handle of optional KV alias `alias`, if bound.
    #[doc(hidden)]
    pub fn kv_optional<T>(&self, alias: &str) -> Result<Option<KvHandle<T>>, BindError> {
        Ok(self
            .kv
            .get(alias)
            .map(|(binding, store)| KvHandle::new(store.clone(), binding.clone())))
    }

    /// The handle of required store alias `alias`.
    #[doc(hidden)]
    pub fn store(&self, alias: &str) -> Result<StoreHandle, BindError> {
        self.store_optional(alias)?
            .ok_or_else(|| Self::missing("store", alias))
    }

    /// The handle of optional store alias `alias`, if bound.
    #[doc(hidden)]
    pub fn store_optional(&self, alias: &str) -> Result<Option<StoreHandle>, BindError> {
        Ok(self
            .store
            .get(alias)
            .map(|(binding, js)| StoreHandle::new(js.clone(), binding.clone())))
    }
}
