#[trellis::contract(
    id = "archive@v1",
    display_name = "Archive",
    description = "Keeps copies of documents"
)]
pub mod archive {
    use serde::{Deserialize, Serialize};

    /// A listing.
    #[derive(Serialize, Deserialize)]
    pub struct Listing {
        pub keys: Vec<String>,
    }

    /// This contract's own `Docs.*` RPCs generate `DocsRpc`.
    #[rpc("Docs.List")]
    fn docs_list() -> Listing;

    /// The marker `Docs` would name the facade's RPC group `DocsRpc` too.
    #[uses(contract = "documents@v1", rpc = ["Files.List"], module = documents_example::documents)]
    pub struct Docs;
}

fn main() {}
