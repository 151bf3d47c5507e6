#[trellis::contract(
    id = "indexer@v1",
    display_name = "Indexer",
    description = "Indexes documents"
)]
pub mod indexer {
    /// Says documents, but points at the items contract's module.
    #[uses(contract = "documents@v1", rpc = ["Files.List"], module = items_example::items)]
    pub struct Docs;
}

fn main() {}
