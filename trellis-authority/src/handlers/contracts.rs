//! Contract handlers: `plan` (what accepting a manifest would change),
//! `accept` (record it as desired) and `purge` (delete a detached resource).

use async_nats::jetstream;
use trellis_manifest::manifest::Manifest;

use super::decode;
use crate::consumers;
use crate::inner::Inner;
use crate::naming::lineage_key;
use crate::plan::{self, Existing};
use crate::provision;
use crate::records::{self, Desired, now_ms};
use trellis_runtime::protocol::{
    AcceptReply, AcceptRequest, AuthorityError, Change, ConsumerBinding, ContractStatus, Orphan,
    Plan, PlanRequest, PurgeRequest, ResourceKind,
};

impl Inner {
    pub(super) async fn plan(&self, payload: &[u8]) -> Result<Plan, AuthorityError> {
        let request: PlanRequest = decode(payload)?;
        Ok(self.make_plan(&request.manifest).await?.0)
    }

    pub(super) async fn accept(&self, payload: &[u8]) -> Result<AcceptReply, AuthorityError> {
        let request: AcceptRequest = decode(payload)?;
        let (plan, manifest, previous, canonical) = self.make_plan(&request.manifest).await?;
        if plan.is_dangerous() && !request.allow_dangerous {
            return Err(AuthorityError::Dangerous {
                plan: Box::new(plan),
            });
        }
        let generation = previous.as_ref().map_or(0, |p| p.value.generation) + 1;
        let now = now_ms();
        // A safe plan keeps the superseded digest live for a rolling
        // deploy; a dangerous one refuses every earlier digest at once.
        let (earlier, retired) = crate::rollout::supersede(
            previous.as_ref().map(|p| &p.value),
            &plan.digest,
            plan.is_dangerous(),
            self.config.rollout_grace,
            now,
        );
        let desired = Desired {
            id: manifest.id.clone(),
            digest: plan.digest.clone(),
            manifest: canonical,
            generation,
            accepted_ms: now,
            earlier,
            retired,
            recreate_consumers: plan
                .items
                .iter()
                .filter(|i| {
                    i.kind == ResourceKind::Consumer
                        && i.is_dangerous()
                        && i.change != Change::Removed
                })
                .map(|i| i.alias.clone())
                .collect(),
        };
        let key = format!("contract.{}.desired", lineage_key(&manifest.id));
        let written = self
            .records
            .write_cas(&key, &desired, previous.as_ref().map(|p| p.revision))
            .await?;
        if written.is_none() {
            return Err(AuthorityError::Conflict { id: manifest.id });
        }
        // Accepting a previously detached alias again re-attaches its data.
        for item in &plan.items {
            if item.change == Change::Added {
                let _ = self
                    .records
                    .delete(&format!("orphan.{}", item.physical))
                    .await;
            }
        }
        self.wake.notify_one();
        Ok(AcceptReply { plan, generation })
    }

    pub(super) async fn purge(&self, payload: &[u8]) -> Result<Orphan, AuthorityError> {
        let request: PurgeRequest = decode(payload)?;
        let key = format!("orphan.{}", request.physical);
        let Some(orphan) = self.records.read::<Orphan>(&key).await? else {
            return Err(AuthorityError::NotFound {
                what: format!(
                    "orphan `{}` (only detached resources can be purged)",
                    request.physical
                ),
            });
        };
        let stream = match orphan.value.kind {
            ResourceKind::Kv | ResourceKind::Ledger => {
                trellis_runtime::layout::kv_stream_name(&orphan.value.physical)
            }
            ResourceKind::Store => {
                trellis_runtime::layout::object_stream_name(&orphan.value.physical)
            }
            ResourceKind::Events | ResourceKind::Consumer => orphan.value.physical.clone(),
        };
        match self.js.delete_stream(&stream).await {
            Ok(_) => {}
            Err(e) => {
                if !matches!(e.kind(), jetstream::context::DeleteStreamErrorKind::JetStream(js) if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
                {
                    return Err(records::storage(e));
                }
            }
        }
        self.records.delete(&key).await?;
        Ok(orphan.value)
    }

    async fn existing(
        &self,
        id: &str,
        manifest: &Manifest,
    ) -> Vec<((ResourceKind, String), Existing)> {
        let mut out = Vec::new();
        let Some(resources) = &manifest.resources else {
            return out;
        };
        let replicas = self.config.replicas;
        let wanted = resources
            .kv
            .iter()
            .map(|(alias, kv)| {
                let b =
                    provision::kv_binding(&self.config.physical(id, ResourceKind::Kv, alias), kv);
                (
                    ResourceKind::Kv,
                    alias.clone(),
                    trellis_runtime::layout::kv_stream_config(&b, replicas),
                )
            })
            .chain(resources.store.iter().map(|(alias, st)| {
                let b = provision::store_binding(
                    &self.config.physical(id, ResourceKind::Store, alias),
                    st,
                );
                (
                    ResourceKind::Store,
                    alias.clone(),
                    trellis_runtime::layout::object_stream_config(&b, replicas),
                )
            }));
        for (kind, alias, config) in wanted {
            let found = match self.js.get_stream(&config.name).await {
                Ok(stream) => {
                    match provision::incompatibility(&stream.cached_info().config, &config) {
                        Some(why) => Existing::Incompatible(why),
                        None => Existing::Compatible,
                    }
                }
                Err(_) => Existing::Absent,
            };
            out.push(((kind, alias), found));
        }
        out
    }

    async fn make_plan(
        &self,
        text: &str,
    ) -> Result<(Plan, Manifest, Option<records::Versioned<Desired>>, String), AuthorityError> {
        let checked = trellis_manifest::check_manifest(text).map_err(|e| {
            AuthorityError::InvalidManifest {
                problems: e.to_string().lines().map(str::to_owned).collect(),
            }
        })?;
        let manifest = checked.manifest;
        let canonical = manifest.to_canonical_string();
        let key = format!("contract.{}.desired", lineage_key(&manifest.id));
        let previous = self.records.read::<Desired>(&key).await?;
        let previous_manifest: Option<Manifest> = match &previous {
            Some(p) => Some(serde_json::from_str(&p.value.manifest).map_err(records::storage)?),
            None => None,
        };
        let used = consumers::used_manifests(&self.records, &manifest).await?;
        let problems = consumers::uses_problems(&manifest, &used);
        if !problems.is_empty() {
            return Err(AuthorityError::UnknownUses { problems });
        }
        let existing = self.existing(&manifest.id, &manifest).await;
        let id = manifest.id.clone();
        let accepted = plan::accepted_manifests(&self.records, &id).await?;
        let mut plan = plan::compute(
            previous_manifest.as_ref(),
            &manifest,
            &checked.digest,
            previous.as_ref().map(|p| p.value.digest.as_str()),
            &accepted,
            &|kind, alias| self.config.physical(&id, kind, alias),
            &|kind, alias| {
                existing
                    .iter()
                    .find(|((k, a), _)| *k == kind && a == alias)
                    .map(|(_, e)| e.clone())
                    .unwrap_or(Existing::Absent)
            },
        );
        let wanted = consumers::wanted(&self.config, &manifest, &used);
        let installed = self.installed_consumers(&manifest.id).await?;
        let mut on_server = Vec::new();
        for w in wanted.iter().filter(|w| !installed.contains_key(&w.alias)) {
            on_server.push((w.alias.clone(), self.existing_consumer(w).await));
        }
        plan.items
            .extend(plan::consumer_items(&installed, &wanted, &|alias| {
                on_server
                    .iter()
                    .find(|(a, _)| a == alias)
                    .map(|(_, e)| e.clone())
                    .unwrap_or(Existing::Absent)
            }));
        Ok((plan, manifest, previous, canonical))
    }

    /// The consumers the last reconcile of `id` provisioned, by alias.
    async fn installed_consumers(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, ConsumerBinding>, AuthorityError> {
        let key = format!("contract.{}.status", lineage_key(id));
        let state = self.records.read::<ContractStatus>(&key).await?;
        Ok(state
            .map(|s| consumers::by_alias(&s.value.bindings.consumers))
            .unwrap_or_default())
    }

    /// What sits on the server under a wanted consumer's name.
    async fn existing_consumer(&self, wanted: &consumers::WantedConsumer) -> Existing {
        let Ok(binding) = &wanted.binding else {
            return Existing::Absent;
        };
        let Ok(stream) = self.js.get_stream(&binding.stream).await else {
            return Existing::Absent;
        };
        match stream.consumer_info(&binding.consumer).await {
            Ok(info) => {
                let diff =
                    provision::consumer_diff(&info.config, &provision::consumer_config(binding));
                if diff.fixed.is_empty() {
                    Existing::Compatible
                } else {
                    Existing::Incompatible(diff.fixed.join(", "))
                }
            }
            Err(_) => Existing::Absent,
        }
    }
}
