// The contract module, kept in its own file so build.rs and the trybuild
// pass case read exactly what the crate compiles.

/// Stores and serves documents.
///
/// Uploads land in a private object store through a bounded, digest-checked
/// transfer; callers list and download files through RPCs.
#[trellis::contract(
    id = "documents@v1",
    display_name = "Documents",
    description = "Stores and serves documents"
)]
pub mod documents {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// Read document files.
    #[capability(display_name = "Read documents")]
    pub const READ: &str = "read";

    /// Upload and delete document files.
    #[capability(
        display_name = "Write documents",
        consequence = "Holders can replace or delete any document"
    )]
    pub const WRITE: &str = "write";

    /// Temporary uploaded files awaiting processing.
    #[store(
        purpose = "Temporary uploaded files awaiting processing",
        ttl_ms = 86_400_000,
        max_total_bytes = 10_737_418_240
    )]
    pub struct Uploads;

    /// A page request.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListRequest {
        /// Only keys starting with this prefix.
        #[serde(default)]
        pub prefix: String,
        /// Skip this many entries.
        #[serde(default)]
        pub offset: u32,
        /// Return at most this many entries.
        pub limit: u32,
    }

    /// One stored file.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FileInfo {
        /// Object key.
        pub key: String,
        /// Size in bytes.
        pub size: u64,
        /// MIME type, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content_type: Option<String>,
        /// SHA-256 of the content, base64url.
        pub digest: String,
    }

    /// A page of files.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FilePage {
        /// The files on this page.
        pub files: Vec<FileInfo>,
        /// Offset of the next page, if any.
        pub next_offset: Option<u32>,
    }

    /// Names one file.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct FileKey {
        /// Object key.
        pub key: String,
    }

    /// A bounded grant to download one file.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DownloadGrant {
        /// The file.
        pub file: FileInfo,
        /// Grant expiry (unix ms).
        pub expires_at_ms: u64,
    }

    /// Expected failures of the Files RPCs.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    pub enum FilesError {
        /// No file under that key.
        NotFound {
            /// The missing key.
            key: String,
        },
        /// The key is not a valid object name.
        InvalidKey {
            /// The rejected key.
            key: String,
            /// Why.
            reason: String,
        },
    }

    /// Input of an upload.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UploadInput {
        /// Final object key.
        pub key: String,
        /// MIME type.
        pub content_type: String,
        /// Free-form metadata stored with the object.
        #[serde(default)]
        pub metadata: BTreeMap<String, String>,
    }

    /// Upload progress.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UploadProgress {
        /// Bytes durably stored so far.
        pub bytes_stored: u64,
    }

    /// Result of an upload.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct UploadOutput {
        /// The stored file.
        pub file: FileInfo,
    }

    /// Emitted once a document is stored.
    #[event("Documents.Created", params = ["/key"], capabilities(subscribe = [READ]))]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DocumentCreated {
        /// Object key.
        pub key: String,
        /// Size in bytes.
        pub size: u64,
        /// MIME type.
        pub content_type: String,
    }

    /// List stored files, one page at a time.
    #[rpc("Files.List", capabilities(call = [READ]))]
    fn files_list(input: ListRequest) -> Result<FilePage, FilesError>;

    /// Describe one file.
    #[rpc("Files.Stat", capabilities(call = [READ]))]
    fn files_stat(input: FileKey) -> Result<FileInfo, FilesError>;

    /// Download one file through a bounded receive grant.
    #[rpc("Files.Download", capabilities(call = [READ]), transfer(receive))]
    fn files_download(input: FileKey) -> Result<DownloadGrant, FilesError>;

    /// Delete one file.
    #[rpc("Files.Delete", capabilities(call = [WRITE]))]
    fn files_delete(input: FileKey) -> Result<FileInfo, FilesError>;

    /// Upload a file: input and bytes travel in one start flow.
    #[operation(
        "Files.Upload",
        progress = UploadProgress,
        capabilities(call = [WRITE], observe = [READ], cancel = [WRITE]),
        cancel,
        transfer(
            send,
            store = Uploads,
            key = "/key",
            content_type = "/contentType",
            metadata = "/metadata",
            max_bytes = 1_073_741_824,
            expires_in_ms = 600_000
        )
    )]
    fn files_upload(input: UploadInput) -> UploadOutput;
}
