#[trellis::contract(
    id = "search@v1",
    display_name = "Search",
    description = "Indexes documents"
)]
pub mod search {
    /// The documents service, without its generated module.
    #[uses(contract = "documents@v1", subscribe = ["Documents.Created"])]
    pub struct Docs;

    /// Keeps the index current.
    #[event_consumer(uses(Docs = ["Documents.Created"]))]
    pub struct Indexer;
}

fn main() {}
