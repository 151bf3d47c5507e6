//! Typed KV handles.
//!
//! A [`KvHandle<T>`] stores values of type `T` as JSON in a KV bucket the
//! deployment authority provisioned. Keys are validated before any network
//! call (see [`KvError::InvalidKey`]); values are checked against the
//! binding's installed size limit before they are sent.
//!
//! Reads that need a server-side consumer (`keys`, `watch`) delete that
//! consumer when they are done (or, for a watch, when it is dropped) instead
//! of leaving it to expire, so thousands of calls in a short time do not run
//! into the server's per-stream consumer limit. `history` needs no consumer
//! at all: it walks the key's revisions with direct gets.

mod entry;
mod error;
mod handle;
mod history;
mod key;
mod list;
mod message;
mod watch;

#[cfg(test)]
mod tests;

pub use entry::{KvChange, KvEntry};
pub use error::KvError;
pub use handle::KvHandle;
pub use key::MAX_KEY_LEN;
pub use watch::KvWatch;
