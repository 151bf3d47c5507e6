//! Shared helpers for tests against a real nats-server and authority.
#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use documents_example::DocumentsService;
use documents_example::documents;
use trellis_authority::{Authority, AuthorityConfig};
use trellis_runtime::identity::{Credentials, PrincipalKind};
use trellis_runtime::protocol::{ContractStatus, Phase, StatusReply};
use trellis_runtime::{AuthorityClient, ConnectOptions};
use trellis_testing::NatsServer;

/// Both documents capabilities.
pub const DOCS_RW: &[&str] = &["documents::read", "documents::write"];

/// A server, one authority and a client of it (deployment `test`). By
/// default the server authenticates through the authority's auth callout
/// (as `trellis dev` does): services and callers connect with credentials
/// from [`Stack::service`] / [`Stack::user`].
pub struct Stack {
    pub server: NatsServer,
    /// The running authority (`None` while a test has it stopped).
    pub authority: Option<Authority>,
    pub client: AuthorityClient,
    /// The authority's configuration (auth settings included), for tests
    /// that start more instances.
    pub config: AuthorityConfig,
    credentials: std::sync::Mutex<std::collections::HashMap<String, Credentials>>,
}

impl Stack {
    /// Stops the authority (its callout too: with auth, new connections
    /// are refused until it is back).
    pub async fn stop_authority(&mut self) {
        if let Some(authority) = self.authority.take() {
            authority.shutdown().await;
        }
    }

    /// Starts an authority again with the stack's configuration.
    pub async fn start_authority(&mut self) {
        let client = self.server.client().await.expect("client");
        self.authority = Some(
            Authority::start(client, self.config.clone())
                .await
                .expect("authority starts again"),
        );
    }

    /// Connect options with no credentials (refused when auth is on).
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions::new(self.server.url()).deployment("test")
    }

    fn auth(&self) -> bool {
        self.server.auth().is_some()
    }

    async fn enrolled(&self, kind: PrincipalKind, id: &str, contract: Option<&str>) -> Credentials {
        self.enroll(kind, id, None, contract).await
    }

    /// Registers a principal (once per kind and id; later calls return the
    /// same credentials).
    pub async fn enroll(
        &self,
        kind: PrincipalKind,
        id: &str,
        user: Option<&str>,
        contract: Option<&str>,
    ) -> Credentials {
        let key = format!("{}:{id}", kind.as_str());
        if let Some(c) = self.credentials.lock().expect("lock").get(&key) {
            return c.clone();
        }
        let creds = self
            .client
            .enroll(kind, id, user, contract)
            .await
            .unwrap_or_else(|e| panic!("enroll {key}: {e}"));
        self.credentials
            .lock()
            .expect("lock")
            .insert(key, creds.clone());
        creds
    }

    /// Options of the service principal of contract `id` (enrolled on
    /// first use; plain options without auth).
    pub async fn service(&self, id: &str) -> ConnectOptions {
        if !self.auth() {
            return self.options();
        }
        let creds = self.service_credentials(id).await;
        self.options().credentials(creds)
    }

    /// The credentials of the service principal of contract `id`.
    pub async fn service_credentials(&self, id: &str) -> Credentials {
        let name = id.replace('@', "-");
        self.enrolled(PrincipalKind::Service, &name, Some(id)).await
    }

    /// A raw NATS connection acting as user `id` with `capabilities`
    /// (the admin connection without auth), and a function signing
    /// requests as that user: for tests that hand-craft requests.
    pub async fn raw_user(
        &self,
        id: &str,
        capabilities: &[&str],
    ) -> (async_nats::Client, RawCaller) {
        if !self.auth() {
            let caller = RawCaller {
                key: trellis_runtime::rpc::NO_CALLER.to_owned(),
            };
            return (self.server.client().await.expect("client"), caller);
        }
        let _ = self.user(id, capabilities).await;
        let creds = self.enrolled(PrincipalKind::User, id, None).await;
        let client = creds
            .nats_options()
            .connect(self.server.url())
            .await
            .expect("raw user connection");
        let caller = RawCaller {
            key: creds.public_key(),
        };
        (client, caller)
    }

    /// The credentials of user `id` (enrolled on first use).
    pub async fn user_credentials(&self, id: &str) -> Credentials {
        self.enrolled(PrincipalKind::User, id, None).await
    }

    /// Options of user `id` holding (at least) `capabilities`; without
    /// auth, the principal and capabilities are asserted instead.
    pub async fn user(&self, id: &str, capabilities: &[&str]) -> ConnectOptions {
        if !self.auth() {
            return self
                .options()
                .principal(id)
                .capabilities(capabilities.iter().copied());
        }
        let creds = self.enrolled(PrincipalKind::User, id, None).await;
        if !capabilities.is_empty() {
            self.client
                .grant(id, capabilities, false)
                .await
                .unwrap_or_else(|e| panic!("grant {id}: {e}"));
        }
        self.options().credentials(creds)
    }
}

pub fn config() -> AuthorityConfig {
    AuthorityConfig::local("test").reconcile_interval(Duration::from_millis(200))
}

/// The default stack: auth on.
pub async fn stack() -> Stack {
    auth_stack().await
}

/// A stack without authentication (every connection has full access).
pub async fn plain_stack() -> Stack {
    let server = NatsServer::start().await.expect("nats-server starts");
    stack_on(server, config()).await
}

/// A stack whose nats-server authenticates every connection through the
/// authority's auth callout; `stack.client` and `stack.server.client()`
/// are the admin connection (the authority's own user).
pub async fn auth_stack() -> Stack {
    let keys = trellis_testing::ServerAuth::generate().expect("keys");
    let settings = trellis_authority::callout::AuthSettings::new(&keys.issuer_seed, &keys.account)
        .expect("settings");
    let server = NatsServer::start_with_auth(keys.clone())
        .await
        .expect("nats-server with auth starts");
    let system = keys
        .system_options()
        .connect(server.url())
        .await
        .expect("system account connection");
    stack_on(server, config().auth(settings.system_connection(system))).await
}

async fn stack_on(server: NatsServer, config: AuthorityConfig) -> Stack {
    let authority = Authority::start(server.client().await.expect("client"), config.clone())
        .await
        .expect("authority starts");
    let client = AuthorityClient::new(server.client().await.expect("client"), "test");
    Stack {
        server,
        authority: Some(authority),
        client,
        config,
        credentials: std::sync::Mutex::default(),
    }
}

/// The canonical manifest of a contract module given as source text.
pub fn manifest(src: &str) -> String {
    let contracts = trellis_codegen::parse_source(src, Path::new("test.rs"))
        .unwrap_or_else(|e| panic!("test contract does not parse: {e}"));
    contracts[0].manifest.to_canonical_string()
}

/// Polls `check` until it returns `Some` or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn status(client: &AuthorityClient) -> StatusReply {
    client.status().await.expect("status")
}

/// Waits until the contract's reconcile status satisfies `pred`.
pub async fn state_where(
    client: &AuthorityClient,
    id: &str,
    what: &str,
    pred: impl Fn(&ContractStatus) -> bool,
) -> ContractStatus {
    eventually(Duration::from_secs(15), what, || async {
        status(client)
            .await
            .contracts
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.status)
            .filter(|s| pred(s))
    })
    .await
}

pub async fn ready(client: &AuthorityClient, id: &str, digest: &str) -> ContractStatus {
    state_where(client, id, "the contract to be ready", |s| {
        s.phase == Phase::Ready && s.digest == digest
    })
    .await
}

/// A contract source with one kv and one store; `kv`/`store` are the
/// attribute argument lists.
pub fn shop(kv: &str, store: &str, item_fields: &str) -> String {
    format!(
        r#"
#[trellis::contract(id = "shop@v1", display_name = "Shop", description = "A shop")]
pub mod shop {{
    use serde::{{Deserialize, Serialize}};
    #[derive(Serialize, Deserialize)]
    pub struct Item {{ {item_fields} }}
    #[kv({kv})]
    pub struct Items;
    #[store({store})]
    pub struct Photos;
}}
"#
    )
}

pub const ITEM: &str = "pub id: String, pub count: u32";
pub const KV: &str =
    r#"purpose = "items", schema = Item, history = 4, ttl_ms = 60000, max_value_bytes = 4096"#;
pub const STORE: &str = r#"purpose = "photos", ttl_ms = 60000, max_total_bytes = 1000000"#;

/// `SHA-256=<base64url>` of `data`, as the object store records digests.
pub fn digest(data: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(data))
    )
}

/// Deterministic test content of `len` bytes.
pub fn content(len: usize, seed: u8) -> bytes::Bytes {
    let mut data = Vec::with_capacity(len);
    let mut x: u32 = 0x9E37_79B9 ^ u32::from(seed);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    data.into()
}

/// Accepts `manifest` in deployment `test` and waits until it is ready.
pub async fn accept_ready(stack: &Stack, manifest: &str, id: &str, digest: &str) {
    stack
        .client
        .accept(manifest, false)
        .await
        .unwrap_or_else(|e| panic!("accept {id}: {e}"));
    ready(&stack.client, id, digest).await;
}

/// The caller token a raw connection sends requests below: its key with
/// auth, `_` without.
#[derive(Debug, Clone)]
pub struct RawCaller {
    /// The caller token.
    pub key: String,
}

impl RawCaller {
    /// The subject of a request from this caller to `manifest_subject` of
    /// contract `contract` in deployment `test`.
    pub fn subject(&self, contract: &str, manifest_subject: &str) -> String {
        trellis_runtime::rpc::request_subject("test", &self.key, contract, manifest_subject)
    }
}

/// Sends a raw request (replying to the connection's own inbox).
pub async fn raw_request(
    client: &async_nats::Client,
    subject: String,
    payload: bytes::Bytes,
) -> async_nats::Message {
    client.request(subject, payload).await.expect("reply")
}

/// A raw connection as `creds` (a new auth callout), recording the
/// server's error messages (permission violations among them).
pub async fn raw_as(
    creds: &Credentials,
    url: &str,
) -> (
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = creds
        .nats_options()
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("raw connection as the principal");
    (client, rx)
}

/// Waits up to `limit` for nats-server to report a permission violation
/// for `kind` (`publish` or `subscription`) to `subject`. Returns the other
/// permission violations reported before it.
pub async fn violation(
    errors: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    kind: &str,
    subject: &str,
    limit: Duration,
) -> Vec<String> {
    let wanted = format!("permissions violation for {kind} to \"{subject}\"").to_lowercase();
    let mut others = Vec::new();
    let found = tokio::time::timeout(limit, async {
        while let Some(e) = errors.recv().await {
            let e = e.to_lowercase();
            if e.contains(&wanted) {
                return true;
            }
            if e.contains("permissions violation") {
                others.push(e);
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no server violation: {wanted}");
    others
}

/// The reconcile status of an accepted contract.
pub async fn contract_state(stack: &Stack, id: &str) -> ContractStatus {
    status(&stack.client)
        .await
        .contracts
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.status)
        .expect("contract state")
}

/// Uploads `body` as `key` through a documents client generated from the
/// manifest JSON and waits until the operation ends.
pub async fn upload_document(
    client: &indexer_example::documents::Client,
    key: &str,
    body: &'static str,
) {
    let op = client
        .operation
        .files
        .upload
        .input(indexer_example::documents::UploadInput {
            key: key.into(),
            content_type: "text/plain".into(),
            metadata: None,
        })
        .transfer(bytes::Bytes::from(body))
        .start()
        .await
        .expect("upload starts");
    op.wait().await.expect("upload completes");
}

/// A documents service serving on an auth stack, and alice's client
/// holding both documents capabilities.
pub struct Docs {
    pub stack: Stack,
    pub server: trellis::RpcServer,
    pub store: trellis::StoreHandle,
    pub client: documents::Client,
    /// The service's own NATS connection (its statistics count reconnects).
    pub service_nats: trellis::async_nats::Client,
}

/// Accepts documents, serves it (handlers taking `processing` per upload)
/// with `options`, and connects alice.
pub async fn documents_stack(processing: Duration, options: trellis::ServeOptions) -> Docs {
    let stack = stack().await;
    accept_ready(
        &stack,
        documents::MANIFEST_JSON,
        documents::ID,
        documents::DIGEST,
    )
    .await;
    let service = documents::Service::connect(stack.service(documents::ID).await)
        .await
        .expect("service");
    let store = service.store.uploads.clone();
    let service_nats = service.nats().clone();
    let handlers = DocumentsService::new(&service).with_processing(processing);
    let server = service.serve(handlers, options).await.expect("serve");
    let client = documents::Client::connect(stack.user("alice", DOCS_RW).await)
        .await
        .expect("client");
    Docs {
        stack,
        server,
        store,
        client,
        service_nats,
    }
}

/// An upload of `key` with one metadata entry.
pub fn upload_input(key: &str) -> documents::UploadInput {
    documents::UploadInput {
        key: key.into(),
        content_type: "application/octet-stream".into(),
        metadata: [("origin".to_owned(), "test".to_owned())].into(),
    }
}

/// Uploads `data` as `key` and waits until it is stored.
pub async fn upload(
    client: &documents::Client,
    key: &str,
    data: bytes::Bytes,
) -> documents::UploadOutput {
    let op = client
        .operation
        .files
        .upload
        .input(upload_input(key))
        .transfer(data)
        .start()
        .await
        .unwrap_or_else(|e| panic!("upload {key}: {e}"));
    match op.wait().await.expect("wait") {
        trellis::Outcome::Completed(out) => out,
        other => panic!("upload {key} ended {other:?}"),
    }
}
