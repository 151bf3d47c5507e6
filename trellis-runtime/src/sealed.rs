//! Sealed principal records: what providers may read of the principals.
//!
//! The authority keeps every record in its principals bucket, which only it
//! and the auth callout read. Beside it, it publishes each record in a
//! callers bucket under a digest of the public key, sealed
//! (ChaCha20-Poly1305) with a key derived from the public key. A service
//! may watch that bucket, yet it opens a record only for a key it already
//! knows: its callers' (named by their request subjects) and the publishers'
//! of the events it reads. It cannot list who is registered, their ids or
//! their capabilities; a digest only confirms a key it holds.
//!
//! ```
//! use trellis_runtime::identity::{Credentials, PrincipalKind};
//! use trellis_runtime::protocol::PrincipalRecord;
//! use trellis_runtime::sealed;
//!
//! let key = Credentials::generate(PrincipalKind::User, "alice", None, None)
//!     .unwrap()
//!     .public_key();
//! let record = PrincipalRecord {
//!     public_key: key.clone(),
//!     kind: PrincipalKind::User,
//!     id: "alice".into(),
//!     user: None,
//!     contract: None,
//!     capabilities: Default::default(),
//!     revoked: false,
//!     updated_ms: 0,
//! };
//! let bytes = sealed::seal(&record).unwrap();
//! assert_eq!(sealed::open(&key, &bytes).unwrap(), record);
//! let other = Credentials::generate(PrincipalKind::User, "bob", None, None)
//!     .unwrap()
//!     .public_key();
//! assert!(sealed::open(&other, &bytes).is_err());
//! ```

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest as _, Sha256};

use crate::protocol::PrincipalRecord;

/// Bytes of the random nonce that starts a sealed record.
const NONCE_BYTES: usize = 12;

/// Why a record could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The record does not serialize.
    #[error("encoding the record failed: {0}")]
    Encode(String),
    /// No randomness for the nonce.
    #[error("no randomness for the nonce: {0}")]
    Random(String),
    /// The bytes are not a record sealed for this key (another key, or
    /// damaged).
    #[error("not a record sealed for this key")]
    Open,
}

fn digest(domain: &str, public_key: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(domain.as_bytes());
    hash.update(public_key.as_bytes());
    hash.finalize().into()
}

/// The callers-bucket key of `public_key`: base64url of a SHA-256 of it.
pub fn entry_key(public_key: &str) -> String {
    crate::wire::ids::b64url(&digest("trellis-callers-v1 entry\n", public_key))
}

fn cipher(public_key: &str) -> ChaCha20Poly1305 {
    let key = digest("trellis-callers-v1 seal\n", public_key);
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// `record` sealed for its own public key: a random nonce, then the
/// ciphertext of its JSON (bound to its entry key).
pub fn seal(record: &PrincipalRecord) -> Result<Vec<u8>, SealError> {
    let json = serde_json::to_vec(record).map_err(|e| SealError::Encode(e.to_string()))?;
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
    let entry = entry_key(&record.public_key);
    let sealed = cipher(&record.public_key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &json,
                aad: entry.as_bytes(),
            },
        )
        .map_err(|_| SealError::Encode("sealing failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens the record of `public_key` from its sealed bytes; the record must
/// name that key.
pub fn open(public_key: &str, sealed: &[u8]) -> Result<PrincipalRecord, SealError> {
    if sealed.len() < NONCE_BYTES {
        return Err(SealError::Open);
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    let entry = entry_key(public_key);
    let json = cipher(public_key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: entry.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)?;
    let record: PrincipalRecord = serde_json::from_slice(&json).map_err(|_| SealError::Open)?;
    if record.public_key != public_key {
        return Err(SealError::Open);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_are_kv_tokens_and_differ_per_key() {
        let a = entry_key("UA");
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, entry_key("UB"));
    }

    #[test]
    fn damaged_records_do_not_open() {
        assert!(matches!(open("UA", b"short"), Err(SealError::Open)));
        assert!(matches!(open("UA", &[0u8; 64]), Err(SealError::Open)));
    }
}
