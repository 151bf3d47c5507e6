//! A typed client of the deployment authority (used by the CLI and by
//! `connect`).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::*;

/// Failures talking to the authority.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody answers on the authority's subjects.
    #[error(
        "no deployment authority is running for deployment `{deployment}` (start one with `trellis dev`)"
    )]
    Unavailable {
        /// The deployment asked.
        deployment: String,
    },
    /// The authority did not answer in time.
    #[error("the deployment authority did not answer within {0:?}")]
    Timeout(Duration),
    /// Transport failure.
    #[error("request to the deployment authority failed: {0}")]
    Request(#[source] async_nats::RequestError),
    /// The reply did not decode.
    #[error("the deployment authority sent a reply that does not decode: {0}")]
    Decode(#[source] serde_json::Error),
    /// The authority refused the request.
    #[error(transparent)]
    Refused(#[from] AuthorityError),
}

/// Talks to the authority of one deployment.
#[derive(Debug, Clone)]
pub struct AuthorityClient {
    client: async_nats::Client,
    deployment: String,
    timeout: Duration,
}

impl AuthorityClient {
    /// A client for `deployment` over an existing connection.
    pub fn new(client: async_nats::Client, deployment: impl Into<String>) -> Self {
        AuthorityClient {
            client,
            deployment: deployment.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let payload = serde_json::to_vec(request).map_err(ClientError::Decode)?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(self.timeout));
        let reply = self
            .client
            .send_request(authority_subject(&self.deployment, op), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => ClientError::Unavailable {
                    deployment: self.deployment.clone(),
                },
                async_nats::RequestErrorKind::TimedOut => ClientError::Timeout(self.timeout),
                _ => ClientError::Request(e),
            })?;
        match serde_json::from_slice::<Reply<Resp>>(&reply.payload).map_err(ClientError::Decode)? {
            Reply::Ok(v) => Ok(v),
            Reply::Err(e) => Err(ClientError::Refused(e)),
        }
    }

    /// What accepting `manifest` would change.
    pub async fn plan(&self, manifest: &str) -> Result<Plan, ClientError> {
        self.call(
            "plan",
            &PlanRequest {
                manifest: manifest.to_owned(),
            },
        )
        .await
    }

    /// Accepts `manifest`; dangerous plans need `allow_dangerous`.
    pub async fn accept(
        &self,
        manifest: &str,
        allow_dangerous: bool,
    ) -> Result<AcceptReply, ClientError> {
        self.call(
            "accept",
            &AcceptRequest {
                manifest: manifest.to_owned(),
                allow_dangerous,
            },
        )
        .await
    }

    /// The accepted digest and reconcile status of a contract.
    pub async fn bindings(&self, id: &str, digest: &str) -> Result<BindingsReply, ClientError> {
        self.call(
            "bindings",
            &BindingsRequest {
                id: id.to_owned(),
                digest: digest.to_owned(),
            },
        )
        .await
    }

    /// Every accepted contract, its resources and the orphans.
    pub async fn status(&self) -> Result<StatusReply, ClientError> {
        self.call("status", &serde_json::json!({})).await
    }

    /// [`AuthorityClient::status`], with each live digest's running
    /// instances counted from their `$SRV.PING` answers (a quarter second
    /// longer).
    pub async fn status_with_instances(&self) -> Result<StatusReply, ClientError> {
        self.call("status", &serde_json::json!({ "instances": true }))
            .await
    }

    /// Deletes a detached resource and its data.
    pub async fn purge(&self, physical: &str) -> Result<Orphan, ClientError> {
        self.call(
            "purge",
            &PurgeRequest {
                physical: physical.to_owned(),
            },
        )
        .await
    }

    /// Stops letting an earlier digest of contract `id` connect (operators
    /// only); returns the digests still live.
    pub async fn retire(
        &self,
        id: &str,
        digest: &str,
    ) -> Result<Vec<crate::protocol::LiveDigestReport>, ClientError> {
        self.call(
            "retire",
            &crate::protocol::RetireRequest {
                id: id.to_owned(),
                digest: digest.to_owned(),
            },
        )
        .await
    }

    /// Registers a principal key (operators only).
    pub async fn register(
        &self,
        request: &RegisterRequest,
    ) -> Result<PrincipalRecord, ClientError> {
        self.call("register", request).await
    }

    /// Registers fresh credentials for a principal and returns them (the
    /// seed never leaves this process unless the caller saves the file).
    pub async fn enroll(
        &self,
        kind: crate::identity::PrincipalKind,
        id: &str,
        user: Option<&str>,
        contract: Option<&str>,
    ) -> Result<crate::identity::Credentials, ClientError> {
        let creds =
            crate::identity::Credentials::generate(kind, id, user, contract).map_err(|e| {
                ClientError::Refused(AuthorityError::BadRequest {
                    message: e.to_string(),
                })
            })?;
        self.register(&RegisterRequest {
            public_key: creds.public_key(),
            kind,
            id: id.to_owned(),
            user: user.map(str::to_owned),
            contract: contract.map(str::to_owned),
        })
        .await?;
        Ok(creds)
    }

    /// Adds (or with `remove`, takes away) capabilities of a principal
    /// (id or public key).
    pub async fn grant(
        &self,
        principal: &str,
        capabilities: &[&str],
        remove: bool,
    ) -> Result<Vec<PrincipalRecord>, ClientError> {
        self.call(
            "grant",
            &GrantRequest {
                principal: principal.to_owned(),
                capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
                remove,
            },
        )
        .await
    }

    /// Revokes every key of a principal (id or public key).
    pub async fn revoke(&self, principal: &str) -> Result<Vec<PrincipalRecord>, ClientError> {
        self.call(
            "revoke",
            &RevokeRequest {
                principal: principal.to_owned(),
            },
        )
        .await
    }

    /// Every principal with the permissions its connections are issued.
    pub async fn principals(&self) -> Result<PrincipalsReply, ClientError> {
        self.call("principals", &serde_json::json!({})).await
    }
}
