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

    /// Uploaded files.
    #[store(purpose = "Uploaded files", max_object_bytes = 1_048_576)]
    pub struct Uploads;
}

fn main() {}
