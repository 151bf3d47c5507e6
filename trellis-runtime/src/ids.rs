//! Unguessable ids for operations and grants, their encoding, and the
//! wall clock the runtime stamps records with.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 128 random bits from the OS generator, base64url (22 characters).
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS generator is unavailable only on exotic platforms; fall
        // back to the process-seeded id generator rather than failing.
        return crate::store::fallback_id();
    }
    b64url(&bytes)
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
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
