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

// No public path exposes physical bucket or store names.
fn bucket(handle: &items::Items) -> &str {
    &handle.binding.bucket
}

fn object_store(handle: &items::Attachments) -> &str {
    &handle.binding.bucket
}

fn bindings() -> trellis::__private::Bindings {
    trellis::__private::Bindings::new()
}

fn main() {}
