#[trellis::contract(
    id = "tasks@v1",
    display_name = "Tasks",
    description = "Keeps task records"
)]
pub mod tasks {
    use serde::{Deserialize, Serialize};

    /// A task.
    #[derive(Serialize, Deserialize)]
    pub struct Task {
        pub title: String,
    }

    /// Not a list of tasks, but named as `Vec<Task>` is in the manifest.
    #[derive(Serialize, Deserialize)]
    pub struct TaskList {
        pub owner: String,
    }

    /// Every task.
    #[rpc("Tasks.All")]
    fn tasks_all() -> Vec<Task>;

    /// A list.
    #[rpc("Tasks.Owner")]
    fn tasks_owner() -> TaskList;
}

fn main() {}
