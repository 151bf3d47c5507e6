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

    /// List items.
    #[rpc("Items.List")]
    fn items_list(input: Item) -> Item;

    /// List items again.
    #[rpc("Items.List")]
    fn items_list_again(input: Item) -> Item;
}

fn main() {}
