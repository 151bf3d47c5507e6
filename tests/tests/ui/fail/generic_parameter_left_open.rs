#[trellis::contract(
    id = "tasks@v1",
    display_name = "Tasks",
    description = "Keeps task records"
)]
pub mod tasks {
    use serde::{Deserialize, Serialize};

    /// One page of any item type.
    #[derive(Serialize, Deserialize)]
    pub struct Page<T> {
        pub items: Vec<T>,
    }

    /// A task.
    #[derive(Serialize, Deserialize)]
    pub struct Task {
        pub title: String,
    }

    /// Where a listing starts.
    #[derive(Serialize, Deserialize)]
    pub struct Cursor {
        pub after: Option<String>,
    }

    /// The parameter is never chosen.
    #[rpc("Tasks.List")]
    fn tasks_list(input: Cursor) -> Page<T>;

    /// No argument at all.
    #[rpc("Tasks.Recent")]
    fn tasks_recent(input: Cursor) -> Page;
}

fn main() {}
