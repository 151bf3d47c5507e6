//! The documents service's handlers: the Files pattern over its private
//! `uploads` store.

use std::time::{Duration, UNIX_EPOCH};

use trellis::files;
use trellis::{
    EventPublisher, Grants, ObjectInfo, OperationContext, OperationFailure, StoreHandle,
};

use crate::documents::{
    DocumentCreated, DownloadResponse, FileEntry, FileKey, FilesError, Handlers, ListRequest,
    ListResponse, Service, UploadInput, UploadOutput, UploadProgress,
};

/// The documents service: serves the Files API over its `uploads` store
/// and publishes `Documents.Created` after each upload.
#[derive(Debug, Clone)]
pub struct DocumentsService {
    store: StoreHandle,
    created: EventPublisher<DocumentCreated>,
    processing: Duration,
}

impl DocumentsService {
    /// The handlers of a connected documents service.
    pub fn new(service: &Service) -> DocumentsService {
        DocumentsService {
            store: service.store.uploads.clone(),
            created: service.events.documents.created.clone(),
            processing: Duration::ZERO,
        }
    }

    /// Spends `time` "processing" each upload after its bytes are stored
    /// (cancellable; for demos and tests of long-running uploads).
    pub fn with_processing(mut self, time: Duration) -> DocumentsService {
        self.processing = time;
        self
    }
}

impl From<ObjectInfo> for FileEntry {
    fn from(info: ObjectInfo) -> FileEntry {
        FileEntry {
            modified_ms: info
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            key: info.key,
            size: info.size,
            digest: info.digest,
            content_type: info.content_type,
            metadata: info.metadata,
        }
    }
}

impl From<files::FilesError> for FilesError {
    fn from(e: files::FilesError) -> FilesError {
        match e {
            files::FilesError::NotFound { key } => FilesError::NotFound { key },
            files::FilesError::InvalidKey { key, reason } => FilesError::InvalidKey { key, reason },
            files::FilesError::InvalidRequest { reason } => FilesError::InvalidRequest { reason },
            files::FilesError::Unavailable { reason } => FilesError::Unavailable { reason },
        }
    }
}

impl Handlers for DocumentsService {
    async fn files_list(&self, input: ListRequest) -> Result<ListResponse, FilesError> {
        let page = files::list(&self.store, &input.prefix, input.offset, input.limit).await?;
        Ok(ListResponse {
            entries: page.entries.into_iter().map(FileEntry::from).collect(),
            count: page.count,
            offset: page.offset,
            limit: page.limit,
            next_offset: page.next_offset,
        })
    }

    async fn files_head(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        Ok(files::head(&self.store, &input.key).await?.into())
    }

    async fn files_download(
        &self,
        input: FileKey,
        grants: Grants,
    ) -> Result<DownloadResponse, FilesError> {
        let (info, grant) = files::download(&self.store, &grants, &input.key).await?;
        Ok(DownloadResponse {
            file: info.into(),
            grant,
        })
    }

    async fn files_delete(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        Ok(files::delete(&self.store, &input.key).await?.into())
    }

    async fn files_upload(
        &self,
        op: OperationContext<UploadProgress>,
        _input: UploadInput,
    ) -> Result<UploadOutput, OperationFailure> {
        // The runtime calls us only once the bytes are verified and stored.
        let Some(info) = op.transfer().cloned() else {
            return Err(OperationFailure::failed("no transfer"));
        };
        if !self.processing.is_zero() {
            op.progress(&UploadProgress {
                stage: "processing".into(),
            })
            .await?;
            tokio::select! {
                () = op.cancelled() => return Err(OperationFailure::Cancelled),
                () = tokio::time::sleep(self.processing) => {}
            }
        }
        let event = DocumentCreated {
            key: info.key.clone(),
            size: info.size,
            content_type: info.content_type.clone().unwrap_or_default(),
        };
        // Peers index what this event announces: an upload whose event
        // was not stored (publish already retried across a failover) fails,
        // and the caller uploads again.
        if let Err(e) = self.created.publish(&event).await {
            tracing::warn!(key = %event.key, error = %e, "could not publish Documents.Created");
            return Err(OperationFailure::failed(format!(
                "`{}` is stored, but announcing it failed: {e}",
                event.key
            )));
        }
        Ok(UploadOutput { file: info.into() })
    }
}

impl std::fmt::Display for FilesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilesError::NotFound { key } => write!(f, "no file under `{key}`"),
            FilesError::InvalidKey { key, reason } => write!(f, "invalid key `{key}`: {reason}"),
            FilesError::InvalidRequest { reason } => write!(f, "invalid request: {reason}"),
            FilesError::Unavailable { reason } => write!(f, "the store is unavailable: {reason}"),
        }
    }
}

impl std::error::Error for FilesError {}
