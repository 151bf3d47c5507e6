#[trellis::contract(
    id = "items@v1",
    display_name = "Items",
    description = "Keeps item records"
)]
pub mod items {
    use serde::{Deserialize, Serialize};

    /// A category tree.
    #[derive(Serialize, Deserialize)]
    pub struct Category {
        pub name: String,
        pub children: Vec<Category>,
    }
}

fn main() {}
