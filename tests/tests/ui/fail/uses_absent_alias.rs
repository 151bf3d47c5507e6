#[trellis::contract(
    id = "indexer@v1",
    display_name = "Indexer",
    description = "Indexes documents"
)]
pub mod indexer {
    /// Lists documents.
    #[uses(contract = "documents@v1", rpc = ["Files.List"], module = documents_example::documents)]
    pub struct Docs;
}

fn billing(service: &indexer::Service) {
    // No `#[uses]` declares a `billing` alias: the facade has no accessor.
    let _ = &service.uses.billing;
}

fn main() {
    let _ = billing;
}
