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
}

fn main() {
    assert_eq!(items::ID, "items@v1");
    assert_eq!(items::DIGEST.len(), 43);
    assert!(items::MANIFEST_JSON.contains(r#""history":1"#));
    let _handle: Option<&items::Items> = None::<&trellis::KvHandle<items::Item>>;
}
