//! Physical names: scoped to deployment + profile + contract lineage +
//! alias, never to the digest, so a compatible rollout (same id, new
//! digest) reuses the same buckets and data.

use sha2::{Digest as _, Sha256};

/// The records key fragment of a contract id (`documents@v1` →
/// `documents=v1`; KV keys cannot hold `@`).
pub fn lineage_key(id: &str) -> String {
    id.replace('@', "=")
}

/// The physical bucket name of a resource. Readable, plus a short hash of
/// the exact tuple so distinct tuples can never collide after sanitizing.
pub fn physical_name(deployment: &str, profile: &str, id: &str, kind: &str, alias: &str) -> String {
    let readable: String = format!("{deployment}-{profile}-{id}-{alias}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = Sha256::digest(format!("{deployment}\0{profile}\0{id}\0{kind}\0{alias}").as_bytes());
    let short: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("trellis-{readable}-{short}")
}

/// Whether a deployment or profile name is usable in subjects and names.
pub fn valid_scope_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_readable_and_distinct() {
        let a = physical_name("dev", "local", "documents@v1", "store", "uploads");
        assert_eq!(
            a,
            physical_name("dev", "local", "documents@v1", "store", "uploads")
        );
        assert!(
            a.starts_with("trellis-dev-local-documents-v1-uploads-"),
            "{a}"
        );
        assert_ne!(
            a,
            physical_name("dev", "local", "documents@v2", "store", "uploads")
        );
        assert_ne!(
            a,
            physical_name("dev", "local", "documents@v1", "kv", "uploads")
        );
        assert_ne!(
            physical_name("dev", "local", "a.b@v1", "kv", "x"),
            physical_name("dev", "local", "a-b@v1", "kv", "x")
        );
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
