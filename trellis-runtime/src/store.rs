//! Object store handles.

use std::fmt;

use async_nats::jetstream;

use crate::protocol::StoreBinding;

/// A handle to an object store; `open()` it to read and write objects.
#[derive(Clone)]
pub struct StoreHandle {
    js: jetstream::Context,
    binding: StoreBinding,
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle").finish_non_exhaustive()
    }
}

impl StoreHandle {
    pub(crate) fn new(js: jetstream::Context, binding: StoreBinding) -> Self {
        StoreHandle { js, binding }
    }
}
