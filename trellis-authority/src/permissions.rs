//! The NATS permissions a principal's connections are issued, computed
//! from the accepted contracts and their last good bindings (so a failed
//! reconcile never takes permissions away).
//!
//! Requests go to `trellis.<deployment>.<caller key>.<contract>.…`, and a
//! connection may publish requests only below its own key: that is what
//! proves the caller to providers.
//!
//! - operators: everything;
//! - a service: its own contract's events, requests to it from every
//!   caller (subscribe), its own KV buckets, stores, ledger and event
//!   stream, exactly the consumer info / pull-next / ack subjects of its
//!   consumer bindings, below its own key the request subjects of the
//!   surfaces its `uses` select and the public state service, the event
//!   subjects its `uses` subscribe to, the authority's `bindings` request
//!   and read access to the published principals;
//! - a user or device: every request below its own key but to internal
//!   RPCs (providers check capabilities themselves, with a typed error),
//!   and the live events whose `subscribe` gate it satisfies: each of them,
//!   or all events but the gated ones it may not see, whichever list is
//!   shorter, the staged chunk subjects of send-transfer stores below its
//!   key (direct uploads), and read access to the published principals
//!   by key (live listeners check event publishers; a sealed record opens
//!   only with the key it belongs to). Six subjects plus one per internal
//!   RPC plus one per send-transfer operation plus min(visible events,
//!   hidden events + 1).
//!
//! Everyone subscribes only below its own inbox prefix and may publish to
//! `_INBOX.>` (replies, download credits).

use std::collections::{BTreeMap, BTreeSet};

use trellis_manifest::manifest::Manifest;

use crate::consumers::filter_subject;
use trellis_runtime::identity::{PrincipalKind, inbox_prefix};
use trellis_runtime::internal::{control_subject, request_subject, surface_subject};
use trellis_runtime::layout::{kv_stream_name, object_stream_name};
use trellis_runtime::protocol::{BindingsRecord, Permissions, PrincipalRecord, authority_subject};

/// An accepted contract with its last good bindings.
#[derive(Debug, Clone)]
pub(crate) struct Deployed {
    pub(crate) manifest: Manifest,
    pub(crate) bindings: Option<BindingsRecord>,
}

#[derive(Default)]
struct Builder {
    publish: BTreeSet<String>,
    subscribe: BTreeSet<String>,
    subscribe_deny: BTreeSet<String>,
    publish_deny: BTreeSet<String>,
}

impl Builder {
    fn publish(&mut self, s: impl Into<String>) {
        self.publish.insert(s.into());
    }

    fn subscribe(&mut self, s: impl Into<String>) {
        self.subscribe.insert(s.into());
    }

    /// Read access to a stream through the JetStream API: info, direct
    /// and stored-message gets, and the ephemeral (ordered) consumers that
    /// key listings and watches create, with their flow control.
    fn read_stream(&mut self, stream: &str) {
        for api in [
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}.>"),
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
            format!("$JS.API.CONSUMER.INFO.{stream}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
            format!("$JS.FC.{stream}.>"),
            format!("$JS.ACK.{stream}.>"),
        ] {
            self.publish(api);
        }
    }

    /// Read and write access to a stream whose data lives under `data`.
    fn own_stream(&mut self, stream: &str, data: &str) {
        self.read_stream(stream);
        self.publish(format!("$JS.API.STREAM.PURGE.{stream}"));
        self.publish(data.to_owned());
    }

    fn kv(&mut self, bucket: &str) {
        self.own_stream(&kv_stream_name(bucket), &format!("$KV.{bucket}.>"));
    }

    fn store(&mut self, bucket: &str) {
        let stream = object_stream_name(bucket);
        self.own_stream(&stream, &format!("$O.{bucket}.>"));
        // A direct upload's provider deletes chunks stored twice or out of
        // order (resent after a dropped connection).
        self.publish(format!("$JS.API.STREAM.MSG.DELETE.{stream}"));
        // Waiting for an object to appear watches its metadata subject.
        self.subscribe(format!("$O.{bucket}.M.>"));
    }

    fn finish(self) -> Permissions {
        Permissions {
            publish: self.publish.into_iter().collect(),
            subscribe: self.subscribe.into_iter().collect(),
            subscribe_deny: self.subscribe_deny.into_iter().collect(),
            publish_deny: self.publish_deny.into_iter().collect(),
        }
    }
}

/// Request subjects of an operation below `caller`: start, control and
/// its transfers.
fn operation_subjects(
    b: &mut Builder,
    deployment: &str,
    caller: &str,
    contract: &str,
    subject: &str,
) {
    let base = request_subject(deployment, caller, contract, subject);
    b.publish(control_subject(&base));
    b.publish(format!("{base}.transfer.>"));
    b.publish(base);
}

/// The staged chunk subjects of `contract`'s send-transfer store for
/// `operation`, below the caller's key: a direct upload publishes its
/// chunks there (the provider names the exact subject in its start reply,
/// verifies what is stored and commits it). Only this caller may publish
/// there; nobody but the provider reads them.
fn upload_subjects(b: &mut Builder, key: &str, contract: &Deployed, operation: &str) {
    let Some(transfer) = contract
        .manifest
        .operations
        .get(operation)
        .and_then(|op| op.transfer.as_ref())
    else {
        return;
    };
    if let Some(store) = contract
        .bindings
        .as_ref()
        .and_then(|bindings| bindings.store.get(&transfer.store))
    {
        b.publish(format!("$O.{}.C.{key}.>", store.bucket));
    }
}

/// The permissions of `principal` in `deployment`, given every accepted
/// contract by id. `callers_bucket` (sealed principal records) is readable by services.
pub(crate) fn compute(
    deployment: &str,
    principal: &PrincipalRecord,
    contracts: &BTreeMap<String, Deployed>,
    callers_bucket: &str,
) -> Permissions {
    let mut b = Builder::default();
    if principal.kind == PrincipalKind::Operator {
        b.publish(">");
        b.subscribe(">");
        return b.finish();
    }
    let key = principal.public_key.as_str();
    let inbox = format!("{}.>", inbox_prefix(key));
    b.subscribe(inbox);
    // Replies, download credits and probes go to inboxes: anyone may
    // publish there, only the owner may subscribe (and providers reply
    // only below the verified caller's prefix).
    b.publish(format!("{}>", trellis_runtime::identity::INBOXES));
    match principal.kind {
        PrincipalKind::Service => {
            b.publish(authority_subject(deployment, "bindings"));
            b.read_stream(&kv_stream_name(callers_bucket));
            // Public state is built in: every principal reads its own
            // namespace; the admin RPCs only with the `admin` capability.
            let admin = principal
                .capabilities
                .contains(trellis_runtime::state::ADMIN_CAPABILITY);
            let admin_rpcs: &[_] = if admin {
                &trellis_runtime::state::ADMIN_RPCS
            } else {
                &[]
            };
            for spec in trellis_runtime::state::CALLER_RPCS.iter().chain(admin_rpcs) {
                b.publish(request_subject(
                    deployment,
                    key,
                    trellis_runtime::state::STATE_CONTRACT,
                    spec.subject,
                ));
            }
            if let Some(own) = principal.contract.as_ref().and_then(|c| contracts.get(c)) {
                service(&mut b, deployment, key, own, contracts);
            }
        }
        PrincipalKind::User | PrincipalKind::Device => {
            b.publish(format!("trellis.{deployment}.{key}.>"));
            // Live listeners check each event's publisher proof against
            // the sealed principal records, read by key (opened only with
            // that key): stream info and direct gets, no consumers.
            let callers = kv_stream_name(callers_bucket);
            b.publish(format!("$JS.API.STREAM.INFO.{callers}"));
            b.publish(format!("$JS.API.DIRECT.GET.{callers}"));
            b.publish(format!("$JS.API.DIRECT.GET.{callers}.>"));
            let mut events = Events::default();
            for (id, deployed) in contracts {
                for operation in deployed.manifest.operations.keys() {
                    upload_subjects(&mut b, key, deployed, operation);
                }
                caller(
                    &mut b,
                    &mut events,
                    deployment,
                    key,
                    id,
                    &deployed.manifest,
                    &principal.capabilities,
                );
            }
            events.issue(&mut b, deployment);
        }
        PrincipalKind::Operator => {}
    }
    b.finish()
}

fn service(
    b: &mut Builder,
    deployment: &str,
    key: &str,
    own: &Deployed,
    contracts: &BTreeMap<String, Deployed>,
) {
    let id = &own.manifest.id;
    // Its own events (and anything else the contract publishes itself),
    // and the requests every caller sends it.
    let namespace = format!(
        "{}.>",
        surface_subject(deployment, id, "").trim_end_matches('.')
    );
    b.publish(namespace.clone());
    b.subscribe(namespace);
    b.subscribe(format!(
        "{}.>",
        request_subject(deployment, "*", id, "").trim_end_matches('.')
    ));
    // The NATS service API (`nats micro ls|info|stats`): discovery of
    // every service, and the verbs addressed to its own micro name and
    // instances (replies go to inboxes).
    let micro = trellis_runtime::observe::service_name(id);
    let api = trellis_runtime::observe::SERVICE_API_PREFIX;
    for verb in trellis_runtime::observe::VERBS {
        b.subscribe(format!("{api}.{verb}"));
    }
    b.subscribe(format!("{api}.*.{micro}"));
    b.subscribe(format!("{api}.*.{micro}.*"));
    if let Some(bindings) = &own.bindings {
        for kv in bindings.kv.values().chain(bindings.ledger.iter()) {
            b.kv(&kv.bucket);
        }
        for store in bindings.store.values() {
            b.store(&store.bucket);
        }
        if let Some(events) = &bindings.events {
            b.read_stream(&events.stream);
        }
        for consumer in bindings.consumers.values().flatten() {
            let (s, c) = (&consumer.stream, &consumer.consumer);
            b.publish(format!("$JS.API.CONSUMER.INFO.{s}.{c}"));
            b.publish(format!("$JS.API.CONSUMER.MSG.NEXT.{s}.{c}"));
            b.publish(format!("$JS.ACK.{s}.{c}.>"));
        }
    }
    let Some(uses) = &own.manifest.uses else {
        return;
    };
    for used in uses.all().values() {
        let Some(remote) = contracts.get(&used.contract).map(|d| &d.manifest) else {
            continue;
        };
        let rid = &remote.id;
        let selected = |sel: Option<&Vec<String>>| sel.cloned().unwrap_or_default();
        let mut downloads = false;
        for name in selected(used.rpc.as_ref().and_then(|r| r.call.as_ref())) {
            if let Some(rpc) = remote.rpc.get(&name) {
                b.publish(request_subject(deployment, key, rid, &rpc.subject));
                downloads |= rpc.transfer.is_some();
            }
        }
        for name in selected(used.operations.as_ref().and_then(|r| r.call.as_ref())) {
            if let Some(op) = remote.operations.get(&name) {
                operation_subjects(b, deployment, key, rid, &op.subject);
                if let Some(deployed) = contracts.get(&used.contract) {
                    upload_subjects(b, key, deployed, &name);
                }
            }
        }
        if downloads {
            b.publish(request_subject(
                deployment,
                key,
                rid,
                trellis_runtime::internal::RECEIVE_SUBJECT,
            ));
        }
        for name in selected(used.events.as_ref().and_then(|e| e.subscribe.as_ref())) {
            if let Some(event) = remote.events.get(&name) {
                b.subscribe(filter_subject(deployment, rid, &event.subject));
            }
        }
    }
}

/// The live events of every contract a user or device may see, and the
/// gated ones it may not.
#[derive(Default)]
struct Events {
    visible: BTreeSet<String>,
    hidden: BTreeSet<String>,
}

impl Events {
    /// Issues the shorter of two encodings of the same set: each visible
    /// event, or every event (one subject: a contract id always has an
    /// `@`, so no request subject's fourth token is `events`) but the
    /// hidden ones.
    fn issue(self, b: &mut Builder, deployment: &str) {
        if self.visible.len() <= self.hidden.len() + 1 {
            b.subscribe.extend(self.visible);
        } else {
            b.subscribe(format!("trellis.{deployment}.*.events.>"));
            b.subscribe_deny.extend(self.hidden);
        }
    }
}

/// What a user or device with capabilities `caps` may do with contract
/// `id`: the live events whose `subscribe` gate `caps` satisfies (live
/// events are plain subscriptions, so the gate is applied when the
/// connection is authorized), and requests to anything but internal RPCs
/// (denied below its key).
fn caller(
    b: &mut Builder,
    events: &mut Events,
    deployment: &str,
    key: &str,
    id: &str,
    manifest: &Manifest,
    caps: &BTreeSet<String>,
) {
    for event in manifest.events.values() {
        let gate = event
            .capabilities
            .as_ref()
            .and_then(|c| c.subscribe.as_ref());
        let subject = filter_subject(deployment, id, &event.subject);
        if gate.is_none_or(|g| g.iter().all(|c| caps.contains(c))) {
            events.visible.insert(subject);
        } else {
            events.hidden.insert(subject);
        }
    }
    for rpc in manifest.rpc.values().filter(|r| r.internal == Some(true)) {
        b.publish_deny
            .insert(request_subject(deployment, key, id, &rpc.subject));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contract `c<i>@v1` with one open event, one event gated by
    /// `c<i>::read` and one internal RPC.
    fn contract(i: usize) -> Deployed {
        let manifest = serde_json::json!({
            "format": "trellis.contract.v1",
            "id": format!("c{i}@v1"),
            "displayName": "C",
            "description": "C",
            "kind": "service",
            "rpc": {
                "Admin.Reset": {
                    "version": "v1",
                    "subject": "rpc.v1.Admin.Reset",
                    "input": {"schema": "X"},
                    "output": {"schema": "X"},
                    "internal": true
                }
            },
            "events": {
                "Open.Ping": {
                    "version": "v1",
                    "subject": "events.v1.Open.Ping",
                    "event": {"schema": "X"}
                },
                "Secret.Made": {
                    "version": "v1",
                    "subject": "events.v1.Secret.Made.{/id}",
                    "params": ["/id"],
                    "event": {"schema": "X"},
                    "capabilities": {"subscribe": [format!("c{i}::read")]}
                }
            }
        });
        Deployed {
            manifest: serde_json::from_value(manifest).expect("manifest"),
            bindings: None,
        }
    }

    fn user(capabilities: &[&str]) -> PrincipalRecord {
        PrincipalRecord {
            public_key: "UKEY".into(),
            kind: PrincipalKind::User,
            id: "alice".into(),
            user: None,
            contract: None,
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            revoked: false,
            updated_ms: 0,
        }
    }

    fn deployment(n: usize) -> BTreeMap<String, Deployed> {
        (0..n).map(|i| (format!("c{i}@v1"), contract(i))).collect()
    }

    #[test]
    fn users_publish_below_their_key_but_not_to_internal_rpcs() {
        let p = compute("d", &user(&[]), &deployment(2), "callers");
        assert_eq!(
            p.publish,
            [
                "$JS.API.DIRECT.GET.KV_callers",
                "$JS.API.DIRECT.GET.KV_callers.>",
                "$JS.API.STREAM.INFO.KV_callers",
                "_INBOX.>",
                "trellis.d.UKEY.>"
            ]
        );
        assert_eq!(
            p.publish_deny,
            [
                "trellis.d.UKEY.c0@v1.rpc.v1.Admin.Reset",
                "trellis.d.UKEY.c1@v1.rpc.v1.Admin.Reset"
            ]
        );
    }

    #[test]
    fn users_get_the_shorter_encoding_of_their_events() {
        // Fewer visible events than hidden ones (and the wildcard): each
        // visible event is listed.
        let p = compute("d", &user(&[]), &deployment(3), "callers");
        assert_eq!(
            p.subscribe,
            [
                "_INBOX.UKEY.>",
                "trellis.d.c0@v1.events.v1.Open.Ping",
                "trellis.d.c1@v1.events.v1.Open.Ping",
                "trellis.d.c2@v1.events.v1.Open.Ping"
            ]
        );
        assert!(p.subscribe_deny.is_empty());
        // Many: every event, but the gated ones it may not see.
        let p = compute("d", &user(&["c3::read"]), &deployment(5), "callers");
        assert_eq!(p.subscribe, ["_INBOX.UKEY.>", "trellis.d.*.events.>"]);
        assert_eq!(p.subscribe_deny.len(), 4);
        assert!(
            !p.subscribe_deny
                .contains(&"trellis.d.c3@v1.events.v1.Secret.Made.*".to_owned())
        );
    }
}
