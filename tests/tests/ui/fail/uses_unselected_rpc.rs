#[trellis::contract(
    id = "indexer@v1",
    display_name = "Indexer",
    description = "Indexes documents"
)]
pub mod indexer {
    /// Lists documents; nothing else of documents is selected.
    #[uses(contract = "documents@v1", rpc = ["Files.List"], module = documents_example::documents)]
    pub struct Docs;
}

async fn purge(service: indexer::Service) {
    let key = documents_example::documents::FileKey { key: "a".into() };
    // `Files.Delete` was not selected in `uses`: the facade has no such method.
    let _ = service.uses.docs.rpc.files.delete(&key).await;
}

fn main() {
    let _ = purge;
}
