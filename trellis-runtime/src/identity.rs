//! Identities: principals with ed25519 (nkey) keys, the credential files
//! they load at connect, and the signed proof every event carries.
//!
//! A principal is an operator, a service (bound to one contract), a user,
//! or a device (which belongs to a user). The authority registers each
//! principal's public key; the private seed never leaves its credential
//! file. A connection authenticates to nats-server with the key (the
//! authority's auth callout checks the signed nonce) and may publish
//! requests only below its own key
//! (`trellis.<deployment>.<key>.<contract>.…`), so a provider reads a
//! proven caller from the request subject with no cryptography per
//! request. Events are signed over their subject and the SHA-256 of their
//! payload, so consumers can tell the publishing service.
//!
//! ```
//! use trellis_runtime::identity::{Credentials, PrincipalKind};
//! let creds = Credentials::generate(PrincipalKind::User, "alice", None, None).unwrap();
//! let text = creds.to_json();
//! let loaded = Credentials::from_json(&text).unwrap();
//! assert_eq!(loaded.public_key(), creds.public_key());
//! ```

use std::path::Path;

use async_nats::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::wire::ids::{b64url as b64, now_ms};

/// Header carrying the publisher's public key.
pub const KEY_HEADER: &str = "Trellis-Key";
/// Header carrying the issue time (ms since the Unix epoch).
pub const ISSUED_AT_HEADER: &str = "Trellis-Issued-At";
/// Header carrying the proof id (unique per key).
pub const REQUEST_ID_HEADER: &str = "Trellis-Request-Id";
/// Header carrying the SHA-256 of the payload (base64url, no padding).
pub const PAYLOAD_DIGEST_HEADER: &str = "Trellis-Payload-Sha256";
/// Header carrying the ed25519 signature (base64url, no padding).
pub const SIGNATURE_HEADER: &str = "Trellis-Signature";

/// What kind of participant a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrincipalKind {
    /// Runs the deployment: full NATS access, authority administration.
    Operator,
    /// A service bound to one contract.
    Service,
    /// A human user.
    User,
    /// A device belonging to a user.
    Device,
}

impl PrincipalKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Operator => "operator",
            PrincipalKind::Service => "service",
            PrincipalKind::User => "user",
            PrincipalKind::Device => "device",
        }
    }
}

impl std::str::FromStr for PrincipalKind {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "operator" => Ok(PrincipalKind::Operator),
            "service" => Ok(PrincipalKind::Service),
            "user" => Ok(PrincipalKind::User),
            "device" => Ok(PrincipalKind::Device),
            other => Err(IdentityError::Invalid(format!(
                "unknown principal kind `{other}` (use operator, service, user or device)"
            ))),
        }
    }
}

/// Identity failures.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The credential file could not be read or written.
    #[error("credential file {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// The credentials are malformed.
    #[error("invalid credentials: {0}")]
    Invalid(String),
}

/// A principal's credentials: who it is and its private key seed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// Kind of principal.
    pub kind: PrincipalKind,
    /// Principal id (a service's id is its contract id).
    pub id: String,
    /// The user a device belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The contract a service runs, or an app/device acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The nkey seed (`SU...`); secret.
    seed: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("user", &self.user)
            .field("contract", &self.contract)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// Whether `id` is a usable principal id: 1-64 of `[a-z0-9_.@-]`.
pub fn valid_principal_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'@')
        })
}

impl Credentials {
    /// Fresh credentials with a new random user nkey.
    pub fn generate(
        kind: PrincipalKind,
        id: &str,
        user: Option<&str>,
        contract: Option<&str>,
    ) -> Result<Credentials, IdentityError> {
        let key = nkeys::KeyPair::new_user();
        let seed = key
            .seed()
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let creds = Credentials {
            kind,
            id: id.to_owned(),
            user: user.map(str::to_owned),
            contract: contract.map(str::to_owned),
            seed,
        };
        creds.check()?;
        Ok(creds)
    }

    fn check(&self) -> Result<(), IdentityError> {
        if !valid_principal_id(&self.id) {
            return Err(IdentityError::Invalid(format!(
                "principal id `{}` must be 1-64 of lowercase letters, digits, `-`, `_`, `.`, `@`",
                self.id
            )));
        }
        match (self.kind, &self.user, &self.contract) {
            (PrincipalKind::Device, None, _) => Err(IdentityError::Invalid(format!(
                "device `{}` needs the user it belongs to",
                self.id
            ))),
            (PrincipalKind::Service, _, None) => Err(IdentityError::Invalid(format!(
                "service `{}` needs the contract it runs",
                self.id
            ))),
            _ => {
                let key = self.key_pair()?;
                if !key.public_key().starts_with('U') {
                    return Err(IdentityError::Invalid("the seed is not a user nkey".into()));
                }
                Ok(())
            }
        }
    }

    /// Parses credentials from their JSON file text.
    pub fn from_json(text: &str) -> Result<Credentials, IdentityError> {
        let creds: Credentials =
            serde_json::from_str(text).map_err(|e| IdentityError::Invalid(e.to_string()))?;
        creds.check()?;
        Ok(creds)
    }

    /// The JSON file text (contains the secret seed).
    pub fn to_json(&self) -> String {
        // A struct of strings always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Loads a credential file.
    pub fn load(path: impl AsRef<Path>) -> Result<Credentials, IdentityError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Credentials::from_json(&text)
    }

    /// Writes the credential file, readable by its owner only.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IdentityError> {
        write_secret(path.as_ref(), &self.to_json())
    }

    /// The nkey pair.
    pub(crate) fn key_pair(&self) -> Result<nkeys::KeyPair, IdentityError> {
        nkeys::KeyPair::from_seed(&self.seed).map_err(|e| IdentityError::Invalid(e.to_string()))
    }

    /// NATS connect options authenticating as this principal (nkey
    /// signature over the server nonce, inbox below
    /// [`inbox_prefix`]): for operator tooling and tests that need a raw
    /// connection with exactly this principal's permissions.
    pub fn nats_options(&self) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_nkey(self.seed.clone())
            .custom_inbox_prefix(inbox_prefix(&self.public_key()))
    }

    /// The public key (`U...`), as registered in the authority.
    pub fn public_key(&self) -> String {
        self.key_pair().map(|k| k.public_key()).unwrap_or_default()
    }

    /// A signer for requests.
    pub fn signer(&self) -> Result<Signer, IdentityError> {
        let key = self.key_pair()?;
        Ok(Signer {
            public_key: key.public_key().into(),
            prefix: crate::wire::ids::random_id().into(),
            counter: std::sync::Arc::default(),
            key: std::sync::Arc::new(key),
        })
    }
}

/// Writes a secret file (credentials, deployment keys), readable by its
/// owner only, creating its directory.
pub fn write_secret(path: &Path, text: &str) -> Result<(), IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io)
}

/// Where every client's replies arrive: `_INBOX.` and, with auth, the
/// principal's own prefix below it.
pub const INBOXES: &str = "_INBOX.";

/// The inbox prefix of a principal's connections; its NATS user may only
/// subscribe below it, and providers only reply below it.
pub fn inbox_prefix(public_key: &str) -> String {
    format!("{INBOXES}{public_key}")
}

/// SHA-256 of a payload, as the digest header carries it.
pub fn payload_digest(payload: &[u8]) -> String {
    b64(&sha2::Sha256::digest(payload))
}

/// The bytes a request signature covers.
fn signed_bytes(subject: &str, digest: &str, issued_at: u64, request_id: &str) -> Vec<u8> {
    format!("trellis-request-v1\n{subject}\n{digest}\n{issued_at}\n{request_id}").into_bytes()
}

/// Signs requests with a principal's key.
#[derive(Clone)]
pub struct Signer {
    key: std::sync::Arc<nkeys::KeyPair>,
    public_key: std::sync::Arc<str>,
    /// Request ids are this signer's random prefix and a counter: unique
    /// per key without a system call per request.
    prefix: std::sync::Arc<str>,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// The fields of a request proof, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Public key.
    pub key: String,
    /// Issue time, ms since the epoch.
    pub issued_at: u64,
    /// Request id.
    pub request_id: String,
    /// Payload SHA-256 (base64url).
    pub payload_digest: String,
    /// Signature (base64url).
    pub signature: String,
}

impl Proof {
    /// Writes the proof into request headers.
    pub fn write(&self, headers: &mut HeaderMap) {
        headers.insert(KEY_HEADER, self.key.as_str());
        headers.insert(ISSUED_AT_HEADER, self.issued_at.to_string().as_str());
        headers.insert(REQUEST_ID_HEADER, self.request_id.as_str());
        headers.insert(PAYLOAD_DIGEST_HEADER, self.payload_digest.as_str());
        headers.insert(SIGNATURE_HEADER, self.signature.as_str());
    }

    /// Reads a proof from request headers; `None` if any part is missing.
    pub fn read(headers: Option<&HeaderMap>) -> Option<Proof> {
        let headers = headers?;
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        Some(Proof {
            key: get(KEY_HEADER)?,
            issued_at: get(ISSUED_AT_HEADER)?.parse().ok()?,
            request_id: get(REQUEST_ID_HEADER)?,
            payload_digest: get(PAYLOAD_DIGEST_HEADER)?,
            signature: get(SIGNATURE_HEADER)?,
        })
    }
}

impl Signer {
    /// The signer's public key.
    pub fn public_key(&self) -> String {
        self.public_key.to_string()
    }

    /// The signer's public key, borrowed.
    pub(crate) fn public_key_str(&self) -> &str {
        &self.public_key
    }

    /// A proof for a request to `subject` with `payload`, issued now with
    /// a fresh request id.
    pub fn prove(&self, subject: &str, payload: &[u8]) -> Proof {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n}", self.prefix);
        self.prove_at(subject, payload, now_ms(), &id)
    }

    /// A proof with an explicit issue time and request id (tests use it
    /// to build stale and replayed requests).
    pub fn prove_at(&self, subject: &str, payload: &[u8], issued_at: u64, id: &str) -> Proof {
        let digest = payload_digest(payload);
        let signature = self
            .key
            .sign(&signed_bytes(subject, &digest, issued_at, id))
            .map(|s| b64(&s))
            // A seed-backed pair always signs; an empty signature is refused.
            .unwrap_or_default();
        Proof {
            key: self.public_key.to_string(),
            issued_at,
            request_id: id.to_owned(),
            payload_digest: digest,
            signature,
        }
    }
}

/// Why a request's caller or an event's publisher was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The event carries no (complete) publisher proof.
    #[error("the event carries no publisher proof")]
    Missing,
    /// The request subject names no caller key (its caller token is not
    /// an nkey user key).
    #[error("the request subject names no caller key (caller token `{0}`)")]
    NoCaller(String),
    /// The key is not a registered principal.
    #[error("key {0} is not a registered principal")]
    UnknownKey(String),
    /// The key was revoked.
    #[error("principal `{0}` is revoked")]
    Revoked(String),
    /// The payload does not hash to the signed digest.
    #[error("the payload does not match its signed digest")]
    PayloadDigest,
    /// The signature does not verify.
    #[error("the event signature does not verify for key {0}")]
    BadSignature(String),
    /// The reply subject is not the caller's inbox.
    #[error("the reply subject is not below the caller's inbox")]
    ReplyOutsideInbox,
    /// The signer may not publish this (an event signed by a principal
    /// that is not a service of the event's contract).
    #[error("`{signer}` is not a service of `{contract}`")]
    NotPublisher {
        /// The signing principal.
        signer: String,
        /// The contract whose event it is.
        contract: String,
    },
    /// A proof field is malformed (too long, or outside its alphabet);
    /// refused before any lookup or cache.
    #[error("the event proof is malformed: {0}")]
    Malformed(String),
    /// The published principals could not be read to check the proof.
    #[error("the published principals cannot be read: {0}")]
    Unavailable(String),
}

impl Proof {
    /// Checks the digest and the signature (not the registry).
    pub fn verify(&self, subject: &str, payload: &[u8]) -> Result<(), ProofError> {
        let key = nkeys::KeyPair::from_public_key(&self.key)
            .map_err(|_| ProofError::BadSignature(self.key.clone()))?;
        self.verify_signature(&key, subject, payload)
    }

    /// Checks the payload digest and the signature over `subject`. No
    /// skew window: events are verified whenever they are read, long after
    /// they were published.
    pub(crate) fn verify_signature(
        &self,
        key: &nkeys::KeyPair,
        subject: &str,
        payload: &[u8],
    ) -> Result<(), ProofError> {
        if payload_digest(payload) != self.payload_digest {
            return Err(ProofError::PayloadDigest);
        }
        let bad = || ProofError::BadSignature(self.key.clone());
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.signature)
            .map_err(|_| bad())?;
        key.verify(
            &signed_bytes(
                subject,
                &self.payload_digest,
                self.issued_at,
                &self.request_id,
            ),
            &signature,
        )
        .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_validate() {
        let c = Credentials::generate(PrincipalKind::Device, "phone", Some("alice"), None)
            .expect("generate");
        let back = Credentials::from_json(&c.to_json()).expect("parse");
        assert_eq!(back, c);
        assert!(c.public_key().starts_with('U'));
        assert!(!format!("{c:?}").contains(&c.seed));
        assert!(Credentials::generate(PrincipalKind::Device, "phone", None, None).is_err());
        assert!(Credentials::generate(PrincipalKind::Service, "x@v1", None, None).is_err());
        assert!(Credentials::generate(PrincipalKind::User, "Alice", None, None).is_err());
        let text = c.to_json().replace("\"kind\"", "\"extra\": 1, \"kind\"");
        assert!(Credentials::from_json(&text).is_err());
    }

    #[test]
    fn proofs_verify_and_refuse_tampering() {
        let c = Credentials::generate(PrincipalKind::User, "alice", None, None).expect("gen");
        let s = c.signer().expect("signer");
        let p = s.prove_at("a.b", b"{}", now_ms(), "r1");
        assert_eq!(p.verify("a.b", b"{}"), Ok(()));
        assert_eq!(p.verify("a.b", b"{ }"), Err(ProofError::PayloadDigest));
        assert!(matches!(
            p.verify("a.c", b"{}"),
            Err(ProofError::BadSignature(_))
        ));
        let mut forged = p.clone();
        forged.key = Credentials::generate(PrincipalKind::User, "bob", None, None)
            .expect("gen")
            .public_key();
        assert!(matches!(
            forged.verify("a.b", b"{}"),
            Err(ProofError::BadSignature(_))
        ));
        let mut h = HeaderMap::new();
        p.write(&mut h);
        assert_eq!(Proof::read(Some(&h)), Some(p));
    }
}
