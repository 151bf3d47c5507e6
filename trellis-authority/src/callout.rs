//! The auth callout service: nats-server (≥ 2.10, `authorization {
//! auth_callout { ... } }`) sends every connection attempt to
//! `$SYS.REQ.USER.AUTH`; the authority checks the nonce the client signed
//! with its principal key, looks the key up in the registry and answers
//! with a user JWT carrying the permissions computed from the accepted
//! contracts, signed by the deployment's issuer account key. Unknown and
//! revoked keys get an error answer, which the server turns into an
//! authorization failure.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use trellis_runtime::internal::b64url as b64;
use trellis_runtime::protocol::{Permissions, PrincipalRecord};

/// The subject nats-server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// How a deployment authenticates connections.
#[derive(Clone)]
pub struct AuthSettings {
    issuer_seed: String,
    /// The account issued users are placed in (the server config's
    /// account name, e.g. `TRELLIS`).
    pub account: String,
    /// Lifetime of an issued user: the server disconnects a connection at
    /// its expiry and the client re-authenticates (so a revoked key is
    /// shut out of long-lived connections within this time).
    pub session_ttl: Duration,
    /// A system-account connection: with it, revoking a principal also
    /// disconnects its open connections (`$SYS.REQ.SERVER.<id>.KICK`);
    /// without it they last until their session expires.
    pub(crate) system: Option<async_nats::Client>,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("issuer", &self.issuer_public_key())
            .field("account", &self.account)
            .field("session_ttl", &self.session_ttl)
            .field("system", &self.system.is_some())
            .finish()
    }
}

/// Why auth settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid issuer seed: {0}")]
pub struct AuthSettingsError(String);

impl AuthSettings {
    /// Settings signing with the account seed `issuer_seed` (`SA...`),
    /// placing users in `account`.
    pub fn new(issuer_seed: &str, account: &str) -> Result<AuthSettings, AuthSettingsError> {
        let key =
            nkeys::KeyPair::from_seed(issuer_seed).map_err(|e| AuthSettingsError(e.to_string()))?;
        if !key.public_key().starts_with('A') {
            return Err(AuthSettingsError(
                "the issuer must be an account key".into(),
            ));
        }
        Ok(AuthSettings {
            issuer_seed: issuer_seed.to_owned(),
            account: account.to_owned(),
            session_ttl: Duration::from_secs(3600),
            system: None,
        })
    }

    /// Uses a system-account connection to disconnect revoked principals.
    pub fn system_connection(mut self, client: async_nats::Client) -> Self {
        self.system = Some(client);
        self
    }

    /// Sets the issued users' lifetime (at least 2 s).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl.max(Duration::from_secs(2));
        self
    }

    fn issuer(&self) -> Option<nkeys::KeyPair> {
        nkeys::KeyPair::from_seed(&self.issuer_seed).ok()
    }

    /// The issuer account's public key (the server config's `issuer`).
    pub fn issuer_public_key(&self) -> String {
        self.issuer().map(|k| k.public_key()).unwrap_or_default()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(pub(crate) String);

/// Encodes and signs NATS JWT claims (`alg: ed25519-nkey`). Sets `iss`,
/// `iat` and a `jti` hashed over the claims.
pub(crate) fn encode(mut claims: Value, key: &nkeys::KeyPair) -> Result<String, JwtError> {
    claims["iss"] = json!(key.public_key());
    claims["iat"] = json!(unix_now());
    let body = serde_json::to_vec(&claims).map_err(|e| JwtError(e.to_string()))?;
    let jti = data_encoding::BASE32_NOPAD.encode(&sha2::Sha256::digest(&body));
    claims["jti"] = json!(jti);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = b64(&serde_json::to_vec(&claims).map_err(|e| JwtError(e.to_string()))?);
    let signing = format!("{header}.{payload}");
    let signature = key
        .sign(signing.as_bytes())
        .map_err(|e| JwtError(e.to_string()))?;
    Ok(format!("{signing}.{}", b64(&signature)))
}

/// Decodes a NATS JWT and verifies its signature against its `iss` key,
/// which must start with `issuer_prefix`.
pub(crate) fn decode(token: &str, issuer_prefix: char) -> Result<Value, JwtError> {
    let bad = |what: &str| JwtError(format!("malformed JWT: {what}"));
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three parts"));
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value =
        serde_json::from_slice(&engine.decode(payload).map_err(|_| bad("payload"))?)
            .map_err(|_| bad("claims"))?;
    let issuer = claims["iss"].as_str().ok_or_else(|| bad("no issuer"))?;
    if !issuer.starts_with(issuer_prefix) {
        return Err(JwtError(format!("unexpected issuer {issuer}")));
    }
    let key = nkeys::KeyPair::from_public_key(issuer).map_err(|_| bad("issuer key"))?;
    let signature = engine.decode(signature).map_err(|_| bad("signature"))?;
    key.verify(format!("{header}.{payload}").as_bytes(), &signature)
        .map_err(|_| JwtError("JWT signature does not verify".into()))?;
    Ok(claims)
}

/// What an authorization request carries that the authority needs.
#[derive(Debug, Clone)]
pub(crate) struct CalloutRequest {
    pub(crate) user_nkey: String,
    pub(crate) server_id: String,
    pub(crate) key: Option<String>,
    pub(crate) signed_nonce: Option<String>,
    pub(crate) nonce: Option<String>,
    /// The connection's client id on its server.
    pub(crate) client_id: Option<u64>,
}

impl CalloutRequest {
    pub(crate) fn parse(token: &str) -> Result<CalloutRequest, JwtError> {
        let claims = decode(token, 'N')?;
        let nats = &claims["nats"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(CalloutRequest {
            user_nkey: text(&nats["user_nkey"])
                .ok_or_else(|| JwtError("authorization request without user_nkey".into()))?,
            server_id: text(&nats["server_id"]["id"])
                .ok_or_else(|| JwtError("authorization request without server id".into()))?,
            key: text(&nats["connect_opts"]["nkey"]),
            signed_nonce: text(&nats["connect_opts"]["sig"]),
            nonce: text(&nats["client_info"]["nonce"]),
            client_id: nats["client_info"]["id"].as_u64(),
        })
    }

    /// The principal key whose signature over the server nonce verifies.
    pub(crate) fn proven_key(&self) -> Result<&str, String> {
        let (Some(key), Some(sig), Some(nonce)) = (&self.key, &self.signed_nonce, &self.nonce)
        else {
            return Err("no trellis credentials presented (connect with a principal key)".into());
        };
        let pair = nkeys::KeyPair::from_public_key(key)
            .map_err(|_| format!("`{key}` is not a public nkey"))?;
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig))
            .map_err(|_| "the signed nonce is not base64".to_owned())?;
        pair.verify(nonce.as_bytes(), &sig)
            .map_err(|_| format!("the nonce signature does not verify for {key}"))?;
        Ok(key)
    }
}

/// The signed authorization response: a user JWT for `request`'s
/// connection, or an error.
pub(crate) fn respond(
    settings: &AuthSettings,
    request: &CalloutRequest,
    outcome: Result<(&PrincipalRecord, &Permissions), String>,
) -> Result<String, JwtError> {
    let issuer = settings
        .issuer()
        .ok_or_else(|| JwtError("the issuer seed does not decode".into()))?;
    let mut nats = json!({ "type": "authorization_response", "version": 2 });
    match outcome {
        Ok((principal, permissions)) => {
            let ttl = i64::try_from(settings.session_ttl.as_secs()).unwrap_or(3600);
            let user = json!({
                "sub": request.user_nkey,
                "aud": settings.account,
                "name": format!("{}:{}", principal.kind.as_str(), principal.id),
                "exp": unix_now() + ttl,
                "nats": {
                    "pub": {
                        "allow": permissions.publish,
                        "deny": permissions.publish_deny,
                    },
                    "sub": {
                        "allow": permissions.subscribe,
                        "deny": permissions.subscribe_deny,
                    },
                    "subs": -1,
                    "data": -1,
                    "payload": -1,
                    "type": "user",
                    "version": 2,
                }
            });
            nats["jwt"] = json!(encode(user, &issuer)?);
        }
        Err(error) => nats["error"] = json!(error),
    }
    encode(
        json!({ "sub": request.user_nkey, "aud": request.server_id, "nats": nats }),
        &issuer,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_round_trip_and_refuse_tampering() {
        let account = nkeys::KeyPair::new_account();
        let token = encode(json!({"sub": "x", "nats": {"a": 1}}), &account).expect("encode");
        let claims = decode(&token, 'A').expect("decode");
        assert_eq!(claims["nats"]["a"], 1);
        assert_eq!(claims["iss"], account.public_key());
        assert!(decode(&token, 'N').is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = b64(br#"{"sub":"y","iss":"A"}"#);
        parts[1] = &other;
        assert!(decode(&parts.join("."), 'A').is_err());
    }

    #[test]
    fn nonce_signatures_are_checked() {
        let user = nkeys::KeyPair::new_user();
        let sig = b64(&user.sign(b"nonce-1").expect("sign"));
        let mut request = CalloutRequest {
            user_nkey: "U".into(),
            server_id: "N".into(),
            key: Some(user.public_key()),
            signed_nonce: Some(sig),
            nonce: Some("nonce-1".into()),
            client_id: Some(7),
        };
        assert_eq!(request.proven_key(), Ok(user.public_key().as_str()));
        request.nonce = Some("nonce-2".into());
        assert!(request.proven_key().is_err());
        request.key = None;
        assert!(request.proven_key().is_err());
    }
}
