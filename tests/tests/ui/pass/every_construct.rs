/// Stores documents and indexes what other services publish.
#[trellis::contract(
    id = "library@v1",
    display_name = "Library",
    description = "Stores documents and indexes them"
)]
pub mod library {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// Read documents.
    #[capability(display_name = "Read documents")]
    pub const READ: &str = "read";

    /// Upload and delete documents.
    #[capability(
        display_name = "Write documents",
        consequence = "Can replace any document"
    )]
    pub const WRITE: &str = "write";

    /// A catalogue entry.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Entry {
        pub key: String,
        pub title: String,
    }

    /// Catalogue entries by key.
    #[kv(purpose = "Catalogue entries", schema = Entry, history = 4, ttl_ms = 0)]
    pub struct Catalogue;

    /// Uploaded files (alias overridden: the transfer must follow it).
    #[store(
        purpose = "Uploaded files",
        ttl_ms = 86_400_000,
        max_total_bytes = 1_073_741_824,
        alias = "uploads"
    )]
    pub struct Files;

    /// Names one file.
    #[derive(Serialize, Deserialize)]
    pub struct FileKey {
        pub key: String,
    }

    /// A download grant.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Grant {
        pub key: String,
        pub expires_at_ms: u64,
    }

    /// Expected RPC failures.
    #[derive(Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    pub enum FilesError {
        NotFound { key: String },
    }

    /// Input of an upload.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UploadInput {
        pub key: String,
        pub content_type: String,
        #[serde(default)]
        pub metadata: BTreeMap<String, String>,
    }

    /// Upload progress.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UploadProgress {
        pub bytes_stored: u64,
    }

    /// Emitted once a document is stored.
    #[event("Documents.Stored", params = ["/key"], capabilities(subscribe = [READ]))]
    #[derive(Serialize, Deserialize)]
    pub struct DocumentStored {
        pub key: String,
        pub size: u64,
    }

    /// Download one file.
    #[rpc("Files.Download", capabilities(call = [READ]), transfer(receive))]
    fn files_download(input: FileKey) -> Result<Grant, FilesError>;

    /// Upload one file.
    #[operation(
        "Files.Upload",
        progress = UploadProgress,
        capabilities(call = [WRITE], observe = [READ], cancel = [WRITE]),
        cancel,
        transfer(
            send,
            store = Files,
            key = "/key",
            content_type = "/contentType",
            metadata = "/metadata",
            max_bytes = 1_048_576,
            expires_in_ms = 600_000
        )
    )]
    fn files_upload(input: UploadInput) -> FileKey;

    /// The documents service (required).
    #[uses(contract = "documents@v1", rpc = ["Files.List"], subscribe = ["Documents.Created"], module = documents_example::documents)]
    pub struct Docs;

    /// The audit service, when deployed.
    #[uses(contract = "audit@v1", publish = ["Audit.Recorded"], optional)]
    pub struct Audit;

    /// Keeps the catalogue current.
    #[event_consumer(
        uses(Docs = ["Documents.Created"]),
        self = ["Documents.Stored"],
        replay = "all",
        ordering = "unordered",
        concurrency = 4,
        ack_wait_ms = 30_000,
        max_deliver = 3,
        backoff_ms = [1_000, 5_000]
    )]
    pub struct Indexer;
}

fn main() {
    let json = library::MANIFEST_JSON;
    for expected in [
        r#""id":"library@v1""#,
        r#""library::read""#,
        r#""catalogue""#,
        r#""uploads""#,
        r#""store":"uploads""#,
        r#""Files.Download""#,
        r#""Files.Upload""#,
        r#""Documents.Stored""#,
        r#""direction":"receive""#,
        r#""direction":"send""#,
        r#""optional""#,
        r#""required""#,
        r#""indexer""#,
    ] {
        assert!(json.contains(expected), "manifest lacks {expected}: {json}");
    }
    assert_eq!(library::DIGEST.len(), 43);
    assert_eq!(library::ID, "library@v1");
    assert_eq!(library::LINEAGE, "library@v1");
}
