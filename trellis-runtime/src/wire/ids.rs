//! Ids: unguessable ids for operations and grants, the object store's
//! chunk ids, their encoding, and the wall clock the runtime stamps
//! records with.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 128 random bits from the OS generator, base64url (22 characters).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS generator is unavailable only on exotic platforms; fall
        // back to the process-seeded id generator rather than failing.
        return new_nuid();
    }
    b64url(&bytes)
}

/// A fresh 22-character alphanumeric id for an object version's chunks.
pub(crate) fn new_nuid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut value: u128 = 0;
    for _ in 0..2 {
        // `RandomState` is seeded randomly per process and differs per call.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(now);
        value = (value << 64) | u128::from(hasher.finish());
    }
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(22);
    for _ in 0..22 {
        out.push(char::from(ALPHABET[(value % 62) as usize]));
        value /= 62;
    }
    out
}

/// Unpadded base64url (keys, signatures, digests, ids).
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `id` has the shape of a [`random_id`] (also a valid subject token).
pub(crate) fn is_id(id: &str) -> bool {
    id.len() >= 16 && crate::wire::limits::is_token(id, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuids_are_unique_subject_tokens() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_nuid()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 22 && id.chars().all(|c| c.is_ascii_alphanumeric()))
        );
    }
}
