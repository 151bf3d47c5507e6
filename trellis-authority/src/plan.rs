//! Plans: what accepting a contract would change, each change classified
//! safe or dangerous.
//!
//! A plan has resource items (`resources`: kv and store aliases;
//! `consumers`: durable consumers) and surface changes (`surfaces`: RPCs,
//! operations and events against the accepted manifest of the lineage,
//! naming the other accepted contracts that select them, found by
//! `dependents`). `schema` compares JSON Schemas in the direction values
//! travel.

mod consumers;
mod dependents;
mod resources;
mod schema;
mod surfaces;

use std::collections::BTreeMap;

use trellis_manifest::manifest::Manifest;
use trellis_runtime::protocol::{Plan, ResourceKind};

pub(crate) use consumers::consumer_items;
pub use dependents::Dependents;
pub(crate) use dependents::accepted_manifests;
pub use schema::{Direction, Located, compare, compare_in, schema_compatible};
pub use surfaces::surface_changes;

/// How an existing physical resource relates to what a plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// No stream with that name.
    Absent,
    /// A stream that can be adopted.
    Compatible,
    /// A stream that cannot be adopted, and why.
    Incompatible(String),
}

/// Computes a plan. `existing` reports, for an added alias, what already
/// sits under its physical name; `physical` names resources. `accepted`
/// holds the other accepted contracts (by id), whose `uses` make them
/// dependents of this contract's surfaces.
pub fn compute(
    previous: Option<&Manifest>,
    next: &Manifest,
    digest: &str,
    previous_digest: Option<&str>,
    accepted: &BTreeMap<String, Manifest>,
    physical: &dyn Fn(ResourceKind, &str) -> String,
    existing: &dyn Fn(ResourceKind, &str) -> Existing,
) -> Plan {
    let surfaces = match previous {
        Some(previous) => surface_changes(previous, next, &Dependents::of(&next.id, accepted)),
        None => Vec::new(),
    };
    Plan {
        id: next.id.clone(),
        digest: digest.to_owned(),
        previous_digest: previous_digest.map(str::to_owned),
        items: resources::items(previous, next, physical, existing),
        surfaces,
    }
}
