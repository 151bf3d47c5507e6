//! Dependents: the other accepted contracts whose `uses` select a
//! contract's surfaces (RPCs and operations they call, events they
//! subscribe to or publish), so a plan can name who a surface change
//! reaches.

use std::collections::BTreeMap;

use trellis_manifest::manifest::Manifest;
use trellis_runtime::protocol::{AuthorityError, Dependent, SurfaceKind};

use crate::records::{Desired, Records, storage};

/// The accepted (desired) manifest of every contract but `except`, by id.
pub async fn accepted_manifests(
    records: &Records,
    except: &str,
) -> Result<BTreeMap<String, Manifest>, AuthorityError> {
    let mut out = BTreeMap::new();
    for key in records.keys("contract.*.desired").await? {
        let Some(desired) = records.read::<Desired>(&key).await? else {
            continue;
        };
        if desired.value.id == except {
            continue;
        }
        let manifest: Manifest = serde_json::from_str(&desired.value.manifest).map_err(storage)?;
        out.insert(desired.value.id, manifest);
    }
    Ok(out)
}

/// Who selects which surface of one contract.
#[derive(Debug, Default)]
pub struct Dependents {
    by_surface: BTreeMap<(SurfaceKind, String), Vec<Dependent>>,
}

impl Dependents {
    /// The selections of contract `id` in `accepted` (its own manifest, if
    /// present there, is skipped: it is the one being replaced).
    pub fn of(id: &str, accepted: &BTreeMap<String, Manifest>) -> Dependents {
        let mut by_surface: BTreeMap<(SurfaceKind, String), Vec<Dependent>> = BTreeMap::new();
        for (dependent, manifest) in accepted {
            if dependent == id {
                continue;
            }
            let Some(uses) = &manifest.uses else {
                continue;
            };
            for (alias, used) in uses.all() {
                if used.contract != id {
                    continue;
                }
                let selections = [
                    (
                        SurfaceKind::Rpc,
                        "rpc.call",
                        used.rpc.as_ref().and_then(|c| c.call.as_ref()),
                    ),
                    (
                        SurfaceKind::Operation,
                        "operations.call",
                        used.operations.as_ref().and_then(|c| c.call.as_ref()),
                    ),
                    (
                        SurfaceKind::Event,
                        "events.subscribe",
                        used.events.as_ref().and_then(|e| e.subscribe.as_ref()),
                    ),
                    (
                        SurfaceKind::Event,
                        "events.publish",
                        used.events.as_ref().and_then(|e| e.publish.as_ref()),
                    ),
                ];
                for (kind, selects, names) in selections {
                    for name in names.into_iter().flatten() {
                        let entry = by_surface.entry((kind, name.clone())).or_default();
                        let d = Dependent {
                            contract: dependent.clone(),
                            alias: alias.to_owned(),
                            selects: selects.to_owned(),
                        };
                        if !entry.contains(&d) {
                            entry.push(d);
                        }
                    }
                }
            }
        }
        for list in by_surface.values_mut() {
            list.sort();
        }
        Dependents { by_surface }
    }

    /// The dependents selecting surface `name` of `kind` (sorted).
    pub fn selecting(&self, kind: SurfaceKind, name: &str) -> Vec<Dependent> {
        self.by_surface
            .get(&(kind, name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether some dependent publishes event `name` (so the event's schema
    /// is also an input of this contract).
    pub fn publish(&self, name: &str) -> bool {
        self.selecting(SurfaceKind::Event, name)
            .iter()
            .any(|d| d.selects == "events.publish")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        serde_json::from_str(text).expect("manifest")
    }

    #[test]
    fn finds_the_selections_of_one_contract() {
        let indexer = manifest(
            r#"{"format":"trellis.contract.v1","id":"indexer@v1","displayName":"I","description":"I","kind":"service",
                "uses":{"required":{"docs":{"contract":"documents@v1","rpc":{"call":["Files.List"]},"events":{"subscribe":["Documents.Created"]}}},
                        "optional":{"other":{"contract":"other@v1","rpc":{"call":["Files.List"]}}}}}"#,
        );
        let writer = manifest(
            r#"{"format":"trellis.contract.v1","id":"writer@v1","displayName":"W","description":"W","kind":"service",
                "uses":{"optional":{"d":{"contract":"documents@v1","operations":{"call":["Files.Upload"]},"events":{"publish":["Documents.Created"]}}}}}"#,
        );
        let itself = manifest(
            r#"{"format":"trellis.contract.v1","id":"documents@v1","displayName":"D","description":"D","kind":"service",
                "uses":{"required":{"me":{"contract":"documents@v1","rpc":{"call":["Files.Head"]}}}}}"#,
        );
        let accepted = BTreeMap::from([
            ("indexer@v1".to_owned(), indexer),
            ("writer@v1".to_owned(), writer),
            ("documents@v1".to_owned(), itself),
        ]);
        let d = Dependents::of("documents@v1", &accepted);
        assert_eq!(
            d.selecting(SurfaceKind::Rpc, "Files.List"),
            vec![Dependent {
                contract: "indexer@v1".into(),
                alias: "docs".into(),
                selects: "rpc.call".into()
            }]
        );
        assert_eq!(
            d.selecting(SurfaceKind::Event, "Documents.Created").len(),
            2
        );
        assert!(d.publish("Documents.Created"));
        assert_eq!(
            d.selecting(SurfaceKind::Operation, "Files.Upload")[0].contract,
            "writer@v1"
        );
        // The contract being planned is never its own dependent.
        assert!(d.selecting(SurfaceKind::Rpc, "Files.Head").is_empty());
        assert!(
            Dependents::of("other@v1", &accepted)
                .selecting(SurfaceKind::Rpc, "Files.List")
                .iter()
                .all(|d| d.contract == "indexer@v1" && d.alias == "other")
        );
    }
}
