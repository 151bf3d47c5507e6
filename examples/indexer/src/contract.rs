/// The indexer: keeps a projection of the documents service's files in its
/// own KV bucket, fed by a durable consumer of `Documents.Created`.
#[trellis::contract(
    id = "indexer@v1",
    display_name = "Indexer",
    description = "Keeps an index of stored documents"
)]
pub mod indexer {
    use serde::{Deserialize, Serialize};

    /// One indexed document.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct IndexEntry {
        /// Object key in the documents service.
        pub key: String,
        /// Size in bytes.
        pub size: u64,
        /// MIME type.
        pub content_type: String,
        /// SHA-256 the documents service reports.
        pub digest: String,
        /// Id of the event that indexed it.
        pub event_id: String,
    }

    /// Indexed documents by key.
    #[kv(purpose = "Index of stored documents", schema = IndexEntry)]
    pub struct Index;

    /// The documents service: files are looked up and listed, and created
    /// documents are indexed.
    #[uses(
        contract = "documents@v1",
        rpc = ["Files.Head", "Files.List"],
        subscribe = ["Documents.Created"],
        module = crate::documents
    )]
    pub struct Docs;

    /// Indexes every created document, from the first one retained.
    #[event_consumer(uses(Docs = ["Documents.Created"]), replay = "all", ack_wait_ms = 30_000)]
    pub struct Indexing;
}
