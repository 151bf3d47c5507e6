//! Chunk budgets shared by the transfers of one kind that a process runs
//! at once. Every transfer on one connection shares that connection's
//! pending buffer at nats-server (64 MiB by default; beyond it the server
//! disconnects a slow consumer), so one transfer alone may ask for large
//! batches while many share the same total.

use std::sync::atomic::{AtomicU64, Ordering};

/// A total number of chunks, shared by the transfers that joined it.
pub(crate) struct Budget {
    active: AtomicU64,
    total: u64,
    least: u64,
    most: u64,
}

impl Budget {
    /// `total` chunks shared; each transfer gets at least `least` and at
    /// most `most`.
    pub(crate) const fn new(total: u64, least: u64, most: u64) -> Budget {
        Budget {
            active: AtomicU64::new(0),
            total,
            least,
            most,
        }
    }

    /// Counts one more transfer until the returned share is dropped.
    pub(crate) fn join(&'static self) -> Share {
        self.active.fetch_add(1, Ordering::Relaxed);
        Share(self)
    }
}

/// One transfer's place in a [`Budget`].
pub(crate) struct Share(&'static Budget);

impl Share {
    /// This transfer's share now, in chunks.
    pub(crate) fn chunks(&self) -> u64 {
        let budget = self.0;
        let active = budget.active.load(Ordering::Relaxed).max(1);
        (budget.total / active).clamp(budget.least, budget.most)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Share").field(&self.chunks()).finish()
    }
}
