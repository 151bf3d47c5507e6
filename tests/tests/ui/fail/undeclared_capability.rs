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

    /// Read items.
    #[capability(display_name = "Read items")]
    pub const READ: &str = "read";

    /// Delete an item.
    #[rpc("Items.Delete", capabilities(call = [ADMIN]))]
    fn items_delete(input: Item) -> Item;
}

fn main() {}
