//! Bindings: which physical resource backs each logical alias, opened and
//! ready. Only the runtime builds them (in `connect`); generated code turns
//! them into a contract's typed `Service`.

use std::collections::BTreeMap;
use std::fmt;

use async_nats::jetstream;

use crate::kv::KvHandle;
use crate::protocol::{KvBinding, StoreBinding};
use crate::runtime::ServiceRuntime;
use crate::store::StoreHandle;

/// Why a contract's bindings could not produce its service object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// A required resource has no binding (not provisioned yet, or failed).
    #[error("required {kind} `{alias}` has no binding: {reason}")]
    Missing {
        /// `kv` or `store`.
        kind: &'static str,
        /// The logical alias.
        alias: String,
        /// Why (e.g. the reconcile status).
        reason: String,
    },
}

/// Every opened binding of one contract. Only the runtime creates these.
pub struct Bindings {
    runtime: ServiceRuntime,
    kv: BTreeMap<String, (KvBinding, jetstream::kv::Store)>,
    store: BTreeMap<String, (StoreBinding, jetstream::Context)>,
    consumers: BTreeMap<String, Vec<crate::protocol::ConsumerBinding>>,
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bindings")
            .field("kv", &self.kv.keys().collect::<Vec<_>>())
            .field("store", &self.store.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Proof that a value was built by the runtime; private constructor.
#[derive(Debug)]
pub struct Sealed(());

/// Implemented by the `Service` type `#[trellis::contract]` generates.
pub trait Contract: Sized {
    /// Contract id.
    const ID: &'static str;
    /// Contract digest.
    const DIGEST: &'static str;
    /// Canonical manifest.
    const MANIFEST_JSON: &'static str;

    /// Builds the typed service object from resolved bindings.
    fn from_bindings(bindings: &Bindings) -> Result<Self, BindError>;
}

impl Bindings {
    pub(crate) fn new(runtime: ServiceRuntime) -> Self {
        Bindings {
            runtime,
            kv: BTreeMap::new(),
            store: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    pub(crate) fn insert_kv(
        &mut self,
        alias: String,
        binding: KvBinding,
        store: jetstream::kv::Store,
    ) {
        self.kv.insert(alias, (binding, store));
    }

    pub(crate) fn insert_store(
        &mut self,
        alias: String,
        binding: StoreBinding,
        js: jetstream::Context,
    ) {
        self.store.insert(alias, (binding, js));
    }

    pub(crate) fn set_consumers(
        &mut self,
        consumers: BTreeMap<String, Vec<crate::protocol::ConsumerBinding>>,
    ) {
        self.consumers = consumers;
    }

    /// The handle of consumer group `group` (bound to every source the
    /// authority provisioned for it).
    #[doc(hidden)]
    pub fn consumer<E: crate::consumer::GroupEvent>(
        &self,
        group: &'static str,
    ) -> Result<crate::consumer::EventConsumer<E>, BindError> {
        let bindings = self
            .consumers
            .get(group)
            .cloned()
            .ok_or_else(|| Self::missing("consumer", group))?;
        Ok(crate::consumer::EventConsumer::new(
            self.runtime.clone(),
            group,
            bindings,
        ))
    }

    /// The connection the service runs on (used by generated code).
    #[doc(hidden)]
    pub fn runtime(&self) -> ServiceRuntime {
        self.runtime.clone()
    }

    /// Seals a generated service object.
    #[doc(hidden)]
    pub fn seal(&self) -> Sealed {
        Sealed(())
    }

    fn missing(kind: &'static str, alias: &str) -> BindError {
        BindError::Missing {
            kind,
            alias: alias.to_owned(),
            reason: "no binding was persisted for this alias".to_owned(),
        }
    }

    /// The handle of required KV alias `alias`.
    #[doc(hidden)]
    pub fn kv<T>(&self, alias: &str) -> Result<KvHandle<T>, BindError> {
        self.kv_optional(alias)?
            .ok_or_else(|| Self::missing("kv", alias))
    }

    /// The handle of optional KV alias `alias`, if bound.
    #[doc(hidden)]
    pub fn kv_optional<T>(&self, alias: &str) -> Result<Option<KvHandle<T>>, BindError> {
        Ok(self
            .kv
            .get(alias)
            .map(|(binding, store)| KvHandle::new(store.clone(), binding.clone())))
    }

    /// The handle of required store alias `alias`.
    #[doc(hidden)]
    pub fn store(&self, alias: &str) -> Result<StoreHandle, BindError> {
        self.store_optional(alias)?
            .ok_or_else(|| Self::missing("store", alias))
    }

    /// The handle of optional store alias `alias`, if bound.
    #[doc(hidden)]
    pub fn store_optional(&self, alias: &str) -> Result<Option<StoreHandle>, BindError> {
        Ok(self
            .store
            .get(alias)
            .map(|(binding, js)| StoreHandle::new(js.clone(), binding.clone())))
    }
}
