//! The connection a service or caller runs on: NATS, deployment, contract,
//! the principal it acts as, how it proves and verifies identities, and
//! the contract's ledger bucket. Every surface takes one.

use std::fmt;

use crate::ledger::LedgerError;

/// The server's permission violations on one connection, as they arrive
/// (requests to a subject the principal may not publish to would otherwise
/// just time out).
pub(crate) type Denials = tokio::sync::broadcast::Sender<String>;

/// The connection a service or client runs on: NATS, deployment and
/// contract. Only the runtime creates it.
#[derive(Clone)]
pub struct ServiceRuntime {
    client: async_nats::Client,
    deployment: String,
    contract_id: String,
    /// The manifest digest this service was built from, when known (set
    /// by `connect`; reported on the service API).
    digest: Option<std::sync::Arc<str>>,
    request_timeout: std::time::Duration,
    principal: crate::principal::Principal,
    ledger: std::sync::Arc<tokio::sync::OnceCell<async_nats::jetstream::kv::Store>>,
    ledger_bucket: Option<String>,
    grants: std::sync::Arc<crate::ledger::GrantQuota>,
    signer: Option<crate::identity::Signer>,
    verifier: Option<std::sync::Arc<crate::verify::Verifier>>,
    /// A caller's check of live events' publishers (with authentication).
    event_verifier: Option<std::sync::Arc<crate::verify::EventVerifier>>,
    denials: Option<Denials>,
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
            digest: None,
            request_timeout,
            principal,
            ledger: std::sync::Arc::default(),
            ledger_bucket: None,
            grants: std::sync::Arc::default(),
            signer: None,
            verifier: None,
            event_verifier: None,
            denials: None,
        }
    }

    /// Records the manifest digest this service was built from.
    pub fn with_digest(mut self, digest: &str) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// The manifest digest this service was built from, when known.
    pub(crate) fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Reports the server's permission violations on this connection.
    pub(crate) fn with_denials(mut self, denials: Option<Denials>) -> Self {
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

    /// Checks the publishers of the live events this caller listens to
    /// against the deployment's published principals (a caller connected
    /// with credentials: the deployment authenticates).
    pub(crate) fn with_event_verifier(mut self) -> Self {
        self.event_verifier = Some(std::sync::Arc::new(crate::verify::EventVerifier::new(
            &self.deployment,
        )));
        self
    }

    /// Verifies callers of this service with `verifier`.
    pub fn with_verifier(mut self, verifier: Option<crate::verify::Verifier>) -> Self {
        self.verifier = verifier.map(std::sync::Arc::new);
        self
    }

    /// The subject of a request to this runtime's contract surface
    /// `manifest_subject`, below this connection's caller token (its
    /// public key with authentication).
    pub(crate) fn request_subject(&self, manifest_subject: &str) -> String {
        let caller = self
            .signer
            .as_ref()
            .map_or(crate::wire::subjects::NO_CALLER, |s| s.public_key_str());
        crate::wire::subjects::request_subject(
            &self.deployment,
            caller,
            &self.contract_id,
            manifest_subject,
        )
    }

    /// What this service subscribes to for requests to its surface
    /// `manifest_subject` (from every caller).
    pub(crate) fn served_subject(&self, manifest_subject: &str) -> String {
        crate::wire::subjects::served_subject(&self.deployment, &self.contract_id, manifest_subject)
    }

    /// Adds the asserted principal to a request when `assert_principal`
    /// and this connection has no key (a deployment without
    /// authentication). With a key, the request subject names the caller
    /// and nats-server proves it.
    pub(crate) fn identify(&self, headers: &mut async_nats::HeaderMap, assert_principal: bool) {
        if self.signer.is_none() && assert_principal {
            self.principal.write(headers);
        }
    }

    /// Signs an event this service publishes on `subject` with its key
    /// (nothing without one): consumers tell a genuine event from one
    /// nats-server was made to deliver on someone's behalf.
    pub(crate) fn sign_event(
        &self,
        subject: &str,
        payload: &[u8],
        headers: &mut async_nats::HeaderMap,
    ) {
        if let Some(signer) = &self.signer {
            signer.prove(subject, payload).write(headers);
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
                v.verify(&self.deployment, &message.subject, message.reply.as_deref())
                    .await
            }
            None => Ok(crate::principal::Principal::of_request(
                message.headers.as_ref(),
            )),
        }
    }

    /// Checks that an event of `contract` on `subject` was published by one
    /// of that contract's services, in a deployment that authenticates
    /// (always `Ok` without authentication).
    pub(crate) async fn verify_event(
        &self,
        contract: &str,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Result<(), crate::identity::ProofError> {
        match (&self.verifier, &self.event_verifier) {
            (Some(v), _) => v.verify_event(contract, subject, headers, payload).await,
            (None, Some(lazy)) => {
                lazy.get(&self.client)
                    .await?
                    .verify_event(contract, subject, headers, payload)
                    .await
            }
            (None, None) => Ok(()),
        }
    }

    /// The receive grants this service issued, per caller.
    pub(crate) fn grant_quota(&self) -> &crate::ledger::GrantQuota {
        &self.grants
    }

    /// Sets the ledger bucket the authority provisioned for this contract.
    pub(crate) fn with_ledger_bucket(mut self, bucket: Option<String>) -> Self {
        self.ledger_bucket = bucket;
        self
    }

    /// This contract's ledger (operation records, receive grants, rejected
    /// events), as the authority provisioned it; opened once per
    /// connection.
    pub(crate) async fn ledger(&self) -> Result<async_nats::jetstream::kv::Store, LedgerError> {
        let Some(bucket) = &self.ledger_bucket else {
            return Err(LedgerError {
                bucket: String::new(),
                reason: format!(
                    "contract {} has no ledger binding: only contracts with operations, \
                     receive transfers or consumer groups have one, provisioned when accepted",
                    self.contract_id
                ),
            });
        };
        self.ledger
            .get_or_try_init(|| crate::ledger::open(&self.client, bucket))
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
            digest: None,
            request_timeout: self.request_timeout,
            principal: self.principal.clone(),
            ledger: std::sync::Arc::default(),
            ledger_bucket: None,
            grants: std::sync::Arc::default(),
            signer: self.signer.clone(),
            // Kept to verify the events of contract `id` it listens to; it
            // serves no requests.
            verifier: self.verifier.clone(),
            event_verifier: self.event_verifier.clone(),
            denials: self.denials.clone(),
        }
    }

    /// The NATS connection this runtime uses (statistics, flush, or
    /// subjects the contract does not describe but the principal may use).
    pub fn nats(&self) -> &async_nats::Client {
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
}
