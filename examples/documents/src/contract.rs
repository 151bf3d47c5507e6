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

    /// A page request: files whose keys start with `prefix`, from `offset`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListRequest {
        /// Only keys starting with this prefix.
        #[serde(default)]
        pub prefix: String,
        /// Skip this many matching files.
        #[serde(default)]
        pub offset: u64,
        /// Return at most this many (1 to 1000).
        pub limit: u64,
    }

    /// One stored file.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FileEntry {
        /// Object key.
        pub key: String,
        /// Size in bytes.
        pub size: u64,
        /// SHA-256 of the content (`SHA-256=<base64url>`).
        pub digest: String,
        /// MIME type, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content_type: Option<String>,
        /// Metadata stored with the file.
        #[serde(default)]
        pub metadata: BTreeMap<String, String>,
        /// When it was written (unix ms).
        pub modified_ms: u64,
    }

    /// A page of files.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ListResponse {
        /// The files on this page, sorted by key.
        pub entries: Vec<FileEntry>,
        /// Files matching the prefix in total.
        pub count: u64,
        /// The requested offset.
        pub offset: u64,
        /// The requested limit.
        pub limit: u64,
        /// Offset of the next page, if there are more files.
        pub next_offset: Option<u64>,
    }

    /// Names one file.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct FileKey {
        /// Object key.
        pub key: String,
    }

    /// A file and a bounded, single-use grant to download it.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct DownloadResponse {
        /// The file.
        pub file: FileEntry,
        /// Redeem with `client.download(&grant)`.
        pub grant: trellis::ReceiveGrant,
    }

    /// Expected failures of the Files RPCs.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    pub enum FilesError {
        /// No file under that key.
        NotFound {
            /// The missing key.
            key: String,
        },
        /// The key is not a valid object key.
        InvalidKey {
            /// The rejected key.
            key: String,
            /// Why.
            reason: String,
        },
        /// The request is out of range.
        InvalidRequest {
            /// Why.
            reason: String,
        },
        /// The store could not be reached.
        Unavailable {
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

    /// Upload progress after the bytes are stored.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UploadProgress {
        /// What the service is doing with the stored file.
        pub stage: String,
    }

    /// Result of an upload.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadOutput {
        /// The stored file.
        pub file: FileEntry,
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

    /// List stored files, one page at a time (live offsets).
    #[rpc("Files.List", capabilities(call = [READ]))]
    fn files_list(input: ListRequest) -> Result<ListResponse, FilesError>;

    /// Describe one file.
    #[rpc("Files.Head", capabilities(call = [READ]))]
    fn files_head(input: FileKey) -> Result<FileEntry, FilesError>;

    /// Download one file through a bounded receive grant.
    #[rpc("Files.Download", capabilities(call = [READ]), transfer(receive))]
    fn files_download(input: FileKey) -> Result<DownloadResponse, FilesError>;

    /// Delete one file.
    #[rpc("Files.Delete", capabilities(call = [WRITE]))]
    fn files_delete(input: FileKey) -> Result<FileEntry, FilesError>;

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
