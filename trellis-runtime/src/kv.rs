//! Typed KV handles.

use std::fmt;
use std::marker::PhantomData;

use async_nats::jetstream;

use crate::protocol::KvBinding;

/// A typed handle to a KV bucket whose values are `T`.
pub struct KvHandle<T> {
    store: jetstream::kv::Store,
    binding: KvBinding,
    _values: PhantomData<fn() -> T>,
}

impl<T> Clone for KvHandle<T> {
    fn clone(&self) -> Self {
        KvHandle {
            store: self.store.clone(),
            binding: self.binding.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for KvHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvHandle").finish_non_exhaustive()
    }
}

impl<T> KvHandle<T> {
    pub(crate) fn new(store: jetstream::kv::Store, binding: KvBinding) -> Self {
        KvHandle {
            store,
            binding,
            _values: PhantomData,
        }
    }
}
