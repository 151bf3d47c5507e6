#[trellis::contract(
    id = "Documents",
    display_name = "Documents",
    description = "Stores and serves documents"
)]
pub mod documents {
    use serde::{Deserialize, Serialize};

    /// A document.
    #[derive(Serialize, Deserialize)]
    pub struct Document {
        pub key: String,
    }
}

fn main() {}
