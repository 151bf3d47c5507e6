//! A documents handler doing no I/O, for RPC latency: `Files.Head`
//! answers from the key alone; everything else is refused.

use documents_example::documents::{self, FileEntry, FileKey, FilesError};
use trellis::{Grants, OperationContext, OperationFailure};

/// The handler.
pub struct Stat;

/// The entry `Files.Head` answers for `key`.
pub fn info(key: String) -> FileEntry {
    FileEntry {
        key,
        size: 1_234,
        content_type: Some("text/plain".into()),
        digest: "SHA-256=Zm9vYmFyYmF6cXV4".into(),
        metadata: Default::default(),
        modified_ms: 1_700_000_000_000,
    }
}

impl documents::Handlers for Stat {
    async fn files_list(
        &self,
        _: documents::ListRequest,
    ) -> Result<documents::ListResponse, FilesError> {
        Err(FilesError::NotFound { key: String::new() })
    }
    async fn files_head(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        Ok(info(input.key))
    }
    async fn files_download(
        &self,
        input: FileKey,
        _grants: Grants,
    ) -> Result<documents::DownloadResponse, FilesError> {
        Err(FilesError::NotFound { key: input.key })
    }
    async fn files_delete(&self, input: FileKey) -> Result<FileEntry, FilesError> {
        Err(FilesError::NotFound { key: input.key })
    }
    async fn files_upload(
        &self,
        _op: OperationContext<documents::UploadProgress>,
        _input: documents::UploadInput,
    ) -> Result<documents::UploadOutput, OperationFailure> {
        Err(OperationFailure::failed("not in this benchmark"))
    }
}
