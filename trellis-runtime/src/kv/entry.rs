//! [`KvEntry`] and [`KvChange`]: what reads, watches and histories return.

use std::time::SystemTime;

/// The latest value of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry<T> {
    /// The key.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// The revision that wrote the value (pass it to
    /// [`KvHandle::update`](super::KvHandle::update)).
    pub revision: u64,
    /// When the server stored this revision.
    pub created: SystemTime,
}

/// One change to a key, as seen by
/// [`KvHandle::watch`](super::KvHandle::watch) and
/// [`KvHandle::history`](super::KvHandle::history).
#[derive(Debug, Clone, PartialEq)]
pub enum KvChange<T> {
    /// A value was written.
    Put(KvEntry<T>),
    /// The key was deleted (earlier revisions are kept as history).
    Delete {
        /// The key.
        key: String,
        /// The revision of the deletion marker.
        revision: u64,
    },
    /// The key was purged (earlier revisions were removed), or its value
    /// expired.
    Purge {
        /// The key.
        key: String,
        /// The revision of the purge marker.
        revision: u64,
    },
}

impl<T> KvChange<T> {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            KvChange::Put(entry) => &entry.key,
            KvChange::Delete { key, .. } | KvChange::Purge { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> u64 {
        match self {
            KvChange::Put(entry) => entry.revision,
            KvChange::Delete { revision, .. } | KvChange::Purge { revision, .. } => *revision,
        }
    }
}
