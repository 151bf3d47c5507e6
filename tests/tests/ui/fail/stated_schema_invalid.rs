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
        #[trellis(schema = r#"{"type": "strin"}"#)]
        pub origin: std::ffi::OsString,
    }
}

fn main() {}
