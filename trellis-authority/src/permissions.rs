//! The NATS permissions a principal's connections are issued, computed
//! from the accepted contracts and their last good bindings (so a failed
//! reconcile never takes permissions away).
//!
//! - operators: everything;
//! - a service: its own contract's subjects (RPCs, operations, transfers,
//!   events), its own KV buckets, stores, ledger and event stream,
//!   exactly the consumer info / pull-next / ack subjects of its consumer
//!   bindings, the request subjects of the surfaces its `uses` select, the
//!   event subjects its `uses` subscribe to, the authority's `bindings`
//!   request and read access to the published principals;
//! - a user or device: the request subjects of every non-internal RPC and
//!   operation of the accepted contracts (the public state service among
//!   them), and the live events whose `subscribe` gate it satisfies.
//!   Request capabilities are not part of NATS permissions: providers
//!   check them on every request, so a missing one is a typed `forbidden`
//!   and a revocation needs no reconnect.
//!
//! Everyone subscribes only below its own inbox prefix and may publish to
//! `_INBOX.>` (replies, download credits).

use std::collections::{BTreeMap, BTreeSet};

use trellis_manifest::manifest::Manifest;

use crate::consumers::filter_subject;
use trellis_runtime::identity::{PrincipalKind, inbox_prefix};
use trellis_runtime::internal::{control_subject, surface_subject};
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
        self.own_stream(&object_stream_name(bucket), &format!("$O.{bucket}.>"));
        // Waiting for an object to appear watches its metadata subject.
        self.subscribe(format!("$O.{bucket}.M.>"));
    }

    fn finish(self) -> Permissions {
        Permissions {
            publish: self.publish.into_iter().collect(),
            subscribe: self.subscribe.into_iter().collect(),
        }
    }
}

/// Request subjects of an operation: start, control and its transfers.
fn operation_subjects(b: &mut Builder, deployment: &str, contract: &str, subject: &str) {
    let base = surface_subject(deployment, contract, subject);
    b.publish(control_subject(&base));
    b.publish(format!("{base}.transfer.>"));
    b.publish(base);
}

fn receive_subject(deployment: &str, contract: &str) -> String {
    surface_subject(
        deployment,
        contract,
        trellis_runtime::internal::RECEIVE_SUBJECT,
    )
}

/// The permissions of `principal` in `deployment`, given every accepted
/// contract by id. `principals_bucket` is readable by services.
pub(crate) fn compute(
    deployment: &str,
    principal: &PrincipalRecord,
    contracts: &BTreeMap<String, Deployed>,
    principals_bucket: &str,
) -> Permissions {
    let mut b = Builder::default();
    if principal.kind == PrincipalKind::Operator {
        b.publish(">");
        b.subscribe(">");
        return b.finish();
    }
    let inbox = format!("{}.>", inbox_prefix(&principal.public_key));
    b.subscribe(inbox);
    // Replies, download credits and probes go to inboxes: anyone may
    // publish there, only the owner may subscribe (and providers reply
    // only below the verified caller's prefix).
    b.publish(format!("{}>", trellis_runtime::identity::INBOXES));
    // Public state is built in: every principal reads its own namespace.
    for spec in [
        trellis_runtime::state::GET,
        trellis_runtime::state::PUT,
        trellis_runtime::state::DELETE,
        trellis_runtime::state::LIST,
    ] {
        b.publish(surface_subject(
            deployment,
            trellis_runtime::state::STATE_CONTRACT,
            spec.subject,
        ));
    }
    match principal.kind {
        PrincipalKind::Service => {
            b.publish(authority_subject(deployment, "bindings"));
            b.read_stream(&kv_stream_name(principals_bucket));
            if let Some(own) = principal.contract.as_ref().and_then(|c| contracts.get(c)) {
                service(&mut b, deployment, own, contracts);
            }
        }
        PrincipalKind::User | PrincipalKind::Device => {
            for (id, deployed) in contracts {
                caller(
                    &mut b,
                    deployment,
                    id,
                    &deployed.manifest,
                    &principal.capabilities,
                );
            }
        }
        PrincipalKind::Operator => {}
    }
    b.finish()
}

fn service(
    b: &mut Builder,
    deployment: &str,
    own: &Deployed,
    contracts: &BTreeMap<String, Deployed>,
) {
    let id = &own.manifest.id;
    let namespace = format!(
        "{}.>",
        surface_subject(deployment, id, "").trim_end_matches('.')
    );
    b.publish(namespace.clone());
    b.subscribe(namespace);
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
                b.publish(surface_subject(deployment, rid, &rpc.subject));
                downloads |= rpc.transfer.is_some();
            }
        }
        for name in selected(used.operations.as_ref().and_then(|r| r.call.as_ref())) {
            if let Some(op) = remote.operations.get(&name) {
                operation_subjects(b, deployment, rid, &op.subject);
            }
        }
        if downloads {
            b.publish(receive_subject(deployment, rid));
        }
        for name in selected(used.events.as_ref().and_then(|e| e.subscribe.as_ref())) {
            if let Some(event) = remote.events.get(&name) {
                b.subscribe(filter_subject(deployment, rid, &event.subject));
            }
        }
    }
}

fn caller(
    b: &mut Builder,
    deployment: &str,
    id: &str,
    manifest: &Manifest,
    caps: &BTreeSet<String>,
) {
    // Live events are plain subscriptions, so their `subscribe` gate is
    // applied when the connection is authorized.
    for event in manifest.events.values() {
        let gate = event
            .capabilities
            .as_ref()
            .and_then(|c| c.subscribe.as_ref());
        if gate.is_none_or(|g| g.iter().all(|c| caps.contains(c))) {
            b.subscribe(filter_subject(deployment, id, &event.subject));
        }
    }
    let mut downloads = false;
    for rpc in manifest.rpc.values().filter(|r| r.internal != Some(true)) {
        b.publish(surface_subject(deployment, id, &rpc.subject));
        downloads |= rpc.transfer.is_some();
    }
    for op in manifest.operations.values() {
        operation_subjects(b, deployment, id, &op.subject);
    }
    if downloads {
        b.publish(receive_subject(deployment, id));
    }
}
