// A contract error is reported once; author code using the module's schema
// types does not pile up follow-up "unresolved" errors.
#[trellis::contract(id = "items@v1", display_name = "Items", description = "Item records")]
pub mod items {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub struct Item {
        pub id: String,
    }

    #[kv(purpose = "Store item records", schema = Item, history = 0)]
    pub struct Items;
}

fn main() {
    let item = items::Item { id: "a".into() };
    let _ = item.id;
}
