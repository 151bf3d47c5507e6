//! Noticing a replaced connection: async-nats reconnects on its own, and
//! replies and messages sent to the old connection while it was away are
//! lost, so a transfer waiting for them compares connect counts.

use std::sync::atomic::Ordering;

/// How many times `client` has connected so far; a change means the
/// connection was replaced.
pub(crate) fn connects(client: &async_nats::Client) -> u64 {
    client.statistics().connects.load(Ordering::Relaxed)
}
