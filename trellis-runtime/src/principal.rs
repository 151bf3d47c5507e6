//! Who is calling: the principal id and the capabilities it holds.
//!
//! Every request a trellis client sends carries its principal in the
//! `Trellis-Principal` and `Trellis-Capabilities` headers. Providers use
//! them for the ownership and capability gates of operations and for
//! binding receive grants to their caller.
//!
//! In a deployment that authenticates (auth callout on), requests carry a
//! signed proof instead and providers resolve the principal and its
//! capabilities from the registry the authority publishes (see
//! [`crate::identity`]); the headers above are then ignored. Without
//! authentication they are asserted by the caller's connection (set with
//! [`ConnectOptions::principal`](crate::ConnectOptions::principal) and
//! [`ConnectOptions::capabilities`](crate::ConnectOptions::capabilities)).

use std::collections::BTreeSet;

use async_nats::HeaderMap;

/// Header naming the calling principal.
pub const PRINCIPAL_HEADER: &str = "Trellis-Principal";
/// Header listing the caller's capabilities (comma-separated).
pub const CAPABILITIES_HEADER: &str = "Trellis-Capabilities";

/// A caller identity and the capabilities it holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// Stable id of the caller.
    pub id: String,
    /// Capabilities the caller holds (`<contract>::<capability>`).
    pub capabilities: BTreeSet<String>,
    /// The user a device acts for (its own id for a user); set only for
    /// verified callers.
    pub user: Option<String>,
    /// The verified public key; `None` for asserted (unauthenticated)
    /// principals.
    pub key: Option<String>,
    /// The contract the principal runs or acts for (verified callers).
    pub contract: Option<String>,
}

impl Principal {
    /// A principal with no capabilities.
    pub fn new(id: impl Into<String>) -> Principal {
        Principal {
            id: id.into(),
            capabilities: BTreeSet::new(),
            user: None,
            key: None,
            contract: None,
        }
    }

    /// The principal of a verified registry record.
    pub(crate) fn verified(record: &crate::protocol::PrincipalRecord) -> Principal {
        Principal {
            id: record.id.clone(),
            capabilities: record.capabilities.clone(),
            user: Some(record.owning_user().to_owned()),
            key: Some(record.public_key.clone()),
            contract: record.contract.clone(),
        }
    }

    /// Whether the principal holds every capability of a `call` gate (no
    /// gate, or an empty one, asks only for an authenticated caller).
    pub fn may_call(&self, gate: Option<&[String]>) -> bool {
        gate.is_none_or(|caps| caps.iter().all(|c| self.capabilities.contains(c)))
    }

    /// A fresh anonymous principal, unique to this process and call.
    pub fn anonymous() -> Principal {
        Principal::new(format!("anonymous-{}", crate::wire::ids::random_id()))
    }

    /// Whether the principal holds every capability in `gate`; an absent
    /// gate is never satisfied (it grants nothing beyond ownership).
    pub fn satisfies(&self, gate: Option<&[String]>) -> bool {
        gate.is_some_and(|caps| caps.iter().all(|c| self.capabilities.contains(c)))
    }

    /// Writes the principal into request headers.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        headers.insert(PRINCIPAL_HEADER, self.id.as_str());
        if !self.capabilities.is_empty() {
            let caps = self
                .capabilities
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",");
            headers.insert(CAPABILITIES_HEADER, caps.as_str());
        }
    }

    /// The principal of a request: the one its headers name, or a fresh
    /// anonymous one.
    pub(crate) fn of_request(headers: Option<&HeaderMap>) -> Principal {
        Principal::read(headers).unwrap_or_else(Principal::anonymous)
    }

    /// Reads the principal of a request; `None` without a principal header.
    pub(crate) fn read(headers: Option<&HeaderMap>) -> Option<Principal> {
        let headers = headers?;
        let id = headers.get(PRINCIPAL_HEADER)?.as_str().trim();
        if id.is_empty() {
            return None;
        }
        let capabilities = headers
            .get(CAPABILITIES_HEADER)
            .map(|v| {
                v.as_str()
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(Principal {
            id: id.to_owned(),
            capabilities,
            user: None,
            key: None,
            contract: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_gates() {
        let mut p = Principal::new("alice");
        p.capabilities.insert("read".into());
        p.capabilities.insert("write".into());
        let mut h = HeaderMap::new();
        p.write(&mut h);
        assert_eq!(Principal::read(Some(&h)), Some(p.clone()));
        assert!(p.satisfies(Some(&["read".to_owned()])));
        assert!(!p.satisfies(Some(&["admin".to_owned()])));
        assert!(!p.satisfies(None));
        assert_eq!(Principal::read(Some(&HeaderMap::new())), None);
        assert_ne!(Principal::anonymous(), Principal::anonymous());
    }
}
