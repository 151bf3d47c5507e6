#[trellis::contract(
    id = "items@v1",
    display_name = "Items",
    description = "Keeps item records"
)]
pub mod items {
    use serde::{Deserialize, Serialize};

    /// An item record.
    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub id: String,
    }

    /// Fetch an item.
    #[rpc("Items.Get")]
    fn items_get(input: Item) -> Item {
        input
    }
}

fn main() {}
