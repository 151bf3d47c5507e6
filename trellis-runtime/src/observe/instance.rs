//! What a served instance is called on the NATS service API: its micro
//! name and version (derived from the contract id), its instance id and its
//! metadata (contract id, manifest digest, deployment).
//!
//! Micro names allow only `A-Z a-z 0-9 - _`. A contract id is
//! `<name>@v<N>` whose name is lowercase letters and digits separated by
//! `.` or `-`, so the mapping is injective:
//!
//! | contract id | micro name | version |
//! | --- | --- | --- |
//! | `documents@v1` | `documents` | `1.0.0` |
//! | `documents@v2` | `documents` | `2.0.0` |
//! | `trellis.state@v1` | `trellis_state` | `1.0.0` |
//!
//! Every version of a contract shares its name, as micro intends ("the kind
//! of service"), and `nats micro ls` lists each version; the exact contract
//! id and digest are in the metadata ([`CONTRACT_KEY`], [`DIGEST_KEY`]).

use std::collections::BTreeMap;

/// Metadata key holding the contract id (`documents@v1`).
pub const CONTRACT_KEY: &str = "trellis.contract";
/// Metadata key holding the manifest digest the instance was built from.
pub const DIGEST_KEY: &str = "trellis.digest";
/// Metadata key holding the deployment.
pub const DEPLOYMENT_KEY: &str = "trellis.deployment";
/// Endpoint metadata key holding the declared name (`Files.List`).
pub const ENDPOINT_NAME_KEY: &str = "trellis.name";
/// Endpoint metadata key holding what the endpoint serves (`rpc`,
/// `operation`, `operation-control`, or an authority request).
pub const ENDPOINT_KIND_KEY: &str = "trellis.kind";

/// `text` with every character micro names do not allow written as `_`.
fn sanitized(text: &str) -> String {
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "_".to_owned() } else { out }
}

/// The micro name of contract `contract_id`: its name without `@vN`, `.`
/// written as `_` (`trellis.state@v1` → `trellis_state`).
pub fn service_name(contract_id: &str) -> String {
    let name = contract_id.split_once('@').map_or(contract_id, |(n, _)| n);
    sanitized(name)
}

/// The micro (semver) version of contract `contract_id`: `<N>.0.0` from
/// `@v<N>`, `0.0.0` when the id carries no version.
pub fn service_version(contract_id: &str) -> String {
    contract_id
        .split_once("@v")
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .map_or_else(|| "0.0.0".to_owned(), |n| format!("{n}.0.0"))
}

/// The micro endpoint name of a declared surface name (`Files.List` →
/// `Files_List`); the declared name stays in the endpoint's metadata.
pub fn endpoint_name(declared: &str) -> String {
    sanitized(declared)
}

/// One served instance as the service API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Micro name (shared by every instance of the service).
    pub name: String,
    /// This instance's id (fresh per served instance).
    pub id: String,
    /// Semver version.
    pub version: String,
    /// Human-readable description.
    pub description: String,
    /// Metadata (`trellis.contract`, `trellis.digest`, ...).
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    /// An instance named `name` (sanitized to the micro alphabet) at
    /// `version`, with a fresh id.
    pub fn new(name: &str, version: &str, description: &str) -> Instance {
        Instance {
            name: sanitized(name),
            id: crate::wire::ids::new_nuid(),
            version: version.to_owned(),
            description: description.to_owned(),
            metadata: BTreeMap::new(),
        }
    }

    /// An instance serving contract `contract_id` in `deployment`, built
    /// from the manifest with `digest` (left out of the metadata when the
    /// runtime does not know it: a runtime built by hand).
    pub fn of_contract(deployment: &str, contract_id: &str, digest: Option<&str>) -> Instance {
        let mut instance = Instance::new(
            &service_name(contract_id),
            &service_version(contract_id),
            &format!("trellis contract {contract_id}"),
        )
        .with_metadata(CONTRACT_KEY, contract_id)
        .with_metadata(DEPLOYMENT_KEY, deployment);
        if let Some(digest) = digest {
            instance = instance.with_metadata(DIGEST_KEY, digest);
        }
        instance
    }

    /// Adds metadata entry `key` = `value`.
    pub fn with_metadata(mut self, key: &str, value: &str) -> Instance {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_ids_map_to_micro_names_and_versions() {
        assert_eq!(service_name("documents@v1"), "documents");
        assert_eq!(service_name("trellis.state@v1"), "trellis_state");
        assert_eq!(service_name("a-b.c@v12"), "a-b_c");
        assert_eq!(service_version("documents@v1"), "1.0.0");
        assert_eq!(service_version("documents@v12"), "12.0.0");
        assert_eq!(service_version("documents"), "0.0.0");
        assert_eq!(endpoint_name("Files.List"), "Files_List");
        assert_eq!(endpoint_name(""), "_");
        let i = Instance::of_contract("prod", "documents@v1", Some("abc"));
        assert_eq!(i.metadata[CONTRACT_KEY], "documents@v1");
        assert_eq!(i.metadata[DIGEST_KEY], "abc");
        assert_eq!(i.metadata[DEPLOYMENT_KEY], "prod");
        assert!(i.id.chars().all(|c| c.is_ascii_alphanumeric()), "{}", i.id);
        let j = Instance::of_contract("prod", "documents@v1", None);
        assert!(!j.metadata.contains_key(DIGEST_KEY));
        assert_ne!(i.id, j.id);
    }
}
