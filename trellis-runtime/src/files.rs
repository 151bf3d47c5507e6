//! The Files pattern: helpers for exposing a service's private store as
//! ordinary contract RPCs (`Files.List`, `Files.Head`, `Files.Delete`,
//! `Files.Download`) next to an upload operation with a send transfer.
//! Peers use the owning service's Files API, never the store itself.
//!
//! The helpers return runtime types; the contract declares its own schema
//! types with the same shape (they are part of its manifest) and converts.

use serde::{Deserialize, Serialize};

use crate::store::{ListOptions, MAX_LIST_LIMIT, ObjectInfo, StoreError, StoreHandle};
use crate::transfer::receive::{DEFAULT_GRANT_TTL, GrantError, Grants, ReceiveGrant};

/// Expected failures of the Files RPCs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FilesError {
    /// No file under that key.
    #[error("no file under `{key}`")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key is not a valid object key.
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The request is out of range (e.g. a limit of 0).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// Why.
        reason: String,
    },
    /// The store could not be reached.
    #[error("the store is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl From<StoreError> for FilesError {
    fn from(e: StoreError) -> FilesError {
        match e {
            StoreError::InvalidKey { key, reason } => FilesError::InvalidKey { key, reason },
            StoreError::InvalidLimit { limit } => FilesError::InvalidRequest {
                reason: format!("limit {limit} is not between 1 and {MAX_LIST_LIMIT}"),
            },
            other => FilesError::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

impl From<GrantError> for FilesError {
    fn from(e: GrantError) -> FilesError {
        match e {
            GrantError::NotFound { key } => FilesError::NotFound { key },
            GrantError::Store(e) => e.into(),
            GrantError::TooMany(reason) => FilesError::InvalidRequest { reason },
            other => FilesError::Unavailable {
                reason: other.to_string(),
            },
        }
    }
}

/// One page of files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilePage {
    /// The files on this page, sorted by key.
    pub entries: Vec<ObjectInfo>,
    /// Files matching the prefix in total.
    pub count: u64,
    /// The requested offset.
    pub offset: u64,
    /// The requested limit.
    pub limit: u64,
    /// Offset of the next page, if there are more files.
    pub next_offset: Option<u64>,
}

/// Files whose keys start with `prefix`, `offset..offset + limit` of them.
/// Offsets are live: they index the current listing, so files written or
/// deleted between pages shift later pages.
pub async fn list(
    store: &StoreHandle,
    prefix: &str,
    offset: u64,
    limit: u64,
) -> Result<FilePage, FilesError> {
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let page = store
        .open()
        .await?
        .list(
            ListOptions::new(to_usize(limit))
                .prefix(prefix)
                .offset(to_usize(offset)),
        )
        .await?;
    Ok(FilePage {
        entries: page.entries,
        count: page.count as u64,
        offset,
        limit,
        next_offset: page.next_offset.map(|n| n as u64),
    })
}

/// The file under `key`.
pub async fn head(store: &StoreHandle, key: &str) -> Result<ObjectInfo, FilesError> {
    store
        .open()
        .await?
        .info(key)
        .await?
        .ok_or_else(|| FilesError::NotFound {
            key: key.to_owned(),
        })
}

/// Deletes the file under `key`; returns what was deleted.
pub async fn delete(store: &StoreHandle, key: &str) -> Result<ObjectInfo, FilesError> {
    let store = store.open().await?;
    let info = store.info(key).await?.ok_or_else(|| FilesError::NotFound {
        key: key.to_owned(),
    })?;
    if !store.delete(key).await? {
        return Err(FilesError::NotFound {
            key: key.to_owned(),
        });
    }
    Ok(info)
}

/// The file under `key` and a receive grant for it, bound to the caller
/// `grants` was made for.
pub async fn download(
    store: &StoreHandle,
    grants: &Grants,
    key: &str,
) -> Result<(ObjectInfo, ReceiveGrant), FilesError> {
    Ok(grants
        .issue_with_info(store, key, DEFAULT_GRANT_TTL)
        .await?)
}
