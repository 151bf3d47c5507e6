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

    /// Item records by id.
    #[kv(purpose = "Store item records", schema = Item)]
    pub struct Items;

    /// Item attachments.
    #[store(purpose = "Item attachments")]
    pub struct Attachments;
}

// A store handle has no public constructor: only the runtime builds one.
fn forge() -> items::Attachments {
    trellis::StoreHandle::new("OBJ_items_attachments")
}

fn main() {}
