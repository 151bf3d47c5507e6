#[trellis::contract(
    id = "items@v1",
    display_name = "Items",
    description = "Keeps item records"
)]
pub mod items {
    use serde::{Deserialize, Serialize};

    /// An item record.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Item {
        pub id: String,
    }
}

fn main() {}
