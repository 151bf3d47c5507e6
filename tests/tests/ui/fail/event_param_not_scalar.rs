#[trellis::contract(
    id = "documents@v1",
    display_name = "Documents",
    description = "Stores and serves documents"
)]
pub mod documents {
    use serde::{Deserialize, Serialize};

    /// Emitted once a document is stored.
    #[event("Documents.Created", params = ["/tags"])]
    #[derive(Serialize, Deserialize)]
    pub struct DocumentCreated {
        pub key: String,
        pub tags: Vec<String>,
    }
}

fn main() {}
