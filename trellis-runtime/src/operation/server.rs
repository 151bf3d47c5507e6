//! The provider side of operations: start, control, execution, leases.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::inbound;
use super::record::{
    Control, OperationFailure, OperationStatus, Record, TransferProgress, key, mutate, read,
    snapshot_bytes,
};
use super::spec::OperationSpec;
use crate::observe::{Call, Direction, Stats};
use crate::principal::Principal;
use crate::rpc::gate;
use crate::rpc::{ServeError, ServeOptions};
use crate::runtime::ServiceRuntime;
use crate::store::{ObjectInfo, StoreHandle};
use crate::wire::ids::{is_id, now_ms};
use crate::wire::reply::reply;
use crate::wire::subjects::control_subject;

type OpFuture = Pin<Box<dyn Future<Output = Result<Value, OperationFailure>> + Send>>;
type OpHandlerFn = Arc<dyn Fn(RawContext, &Bytes) -> Result<OpFuture, String> + Send + Sync>;

/// One operation a service serves (built by generated code).
pub(crate) struct OperationEndpoint {
    pub(crate) spec: OperationSpec,
    handler: OpHandlerFn,
    store: Option<StoreHandle>,
}

impl OperationEndpoint {
    /// Operation `spec` served by `handler`; `store` is the store its send
    /// transfer writes to, if it declares one.
    pub(crate) fn new<I, P, O, F, Fut>(
        spec: OperationSpec,
        store: Option<StoreHandle>,
        handler: F,
    ) -> OperationEndpoint
    where
        I: DeserializeOwned + Send + 'static,
        P: Serialize + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(OperationContext<P>, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, OperationFailure>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let f: OpHandlerFn = Arc::new(move |raw: RawContext, payload: &Bytes| {
            let input: I = serde_json::from_slice(payload)
                .map_err(|e| format!("request does not decode: {e}"))?;
            let handler = handler.clone();
            Ok(Box::pin(async move {
                let context = OperationContext {
                    raw,
                    _progress: PhantomData,
                };
                let output = handler(context, input).await?;
                serde_json::to_value(&output)
                    .map_err(|e| OperationFailure::Failed(format!("output does not encode: {e}")))
            }) as OpFuture)
        });
        OperationEndpoint {
            spec,
            handler: f,
            store,
        }
    }
}

/// What a handler knows about the operation it runs.
pub struct OperationContext<P> {
    raw: RawContext,
    _progress: PhantomData<fn(P)>,
}

impl<P> std::fmt::Debug for OperationContext<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationContext")
            .field("id", &self.raw.id)
            .field("operation", &self.raw.spec.name)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct RawContext {
    id: String,
    owner: String,
    spec: Arc<Spec>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    object: Arc<std::sync::OnceLock<ObjectInfo>>,
}

impl<P: Serialize> OperationContext<P> {
    /// The operation id.
    pub fn id(&self) -> &str {
        &self.raw.id
    }

    /// The principal that started the operation.
    pub fn owner(&self) -> &str {
        &self.raw.owner
    }

    /// Records progress; observers see it with the next revision. Fails
    /// only if the ledger is unreachable (the operation goes on).
    pub async fn progress(&self, progress: &P) -> Result<(), OperationFailure> {
        let value = serde_json::to_value(progress)
            .map_err(|e| OperationFailure::Failed(format!("progress does not encode: {e}")))?;
        let cancel = self.raw.cancel.clone();
        mutate(&self.raw.shared.kv, &self.raw.id, |record| {
            if record.cancel_requested {
                cancel.cancel();
            }
            if record.status.is_terminal() {
                return false;
            }
            record.progress = Some(value.clone());
            true
        })
        .await
        .map(drop)
        .map_err(OperationFailure::Failed)
    }

    /// Resolves once a caller asked to cancel this operation. The handler
    /// decides what to do: usually return [`OperationFailure::Cancelled`].
    pub async fn cancelled(&self) {
        self.raw.cancel.cancelled().await;
    }

    /// Whether a caller asked to cancel this operation.
    pub fn is_cancelled(&self) -> bool {
        self.raw.cancel.is_cancelled()
    }

    /// Issues receive grants to the principal that started the operation
    /// (for outputs that hand out downloads).
    pub fn grants(&self) -> crate::transfer::receive::Grants {
        crate::transfer::receive::Grants::for_principal(
            self.raw.shared.runtime.clone(),
            Principal::new(self.raw.owner.clone()),
        )
    }

    /// For operations with a send transfer: the verified object the caller
    /// sent, already stored under its final key.
    pub fn transfer(&self) -> Option<&ObjectInfo> {
        self.raw.object.get()
    }
}

/// What the manifest says about one served operation.
pub(crate) struct Spec {
    pub name: String,
    pub subject: String,
    pub cancel: bool,
    pub call: Option<Vec<String>>,
    pub observe: Option<Vec<String>>,
    pub cancel_caps: Option<Vec<String>>,
    pub transfer: Option<inbound::SendSpec>,
    handler: OpHandlerFn,
}

pub(crate) struct Shared {
    pub runtime: ServiceRuntime,
    /// The serving instance's statistics (transfer bytes).
    stats: Stats,
    pub kv: kv::Store,
    options: ServeOptions,
    specs: HashMap<String, Arc<Spec>>,
    running: Mutex<HashMap<String, CancellationToken>>,
    active: Mutex<HashMap<String, (u64, String)>>,
    /// Staging ids of the unfinished transfers of active operations (any
    /// instance's), which the stray-chunk sweep keeps.
    staging: Mutex<HashMap<String, String>>,
    changes: broadcast::Sender<String>,
    permits: Arc<Semaphore>,
    /// Operations recorded and not finished by this instance.
    in_flight: Arc<Semaphore>,
    /// Send transfers accepted and not yet stored, in all and by caller.
    transfers: Arc<Semaphore>,
    pending_by_caller: Mutex<HashMap<String, usize>>,
    tasks: TaskTracker,
    stop: CancellationToken,
    killed: CancellationToken,
}

/// The operation half of a running server.
pub(crate) struct OperationServer {
    shared: Arc<Shared>,
}

fn spec_of(endpoint: OperationEndpoint) -> Result<Spec, ServeError> {
    let declared = endpoint.spec;
    let transfer = match &declared.transfer {
        None => None,
        Some(t) => {
            let store = endpoint.store.clone().ok_or_else(|| ServeError::Manifest {
                name: declared.name.to_owned(),
                reason: format!("the store `{}` of its send transfer is not bound", t.store),
            })?;
            Some(inbound::SendSpec::new(t, store))
        }
    };
    let call = gate(declared.call);
    Ok(Spec {
        name: declared.name.to_owned(),
        subject: declared.subject.to_owned(),
        cancel: declared.cancel,
        observe: gate(declared.observe).or(call.clone()),
        call,
        cancel_caps: gate(declared.cancel_caps),
        transfer,
        handler: endpoint.handler,
    })
}

/// Starts serving `endpoints`' operations.
pub(crate) async fn serve(
    runtime: &ServiceRuntime,
    endpoints: Vec<OperationEndpoint>,
    options: &ServeOptions,
    stats: &Stats,
) -> Result<OperationServer, ServeError> {
    let kv = runtime.ledger().await?;
    let mut specs = HashMap::new();
    for endpoint in endpoints {
        let spec = spec_of(endpoint)?;
        specs.insert(spec.name.clone(), Arc::new(spec));
    }
    let shared = Arc::new(Shared {
        runtime: runtime.clone(),
        stats: stats.clone(),
        kv,
        options: options.clone(),
        specs,
        running: Mutex::new(HashMap::new()),
        active: Mutex::new(HashMap::new()),
        staging: Mutex::new(HashMap::new()),
        changes: broadcast::channel(1024).0,
        permits: Arc::new(Semaphore::new(options.operation_concurrency.max(1))),
        transfers: Arc::new(Semaphore::new(options.max_pending_transfers.max(1))),
        in_flight: Arc::new(Semaphore::new(options.max_operations_in_flight.max(1))),
        pending_by_caller: Mutex::new(HashMap::new()),
        tasks: TaskTracker::new(),
        stop: CancellationToken::new(),
        killed: CancellationToken::new(),
    });
    follow(shared.clone()).await?;
    let client = runtime.nats();
    let queue = format!("trellis.{}", runtime.contract_id());
    for spec in shared.specs.values() {
        let base = runtime.served_subject(&spec.subject);
        for (subject, control) in [(base.clone(), false), (control_subject(&base), true)] {
            let endpoint = if control {
                let name = format!("{}.control", spec.name);
                stats.add_endpoint(&name, "operation-control", &subject, &queue)
            } else {
                stats.add_endpoint(&spec.name, "operation", &subject, &queue)
            };
            let mut sub = client
                .queue_subscribe(subject.clone(), queue.clone())
                .await
                .map_err(|source| ServeError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
            let shared2 = shared.clone();
            let spec = spec.clone();
            shared.tasks.spawn(async move {
                let mut draining = None;
                loop {
                    let message = tokio::select! {
                        m = crate::wire::drain::next_or_drained(&mut sub, draining) => m,
                        () = shared2.stop.cancelled(), if draining.is_none() => {
                            // Starts and controls the server routed here
                            // before it processed the unsubscribe are still
                            // answered.
                            draining = Some(crate::wire::drain::drain(&mut sub).await);
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    let shared = shared2.clone();
                    let spec = spec.clone();
                    let call = endpoint.begin();
                    shared2.tasks.spawn(async move {
                        if control {
                            handle_control(&shared, &spec, message, call).await;
                        } else {
                            handle_start(&shared, &spec, message, call).await;
                        }
                    });
                }
            });
        }
    }
    Ok(OperationServer { shared })
}

/// Follows every record of the bucket: wakes long polls, routes cancel
/// requests to local handlers, tracks leases and fails abandoned operations.
async fn follow(shared: Arc<Shared>) -> Result<(), ServeError> {
    let mut watch = shared
        .kv
        .watch_with_history("op.>")
        .await
        .map_err(|e| ServeError::Ledger {
            bucket: shared.kv.name.clone(),
            reason: e.to_string(),
        })?;
    let s = shared.clone();
    shared.tasks.spawn(async move {
        let mut sweep = tokio::time::interval(s.options.operation_lease / 3);
        let mut strays = tokio::time::interval(s.options.staged_sweep);
        strays.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = s.stop.cancelled() => break,
                _ = sweep.tick() => sweep_expired(&s).await,
                _ = strays.tick() => sweep_strays(&s).await,
                entry = watch.next() => {
                    let Some(entry) = entry else { break };
                    let Ok(entry) = entry else { continue };
                    let Some(id) = entry.key.strip_prefix("op.").map(str::to_owned) else { continue };
                    let record: Option<Record> = (entry.operation == kv::Operation::Put)
                        .then(|| serde_json::from_slice(&entry.value).ok())
                        .flatten();
                    {
                        let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
                        match &record {
                            Some(r) if !r.status.is_terminal() => {
                                active.insert(id.clone(), (r.lease_until_ms, r.operation.clone()));
                            }
                            _ => {
                                active.remove(&id);
                            }
                        }
                    }
                    {
                        let mut staging = s.staging.lock().unwrap_or_else(|e| e.into_inner());
                        let unfinished = record
                            .as_ref()
                            .filter(|r| !r.status.is_terminal())
                            .and_then(|r| r.transfer.as_ref())
                            .filter(|t| !t.complete)
                            .and_then(|t| t.staging.clone());
                        match unfinished {
                            Some(nuid) => staging.insert(id.clone(), nuid),
                            None => staging.remove(&id),
                        };
                    }
                    if record.as_ref().is_some_and(|r| r.cancel_requested) {
                        let running = s.running.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(token) = running.get(&id) {
                            token.cancel();
                        }
                    }
                    let _ = s.changes.send(id);
                }
            }
        }
    });
    Ok(())
}

/// Fails operations whose lease ran out: the instance running them stopped.
async fn sweep_expired(shared: &Arc<Shared>) {
    let now = now_ms();
    let expired: Vec<(String, String)> = {
        let active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        let running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        active
            .iter()
            .filter(|(id, (lease, _))| *lease < now && !running.contains_key(*id))
            .map(|(id, (_, op))| (id.clone(), op.clone()))
            .collect()
    };
    for (id, operation) in expired {
        let mut staged = None;
        let result = mutate(&shared.kv, &id, |record| {
            if record.status.is_terminal() || record.lease_until_ms >= now_ms() {
                return false;
            }
            record.status = OperationStatus::Failed;
            record.error = Some(
                "abandoned: the provider instance running it stopped before it finished".to_owned(),
            );
            staged = record
                .transfer
                .as_ref()
                .filter(|t| !t.complete)
                .and_then(|t| t.staging.clone().map(|s| (t.key.clone(), s)));
            true
        })
        .await;
        match result {
            Ok(_) => {
                if let (Some((key, nuid)), Some(spec)) = (staged, shared.specs.get(&operation))
                    && let Some(transfer) = &spec.transfer
                {
                    transfer.purge_staged(&key, &nuid).await;
                }
            }
            Err(e) => warn!(%id, error = %e, "could not fail an abandoned operation"),
        }
    }
}

/// Purges staged chunk subjects of this service's send-transfer stores
/// that no transfer and no object refers to (chunks published outside
/// any accepted transfer), once idle for twice the transfer idle timeout.
async fn sweep_strays(shared: &Arc<Shared>) {
    let keep: std::collections::HashSet<String> = shared
        .staging
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let grace = shared.options.transfer_idle_timeout * 2;
    let mut swept = std::collections::HashSet::new();
    for spec in shared.specs.values() {
        let Some(transfer) = &spec.transfer else {
            continue;
        };
        let store = match transfer.open_store().await {
            Ok(store) => store,
            Err(e) => {
                debug!(error = %e, "stray staged chunks: the store is not open");
                continue;
            }
        };
        if !swept.insert(store.bucket().to_owned()) {
            continue;
        }
        match store.sweep_staged(&keep, grace).await {
            Ok(0) => {}
            Ok(purged) => warn!(
                purged,
                "purged staged chunks published outside any transfer"
            ),
            Err(e) => debug!(error = %e, "looking for stray staged chunks failed"),
        }
    }
}

/// Answers a start or control request, recording the answer in `call`.
async fn answer(
    call: &mut Call,
    client: &async_nats::Client,
    to: Option<async_nats::Subject>,
    status: &str,
    headers: HeaderMap,
    body: Bytes,
) {
    call.finish(status, &body);
    reply(client, to, status, headers, body).await;
}

async fn handle_control(
    shared: &Arc<Shared>,
    spec: &Arc<Spec>,
    message: async_nats::Message,
    mut call: Call,
) {
    let client = shared.runtime.nats();
    let to = message.reply.clone();
    let what = format!("`{}`", spec.name);
    let principal = match crate::rpc::admission(&shared.runtime, &message, &what, None).await {
        Ok(principal) => principal,
        Err(refusal) => return call.finish(refusal.status, refusal.reason.as_bytes()),
    };
    let control: Control = match serde_json::from_slice(&message.payload) {
        Ok(c) => c,
        Err(e) => {
            let body = Bytes::from(format!("control request does not decode: {e}"));
            answer(&mut call, client, to, "bad-request", HeaderMap::new(), body).await;
            return;
        }
    };
    let (id, gate) = match &control {
        Control::Get { id } | Control::Wait { id, .. } => (id.clone(), spec.observe.as_deref()),
        Control::Cancel { id } => (id.clone(), spec.cancel_caps.as_deref()),
    };
    // The id names a ledger key and subjects: checked before any I/O.
    if !is_id(&id) {
        let body = Bytes::from(format!(
            "`id` must be an operation id: 16-64 bytes of A-Z a-z 0-9 - _ (got {} bytes)",
            id.len()
        ));
        answer(&mut call, client, to, "bad-request", HeaderMap::new(), body).await;
        return;
    }
    if matches!(control, Control::Cancel { .. }) && !spec.cancel {
        let body = Bytes::from(format!("operation `{}` does not support cancel", spec.name));
        answer(
            &mut call,
            client,
            to,
            "cancel-unsupported",
            HeaderMap::new(),
            body,
        )
        .await;
        return;
    }
    let mut changes = shared.changes.subscribe();
    let current = match read(&shared.kv, &id).await {
        Ok(Some((rev, record))) if record.operation == spec.name => (rev, record),
        Ok(_) => {
            answer(
                &mut call,
                client,
                to,
                "not-found",
                HeaderMap::new(),
                Bytes::from(id),
            )
            .await;
            return;
        }
        Err(e) => {
            answer(
                &mut call,
                client,
                to,
                "internal",
                HeaderMap::new(),
                Bytes::from(e),
            )
            .await;
            return;
        }
    };
    if current.1.owner != principal.id && !principal.satisfies(gate) {
        let body = Bytes::from(format!(
            "`{}` neither started operation {id} nor holds {}",
            principal.id,
            gate.map_or_else(
                || "an observe/cancel capability".to_owned(),
                |g| g.join(", ")
            )
        ));
        answer(&mut call, client, to, "forbidden", HeaderMap::new(), body).await;
        return;
    }
    let (revision, record) = match control {
        Control::Get { .. } => current,
        Control::Cancel { .. } => {
            let result = mutate(&shared.kv, &id, |record| {
                if record.status.is_terminal() || record.cancel_requested {
                    return false;
                }
                record.cancel_requested = true;
                if record.status == OperationStatus::Pending && record.transfer.is_none() {
                    // Not started yet: nothing to ask, it ends here.
                    record.status = OperationStatus::Cancelled;
                }
                true
            })
            .await;
            match result {
                Ok(Some(current)) => current,
                Ok(None) => {
                    answer(
                        &mut call,
                        client,
                        to,
                        "not-found",
                        HeaderMap::new(),
                        Bytes::from(id),
                    )
                    .await;
                    return;
                }
                Err(e) => {
                    answer(
                        &mut call,
                        client,
                        to,
                        "internal",
                        HeaderMap::new(),
                        Bytes::from(e),
                    )
                    .await;
                    return;
                }
            }
        }
        Control::Wait {
            after, timeout_ms, ..
        } => {
            let timeout = Duration::from_millis(timeout_ms.clamp(1, 60_000));
            let deadline = tokio::time::Instant::now() + timeout;
            let mut current = current;
            while current.0 <= after && !current.1.status.is_terminal() {
                // A shutdown answers pending polls at once (the caller polls
                // again, reaching another instance).
                let changed = tokio::select! {
                    () = shared.stop.cancelled() => break,
                    changed = tokio::time::timeout_at(deadline, changes.recv()) => changed,
                };
                match changed {
                    Err(_) => break,
                    Ok(Ok(changed)) if changed != id => continue,
                    // A change of this id, or we lagged: re-read.
                    Ok(_) => match read(&shared.kv, &id).await {
                        Ok(Some(now)) => current = now,
                        _ => break,
                    },
                }
            }
            current
        }
    };
    answer(
        &mut call,
        client,
        to,
        "ok",
        HeaderMap::new(),
        snapshot_bytes(&id, revision, record),
    )
    .await;
}

/// Handles a start within the caller's trace: a `trellis.operation` span
/// (with the operation id once known) covers the start, the transfer and
/// the handler.
async fn handle_start(
    shared: &Arc<Shared>,
    spec: &Arc<Spec>,
    message: async_nats::Message,
    call: Call,
) {
    let (span, trace) = crate::trace::TraceContext::receive(
        crate::trace::Hop::Operation,
        &spec.name,
        message.headers.as_ref(),
    );
    tracing::Instrument::instrument(trace.scope(start(shared, spec, message, call)), span).await;
}

async fn start(
    shared: &Arc<Shared>,
    spec: &Arc<Spec>,
    message: async_nats::Message,
    mut call: Call,
) {
    let client = shared.runtime.nats();
    let to = message.reply.clone();
    let what = format!("`{}`", spec.name);
    let gate = spec.call.as_deref();
    let principal = match crate::rpc::admission(&shared.runtime, &message, &what, gate).await {
        Ok(principal) => principal,
        Err(refusal) => return call.finish(refusal.status, refusal.reason.as_bytes()),
    };
    let id = crate::wire::ids::random_id();
    tracing::Span::current().record("operation_id", id.as_str());
    let raw = RawContext {
        id: id.clone(),
        owner: principal.id.clone(),
        spec: spec.clone(),
        shared: shared.clone(),
        cancel: CancellationToken::new(),
        object: Arc::default(),
    };
    let future = match (spec.handler)(raw.clone(), &message.payload) {
        Ok(f) => f,
        Err(e) => {
            answer(
                &mut call,
                client,
                to,
                "bad-request",
                HeaderMap::new(),
                Bytes::from(e),
            )
            .await;
            return;
        }
    };
    // Admission, before anything is recorded: the transfer is planned
    // (limits, key); every operation this instance holds counts until it
    // finishes; a start that will wait for bytes holds a transfer slot
    // until they are stored (or the transfer fails), bounded in all and
    // per caller. The first refusal is answered.
    let admitted = async {
        let plan = match &spec.transfer {
            None => None,
            Some(transfer) => Some(
                transfer
                    .plan(
                        &message.payload,
                        message.headers.as_ref(),
                        &shared.options,
                        message.subject.split('.').nth(2).unwrap_or("_"),
                    )
                    .await?,
            ),
        };
        let in_flight = shared.in_flight.clone().try_acquire_owned().map_err(|_| {
            format!(
                "the service holds {} operations in flight, its limit; try again later",
                shared.options.max_operations_in_flight
            )
        })?;
        let slot = match &plan {
            None => None,
            Some(_) => Some(TransferSlot::take(shared, &principal.id)?),
        };
        Ok::<_, String>((plan, in_flight, slot))
    };
    let (plan, _in_flight, slot) = match admitted.await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let body = Bytes::from(refusal);
            answer(&mut call, client, to, "refused", HeaderMap::new(), body).await;
            return;
        }
    };
    let now = now_ms();
    let lease = u64::try_from(shared.options.operation_lease.as_millis()).unwrap_or(u64::MAX);
    let record = Record {
        operation: spec.name.clone(),
        status: OperationStatus::Pending,
        owner: principal.id.clone(),
        created_ms: now,
        updated_ms: now,
        lease_until_ms: now.saturating_add(lease),
        progress: None,
        output: None,
        error: None,
        cancel_requested: false,
        transfer: plan.as_ref().map(|p| TransferProgress {
            key: p.key.clone(),
            bytes: 0,
            size: p.declared,
            complete: false,
            staging: Some(p.staging.clone()),
        }),
    };
    let value = match serde_json::to_vec(&record) {
        Ok(v) => v,
        Err(e) => {
            let body = Bytes::from(e.to_string());
            answer(&mut call, client, to, "internal", HeaderMap::new(), body).await;
            return;
        }
    };
    // Register locally first so the sweeper never sees it unowned.
    shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), raw.cancel.clone());
    let revision = match shared.kv.create(key(&id), value.into()).await {
        Ok(r) => r,
        Err(e) => {
            forget(shared, &id);
            let body = Bytes::from(format!("recording the operation failed: {e}"));
            answer(&mut call, client, to, "internal", HeaderMap::new(), body).await;
            return;
        }
    };
    let heartbeat = spawn_heartbeat(shared, &id);
    let mut headers = HeaderMap::new();
    let transfer = match plan {
        Some(plan) => {
            // Subscribe before replying: the sender starts on our reply.
            // Below the start's subject: only its caller may send chunks.
            let subject = crate::transfer::transfer_subject(&message.subject, &id);
            match client.subscribe(subject.clone()).await {
                Ok(sub) => {
                    headers.insert(
                        crate::transfer::CHUNK_SIZE_HEADER,
                        plan.chunk_size.to_string(),
                    );
                    headers.insert(crate::transfer::WINDOW_HEADER, plan.window.to_string());
                    headers.insert(crate::transfer::UPLOAD_HEADER, plan.upload_subject());
                    Some((plan, sub))
                }
                Err(e) => {
                    heartbeat.cancel();
                    finish(shared, &id, Err(OperationFailure::Failed(e.to_string()))).await;
                    forget(shared, &id);
                    let body = Bytes::from(format!("subscribing to the transfer failed: {e}"));
                    answer(&mut call, client, to, "internal", HeaderMap::new(), body).await;
                    return;
                }
            }
        }
        None => None,
    };
    answer(
        &mut call,
        client,
        to,
        "ok",
        headers,
        snapshot_bytes(&id, revision, record),
    )
    .await;
    if let Some((plan, sub)) = transfer {
        let Some(send) = &spec.transfer else { return };
        match send
            .receive(
                shared.runtime.nats(),
                &shared.kv,
                &id,
                plan,
                sub,
                raw.cancel.clone(),
            )
            .await
        {
            Ok(object) => {
                shared.stats.transfer(Direction::Received, object.size);
                let _ = raw.object.set(object);
            }
            Err(failure) => {
                heartbeat.cancel();
                finish(shared, &id, Err(failure)).await;
                forget(shared, &id);
                return;
            }
        }
    }
    drop(slot);
    let permit = tokio::select! {
        p = shared.permits.clone().acquire_owned() => p.ok(),
        () = raw.cancel.cancelled() => None,
    };
    let started = mutate(&shared.kv, &id, |record| {
        if record.status.is_terminal() {
            return false;
        }
        if record.cancel_requested {
            record.status = OperationStatus::Cancelled;
        } else {
            record.status = OperationStatus::Running;
        }
        true
    })
    .await;
    let result = match (&started, permit) {
        (Ok(Some((_, record))), Some(_permit)) if record.status == OperationStatus::Running => {
            // A handler panic fails the operation rather than leaving it stuck.
            // The handler's task keeps the trace and the span.
            let trace = crate::trace::TraceContext::current()
                .unwrap_or_else(crate::trace::TraceContext::root);
            let mut task = tokio::spawn(tracing::Instrument::instrument(
                trace.scope(future),
                tracing::Span::current(),
            ));
            tokio::select! {
                joined = &mut task => match joined {
                    Ok(result) => Some(result),
                    Err(e) => Some(Err(OperationFailure::Failed(format!(
                        "the handler panicked: {e}"
                    )))),
                },
                () = shared.killed.cancelled() => {
                    // Aborted like a crash: no terminal state, the lease runs out.
                    task.abort();
                    heartbeat.cancel();
                    return;
                }
            }
        }
        _ => None,
    };
    heartbeat.cancel();
    if let Some(result) = result {
        finish(shared, &id, result).await;
    } else if let Err(e) = started {
        warn!(%id, error = %e, "could not start an operation");
    }
    forget(shared, &id);
}

/// One pending send transfer's share of the bounds; released on drop.
struct TransferSlot {
    shared: Arc<Shared>,
    caller: String,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl TransferSlot {
    /// Takes a slot for `caller`, or says which bound is reached.
    fn take(shared: &Arc<Shared>, caller: &str) -> Result<TransferSlot, String> {
        let per_caller = shared.options.max_pending_transfers_per_caller;
        let mut pending = shared
            .pending_by_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = pending.get(caller).copied().unwrap_or(0);
        if mine >= per_caller {
            return Err(format!(
                "`{caller}` already has {mine} send transfers pending (at most {per_caller}); \
                 finish or cancel one first"
            ));
        }
        let permit = shared.transfers.clone().try_acquire_owned().map_err(|_| {
            format!(
                "the service has {} send transfers pending, its limit; try again later",
                shared.options.max_pending_transfers
            )
        })?;
        pending.insert(caller.to_owned(), mine + 1);
        Ok(TransferSlot {
            shared: shared.clone(),
            caller: caller.to_owned(),
            _permit: permit,
        })
    }
}

impl Drop for TransferSlot {
    fn drop(&mut self) {
        let mut pending = self
            .shared
            .pending_by_caller
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pending.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&self.caller);
            }
        }
    }
}

fn forget(shared: &Arc<Shared>, id: &str) {
    shared
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
}

/// Renews the lease of a locally running operation until cancelled.
fn spawn_heartbeat(shared: &Arc<Shared>, id: &str) -> CancellationToken {
    let done = CancellationToken::new();
    let lease = shared.options.operation_lease;
    let (kv, id, stop) = (shared.kv.clone(), id.to_owned(), done.clone());
    let killed = shared.killed.clone();
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    shared.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = killed.cancelled() => break,
                () = tokio::time::sleep(lease / 3) => {}
            }
            let result = mutate(&kv, &id, |record| {
                if record.status.is_terminal() {
                    return false;
                }
                record.lease_until_ms = now_ms().saturating_add(lease_ms);
                true
            })
            .await;
            if let Err(e) = result {
                warn!(%id, error = %e, "could not renew an operation lease");
            }
        }
    });
    done
}

/// Writes the terminal state.
pub(crate) async fn finish(
    shared: &Arc<Shared>,
    id: &str,
    result: Result<Value, OperationFailure>,
) {
    let outcome = mutate(&shared.kv, id, |record| {
        if record.status.is_terminal() {
            return false;
        }
        match &result {
            Ok(output) => {
                record.status = OperationStatus::Completed;
                record.output = Some(output.clone());
            }
            Err(OperationFailure::Cancelled) => record.status = OperationStatus::Cancelled,
            Err(OperationFailure::Failed(message)) => {
                record.status = OperationStatus::Failed;
                record.error = Some(message.clone());
            }
        }
        true
    })
    .await;
    if let Err(e) = outcome {
        warn!(%id, error = %e, "could not record an operation's end");
    }
}

impl OperationServer {
    /// Stops at once, like a crash: running handlers are dropped without
    /// recording an end, so their leases run out and another instance
    /// fails them as abandoned.
    pub(crate) fn abort(self) {
        self.shared.killed.cancel();
        self.shared.stop.cancel();
    }

    /// Stops taking requests and waits (until `deadline`) for running
    /// operations to finish. Returns whether all finished.
    pub(crate) async fn shutdown(self, deadline: tokio::time::Instant) -> bool {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        tokio::time::timeout_at(deadline, self.shared.tasks.wait())
            .await
            .is_ok()
    }
}
