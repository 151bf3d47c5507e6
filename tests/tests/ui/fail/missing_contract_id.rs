#[trellis::contract(display_name = "Items", description = "Keeps item records")]
pub mod items {
    use serde::{Deserialize, Serialize};

    /// An item record.
    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub id: String,
    }
}

fn main() {}
