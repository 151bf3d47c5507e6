//! Bindings: which physical resource backs each logical alias.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

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

/// The physical binding of one resource alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) physical: String,
}

/// Every binding of one contract. Only the runtime creates these.
pub struct Bindings {
    kv: BTreeMap<String, Binding>,
    store: BTreeMap<String, Binding>,
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

/// A typed handle to a KV bucket whose values are `T`.
pub struct KvHandle<T> {
    binding: Binding,
    _values: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for KvHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvHandle").finish_non_exhaustive()
    }
}

/// A handle to an object store.
pub struct StoreHandle {
    binding: Binding,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl<T> KvHandle<T> {
    #[allow(dead_code)]
    pub(crate) fn physical(&self) -> &str {
        &self.binding.physical
    }
}

impl StoreHandle {
    #[allow(dead_code)]
    pub(crate) fn physical(&self) -> &str {
        &self.binding.physical
    }
}

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
    #[allow(dead_code)]
    pub(crate) fn new(kv: BTreeMap<String, String>, store: BTreeMap<String, String>) -> Self {
        let wrap = |m: BTreeMap<String, String>| {
            m.into_iter()
                .map(|(alias, physical)| (alias, Binding { physical }))
                .collect()
        };
        Bindings {
            kv: wrap(kv),
            store: wrap(store),
        }
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
        Ok(self.kv.get(alias).map(|b| KvHandle {
            binding: b.clone(),
            _values: PhantomData,
        }))
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
            .map(|b| StoreHandle { binding: b.clone() }))
    }
}
